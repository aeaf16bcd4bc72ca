//! The metrics tests' tools (issue 17), installed by `.ci/metrics-tools.sh`: a real
//! Pushgateway started per test on 127.0.0.1, prometheus_client's text-format parser (Python),
//! promtool. Without them a test prints a loud SKIPPED line, except under `CI=true`, where a
//! missing tool is a failure.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The path in `var`, or `None` after a loud message; panics under `CI=true`.
pub fn tool(test: &str, var: &str) -> Option<PathBuf> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        Some(v) => Some(PathBuf::from(v)),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "{test}: {var} is not set under CI=true; scripts/test.sh must install the tools \
             with `eval \"$(bash .ci/metrics-tools.sh)\"`"
        ),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED {test}: {var} is not set (install the tools with \
                 `eval \"$(bash .ci/metrics-tools.sh)\"`) ***\n"
            );
            None
        }
    }
}

/// One parsed sample.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Sample name.
    pub name: String,
    /// Its family's type (`gauge`, `counter`, … as the parser read `# TYPE`).
    pub kind: String,
    /// Its family's help text.
    pub help: String,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parses exposition text with prometheus_client's parser (`tests/prom/parse.py`); panics
/// with the parser's error if the text is not valid.
pub fn parse(python: &Path, text: &str) -> Vec<Sample> {
    let script = crate::workspace_root().join("tests/prom/parse.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser rejected the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| Sample {
            name: s["name"].as_str().unwrap().to_owned(),
            kind: s["type"].as_str().unwrap().to_owned(),
            help: s["help"].as_str().unwrap().to_owned(),
            labels: s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect(),
            value: s["value"].as_f64().unwrap(),
        })
        .collect()
}

/// The samples named `name` whose labels include every pair of `labels`.
pub fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The one value of `name` with `labels`; panics if there is not exactly one.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `url` (with the venv's Python: the test crate has no HTTP client).
pub fn http_get(python: &Path, url: &str) -> Option<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, urllib.request\n\
             sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())",
            url,
        ])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

/// A Pushgateway on 127.0.0.1 (no persistence), ended on drop.
pub struct Pushgateway {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Pushgateway {
    /// Starts `bin` and waits until it answers (30 s).
    pub fn start(bin: &Path, python: &Path) -> Pushgateway {
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pg = Pushgateway {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let t = Instant::now();
        while http_get(python, &format!("{}/-/ready", pg.url)).is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the Pushgateway did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        pg
    }

    /// What the Pushgateway exposes (its /metrics), parsed.
    pub fn scrape(&self, python: &Path) -> Vec<Sample> {
        let text = http_get(python, &format!("{}/metrics", self.url)).unwrap();
        parse(python, &text)
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
