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

use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::encryption::{self, EncryptionAlgorithm, NONCE_LEN, TAG_LEN, derive_key32};
use crate::gojson::{self, base64_bytes, null_default};
use crate::hashing::HashAlgorithm;
use crate::{Error, Result};

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

// ---------------------------------------------------------------------------------------------
// Password KDF

/// Password-based key derivation of the format key (`keyAlgo`, FORMAT.md §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyDerivation {
    /// `scrypt-65536-8-1`: scrypt N=65536, r=8, p=1 (kopia's default).
    #[default]
    Scrypt65536_8_1,
    /// `pbkdf2-sha256-600000`: PBKDF2-HMAC-SHA256 with 600 000 iterations.
    Pbkdf2Sha256_600000,
}

impl KeyDerivation {
    /// Kopia's name.
    pub fn name(self) -> &'static str {
        match self {
            KeyDerivation::Scrypt65536_8_1 => "scrypt-65536-8-1",
            KeyDerivation::Pbkdf2Sha256_600000 => "pbkdf2-sha256-600000",
        }
    }
}

impl fmt::Display for KeyDerivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyDerivation {
    type Err = Error;

    /// Parses kopia's name; `testing-only-insecure` (test builds of kopia) and unknown or empty
    /// names are [`Error::Unsupported`].
    fn from_str(s: &str) -> Result<Self> {
        [
            KeyDerivation::Scrypt65536_8_1,
            KeyDerivation::Pbkdf2Sha256_600000,
        ]
        .into_iter()
        .find(|k| k.name() == s)
        .ok_or_else(|| Error::unsupported("key derivation algorithm", s))
    }
}

/// Derives the 32-byte format key from the password, salted with the repository `uniqueID`
/// (at least 16 bytes). Slow by design (scrypt ~64 MiB of memory).
pub fn derive_format_key(
    algo: KeyDerivation,
    password: &str,
    unique_id: &[u8],
) -> Result<[u8; 32]> {
    if unique_id.len() < MIN_SALT_LEN {
        return Err(Error::invalid(
            "password salt",
            format!(
                "uniqueID is {} bytes, at least {MIN_SALT_LEN} are required",
                unique_id.len()
            ),
        ));
    }
    let mut out = [0u8; 32];
    match algo {
        KeyDerivation::Scrypt65536_8_1 => {
            let params = scrypt::Params::new(16, 8, 1, 32)
                .map_err(|e| Error::invalid("scrypt parameters", e.to_string()))?;
            scrypt::scrypt(password.as_bytes(), unique_id, &params, &mut out)
                .map_err(|e| Error::invalid("scrypt output", e.to_string()))?;
        }
        KeyDerivation::Pbkdf2Sha256_600000 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), unique_id, 600_000, &mut out);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Outer format blob

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
    /// call [`encrypt_config`] and store the result in `encrypted_block_format`).
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

// ---------------------------------------------------------------------------------------------
// Inner repository config

