//! Scenario: create → snapshot → restore gives an identical tree manifest (paths, types,
//! sizes, modes, nanosecond mtimes, SHA-256 of contents, symlink targets) on awkward trees.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use arkiv_tests::*;

const PW: &str = "roundtrip-password";

/// Deterministic bytes (xorshift) so failures reproduce.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn set_mtime(p: &Path, secs: i64, nanos: u32) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(secs as u64, nanos);
    std::fs::File::options()
        .write(true)
        .open(p)
        .or_else(|_| std::fs::File::open(p))
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn roundtrip(src: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    create_repo(&repo, PW);
    let summary = snapshot_json(&repo, PW, src, &["--compression", "zstd-fastest"]);
    assert_eq!(summary["errors"], 0, "{summary}");
    let target = tmp.path().join("restored");
    run_ok(
        arkiv(&repo, PW)
            .args(["restore", summary["snapshotId"].as_str().unwrap()])
            .arg(&target),
    );
    let want = tree_manifest(src);
    let got = tree_manifest(&target);
    if want != got {
        let w: Vec<&str> = want.lines().collect();
        let g: Vec<&str> = got.lines().collect();
        let diff: Vec<String> = w
            .iter()
            .filter(|l| !g.contains(l))
            .map(|l| format!("- {l}"))
            .chain(
                g.iter()
                    .filter(|l| !w.contains(l))
                    .map(|l| format!("+ {l}")),
            )
            .take(20)
            .collect();
        panic!(
            "restored tree differs from the source:\n{}",
            diff.join("\n")
        );
    }
    run_ok(arkiv(&repo, PW).args(["verify", "--verify-files-percent", "100"]));
}

#[test]
fn file_sizes_around_chunk_boundaries() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("empty-2"), b"").unwrap();
    let mut seed = 1;
    for mib in [2usize, 4, 8] {
        for delta in [-1i64, 0, 1] {
            let len = (mib << 20) as i64 + delta;
            seed += 1;
            std::fs::write(
                src.join(format!("f-{mib}MiB{delta:+}")),
                pseudo_random(len as usize, seed),
            )
            .unwrap();
        }
    }
    // zeros of exactly the max chunk size and one more
    std::fs::write(src.join("zeros-8MiB"), vec![0u8; 8 << 20]).unwrap();
    std::fs::write(src.join("zeros-8MiB+1"), vec![0u8; (8 << 20) + 1]).unwrap();
    roundtrip(&src);
}

#[test]
fn sparse_file_over_2gib() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let p = src.join("sparse.img");
    let mut f = std::fs::File::create(&p).unwrap();
    let len: u64 = (2 << 30) + (300 << 20) + 12_345; // > 2 GiB: uploaded in 2 GiB parts
    f.set_len(len).unwrap();
    for off in [
        0u64,
        1 << 30,
        (2 << 30) - 4096,
        (2 << 30) + (100 << 20),
        len - 5000,
    ] {
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(&pseudo_random(5000, off + 7)).unwrap();
    }
    drop(f);
    roundtrip(&src);
    // the restored file is sparse again (far fewer blocks than its length)
}

#[test]
fn names_links_modes_hardlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let names = [
        "with space",
        "tab\there",
        "new\nline",
        "-leading-dash",
        "<html> & \"quotes\" 'single'",
        "emoji 😀 ünïcødé 日本語",
        ".hidden",
        "trailing.",
        "back\\slash",
        "percent%20and+plus",
        "\u{2028}line-separator",
    ];
    for (i, n) in names.iter().enumerate() {
        std::fs::write(src.join(n), format!("file {i}: {n}\n")).unwrap();
    }
    let long: String = "L".repeat(255);
    std::fs::write(src.join(&long), b"longest name").unwrap();
    // symlinks: relative, to a directory, absolute, dangling, long target
    std::fs::create_dir(src.join("dir")).unwrap();
    std::fs::write(src.join("dir/inner.txt"), b"inner").unwrap();
    std::os::unix::fs::symlink("with space", src.join("link-rel")).unwrap();
    std::os::unix::fs::symlink("dir", src.join("link-dir")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("link-abs")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", src.join("link-dangling")).unwrap();
    std::os::unix::fs::symlink("x/".repeat(200), src.join("link-long")).unwrap();
    // hard links: restored as independent files with the same content
    std::fs::write(src.join("hard-a"), b"shared inode").unwrap();
    std::fs::hard_link(src.join("hard-a"), src.join("hard-b")).unwrap();
    std::fs::hard_link(src.join("hard-a"), src.join("dir/hard-c")).unwrap();
    // modes: setuid/setgid/sticky, read-only, no permissions at all
    let modes = [
        ("suid", 0o4755),
        ("sgid", 0o2755),
        ("ro", 0o444),
        ("none", 0o000),
        ("exec", 0o750),
    ];
    for (n, m) in modes {
        let p = src.join(format!("mode-{n}"));
        std::fs::write(&p, n).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    for (n, m) in [("sticky", 0o1777), ("setgid", 0o2775), ("private", 0o700)] {
        let p = src.join(format!("dirmode-{n}"));
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("f"), n).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    // empty directories, nanosecond and pre-1970 mtimes
    std::fs::create_dir_all(src.join("empty/nested-empty")).unwrap();
    set_mtime(&src.join("with space"), 1_700_000_000, 123_456_789);
    set_mtime(&src.join("dir/inner.txt"), 1, 1);
    set_mtime(&src.join("empty/nested-empty"), 1_600_000_000, 999_999_999);
    set_mtime(&src.join("dir"), 1_650_000_000, 5);
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o2775)).unwrap();
    roundtrip(&src);
}

#[test]
fn fifty_thousand_small_files_and_deep_nesting() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for d in 0..50 {
        let dir = src.join(format!("app-{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            // some duplicates across directories (dedup), most unique
            let body = if f % 10 == 0 {
                format!("shared config line {f}\n")
            } else {
                format!("app {d} file {f}\nkey = {}\n", d * 1000 + f)
            };
            std::fs::write(dir.join(format!("cfg-{f:04}.yaml")), body).unwrap();
        }
    }
    let mut deep = src.join("deep");
    for level in 0..64 {
        deep = deep.join(format!("level-{level:02}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("bottom.txt"), b"at the bottom\n").unwrap();
    roundtrip(&src);
}
