//! Repository locations: `filesystem:///abs/path` (or a bare absolute path) and
//! `s3://BUCKET[/PREFIX]` (endpoint, TLS, region and credentials from the environment:
//! `ARKIV_S3_*` over `KOPIA_S3_*`/`AWS_*`, see [`crate::connect::s3_env`]).

use std::path::PathBuf;
use std::sync::Arc;

use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::filesystem::FilesystemStorage;
use arkiv_engine::blob::s3::{S3Options, S3Storage};
use arkiv_engine::{Error, Result};

/// A parsed repository location.
#[derive(Debug, Clone)]
pub enum Location {
    /// A directory (local disk or NFS mount).
    Filesystem(PathBuf),
    /// An S3 bucket and prefix.
    S3(Box<S3Options>),
}

impl Location {
    /// Parses a repository URL, reading S3 options from the process environment.
    pub fn parse(url: &str) -> Result<Location> {
        Self::parse_with_env(url, &|k: &str| std::env::var(k).ok())
    }

    /// Parses a repository URL with an explicit environment.
    pub fn parse_with_env(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Location> {
        if let Some(rest) = url.strip_prefix("filesystem://") {
            if !rest.starts_with('/') {
                return Err(Error::Config(format!(
                    "invalid repository URL {url:?}: expected filesystem:///absolute/path"
                )));
            }
            return Ok(Location::Filesystem(PathBuf::from(rest)));
        }
        if url.starts_with("s3://") {
            return Ok(Location::S3(Box::new(
                crate::connect::s3_env::s3_options_from_env(url, env)?,
            )));
        }
        if url.starts_with('/') {
            return Ok(Location::Filesystem(PathBuf::from(url)));
        }
        let scheme = url.split_once("://").map_or(url, |(s, _)| s);
        Err(Error::Config(format!(
            "unsupported repository URL {url:?} (scheme {scheme:?}); use filesystem:///path or s3://bucket/prefix"
        )))
    }

    /// Display form (`filesystem:///path`, `s3://bucket/prefix`).
    pub fn describe(&self) -> String {
        match self {
            Location::Filesystem(p) => format!("filesystem://{}", p.display()),
            Location::S3(o) => format!("s3://{}/{}", o.bucket, o.prefix),
        }
    }

    /// Opens the storage for `repository create`, creating a missing directory (S3: the
    /// bucket must exist).
    pub async fn open_for_create(&self) -> Result<Arc<dyn BlobStorage>> {
        match self {
            Location::Filesystem(p) => Ok(Arc::new(FilesystemStorage::create(p)?)),
            Location::S3(o) => {
                let s = S3Storage::new((**o).clone())?;
                s.check_bucket().await?;
                Ok(Arc::new(s))
            }
        }
    }

    /// Opens existing storage (never creates anything).
    pub async fn open_existing(&self) -> Result<Arc<dyn BlobStorage>> {
        match self {
            Location::Filesystem(p) => {
                if !p.exists() {
                    return Err(Error::RepositoryNotFound {
                        location: self.describe(),
                        detail: "directory does not exist".into(),
                    });
                }
                Ok(Arc::new(FilesystemStorage::open(p)?))
            }
            Location::S3(o) => {
                let s = S3Storage::new((**o).clone())?;
                s.check_bucket().await?;
                Ok(Arc::new(s))
            }
        }
    }
}
