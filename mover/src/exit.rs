//! Exit codes of the arkiv binaries, derived from [`ErrorKind`]s, never from message text.
//!
//! Two profiles. The `arkiv` and `arkiv-restore` command lines use the table below. The
//! VolSync mover keeps the shell mover's codes, which the controller and users' alerts know:
//! 0 success, 1 failure, 2 usage error, 143 terminated by a signal, 137 terminated with the
//! cache volume nearly full ([`volsync`]).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | other failure (local I/O error, unexpected condition) |
//! | 2 | usage error (bad command line) |
//! | 3 | not found: no repository at the location, or no such snapshot/path |
//! | 4 | wrong password (or credentials rejected) |
//! | 5 | corrupt data: MAC/hash mismatch, truncated or missing blob, verify found problems |
//! | 6 | unsupported: format version, algorithm, ECC, compression |
//! | 7 | permission denied |
//! | 8 | invalid configuration or arguments |
//! | 9 | finished with errors (e.g. a snapshot that skipped unreadable files) |
//! | 10 | storage unreachable or failing after retries (transient errors) |
//! | 11 | something already exists (e.g. create over an existing repository) |
//! | 130 | cancelled (SIGINT/SIGTERM) |

use arkiv_engine::{Error, ErrorKind};

/// Success.
pub const OK: i32 = 0;
/// Other failure.
pub const FAILURE: i32 = 1;
/// Usage error.
pub const USAGE: i32 = 2;
/// Not found.
pub const NOT_FOUND: i32 = 3;
/// Wrong password.
pub const AUTH: i32 = 4;
/// Corrupt data.
pub const CORRUPT: i32 = 5;
/// Unsupported feature.
pub const UNSUPPORTED: i32 = 6;
/// Permission denied.
pub const PERMISSION: i32 = 7;
/// Invalid configuration.
pub const CONFIG: i32 = 8;
/// Completed with errors.
pub const PARTIAL: i32 = 9;
/// Storage failing.
pub const TRANSIENT: i32 = 10;
/// Already exists.
pub const EXISTS: i32 = 11;
/// Cancelled.
pub const CANCELLED: i32 = 130;

/// The VolSync mover's exit codes (the shell mover's).
///
/// The controller ignores exit codes: any non-zero code fails the pod and the Job retries.
pub mod volsync {
    /// Success, also for an empty source directory and (by default) for a restore that finds
    /// no eligible snapshot.
    pub const SUCCESS: i32 = 0;
    /// Any real failure: configuration, connection, backup, restore, maintenance,
    /// `maintenance` given as an argument, no snapshot with `ARKIV_FAIL_IF_NO_SNAPSHOT=true`.
    pub const FAILURE: i32 = 1;
    /// Unknown, missing or extra operation argument.
    pub const USAGE: i32 = 2;
    /// Terminated while the cache was at least 90 % full (the script's distinct code; also
    /// what a SIGKILL shows).
    pub const CACHE_EXHAUSTED: i32 = 137;
    /// Terminated by SIGTERM otherwise (128 + 15).
    pub const TERMINATED: i32 = 143;
}

/// Maps an engine error kind to an exit code.
pub fn code_for_kind(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Auth => AUTH,
        ErrorKind::Corrupt => CORRUPT,
        ErrorKind::Unsupported => UNSUPPORTED,
        ErrorKind::PermissionDenied => PERMISSION,
        ErrorKind::Config => CONFIG,
        ErrorKind::Transient => TRANSIENT,
        ErrorKind::AlreadyExists => EXISTS,
        ErrorKind::Cancelled => CANCELLED,
        _ => FAILURE,
    }
}

/// Finds the engine error in an anyhow chain and maps it; other errors are failures.
pub fn code_for(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return code_for_kind(e.kind());
        }
        if let Some(c) = cause.downcast_ref::<CliError>() {
            return c.code;
        }
    }
    FAILURE
}

/// An error raised by the binaries themselves with a chosen exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Exit code.
    pub code: i32,
    /// One-line message.
    pub message: String,
}

impl CliError {
    /// A new error with an exit code (as an `anyhow::Error`, what the commands return).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(code: i32, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(CliError {
            code,
            message: message.into(),
        })
    }
}

/// One line for the user: the whole chain joined with ": ", without repeating text.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out.replace('\n', " ")
}
