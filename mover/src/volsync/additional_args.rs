//! `KOPIA_ADDITIONAL_ARGS` for a backup: the kopia `snapshot create` flags arkiv honours
//! (`--description`, `--tags`, `--parallel`, `--force-hash`); every other one is named in a
//! warning.

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
        let mut i = 0;
        while let Some(arg) = args.get(i) {
            i += 1;
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f, Some(v.to_owned())),
                None => (arg.as_str(), None),
            };
            let known = matches!(
                flag,
                "--description" | "--tags" | "--tag" | "--parallel" | "--force-hash"
            );
            if !known {
                out.warnings.push(format!(
                    "KOPIA_ADDITIONAL_ARGS: {arg:?} is not supported by arkiv; ignored"
                ));
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => {
                        out.warnings.push(format!(
                            "KOPIA_ADDITIONAL_ARGS: {flag} needs a value; ignored"
                        ));
                        continue;
                    }
                },
            };
            let bad = |out: &mut SnapshotArgs| {
                out.warnings.push(format!(
                    "KOPIA_ADDITIONAL_ARGS: invalid value {value:?} for {flag}; ignored"
                ));
            };
            match flag {
                "--description" => out.description = Some(value.clone()),
                "--tags" | "--tag" => match value.split_once(':') {
                    Some((k, v)) if !k.is_empty() => {
                        out.tags.insert(format!("tag:{k}"), v.to_owned());
                    }
                    _ => bad(&mut out),
                },
                "--parallel" => match value.trim().parse::<usize>() {
                    Ok(n) if n > 0 => out.parallel = Some(n),
                    _ => bad(&mut out),
                },
                _ => match value.trim().parse::<f64>() {
                    Ok(p) if (0.0..=100.0).contains(&p) => out.force_hash = Some(p),
                    _ => bad(&mut out),
                },
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
        ]));
        assert_eq!(a.description.as_deref(), Some("Nightly"));
        assert_eq!(a.tags.get("tag:app").map(String::as_str), Some("web"));
        assert_eq!(a.parallel, Some(4));
        assert_eq!(a.force_hash, Some(5.0));
        assert_eq!(a.warnings.len(), 1);
        assert!(a.warnings[0].contains("--one-file-system"));
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
}
