//! VolSync's `policyConfig` (contract §6.2 step 7): the global policy file
//! (`KOPIA_GLOBAL_POLICY_FILE`), the repository configuration file
//! (`KOPIA_REPOSITORY_CONFIG_FILE`), both under `KOPIA_CONFIG_PATH`, and the inline
//! `KOPIA_STRUCTURED_REPOSITORY_CONFIG`.
//!
//! What the shell mover (`mover-kopia/entry.sh`, `apply_policy_config`) does, and arkiv with it:
//! * Only when `KOPIA_CONFIG_PATH` is a directory, and only files that exist.
//! * The global policy file (JSON, at most 1 MiB) becomes ONE `kopia policy set --global` with
//!   `retention.keepHourly/keepDaily/keepWeekly/keepMonthly/keepYearly` →
//!   `--keep-hourly/daily/weekly/monthly/annual`, `compression.compressor` → `--compression`,
//!   `scheduling.interval` (a Go duration) → `--snapshot-interval` (stored as
//!   `scheduling.intervalSeconds`), each `files.ignore[]` → `--add-ignore` (added to the global
//!   rules, kept sorted and unique, as `policy set` does), `files.ignoreCacheDirs` →
//!   `--ignore-cache-dirs`. arkiv stores the same edits in the global policy manifest before the
//!   snapshot, so the snapshot, its compression and the retention after it use them. Every
//!   other key (kopia's own `keepLatest`, `keepAnnual`, `compressorName`, `maxFileSize`,
//!   `errorHandling`, VolSync's `compressionLevel`, …) is not applied by the script: arkiv does
//!   not apply it either and names it in one warning line per key.
//! * Divergences, all in the user's favour and named here: the script passes
//!   `--ignore-cache-dirs` / `--no-ignore-cache-dirs` without a value, which kopia refuses
//!   (the flag takes `true|false|inherit`), so with `files.ignoreCacheDirs` in the file the
//!   script's whole `policy set` fails and nothing of the file applies; arkiv applies the value.
//!   A value kopia would refuse (a bad compressor, a bad number) fails the script's whole
//!   command; arkiv warns about that one key and applies the rest.
//! * The repository configuration file: `enableActions` (`true`/`false`) gates
//!   `KOPIA_BEFORE_SNAPSHOT` / `KOPIA_AFTER_SNAPSHOT`; `uploadSpeed` and `downloadSpeed` are not
//!   applied (arkiv has no throttle; the script turns `uploadSpeed` into a `snapshot create`
//!   flag kopia does not have, and never uses `downloadSpeed`); other keys are ignored by the
//!   script. Each key not applied is one warning line.
//! * `KOPIA_STRUCTURED_REPOSITORY_CONFIG` (kopia's `repository.config` JSON, which the script
//!   hands to `kopia repository connect from-config`): arkiv connects with `KOPIA_REPOSITORY`
//!   and the backend variables instead; `hostname` and `username` change nothing (the mover's
//!   identity comes from `KOPIA_OVERRIDE_*`, as the script's `set-client` makes it); every
//!   other key is one warning line.
//!
//! Errors here are warnings: the backup goes on, as in the script.

use std::path::{Path, PathBuf};

use arkiv_engine::Repository;
use arkiv_engine::policy::{PolicyTarget, set_policy};
use arkiv_format::gojson;
use arkiv_format::policy::Policy;
use serde_json::Value;

use super::config::PolicyFiles;

/// The script's size limit for the global policy file.
const MAX_POLICY_FILE: u64 = 1024 * 1024;

