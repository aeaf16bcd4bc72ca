//! Builds `fuzz/corpus/<target>/` from the kopia-written golden fixtures.
//!
//! ```text
//! cargo run -p arkiv-tests --example fuzz-seed -- [FIXTURES] [CORPUS]
//! ```
//!
//! `FIXTURES` defaults to `../shared/kopia/fixtures` beside the repository and `CORPUS` to
//! `fuzz/corpus`. Both repositories are opened read-only with the fixture password through
//! `arkiv_engine`, so index blobs, directory listings and manifests land in the corpus
//! decrypted, as the decoders see them. Existing corpus files are kept (libFuzzer adds its own
//! finds next to the seeds); seed files are named by a hash of their bytes, so re-running is
//! idempotent.
//!
//! This file belongs to the fuzz harness but is built as an example of the `arkiv-tests`
//! workspace crate: it needs the engine, which the workspace build has already compiled, while
//! the fuzz crate (its own workspace, nightly, sanitizer flags) only depends on `arkiv-format`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::filesystem::FilesystemStorage;
use arkiv_engine::{OpenOptions, Repository};
use arkiv_format::compression::{self, CompressionAlgorithm};
use arkiv_format::ids::ObjectId;
use arkiv_format::index::{self, Info};
use arkiv_format::manifest;
use arkiv_format::pack::POSTAMBLE_SEARCH_LEN;
use arkiv_format::repo_format::{self, FormatBlob};
use arkiv_format::snapshot::{DirManifest, EntryType};
use arkiv_tests::{FIXTURE_PASSWORD, fixtures_dir, workspace_root};

const REPOS: [&str; 2] = ["repo-a", "repo-b"];

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Corpus {
    root: PathBuf,
    counts: std::collections::BTreeMap<&'static str, BTreeSet<String>>,
}

