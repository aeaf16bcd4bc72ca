//! Scenario: `arkiv-restore` restores outside Kubernetes from a repository the mover wrote:
//! `--list`, newest by default, `--previous`, `--as-of`, `--snapshot`, and it never writes to
//! the repository (its bytes stay identical; a read-only directory works).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use arkiv_tests::mover::{
    PASSWORD, Scene, clear_dir, manifest_without_root, run_mover, small_tree, tree_digest, with,
};
use arkiv_tests::{bin, run};

#[test]
fn standalone_restore_is_read_only() {
    let s = Scene::new();
    let mut ids = Vec::new();
    let mut trees = Vec::new();
    for (v, t) in [(1, "2026-05-01T00:00:00Z"), (2, "2026-05-02T00:00:00Z")] {
        clear_dir(&s.data);
        small_tree(&s.data, v);
        trees.push(manifest_without_root(&s.data));
        let r = run_mover(
            &["backup"],
            &with(&s.backup_env(), &[("ARKIV_TEST_NOW", t)]),
        );
        r.expect_code(0);
        ids.push(r.json["snapshotId"].as_str().unwrap().to_owned());
    }
    let before = tree_digest(&s.repo);
    let url = format!("filesystem://{}", s.repo.display());
    let restore = |args: &[&str]| {
        let mut c = Command::new(bin("arkiv-restore"));
        c.env_clear()
            .env("KOPIA_PASSWORD", PASSWORD)
            .args(["--repo", &url])
            .args(args);
        run(&mut c)
    };

    let out = restore(&["--list"]);
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(lines[0].starts_with(&ids[1]), "newest first: {listing}");
    assert!(lines[0].contains("app@media:/data"));

    let target = s.tmp.path().join("dr");
    let t = target.to_str().unwrap();
    let out = restore(&[t]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(manifest_without_root(&target), trees[1]);

    for args in [
        vec!["--previous", "1", "--source", "app@media:/data"],
        vec!["--as-of", "2026-05-01T20:00:00-02:00"],
        vec!["--snapshot", ids[0].as_str()],
    ] {
        std::fs::remove_dir_all(&target).unwrap();
        let mut a = args.clone();
        a.push(t);
        let out = restore(&a);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(manifest_without_root(&target), trees[0], "{args:?}");
    }

    // No eligible snapshot: not found (exit 3).
    let out = restore(&["--as-of", "2020-01-01T00:00:00Z", t]);
    assert_eq!(out.status.code(), Some(3));

    // A read-only repository directory (as for a mounted backup disk) still works; as root
    // the permission bits do not bind, so the byte comparison is the real check.
    std::fs::set_permissions(&s.repo, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::remove_dir_all(&target).unwrap();
    let out = restore(&[t]);
    std::fs::set_permissions(&s.repo, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        tree_digest(&s.repo),
        before,
        "arkiv-restore never writes to the repository"
    );

    // Wrong password: auth exit code (4), nothing written.
    let mut c = Command::new(bin("arkiv-restore"));
    c.env_clear()
        .env("KOPIA_PASSWORD", "wrong")
        .args(["--repo", &url, "--list"]);
    assert_eq!(run(&mut c).status.code(), Some(4));
    assert_eq!(tree_digest(&s.repo), before);
}
