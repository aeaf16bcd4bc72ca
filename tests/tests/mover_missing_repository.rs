//! Scenario: a restore against a repository that does not exist creates nothing (no
//! directory, no blob): "no eligible snapshot", exit 0 by default, 1 with
//! `ARKIV_FAIL_IF_NO_SNAPSHOT=true`; an empty existing directory stays empty.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arkiv_tests::mover::{Scene, run_mover, with};

#[test]
fn restore_never_creates_a_repository() {
    let s = Scene::new();
    let r = run_mover(&["restore"], &s.restore_env());
    r.expect_code(0);
    assert!(r.stdout.contains("No eligible snapshots found"));
    assert!(r.stdout.contains("No snapshots found for app@media:/data"));
    assert!(r.stdout.contains("nothing was created"));
    assert!(!s.repo.exists(), "no repository directory created");

    let r = run_mover(
        &["restore"],
        &with(&s.restore_env(), &[("ARKIV_FAIL_IF_NO_SNAPSHOT", "true")]),
    );
    r.expect_code(1);
    assert!(!s.repo.exists());

    std::fs::create_dir(&s.repo).unwrap();
    let r = run_mover(&["restore"], &s.restore_env());
    r.expect_code(0);
    assert!(
        std::fs::read_dir(&s.repo).unwrap().next().is_none(),
        "the empty directory stays empty (no .shards, no blob)"
    );
    assert!(std::fs::read_dir(&s.restore).unwrap().next().is_none());
}
