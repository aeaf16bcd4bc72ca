//! The `arkiv` command line: argument definitions and dispatch to the engine.
//!
//! Global options (accepted before or after any subcommand): `--repo URL` (else
//! `ARKIV_REPOSITORY`, else `KOPIA_REPOSITORY`), `--password-file F` (else `ARKIV_PASSWORD`,
//! else `KOPIA_PASSWORD`), `--override-username`, `--override-hostname`.
//! With `--json`, stdout carries only JSON; logs and progress go to stderr.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use arkiv_engine::repo::{Repository, Snapshot};
use arkiv_engine::snapshot::restore::{RestoreOptions, restore_entry};
use arkiv_engine::snapshot::tree::{entry_for_object, find_snapshot, resolve_path, split_spec};
use arkiv_engine::verify::{VerifyOptions, verify};
use arkiv_engine::{Error, OpenOptions};
use arkiv_format::ids::ObjectId;
use arkiv_format::snapshot::{DirEntry, EntryType, SourceInfo};
use clap::{Args, Parser, Subcommand};

use crate::exit::{self, CliError};
use crate::location::Location;
use crate::output;

/// arkiv: a fast, Kopia-compatible backup engine.
#[derive(Debug, Parser)]
#[command(name = "arkiv", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Repository URL: filesystem:///abs/path or s3://bucket/prefix (default: $ARKIV_REPOSITORY, else $KOPIA_REPOSITORY)
    #[arg(long, global = true, value_name = "URL")]
    pub repo: Option<String>,
    /// Read the repository password from this file (default: $ARKIV_PASSWORD, else $KOPIA_PASSWORD)
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// User name of the acting identity (default: the login user)
    #[arg(long, global = true, value_name = "USER")]
    pub override_username: Option<String>,
    /// Host name of the acting identity (default: this machine's host name)
    #[arg(long, global = true, value_name = "HOST")]
    pub override_hostname: Option<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Repository commands.
    #[command(subcommand)]
    Repository(RepositoryCommand),
    /// Snapshot commands.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Restore a snapshot (or a path inside it) to a directory.
    Restore(RestoreArgs),
    /// List a directory of a snapshot or an object.
    Ls(LsArgs),
    /// Print an object's raw bytes to stdout.
    Show(ShowArgs),
    /// Verify index, packs, snapshot trees and a share of file contents.
    Verify(VerifyArgs),
    /// Policy commands (retention, compression).
    #[command(subcommand)]
    Policy(crate::retention_cli::PolicyCommand),
    /// Delete snapshots that the retention policies no longer keep.
    Expire(crate::retention_cli::ExpireArgs),
}

/// `arkiv snapshot …`
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List snapshots.
    List(SnapshotListArgs),
    /// Snapshot a directory.
    Create(SnapshotCreateArgs),
}

/// `arkiv snapshot create`
#[derive(Debug, Args)]
pub struct SnapshotCreateArgs {
    /// Directory to snapshot
    pub dir: PathBuf,
    /// Source identity recorded (USER@HOST:/PATH); default: acting user@host and DIR's absolute path
    #[arg(long)]
    pub source: Option<String>,
    /// File data compression: zstd-fastest, zstd, zstd-better-compression, zstd-best-compression, none
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

/// `arkiv repository …`
#[derive(Debug, Subcommand)]
pub enum RepositoryCommand {
    /// Create a new repository at the location.
    Create(RepositoryCreateArgs),
    /// Print the repository's parameters.
    Status,
}

/// `arkiv repository create`
#[derive(Debug, Args)]
pub struct RepositoryCreateArgs {
    /// Content encryption: AES256-GCM-HMAC-SHA256 or CHACHA20-POLY1305-HMAC-SHA256
    #[arg(long, default_value = "AES256-GCM-HMAC-SHA256")]
    pub encryption: String,
    /// Content hash
    #[arg(long, default_value = "BLAKE2B-256-128")]
    pub block_hash: String,
    /// Splitter: DYNAMIC-{128K..8M}-BUZHASH or FIXED-{128K..8M}
    #[arg(long, default_value = "DYNAMIC-4M-BUZHASH")]
    pub object_splitter: String,
    /// Error correction (only `none` is supported)
    #[arg(long, default_value = "none")]
    pub ecc: String,
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

/// `arkiv restore`
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot ID (or `latest`), optionally followed by /sub/path
    pub snapshot: String,
    /// Target directory (created if absent)
    pub target: PathBuf,
    /// Source to pick `latest` from (USER@HOST:/PATH); default: the only source, else required
    #[arg(long)]
    pub source: Option<String>,
    /// Remove files and directories in the target that are not in the snapshot
    #[arg(long)]
    pub delete_extra: bool,
    /// Files restored in parallel
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
}

/// `arkiv ls`
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Long listing (mode, size, time, object ID)
    #[arg(short = 'l', long)]
    pub long: bool,
    /// Recurse into subdirectories
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// SNAPSHOT-ID or OBJECT-ID, optionally followed by /sub/path
    pub path: String,
}

