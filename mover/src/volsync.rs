//! The VolSync mover (`/mover-kopia/entry.sh`): Source (backup), Destination (restore) and
//! Maintenance, mapped onto engine calls (contract §6).
//!
//! [`mover_main`] is the whole program: read the environment ([`config::MoverConfig`]), run
//! one operation (`backup`, `restore`, `maintenance`), print the exit summary and the
//! JSON result ([`crate::render::volsync`]), return the exit code ([`crate::exit::volsync`]).
//! Output: `INFO:`/`WARN:` lines and progress on stdout, `ERROR:` lines on stderr, the summary
//! block and the JSON line last on stdout.
//!
//! Safety rules, beyond the script's behaviour (contract §11 "should fix"):
//! * A backup creates a repository only where there definitely is none: a missing filesystem
//!   directory (created), or a directory / S3 prefix that holds nothing (a filesystem
//!   directory may hold `lost+found` and `.shards`). A wrong password, a permission error,
//!   an unreachable endpoint, a missing bucket or unknown data is a failure (exit 1) and the
//!   repository is neither created nor modified.
//! * A restore never creates anything (its connection is read-only); a missing repository is
//!   "no eligible snapshot". Extra files are deleted only after a snapshot was selected
//!   (`delete_extra`), never `lost+found`.
//! * Retention: `KOPIA_RETAIN_*` become the policy of the snapshot's own source (also with
//!   `KOPIA_SOURCE_PATH_OVERRIDE`), then that source is expired right after the snapshot.
//! * SIGTERM/SIGINT stop the work at a safe point: an upload is cancelled (no snapshot
//!   manifest is written), a repository creation is finished first, a restore is abandoned;
//!   the exit code is 143 (137 when the cache is nearly full, as in the script).

pub mod additional_args;
mod backup;
pub mod config;
pub mod dry_run;
pub mod features;
pub mod jitter;
mod maintenance;
pub mod marker;
pub mod metrics;
pub mod policy_config;
mod restore;
pub mod verify;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::s3::S3Options;
use arkiv_engine::clock::{Clock, ManualClock, SharedClock, SystemClock};
use arkiv_engine::{Error, ErrorKind, Repository};
use arkiv_format::snapshot::SourceInfo;

use crate::Env;
use crate::cancel::{self, CancellationToken};
use crate::connect::{Access, Connection, Probe, RepoSpec, RunIo};
use crate::exit::volsync as exit;
use crate::render::volsync::{self as report, CacheUsage, ExitSummary, RunResult};
use arkiv_engine::cache::Cache;
use config::{CacheSettings, MoverConfig, Operation, RepositoryTarget, S3Target};

/// Name kept in the data directory: it belongs to the filesystem, not to the data.
const LOST_FOUND: &str = "lost+found";
/// The file whose removal ends `DEBUG_MOVER` mode.
const DEBUG_FILE: &str = "/tmp/exit-debug-if-removed";

/// Why a run failed: one line naming the cause, detail lines for the summary, an exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code (1, or 137/143 when terminated).
    pub code: i32,
    /// One line: the cause first (`wrong password: …`).
    pub reason: String,
    /// Extra lines for the summary's error output.
    pub details: Vec<String>,
}

impl Failure {
    /// A failure with exit code 1.
    pub fn new(reason: impl Into<String>) -> Failure {
        Failure {
            code: exit::FAILURE,
            reason: reason.into(),
            details: Vec::new(),
        }
    }

    /// An engine error while doing `what`, with its cause named from its kind.
    pub fn engine(what: &str, e: &Error) -> Failure {
        Failure::new(format!("{}: {what}: {e}", cause(e)))
    }

    fn terminated() -> Failure {
        Failure {
            code: exit::TERMINATED,
            reason: "terminated by signal: stopped before finishing (nothing incomplete was \
                     recorded as done)"
                .into(),
            details: Vec::new(),
        }
    }
}

/// The cause of an engine error, in words a user acts on.
pub fn cause(e: &Error) -> &'static str {
    match e {
        Error::WrongPassword { .. } => "wrong password",
        Error::RepositoryNotFound { .. } => "repository not found",
        _ => match e.kind() {
            ErrorKind::Auth => "access denied (credentials rejected)",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Transient => "storage unreachable",
            ErrorKind::NotFound => "not found",
            ErrorKind::Corrupt => "unreadable repository data (corrupt or unknown format)",
            ErrorKind::Unsupported => "unsupported repository format",
            ErrorKind::Config => "invalid configuration",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Cancelled => "cancelled",
            _ => "error",
        },
    }
}

