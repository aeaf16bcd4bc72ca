//! Repository locations: `filesystem:///abs/path` (or a bare absolute path) and, with the S3
//! backend, `s3://bucket/prefix`.

use std::path::PathBuf;
use std::sync::Arc;

use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::filesystem::FilesystemStorage;
use arkiv_engine::{Error, Result};

/// A parsed repository location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory (local disk or NFS mount).
    Filesystem(PathBuf),
}

impl Location {
    /// Parses a repository URL.
    pub fn parse(url: &str) -> Result<Location> {
        if let Some(rest) = url.strip_prefix("filesystem://") {
            if !rest.starts_with('/') {
                return Err(Error::Config(format!(
                    "invalid repository URL {url:?}: expected filesystem:///absolute/path"
                )));
            }
            return Ok(Location::Filesystem(PathBuf::from(rest)));
        }
        if url.starts_with('/') {
            return Ok(Location::Filesystem(PathBuf::from(url)));
        }
        let scheme = url.split_once("://").map_or(url, |(s, _)| s);
        Err(Error::Config(format!(
            "unsupported repository URL {url:?} (scheme {scheme:?}); use filesystem:///path"
        )))
    }

    /// Display form (`filesystem:///path`).
    pub fn describe(&self) -> String {
        match self {
            Location::Filesystem(p) => format!("filesystem://{}", p.display()),
        }
    }

    /// Opens the storage for `repository create`, creating a missing directory.
    pub fn open_for_create(&self) -> Result<Arc<dyn BlobStorage>> {
        match self {
            Location::Filesystem(p) => Ok(Arc::new(FilesystemStorage::create(p)?)),
        }
    }

    /// Opens existing storage (never creates anything).
    pub fn open_existing(&self) -> Result<Arc<dyn BlobStorage>> {
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
        }
    }
}
