//! Scenario: which entries a snapshot keeps under ignore rules, `.kopiaignore` files, size
//! limits and nested path policies. The table is built from the cases of kopia's own
//! `fs/ignorefs/ignorefs_test.go` (its trees, rules and expected ignored paths; file sizes
//! scaled down, keeping "one byte under the limit" and "at the limit + 1"), run through arkiv's
//! real upload into an in-memory repository. A property test then checks, on random trees and
//! rules, that no listing ever holds an entry its effective rules exclude.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use arkiv_engine::Repository;
use arkiv_engine::blob::memory::MemoryStorage;
use arkiv_engine::clock::SystemClock;
use arkiv_engine::initialize::{CreateOptions, create_repository};
use arkiv_engine::policy::{PolicyTarget, set_policy};
use arkiv_engine::snapshot::upload::{UploadOptions, UploadProgress, snapshot_directory};
use arkiv_format::policy::FilesPolicy;
use arkiv_format::snapshot::{EntryType, SourceInfo};

/// kopia's `tooLargeFileContents` length, scaled down.
const LARGE: usize = 5000;

fn source(path: &str) -> SourceInfo {
    SourceInfo {
        host: "h".into(),
        user_name: "u".into(),
        path: path.into(),
    }
}

async fn repo() -> Repository {
    let storage = Arc::new(MemoryStorage::new(Arc::new(SystemClock)));
    create_repository(
        storage,
        "pw",
        &CreateOptions::new("u", "h"),
        arkiv_engine::OpenOptions::default(),
    )
    .await
    .unwrap()
}

async fn set_files(repo: &Repository, path: &str, f: FilesPolicy) {
    set_policy(
        repo,
        &PolicyTarget::Source(source(path)),
        "u",
        "h",
        move |p| p.set_files_policy(&f).unwrap(),
    )
    .await
    .unwrap();
}

/// `./a`, `./d/` … of everything the snapshot of `dir` (as `u@h:/src`) holds.
async fn listing(repo: &mut Repository, dir: &Path) -> BTreeSet<String> {
    let done = snapshot_directory(
        repo,
        dir,
        None,
        UploadOptions::new(source("/src")),
        Arc::new(UploadProgress::default()),
    )
    .await
    .unwrap();
    // A handle sees the contents it wrote once its index set is refreshed.
    repo.refresh().await.unwrap();
    let root = done.manifest.root_entry.unwrap().object;
    let mut out = BTreeSet::new();
    let mut stack = vec![(".".to_owned(), root)];
    while let Some((prefix, oid)) = stack.pop() {
        for e in repo.read_dir(&oid).await.unwrap().entries {
            let p = format!("{prefix}/{}", e.name);
            if e.entry_type == EntryType::Directory {
                out.insert(format!("{p}/"));
                stack.push((p, e.object));
            } else {
                out.insert(p);
            }
        }
    }
    out
}

