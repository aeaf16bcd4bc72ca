//! Errors of the format layer.
//!
//! Each variant names the cause precisely enough for the engine to classify it
//! (`Corrupt`, `Unsupported`, `Auth`, ...) and for a user to act on the message.

/// Result alias of the format layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A decoding, encoding or cryptographic failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that do not follow the format (truncated, bad magic, offsets out of range...).
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being decoded ("index v2", "pack postamble", ...).
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// An authenticated decryption failed: wrong key, or tampered/corrupted ciphertext.
    #[error(
        "decryption failed for {what}: authentication tag mismatch (wrong key or corrupted data)"
    )]
    Decrypt {
        /// What was being decrypted.
        what: String,
    },
    /// The password did not decrypt the repository configuration.
    #[error("invalid repository password")]
    WrongPassword,
    /// The plaintext did not hash to the ID it was stored under.
    #[error("hash mismatch for {what}: expected {expected}, got {actual}")]
    HashMismatch {
        /// What was checked.
        what: String,
        /// The ID it was stored under.
        expected: String,
        /// The hash of the bytes actually read.
        actual: String,
    },
    /// A valid but unsupported feature (algorithm, format version, ECC, compression...).
    #[error("unsupported {what}: {name}")]
    Unsupported {
        /// Kind of thing ("compression", "hash algorithm", "format version", ...).
        what: &'static str,
        /// Its name or value.
        name: String,
    },
    /// An argument that cannot be encoded (e.g. too many packs for one index).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// JSON that does not match the expected document.
    #[error("malformed JSON in {what}: {source}")]
    Json {
        /// Which document.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what,
            detail: detail.into(),
        }
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(what: &'static str, name: impl Into<String>) -> Self {
        Error::Unsupported {
            what,
            name: name.into(),
        }
    }

    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            detail: detail.into(),
        }
    }

    /// Shorthand for [`Error::Json`].
    pub fn json(what: &'static str, source: serde_json::Error) -> Self {
        Error::Json { what, source }
    }
}
