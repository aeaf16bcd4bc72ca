//! Scenario: every Kopia compressor, read from the kopia-written repo-c (verify, restore,
//! known answers per codec) and written by arkiv (`--compression NAME`, read back, with
//! kopia's header IDs in the index entries).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arkiv_format::compression::CompressionAlgorithm;
use arkiv_format::ids::ObjectId;
use arkiv_tests::*;
use sha2::{Digest, Sha256};

const PASSWORD_C: &str = "fixture-password-c";

fn repo_c() -> PathBuf {
    let p = fixtures_dir().join("repo-c");
    assert!(
        p.join("kopia.repository.f").exists(),
        "fixture repo-c missing at {}",
        p.display()
    );
    p
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixtures_dir().join("expected").join(name)).unwrap()
}

/// Every file of repo-c still has the hash recorded in `repo-c-files.sha256`.
fn assert_repo_c_unchanged() {
    let dir = fixtures_dir();
    let list = std::fs::read_to_string(dir.join("repo-c-files.sha256")).unwrap();
    let mut n = 0;
    for line in list.lines().filter(|l| !l.is_empty()) {
        let (hash, path) = line.split_once("  ").unwrap();
        let data = std::fs::read(dir.join(path)).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&data)), hash, "{path} changed");
        n += 1;
    }
    assert_eq!(n, 77, "repo-c-files.sha256 lists 77 files");
}

/// The name in a `content list` compression column (`zstd 73.4%` → `zstd`, `-` → `None`).
fn compressor_of(column: &str) -> Option<&str> {
    match column.split(' ').next().unwrap() {
        "-" => None,
        n => Some(n),
    }
}

#[test]
fn repo_c_verify_reads_every_content() {
    let out = run(arkiv(&repo_c(), PASSWORD_C).args([
        "verify",
        "--verify-files-percent",
        "100",
        "--json",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(": 0 problem(s)"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["snapshots"], 2, "{report}");
    // The 104 live data contents of `content list` (directory and manifest contents aside).
    assert_eq!(report["contents_read"], 104, "{report}");
    assert_repo_c_unchanged();
}

/// arkiv's restore equals kopia's (`repo-c.snapN.restored.manifest.txt`), except where
/// kopia is known to differ from the source (README: directory mtimes become the subtree's
/// maxTime, symlink mtimes are rounded to microseconds): there arkiv restores the source's.
#[test]
fn repo_c_restores_match_kopia() {
    for (snap, tree, kopia) in [
        (
            "3a179c0c5154e58352108022dbe73154",
            "tree-c-v1.manifest.txt",
            "repo-c.snap1.restored.manifest.txt",
        ),
        (
            "2f74ed8b97533993a347e809c4ae07c1",
            "tree-c-v2.manifest.txt",
            "repo-c.snap2.restored.manifest.txt",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("restored");
        run_ok(
            arkiv(&repo_c(), PASSWORD_C)
                .args(["restore", snap])
                .arg(&target),
        );
        let ours = parse_manifest(&tree_manifest(&target));
        let kopia = parse_manifest(&expected(kopia));
        let source = parse_manifest(&expected(tree));
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            kopia.keys().collect::<Vec<_>>(),
            "{snap}: restored paths"
        );
        let mut exact = 0;
        for (path, fields) in &ours {
            if fields[0] == "file" {
                assert_eq!(fields, &kopia[path], "{snap}: {path}");
                exact += 1;
            } else {
                assert!(
                    fields == &kopia[path] || fields == &source[path],
                    "{snap}: {path}: {fields:?} is neither kopia's {:?} nor the source's {:?}",
                    kopia[path],
                    source[path]
                );
            }
        }
        assert_eq!(exact, 97, "{snap}: stored files");
    }
    assert_repo_c_unchanged();
}

/// For every stored path of both snapshots: the index entry carries the header ID of the
/// compressor kopia reported, and the decrypted, decompressed bytes hash to the source file's
/// SHA-256 (`tree-c-vN.manifest.txt`). Every one of kopia's 18 compressors occurs.
#[test]
fn repo_c_known_answers_per_codec() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = open_repo(&rt, &repo_c(), PASSWORD_C);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (listing, tree) in [
        ("repo-c.snap1.compression.txt", "tree-c-v1.manifest.txt"),
        ("repo-c.snap2.compression.txt", "tree-c-v2.manifest.txt"),
    ] {
        let source = parse_manifest(&expected(tree));
        for line in expected(listing).lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            let (path, oid, column) = (cols[0], cols[1], cols[2]);
            let oid: ObjectId = oid.parse().unwrap();
            let info = repo
                .content_info(&oid.content_id())
                .unwrap()
                .unwrap_or_else(|| panic!("{path}: {oid} not in the index"));
            let name = compressor_of(column);
            let want_header = name.map_or(0, |n| {
                CompressionAlgorithm::from_name(n)
                    .unwrap_or_else(|| panic!("{n} is a kopia compressor"))
                    .header_id()
            });
            assert_eq!(info.compression_header_id, want_header, "{path} ({column})");
            let data = rt.block_on(repo.read_object(&oid)).unwrap();
            if let Some(p) = path.strip_suffix('/').or((path == ".").then_some(".")) {
                // a directory object: JSON that lists the stored entries
                rt.block_on(repo.read_dir(&oid)).unwrap();
                assert_eq!(source[p][0], "dir", "{path}");
                assert!(
                    data.starts_with(b"{\"stream\":\"kopia:directory\""),
                    "{path}"
                );
            } else {
                let fields = &source[path];
                let want = match fields[0].as_str() {
                    "file" => fields[4].clone(),
                    // a symlink's object is its target
                    _ => hex::encode(Sha256::digest(
                        fields[4].strip_prefix("-> ").unwrap().as_bytes(),
                    )),
                };
                assert_eq!(
                    hex::encode(Sha256::digest(&data)),
                    want,
                    "{path} ({column})"
                );
                assert_eq!(data.len().to_string(), fields[1], "{path}");
            }
            *seen.entry(name.unwrap_or("-").to_owned()).or_default() += 1;
        }
    }
    let names: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
    for alg in CompressionAlgorithm::all() {
        assert!(
            names.contains(alg.name()),
            "{} not in repo-c: {seen:?}",
            alg.name()
        );
    }
    assert!(names.contains("-"));
    assert_repo_c_unchanged();
}

/// Files whose contents are unique to `tag` (so no content is shared between compressors):
/// compressible text, a binary part and a small file.
fn write_tree(dir: &Path, tag: &str) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let text: String = (0..4000)
        .map(|i| format!("{tag} line {i}: the quick brown fox {}\n", i % 17))
        .collect();
    std::fs::write(dir.join("text.txt"), text).unwrap();
    let mut x = tag
        .bytes()
        .fold(0x9e37_79b9u32, |a, b| a.rotate_left(5) ^ u32::from(b));
    let mixed: Vec<u8> = (0..300_000u32)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if (i / 4096) % 2 == 0 {
                x as u8
            } else {
                b'a' + (i % 7) as u8
            }
        })
        .collect();
    std::fs::write(dir.join("sub/mixed.bin"), mixed).unwrap();
    std::fs::write(
        dir.join("sub/small.txt"),
        format!("{tag} {tag} {tag} {tag}\n"),
    )
    .unwrap();
}

