//! Scenario: the mover's local cache in `KOPIA_CACHE_DIR`. A warm re-backup serves index
//! blobs and metadata packs from the cache (the JSON line counts requests and hits); the
//! cache stays inside a tiny `KOPIA_CACHE_CAPACITY_BYTES` over many runs; an unusable cache
//! directory means one warning and an uncached run that succeeds; two movers sharing one
//! cache directory never fail; `KOPIA_FORCE_CACHE_REBUILD` empties it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use arkiv_tests::mover::{Scene, run_mover, small_tree, with};

/// Bytes of regular files under `dir`.
fn du(dir: &Path) -> u64 {
    files(dir).iter().map(|(_, len)| len).sum()
}

/// Every regular file under `dir` with its length (named in a failed size assertion).
fn files(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(files(&e.path()));
        } else {
            out.push((e.path(), m.len()));
        }
    }
    out
}

fn storage(run: &arkiv_tests::mover::MoverRun) -> &serde_json::Value {
    let s = &run.json["storage"];
    assert!(s.is_object(), "no storage object: {}", run.json);
    s
}

#[test]
fn warm_rebackup_reads_from_the_cache_and_rebuild_empties_it() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    run_mover(&["backup"], &s.backup_env()).expect_code(0);
    small_tree(&s.data, 2);
    run_mover(&["backup"], &s.backup_env()).expect_code(0);

    // Cold: no cache files yet.
    let cold = run_mover(
        &["backup"],
        &with(&s.backup_env(), &[("KOPIA_FORCE_CACHE_REBUILD", "true")]),
    );
    cold.expect_code(0);
    assert!(
        cold.stdout
            .contains("INFO: KOPIA_FORCE_CACHE_REBUILD: removed 1 local cache file(s)"),
        "{}",
        cold.stdout
    );
    let warm = run_mover(&["backup"], &s.backup_env());
    warm.expect_code(0);
    let (c, w) = (storage(&cold), storage(&warm));
    assert_eq!(w["cacheUsed"], true);
    assert!(w["cacheHits"].as_u64().unwrap() > 0, "{w}");
    assert!(
        w["gets"].as_u64().unwrap() < c["gets"].as_u64().unwrap(),
        "warm {w} vs cold {c}"
    );
    assert!(
        w["getBytes"].as_u64().unwrap() < c["getBytes"].as_u64().unwrap(),
        "warm {w} vs cold {c}"
    );

    // A restore through the same cache volume works from it too.
    let restored = run_mover(&["restore"], &s.restore_env());
    restored.expect_code(0);
    assert!(storage(&restored)["cacheHits"].as_u64().unwrap() > 0);
}

#[test]
fn a_second_restore_reads_its_data_from_the_content_cache() {
    use rand::{RngCore, SeedableRng};
    let s = Scene::new();
    small_tree(&s.data, 1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..2 {
        let mut big = vec![0u8; 2 << 20];
        rng.fill_bytes(&mut big);
        std::fs::write(s.data.join(format!("big{i}.bin")), big).unwrap();
    }
    run_mover(&["backup"], &s.backup_env()).expect_code(0);
    // VolSync's `contentCacheSizeLimitMB` (a ReplicationDestination restoring on a
    // schedule into a standby volume).
    let env = with(
        &s.restore_env(),
        &[("KOPIA_CONTENT_CACHE_SIZE_LIMIT_MB", "64")],
    );
    let first = run_mover(&["restore"], &env);
    first.expect_code(0);
    assert_eq!(
        arkiv_tests::mover::tree_digest(&s.restore),
        arkiv_tests::mover::tree_digest(&s.data)
    );
    arkiv_tests::mover::clear_dir(&s.restore);
    let second = run_mover(&["restore"], &env);
    second.expect_code(0);
    assert_eq!(
        arkiv_tests::mover::tree_digest(&s.restore),
        arkiv_tests::mover::tree_digest(&s.data)
    );
    let (a, b) = (storage(&first), storage(&second));
    println!("first restore: {a}\nsecond restore: {b}");
    let bytes = |v: &serde_json::Value| v["getBytes"].as_u64().unwrap();
    assert!(bytes(a) > 4 << 20, "first restore read only {a}");
    assert!(bytes(b) * 10 <= bytes(a), "second {b} vs first {a}");
    assert!(b["cacheHits"].as_u64().unwrap() > a["cacheHits"].as_u64().unwrap());
}

#[test]
fn unusable_cache_dir_means_one_warning_and_success() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    // A cache "directory" below a regular file can never be created, even by root.
    let file = s.tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("cache");
    let bad = bad.to_str().unwrap();
    for args in [["backup"], ["restore"]] {
        let env = if args[0] == "backup" {
            s.backup_env()
        } else {
            s.restore_env()
        };
        let run = run_mover(&args, &with(&env, &[("KOPIA_CACHE_DIR", bad)]));
        run.expect_code(0);
        let warnings: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.contains("local cache"))
            .collect();
        assert_eq!(warnings.len(), 1, "{}", run.stdout);
        assert!(
            warnings[0].starts_with("WARN: KOPIA_CACHE_DIR"),
            "{}",
            warnings[0]
        );
        assert_eq!(storage(&run)["cacheUsed"], false);
    }
    assert_eq!(
        arkiv_tests::mover::manifest_without_root(&s.data),
        arkiv_tests::mover::manifest_without_root(&s.restore)
    );
}

