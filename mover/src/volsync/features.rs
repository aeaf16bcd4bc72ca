//! arkiv's own opt-in mover features (issue 17): the source marker, start jitter, metrics,
//! restore dry-run, shared-repository permissions. Everything is off unless asked for.
//!
//! Two channels set them, both read here and nowhere else:
//! * the `arkiv` section of `KOPIA_MANUAL_CONFIG` (a key of the repository Secret, which
//!   VolSync passes to every Source, Destination and maintenance job):
//!
//!   ```json
//!   {"arkiv": {
//!     "sourceMarker": {"include": ["newestSnapshotTime", "snapshotCount"]},
//!     "jitter": {"maxDelaySeconds": 30, "spreadSeconds": 60},
//!     "metrics": {"pushgatewayUrl": "http://pushgateway.monitoring:9091",
//!                 "textfile": "/mnt/metrics/arkiv.prom"},
//!     "restoreDryRun": true,
//!     "repositoryPermissions": {"fileMode": "0660", "dirMode": "2770",
//!                               "ownerUid": 1000, "ownerGid": 1000}
//!   }}
//!   ```
//! * plain variables, for jobs users write themselves (a CronJob); a variable wins over the
//!   section:
//!
//! | Variable | Section key | Meaning |
//! |---|---|---|
//! | `ARKIV_SOURCE_MARKER` | `sourceMarker` | `true`, or a comma list of fields to include (`newestSnapshotTime`, `snapshotCount`); `false` turns it off |
//! | `ARKIV_JITTER_MAX_SECONDS` | `jitter.maxDelaySeconds` | random delay in `[0, N]` s before a backup |
//! | `ARKIV_JITTER_SPREAD_SECONDS` | `jitter.spreadSeconds` | fixed delay in `[0, N)` s from a hash of `user@host:path` |
//! | `ARKIV_PUSHGATEWAY_URL` | `metrics.pushgatewayUrl` | Pushgateway base URL: backup, maintenance and verify runs push their metrics (see `super::metrics`) |
//! | `ARKIV_METRICS_TEXTFILE` | `metrics.textfile` | a `.prom` file for node_exporter's textfile collector, written atomically |
//! | `ARKIV_RESTORE_DRY_RUN` | `restoreDryRun` | a restore prints what it would do and changes nothing |
//! | `ARKIV_REPO_FILE_MODE` | `repositoryPermissions.fileMode` | octal mode of new repository files (kopia `--file-mode`, default 0600) |
//! | `ARKIV_REPO_DIR_MODE` | `repositoryPermissions.dirMode` | octal mode of new repository directories (kopia `--dir-mode`, default 0700) |
//! | `ARKIV_REPO_OWNER_UID` | `repositoryPermissions.ownerUid` | owner uid of new repository files (kopia `--owner-uid`; with the gid, as root) |
//! | `ARKIV_REPO_OWNER_GID` | `repositoryPermissions.ownerGid` | owner gid (kopia `--owner-gid`) |
//!
//! A value that cannot be used is an error (exit 1) — these settings change what a job does,
//! so a typo must not silently turn one off; unknown keys of the section are warnings.

use std::path::PathBuf;
use std::time::Duration;

use arkiv_engine::blob::filesystem::Permissions;
use serde_json::Value;

use super::config::ConfigError;

/// The longest jitter or spread accepted: one hour.
pub const MAX_JITTER_SECONDS: u64 = 3600;

/// The keys of the `arkiv` section (`failIfNoSnapshot` is read by the restore's
/// configuration, `super::config`; the others here).
pub const SECTION_KEYS: [&str; 6] = [
    "failIfNoSnapshot",
    "sourceMarker",
    "jitter",
    "metrics",
    "restoreDryRun",
    "repositoryPermissions",
];

/// What the source marker holds besides its fixed header (opt-in, field by field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkerFields {
    /// `newestSnapshotTime`: start time of the newest snapshot of `user@host`.
    pub newest_snapshot_time: bool,
    /// `snapshotCount`: how many snapshots `user@host` has.
    pub snapshot_count: bool,
}

