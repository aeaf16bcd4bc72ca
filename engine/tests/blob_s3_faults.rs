//! S3 under faults: a local proxy in front of the S3 test server injects 5xx, resets and
//! stalls. The client must get through within its retry budget (the S3 backend's one retry
//! loop, configured by `RetryOptions`), or fail with a `Transient` error naming the endpoint
//! and how long it tried.

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
#[path = "support/s3env.rs"]
mod s3env;

use std::time::{Duration, Instant};

use arkiv_engine::ErrorKind;
use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::s3::{RetryOptions, S3Storage};
use arkiv_format::ids::BlobId;
use bytes::Bytes;
use fault_proxy::{Action, FaultProxy};

/// A short budget: 3 retries, 10–50 ms backoff, 1 s per request.
fn short_retry() -> RetryOptions {
    let mut r = RetryOptions::default();
    r.max_retries = 3;
    r.init_backoff = Duration::from_millis(10);
    r.max_backoff = Duration::from_millis(50);
    r.retry_timeout = Duration::from_secs(10);
    r.request_timeout = Duration::from_secs(1);
    r.connect_timeout = Duration::from_secs(1);
    r
}

/// A bucket on the real server, and a storage that reaches it through `proxy`.
async fn through_proxy(ep: &str, test: &str, proxy: &FaultProxy, retry: RetryOptions) -> S3Storage {
    let bucket = s3env::unique_bucket(test);
    s3env::create_bucket(ep, &bucket).await;
    let mut o = s3env::options(&proxy.endpoint(), &bucket, "repo");
    o.retry = retry;
    S3Storage::new(o).expect("storage")
}

#[tokio::test]
async fn transient_faults_are_retried_within_budget() {
    let Some(ep) = s3env::s3_endpoint("transient_faults_are_retried_within_budget") else {
        return;
    };
    let proxy = FaultProxy::start(&ep, vec![], Action::Pass).await;
    let s = through_proxy(&ep, "faults-retried", &proxy, short_retry()).await;
    let id = BlobId::new("p0001-s1");
    let blob = Bytes::from(vec![7u8; 100_000]);

    // put: 503 SlowDown, 500, connection reset, then through.
    proxy.push(&[Action::Status(503), Action::Status(500), Action::Reset]);
    s.put(&id, blob.clone())
        .await
        .expect("put retried through faults");
    assert_eq!(
        (proxy.requests(), proxy.faults()),
        (4, 3),
        "{:?}",
        proxy.log()
    );

    // get (whole and ranged), head and list, each after two faults.
    proxy.reset_counters();
    proxy.push(&[Action::Reset, Action::Status(503)]);
    assert_eq!(s.get(&id, None).await.expect("get"), blob);
    proxy.push(&[Action::Status(500), Action::Reset]);
    assert_eq!(s.get(&id, Some(10..20)).await.expect("range").len(), 10);
    proxy.push(&[Action::Status(503), Action::Status(503)]);
    assert_eq!(s.get_metadata(&id).await.expect("head").length, 100_000);
    proxy.push(&[Action::Reset, Action::Status(500)]);
    assert_eq!(s.list("p").await.expect("list").len(), 1);
    proxy.push(&[Action::Status(503), Action::Status(500)]);
    s.delete(&id).await.expect("delete");
    assert_eq!(
        (proxy.requests(), proxy.faults()),
        (15, 10),
        "{:?}",
        proxy.log()
    );

    // A DELETE whose connection dropped after sending is resent too (S3 deletes are
    // idempotent; object_store's own loop would not resend it).
    s.put(&id, blob.clone()).await.expect("put");
    proxy.reset_counters();
    proxy.push(&[Action::Reset]);
    s.delete(&id).await.expect("delete retried through a reset");
    assert_eq!(proxy.requests(), 2, "{:?}", proxy.log());
    let e = s.get(&id, None).await.expect_err("deleted");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// Responses whose body is cut short (a GET's data, a LIST page's XML) are fetched again.
#[tokio::test]
async fn truncated_bodies_are_retried() {
    let Some(ep) = s3env::s3_endpoint("truncated_bodies_are_retried") else {
        return;
    };
    let proxy = FaultProxy::start(&ep, vec![], Action::Pass).await;
    let s = through_proxy(&ep, "faults-truncated", &proxy, short_retry()).await;
    let id = BlobId::new("p0002-s1");
    let blob = Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>());
    s.put(&id, blob.clone()).await.expect("put");
    for i in 0..3 {
        s.put(
            &BlobId::new(format!("q000{i}-s1")),
            Bytes::from_static(b"x"),
        )
        .await
        .expect("put");
    }

    proxy.reset_counters();
    proxy.push(&[Action::Truncate]);
    assert_eq!(s.get(&id, None).await.expect("get"), blob);
    proxy.push(&[Action::Truncate]);
    assert_eq!(
        s.get(&id, Some(1000..101_000)).await.expect("range"),
        blob.slice(1000..101_000)
    );
    proxy.push(&[Action::Truncate]);
    assert_eq!(s.list("").await.expect("list").len(), 4);
    assert_eq!(
        (proxy.requests(), proxy.faults()),
        (6, 3),
        "one retry per cut body: {:?}",
        proxy.log()
    );
}

