//! Scenario: SIGTERM in the middle of a backup stops it cleanly: non-zero exit, no snapshot
//! recorded, the summary and JSON still printed; the next run succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use arkiv_tests::mover::{Scene, list_snapshots, mover_cmd, parse_output, run_mover, with};

/// Incompressible bytes (xorshift), written in 1 MiB blocks.
fn write_random(path: &std::path::Path, mib: usize, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block).unwrap();
    }
}

#[test]
fn sigterm_mid_backup_then_next_run_succeeds() {
    let s = Scene::new();
    // Enough data that the upload is still running when the signal lands.
    for i in 0..4 {
        write_random(&s.data.join(format!("big-{i}.bin")), 64, 7 + i);
    }
    std::fs::write(s.data.join("small.txt"), b"small").unwrap();
    // One worker keeps the upload long on any machine.
    let env = with(&s.backup_env(), &[("KOPIA_PARALLELISM", "1")]);

    let mut child = mover_cmd(&["backup"], &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let started = Instant::now();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "mover ended early:\n{seen}"
        );
        seen.push_str(&line);
        if line.contains("INFO: creating snapshot of") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{seen}");
    }
    std::thread::sleep(Duration::from_millis(300));
    nix_kill(child.id(), "TERM");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let mut full = out.clone();
    full.stdout = format!("{seen}{rest}").into_bytes();
    let r = parse_output(&full);
    assert_eq!(r.code, 143, "terminated exit code; output:\n{}", r.all());
    assert!(r.stdout.contains("SIGTERM received"), "{}", r.all());
    assert!(!r.stdout.contains("Snapshot created successfully"));
    assert!(r.json["snapshotId"].is_null());
    assert!(list_snapshots(&s.repo).is_empty(), "no snapshot recorded");

    let again = run_mover(&["backup"], &s.backup_env());
    again.expect_code(0);
    let snaps = list_snapshots(&s.repo);
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["stats"]["errorCount"].as_u64().unwrap_or(0), 0);
}

fn nix_kill(pid: u32, sig: &str) {
    let st = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
}
