//! `arkiv index recover`: rebuilds index entries from the packs' own local indexes (kopia's
//! `index recover`), for a repository that lost an index blob. Dry run by default.

use anyhow::Result;
use arkiv_engine::content::recover;
use arkiv_format::ids::BlobId;
use clap::{Args, Subcommand};

use super::GlobalArgs;
use crate::Env;
use crate::exit;

/// `arkiv index …`
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Find contents that packs hold but no index blob lists, and (with --commit) index them again.
    Recover(RecoverArgs),
}

/// `arkiv index recover`
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Write the recovered entries as a new index blob (default: only report them)
    #[arg(long)]
    pub commit: bool,
    /// Read the local index of every pack, not only of packs no index entry names
    #[arg(long)]
    pub all_packs: bool,
    /// Read only these pack blobs (kopia `--blobs`; repeatable or comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub blobs: Vec<String>,
    /// Pack blob prefixes to read (kopia `--blob-prefixes`; default `p,q`)
    #[arg(long, value_delimiter = ',')]
    pub blob_prefixes: Vec<String>,
    /// Exit 0 even when some packs' local indexes could not be read (they are named either way)
    #[arg(long)]
    pub ignore_errors: bool,
}

/// Dispatches an index subcommand.
pub async fn run(g: &GlobalArgs, env: Env<'_>, cmd: IndexCommand) -> Result<i32> {
    match cmd {
        IndexCommand::Recover(a) => {
            // The local cache plays no part: packs are read from the repository itself.
            let mut conn = g.connection(env)?;
            conn.cache_dir = None;
            let repo = conn.open(&g.password(env)?).await?;
            let scope = recover::RecoverScope {
                blobs: a.blobs.into_iter().map(BlobId::new).collect(),
                prefixes: a.blob_prefixes,
                all_packs: a.all_packs,
            };
            let plan = recover::find_unindexed(&repo, &scope).await?;
            for (pack, why) in &plan.unreadable {
                eprintln!("WARNING: skipped pack {pack}: {why}");
            }
            for (pack, entries) in &plan.unindexed {
                println!("{pack}: {} content(s) no index blob lists", entries.len());
            }
            println!(
                "Scanned {} pack(s) ({} skipped: their writer's session is open): {} content(s) in {} pack(s) to index again, {} of them manifests",
                plan.packs_scanned,
                plan.packs_in_sessions,
                plan.entries(),
                plan.unindexed.len(),
                plan.manifests()
            );
            if plan.entries() == 0 {
                println!("Nothing to recover.");
            } else if a.commit {
                if let Some(id) = recover::commit(&repo, &plan).await? {
                    println!("Wrote index blob {id}.");
                }
            } else {
                println!("Dry run: nothing written. Pass --commit to write the recovered entries.");
            }
            if !plan.unreadable.is_empty() && !a.ignore_errors {
                eprintln!(
                    "{} pack(s) could not be read (named above); pass --ignore-errors to accept that",
                    plan.unreadable.len()
                );
                return Ok(exit::CORRUPT);
            }
            Ok(exit::OK)
        }
    }
}
