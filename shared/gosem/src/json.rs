//! Go's `encoding/json` output: how it writes a string and a `float64` (for callers that own
//! the structure: indentation, size limits, their own value types), and `json.Marshal` of the
//! maps ESO's providers marshal whole. These decide the bytes ESO's users see, which
//! `serde_json` writes differently (`<` unescaped, `1e21` as `1e21`, keys in insertion order
//! with its `preserve_order` feature).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

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

/// `json.Marshal(map[string]string)`: sorted keys, HTML-escaped strings (ESO's AWS tags, a
/// Vault secret's custom metadata).
pub fn marshal_string_map(map: &BTreeMap<String, String>) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(&mut out, key, true);
        out.push(':');
        write_string(&mut out, value, true);
    }
    out.push('}');
    out
}

/// `json.Marshal` of a JSON object decoded into `map[string]any` with `UseNumber` (as Vault's
/// client decodes; ESO's Vault provider marshals a whole secret so): keys sorted at every level,
/// strings HTML-escaped, numbers as `serde_json` read them (Go's `json.Number` keeps the text
/// as written; the two differ only for forms such as `1e3`, which `serde_json` reads as a float).
pub fn marshal_object(map: &serde_json::Map<String, Value>) -> String {
    let mut out = String::new();
    write_object(&mut out, map);
    out
}

/// `json.Marshal` of any decoded JSON value, as [`marshal_object`] writes objects.
pub fn marshal_value(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_object(out: &mut String, map: &serde_json::Map<String, Value>) {
    // `serde_json`'s map keeps insertion order when a crate enables `preserve_order`.
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key, true);
        out.push(':');
        write_value(out, value);
    }
    out.push('}');
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s, true),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
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
    fn maps_marshal_as_json_marshal_does() {
        let map = BTreeMap::from([
            ("team".to_owned(), "a&b".to_owned()),
            ("env".to_owned(), "<prod>".to_owned()),
        ]);
        assert_eq!(
            marshal_string_map(&map),
            r#"{"env":"\u003cprod\u003e","team":"a\u0026b"}"#
        );
        assert_eq!(marshal_string_map(&BTreeMap::new()), "{}");
        let Ok(Value::Object(object)) = serde_json::from_str::<Value>(
            r#"{"z":[1,2.5,-3,true,null,{"b":"\u2028","a":"x&y"}],"a":"<"}"#,
        ) else {
            panic!("an object")
        };
        assert_eq!(
            marshal_object(&object),
            r#"{"a":"\u003c","z":[1,2.5,-3,true,null,{"a":"x\u0026y","b":"\u2028"}]}"#
        );
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