impl Corpus {
    fn add(&mut self, target: &'static str, bytes: &[u8]) -> Res<()> {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir)?;
        // FNV-1a 64 of the bytes: stable names, duplicates collapse.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let name = format!("seed-{h:016x}");
        std::fs::write(dir.join(&name), bytes)?;
        self.counts.entry(target).or_default().insert(name);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Res<()> {
    let mut args = std::env::args_os().skip(1);
    let fixtures = args.next().map(PathBuf::from).unwrap_or_else(fixtures_dir);
    let root = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("fuzz/corpus"));
    if !fixtures.join("repo-a").is_dir() {
        return Err(format!("no fixtures at {}", fixtures.display()).into());
    }
    let mut c = Corpus {
        root,
        counts: Default::default(),
    };
    for name in REPOS {
        seed_repo(&mut c, &fixtures.join(name)).await?;
    }
    seed_repo_c_streams(&mut c, &fixtures.join("repo-c")).await?;
    seed_object_ids(&mut c, &fixtures)?;
    seed_synthetic(&mut c)?;
    for (target, names) in &c.counts {
        println!("{target:>16}: {} seeds", names.len());
    }
    println!("corpus: {}", c.root.display());
    Ok(())
}

async fn seed_repo(c: &mut Corpus, dir: &Path) -> Res<()> {
    let storage: Arc<dyn BlobStorage> = Arc::new(FilesystemStorage::open(dir)?);

    // Format blob: raw, as stored; plus the decrypted inner config JSON.
    let format_bytes = storage.get(&"kopia.repository".into(), None).await?;
    c.add("format_blob", &format_bytes)?;
    let repo = Repository::open(storage.clone(), FIXTURE_PASSWORD, OpenOptions::default()).await?;
    let opened = repo.format();
    c.add("format_blob", &repo_format::config_json(&opened.config)?)?;
    let blob = FormatBlob::parse(&format_bytes)?;
    c.add("format_blob", &blob.to_bytes())?;

    // Index blobs (decrypted), and v1 rebuilds of their v1-representable entries.
    let mut infos: Vec<Info> = Vec::new();
    for loaded in repo.indexes().indexes() {
        let bytes = loaded.reader.bytes();
        c.add(
            if bytes.first() == Some(&1) {
                "index_v1"
            } else {
                "index_v2"
            },
            bytes,
        )?;
        let entries: Vec<Info> = loaded.reader.iter().collect::<Result<_, _>>()?;
        let v1able: Vec<Info> = entries
            .iter()
            .filter(|i| i.compression_header_id == 0)
            .cloned()
            .collect();
        c.add("index_v1", &index::build_v1(v1able, None)?)?;
        infos.extend(entries);
    }
    c.add("index_v1", &index::build_v1(Vec::<Info>::new(), None)?)?;

    // Blob-crypto blobs ("<blob id>\n<bytes>"): index blobs and session logs; pack tails.
    for prefix in ["x", "_", "p", "q"] {
        for meta in storage.list(prefix).await? {
            let data = storage.get(&meta.id, None).await?;
            if prefix == "p" || prefix == "q" {
                let tail = &data[data.len().saturating_sub(POSTAMBLE_SEARCH_LEN)..];
                c.add("pack_postamble", tail)?;
                continue;
            }
            let mut framed = format!("{}\n", meta.id).into_bytes();
            framed.extend_from_slice(&data);
            c.add("encryption", &framed)?;
        }
    }

    // The x listing, one blob name a line.
    let listing: Vec<String> = storage
        .list("x")
        .await?
        .into_iter()
        .map(|m| m.id.to_string())
        .collect();
    c.add("epoch_listing", listing.join("\n").as_bytes())?;

    // Content payloads ("<content id>\n<encrypted payload>") and their decrypted bytes: the
    // compressed ones seed the compression target.
    for info in infos.iter().filter(|i| !i.deleted).take(64) {
        let payload = repo.content_reader().fetch_payload(info).await?;
        if info.packed_length <= 4096 {
            let mut framed = format!("{}\n", info.content_id).into_bytes();
            framed.extend_from_slice(&payload);
            c.add("encryption", &framed)?;
        }
        if info.compression_header_id != 0 && info.packed_length <= 64 << 10 {
            let plain = repo
                .content_reader()
                .cipher()
                .decrypt(info.content_id.iv(), &payload)?;
            c.add("compression", &plain)?;
        }
    }

    // Manifest contents (gzip), their JSON, and each payload (snapshot, policy, maintenance).
    for info in infos
        .iter()
        .filter(|i| !i.deleted && i.content_id.prefix() == Some(b'm'))
    {
        let content = repo.read_content(&info.content_id).await?;
        c.add("manifest", &content)?;
        let entries = manifest::decode_manifest_content(&content)?;
        c.add("manifest", &manifest::encode_manifest_json(&entries)?)?;
        for e in &entries {
            if let Some(data) = &e.data {
                c.add("manifest", data.get().as_bytes())?;
            }
        }
    }

    // Directory listings (every directory of every snapshot) and indirect objects.
    let mut dirs: Vec<ObjectId> = repo
        .snapshots()
        .await?
        .iter()
        .map(|s| s.manifest.root_object_id())
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(oid) = dirs.pop() {
        if !seen.insert(oid.to_string()) {
            continue;
        }
        let bytes = repo.read_object(&oid).await?;
        c.add("dir_manifest", &bytes)?;
        let listing = DirManifest::parse(&bytes)?;
        for e in &listing.entries {
            if e.entry_type == EntryType::Directory {
                dirs.push(e.object);
            }
            if let Some(inner) = e.object.index_object() {
                c.add("manifest", &repo.read_object(&inner).await?)?;
            }
        }
    }
    Ok(())
}

/// repo-c's compressed contents, which kopia 0.20.1 wrote with each of its 18 compressors:
/// every payload seeds `compression`; the bare S2 and lz4 streams (header stripped) seed the
/// `s2` and `lz4` targets.
async fn seed_repo_c_streams(c: &mut Corpus, dir: &Path) -> Res<()> {
    if !dir.is_dir() {
        return Err(format!("no fixture repo-c at {}", dir.display()).into());
    }
    let storage: Arc<dyn BlobStorage> = Arc::new(FilesystemStorage::open(dir)?);
    let repo = Repository::open(storage, "fixture-password-c", OpenOptions::default()).await?;
    let infos: Vec<Info> = repo.indexes().iter(false).collect::<Result<_, _>>()?;
    for info in infos.iter().filter(|i| i.compression_header_id != 0) {
        let payload = repo.content_reader().fetch_payload(info).await?;
        let plain = repo
            .content_reader()
            .cipher()
            .decrypt(info.content_id.iv(), &payload)?;
        c.add("compression", &plain)?;
        let stream = &plain[compression::HEADER_LEN..];
        match info.compression_header_id {
            0x1200..=0x1203 => c.add("s2", stream)?,
            0x1400 => c.add("lz4", stream)?,
            _ => {}
        }
    }
    Ok(())
}

/// Every object ID kopia printed (`ls -l -r -o`) and every content ID it listed.
fn seed_object_ids(c: &mut Corpus, fixtures: &Path) -> Res<()> {
    for entry in std::fs::read_dir(fixtures.join("expected"))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let column = if name.ends_with(".ls.txt") {
            5
        } else if name.ends_with(".content-list.txt") {
            0
        } else {
            continue;
        };
        for line in std::fs::read_to_string(&path)?.lines() {
            if let Some(id) = line.split_whitespace().nth(column) {
                c.add("object_id", id.as_bytes())?;
            }
        }
    }
    Ok(())
}

