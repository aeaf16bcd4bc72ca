//! `arkiv policy show`: kopia's `policy show` table (`cli/command_policy_show.go`), row for
//! row: each effective value and where it is defined.
//!
//! Facts kept from kopia: the value column is right-aligned so that every `name   value` pair
//! ends in the same column (the widest pair of the whole table decides); rows without a value
//! get the origin right after the name; a value defined by the target's own policy says
//! `(defined for this target)`, one from another policy `inherited from <target>`, and one
//! from the built-in defaults `inherited from (global)` (kopia merges the defaults under the
//! global policy's name). A value is taken from the most specific policy that sets it
//! (`omitempty` fields: a non-zero value; optional fields: present), stopping after a policy
//! with `noParent`.

use std::collections::BTreeSet;

use arkiv_engine::policy::{PolicyTarget, StoredPolicy};
use arkiv_format::gojson;
use arkiv_format::policy::Policy;
use serde_json::Value;

use crate::render::text::bytes_base10;

/// One policy of the chain, as JSON, with its target.
struct Level {
    target: PolicyTarget,
    json: Value,
    no_parent: bool,
}

/// The chain (most specific first) followed by kopia's defaults (under `(global)`).
pub struct Chain {
    target: PolicyTarget,
    levels: Vec<Level>,
}

/// When a field counts as set.
#[derive(Clone, Copy)]
enum Set {
    /// Present and not null (kopia's pointer fields).
    Present,
    /// Non-zero / non-empty / true (kopia's `omitempty` value fields).
    NonZero,
}

fn is_set(v: &Value, how: Set) -> bool {
    match (how, v) {
        (_, Value::Null) => false,
        (Set::Present, _) => true,
        (Set::NonZero, Value::Bool(b)) => *b,
        (Set::NonZero, Value::Number(n)) => n.as_f64() != Some(0.0),
        (Set::NonZero, Value::String(s)) => !s.is_empty(),
        (Set::NonZero, Value::Array(a)) => !a.is_empty(),
        (Set::NonZero, Value::Object(o)) => !o.is_empty(),
    }
}

impl Chain {
    /// `chain`: the policies that apply to `target`, most specific first.
    pub fn new(target: PolicyTarget, chain: &[StoredPolicy]) -> Chain {
        let to_json = |p: &Policy| {
            p.encode()
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null)
        };
        let mut levels: Vec<Level> = Vec::new();
        let mut cut = false;
        for p in chain {
            levels.push(Level {
                target: p.target(),
                json: to_json(&p.policy),
                no_parent: p.policy.no_parent,
            });
            if p.policy.no_parent {
                cut = true;
                break;
            }
        }
        if !cut {
            levels.push(Level {
                target: PolicyTarget::Global,
                json: to_json(&Policy::kopia_default_global()),
                no_parent: false,
            });
        }
        Chain { target, levels }
    }

    /// The value of `path` and the origin text, from the most specific policy that sets it.
    fn get(&self, path: &str, how: Set) -> (Option<&Value>, String) {
        for l in &self.levels {
            let v = path
                .split('.')
                .try_fold(&l.json, |v, k| v.get(k))
                .filter(|v| is_set(v, how));
            if let Some(v) = v {
                return (Some(v), self.origin(&l.target));
            }
            if l.no_parent {
                break;
            }
        }
        (None, self.origin(&PolicyTarget::Global))
    }

    fn origin(&self, from: &PolicyTarget) -> String {
        if *from == self.target {
            "(defined for this target)".to_owned()
        } else {
            format!("inherited from {from}")
        }
    }

    /// The union of a list over the chain (kopia's `mergeStrings` for the compression lists),
    /// and the origin of its most specific non-empty part.
    fn union(&self, path: &str, no_parent_key: &str) -> (Vec<String>, String) {
        let mut all = BTreeSet::new();
        let mut origin = None;
        for l in &self.levels {
            let (section, key) = path.split_once('.').unwrap_or((path, ""));
            let sec = l.json.get(section);
            if let Some(list) = sec.and_then(|s| s.get(key)).and_then(Value::as_array) {
                if !list.is_empty() && origin.is_none() {
                    origin = Some(self.origin(&l.target));
                }
                all.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            let stop = sec
                .and_then(|s| s.get(no_parent_key))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if stop || l.no_parent {
                break;
            }
        }
        (
            all.into_iter().collect(),
            origin.unwrap_or_else(|| self.origin(&PolicyTarget::Global)),
        )
    }
}

/// One row: name, value, origin (kopia's `policyTableRow`).
struct Row(String, String, String);

fn row(name: &str, value: impl Into<String>, def: impl Into<String>) -> Row {
    Row(name.to_owned(), value.into(), def.into())
}