/// The settings of a global policy file that arkiv applies (the script's keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalPolicyEdits {
    /// `retention.keepHourly`: `Some(None)` = reset to inherit (`"inherit"`/`"default"`).
    pub keep_hourly: Option<Option<i64>>,
    /// `retention.keepDaily`.
    pub keep_daily: Option<Option<i64>>,
    /// `retention.keepWeekly`.
    pub keep_weekly: Option<Option<i64>>,
    /// `retention.keepMonthly`.
    pub keep_monthly: Option<Option<i64>>,
    /// `retention.keepYearly` (kopia's `keepAnnual`).
    pub keep_annual: Option<Option<i64>>,
    /// `compression.compressor`: `Some("")` = reset to inherit.
    pub compressor: Option<String>,
    /// `scheduling.interval` in whole seconds.
    pub interval_seconds: Option<i64>,
    /// `files.ignore[]`, added to the global rules.
    pub add_ignore: Vec<String>,
    /// `files.ignoreCacheDirs`.
    pub ignore_cache_dirs: Option<bool>,
}

impl GlobalPolicyEdits {
    /// Whether there is anything to store.
    pub fn is_empty(&self) -> bool {
        *self == GlobalPolicyEdits::default()
    }

    /// Applies the edits to a policy, as `kopia policy set --global` with the script's flags.
    pub fn apply(&self, p: &mut Policy) -> arkiv_format::Result<()> {
        let r = &mut p.retention;
        for (slot, v) in [
            (&mut r.keep_hourly, self.keep_hourly),
            (&mut r.keep_daily, self.keep_daily),
            (&mut r.keep_weekly, self.keep_weekly),
            (&mut r.keep_monthly, self.keep_monthly),
            (&mut r.keep_annual, self.keep_annual),
        ] {
            if let Some(v) = v {
                *slot = v;
            }
        }
        if let Some(c) = &self.compressor {
            p.compression.compressor_name.clone_from(c);
        }
        if let Some(s) = self.interval_seconds {
            p.set_scheduling_interval_seconds(s)?;
        }
        if !self.add_ignore.is_empty() || self.ignore_cache_dirs.is_some() {
            let mut f = p.files_policy()?;
            let mut rules: std::collections::BTreeSet<String> = f.ignore_rules.drain(..).collect();
            rules.extend(self.add_ignore.iter().cloned());
            f.ignore_rules = rules.into_iter().collect();
            if let Some(b) = self.ignore_cache_dirs {
                f.ignore_cache_dirs = Some(b);
            }
            p.set_files_policy(&f)?;
        }
        Ok(())
    }

    /// The changes as `policy set` flags, for the log line.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let keep = |name: &str, v: Option<Option<i64>>, parts: &mut Vec<String>| match v {
            Some(Some(n)) => parts.push(format!("--keep-{name}={n}")),
            Some(None) => parts.push(format!("--keep-{name}=inherit")),
            None => {}
        };
        keep("hourly", self.keep_hourly, &mut parts);
        keep("daily", self.keep_daily, &mut parts);
        keep("weekly", self.keep_weekly, &mut parts);
        keep("monthly", self.keep_monthly, &mut parts);
        keep("annual", self.keep_annual, &mut parts);
        if let Some(c) = &self.compressor {
            let c = if c.is_empty() { "inherit" } else { c };
            parts.push(format!("--compression={c}"));
        }
        if let Some(s) = self.interval_seconds {
            parts.push(format!("--snapshot-interval={s}s"));
        }
        for r in &self.add_ignore {
            parts.push(format!("--add-ignore={r}"));
        }
        if let Some(b) = self.ignore_cache_dirs {
            parts.push(format!("--ignore-cache-dirs={b}"));
        }
        parts.join(" ")
    }
}

/// What jq's `-r` prints for a value (the text the script hands to kopia's flag parser).
fn jq_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A `--keep-*` value as kopia parses it: a 32-bit integer, or `inherit`/`default`.
fn keep_value(v: &Value) -> Option<Option<i64>> {
    match jq_text(v).as_str() {
        "inherit" | "default" => Some(None),
        s => s.parse::<i32>().ok().map(|n| Some(i64::from(n))),
    }
}