/// Epoch manager parameters (`epochParameters`, FORMAT.md §2.5). Keys are PascalCase;
/// durations are nanoseconds. `Default` is kopia's `epoch.DefaultParameters()`; a config that
/// lacks the object decodes to [`EpochParameters::zero`] (disabled), as in Go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochParameters {
    /// Use the epoch index manager (false ⇒ legacy v0 index blobs).
    #[serde(rename = "Enabled", default, deserialize_with = "null_default")]
    pub enabled: bool,
    /// How stale a client's view of the current epoch may be (ns).
    #[serde(
        rename = "EpochRefreshFrequency",
        default,
        deserialize_with = "null_default"
    )]
    pub epoch_refresh_frequency: i64,
    /// Settled epochs between range checkpoints.
    #[serde(
        rename = "FullCheckpointFrequency",
        default,
        deserialize_with = "null_default"
    )]
    pub full_checkpoint_frequency: i64,
    /// Minimum age of a replacement before superseded index blobs are deleted (ns).
    #[serde(
        rename = "CleanupSafetyMargin",
        default,
        deserialize_with = "null_default"
    )]
    pub cleanup_safety_margin: i64,
    /// Minimum epoch length (ns).
    #[serde(
        rename = "MinEpochDuration",
        default,
        deserialize_with = "null_default"
    )]
    pub min_epoch_duration: i64,
    /// Advance the epoch when it has at least this many index blobs...
    #[serde(
        rename = "EpochAdvanceOnCountThreshold",
        default,
        deserialize_with = "null_default"
    )]
    pub epoch_advance_on_count_threshold: i64,
    /// ... or their total size is at least this many bytes.
    #[serde(
        rename = "EpochAdvanceOnTotalSizeBytesThreshold",
        default,
        deserialize_with = "null_default"
    )]
    pub epoch_advance_on_total_size_bytes_threshold: i64,
    /// Blobs deleted in parallel during cleanup.
    #[serde(
        rename = "DeleteParallelism",
        default,
        deserialize_with = "null_default"
    )]
    pub delete_parallelism: i64,
}

impl Default for EpochParameters {
    /// kopia's `epoch.DefaultParameters()`.
    fn default() -> Self {
        const MINUTE: i64 = 60_000_000_000;
        EpochParameters {
            enabled: true,
            epoch_refresh_frequency: 20 * MINUTE,
            full_checkpoint_frequency: 7,
            cleanup_safety_margin: 4 * 60 * MINUTE,
            min_epoch_duration: 24 * 60 * MINUTE,
            epoch_advance_on_count_threshold: 20,
            epoch_advance_on_total_size_bytes_threshold: 10 << 20,
            delete_parallelism: 4,
        }
    }
}

impl EpochParameters {
    /// All-zero parameters (epoch manager disabled), as format version 1 writes them.
    pub fn zero() -> Self {
        EpochParameters {
            enabled: false,
            epoch_refresh_frequency: 0,
            full_checkpoint_frequency: 0,
            cleanup_safety_margin: 0,
            min_epoch_duration: 0,
            epoch_advance_on_count_threshold: 0,
            epoch_advance_on_total_size_bytes_threshold: 0,
            delete_parallelism: 0,
        }
    }
}

/// What to do when a required feature is not understood (`ifNotUnderstood`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfNotUnderstood {
    /// Warn instead of failing.
    #[serde(default, deserialize_with = "null_default")]
    pub warn: bool,
    /// Message to show.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub message: String,
    /// URL to show.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub url: String,
    /// Suggested minimum kopia version.
    #[serde(
        rename = "upgradeToVersion",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub upgrade_to_version: String,
}

/// A feature the client must understand (`requiredFeatures` entry, kopia `feature.Required`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredFeature {
    /// Feature name, e.g. `index-v2`.
    #[serde(default, deserialize_with = "null_default")]
    pub feature: String,
    /// Behaviour of clients that do not know the feature.
    #[serde(rename = "ifNotUnderstood", default, deserialize_with = "null_default")]
    pub if_not_understood: IfNotUnderstood,
}

impl RequiredFeature {
    /// True when this client understands the feature.
    pub fn is_known(&self) -> bool {
        KNOWN_FEATURES.contains(&self.feature.as_str())
    }

