//! Scenario: the mover's Prometheus metrics (issue 17), asked for as VolSync passes settings
//! (plain variables for a backup, `KOPIA_MANUAL_CONFIG`'s `arkiv.metrics` for maintenance):
//! each run pushes to a real Pushgateway and writes a textfile; both texts parse with
//! prometheus_client's parser and carry the run's real values (files, snapshot count, success,
//! times). A failed backup reports `last_run_success 0` and keeps the last success time; an
//! unreachable Pushgateway is a warning, not a failed backup.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{SystemTime, UNIX_EPOCH};

use arkiv_tests::mover::{Scene, run_mover, small_tree, with};
use arkiv_tests::prom::{self, Pushgateway, Sample, find, value};

/// The wall clock: the metrics' timestamps are the mover's real time.
#[allow(clippy::disallowed_methods)]
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Every arkiv family is a gauge with help text, every sample is labelled with its
/// operation and repository.
fn check_shape(samples: &[Sample], repository: &str) {
    let arkiv: Vec<_> = samples
        .iter()
        .filter(|s| s.name.starts_with("arkiv_"))
        .collect();
    assert!(!arkiv.is_empty());
    for s in arkiv {
        assert_eq!(s.kind, "gauge", "{s:?}");
        assert!(!s.help.is_empty(), "{s:?}");
        assert_eq!(
            s.labels.get("repository").map(String::as_str),
            Some(repository),
            "{s:?}"
        );
        assert!(s.labels.contains_key("operation"), "{s:?}");
    }
}

