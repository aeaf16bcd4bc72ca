//! Compressor names from users (`--compression`, `KOPIA_COMPRESSION`) and from policies: one
//! rule for every binary.
//!
//! `none` (or empty) is no compression. A name arkiv can write (every kopia compressor but
//! `lz4`) is used as it is. `lz4`, which kopia 0.23 removed and arkiv only reads, falls back
//! to `zstd-fastest` with one warning line, so a backup never fails over it. Anything else is
//! not a kopia compressor: a configuration error, as `kopia policy set` refuses it.

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
        self.fell_back_from.map(|from| {
            format!(
                "{what}: arkiv reads {from} but does not write it (kopia 0.23 removed it); \
                     using zstd-fastest"
            )
        })
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
        for name in [
            "s2-default",
            "s2-better",
            "s2-parallel-4",
            "s2-parallel-8",
            "pgzip",
        ] {
            let c = choose(name).unwrap();
            assert_eq!(c.algorithm.map(|a| a.name()), Some(name));
            assert_eq!(c.warning("x"), None);
        }
        let lz4 = choose("lz4").unwrap();
        assert_eq!(lz4.algorithm, Some(CompressionAlgorithm::ZstdFastest));
        assert_eq!(lz4.fell_back_from, Some(CompressionAlgorithm::Lz4));
        assert_eq!(
            lz4.warning("--compression lz4").unwrap(),
            "--compression lz4: arkiv reads lz4 but does not write it (kopia 0.23 removed it); \
             using zstd-fastest"
        );
        assert!(
            choose("brotli")
                .unwrap_err()
                .contains("not a Kopia compressor")
        );
    }
}
