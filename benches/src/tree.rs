//! Planning and writing a tree, and hashing one back.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::content::{Content, WORDS, write_content};
use crate::rng::{Digest, Rng, mix};
use crate::spec::{AppSpec, TreeSpec};

/// One entry the generator will write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEntry {
    /// Relative path, `/`-separated.
    pub path: String,
    /// What it is.
    pub kind: PlannedKind,
}

/// A regular file or a symlink (directories are implied by paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedKind {
    /// A regular file of exactly `size` bytes.
    File {
        /// How its bytes look.
        content: Content,
        /// Seed of its bytes; copies of one file share it.
        seed: u64,
        /// Length in bytes.
        size: u64,
        /// Modification time, seconds since the epoch.
        mtime: u64,
        /// True for every copy after the first of a duplicated file.
        duplicate: bool,
    },
    /// A relative symlink.
    Symlink {
        /// Link target, relative to the link's directory.
        target: String,
    },
}

/// What a generated tree contains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Regular files, including empty ones.
    pub files: u64,
    /// Directories below the root.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Regular files of length zero.
    pub empty_files: u64,
    /// Bytes in all regular files.
    pub total_bytes: u64,
    /// Bytes in small text files (config, vendored code).
    pub text_bytes: u64,
    /// Bytes in database files.
    pub database_bytes: u64,
    /// Bytes in log files.
    pub log_bytes: u64,
    /// Bytes in media, executables and thumbnails (incompressible-ish).
    pub binary_bytes: u64,
    /// Copies after the first of files duplicated across apps.
    pub duplicate_files: u64,
    /// Bytes in those copies.
    pub duplicate_bytes: u64,
}

impl TreeStats {
    /// Stats of a plan, without writing anything.
    pub fn of_plan(plan: &[PlannedEntry]) -> Self {
        let mut s = Self::default();
        let mut dirs = BTreeSet::new();
        for e in plan {
            let mut p = Path::new(&e.path).parent();
            while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
                if !dirs.insert(d.to_path_buf()) {
                    break;
                }
                p = d.parent();
            }
            match &e.kind {
                PlannedKind::Symlink { .. } => s.symlinks += 1,
                &PlannedKind::File {
                    content,
                    size,
                    duplicate,
                    ..
                } => {
                    s.files += 1;
                    s.total_bytes += size;
                    s.empty_files += u64::from(size == 0);
                    if duplicate {
                        s.duplicate_files += 1;
                        s.duplicate_bytes += size;
                    }
                    match content {
                        Content::Database => s.database_bytes += size,
                        Content::Log => s.log_bytes += size,
                        Content::Media | Content::Executable | Content::Thumbnail => {
                            s.binary_bytes += size
                        }
                        _ => s.text_bytes += size,
                    }
                }
            }
        }
        s.dirs = dirs.len() as u64;
        s
    }
}

impl fmt::Display for TreeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mb = |b: u64| b as f64 / 1e6;
        write!(
            f,
            "{} files, {} bytes ({:.1} MB) in {} dirs, {} symlinks, {} empty; \
             text {:.1} MB, databases {:.1} MB, logs {:.1} MB, binary {:.1} MB; \
             {} duplicate files ({:.1} MB)",
            self.files,
            self.total_bytes,
            mb(self.total_bytes),
            self.dirs,
            self.symlinks,
            self.empty_files,
            mb(self.text_bytes),
            mb(self.database_bytes),
            mb(self.log_bytes),
            mb(self.binary_bytes),
            self.duplicate_files,
            mb(self.duplicate_bytes)
        )
    }
}

/// A small-file size: mostly under 4 KiB with a long tail (log-uniform
/// within buckets, mean ≈ 7 KiB).
fn small_size(rng: &mut Rng) -> u64 {
    let (lo, hi): (f64, f64) = match rng.below(100) {
        0..=39 => (60.0, 1024.0),
        40..=74 => (1024.0, 4096.0),
        75..=92 => (4096.0, 16384.0),
        93..=98 => (16384.0, 65536.0),
        _ => (65536.0, 262_144.0),
    };
    (lo * (hi / lo).powf(rng.unit())) as u64
}

