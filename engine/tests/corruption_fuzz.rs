//! Storage-level corruption fuzzer (issue 14, acceptance 2): a repository on `MemoryStorage`
//! with two snapshots gets random damage to its blobs — truncation, zeroing, bit flips, swaps
//! of two blobs' contents, deletions — and then every reading and writing path runs on it:
//! open, snapshot list, a recursive ls, restore, verify, snapshot create, full maintenance.
//! None may panic (a panic hook catches panics in spawned tasks too, which the engine would
//! otherwise turn into errors), and a restore that succeeds must give exactly the bytes that
//! were backed up.
//!
//! Cases: `ARKIV_CORRUPTION_FUZZ_CASES` (default 10, what CI runs: about 30 s); a long run, e.g.
//! `ARKIV_CORRUPTION_FUZZ_CASES=3000 cargo nextest run --workspace --test corruption_fuzz`,
//! prints how many cases it ran.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/maint.rs"]
mod maint;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arkiv_engine::Repository;
use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::memory::MemoryStorage;
use arkiv_engine::clock::{Clock, ManualClock};
use arkiv_engine::maintenance::{MaintenanceOptions, SAFETY_NONE, run_maintenance};
use arkiv_engine::repo::OpenOptions;
use arkiv_engine::snapshot::restore::{RestoreOptions, restore_entry};
use arkiv_engine::snapshot::upload::{UploadOptions, UploadProgress, snapshot_directory};
use arkiv_engine::verify::{VerifyOptions, verify};
use arkiv_format::ids::BlobId;
use arkiv_format::snapshot::EntryType;
use bytes::Bytes;
use maint::Tree;
use proptest::prelude::*;

/// The undamaged repository: its blobs and the trees of its snapshots (by root object).
struct Base {
    blobs: Vec<(BlobId, Bytes)>,
    clock: ManualClock,
    trees: BTreeMap<String, Tree>,
}

static PANICKED: AtomicBool = AtomicBool::new(false);
static PANIC_MSG: Mutex<String> = Mutex::new(String::new());
static CASES: AtomicUsize = AtomicUsize::new(0);

fn install_panic_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            *PANIC_MSG.lock().unwrap() = info.to_string();
            default(info);
        }));
    });
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        runtime().block_on(async {
            // Small packs, so damage to one pack leaves others intact.
            let sim = maint::new_sim(64 * 1024).await;
            let mut rng = maint::rng(14);
            let mut tree = maint::random_tree(&mut rng, 12);
            tree.insert("empty".into(), Vec::new());
            tree.insert("d0/same-as-f0".into(), tree["d0/f0.bin"].clone());
            let mut trees = BTreeMap::new();
            let first = maint::snapshot(&sim.repo, &tree).await;
            let mut next = 100;
            let first_tree = tree.clone();
            maint::churn(&mut rng, &mut tree, 3, &mut next);
            let repo = sim.open().await;
            maint::snapshot(&repo, &tree).await;
            let repo = sim.open().await;
            // Both snapshots carry the same (manual) time: which is which comes from the
            // manifest ID, not from the listing order.
            for s in repo.snapshots().await.unwrap() {
                let root = s.manifest.root_entry.clone().unwrap();
                let t = if s.id == first { &first_tree } else { &tree };
                trees.insert(root.object.to_string(), t.clone());
            }
            let mut blobs = Vec::new();
            for m in sim.storage.list("").await.unwrap() {
                blobs.push((m.id.clone(), sim.storage.get(&m.id, None).await.unwrap()));
            }
            Base {
                blobs,
                clock: sim.clock.clone(),
                trees,
            }
        })
    })
}

/// One piece of damage; indexes are taken modulo the blob count (and lengths).
#[derive(Debug, Clone)]
enum Damage {
    Truncate { blob: usize, keep: usize },
    Zero { blob: usize, at: usize, len: usize },
    Flip { blob: usize, at: usize, bit: u8 },
    Swap { a: usize, b: usize },
    Delete { blob: usize },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(blob, keep)| Damage::Truncate { blob, keep }),
        (any::<usize>(), any::<usize>(), 1usize..4096).prop_map(|(blob, at, len)| Damage::Zero {
            blob,
            at,
            len
        }),
        (any::<usize>(), any::<usize>(), 0u8..8).prop_map(|(blob, at, bit)| Damage::Flip {
            blob,
            at,
            bit
        }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Damage::Swap { a, b }),
        any::<usize>().prop_map(|blob| Damage::Delete { blob }),
    ]
}