/// `arkiv snapshot create --compression NAME` for every name: the data contents' index
/// entries carry kopia's header ID (FORMAT.md §6), the snapshot restores byte-exact and
/// verifies. `lz4` (read only) is written as zstd-fastest with one warning line.
#[test]
fn round_trip_every_compressor() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    create_repo(&repo, "pw");
    let mut written = Vec::new();
    for alg in CompressionAlgorithm::all() {
        let name = alg.name();
        let src = tmp.path().join("src").join(name);
        write_tree(&src, name);
        let out = run(arkiv(&repo, "pw")
            .args(["snapshot", "create"])
            .arg(&src)
            .args(["--json", "--compression", name]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("using zstd-fastest"))
            .collect();
        let want = if alg.is_supported() {
            assert!(warnings.is_empty(), "{name}: {stderr}");
            alg
        } else {
            assert_eq!(warnings.len(), 1, "{name}: one warning line: {stderr}");
            assert!(warnings[0].contains("--compression lz4"), "{stderr}");
            CompressionAlgorithm::ZstdFastest
        };
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let root: ObjectId = summary["rootObject"].as_str().unwrap().parse().unwrap();
        let id = summary["snapshotId"].as_str().unwrap().to_owned();
        written.push((name, src, root, id, want));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = open_repo(&rt, &repo, "pw");
    for (name, src, root, id, want) in &written {
        // The two compressible files (text.txt, sub/mixed.bin) are stored compressed with the
        // chosen compressor; directory objects use the metadata compressor, zstd-fastest.
        let mut headers = BTreeMap::new();
        rt.block_on(async {
            let top = engine.read_dir(root).await.unwrap();
            let sub = top.entries.iter().find(|e| e.name == "sub").unwrap();
            let sub = engine.read_dir(&sub.object).await.unwrap();
            for e in top.entries.iter().chain(sub.entries.iter()) {
                if e.name == "sub" {
                    continue;
                }
                for c in engine.object_chunks(&e.object).await.unwrap() {
                    let info = engine
                        .content_info(&c.object.content_id())
                        .unwrap()
                        .unwrap();
                    headers.insert(e.name.clone(), info.compression_header_id);
                }
            }
        });
        assert_eq!(
            headers["text.txt"],
            want.header_id(),
            "{name}: {headers:x?}"
        );
        assert_eq!(
            headers["mixed.bin"],
            want.header_id(),
            "{name}: {headers:x?}"
        );
        let target = tmp.path().join("restored").join(name);
        run_ok(arkiv(&repo, "pw").args(["restore", id]).arg(&target));
        for f in ["text.txt", "sub/mixed.bin", "sub/small.txt"] {
            assert_eq!(
                std::fs::read(target.join(f)).unwrap(),
                std::fs::read(src.join(f)).unwrap(),
                "{name}: {f}"
            );
        }
    }
    let out = run(arkiv(&repo, "pw").args(["verify", "--verify-files-percent", "100"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains(": 0 problem(s)"),
        "{stderr}"
    );
}
