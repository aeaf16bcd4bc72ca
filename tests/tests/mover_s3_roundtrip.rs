//! Scenario: the mover on S3 (moto): the first backup creates the repository under the
//! prefix, the restore yields an identical tree, and a missing bucket is a failure that
//! creates nothing. Skips loudly without `ARKIV_S3_ENDPOINT` (fails under `CI=true`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arkiv_tests::mover::{
    Scene, create_bucket, manifest_without_root, run_mover, s3_endpoint, s3_env, small_tree,
    unique_bucket,
};

#[test]
fn s3_backup_restore_roundtrip() {
    let Some(ep) = s3_endpoint("mover_s3_roundtrip") else {
        return;
    };
    let bucket = unique_bucket("mover-s3");
    create_bucket(&ep, &bucket);
    let s = Scene::new();
    small_tree(&s.data, 1);

    let backup_env = s3_env(&s.backup_env(), &ep, &bucket, "volsync/app");
    let first = run_mover(&["backup"], &backup_env);
    first.expect_code(0);
    assert!(first.stdout.contains("creating a new repository"));
    small_tree(&s.data, 2);
    let second = run_mover(&["backup"], &backup_env);
    second.expect_code(0);
    assert!(!second.stdout.contains("creating a new repository"));

    let restore_env = s3_env(&s.restore_env(), &ep, &bucket, "volsync/app");
    let restored = run_mover(&["restore"], &restore_env);
    restored.expect_code(0);
    assert_eq!(restored.json["snapshotId"], second.json["snapshotId"]);
    assert_eq!(
        manifest_without_root(&s.data),
        manifest_without_root(&s.restore)
    );

    // Wrong password against S3: exit 1, named cause.
    let mut wrong = backup_env.clone();
    wrong.insert("KOPIA_PASSWORD".into(), "not-the-password".into());
    let r = run_mover(&["backup"], &wrong);
    r.expect_code(1);
    assert!(r.stderr.contains("wrong password"), "{}", r.all());

    // A bucket that does not exist: exit 1, never created.
    let missing = s3_env(
        &s.backup_env(),
        &ep,
        &unique_bucket("mover-s3-missing"),
        "x",
    );
    let r = run_mover(&["backup"], &missing);
    r.expect_code(1);
    assert!(r.stderr.contains("bucket not found"), "{}", r.all());
}