/// A stop requested by SIGTERM/SIGINT, as the mover's flows use it.
trait Stop {
    /// Fails with [`Failure::terminated`] if a stop was requested (checked between phases).
    fn check(&self) -> Result<(), Failure>;

    /// Runs `fut`, abandoning it when a stop is requested (only for work that is safe to
    /// drop half-way: reads, restores).
    async fn interruptible<T>(
        &self,
        fut: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure>;
}

impl Stop for CancellationToken {
    fn check(&self) -> Result<(), Failure> {
        if self.is_cancelled() {
            Err(Failure::terminated())
        } else {
            Ok(())
        }
    }

    async fn interruptible<T>(
        &self,
        fut: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        tokio::select! {
            r = fut => r,
            () = self.cancelled() => Err(Failure::terminated()),
        }
    }
}

/// What a run produced, for the JSON result.
#[derive(Debug, Default)]
struct Produced {
    snapshot_id: Option<String>,
    files: u64,
    bytes: u64,
    new_bytes: u64,
    /// Restores: whether anything was restored.
    restored: Option<bool>,
    /// Restores that restored nothing: why (short, for the JSON result).
    reason: Option<String>,
    /// The run's metrics (published when asked for).
    metrics: metrics::RunMetrics,
}

/// Runs the mover: `args` are the arguments after the program name, `env` the environment.
/// Returns the process exit code. Prints everything it has to say.
pub fn mover_main(args: &[String], env: Env<'_>) -> i32 {
    let started = Instant::now();
    println!(
        "INFO: arkiv-mover {} (Kopia-compatible VolSync mover)",
        env!("CARGO_PKG_VERSION")
    );
    let cfg = match MoverConfig::from_env(args, env) {
        Ok(c) => c,
        Err(e) => {
            let op = operation_hint(args, env);
            let failure = Failure {
                code: e.exit_code(),
                reason: e.to_string(),
                details: Vec::new(),
            };
            return finish(op, None, started, Produced::default(), Err(failure));
        }
    };
    if let Some(v) = &cfg.version {
        println!(
            "INFO: VolSync kopia container version: {v}{}",
            cfg.build_date
                .as_deref()
                .map(|d| format!(" (built {d})"))
                .unwrap_or_default()
        );
    }
    println!("INFO: operation: {}", cfg.operation());
    for w in &cfg.warnings {
        println!("WARN: {w}");
    }
    let rt = match crate::app::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let f = Failure::new(format!("cannot start the async runtime: {e}"));
            return finish(
                Some(cfg.operation()),
                Some(&cfg.cache),
                started,
                Produced::default(),
                Err(f),
            );
        }
    };
    let mut produced = Produced::default();
    let result = rt.block_on(async {
        let stop = cancel::on_signal(|name| println!("WARN: {name} received: stopping cleanly"));
        if cfg.debug_mover {
            return debug_mode(&stop).await;
        }
        force_cache_rebuild(&cfg);
        produced.metrics = run_metrics(&cfg);
        let r = run(&cfg, &stop, &mut produced).await;
        let now = std::time::SystemTime::from(cfg.test_now.unwrap_or_else(|| SystemClock.now()));
        produced.metrics.finish(r.is_ok(), started.elapsed(), now);
        metrics::publish(&cfg.features.metrics, &produced.metrics).await;
        r
    });
    let code = finish(
        Some(cfg.operation()),
        Some(&cfg.cache),
        started,
        produced,
        result,
    );
    // Do not wait for blocked reads or uploads still winding down after a stop.
    rt.shutdown_timeout(Duration::from_secs(2));
    code
}

/// The operation asked for (`DIRECTION`, else the argument), read before the configuration
/// (for the summary when the configuration cannot be read, and to tune the allocator).
pub fn operation_hint(args: &[String], env: Env<'_>) -> Option<Operation> {
    match env("DIRECTION").as_deref() {
        Some("source") => return Some(Operation::Backup),
        Some("destination") => return Some(Operation::Restore),
        Some("maintenance") => return Some(Operation::Maintenance),
        Some("verify") => return Some(Operation::Verify),
        _ => {}
    }
    match args {
        [a] if a == "backup" => Some(Operation::Backup),
        [a] if a == "restore" => Some(Operation::Restore),
        _ => None,
    }
}

