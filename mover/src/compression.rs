//! Compressor names from users (`--compression`, `KOPIA_COMPRESSION`) and from policies: one
//! rule for every binary.
//!
//! `none` (or empty) is no compression. A name arkiv can write is used as it is. A name kopia
//! knows but arkiv cannot write yet (`s2-*`, `lz4`) falls back to `zstd-fastest` with a
//! warning, so a backup never fails over it. Anything else is not a kopia compressor: a
//! configuration error, as `kopia policy set` refuses it.

use anyhow::Result;
use arkiv_engine::Repository;
use arkiv_engine::policy::effective_policy;
use arkiv_format::compression::{CompressionAlgorithm, NONE_NAME};
use arkiv_format::snapshot::SourceInfo;

/// What a name means for new contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The compressor to write with (`None`: no compression).
    pub algorithm: Option<CompressionAlgorithm>,
    /// Set when the name was a kopia compressor arkiv cannot write: the one that was asked for.
    pub fell_back_from: Option<CompressionAlgorithm>,
}

impl Choice {
    /// The warning to print when the choice fell back (`what` names where the name came from,
    /// e.g. `KOPIA_COMPRESSION=lz4`).
    pub fn warning(&self, what: &str) -> Option<String> {
        self.fell_back_from
            .map(|_| format!("{what} is a Kopia compressor arkiv cannot write; using zstd-fastest"))
    }
}

/// Interprets a compressor name (see the module rules); `Err` holds the one-line reason.
pub fn choose(name: &str) -> std::result::Result<Choice, String> {
    let name = name.trim();
    if name.is_empty() || name == NONE_NAME {
        return Ok(Choice {
            algorithm: None,
            fell_back_from: None,
        });
    }
    match CompressionAlgorithm::from_name(name) {
        Some(a) if a.is_supported() => Ok(Choice {
            algorithm: Some(a),
            fell_back_from: None,
        }),
        Some(a) => Ok(Choice {
            algorithm: Some(CompressionAlgorithm::ZstdFastest),
            fell_back_from: Some(a),
        }),
        None => Err(format!(
            "{name:?} is not a Kopia compressor (e.g. zstd-fastest, zstd, gzip, \
             deflate-default, none)"
        )),
    }
}

/// The file-data compression of `source`'s effective policy, by the same rule.
pub async fn from_policy(repo: &Repository, source: &SourceInfo) -> Result<Choice> {
    let policy = effective_policy(repo, source).await?;
    choose(&policy.compression.compressor_name)
        .map_err(|e| anyhow::anyhow!("the policy of {source} names compressor {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(choose("none").unwrap().algorithm, None);
        assert_eq!(choose("").unwrap().algorithm, None);
        let z = choose("zstd-fastest").unwrap();
        assert_eq!(z.algorithm, Some(CompressionAlgorithm::ZstdFastest));
        assert_eq!(z.warning("x"), None);
        let g = choose("gzip").unwrap();
        assert_eq!(g.algorithm, Some(CompressionAlgorithm::Gzip));
        let s2 = choose("s2-default").unwrap();
        assert_eq!(s2.algorithm, Some(CompressionAlgorithm::ZstdFastest));
        assert_eq!(s2.fell_back_from, Some(CompressionAlgorithm::S2Default));
        assert!(
            s2.warning("--compression s2-default")
                .unwrap()
                .contains("zstd-fastest")
        );
        assert!(
            choose("brotli")
                .unwrap_err()
                .contains("not a Kopia compressor")
        );
    }
}
