//! VolSync's Kopia mover environment, turned into a typed [`MoverConfig`].
//!
//! The VolSync operator (the `perfectra1n/volsync` fork, see `MOVER-CONTRACT.md`) starts
//! `/mover-kopia/entry.sh` with argv `backup` or `restore`, or with `DIRECTION=maintenance`
//! and no arguments, and passes everything else through environment variables. This module
//! reads those variables with the same names and defaults, and nothing else: it does no I/O
//! (the caller checks that directories exist, that the CA file is readable, …), so every rule
//! is unit-tested.
//!
//! Conventions, as in the script: an empty variable counts as unset; booleans are true only for
//! `true` (any case; other non-empty values other than `false` add a warning); numbers may be
//! surrounded by blanks. Non-fatal oddities end up in [`MoverConfig::warnings`] for the caller
//! to print as `WARN:` lines.
//!
//! # Operation
//!
//! `DIRECTION` wins when it is `source` (backup), `destination` (restore) or `maintenance`;
//! any other non-empty `DIRECTION` is ignored with a warning. Otherwise the single argument
//! decides: `backup` or `restore`. No argument, several arguments or an unknown one is a usage
//! error (exit 2). `maintenance` as an argument is refused with exit 1, as the script does
//! (maintenance runs only through the KopiaMaintenance CRD's `DIRECTION=maintenance`).
//!
//! # Repository (contract §5)
//!
//! The first match wins, in the script's order: S3 (`KOPIA_S3_BUCKET`, or `KOPIA_REPOSITORY`
//! starting with `s3://`); Azure (`KOPIA_AZURE_CONTAINER`); GCS (`KOPIA_GCS_BUCKET`); filesystem
//! (`KOPIA_REPOSITORY=filesystem:///abs/path`, else the legacy `KOPIA_FS_PATH`, else a bare
//! absolute path in `KOPIA_REPOSITORY`); B2 (`KOPIA_B2_BUCKET`); WebDAV (`WEBDAV_URL`); SFTP
//! (`SFTP_HOST`); rclone (`RCLONE_REMOTE_PATH`); Google Drive (`GOOGLE_DRIVE_FOLDER_ID`); then the
//! scheme of `KOPIA_REPOSITORY` (`gcs://`, `azure://`, …). arkiv supports S3, filesystem, Azure,
//! GCS, B2, WebDAV, SFTP and rclone (their variables: `crate::connect::azure_env`,
//! `crate::connect::b2_env`, `crate::connect::webdav_env` and `crate::connect::sftp_env`);
//! Google Drive is
//! [`ConfigError::UnsupportedBackend`], one line, exit 1. Nothing at all is
//! [`ConfigError::NoRepository`].
//!
//! # Variables
//!
//! | Variable | Default | What arkiv does |
//! |---|---|---|
//! | first argument | — | `backup` / `restore` (see above) |
//! | `DIRECTION` | unset | `source` / `destination` / `maintenance`; wins over argv |
//! | `DATA_DIR` | — (required for backup/restore) | files are read from / restored into it |
//! | `KOPIA_PASSWORD` | — (required) | repository password ([`Secret`]) |
//! | `KOPIA_REPOSITORY` | — | `s3://bucket[/prefix]`, `filesystem:///path`, `azure://container[/prefix]`, `gcs://bucket[/prefix]`, `webdav(s)://host/path`, `rclone://remote:path`; other schemes unsupported |
//! | `KOPIA_FS_PATH` | unset | legacy alias: filesystem repository path when `KOPIA_REPOSITORY` names none |
//! | `KOPIA_S3_BUCKET` | bucket of the `s3://` URL | S3 bucket (wins over the URL's; the URL's prefix is still used) |
//! | `KOPIA_S3_ENDPOINT` ▸ `AWS_S3_ENDPOINT` | `s3.amazonaws.com` | S3 endpoint; a leading `http://`/`https://` is stripped and does not change TLS |
//! | `KOPIA_S3_DISABLE_TLS`, `AWS_S3_DISABLE_TLS` | false | either `true` ⇒ plain HTTP |
//! | `AWS_REGION` ▸ `AWS_DEFAULT_REGION` | unset | S3 region |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | unset | S3 credentials ([`Secret`]) |
//! | `AWS_PROFILE` | unset | ignored (the script ignores it too) |
//! | `ARKIV_S3_RETRY_TIMEOUT` | `180s` | S3 retry budget: seconds or a Go duration (`5m`); transient failures (5xx, resets, refused connections, cut bodies) are retried with backoff until it is spent; junk ⇒ error |
//! | `CUSTOM_CA` ▸ `KOPIA_CUSTOM_CA` | unset | CA bundle for S3 TLS (alias per contract §11; the CRD sets the latter for maintenance) |
//! | `KOPIA_OVERRIDE_USERNAME`, `KOPIA_OVERRIDE_HOSTNAME` | — (required for backup/restore) | snapshot identity `user@host:path` |
//! | `KOPIA_SOURCE_PATH_OVERRIDE` | `/data` | path of the identity (must be absolute); files are still read from `DATA_DIR` |
//! | `KOPIA_CACHE_DIR` | `/cache` | the local cache (`<dir>/<repository id>/cache.sqlite`) and the client configuration (`arkiv.config`); unusable (read-only, full) ⇒ one warning, the run goes on uncached; usage is reported when a run fails |
//! | `KOPIA_CACHE_CAPACITY_BYTES` | 8589934592 (8 GiB) | size of the cache volume: the cache keeps at most 60 % of it ([`MoverConfig::cache_limits`]); a stop with the volume ≥ 90 % full exits 137 |
//! | `KOPIA_METADATA_CACHE_SIZE_LIMIT_MB` | unset (500 MiB) | bound of the cached metadata packs; `0` = no own bound (the capacity still applies); non-numeric ⇒ warning |
//! | `KOPIA_CONTENT_CACHE_SIZE_LIMIT_MB` | unset (20 % of the capacity, VolSync's auto value) | bound of the data contents a restore keeps in the cache for the next restore; `0` = the default; non-numeric ⇒ warning |
//! | `KOPIA_SKIP_CACHE_CONFIG` | false | `true`: the limits recorded in `arkiv.config` by the last run are kept (the script skips `kopia cache set`) |
//! | `KOPIA_FORCE_CACHE_REBUILD` | false | `true`: the local cache is emptied before the run |
//! | `KOPIA_MANUAL_CONFIG` | unset | JSON; see [`ManualConfig`] for the keys used; others ⇒ warnings |
//! | `KOPIA_ADDITIONAL_ARGS` | empty | split on the literal `|VOLSYNC_ARG_SEP|`, empty pieces dropped; for the snapshot/restore step only |
//! | `KOPIA_COMPRESSION` | unset | compression of new snapshots (name checked by the engine) |
//! | `KOPIA_PARALLELISM` | unset (engine default) | upload parallelism; `0` = engine default; junk ⇒ error |
//! | `KOPIA_RETAIN_LATEST/HOURLY/DAILY/WEEKLY/MONTHLY/YEARLY` | unset (Kopia defaults 10/48/7/4/24/3 apply) | retention policy of the snapshot's source, applied after the backup; junk ⇒ warning, ignored |
//! | `KOPIA_BEFORE_SNAPSHOT`, `KOPIA_AFTER_SNAPSHOT` | unset | shell snippets around the snapshot (before failing ⇒ exit 1, after failing ⇒ warning) |
//! | `KOPIA_PREVIOUS` | 0 | restore: skip this many newest eligible snapshots; junk ⇒ error |
//! | `KOPIA_RESTORE_AS_OF` | unset | restore: newest snapshot started at or before this RFC 3339 time (any offset); junk ⇒ error |
//! | `KOPIA_SHALLOW` | unset | carried; it never changes which snapshot the script picks, nor arkiv's |
//! | `KOPIA_ENABLE_FILE_DELETION` | false | restore: remove files absent from the snapshot, only once a snapshot is selected |
//! | `KOPIA_DISCOVER_SNAPSHOTS` | false (VolSync sets `true` for restores) | print the discovery block when nothing is restored |
//! | `ARKIV_FAIL_IF_NO_SNAPSHOT` | false | restore: no eligible snapshot ⇒ exit 1 instead of 0 |
//! | `ARKIV_MAINTENANCE_OWNER` ▸ `KOPIA_OVERRIDE_MAINTENANCE_USERNAME` | `maintenance@volsync` | maintenance owner; `user` means `user@volsync` |
//! | `KOPIA_LOG_LEVEL` | unset (arkiv's `warn`) | level of the engine's stderr log: `debug`, `info`, `warning`, `error` (`ARKIV_LOG` wins); other values ⇒ warning |
//! | `KOPIA_FILE_LOG_LEVEL` | `info` | read, not applied (no log files are written): a set value is named in a warning |
//! | `KOPIA_LOG_DIR_MAX_FILES`, `KOPIA_LOG_DIR_MAX_AGE` | 3, `4h` | read, not applied (no log directory is written): a set value is named in a warning |
//! | `KOPIA_CONTENT_LOG_DIR_MAX_FILES`, `KOPIA_CONTENT_LOG_DIR_MAX_AGE` | 3, `4h` | same |
//! | `KOPIA_CONFIG_PATH`, `KOPIA_GLOBAL_POLICY_FILE` | unset | `policyConfig`'s global policy (only when the directory is mounted): a backup stores the script's keys (retention, compression, snapshot interval, ignore rules, cache directories) in the global policy before its snapshot; one warning per other key ([`super::policy_config`]) |
//! | `KOPIA_REPOSITORY_CONFIG_FILE` | unset | `policyConfig`'s repository config (under `KOPIA_CONFIG_PATH`): `enableActions` gates the hooks; one warning per other key (`uploadSpeed`, `downloadSpeed`, …) |
//! | `KOPIA_STRUCTURED_REPOSITORY_CONFIG` | unset | inline repository config: the connection still comes from `KOPIA_REPOSITORY` and the backend variables; one warning per key other than `hostname`/`username` |
//! | `DEBUG_MOVER` | unset | `1` ⇒ sleep until `/tmp/exit-debug-if-removed` is deleted, then exit 0 |
//! | `PRIVILEGED_MOVER` | unset | carried; unused (the script ignores it too) |
//! | `HTTP_PROXY`▸`http_proxy`, `HTTPS_PROXY`▸`https_proxy`, `NO_PROXY`▸`no_proxy` | unset | read ([`Secret`]: URLs may hold credentials), not applied: a set proxy is named in a warning |
//! | `version`, `builddate` | unset | printed in the start-up banner |
//! | `ARKIV_DIRECT_IO` | on | `off` (or `0`, `false`, `no`) ⇒ buffered writes instead of `O_DIRECT` for packs and large restored files |
//! | `KOPIA_MANUAL_CONFIG.arkiv`, `ARKIV_SOURCE_MARKER`, `ARKIV_JITTER_*`, `ARKIV_PUSHGATEWAY_URL`, `ARKIV_METRICS_TEXTFILE`, `ARKIV_RESTORE_DRY_RUN`, `ARKIV_REPO_*` | off | arkiv's opt-in features: see [`super::features`] |
//! | `ARKIV_TEST_NOW` | unset | tests only: an RFC 3339 time the mover's clock stands still at (snapshot times, retention); junk ⇒ error |

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use arkiv_engine::cache::CacheLimits;
use arkiv_engine::snapshot::select::SnapshotQuery;
use arkiv_format::gojson;
use arkiv_format::snapshot::SourceInfo;
use chrono::{DateTime, FixedOffset, Utc};

