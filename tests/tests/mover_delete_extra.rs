//! Scenario: `KOPIA_ENABLE_FILE_DELETION` removes files the snapshot does not have, only
//! after a snapshot was selected, and never `lost+found`; without it extra files stay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arkiv_tests::mover::{Scene, manifest_without_root, run_mover, small_tree, with};

#[test]
fn delete_extra_only_after_selection() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    run_mover(&["backup"], &s.backup_env()).expect_code(0);

    let seed_extras = || {
        std::fs::create_dir_all(s.restore.join("lost+found")).unwrap();
        std::fs::write(s.restore.join("lost+found/#123"), b"fsck").unwrap();
        std::fs::create_dir_all(s.restore.join("stale/dir")).unwrap();
        std::fs::write(s.restore.join("stale/dir/old.txt"), b"old").unwrap();
        std::fs::write(s.restore.join("extra.txt"), b"extra").unwrap();
        std::fs::write(s.restore.join("hello.txt"), b"will be overwritten").unwrap();
    };

    // No eligible snapshot + deletion enabled: nothing is touched.
    seed_extras();
    let r = run_mover(
        &["restore"],
        &with(
            &s.restore_env(),
            &[
                ("KOPIA_ENABLE_FILE_DELETION", "true"),
                ("KOPIA_PREVIOUS", "5"),
            ],
        ),
    );
    r.expect_code(0);
    assert!(s.restore.join("extra.txt").exists());
    assert!(s.restore.join("stale/dir/old.txt").exists());

    // Without deletion: snapshot files restored, extras kept.
    let r = run_mover(&["restore"], &s.restore_env());
    r.expect_code(0);
    assert!(s.restore.join("extra.txt").exists());
    assert_eq!(
        std::fs::read_to_string(s.restore.join("hello.txt")).unwrap(),
        "hello, variant 1\n"
    );

    // With deletion: exactly the snapshot, plus lost+found.
    let r = run_mover(
        &["restore"],
        &with(&s.restore_env(), &[("KOPIA_ENABLE_FILE_DELETION", "true")]),
    );
    r.expect_code(0);
    assert!(!s.restore.join("extra.txt").exists());
    assert!(!s.restore.join("stale").exists());
    assert!(
        s.restore.join("lost+found/#123").exists(),
        "lost+found is kept"
    );
    std::fs::remove_dir_all(s.restore.join("lost+found")).unwrap();
    assert_eq!(
        manifest_without_root(&s.data),
        manifest_without_root(&s.restore)
    );
}