    /// The message kopia shows for an unsupported feature.
    pub fn unsupported_message(&self) -> String {
        let mut msg = format!("This version does not support feature '{}'.", self.feature);
        let i = &self.if_not_understood;
        if !i.message.is_empty() {
            msg.push('\n');
            msg.push_str(&i.message);
        }
        if !i.url.is_empty() {
            msg.push_str("\nSee: ");
            msg.push_str(&i.url);
        }
        if !i.upgrade_to_version.is_empty() {
            msg.push_str("\nPlease upgrade to version ");
            msg.push_str(&i.upgrade_to_version);
            msg.push_str(" or newer.");
        }
        msg
    }
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The upgrade lock placed by `kopia repository upgrade` (`upgradeLock`, FORMAT.md §2.7).
/// Durations are nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeLock {
    /// Client that owns the lock.
    #[serde(
        rename = "ownerID",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub owner_id: String,
    /// When the lock was placed.
    #[serde(
        rename = "creationTime",
        with = "gojson::time::null_is_zero",
        default = "gojson::time::zero"
    )]
    pub creation_time: DateTime<Utc>,
    /// Advance notice before the lock takes effect.
    #[serde(
        rename = "advanceNoticeDuration",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub advance_notice_duration: i64,
    /// I/O drain timeout.
    #[serde(
        rename = "ioDrainTimeout",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub io_drain_timeout: i64,
    /// Status poll interval.
    #[serde(
        rename = "statusPollInterval",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub status_poll_interval: i64,
    /// Message for users.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub message: String,
    /// Maximum permitted clock drift.
    #[serde(
        rename = "maxPermittedClockDrift",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub max_permitted_clock_drift: i64,
}

/// The decrypted repository configuration (`RepositoryConfig`, FORMAT.md §2.4). Fields are in
/// kopia's JSON order; names of algorithms stay strings so unknown values survive decoding and
/// are reported by [`RepositoryConfig::validate`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryConfig {
    /// `hash`: content hash algorithm name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub hash: String,
    /// `encryption`: content encryption algorithm name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub encryption: String,
    /// `ecc`: `REED-SOLOMON-CRC32` or empty.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub ecc: String,
    /// `eccOverheadPercent`.
    #[serde(
        rename = "eccOverheadPercent",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub ecc_overhead_percent: i64,
    /// `secret`: the content hash key (HMAC secret).
    #[serde(
        rename = "secret",
        default,
        with = "base64_bytes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hmac_secret: Vec<u8>,
    /// `masterKey`: root of content encryption and derived keys.
    #[serde(
        rename = "masterKey",
        default,
        with = "base64_bytes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub master_key: Vec<u8>,
    /// `version`: format version 1, 2 or 3.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub version: i64,
    /// `maxPackSize` in bytes (0 ⇒ 20 MiB, see [`RepositoryConfig::effective_max_pack_size`]).
    #[serde(
        rename = "maxPackSize",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub max_pack_size: i64,
    /// `indexVersion` (0 ⇒ 1, see [`RepositoryConfig::effective_index_version`]).
    #[serde(
        rename = "indexVersion",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub index_version: i64,
    /// `epochParameters` (always written).
    #[serde(
        rename = "epochParameters",
        default = "EpochParameters::zero",
        deserialize_with = "epoch_null_zero"
    )]
    pub epoch_parameters: EpochParameters,
    /// `enablePasswordChange` (always written); false means format-v1 key quirks (FORMAT.md §3).
    #[serde(
        rename = "enablePasswordChange",
        default,
        deserialize_with = "null_default"
    )]
    pub enable_password_change: bool,
    /// `splitter` name (empty ⇒ `FIXED`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub splitter: String,
    /// `upgradeLock`: present while `kopia repository upgrade` runs.
    #[serde(
        rename = "upgradeLock",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub upgrade_lock: Option<UpgradeLock>,
    /// `requiredFeatures`.
    #[serde(
        rename = "requiredFeatures",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub required_features: Vec<RequiredFeature>,
}

fn epoch_null_zero<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<EpochParameters, D::Error> {
    Ok(Option::<EpochParameters>::deserialize(d)?.unwrap_or_else(EpochParameters::zero))
}

