//! Pack usage, rewrite of short packs, and deletion of unreferenced pack blobs.
//!
//! Kopia facts (v0.23.1 `repo/maintenance/content_rewrite.go`, `blob_gc.go`,
//! `repo/content/sessions.go`):
//! * a pack is *short* when its contents total < 60 % of `maxPackSize` (v0.23.1 rewrites them
//!   only when a prefix has at least two); rewrite copies each
//!   content into a new pack with a bumped timestamp; contents younger than 2 h
//!   (`RewriteMinAge`) are skipped;
//! * kopia also copies *deleted* contents of short packs, so their old pack becomes
//!   unreferenced at once and the copies are reclaimed a cycle later. arkiv copies live
//!   contents only and leaves a pack that still holds deleted-but-not-yet-dropped entries
//!   alone until the deletion watermark hides them: nothing is copied twice, and the data a
//!   racing snapshot may still undelete stays where it is;
//! * a pack/session blob (`p`, `q`, `s`) is unreferenced when no winning index entry (live or
//!   deleted, minus those hidden by the watermark) names it; it is deleted only when its
//!   timestamp ≤ `MaintenanceStartTime + 1 s`, its age (to that cutoff) ≥ `BlobDeleteMinAge`, and
//!   the session in its name has no marker whose `checkpointTime` is younger than
//!   `SessionExpirationAge`. The session ID of a blob is the first `-`-separated part after the
//!   first that starts with `s` (`SessionIDFromBlobID`).

use std::collections::{HashMap, HashSet};

use arkiv_format::encryption;
use arkiv_format::ids::{BlobId, ContentId};
use arkiv_format::index::Info;
use chrono::{DateTime, TimeDelta, Utc};

use crate::Result;
use crate::blob::BlobMetadata;
use crate::repo::Repository;

/// Share of `maxPackSize` below which a pack is short.
pub const SHORT_PACK_PERCENT: u64 = 60;

/// What the winning index entries say about one pack.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PackUsage {
    /// Packed bytes of live contents.
    pub live_bytes: u64,
    /// Live contents.
    pub live_count: u64,
    /// Deleted contents not hidden by the watermark (their data must stay readable).
    pub deleted_count: u64,
    /// Some live content is younger than the rewrite minimum age.
    pub has_young: bool,
}

/// GC decisions not yet applied (dry runs): how the index will look after GC.
#[derive(Debug, Default)]
pub struct GcOverlay {
    /// Contents GC will mark deleted.
    pub marked: HashSet<ContentId>,
    /// Contents GC will undelete (copied into a new pack).
    pub undeleted: HashSet<ContentId>,
}

/// Computes pack usage from the winning entries of the repository's index, as if `overlay`
/// were applied and the deletion watermark were `watermark` (unix seconds).
pub fn pack_usage(
    repo: &Repository,
    overlay: Option<&GcOverlay>,
    watermark: Option<i64>,
    now: DateTime<Utc>,
    rewrite_min_age: i64,
) -> Result<HashMap<BlobId, PackUsage>> {
    let mut usage: HashMap<BlobId, PackUsage> = HashMap::new();
    for info in repo.indexes().iter(true) {
        let mut info = info?;
        if let Some(o) = overlay {
            if o.undeleted.contains(&info.content_id) {
                continue; // moves to a new pack
            }
            if o.marked.contains(&info.content_id) {
                info.deleted = true;
                info.timestamp_seconds = now.timestamp().max(info.timestamp_seconds + 1);
            }
        }
        if info.deleted && watermark.is_some_and(|w| info.timestamp_seconds <= w) {
            continue;
        }
        let u = usage.entry(info.pack_blob_id.clone()).or_default();
        if info.deleted {
            u.deleted_count += 1;
        } else {
            u.live_count += 1;
            u.live_bytes += u64::from(info.packed_length);
            if now.timestamp() - info.timestamp_seconds < rewrite_min_age {
                u.has_young = true;
            }
        }
    }
    Ok(usage)
}