/// Prints the error line, the summary and the JSON result; returns the exit code.
fn finish(
    op: Option<Operation>,
    cache: Option<&CacheSettings>,
    started: Instant,
    produced: Produced,
    result: Result<(), Failure>,
) -> i32 {
    let (success, mut code, reason, details) = match result {
        Ok(()) => (true, exit::SUCCESS, None, Vec::new()),
        Err(f) => {
            eprintln!("ERROR: {}", f.reason);
            (false, f.code, Some(f.reason), f.details)
        }
    };
    let cache = if success {
        None
    } else {
        cache.map(|c| CacheUsage {
            used_bytes: dir_usage(&c.dir),
            capacity_bytes: c.capacity_bytes,
        })
    };
    if code == exit::TERMINATED && cache.is_some_and(|c| c.exhausted()) {
        println!(
            "WARN: CACHE EXHAUSTION DETECTED: the cache volume is at least 90% full; \
             increase cacheCapacity"
        );
        code = exit::CACHE_EXHAUSTED;
    }
    let summary = ExitSummary {
        operation: op,
        success,
        exit_code: code,
        failure_reason: reason.clone(),
        error_output: details,
        maintenance_duration_seconds: None,
        cache,
    };
    let result = RunResult {
        operation: op,
        success,
        snapshot_id: produced.snapshot_id,
        files: produced.files,
        bytes: produced.bytes,
        new_bytes: produced.new_bytes,
        duration: started.elapsed(),
        error: reason,
        storage: op.is_some().then(|| run_state().io.report()),
        restored: produced.restored,
        // A failed run's `error` already says why; one sentence keeps the line inside
        // VolSync's 1 KiB log window with the discovery recap above it.
        reason: produced.reason.filter(|_| success),
    };
    print!(
        "{}",
        report::render_tail(&summary, &result, report::STATUS_LOG_BYTES)
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    code
}

/// Bytes used under `dir` (regular files, not following symlinks); 0 when unreadable.
fn dir_usage(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    let mut budget = 200_000usize;
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return total;
            }
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total = total.saturating_add(m.len());
            }
        }
    }
    total
}

/// `DEBUG_MOVER=1`: wait until the marker file is removed (or a stop), then succeed.
async fn debug_mode(stop: &CancellationToken) -> Result<(), Failure> {
    if let Err(e) = std::fs::write(DEBUG_FILE, b"") {
        return Err(Failure::new(format!(
            "DEBUG_MOVER: cannot create {DEBUG_FILE}: {e}"
        )));
    }
    println!(
        "INFO: DEBUG_MOVER is set: sleeping until {DEBUG_FILE} is removed \
         (kubectl exec into the pod and delete it to continue)"
    );
    loop {
        if !Path::new(DEBUG_FILE).exists() || stop.is_cancelled() {
            println!("INFO: debug mode ended");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn run(
    cfg: &MoverConfig,
    stop: &CancellationToken,
    produced: &mut Produced,
) -> Result<(), Failure> {
    match &cfg.operation {
        config::OperationConfig::Backup(b) => backup::run(cfg, b, stop, produced).await,
        config::OperationConfig::Restore(r) => restore::run(cfg, r, stop, produced).await,
        config::OperationConfig::Maintenance => {
            maintenance::run(cfg, stop, &mut produced.metrics).await
        }
        config::OperationConfig::Verify(v) => {
            verify::run(cfg, v, stop, &mut produced.metrics).await
        }
    }
}

/// The metrics a run of `cfg`'s operation starts with: its grouping labels (`operation`,
/// `repository`, and `source` for a backup); a restore reports none.
fn run_metrics(cfg: &MoverConfig) -> metrics::RunMetrics {
    let repository = match &cfg.repository {
        // without the endpoint: the label names the repository, not where it is reached
        RepositoryTarget::S3(t) => format!("s3://{}/{}", t.bucket, t.prefix),
        other => other.describe(),
    };
    let (op, source) = match &cfg.operation {
        config::OperationConfig::Backup(b) => ("backup", Some(b.identity.to_string())),
        config::OperationConfig::Maintenance => ("maintenance", None),
        config::OperationConfig::Verify(_) => ("verify", None),
        config::OperationConfig::Restore(_) => return metrics::RunMetrics::default(),
    };
    let mut grouping = vec![("operation", op.to_owned()), ("repository", repository)];
    if let Some(s) = source {
        grouping.push(("source", s));
    }
    metrics::RunMetrics::new(op, grouping)
}

// ---------------------------------------------------------------------------------------
// Steps shared by the operations

/// What backup and restore do first: check `DATA_DIR`, turn the identity into the snapshot
/// source, prepare the cache directory.
fn begin<'a>(
    cfg: &MoverConfig,
    data_dir: &'a Path,
    identity: &config::Identity,
) -> Result<(&'a Path, SourceInfo), Failure> {
    let data = checked_data_dir(data_dir)?;
    let source = identity.source();
    prepare_cache(cfg, &source.to_string())?;
    Ok((data, source))
}

/// `DATA_DIR`, checked to be a directory.
fn checked_data_dir(dir: &Path) -> Result<&Path, Failure> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(dir),
        Ok(_) => Err(Failure::new(format!(
            "DATA_DIR {} is not a directory",
            dir.display()
        ))),
        Err(e) => Err(Failure::new(format!(
            "DATA_DIR {} is not usable: {e}",
            dir.display()
        ))),
    }
}

