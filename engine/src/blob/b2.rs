//! Backblaze B2 through B2's S3-compatible API: the S3 backend with B2's endpoint.
//!
//! # Why the S3 backend serves Kopia's B2 repositories
//! Facts from Kopia's `repo/blob/b2/b2_storage.go` and `repo/blob/s3/s3_storage.go` (both
//! unchanged in this respect through Kopia's 2026 sources):
//! * Kopia's B2 storage names every blob's file `Prefix + blobID`
//!   (`getObjectNameString`), exactly as its S3 storage names objects; there is no sharding,
//!   suffix or metadata file. Listing is "file names starting with `Prefix + prefix`",
//!   metadata is the file's length and upload time.
//! * Deleting a blob "hides" the file (B2's `b2_hide_file`); an S3 `DELETE` on B2 does the
//!   same (it adds a hide marker), and hidden files are not listed by either API.
//! * B2's S3-compatible API serves the same files under the same names as object keys, so a
//!   repository written by Kopia's native B2 client is read and written by our S3 backend
//!   unchanged, and the other way round.
//!
//! # Where the S3 endpoint comes from
//! VolSync's mover passes only the bucket, the key ID and the application key. B2's
//! `b2_authorize_account` call (HTTP basic auth with the key ID and key) answers with the
//! account's S3 endpoint (`s3ApiUrl`, `https://s3.<region>.backblazeb2.com`), whose host names
//! the signing region. [`B2Options::s3_endpoint`] skips that call (for a known endpoint, or a
//! stand-in S3 server in tests). The key ID and key are the S3 access key and secret.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::proxy::ProxyOptions;
use super::s3::S3Options;
use crate::{Error, ErrorKind, Result};

/// B2's account-authorization API (the start of every native B2 session).
pub const B2_API_URL: &str = "https://api.backblazeb2.com";

/// Everything needed to reach one B2 location, as plain data.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct B2Options {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix: empty, or ending in `/`.
    pub prefix: String,
    /// Application key ID (VolSync's `B2_ACCOUNT_ID`).
    pub key_id: String,
    /// Application key (VolSync's `B2_APPLICATION_KEY`).
    pub key: String,
    /// The S3 endpoint URL (`https://s3.<region>.backblazeb2.com`); `None`: asked from
    /// `b2_authorize_account`.
    pub s3_endpoint: Option<String>,
    /// Base URL of `b2_authorize_account` ([`B2_API_URL`]).
    pub api_url: String,
    /// PEM file with extra trusted CA certificates.
    pub ca_bundle: Option<PathBuf>,
    /// Proxy settings.
    pub proxy: ProxyOptions,
}

impl fmt::Debug for B2Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("B2Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("key_id", &self.key_id)
            .field("key", &"<redacted>")
            .field("s3_endpoint", &self.s3_endpoint)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl B2Options {
    /// Options for `bucket` (no prefix) with the given key, endpoint asked from B2.
    pub fn new(
        bucket: impl Into<String>,
        key_id: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        B2Options {
            bucket: bucket.into(),
            prefix: String::new(),
            key_id: key_id.into(),
            key: key.into(),
            s3_endpoint: None,
            api_url: B2_API_URL.to_owned(),
            ca_bundle: None,
            proxy: ProxyOptions::default(),
        }
    }

    /// `b2://bucket/prefix`.
    pub fn describe(&self) -> String {
        format!("b2://{}/{}", self.bucket, self.prefix)
    }

    /// The S3 options that reach this location: the endpoint from
    /// [`B2Options::s3_endpoint`], else from `b2_authorize_account`.
    pub async fn s3_options(&self) -> Result<S3Options> {
        let endpoint = match &self.s3_endpoint {
            Some(e) => e.clone(),
            None => self.authorize().await?,
        };
        self.s3_options_for(&endpoint)
    }

    /// The S3 options for a known endpoint URL (`https://host[:port]`; `http://` turns TLS
    /// off).
    pub fn s3_options_for(&self, endpoint: &str) -> Result<S3Options> {
        let (tls, host) = if let Some(h) = endpoint.strip_prefix("https://") {
            (true, h)
        } else if let Some(h) = endpoint.strip_prefix("http://") {
            (false, h)
        } else {
            (true, endpoint)
        };
        let host = host.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(Error::Config(format!(
                "{}: invalid S3 endpoint {endpoint:?}: expected https://HOST[:PORT]",
                self.describe()
            )));
        }
        let mut o = S3Options::new(self.bucket.clone());
        o.prefix = self.prefix.clone();
        o.endpoint = Some(host.to_owned());
        o.disable_tls = !tls;
        o.region = Some(region_of(host).unwrap_or("us-east-1").to_owned());
        o.access_key_id = Some(self.key_id.clone());
        o.secret_access_key = Some(self.key.clone());
        o.ca_bundle = self.ca_bundle.clone();
        o.proxy = self.proxy.clone();
        Ok(o)
    }

    /// `b2_authorize_account`: the account's S3 endpoint URL.
    async fn authorize(&self) -> Result<String> {
        let url = format!(
            "{}/b2api/v3/b2_authorize_account",
            self.api_url.trim_end_matches('/')
        );
        let fail = |kind, m: String| Error::Storage {
            storage: self.describe(),
            op: "authorize",
            target: url.clone(),
            kind,
            message: m,
        };
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10));
        b = self
            .proxy
            .apply_to_reqwest(b)
            .map_err(|m| fail(ErrorKind::Config, m))?;
        if let Some(path) = &self.ca_bundle {
            let pem = std::fs::read(path).map_err(|e| {
                fail(
                    ErrorKind::Config,
                    format!("cannot read CA bundle {}: {e}", path.display()),
                )
            })?;
            for c in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                fail(
                    ErrorKind::Config,
                    format!("invalid CA bundle {}: {e}", path.display()),
                )
            })? {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| fail(ErrorKind::Config, e.to_string()))?;
        let res = client
            .get(&url)
            .basic_auth(&self.key_id, Some(&self.key))
            .send()
            .await
            .map_err(|e| fail(ErrorKind::Transient, format!("request failed: {e}")))?;
        let status = res.status();
        let body = res
            .bytes()
            .await
            .map_err(|e| fail(ErrorKind::Transient, format!("reply failed: {e}")))?;
        if !status.is_success() {
            let kind = match status.as_u16() {
                400 | 401 => ErrorKind::Auth,
                403 => ErrorKind::PermissionDenied,
                429 | 500..=599 => ErrorKind::Transient,
                _ => ErrorKind::Other,
            };
            return Err(fail(
                kind,
                format!(
                    "server replied {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ),
            ));
        }
        s3_api_url(&body).map_err(|m| fail(ErrorKind::Other, m))
    }
}

