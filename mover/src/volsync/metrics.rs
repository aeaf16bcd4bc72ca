//! The run's Prometheus metrics (issue 17): pushed to a Pushgateway and/or written to a
//! textfile for node_exporter's textfile collector, when `ARKIV_PUSHGATEWAY_URL` /
//! `ARKIV_METRICS_TEXTFILE` (or `KOPIA_MANUAL_CONFIG.arkiv.metrics`) ask for them.
//!
//! The exposition text is the `prometheus` crate's `TextEncoder` (text format 0.0.4, which
//! both the Pushgateway and the textfile collector read). Every metric is a gauge: each run
//! reports its own values, and no state is carried between runs (so no `_total` counters).
//! Labels: `repository` (the location without credentials), `source` (`user@host:/path`) for
//! per-source values. See [`CATALOGUE`] for the names.
//!
//! A failed run publishes its run metrics (`…_last_run_timestamp_seconds`,
//! `…_last_run_success 0`, the duration) but not `…_last_success_timestamp_seconds`: the
//! Pushgateway push is a POST, which replaces only the metric names it carries, and the
//! textfile keeps the families this run does not write, so the last success survives a
//! failure (what a staleness alert needs). A publish failure is a warning, never a failed run.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use prometheus::{Encoder, GaugeVec, Opts, Registry, TextEncoder};

use super::features::MetricsTargets;

/// The Pushgateway job name of every push.
pub const JOB: &str = "arkiv";
/// Time limit of one push.
const PUSH_TIMEOUT: Duration = Duration::from_secs(15);

/// Every metric arkiv writes: name, help text (units in the name, per Prometheus naming).
pub const CATALOGUE: &[(&str, &str)] = &[
    (
        "arkiv_backup_last_run_timestamp_seconds",
        "Unix time at which the last backup of the source ended (success or not).",
    ),
    (
        "arkiv_backup_last_run_success",
        "1 if the last backup of the source succeeded, 0 if it failed.",
    ),
    (
        "arkiv_backup_last_success_timestamp_seconds",
        "Unix time at which the last successful backup of the source ended.",
    ),
    (
        "arkiv_backup_duration_seconds",
        "Wall time of the last backup run of the source.",
    ),
    (
        "arkiv_backup_source_bytes",
        "Bytes of the files in the last snapshot (read or found unchanged).",
    ),
    (
        "arkiv_backup_new_bytes",
        "Plaintext bytes of contents the last backup added (not deduplicated).",
    ),
    (
        "arkiv_backup_uploaded_bytes",
        "Bytes the last backup uploaded in pack blobs (compressed and encrypted).",
    ),
    (
        "arkiv_backup_files",
        "Files in the last snapshot of the source.",
    ),
    (
        "arkiv_backup_errors",
        "Entries the last backup could not read (the snapshot is saved and the run fails).",
    ),
    (
        "arkiv_source_snapshots",
        "Snapshots of the source in the repository (after retention).",
    ),
    (
        "arkiv_source_last_snapshot_timestamp_seconds",
        "Start time of the newest snapshot of the source (Unix time).",
    ),
    (
        "arkiv_maintenance_last_run_timestamp_seconds",
        "Unix time at which the last maintenance run ended (success or not).",
    ),
    (
        "arkiv_maintenance_last_run_success",
        "1 if the last maintenance run succeeded, 0 if it failed.",
    ),
    (
        "arkiv_maintenance_last_success_timestamp_seconds",
        "Unix time at which the last successful maintenance run ended.",
    ),
    (
        "arkiv_maintenance_duration_seconds",
        "Wall time of the last maintenance run.",
    ),
    (
        "arkiv_maintenance_reclaimed_bytes",
        "Bytes of blobs the last maintenance run deleted.",
    ),
    (
        "arkiv_repository_size_bytes",
        "Total size of the repository's blobs, listed by the last maintenance or verify run.",
    ),
    (
        "arkiv_repository_blobs",
        "Number of the repository's blobs, listed by the last maintenance or verify run.",
    ),
    (
        "arkiv_verify_last_run_timestamp_seconds",
        "Unix time at which the last verify run ended (success or not).",
    ),
    (
        "arkiv_verify_last_run_success",
        "1 if the last verify run found no problem and no stale source, else 0.",
    ),
    (
        "arkiv_verify_last_success_timestamp_seconds",
        "Unix time at which the last successful verify run ended.",
    ),
    (
        "arkiv_verify_duration_seconds",
        "Wall time of the last verify run.",
    ),
    (
        "arkiv_verify_problems",
        "Problems (corrupt or missing data) the last verify run found.",
    ),
    (
        "arkiv_verify_read_bytes",
        "Bytes of file contents the last verify run read and re-hashed.",
    ),
];

