//! Backblaze B2 options from a repository URL and environment variables (served through B2's
//! S3-compatible API: see `arkiv_engine::blob::b2` for why Kopia's B2 repositories are the
//! same objects there).
//!
//! | setting | sources, highest first | default |
//! |---|---|---|
//! | bucket | `KOPIA_B2_BUCKET`, host of `b2://BUCKET[/PREFIX]` | required |
//! | prefix | path of the URL (normalised like S3's: ends in `/`) | `""` (VolSync's script passes none) |
//! | key ID | `B2_ACCOUNT_ID` (VolSync), `B2_KEY_ID` (Kopia) | required |
//! | key | `B2_APPLICATION_KEY` (VolSync), `B2_KEY` (Kopia) | required |
//! | S3 endpoint | `ARKIV_B2_S3_ENDPOINT` (`https://s3.<region>.backblazeb2.com`; `http://` turns TLS off) | asked from B2's `b2_authorize_account` |
//! | CA bundle (PEM file) | `CUSTOM_CA`, `KOPIA_CUSTOM_CA` | system roots |
//! | proxy | see [`super::proxy_env`] | none |

use std::path::PathBuf;

use arkiv_engine::blob::b2::B2Options;
use arkiv_engine::{Error, Result};

use super::proxy_env::{first, proxy_from_env};
use super::s3_env::normalize_prefix;

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// B2 options from `b2://BUCKET[/PREFIX]` (or `""`) and the environment.
pub fn b2_options_from_env(url: &str, env: Env<'_>) -> Result<B2Options> {
    let url = url.trim();
    let (mut bucket, mut prefix) = (None, String::new());
    if !url.is_empty() {
        let rest = url
            .get(..5)
            .filter(|s| s.eq_ignore_ascii_case("b2://"))
            .and_then(|_| url.get(5..))
            .ok_or_else(|| {
                Error::Config(format!(
                    "invalid repository URL {url:?}: expected b2://BUCKET[/PREFIX]"
                ))
            })?;
        let (b, p) = rest.split_once('/').unwrap_or((rest, ""));
        bucket = Some(b.to_owned()).filter(|b| !b.is_empty());
        prefix = normalize_prefix(p)?;
    }
    let bucket = first(env, &["KOPIA_B2_BUCKET"]).or(bucket).ok_or_else(|| {
        Error::Config("B2 bucket not set: give b2://BUCKET[/PREFIX] or set KOPIA_B2_BUCKET".into())
    })?;
    let key_id = first(env, &["B2_ACCOUNT_ID", "B2_KEY_ID"])
        .ok_or_else(|| Error::Config("B2 key ID not set: set B2_ACCOUNT_ID".into()))?;
    let key = first(env, &["B2_APPLICATION_KEY", "B2_KEY"]).ok_or_else(|| {
        Error::Config("B2 application key not set: set B2_APPLICATION_KEY".into())
    })?;
    let mut o = B2Options::new(bucket, key_id, key);
    o.prefix = prefix;
    o.s3_endpoint = first(env, &["ARKIV_B2_S3_ENDPOINT"]);
    o.ca_bundle = first(env, &["CUSTOM_CA", "KOPIA_CUSTOM_CA"])
        .map(PathBuf::from)
        .filter(|p| p.exists());
    o.proxy = proxy_from_env(env);
    Ok(o)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::connect::test_env as env;

    #[test]
    fn url_and_variables() {
        let keys = [("B2_ACCOUNT_ID", "0041"), ("B2_APPLICATION_KEY", "K004x")];
        let o = b2_options_from_env("b2://bkt/team//app", &env(&keys)).unwrap();
        assert_eq!((o.bucket.as_str(), o.prefix.as_str()), ("bkt", "team/app/"));
        assert_eq!((o.key_id.as_str(), o.key.as_str()), ("0041", "K004x"));
        assert_eq!(o.s3_endpoint, None);
        let vars = [
            ("KOPIA_B2_BUCKET", "other"),
            ("B2_KEY_ID", "kid"),
            ("B2_KEY", "k"),
            ("ARKIV_B2_S3_ENDPOINT", "http://127.0.0.1:5000"),
        ];
        let o = b2_options_from_env("", &env(&vars)).unwrap();
        assert_eq!((o.bucket.as_str(), o.prefix.as_str()), ("other", ""));
        assert_eq!((o.key_id.as_str(), o.key.as_str()), ("kid", "k"));
        assert_eq!(o.s3_endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        let e = b2_options_from_env("b2://bkt", &env(&[])).unwrap_err();
        assert!(e.to_string().contains("B2_ACCOUNT_ID"), "{e}");
        let e = b2_options_from_env("", &env(&keys)).unwrap_err();
        assert!(e.to_string().contains("KOPIA_B2_BUCKET"), "{e}");
        assert!(b2_options_from_env("s3://x", &env(&keys)).is_err());
    }
}
