//! The VolSync mover's operation flows: Source (backup), Destination (restore) and
//! Maintenance, mapped onto engine calls (contract §6).
//!
//! [`mover_main`] is the whole program behind `/mover-kopia/entry.sh`: read the environment
//! ([`MoverConfig`]), run one operation, print the exit summary and the JSON result
//! ([`crate::report`]), return the exit code. Output: `INFO:`/`WARN:` lines and progress on
//! stdout, `ERROR:` lines on stderr, the summary block and the JSON line last on stdout.
//!
//! Safety rules, beyond the script's behaviour (contract §11 "should fix"):
//! * A backup creates a repository only where there definitely is none: a missing filesystem
//!   directory (created), or a directory / S3 prefix that holds nothing (a filesystem
//!   directory may hold `lost+found` and `.shards`). A wrong password, a permission error,
//!   an unreachable endpoint, a missing bucket or unknown data is a failure (exit 1) and the
//!   repository is neither created nor modified.
//! * A restore never creates anything (its storage is wrapped in [`ReadOnlyStorage`]); a
//!   missing repository is "no eligible snapshot". Extra files are deleted only after a
//!   snapshot was selected (`delete_extra`), never `lost+found`.
//! * Retention: `KOPIA_RETAIN_*` become the policy of the snapshot's own source (also with
//!   `KOPIA_SOURCE_PATH_OVERRIDE`), then that source is expired right after the snapshot.
//! * SIGTERM/SIGINT stop the work at a safe point: an upload is cancelled (no snapshot
//!   manifest is written), a repository creation is finished first, a restore is abandoned;
//!   the exit code is 143 (137 when the cache is nearly full, as in the script).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::filesystem::FilesystemStorage;
use arkiv_engine::blob::readonly::ReadOnlyStorage;
use arkiv_engine::blob::s3::{S3Options, S3Storage};
use arkiv_engine::clock::{ManualClock, SharedClock, SystemClock};
use arkiv_engine::initialize::{CreateOptions, create_repository};
use arkiv_engine::policy::{PolicyTarget, set_policy};
use arkiv_engine::repo::Snapshot;
use arkiv_engine::retention::expire_source;
use arkiv_engine::snapshot::restore::{RestoreOptions, restore_entry};
use arkiv_engine::snapshot::upload::{UploadOptions, UploadProgress, snapshot_directory};
use arkiv_engine::{Error, ErrorKind, OpenOptions, Repository};
use arkiv_format::compression::CompressionAlgorithm;
use arkiv_format::snapshot::{DirEntry, SourceInfo};
use tokio::sync::watch;

use crate::env::{MoverConfig, Operation, RepositoryTarget, S3Target};
use crate::output::bytes_base10;
use crate::report::{self, CacheUsage, DiscoveredSnapshot, ExitSummary, RunResult};

/// Name kept in the data directory: it belongs to the filesystem, not to the data.
const LOST_FOUND: &str = "lost+found";
/// How often long work prints a progress line.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Time limit of `KOPIA_BEFORE_SNAPSHOT` / `KOPIA_AFTER_SNAPSHOT` (the script's `timeout 300`).
const ACTION_TIMEOUT: Duration = Duration::from_secs(300);
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
            code: report::EXIT_FAILURE,
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
            code: report::EXIT_TERMINATED,
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

/// A stop request (SIGTERM/SIGINT), observable from any task.
#[derive(Clone, Debug)]
pub struct Stop {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            tx: Arc::new(watch::channel(false).0),
        }
    }
}

impl Stop {
    /// Asks everything to stop.
    pub fn request(&self) {
        self.tx.send_replace(true);
    }

    /// True once a stop was requested.
    pub fn requested(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves when a stop is requested.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Fails with [`Failure::terminated`] if a stop was requested (checked between phases).
    fn check(&self) -> Result<(), Failure> {
        if self.requested() {
            Err(Failure::terminated())
        } else {
            Ok(())
        }
    }

    /// Runs `fut`, abandoning it when a stop is requested (only for work that is safe to
    /// drop half-way: reads, restores).
    async fn interruptible<T>(
        &self,
        fut: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        tokio::select! {
            r = fut => r,
            () = self.wait() => Err(Failure::terminated()),
        }
    }
}

/// Installs the SIGTERM/SIGINT handlers (as PID 1 nothing else would end the process).
fn watch_signals(stop: Stop) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("WARN: cannot install signal handlers");
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        println!("WARN: {name} received: stopping cleanly");
        stop.request();
    });
}

/// What a run produced, for the JSON result.
#[derive(Debug, Default)]
struct Produced {
    snapshot_id: Option<String>,
    files: u64,
    bytes: u64,
    new_bytes: u64,
}

