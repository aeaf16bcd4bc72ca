//! Index recovery from the packs' own local indexes (kopia `index recover`,
//! `repo/content/content_index_recovery.go`).
//!
//! Every pack ends in an encrypted copy of the index entries of the contents it holds
//! (FORMAT.md §7, [`arkiv_format::pack`]). When an index blob is lost, its contents are still
//! in their packs but no index blob lists them: snapshots vanish from `snapshot list`, and
//! maintenance would see their packs as unreferenced. This module
//! * reads a pack's local index ([`read_pack_index`]);
//! * finds the contents packs hold that no index blob lists at all, live, deleted or hidden
//!   by the deletion watermark ([`find_unindexed`]);
//! * writes them back as one new index blob ([`commit`]), with the timestamps the packs
//!   recorded, so GC judges them as it would have.
//!
//! Packs of a writer whose session marker still exists are a writer's own (running, or killed
//! before it wrote its index): their contents are left to that writer and to maintenance's
//! session rules, not reported as damage.

use std::collections::{BTreeMap, HashSet};

use arkiv_format::ids::BlobId;
use arkiv_format::index::{IndexReader, Info};
use arkiv_format::pack::{POSTAMBLE_SEARCH_LEN, Postamble};
use futures::StreamExt;

use super::writer::ContentWriter;
use super::{ContentReader, IndexSet};
use crate::blob::BlobMetadata;
use crate::repo::Repository;
use crate::{Error, ErrorKind, Result, cpu};

/// The index entries of one pack's local index, each pointing at `pack`.
///
/// Every failure (empty or short pack, bad postamble, a local index range past the end,
/// failed decryption) is a `Corrupt` error naming the pack.
pub async fn read_pack_index(reader: &ContentReader, pack: &BlobMetadata) -> Result<Vec<Info>> {
    let storage = reader.storage();
    let id = &pack.id;
    let named = |what: &str| Error::Corrupt(format!("pack blob {id}: {what}"));
    if pack.length == 0 {
        return Err(named("empty blob (no local index)"));
    }
    let tail_start = pack.length.saturating_sub(POSTAMBLE_SEARCH_LEN as u64);
    let tail = storage.get(id, Some(tail_start..pack.length)).await?;
    let post = Postamble::parse_from_tail(&tail)
        .map_err(|e| Error::format(format!("pack blob {id}"), e))?;
    let range = post.local_index_range();
    if range.end > pack.length || range.is_empty() {
        return Err(named(&format!(
            "local index {}..{} lies outside the blob ({} bytes)",
            range.start, range.end, pack.length
        )));
    }
    // Usually the local index lies within the tail already read (one request per pack, as
    // kopia's recovery reads only the last few KB).
    let encrypted = if range.start >= tail_start {
        let from = usize::try_from(range.start - tail_start).unwrap_or(usize::MAX);
        let to = usize::try_from(range.end - tail_start).unwrap_or(usize::MAX);
        match tail.get(from..to) {
            Some(_) => tail.slice(from..to),
            None => storage.get(id, Some(range)).await?,
        }
    } else {
        storage.get(id, Some(range)).await?
    };
    let cipher = reader.cipher().clone();
    let id = id.clone();
    cpu::run(move || {
        let plain = cipher
            .decrypt(&post.local_index_iv, &encrypted)
            .map_err(|e| Error::format(format!("local index of pack blob {id}"), e))?;
        let idx = IndexReader::parse(plain)
            .map_err(|e| Error::format(format!("local index of pack blob {id}"), e))?;
        idx.iter()
            .map(|i| {
                let mut i =
                    i.map_err(|e| Error::format(format!("local index of pack blob {id}"), e))?;
                i.pack_blob_id = id.clone();
                Ok(i)
            })
            .collect()
    })
    .await
}

/// What [`find_unindexed`] found.
#[derive(Debug, Default, Clone)]
pub struct RecoverPlan {
    /// Packs whose local index was read.
    pub packs_scanned: u64,
    /// Packs skipped because their writer's session marker exists.
    pub packs_in_sessions: u64,
    /// Packs whose local index could not be read, with why.
    pub unreadable: Vec<(BlobId, String)>,
    /// Per pack: the entries no index blob lists.
    pub unindexed: BTreeMap<BlobId, Vec<Info>>,
}

impl RecoverPlan {
    /// Entries to write back.
    pub fn entries(&self) -> usize {
        self.unindexed.values().map(Vec::len).sum()
    }

    /// Of them, manifest (`m`) contents: lost snapshots and policies.
    pub fn manifests(&self) -> usize {
        self.unindexed
            .values()
            .flatten()
            .filter(|i| i.content_id.prefix() == Some(b'm'))
            .count()
    }
}

/// The session ID in a blob name (`p<hash>-s<id>[-c<n>]`): the first `-`-separated part after
/// the first that starts with `s` (kopia's `SessionIDFromBlobID`).
pub fn session_of(blob: &str) -> Option<&str> {
    blob.split('-').skip(1).find(|p| p.starts_with('s'))
}

/// Session IDs that have a marker blob (`s<hash>-<session>`).
pub async fn sessions_with_markers(repo: &Repository) -> Result<HashSet<String>> {
    Ok(repo
        .storage()
        .list("s")
        .await?
        .iter()
        .filter_map(|m| session_of(m.id.as_str()).map(str::to_owned))
        .collect())
}