/// Applies `damage` to a copy of the base blobs.
fn damaged(base: &Base, damage: &[Damage]) -> BTreeMap<BlobId, Option<Vec<u8>>> {
    let mut blobs: Vec<(BlobId, Option<Vec<u8>>)> = base
        .blobs
        .iter()
        .map(|(id, b)| (id.clone(), Some(b.to_vec())))
        .collect();
    let n = blobs.len();
    for d in damage {
        match *d {
            Damage::Truncate { blob, keep } => {
                if let Some(b) = &mut blobs[blob % n].1 {
                    let keep = keep % (b.len().max(1));
                    b.truncate(keep);
                }
            }
            Damage::Zero { blob, at, len } => {
                if let Some(b) = &mut blobs[blob % n].1
                    && !b.is_empty()
                {
                    let at = at % b.len();
                    let end = (at + len).min(b.len());
                    b[at..end].fill(0);
                }
            }
            Damage::Flip { blob, at, bit } => {
                if let Some(b) = &mut blobs[blob % n].1
                    && !b.is_empty()
                {
                    let at = at % b.len();
                    b[at] ^= 1 << bit;
                }
            }
            Damage::Swap { a, b } => {
                let (a, b) = (a % n, b % n);
                let tmp = blobs[a].1.take();
                blobs[a].1 = blobs[b].1.take();
                blobs[b].1 = tmp;
                // A swap with a deleted blob moves the deletion.
            }
            Damage::Delete { blob } => blobs[blob % n].1 = None,
        }
    }
    blobs.into_iter().collect()
}

async fn open(storage: &MemoryStorage, clock: &ManualClock) -> arkiv_engine::Result<Repository> {
    let mut o = OpenOptions::default();
    o.clock = Arc::new(clock.clone());
    Repository::open(Arc::new(storage.clone()), maint::PASSWORD, o).await
}

/// Walks a tree like `ls -r` (bounded, so a crafted cycle cannot run forever here).
async fn ls(repo: &Repository, root: &arkiv_format::snapshot::DirEntry) {
    let mut stack = vec![root.object];
    let mut seen = 0;
    while let Some(oid) = stack.pop() {
        seen += 1;
        if seen > 1000 {
            return;
        }
        let Ok(dir) = repo.read_dir(&oid).await else {
            continue;
        };
        for e in dir.entries {
            if e.entry_type == EntryType::Directory {
                stack.push(e.object);
            }
        }
    }
}

async fn run_case(base: &Base, damage: &[Damage]) -> Result<(), String> {
    let clock = ManualClock::new(base.clock.now());
    let storage = MemoryStorage::new(Arc::new(clock.clone()));
    for (id, b) in damaged(base, damage) {
        if let Some(b) = b {
            storage.put(&id, Bytes::from(b)).await.unwrap();
        }
    }
    let Ok(repo) = open(&storage, &clock).await else {
        return Ok(());
    };
    if let Ok(snaps) = repo.snapshots().await {
        for s in &snaps {
            let Some(root) = s.manifest.root_entry.clone() else {
                continue;
            };
            ls(&repo, &root).await;
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("r");
            let mut ro = RestoreOptions::default();
            ro.restore_owners = false;
            if restore_entry(&repo, &root, &target, ro).await.is_ok() {
                // Success must mean the bytes that were backed up.
                let want = base
                    .trees
                    .get(&root.object.to_string())
                    .ok_or_else(|| format!("restore succeeded of unknown root {}", root.object))?;
                if &maint::read_tree(&target) != want {
                    return Err(format!("snapshot {} restored with wrong content", s.id));
                }
            }
        }
    }
    let mut vo = VerifyOptions::default();
    vo.verify_files_percent = 100.0;
    let _ = verify(&repo, &vo).await;
    // A new snapshot on the damaged repository, then full maintenance (no safety margins:
    // it deletes whatever it thinks unreferenced).
    let dir = tempfile::tempdir().unwrap();
    let tree = base.trees.values().next().cloned().unwrap_or_default();
    maint::write_tree(dir.path(), &tree);
    let mut uo = UploadOptions::new(maint::source());
    uo.parallel = 2;
    let _ = snapshot_directory(
        &repo,
        dir.path(),
        None,
        uo,
        Arc::new(UploadProgress::default()),
    )
    .await;
    if let Ok(repo) = open(&storage, &clock).await {
        let mut mo = MaintenanceOptions::new(maint::USER, maint::HOST);
        mo.full = true;
        mo.safety = SAFETY_NONE;
        mo.force = true;
        let _ = run_maintenance(&repo, &mo).await;
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("ARKIV_CORRUPTION_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn damaged_blobs_never_panic_nor_restore_wrong_bytes(
        damage in prop::collection::vec(damage(), 1..4)
    ) {
        install_panic_hook();
        let base = base();
        let result = runtime().block_on(run_case(base, &damage));
        let n = CASES.fetch_add(1, Ordering::SeqCst) + 1;
        if n % 100 == 0 {
            eprintln!("corruption fuzz: {n} cases");
        }
        prop_assert!(
            !PANICKED.load(Ordering::SeqCst),
            "panic under {:?}: {}",
            damage,
            PANIC_MSG.lock().unwrap()
        );
        prop_assert!(result.is_ok(), "{:?}: {}", damage, result.unwrap_err());
    }
}
