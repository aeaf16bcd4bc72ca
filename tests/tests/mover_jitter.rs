//! Scenario: start jitter (issue 17), set through `KOPIA_MANUAL_CONFIG`'s `arkiv` section as
//! VolSync passes it: the delay is logged with its deterministic spread (the same for the
//! same identity on every run) before anything touches the repository, and a SIGTERM during
//! the wait ends the run at once with exit 143, nothing created.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use arkiv_tests::mover::{Scene, mover_cmd, parse_output, small_tree, with};

/// Starts a backup with a long jitter, reads up to the jitter line, sends SIGTERM.
fn jitter_line_then_sigterm(env: &std::collections::BTreeMap<String, String>) -> (String, i32) {
    let mut child = mover_cmd(&["backup"], env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let jitter = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "mover ended early:\n{seen}"
        );
        seen.push_str(&line);
        if line.starts_with("INFO: start jitter:") {
            break line;
        }
    };
    let sent = Instant::now();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    // The wait is at least 10 minutes; ending long before that shows it was cancelled.
    assert!(
        sent.elapsed() < Duration::from_secs(60),
        "stop took too long"
    );
    let out = std::process::Output {
        status,
        stdout: format!("{seen}{rest}").into_bytes(),
        stderr: err.into_bytes(),
    };
    let run = parse_output(&out);
    (jitter, run.code)
}

#[test]
fn jitter_is_logged_deterministic_and_cancellable() {
    let s = Scene::new();
    small_tree(&s.data, 1);
    let env = with(
        &s.backup_env(),
        &[(
            "KOPIA_MANUAL_CONFIG",
            r#"{"arkiv":{"jitter":{"maxDelaySeconds":600,"spreadSeconds":3600}}}"#,
        )],
    );
    let (line, code) = jitter_line_then_sigterm(&env);
    assert_eq!(code, 143, "{line}");
    assert!(line.contains("identity app@media:/data"), "{line}");
    assert!(!s.repo.exists(), "nothing created before the jitter ended");

    // The spread part is the same on the next run (the random part differs).
    let spread = |l: &str| {
        l.split(" spread of ")
            .next()
            .and_then(|h| h.rsplit('(').next())
            .unwrap()
            .to_owned()
    };
    let (again, code) = jitter_line_then_sigterm(&env);
    assert_eq!(code, 143);
    assert_eq!(spread(&line), spread(&again), "{line}\n{again}");
    // At least 600 s of spread window + up to 600 s random: the delay is ≥ the spread part.
    let secs = |l: &str| -> f64 {
        l.split("waiting ")
            .nth(1)
            .and_then(|r| r.split('s').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let fixed: f64 = spread(&line).trim_end_matches('s').parse().unwrap();
    assert!(secs(&line) >= fixed && fixed < 3600.0, "{line}");
}
