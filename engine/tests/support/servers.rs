//! Finding the test servers `.ci/servers.sh` starts (WebDAV via rclone, Azurite, sshd)
//! and making fresh storage namespaces on them.
//!
//! Each server is found through `ARKIV_*` variables. When they are unset the tests skip with a
//! message on the real stderr, except under `CI=true`, where a missing server is a failure.

#![allow(
    dead_code,
    reason = "shared by several test crates, each using a subset"
)]

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use arkiv_engine::blob::cloud::{AzureOptions, CloudStorage};
use arkiv_engine::blob::sftp::{KnownHosts, SftpAuth, SftpOptions, SftpStorage};
use arkiv_engine::blob::webdav::{WebDavOptions, WebDavStorage};

/// The value of `var`, or `None` (after a loud message) to skip; panics under `CI=true`.
pub fn server_var(test: &str, var: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        Some(v) => Some(v),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "{test}: {var} is not set under CI=true; scripts/test.sh must start the servers \
             with `eval \"$(bash .ci/servers.sh start)\"`"
        ),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED {test}: {var} is not set; start the test servers with \
                 `eval \"$(bash .ci/servers.sh start)\"` ***\n"
            );
            None
        }
    }
}

/// A name unique to this test process and call (`[a-z0-9-]`).
pub fn unique(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name: String = test
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
    format!("arkiv-{name}-{}-{n}", std::process::id())
}

/// WebDAV options for `path` below the test server's root, with its credentials.
pub fn webdav_options(test: &str, path: &str) -> Option<WebDavOptions> {
    let url = server_var(test, "ARKIV_WEBDAV_URL")?;
    let mut o = WebDavOptions::new(format!("{}/{path}", url.trim_end_matches('/')));
    o.username = std::env::var("ARKIV_WEBDAV_USER").ok();
    o.password = std::env::var("ARKIV_WEBDAV_PASSWORD").ok();
    Some(o)
}

/// A fresh WebDAV storage in a new collection; also returns the collection's name below the
/// server root (the directory `ARKIV_WEBDAV_ROOT/<name>` on disk).
pub async fn fresh_webdav(test: &str) -> Option<(WebDavStorage, String)> {
    let name = unique(test);
    let o = webdav_options(test, &name)?;
    let s = WebDavStorage::create(o).await.expect("WebDAV storage");
    Some((s, name))
}

/// Azure options for the test container with a fresh prefix (`prefix/`).
pub fn azure_options(test: &str) -> Option<AzureOptions> {
    let endpoint = server_var(test, "ARKIV_AZURE_ENDPOINT")?;
    let mut o = AzureOptions::new(
        std::env::var("ARKIV_AZURE_ACCOUNT").unwrap_or_default(),
        std::env::var("ARKIV_AZURE_CONTAINER").unwrap_or_default(),
    );
    o.account_key = std::env::var("ARKIV_AZURE_KEY").ok();
    o.endpoint = Some(endpoint);
    o.prefix = format!("{}/", unique(test));
    Some(o)
}

/// A storage from [`azure_options`].
pub fn fresh_azure(test: &str) -> Option<CloudStorage> {
    azure_options(test).map(|o| CloudStorage::azure(o).expect("Azure storage"))
}

/// SFTP options for `path` below the test sshd's root directory, logging in with the test
/// key (`password`: with the test password instead, when the server has one).
pub fn sftp_options(test: &str, path: &str, password: bool) -> Option<SftpOptions> {
    let host = server_var(test, "ARKIV_SFTP_HOST")?;
    let root = server_var(test, "ARKIV_SFTP_ROOT")?;
    let auth = match password {
        true => SftpAuth::Password(server_var(test, "ARKIV_SFTP_PASSWORD")?),
        false => SftpAuth::KeyFile(server_var(test, "ARKIV_SFTP_KEY_FILE")?.into()),
    };
    let mut o = SftpOptions::new(
        host,
        server_var(test, "ARKIV_SFTP_USER")?,
        format!("{root}/{path}"),
        auth,
        KnownHosts::File(server_var(test, "ARKIV_SFTP_KNOWN_HOSTS")?.into()),
    );
    o.port = server_var(test, "ARKIV_SFTP_PORT")?
        .parse()
        .expect("ARKIV_SFTP_PORT");
    Some(o)
}

/// A fresh SFTP storage in a new directory; also returns the directory's name below the
/// server root (`ARKIV_SFTP_ROOT/<name>` on disk).
pub async fn fresh_sftp(test: &str) -> Option<(SftpStorage, String)> {
    let name = unique(test);
    let o = sftp_options(test, &name, false)?;
    let s = SftpStorage::create(o).await.expect("SFTP storage");
    Some((s, name))
}
