//! Scenario: a source holding only `lost+found` is "empty": the contract's message, exit 0,
//! no snapshot and no repository created.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arkiv_tests::mover::{Scene, run_mover};

#[test]
fn empty_source_skips_backup() {
    let s = Scene::new();
    std::fs::create_dir(s.data.join("lost+found")).unwrap();
    let r = run_mover(&["backup"], &s.backup_env());
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("== Directory is empty skipping backup ===")
    );
    assert!(r.json["snapshotId"].is_null());
    assert!(
        !s.repo.exists(),
        "no repository is created for an empty source"
    );
}
