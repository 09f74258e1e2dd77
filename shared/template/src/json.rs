//! Go's `encoding/json` for template values: sorted keys, HTML-safe escapes (`<`, `>`, `&` as
//! `\u003c`, `\u003e`, `\u0026`) unless raw, U+2028/U+2029 always escaped, numbers as Go
//! writes them (strings and numbers by `secret_sync_gosem::json`); and `json.Unmarshal` into
//! `interface{}` (every number a float64).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use gotmpl::Value;
use secret_sync_gosem as gosem;

/// How to encode.
#[derive(Clone, Copy)]
pub(crate) struct Style {
    /// `json.Marshal` escapes HTML; `toRawJson`'s encoder does not.
    pub escape_html: bool,
    /// `json.MarshalIndent(v, "", "  ")`.
    pub pretty: bool,
}

/// Encodes `v`, stopping past `max` bytes. Errors name the unsupported type, never a value.
pub(crate) fn encode(v: &Value, style: Style, max: usize) -> Result<String, String> {
    let mut out = String::new();
    write_value(&mut out, v, style, 0, max)?;
    Ok(out)
}

fn write_value(
    out: &mut String,
    v: &Value,
    style: Style,
    depth: usize,
    max: usize,
) -> Result<(), String> {
    if out.len() > max {
        return Err(crate::budget::ensure_size(out.len())
            .err()
            .unwrap_or_default());
    }
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Uint(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(f) => {
            if !f.is_finite() {
                return Err("json: unsupported value: a non-finite float".to_owned());
            }
            out.push_str(&gosem::json::format_float(*f));
        }
        Value::String(s) => write_string(out, s, style.escape_html),
        Value::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, style, depth + 1);
                write_value(out, item, style, depth + 1, max)?;
            }
            newline(out, style, depth);
            out.push(']');
        }
        Value::Map(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, style, depth + 1);
                write_string(out, k, style.escape_html);
                out.push(':');
                if style.pretty {
                    out.push(' ');
                }
                write_value(out, item, style, depth + 1, max)?;
            }
            newline(out, style, depth);
            out.push('}');
        }
        Value::Function(_) => return Err("json: unsupported type: func".to_owned()),
    }
    Ok(())
}

fn newline(out: &mut String, style: Style, depth: usize) {
    if style.pretty {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
}

/// encoding/json's string: the bytes Go would hold (raw bytes carried as themselves, see
/// [`crate::bytes`]), escaped as `secret_sync_gosem::json` writes them.
fn write_string(out: &mut String, s: &str, escape_html: bool) {
    gosem::json::write_bytes(out, &crate::bytes::decode(s), escape_html);
}

/// `json.Unmarshal(data, &interface{})`: objects, arrays, float64 numbers, strings, booleans,
/// null. The error says where, not what.
pub(crate) fn decode(s: &str) -> Result<Value, String> {
    let parsed: serde_json::Value = serde_json::from_str(s).map_err(|e| {
        format!(
            "invalid JSON at line {} column {} ({:?})",
            e.line(),
            e.column(),
            e.classify()
        )
    })?;
    Ok(from_serde(&parsed))
}

/// A serde JSON value as a template value, numbers as float64 (Go's `interface{}` decoding).
pub(crate) fn from_serde(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::List(items.iter().map(from_serde).collect::<Vec<_>>().into())
        }
        serde_json::Value::Object(m) => {
            let map: BTreeMap<Arc<str>, Value> = m
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), from_serde(v)))
                .collect();
            Value::Map(Arc::new(map))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPACT: Style = Style {
        escape_html: true,
        pretty: false,
    };

    #[test]
    fn html_characters_are_escaped_as_go_marshal_does() {
        // encoding/json: "String values encode as JSON strings coerced to valid UTF-8 ... So that
        // the JSON will be safe to embed inside HTML <script> tags, the string is encoded using
        // HTMLEscape" (encoding/json.Marshal doc).
        let v = Value::from("<a&b>");
        assert_eq!(
            encode(&v, COMPACT, 1 << 20).expect("test input is valid"),
            r#""\u003ca\u0026b\u003e""#
        );
        let raw = Style {
            escape_html: false,
            pretty: false,
        };
        assert_eq!(
            encode(&v, raw, 1 << 20).expect("test input is valid"),
            r#""<a&b>""#
        );
    }

    #[test]
    fn control_characters_use_go_escapes() {
        let v = Value::from("\u{1}\u{8}\u{c}\n\u{2028}");
        assert_eq!(
            encode(&v, COMPACT, 1 << 20).expect("test input is valid"),
            r#""\u0001\b\f\n\u2028""#
        );
    }

    #[test]
    fn decoding_makes_every_number_a_float() {
        let v = decode(r#"{"b":[1,2.5],"a":null}"#).expect("test input is valid");
        assert_eq!(
            encode(&v, COMPACT, 1 << 20).expect("test input is valid"),
            r#"{"a":null,"b":[1,2.5]}"#
        );
        let Value::Map(m) = v else { panic!() };
        assert!(matches!(m["b"], Value::List(ref l) if matches!(l[0], Value::Float(_))));
    }
}
