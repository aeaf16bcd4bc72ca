//! Reading policies from the repository: a thin layer over [`arkiv_engine::policy`], which
//! merges like kopia (path, parent paths, user@host, host, global, built-in defaults).

use anyhow::Result;
use arkiv_engine::Repository;
use arkiv_format::compression::CompressionAlgorithm;
use arkiv_format::snapshot::SourceInfo;

pub use arkiv_engine::policy::{
    PolicyTarget, StoredPolicy, all_policies, effective_policy, get_policy, set_policy,
};

/// The effective file-data compression for `source` (kopia's default: none).
pub async fn effective_compression(
    repo: &Repository,
    source: &SourceInfo,
) -> Result<Option<CompressionAlgorithm>> {
    Ok(effective_policy(repo, source)
        .await?
        .compression
        .algorithm()?)
}
