//! Scenario: small files are restored in batches, one pack read for many files, and the
//! batched path keeps every guarantee of the per-file one: identical tree, existing files
//! replaced, and a damaged pack reported as corruption with nothing half-written left.

use std::path::Path;
use std::sync::Arc;

use arkiv_engine::blob::faulty::{FaultyStorage, Op};
use arkiv_engine::blob::filesystem::FilesystemStorage;
use arkiv_engine::snapshot::restore::{RestoreOptions, restore_entry};
use arkiv_engine::{ErrorKind, OpenOptions, Repository};
use arkiv_format::snapshot::DirEntry;
use arkiv_tests::*;

const PW: &str = "batch-password";

/// 3 directories of 150 small files (some identical, some empty) and one 3 MiB file.
fn make_source(src: &Path) {
    for d in 0..3 {
        let dir = src.join(format!("app{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..150 {
            let body = match i % 10 {
                0 => Vec::new(),
                1 => b"same content in many files\n".to_vec(),
                _ => format!("app {d} file {i}\n").repeat(1 + i * 7).into_bytes(),
            };
            std::fs::write(dir.join(format!("f{i:03}.conf")), body).unwrap();
        }
    }
    let big: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("app0/big.bin"), big).unwrap();
}

fn open(
    rt: &tokio::runtime::Runtime,
    repo: &Path,
) -> (Repository, Arc<FaultyStorage<FilesystemStorage>>) {
    let faulty = Arc::new(FaultyStorage::new(FilesystemStorage::open(repo).unwrap()));
    let r = rt
        .block_on(Repository::open(faulty.clone(), PW, OpenOptions::default()))
        .unwrap();
    (r, faulty)
}

fn root(rt: &tokio::runtime::Runtime, repo: &Repository) -> DirEntry {
    let snaps = rt.block_on(repo.snapshots()).unwrap();
    snaps.last().unwrap().manifest.root_entry.clone().unwrap()
}

fn leftover_temp_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walkdir(dir) {
        let name = e.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains(".arkiv-tmp-") {
            out.push(e.display().to_string());
        }
    }
    out
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn small_files_restore_from_few_pack_reads() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (src, repo_dir) = (tmp.path().join("src"), tmp.path().join("repo"));
    make_source(&src);
    create_repo(&repo_dir, PW);
    snapshot_json(&repo_dir, PW, &src, &["--compression", "zstd-fastest"]);

    let (repo, faulty) = open(&rt, &repo_dir);
    let entry = root(&rt, &repo);
    let before = faulty.calls(Op::Get);
    let target = tmp.path().join("restore");
    let stats = rt
        .block_on(restore_entry(
            &repo,
            &entry,
            &target,
            RestoreOptions::default(),
        ))
        .unwrap();
    let gets = faulty.calls(Op::Get) - before;
    assert_eq!(stats.files, 451);
    assert_eq!(tree_manifest(&target), tree_manifest(&src));
    // 450 small files, one big one (its chunk), the listings' pack: a handful of reads,
    // not one per file.
    assert!(gets < 20, "{gets} storage reads for 451 files");

    // Restoring again over the restored tree replaces every file in place.
    for p in walkdir(&target.join("app1")).iter().take(20) {
        std::fs::write(p, b"local edit").unwrap();
    }
    rt.block_on(restore_entry(
        &repo,
        &entry,
        &target,
        RestoreOptions::default(),
    ))
    .unwrap();
    assert_eq!(tree_manifest(&target), tree_manifest(&src));
    assert!(leftover_temp_files(&target).is_empty());
}

#[test]
fn damaged_pack_fails_the_batch_cleanly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (src, repo_dir) = (tmp.path().join("src"), tmp.path().join("repo"));
    make_source(&src);
    create_repo(&repo_dir, PW);
    snapshot_json(&repo_dir, PW, &src, &[]);
    let (repo, faulty) = open(&rt, &repo_dir);
    let entry = root(&rt, &repo);

    // Short reads of data packs: reported as corruption.
    faulty.truncate_reads("p", 100, u64::MAX);
    fails_as_corrupt_leaving_nothing(&rt, &repo, &entry, &tmp.path().join("restore-short"));
    faulty.clear_faults();

    // A flipped bit in a data pack: the content that holds it fails authentication.
    for f in blob_files(&repo_dir, "p") {
        let mut b = std::fs::read(&f).unwrap();
        for i in (64..b.len().saturating_sub(64)).step_by(4096) {
            b[i] ^= 0x10;
        }
        std::fs::write(&f, b).unwrap();
    }
    fails_as_corrupt_leaving_nothing(&rt, &repo, &entry, &tmp.path().join("restore-flipped"));
}

/// A restore into `target` fails as corruption and leaves no temporary file behind.
fn fails_as_corrupt_leaving_nothing(
    rt: &tokio::runtime::Runtime,
    repo: &Repository,
    entry: &DirEntry,
    target: &Path,
) {
    let err = rt
        .block_on(restore_entry(
            repo,
            entry,
            target,
            RestoreOptions::default(),
        ))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    let left = leftover_temp_files(target);
    assert!(left.is_empty(), "{left:?}");
}
