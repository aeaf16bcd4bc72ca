//! The blob-storage conformance suite: every `BlobStorage` must pass it unchanged.
//!
//! It checks the contract stated in `engine/src/blob.rs`: put/get, ranges (and `Corrupt` past
//! the end), `NotFound` for missing blobs, idempotent delete, overwrite, sorted prefix listing
//! (also past 1,000 keys, S3's page size), metadata (length, timestamp near "now"), concurrent
//! puts and large blobs. Each function needs an empty storage namespace.

use std::time::Duration;

use arkiv_engine::ErrorKind;
use arkiv_engine::blob::BlobStorage;
use arkiv_engine::clock::{Clock, SystemClock};
use arkiv_format::ids::BlobId;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

/// How far a backend timestamp may be from the local clock (S3 stores whole seconds).
pub const TIMESTAMP_SLACK: Duration = Duration::from_secs(5);

/// Deterministic pseudo-random bytes (xorshift64*), different per seed.
pub fn data(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

fn id(s: &str) -> BlobId {
    BlobId::new(s)
}

async fn ids(s: &dyn BlobStorage, prefix: &str) -> Vec<String> {
    s.list(prefix)
        .await
        .unwrap_or_else(|e| panic!("list {prefix:?}: {e}"))
        .into_iter()
        .map(|m| m.id.into_string())
        .collect()
}

/// Runs every check except [`pagination`] and [`large_blob`] (slow on real servers; call them
/// separately).
pub async fn run_conformance(s: &dyn BlobStorage) {
    empty_namespace(s).await;
    put_get_metadata(s).await;
    ranges(s).await;
    missing_blobs(s).await;
    overwrite(s).await;
    list_by_prefix(s).await;
    delete(s).await;
    concurrent_puts(s).await;
}

pub async fn empty_namespace(s: &dyn BlobStorage) {
    assert_eq!(
        ids(s, "").await,
        Vec::<String>::new(),
        "{}: not empty",
        s.describe()
    );
}

pub async fn put_get_metadata(s: &dyn BlobStorage) {
    let before = SystemClock.now() - TIMESTAMP_SLACK;
    let blob = data(1, 100_003);
    s.put(&id("pmeta"), blob.clone()).await.expect("put");
    let after = SystemClock.now() + TIMESTAMP_SLACK;
    assert_eq!(s.get(&id("pmeta"), None).await.expect("get"), blob);

    let m = s.get_metadata(&id("pmeta")).await.expect("metadata");
    assert_eq!(m.id, id("pmeta"));
    assert_eq!(m.length, 100_003);
    assert!(
        before <= m.timestamp && m.timestamp <= after,
        "timestamp {} not within {before}..{after}",
        m.timestamp
    );
    let listed = s.list("pmeta").await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].length, 100_003);
    assert!(before <= listed[0].timestamp && listed[0].timestamp <= after);

    // Empty blobs exist and have length 0.
    s.put(&id("pempty"), Bytes::new()).await.expect("put empty");
    assert_eq!(
        s.get(&id("pempty"), None).await.expect("get empty").len(),
        0
    );
    assert_eq!(s.get_metadata(&id("pempty")).await.expect("meta").length, 0);

    for b in ["pmeta", "pempty"] {
        s.delete(&id(b)).await.expect("cleanup");
    }
}

pub async fn ranges(s: &dyn BlobStorage) {
    let blob = data(2, 10_000);
    s.put(&id("rng"), blob.clone()).await.expect("put");
    for r in [
        0..1,
        0..10_000,
        17..4_113,
        9_999..10_000,
        5_000..5_000,
        10_000..10_000,
    ] {
        let got = s
            .get(&id("rng"), Some(r.clone()))
            .await
            .unwrap_or_else(|e| panic!("range {r:?}: {e}"));
        assert_eq!(
            got,
            blob.slice(r.start as usize..r.end as usize),
            "range {r:?}"
        );
    }
    for r in [9_000..10_001, 10_000..10_001, 20_000..20_100] {
        let e = s
            .get(&id("rng"), Some(r.clone()))
            .await
            .expect_err("range past end");
        assert_eq!(e.kind(), ErrorKind::Corrupt, "range {r:?}: {e}");
    }
    let e = s
        .get(&id("rng-missing"), Some(0..10))
        .await
        .expect_err("missing");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    s.delete(&id("rng")).await.expect("cleanup");
}

pub async fn missing_blobs(s: &dyn BlobStorage) {
    let missing = id("pmissing0123");
    let e = s.get(&missing, None).await.expect_err("get missing");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().contains("pmissing0123"),
        "message names the blob: {e}"
    );
    let e = s
        .get_metadata(&missing)
        .await
        .expect_err("metadata missing");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    s.delete(&missing)
        .await
        .expect("deleting a missing blob succeeds");
    assert!(ids(s, "pmissing").await.is_empty());
}

pub async fn overwrite(s: &dyn BlobStorage) {
    s.put(&id("ow"), data(3, 5_000)).await.expect("put 1");
    let second = data(4, 1_234);
    s.put(&id("ow"), second.clone()).await.expect("put 2");
    assert_eq!(s.get(&id("ow"), None).await.expect("get"), second);
    assert_eq!(s.get_metadata(&id("ow")).await.expect("meta").length, 1_234);
    let listed = s.list("ow").await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].length, 1_234);
    s.delete(&id("ow")).await.expect("cleanup");
}

