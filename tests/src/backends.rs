//! The test servers `.ci/servers.sh` starts (rclone's WebDAV server, Azurite) and the
//! environments that point the mover and the CLI at fresh locations on them. Without the
//! servers' variables the tests print a loud SKIPPED line, except under `CI=true`, where a
//! missing server is a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The value of `var`, or `None` after a loud message; panics under `CI=true`.
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
                "\n*** SKIPPED {test}: {var} is not set (start the servers with \
                 `eval \"$(bash .ci/servers.sh start)\"`) ***\n"
            );
            None
        }
    }
}

/// A name unique to this process and call.
pub fn unique(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "arkiv-{}-{}-{}",
        test.replace('_', "-").to_ascii_lowercase(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One location on a test server: the variables the VolSync mover reads, the URL and
/// variables the CLI reads, and (for WebDAV and rclone) the directory on disk holding it.
pub struct Location {
    /// Mover variables (VolSync's names), including `KOPIA_REPOSITORY`.
    pub mover: Vec<(String, String)>,
    /// CLI variables, including `ARKIV_REPOSITORY`.
    pub cli: Vec<(String, String)>,
    /// The repository's directory on this machine, where the server keeps it as files.
    pub dir: Option<PathBuf>,
}

fn pairs(v: &[(&str, String)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// A fresh collection on the WebDAV server.
pub fn webdav(test: &str) -> Option<Location> {
    let url = server_var(test, "ARKIV_WEBDAV_URL")?;
    let root = server_var(test, "ARKIV_WEBDAV_ROOT")?;
    let user = std::env::var("ARKIV_WEBDAV_USER").unwrap_or_default();
    let pass = std::env::var("ARKIV_WEBDAV_PASSWORD").unwrap_or_default();
    let name = unique(test);
    let http = format!("{}/{name}", url.trim_end_matches('/'));
    let webdav_url = http.replacen("http://", "webdav://", 1);
    Some(Location {
        mover: pairs(&[
            ("KOPIA_REPOSITORY", String::new()),
            ("WEBDAV_URL", http),
            ("WEBDAV_USERNAME", user.clone()),
            ("WEBDAV_PASSWORD", pass.clone()),
        ]),
        cli: pairs(&[
            ("ARKIV_REPOSITORY", webdav_url),
            ("WEBDAV_USERNAME", user),
            ("WEBDAV_PASSWORD", pass),
        ]),
        dir: Some(Path::new(&root).join(name)),
    })
}

/// A fresh prefix in the Azurite container.
pub fn azure(test: &str) -> Option<Location> {
    let endpoint = server_var(test, "ARKIV_AZURE_ENDPOINT")?;
    let account = std::env::var("ARKIV_AZURE_ACCOUNT").unwrap_or_default();
    let key = std::env::var("ARKIV_AZURE_KEY").unwrap_or_default();
    let container = std::env::var("ARKIV_AZURE_CONTAINER").unwrap_or_default();
    let url = format!("azure://{container}/{}", unique(test));
    Some(Location {
        mover: pairs(&[
            ("KOPIA_REPOSITORY", url.clone()),
            ("KOPIA_AZURE_CONTAINER", container),
            ("KOPIA_AZURE_STORAGE_ACCOUNT", account.clone()),
            ("KOPIA_AZURE_STORAGE_KEY", key.clone()),
            ("ARKIV_AZURE_ENDPOINT", endpoint.clone()),
        ]),
        cli: pairs(&[
            ("ARKIV_REPOSITORY", url),
            ("AZURE_STORAGE_ACCOUNT", account),
            ("AZURE_STORAGE_KEY", key),
            ("ARKIV_AZURE_ENDPOINT", endpoint),
        ]),
        dir: None,
    })
}

/// An rclone remote: a local directory under `base` (rclone's local backend), served by the
/// `rclone serve webdav` the backend starts. Needs `rclone` on `PATH` (the servers script
/// installs it).
pub fn rclone(test: &str, base: &Path) -> Option<Location> {
    // The same install that serves WebDAV provides rclone.
    server_var(test, "ARKIV_WEBDAV_URL")?;
    let dir = base.join(unique(test));
    let remote = dir.display().to_string();
    Some(Location {
        mover: pairs(&[
            ("KOPIA_REPOSITORY", String::new()),
            ("RCLONE_REMOTE_PATH", remote.clone()),
        ]),
        cli: pairs(&[("ARKIV_REPOSITORY", format!("rclone://{remote}"))]),
        dir: Some(dir),
    })
}

/// A fresh directory on the test sshd: the mover logs in with the test key (VolSync's
/// `SFTP_*` variables), the CLI with the password where the server has one (else the key),
/// through an `sftp://` URL.
pub fn sftp(test: &str) -> Option<Location> {
    let host = server_var(test, "ARKIV_SFTP_HOST")?;
    let port = server_var(test, "ARKIV_SFTP_PORT")?;
    let user = server_var(test, "ARKIV_SFTP_USER")?;
    let key = server_var(test, "ARKIV_SFTP_KEY_FILE")?;
    let known = server_var(test, "ARKIV_SFTP_KNOWN_HOSTS")?;
    let root = server_var(test, "ARKIV_SFTP_ROOT")?;
    let dir = Path::new(&root).join(unique(test));
    let path = dir.display().to_string();
    let mut cli = pairs(&[
        (
            "ARKIV_REPOSITORY",
            format!("sftp://{user}@{host}:{port}{path}"),
        ),
        ("SFTP_KNOWN_HOSTS", known.clone()),
    ]);
    cli.push(match std::env::var("ARKIV_SFTP_PASSWORD") {
        Ok(pw) if !pw.is_empty() => ("SFTP_PASSWORD".into(), pw),
        _ => ("SFTP_KEY_FILE".into(), key.clone()),
    });
    Some(Location {
        mover: pairs(&[
            ("KOPIA_REPOSITORY", String::new()),
            ("SFTP_HOST", host),
            ("SFTP_PORT", port),
            ("SFTP_USERNAME", user),
            ("SFTP_PATH", path),
            ("SFTP_KEY_FILE", key),
            ("SFTP_KNOWN_HOSTS", known),
        ]),
        cli,
        dir: Some(dir),
    })
}

/// A fresh bucket on the S3 test server (moto) standing in for B2's S3-compatible endpoint
/// (`ARKIV_B2_S3_ENDPOINT`, so no `b2_authorize_account` call), with a prefix in the URL; the
/// mover selects it through VolSync's `KOPIA_B2_BUCKET` and B2 key variables. Also returns the
/// bucket and prefix, to open the same objects through the S3 backend.
pub fn b2(test: &str) -> Option<(Location, String, String)> {
    let endpoint = crate::s3::endpoint(test)?;
    let bucket = crate::s3::fresh_bucket(&endpoint, test);
    let prefix = "kopia/b2/".to_owned();
    let url = format!("b2://{bucket}/{prefix}");
    let s3_endpoint = format!("http://{endpoint}");
    let loc = Location {
        mover: pairs(&[
            ("KOPIA_REPOSITORY", url.clone()),
            ("KOPIA_B2_BUCKET", bucket.clone()),
            ("B2_ACCOUNT_ID", "arkiv-test".into()),
            ("B2_APPLICATION_KEY", "arkiv-b2-secret-key".into()),
            ("ARKIV_B2_S3_ENDPOINT", s3_endpoint.clone()),
        ]),
        cli: pairs(&[
            ("ARKIV_REPOSITORY", url),
            ("B2_KEY_ID", "arkiv-test".into()),
            ("B2_KEY", "arkiv-b2-secret-key".into()),
            ("ARKIV_B2_S3_ENDPOINT", s3_endpoint),
        ]),
        dir: None,
    };
    Some((loc, bucket, prefix))
}
