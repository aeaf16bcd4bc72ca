//! `arkiv policy set|show`: thin commands over [`arkiv_engine::policy`].
//!
//! `policy set` follows `kopia policy set` (`cli/command_policy_set*.go`): a target is either
//! `--global` or one `USER@HOST:/PATH`, `USER@HOST` or `@HOST`; each `--keep-*` flag takes a
//! number (32-bit, like kopia's `ParseInt(…, 10, 32)`) or `inherit`/`default` (unset); with no
//! flag at all it fails with "no changes specified". The files, error handling and compression
//! flags are kopia's (`--add-ignore`, `--remove-ignore`, `--clear-ignore`, the `-dot-ignore`
//! trio, `--max-file-size`, `--one-file-system`, `--ignore-cache-dirs`, `--ignore-file-errors`,
//! `--ignore-dir-errors`, `--ignore-unknown-types`, `--compression-min-size`/`-max-size`, the
//! `-only-compress`/`-never-compress` trios, `--metadata-compression`), applied in kopia's order
//! and stored as kopia stores them: lists sorted and unique, `inherit` removes the key, sizes in
//! plain bytes. `policy show` is kopia's table ([`super::policy_show`]).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use arkiv_engine::policy::{PolicyTarget, StoredPolicy, policy_hierarchy, set_policy};
use arkiv_format::policy::{Policy, RetentionPolicy};
use clap::{Args, Subcommand};

use super::{GlobalArgs, parse_source};
use crate::exit::{self, CliError};
use crate::{Env, compression};

/// `arkiv policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Set retention (and compression) settings of a policy, like `kopia policy set`.
    Set(Box<PolicySetArgs>),
    /// Show the effective policy of a target and where each value comes from.
    Show(PolicyTargetArgs),
}

/// Which policy: `--global` or one target.
#[derive(Debug, Args)]
pub struct PolicyTargetArgs {
    /// The global policy
    #[arg(long)]
    pub global: bool,
    /// USER@HOST:/PATH, USER@HOST or @HOST
    pub target: Option<String>,
}

/// `arkiv policy set`
#[derive(Debug, Args)]
pub struct PolicySetArgs {
    #[command(flatten)]
    pub target: PolicyTargetArgs,
    #[command(flatten)]
    pub keep: KeepArgs,
    #[command(flatten)]
    pub files: FilesArgs,
    #[command(flatten)]
    pub errors: ErrorArgs,
    /// File data compression: a kopia compressor name (zstd-fastest, zstd, gzip, …), none, or 'inherit'
    #[arg(long)]
    pub compression: Option<String>,
    #[command(flatten)]
    pub compress: CompressArgs,
}

/// `kopia policy set`'s files flags (`cli/command_policy_set_files.go`).
#[derive(Debug, Clone, Default, Args)]
pub struct FilesArgs {
    /// List of paths to add to the ignore list
    #[arg(long = "add-ignore", value_name = "PATTERN")]
    pub add_ignore: Vec<String>,
    /// List of paths to remove from the ignore list
    #[arg(long = "remove-ignore", value_name = "PATTERN")]
    pub remove_ignore: Vec<String>,
    /// Clear list of paths in the ignore list
    #[arg(long = "clear-ignore")]
    pub clear_ignore: bool,
    /// List of paths to add to the dot-ignore list
    #[arg(long = "add-dot-ignore", value_name = "FILENAME")]
    pub add_dot_ignore: Vec<String>,
    /// List of paths to remove from the dot-ignore list
    #[arg(long = "remove-dot-ignore", value_name = "FILENAME")]
    pub remove_dot_ignore: Vec<String>,
    /// Clear list of paths in the dot-ignore list
    #[arg(long = "clear-dot-ignore")]
    pub clear_dot_ignore: bool,
    /// Exclude files above given size (bytes, or 'inherit')
    #[arg(long = "max-file-size", value_name = "N")]
    pub max_file_size: Option<String>,
    /// Stay in parent filesystem when finding files ('true', 'false', 'inherit')
    #[arg(long = "one-file-system", value_parser = BOOL_ENUM)]
    pub one_file_system: Option<String>,
    /// Ignore cache directories ('true', 'false', 'inherit')
    #[arg(long = "ignore-cache-dirs", value_parser = BOOL_ENUM)]
    pub ignore_cache_dirs: Option<String>,
}

