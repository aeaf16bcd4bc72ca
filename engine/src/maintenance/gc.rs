//! Snapshot GC (kopia `snapshot/snapshotgc/gc.go`, FORMAT.md §14.3).
//!
//! Roots are the live snapshot manifests only. Every directory listing and chunk list of every
//! snapshot is walked (each object once) to collect the reachable content IDs — `Copy` IDs in
//! a hash set, no strings. Then every winning index entry, deleted ones included, is judged:
//! * `m`-prefixed (manifest) contents are never collected;
//! * reachable and deleted → undelete (kopia rewrites the data into a new pack, live, with a
//!   newer timestamp: `UndeleteContent`);
//! * unreachable, live and at least `min_content_age_subject_to_gc` old (index timestamp vs
//!   maintenance start) → mark deleted.
//!
//! The walk fails on any unreadable directory or chunk list: a partial walk would mark live
//! data deleted.

use std::collections::HashSet;

use arkiv_format::ids::{ContentId, ObjectId};
use arkiv_format::index::Info;
use arkiv_format::indirect::IndirectObject;
use arkiv_format::snapshot::EntryType;
use chrono::{DateTime, Utc};

use crate::repo::Repository;
use crate::snapshot::tree::Ancestors;
use crate::{Error, Result};

/// What the walk found.
#[derive(Debug, Default)]
pub struct Reachable {
    /// Reachable content IDs.
    pub contents: HashSet<ContentId>,
    /// Snapshots walked.
    pub snapshots: usize,
    /// Directories read.
    pub dirs: usize,
}

async fn add_object(
    repo: &Repository,
    oid: ObjectId,
    seen_indirect: &mut HashSet<ObjectId>,
    out: &mut HashSet<ContentId>,
) -> Result<()> {
    if oid.is_empty() {
        return Ok(());
    }
    let Some(list_oid) = oid.index_object() else {
        out.insert(oid.content_id());
        return Ok(());
    };
    if !seen_indirect.insert(oid) {
        return Ok(());
    }
    Box::pin(add_object(repo, list_oid, seen_indirect, out)).await?;
    let bytes = repo.read_object(&list_oid).await?;
    let list = IndirectObject::parse(&bytes)
        .map_err(|e| Error::format(format!("indirect object {oid}"), e))?;
    for e in list.entries {
        Box::pin(add_object(repo, e.object, seen_indirect, out)).await?;
    }
    Ok(())
}

/// Collects every content reachable from a live snapshot manifest.
pub async fn find_reachable(repo: &Repository) -> Result<Reachable> {
    let mut r = Reachable::default();
    let mut seen_dirs: HashSet<ObjectId> = HashSet::new();
    let mut seen_indirect: HashSet<ObjectId> = HashSet::new();
    for snap in repo.snapshots().await? {
        r.snapshots += 1;
        let Some(root) = snap.manifest.root_entry.clone() else {
            continue;
        };
        let mut stack = vec![(root, Ancestors::default())];
        while let Some((entry, parents)) = stack.pop() {
            if entry.entry_type == EntryType::Directory {
                // Before the seen-set: a cycle leads back to a directory already seen.
                let ancestors = parents
                    .descend(&entry.object, &format!("{}/{}", snap.id, entry.name))
                    .map_err(|e| {
                        Error::Corrupt(format!(
                            "snapshot GC: {e}; refusing to collect garbage from a damaged tree"
                        ))
                    })?;
                if !seen_dirs.insert(entry.object) {
                    continue;
                }
                add_object(repo, entry.object, &mut seen_indirect, &mut r.contents).await?;
                let dir = repo.read_dir(&entry.object).await.map_err(|e| {
                    Error::Corrupt(format!(
                        "snapshot GC: directory {} of snapshot {} is unreadable ({e}); refusing to collect garbage from a partial walk",
                        entry.object, snap.id
                    ))
                })?;
                r.dirs += 1;
                stack.extend(dir.entries.into_iter().map(|e| (e, ancestors.clone())));
            } else {
                add_object(repo, entry.object, &mut seen_indirect, &mut r.contents).await?;
            }
        }
    }
    Ok(r)
}

/// The GC decision for one winning index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcDecision {
    /// Leave as is.
    Keep,
    /// Unreachable and old enough: mark deleted.
    MarkDeleted,
    /// Unreachable but younger than the minimum age: kept this time.
    TooYoung,
    /// Reachable but deleted: undelete.
    Undelete,
}

/// Judges one entry (pure).
pub fn decide(
    info: &Info,
    reachable: &HashSet<ContentId>,
    start: DateTime<Utc>,
    min_age_secs: i64,
) -> GcDecision {
    if info.content_id.prefix() == Some(b'm') {
        return GcDecision::Keep;
    }
    let is_reachable = reachable.contains(&info.content_id);
    match (is_reachable, info.deleted) {
        (true, true) => GcDecision::Undelete,
        (false, false) => {
            if start.timestamp() - info.timestamp_seconds >= min_age_secs {
                GcDecision::MarkDeleted
            } else {
                GcDecision::TooYoung
            }
        }
        _ => GcDecision::Keep,
    }
}

/// The computed GC step.
#[derive(Debug, Default, Clone)]
pub struct GcPlan {
    /// Snapshots used as roots.
    pub snapshots: usize,
    /// Reachable contents.
    pub reachable: usize,
    /// Contents to mark deleted.
    pub mark_deleted: Vec<ContentId>,
    /// Their packed bytes.
    pub mark_deleted_bytes: u64,
    /// Contents to undelete.
    pub undelete: Vec<ContentId>,
    /// Unreachable contents kept because they are too young.
    pub too_young: u64,
    /// Their packed bytes.
    pub too_young_bytes: u64,
}

/// Plans GC over the repository's current index.
pub fn plan_gc(
    repo: &Repository,
    reachable: &Reachable,
    start: DateTime<Utc>,
    min_age_secs: i64,
) -> Result<GcPlan> {
    let mut plan = GcPlan {
        snapshots: reachable.snapshots,
        reachable: reachable.contents.len(),
        ..GcPlan::default()
    };
    for info in repo.indexes().iter(true) {
        let info = info?;
        match decide(&info, &reachable.contents, start, min_age_secs) {
            GcDecision::Keep => {}
            GcDecision::MarkDeleted => {
                plan.mark_deleted.push(info.content_id);
                plan.mark_deleted_bytes += u64::from(info.packed_length);
            }
            GcDecision::TooYoung => {
                plan.too_young += 1;
                plan.too_young_bytes += u64::from(info.packed_length);
            }
            GcDecision::Undelete => plan.undelete.push(info.content_id),
        }
    }
    Ok(plan)
}
