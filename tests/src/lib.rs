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

pub mod backends;
pub mod mover;
pub mod outage_proxy;
pub mod prom;

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

/// A `Command` for the `arkiv` binary with a clean, explicit environment. The local cache
/// is off (`ARKIV_CACHE_DIR=none`: tests that damage a repository must see the damage, and
/// copies of one fixture share a repository ID); a test that wants it sets the variable.
pub fn arkiv(repo: &Path, password: &str) -> Command {
    let mut c = Command::new(bin("arkiv"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ARKIV_CACHE_DIR", "none")
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

/// Creates a repository with the `arkiv` CLI at `repo` (filesystem).
pub fn create_repo(repo: &Path, password: &str) {
    run_ok(arkiv(repo, password).args(["repository", "create"]).args([
        "--override-username",
        "tester",
        "--override-hostname",
        "testhost",
    ]));
}

/// Runs `arkiv snapshot create DIR --json` and returns the parsed summary.
pub fn snapshot_json(repo: &Path, password: &str, dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = run_ok(
        arkiv(repo, password)
            .args(["snapshot", "create"])
            .arg(dir)
            .arg("--json")
            .args(extra),
    );
    serde_json::from_slice(&out).expect("snapshot create --json prints one JSON object")
}

/// Blob files (`*.f`) under a filesystem repository whose blob ID starts with `prefix`.
pub fn blob_files(repo: &Path, prefix: &str) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, prefix, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('/', "");
                if rel.starts_with(prefix) && rel.ends_with(".f") {
                    out.push(p);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(repo, repo, prefix, &mut out);
    out.sort();
    out
}

/// Opens a filesystem repository with the engine (for checks the CLI does not print).
pub fn open_repo(
    rt: &tokio::runtime::Runtime,
    repo: &Path,
    password: &str,
) -> arkiv_engine::Repository {
    rt.block_on(async {
        let storage = std::sync::Arc::new(
            arkiv_engine::blob::filesystem::FilesystemStorage::open(repo).unwrap(),
        );
        arkiv_engine::Repository::open(storage, password, arkiv_engine::OpenOptions::default())
            .await
            .unwrap()
    })
}

/// Every content ID reachable from a directory object (listings, chunk lists, file data).
pub fn reachable_contents(
    rt: &tokio::runtime::Runtime,
    repo: &arkiv_engine::Repository,
    root: arkiv_format::ids::ObjectId,
) -> std::collections::BTreeSet<String> {
    use arkiv_format::snapshot::EntryType;
    let mut out = std::collections::BTreeSet::new();
    rt.block_on(async {
        let mut objects = vec![(root, true)];
        while let Some((oid, is_dir)) = objects.pop() {
            // the chunk-list objects of indirect IDs
            let mut o = oid;
            while let Some(list) = o.index_object() {
                out.insert(list.content_id().to_string());
                o = list;
            }
            for c in repo.object_chunks(&oid).await.unwrap() {
                out.insert(c.object.content_id().to_string());
            }
            if is_dir {
                for e in repo.read_dir(&oid).await.unwrap().entries {
                    objects.push((e.object, e.entry_type == EntryType::Directory));
                }
            }
        }
    });
    out
}

/// The test S3 server (moto, started by `.ci/s3-server.sh`), found through
/// `ARKIV_S3_ENDPOINT`. Without it the S3 tests print a loud SKIPPED line — except under
/// `CI=true`, where a missing server is a failure.
pub mod s3 {
    use std::io::{Read, Write};
    use std::path::Path;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// `host:port` of the server, or `None` after a loud message.
    pub fn endpoint(test: &str) -> Option<String> {
        match std::env::var("ARKIV_S3_ENDPOINT")
            .ok()
            .filter(|v| !v.is_empty())
        {
            Some(v) => Some(
                v.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned(),
            ),
            None if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
                "{test}: ARKIV_S3_ENDPOINT is not set under CI=true; .ci/run must start the S3 server"
            ),
            None => {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED {test}: ARKIV_S3_ENDPOINT is not set (start one with `eval \"$(bash .ci/s3-server.sh start)\"`) ***\n"
                );
                None
            }
        }
    }

    /// Creates a fresh, uniquely named bucket (unsigned `PUT /bucket`, which moto accepts).
    pub fn fresh_bucket(endpoint: &str, test: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let bucket = format!(
            "arkiv-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
        .to_lowercase()
        .replace('_', "-");
        create_bucket(endpoint, &bucket);
        bucket
    }

    /// Creates `bucket` with an unsigned `PUT /bucket` (moto accepts it).
    pub fn create_bucket(endpoint: &str, bucket: &str) {
        let mut sock = std::net::TcpStream::connect(endpoint)
            .unwrap_or_else(|e| panic!("connect to S3 server {endpoint}: {e}"));
        write!(
            sock,
            "PUT /{bucket} HTTP/1.1\r\nHost: {endpoint}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        sock.read_to_string(&mut resp).unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "create bucket {bucket}: {resp}"
        );
    }

    /// Environment for an S3 repository `s3://bucket/prefix` on the test server.
    pub fn env(endpoint: &str, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        vec![
            ("ARKIV_REPOSITORY".into(), format!("s3://{bucket}/{prefix}")),
            ("ARKIV_S3_ENDPOINT".into(), endpoint.into()),
            ("ARKIV_S3_DISABLE_TLS".into(), "true".into()),
            ("AWS_ACCESS_KEY_ID".into(), "arkiv-test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "arkiv-test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }

    /// `arkiv` with a clean environment pointed at an S3 repository.
    pub fn arkiv(endpoint: &str, bucket: &str, prefix: &str, password: &str) -> Command {
        let mut c = super::arkiv(Path::new("/nonexistent"), password);
        for (k, v) in env(endpoint, bucket, prefix) {
            c.env(k, v);
        }
        c
    }
}

/// Opens a filesystem repository with the engine (for steps the CLI does not offer, such as
/// deleting snapshot manifests) on a runtime of its own.
pub fn engine_open(
    rt: &tokio::runtime::Runtime,
    repo: &Path,
    password: &str,
) -> arkiv_engine::Repository {
    rt.block_on(async {
        let st = arkiv_engine::blob::filesystem::FilesystemStorage::open(repo).unwrap();
        arkiv_engine::Repository::open(
            std::sync::Arc::new(st),
            password,
            arkiv_engine::OpenOptions::default(),
        )
        .await
        .unwrap()
    })
}

/// Commits one batch of manifest changes made by `fill` (for steps the CLI does not offer).
pub fn engine_manifest_batch(
    rt: &tokio::runtime::Runtime,
    repo: &arkiv_engine::Repository,
    fill: impl FnOnce(&mut arkiv_engine::manifest::ManifestBatch),
) {
    use arkiv_engine::content::writer::ContentWriter;
    use arkiv_engine::manifest::ManifestBatch;
    rt.block_on(async {
        let cw = ContentWriter::new(
            repo.clone(),
            tokio::runtime::Handle::current(),
            "test",
            "test-host",
        )
        .unwrap();
        let mut b = ManifestBatch::default();
        fill(&mut b);
        b.commit_async(&cw).await.unwrap();
        cw.flush_async().await.unwrap();
    });
}

/// Deletes snapshot manifests by ID (what snapshot expiry does).
pub fn engine_delete_snapshots(
    rt: &tokio::runtime::Runtime,
    repo: &arkiv_engine::Repository,
    ids: &[&str],
) {
    let ids: Vec<arkiv_format::ids::ManifestId> = ids
        .iter()
        .map(|s| arkiv_format::ids::ManifestId::new(*s))
        .collect();
    let now = repo.clock().now();
    engine_manifest_batch(rt, repo, move |b| {
        for id in ids {
            b.delete(id, now);
        }
    });
}

/// Writes a snapshot manifest as kopia labels it; returns its ID.
pub fn engine_put_snapshot(
    rt: &tokio::runtime::Runtime,
    repo: &arkiv_engine::Repository,
    manifest: &arkiv_format::snapshot::SnapshotManifest,
) -> String {
    let labels = arkiv_format::snapshot::snapshot_labels(&manifest.source, &manifest.tags);
    let payload = manifest.encode().unwrap();
    let modified = repo.clock().now();
    let (tx, rx) = std::sync::mpsc::channel();
    engine_manifest_batch(rt, repo, move |b| {
        let id = b.put(labels, &payload, modified).unwrap();
        tx.send(id.to_string()).unwrap();
    });
    rx.recv().unwrap()
}
