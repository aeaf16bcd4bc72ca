//! S3 options from a repository URL and environment variables.
//!
//! The engine takes [`S3Options`] as plain data; this is where the mover's front ends turn
//! `s3://BUCKET[/PREFIX]` and the process environment into them. The function is pure: the
//! environment comes in as a lookup, so tests pass a map.
//!
//! Each setting comes from the first source in this table that is set to a non-empty value
//! (`ARKIV_S3_*` override Kopia's and VolSync's names, which are listed in the precedence
//! VolSync's mover script uses):
//!
//! | setting | sources, highest first | default |
//! |---|---|---|
//! | bucket | `ARKIV_S3_BUCKET`, `KOPIA_S3_BUCKET`, URL host | required |
//! | prefix | `ARKIV_S3_PREFIX`, URL path | `""` (bucket root) |
//! | endpoint | `ARKIV_S3_ENDPOINT`, `KOPIA_S3_ENDPOINT`, `AWS_S3_ENDPOINT` | AWS (`s3.<region>.amazonaws.com`) |
//! | TLS off | `ARKIV_S3_DISABLE_TLS`, `KOPIA_S3_DISABLE_TLS`, `AWS_S3_DISABLE_TLS` | `false` (TLS on) |
//! | region | `ARKIV_S3_REGION`, `AWS_REGION`, `AWS_DEFAULT_REGION` | `us-east-1` |
//! | access key | `ARKIV_S3_ACCESS_KEY_ID`, `AWS_ACCESS_KEY_ID` | required |
//! | secret key | `ARKIV_S3_SECRET_ACCESS_KEY`, `AWS_SECRET_ACCESS_KEY` | required |
//! | session token | `ARKIV_S3_SESSION_TOKEN`, `AWS_SESSION_TOKEN` | none |
//! | CA bundle (PEM file) | `ARKIV_S3_CA_BUNDLE`, `CUSTOM_CA`, `KOPIA_CUSTOM_CA` | system roots |
//! | path-style addressing | `ARKIV_S3_PATH_STYLE` | path-style for custom endpoints, virtual-host for AWS |
//! | retry budget | `ARKIV_S3_RETRY_TIMEOUT` (seconds, or a Go duration such as `5m`) | `180s` |
//! | proxy | `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (see [`super::proxy_env`]) | none |
//!
//! Normalisation (VolSync's mover does the same before calling Kopia):
//! * The prefix has empty segments (`//`) and a leading `/` removed and is forced to end in `/`:
//!   `s3://b/team/app1` and `s3://b/team/app1/` both give keys `team/app1/<blobID>`. Only
//!   `[A-Za-z0-9._-]` are allowed in segments, and `.`/`..` segments are rejected.
//! * The endpoint is `host[:port]`; an `http://` or `https://` scheme is stripped and does
//!   **not** choose TLS (Kopia's behaviour): only `*_S3_DISABLE_TLS=true` turns TLS off.
//! * Booleans accept `true/false/1/0/yes/no` (any case); anything else is a `Config` error.
//! * Credentials are static keys; instance profiles and web identity are not supported.

use std::path::PathBuf;

use arkiv_engine::blob::s3::S3Options;
use arkiv_engine::{Error, Result};

