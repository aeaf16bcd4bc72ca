//! Golden tests of everything `report` prints.

use super::*;
use crate::exit::volsync as exit;

fn t(s: &str) -> DateTime<Utc> {
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => panic!("bad test time {s}: {e}"),
    }
}

fn snap(
    id: &str,
    user: &str,
    host: &str,
    path: &str,
    start: &str,
    end: &str,
) -> DiscoveredSnapshot {
    DiscoveredSnapshot {
        id: id.into(),
        user_name: user.into(),
        host_name: host.into(),
        path: path.into(),
        start_time: t(start),
        end_time: t(end),
    }
}

#[test]
fn exit_codes() {
    assert_eq!(
        [
            exit::SUCCESS,
            exit::FAILURE,
            exit::USAGE,
            exit::CACHE_EXHAUSTED,
            exit::TERMINATED
        ],
        [0, 1, 2, 137, 143]
    );
}

#[test]
fn fixed_lines() {
    assert_eq!(EMPTY_SOURCE, "== Directory is empty skipping backup ===");
    assert_eq!(SNAPSHOT_CREATED, "INFO: Snapshot created successfully");
    assert_eq!(
        RESTORE_COMPLETED,
        "INFO: Snapshot restore completed successfully"
    );
    assert_eq!(selected_snapshot("k1a2"), "Selected snapshot with id: k1a2");
    assert_eq!(
        repository_connected("filesystem:///mnt/repo"),
        "INFO: Repository connected: filesystem:///mnt/repo"
    );
    assert_eq!(
        no_snapshot_error("app@media:/data", "ARKIV_FAIL_IF_NO_SNAPSHOT=true"),
        "ERROR: no eligible snapshot of app@media:/data (ARKIV_FAIL_IF_NO_SNAPSHOT=true)"
    );
}

#[test]
fn go_time_trims_fraction_like_rfc3339nano() {
    assert_eq!(
        gojson::time::format(&t("2024-05-01T12:00:00Z")),
        "2024-05-01T12:00:00Z"
    );
    assert_eq!(
        gojson::time::format(&t("2024-05-01T12:00:00.500Z")),
        "2024-05-01T12:00:00.5Z"
    );
    assert_eq!(
        gojson::time::format(&t("2024-05-01T14:00:00.123456789+02:00")),
        "2024-05-01T12:00:00.123456789Z"
    );
}

#[test]
fn no_snapshot_without_discovery() {
    assert_eq!(
        no_snapshot_output("app@media:/data", None),
        "No eligible snapshots found\n=== No data will be restored ===\n"
    );
}

#[test]
fn no_snapshot_with_empty_repository() {
    assert_eq!(
        no_snapshot_output("app@media:/data", Some(&[])),
        "No eligible snapshots found\n\
         No snapshots found for app@media:/data\n\
         \n\
         === Discovery Mode: Available Snapshots ===\n\
         No snapshots found in the repository\n\
         === End Discovery Mode ===\n\
         \n\
         === No data will be restored ===\n"
    );
}

#[test]
fn no_snapshot_with_discovery_golden() {
    let all = [
        snap(
            "k2",
            "app",
            "prod",
            "/data",
            "2024-05-02T00:00:00Z",
            "2024-05-02T00:01:00.25Z",
        ),
        snap(
            "k1",
            "app",
            "prod",
            "/data",
            "2024-05-01T00:00:00Z",
            "2024-05-01T00:01:00Z",
        ),
        snap(
            "k3",
            "db",
            "prod",
            "/srv/db",
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:05:00Z",
        ),
    ];
    let expected = r#"No eligible snapshots found
No snapshots found for app@media:/data

=== Discovery Mode: Available Snapshots ===
3 snapshot(s) in the repository:
{"id":"k1","userName":"app","hostName":"prod","path":"/data","startTime":"2024-05-01T00:00:00Z","endTime":"2024-05-01T00:01:00Z"}
{"id":"k2","userName":"app","hostName":"prod","path":"/data","startTime":"2024-05-02T00:00:00Z","endTime":"2024-05-02T00:01:00.25Z"}
{"id":"k3","userName":"db","hostName":"prod","path":"/srv/db","startTime":"2024-05-01T10:00:00Z","endTime":"2024-05-01T10:05:00Z"}

Sources in the repository and their last snapshot:
app@prod:/data - Last snapshot: 2024-05-02T00:01:00.25Z
db@prod:/srv/db - Last snapshot: 2024-05-01T10:05:00Z
=== End Discovery Mode ===

=== No data will be restored ===
"#;
    assert_eq!(no_snapshot_output("app@media:/data", Some(&all)), expected);
}