/// Start delay before a backup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterSettings {
    /// Upper bound of the random part.
    pub max_random: Duration,
    /// Window of the deterministic part (hash of the identity).
    pub spread: Duration,
}

impl JitterSettings {
    /// True when there is no delay at all.
    pub fn is_off(&self) -> bool {
        self.max_random.is_zero() && self.spread.is_zero()
    }
}

/// Where the run's metrics go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsTargets {
    /// Pushgateway base URL (`http://host:9091`).
    pub pushgateway_url: Option<String>,
    /// A file for node-exporter's textfile collector (written atomically).
    pub textfile: Option<PathBuf>,
}

impl MetricsTargets {
    /// True when metrics go nowhere.
    pub fn is_off(&self) -> bool {
        self.pushgateway_url.is_none() && self.textfile.is_none()
    }
}

/// The opt-in features; [`Features::default`] is everything off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// Write the source marker after each successful backup (`None`: off).
    pub source_marker: Option<MarkerFields>,
    /// Start jitter of backups.
    pub jitter: JitterSettings,
    /// Metrics outputs.
    pub metrics: MetricsTargets,
    /// Restores only print what they would do.
    pub restore_dry_run: bool,
    /// Modes and owner of what arkiv creates in a filesystem repository.
    pub repo_permissions: Permissions,
}

fn invalid(var: &'static str, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.into(),
        reason: reason.into(),
    }
}

/// A `KOPIA_MANUAL_CONFIG.arkiv.*` value that cannot be used.
fn bad_key(key: &str, v: &Value, reason: &str) -> ConfigError {
    invalid("KOPIA_MANUAL_CONFIG", format!("arkiv.{key}={v}"), reason)
}

/// Reads the features from `KOPIA_MANUAL_CONFIG`'s `arkiv` section and the `ARKIV_*`
/// variables (see the module docs). Unknown section keys become warnings.
pub fn read(
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Features, ConfigError> {
    let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    // Invalid JSON was already reported by the manual-config reader.
    let section = get("KOPIA_MANUAL_CONFIG")
        .and_then(|j| serde_json::from_str::<Value>(&j).ok())
        .and_then(|v| v.get("arkiv").cloned())
        .unwrap_or(Value::Null);
    let mut f = Features::default();
    match &section {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                if !SECTION_KEYS.contains(&k.as_str()) {
                    warnings.push(format!(
                        "KOPIA_MANUAL_CONFIG.arkiv.{k} is not a setting of this build; ignored"
                    ));
                    continue;
                }
                section_value(&mut f, k, v)?;
            }
        }
        other => {
            return Err(bad_key(
                "",
                other,
                "the arkiv section must be a JSON object",
            ));
        }
    }

    if let Some(v) = get("ARKIV_SOURCE_MARKER") {
        f.source_marker = marker_from_var(&v)?;
    }
    if let Some(v) = get("ARKIV_JITTER_MAX_SECONDS") {
        f.jitter.max_random = seconds_var("ARKIV_JITTER_MAX_SECONDS", &v)?;
    }
    if let Some(v) = get("ARKIV_JITTER_SPREAD_SECONDS") {
        f.jitter.spread = seconds_var("ARKIV_JITTER_SPREAD_SECONDS", &v)?;
    }
    if let Some(v) = get("ARKIV_PUSHGATEWAY_URL") {
        f.metrics.pushgateway_url = Some(pushgateway_url("ARKIV_PUSHGATEWAY_URL", &v)?);
    }
    if let Some(v) = get("ARKIV_METRICS_TEXTFILE") {
        f.metrics.textfile = Some(textfile("ARKIV_METRICS_TEXTFILE", &v)?);
    }
    if let Some(v) = get("ARKIV_RESTORE_DRY_RUN") {
        f.restore_dry_run = bool_var("ARKIV_RESTORE_DRY_RUN", &v)?;
    }
    let p = &mut f.repo_permissions;
    if let Some(v) = get("ARKIV_REPO_FILE_MODE") {
        p.file_mode = mode("ARKIV_REPO_FILE_MODE", &v)?;
    }
    if let Some(v) = get("ARKIV_REPO_DIR_MODE") {
        p.dir_mode = mode("ARKIV_REPO_DIR_MODE", &v)?;
    }
    if let Some(v) = get("ARKIV_REPO_OWNER_UID") {
        p.owner_uid = Some(id_var("ARKIV_REPO_OWNER_UID", &v)?);
    }
    if let Some(v) = get("ARKIV_REPO_OWNER_GID") {
        p.owner_gid = Some(id_var("ARKIV_REPO_OWNER_GID", &v)?);
    }
    let p = &mut f.repo_permissions;
    if p.owner_uid.is_some() != p.owner_gid.is_some() {
        warnings.push(
            "repository owner: only one of uid and gid is set; kopia and arkiv change the \
             owner only when both are given"
                .into(),
        );
    }
    Ok(f)
}

