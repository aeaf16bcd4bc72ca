//! Navigating snapshot trees: resolving `ID/sub/path`, validating entry names from
//! (possibly hostile) directory listings, and walking trees.

use arkiv_format::ids::ObjectId;
use arkiv_format::snapshot::{DirEntry, DirManifest, EntryType};

use crate::repo::{Repository, Snapshot};
use crate::{Error, Result};

/// Checks that a name from a directory listing is a single, safe path component.
pub fn validate_entry_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::Corrupt(format!(
            "refusing hostile directory entry name {name:?} (empty, '.', '..', '/' or NUL)"
        )));
    }
    Ok(())
}

/// Checks every name of a listing and refuses duplicates (a listing with `a` as both a
/// symlink and a directory could otherwise redirect writes outside the target).
pub fn validate_listing(dir: &DirManifest) -> Result<()> {
    let mut names: Vec<&str> = dir.entries.iter().map(|e| e.name.as_str()).collect();
    for n in &names {
        validate_entry_name(n)?;
    }
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w.first() == w.get(1)) {
        return Err(Error::Corrupt(format!(
            "refusing hostile directory listing: duplicate entry {:?}",
            w.first().copied().unwrap_or_default()
        )));
    }
    Ok(())
}

/// The directory objects from a snapshot root down to the directory being walked: a
/// persistent list (children share their parents' nodes), so walks that keep many pending
/// directories pay one node per directory.
///
/// A hostile or damaged repository can hold a listing whose entry points to the listing
/// itself or to one of its ancestors; walking it would never end (or nest directories until
/// the path is too long). Every tree walk (ls, restore, verify, the previous-tree lookups of
/// a backup, GC mark) descends through [`Ancestors::descend`], which names the cycle instead.
#[derive(Debug, Default, Clone)]
pub struct Ancestors(Option<std::sync::Arc<AncestorNode>>);

#[derive(Debug)]
struct AncestorNode {
    object: ObjectId,
    parent: Ancestors,
}

impl Ancestors {
    /// Whether `object` is one of these directories.
    pub fn contains(&self, object: &ObjectId) -> bool {
        let mut cur = &self.0;
        while let Some(n) = cur {
            if n.object == *object {
                return true;
            }
            cur = &n.parent.0;
        }
        false
    }

    /// The list one level down, into directory `object` (shown to users as `path`); a
    /// `Corrupt` error when `object` is already an ancestor.
    pub fn descend(&self, object: &ObjectId, path: &str) -> Result<Ancestors> {
        if self.contains(object) {
            return Err(Error::Corrupt(format!(
                "directory cycle: {path} (directory object {object}) is its own ancestor"
            )));
        }
        Ok(Ancestors(Some(std::sync::Arc::new(AncestorNode {
            object: *object,
            parent: self.clone(),
        }))))
    }
}

/// Resolves `sub/path` below a root entry.
pub async fn resolve_path(repo: &Repository, root: &DirEntry, sub: &str) -> Result<DirEntry> {
    let mut cur = root.clone();
    for comp in sub.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if cur.entry_type != EntryType::Directory {
            return Err(Error::NotFound(format!(
                "{sub}: {} is not a directory",
                cur.name
            )));
        }
        let dir = repo.read_dir(&cur.object).await?;
        cur = dir
            .entries
            .into_iter()
            .find(|e| e.name == comp)
            .ok_or_else(|| Error::NotFound(format!("{sub}: no entry named {comp:?}")))?;
    }
    Ok(cur)
}

/// Finds a snapshot by manifest ID (or unique prefix of at least 8 characters).
pub fn find_snapshot<'a>(snapshots: &'a [Snapshot], id: &str) -> Result<&'a Snapshot> {
    if let Some(s) = snapshots.iter().find(|s| s.id.as_str() == id) {
        return Ok(s);
    }
    let matches: Vec<&Snapshot> = if id.len() >= 8 {
        snapshots
            .iter()
            .filter(|s| s.id.as_str().starts_with(id))
            .collect()
    } else {
        Vec::new()
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::NotFound(format!("snapshot {id} not found"))),
        _ => Err(Error::Config(format!(
            "snapshot ID prefix {id} is ambiguous"
        ))),
    }
}

/// Splits `ID[/sub/path]` into the ID and the sub path.
pub fn split_spec(spec: &str) -> (&str, &str) {
    match spec.split_once('/') {
        Some((id, rest)) => (id, rest),
        None => (spec, ""),
    }
}

/// A synthetic directory entry for a bare object ID (for `ls <OBJECT-ID>`).
pub fn entry_for_object(oid: ObjectId, is_dir: bool) -> DirEntry {
    DirEntry {
        name: String::new(),
        entry_type: if is_dir {
            EntryType::Directory
        } else {
            EntryType::File
        },
        object: oid,
        ..DirEntry::default()
    }
}