/// The entries of `pack`'s local index that no index blob of `index` lists (empty when the
/// index knows them all).
pub async fn unindexed_in_pack(
    reader: &ContentReader,
    index: &IndexSet,
    pack: &BlobMetadata,
) -> Result<Vec<Info>> {
    let entries = read_pack_index(reader, pack).await?;
    let mut out = Vec::new();
    for e in entries {
        if !index.knows(&e.content_id)? {
            out.push(e);
        }
    }
    Ok(out)
}

/// Which packs [`find_unindexed`] reads.
#[derive(Debug, Default, Clone)]
pub struct RecoverScope {
    /// Read these packs only (kopia `--blobs`); empty: every pack with one of `prefixes`.
    pub blobs: Vec<BlobId>,
    /// Pack prefixes to list (kopia `--blob-prefixes`); empty: `p` and `q`.
    pub prefixes: Vec<String>,
    /// Also read packs some index entry names (kopia reads every pack; by default only
    /// packs no index entry names are read, since an index blob lists a session's packs
    /// whole and a lost one leaves every pack it described unreferenced).
    pub all_packs: bool,
}

/// How many local indexes are read at once (each is one or two small ranged reads).
const PARALLEL_READS: usize = 8;

/// Scans packs for contents the current index does not list (see [`RecoverScope`]). Packs of
/// writers whose session marker exists are skipped (counted in `packs_in_sessions`) unless
/// named in `scope.blobs`.
pub async fn find_unindexed(repo: &Repository, scope: &RecoverScope) -> Result<RecoverPlan> {
    let mut referenced: HashSet<BlobId> = HashSet::new();
    if !scope.all_packs && scope.blobs.is_empty() {
        for info in repo.indexes().iter(true) {
            referenced.insert(info?.pack_blob_id);
        }
    }
    // Packs first, markers after: a writer writes its marker before its first pack and
    // deletes it only after its index blob, so a listed pack's writer is either still seen
    // in the marker listing or its index blob exists (checked on a refreshed index below).
    let mut listed: Vec<BlobMetadata> = Vec::new();
    if scope.blobs.is_empty() {
        let prefixes: Vec<&str> = if scope.prefixes.is_empty() {
            vec!["p", "q"]
        } else {
            scope.prefixes.iter().map(String::as_str).collect()
        };
        for prefix in prefixes {
            listed.extend(
                repo.storage()
                    .list(prefix)
                    .await?
                    .into_iter()
                    .filter(|m| !referenced.contains(&m.id)),
            );
        }
    } else {
        for id in &scope.blobs {
            listed.push(repo.storage().get_metadata(id).await?);
        }
    }
    let sessions = sessions_with_markers(repo).await?;
    let mut plan = RecoverPlan::default();
    let mut todo: Vec<BlobMetadata> = Vec::new();
    for m in listed {
        let live = session_of(m.id.as_str()).is_some_and(|s| sessions.contains(s));
        if live && scope.blobs.is_empty() {
            plan.packs_in_sessions += 1;
        } else {
            todo.push(m);
        }
    }
    let (reader, index) = (repo.content_reader(), repo.indexes());
    let mut results = futures::stream::iter(todo)
        .map(|m| async move {
            let r = unindexed_in_pack(reader, index, &m).await;
            (m.id, r)
        })
        .buffer_unordered(PARALLEL_READS);
    while let Some((id, r)) = results.next().await {
        plan.packs_scanned += 1;
        match r {
            Ok(v) if v.is_empty() => {}
            Ok(v) => {
                plan.unindexed.insert(id, v);
            }
            Err(e) if e.kind() == ErrorKind::Corrupt => plan.unreadable.push((id, e.to_string())),
            // Deleted since it was listed (a maintenance running alongside): nothing to recover.
            Err(e) if e.kind() == ErrorKind::NotFound && scope.blobs.is_empty() => {}
            Err(e) => return Err(e),
        }
    }
    plan.unreadable.sort();
    if !plan.unindexed.is_empty() {
        // Suspicious: re-check on an index that includes blobs written since `repo` loaded
        // (a writer that finished while we listed).
        let mut fresh = repo.clone();
        fresh.refresh().await?;
        for entries in plan.unindexed.values_mut() {
            let mut keep = Vec::with_capacity(entries.len());
            for e in entries.drain(..) {
                if !fresh.indexes().knows(&e.content_id)? {
                    keep.push(e);
                }
            }
            *entries = keep;
        }
        plan.unindexed.retain(|_, v| !v.is_empty());
    }
    Ok(plan)
}

/// Writes the plan's entries as one new index blob of the current write epoch (through a
/// content-writer session, so the blob is named and placed as every index blob is) and
/// returns its ID (`None` when there is nothing to write).
pub async fn commit(repo: &Repository, plan: &RecoverPlan) -> Result<Option<BlobId>> {
    let entries: Vec<Info> = plan.unindexed.values().flatten().cloned().collect();
    if entries.is_empty() {
        return Ok(None);
    }
    let cw = ContentWriter::new(
        repo.clone(),
        tokio::runtime::Handle::current(),
        "arkiv",
        "index-recover",
    )?;
    cw.add_recovered_entries(entries);
    cw.flush_async().await
}