#[test]
fn runs_push_and_write_parseable_metrics() {
    const T: &str = "runs_push_and_write_parseable_metrics";
    let (Some(pg_bin), Some(py)) = (
        prom::tool(T, "ARKIV_PUSHGATEWAY_BIN"),
        prom::tool(T, "ARKIV_PROM_PYTHON"),
    ) else {
        return;
    };
    let pg = Pushgateway::start(&pg_bin, &py);
    let s = Scene::new();
    small_tree(&s.data, 1);
    let textfile = s.tmp.path().join("textfile/arkiv.prom");
    std::fs::create_dir_all(textfile.parent().unwrap()).unwrap();
    let repository = format!("filesystem://{}", s.repo.display());
    let env = with(
        &s.backup_env(),
        &[
            ("ARKIV_PUSHGATEWAY_URL", pg.url.as_str()),
            ("ARKIV_METRICS_TEXTFILE", textfile.to_str().unwrap()),
        ],
    );
    let source = [("source", "app@media:/data"), ("operation", "backup")];

    // Two successful backups.
    let before = now();
    let first = run_mover(&["backup"], &env);
    first.expect_code(0);
    assert!(
        first.stdout.contains("INFO: metrics pushed to"),
        "{}",
        first.all()
    );
    small_tree(&s.data, 2);
    let second = run_mover(&["backup"], &env);
    second.expect_code(0);
    let after = now();

    let file = prom::parse(&py, &std::fs::read_to_string(&textfile).unwrap());
    let pushed = pg.scrape(&py);
    check_shape(&file, &repository);
    for samples in [&file, &pushed] {
        assert_eq!(
            value(samples, "arkiv_backup_last_run_success", &source),
            1.0
        );
        assert_eq!(value(samples, "arkiv_source_snapshots", &source), 2.0);
        assert_eq!(
            value(samples, "arkiv_backup_files", &source),
            second.json["files"].as_f64().unwrap()
        );
        assert_eq!(
            value(samples, "arkiv_backup_source_bytes", &source),
            second.json["bytes"].as_f64().unwrap()
        );
        assert_eq!(value(samples, "arkiv_backup_errors", &source), 0.0);
        let t = value(
            samples,
            "arkiv_backup_last_success_timestamp_seconds",
            &source,
        );
        assert!(
            t >= before.floor() && t <= after,
            "{t} not in [{before}, {after}]"
        );
        let snap = value(
            samples,
            "arkiv_source_last_snapshot_timestamp_seconds",
            &source,
        );
        assert!(snap >= before.floor() && snap <= t, "{snap}");
        assert!(value(samples, "arkiv_backup_duration_seconds", &source) > 0.0);
    }
    // The Pushgateway adds the job to the grouping labels arkiv pushed.
    assert_eq!(
        find(&pushed, "arkiv_backup_files", &[("job", "arkiv")]).len(),
        1
    );
    let last_success = value(
        &pushed,
        "arkiv_backup_last_success_timestamp_seconds",
        &source,
    );

    // A failed backup (wrong password): failure reported, the last success kept.
    let bad = with(&env, &[("KOPIA_PASSWORD", "not-the-password")]);
    run_mover(&["backup"], &bad).expect_code(1);
    let file = prom::parse(&py, &std::fs::read_to_string(&textfile).unwrap());
    let pushed = pg.scrape(&py);
    for samples in [&file, &pushed] {
        assert_eq!(
            value(samples, "arkiv_backup_last_run_success", &source),
            0.0
        );
        assert_eq!(
            value(
                samples,
                "arkiv_backup_last_success_timestamp_seconds",
                &source
            ),
            last_success
        );
        assert!(value(samples, "arkiv_backup_last_run_timestamp_seconds", &source) >= last_success);
    }

    // Maintenance, with the targets from KOPIA_MANUAL_CONFIG's arkiv section.
    let mut menv = s.backup_env();
    menv.insert("DIRECTION".into(), "maintenance".into());
    menv.insert(
        "KOPIA_MANUAL_CONFIG".into(),
        serde_json::json!({"arkiv": {"metrics": {
            "pushgatewayUrl": pg.url, "textfile": textfile}}})
        .to_string(),
    );
    let m = run_mover(&[], &menv);
    m.expect_code(0);
    let file = prom::parse(&py, &std::fs::read_to_string(&textfile).unwrap());
    let pushed = pg.scrape(&py);
    check_shape(&file, &repository);
    let repo_bytes: u64 = walk_sizes(&s.repo);
    let maint = [("operation", "maintenance")];
    for samples in [&file, &pushed] {
        assert_eq!(
            value(samples, "arkiv_maintenance_last_run_success", &maint),
            1.0
        );
        let size = value(samples, "arkiv_repository_size_bytes", &maint);
        assert!(
            size > 0.0 && size <= repo_bytes as f64,
            "{size} vs {repo_bytes}"
        );
        assert!(value(samples, "arkiv_repository_blobs", &maint) >= 3.0);
        // the backup's families are still there (textfile merge; Pushgateway groups)
        assert_eq!(value(samples, "arkiv_source_snapshots", &source), 2.0);
    }

    // A verify job: its own group; per-source values with the verify operation.
    let mut venv = s.backup_env();
    venv.remove("DATA_DIR");
    venv.insert("DIRECTION".into(), "verify".into());
    venv.insert("ARKIV_VERIFY_SAMPLE_PERCENT".into(), "100".into());
    venv.insert("ARKIV_PUSHGATEWAY_URL".into(), pg.url.clone());
    venv.insert(
        "ARKIV_METRICS_TEXTFILE".into(),
        textfile.to_str().unwrap().into(),
    );
    run_mover(&[], &venv).expect_code(0);
    let file = prom::parse(&py, &std::fs::read_to_string(&textfile).unwrap());
    let pushed = pg.scrape(&py);
    let verify = [("operation", "verify")];
    let verify_source = [("operation", "verify"), ("source", "app@media:/data")];
    for samples in [&file, &pushed] {
        assert_eq!(
            value(samples, "arkiv_verify_last_run_success", &verify),
            1.0
        );
        assert_eq!(value(samples, "arkiv_verify_problems", &verify), 0.0);
        assert!(value(samples, "arkiv_verify_read_bytes", &verify) > 0.0);
        assert_eq!(
            value(samples, "arkiv_source_snapshots", &verify_source),
            2.0
        );
    }
    // In the Pushgateway the backup's and the verify's series live side by side.
    assert_eq!(value(&pushed, "arkiv_source_snapshots", &source), 2.0);
}

/// Total size of the regular files under `dir`.
fn walk_sizes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        if m.is_dir() {
            total += walk_sizes(&e.path());
        } else if m.is_file() {
            total += m.len();
        }
    }
    total
}

#[test]
fn an_unreachable_pushgateway_is_a_warning() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    // A port nothing listens on.
    let url = format!("http://127.0.0.1:{}", prom::free_port());
    let r = run_mover(
        &["backup"],
        &with(&s.backup_env(), &[("ARKIV_PUSHGATEWAY_URL", url.as_str())]),
    );
    r.expect_code(0);
    assert!(r.stdout.contains("WARN: pushing metrics to"), "{}", r.all());
    assert_eq!(r.json["result"], "success", "{}", r.all());
}