/// Runs the mover: `args` are the arguments after the program name, `env` the environment.
/// Returns the process exit code. Prints everything it has to say.
pub fn mover_main(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> i32 {
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
    println!("INFO: operation: {}", cfg.operation);
    for w in &cfg.warnings {
        println!("WARN: {w}");
    }
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let f = Failure::new(format!("cannot start the async runtime: {e}"));
            return finish(
                Some(cfg.operation),
                Some(&cfg),
                started,
                Produced::default(),
                Err(f),
            );
        }
    };
    let stop = Stop::default();
    let mut produced = Produced::default();
    let result = rt.block_on(async {
        watch_signals(stop.clone());
        if cfg.debug_mover {
            return debug_mode(&stop).await;
        }
        run(&cfg, &stop, &mut produced).await
    });
    let code = finish(Some(cfg.operation), Some(&cfg), started, produced, result);
    // Do not wait for blocked reads or uploads still winding down after a stop.
    rt.shutdown_timeout(Duration::from_secs(2));
    code
}

/// The operation asked for (`DIRECTION`, else the argument), read before the configuration
/// (for the summary when the configuration cannot be read, and to tune the allocator).
pub fn operation_hint(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Option<Operation> {
    match env("DIRECTION").as_deref() {
        Some("source") => return Some(Operation::Backup),
        Some("destination") => return Some(Operation::Restore),
        Some("maintenance") => return Some(Operation::Maintenance),
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
    cfg: Option<&MoverConfig>,
    started: Instant,
    produced: Produced,
    result: Result<(), Failure>,
) -> i32 {
    let (success, mut code, reason, details) = match result {
        Ok(()) => (true, report::EXIT_SUCCESS, None, Vec::new()),
        Err(f) => {
            eprintln!("ERROR: {}", f.reason);
            (false, f.code, Some(f.reason), f.details)
        }
    };
    let cache = if success {
        None
    } else {
        cfg.map(|c| CacheUsage {
            used_bytes: dir_usage(&c.cache.dir),
            capacity_bytes: c.cache.capacity_bytes,
        })
    };
    if code == report::EXIT_TERMINATED && cache.is_some_and(|c| c.exhausted()) {
        println!(
            "WARN: CACHE EXHAUSTION DETECTED: the cache volume is at least 90% full; \
             increase cacheCapacity"
        );
        code = report::EXIT_CACHE_EXHAUSTED;
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
async fn debug_mode(stop: &Stop) -> Result<(), Failure> {
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
        if !Path::new(DEBUG_FILE).exists() || stop.requested() {
            println!("INFO: debug mode ended");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn run(cfg: &MoverConfig, stop: &Stop, produced: &mut Produced) -> Result<(), Failure> {
    match cfg.operation {
        Operation::Backup => backup(cfg, stop, produced).await,
        Operation::Restore => restore(cfg, stop, produced).await,
        Operation::Maintenance => maintenance(cfg, stop).await,
    }
}

// ---------------------------------------------------------------------------------------
// Maintenance

/// `DIRECTION=maintenance` (MOVER-CONTRACT §7): open the existing repository (never create),
/// take maintenance ownership for the configured owner (`maintenance@volsync` unless
/// overridden), run quick then full maintenance with kopia's safety rules, print the summary.
async fn maintenance(cfg: &MoverConfig, stop: &Stop) -> Result<(), Failure> {
    let loc = location(cfg);
    let storage: Arc<dyn BlobStorage> = match &cfg.repository {
        RepositoryTarget::Filesystem { path } => {
            if !path.exists() {
                return Err(Failure::new(format!(
                    "no repository at {loc} (maintenance never creates one)"
                )));
            }
            Arc::new(
                FilesystemStorage::open(path)
                    .map_err(|e| Failure::engine("opening the repository directory", &e))?,
            )
        }
        RepositoryTarget::S3(t) => Arc::new(stop.interruptible(s3_storage(t)).await?),
    };
    let repo = Repository::open(storage, cfg.password.expose(), open_options(cfg))
        .await
        .map_err(|e| Failure::engine(&format!("opening the repository at {loc}"), &e))?;
    let owner = cfg.maintenance_owner.to_string();
    println!("INFO: running maintenance as {owner}");
    let report = stop
        .interruptible(async {
            Ok::<_, Failure>(
                arkiv_engine::maintenance::run_maintenance_as(&repo, &owner, true).await,
            )
        })
        .await?
        .map_err(|e| Failure::engine("maintenance", &e))?;
    for line in report.summary_lines() {
        println!("INFO: {line}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Shared steps

fn data_dir(cfg: &MoverConfig) -> Result<&Path, Failure> {
    let dir = cfg
        .data_dir
        .as_deref()
        .ok_or_else(|| Failure::new("DATA_DIR is required but not set"))?;
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

fn identity(cfg: &MoverConfig) -> Result<SourceInfo, Failure> {
    let id = cfg
        .identity
        .as_ref()
        .ok_or_else(|| Failure::new("KOPIA_OVERRIDE_USERNAME/HOSTNAME are required"))?;
    Ok(SourceInfo {
        host: id.hostname.clone(),
        user_name: id.username.clone(),
        path: id.path.clone(),
    })
}

/// Makes sure the cache directory is usable and records the client configuration there
/// (no secrets): `arkiv.config`, written atomically.
fn prepare_cache(cfg: &MoverConfig, source: &SourceInfo) -> Result<(), Failure> {
    let dir = &cfg.cache.dir;
    std::fs::create_dir_all(dir).map_err(|e| {
        Failure::new(format!(
            "KOPIA_CACHE_DIR {} cannot be created: {e}",
            dir.display()
        ))
    })?;
    let doc = serde_json::json!({
        "repository": cfg.repository.describe(),
        "source": source.to_string(),
        "operation": cfg.operation.as_str(),
        "cacheCapacityBytes": cfg.cache.capacity_bytes,
        "metadataCacheSizeLimitMB": cfg.cache.metadata_limit_mb,
        "contentCacheSizeLimitMB": cfg.cache.content_limit_mb,
        "arkivVersion": env!("CARGO_PKG_VERSION"),
    });
    let file = cfg.cache.config_file();
    let tmp = file.with_extension("config.tmp");
    let write = || -> std::io::Result<()> {
        std::fs::write(&tmp, format!("{doc:#}\n"))?;
        std::fs::rename(&tmp, &file)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Failure::new(format!(
            "KOPIA_CACHE_DIR {} is not writable: {e}",
            dir.display()
        ))
    })
}

fn clock(cfg: &MoverConfig) -> SharedClock {
    match cfg.test_now {
        Some(t) => Arc::new(ManualClock::new(t)),
        None => Arc::new(SystemClock),
    }
}

fn open_options(cfg: &MoverConfig) -> OpenOptions {
    let mut o = OpenOptions::default();
    o.clock = clock(cfg);
    o
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
    o
}

/// An S3 storage whose bucket was checked (a missing bucket or rejected credentials fail here).
async fn s3_storage(t: &S3Target) -> Result<S3Storage, Failure> {
    let s = S3Storage::new(s3_options(t))
        .map_err(|e| Failure::engine(&format!("S3 location s3://{}", t.bucket), &e))?;
    match s.check_bucket().await {
        Ok(()) => Ok(s),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Failure::new(format!(
            "S3 bucket not found: {e} (arkiv never creates buckets)"
        ))),
        Err(e) => Err(Failure::engine("checking the S3 bucket", &e)),
    }
}

/// True when a filesystem directory holds nothing but `lost+found` and `.shards`.
fn dir_is_blank(dir: &Path) -> Result<bool, Failure> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        Failure::new(format!(
            "{}: cannot read repository directory {}: {e}",
            io_cause(&e),
            dir.display()
        ))
    })?;
    for e in rd {
        let e = e.map_err(|e| {
            Failure::new(format!(
                "cannot read repository directory {}: {e}",
                dir.display()
            ))
        })?;
        let name = e.file_name();
        if name != LOST_FOUND && name != ".shards" {
            return Ok(false);
        }
    }
    Ok(true)
}

fn io_cause(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied",
        std::io::ErrorKind::NotFound => "not found",
        _ => "error",
    }
}

fn unknown_format(location: &str) -> Failure {
    Failure::new(format!(
        "unknown format: {location} holds data but no Kopia repository (no kopia.repository \
         blob); refusing to create a repository there"
    ))
}

/// Where the storage is, for messages.
fn location(cfg: &MoverConfig) -> String {
    cfg.repository.describe()
}

// ---------------------------------------------------------------------------------------
// Connect or create (backup)

/// Opens the repository, creating it only where there definitely is none.
async fn connect_or_create(cfg: &MoverConfig, stop: &Stop) -> Result<Repository, Failure> {
    let loc = location(cfg);
    let password = cfg.password.expose();
    let storage: Arc<dyn BlobStorage> = match &cfg.repository {
        RepositoryTarget::Filesystem { path } => {
            if !path.exists() {
                println!(
                    "INFO: repository directory {} does not exist: creating a new repository",
                    path.display()
                );
                let s = FilesystemStorage::create(path)
                    .map_err(|e| Failure::engine("creating the repository directory", &e))?;
                return create(cfg, Arc::new(s), stop).await;
            }
            if !path.is_dir() {
                return Err(Failure::new(format!(
                    "invalid configuration: {} is not a directory",
                    path.display()
                )));
            }
            Arc::new(
                FilesystemStorage::open(path)
                    .map_err(|e| Failure::engine("opening the repository directory", &e))?,
            )
        }
        RepositoryTarget::S3(t) => Arc::new(stop.interruptible(s3_storage(t)).await?),
    };
    let opened = stop
        .interruptible(async {
            Ok::<_, Failure>(Repository::open(storage.clone(), password, open_options(cfg)).await)
        })
        .await?;
    match opened {
        Ok(repo) => Ok(repo),
        Err(Error::RepositoryNotFound { .. }) => {
            let blank = match &cfg.repository {
                RepositoryTarget::Filesystem { path } => dir_is_blank(path)?,
                RepositoryTarget::S3(_) => storage
                    .list("")
                    .await
                    .map_err(|e| Failure::engine("listing the S3 prefix", &e))?
                    .is_empty(),
            };
            if !blank {
                return Err(unknown_format(&loc));
            }
            println!("INFO: no repository at {loc} (empty location): creating a new repository");
            let storage: Arc<dyn BlobStorage> = match &cfg.repository {
                // Writes `.shards` with Kopia's current defaults.
                RepositoryTarget::Filesystem { path } => Arc::new(
                    FilesystemStorage::create(path)
                        .map_err(|e| Failure::engine("preparing the repository directory", &e))?,
                ),
                RepositoryTarget::S3(_) => storage,
            };
            create(cfg, storage, stop).await
        }
        Err(e) => Err(Failure::engine(
            &format!("opening the repository at {loc}"),
            &e,
        )),
    }
}

/// Creates a repository in blank storage. Not interruptible: a half-created repository would
/// block every later run.
async fn create(
    cfg: &MoverConfig,
    storage: Arc<dyn BlobStorage>,
    stop: &Stop,
) -> Result<Repository, Failure> {
    let id = identity(cfg)?;
    let mut opts = CreateOptions::new(&id.user_name, &id.host);
    opts.maintenance_owner = cfg.maintenance_owner.to_string();
    if let Some(enc) = &cfg.manual_config.encryption {
        opts.encryption = enc.parse().map_err(|e| {
            Failure::new(format!(
                "invalid configuration: KOPIA_MANUAL_CONFIG encryption.algorithm {enc:?}: {e}"
            ))
        })?;
    }
    if let Some(spl) = &cfg.manual_config.splitter {
        opts.splitter = spl.parse().map_err(|e| {
            Failure::new(format!(
                "invalid configuration: KOPIA_MANUAL_CONFIG splitter.algorithm {spl:?}: {e}"
            ))
        })?;
    }
    if let Some(c) = &cfg.manual_config.compression {
        println!(
            "WARN: KOPIA_MANUAL_CONFIG compression.algorithm {c:?} is not stored as the global \
             policy by this build; set KOPIA_COMPRESSION for the source instead"
        );
    }
    let repo = create_repository(storage, cfg.password.expose(), &opts, open_options(cfg))
        .await
        .map_err(|e| Failure::engine("creating the repository", &e))?;
    println!(
        "INFO: Repository created at {} ({}, {}, {}); maintenance owner {}",
        location(cfg),
        repo.config().hash,
        repo.config().encryption,
        repo.config().splitter,
        opts.maintenance_owner
    );
    stop.check()?;
    Ok(repo)
}

// ---------------------------------------------------------------------------------------
// Backup

async fn backup(cfg: &MoverConfig, stop: &Stop, produced: &mut Produced) -> Result<(), Failure> {
    let data = data_dir(cfg)?;
    let source = identity(cfg)?;
    prepare_cache(cfg, &source)?;
    if source_is_empty(data)? {
        println!("{}", report::EMPTY_SOURCE);
        return Ok(());
    }
    let repo = connect_or_create(cfg, stop).await?;
    println!("{}", report::repository_connected(&location(cfg)));
    stop.check()?;

    let compression = compression(cfg, &repo, &source).await?;
    let extra = SnapshotArgs::parse(&cfg.additional_args);
    for w in &extra.warnings {
        println!("WARN: {w}");
    }

    if let Some(script) = &cfg.before_snapshot {
        println!("INFO: running KOPIA_BEFORE_SNAPSHOT");
        run_action(script, data, stop)
            .await
            .map_err(|e| Failure::new(format!("KOPIA_BEFORE_SNAPSHOT failed: {e}")))?;
    }
    stop.check()?;

    let mut opts = UploadOptions::new(source.clone());
    opts.username = source.user_name.clone();
    opts.hostname = source.host.clone();
    opts.compression = compression;
    opts.description = extra.description.unwrap_or_default();
    opts.tags = extra.tags;
    opts.force_hash_percent = extra.force_hash.unwrap_or(0.0);
    if let Some(p) = extra
        .parallel
        .or(cfg.parallelism.map(|p| p as usize))
        .filter(|p| *p > 0)
    {
        opts.parallel = p;
    }
    let snapshots = stop
        .interruptible(async {
            repo.snapshots()
                .await
                .map_err(|e| Failure::engine("listing snapshots", &e))
        })
        .await?;
    let previous = latest_complete(&snapshots, &source).and_then(|s| s.manifest.root_entry.clone());
    println!(
        "INFO: creating snapshot of {} from {} ({}, parallel {}{})",
        source,
        data.display(),
        compression.map_or("no compression", CompressionAlgorithm::name),
        opts.parallel,
        if previous.is_some() {
            ", incremental"
        } else {
            ""
        }
    );

    let progress = Arc::new(UploadProgress::default());
    let canceller = {
        let (stop, cancel) = (stop.clone(), opts.cancel.clone());
        tokio::spawn(async move {
            stop.wait().await;
            cancel.cancel();
        })
    };
    let ticker = spawn_upload_progress(progress.clone());
    let result = snapshot_directory(&repo, data, previous, opts, progress).await;
    ticker.abort();
    canceller.abort();
    let result = match result {
        Ok(r) => r,
        Err(e) if stop.requested() || e.kind() == ErrorKind::Cancelled => {
            return Err(Failure::terminated());
        }
        Err(e) => return Err(Failure::engine("creating the snapshot", &e)),
    };
    let m = &result.manifest;
    let summary = m
        .root_entry
        .as_ref()
        .and_then(|r| r.summary.clone())
        .unwrap_or_default();
    produced.snapshot_id = Some(result.manifest_id.to_string());
    produced.files = u64::try_from(summary.files).unwrap_or(0);
    produced.bytes = u64::try_from(summary.size).unwrap_or(0);
    produced.new_bytes = result.new_bytes;
    println!(
        "INFO: snapshot {} of {}: {} files, {} dirs, {} ({} new, {} uploaded in {} packs), \
         {} hashed / {} cached files, {} error(s)",
        result.manifest_id,
        source,
        summary.files,
        summary.dirs,
        bytes_base10(produced.bytes),
        bytes_base10(result.new_bytes),
        bytes_base10(result.packed_bytes),
        result.packs,
        m.stats.file_count,
        m.stats.cached_files,
        m.stats.error_count
    );
    if m.stats.error_count > 0 {
        // Kopia saves the snapshot and fails the command on fatal entry errors.
        return Err(Failure::new(format!(
            "snapshot {} was saved but {} entries could not be read (see the log above)",
            result.manifest_id, m.stats.error_count
        )));
    }
    println!("{}", report::SNAPSHOT_CREATED);

    retention(cfg, &repo, &source, stop).await?;

    if let Some(script) = &cfg.after_snapshot {
        println!("INFO: running KOPIA_AFTER_SNAPSHOT");
        if let Err(e) = run_action(script, data, stop).await {
            println!("WARN: KOPIA_AFTER_SNAPSHOT failed: {e}");
        }
    }
    Ok(())
}

/// The script's empty-source test: nothing but `lost+found`.
fn source_is_empty(dir: &Path) -> Result<bool, Failure> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Failure::new(format!("cannot read DATA_DIR {}: {e}", dir.display())))?;
    for e in rd {
        let e =
            e.map_err(|e| Failure::new(format!("cannot read DATA_DIR {}: {e}", dir.display())))?;
        if e.file_name() != LOST_FOUND {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `KOPIA_COMPRESSION` if set (names Kopia knows but arkiv cannot write fall back to
/// `zstd-fastest` with a warning; unknown names fail, as `kopia policy set` does), else the
/// source's effective policy.
async fn compression(
    cfg: &MoverConfig,
    repo: &Repository,
    source: &SourceInfo,
) -> Result<Option<CompressionAlgorithm>, Failure> {
    let Some(name) = cfg.compression.as_deref() else {
        return crate::policy::effective_compression(repo, source)
            .await
            .map_err(|e| Failure::new(format!("reading the compression policy: {e:#}")));
    };
    if name == arkiv_format::compression::NONE_NAME {
        return Ok(None);
    }
    match CompressionAlgorithm::from_name(name) {
        Some(a) if a.is_supported() => Ok(Some(a)),
        Some(_) => {
            println!(
                "WARN: KOPIA_COMPRESSION={name} is a Kopia compressor arkiv cannot write; \
                 using zstd-fastest"
            );
            Ok(Some(CompressionAlgorithm::ZstdFastest))
        }
        None => Err(Failure::new(format!(
            "invalid configuration: KOPIA_COMPRESSION={name:?} is not a Kopia compressor \
             (e.g. zstd-fastest, zstd, gzip, deflate-default, none)"
        ))),
    }
}

/// The newest complete snapshot of `source`.
fn latest_complete<'a>(snapshots: &'a [Snapshot], source: &SourceInfo) -> Option<&'a Snapshot> {
    snapshots
        .iter()
        .filter(|s| &s.manifest.source == source && s.manifest.incomplete.is_empty())
        .max_by(|a, b| {
            a.manifest
                .start_time
                .cmp(&b.manifest.start_time)
                .then_with(|| a.id.cmp(&b.id))
        })
}

fn spawn_upload_progress(p: Arc<UploadProgress>) -> tokio::task::JoinHandle<()> {
    let started = Instant::now();
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(PROGRESS_EVERY);
        iv.tick().await;
        loop {
            iv.tick().await;
            println!(
                "INFO: progress: {:.0}s: hashed {} files ({}), cached {} files ({}), {} dirs, \
                 {} errors",
                started.elapsed().as_secs_f64(),
                p.hashed_files.load(Ordering::Relaxed),
                bytes_base10(p.hashed_bytes.load(Ordering::Relaxed)),
                p.cached_files.load(Ordering::Relaxed),
                bytes_base10(p.cached_bytes.load(Ordering::Relaxed)),
                p.dirs.load(Ordering::Relaxed),
                p.errors.load(Ordering::Relaxed),
            );
        }
    })
}

/// Runs a user action with `sh -c` in `dir`, with the script's 300 s limit.
async fn run_action(script: &str, dir: &Path, stop: &Stop) -> Result<(), String> {
    let sh = ["/bin/sh", "/usr/bin/sh"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("no shell (/bin/sh) in this image to run it")?;
    let mut child = tokio::process::Command::new(sh)
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {sh}: {e}"))?;
    tokio::select! {
        r = tokio::time::timeout(ACTION_TIMEOUT, child.wait()) => match r {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("exited with {status}")),
            Ok(Err(e)) => Err(format!("wait failed: {e}")),
            Err(_) => Err(format!("timed out after {}s", ACTION_TIMEOUT.as_secs())),
        },
        () = stop.wait() => Err("interrupted by a stop request".into()),
    }
}

/// `KOPIA_ADDITIONAL_ARGS` that mean something for a snapshot; the rest are ignored with a
/// warning (they were Kopia CLI flags).
#[derive(Debug, Default, PartialEq)]
pub struct SnapshotArgs {
    /// `--description`.
    pub description: Option<String>,
    /// `--tags key:value` (repeatable), as manifest tags `tag:key`.
    pub tags: std::collections::BTreeMap<String, String>,
    /// `--parallel N` (wins over `KOPIA_PARALLELISM`).
    pub parallel: Option<usize>,
    /// `--force-hash PERCENT`.
    pub force_hash: Option<f64>,
    /// One line per ignored argument.
    pub warnings: Vec<String>,
}

impl SnapshotArgs {
    /// Parses `--flag value` and `--flag=value` forms.
    pub fn parse(args: &[String]) -> SnapshotArgs {
        let mut out = SnapshotArgs::default();
        let mut i = 0;
        while let Some(arg) = args.get(i) {
            i += 1;
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f, Some(v.to_owned())),
                None => (arg.as_str(), None),
            };
            let known = matches!(
                flag,
                "--description" | "--tags" | "--tag" | "--parallel" | "--force-hash"
            );
            if !known {
                out.warnings.push(format!(
                    "KOPIA_ADDITIONAL_ARGS: {arg:?} is not supported by arkiv; ignored"
                ));
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => {
                        out.warnings.push(format!(
                            "KOPIA_ADDITIONAL_ARGS: {flag} needs a value; ignored"
                        ));
                        continue;
                    }
                },
            };
            let bad = |out: &mut SnapshotArgs| {
                out.warnings.push(format!(
                    "KOPIA_ADDITIONAL_ARGS: invalid value {value:?} for {flag}; ignored"
                ));
            };
            match flag {
                "--description" => out.description = Some(value.clone()),
                "--tags" | "--tag" => match value.split_once(':') {
                    Some((k, v)) if !k.is_empty() => {
                        out.tags.insert(format!("tag:{k}"), v.to_owned());
                    }
                    _ => bad(&mut out),
                },
                "--parallel" => match value.trim().parse::<usize>() {
                    Ok(n) if n > 0 => out.parallel = Some(n),
                    _ => bad(&mut out),
                },
                _ => match value.trim().parse::<f64>() {
                    Ok(p) if (0.0..=100.0).contains(&p) => out.force_hash = Some(p),
                    _ => bad(&mut out),
                },
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Retention

/// Stores `KOPIA_RETAIN_*` (and `KOPIA_COMPRESSION`) as the policy of the snapshot's real
/// source — not of `DATA_DIR`, the script's bug — then expires that source's snapshots by its
/// effective policy, as Kopia's `snapshot create` does. Failures are warnings (the snapshot
/// is saved; the script treats policy failures the same way).
async fn retention(
    cfg: &MoverConfig,
    repo: &Repository,
    source: &SourceInfo,
    stop: &Stop,
) -> Result<(), Failure> {
    stop.check()?;
    let r = cfg.retention;
    let compression = cfg.compression.clone();
    if !r.is_empty() || compression.is_some() {
        let target = PolicyTarget::Source(source.clone());
        let set = set_policy(repo, &target, &source.user_name, &source.host, move |p| {
            let put = |slot: &mut Option<i64>, v: Option<u32>| {
                if let Some(v) = v {
                    *slot = Some(i64::from(v));
                }
            };
            put(&mut p.retention.keep_latest, r.latest);
            put(&mut p.retention.keep_hourly, r.hourly);
            put(&mut p.retention.keep_daily, r.daily);
            put(&mut p.retention.keep_weekly, r.weekly);
            put(&mut p.retention.keep_monthly, r.monthly);
            put(&mut p.retention.keep_annual, r.annual);
            if let Some(c) = compression {
                p.compression.compressor_name = c;
            }
        })
        .await;
        if let Err(e) = set {
            println!(
                "WARN: could not store the policy of {source}: {}: {e}; retention not applied",
                cause(&e)
            );
            return Ok(());
        }
        println!(
            "INFO: policy of {source} updated ({})",
            describe_retention(&r)
        );
    }
    stop.check()?;
    match expire_source(repo, source, &source.user_name, &source.host).await {
        Ok(plan) => {
            let kept = plan.decisions.len() - plan.expired_count();
            println!(
                "INFO: retention: {} snapshot(s) of {source} expired, {kept} kept",
                plan.expired_count()
            );
            for d in plan.expired() {
                println!(
                    "INFO:   expired {} ({})",
                    d.id,
                    report::go_time(&d.start_time)
                );
            }
        }
        Err(e) => println!("WARN: retention of {source} failed: {}: {e}", cause(&e)),
    }
    Ok(())
}

fn describe_retention(r: &crate::env::Retention) -> String {
    let parts: Vec<String> = [
        ("latest", r.latest),
        ("hourly", r.hourly),
        ("daily", r.daily),
        ("weekly", r.weekly),
        ("monthly", r.monthly),
        ("annual", r.annual),
    ]
    .iter()
    .filter_map(|(k, v)| v.map(|v| format!("keep-{k} {v}")))
    .collect();
    if parts.is_empty() {
        "compression".into()
    } else {
        parts.join(", ")
    }
}

// ---------------------------------------------------------------------------------------
// Restore

/// Opens the repository read-only. `Ok(None)`: there is no repository (nothing created).
async fn connect_read_only(cfg: &MoverConfig, stop: &Stop) -> Result<Option<Repository>, Failure> {
    let loc = location(cfg);
    let storage: Arc<dyn BlobStorage> = match &cfg.repository {
        RepositoryTarget::Filesystem { path } => {
            if !path.exists() {
                println!(
                    "WARN: repository directory {} does not exist (nothing was created)",
                    path.display()
                );
                return Ok(None);
            }
            let s = FilesystemStorage::open(path)
                .map_err(|e| Failure::engine("opening the repository directory", &e))?;
            Arc::new(ReadOnlyStorage::new(s))
        }
        RepositoryTarget::S3(t) => Arc::new(ReadOnlyStorage::new(
            stop.interruptible(s3_storage(t)).await?,
        )),
    };
    let opened = stop
        .interruptible(async {
            Ok::<_, Failure>(
                Repository::open(storage.clone(), cfg.password.expose(), open_options(cfg)).await,
            )
        })
        .await?;
    match opened {
        Ok(repo) => Ok(Some(repo)),
        Err(Error::RepositoryNotFound { .. }) => {
            let blank = match &cfg.repository {
                RepositoryTarget::Filesystem { path } => dir_is_blank(path)?,
                RepositoryTarget::S3(_) => storage
                    .list("")
                    .await
                    .map_err(|e| Failure::engine("listing the S3 prefix", &e))?
                    .is_empty(),
            };
            if blank {
                println!("WARN: no repository at {loc} (nothing was created)");
                Ok(None)
            } else {
                Err(unknown_format(&loc))
            }
        }
        Err(e) => Err(Failure::engine(
            &format!("opening the repository at {loc}"),
            &e,
        )),
    }
}

/// The eligible snapshots of `source`, newest first.
fn candidates<'a>(snapshots: &'a [Snapshot], source: &SourceInfo) -> Vec<&'a Snapshot> {
    let mut c: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|s| &s.manifest.source == source && s.manifest.incomplete.is_empty())
        .filter(|s| s.manifest.root_entry.is_some())
        .collect();
    c.sort_by(|a, b| {
        b.manifest
            .start_time
            .cmp(&a.manifest.start_time)
            .then_with(|| b.id.cmp(&a.id))
    });
    c
}

