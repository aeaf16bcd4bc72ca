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

/// Walks every directory of every snapshot; returns how many listings were read.
fn walk_all(rt: &tokio::runtime::Runtime, repo: &Repository) -> arkiv_engine::Result<usize> {
    rt.block_on(async {
        let mut n = 0;
        for s in repo.snapshots().await? {
            let mut stack = vec![s.manifest.root_entry.expect("root entry").object];
            while let Some(oid) = stack.pop() {
                let d = repo.read_dir(&oid).await?;
                n += 1;
                for e in d.entries {
                    if e.entry_type == arkiv_format::snapshot::EntryType::Directory {
                        stack.push(e.object);
                    }
                }
            }
        }
        Ok(n)
    })
}

#[test]
fn metadata_packs_come_from_the_cache_but_verify_reads_the_repository() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_tmp, repo_dir) = fixture_copy("repo-a");
    let cache_tmp = tempfile::tempdir().unwrap();
    let cache_dir = cache_tmp.path().join("cache");
    let fs = || -> Arc<dyn BlobStorage> { Arc::new(FilesystemStorage::open(&repo_dir).unwrap()) };

    // A first run reads every listing: each q pack is fetched whole, once.
    let first = open_with(&rt, fs(), Some(&cache_dir)).unwrap();
    let dirs = walk_all(&rt, &first).unwrap();
    let q_packs = blob_files(&repo_dir, "q").len() as u64;
    let stats = first.contents().metadata_packs().unwrap().stats();
    assert!(dirs > 3, "{dirs}");
    assert!(stats.fetches >= 1 && stats.fetches <= q_packs, "{stats:?}");
    drop(first);

    // With q pack reads failing at the storage, the next run still reads every listing
    // from the local cache; without the cache it cannot.
    let faulty = Arc::new(FaultyStorage::new(fs()));
    faulty.fail_permanently(Op::Get, "q", ErrorKind::Transient);
    let cached = open_with(&rt, faulty.clone(), Some(&cache_dir)).unwrap();
    assert_eq!(walk_all(&rt, &cached).unwrap(), dirs);
    let uncached = open_with(&rt, faulty, None).unwrap();
    assert_eq!(
        walk_all(&rt, &uncached).unwrap_err().kind(),
        ErrorKind::Transient
    );

    // Damage every q pack in the repository. Reads through the cache still see the intact
    // copies, but verify must report the damage: it reads the repository, not the cache.
    for f in blob_files(&repo_dir, "q") {
        let mut b = std::fs::read(&f).unwrap();
        b[40] ^= 0x01;
        std::fs::write(&f, b).unwrap();
    }
    let repo = open_with(&rt, fs(), Some(&cache_dir)).unwrap();
    let report = rt
        .block_on(arkiv_engine::verify::verify(
            &repo,
            &arkiv_engine::verify::VerifyOptions::default(),
        ))
        .unwrap();
    assert!(!report.problems.is_empty(), "{report:?}");
    assert_fixtures_unchanged();
}

/// The filesystem storage of `repo_dir` behind a counter that logs every blob it reads.
fn logged_storage(
    repo_dir: &std::path::Path,
) -> (
    Arc<dyn BlobStorage>,
    Arc<arkiv_engine::blob::counting::StorageCounters>,
) {
    use arkiv_engine::blob::counting::{CountingStorage, StorageCounters};
    let counters = StorageCounters::with_read_log();
    let storage = Arc::new(CountingStorage::new(
        FilesystemStorage::open(repo_dir).unwrap(),
        counters.clone(),
    ));
    (storage, counters)
}

/// One backup of `src` as source `u@h:/src` through a storage that logs every blob it reads;
/// returns the IDs read.
fn logged_backup(
    rt: &tokio::runtime::Runtime,
    repo_dir: &std::path::Path,
    src: &std::path::Path,
    cache: Option<&std::path::Path>,
) -> Vec<String> {
    use arkiv_engine::snapshot::select;
    use arkiv_engine::snapshot::upload::{UploadOptions, UploadProgress, snapshot_directory};
    let (storage, counters) = logged_storage(repo_dir);
    let mut opts = OpenOptions::default();
    opts.cache_dir = cache.map(|p| p.to_path_buf());
    rt.block_on(async {
        let repo = Repository::open(storage, "local-cache-pw", opts)
            .await
            .unwrap();
        let source = arkiv_format::snapshot::SourceInfo {
            host: "h".into(),
            user_name: "u".into(),
            path: "/src".into(),
        };
        let snaps = repo.snapshots().await.unwrap();
        let previous = select::latest(&snaps, &source).and_then(|s| s.manifest.root_entry.clone());
        snapshot_directory(
            &repo,
            src,
            previous,
            UploadOptions::new(source),
            Arc::new(UploadProgress::default()),
        )
        .await
        .unwrap();
    });
    counters.read_ids().iter().map(|i| i.to_string()).collect()
}

