//! Byte-exact Go `encoding/json` output (FORMAT.md §18.1) and Go timestamps.
//!
//! Kopia hashes the JSON it writes (directory listings, chunk lists, manifest files), so an
//! encoder that wants to produce the same content IDs as kopia must write the same bytes.
//! serde derives already emit struct fields in declaration order and `BTreeMap` keys sorted;
//! what is left is Go's string escaping, number formatting and timestamp layout:
//!
//! * `<`, `>`, `&` become `\u003c`, `\u003e`, `\u0026` (Go's default HTML-safe escaping);
//!   U+2028 and U+2029 become `\u2028`, `\u2029`.
//! * Control characters: `\b`, `\f`, `\n`, `\r`, `\t` use short escapes, all others `\u00xx`
//!   with lowercase hex. Go 1.22 switched `\b` and `\f` from `\u0008`/`\u000c` to the short
//!   forms (Go 1.22 release notes, `encoding/json`); kopia 0.20.1 was built with go1.23.5 and
//!   v0.23.1 with a newer Go, so the short forms are what kopia writes. serde_json's default
//!   control-character escaping is identical, so [`GoFormatter`] keeps it.
//! * Go replaces every byte of invalid UTF-8 by the six characters `\ufffd`. Rust strings
//!   cannot hold invalid UTF-8; callers convert raw names with [`go_string_lossy`], which
//!   replaces each invalid byte by U+FFFD, and [`GoFormatter`] then writes every U+FFFD as the
//!   escape `\ufffd`. That reproduces kopia's bytes for non-UTF-8 names; for a name that
//!   *genuinely* contains U+FFFD, Go would write the raw character instead (a byte difference,
//!   not a semantic one: both decode to the same string).
//! * `[]byte` is standard base64 with padding; floats use Go's `'f'`/`'e'` switch at 1e-6 and
//!   1e21 with exponents like `e-7` and `e+21`.
//! * `json.RawMessage` is re-compacted with the same escaping (Go runs `compact` on it).
//!
//! Timestamps: Go's `time.Time` marshals as RFC 3339 with up to nine fraction digits, trailing
//! zeros trimmed (`2024-05-06T07:08:09.12Z`), `Z` for UTC. Kopia's `fs.UTCTimestamp` is an
//! `int64` of nanoseconds since the Unix epoch marshalled the same way after `.UTC()`.

use std::io;

use base64::Engine as _;
use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

use crate::{Error, Result};

/// A `serde_json` formatter producing Go `encoding/json` bytes (compact form).
///
/// Use it through [`to_go_json`], [`to_go_json_line`] or [`to_go_json_indent`].
#[derive(Debug, Default, Clone, Copy)]
pub struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        write_go_escaped_fragment(writer, fragment)
    }

    fn write_char_escape<W>(&mut self, writer: &mut W, char_escape: CharEscape) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        // serde_json's escapes for '"', '\\' and control characters are exactly Go's (>= 1.22).
        serde_json::ser::CompactFormatter.write_char_escape(writer, char_escape)
    }

    fn write_f64<W>(&mut self, writer: &mut W, value: f64) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let abs = value.abs();
        writer.write_all(go_float(value, abs != 0.0 && !(1e-6..1e21).contains(&abs)).as_bytes())
    }

    fn write_f32<W>(&mut self, writer: &mut W, value: f32) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let abs = value.abs();
        writer.write_all(go_float(value, abs != 0.0 && !(1e-6..1e21).contains(&abs)).as_bytes())
    }

    fn write_byte_array<W>(&mut self, writer: &mut W, value: &[u8]) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        writer.write_all(b"\"")?;
        writer.write_all(
            base64::engine::general_purpose::STANDARD
                .encode(value)
                .as_bytes(),
        )?;
        writer.write_all(b"\"")
    }

    fn write_raw_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut out = Vec::with_capacity(fragment.len());
        go_compact(&mut out, fragment.as_bytes());
        writer.write_all(&out)
    }
}

/// Formats a float like Go's `encoding/json` `floatEncoder` (shortest round-trip digits).
fn go_float<F: std::fmt::Display + std::fmt::LowerExp + Copy>(value: F, exponent: bool) -> String {
    if !exponent {
        // Rust's Display of floats is the shortest round-trip decimal without exponent,
        // which is Go's strconv 'f' format with precision -1.
        return value.to_string();
    }
    // Rust: "1.5e-7" / "1e21"; Go: "1.5e-07" cleaned up to "1.5e-7", and "1e+21".
    let s = format!("{value:e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            if sign == '+' && digits.len() < 2 {
                format!("{mantissa}e+0{digits}")
            } else {
                format!("{mantissa}e{sign}{digits}")
            }
        }
        None => s,
    }
}

