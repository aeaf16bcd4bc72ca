//! Scenario (issue 14, finding 5): the S3 endpoint goes away for 10 s in the middle of a
//! backup and in the middle of a restore (a MinIO/RustFS restart, a network blip). A proxy in
//! front of the test server cuts every connection and refuses new ones for that time; both
//! commands ride it out within their retry budget and exit 0, and the restore is byte-exact.

use std::time::{Duration, Instant};

use arkiv_tests::outage_proxy::{Direction, OutageProxy};
use arkiv_tests::*;
use rand::RngCore;

const OUTAGE: Duration = Duration::from_secs(10);

#[test]
fn backup_and_restore_survive_a_ten_second_outage() {
    let Some(ep) = s3::endpoint("backup_and_restore_survive_a_ten_second_outage") else {
        return;
    };
    let bucket = s3::fresh_bucket(&ep, "outage");
    let proxy = OutageProxy::start(&ep);
    let via = proxy.endpoint();
    let pw = "outage-password";
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut rng = rand::thread_rng();
    for i in 0..4 {
        let mut buf = vec![0u8; 2 << 20];
        rng.fill_bytes(&mut buf);
        std::fs::write(data.join(format!("f{i}")), &buf).unwrap();
    }
    run_ok(s3::arkiv(&via, &bucket, "r", pw).args(["repository", "create"]));

    // Backup: the outage starts once 2 MiB of the 8 MiB were uploaded.
    proxy.arm(Direction::Upload, 2 << 20, OUTAGE);
    let start = Instant::now();
    let out = run(s3::arkiv(&via, &bucket, "r", pw)
        .args(["snapshot", "create"])
        .arg(&data)
        .args(["--source", "u@h:/data"]));
    assert!(
        out.status.success(),
        "backup through a 10 s outage: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_outage_ridden_out(&proxy, start, "backup");

    // Restore: the outage starts once 2 MiB were downloaded.
    let restored = tmp.path().join("restored");
    proxy.arm(Direction::Download, 2 << 20, OUTAGE);
    let start = Instant::now();
    let out = run(s3::arkiv(&via, &bucket, "r", pw)
        .args(["restore", "latest"])
        .arg(&restored));
    assert!(
        out.status.success(),
        "restore through a 10 s outage: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_outage_ridden_out(&proxy, start, "restore");
    assert_eq!(tree_manifest(&restored), tree_manifest(&data));
}

/// The outage happened during the command, the client tried during it, and the command
/// ended after it.
fn assert_outage_ridden_out(proxy: &OutageProxy, start: Instant, what: &str) {
    let (from, to) = proxy
        .outage()
        .unwrap_or_else(|| panic!("{what}: the outage never started (trigger not reached)"));
    assert!(from >= start, "{what}: outage before the command");
    assert!(
        Instant::now() >= to,
        "{what}: the command ended during the outage"
    );
    assert!(
        proxy.refused() > 0,
        "{what}: no connection attempt during the outage"
    );
}