use crate::exit::volsync as exit;

/// The literal separator VolSync puts between `additionalArgs`.
pub const ARG_SEPARATOR: &str = "|VOLSYNC_ARG_SEP|";
/// `KOPIA_CACHE_DIR` when unset (VolSync always sets it to this).
pub const DEFAULT_CACHE_DIR: &str = "/cache";
/// `KOPIA_CACHE_CAPACITY_BYTES` when unset: 8 GiB, the emptyDir size VolSync uses by default.
pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 8 * 1024 * 1024 * 1024;
/// The snapshot path when `KOPIA_SOURCE_PATH_OVERRIDE` is unset: where VolSync mounts a source.
pub const DEFAULT_SOURCE_PATH: &str = "/data";
/// The S3 endpoint when neither `KOPIA_S3_ENDPOINT` nor `AWS_S3_ENDPOINT` is set.
pub const DEFAULT_S3_ENDPOINT: &str = "s3.amazonaws.com";
/// Maintenance owner user name when nothing overrides it.
pub const DEFAULT_MAINTENANCE_USER: &str = "maintenance";
/// Maintenance owner host name, also used when an override gives only a user name.
pub const DEFAULT_MAINTENANCE_HOST: &str = "volsync";

pub use crate::render::volsync::Operation;

/// A value that must never be printed. `Debug` shows `<redacted>`; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for handing to the engine.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the repository lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepositoryTarget {
    /// A directory (local disk, NFS, a `moverVolumes` PVC under `/mnt`).
    Filesystem {
        /// Absolute path without `..` components.
        path: PathBuf,
    },
    /// An S3-compatible bucket.
    S3(Box<S3Target>),
    /// Azure Blob, GCS, WebDAV or rclone, configured by the backend's variables (see
    /// `crate::connect::azure_env` and `crate::connect::webdav_env`).
    Remote(Box<crate::connect::RepoSpec>),
}

impl RepositoryTarget {
    /// `filesystem:///path` or `s3://bucket/prefix` (no credentials), for log lines.
    pub fn describe(&self) -> String {
        match self {
            RepositoryTarget::Filesystem { path } => format!("filesystem://{}", path.display()),
            RepositoryTarget::S3(s3) => {
                format!("s3://{}/{} at {}", s3.bucket, s3.prefix, s3.endpoint)
            }
            RepositoryTarget::Remote(spec) => spec.describe(),
        }
    }
}

/// S3 settings, resolved as the script resolves them (contract §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Target {
    /// `KOPIA_S3_BUCKET`, else the bucket of the `s3://` URL.
    pub bucket: String,
    /// Object key prefix: the path of the `s3://` URL with `//` collapsed and a trailing `/`
    /// added; empty when the URL has no path.
    pub prefix: String,
    /// Host (and port) only: any `http://`/`https://` given is stripped.
    pub endpoint: String,
    /// `KOPIA_S3_DISABLE_TLS` or `AWS_S3_DISABLE_TLS` is `true`.
    pub disable_tls: bool,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<Secret>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<Secret>,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<Secret>,
    /// `CUSTOM_CA`, else `KOPIA_CUSTOM_CA`: a PEM file of extra roots. The runner uses it only
    /// if the file exists, as the script does.
    pub ca_bundle: Option<PathBuf>,
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (see `crate::connect::proxy_env`).
    pub proxy: arkiv_engine::blob::proxy::ProxyOptions,
    /// `ARKIV_S3_RETRY_TIMEOUT`: the retry budget (`None`: the engine's default).
    pub retry_timeout: Option<std::time::Duration>,
}

