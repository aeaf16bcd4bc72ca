//! HTTP proxy settings shared by every HTTP-based backend (S3, Azure, GCS, WebDAV).
//!
//! Plain data: the caller (the mover) fills it from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`;
//! the engine reads no environment. Without settings no proxy is used at all (the HTTP
//! client's own environment lookup is switched off, so what is configured is what happens).

use object_store::ClientOptions;

/// Which proxy requests go through.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyOptions {
    /// Proxy URL for `http://` endpoints (`HTTP_PROXY`).
    pub http: Option<String>,
    /// Proxy URL for `https://` endpoints (`HTTPS_PROXY`).
    pub https: Option<String>,
    /// Comma-separated hosts, domains (`.example.com`) and CIDR ranges reached directly
    /// (`NO_PROXY`).
    pub no_proxy: Option<String>,
}

impl std::fmt::Debug for ProxyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A proxy URL may carry `user:password@`: show only that one is set.
        f.debug_struct("ProxyOptions")
            .field("http", &self.http.as_deref().map(redact_userinfo))
            .field("https", &self.https.as_deref().map(redact_userinfo))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// `scheme://user:pass@host` → `scheme://<redacted>@host` (other strings unchanged).
pub fn redact_userinfo(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://<redacted>@{}", &rest[at + 1..]);
        }
    }
    url.to_owned()
}

impl ProxyOptions {
    /// The proxy for an endpoint that uses TLS (`https`) or not.
    pub fn for_scheme(&self, tls: bool) -> Option<&str> {
        if tls { &self.https } else { &self.http }.as_deref()
    }

    /// Applies the proxy for endpoints with (`tls`) or without TLS to `object_store`'s client.
    pub fn apply_to_object_store(&self, client: ClientOptions, tls: bool) -> ClientOptions {
        let Some(url) = self.for_scheme(tls) else {
            return client;
        };
        let mut client = client.with_proxy_url(url);
        if let Some(np) = self.no_proxy.as_deref().filter(|s| !s.trim().is_empty()) {
            client = client.with_proxy_excludes(np);
        }
        client
    }

    /// Applies the settings to a `reqwest` client builder (no proxy at all when unset).
    pub fn apply_to_reqwest(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> std::result::Result<reqwest::ClientBuilder, String> {
        let mut builder = builder.no_proxy();
        let no_proxy = self
            .no_proxy
            .as_deref()
            .and_then(reqwest::NoProxy::from_string);
        if let Some(u) = &self.http {
            let p = reqwest::Proxy::http(u)
                .map_err(|e| format!("invalid HTTP proxy {}: {e}", redact_userinfo(u)))?;
            builder = builder.proxy(p.no_proxy(no_proxy.clone()));
        }
        if let Some(u) = &self.https {
            let p = reqwest::Proxy::https(u)
                .map_err(|e| format!("invalid HTTPS proxy {}: {e}", redact_userinfo(u)))?;
            builder = builder.proxy(p.no_proxy(no_proxy));
        }
        Ok(builder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("http://u:secret@proxy:3128/x"),
            "http://<redacted>@proxy:3128/x"
        );
        assert_eq!(redact_userinfo("http://proxy:3128"), "http://proxy:3128");
        let p = ProxyOptions {
            https: Some("http://u:secret@p:1".into()),
            ..Default::default()
        };
        assert!(!format!("{p:?}").contains("secret"));
        assert_eq!(p.for_scheme(true), Some("http://u:secret@p:1"));
        assert_eq!(p.for_scheme(false), None);
    }
}
