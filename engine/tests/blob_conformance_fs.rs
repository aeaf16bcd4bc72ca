//! The blob-storage conformance suite against the filesystem backend.
//!
//! Also checks the kopia layout on disk (sharded paths, `.f` suffix).

#[path = "support/conformance.rs"]
mod conformance;

use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::filesystem::FilesystemStorage;
use arkiv_format::ids::BlobId;
use bytes::Bytes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FilesystemStorage::create(dir.path().join("repo")).expect("create");
    conformance::run_conformance(&s).await;
    conformance::pagination(&s, 1_100).await;
    conformance::large_blob(&s, 12 * 1024 * 1024).await;
}

/// A storage reopened from disk sees what the first one wrote (layout read from `.shards`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_reopened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("repo");
    let s = FilesystemStorage::create(&path).expect("create");
    s.put(
        &BlobId::new("p0123456789abcdef-s1"),
        Bytes::from_static(b"x"),
    )
    .await
    .expect("put");
    drop(s);
    let s = FilesystemStorage::open(&path).expect("open");
    assert_eq!(s.list("p").await.expect("list").len(), 1);
    s.delete(&BlobId::new("p0123456789abcdef-s1"))
        .await
        .expect("delete");
    conformance::run_conformance(&s).await;
}

/// A backend's name, its module in `engine/src/blob/`, and the test file and test that run
/// the conformance suite on it.
type Backend = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
);

/// Every storage backend, the test file and test that run the conformance suite on it
/// (`None`: no test server; the reason is in the README's backend table).
const BACKENDS: [Backend; 9] = [
    (
        "memory",
        "memory.rs",
        Some(("blob_conformance.rs", "memory")),
    ),
    (
        "filesystem",
        "filesystem.rs",
        Some(("blob_conformance_fs.rs", "filesystem_created")),
    ),
    (
        "s3",
        "s3.rs",
        Some(("blob_conformance.rs", "s3_with_prefix")),
    ),
    (
        "b2",
        "b2.rs",
        Some(("blob_conformance.rs", "b2_through_s3_endpoint")),
    ),
    (
        "azure",
        "cloud.rs",
        Some(("blob_conformance_backends.rs", "azure_conformance")),
    ),
    ("gcs", "cloud.rs", None),
    (
        "webdav",
        "webdav.rs",
        Some(("blob_conformance_backends.rs", "webdav_conformance")),
    ),
    (
        "rclone",
        "rclone.rs",
        Some(("blob_conformance_backends.rs", "rclone_conformance")),
    ),
    (
        "sftp",
        "sftp.rs",
        Some(("blob_conformance_backends.rs", "sftp_conformance")),
    ),
];

/// Storage modules that wrap another storage (decorators), not backends.
const DECORATORS: [&str; 5] = [
    "counting.rs",
    "faulty.rs",
    "listcache.rs",
    "proxy.rs",
    "readonly.rs",
];

/// The conformance suite covers every backend module in `engine/src/blob/`: each one is in
/// [`BACKENDS`], and each named test exists and runs the suite. Prints the count.
#[test]
fn conformance_covers_every_backend() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut modules: Vec<String> = std::fs::read_dir(root.join("src/blob"))
        .expect("src/blob")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rs") && !DECORATORS.contains(&n.as_str()))
        .collect();
    modules.sort();
    for m in &modules {
        assert!(
            BACKENDS.iter().any(|(_, file, _)| file == m),
            "engine/src/blob/{m} is a backend without a conformance entry"
        );
    }
    let mut covered = Vec::new();
    for (name, _, test) in BACKENDS {
        let Some((file, func)) = test else { continue };
        let src = std::fs::read_to_string(root.join("tests").join(file)).expect("test file");
        let start = src
            .find(&format!("async fn {func}()"))
            .unwrap_or_else(|| panic!("{file} has no test {func}"));
        let body = &src[start..];
        let end = body[1..].find("\nasync fn ").map_or(body.len(), |i| i + 1);
        assert!(
            body[..end].contains("conformance::run_conformance("),
            "{file}::{func} does not run the conformance suite"
        );
        covered.push(name);
    }
    let without: Vec<&str> = BACKENDS
        .iter()
        .filter(|(_, _, t)| t.is_none())
        .map(|(n, _, _)| *n)
        .collect();
    println!(
        "conformance suite: {} backends ({}); without a test server: {}",
        covered.len(),
        covered.join(", "),
        without.join(", ")
    );
    assert_eq!(covered.len() + without.len(), BACKENDS.len());
}
