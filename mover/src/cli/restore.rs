//! `arkiv restore <SNAPSHOT-ID|latest>[/sub/path] <TARGET>`.

use anyhow::Result;
use arkiv_engine::snapshot::restore::{RestoreOptions, restore_entry};
use arkiv_engine::snapshot::select::{self, SelectError, SnapshotQuery};
use arkiv_engine::snapshot::tree::{find_snapshot, resolve_path, split_spec};
use arkiv_format::gojson;
use clap::Args;
use std::path::PathBuf;

use super::{GlobalArgs, parse_source};
use crate::exit::{self, CliError};
use crate::render::text;
use crate::{Env, connect};

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

/// `arkiv restore`
pub async fn run(g: &GlobalArgs, env: Env<'_>, a: RestoreArgs) -> Result<i32> {
    let repo = g.open(env).await?;
    let snapshots = repo.snapshots().await?;
    let (id, sub) = split_spec(&a.snapshot);
    let snap = if id == "latest" {
        let source = a.source.as_deref().map(parse_source).transpose()?;
        select::select(&snapshots, &SnapshotQuery::latest(source)).map_err(|e| match e {
            SelectError::AmbiguousSource(s) => CliError::new(
                exit::CONFIG,
                format!(
                    "`latest` is ambiguous: the repository has {} sources; pick one with --source",
                    s.len()
                ),
            ),
            other => CliError::new(
                exit::NOT_FOUND,
                format!("no snapshot found for `latest`: {other}"),
            ),
        })?
    } else {
        find_snapshot(&snapshots, id)?
    };
    let entry = resolve_path(&repo, snap.root()?, sub).await?;
    eprintln!(
        "Restoring snapshot {} of {} ({}) to {}",
        snap.id,
        snap.manifest.source,
        gojson::time::format_cli(&snap.manifest.start_time),
        a.target.display()
    );
    let started = std::time::Instant::now();
    let mut opts = RestoreOptions::default();
    opts.delete_extra = a.delete_extra;
    opts.parallel_files = a.parallel.max(1);
    opts.direct_io = connect::direct_io_from_env(env);
    let stats = restore_entry(&repo, &entry, &a.target, opts).await?;
    eprintln!(
        "Restored {} in {:.1}s",
        text::restore_stats(&stats),
        started.elapsed().as_secs_f64()
    );
    Ok(exit::OK)
}