/// One pack chosen for rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackRewrite {
    /// The pack.
    pub pack: BlobId,
    /// Its blob length.
    pub blob_length: u64,
    /// Live packed bytes (what is copied).
    pub live_bytes: u64,
    /// Live contents.
    pub live_count: u64,
}

/// The rewrite step.
#[derive(Debug, Default, Clone)]
pub struct RewritePlan {
    /// Packs whose live contents are copied.
    pub packs: Vec<PackRewrite>,
    /// Short packs left alone because they still hold deleted, not yet dropped contents.
    pub deferred_deleted: usize,
    /// Short packs left alone because some content is younger than the rewrite min age.
    pub deferred_young: usize,
    /// Short packs left alone because they were the only short pack of their kind.
    pub single_short: usize,
}

impl RewritePlan {
    /// Total live bytes copied.
    pub fn bytes(&self) -> u64 {
        self.packs.iter().map(|p| p.live_bytes).sum()
    }
    /// Total contents copied.
    pub fn contents(&self) -> u64 {
        self.packs.iter().map(|p| p.live_count).sum()
    }
}

/// Share of a pack's length that dead bytes must reach for the pack to count as sparse.
pub const SPARSE_PACK_PERCENT: u64 = 10;

/// Bytes of a pack that are not content payloads: preamble, padding (≤ 4 KiB), postamble, and
/// the local index (≈ 100 bytes per entry, generously).
fn pack_overhead(entries: u64) -> u64 {
    32 + 4096 + 300 + 100 * entries
}

/// Chooses the packs to rewrite (pure). `packs` lists the `p`/`q` blobs.
///
/// A pack is a candidate when it is *short* (kopia: live bytes < 60 % of `maxPackSize`) or
/// *sparse* (arkiv: dead bytes — its length minus live payloads and pack overhead — are at
/// least 10 % of it, so large packs that lost contents are reclaimed too). Candidates that
/// still hold deleted-but-not-dropped contents or contents younger than the rewrite minimum
/// age are deferred. Per pack prefix, two or more candidates are all rewritten (merging
/// short packs); a lone candidate only when it is sparse (rewriting a lone dense short pack
/// would just produce the same pack again).
pub fn plan_rewrite(
    packs: &[BlobMetadata],
    usage: &HashMap<BlobId, PackUsage>,
    max_pack_size: u64,
) -> RewritePlan {
    let threshold = max_pack_size * SHORT_PACK_PERCENT / 100;
    let mut plan = RewritePlan::default();
    let mut by_prefix: HashMap<char, Vec<(PackRewrite, bool)>> = HashMap::new();
    for m in packs {
        let Some(u) = usage.get(&m.id) else { continue };
        if u.live_count == 0 {
            continue;
        }
        let overhead = pack_overhead(u.live_count + u.deleted_count);
        let dead = m.length.saturating_sub(u.live_bytes + overhead);
        let short = u.live_bytes < threshold;
        let sparse = dead * 100 >= m.length * SPARSE_PACK_PERCENT;
        if !short && !sparse {
            continue;
        }
        if u.deleted_count > 0 {
            plan.deferred_deleted += 1;
            continue;
        }
        if u.has_young {
            plan.deferred_young += 1;
            continue;
        }
        let prefix = m.id.as_str().chars().next().unwrap_or('p');
        by_prefix.entry(prefix).or_default().push((
            PackRewrite {
                pack: m.id.clone(),
                blob_length: m.length,
                live_bytes: u.live_bytes,
                live_count: u.live_count,
            },
            sparse,
        ));
    }
    for (_, group) in by_prefix {
        let many = group.len() >= 2;
        for (g, sparse) in group {
            if many || sparse {
                plan.packs.push(g);
            } else {
                plan.single_short += 1;
            }
        }
    }
    plan.packs.sort_by(|a, b| a.pack.cmp(&b.pack));
    plan
}

/// Session ID named in a blob ID (kopia `SessionIDFromBlobID`), if any.
pub use crate::content::recover::session_of as session_id_of;

