//! Scenario: the three binaries pick the same snapshot. A repository holds two sources, two
//! snapshots of one source that started at the same instant (a tie), and a newer manifest of
//! that source without a root entry. `arkiv restore latest`, `arkiv-restore` and the mover's
//! restore must all restore the tied snapshot with the greater ID, never the rootless one nor
//! the other source's newer snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use arkiv_tests::mover::{
    PASSWORD, Scene, clear_dir, manifest_without_root, run_mover, small_tree, with,
};
use arkiv_tests::{bin, engine_open, engine_put_snapshot, run};

/// The snapshot ID in a `Restoring snapshot <ID> of …` line on stderr.
fn restored_id(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with("Restoring snapshot "))
        .unwrap_or_else(|| panic!("no `Restoring snapshot` line in:\n{text}"));
    line.split_whitespace().nth(2).unwrap().to_owned()
}

#[test]
fn cli_standalone_restore_and_mover_pick_the_same_snapshot() {
    let s = Scene::new();
    let tie = "2026-06-01T10:00:00Z";
    let mut tied = Vec::new();
    for v in [1, 2] {
        clear_dir(&s.data);
        small_tree(&s.data, v);
        let r = run_mover(
            &["backup"],
            &with(&s.backup_env(), &[("ARKIV_TEST_NOW", tie)]),
        );
        r.expect_code(0);
        tied.push((
            r.json["snapshotId"].as_str().unwrap().to_owned(),
            manifest_without_root(&s.data),
        ));
    }
    assert_ne!(tied[0].0, tied[1].0);
    let (want_id, want_tree) = tied.iter().max_by(|a, b| a.0.cmp(&b.0)).unwrap().clone();

    // Another source, newer: never picked for app@media:/data.
    clear_dir(&s.data);
    small_tree(&s.data, 3);
    run_mover(
        &["backup"],
        &with(
            &s.backup_env(),
            &[
                ("KOPIA_OVERRIDE_USERNAME", "other"),
                ("ARKIV_TEST_NOW", "2026-06-02T10:00:00Z"),
            ],
        ),
    )
    .expect_code(0);

    // A newer manifest of app@media:/data without a root entry (kopia writes such manifests
    // when a snapshot breaks): nothing to restore, so never picked.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = engine_open(&rt, &s.repo, PASSWORD);
    let snaps = rt.block_on(repo.snapshots()).unwrap();
    let mut rootless = snaps
        .iter()
        .find(|x| x.id.as_str() == want_id)
        .unwrap()
        .manifest
        .clone();
    rootless.root_entry = None;
    rootless.start_time += chrono::TimeDelta::hours(1);
    rootless.end_time = rootless.start_time;
    let rootless_id = engine_put_snapshot(&rt, &repo, &rootless);
    let listed = rt
        .block_on(engine_open(&rt, &s.repo, PASSWORD).snapshots())
        .unwrap();
    assert!(listed.iter().any(|x| x.id.as_str() == rootless_id));

    let url = format!("filesystem://{}", s.repo.display());
    let source = "app@media:/data";

    // arkiv restore latest --source
    let target = s.tmp.path().join("cli");
    let mut c = Command::new(bin("arkiv"));
    c.env_clear()
        .env("ARKIV_PASSWORD", PASSWORD)
        .args(["--repo", &url, "restore", "latest"])
        .arg(&target)
        .args(["--source", source]);
    let out = run(&mut c);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(restored_id(&out.stderr), want_id, "arkiv restore latest");
    assert_eq!(manifest_without_root(&target), want_tree);

    // arkiv-restore --source
    let target = s.tmp.path().join("standalone");
    let mut c = Command::new(bin("arkiv-restore"));
    c.env_clear()
        .env("KOPIA_PASSWORD", PASSWORD)
        .args(["--repo", &url, "--source", source])
        .arg(&target);
    let out = run(&mut c);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(restored_id(&out.stderr), want_id, "arkiv-restore");
    assert_eq!(manifest_without_root(&target), want_tree);

    // the mover's restore of the same identity
    let r = run_mover(&["restore"], &s.restore_env());
    r.expect_code(0);
    assert_eq!(
        r.json["snapshotId"],
        want_id.as_str(),
        "arkiv-mover restore"
    );
    assert_eq!(manifest_without_root(&s.restore), want_tree);
}
