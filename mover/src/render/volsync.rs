//! What the mover prints for others to read, as pure formatting: the lines the VolSync
//! controller parses (contract §6.6), the exit summary users read in
//! `status.latestMoverStatus.logs` (§6.7) and a final one-line JSON result. The exit codes
//! (§6.8) are [`crate::exit::volsync`].
//!
//! VolSync keeps only the last [`STATUS_LOG_BYTES`] bytes of a mover's log, so
//! [`render_tail`] bounds the summary plus the JSON line to that size.
//!
//! The controller's parser (`internal/controller/mover/kopia/logparser.go` in the fork) is
//! line-based and regex-driven; the strings below keep exactly the shapes it matches:
//! * `No snapshots found for <user>@<host>:<path>` gives `requestedIdentity`;
//! * after the header `=== Discovery Mode: Available Snapshots ===`, each line that is a
//!   compact JSON object with keys `id`, `userName`, `hostName`, `path`, `startTime`,
//!   `endTime` (in that order, RFC 3339 times) counts as one snapshot of `availableIdentities`;
//! * a line `user@host:path <YYYY-MM-DD HH:MM:SS>` would also count a snapshot, so the human
//!   list prints RFC 3339 times (with a `T`), which that pattern cannot match, and nothing is
//!   counted twice.

use arkiv_format::gojson;
use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What the mover was asked to do, with the names the controller and the JSON result use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// argv `backup` or `DIRECTION=source`.
    Backup,
    /// argv `restore` or `DIRECTION=destination`.
    Restore,
    /// `DIRECTION=maintenance` (KopiaMaintenance jobs).
    Maintenance,
    /// `DIRECTION=verify` (arkiv's verify job, issue 17).
    Verify,
}

impl Operation {
    /// `backup`, `restore` or `maintenance` (the JSON result's `operation`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Restore => "restore",
            Operation::Maintenance => "maintenance",
            Operation::Verify => "verify",
        }
    }

    /// The matching `DIRECTION` value: `source`, `destination` or `maintenance`.
    pub fn direction(self) -> &'static str {
        match self {
            Operation::Backup => "source",
            Operation::Restore => "destination",
            Operation::Maintenance => "maintenance",
            Operation::Verify => "verify",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bytes of log VolSync keeps in `latestMoverStatus.logs` (operator default
/// `MOVER_LOG_MAX_BYTES`).
pub const STATUS_LOG_BYTES: usize = 1024;
/// Longest failure reason in the summary, in bytes.
pub const REASON_MAX_BYTES: usize = 300;
/// Longest `error` in the JSON result, in bytes.
pub const JSON_ERROR_MAX_BYTES: usize = 256;
/// Longest single error-output line in the summary, in bytes.
const ERROR_LINE_MAX_BYTES: usize = 160;

/// Printed when a backup's source holds nothing but `lost+found` (then exit 0, no snapshot).
pub const EMPTY_SOURCE: &str = "== Directory is empty skipping backup ===";
/// Printed after a snapshot is written (kept by the controller's log filter).
pub const SNAPSHOT_CREATED: &str = "INFO: Snapshot created successfully";
/// Printed after a restore finishes (kept by the controller's log filter).
pub const RESTORE_COMPLETED: &str = "INFO: Snapshot restore completed successfully";
/// First line when a restore finds nothing to restore (kept by the log filter).
pub const NO_ELIGIBLE_SNAPSHOTS: &str = "No eligible snapshots found";
/// The header after which the controller collects JSON snapshot lines.
pub const DISCOVERY_HEADER: &str = "=== Discovery Mode: Available Snapshots ===";
/// Closes the discovery block.
pub const DISCOVERY_FOOTER: &str = "=== End Discovery Mode ===";
/// Last line when nothing is restored.
pub const NO_DATA_RESTORED: &str = "=== No data will be restored ===";

/// `Selected snapshot with id: <id>`.
pub fn selected_snapshot(id: &str) -> String {
    format!("Selected snapshot with id: {id}")
}

/// `INFO: Repository connected: <where>` (kept by the controller's log filter).
pub fn repository_connected(target: &str) -> String {
    format!("INFO: Repository connected: {target}")
}

/// `No snapshots found for <user>@<host>:<path>`: the controller's `requestedIdentity`.
pub fn no_snapshots_for(source: &str) -> String {
    format!("No snapshots found for {source}")
}

/// One snapshot of any source, for the discovery block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredSnapshot {
    /// Manifest id.
    pub id: String,
    /// Source user name.
    pub user_name: String,
    /// Source host name.
    pub host_name: String,
    /// Source path.
    pub path: String,
    /// Snapshot start time.
    pub start_time: DateTime<Utc>,
    /// Snapshot end time.
    pub end_time: DateTime<Utc>,
}

impl DiscoveredSnapshot {
    fn source(&self) -> String {
        format!("{}@{}:{}", self.user_name, self.host_name, self.path)
    }
}

/// The JSON line, keys in the order the controller's pattern needs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiscoveryJson<'a> {
    id: &'a str,
    user_name: &'a str,
    host_name: &'a str,
    path: &'a str,
    start_time: String,
    end_time: String,
}