fn config_kind(rng: &mut Rng) -> (Content, &'static str) {
    match rng.below(100) {
        0..=29 => (Content::Yaml, if rng.chance(0.8) { "yaml" } else { "yml" }),
        30..=54 => (Content::Json, "json"),
        55..=64 => (Content::Ini, *rng.pick(&["ini", "conf", "cfg"])),
        65..=71 => (Content::Ini, "toml"),
        72..=76 => (Content::Ini, *rng.pick(&["env", "properties"])),
        77..=91 => (Content::Text, *rng.pick(&["txt", "md"])),
        _ => (Content::Xml, "xml"),
    }
}

fn mtime(rng: &mut Rng) -> u64 {
    // Spread over the first half of 2024.
    1_704_067_200 + rng.below(180 * 86_400)
}

/// Nested directories under `base`: `n_files / 25` of them, up to 6 deep.
fn nested_dirs(rng: &mut Rng, base: &str, n_files: u64) -> Vec<String> {
    let mut dirs = vec![base.to_string()];
    let mut seen = HashSet::new();
    for j in 1..(n_files / 25).max(1) {
        let mut parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        if parent.matches('/').count() >= 6 {
            parent = base.to_string();
        }
        let mut dir = format!("{parent}/{}", rng.pick(WORDS));
        if !seen.insert(dir.clone()) {
            dir = format!("{dir}-{j}");
            seen.insert(dir.clone());
        }
        dirs.push(dir);
    }
    dirs
}

/// Text files spread over `dirs`; names are unique via their index.
fn small_files(
    rng: &mut Rng,
    dirs: &[String],
    n: u64,
    code: bool,
    out: &mut Vec<(String, Content, u64)>,
) {
    for i in 0..n {
        let dir = &dirs[rng.below(dirs.len() as u64) as usize];
        let (content, ext) = if code {
            match rng.below(10) {
                0..=5 => (Content::Code, "py"),
                6..=7 => (Content::Code, "js"),
                8 => (Content::Json, "json"),
                _ => (Content::Text, "txt"),
            }
        } else {
            config_kind(rng)
        };
        let path = format!("{dir}/{}-{}-{i}.{ext}", rng.pick(WORDS), rng.pick(WORDS));
        out.push((path, content, small_size(rng)));
    }
}