/// A snapshot source: `user@host:path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `KOPIA_OVERRIDE_USERNAME`.
    pub username: String,
    /// `KOPIA_OVERRIDE_HOSTNAME`.
    pub hostname: String,
    /// `KOPIA_SOURCE_PATH_OVERRIDE`, else `/data`.
    pub path: String,
}

impl Identity {
    /// The identity as a snapshot source.
    pub fn source(&self) -> SourceInfo {
        SourceInfo {
            host: self.hostname.clone(),
            user_name: self.username.clone(),
            path: self.path.clone(),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.username, self.hostname, self.path)
    }
}

/// A client identity without a path (`user@host`), e.g. the maintenance owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientId {
    /// User name.
    pub username: String,
    /// Host name.
    pub hostname: String,
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.username, self.hostname)
    }
}

/// The cache directory and its limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// `KOPIA_CACHE_DIR` (default `/cache`).
    pub dir: PathBuf,
    /// `KOPIA_CACHE_CAPACITY_BYTES` (default 8 GiB).
    pub capacity_bytes: u64,
    /// `KOPIA_METADATA_CACHE_SIZE_LIMIT_MB`; `None` = engine default.
    pub metadata_limit_mb: Option<u64>,
    /// `KOPIA_CONTENT_CACHE_SIZE_LIMIT_MB`; `None` = engine default.
    pub content_limit_mb: Option<u64>,
    /// `KOPIA_SKIP_CACHE_CONFIG=true`: the controller saw the same limits applied last time.
    pub skip_reconfigure: bool,
    /// `KOPIA_FORCE_CACHE_REBUILD=true`: empty the local cache before the run.
    pub force_rebuild: bool,
}

/// Share of `KOPIA_CACHE_CAPACITY_BYTES` the local cache's tables may fill: the rest holds
/// the SQLite write-ahead log, `arkiv.config`, and stays below the 90 % exhaustion line.
pub const CACHE_CAPACITY_PERCENT: u64 = 60;

/// Share of `KOPIA_CACHE_CAPACITY_BYTES` the data content table gets when
/// `KOPIA_CONTENT_CACHE_SIZE_LIMIT_MB` is unset (VolSync's own auto value for that variable).
pub const CONTENT_CACHE_AUTO_PERCENT: u64 = 20;

impl CacheSettings {
    /// arkiv's client configuration file, beside the caches (`/cache/arkiv.config`), so a cache
    /// PVC keeps it between runs the way it keeps Kopia's `kopia.config`.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("arkiv.config")
    }

    /// The bounded log directory (`/cache/logs`).
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }
}

/// `KOPIA_RETAIN_*`: how many snapshots of each kind to keep; `None` leaves the policy's value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// `KOPIA_RETAIN_LATEST` (Kopia `--keep-latest`).
    pub latest: Option<u32>,
    /// `KOPIA_RETAIN_HOURLY`.
    pub hourly: Option<u32>,
    /// `KOPIA_RETAIN_DAILY`.
    pub daily: Option<u32>,
    /// `KOPIA_RETAIN_WEEKLY`.
    pub weekly: Option<u32>,
    /// `KOPIA_RETAIN_MONTHLY`.
    pub monthly: Option<u32>,
    /// `KOPIA_RETAIN_YEARLY` (Kopia `--keep-annual`).
    pub annual: Option<u32>,
}

impl Retention {
    /// True when no `KOPIA_RETAIN_*` is set (Kopia's defaults then apply).
    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }
}

/// Which snapshot a restore picks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreSelection {
    /// `KOPIA_PREVIOUS`: skip this many of the newest eligible snapshots (0 = newest).
    pub previous: u32,
    /// `KOPIA_RESTORE_AS_OF`: only snapshots whose start time is at or before this instant.
    pub restore_as_of: Option<DateTime<FixedOffset>>,
    /// `KOPIA_SHALLOW`: carried for completeness; the script's window always starts at
    /// `previous`, so it never changes the pick, and arkiv ignores it.
    pub shallow: Option<u32>,
}

impl RestoreSelection {
    /// The engine query for `source`: `restore_as_of` compares instants, so any offset works.
    pub fn query(&self, source: SourceInfo) -> SnapshotQuery {
        SnapshotQuery {
            source: Some(source),
            previous: self.previous,
            as_of: self.restore_as_of.map(|t| t.with_timezone(&Utc)),
        }
    }
}

/// The keys of `KOPIA_MANUAL_CONFIG` that map to arkiv settings. Encryption, splitter, hash
/// and compression apply only when arkiv creates a repository (as in the script);
/// `caching.maxCacheSize` bounds the local cache on every run; the `arkiv` section holds
/// arkiv's own settings. Other keys — `compression.minSize`, `compression.maxSize` (no such
/// Kopia v0.22 flags exist either) and anything unknown — are ignored with a warning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManualConfig {
    /// `encryption.algorithm`: the new repository's encryption (e.g. `AES256-GCM-HMAC-SHA256`).
    pub encryption: Option<String>,
    /// `splitter.algorithm`: the new repository's splitter (e.g. `DYNAMIC-4M-BUZHASH`).
    pub splitter: Option<String>,
    /// `compression.algorithm`: the new repository's global-policy compression
    /// (`KOPIA_COMPRESSION` still wins for the backed-up source).
    pub compression: Option<String>,
    /// `caching.maxCacheSize` (bytes, as in Kopia's `repository.config`): a bound on the
    /// whole local cache, applied on every run.
    pub max_cache_size: Option<u64>,
    /// `hash.algorithm`: the new repository's hash (e.g. `BLAKE2B-256-128`).
    pub hash: Option<String>,
    /// `arkiv.failIfNoSnapshot`: a restore that finds no eligible snapshot fails (exit 1)
    /// instead of succeeding with nothing restored.
    pub fail_if_no_snapshot: Option<bool>,
}

/// Logging knobs (contract §3.4; VolSync sets them only for maintenance jobs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// `KOPIA_LOG_LEVEL` (default `info`).
    pub level: String,
    /// `KOPIA_FILE_LOG_LEVEL` (default `info`); `debug` also enables `DEBUG:` lines.
    pub file_level: String,
    /// `KOPIA_LOG_DIR_MAX_FILES` (default 3).
    pub max_files: u32,
    /// `KOPIA_LOG_DIR_MAX_AGE` (default 4 h; Go duration syntax).
    pub max_age: Duration,
    /// `KOPIA_CONTENT_LOG_DIR_MAX_FILES` (default 3).
    pub content_max_files: u32,
    /// `KOPIA_CONTENT_LOG_DIR_MAX_AGE` (default 4 h).
    pub content_max_age: Duration,
}

/// `policyConfig` inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyFiles {
    /// `KOPIA_CONFIG_PATH` (`/kopia-config`).
    pub config_dir: Option<PathBuf>,
    /// `KOPIA_GLOBAL_POLICY_FILE`.
    pub global_policy_file: Option<PathBuf>,
    /// `KOPIA_REPOSITORY_CONFIG_FILE`.
    pub repository_config_file: Option<PathBuf>,
    /// `KOPIA_STRUCTURED_REPOSITORY_CONFIG`: inline JSON that may hold storage credentials.
    /// Not used to connect; each of its keys that is not applied gets a warning.
    pub structured_repository_config: Option<Secret>,
}

/// Proxy variables, upper case winning over lower case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// `HTTP_PROXY` ▸ `http_proxy`.
    pub http: Option<Secret>,
    /// `HTTPS_PROXY` ▸ `https_proxy`.
    pub https: Option<Secret>,
    /// `NO_PROXY` ▸ `no_proxy`.
    pub no_proxy: Option<String>,
}

