//! The write commands of `arkiv`: `repository create`, `repository status`, `snapshot create`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use arkiv_engine::initialize::{CreateOptions, create_repository};
use arkiv_engine::snapshot::upload::{UploadOptions, UploadProgress, snapshot_directory};
use arkiv_engine::{OpenOptions, Repository};
use arkiv_format::compression::CompressionAlgorithm;
use arkiv_format::snapshot::SourceInfo;

use crate::cli::{Env, GlobalArgs, RepositoryCreateArgs, SnapshotCreateArgs, parse_source};
use crate::exit::{self, CliError};
use crate::output::bytes_base10;

fn config_err(msg: String) -> anyhow::Error {
    CliError::new(exit::CONFIG, msg)
}

/// `arkiv repository create`
pub async fn repository_create(
    g: &GlobalArgs,
    env: Env<'_>,
    a: RepositoryCreateArgs,
) -> Result<i32> {
    if !a.ecc.eq_ignore_ascii_case("none") && !a.ecc.is_empty() {
        return Err(CliError::new(
            exit::UNSUPPORTED,
            format!(
                "unsupported ECC {:?}: arkiv creates repositories without error correction",
                a.ecc
            ),
        ));
    }
    let (user, host) = g.identity();
    let mut opts = CreateOptions::new(&user, &host);
    opts.encryption = a
        .encryption
        .parse()
        .map_err(|e| CliError::new(exit::UNSUPPORTED, format!("--encryption: {e}")))?;
    opts.hash = a
        .block_hash
        .parse()
        .map_err(|e| CliError::new(exit::UNSUPPORTED, format!("--block-hash: {e}")))?;
    opts.splitter = a
        .object_splitter
        .parse()
        .map_err(|e| CliError::new(exit::UNSUPPORTED, format!("--object-splitter: {e}")))?;
    let loc = g.location(env)?;
    let password = g.password(env)?;
    let storage = loc.open_for_create().await?;
    let repo = create_repository(storage, &password, &opts, OpenOptions::default()).await?;
    eprintln!(
        "Created repository at {} (format version 3, {}, {}, {}); maintenance owner {}",
        loc.describe(),
        repo.config().hash,
        repo.config().encryption,
        repo.config().splitter,
        opts.maintenance_owner
    );
    Ok(exit::OK)
}