/// What one mover process shares between its connections: request counters, opened caches,
/// and whether the cache directory turned out unusable (then every connection runs uncached).
struct RunState {
    io: Arc<RunIo>,
    cache_off: AtomicBool,
}

/// The process's [`RunState`] (the mover runs one operation per process).
fn run_state() -> &'static RunState {
    static STATE: OnceLock<RunState> = OnceLock::new();
    STATE.get_or_init(|| RunState {
        io: RunIo::new(),
        cache_off: AtomicBool::new(false),
    })
}

/// Runs the mover without its local cache from now on, after one warning line.
fn cache_unusable(dir: &Path, why: &str) {
    if !run_state().cache_off.swap(true, Ordering::Relaxed) {
        println!(
            "WARN: KOPIA_CACHE_DIR {} {why}; running without the local cache",
            dir.display()
        );
    }
}

/// Before the operation: `KOPIA_FORCE_CACHE_REBUILD=true` empties the local cache (the
/// script's forced cache clear). A cache that cannot be removed is not used this run.
fn force_cache_rebuild(cfg: &MoverConfig) {
    if !cfg.cache.force_rebuild {
        return;
    }
    match Cache::remove_all(&cfg.cache.dir) {
        Ok(n) => println!("INFO: KOPIA_FORCE_CACHE_REBUILD: removed {n} local cache file(s)"),
        Err(e) => cache_unusable(&cfg.cache.dir, &format!("cannot be emptied ({e})")),
    }
}

/// Records the client configuration in the cache directory (no secrets): `arkiv.config`,
/// written under a unique temporary name and renamed, so movers sharing the directory never
/// trip over each other. The cache directory is optional: when it cannot be created or
/// written (read-only, full), one warning says so and the run goes on uncached.
fn prepare_cache(cfg: &MoverConfig, source: &str) -> Result<(), Failure> {
    let dir = &cfg.cache.dir;
    if let Err(e) = std::fs::create_dir_all(dir) {
        cache_unusable(dir, &format!("cannot be created ({e})"));
        return Ok(());
    }
    let limits = cfg.cache_limits();
    let doc = serde_json::json!({
        "repository": cfg.repository.describe(),
        "source": source,
        "operation": cfg.operation().as_str(),
        "cacheCapacityBytes": cfg.cache.capacity_bytes,
        "metadataCacheSizeLimitMB": cfg.cache.metadata_limit_mb,
        "contentCacheSizeLimitMB": cfg.cache.content_limit_mb,
        "cacheLimitBytes": {
            "metadata": limits.metadata_bytes,
            "index": limits.index_bytes,
            "content": limits.content_bytes,
        },
        "arkivVersion": env!("CARGO_PKG_VERSION"),
    });
    let file = cfg.cache.config_file();
    let written = tempfile::Builder::new()
        .prefix(".arkiv.config.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .and_then(|mut tmp| {
            use std::io::Write;
            tmp.write_all(format!("{doc:#}\n").as_bytes())?;
            tmp.persist(&file).map_err(|e| e.error)?;
            Ok(())
        });
    if let Err(e) = written {
        cache_unusable(dir, &format!("is not writable ({e})"));
    }
    Ok(())
}