fn heading(name: &str) -> Row {
    row(name, "", "")
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        None => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn bool_or(v: Option<&Value>, default: bool) -> String {
    v.and_then(Value::as_bool).unwrap_or(default).to_string()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn bytes(v: Option<&Value>) -> String {
    v.and_then(Value::as_u64)
        .map_or_else(|| "-".to_owned(), bytes_base10)
}

/// kopia's `alignedPolicyTableRows`.
fn aligned(rows: &[Row]) -> String {
    let width = rows
        .iter()
        .filter(|r| !r.1.is_empty())
        .map(|r| r.0.len() + 3 + r.1.len())
        .max()
        .unwrap_or(0);
    let mut lines = Vec::with_capacity(rows.len());
    for Row(name, value, def) in rows {
        let mut l = name.clone();
        if !value.is_empty() || !def.is_empty() {
            let spaces = width.saturating_sub(l.len() + value.len());
            l.push_str(&" ".repeat(spaces));
            l.push_str(value);
        }
        if !def.is_empty() {
            l.push_str("   ");
            l.push_str(def);
        }
        lines.push(l);
    }
    lines.join("\n")
}

/// The whole `policy show` text for `chain`.
pub fn render(c: &Chain) -> String {
    use Set::{NonZero, Present};
    let mut rows = vec![heading("Retention:")];
    for (label, key) in [
        ("  Annual snapshots:", "keepAnnual"),
        ("  Monthly snapshots:", "keepMonthly"),
        ("  Weekly snapshots:", "keepWeekly"),
        ("  Daily snapshots:", "keepDaily"),
        ("  Hourly snapshots:", "keepHourly"),
        ("  Latest snapshots:", "keepLatest"),
    ] {
        let (v, d) = c.get(&format!("retention.{key}"), Present);
        rows.push(row(label, text_of(v), d));
    }
    let (v, d) = c.get("retention.ignoreIdenticalSnapshots", Present);
    rows.push(row("  Ignore identical snapshots:", bool_or(v, false), d));

    rows.push(heading(""));
    rows.push(heading("Files policy:"));
    let (v, d) = c.get("files.ignoreCacheDirs", Present);
    rows.push(row("  Ignore cache directories:", bool_or(v, true), d));
    let (v, d) = c.get("files.ignore", NonZero);
    let rules = strings(v);
    if rules.is_empty() {
        rows.push(heading("  No ignore rules:"));
    } else {
        rows.push(row("  Ignore rules:", "", d));
        rows.extend(rules.iter().map(|r| heading(&format!("    {r}"))));
    }
    let (v, d) = c.get("files.ignoreDotFiles", NonZero);
    let dots = strings(v);
    if !dots.is_empty() {
        rows.push(row("  Read ignore rules from files:", "", d));
        rows.extend(dots.iter().map(|r| heading(&format!("    {r}"))));
    }
    let (v, d) = c.get("files.maxFileSize", NonZero);
    if v.is_some() {
        rows.push(row("  Ignore files above:", bytes(v), d));
    }
    let (v, d) = c.get("files.oneFileSystem", Present);
    rows.push(row("  Scan one filesystem only:", bool_or(v, false), d));

    rows.push(heading(""));
    rows.push(heading("Error handling policy:"));
    for (label, key, default) in [
        ("  Ignore file read errors:", "ignoreFileErrors", false),
        (
            "  Ignore directory read errors:",
            "ignoreDirectoryErrors",
            false,
        ),
        ("  Ignore unknown types:", "ignoreUnknownTypes", true),
    ] {
        let (v, d) = c.get(&format!("errorHandling.{key}"), Present);
        rows.push(row(label, bool_or(v, default), d));
    }

    rows.push(heading(""));
    scheduling_rows(c, &mut rows);

    rows.push(heading(""));
    rows.push(heading("Uploads:"));
    let (v, d) = c.get("upload.maxParallelSnapshots", Present);
    rows.push(row("  Max parallel snapshots (server/UI):", text_of(v), d));
    let (v, d) = c.get("upload.maxParallelFileReads", Present);
    rows.push(row("  Max parallel file reads:", text_of(v), d));
    let (v, d) = c.get("upload.parallelUploadAboveSize", Present);
    rows.push(row("  Parallel upload above size:", bytes(v), d));

    rows.push(heading(""));
    compression_rows(c, &mut rows);

    rows.push(heading(""));
    let (v, d) = c.get("metadataCompression.compressorName", NonZero);
    match v.and_then(Value::as_str).filter(|n| *n != "none") {
        None => rows.push(heading("Metadata compression disabled.")),
        Some(name) => {
            rows.push(heading("Metadata compression:"));
            rows.push(row("  Compressor:", name, d));
        }
    }

    rows.push(heading(""));
    let (v, d) = c.get("splitter.algorithm", NonZero);
    rows.push(heading("Splitter:"));
    let alg = v.and_then(Value::as_str).unwrap_or("(repository default)");
    rows.push(row("  Algorithm override:", alg, d));

    rows.push(heading(""));
    let (v, _) = c.get("actions", NonZero);
    if v.is_some() {
        // arkiv runs no policy actions; `policy export`-style JSON is where they can be read
        rows.push(heading(
            "Actions defined (arkiv does not run policy actions).",
        ));
    } else {
        rows.push(heading("No actions defined."));
    }

    rows.push(heading(""));
    rows.push(heading("OS-level snapshot support:"));
    let (v, d) = c.get("osSnapshots.volumeShadowCopy.enable", Present);
    let mode = match v.and_then(Value::as_u64).unwrap_or(0) {
        0 => "never",
        1 => "always",
        2 => "when-available",
        _ => "unknown",
    };
    rows.push(row("  Volume Shadow Copy:", mode, d));

    rows.push(heading(""));
    rows.push(heading("Logging details (0-none, 10-maximum):"));
    for (label, key) in [
        ("  Directory snapshotted:", "directories.snapshotted"),
        ("  Directory ignored:", "directories.ignored"),
        ("  Entry snapshotted:", "entries.snapshotted"),
        ("  Entry ignored:", "entries.ignored"),
        ("  Entry cache hit:", "entries.cacheHit"),
        ("  Entry cache miss:", "entries.cacheMiss"),
    ] {
        let (v, d) = c.get(&format!("logging.{key}"), Present);
        rows.push(row(
            label,
            v.map_or_else(|| "0".to_owned(), |v| text_of(Some(v))),
            d,
        ));
    }
    format!("Policy for {}:\n\n{}\n", c.target, aligned(&rows))
}

fn scheduling_rows(c: &Chain, rows: &mut Vec<Row>) {
    use Set::{NonZero, Present};
    rows.push(heading("Scheduling policy:"));
    rows.push(heading("  Scheduled snapshots:"));
    let mut any = false;
    let (v, d) = c.get("scheduling.intervalSeconds", NonZero);
    if let Some(secs) = v.and_then(Value::as_i64) {
        let nanos = secs.saturating_mul(1_000_000_000);
        rows.push(row(
            "    Snapshot interval:",
            gojson::duration::format(nanos),
            d,
        ));
        any = true;
    }
    let (v, d) = c.get("scheduling.timeOfDay", NonZero);
    if let Some(list) = v.and_then(Value::as_array) {
        let (rm, rd) = c.get("scheduling.runMissed", Present);
        rows.push(row("  Run missed snapshots:", bool_or(rm, false), rd));
        rows.push(row("  Snapshot times:", "", d));
        for t in list {
            let h = t.get("hour").and_then(Value::as_i64).unwrap_or(0);
            let m = t.get("min").and_then(Value::as_i64).unwrap_or(0);
            rows.push(heading(&format!("    {h:02}:{m:02}")));
        }
        any = true;
    }
    let (v, d) = c.get("scheduling.cron", NonZero);
    let cron = strings(v);
    if !cron.is_empty() {
        rows.push(row("  Crontab expressions:", "", d));
        rows.extend(cron.iter().map(|e| heading(&format!("    {e}"))));
        any = true;
    }
    if !any {
        rows.push(heading("    None."));
    }
    let (v, d) = c.get("scheduling.manual", NonZero);
    rows.push(row("  Manual snapshot:", bool_or(v, false), d));
}

fn compression_rows(c: &Chain, rows: &mut Vec<Row>) {
    use Set::NonZero;
    let (v, d) = c.get("compression.compressorName", NonZero);
    let Some(name) = v.and_then(Value::as_str).filter(|n| *n != "none") else {
        rows.push(heading("Compression disabled."));
        return;
    };
    rows.push(heading("Compression:"));
    rows.push(row("  Compressor:", name, d));
    let (only, only_d) = c.union("compression.onlyCompress", "noParentOnlyCompress");
    let (never, never_d) = c.union("compression.neverCompress", "noParentNeverCompress");
    if !only.is_empty() {
        rows.push(row(
            "  Only compress files with the following extensions:",
            "",
            only_d,
        ));
        rows.extend(only.iter().map(|e| heading(&format!("     - {e}"))));
    } else if !never.is_empty() {
        rows.push(row(
            "  Compress all files except the following extensions:",
            "",
            never_d,
        ));
        rows.extend(never.iter().map(|e| heading(&format!("    {e}"))));
    } else {
        rows.push(heading("  Compress files regardless of extensions."));
    }
    let size = |key: &str| {
        c.get(&format!("compression.{key}"), NonZero)
            .0
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let (min, max) = (size("minSize"), size("maxSize"));
    if max > 0 {
        rows.push(heading(&format!(
            "  Only compress files between {} and {}.",
            bytes_base10(min),
            bytes_base10(max)
        )));
    } else if min > 0 {
        rows.push(heading(&format!(
            "  Only compress files bigger than {}.",
            bytes_base10(min)
        )));
    } else {
        rows.push(heading("  Compress files of all sizes."));
    }
}