/// Everything the mover needs, read once at start: what every operation uses, and the
/// settings of the one operation asked for ([`OperationConfig`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoverConfig {
    /// The repository.
    pub repository: RepositoryTarget,
    /// `KOPIA_PASSWORD`.
    pub password: Secret,
    /// Cache directory and limits.
    pub cache: CacheSettings,
    /// `ARKIV_MAINTENANCE_OWNER` ▸ `KOPIA_OVERRIDE_MAINTENANCE_USERNAME` ▸ `maintenance@volsync`:
    /// who runs maintenance, recorded when a backup creates the repository.
    pub maintenance_owner: ClientId,
    /// `KOPIA_MANUAL_CONFIG`, the keys arkiv uses (applied when a backup creates the
    /// repository).
    pub manual_config: ManualConfig,
    /// Logging knobs.
    pub log: LogSettings,
    /// `policyConfig` inputs.
    pub policy_files: PolicyFiles,
    /// Proxies.
    pub proxy: ProxySettings,
    /// `DEBUG_MOVER=1`.
    pub debug_mover: bool,
    /// `PRIVILEGED_MOVER=1`: unused (the script ignores it too).
    pub privileged_mover: bool,
    /// `version` (image build).
    pub version: Option<String>,
    /// `builddate` (image build).
    pub build_date: Option<String>,
    /// `ARKIV_TEST_NOW`: a fixed "now" for tests that simulate time (never set in production).
    pub test_now: Option<DateTime<Utc>>,
    /// `ARKIV_DIRECT_IO` (default on): `O_DIRECT` for pack writes and large restored files.
    pub direct_io: bool,
    /// Non-fatal problems, one line each, for the caller to print as `WARN:` lines.
    pub warnings: Vec<String>,
    /// The operation and its own settings.
    pub operation: OperationConfig,
    /// arkiv's opt-in features (`KOPIA_MANUAL_CONFIG.arkiv`, `ARKIV_*`; see
    /// [`super::features`]).
    pub features: super::features::Features,
}

impl MoverConfig {
    /// Which operation this is.
    pub fn operation(&self) -> Operation {
        match self.operation {
            OperationConfig::Backup(_) => Operation::Backup,
            OperationConfig::Restore(_) => Operation::Restore,
            OperationConfig::Maintenance => Operation::Maintenance,
            OperationConfig::Verify(_) => Operation::Verify,
        }
    }

    /// The local cache's bounds for this run: the metadata pack table gets
    /// `KOPIA_METADATA_CACHE_SIZE_LIMIT_MB` (default and `0`: the engine's 500 MiB), the
    /// index blob table the engine's default, the data content table
    /// `KOPIA_CONTENT_CACHE_SIZE_LIMIT_MB` (default and `0`: [`CONTENT_CACHE_AUTO_PERCENT`] %
    /// of the capacity, VolSync's own auto value); together they are scaled down to at most
    /// [`CACHE_CAPACITY_PERCENT`] % of `KOPIA_CACHE_CAPACITY_BYTES` and to
    /// `KOPIA_MANUAL_CONFIG.caching.maxCacheSize`. With `KOPIA_SKIP_CACHE_CONFIG=true` the
    /// limits recorded in `arkiv.config` by the last run are kept, as the script keeps the
    /// limits Kopia stored. (The engine further fits them to the free space.)
    pub fn cache_limits(&self) -> CacheLimits {
        let config = self.cache.config_file();
        let recorded = |key: &str, now: Option<u64>| {
            if self.cache.skip_reconfigure {
                recorded_limit_mb(&config, key).unwrap_or(now)
            } else {
                now
            }
        };
        let metadata_mb = recorded("metadataCacheSizeLimitMB", self.cache.metadata_limit_mb);
        let content_mb = recorded("contentCacheSizeLimitMB", self.cache.content_limit_mb);
        let defaults = CacheLimits::default();
        let limits = CacheLimits {
            metadata_bytes: metadata_mb
                .filter(|mb| *mb > 0)
                .map_or(defaults.metadata_bytes, |mb| mb.saturating_mul(1 << 20)),
            index_bytes: defaults.index_bytes,
            content_bytes: content_mb.filter(|mb| *mb > 0).map_or(
                self.cache.capacity_bytes / 100 * CONTENT_CACHE_AUTO_PERCENT,
                |mb| mb.saturating_mul(1 << 20),
            ),
        };
        let mut total = self.cache.capacity_bytes / 100 * CACHE_CAPACITY_PERCENT;
        if let Some(max) = self.manual_config.max_cache_size.filter(|m| *m > 0) {
            total = total.min(max);
        }
        limits.capped(total)
    }
}

/// A cache limit (`metadataCacheSizeLimitMB`, `contentCacheSizeLimitMB`) as the last run
/// recorded it in `arkiv.config` (`Some(None)`: recorded as unset); `None` when there is no
/// readable record.
fn recorded_limit_mb(file: &Path, key: &str) -> Option<Option<u64>> {
    let text = std::fs::read_to_string(file).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    let v = doc.get(key)?;
    if v.is_null() {
        Some(None)
    } else {
        v.as_u64().map(Some)
    }
}

/// The settings of one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationConfig {
    /// argv `backup` or `DIRECTION=source`.
    Backup(BackupConfig),
    /// argv `restore` or `DIRECTION=destination`.
    Restore(RestoreConfig),
    /// `DIRECTION=maintenance`: only the shared settings (owner, repository).
    Maintenance,
    /// `DIRECTION=verify` (arkiv's verify job, [`super::verify`]).
    Verify(super::verify::VerifyConfig),
}

/// What a backup reads besides the shared settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupConfig {
    /// `DATA_DIR`: the files to back up.
    pub data_dir: PathBuf,
    /// The snapshot source.
    pub identity: Identity,
    /// `KOPIA_COMPRESSION`.
    pub compression: Option<String>,
    /// `KOPIA_PARALLELISM`; `None` or `Some(0)` = engine default.
    pub parallelism: Option<u32>,
    /// `KOPIA_RETAIN_*`.
    pub retention: Retention,
    /// `KOPIA_BEFORE_SNAPSHOT`.
    pub before_snapshot: Option<String>,
    /// `KOPIA_AFTER_SNAPSHOT`.
    pub after_snapshot: Option<String>,
    /// `KOPIA_ADDITIONAL_ARGS`, split on [`ARG_SEPARATOR`], empty pieces dropped.
    pub additional_args: Vec<String>,
}

/// What a restore reads besides the shared settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreConfig {
    /// `DATA_DIR`: where files are restored.
    pub data_dir: PathBuf,
    /// The snapshot source to restore from.
    pub identity: Identity,
    /// `KOPIA_PREVIOUS`, `KOPIA_RESTORE_AS_OF`, `KOPIA_SHALLOW`.
    pub selection: RestoreSelection,
    /// `KOPIA_ENABLE_FILE_DELETION`.
    pub enable_file_deletion: bool,
    /// `KOPIA_DISCOVER_SNAPSHOTS`.
    pub discover_snapshots: bool,
    /// `ARKIV_FAIL_IF_NO_SNAPSHOT`.
    pub fail_if_no_snapshot: bool,
    /// `KOPIA_ADDITIONAL_ARGS` (none of them changes a restore; each is named in a warning).
    pub additional_args: Vec<String>,
}

