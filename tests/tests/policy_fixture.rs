//! Scenario: arkiv applies kopia's policy tree when it snapshots. repo-c's two source trees
//! (`make_tree_c.py` variants 1 and 2), snapshotted by arkiv as `dev@fixture-host:/data` into a
//! copy of repo-c (whose stored policies then apply), get kopia 0.20.1's root object IDs and
//! leave out exactly the paths of `expected/repo-c.ignored.txt`. (That arkiv restores repo-c's
//! two kopia snapshots like kopia is `compressors.rs`' `repo_c_restores_match_kopia`.)

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use arkiv_tests::*;

const PASSWORD: &str = "fixture-password-c";
const SOURCE: &str = "dev@fixture-host:/data";

fn make_tree_c(dir: &Path, variant: u32) {
    let out = Command::new("python3")
        .arg(fixtures_dir().join("make_tree_c.py"))
        .arg(dir)
        .arg("--variant")
        .arg(variant.to_string())
        .output()
        .expect("python3 make_tree_c.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixtures_dir().join("expected").join(name)).unwrap()
}

/// kopia's ignored paths of a variant (`repo-c.ignored.txt`, rows marked `ignored`).
fn kopia_ignored(variant: u32) -> BTreeSet<String> {
    let v = format!("v{variant}");
    expected("repo-c.ignored.txt")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.first() == Some(&v.as_str()) && f.get(1) == Some(&"ignored"))
                .then(|| f.get(3).unwrap().to_string())
        })
        .collect()
}

fn check_variant(variant: u32, kopia_root: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_tree_c(&data, variant);
    let all_paths: Vec<String> = parse_manifest(&tree_manifest(&data)).into_keys().collect();
    let (_t, copy) = fixture_copy("repo-c");
    let summary = snapshot_json(&copy, PASSWORD, &data, &["--source", SOURCE]);
    assert_eq!(
        summary["rootObject"], kopia_root,
        "variant {variant}: root object ID"
    );

    // every excluded entry, and everything below an excluded directory (below a cache
    // directory: its contents only)
    let mut ours = BTreeSet::new();
    for e in summary["excluded"].as_array().unwrap() {
        let p = e["path"].as_str().unwrap().to_owned();
        let below = format!("{p}/");
        ours.extend(all_paths.iter().filter(|q| q.starts_with(&below)).cloned());
        if !e["reason"].as_str().unwrap().starts_with("cache directory") {
            ours.insert(p);
        }
    }
    assert_eq!(
        ours,
        kopia_ignored(variant),
        "variant {variant}: ignored paths"
    );
    assert_eq!(ours.len(), 54);
}

#[test]
fn repo_c_variant_1_gets_kopias_root_and_ignores() {
    check_variant(1, "ke76c6c708a3d81c8d723a7f6da57a9c1");
}

#[test]
fn repo_c_variant_2_gets_kopias_root_and_ignores() {
    check_variant(2, "kb2cd5bf45f5f4736cfdfcbd9d688583d");
}