/// Live session markers: session ID → checkpoint time.
pub async fn active_sessions(repo: &Repository) -> Result<HashMap<String, DateTime<Utc>>> {
    let mut out = HashMap::new();
    for m in repo.storage().list("s").await? {
        let Some(sid) = session_id_of(m.id.as_str()) else {
            continue;
        };
        // An unreadable marker still protects its session, from its storage time.
        let checkpoint = match repo.storage().get(&m.id, None).await {
            Ok(data) => {
                encryption::decrypt_blob(repo.content_reader().cipher(), m.id.as_str(), &data)
                    .ok()
                    .and_then(|plain| serde_json::from_slice::<serde_json::Value>(&plain).ok())
                    .and_then(|v| {
                        v.get("checkpointTime")
                            .and_then(|t| t.as_str())
                            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                            .map(|t| t.with_timezone(&Utc))
                    })
                    .unwrap_or(m.timestamp)
            }
            Err(_) => continue, // deleted meanwhile: the session committed
        };
        let e = out.entry(sid.to_owned()).or_insert(checkpoint);
        if checkpoint > *e {
            *e = checkpoint;
        }
    }
    Ok(out)
}

/// Why an unreferenced blob is kept.
#[derive(Debug, Default, Clone, Copy)]
pub struct Preserved {
    /// Newer than the cutoff or younger than the minimum age.
    pub young: u64,
    /// Protected by a live session marker.
    pub session: u64,
}

/// The blob deletion step.
#[derive(Debug, Default, Clone)]
pub struct DeletePlan {
    /// Unreferenced blobs to delete, with their lengths.
    pub blobs: Vec<(BlobId, u64)>,
    /// Unreferenced blobs kept.
    pub preserved: Preserved,
}

impl DeletePlan {
    /// Bytes reclaimed.
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.1).sum()
    }
}

/// Chooses unreferenced `p`/`q`/`s` blobs to delete (pure).
pub fn plan_delete(
    candidates: &[BlobMetadata],
    referenced: &dyn Fn(&BlobId) -> bool,
    sessions: &HashMap<String, DateTime<Utc>>,
    start: DateTime<Utc>,
    min_age: i64,
    session_expiration: i64,
) -> DeletePlan {
    let cutoff = start + TimeDelta::seconds(1);
    let mut plan = DeletePlan::default();
    for m in candidates {
        if referenced(&m.id) {
            continue;
        }
        if m.timestamp > cutoff || (cutoff - m.timestamp) < TimeDelta::seconds(min_age) {
            plan.preserved.young += 1;
            continue;
        }
        let protected = session_id_of(m.id.as_str())
            .and_then(|s| sessions.get(s))
            .is_some_and(|cp| (cutoff - *cp) < TimeDelta::seconds(session_expiration));
        if protected {
            plan.preserved.session += 1;
            continue;
        }
        plan.blobs.push((m.id.clone(), m.length));
    }
    plan
}

