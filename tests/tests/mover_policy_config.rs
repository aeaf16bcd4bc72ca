//! Scenario: VolSync's `policyConfig` mounted at `KOPIA_CONFIG_PATH` (contract §6.2 step 7).
//! The global policy file's retention, compression and ignore rules take effect on the backup
//! that reads it (snapshot contents, the compressor of its file data, the kept count over
//! simulated days); its one key the shell mover does not apply (`compressionLevel`) gets
//! exactly one warning line; the repository configuration's `enableActions: false` skips the
//! hook and its `uploadSpeed` gets one warning line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use arkiv_format::compression::CompressionAlgorithm;
use arkiv_format::ids::ObjectId;
use arkiv_tests::mover::{PASSWORD, Scene, list_snapshots, run_mover, with};
use arkiv_tests::open_repo;

fn write(root: &std::path::Path, rel: &str, body: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

#[test]
fn global_policy_file_retention_compression_and_ignores() {
    let s = Scene::new();
    let text = "policy config text, compressible ".repeat(600);
    write(&s.data, "keep.txt", text.as_bytes());
    write(&s.data, "notes.tmp", b"scratch");
    write(&s.data, "build/out.o", b"object");
    write(&s.data, "sub/build/kept.txt", b"not at the root: kept");
    write(&s.data, "sub/more.tmp", b"scratch");

    let conf = s.tmp.path().join("kopia-config");
    std::fs::create_dir_all(&conf).unwrap();
    let global = conf.join("global-policy.json");
    std::fs::write(
        &global,
        r#"{
          "retention": {"keepHourly": 0, "keepDaily": 2, "keepWeekly": 0, "keepMonthly": 0,
                        "keepYearly": 0},
          "compression": {"compressor": "zstd", "compressionLevel": 3},
          "files": {"ignore": ["*.tmp", "/build/"], "ignoreCacheDirs": true}
        }"#,
    )
    .unwrap();
    let repo_config = conf.join("repository.config");
    std::fs::write(
        &repo_config,
        r#"{"enableActions": false, "uploadSpeed": 1048576}"#,
    )
    .unwrap();
    let marker = s.tmp.path().join("hook-ran");
    let hook = format!("touch {}", marker.display());
    let (conf, global, repo_config) = (
        conf.display().to_string(),
        global.display().to_string(),
        repo_config.display().to_string(),
    );

    let mut kept = Vec::new();
    for day in 1..=4 {
        let now = format!("2026-03-{day:02}T10:00:00Z");
        let env = with(
            &s.backup_env(),
            &[
                ("KOPIA_CONFIG_PATH", &conf),
                ("KOPIA_GLOBAL_POLICY_FILE", &global),
                ("KOPIA_REPOSITORY_CONFIG_FILE", &repo_config),
                ("KOPIA_BEFORE_SNAPSHOT", &hook),
                // the source's own policy keeps 1 latest; the daily count comes from the file
                ("KOPIA_RETAIN_LATEST", "1"),
                ("ARKIV_TEST_NOW", &now),
            ],
        );
        let r = run_mover(&["backup"], &env);
        r.expect_code(0);
        let warns: Vec<&str> = r
            .stdout
            .lines()
            .filter(|l| l.starts_with("WARN:"))
            .collect();
        let level: Vec<&&str> = warns
            .iter()
            .filter(|l| l.contains("global policy file"))
            .collect();
        assert_eq!(level.len(), 1, "one warning for the file: {warns:?}");
        assert!(
            level[0].contains("compression.compressionLevel not applied"),
            "{warns:?}"
        );
        let speed: Vec<&&str> = warns.iter().filter(|l| l.contains("uploadSpeed")).collect();
        assert_eq!(speed.len(), 1, "{warns:?}");
        assert_eq!(warns.len(), 2, "no other warnings: {warns:?}");
        assert!(
            r.stdout
                .contains("applied to the global policy (--keep-hourly=0 --keep-daily=2"),
            "{}",
            r.all()
        );
        assert!(r.stdout.contains("enableActions: false"), "{}", r.all());
        kept.push(
            list_snapshots(&s.repo)
                .iter()
                .filter(|j| j["source"]["userName"] == "app")
                .count(),
        );
    }
    assert!(!marker.exists(), "enableActions: false skips the hook");
    // latest 1 ∪ newest per day for 2 days (kopia's defaults would keep all 4)
    assert_eq!(kept, [1, 2, 2, 2]);

    // the last snapshot: ignore rules and compression from the file
    let snaps = list_snapshots(&s.repo);
    let last = snaps
        .iter()
        .max_by_key(|j| j["startTime"].as_str().unwrap().to_owned())
        .unwrap();
    let root: ObjectId = last["rootEntry"]["obj"].as_str().unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = open_repo(&rt, &s.repo, PASSWORD);
    let mut listing = BTreeMap::new();
    rt.block_on(async {
        let mut stack = vec![(String::new(), root)];
        while let Some((prefix, oid)) = stack.pop() {
            for e in repo.read_dir(&oid).await.unwrap().entries {
                let path = format!("{prefix}{}", e.name);
                if e.entry_type == arkiv_format::snapshot::EntryType::Directory {
                    stack.push((format!("{path}/"), e.object));
                    listing.insert(format!("{path}/"), None);
                } else {
                    let chunks = repo.object_chunks(&e.object).await.unwrap();
                    let c = chunks.first().unwrap().object.content_id();
                    let info = repo.content_info(&c).unwrap().unwrap();
                    listing.insert(path, Some(info.compression_header_id));
                }
            }
        }
    });
    let paths: Vec<&str> = listing.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        ["keep.txt", "sub/", "sub/build/", "sub/build/kept.txt"]
    );
    assert_eq!(
        listing["keep.txt"],
        Some(CompressionAlgorithm::Zstd.header_id()),
        "the file's compressor"
    );
}
