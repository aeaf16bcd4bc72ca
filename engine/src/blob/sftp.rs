//! SFTP blob storage with Kopia's sharded filesystem layout, on `russh` (pure-Rust SSH) and
//! `russh-sftp`'s raw SFTP v3 session.
//!
//! # Layout (same as Kopia)
//! Facts from Kopia's `repo/blob/sftp/sftp_storage.go`, `sftp_options.go` and
//! `repo/blob/sharded/sharded.go`:
//! * The directory `path` on the server holds the filesystem backend's tree: `.shards` at the
//!   root, each blob at its sharded path with the `.f` suffix
//!   ([`ShardParameters::relative_path`]; `[1,3]` for new repositories, `[3,3]` when an
//!   existing one has no `.shards`). Only names ending in `.f` are blobs.
//! * A blob is written to `<path>.tmp.<16 hex digits>` (opened with create + exclusive), then
//!   renamed over `<path>` with OpenSSH's `posix-rename@openssh.com` (an atomic replace). A
//!   missing parent directory is made below the root and the create tried again. We do the
//!   same; the temporary name does not end in `.f`, so listings never show it. Where the
//!   server offers `fsync@openssh.com` (OpenSSH does), the file is fsync'd before the rename
//!   (Kopia does not; our contract promises durability).
//! * Deleting a missing blob succeeds; "no such file" on a read is "blob not found".
//! * Kopia's options map one to one: host, port (22), username, password (when set, the key
//!   is not used), key file or key data, known-hosts file (default `~/.ssh/known_hosts`,
//!   resolved by the caller: the engine reads no environment) or known-hosts data. Like
//!   Kopia, the server's host key must be in the known hosts; there is no "accept any key".
//!   Kopia's external `ssh` command mode is not offered.
//!
//! # Connections, retries and errors
//! One SSH connection with one SFTP channel is shared by all calls (SFTP requests are
//! pipelined on it). A transport failure (connection lost, timeout) drops the connection, and
//! the call is retried on a new one with exponential backoff, at most
//! [`SftpOptions::max_retries`] times; an SFTP status reply (permission denied, no such
//! file, …) is not retried. Errors name the backend, `user@host:port/path` and the blob; the
//! password and key never appear in messages or `Debug` output.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arkiv_format::ids::BlobId;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, FuturesUnordered, StreamExt, TryStreamExt};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};

use super::filesystem::{BLOB_SUFFIX, SHARDS_FILE, ShardParameters};
use super::memory::check_range;
use super::{BlobMetadata, BlobStorage};
use crate::{Error, ErrorKind, Result};

/// Bytes per SFTP read or write request (Kopia's packet size; every server accepts it).
const CHUNK: usize = 32 * 1024;
/// Read or write requests in flight per blob.
const IN_FLIGHT: usize = 32;
/// How many directories a listing reads at once.
const LIST_PARALLELISM: usize = 8;

/// Where the server's host key is checked.
#[derive(Clone, PartialEq, Eq)]
pub enum KnownHosts {
    /// An OpenSSH `known_hosts` file.
    File(PathBuf),
    /// The contents of such a file (Kopia's `--known-hosts-data`).
    Data(String),
}

impl fmt::Debug for KnownHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KnownHosts::File(p) => write!(f, "File({})", p.display()),
            KnownHosts::Data(d) => write!(f, "Data({} bytes)", d.len()),
        }
    }
}

/// How the client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum SftpAuth {
    /// Password authentication.
    Password(String),
    /// An OpenSSH (or PEM) private key file, unencrypted.
    KeyFile(PathBuf),
    /// The contents of such a key file (Kopia's `--key-data`).
    KeyData(String),
}

impl fmt::Debug for SftpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SftpAuth::Password(_) => f.write_str("Password(<redacted>)"),
            SftpAuth::KeyFile(p) => write!(f, "KeyFile({})", p.display()),
            SftpAuth::KeyData(_) => f.write_str("KeyData(<redacted>)"),
        }
    }
}

