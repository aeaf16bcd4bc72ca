//! Scenario: restore selection by `KOPIA_PREVIOUS` and `KOPIA_RESTORE_AS_OF` (instants, any
//! RFC 3339 offset) among the identity's snapshots, newest first; no eligible snapshot prints
//! the discovery block and exits 0, or 1 with `ARKIV_FAIL_IF_NO_SNAPSHOT=true`. Snapshot
//! times are pinned with the mover's test clock (`ARKIV_TEST_NOW`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arkiv_tests::mover::{Scene, clear_dir, manifest_without_root, run_mover, small_tree, with};

#[test]
fn previous_and_as_of_pick_the_right_snapshot() {
    let s = Scene::new();
    let times = [
        "2026-03-01T10:00:00Z",
        "2026-03-02T10:00:00Z",
        "2026-03-03T10:00:00Z",
    ];
    let mut trees = Vec::new();
    let mut ids = Vec::new();
    for (i, t) in times.iter().enumerate() {
        clear_dir(&s.data);
        small_tree(&s.data, i as u32 + 1);
        trees.push(manifest_without_root(&s.data));
        let r = run_mover(
            &["backup"],
            &with(&s.backup_env(), &[("ARKIV_TEST_NOW", t)]),
        );
        r.expect_code(0);
        ids.push(r.json["snapshotId"].as_str().unwrap().to_owned());
    }
    // Another identity's snapshot must never be picked.
    let other = run_mover(
        &["backup"],
        &with(
            &s.backup_env(),
            &[
                ("KOPIA_OVERRIDE_USERNAME", "other"),
                ("ARKIV_TEST_NOW", "2026-03-04T10:00:00Z"),
            ],
        ),
    );
    other.expect_code(0);

    let restore = |extra: &[(&str, &str)]| {
        clear_dir(&s.restore);
        run_mover(&["restore"], &with(&s.restore_env(), extra))
    };

    let r = restore(&[]);
    r.expect_code(0);
    assert_eq!(r.json["snapshotId"], ids[2].as_str());
    assert_eq!(manifest_without_root(&s.restore), trees[2]);

    let r = restore(&[("KOPIA_PREVIOUS", "1")]);
    r.expect_code(0);
    assert_eq!(r.json["snapshotId"], ids[1].as_str());
    assert_eq!(manifest_without_root(&s.restore), trees[1]);

    // 2026-03-02T11:30:00+02:00 is 09:30Z: before the second snapshot (10:00Z). A string
    // comparison (the script's) would pick the second one.
    let r = restore(&[("KOPIA_RESTORE_AS_OF", "2026-03-02T11:30:00+02:00")]);
    r.expect_code(0);
    assert_eq!(r.json["snapshotId"], ids[0].as_str());
    assert_eq!(manifest_without_root(&s.restore), trees[0]);

    // -05:00: 2026-03-02T23:00-05:00 = 03-03T04:00Z, between the second and third.
    let r = restore(&[
        ("KOPIA_RESTORE_AS_OF", "2026-03-02T23:00:00-05:00"),
        ("KOPIA_PREVIOUS", "1"),
    ]);
    r.expect_code(0);
    assert_eq!(r.json["snapshotId"], ids[0].as_str());

    // Nothing eligible: discovery output, exit 0 by default.
    let r = restore(&[("KOPIA_RESTORE_AS_OF", "2020-01-01T00:00:00Z")]);
    r.expect_code(0);
    assert!(r.stdout.contains("No eligible snapshots found"));
    assert!(r.stdout.contains("No snapshots found for app@media:/data"));
    assert!(
        r.stdout
            .contains("=== Discovery Mode: Available Snapshots ===")
    );
    assert!(r.stdout.contains("=== No data will be restored ==="));
    let json_lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("{\"id\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids_listed: std::collections::BTreeSet<&str> =
        json_lines.iter().filter_map(|j| j["id"].as_str()).collect();
    assert_eq!(ids_listed.len(), 4, "every snapshot of every identity");
    assert!(json_lines.iter().any(|j| j["userName"] == "other"));
    assert!(r.json["snapshotId"].is_null());
    assert_eq!(r.json["restored"], false);
    assert_eq!(
        r.json["reason"],
        "no snapshot of app@media:/data matches restoreAsOf=2020-01-01T00:00:00+00:00 (3 snapshot(s) exist)"
    );
    assert!(
        r.stdout.contains(
            "No snapshots found for app@media:/data with restoreAsOf=2020-01-01T00:00:00+00:00: \
             it has 3 snapshot(s)"
        ),
        "{}",
        r.stdout
    );
    assert!(std::fs::read_dir(&s.restore).unwrap().next().is_none());

    let r = restore(&[("KOPIA_PREVIOUS", "3")]);
    r.expect_code(0);
    assert!(r.stdout.contains("No eligible snapshots found"));

    let r = restore(&[
        ("KOPIA_PREVIOUS", "3"),
        ("ARKIV_FAIL_IF_NO_SNAPSHOT", "true"),
    ]);
    r.expect_code(1);
    assert!(
        r.stdout
            .contains("=== Discovery Mode: Available Snapshots ===")
    );
    assert!(r.stderr.contains("ARKIV_FAIL_IF_NO_SNAPSHOT"));

    // Fail-closed through the channels the controller passes: a KOPIA_MANUAL_CONFIG key and
    // an additionalArgs flag.
    let r = restore(&[
        ("KOPIA_PREVIOUS", "3"),
        (
            "KOPIA_MANUAL_CONFIG",
            r#"{"arkiv":{"failIfNoSnapshot":true}}"#,
        ),
    ]);
    r.expect_code(1);
    assert!(
        r.stderr.contains("(arkiv.failIfNoSnapshot)"),
        "{}",
        r.stderr
    );
    assert_eq!(r.json["restored"], false);
    let r = restore(&[
        ("KOPIA_RESTORE_AS_OF", "2020-01-01T00:00:00Z"),
        (
            "KOPIA_ADDITIONAL_ARGS",
            "--skip-owners|VOLSYNC_ARG_SEP|--arkiv-fail-if-no-snapshot",
        ),
    ]);
    r.expect_code(1);
    assert!(
        r.stderr.contains("--arkiv-fail-if-no-snapshot"),
        "{}",
        r.stderr
    );
    // A restore that finds its snapshot says restored: true.
    let r = restore(&[(
        "KOPIA_MANUAL_CONFIG",
        r#"{"arkiv":{"failIfNoSnapshot":true}}"#,
    )]);
    r.expect_code(0);
    assert_eq!(r.json["restored"], true);
    assert!(r.json.get("reason").is_none());

    // Bad time: a configuration error, exit 1.
    let r = restore(&[("KOPIA_RESTORE_AS_OF", "yesterday")]);
    r.expect_code(1);
    assert!(r.stderr.contains("KOPIA_RESTORE_AS_OF"));
}
