//! # arkiv-mover: the binaries and their building blocks
//!
//! Layer: top (mover → engine → format). Parses command lines and environment, calls the
//! engine, renders results and maps errors to exit codes. No format or storage logic lives
//! here.
//!
//! Two front ends share one set of building blocks and never import each other:
//!
//! | module | what |
//! |---|---|
//! | [`app`] | logging, runtime, allocator tuning, the command-line `main` |
//! | [`exit`] | the one exit-code policy (CLI codes and the VolSync codes) |
//! | [`cancel`] | the one cancellation token, cancelled by SIGTERM/SIGINT |
//! | [`connect`] | repository URLs → storage → open / open read-only / create |
//! | [`credentials`] | the repository password from a file, the environment or a prompt |
//! | [`compression`] | compressor names from the command line, the environment and policies |
//! | [`progress`] | periodic progress lines for long work |
//! | [`render`] | text (kopia-style listings) and VolSync (controller lines, summary, result) |
//! | [`cli`] | the `arkiv` command line, one file per command |
//! | [`restore_tool`] | the standalone `arkiv-restore` binary |
//! | [`source_ages`] | per-source snapshot counts and ages for verification |
//! | [`volsync`] | the VolSync mover (`/mover-kopia/entry.sh`) |
//!
//! Which snapshot a command means is decided by one engine function for all three binaries:
//! [`arkiv_engine::snapshot::select`].

pub mod app;
pub mod cancel;
pub mod cli;
pub mod compression;
pub mod connect;
pub mod credentials;
pub mod exit;
pub mod progress;
pub mod render;
pub mod restore_tool;
pub mod source_ages;
pub mod volsync;

/// An environment lookup: `|k| std::env::var(k).ok()` in the binaries, a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The value of a variable, with an empty value counting as unset.
pub fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}