fn plan_app(
    spec: &TreeSpec,
    app: &AppSpec,
    bundle: &[(String, Content, u64)],
    out: &mut Vec<PlannedEntry>,
) {
    let name = &app.name;
    let mut rng = Rng::derive(spec.seed, name);
    let file = |out: &mut Vec<PlannedEntry>,
                rng: &mut Rng,
                path: String,
                content,
                size,
                seed,
                duplicate| {
        out.push(PlannedEntry {
            path,
            kind: PlannedKind::File {
                content,
                seed,
                size,
                mtime: mtime(rng),
                duplicate,
            },
        });
    };

    let config_dirs = nested_dirs(&mut rng, &format!("{name}/config"), app.config_files);
    let mut smalls = Vec::new();
    small_files(&mut rng, &config_dirs, app.config_files, false, &mut smalls);
    for (path, content, size) in smalls {
        let seed = Rng::derive(spec.seed, &path).next_u64();
        file(out, &mut rng, path, content, size, seed, false);
    }
    for i in 0..app.cache_files {
        let path = format!(
            "{name}/cache/{:02x}/{:016x}.jpg",
            rng.below(16),
            rng.next_u64() ^ i
        );
        let size = (2048.0 * 48f64.powf(rng.unit())) as u64;
        let seed = rng.next_u64();
        file(out, &mut rng, path, Content::Thumbnail, size, seed, false);
    }
    for (kind, list) in [
        (Content::Database, &app.databases),
        (Content::Log, &app.logs),
        (Content::Media, &app.binaries),
    ] {
        for (rel, size) in list {
            let path = format!("{name}/{rel}");
            let seed = Rng::derive(spec.seed, &path).next_u64();
            file(out, &mut rng, path, kind, *size, seed, false);
        }
    }
    for i in 0..app.empty_files {
        let names = [".keep", ".lock", ".gitkeep", "LOCK", ".initialized"];
        let mut fname = names[i as usize % names.len()].to_string();
        if i as usize >= names.len() {
            fname = format!("{fname}.{}", i as usize / names.len());
        }
        let dir = &config_dirs[rng.below(config_dirs.len() as u64) as usize];
        file(
            out,
            &mut rng,
            format!("{dir}/{fname}"),
            Content::Text,
            0,
            0,
            false,
        );
    }
    if app.shared_bundle {
        for (rel, content, size) in bundle {
            let seed = Rng::derive(spec.seed, rel).next_u64();
            file(
                out,
                &mut rng,
                format!("{name}/{rel}"),
                *content,
                *size,
                seed,
                false,
            );
        }
    }
    if app.shared_binary && spec.shared_binary_size > 0 {
        let seed = Rng::derive(spec.seed, "shared-binary").next_u64();
        file(
            out,
            &mut rng,
            format!("{name}/bin/ffmpeg"),
            Content::Executable,
            spec.shared_binary_size,
            seed,
            false,
        );
    }
    if app.symlinks {
        let mut link = |path: String, target: String| {
            out.push(PlannedEntry {
                path,
                kind: PlannedKind::Symlink { target },
            })
        };
        if let Some((log, _)) = app.logs.first() {
            let (dir, file) = log.rsplit_once('/').unwrap_or(("", log));
            link(
                format!(
                    "{name}/{}current.log",
                    if dir.is_empty() {
                        String::new()
                    } else {
                        format!("{dir}/")
                    }
                ),
                file.to_string(),
            );
        }
        if let Some((db, _)) = app.databases.first() {
            link(format!("{name}/current.db"), db.clone());
        }
        if let Some(dir) = config_dirs.get(1) {
            link(
                format!("{name}/config/latest"),
                dir.trim_start_matches(&format!("{name}/config/"))
                    .to_string(),
            );
        }
    }
}

/// Every entry of the tree `spec` describes, in a deterministic order.
/// Identical files (the shared bundle and binary) share a seed, and all
/// but their first copy are marked `duplicate`.
pub fn plan_tree(spec: &TreeSpec) -> Vec<PlannedEntry> {
    let mut rng = Rng::derive(spec.seed, "bundle");
    let dirs = nested_dirs(&mut rng, "lib/vendor", spec.bundle_files);
    let mut bundle = Vec::new();
    small_files(&mut rng, &dirs, spec.bundle_files, true, &mut bundle);
    let mut out = Vec::new();
    for app in &spec.apps {
        plan_app(spec, app, &bundle, &mut out);
    }
    // Mark copies after the first of every (content, seed, size) as duplicates.
    let mut seen = HashSet::new();
    for e in &mut out {
        if let PlannedKind::File {
            content,
            seed,
            size,
            duplicate,
            ..
        } = &mut e.kind
        {
            if *size > 0 && !seen.insert((*content, *seed, *size)) {
                *duplicate = true;
            }
        }
    }
    out
}

/// Writes the tree `spec` describes under `root` (created if missing; it
/// must be empty) and returns what it wrote.
pub fn generate_tree(root: &Path, spec: &TreeSpec) -> io::Result<TreeStats> {
    fs::create_dir_all(root)?;
    if fs::read_dir(root)?.next().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} is not empty; the generator only writes into an empty directory",
                root.display()
            ),
        ));
    }
    let plan = plan_tree(spec);
    let mut made: HashSet<PathBuf> = HashSet::new();
    for e in &plan {
        let path = root.join(&e.path);
        if let Some(parent) = path.parent() {
            if !made.contains(parent) {
                fs::create_dir_all(parent)?;
                made.insert(parent.to_path_buf());
            }
        }
        match &e.kind {
            PlannedKind::Symlink { target } => std::os::unix::fs::symlink(target, &path)?,
            &PlannedKind::File {
                content,
                seed,
                size,
                mtime,
                ..
            } => {
                let f = File::create(&path)?;
                let mut w = BufWriter::with_capacity(256 * 1024, f);
                write_content(&mut w, content, seed, size)?;
                let f = w.into_inner().map_err(|e| e.into_error())?;
                f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))?;
            }
        }
    }
    Ok(TreeStats::of_plan(&plan))
}

