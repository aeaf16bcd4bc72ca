//! `arkiv policy set` / `policy show`: kopia's flag names, the manifest stored like
//! `kopia policy set`, and where each effective value comes from.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use arkiv_tests::{arkiv, run, run_ok};

const PW: &str = "policy-cli";

fn cli(repo: &Path) -> std::process::Command {
    let mut c = arkiv(repo, PW);
    c.args(["--override-username", "alice", "--override-hostname", "box"]);
    c
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap()
}

#[test]
fn policy_set_and_show() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    run_ok(cli(&repo).args(["repository", "create"]));

    // defaults from the global policy written at creation
    let show = text(run_ok(cli(&repo).args([
        "policy",
        "show",
        "alice@box:/data",
    ])));
    assert!(show.starts_with("Policy for alice@box:/data:\n"), "{show}");
    assert!(
        show.contains("  Latest snapshots:                       10   inherited from (global)\n"),
        "{show}"
    );
    assert!(show.contains("Compression disabled.\n"), "{show}");

    run_ok(cli(&repo).args([
        "policy",
        "set",
        "alice@box:/data",
        "--keep-latest",
        "3",
        "--keep-daily",
        "2",
        "--compression",
        "zstd-fastest",
    ]));
    run_ok(cli(&repo).args(["policy", "set", "@box", "--keep-hourly", "5"]));
    run_ok(cli(&repo).args(["policy", "set", "--global", "--keep-annual", "inherit"]));
    let show = text(run_ok(cli(&repo).args([
        "policy",
        "show",
        "alice@box:/data",
    ])));
    for line in [
        "  Latest snapshots:                        3   (defined for this target)\n",
        "  Daily snapshots:                         2   (defined for this target)\n",
        "  Hourly snapshots:                        5   inherited from @box\n",
        "  Weekly snapshots:                        4   inherited from (global)\n",
        // kopia merges its built-in defaults under the global policy's name
        "  Annual snapshots:                        3   inherited from (global)\n",
        "  Compressor:                   zstd-fastest   (defined for this target)\n",
    ] {
        assert!(show.contains(line), "missing {line:?} in\n{show}");
    }

    // a second `set` edits the same policy (kopia keeps the other fields)
    run_ok(cli(&repo).args([
        "policy",
        "set",
        "alice@box:/data",
        "--keep-daily",
        "inherit",
    ]));
    let show = text(run_ok(cli(&repo).args([
        "policy",
        "show",
        "alice@box:/data",
    ])));
    assert!(
        show.contains("  Latest snapshots:                        3   (defined for this target)\n"),
        "{show}"
    );
    assert!(
        show.contains("  Daily snapshots:                         7   inherited from (global)\n"),
        "{show}"
    );

    // errors: no changes, bad numbers, no target
    let out = run(cli(&repo).args(["policy", "set", "alice@box:/data"]));
    assert_eq!(out.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no changes specified"));
    let out = run(cli(&repo).args(["policy", "set", "--global", "--keep-latest", "ten"]));
    assert_eq!(out.status.code(), Some(8));
    let out = run(cli(&repo).args(["policy", "show"]));
    assert_eq!(out.status.code(), Some(2));
}

/// The stored payload is what kopia writes and re-encodes byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_policy_is_kopia_json() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    run_ok(cli(&repo).args(["repository", "create"]));
    run_ok(cli(&repo).args([
        "policy",
        "set",
        "alice@box:/data",
        "--keep-latest",
        "4",
        "--keep-weekly",
        "1",
    ]));
    let storage: std::sync::Arc<dyn arkiv_engine::blob::BlobStorage> = std::sync::Arc::new(
        arkiv_engine::blob::filesystem::FilesystemStorage::open(&repo).unwrap(),
    );
    let r = arkiv_engine::Repository::open(storage, PW, arkiv_engine::OpenOptions::default())
        .await
        .unwrap();
    let target = arkiv_engine::policy::PolicyTarget::Source("alice@box:/data".parse().unwrap());
    let (_, p) = arkiv_engine::policy::get_policy(&r, &target)
        .await
        .unwrap()
        .unwrap();
    let bytes = p.encode().unwrap();
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        r#"{"retention":{"keepLatest":4,"keepWeekly":1},"files":{},"errorHandling":{},"scheduling":{},"compression":{},"metadataCompression":{},"splitter":{},"actions":{},"osSnapshots":{},"logging":{},"upload":{}}"#
    );
    let labels = r.manifests().await.unwrap();
    let mine: Vec<_> = labels
        .values()
        .filter(|m| m.matches(&target.labels()))
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].data.as_ref().unwrap().get().as_bytes(), &bytes[..]);
}

