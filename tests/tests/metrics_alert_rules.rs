//! Scenario: the example alert rules (`examples/prometheus-rules.yaml`) evaluated by promtool
//! against series shaped exactly like the mover's real output: a backup and a maintenance run
//! write a textfile as VolSync would run them, prometheus_client's parser reads it, and each
//! parsed series (name and labels as written; timestamps moved to the test's time 0) becomes a
//! promtool input series. Then: nothing fires an hour later; BackupStale fires after 27 h,
//! KopiaMaintenanceMissing after 4 days; after a failed backup and a failed maintenance (wrong
//! password), BackupFailed and KopiaMaintenanceFailure fire; a verify job (`DIRECTION=verify`)
//! feeds BackupVerifyMissing (after 9 days) and, when its age limit fails, BackupVerifyFailed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use arkiv_tests::mover::{Scene, run_mover, small_tree, with};
use arkiv_tests::prom::{self, Sample};
use serde_json::{Value, json};

/// promtool input series from parsed samples (one-minute steps, inside the 5-minute lookback, over nine days).
fn input_series(samples: &[Sample]) -> Value {
    let series: Vec<Value> = samples
        .iter()
        .filter(|s| s.name.starts_with("arkiv_"))
        .map(|s| {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap()))
                .collect();
            // A timestamp becomes the test's time 0 (the run happened at the start).
            let v = if s.name.ends_with("_timestamp_seconds") {
                0.0
            } else {
                s.value
            };
            json!({"series": format!("{}{{{}}}", s.name, labels.join(",")),
                   "values": format!("{v}x13000")})
        })
        .collect();
    Value::Array(series)
}

/// The labels of the one sample `name` (what an alert on it carries, plus its own labels).
fn labels_of(samples: &[Sample], name: &str) -> BTreeMap<String, String> {
    let found: Vec<_> = samples.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "{name}: {found:?}");
    found[0].labels.clone()
}

fn alert(samples: &[Sample], metric: &str, severity: &str, summary: &str) -> Value {
    let mut labels = labels_of(samples, metric);
    labels.insert("severity".into(), severity.into());
    json!([{"exp_labels": labels, "exp_annotations": {"summary": summary}}])
}

fn test_case(name: &str, series: Value, checks: Vec<(&str, &str, Value)>) -> Value {
    json!({
        "name": name,
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": checks.into_iter().map(|(at, alertname, exp)| json!({
            "eval_time": at, "alertname": alertname, "exp_alerts": exp
        })).collect::<Vec<_>>(),
    })
}

#[test]
fn example_alert_rules_fire_on_the_movers_metrics() {
    const T: &str = "example_alert_rules_fire_on_the_movers_metrics";
    let (Some(promtool), Some(py)) = (
        prom::tool(T, "ARKIV_PROMTOOL_BIN"),
        prom::tool(T, "ARKIV_PROM_PYTHON"),
    ) else {
        return;
    };
    let s = Scene::new();
    small_tree(&s.data, 1);
    let textfile = s.tmp.path().join("arkiv.prom");
    let env = with(
        &s.backup_env(),
        &[("ARKIV_METRICS_TEXTFILE", textfile.to_str().unwrap())],
    );
    let maint = with(&env, &[("DIRECTION", "maintenance")]);
    let mut verify = with(&env, &[("DIRECTION", "verify")]);
    verify.remove("DATA_DIR");
    let read = || prom::parse(&py, &std::fs::read_to_string(&textfile).unwrap());

    run_mover(&["backup"], &env).expect_code(0);
    run_mover(&[], &maint).expect_code(0);
    run_mover(&[], &verify).expect_code(0);
    let ok = read();
    let source = labels_of(&ok, "arkiv_backup_files")["source"].clone();
    let repository = labels_of(&ok, "arkiv_backup_files")["repository"].clone();
    assert_eq!(source, "app@media:/data");

    let bad_pw = [("KOPIA_PASSWORD", "wrong")];
    run_mover(&["backup"], &with(&env, &bad_pw)).expect_code(1);
    run_mover(&[], &with(&maint, &bad_pw)).expect_code(1);
    // a verify job whose age limit the source misses (run on the mover's test clock)
    let late = [
        ("ARKIV_VERIFY_MAX_AGE", "1d"),
        ("ARKIV_TEST_NOW", "2099-01-01T00:00:00Z"),
    ];
    run_mover(&[], &with(&verify, &late)).expect_code(1);
    let failed = read();

    let none = || json!([]);
    let tests = json!({
        "rule_files": [arkiv_tests::workspace_root().join("examples/prometheus-rules.yaml")],
        "evaluation_interval": "1m",
        "tests": [
            test_case("healthy", input_series(&ok), vec![
                ("1h", "BackupStale", none()),
                ("1h", "BackupFailed", none()),
                ("1h", "BackupUnreadableEntries", none()),
                ("1h", "KopiaMaintenanceMissing", none()),
                ("1h", "KopiaMaintenanceFailure", none()),
                ("1h", "BackupVerifyFailed", none()),
                ("1h", "BackupVerifyMissing", none()),
                ("25h", "BackupStale", none()),
                ("27h", "BackupStale", alert(&ok, "arkiv_backup_last_success_timestamp_seconds",
                    "warning", &format!("No successful backup of {source} for 1d 3h 0m 0s"))),
                ("2d", "KopiaMaintenanceMissing", none()),
                ("4d", "KopiaMaintenanceMissing", alert(&ok,
                    "arkiv_maintenance_last_success_timestamp_seconds", "warning",
                    &format!("No successful maintenance of {repository} for 4d 0h 0m 0s"))),
                ("7d", "BackupVerifyMissing", none()),
                ("9d", "BackupVerifyMissing", alert(&ok,
                    "arkiv_verify_last_success_timestamp_seconds", "warning",
                    &format!("No successful verification of {repository} for 9d 0h 0m 0s"))),
            ]),
            test_case("failed runs", input_series(&failed), vec![
                ("1h", "BackupStale", none()),
                ("10m", "BackupFailed", alert(&failed, "arkiv_backup_last_run_success",
                    "warning", &format!("The last backup of {source} failed"))),
                ("10m", "KopiaMaintenanceFailure", alert(&failed,
                    "arkiv_maintenance_last_run_success", "critical",
                    &format!("The last maintenance of {repository} failed"))),
                ("10m", "BackupVerifyFailed", alert(&failed,
                    "arkiv_verify_last_run_success", "critical",
                    &format!("Verification of {repository} found problems or a stale source"))),
            ]),
        ],
    });
    let file = s.tmp.path().join("rules-test.yaml");
    // JSON is YAML: promtool reads it as its test file.
    std::fs::write(&file, serde_json::to_string_pretty(&tests).unwrap()).unwrap();
    let out = std::process::Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool test rules failed:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
    let _ = Path::new(&file);
}
