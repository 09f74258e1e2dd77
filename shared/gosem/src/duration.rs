//! Go `time.Duration` strings, as ESO's `metav1.Duration` fields carry them and sprig's
//! `dateModify` and `duration` read and print them.
//!
//! [`parse_go_duration`] follows Go's `time.ParseDuration` step for step: integer arithmetic,
//! the same overflow limits, the same grammar (`"0"`, `"90s"`, `"1.5h"`, `"2h45m"`, `"300ms"`,
//! `"-5s"`, no bare numbers other than `0`, no empty string). [`format_go_duration`] produces
//! what Go's `Duration.String()` prints (`"1h0m0s"`, `"1.5s"`, `"300ms"`, `"0s"`).
//!
//! `kube::core::Duration` was considered: it parses through `f64` and accepts strings Go rejects
//! (`""`, `"1h0"`), so the engine would disagree with ESO at the edges.

use std::time::Duration;

/// Why a string is not a Go duration. Messages mirror Go's wording.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not of the form `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or out of range.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// A number without a unit, such as `"10"`.
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit Go does not know, such as `"10d"`.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// A valid but negative duration, where only non-negative ones make sense.
    #[error("negative duration {0:?} is not allowed here")]
    Negative(String),
}

const NANOSECOND: u64 = 1;
const MICROSECOND: u64 = 1_000 * NANOSECOND;
const MILLISECOND: u64 = 1_000 * MICROSECOND;
const SECOND: u64 = 1_000 * MILLISECOND;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// 1<<63, the magnitude limit Go checks against.
const LIMIT: u64 = 1 << 63;

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => NANOSECOND,
        // U+00B5 micro sign and U+03BC Greek small letter mu, as Go accepts both.
        "us" | "\u{00b5}s" | "\u{03bc}s" => MICROSECOND,
        "ms" => MILLISECOND,
        "s" => SECOND,
        "m" => MINUTE,
        "h" => HOUR,
        _ => return None,
    })
}

/// Parses a Go duration string into signed nanoseconds, exactly as Go's `time.ParseDuration`.
///
/// The result fits an `i64`, as Go's `time.Duration` does.
pub fn parse_go_duration_nanos(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let mut s = input.as_bytes();
    let mut neg = false;
    if let Some((&c, rest)) = s.split_first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        s = rest;
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }

    let mut total: u64 = 0;
    while !s.is_empty() {
        // The next character must be [0-9.].
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Consume [0-9]*.
        let (mut v, rest, consumed) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let pre = consumed;
        // Consume (\.[0-9]*)?.
        let mut post = false;
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        if let Some((&b'.', rest)) = s.split_first() {
            let (f, sc, rest, consumed) = leading_fraction(rest);
            frac = f;
            scale = sc;
            s = rest;
            post = consumed;
        }
        if !pre && !post {
            // No digits at all, e.g. ".s" or "-.s".
            return Err(invalid());
        }
        // Consume the unit: everything up to the next '.' or digit.
        let unit_len = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let (unit_bytes, rest) = s.split_at(unit_len);
        s = rest;
        let unit_str = String::from_utf8_lossy(unit_bytes);
        let unit = unit_nanos(&unit_str).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit_str.clone().into_owned(),
            input: input.to_owned(),
        })?;
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if frac > 0 {
            // Go uses float64 here; it is nanosecond-accurate for fractions of hours.
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "mirrors Go's uint64(float64(f) * (float64(unit) / scale))"
            )]
            let add = (frac as f64 * (unit as f64 / scale)) as u64;
            v = v.checked_add(add).ok_or_else(invalid)?;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        // total <= 1<<63, so the negation fits.
        return Ok(0_i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// Consumes leading ASCII digits. Returns the value, the rest and whether anything was consumed;
/// `None` on overflow (Go's `errLeadingInt`).
fn leading_int(s: &[u8]) -> Option<(u64, &[u8], bool)> {
    let mut x: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(s[i] - b'0');
        if x > LIMIT {
            return None;
        }
        i += 1;
    }
    Some((x, &s[i..], i > 0))
}

