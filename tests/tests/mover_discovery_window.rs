//! Scenario: VolSync keeps only the filtered last 1 KiB of a restore's log
//! (`internal/controller/utils/podlogs.go`: `FilterLogs` with the Kopia `LogFilter`, then
//! `TruncateString(.., MOVER_LOG_MAX_BYTES = 1024)` keeping the tail) and parses that window
//! with `ParseKopiaDiscoveryOutput` (`internal/controller/mover/kopia/logparser.go`, fork
//! `perfectra1n/volsync` @ 6966ac30). This test reproduces the filter, the window and the
//! parser with the same regular expressions (RE2 and Rust's `regex` agree on them), runs a
//! restore whose identity (`app-restore@media`) differs from the source's (`app@media`) in a
//! repository holding 1, 5 and 200 snapshots, and checks that the window still yields the
//! requested identity and the available identity with its latest snapshot time.
//!
//! The mover's stdout and stderr go to one file, as the pod log interleaves them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use arkiv_tests::mover::{Scene, mover_cmd, small_tree, with};
use arkiv_tests::{engine_manifest_batch, engine_open};
use regex::Regex;

/// `LogFilter`: the lines the controller keeps.
fn log_filter(line: &str) -> bool {
    let lower = line.to_lowercase();
    if lower.contains("error") || lower.contains("failed") || lower.contains("unable to") {
        return true;
    }
    if line.contains("=== Discovery Mode")
        || line.contains("Available Snapshots")
        || line.contains("No snapshots found")
    {
        return true;
    }
    if Regex::new(r"^[^@]+@[^:]+:.+\s+\d{4}-\d{2}-\d{2}")
        .unwrap()
        .is_match(line)
    {
        return true;
    }
    if line.contains(r#""userName""#) && line.contains(r#""hostName""#) {
        return true;
    }
    line.contains("Snapshot created successfully")
        || line.contains("Snapshot restore completed")
        || line.contains("Repository connected")
        || line.contains("No eligible snapshots")
}

/// `FilterLogs` + `TruncateString`: filtered lines joined by `\n`, last `max` bytes.
fn status_window(log: &str, max: usize) -> String {
    let kept: Vec<&str> = log.lines().filter(|l| log_filter(l)).collect();
    let joined = kept.join("\n");
    let bytes = joined.as_bytes();
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// What `ParseKopiaDiscoveryOutput` extracts: requested identity and, per available
/// identity, (snapshot count, latest endTime).
fn parse_discovery(logs: &str) -> (String, BTreeMap<String, (usize, String)>) {
    let no_snapshots = Regex::new(r"No snapshots found for ([^@]+)@([^:]+):(.+)").unwrap();
    let header = Regex::new(r"=== Discovery Mode: Available Snapshots ===").unwrap();
    let json_line = Regex::new(r#"^\{.*"id".*"userName".*"hostName".*\}"#).unwrap();
    let mut requested = String::new();
    let mut in_discovery = false;
    let mut ids: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for line in logs.split('\n') {
        let line = line.trim();
        if header.is_match(line) {
            in_discovery = true;
            continue;
        }
        if let Some(c) = no_snapshots.captures(line) {
            requested = format!("{}@{}", &c[1], &c[2]);
            continue;
        }
        if in_discovery && json_line.is_match(line) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let id = format!(
                "{}@{}",
                v["userName"].as_str().unwrap_or(""),
                v["hostName"].as_str().unwrap_or("")
            );
            let end = v["endTime"].as_str().unwrap_or("").to_owned();
            let e = ids.entry(id).or_insert((0, String::new()));
            e.0 += 1;
            if end > e.1 {
                e.1 = end;
            }
        }
    }
    (requested, ids)
}

/// Copies of the one real snapshot under new manifest IDs and times, one batch.
fn add_snapshots(s: &Scene, from: usize, to: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = engine_open(&rt, &s.repo, arkiv_tests::mover::PASSWORD);
    let snaps = rt.block_on(repo.snapshots()).unwrap();
    let base = snaps[0].manifest.clone();
    engine_manifest_batch(&rt, &repo, move |b| {
        for i in from..to {
            let mut m = base.clone();
            m.start_time = base.start_time - chrono::Duration::hours(i as i64);
            m.end_time = m.start_time + chrono::Duration::seconds(5);
            let labels = arkiv_format::snapshot::snapshot_labels(&m.source, &m.tags);
            b.put(labels, &m.encode().unwrap(), m.end_time).unwrap();
        }
    });
}

/// The restore as the controller runs it, stdout and stderr in one log.
fn restore_log(s: &Scene, extra: &[(&str, &str)]) -> (i32, String) {
    let log = s.tmp.path().join("restore.log");
    let f = std::fs::File::create(&log).unwrap();
    let status = mover_cmd(
        &["restore"],
        &with(
            &with(
                &s.restore_env(),
                &[("KOPIA_OVERRIDE_USERNAME", "app-restore")],
            ),
            extra,
        ),
    )
    .stdout(f.try_clone().unwrap())
    .stderr(f)
    .status()
    .unwrap();
    (
        status.code().unwrap(),
        std::fs::read_to_string(&log).unwrap(),
    )
}

#[test]
fn discovery_survives_the_controllers_1_kib_window() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    let b = arkiv_tests::mover::run_mover(&["backup"], &s.backup_env());
    b.expect_code(0);
    let newest = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let repo = engine_open(&rt, &s.repo, arkiv_tests::mover::PASSWORD);
        let snaps = rt.block_on(repo.snapshots()).unwrap();
        arkiv_format::gojson::time::format(&snaps[0].manifest.end_time)
    };

    let fail_closed = r#"{"arkiv":{"failIfNoSnapshot":true}}"#;
    let mut have = 1;
    for count in [1usize, 5, 200] {
        add_snapshots(&s, have, count);
        have = count;
        for (manual, code) in [(None, 0), (Some(fail_closed), 1)] {
            let extra: Vec<(&str, &str)> = manual
                .map(|m| ("KOPIA_MANUAL_CONFIG", m))
                .into_iter()
                .collect();
            let (got, log) = restore_log(&s, &extra);
            assert_eq!(got, code, "{count} snapshots: {log}");
            let json_lines = log.lines().filter(|l| l.starts_with("{\"id\"")).count();
            assert!(
                json_lines > count,
                "{count}: the full block lists every snapshot"
            );
            let window = status_window(&log, 1024);
            let (requested, ids) = parse_discovery(&window);
            assert_eq!(requested, "app-restore@media", "{count}: window:\n{window}");
            let app = ids.get("app@media").unwrap_or_else(|| {
                panic!("{count} snapshots: no available identity in the window:\n{window}")
            });
            assert_eq!(app.1, newest, "{count}: latest snapshot time");
            assert_eq!(ids.len(), 1, "{ids:?}");
            assert!(
                window.contains(&format!(
                    "this repository holds app@media:/data ({count} snapshot(s), newest {newest})"
                )),
                "{count}: the reason with the true count is in the window:\n{window}"
            );
        }
    }
}
