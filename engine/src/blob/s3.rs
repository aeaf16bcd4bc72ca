//! S3 blob storage on `object_store`'s `AmazonS3`, with Kopia's key layout.
//!
//! # Key layout (same as Kopia)
//! Facts taken from Kopia v0.23.1 `repo/blob/s3/s3_storage.go` and `s3_options.go`:
//! * The object key of a blob is the configured prefix followed by the blob ID, verbatim: no
//!   sharding, no `.f` suffix, no extra separator (Kopia's `getObjectNameString` is
//!   `Prefix + blobID`). So prefixes end in `/` by convention, and we force that (below).
//! * Listing asks S3 for keys starting with `prefix + blobPrefix` and strips `prefix` from each
//!   key to get the blob ID. Kopia skips the key `.storageconfig` (its per-bucket storage-class
//!   config) in listings; so do we.
//! * Kopia uploads every blob with a single `PutObject` (multipart disabled, because its blobs
//!   are already small). We use multipart only above [`S3Options::multipart_threshold`]
//!   (default 100 MiB, far above Kopia's pack sizes), which produces the same object.
//! * `describe()` is `s3://BUCKET/PREFIX`, as Kopia's `String()`.
//!
//! # Configuration: [`S3Options`]
//! [`S3Options`] is plain data built by the caller (the mover maps the repository URL
//! `s3://BUCKET[/PREFIX]` and its environment variables onto it); the engine reads no
//! environment. [`S3Storage::new`] checks what it needs: credentials present, a prefix
//! that is empty or ends in `/`, a multipart part size S3 accepts, and TLS on for AWS.
//! * The endpoint is `host[:port]`, without a scheme: [`S3Options::disable_tls`] alone
//!   chooses plain HTTP (Kopia's behaviour).
//! * Path-style addressing is the default for custom endpoints, virtual-host addressing
//!   for AWS; [`S3Options::path_style`] overrides it.
//! * Credentials are static keys; instance profiles and web identity are not supported.
//!
//! # Retries and errors
//! There is one retry loop, ours ([`S3Storage`]'s `retrying`), and its budget is measured in
//! time: [`RetryOptions::retry_timeout`] (default 180 s; the mover sets it from
//! `ARKIV_S3_RETRY_TIMEOUT`), with exponential backoff and jitter between attempts. It wraps
//! whole operations, response bodies included: a GET whose body is cut short, or a LIST page
//! whose XML is truncated, is retried like a refused connection. `object_store`'s own retry
//! loop is switched off (`max_retries: 0`) because it ends at the response headers and counts
//! attempts, not time: an endpoint restart of a few seconds exhausted it (issue 14, finding
//! 5). Retried: 5xx (including 503 SlowDown), 429, S3 errors in a 200 body, connection
//! failures, resets, truncated bodies and timeouts, for every request kind; S3 `DELETE` and
//! `PUT` of a whole blob are idempotent, and a multipart upload is redone from its start.
//! Bulk delete is disabled (one `DELETE` per blob, as Kopia does). Errors map to
//! [`ErrorKind`]s: 404 → `NotFound` ([`Error::BlobNotFound`] for blob reads), 403 →
//! `PermissionDenied`, 401 → `Auth`, 5xx/429/transport failures after the budget →
//! `Transient`, whose message names the storage, the endpoint and how long it was tried, and
//! keeps `object_store`'s text of the last attempt (method, URL, status, body).

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arkiv_format::ids::BlobId;
use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{
    BackoffConfig, Certificate, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutPayload, RetryConfig, WriteMultipart,
};

use super::memory::check_range;
use super::{BlobMetadata, BlobStorage};
use crate::{Error, ErrorKind, Result};

/// Kopia's per-bucket storage config object, never a blob (skipped by `list`).
const KOPIA_STORAGE_CONFIG: &str = ".storageconfig";

