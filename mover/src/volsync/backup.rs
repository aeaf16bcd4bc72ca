//! Source (backup): connect or create the repository, run the hooks around an incremental
//! snapshot of `DATA_DIR`, store `KOPIA_RETAIN_*` as the source's policy and expire.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arkiv_engine::initialize::CreateOptions;
use arkiv_engine::policy::{PolicyTarget, set_policy};
use arkiv_engine::retention::expire_source;
use arkiv_engine::snapshot::select;
use arkiv_engine::snapshot::upload::{UploadOptions, UploadProgress, snapshot_directory};
use arkiv_engine::{ErrorKind, Repository};
use arkiv_format::compression::CompressionAlgorithm;
use arkiv_format::gojson;
use arkiv_format::snapshot::SourceInfo;

use super::additional_args::SnapshotArgs;
use super::config::{BackupConfig, MoverConfig, Retention};
use super::{
    Failure, LOST_FOUND, Produced, Stop, begin, cause, connection, probe, snapshots, storage,
    unknown_format,
};
use crate::cancel::CancellationToken;
use crate::compression;
use crate::connect::{Access, Connection, Probe};
use crate::progress::{self, Style};
use crate::render::text::{self, bytes_base10};
use crate::render::volsync as report;

/// Time limit of `KOPIA_BEFORE_SNAPSHOT` / `KOPIA_AFTER_SNAPSHOT` (the script's `timeout 300`).
const ACTION_TIMEOUT: Duration = Duration::from_secs(300);