/// Builds options from a repository URL (`s3://BUCKET[/PREFIX]`, or `""` when the bucket
/// comes from the environment) and environment lookups, with the precedence of the
/// module-level table. Empty variables count as unset.
pub fn s3_options_from_env(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<S3Options> {
    let get = |names: &[&str]| -> Option<(String, String)> {
        names.iter().find_map(|n| {
            env(n)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .map(|v| ((*n).to_owned(), v))
        })
    };
    let value = |names: &[&str]| get(names).map(|(_, v)| v);

    let (url_bucket, url_prefix) = parse_url(url)?;
    let bucket = value(&["ARKIV_S3_BUCKET", "KOPIA_S3_BUCKET"])
        .or(url_bucket)
        .ok_or_else(|| {
            Error::Config(format!(
                "S3 bucket not set: give s3://BUCKET[/PREFIX] or set KOPIA_S3_BUCKET (repository URL {url:?})"
            ))
        })?;
    if bucket.contains('/') {
        return Err(Error::Config(format!("invalid S3 bucket name {bucket:?}")));
    }
    let prefix = normalize_prefix(
        &value(&["ARKIV_S3_PREFIX"])
            .or(url_prefix)
            .unwrap_or_default(),
    )?;

    let mut opts = S3Options::new(bucket);
    opts.prefix = prefix;
    if let Some(e) = value(&["ARKIV_S3_ENDPOINT", "KOPIA_S3_ENDPOINT", "AWS_S3_ENDPOINT"]) {
        opts.endpoint = Some(normalize_endpoint(&e)?);
    }
    if let Some((name, v)) = get(&[
        "ARKIV_S3_DISABLE_TLS",
        "KOPIA_S3_DISABLE_TLS",
        "AWS_S3_DISABLE_TLS",
    ]) {
        opts.disable_tls = parse_bool(&name, &v)?;
    }
    opts.region = value(&["ARKIV_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"]);
    opts.access_key_id = value(&["ARKIV_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"]);
    opts.secret_access_key = value(&["ARKIV_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"]);
    opts.session_token = value(&["ARKIV_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"]);
    opts.ca_bundle =
        value(&["ARKIV_S3_CA_BUNDLE", "CUSTOM_CA", "KOPIA_CUSTOM_CA"]).map(PathBuf::from);
    if let Some((name, v)) = get(&["ARKIV_S3_PATH_STYLE"]) {
        opts.path_style = Some(parse_bool(&name, &v)?);
    }
    if let Some((name, v)) = get(&["ARKIV_S3_RETRY_TIMEOUT"]) {
        opts.retry.retry_timeout =
            parse_timeout(&v).map_err(|e| Error::Config(format!("{name}={v:?}: {e}")))?;
    }
    opts.proxy = super::proxy_env::proxy_from_env(env);
    Ok(opts)
}

/// Splits `s3://BUCKET/PATH` into bucket and raw prefix; `""` yields neither.
fn parse_url(url: &str) -> Result<(Option<String>, Option<String>)> {
    let url = url.trim();
    if url.is_empty() {
        return Ok((None, None));
    }
    let rest = url
        .get(..5)
        .filter(|s| s.eq_ignore_ascii_case("s3://"))
        .and_then(|_| url.get(5..))
        .ok_or_else(|| {
            Error::Config(format!(
                "not an S3 repository URL: {url:?} (expected s3://BUCKET[/PREFIX])"
            ))
        })?;
    let (bucket, path) = match rest.split_once('/') {
        Some((b, p)) => (b, Some(p.to_owned())),
        None => (rest, None),
    };
    Ok(((!bucket.is_empty()).then(|| bucket.to_owned()), path))
}

/// Drops empty segments, validates the rest, and forces a trailing `/` (empty stays empty).
pub(crate) fn normalize_prefix(raw: &str) -> Result<String> {
    let mut out = String::new();
    for seg in raw.split('/').filter(|s| !s.is_empty()) {
        let ok = seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok || seg == "." || seg == ".." {
            return Err(Error::Config(format!(
                "invalid prefix {raw:?}: segment {seg:?} (allowed: A-Z a-z 0-9 . _ - and /)"
            )));
        }
        out.push_str(seg);
        out.push('/');
    }
    Ok(out)
}

/// Strips a scheme and trailing `/`; what is left must be `host[:port]`.
fn normalize_endpoint(raw: &str) -> Result<String> {
    let lower = raw.to_ascii_lowercase();
    let rest = ["https://", "http://"]
        .iter()
        .find(|s| lower.starts_with(*s))
        .and_then(|s| raw.get(s.len()..))
        .unwrap_or(raw);
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(Error::Config(format!(
            "invalid S3 endpoint {raw:?}: expected host[:port]"
        )));
    }
    Ok(host.to_owned())
}

/// A non-negative duration: whole seconds (`120`) or a Go duration (`2m`, `90s`).
/// The error is the reason alone (the caller names the variable).
pub(crate) fn parse_timeout(v: &str) -> std::result::Result<std::time::Duration, String> {
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    arkiv_format::gojson::duration::parse_non_negative(v)
        .map_err(|e| format!("expected seconds or a duration such as 5m ({e})"))
}

