//! Scenario: verify as a job (issue 17), run as a CronJob would run the mover image
//! (`DIRECTION=verify`, the repository Secret's variables, `ARKIV_VERIFY_*`), and the same
//! through `arkiv verify --sample --max-age --json`: a healthy repository passes with every
//! source's snapshot count and age in the JSON result; a source older than the limit fails
//! the job (exit 1) and is named; a damaged pack fails it (exit 1) with the problem listed,
//! and the CLI exits 5 (corrupt).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arkiv_tests::mover::{MoverRun, PASSWORD, Scene, run_mover, small_tree, with};
use arkiv_tests::{arkiv, blob_files, run};
use serde_json::Value;

/// The `INFO: VERIFY_RESULT:` line's JSON.
fn verify_result(r: &MoverRun) -> Value {
    let line = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("INFO: VERIFY_RESULT: "))
        .unwrap_or_else(|| panic!("no VERIFY_RESULT line:\n{}", r.all()));
    serde_json::from_str(line).unwrap()
}

#[test]
fn verify_job_reports_sources_and_fails_on_age_and_damage() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    let backup = with(
        &s.backup_env(),
        &[("ARKIV_TEST_NOW", "2026-03-01T00:00:00Z")],
    );
    run_mover(&["backup"], &backup).expect_code(0);
    small_tree(&s.data, 2);
    let backup = with(&backup, &[("ARKIV_TEST_NOW", "2026-03-01T06:00:00Z")]);
    run_mover(&["backup"], &backup).expect_code(0);

    // A CronJob's environment: the Secret's variables, no DATA_DIR.
    let mut job = s.backup_env();
    job.remove("DATA_DIR");
    job.insert("DIRECTION".into(), "verify".into());
    job.insert("ARKIV_VERIFY_SAMPLE_PERCENT".into(), "100".into());
    job.insert("ARKIV_VERIFY_MAX_AGE".into(), "26h".into());
    job.insert("ARKIV_TEST_NOW".into(), "2026-03-02T00:00:00Z".into());
    let ok = run_mover(&[], &job);
    ok.expect_code(0);
    let v = verify_result(&ok);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["samplePercent"], 100.0);
    assert_eq!(v["maxAgeSeconds"], 26 * 3600);
    let src = &v["sources"][0];
    assert_eq!(v["sources"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(src["source"], "app@media:/data");
    assert_eq!(src["snapshots"], 2);
    assert_eq!(src["ageSeconds"], 18 * 3600, "{v}");
    assert_eq!(src["stale"], false);
    assert!(v["report"]["contents_read"].as_u64().unwrap() > 0, "{v}");
    assert!(v["report"]["problems"].as_array().unwrap().is_empty());
    assert_eq!(ok.json["operation"], "verify", "{}", ok.all());

    // Two days later the newest snapshot is older than 26 h: the job fails, naming it.
    let late = run_mover(
        &[],
        &with(&job, &[("ARKIV_TEST_NOW", "2026-03-03T00:00:00Z")]),
    );
    late.expect_code(1);
    let v = verify_result(&late);
    assert_eq!(v["ok"], false);
    assert_eq!(v["staleSources"][0], "app@media:/data", "{v}");
    assert!(
        late.stderr.contains("ARKIV_VERIFY_MAX_AGE"),
        "{}",
        late.all()
    );

    // The CLI (on the real clock: the snapshots are months old by then): the same sources
    // in its JSON, --sample as the share.
    let repo_arg = |c: &mut std::process::Command| {
        c.args(["verify", "--sample", "100", "--max-age", "3650d", "--json"]);
    };
    let mut c = arkiv(&s.repo, PASSWORD);
    repo_arg(&mut c);
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["sources"][0]["snapshots"], 2, "{cli}");
    assert!(cli["contents_read"].as_u64().unwrap() > 0);

    // A damaged pack: the job fails and lists the problem; the CLI exits 5.
    let packs = blob_files(&s.repo, "p");
    assert!(!packs.is_empty());
    for p in &packs {
        let mut bytes = std::fs::read(p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(p, bytes).unwrap();
    }
    let bad = run_mover(&[], &with(&job, &[("ARKIV_VERIFY_MAX_AGE", "")]));
    bad.expect_code(1);
    let v = verify_result(&bad);
    assert!(
        !v["report"]["problems"].as_array().unwrap().is_empty(),
        "{v}"
    );
    assert!(bad.stderr.contains("problem(s)"), "{}", bad.all());
    let mut c = arkiv(&s.repo, PASSWORD);
    repo_arg(&mut c);
    let out = run(&mut c);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn verify_job_settings_are_checked() {
    let s = Scene::new();
    let mut job = s.backup_env();
    job.insert("DIRECTION".into(), "verify".into());
    for (k, v) in [
        ("ARKIV_VERIFY_SAMPLE_PERCENT", "101"),
        ("ARKIV_VERIFY_MAX_AGE", "1w"),
    ] {
        let r = run_mover(&[], &with(&job, &[(k, v)]));
        assert_ne!(r.code, 0, "{}", r.all());
        assert!(r.all().contains(k), "{}", r.all());
    }
}
