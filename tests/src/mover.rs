//! Driving `arkiv-mover` the way VolSync's Job does: a clean environment, argv `backup` or
//! `restore`, and nothing else. Shared by the `mover_*` scenarios.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::bin;

/// Repository password used by the mover scenarios.
pub const PASSWORD: &str = "mover-test-password";

/// A finished mover run.
#[derive(Debug)]
pub struct MoverRun {
    /// Exit code (`-1` when killed by a signal).
    pub code: i32,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
    /// The final JSON result line.
    pub json: serde_json::Value,
}

impl MoverRun {
    /// stdout and stderr together, for `contains` checks and failure messages.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts the exit code, printing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "unexpected exit code; output:\n{}",
            self.all()
        );
        self
    }
}

/// Parses a finished process's output and checks the invariants of every run: the summary
/// block and the JSON line come last on stdout and together stay within 1 KiB.
pub fn parse_output(out: &Output) -> MoverRun {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "the mover panicked:\n{stdout}\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last stdout line is not JSON ({e}):\n{stdout}\n{stderr}"));
    for key in [
        "operation",
        "result",
        "snapshotId",
        "files",
        "bytes",
        "newBytes",
        "durationSeconds",
        "error",
    ] {
        assert!(json.get(key).is_some(), "JSON result lacks {key}: {last}");
    }
    let start = stdout
        .rfind("INFO: === OPERATION SUMMARY ===")
        .unwrap_or_else(|| panic!("no summary block:\n{stdout}"));
    let tail = &stdout[start..];
    assert!(
        tail.len() <= 1024,
        "summary + JSON is {} bytes (> 1 KiB):\n{tail}",
        tail.len()
    );
    assert!(tail.contains("INFO: === Done ==="), "{tail}");
    let code = out.status.code().unwrap_or(-1);
    assert!(
        tail.contains(&format!("INFO: EXIT_CODE: {code}")),
        "summary exit code differs from {code}:\n{tail}"
    );
    let success = json["result"] == "success";
    assert_eq!(
        success,
        code == 0,
        "JSON result vs exit code {code}: {last}"
    );
    MoverRun {
        code,
        stdout,
        stderr,
        json,
    }
}

/// A scratch layout like the mover pod's: data, restore target, cache, repository.
pub struct Scene {
    /// Owns everything.
    pub tmp: tempfile::TempDir,
    /// The source volume (`/data`).
    pub data: PathBuf,
    /// The destination volume (`/restore/data`).
    pub restore: PathBuf,
    /// The cache volume (`/cache`).
    pub cache: PathBuf,
    /// A filesystem repository location (not created).
    pub repo: PathBuf,
}

impl Default for Scene {
    fn default() -> Self {
        Self::new()
    }
}

impl Scene {
    /// Creates data, restore and cache directories; the repository directory is left absent.
    pub fn new() -> Scene {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let restore = tmp.path().join("restore/data");
        let cache = tmp.path().join("cache");
        for d in [&data, &restore, &cache] {
            std::fs::create_dir_all(d).unwrap();
        }
        let repo = tmp.path().join("repo");
        Scene {
            tmp,
            data,
            restore,
            cache,
            repo,
        }
    }

    /// The Secret + controller variables of a ReplicationSource job on a filesystem repository.
    pub fn backup_env(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("DATA_DIR".into(), self.data.display().to_string());
        m.insert("KOPIA_CACHE_DIR".into(), self.cache.display().to_string());
        m.insert("KOPIA_PASSWORD".into(), PASSWORD.into());
        m.insert(
            "KOPIA_REPOSITORY".into(),
            format!("filesystem://{}", self.repo.display()),
        );
        m.insert("KOPIA_OVERRIDE_USERNAME".into(), "app".into());
        m.insert("KOPIA_OVERRIDE_HOSTNAME".into(), "media".into());
        m.insert("KOPIA_CACHE_CAPACITY_BYTES".into(), "1073741824".into());
        m
    }

    /// The variables of a ReplicationDestination job (same identity, discovery on).
    pub fn restore_env(&self) -> BTreeMap<String, String> {
        let mut m = self.backup_env();
        m.insert("DATA_DIR".into(), self.restore.display().to_string());
        m.insert("KOPIA_DISCOVER_SNAPSHOTS".into(), "true".into());
        m
    }
}

