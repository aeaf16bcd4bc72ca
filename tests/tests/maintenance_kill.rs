//! Scenario (acceptance 4): `arkiv maintenance run --full --safety none` SIGKILLed at random
//! points (20 trials spread over the length of an uninterrupted run) on copies of an expired
//! fixtures/repo-a never leaves a repository that fails `verify --verify-files-percent 100`;
//! a later run completes and the repository still verifies.

use std::path::Path;
use std::time::{Duration, Instant};

use arkiv_tests::*;
use rand::{Rng, SeedableRng};

const SNAP1: &str = "bd35e5981801e93285ddc62a7548805e";
const TRIALS: u64 = 20;

fn maintenance(repo: &Path) -> std::process::Command {
    let mut c = arkiv(repo, FIXTURE_PASSWORD);
    c.args(["maintenance", "run", "--full", "--safety", "none"])
        .args([
            "--override-username",
            "fixture",
            "--override-hostname",
            "fixture-host",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

fn verify(repo: &Path, what: &str) {
    let out = run(arkiv(repo, FIXTURE_PASSWORD).args(["verify", "--verify-files-percent", "100"]));
    assert!(
        out.status.success(),
        "{what}: verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigkill_during_full_maintenance_never_breaks_the_repository() {
    // Base: repo-a with its first snapshot expired.
    let (base_tmp, base) = fixture_copy("repo-a");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = engine_open(&rt, &base, FIXTURE_PASSWORD);
    engine_delete_snapshots(&rt, &repo, &[SNAP1]);
    drop(repo);

    // How long does an uninterrupted run take?
    let probe = base_tmp.path().join("probe");
    copy_tree(&base, &probe);
    let t = Instant::now();
    assert!(maintenance(&probe).status().unwrap().success());
    let full = t.elapsed();
    verify(&probe, "uninterrupted run");
    eprintln!("uninterrupted full maintenance: {full:?}");

    let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
    for trial in 0..TRIALS {
        let dir = base_tmp.path().join(format!("t{trial}"));
        copy_tree(&base, &dir);
        // Spread the kill points over the whole run (a little past its end too).
        let max_ms = (full.as_millis() as u64).max(50) * 11 / 10;
        let delay = Duration::from_millis(rng.gen_range(0..max_ms));
        let mut child = maintenance(&dir).spawn().unwrap();
        std::thread::sleep(delay);
        let killed = child.try_wait().unwrap().is_none();
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        eprintln!("trial {trial}: kill after {delay:?} (still running: {killed})");
        verify(&dir, &format!("trial {trial} after SIGKILL at {delay:?}"));
        if trial % 4 == 0 {
            assert!(
                maintenance(&dir).status().unwrap().success(),
                "trial {trial}: rerun"
            );
            verify(&dir, &format!("trial {trial} after the rerun"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert_fixtures_unchanged();
}
