//! Repository verification: index ↔ packs, every snapshot tree, and a share of file data.
//!
//! Problems are collected (not fatal) so one run reports all of them; the caller decides
//! the exit code from the count.

use std::collections::{HashMap, HashSet};

use arkiv_format::ids::{BlobId, ContentId, ObjectId};
use arkiv_format::snapshot::{DirEntry, EntryType};
use futures::StreamExt;

use crate::content::recover::RecoverScope;
use crate::repo::Repository;
use crate::snapshot::tree::{Ancestors, validate_listing};
use crate::{Error, Result};

/// Knobs of a verification.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Share of file contents (0–100) downloaded and hash-checked.
    pub verify_files_percent: f64,
    /// Contents read concurrently.
    pub parallel: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            verify_files_percent: 0.0,
            parallel: 8,
        }
    }
}

/// What a verification found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// Live index entries checked against pack blobs.
    pub index_entries: u64,
    /// Pack blobs present.
    pub packs: u64,
    /// Unreferenced packs holding contents no index blob lists (lost index blobs).
    pub orphan_packs: u64,
    /// Manifest contents (`m…`) in those packs: snapshots and policies no index lists.
    pub orphan_manifests: u64,
    /// Index blobs the epoch manager implies but cannot find, one sentence each.
    pub missing_index_blobs: Vec<String>,
    /// Snapshots walked.
    pub snapshots: u64,
    /// Directories read.
    pub dirs: u64,
    /// Files (and symlinks) whose object structure was resolved.
    pub files: u64,
    /// File contents downloaded and hash-checked.
    pub contents_read: u64,
    /// Bytes of those contents.
    pub bytes_read: u64,
    /// One line per problem.
    pub problems: Vec<String>,
    /// How many of `problems` are data arkiv cannot read rather than damage (e.g. a content
    /// whose compression header is no kopia compressor): exit 6, not "corrupt data".
    pub unsupported: u64,
}

/// Whether a content falls into the sampled share (stable across runs).
fn selected(id: &ContentId, percent: f64) -> bool {
    if percent >= 100.0 {
        return true;
    }
    if percent <= 0.0 {
        return false;
    }
    let h = id.hash();
    let v = h
        .iter()
        .take(4)
        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    f64::from(v % 10_000) < percent * 100.0
}