/// The connection the configuration names (clock from `ARKIV_TEST_NOW`).
fn connection(cfg: &MoverConfig, access: Access) -> Connection {
    let spec = match &cfg.repository {
        RepositoryTarget::Filesystem { path } => RepoSpec::Filesystem(path.clone()),
        RepositoryTarget::S3(t) => RepoSpec::S3(Box::new(s3_options(t))),
        RepositoryTarget::Remote(spec) => (**spec).clone(),
    };
    let mut conn = Connection::new(spec, access);
    conn.direct_io = cfg.direct_io;
    conn.fs_permissions = cfg.features.repo_permissions;
    conn.io = run_state().io.clone();
    // A mover job is one process, minutes or hours after the last one: a cached index
    // listing would save one LIST at best, and could hide snapshots another writer added in
    // the last 30 s (a restore right after another cluster's backup). The mover always lists.
    conn.list_cache_duration = std::time::Duration::ZERO;
    if !run_state().cache_off.load(Ordering::Relaxed) {
        conn.cache_dir = Some(cfg.cache.dir.clone());
        conn.cache_limits = cfg.cache_limits();
    }
    conn.clock = match cfg.test_now {
        Some(t) => Arc::new(ManualClock::new(t)) as SharedClock,
        None => Arc::new(SystemClock),
    };
    conn
}

fn s3_options(t: &S3Target) -> S3Options {
    let mut o = S3Options::new(t.bucket.clone());
    o.prefix = t.prefix.clone();
    o.endpoint = Some(t.endpoint.clone());
    o.disable_tls = t.disable_tls;
    o.region = t.region.clone();
    o.access_key_id = t.access_key_id.as_ref().map(|s| s.expose().to_owned());
    o.secret_access_key = t.secret_access_key.as_ref().map(|s| s.expose().to_owned());
    o.session_token = t.session_token.as_ref().map(|s| s.expose().to_owned());
    // The script passes the CA only when the file exists.
    o.ca_bundle = t.ca_bundle.clone().filter(|p| p.exists());
    o.proxy = t.proxy.clone();
    if let Some(budget) = t.retry_timeout {
        o.retry.retry_timeout = budget;
    }
    o
}

/// The storage of the configured location (`None`: a missing directory), with storage
/// errors worded for the mover's log: a missing bucket is named as such.
async fn storage(
    cfg: &MoverConfig,
    conn: &Connection,
    stop: &CancellationToken,
) -> Result<Option<Arc<dyn BlobStorage>>, Failure> {
    let storage = stop
        .interruptible(async { Ok(conn.storage().await) })
        .await?;
    storage.map_err(|e| match (&cfg.repository, e.kind()) {
        (RepositoryTarget::S3(_), ErrorKind::NotFound) => Failure::new(format!(
            "S3 bucket not found: {e} (arkiv never creates buckets)"
        )),
        (RepositoryTarget::S3(_), _) => Failure::engine("checking the S3 bucket", &e),
        (RepositoryTarget::Filesystem { .. }, _) => {
            Failure::engine("opening the repository directory", &e)
        }
        (RepositoryTarget::Remote(spec), _) => {
            Failure::engine(&format!("connecting to {}", spec.describe()), &e)
        }
    })
}

/// Opens the repository in `storage`, or says what is there instead; abandoned on a stop.
async fn probe(
    cfg: &MoverConfig,
    conn: &Connection,
    storage: Arc<dyn BlobStorage>,
    stop: &CancellationToken,
) -> Result<Probe, Failure> {
    let probed = stop
        .interruptible(async { Ok(conn.probe_storage(storage, cfg.password.expose()).await) })
        .await?;
    probed.map_err(|e| {
        Failure::engine(
            &format!("opening the repository at {}", cfg.repository.describe()),
            &e,
        )
    })
}

fn unknown_format(location: &str) -> Failure {
    Failure::new(format!(
        "unknown format: {location} holds data but no Kopia repository (no kopia.repository \
         blob); refusing to create a repository there"
    ))
}

/// Lists the repository's snapshots, abandoned on a stop.
async fn snapshots(
    repo: &Repository,
    stop: &CancellationToken,
) -> Result<Vec<arkiv_engine::repo::Snapshot>, Failure> {
    stop.interruptible(async {
        repo.snapshots()
            .await
            .map_err(|e| Failure::engine("listing snapshots", &e))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_named() {
        let e = Error::WrongPassword {
            location: "x".into(),
        };
        assert_eq!(cause(&e), "wrong password");
        let e = Error::Io {
            path: "/r".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(cause(&e), "permission denied");
    }
}
