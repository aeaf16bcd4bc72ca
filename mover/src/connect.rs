//! Repository locations and connections: the one place that builds storage stacks and open
//! options for every binary.
//!
//! A [`RepoSpec`] says where the repository is: `filesystem:///abs/path` (or a bare absolute
//! path), `s3://BUCKET[/PREFIX]`, `azure://CONTAINER[/PREFIX]`, `gcs://BUCKET[/PREFIX]`,
//! `b2://BUCKET[/PREFIX]`, `webdav://…`/`webdavs://…`, `sftp://USER@HOST[:PORT]/PATH` or
//! `rclone://REMOTE:PATH`. For the command-line binaries the
//! settings of each come from the environment ([`s3_env`], [`azure_env`], [`webdav_env`],
//! [`sftp_env`], [`b2_env`],
//! proxies in [`proxy_env`]); the VolSync mover builds them from the mover contract's
//! variables. A [`Connection`] adds how to open it: read-write or read-only (every storage
//! call that would write fails), the clock, the local cache directory.
//!
//! `ARKIV_DIRECT_IO=off` (read by [`direct_io_from_env`]) turns `O_DIRECT` off for pack
//! writes into a filesystem repository and for restores of large files.
//!
//! The local cache: [`Connection::cache_dir`] and [`Connection::cache_limits`] go into the
//! engine's open options (the command-line binaries take the directory from
//! [`cache_dir_from_env`], the mover from `KOPIA_CACHE_DIR`). Every storage built here counts
//! its requests into the connection's [`RunIo`], which also remembers the cache of each
//! repository it opened: [`RunIo::report`] is what the summaries print.
//!
//! [`Connection::probe`] tells the cases a caller must tell apart before creating anything:
//! an opened repository, a missing directory, blank storage (safe to create a repository in),
//! or storage that holds data but no Kopia repository (never touched).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::b2::B2Options;
use arkiv_engine::blob::cloud::{AzureOptions, CloudStorage, GcsOptions};
use arkiv_engine::blob::counting::{CountingStorage, StorageCounters, StorageCounts};
use arkiv_engine::blob::filesystem::{FilesystemOptions, FilesystemStorage, Permissions};
use arkiv_engine::blob::rclone::{RcloneOptions, RcloneStorage};
use arkiv_engine::blob::readonly::ReadOnlyStorage;
use arkiv_engine::blob::s3::{S3Options, S3Storage};
use arkiv_engine::blob::sftp::{SftpOptions, SftpStorage};
use arkiv_engine::blob::webdav::{WebDavOptions, WebDavStorage};
use arkiv_engine::cache::{Cache, CacheLimits};
use arkiv_engine::clock::{SharedClock, SystemClock};
use arkiv_engine::initialize::{CreateOptions, create_repository};
use arkiv_engine::{Error, OpenOptions, Repository, Result};

use crate::Env;

pub mod azure_env;
pub mod b2_env;
pub mod proxy_env;
pub mod s3_env;
pub mod sftp_env;
pub mod webdav_env;

/// Names a filesystem repository directory may hold and still count as blank: the
/// filesystem's own `lost+found` and kopia's sharding parameters.
const BLANK_DIR_NAMES: [&str; 2] = ["lost+found", ".shards"];

/// Where a repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoSpec {
    /// A directory (local disk or NFS mount).
    Filesystem(PathBuf),
    /// An S3 bucket and prefix.
    S3(Box<S3Options>),
    /// An Azure Blob container and prefix.
    Azure(Box<AzureOptions>),
    /// A Google Cloud Storage bucket and prefix.
    Gcs(Box<GcsOptions>),
    /// A Backblaze B2 bucket and prefix (through B2's S3-compatible API).
    B2(Box<B2Options>),
    /// A WebDAV collection (Kopia's sharded layout).
    WebDav(Box<WebDavOptions>),
    /// An rclone remote, served over WebDAV by an rclone child process.
    Rclone(Box<RcloneOptions>),
    /// A directory on an SFTP server (Kopia's sharded layout).
    Sftp(Box<SftpOptions>),
}

