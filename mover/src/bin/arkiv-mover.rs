//! The VolSync Kopia mover (`/mover-kopia/entry.sh` in the image): see `arkiv_mover::volsync`.

use arkiv_mover::app::{self, Workload};
use arkiv_mover::volsync::{self, config::Operation};

fn main() {
    let env = |k: &str| std::env::var(k).ok();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = match volsync::operation_hint(&args, &env) {
        Some(Operation::Restore) => Workload::Read,
        _ => Workload::Write,
    };
    app::tune_allocator(workload);
    // KOPIA_LOG_LEVEL (kopia's console level) sets the engine's stderr level.
    let level = env("KOPIA_LOG_LEVEL")
        .and_then(|l| volsync::config::engine_log_level(&l))
        .unwrap_or("warn");
    app::init_logging_with_default(level);
    std::process::exit(volsync::mover_main(&args, &env));
}