/// `arkiv show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Object ID
    pub object: String,
}

/// `arkiv verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Percentage of file contents to download and hash-check (0–100)
    #[arg(long, default_value_t = 0.0)]
    pub verify_files_percent: f64,
    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// Environment lookup (injectable for tests).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

impl GlobalArgs {
    /// The repository location from flag or environment.
    pub fn location(&self, env: Env<'_>) -> Result<Location> {
        let url = self
            .repo
            .clone()
            .or_else(|| non_empty(env("ARKIV_REPOSITORY")))
            .or_else(|| non_empty(env("KOPIA_REPOSITORY")))
            .ok_or_else(|| {
                CliError::new(
                    exit::CONFIG,
                    "no repository given: use --repo URL or set ARKIV_REPOSITORY",
                )
            })?;
        Ok(Location::parse_with_env(&url, env)?)
    }

    /// The password from file or environment; never prompts.
    pub fn password(&self, env: Env<'_>) -> Result<String> {
        if let Some(f) = &self.password_file {
            let s = std::fs::read_to_string(f)
                .with_context(|| format!("reading password file {}", f.display()))?;
            return Ok(s.trim_end_matches(['\n', '\r']).to_owned());
        }
        non_empty(env("ARKIV_PASSWORD"))
            .or_else(|| non_empty(env("KOPIA_PASSWORD")))
            .ok_or_else(|| {
                CliError::new(
                    exit::CONFIG,
                    "no password given: set ARKIV_PASSWORD (or KOPIA_PASSWORD) or use --password-file",
                )
            })
    }

    /// The acting identity (`user`, `host`).
    pub fn identity(&self) -> (String, String) {
        let user = self.override_username.clone().unwrap_or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "root".into())
        });
        let host = self.override_hostname.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into())
        });
        (user, host)
    }

    /// Opens the repository read path.
    pub async fn open(&self, env: Env<'_>) -> Result<Repository> {
        let loc = self.location(env)?;
        let password = self.password(env)?;
        let storage = loc.open_existing().await?;
        Ok(Repository::open(storage, &password, OpenOptions::default()).await?)
    }
}

/// Runs a parsed command line; returns the exit code.
pub async fn run(cli: Cli, env: Env<'_>) -> Result<i32> {
    match cli.command {
        Command::Repository(RepositoryCommand::Create(a)) => {
            crate::write::repository_create(&cli.global, env, a).await
        }
        Command::Repository(RepositoryCommand::Status) => {
            crate::write::repository_status(&cli.global, env).await
        }
        Command::Snapshot(SnapshotCommand::List(a)) => snapshot_list(&cli.global, env, a).await,
        Command::Snapshot(SnapshotCommand::Create(a)) => {
            crate::write::snapshot_create(&cli.global, env, a).await
        }
        Command::Restore(a) => restore(&cli.global, env, a).await,
        Command::Ls(a) => ls(&cli.global, env, a).await,
        Command::Show(a) => show(&cli.global, env, a).await,
        Command::Verify(a) => verify_cmd(&cli.global, env, a).await,
        Command::Policy(crate::retention_cli::PolicyCommand::Set(a)) => {
            crate::retention_cli::policy_set(&cli.global, env, a).await
        }
        Command::Policy(crate::retention_cli::PolicyCommand::Show(a)) => {
            crate::retention_cli::policy_show(&cli.global, env, a).await
        }
        Command::Expire(a) => crate::retention_cli::expire(&cli.global, env, a).await,
    }
}