/// Writes a string fragment that serde_json did not escape, adding Go's extra escapes.
fn write_go_escaped_fragment<W: ?Sized + io::Write>(
    writer: &mut W,
    fragment: &str,
) -> io::Result<()> {
    let mut start = 0;
    for (i, ch) in fragment.char_indices() {
        let esc: &[u8] = match ch {
            '<' => b"\\u003c",
            '>' => b"\\u003e",
            '&' => b"\\u0026",
            '\u{2028}' => b"\\u2028",
            '\u{2029}' => b"\\u2029",
            '\u{fffd}' => b"\\ufffd",
            _ => continue,
        };
        writer.write_all(fragment.get(start..i).unwrap_or_default().as_bytes())?;
        writer.write_all(esc)?;
        start = i + ch.len_utf8();
    }
    writer.write_all(fragment.get(start..).unwrap_or_default().as_bytes())
}

/// Go's `compact` with HTML escaping: drops insignificant whitespace, escapes `<>&` and
/// U+2028/U+2029. Applied to raw JSON fragments (Go's `json.RawMessage`).
fn go_compact(out: &mut Vec<u8>, src: &[u8]) {
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while let Some(&c) = src.get(i) {
        match c {
            b'<' | b'>' | b'&' => {
                out.extend_from_slice(match c {
                    b'<' => b"\\u003c",
                    b'>' => b"\\u003e",
                    _ => b"\\u0026",
                });
                escaped = false;
            }
            0xE2 if src.get(i + 1) == Some(&0x80)
                && matches!(src.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                out.extend_from_slice(if src.get(i + 2) == Some(&0xA8) {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                escaped = false;
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' if !in_string => {}
            _ => {
                out.push(c);
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if c == b'\\' {
                        escaped = true;
                    } else if c == b'"' {
                        in_string = false;
                    }
                } else if c == b'"' {
                    in_string = true;
                }
            }
        }
        i += 1;
    }
}

/// Go's `json.Indent(dst, src, prefix = "", indent)` over compact JSON.
fn go_indent(src: &[u8], indent: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut need_indent = false;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        for _ in 0..depth {
            out.extend_from_slice(indent.as_bytes());
        }
    };
    for &c in src {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if need_indent && c != b']' && c != b'}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            b'"' => {
                in_string = true;
                out.push(c);
            }
            b'{' | b'[' => {
                need_indent = true;
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b'}' | b']' => {
                if need_indent {
                    // empty object or array stays "{}" / "[]"
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Like Go's `json.Marshal`: compact, no trailing newline.
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value
        .serialize(&mut ser)
        .map_err(|e| Error::json("Go JSON encoding", e))?;
    Ok(out)
}

/// Like Go's `json.NewEncoder(w).Encode(v)`: compact plus a trailing `\n`.
pub fn to_go_json_line<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = to_go_json(value)?;
    out.push(b'\n');
    Ok(out)
}

/// Like a Go `json.Encoder` with `SetIndent("", indent)`: indented plus a trailing `\n`.
pub fn to_go_json_indent<T: Serialize + ?Sized>(value: &T, indent: &str) -> Result<Vec<u8>> {
    let compact = to_go_json(value)?;
    let mut out = go_indent(&compact, indent);
    out.push(b'\n');
    Ok(out)
}

/// Converts bytes to a string the way Go's JSON encoder sees them: every byte that is not
/// part of a valid UTF-8 sequence becomes one U+FFFD (Go's `utf8.DecodeRune` consumes one
/// byte per error, unlike Rust's `from_utf8_lossy`, which replaces maximal invalid subparts).
pub fn go_string_lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push('\u{fffd}');
                rest = after.get(1..).unwrap_or_default();
            }
        }
    }
}

/// Formats a timestamp like Go's `time.Time.MarshalJSON` of a UTC time (without quotes):
/// `2006-01-02T15:04:05.999999999Z07:00` with trailing fraction zeros trimmed and `Z`.
/// The zero `time.Time` is `0001-01-01T00:00:00Z`.
pub fn format_go_time(t: &DateTime<Utc>) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
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

