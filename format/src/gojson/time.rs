//! Go `time.Time` as kopia writes and reads it.
//!
//! * JSON (`Time.MarshalJSON`, i.e. layout `time.RFC3339Nano` in quotes) of a UTC time:
//!   `2006-01-02T15:04:05.999999999Z`, one to nine fraction digits with trailing zeros trimmed
//!   (none when the fraction is zero) and `Z`. Go refuses to marshal years outside
//!   `[0, 9999]`. The zero `time.Time` is `0001-01-01T00:00:00Z`; kopia's `fs.UTCTimestamp`
//!   (int64 nanoseconds since the Unix epoch) marshals the same way after `.UTC()`.
//! * Parsing accepts RFC 3339 with any offset (what `Time.UnmarshalJSON` accepts) and returns
//!   UTC. Leap seconds (`:60`) are refused, as Go refuses them.
//! * Kopia's CLI prints times with layout `2006-01-02 15:04:05 MST` ([`format_cli`]).
//!
//! The module doubles as a serde helper for a field that is always written:
//! `#[serde(with = "crate::gojson::time")]`. For Go's `omitempty` on an `fs.UTCTimestamp`
//! (omitted when it is the Unix epoch) add
//! `default = "crate::gojson::time::unix_epoch", skip_serializing_if =
//! "crate::gojson::time::is_unix_epoch"`; for a `time.Time` that reads `null` as the zero time
//! use [`null_is_zero`].

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

use crate::{Error, Result};

