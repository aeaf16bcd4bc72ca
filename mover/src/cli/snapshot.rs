//! `arkiv snapshot create|list`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use arkiv_engine::repo::Snapshot;
use arkiv_engine::snapshot::select;
use arkiv_engine::snapshot::upload::{UploadOptions, UploadProgress, snapshot_directory};
use arkiv_format::gojson;
use arkiv_format::snapshot::SourceInfo;
use clap::{Args, Subcommand};

use super::{GlobalArgs, parse_source, report_expired};
use crate::exit::{self, CliError};
use crate::progress::{self, Style};
use crate::render::text::{self, bytes_base10};
use crate::{Env, cancel, compression};

/// `arkiv snapshot …`
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List snapshots.
    List(SnapshotListArgs),
    /// Snapshot a directory.
    Create(SnapshotCreateArgs),
    /// Exit 0 when a source has at least one snapshot, 3 when it has none (for scripts and
    /// admission checks).
    Exists(SnapshotExistsArgs),
}

/// `arkiv snapshot exists`
#[derive(Debug, Args)]
pub struct SnapshotExistsArgs {
    /// The source (USER@HOST:/PATH)
    #[arg(long)]
    pub source: String,
}

/// `arkiv snapshot create`
#[derive(Debug, Args)]
pub struct SnapshotCreateArgs {
    /// Directory to snapshot
    pub dir: PathBuf,
    /// Source identity recorded (USER@HOST:/PATH); default: acting user@host and DIR's absolute path
    #[arg(long)]
    pub source: Option<String>,
    /// File data compression, a kopia compressor name: zstd-fastest, zstd, gzip, deflate-default, s2-default, …, none (lz4, read only, falls back to zstd-fastest)
    /// (default: the source's policy, else none)
    #[arg(long)]
    pub compression: Option<String>,
    /// Worker threads (default: number of CPUs)
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Snapshot description
    #[arg(long, default_value = "")]
    pub description: String,
    /// Percentage of unchanged files to re-hash anyway (0–100)
    #[arg(long, default_value_t = 0.0)]
    pub force_hash: f64,
    /// Tags as key:value (repeatable)
    #[arg(long = "tags")]
    pub tags: Vec<String>,
    /// Print the summary as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

/// `arkiv snapshot list`
#[derive(Debug, Args)]
pub struct SnapshotListArgs {
    /// List snapshots of every source (default: the acting user@host's sources)
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Print one JSON array on stdout
    #[arg(long)]
    pub json: bool,
    /// Only this source (USER@HOST:/PATH)
    pub source: Option<String>,
}

/// Dispatches a snapshot subcommand.
pub async fn run(g: &GlobalArgs, env: Env<'_>, cmd: SnapshotCommand) -> Result<i32> {
    match cmd {
        SnapshotCommand::List(a) => list(g, env, a).await,
        SnapshotCommand::Create(a) => create(g, env, a).await,
        SnapshotCommand::Exists(a) => exists(g, env, a).await,
    }
}

fn config_err(msg: String) -> anyhow::Error {
    CliError::new(exit::CONFIG, msg)
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
    /// Storage requests and local-cache hits of this run.
    pub storage: crate::connect::IoReport,
    /// What the source's policies left out (ignore rules, dot-ignore files, size limits,
    /// cache directories, other file systems), sorted by path; entries inside an excluded
    /// directory are not listed.
    pub excluded: Vec<ExcludedEntry>,
}

/// One entry left out of a snapshot (`--json` `excluded`).
#[derive(Debug, serde::Serialize)]
pub struct ExcludedEntry {
    /// Path relative to the snapshot root.
    pub path: String,
    /// `file`, `dir` or `symlink`.
    #[serde(rename = "type")]
    pub entry_type: &'static str,
    /// Size in bytes (`lstat`).
    pub size: i64,
    /// The rule and where it is written, or the size limit and its policy.
    pub reason: String,
}

/// The `--json` form of the engine's exclusions.
pub fn excluded_entries(list: &[arkiv_engine::snapshot::upload::Exclusion]) -> Vec<ExcludedEntry> {
    use arkiv_format::snapshot::EntryType;
    list.iter()
        .map(|e| ExcludedEntry {
            path: e.path.clone(),
            entry_type: match e.entry_type {
                EntryType::Directory => "dir",
                EntryType::Symlink => "symlink",
                _ => "file",
            },
            size: e.size,
            reason: e.reason.to_string(),
        })
        .collect()
}

/// `arkiv snapshot create`
async fn create(g: &GlobalArgs, env: Env<'_>, a: SnapshotCreateArgs) -> Result<i32> {
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
    let conn = g.connection(env)?;
    let repo = conn.open(&g.password(env)?).await?;
    // --compression applies to every file; without it each file gets its policy node's
    // compressor and each listing its node's metadata compressor, like kopia.
    let fixed = match &a.compression {
        Some(c) => {
            let choice =
                compression::choose(c).map_err(|e| config_err(format!("--compression {e}")))?;
            if let Some(w) = choice.warning(&format!("--compression {c}")) {
                eprintln!("arkiv: warning: {w}");
            }
            Some(choice)
        }
        None => None,
    };
    let mut opts = UploadOptions::new(source.clone());
    opts.compression_from_policy = fixed.is_none();
    let compression = fixed.unwrap_or(compression::Choice {
        algorithm: None,
        fell_back_from: None,
    });
    opts.username = user.clone();
    opts.hostname = host.clone();
    opts.description = a.description.clone();
    opts.compression = compression.algorithm;
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
    let snapshots = repo.snapshots().await?;
    let previous = select::latest(&snapshots, &source).and_then(|s| s.manifest.root_entry.clone());
    let progress = Arc::new(UploadProgress::default());
    opts.cancel = cancel::on_signal(|_| {
        eprintln!("arkiv: signal received, stopping (no snapshot will be recorded)");
    });
    let started = Instant::now();
    let ticker = progress::start(Style::Cli, progress::Source::Upload(progress.clone()));
    let result = snapshot_directory(&repo, &dir, previous, opts, progress.clone()).await;
    drop(ticker);
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
        storage: conn.io.report(),
        excluded: excluded_entries(&result.excluded),
    };
    if !summary.excluded.is_empty() {
        eprintln!(
            "Excluded by policy: {} entries ({} files, {} dirs skipped by ignore rules; see --json for each path and rule)",
            summary.excluded.len(),
            m.stats.excluded_file_count,
            m.stats.excluded_dir_count
        );
    }
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

/// `arkiv snapshot list`
async fn list(g: &GlobalArgs, env: Env<'_>, a: SnapshotListArgs) -> Result<i32> {
    let repo = g.open(env).await?;
    let snapshots = repo.snapshots().await?;
    let filter: Box<dyn Fn(&Snapshot) -> bool> = if let Some(src) = &a.source {
        let src = parse_source(src)?;
        Box::new(move |s: &Snapshot| s.manifest.source == src)
    } else if a.all {
        Box::new(|_| true)
    } else {
        let (user, host) = g.identity();
        Box::new(move |s: &Snapshot| {
            s.manifest.source.user_name == user && s.manifest.source.host == host
        })
    };
    let selected: Vec<&Snapshot> = snapshots.iter().filter(|s| filter(s)).collect();
    let mut out = std::io::stdout().lock();
    if a.json {
        out.write_all(&text::snapshot_list_json(&selected)?)?;
    } else {
        out.write_all(text::snapshot_list_text(&selected).as_bytes())?;
    }
    Ok(exit::OK)
}

/// `arkiv snapshot exists`: one line on stdout, exit 0 (has snapshots) or 3 (none, or no
/// repository at the location).
async fn exists(g: &GlobalArgs, env: Env<'_>, a: SnapshotExistsArgs) -> Result<i32> {
    let source = parse_source(&a.source)?;
    let repo = g.open(env).await?;
    let snapshots = repo.snapshots().await?;
    let eligible = select::eligible(&snapshots, &source);
    match eligible.iter().map(|s| s.manifest.start_time).max() {
        Some(newest) => {
            println!(
                "{source}: {} snapshot(s), newest started {}",
                eligible.len(),
                gojson::time::format_cli(&newest)
            );
            Ok(exit::OK)
        }
        None => {
            println!("{source}: no snapshots");
            Ok(exit::NOT_FOUND)
        }
    }
}
