//! Scenario: connect failures never create or modify a repository: a wrong password (backup
//! and restore), and a non-empty directory that holds no Kopia repository (unknown format)
//! exit 1 with one line naming the cause, and the bytes on disk stay the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arkiv_tests::mover::{Scene, list_snapshots, run_mover, small_tree, tree_digest, with};

#[test]
fn wrong_password_and_unknown_format_change_nothing() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    run_mover(&["backup"], &s.backup_env()).expect_code(0);
    let before = tree_digest(&s.repo);

    small_tree(&s.data, 2);
    let wrong = [("KOPIA_PASSWORD", "not-the-password")];
    let r = run_mover(&["backup"], &with(&s.backup_env(), &wrong));
    r.expect_code(1);
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("ERROR:"))
        .collect();
    assert_eq!(errors.len(), 1, "one ERROR line: {errors:?}");
    assert!(
        errors[0].starts_with("ERROR: wrong password"),
        "{}",
        errors[0]
    );
    assert!(
        r.stdout
            .contains("INFO: OPERATION_FAILURE_REASON: wrong password")
    );
    assert_eq!(r.json["result"], "failure");
    assert!(r.json["error"].as_str().unwrap().contains("wrong password"));
    assert_eq!(tree_digest(&s.repo), before, "repository bytes unchanged");

    let r = run_mover(&["restore"], &with(&s.restore_env(), &wrong));
    r.expect_code(1);
    assert!(r.stderr.contains("ERROR: wrong password"));
    assert_eq!(tree_digest(&s.repo), before);
    assert!(std::fs::read_dir(&s.restore).unwrap().next().is_none());
    assert_eq!(list_snapshots(&s.repo).len(), 1);

    // Unknown format: data that is not a Kopia repository.
    let foreign = s.tmp.path().join("restic-repo");
    std::fs::create_dir_all(foreign.join("data/00")).unwrap();
    std::fs::write(foreign.join("config"), b"restic").unwrap();
    let foreign_before = tree_digest(&foreign);
    let env = with(
        &s.backup_env(),
        &[(
            "KOPIA_REPOSITORY",
            &format!("filesystem://{}", foreign.display()),
        )],
    );
    let r = run_mover(&["backup"], &env);
    r.expect_code(1);
    assert!(r.stderr.contains("ERROR: unknown format"), "{}", r.all());
    assert_eq!(
        tree_digest(&foreign),
        foreign_before,
        "nothing created there"
    );
}
