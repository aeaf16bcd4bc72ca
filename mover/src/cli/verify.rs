//! `arkiv verify`: index, packs, snapshot trees and a share of file contents, read from the
//! repository itself (never from a local cache) and re-hashed.

use anyhow::Result;
use arkiv_engine::Error;
use arkiv_engine::verify::{VerifyOptions, verify};
use clap::Args;

use super::GlobalArgs;
use crate::Env;
use crate::exit::{self, CliError};
use crate::render::text;

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

/// `arkiv verify`
pub async fn run(g: &GlobalArgs, env: Env<'_>, a: VerifyArgs) -> Result<i32> {
    if !(0.0..=100.0).contains(&a.verify_files_percent) {
        return Err(CliError::new(
            exit::CONFIG,
            "--verify-files-percent must be between 0 and 100",
        ));
    }
    // verify reads everything from the repository itself, never from a local cache
    let mut conn = g.connection(env)?;
    conn.cache_dir = None;
    let repo = conn.open(&g.password(env)?).await?;
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
        text::bytes_base10(report.bytes_read),
        started.elapsed().as_secs_f64(),
        report.problems.len()
    );
    if report.problems.is_empty() {
        Ok(exit::OK)
    } else if report.unsupported == report.problems.len() as u64 {
        // Only data arkiv cannot read (e.g. an unknown compressor): exit 6, not "corrupt".
        Err(anyhow::Error::new(Error::Unsupported(format!(
            "verification found {} problem(s), all unsupported features (see above)",
            report.problems.len()
        ))))
    } else {
        Err(anyhow::Error::new(Error::Corrupt(format!(
            "verification found {} problem(s)",
            report.problems.len()
        ))))
    }
}
