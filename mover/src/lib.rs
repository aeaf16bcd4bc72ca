//! # arkiv-mover: the binaries' shared code
//!
//! Layer: top (mover → engine → format). Parses command lines and environment, calls the
//! engine, and maps errors to exit codes. No format or storage logic lives here.

pub mod cli;
pub mod env;
pub mod exit;
pub mod location;
pub mod maintenance_cli;
pub mod output;
pub mod policy;
pub mod report;
pub mod restore_cli;
pub mod retention_cli;
pub mod run;
pub mod signals;
pub mod write;

/// Installs the stderr logger (`ARKIV_LOG` filters, default `warn`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ARKIV_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
