//! WebDAV and rclone options from a repository URL and environment variables.
//!
//! | setting | sources, highest first | default |
//! |---|---|---|
//! | WebDAV URL | `WEBDAV_URL` (`http(s)://…`), else the repository URL: `webdav://HOST[:PORT]/PATH` (HTTP) or `webdavs://…` (HTTPS) | required |
//! | user name | `WEBDAV_USERNAME`, `KOPIA_WEBDAV_USERNAME`, user info of the URL | none |
//! | password | `WEBDAV_PASSWORD`, `KOPIA_WEBDAV_PASSWORD`, user info of the URL | none |
//! | CA bundle (PEM file) | `CUSTOM_CA`, `KOPIA_CUSTOM_CA` | system roots |
//! | rclone remote | `RCLONE_REMOTE_PATH`, else `rclone://REMOTE:PATH` | required |
//! | rclone binary | `RCLONE_EXE` | `rclone` from `PATH` |
//! | rclone config file | `RCLONE_CONFIG` (rclone reads it itself too) | rclone's default |
//!
//! `WEBDAV_*` and `RCLONE_*` are VolSync's names; `KOPIA_WEBDAV_*` are Kopia's. Proxies:
//! [`super::proxy_env`] (not used for rclone's own loopback server).

use std::path::PathBuf;

use arkiv_engine::blob::rclone::RcloneOptions;
use arkiv_engine::blob::webdav::WebDavOptions;
use arkiv_engine::{Error, Result};

use super::proxy_env::{first, proxy_from_env};

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// WebDAV options from `webdav://…`/`webdavs://…`/`http(s)://…` (or `""`) and the environment.
pub fn webdav_options_from_env(url: &str, env: Env<'_>) -> Result<WebDavOptions> {
    let url = url.trim();
    let from_url = if let Some(rest) = strip_scheme(url, "webdavs://") {
        Some(format!("https://{rest}"))
    } else if let Some(rest) = strip_scheme(url, "webdav://") {
        Some(format!("http://{rest}"))
    } else if strip_scheme(url, "http://").is_some() || strip_scheme(url, "https://").is_some() {
        Some(url.to_owned())
    } else if url.is_empty() {
        None
    } else {
        return Err(Error::Config(format!(
            "invalid repository URL {url:?}: expected webdav://HOST/PATH or webdavs://HOST/PATH"
        )));
    };
    let target = first(env, &["WEBDAV_URL"]).or(from_url).ok_or_else(|| {
        Error::Config("WebDAV URL not set: give webdavs://HOST/PATH or set WEBDAV_URL".into())
    })?;
    let mut o = WebDavOptions::new(target);
    o.username = first(env, &["WEBDAV_USERNAME", "KOPIA_WEBDAV_USERNAME"]);
    o.password = first(env, &["WEBDAV_PASSWORD", "KOPIA_WEBDAV_PASSWORD"]);
    o.ca_bundle = first(env, &["CUSTOM_CA", "KOPIA_CUSTOM_CA"])
        .map(PathBuf::from)
        .filter(|p| p.exists());
    o.proxy = proxy_from_env(env);
    Ok(o)
}

/// rclone options from `rclone://REMOTE:PATH` (or `""`) and the environment.
pub fn rclone_options_from_env(url: &str, env: Env<'_>) -> Result<RcloneOptions> {
    let url = url.trim();
    let from_url = match strip_scheme(url, "rclone://") {
        Some(rest) => Some(rest.to_owned()),
        None if url.is_empty() => None,
        None => {
            return Err(Error::Config(format!(
                "invalid repository URL {url:?}: expected rclone://REMOTE:PATH"
            )));
        }
    };
    let remote = first(env, &["RCLONE_REMOTE_PATH"])
        .or(from_url)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            Error::Config(
                "rclone remote not set: give rclone://REMOTE:PATH or set RCLONE_REMOTE_PATH".into(),
            )
        })?;
    let mut o = RcloneOptions::new(remote);
    if let Some(exe) = first(env, &["RCLONE_EXE"]) {
        o.exe = PathBuf::from(exe);
    }
    o.config = first(env, &["RCLONE_CONFIG"]).map(PathBuf::from);
    Ok(o)
}

fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    url.get(..scheme.len())
        .filter(|s| s.eq_ignore_ascii_case(scheme))
        .and_then(|_| url.get(scheme.len()..))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::connect::test_env as env;

    #[test]
    fn webdav_forms() {
        let o = webdav_options_from_env("webdavs://nas.lan/dav/kopia", &env(&[])).unwrap();
        assert_eq!(o.url, "https://nas.lan/dav/kopia");
        let o = webdav_options_from_env("webdav://nas.lan:8080/k", &env(&[])).unwrap();
        assert_eq!(o.url, "http://nas.lan:8080/k");
        let vars = [
            ("WEBDAV_URL", "https://dav.example/r"),
            ("WEBDAV_USERNAME", "u"),
            ("KOPIA_WEBDAV_PASSWORD", "p"),
        ];
        let o = webdav_options_from_env("webdav://ignored/x", &env(&vars)).unwrap();
        assert_eq!(o.url, "https://dav.example/r");
        assert_eq!(
            (o.username.as_deref(), o.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert!(webdav_options_from_env("", &env(&[])).is_err());
        assert!(webdav_options_from_env("ftp://x", &env(&[])).is_err());
    }

    #[test]
    fn rclone_forms() {
        let o = rclone_options_from_env("rclone://gdrive:backups/kopia", &env(&[])).unwrap();
        assert_eq!(o.remote_path, "gdrive:backups/kopia");
        assert_eq!(o.exe, PathBuf::from("rclone"));
        let vars = [
            ("RCLONE_REMOTE_PATH", "s3:b/p"),
            ("RCLONE_EXE", "/usr/local/bin/rclone"),
            ("RCLONE_CONFIG", "/config/rclone.conf"),
        ];
        let o = rclone_options_from_env("", &env(&vars)).unwrap();
        assert_eq!(o.remote_path, "s3:b/p");
        assert_eq!(o.exe, PathBuf::from("/usr/local/bin/rclone"));
        assert_eq!(o.config, Some(PathBuf::from("/config/rclone.conf")));
        assert!(rclone_options_from_env("", &env(&[])).is_err());
    }
}