/// The shapes the controller's regexes need, checked by hand (no regex crate here).
#[test]
fn discovery_lines_fit_the_controller_parser() {
    let all = [snap(
        "k1",
        "a\"b",
        "h",
        "/p",
        "2024-05-01T00:00:00Z",
        "2024-05-01T00:01:00Z",
    )];
    let out = discovery_block(&all);
    let json_lines: Vec<&str> = out.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(json_lines.len(), 1);
    let l = json_lines[0];
    // `^\{.*"id".*"userName".*"hostName".*\}`
    let id = l.find("\"id\"");
    let user = l.find("\"userName\"");
    let host = l.find("\"hostName\"");
    assert!(id < user && user < host && l.ends_with('}'), "{l}");
    // Valid JSON with the escaped name.
    let v: serde_json::Value = match serde_json::from_str(l) {
        Ok(v) => v,
        Err(e) => panic!("{e}: {l}"),
    };
    assert_eq!(v["userName"], "a\"b");
    // The human line must not look like `user@host:path  YYYY-MM-DD HH:MM:SS` (the legacy
    // listing pattern), or each source would be counted twice.
    let human = out
        .lines()
        .find(|l| l.contains(" - Last snapshot: "))
        .unwrap_or_default();
    assert!(human.ends_with("2024-05-01T00:01:00Z"), "{human}");
    assert!(!human.contains("2024-05-01 00:01"), "{human}");
}

#[test]
fn summary_backup_success_golden() {
    let s = ExitSummary {
        operation: Some(Operation::Backup),
        success: true,
        exit_code: 0,
        ..ExitSummary::default()
    };
    assert_eq!(
        s.render(STATUS_LOG_BYTES),
        "INFO: === OPERATION SUMMARY ===\n\
         INFO: OPERATION_TYPE: source\n\
         INFO: OPERATION_RESULT: SUCCESS\n\
         INFO: EXIT_CODE: 0\n\
         INFO: === Done ===\n"
    );
}

#[test]
fn summary_restore_failure_golden() {
    let s = ExitSummary {
        operation: Some(Operation::Restore),
        success: false,
        exit_code: 1,
        failure_reason: Some("repository not found at filesystem:///mnt/repo".into()),
        error_output: vec![
            "opening repository".into(),
            "kopia.repository: no such file".into(),
        ],
        maintenance_duration_seconds: None,
        cache: Some(CacheUsage {
            used_bytes: 950,
            capacity_bytes: 1000,
        }),
    };
    assert_eq!(
        s.render(STATUS_LOG_BYTES),
        "INFO: === OPERATION SUMMARY ===\n\
         INFO: OPERATION_TYPE: destination\n\
         INFO: OPERATION_RESULT: FAILURE\n\
         INFO: OPERATION_FAILURE_REASON: repository not found at filesystem:///mnt/repo\n\
         INFO: KOPIA_ERROR_OUTPUT_START:\n\
         INFO:   opening repository\n\
         INFO:   kopia.repository: no such file\n\
         INFO: KOPIA_ERROR_OUTPUT_END\n\
         INFO: === Diagnostic Information ===\n\
         INFO: CACHE_USAGE_BYTES: 950\n\
         INFO: CACHE_CAPACITY_BYTES: 1000\n\
         INFO: CACHE_USAGE_PERCENT: 95\n\
         WARN: CACHE_EXHAUSTION_WARNING: Cache usage at 95%\n\
         INFO: EXIT_CODE: 1\n\
         INFO: === Done ===\n"
    );
}

#[test]
fn summary_maintenance_golden() {
    let ok = ExitSummary {
        operation: Some(Operation::Maintenance),
        success: true,
        exit_code: 0,
        maintenance_duration_seconds: Some(42),
        ..ExitSummary::default()
    };
    assert_eq!(
        ok.render(STATUS_LOG_BYTES),
        "INFO: === OPERATION SUMMARY ===\n\
         INFO: OPERATION_TYPE: maintenance\n\
         INFO: OPERATION_RESULT: SUCCESS\n\
         INFO: MAINTENANCE_STATUS: SUCCESS\n\
         INFO: MAINTENANCE_DURATION: 42\n\
         INFO: EXIT_CODE: 0\n\
         INFO: === Done ===\n"
    );
    let failed = ExitSummary {
        operation: Some(Operation::Maintenance),
        success: false,
        exit_code: 1,
        failure_reason: Some("another owner holds maintenance".into()),
        ..ExitSummary::default()
    };
    assert_eq!(
        failed.render(STATUS_LOG_BYTES),
        "INFO: === OPERATION SUMMARY ===\n\
         INFO: OPERATION_TYPE: maintenance\n\
         INFO: OPERATION_RESULT: FAILURE\n\
         INFO: MAINTENANCE_STATUS: FAILURE\n\
         INFO: MAINTENANCE_FAILURE_REASON: another owner holds maintenance\n\
         INFO: EXIT_CODE: 1\n\
         INFO: === Done ===\n"
    );
}

#[test]
fn summary_unknown_operation() {
    let s = ExitSummary {
        operation: None,
        success: false,
        exit_code: 2,
        failure_reason: Some("unknown operation: prune".into()),
        ..ExitSummary::default()
    };
    let out = s.render(STATUS_LOG_BYTES);
    assert!(out.contains("INFO: OPERATION_TYPE: unknown\n"));
    assert!(out.contains("INFO: OPERATION_FAILURE_REASON: unknown operation: prune\n"));
    assert!(out.ends_with("INFO: EXIT_CODE: 2\nINFO: === Done ===\n"));
}