#[test]
fn a_second_backup_reads_no_index_blob_or_metadata_pack_it_read_before() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    let cache = tmp.path().join("cache");
    create_repo(&repo_dir, "local-cache-pw");
    // History without a cache: several snapshots, index blobs and metadata packs.
    for variant in 1..=3 {
        arkiv_tests::mover::small_tree(&src, variant);
        logged_backup(&rt, &repo_dir, &src, None);
    }
    let meta = |ids: &[String]| -> std::collections::BTreeSet<String> {
        ids.iter()
            .filter(|i| i.starts_with('x') || i.starts_with('q'))
            .cloned()
            .collect()
    };
    // A cold cache: the run reads index blobs and metadata packs from storage ...
    let cold = meta(&logged_backup(&rt, &repo_dir, &src, Some(&cache)));
    assert!(cold.iter().any(|i| i.starts_with('x')), "{cold:?}");
    assert!(cold.iter().any(|i| i.starts_with('q')), "{cold:?}");
    // ... and an unchanged re-backup with the warm cache reads none of them again (only
    // what the cold run wrote, which it never read).
    let warm = meta(&logged_backup(&rt, &repo_dir, &src, Some(&cache)));
    let again: Vec<&String> = warm.intersection(&cold).collect();
    assert!(again.is_empty(), "read again: {again:?}");
    // Nor what the cold run wrote: its index blob and its q pack went into the cache when
    // they were written, so the warm run reads no index blob and no metadata pack at all.
    assert!(warm.is_empty(), "warm run read {warm:?}");
    // Without the cache the same run reads them all again.
    let uncached = meta(&logged_backup(&rt, &repo_dir, &src, None));
    assert!(uncached.is_superset(&cold), "{uncached:?} vs {cold:?}");
}

#[test]
fn index_listing_is_reused_within_kopias_expiry_and_a_stale_one_is_listed_again() {
    use arkiv_engine::blob::counting::{CountingStorage, StorageCounters};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_tmp, repo_dir) = fixture_copy("repo-a");
    let cache_tmp = tempfile::tempdir().unwrap();
    let cache_dir = cache_tmp.path().join("cache");
    let open_counted = |ttl: std::time::Duration| {
        let counters = StorageCounters::new();
        let storage = Arc::new(CountingStorage::new(
            FilesystemStorage::open(&repo_dir).unwrap(),
            counters.clone(),
        ));
        let mut opts = OpenOptions::default();
        opts.cache_dir = Some(cache_dir.clone());
        opts.list_cache_duration = ttl;
        let repo = rt
            .block_on(Repository::open(storage, FIXTURE_PASSWORD, opts))
            .unwrap();
        (repo, counters.counts())
    };
    let kopia = arkiv_engine::blob::listcache::KOPIA_CONNECT_DEFAULT;
    let (first, cold) = open_counted(kopia);
    let n = first.indexes().blob_count();
    assert!(cold.lists >= 1, "{cold:?}");
    // Within the expiry the next open lists nothing and reads nothing but the format blob.
    let (_, warm) = open_counted(kopia);
    assert_eq!((warm.lists, warm.gets), (0, 1), "{warm:?}");
    // Without an expiry (the engine's default) every open lists.
    let (_, off) = open_counted(std::time::Duration::ZERO);
    assert!(off.lists >= 1, "{off:?}");

    // The cached listing goes stale: an index blob it names disappears (as after index
    // compaction by another host) and is not in the local cache either. The open lists
    // again instead of failing.
    let (repo, _) = open_counted(kopia);
    repo.cache().unwrap().retain_index_blobs(&[]);
    let gone = first
        .indexes()
        .indexes()
        .iter()
        .map(|i| i.blob_id.to_string())
        .find(|id| id.starts_with("xn"))
        .unwrap();
    let file = blob_files(&repo_dir, "x")
        .into_iter()
        .find(|f| {
            let rel = f.strip_prefix(&repo_dir).unwrap().to_string_lossy();
            rel.replace('/', "") == format!("{gone}.f")
        })
        .unwrap();
    std::fs::remove_file(file).unwrap();
    let (stale, counts) = open_counted(kopia);
    assert_eq!(stale.indexes().blob_count(), n - 1);
    assert_eq!(counts.lists, 1, "{counts:?}");
}

