//! HTTP proxy settings for every HTTP-based backend (S3, Azure, GCS, WebDAV, rclone's loopback
//! server excepted): `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, upper case first, then lower case
//! (the usual convention; Kopia's Go HTTP client reads the same names). Empty values count as
//! unset. Loopback addresses (`localhost`, `127.0.0.1`, `::1`) are always reached directly.

use arkiv_engine::blob::proxy::ProxyOptions;

/// The first non-empty of `names`.
pub(crate) fn first(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        env(n)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// Proxy settings from the environment lookup.
pub fn proxy_from_env(env: &dyn Fn(&str) -> Option<String>) -> ProxyOptions {
    let mut p = ProxyOptions::default();
    p.https = first(env, &["HTTPS_PROXY", "https_proxy"]);
    p.http = first(env, &["HTTP_PROXY", "http_proxy"]);
    let mut no_proxy = first(env, &["NO_PROXY", "no_proxy"]).unwrap_or_default();
    if p.https.is_some() || p.http.is_some() {
        for local in ["localhost", "127.0.0.1", "::1"] {
            if !no_proxy.split(',').any(|h| h.trim() == local) {
                if !no_proxy.is_empty() {
                    no_proxy.push(',');
                }
                no_proxy.push_str(local);
            }
        }
    }
    p.no_proxy = (!no_proxy.is_empty()).then_some(no_proxy);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_precedence() {
        let env = |k: &str| match k {
            "HTTPS_PROXY" => Some("http://proxy:3128".to_owned()),
            "https_proxy" => Some("http://other:1".to_owned()),
            "http_proxy" => Some("http://lower:8080".to_owned()),
            "NO_PROXY" => Some("minio.lan,.corp".to_owned()),
            _ => None,
        };
        let p = proxy_from_env(&env);
        assert_eq!(p.https.as_deref(), Some("http://proxy:3128"));
        assert_eq!(p.http.as_deref(), Some("http://lower:8080"));
        assert_eq!(
            p.no_proxy.as_deref(),
            Some("minio.lan,.corp,localhost,127.0.0.1,::1")
        );
        let none = proxy_from_env(&|_| None);
        assert_eq!(none, ProxyOptions::default());
    }
}