/// S3's smallest allowed multipart part (except the last one).
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// The retry policy of the S3 backend (and of `cloud`'s backends, which hand it to
/// `object_store`), plus request timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryOptions {
    /// Retries per request after the first attempt (0 disables retries). The default is
    /// unbounded: the budget is [`Self::retry_timeout`].
    pub max_retries: usize,
    /// First backoff; later ones grow exponentially (with jitter).
    pub init_backoff: Duration,
    /// Longest single backoff.
    pub max_backoff: Duration,
    /// The retry budget: no retry starts after this much time since the first attempt.
    pub retry_timeout: Duration,
    /// Limit for one whole HTTP request, body included (a stalled transfer fails after this).
    pub request_timeout: Duration,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_retries: usize::MAX,
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            retry_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything needed to reach one S3 location, as plain data (see the module docs).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Options {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix: empty, or ending in `/`.
    pub prefix: String,
    /// `host[:port]` of a custom endpoint; `None` = AWS.
    pub endpoint: Option<String>,
    /// Plain HTTP (loopback or LAN endpoints only).
    pub disable_tls: bool,
    /// Signing region (`us-east-1` when unset).
    pub region: Option<String>,
    /// Access key ID.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials.
    pub session_token: Option<String>,
    /// PEM file with extra trusted CA certificates.
    pub ca_bundle: Option<PathBuf>,
    /// Force path-style (`true`) or virtual-host (`false`) addressing; `None` = automatic.
    pub path_style: Option<bool>,
    /// Retry policy and timeouts.
    pub retry: RetryOptions,
    /// Blobs longer than this are uploaded with multipart upload.
    pub multipart_threshold: u64,
    /// Part size of multipart uploads (at least 5 MiB, S3's minimum).
    pub multipart_part_size: usize,
    /// HTTP proxy settings.
    pub proxy: super::proxy::ProxyOptions,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("disable_tls", &self.disable_tls)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("session_token", &redact(&self.session_token))
            .field("ca_bundle", &self.ca_bundle)
            .field("path_style", &self.path_style)
            .field("retry", &self.retry)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("multipart_part_size", &self.multipart_part_size)
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl S3Options {
    /// Options for `bucket` at the bucket root with AWS defaults and no credentials.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Options {
            bucket: bucket.into(),
            prefix: String::new(),
            endpoint: None,
            disable_tls: false,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            ca_bundle: None,
            path_style: None,
            retry: RetryOptions::default(),
            multipart_threshold: 100 * 1024 * 1024,
            multipart_part_size: 16 * 1024 * 1024,
            proxy: super::proxy::ProxyOptions::default(),
        }
    }

    fn is_aws(&self) -> bool {
        self.endpoint.as_deref().is_none_or(|e| {
            let host = e.split(':').next().unwrap_or(e);
            host.ends_with(".amazonaws.com")
        })
    }

    fn region_or_default(&self) -> &str {
        self.region.as_deref().unwrap_or("us-east-1")
    }

    /// `scheme://host[:port]` requests go to (for messages).
    fn endpoint_url(&self) -> String {
        let scheme = if self.disable_tls { "http" } else { "https" };
        match &self.endpoint {
            Some(e) => format!("{scheme}://{e}"),
            None => format!("{scheme}://s3.{}.amazonaws.com", self.region_or_default()),
        }
    }
}

/// Blob storage in an S3 bucket (see the module docs).
#[derive(Debug)]
pub struct S3Storage {
    store: AmazonS3,
    bucket: String,
    prefix: String,
    endpoint_url: String,
    multipart_threshold: u64,
    multipart_part_size: usize,
    retry: RetryOptions,
}

impl S3Storage {
    /// Builds the client. No request is made; see [`Self::check_bucket`].
    pub fn new(opts: S3Options) -> Result<Self> {
        let cfg = |m: String| Error::Config(format!("S3 storage s3://{}: {m}", opts.bucket));
        let (Some(key), Some(secret)) = (&opts.access_key_id, &opts.secret_access_key) else {
            return Err(cfg(
                "credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned(),
            ));
        };
        if opts.multipart_part_size < MIN_PART_SIZE {
            return Err(cfg(format!(
                "multipart part size {} is below S3's minimum of {MIN_PART_SIZE}",
                opts.multipart_part_size
            )));
        }
        if !opts.prefix.is_empty() && !opts.prefix.ends_with('/') {
            return Err(cfg(format!(
                "prefix {:?} must be empty or end in '/'",
                opts.prefix
            )));
        }

        let r = &opts.retry;
        let mut client = ClientOptions::new()
            .with_allow_http(opts.disable_tls)
            .with_timeout(r.request_timeout)
            .with_connect_timeout(r.connect_timeout);
        client = opts.proxy.apply_to_object_store(client, !opts.disable_tls);
        if let Some(path) = &opts.ca_bundle {
            let pem = std::fs::read(path)
                .map_err(|e| cfg(format!("cannot read CA bundle {}: {e}", path.display())))?;
            let certs = Certificate::from_pem_bundle(&pem)
                .map_err(|e| cfg(format!("invalid CA bundle {}: {e}", path.display())))?;
            for c in certs {
                client = client.with_root_certificate(c);
            }
        }
        // Our loop (`retrying`) does all retries, body reads included (module docs).
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 0,
            retry_timeout: Duration::ZERO,
        };

