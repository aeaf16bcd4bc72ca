//! Scenario: the mover on a filesystem repository, driven by environment only — the first
//! backup creates the repository (missing directory) owned for maintenance by
//! `maintenance@volsync`, a second backup is incremental, and the restore yields an identical
//! tree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arkiv_tests::mover::{Scene, manifest_without_root, run_mover, small_tree, with};

#[test]
fn backup_twice_then_restore_identical_tree() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    assert!(!s.repo.exists());

    let first = run_mover(&["backup"], &s.backup_env());
    first.expect_code(0);
    assert!(
        s.repo.join("kopia.repository.f").exists(),
        "repository created"
    );
    assert!(first.stdout.contains("INFO: Snapshot created successfully"));
    assert!(first.stdout.contains("INFO: Repository connected"));
    assert!(
        first
            .stdout
            .contains("maintenance owner maintenance@volsync")
    );
    assert_eq!(first.json["operation"], "backup");
    assert_eq!(first.json["result"], "success");
    assert!(first.json["files"].as_u64().unwrap() >= 5);
    assert!(first.json["snapshotId"].is_string());
    assert!(first.stdout.contains("INFO: OPERATION_RESULT: SUCCESS"));
    assert!(
        s.cache.join("arkiv.config").exists(),
        "client config in the cache"
    );

    // Second backup: changed tree, same repository (connect, not create).
    small_tree(&s.data, 2);
    let second = run_mover(&["backup"], &s.backup_env());
    second.expect_code(0);
    assert!(!second.stdout.contains("creating a new repository"));
    assert!(second.stdout.contains("incremental"));
    assert_ne!(first.json["snapshotId"], second.json["snapshotId"]);

    // Restore (argv, like VolSync) and DIRECTION=destination (tolerated alias).
    let restored = run_mover(&["restore"], &s.restore_env());
    restored.expect_code(0);
    assert!(restored.stdout.contains(&format!(
        "Selected snapshot with id: {}",
        second.json["snapshotId"].as_str().unwrap()
    )));
    assert!(
        restored
            .stdout
            .contains("INFO: Snapshot restore completed successfully")
    );
    assert_eq!(restored.json["operation"], "restore");
    assert_eq!(restored.json["snapshotId"], second.json["snapshotId"]);
    assert_eq!(
        manifest_without_root(&s.data),
        manifest_without_root(&s.restore)
    );

    arkiv_tests::mover::clear_dir(&s.restore);
    let by_direction = run_mover(
        &[],
        &with(&s.restore_env(), &[("DIRECTION", "destination")]),
    );
    by_direction.expect_code(0);
    assert_eq!(
        manifest_without_root(&s.data),
        manifest_without_root(&s.restore)
    );
}
