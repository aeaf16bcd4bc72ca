//! `KOPIA_ADDITIONAL_ARGS`: the kopia flags VolSync users put in `additionalArgs`, for the
//! step they were meant for (contract §6.9: the script also handed them to `repository
//! connect`/`create`, which broke; arkiv applies them to the snapshot or restore only).
//!
//! Backup ([`SnapshotArgs`], kopia `snapshot create`): `--description`, `--tags k:v`
//! (repeatable), `--parallel N`, `--force-hash PERCENT` are honoured. Restore
//! ([`RestoreArgs`], kopia `snapshot restore`): `--skip-owners`, `--parallel N`,
//! `--[no-]ignore-permission-errors`, `--[no-]delete-extra`, `--write-files-atomically`
//! (arkiv always writes a temporary file and renames it) are honoured, and arkiv's own
//! `--arkiv-fail-if-no-snapshot` (no eligible snapshot ⇒ exit 1).
//!
//! Every other argument is named in one `WARN:` line, with the reason when it is a kopia
//! flag this build knows but does not apply ([`NOT_APPLIED`]). `--one-file-system` and
//! `--ignore-cache-dirs` are policy semantics of the engine (issue 11): they are warned here
//! until the engine has them.

/// Kopia `snapshot create` / `snapshot restore` flags that have a meaning for arkiv but that
/// this build does not apply, with the reason printed in the warning.
pub const NOT_APPLIED: &[(&str, &str)] = &[
    (
        "--one-file-system",
        "the engine does not stop at filesystem boundaries yet",
    ),
    (
        "--ignore-cache-dirs",
        "the engine does not skip CACHEDIR.TAG directories yet",
    ),
    (
        "--upload-limit-mb",
        "arkiv cannot stop an upload part-way at a size limit",
    ),
    ("--skip-permissions", "arkiv always restores file modes"),
    ("--skip-times", "arkiv always restores modification times"),
    (
        "--write-sparse-files",
        "arkiv writes files in full (holes are not recreated)",
    ),
    ("--pin", "arkiv does not write snapshot pins"),
    ("--checkpoint-interval", "arkiv writes no checkpoints"),
];

/// How a flag takes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `--flag value` or `--flag=value`.
    Value,
    /// `--flag`, `--no-flag`, `--flag=true|false`.
    Bool,
}

/// One parsed flag: its name (without `--no-`) and value (`"true"`/`"false"` for booleans).
struct Flag {
    name: String,
    value: String,
}

/// Splits `args` into known flags (by `known`) and warnings for everything else.
fn parse(
    args: &[String],
    known: &[(&str, Kind)],
    warnings: &mut Vec<String>,
    step: &str,
) -> Vec<Flag> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        let (name, negated) = match flag.strip_prefix("--no-") {
            Some(rest) => (format!("--{rest}"), true),
            None => (flag.to_owned(), false),
        };
        let kind = known.iter().find(|(n, _)| *n == name).map(|(_, k)| *k);
        match kind {
            Some(Kind::Bool) => {
                let value = match (negated, inline.as_deref()) {
                    (false, None) => "true".to_owned(),
                    (true, None) => "false".to_owned(),
                    (false, Some(v)) if v == "true" || v == "false" => v.to_owned(),
                    _ => {
                        warnings.push(format!(
                            "KOPIA_ADDITIONAL_ARGS: {arg:?} is not a valid {name} flag; ignored"
                        ));
                        continue;
                    }
                };
                out.push(Flag { name, value });
            }
            Some(Kind::Value) if !negated => {
                let value = match inline {
                    Some(v) => v,
                    None => match args.get(i) {
                        Some(v) => {
                            i += 1;
                            v.clone()
                        }
                        None => {
                            warnings.push(format!(
                                "KOPIA_ADDITIONAL_ARGS: {flag} needs a value; ignored"
                            ));
                            continue;
                        }
                    },
                };
                out.push(Flag { name, value });
            }
            _ => {
                let why = NOT_APPLIED
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("not supported by arkiv", |(_, why)| why);
                warnings.push(format!(
                    "KOPIA_ADDITIONAL_ARGS: {arg:?} not applied to the {step}: {why}; ignored"
                ));
            }
        }
    }
    out
}

fn bad(warnings: &mut Vec<String>, f: &Flag) {
    warnings.push(format!(
        "KOPIA_ADDITIONAL_ARGS: invalid value {:?} for {}; ignored",
        f.value, f.name
    ));
}

fn positive(v: &str) -> Option<usize> {
    v.trim().parse::<usize>().ok().filter(|n| *n > 0)
}

/// `KOPIA_ADDITIONAL_ARGS` that mean something for a snapshot; the rest are ignored with a
/// warning (they were Kopia CLI flags).
#[derive(Debug, Default, PartialEq)]
pub struct SnapshotArgs {
    /// `--description`.
    pub description: Option<String>,
    /// `--tags key:value` (repeatable), as manifest tags `tag:key`.
    pub tags: std::collections::BTreeMap<String, String>,
    /// `--parallel N` (wins over `KOPIA_PARALLELISM`).
    pub parallel: Option<usize>,
    /// `--force-hash PERCENT`.
    pub force_hash: Option<f64>,
    /// One line per ignored argument.
    pub warnings: Vec<String>,
}

