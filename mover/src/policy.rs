//! Reading policies from the repository (effective compression, retention).

use anyhow::Result;
use arkiv_engine::Repository;
use arkiv_format::compression::CompressionAlgorithm;
use arkiv_format::policy::Policy;
use arkiv_format::snapshot::SourceInfo;

/// Policies that apply to `source`, most specific first (path, user@host, host, global).
pub async fn policies_for(repo: &Repository, source: &SourceInfo) -> Result<Vec<Policy>> {
    let manifests = repo.manifests().await?;
    let mut ranked: Vec<(u8, Policy)> = Vec::new();
    for entry in manifests.values() {
        let Some(labels) = &entry.labels else { continue };
        if labels.get("type").map(String::as_str) != Some("policy") {
            continue;
        }
        let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
        let rank = match get("policyType") {
            "path" if get("hostname") == source.host
                && get("username") == source.user_name
                && get("path") == source.path => 0,
            "user" if get("hostname") == source.host && get("username") == source.user_name => 1,
            "host" if get("hostname") == source.host => 2,
            "global" => 3,
            _ => continue,
        };
        let Some(data) = &entry.data else { continue };
        match Policy::parse(data.get().as_bytes()) {
            Ok(p) => ranked.push((rank, p)),
            Err(e) => tracing::warn!("ignoring unreadable policy {}: {e}", entry.id),
        }
    }
    ranked.sort_by_key(|(r, _)| *r);
    Ok(ranked.into_iter().map(|(_, p)| p).collect())
}

/// The effective file-data compression for `source` (kopia's default: none).
pub async fn effective_compression(
    repo: &Repository,
    source: &SourceInfo,
) -> Result<Option<CompressionAlgorithm>> {
    for p in policies_for(repo, source).await? {
        if let Some(name) = p.compressor_name() {
            if name == "none" {
                return Ok(None);
            }
            return Ok(Some(CompressionAlgorithm::from_name(&name)?));
        }
    }
    Ok(None)
}
