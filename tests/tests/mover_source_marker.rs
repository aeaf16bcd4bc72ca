//! Scenario: the source marker (issue 17), set through `KOPIA_MANUAL_CONFIG`'s `arkiv`
//! section exactly as VolSync passes it. On S3 (moto) a plain HTTP `HEAD` — what a Kyverno
//! `apiCall` sends — answers 404 before the first backup and 200 after it; the marker
//! holds only the opted-in fields (no path, file name or secret); quick and full maintenance,
//! run as the KopiaMaintenance job runs it, leave it alone (its key is outside the `p`, `q`,
//! `s` prefixes that blob GC lists; a moved clock cannot be used: maintenance refuses to run
//! with a skewed clock). On a filesystem repository
//! the marker is a plain file, and `arkiv snapshot exists` answers 0 / 3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};

use arkiv_tests::mover::{
    PASSWORD, Scene, create_bucket, run_mover, s3_endpoint, s3_env, small_tree, unique_bucket, with,
};

const MANUAL_CONFIG: &str =
    r#"{"arkiv":{"sourceMarker":{"include":["newestSnapshotTime","snapshotCount"]}}}"#;

/// A plain HTTP/1.1 request; returns the status code and the body. It carries an
/// `Authorization` header as a credentialed policy engine would: the object is private (an
/// anonymous request gets 403 from moto and S3 alike unless a bucket policy allows reads of
/// `arkiv-sources/*`, as `examples/kyverno-restore-or-fresh.yaml` says). moto checks that a
/// credential is present, not its signature, so the header needs no signing code.
fn http(method: &str, endpoint: &str, path: &str) -> (u16, String) {
    let mut sock = std::net::TcpStream::connect(endpoint).unwrap();
    write!(
        sock,
        "{method} {path} HTTP/1.1\r\nHost: {endpoint}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=arkiv-test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, \
         Signature=00\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    sock.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {resp}"));
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn assert_clean(body: &str) {
    for secret in [PASSWORD, "arkiv-test", "hello.txt", "docs", "/data"] {
        assert!(!body.contains(secret), "marker holds {secret:?}: {body}");
    }
}

#[test]
fn s3_marker_answers_head_and_survives_maintenance() {
    let Some(ep) = s3_endpoint("mover_source_marker") else {
        return;
    };
    let bucket = unique_bucket("marker");
    create_bucket(&ep, &bucket);
    let s = Scene::new();
    small_tree(&s.data, 1);
    let env = with(
        &s3_env(&s.backup_env(), &ep, &bucket, "volsync/app"),
        &[("KOPIA_MANUAL_CONFIG", MANUAL_CONFIG)],
    );
    let url = format!("/{bucket}/volsync/app/arkiv-sources/app@media");

    assert_eq!(http("HEAD", &ep, &url).0, 404, "no marker before a backup");
    let r = run_mover(&["backup"], &env);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("source marker arkiv-sources/app@media written")
    );
    assert_eq!(
        http("HEAD", &ep, &url).0,
        200,
        "marker after the first backup"
    );
    // Another source of the same repository still has none.
    assert_eq!(
        http(
            "HEAD",
            &ep,
            &format!("/{bucket}/volsync/app/arkiv-sources/other@media")
        )
        .0,
        404
    );

    let (_, body) = http("GET", &ep, &url);
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(v["kind"], "arkiv-source-marker");
    assert_eq!(v["snapshotCount"], 1);
    assert!(v["newestSnapshotTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v.as_object().unwrap().len(), 4, "only opted-in fields: {v}");
    assert_clean(&body);

    small_tree(&s.data, 2);
    run_mover(&["backup"], &env).expect_code(0);
    let (_, body) = http("GET", &ep, &url);
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(v["snapshotCount"], 2, "refreshed by every backup");

    // Maintenance as the KopiaMaintenance job runs it.
    let m = run_mover(&[], &with(&env, &[("DIRECTION", "maintenance")]));
    m.expect_code(0);
    assert_eq!(
        http("HEAD", &ep, &url).0,
        200,
        "maintenance left the marker"
    );

    // The repository still restores.
    run_mover(
        &["restore"],
        &with(&s3_env(&s.restore_env(), &ep, &bucket, "volsync/app"), &[]),
    )
    .expect_code(0);
}

#[test]
fn filesystem_marker_and_snapshot_exists() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    let marker = s.repo.join("arkiv-sources/app@media");

    // Without the setting: no marker (opt-in).
    run_mover(&["backup"], &s.backup_env()).expect_code(0);
    assert!(!marker.exists());

    let env = with(&s.backup_env(), &[("KOPIA_MANUAL_CONFIG", MANUAL_CONFIG)]);
    run_mover(&["backup"], &env).expect_code(0);
    let body = std::fs::read_to_string(&marker).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["snapshotCount"], 2);
    assert_clean(&body);

    // The plain variable of a user-written CronJob does the same, with fewer fields.
    run_mover(
        &["backup"],
        &with(&s.backup_env(), &[("ARKIV_SOURCE_MARKER", "snapshotCount")]),
    )
    .expect_code(0);
    let before = std::fs::read_to_string(&marker).unwrap();
    let v: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_eq!(v["snapshotCount"], 3);
    assert!(v.get("newestSnapshotTime").is_none());

    let exists = |source: &str| {
        arkiv_tests::run(
            arkiv_tests::arkiv(&s.repo, PASSWORD).args(["snapshot", "exists", "--source", source]),
        )
        .status
        .code()
    };
    assert_eq!(exists("app@media:/data"), Some(0));
    assert_eq!(exists("other@media:/data"), Some(3));
    assert_eq!(exists("app@media:/elsewhere"), Some(3));

    // Maintenance leaves the file alone.
    run_mover(&[], &with(&env, &[("DIRECTION", "maintenance")])).expect_code(0);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), before);
}