/// Why the environment cannot be used. [`ConfigError::exit_code`] gives the contract's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// argv names no operation and `DIRECTION` is unset.
    #[error(
        "no operation given: expected argument backup or restore, or DIRECTION=source|destination|maintenance"
    )]
    NoOperation,
    /// argv names something else.
    #[error("unknown operation: {0} (expected backup or restore)")]
    UnknownOperation(String),
    /// argv has more than one word.
    #[error("expected exactly one operation (backup or restore), got: {}", .0.join(" "))]
    TooManyOperations(Vec<String>),
    /// `maintenance` as an argument.
    #[error(
        "maintenance as an argument is not supported; maintenance runs with DIRECTION=maintenance (KopiaMaintenance)"
    )]
    MaintenanceArgument,
    /// A required variable is unset or empty.
    #[error("{0} is required but not set")]
    Missing(&'static str),
    /// A variable's value cannot be used. Never built for secret variables.
    #[error("invalid {var}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A backend arkiv does not implement.
    #[error(
        "unsupported backend {0}: arkiv supports S3, filesystem, Azure, GCS, B2, WebDAV, SFTP and rclone repositories"
    )]
    UnsupportedBackend(String),
    /// A backend's variables cannot be used (the message names them; never a secret value).
    #[error("{0}")]
    Backend(String),
    /// No variable names a repository.
    #[error(
        "no repository configuration found: set KOPIA_REPOSITORY (s3://bucket/prefix or filesystem:///path) or KOPIA_S3_BUCKET"
    )]
    NoRepository,
}

impl ConfigError {
    /// 2 for usage errors (no/unknown operation), 1 for everything else (contract §6.8).
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::NoOperation
            | ConfigError::UnknownOperation(_)
            | ConfigError::TooManyOperations(_) => exit::USAGE,
            _ => exit::FAILURE,
        }
    }
}

/// Reads variables with the script's conventions and collects warnings.
struct Vars<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    warnings: Vec<String>,
}

impl Vars<'_> {
    /// The value, or `None` when unset or empty.
    fn get(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty())
    }

    /// The first of `names` that is set.
    fn first(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| self.get(n))
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.get(name).map(PathBuf::from)
    }

    fn flag(&mut self, name: &str) -> bool {
        match self.get(name) {
            None => false,
            Some(v) => {
                let t = v.trim();
                if t.eq_ignore_ascii_case("true") {
                    true
                } else {
                    if !t.eq_ignore_ascii_case("false") {
                        self.warnings.push(format!(
                            "{name}={v:?} is not true or false; treated as false"
                        ));
                    }
                    false
                }
            }
        }
    }

    /// A number that must be valid (bad input is an error).
    fn number_strict(&self, name: &'static str) -> Result<Option<u32>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .map(Some)
                .map_err(|_| ConfigError::Invalid {
                    var: name,
                    value: v,
                    reason: "expected a non-negative whole number".into(),
                }),
        }
    }

    /// A number whose bad values are ignored with a warning (tuning knobs, as in the script).
    fn number_lenient<T: std::str::FromStr>(&mut self, name: &str) -> Option<T> {
        let v = self.get(name)?;
        match v.trim().parse::<T>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.warnings.push(format!(
                    "{name}={v:?} is not a non-negative whole number; ignored"
                ));
                None
            }
        }
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(Secret)
    }
}

impl MoverConfig {
    /// Builds the configuration from the arguments after the program name (`backup` or
    /// `restore`) and an environment lookup (`|k| std::env::var(k).ok()` in production).
    pub fn from_env(
        args: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<MoverConfig, ConfigError> {
        let mut vars = Vars {
            env,
            warnings: Vec::new(),
        };
        let operation = operation(args, &mut vars)?;

        // Password first: nothing works without it (the script checks it before anything else).
        let password = vars
            .get("KOPIA_PASSWORD")
            .map(Secret)
            .ok_or(ConfigError::Missing("KOPIA_PASSWORD"))?;

        let data_dir = vars.path("DATA_DIR");
        if data_dir.is_none() && !matches!(operation, Operation::Maintenance | Operation::Verify) {
            return Err(ConfigError::Missing("DATA_DIR"));
        }

        let repository = repository(&mut vars)?;
        let maintenance_owner = maintenance_owner(&vars)?;
        let operation = match (operation, data_dir) {
            (Operation::Verify, _) => {
                OperationConfig::Verify(super::verify::VerifyConfig::from_env(env)?)
            }
            (Operation::Maintenance, _) | (_, None) => OperationConfig::Maintenance,
            (Operation::Backup, Some(data_dir)) => OperationConfig::Backup(BackupConfig {
                data_dir,
                identity: identity(&vars)?,
                parallelism: vars.number_strict("KOPIA_PARALLELISM")?,
                compression: vars.get("KOPIA_COMPRESSION"),
                retention: Retention {
                    latest: vars.number_lenient("KOPIA_RETAIN_LATEST"),
                    hourly: vars.number_lenient("KOPIA_RETAIN_HOURLY"),
                    daily: vars.number_lenient("KOPIA_RETAIN_DAILY"),
                    weekly: vars.number_lenient("KOPIA_RETAIN_WEEKLY"),
                    monthly: vars.number_lenient("KOPIA_RETAIN_MONTHLY"),
                    annual: vars.number_lenient("KOPIA_RETAIN_YEARLY"),
                },
                before_snapshot: vars.get("KOPIA_BEFORE_SNAPSHOT"),
                after_snapshot: vars.get("KOPIA_AFTER_SNAPSHOT"),
                additional_args: additional_args(&vars),
            }),
            (Operation::Restore, Some(data_dir)) => OperationConfig::Restore(RestoreConfig {
                data_dir,
                identity: identity(&vars)?,
                selection: restore_selection(&mut vars)?,
                enable_file_deletion: vars.flag("KOPIA_ENABLE_FILE_DELETION"),
                discover_snapshots: vars.flag("KOPIA_DISCOVER_SNAPSHOTS"),
                fail_if_no_snapshot: vars.flag("ARKIV_FAIL_IF_NO_SNAPSHOT"),
                additional_args: additional_args(&vars),
            }),
        };

        let cache = CacheSettings {
            dir: vars
                .path("KOPIA_CACHE_DIR")
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR)),
            capacity_bytes: vars
                .number_lenient("KOPIA_CACHE_CAPACITY_BYTES")
                .unwrap_or(DEFAULT_CACHE_CAPACITY_BYTES),
            metadata_limit_mb: vars.number_lenient("KOPIA_METADATA_CACHE_SIZE_LIMIT_MB"),
            content_limit_mb: vars.number_lenient("KOPIA_CONTENT_CACHE_SIZE_LIMIT_MB"),
            skip_reconfigure: vars.flag("KOPIA_SKIP_CACHE_CONFIG"),
            force_rebuild: vars.flag("KOPIA_FORCE_CACHE_REBUILD"),
        };

        if let Some(l) = vars.get("KOPIA_LOG_LEVEL") {
            if engine_log_level(&l).is_none() {
                vars.warnings.push(format!(
                    "KOPIA_LOG_LEVEL={l:?} is not debug, info, warning or error; ignored"
                ));
            }
        }
        let log = LogSettings {
            level: vars.get("KOPIA_LOG_LEVEL").unwrap_or_else(|| "info".into()),
            file_level: vars
                .get("KOPIA_FILE_LOG_LEVEL")
                .unwrap_or_else(|| "info".into()),
            max_files: vars.number_lenient("KOPIA_LOG_DIR_MAX_FILES").unwrap_or(3),
            max_age: duration_var(&mut vars, "KOPIA_LOG_DIR_MAX_AGE"),
            content_max_files: vars
                .number_lenient("KOPIA_CONTENT_LOG_DIR_MAX_FILES")
                .unwrap_or(3),
            content_max_age: duration_var(&mut vars, "KOPIA_CONTENT_LOG_DIR_MAX_AGE"),
        };