        let is_aws = opts.is_aws();
        let path_style = opts.path_style.unwrap_or(!is_aws);
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&opts.bucket)
            .with_region(opts.region_or_default())
            .with_access_key_id(key)
            .with_secret_access_key(secret)
            .with_client_options(client)
            .with_retry(retry)
            .with_virtual_hosted_style_request(!path_style)
            // One `DELETE /key` per blob, as Kopia does; the bulk `POST /?delete` is not
            // idempotent, so object_store would not retry it after a connection reset.
            .with_disable_bulk_delete(true)
            .with_allow_http(opts.disable_tls);
        if let Some(token) = &opts.session_token {
            b = b.with_token(token);
        }
        let scheme = if opts.disable_tls { "http" } else { "https" };
        match (&opts.endpoint, is_aws) {
            (Some(e), false) => {
                // With virtual-host addressing object_store expects the bucket in the endpoint.
                let url = if path_style {
                    format!("{scheme}://{e}")
                } else {
                    format!("{scheme}://{}.{e}", opts.bucket)
                };
                b = b.with_endpoint(url);
            }
            // AWS: object_store derives the regional endpoint itself.
            _ if opts.disable_tls => {
                return Err(cfg("TLS cannot be disabled for AWS endpoints".to_owned()));
            }
            _ => {}
        }
        let store = b.build().map_err(|e| cfg(e.to_string()))?;
        Ok(S3Storage {
            store,
            bucket: opts.bucket.clone(),
            prefix: opts.prefix.clone(),
            endpoint_url: opts.endpoint_url(),
            multipart_threshold: opts.multipart_threshold,
            multipart_part_size: opts.multipart_part_size,
            retry: opts.retry.clone(),
        })
    }

    /// Runs `attempt` until it succeeds, fails with something other than
    /// [`ErrorKind::Transient`], or the retry budget ([`RetryOptions::retry_timeout`], and
    /// [`RetryOptions::max_retries`]) is spent. Between attempts it sleeps an exponentially
    /// growing backoff (from `init_backoff`, doubling, capped at `max_backoff`) with full
    /// jitter in its upper half, never past the budget's end. The final error says how long
    /// and how often it tried.
    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        use rand::Rng;
        let r = &self.retry;
        let start = Instant::now();
        let mut retries = 0usize;
        let mut backoff = r.init_backoff;
        loop {
            let err = match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if e.kind() != ErrorKind::Transient => return Err(e),
                Err(e) => e,
            };
            let elapsed = start.elapsed();
            if retries >= r.max_retries || elapsed >= r.retry_timeout {
                return Err(gave_up(err, elapsed, retries + 1, r.retry_timeout));
            }
            let half = backoff / 2;
            let jitter = rand::thread_rng().gen_range(Duration::ZERO..=half);
            let sleep = (half + jitter).min(r.retry_timeout - elapsed);
            tracing::debug!(
                storage = %self.location(),
                error = %err,
                retry = retries + 1,
                "S3 request failed; retrying in {sleep:?}"
            );
            tokio::time::sleep(sleep).await;
            backoff = (backoff * 2).min(r.max_backoff);
            retries += 1;
        }
    }

    /// The object key of a blob: prefix + blob ID.
    pub fn key(&self, id: &BlobId) -> String {
        format!("{}{}", self.prefix, id.as_str())
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix (empty or ending in `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `scheme://host[:port]` of the endpoint.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint_url
    }

    /// One cheap request (a one-key listing) to tell "bucket missing" (`NotFound`) and bad
    /// credentials (`Auth`/`PermissionDenied`) apart from "no repository here yet", before
    /// anyone decides to create a repository.
    pub async fn check_bucket(&self) -> Result<()> {
        let opts = PaginatedListOptions {
            max_keys: Some(1),
            ..Default::default()
        };
        let prefix = (!self.prefix.is_empty()).then_some(self.prefix.as_str());
        self.retrying(|| async {
            match self.store.list_paginated(prefix, opts.clone()).await {
                Ok(_) => Ok(()),
                Err(object_store::Error::NotFound { source, .. }) => Err(Error::Storage {
                    storage: self.location(),
                    op: "check bucket",
                    target: self.bucket.clone(),
                    kind: ErrorKind::NotFound,
                    message: format!("bucket does not exist: {source}"),
                }),
                Err(e) => Err(self.map_err("check bucket", &self.bucket, e)),
            }
        })
        .await
    }

    fn path(&self, op: &'static str, id: &BlobId) -> Result<Path> {
        Path::parse(self.key(id)).map_err(|e| Error::Storage {
            storage: self.location(),
            op,
            target: id.to_string(),
            kind: ErrorKind::Config,
            message: format!("blob ID is not a valid object key: {e}"),
        })
    }

    /// Storage description plus endpoint, for error messages.
    fn location(&self) -> String {
        format!("{} at {}", self.describe(), self.endpoint_url)
    }

    fn map_err(&self, op: &'static str, target: &str, e: object_store::Error) -> Error {
        use object_store::Error as E;
        let kind = match &e {
            E::NotFound { .. } => ErrorKind::NotFound,
            E::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            E::Unauthenticated { .. } => ErrorKind::Auth,
            E::NotSupported { .. } | E::NotImplemented { .. } => ErrorKind::Unsupported,
            E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => ErrorKind::Config,
            E::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            E::Generic { source, .. } => generic_kind(source.as_ref()),
            _ => ErrorKind::Other,
        };
        Error::Storage {
            storage: self.location(),
            op,
            target: target.to_owned(),
            kind,
            message: e.to_string(),
        }
    }

    fn map_read_err(&self, op: &'static str, id: &BlobId, e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { .. } => Error::BlobNotFound {
                storage: self.describe(),
                id: id.clone(),
            },
            e => self.map_err(op, id.as_str(), e),
        }
    }

    async fn get_range(&self, id: &BlobId, path: &Path, r: Range<u64>) -> Result<Bytes> {
        let storage = self.location();
        if r.start >= r.end {
            // S3 cannot express an empty range: check bounds with a HEAD.
            let meta = self.get_metadata(id).await?;
            check_range(&storage, id, &r, meta.length)?;
            return Ok(Bytes::new());
        }
        let attempt = || async {
            let opts = GetOptions::new().with_range(Some(GetRange::Bounded(r.clone())));
            let res = async { self.store.get_opts(path, opts).await?.bytes().await }.await;
            match res {
                Err(e) if generic_transient(&e) => Err(self.map_read_err("get", id, e)),
                other => Ok(other),
            }
        };
        match self.retrying(attempt).await? {
            Ok(data) if data.len() as u64 == r.end - r.start => Ok(data),
            Ok(data) => {
                // The server returned a short range: the blob is shorter than the caller thinks.
                let meta = self.get_metadata(id).await?;
                check_range(&storage, id, &r, meta.length)?;
                Err(Error::Storage {
                    storage,
                    op: "get",
                    target: id.to_string(),
                    kind: ErrorKind::Corrupt,
                    message: format!(
                        "asked for range {}..{}, got {} bytes",
                        r.start,
                        r.end,
                        data.len()
                    ),
                })
            }
            Err(e) => {
                let err = self.map_read_err("get", id, e);
                if matches!(err.kind(), ErrorKind::Other | ErrorKind::Corrupt) {
                    // A range past the end (416, or a range mismatch object_store rejects):
                    // report it as the trait says, with the real length.
                    if let Ok(meta) = self.get_metadata(id).await {
                        check_range(&storage, id, &r, meta.length)?;
                    }
                }
                Err(err)
            }
        }
    }
}

