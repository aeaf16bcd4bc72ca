//! Scenario: restore dry-run (issue 17), set through `KOPIA_MANUAL_CONFIG`'s `arkiv` section
//! as VolSync passes it: a ReplicationDestination job prints the snapshot the selection
//! (`KOPIA_PREVIOUS`) picks and what would be deleted, and leaves the volume byte for byte
//! as it was; the same job without the setting then restores and deletes exactly that.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arkiv_tests::mover::{Scene, run_mover, small_tree, tree_digest, with};

#[test]
fn dry_run_names_snapshot_and_deletions_and_touches_nothing() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    let first = run_mover(&["backup"], &s.backup_env());
    first.expect_code(0);
    small_tree(&s.data, 2);
    run_mover(&["backup"], &s.backup_env()).expect_code(0);

    // The volume holds older data plus a file the snapshot lacks.
    small_tree(&s.restore, 3);
    std::fs::write(s.restore.join("stray.txt"), b"not in any snapshot").unwrap();
    std::fs::create_dir_all(s.restore.join("lost+found")).unwrap();
    let before = tree_digest(&s.restore);

    let env = with(
        &s.restore_env(),
        &[
            ("KOPIA_MANUAL_CONFIG", r#"{"arkiv":{"restoreDryRun":true}}"#),
            ("KOPIA_PREVIOUS", "1"),
            ("KOPIA_ENABLE_FILE_DELETION", "true"),
        ],
    );
    let r = run_mover(&["restore"], &env);
    r.expect_code(0);
    let id = first.json["snapshotId"].as_str().unwrap();
    assert!(
        r.stdout.contains(&format!(
            "INFO: DRY RUN: would restore snapshot {id} of app@media:/data"
        )),
        "{}",
        r.all()
    );
    for p in ["stray.txt", "only-in-v3.txt"] {
        assert!(
            r.stdout
                .contains(&format!("INFO: DRY RUN: would delete {p}\n")),
            "{p}: {}",
            r.stdout
        );
    }
    assert!(!r.stdout.contains("would delete lost+found"));
    assert!(!r.stdout.contains("would delete only-in-v1.txt"));
    assert!(r.stdout.contains("would delete 2 path(s)"), "{}", r.stdout);
    assert_eq!(
        tree_digest(&s.restore),
        before,
        "the dry run changed the volume"
    );
    assert!(r.json["snapshotId"].is_null(), "nothing restored");

    // The real restore does what the dry run said.
    let real = with(
        &s.restore_env(),
        &[
            ("KOPIA_PREVIOUS", "1"),
            ("KOPIA_ENABLE_FILE_DELETION", "true"),
        ],
    );
    run_mover(&["restore"], &real).expect_code(0);
    assert!(!s.restore.join("stray.txt").exists());
    assert!(!s.restore.join("only-in-v3.txt").exists());
    assert!(s.restore.join("only-in-v1.txt").exists());
    assert!(s.restore.join("lost+found").exists());
}