/// Restores the latest snapshot of `repo_dir` into `target` through a storage that logs every
/// blob it reads, with data contents cached up to 64 MiB; returns the IDs read.
fn logged_restore(
    rt: &tokio::runtime::Runtime,
    repo_dir: &std::path::Path,
    cache: &std::path::Path,
    target: &std::path::Path,
) -> Vec<String> {
    use arkiv_engine::snapshot::restore::{RestoreOptions, restore_entry};
    let (storage, counters) = logged_storage(repo_dir);
    let mut opts = OpenOptions::default();
    opts.cache_dir = Some(cache.to_path_buf());
    opts.cache_limits = opts.cache_limits.with_content_mib(64);
    rt.block_on(async {
        let repo = Repository::open(storage, "content-cache-pw", opts)
            .await
            .unwrap();
        let snaps = repo.snapshots().await.unwrap();
        let root = snaps.last().unwrap().manifest.root_entry.clone().unwrap();
        restore_entry(&repo, &root, target, RestoreOptions::default())
            .await
            .unwrap();
    });
    counters.read_ids().iter().map(|i| i.to_string()).collect()
}

#[test]
fn a_second_restore_reads_data_contents_from_the_cache_but_verify_reads_the_repository() {
    use rand::{RngCore, SeedableRng};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (repo_dir, src, cache) = (
        tmp.path().join("repo"),
        tmp.path().join("src"),
        tmp.path().join("cache"),
    );
    create_repo(&repo_dir, "content-cache-pw");
    // Small files (restored in batches cut from one range read) and large incompressible
    // ones (restored chunk by chunk).
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    std::fs::create_dir_all(src.join("small")).unwrap();
    for i in 0..40 {
        std::fs::write(
            src.join(format!("small/f{i}.txt")),
            format!("{i}\n").repeat(100 + i),
        )
        .unwrap();
    }
    for i in 0..2 {
        let mut big = vec![0u8; 3 << 20];
        rng.fill_bytes(&mut big);
        std::fs::write(src.join(format!("big{i}.bin")), big).unwrap();
    }
    snapshot_json(&repo_dir, "content-cache-pw", &src, &[]);
    let packs = |ids: &[String]| ids.iter().filter(|i| i.starts_with('p')).count();

    // A first restore reads the data packs and keeps the contents ...
    let first = logged_restore(&rt, &repo_dir, &cache, &tmp.path().join("r1"));
    assert!(packs(&first) > 0, "{first:?}");
    assert_eq!(tree_manifest(&tmp.path().join("r1")), tree_manifest(&src));
    // ... so the next restore of the same snapshot reads no data pack at all.
    let second = logged_restore(&rt, &repo_dir, &cache, &tmp.path().join("r2"));
    assert_eq!(packs(&second), 0, "{second:?}");
    assert_eq!(tree_manifest(&tmp.path().join("r2")), tree_manifest(&src));

    // Damage every data pack: a restore through the cache still gets intact contents (they
    // are decrypted and authenticated like any), but verify reads the repository.
    for f in blob_files(&repo_dir, "p") {
        let mut b = std::fs::read(&f).unwrap();
        let at = b.len() / 2;
        b[at] ^= 0x01;
        std::fs::write(&f, b).unwrap();
    }
    let third = logged_restore(&rt, &repo_dir, &cache, &tmp.path().join("r3"));
    assert_eq!(packs(&third), 0, "{third:?}");
    assert_eq!(tree_manifest(&tmp.path().join("r3")), tree_manifest(&src));
    let mut opts = OpenOptions::default();
    opts.cache_dir = Some(cache.clone());
    opts.cache_limits = opts.cache_limits.with_content_mib(64);
    let fs: Arc<dyn BlobStorage> = Arc::new(FilesystemStorage::open(&repo_dir).unwrap());
    let repo = rt
        .block_on(Repository::open(fs, "content-cache-pw", opts))
        .unwrap();
    let mut vopts = arkiv_engine::verify::VerifyOptions::default();
    vopts.verify_files_percent = 100.0;
    let report = rt
        .block_on(arkiv_engine::verify::verify(&repo, &vopts))
        .unwrap();
    assert!(!report.problems.is_empty(), "{report:?}");
}
