//! Scenario: operation dispatch and configuration errors: unknown or missing operation exits
//! 2; `maintenance` as an argument and `DIRECTION=maintenance` on a location without a repository (never created) exit 1;
//! an unsupported backend (or a backend missing a variable) is one clear line and exit 1; `|VOLSYNC_ARG_SEP|` splits on the
//! literal separator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arkiv_tests::mover::{Scene, list_snapshots, run_mover, small_tree, with};

#[test]
fn operations_and_configuration_errors() {
    let s = Scene::new();
    let r = run_mover(&["frobnicate"], &s.backup_env());
    r.expect_code(2);
    assert!(r.stderr.contains("unknown operation: frobnicate"));
    assert_eq!(r.json["operation"], "unknown");

    run_mover(&[], &s.backup_env()).expect_code(2);
    run_mover(&["backup", "restore"], &s.backup_env()).expect_code(2);

    let r = run_mover(&["maintenance"], &s.backup_env());
    r.expect_code(1);

    let r = run_mover(&[], &with(&s.backup_env(), &[("DIRECTION", "maintenance")]));
    r.expect_code(1);
    assert!(
        r.stderr.contains("maintenance never creates one"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("INFO: OPERATION_TYPE: maintenance"));

    let r = run_mover(
        &["backup"],
        &with(
            &s.backup_env(),
            &[
                ("KOPIA_REPOSITORY", "gdrive://folder"),
                ("GOOGLE_DRIVE_FOLDER_ID", "folder"),
            ],
        ),
    );
    r.expect_code(1);
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("ERROR:"))
        .collect();
    assert_eq!(
        errors,
        [
            "ERROR: unsupported backend gdrive: arkiv supports S3, filesystem, Azure, GCS, B2, WebDAV, SFTP and rclone repositories"
        ]
    );
    // A supported backend with a variable missing: one line naming it.
    let r = run_mover(
        &["backup"],
        &with(
            &s.backup_env(),
            &[
                ("KOPIA_REPOSITORY", "azure://container"),
                ("KOPIA_AZURE_CONTAINER", "c"),
            ],
        ),
    );
    r.expect_code(1);
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("ERROR:"))
        .collect();
    assert_eq!(
        errors,
        [
            "ERROR: Azure storage account not set: set AZURE_STORAGE_ACCOUNT (or KOPIA_AZURE_STORAGE_ACCOUNT)"
        ]
    );

    let r = run_mover(
        &["backup"],
        &with(&s.backup_env(), &[("KOPIA_PASSWORD", "")]),
    );
    r.expect_code(1);
    assert!(r.stderr.contains("KOPIA_PASSWORD"));

    // Legacy alias KOPIA_FS_PATH, DIRECTION=source, additional args split on the literal
    // separator (the script would cut `--description=Nightly` at its capital letters).
    small_tree(&s.data, 1);
    let mut env = s.backup_env();
    env.remove("KOPIA_REPOSITORY");
    env.insert("KOPIA_FS_PATH".into(), s.repo.display().to_string());
    env.insert("DIRECTION".into(), "source".into());
    env.insert(
        "KOPIA_ADDITIONAL_ARGS".into(),
        "--description=Nightly VolSync|VOLSYNC_ARG_SEP|--tags=app:web|VOLSYNC_ARG_SEP|--one-file-system".into(),
    );
    let r = run_mover(&[], &env);
    r.expect_code(0);
    assert!(
        r.stdout.contains("--one-file-system"),
        "ignored flag is named"
    );
    let snaps = list_snapshots(&s.repo);
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["description"], "Nightly VolSync");
    assert_eq!(snaps[0]["tags"]["tag:app"], "web");
}