pub(crate) fn parse_bool(name: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(Error::Config(format!(
            "{name}={v:?}: expected true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arkiv_engine::ErrorKind;
    use arkiv_engine::blob::s3::S3Storage;
    use std::collections::HashMap;

    fn opts(url: &str, vars: &[(&str, &str)]) -> Result<S3Options> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        s3_options_from_env(url, &|k| map.get(k).cloned())
    }

    /// The URL requests go to, as the storage built from `o` reports it.
    fn endpoint_url(mut o: S3Options) -> String {
        o.access_key_id = Some("a".into());
        o.secret_access_key = Some("s".into());
        S3Storage::new(o)
            .expect("storage")
            .endpoint_url()
            .to_owned()
    }

    #[test]
    fn prefix_is_normalised() {
        for (url, prefix) in [
            ("s3://b", ""),
            ("s3://b/", ""),
            ("s3://b/team/app1", "team/app1/"),
            ("s3://b/team/app1/", "team/app1/"),
            ("s3://b//team//app1//", "team/app1/"),
            ("S3://b/x.y_z-1", "x.y_z-1/"),
        ] {
            let o = opts(url, &[]).expect(url);
            assert_eq!(o.bucket, "b", "{url}");
            assert_eq!(o.prefix, prefix, "{url}");
        }
        for bad in ["s3://b/a b", "s3://b/../x", "s3://b/./x", "s3://b/a?x=1"] {
            let e = opts(bad, &[]).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
        }
        let o = opts("s3://b/url", &[("ARKIV_S3_PREFIX", "/env/p")]).expect("env prefix");
        assert_eq!(o.prefix, "env/p/");
    }

    #[test]
    fn url_errors() {
        assert_eq!(
            opts("filesystem:///x", &[]).expect_err("scheme").kind(),
            ErrorKind::Config
        );
        let e = opts("", &[]).expect_err("no bucket");
        assert!(e.to_string().contains("KOPIA_S3_BUCKET"), "{e}");
        assert_eq!(
            opts("s3://", &[]).expect_err("empty bucket").kind(),
            ErrorKind::Config
        );
        let o = opts("", &[("KOPIA_S3_BUCKET", "kb")]).expect("bucket from env");
        assert_eq!((o.bucket.as_str(), o.prefix.as_str()), ("kb", ""));
    }

    #[test]
    fn bucket_precedence() {
        let o = opts("s3://urlb/p", &[("KOPIA_S3_BUCKET", "kb")]).expect("ok");
        assert_eq!(o.bucket, "kb");
        assert_eq!(o.prefix, "p/", "URL path still gives the prefix");
        let o = opts(
            "s3://urlb",
            &[("KOPIA_S3_BUCKET", "kb"), ("ARKIV_S3_BUCKET", "ab")],
        )
        .expect("ok");
        assert_eq!(o.bucket, "ab");
        let o = opts("s3://urlb", &[("KOPIA_S3_BUCKET", "")]).expect("empty = unset");
        assert_eq!(o.bucket, "urlb");
    }

    #[test]
    fn endpoint_scheme_is_stripped_and_does_not_choose_tls() {
        for (raw, host) in [
            ("minio.lan:9000", "minio.lan:9000"),
            ("http://minio.lan:9000", "minio.lan:9000"),
            ("HTTPS://minio.lan/", "minio.lan"),
        ] {
            let o = opts("s3://b", &[("KOPIA_S3_ENDPOINT", raw)]).expect(raw);
            assert_eq!(o.endpoint.as_deref(), Some(host));
            assert!(!o.disable_tls, "{raw}: TLS stays on");
            assert_eq!(endpoint_url(o), format!("https://{host}"));
        }
        let e = opts("s3://b", &[("KOPIA_S3_ENDPOINT", "http://h/path")]).expect_err("path");
        assert_eq!(e.kind(), ErrorKind::Config);
        let o = opts(
            "s3://b",
            &[
                ("AWS_S3_ENDPOINT", "aws-ep"),
                ("KOPIA_S3_ENDPOINT", "kopia-ep"),
                ("ARKIV_S3_ENDPOINT", "arkiv-ep"),
            ],
        )
        .expect("ok");
        assert_eq!(o.endpoint.as_deref(), Some("arkiv-ep"));
        let o = opts(
            "s3://b",
            &[
                ("AWS_S3_ENDPOINT", "aws-ep"),
                ("KOPIA_S3_ENDPOINT", "kopia-ep"),
            ],
        )
        .expect("ok");
        assert_eq!(o.endpoint.as_deref(), Some("kopia-ep"));
    }

    #[test]
    fn tls_flag() {
        let tls = |vars: &[(&str, &str)]| opts("s3://b", vars).map(|o| o.disable_tls);
        assert!(!tls(&[]).expect("default"));
        assert!(tls(&[("KOPIA_S3_DISABLE_TLS", "true")]).expect("kopia"));
        assert!(tls(&[("AWS_S3_DISABLE_TLS", "TRUE")]).expect("aws"));
        assert!(!tls(&[("KOPIA_S3_DISABLE_TLS", "false")]).expect("false"));
        assert!(
            !tls(&[
                ("KOPIA_S3_DISABLE_TLS", "true"),
                ("ARKIV_S3_DISABLE_TLS", "false")
            ])
            .expect("arkiv overrides")
        );
        let e = tls(&[("KOPIA_S3_DISABLE_TLS", "maybe")]).expect_err("bad bool");
        assert!(e.to_string().contains("KOPIA_S3_DISABLE_TLS"), "{e}");
    }

    #[test]
    fn region_credentials_ca_precedence() {
        let o = opts(
            "s3://b",
            &[
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_REGION", "eu-central-1"),
                ("AWS_ACCESS_KEY_ID", "AK"),
                ("AWS_SECRET_ACCESS_KEY", "SK"),
                ("AWS_SESSION_TOKEN", "ST"),
                ("KOPIA_CUSTOM_CA", "/k.pem"),
                ("CUSTOM_CA", "/c.pem"),
            ],
        )
        .expect("ok");
        assert_eq!(o.region.as_deref(), Some("eu-central-1"));
        assert_eq!(o.access_key_id.as_deref(), Some("AK"));
        assert_eq!(o.secret_access_key.as_deref(), Some("SK"));
        assert_eq!(o.session_token.as_deref(), Some("ST"));
        assert_eq!(o.ca_bundle, Some(PathBuf::from("/c.pem")));
        let dbg = format!("{o:?}");
        assert!(!dbg.contains("SK") && !dbg.contains("ST"), "{dbg}");

        let o = opts(
            "s3://b",
            &[
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("ARKIV_S3_REGION", "local"),
                ("AWS_ACCESS_KEY_ID", "AK"),
                ("ARKIV_S3_ACCESS_KEY_ID", "AK2"),
                ("KOPIA_CUSTOM_CA", "/k.pem"),
                ("ARKIV_S3_CA_BUNDLE", "/a.pem"),
                ("ARKIV_S3_PATH_STYLE", "false"),
            ],
        )
        .expect("ok");
        assert_eq!(o.region.as_deref(), Some("local"));
        assert_eq!(o.access_key_id.as_deref(), Some("AK2"));
        assert_eq!(o.ca_bundle, Some(PathBuf::from("/a.pem")));
        assert_eq!(o.path_style, Some(false));
        let o = opts("s3://b", &[("AWS_DEFAULT_REGION", "eu-west-1")]).expect("ok");
        assert_eq!(o.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn options_from_env_build_a_storage() {
        let mut o = opts(
            "s3://bkt/team/app1",
            &[
                ("KOPIA_S3_ENDPOINT", "127.0.0.1:9"),
                ("KOPIA_S3_DISABLE_TLS", "true"),
            ],
        )
        .expect("ok");
        let e = S3Storage::new(o.clone()).expect_err("no credentials");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
        o.access_key_id = Some("a".into());
        o.secret_access_key = Some("s".into());
        let s = S3Storage::new(o).expect("storage");
        assert_eq!(
            (s.bucket(), s.prefix(), s.endpoint_url()),
            ("bkt", "team/app1/", "http://127.0.0.1:9")
        );
    }

    #[test]
    fn retry_budget_is_configurable() {
        let default = opts("s3://b", &[]).expect("default");
        assert!(default.retry.retry_timeout >= std::time::Duration::from_secs(120));
        for (v, secs) in [("300", 300), ("5m", 300), ("90s", 90), ("0", 0)] {
            let o = opts("s3://b", &[("ARKIV_S3_RETRY_TIMEOUT", v)]).expect(v);
            assert_eq!(o.retry.retry_timeout.as_secs(), secs, "{v}");
        }
        let e = opts("s3://b", &[("ARKIV_S3_RETRY_TIMEOUT", "soon")]).expect_err("junk");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("ARKIV_S3_RETRY_TIMEOUT"), "{e}");
    }
}