impl fmt::Debug for RepositoryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key material is redacted.
        f.debug_struct("RepositoryConfig")
            .field("hash", &self.hash)
            .field("encryption", &self.encryption)
            .field("ecc", &self.ecc)
            .field("ecc_overhead_percent", &self.ecc_overhead_percent)
            .field(
                "hmac_secret",
                &format_args!("<{} bytes>", self.hmac_secret.len()),
            )
            .field(
                "master_key",
                &format_args!("<{} bytes>", self.master_key.len()),
            )
            .field("version", &self.version)
            .field("max_pack_size", &self.max_pack_size)
            .field("index_version", &self.index_version)
            .field("epoch_parameters", &self.epoch_parameters)
            .field("enable_password_change", &self.enable_password_change)
            .field("splitter", &self.splitter)
            .field("upgrade_lock", &self.upgrade_lock)
            .field("required_features", &self.required_features)
            .finish()
    }
}

/// The inner JSON document: `{"format": RepositoryConfig}`.
#[derive(Serialize, Deserialize)]
struct EncryptedRepositoryConfig {
    format: RepositoryConfig,
}

impl RepositoryConfig {
    /// The configuration `kopia repository create` writes today (format version 3, index v2,
    /// epochs on, default algorithms and splitter, 20 MiB packs) with the given random keys.
    pub fn new_default(hmac_secret: Vec<u8>, master_key: Vec<u8>) -> RepositoryConfig {
        RepositoryConfig {
            hash: HashAlgorithm::default().to_string(),
            encryption: EncryptionAlgorithm::default().to_string(),
            ecc: String::new(),
            ecc_overhead_percent: 0,
            hmac_secret,
            master_key,
            version: 3,
            max_pack_size: DEFAULT_MAX_PACK_SIZE as i64,
            index_version: 2,
            epoch_parameters: EpochParameters::default(),
            enable_password_change: true,
            splitter: "DYNAMIC-4M-BUZHASH".to_owned(),
            upgrade_lock: None,
            required_features: Vec::new(),
        }
    }

    /// The content hash algorithm.
    pub fn hash_algorithm(&self) -> Result<HashAlgorithm> {
        self.hash.parse()
    }

    /// The content encryption algorithm.
    pub fn encryption_algorithm(&self) -> Result<EncryptionAlgorithm> {
        self.encryption.parse()
    }

    /// `maxPackSize`, with kopia's 20 MiB default for 0 (or nonsense negative values).
    pub fn effective_max_pack_size(&self) -> u64 {
        u64::try_from(self.max_pack_size)
            .ok()
            .filter(|&v| v > 0)
            .unwrap_or(DEFAULT_MAX_PACK_SIZE)
    }

    /// `indexVersion`, with 0 meaning the legacy version 1.
    pub fn effective_index_version(&self) -> i64 {
        if self.index_version == 0 {
            1
        } else {
            self.index_version
        }
    }

    /// The splitter name, `FIXED` (4 MiB) when missing.
    pub fn splitter_name(&self) -> &str {
        if self.splitter.is_empty() {
            "FIXED"
        } else {
            &self.splitter
        }
    }

    /// True when index blobs are managed by the epoch manager.
    pub fn epoch_enabled(&self) -> bool {
        self.epoch_parameters.enabled
    }

