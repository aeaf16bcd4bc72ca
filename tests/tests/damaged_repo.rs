//! Scenario: bad input gives one clear line and the documented exit code, never a panic —
//! wrong password, missing repository, a deleted pack, a truncated pack, a flipped bit in an
//! index blob and in a pack (all on temp copies of fixtures/repo-a).

use std::path::{Path, PathBuf};
use std::process::Output;

use arkiv_tests::*;

/// Corruption must be found on fresh reads: these runs use no local cache.
fn uncached(repo: &Path, password: &str) -> std::process::Command {
    let mut c = arkiv(repo, password);
    c.env("ARKIV_CACHE_DIR", "none");
    c
}

// Exit codes documented in the README (mover/src/exit.rs).
const NOT_FOUND: i32 = 3;
const AUTH: i32 = 4;
const CORRUPT: i32 = 5;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn blob_file(repo: &Path, prefix: &str) -> PathBuf {
    // find the .f file of the first blob whose ID starts with prefix
    let mut found = Vec::new();
    for e in walk(repo) {
        let rel = e
            .strip_prefix(repo)
            .unwrap()
            .to_string_lossy()
            .replace('/', "");
        if rel.starts_with(prefix) && rel.ends_with(".f") {
            found.push(e);
        }
    }
    found.sort();
    found
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no blob with prefix {prefix}"))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn restore_all(repo: &Path) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    run(uncached(repo, FIXTURE_PASSWORD)
        .args(["restore", "bd35e5981801e93285ddc62a7548805e"])
        .arg(tmp.path().join("t")))
}

fn one_error_line(o: &Output) -> String {
    let s = stderr(o);
    let lines: Vec<&str> = s
        .lines()
        .filter(|l| l.starts_with("arkiv: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {s}");
    lines[0].to_owned()
}

#[test]
fn wrong_password() {
    let o = run(arkiv(&fixtures_dir().join("repo-a"), "not-the-password")
        .args(["snapshot", "list", "--all"]));
    assert_eq!(o.status.code(), Some(AUTH), "{}", stderr(&o));
    let line = one_error_line(&o);
    assert!(line.contains("invalid repository password"), "{line}");
    assert_fixtures_unchanged();
}

#[test]
fn missing_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let o =
        run(arkiv(&tmp.path().join("nothing-here"), FIXTURE_PASSWORD).args(["snapshot", "list"]));
    assert_eq!(o.status.code(), Some(NOT_FOUND), "{}", stderr(&o));
    assert!(one_error_line(&o).contains("repository not found"));
    // an empty directory is not a repository either
    let o = run(arkiv(tmp.path(), FIXTURE_PASSWORD).args(["snapshot", "list"]));
    assert_eq!(o.status.code(), Some(NOT_FOUND), "{}", stderr(&o));
    assert!(one_error_line(&o).contains("kopia.repository"));
}