/// A mover command with exactly `env` (plus `PATH`, and `TZ=UTC` as in a pod), as a Job
/// would start it.
pub fn mover_cmd(args: &[&str], env: &BTreeMap<String, String>) -> Command {
    let mut c = Command::new(bin("arkiv-mover"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TZ", "UTC")
        .args(args)
        .envs(env);
    c
}

/// Runs the mover to completion.
pub fn run_mover(args: &[&str], env: &BTreeMap<String, String>) -> MoverRun {
    let out = mover_cmd(args, env).output().expect("spawn arkiv-mover");
    parse_output(&out)
}

/// Sets `KEY=VALUE` pairs on a copy of `env`.
pub fn with(env: &BTreeMap<String, String>, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = env.clone();
    for (k, v) in extra {
        m.insert((*k).to_owned(), (*v).to_owned());
    }
    m
}

/// Writes a small tree (a few KiB; `variant` changes contents): files in nested
/// directories, an empty file, an empty directory, a symlink, several modes.
pub fn small_tree(dir: &Path, variant: u32) {
    let w = |rel: &str, body: String, mode: u32| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(body.as_bytes()).unwrap();
        drop(f);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    w("hello.txt", format!("hello, variant {variant}\n"), 0o644);
    w("empty.txt", String::new(), 0o600);
    w(
        "docs/readme.md",
        "# readme\n".repeat(50 + variant as usize),
        0o640,
    );
    w(
        "docs/deep/er/file.bin",
        (0..3000u32)
            .map(|i| char::from(b'a' + ((i * 7 + variant) % 26) as u8))
            .collect(),
        0o755,
    );
    w(&format!("only-in-v{variant}.txt"), "x\n".into(), 0o644);
    std::fs::create_dir_all(dir.join("empty-dir")).unwrap();
    let link = dir.join("link-to-hello");
    if link.symlink_metadata().is_err() {
        std::os::unix::fs::symlink("hello.txt", &link).unwrap();
    }
    // Deterministic mtimes (seconds) so manifests compare across runs.
    for (i, rel) in [
        "hello.txt",
        "empty.txt",
        "docs/readme.md",
        "docs/deep/er/file.bin",
    ]
    .iter()
    .enumerate()
    {
        let t = filetime_from_secs(1_700_000_000 + i as i64 * 3600 + variant as i64);
        set_mtime(&dir.join(rel), t);
    }
}

fn filetime_from_secs(s: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(s).unwrap())
}

fn set_mtime(p: &Path, t: std::time::SystemTime) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(t).unwrap();
}

/// Empties a directory (keeps the directory itself).
pub fn clear_dir(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.symlink_metadata().unwrap().is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
}

/// The tree manifest without the root line (the root's mtime belongs to the volume).
pub fn manifest_without_root(dir: &Path) -> String {
    crate::tree_manifest(dir)
        .lines()
        .filter(|l| !l.starts_with("dir     .\t"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// sha256 of every file (and the list of every path) under `dir`: a repository's bytes.
pub fn tree_digest(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(rel, "dir".into());
                stack.push(p);
            } else {
                let data = std::fs::read(&p).unwrap();
                out.insert(rel, hex::encode(Sha256::digest(&data)));
            }
        }
    }
    out
}

/// Snapshots in a filesystem repository as `arkiv snapshot list --all --json` sees them.
pub fn list_snapshots(repo: &Path) -> Vec<serde_json::Value> {
    let out =
        crate::run_ok(crate::arkiv(repo, PASSWORD).args(["snapshot", "list", "--all", "--json"]));
    serde_json::from_slice::<Vec<serde_json::Value>>(&out).unwrap()
}

/// `host:port` of the test S3 server (`ARKIV_S3_ENDPOINT`, set by `.ci/s3-server.sh start`),
/// or `None` after a loud SKIPPED message; a missing server fails under `CI=true`.
pub fn s3_endpoint(test: &str) -> Option<String> {
    crate::s3::endpoint(test)
}

pub use crate::s3::create_bucket;

/// A bucket name unique to this process.
pub fn unique_bucket(test: &str) -> String {
    format!(
        "arkiv-{}-{}",
        test.replace('_', "-").to_ascii_lowercase(),
        std::process::id()
    )
}

/// Points `env` at `s3://bucket/prefix` on the test server (plain HTTP, dummy credentials),
/// with the variables VolSync copies from the Secret.
pub fn s3_env(
    env: &BTreeMap<String, String>,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
) -> BTreeMap<String, String> {
    with(
        env,
        &[
            ("KOPIA_REPOSITORY", &format!("s3://{bucket}/{prefix}")),
            ("KOPIA_S3_ENDPOINT", &format!("http://{endpoint}")),
            ("KOPIA_S3_DISABLE_TLS", "true"),
            ("AWS_ACCESS_KEY_ID", "arkiv-test"),
            ("AWS_SECRET_ACCESS_KEY", "arkiv-test"),
            ("AWS_REGION", "us-east-1"),
        ],
    )
}
