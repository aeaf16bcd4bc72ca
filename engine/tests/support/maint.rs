//! Helpers for maintenance scenarios: a repository on `MemoryStorage` whose blob timestamps
//! come from the same `ManualClock` as the engine, trees of files, snapshots, expiry,
//! byte-exact restore checks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arkiv_engine::Repository;
use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::memory::MemoryStorage;
use arkiv_engine::clock::ManualClock;
use arkiv_engine::content::writer::ContentWriter;
use arkiv_engine::initialize::{CreateOptions, create_repository};
use arkiv_engine::maintenance::{
    MaintenanceOptions, MaintenanceReport, SafetyParams, run_maintenance,
};
use arkiv_engine::manifest::ManifestBatch;
use arkiv_engine::repo::OpenOptions;
use arkiv_engine::snapshot::restore::{RestoreOptions, restore_entry};
use arkiv_engine::snapshot::upload::{UploadOptions, UploadProgress, snapshot_directory};
use arkiv_engine::verify::{VerifyOptions, verify};
use arkiv_format::ids::ManifestId;
use arkiv_format::repo_format::KeyDerivation;
use arkiv_format::snapshot::SourceInfo;
use chrono::{TimeZone, Utc};
use rand::{Rng, RngCore, SeedableRng};

pub const PASSWORD: &str = "maintenance-test";
pub const USER: &str = "maint";
pub const HOST: &str = "test-host";

/// A file tree kept in memory (relative path → bytes).
pub type Tree = BTreeMap<String, Vec<u8>>;

pub struct Sim {
    pub clock: ManualClock,
    pub storage: MemoryStorage,
    pub repo: Repository,
}

pub fn source() -> SourceInfo {
    SourceInfo {
        host: HOST.into(),
        user_name: USER.into(),
        path: "/data".into(),
    }
}

pub async fn new_sim(max_pack_size: u32) -> Sim {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap());
    let storage = MemoryStorage::new(Arc::new(clock.clone()));
    let mut opts = CreateOptions::new(USER, HOST);
    opts.max_pack_size = max_pack_size;
    opts.key_derivation = KeyDerivation::Scrypt65536_8_1;
    let mut open = OpenOptions::default();
    open.clock = Arc::new(clock.clone());
    let repo = create_repository(Arc::new(storage.clone()), PASSWORD, &opts, open)
        .await
        .unwrap();
    Sim {
        clock,
        storage,
        repo,
    }
}

impl Sim {
    /// A fresh view of the repository (as another client would open it).
    pub async fn open(&self) -> Repository {
        let mut open = OpenOptions::default();
        open.clock = Arc::new(self.clock.clone());
        Repository::open(Arc::new(self.storage.clone()), PASSWORD, open)
            .await
            .unwrap()
    }

    pub async fn refresh(&mut self) {
        self.repo.refresh().await.unwrap();
    }

    pub fn advance_hours(&self, h: i64) {
        self.clock.advance(chrono::Duration::hours(h));
    }

    pub async fn total_bytes(&self) -> u64 {
        self.storage
            .list("")
            .await
            .unwrap()
            .iter()
            .map(|m| m.length)
            .sum()
    }

    pub async fn count(&self, prefix: &str) -> usize {
        self.storage.list(prefix).await.unwrap().len()
    }
}

/// Snapshots `tree` (written to a temp dir) with `repo`'s view; returns the manifest ID.
pub async fn snapshot(repo: &Repository, tree: &Tree) -> ManifestId {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), tree);
    let mut opts = UploadOptions::new(source());
    opts.parallel = 2;
    let r = snapshot_directory(
        repo,
        dir.path(),
        None,
        opts,
        Arc::new(UploadProgress::default()),
    )
    .await
    .unwrap();
    r.manifest_id
}

pub fn write_tree(dir: &Path, tree: &Tree) {
    for (p, data) in tree {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
    }
}