/// The discovery block (contract §6.6): header, one compact JSON line per snapshot (sorted by
/// source, then start time), a human list of each source's last snapshot, footer.
pub fn discovery_block(all: &[DiscoveredSnapshot]) -> String {
    let mut out = String::new();
    out.push('\n');
    out.push_str(DISCOVERY_HEADER);
    out.push('\n');
    if all.is_empty() {
        out.push_str("No snapshots found in the repository\n");
    } else {
        let mut sorted: Vec<&DiscoveredSnapshot> = all.iter().collect();
        sorted.sort_by(|a, b| {
            (&a.user_name, &a.host_name, &a.path, a.start_time, &a.id).cmp(&(
                &b.user_name,
                &b.host_name,
                &b.path,
                b.start_time,
                &b.id,
            ))
        });
        let _ = writeln!(out, "{} snapshot(s) in the repository:", sorted.len());
        for s in &sorted {
            out.push_str(&discovery_json(s));
            out.push('\n');
        }
        let mut last: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for s in &sorted {
            let e = last.entry(s.source()).or_insert(s.end_time);
            *e = (*e).max(s.end_time);
        }
        out.push_str("\nSources in the repository and their last snapshot:\n");
        for (source, end) in &last {
            let _ = writeln!(
                out,
                "{source} - Last snapshot: {}",
                gojson::time::format(end)
            );
        }
    }
    out.push_str(DISCOVERY_FOOTER);
    out.push_str("\n\n");
    out
}

/// What a restore prints when no snapshot is eligible. `requested` is the identity
/// (`user@host:path`); `discovery` is every snapshot in the repository when
/// `KOPIA_DISCOVER_SNAPSHOTS=true`, `None` otherwise.
pub fn no_snapshot_output(requested: &str, discovery: Option<&[DiscoveredSnapshot]>) -> String {
    let mut out = String::new();
    out.push_str(NO_ELIGIBLE_SNAPSHOTS);
    out.push('\n');
    if let Some(all) = discovery {
        out.push_str(&no_snapshots_for(requested));
        out.push('\n');
        out.push_str(&discovery_block(all));
    }
    out.push_str(NO_DATA_RESTORED);
    out.push('\n');
    out
}

/// Most sources the end-of-run recap repeats (the newest ones; the full block lists all).
pub const RECAP_MAX_SOURCES: usize = 3;

