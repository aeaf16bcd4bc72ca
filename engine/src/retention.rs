//! Snapshot expiry (FORMAT.md §13): plan which snapshots of a source are kept and why, then
//! delete the others.
//!
//! Facts from kopia (`snapshot/policy/expire.go` `ApplyRetentionPolicy`,
//! `cli/command_snapshot_create.go`, `cli/command_snapshot_expire.go`; kopia/kopia master,
//! 2026-08):
//!
//! * The snapshots of one source (`ListSnapshots`: manifests labelled with the source) get
//!   reasons from the source's *effective* retention policy ([`crate::policy::effective_policy`]).
//!   One is deleted iff it has no retention reasons and no pins.
//! * Deleting = a tombstone for the snapshot manifest (`DeleteManifest`), nothing else; data
//!   is reclaimed later by maintenance (snapshot GC). All tombstones go into one write session.
//! * `kopia snapshot create` applies the retention policy of the source right after saving
//!   each snapshot (`ApplyRetentionPolicy(…, reallyDelete=true)`), in the same session, and
//!   prints nothing about it (debug log only). `kopia snapshot expire` is a dry run unless
//!   `--delete` is given; arkiv's `expire` deletes unless `--dry-run` is given.
//! * Weekly period IDs and cutoffs use the local time zone of the process (see
//!   [`arkiv_format::retention`]); [`expire_source`] uses [`chrono::Local`] like kopia.
//!
//! A tombstone is stamped with the clock's now, but at least 1 ms after the snapshot
//! manifest's own `modified` so that it wins the merge even under a stopped test clock.

use std::fmt;

use arkiv_format::ids::ManifestId;
use arkiv_format::retention::{
    EffectiveRetention, RetentionInput, compute_retention_reasons, expired,
};
use arkiv_format::snapshot::SourceInfo;
use chrono::{DateTime, Utc};

use crate::Result;
use crate::content::writer::ContentWriter;
use crate::manifest::ManifestBatch;
use crate::policy::{effective_from, fresh, tombstone_time};
use crate::repo::Repository;

/// What expiry would do with the snapshots of one source (pure data, printable for dry runs).
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionPlan {
    /// The source.
    pub source: SourceInfo,
    /// One decision per snapshot of the source, oldest first (start time, then ID).
    pub decisions: Vec<RetentionDecision>,
    /// The effective retention settings the plan was computed with.
    pub retention: EffectiveRetention,
}

/// The fate of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionDecision {
    /// Snapshot manifest ID.
    pub id: ManifestId,
    /// Snapshot start time.
    pub start_time: DateTime<Utc>,
    /// Retention reasons (`latest-1`, `daily-3`, `incomplete`, …), kopia's order.
    pub reasons: Vec<String>,
    /// Pins (a pinned snapshot is never expired).
    pub pins: Vec<String>,
    /// True when the snapshot stays: it has reasons or pins.
    pub keep: bool,
}

impl RetentionPlan {
    /// The decisions that delete a snapshot.
    pub fn expired(&self) -> impl Iterator<Item = &RetentionDecision> {
        self.decisions.iter().filter(|d| !d.keep)
    }

    /// How many snapshots the plan deletes.
    pub fn expired_count(&self) -> usize {
        self.expired().count()
    }

    /// Computes the plan from loaded snapshots (`snapshots` of any sources; only those of
    /// `source` are considered). Pure: time zone and policy are inputs.
    pub fn compute<Tz: chrono::TimeZone>(
        source: &SourceInfo,
        snapshots: &[crate::repo::Snapshot],
        retention: &EffectiveRetention,
        tz: &Tz,
    ) -> RetentionPlan {
        let mut mine: Vec<&crate::repo::Snapshot> = snapshots
            .iter()
            .filter(|s| s.manifest.source == *source)
            .collect();
        mine.sort_by(|a, b| {
            a.manifest
                .start_time
                .cmp(&b.manifest.start_time)
                .then_with(|| a.id.cmp(&b.id))
        });
        let inputs: Vec<RetentionInput> = mine
            .iter()
            .map(|s| RetentionInput {
                start_time: s.manifest.start_time,
                end_time: s.manifest.end_time,
                incomplete: !s.manifest.incomplete.is_empty(),
                pins_nonempty: !s.manifest.pins.is_empty(),
            })
            .collect();
        let reasons = compute_retention_reasons(&inputs, retention, tz);
        let gone = expired(&inputs, &reasons);
        let decisions = mine
            .iter()
            .zip(reasons)
            .enumerate()
            .map(|(i, (s, reasons))| RetentionDecision {
                id: s.id.clone(),
                start_time: s.manifest.start_time,
                reasons,
                pins: s.manifest.pins.clone(),
                keep: !gone.contains(&i),
            })
            .collect();
        RetentionPlan {
            source: source.clone(),
            decisions,
            retention: retention.clone(),
        }
    }
}

fn setting(v: Option<i64>) -> String {
    v.map_or_else(|| "(none)".to_owned(), |n| n.to_string())
}

