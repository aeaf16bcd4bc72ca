//! WebDAV blob storage with Kopia's sharded layout, on `reqwest`.
//!
//! # Layout (same as Kopia)
//! Facts from Kopia's `repo/blob/webdav/webdav_storage.go` and `repo/blob/sharded/sharded.go`:
//! * The tree under the configured URL is the filesystem backend's: `.shards` at the root
//!   (JSON sharding parameters), each blob at its sharded path with the `.f` suffix
//!   ([`ShardParameters::relative_path`]). Kopia's sharded storage uses `[1,3]` for new
//!   repositories and `[3,3]` when an existing one has no `.shards`. Only names ending in
//!   `.f` are blobs.
//! * Kopia (without `--atomic-writes`) writes a blob to `<path>-<random>` and then `MOVE`s it
//!   over `<path>` with `Overwrite: T`; a missing parent collection is made with `MKCOL`
//!   and the write is tried again. We do the same, so readers never see a partial blob.
//! * Listing walks collections with `PROPFIND` (`Depth: 1`), entering only directories whose
//!   accumulated name can still match the prefix.
//! * Deleting a missing blob succeeds; `404` on a read is "blob not found"; `416` or a short
//!   reply to a range read is a range past the end.
//!
//! # Retries and errors
//! Like Kopia, a request that fails with `423 Locked`, `409 Conflict` (after the `MKCOL`
//! try), `429`, a `5xx` status or a transport error is retried with exponential backoff, at
//! most [`WebDavOptions::max_retries`] times. Errors name the backend, the URL (without
//! credentials) and the blob. The password is sent as HTTP basic auth and never appears in
//! messages or `Debug` output.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arkiv_format::ids::BlobId;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use reqwest::{Method, StatusCode, Url};

use super::filesystem::{BLOB_SUFFIX, SHARDS_FILE, ShardParameters};
use super::memory::check_range;
use super::proxy::{ProxyOptions, redact_userinfo};
use super::{BlobMetadata, BlobStorage};
use crate::{Error, ErrorKind, Result};

/// How many collections a listing reads at once.
const LIST_PARALLELISM: usize = 8;

/// Everything needed to reach one WebDAV location, as plain data.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebDavOptions {
    /// `http(s)://host[:port]/path` of the repository collection.
    pub url: String,
    /// Basic-auth user name.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// PEM file with extra trusted CA certificates.
    pub ca_bundle: Option<PathBuf>,
    /// Proxy settings.
    pub proxy: ProxyOptions,
    /// Retries per request after the first attempt.
    pub max_retries: u32,
    /// First backoff (doubled per retry).
    pub init_backoff: Duration,
    /// Limit for one whole request.
    pub request_timeout: Duration,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
}

