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

/// Threads tokio may start for blocking work (file and filesystem-storage I/O). Tokio's
/// default, 512, let a restore of a tree of small files start hundreds of threads whose
/// allocator arenas and stacks dominated peak memory and system time; a few dozen keep
/// local disks and NFS busy.
pub const MAX_BLOCKING_THREADS: usize = 32;

/// The multi-threaded tokio runtime every binary runs on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
}

/// The glibc tunable [`tune_allocator`] sets: buffers of 1 MiB and more are mapped and
/// unmapped on their own instead of living in the allocator's arenas.
pub const MALLOC_TUNABLES: &str = "glibc.malloc.mmap_threshold=1048576";

/// Tunes glibc's allocator; call first thing in `main`, before any thread starts.
///
/// Chunk-sized buffers (up to 8 MiB) and 20 MiB packs come and go on several threads. With
/// glibc's dynamic mmap threshold they end up in per-thread arenas that rarely shrink: on
/// the 1 GB benchmark tree a backup held 188 MiB RSS for a 90 MiB heap peak, a restore
/// 180–200 MiB. With a fixed 1 MiB threshold the same runs peak near 100 and 75 MiB at the
/// same speed (benches/README.md). glibc reads tunables only at start-up and the workspace
/// forbids `unsafe` (so no `mallopt`), hence: when `GLIBC_TUNABLES` is unset, the process
/// re-executes itself once (same PID, arguments and descriptors) with it set. If that
/// fails, or another C library is in use, the run simply continues untuned. Setting
/// `GLIBC_TUNABLES` yourself (even to an empty string) disables this.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        const VAR: &str = "GLIBC_TUNABLES";
        if std::env::var_os(VAR).is_some() {
            return;
        }
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_default();
        // `exec` returns only on failure; then run untuned.
        let _ = std::process::Command::new("/proc/self/exe")
            .arg0(arg0)
            .args(args)
            .env(VAR, MALLOC_TUNABLES)
            .exec();
    }
}

/// The whole `main` of a command-line binary: tune the allocator, log, parse `C` (usage
/// errors exit 2, `--help` exits 0), run `run` on the runtime with the process environment,
/// and exit with its code (errors printed as one line prefixed by `name`).
pub fn cli_main<C, Fut>(name: &str, run: impl FnOnce(C, cli::Env<'static>) -> Fut) -> !
where
    C: clap::Parser,
    Fut: std::future::Future<Output = anyhow::Result<i32>>,
{
    tune_allocator();
    init_logging();
    let cli = match C::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start runtime: {e}");
            std::process::exit(exit::FAILURE);
        }
    };
    fn lookup(k: &str) -> Option<String> {
        std::env::var(k).ok()
    }
    let code = match rt.block_on(run(cli, &lookup)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: error: {}", exit::one_line(&e));
            exit::code_for(&e)
        }
    };
    std::process::exit(code);
}