pub(crate) fn parse_source(s: &str) -> Result<SourceInfo> {
    s.parse::<SourceInfo>()
        .map_err(|e| CliError::new(exit::CONFIG, format!("invalid source {s:?}: {e}")))
}

async fn snapshot_list(g: &GlobalArgs, env: Env<'_>, a: SnapshotListArgs) -> Result<i32> {
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
        out.write_all(&output::snapshot_list_json(&selected)?)?;
    } else {
        out.write_all(output::snapshot_list_text(&selected).as_bytes())?;
    }
    Ok(exit::OK)
}

/// The root entry of a snapshot (kopia allows a null one in broken manifests).
pub(crate) fn root_of(s: &Snapshot) -> Result<&DirEntry> {
    s.manifest.root_entry.as_ref().ok_or_else(|| {
        anyhow::Error::new(Error::Corrupt(format!(
            "snapshot {} has no root entry",
            s.id
        )))
    })
}

/// Picks the snapshot for `latest` or an ID.
fn pick_snapshot<'a>(
    snapshots: &'a [Snapshot],
    id: &str,
    source: Option<&SourceInfo>,
) -> Result<&'a Snapshot> {
    if id != "latest" {
        return Ok(find_snapshot(snapshots, id)?);
    }
    let candidates: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|s| source.is_none_or(|src| &s.manifest.source == src))
        .collect();
    if source.is_none() {
        let mut sources: Vec<&SourceInfo> = candidates.iter().map(|s| &s.manifest.source).collect();
        sources.sort_by_key(|s| s.to_string());
        sources.dedup();
        if sources.len() > 1 {
            return Err(CliError::new(
                exit::CONFIG,
                format!(
                    "`latest` is ambiguous: the repository has {} sources; pick one with --source",
                    sources.len()
                ),
            ));
        }
    }
    candidates
        .into_iter()
        .filter(|s| s.manifest.incomplete.is_empty())
        .max_by(|a, b| a.manifest.start_time.cmp(&b.manifest.start_time))
        .ok_or_else(|| CliError::new(exit::NOT_FOUND, "no snapshot found for `latest`"))
}

