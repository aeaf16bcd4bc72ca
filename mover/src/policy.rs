//! Reading policies from the repository: the effective policy of a source, merged like
//! kopia (path, parent paths, user@host, host, global, built-in defaults).

use anyhow::Result;
use arkiv_engine::Repository;
use arkiv_format::compression::CompressionAlgorithm;
use arkiv_format::ids::ManifestId;
use arkiv_format::policy::{self, EffectivePolicy, Policy};
use arkiv_format::snapshot::SourceInfo;

/// A policy manifest with where it applies.
#[derive(Debug, Clone)]
pub struct StoredPolicy {
    /// Manifest ID.
    pub id: ManifestId,
    /// Labels (`policyType`, `hostname`, `username`, `path`).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The policy.
    pub policy: Policy,
}

/// Every policy manifest in the repository.
pub async fn all_policies(repo: &Repository) -> Result<Vec<StoredPolicy>> {
    let manifests = repo.manifests().await?;
    let mut out = Vec::new();
    for (id, entry) in manifests {
        let Some(labels) = entry.labels else { continue };
        if labels.get("type").map(String::as_str) != Some("policy") {
            continue;
        }
        let Some(data) = &entry.data else { continue };
        match Policy::parse(data.get().as_bytes()) {
            Ok(policy) => out.push(StoredPolicy { id, labels, policy }),
            Err(e) => tracing::warn!("ignoring unreadable policy {id}: {e}"),
        }
    }
    Ok(out)
}

/// Specificity rank of a policy for `source` (lower = more specific), or None.
fn rank(labels: &std::collections::BTreeMap<String, String>, source: &SourceInfo) -> Option<usize> {
    let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
    match get("policyType") {
        "path" if get("hostname") == source.host && get("username") == source.user_name => {
            let p = get("path");
            if p == source.path {
                Some(0)
            } else if source
                .path
                .starts_with(&format!("{}/", p.trim_end_matches('/')))
            {
                // parent paths: longer (closer) first
                Some(1 + (4096usize.saturating_sub(p.len())))
            } else {
                None
            }
        }
        "user" if get("hostname") == source.host && get("username") == source.user_name => {
            Some(10_000)
        }
        "host" if get("hostname") == source.host => Some(10_001),
        "global" => Some(10_002),
        _ => None,
    }
}

/// The effective policy of `source`.
pub async fn effective_policy(repo: &Repository, source: &SourceInfo) -> Result<EffectivePolicy> {
    let all = all_policies(repo).await?;
    let mut ranked: Vec<(usize, &Policy)> = all
        .iter()
        .filter_map(|p| rank(&p.labels, source).map(|r| (r, &p.policy)))
        .collect();
    ranked.sort_by_key(|(r, _)| *r);
    let list: Vec<&Policy> = ranked.into_iter().map(|(_, p)| p).collect();
    Ok(policy::merge(&list))
}

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
