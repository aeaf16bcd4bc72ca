//! Go compatibility: everything kopia's Go code writes or parses in a fixed textual form, in
//! one place.
//!
//! * This module: byte-exact Go `encoding/json` output (FORMAT.md §18.1) and the Go JSON
//!   decoding leniencies the codecs share (`null` as the zero value, `[]byte` as base64).
//! * [`time`]: Go `time.Time` text (RFC 3339 with nanoseconds, as `MarshalJSON` writes it),
//!   its parser and serde helpers, and kopia's CLI timestamp layout.
//! * [`duration`]: Go `time.Duration` text, `String()` and `ParseDuration`.
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
//!   replaces each invalid byte by U+FFFD, and [`to_go_json`] then writes every U+FFFD as the
//!   escape `\ufffd`. That reproduces kopia's bytes for non-UTF-8 names; for a name that
//!   *genuinely* contains U+FFFD, Go would write the raw character instead (a byte difference,
//!   not a semantic one: both decode to the same string). Documents whose strings are text
//!   decoded from JSON (the repository config, `kopia.blobcfg`, maintenance documents, legacy
//!   index logs) use [`to_go_json_text`], which writes U+FFFD raw, as Go does for them.
//! * `[]byte` is standard base64 with padding; floats use Go's `'f'`/`'e'` switch at 1e-6 and
//!   1e21 with exponents like `e-7` and `e+21`.
//! * `json.RawMessage` is re-compacted with the same escaping (Go runs `compact` on it).

use std::io;

use base64::Engine as _;
use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

use crate::{Error, Result};

pub mod duration;
pub mod time;

/// A `serde_json` formatter producing Go `encoding/json` bytes (compact form).
///
/// Use it through [`to_go_json`], [`to_go_json_line`], [`to_go_json_indent`] or
/// [`to_go_json_text`]. [`GoFormatter::default`] writes U+FFFD as `\ufffd` (strings made by
/// [`go_string_lossy`]); [`GoFormatter::text`] writes it raw (strings that are genuine text).
#[derive(Debug, Default, Clone, Copy)]
pub struct GoFormatter {
    /// Write U+FFFD as the raw character instead of `\ufffd`.
    raw_replacement_char: bool,
}

impl GoFormatter {
    /// The formatter for documents whose strings are text (decoded from JSON, typed by a
    /// user): U+FFFD is an ordinary character, written raw as Go writes it.
    pub fn text() -> Self {
        GoFormatter {
            raw_replacement_char: true,
        }
    }
}

impl Formatter for GoFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        write_go_escaped_fragment(writer, fragment, !self.raw_replacement_char)
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
    escape_replacement_char: bool,
) -> io::Result<()> {
    let mut start = 0;
    for (i, ch) in fragment.char_indices() {
        let esc: &[u8] = match ch {
            '<' => b"\\u003c",
            '>' => b"\\u003e",
            '&' => b"\\u0026",
            '\u{2028}' => b"\\u2028",
            '\u{2029}' => b"\\u2029",
            '\u{fffd}' if escape_replacement_char => b"\\ufffd",
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

fn encode<T: Serialize + ?Sized>(
    value: &T,
    formatter: GoFormatter,
    what: &'static str,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value
        .serialize(&mut ser)
        .map_err(|e| Error::json(what, e))?;
    Ok(out)
}

/// Like Go's `json.Marshal`: compact, no trailing newline. U+FFFD is written as `\ufffd`
/// (see the module docs).
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    encode(value, GoFormatter::default(), "Go JSON encoding")
}

/// Like Go's `json.Marshal` of a document whose strings are text: compact, no trailing
/// newline, U+FFFD written raw ([`GoFormatter::text`]). `what` names the document in the
/// error (a time outside Go's years, a map with non-string keys).
pub fn to_go_json_text<T: Serialize + ?Sized>(value: &T, what: &'static str) -> Result<Vec<u8>> {
    encode(value, GoFormatter::text(), what)
}

/// One Go-escaped JSON string literal of text, quotes included (as [`to_go_json_text`]).
pub(crate) fn quote_text(s: &str) -> String {
    // Serializing a string into a Vec cannot fail, and the output is UTF-8.
    let bytes = encode(s, GoFormatter::text(), "string").unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
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

/// Reads `null` as the type's default, as Go leaves a field at its zero value:
/// `#[serde(default, deserialize_with = "crate::gojson::null_default")]`.
pub(crate) fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(<Option<T> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

/// A Go `[]byte` field without `omitempty`: standard base64 with padding; empty is written
/// as `null` (Go's nil slice) and `null` reads as empty.
/// `#[serde(default, with = "crate::gojson::base64_bytes")]`.
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn s(v: &impl Serialize) -> String {
        String::from_utf8(to_go_json(v).unwrap()).unwrap()
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

    // V-TS for documents of text (repository config, maintenance, legacy index logs): the
    // same escapes, but U+FFFD is an ordinary character, written raw as Go does.
    #[test]
    fn v_ts_text_strings() {
        assert_eq!(
            quote_text("a<b>&c\u{2028}"),
            r#""a\u003cb\u003e\u0026c\u2028""#
        );
        assert_eq!(quote_text("x\n\t\u{1}\""), r#""x\n\t\u0001\"""#);
        assert_eq!(quote_text("a\u{fffd}b"), "\"a\u{fffd}b\"");
        assert_eq!(s(&"a\u{fffd}b"), r#""a\ufffdb""#);
        let mut m = BTreeMap::new();
        m.insert("k<", "v\u{fffd}&");
        assert_eq!(
            to_go_json_text(&m, "test").unwrap(),
            "{\"k\\u003c\":\"v\u{fffd}\\u0026\"}".as_bytes()
        );
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
    }
}
