//! Keys derived from the repository's key material (FORMAT.md §3).

use super::RepositoryConfig;
use crate::encryption::{self, derive_key32};
use crate::{Error, Result};

/// kopia's `DirectRepository.DeriveKey(purpose, len)`: HKDF from `masterKey`, or — for
/// repositories without password change (format v1) — from the format key (a historical quirk).
pub fn derive_repository_key(
    cfg: &RepositoryConfig,
    format_key: &[u8],
    unique_id: &[u8],
    purpose: &[u8],
    len: usize,
) -> Result<Vec<u8>> {
    let ikm = if cfg.enable_password_change {
        &cfg.master_key[..]
    } else {
        format_key
    };
    encryption::derive_key(ikm, unique_id, purpose, len)
}

/// Key of the `kopia.maintenance` schedule blob.
pub fn maintenance_schedule_key(
    cfg: &RepositoryConfig,
    format_key: &[u8],
    unique_id: &[u8],
) -> Result<[u8; 32]> {
    let ikm = if cfg.enable_password_change {
        &cfg.master_key[..]
    } else {
        format_key
    };
    derive_key32(ikm, unique_id, b"maintenance schedule")
}

/// Key of kopia's local-cache HMAC trailers: HKDF from the HMAC `secret`, or from the format
/// key for repositories without password change.
pub fn cache_integrity_key(
    cfg: &RepositoryConfig,
    format_key: &[u8],
    unique_id: &[u8],
) -> Result<[u8; 16]> {
    let ikm = if cfg.enable_password_change {
        &cfg.hmac_secret[..]
    } else {
        format_key
    };
    let v = encryption::derive_key(ikm, unique_id, b"local-cache-integrity", 16)?;
    <[u8; 16]>::try_from(v.as_slice()).map_err(|_| Error::invalid("cache key", "length"))
}
