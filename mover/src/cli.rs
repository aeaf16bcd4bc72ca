//! The `arkiv` command line: global options and dispatch; one file per command under `cli/`
//! (arguments and handler together, as kopia's `cli/command_*.go`).
//!
//! Global options (accepted before or after any subcommand): `--repo URL` (else
//! `ARKIV_REPOSITORY`, else `KOPIA_REPOSITORY`), `--password-file F` (else `ARKIV_PASSWORD`,
//! else `KOPIA_PASSWORD`), `--override-username`, `--override-hostname`.
//! With `--json`, stdout carries only JSON; logs and progress go to stderr.

mod browse;
mod expire;
mod index;
mod maintenance;
mod policy;
mod policy_show;
mod repository;
mod restore;
mod snapshot;
mod verify;

use std::path::PathBuf;

use anyhow::Result;
use arkiv_engine::Repository;
use arkiv_format::gojson;
use arkiv_format::snapshot::SourceInfo;
use clap::{Args, Parser, Subcommand};

use crate::connect::{self, Access, Connection, RepoSpec};
use crate::credentials::{self, Prompt};
use crate::exit::{self, CliError};
use crate::{Env, non_empty};

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
    /// Filesystem repositories: octal mode of files this command creates (kopia's --file-mode; default 0600) [env: ARKIV_REPO_FILE_MODE]
    #[arg(long, global = true, value_name = "MODE", value_parser = mode_arg)]
    pub file_mode: Option<u32>,
    /// Filesystem repositories: octal mode of directories this command creates (kopia's --dir-mode; default 0700) [env: ARKIV_REPO_DIR_MODE]
    #[arg(long, global = true, value_name = "MODE", value_parser = mode_arg)]
    pub dir_mode: Option<u32>,
    /// Filesystem repositories: owner uid of created files, with --owner-gid, as root (kopia's --owner-uid) [env: ARKIV_REPO_OWNER_UID]
    #[arg(long, global = true, value_name = "UID")]
    pub owner_uid: Option<u32>,
    /// Filesystem repositories: owner gid of created files (kopia's --owner-gid) [env: ARKIV_REPO_OWNER_GID]
    #[arg(long, global = true, value_name = "GID")]
    pub owner_gid: Option<u32>,
}

fn mode_arg(s: &str) -> std::result::Result<u32, String> {
    connect::parse_mode(s).ok_or_else(|| format!("{s:?} is not an octal mode such as 0640"))
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Repository commands.
    #[command(subcommand)]
    Repository(repository::RepositoryCommand),
    /// Snapshot commands.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Restore a snapshot (or a path inside it) to a directory.
    Restore(restore::RestoreArgs),
    /// List a directory of a snapshot or an object.
    Ls(browse::LsArgs),
    /// Print an object's raw bytes to stdout.
    Show(browse::ShowArgs),
    /// Verify index, packs, snapshot trees and a share of file contents.
    Verify(verify::VerifyArgs),
    /// Policy commands (retention, compression).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Delete snapshots that the retention policies no longer keep.
    Expire(expire::ExpireArgs),
    /// Repository maintenance: run, info, set-owner.
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCommand),
    /// Index commands: recover lost index entries from the packs.
    #[command(subcommand)]
    Index(index::IndexCommand),
}

impl GlobalArgs {
    /// The repository connection from flag or environment.
    pub fn connection(&self, env: Env<'_>) -> Result<Connection> {
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
        let mut conn = Connection::new(RepoSpec::parse(&url, env)?, Access::ReadWrite);
        conn.direct_io = connect::direct_io_from_env(env);
        // Kopia takes these at `repository create` and `connect`; arkiv keeps no connection
        // file, so every command that may create files takes them.
        let var = |k: &str| non_empty(env(k));
        let bad = |k: &str, v: &str| {
            CliError::new(
                exit::CONFIG,
                format!(
                    "invalid {k}={v:?}: expected {}",
                    if k.ends_with("MODE") {
                        "an octal mode such as 0640"
                    } else {
                        "a numeric id"
                    }
                ),
            )
        };
        let p = &mut conn.fs_permissions;
        for (flag, k, slot) in [
            (self.file_mode, "ARKIV_REPO_FILE_MODE", &mut p.file_mode),
            (self.dir_mode, "ARKIV_REPO_DIR_MODE", &mut p.dir_mode),
        ] {
            match (flag, var(k)) {
                (Some(m), _) => *slot = m,
                (None, Some(v)) => *slot = connect::parse_mode(&v).ok_or_else(|| bad(k, &v))?,
                (None, None) => {}
            }
        }
        for (flag, k, slot) in [
            (self.owner_uid, "ARKIV_REPO_OWNER_UID", &mut p.owner_uid),
            (self.owner_gid, "ARKIV_REPO_OWNER_GID", &mut p.owner_gid),
        ] {
            *slot = match (flag, var(k)) {
                (Some(id), _) => Some(id),
                (None, Some(v)) => Some(v.trim().parse().map_err(|_| bad(k, &v))?),
                (None, None) => None,
            };
        }
        conn.cache_dir = connect::cache_dir_from_env(env);
        let content_mb =
            connect::content_cache_mb_from_env(env).map_err(|m| CliError::new(exit::CONFIG, m))?;
        conn.cache_limits = conn.cache_limits.with_content_mib(content_mb);
        Ok(conn)
    }

    /// The password from file or environment; never prompts.
    pub fn password(&self, env: Env<'_>) -> Result<String> {
        credentials::password(self.password_file.as_deref(), env, Prompt::Never)
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

    /// Opens the existing repository.
    pub async fn open(&self, env: Env<'_>) -> Result<Repository> {
        let conn = self.connection(env)?;
        let password = self.password(env)?;
        Ok(conn.open(&password).await?)
    }
}

/// Runs a parsed command line; returns the exit code.
pub async fn run(cli: Cli, env: Env<'_>) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Repository(c) => repository::run(g, env, c).await,
        Command::Snapshot(c) => snapshot::run(g, env, c).await,
        Command::Restore(a) => restore::run(g, env, a).await,
        Command::Ls(a) => browse::ls(g, env, a).await,
        Command::Show(a) => browse::show(g, env, a).await,
        Command::Verify(a) => verify::run(g, env, a).await,
        Command::Policy(c) => policy::run(g, env, c).await,
        Command::Expire(a) => expire::run(g, env, a).await,
        Command::Maintenance(c) => maintenance::run(g, env, c).await,
        Command::Index(c) => index::run(g, env, c).await,
    }
}

/// Parses a `USER@HOST:/PATH` argument.
fn parse_source(s: &str) -> Result<SourceInfo> {
    s.parse::<SourceInfo>()
        .map_err(|e| CliError::new(exit::CONFIG, format!("invalid source {s:?}: {e}")))
}

/// Prints the snapshots an expiry deleted (to stderr, like the other progress messages).
fn report_expired(plan: &arkiv_engine::retention::RetentionPlan) {
    let n = plan.expired_count();
    if n == 0 {
        return;
    }
    eprintln!(
        "Expired {n} snapshot(s) of {} (retention policy):",
        plan.source
    );
    for d in plan.expired() {
        eprintln!("  {}  {}", gojson::time::format_cli(&d.start_time), d.id);
    }
}
