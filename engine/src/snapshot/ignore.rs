//! Which entries a snapshot leaves out, decided exactly like kopia's `fs/ignorefs`
//! (kopia v0.20.1–v0.23 `fs/ignorefs/ignorefs.go`; the observed behaviour is recorded in
//! `shared/kopia/fixtures/README.md`, repo-c, points 1–7).
//!
//! * Rules come in **levels**. A level is added at the snapshot root, at every directory with a
//!   policy of its own (a non-inherited node of the [`PolicyTree`]) and at every directory that
//!   holds one of the dot-ignore files named by the nearest policy. A level holds that
//!   policy's `ignore` rules (stored order) and then the lines of its dot-ignore files (file
//!   order), each anchored at the level's directory.
//! * An entry is judged by every level from the root down to its directory, parents first.
//!   While it counts as ignored only `!` rules are tried, while it counts as included only the
//!   others; the last rule that matches wins. An ignored directory is never entered.
//! * Paths are written relative to the snapshot root with a leading `/` (`/notes/a.draft`);
//!   "is a directory" comes from `lstat` (a symlink to a directory is not one).
//! * Then `maxFileSize` (`size > limit`, the `lstat` size of any entry, limit from the nearest
//!   policy that sets one), then `oneFileSystem` (another device than the directory's).
//! * A directory whose node has `ignoreCacheDirs` (unset: true) and which holds a regular file
//!   `CACHEDIR.TAG` starting with the 43-byte signature is stored with no entries.
//! * Quirks kept: a subdirectory policy reads only the dot-ignore files *it* names (its
//!   descendants inherit that list); `noParentIgnore` does not drop the parents' rules
//!   (kopia clears a list that is empty at that point); `noParentDotFiles` drops only the
//!   inherited dot-file names.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use arkiv_format::wcmatch::WildcardMatcher;

use crate::policy::PolicyTree;
use crate::{Error, Result};

/// The cache directory tag file name (<https://bford.info/cachedir/>).
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
/// The signature a valid tag starts with.
pub const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// One rule and where it comes from (for reports).
#[derive(Debug)]
struct Rule {
    matcher: WildcardMatcher,
    origin: Arc<str>,
}

/// One level of rules (kopia's `ignoreContext`).
#[derive(Debug, Default)]
pub struct Level {
    parent: Option<Arc<Level>>,
    dot_ignore_files: Vec<String>,
    rules: Vec<Rule>,
    max_file_size: i64,
    max_file_size_origin: Arc<str>,
    one_file_system: bool,
}

/// Why an entry was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A rule matched: the rule's text and where it is written.
    Rule {
        /// The pattern.
        pattern: String,
        /// `ignore rule of policy USER@HOST:/PATH` or `/DIR/.kopiaignore`.
        origin: String,
    },
    /// Larger than `maxFileSize`.
    Size {
        /// The limit.
        limit: i64,
        /// The policy that set it.
        origin: String,
    },
    /// On another file system (`oneFileSystem`).
    OtherFileSystem,
    /// Inside a directory with a valid `CACHEDIR.TAG` (the entry itself is the directory).
    CacheDir,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Rule { pattern, origin } => write!(f, "{pattern} ({origin})"),
            Reason::Size { limit, origin } => {
                write!(f, "larger than {limit} bytes (max-file-size of {origin})")
            }
            Reason::OtherFileSystem => f.write_str("on another file system (one-file-system)"),
            Reason::CacheDir => f.write_str("cache directory (CACHEDIR.TAG): stored empty"),
        }
    }
}

/// The verdict of the name rules.
pub struct NameVerdict {
    /// The rule that ignored the entry, `None` when it is kept.
    pub ignored_by: Option<Reason>,
    /// How many levels concluded "ignore" (kopia calls its ignore callback once per such
    /// level; its `excluded*` statistics count these calls).
    pub levels_ignoring: u32,
}

fn invalid(dir: &Path, msg: String) -> Error {
    Error::io(
        dir,
        std::io::Error::new(std::io::ErrorKind::InvalidData, msg),
    )
}

impl Level {
    /// The empty level above the snapshot root.
    pub fn root() -> Arc<Level> {
        Arc::new(Level::default())
    }

    /// kopia's `shouldIncludeByName`, for `path` (`/a/b`) of an entry.
    pub fn judge(&self, path: &str, is_dir: bool) -> NameVerdict {
        let mut v = match &self.parent {
            Some(p) => p.judge(path, is_dir),
            None => NameVerdict {
                ignored_by: None,
                levels_ignoring: 0,
            },
        };
        let mut ignored = v.ignored_by.is_some();
        for r in &self.rules {
            if ignored == r.matcher.negated() {
                ignored = r.matcher.matches(path, is_dir);
                v.ignored_by = if ignored {
                    v.ignored_by.take().or_else(|| {
                        Some(Reason::Rule {
                            pattern: r.matcher.pattern().to_owned(),
                            origin: r.origin.to_string(),
                        })
                    })
                } else {
                    None
                };
            }
        }
        if ignored {
            v.levels_ignoring += 1;
        }
        v
    }

