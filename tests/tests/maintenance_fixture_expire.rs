//! Scenario (acceptance 3): on a temp copy of the kopia-written fixtures/repo-a, expire the
//! first snapshot, run `arkiv maintenance run --full --safety none` as the owner recorded by
//! kopia → the kept snapshot still lists, restores byte-exact and verifies; every content
//! unique to the expired snapshot is gone from the index, and every pack that held one is gone
//! from storage (rewritten or deleted).

use std::collections::HashSet;

use arkiv_engine::maintenance::gc::find_reachable;
use arkiv_tests::*;

const SNAP1: &str = "bd35e5981801e93285ddc62a7548805e";
const SNAP2: &str = "aa1bfb5fda1314ce3dcc1f97672d35e8";

#[test]
fn expire_then_full_maintenance_reclaims_unique_data() {
    let (_tmp, repo_dir) = fixture_copy("repo-a");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = engine_open(&rt, &repo_dir, FIXTURE_PASSWORD);
    let before = rt.block_on(find_reachable(&repo)).unwrap().contents;

    engine_delete_snapshots(&rt, &repo, &[SNAP1]);
    let repo = engine_open(&rt, &repo_dir, FIXTURE_PASSWORD);
    let after = rt.block_on(find_reachable(&repo)).unwrap().contents;
    let unique: HashSet<_> = before.difference(&after).copied().collect();
    assert!(!unique.is_empty(), "snapshot 1 has unique contents");
    let doomed_packs: HashSet<String> = unique
        .iter()
        .map(|id| {
            repo.content_info(id)
                .unwrap()
                .unwrap()
                .pack_blob_id
                .to_string()
        })
        .collect();

    // The dry run plans but changes nothing.
    let out = run_ok(
        arkiv(&repo_dir, FIXTURE_PASSWORD)
            .args([
                "maintenance",
                "run",
                "--full",
                "--safety",
                "none",
                "--dry-run",
            ])
            .args([
                "--override-username",
                "fixture",
                "--override-hostname",
                "fixture-host",
            ]),
    );
    let plan = String::from_utf8(out).unwrap();
    assert!(plan.contains("mark deleted:"), "{plan}");
    let still = engine_open(&rt, &repo_dir, FIXTURE_PASSWORD);
    for id in &unique {
        assert!(still.content_info(id).unwrap().is_some_and(|i| !i.deleted));
    }

    // Another identity is refused.
    let refused = run(arkiv(&repo_dir, FIXTURE_PASSWORD)
        .args(["maintenance", "run", "--full", "--safety", "none"])
        .args([
            "--override-username",
            "intruder",
            "--override-hostname",
            "elsewhere",
        ]));
    assert!(!refused.status.success());
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(msg.contains("fixture@fixture-host"), "{msg}");

    let out = run_ok(
        arkiv(&repo_dir, FIXTURE_PASSWORD)
            .args(["maintenance", "run", "--full", "--safety", "none"])
            .args([
                "--override-username",
                "fixture",
                "--override-hostname",
                "fixture-host",
            ]),
    );
    eprintln!("{}", String::from_utf8_lossy(&out));

    // The kept snapshot lists and restores byte-exact.
    let list: serde_json::Value = serde_json::from_slice(&run_ok(
        arkiv(&repo_dir, FIXTURE_PASSWORD).args(["snapshot", "list", "--all", "--json"]),
    ))
    .unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [SNAP2]);
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("restored");
    run_ok(
        arkiv(&repo_dir, FIXTURE_PASSWORD)
            .args(["restore", SNAP2])
            .arg(&target),
    );
    let ours = parse_manifest(&tree_manifest(&target));
    let source = parse_manifest(
        &std::fs::read_to_string(fixtures_dir().join("expected/tree-v2.manifest.txt")).unwrap(),
    );
    assert_eq!(ours, source, "restored tree");
    run_ok(arkiv(&repo_dir, FIXTURE_PASSWORD).args(["verify", "--verify-files-percent", "100"]));

    // The expired snapshot's unique data is gone.
    let repo = engine_open(&rt, &repo_dir, FIXTURE_PASSWORD);
    for id in &unique {
        assert!(
            repo.content_info(id).unwrap().is_none(),
            "content {id} of the expired snapshot is still indexed"
        );
    }
    let blobs: HashSet<String> = rt
        .block_on(repo.storage().list(""))
        .unwrap()
        .into_iter()
        .map(|m| m.id.to_string())
        .collect();
    for p in &doomed_packs {
        assert!(
            !blobs.contains(p),
            "pack {p} holding expired data still exists"
        );
    }
    assert_fixtures_unchanged();
}
