//! `arkiv ls` and `arkiv show`: browse snapshots and objects (listings as kopia prints them).

use std::io::Write;

use anyhow::Result;
use arkiv_engine::repo::Repository;
use arkiv_engine::snapshot::tree::{
    Ancestors, entry_for_object, find_snapshot, resolve_path, split_spec,
};
use arkiv_format::ids::ObjectId;
use arkiv_format::snapshot::{DirEntry, EntryType};
use clap::Args;

use super::GlobalArgs;
use crate::Env;
use crate::exit::{self, CliError};
use crate::render::text;

/// `arkiv ls`
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Long listing (mode, size, time, object ID)
    #[arg(short = 'l', long)]
    pub long: bool,
    /// Recurse into subdirectories
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// SNAPSHOT-ID or OBJECT-ID, optionally followed by /sub/path
    pub path: String,
}

/// `arkiv show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Object ID
    pub object: String,
}

/// Resolves an `ls`/`show` argument to an entry.
async fn resolve_arg(repo: &Repository, spec: &str) -> Result<DirEntry> {
    let (head, sub) = split_spec(spec);
    if let Ok(oid) = head.parse::<ObjectId>() {
        if !oid.is_empty() && repo.content_info(&oid.content_id())?.is_some() {
            let is_dir = oid.content_id().prefix() == Some(b'k');
            let root = entry_for_object(oid, is_dir);
            return Ok(resolve_path(repo, &root, sub).await?);
        }
    }
    let snapshots = repo.snapshots().await?;
    let snap = find_snapshot(&snapshots, head)?;
    Ok(resolve_path(repo, snap.root()?, sub).await?)
}

/// `arkiv ls`
pub async fn ls(g: &GlobalArgs, env: Env<'_>, a: LsArgs) -> Result<i32> {
    let repo = g.open(env).await?;
    let entry = resolve_arg(&repo, &a.path).await?;
    if entry.entry_type != EntryType::Directory {
        println!("{}", text::ls_line(&entry, &entry.name, a.long));
        return Ok(exit::OK);
    }
    let mut stdout = std::io::stdout().lock();
    let root = Ancestors::default().descend(&entry.object, &a.path)?;
    let mut stack = vec![(String::new(), entry, root)];
    while let Some((prefix, dir_entry, ancestors)) = stack.pop() {
        let dir = repo.read_dir(&dir_entry.object).await?;
        let mut subdirs = Vec::new();
        for e in &dir.entries {
            let name = format!("{prefix}{}", e.name);
            let shown = if e.entry_type == EntryType::Directory {
                format!("{name}/")
            } else {
                name.clone()
            };
            writeln!(stdout, "{}", text::ls_line(e, &shown, a.long))?;
            if a.recursive && e.entry_type == EntryType::Directory {
                let below = ancestors.descend(&e.object, &format!("{}/{name}", a.path))?;
                subdirs.push((format!("{name}/"), e.clone(), below));
            }
        }
        // depth-first, in listing order
        for s in subdirs.into_iter().rev() {
            stack.push(s);
        }
    }
    Ok(exit::OK)
}

/// `arkiv show`
pub async fn show(g: &GlobalArgs, env: Env<'_>, a: ShowArgs) -> Result<i32> {
    let repo = g.open(env).await?;
    let oid: ObjectId = a
        .object
        .parse()
        .map_err(|e| CliError::new(exit::CONFIG, format!("{e}")))?;
    let chunks = repo.object_chunks(&oid).await?;
    let mut out = std::io::stdout().lock();
    for c in &chunks {
        out.write_all(&repo.read_chunk(c).await?)?;
    }
    out.flush()?;
    Ok(exit::OK)
}
