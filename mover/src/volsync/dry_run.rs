//! Restore dry-run (`KOPIA_MANUAL_CONFIG.arkiv.restoreDryRun`, `ARKIV_RESTORE_DRY_RUN`): a
//! ReplicationDestination prints which snapshot the selection (`KOPIA_PREVIOUS`,
//! `KOPIA_RESTORE_AS_OF`, else the newest) would restore and what the restore would delete or
//! replace in `DATA_DIR`, and changes nothing there.
//!
//! The comparison follows the restore's rules (`arkiv_engine::snapshot::restore`): with
//! `KOPIA_ENABLE_FILE_DELETION`, entries the snapshot does not have are deleted (never
//! `lost+found` at the top); an entry whose type differs (a directory where the snapshot has
//! a file, or the reverse) is replaced with deletion on, and makes the restore fail without
//! it. Files present on both sides are overwritten; they are counted, not listed.

use std::collections::BTreeMap;
use std::path::Path;

use arkiv_engine::Repository;
use arkiv_engine::snapshot::tree::Ancestors;
use arkiv_format::ids::ObjectId;
use arkiv_format::snapshot::EntryType;

use super::{Failure, LOST_FOUND};

/// How many paths of each kind are printed (the rest are counted).
const MAX_LISTED: usize = 50;

/// What a restore would do to the target.
#[derive(Debug, Default)]
pub struct DryRunPlan {
    /// Paths (relative to `DATA_DIR`) the restore would delete.
    pub deleted: Vec<String>,
    /// Paths whose type differs from the snapshot's (replaced with deletion on).
    pub conflicts: Vec<String>,
    /// Entries of the snapshot already in the target (overwritten with the snapshot's).
    pub overwritten: u64,
    /// Entries of the snapshot not yet in the target.
    pub created: u64,
}

/// Compares the snapshot tree under `root` with `target`, reading both and writing nothing.
pub async fn plan(
    repo: &Repository,
    root: &ObjectId,
    target: &Path,
    delete_extra: bool,
) -> Result<DryRunPlan, Failure> {
    let mut out = DryRunPlan::default();
    // Every directory carries its ancestors: a damaged tree whose listing names itself or
    // a parent is a named corrupt-data failure, not an endless walk.
    let mut stack = vec![(*root, String::new(), Ancestors::default())];
    while let Some((oid, rel, parents)) = stack.pop() {
        let ancestors = parents
            .descend(&oid, if rel.is_empty() { "." } else { &rel })
            .map_err(|e| Failure::engine("reading the snapshot", &e))?;
        let listing = repo
            .read_dir(&oid)
            .await
            .map_err(|e| Failure::engine("reading the snapshot", &e))?;
        let dir = target.join(&rel);
        let mut local: BTreeMap<String, bool> = BTreeMap::new();
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                    local.insert(e.file_name().to_string_lossy().into_owned(), is_dir);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Failure::new(format!("cannot read {}: {e}", dir.display())));
            }
        }
        for entry in &listing.entries {
            let path = join(&rel, &entry.name);
            let snap_dir = entry.entry_type == EntryType::Directory;
            match local.remove(&entry.name) {
                None => out.created += 1,
                Some(local_dir) if local_dir != snap_dir => out.conflicts.push(path.clone()),
                Some(_) => out.overwritten += 1,
            }
            if snap_dir {
                stack.push((entry.object, path, ancestors.clone()));
            }
        }
        if delete_extra {
            for name in local.into_keys() {
                if rel.is_empty() && name == LOST_FOUND {
                    continue;
                }
                out.deleted.push(join(&rel, &name));
            }
        }
    }
    out.deleted.sort();
    out.conflicts.sort();
    Ok(out)
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

impl DryRunPlan {
    /// The `INFO:` lines a dry run prints.
    pub fn lines(&self, delete_extra: bool) -> Vec<String> {
        let mut out = vec![format!(
            "DRY RUN: would write {} new and overwrite {} existing entr(ies); would delete {} \
             path(s){}",
            self.created,
            self.overwritten,
            self.deleted.len(),
            if delete_extra {
                ""
            } else {
                " (KOPIA_ENABLE_FILE_DELETION is off: nothing is deleted)"
            }
        )];
        for p in self.deleted.iter().take(MAX_LISTED) {
            out.push(format!("DRY RUN: would delete {p}"));
        }
        if self.deleted.len() > MAX_LISTED {
            out.push(format!(
                "DRY RUN: … and {} more to delete",
                self.deleted.len() - MAX_LISTED
            ));
        }
        for p in self.conflicts.iter().take(MAX_LISTED) {
            out.push(if delete_extra {
                format!("DRY RUN: would replace {p} (its type differs from the snapshot's)")
            } else {
                format!(
                    "DRY RUN: the restore would FAIL at {p}: its type differs from the \
                     snapshot's and KOPIA_ENABLE_FILE_DELETION is off"
                )
            });
        }
        out
    }
}