impl RepoSpec {
    /// Parses a repository URL; S3 settings come from `env`.
    pub fn parse(url: &str, env: Env<'_>) -> Result<RepoSpec> {
        if let Some(rest) = url.strip_prefix("filesystem://") {
            if !rest.starts_with('/') {
                return Err(Error::Config(format!(
                    "invalid repository URL {url:?}: expected filesystem:///absolute/path"
                )));
            }
            return Ok(RepoSpec::Filesystem(PathBuf::from(rest)));
        }
        if url.starts_with("s3://") {
            return Ok(RepoSpec::S3(Box::new(s3_env::s3_options_from_env(
                url, env,
            )?)));
        }
        if url.starts_with('/') {
            return Ok(RepoSpec::Filesystem(PathBuf::from(url)));
        }
        let scheme = url.split_once("://").map_or(url, |(s, _)| s);
        match scheme.to_ascii_lowercase().as_str() {
            "azure" => Ok(RepoSpec::Azure(Box::new(
                azure_env::azure_options_from_env(url, env)?,
            ))),
            "gcs" => Ok(RepoSpec::Gcs(Box::new(azure_env::gcs_options_from_env(
                url, env,
            )?))),
            "webdav" | "webdavs" => Ok(RepoSpec::WebDav(Box::new(
                webdav_env::webdav_options_from_env(url, env)?,
            ))),
            "rclone" => Ok(RepoSpec::Rclone(Box::new(
                webdav_env::rclone_options_from_env(url, env)?,
            ))),
            "b2" => Ok(RepoSpec::B2(Box::new(b2_env::b2_options_from_env(
                url, env,
            )?))),
            "sftp" => Ok(RepoSpec::Sftp(Box::new(sftp_env::sftp_options_from_env(
                url, env,
            )?))),
            _ => Err(Error::Config(format!(
                "unsupported repository URL {url:?} (scheme {scheme:?}); use filesystem:///path, \
                 s3://bucket/prefix, azure://container/prefix, gcs://bucket/prefix, b2://bucket/prefix, \
                 webdav(s)://host/path, sftp://user@host/path or rclone://remote:path"
            ))),
        }
    }

    /// Display form (`filesystem:///path`, `s3://bucket/prefix`).
    pub fn describe(&self) -> String {
        match self {
            RepoSpec::Filesystem(p) => format!("filesystem://{}", p.display()),
            RepoSpec::S3(o) => format!("s3://{}/{}", o.bucket, o.prefix),
            RepoSpec::Azure(o) => format!("azure://{}/{}", o.container, o.prefix),
            RepoSpec::Gcs(o) => format!("gcs://{}/{}", o.bucket, o.prefix),
            RepoSpec::WebDav(o) => {
                format!(
                    "webdav {}",
                    arkiv_engine::blob::proxy::redact_userinfo(&o.url)
                )
            }
            RepoSpec::Rclone(o) => format!("rclone://{}", o.remote_path),
            RepoSpec::Sftp(o) => o.describe(),
            RepoSpec::B2(o) => o.describe(),
        }
    }
}

/// Whether the connection may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Backups, maintenance, policy changes.
    ReadWrite,
    /// Restores and listings that promise never to write: the storage refuses every write.
    ReadOnly,
}

/// What is at a location (see [`Connection::probe`]).
pub enum Probe {
    /// A repository, opened.
    Opened(Box<Repository>),
    /// A filesystem repository directory that does not exist.
    Missing,
    /// Storage that holds nothing (a directory with at most `lost+found` and `.shards`, an
    /// empty S3 prefix): a repository may be created in it.
    Blank(Arc<dyn BlobStorage>),
    /// Storage that holds data but no Kopia repository (no `kopia.repository` blob).
    Foreign,
}