/// Why a restore found nothing, in words a user acts on. `requested` is `user@host:path`,
/// `selection` the user's `previous`/as-of words (`None` when neither was given),
/// `eligible` how many snapshots the identity has before that selection, `all` every snapshot
/// of the repository. Starts with `No snapshots found for <requested>` so that the
/// controller's filter keeps it and its parser reads the requested identity from it.
pub fn no_snapshot_reason(
    requested: &str,
    selection: Option<&str>,
    eligible: usize,
    all: &[DiscoveredSnapshot],
) -> String {
    let mut out = format!("No snapshots found for {requested}");
    if let Some(sel) = selection.filter(|_| eligible > 0) {
        let newest = all
            .iter()
            .filter(|s| s.source() == requested)
            .map(|s| s.start_time)
            .max();
        let _ = write!(
            out,
            " with {sel}: it has {eligible} snapshot(s), the newest started {}; lower previous \
             or move restoreAsOf later",
            newest.map_or_else(String::new, |t| gojson::time::format(&t))
        );
        return out;
    }
    let sources = sources_newest_last(all);
    if sources.is_empty() {
        out.push_str(": the repository holds no snapshots yet (first backup not taken?)");
        return out;
    }
    out.push_str("; this repository holds ");
    let shown: Vec<String> = sources
        .iter()
        .rev()
        .take(RECAP_MAX_SOURCES)
        .map(|(src, count, newest)| {
            format!(
                "{src} ({count} snapshot(s), newest {})",
                gojson::time::format(&newest.end_time)
            )
        })
        .collect();
    out.push_str(&shown.join(", "));
    if sources.len() > RECAP_MAX_SOURCES {
        let _ = write!(out, " and {} more", sources.len() - RECAP_MAX_SOURCES);
    }
    out.push_str("; set sourceIdentity (or username and hostname) to the source to restore");
    out
}

/// Each source with its snapshot count and newest snapshot, the source with the newest
/// snapshot last.
fn sources_newest_last(all: &[DiscoveredSnapshot]) -> Vec<(String, usize, &DiscoveredSnapshot)> {
    let mut by: BTreeMap<String, (usize, &DiscoveredSnapshot)> = BTreeMap::new();
    for s in all {
        let e = by.entry(s.source()).or_insert((0, s));
        e.0 += 1;
        if (s.end_time, &s.id) > (e.1.end_time, &e.1.id) {
            e.1 = s;
        }
    }
    let mut v: Vec<(String, usize, &DiscoveredSnapshot)> =
        by.into_iter().map(|(k, (n, s))| (k, n, s)).collect();
    v.sort_by(|a, b| (a.2.end_time, &a.0).cmp(&(b.2.end_time, &b.0)));
    v
}

/// The end-of-run recap of a restore that found nothing, printed last before the summary so
/// that VolSync's filtered 1 KiB window (`MOVER_LOG_MAX_BYTES`) keeps it whatever the number
/// of snapshots: per source (at most [`RECAP_MAX_SOURCES`], newest last) the discovery header
/// and one JSON line of its newest snapshot — the header before each line, so that a window
/// cutting into the recap still parses — then `reason` (from [`no_snapshot_reason`]).
/// The controller then lists the available identities; it counts one snapshot per identity
/// from this recap (the true counts are in `reason` and the full block above).
pub fn no_snapshot_recap(all: &[DiscoveredSnapshot], reason: &str) -> String {
    let mut out = String::new();
    let sources = sources_newest_last(all);
    for (_, _, s) in sources
        .iter()
        .skip(sources.len().saturating_sub(RECAP_MAX_SOURCES))
    {
        out.push_str(DISCOVERY_HEADER);
        out.push('\n');
        out.push_str(&discovery_json(s));
        out.push('\n');
    }
    out.push_str(&truncate(reason, REASON_MAX_BYTES));
    out.push('\n');
    out
}

fn discovery_json(s: &DiscoveredSnapshot) -> String {
    let line = DiscoveryJson {
        id: &s.id,
        user_name: &s.user_name,
        host_name: &s.host_name,
        path: &s.path,
        start_time: gojson::time::format(&s.start_time),
        end_time: gojson::time::format(&s.end_time),
    };
    // Serializing plain strings cannot fail; an empty line would only lose one entry.
    serde_json::to_string(&line).unwrap_or_default()
}

/// The `ERROR:` line when the user chose fail-closed restores (`why` names the setting) and
/// nothing was restored (exit 1; the controller then parses the recap into its status).
pub fn no_snapshot_error(requested: &str, why: &str) -> String {
    format!("ERROR: no eligible snapshot of {requested} ({why})")
}

/// Cache usage for the failure diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheUsage {
    /// Bytes used under the cache directory.
    pub used_bytes: u64,
    /// `KOPIA_CACHE_CAPACITY_BYTES`.
    pub capacity_bytes: u64,
}

