//! The bridge from async code to CPU work: hashing, decompression and decryption of reads
//! never run on a tokio worker.
//!
//! The work goes to a dedicated rayon pool owned by this module. It must not be the pool a
//! caller may be running on: `rayon::spawn` from inside a pool queues onto that same pool,
//! and an upload worker waiting (on a oneshot) for a read that needs such a task would wait
//! for itself (a deadlock we hit when uploads read previous directory listings). For the
//! same reason, jobs run here never wait for anything that may itself need this pool: they
//! compute and return, and the content writer's blocking methods are not called from here.

use std::sync::OnceLock;

use crate::{Error, Result};

fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("arkiv-cpu-{i}"))
            .build()
            .unwrap_or_else(|_| {
                // Thread creation failed (resource limits): fall back to a single thread.
                #[allow(clippy::expect_used)]
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .expect("cannot create any worker thread")
            })
    })
}

/// Runs `f` on the CPU pool and awaits its result.
pub async fn run<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool().spawn(move || {
        let _ = tx.send(f());
    });
    rx.await
        .map_err(|_| Error::Cancelled("CPU task was dropped".into()))?
}
