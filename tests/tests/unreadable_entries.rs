//! Scenario: unreadable files and directories are recorded in the directory summary the way
//! kopia records them (fatal errors, sorted failed entries); the snapshot completes, the
//! summary and the exit code (9) say so, and the readable rest restores.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use arkiv_tests::*;
use serde_json::Value;

const PW: &str = "unreadable-password";
const NOBODY: u32 = 65534;

#[test]
fn unreadable_file_and_directory_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("ok")).unwrap();
    std::fs::create_dir_all(src.join("locked-dir")).unwrap();
    std::fs::write(src.join("ok/fine.txt"), b"fine\n").unwrap();
    std::fs::write(src.join("locked-dir/inside.txt"), b"hidden\n").unwrap();
    std::fs::write(src.join("secret.txt"), b"secret\n").unwrap();
    // a FIFO is skipped silently, as kopia ignores unknown entry types by default
    nix::unistd::mkfifo(
        &src.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let as_root = nix::unistd::geteuid().is_root();
    if as_root {
        // root reads everything: run arkiv as nobody so permissions apply
        for p in [
            tmp.path().to_path_buf(),
            src.clone(),
            src.join("ok"),
            src.join("locked-dir"),
        ] {
            std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        for p in ["ok/fine.txt", "secret.txt", "locked-dir/inside.txt"] {
            std::os::unix::fs::chown(src.join(p), Some(NOBODY), Some(NOBODY)).unwrap();
        }
    }
    let as_user = |cmd: &mut std::process::Command| {
        if as_root {
            cmd.uid(NOBODY).gid(NOBODY);
        }
    };
    let mut create = arkiv(&repo, PW);
    create.args(["repository", "create"]);
    as_user(&mut create);
    run_ok(&mut create);
    std::fs::set_permissions(
        src.join("secret.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(
        src.join("locked-dir"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();

    let mut snap = arkiv(&repo, PW);
    snap.args(["snapshot", "create"]).arg(&src).arg("--json");
    as_user(&mut snap);
    let out = run(&mut snap);
    std::fs::set_permissions(
        src.join("locked-dir"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["errors"], 2, "{summary}");
    assert_eq!(summary["files"], 1, "only ok/fine.txt is in the snapshot");

    let mut show = arkiv(&repo, PW);
    show.args(["show", summary["rootObject"].as_str().unwrap()]);
    let root: Value = serde_json::from_slice(&run_ok(&mut show)).unwrap();
    let summ = &root["summary"];
    assert_eq!(summ["numFailed"], 2, "{summ}");
    let errors = summ["errors"].as_array().unwrap();
    let paths: Vec<&str> = errors.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["locked-dir", "secret.txt"], "sorted by path");
    assert!(
        errors[1]["error"]
            .as_str()
            .unwrap()
            .ends_with("permission denied"),
        "{errors:?}"
    );
    let names: Vec<&str> = root["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ok"],
        "unreadable entries and the FIFO are not listed"
    );

    let restored = tmp.path().join("restored");
    let mut restore = arkiv(&repo, PW);
    restore.args(["restore", "latest"]).arg(&restored);
    run_ok(&mut restore);
    assert_eq!(
        std::fs::read(restored.join("ok/fine.txt")).unwrap(),
        b"fine\n"
    );
}
