//! # arkiv-engine: the repository engine
//!
//! Layer: middle (mover → engine → format). Owns all I/O: blob storage backends, the content
//! and index managers, objects, manifests, snapshots and restore. CPU-heavy work (hashing,
//! compression, encryption) runs on rayon; storage I/O runs on tokio.
//!
//! Invariants:
//! * A reader never trusts bytes it has not verified: every content read is decrypted
//!   (authenticated) and its hash re-checked after decompression.
//! * Errors carry an [`ErrorKind`] so callers decide on retries and exit codes without
//!   looking at message text.
//! * Time comes from [`clock::Clock`], never from `SystemTime::now` directly.

pub mod blob;
pub mod cache;
pub mod clock;
pub mod content;
pub mod cpu;
pub mod direct_io;
pub mod error;
pub mod initialize;
pub mod maintenance;
pub mod manifest;
pub mod object;
pub mod policy;
pub mod repo;
pub mod retention;
pub mod snapshot;
pub mod verify;

pub use error::{Error, ErrorKind, Result};
pub use repo::{OpenOptions, Repository};