/// Everything needed to reach one SFTP location, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SftpOptions {
    /// Server host name or address.
    pub host: String,
    /// Server port (22).
    pub port: u16,
    /// Login name.
    pub username: String,
    /// Repository directory on the server (absolute, or relative to the login directory).
    pub path: String,
    /// Password or key.
    pub auth: SftpAuth,
    /// Where the host key is checked.
    pub known_hosts: KnownHosts,
    /// Retries per call after the first attempt.
    pub max_retries: u32,
    /// First backoff (doubled per retry).
    pub init_backoff: Duration,
    /// Limit for connecting and logging in.
    pub connect_timeout: Duration,
    /// Limit for one SFTP request.
    pub request_timeout: Duration,
}

impl SftpOptions {
    /// Options with port 22 and default retries and timeouts.
    pub fn new(
        host: impl Into<String>,
        username: impl Into<String>,
        path: impl Into<String>,
        auth: SftpAuth,
        known_hosts: KnownHosts,
    ) -> Self {
        SftpOptions {
            host: host.into(),
            port: 22,
            username: username.into(),
            path: path.into(),
            auth,
            known_hosts,
            max_retries: 5,
            init_backoff: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
        }
    }

    /// `sftp://user@host:port/path` (no secrets).
    pub fn describe(&self) -> String {
        let sep = if self.path.starts_with('/') { "" } else { "/" };
        format!(
            "sftp://{}@{}:{}{sep}{}",
            self.username, self.host, self.port, self.path
        )
    }
}

/// Blob storage in a directory on an SFTP server (see the module docs).
#[derive(Debug, Clone)]
pub struct SftpStorage {
    inner: Arc<Inner>,
}

struct Inner {
    opts: SftpOptions,
    /// The repository directory, without a trailing `/` (`.` for the login directory).
    root: String,
    params: ShardParameters,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpStorage")
            .field("location", &self.opts.describe())
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// One SSH connection and its SFTP channel.
struct Conn {
    sftp: RawSftpSession,
    posix_rename: bool,
    fsync: bool,
    /// Keeps the SSH connection open.
    _ssh: russh::client::Handle<HostKeyCheck>,
}

/// The SSH client's host-key check against the known hosts; remembers why a key was refused.
struct HostKeyCheck {
    host: String,
    port: u16,
    known_hosts: KnownHosts,
    refused: Arc<Mutex<Option<String>>>,
}

impl russh::client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        let verdict = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.check(key),
            PublicKeyOrCertificate::Certificate(_) => {
                Err("the server offered a host certificate, which is not supported".to_owned())
            }
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(why) => {
                *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                Ok(false)
            }
        }
    }
}

impl HostKeyCheck {
    fn check(&self, key: &russh::keys::PublicKey) -> std::result::Result<(), String> {
        let check = |path: &std::path::Path| {
            russh::keys::check_known_hosts_path(&self.host, self.port, key, path)
        };
        let (known, source) = match &self.known_hosts {
            KnownHosts::File(p) => {
                if !p.is_file() {
                    return Err(format!("known hosts file {} does not exist", p.display()));
                }
                (check(p), p.display().to_string())
            }
            // russh reads known hosts from a file only: a private temporary file, removed
            // right after (Kopia does the same; host keys are public).
            KnownHosts::Data(d) => {
                let tmp = std::env::temp_dir()
                    .join(format!("arkiv-known-hosts-{:016x}", rand::random::<u64>()));
                std::fs::write(&tmp, d).map_err(|e| {
                    format!("cannot write known hosts data to a temporary file: {e}")
                })?;
                let r = check(&tmp);
                let _ = std::fs::remove_file(&tmp);
                (r, "the known hosts data".to_owned())
            }
        };
        match known {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!(
                "the server's {} host key is not in {source} (add it with ssh-keyscan)",
                key.algorithm()
            )),
            Err(e) => Err(format!("host key check against {source} failed: {e}")),
        }
    }
}