/// A repository location and how to open it.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Where the repository is.
    pub spec: RepoSpec,
    /// Read-write or read-only.
    pub access: Access,
    /// The clock for timestamps and ages.
    pub clock: SharedClock,
    /// The disposable local cache (`None`: none).
    pub cache_dir: Option<PathBuf>,
    /// Size bounds of the local cache (the engine also fits them to the free space).
    pub cache_limits: CacheLimits,
    /// Write packs into a filesystem repository with `O_DIRECT` where the filesystem allows.
    pub direct_io: bool,
    /// Modes and owner of the files and directories a filesystem repository gets (kopia's
    /// `--file-mode`, `--dir-mode`, `--owner-uid`, `--owner-gid`).
    pub fs_permissions: Permissions,
    /// Request counters and opened caches, shared by the clones of this connection.
    pub io: Arc<RunIo>,
    /// How long a cached listing of the index blobs is trusted (zero: always list).
    pub list_cache_duration: std::time::Duration,
}

/// A variable lookup over fixed pairs, for the backend variable parsers' unit tests.
#[cfg(test)]
pub(crate) fn test_env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// A file or directory mode as kopia's `--file-mode`/`--dir-mode` take it: octal digits
/// (`0660`, `660`, `2770`), at most `07777`, not zero.
pub fn parse_mode(s: &str) -> Option<u32> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777 && *m != 0)
}

/// What a run asked of its storage and its local cache, shared by everything built from one
/// [`Connection`] (or handed to several).
#[derive(Debug, Default)]
pub struct RunIo {
    counters: Arc<StorageCounters>,
    caches: std::sync::Mutex<Vec<Arc<Cache>>>,
}

/// The storage requests and local-cache lookups of a run (the `storage` object of the
/// `--json` summaries and of the mover's JSON line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IoReport {
    /// Requests made to the repository's storage and bytes moved.
    #[serde(flatten)]
    pub storage: StorageCounts,
    /// Whether a local cache was in use.
    pub cache_used: bool,
    /// Index blobs and metadata packs served from the local cache (requests saved).
    pub cache_hits: u64,
    /// Lookups the local cache could not serve (then read from storage).
    pub cache_misses: u64,
}

impl RunIo {
    /// Fresh counters.
    pub fn new() -> Arc<RunIo> {
        Arc::new(RunIo::default())
    }

    /// Counters that also log the ID of every blob read (for tests).
    pub fn with_read_log() -> Arc<RunIo> {
        Arc::new(RunIo {
            counters: StorageCounters::with_read_log(),
            caches: std::sync::Mutex::default(),
        })
    }

    /// The request counters.
    pub fn counters(&self) -> &Arc<StorageCounters> {
        &self.counters
    }

    /// Remembers the cache of an opened repository (for the report).
    pub fn note_opened(&self, repo: &Repository) {
        if let Some(c) = repo.cache() {
            let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
            if !caches.iter().any(|k| Arc::ptr_eq(k, c)) {
                caches.push(c.clone());
            }
        }
    }

    /// The counts so far.
    pub fn report(&self) -> IoReport {
        let caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        let (hits, misses) = caches.iter().fold((0, 0), |(h, m), c| {
            let s = c.stats();
            (h + s.hits, m + s.misses)
        });
        IoReport {
            storage: self.counters.counts(),
            cache_used: !caches.is_empty(),
            cache_hits: hits,
            cache_misses: misses,
        }
    }
}

/// The local cache directory of the command-line binaries: `ARKIV_CACHE_DIR` (`none` or
/// empty: no cache), else `$XDG_CACHE_HOME/arkiv`, else `$HOME/.cache/arkiv` (the user cache
/// directory Kopia also uses, with our own subdirectory: the files are not Kopia's). `None`
/// when no location can be found.
pub fn cache_dir_from_env(env: Env<'_>) -> Option<PathBuf> {
    if let Some(v) = env("ARKIV_CACHE_DIR") {
        let v = v.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("none") {
            return None;
        }
        return Some(PathBuf::from(v));
    }
    let absolute = |v: Option<String>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    absolute(env("XDG_CACHE_HOME"))
        .or_else(|| absolute(env("HOME")).map(|h| h.join(".cache")))
        .map(|d| d.join("arkiv"))
}

