//! rclone remotes, as Kopia reaches them: `rclone serve webdav` for the remote, started on
//! loopback, and the WebDAV backend on top (Kopia's `repo/blob/rclone/rclone_storage.go`).
//!
//! The repository tree on the remote is therefore Kopia's sharded WebDAV layout (see
//! [`super::webdav`]). Differences from Kopia, on purpose: the server listens on plain HTTP
//! on 127.0.0.1 (Kopia adds a self-signed TLS certificate), protected like Kopia's by a random
//! user name and password, which reach rclone through its environment (`RCLONE_USER`,
//! `RCLONE_PASS`), never its command line. The server is stopped when the storage is dropped
//! (the child is killed on drop).

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use arkiv_format::ids::BlobId;
use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::webdav::{WebDavOptions, WebDavStorage};
use super::{BlobMetadata, BlobStorage};
use crate::{Error, ErrorKind, Result};

/// How to start rclone for one remote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RcloneOptions {
    /// `remote:path` (Kopia's `--remote-path`).
    pub remote_path: String,
    /// The rclone binary (Kopia's `--rclone-exe`; default `rclone` from `PATH`).
    pub exe: PathBuf,
    /// rclone's configuration file (`--config`); `None`: rclone's own default.
    pub config: Option<PathBuf>,
    /// Extra arguments for `rclone serve webdav` (Kopia's `--rclone-args`).
    pub extra_args: Vec<String>,
    /// How long to wait for the server to start (Kopia's default: 15 s).
    pub startup_timeout: Duration,
}

impl RcloneOptions {
    /// Options for `remote_path` with the `rclone` from `PATH`.
    pub fn new(remote_path: impl Into<String>) -> Self {
        RcloneOptions {
            remote_path: remote_path.into(),
            exe: PathBuf::from("rclone"),
            config: None,
            extra_args: Vec::new(),
            startup_timeout: Duration::from_secs(15),
        }
    }
}

/// The rclone server process; killed when the last storage using it is dropped.
struct Server {
    child: std::sync::Mutex<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.start_kill();
        }
    }
}

/// Blob storage on an rclone remote (see the module docs).
#[derive(Clone)]
pub struct RcloneStorage {
    remote_path: String,
    dav: WebDavStorage,
    dav_options: WebDavOptions,
    _server: Arc<Server>,
}

impl fmt::Debug for RcloneStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcloneStorage")
            .field("remote_path", &self.remote_path)
            .finish_non_exhaustive()
    }
}

impl RcloneStorage {
    /// Starts rclone and connects to an existing location (see [`WebDavStorage::open`]).
    pub async fn open(opts: RcloneOptions) -> Result<Self> {
        let (server, dav_options) = start(&opts).await?;
        let dav = WebDavStorage::open(dav_options.clone())
            .await
            .map_err(|e| rename(&opts.remote_path, e))?;
        Ok(RcloneStorage {
            remote_path: opts.remote_path,
            dav,
            dav_options,
            _server: server,
        })
    }

    /// The same server, connected for a new repository (see [`WebDavStorage::create`]).
    pub async fn for_create(&self) -> Result<Self> {
        let dav = WebDavStorage::create(self.dav_options.clone())
            .await
            .map_err(|e| rename(&self.remote_path, e))?;
        Ok(RcloneStorage {
            remote_path: self.remote_path.clone(),
            dav,
            dav_options: self.dav_options.clone(),
            _server: self._server.clone(),
        })
    }

    /// The WebDAV storage underneath.
    pub fn webdav(&self) -> &WebDavStorage {
        &self.dav
    }
}

/// Errors name the rclone remote, not the private loopback server.
fn rename(remote: &str, e: Error) -> Error {
    match e {
        Error::Storage {
            op,
            target,
            kind,
            message,
            storage,
        } => Error::Storage {
            storage: format!("rclone {remote} (through {storage})"),
            op,
            target,
            kind,
            message,
        },
        Error::BlobNotFound { id, storage } => Error::BlobNotFound {
            storage: format!("rclone {remote} (through {storage})"),
            id,
        },
        e => e,
    }
}

fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

async fn start(opts: &RcloneOptions) -> Result<(Arc<Server>, WebDavOptions)> {
    let fail = |kind: ErrorKind, message: String| Error::Storage {
        storage: format!("rclone {}", opts.remote_path),
        op: "start rclone",
        target: opts.exe.display().to_string(),
        kind,
        message,
    };
    let user = random_token();
    let pass = random_token();
    let mut cmd = Command::new(&opts.exe);
    cmd.arg("serve")
        .arg("webdav")
        .arg(&opts.remote_path)
        .arg("--addr")
        .arg("127.0.0.1:0");
    if let Some(c) = &opts.config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(&opts.extra_args)
        .env("RCLONE_USER", &user)
        .env("RCLONE_PASS", &pass)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        fail(
            ErrorKind::Config,
            format!("cannot run {}: {e}", opts.exe.display()),
        )
    })?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| fail(ErrorKind::Other, "no stderr pipe".into()))?;
    let server = Arc::new(Server {
        child: std::sync::Mutex::new(child),
    });
    // rclone logs "... WebDav Server started on [http://127.0.0.1:PORT/]" (NOTICE level).
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(opts.startup_timeout, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = listen_url(&line) {
                return Some(url);
            }
            if seen.len() < 20 {
                seen.push(line);
            }
        }
        None
    })
    .await;
    let url = match found {
        Ok(Some(url)) => url,
        Ok(None) => {
            return Err(fail(
                ErrorKind::Config,
                format!("rclone exited before serving: {}", seen.join(" | ")),
            ));
        }
        Err(_) => {
            return Err(fail(
                ErrorKind::Transient,
                format!(
                    "rclone did not start serving within {:?}",
                    opts.startup_timeout
                ),
            ));
        }
    };
    // Keep draining rclone's log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut dav = WebDavOptions::new(url);
    dav.username = Some(user);
    dav.password = Some(pass);
    Ok((server, dav))
}

/// The URL in rclone's "server started" log line.
fn listen_url(line: &str) -> Option<String> {
    let rest = &line[line.find("started on")? + "started on".len()..];
    let start = rest.find("http")?;
    let url: String = rest[start..]
        .chars()
        .take_while(|c| !matches!(c, ']' | ' ' | '"'))
        .collect();
    (url.starts_with("http://127.0.0.1:") || url.starts_with("http://[::1]:")).then_some(url)
}

#[async_trait]
impl BlobStorage for RcloneStorage {
    async fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Bytes> {
        self.dav
            .get(id, range)
            .await
            .map_err(|e| rename(&self.remote_path, e))
    }
    async fn get_metadata(&self, id: &BlobId) -> Result<BlobMetadata> {
        self.dav
            .get_metadata(id)
            .await
            .map_err(|e| rename(&self.remote_path, e))
    }
    async fn put(&self, id: &BlobId, data: Bytes) -> Result<()> {
        self.dav
            .put(id, data)
            .await
            .map_err(|e| rename(&self.remote_path, e))
    }
    async fn delete(&self, id: &BlobId) -> Result<()> {
        self.dav
            .delete(id)
            .await
            .map_err(|e| rename(&self.remote_path, e))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        self.dav
            .list(prefix)
            .await
            .map_err(|e| rename(&self.remote_path, e))
    }
    fn describe(&self) -> String {
        format!("rclone://{}", self.remote_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_url_from_log_line() {
        assert_eq!(
            listen_url(
                "2026/12/02 01:00:00 NOTICE: Local file system at /x: WebDav Server started on [http://127.0.0.1:41234/]"
            )
            .as_deref(),
            Some("http://127.0.0.1:41234/")
        );
        assert_eq!(listen_url("NOTICE: something else"), None);
        assert_eq!(
            listen_url("WebDav Server started on [http://0.0.0.0:80/]"),
            None
        );
    }
}