/// `arkiv repository status`
pub async fn repository_status(g: &GlobalArgs, env: Env<'_>) -> Result<i32> {
    let loc = g.location(env)?;
    let repo = g.open(env).await?;
    let (user, host) = g.identity();
    let cfg = repo.config();
    let ep = &cfg.epoch_parameters;
    let write_epoch = {
        let markers = repo.storage().list("xe").await?;
        markers
            .iter()
            .filter_map(|m| {
                arkiv_format::indexblob::epoch::epoch_number_from_blob_id(m.id.as_str())
            })
            .max()
            .unwrap_or(0)
    };
    let dur = |ns: i64| {
        let s = ns / 1_000_000_000;
        if s % 3600 == 0 {
            format!("{}h0m0s", s / 3600)
        } else if s % 60 == 0 {
            format!("{}m0s", s / 60)
        } else {
            format!("{s}s")
        }
    };
    let mut out = String::new();
    out += &format!("Description:         Repository at {}\n", loc.describe());
    out += &format!("Hostname:            {host}\nUsername:            {user}\n\n");
    out += &format!("Storage:             {}\n\n", repo.storage().describe());
    out += &format!(
        "Unique ID:           {}\n",
        hex_encode(&repo.format().blob.unique_id)
    );
    out += &format!("Hash:                {}\n", cfg.hash);
    out += &format!("Encryption:          {}\n", cfg.encryption);
    out += &format!("Splitter:            {}\n", cfg.splitter_name());
    out += &format!("Format version:      {}\n", cfg.version);
    out += &format!(
        "Content compression: {}\n",
        cfg.effective_index_version() >= 2
    );
    out += &format!("Password changes:    {}\n", cfg.enable_password_change);
    out += &format!(
        "Max pack length:     {}\n",
        bytes_base10(cfg.effective_max_pack_size())
    );
    out += &format!(
        "Index Format:        v{}\n\n",
        cfg.effective_index_version()
    );
    if ep.enabled {
        out += "Epoch Manager:       enabled\n";
        out += &format!("Current Epoch: {write_epoch}\n\n");
        out += &format!(
            "Epoch refresh frequency: {}\n",
            dur(ep.epoch_refresh_frequency)
        );
        out += &format!(
            "Epoch advance on:        {} blobs or {}, minimum {}\n",
            ep.epoch_advance_on_count_threshold,
            bytes_base10(
                u64::try_from(ep.epoch_advance_on_total_size_bytes_threshold).unwrap_or(0)
            ),
            dur(ep.min_epoch_duration)
        );
        out += &format!(
            "Epoch cleanup margin:    {}\n",
            dur(ep.cleanup_safety_margin)
        );
        out += &format!(
            "Epoch checkpoint every:  {} epochs\n",
            ep.full_checkpoint_frequency
        );
    } else {
        out += "Epoch Manager:       disabled\n";
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(exit::OK)
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses `--compression`.
pub fn parse_compression(name: &str) -> Result<Option<CompressionAlgorithm>> {
    match name {
        "none" | "" => Ok(None),
        "zstd-fastest" | "zstd" | "zstd-better-compression" | "zstd-best-compression" => Ok(Some(
            CompressionAlgorithm::from_name(name)
                .ok_or_else(|| config_err(format!("unknown compression {name:?}")))?,
        )),
        other => Err(config_err(format!(
            "unsupported --compression {other:?}: use zstd-fastest, zstd, zstd-better-compression, zstd-best-compression or none"
        ))),
    }
}

/// The latest complete snapshot of `source` (for incremental uploads).
pub async fn previous_root(
    repo: &Repository,
    source: &SourceInfo,
) -> Result<Option<arkiv_format::snapshot::DirEntry>> {
    let snaps = repo.snapshots().await?;
    Ok(snaps
        .into_iter()
        .filter(|s| &s.manifest.source == source)
        .filter(|s| s.manifest.incomplete.is_empty())
        .max_by(|a, b| a.manifest.start_time.cmp(&b.manifest.start_time))
        .and_then(|s| s.manifest.root_entry))
}

/// Summary of a finished snapshot (the `--json` object).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSummary {
    /// Manifest ID.
    pub snapshot_id: String,
    /// Source identity.
    pub source: String,
    /// Root object ID.
    pub root_object: String,
    /// Files in the snapshot.
    pub files: i64,
    /// Directories in the snapshot.
    pub dirs: i64,
    /// Total file bytes.
    pub bytes: i64,
    /// Files read (not reused from the previous snapshot).
    pub hashed_files: i64,
    /// Files reused from the previous snapshot.
    pub cached_files: i64,
    /// Plaintext bytes of new contents.
    pub new_bytes: u64,
    /// Bytes added to pack blobs.
    pub uploaded_bytes: u64,
    /// Entries that could not be read.
    pub errors: i64,
    /// Wall time.
    pub duration_seconds: f64,
}

/// `arkiv snapshot create`
pub async fn snapshot_create(g: &GlobalArgs, env: Env<'_>, a: SnapshotCreateArgs) -> Result<i32> {
    let dir = std::fs::canonicalize(&a.dir)
        .map_err(|e| CliError::new(exit::NOT_FOUND, format!("{}: {e}", a.dir.display())))?;
    let (user, host) = g.identity();
    let source = match &a.source {
        Some(s) => parse_source(s)?,
        None => SourceInfo {
            host: host.clone(),
            user_name: user.clone(),
            path: dir.display().to_string(),
        },
    };
    let repo = g.open(env).await?;
    let compression = match &a.compression {
        Some(c) => parse_compression(c)?,
        None => crate::policy::effective_compression(&repo, &source).await?,
    };
    let mut opts = UploadOptions::new(source.clone());
    opts.username = user.clone();
    opts.hostname = host.clone();
    opts.description = a.description.clone();
    opts.compression = compression;
    opts.force_hash_percent = a.force_hash.clamp(0.0, 100.0);
    if let Some(p) = a.parallel {
        opts.parallel = p.max(1);
    }
    let mut tags = BTreeMap::new();
    for t in &a.tags {
        let (k, v) = t
            .split_once(':')
            .ok_or_else(|| config_err(format!("invalid tag {t:?}: expected key:value")))?;
        tags.insert(format!("tag:{k}"), v.to_owned());
    }
    opts.tags = tags;
    let previous = previous_root(&repo, &source).await?;
    let progress = Arc::new(UploadProgress::default());
    crate::signals::cancel_on_signal(opts.cancel.clone());
    let started = Instant::now();
    let ticker = spawn_progress(progress.clone(), started);
    let result = snapshot_directory(&repo, &dir, previous, opts, progress.clone()).await;
    ticker.abort();
    let result = result?;
    let m = &result.manifest;
    let root = m.root_entry.clone().unwrap_or_default();
    let summ = root.summary.clone().unwrap_or_default();
    let summary = SnapshotSummary {
        snapshot_id: result.manifest_id.to_string(),
        source: source.to_string(),
        root_object: root.object.to_string(),
        files: summ.files,
        dirs: summ.dirs,
        bytes: summ.size,
        hashed_files: i64::from(m.stats.file_count),
        cached_files: i64::from(m.stats.cached_files),
        new_bytes: result.new_bytes,
        uploaded_bytes: result.packed_bytes,
        errors: i64::from(m.stats.error_count),
        duration_seconds: started.elapsed().as_secs_f64(),
    };
    eprintln!(
        "Created snapshot {} of {}: {} files, {} dirs, {} ({} hashed, {} cached), {} new, {} uploaded in {} packs, {:.1}s, {} error(s)",
        summary.snapshot_id,
        summary.source,
        summary.files,
        summary.dirs,
        bytes_base10(u64::try_from(summary.bytes).unwrap_or(0)),
        summary.hashed_files,
        summary.cached_files,
        bytes_base10(summary.new_bytes),
        bytes_base10(summary.uploaded_bytes),
        result.packs,
        summary.duration_seconds,
        summary.errors
    );
    // Like kopia's `snapshot create`: apply the source's retention policy right after saving.
    let plan = arkiv_engine::retention::expire_source(&repo, &source, &user, &host).await?;
    report_expired(&plan);
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    if summary.errors > 0 {
        eprintln!(
            "arkiv: warning: {} entries could not be read (see the log above); the snapshot records them as failed",
            summary.errors
        );
        return Ok(exit::PARTIAL);
    }
    Ok(exit::OK)
}

/// Prints the snapshots an expiry deleted (to stderr, like the other progress messages).
pub fn report_expired(plan: &arkiv_engine::retention::RetentionPlan) {
    let n = plan.expired_count();
    if n == 0 {
        return;
    }
    eprintln!(
        "Expired {n} snapshot(s) of {} (retention policy):",
        plan.source
    );
    for d in plan.expired() {
        eprintln!(
            "  {}  {}",
            d.start_time.format("%Y-%m-%d %H:%M:%S UTC"),
            d.id
        );
    }
}

fn spawn_progress(p: Arc<UploadProgress>, started: Instant) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(Duration::from_secs(5));
        iv.tick().await;
        loop {
            iv.tick().await;
            eprintln!(
                "[{:>5.0}s] hashed {} files ({}), cached {} files ({}), {} dirs, {} errors",
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