        let policy_files = PolicyFiles {
            config_dir: vars.path("KOPIA_CONFIG_PATH"),
            global_policy_file: vars.path("KOPIA_GLOBAL_POLICY_FILE"),
            repository_config_file: vars.path("KOPIA_REPOSITORY_CONFIG_FILE"),
            structured_repository_config: vars.secret("KOPIA_STRUCTURED_REPOSITORY_CONFIG"),
        };
        if let Some(json) = &policy_files.structured_repository_config {
            vars.warnings
                .extend(super::policy_config::structured_config_warnings(
                    json.expose(),
                ));
        }

        let proxy = ProxySettings {
            http: vars.first(&["HTTP_PROXY", "http_proxy"]).map(Secret),
            https: vars.first(&["HTTPS_PROXY", "https_proxy"]).map(Secret),
            no_proxy: vars.first(&["NO_PROXY", "no_proxy"]),
        };

        not_applied_warnings(&mut vars);

        let manual_config = match vars.get("KOPIA_MANUAL_CONFIG") {
            Some(json) => parse_manual_config(&json, &mut vars.warnings),
            None => ManualConfig::default(),
        };

        let features = super::features::read(env, &mut vars.warnings)?;

        let test_now = match vars.get("ARKIV_TEST_NOW") {
            None => None,
            Some(v) => Some(
                parse_time(&v)
                    .ok_or_else(|| ConfigError::Invalid {
                        var: "ARKIV_TEST_NOW",
                        value: v.clone(),
                        reason: "expected an RFC 3339 time".into(),
                    })?
                    .with_timezone(&Utc),
            ),
        };

        Ok(MoverConfig {
            repository,
            password,
            cache,
            maintenance_owner,
            manual_config,
            log,
            policy_files,
            proxy,
            debug_mover: vars.get("DEBUG_MOVER").is_some_and(|v| v.trim() == "1"),
            privileged_mover: vars
                .get("PRIVILEGED_MOVER")
                .is_some_and(|v| v.trim() == "1"),
            version: vars.get("version"),
            build_date: vars.get("builddate"),
            test_now,
            direct_io: crate::connect::direct_io_from_env(env),
            operation,
            warnings: vars.warnings,
            features,
        })
    }
}

fn operation(args: &[String], vars: &mut Vars<'_>) -> Result<Operation, ConfigError> {
    if let Some(direction) = vars.get("DIRECTION") {
        match direction.as_str() {
            "source" => return Ok(Operation::Backup),
            "destination" => return Ok(Operation::Restore),
            "maintenance" => return Ok(Operation::Maintenance),
            "verify" => return Ok(Operation::Verify),
            other => vars.warnings.push(format!(
                "DIRECTION={other:?} is not source, destination, maintenance or verify; ignored"
            )),
        }
    }
    match args {
        [] => Err(ConfigError::NoOperation),
        [op] => match op.as_str() {
            "backup" => Ok(Operation::Backup),
            "restore" => Ok(Operation::Restore),
            "maintenance" => Err(ConfigError::MaintenanceArgument),
            other => Err(ConfigError::UnknownOperation(other.to_owned())),
        },
        many => Err(ConfigError::TooManyOperations(many.to_vec())),
    }
}

/// `KOPIA_LOG_LEVEL` (kopia's console level: `debug`, `info`, `warning`, `error`) as the
/// level of arkiv's stderr log; `None` for anything else. `ARKIV_LOG` still wins.
pub fn engine_log_level(kopia_level: &str) -> Option<&'static str> {
    match kopia_level.trim().to_ascii_lowercase().as_str() {
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warning" | "warn" => Some("warn"),
        "error" => Some("error"),
        _ => None,
    }
}

/// Names the variables this build reads but does not apply, when they are set (no silent
/// divergence from the script).
fn not_applied_warnings(vars: &mut Vars<'_>) {
    const GROUPS: [(&[&str], &str); 1] = [(
        &[
            "KOPIA_FILE_LOG_LEVEL",
            "KOPIA_LOG_DIR_MAX_FILES",
            "KOPIA_LOG_DIR_MAX_AGE",
            "KOPIA_CONTENT_LOG_DIR_MAX_FILES",
            "KOPIA_CONTENT_LOG_DIR_MAX_AGE",
        ],
        "this build writes no log files (KOPIA_LOG_LEVEL sets the level of its stderr log)",
    )];
    for (names, why) in GROUPS {
        let set: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| vars.get(n).is_some())
            .collect();
        if !set.is_empty() {
            vars.warnings
                .push(format!("{} not applied: {why}", set.join(", ")));
        }
    }
}

fn additional_args(vars: &Vars<'_>) -> Vec<String> {
    vars.get("KOPIA_ADDITIONAL_ARGS")
        .map(|s| split_additional_args(&s))
        .unwrap_or_default()
}

/// Splits `KOPIA_ADDITIONAL_ARGS` on the literal separator, dropping empty pieces.
pub fn split_additional_args(joined: &str) -> Vec<String> {
    joined
        .split(ARG_SEPARATOR)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn repository(vars: &mut Vars<'_>) -> Result<RepositoryTarget, ConfigError> {
    let url = vars.get("KOPIA_REPOSITORY");
    let url_str = url.as_deref().unwrap_or("");

    if vars.get("KOPIA_S3_BUCKET").is_some() || url_str.starts_with("s3://") {
        return s3(vars, url_str).map(|t| RepositoryTarget::S3(Box::new(t)));
    }
    if vars.get("KOPIA_AZURE_CONTAINER").is_some() {
        return remote(vars, url_str, "azure");
    }
    if vars.get("KOPIA_GCS_BUCKET").is_some() {
        return remote(vars, url_str, "gcs");
    }
    if let Some(rest) = url_str.strip_prefix("filesystem://") {
        match vars.get("KOPIA_FS_PATH") {
            Some(legacy) if Path::new(&legacy) != Path::new(rest) => vars.warnings.push(format!(
                "KOPIA_FS_PATH={legacy:?} ignored: KOPIA_REPOSITORY names the filesystem repository"
            )),
            _ => {}
        }
        return filesystem_path("KOPIA_REPOSITORY", url_str, rest);
    }
    if let Some(legacy) = vars.get("KOPIA_FS_PATH") {
        if url.is_some() && !url_str.starts_with('/') {
            vars.warnings.push(format!(
                "KOPIA_REPOSITORY={url_str:?} is not a filesystem URL; using the legacy KOPIA_FS_PATH"
            ));
        }
        return filesystem_path("KOPIA_FS_PATH", &legacy, &legacy);
    }
    for (var, name) in [
        ("KOPIA_B2_BUCKET", "b2"),
        ("WEBDAV_URL", "webdav"),
        ("SFTP_HOST", "sftp"),
        ("RCLONE_REMOTE_PATH", "rclone"),
        ("GOOGLE_DRIVE_FOLDER_ID", "gdrive"),
    ] {
        if vars.get(var).is_some() {
            return match name {
                "b2" | "webdav" | "rclone" | "sftp" => remote(vars, url_str, name),
                _ => Err(ConfigError::UnsupportedBackend(name.into())),
            };
        }
    }
    if url_str.starts_with('/') {
        return filesystem_path("KOPIA_REPOSITORY", url_str, url_str);
    }
    match url_str.split_once("://") {
        Some((scheme, _)) if REMOTE_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) => {
            remote(vars, url_str, scheme)
        }
        Some((scheme, _)) if !scheme.is_empty() => {
            Err(ConfigError::UnsupportedBackend(scheme.to_owned()))
        }
        _ if url.is_some() => Err(ConfigError::Invalid {
            var: "KOPIA_REPOSITORY",
            value: url_str.to_owned(),
            reason: "expected s3://bucket/prefix or filesystem:///absolute/path".into(),
        }),
        _ => Err(ConfigError::NoRepository),
    }
}

