//! The blob-storage conformance suite against memory, S3 (moto) and B2 (its S3 mapping, moto
//! standing in for the endpoint); the filesystem case lives in `blob_conformance_fs.rs`.

#[path = "support/conformance.rs"]
mod conformance;
#[path = "support/s3env.rs"]
mod s3env;

use std::sync::Arc;
use std::time::Duration;

use arkiv_engine::ErrorKind;
use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::b2::B2Options;
use arkiv_engine::blob::faulty::{FaultyStorage, Op};
use arkiv_engine::blob::memory::MemoryStorage;
use arkiv_engine::blob::s3::S3Storage;
use arkiv_engine::clock::SystemClock;
use arkiv_format::ids::BlobId;
use bytes::Bytes;

const LARGE: usize = 12 * 1024 * 1024;

#[tokio::test]
async fn memory() {
    let s = MemoryStorage::new(Arc::new(SystemClock));
    conformance::run_conformance(&s).await;
    conformance::pagination(&s, 1_100).await;
    conformance::large_blob(&s, LARGE).await;
}

/// Decorators must keep the contract: a fault-free, delaying `FaultyStorage` over memory.
#[tokio::test]
async fn memory_through_faulty_with_delays() {
    let s = FaultyStorage::new(MemoryStorage::default());
    for op in [Op::Get, Op::Put, Op::List] {
        s.delay(op, "", Duration::from_millis(2), 50);
    }
    conformance::run_conformance(&s).await;
    assert!(s.total_calls() > 100);
    assert_eq!(s.injected(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_with_prefix() {
    let Some(ep) = s3env::s3_endpoint("s3_with_prefix") else {
        return;
    };
    let s = s3env::fresh_storage(&ep, "s3-with-prefix", "team/app1").await;
    assert_eq!(s.prefix(), "team/app1/");
    conformance::run_conformance(&s).await;
    conformance::large_blob(&s, LARGE).await;

    // Key layout: prefix + blob ID, seen from a storage rooted at the bucket.
    s.put(&BlobId::new("p0123-s1"), Bytes::from_static(b"x"))
        .await
        .expect("put");
    let root = S3Storage::new(s3env::options(&ep, s.bucket(), "")).expect("root storage");
    let keys: Vec<String> = root
        .list("")
        .await
        .expect("list root")
        .into_iter()
        .map(|m| m.id.into_string())
        .collect();
    assert_eq!(keys, ["team/app1/p0123-s1"]);
    // Kopia's storage-config object is not a blob.
    root.put(
        &BlobId::new("team/app1/.storageconfig"),
        Bytes::from_static(b"{}"),
    )
    .await
    .expect("put");
    assert_eq!(s.list("").await.expect("list").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_root_and_pagination() {
    let Some(ep) = s3env::s3_endpoint("s3_bucket_root_and_pagination") else {
        return;
    };
    let s = s3env::fresh_storage(&ep, "s3-root", "").await;
    assert_eq!(s.describe(), format!("s3://{}/", s.bucket()));
    conformance::run_conformance(&s).await;
    conformance::pagination(&s, 1_100).await;
}

/// B2 through its S3-compatible API: [`B2Options`] mapped to the S3 backend, against moto
/// standing in for B2's endpoint; keys are prefix + blob ID as in Kopia's B2 storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b2_through_s3_endpoint() {
    let Some(ep) = s3env::s3_endpoint("b2_through_s3_endpoint") else {
        return;
    };
    let bucket = s3env::unique_bucket("b2");
    s3env::create_bucket(&ep, &bucket).await;
    let mut o = B2Options::new(&bucket, "arkiv-test", "arkiv-test");
    o.prefix = "kopia/".into();
    o.s3_endpoint = Some(format!("http://{ep}"));
    let s = S3Storage::new(o.s3_options().await.expect("s3 options")).expect("storage");
    conformance::run_conformance(&s).await;
    s.put(&BlobId::new("q0123-s1"), Bytes::from_static(b"x"))
        .await
        .expect("put");
    let root = S3Storage::new(s3env::options(&ep, &bucket, "")).expect("root storage");
    let keys: Vec<String> = root
        .list("")
        .await
        .expect("list root")
        .into_iter()
        .map(|m| m.id.into_string())
        .collect();
    assert_eq!(keys, ["kopia/q0123-s1"]);
}

#[tokio::test]
async fn s3_missing_bucket() {
    let Some(ep) = s3env::s3_endpoint("s3_missing_bucket") else {
        return;
    };
    let s = S3Storage::new(s3env::options(&ep, "arkiv-no-such-bucket", "p")).expect("storage");
    let e = s.check_bucket().await.expect_err("missing bucket");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().contains(&ep),
        "message names the endpoint: {e}"
    );
}