/// `ARKIV_CONTENT_CACHE_MB`: how many MiB of data contents the command-line binaries keep in
/// the local cache after a restore read them (kopia's content cache). Unset, empty or `0`:
/// none, so a one-off restore does not write its data twice. Not a whole number: an error
/// naming the variable.
pub fn content_cache_mb_from_env(env: Env<'_>) -> Result<u64, String> {
    match env("ARKIV_CONTENT_CACHE_MB").map(|v| v.trim().to_owned()) {
        None => Ok(0),
        Some(v) if v.is_empty() => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            format!("invalid ARKIV_CONTENT_CACHE_MB={v:?}: expected a whole number of MiB")
        }),
    }
}

/// `ARKIV_DIRECT_IO`: direct I/O unless `0`, `off`, `false` or `no` (trimmed, any case);
/// unset or anything else means on.
pub fn direct_io_from_env(env: Env<'_>) -> bool {
    !env("ARKIV_DIRECT_IO").is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "off" | "false" | "no"
        )
    })
}

impl Connection {
    /// A connection with the system clock and no local cache.
    pub fn new(spec: RepoSpec, access: Access) -> Connection {
        Connection {
            spec,
            access,
            clock: Arc::new(SystemClock),
            cache_dir: None,
            cache_limits: CacheLimits::default(),
            direct_io: true,
            fs_permissions: Permissions::default(),
            io: RunIo::new(),
            // The expiry `kopia repository connect` gives its cached index listings; it
            // applies only when a cache is open.
            list_cache_duration: arkiv_engine::blob::listcache::KOPIA_CONNECT_DEFAULT,
        }
    }

    fn fs_options(&self) -> FilesystemOptions {
        let mut o = FilesystemOptions::default();
        o.direct_io = self.direct_io;
        o.permissions = self.fs_permissions;
        o
    }

    /// Writes a small object outside kopia's blob namespace at `key` (slash-separated,
    /// relative to the repository root): the S3 object `<prefix><key>`, or the plain file
    /// `<path>/<key>` (atomic, with the connection's permissions). Kopia's and arkiv's
    /// maintenance delete only blobs with their own prefixes, so such objects stay.
    pub async fn put_outside_blobs(&self, key: &str, data: bytes::Bytes) -> Result<()> {
        if self.access == Access::ReadOnly {
            return Err(Error::Config(
                "cannot write through a read-only connection".into(),
            ));
        }
        match &self.spec {
            RepoSpec::Filesystem(p) => {
                FilesystemStorage::open_with(p, &self.fs_options())?
                    .put_file(key, data)
                    .await
            }
            RepoSpec::S3(o) => {
                use arkiv_engine::blob::BlobStorage as _;
                S3Storage::new((**o).clone())?
                    .put(&arkiv_format::ids::BlobId::new(key), data)
                    .await
            }
            // Azure, GCS and B2 name objects `<prefix><blob id>` like S3, so the key is the
            // object's name under the prefix.
            RepoSpec::Azure(_) | RepoSpec::Gcs(_) | RepoSpec::B2(_) => {
                remote_storage(&self.spec)
                    .await?
                    .put(&arkiv_format::ids::BlobId::new(key), data)
                    .await
            }
            // The WebDAV layout shards every blob name, so a predictable key has no place.
            RepoSpec::WebDav(_) | RepoSpec::Rclone(_) | RepoSpec::Sftp(_) => {
                Err(Error::Config(format!(
                    "objects outside the blob namespace (such as {key}) are written only to \
                 filesystem, S3, Azure, GCS and B2 repositories, not to {}",
                    self.spec.describe()
                )))
            }
        }
    }