#[test]
fn cache_stays_within_a_tiny_capacity_over_many_runs() {
    const CAPACITY: u64 = 1 << 20;
    let s = Scene::new();
    let env = with(
        &s.backup_env(),
        &[("KOPIA_CACHE_CAPACITY_BYTES", &CAPACITY.to_string())],
    );
    let mut hits = 0;
    for run in 0..14u32 {
        // Many files with incompressible names: every run writes large new directory
        // listings (metadata packs) and index entries, which the next run reads.
        let dir = s.data.join(format!("d{}", run % 2));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..800u32 {
            let name = format!(
                "{:016x}-{run}-{i}",
                (u64::from(i) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            );
            std::fs::write(dir.join(name), format!("{run}/{i}")).unwrap();
        }
        let r = run_mover(&["backup"], &env);
        r.expect_code(0);
        hits += storage(&r)["cacheHits"].as_u64().unwrap();
        let used = du(&s.cache);
        assert!(
            used <= CAPACITY,
            "run {run}: cache uses {used} bytes: {:?}",
            files(&s.cache)
        );
    }
    assert!(hits > 0, "the cache was never used");
    // Restores also keep data contents (VolSync's automatic 20 % of the capacity): still
    // inside the capacity.
    for _ in 0..2 {
        arkiv_tests::mover::clear_dir(&s.restore);
        let r = run_mover(
            &["restore"],
            &with(
                &s.restore_env(),
                &[("KOPIA_CACHE_CAPACITY_BYTES", &CAPACITY.to_string())],
            ),
        );
        r.expect_code(0);
        let used = du(&s.cache);
        assert!(
            used <= CAPACITY,
            "restore: cache uses {used} bytes: {:?}",
            files(&s.cache)
        );
    }
    // What the runs read would not have fit: eviction kept the cache inside the limit.
    let metadata: u64 = arkiv_tests::blob_files(&s.repo, "q")
        .iter()
        .chain(arkiv_tests::blob_files(&s.repo, "x").iter())
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(metadata > CAPACITY, "only {metadata} bytes of metadata");
}

#[test]
fn two_movers_share_one_cache_dir_for_20_rounds() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    // The repository exists before the concurrent rounds (creating it is one mover's job).
    run_mover(&["backup"], &s.backup_env()).expect_code(0);
    let data2 = s.tmp.path().join("data2");
    small_tree(&data2, 2);
    let env1 = s.backup_env();
    let env2 = with(
        &s.backup_env(),
        &[
            ("DATA_DIR", data2.to_str().unwrap()),
            ("KOPIA_OVERRIDE_USERNAME", "other"),
        ],
    );
    for round in 0..20u32 {
        let spawn = |env: &std::collections::BTreeMap<String, String>| {
            arkiv_tests::mover::mover_cmd(&["backup"], env)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(&env1), spawn(&env2));
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            let run = arkiv_tests::mover::parse_output(&out);
            run.expect_code(0);
            assert!(
                !run.stdout.contains("WARN: KOPIA_CACHE_DIR"),
                "round {round}"
            );
        }
    }
    let left: Vec<_> = std::fs::read_dir(&s.cache)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
