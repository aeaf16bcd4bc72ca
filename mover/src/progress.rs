//! Progress of long work (uploads, restores, maintenance), as plain periodic lines: one
//! source of numbers, two styles. The CLI writes `[   5s] …` to stderr (stdout may carry
//! JSON); the VolSync mover writes `INFO: progress: …` lines to its log on stdout.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arkiv_engine::snapshot::upload::UploadProgress;

use crate::render::text::bytes_base10;

/// How progress lines look and how often they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `arkiv`: every 5 s on stderr.
    Cli,
    /// The VolSync mover: every 10 s on stdout (the container log).
    VolSync,
}

impl Style {
    fn every(self) -> Duration {
        match self {
            Style::Cli => Duration::from_secs(5),
            Style::VolSync => Duration::from_secs(10),
        }
    }

    fn line(self, elapsed: Duration, body: &str) -> String {
        let secs = elapsed.as_secs_f64();
        match self {
            Style::Cli => format!("[{secs:>5.0}s] {body}"),
            Style::VolSync => format!("INFO: progress: {secs:.0}s: {body}"),
        }
    }

    fn print(self, line: &str) {
        match self {
            Style::Cli => eprintln!("{line}"),
            Style::VolSync => println!("{line}"),
        }
    }
}

/// What is being reported.
#[derive(Debug, Clone)]
pub enum Source {
    /// An upload's live counters.
    Upload(Arc<UploadProgress>),
    /// Work without counters: only that it is still running.
    Running(&'static str),
}

impl Source {
    /// The numbers, in words.
    pub fn body(&self) -> String {
        match self {
            Source::Upload(p) => format!(
                "hashed {} files ({}), cached {} files ({}), {} dirs, {} errors",
                p.hashed_files.load(Ordering::Relaxed),
                bytes_base10(p.hashed_bytes.load(Ordering::Relaxed)),
                p.cached_files.load(Ordering::Relaxed),
                bytes_base10(p.cached_bytes.load(Ordering::Relaxed)),
                p.dirs.load(Ordering::Relaxed),
                p.errors.load(Ordering::Relaxed),
            ),
            Source::Running(what) => format!("{what} running"),
        }
    }
}

/// Prints progress lines until dropped.
#[derive(Debug)]
pub struct Ticker(tokio::task::JoinHandle<()>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts printing `source` in `style` (the first line after one period). Must be called
/// inside the runtime.
pub fn start(style: Style, source: Source) -> Ticker {
    let started = Instant::now();
    Ticker(tokio::spawn(async move {
        let mut iv = tokio::time::interval(style.every());
        iv.tick().await;
        loop {
            iv.tick().await;
            style.print(&style.line(started.elapsed(), &source.body()));
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let p = Arc::new(UploadProgress::default());
        p.hashed_files.store(3, Ordering::Relaxed);
        p.hashed_bytes.store(2_000_000, Ordering::Relaxed);
        let body = Source::Upload(p).body();
        assert_eq!(
            body,
            "hashed 3 files (2 MB), cached 0 files (0 B), 0 dirs, 0 errors"
        );
        assert_eq!(Style::Cli.line(Duration::from_secs(5), "x"), "[    5s] x");
        assert_eq!(
            Style::VolSync.line(Duration::from_secs(10), "restore running"),
            "INFO: progress: 10s: restore running"
        );
    }
}
