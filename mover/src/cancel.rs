//! The one cancellation mechanism: a [`CancellationToken`] that SIGTERM and SIGINT cancel.
//!
//! Long work checks the token at safe points (an upload stops before writing its manifest,
//! a repository creation is finished first) or is raced against
//! [`CancellationToken::cancelled`] where abandoning it half-way is safe (reads, restores).

pub use tokio_util::sync::CancellationToken;

/// Cancels a new token on the first SIGTERM or SIGINT, after calling `announce` with the
/// signal's name (the binaries print their own line). Must be called inside the runtime.
pub fn on_signal(announce: impl FnOnce(&'static str) + Send + 'static) -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let cancel = token.clone();
    // Installed before returning, not in the task: a signal that arrives before the task's
    // first poll would otherwise still kill the process (the default action).
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("WARN: cannot install signal handlers");
        return token;
    };
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        announce(name);
        cancel.cancel();
    });
    token
}