/// One value with its labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// A name from [`CATALOGUE`].
    pub name: &'static str,
    /// Label pairs (the same names for every sample of one metric).
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// What one run reports: its operation's prefix (`backup`, `maintenance`, `verify`), the
/// labels every sample carries and that group the push, and the run's values.
#[derive(Clone, Debug, Default)]
pub struct RunMetrics {
    /// `backup`, `maintenance` or `verify` (`None`: the run reports no metrics).
    pub operation: Option<&'static str>,
    /// Labels of every run-level sample and the Pushgateway grouping key (besides `job`).
    pub grouping: Vec<(&'static str, String)>,
    /// Values found by the run (the run-level ones are added by [`RunMetrics::finish`]).
    pub samples: Vec<Sample>,
}

impl RunMetrics {
    /// Starts the metrics of an `operation` run with its grouping labels.
    pub fn new(operation: &'static str, grouping: Vec<(&'static str, String)>) -> RunMetrics {
        RunMetrics {
            operation: Some(operation),
            grouping,
            samples: Vec::new(),
        }
    }

    /// Adds a run-level value (labelled with the grouping labels).
    pub fn set(&mut self, name: &'static str, value: f64) {
        let labels = self.grouping.clone();
        self.samples.push(Sample {
            name,
            labels,
            value,
        });
    }

    /// Adds a value with the grouping labels plus `extra`.
    pub fn set_with(&mut self, name: &'static str, extra: &[(&'static str, &str)], value: f64) {
        let mut labels = self.grouping.clone();
        for (k, v) in extra {
            match labels.iter_mut().find(|(n, _)| n == k) {
                Some(slot) => slot.1 = (*v).to_owned(),
                None => labels.push((k, (*v).to_owned())),
            }
        }
        self.samples.push(Sample {
            name,
            labels,
            value,
        });
    }

    /// Adds the run-level values: end time, success, duration, and the last success time
    /// only when the run succeeded.
    pub fn finish(&mut self, success: bool, duration: Duration, now: SystemTime) {
        let Some(op) = self.operation else { return };
        let t = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let name = |suffix: &str| -> &'static str {
            let full = format!("arkiv_{op}_{suffix}");
            CATALOGUE
                .iter()
                .map(|(n, _)| *n)
                .find(|n| *n == full)
                .unwrap_or("arkiv_unknown")
        };
        self.set(name("last_run_timestamp_seconds"), t.floor());
        self.set(name("last_run_success"), if success { 1.0 } else { 0.0 });
        self.set(name("duration_seconds"), duration.as_secs_f64());
        if success {
            self.set(name("last_success_timestamp_seconds"), t.floor());
        }
    }
}

/// The exposition text of `samples` (text format 0.0.4), families in [`CATALOGUE`] order.
pub fn render(samples: &[Sample]) -> Result<String, String> {
    let registry = Registry::new();
    for (name, help) in CATALOGUE {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.name == *name).collect();
        let Some(first) = mine.first() else { continue };
        let label_names: Vec<&str> = first.labels.iter().map(|(k, _)| *k).collect();
        let gauge = GaugeVec::new(Opts::new(*name, *help), &label_names)
            .map_err(|e| format!("metric {name}: {e}"))?;
        for s in &mine {
            let values: Vec<&str> = s.labels.iter().map(|(_, v)| v.as_str()).collect();
            gauge
                .get_metric_with_label_values(&values)
                .map_err(|e| format!("metric {name}: {e}"))?
                .set(s.value);
        }
        registry
            .register(Box::new(gauge))
            .map_err(|e| format!("metric {name}: {e}"))?;
    }
    if let Some(s) = samples
        .iter()
        .find(|s| !CATALOGUE.iter().any(|(n, _)| *n == s.name))
    {
        return Err(format!("metric {} is not in the catalogue", s.name));
    }
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// Publishes `run` to the configured targets; every failure is one `WARN:` line.
pub async fn publish(targets: &MetricsTargets, run: &RunMetrics) {
    if targets.is_off() || run.operation.is_none() {
        return;
    }
    let text = match render(&run.samples) {
        Ok(t) => t,
        Err(e) => {
            println!("WARN: metrics not published: {e}");
            return;
        }
    };
    if let Some(base) = &targets.pushgateway_url {
        let url = push_url(base, &run.grouping);
        match push(&url, &text).await {
            Ok(()) => println!("INFO: metrics pushed to {}", redact(&url)),
            Err(e) => println!(
                "WARN: pushing metrics to {} failed: {e} (the run's result is unchanged)",
                redact(&url)
            ),
        }
    }
    if let Some(path) = &targets.textfile {
        match write_textfile(path, &text) {
            Ok(()) => println!("INFO: metrics written to {}", path.display()),
            Err(e) => println!(
                "WARN: writing metrics to {} failed: {e} (the run's result is unchanged)",
                path.display()
            ),
        }
    }
}

