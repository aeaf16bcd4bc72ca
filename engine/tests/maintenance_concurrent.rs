//! Scenario (acceptance 2): full maintenance (full safety) racing a snapshot into the same
//! repository. The snapshot deduplicates against contents of an expired snapshot that GC is
//! about to mark deleted. Interleavings: the backup's view is taken before GC marks and the
//! backup finishes after (deterministic), backup and maintenance run at the same time through
//! a jittering storage (several seeds), maintenance strictly before, strictly after. Every
//! snapshot that completed restores byte-exact right away and after many more maintenance
//! cycles, and verify passes at the end.

#[path = "support/maint.rs"]
mod maint;

use arkiv_engine::maintenance::SAFETY_FULL;
use arkiv_format::ids::ManifestId;
use maint::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_racing_snapshots_never_loses_completed_snapshots() {
    let mut sim = new_sim(1 << 20).await;
    let mut r = rng(42);
    let mut completed: Vec<(ManifestId, Tree)> = Vec::new();
    // A long-lived snapshot that stays (so GC always has roots).
    let base = random_tree(&mut r, 6);
    completed.push((snapshot(&sim.repo, &base).await, base.clone()));
    sim.refresh().await;

    for trial in 0..10u32 {
        // Snapshot A with fresh files, then expire it and let its contents age past 24 h.
        let old = random_tree(&mut r, 8);
        let a = snapshot(&sim.repo, &old).await;
        sim.refresh().await;
        sim.clock.advance(chrono::Duration::minutes(10));
        delete_snapshots(&sim.repo, &[a]).await;
        sim.refresh().await;
        sim.advance_hours(30);

        // Backup B reuses half of A's files (dedup against soon-to-be-deleted contents).
        let mut b_tree: Tree = old
            .iter()
            .take(4)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        b_tree.extend(
            random_tree(&mut r, 3)
                .into_iter()
                .map(|(k, v)| (format!("new{trial}/{k}"), v)),
        );

        let mode = trial % 4;
        let b = match mode {
            0 => {
                // view taken before GC marks; the backup completes after GC finished
                let stale = sim.open().await;
                maintain(&sim.repo, true, SAFETY_FULL).await;
                snapshot(&stale, &b_tree).await
            }
            1 | 2 => {
                // truly concurrent, jittered storage
                let backup_view = sim.open_jittered().await;
                let maint_view = sim.open_jittered().await;
                let (b, rep) = tokio::join!(
                    snapshot(&backup_view, &b_tree),
                    maintain(&maint_view, true, SAFETY_FULL)
                );
                eprintln!(
                    "trial {trial}: concurrent GC marked {} contents",
                    rep.contents_marked_deleted
                );
                b
            }
            _ => {
                // backup first, then maintenance
                let b = snapshot(&sim.repo, &b_tree).await;
                sim.refresh().await;
                maintain(&sim.repo, true, SAFETY_FULL).await;
                b
            }
        };
        let view = sim.open().await;
        assert_restores(&view, &b, &b_tree).await;
        completed.push((b, b_tree));
        sim.refresh().await;
        // quick + full maintenance a few hours apart, as a scheduler would
        sim.advance_hours(5);
        maintain(&sim.repo, false, SAFETY_FULL).await;
        sim.advance_hours(7);
        sim.refresh().await;
    }

    // Many more cycles: undeletes, watermark, rewrites and blob deletion all happen.
    for _ in 0..8 {
        sim.advance_hours(13);
        maintain(&sim.repo, true, SAFETY_FULL).await;
        sim.refresh().await;
    }
    let repo = sim.open().await;
    assert_eq!(repo.snapshots().await.unwrap().len(), completed.len());
    for (id, t) in &completed {
        assert_restores(&repo, id, t).await;
    }
    assert_verifies(&repo).await;
}