fn discovered(snapshots: &[Snapshot]) -> Vec<DiscoveredSnapshot> {
    snapshots
        .iter()
        .map(|s| DiscoveredSnapshot {
            id: s.id.to_string(),
            user_name: s.manifest.source.user_name.clone(),
            host_name: s.manifest.source.host.clone(),
            path: s.manifest.source.path.clone(),
            start_time: s.manifest.start_time,
            end_time: s.manifest.end_time,
        })
        .collect()
}

async fn restore(cfg: &MoverConfig, stop: &Stop, produced: &mut Produced) -> Result<(), Failure> {
    let data = data_dir(cfg)?;
    let source = identity(cfg)?;
    prepare_cache(cfg, &source)?;
    let repo = connect_read_only(cfg, stop).await?;
    let snapshots = match &repo {
        Some(repo) => {
            println!("{}", report::repository_connected(&location(cfg)));
            stop.interruptible(async {
                repo.snapshots()
                    .await
                    .map_err(|e| Failure::engine("listing snapshots", &e))
            })
            .await?
        }
        None => Vec::new(),
    };
    let eligible = candidates(&snapshots, &source);
    let times: Vec<_> = eligible.iter().map(|s| s.manifest.start_time).collect();
    let picked = cfg
        .restore_selection
        .select(&times)
        .and_then(|i| eligible.get(i).copied());
    let (Some(repo), Some(snap)) = (repo.as_ref(), picked) else {
        println!(
            "INFO: {} snapshot(s) of {source}; selection: previous={}{}",
            eligible.len(),
            cfg.restore_selection.previous,
            cfg.restore_selection
                .restore_as_of
                .map(|t| format!(", as of {}", t.to_rfc3339()))
                .unwrap_or_default()
        );
        let all = discovered(&snapshots);
        let discovery = cfg.discover_snapshots.then_some(all.as_slice());
        print!(
            "{}",
            report::no_snapshot_output(&source.to_string(), discovery)
        );
        if cfg.fail_if_no_snapshot {
            eprintln!("{}", report::no_snapshot_error(&source.to_string()));
            return Err(Failure::new(format!(
                "no eligible snapshot of {source} (ARKIV_FAIL_IF_NO_SNAPSHOT=true)"
            )));
        }
        return Ok(());
    };
    println!("{}", report::selected_snapshot(&snap.id.to_string()));
    println!(
        "INFO: restoring snapshot of {source} started {} into {}{}",
        report::go_time(&snap.manifest.start_time),
        data.display(),
        if cfg.enable_file_deletion {
            " (removing files that are not in the snapshot)"
        } else {
            ""
        }
    );
    let root: DirEntry = snap
        .manifest
        .root_entry
        .clone()
        .ok_or_else(|| Failure::new(format!("snapshot {} has no root entry", snap.id)))?;
    let mut opts = RestoreOptions::default();
    opts.delete_extra = cfg.enable_file_deletion;
    opts.keep_in_root = vec![LOST_FOUND.to_owned()];
    opts.ignore_permission_errors = true;
    let ticker = spawn_elapsed_progress("restore");
    let stats = stop
        .interruptible(async {
            restore_entry(repo, &root, data, opts)
                .await
                .map_err(|e| Failure::engine(&format!("restoring snapshot {}", snap.id), &e))
        })
        .await;
    ticker.abort();
    let stats = stats?;
    produced.snapshot_id = Some(snap.id.to_string());
    produced.files = stats.files;
    produced.bytes = stats.bytes;
    println!(
        "INFO: restored {} files, {} directories, {} symlinks, {}{}",
        stats.files,
        stats.dirs,
        stats.symlinks,
        bytes_base10(stats.bytes),
        if stats.deleted > 0 {
            format!(", removed {} extra entries", stats.deleted)
        } else {
            String::new()
        }
    );
    sync_dir(data)?;
    println!("{}", report::RESTORE_COMPLETED);
    Ok(())
}

