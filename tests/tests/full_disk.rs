//! Scenario: a full disk. A backup into a repository whose filesystem fills up fails with
//! a clear error, leaves the repository readable (earlier snapshots intact, no temporary
//! files) and the next backup succeeds once there is room. A restore onto a full target
//! fails with a clear error and leaves no temporary files (ext4 exercises the direct-I/O
//! writes of large files, tmpfs the buffered ones). A full cache disk fails nothing: the
//! cache is disposable.
//!
//! The small filesystems are real mounts (tmpfs with a size limit, and ext4 on a loop
//! device), so this needs root. Without it the tests print a loud SKIPPED line, except
//! under `CI=true`, where that is a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use arkiv_tests::*;

const PW: &str = "full-disk-password";

/// A small filesystem mounted on a temp dir; unmounted when dropped.
struct SmallFs {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFs {
    /// A tmpfs of `mib` MiB, or `None` (after a loud message) where mounting is not allowed.
    fn tmpfs(test: &str, mib: u32) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&mount)
            .output();
        mounted(test, out).then_some(SmallFs { mount, _dir: dir })
    }

    /// An ext4 filesystem of `mib` MiB on a loop device.
    fn ext4(test: &str, mib: u32) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(u64::from(mib) << 20)
            .unwrap();
        let mkfs = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .output();
        if !mounted(test, mkfs) {
            return None;
        }
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let out = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount)
            .output();
        mounted(test, out).then_some(SmallFs { mount, _dir: dir })
    }

    fn path(&self) -> &Path {
        &self.mount
    }

    /// Gives a tmpfs a new size.
    fn resize(&self, mib: u32) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(&self.mount)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {out:?}");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).output();
    }
}

/// Whether a setup command (mkfs, mount) worked; a loud skip or, under CI, a failure.
fn mounted(test: &str, out: std::io::Result<std::process::Output>) -> bool {
    let why = match out {
        Ok(o) if o.status.success() => return true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        Err(e) => e.to_string(),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: cannot set up a small filesystem under CI=true: {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: cannot mount a small filesystem (needs root): {why} ***\n"
    );
    false
}

/// Incompressible bytes (a fixed xorshift stream).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `small`: a few config files; `big`: 40 MB of incompressible data in files of 1–20 MB
/// plus a few small ones.
fn make_sources(root: &Path) -> (PathBuf, PathBuf) {
    let small = root.join("small");
    let big = root.join("big");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::create_dir_all(big.join("db")).unwrap();
    for i in 0..5 {
        std::fs::write(small.join(format!("app{i}.conf")), format!("key = {i}\n")).unwrap();
    }
    for (i, mb) in [20usize, 12, 7, 1].into_iter().enumerate() {
        std::fs::write(
            big.join(format!("db/data{i}.bin")),
            noise(mb * 1_000_000 + i, i as u64 + 1),
        )
        .unwrap();
    }
    for i in 0..20 {
        std::fs::write(
            big.join(format!("note{i}.txt")),
            noise(3000 + i, 99 + i as u64),
        )
        .unwrap();
    }
    (small, big)
}

/// Every path under `dir` whose name contains `needle`.
fn names_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_name().to_string_lossy().contains(needle) {
                found.push(e.path());
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    found
}

/// Asserts a failed command ended with exit code 1 and a one-line "no space" error.
fn assert_no_space(out: &std::process::Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: expected exit code 1 (local I/O error): {stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("arkiv: error:") && l.contains("No space left on device")),
        "{what}: the error does not say the disk is full: {stderr}"
    );
}

