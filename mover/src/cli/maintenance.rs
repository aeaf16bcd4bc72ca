//! `arkiv maintenance …`: run (quick/full, safety preset, dry run), info, set-owner.
//!
//! Acts as the identity of `--override-username/--override-hostname` (else the login user and
//! host name); runs only if that identity owns maintenance, unless `--force`.

use anyhow::Result;
use arkiv_engine::maintenance::{
    self, MaintenanceOptions, SafetyParams, maintenance_info, run_maintenance,
};
use clap::{Args, Subcommand};

use super::GlobalArgs;
use crate::Env;
use crate::exit::{self, CliError};

/// `arkiv maintenance …`
#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Run quick (default) or full maintenance.
    Run(MaintenanceRunArgs),
    /// Show the owner, the schedule and recent runs.
    Info(MaintenanceInfoArgs),
    /// Make USER@HOST (default: the acting identity) the maintenance owner.
    SetOwner(SetOwnerArgs),
}

/// `arkiv maintenance run`
#[derive(Debug, Args)]
pub struct MaintenanceRunArgs {
    /// Full maintenance (snapshot GC, pack rewrite, blob deletion) instead of quick
    #[arg(long)]
    pub full: bool,
    /// Safety margins: full (safe with concurrent clients) or none (single writer only)
    #[arg(long, default_value = "full")]
    pub safety: String,
    /// Print what would be done and why; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Run even though another identity owns maintenance (disaster recovery)
    #[arg(long)]
    pub force: bool,
}

/// `arkiv maintenance info`
#[derive(Debug, Args)]
pub struct MaintenanceInfoArgs {
    /// Print parameters and schedule as JSON
    #[arg(long)]
    pub json: bool,
}

/// `arkiv maintenance set-owner`
#[derive(Debug, Args)]
pub struct SetOwnerArgs {
    /// New owner as USER@HOST (default: the acting identity)
    pub owner: Option<String>,
}

/// Dispatches a maintenance subcommand.
pub async fn run(g: &GlobalArgs, env: Env<'_>, cmd: MaintenanceCommand) -> Result<i32> {
    let (user, host) = g.identity();
    match cmd {
        MaintenanceCommand::Run(a) => {
            let safety: SafetyParams = a
                .safety
                .parse()
                .map_err(|e| CliError::new(exit::CONFIG, format!("{e}")))?;
            let conn = g.connection(env)?;
            let repo = g.open(env).await?;
            let mut opts = MaintenanceOptions::new(&user, &host);
            opts.full = a.full;
            opts.safety = safety;
            opts.dry_run = a.dry_run;
            opts.force = a.force;
            let report = run_maintenance(&repo, &opts).await?;
            print!("{report}");
            if a.full && !a.dry_run {
                remove_stale_temporaries(&conn, &safety)?;
            }
            Ok(exit::OK)
        }
        MaintenanceCommand::Info(a) => {
            let repo = g.open(env).await?;
            let info = maintenance_info(&repo).await?;
            if a.json {
                let v = serde_json::json!({
                    "params": info.params.as_ref().map(|p| serde_json::to_value(p).unwrap_or_default()),
                    "schedule": serde_json::to_value(&info.schedule).unwrap_or_default(),
                });
                println!("{v}");
            } else {
                print!("{info}");
            }
            Ok(exit::OK)
        }
        MaintenanceCommand::SetOwner(a) => {
            let owner = a.owner.unwrap_or_else(|| format!("{user}@{host}"));
            if !owner.contains('@') {
                return Err(CliError::new(
                    exit::CONFIG,
                    format!("invalid owner {owner:?}: expected USER@HOST"),
                ));
            }
            let repo = g.open(env).await?;
            maintenance::set_owner(&repo, &owner, &user, &host).await?;
            println!("Maintenance owner set to {owner}");
            Ok(exit::OK)
        }
    }
}

/// Full maintenance of a filesystem repository also removes the temporary files of writers
/// killed between write and rename (`*.tmp.*`), once they are older than the safety
/// preset's blob-deletion margin and at least 10 minutes (kopia leaves them; issue 14,
/// finding 6).
fn remove_stale_temporaries(
    conn: &crate::connect::Connection,
    safety: &SafetyParams,
) -> Result<()> {
    if let crate::connect::RepoSpec::Filesystem(root) = &conn.spec {
        // The engine keeps anything younger than 10 minutes even under `--safety none`.
        let margin =
            std::time::Duration::from_secs(u64::try_from(safety.blob_delete_min_age).unwrap_or(0));
        let n = arkiv_engine::blob::filesystem::remove_stale_temporaries(
            root,
            margin,
            conn.clock.now(),
        )?;
        if n > 0 {
            println!("Removed {n} stale temporary file(s) left by interrupted writers");
        }
    }
    Ok(())
}
