//! # arkiv-format: the Kopia on-disk format as pure codecs
//!
//! Layer: the bottom of arkiv (mover → engine → format). Bytes in, typed values out, and back.
//! Nothing here performs I/O, spawns threads, reads a clock or draws random numbers: callers
//! pass nonces, timestamps and random suffixes in, which keeps every encoder deterministic and
//! every decoder testable against the known-answer vectors of `shared/kopia/TEST-VECTORS.md`.
//!
//! Invariants:
//! * Decoders never panic on hostile input; they return [`Error`] values naming the cause.
//! * Names of algorithms are closed enums whose `FromStr`/`Display` are Kopia's exact names.
//! * Encoders reproduce Kopia's bytes wherever Kopia is deterministic (JSON key order,
//!   Go's string escaping and timestamp format, index layouts).
//!
//! The module names follow Kopia's packages (`repo/format`, `repo/hashing`, ...).
#![deny(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

pub mod compression;
pub mod encryption;
pub mod error;
pub mod gojson;
pub mod hashing;
pub mod ids;
pub mod index;
pub mod indexblob;
pub mod indirect;
pub mod maintenance;
pub mod manifest;
pub mod pack;
pub mod policy;
pub mod repo_format;
pub mod retention;
pub mod snapshot;
pub mod splitter;
pub mod wcmatch;

pub use error::{Error, Result};
