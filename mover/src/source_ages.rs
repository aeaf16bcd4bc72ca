//! Per-source snapshot counts and ages for verification jobs (`arkiv verify --max-age`,
//! the mover's `DIRECTION=verify`): one place decides which source is stale.

use std::collections::BTreeMap;
use std::time::Duration;

use arkiv_engine::repo::Snapshot;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One source's snapshots, as a verification report shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceAge {
    /// `user@host:/path`.
    pub source: String,
    /// How many snapshots it has.
    pub snapshots: u64,
    /// Start time of its newest snapshot.
    pub newest: DateTime<Utc>,
    /// Seconds from that start time to `now` (negative if the clock is behind).
    pub age_seconds: i64,
    /// Older than the threshold.
    pub stale: bool,
}

/// Every source of `snapshots`, sorted by name, with its age at `now` and whether that is
/// more than `max_age`.
pub fn source_ages(
    snapshots: &[Snapshot],
    now: DateTime<Utc>,
    max_age: Option<Duration>,
) -> Vec<SourceAge> {
    let mut by_source: BTreeMap<String, (u64, DateTime<Utc>)> = BTreeMap::new();
    for s in snapshots {
        let m = &s.manifest;
        let e = by_source
            .entry(m.source.to_string())
            .or_insert((0, m.start_time));
        e.0 += 1;
        e.1 = e.1.max(m.start_time);
    }
    by_source
        .into_iter()
        .map(|(source, (n, newest))| {
            let age_seconds = (now - newest).num_seconds();
            SourceAge {
                source,
                snapshots: n,
                newest,
                age_seconds,
                stale: max_age.is_some_and(|max| {
                    age_seconds > i64::try_from(max.as_secs()).unwrap_or(i64::MAX)
                }),
            }
        })
        .collect()
}

/// A maximum age: whole seconds, or a number with `s`, `m`, `h` or `d` (`26h`, `7d`).
pub fn parse_max_age(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(mult)
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_ages() {
        assert_eq!(parse_max_age("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_max_age("26h"), Some(Duration::from_secs(26 * 3600)));
        assert_eq!(parse_max_age(" 7d "), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_max_age("15m"), Some(Duration::from_secs(900)));
        for bad in ["", "0", "1w", "h", "-1h", "1.5h"] {
            assert_eq!(parse_max_age(bad), None, "{bad}");
        }
    }
}