/// Parses an RFC 3339 timestamp with any offset (what Go's `time.Time.UnmarshalJSON`
/// accepts), returning it in UTC.
///
/// A leap second (`:60`) is refused, as Go refuses it ("second out of range"): chrono
/// would accept it and write it back as another instant (found by the `dir_manifest`
/// fuzz target).
pub fn parse_go_time(s: &str) -> Result<DateTime<Utc>> {
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
pub fn go_zero_time() -> DateTime<Utc> {
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

fn serialize_time<S: serde::Serializer>(
    t: &DateTime<Utc>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    if !(0..=9999).contains(&t.year()) {
        // Go's Time.MarshalJSON refuses years outside [0,9999].
        return Err(serde::ser::Error::custom(format!(
            "Time.MarshalJSON: year {} outside of range [0,9999]",
            t.year()
        )));
    }
    s.serialize_str(&format_go_time(t))
}

fn deserialize_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<DateTime<Utc>, D::Error> {
    let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    parse_go_time(&s).map_err(serde::de::Error::custom)
}

/// Serde helper for a Go `time.Time` / kopia `fs.UTCTimestamp` field that is always written:
/// `#[serde(with = "crate::gojson::time")]`.
pub mod time {
    use chrono::{DateTime, Utc};

    /// Serializes as Go's `time.Time.MarshalJSON` of the UTC time.
    pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        super::serialize_time(t, s)
    }

    /// Parses an RFC 3339 string with any offset.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        super::deserialize_time(d)
    }
}

/// Serde helper for an `fs.UTCTimestamp` with `omitempty` (e.g. `DirEntry.mtime`): omitted when
/// it is exactly the Unix epoch, and the Unix epoch when missing. Use as
/// `#[serde(with = "crate::gojson::time_omit_epoch", default = "crate::gojson::unix_epoch",
/// skip_serializing_if = "crate::gojson::is_unix_epoch")]`.
pub mod time_omit_epoch {
    use chrono::{DateTime, Utc};

