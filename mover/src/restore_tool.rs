//! `arkiv-restore`: a standalone, read-only restore for disaster recovery outside Kubernetes.
//!
//! ```text
//! arkiv-restore --repo URL [--source USER@HOST:/PATH]
//!               [--snapshot ID | --previous N | --as-of TIME] [--list] [--delete-extra] TARGET
//! ```
//!
//! The password comes from `--password-file`, `ARKIV_PASSWORD`, `KOPIA_PASSWORD`, or a
//! prompt on the terminal. S3 settings come from the environment like `arkiv`'s
//! (`ARKIV_S3_*` over `KOPIA_S3_*`/`AWS_*`). The connection is read-only
//! ([`Access::ReadOnly`]): nothing is ever written to the repository.
//!
//! Selection is the one every binary uses ([`arkiv_engine::snapshot::select`]): the source's
//! complete snapshots with a root entry, newest first, those that started at or before
//! `--as-of` (any RFC 3339 offset), then `--previous` skipped. Without `--source` the
//! repository must hold exactly one source.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use arkiv_engine::repo::Snapshot;
use arkiv_engine::snapshot::restore::{RestoreOptions, restore_entry};
use arkiv_engine::snapshot::select::{self, SnapshotQuery};
use arkiv_engine::snapshot::tree::find_snapshot;
use arkiv_format::gojson;
use arkiv_format::snapshot::SourceInfo;
use chrono::{DateTime, Utc};
use clap::Parser;

use crate::connect::{self, Access, Connection, RepoSpec};
use crate::credentials::{self, Prompt};
use crate::exit::{self, CliError};
use crate::render::text;
use crate::{Env, cancel, non_empty};

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

fn parse_source(s: &str) -> Result<SourceInfo> {
    s.parse::<SourceInfo>()
        .map_err(|e| CliError::new(exit::CONFIG, format!("invalid --source {s:?}: {e}")))
}

fn parse_as_of(t: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            CliError::new(
                exit::CONFIG,
                format!("invalid --as-of {t:?}: expected an RFC 3339 time"),
            )
        })
}

/// Runs `arkiv-restore`; returns the exit code (errors carry theirs, see [`exit::code_for`]).
pub async fn run(cli: RestoreCli, env: Env<'_>) -> Result<i32> {
    let url = cli
        .repo
        .clone()
        .or_else(|| non_empty(env("ARKIV_REPOSITORY")))
        .or_else(|| non_empty(env("KOPIA_REPOSITORY")))
        .ok_or_else(|| CliError::new(exit::CONFIG, "no repository given: use --repo URL"))?;
    let source = cli.source.as_deref().map(parse_source).transpose()?;
    let query = SnapshotQuery {
        source: source.clone(),
        previous: cli.previous.unwrap_or(0),
        as_of: cli.as_of.as_deref().map(parse_as_of).transpose()?,
    };
    let mut conn = Connection::new(RepoSpec::parse(&url, env)?, Access::ReadOnly);
    conn.direct_io = connect::direct_io_from_env(env);
    conn.cache_dir = connect::cache_dir_from_env(env);
    let content_mb =
        connect::content_cache_mb_from_env(env).map_err(|m| CliError::new(exit::CONFIG, m))?;
    conn.cache_limits = conn.cache_limits.with_content_mib(content_mb);
    let password = credentials::password(cli.password_file.as_deref(), env, Prompt::OnTerminal)?;
    let repo = conn.open(&password).await?;
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
                gojson::time::format_cli(&m.start_time),
                m.source,
                files,
                text::bytes_base10(u64::try_from(size).unwrap_or(0)),
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
        None => select::select(&snapshots, &query).map_err(|e| {
            let code = match e {
                select::SelectError::AmbiguousSource(_) => exit::CONFIG,
                _ => exit::NOT_FOUND,
            };
            CliError::new(code, e.to_string())
        })?,
    };
    let Some(target) = cli.target.as_ref() else {
        return Err(CliError::new(exit::USAGE, "TARGET is required"));
    };
    let root = snap.root()?;
    eprintln!(
        "Restoring snapshot {} of {} ({}) to {}",
        snap.id,
        snap.manifest.source,
        gojson::time::format_cli(&snap.manifest.start_time),
        target.display()
    );
    let started = std::time::Instant::now();
    let mut opts = RestoreOptions::default();
    opts.delete_extra = cli.delete_extra;
    opts.ignore_permission_errors = cli.ignore_permission_errors;
    opts.direct_io = conn.direct_io;
    let cancel = cancel::on_signal(|_| {});
    let stats = tokio::select! {
        r = restore_entry(&repo, root, target, opts) => r?,
        () = cancel.cancelled() => {
            return Err(CliError::new(exit::CANCELLED, "interrupted; the target is partly restored"));
        }
    };
    eprintln!(
        "Restored {} in {:.1}s",
        text::restore_stats(&stats),
        started.elapsed().as_secs_f64()
    );
    Ok(exit::OK)
}
