//! `arkiv expire [--dry-run] [--all]` and expiry after `snapshot create`, on a filesystem
//! repository written by the CLI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::Path;

use arkiv_tests::{arkiv, run_ok};

const PW: &str = "expire-cli";

fn cli(repo: &Path, user: &str) -> std::process::Command {
    let mut c = arkiv(repo, PW);
    c.args(["--override-username", user, "--override-hostname", "box"]);
    c
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap()
}

/// Every file of the repository directory and its bytes.
fn dump(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn count(repo: &Path, user: &str, source: &str) -> usize {
    let out = text(run_ok(
        cli(repo, user).args(["snapshot", "list", "--json", source]),
    ));
    serde_json::from_str::<Vec<serde_json::Value>>(&out)
        .unwrap()
        .len()
}

#[test]
fn expire_dry_run_then_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a.txt"), b"retention by the command line").unwrap();
    run_ok(cli(&repo, "alice").args(["repository", "create"]));
    let src = "alice@box:/data";
    let snap = |user: &str, source: &str| {
        let out = arkiv_tests::run(cli(&repo, user).args([
            "snapshot",
            "create",
            data.to_str().unwrap(),
            "--source",
            source,
        ]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    };
    for _ in 0..4 {
        // default policy: latest 10 → nothing expires
        let err = snap("alice", src);
        assert!(!err.contains("Expired"), "{err}");
    }
    for _ in 0..3 {
        snap("bob", "bob@box:/data");
    }
    run_ok(cli(&repo, "alice").args([
        "policy",
        "set",
        "--global",
        "--keep-latest",
        "2",
        "--keep-hourly",
        "0",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
        "--keep-annual",
        "0",
    ]));

    let before = dump(&repo);
    let plan = text(run_ok(cli(&repo, "alice").args(["expire", "--dry-run"])));
    assert!(
        plan.starts_with("Retention for alice@box:/data: latest 2, hourly 0, daily 0, weekly 0, monthly 0, annual 0\n"),
        "{plan}"
    );
    assert_eq!(plan.matches("\n  keep    ").count(), 2, "{plan}");
    assert_eq!(plan.matches("\n  delete  ").count(), 2, "{plan}");
    assert!(plan.contains("latest-1"), "{plan}");
    assert!(plan.trim_end().ends_with("2 kept, 2 to delete"), "{plan}");
    assert!(
        !plan.contains("bob@"),
        "only the acting identity's sources: {plan}"
    );
    assert_eq!(dump(&repo), before, "--dry-run must not write");

    // without --dry-run: alice's source only
    run_ok(cli(&repo, "alice").arg("expire"));
    assert_eq!(count(&repo, "alice", src), 2);
    assert_eq!(count(&repo, "alice", "bob@box:/data"), 3);

    // snapshot create applies retention afterwards, like kopia
    let err = snap("alice", src);
    assert!(
        err.contains("Expired 1 snapshot(s) of alice@box:/data"),
        "{err}"
    );
    assert_eq!(count(&repo, "alice", src), 2);

    // --all reaches bob's source too
    let plan = text(run_ok(cli(&repo, "alice").args([
        "expire",
        "--all",
        "--dry-run",
    ])));
    assert!(plan.contains("Retention for bob@box:/data"), "{plan}");
    run_ok(cli(&repo, "alice").args(["expire", "--all"]));
    assert_eq!(count(&repo, "alice", "bob@box:/data"), 2);
}