#[test]
fn full_repository_fails_cleanly_and_the_next_backup_succeeds() {
    let test = "full_repository_fails_cleanly_and_the_next_backup_succeeds";
    let Some(fs) = SmallFs::tmpfs(test, 24) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (small, big) = make_sources(work.path());
    let repo = fs.path().join("repo");
    create_repo(&repo, PW);
    let first = snapshot_json(&repo, PW, &small, &[]);

    let out = run(arkiv(&repo, PW).args(["snapshot", "create"]).arg(&big));
    assert_no_space(&out, "backup into a full repository");
    assert!(
        names_containing(&repo, ".tmp.").is_empty(),
        "temporary blob files left: {:?}",
        names_containing(&repo, ".tmp.")
    );

    // Still readable: it verifies, and the earlier snapshot restores.
    run_ok(arkiv(&repo, PW).args(["verify", "--verify-files-percent", "100"]));
    let list = String::from_utf8(run_ok(
        arkiv(&repo, PW).args(["snapshot", "list", "--all", "--json"]),
    ))
    .unwrap();
    let id = first["snapshotId"].as_str().unwrap();
    assert!(list.contains(id), "first snapshot {id} missing: {list}");
    let restored = work.path().join("restored-small");
    run_ok(arkiv(&repo, PW).args(["restore", id]).arg(&restored));
    assert_eq!(tree_manifest(&restored), tree_manifest(&small));

    // With room again, the same backup succeeds and restores identically.
    fs.resize(160);
    let second = snapshot_json(&repo, PW, &big, &[]);
    run_ok(arkiv(&repo, PW).args(["verify", "--verify-files-percent", "100"]));
    let restored = work.path().join("restored-big");
    run_ok(
        arkiv(&repo, PW)
            .args(["restore", second["snapshotId"].as_str().unwrap()])
            .arg(&restored),
    );
    assert_eq!(tree_manifest(&restored), tree_manifest(&big));
}

#[test]
fn full_restore_target_fails_cleanly() {
    let test = "full_restore_target_fails_cleanly";
    let work = tempfile::tempdir().unwrap();
    let (_, big) = make_sources(work.path());
    let repo = work.path().join("repo");
    create_repo(&repo, PW);
    let snap = snapshot_json(&repo, PW, &big, &[]);
    let id = snap["snapshotId"].as_str().unwrap();
    for (kind, fs) in [
        ("tmpfs", SmallFs::tmpfs(test, 16)),
        ("ext4", SmallFs::ext4(test, 24)),
    ] {
        let Some(fs) = fs else {
            return;
        };
        let target = fs.path().join("restored");
        let out = run(arkiv(&repo, PW).args(["restore", id]).arg(&target));
        assert_no_space(&out, &format!("restore onto a full {kind}"));
        // The error names the file being restored, not its temporary name.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&*target.to_string_lossy()) && !stderr.contains("arkiv-tmp"),
            "{kind}: {stderr}"
        );
        let left = names_containing(fs.path(), "arkiv-tmp");
        assert!(left.is_empty(), "{kind}: temporary files left: {left:?}");
    }
}

#[test]
fn full_cache_disk_fails_nothing() {
    let test = "full_cache_disk_fails_nothing";
    let Some(fs) = SmallFs::tmpfs(test, 1) else {
        return;
    };
    // Fill it up.
    let mut fill = std::fs::File::create(fs.path().join("fill")).unwrap();
    while fill.write_all(&[7u8; 64 << 10]).is_ok() {}
    drop(fill);
    let cache = fs.path().join("cache");

    let work = tempfile::tempdir().unwrap();
    let (small, _) = make_sources(work.path());
    let repo = work.path().join("repo");
    create_repo(&repo, PW);
    let summary: serde_json::Value = serde_json::from_slice(&run_ok(
        arkiv(&repo, PW)
            .env("ARKIV_CACHE_DIR", &cache)
            .args(["snapshot", "create"])
            .arg(&small)
            .arg("--json"),
    ))
    .unwrap();
    let restored = work.path().join("restored");
    run_ok(
        arkiv(&repo, PW)
            .env("ARKIV_CACHE_DIR", &cache)
            .args(["restore", summary["snapshotId"].as_str().unwrap()])
            .arg(&restored),
    );
    assert_eq!(tree_manifest(&restored), tree_manifest(&small));
}
