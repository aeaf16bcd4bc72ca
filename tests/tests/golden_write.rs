//! Scenario: arkiv writes what kopia wrote. The fixture tree, snapshotted by arkiv with the
//! fixture repositories' keys, gives kopia's root object IDs, every object ID of kopia's
//! `ls -l -r`, kopia's set of content IDs (with their lengths), and kopia's manifest fields
//! except the ones kopia took from its clock (`startTime`, `endTime`) and the ID.

use std::collections::BTreeSet;
use std::path::Path;

use arkiv_tests::*;
use serde_json::Value;

const SOURCE: &str = "fixture@fixture-host:/data";

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixtures_dir().join("expected").join(name)).unwrap()
}

/// A copy of a fixture repository with only its format blobs: same keys, no contents.
fn fresh_copy_with_same_keys(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let (t, repo) = fixture_copy(name);
    for entry in std::fs::read_dir(&repo).unwrap() {
        let p = entry.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        if !(n == ".shards" || n == "kopia.repository.f" || n == "kopia.blobcfg.f") {
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
    (t, repo)
}

fn sorted_ls(repo: &Path, id: &str) -> Vec<String> {
    let out = run_ok(arkiv(repo, FIXTURE_PASSWORD).args(["ls", "-l", "-r", id]));
    let mut lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort_by(|a, b| ls_path(a).cmp(ls_path(b)));
    lines
}

fn ls_path(line: &str) -> &str {
    line.split_whitespace().nth(6).unwrap_or(line)
}

fn snapshot_manifest(repo: &Path, id: &str) -> Value {
    let out = run_ok(arkiv(repo, FIXTURE_PASSWORD).args(["snapshot", "list", "--all", "--json"]));
    let list: Vec<Value> = serde_json::from_slice(&out).unwrap();
    list.into_iter()
        .find(|s| s["id"] == id)
        .expect("snapshot listed")
}

/// content ID → original length, from kopia's `content list -l`.
fn kopia_contents(name: &str) -> std::collections::BTreeMap<String, u64> {
    expected(name)
        .lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            (
                f.next().unwrap().to_owned(),
                f.next().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

fn check_golden(repo_name: &str, kopia_snap: &str, kopia_root: &str, compression: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_tree(&data, 1);

    // 1. a fresh repository with the fixture's keys: every content is written by arkiv
    let (_t, fresh) = fresh_copy_with_same_keys(repo_name);
    let summary = snapshot_json(
        &fresh,
        FIXTURE_PASSWORD,
        &data,
        &["--source", SOURCE, "--compression", compression],
    );
    assert_eq!(
        summary["rootObject"], kopia_root,
        "{repo_name}: root object ID"
    );
    let ours_id = summary["snapshotId"].as_str().unwrap().to_owned();
    let theirs_ls = {
        let mut l: Vec<String> = expected(&format!("{repo_name}.snap1.ls.txt"))
            .lines()
            .map(String::from)
            .collect();
        l.sort_by(|a, b| ls_path(a).cmp(ls_path(b)));
        l
    };
    assert_eq!(
        sorted_ls(&fresh, &ours_id),
        theirs_ls,
        "{repo_name}: ls -l -r"
    );

    // content IDs: arkiv's reachable set equals kopia's for snapshot 1, lengths equal
    let ours_repo = open_repo(&rt, &fresh, FIXTURE_PASSWORD);
    let root: arkiv_format::ids::ObjectId = kopia_root.parse().unwrap();
    let ours = reachable_contents(&rt, &ours_repo, root);
    let kopia_repo = open_repo(&rt, &fixtures_dir().join(repo_name), FIXTURE_PASSWORD);
    let theirs = reachable_contents(&rt, &kopia_repo, root);
    assert_eq!(ours, theirs, "{repo_name}: reachable content IDs");
    let listed = kopia_contents(&format!("{repo_name}.content-list.txt"));
    for id in &ours {
        let info = ours_repo
            .content_info(&id.parse().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            Some(&u64::from(info.original_length)),
            listed.get(id),
            "{repo_name}: content {id} missing from kopia's content list or length differs"
        );
        if compression == "none" && info.content_id.prefix().is_none() {
            assert_eq!(info.compression_header_id, 0, "{id} must not be compressed");
        }
    }
    if compression == "zstd-fastest" {
        // the repetitive 8 MiB file compresses, the random one does not (kopia keeps the
        // compressed form only when strictly smaller)
        let by_len = |len: u32| {
            ours.iter()
                .map(|id| {
                    ours_repo
                        .content_info(&id.parse().unwrap())
                        .unwrap()
                        .unwrap()
                })
                .filter(|i| i.original_length == len && i.content_id.prefix().is_none())
                .map(|i| i.compression_header_id)
                .collect::<BTreeSet<u32>>()
        };
        assert_eq!(by_len(8_388_608), BTreeSet::from([0x1101]));
    }

    // manifest: everything but ID, clock times, description and tags equals kopia's
    let mut ours_m = snapshot_manifest(&fresh, &ours_id);
    let mut theirs_m: Value =
        serde_json::from_str::<Vec<Value>>(&expected(&format!("{repo_name}.snapshot-list.json")))
            .unwrap()
            .into_iter()
            .find(|s| s["id"] == kopia_snap)
            .unwrap();
    for m in [&mut ours_m, &mut theirs_m] {
        let o = m.as_object_mut().unwrap();
        for k in [
            "id",
            "startTime",
            "endTime",
            "description",
            "tags",
            "retentionReason",
        ] {
            o.remove(k);
        }
    }
    assert_eq!(ours_m, theirs_m, "{repo_name}: snapshot manifest fields");

    // 2. into a copy of the kopia repository itself: dedup against kopia's contents, kopia's
    //    snapshots stay intact and readable
    let (_t2, copy) = fixture_copy(repo_name);
    let summary = snapshot_json(
        &copy,
        FIXTURE_PASSWORD,
        &data,
        &[
            "--source",
            SOURCE,
            "--compression",
            compression,
            "--force-hash",
            "100",
        ],
    );
    assert_eq!(summary["rootObject"], kopia_root);
    assert_eq!(summary["hashedFiles"], 31);
    let restored = tmp.path().join("kopia-snap");
    run_ok(
        arkiv(&copy, FIXTURE_PASSWORD)
            .args(["restore", kopia_snap])
            .arg(&restored),
    );
    assert_eq!(tree_manifest(&restored), tree_manifest(&data));
    run_ok(arkiv(&copy, FIXTURE_PASSWORD).args(["verify", "--verify-files-percent", "100"]));
}

#[test]
fn repo_a_zstd_fastest() {
    check_golden(
        "repo-a",
        "bd35e5981801e93285ddc62a7548805e",
        "k0cb19c6770ffaf3da05782c42f3bedb9",
        "zstd-fastest",
    );
}

#[test]
fn repo_b_uncompressed() {
    check_golden(
        "repo-b",
        "67281751b5f1ae904b6abf7e6e1ca7db",
        "k53c6787ce6ce794a998c4dc281b26880",
        "none",
    );
}

#[test]
fn variant_2_incremental_matches_kopia_second_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_t, fresh) = fresh_copy_with_same_keys("repo-a");
    make_tree(&data, 1);
    let first = snapshot_json(
        &fresh,
        FIXTURE_PASSWORD,
        &data,
        &["--source", SOURCE, "--compression", "zstd-fastest"],
    );
    assert_eq!(first["rootObject"], "k0cb19c6770ffaf3da05782c42f3bedb9");
    make_tree(&data, 2);
    let second = snapshot_json(
        &fresh,
        FIXTURE_PASSWORD,
        &data,
        &["--source", SOURCE, "--compression", "zstd-fastest"],
    );
    assert_eq!(second["rootObject"], "k733266a4a1c495784bf37d891f1fe574");
    // kopia's second snapshot: 4 files hashed, 29 reused (27 files and the 2 symlinks)
    assert_eq!(second["hashedFiles"], 4);
    assert_eq!(second["cachedFiles"], 29);
    let mut theirs: Vec<String> = expected("repo-a.snap2.ls.txt")
        .lines()
        .map(String::from)
        .collect();
    theirs.sort_by(|a, b| ls_path(a).cmp(ls_path(b)));
    assert_eq!(
        sorted_ls(&fresh, second["snapshotId"].as_str().unwrap()),
        theirs
    );
}
