//! `kopia.blobcfg`: the blob retention (object lock) settings (FORMAT.md §2.6).

use serde::{Deserialize, Serialize};

use super::format_key::{open_with_format_key, seal_with_format_key};
use super::{BLOBCFG_BLOB_ID, FORMAT_ENCRYPTION, FormatBlob, is_zero};
use crate::encryption::NONCE_LEN;
use crate::gojson::{self, null_default};
use crate::{Error, Result};

/// Blob retention settings stored in `kopia.blobcfg` (FORMAT.md §2.6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobCfg {
    /// `retentionMode`: `GOVERNANCE`, `COMPLIANCE` or empty.
    #[serde(
        rename = "retentionMode",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub retention_mode: String,
    /// `retentionPeriod` in nanoseconds (0 = none).
    #[serde(
        rename = "retentionPeriod",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub retention_period: i64,
}

impl BlobCfg {
    /// True when object-lock retention is configured.
    pub fn is_retention_enabled(&self) -> bool {
        !self.retention_mode.is_empty() && self.retention_period != 0
    }

    /// kopia's rules: mode and period both set or both empty; period at least 24 h.
    pub fn validate(&self) -> Result<()> {
        if self.retention_mode.is_empty() != (self.retention_period == 0) {
            return Err(Error::invalid(
                "blob retention",
                "both retention mode and period must be provided",
            ));
        }
        if self.retention_period != 0 && self.retention_period < 24 * 3_600_000_000_000 {
            return Err(Error::invalid(
                "blob retention",
                "retention period must be at least 24h",
            ));
        }
        Ok(())
    }
}

/// Decrypts `kopia.blobcfg` with the format key (plain JSON if the outer encryption is
/// `NONE`). Tag failure is [`Error::Decrypt`].
pub fn decrypt_blobcfg(blob: &FormatBlob, format_key: &[u8], bytes: &[u8]) -> Result<BlobCfg> {
    let plain = match blob.encryption.as_str() {
        "NONE" => bytes.to_vec(),
        FORMAT_ENCRYPTION => {
            open_with_format_key(format_key, &blob.unique_id, bytes, "kopia.blobcfg")?.ok_or_else(
                || Error::Decrypt {
                    what: BLOBCFG_BLOB_ID.to_owned(),
                },
            )?
        }
        other => return Err(Error::unsupported("format blob encryption", other)),
    };
    serde_json::from_slice(&plain).map_err(|e| Error::json("kopia.blobcfg", e))
}

/// Encrypts `kopia.blobcfg` (`json.Marshal(cfg)`, then the format-key AES-GCM).
pub fn encrypt_blobcfg(
    blob: &FormatBlob,
    format_key: &[u8],
    cfg: &BlobCfg,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>> {
    let json = gojson::to_go_json_text(cfg, "kopia.blobcfg")?;
    match blob.encryption.as_str() {
        "NONE" => Ok(json),
        FORMAT_ENCRYPTION => seal_with_format_key(format_key, &blob.unique_id, &json, nonce),
        other => Err(Error::unsupported("format blob encryption", other)),
    }
}
