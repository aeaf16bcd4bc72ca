//! Helpers shared by the end-to-end tests: locating fixtures and the built binaries, copying
//! repositories, computing tree manifests with `fixtures/make_tree.py`, and running the CLI.
//!
//! The binaries must be built before the tests run (`cargo build --workspace` — the README's
//! test command does it); `ARKIV_BIN_DIR` overrides where they are looked up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

pub mod mover;

/// Password of the kopia fixtures.
pub const FIXTURE_PASSWORD: &str = "fixture-password";

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `shared/` beside the repository (override: `ARKIV_SHARED_DIR`).
pub fn shared_dir() -> PathBuf {
    if let Ok(d) = std::env::var("ARKIV_SHARED_DIR") {
        return PathBuf::from(d);
    }
    workspace_root().join("../shared")
}

/// `shared/kopia/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    shared_dir().join("kopia/fixtures")
}

/// Directory holding the built binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("ARKIV_BIN_DIR") {
        return PathBuf::from(d);
    }
    // test executables live in target/<profile>/deps/
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path of a built binary; panics with a helpful message if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: build the binaries first (cargo build --workspace) or set ARKIV_BIN_DIR",
        p.display()
    );
    p
}

/// A `Command` for the `arkiv` binary with a clean, explicit environment.
pub fn arkiv(repo: &Path, password: &str) -> Command {
    let mut c = Command::new(bin("arkiv"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("TZ", "UTC")
        .env(
            "ARKIV_REPOSITORY",
            format!("filesystem://{}", repo.display()),
        )
        .env("ARKIV_PASSWORD", password);
    c
}

/// Runs a command and returns its output, asserting it did not panic.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "the binary panicked: {stderr}"
    );
    out
}

/// Runs a command that must succeed; returns stdout.
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "command failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Copies a directory tree (used for temp copies of fixtures); files become writable.
pub fn copy_tree(src: &Path, dst: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&e.path(), &to);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &to).unwrap();
        } else {
            std::fs::copy(e.path(), &to).unwrap();
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A writable temp copy of a fixture repository.
pub fn fixture_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join(name);
    copy_tree(&fixtures_dir().join(name), &dst);
    (tmp, dst)
}

/// The manifest of a tree as printed by `make_tree.py --manifest`.
pub fn tree_manifest(dir: &Path) -> String {
    let out = Command::new("python3")
        .arg(fixtures_dir().join("make_tree.py"))
        .arg("--manifest")
        .arg(dir)
        .output()
        .expect("python3 make_tree.py");
    assert!(
        out.status.success(),
        "make_tree.py --manifest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Generates a fixture source tree (`make_tree.py OUTDIR --variant N`).
pub fn make_tree(dir: &Path, variant: u32) {
    let out = Command::new("python3")
        .arg(fixtures_dir().join("make_tree.py"))
        .arg(dir)
        .arg("--variant")
        .arg(variant.to_string())
        .output()
        .expect("python3 make_tree.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parses a manifest into path → (type, size, mode, mtime_ns, digest).
pub fn parse_manifest(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (kind, rest) = l.split_once(' ').unwrap();
            let mut fields: Vec<String> = rest.trim_start().split('\t').map(String::from).collect();
            let path = fields.remove(0);
            let mut v = vec![kind.to_owned()];
            v.extend(fields);
            (path, v)
        })
        .collect()
}

/// Checks that every fixture file still has the hash recorded in `repo-files.sha256`.
pub fn assert_fixtures_unchanged() {
    let dir = fixtures_dir();
    let list = std::fs::read_to_string(dir.join("repo-files.sha256")).unwrap();
    let mut n = 0;
    for line in list.lines().filter(|l| !l.is_empty()) {
        let (hash, path) = line.split_once("  ").unwrap();
        let data = std::fs::read(dir.join(path)).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&data)),
            hash,
            "fixture file {path} changed"
        );
        n += 1;
    }
    assert!(n > 20, "repo-files.sha256 lists only {n} files");
}