/// Consumes leading ASCII digits after a decimal point. Digits beyond what fits are ignored,
/// as in Go. Returns the digits as an integer, the power of ten they were scaled by, the rest and
/// whether anything was consumed.
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8], bool) {
    let mut x: u64 = 0;
    let mut scale: f64 = 1.0;
    let mut overflow = false;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        let c = s[i];
        i += 1;
        if overflow {
            continue;
        }
        if x > (LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[i..], i > 0)
}

/// Parses a non-negative Go duration string (`"1h0m0s"`, `"90s"`, `"0"`, `"1.5h"`, `"300ms"`).
///
/// A negative duration is an error ([`DurationError::Negative`]); use
/// [`parse_go_duration_nanos`] where a sign is meaningful.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let nanos = parse_go_duration_nanos(input)?;
    let nanos = u64::try_from(nanos).map_err(|_| DurationError::Negative(input.to_owned()))?;
    Ok(Duration::from_nanos(nanos))
}

/// Formats a duration as Go's `Duration.String()` does: `"1h0m0s"`, `"2h45m0s"`, `"1.5s"`,
/// `"300ms"`, `"1.5µs"`, `"0s"`.
pub fn format_go_duration(d: Duration) -> String {
    let mut u = d.as_nanos();
    if u == 0 {
        return "0s".to_owned();
    }
    // Built back to front, as Go does.
    let mut out: Vec<char> = Vec::with_capacity(32);
    let push_rev = |out: &mut Vec<char>, s: &str| out.extend(s.chars().rev());
    let second = u128::from(SECOND);
    if u < second {
        // Smaller than a second: use a smaller unit, like 1.2ms.
        let (prec, unit) = if u < u128::from(MICROSECOND) {
            (0, "ns")
        } else if u < u128::from(MILLISECOND) {
            (3, "\u{00b5}s")
        } else {
            (6, "ms")
        };
        push_rev(&mut out, unit);
        u = fmt_frac(&mut out, u, prec);
        fmt_int(&mut out, u);
    } else {
        out.push('s');
        u = fmt_frac(&mut out, u, 9);
        // u is now whole seconds.
        fmt_int(&mut out, u % 60);
        u /= 60;
        if u > 0 {
            out.push('m');
            fmt_int(&mut out, u % 60);
            u /= 60;
            if u > 0 {
                out.push('h');
                fmt_int(&mut out, u);
            }
        }
    }
    out.iter().rev().collect()
}

/// [`format_go_duration`] for Go's signed `time.Duration` (nanoseconds): `"-1m30s"`.
pub fn format_go_duration_nanos(nanos: i64) -> String {
    let magnitude = format_go_duration(Duration::from_nanos(nanos.unsigned_abs()));
    if nanos < 0 {
        format!("-{magnitude}")
    } else {
        magnitude
    }
}

/// Pushes (reversed) the fraction of `v / 10^prec`, without trailing zeros and without the point
/// when the fraction is zero. Returns `v / 10^prec`.
fn fmt_frac(out: &mut Vec<char>, mut v: u128, prec: u32) -> u128 {
    let mut print = false;
    for _ in 0..prec {
        let digit = v % 10;
        print = print || digit != 0;
        if print {
            out.push(digit_char(digit));
        }
        v /= 10;
    }
    if print {
        out.push('.');
    }
    v
}

/// Pushes (reversed) the decimal digits of `v`.
fn fmt_int(out: &mut Vec<char>, mut v: u128) {
    if v == 0 {
        out.push('0');
        return;
    }
    while v > 0 {
        out.push(digit_char(v % 10));
        v /= 10;
    }
}