fn write(root: &Path, rel: &str, body: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// kopia's `setupFilesystem` (devices left out: one-filesystem is not in this table).
fn default_tree(root: &Path) -> BTreeSet<String> {
    write(root, "file1", b"dummy");
    write(root, "file2", b"dummy");
    write(root, "file3", &vec![b'x'; LARGE - 1]);
    write(root, "ignored-by-rule", b"dummy");
    write(root, "largefile1", &vec![b'y'; LARGE]);
    write(root, "bin/some-bin", b"dummy");
    write(root, "pkg/some-pkg", b"dummy");
    write(root, "src/some-src/f1", b"dummy");
    [
        "./file1",
        "./file2",
        "./file3",
        "./ignored-by-rule",
        "./largefile1",
        "./bin/",
        "./bin/some-bin",
        "./pkg/",
        "./pkg/some-pkg",
        "./src/",
        "./src/some-src/",
        "./src/some-src/f1",
    ]
    .map(str::to_owned)
    .into()
}

/// kopia's `defaultPolicy` of the test: `.kopiaignore`, `*-by-rule`, a size limit one byte
/// under the large file.
fn default_policy() -> FilesPolicy {
    FilesPolicy {
        ignore_rules: vec!["*-by-rule".into()],
        dot_ignore_files: vec![".kopiaignore".into()],
        max_file_size: i64::try_from(LARGE).unwrap() - 1,
        ..FilesPolicy::default()
    }
}

struct Case {
    desc: &'static str,
    /// Path policies (`/src`, `/src/src`, …) with their files sections.
    policies: Vec<(&'static str, FilesPolicy)>,
    setup: fn(&Path),
    added: &'static [&'static str],
    ignored: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let kopiaignore = |lines: &'static [&'static str]| lines.join("\n");
    let _ = kopiaignore;
    vec![
        Case {
            desc: "default policy, no dot-ignore file",
            policies: vec![("/src", default_policy())],
            setup: |_| {},
            added: &[],
            ignored: &["./ignored-by-rule", "./largefile1"],
        },
        Case {
            desc: "default policy, dot-ignore with a class",
            policies: vec![("/src", default_policy())],
            setup: |r| write(r, ".kopiaignore", b"file[12]\n"),
            added: &["./.kopiaignore"],
            ignored: &["./ignored-by-rule", "./largefile1", "./file1", "./file2"],
        },
        Case {
            desc: "default policy, dot-ignore of a directory name and a prefix",
            policies: vec![("/src", default_policy())],
            setup: |r| write(r, ".kopiaignore", b"pkg\nfile*\n"),
            added: &["./.kopiaignore"],
            ignored: &[
                "./ignored-by-rule",
                "./largefile1",
                "./file1",
                "./file2",
                "./file3",
                "./pkg/",
                "./pkg/some-pkg",
            ],
        },
        Case {
            desc: "default policy, dot-ignore with ** and a trailing slash",
            policies: vec![("/src", default_policy())],
            setup: |r| write(r, ".kopiaignore", b"file[12]\n**/some-src\nbin/\n"),
            added: &["./.kopiaignore"],
            ignored: &[
                "./ignored-by-rule",
                "./largefile1",
                "./file1",
                "./file2",
                "./bin/",
                "./bin/some-bin",
                "./src/some-src/",
                "./src/some-src/f1",
            ],
        },
        Case {
            desc: "default policy, dot-ignore is a relative symlink",
            policies: vec![("/src", default_policy())],
            setup: |r| {
                write(r, "ignoredir/kopiaignore", b"file[12]\n");
                std::os::unix::fs::symlink("./ignoredir/kopiaignore", r.join(".kopiaignore"))
                    .unwrap();
            },
            added: &["./.kopiaignore", "./ignoredir/", "./ignoredir/kopiaignore"],
            ignored: &["./ignored-by-rule", "./largefile1", "./file1", "./file2"],
        },
        Case {
            desc: "two policies, the nested one excludes files",
            policies: vec![
                ("/src", default_policy()),
                (
                    "/src/src",
                    FilesPolicy {
                        ignore_rules: vec!["some-*".into()],
                        dot_ignore_files: vec![".newignore".into()],
                        ..FilesPolicy::default()
                    },
                ),
            ],
            setup: |_| {},
            added: &[],
            ignored: &[
                "./ignored-by-rule",
                "./largefile1",
                "./src/some-src/",
                "./src/some-src/f1",
            ],
        },
        Case {
            desc: "a policy below the root only, with its own dot-ignore file",
            policies: vec![(
                "/src/src",
                FilesPolicy {
                    ignore_rules: vec!["some-*".into(), "another-*".into()],
                    dot_ignore_files: vec![".extraignore".into()],
                    ..FilesPolicy::default()
                },
            )],
            setup: |r| {
                write(r, "src/.extraignore", b"zzz\n");
                write(r, "src/yyy", b"dummy");
                write(r, "src/zzz", b"dummy");
                write(r, "src/another-yyy", b"dummy");
                write(r, "zzz", b"dummy");
            },
            added: &["./src/.extraignore", "./src/yyy", "./zzz"],
            ignored: &["./src/some-src/", "./src/some-src/f1"],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kopia_ignorefs_cases() {
    for c in cases() {
        let mut repo = repo().await;
        for (path, f) in &c.policies {
            set_files(&repo, path, f.clone()).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut want = default_tree(dir.path());
        (c.setup)(dir.path());
        want.extend(c.added.iter().map(|s| (*s).to_owned()));
        for i in c.ignored {
            assert!(want.remove(*i), "{}: {i} is not in the tree", c.desc);
        }
        let got = listing(&mut repo, dir.path()).await;
        assert_eq!(got, want, "{}", c.desc);
    }
}

mod property {
    use super::*;
    use arkiv_format::wcmatch::WildcardMatcher;
    use proptest::prelude::*;

    /// Small names so that rules hit often.
    fn name() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "ab", "x.tmp", "c.log", "cache", "d"])
            .prop_map(str::to_owned)
    }

    fn rule() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "*.tmp", "a", "/b", "cache/", "**/d", "a/b", "?b", "[ac]", "*.log", "/d/a",
        ])
        .prop_map(str::to_owned)
    }

    /// Relative paths (`a/b/x.tmp`) of files; their parents become directories.
    fn tree() -> impl Strategy<Value = Vec<Vec<String>>> {
        prop::collection::vec(prop::collection::vec(name(), 1..4), 1..12)
    }

    /// The oracle: without negations an entry is excluded when a rule matches it or one of
    /// its directories.
    fn excluded(rules: &[WildcardMatcher], path: &str, is_dir: bool) -> bool {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        (1..=parts.len()).any(|n| {
            let p = format!("/{}", parts[..n].join("/"));
            let dir = n < parts.len() || is_dir;
            rules.iter().any(|r| r.matches(&p, dir))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn listing_never_holds_an_excluded_entry(
            files in tree(),
            rules in prop::collection::vec(rule(), 0..4),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut made = BTreeSet::new();
            for parts in &files {
                let rel = parts.join("/");
                // a name cannot be both a file and a directory
                if made.iter().any(|m: &String| m.starts_with(&format!("{rel}/")) || rel.starts_with(&format!("{m}/"))) {
                    continue;
                }
                write(dir.path(), &rel, b"data");
                made.insert(rel);
            }
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let got = rt.block_on(async {
                let mut repo = repo().await;
                set_files(&repo, "/src", FilesPolicy {
                    ignore_rules: rules.clone(),
                    ..FilesPolicy::default()
                }).await;
                listing(&mut repo, dir.path()).await
            });
            let matchers: Vec<WildcardMatcher> =
                rules.iter().map(|r| WildcardMatcher::new(r, "", false).unwrap()).collect();
            for entry in &got {
                let rel = entry.trim_start_matches("./");
                let is_dir = rel.ends_with('/');
                prop_assert!(!excluded(&matchers, rel, is_dir), "{entry} kept despite {rules:?}");
            }
            // and nothing that no rule touches is lost
            for rel in &made {
                if !excluded(&matchers, rel, false) {
                    prop_assert!(got.contains(&format!("./{rel}")), "{rel} lost with {rules:?}: {got:?}");
                }
            }
        }
    }
}
