//! Scenario: the kopia-written fixtures repo-a and repo-b, opened in place read-only, list,
//! browse, show, restore and verify exactly as kopia 0.20.1 reported them.

use std::path::PathBuf;

use arkiv_tests::*;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixtures_dir().join("expected").join(name)).unwrap()
}

fn snapshot_list(repo: &str) -> Vec<Value> {
    let out = run_ok(
        arkiv(&fixture(repo), FIXTURE_PASSWORD).args(["snapshot", "list", "--all", "--json"]),
    );
    serde_json::from_slice::<Value>(&out)
        .expect("stdout is one JSON document")
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn snapshot_list_matches_kopia() {
    for repo in ["repo-a", "repo-b"] {
        let ours = snapshot_list(repo);
        let theirs: Vec<Value> =
            serde_json::from_str(&expected(&format!("{repo}.snapshot-list.json"))).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{repo}: snapshot count");
        for (o, t) in ours.iter().zip(&theirs) {
            for key in [
                "id",
                "source",
                "description",
                "startTime",
                "endTime",
                "stats",
                "rootEntry",
            ] {
                assert_eq!(o[key], t[key], "{repo}: field {key}");
            }
            assert_eq!(o["tags"], t["tags"], "{repo}: tags");
            let src = o["source"].as_object().unwrap();
            let mut keys: Vec<&String> = src.keys().collect();
            keys.sort();
            assert_eq!(keys, ["host", "path", "userName"]);
        }
    }
    assert_fixtures_unchanged();
}

#[test]
fn snapshot_list_text_groups_by_source() {
    let out =
        run_ok(arkiv(&fixture("repo-a"), FIXTURE_PASSWORD).args(["snapshot", "list", "--all"]));
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "fixture@fixture-host:/data");
    assert!(lines[1].contains("2026-11-22 00:22:53 UTC bd35e5981801e93285ddc62a7548805e k0cb19c6770ffaf3da05782c42f3bedb9 21 MB drwxr-xr-x files:31 dirs:8"), "{text}");
    assert!(
        lines[2].contains("aa1bfb5fda1314ce3dcc1f97672d35e8 k733266a4a1c495784bf37d891f1fe574"),
        "{text}"
    );
}

/// Restored manifests must equal the source tree's, except that for directories either the
/// source mtime or kopia's restored mtime (subtree maxTime) is accepted.
fn check_restore(repo: &str, snap_id: &str, tree: &str, kopia_restored: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("restored");
    run_ok(
        arkiv(&fixture(repo), FIXTURE_PASSWORD)
            .args(["restore", snap_id])
            .arg(&target),
    );
    let ours = parse_manifest(&tree_manifest(&target));
    let source = parse_manifest(&expected(tree));
    let kopia = parse_manifest(&expected(kopia_restored));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        source.keys().collect::<Vec<_>>(),
        "{repo}/{snap_id}: restored paths"
    );
    for (path, fields) in &ours {
        let src = &source[path];
        if fields[0] == "dir" {
            assert!(
                fields == src || fields == &kopia[path],
                "{repo}/{snap_id}: {path}: {fields:?} is neither {src:?} nor kopia's {:?}",
                kopia[path]
            );
            // arkiv restores the source mtime (documented in the README)
            assert_eq!(
                fields, src,
                "{path}: arkiv restores the stored directory mtime"
            );
        } else {
            assert_eq!(fields, src, "{repo}/{snap_id}: {path}");
        }
    }
}

#[test]
fn restore_every_snapshot_byte_exact() {
    check_restore(
        "repo-a",
        "bd35e5981801e93285ddc62a7548805e",
        "tree-v1.manifest.txt",
        "repo-a.snap1.restored.manifest.txt",
    );
    check_restore(
        "repo-a",
        "aa1bfb5fda1314ce3dcc1f97672d35e8",
        "tree-v2.manifest.txt",
        "repo-a.snap2.restored.manifest.txt",
    );
    check_restore(
        "repo-b",
        "67281751b5f1ae904b6abf7e6e1ca7db",
        "tree-v1.manifest.txt",
        "repo-b.snap1.restored.manifest.txt",
    );
    assert_fixtures_unchanged();
}

#[test]
fn restore_latest_and_subtree() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("latest");
    run_ok(
        arkiv(&fixture("repo-a"), FIXTURE_PASSWORD)
            .args(["restore", "latest"])
            .arg(&target),
    );
    let ours = tree_manifest(&target);
    // latest = snapshot 2 (variant 2)
    assert!(ours.contains("small/added-in-v2.txt"));
    let sub = tmp.path().join("sub");
    run_ok(
        arkiv(&fixture("repo-a"), FIXTURE_PASSWORD)
            .args(["restore", "bd35e5981801e93285ddc62a7548805e/nested/a"])
            .arg(&sub),
    );
    let m = parse_manifest(&tree_manifest(&sub));
    assert_eq!(m["."][2], "0750");
    assert_eq!(
        m["sibling.txt"][4],
        "c1f5fae7fd6e178b82fbf68a5bffdda4c12b67eea0e5340f09e167a9b2e942be"
    );
    assert!(m.contains_key("b/c/deep.txt"));
}

#[test]
fn ls_matches_kopia() {
    for (repo, id, file) in [
        (
            "repo-a",
            "bd35e5981801e93285ddc62a7548805e",
            "repo-a.snap1.ls.txt",
        ),
        (
            "repo-a",
            "aa1bfb5fda1314ce3dcc1f97672d35e8",
            "repo-a.snap2.ls.txt",
        ),
        (
            "repo-b",
            "67281751b5f1ae904b6abf7e6e1ca7db",
            "repo-b.snap1.ls.txt",
        ),
    ] {
        let out = run_ok(arkiv(&fixture(repo), FIXTURE_PASSWORD).args(["ls", "-l", "-r", id]));
        let mut ours: Vec<String> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        ours.sort_by(|a, b| path_of(a).cmp(path_of(b)));
        let theirs: Vec<String> = expected(file).lines().map(String::from).collect();
        assert_eq!(ours, theirs, "{repo} {id}");
    }
}

fn path_of(line: &str) -> &str {
    // mode, size, date, time, "UTC", object ID, then the path
    line.split_whitespace().nth(6).unwrap_or(line)
}

#[test]
fn show_root_directory_matches_kopia() {
    for (repo, oid, file) in [
        (
            "repo-a",
            "k0cb19c6770ffaf3da05782c42f3bedb9",
            "repo-a.snap1.root-dir.json",
        ),
        (
            "repo-a",
            "k733266a4a1c495784bf37d891f1fe574",
            "repo-a.snap2.root-dir.json",
        ),
        (
            "repo-b",
            "k53c6787ce6ce794a998c4dc281b26880",
            "repo-b.snap1.root-dir.json",
        ),
    ] {
        let out = run_ok(arkiv(&fixture(repo), FIXTURE_PASSWORD).args(["show", oid]));
        let theirs = expected(file);
        assert_eq!(
            String::from_utf8(out).unwrap().trim_end(),
            theirs.trim_end(),
            "{repo} {oid}"
        );
    }
}

#[test]
fn verify_all_file_contents() {
    for repo in ["repo-a", "repo-b"] {
        let out = run(arkiv(&fixture(repo), FIXTURE_PASSWORD).args([
            "verify",
            "--verify-files-percent",
            "100",
        ]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{repo}: {stderr}");
        assert!(stderr.contains(": 0 problem(s)"), "{stderr}");
    }
    assert_fixtures_unchanged();
}