/// The error of the last attempt, with how long and how often it was tried.
fn gave_up(err: Error, elapsed: Duration, attempts: usize, budget: Duration) -> Error {
    let note = format!(
        "gave up after {:.1}s and {attempts} attempts (retry budget {}s)",
        elapsed.as_secs_f64(),
        budget.as_secs()
    );
    match err {
        Error::Storage {
            storage,
            op,
            target,
            kind,
            message,
        } => Error::Storage {
            storage,
            op,
            target,
            kind,
            message: format!("{note}: {message}"),
        },
        other => other,
    }
}

/// Classifies `object_store`'s catch-all errors. Transport failures are recognised by type
/// (`HttpError` in the source chain). HTTP status failures come from `object_store`'s
/// `RetryError`, which is not a public type, so its status is read from its message
/// ("... status code: 503 ...", or "error response" for S3 errors inside a 200 reply).
pub(crate) fn generic_kind(source: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cur = Some(source);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<HttpError>() {
            return match h.kind() {
                HttpErrorKind::Connect
                | HttpErrorKind::Request
                | HttpErrorKind::Timeout
                | HttpErrorKind::Interrupted
                | HttpErrorKind::Decode
                // No HTTP response at all (a reset connection is `Unknown` to object_store):
                // a transport failure like the others, retried within the time budget.
                | HttpErrorKind::Unknown => ErrorKind::Transient,
                _ => ErrorKind::Other,
            };
        }
        cur = e.source();
    }
    status_kind(&source.to_string())
}