fn section_value(f: &mut Features, key: &str, v: &Value) -> Result<(), ConfigError> {
    match key {
        "failIfNoSnapshot" => {} // read by `super::config`
        "sourceMarker" => {
            f.source_marker = match v {
                Value::Bool(false) | Value::Null => None,
                Value::Bool(true) => Some(MarkerFields::default()),
                Value::Object(o) => {
                    let mut fields = MarkerFields::default();
                    if let Some((k, _)) = o.iter().find(|(k, _)| *k != "include") {
                        return Err(bad_key(&format!("sourceMarker.{k}"), v, "unknown key"));
                    }
                    match o.get("include") {
                        None | Some(Value::Null) => {}
                        Some(Value::Array(items)) => {
                            for item in items {
                                let name = item.as_str().ok_or_else(|| {
                                    bad_key("sourceMarker.include", v, "expected strings")
                                })?;
                                add_field(&mut fields, name)
                                    .map_err(|r| bad_key("sourceMarker.include", v, &r))?;
                            }
                        }
                        Some(_) => {
                            return Err(bad_key(
                                "sourceMarker.include",
                                v,
                                "expected a list of field names",
                            ));
                        }
                    }
                    Some(fields)
                }
                _ => {
                    return Err(bad_key(
                        "sourceMarker",
                        v,
                        "expected true, false or {\"include\": [...]}",
                    ));
                }
            };
        }
        "jitter" => {
            let o = v
                .as_object()
                .ok_or_else(|| bad_key("jitter", v, "expected an object"))?;
            for (k, n) in o {
                let slot = match k.as_str() {
                    "maxDelaySeconds" => &mut f.jitter.max_random,
                    "spreadSeconds" => &mut f.jitter.spread,
                    _ => return Err(bad_key(&format!("jitter.{k}"), n, "unknown key")),
                };
                *slot = n
                    .as_u64()
                    .filter(|s| *s <= MAX_JITTER_SECONDS)
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        bad_key(&format!("jitter.{k}"), n, "expected whole seconds, 0–3600")
                    })?;
            }
        }
        "metrics" => {
            let o = v
                .as_object()
                .ok_or_else(|| bad_key("metrics", v, "expected an object"))?;
            for (k, s) in o {
                let text = s
                    .as_str()
                    .ok_or_else(|| bad_key(&format!("metrics.{k}"), s, "expected a string"))?;
                match k.as_str() {
                    "pushgatewayUrl" => {
                        f.metrics.pushgateway_url =
                            Some(pushgateway_url("KOPIA_MANUAL_CONFIG", text)?);
                    }
                    "textfile" => f.metrics.textfile = Some(textfile("KOPIA_MANUAL_CONFIG", text)?),
                    _ => return Err(bad_key(&format!("metrics.{k}"), s, "unknown key")),
                }
            }
        }
        "restoreDryRun" => {
            f.restore_dry_run = v
                .as_bool()
                .ok_or_else(|| bad_key("restoreDryRun", v, "expected true or false"))?;
        }
        "repositoryPermissions" => {
            let o = v
                .as_object()
                .ok_or_else(|| bad_key("repositoryPermissions", v, "expected an object"))?;
            let p = &mut f.repo_permissions;
            for (k, x) in o {
                let what = format!("repositoryPermissions.{k}");
                match k.as_str() {
                    "fileMode" | "dirMode" => {
                        let s = x
                            .as_str()
                            .ok_or_else(|| bad_key(&what, x, "expected an octal string"))?;
                        let m = mode("KOPIA_MANUAL_CONFIG", s)?;
                        if k == "fileMode" {
                            p.file_mode = m;
                        } else {
                            p.dir_mode = m;
                        }
                    }
                    "ownerUid" | "ownerGid" => {
                        let id = x
                            .as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .ok_or_else(|| bad_key(&what, x, "expected a numeric id"))?;
                        if k == "ownerUid" {
                            p.owner_uid = Some(id);
                        } else {
                            p.owner_gid = Some(id);
                        }
                    }
                    _ => return Err(bad_key(&what, x, "unknown key")),
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn add_field(fields: &mut MarkerFields, name: &str) -> Result<(), String> {
    match name.trim() {
        "newestSnapshotTime" => fields.newest_snapshot_time = true,
        "snapshotCount" => fields.snapshot_count = true,
        other => {
            return Err(format!(
                "unknown marker field {other:?} (expected newestSnapshotTime, snapshotCount)"
            ));
        }
    }
    Ok(())
}

fn marker_from_var(v: &str) -> Result<Option<MarkerFields>, ConfigError> {
    let t = v.trim();
    if t.eq_ignore_ascii_case("false") {
        return Ok(None);
    }
    let mut fields = MarkerFields::default();
    if !t.eq_ignore_ascii_case("true") {
        for name in t.split(',').filter(|n| !n.trim().is_empty()) {
            add_field(&mut fields, name).map_err(|r| invalid("ARKIV_SOURCE_MARKER", v, r))?;
        }
    }
    Ok(Some(fields))
}

fn seconds_var(var: &'static str, v: &str) -> Result<Duration, ConfigError> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|s| *s <= MAX_JITTER_SECONDS)
        .map(Duration::from_secs)
        .ok_or_else(|| invalid(var, v, "expected whole seconds, 0–3600"))
}

fn bool_var(var: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(var, v, "expected true or false")),
    }
}

/// An octal mode as kopia's flags take it (`0660`, `660`, `2770`); at most `07777`.
fn mode(var: &'static str, v: &str) -> Result<u32, ConfigError> {
    crate::connect::parse_mode(v)
        .ok_or_else(|| invalid(var, v, "expected an octal mode such as 0640 or 2770"))
}

fn id_var(var: &'static str, v: &str) -> Result<u32, ConfigError> {
    v.trim()
        .parse::<u32>()
        .map_err(|_| invalid(var, v, "expected a numeric id"))
}

fn pushgateway_url(var: &'static str, v: &str) -> Result<String, ConfigError> {
    let t = v.trim().trim_end_matches('/');
    if !(t.starts_with("http://") || t.starts_with("https://")) || t.contains(char::is_whitespace) {
        return Err(invalid(var, v, "expected an http:// or https:// URL"));
    }
    Ok(t.to_owned())
}

fn textfile(var: &'static str, v: &str) -> Result<PathBuf, ConfigError> {
    let p = PathBuf::from(v.trim());
    if !p.is_absolute() || !v.trim().ends_with(".prom") {
        return Err(invalid(
            var,
            v,
            "expected an absolute path ending in .prom (the textfile collector reads only those)",
        ));
    }
    Ok(p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read_with(vars: &[(&str, &str)]) -> (Result<Features, ConfigError>, Vec<String>) {
        let env = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        };
        let mut w = Vec::new();
        (read(&env, &mut w), w)
    }

    #[test]
    fn everything_is_off_by_default() {
        let (f, w) = read_with(&[("KOPIA_MANUAL_CONFIG", r#"{"encryption":{}}"#)]);
        assert_eq!(f.unwrap(), Features::default());
        assert!(w.is_empty());
    }

    #[test]
    fn manual_config_section() {
        let json = r#"{"arkiv": {
            "sourceMarker": {"include": ["newestSnapshotTime", "snapshotCount"]},
            "jitter": {"maxDelaySeconds": 30, "spreadSeconds": 60},
            "metrics": {"pushgatewayUrl": "http://pg.monitoring:9091/", "textfile": "/mnt/m/arkiv.prom"},
            "restoreDryRun": true,
            "repositoryPermissions": {"fileMode": "0660", "dirMode": "2770", "ownerUid": 1000, "ownerGid": 100},
            "someoneElses": 1
        }}"#;
        let (f, w) = read_with(&[("KOPIA_MANUAL_CONFIG", json)]);
        let f = f.unwrap();
        assert_eq!(
            f.source_marker,
            Some(MarkerFields {
                newest_snapshot_time: true,
                snapshot_count: true
            })
        );
        assert_eq!(f.jitter.max_random, Duration::from_secs(30));
        assert_eq!(f.jitter.spread, Duration::from_secs(60));
        assert_eq!(
            f.metrics.pushgateway_url.as_deref(),
            Some("http://pg.monitoring:9091")
        );
        assert_eq!(f.metrics.textfile, Some(PathBuf::from("/mnt/m/arkiv.prom")));
        assert!(f.restore_dry_run);
        assert_eq!(f.repo_permissions.file_mode, 0o660);
        assert_eq!(f.repo_permissions.dir_mode, 0o2770);
        assert_eq!(f.repo_permissions.owner_uid, Some(1000));
        assert_eq!(f.repo_permissions.owner_gid, Some(100));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("arkiv.someoneElses"), "{w:?}");
    }

    #[test]
    fn variables_win_over_the_section() {
        let (f, _) = read_with(&[
            (
                "KOPIA_MANUAL_CONFIG",
                r#"{"arkiv":{"restoreDryRun":true,"sourceMarker":true}}"#,
            ),
            ("ARKIV_RESTORE_DRY_RUN", "false"),
            ("ARKIV_SOURCE_MARKER", "snapshotCount"),
            ("ARKIV_JITTER_MAX_SECONDS", " 5 "),
            ("ARKIV_REPO_FILE_MODE", "640"),
        ]);
        let f = f.unwrap();
        assert!(!f.restore_dry_run);
        assert_eq!(
            f.source_marker,
            Some(MarkerFields {
                newest_snapshot_time: false,
                snapshot_count: true
            })
        );
        assert_eq!(f.jitter.max_random, Duration::from_secs(5));
        assert_eq!(f.repo_permissions.file_mode, 0o640);
        assert_eq!(f.repo_permissions.dir_mode, 0o700, "kopia default kept");
    }

    #[test]
    fn bad_values_are_errors() {
        for (k, v) in [
            ("ARKIV_SOURCE_MARKER", "fileNames"),
            ("ARKIV_JITTER_MAX_SECONDS", "3601"),
            ("ARKIV_JITTER_SPREAD_SECONDS", "1m"),
            ("ARKIV_PUSHGATEWAY_URL", "pg:9091"),
            ("ARKIV_METRICS_TEXTFILE", "relative.prom"),
            ("ARKIV_RESTORE_DRY_RUN", "yes"),
            ("ARKIV_REPO_FILE_MODE", "0999"),
            ("ARKIV_REPO_OWNER_UID", "-1"),
        ] {
            let (f, _) = read_with(&[(k, v)]);
            let e = f.unwrap_err();
            assert!(e.to_string().contains(k), "{k}: {e}");
        }
        for json in [
            r#"{"arkiv":{"restoreDryRun":"yes"}}"#,
            r#"{"arkiv":{"jitter":{"maxDelaySecs":3}}}"#,
            r#"{"arkiv":{"sourceMarker":{"include":["path"]}}}"#,
            r#"{"arkiv":{"repositoryPermissions":{"fileMode":660}}}"#,
            r#"{"arkiv":[1]}"#,
        ] {
            let (f, _) = read_with(&[("KOPIA_MANUAL_CONFIG", json)]);
            assert!(f.is_err(), "{json}");
        }
    }

    #[test]
    fn half_an_owner_is_warned_about() {
        let (f, w) = read_with(&[("ARKIV_REPO_OWNER_UID", "1000")]);
        assert_eq!(f.unwrap().repo_permissions.owner_uid, Some(1000));
        assert!(w[0].contains("both"), "{w:?}");
    }
}
