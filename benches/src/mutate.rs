//! The "1 % change" step: edits a generated tree the way a day of app use
//! would.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::content::{Content, PAGE_SIZE, database_page, write_content};
use crate::rng::{Rng, hash_str};

/// What [`mutate_tree`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MutateStats {
    /// Bytes in regular files before the change.
    pub total_bytes_before: u64,
    /// Bytes written: rewritten files, patched pages, appends, new files.
    pub bytes_written: u64,
    /// Small files rewritten in place.
    pub files_rewritten: u64,
    /// Database pages overwritten.
    pub database_pages: u64,
    /// Bytes appended to logs.
    pub bytes_appended: u64,
    /// New files created.
    pub files_created: u64,
    /// Small files deleted.
    pub files_deleted: u64,
}

struct Found {
    path: PathBuf,
    size: u64,
    content: Option<Content>,
}

fn walk(dir: &Path, out: &mut Vec<Found>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&e.path(), out)?;
        } else if ft.is_file() {
            let path = e.path();
            let content = path
                .extension()
                .and_then(|x| x.to_str())
                .and_then(Content::from_extension);
            out.push(Found {
                size: e.metadata()?.len(),
                path,
                content,
            });
        }
    }
    Ok(())
}

/// Changes about `fraction` of the bytes under `root`, deterministically
/// for a given tree and `seed`: half by overwriting pages inside database
/// files, a quarter by appending to logs, a fifth by rewriting small text
/// files, the rest as new files; it also deletes a few small files.
/// Budgets with no file to spend them on go to small-file rewrites.
pub fn mutate_tree(root: &Path, fraction: f64, seed: u64) -> io::Result<MutateStats> {
    let mut files = Vec::new();
    walk(root, &mut files)?;
    let mut stats = MutateStats {
        total_bytes_before: files.iter().map(|f| f.size).sum(),
        ..Default::default()
    };
    let budget = (fraction.clamp(0.0, 1.0) * stats.total_bytes_before as f64) as u64;
    let mut rng = Rng::new(seed ^ 0x6D75_7461_7465);
    let page = PAGE_SIZE as u64;

    let dbs: Vec<&Found> = files
        .iter()
        .filter(|f| f.content == Some(Content::Database) && f.size >= 2 * page)
        .collect();
    let logs: Vec<&Found> = files
        .iter()
        .filter(|f| f.content == Some(Content::Log))
        .collect();
    let smalls: Vec<&Found> = files
        .iter()
        .filter(|f| {
            f.content.is_some_and(Content::is_text_config) && f.size > 0 && f.size <= 256 * 1024
        })
        .collect();

    let new_budget = budget / 20;
    let db_budget = if dbs.is_empty() { 0 } else { budget / 2 };
    let log_budget = if logs.is_empty() { 0 } else { budget / 4 };
    let small_budget = budget - new_budget - db_budget - log_budget;

    // Databases: overwrite pages in up to three of them.
    let generation = seed | 1;
    if db_budget > 0 {
        let n = dbs.len().min(3);
        let mut chosen: Vec<&Found> = Vec::new();
        while chosen.len() < n {
            let f = *rng.pick(&dbs);
            if !chosen.iter().any(|c| c.path == f.path) {
                chosen.push(f);
            }
        }
        let total_pages = db_budget.div_ceil(page);
        for (i, f) in chosen.iter().enumerate() {
            let count = total_pages / n as u64 + u64::from((i as u64) < total_pages % n as u64);
            let npages = f.size / page;
            let count = count.min(npages - 1);
            let rel = f.path.strip_prefix(root).unwrap_or(&f.path);
            let file_seed = hash_str(&rel.to_string_lossy()) ^ seed;
            let mut picked = BTreeSet::new();
            // Mostly scattered updates, plus a run of pages (a growing table).
            let run_start = rng.range(1, npages - 1);
            for no in run_start..npages.min(run_start + count / 3) {
                picked.insert(no);
            }
            while (picked.len() as u64) < count {
                picked.insert(rng.range(1, npages - 1));
            }
            let file = OpenOptions::new().write(true).open(&f.path)?;
            let mut buf = vec![0u8; PAGE_SIZE];
            for &no in &picked {
                database_page(file_seed, no, generation, &mut buf);
                file.write_all_at(&buf, no * page)?;
            }
            // SQLite bumps its file change counter on every commit.
            file.write_all_at(&(generation as u32).to_be_bytes(), 24)?;
            stats.database_pages += picked.len() as u64;
            stats.bytes_written += picked.len() as u64 * page;
        }
    }

    // Logs: append to up to three.
    if log_budget > 0 {
        let n = logs.len().min(3);
        for i in 0..n {
            let f = logs[(rng.below(logs.len() as u64) as usize + i) % logs.len()];
            let bytes = log_budget / n as u64;
            let mut w = BufWriter::new(OpenOptions::new().append(true).open(&f.path)?);
            write_content(&mut w, Content::Log, rng.next_u64(), bytes)?;
            w.flush()?;
            stats.bytes_appended += bytes;
            stats.bytes_written += bytes;
        }
    }

    // Small files: rewrite random ones until the budget is spent.
    let mut touched = BTreeSet::new();
    let mut spent = 0;
    let mut tries = 0;
    while spent < small_budget && tries < 4 * smalls.len() {
        tries += 1;
        let i = rng.below(smalls.len() as u64) as usize;
        // Skip files that would overshoot the budget by much.
        if smalls[i].size > (small_budget - spent) * 5 / 4 || !touched.insert(i) {
            continue;
        }
        let f = smalls[i];
        let size = (f.size as f64 * (0.9 + 0.2 * rng.unit())) as u64 + 1;
        let mut w = BufWriter::new(File::create(&f.path)?);
        write_content(
            &mut w,
            f.content.unwrap_or(Content::Text),
            rng.next_u64(),
            size,
        )?;
        w.flush()?;
        spent += size;
        stats.files_rewritten += 1;
        stats.bytes_written += size;
    }

    // New files beside random small files.
    let mut spent = 0;
    while spent < new_budget && !smalls.is_empty() {
        let dir = smalls[rng.below(smalls.len() as u64) as usize]
            .path
            .parent()
            .unwrap_or(root);
        let path = dir.join(format!("added-{seed}-{}.yaml", stats.files_created));
        let size = rng.range(200, 16_384).min(new_budget - spent).max(1);
        let mut w = BufWriter::new(File::create(&path)?);
        write_content(&mut w, Content::Yaml, rng.next_u64(), size)?;
        w.flush()?;
        spent += size;
        stats.files_created += 1;
        stats.bytes_written += size;
    }

    // A few deletions among the small files left untouched.
    if smalls.len() > 10 && budget > 0 {
        let want = (smalls.len() / 2000).max(1);
        let mut tries = 0;
        while (stats.files_deleted as usize) < want && tries < 100 * want {
            tries += 1;
            let i = rng.below(smalls.len() as u64) as usize;
            if touched.insert(i) {
                fs::remove_file(&smalls[i].path)?;
                stats.files_deleted += 1;
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{TreeSpec, generate_tree, tree_digest};

    fn contents(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut found = Vec::new();
        walk(root, &mut found).unwrap();
        found
            .into_iter()
            .map(|f| (f.path.clone(), fs::read(&f.path).unwrap()))
            .collect()
    }

    /// Bytes that differ, counted in whole 4 KiB blocks, plus growth and new files.
    fn changed_bytes(
        before: &BTreeMap<PathBuf, Vec<u8>>,
        after: &BTreeMap<PathBuf, Vec<u8>>,
    ) -> u64 {
        let mut changed = 0;
        for (path, new) in after {
            let Some(old) = before.get(path) else {
                changed += new.len() as u64;
                continue;
            };
            for (i, block) in new.chunks(PAGE_SIZE).enumerate() {
                if old.get(i * PAGE_SIZE..(i * PAGE_SIZE + block.len()).min(old.len()))
                    != Some(block)
                {
                    changed += block.len() as u64;
                }
            }
        }
        changed
    }

    #[test]
    fn changes_about_the_requested_fraction() {
        let dir = tempfile::tempdir().unwrap();
        generate_tree(dir.path(), &TreeSpec::pvc_like(0.02)).unwrap();
        let before = contents(dir.path());
        let total: u64 = before.values().map(|v| v.len() as u64).sum();
        let stats = mutate_tree(dir.path(), 0.01, 7).unwrap();
        assert_eq!(stats.total_bytes_before, total);
        let after = contents(dir.path());
        let changed = changed_bytes(&before, &after) as f64 / total as f64;
        assert!(
            (0.007..0.016).contains(&changed),
            "changed {changed:.4} of the bytes: {stats:?}"
        );
        let written = stats.bytes_written as f64 / total as f64;
        assert!(
            (0.009..0.012).contains(&written),
            "wrote {written:.4}: {stats:?}"
        );
        assert!(stats.database_pages > 0 && stats.bytes_appended > 0 && stats.files_rewritten > 0);
        assert!(stats.files_created > 0 && stats.files_deleted > 0);
        assert!(before.keys().any(|p| !after.contains_key(p)));
    }

    #[test]
    fn deterministic_for_a_seed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let spec = TreeSpec::pvc_like(0.005);
        generate_tree(&a, &spec).unwrap();
        generate_tree(&b, &spec).unwrap();
        assert_eq!(
            mutate_tree(&a, 0.01, 3).unwrap(),
            mutate_tree(&b, 0.01, 3).unwrap()
        );
        assert_eq!(tree_digest(&a).unwrap(), tree_digest(&b).unwrap());
        mutate_tree(&b, 0.01, 4).unwrap();
        assert_ne!(tree_digest(&a).unwrap(), tree_digest(&b).unwrap());
    }
}
