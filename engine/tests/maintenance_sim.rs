//! Scenario (acceptance 1): 60 snapshots with churn over simulated weeks, retention keeping the
//! last 10, quick maintenance after every snapshot and full maintenance (full safety) every
//! simulated day. Afterwards every kept snapshot restores byte-exact, verify (100 % of file
//! contents) passes, the repository is within 10 % of a fresh backup of the kept snapshots,
//! and the live index set stays small. Time comes from one `ManualClock` shared by the engine
//! and the storage's blob timestamps.

#[path = "support/maint.rs"]
mod maint;

use std::collections::VecDeque;

use arkiv_engine::maintenance::SAFETY_FULL;
use maint::*;

const KEEP: usize = 10;
const MAX_PACK: u32 = 2 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_snapshots_with_churn_and_retention() {
    let mut sim = new_sim(MAX_PACK).await;
    let mut r = rng(7);
    let mut tree = random_tree(&mut r, 40);
    let mut next_id = 0;
    let mut kept: VecDeque<(arkiv_format::ids::ManifestId, Tree)> = VecDeque::new();
    let mut max_live_index = 0;
    for i in 0..60 {
        churn(&mut r, &mut tree, 4, &mut next_id);
        let id = snapshot(&sim.repo, &tree).await;
        kept.push_back((id, tree.clone()));
        sim.refresh().await;
        sim.advance_hours(1);
        maintain(&sim.repo, false, SAFETY_FULL).await;
        sim.advance_hours(5);
        if i % 4 == 3 {
            let mut expired = Vec::new();
            while kept.len() > KEEP {
                expired.push(kept.pop_front().unwrap().0);
            }
            delete_snapshots(&sim.repo, &expired).await;
            sim.refresh().await;
            maintain(&sim.repo, true, SAFETY_FULL).await;
        }
        sim.refresh().await;
        max_live_index = max_live_index.max(sim.repo.indexes().blob_count());
    }
    // settle: daily full maintenance without new snapshots
    for _ in 0..8 {
        sim.advance_hours(24);
        let rep = maintain(&sim.repo, true, SAFETY_FULL).await;
        eprintln!("{rep}");
        sim.refresh().await;
    }

    let repo = sim.open().await;
    assert_eq!(repo.snapshots().await.unwrap().len(), KEEP);
    for (id, t) in &kept {
        assert_restores(&repo, id, t).await;
    }
    assert_verifies(&repo).await;

    // a fresh backup of the kept snapshots
    let mut fresh = new_sim(MAX_PACK).await;
    for (_, t) in &kept {
        snapshot(&fresh.repo, t).await;
        fresh.refresh().await;
    }
    for st in [&sim.storage, &fresh.storage] {
        let mut by: std::collections::BTreeMap<char, (usize, u64)> = Default::default();
        for m in arkiv_engine::blob::BlobStorage::list(st, "").await.unwrap() {
            let e = by.entry(m.id.as_str().chars().next().unwrap()).or_default();
            e.0 += 1;
            e.1 += m.length;
        }
        eprintln!("by prefix: {by:?}");
    }
    let ours = sim.total_bytes().await;
    let theirs = fresh.total_bytes().await;
    eprintln!(
        "repository {ours} bytes, fresh backup {theirs} bytes; live index blobs {} (max seen {max_live_index}); x blobs {}",
        repo.indexes().blob_count(),
        sim.count("x").await
    );
    assert!(
        ours as f64 <= theirs as f64 * 1.10,
        "repository {ours} bytes is more than 10% above a fresh backup ({theirs} bytes)"
    );
    assert!(
        max_live_index <= 80,
        "live index set grew to {max_live_index} blobs"
    );
    assert!(repo.indexes().blob_count() <= 80);
}

/// The mover's maintenance steps through the public API: claim ownership for its identity
/// (it is not the owner yet), run quick then full maintenance, and report summary lines;
/// afterwards the previous owner is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mover_steps_claim_ownership_and_report() {
    use arkiv_engine::maintenance::{
        MaintenanceOptions, identity_parts, maintenance_info, run_maintenance, schedule, set_owner,
    };
    let mut sim = new_sim(MAX_PACK).await;
    let mut r = rng(1);
    let tree = random_tree(&mut r, 5);
    snapshot(&sim.repo, &tree).await;
    sim.refresh().await;

    let owner = "maintenance@volsync";
    let (user, host) = identity_parts(owner);
    assert_eq!((user.as_str(), host.as_str()), ("maintenance", "volsync"));
    let current = schedule::load_params(&sim.repo).await.unwrap().0;
    assert!(current.as_ref().is_none_or(|p| p.owner != owner));
    set_owner(&sim.repo, owner, &user, &host).await.unwrap();
    sim.refresh().await;
    let mut opts = MaintenanceOptions::new(&user, &host);
    let quick = run_maintenance(&sim.repo, &opts).await.unwrap();
    assert!(
        quick.summary_lines()[0].contains("quick maintenance completed as maintenance@volsync"),
        "{:?}",
        quick.summary_lines()
    );
    opts.full = true;
    let rep = run_maintenance(&sim.repo, &opts).await.unwrap();
    let lines = rep.summary_lines();
    assert!(
        lines[0].contains("full maintenance completed as maintenance@volsync"),
        "{lines:?}"
    );
    sim.refresh().await;
    let info = maintenance_info(&sim.repo).await.unwrap();
    assert_eq!(info.params.as_ref().unwrap().owner, owner);
    assert!(!info.schedule.runs_of("snapshot-gc").is_empty());
    assert!(info.to_string().starts_with("Owner: maintenance@volsync\n"));
    let err = run_maintenance(&sim.repo, &MaintenanceOptions::new(USER, HOST))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), arkiv_engine::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("maintenance@volsync"), "{err}");
}

/// Re-assigning ownership while the clock stands still: each new owner must stick (the old
/// parameters' tombstone has to be strictly newer than them, or the merge may keep them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_changes_stick_on_a_frozen_clock() {
    use arkiv_engine::maintenance::{maintenance_info, set_owner};
    let mut sim = new_sim(MAX_PACK).await;
    for i in 0..12 {
        let owner = format!("user{i}@host{i}");
        set_owner(&sim.repo, &owner, USER, HOST).await.unwrap();
        sim.refresh().await;
        let info = maintenance_info(&sim.repo).await.unwrap();
        assert_eq!(info.params.as_ref().unwrap().owner, owner, "round {i}");
    }
}
