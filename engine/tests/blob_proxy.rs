//! HTTP proxy settings reach every HTTP-based backend: a tiny forwarding proxy on loopback
//! counts the requests that go through it while WebDAV (rclone's server), Azure (Azurite) and
//! S3 (moto) storages put, list and read a blob.

#[path = "support/s3env.rs"]
mod s3env;
#[path = "support/servers.rs"]
mod servers;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::cloud::CloudStorage;
use arkiv_engine::blob::proxy::ProxyOptions;
use arkiv_engine::blob::s3::S3Storage;
use arkiv_engine::blob::webdav::WebDavStorage;
use arkiv_format::ids::BlobId;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A plain-HTTP forwarding proxy: reads one absolute-form request per connection, sends it to
/// the origin (`Connection: close`), relays the reply and closes. Counts requests.
struct Proxy {
    url: String,
    count: Arc<AtomicUsize>,
}

async fn start_proxy() -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                let _ = forward(sock, &c).await;
            });
        }
    });
    Proxy { url, count }
}

async fn forward(mut client: TcpStream, count: &AtomicUsize) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let rest = target
        .strip_prefix("http://")
        .expect("absolute-form request");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut length = 0usize;
    let mut out = format!("{method} {path} {version}\r\n");
    for l in lines.filter(|l| !l.is_empty()) {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("content-length:") {
            length = l[15..].trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") || lower.starts_with("proxy-connection:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    count.fetch_add(1, Ordering::SeqCst);
    let mut origin = TcpStream::connect(authority).await?;
    origin.write_all(out.as_bytes()).await?;
    origin.write_all(&body).await?;
    let mut reply = Vec::new();
    origin.read_to_end(&mut reply).await?;
    client.write_all(&reply).await?;
    client.shutdown().await
}

fn via(proxy: &Proxy) -> ProxyOptions {
    let mut p = ProxyOptions::default();
    p.http = Some(proxy.url.clone());
    p
}

async fn exercise(s: &dyn BlobStorage) {
    let id = BlobId::new("pproxied");
    s.put(&id, Bytes::from_static(b"through the proxy"))
        .await
        .expect("put");
    assert_eq!(s.list("pprox").await.expect("list").len(), 1);
    assert_eq!(
        s.get(&id, None).await.expect("get"),
        Bytes::from_static(b"through the proxy")
    );
    s.delete(&id).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_uses_the_proxy() {
    let Some(mut o) = servers::webdav_options("webdav_proxy", &servers::unique("proxy")) else {
        return;
    };
    let proxy = start_proxy().await;
    o.proxy = via(&proxy);
    let s = WebDavStorage::create(o).await.expect("storage");
    exercise(&s).await;
    assert!(
        proxy.count.load(Ordering::SeqCst) >= 5,
        "requests went around the proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_uses_the_proxy() {
    let Some(mut o) = servers::azure_options("azure_proxy") else {
        return;
    };
    let proxy = start_proxy().await;
    o.proxy = via(&proxy);
    let s = CloudStorage::azure(o).expect("storage");
    exercise(&s).await;
    assert!(
        proxy.count.load(Ordering::SeqCst) >= 4,
        "requests went around the proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_uses_the_proxy() {
    let Some(ep) = s3env::s3_endpoint("s3_proxy") else {
        return;
    };
    let bucket = s3env::unique_bucket("s3-proxy");
    s3env::create_bucket(&ep, &bucket).await;
    let proxy = start_proxy().await;
    let mut o = s3env::options(&ep, &bucket, "p");
    o.proxy = via(&proxy);
    let s = S3Storage::new(o).expect("storage");
    exercise(&s).await;
    assert!(
        proxy.count.load(Ordering::SeqCst) >= 4,
        "requests went around the proxy"
    );
}
