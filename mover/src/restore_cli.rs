//! `arkiv-restore`: a standalone, read-only restore for disaster recovery outside Kubernetes.
//!
//! ```text
//! arkiv-restore --repo URL [--source USER@HOST:/PATH]
//!               [--snapshot ID | --previous N | --as-of TIME] [--list] [--delete-extra] TARGET
//! ```
//!
//! The password comes from `--password-file`, `ARKIV_PASSWORD`, `KOPIA_PASSWORD`, or a
//! prompt on the terminal. S3 settings come from the environment like the mover's
//! (`KOPIA_S3_*`, `AWS_*`, `ARKIV_S3_*`). The repository storage is wrapped in
//! [`ReadOnlyStorage`]: nothing is ever written to the repository.
//!
//! Selection mirrors the mover's: the source's complete snapshots newest first, those that
//! started at or before `--as-of` (any RFC 3339 offset), then `--previous` skipped. Without
//! `--source` the repository must hold exactly one source.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::readonly::ReadOnlyStorage;
use arkiv_engine::repo::Snapshot;
use arkiv_engine::snapshot::restore::{RestoreOptions, restore_entry};
use arkiv_engine::snapshot::tree::find_snapshot;
use arkiv_engine::{OpenOptions, Repository};
use arkiv_format::snapshot::SourceInfo;
use clap::Parser;

use crate::env::{RestoreSelection, parse_time};
use crate::exit::{self, CliError};
use crate::location::Location;
use crate::output;

/// Restore a snapshot from a Kopia-compatible repository (read-only; never writes to it).
#[derive(Debug, Parser)]
#[command(name = "arkiv-restore", version, about)]
pub struct RestoreCli {
    /// Repository URL: filesystem:///abs/path or s3://bucket/prefix (default: $ARKIV_REPOSITORY, else $KOPIA_REPOSITORY)
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// Read the password from this file (default: $ARKIV_PASSWORD, $KOPIA_PASSWORD, else a prompt)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Snapshot source to restore from (default: the repository's only source)
    #[arg(long, value_name = "USER@HOST:/PATH")]
    pub source: Option<String>,
    /// Restore this snapshot (manifest ID or unique prefix)
    #[arg(long, value_name = "ID", conflicts_with_all = ["previous", "as_of"])]
    pub snapshot: Option<String>,
    /// Skip this many of the newest eligible snapshots (0 = newest)
    #[arg(long, value_name = "N")]
    pub previous: Option<u32>,
    /// Newest snapshot started at or before this RFC 3339 time
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
    /// List the snapshots (of --source, else all) newest first, and exit
    #[arg(long)]
    pub list: bool,
    /// Remove files and directories in TARGET that are not in the snapshot
    #[arg(long)]
    pub delete_extra: bool,
    /// Skip permission errors when setting owners, modes and times
    #[arg(long)]
    pub ignore_permission_errors: bool,
    /// Directory to restore into (created if absent)
    #[arg(required_unless_present = "list")]
    pub target: Option<PathBuf>,
}

use crate::cli::Env;

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn password(cli: &RestoreCli, env: Env<'_>) -> Result<String> {
    if let Some(f) = &cli.password_file {
        let s = std::fs::read_to_string(f)
            .with_context(|| format!("reading password file {}", f.display()))?;
        return Ok(s.trim_end_matches(['\n', '\r']).to_owned());
    }
    if let Some(p) = non_empty(env("ARKIV_PASSWORD")).or_else(|| non_empty(env("KOPIA_PASSWORD"))) {
        return Ok(p);
    }
    prompt_password().map_err(|e| {
        CliError::new(
            exit::CONFIG,
            format!(
                "no password: set ARKIV_PASSWORD or KOPIA_PASSWORD, use --password-file, or run \
                 on a terminal ({e})"
            ),
        )
    })
}

/// Reads a password from the controlling terminal with echo off.
fn prompt_password() -> std::io::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let saved = tcgetattr(&tty).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tty.write_all(b"Repository password: ")?;
    tty.flush()?;
    tcsetattr(&tty, SetArg::TCSANOW, &quiet).map_err(std::io::Error::from)?;
    let mut line = String::new();
    let read = std::io::BufRead::read_line(&mut std::io::BufReader::new(&tty), &mut line);
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &saved);
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn parse_source(s: &str) -> Result<SourceInfo> {
    s.parse::<SourceInfo>()
        .map_err(|e| CliError::new(exit::CONFIG, format!("invalid --source {s:?}: {e}")))
}

