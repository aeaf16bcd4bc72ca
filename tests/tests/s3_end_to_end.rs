//! Scenario: every arkiv command on an S3 repository (the real S3 server `.ci/run` starts):
//! create, snapshot, list, restore, verify; and the kopia fixtures uploaded as objects with
//! kopia's S3 key layout (prefix + blob ID; no sharding, no `.f`) list and restore exactly
//! as from the filesystem.

use std::path::Path;
use std::sync::Arc;

use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::s3::{S3Options, S3Storage};
use arkiv_format::ids::BlobId;
use arkiv_tests::*;
use serde_json::Value;

#[test]
fn create_snapshot_list_restore_verify_on_s3() {
    let Some(ep) = s3::endpoint("create_snapshot_list_restore_verify_on_s3") else {
        return;
    };
    let bucket = s3::fresh_bucket(&ep, "e2e");
    let pw = "s3-password";
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_tree(&data, 1);
    run_ok(s3::arkiv(&ep, &bucket, "team/app1", pw).args([
        "repository",
        "create",
        "--override-username",
        "u",
        "--override-hostname",
        "h",
    ]));
    // a second create over the same location is refused
    let again = run(s3::arkiv(&ep, &bucket, "team/app1/", pw).args(["repository", "create"]));
    assert_eq!(
        again.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let out = run_ok(
        s3::arkiv(&ep, &bucket, "team/app1", pw)
            .args(["snapshot", "create"])
            .arg(&data)
            .args(["--source", "u@h:/data", "--json"]),
    );
    let summary: Value = serde_json::from_slice(&out).unwrap();
    let list: Vec<Value> = serde_json::from_slice(&run_ok(
        s3::arkiv(&ep, &bucket, "team/app1", pw).args(["snapshot", "list", "--all", "--json"]),
    ))
    .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], summary["snapshotId"]);
    assert_eq!(list[0]["rootEntry"]["obj"], summary["rootObject"]);
    let restored = tmp.path().join("restored");
    run_ok(
        s3::arkiv(&ep, &bucket, "team/app1", pw)
            .args(["restore", "latest"])
            .arg(&restored),
    );
    assert_eq!(tree_manifest(&restored), tree_manifest(&data));
    let v = run(s3::arkiv(&ep, &bucket, "team/app1", pw).args([
        "verify",
        "--verify-files-percent",
        "100",
    ]));
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    // keys follow kopia's layout: prefix + blob ID
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = S3Storage::new(options(&ep, &bucket, "")).unwrap();
    let keys = rt.block_on(root.list("")).unwrap();
    assert!(
        keys.iter()
            .any(|m| m.id.as_str() == "team/app1/kopia.repository")
    );
    assert!(keys.iter().all(|m| m.id.as_str().starts_with("team/app1/")));
    assert!(
        keys.iter()
            .any(|m| m.id.as_str().starts_with("team/app1/xn0_"))
    );
}

fn options(ep: &str, bucket: &str, prefix: &str) -> S3Options {
    let env: Vec<(String, String)> = s3::env(ep, bucket, prefix);
    let get = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    // the CLI's own mapping of the URL and variables
    arkiv_mover::connect::s3_env::s3_options_from_env(&format!("s3://{bucket}/{prefix}"), &get)
        .unwrap()
}

/// Uploads a filesystem fixture repository as S3 objects: blob ID = relative path with the
/// shard directories joined and `.f` removed.
fn upload_fixture(rt: &tokio::runtime::Runtime, storage: Arc<S3Storage>, dir: &Path) -> usize {
    let mut n = 0;
    for f in blob_files(dir, "") {
        let rel = f
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .replace('/', "");
        let id = rel.strip_suffix(".f").unwrap().to_owned();
        let data = std::fs::read(&f).unwrap();
        rt.block_on(storage.put(&BlobId::new(id), bytes::Bytes::from(data)))
            .unwrap();
        n += 1;
    }
    n
}

#[test]
fn kopia_fixtures_uploaded_to_a_bucket_read_like_the_filesystem() {
    let Some(ep) = s3::endpoint("kopia_fixtures_uploaded_to_a_bucket") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (repo, snaps) in [
        (
            "repo-a",
            vec![
                ("bd35e5981801e93285ddc62a7548805e", "tree-v1.manifest.txt"),
                ("aa1bfb5fda1314ce3dcc1f97672d35e8", "tree-v2.manifest.txt"),
            ],
        ),
        (
            "repo-b",
            vec![("67281751b5f1ae904b6abf7e6e1ca7db", "tree-v1.manifest.txt")],
        ),
    ] {
        let bucket = s3::fresh_bucket(&ep, repo);
        let storage = Arc::new(S3Storage::new(options(&ep, &bucket, "kopia/")).unwrap());
        let uploaded = upload_fixture(&rt, storage, &fixtures_dir().join(repo));
        assert!(uploaded >= 8, "uploaded only {uploaded} blobs");
        let ours: Vec<Value> = serde_json::from_slice(&run_ok(
            s3::arkiv(&ep, &bucket, "kopia", FIXTURE_PASSWORD)
                .args(["snapshot", "list", "--all", "--json"]),
        ))
        .unwrap();
        let fs_list: Vec<Value> = serde_json::from_slice(&run_ok(
            arkiv(&fixtures_dir().join(repo), FIXTURE_PASSWORD)
                .args(["snapshot", "list", "--all", "--json"]),
        ))
        .unwrap();
        assert_eq!(
            ours, fs_list,
            "{repo}: S3 listing equals the filesystem listing"
        );
        let tmp = tempfile::tempdir().unwrap();
        for (id, tree) in snaps {
            let target = tmp.path().join(id);
            run_ok(
                s3::arkiv(&ep, &bucket, "kopia", FIXTURE_PASSWORD)
                    .args(["restore", id])
                    .arg(&target),
            );
            let want = std::fs::read_to_string(fixtures_dir().join("expected").join(tree)).unwrap();
            assert_eq!(tree_manifest(&target), want, "{repo} {id}");
        }
        let v = run(s3::arkiv(&ep, &bucket, "kopia", FIXTURE_PASSWORD).args([
            "verify",
            "--verify-files-percent",
            "100",
        ]));
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    }
}
