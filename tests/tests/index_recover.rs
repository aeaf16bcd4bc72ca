//! Scenario (issue 14, finding 2 and acceptance 3): a lost index blob. Before, the snapshot
//! whose index blob was deleted vanished silently (`snapshot list` exit 0 without it, verify
//! clean) and a full maintenance with `--safety none` deleted its packs. Now verify names the
//! packs no index blob lists and exits 5, maintenance refuses to delete them, and
//! `arkiv index recover --commit` brings the snapshot back byte-exact.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use arkiv_tests::*;

const PW: &str = "index-recover-pw";
const CORRUPT: i32 = 5;

fn cli(repo: &Path) -> std::process::Command {
    let mut c = arkiv(repo, PW);
    c.env("ARKIV_CACHE_DIR", "none").args([
        "--override-username",
        "tester",
        "--override-hostname",
        "testhost",
    ]);
    c
}

fn xn_blobs(repo: &Path) -> BTreeSet<PathBuf> {
    blob_files(repo, "xn").into_iter().collect()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn lost_index_blob_is_found_refused_and_recovered() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    make_tree(&a, 1);
    make_tree(&b, 2);
    std::fs::write(b.join("only-in-b.bin"), vec![0x5au8; 300_000]).unwrap();
    let repo = work.path().join("repo");
    create_repo(&repo, PW);
    let first = snapshot_json(&repo, PW, &a, &[]);
    let before = xn_blobs(&repo);
    let second = snapshot_json(&repo, PW, &b, &[]);
    let id2 = second["snapshotId"].as_str().unwrap().to_owned();
    let lost: Vec<PathBuf> = xn_blobs(&repo).difference(&before).cloned().collect();
    assert_eq!(lost.len(), 1, "snapshot 2 wrote {lost:?}");
    std::fs::remove_file(&lost[0]).unwrap();

    // The snapshot is gone from the listing…
    let list = run_ok(cli(&repo).args(["snapshot", "list", "--all", "--json"]));
    let list = String::from_utf8(list).unwrap();
    assert!(!list.contains(&id2), "{list}");
    assert!(list.contains(first["snapshotId"].as_str().unwrap()));

    // …but verify finds what is missing and names the packs.
    let o = run(cli(&repo).args(["verify"]));
    assert_eq!(o.status.code(), Some(CORRUPT), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("no index blob lists") && t.contains("arkiv index recover"),
        "{t}"
    );
    let orphan_lines = t
        .lines()
        .filter(|l| l.contains("no index blob lists"))
        .count();
    assert!(
        orphan_lines >= 2,
        "expected a data and a metadata pack: {t}"
    );

    // Maintenance refuses to delete them, even with no safety margins.
    let packs_before = blob_files(&repo, "p").len() + blob_files(&repo, "q").len();
    let o = run(cli(&repo).args(["maintenance", "run", "--full", "--safety", "none"]));
    assert_eq!(o.status.code(), Some(CORRUPT), "{}", text(&o));
    assert!(text(&o).contains("index damaged"), "{}", text(&o));
    assert!(text(&o).contains("arkiv index recover"), "{}", text(&o));
    assert_eq!(
        blob_files(&repo, "p").len() + blob_files(&repo, "q").len(),
        packs_before,
        "maintenance deleted packs"
    );

    // Dry run by default: reports, writes nothing.
    let o = run_ok(cli(&repo).args(["index", "recover"]));
    let t = String::from_utf8(o).unwrap();
    assert!(t.contains("Dry run"), "{t}");
    assert_eq!(xn_blobs(&repo).len(), before.len());

    // --commit writes one index blob; the snapshot is back and restores byte-exact.
    let t = String::from_utf8(run_ok(cli(&repo).args(["index", "recover", "--commit"]))).unwrap();
    assert!(t.contains("Wrote index blob"), "{t}");
    let list = String::from_utf8(run_ok(
        cli(&repo).args(["snapshot", "list", "--all", "--json"]),
    ))
    .unwrap();
    assert!(list.contains(&id2), "{list}");
    let restored = work.path().join("restored");
    run_ok(cli(&repo).args(["restore", &id2]).arg(&restored));
    assert_eq!(tree_manifest(&restored), tree_manifest(&b));
    run_ok(cli(&repo).args(["verify", "--verify-files-percent", "100"]));

    // A second recovery finds nothing; maintenance runs and keeps the snapshot.
    let t = String::from_utf8(run_ok(cli(&repo).args(["index", "recover"]))).unwrap();
    assert!(t.contains("Nothing to recover"), "{t}");
    run_ok(cli(&repo).args(["maintenance", "run", "--full", "--safety", "none"]));
    let again = work.path().join("restored-again");
    run_ok(cli(&repo).args(["restore", &id2]).arg(&again));
    assert_eq!(tree_manifest(&again), tree_manifest(&b));
}
