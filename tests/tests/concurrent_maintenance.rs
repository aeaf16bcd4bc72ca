//! Scenario (issue 14, finding 3 and acceptance 4): backups running while
//! `maintenance run --full --safety none` runs. Before, maintenance deleted the running
//! backup's packs (no safety margin, "0 in live sessions"), the backup still exited 0 and
//! its snapshot could not be restored. Now even `--safety none` keeps the packs of writers
//! whose session marker is live, and every snapshot restores.
//!
//! Lean on purpose: a repository with 64 KiB packs, so each backup of ~1 MiB of new data puts
//! a dozen packs well before its index blob (the window the race needs), 20 rounds.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use arkiv_tests::*;

const PW: &str = "concurrent-maintenance-pw";
const ROUNDS: usize = 20;

fn cli(repo: &Path) -> Command {
    let mut c = arkiv(repo, PW);
    c.args([
        "--override-username",
        "tester",
        "--override-hostname",
        "testhost",
    ]);
    c
}

/// A repository with small packs, created through the engine (the CLI has no pack-size flag).
fn create_small_pack_repo(repo: &Path) {
    std::fs::create_dir_all(repo).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let st = arkiv_engine::blob::filesystem::FilesystemStorage::open(repo).unwrap();
        let mut opts = arkiv_engine::initialize::CreateOptions::new("tester", "testhost");
        opts.max_pack_size = 64 << 10;
        arkiv_engine::initialize::create_repository(
            std::sync::Arc::new(st),
            PW,
            &opts,
            arkiv_engine::OpenOptions::default(),
        )
        .await
        .unwrap();
    });
}

/// Deterministic, incompressible-enough bytes (xorshift), distinct per (round, file).
fn bytes_for(round: usize, file: usize, len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ ((round as u64) << 32 | file as u64 | 1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn wait(child: Child, what: &str) -> std::process::Output {
    let o = child.wait_with_output().expect(what);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
    o
}

#[test]
fn backups_concurrent_with_full_maintenance_safety_none_all_restore() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&src).unwrap();
    create_small_pack_repo(&repo);

    let mut expected: Vec<(String, String)> = Vec::new();
    let mut raced = 0;
    let live_sessions = regex::Regex::new(r"(\d+) in live sessions").unwrap();
    for round in 0..ROUNDS {
        // New data each round (so the backup writes packs), and one file that goes away
        // (so older snapshots hold contents no later snapshot references).
        let dir = src.join(format!("r{round}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..16 {
            std::fs::write(dir.join(format!("f{f}.bin")), bytes_for(round, f, 64 << 10)).unwrap();
        }
        if round > 0 {
            std::fs::remove_dir_all(src.join(format!("r{}", round - 1))).unwrap();
        }
        let manifest = tree_manifest(&src);

        let backup = cli(&repo)
            .args(["snapshot", "create"])
            .arg(&src)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Vary the offset so maintenance lists the repository at different points of the
        // backup (before its first pack, among its packs, after its index blob).
        std::thread::sleep(Duration::from_millis((round as u64 % 5) * 40));
        let maint = cli(&repo)
            .args(["maintenance", "run", "--full", "--safety", "none"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let b = wait(backup, "backup");
        let m = wait(maint, "maintenance");
        assert!(
            b.status.success(),
            "round {round}: backup failed: {}",
            String::from_utf8_lossy(&b.stderr)
        );
        assert!(
            m.status.success(),
            "round {round}: maintenance failed: {}",
            String::from_utf8_lossy(&m.stderr)
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&m.stdout),
            String::from_utf8_lossy(&m.stderr)
        );
        if live_sessions.captures_iter(&said).any(|c| &c[1] != "0") {
            raced += 1;
        }
        let v: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
        let id = v["snapshotId"].as_str().unwrap().to_owned();
        // Restored now: the default retention (keep the latest 10) expires the early ones.
        restore_exact(&repo, &work.path().join("restored"), &id, &manifest, round);
        expected.push((id, manifest));
    }
    eprintln!("maintenance saw a live session in {raced} of {ROUNDS} rounds");

    // One more full maintenance with nothing running; every snapshot retention kept (the
    // latest 10) still restores exactly.
    run_ok(cli(&repo).args(["maintenance", "run", "--full", "--safety", "none"]));
    let list = String::from_utf8(run_ok(cli(&repo).args(["snapshot", "list", "--all"]))).unwrap();
    let kept: Vec<&(String, String)> = expected
        .iter()
        .filter(|(id, _)| list.contains(id))
        .collect();
    assert!(
        kept.len() >= 10,
        "retention kept {} snapshots: {list}",
        kept.len()
    );
    for (i, (id, manifest)) in kept.into_iter().enumerate() {
        restore_exact(&repo, &work.path().join("restored"), id, manifest, i);
    }
    run_ok(cli(&repo).args(["verify"]));
}

fn restore_exact(repo: &Path, target: &Path, id: &str, manifest: &str, n: usize) {
    let o = run(cli(repo).args(["restore", id]).arg(target));
    if !o.status.success() {
        let v = run(cli(repo).args(["verify"]));
        panic!(
            "snapshot {n} ({id}) does not restore: {}\nverify: {}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&v.stderr)
        );
    }
    assert_eq!(tree_manifest(target), manifest, "snapshot {n} ({id})");
    std::fs::remove_dir_all(target).unwrap();
}
