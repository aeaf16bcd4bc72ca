//! Verify as a job (`DIRECTION=verify`, issue 17): what users run as a daily CronJob with
//! `kopia snapshot verify`, plus the per-source snapshot counts and ages an operator wants to
//! alert on. Read-only: opens the repository without its local cache (everything is read from
//! the storage and re-hashed), verifies the index, packs and snapshot trees and a sample of
//! file contents, prints one `INFO: VERIFY_RESULT: {json}` line, and fails (exit 1) on any
//! problem or on a source whose newest snapshot is older than the threshold.
//!
//! | Variable | Meaning |
//! |---|---|
//! | `ARKIV_VERIFY_SAMPLE_PERCENT` | share of file contents (0–100) downloaded and hash-checked; default 0 (structure only) |
//! | `ARKIV_VERIFY_MAX_AGE` | a source whose newest snapshot is older fails the job: seconds or `30m`, `26h`, `7d`; default: no limit |
//!
//! Metrics (when configured, see [`super::metrics`]): `arkiv_verify_*`, and per source
//! `arkiv_source_snapshots` / `arkiv_source_last_snapshot_timestamp_seconds`.

use std::time::Duration;

use arkiv_engine::Repository;
use arkiv_engine::verify::{VerifyOptions, verify};

use super::config::{ConfigError, MoverConfig};
use super::metrics::RunMetrics;
use super::{Failure, Stop, connection, snapshots, storage};
use crate::cancel::CancellationToken;
use crate::connect::Access;
use crate::source_ages::{parse_max_age, source_ages};

/// What a verify job reads besides the shared settings.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyConfig {
    /// `ARKIV_VERIFY_SAMPLE_PERCENT`.
    pub sample_percent: f64,
    /// `ARKIV_VERIFY_MAX_AGE`.
    pub max_age: Option<Duration>,
}

impl Eq for VerifyConfig {}

impl VerifyConfig {
    /// Reads `ARKIV_VERIFY_SAMPLE_PERCENT` and `ARKIV_VERIFY_MAX_AGE`; a value that cannot
    /// be used is an error.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<VerifyConfig, ConfigError> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let sample_percent = match get("ARKIV_VERIFY_SAMPLE_PERCENT") {
            None => 0.0,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
                .ok_or_else(|| ConfigError::Invalid {
                    var: "ARKIV_VERIFY_SAMPLE_PERCENT",
                    value: v.clone(),
                    reason: "expected a percentage from 0 to 100".into(),
                })?,
        };
        let max_age = match get("ARKIV_VERIFY_MAX_AGE") {
            None => None,
            Some(v) => Some(parse_max_age(&v).ok_or_else(|| ConfigError::Invalid {
                var: "ARKIV_VERIFY_MAX_AGE",
                value: v.clone(),
                reason: "expected seconds or a number with s, m, h or d (e.g. 26h)".into(),
            })?),
        };
        Ok(VerifyConfig {
            sample_percent,
            max_age,
        })
    }
}

/// The verify flow.
pub(super) async fn run(
    cfg: &MoverConfig,
    v: &VerifyConfig,
    stop: &CancellationToken,
    metrics: &mut RunMetrics,
) -> Result<(), Failure> {
    let mut conn = connection(cfg, Access::ReadOnly);
    // verification reads the repository itself, never a local copy
    conn.cache_dir = None;
    let loc = conn.describe();
    let Some(storage) = storage(cfg, &conn, stop).await? else {
        return Err(Failure::new(format!("no repository at {loc}")));
    };
    let repo = Repository::open(storage, cfg.password.expose(), conn.open_options())
        .await
        .map_err(|e| Failure::engine(&format!("opening the repository at {loc}"), &e))?;
    println!(
        "INFO: verifying {loc} (index, packs, snapshot trees, {}% of file contents)",
        v.sample_percent
    );
    let mut opts = VerifyOptions::default();
    opts.verify_files_percent = v.sample_percent;
    let report = stop
        .interruptible(async {
            verify(&repo, &opts)
                .await
                .map_err(|e| Failure::engine("verifying", &e))
        })
        .await?;
    for p in &report.problems {
        println!("WARN: verify: {p}");
    }
    let all = snapshots(&repo, stop).await?;
    let now = conn.clock.now();
    let sources = source_ages(&all, now, v.max_age);
    for s in &sources {
        println!(
            "INFO: source {}: {} snapshot(s), newest {} ({}){}",
            s.source,
            s.snapshots,
            s.newest.to_rfc3339(),
            humanize(s.age_seconds),
            if s.stale {
                ": OLDER THAN THE LIMIT"
            } else {
                ""
            }
        );
        metrics.set_with(
            "arkiv_source_snapshots",
            &[("source", &s.source)],
            s.snapshots as f64,
        );
        metrics.set_with(
            "arkiv_source_last_snapshot_timestamp_seconds",
            &[("source", &s.source)],
            s.newest.timestamp() as f64,
        );
    }
    metrics.set("arkiv_verify_problems", report.problems.len() as f64);
    metrics.set("arkiv_verify_read_bytes", report.bytes_read as f64);
    if !cfg.features.metrics.is_off() {
        super::maintenance::repository_size(&repo, metrics, stop).await;
    }
    let stale: Vec<&str> = sources
        .iter()
        .filter(|s| s.stale)
        .map(|s| s.source.as_str())
        .collect();
    let result = serde_json::json!({
        "repository": loc,
        "samplePercent": v.sample_percent,
        "maxAgeSeconds": v.max_age.map(|d| d.as_secs()),
        "report": report,
        "sources": sources,
        "staleSources": stale,
        "ok": report.problems.is_empty() && stale.is_empty(),
    });
    println!("INFO: VERIFY_RESULT: {result}");
    if !report.problems.is_empty() {
        return Err(Failure::new(format!(
            "verification found {} problem(s) in {loc} (see the WARN lines above)",
            report.problems.len()
        )));
    }
    if !stale.is_empty() {
        return Err(Failure::new(format!(
            "{} source(s) have no snapshot newer than ARKIV_VERIFY_MAX_AGE: {}",
            stale.len(),
            stale.join(", ")
        )));
    }
    Ok(())
}

/// `3h 5m` style age for the log.
fn humanize(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86400, s % 86400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h ago")
    } else if h > 0 {
        format!("{h}h {m}m ago")
    } else {
        format!("{m}m {}s ago", s % 60)
    }
}