    /// Checks everything a client must understand before touching the repository, in kopia's
    /// order: format version (1..=3), index version (1 or 2), hash and encryption names, ECC
    /// (refused: not implemented), required features (unknown ones refuse unless
    /// `ifNotUnderstood.warn`), and an upgrade lock (refused while present).
    ///
    /// The splitter is not checked here: reading never needs it (see `splitter::SplitterKind`).
    pub fn validate(&self) -> Result<()> {
        if !(1..=3).contains(&self.version) {
            return Err(Error::unsupported(
                "format version",
                format!("{} (supported: 1, 2, 3)", self.version),
            ));
        }
        let iv = self.effective_index_version();
        if !(1..=2).contains(&iv) {
            return Err(Error::unsupported(
                "index version",
                format!("{iv} (supported: 1, 2)"),
            ));
        }
        self.hash_algorithm()?;
        self.encryption_algorithm()?;
        if !self.ecc.is_empty() && self.ecc_overhead_percent > 0 {
            return Err(Error::unsupported(
                "ECC",
                format!(
                    "repositories with ECC ({}, {}% overhead) are not supported",
                    self.ecc, self.ecc_overhead_percent
                ),
            ));
        }
        if let Some(f) = self
            .required_features
            .iter()
            .find(|f| !f.is_known() && !f.if_not_understood.warn)
        {
            return Err(Error::unsupported(
                "required feature",
                f.unsupported_message(),
            ));
        }
        if let Some(lock) = &self.upgrade_lock {
            return Err(Error::unsupported(
                "repository state",
                format!(
                    "an upgrade lock is held by {:?} since {} (kopia repository upgrade in progress); \
                     refusing to access the repository until the upgrade completes",
                    lock.owner_id,
                    gojson::time::format(&lock.creation_time)
                ),
            ));
        }
        Ok(())
    }

