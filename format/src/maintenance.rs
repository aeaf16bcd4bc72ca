//! Maintenance documents (FORMAT.md §14.1, §14.2; kopia `repo/maintenance`).
//!
//! * The schedule blob `kopia.maintenance`:
//!   `nonce(12) || AES-256-GCM(key, json.Marshal(Schedule), additionalData = "maintenance")`
//!   with `key = repo_format::maintenance_schedule_key(..)` (HKDF purpose
//!   `"maintenance schedule"`).
//! * The maintenance parameters manifest payload (`type=maintenance`), [`MaintenanceParams`].
//!
//! Times are Go `time.Time` JSON: RFC 3339 with nanoseconds, trailing zeros trimmed, always
//! written in UTC (`Z`); the zero time is `0001-01-01T00:00:00Z`. kopia writes times in the
//! writer's local zone (e.g. `+02:00`); those parse fine and are normalised to UTC, so a
//! re-encoded schedule may differ textually but not in meaning.

use std::collections::BTreeMap;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::encryption::{NONCE_LEN, TAG_LEN};
use crate::gojson::{self, null_default};
use crate::{Error, Result};

/// Blob ID of the schedule blob.
pub const SCHEDULE_BLOB_ID: &str = "kopia.maintenance";
/// AEAD additional data of the schedule blob.
const SCHEDULE_AAD: &[u8] = b"maintenance";
/// kopia keeps at most this many runs per task, newest first.
pub const MAX_RUNS_PER_TASK: usize = 50;
/// Value of the `type` label of the maintenance parameters manifest.
pub const PARAMS_MANIFEST_TYPE: &str = "maintenance";

/// Task names used as keys of [`Schedule::runs`] (kopia `repo/maintenance/maintenance_run.go`).
pub mod task {
    /// Snapshot garbage collection (full maintenance).
    pub const SNAPSHOT_GC: &str = "snapshot-gc";
    /// Orphaned pack deletion, quick cycle.
    pub const DELETE_ORPHANED_BLOBS_QUICK: &str = "quick-delete-blobs";
    /// Orphaned pack deletion, full cycle.
    pub const DELETE_ORPHANED_BLOBS_FULL: &str = "full-delete-blobs";
    /// Short-pack rewrite, quick cycle.
    pub const REWRITE_CONTENTS_QUICK: &str = "quick-rewrite-contents";
    /// Short-pack rewrite, full cycle.
    pub const REWRITE_CONTENTS_FULL: &str = "full-rewrite-contents";
    /// Dropping deleted contents from indexes.
    pub const DROP_DELETED_CONTENTS_FULL: &str = "full-drop-deleted-content";
    /// Legacy index compaction.
    pub const INDEX_COMPACTION: &str = "index-compaction";
    /// Object-lock retention extension.
    pub const EXTEND_BLOB_RETENTION_TIME_FULL: &str = "extend-blob-retention-time";
    /// Diagnostic log cleanup.
    pub const CLEANUP_LOGS: &str = "cleanup-logs";
    /// Epoch advance.
    pub const EPOCH_ADVANCE: &str = "advance-epoch";
    /// Deletion of superseded epoch index blobs.
    pub const EPOCH_DELETE_SUPERSEDED_INDEXES: &str = "delete-superseded-epoch-indexes";
    /// Epoch marker cleanup.
    pub const EPOCH_CLEANUP_MARKERS: &str = "cleanup-epoch-markers";
    /// Epoch range checkpoint generation.
    pub const EPOCH_GENERATE_RANGE: &str = "generate-epoch-range-index";
    /// Single-epoch compaction.
    pub const EPOCH_COMPACT_SINGLE: &str = "compact-single-epoch";
}

/// Statistics attached to a run (`maintenancestats.Extra`): `{"kind":…,"data":{…}}`, both
/// omitempty. `data` is kept as raw JSON.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunExtra {
    /// Kind of statistics.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// The statistics document, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

impl PartialEq for RunExtra {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.data.as_ref().map(|d| d.get()) == other.data.as_ref().map(|d| d.get())
    }
}

