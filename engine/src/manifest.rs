//! Writing manifests: pending entries are batched into one gzip'd `m` content per commit,
//! exactly as kopia's manifest manager does on flush (FORMAT.md §11.1), and kopia's automatic
//! compaction of many manifest contents into one ([`compact_into`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use arkiv_format::compression::CompressionAlgorithm;
use arkiv_format::ids::{ContentId, ManifestId};
use arkiv_format::manifest::{self, ManifestEntry};
use chrono::{DateTime, Utc};

use crate::content::writer::ContentWriter;
use crate::repo::Repository;
use crate::{Error, Result, cpu};

/// Live manifest contents at which a writer folds them all into one: kopia's
/// `autoCompactionContentCountDefault` (`repo/manifest/manifest_manager.go`). Kopia checks it
/// whenever a writable session loads its manifests; without it every snapshot adds a
/// manifest content of its own, and listing snapshots on an empty cache costs one request
/// per snapshot.
pub const AUTO_COMPACTION_CONTENTS: usize = 16;

/// Kopia's manifest auto-compaction for a writer about to commit `batch`
/// (`committedManifestManager.maybeCompactLocked` / `compactLocked`): when `repo`'s index
/// lists at least [`AUTO_COMPACTION_CONTENTS`] live manifest contents, every live manifest
/// (tombstones dropped, as kopia drops them) joins `batch`, so its commit writes them all as
/// one content. Returns the contents it replaces: pass them to [`retire`] after the commit,
/// so that the same index flush carries the new content and their deletions. One index view
/// compacts once (it does not see what its writers wrote; the next open does). Another
/// writer's contents that this handle never saw are left alone; two writers compacting at
/// once write the same entries twice, which merge by ID on read.
pub async fn compact_into(
    repo: &Repository,
    batch: &mut ManifestBatch,
) -> Result<Vec<arkiv_format::index::Info>> {
    let contents = repo.manifest_contents()?;
    if contents.len() < AUTO_COMPACTION_CONTENTS || !repo.claim_manifest_compaction() {
        return Ok(Vec::new());
    }
    let live = repo.manifests_in(&contents).await?;
    tracing::debug!(
        contents = contents.len(),
        manifests = live.len(),
        "compacting manifest contents"
    );
    batch.entries.extend(live.into_values());
    Ok(contents)
}

/// Marks the manifest contents [`compact_into`] replaced as deleted (after the batch holding
/// their entries was committed).
pub fn retire(cw: &ContentWriter, replaced: &[arkiv_format::index::Info]) -> Result<()> {
    for info in replaced {
        cw.mark_deleted(info)?;
    }
    Ok(())
}

/// Manifests waiting to be written.
#[derive(Debug, Default)]
pub struct ManifestBatch {
    entries: Vec<ManifestEntry>,
}

impl ManifestBatch {
    /// Adds a manifest with a fresh random ID; returns the ID.
    pub fn put(
        &mut self,
        labels: BTreeMap<String, String>,
        payload_json: &[u8],
        modified: DateTime<Utc>,
    ) -> Result<ManifestId> {
        if !labels.contains_key(manifest::TYPE_LABEL) {
            return Err(Error::Config("manifest without a type label".into()));
        }
        let id = ManifestId::from_random(rand::random());
        let raw = serde_json::value::RawValue::from_string(
            String::from_utf8(payload_json.to_vec())
                .map_err(|e| Error::Config(format!("manifest payload: {e}")))?,
        )
        .map_err(|e| Error::Config(format!("manifest payload: {e}")))?;
        self.entries.push(ManifestEntry {
            id: id.clone(),
            labels: Some(labels),
            modified,
            deleted: false,
            data: Some(raw),
        });
        Ok(id)
    }

    /// Adds a tombstone for `id`.
    pub fn delete(&mut self, id: ManifestId, modified: DateTime<Utc>) {
        self.entries.push(ManifestEntry {
            id,
            labels: None,
            modified,
            deleted: true,
            data: None,
        });
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes all pending entries as one `m` content (gzip inside, zstd-fastest attempted at
    /// content level like kopia). The content is durable after the writer's next flush.
    pub async fn commit_async(&mut self, cw: &Arc<ContentWriter>) -> Result<Option<ContentId>> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        let entries = std::mem::take(&mut self.entries);
        let bytes = cpu::run(move || {
            manifest::encode_manifest_content(&entries)
                .map_err(|e| Error::format("manifest content", e))
        })
        .await?;
        let id = cw
            .write_content_async(bytes, Some(b'm'), Some(CompressionAlgorithm::ZstdFastest))
            .await?;
        Ok(Some(id))
    }

    /// [`commit_async`](Self::commit_async) for threads outside the runtime (blocking
    /// maintenance loops).
    pub fn commit(&mut self, cw: &ContentWriter) -> Result<Option<ContentId>> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        let entries = std::mem::take(&mut self.entries);
        let bytes = manifest::encode_manifest_content(&entries)
            .map_err(|e| Error::format("manifest content", e))?;
        let id = cw.write_content(&bytes, Some(b'm'), Some(CompressionAlgorithm::ZstdFastest))?;
        Ok(Some(id))
    }
}