/// `kopia policy set`'s error handling flags.
#[derive(Debug, Clone, Default, Args)]
pub struct ErrorArgs {
    /// Ignore errors reading files while traversing ('true', 'false', 'inherit')
    #[arg(long = "ignore-file-errors", value_parser = BOOL_ENUM)]
    pub ignore_file_errors: Option<String>,
    /// Ignore errors reading directories while traversing ('true', 'false', 'inherit')
    #[arg(long = "ignore-dir-errors", value_parser = BOOL_ENUM)]
    pub ignore_dir_errors: Option<String>,
    /// Ignore unknown entry types in directories ('true', 'false', 'inherit')
    #[arg(long = "ignore-unknown-types", value_parser = BOOL_ENUM)]
    pub ignore_unknown_types: Option<String>,
}

/// `kopia policy set`'s other compression flags.
#[derive(Debug, Clone, Default, Args)]
pub struct CompressArgs {
    /// Min size of file to attempt compression for (bytes, or 'inherit')
    #[arg(long = "compression-min-size")]
    pub min_size: Option<String>,
    /// Max size of file to attempt compression for (bytes, or 'inherit')
    #[arg(long = "compression-max-size")]
    pub max_size: Option<String>,
    /// List of extensions to add to the only-compress list
    #[arg(long = "add-only-compress", value_name = "PATTERN")]
    pub add_only: Vec<String>,
    /// List of extensions to remove from the only-compress list
    #[arg(long = "remove-only-compress", value_name = "PATTERN")]
    pub remove_only: Vec<String>,
    /// Clear list of extensions in the only-compress list
    #[arg(long = "clear-only-compress")]
    pub clear_only: bool,
    /// List of extensions to add to the never compress list
    #[arg(long = "add-never-compress", value_name = "PATTERN")]
    pub add_never: Vec<String>,
    /// List of extensions to remove from the never compress list
    #[arg(long = "remove-never-compress", value_name = "PATTERN")]
    pub remove_never: Vec<String>,
    /// Clear list of extensions in the never compress list
    #[arg(long = "clear-never-compress")]
    pub clear_never: bool,
    /// Metadata compression: a kopia compressor name, none, or 'inherit'
    #[arg(long = "metadata-compression")]
    pub metadata: Option<String>,
}

/// kopia's `booleanEnumValues`.
const BOOL_ENUM: [&str; 3] = ["true", "false", "inherit"];

/// One retention count of a policy: its `--keep-*` flag, the words kopia's `policy set` logs
/// for it, and the field.
struct Keep {
    /// The flag without dashes (`keep-latest`).
    flag: &'static str,
    /// The flag's help line.
    help: &'static str,
    /// What kopia calls it in `policy set` logs.
    desc: &'static str,
    /// The policy field.
    field: fn(&mut RetentionPolicy) -> &mut Option<i64>,
}

/// The retention counts in kopia's order (`policy show` rows and `policy set` log lines).
const KEEPS: [Keep; 6] = [
    Keep {
        flag: "keep-annual",
        help: "Number of most-recent annual snapshots to keep per source (or 'inherit')",
        desc: "number of annual snapshots to keep",
        field: |r| &mut r.keep_annual,
    },
    Keep {
        flag: "keep-monthly",
        help: "Number of most-recent monthly snapshots to keep per source (or 'inherit')",
        desc: "number of monthly snapshots to keep",
        field: |r| &mut r.keep_monthly,
    },
    Keep {
        flag: "keep-weekly",
        help: "Number of most-recent weekly snapshots to keep per source (or 'inherit')",
        desc: "number of weekly snapshots to keep",
        field: |r| &mut r.keep_weekly,
    },
    Keep {
        flag: "keep-daily",
        help: "Number of most-recent daily snapshots to keep per source (or 'inherit')",
        desc: "number of daily snapshots to keep",
        field: |r| &mut r.keep_daily,
    },
    Keep {
        flag: "keep-hourly",
        help: "Number of most-recent hourly snapshots to keep per source (or 'inherit')",
        desc: "number of hourly snapshots to keep",
        field: |r| &mut r.keep_hourly,
    },
    Keep {
        flag: "keep-latest",
        help: "Number of most recent snapshots to keep per source (or 'inherit')",
        desc: "number of latest snapshots to keep",
        field: |r| &mut r.keep_latest,
    },
];

