//! Go `time.Duration` text: [`format()`] is `Duration.String()`, [`parse`] is
//! `time.ParseDuration`.
//!
//! A Go duration is an `int64` count of nanoseconds; kopia stores durations that way in JSON
//! (`maxAge`, `interval`, epoch parameters), and prints and reads them as text.
//!
//! * Text form: `[-]` then units from hours down, leading zero units omitted:
//!   `1h30m0s`, `24h0m0s`, `1m0.5s`, `1.5s`. Once hours are printed, minutes and seconds
//!   follow even when zero. Below one second the largest unit that keeps a non-zero leading
//!   digit is used: `500ms`, `1.5µs` (micro sign U+00B5), `10ns`. Zero is `0s`. Fractions
//!   carry up to nine digits (seconds), six (milliseconds) or three (microseconds), trailing
//!   zeros trimmed.
//! * Parsing: an optional sign, then one or more `<decimal><unit>` with units `ns`, `us`,
//!   `µs` (U+00B5), `μs` (U+03BC), `ms`, `s`, `m`, `h`; `0` alone needs no unit. Decimals may
//!   have a fraction (`1.5h`, `.5s`, `1.s`). Integer arithmetic as in Go, so `0.1s` is exactly
//!   100 ms; values beyond the `int64` range are refused.

use crate::{Error, Result};

const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// `1 << 63`: the magnitude of the most negative `int64`.
const LIMIT: u64 = 1 << 63;

/// Formats a duration in nanoseconds exactly like Go's `time.Duration.String()`.
pub fn format(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if nanos < 0 {
        out.push('-');
    }
    let u = nanos.unsigned_abs();
    if u < NANOS_PER_SECOND {
        let (digits, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "\u{b5}s"),
            _ => (6, "ms"),
        };
        push_decimal(&mut out, u, digits);
        out.push_str(unit);
        return out;
    }
    let seconds = u / NANOS_PER_SECOND;
    let minutes = seconds / 60;
    let hours = minutes / 60;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{}m", minutes % 60));
    }
    push_decimal(
        &mut out,
        (seconds % 60) * NANOS_PER_SECOND + u % NANOS_PER_SECOND,
        9,
    );
    out.push('s');
    out
}

/// Appends `value / 10^digits`, with the remainder as a fraction without trailing zeros (and
/// without a point when it is zero).
fn push_decimal(out: &mut String, value: u64, digits: u32) {
    let scale = 10u64.pow(digits);
    out.push_str(&(value / scale).to_string());
    let frac = value % scale;
    if frac != 0 {
        let frac = format!("{frac:0width$}", width = digits as usize);
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
}

/// Parses a duration like Go's `time.ParseDuration`, returning nanoseconds. Negative values
/// are allowed (`-1.5h`); see [`parse_non_negative`] for settings that must not be negative.
pub fn parse(s: &str) -> Result<i64> {
    let invalid = || Error::invalid("duration", format!("{s:?} is not a Go duration"));
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..).unwrap_or_default()),
        Some(b'+') => (false, s.get(1..).unwrap_or_default()),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        // The integer part.
        let (int, after) = leading_int(rest).ok_or_else(invalid)?;
        let has_int = after.len() != rest.len();
        rest = after;
        // The fraction.
        let (mut frac, mut scale, mut has_frac) = (0u64, 1f64, false);
        if let Some(after_point) = rest.strip_prefix('.') {
            let (f, sc, after) = leading_fraction(after_point);
            has_frac = after.len() != after_point.len();
            (frac, scale, rest) = (f, sc, after);
        }
        if !has_int && !has_frac {
            return Err(invalid());
        }
        // The unit: everything up to the next number.
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit, after) = rest.split_at(unit_len);
        rest = after;
        let unit: u64 = match unit {
            "" => {
                return Err(Error::invalid("duration", format!("missing unit in {s:?}")));
            }
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SECOND,
            "m" => 60 * NANOS_PER_SECOND,
            "h" => 3_600 * NANOS_PER_SECOND,
            other => {
                return Err(Error::invalid(
                    "duration",
                    format!("unknown unit {other:?} in {s:?}"),
                ));
            }
        };
        if int > LIMIT / unit {
            return Err(invalid());
        }
        let mut value = int * unit;
        if frac > 0 {
            // As Go: the fraction is scaled in float64 and truncated (the product is below
            // `unit`, so the conversion cannot saturate).
            let part = (frac as f64 * (unit as f64 / scale)) as u64;
            value += part;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        // Go's uint64 sum wraps when two parts are each exactly 1 << 63 (so Go reads
        // "9223372036854775808ns9223372036854775808ns" as 0); that is refused here.
        total = total
            .checked_add(value)
            .filter(|&t| t <= LIMIT)
            .ok_or_else(invalid)?;
    }
    if neg {
        // Reaches i64::MIN exactly for a magnitude of 1 << 63.
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// [`parse`] for a setting that must not be negative (a timeout, an interval), as a
/// [`std::time::Duration`].
pub fn parse_non_negative(s: &str) -> Result<std::time::Duration> {
    let nanos = parse(s)?;
    u64::try_from(nanos)
        .map(std::time::Duration::from_nanos)
        .map_err(|_| Error::invalid("duration", format!("{s:?} is negative")))
}

/// Consumes leading ASCII digits; `None` when the value exceeds `1 << 63`.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, rest) = s.split_at(len);
    let mut x: u64 = 0;
    for d in digits.bytes() {
        if x > (LIMIT - 1) / 10 {
            return None;
        }
        x = x * 10 + u64::from(d - b'0');
        if x > LIMIT {
            return None;
        }
    }
    Some((x, rest))
}