/// The backup flow.
pub(super) async fn run(
    cfg: &MoverConfig,
    b: &BackupConfig,
    stop: &CancellationToken,
    produced: &mut Produced,
) -> Result<(), Failure> {
    let (data, source) = begin(cfg, &b.data_dir, &b.identity)?;
    if source_is_empty(data)? {
        println!("{}", report::EMPTY_SOURCE);
        return Ok(());
    }
    super::jitter::wait(&cfg.features.jitter, &b.identity.to_string(), stop).await?;
    let repo = connect_or_create(cfg, b, stop).await?;
    println!(
        "{}",
        report::repository_connected(&cfg.repository.describe())
    );
    stop.check()?;
    // policyConfig's global policy, stored before the snapshot as the script's
    // `ensure_connected` does, so that this snapshot and its retention use it
    super::policy_config::apply_global_policy(
        &cfg.policy_files,
        &repo,
        &b.identity.username,
        &b.identity.hostname,
    )
    .await;
    stop.check()?;

    let compression = compression(b, &repo, &source).await?;
    let extra = SnapshotArgs::parse(&b.additional_args);
    for w in &extra.warnings {
        println!("WARN: {w}");
    }

    let actions = actions_enabled(cfg, b);
    if let Some(script) = b.before_snapshot.as_deref().filter(|_| actions) {
        println!("INFO: running KOPIA_BEFORE_SNAPSHOT with sh -c");
        run_action(script, ACTION_TIMEOUT, stop)
            .await
            .map_err(|e| Failure::new(format!("KOPIA_BEFORE_SNAPSHOT failed: {e}")))?;
        println!("INFO: KOPIA_BEFORE_SNAPSHOT completed successfully");
    }
    stop.check()?;

    let mut opts = UploadOptions::new(source.clone());
    opts.username = source.user_name.clone();
    opts.hostname = source.host.clone();
    opts.compression = compression;
    // without KOPIA_COMPRESSION each file gets its policy node's compressor, like kopia
    opts.compression_from_policy = b.compression.is_none();
    opts.description = extra.description.unwrap_or_default();
    opts.tags = extra.tags;
    opts.force_hash_percent = extra.force_hash.unwrap_or(0.0);
    if let Some(p) = extra
        .parallel
        .or(b.parallelism.map(|p| p as usize))
        .filter(|p| *p > 0)
    {
        opts.parallel = p;
    }
    let snapshots = snapshots(&repo, stop).await?;
    let previous = select::latest(&snapshots, &source).and_then(|s| s.manifest.root_entry.clone());
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

    opts.cancel = stop.child_token();
    let progress = Arc::new(UploadProgress::default());
    let ticker = progress::start(Style::VolSync, progress::Source::Upload(progress.clone()));
    let result = snapshot_directory(&repo, data, previous, opts, progress).await;
    drop(ticker);
    let result = match result {
        Ok(r) => r,
        Err(e) if stop.is_cancelled() || e.kind() == ErrorKind::Cancelled => {
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
    let mm = &mut produced.metrics;
    mm.set("arkiv_backup_source_bytes", produced.bytes as f64);
    mm.set("arkiv_backup_new_bytes", result.new_bytes as f64);
    mm.set("arkiv_backup_uploaded_bytes", result.packed_bytes as f64);
    mm.set("arkiv_backup_files", produced.files as f64);
    mm.set("arkiv_backup_errors", f64::from(m.stats.error_count.max(0)));
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

    // Right after the snapshot, before retention, as the script runs it.
    if let Some(script) = b.after_snapshot.as_deref().filter(|_| actions) {
        println!("INFO: running KOPIA_AFTER_SNAPSHOT with sh -c");
        match run_action(script, ACTION_TIMEOUT, stop).await {
            Ok(()) => println!("INFO: KOPIA_AFTER_SNAPSHOT completed successfully"),
            Err(e) => println!(
                "WARN: KOPIA_AFTER_SNAPSHOT failed: {e} (the snapshot was created; not a failure)"
            ),
        }
    }

    retention(b, &repo, &source, stop).await?;
    if !cfg.features.metrics.is_off() {
        source_metrics(&repo, &source, &mut produced.metrics, stop).await?;
    }
    if let Some(fields) = cfg.features.source_marker {
        super::marker::refresh(cfg, &repo, &b.identity, fields, stop).await?;
    }
    Ok(())
}

/// The source's snapshot count and newest snapshot time, after retention.
async fn source_metrics(
    repo: &Repository,
    source: &SourceInfo,
    metrics: &mut super::metrics::RunMetrics,
    stop: &CancellationToken,
) -> Result<(), Failure> {
    // the listing as stored now, with this run's snapshot (and retention's deletions)
    let mut repo = repo.clone();
    repo.refresh()
        .await
        .map_err(|e| Failure::engine("re-reading the repository", &e))?;
    let all = snapshots(&repo, stop).await?;
    let mine: Vec<_> = all
        .iter()
        .filter(|s| s.manifest.source == *source)
        .collect();
    metrics.set("arkiv_source_snapshots", mine.len() as f64);
    if let Some(newest) = mine.iter().map(|s| s.manifest.start_time).max() {
        metrics.set(
            "arkiv_source_last_snapshot_timestamp_seconds",
            newest.timestamp() as f64,
        );
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

/// Opens the repository, creating it only where there definitely is none.
async fn connect_or_create(
    cfg: &MoverConfig,
    b: &BackupConfig,
    stop: &CancellationToken,
) -> Result<Repository, Failure> {
    let conn = connection(cfg, Access::ReadWrite);
    let loc = conn.describe();
    let Some(storage) = storage(cfg, &conn, stop).await? else {
        println!("INFO: repository directory {loc} does not exist: creating a new repository");
        let storage = conn
            .storage_for_create()
            .await
            .map_err(|e| Failure::engine("creating the repository directory", &e))?;
        return create(cfg, b, &conn, storage, stop).await;
    };
    match probe(cfg, &conn, storage, stop).await? {
        Probe::Opened(repo) => Ok(*repo),
        Probe::Blank(storage) => {
            println!("INFO: no repository at {loc} (empty location): creating a new repository");
            create(cfg, b, &conn, storage, stop).await
        }
        Probe::Foreign => Err(unknown_format(&loc)),
        Probe::Missing => Err(Failure::new(format!("no repository at {loc}"))),
    }
}

/// Creates a repository in blank storage. Not interruptible: a half-created repository would
/// block every later run.
async fn create(
    cfg: &MoverConfig,
    b: &BackupConfig,
    conn: &Connection,
    storage: Arc<dyn arkiv_engine::blob::BlobStorage>,
    stop: &CancellationToken,
) -> Result<Repository, Failure> {
    let id = &b.identity;
    let mut opts = CreateOptions::new(&id.username, &id.hostname);
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
    if let Some(h) = &cfg.manual_config.hash {
        opts.hash = h.parse().map_err(|e| {
            Failure::new(format!(
                "invalid configuration: KOPIA_MANUAL_CONFIG hash.algorithm {h:?}: {e}"
            ))
        })?;
    }
    // Checked before anything is written, as `kopia repository create --compression` would.
    let global_compression = match &cfg.manual_config.compression {
        Some(c) => Some(
            compression::choose(c)
                .map_err(|e| {
                    Failure::new(format!(
                        "invalid configuration: KOPIA_MANUAL_CONFIG compression.algorithm={e}"
                    ))
                })
                .map(|_| c.clone())?,
        ),
        None => None,
    };
    let repo = conn
        .create(storage, cfg.password.expose(), &opts)
        .await
        .map_err(|e| Failure::engine("creating the repository", &e))?;
    println!(
        "INFO: Repository created at {}",
        text::new_repository(&conn.describe(), &repo, &opts.maintenance_owner)
    );
    if let Some(name) = global_compression {
        // The repository-wide default: the global policy's compressor.
        let n = name.clone();
        set_policy(
            &repo,
            &PolicyTarget::Global,
            &id.username,
            &id.hostname,
            move |p| p.compression.compressor_name = n,
        )
        .await
        .map_err(|e| Failure::engine("storing the global compression policy", &e))?;
        println!(
            "INFO: global policy compression set to {name} (KOPIA_MANUAL_CONFIG compression.algorithm)"
        );
    }
    stop.check()?;
    Ok(repo)
}

/// `KOPIA_COMPRESSION` if set, else the source's effective policy, by the one rule of
/// [`crate::compression`] (kopia names arkiv cannot write fall back to `zstd-fastest` with a
/// warning; unknown names fail, as `kopia policy set` does).
async fn compression(
    b: &BackupConfig,
    repo: &Repository,
    source: &SourceInfo,
) -> Result<Option<CompressionAlgorithm>, Failure> {
    let (choice, named_by) = match b.compression.as_deref() {
        Some(name) => (
            compression::choose(name).map_err(|e| {
                Failure::new(format!("invalid configuration: KOPIA_COMPRESSION={e}"))
            })?,
            format!("KOPIA_COMPRESSION={name}"),
        ),
        None => (
            compression::from_policy(repo, source)
                .await
                .map_err(|e| Failure::new(format!("reading the compression policy: {e:#}")))?,
            format!("the compressor of {source}'s policy"),
        ),
    };
    if let Some(w) = choice.warning(&named_by) {
        println!("WARN: {w}");
    }
    Ok(choice.algorithm)
}

/// Whether `KOPIA_BEFORE_SNAPSHOT` / `KOPIA_AFTER_SNAPSHOT` run: not when the repository
/// configuration file of `policyConfig` (`KOPIA_REPOSITORY_CONFIG_FILE`) says
/// `"enableActions": false`, as in the script. A missing or unreadable file leaves them on
/// (the script's rule too). The file's keys that are not applied are warned about on every
/// backup, hooks or not.
fn actions_enabled(cfg: &MoverConfig, b: &BackupConfig) -> bool {
    let repo_cfg = super::policy_config::repository_config(&cfg.policy_files);
    let hooks = b.before_snapshot.is_some() || b.after_snapshot.is_some();
    if hooks && repo_cfg.enable_actions == Some(false) {
        println!(
            "INFO: KOPIA_BEFORE_SNAPSHOT / KOPIA_AFTER_SNAPSHOT skipped: the repository \
             configuration says enableActions: false"
        );
        return false;
    }
    true
}

/// Runs a user action as the script does: `sh -c SCRIPT` (the image's busybox `sh`, found on
/// `PATH`), in the mover's working directory, stdout/stderr into the mover's log, killed after
/// `limit` (300 s: the script's `timeout 300`) or on a stop.
pub(super) async fn run_action(
    script: &str,
    limit: Duration,
    stop: &CancellationToken,
) -> Result<(), String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start sh (a shell is needed to run it): {e}"))?;
    tokio::select! {
        r = tokio::time::timeout(limit, child.wait()) => match r {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("exited with {status}")),
            Ok(Err(e)) => Err(format!("wait failed: {e}")),
            Err(_) => Err(format!("timed out after {} s", limit.as_secs())),
        },
        () = stop.cancelled() => Err("interrupted by a stop request".into()),
    }
}

/// Stores `KOPIA_RETAIN_*` (and `KOPIA_COMPRESSION`) as the policy of the snapshot's real
/// source — not of `DATA_DIR`, the script's bug — then expires that source's snapshots by its
/// effective policy, as Kopia's `snapshot create` does. Failures are warnings (the snapshot
/// is saved; the script treats policy failures the same way).
async fn retention(
    b: &BackupConfig,
    repo: &Repository,
    source: &SourceInfo,
    stop: &CancellationToken,
) -> Result<(), Failure> {
    stop.check()?;
    let r = b.retention;
    let compression = b.compression.clone();
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
                    gojson::time::format(&d.start_time)
                );
            }
        }
        Err(e) => println!("WARN: retention of {source} failed: {}: {e}", cause(&e)),
    }
    Ok(())
}

fn describe_retention(r: &Retention) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn actions_run_with_sh_and_report_failure_and_timeout() {
        let stop = CancellationToken::new();
        rt().block_on(async {
            let ok = run_action("test \"$(echo a b)\" = 'a b'", ACTION_TIMEOUT, &stop).await;
            assert_eq!(ok, Ok(()));
            let failed = run_action("exit 3", ACTION_TIMEOUT, &stop)
                .await
                .unwrap_err();
            assert!(failed.contains("exit status: 3"), "{failed}");
            let started = std::time::Instant::now();
            let slow = run_action("sleep 30", Duration::from_millis(300), &stop)
                .await
                .unwrap_err();
            assert!(slow.contains("timed out"), "{slow}");
            assert!(started.elapsed() < Duration::from_secs(10));
        });
    }
}
