//! Finding the test S3 server (moto, started by `.ci/s3-server.sh`) and making buckets on it.
//!
//! `ARKIV_S3_ENDPOINT` (`http://127.0.0.1:PORT`) points at the server. When it is unset the
//! S3 tests skip with a message on the real stderr (not captured by the test harness), except
//! under `CI=true`, where a missing server is a failure.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use arkiv_engine::blob::s3::{S3Options, S3Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `host:port` of the test server, or `None` (after a loud message) to skip.
pub fn s3_endpoint(test: &str) -> Option<String> {
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
            "{test}: ARKIV_S3_ENDPOINT is not set under CI=true; .ci/run must start the S3 \
             server with `eval \"$(.ci/s3-server.sh start)\"`"
        ),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED {test}: ARKIV_S3_ENDPOINT is not set; start the S3 server with \
                 `eval \"$(.ci/s3-server.sh start)\"` ***\n"
            );
            None
        }
    }
}

/// A bucket name unique to this test process and call.
pub fn unique_bucket(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut name: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(30)
        .collect();
    name = format!("arkiv-{name}-{}-{n}", std::process::id());
    name
}

/// Creates a bucket with an unsigned `PUT /BUCKET` (moto accepts it; object_store cannot
/// create buckets).
pub async fn create_bucket(endpoint: &str, bucket: &str) {
    let mut sock = tokio::net::TcpStream::connect(endpoint)
        .await
        .unwrap_or_else(|e| panic!("connect to S3 server {endpoint}: {e}"));
    let req = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {endpoint}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.expect("send");
    let mut resp = Vec::new();
    sock.read_to_end(&mut resp).await.expect("read");
    let head = String::from_utf8_lossy(&resp);
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "create bucket {bucket}: {head}"
    );
}

/// Options for `s3://bucket/prefix` at `endpoint` (`host:port`, plain HTTP); credentials
/// and region from `AWS_*` when set, else dummies. `prefix` is given without the trailing
/// `/` the storage wants.
pub fn options(endpoint: &str, bucket: &str, prefix: &str) -> S3Options {
    let var = |k: &str, default: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let mut o = S3Options::new(bucket);
    o.prefix = prefix
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s}/"))
        .collect();
    o.endpoint = Some(endpoint.to_owned());
    o.disable_tls = true;
    o.region = Some(var("AWS_REGION", "us-east-1"));
    o.access_key_id = Some(var("AWS_ACCESS_KEY_ID", "arkiv-test"));
    o.secret_access_key = Some(var("AWS_SECRET_ACCESS_KEY", "arkiv-test"));
    o
}

/// A fresh bucket and a storage on it.
#[allow(
    dead_code,
    reason = "shared by several test crates, each using a subset"
)]
pub async fn fresh_storage(endpoint: &str, test: &str, prefix: &str) -> S3Storage {
    let bucket = unique_bucket(test);
    create_bucket(endpoint, &bucket).await;
    let mut o = options(endpoint, &bucket, prefix);
    // Exercise multipart with the 12 MiB large-blob test.
    o.multipart_threshold = 8 * 1024 * 1024;
    o.multipart_part_size = 5 * 1024 * 1024;
    S3Storage::new(o).expect("S3 storage")
}
