//! Snapshot retention (FORMAT.md §13): which snapshots of one source are kept, and why.
//!
//! A pure port of kopia's `RetentionPolicy.ComputeRetentionReasons`
//! (`snapshot/policy/retention_policy.go`, v0.23.1) with its quirks:
//!
//! * Snapshots are visited newest first (start time, then end time, descending); each period
//!   is claimed by its newest complete snapshot.
//! * ONE set of period IDs is shared by all period types, so e.g. the monthly ID `2024-05`
//!   and the ISO-week ID `2024-05` collide, as do the latest index `"2024"` and the year.
//!   The `latest` ID is the index in the sorted list, which counts incomplete snapshots too.
//! * Annual, monthly, daily and hourly IDs use UTC; the weekly ID is the ISO week of the start
//!   time in the *local* zone; cutoffs (`maxCompleteStart − k units`) are computed in the local
//!   zone with Go's `AddDate` calendar arithmetic (month/day overflow normalises forward,
//!   e.g. March 31 − 1 month = March 2 or 3), except hours, which are exact durations.
//! * If keepLatest+hourly+daily+weekly+monthly+annual (unset = 0) is 0, keepLatest is infinite.
//! * Incomplete snapshots get no reasons; then, walking newest first while snapshots are
//!   incomplete, each gets `incomplete` while it is younger than 4 h (relative to the newest
//!   start time of all snapshots) or among the first 3.
//!
//! The local zone is a parameter (kopia uses the process zone); pass `chrono::Utc` to match
//! the test vectors. Expiry (deleting snapshots with no reasons and no pins) is [`expired`].

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};

use crate::gojson;
use crate::policy::RetentionPolicy;

/// The retention settings after merging (kopia uses the effective policy's retention part).
pub type EffectiveRetention = RetentionPolicy;

/// Keep incomplete snapshots younger than this (kopia: 4 hours).
pub const RETAIN_INCOMPLETE_YOUNGER_THAN: Duration = Duration::hours(4);
/// Keep at least this many incomplete snapshots (kopia: 3).
pub const RETAIN_INCOMPLETE_MINIMUM_COUNT: usize = 3;

/// What retention needs to know about one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionInput {
    /// Snapshot start time.
    pub start_time: DateTime<Utc>,
    /// Snapshot end time (tie-breaker when start times are equal).
    pub end_time: DateTime<Utc>,
    /// True when the manifest has an `incomplete` reason.
    pub incomplete: bool,
    /// True when the manifest has pins (pins never affect reasons, only expiry).
    pub pins_nonempty: bool,
}

/// Go `t.AddDate(years, months, days)` in zone `tz`, then back to UTC.
fn go_add_date<Tz: TimeZone>(
    t: DateTime<Utc>,
    tz: &Tz,
    years: i64,
    months: i64,
    days: i64,
) -> Option<DateTime<Utc>> {
    let local = t.with_timezone(tz).naive_local();
    let month0 = i64::from(local.month0()).checked_add(months)?;
    let year = i64::from(local.year())
        .checked_add(years)?
        .checked_add(month0.div_euclid(12))?;
    let month = u32::try_from(month0.rem_euclid(12) + 1).ok()?;
    let first = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, 1)?;
    let day_offset = i64::from(local.day0()).checked_add(days)?;
    let date = first.checked_add_signed(Duration::try_days(day_offset)?)?;
    let naive = NaiveDateTime::new(date, local.time());
    Some(go_local_to_utc(naive, tz))
}

/// Go's `time.Date` resolution of a local wall time: guess the offset at the wall time taken
/// as UTC, and re-look it up at the resulting instant if that falls in another zone period.
fn go_local_to_utc<Tz: TimeZone>(naive: NaiveDateTime, tz: &Tz) -> DateTime<Utc> {
    let off1 = i64::from(tz.offset_from_utc_datetime(&naive).fix().local_minus_utc());
    let guess = naive - Duration::seconds(off1);
    let off2 = i64::from(tz.offset_from_utc_datetime(&guess).fix().local_minus_utc());
    (naive - Duration::seconds(off2)).and_utc()
}