#[test]
fn summary_truncates_safely_under_1_kib() {
    // Multi-byte text everywhere, a huge reason and many long error lines.
    let s = ExitSummary {
        operation: Some(Operation::Backup),
        success: false,
        exit_code: 1,
        failure_reason: Some("é".repeat(2000)),
        error_output: (0..100)
            .map(|i| format!("{i}: {}", "ü".repeat(300)))
            .collect(),
        maintenance_duration_seconds: None,
        cache: Some(CacheUsage {
            used_bytes: 1,
            capacity_bytes: 8,
        }),
    };
    let out = s.render(STATUS_LOG_BYTES);
    assert!(out.len() <= STATUS_LOG_BYTES, "{}", out.len());
    assert!(out.starts_with("INFO: === OPERATION SUMMARY ===\n"));
    assert!(out.ends_with("INFO: EXIT_CODE: 1\nINFO: === Done ===\n"));
    assert!(out.contains("more lines)\nINFO: KOPIA_ERROR_OUTPUT_END\n"));
    assert!(out.contains("INFO: CACHE_USAGE_PERCENT: 12\n"));
    for line in out.lines() {
        assert!(line.len() <= 400, "{line}");
    }
}

#[test]
fn summary_drops_elastic_parts_when_tight() {
    let s = ExitSummary {
        operation: Some(Operation::Backup),
        success: false,
        exit_code: 1,
        failure_reason: Some("boom".into()),
        error_output: vec!["detail".into()],
        maintenance_duration_seconds: None,
        cache: Some(CacheUsage {
            used_bytes: 1,
            capacity_bytes: 2,
        }),
    };
    let out = s.render(200);
    assert!(out.len() <= 200, "{out}");
    assert!(!out.contains("KOPIA_ERROR_OUTPUT_START"));
    assert!(!out.contains("Diagnostic"));
    assert!(out.contains("OPERATION_FAILURE_REASON: boom"));
}

#[test]
fn cache_usage_percent() {
    let c = |used, capacity| CacheUsage {
        used_bytes: used,
        capacity_bytes: capacity,
    };
    assert_eq!(c(0, 0).percent(), 0);
    assert!(!c(5, 0).exhausted());
    assert_eq!(c(899, 1000).percent(), 89);
    assert!(!c(899, 1000).exhausted());
    assert!(c(900, 1000).exhausted());
    assert_eq!(c(u64::MAX, 1).percent(), u64::MAX);
}

#[test]
fn json_result_golden() {
    let r = RunResult {
        operation: Some(Operation::Backup),
        success: true,
        snapshot_id: Some("k0123abcd".into()),
        files: 1200,
        bytes: 52_428_800,
        new_bytes: 1_048_576,
        duration: Duration::from_millis(12_345),
        error: None,
        storage: None,
        restored: None,
        reason: None,
    };
    assert_eq!(
        r.json_line(),
        r#"{"operation":"backup","result":"success","snapshotId":"k0123abcd","files":1200,"bytes":52428800,"newBytes":1048576,"durationSeconds":12.345,"error":null}"#
    );
    let r = RunResult {
        operation: Some(Operation::Restore),
        success: false,
        duration: Duration::from_secs(3),
        error: Some("wrong password\nfor \"repo\"".into()),
        storage: None,
        ..RunResult::default()
    };
    assert_eq!(
        r.json_line(),
        r#"{"operation":"restore","result":"failure","snapshotId":null,"files":0,"bytes":0,"newBytes":0,"durationSeconds":3.0,"error":"wrong password for \"repo\""}"#
    );
    let r = RunResult::default();
    assert!(
        r.json_line()
            .starts_with(r#"{"operation":"unknown","result":"failure""#)
    );
}

#[test]
fn json_error_is_cut_on_a_char_boundary() {
    let r = RunResult {
        operation: Some(Operation::Maintenance),
        error: Some("ß".repeat(1000)),
        storage: None,
        ..RunResult::default()
    };
    let line = r.json_line();
    let v: serde_json::Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => panic!("{e}: {line}"),
    };
    let err = v["error"].as_str().unwrap_or_default();
    assert!(err.len() <= JSON_ERROR_MAX_BYTES);
    assert!(err.ends_with('…'));
}

#[test]
fn tail_fits_in_the_status_log() {
    let summary = ExitSummary {
        operation: Some(Operation::Restore),
        success: false,
        exit_code: 1,
        failure_reason: Some("x".repeat(5000)),
        error_output: vec!["y".repeat(5000); 50],
        maintenance_duration_seconds: None,
        cache: None,
    };
    let result = RunResult {
        operation: Some(Operation::Restore),
        error: Some("z".repeat(5000)),
        storage: None,
        ..RunResult::default()
    };
    let out = render_tail(&summary, &result, STATUS_LOG_BYTES);
    assert!(out.len() <= STATUS_LOG_BYTES, "{}", out.len());
    let mut lines = out.lines().rev();
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("{\"operation\":\"restore\""))
    );
    assert_eq!(lines.next(), Some("INFO: === Done ==="));
}