impl SftpStorage {
    /// Connects to an existing location: reads `.shards` (Kopia's legacy `[3,3]` when it is
    /// missing); writes nothing.
    pub async fn open(opts: SftpOptions) -> Result<Self> {
        Self::connect(opts, false).await
    }

    /// Connects for a new repository: the directory (and its parents) is created when
    /// missing, and `.shards` is written with Kopia's current defaults unless one exists.
    pub async fn create(opts: SftpOptions) -> Result<Self> {
        Self::connect(opts, true).await
    }

    async fn connect(opts: SftpOptions, create: bool) -> Result<Self> {
        let root = opts.path.trim_end_matches('/').to_owned();
        let root = if root.is_empty() {
            if opts.path.starts_with('/') {
                String::new()
            } else {
                ".".to_owned()
            }
        } else {
            root
        };
        let mut inner = Inner {
            opts,
            root,
            params: ShardParameters::kopia_default(),
            conn: tokio::sync::Mutex::new(None),
        };
        let params = match inner.read_small(SHARDS_FILE).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                inner.err(
                    "open",
                    SHARDS_FILE,
                    ErrorKind::Corrupt,
                    format!("invalid sharding parameters: {e}"),
                )
            })?,
            None if create => {
                inner.mkdir_root().await?;
                let p = ShardParameters::kopia_default();
                inner
                    .put_path("put", SHARDS_FILE, Bytes::from(p.to_file_bytes()))
                    .await?;
                p
            }
            None => ShardParameters::legacy(),
        };
        inner.params = params;
        Ok(SftpStorage {
            inner: Arc::new(inner),
        })
    }

    /// The sharding parameters in use.
    pub fn shard_parameters(&self) -> &ShardParameters {
        &self.inner.params
    }

    /// The path of a blob below the repository directory (`p/012/3456…f.f`).
    pub fn blob_path(&self, id: &BlobId) -> String {
        self.inner.blob_path(id.as_str())
    }
}

/// An SFTP status reply, or a transport failure.
fn is_transport(e: &SftpError) -> bool {
    !matches!(e, SftpError::Status(_))
}

fn is_code(e: &SftpError, code: StatusCode) -> bool {
    matches!(e, SftpError::Status(s) if s.status_code == code)
}

impl Inner {
    fn describe(&self) -> String {
        self.opts.describe()
    }

    fn err(&self, op: &'static str, target: &str, kind: ErrorKind, message: String) -> Error {
        Error::Storage {
            storage: self.describe(),
            op,
            target: target.to_owned(),
            kind,
            message,
        }
    }

    fn sftp_err(&self, op: &'static str, target: &str, e: &SftpError) -> Error {
        let kind = match e {
            SftpError::Status(s) => match s.status_code {
                StatusCode::NoSuchFile => ErrorKind::NotFound,
                StatusCode::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::Other,
            },
            _ => ErrorKind::Transient,
        };
        let message = match e {
            SftpError::Status(s) if s.error_message.is_empty() => {
                format!("server replied {}", s.status_code)
            }
            SftpError::Status(s) => {
                format!("server replied {}: {}", s.status_code, s.error_message)
            }
            other => format!("SFTP transport failed: {other}"),
        };
        self.err(op, target, kind, message)
    }

    fn blob_path(&self, id: &str) -> String {
        self.params.relative_path(id).to_string_lossy().into_owned()
    }

