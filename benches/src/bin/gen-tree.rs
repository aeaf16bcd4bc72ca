//! `gen-tree <DIR> [--scale S] [--seed N]` writes a PVC-like tree into DIR;
//! `gen-tree <DIR> --mutate FRACTION [--seed N]` changes about FRACTION of
//! its bytes; `gen-tree <DIR> --digest` prints a content digest (to check
//! restores); `gen-tree --plan [--scale S]` prints the stats without writing.

use std::path::PathBuf;
use std::process::ExitCode;

use arkiv_benches::{TreeSpec, TreeStats, generate_tree, mutate_tree, plan_tree, tree_digest};

const USAGE: &str = "usage: gen-tree <DIR> [--scale S] [--seed N]
       gen-tree <DIR> --mutate FRACTION [--seed N]
       gen-tree <DIR> --digest
       gen-tree --plan [--scale S] [--seed N]";

enum Mode {
    Generate,
    Mutate(f64),
    Digest,
    Plan,
}

fn parse() -> Result<(Option<PathBuf>, Mode, f64, Option<u64>), String> {
    let mut dir = None;
    let mut mode = Mode::Generate;
    let mut scale: f64 = 1.0;
    let mut seed = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--scale" => {
                scale = value("--scale")?
                    .parse()
                    .map_err(|e| format!("--scale: {e}"))?
            }
            "--seed" => {
                seed = Some(
                    value("--seed")?
                        .parse()
                        .map_err(|e| format!("--seed: {e}"))?,
                )
            }
            "--mutate" => {
                mode = Mode::Mutate(
                    value("--mutate")?
                        .parse()
                        .map_err(|e| format!("--mutate: {e}"))?,
                )
            }
            "--digest" => mode = Mode::Digest,
            "--plan" => mode = Mode::Plan,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if dir.is_none() => dir = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    if dir.is_none() && !matches!(mode, Mode::Plan) {
        return Err("missing DIR".into());
    }
    if !(scale > 0.0 && scale.is_finite()) {
        return Err("--scale must be positive".into());
    }
    Ok((dir, mode, scale, seed))
}

fn main() -> ExitCode {
    let (dir, mode, scale, seed) = match parse() {
        Ok(parsed) => parsed,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("gen-tree: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut spec = TreeSpec::pvc_like(scale);
    if let (Some(seed), false) = (seed, matches!(mode, Mode::Mutate(_))) {
        spec.seed = seed;
    }
    let dir = dir.unwrap_or_default();
    let result = match mode {
        Mode::Plan => {
            println!("{}", TreeStats::of_plan(&plan_tree(&spec)));
            Ok(())
        }
        Mode::Generate => generate_tree(&dir, &spec).map(|s| println!("{s}")),
        Mode::Mutate(fraction) => mutate_tree(&dir, fraction, seed.unwrap_or(1)).map(|s| {
            println!(
                "changed {} of {} bytes ({:.2}%): {} database pages, {} bytes appended to logs, \
                 {} files rewritten, {} created, {} deleted",
                s.bytes_written,
                s.total_bytes_before,
                100.0 * s.bytes_written as f64 / s.total_bytes_before.max(1) as f64,
                s.database_pages,
                s.bytes_appended,
                s.files_rewritten,
                s.files_created,
                s.files_deleted
            )
        }),
        Mode::Digest => tree_digest(&dir).map(|d| println!("{d:016x}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-tree: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