/// A digest of a tree's shape and contents: relative paths, entry kinds,
/// file bytes and symlink targets (not times, owners or modes). Two trees
/// with equal digests hold the same data, so it checks restores too.
pub fn tree_digest(root: &Path) -> io::Result<u64> {
    let mut d = Digest::default();
    let mut buf = vec![0u8; 1 << 20];
    digest_dir(root, Path::new(""), &mut d, &mut buf)?;
    Ok(mix(d.finish()))
}

fn digest_dir(root: &Path, rel: &Path, d: &mut Digest, buf: &mut [u8]) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(root.join(rel))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path)?;
        let rel_bytes = rel.as_os_str().as_encoded_bytes();
        d.update(&(rel_bytes.len() as u64).to_le_bytes());
        d.update(rel_bytes);
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)?;
            d.update(b"L");
            d.update(target.as_os_str().as_encoded_bytes());
            d.update(b"\0");
        } else if meta.is_dir() {
            d.update(b"D");
            digest_dir(root, &rel, d, buf)?;
            d.update(b"d");
        } else {
            d.update(b"F");
            d.update(&meta.len().to_le_bytes());
            let mut f = File::open(&path)?;
            loop {
                let n = f.read(buf)?;
                if n == 0 {
                    break;
                }
                d.update(&buf[..n]);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_spec_same_tree() {
        let spec = TreeSpec::pvc_like(0.005);
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let stats = generate_tree(&a, &spec).unwrap();
        assert_eq!(generate_tree(&b, &spec).unwrap(), stats);
        assert_eq!(tree_digest(&a).unwrap(), tree_digest(&b).unwrap());

        let mut other = spec.clone();
        other.seed += 1;
        let c = dir.path().join("c");
        generate_tree(&c, &other).unwrap();
        assert_ne!(tree_digest(&a).unwrap(), tree_digest(&c).unwrap());
    }

    #[test]
    fn written_tree_matches_plan() {
        let spec = TreeSpec::pvc_like(0.005);
        let dir = tempfile::tempdir().unwrap();
        let stats = generate_tree(dir.path(), &spec).unwrap();
        let (mut files, mut bytes, mut links) = (0, 0, 0);
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    stack.push(e.path());
                } else if t.is_symlink() {
                    links += 1;
                    assert!(
                        fs::metadata(e.path()).is_ok(),
                        "dangling link {}",
                        e.path().display()
                    );
                } else {
                    files += 1;
                    bytes += e.metadata().unwrap().len();
                }
            }
        }
        assert_eq!(
            (files, bytes, links),
            (stats.files, stats.total_bytes, stats.symlinks)
        );
        assert!(stats.empty_files > 0 && stats.duplicate_files > 0 && stats.database_bytes > 0);
    }

    #[test]
    fn refuses_non_empty_root() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x"), b"x").unwrap();
        let err = generate_tree(dir.path(), &TreeSpec::pvc_like(0.001)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn full_scale_matches_the_reference_tree() {
        // The targets were measured on a 1.03 GB, 30,556-file tree.
        let s = TreeStats::of_plan(&plan_tree(&TreeSpec::pvc_like(1.0)));
        assert_eq!(s.files, 30_556);
        assert!(
            (1_025_000_000..1_035_000_000).contains(&s.total_bytes),
            "{s}"
        );
    }

    #[test]
    fn scale_is_roughly_proportional() {
        let full = TreeStats::of_plan(&plan_tree(&TreeSpec::pvc_like(1.0)));
        for scale in [0.05, 0.1, 0.5] {
            let s = TreeStats::of_plan(&plan_tree(&TreeSpec::pvc_like(scale)));
            for (part, whole) in [(s.files, full.files), (s.total_bytes, full.total_bytes)] {
                let ratio = part as f64 / whole as f64 / scale;
                assert!(
                    (0.85..1.15).contains(&ratio),
                    "scale {scale}: ratio {ratio:.3}"
                );
            }
        }
    }
}