#[tokio::test]
async fn stalled_requests_time_out_and_are_retried() {
    let Some(ep) = s3env::s3_endpoint("stalled_requests_time_out_and_are_retried") else {
        return;
    };
    let proxy = FaultProxy::start(&ep, vec![], Action::Pass).await;
    let s = through_proxy(&ep, "faults-stall", &proxy, short_retry()).await;
    let id = BlobId::new("q0001-s1");
    s.put(&id, Bytes::from_static(b"hello")).await.expect("put");

    proxy.reset_counters();
    proxy.push(&[Action::Stall(Duration::from_secs(5))]);
    let start = Instant::now();
    assert_eq!(
        &s.get(&id, None).await.expect("get after stall")[..],
        b"hello"
    );
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "stall not cut by the 1 s timeout: {took:?}"
    );
    assert_eq!(proxy.requests(), 2, "{:?}", proxy.log());

    // Stalled PUTs are retried too (object_store treats PUT as idempotent).
    proxy.push(&[Action::Stall(Duration::from_secs(5))]);
    s.put(&id, Bytes::from_static(b"again"))
        .await
        .expect("put after stall");
    assert_eq!(&s.get(&id, None).await.expect("get")[..], b"again");
}

#[tokio::test]
async fn exhausted_budget_fails_cleanly_naming_the_endpoint() {
    let Some(ep) = s3env::s3_endpoint("exhausted_budget_fails_cleanly_naming_the_endpoint") else {
        return;
    };
    let proxy = FaultProxy::start(&ep, vec![], Action::Pass).await;
    let s = through_proxy(&ep, "faults-exhausted", &proxy, short_retry()).await;

    proxy.set_then(Action::Status(503));
    let start = Instant::now();
    let e = s
        .get(&BlobId::new("p1"), None)
        .await
        .expect_err("always 503");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&proxy.endpoint()), "names the endpoint: {msg}");
    assert!(msg.contains("503"), "names the error: {msg}");
    assert!(
        msg.contains("gave up after") && msg.contains("4 attempts"),
        "says how long and how often it tried: {msg}"
    );
    assert_eq!(proxy.requests(), 4, "1 try + 3 retries: {:?}", proxy.log());

    proxy.reset_counters();
    proxy.set_then(Action::Reset);
    let e = s
        .put(&BlobId::new("p1"), Bytes::from_static(b"x"))
        .await
        .expect_err("always reset");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains(&proxy.endpoint()), "{e}");
    assert_eq!(proxy.requests(), 4, "{:?}", proxy.log());

    // 403 is not retried and is not transient.
    proxy.reset_counters();
    proxy.set_then(Action::Status(403));
    let e = s.list("").await.expect_err("forbidden");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_eq!(proxy.requests(), 1);
}

/// Needs no S3 server: nothing listens on the endpoint.
#[tokio::test]
async fn unreachable_endpoint_is_transient_and_named() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let endpoint = format!("127.0.0.1:{port}");
    let mut o = s3env::options(&endpoint, "bucket", "");
    o.retry = short_retry();
    o.retry.max_retries = 1;
    let s = S3Storage::new(o).expect("storage");
    let start = Instant::now();
    let e = s
        .get(&BlobId::new("kopia.repository"), None)
        .await
        .expect_err("refused");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains(&endpoint), "{e}");
}