fn spawn_elapsed_progress(what: &'static str) -> tokio::task::JoinHandle<()> {
    let started = Instant::now();
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(PROGRESS_EVERY);
        iv.tick().await;
        loop {
            iv.tick().await;
            println!(
                "INFO: progress: {what} running for {:.0}s",
                started.elapsed().as_secs_f64()
            );
        }
    })
}

/// `sync -f DATA_DIR`: flush the whole filesystem holding the restored data.
fn sync_dir(dir: &Path) -> Result<(), Failure> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dir)
        .map_err(|e| Failure::new(format!("cannot open {} to sync it: {e}", dir.display())))?;
    nix::unistd::syncfs(f.as_raw_fd())
        .map_err(|e| Failure::new(format!("syncing {} failed: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn snapshot_args_known_and_ignored() {
        let a = SnapshotArgs::parse(&args(&[
            "--description=Nightly",
            "--tags",
            "app:web",
            "--parallel=4",
            "--one-file-system",
            "--force-hash",
            "5",
        ]));
        assert_eq!(a.description.as_deref(), Some("Nightly"));
        assert_eq!(a.tags.get("tag:app").map(String::as_str), Some("web"));
        assert_eq!(a.parallel, Some(4));
        assert_eq!(a.force_hash, Some(5.0));
        assert_eq!(a.warnings.len(), 1);
        assert!(a.warnings[0].contains("--one-file-system"));
    }

    #[test]
    fn snapshot_args_bad_values_warn() {
        let a = SnapshotArgs::parse(&args(&["--parallel=x", "--tags=novalue", "--description"]));
        assert_eq!(
            a,
            SnapshotArgs {
                warnings: a.warnings.clone(),
                ..SnapshotArgs::default()
            }
        );
        assert_eq!(a.warnings.len(), 3);
    }

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