async fn restore(g: &GlobalArgs, env: Env<'_>, a: RestoreArgs) -> Result<i32> {
    let repo = g.open(env).await?;
    let snapshots = repo.snapshots().await?;
    let (id, sub) = split_spec(&a.snapshot);
    let source = a.source.as_deref().map(parse_source).transpose()?;
    let snap = pick_snapshot(&snapshots, id, source.as_ref())?;
    let entry = resolve_path(&repo, root_of(snap)?, sub).await?;
    eprintln!(
        "Restoring snapshot {} of {} ({}) to {}",
        snap.id,
        snap.manifest.source,
        output::format_time(&snap.manifest.start_time),
        a.target.display()
    );
    let started = std::time::Instant::now();
    let mut opts = RestoreOptions::default();
    opts.delete_extra = a.delete_extra;
    opts.parallel_files = a.parallel.max(1);
    let stats = restore_entry(&repo, &entry, &a.target, opts).await?;
    eprintln!(
        "Restored {} files, {} directories, {} symlinks, {} ({} bytes){} in {:.1}s",
        stats.files,
        stats.dirs,
        stats.symlinks,
        output::bytes_base10(stats.bytes),
        stats.bytes,
        if stats.deleted > 0 {
            format!(", removed {} extra entries", stats.deleted)
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64()
    );
    Ok(exit::OK)
}

/// Resolves an `ls`/`show` argument to an entry.
async fn resolve_arg(repo: &Repository, spec: &str) -> Result<DirEntry> {
    let (head, sub) = split_spec(spec);
    if let Ok(oid) = head.parse::<ObjectId>() {
        if !oid.is_empty() && repo.content_info(&oid.content_id())?.is_some() {
            let is_dir = oid.content_id().prefix() == Some(b'k');
            let root = entry_for_object(oid, is_dir);
            return Ok(resolve_path(repo, &root, sub).await?);
        }
    }
    let snapshots = repo.snapshots().await?;
    let snap = find_snapshot(&snapshots, head)?;
    Ok(resolve_path(repo, root_of(snap)?, sub).await?)
}

async fn ls(g: &GlobalArgs, env: Env<'_>, a: LsArgs) -> Result<i32> {
    let repo = g.open(env).await?;
    let entry = resolve_arg(&repo, &a.path).await?;
    if entry.entry_type != EntryType::Directory {
        println!("{}", output::ls_line(&entry, &entry.name, a.long));
        return Ok(exit::OK);
    }
    let mut stdout = std::io::stdout().lock();
    let mut stack = vec![(String::new(), entry)];
    while let Some((prefix, dir_entry)) = stack.pop() {
        let dir = repo.read_dir(&dir_entry.object).await?;
        let mut subdirs = Vec::new();
        for e in &dir.entries {
            let name = format!("{prefix}{}", e.name);
            let shown = if e.entry_type == EntryType::Directory {
                format!("{name}/")
            } else {
                name.clone()
            };
            writeln!(stdout, "{}", output::ls_line(e, &shown, a.long))?;
            if a.recursive && e.entry_type == EntryType::Directory {
                subdirs.push((format!("{name}/"), e.clone()));
            }
        }
        // depth-first, in listing order
        for s in subdirs.into_iter().rev() {
            stack.push(s);
        }
    }
    Ok(exit::OK)
}

async fn show(g: &GlobalArgs, env: Env<'_>, a: ShowArgs) -> Result<i32> {
    let repo = g.open(env).await?;
    let oid: ObjectId = a
        .object
        .parse()
        .map_err(|e| CliError::new(exit::CONFIG, format!("{e}")))?;
    let chunks = repo.object_chunks(&oid).await?;
    let mut out = std::io::stdout().lock();
    for c in &chunks {
        out.write_all(&repo.read_chunk(c).await?)?;
    }
    out.flush()?;
    Ok(exit::OK)
}

async fn verify_cmd(g: &GlobalArgs, env: Env<'_>, a: VerifyArgs) -> Result<i32> {
    if !(0.0..=100.0).contains(&a.verify_files_percent) {
        return Err(CliError::new(
            exit::CONFIG,
            "--verify-files-percent must be between 0 and 100",
        ));
    }
    let repo = g.open(env).await?;
    let started = std::time::Instant::now();
    let mut opts = VerifyOptions::default();
    opts.verify_files_percent = a.verify_files_percent;
    let report = verify(&repo, &opts).await?;
    for p in &report.problems {
        eprintln!("ERROR: {p}");
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    eprintln!(
        "Verified {} index entries in {} packs, {} snapshots, {} directories, {} files; read {} contents ({}) in {:.1}s: {} problem(s)",
        report.index_entries,
        report.packs,
        report.snapshots,
        report.dirs,
        report.files,
        report.contents_read,
        output::bytes_base10(report.bytes_read),
        started.elapsed().as_secs_f64(),
        report.problems.len()
    );
    if report.problems.is_empty() {
        Ok(exit::OK)
    } else {
        Err(anyhow::Error::new(Error::Corrupt(format!(
            "verification found {} problem(s)",
            report.problems.len()
        ))))
    }
}