impl CacheUsage {
    /// Whole percent used (0 when the capacity is 0).
    pub fn percent(&self) -> u64 {
        let used = u128::from(self.used_bytes) * 100;
        let pct = used
            .checked_div(u128::from(self.capacity_bytes))
            .unwrap_or(0);
        u64::try_from(pct).unwrap_or(u64::MAX)
    }

    /// At least 90 % full: the threshold for the exhaustion warning and exit 137.
    pub fn exhausted(&self) -> bool {
        self.capacity_bytes > 0 && self.percent() >= 90
    }
}

/// The facts behind the exit summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitSummary {
    /// `None` when the operation could not be determined (usage errors).
    pub operation: Option<Operation>,
    /// Whether the run succeeded.
    pub success: bool,
    /// The process exit code.
    pub exit_code: i32,
    /// One-line reason for a failure.
    pub failure_reason: Option<String>,
    /// Detail lines of a failure (error chain, engine output).
    pub error_output: Vec<String>,
    /// Seconds the maintenance took (maintenance successes).
    pub maintenance_duration_seconds: Option<u64>,
    /// Cache usage, printed on failure.
    pub cache: Option<CacheUsage>,
}

fn truncate(s: &str, max: usize) -> String {
    let one_line = s.replace(['\r', '\n'], " ");
    if one_line.len() <= max {
        return one_line;
    }
    let mut cut = max.saturating_sub('…'.len_utf8());
    while !one_line.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &one_line[..cut])
}

impl ExitSummary {
    /// The summary block, at most `max_bytes` long: the fixed lines always, then cache
    /// diagnostics and as many error-output lines as fit. Every line ends with `\n`.
    pub fn render(&self, max_bytes: usize) -> String {
        let op = self.operation;
        let mut head = String::new();
        head.push_str("INFO: === OPERATION SUMMARY ===\n");
        let _ = writeln!(
            head,
            "INFO: OPERATION_TYPE: {}",
            op.map_or("unknown", Operation::direction)
        );
        let _ = writeln!(
            head,
            "INFO: OPERATION_RESULT: {}",
            if self.success { "SUCCESS" } else { "FAILURE" }
        );
        let reason = self
            .failure_reason
            .as_deref()
            .map(|r| truncate(r, REASON_MAX_BYTES));
        if op == Some(Operation::Maintenance) {
            if self.success {
                head.push_str("INFO: MAINTENANCE_STATUS: SUCCESS\n");
                let _ = writeln!(
                    head,
                    "INFO: MAINTENANCE_DURATION: {}",
                    self.maintenance_duration_seconds.unwrap_or(0)
                );
            } else {
                head.push_str("INFO: MAINTENANCE_STATUS: FAILURE\n");
                if let Some(r) = &reason {
                    let _ = writeln!(head, "INFO: MAINTENANCE_FAILURE_REASON: {r}");
                }
            }
        } else if !self.success {
            if let Some(r) = &reason {
                let _ = writeln!(head, "INFO: OPERATION_FAILURE_REASON: {r}");
            }
        }
        let tail = format!("INFO: EXIT_CODE: {}\nINFO: === Done ===\n", self.exit_code);

        let mut budget = max_bytes.saturating_sub(head.len() + tail.len());

        let mut diagnostics = String::new();
        if !self.success {
            if let Some(c) = self.cache {
                diagnostics.push_str("INFO: === Diagnostic Information ===\n");
                let _ = writeln!(diagnostics, "INFO: CACHE_USAGE_BYTES: {}", c.used_bytes);
                let _ = writeln!(
                    diagnostics,
                    "INFO: CACHE_CAPACITY_BYTES: {}",
                    c.capacity_bytes
                );
                let _ = writeln!(diagnostics, "INFO: CACHE_USAGE_PERCENT: {}", c.percent());
                if c.exhausted() {
                    let _ = writeln!(
                        diagnostics,
                        "WARN: CACHE_EXHAUSTION_WARNING: Cache usage at {}%",
                        c.percent()
                    );
                }
            }
        }
        if diagnostics.len() <= budget {
            budget -= diagnostics.len();
        } else {
            diagnostics.clear();
        }

        let mut errors = String::new();
        if !self.success && !self.error_output.is_empty() {
            const START: &str = "INFO: KOPIA_ERROR_OUTPUT_START:\n";
            const END: &str = "INFO: KOPIA_ERROR_OUTPUT_END\n";
            // Room for the markers and a "lines omitted" note.
            const OMITTED_MAX: usize = "INFO:   … (18446744073709551615 more lines)\n".len();
            if START.len() + END.len() + OMITTED_MAX < budget {
                let mut room = budget - START.len() - END.len() - OMITTED_MAX;
                errors.push_str(START);
                let mut shown = 0;
                for line in &self.error_output {
                    let l = format!("INFO:   {}\n", truncate(line, ERROR_LINE_MAX_BYTES));
                    if l.len() > room {
                        break;
                    }
                    room -= l.len();
                    errors.push_str(&l);
                    shown += 1;
                }
                let omitted = self.error_output.len() - shown;
                if omitted > 0 {
                    let _ = writeln!(errors, "INFO:   … ({omitted} more lines)");
                }
                errors.push_str(END);
            }
        }

        let mut out = head;
        out.push_str(&errors);
        out.push_str(&diagnostics);
        out.push_str(&tail);
        out
    }
}

