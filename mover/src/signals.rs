//! Signal handling: SIGTERM/SIGINT stop long work cleanly (no snapshot is recorded as done).

use arkiv_engine::snapshot::upload::CancellationToken;

/// On SIGTERM or SIGINT, asks the running upload to stop.
pub fn cancel_on_signal(cancel: CancellationToken) {
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
        cancel.cancel();
    });
}