/// Whether a ranged read failed in a way worth another attempt (the caller's range checks
/// handle the rest).
fn generic_transient(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Generic { source, .. }
        if generic_kind(source.as_ref()) == ErrorKind::Transient)
}

fn status_kind(msg: &str) -> ErrorKind {
    if msg.contains("Server returned error response") {
        return ErrorKind::Transient;
    }
    let status = msg
        .split_once("status code: ")
        .and_then(|(_, rest)| rest.get(..3))
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(500..=599 | 429 | 408) => ErrorKind::Transient,
        Some(401) => ErrorKind::Auth,
        Some(403) => ErrorKind::PermissionDenied,
        Some(404) => ErrorKind::NotFound,
        Some(416) => ErrorKind::Corrupt,
        _ => ErrorKind::Other,
    }
}

#[async_trait]
impl BlobStorage for S3Storage {
    async fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Bytes> {
        let path = self.path("get", id)?;
        match range {
            Some(r) if r.start > r.end => {
                check_range(&self.location(), id, &r, u64::MAX)?;
                Ok(Bytes::new())
            }
            Some(r) => self.get_range(id, &path, r).await,
            None => {
                self.retrying(|| async {
                    let res = async { self.store.get(&path).await?.bytes().await }.await;
                    res.map_err(|e| self.map_read_err("get", id, e))
                })
                .await
            }
        }
    }

    async fn get_metadata(&self, id: &BlobId) -> Result<BlobMetadata> {
        let path = self.path("get_metadata", id)?;
        let meta = self
            .retrying(|| async {
                self.store
                    .head(&path)
                    .await
                    .map_err(|e| self.map_read_err("get_metadata", id, e))
            })
            .await?;
        Ok(BlobMetadata {
            id: id.clone(),
            length: meta.size,
            timestamp: meta.last_modified,
        })
    }