    /// Serializes as Go's `time.Time.MarshalJSON` of the UTC time.
    pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        super::serialize_time(t, s)
    }

    /// Parses an RFC 3339 string with any offset.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        super::deserialize_time(d)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {

    #[test]
    fn leap_seconds_are_refused_like_go() {
        assert!(parse_go_time("2016-12-31T23:59:59Z").is_ok());
        let e = parse_go_time("2016-12-31T23:59:60Z").unwrap_err();
        assert!(e.to_string().contains("second out of range"), "{e}");
        // The dir_manifest fuzz input: parsed, it re-encoded as another instant.
        let listing = br#"{"stream":"kopia:directory","entries":[{"name":"ec74ab3b51a0dfb0"}],"summary":{"si~e":29,"files":1,"symlinks":0,"dirs":1,"maxTime":"2302-11-15T08:13:60Z","numFailed":0}}"#;
        assert!(crate::snapshot::DirManifest::parse(listing).is_err());
    }

    use super::*;
    use std::collections::BTreeMap;

    fn s(v: &impl Serialize) -> String {
        String::from_utf8(to_go_json(v).unwrap()).unwrap()
    }

    // V-TS (fs/utc_timestamp_test.go and derived Go 1.23 behaviour).
    #[test]
    fn v_ts_timestamps() {
        let t = DateTime::from_timestamp(1_641_092_645, 6).unwrap();
        assert_eq!(format_go_time(&t), "2022-01-02T03:04:05.000000006Z");
        let p = parse_go_time("2022-07-10T11:15:22.656077568-07:00").unwrap();
        assert_eq!(p.timestamp_nanos_opt().unwrap(), 1_657_476_922_656_077_568);
        assert_eq!(format_go_time(&p), "2022-07-10T18:15:22.656077568Z");
        let t = parse_go_time("2024-05-06T07:08:09.120Z").unwrap();
        assert_eq!(format_go_time(&t), "2024-05-06T07:08:09.12Z");
        assert_eq!(format_go_time(&go_zero_time()), "0001-01-01T00:00:00Z");
        assert_eq!(format_go_time(&unix_epoch()), "1970-01-01T00:00:00Z");
        assert!(parse_go_time("invalid-date").is_err());
    }

    #[test]
    fn v_ts_strings() {
        assert_eq!(s(&"a<b>&c\u{2028}"), r#""a\u003cb\u003e\u0026c\u2028""#);
        assert_eq!(s(&go_string_lossy(&[0x66, 0xff, 0x6f])), r#""f\ufffdo""#);
        assert_eq!(s(&"x\u{2029}"), r#""x\u2029""#);
        // Go >= 1.22 short escapes for \b and \f; other controls \u00xx lowercase.
        // DEL (0x7f) and '/' are not escaped by Go.
        assert_eq!(
            s(&"\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}\"\\/"),
            concat!(r#""\b\f\n\r\t\u0001\u001f"#, "\u{7f}", r#"\"\\/""#)
        );
        let mut m = BTreeMap::new();
        m.insert("z", 1);
        m.insert("a", 2);
        m.insert("name", 3);
        assert_eq!(s(&m), r#"{"a":2,"name":3,"z":1}"#);
        #[derive(Serialize)]
        struct Empty {
            #[serde(skip_serializing_if = "Option::is_none")]
            a: Option<u32>,
        }
        assert_eq!(s(&Empty { a: None }), "{}");
        // 30 days as time.Duration (int64 ns)
        assert_eq!(s(&(30i64 * 24 * 3600 * 1_000_000_000)), "2592000000000000");
    }

    #[test]
    fn go_lossy_is_per_byte() {
        // truncated 4-byte sequence: Go yields one U+FFFD per byte
        assert_eq!(
            go_string_lossy(&[0xf0, 0x9f, 0x98, b'a']),
            "\u{fffd}\u{fffd}\u{fffd}a"
        );
        assert_eq!(go_string_lossy("été".as_bytes()), "été");
        assert_eq!(
            go_string_lossy(&[0xed, 0xa0, 0x80]),
            "\u{fffd}\u{fffd}\u{fffd}"
        );
    }

    #[test]
    fn floats_like_go() {
        assert_eq!(s(&1.5f64), "1.5");
        assert_eq!(s(&1e20f64), "100000000000000000000");
        assert_eq!(s(&1e21f64), "1e+21");
        assert_eq!(s(&1.5e-7f64), "1.5e-7");
        assert_eq!(s(&1.5e-300f64), "1.5e-300");
        assert_eq!(s(&0.000001f64), "0.000001");
        assert_eq!(s(&3.0f64), "3");
        assert_eq!(s(&0.0f64), "0");
        assert_eq!(s(&-0.0f64), "-0");
        assert_eq!(s(&1e-7f32), "1e-7");
        assert_eq!(s(&1e100f64), "1e+100");
    }

    #[test]
    fn bytes_and_raw() {
        #[derive(Serialize)]
        struct B<'a> {
            #[serde(with = "serde_bytes_like")]
            b: &'a [u8],
        }
        mod serde_bytes_like {
            pub fn serialize<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(b)
            }
        }
        assert_eq!(s(&B { b: b"hi!" }), r#"{"b":"aGkh"}"#);
        let raw =
            serde_json::value::RawValue::from_string("{ \"a\" : \"<x> y\" , \"b\":[1, 2] }".into())
                .unwrap();
        assert_eq!(s(&raw), r#"{"a":"\u003cx\u003e y","b":[1,2]}"#);
    }

    #[test]
    fn indent_like_go_encoder() {
        #[derive(Serialize)]
        struct T {
            a: u32,
            e: Vec<u32>,
            m: BTreeMap<String, u32>,
            l: Vec<u32>,
        }
        let v = T {
            a: 1,
            e: vec![],
            m: BTreeMap::new(),
            l: vec![1, 2],
        };
        let out = String::from_utf8(to_go_json_indent(&v, "  ").unwrap()).unwrap();
        assert_eq!(
            out,
            "{\n  \"a\": 1,\n  \"e\": [],\n  \"m\": {},\n  \"l\": [\n    1,\n    2\n  ]\n}\n"
        );
        assert_eq!(to_go_json_line(&1u8).unwrap(), b"1\n");
    }

    proptest::proptest! {
        #[test]
        fn strings_roundtrip(x in ".*") {
            let enc = to_go_json(&x).unwrap();
            let back: String = serde_json::from_slice(&enc).unwrap();
            // U+FFFD is written as an escape and reads back as itself.
            proptest::prop_assert_eq!(back, x.clone());
            proptest::prop_assert!(!enc.iter().any(|&b| b == b'<' || b == b'>' || b == b'&'));
        }

        #[test]
        fn times_roundtrip(ns in -62_135_596_800_000_000_000i128..253_402_300_799_999_999_999i128) {
            let secs = ns.div_euclid(1_000_000_000) as i64;
            let sub = ns.rem_euclid(1_000_000_000) as u32;
            let t = DateTime::from_timestamp(secs, sub).unwrap();
            let back = parse_go_time(&format_go_time(&t)).unwrap();
            proptest::prop_assert_eq!(back, t);
        }
    }
}