/// Reads a global policy file's JSON: the edits arkiv applies and one warning line per key it
/// does not apply (see the module docs).
pub fn parse_global_policy(text: &str, what: &str) -> (GlobalPolicyEdits, Vec<String>) {
    let mut e = GlobalPolicyEdits::default();
    let mut warnings = Vec::new();
    let top = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            warnings.push(format!("{what} is not a JSON object; nothing applied"));
            return (e, warnings);
        }
        Err(err) => {
            warnings.push(format!("{what} is not valid JSON ({err}); nothing applied"));
            return (e, warnings);
        }
    };
    let not_applied =
        |key: &str| format!("{what}: {key} not applied (the shell mover does not apply it either)");
    let bad = |key: &str, v: &Value, expected: &str| {
        format!("{what}: {key}={v} not applied: expected {expected}")
    };
    for (section, body) in &top {
        let known: &[&str] = match section.as_str() {
            "retention" => &[
                "keepHourly",
                "keepDaily",
                "keepWeekly",
                "keepMonthly",
                "keepYearly",
            ],
            "compression" => &["compressor"],
            "scheduling" => &["interval"],
            "files" => &["ignore", "ignoreCacheDirs"],
            _ => &[],
        };
        let Some(fields) = body.as_object().filter(|_| !known.is_empty()) else {
            // jq's `.section.key // empty` finds nothing in a null section
            if !body.is_null() {
                warnings.push(not_applied(section));
            }
            continue;
        };
        for (key, v) in fields {
            let name = format!("{section}.{key}");
            if !known.contains(&key.as_str()) {
                warnings.push(not_applied(&name));
                continue;
            }
            // jq's `// empty` skips null and false
            if v.is_null() || (*v == Value::Bool(false) && key != "ignoreCacheDirs") {
                continue;
            }
            match (section.as_str(), key.as_str()) {
                ("retention", k) => {
                    let Some(n) = keep_value(v) else {
                        warnings.push(bad(&name, v, "a whole number or \"inherit\""));
                        continue;
                    };
                    let slot = match k {
                        "keepHourly" => &mut e.keep_hourly,
                        "keepDaily" => &mut e.keep_daily,
                        "keepWeekly" => &mut e.keep_weekly,
                        "keepMonthly" => &mut e.keep_monthly,
                        _ => &mut e.keep_annual,
                    };
                    *slot = Some(n);
                }
                ("compression", _) => {
                    let name_text = jq_text(v);
                    if name_text == "inherit" || name_text == "default" {
                        e.compressor = Some(String::new());
                    } else {
                        match crate::compression::choose(&name_text) {
                            Ok(_) => e.compressor = Some(name_text.trim().to_owned()),
                            Err(err) => {
                                warnings.push(format!("{what}: {name} not applied: {err}"));
                            }
                        }
                    }
                }
                ("scheduling", _) => match gojson::duration::parse(&jq_text(v)) {
                    // kopia's SetInterval: int64(d.Seconds())
                    Ok(nanos) => e.interval_seconds = Some(nanos / 1_000_000_000),
                    Err(_) => warnings.push(bad(&name, v, "a duration such as 1h or 30m")),
                },
                ("files", "ignore") => match v.as_array() {
                    Some(rules) => {
                        for r in rules {
                            match r {
                                Value::String(s) if !s.is_empty() => {
                                    e.add_ignore.push(s.clone());
                                }
                                Value::String(_) | Value::Null => {}
                                other => warnings.push(bad(&name, other, "strings")),
                            }
                        }
                    }
                    None => warnings.push(bad(&name, v, "a list of rules")),
                },
                _ => match v {
                    Value::Bool(b) => e.ignore_cache_dirs = Some(*b),
                    _ => warnings.push(bad(&name, v, "true or false")),
                },
            }
        }
    }
    (e, warnings)
}

