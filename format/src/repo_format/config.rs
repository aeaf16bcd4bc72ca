//! The encrypted repository config inside the format blob (`RepositoryConfig`, FORMAT.md
//! §2.4, §2.5, §2.7): its fields, the checks a client runs before touching the repository,
//! and its JSON sealed with the format key.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::format_key::{check_outer_encryption, open_with_format_key, seal_with_format_key};
use super::{DEFAULT_MAX_PACK_SIZE, FormatBlob, KNOWN_FEATURES, is_zero};
use crate::encryption::{EncryptionAlgorithm, NONCE_LEN};
use crate::gojson::{self, base64_bytes, null_default};
use crate::hashing::HashAlgorithm;
use crate::{Error, Result};

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
pub(super) struct EncryptedRepositoryConfig {
    pub(super) format: RepositoryConfig,
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