    async fn put(&self, id: &BlobId, data: Bytes) -> Result<()> {
        let path = self.path("put", id)?;
        self.retrying(|| async {
            let res = if (data.len() as u64) > self.multipart_threshold {
                async {
                    let upload = self.store.put_multipart(&path).await?;
                    let mut w =
                        WriteMultipart::new_with_chunk_size(upload, self.multipart_part_size);
                    w.put(data.clone());
                    // `finish` aborts the upload (removing uploaded parts) if a part or the
                    // completion fails, so no partial object can become visible.
                    w.finish().await
                }
                .await
            } else {
                self.store.put(&path, PutPayload::from(data.clone())).await
            };
            res.map(|_| ())
                .map_err(|e| self.map_err("put", id.as_str(), e))
        })
        .await
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        let path = self.path("delete", id)?;
        self.retrying(|| async {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.map_err("delete", id.as_str(), e)),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let full = format!("{}{prefix}", self.prefix);
        let mut out = Vec::new();
        let mut page_token = None;
        loop {
            let token = page_token.take();
            // One page per attempt: a truncated or failed page is fetched again.
            let page = self
                .retrying(|| async {
                    let opts = PaginatedListOptions {
                        page_token: token.clone(),
                        ..Default::default()
                    };
                    self.store
                        .list_paginated((!full.is_empty()).then_some(full.as_str()), opts)
                        .await
                        .map_err(|e| self.map_err("list", prefix, e))
                })
                .await?;
            for o in page.result.objects {
                let Some(id) = o.location.as_ref().strip_prefix(self.prefix.as_str()) else {
                    continue;
                };
                if id == KOPIA_STORAGE_CONFIG || !id.starts_with(prefix) {
                    continue;
                }
                out.push(BlobMetadata {
                    id: BlobId::new(id),
                    length: o.size,
                    timestamp: o.last_modified,
                });
            }
            match page.page_token {
                Some(t) => page_token = Some(t),
                None => break,
            }
        }
        out.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_url_follows_tls_and_region() {
        let mut o = S3Options::new("b");
        assert_eq!(o.endpoint_url(), "https://s3.us-east-1.amazonaws.com");
        o.region = Some("eu-west-1".into());
        assert_eq!(o.endpoint_url(), "https://s3.eu-west-1.amazonaws.com");
        o.endpoint = Some("minio.lan:9000".into());
        assert_eq!(o.endpoint_url(), "https://minio.lan:9000");
        o.disable_tls = true;
        assert_eq!(o.endpoint_url(), "http://minio.lan:9000");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let mut o = S3Options::new("b");
        o.access_key_id = Some("AK".into());
        o.secret_access_key = Some("SECRETKEY".into());
        o.session_token = Some("SESSIONTOKEN".into());
        let dbg = format!("{o:?}");
        assert!(dbg.contains("AK"), "{dbg}");
        assert!(
            !dbg.contains("SECRETKEY") && !dbg.contains("SESSIONTOKEN"),
            "{dbg}"
        );
    }

    #[test]
    fn storage_construction() {
        let mut o = S3Options::new("bkt");
        o.prefix = "team/app1/".into();
        o.endpoint = Some("127.0.0.1:9".into());
        o.disable_tls = true;
        let e = S3Storage::new(o.clone()).expect_err("no credentials");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");

        o.access_key_id = Some("a".into());
        o.secret_access_key = Some("s".into());
        let s = S3Storage::new(o.clone()).expect("storage");
        assert_eq!(s.key(&BlobId::new("p0123-s1")), "team/app1/p0123-s1");
        assert_eq!(s.describe(), "s3://bkt/team/app1/");
        assert_eq!(s.endpoint_url(), "http://127.0.0.1:9");

        let mut unslashed = o.clone();
        unslashed.prefix = "team/app1".into();
        assert_eq!(
            S3Storage::new(unslashed).expect_err("prefix").kind(),
            ErrorKind::Config
        );
        let mut aws_http = o.clone();
        aws_http.endpoint = None;
        assert_eq!(
            S3Storage::new(aws_http)
                .expect_err("AWS without TLS")
                .kind(),
            ErrorKind::Config
        );

        o.multipart_part_size = 1024;
        assert_eq!(
            S3Storage::new(o.clone()).expect_err("part").kind(),
            ErrorKind::Config
        );
        o.multipart_part_size = MIN_PART_SIZE;
        o.ca_bundle = Some(PathBuf::from("/nonexistent/ca.pem"));
        let e = S3Storage::new(o).expect_err("ca");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn status_classification() {
        let msg = |s: &str| {
            format!(
                "Error performing GET http://h/b/k in 1s - Server returned non-2xx status code: {s}: <Error/>"
            )
        };
        assert_eq!(
            status_kind(&msg("503 Service Unavailable")),
            ErrorKind::Transient
        );
        assert_eq!(
            status_kind(&msg("500 Internal Server Error")),
            ErrorKind::Transient
        );
        assert_eq!(
            status_kind(&msg("429 Too Many Requests")),
            ErrorKind::Transient
        );
        assert_eq!(status_kind(&msg("400 Bad Request")), ErrorKind::Other);
        assert_eq!(
            status_kind(&msg("416 Range Not Satisfiable")),
            ErrorKind::Corrupt
        );
        assert_eq!(
            status_kind("Server returned error response: <Code>SlowDown</Code>"),
            ErrorKind::Transient
        );
        assert_eq!(status_kind("something else"), ErrorKind::Other);
    }
}