/// The settings of a repository configuration (the file, or the inline JSON) arkiv applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryConfig {
    /// `enableActions`: `Some(false)` skips the hooks.
    pub enable_actions: Option<bool>,
}

/// Reads the repository configuration file's JSON (see the module docs).
pub fn parse_repository_config(text: &str, what: &str) -> (RepositoryConfig, Vec<String>) {
    let mut out = RepositoryConfig::default();
    let mut warnings = Vec::new();
    let top = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            warnings.push(format!("{what} is not a JSON object; nothing applied"));
            return (out, warnings);
        }
        Err(err) => {
            warnings.push(format!("{what} is not valid JSON ({err}); nothing applied"));
            return (out, warnings);
        }
    };
    for (key, v) in &top {
        match key.as_str() {
            "enableActions" => match v {
                Value::Bool(b) => out.enable_actions = Some(*b),
                Value::Null => {}
                other => warnings.push(format!(
                    "{what}: enableActions={other} not applied: expected true or false"
                )),
            },
            "uploadSpeed" if !v.is_null() => warnings.push(format!(
                "{what}: uploadSpeed not applied: arkiv has no upload throttle (the shell \
                 mover passes it to `kopia snapshot create --upload-speed`, a flag kopia does \
                 not have)"
            )),
            "downloadSpeed" if !v.is_null() => warnings.push(format!(
                "{what}: downloadSpeed not applied: arkiv has no download throttle (the shell \
                 mover never uses it either)"
            )),
            "uploadSpeed" | "downloadSpeed" => {}
            other => warnings.push(format!(
                "{what}: {other} not applied (the shell mover does not apply it either)"
            )),
        }
    }
    (out, warnings)
}

/// `KOPIA_STRUCTURED_REPOSITORY_CONFIG`: one warning line per key arkiv does not apply (see
/// the module docs). No I/O; the JSON may hold credentials and is never printed.
pub fn structured_config_warnings(json: &str) -> Vec<String> {
    const WHAT: &str = "KOPIA_STRUCTURED_REPOSITORY_CONFIG";
    let top = match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return vec![format!("{WHAT} is not a JSON object; ignored")],
        Err(e) => {
            return vec![format!(
                "{WHAT} is not valid JSON (line {}, column {}); ignored",
                e.line(),
                e.column()
            )];
        }
    };
    top.keys()
        .filter_map(|k| match k.as_str() {
            "hostname" | "username" => None,
            "storage" => Some(format!(
                "{WHAT}.storage not applied: arkiv connects with KOPIA_REPOSITORY and the \
                 backend variables"
            )),
            "enableActions" => Some(format!(
                "{WHAT}.enableActions not applied: arkiv runs no actions defined in kopia \
                 policies; the hooks follow KOPIA_REPOSITORY_CONFIG_FILE, as in the script"
            )),
            other => Some(format!("{WHAT}.{other} not applied")),
        })
        .collect()
}

/// The script's conditions: `KOPIA_CONFIG_PATH` is a directory and `file` is set and a file.
fn mounted<'a>(files: &'a PolicyFiles, file: Option<&'a PathBuf>) -> Option<&'a Path> {
    let dir = files.config_dir.as_ref()?;
    if !dir.is_dir() {
        return None;
    }
    file.map(PathBuf::as_path).filter(|f| f.is_file())
}

