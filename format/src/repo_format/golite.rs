//! Minimal Go `encoding/json` compatibility for the format-blob and maintenance codecs.
//!
//! Private stop-gap until `crate::gojson` (owned elsewhere) lands; then this module should be
//! replaced by it. It provides:
//! * [`to_vec`]: `json.Marshal`-identical compact output (serde-derived structs serialize in
//!   declaration order; strings get Go's escapes: `<`, `>`, `&` → `\u003c`, `\u003e`, `\u0026`,
//!   U+2028/U+2029 → `\u2028`/`\u2029`; control characters as serde_json already writes them,
//!   which matches Go ≥ 1.22).
//! * [`quote`]: one Go-escaped JSON string literal.
//! * [`base64_bytes`]: `[]byte` fields (standard base64 with padding; `null` reads as empty).
//! * [`go_time`]: `time.Time` fields (RFC 3339 with nanoseconds, trailing zeros trimmed, `Z`).

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// Compact formatter that adds Go's HTML-safe and line-separator escapes.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut last = 0;
        for (i, c) in fragment.char_indices() {
            let esc: &[u8] = match c {
                '<' => b"\\u003c",
                '>' => b"\\u003e",
                '&' => b"\\u0026",
                '\u{2028}' => b"\\u2028",
                '\u{2029}' => b"\\u2029",
                _ => continue,
            };
            writer.write_all(fragment.get(last..i).unwrap_or("").as_bytes())?;
            writer.write_all(esc)?;
            last = i + c.len_utf8();
        }
        writer.write_all(fragment.get(last..).unwrap_or("").as_bytes())
    }
}

/// Serializes `value` exactly like Go's `json.Marshal` would (for serde types declared in Go's
/// field order).
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// A Go-escaped JSON string literal, quotes included.
pub(crate) fn quote(s: &str) -> String {
    // Serializing a &str cannot fail.
    let v = to_vec(s).unwrap_or_default();
    String::from_utf8(v).unwrap_or_default()
}

/// `[]byte` as standard base64 with padding. Serializes empty as `null` (Go's nil slice);
/// reads `null` as empty.
pub(crate) mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if v.is_empty() {
            s.serialize_none()
        } else {
            s.serialize_str(&STANDARD.encode(v))
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
        match s {
            None => Ok(Vec::new()),
            Some(s) => STANDARD
                .decode(s.as_bytes())
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Reads `null` as the type's default (Go leaves the field at its zero value).
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(<Option<T> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

/// Go `time.Time` in JSON: `"2006-01-02T15:04:05.999999999Z07:00"` (always written in UTC).
pub(crate) mod go_time {
    use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Go's zero `time.Time`: `0001-01-01T00:00:00Z`.
    pub(crate) fn zero() -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(1, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|n| n.and_utc())
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Formats like Go's `Time.MarshalJSON` for a UTC time.
    pub(crate) fn format(t: &DateTime<Utc>) -> String {
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        // chrono encodes leap seconds as nanosecond >= 1e9; Go has no leap seconds.
        let nanos = t.nanosecond() % 1_000_000_000;
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        s.push('Z');
        s
    }

    /// Parses RFC 3339 (any offset, converted to UTC), as Go's `Time.UnmarshalJSON` accepts
    /// (leap seconds refused, like Go: [`crate::gojson::parse_go_time`]).
    pub(crate) fn parse(s: &str) -> crate::Result<DateTime<Utc>> {
        crate::gojson::parse_go_time(s)
    }

    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        // Go's UnmarshalJSON treats `null` as a no-op, leaving the zero time.
        let s: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
        match s {
            None => Ok(zero()),
            Some(s) => parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    // TEST-VECTORS.md §V-TS (Go string escapes and timestamps).
    #[test]
    fn v_ts_go_escapes() {
        assert_eq!(quote("a<b>&c\u{2028}"), r#""a\u003cb\u003e\u0026c\u2028""#);
        assert_eq!(quote("x\n\t\u{1}\""), r#""x\n\t\u0001\"""#);
    }

    #[test]
    fn v_ts_times() {
        let t =
            Utc.with_ymd_and_hms(2022, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::nanoseconds(6);
        assert_eq!(go_time::format(&t), "2022-01-02T03:04:05.000000006Z");
        let t = go_time::parse("2022-07-10T11:15:22.656077568-07:00").unwrap();
        assert_eq!(t.timestamp_nanos_opt().unwrap(), 1657476922656077568);
        assert_eq!(go_time::format(&t), "2022-07-10T18:15:22.656077568Z");
        let t = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap()
            + chrono::Duration::milliseconds(120);
        assert_eq!(go_time::format(&t), "2024-05-06T07:08:09.12Z");
        assert_eq!(go_time::format(&go_time::zero()), "0001-01-01T00:00:00Z");
        assert_eq!(
            go_time::parse("0001-01-01T00:00:00Z").unwrap(),
            go_time::zero()
        );
    }
}
