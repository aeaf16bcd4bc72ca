//! Engine errors and their kinds.
//!
//! [`ErrorKind`] is what callers branch on (retry, exit code, message); the variants carry the
//! context a user needs (which blob, which content, which storage).

use arkiv_format::ids::{BlobId, ContentId};

/// Result alias of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Coarse classification of an error, stable across variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A blob, content, object, snapshot or repository does not exist.
    NotFound,
    /// Something that must be fresh already exists (e.g. create over an existing repository).
    AlreadyExists,
    /// Bytes failed verification: MAC or hash mismatch, truncated or malformed data.
    Corrupt,
    /// A failure that may succeed when retried (5xx, timeouts, resets).
    Transient,
    /// Authentication failed: wrong password or rejected credentials.
    Auth,
    /// Access denied by the operating system or the storage.
    PermissionDenied,
    /// Invalid configuration or arguments.
    Config,
    /// A valid feature arkiv does not implement (algorithm, format version, ECC...).
    Unsupported,
    /// The operation was cancelled (signal, shutdown).
    Cancelled,
    /// Anything else (local I/O errors such as a full disk).
    Other,
}

/// An engine error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A format-layer decode/crypto failure, with what was being read.
    #[error("{context}: {source}")]
    Format {
        /// What was being decoded (e.g. "index blob xn0_…", "content 4535…").
        context: String,
        /// The format error.
        #[source]
        source: arkiv_format::Error,
    },
    /// A blob does not exist.
    #[error("blob {id} not found in {storage}")]
    BlobNotFound {
        /// Storage description.
        storage: String,
        /// The blob.
        id: BlobId,
    },
    /// A storage operation failed.
    #[error("{storage}: {op} {target}: {message}")]
    Storage {
        /// Storage description (URL or path).
        storage: String,
        /// Operation ("get", "put", "list", "delete").
        op: &'static str,
        /// Blob ID or prefix.
        target: String,
        /// Classification.
        kind: ErrorKind,
        /// Underlying message.
        message: String,
    },
    /// No repository at the location.
    #[error("repository not found at {location}: {detail}")]
    RepositoryNotFound {
        /// Where we looked.
        location: String,
        /// Why we think there is none.
        detail: String,
    },
    /// The password did not decrypt the repository configuration.
    #[error("invalid repository password for {location}")]
    WrongPassword {
        /// Repository location.
        location: String,
    },
    /// A content referenced by an object or listing is missing from the index.
    #[error("content {0} not found in any index")]
    ContentNotFound(ContentId),
    /// Data failed verification (with context).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Something is not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Invalid configuration or argument.
    #[error("{0}")]
    Config(String),
    /// Something exists that must not.
    #[error("{0}")]
    AlreadyExists(String),
    /// Not found (snapshot, path inside a snapshot, ...).
    #[error("{0}")]
    NotFound(String),
    /// Cancelled.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// Maintenance is owned by another identity.
    #[error(
        "maintenance must be run by designated user: {owner} (acting as {me}); take over with `arkiv maintenance set-owner`, or pass --force for disaster recovery"
    )]
    NotMaintenanceOwner {
        /// The owner recorded in the parameters manifest.
        owner: String,
        /// The acting identity.
        me: String,
    },
    /// Local I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Format { source, .. } => format_kind(source),
            Error::BlobNotFound { .. } => ErrorKind::NotFound,
            Error::Storage { kind, .. } => *kind,
            Error::RepositoryNotFound { .. } => ErrorKind::NotFound,
            Error::WrongPassword { .. } => ErrorKind::Auth,
            Error::ContentNotFound(_) => ErrorKind::Corrupt,
            Error::Corrupt(_) => ErrorKind::Corrupt,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Config(_) => ErrorKind::Config,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Cancelled(_) => ErrorKind::Cancelled,
            Error::NotMaintenanceOwner { .. } => ErrorKind::PermissionDenied,
            Error::Io { source, .. } => io_kind(source),
        }
    }

    /// Wraps a format error with context.
    pub fn format(context: impl Into<String>, source: arkiv_format::Error) -> Self {
        Error::Format {
            context: context.into(),
            source,
        }
    }

    /// Wraps a local I/O error with its path.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

fn format_kind(e: &arkiv_format::Error) -> ErrorKind {
    use arkiv_format::Error as F;
    match e {
        F::WrongPassword => ErrorKind::Auth,
        F::Unsupported { .. } => ErrorKind::Unsupported,
        F::Invalid { .. } => ErrorKind::Config,
        _ => ErrorKind::Corrupt,
    }
}

/// Classifies an OS error.
pub fn io_kind(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => ErrorKind::NotFound,
        K::AlreadyExists => ErrorKind::AlreadyExists,
        K::PermissionDenied | K::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
        K::TimedOut | K::Interrupted | K::ConnectionReset | K::ConnectionAborted => {
            ErrorKind::Transient
        }
        K::UnexpectedEof | K::InvalidData => ErrorKind::Corrupt,
        _ => ErrorKind::Other,
    }
}