impl Eq for RunExtra {}

/// One run of a maintenance task (`RunInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Start time.
    #[serde(with = "gojson::time::null_is_zero", default = "gojson::time::zero")]
    pub start: DateTime<Utc>,
    /// End time.
    #[serde(with = "gojson::time::null_is_zero", default = "gojson::time::zero")]
    pub end: DateTime<Utc>,
    /// True when the task succeeded (omitted when false).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub success: bool,
    /// Error message of a failed run (omitted when empty).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub error: String,
    /// Statistics (omitted when empty).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extra: Vec<RunExtra>,
}

/// The maintenance schedule (`kopia.maintenance`, FORMAT.md §14.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// When full maintenance is due next (zero time = never scheduled).
    #[serde(
        rename = "nextFullMaintenance",
        with = "gojson::time::null_is_zero",
        default = "gojson::time::zero"
    )]
    pub next_full_maintenance: DateTime<Utc>,
    /// When quick maintenance is due next.
    #[serde(
        rename = "nextQuickMaintenance",
        with = "gojson::time::null_is_zero",
        default = "gojson::time::zero"
    )]
    pub next_quick_maintenance: DateTime<Utc>,
    /// Run history per task name, newest first. `None` is Go's nil map (`"runs":null`).
    #[serde(default)]
    pub runs: Option<BTreeMap<String, Vec<RunInfo>>>,
}

impl Default for Schedule {
    /// The empty schedule (what a missing `kopia.maintenance` means).
    fn default() -> Self {
        Schedule {
            next_full_maintenance: gojson::time::zero(),
            next_quick_maintenance: gojson::time::zero(),
            runs: None,
        }
    }
}

impl Schedule {
    /// Records a run as the newest of its task, keeping at most [`MAX_RUNS_PER_TASK`].
    pub fn report_run(&mut self, task: &str, info: RunInfo) {
        let runs = self.runs.get_or_insert_with(BTreeMap::new);
        let history = runs.entry(task.to_owned()).or_default();
        history.insert(0, info);
        history.truncate(MAX_RUNS_PER_TASK);
    }

    /// Runs of `task`, newest first.
    pub fn runs_of(&self, task: &str) -> &[RunInfo] {
        self.runs
            .as_ref()
            .and_then(|r| r.get(task))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The JSON kopia writes (`json.Marshal`, compact, no newline).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        gojson::to_go_json_text(self, "maintenance schedule")
    }
}

/// Decrypts and parses `kopia.maintenance`.
///
/// [`Error::Corrupt`] if too short, [`Error::Decrypt`] if the tag does not verify (wrong key
/// or damaged blob), [`Error::Json`] if the plaintext is not a schedule.
pub fn decrypt_schedule(key: &[u8; 32], bytes: &[u8]) -> Result<Schedule> {
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return Err(Error::corrupt(
            "maintenance schedule",
            format!("{} bytes is too short", bytes.len()),
        ));
    }
    let (nonce, rest) = bytes.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = ct.to_vec();
    aes_gcm::Aes256Gcm::new(key.into())
        .decrypt_in_place_detached(nonce.into(), SCHEDULE_AAD, &mut buf, tag.into())
        .map_err(|_| Error::Decrypt {
            what: SCHEDULE_BLOB_ID.to_owned(),
        })?;
    serde_json::from_slice(&buf).map_err(|e| Error::json("maintenance schedule", e))
}

