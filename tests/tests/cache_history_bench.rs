//! Benchmark (request counts, not time): a repository with history — 50 sources × 40
//! snapshots — and an unchanged re-backup of one source, cold (empty local cache) and warm.
//! Storage requests are counted by the counting decorator around the filesystem backend:
//! every `get` is one GET an S3 backend would make (one object or one range), so the counts
//! are those of an S3 repository behind a request-counting proxy.
//!
//! Acceptance: the warm run makes at most 10 % of the cold run's GETs and downloaded bytes.
//! Ignored by default (it writes 2000 snapshots); run it with
//! `cargo nextest run --workspace --run-ignored only -E 'test(cache_history)'`; the counts
//! are printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use arkiv_engine::blob::counting::{CountingStorage, StorageCounters, StorageCounts};
use arkiv_engine::blob::filesystem::FilesystemStorage;
use arkiv_engine::snapshot::select;
use arkiv_engine::snapshot::upload::{UploadOptions, UploadProgress, snapshot_directory};
use arkiv_engine::{OpenOptions, Repository};
use arkiv_format::snapshot::SourceInfo;
use arkiv_tests::*;

const PW: &str = "cache-history-pw";
const SOURCES: u32 = 50;
const SNAPSHOTS: u32 = 40;

fn source(n: u32) -> SourceInfo {
    SourceInfo {
        host: "cluster".into(),
        user_name: format!("app{n:02}"),
        path: "/data".into(),
    }
}

/// A small tree for source `n` at generation `g` (one file changes every generation).
fn tree(dir: &Path, n: u32, g: u32) {
    for d in ["a", "b/c"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("a/static.txt"), format!("source {n}\n").repeat(40)).unwrap();
    std::fs::write(dir.join("b/c/changing.txt"), format!("{n}/{g}\n")).unwrap();
}

async fn open(repo_dir: &Path, cache: Option<&Path>) -> (Repository, Arc<StorageCounters>) {
    let counters = StorageCounters::new();
    let storage = Arc::new(CountingStorage::new(
        FilesystemStorage::open(repo_dir).unwrap(),
        counters.clone(),
    ));
    let mut opts = OpenOptions::default();
    opts.cache_dir = cache.map(Path::to_path_buf);
    (Repository::open(storage, PW, opts).await.unwrap(), counters)
}

async fn backup(repo: &Repository, dir: &Path, src: SourceInfo, with_previous: bool) {
    let previous = if with_previous {
        let snaps = repo.snapshots().await.unwrap();
        select::latest(&snaps, &src).and_then(|s| s.manifest.root_entry.clone())
    } else {
        None
    };
    snapshot_directory(
        repo,
        dir,
        previous,
        UploadOptions::new(src),
        Arc::new(UploadProgress::default()),
    )
    .await
    .unwrap();
}

/// One measured run: open, list snapshots, re-back-up source 0 unchanged.
async fn measured(repo_dir: &Path, data: &Path, cache: &Path) -> StorageCounts {
    let (repo, counters) = open(repo_dir, Some(cache)).await;
    backup(&repo, data, source(0), true).await;
    counters.counts()
}

#[test]
#[ignore = "benchmark: writes 2000 snapshots; run explicitly"]
fn cache_history_warm_rebackup_costs_a_tenth_of_cold() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    create_repo(&repo_dir, PW);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = tmp.path().join("data");
    rt.block_on(async {
        // History: one handle per generation (its index set is refreshed between them).
        for g in 0..SNAPSHOTS {
            let (repo, _) = open(&repo_dir, None).await;
            for n in 0..SOURCES {
                let dir = data.join(format!("s{n}"));
                tree(&dir, n, g);
                backup(&repo, &dir, source(n), false).await;
            }
        }
    });
    let src0 = data.join("s0");
    let x = blob_files(&repo_dir, "x").len();
    let q = blob_files(&repo_dir, "q").len();
    let (cold, warm) = rt.block_on(async {
        let cache = tmp.path().join("cache");
        let cold = measured(&repo_dir, &src0, &cache).await;
        let warm = measured(&repo_dir, &src0, &cache).await;
        (cold, warm)
    });
    println!("history: {SOURCES} sources x {SNAPSHOTS} snapshots, {x} index blobs, {q} q packs");
    println!("cold: {cold:?}");
    println!("warm: {warm:?}");
    assert!(warm.gets * 10 <= cold.gets, "{warm:?} vs {cold:?}");
    assert!(
        warm.get_bytes * 10 <= cold.get_bytes,
        "{warm:?} vs {cold:?}"
    );
}