    /// The server path of `rel` (below the repository directory).
    fn full(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root)
    }

    /// The shared connection, made when there is none.
    async fn conn(&self) -> Result<Arc<Conn>> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(self.dial().await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Forgets `bad` (a failed connection) so the next call dials again.
    async fn drop_conn(&self, bad: &Arc<Conn>) {
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, bad)) {
            *slot = None;
        }
    }

    async fn dial(&self) -> Result<Conn> {
        let o = &self.opts;
        let connect_err = |kind, m: String| self.err("connect", "", kind, m);
        let refused = Arc::new(Mutex::new(None));
        let check = HostKeyCheck {
            host: o.host.clone(),
            port: o.port,
            known_hosts: o.known_hosts.clone(),
            refused: refused.clone(),
        };
        let config = Arc::new(russh::client::Config::default());
        let session = async {
            let mut ssh = russh::client::connect(config, (o.host.as_str(), o.port), check)
                .await
                .map_err(
                    |e| match refused.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        Some(why) => connect_err(ErrorKind::Auth, why),
                        None => {
                            connect_err(ErrorKind::Transient, format!("SSH connection failed: {e}"))
                        }
                    },
                )?;
            let ssh_err = |what: &str, e: russh::Error| {
                connect_err(ErrorKind::Transient, format!("{what} failed: {e}"))
            };
            let (auth, how) = match &o.auth {
                SftpAuth::Password(pw) => (
                    ssh.authenticate_password(&o.username, pw)
                        .await
                        .map_err(|e| ssh_err("password authentication", e))?,
                    "password".to_owned(),
                ),
                SftpAuth::KeyFile(_) | SftpAuth::KeyData(_) => {
                    let (text, source) = match &o.auth {
                        SftpAuth::KeyFile(p) => (
                            std::fs::read_to_string(p).map_err(|e| {
                                connect_err(
                                    ErrorKind::Config,
                                    format!("cannot read key file {}: {e}", p.display()),
                                )
                            })?,
                            format!("key file {}", p.display()),
                        ),
                        SftpAuth::KeyData(d) => (d.clone(), "key data".to_owned()),
                        SftpAuth::Password(_) => unreachable!("matched above"),
                    };
                    let key = russh::keys::decode_secret_key(&text, None).map_err(|e| {
                        connect_err(
                            ErrorKind::Config,
                            format!("invalid private key ({source}): {e}"),
                        )
                    })?;
                    let hash = ssh
                        .best_supported_rsa_hash()
                        .await
                        .map_err(|e| ssh_err("key negotiation", e))?
                        .flatten();
                    let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
                    (
                        ssh.authenticate_publickey(&o.username, key)
                            .await
                            .map_err(|e| ssh_err("key authentication", e))?,
                        source,
                    )
                }
            };
            if !auth.success() {
                return Err(connect_err(
                    ErrorKind::Auth,
                    format!("the server refused user {} with the {how}", o.username),
                ));
            }
            let channel = ssh
                .channel_open_session()
                .await
                .map_err(|e| ssh_err("opening a session channel", e))?;
            channel
                .request_subsystem(true, "sftp")
                .await
                .map_err(|e| ssh_err("starting the sftp subsystem", e))?;
            let sftp = RawSftpSession::new(channel.into_stream());
            sftp.set_timeout(o.request_timeout.as_secs().max(1));
            let version = sftp.init().await.map_err(|e| {
                connect_err(ErrorKind::Transient, format!("SFTP handshake failed: {e}"))
            })?;
            let has = |name: &str| version.extensions.contains_key(name);
            Ok(Conn {
                posix_rename: has("posix-rename@openssh.com"),
                fsync: has("fsync@openssh.com"),
                sftp,
                _ssh: ssh,
            })
        };
        tokio::time::timeout(o.connect_timeout, session)
            .await
            .map_err(|_| {
                connect_err(
                    ErrorKind::Transient,
                    format!("no SSH session within {:?}", o.connect_timeout),
                )
            })?
    }

    /// Runs `f` on the shared connection; a transport failure drops the connection and
    /// retries on a new one (see the module docs).
    async fn with_conn<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            let res = match self.conn().await {
                Ok(c) => {
                    let r = f(c.clone()).await;
                    if r.as_ref().is_err_and(|e| e.kind() == ErrorKind::Transient) {
                        self.drop_conn(&c).await;
                    }
                    r
                }
                Err(e) => Err(e),
            };
            match res {
                Err(e) if e.kind() == ErrorKind::Transient && attempt < self.opts.max_retries => {
                    tokio::time::sleep(self.opts.init_backoff * 2u32.saturating_pow(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Reads a small file below the root; `None` when it does not exist.
    async fn read_small(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let path = self.full(rel);
        self.with_conn(|c| {
            let path = path.clone();
            async move {
                match read_file(&c.sftp, &path, None).await {
                    Ok(b) => Ok(Some(b)),
                    Err(ReadError::Sftp(e)) if is_code(&e, StatusCode::NoSuchFile) => Ok(None),
                    Err(e) => Err(e.into_error(self, "get", rel)),
                }
            }
        })
        .await
    }

    /// Creates the repository directory and its parents (existing ones are fine).
    async fn mkdir_root(&self) -> Result<()> {
        self.with_conn(|c| async move {
            let absolute = self.root.starts_with('/');
            let mut dir = String::new();
            for part in self.root.split('/').filter(|p| !p.is_empty() && *p != ".") {
                if absolute || !dir.is_empty() {
                    dir.push('/');
                }
                dir.push_str(part);
                self.mkdir(&c, &dir).await?;
            }
            Ok(())
        })
        .await
    }

    /// `mkdir` that accepts an existing directory.
    async fn mkdir(&self, c: &Conn, dir: &str) -> Result<()> {
        match c.sftp.mkdir(dir, FileAttributes::empty()).await {
            Ok(_) => Ok(()),
            Err(e) if is_transport(&e) => Err(self.sftp_err("mkdir", dir, &e)),
            Err(e) => match c.sftp.stat(dir).await {
                Ok(a) if a.attrs.is_dir() => Ok(()),
                _ => Err(self.sftp_err("mkdir", dir, &e)),
            },
        }
    }

    /// Creates the directories of `rel`'s parent below the root (Kopia's `MkSubdirAll`).
    async fn mkdir_parents(&self, c: &Conn, rel: &str) -> Result<()> {
        let parts: Vec<&str> = rel.split('/').collect();
        let mut dir = self.root.clone();
        for part in &parts[..parts.len().saturating_sub(1)] {
            dir.push('/');
            dir.push_str(part);
            self.mkdir(c, &dir).await?;
        }
        Ok(())
    }

    /// Writes `rel` atomically: a temporary file, then a rename over the final name.
    async fn put_path(&self, op: &'static str, rel: &str, data: Bytes) -> Result<()> {
        let full = self.full(rel);
        self.with_conn(|c| {
            let (full, data) = (full.clone(), data.clone());
            async move {
                let tmp = format!("{full}.tmp.{:016x}", rand::random::<u64>());
                let flags = OpenFlags::CREATE | OpenFlags::WRITE | OpenFlags::EXCLUDE;
                let handle = match c.sftp.open(&tmp, flags, FileAttributes::empty()).await {
                    Ok(h) => h.handle,
                    Err(e) if is_code(&e, StatusCode::NoSuchFile) => {
                        self.mkdir_parents(&c, rel).await?;
                        c.sftp
                            .open(&tmp, flags, FileAttributes::empty())
                            .await
                            .map_err(|e| self.sftp_err(op, rel, &e))?
                            .handle
                    }
                    Err(e) => return Err(self.sftp_err(op, rel, &e)),
                };
                let written = write_all(&c, &handle, &data).await;
                let closed = c.sftp.close(handle.as_str()).await;
                let renamed = match written.and(closed.map(|_| ())) {
                    Ok(()) => rename(&c, &tmp, &full).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = renamed {
                    if !is_transport(&e) {
                        // Best effort: do not leave the temporary file behind.
                        let _ = c.sftp.remove(tmp.as_str()).await;
                    }
                    return Err(self.sftp_err(op, rel, &e));
                }
                Ok(())
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let c = self.conn().await?;
        let result = self.list_on(&c, prefix).await;
        match result {
            Err(e) if e.kind() == ErrorKind::Transient => {
                self.drop_conn(&c).await;
                // One more walk on a fresh connection (a listing is idempotent).
                let c = self.conn().await?;
                self.list_on(&c, prefix).await
            }
            other => other,
        }
    }

    async fn list_on(&self, c: &Conn, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let mut out = Vec::new();
        let mut pending = FuturesUnordered::new();
        let walk = |dir: String, acc: String| async move {
            let entries = read_dir(&c.sftp, &format!("{}{dir}", self.full(""))).await;
            (dir, acc, entries)
        };
        pending.push(walk(String::new(), String::new()));
        let mut queued: Vec<(String, String)> = Vec::new();
        while let Some((dir, acc, entries)) = pending.next().await {
            let entries = match entries {
                Ok(e) => e,
                // A shard directory removed while listing.
                Err(e) if is_code(&e, StatusCode::NoSuchFile) => Vec::new(),
                Err(e) => return Err(self.sftp_err("list", &dir, &e)),
            };
            for (name, attrs) in entries {
                if name == "." || name == ".." {
                    continue;
                }
                if attrs.is_dir() {
                    let sub = format!("{acc}{name}");
                    let matches = if prefix.len() > sub.len() {
                        prefix.starts_with(&sub)
                    } else {
                        sub.starts_with(prefix)
                    };
                    if matches {
                        queued.push((format!("{dir}{name}/"), sub));
                    }
                    continue;
                }
                let Some(id) = format!("{acc}{name}")
                    .strip_suffix(BLOB_SUFFIX)
                    .map(str::to_owned)
                else {
                    continue;
                };
                if !id.starts_with(prefix) {
                    continue;
                }
                let (Some(length), Some(mtime)) = (attrs.size, attrs.mtime) else {
                    return Err(self.err(
                        "list",
                        &id,
                        ErrorKind::Other,
                        "directory listing has no size or modification time".into(),
                    ));
                };
                out.push(BlobMetadata {
                    id: BlobId::new(id),
                    length,
                    timestamp: timestamp(mtime),
                });
            }
            while pending.len() < LIST_PARALLELISM {
                let Some((d, a)) = queued.pop() else { break };
                pending.push(walk(d, a));
            }
        }
        out.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(out)
    }
}

fn timestamp(mtime: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::from(mtime), 0).unwrap_or_default()
}

/// A failed read: an SFTP error, or a range past the end of the file.
enum ReadError {
    Sftp(SftpError),
    PastEnd { start: u64, end: u64, len: u64 },
}

impl From<SftpError> for ReadError {
    fn from(e: SftpError) -> Self {
        ReadError::Sftp(e)
    }
}

impl ReadError {
    fn into_error(self, inner: &Inner, op: &'static str, target: &str) -> Error {
        match self {
            ReadError::Sftp(e) => inner.sftp_err(op, target, &e),
            ReadError::PastEnd { start, end, len } => inner.err(
                op,
                target,
                ErrorKind::Corrupt,
                format!("range {start}..{end} reaches past the end of the blob ({len} bytes)"),
            ),
        }
    }
}

/// Reads a whole file or a range of it, [`IN_FLIGHT`] requests at a time.
async fn read_file(
    sftp: &RawSftpSession,
    path: &str,
    range: Option<&Range<u64>>,
) -> std::result::Result<Vec<u8>, ReadError> {
    let handle = sftp
        .open(path, OpenFlags::READ, FileAttributes::empty())
        .await?
        .handle;
    let res = async {
        let (start, end) = match range {
            Some(r) if r.start < r.end => (r.start, r.end),
            // Whole files and empty ranges need the length.
            _ => {
                let len = sftp
                    .fstat(handle.as_str())
                    .await?
                    .attrs
                    .size
                    .unwrap_or_default();
                match range {
                    Some(r) if r.end > len => {
                        return Err(ReadError::PastEnd {
                            start: r.start,
                            end: r.end,
                            len,
                        });
                    }
                    Some(_) => return Ok(Vec::new()),
                    None => (0, len),
                }
            }
        };
        let chunks: Vec<Vec<u8>> = stream::iter((start..end).step_by(CHUNK))
            .map(|off| {
                let len = (end - off).min(CHUNK as u64);
                read_chunk(sftp, &handle, off, len as u32)
            })
            .buffered(IN_FLIGHT)
            .try_collect()
            .await?;
        let out = chunks.concat();
        let want = end - start;
        if (out.len() as u64) < want {
            return Err(ReadError::PastEnd {
                start,
                end,
                len: start + out.len() as u64,
            });
        }
        Ok(out)
    }
    .await;
    let _ = sftp.close(handle.as_str()).await;
    res
}

/// Reads `len` bytes at `off`, fewer only at the end of the file.
async fn read_chunk(
    sftp: &RawSftpSession,
    handle: &str,
    off: u64,
    len: u32,
) -> std::result::Result<Vec<u8>, SftpError> {
    let mut out = Vec::with_capacity(len as usize);
    while out.len() < len as usize {
        let want = len - out.len() as u32;
        match sftp.read(handle, off + out.len() as u64, want).await {
            Ok(d) if d.data.is_empty() => break,
            Ok(d) => out.extend_from_slice(&d.data[..d.data.len().min(want as usize)]),
            Err(e) if is_code(&e, StatusCode::Eof) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Writes `data` from offset 0, [`IN_FLIGHT`] requests at a time; fsyncs where offered.
async fn write_all(c: &Conn, handle: &str, data: &Bytes) -> std::result::Result<(), SftpError> {
    stream::iter((0..data.len()).step_by(CHUNK))
        .map(|off| {
            let chunk = data[off..(off + CHUNK).min(data.len())].to_vec();
            c.sftp.write(handle, off as u64, chunk)
        })
        .buffer_unordered(IN_FLIGHT)
        .try_for_each(|_| async { Ok(()) })
        .await?;
    if c.fsync {
        c.sftp.fsync(handle).await?;
    }
    Ok(())
}

/// Renames `from` over `to` (replacing it): `posix-rename@openssh.com` where offered, else
/// plain SFTP rename (which refuses an existing target on most servers).
async fn rename(c: &Conn, from: &str, to: &str) -> std::result::Result<(), SftpError> {
    if !c.posix_rename {
        return c.sftp.rename(from, to).await.map(|_| ());
    }
    let mut data = Vec::with_capacity(8 + from.len() + to.len());
    for s in [from, to] {
        data.extend_from_slice(&(s.len() as u32).to_be_bytes());
        data.extend_from_slice(s.as_bytes());
    }
    match c.sftp.extended("posix-rename@openssh.com", data).await? {
        russh_sftp::protocol::Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(()),
        russh_sftp::protocol::Packet::Status(s) => Err(SftpError::Status(s)),
        _ => Err(SftpError::UnexpectedPacket),
    }
}

/// Every entry of a directory (name, attributes).
async fn read_dir(
    sftp: &RawSftpSession,
    dir: &str,
) -> std::result::Result<Vec<(String, FileAttributes)>, SftpError> {
    let handle = sftp.opendir(dir).await?.handle;
    let mut out = Vec::new();
    let res = loop {
        match sftp.readdir(handle.as_str()).await {
            Ok(name) => out.extend(name.files.into_iter().map(|f| (f.filename, f.attrs))),
            Err(e) if is_code(&e, StatusCode::Eof) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let _ = sftp.close(handle.as_str()).await;
    res.map(|()| out)
}

#[async_trait]
impl BlobStorage for SftpStorage {
    async fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Bytes> {
        let inner = &self.inner;
        if let Some(r) = &range {
            // Only refuses a range whose start is after its end.
            check_range(&inner.describe(), id, r, u64::MAX)?;
        }
        let path = inner.full(&inner.blob_path(id.as_str()));
        inner
            .with_conn(|c| {
                let (path, range) = (path.clone(), range.clone());
                async move {
                    match read_file(&c.sftp, &path, range.as_ref()).await {
                        Ok(b) => Ok(Bytes::from(b)),
                        Err(ReadError::Sftp(e)) if is_code(&e, StatusCode::NoSuchFile) => {
                            Err(Error::BlobNotFound {
                                storage: inner.describe(),
                                id: id.clone(),
                            })
                        }
                        Err(e) => Err(e.into_error(inner, "get", id.as_str())),
                    }
                }
            })
            .await
    }

    async fn get_metadata(&self, id: &BlobId) -> Result<BlobMetadata> {
        let inner = &self.inner;
        let path = inner.full(&inner.blob_path(id.as_str()));
        inner
            .with_conn(|c| {
                let path = path.clone();
                async move {
                    let attrs = match c.sftp.stat(path.as_str()).await {
                        Ok(a) => a.attrs,
                        Err(e) if is_code(&e, StatusCode::NoSuchFile) => {
                            return Err(Error::BlobNotFound {
                                storage: inner.describe(),
                                id: id.clone(),
                            });
                        }
                        Err(e) => return Err(inner.sftp_err("get_metadata", id.as_str(), &e)),
                    };
                    let (Some(length), Some(mtime)) = (attrs.size, attrs.mtime) else {
                        return Err(inner.err(
                            "get_metadata",
                            id.as_str(),
                            ErrorKind::Other,
                            "stat reply has no size or modification time".into(),
                        ));
                    };
                    Ok(BlobMetadata {
                        id: id.clone(),
                        length,
                        timestamp: timestamp(mtime),
                    })
                }
            })
            .await
    }

    async fn put(&self, id: &BlobId, data: Bytes) -> Result<()> {
        let rel = self.inner.blob_path(id.as_str());
        self.inner
            .put_path("put", &rel, data)
            .await
            .map_err(|e| match e {
                // Name the blob, not its sharded path.
                Error::Storage {
                    storage,
                    op,
                    kind,
                    message,
                    ..
                } => Error::Storage {
                    storage,
                    op,
                    target: id.to_string(),
                    kind,
                    message,
                },
                other => other,
            })
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        let inner = &self.inner;
        let path = inner.full(&inner.blob_path(id.as_str()));
        inner
            .with_conn(|c| {
                let path = path.clone();
                async move {
                    match c.sftp.remove(path.as_str()).await {
                        Ok(_) => Ok(()),
                        Err(e) if is_code(&e, StatusCode::NoSuchFile) => Ok(()),
                        Err(e) => Err(inner.sftp_err("delete", id.as_str(), &e)),
                    }
                }
            })
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        self.inner.list(prefix).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_describe_hide_secrets() {
        let o = SftpOptions::new(
            "nas",
            "backup",
            "/srv/kopia",
            SftpAuth::Password("hunter2-secret".into()),
            KnownHosts::Data("nas ssh-ed25519 AAAA".into()),
        );
        assert_eq!(o.describe(), "sftp://backup@nas:22/srv/kopia");
        let dbg = format!("{o:?}");
        assert!(!dbg.contains("hunter2-secret"), "{dbg}");
        let k = SftpAuth::KeyData("-----BEGIN OPENSSH PRIVATE KEY----- xyz".into());
        assert!(!format!("{k:?}").contains("xyz"));
        let mut rel = o.clone();
        rel.path = "kopia".into();
        assert_eq!(rel.describe(), "sftp://backup@nas:22/kopia");
    }
}