/// Serializes and encrypts the schedule with the caller's random `nonce`.
pub fn encrypt_schedule(
    key: &[u8; 32],
    schedule: &Schedule,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>> {
    let json = schedule.to_json()?;
    let mut out = Vec::with_capacity(json.len() + NONCE_LEN + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&json);
    let body = out.get_mut(NONCE_LEN..).unwrap_or_default();
    let tag = aes_gcm::Aes256Gcm::new(key.into())
        .encrypt_in_place_detached((&nonce).into(), SCHEDULE_AAD, body)
        .map_err(|_| Error::invalid("maintenance schedule", "too long for AES-GCM"))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parameters manifest

const HOUR_NS: i64 = 3_600_000_000_000;

/// A quick or full maintenance cycle (`CycleParams`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleParams {
    /// Whether the cycle runs automatically.
    #[serde(default, deserialize_with = "null_default")]
    pub enabled: bool,
    /// Interval between runs in nanoseconds.
    #[serde(default, deserialize_with = "null_default")]
    pub interval: i64,
}

/// Retention of `_log_` blobs (`LogRetentionOptions`); all-zero means "use the defaults".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRetention {
    /// Keep at most this many bytes of logs.
    #[serde(rename = "maxTotalSize", default, deserialize_with = "null_default")]
    pub max_total_size: i64,
    /// Keep at most this many log blobs.
    #[serde(rename = "maxCount", default, deserialize_with = "null_default")]
    pub max_count: i64,
    /// Delete logs older than this (nanoseconds).
    #[serde(rename = "maxAge", default, deserialize_with = "null_default")]
    pub max_age: i64,
}

impl Default for LogRetention {
    /// kopia's `defaultLogRetention()`: 1 GiB, 10 000 blobs, 30 days.
    fn default() -> Self {
        LogRetention {
            max_total_size: 1 << 30,
            max_count: 10_000,
            max_age: 30 * 24 * HOUR_NS,
        }
    }
}

impl LogRetention {
    /// kopia's `OrDefault`: the defaults when all three limits are zero.
    pub fn or_default(&self) -> LogRetention {
        if self.max_total_size == 0 && self.max_count == 0 && self.max_age == 0 {
            LogRetention::default()
        } else {
            self.clone()
        }
    }
}

/// Payload of the maintenance parameters manifest (FORMAT.md §14.1).
///
/// Checked against kopia v0.23.1 `repo/maintenance/maintenance_params.go` and
/// `repo/maintenance/cleanup_logs.go`: JSON keys in this order, **none** omitempty —
/// `owner`, `quick{enabled,interval}`, `full{enabled,interval}`,
/// `logRetention{maxTotalSize,maxCount,maxAge}`, `extendObjectLocks`, `listParallelism`.
/// `DefaultParams()` has an empty owner, quick = 1 h, full = 24 h (both enabled), the default
/// log retention, `extendObjectLocks` false and `listParallelism` 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceParams {
    /// `user@host` allowed to run automatic maintenance.
    #[serde(default, deserialize_with = "null_default")]
    pub owner: String,
    /// Quick cycle.
    #[serde(default = "quick_default", deserialize_with = "null_default_quick")]
    pub quick: CycleParams,
    /// Full cycle.
    #[serde(default = "full_default", deserialize_with = "null_default_full")]
    pub full: CycleParams,
    /// Log retention.
    #[serde(
        rename = "logRetention",
        default = "log_zero",
        deserialize_with = "null_log_zero"
    )]
    pub log_retention: LogRetention,
    /// Extend object-lock retention during full maintenance.
    #[serde(
        rename = "extendObjectLocks",
        default,
        deserialize_with = "null_default"
    )]
    pub extend_object_locks: bool,
    /// Listing parallelism (0 = kopia's default).
    #[serde(rename = "listParallelism", default, deserialize_with = "null_default")]
    pub list_parallelism: i64,
}

// A manifest that lacks a field decodes it to Go's zero value.
fn quick_default() -> CycleParams {
    CycleParams {
        enabled: false,
        interval: 0,
    }
}
fn full_default() -> CycleParams {
    quick_default()
}
fn log_zero() -> LogRetention {
    LogRetention {
        max_total_size: 0,
        max_count: 0,
        max_age: 0,
    }
}
fn null_default_quick<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<CycleParams, D::Error> {
    Ok(Option::<CycleParams>::deserialize(d)?.unwrap_or_else(quick_default))
}
fn null_default_full<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<CycleParams, D::Error> {
    Ok(Option::<CycleParams>::deserialize(d)?.unwrap_or_else(full_default))
}
fn null_log_zero<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<LogRetention, D::Error> {
    Ok(Option::<LogRetention>::deserialize(d)?.unwrap_or_else(log_zero))
}

