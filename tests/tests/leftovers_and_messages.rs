//! Scenario (issue 14, findings 6 and 7): what killed runs leave behind is cleaned up, and
//! damaged or surprising targets get messages that name the problem with the right exit code.
//! * a restore removes the `.NAME.arkiv-tmp-*` files an earlier, killed restore left;
//! * full maintenance removes stale `*.tmp.*` blobs of killed writers (young ones stay);
//! * a lost `.shards` is named (exit 5), not "blob xn0_… not found";
//! * a repository path that is a file is named (exit 8);
//! * a symlink where the snapshot has a directory: replaced with `--delete-extra` (never
//!   followed), otherwise refused naming the fix (exit 8);
//! * a directory where the snapshot has a file is described as such.

use std::path::{Path, PathBuf};
use std::process::Output;

use arkiv_tests::*;

const CORRUPT: i32 = 5;
const CONFIG: i32 = 8;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A repository with one snapshot of `data/` (`a`, `sub/b`), and the data directory.
fn repo_with_snapshot(tmp: &Path) -> (PathBuf, PathBuf) {
    let repo = tmp.join("repo");
    let data = tmp.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a"), b"file a").unwrap();
    std::fs::write(data.join("sub/b"), b"file b").unwrap();
    create_repo(&repo, "pw");
    run_ok(
        arkiv(&repo, "pw")
            .args(["snapshot", "create"])
            .arg(&data)
            .args(["--source", "u@h:/data"]),
    );
    (repo, data)
}

fn restore(repo: &Path, target: &Path, extra: &[&str]) -> Output {
    run(arkiv(repo, "pw")
        .args(["restore", "latest"])
        .arg(target)
        .args(["--source", "u@h:/data"])
        .args(extra))
}

#[test]
fn restore_removes_its_own_leftover_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = repo_with_snapshot(tmp.path());
    let target = tmp.path().join("target");
    assert!(restore(&repo, &target, &[]).status.success());
    // What a restore killed mid-file leaves: temporary names next to the final ones.
    let left = [
        target.join(".a.arkiv-tmp-0123456789abcdef"),
        target.join("sub/.b.arkiv-tmp-fedcba9876543210"),
    ];
    for p in &left {
        std::fs::write(p, b"half a file").unwrap();
    }
    let unrelated = target.join(".keep.tmp");
    std::fs::write(&unrelated, b"not ours").unwrap();
    let out = restore(&repo, &target, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    for p in &left {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    assert!(unrelated.exists(), "a file that is not arkiv's was removed");
    assert_eq!(std::fs::read(target.join("a")).unwrap(), b"file a");
    assert_eq!(std::fs::read(target.join("sub/b")).unwrap(), b"file b");
}

#[test]
fn full_maintenance_removes_stale_temporary_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = repo_with_snapshot(tmp.path());
    // A backup killed between write and rename leaves `<blob>.f.tmp.<hex>`.
    let stale = repo.join("p").join("0ab.f.tmp.0123456789abcdef");
    let young = repo.join("p").join("0cd.f.tmp.fedcba9876543210");
    std::fs::create_dir_all(repo.join("p")).unwrap();
    std::fs::write(&stale, b"partial pack").unwrap();
    std::fs::write(&young, b"a running writer's").unwrap();
    let written = std::fs::metadata(&stale).unwrap().modified().unwrap();
    let two_days_ago = written - std::time::Duration::from_secs(2 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let out = run_ok(arkiv(&repo, "pw").args(["maintenance", "run", "--full", "--force"]));
    assert!(!stale.exists(), "stale temporary blob kept");
    assert!(
        young.exists(),
        "a young temporary blob (maybe a running writer's) was removed"
    );
    assert!(
        String::from_utf8_lossy(&out).contains("stale temporary"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    run_ok(arkiv(&repo, "pw").args(["verify"]));
}

#[test]
fn lost_shards_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = repo_with_snapshot(tmp.path());
    std::fs::remove_file(repo.join(".shards")).unwrap();
    let out = run(arkiv(&repo, "pw").args(["snapshot", "list", "--all"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(CORRUPT), "{err}");
    assert!(
        err.contains(".shards") && err.contains("missing"),
        "names the lost file: {err}"
    );
    assert!(!err.contains("not found"), "{err}");
}

#[test]
fn repository_path_that_is_a_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = run(arkiv(&file, "pw").args(["snapshot", "list", "--all"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(CONFIG), "{err}");
    assert!(
        err.contains(&file.display().to_string()) && err.contains("not a directory"),
        "{err}"
    );
}

#[test]
fn symlink_where_the_snapshot_has_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, data) = repo_with_snapshot(tmp.path());
    let target = tmp.path().join("target");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("precious"), b"outside the target").unwrap();
    std::os::unix::fs::symlink(&elsewhere, target.join("sub")).unwrap();

    // Without file deletion: refused, naming the fix.
    let out = restore(&repo, &target, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(CONFIG), "{err}");
    assert!(
        err.contains("symlink") && err.contains("--delete-extra"),
        "names the fix: {err}"
    );

    // With it: the link is replaced by the snapshot's directory, its target untouched.
    let out = restore(&repo, &target, &["--delete-extra"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = std::fs::symlink_metadata(target.join("sub")).unwrap();
    assert!(m.is_dir() && !m.file_type().is_symlink());
    assert_eq!(tree_manifest(&target), tree_manifest(&data));
    let mut left: Vec<_> = std::fs::read_dir(&elsewhere)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, vec![std::ffi::OsString::from("precious")]);
    assert_eq!(
        std::fs::read(elsewhere.join("precious")).unwrap(),
        b"outside the target"
    );
}

#[test]
fn directory_where_the_snapshot_has_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = repo_with_snapshot(tmp.path());
    let target = tmp.path().join("target");
    std::fs::create_dir_all(target.join("a")).unwrap();
    let out = restore(&repo, &target, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(CONFIG), "{err}");
    assert!(
        err.contains("where the snapshot has a file") && !err.contains("not in the snapshot"),
        "{err}"
    );
}
