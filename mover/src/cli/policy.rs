//! `arkiv policy set|show`: thin commands over [`arkiv_engine::policy`].
//!
//! `policy set` follows `kopia policy set` (`cli/command_policy_set*.go`): a target is either
//! `--global` or one `USER@HOST:/PATH`, `USER@HOST` or `@HOST`; each `--keep-*` flag takes a
//! number (32-bit, like kopia's `ParseInt(…, 10, 32)`) or `inherit`/`default` (unset); with no
//! flag at all it fails with "no changes specified".

use std::collections::BTreeMap;

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
    Set(PolicySetArgs),
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
    /// File data compression: a kopia compressor name (zstd-fastest, zstd, gzip, …), none, or 'inherit'
    #[arg(long)]
    pub compression: Option<String>,
}

/// One retention count of a policy: its `--keep-*` flag, the words kopia's `policy set` logs
/// for it, `policy show`'s label, and the field.
struct Keep {
    /// The flag without dashes (`keep-latest`).
    flag: &'static str,
    /// The flag's help line.
    help: &'static str,
    /// What kopia calls it in `policy set` logs.
    desc: &'static str,
    /// The `policy show` row label.
    label: &'static str,
    /// The policy field.
    field: fn(&mut RetentionPolicy) -> &mut Option<i64>,
}

/// The retention counts in kopia's order (`policy show` rows and `policy set` log lines).
const KEEPS: [Keep; 6] = [
    Keep {
        flag: "keep-annual",
        help: "Number of most-recent annual snapshots to keep per source (or 'inherit')",
        desc: "number of annual snapshots to keep",
        label: "Annual snapshots:",
        field: |r| &mut r.keep_annual,
    },
    Keep {
        flag: "keep-monthly",
        help: "Number of most-recent monthly snapshots to keep per source (or 'inherit')",
        desc: "number of monthly snapshots to keep",
        label: "Monthly snapshots:",
        field: |r| &mut r.keep_monthly,
    },
    Keep {
        flag: "keep-weekly",
        help: "Number of most-recent weekly snapshots to keep per source (or 'inherit')",
        desc: "number of weekly snapshots to keep",
        label: "Weekly snapshots:",
        field: |r| &mut r.keep_weekly,
    },
    Keep {
        flag: "keep-daily",
        help: "Number of most-recent daily snapshots to keep per source (or 'inherit')",
        desc: "number of daily snapshots to keep",
        label: "Daily snapshots:",
        field: |r| &mut r.keep_daily,
    },
    Keep {
        flag: "keep-hourly",
        help: "Number of most-recent hourly snapshots to keep per source (or 'inherit')",
        desc: "number of hourly snapshots to keep",
        label: "Hourly snapshots:",
        field: |r| &mut r.keep_hourly,
    },
    Keep {
        flag: "keep-latest",
        help: "Number of most recent snapshots to keep per source (or 'inherit')",
        desc: "number of latest snapshots to keep",
        label: "Latest snapshots:",
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
    Ok(changes)
}

/// Dispatches a policy subcommand.
pub async fn run(g: &GlobalArgs, env: Env<'_>, cmd: PolicyCommand) -> Result<i32> {
    match cmd {
        PolicyCommand::Set(a) => set(g, env, a).await,
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

/// Where a value comes from, like `kopia policy show`.
fn origin(target: &PolicyTarget, def: Option<&StoredPolicy>) -> String {
    match def {
        None => "(default)".to_owned(),
        Some(p) if p.target() == *target => "(defined for this target)".to_owned(),
        Some(p) => format!("inherited from {}", p.target()),
    }
}

/// The first policy in `chain` (most specific first, stopping after `noParent`) that sets a
/// value, and the value; `None` = built-in default.
fn defined<T>(
    chain: &[StoredPolicy],
    get: impl Fn(&Policy) -> Option<T>,
) -> (Option<&StoredPolicy>, Option<T>) {
    for p in chain {
        if let Some(v) = get(&p.policy) {
            return (Some(p), Some(v));
        }
        if p.policy.no_parent {
            return (None, None);
        }
    }
    (None, None)
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

/// `arkiv policy show`
async fn show(g: &GlobalArgs, env: Env<'_>, a: PolicyTargetArgs) -> Result<i32> {
    let target = a.resolve()?;
    let repo = g.open(env).await?;
    let manifests = repo.manifests().await?;
    let chain = chain_for(&manifests, &target);
    let mut out = format!("Policy for {target}:\n\nRetention:\n");
    let mut defaults = RetentionPolicy::kopia_default();
    let cut = chain.iter().any(|p| p.policy.no_parent);
    for keep in &KEEPS {
        let label = keep.label;
        let default = *(keep.field)(&mut defaults);
        let (def, v) = defined(&chain, |p| *(keep.field)(&mut p.retention.clone()));
        // after a noParent policy kopia does not fall back to the built-in defaults
        let v = v.or(if cut { None } else { default });
        let shown = v.map_or_else(|| "(none)".to_owned(), |n| n.to_string());
        out.push_str(&format!(
            "  {label:<20}{shown:>14}   {}\n",
            origin(&target, def)
        ));
    }
    let (def, comp) = defined(&chain, |p| {
        Some(p.compression.compressor_name.clone()).filter(|s| !s.is_empty())
    });
    let comp = comp.unwrap_or_else(|| {
        if cut {
            "(none)".to_owned()
        } else {
            arkiv_format::policy::DEFAULT_COMPRESSOR.to_owned()
        }
    });
    out.push_str(&format!(
        "\nCompression:\n  {:<20}{comp:>14}   {}\n",
        "Compressor:",
        origin(&target, def)
    ));
    print!("{out}");
    Ok(exit::OK)
}