/// The `--keep-*` values as given, in [`KEEPS`] order (built from that table, so the six
/// flags are declared once).
#[derive(Debug, Clone, Default)]
pub struct KeepArgs {
    values: [Option<String>; 6],
}

impl clap::FromArgMatches for KeepArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> std::result::Result<Self, clap::Error> {
        let mut k = KeepArgs::default();
        k.update_from_arg_matches(m)?;
        Ok(k)
    }

    fn update_from_arg_matches(
        &mut self,
        m: &clap::ArgMatches,
    ) -> std::result::Result<(), clap::Error> {
        for (slot, keep) in self.values.iter_mut().zip(&KEEPS) {
            if let Some(v) = m.get_one::<String>(keep.flag) {
                *slot = Some(v.clone());
            }
        }
        Ok(())
    }
}

impl clap::Args for KeepArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        // `policy set --help` lists them latest first, as kopia does
        KEEPS.iter().rev().fold(cmd, |cmd, keep| {
            cmd.arg(
                clap::Arg::new(keep.flag)
                    .long(keep.flag)
                    .value_name("N")
                    .help(keep.help),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

fn config_err(msg: impl Into<String>) -> anyhow::Error {
    CliError::new(exit::CONFIG, msg)
}

impl PolicyTargetArgs {
    fn resolve(&self) -> Result<PolicyTarget> {
        match (self.global, &self.target) {
            (true, None) => Ok(PolicyTarget::Global),
            (false, Some(t)) => {
                let si = parse_source(t)?;
                if si.host.is_empty() {
                    return Err(config_err(format!("invalid policy target {t:?}")));
                }
                Ok(PolicyTarget::from(si))
            }
            _ => Err(CliError::new(
                exit::USAGE,
                "must pass either '--global' or one target (USER@HOST:/PATH, USER@HOST or @HOST)",
            )),
        }
    }
}

/// One `--keep-*` value: `Some(Some(n))` set, `Some(None)` inherit, `None` unchanged.
fn parse_keep(flag: &str, v: Option<&str>) -> Result<Option<Option<i64>>> {
    match v {
        None => Ok(None),
        Some("inherit" | "default") => Ok(Some(None)),
        Some(s) => s
            .parse::<i32>()
            .map(|n| Some(Some(i64::from(n))))
            .map_err(|e| config_err(format!("can't parse --{flag} {s:?}: {e}"))),
    }
}

/// Applies the flags to `p`; returns the change descriptions (kopia's log lines).
fn apply_flags(a: &PolicySetArgs, p: &mut Policy) -> Result<Vec<String>> {
    let mut changes = Vec::new();
    for (keep, value) in KEEPS.iter().zip(&a.keep.values) {
        let (flag, desc) = (keep.flag, keep.desc);
        let field = (keep.field)(&mut p.retention);
        match parse_keep(flag, value.as_deref())? {
            None => {}
            Some(None) => {
                *field = None;
                changes.push(format!(
                    "resetting {desc:?} to a default value inherited from parent."
                ));
            }
            Some(Some(n)) => {
                *field = Some(n);
                changes.push(format!("setting {desc:?} to {n}."));
            }
        }
    }
    apply_files(&a.files, p, &mut changes)?;
    apply_errors(&a.errors, p, &mut changes)?;
    let c = &a.compress;
    number64(
        "minimum file size subject to compression",
        &mut p.compression.min_size,
        c.min_size.as_deref(),
        &mut changes,
    )?;
    number64(
        "maximum file size subject to compression",
        &mut p.compression.max_size,
        c.max_size.as_deref(),
        &mut changes,
    )?;
    if let Some(c) = &a.compression {
        if c == "inherit" || c == "default" {
            p.compression.compressor_name.clear();
            changes.push(
                "resetting compression algorithm to default value inherited from parent".into(),
            );
        } else {
            compression::choose(c).map_err(|e| config_err(format!("--compression {e}")))?;
            p.compression.compressor_name.clone_from(c);
            changes.push(format!("setting compression algorithm to {c}"));
        }
    }
    string_list(
        "only-compress extensions",
        &mut p.compression.only_compress,
        &c.add_only,
        &c.remove_only,
        c.clear_only,
        &mut changes,
    );
    string_list(
        "never-compress extensions",
        &mut p.compression.never_compress,
        &c.add_never,
        &c.remove_never,
        c.clear_never,
        &mut changes,
    );
    if let Some(m) = &c.metadata {
        if m == "inherit" || m == "default" {
            p.metadata_compression.compressor_name.clear();
            changes.push(
                "resetting metadata compression algorithm to default value inherited from parent"
                    .into(),
            );
        } else {
            compression::choose(m)
                .map_err(|e| config_err(format!("--metadata-compression {e}")))?;
            p.metadata_compression.compressor_name.clone_from(m);
            changes.push(format!("setting metadata compression algorithm to {m}"));
        }
    }
    Ok(changes)
}

/// kopia's `applyPolicyStringList`: clear, or add then remove; the result sorted and unique.
fn string_list(
    desc: &str,
    val: &mut Vec<String>,
    add: &[String],
    remove: &[String],
    clear: bool,
    changes: &mut Vec<String>,
) {
    if clear {
        changes.push(format!("removing all from {desc:?}"));
        val.clear();
        return;
    }
    let mut set: BTreeSet<String> = val.drain(..).collect();
    for a in add {
        changes.push(format!("adding {a:?} to {desc:?}"));
        set.insert(a.clone());
    }
    for r in remove {
        changes.push(format!("removing {r:?} from {desc:?}"));
        set.remove(r);
    }
    *val = set.into_iter().collect();
}

/// kopia's `applyPolicyNumber64`: a 64-bit number, or `inherit`/`default` (0).
fn number64(desc: &str, val: &mut i64, s: Option<&str>, changes: &mut Vec<String>) -> Result<()> {
    match s {
        None | Some("") => {}
        Some("inherit" | "default") => {
            *val = 0;
            changes.push(format!(
                "resetting {desc:?} to a default value inherited from parent."
            ));
        }
        Some(s) => {
            *val = s
                .parse::<i64>()
                .map_err(|e| config_err(format!("can't parse the {desc:?} {s:?}: {e}")))?;
            changes.push(format!("setting {desc:?} to {val}."));
        }
    }
    Ok(())
}

/// kopia's `applyPolicyBoolPtr` (the value is already one of [`BOOL_ENUM`]).
fn bool_ptr(desc: &str, val: &mut Option<bool>, s: Option<&str>, changes: &mut Vec<String>) {
    match s {
        None | Some("") => {}
        Some("inherit" | "default") => {
            *val = None;
            changes.push(format!(
                "resetting {desc:?} to a default value inherited from parent."
            ));
        }
        Some(s) => {
            let b = s == "true";
            *val = Some(b);
            changes.push(format!("setting {desc:?} to {b}."));
        }
    }
}

/// The files flags, in kopia's order (`setFilesPolicyFromFlags`).
fn apply_files(a: &FilesArgs, p: &mut Policy, changes: &mut Vec<String>) -> Result<()> {
    let before = changes.len();
    let mut f = p
        .files_policy()
        .map_err(|e| config_err(format!("the stored files policy is unreadable: {e}")))?;
    number64(
        "maximum file size",
        &mut f.max_file_size,
        a.max_file_size.as_deref(),
        changes,
    )?;
    string_list(
        "dot-ignore filenames",
        &mut f.dot_ignore_files,
        &a.add_dot_ignore,
        &a.remove_dot_ignore,
        a.clear_dot_ignore,
        changes,
    );
    string_list(
        "ignore rules",
        &mut f.ignore_rules,
        &a.add_ignore,
        &a.remove_ignore,
        a.clear_ignore,
        changes,
    );
    bool_ptr(
        "ignore cache dirs",
        &mut f.ignore_cache_dirs,
        a.ignore_cache_dirs.as_deref(),
        changes,
    );
    bool_ptr(
        "one filesystem",
        &mut f.one_file_system,
        a.one_file_system.as_deref(),
        changes,
    );
    if changes.len() == before {
        return Ok(());
    }
    p.set_files_policy(&f)
        .map_err(|e| config_err(format!("files policy: {e}")))
}

/// The error handling flags.
fn apply_errors(a: &ErrorArgs, p: &mut Policy, changes: &mut Vec<String>) -> Result<()> {
    let before = changes.len();
    let mut h = p.error_handling_policy().map_err(|e| {
        config_err(format!(
            "the stored error handling policy is unreadable: {e}"
        ))
    })?;
    bool_ptr(
        "ignore file errors",
        &mut h.ignore_file_errors,
        a.ignore_file_errors.as_deref(),
        changes,
    );
    bool_ptr(
        "ignore directory errors",
        &mut h.ignore_directory_errors,
        a.ignore_dir_errors.as_deref(),
        changes,
    );
    bool_ptr(
        "ignore unknown types",
        &mut h.ignore_unknown_types,
        a.ignore_unknown_types.as_deref(),
        changes,
    );
    if changes.len() == before {
        return Ok(());
    }
    p.set_error_handling_policy(&h)
        .map_err(|e| config_err(format!("error handling policy: {e}")))
}

/// Dispatches a policy subcommand.
pub async fn run(g: &GlobalArgs, env: Env<'_>, cmd: PolicyCommand) -> Result<i32> {
    match cmd {
        PolicyCommand::Set(a) => set(g, env, *a).await,
        PolicyCommand::Show(a) => show(g, env, a).await,
    }
}

/// `arkiv policy set`
async fn set(g: &GlobalArgs, env: Env<'_>, a: PolicySetArgs) -> Result<i32> {
    let target = a.target.resolve()?;
    // validate the flags before touching the repository
    let changes = apply_flags(&a, &mut Policy::default())?;
    if changes.is_empty() {
        return Err(config_err("no changes specified"));
    }
    let (user, host) = g.identity();
    let repo = g.open(env).await?;
    eprintln!("Setting policy for {target}");
    for c in &changes {
        eprintln!(" - {c}");
    }
    let id = set_policy(&repo, &target, &user, &host, move |p| {
        // flags were validated above; errors cannot happen here
        let _ = apply_flags(&a, p);
    })
    .await?;
    eprintln!("Saved policy manifest {id}");
    Ok(exit::OK)
}

/// The policies that apply to `target`, most specific first, each manifest once.
fn chain_for(
    manifests: &BTreeMap<arkiv_format::ids::ManifestId, arkiv_format::manifest::ManifestEntry>,
    target: &PolicyTarget,
) -> Vec<StoredPolicy> {
    let mut chain = policy_hierarchy(manifests, &target.source_info());
    let mut seen = std::collections::HashSet::new();
    chain.retain(|p| seen.insert(p.id.clone()));
    chain
}

/// `arkiv policy show`: kopia's table ([`super::policy_show`]).
async fn show(g: &GlobalArgs, env: Env<'_>, a: PolicyTargetArgs) -> Result<i32> {
    let target = a.resolve()?;
    let repo = g.open(env).await?;
    let manifests = repo.manifests().await?;
    let chain = chain_for(&manifests, &target);
    print!(
        "{}",
        super::policy_show::render(&super::policy_show::Chain::new(target, &chain))
    );
    Ok(exit::OK)
}