    /// Display form of the location.
    pub fn describe(&self) -> String {
        self.spec.describe()
    }

    /// The engine's open options for this connection.
    pub fn open_options(&self) -> OpenOptions {
        let mut o = OpenOptions::default();
        o.clock = self.clock.clone();
        o.cache_dir = self.cache_dir.clone();
        o.cache_limits = self.cache_limits;
        o.list_cache_duration = self.list_cache_duration;
        o
    }

    fn wrap(&self, s: Arc<dyn BlobStorage>) -> Arc<dyn BlobStorage> {
        let s: Arc<dyn BlobStorage> = Arc::new(CountingStorage::new(s, self.io.counters.clone()));
        match self.access {
            Access::ReadWrite => s,
            Access::ReadOnly => Arc::new(ReadOnlyStorage::new(s)),
        }
    }

    /// The storage of an existing location, `None` for a missing filesystem directory.
    /// Creates nothing; an S3 bucket is checked (a missing bucket is [`Error::NotFound`]).
    pub async fn storage(&self) -> Result<Option<Arc<dyn BlobStorage>>> {
        let s: Arc<dyn BlobStorage> = match &self.spec {
            RepoSpec::Filesystem(p) => {
                if !p.exists() {
                    return Ok(None);
                }
                if !p.is_dir() {
                    return Err(Error::Config(format!("{} is not a directory", p.display())));
                }
                Arc::new(FilesystemStorage::open_with(p, &self.fs_options())?)
            }
            RepoSpec::S3(o) => Arc::new(s3_storage(o).await?),
            other => remote_storage(other).await?,
        };
        Ok(Some(self.wrap(s)))
    }

    /// Storage ready for a new repository: a missing directory is created (with kopia's
    /// `.shards`); an S3 bucket must exist. Refused on a read-only connection.
    pub async fn storage_for_create(&self) -> Result<Arc<dyn BlobStorage>> {
        if self.access == Access::ReadOnly {
            return Err(Error::Config(
                "cannot create a repository through a read-only connection".into(),
            ));
        }
        Ok(match &self.spec {
            RepoSpec::Filesystem(p) => self.wrap(Arc::new(FilesystemStorage::create_with(
                p,
                &self.fs_options(),
            )?)),
            RepoSpec::S3(o) => self.wrap(Arc::new(s3_storage(o).await?)),
            RepoSpec::WebDav(o) => self.wrap(Arc::new(WebDavStorage::create((**o).clone()).await?)),
            RepoSpec::Sftp(o) => self.wrap(Arc::new(SftpStorage::create((**o).clone()).await?)),
            RepoSpec::Rclone(o) => self.wrap(Arc::new(
                RcloneStorage::open((**o).clone())
                    .await?
                    .for_create()
                    .await?,
            )),
            other => self.wrap(remote_storage(other).await?),
        })
    }

    /// Opens the repository; a missing directory is [`Error::RepositoryNotFound`].
    pub async fn open(&self, password: &str) -> Result<Repository> {
        let storage = self
            .storage()
            .await?
            .ok_or_else(|| Error::RepositoryNotFound {
                location: self.describe(),
                detail: "directory does not exist".into(),
            })?;
        let repo = Repository::open(storage, password, self.open_options()).await?;
        self.io.note_opened(&repo);
        Ok(repo)
    }

    /// Opens the repository, or says what is there instead (see [`Probe`]).
    pub async fn probe(&self, password: &str) -> Result<Probe> {
        match self.storage().await? {
            Some(storage) => self.probe_storage(storage, password).await,
            None => Ok(Probe::Missing),
        }
    }