impl fmt::Display for RetentionPlan {
    /// ```text
    /// Retention for u@h:/data: latest 3, hourly (none), daily 7, weekly (none), monthly (none), annual (none)
    ///   keep    2024-05-06 08:00:00 UTC  0123…  latest-1,daily-1
    ///   delete  2024-05-05 08:00:00 UTC  4567…
    /// 1 kept, 1 to delete
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.retention;
        writeln!(
            f,
            "Retention for {}: latest {}, hourly {}, daily {}, weekly {}, monthly {}, annual {}",
            self.source,
            setting(r.keep_latest),
            setting(r.keep_hourly),
            setting(r.keep_daily),
            setting(r.keep_weekly),
            setting(r.keep_monthly),
            setting(r.keep_annual),
        )?;
        for d in &self.decisions {
            let mut why = d.reasons.join(",");
            if !d.pins.is_empty() {
                if !why.is_empty() {
                    why.push(' ');
                }
                why.push_str(&format!("pins: {}", d.pins.join(",")));
            }
            let verb = if d.keep { "keep  " } else { "delete" };
            let line = format!(
                "  {verb}  {}  {}  {why}",
                arkiv_format::gojson::time::format_cli(&d.start_time),
                d.id
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        let gone = self.expired_count();
        write!(
            f,
            "{} kept, {} to delete",
            self.decisions.len() - gone,
            gone
        )
    }
}

/// Plans expiry of `source` under its effective policy; `tz` is the zone kopia would run in
/// (weekly IDs, cutoffs). Reads the latest state of the repository.
pub async fn plan_expiry(
    repo: &Repository,
    source: &SourceInfo,
    tz: &impl chrono::TimeZone,
) -> Result<RetentionPlan> {
    let repo = fresh(repo).await?;
    let retention = effective_from(&repo.manifests().await?, source).retention;
    let snapshots = repo.snapshots().await?;
    Ok(RetentionPlan::compute(source, &snapshots, &retention, tz))
}

/// Deletes the snapshots `plan` expires (tombstones, one write session attributed to
/// `username@hostname`). Snapshots already gone are skipped. Returns how many were deleted.
pub async fn apply_expiry(
    repo: &Repository,
    plan: &RetentionPlan,
    username: &str,
    hostname: &str,
) -> Result<usize> {
    if plan.expired_count() == 0 {
        return Ok(0);
    }
    let repo = fresh(repo).await?;
    let manifests = repo.manifests().await?;
    let now = repo.clock().now();
    let doomed: Vec<(ManifestId, DateTime<Utc>)> = plan
        .expired()
        .filter_map(|d| {
            let e = manifests.get(&d.id)?;
            (e.manifest_type() == Some(arkiv_format::manifest::TYPE_SNAPSHOT))
                .then(|| (d.id.clone(), tombstone_time(now, e.modified)))
        })
        .collect();
    if doomed.is_empty() {
        return Ok(0);
    }
    let n = doomed.len();
    let rt = tokio::runtime::Handle::current();
    let cw = ContentWriter::new(repo.clone(), rt, username, hostname)?;
    let mut batch = ManifestBatch::default();
    for (id, at) in doomed {
        batch.delete(id, at);
    }
    batch.commit_async(&cw).await?;
    cw.flush_async().await?;
    Ok(n)
}

/// Plans expiry of `source` in the local time zone (like kopia) and applies it; returns the
/// plan that was applied.
pub async fn expire_source(
    repo: &Repository,
    source: &SourceInfo,
    username: &str,
    hostname: &str,
) -> Result<RetentionPlan> {
    let plan = plan_expiry(repo, source, &chrono::Local).await?;
    apply_expiry(repo, &plan, username, hostname).await?;
    Ok(plan)
}

/// The sources that have snapshots, sorted (kopia's `ListSources`, sorted by display string).
pub async fn list_sources(repo: &Repository) -> Result<Vec<SourceInfo>> {
    let repo = fresh(repo).await?;
    let mut out: Vec<SourceInfo> = repo
        .snapshots()
        .await?
        .into_iter()
        .map(|s| s.manifest.source)
        .collect();
    out.sort_by_key(|s| s.to_string());
    out.dedup();
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::repo::Snapshot;
    use arkiv_format::gojson::time::parse as parse_go_time;
    use arkiv_format::policy::RetentionPolicy;
    use arkiv_format::snapshot::SnapshotManifest;

    fn snap(id: &str, src: &SourceInfo, at: &str, pins: &[&str]) -> Snapshot {
        let t = parse_go_time(at).unwrap();
        Snapshot {
            id: ManifestId::new(id),
            manifest: SnapshotManifest {
                source: src.clone(),
                start_time: t,
                end_time: t,
                pins: pins.iter().map(|p| (*p).to_owned()).collect(),
                ..Default::default()
            },
            labels: Default::default(),
        }
    }

    /// The printed plan is part of the CLI's output (`expire --dry-run`): golden text.
    #[test]
    fn plan_display_golden() {
        let src = SourceInfo {
            host: "h".into(),
            user_name: "u".into(),
            path: "/data".into(),
        };
        let other = SourceInfo {
            path: "/other".into(),
            ..src.clone()
        };
        let snaps = [
            snap("c3", &src, "2024-05-06T10:00:00Z", &[]),
            snap("a1", &src, "2024-05-04T10:00:00Z", &["legal"]),
            snap("b2", &src, "2024-05-05T10:00:00Z", &[]),
            snap("zz", &other, "2024-05-01T10:00:00Z", &[]),
            snap("d4", &src, "2024-05-06T11:00:00Z", &[]),
        ];
        let pol = RetentionPolicy {
            keep_latest: Some(1),
            keep_daily: Some(2),
            ..Default::default()
        };
        let plan = RetentionPlan::compute(&src, &snaps, &pol, &Utc);
        assert_eq!(
            plan.to_string(),
            "Retention for u@h:/data: latest 1, hourly (none), daily 2, weekly (none), monthly (none), annual (none)
  keep    2024-05-04 10:00:00 UTC  a1  pins: legal
  keep    2024-05-05 10:00:00 UTC  b2  daily-2
  delete  2024-05-06 10:00:00 UTC  c3
  keep    2024-05-06 11:00:00 UTC  d4  latest-1,daily-1
3 kept, 1 to delete"
        );
        let ids: Vec<&str> = plan.expired().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["c3"]);
    }
}
