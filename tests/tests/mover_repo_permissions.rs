//! Scenario: shared-repository permissions (issue 17), set through `KOPIA_MANUAL_CONFIG`'s
//! `arkiv` section as VolSync passes it: the repository a backup creates (and the packs,
//! indexes and manifests of every later backup) get the configured file and directory
//! modes, not kopia's 0600/0700, whatever the umask; the `ARKIV_REPO_*` variables do the
//! same for a user-written job, and the `arkiv` CLI takes kopia's `--file-mode`/`--dir-mode`
//! flags (or the variables) for what it creates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use arkiv_tests::mover::{Scene, run_mover, small_tree, with};

/// Every file and directory mode under `root` (the root included).
fn modes(root: &Path) -> Vec<(String, u32, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        out.push((
            p.display().to_string(),
            m.permissions().mode() & 0o7777,
            m.is_dir(),
        ));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

#[test]
fn created_repository_gets_the_configured_modes() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    let env = with(
        &s.backup_env(),
        &[(
            "KOPIA_MANUAL_CONFIG",
            r#"{"arkiv":{"repositoryPermissions":{"fileMode":"0640","dirMode":"2750"}}}"#,
        )],
    );
    run_mover(&["backup"], &env).expect_code(0);
    small_tree(&s.data, 2);
    run_mover(&["backup"], &env).expect_code(0);
    let all = modes(&s.repo);
    assert!(all.len() > 8, "{all:?}");
    for (p, mode, dir) in &all {
        assert_eq!(*mode, if *dir { 0o2750 } else { 0o640 }, "{p}");
    }

    // A user-written job with the plain variables.
    let s2 = Scene::new();
    small_tree(&s2.data, 1);
    let env = with(
        &s2.backup_env(),
        &[
            ("ARKIV_REPO_FILE_MODE", "0660"),
            ("ARKIV_REPO_DIR_MODE", "0770"),
        ],
    );
    run_mover(&["backup"], &env).expect_code(0);
    for (p, mode, dir) in modes(&s2.repo) {
        assert_eq!(mode, if dir { 0o770 } else { 0o660 }, "{p}");
    }

    // Without the setting: kopia's 0600/0700.
    let s3 = Scene::new();
    small_tree(&s3.data, 1);
    run_mover(&["backup"], &s3.backup_env()).expect_code(0);
    for (p, mode, _) in modes(&s3.repo) {
        assert_eq!(mode & 0o077, 0, "{p}");
    }

    // The CLI: kopia's flags at create, the variables for later commands.
    let s4 = Scene::new();
    small_tree(&s4.data, 1);
    arkiv_tests::run_ok(
        arkiv_tests::arkiv(&s4.repo, arkiv_tests::mover::PASSWORD).args([
            "repository",
            "create",
            "--file-mode",
            "0640",
            "--dir-mode",
            "0750",
        ]),
    );
    arkiv_tests::run_ok(
        arkiv_tests::arkiv(&s4.repo, arkiv_tests::mover::PASSWORD)
            .env("ARKIV_REPO_FILE_MODE", "0640")
            .env("ARKIV_REPO_DIR_MODE", "0750")
            .args(["snapshot", "create"])
            .arg(&s4.data),
    );
    let all = modes(&s4.repo);
    assert!(all.iter().any(|(p, _, _)| p.contains("/p/")), "{all:?}");
    for (p, mode, dir) in all {
        assert_eq!(mode, if dir { 0o750 } else { 0o640 }, "{p}");
    }
}