fn digit_char(d: u128) -> char {
    // d < 10 by construction.
    char::from_digit(u32::try_from(d).unwrap_or(0), 10).unwrap_or('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(n: i64) -> Result<i64, DurationError> {
        Ok(n)
    }

    const S: i64 = 1_000_000_000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;

    #[test]
    fn parses_the_durations_esos_users_write() {
        assert_eq!(parse_go_duration("1h0m0s"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_go_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_go_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(
            parse_go_duration("2h45m"),
            Ok(Duration::from_secs(2 * 3600 + 45 * 60))
        );
    }

    #[test]
    fn parses_like_go_on_gos_own_table() {
        // Cases from Go's time_test.go parseDurationTests.
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            ("-5s", -5 * S),
            ("+5s", 5 * S),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600_000_000),
            ("5.s", 5 * S),
            (".5s", 500_000_000),
            ("1.0s", S),
            ("1.00s", S),
            ("1.004s", S + 4_000_000),
            ("1.0040s", S + 4_000_000),
            ("100.00100s", 100 * S + 1_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12\u{00b5}s", 12_000),
            ("12\u{03bc}s", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14 * S),
            ("15m", 15 * M),
            ("16h", 16 * H),
            ("3h30m", 3 * H + 30 * M),
            ("10.5s4m", 4 * M + 10 * S + 500_000_000),
            ("-2m3.4s", -(2 * M + 3 * S + 400_000_000)),
            ("1h2m3s4ms5us6ns", H + 2 * M + 3 * S + 4_000_000 + 5_000 + 6),
            ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425_000_000),
            ("52763797000ns", 52_763_797_000),
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
            ("0.830103483285477580700h", 49 * M + 48 * S + 372_539_827),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration_nanos(input), ns(*want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for input in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "1h0",
            "1e3s",
            "\u{fffd}",
            "1\u{fffd}s",
            "9223372036854775808ns",
            "9223372036854775.808us",
            "-9223372036854775809ns",
            "2562047h47m16.854775808s",
            "1 h",
            " 1h",
            "--5s",
        ] {
            assert!(
                parse_go_duration_nanos(input).is_err(),
                "accepted {input:?}"
            );
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            parse_go_duration("10").map_err(|e| e.to_string()),
            Err("missing unit in duration \"10\"".to_owned())
        );
        assert_eq!(
            parse_go_duration("1d").map_err(|e| e.to_string()),
            Err("unknown unit \"d\" in duration \"1d\"".to_owned())
        );
        assert_eq!(
            parse_go_duration("").map_err(|e| e.to_string()),
            Err("invalid duration \"\"".to_owned())
        );
        assert_eq!(
            parse_go_duration("-5s"),
            Err(DurationError::Negative("-5s".to_owned()))
        );
    }

    #[test]
    fn formats_like_gos_duration_string() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1100), "1.1\u{00b5}s"),
            (Duration::from_micros(2200), "2.2ms"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_millis(3300), "3.3s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::from_secs(86_400), "24h0m0s"),
            (Duration::from_millis(4 * 60_000 + 5_001), "4m5.001s"),
            (
                Duration::from_nanos(5 * 3_600_000_000_000 + 6 * 60_000_000_000 + 7_001_000_000),
                "5h6m7.001s",
            ),
            (
                Duration::from_nanos(i64::MAX.unsigned_abs()),
                "2562047h47m16.854775807s",
            ),
        ];
        for (d, want) in cases {
            assert_eq!(format_go_duration(*d), *want);
        }
    }

    #[test]
    fn signed_durations_format_like_go() {
        assert_eq!(format_go_duration_nanos(0), "0s");
        assert_eq!(format_go_duration_nanos(-90 * S), "-1m30s");
        assert_eq!(format_go_duration_nanos(-1_500), "-1.5\u{00b5}s");
        assert_eq!(
            format_go_duration_nanos(i64::MIN),
            "-2562047h47m16.854775808s"
        );
    }

    #[test]
    fn formatting_then_parsing_gives_the_same_duration() {
        for secs in [0_u64, 1, 59, 60, 61, 3599, 3600, 86_399, 1_000_000] {
            let d = Duration::from_secs(secs) + Duration::from_millis(secs % 7);
            assert_eq!(parse_go_duration(&format_go_duration(d)), Ok(d));
        }
    }
}