pub async fn list_by_prefix(s: &dyn BlobStorage) {
    let names = [
        "kopia.repository",
        "kopia.repository.backup.x",
        "p0a-s1",
        "p0b-s1",
        "p1c-s1",
        "q00-s2",
        "xn0_aa-s3-c1",
        "xn1_bb-s3-c1",
        "_log_20260101000000_abcd_1_2_0_ff",
    ];
    for (i, n) in names.iter().enumerate() {
        s.put(&id(n), data(10 + i as u64, i + 1))
            .await
            .expect("put");
    }
    let mut all: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    all.sort();
    assert_eq!(ids(s, "").await, all, "list all, sorted");
    assert_eq!(ids(s, "p").await, ["p0a-s1", "p0b-s1", "p1c-s1"]);
    assert_eq!(ids(s, "p0").await, ["p0a-s1", "p0b-s1"]);
    assert_eq!(ids(s, "xn").await, ["xn0_aa-s3-c1", "xn1_bb-s3-c1"]);
    assert_eq!(ids(s, "xn1_").await, ["xn1_bb-s3-c1"]);
    assert_eq!(ids(s, "_log_").await, ["_log_20260101000000_abcd_1_2_0_ff"]);
    assert_eq!(
        ids(s, "kopia.repository").await,
        ["kopia.repository", "kopia.repository.backup.x"],
        "a prefix equal to a whole ID lists that blob"
    );
    assert!(ids(s, "zz").await.is_empty());
    assert!(ids(s, "p0a-s1x").await.is_empty());
    let q = s.list("q").await.expect("list q");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].length, 6, "list reports lengths");
    for n in names {
        s.delete(&id(n)).await.expect("cleanup");
    }
    assert!(ids(s, "").await.is_empty());
}

pub async fn delete(s: &dyn BlobStorage) {
    s.put(&id("del1"), data(5, 10)).await.expect("put");
    s.put(&id("del2"), data(6, 10)).await.expect("put");
    s.delete(&id("del1")).await.expect("delete");
    let e = s.get(&id("del1"), None).await.expect_err("deleted");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(ids(s, "del").await, ["del2"]);
    s.delete(&id("del1"))
        .await
        .expect("second delete is a no-op");
    s.delete(&id("del2")).await.expect("cleanup");
}

pub async fn concurrent_puts(s: &dyn BlobStorage) {
    // Distinct blobs.
    futures::stream::iter(0..32u64)
        .map(|i| async move {
            s.put(
                &id(&format!("cc{i:02}")),
                data(100 + i, 20_000 + i as usize),
            )
            .await
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("concurrent puts");
    let listed = s.list("cc").await.expect("list");
    assert_eq!(listed.len(), 32);
    for (i, m) in listed.iter().enumerate() {
        assert_eq!(m.id.as_str(), format!("cc{i:02}"));
        assert_eq!(m.length, 20_000 + i as u64);
        assert_eq!(
            s.get(&m.id, None).await.expect("get"),
            data(100 + i as u64, 20_000 + i)
        );
    }
    // Racing writers of one ID: the result is exactly one of the writes, never a mix.
    let versions: Vec<Bytes> = (0..8u64).map(|i| data(200 + i, 50_000)).collect();
    futures::stream::iter(versions.iter().cloned())
        .map(|v| async move { s.put(&id("ccsame"), v).await })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await
        .expect("racing puts");
    let got = s.get(&id("ccsame"), None).await.expect("get");
    assert!(versions.contains(&got), "racing puts produced a mixed blob");
    futures::stream::iter(s.list("cc").await.expect("list"))
        .map(|m| async move { s.delete(&m.id).await })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("cleanup");
}

/// More keys than one S3 list page (1,000).
pub async fn pagination(s: &dyn BlobStorage, n: usize) {
    futures::stream::iter(0..n)
        .map(|i| async move { s.put(&id(&format!("pag{i:05}")), data(i as u64, 3)).await })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("puts");
    s.put(&id("paz"), data(0, 1))
        .await
        .expect("put outside prefix");
    let got = ids(s, "pag").await;
    let want: Vec<String> = (0..n).map(|i| format!("pag{i:05}")).collect();
    assert_eq!(got.len(), n);
    assert_eq!(got, want, "every key once, sorted");
    assert_eq!(ids(s, "pa").await.len(), n + 1);
    let sub = want.iter().filter(|k| k.starts_with("pag0100")).count();
    assert_eq!(ids(s, "pag0100").await.len(), sub);
}

/// A blob of `len` bytes (pick one above the backend's multipart threshold where it has one).
pub async fn large_blob(s: &dyn BlobStorage, len: usize) {
    let blob = data(7, len);
    s.put(&id("plarge"), blob.clone()).await.expect("put large");
    assert_eq!(
        s.get_metadata(&id("plarge")).await.expect("meta").length,
        len as u64
    );
    let got = s.get(&id("plarge"), None).await.expect("get large");
    assert!(got == blob, "large blob differs after roundtrip");
    let mid = (len / 2) as u64;
    let r = mid - 1_000..mid + 1_000;
    assert_eq!(
        s.get(&id("plarge"), Some(r.clone())).await.expect("range"),
        blob.slice(r.start as usize..r.end as usize)
    );
    s.delete(&id("plarge")).await.expect("cleanup");
}