/// `policy show` prints exactly what kopia 0.20.1 printed for each of repo-c's 19 path
/// policies (`expected/repo-c.policy-show.*.txt`): values, origins, alignment.
#[test]
fn policy_show_matches_kopia_on_repo_c() {
    let (_tmp, repo) = arkiv_tests::fixture_copy("repo-c");
    let dir = arkiv_tests::fixtures_dir().join("expected");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if !name.starts_with("repo-c.policy-show.") {
            continue;
        }
        let want = std::fs::read_to_string(dir.join(&name)).unwrap();
        let target = want
            .lines()
            .next()
            .unwrap()
            .strip_prefix("Policy for ")
            .unwrap()
            .strip_suffix(':')
            .unwrap()
            .to_owned();
        let got = text(run_ok(
            arkiv(&repo, "fixture-password-c").args(["policy", "show", &target]),
        ));
        assert_eq!(got, want, "{name}");
        n += 1;
    }
    assert_eq!(n, 19, "repo-c has 19 path policies");
}

/// The files, error handling and compression flags are stored as `kopia policy set` stores
/// them (sorted unique lists, kopia's key order, `inherit` removes the key) and shown with
/// their origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_error_flags_stored_like_kopia() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    run_ok(cli(&repo).args(["repository", "create"]));
    run_ok(cli(&repo).args([
        "policy",
        "set",
        "alice@box:/data",
        "--add-ignore",
        "*.tmp",
        "--add-ignore",
        "/cache/",
        "--add-ignore",
        "*.tmp",
        "--add-dot-ignore",
        ".backupignore",
        "--max-file-size",
        "1000000",
        "--one-file-system",
        "true",
        "--ignore-cache-dirs",
        "false",
        "--ignore-file-errors",
        "true",
        "--compression",
        "zstd",
        "--add-never-compress",
        ".zip",
        "--add-never-compress",
        ".gz",
        "--compression-min-size",
        "4096",
        "--metadata-compression",
        "s2-default",
    ]));
    // a second call edits the stored lists
    run_ok(cli(&repo).args([
        "policy",
        "set",
        "alice@box:/data",
        "--remove-ignore",
        "/cache/",
        "--add-ignore",
        "node_modules",
        "--ignore-cache-dirs",
        "inherit",
    ]));
    let storage: std::sync::Arc<dyn arkiv_engine::blob::BlobStorage> = std::sync::Arc::new(
        arkiv_engine::blob::filesystem::FilesystemStorage::open(&repo).unwrap(),
    );
    let r = arkiv_engine::Repository::open(storage, PW, arkiv_engine::OpenOptions::default())
        .await
        .unwrap();
    let target = arkiv_engine::policy::PolicyTarget::Source("alice@box:/data".parse().unwrap());
    let (_, p) = arkiv_engine::policy::get_policy(&r, &target)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&p.encode().unwrap()).unwrap(),
        concat!(
            r#"{"retention":{},"files":{"ignore":["*.tmp","node_modules"],"#,
            r#""ignoreDotFiles":[".backupignore"],"maxFileSize":1000000,"oneFileSystem":true},"#,
            r#""errorHandling":{"ignoreFileErrors":true},"scheduling":{},"#,
            r#""compression":{"compressorName":"zstd","neverCompress":[".gz",".zip"],"minSize":4096},"#,
            r#""metadataCompression":{"compressorName":"s2-default"},"splitter":{},"actions":{},"#,
            r#""osSnapshots":{},"logging":{},"upload":{}}"#
        )
    );
    let show = text(run_ok(cli(&repo).args([
        "policy",
        "show",
        "alice@box:/data",
    ])));
    for line in [
        "  Ignore cache directories:             true   inherited from (global)\n",
        "  Ignore rules:                                (defined for this target)\n    *.tmp\n    node_modules\n",
        "  Read ignore rules from files:                (defined for this target)\n    .backupignore\n",
        "  Ignore files above:                   1 MB   (defined for this target)\n",
        "  Scan one filesystem only:             true   (defined for this target)\n",
        "  Ignore file read errors:              true   (defined for this target)\n",
        "  Ignore directory read errors:        false   inherited from (global)\n",
        "  Compress all files except the following extensions:   (defined for this target)\n    .gz\n    .zip\n",
        "  Only compress files bigger than 4.1 KB.\n",
        "  Compressor:                     s2-default   (defined for this target)\n",
    ] {
        assert!(show.contains(line), "missing {line:?} in\n{show}");
    }
    // kopia's enum flags refuse other words
    let out = run(cli(&repo).args(["policy", "set", "--global", "--one-file-system", "yes"]));
    assert_eq!(out.status.code(), Some(2));
    let out = run(cli(&repo).args(["policy", "set", "--global", "--max-file-size", "1MB"]));
    assert_eq!(out.status.code(), Some(8));
}