/// Copies the live contents of `packs` into new packs with `cw` (blocking: call from a
/// non-runtime thread), flushing every `flush_every` contents to bound memory.
pub fn apply_rewrite(
    repo: &Repository,
    cw: &crate::content::writer::ContentWriter,
    packs: &HashSet<BlobId>,
    flush_every: usize,
) -> Result<u64> {
    let mut n = 0u64;
    let mut since_flush = 0usize;
    let mut batch: Vec<Info> = Vec::new();
    for info in repo.indexes().iter(false) {
        let info = info?;
        if !packs.contains(&info.pack_blob_id) {
            continue;
        }
        batch.push(info);
        if batch.len() >= 256 {
            for i in batch.drain(..) {
                cw.copy_content(&i, false)?;
                n += 1;
                since_flush += 1;
            }
            if since_flush >= flush_every {
                cw.flush()?;
                since_flush = 0;
            }
        }
    }
    for i in batch.drain(..) {
        cw.copy_content(&i, false)?;
        n += 1;
    }
    cw.flush()?;
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn meta(id: &str, len: u64, ts: DateTime<Utc>) -> BlobMetadata {
        BlobMetadata {
            id: BlobId::from(id),
            length: len,
            timestamp: ts,
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn session_id_from_blob_names() {
        assert_eq!(session_id_of("pabc-s0123-c1"), Some("s0123"));
        assert_eq!(session_id_of("sdeadbeef-s99aa"), Some("s99aa"));
        assert_eq!(session_id_of("pabc"), None);
        assert_eq!(session_id_of("xn0_abc-x-c1"), None);
    }

    fn usage(live: u64, count: u64, deleted: u64, young: bool) -> PackUsage {
        PackUsage {
            live_bytes: live,
            live_count: count,
            deleted_count: deleted,
            has_young: young,
        }
    }

    #[test]
    fn rewrite_selection() {
        let max = 20 << 20;
        let packs = vec![
            meta("pa", 1 << 20, t0()),  // short
            meta("pb", 2 << 20, t0()),  // short
            meta("pc", 19 << 20, t0()), // full and dense
            meta("pd", 19 << 20, t0()), // full but 30 % dead → sparse
            meta("pe", 1 << 20, t0()),  // short, holds deleted entries
            meta("pf", 1 << 20, t0()),  // short, young
            meta("qa", 100_000, t0()),  // lone dense short q pack
        ];
        let mut u = HashMap::new();
        u.insert(BlobId::from("pa"), usage((1 << 20) - 10_000, 10, 0, false));
        u.insert(BlobId::from("pb"), usage((2 << 20) - 10_000, 10, 0, false));
        u.insert(BlobId::from("pc"), usage((19 << 20) - 10_000, 10, 0, false));
        u.insert(BlobId::from("pd"), usage(13 << 20, 10, 0, false));
        u.insert(BlobId::from("pe"), usage(1000, 1, 3, false));
        u.insert(BlobId::from("pf"), usage(1000, 1, 0, true));
        u.insert(BlobId::from("qa"), usage(95_000, 5, 0, false));
        let plan = plan_rewrite(&packs, &u, max);
        let chosen: Vec<&str> = plan.packs.iter().map(|p| p.pack.as_str()).collect();
        assert_eq!(chosen, ["pa", "pb", "pd"]);
        assert_eq!(plan.deferred_deleted, 1);
        assert_eq!(plan.deferred_young, 1);
        assert_eq!(plan.single_short, 1);
    }

    #[test]
    fn delete_selection_honours_age_cutoff_and_sessions() {
        let start = t0() + TimeDelta::days(10);
        let old = t0();
        let cands = vec![
            meta("pref-s1", 10, old),                             // referenced
            meta("pold-s2", 20, old),                             // deleted
            meta("pyoung-s3", 30, start - TimeDelta::hours(1)),   // too young
            meta("pafter-s4", 40, start + TimeDelta::minutes(1)), // after cutoff
            meta("psess-s5", 50, old),                            // live session
            meta("pexp-s6", 60, old),                             // expired session
        ];
        let mut sessions = HashMap::new();
        sessions.insert("s5".to_owned(), start - TimeDelta::hours(10));
        sessions.insert("s6".to_owned(), start - TimeDelta::hours(100));
        let referenced = |b: &BlobId| b.as_str() == "pref-s1";
        let plan = plan_delete(&cands, &referenced, &sessions, start, 24 * 3600, 96 * 3600);
        let ids: Vec<&str> = plan.blobs.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(ids, ["pold-s2", "pexp-s6"]);
        assert_eq!(plan.preserved.young, 2);
        assert_eq!(plan.preserved.session, 1);
        assert_eq!(plan.bytes(), 80);
        // safety none: age and sessions no longer protect, the cutoff still does
        let plan = plan_delete(&cands, &referenced, &sessions, start, 0, 0);
        assert_eq!(plan.blobs.len(), 4);
    }
}