impl fmt::Debug for WebDavOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavOptions")
            .field("url", &redact_userinfo(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_bundle", &self.ca_bundle)
            .field("proxy", &self.proxy)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl WebDavOptions {
    /// Options for `url` without credentials, with default retries and timeouts.
    pub fn new(url: impl Into<String>) -> Self {
        WebDavOptions {
            url: url.into(),
            username: None,
            password: None,
            ca_bundle: None,
            proxy: ProxyOptions::default(),
            max_retries: 5,
            init_backoff: Duration::from_millis(200),
            request_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Blob storage in a WebDAV collection (see the module docs).
#[derive(Debug, Clone)]
pub struct WebDavStorage {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    /// Collection URL, ending in `/`, without user info.
    base: Url,
    username: Option<String>,
    password: Option<String>,
    params: ShardParameters,
    max_retries: u32,
    init_backoff: Duration,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavStorage")
            .field("base", &self.base.as_str())
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// One entry of a `PROPFIND` reply.
#[derive(Debug, Default, PartialEq, Eq)]
struct DavEntry {
    href: String,
    is_dir: bool,
    length: Option<u64>,
    modified: Option<String>,
}

impl WebDavStorage {
    /// Connects to an existing location: reads `.shards` (Kopia's legacy `[3,3]` when it is
    /// missing); writes nothing.
    pub async fn open(opts: WebDavOptions) -> Result<Self> {
        Self::connect(opts, false).await
    }

    /// Connects for a new repository: writes `.shards` with Kopia's current defaults unless
    /// one exists; the collection (and its parents) is created when missing.
    pub async fn create(opts: WebDavOptions) -> Result<Self> {
        Self::connect(opts, true).await
    }

    async fn connect(opts: WebDavOptions, create: bool) -> Result<Self> {
        let mut inner = Inner::new(&opts)?;
        let shards = BlobId::new(SHARDS_FILE);
        let params = match inner.get_path(&shards, SHARDS_FILE, None).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                inner.err(
                    "open",
                    SHARDS_FILE,
                    ErrorKind::Corrupt,
                    format!("invalid sharding parameters: {e}"),
                )
            })?,
            Err(e) if e.kind() == ErrorKind::NotFound && create => {
                inner.mkcol_base().await?;
                let p = ShardParameters::kopia_default();
                inner
                    .put_path(SHARDS_FILE, Bytes::from(p.to_file_bytes()))
                    .await?;
                p
            }
            Err(e) if e.kind() == ErrorKind::NotFound => ShardParameters::legacy(),
            Err(e) => return Err(e),
        };
        inner.params = params;
        Ok(WebDavStorage {
            inner: Arc::new(inner),
        })
    }

    /// The sharding parameters in use.
    pub fn shard_parameters(&self) -> &ShardParameters {
        &self.inner.params
    }

    /// The path of a blob below the collection (`p/012/3456…f.f`).
    pub fn blob_path(&self, id: &BlobId) -> String {
        self.inner.blob_path(id.as_str())
    }
}

impl Inner {
    fn new(opts: &WebDavOptions) -> Result<Self> {
        let cfg = |m: String| {
            Error::Config(format!(
                "WebDAV storage {}: {m}",
                redact_userinfo(&opts.url)
            ))
        };
        let mut base = Url::parse(&opts.url).map_err(|e| cfg(format!("invalid URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(cfg("URL must start with http:// or https://".into()));
        }
        // Credentials in the URL become basic auth (and never show in messages).
        let mut username = opts.username.clone();
        let mut password = opts.password.clone();
        if !base.username().is_empty() {
            username.get_or_insert_with(|| percent_decode(base.username()));
            if let Some(p) = base.password() {
                password.get_or_insert_with(|| percent_decode(p));
            }
            let _ = base.set_username("");
            let _ = base.set_password(None);
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(opts.request_timeout)
            .connect_timeout(opts.connect_timeout);
        builder = opts.proxy.apply_to_reqwest(builder).map_err(cfg)?;
        if let Some(path) = &opts.ca_bundle {
            let pem = std::fs::read(path)
                .map_err(|e| cfg(format!("cannot read CA bundle {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| cfg(format!("invalid CA bundle {}: {e}", path.display())))?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder.build().map_err(|e| cfg(e.to_string()))?;
        Ok(Inner {
            client,
            base,
            username,
            password,
            params: ShardParameters::kopia_default(),
            max_retries: opts.max_retries,
            init_backoff: opts.init_backoff,
        })
    }

    fn describe(&self) -> String {
        format!("webdav {}", self.base)
    }

    fn err(&self, op: &'static str, target: &str, kind: ErrorKind, message: String) -> Error {
        Error::Storage {
            storage: self.describe(),
            op,
            target: target.to_owned(),
            kind,
            message,
        }
    }

    fn blob_path(&self, id: &str) -> String {
        self.params.relative_path(id).to_string_lossy().into_owned()
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .map_err(|e| self.err("url", path, ErrorKind::Config, format!("invalid path: {e}")))
    }

    /// Sends a request built by `make`, retrying transient failures (see the module docs).
    /// Returns the final response, whatever its status.
    async fn send(
        &self,
        op: &'static str,
        target: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let mut attempt = 0;
        loop {
            let mut req = make();
            if let Some(u) = &self.username {
                req = req.basic_auth(u, self.password.as_deref());
            }
            let res = req.send().await;
            let retry = match &res {
                Ok(r) => is_retriable_status(r.status()),
                Err(_) => true,
            };
            if !retry || attempt >= self.max_retries {
                return res.map_err(|e| {
                    self.err(op, target, ErrorKind::Transient, transport_message(&e))
                });
            }
            tokio::time::sleep(self.init_backoff * 2u32.saturating_pow(attempt)).await;
            attempt += 1;
        }
    }

    fn status_err(&self, op: &'static str, target: &str, status: StatusCode) -> Error {
        let kind = match status.as_u16() {
            401 => ErrorKind::Auth,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            416 => ErrorKind::Corrupt,
            423 | 429 | 500..=599 => ErrorKind::Transient,
            _ => ErrorKind::Other,
        };
        self.err(op, target, kind, format!("server replied {status}"))
    }

    /// GET of a path (whole, or a non-empty range).
    async fn get_path(&self, id: &BlobId, path: &str, range: Option<&Range<u64>>) -> Result<Bytes> {
        let url = self.url(path)?;
        let res = self
            .send("get", id.as_str(), || {
                let mut b = self
                    .client
                    .get(url.clone())
                    .header("Accept-Encoding", "identity");
                if let Some(r) = range {
                    b = b.header("Range", format!("bytes={}-{}", r.start, r.end - 1));
                }
                b
            })
            .await?;
        let status = res.status();
        self.blob_status("get", id, status)?;
        let body = res.bytes().await.map_err(|e| {
            self.err(
                "get",
                id.as_str(),
                ErrorKind::Transient,
                transport_message(&e),
            )
        })?;
        match range {
            // The server ignored the range and sent the whole blob.
            Some(r) if status == StatusCode::OK => {
                check_range(&self.describe(), id, r, body.len() as u64)?;
                Ok(body.slice(r.start as usize..r.end as usize))
            }
            Some(r) if body.len() as u64 != r.end - r.start => Err(self.err(
                "get",
                id.as_str(),
                ErrorKind::Corrupt,
                format!(
                    "range {}..{} reaches past the end of the blob (got {} bytes)",
                    r.start,
                    r.end,
                    body.len()
                ),
            )),
            _ => Ok(body),
        }
    }

    /// A blob request's status: 404 is [`Error::BlobNotFound`], other failures are named.
    fn blob_status(&self, op: &'static str, id: &BlobId, status: StatusCode) -> Result<()> {
        if status == StatusCode::NOT_FOUND {
            return Err(Error::BlobNotFound {
                storage: self.describe(),
                id: id.clone(),
            });
        }
        if !status.is_success() {
            return Err(self.status_err(op, id.as_str(), status));
        }
        Ok(())
    }

    async fn head(&self, id: &BlobId) -> Result<BlobMetadata> {
        let url = self.url(&self.blob_path(id.as_str()))?;
        let res = self
            .send("get_metadata", id.as_str(), || {
                self.client
                    .head(url.clone())
                    .header("Accept-Encoding", "identity")
            })
            .await?;
        let status = res.status();
        self.blob_status("get_metadata", id, status)?;
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let bad = |what: &str| {
            self.err(
                "get_metadata",
                id.as_str(),
                ErrorKind::Other,
                format!("reply has no valid {what}"),
            )
        };
        let length = header("content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| bad("Content-Length"))?;
        let timestamp = header("last-modified")
            .and_then(|v| parse_http_date(&v))
            .ok_or_else(|| bad("Last-Modified"))?;
        Ok(BlobMetadata {
            id: id.clone(),
            length,
            timestamp,
        })
    }

    /// Creates the repository collection and its parents on the server (existing ones are
    /// fine).
    async fn mkcol_base(&self) -> Result<()> {
        let segments: Vec<String> = self
            .base
            .path_segments()
            .map(|s| s.filter(|x| !x.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut url = self.base.clone();
        let mut path = String::from("/");
        for seg in segments {
            path.push_str(&seg);
            path.push('/');
            url.set_path(&path);
            self.mkcol(&url, &path).await?;
        }
        Ok(())
    }

    async fn mkcol(&self, url: &Url, target: &str) -> Result<()> {
        let mkcol = Method::from_bytes(b"MKCOL").unwrap_or(Method::PUT);
        let res = self
            .send("mkcol", target, || {
                self.client.request(mkcol.clone(), url.clone())
            })
            .await?;
        // 405: the collection exists already.
        if !res.status().is_success() && res.status() != StatusCode::METHOD_NOT_ALLOWED {
            return Err(self.status_err("mkcol", target, res.status()));
        }
        Ok(())
    }

    /// Creates every collection on the way to `path`'s parent (existing ones are fine).
    async fn mkcol_parents(&self, path: &str) -> Result<()> {
        let mut dir = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            dir.push_str(part);
            dir.push('/');
            self.mkcol(&self.url(&dir)?, &dir).await?;
        }
        Ok(())
    }

    /// Writes `path` atomically: a temporary name, then `MOVE` over the final name.
    async fn put_path(&self, path: &str, data: Bytes) -> Result<()> {
        let tmp = format!("{path}-{}", rand::random::<u64>() >> 1);
        let tmp_url = self.url(&tmp)?;
        let put = || async {
            self.send("put", path, || {
                self.client.put(tmp_url.clone()).body(data.clone())
            })
            .await
        };
        let mut res = put().await?;
        if matches!(
            res.status(),
            StatusCode::CONFLICT | StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ) {
            // The parent collection is missing (Kopia makes it and writes again).
            self.mkcol_parents(path).await?;
            res = put().await?;
        }
        if !res.status().is_success() {
            return Err(self.status_err("put", path, res.status()));
        }
        let dest = self.url(path)?;
        let mv = Method::from_bytes(b"MOVE").unwrap_or(Method::PUT);
        let res = self
            .send("put", path, || {
                self.client
                    .request(mv.clone(), tmp_url.clone())
                    .header("Destination", dest.as_str())
                    .header("Overwrite", "T")
            })
            .await;
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            other => {
                // Best effort: do not leave the temporary file behind.
                let _ = self
                    .send("delete", &tmp, || self.client.delete(tmp_url.clone()))
                    .await;
                match other {
                    Ok(r) => Err(self.status_err("put (move)", path, r.status())),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// `PROPFIND Depth: 1` of a collection (`dir` empty or ending in `/`); `None` when it
    /// does not exist.
    async fn propfind(&self, dir: &str) -> Result<Option<Vec<DavEntry>>> {
        let url = self.url(dir)?;
        let method = Method::from_bytes(b"PROPFIND").unwrap_or(Method::GET);
        const BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>"#;
        let res = self
            .send("list", dir, || {
                self.client
                    .request(method.clone(), url.clone())
                    .header("Depth", "1")
                    .header("Content-Type", "application/xml")
                    .body(BODY)
            })
            .await?;
        let status = res.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status.as_u16() != 207 && !status.is_success() {
            return Err(self.status_err("list", dir, status));
        }
        let body = res
            .bytes()
            .await
            .map_err(|e| self.err("list", dir, ErrorKind::Transient, transport_message(&e)))?;
        parse_multistatus(&body)
            .map(Some)
            .map_err(|m| self.err("list", dir, ErrorKind::Other, m))
    }

    /// Name of an entry below `dir_url`, `None` for the collection itself.
    fn child_name(&self, dir_url: &Url, href: &str) -> Option<String> {
        let u = dir_url.join(href).ok()?;
        let child = u.path().trim_end_matches('/');
        let parent = dir_url.path().trim_end_matches('/');
        let name = child.strip_prefix(parent)?.strip_prefix('/')?;
        (!name.is_empty() && !name.contains('/')).then(|| percent_decode(name))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let mut out = Vec::new();
        let mut pending = FuturesUnordered::new();
        let walk = |dir: String, acc: String| async move {
            let entries = self.propfind(&dir).await?;
            Ok::<_, Error>((dir, acc, entries))
        };
        pending.push(walk(String::new(), String::new()));
        let mut queued: Vec<(String, String)> = Vec::new();
        while let Some(res) = pending.next().await {
            let (dir, acc, entries) = res?;
            let dir_url = self.url(&dir)?;
            for e in entries.unwrap_or_default() {
                let Some(name) = self.child_name(&dir_url, &e.href) else {
                    continue;
                };
                if e.is_dir {
                    let sub = format!("{acc}{name}");
                    let matches = if prefix.len() > sub.len() {
                        prefix.starts_with(&sub)
                    } else {
                        sub.starts_with(prefix)
                    };
                    if matches {
                        queued.push((format!("{dir}{name}/"), sub));
                    }
                    continue;
                }
                let Some(id) = format!("{acc}{name}")
                    .strip_suffix(BLOB_SUFFIX)
                    .map(str::to_owned)
                else {
                    continue;
                };
                if !id.starts_with(prefix) {
                    continue;
                }
                let bad = |what: &str| {
                    self.err(
                        "list",
                        &id,
                        ErrorKind::Other,
                        format!("PROPFIND reply has no valid {what}"),
                    )
                };
                let length = e.length.ok_or_else(|| bad("getcontentlength"))?;
                let timestamp = e
                    .modified
                    .as_deref()
                    .and_then(parse_http_date)
                    .ok_or_else(|| bad("getlastmodified"))?;
                out.push(BlobMetadata {
                    id: BlobId::new(id),
                    length,
                    timestamp,
                });
            }
            while pending.len() < LIST_PARALLELISM {
                let Some((d, a)) = queued.pop() else { break };
                pending.push(walk(d, a));
            }
        }
        out.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(out)
    }
}

fn is_retriable_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 423 | 429) || s.is_server_error()
}

/// A transport error's message with its causes (reqwest's own text omits them).
fn transport_message(e: &reqwest::Error) -> String {
    let mut msg = e.without_url_ref().to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cur = c.source();
    }
    msg
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    /// reqwest's message without the URL (which the storage description already gives).
    fn without_url_ref(&self) -> String {
        let s = self.to_string();
        match self.url() {
            Some(u) => s.replace(&format!(" ({u})"), ""),
            None => s,
        }
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// An HTTP date (`Mon, 02 Dec 2026 01:02:03 GMT`).
fn parse_http_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The `response` elements of a `207 Multi-Status` body.
fn parse_multistatus(body: &[u8]) -> std::result::Result<Vec<DavEntry>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut cur: Option<DavEntry> = None;
    let mut field: Option<&'static str> = None;
    let mut text = String::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("invalid PROPFIND reply: {e}"))?;
        match ev {
            Event::Start(e) | Event::Empty(e)
                if cur.is_some() || e.local_name().as_ref() == b"response" =>
            {
                match e.local_name().as_ref() {
                    b"response" => cur = Some(DavEntry::default()),
                    b"collection" => {
                        if let Some(c) = cur.as_mut() {
                            c.is_dir = true;
                        }
                    }
                    b"href" => field = Some("href"),
                    b"getcontentlength" => field = Some("length"),
                    b"getlastmodified" => field = Some("modified"),
                    _ => {}
                }
                text.clear();
            }
            Event::Text(t) if field.is_some() => {
                text.push_str(
                    &t.decode()
                        .map_err(|e| format!("invalid PROPFIND reply: {e}"))?,
                );
            }
            Event::GeneralRef(r) if field.is_some() => {
                let name = r
                    .decode()
                    .map_err(|e| format!("invalid PROPFIND reply: {e}"))?;
                text.push_str(match name.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                });
            }
            Event::End(e) => {
                let name = e.local_name();
                if name.as_ref() == b"response" {
                    if let Some(c) = cur.take() {
                        out.push(c);
                    }
                } else if let (Some(f), Some(c)) = (field, cur.as_mut()) {
                    let v = text.trim().to_owned();
                    match f {
                        "href" => c.href = v,
                        "length" => c.length = v.parse().ok(),
                        _ => c.modified = Some(v),
                    }
                    field = None;
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

#[async_trait]
impl BlobStorage for WebDavStorage {
    async fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Bytes> {
        let path = self.inner.blob_path(id.as_str());
        match range {
            Some(r) if r.start >= r.end => {
                // An empty range cannot be asked for: check bounds against the length.
                let len = if r.start > r.end {
                    u64::MAX
                } else {
                    self.inner.head(id).await?.length
                };
                check_range(&self.inner.describe(), id, &r, len)?;
                Ok(Bytes::new())
            }
            Some(r) => match self.inner.get_path(id, &path, Some(&r)).await {
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    // 416 or a short reply: report it with the real length.
                    let len = self.inner.head(id).await?.length;
                    check_range(&self.inner.describe(), id, &r, len)?;
                    Err(e)
                }
                other => other,
            },
            None => self.inner.get_path(id, &path, None).await,
        }
    }

    async fn get_metadata(&self, id: &BlobId) -> Result<BlobMetadata> {
        self.inner.head(id).await
    }

    async fn put(&self, id: &BlobId, data: Bytes) -> Result<()> {
        let path = self.inner.blob_path(id.as_str());
        self.inner.put_path(&path, data).await
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        let path = self.inner.blob_path(id.as_str());
        let url = self.inner.url(&path)?;
        let res = self
            .inner
            .send("delete", id.as_str(), || {
                self.inner.client.delete(url.clone())
            })
            .await?;
        match res.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => Err(self.inner.status_err("delete", id.as_str(), s)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        self.inner.list(prefix).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistatus_parsing() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<D:multistatus xmlns:D="DAV:">
 <D:response><D:href>/dav/repo/</D:href><D:propstat><D:prop>
   <D:resourcetype><D:collection xmlns:D="DAV:"/></D:resourcetype>
   <D:getlastmodified>Wed, 02 Dec 2026 01:00:00 GMT</D:getlastmodified>
 </D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
 <D:response><D:href>/dav/repo/kopia.repository.f</D:href><D:propstat><D:prop>
   <D:resourcetype></D:resourcetype><D:getcontentlength>1101</D:getcontentlength>
   <D:getlastmodified>Wed, 02 Dec 2026 01:00:05 GMT</D:getlastmodified>
 </D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
</D:multistatus>"#;
        let v = parse_multistatus(xml).expect("parse");
        assert_eq!(v.len(), 2);
        assert!(v[0].is_dir);
        assert_eq!(v[1].href, "/dav/repo/kopia.repository.f");
        assert_eq!(v[1].length, Some(1101));
        assert!(!v[1].is_dir);
        let t = parse_http_date(v[1].modified.as_deref().unwrap_or_default()).expect("date");
        assert_eq!(t.to_rfc3339(), "2026-12-02T01:00:05+00:00");
        assert!(parse_multistatus(b"<a><b></a>").is_err());
    }

    #[test]
    fn credentials_never_in_descriptions() {
        let mut o = WebDavOptions::new("https://alice:s3cret@dav.example/repo");
        o.password = Some("pw-from-env".into());
        let dbg = format!("{o:?}");
        assert!(
            !dbg.contains("s3cret") && !dbg.contains("pw-from-env"),
            "{dbg}"
        );
        let inner = Inner::new(&o).expect("client");
        assert_eq!(inner.describe(), "webdav https://dav.example/repo/");
        assert_eq!(inner.username.as_deref(), Some("alice"));
        assert_eq!(inner.password.as_deref(), Some("pw-from-env"));
        let e = Inner::new(&WebDavOptions::new("ftp://x/")).expect_err("scheme");
        assert_eq!(e.kind(), ErrorKind::Config);
    }
}