/// Verifies the repository.
pub async fn verify(repo: &Repository, opts: &VerifyOptions) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    // Read what the repository holds (not the local cache's copies of metadata packs), and
    // re-hash every content read.
    let repo = &repo.for_verification();

    // 1. Every live index entry points into an existing pack, within its length.
    let mut packs: HashMap<BlobId, u64> = HashMap::new();
    for prefix in ["p", "q"] {
        for m in repo.storage().list(prefix).await? {
            packs.insert(m.id, m.length);
        }
    }
    report.packs = packs.len() as u64;
    for info in repo.indexes().iter(false) {
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                report.problems.push(format!("index: {e}"));
                break;
            }
        };
        report.index_entries += 1;
        match packs.get(&info.pack_blob_id) {
            None => report.problems.push(format!(
                "content {} points to missing pack blob {}",
                info.content_id, info.pack_blob_id
            )),
            Some(&len) => {
                let end = u64::from(info.pack_offset) + u64::from(info.packed_length);
                if end > len {
                    report.problems.push(format!(
                        "content {} extends to byte {end} of pack {} which has {len} bytes (truncated pack)",
                        info.content_id, info.pack_blob_id
                    ));
                }
            }
        }
    }

    // 1b. What is missing rather than broken. Index blobs the epoch manager implies but
    // cannot find (a closed epoch without any, a set short of members)…
    if repo.config().epoch_parameters.enabled {
        let state = crate::maintenance::compaction::epoch_state(repo).await?;
        report.missing_index_blobs = state.missing_index_blobs();
        report.problems.extend(report.missing_index_blobs.clone());
    }
    // …and packs that no index entry names but whose local index holds contents no index
    // blob lists (a lost index blob: their snapshots would vanish silently). Manifest
    // contents among them are named: they are the snapshots and policies nothing refers to.
    let recover = crate::content::recover::find_unindexed(repo, &RecoverScope::default()).await?;
    report.orphan_packs = recover.unindexed.len() as u64;
    for (pack, entries) in &recover.unindexed {
        let manifests: Vec<String> = entries
            .iter()
            .filter(|i| i.content_id.prefix() == Some(b'm'))
            .map(|i| i.content_id.to_string())
            .collect();
        report.orphan_manifests += manifests.len() as u64;
        let named = if manifests.is_empty() {
            String::new()
        } else {
            format!(" (manifest contents {})", manifests.join(", "))
        };
        report.problems.push(format!(
            "pack blob {pack} holds {} content(s){named} that no index blob lists: an index blob is missing; run `arkiv index recover`",
            entries.len()
        ));
    }
    for (pack, why) in &recover.unreadable {
        report.problems.push(format!(
            "unreferenced pack blob {pack} is unreadable: {why}"
        ));
    }

    // 2. Every snapshot tree is readable; collect file contents to sample.
    let snapshots = match repo.snapshots().await {
        Ok(s) => s,
        Err(e) => {
            report.problems.push(format!("manifests: {e}"));
            Vec::new()
        }
    };
    let mut seen_dirs: HashSet<ObjectId> = HashSet::new();
    let mut seen_files: HashSet<ObjectId> = HashSet::new();
    let mut to_read: Vec<(ObjectId, crate::repo::Chunk)> = Vec::new();
    let mut seen_contents: HashSet<ContentId> = HashSet::new();
    for snap in &snapshots {
        report.snapshots += 1;
        let Some(root) = snap.manifest.root_entry.clone() else {
            report
                .problems
                .push(format!("snapshot {} has no root entry", snap.id));
            continue;
        };
        let mut stack: Vec<(String, DirEntry, Ancestors)> =
            vec![(snap.id.to_string(), root, Ancestors::default())];
        while let Some((path, entry, parents)) = stack.pop() {
            match entry.entry_type {
                EntryType::Directory => {
                    // Before the seen-set: a cycle leads back to a directory already seen.
                    let ancestors = match parents.descend(&entry.object, &path) {
                        Ok(a) => a,
                        Err(e) => {
                            report.problems.push(e.to_string());
                            continue;
                        }
                    };
                    if !seen_dirs.insert(entry.object) {
                        continue;
                    }
                    report.dirs += 1;
                    match repo.read_dir(&entry.object).await {
                        Ok(dir) => {
                            if let Err(e) = validate_listing(&dir) {
                                report.problems.push(format!("{path}: {e}"));
                            }
                            for child in dir.entries {
                                stack.push((
                                    format!("{path}/{}", child.name),
                                    child,
                                    ancestors.clone(),
                                ));
                            }
                        }
                        Err(e) => report.problem(format!("{path}: {e}"), &e),
                    }
                }
                EntryType::File | EntryType::Symlink => {
                    if !seen_files.insert(entry.object) {
                        continue;
                    }
                    report.files += 1;
                    match repo.object_chunks(&entry.object).await {
                        Ok(chunks) => {
                            for c in chunks {
                                let cid = c.object.content_id();
                                match repo.content_info(&cid) {
                                    Ok(Some(info)) if info.deleted => report
                                        .problems
                                        .push(format!("{path}: content {cid} is marked deleted")),
                                    Ok(Some(_)) => {}
                                    Ok(None) => report
                                        .problems
                                        .push(format!("{path}: content {cid} not found in index")),
                                    Err(e) => report.problems.push(format!("{path}: {e}")),
                                }
                                if selected(&cid, opts.verify_files_percent)
                                    && seen_contents.insert(cid)
                                {
                                    to_read.push((entry.object, c));
                                }
                            }
                        }
                        Err(e) => report.problems.push(format!("{path}: {e}")),
                    }
                }
                _ => {}
            }
        }
    }

    // 3. Download and hash-check the sampled file contents.
    let results: Vec<(ObjectId, Result<usize>)> = futures::stream::iter(to_read)
        .map(|(oid, chunk)| async move {
            let r = repo.read_chunk(&chunk).await.map(|d| d.len());
            (oid, r)
        })
        .buffer_unordered(opts.parallel.max(1))
        .collect()
        .await;
    for (oid, r) in results {
        match r {
            Ok(n) => {
                report.contents_read += 1;
                report.bytes_read += n as u64;
            }
            Err(e) => report.problem(format!("object {oid}: {e}"), &e),
        }
    }
    Ok(report)
}

impl VerifyReport {
    /// Records a problem line caused by `e`, counting what is unsupported rather than corrupt.
    fn problem(&mut self, line: String, e: &Error) {
        if e.kind() == crate::ErrorKind::Unsupported {
            self.unsupported += 1;
        }
        self.problems.push(line);
    }

    /// Turns a report with problems into an error carrying the count and the first one:
    /// `Unsupported` when every problem is something arkiv cannot read (such as an unknown
    /// compressor), `Corrupt` otherwise.
    pub fn into_result(self) -> Result<VerifyReport> {
        let Some(first) = self.problems.first() else {
            return Ok(self);
        };
        let msg = format!(
            "verification found {} problem(s); first: {first}",
            self.problems.len()
        );
        if self.unsupported == self.problems.len() as u64 {
            Err(Error::Unsupported(msg))
        } else {
            Err(Error::Corrupt(msg))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn unknown_compressor_is_unsupported_not_corrupt() {
        // A content whose compression header is no kopia compressor (0x7700).
        let e = arkiv_format::compression::decompress(&[0, 0, 0x77, 0, 1], Some(0x7700), 10)
            .unwrap_err();
        let unknown = Error::format("content c in pack p", e);
        let mut r = VerifyReport::default();
        r.problem(format!("object o: {unknown}"), &unknown);
        assert!(
            r.problems[0].contains("unsupported compression: header 00007700"),
            "{}",
            r.problems[0]
        );
        assert!(matches!(
            r.clone().into_result(),
            Err(Error::Unsupported(_))
        ));
        let bad = Error::Corrupt("checksum".into());
        r.problem("x: corrupt".into(), &bad);
        assert_eq!(r.unsupported, 1);
        assert!(matches!(r.into_result(), Err(Error::Corrupt(_))));
    }
}