impl MaintenanceParams {
    /// kopia's `DefaultParams()` with the given owner (`user@host`), as kopia writes it when a
    /// client claims maintenance ownership.
    pub fn default_for_owner(owner: impl Into<String>) -> MaintenanceParams {
        MaintenanceParams {
            owner: owner.into(),
            quick: CycleParams {
                enabled: true,
                interval: HOUR_NS,
            },
            full: CycleParams {
                enabled: true,
                interval: 24 * HOUR_NS,
            },
            log_retention: LogRetention::default(),
            extend_object_locks: false,
            list_parallelism: 0,
        }
    }

    /// True when `user_at_host` owns automatic maintenance.
    pub fn is_owned_by(&self, user_at_host: &str) -> bool {
        self.owner == user_at_host
    }

    /// The manifest payload JSON (`json.Marshal`).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        gojson::to_go_json_text(self, "maintenance params")
    }

    /// Parses a manifest payload.
    pub fn from_json(bytes: &[u8]) -> Result<MaintenanceParams> {
        serde_json::from_slice(bytes).map_err(|e| Error::json("maintenance params", e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key() -> [u8; 32] {
        hex::decode("790dae050a242c02dcde30cf1f6656366615cddbe518cb2235767b81816a9b34")
            .unwrap()
            .try_into()
            .unwrap()
    }

    const V_MAINT_PLAIN: &str = r#"{"nextFullMaintenance":"0001-01-01T00:00:00Z","nextQuickMaintenance":"0001-01-01T00:00:00Z","runs":null}"#;
    const V_MAINT_BLOB: &str = "b0b1b2b3b4b5b6b7b8b9babb8869398358fcea29ce0ec1d62b00875b345cdb1dea95f93ebd5af4f3cb3b2f0bb1eed3884a75155d6729cadf940af08f23a4dc527459a3a14edc161cf0dccdcdd8d6e04b8028d0bdd0e7b2a6580f2dfcc5b3038740604ed9f7c73c460da83efae19ba4755382655680a974ff29f63a84c8a7bdb32d2b3557";

    // TEST-VECTORS.md §V-MAINT (schedule blob; the key itself is checked in repo_format).
    #[test]
    fn v_maint_schedule() {
        let s = Schedule::default();
        assert_eq!(
            String::from_utf8(s.to_json().unwrap()).unwrap(),
            V_MAINT_PLAIN
        );
        let nonce: [u8; 12] = hex::decode("b0b1b2b3b4b5b6b7b8b9babb")
            .unwrap()
            .try_into()
            .unwrap();
        let blob = encrypt_schedule(&key(), &s, nonce).unwrap();
        assert_eq!(hex::encode(&blob), V_MAINT_BLOB);
        let back = decrypt_schedule(&key(), &hex::decode(V_MAINT_BLOB).unwrap()).unwrap();
        assert_eq!(back, s);

        let mut bad = blob.clone();
        bad[30] ^= 1;
        assert!(matches!(
            decrypt_schedule(&key(), &bad),
            Err(Error::Decrypt { .. })
        ));
        assert!(matches!(
            decrypt_schedule(&key(), &blob[..27]),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn schedule_with_runs_roundtrips_like_go() {
        let t0 = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap()
            + chrono::Duration::nanoseconds(120_000_000);
        let mut s = Schedule {
            next_full_maintenance: t0 + chrono::Duration::hours(24),
            next_quick_maintenance: t0 + chrono::Duration::hours(1),
            runs: None,
        };
        s.report_run(
            task::SNAPSHOT_GC,
            RunInfo {
                start: t0,
                end: t0 + chrono::Duration::nanoseconds(1),
                success: true,
                error: String::new(),
                extra: vec![],
            },
        );
        s.report_run(
            task::CLEANUP_LOGS,
            RunInfo {
                start: t0,
                end: t0,
                success: false,
                error: "boom <x>".into(),
                extra: vec![RunExtra {
                    kind: "cleanupLogsStats".into(),
                    data: Some(RawValue::from_string(r#"{"deleted":3}"#.into()).unwrap()),
                }],
            },
        );
        let json = String::from_utf8(s.to_json().unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"nextFullMaintenance":"2024-05-07T07:08:09.12Z","nextQuickMaintenance":"2024-05-06T08:08:09.12Z","runs":{"cleanup-logs":[{"start":"2024-05-06T07:08:09.12Z","end":"2024-05-06T07:08:09.12Z","error":"boom \u003cx\u003e","extra":[{"kind":"cleanupLogsStats","data":{"deleted":3}}]}],"snapshot-gc":[{"start":"2024-05-06T07:08:09.12Z","end":"2024-05-06T07:08:09.120000001Z","success":true}]}}"#
        );
        let nonce = [7u8; 12];
        let back = decrypt_schedule(&key(), &encrypt_schedule(&key(), &s, nonce).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.runs_of(task::SNAPSHOT_GC).len(), 1);
        assert!(back.runs_of(task::EPOCH_ADVANCE).is_empty());

        // Empty-but-present map is `{}`, like a non-nil Go map.
        let empty = Schedule {
            runs: Some(BTreeMap::new()),
            ..Schedule::default()
        };
        assert!(
            String::from_utf8(empty.to_json().unwrap())
                .unwrap()
                .ends_with(r#""runs":{}}"#)
        );
    }

    #[test]
    fn report_run_keeps_newest_fifty() {
        let mut s = Schedule::default();
        for i in 0..60 {
            let t = Utc.timestamp_opt(1_700_000_000 + i, 0).unwrap();
            s.report_run(
                task::SNAPSHOT_GC,
                RunInfo {
                    start: t,
                    end: t,
                    success: true,
                    error: String::new(),
                    extra: vec![],
                },
            );
        }
        let runs = s.runs_of(task::SNAPSHOT_GC);
        assert_eq!(runs.len(), MAX_RUNS_PER_TASK);
        assert_eq!(runs[0].start.timestamp(), 1_700_000_059);
        assert_eq!(runs[49].start.timestamp(), 1_700_000_010);
    }

    #[test]
    fn kopia_local_zone_times_parse() {
        let s: Schedule = serde_json::from_str(
            r#"{"nextFullMaintenance":"2024-05-06T10:00:00.5+02:00","nextQuickMaintenance":"0001-01-01T00:00:00Z","runs":{"snapshot-gc":[{"start":"2024-05-06T10:00:00+02:00","end":"2024-05-06T10:00:01+02:00","success":true,"future":1}]},"other":true}"#,
        )
        .unwrap();
        assert_eq!(
            gojson::time::format(&s.next_full_maintenance),
            "2024-05-06T08:00:00.5Z"
        );
        assert!(s.runs_of(task::SNAPSHOT_GC)[0].success);
        assert!(serde_json::from_str::<Schedule>(r#"{"nextFullMaintenance":"junk"}"#).is_err());
    }

    // FORMAT.md §14.1 default payload.
    #[test]
    fn params_defaults_json() {
        let p = MaintenanceParams::default_for_owner("alice@host");
        let json = String::from_utf8(p.to_json().unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"owner":"alice@host","quick":{"enabled":true,"interval":3600000000000},"full":{"enabled":true,"interval":86400000000000},"logRetention":{"maxTotalSize":1073741824,"maxCount":10000,"maxAge":2592000000000000},"extendObjectLocks":false,"listParallelism":0}"#
        );
        assert_eq!(MaintenanceParams::from_json(json.as_bytes()).unwrap(), p);
        assert!(p.is_owned_by("alice@host"));
        assert!(!p.is_owned_by("bob@host"));

        // Older manifests lack the newer fields; missing values are Go zero values.
        let old = MaintenanceParams::from_json(
            br#"{"owner":"o","quick":{"enabled":true,"interval":1},"full":{"enabled":false,"interval":2}}"#,
        )
        .unwrap();
        assert_eq!(old.log_retention.max_count, 0);
        assert_eq!(old.log_retention.or_default(), LogRetention::default());
        assert!(!old.extend_object_locks);
        assert!(MaintenanceParams::from_json(b"42").is_err());
    }
}
