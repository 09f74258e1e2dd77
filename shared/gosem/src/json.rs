//! The leaves of Go's `encoding/json` output: how it writes a string and a `float64`. Callers
//! own the structure (sorted map keys, indentation, size limits); these decide the bytes ESO's
//! users see, which `serde_json` writes differently (`<` unescaped, `1e21` as `1e21`).

use std::fmt::Write as _;

use crate::strconv;

/// Go's `encoding/json` string for `s` (Go 1.22+): `\"`, `\\`, `\n`, `\r`, `\t`, `\b` and `\f`
/// in short form, other control characters as `\u00XX`, U+2028 and U+2029 always escaped, and
/// `<`, `>` and `&` as `\u003c`, `\u003e` and `\u0026` when `escape_html` (`json.Marshal`; an
/// encoder with `SetEscapeHTML(false)` passes `false`).
pub fn write_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    write_string_body(out, s, escape_html);
    out.push('"');
}

/// [`write_string`] for Go's byte strings: every byte that is not part of valid UTF-8 is
/// written as `\ufffd`, one per byte, as `encoding/json` does.
pub fn write_bytes(out: &mut String, bytes: &[u8], escape_html: bool) {
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        write_string_body(out, chunk.valid(), escape_html);
        for _ in chunk.invalid() {
            out.push_str("\\ufffd");
        }
    }
    out.push('"');
}

fn write_string_body(out: &mut String, s: &str, escape_html: bool) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' if escape_html => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// How `encoding/json` writes a `float64`: `strconv`'s `'f'` format, except that magnitudes
/// below 1e-6 or from 1e21 up use the exponent form, with a negative exponent's leading zero
/// trimmed (`1e+21`, `1e-7`, `1.5e-7`).
///
/// Go refuses to encode NaN and the infinities (`json: unsupported value`); callers check
/// [`f64::is_finite`] first. Given one anyway, this returns Go's `%v` spelling.
pub fn format_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && f.is_finite() && !(1e-6..1e21).contains(&abs) {
        strconv::format_float_e(f, 1)
    } else if f.is_finite() {
        strconv::format_float_f(f)
    } else {
        strconv::format_float_g(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str, escape_html: bool) -> String {
        let mut out = String::new();
        write_string(&mut out, s, escape_html);
        out
    }

    #[test]
    fn strings_escape_as_encoding_json_does() {
        // encoding/json.Marshal: "So that the JSON will be safe to embed inside HTML <script>
        // tags, the string is encoded using HTMLEscape".
        assert_eq!(
            string("<a&b>\u{1}\u{1f}\u{2028}\u{2029}\u{8}\u{c}\t é\"\\", true),
            r#""\u003ca\u0026b\u003e\u0001\u001f\u2028\u2029\b\f\t é\"\\""#
        );
        assert_eq!(string("<a&b>\u{2028}", false), r#""<a&b>\u2028""#);
    }

    #[test]
    fn invalid_utf8_is_one_replacement_per_byte() {
        let mut out = String::new();
        write_bytes(&mut out, b"a\xe2\x82b\xff<", true);
        assert_eq!(out, r#""a\ufffd\ufffdb\ufffd\u003c""#);
    }

    #[test]
    fn floats_encode_as_encoding_json_does() {
        let cases = [
            (1.0, "1"),
            (123.0, "123"),
            (1.5, "1.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (1e100, "1e+100"),
            (-2.5e-10, "-2.5e-10"),
            (12345678901234567890.0, "12345678901234567000"),
            (123456789.0, "123456789"),
            (0.0, "0"),
            (-0.0, "-0"),
        ];
        for (f, want) in cases {
            assert_eq!(format_float(f), want, "{f:e}");
        }
    }
}