/// The `s3ApiUrl` of a `b2_authorize_account` reply (v3: `apiInfo.storageApi.s3ApiUrl`;
/// v2: top level).
pub fn s3_api_url(body: &[u8]) -> std::result::Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid authorization reply: {e}"))?;
    v.pointer("/apiInfo/storageApi/s3ApiUrl")
        .or_else(|| v.get("s3ApiUrl"))
        .and_then(|u| u.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "the authorization reply names no s3ApiUrl".to_owned())
}

/// The region in a B2 S3 host name (`s3.us-west-004.backblazeb2.com` → `us-west-004`).
pub fn region_of(host: &str) -> Option<&str> {
    let host = host.split(':').next()?;
    host.strip_prefix("s3.")?
        .strip_suffix(".backblazeb2.com")
        .filter(|r| !r.is_empty() && !r.contains('.'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn authorization_reply_and_region() {
        // The shapes B2 documents for v3 and v2 of b2_authorize_account.
        let v3 = br#"{"accountId":"a","apiInfo":{"storageApi":{"apiUrl":"https://api004.backblazeb2.com","s3ApiUrl":"https://s3.us-west-004.backblazeb2.com"}},"authorizationToken":"t"}"#;
        assert_eq!(
            s3_api_url(v3).unwrap(),
            "https://s3.us-west-004.backblazeb2.com"
        );
        let v2 = br#"{"s3ApiUrl":"https://s3.eu-central-003.backblazeb2.com"}"#;
        assert_eq!(
            s3_api_url(v2).unwrap(),
            "https://s3.eu-central-003.backblazeb2.com"
        );
        assert!(s3_api_url(b"{}").is_err());
        assert!(s3_api_url(b"<html>").is_err());
        assert_eq!(
            region_of("s3.us-west-004.backblazeb2.com"),
            Some("us-west-004")
        );
        assert_eq!(region_of("127.0.0.1:9000"), None);
    }

    #[test]
    fn s3_options_keep_kopia_names_and_hide_the_key() {
        let mut o = B2Options::new("bkt", "0041234", "K004-secret");
        o.prefix = "team/".into();
        let s3 = o
            .s3_options_for("https://s3.us-west-004.backblazeb2.com")
            .unwrap();
        assert_eq!(s3.bucket, "bkt");
        assert_eq!(s3.prefix, "team/");
        assert_eq!(
            s3.endpoint.as_deref(),
            Some("s3.us-west-004.backblazeb2.com")
        );
        assert_eq!(s3.region.as_deref(), Some("us-west-004"));
        assert!(!s3.disable_tls);
        assert_eq!(s3.access_key_id.as_deref(), Some("0041234"));
        let local = o.s3_options_for("http://127.0.0.1:5000").unwrap();
        assert!(local.disable_tls);
        assert_eq!(local.region.as_deref(), Some("us-east-1"));
        assert!(o.s3_options_for("https://h/path").is_err());
        assert!(!format!("{o:?}").contains("K004-secret"));
        assert_eq!(o.describe(), "b2://bkt/team/");
    }
}