pub fn read_tree(dir: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// Restores snapshot `id` and compares it with `expected`.
pub async fn assert_restores(repo: &Repository, id: &ManifestId, expected: &Tree) {
    let snaps = repo.snapshots().await.unwrap();
    let snap = snaps
        .iter()
        .find(|s| &s.id == id)
        .unwrap_or_else(|| panic!("snapshot {id} not listed"));
    let root = snap.manifest.root_entry.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("r");
    let mut ro = RestoreOptions::default();
    ro.restore_owners = false;
    restore_entry(repo, &root, &target, ro)
        .await
        .unwrap_or_else(|e| panic!("restore of {id} failed: {e}"));
    let got = read_tree(&target);
    assert_eq!(got.len(), expected.len(), "snapshot {id}: file count");
    for (p, data) in expected {
        assert!(got.get(p) == Some(data), "snapshot {id}: {p} differs");
    }
}

/// Deletes snapshot manifests (what `expire` does).
pub async fn delete_snapshots(repo: &Repository, ids: &[ManifestId]) {
    let cw =
        ContentWriter::new(repo.clone(), tokio::runtime::Handle::current(), USER, HOST).unwrap();
    let now = repo.clock().now();
    let ids = ids.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut b = ManifestBatch::default();
        for id in ids {
            b.delete(id, now);
        }
        b.commit(&cw).unwrap();
        cw.flush().unwrap();
    })
    .await
    .unwrap();
}

pub async fn maintain(repo: &Repository, full: bool, safety: SafetyParams) -> MaintenanceReport {
    let mut o = MaintenanceOptions::new(USER, HOST);
    o.full = full;
    o.safety = safety;
    run_maintenance(repo, &o)
        .await
        .unwrap_or_else(|e| panic!("maintenance failed: {e}"))
}

pub async fn assert_verifies(repo: &Repository) {
    let mut vo = VerifyOptions::default();
    vo.verify_files_percent = 100.0;
    let r = verify(repo, &vo).await.unwrap();
    assert!(
        r.problems.is_empty(),
        "verify found problems: {:?}",
        r.problems
    );
}

/// A tree of `n` random files (sizes 1–96 KiB) under a few directories.
pub fn random_tree(rng: &mut rand::rngs::StdRng, n: usize) -> Tree {
    let mut t = Tree::new();
    for i in 0..n {
        t.insert(format!("d{}/f{i}.bin", i % 4), random_bytes(rng));
    }
    t
}

pub fn random_bytes(rng: &mut rand::rngs::StdRng) -> Vec<u8> {
    let len = rng.gen_range(1024..96 * 1024);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// Changes `k` files, adds one, removes one.
pub fn churn(rng: &mut rand::rngs::StdRng, t: &mut Tree, k: usize, next_id: &mut usize) {
    let keys: Vec<String> = t.keys().cloned().collect();
    for _ in 0..k {
        let p = &keys[rng.gen_range(0..keys.len())];
        t.insert(p.clone(), random_bytes(rng));
    }
    let victim = &keys[rng.gen_range(0..keys.len())];
    t.remove(victim);
    t.insert(
        format!("d{}/n{}.bin", *next_id % 4, *next_id),
        random_bytes(rng),
    );
    *next_id += 1;
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Storage that sleeps a random few hundred microseconds before every operation, so that
/// concurrent tasks interleave differently from run to run.
#[derive(Debug)]
pub struct Jitter(pub Arc<dyn BlobStorage>);

async fn jitter() {
    let us = rand::thread_rng().gen_range(0..400);
    tokio::time::sleep(std::time::Duration::from_micros(us)).await;
}

#[async_trait::async_trait]
impl BlobStorage for Jitter {
    async fn get(
        &self,
        id: &arkiv_format::ids::BlobId,
        range: Option<std::ops::Range<u64>>,
    ) -> arkiv_engine::Result<bytes::Bytes> {
        jitter().await;
        self.0.get(id, range).await
    }
    async fn get_metadata(
        &self,
        id: &arkiv_format::ids::BlobId,
    ) -> arkiv_engine::Result<arkiv_engine::blob::BlobMetadata> {
        jitter().await;
        self.0.get_metadata(id).await
    }
    async fn put(
        &self,
        id: &arkiv_format::ids::BlobId,
        data: bytes::Bytes,
    ) -> arkiv_engine::Result<()> {
        jitter().await;
        self.0.put(id, data).await
    }
    async fn delete(&self, id: &arkiv_format::ids::BlobId) -> arkiv_engine::Result<()> {
        jitter().await;
        self.0.delete(id).await
    }
    async fn list(
        &self,
        prefix: &str,
    ) -> arkiv_engine::Result<Vec<arkiv_engine::blob::BlobMetadata>> {
        jitter().await;
        self.0.list(prefix).await
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

impl Sim {
    /// A fresh view through a jittering wrapper of the same storage.
    pub async fn open_jittered(&self) -> Repository {
        let mut open = OpenOptions::default();
        open.clock = Arc::new(self.clock.clone());
        let st: Arc<dyn BlobStorage> = Arc::new(Jitter(Arc::new(self.storage.clone())));
        Repository::open(st, PASSWORD, open).await.unwrap()
    }
}
