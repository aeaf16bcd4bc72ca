//! The plaintext outer JSON of the format blob `kopia.repository` (FORMAT.md §2.1).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{FORMAT_ENCRYPTION, KOPIA_TOOL, KeyDerivation};
use crate::gojson::{self, base64_bytes, null_default};
use crate::{Error, Result};

/// The plaintext outer JSON of `kopia.repository` (FORMAT.md §2.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatBlob {
    /// `tool`: `https://github.com/kopia/kopia` for kopia.
    #[serde(default, deserialize_with = "null_default")]
    pub tool: String,
    /// `buildVersion` (informational).
    #[serde(rename = "buildVersion", default, deserialize_with = "null_default")]
    pub build_version: String,
    /// `buildInfo` (informational).
    #[serde(rename = "buildInfo", default, deserialize_with = "null_default")]
    pub build_info: String,
    /// `uniqueID`: 32 random bytes; salt of every key derivation.
    #[serde(rename = "uniqueID", default, with = "base64_bytes")]
    pub unique_id: Vec<u8>,
    /// `keyAlgo`: the password KDF name (see [`KeyDerivation`]).
    #[serde(rename = "keyAlgo", default, deserialize_with = "null_default")]
    pub key_algo: String,
    /// `encryption` of the inner config: `AES256_GCM`.
    #[serde(default, deserialize_with = "null_default")]
    pub encryption: String,
    /// `encryptedBlockFormat`: `nonce || ciphertext || tag` of the inner config JSON.
    #[serde(rename = "encryptedBlockFormat", default, with = "base64_bytes")]
    pub encrypted_block_format: Vec<u8>,
}

impl fmt::Debug for FormatBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FormatBlob")
            .field("tool", &self.tool)
            .field("build_version", &self.build_version)
            .field("build_info", &self.build_info)
            .field("unique_id", &hex::encode(&self.unique_id))
            .field("key_algo", &self.key_algo)
            .field("encryption", &self.encryption)
            .field(
                "encrypted_block_format",
                &format_args!("<{} bytes>", self.encrypted_block_format.len()),
            )
            .finish()
    }
}

impl FormatBlob {
    /// A new format blob as `kopia repository create` writes it (config not yet encrypted:
    /// call [`encrypt_config`](super::encrypt_config) and store the result in `encrypted_block_format`).
    pub fn new(
        build_version: impl Into<String>,
        build_info: impl Into<String>,
        unique_id: Vec<u8>,
        key_algo: KeyDerivation,
    ) -> FormatBlob {
        FormatBlob {
            tool: KOPIA_TOOL.to_owned(),
            build_version: build_version.into(),
            build_info: build_info.into(),
            unique_id,
            key_algo: key_algo.to_string(),
            encryption: FORMAT_ENCRYPTION.to_owned(),
            encrypted_block_format: Vec::new(),
        }
    }

    /// Parses the blob; unknown fields are ignored. Non-JSON or mistyped fields are
    /// [`Error::Corrupt`].
    pub fn parse(bytes: &[u8]) -> Result<FormatBlob> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::corrupt(
                "format blob kopia.repository",
                format!("not valid JSON: {e}"),
            )
        })
    }

    /// The parsed `keyAlgo`.
    pub fn key_derivation(&self) -> Result<KeyDerivation> {
        self.key_algo.parse()
    }

    /// Go `json.Encoder` output with `SetIndent("", "  ")` and the trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let b64 = |v: &[u8]| {
            if v.is_empty() {
                "null".to_owned()
            } else {
                gojson::quote_text(&base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    v,
                ))
            }
        };
        let mut fields = vec![
            ("tool", gojson::quote_text(&self.tool)),
            ("buildVersion", gojson::quote_text(&self.build_version)),
            ("buildInfo", gojson::quote_text(&self.build_info)),
            ("uniqueID", b64(&self.unique_id)),
            ("keyAlgo", gojson::quote_text(&self.key_algo)),
            ("encryption", gojson::quote_text(&self.encryption)),
        ];
        if !self.encrypted_block_format.is_empty() {
            fields.push(("encryptedBlockFormat", b64(&self.encrypted_block_format)));
        }
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("  \"{k}\": {v}"))
            .collect();
        format!("{{\n{}\n}}\n", body.join(",\n")).into_bytes()
    }
}
