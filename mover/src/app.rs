//! What every binary does before and around its work: logging, the tokio runtime, glibc
//! allocator tuning, and the `main` of the command-line binaries ([`cli_main`]).

use crate::{Env, exit};

/// Installs the stderr logger (`ARKIV_LOG` filters, default `warn`).
pub fn init_logging() {
    init_logging_with_default("warn");
}

/// Installs the stderr logger: `ARKIV_LOG` filters, else `default` (a level such as `info`).
pub fn init_logging_with_default(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ARKIV_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
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

/// What a run mostly does, which decides how [`tune_allocator`] sets up glibc's allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Backups, maintenance and everything else: few large, long-lived buffers (packs).
    Write,
    /// Restores and verification: a stream of chunk-sized buffers, allocated and freed at a
    /// high rate on many threads.
    Read,
}

/// The glibc tunables for [`Workload::Write`]: buffers of 1 MiB and more are mapped and
/// unmapped on their own instead of living in the allocator's arenas.
pub const MALLOC_TUNABLES_WRITE: &str = "glibc.malloc.mmap_threshold=1048576";

/// The glibc tunables for [`Workload::Read`]: chunk buffers (up to 8 MiB, and 4 MiB batch
/// reads) are reused from the heap instead of being mapped, faulted in and unmapped for
/// every chunk; two arenas and a 64 MiB trim threshold keep what the heap holds bounded.
pub const MALLOC_TUNABLES_READ: &str = "glibc.malloc.mmap_threshold=33554432:\
glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=67108864";

/// The workload of an `arkiv` command line: [`Workload::Read`] for `restore` and `verify`.
pub fn cli_workload(args: impl IntoIterator<Item = std::ffi::OsString>) -> Workload {
    // The first positional argument is the subcommand; skip global options and their values.
    const WITH_VALUE: [&str; 4] = [
        "--repo",
        "--password-file",
        "--override-username",
        "--override-hostname",
    ];
    let mut args = args.into_iter().skip(1);
    while let Some(a) = args.next() {
        let a = a.to_string_lossy();
        if WITH_VALUE.contains(&a.as_ref()) {
            args.next();
        } else if !a.starts_with('-') {
            return match a.as_ref() {
                "restore" | "verify" => Workload::Read,
                _ => Workload::Write,
            };
        }
    }
    Workload::Write
}

/// Tunes glibc's allocator for `workload`; call first thing in `main`, before any thread
/// starts.
///
/// Chunk-sized buffers (up to 8 MiB) and 20 MiB packs come and go on several threads. With
/// glibc's dynamic mmap threshold they end up in per-thread arenas that rarely shrink: on
/// the 1 GB benchmark tree a backup held 188 MiB RSS for a 90 MiB heap peak, a restore
/// 180–200 MiB. With a fixed 1 MiB threshold the same runs peak near 100 and 75 MiB at the
/// same speed (benches/README.md). A restore then maps, faults in and unmaps every chunk
/// buffer (300,000 page faults for the 1 GB tree); [`MALLOC_TUNABLES_READ`] lets it reuse
/// them from two arenas instead, at the same peak RSS (75–79 MiB) and 20 % less time.
/// glibc reads tunables only at start-up and the workspace forbids `unsafe` (so no
/// `mallopt`), hence: when `GLIBC_TUNABLES` is unset, the process re-executes itself once
/// (same PID, arguments and descriptors) with it set. If that fails, or another C library
/// is in use, the run simply continues untuned. Setting `GLIBC_TUNABLES` yourself (even to
/// an empty string) disables this.
pub fn tune_allocator(workload: Workload) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        const VAR: &str = "GLIBC_TUNABLES";
        if std::env::var_os(VAR).is_some() {
            return;
        }
        let tunables = match workload {
            Workload::Write => MALLOC_TUNABLES_WRITE,
            Workload::Read => MALLOC_TUNABLES_READ,
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_default();
        // `exec` returns only on failure; then run untuned.
        let _ = std::process::Command::new("/proc/self/exe")
            .arg0(arg0)
            .args(args)
            .env(VAR, tunables)
            .exec();
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = workload;
}

/// The whole `main` of a command-line binary: tune the allocator, log, parse `C` (usage
/// errors exit 2, `--help` exits 0), run `run` on the runtime with the process environment,
/// and exit with its code (errors printed as one line prefixed by `name`).
pub fn cli_main<C, Fut>(
    name: &str,
    workload: Workload,
    run: impl FnOnce(C, Env<'static>) -> Fut,
) -> !
where
    C: clap::Parser,
    Fut: std::future::Future<Output = anyhow::Result<i32>>,
{
    tune_allocator(workload);
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

#[cfg(test)]
mod allocator_tests {
    use super::*;

    fn workload(args: &[&str]) -> Workload {
        cli_workload(args.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn restore_and_verify_command_lines_are_read_workloads() {
        assert_eq!(
            workload(&["arkiv", "restore", "latest", "/t"]),
            Workload::Read
        );
        assert_eq!(
            workload(&["arkiv", "--repo", "filesystem:///restore", "verify"]),
            Workload::Read
        );
        assert_eq!(
            workload(&[
                "arkiv",
                "--password-file",
                "verify",
                "snapshot",
                "create",
                "/d"
            ]),
            Workload::Write
        );
        assert_eq!(
            workload(&["arkiv", "snapshot", "create", "restore"]),
            Workload::Write
        );
        assert_eq!(workload(&["arkiv", "--help"]), Workload::Write);
        assert_eq!(workload(&["arkiv"]), Workload::Write);
    }

    #[test]
    fn tunables_are_well_formed() {
        for t in [MALLOC_TUNABLES_WRITE, MALLOC_TUNABLES_READ] {
            for item in t.split(':') {
                let (k, v) = item.split_once('=').unwrap_or_default();
                assert!(k.starts_with("glibc.malloc."), "{t}");
                assert!(v.parse::<u64>().is_ok(), "{t}");
            }
        }
        assert_eq!(MALLOC_TUNABLES_READ.split(':').count(), 3);
    }
}