impl SnapshotArgs {
    /// Parses `--flag value` and `--flag=value` forms.
    pub fn parse(args: &[String]) -> SnapshotArgs {
        let mut out = SnapshotArgs::default();
        let known = [
            ("--description", Kind::Value),
            ("--tags", Kind::Value),
            ("--tag", Kind::Value),
            ("--parallel", Kind::Value),
            ("--force-hash", Kind::Value),
        ];
        for f in parse(args, &known, &mut out.warnings, "snapshot") {
            match f.name.as_str() {
                "--description" => out.description = Some(f.value),
                "--tags" | "--tag" => match f.value.split_once(':') {
                    Some((k, v)) if !k.is_empty() => {
                        out.tags.insert(format!("tag:{k}"), v.to_owned());
                    }
                    _ => bad(&mut out.warnings, &f),
                },
                "--parallel" => match positive(&f.value) {
                    Some(n) => out.parallel = Some(n),
                    None => bad(&mut out.warnings, &f),
                },
                _ => match f.value.trim().parse::<f64>() {
                    Ok(p) if (0.0..=100.0).contains(&p) => out.force_hash = Some(p),
                    _ => bad(&mut out.warnings, &f),
                },
            }
        }
        out
    }
}

/// `KOPIA_ADDITIONAL_ARGS` that mean something for a restore (kopia `snapshot restore`);
/// `None` leaves the mover's default.
#[derive(Debug, Default, PartialEq)]
pub struct RestoreArgs {
    /// `--skip-owners` (`Some(true)`): do not restore uid/gid.
    pub skip_owners: Option<bool>,
    /// `--parallel N`: files restored at once.
    pub parallel: Option<usize>,
    /// `--[no-]ignore-permission-errors` (the mover's default, like the script's, is on).
    pub ignore_permission_errors: Option<bool>,
    /// `--[no-]delete-extra`: remove files absent from the snapshot (as
    /// `KOPIA_ENABLE_FILE_DELETION=true`).
    pub delete_extra: Option<bool>,
    /// `--arkiv-fail-if-no-snapshot` (not a kopia flag): no eligible snapshot fails the
    /// restore (exit 1).
    pub fail_if_no_snapshot: Option<bool>,
    /// One line per ignored argument.
    pub warnings: Vec<String>,
}

impl RestoreArgs {
    /// Parses the restore flags; everything else becomes a warning.
    pub fn parse(args: &[String]) -> RestoreArgs {
        let mut out = RestoreArgs::default();
        let known = [
            ("--skip-owners", Kind::Bool),
            ("--parallel", Kind::Value),
            ("--ignore-permission-errors", Kind::Bool),
            ("--delete-extra", Kind::Bool),
            ("--write-files-atomically", Kind::Bool),
            ("--arkiv-fail-if-no-snapshot", Kind::Bool),
        ];
        for f in parse(args, &known, &mut out.warnings, "restore") {
            let on = f.value == "true";
            match f.name.as_str() {
                "--skip-owners" => out.skip_owners = Some(on),
                "--ignore-permission-errors" => out.ignore_permission_errors = Some(on),
                "--delete-extra" => out.delete_extra = Some(on),
                "--arkiv-fail-if-no-snapshot" => out.fail_if_no_snapshot = Some(on),
                "--parallel" => match positive(&f.value) {
                    Some(n) => out.parallel = Some(n),
                    None => bad(&mut out.warnings, &f),
                },
                // Always atomic: a temporary file renamed into place.
                _ if on => {}
                _ => out.warnings.push(
                    "KOPIA_ADDITIONAL_ARGS: --no-write-files-atomically not applied: arkiv \
                     always writes a temporary file and renames it; ignored"
                        .into(),
                ),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn snapshot_args_known_and_ignored() {
        let a = SnapshotArgs::parse(&args(&[
            "--description=Nightly",
            "--tags",
            "app:web",
            "--parallel=4",
            "--one-file-system",
            "--force-hash",
            "5",
            "--upload-limit-mb=100",
            "--bogus",
        ]));
        assert_eq!(a.description.as_deref(), Some("Nightly"));
        assert_eq!(a.tags.get("tag:app").map(String::as_str), Some("web"));
        assert_eq!(a.parallel, Some(4));
        assert_eq!(a.force_hash, Some(5.0));
        assert_eq!(a.warnings.len(), 3, "{:?}", a.warnings);
        assert!(a.warnings[0].contains("--one-file-system"));
        assert!(a.warnings[0].contains("filesystem boundaries"));
        assert!(a.warnings[1].contains("--upload-limit-mb=100"));
        assert!(a.warnings[2].contains("\"--bogus\" not applied to the snapshot"));
    }

    #[test]
    fn snapshot_args_bad_values_warn() {
        let a = SnapshotArgs::parse(&args(&["--parallel=x", "--tags=novalue", "--description"]));
        assert_eq!(
            a,
            SnapshotArgs {
                warnings: a.warnings.clone(),
                ..SnapshotArgs::default()
            }
        );
        assert_eq!(a.warnings.len(), 3);
    }

    #[test]
    fn restore_args_known_and_ignored() {
        let a = RestoreArgs::parse(&args(&[
            "--skip-owners",
            "--parallel",
            "3",
            "--no-ignore-permission-errors",
            "--delete-extra=true",
            "--write-files-atomically",
            "--write-sparse-files",
            "--skip-permissions",
            "--description=x",
        ]));
        assert_eq!(a.skip_owners, Some(true));
        assert_eq!(a.parallel, Some(3));
        assert_eq!(a.ignore_permission_errors, Some(false));
        assert_eq!(a.delete_extra, Some(true));
        assert_eq!(a.warnings.len(), 3, "{:?}", a.warnings);
        assert!(a.warnings[0].contains("--write-sparse-files"));
        assert!(a.warnings[1].contains("--skip-permissions"));
        assert!(a.warnings[2].contains("--description=x"));
        let b = RestoreArgs::parse(&args(&[
            "--skip-owners=maybe",
            "--no-write-files-atomically",
        ]));
        assert_eq!(b.skip_owners, None);
        assert_eq!(b.warnings.len(), 2, "{:?}", b.warnings);
    }
}
