//! The blob-storage conformance suite against the backends that need a server other than S3:
//! WebDAV (rclone's server) and Azure Blob (Azurite), both started by `.ci/servers.sh` on
//! loopback.

#[path = "support/conformance.rs"]
mod conformance;
#[path = "support/servers.rs"]
mod servers;

use std::path::Path;

use arkiv_engine::ErrorKind;
use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::cloud::CloudStorage;
use arkiv_engine::blob::filesystem::FilesystemStorage;
use arkiv_engine::blob::webdav::WebDavStorage;
use arkiv_format::ids::BlobId;
use bytes::Bytes;

const LARGE: usize = 12 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_conformance() {
    let Some((s, _)) = servers::fresh_webdav("webdav_conformance").await else {
        return;
    };
    conformance::run_conformance(&s).await;
    conformance::large_blob(&s, LARGE).await;
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(
                    p.strip_prefix(root)
                        .expect("below root")
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The tree a WebDAV storage writes is Kopia's sharded filesystem layout: `.shards` with
/// `[1,3]`, blob IDs longer than 20 characters split 1+3, `.f` suffixes, nothing else; copied
/// to a local directory it opens with the filesystem backend and reads the same blobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_tree_is_kopia_sharded_layout() {
    let Some((s, name)) = servers::fresh_webdav("webdav_layout").await else {
        return;
    };
    let Some(root) = servers::server_var("webdav_layout", "ARKIV_WEBDAV_ROOT") else {
        return;
    };
    let ids = [
        "kopia.repository",
        "p0123456789abcdef0123456789abcdef-s1f2e3d4c5b6a7988",
        "xn0_0123456789abcdef0123456789abcdef-s1f2e3d4c5b6a7988-c1",
        "_log_20260101000000_abcd_1_2_0_ff",
        "q0123456789abcdef0",
    ];
    for (i, id) in ids.iter().enumerate() {
        s.put(&BlobId::new(*id), Bytes::from(vec![i as u8; 10 + i]))
            .await
            .expect("put");
    }
    let dir = Path::new(&root).join(&name);
    assert_eq!(
        tree(&dir),
        [
            ".shards",
            "_/log/_20260101000000_abcd_1_2_0_ff.f",
            "kopia.repository.f",
            "p/012/3456789abcdef0123456789abcdef-s1f2e3d4c5b6a7988.f",
            "q0123456789abcdef0.f",
            "x/n0_/0123456789abcdef0123456789abcdef-s1f2e3d4c5b6a7988-c1.f",
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".shards")).expect(".shards"),
        "{\"default\":[1,3],\"maxNonShardedLength\":20}\n"
    );
    // Copied to a filesystem path, the filesystem backend reads the same blobs.
    let copy = tempfile::tempdir().expect("tempdir");
    copy_tree(&dir, copy.path());
    let fs = FilesystemStorage::open(copy.path()).expect("open copy");
    let listed: Vec<String> = fs
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.id.into_string())
        .collect();
    let mut want: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(listed, want);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            fs.get(&BlobId::new(*id), None).await.expect("get"),
            vec![i as u8; 10 + i]
        );
    }
    // And a WebDAV storage opened on the tree lists the same.
    let o = servers::webdav_options("webdav_layout", &name).expect("options");
    let reopened = WebDavStorage::open(o).await.expect("open");
    assert_eq!(reopened.shard_parameters(), s.shard_parameters());
    assert_eq!(reopened.list("").await.expect("list").len(), ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_errors_name_backend_endpoint_and_blob_without_password() {
    let Some(mut o) = servers::webdav_options("webdav_errors", &servers::unique("errors")) else {
        return;
    };
    let password = o.password.clone().unwrap_or_default();
    o.password = Some("wrong-password-xyz".into());
    o.max_retries = 0;
    let e = WebDavStorage::open(o.clone())
        .await
        .expect_err("wrong password");
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Auth, "{msg}");
    assert!(msg.contains("webdav") && msg.contains(&o.url), "{msg}");
    assert!(
        !msg.contains("wrong-password-xyz") && !msg.contains(&password),
        "{msg}"
    );

    let Some((s, _)) = servers::fresh_webdav("webdav_errors").await else {
        return;
    };
    let e = s
        .get(&BlobId::new("pmissing42"), None)
        .await
        .expect_err("missing");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("pmissing42"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_conformance() {
    let Some(s) = servers::fresh_azure("azure_conformance") else {
        return;
    };
    conformance::run_conformance(&s).await;
    conformance::pagination(&s, 1_100).await;
    conformance::large_blob(&s, LARGE).await;
    // Key layout: prefix + blob ID (Kopia's `getObjectNameString`), seen from the root.
    s.put(&BlobId::new("p0123-s1"), Bytes::from_static(b"x"))
        .await
        .expect("put");
    let mut root = servers::azure_options("azure_conformance").expect("options");
    let prefix = s.prefix().to_owned();
    root.prefix = String::new();
    let root = CloudStorage::azure(root).expect("root");
    let keys: Vec<String> = root
        .list(&format!("{prefix}p0"))
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.id.into_string())
        .collect();
    assert_eq!(keys, [format!("{prefix}p0123-s1")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_missing_container_and_bad_key() {
    let Some(mut o) = servers::azure_options("azure_missing") else {
        return;
    };
    let endpoint = o.endpoint.clone().unwrap_or_default();
    o.container = "arkiv-no-such-container".into();
    let e = CloudStorage::azure(o.clone())
        .expect("storage")
        .check_container()
        .await
        .expect_err("missing container");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains(&endpoint), "{e}");
    assert!(
        e.to_string().contains("azure://arkiv-no-such-container"),
        "{e}"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            std::fs::create_dir_all(&dst).expect("mkdir");
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).expect("copy");
        }
    }
}
