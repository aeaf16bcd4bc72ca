//! Scenario, per storage backend with a test server (WebDAV through rclone's server, Azure
//! through Azurite, rclone through `rclone serve webdav` over a local remote, SFTP through
//! OpenSSH's sshd): the VolSync mover backs up twice and restores an identical tree; the CLI
//! creates a repository, takes a snapshot, verifies every file and restores it. For WebDAV,
//! rclone and SFTP the tree the server holds is Kopia's sharded layout, and a copy of it opens
//! with the filesystem backend.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use arkiv_tests::backends::{self, Location};
use arkiv_tests::mover::{Scene, manifest_without_root, run_mover, small_tree};
use arkiv_tests::*;

fn mover_roundtrip(loc: &Location) {
    let s = Scene::new();
    small_tree(&s.data, 1);
    let env = |base: BTreeMap<String, String>| {
        let mut m = base;
        m.remove("KOPIA_REPOSITORY");
        m.extend(loc.mover.iter().cloned());
        m
    };
    let backup_env = env(s.backup_env());
    let first = run_mover(&["backup"], &backup_env);
    first.expect_code(0);
    assert!(
        first.stdout.contains("creating a new repository"),
        "{}",
        first.all()
    );
    small_tree(&s.data, 2);
    let second = run_mover(&["backup"], &backup_env);
    second.expect_code(0);
    assert!(!second.stdout.contains("creating a new repository"));
    let restored = run_mover(&["restore"], &env(s.restore_env()));
    restored.expect_code(0);
    assert_eq!(restored.json["snapshotId"], second.json["snapshotId"]);
    assert_eq!(
        manifest_without_root(&s.data),
        manifest_without_root(&s.restore)
    );
    // Credentials never reach the log.
    for (k, v) in &loc.mover {
        if k.contains("PASSWORD") || k.contains("KEY") {
            assert!(!first.all().contains(v.as_str()), "{k} leaked");
        }
    }
}

fn cli(loc: &Location) -> Command {
    let mut c = arkiv(Path::new("/nonexistent"), "backend-pw");
    for (k, v) in &loc.cli {
        c.env(k, v);
    }
    c
}

fn cli_create_snapshot_verify_restore(loc: &Location) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_tree(&data, 1);
    run_ok(cli(loc).args([
        "repository",
        "create",
        "--override-username",
        "u",
        "--override-hostname",
        "h",
    ]));
    let again = run(cli(loc).args(["repository", "create"]));
    assert_eq!(
        again.status.code(),
        Some(11),
        "create over a repository is refused"
    );
    run_ok(cli(loc).args(["snapshot", "create"]).arg(&data).args([
        "--source",
        "u@h:/data",
        "--json",
    ]));
    let v = run(cli(loc).args(["verify", "--verify-files-percent", "100"]));
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let restored = tmp.path().join("restored");
    run_ok(cli(loc).args(["restore", "latest"]).arg(&restored));
    assert_eq!(tree_manifest(&restored), tree_manifest(&data));
}

/// The tree on disk is Kopia's sharded filesystem layout; a copy opens with the filesystem
/// backend (through the CLI) and lists the same snapshots.
fn tree_opens_as_filesystem_repository(loc: &Location) {
    let dir = loc.dir.as_ref().expect("directory");
    let shards = std::fs::read_to_string(dir.join(".shards")).expect(".shards");
    assert_eq!(shards, "{\"default\":[1,3],\"maxNonShardedLength\":20}\n");
    assert!(dir.join("kopia.repository.f").is_file());
    assert!(
        std::fs::read_dir(dir.join("p")).expect("p/ shard").count() > 0,
        "pack blobs are sharded under p/"
    );
    let copy = tempfile::tempdir().unwrap();
    copy_tree(dir, copy.path());
    let from_fs: Vec<serde_json::Value> = serde_json::from_slice(&run_ok(
        arkiv(copy.path(), "backend-pw").args(["snapshot", "list", "--all", "--json"]),
    ))
    .unwrap();
    let from_backend: Vec<serde_json::Value> = serde_json::from_slice(&run_ok(
        cli(loc).args(["snapshot", "list", "--all", "--json"]),
    ))
    .unwrap();
    assert_eq!(from_fs.len(), 1);
    assert_eq!(from_fs, from_backend);
}

#[test]
fn webdav_mover_and_cli() {
    let Some(m) = backends::webdav("webdav_mover") else {
        return;
    };
    mover_roundtrip(&m);
    let Some(c) = backends::webdav("webdav_cli") else {
        return;
    };
    cli_create_snapshot_verify_restore(&c);
    tree_opens_as_filesystem_repository(&c);
}

#[test]
fn azure_mover_and_cli() {
    let Some(m) = backends::azure("azure_mover") else {
        return;
    };
    mover_roundtrip(&m);
    let Some(c) = backends::azure("azure_cli") else {
        return;
    };
    cli_create_snapshot_verify_restore(&c);
}

#[test]
fn rclone_mover_and_cli() {
    let base = tempfile::tempdir().unwrap();
    let Some(m) = backends::rclone("rclone_mover", base.path()) else {
        return;
    };
    mover_roundtrip(&m);
    let Some(c) = backends::rclone("rclone_cli", base.path()) else {
        return;
    };
    cli_create_snapshot_verify_restore(&c);
    tree_opens_as_filesystem_repository(&c);
}

#[test]
fn sftp_mover_and_cli() {
    let Some(m) = backends::sftp("sftp_mover") else {
        return;
    };
    mover_roundtrip(&m);
    let Some(c) = backends::sftp("sftp_cli") else {
        return;
    };
    cli_create_snapshot_verify_restore(&c);
    tree_opens_as_filesystem_repository(&c);
}

/// B2 through its S3-compatible API (moto standing in for the endpoint): the mover and the CLI
/// round trips, and the repository the CLI made through `b2://` is the same objects an S3
/// repository at that bucket and prefix reads (Kopia names B2 files and S3 objects alike:
/// prefix + blob ID).
#[test]
fn b2_mover_and_cli() {
    let Some((m, _, _)) = backends::b2("b2_mover") else {
        return;
    };
    mover_roundtrip(&m);
    let Some((c, bucket, prefix)) = backends::b2("b2_cli") else {
        return;
    };
    cli_create_snapshot_verify_restore(&c);
    let endpoint = arkiv_tests::s3::endpoint("b2_cli").expect("endpoint");
    let from_s3: Vec<serde_json::Value> = serde_json::from_slice(&run_ok(
        arkiv_tests::s3::arkiv(&endpoint, &bucket, &prefix, "backend-pw")
            .args(["snapshot", "list", "--all", "--json"]),
    ))
    .unwrap();
    let from_b2: Vec<serde_json::Value> = serde_json::from_slice(&run_ok(
        cli(&c).args(["snapshot", "list", "--all", "--json"]),
    ))
    .unwrap();
    assert_eq!(from_s3.len(), 1);
    assert_eq!(from_s3, from_b2);
}
