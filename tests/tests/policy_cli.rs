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
        show.contains("  Latest snapshots:               10   inherited from (global)\n"),
        "{show}"
    );
    assert!(
        show.contains("  Compressor:                   none   inherited from (global)\n"),
        "{show}"
    );

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
        "  Latest snapshots:                3   (defined for this target)\n",
        "  Daily snapshots:                 2   (defined for this target)\n",
        "  Hourly snapshots:                5   inherited from @box\n",
        "  Weekly snapshots:                4   inherited from (global)\n",
        "  Annual snapshots:                3   (default)\n",
        "  Compressor:           zstd-fastest   (defined for this target)\n",
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
        show.contains("  Latest snapshots:                3   (defined for this target)\n"),
        "{show}"
    );
    assert!(
        show.contains("  Daily snapshots:                 7   inherited from (global)\n"),
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