/// Repository URL schemes of the backends in [`RepositoryTarget::Remote`].
const REMOTE_SCHEMES: [&str; 7] = ["azure", "gcs", "b2", "webdav", "webdavs", "rclone", "sftp"];

/// Azure, GCS, WebDAV or rclone (`backend`), from its variables; `KOPIA_REPOSITORY` is used
/// only when it has that backend's scheme (the variables win, as in the script).
fn remote(vars: &Vars<'_>, url: &str, backend: &str) -> Result<RepositoryTarget, ConfigError> {
    use crate::connect::{RepoSpec, azure_env, b2_env, sftp_env, webdav_env};
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    let same = |names: &[&str]| names.contains(&scheme.as_str());
    let env = vars.env;
    let spec = match backend {
        "azure" => azure_env::azure_options_from_env(if same(&["azure"]) { url } else { "" }, env)
            .map(|o| RepoSpec::Azure(Box::new(o))),
        "gcs" => azure_env::gcs_options_from_env(if same(&["gcs"]) { url } else { "" }, env)
            .map(|o| RepoSpec::Gcs(Box::new(o))),
        "rclone" => {
            webdav_env::rclone_options_from_env(if same(&["rclone"]) { url } else { "" }, env)
                .map(|o| RepoSpec::Rclone(Box::new(o)))
        }
        "b2" => b2_env::b2_options_from_env(if same(&["b2"]) { url } else { "" }, env)
            .map(|o| RepoSpec::B2(Box::new(o))),
        "sftp" => sftp_env::sftp_options_from_env(if same(&["sftp"]) { url } else { "" }, env)
            .map(|o| RepoSpec::Sftp(Box::new(o))),
        _ => webdav_env::webdav_options_from_env(
            if same(&["webdav", "webdavs"]) {
                url
            } else {
                ""
            },
            env,
        )
        .map(|o| RepoSpec::WebDav(Box::new(o))),
    };
    spec.map(|s| RepositoryTarget::Remote(Box::new(s)))
        .map_err(|e| ConfigError::Backend(e.to_string()))
}

fn filesystem_path(
    var: &'static str,
    value: &str,
    path: &str,
) -> Result<RepositoryTarget, ConfigError> {
    let p = Path::new(path);
    let bad = |reason: &str| ConfigError::Invalid {
        var,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if !p.is_absolute() {
        return Err(bad("the path must be absolute, as in filesystem:///path"));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(bad("the path must not contain `..`"));
    }
    Ok(RepositoryTarget::Filesystem {
        path: p.to_path_buf(),
    })
}

fn s3(vars: &mut Vars<'_>, url: &str) -> Result<S3Target, ConfigError> {
    let from_url = url.strip_prefix("s3://");
    let (url_bucket, url_path) = match from_url {
        Some(rest) => match rest.split_once('/') {
            Some((b, p)) => (Some(b), p),
            None => (Some(rest), ""),
        },
        None => (None, ""),
    };

    let bucket = match (vars.get("KOPIA_S3_BUCKET"), url_bucket) {
        (Some(explicit), url_bucket) => {
            if url_bucket.is_some_and(|b| b != explicit) {
                vars.warnings.push(format!(
                    "KOPIA_S3_BUCKET={explicit:?} wins over the bucket in KOPIA_REPOSITORY={url:?}"
                ));
            }
            explicit
        }
        (None, Some(b)) => {
            if !valid_bucket(b) {
                return Err(ConfigError::Invalid {
                    var: "KOPIA_REPOSITORY",
                    value: url.to_owned(),
                    reason:
                        "could not determine the S3 bucket: expected s3://bucket[/prefix] with \
                             a 3-63 character lower-case bucket name"
                            .into(),
                });
            }
            b.to_owned()
        }
        (None, None) => return Err(ConfigError::Missing("KOPIA_S3_BUCKET")),
    };

    let prefix = if url_path.is_empty() {
        String::new()
    } else {
        s3_prefix(url_path).ok_or_else(|| ConfigError::Invalid {
            var: "KOPIA_REPOSITORY",
            value: url.to_owned(),
            reason: "the S3 prefix may contain only letters, digits, `.`, `_`, `-` and `/`, \
                     and no `..`"
                .into(),
        })?
    };

    let raw_endpoint = vars
        .first(&["KOPIA_S3_ENDPOINT", "AWS_S3_ENDPOINT"])
        .unwrap_or_else(|| DEFAULT_S3_ENDPOINT.into());
    let disable_tls = vars.flag("KOPIA_S3_DISABLE_TLS") | vars.flag("AWS_S3_DISABLE_TLS");
    let endpoint = if let Some(host) = raw_endpoint.strip_prefix("http://") {
        if !disable_tls {
            vars.warnings.push(format!(
                "S3 endpoint {raw_endpoint:?} says http:// but TLS stays on; \
                 set KOPIA_S3_DISABLE_TLS=true for plain HTTP"
            ));
        }
        host.to_owned()
    } else if let Some(host) = raw_endpoint.strip_prefix("https://") {
        host.to_owned()
    } else {
        raw_endpoint
    };

    let ca_bundle = match (vars.get("CUSTOM_CA"), vars.get("KOPIA_CUSTOM_CA")) {
        (Some(ca), alias) => {
            if alias.as_ref().is_some_and(|a| *a != ca) {
                vars.warnings
                    .push(format!("KOPIA_CUSTOM_CA ignored: CUSTOM_CA={ca:?} is set"));
            }
            Some(PathBuf::from(ca))
        }
        (None, alias) => alias.map(PathBuf::from),
    };

    Ok(S3Target {
        bucket,
        prefix,
        endpoint,
        disable_tls,
        region: vars.first(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
        access_key_id: vars.secret("AWS_ACCESS_KEY_ID"),
        secret_access_key: vars.secret("AWS_SECRET_ACCESS_KEY"),
        session_token: vars.secret("AWS_SESSION_TOKEN"),
        ca_bundle,
        proxy: crate::connect::proxy_env::proxy_from_env(vars.env),
        retry_timeout: match vars.get("ARKIV_S3_RETRY_TIMEOUT") {
            Some(v) => Some(crate::connect::s3_env::parse_timeout(&v).map_err(|reason| {
                ConfigError::Invalid {
                    var: "ARKIV_S3_RETRY_TIMEOUT",
                    value: v.clone(),
                    reason,
                }
            })?),
            None => None,
        },
    })
}

/// The script's bucket rule for `s3://` URLs: 3–63 of `[a-z0-9.-]`, starting and ending with a
/// letter or digit, no `..`, not an IPv4 address.
fn valid_bucket(b: &str) -> bool {
    let bytes = b.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&bytes.len())
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|c| edge(c) || *c == b'.' || *c == b'-')
        && !b.contains("..")
        && b.parse::<std::net::Ipv4Addr>().is_err()
}

/// The script's prefix rule: `[A-Za-z0-9._/-]+` without `..`, `//` collapsed, trailing `/`.
/// Leading slashes are kept: existing repositories were created with them.
fn s3_prefix(path: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-');
    if !path.chars().all(allowed) || path.contains("..") {
        return None;
    }
    let mut out = String::with_capacity(path.len() + 1);
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    if !out.ends_with('/') {
        out.push('/');
    }
    Some(out)
}

