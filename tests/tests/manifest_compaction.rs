//! Scenario: kopia's manifest auto-compaction. Every snapshot adds a manifest content; once
//! a writer sees 16 of them (kopia's `autoCompactionContentCountDefault`) it folds every live
//! manifest into one content and deletes the old ones in the same index flush. Listing the
//! snapshots on an empty cache then costs a few requests instead of one per snapshot, and no
//! manifest is lost or changed: same IDs, same labels, same payload bytes, tombstoned ones
//! stay gone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arkiv_engine::manifest::AUTO_COMPACTION_CONTENTS;
use arkiv_engine::snapshot::upload::{UploadOptions, UploadProgress, snapshot_directory};
use arkiv_format::snapshot::SourceInfo;
use arkiv_tests::*;

const PW: &str = "manifest-compaction-pw";

/// Every live manifest as (labels, payload text), by ID.
fn manifests(
    rt: &tokio::runtime::Runtime,
    repo: &arkiv_engine::Repository,
) -> BTreeMap<String, (String, String)> {
    rt.block_on(repo.manifests())
        .unwrap()
        .into_iter()
        .map(|(id, e)| {
            (
                id.to_string(),
                (
                    format!("{:?}", e.labels),
                    e.data.map(|d| d.get().to_owned()).unwrap_or_default(),
                ),
            )
        })
        .collect()
}

#[test]
fn many_manifest_contents_are_folded_into_one_and_nothing_is_lost() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (repo_dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    create_repo(&repo_dir, PW);
    let source = |n: u32| SourceInfo {
        host: "h".into(),
        user_name: format!("u{n}"),
        path: "/src".into(),
    };
    let mut compactions = 0;
    let mut deleted: Option<String> = None;
    for n in 0..40u32 {
        arkiv_tests::mover::small_tree(&src, n);
        let repo = engine_open(&rt, &repo_dir, PW);
        let before = manifests(&rt, &repo);
        let contents_before = repo.manifest_contents().unwrap().len();
        if n == 5 {
            // A tombstone (what `snapshot delete` and retention write): compaction drops the
            // manifest and the tombstone together, the manifest stays gone.
            let victim = before
                .keys()
                .find(|k| before[*k].0.contains("snapshot"))
                .unwrap();
            engine_delete_snapshots(&rt, &repo, &[victim.as_str()]);
            deleted = Some(victim.clone());
            continue;
        }
        let result = rt
            .block_on(snapshot_directory(
                &repo,
                &src,
                None,
                UploadOptions::new(source(n)),
                Arc::new(UploadProgress::default()),
            ))
            .unwrap();
        let after_repo = engine_open(&rt, &repo_dir, PW);
        let after = manifests(&rt, &after_repo);
        let contents_after = after_repo.manifest_contents().unwrap().len();
        // Nothing lost or changed; exactly the new snapshot added.
        let mut expected = before.clone();
        let new = after
            .get(&result.manifest_id.to_string())
            .expect("new snapshot listed")
            .clone();
        expected.insert(result.manifest_id.to_string(), new);
        assert_eq!(after, expected, "snapshot {n}");
        if contents_before >= AUTO_COMPACTION_CONTENTS {
            assert_eq!(contents_after, 1, "snapshot {n}: not compacted");
            compactions += 1;
        } else {
            assert_eq!(contents_after, contents_before + 1, "snapshot {n}");
        }
        assert!(contents_after <= AUTO_COMPACTION_CONTENTS);
        let deleted = deleted.as_deref().unwrap_or("none");
        assert!(!after.contains_key(deleted), "{deleted} came back");
    }
    // 40 runs: the 16th content triggers the first compaction, then every 16th run again.
    assert!(compactions >= 2, "{compactions} compactions");
    // The CLI lists every snapshot (39 written, 1 deleted) from the compacted contents.
    let list = run_ok(arkiv(&repo_dir, PW).args(["snapshot", "list", "--all", "--json"]));
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 38, "{list}");
    // And verify finds nothing wrong: the replaced contents are deleted, not missing.
    let out = run(arkiv(&repo_dir, PW).args(["verify"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn one_handle_compacts_once_however_many_snapshots_it_takes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (repo_dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    create_repo(&repo_dir, PW);
    arkiv_tests::mover::small_tree(&src, 1);
    let snap = |repo: &arkiv_engine::Repository, n: u32| {
        let source = SourceInfo {
            host: "h".into(),
            user_name: format!("u{n}"),
            path: "/src".into(),
        };
        rt.block_on(snapshot_directory(
            repo,
            &src,
            None,
            UploadOptions::new(source),
            Arc::new(UploadProgress::default()),
        ))
        .unwrap();
    };
    // One handle (its index view never changes): each snapshot adds a content, none compacts
    // the ones it cannot see.
    let first = engine_open(&rt, &repo_dir, PW);
    let start = first.manifest_contents().unwrap().len();
    for n in 0..AUTO_COMPACTION_CONTENTS as u32 {
        snap(&first, n);
    }
    let fresh = engine_open(&rt, &repo_dir, PW);
    let before = manifests(&rt, &fresh);
    assert_eq!(
        fresh.manifest_contents().unwrap().len(),
        start + AUTO_COMPACTION_CONTENTS
    );
    // A handle that sees 16 or more compacts with its first snapshot only: the contents it
    // wrote later are its own, one each.
    for n in 100..105 {
        snap(&fresh, n);
    }
    let after_repo = engine_open(&rt, &repo_dir, PW);
    let after = manifests(&rt, &after_repo);
    assert_eq!(after_repo.manifest_contents().unwrap().len(), 5);
    assert_eq!(after.len(), before.len() + 5);
    assert!(before.keys().all(|k| after.get(k) == before.get(k)));
}
