//! Human and JSON renderings shared by the binaries (kopia-like where users expect it).

use std::fmt::Write as _;

use arkiv_engine::repo::{Repository, Snapshot};
use arkiv_engine::snapshot::restore::RestoreStats;
use arkiv_format::gojson;
use arkiv_format::snapshot::{DirEntry, EntryType};

/// Kopia's base-10 byte units: `21 MB`, `1.5 GB`, `812 B`.
pub fn bytes_base10(n: u64) -> String {
    const PREFIXES: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    let mut f = n as f64;
    for p in PREFIXES {
        if f < 900.0 {
            return format!("{} {p}B", nice_number(f));
        }
        f /= 1000.0;
    }
    format!("{} EB", nice_number(f))
}

fn nice_number(f: f64) -> String {
    let s = format!("{f:.1}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// What a restore wrote: `12 files, 3 directories, 1 symlinks, 4.1 MB (4096000 bytes)`, and
/// `, removed N extra entries` when it deleted any.
pub fn restore_stats(stats: &RestoreStats) -> String {
    let mut out = format!(
        "{} files, {} directories, {} symlinks, {} ({} bytes)",
        stats.files,
        stats.dirs,
        stats.symlinks,
        bytes_base10(stats.bytes),
        stats.bytes
    );
    if stats.deleted > 0 {
        let _ = write!(out, ", removed {} extra entries", stats.deleted);
    }
    out
}

/// A new repository, for the line that announces it: `LOCATION (format version 3, HASH,
/// ENCRYPTION, SPLITTER); maintenance owner OWNER`.
pub fn new_repository(location: &str, repo: &Repository, owner: &str) -> String {
    let c = repo.config();
    format!(
        "{location} (format version {}, {}, {}, {}); maintenance owner {owner}",
        c.version, c.hash, c.encryption, c.splitter
    )
}

/// Go's `os.FileMode.String()` for an entry (type letter, setuid `u`, setgid `g`, sticky `t`,
/// then `rwx` bits).
pub fn mode_string(e: &DirEntry) -> String {
    let mut s = String::new();
    match e.entry_type {
        EntryType::Directory => s.push('d'),
        EntryType::Symlink => s.push('L'),
        _ => {}
    }
    let m = e.mode;
    if m & (1 << 23) != 0 {
        s.push('u');
    }
    if m & (1 << 22) != 0 {
        s.push('g');
    }
    if m & (1 << 20) != 0 {
        s.push('t');
    }
    if s.is_empty() {
        s.push('-');
    }
    let perm = if e.entry_type == EntryType::Symlink && m & 0o777 == 0 {
        0o777
    } else {
        m & 0o777
    };
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if perm & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

/// One `ls` line. Long form mirrors `kopia ls -l -o`: directories show their subtree size
/// and newest mtime (as kopia does).
pub fn ls_line(e: &DirEntry, shown_name: &str, long: bool) -> String {
    if !long {
        return shown_name.to_owned();
    }
    let (size, time) = match (&e.entry_type, &e.summary) {
        (EntryType::Directory, Some(s)) => (s.size, s.max_time),
        _ => (e.size, e.mtime),
    };
    format!(
        "{} {:>12} {} {:<34} {}",
        mode_string(e),
        size,
        gojson::time::format_cli(&time),
        e.object.to_string(),
        shown_name
    )
}

/// `snapshot list` as text, grouped by source like kopia.
pub fn snapshot_list_text(snaps: &[&Snapshot]) -> String {
    let mut sources: Vec<String> = snaps
        .iter()
        .map(|s| s.manifest.source.to_string())
        .collect();
    sources.sort();
    sources.dedup();
    let mut out = String::new();
    for src in sources {
        let _ = writeln!(out, "{src}");
        for s in snaps
            .iter()
            .filter(|s| s.manifest.source.to_string() == src)
        {
            let m = &s.manifest;
            let Some(root) = &m.root_entry else { continue };
            let (size, files, dirs) = match &root.summary {
                Some(sum) => (sum.size, sum.files, sum.dirs),
                None => (
                    m.stats.total_size,
                    i64::from(m.stats.file_count),
                    i64::from(m.stats.dir_count),
                ),
            };
            let incomplete = if m.incomplete.is_empty() {
                String::new()
            } else {
                format!(" incomplete:{}", m.incomplete)
            };
            let _ = writeln!(
                out,
                "  {} {} {} {} {} files:{} dirs:{}{}",
                gojson::time::format_cli(&m.start_time),
                s.id,
                root.object,
                bytes_base10(u64::try_from(size).unwrap_or(0)),
                mode_string(root),
                files,
                dirs,
                incomplete
            );
        }
    }
    out
}

/// `snapshot list --json`: one array, one manifest per line (kopia's layout), `id` set.
pub fn snapshot_list_json(snaps: &[&Snapshot]) -> anyhow::Result<Vec<u8>> {
    if snaps.is_empty() {
        return Ok(b"[]\n".to_vec());
    }
    let mut out = b"[\n".to_vec();
    for (i, s) in snaps.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",\n");
        }
        out.push(b' ');
        out.extend_from_slice(&gojson::to_go_json(&s.manifest)?);
    }
    out.extend_from_slice(b"\n]\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kopia_units() {
        assert_eq!(bytes_base10(20_975_425), "21 MB");
        assert_eq!(bytes_base10(812), "812 B");
        assert_eq!(bytes_base10(950), "0.9 KB");
        assert_eq!(bytes_base10(1_500_000_000), "1.5 GB");
        assert_eq!(bytes_base10(0), "0 B");
    }
}
