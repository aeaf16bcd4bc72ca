//! The blob-storage conformance suite against the backends that need a server other than S3:
//! WebDAV (rclone's server), Azure Blob (Azurite) and SFTP (OpenSSH's sshd), all started by
//! `.ci/servers.sh` on loopback.

#[path = "support/conformance.rs"]
mod conformance;
#[path = "support/servers.rs"]
mod servers;

use std::path::Path;

use arkiv_engine::ErrorKind;
use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::cloud::CloudStorage;
use arkiv_engine::blob::filesystem::FilesystemStorage;
use arkiv_engine::blob::rclone::{RcloneOptions, RcloneStorage};
use arkiv_engine::blob::sftp::{KnownHosts, SftpAuth, SftpStorage};
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

/// Blob IDs covering every layout rule: unsharded short IDs, 1+3 sharding, underscores.
const LAYOUT_IDS: [&str; 5] = [
    "kopia.repository",
    "p0123456789abcdef0123456789abcdef-s1f2e3d4c5b6a7988",
    "xn0_0123456789abcdef0123456789abcdef-s1f2e3d4c5b6a7988-c1",
    "_log_20260101000000_abcd_1_2_0_ff",
    "q0123456789abcdef0",
];

/// Writes [`LAYOUT_IDS`] through `s`, then checks that `dir` (where the server keeps them) is
/// Kopia's sharded filesystem layout: `.shards` with `[1,3]`, blob IDs longer than 20
/// characters split 1+3, `.f` suffixes, nothing else; copied to a local directory it opens
/// with the filesystem backend and reads the same blobs.
async fn assert_kopia_sharded_layout(s: &dyn BlobStorage, dir: &Path) {
    for (i, id) in LAYOUT_IDS.iter().enumerate() {
        s.put(&BlobId::new(*id), Bytes::from(vec![i as u8; 10 + i]))
            .await
            .expect("put");
    }
    assert_eq!(
        tree(dir),
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
    copy_tree(dir, copy.path());
    let fs = FilesystemStorage::open(copy.path()).expect("open copy");
    let listed: Vec<String> = fs
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.id.into_string())
        .collect();
    let mut want: Vec<String> = LAYOUT_IDS.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(listed, want);
    for (i, id) in LAYOUT_IDS.iter().enumerate() {
        assert_eq!(
            fs.get(&BlobId::new(*id), None).await.expect("get"),
            vec![i as u8; 10 + i]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_tree_is_kopia_sharded_layout() {
    let Some((s, name)) = servers::fresh_webdav("webdav_layout").await else {
        return;
    };
    let Some(root) = servers::server_var("webdav_layout", "ARKIV_WEBDAV_ROOT") else {
        return;
    };
    assert_kopia_sharded_layout(&s, &Path::new(&root).join(&name)).await;
    // And a WebDAV storage opened on the tree lists the same.
    let o = servers::webdav_options("webdav_layout", &name).expect("options");
    let reopened = WebDavStorage::open(o).await.expect("open");
    assert_eq!(reopened.shard_parameters(), s.shard_parameters());
    assert_eq!(
        reopened.list("").await.expect("list").len(),
        LAYOUT_IDS.len()
    );
}

/// rclone: `rclone serve webdav` over a local remote, started by the backend (the servers
/// script installs rclone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_conformance() {
    if servers::server_var("rclone_conformance", "ARKIV_WEBDAV_URL").is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let o = RcloneOptions::new(dir.path().join("remote").display().to_string());
    let s = RcloneStorage::open(o)
        .await
        .expect("rclone")
        .for_create()
        .await
        .expect("create");
    conformance::run_conformance(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_conformance() {
    let Some((s, _)) = servers::fresh_sftp("sftp_conformance").await else {
        return;
    };
    conformance::run_conformance(&s).await;
    conformance::large_blob(&s, LARGE).await;
}

/// The tree an SFTP storage writes is Kopia's sharded layout (the same rules as WebDAV and
/// the filesystem backend), and no temporary files stay behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_tree_is_kopia_sharded_layout() {
    let Some((s, name)) = servers::fresh_sftp("sftp_layout").await else {
        return;
    };
    let Some(root) = servers::server_var("sftp_layout", "ARKIV_SFTP_ROOT") else {
        return;
    };
    assert_kopia_sharded_layout(&s, &Path::new(&root).join(&name)).await;
    // Reopened (with the password this time, where the server has one), the same blobs.
    let o = servers::sftp_options("sftp_layout", &name, true).expect("options");
    let reopened = SftpStorage::open(o).await.expect("open with password");
    assert_eq!(reopened.shard_parameters(), s.shard_parameters());
    assert_eq!(
        reopened.list("").await.expect("list").len(),
        LAYOUT_IDS.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_errors_name_backend_and_cause_without_secrets() {
    let name = servers::unique("sftp_errors");
    let Some(mut o) = servers::sftp_options("sftp_errors", &name, true) else {
        return;
    };
    o.max_retries = 0;
    // Wrong password: an authentication error naming the location, not the password.
    let mut wrong = o.clone();
    wrong.auth = SftpAuth::Password("wrong-password-xyz".into());
    let e = SftpStorage::open(wrong).await.expect_err("wrong password");
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Auth, "{msg}");
    assert!(
        msg.contains(&o.describe()) && msg.contains(&o.username),
        "{msg}"
    );
    assert!(!msg.contains("wrong-password-xyz"), "{msg}");
    // A host key that is not in the known hosts is refused (as Kopia does).
    let mut unknown = o.clone();
    unknown.known_hosts = KnownHosts::Data("127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEjI1LbgFUR43gE4O4lYNnygKPbWI2DSYL87+hNW3TPn\n".into());
    let e = SftpStorage::open(unknown)
        .await
        .expect_err("unknown host key");
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(e.to_string().contains("host key"), "{e}");
    // Known-hosts data (the file's contents) works like the file.
    let KnownHosts::File(kh) = &o.known_hosts else {
        panic!("test options use a known-hosts file");
    };
    let mut data = o.clone();
    data.known_hosts = KnownHosts::Data(std::fs::read_to_string(kh).expect("known hosts"));
    let s = SftpStorage::create(data).await.expect("known hosts data");
    let e = s
        .get(&BlobId::new("pmissing42"), None)
        .await
        .expect_err("missing");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("pmissing42"), "{e}");
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