/// Runs `arkiv-restore`; returns the exit code (errors carry theirs, see [`exit::code_for`]).
pub async fn run(cli: RestoreCli, env: Env<'_>) -> Result<i32> {
    let url = cli
        .repo
        .clone()
        .or_else(|| non_empty(env("ARKIV_REPOSITORY")))
        .or_else(|| non_empty(env("KOPIA_REPOSITORY")))
        .ok_or_else(|| CliError::new(exit::CONFIG, "no repository given: use --repo URL"))?;
    let selection = RestoreSelection {
        previous: cli.previous.unwrap_or(0),
        restore_as_of: match &cli.as_of {
            None => None,
            Some(t) => Some(parse_time(t).ok_or_else(|| {
                CliError::new(
                    exit::CONFIG,
                    format!("invalid --as-of {t:?}: expected an RFC 3339 time"),
                )
            })?),
        },
        shallow: None,
    };
    let source = cli.source.as_deref().map(parse_source).transpose()?;
    let loc = Location::parse_with_env(&url, env)?;
    let password = password(&cli, env)?;
    let storage: Arc<dyn BlobStorage> = Arc::new(ReadOnlyStorage::new(loc.open_existing().await?));
    let repo = Repository::open(storage, &password, OpenOptions::default()).await?;
    let snapshots = repo.snapshots().await?;

    if cli.list {
        let mut shown: Vec<&Snapshot> = snapshots
            .iter()
            .filter(|s| source.as_ref().is_none_or(|src| &s.manifest.source == src))
            .collect();
        shown.reverse();
        let mut out = std::io::stdout().lock();
        for s in shown {
            let m = &s.manifest;
            let (files, size) = m
                .root_entry
                .as_ref()
                .and_then(|r| r.summary.as_ref())
                .map_or((0, 0), |sum| (sum.files, sum.size));
            writeln!(
                out,
                "{}  {}  {}  files:{} {}{}",
                s.id,
                output::format_time(&m.start_time),
                m.source,
                files,
                output::bytes_base10(u64::try_from(size).unwrap_or(0)),
                if m.incomplete.is_empty() {
                    String::new()
                } else {
                    format!(" incomplete:{}", m.incomplete)
                }
            )?;
        }
        return Ok(exit::OK);
    }

    let snap = match &cli.snapshot {
        Some(id) => find_snapshot(&snapshots, id)?,
        None => pick(&snapshots, source.as_ref(), &selection)?,
    };
    let Some(target) = cli.target.as_ref() else {
        return Err(CliError::new(exit::USAGE, "TARGET is required"));
    };
    let root = crate::cli::root_of(snap)?;
    eprintln!(
        "Restoring snapshot {} of {} ({}) to {}",
        snap.id,
        snap.manifest.source,
        output::format_time(&snap.manifest.start_time),
        target.display()
    );
    let started = std::time::Instant::now();
    let mut opts = RestoreOptions::default();
    opts.delete_extra = cli.delete_extra;
    opts.ignore_permission_errors = cli.ignore_permission_errors;
    let stats = tokio::select! {
        r = restore_entry(&repo, root, target, opts) => r?,
        _ = tokio::signal::ctrl_c() => {
            return Err(CliError::new(exit::CANCELLED, "interrupted; the target is partly restored"));
        }
    };
    eprintln!(
        "Restored {} files, {} directories, {} symlinks, {}{} in {:.1}s",
        stats.files,
        stats.dirs,
        stats.symlinks,
        output::bytes_base10(stats.bytes),
        if stats.deleted > 0 {
            format!(", removed {} extra entries", stats.deleted)
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64()
    );
    Ok(exit::OK)
}

/// The snapshot chosen by source and selection.
fn pick<'a>(
    snapshots: &'a [Snapshot],
    source: Option<&SourceInfo>,
    selection: &RestoreSelection,
) -> Result<&'a Snapshot> {
    let source = match source {
        Some(s) => s.clone(),
        None => {
            let mut sources: Vec<&SourceInfo> =
                snapshots.iter().map(|s| &s.manifest.source).collect();
            sources.sort_by_key(|s| s.to_string());
            sources.dedup();
            match sources.as_slice() {
                [only] => (*only).clone(),
                [] => {
                    return Err(CliError::new(
                        exit::NOT_FOUND,
                        "the repository has no snapshots",
                    ));
                }
                many => {
                    return Err(CliError::new(
                        exit::CONFIG,
                        format!(
                            "the repository has {} sources; pick one with --source: {}",
                            many.len(),
                            many.iter()
                                .map(|s| s.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
    };
    let mut eligible: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|s| s.manifest.source == source && s.manifest.incomplete.is_empty())
        .collect();
    eligible.sort_by(|a, b| {
        b.manifest
            .start_time
            .cmp(&a.manifest.start_time)
            .then_with(|| b.id.cmp(&a.id))
    });
    let times: Vec<_> = eligible.iter().map(|s| s.manifest.start_time).collect();
    selection
        .select(&times)
        .and_then(|i| eligible.get(i).copied())
        .ok_or_else(|| {
            CliError::new(
                exit::NOT_FOUND,
                format!(
                    "no eligible snapshot of {source} ({} complete snapshot(s); previous={}{})",
                    eligible.len(),
                    selection.previous,
                    selection
                        .restore_as_of
                        .map(|t| format!(", as of {}", t.to_rfc3339()))
                        .unwrap_or_default()
                ),
            )
        })
}
