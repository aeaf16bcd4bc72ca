//! Signal handling: SIGTERM/SIGINT stop long work cleanly (no snapshot is recorded as done).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arkiv_engine::snapshot::upload::UploadProgress;

/// On SIGTERM or SIGINT, asks the running upload to stop.
pub fn cancel_on_signal(progress: Arc<UploadProgress>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("arkiv: signal received, stopping (no snapshot will be recorded)");
        progress.cancel.store(true, Ordering::Relaxed);
    });
}
