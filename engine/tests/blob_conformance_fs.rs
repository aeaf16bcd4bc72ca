//! The blob-storage conformance suite against the filesystem backend.
//!
//! Also checks the kopia layout on disk (sharded paths, `.f` suffix).

#[path = "support/conformance.rs"]
mod conformance;

use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::filesystem::FilesystemStorage;
use arkiv_format::ids::BlobId;
use bytes::Bytes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FilesystemStorage::create(dir.path().join("repo")).expect("create");
    conformance::run_conformance(&s).await;
    conformance::pagination(&s, 1_100).await;
    conformance::large_blob(&s, 12 * 1024 * 1024).await;
}

/// A storage reopened from disk sees what the first one wrote (layout read from `.shards`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_reopened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("repo");
    let s = FilesystemStorage::create(&path).expect("create");
    s.put(
        &BlobId::new("p0123456789abcdef-s1"),
        Bytes::from_static(b"x"),
    )
    .await
    .expect("put");
    drop(s);
    let s = FilesystemStorage::open(&path).expect("open");
    assert_eq!(s.list("p").await.expect("list").len(), 1);
    s.delete(&BlobId::new("p0123456789abcdef-s1"))
        .await
        .expect("delete");
    conformance::run_conformance(&s).await;
}
