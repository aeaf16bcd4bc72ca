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
use crate::source_ages::{parse_max_age, source_ages};

fn max_age(s: &str) -> Result<std::time::Duration, String> {
    parse_max_age(s)
        .ok_or_else(|| "expected seconds or a number with s, m, h or d (e.g. 26h)".into())
}

/// `arkiv verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Percentage of file contents to download and hash-check (0–100)
    #[arg(long, visible_alias = "sample", default_value_t = 0.0)]
    pub verify_files_percent: f64,
    /// Fail (exit 1) when a source's newest snapshot is older than this (seconds, or 30m,
    /// 26h, 7d); every source's snapshot count and age is reported either way
    #[arg(long, value_parser = max_age)]
    pub max_age: Option<std::time::Duration>,
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
    let clock = conn.clock.clone();
    let repo = conn.open(&g.password(env)?).await?;
    let started = std::time::Instant::now();
    let mut opts = VerifyOptions::default();
    opts.verify_files_percent = a.verify_files_percent;
    let report = verify(&repo, &opts).await?;
    for p in &report.problems {
        eprintln!("ERROR: {p}");
    }
    let sources = source_ages(&repo.snapshots().await?, clock.now(), a.max_age);
    for s in &sources {
        eprintln!(
            "Source {}: {} snapshot(s), newest {} ({} s ago){}",
            s.source,
            s.snapshots,
            s.newest.to_rfc3339(),
            s.age_seconds,
            if s.stale {
                ", older than --max-age"
            } else {
                ""
            }
        );
    }
    if a.json {
        // the report's fields, plus the sources
        let mut doc = serde_json::to_value(&report)?;
        if let Some(o) = doc.as_object_mut() {
            o.insert("sources".into(), serde_json::to_value(&sources)?);
        }
        println!("{doc}");
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
    let stale: Vec<&str> = sources
        .iter()
        .filter(|s| s.stale)
        .map(|s| s.source.as_str())
        .collect();
    if report.problems.is_empty() && !stale.is_empty() {
        Err(CliError::new(
            exit::FAILURE,
            format!("no snapshot newer than --max-age for: {}", stale.join(", ")),
        ))
    } else if report.problems.is_empty() {
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