/// Inputs the fixtures do not contain: every compression algorithm, and an epoch listing with
/// compactions, range checkpoints and a deletion watermark.
fn seed_synthetic(c: &mut Corpus) -> Res<()> {
    let samples: [&[u8]; 3] = [
        b"",
        b"hello, kopia\n",
        &b"one 71-byte line repeated over and over, like repetitive-8MiB.txt does.\n".repeat(64),
    ];
    for alg in CompressionAlgorithm::all().filter(|a| a.is_supported()) {
        for s in samples {
            c.add("compression", &compression::compress(alg, s)?)?;
        }
    }
    for s in samples {
        let ours = compression::compress(CompressionAlgorithm::S2Default, s)?;
        c.add("s2", &ours[compression::HEADER_LEN..])?;
    }
    for id in [
        "",
        "k0cb19c6770ffaf3da05782c42f3bedb9",
        "Ik733266a4a1c495784bf37d891f1fe574",
    ] {
        c.add("object_id", id.as_bytes())?;
    }
    let listing = [
        "xe0",
        "xe1",
        "xe2",
        "xe3",
        "xn0_00ffc6be8985af0789196e0199fcde69-sbcb94eb192395a06147-c1",
        "xn1_c5a5a85fd68f8f14d6f1c1899cf4d0ee-s070604cc32d2924c147-c1",
        "xn2_c7ae3922e89f33ef8e724b7ea3de06cc-sc0778c32239ee8b4147-c2",
        "xn2_d8bd249519aa10ec539c8b11ad2f21c7-sc0778c32239ee8b4147-c2",
        "xn3_d8bd249519aa10ec539c8b11ad2f21c7-sb654f1d6a8a0b4d9147-c1",
        "xs0_0123456789abcdef0123456789abcdef-s0011223344556677-c1",
        "xs1_fedcba9876543210fedcba9876543210-s8899aabbccddeeff-c1",
        "xr0_1_00112233445566778899aabbccddeeff-s0123456789abcdef-c1",
        "xw1795306976",
    ];
    c.add("epoch_listing", listing.join("\n").as_bytes())?;
    Ok(())
}