    /// [`Connection::probe`] on storage from [`Connection::storage`] (for callers that word
    /// storage errors themselves). Never [`Probe::Missing`].
    pub async fn probe_storage(
        &self,
        storage: Arc<dyn BlobStorage>,
        password: &str,
    ) -> Result<Probe> {
        match Repository::open(storage.clone(), password, self.open_options()).await {
            Ok(repo) => {
                self.io.note_opened(&repo);
                Ok(Probe::Opened(Box::new(repo)))
            }
            Err(Error::RepositoryNotFound { .. }) => {
                let blank = match &self.spec {
                    RepoSpec::Filesystem(p) => dir_is_blank(p)?,
                    _ => storage.list("").await?.is_empty(),
                };
                Ok(if blank {
                    Probe::Blank(storage)
                } else {
                    Probe::Foreign
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a repository in `storage` (from [`Connection::storage_for_create`] or a
    /// [`Probe::Blank`]; a blank directory gets kopia's `.shards` first).
    pub async fn create(
        &self,
        storage: Arc<dyn BlobStorage>,
        password: &str,
        opts: &CreateOptions,
    ) -> Result<Repository> {
        let storage = match &self.spec {
            RepoSpec::Filesystem(p) if !p.join(".shards").exists() => self.wrap(Arc::new(
                FilesystemStorage::create_with(p, &self.fs_options())?,
            )),
            // A blank WebDAV location gets Kopia's `.shards` (and its collection) first.
            RepoSpec::WebDav(_) | RepoSpec::Rclone(_) | RepoSpec::Sftp(_) => {
                self.storage_for_create().await?
            }
            _ => storage,
        };
        let repo = create_repository(storage, password, opts, self.open_options()).await?;
        self.io.note_opened(&repo);
        Ok(repo)
    }
}

/// An S3 storage whose bucket was checked.
async fn s3_storage(o: &S3Options) -> Result<S3Storage> {
    let s = S3Storage::new(o.clone())?;
    s.check_bucket().await?;
    Ok(s)
}

/// Storage of the Azure, GCS, B2, WebDAV, SFTP and rclone locations (containers and buckets checked;
/// a WebDAV location is opened without writing).
async fn remote_storage(spec: &RepoSpec) -> Result<Arc<dyn BlobStorage>> {
    Ok(match spec {
        RepoSpec::Azure(o) => {
            let s = CloudStorage::azure((**o).clone())?;
            s.check_container().await?;
            Arc::new(s)
        }
        RepoSpec::Gcs(o) => {
            let s = CloudStorage::gcs((**o).clone())?;
            s.check_container().await?;
            Arc::new(s)
        }
        RepoSpec::WebDav(o) => Arc::new(WebDavStorage::open((**o).clone()).await?),
        RepoSpec::Rclone(o) => Arc::new(RcloneStorage::open((**o).clone()).await?),
        RepoSpec::Sftp(o) => Arc::new(SftpStorage::open((**o).clone()).await?),
        // B2's S3-compatible endpoint holds Kopia's B2 objects under the same names.
        RepoSpec::B2(o) => Arc::new(s3_storage(&o.s3_options().await?).await?),
        RepoSpec::Filesystem(_) | RepoSpec::S3(_) => {
            return Err(Error::Config(format!(
                "{} is not a remote location",
                spec.describe()
            )));
        }
    })
}

/// True when a directory holds nothing but `lost+found` and `.shards`.
fn dir_is_blank(dir: &Path) -> Result<bool> {
    let io = |source| Error::Io {
        path: dir.display().to_string(),
        source,
    };
    for e in std::fs::read_dir(dir).map_err(io)? {
        let name = e.map_err(io)?.file_name();
        if !BLANK_DIR_NAMES.iter().any(|n| name == *n) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn urls() {
        let fs = RepoSpec::parse("filesystem:///srv/r", &no_env).unwrap();
        assert_eq!(fs.describe(), "filesystem:///srv/r");
        let bare = RepoSpec::parse("/srv/r", &no_env).unwrap();
        assert!(matches!(bare, RepoSpec::Filesystem(p) if p == Path::new("/srv/r")));
        let e = RepoSpec::parse("filesystem://rel/r", &no_env).unwrap_err();
        assert!(matches!(e, Error::Config(_)));
        let e = RepoSpec::parse("ftp://c/p", &no_env).unwrap_err();
        assert!(e.to_string().contains("scheme \"ftp\""), "{e}");
        let env = |k: &str| (k == "AZURE_STORAGE_ACCOUNT").then(|| "acct".to_owned());
        let az = RepoSpec::parse("azure://c/p", &env).unwrap();
        assert_eq!(az.describe(), "azure://c/p/");
        let dav = RepoSpec::parse("webdavs://u:pw@nas/dav", &no_env).unwrap();
        assert_eq!(dav.describe(), "webdav https://<redacted>@nas/dav");
        let rc = RepoSpec::parse("rclone://remote:path", &no_env).unwrap();
        assert_eq!(rc.describe(), "rclone://remote:path");
        let env = |k: &str| match k {
            "SFTP_KEY_FILE" => Some("/k".to_owned()),
            "SFTP_KNOWN_HOSTS" => Some("/kh".to_owned()),
            _ => None,
        };
        let sftp = RepoSpec::parse("sftp://u@nas:2222/srv/r", &env).unwrap();
        assert_eq!(sftp.describe(), "sftp://u@nas:2222/srv/r");
    }

    #[test]
    fn cache_dir_rules() {
        let env_of = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let dir = |pairs| cache_dir_from_env(&env_of(pairs));
        assert_eq!(dir(&[]), None);
        assert_eq!(
            dir(&[("HOME", "/home/u")]),
            Some(PathBuf::from("/home/u/.cache/arkiv"))
        );
        assert_eq!(
            dir(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")]),
            Some(PathBuf::from("/xdg/arkiv"))
        );
        // XDG: a relative XDG_CACHE_HOME is ignored
        assert_eq!(
            dir(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "rel")]),
            Some(PathBuf::from("/home/u/.cache/arkiv"))
        );
        assert_eq!(
            dir(&[("HOME", "/home/u"), ("ARKIV_CACHE_DIR", "/c")]),
            Some(PathBuf::from("/c"))
        );
        for off in ["none", " NONE ", ""] {
            let pairs: &'static [(&str, &str)] = match off {
                "none" => &[("HOME", "/h"), ("ARKIV_CACHE_DIR", "none")],
                " NONE " => &[("HOME", "/h"), ("ARKIV_CACHE_DIR", " NONE ")],
                _ => &[("HOME", "/h"), ("ARKIV_CACHE_DIR", "")],
            };
            assert_eq!(dir(pairs), None, "{off:?}");
        }
    }

    #[test]
    fn direct_io_switch() {
        for (v, on) in [
            (None, true),
            (Some("1"), true),
            (Some("on"), true),
            (Some("0"), false),
            (Some(" OFF "), false),
            (Some("false"), false),
            (Some("no"), false),
        ] {
            let env = |k: &str| {
                (k == "ARKIV_DIRECT_IO")
                    .then(|| v.map(str::to_owned))
                    .flatten()
            };
            assert_eq!(direct_io_from_env(&env), on, "{v:?}");
        }
    }

    #[test]
    fn probe_tells_missing_blank_and_foreign_apart() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let conn = Connection::new(RepoSpec::Filesystem(dir.clone()), Access::ReadOnly);
        assert!(matches!(
            rt.block_on(conn.probe("pw")).unwrap(),
            Probe::Missing
        ));
        std::fs::create_dir_all(dir.join("lost+found")).unwrap();
        assert!(matches!(
            rt.block_on(conn.probe("pw")).unwrap(),
            Probe::Blank(_)
        ));
        std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
        assert!(matches!(
            rt.block_on(conn.probe("pw")).unwrap(),
            Probe::Foreign
        ));
        // read-only connections create nothing
        assert!(rt.block_on(conn.storage_for_create()).is_err());
        assert!(!dir.join(".shards").exists());
    }
}