/// `<base>/metrics/job/arkiv/<label>@base64/<value>…`: every grouping value base64url
/// encoded (the Pushgateway's form for values holding `/`; `=` stands for an empty value).
pub fn push_url(base: &str, grouping: &[(&'static str, String)]) -> String {
    let mut url = format!("{}/metrics/job/{JOB}", base.trim_end_matches('/'));
    for (k, v) in grouping {
        let enc = if v.is_empty() {
            "=".to_owned()
        } else {
            base64::engine::general_purpose::URL_SAFE.encode(v.as_bytes())
        };
        url.push_str(&format!("/{k}@base64/{enc}"));
    }
    url
}

/// The URL without user information (for log lines).
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// POST (replace the pushed names only, keep the group's others) of the text.
async fn push(url: &str, text: &str) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(PUSH_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client
        .post(url)
        .header("Content-Type", "text/plain; version=0.0.4")
        .body(text.to_owned());
    if let Ok(u) = reqwest::Url::parse(url)
        && !u.username().is_empty()
    {
        req = req.basic_auth(u.username(), u.password());
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let body = resp.text().await.unwrap_or_default();
        Err(format!(
            "HTTP {status}: {}",
            body.chars().take(300).collect::<String>().trim()
        ))
    }
}

/// Writes `text` to `path` atomically (temporary file in the same directory, fsync, rename),
/// keeping the metric families of the previous file that `text` does not carry (another
/// operation's, or the last success time after a failed run).
pub fn write_textfile(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut merged = text.to_owned();
    if let Ok(old) = std::fs::read_to_string(path) {
        let written: BTreeSet<&str> = families(text).into_iter().map(|(n, _)| n).collect();
        for (name, block) in families(&old) {
            if !written.contains(name) && CATALOGUE.iter().any(|(n, _)| *n == name) {
                merged.push_str(block);
            }
        }
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".arkiv-metrics.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(merged.as_bytes())?;
    tmp.as_file().sync_all()?;
    // node_exporter reads the file as its own user: readable by all, like kopia's logs are not
    // (metrics hold no secret).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The families of an exposition text: (name, its block from `# HELP` to the next family).
fn families(text: &str) -> Vec<(&str, &str)> {
    let mut starts: Vec<(usize, &str)> = Vec::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("").trim_end();
            starts.push((pos, name));
        }
        pos += line.len();
    }
    let mut out = Vec::new();
    for (i, (start, name)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(text.len(), |(s, _)| *s);
        out.push((*name, &text[*start..end]));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn grouping_values_are_base64url() {
        let url = push_url(
            "http://pg:9091/",
            &[
                ("operation", "backup".into()),
                ("source", "app@ns:/data".into()),
                ("empty", String::new()),
            ],
        );
        assert_eq!(
            url,
            "http://pg:9091/metrics/job/arkiv/operation@base64/YmFja3Vw\
             /source@base64/YXBwQG5zOi9kYXRh/empty@base64/="
        );
    }

    #[test]
    fn failed_runs_keep_the_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arkiv.prom");
        let g = vec![("repository", "filesystem:///r".to_owned())];
        let mut ok = RunMetrics::new("maintenance", g.clone());
        ok.finish(
            true,
            Duration::from_secs(3),
            UNIX_EPOCH + Duration::from_secs(1000),
        );
        write_textfile(&path, &render(&ok.samples).unwrap()).unwrap();
        let mut bad = RunMetrics::new("maintenance", g);
        bad.finish(
            false,
            Duration::from_secs(1),
            UNIX_EPOCH + Duration::from_secs(2000),
        );
        write_textfile(&path, &render(&bad.samples).unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let fams: Vec<&str> = families(&text).into_iter().map(|(n, _)| n).collect();
        assert_eq!(fams.len(), 4, "{text}");
        assert!(text.contains("arkiv_maintenance_last_success_timestamp_seconds{repository=\"filesystem:///r\"} 1000"), "{text}");
        assert!(
            text.contains(
                "arkiv_maintenance_last_run_timestamp_seconds{repository=\"filesystem:///r\"} 2000"
            ),
            "{text}"
        );
        assert!(
            text.contains("arkiv_maintenance_last_run_success{repository=\"filesystem:///r\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn unknown_names_are_refused() {
        let s = Sample {
            name: "arkiv_nope",
            labels: vec![],
            value: 1.0,
        };
        assert!(render(&[s]).is_err());
    }
}
