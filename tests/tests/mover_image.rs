//! Scenario: the container image, built with podman (FROM scratch, static binaries) and run
//! the way VolSync's Job runs it (env from a Secret, /data, /cache, read-only root, uid 65532,
//! no network) for one backup and one restore — `scripts/image.sh build` then `smoke`.
//!
//! Where this machine cannot run containers at all (no podman, or podman cannot start one),
//! the test prints a loud SKIPPED line with the reason; every other failure fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn script(arg: &str) -> std::process::Output {
    Command::new("bash")
        .arg(arkiv_tests::workspace_root().join("scripts/image.sh"))
        .arg(arg)
        .env("ARKIV_IMAGE", "localhost/arkiv-mover:test")
        .output()
        .expect("run scripts/image.sh")
}

fn skip(reason: &str) {
    eprintln!("\n*** SKIPPED mover_image: {reason} ***\n");
}

#[test]
fn image_backup_and_restore_with_podman() {
    if Command::new("podman").arg("--version").output().is_err() {
        return skip("podman is not installed (apt-get install podman runc)");
    }
    let build = script("build");
    let build_log = String::from_utf8_lossy(&build.stderr);
    assert!(build.status.success(), "image build failed:\n{build_log}");
    let size = String::from_utf8_lossy(&build.stdout);
    eprintln!("{}", size.trim());

    let check = script("check");
    if check.status.code() == Some(77) {
        return skip(String::from_utf8_lossy(&check.stdout).trim());
    }
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let smoke = script("smoke");
    let out = format!(
        "{}\n{}",
        String::from_utf8_lossy(&smoke.stdout),
        String::from_utf8_lossy(&smoke.stderr)
    );
    assert!(smoke.status.success(), "image smoke test failed:\n{out}");
    assert!(out.contains("INFO: Snapshot created successfully"), "{out}");
    assert!(
        out.contains("INFO: Snapshot restore completed successfully"),
        "{out}"
    );
    assert!(out.contains("smoke OK"), "{out}");
}
