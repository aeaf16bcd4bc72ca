//! Scenario: the mover restores the latest snapshot of a copy of the kopia-written fixture
//! repo-a (identity `fixture@fixture-host:/data`) byte-exactly, and leaves the repository
//! untouched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arkiv_tests::mover::{Scene, run_mover, tree_digest, with};
use arkiv_tests::{FIXTURE_PASSWORD, fixture_copy, fixtures_dir, parse_manifest, tree_manifest};

#[test]
fn restores_latest_snapshot_of_repo_a() {
    let (_keep, repo) = fixture_copy("repo-a");
    let before = tree_digest(&repo);
    let s = Scene::new();
    let env = with(
        &s.restore_env(),
        &[
            (
                "KOPIA_REPOSITORY",
                &format!("filesystem://{}", repo.display()),
            ),
            ("KOPIA_PASSWORD", FIXTURE_PASSWORD),
            ("KOPIA_OVERRIDE_USERNAME", "fixture"),
            ("KOPIA_OVERRIDE_HOSTNAME", "fixture-host"),
        ],
    );
    let r = run_mover(&["restore"], &env);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("INFO: Snapshot restore completed successfully")
    );

    let list: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("expected/repo-a.snapshot-list.json"))
            .unwrap(),
    )
    .unwrap();
    let newest = list
        .iter()
        .max_by_key(|s| s["startTime"].as_str().unwrap().to_owned())
        .unwrap();
    assert_eq!(r.json["snapshotId"], newest["id"]);

    // Same paths, contents, modes and file mtimes as the source tree (variant 2); directory
    // mtimes are the stored ones (see fixtures_read.rs), the root's belongs to the volume.
    let ours = parse_manifest(&tree_manifest(&s.restore));
    let source = parse_manifest(
        &std::fs::read_to_string(fixtures_dir().join("expected/tree-v2.manifest.txt")).unwrap(),
    );
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        source.keys().collect::<Vec<_>>()
    );
    for (path, fields) in &source {
        if path != "." {
            assert_eq!(&ours[path], fields, "{path}");
        }
    }
    assert_eq!(tree_digest(&repo), before, "the fixture copy is untouched");
}
