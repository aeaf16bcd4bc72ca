//! Engine throughput: index lookups across many index blobs, and end-to-end snapshot
//! (first and unchanged) and restore of a generated tree into a filesystem repository.
//!
//! The repository lives under `$ARKIV_BENCH_DIR` (a temp dir when unset); pointing it at an
//! NFS mount benchmarks NFS. The tree is `TreeSpec::pvc_like(ARKIV_BENCH_SCALE)`, 0.01 by
//! default (≈ 300 files, ≈ 10 MB) so a criterion run stays short; `benches/compare.py` runs
//! the full-size comparison.

#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arkiv_benches::{TreeSpec, generate_tree};
use arkiv_engine::OpenOptions;
use arkiv_engine::Repository;
use arkiv_engine::blob::filesystem::FilesystemStorage;
use arkiv_engine::content::{IndexSet, LoadedIndex};
use arkiv_engine::initialize::{CreateOptions, create_repository};
use arkiv_engine::snapshot::restore::{RestoreOptions, restore_entry};
use arkiv_engine::snapshot::upload::{UploadOptions, UploadProgress, snapshot_directory};
use arkiv_format::compression::CompressionAlgorithm;
use arkiv_format::ids::{BlobId, ContentId};
use arkiv_format::index::{IndexReader, Info, build_v2};
use arkiv_format::snapshot::{DirEntry, SourceInfo};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn content_id(i: u64) -> ContentId {
    let mut h = [0u8; 16];
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for chunk in h.chunks_mut(8) {
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    ContentId::from_hash(None, &h).unwrap()
}

fn info(i: u64) -> Info {
    Info {
        content_id: content_id(i),
        pack_blob_id: BlobId::new(format!("p{:032x}-s0123456789abcdef1f", i / 500)),
        pack_offset: (i % 500) as u32 * 4096,
        packed_length: 4096,
        original_length: 4096,
        timestamp_seconds: 1_700_000_000,
        deleted: false,
        format_version: 2,
        compression_header_id: 0x1101,
        encryption_key_id: 0,
    }
}

/// 50 index blobs of 2,000 entries each (what 50 sessions leave before compaction).
fn index_set(c: &mut Criterion) {
    const BLOBS: u64 = 50;
    const PER: u64 = 2000;
    let indexes = (0..BLOBS)
        .map(|b| {
            LoadedIndex::new(
                BlobId::new(format!("xn0_{b:032x}")),
                IndexReader::parse(build_v2((b * PER..(b + 1) * PER).map(info), None).unwrap())
                    .unwrap(),
            )
        })
        .collect();
    let set = IndexSet::from_indexes(indexes, None);
    let hits: Vec<ContentId> = (0..1000)
        .map(|i| content_id(i * 97 % (BLOBS * PER)))
        .collect();
    let misses: Vec<ContentId> = (0..1000).map(|i| content_id(BLOBS * PER + i)).collect();
    let mut g = c.benchmark_group("index_set_50_blobs");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("hit", |b| {
        b.iter(|| {
            for id in &hits {
                black_box(set.lookup(id).unwrap());
            }
        })
    });
    g.bench_function("miss", |b| {
        b.iter(|| {
            for id in &misses {
                black_box(set.lookup(id).unwrap());
            }
        })
    });
    g.finish();
}

const PASSWORD: &str = "arkiv-bench-password";

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("ARKIV_BENCH_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d).unwrap();
            tempfile::Builder::new()
                .prefix("arkiv-criterion.")
                .tempdir_in(d)
                .unwrap()
        }
        None => tempfile::Builder::new()
            .prefix("arkiv-criterion.")
            .tempdir()
            .unwrap(),
    }
}

fn source(tree: &Path) -> SourceInfo {
    SourceInfo {
        host: "bench".into(),
        user_name: "bench".into(),
        path: tree.display().to_string(),
    }
}

async fn new_repo(path: &Path) -> Repository {
    let storage = Arc::new(FilesystemStorage::create(path).unwrap());
    create_repository(
        storage,
        PASSWORD,
        &CreateOptions::new("bench", "bench"),
        OpenOptions::default(),
    )
    .await
    .unwrap()
}

async fn snapshot(repo: &Repository, tree: &Path, previous: Option<DirEntry>) -> DirEntry {
    let mut opts = UploadOptions::new(source(tree));
    opts.compression = Some(CompressionAlgorithm::ZstdFastest);
    let r = snapshot_directory(
        repo,
        tree,
        previous,
        opts,
        Arc::new(UploadProgress::default()),
    )
    .await
    .unwrap();
    r.manifest.root_entry.unwrap()
}

fn end_to_end(c: &mut Criterion) {
    let scale: f64 = std::env::var("ARKIV_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.01);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = bench_dir();
    let tree = dir.path().join("tree");
    let stats = generate_tree(&tree, &TreeSpec::pvc_like(scale)).unwrap();
    let bytes = stats.total_bytes;
    let mut n = 0u32;
    let mut fresh = |what: &str| -> PathBuf {
        n += 1;
        dir.path().join(format!("{what}-{n}"))
    };

    let mut g = c.benchmark_group(format!("end_to_end_pvc_like_{scale}"));
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));

    g.bench_function("snapshot_first", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let path = fresh("repo");
                let repo = rt.block_on(new_repo(&path));
                let t = Instant::now();
                black_box(rt.block_on(snapshot(&repo, &tree, None)));
                total += t.elapsed();
                std::fs::remove_dir_all(&path).unwrap();
            }
            total
        })
    });

    // One repository holding one snapshot, shared by the unchanged and restore benches.
    let repo_path = fresh("repo");
    let (repo, root) = rt.block_on(async {
        let mut repo = new_repo(&repo_path).await;
        let root = snapshot(&repo, &tree, None).await;
        repo.refresh().await.unwrap();
        (repo, root)
    });

    g.bench_function("snapshot_unchanged", |b| {
        b.iter(|| black_box(rt.block_on(snapshot(&repo, &tree, Some(root.clone())))))
    });

    g.bench_function("restore", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let target = fresh("restore");
                let t = Instant::now();
                let s = rt
                    .block_on(restore_entry(
                        &repo,
                        &root,
                        &target,
                        RestoreOptions::default(),
                    ))
                    .unwrap();
                total += t.elapsed();
                black_box(s);
                std::fs::remove_dir_all(&target).unwrap();
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = index_set, end_to_end
}
criterion_main!(benches);