fn cutoff<Tz: TimeZone>(
    setting: Option<i64>,
    base: DateTime<Utc>,
    tz: &Tz,
    unit: Unit,
) -> DateTime<Utc> {
    let Some(n) = setting else {
        // unused: unset settings are skipped before the cutoff is consulted
        return DateTime::<Utc>::MAX_UTC;
    };
    let r = match unit {
        Unit::Years => n.checked_neg().and_then(|m| go_add_date(base, tz, m, 0, 0)),
        Unit::Months => n.checked_neg().and_then(|m| go_add_date(base, tz, 0, m, 0)),
        Unit::Days => n.checked_neg().and_then(|m| go_add_date(base, tz, 0, 0, m)),
        Unit::Weeks => n
            .checked_mul(-7)
            .and_then(|m| go_add_date(base, tz, 0, 0, m)),
        Unit::Hours => Duration::try_hours(n).and_then(|d| base.checked_sub_signed(d)),
    };
    // Out of range: a huge keep count means "no cutoff", a huge negative one "nothing".
    r.unwrap_or(if n >= 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

#[derive(Clone, Copy)]
enum Unit {
    Years,
    Months,
    Days,
    Weeks,
    Hours,
}

fn type_rank(t: &str) -> u8 {
    match t {
        "latest" => 1,
        "hourly" => 2,
        "daily" => 3,
        "weekly" => 4,
        "monthly" => 5,
        "annual" => 6,
        _ => 0,
    }
}

/// Sorts retention tags in kopia's canonical order (`SortRetentionTags`): by type rank
/// (latest, hourly, daily, weekly, monthly, annual), then prefix, then suffix as strings.
pub fn sort_retention_tags(tags: &mut [String]) {
    fn split(s: &str) -> (&str, &str) {
        s.rsplit_once('-').unwrap_or((s, ""))
    }
    tags.sort_by(|a, b| {
        let (pa, sa) = split(a);
        let (pb, sb) = split(b);
        type_rank(pa)
            .cmp(&type_rank(pb))
            .then_with(|| pa.cmp(pb))
            .then_with(|| sa.cmp(sb))
    });
}

/// Computes retention reasons for the snapshots of one source; the result is indexed like
/// `snapshots`. `local` is the zone kopia would run in (weekly IDs and cutoffs).
pub fn compute_retention_reasons<Tz: TimeZone>(
    snapshots: &[RetentionInput],
    policy: &EffectiveRetention,
    local: &Tz,
) -> Vec<Vec<String>> {
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); snapshots.len()];
    if snapshots.is_empty() {
        return reasons;
    }
    let zero = gojson::time::zero();
    let max_start = snapshots
        .iter()
        .map(|s| s.start_time)
        .fold(zero, |a, b| a.max(b));
    let max_complete_start = snapshots
        .iter()
        .filter(|s| !s.incomplete)
        .map(|s| s.start_time)
        .fold(zero, |a, b| a.max(b));

    let r = policy;
    let cut_annual = cutoff(r.keep_annual, max_complete_start, local, Unit::Years);
    let cut_monthly = cutoff(r.keep_monthly, max_complete_start, local, Unit::Months);
    let cut_daily = cutoff(r.keep_daily, max_complete_start, local, Unit::Days);
    let cut_hourly = cutoff(r.keep_hourly, max_complete_start, local, Unit::Hours);
    let cut_weekly = cutoff(r.keep_weekly, max_complete_start, local, Unit::Weeks);

    let sum = [
        r.keep_latest,
        r.keep_hourly,
        r.keep_daily,
        r.keep_weekly,
        r.keep_monthly,
        r.keep_annual,
    ]
    .iter()
    .fold(0i64, |a, v| a.wrapping_add(v.unwrap_or(0)));
    let keep_latest = if sum == 0 {
        Some(i64::MAX)
    } else {
        r.keep_latest
    };

    // newest first: start time desc, then end time desc (stable for exact ties)
    let mut order: Vec<(usize, &RetentionInput)> = snapshots.iter().enumerate().collect();
    order.sort_by(|(_, sa), (_, sb)| {
        sb.start_time
            .cmp(&sa.start_time)
            .then_with(|| sb.end_time.cmp(&sa.end_time))
    });

    let mut ids = std::collections::HashSet::<String>::new();
    let mut counters = std::collections::HashMap::<&'static str, i64>::new();

    for (i, &(idx, s)) in order.iter().enumerate() {
        if s.incomplete {
            continue;
        }
        let start = s.start_time;
        let week = start.with_timezone(local).iso_week();
        let cases: [(DateTime<Utc>, String, &'static str, Option<i64>); 6] = [
            (zero, i.to_string(), "latest", keep_latest),
            (
                cut_annual,
                format!("{:04}", start.year()),
                "annual",
                r.keep_annual,
            ),
            (
                cut_monthly,
                format!("{:04}-{:02}", start.year(), start.month()),
                "monthly",
                r.keep_monthly,
            ),
            (
                cut_weekly,
                format!("{:04}-{:02}", week.year(), week.week()),
                "weekly",
                r.keep_weekly,
            ),
            (
                cut_daily,
                start.format("%Y-%m-%d").to_string(),
                "daily",
                r.keep_daily,
            ),
            (
                cut_hourly,
                start.format("%Y-%m-%d %H").to_string(),
                "hourly",
                r.keep_hourly,
            ),
        ];
        let mut keep = Vec::new();
        for (cut, period_id, kind, max) in cases {
            let Some(max) = max else { continue };
            if start < cut || ids.contains(&period_id) {
                continue;
            }
            let count = counters.entry(kind).or_insert(0);
            if *count < max {
                ids.insert(period_id);
                *count += 1;
                keep.push(format!("{kind}-{count}"));
            }
        }
        sort_retention_tags(&mut keep);
        if let Some(slot) = reasons.get_mut(idx) {
            *slot = keep;
        }
    }

    for (i, &(idx, s)) in order.iter().enumerate() {
        if !s.incomplete {
            break;
        }
        let age = max_start.signed_duration_since(s.start_time);
        if age < RETAIN_INCOMPLETE_YOUNGER_THAN || i < RETAIN_INCOMPLETE_MINIMUM_COUNT {
            if let Some(slot) = reasons.get_mut(idx) {
                slot.push("incomplete".to_owned());
            }
        } else {
            break;
        }
    }
    reasons
}

/// Indexes of the snapshots `kopia snapshot expire` deletes: no retention reasons, no pins.
pub fn expired(snapshots: &[RetentionInput], reasons: &[Vec<String>]) -> Vec<usize> {
    snapshots
        .iter()
        .zip(reasons)
        .enumerate()
        .filter(|(_, (s, r))| r.is_empty() && !s.pins_nonempty)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn pol(
        latest: Option<i64>,
        hourly: Option<i64>,
        daily: Option<i64>,
        weekly: Option<i64>,
        monthly: Option<i64>,
    ) -> RetentionPolicy {
        RetentionPolicy {
            keep_latest: latest,
            keep_hourly: hourly,
            keep_daily: daily,
            keep_weekly: weekly,
            keep_monthly: monthly,
            ..Default::default()
        }
    }

    /// Runs a V-RET case twice (all snapshots, then only retained ones) like kopia's test.
    /// Rows: ("[incomplete-]YYYY-MM-DDTHH:MM:SSZ", expected reasons).
    fn check(policy: &RetentionPolicy, rows: &[(&str, &[&str])]) {
        let inputs: Vec<RetentionInput> = rows
            .iter()
            .map(|(ts, _)| {
                let incomplete = ts.starts_with("incomplete-");
                let t = gojson::time::parse(ts.trim_start_matches("incomplete-")).unwrap();
                RetentionInput {
                    start_time: t,
                    end_time: t,
                    incomplete,
                    pins_nonempty: false,
                }
            })
            .collect();
        let got = compute_retention_reasons(&inputs, policy, &Utc);
        for ((ts, want), got) in rows.iter().zip(&got) {
            assert_eq!(got, want, "{ts}");
        }
        let kept: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].1.is_empty()).collect();
        let sub: Vec<RetentionInput> = kept.iter().map(|&i| inputs[i]).collect();
        let got2 = compute_retention_reasons(&sub, policy, &Utc);
        for (&i, got) in kept.iter().zip(&got2) {
            assert_eq!(got, rows[i].1, "retained-only {}", rows[i].0);
        }
        // expiry = the complement of kept
        let exp = expired(&inputs, &got);
        assert_eq!(exp.len() + kept.len(), rows.len());
    }

    // TEST-VECTORS.md §V-RET (snapshot/policy/retention_policy_test.go), TZ = UTC.
    #[test]
    fn v_ret_empty_policy_keeps_all_latest() {
        check(
            &RetentionPolicy::default(),
            &[
                ("2020-01-01T12:00:00Z", &["latest-4"]),
                ("2020-01-01T12:01:00Z", &["latest-3"]),
                ("2020-01-01T12:02:00Z", &["latest-2"]),
                ("2020-01-01T12:03:00Z", &["latest-1"]),
            ],
        );
    }

    #[test]
    fn v_ret_keep_latest_3() {
        check(
            &pol(Some(3), None, None, None, None),
            &[
                ("2020-01-01T12:00:00Z", &[]),
                ("2020-01-01T12:01:00Z", &["latest-3"]),
                ("2020-01-01T12:02:00Z", &["latest-2"]),
                ("2020-01-01T12:03:00Z", &["latest-1"]),
            ],
        );
    }

    #[test]
    fn v_ret_keep_daily_3() {
        check(
            &pol(None, None, Some(3), None, None),
            &[
                ("2020-01-01T12:00:00Z", &[]),
                ("2020-01-01T15:00:00Z", &[]),
                ("2020-01-02T12:00:00Z", &[]),
                ("2020-01-02T15:00:00Z", &["daily-3"]),
                ("2020-01-03T12:00:00Z", &[]),
                ("2020-01-03T15:00:00Z", &["daily-2"]),
                ("2020-01-04T12:00:00Z", &[]),
                ("2020-01-04T15:00:00Z", &["daily-1"]),
            ],
        );
    }

    #[test]
    fn v_ret_keep_monthly_3() {
        check(
            &pol(None, None, None, None, Some(3)),
            &[
                ("2020-01-01T12:00:00Z", &[]),
                ("2020-01-01T15:00:00Z", &[]),
                ("2020-02-01T12:00:00Z", &[]),
                ("2020-02-02T15:00:00Z", &["monthly-3"]),
                ("2020-03-01T12:00:00Z", &[]),
                ("2020-03-02T15:00:00Z", &["monthly-2"]),
                ("2020-04-01T12:00:00Z", &[]),
                ("2020-04-02T15:00:00Z", &["monthly-1"]),
            ],
        );
        check(
            &pol(None, None, None, None, Some(3)),
            &[
                ("2020-01-01T12:00:00Z", &[]),
                ("2020-01-01T15:00:00Z", &[]),
                ("2020-03-02T15:00:00Z", &["monthly-2"]),
                ("2020-04-01T12:00:00Z", &[]),
                ("2020-04-02T15:00:00Z", &["monthly-1"]),
            ],
        );
    }

    #[test]
    fn v_ret_keep_weekly_3() {
        check(
            &pol(None, None, None, Some(3), None),
            &[
                ("2020-01-01T12:00:00Z", &[]),
                ("2020-01-01T15:00:00Z", &["weekly-3"]),
                ("2020-01-08T12:00:00Z", &[]),
                ("2020-01-09T12:00:00Z", &["weekly-2"]),
                ("2020-01-15T12:00:00Z", &["weekly-1"]),
            ],
        );
    }

    #[test]
    fn v_ret_incomplete_count() {
        check(
            &pol(Some(3), None, None, None, None),
            &[
                ("2020-04-02T15:00:00Z", &["latest-1"]),
                ("incomplete-2020-04-02T15:01:00Z", &[]),
                ("incomplete-2020-04-02T16:01:00Z", &[]),
                ("incomplete-2020-04-02T17:01:00Z", &[]),
                ("incomplete-2020-04-02T18:01:00Z", &["incomplete"]),
                ("incomplete-2020-04-02T19:01:00Z", &["incomplete"]),
                ("incomplete-2020-04-02T23:50:00Z", &["incomplete"]),
            ],
        );
    }

    #[test]
    fn v_ret_larger_case() {
        let mut rows: Vec<(String, Vec<&str>)> = Vec::new();
        for month in ["01", "02", "03"] {
            for (d, h) in [
                ("01", "12"),
                ("01", "13"),
                ("01", "14"),
                ("01", "15"),
                ("02", "12"),
                ("02", "13"),
                ("02", "15"),
            ] {
                let want = if month == "03" && d == "02" && h == "15" {
                    vec!["monthly-2"]
                } else {
                    vec![]
                };
                rows.push((format!("2020-{month}-{d}T{h}:00:00Z"), want));
            }
        }
        for (ts, want) in [
            ("2020-04-01T12:00:00Z", vec![]),
            ("2020-04-01T13:00:00Z", vec![]),
            ("2020-04-01T14:00:00Z", vec![]),
            ("2020-04-01T15:00:00Z", vec!["daily-2"]),
            ("2020-04-02T12:00:00Z", vec!["latest-3", "hourly-3"]),
            ("2020-04-02T13:00:00Z", vec!["latest-2", "hourly-2"]),
            (
                "2020-04-02T15:00:00Z",
                vec!["latest-1", "hourly-1", "daily-1", "monthly-1"],
            ),
        ] {
            rows.push((ts.to_string(), want));
        }
        for (hm, keep) in [
            ("15:01", false),
            ("16:01", false),
            ("17:01", false),
            ("18:01", false),
            ("19:01", false),
            ("20:01", true),
            ("21:01", true),
            ("22:01", true),
            ("23:01", true),
            ("23:50", true),
        ] {
            rows.push((
                format!("incomplete-2020-04-02T{hm}:00Z"),
                if keep { vec!["incomplete"] } else { vec![] },
            ));
        }
        let borrowed: Vec<(&str, &[&str])> = rows
            .iter()
            .map(|(t, w)| (t.as_str(), w.as_slice()))
            .collect();
        check(&pol(Some(3), Some(7), Some(5), None, Some(2)), &borrowed);
    }

    // Fixture repo-a: two snapshots of one source with the default policy.
    #[test]
    fn fixture_repo_a_reasons() {
        let t = |s: &str| gojson::time::parse(s).unwrap();
        let inputs = [
            RetentionInput {
                start_time: t("2026-11-22T00:22:53.942339833Z"),
                end_time: t("2026-11-22T00:22:54.308378999Z"),
                incomplete: false,
                pins_nonempty: false,
            },
            RetentionInput {
                start_time: t("2026-11-22T00:22:56.457264322Z"),
                end_time: t("2026-11-22T00:22:56.627321645Z"),
                incomplete: false,
                pins_nonempty: false,
            },
        ];
        let r = compute_retention_reasons(&inputs, &RetentionPolicy::kopia_default(), &Utc);
        assert_eq!(r[0], ["latest-2"]);
        assert_eq!(
            r[1],
            [
                "latest-1",
                "hourly-1",
                "daily-1",
                "weekly-1",
                "monthly-1",
                "annual-1"
            ]
        );
    }

    #[test]
    fn shared_period_ids_collide() {
        // latest index "0" never collides; but ISO week "2024-05" equals month "2024-05".
        let t = |s: &str| gojson::time::parse(s).unwrap();
        let mk = |s: &str| RetentionInput {
            start_time: t(s),
            end_time: t(s),
            incomplete: false,
            pins_nonempty: false,
        };
        // 2024-05-31 is in ISO week 2024-22; 2024-02-01 is in ISO week 2024-05 → collides
        // with the monthly ID of a May snapshot processed before it.
        let inputs = [mk("2024-05-31T00:00:00Z"), mk("2024-02-01T00:00:00Z")];
        let p = pol(None, None, None, Some(100), Some(100));
        let r = compute_retention_reasons(&inputs, &p, &Utc);
        assert_eq!(r[0], ["weekly-1", "monthly-1"]);
        // February: monthly 2024-02 ok, weekly ID "2024-05" already taken by May's month.
        assert_eq!(r[1], ["monthly-2"]);
    }

    #[test]
    fn go_add_date_normalises_like_go() {
        let t = |s: &str| gojson::time::parse(s).unwrap();
        // Go: time.Date(2020, 3, 31).AddDate(0, -1, 0) = 2020-03-02 (Feb 31 → Mar 2)
        assert_eq!(
            go_add_date(t("2020-03-31T10:00:00Z"), &Utc, 0, -1, 0).unwrap(),
            t("2020-03-02T10:00:00Z")
        );
        // leap day minus a year → March 1
        assert_eq!(
            go_add_date(t("2020-02-29T00:00:00Z"), &Utc, -1, 0, 0).unwrap(),
            t("2019-03-01T00:00:00Z")
        );
        assert_eq!(
            go_add_date(t("2020-01-15T00:00:00Z"), &Utc, 0, -13, -20).unwrap(),
            t("2018-11-25T00:00:00Z")
        );
        // local zone arithmetic: 2020-03-01T02:00Z is 2020-02-29T20:00-06:00; −1 month in that
        // zone is 2020-01-29T20:00-06:00.
        let cst = FixedOffset::west_opt(6 * 3600).unwrap();
        assert_eq!(
            go_add_date(t("2020-03-01T02:00:00Z"), &cst, 0, -1, 0).unwrap(),
            t("2020-01-30T02:00:00Z")
        );
    }

    #[test]
    fn weekly_uses_local_zone() {
        let t = |s: &str| gojson::time::parse(s).unwrap();
        let mk = |s: &str| RetentionInput {
            start_time: t(s),
            end_time: t(s),
            incomplete: false,
            pins_nonempty: false,
        };
        // Monday 2020-01-06 03:00Z: UTC week 2020-02, but in UTC−6 still Sunday (week 2020-01).
        let inputs = [mk("2020-01-06T03:00:00Z"), mk("2020-01-05T12:00:00Z")];
        let p = pol(None, None, None, Some(5), None);
        let utc = compute_retention_reasons(&inputs, &p, &Utc);
        assert_eq!(utc[1], ["weekly-2"]);
        let cst = FixedOffset::west_opt(6 * 3600).unwrap();
        let local = compute_retention_reasons(&inputs, &p, &cst);
        assert!(local[1].is_empty());
    }

    #[test]
    fn pins_prevent_expiry_only() {
        let t = gojson::time::parse("2020-01-01T00:00:00Z").unwrap();
        let inputs = [
            RetentionInput {
                start_time: t,
                end_time: t,
                incomplete: false,
                pins_nonempty: true,
            },
            RetentionInput {
                start_time: t + Duration::seconds(1),
                end_time: t,
                incomplete: false,
                pins_nonempty: false,
            },
        ];
        let r = compute_retention_reasons(&inputs, &pol(Some(1), None, None, None, None), &Utc);
        assert!(r[0].is_empty());
        assert_eq!(expired(&inputs, &r), Vec::<usize>::new());
        let r = compute_retention_reasons(&inputs, &pol(Some(-5), Some(6), None, None, None), &Utc);
        assert_eq!(r[1], ["hourly-1"]);
        assert!(compute_retention_reasons(&[], &RetentionPolicy::default(), &Utc).is_empty());
        // extreme settings do not panic
        let big = pol(
            Some(i64::MAX),
            Some(i64::MAX),
            Some(i64::MIN),
            Some(i64::MAX),
            Some(i64::MIN),
        );
        let _ = compute_retention_reasons(&inputs, &big, &Utc);
    }

    #[test]
    fn tag_sort() {
        let mut v: Vec<String> = [
            "annual-1",
            "monthly-2",
            "latest-10",
            "latest-2",
            "x-1",
            "hourly-1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        sort_retention_tags(&mut v);
        assert_eq!(
            v,
            [
                "x-1",
                "latest-10",
                "latest-2",
                "hourly-1",
                "monthly-2",
                "annual-1"
            ]
        );
    }
}
