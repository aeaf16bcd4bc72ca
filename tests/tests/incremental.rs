//! Scenario: an unchanged second snapshot writes no new data pack (only the `q` pack holding
//! its manifest); after changing about 1% of the data, only the new contents are written.

use arkiv_tests::*;

const PW: &str = "incremental-password";

fn data_pack_count(repo: &std::path::Path) -> usize {
    blob_files(repo, "p").len()
}

#[test]
fn unchanged_and_one_percent_change() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("db")).unwrap();
    // 40 MiB of incompressible data in 10 files, plus small files
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut rand_bytes = |n: usize| {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(n);
        v
    };
    for i in 0..10 {
        std::fs::write(src.join(format!("db/blob-{i}.bin")), rand_bytes(4 << 20)).unwrap();
    }
    for i in 0..200 {
        std::fs::write(src.join(format!("cfg-{i}.txt")), format!("config {i}\n")).unwrap();
    }
    create_repo(&repo, PW);
    let first = snapshot_json(&repo, PW, &src, &[]);
    assert_eq!(first["hashedFiles"], 210);
    let packs_after_first = data_pack_count(&repo);
    let q_after_first = blob_files(&repo, "q").len();

    // unchanged: no file is read again, no data pack is written
    let second = snapshot_json(&repo, PW, &src, &[]);
    assert_eq!(second["hashedFiles"], 0, "{second}");
    assert_eq!(second["cachedFiles"], 210);
    assert_eq!(second["rootObject"], first["rootObject"]);
    assert_eq!(data_pack_count(&repo), packs_after_first, "no new p pack");
    assert_eq!(
        blob_files(&repo, "q").len(),
        q_after_first + 1,
        "one q pack: the manifest"
    );

    // change ~1%: 400 KiB inside one 4 MiB file (one chunk's worth) and two small files
    let path = src.join("db/blob-3.bin");
    let mut data = std::fs::read(&path).unwrap();
    let patch = rand_bytes(400 << 10);
    data[1 << 20..(1 << 20) + patch.len()].copy_from_slice(&patch);
    std::fs::write(&path, data).unwrap();
    std::fs::write(src.join("cfg-7.txt"), "changed\n").unwrap();
    std::fs::write(src.join("cfg-8.txt"), "changed too\n").unwrap();
    let third = snapshot_json(&repo, PW, &src, &[]);
    assert_eq!(third["hashedFiles"], 3, "{third}");
    assert_eq!(third["cachedFiles"], 207);
    // only the rewritten file's new chunk(s) and the small files' contents are new: at most
    // one 4 MiB file plus metadata, far from the 40 MiB total
    let new_bytes = third["newBytes"].as_u64().unwrap();
    assert!(
        new_bytes <= (4 << 20) + (64 << 10),
        "wrote {new_bytes} new bytes"
    );
    assert!(
        new_bytes >= 400 << 10,
        "the changed region must be written ({new_bytes})"
    );
    run_ok(arkiv(&repo, PW).args(["verify", "--verify-files-percent", "100"]));
    let restored = tmp.path().join("restored");
    run_ok(arkiv(&repo, PW).args(["restore", "latest"]).arg(&restored));
    assert_eq!(tree_manifest(&restored), tree_manifest(&src));
}

/// Issue 11, acceptance 4: with ignore rules, a `.kopiaignore` and a size limit in force, an
/// unchanged second snapshot still reads no file again, keeps the same root object and leaves
/// out exactly what the first one left out.
#[test]
fn unchanged_with_ignore_rules_stays_incremental() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("src");
    for d in ["app/cache", "app/logs", "media", "keep"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    for i in 0..30 {
        std::fs::write(src.join(format!("keep/f{i}.txt")), format!("kept {i}\n")).unwrap();
        std::fs::write(src.join(format!("keep/f{i}.tmp")), "scratch").unwrap();
        std::fs::write(src.join(format!("app/cache/c{i}")), "cached").unwrap();
        std::fs::write(src.join(format!("app/logs/l{i}.log")), "log line\n").unwrap();
    }
    std::fs::write(src.join("app/.kopiaignore"), "logs/\n").unwrap();
    std::fs::write(src.join("media/big.bin"), vec![7u8; 300_000]).unwrap();
    std::fs::write(src.join("media/small.bin"), vec![7u8; 1000]).unwrap();
    create_repo(&repo, PW);
    run_ok(arkiv(&repo, PW).args([
        "policy",
        "set",
        "--global",
        "--add-ignore",
        "*.tmp",
        "--add-ignore",
        "cache/",
        "--max-file-size",
        "100000",
    ]));
    let first = snapshot_json(&repo, PW, &src, &[]);
    // kept: 30 keep/*.txt, app/.kopiaignore, media/small.bin
    assert_eq!(first["hashedFiles"], 32, "{first}");
    let second = snapshot_json(&repo, PW, &src, &[]);
    assert_eq!(second["hashedFiles"], 0, "{second}");
    assert_eq!(second["cachedFiles"], 32, "{second}");
    assert_eq!(second["rootObject"], first["rootObject"]);
    assert_eq!(second["excluded"], first["excluded"]);
    let excluded = first["excluded"].to_string();
    for needle in ["keep/f0.tmp", "app/cache", "app/logs", "media/big.bin"] {
        assert!(excluded.contains(needle), "{needle} not in {excluded}");
    }
    assert!(!excluded.contains("small.bin"), "{excluded}");
}