/// Formats a timestamp like Go's `time.Time.MarshalJSON` of a UTC time (without quotes):
/// `2006-01-02T15:04:05.999999999Z` with trailing fraction zeros trimmed, or none.
pub fn format(t: &DateTime<Utc>) -> String {
    let mut s = date_time(t, 'T');
    // chrono represents leap seconds as nanosecond >= 1e9; Go has no leap seconds.
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Formats a timestamp the way kopia's CLI prints it (Go layout `2006-01-02 15:04:05 MST`),
/// in UTC: `2026-11-22 00:22:53 UTC`. The fraction is dropped.
pub fn format_cli(t: &DateTime<Utc>) -> String {
    format!("{} UTC", date_time(t, ' '))
}

/// `YYYY-MM-DD<sep>hh:mm:ss`, zero-padded like Go's layouts.
fn date_time(t: &DateTime<Utc>, sep: char) -> String {
    format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an RFC 3339 timestamp with any offset (what Go's `time.Time.UnmarshalJSON`
/// accepts), returning it in UTC.
///
/// A leap second (`:60`) is refused, as Go refuses it ("second out of range"): chrono
/// would accept it and write it back as another instant (found by the `dir_manifest`
/// fuzz target).
pub fn parse(s: &str) -> Result<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::invalid("timestamp", format!("{s:?}: {e}")))?;
    if t.timestamp_subsec_nanos() >= 1_000_000_000 {
        return Err(Error::invalid(
            "timestamp",
            format!("{s:?}: second out of range"),
        ));
    }
    Ok(t)
}

/// Go's zero `time.Time` (`0001-01-01T00:00:00Z`).
pub fn zero() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The Unix epoch, which kopia's `fs.UTCTimestamp(0)` stands for.
pub fn unix_epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// True for the Unix epoch (kopia's `omitempty` on an `fs.UTCTimestamp` omits it).
pub fn is_unix_epoch(t: &DateTime<Utc>) -> bool {
    *t == DateTime::<Utc>::UNIX_EPOCH
}

/// Serializes as Go's `time.Time.MarshalJSON` of the UTC time; years outside `[0, 9999]` are
/// an error, as in Go.
pub fn serialize<S: serde::Serializer>(
    t: &DateTime<Utc>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    if !(0..=9999).contains(&t.year()) {
        return Err(serde::ser::Error::custom(format!(
            "Time.MarshalJSON: year {} outside of range [0,9999]",
            t.year()
        )));
    }
    s.serialize_str(&format(t))
}

/// Parses an RFC 3339 string with any offset ([`parse`]); `null` is an error.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<DateTime<Utc>, D::Error> {
    let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

/// Serde helper for a Go `time.Time` field whose JSON `null` leaves the zero time (Go's
/// `UnmarshalJSON` treats `null` as a no-op):
/// `#[serde(with = "crate::gojson::time::null_is_zero", default = "crate::gojson::time::zero")]`.
pub mod null_is_zero {
    use chrono::{DateTime, Utc};
    use serde::Deserialize;

    /// As [`super::serialize`].
    pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        super::serialize(t, s)
    }

    /// As [`super::deserialize`], and `null` reads as [`super::zero`].
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
        match s {
            None => Ok(super::zero()),
            Some(s) => super::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, nanos).unwrap()
    }

    // V-TS (fs/utc_timestamp_test.go and derived Go 1.23 behaviour).
    #[test]
    fn v_ts_timestamps() {
        assert_eq!(
            format(&t(1_641_092_645, 6)),
            "2022-01-02T03:04:05.000000006Z"
        );
        let p = parse("2022-07-10T11:15:22.656077568-07:00").unwrap();
        assert_eq!(p.timestamp_nanos_opt().unwrap(), 1_657_476_922_656_077_568);
        assert_eq!(format(&p), "2022-07-10T18:15:22.656077568Z");
        let p = parse("2024-05-06T07:08:09.120Z").unwrap();
        assert_eq!(format(&p), "2024-05-06T07:08:09.12Z");
        assert_eq!(format(&zero()), "0001-01-01T00:00:00Z");
        assert_eq!(parse("0001-01-01T00:00:00Z").unwrap(), zero());
        assert_eq!(format(&unix_epoch()), "1970-01-01T00:00:00Z");
        assert!(is_unix_epoch(&parse("1970-01-01T01:00:00+01:00").unwrap()));
        assert!(parse("invalid-date").is_err());
    }

    // Trailing-zero trimming at every fraction length, as RFC3339Nano does.
    #[test]
    fn fraction_digits_are_trimmed() {
        let base = 1_714_979_289; // 2024-05-06T07:08:09Z
        for (nanos, want) in [
            (0, "2024-05-06T07:08:09Z"),
            (500_000_000, "2024-05-06T07:08:09.5Z"),
            (120_000_000, "2024-05-06T07:08:09.12Z"),
            (123_000_000, "2024-05-06T07:08:09.123Z"),
            (100_000, "2024-05-06T07:08:09.0001Z"),
            (123_456_789, "2024-05-06T07:08:09.123456789Z"),
            (10, "2024-05-06T07:08:09.00000001Z"),
            (6, "2024-05-06T07:08:09.000000006Z"),
        ] {
            assert_eq!(format(&t(base, nanos)), want);
            assert_eq!(parse(want).unwrap(), t(base, nanos), "{want}");
        }
        assert_eq!(format(&t(0, 500_000_000)), "1970-01-01T00:00:00.5Z");
        // Offsets are normalised to UTC.
        assert_eq!(
            format(&parse("2024-05-01T14:00:00.123456789+02:00").unwrap()),
            "2024-05-01T12:00:00.123456789Z"
        );
    }

    #[test]
    fn cli_layout() {
        let p = parse("2026-11-22T00:22:53.987Z").unwrap();
        assert_eq!(format_cli(&p), "2026-11-22 00:22:53 UTC");
        assert_eq!(format_cli(&zero()), "0001-01-01 00:00:00 UTC");
        assert_eq!(
            format_cli(&Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap()),
            "2024-05-06 07:08:09 UTC"
        );
    }

    #[test]
    fn leap_seconds_are_refused_like_go() {
        assert!(parse("2016-12-31T23:59:59Z").is_ok());
        let e = parse("2016-12-31T23:59:60Z").unwrap_err();
        assert!(e.to_string().contains("second out of range"), "{e}");
        // The dir_manifest fuzz input: parsed, it re-encoded as another instant.
        let listing = br#"{"stream":"kopia:directory","entries":[{"name":"ec74ab3b51a0dfb0"}],"summary":{"si~e":29,"files":1,"symlinks":0,"dirs":1,"maxTime":"2302-11-15T08:13:60Z","numFailed":0}}"#;
        assert!(crate::snapshot::DirManifest::parse(listing).is_err());
    }

    #[test]
    fn serde_helpers() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Strict {
            #[serde(with = "super")]
            t: DateTime<Utc>,
        }
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Lenient {
            #[serde(with = "super::null_is_zero", default = "super::zero")]
            t: DateTime<Utc>,
        }
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct OmitEpoch {
            #[serde(
                with = "super",
                default = "super::unix_epoch",
                skip_serializing_if = "super::is_unix_epoch"
            )]
            t: DateTime<Utc>,
        }
        let when = t(1_714_979_289, 120_000_000);
        let json = r#"{"t":"2024-05-06T07:08:09.12Z"}"#;
        assert_eq!(serde_json::to_string(&Strict { t: when }).unwrap(), json);
        assert_eq!(
            serde_json::from_str::<Strict>(json).unwrap(),
            Strict { t: when }
        );
        assert!(serde_json::from_str::<Strict>(r#"{"t":null}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Lenient>(r#"{"t":null}"#).unwrap(),
            Lenient { t: zero() }
        );
        assert_eq!(
            serde_json::from_str::<Lenient>("{}").unwrap(),
            Lenient { t: zero() }
        );
        assert_eq!(
            serde_json::to_string(&Lenient { t: zero() }).unwrap(),
            r#"{"t":"0001-01-01T00:00:00Z"}"#
        );
        assert_eq!(
            serde_json::to_string(&OmitEpoch { t: unix_epoch() }).unwrap(),
            "{}"
        );
        assert_eq!(
            serde_json::from_str::<OmitEpoch>("{}").unwrap(),
            OmitEpoch { t: unix_epoch() }
        );
        // Go refuses to marshal years beyond 9999.
        let far = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
        let e = serde_json::to_string(&Strict { t: far }).unwrap_err();
        assert!(e.to_string().contains("outside of range [0,9999]"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn times_roundtrip(ns in -62_135_596_800_000_000_000i128..253_402_300_799_999_999_999i128) {
            let secs = ns.div_euclid(1_000_000_000) as i64;
            let sub = ns.rem_euclid(1_000_000_000) as u32;
            let t = DateTime::from_timestamp(secs, sub).unwrap();
            let back = parse(&format(&t)).unwrap();
            proptest::prop_assert_eq!(back, t);
        }
    }
}