fn identity(vars: &Vars<'_>) -> Result<Identity, ConfigError> {
    let user = vars.get("KOPIA_OVERRIDE_USERNAME");
    let host = vars.get("KOPIA_OVERRIDE_HOSTNAME");
    let (username, hostname) = match (user, host) {
        (Some(u), Some(h)) => (u, h),
        (None, _) => return Err(ConfigError::Missing("KOPIA_OVERRIDE_USERNAME")),
        (Some(_), None) => return Err(ConfigError::Missing("KOPIA_OVERRIDE_HOSTNAME")),
    };
    if username.contains(['@', ':']) {
        return Err(ConfigError::Invalid {
            var: "KOPIA_OVERRIDE_USERNAME",
            value: username,
            reason: "must not contain `@` or `:`".into(),
        });
    }
    if hostname.contains(['@', ':']) {
        return Err(ConfigError::Invalid {
            var: "KOPIA_OVERRIDE_HOSTNAME",
            value: hostname,
            reason: "must not contain `@` or `:`".into(),
        });
    }
    let path = match vars.get("KOPIA_SOURCE_PATH_OVERRIDE") {
        Some(p) if p.starts_with('/') => p,
        Some(p) => {
            return Err(ConfigError::Invalid {
                var: "KOPIA_SOURCE_PATH_OVERRIDE",
                value: p,
                reason: "must be an absolute path (start with `/`)".into(),
            });
        }
        None => DEFAULT_SOURCE_PATH.to_owned(),
    };
    Ok(Identity {
        username,
        hostname,
        path,
    })
}

fn maintenance_owner(vars: &Vars<'_>) -> Result<ClientId, ConfigError> {
    let (var, value) = match (
        vars.get("ARKIV_MAINTENANCE_OWNER"),
        vars.get("KOPIA_OVERRIDE_MAINTENANCE_USERNAME"),
    ) {
        (Some(v), _) => ("ARKIV_MAINTENANCE_OWNER", v),
        (None, Some(v)) => ("KOPIA_OVERRIDE_MAINTENANCE_USERNAME", v),
        (None, None) => {
            return Ok(ClientId {
                username: DEFAULT_MAINTENANCE_USER.into(),
                hostname: DEFAULT_MAINTENANCE_HOST.into(),
            });
        }
    };
    let (username, hostname) = match value.split_once('@') {
        Some((u, h)) => (u, h),
        None => (value.as_str(), DEFAULT_MAINTENANCE_HOST),
    };
    if username.is_empty() || hostname.is_empty() || hostname.contains('@') || value.contains(':') {
        return Err(ConfigError::Invalid {
            var,
            value: value.clone(),
            reason: "expected user or user@host".into(),
        });
    }
    Ok(ClientId {
        username: username.to_owned(),
        hostname: hostname.to_owned(),
    })
}

fn restore_selection(vars: &mut Vars<'_>) -> Result<RestoreSelection, ConfigError> {
    let previous = vars.number_strict("KOPIA_PREVIOUS")?.unwrap_or(0);
    let restore_as_of = match vars.get("KOPIA_RESTORE_AS_OF") {
        None => None,
        Some(v) => Some(parse_time(&v).ok_or_else(|| {
            ConfigError::Invalid {
                var: "KOPIA_RESTORE_AS_OF",
                value: v.clone(),
                reason: "expected an RFC 3339 time such as 2024-05-01T12:00:00Z or \
                     2024-05-01T14:00:00+02:00"
                    .into(),
            }
        })?),
    };
    let shallow = vars.number_lenient("KOPIA_SHALLOW");
    Ok(RestoreSelection {
        previous,
        restore_as_of,
        shallow,
    })
}

/// RFC 3339 with any offset (`Z`, `+02:00`, `-05:30`), fractional seconds optional.
pub fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s.trim()).ok()
}

fn duration_var(vars: &mut Vars<'_>, name: &str) -> Duration {
    const DEFAULT: Duration = Duration::from_secs(4 * 3600);
    match vars.get(name) {
        None => DEFAULT,
        Some(v) => gojson::duration::parse_non_negative(v.trim()).unwrap_or_else(|_| {
            vars.warnings.push(format!(
                "{name}={v:?} is not a duration such as 4h or 90m; using 4h"
            ));
            DEFAULT
        }),
    }
}

/// Reads `KOPIA_MANUAL_CONFIG`; every ignored piece becomes a warning.
fn parse_manual_config(json: &str, warnings: &mut Vec<String>) -> ManualConfig {
    let mut out = ManualConfig::default();
    let value: serde_json::Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            warnings.push(format!(
                "KOPIA_MANUAL_CONFIG is not valid JSON ({e}); ignored"
            ));
            return out;
        }
    };
    let Some(top) = value.as_object() else {
        warnings.push("KOPIA_MANUAL_CONFIG is not a JSON object; ignored".into());
        return out;
    };
    for (section, body) in top {
        if section == "arkiv" {
            // arkiv's own settings: `failIfNoSnapshot` here, the rest (and the warning for
            // unknown keys) in `super::features`.
            arkiv_section(body, &mut out, warnings);
            continue;
        }
        if !matches!(
            section.as_str(),
            "encryption" | "splitter" | "compression" | "caching" | "hash"
        ) {
            warnings.push(format!(
                "KOPIA_MANUAL_CONFIG.{section} is not used by arkiv; ignored"
            ));
            continue;
        }
        let Some(fields) = body.as_object() else {
            if !body.is_null() {
                warnings.push(format!(
                    "KOPIA_MANUAL_CONFIG.{section} is not a JSON object; ignored"
                ));
            }
            continue;
        };
        for (key, v) in fields {
            if (section.as_str(), key.as_str()) == ("caching", "maxCacheSize") {
                match v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
                    Some(n) => out.max_cache_size = Some(n),
                    None if v.is_null() => {}
                    None => warnings.push(
                        "KOPIA_MANUAL_CONFIG.caching.maxCacheSize is not a number of bytes; ignored"
                            .into(),
                    ),
                }
                continue;
            }
            let target = match (section.as_str(), key.as_str()) {
                ("encryption", "algorithm") => &mut out.encryption,
                ("splitter", "algorithm") => &mut out.splitter,
                ("compression", "algorithm") => &mut out.compression,
                ("hash", "algorithm") => &mut out.hash,
                _ => {
                    warnings.push(format!(
                        "KOPIA_MANUAL_CONFIG.{section}.{key} is not supported by arkiv; ignored"
                    ));
                    continue;
                }
            };
            match v.as_str() {
                Some(s) if !s.is_empty() => *target = Some(s.to_owned()),
                _ if v.is_null() => {}
                _ => warnings.push(format!(
                    "KOPIA_MANUAL_CONFIG.{section}.{key} is not a non-empty string; ignored"
                )),
            }
        }
    }
    out
}

/// The `arkiv` section of `KOPIA_MANUAL_CONFIG`: arkiv's own settings, passed through the
/// Secret key the controller already maps. One key per setting.
fn arkiv_section(body: &serde_json::Value, out: &mut ManualConfig, warnings: &mut Vec<String>) {
    // A section that is not an object fails the run in `super::features`.
    let Some(fields) = body.as_object() else {
        return;
    };
    // The other keys, and the warning for unknown ones: `super::features`.
    if let Some(v) = fields.get("failIfNoSnapshot") {
        match v.as_bool() {
            Some(b) => out.fail_if_no_snapshot = Some(b),
            None => warnings.push(format!(
                "KOPIA_MANUAL_CONFIG.arkiv.failIfNoSnapshot is not true or false ({v}); ignored"
            )),
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