/// The final one-line JSON result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunResult {
    /// `None` when the operation could not be determined (printed as `unknown`).
    pub operation: Option<Operation>,
    /// `success` or `failure`.
    pub success: bool,
    /// The snapshot written (backup) or restored (restore).
    pub snapshot_id: Option<String>,
    /// Files backed up or restored.
    pub files: u64,
    /// Bytes backed up or restored.
    pub bytes: u64,
    /// Bytes newly uploaded (backup).
    pub new_bytes: u64,
    /// Wall-clock time of the run.
    pub duration: Duration,
    /// One-line error for failures.
    pub error: Option<String>,
    /// Storage requests and local-cache hits (omitted from the JSON when `None`).
    pub storage: Option<crate::connect::IoReport>,
    /// Restores only: whether anything was restored (`None` for other operations).
    pub restored: Option<bool>,
    /// Restores that restored nothing: why, in words a user acts on.
    pub reason: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultJson<'a> {
    operation: &'a str,
    result: &'a str,
    snapshot_id: Option<&'a str>,
    files: u64,
    bytes: u64,
    new_bytes: u64,
    duration_seconds: f64,
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<crate::connect::IoReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    restored: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl RunResult {
    /// `{"operation":…,"result":…,"snapshotId":…,"files":…,"bytes":…,"newBytes":…,
    /// "durationSeconds":…,"error":…}` on one line, without a newline; restores add
    /// `"restored":true|false` and, when nothing was restored and the run succeeded, `"reason":…`. The duration has
    /// millisecond precision; the error is cut to [`JSON_ERROR_MAX_BYTES`].
    pub fn json_line(&self) -> String {
        let millis = u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX);
        let json = ResultJson {
            operation: self.operation.map_or("unknown", Operation::as_str),
            result: if self.success { "success" } else { "failure" },
            snapshot_id: self.snapshot_id.as_deref(),
            files: self.files,
            bytes: self.bytes,
            new_bytes: self.new_bytes,
            duration_seconds: millis as f64 / 1000.0,
            error: self
                .error
                .as_deref()
                .map(|e| truncate(e, JSON_ERROR_MAX_BYTES)),
            storage: self.storage,
            restored: self.restored,
            reason: self
                .reason
                .as_deref()
                .map(|e| truncate(e, JSON_ERROR_MAX_BYTES)),
        };
        // Strings, integers and a finite float: serialization cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }
}

/// The end of every run: the summary block, then the JSON line, together at most `max_bytes`
/// (normally [`STATUS_LOG_BYTES`]) so both survive VolSync's log truncation.
pub fn render_tail(summary: &ExitSummary, result: &RunResult, max_bytes: usize) -> String {
    let json = result.json_line();
    let mut out = summary.render(max_bytes.saturating_sub(json.len() + 1));
    out.push_str(&json);
    out.push('\n');
    out
}

#[cfg(test)]
#[path = "volsync_tests.rs"]
mod tests;