#[test]
fn deleted_pack() {
    let (_t, repo) = fixture_copy("repo-a");
    // the data pack of snapshot 1 (holds random-12MiB.bin's first chunks etc.)
    std::fs::remove_file(blob_file(&repo, "pb5b0c135d66ebdba72ae99a6bc169db1")).unwrap();
    let o = restore_all(&repo);
    assert_eq!(o.status.code(), Some(CORRUPT), "{}", stderr(&o));
    let line = one_error_line(&o);
    assert!(
        line.contains("pb5b0c135d66ebdba72ae99a6bc169db1") && line.contains("missing"),
        "{line}"
    );
    let o = run(uncached(&repo, FIXTURE_PASSWORD).args(["verify"]));
    assert_eq!(o.status.code(), Some(CORRUPT), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing pack blob pb5b0c135d66ebdba72ae99a6bc169db1"));
}

#[test]
fn truncated_pack() {
    let (_t, repo) = fixture_copy("repo-a");
    let f = blob_file(&repo, "pb5b0c135d66ebdba72ae99a6bc169db1");
    let len = std::fs::metadata(&f).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_len(len / 2).unwrap();
    let o = restore_all(&repo);
    assert_eq!(o.status.code(), Some(CORRUPT), "{}", stderr(&o));
    let line = one_error_line(&o);
    assert!(line.contains("truncated"), "{line}");
    let o = run(uncached(&repo, FIXTURE_PASSWORD).args(["verify"]));
    assert_eq!(o.status.code(), Some(CORRUPT));
    assert!(stderr(&o).contains("truncated pack"), "{}", stderr(&o));
}

fn flip_bit(path: &Path, offset_from_start: usize) {
    let mut data = std::fs::read(path).unwrap();
    let i = offset_from_start.min(data.len() - 1);
    data[i] ^= 0x10;
    std::fs::write(path, data).unwrap();
}

#[test]
fn flipped_bit_in_index_blob() {
    let (_t, repo) = fixture_copy("repo-a");
    let f = blob_file(&repo, "xn0_c5a5a85fd68f8f14d6f1c1899cf4d0ee");
    flip_bit(&f, 100);
    let o = run(uncached(&repo, FIXTURE_PASSWORD).args(["snapshot", "list", "--all"]));
    assert_eq!(o.status.code(), Some(CORRUPT), "{}", stderr(&o));
    let line = one_error_line(&o);
    assert!(
        line.contains("xn0_c5a5a85fd68f8f14d6f1c1899cf4d0ee") && line.contains("decryption failed"),
        "{line}"
    );
}

#[test]
fn flipped_bit_in_pack() {
    let (_t, repo) = fixture_copy("repo-a");
    let f = blob_file(&repo, "pb5b0c135d66ebdba72ae99a6bc169db1");
    // inside the first content payload (after the 32-byte preamble)
    flip_bit(&f, 200);
    let o = restore_all(&repo);
    assert_eq!(o.status.code(), Some(CORRUPT), "{}", stderr(&o));
    let line = one_error_line(&o);
    assert!(
        line.contains("pb5b0c135d66ebdba72ae99a6bc169db1") && line.contains("content"),
        "{line}"
    );
    let o =
        run(uncached(&repo, FIXTURE_PASSWORD).args(["verify", "--verify-files-percent", "100"]));
    assert_eq!(o.status.code(), Some(CORRUPT), "{}", stderr(&o));
}

/// Issue 14, finding 1: a zero-length (or short) metadata pack — a power loss, a truncated
/// upload — panicked every command (`min > max` in the metadata pack cache). Each command
/// that needs the pack must fail with exit 5 naming it; none may panic or exit 0 with a
/// wrong answer, and verify must report it.
#[test]
fn zero_length_and_short_metadata_packs() {
    let q_packs: Vec<String> = walk(&fixtures_dir().join("repo-a"))
        .into_iter()
        .filter_map(|p| {
            let rel = p
                .strip_prefix(fixtures_dir().join("repo-a"))
                .unwrap()
                .to_string_lossy()
                .replace('/', "");
            rel.strip_prefix('q')
                .and_then(|r| r.strip_suffix(".f"))
                .map(|r| format!("q{r}"))
        })
        .collect();
    assert_eq!(q_packs.len(), 4, "{q_packs:?}");
    for (i, q) in q_packs.iter().enumerate() {
        let (_t, repo) = fixture_copy("repo-a");
        let f = blob_file(&repo, q);
        // zero length for some, cut short for the others
        let new_len = if i % 2 == 0 { 0 } else { 40 };
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .unwrap()
            .set_len(new_len)
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("t");
        let commands: Vec<Vec<String>> = vec![
            vec!["snapshot".into(), "list".into(), "--all".into()],
            vec![
                "ls".into(),
                "-r".into(),
                "bd35e5981801e93285ddc62a7548805e".into(),
            ],
            vec![
                "restore".into(),
                "bd35e5981801e93285ddc62a7548805e".into(),
                target.to_string_lossy().into_owned(),
            ],
            vec!["verify".into()],
        ];
        let mut failed = 0;
        for args in &commands {
            let o = run(uncached(&repo, FIXTURE_PASSWORD).args(args));
            let err = stderr(&o);
            assert!(!err.contains("panicked"), "{q} {args:?}: {err}");
            match o.status.code() {
                Some(0) => {}
                Some(CORRUPT) => {
                    failed += 1;
                    let line = one_error_line(&o);
                    let verify = args[0] == "verify";
                    assert!(verify || line.contains(q.as_str()), "{q} {args:?}: {line}");
                }
                other => panic!("{q} {args:?}: exit {other:?}: {err}"),
            }
            if args[0] == "verify" {
                assert_eq!(o.status.code(), Some(CORRUPT), "{q}: verify: {err}");
                assert!(
                    err.contains(q.as_str()),
                    "{q}: verify does not name it: {err}"
                );
            }
        }
        assert!(
            failed >= 2,
            "{q}: only {failed} command(s) noticed the damage"
        );
    }
}
