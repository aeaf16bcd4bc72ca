//! Scenario: retention over simulated time (`ARKIV_TEST_NOW`). `KOPIA_RETAIN_*` become the
//! policy of the snapshot's own source — here an overridden path
//! (`KOPIA_SOURCE_PATH_OVERRIDE`), which the script got wrong — and expiry runs after each
//! backup; other sources are never touched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arkiv_tests::mover::{Scene, list_snapshots, run_mover, small_tree, with};

#[test]
fn retention_over_ten_simulated_days() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    // Another identity with no retention settings: Kopia's defaults keep all of its few.
    for day in 1..=2 {
        let t = format!("2026-01-{day:02}T12:00:00Z");
        run_mover(
            &["backup"],
            &with(
                &s.backup_env(),
                &[("KOPIA_OVERRIDE_USERNAME", "other"), ("ARKIV_TEST_NOW", &t)],
            ),
        )
        .expect_code(0);
    }

    let retain = [
        ("KOPIA_SOURCE_PATH_OVERRIDE", "/srv/app"),
        ("KOPIA_RETAIN_LATEST", "2"),
        ("KOPIA_RETAIN_HOURLY", "0"),
        ("KOPIA_RETAIN_DAILY", "3"),
        ("KOPIA_RETAIN_WEEKLY", "0"),
        ("KOPIA_RETAIN_MONTHLY", "0"),
        ("KOPIA_RETAIN_YEARLY", "0"),
    ];
    let mut ids = Vec::new();
    for day in 1..=10 {
        let t = format!("2026-01-{day:02}T03:00:00Z");
        let mut extra = retain.to_vec();
        extra.push(("ARKIV_TEST_NOW", &t));
        let r = run_mover(&["backup"], &with(&s.backup_env(), &extra));
        r.expect_code(0);
        assert!(r.stdout.contains("INFO: retention:"), "{}", r.all());
        ids.push(r.json["snapshotId"].as_str().unwrap().to_owned());
        let mine: Vec<String> = list_snapshots(&s.repo)
            .iter()
            .filter(|j| j["source"]["path"] == "/srv/app")
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect();
        // latest 2 ∪ newest per day for 3 days = the last 3 days.
        let expect: Vec<String> = ids.iter().rev().take(3).rev().cloned().collect();
        let mut mine_sorted = mine.clone();
        mine_sorted.sort();
        let mut expect_sorted = expect.clone();
        expect_sorted.sort();
        assert_eq!(mine_sorted, expect_sorted, "after day {day}");
    }
    let others = list_snapshots(&s.repo)
        .iter()
        .filter(|j| j["source"]["userName"] == "other")
        .count();
    assert_eq!(others, 2, "other sources are not expired");

    // The restore side sees the overridden path too.
    let r = run_mover(
        &["restore"],
        &with(
            &s.restore_env(),
            &[("KOPIA_SOURCE_PATH_OVERRIDE", "/srv/app")],
        ),
    );
    r.expect_code(0);
    assert_eq!(r.json["snapshotId"], ids[9].as_str());
}
