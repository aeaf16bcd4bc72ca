//! Scenario: the disposable local cache makes repeated opens cheap — index blobs come from the
//! cache instead of storage — and is never required: a corrupt cache file is rebuilt, and an
//! unusable cache directory just means running uncached.

use std::sync::Arc;

use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::faulty::{FaultyStorage, Op};
use arkiv_engine::blob::filesystem::FilesystemStorage;
use arkiv_engine::{ErrorKind, OpenOptions, Repository};
use arkiv_tests::*;

fn open_with(
    rt: &tokio::runtime::Runtime,
    storage: Arc<dyn BlobStorage>,
    cache: Option<&std::path::Path>,
) -> arkiv_engine::Result<Repository> {
    let mut opts = OpenOptions::default();
    opts.cache_dir = cache.map(|p| p.to_path_buf());
    rt.block_on(Repository::open(storage, FIXTURE_PASSWORD, opts))
}

#[test]
fn index_blobs_are_served_from_the_cache() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("cache");
    let repo_dir = fixtures_dir().join("repo-a");
    let fs = || Arc::new(FilesystemStorage::open(&repo_dir).unwrap());

    // first open fills the cache
    let first = open_with(&rt, fs(), Some(&cache_dir)).unwrap();
    let n = first.indexes().blob_count();
    assert!(n >= 4);
    let snaps = rt.block_on(first.snapshots()).unwrap().len();

    // index blob reads now fail at the storage: without the cache, open fails ...
    let faulty = Arc::new(FaultyStorage::new(fs()));
    faulty.fail_permanently(Op::Get, "xn", ErrorKind::Transient);
    let err = open_with(&rt, faulty.clone(), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    // ... with the cache, the same indexes load and the snapshots list
    let cached = open_with(&rt, faulty, Some(&cache_dir)).unwrap();
    assert_eq!(cached.indexes().blob_count(), n);
    assert_eq!(rt.block_on(cached.snapshots()).unwrap().len(), snaps);
    assert_fixtures_unchanged();
}

#[test]
fn corrupt_or_unusable_cache_never_breaks_a_run() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("cache");
    let repo_dir = fixtures_dir().join("repo-b");
    let fs = || -> Arc<dyn BlobStorage> { Arc::new(FilesystemStorage::open(&repo_dir).unwrap()) };
    let repo = open_with(&rt, fs(), Some(&cache_dir)).unwrap();
    let db = repo.cache().expect("cache opened").path().to_path_buf();
    drop(repo);
    std::fs::write(&db, b"this is not a sqlite database, just garbage").unwrap();
    let _ = std::fs::remove_file(db.with_extension("sqlite-wal"));
    let repo = open_with(&rt, fs(), Some(&cache_dir)).unwrap();
    assert!(repo.cache().expect("cache rebuilt").rebuilt());
    assert_eq!(rt.block_on(repo.snapshots()).unwrap().len(), 1);
    // a cache "directory" that is a regular file: run uncached
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let repo = open_with(&rt, fs(), Some(&file.join("sub"))).unwrap();
    assert!(repo.cache().is_none());
    assert_eq!(rt.block_on(repo.snapshots()).unwrap().len(), 1);
}
