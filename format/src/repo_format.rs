//! The format blob `kopia.repository`, its encrypted repository config, `kopia.blobcfg`, the
//! password KDFs and the keys derived from them (FORMAT.md §2, §3, §7.2; kopia `repo/format`,
//! `internal/crypto`).
//!
//! ```text
//! kopia.repository = Go json.Encoder, 2-space indent, trailing "\n":
//!   {"tool", "buildVersion", "buildInfo", "uniqueID": b64, "keyAlgo", "encryption": "AES256_GCM",
//!    "encryptedBlockFormat": b64(nonce(12) || AES-256-GCM(aesKey, json.Marshal({"format": cfg}), aad))}
//! formatKey = scrypt/PBKDF2(password, salt = uniqueID, 32)
//! aesKey    = HKDF(formatKey, uniqueID, "AES", 32);  aad = HKDF(formatKey, uniqueID, "CHECKSUM", 32)
//! ```
//!
//! JSON decoding follows Go's `encoding/json` leniency where it matters: unknown fields are
//! ignored, missing fields and `null` take the zero value. (Go also matches keys
//! case-insensitively; we do not.) Encoding reproduces Go's bytes exactly.

mod blobcfg;
mod config;
mod derived_keys;
mod format_blob;
mod format_key;
mod kdf;
mod replica;

pub use blobcfg::{BlobCfg, decrypt_blobcfg, encrypt_blobcfg};
pub use config::{
    EpochParameters, IfNotUnderstood, RepositoryConfig, RequiredFeature, UpgradeLock, config_json,
    decrypt_config, encrypt_config,
};
pub use derived_keys::{cache_integrity_key, derive_repository_key, maintenance_schedule_key};
pub use format_blob::FormatBlob;
pub use kdf::{KeyDerivation, derive_format_key};
pub use replica::{find_format_blob_replica, format_blob_replica};

use crate::Result;
use format_key::check_outer_encryption;

/// Blob ID of the format blob.
pub const FORMAT_BLOB_ID: &str = "kopia.repository";
/// Blob ID of the blob-storage (retention) config.
pub const BLOBCFG_BLOB_ID: &str = "kopia.blobcfg";
/// The `tool` value kopia writes.
pub const KOPIA_TOOL: &str = "https://github.com/kopia/kopia";
/// The only supported outer `encryption` of the format blob.
pub const FORMAT_ENCRYPTION: &str = "AES256_GCM";
/// Default `maxPackSize` (also used when the field is 0/missing).
pub const DEFAULT_MAX_PACK_SIZE: u64 = 20 << 20;
/// Minimum salt (uniqueID) length accepted by both password KDFs.
pub const MIN_SALT_LEN: usize = 16;
/// Required features this implementation understands (same list as kopia v0.23.1).
pub const KNOWN_FEATURES: [&str; 2] = ["index-v1", "index-v2"];

/// Go's `omitempty` for an `int64` field.
fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The result of [`open_format`].
#[derive(Clone, Debug)]
pub struct OpenedFormat {
    /// The outer format blob.
    pub blob: FormatBlob,
    /// The password-derived format key.
    pub format_key: [u8; 32],
    /// The decrypted, validated repository config.
    pub config: RepositoryConfig,
}

/// Parses `kopia.repository`, derives the format key from `password`, decrypts the config and
/// runs [`RepositoryConfig::validate`] (so ECC, unknown versions, required features and upgrade
/// locks are refused here). Use [`decrypt_config`] directly to inspect a config that does not
/// validate.
pub fn open_format(format_blob_bytes: &[u8], password: &str) -> Result<OpenedFormat> {
    let blob = FormatBlob::parse(format_blob_bytes)?;
    check_outer_encryption(&blob)?;
    let format_key = derive_format_key(blob.key_derivation()?, password, &blob.unique_id)?;
    let config = decrypt_config(&blob, &format_key)?;
    config.validate()?;
    Ok(OpenedFormat {
        blob,
        format_key,
        config,
    })
}

#[cfg(test)]
mod tests;