/// Reads a mounted file (at most [`MAX_POLICY_FILE`] bytes); `Err` is the warning line.
fn read_small(path: &Path) -> Result<String, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if len > MAX_POLICY_FILE {
        return Err(format!(
            "{} is too large ({len} bytes > 1 MiB); nothing applied",
            path.display()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Stores the global policy file's settings in the repository's global policy (before the
/// snapshot, as the script's `ensure_connected` does), printing an `INFO:` line for what was
/// applied and a `WARN:` line for each key that was not. Nothing here fails the run.
pub async fn apply_global_policy(files: &PolicyFiles, repo: &Repository, user: &str, host: &str) {
    let Some(path) = mounted(files, files.global_policy_file.as_ref()) else {
        if let Some(f) = &files.global_policy_file {
            println!(
                "WARN: KOPIA_GLOBAL_POLICY_FILE {} not applied: {}",
                f.display(),
                if files.config_dir.as_ref().is_some_and(|d| d.is_dir()) {
                    "no such file"
                } else {
                    "KOPIA_CONFIG_PATH is not a mounted directory"
                }
            );
        }
        return;
    };
    let text = match read_small(path) {
        Ok(t) => t,
        Err(w) => {
            println!("WARN: {w}");
            return;
        }
    };
    let what = format!("global policy file {}", path.display());
    let (edits, warnings) = parse_global_policy(&text, &what);
    for w in &warnings {
        println!("WARN: {w}");
    }
    if edits.is_empty() {
        println!("INFO: {what}: no settings to apply");
        return;
    }
    let described = edits.describe();
    let stored = set_policy(repo, &PolicyTarget::Global, user, host, move |p| {
        if let Err(e) = edits.apply(p) {
            tracing::warn!("global policy: {e}");
        }
    })
    .await;
    match stored {
        Ok(id) => println!("INFO: {what} applied to the global policy ({described}): {id}"),
        Err(e) => println!(
            "WARN: {what} not applied: storing the global policy failed: {}: {e}",
            super::cause(&e)
        ),
    }
}

/// The repository configuration file's settings (`enableActions`), its warnings printed.
/// No file (or no mounted directory) is the default: hooks enabled.
pub fn repository_config(files: &PolicyFiles) -> RepositoryConfig {
    let Some(path) = mounted(files, files.repository_config_file.as_ref()) else {
        return RepositoryConfig::default();
    };
    let text = match read_small(path) {
        Ok(t) => t,
        Err(w) => {
            println!("WARN: {w}; hooks stay enabled");
            return RepositoryConfig::default();
        }
    };
    let what = format!("repository configuration {}", path.display());
    let (cfg, warnings) = parse_repository_config(&text, &what);
    for w in &warnings {
        println!("WARN: {w}");
    }
    cfg
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn volsync_documented_example() {
        // the example of VolSync's backup-configuration docs, with an interval added
        let (e, w) = parse_global_policy(
            r#"{
              "retention": {"keepDaily": 7, "keepWeekly": "4", "keepMonthly": 12, "keepYearly": 3,
                            "keepLatest": 5, "keepHourly": null},
              "compression": {"compressor": "zstd", "compressionLevel": 3},
              "files": {"ignore": [".git", "*.tmp", "node_modules", ""],
                        "dotIgnoreFiles": [".kopiaignore"], "maxFileSize": 10737418240,
                        "ignoreCacheDirs": false},
              "errorHandling": {"ignoreFileErrors": true},
              "scheduling": {"interval": "1h30m", "uploadParallelism": 4}
            }"#,
            "F",
        );
        assert_eq!(
            e,
            GlobalPolicyEdits {
                keep_hourly: None,
                keep_daily: Some(Some(7)),
                keep_weekly: Some(Some(4)),
                keep_monthly: Some(Some(12)),
                keep_annual: Some(Some(3)),
                compressor: Some("zstd".into()),
                interval_seconds: Some(5400),
                add_ignore: vec![".git".into(), "*.tmp".into(), "node_modules".into()],
                ignore_cache_dirs: Some(false),
            }
        );
        let expected = [
            "F: compression.compressionLevel not applied (the shell mover does not apply it either)",
            "F: errorHandling not applied (the shell mover does not apply it either)",
            "F: files.dotIgnoreFiles not applied (the shell mover does not apply it either)",
            "F: files.maxFileSize not applied (the shell mover does not apply it either)",
            "F: retention.keepLatest not applied (the shell mover does not apply it either)",
            "F: scheduling.uploadParallelism not applied (the shell mover does not apply it either)",
        ];
        assert_eq!(w, expected);
    }

    #[test]
    fn bad_values_are_one_warning_each() {
        let (e, w) = parse_global_policy(
            r#"{"retention":{"keepDaily":"lots","keepWeekly":"inherit"},
                "compression":{"compressor":"brotli"},"scheduling":{"interval":3600},
                "files":{"ignore":"*.tmp","ignoreCacheDirs":"yes"}}"#,
            "F",
        );
        assert_eq!(e.keep_weekly, Some(None));
        assert_eq!(e.keep_daily, None);
        assert!(e.compressor.is_none() && e.interval_seconds.is_none());
        assert!(e.add_ignore.is_empty() && e.ignore_cache_dirs.is_none());
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(w.iter().all(|l| l.starts_with("F: ")), "{w:?}");
        assert_eq!(parse_global_policy("[1]", "F").1.len(), 1);
        assert_eq!(parse_global_policy("{", "F").1.len(), 1);
    }

    #[test]
    fn edits_are_stored_like_kopia_policy_set() {
        let (e, _) = parse_global_policy(
            r#"{"retention":{"keepHourly":0},"compression":{"compressor":"zstd"},
                "scheduling":{"interval":"2h"},
                "files":{"ignore":["*.tmp","a/"],"ignoreCacheDirs":true}}"#,
            "F",
        );
        let mut p = Policy::kopia_default_global();
        let mut f = p.files_policy().unwrap();
        f.ignore_rules = vec!["*.tmp".into(), "z".into()];
        p.set_files_policy(&f).unwrap();
        e.apply(&mut p).unwrap();
        let json = String::from_utf8(p.encode().unwrap()).unwrap();
        assert!(json.contains(r#""keepHourly":0,"#), "{json}");
        assert!(
            json.contains(
                r#""files":{"ignore":["*.tmp","a/","z"],"ignoreDotFiles":[".kopiaignore"],"ignoreCacheDirs":true}"#
            ),
            "{json}"
        );
        assert!(
            json.contains(r#""scheduling":{"intervalSeconds":7200,"runMissed":true}"#),
            "{json}"
        );
        assert!(json.contains(r#""compression":{"compressorName":"zstd"}"#));
        assert_eq!(
            e.describe(),
            "--keep-hourly=0 --compression=zstd --snapshot-interval=7200s --add-ignore=*.tmp \
             --add-ignore=a/ --ignore-cache-dirs=true"
        );
    }

    #[test]
    fn repository_config_keys() {
        let (c, w) = parse_repository_config(
            r#"{"enableActions":false,"uploadSpeed":10485760,"downloadSpeed":null,
                "actionCommandTimeout":"5m"}"#,
            "R",
        );
        assert_eq!(c.enable_actions, Some(false));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("R: actionCommandTimeout not applied"),
            "{w:?}"
        );
        assert!(w[1].starts_with("R: uploadSpeed not applied"), "{w:?}");
        let (c, w) = parse_repository_config(r#"{"enableActions":"no"}"#, "R");
        assert_eq!(c.enable_actions, None);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn structured_config_keys() {
        let w = structured_config_warnings(
            r#"{"storage":{"type":"s3","config":{"secretAccessKey":"SENTINEL"}},
                "hostname":"h","username":"u","caching":{}}"#,
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("KOPIA_STRUCTURED_REPOSITORY_CONFIG.caching not applied"));
        assert!(w[1].starts_with("KOPIA_STRUCTURED_REPOSITORY_CONFIG.storage not applied"));
        assert!(!w.concat().contains("SENTINEL"));
        let bad = structured_config_warnings("{\"k\": SENTINEL");
        assert_eq!(bad.len(), 1);
        assert!(!bad[0].contains("SENTINEL"), "{bad:?}");
        assert!(structured_config_warnings("{}").is_empty());
    }
}
