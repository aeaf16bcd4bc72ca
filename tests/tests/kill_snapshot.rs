//! Scenario: `snapshot create` killed with SIGKILL at random moments (≥ 20 trials) never
//! leaves a repository that fails `verify --verify-files-percent 100`, and the next
//! snapshot completes and restores byte-exact.

use std::time::{Duration, Instant};

use arkiv_tests::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const PW: &str = "kill-password";
const TRIALS: u32 = 24;

#[test]
fn sigkill_during_snapshot_create() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut x: u64 = std::process::id() as u64 | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // ~48 MiB of incompressible data (3 packs) and 2,000 small files
    for i in 0..12 {
        let mut v = Vec::with_capacity(4 << 20);
        while v.len() < 4 << 20 {
            v.extend_from_slice(&next().to_le_bytes());
        }
        std::fs::write(src.join(format!("big-{i}.bin")), v).unwrap();
    }
    for d in 0..20 {
        std::fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
        for f in 0..100 {
            std::fs::write(
                src.join(format!("d{d}/f{f}.txt")),
                format!("{d}/{f} {}\n", next()),
            )
            .unwrap();
        }
    }
    create_repo(&repo, PW);

    // how long a full snapshot takes into a scratch repository, to aim the kills
    let scratch = tmp.path().join("scratch");
    create_repo(&scratch, PW);
    snapshot_json(&scratch, PW, &src, &[]);
    // A trial hashes everything but may find its contents already written: time that
    // (faster) kind of run, so the kills land inside runs of either kind.
    let t0 = Instant::now();
    snapshot_json(&scratch, PW, &src, &["--source", "kill@test:/measure"]);
    let full = t0.elapsed().max(Duration::from_millis(50));
    eprintln!("a full snapshot takes {full:?}; killing at random points within it");

    let mut killed_mid_run = 0;
    for trial in 0..TRIALS {
        let delay = Duration::from_micros(next() % (full.as_micros() as u64 + 1));
        // A source of its own per trial: with no previous snapshot to reuse, every run
        // hashes the whole tree (an incremental run would often finish before the kill).
        let mut child = arkiv(&repo, PW)
            .args(["snapshot", "create"])
            .arg(&src)
            .args(["--source", &format!("kill@test:/trial-{trial}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let status = child.wait().unwrap();
        if status.code().is_none() {
            killed_mid_run += 1;
        }
        let out = run(arkiv(&repo, PW).args(["verify", "--verify-files-percent", "100"]));
        assert!(
            out.status.success(),
            "trial {trial} (kill after {delay:?}): verify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!("{killed_mid_run} of {TRIALS} runs were killed mid-run");
    assert!(
        killed_mid_run >= TRIALS / 2,
        "only {killed_mid_run} of {TRIALS} runs were killed before finishing"
    );
    // the next snapshot completes and restores byte-exact
    let summary = snapshot_json(&repo, PW, &src, &[]);
    assert_eq!(summary["errors"], 0);
    let restored = tmp.path().join("restored");
    run_ok(
        arkiv(&repo, PW)
            .args(["restore", summary["snapshotId"].as_str().unwrap()])
            .arg(&restored),
    );
    assert_eq!(tree_manifest(&restored), tree_manifest(&src));
    run_ok(arkiv(&repo, PW).args(["verify", "--verify-files-percent", "100"]));
}
