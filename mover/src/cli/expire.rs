//! `arkiv expire`: delete the snapshots the retention policies no longer keep. Differs from
//! `kopia snapshot expire` on purpose: it deletes unless `--dry-run` is given.

use anyhow::Result;
use arkiv_engine::retention::{apply_expiry, list_sources, plan_expiry};
use arkiv_format::snapshot::SourceInfo;
use clap::Args;

use super::{GlobalArgs, parse_source, report_expired};
use crate::Env;
use crate::exit;

/// `arkiv expire`
#[derive(Debug, Args)]
pub struct ExpireArgs {
    /// Print the plan (which snapshots are kept and why) without deleting anything
    #[arg(long)]
    pub dry_run: bool,
    /// Expire every source in the repository (default: the sources of the acting user@host)
    #[arg(long, conflicts_with = "sources")]
    pub all: bool,
    /// Only these sources (USER@HOST:/PATH)
    pub sources: Vec<String>,
}

/// `arkiv expire`
pub async fn run(g: &GlobalArgs, env: Env<'_>, a: ExpireArgs) -> Result<i32> {
    let (user, host) = g.identity();
    let repo = g.open(env).await?;
    let sources: Vec<SourceInfo> = if a.sources.is_empty() {
        list_sources(&repo)
            .await?
            .into_iter()
            .filter(|s| a.all || (s.user_name == user && s.host == host))
            .collect()
    } else {
        a.sources
            .iter()
            .map(|s| parse_source(s))
            .collect::<Result<_>>()?
    };
    if sources.is_empty() {
        eprintln!("No snapshots of {user}@{host} (use --all for every source).");
    }
    for src in &sources {
        let plan = plan_expiry(&repo, src, &chrono::Local).await?;
        if a.dry_run {
            println!("{plan}");
            if plan.expired_count() > 0 {
                eprintln!(
                    "{} snapshot(s) of {src} would be deleted (dry run).",
                    plan.expired_count()
                );
            }
            continue;
        }
        let n = apply_expiry(&repo, &plan, &user, &host).await?;
        if n == 0 {
            eprintln!("Nothing to delete for {src}.");
        } else {
            report_expired(&plan);
            eprintln!("Deleted {n} snapshot(s) of {src}.");
        }
    }
    Ok(exit::OK)
}
