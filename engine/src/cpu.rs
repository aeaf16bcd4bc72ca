//! The bridge from async code to the rayon pool: CPU-heavy work (hashing, compression,
//! encryption, decryption) never runs on a tokio worker.

use crate::{Error, Result};

/// Runs `f` on the rayon pool and awaits its result.
pub async fn run<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await
        .map_err(|_| Error::Cancelled("CPU task was dropped".into()))?
}