/// Consumes the digits after a decimal point: `(value, 10^kept digits, rest)`. Digits that
/// would overflow are dropped (they are below nanosecond precision anyway).
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, rest) = s.split_at(len);
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for d in digits.bytes() {
        if overflow {
            continue;
        }
        if x > (LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(d - b'0');
        if y > LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, rest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use std::time::Duration;

    const NS: i64 = 1;
    const US: i64 = 1_000;
    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;

    #[test]
    fn format_like_go() {
        for (d, want) in [
            (0, "0s"),
            (H + 30 * M, "1h30m0s"),
            (24 * H, "24h0m0s"),
            (M + 500 * MS, "1m0.5s"),
            (90 * M, "1h30m0s"),
            (H, "1h0m0s"),
            (M, "1m0s"),
            (90 * S, "1m30s"),
            (S, "1s"),
            (1500 * MS, "1.5s"),
            (500 * MS, "500ms"),
            (2200 * US, "2.2ms"),
            (US, "1\u{b5}s"),
            (1100 * NS, "1.1\u{b5}s"),
            (NS, "1ns"),
            (999 * NS, "999ns"),
            (3300 * MS, "3.3s"),
            (4 * M + 5 * S, "4m5s"),
            (4 * M + 5001 * MS, "4m5.001s"),
            (5 * H + 6 * M + 7001 * MS, "5h6m7.001s"),
            (8 * M + NS, "8m0.000000001s"),
            (4 * H, "4h0m0s"),
            (30 * 24 * H, "720h0m0s"),
            (-S, "-1s"),
            (-(H + 30 * M), "-1h30m0s"),
            (-500 * MS, "-500ms"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(format(d), want, "{d}");
        }
    }

    #[test]
    fn parse_like_go() {
        for (s, want) in [
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            ("-5s", -5 * S),
            ("+5s", 5 * S),
            ("-0s", 0),
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600 * MS),
            ("5.s", 5 * S),
            (".5s", 500 * MS),
            ("1.004s", S + 4 * MS),
            ("1.0040s", S + 4 * MS),
            ("100.00100s", 100 * S + MS),
            ("0.1s", 100 * MS),
            ("10ns", 10 * NS),
            ("11us", 11 * US),
            ("12\u{b5}s", 12 * US),
            ("12\u{3bc}s", 12 * US),
            ("13ms", 13 * MS),
            ("15m", 15 * M),
            ("16h", 16 * H),
            ("3h30m", 3 * H + 30 * M),
            ("10.5s4m", 4 * M + 10 * S + 500 * MS),
            ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
            (
                "1h2m3s4ms5us6ns",
                H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS,
            ),
            ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
            ("52763797000ns", 52_763_797_000 * NS),
            ("0.3333333333333333333h", 20 * M),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("0.100000000000000000000h", 6 * M),
            (
                "0.830103483285477580700h",
                49 * M + 48 * S + 372_539_827 * NS,
            ),
        ] {
            assert_eq!(parse(s).unwrap(), want, "{s}");
        }
    }

    #[test]
    fn parse_refuses_like_go() {
        for bad in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "1h-",
            "x1h",
            "1h 2m",
            " 1h",
            "9223372036854775808ns",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            "9223372036s854ms775us808ns",
            "-9223372036854775809ns",
            "-9223372036854775.809us",
            "3000000h",
            "9223372036854775808ns9223372036854775808ns",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let e = parse("1d").unwrap_err().to_string();
        assert!(e.contains("unknown unit \"d\""), "{e}");
        let e = parse("4").unwrap_err().to_string();
        assert!(e.contains("missing unit"), "{e}");
    }

    // The mover's environment variables (KOPIA_*_TIMEOUT style settings): non-negative.
    #[test]
    fn non_negative_durations() {
        assert_eq!(
            parse_non_negative("4h").unwrap(),
            Duration::from_secs(14400)
        );
        assert_eq!(
            parse_non_negative("90m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_non_negative("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_non_negative("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_non_negative("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_non_negative("-0s").unwrap(), Duration::ZERO);
        for bad in ["", "4", "h", "4d", "-1h", "1h-"] {
            assert!(parse_non_negative(bad).is_err(), "{bad:?}");
        }
        let e = parse_non_negative("-1h").unwrap_err().to_string();
        assert!(e.contains("negative"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_roundtrips(d in proptest::num::i64::ANY) {
            proptest::prop_assert_eq!(parse(&format(d)).unwrap(), d);
        }

        #[test]
        fn whole_units_roundtrip(h in 0i64..100_000, m in 0i64..60, s in 0i64..60) {
            let d = h * H + m * M + s * S;
            let text = format(d);
            proptest::prop_assert_eq!(parse(&text).unwrap(), d);
            if h > 0 {
                proptest::prop_assert_eq!(text, std::format!("{h}h{m}m{s}s"));
            }
        }
    }
}
