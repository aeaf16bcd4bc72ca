//! Scenario (issue 14, finding 4): a crafted repository whose directory listing names itself
//! as a subdirectory. Before, `ls -r` never ended and restore nested directories until the
//! path was too long. Now every walk (ls, restore, GC mark, a backup's previous-tree walk,
//! verify) names the cycle as corrupt data (exit 5) and ends.

use arkiv_format::ids::{ContentId, ObjectId};
use arkiv_format::snapshot::{DirManifest, EntryType};
use arkiv_tests::*;

const PW: &str = "cycle-pw";
const CORRUPT: i32 = 5;

fn cli(repo: &std::path::Path) -> std::process::Command {
    let mut c = arkiv(repo, PW);
    c.env("ARKIV_CACHE_DIR", "none").args([
        "--override-username",
        "tester",
        "--override-hostname",
        "testhost",
    ]);
    c
}

#[test]
fn a_directory_that_contains_itself_is_named_corrupt_everywhere() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"hello").unwrap();
    std::fs::write(src.join("sub/b.txt"), b"world").unwrap();
    let repo = work.path().join("repo");
    create_repo(&repo, PW);
    snapshot_json(&repo, PW, &src, &[]);

    // Craft: a listing stored under a chosen content ID X, holding a directory entry whose
    // object is X itself; a snapshot whose root is X.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = engine_open(&rt, &repo, PW);
    let snap = rt.block_on(r.snapshots()).unwrap().remove(0);
    let root = snap.manifest.root_entry.clone().unwrap();
    let listing = rt.block_on(r.read_dir(&root.object)).unwrap();
    let x = ContentId::from_hash(Some(b'k'), &[0x42; 16]).unwrap();
    let mut entries = listing.entries.clone();
    let sub = entries
        .iter_mut()
        .find(|e| e.entry_type == EntryType::Directory)
        .unwrap();
    sub.object = ObjectId::direct(x);
    let crafted = DirManifest {
        entries,
        summary: listing.summary.clone(),
    }
    .encode()
    .unwrap();
    let cw = arkiv_engine::content::writer::ContentWriter::new(
        r.clone(),
        rt.handle().clone(),
        "tester",
        "testhost",
    )
    .unwrap();
    cw.write_content_with_id(x, &crafted, None).unwrap();
    cw.flush().unwrap();
    drop(cw);
    let r = engine_open(&rt, &repo, PW);
    let mut manifest = snap.manifest.clone();
    // Later than the real snapshot: the next backup of this source takes it as previous.
    manifest.start_time += chrono::TimeDelta::seconds(1);
    manifest.end_time += chrono::TimeDelta::seconds(1);
    let mut new_root = root.clone();
    new_root.object = ObjectId::direct(x);
    manifest.root_entry = Some(new_root);
    let id = engine_put_snapshot(&rt, &r, &manifest);

    let expect_cycle_with = |mut cmd: std::process::Command, args: &[&str]| {
        let o = run(cmd.args(args));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(CORRUPT), "{args:?}: {err}");
        assert!(err.contains("directory cycle"), "{args:?}: {err}");
        assert!(
            o.stdout.len() < 100_000,
            "{args:?}: {} bytes out",
            o.stdout.len()
        );
    };
    let expect_cycle = |args: &[&str]| expect_cycle_with(cli(&repo), args);
    expect_cycle(&["ls", "-r", &id]);
    let target = work.path().join("restored");
    expect_cycle(&["restore", &id, target.to_str().unwrap()]);
    expect_cycle(&["maintenance", "run", "--full", "--safety", "none"]);
    // The next backup walks the previous tree along the source tree: named, not trusted.
    // (As the same user and host as the first snapshot, so the crafted one is its previous.)
    expect_cycle_with(
        arkiv(&repo, PW),
        &["snapshot", "create", src.to_str().unwrap()],
    );
    // verify re-hashes what it reads, so it stops at the crafted listing (its bytes are not
    // what X names) — and must end, with exit 5.
    let o = run(cli(&repo).args(["verify"]));
    assert_eq!(
        o.status.code(),
        Some(CORRUPT),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