    /// The size verdict: `Some` when `size` exceeds this level's limit.
    pub fn size_verdict(&self, size: i64) -> Option<Reason> {
        (self.max_file_size > 0 && size > self.max_file_size).then(|| Reason::Size {
            limit: self.max_file_size,
            origin: self.max_file_size_origin.to_string(),
        })
    }

    /// Whether entries on another device than their directory are left out.
    pub fn one_file_system(&self) -> bool {
        self.one_file_system
    }

    /// kopia's `buildContext` for the directory `dir` (relative path `rel`: `""` for the
    /// root, `/notes` below it) whose policy node is `node`, below the level `parent`.
    pub fn for_directory(
        parent: &Arc<Level>,
        node: &PolicyTree,
        dir: &Path,
        rel: &str,
    ) -> Result<Arc<Level>> {
        let defined = node.defined();
        let names: &[String] = match defined {
            Some(p) => &p.files.dot_ignore_files,
            None => &parent.dot_ignore_files,
        };
        let mut found = Vec::new();
        for name in names {
            let p = dir.join(name);
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.file_type().is_symlink() {
                match std::fs::metadata(&p) {
                    Ok(t) if t.is_file() => found.push((name.clone(), p)),
                    Ok(_) => {
                        return Err(invalid(
                            &p,
                            format!("{name} does not eventually link to a file"),
                        ));
                    }
                    Err(e) => return Err(Error::io(&p, e)),
                }
            } else if m.is_file() {
                found.push((name.clone(), p));
            }
        }
        if found.is_empty() && defined.is_none() {
            return Ok(parent.clone());
        }
        let mut level = Level {
            parent: Some(parent.clone()),
            dot_ignore_files: names.to_vec(),
            rules: Vec::new(),
            max_file_size: parent.max_file_size,
            max_file_size_origin: parent.max_file_size_origin.clone(),
            one_file_system: parent.one_file_system,
        };
        if let Some(p) = defined {
            let f = &p.files;
            if f.no_parent_dot_ignore_files {
                level.dot_ignore_files.clear();
            }
            for n in &f.dot_ignore_files {
                if !level.dot_ignore_files.contains(n) {
                    level.dot_ignore_files.push(n.clone());
                }
            }
            if f.max_file_size != 0 {
                level.max_file_size = f.max_file_size;
                level.max_file_size_origin = Arc::from(format!("policy {}", node.origin()));
            }
            level.one_file_system = f.one_file_system.unwrap_or(false);
            let origin: Arc<str> = Arc::from(format!("ignore rule of policy {}", node.origin()));
            for rule in &f.ignore_rules {
                let matcher = WildcardMatcher::new(rule, rel, false).map_err(|e| {
                    invalid(dir, format!("ignore rule of policy {}: {e}", node.origin()))
                })?;
                level.rules.push(Rule {
                    matcher,
                    origin: origin.clone(),
                });
            }
        }
        for (name, path) in found {
            let mut text = Vec::new();
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut text))
                .map_err(|e| Error::io(&path, e))?;
            let origin: Arc<str> = Arc::from(format!("{rel}/{name}"));
            for line in split_lines(&text) {
                let line = String::from_utf8_lossy(line);
                if line.starts_with('#') || line.trim().is_empty() {
                    continue;
                }
                let matcher = WildcardMatcher::new(&line, rel, false)
                    .map_err(|e| invalid(&path, format!("{origin}: {e}")))?;
                level.rules.push(Rule {
                    matcher,
                    origin: origin.clone(),
                });
            }
        }
        Ok(Arc::new(level))
    }
}

/// Go's `bufio.ScanLines`: lines split at `\n`, one trailing `\r` dropped, a last line without
/// a newline kept.
fn split_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let empty = text.is_empty();
    body.split(|&b| b == b'\n')
        .filter(move |_| !empty)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// kopia's `skipCacheDirectory`: whether `dir` holds a regular file `CACHEDIR.TAG` whose first
/// 43 bytes are the signature (read with one `read`, as kopia does).
pub fn is_cache_dir(dir: &Path) -> bool {
    let p = dir.join(CACHEDIR_TAG);
    let Ok(m) = std::fs::symlink_metadata(&p) else {
        return false;
    };
    if !m.is_file() || m.len() < CACHEDIR_SIGNATURE.len() as u64 {
        return false;
    }
    let mut buf = [0u8; 43];
    match std::fs::File::open(&p).and_then(|mut f| f.read(&mut buf)) {
        Ok(n) => buf.get(..n) == Some(CACHEDIR_SIGNATURE),
        Err(_) => false,
    }
}

/// The device of `m` (for `oneFileSystem`).
pub fn device(m: &std::fs::Metadata) -> u64 {
    m.dev()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_like_bufio_scanner() {
        let l: Vec<&[u8]> = split_lines(b"a\r\nb\n\nc").collect();
        assert_eq!(l, [&b"a"[..], b"b", b"", b"c"]);
        assert_eq!(split_lines(b"").count(), 0);
        assert_eq!(split_lines(b"x\n").count(), 1);
    }
}