    /// Messages for unknown required features marked `ifNotUnderstood.warn` (to show the user).
    pub fn feature_warnings(&self) -> Vec<String> {
        self.required_features
            .iter()
            .filter(|f| !f.is_known() && f.if_not_understood.warn)
            .map(RequiredFeature::unsupported_message)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Format-key AES-GCM (inner config and blobcfg)

const PURPOSE_AES: &[u8] = b"AES";
const PURPOSE_CHECKSUM: &[u8] = b"CHECKSUM";

/// `(aesKey, aad)` of FORMAT.md §2.3.
fn format_aead_keys(format_key: &[u8], unique_id: &[u8]) -> Result<([u8; 32], [u8; 32])> {
    Ok((
        derive_key32(format_key, unique_id, PURPOSE_AES)?,
        derive_key32(format_key, unique_id, PURPOSE_CHECKSUM)?,
    ))
}

/// `nonce || AES-256-GCM(aesKey, plaintext, aad)`.
fn seal_with_format_key(
    format_key: &[u8],
    unique_id: &[u8],
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>> {
    let (key, aad) = format_aead_keys(format_key, unique_id)?;
    let mut out = Vec::with_capacity(plaintext.len() + NONCE_LEN + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = aes_gcm::Aes256Gcm::new((&key).into())
        .encrypt_in_place_detached(
            (&nonce).into(),
            &aad,
            out.get_mut(NONCE_LEN..).unwrap_or_default(),
        )
        .map_err(|_| Error::invalid("plaintext", "too long for AES-GCM"))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens `nonce || ciphertext || tag`; `Ok(None)` when the tag does not verify.
fn open_with_format_key(
    format_key: &[u8],
    unique_id: &[u8],
    data: &[u8],
    what: &'static str,
) -> Result<Option<Vec<u8>>> {
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(Error::corrupt(
            what,
            format!("encrypted payload of {} bytes is too short", data.len()),
        ));
    }
    let (key, aad) = format_aead_keys(format_key, unique_id)?;
    let (nonce, rest) = data.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = ct.to_vec();
    let ok = aes_gcm::Aes256Gcm::new((&key).into())
        .decrypt_in_place_detached(nonce.into(), &aad, &mut buf, tag.into())
        .is_ok();
    Ok(ok.then_some(buf))
}

fn check_outer_encryption(blob: &FormatBlob) -> Result<()> {
    if blob.encryption == FORMAT_ENCRYPTION {
        Ok(())
    } else {
        Err(Error::unsupported(
            "format blob encryption",
            blob.encryption.clone(),
        ))
    }
}

/// Decrypts and parses the inner config of the format blob. A tag failure (the usual symptom
/// of a wrong password) is [`Error::WrongPassword`].
pub fn decrypt_config(blob: &FormatBlob, format_key: &[u8]) -> Result<RepositoryConfig> {
    check_outer_encryption(blob)?;
    let plain = open_with_format_key(
        format_key,
        &blob.unique_id,
        &blob.encrypted_block_format,
        "format blob encryptedBlockFormat",
    )?
    .ok_or(Error::WrongPassword)?;
    let erc: EncryptedRepositoryConfig =
        serde_json::from_slice(&plain).map_err(|e| Error::json("repository config", e))?;
    Ok(erc.format)
}

/// The inner config JSON exactly as kopia writes it (`json.Marshal({"format": cfg})`).
pub fn config_json(cfg: &RepositoryConfig) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Ref<'a> {
        format: &'a RepositoryConfig,
    }
    gojson::to_go_json_text(&Ref { format: cfg }, "repository config")
}

/// Encrypts the config into `encryptedBlockFormat` bytes (`nonce || ciphertext || tag`).
pub fn encrypt_config(
    cfg: &RepositoryConfig,
    format_key: &[u8],
    unique_id: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>> {
    let json = config_json(cfg)?;
    seal_with_format_key(format_key, unique_id, &json, nonce)
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

// ---------------------------------------------------------------------------------------------
// kopia.blobcfg

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

// ---------------------------------------------------------------------------------------------
// Derived keys (FORMAT.md §3)

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

// ---------------------------------------------------------------------------------------------
// Format-blob replica in format-v1 packs (FORMAT.md §7.2)

const REPLICA_HMAC_KEY: &[u8] = b"kopia-repository";
const REPLICA_MAX_LEN: usize = 65000;
const REPLICA_SCAN_LEN: usize = 65536;

fn replica_mac(data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(REPLICA_HMAC_KEY)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
    m.update(data);
    m.finalize().into_bytes().into()
}

/// `len16LE || bytes || HMAC-SHA256("kopia-repository", bytes) || len16LE` with
/// `len = bytes.len() + 32`, written at the start of every format-v1 pack.
pub fn format_blob_replica(bytes: &[u8]) -> Result<Vec<u8>> {
    let l = bytes.len() + 32;
    if l > REPLICA_MAX_LEN {
        return Err(Error::invalid(
            "format blob replica",
            format!("format blob too big: {l} bytes"),
        ));
    }
    let len = (l as u16).to_le_bytes();
    let mut out = Vec::with_capacity(l + 4);
    out.extend_from_slice(&len);
    out.extend_from_slice(bytes);
    out.extend_from_slice(&replica_mac(bytes));
    out.extend_from_slice(&len);
    Ok(out)
}

fn verify_replica(b: &[u8]) -> Option<Vec<u8>> {
    let split = b.len().checked_sub(32)?;
    let (data, mac) = b.split_at(split);
    // Not secret; plain comparison is fine.
    (replica_mac(data) == mac).then(|| data.to_vec())
}

/// Recovers a format-blob replica from the start or the end of `pack_bytes` (kopia
/// `RecoverFormatBlob`): looks at the first and last 64 KiB.
pub fn find_format_blob_replica(pack_bytes: &[u8]) -> Option<Vec<u8>> {
    let n = pack_bytes.len().min(REPLICA_SCAN_LEN);
    if n <= 4 {
        return None;
    }
    let prefix = pack_bytes.get(..n)?;
    if let [a, b, ..] = prefix {
        let l = usize::from(u16::from_le_bytes([*a, *b]));
        if l <= REPLICA_MAX_LEN && l + 2 < prefix.len() {
            if let Some(found) = prefix.get(2..2 + l).and_then(verify_replica) {
                return Some(found);
            }
        }
    }
    let suffix = pack_bytes.get(pack_bytes.len() - n..)?;
    if let [.., a, b] = suffix {
        let l = usize::from(u16::from_le_bytes([*a, *b]));
        if l <= REPLICA_MAX_LEN && l + 2 < suffix.len() {
            let end = suffix.len() - 2;
            if let Some(found) = suffix.get(end - l..end).and_then(verify_replica) {
                return Some(found);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
