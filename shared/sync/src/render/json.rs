//! A small, strict JSON reader that keeps every value's source text, and a writer that prints
//! values the way Go's `encoding/json` does (its strings and floats: `secret_sync_gosem::json`).
//!
//! Why not `serde_json::Value`: the render stage must hand numbers back exactly as the provider
//! wrote them (`1.0` stays `1.0`, `12345678901234567890` is not rounded through `f64`), keep
//! object members in source order (gjson's first match), read the raw text of each member
//! (ESO's `json.RawMessage`), and report syntax errors by offset only: `serde_json`'s messages
//! can quote the offending input (`invalid type: string "..."`), which would put secret material
//! into errors. Parsing follows Go's `json.Unmarshal` where it is lenient: invalid UTF-8 and
//! lone surrogate escapes become U+FFFD instead of failing.

use std::collections::BTreeMap;
use std::fmt;

use secret_sync_gosem as gosem;

/// Objects and arrays nested deeper than this are refused, so a hostile value cannot exhaust
/// the stack. (Go allows 10000; no real secret comes near either.)
const MAX_DEPTH: usize = 512;

/// One JSON value and the exact source bytes it was read from.
pub(crate) struct Value<'a> {
    /// Where `raw` starts in the parsed text.
    pub(crate) offset: usize,
    pub(crate) raw: &'a [u8],
    pub(crate) kind: Kind<'a>,
}

pub(crate) enum Kind<'a> {
    Null,
    Bool(bool),
    /// The number's text is `raw`.
    Number,
    /// The decoded string.
    String(String),
    Array(Vec<Value<'a>>),
    /// Members in source order; duplicates are kept.
    Object(Vec<(String, Value<'a>)>),
}

impl Kind<'_> {
    /// The JSON type name, for messages ("array", "string", ...).
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "boolean",
            Kind::Number => "number",
            Kind::String(_) => "string",
            Kind::Array(_) => "array",
            Kind::Object(_) => "object",
        }
    }
}

/// Why a text is not JSON. Carries a byte offset, never the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Offset of the offending byte in the value.
    pub offset: usize,
    problem: Problem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Problem {
    UnexpectedEnd,
    UnexpectedCharacter,
    InvalidNumber,
    InvalidEscape,
    ControlCharacterInString,
    TrailingData,
    TooDeep,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.problem {
            Problem::UnexpectedEnd => "unexpected end of input",
            Problem::UnexpectedCharacter => "unexpected character",
            Problem::InvalidNumber => "invalid number",
            Problem::InvalidEscape => "invalid escape sequence in string",
            Problem::ControlCharacterInString => "control character in string",
            Problem::TrailingData => "data after the top-level value",
            Problem::TooDeep => "nested too deeply",
        };
        write!(f, "invalid JSON at byte {}: {what}", self.offset)
    }
}

impl std::error::Error for SyntaxError {}

/// Parses a whole JSON text (one value, optionally surrounded by whitespace).
pub(crate) fn parse(input: &[u8]) -> Result<Value<'_>, SyntaxError> {
    let mut parser = Parser { input, pos: 0 };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos < input.len() {
        return Err(parser.error(Problem::TrailingData));
    }
    Ok(value)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, problem: Problem) -> SyntaxError {
        SyntaxError {
            offset: self.pos,
            problem,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect_literal(&mut self, literal: &[u8]) -> Result<(), SyntaxError> {
        for &expected in literal {
            match self.peek() {
                None => return Err(self.error(Problem::UnexpectedEnd)),
                Some(b) if b == expected => self.pos += 1,
                Some(_) => return Err(self.error(Problem::UnexpectedCharacter)),
            }
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, SyntaxError> {
        let start = self.pos;
        let kind = match self.peek() {
            None => return Err(self.error(Problem::UnexpectedEnd)),
            Some(b'n') => {
                self.expect_literal(b"null")?;
                Kind::Null
            }
            Some(b't') => {
                self.expect_literal(b"true")?;
                Kind::Bool(true)
            }
            Some(b'f') => {
                self.expect_literal(b"false")?;
                Kind::Bool(false)
            }
            Some(b'"') => Kind::String(self.string()?),
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                Kind::Number
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error(Problem::TooDeep));
                }
                Kind::Array(self.array(depth + 1)?)
            }
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error(Problem::TooDeep));
                }
                Kind::Object(self.object(depth + 1)?)
            }
            Some(_) => return Err(self.error(Problem::UnexpectedCharacter)),
        };
        Ok(Value {
            offset: start,
            raw: &self.input[start..self.pos],
            kind,
        })
    }

    fn array(&mut self, depth: usize) -> Result<Vec<Value<'a>>, SyntaxError> {
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(items);
                }
                None => return Err(self.error(Problem::UnexpectedEnd)),
                Some(_) => return Err(self.error(Problem::UnexpectedCharacter)),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Vec<(String, Value<'a>)>, SyntaxError> {
        self.pos += 1; // '{'
        let mut members = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(members);
        }
        loop {
            self.skip_whitespace();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.error(Problem::UnexpectedEnd)),
                Some(_) => return Err(self.error(Problem::UnexpectedCharacter)),
            }
            let name = self.string()?;
            self.skip_whitespace();
            match self.peek() {
                Some(b':') => self.pos += 1,
                None => return Err(self.error(Problem::UnexpectedEnd)),
                Some(_) => return Err(self.error(Problem::UnexpectedCharacter)),
            }
            self.skip_whitespace();
            let value = self.value(depth)?;
            members.push((name, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(members);
                }
                None => return Err(self.error(Problem::UnexpectedEnd)),
                Some(_) => return Err(self.error(Problem::UnexpectedCharacter)),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<(), SyntaxError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            None => return Err(self.error(Problem::UnexpectedEnd)),
            Some(_) => return Err(self.error(Problem::InvalidNumber)),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error(Problem::InvalidNumber));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error(Problem::InvalidNumber));
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut n = 0u32;
        for _ in 0..4 {
            let digit = match self.peek() {
                None => return Err(self.error(Problem::UnexpectedEnd)),
                Some(b) => (b as char)
                    .to_digit(16)
                    .ok_or_else(|| self.error(Problem::InvalidEscape))?,
            };
            n = n * 16 + digit;
            self.pos += 1;
        }
        Ok(n)
    }

    /// A string starting at the opening quote, decoded like Go's `json.Unmarshal` into a Go
    /// string: invalid UTF-8 bytes and unpaired surrogates become U+FFFD.
    fn string(&mut self) -> Result<String, SyntaxError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            // Copy the run of plain bytes up to the next quote, backslash or control character.
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            push_lossy_like_go(&mut out, &self.input[run_start..self.pos]);
            match self.peek() {
                None => return Err(self.error(Problem::UnexpectedEnd)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.error(Problem::ControlCharacterInString)),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), SyntaxError> {
        let Some(b) = self.peek() else {
            return Err(self.error(Problem::UnexpectedEnd));
        };
        self.pos += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                if (0xD800..0xDC00).contains(&first) {
                    // A high surrogate pairs only with an immediately following `\uDC00..DFFF`.
                    let rest = &self.input[self.pos..];
                    if rest.len() >= 6 && rest[0] == b'\\' && rest[1] == b'u' {
                        let save = self.pos;
                        self.pos += 2;
                        let second = self.hex4()?;
                        if (0xDC00..0xE000).contains(&second) {
                            let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                            out.push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                            return Ok(());
                        }
                        self.pos = save;
                    }
                    char::REPLACEMENT_CHARACTER
                } else {
                    char::from_u32(first).unwrap_or(char::REPLACEMENT_CHARACTER)
                }
            }
            _ => {
                self.pos -= 1;
                return Err(self.error(Problem::InvalidEscape));
            }
        };
        out.push(c);
        Ok(())
    }
}

/// Appends `bytes`, replacing each byte that is not part of valid UTF-8 with U+FFFD, one per
/// byte as Go's `utf8.DecodeRune` does (Rust's `from_utf8_lossy` merges some sequences).
fn push_lossy_like_go(out: &mut String, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push(char::REPLACEMENT_CHARACTER);
                bytes = &rest[1..];
            }
        }
    }
}

/// `raw` (valid JSON) without the whitespace between tokens.
pub(crate) fn compact(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in raw {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.push(b);
            in_string = b == b'"';
        }
    }
    out
}

/// A value as Go's `json.Unmarshal` into `any` produces it: numbers are `float64`, objects are
/// maps (a repeated member keeps its last value), and maps print with sorted keys.
pub(crate) enum GoValue {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<GoValue>),
    Object(BTreeMap<String, GoValue>),
}

/// A number that does not fit a `float64` (Go: "cannot unmarshal number ... into float64").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NumberOutOfRange {
    /// Offset of the number in its value.
    pub offset: usize,
}

impl fmt::Display for NumberOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the number at byte {} does not fit a 64-bit float",
            self.offset
        )
    }
}

impl GoValue {
    /// Converts a parsed value.
    pub(crate) fn from_json(value: &Value<'_>) -> Result<Self, NumberOutOfRange> {
        Ok(match &value.kind {
            Kind::Null => GoValue::Null,
            Kind::Bool(b) => GoValue::Bool(*b),
            Kind::Number => {
                let text = std::str::from_utf8(value.raw).unwrap_or_default();
                match text.parse::<f64>() {
                    Ok(n) if n.is_finite() => GoValue::Number(n),
                    _ => {
                        return Err(NumberOutOfRange {
                            offset: value.offset,
                        });
                    }
                }
            }
            Kind::String(s) => GoValue::String(s.clone()),
            Kind::Array(items) => GoValue::Array(
                items
                    .iter()
                    .map(|item| GoValue::from_json(item))
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Object(members) => {
                let mut map = BTreeMap::new();
                for (name, member) in members {
                    map.insert(name.clone(), GoValue::from_json(member)?);
                }
                GoValue::Object(map)
            }
        })
    }

    /// Go's `json.Marshal` (with `escape_html`) or an encoder with `SetEscapeHTML(false)`.
    pub(crate) fn marshal(&self, escape_html: bool, out: &mut String) {
        match self {
            GoValue::Null => out.push_str("null"),
            GoValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            GoValue::Number(n) => out.push_str(&gosem::json::format_float(*n)),
            GoValue::String(s) => gosem::json::write_string(out, s, escape_html),
            GoValue::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.marshal(escape_html, out);
                }
                out.push(']');
            }
            GoValue::Object(map) => {
                out.push('{');
                for (i, (name, member)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    gosem::json::write_string(out, name, escape_html);
                    out.push(':');
                    member.marshal(escape_html, out);
                }
                out.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Value<'_> {
        match parse(text.as_bytes()) {
            Ok(v) => v,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    fn string_of(text: &[u8]) -> String {
        match parse(text) {
            Ok(Value {
                kind: Kind::String(s),
                ..
            }) => s,
            _ => panic!("not a string"),
        }
    }

    #[test]
    fn values_keep_their_source_text() {
        let v = ok(r#" {"a": 1.0, "b" : [1, 2e3 ], "c":{"d" : null}} "#);
        let Kind::Object(members) = &v.kind else {
            panic!("object")
        };
        let raws: Vec<&[u8]> = members.iter().map(|(_, m)| m.raw).collect();
        assert_eq!(
            raws,
            [&b"1.0"[..], &b"[1, 2e3 ]"[..], &b"{\"d\" : null}"[..]]
        );
        assert_eq!(v.raw, br#"{"a": 1.0, "b" : [1, 2e3 ], "c":{"d" : null}}"#);
    }

    #[test]
    fn members_stay_in_source_order_with_duplicates() {
        let v = ok(r#"{"z":1,"a":2,"z":3}"#);
        let Kind::Object(members) = &v.kind else {
            panic!("object")
        };
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["z", "a", "z"]);
    }

    #[test]
    fn strict_json_is_required() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "NaN",
            "'a'",
            "{a:1}",
            "\"a",
            "tru",
            "nul",
            "[1 2]",
            "{} x",
            "\"\\x\"",
            "\"a\u{1}\"",
            "\u{feff}1",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?} should be rejected");
        }
        for good in [
            "0",
            "-0",
            "1.5e-3",
            "1E+2",
            "\"\"",
            "[]",
            "{}",
            " \t\r\n[ ] ",
            "true",
            "null",
        ] {
            assert!(parse(good.as_bytes()).is_ok(), "{good:?} should parse");
        }
    }

    #[test]
    fn syntax_errors_name_an_offset_and_never_the_input() {
        let err = match parse(b"{\"password\": hunter2}") {
            Err(e) => e,
            Ok(_) => panic!("invalid"),
        };
        assert_eq!(err.offset, 13);
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            err.to_string(),
            "invalid JSON at byte 13: unexpected character"
        );
    }

    #[test]
    fn deep_nesting_is_refused_instead_of_overflowing_the_stack() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
        let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(fine.as_bytes()).is_ok());
    }

    #[test]
    fn strings_decode_escapes_like_go() {
        assert_eq!(
            string_of(br#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#),
            "a\"b\\c/d\u{8}\u{c}\n\r\té😀"
        );
        // Unpaired surrogates become U+FFFD; the next escape is read on its own.
        assert_eq!(string_of(br#""\ud800x""#), "\u{fffd}x");
        assert_eq!(string_of(br#""\ud800\u0041""#), "\u{fffd}A");
        assert_eq!(string_of(br#""\udc00""#), "\u{fffd}");
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_character_per_byte_like_go() {
        assert_eq!(string_of(b"\"a\xe2\x82b\""), "a\u{fffd}\u{fffd}b");
        assert_eq!(string_of(b"\"\xff\""), "\u{fffd}");
    }

    #[test]
    fn compact_removes_whitespace_outside_strings_only() {
        assert_eq!(
            compact(br#"{ "a b" : [ 1 , "x \" y" ] ,"c":"\\" }"#),
            br#"{"a b":[1,"x \" y"],"c":"\\"}"#
        );
    }

    fn marshal(text: &str, escape_html: bool) -> String {
        let v = ok(text);
        let go = match GoValue::from_json(&v) {
            Ok(go) => go,
            Err(e) => panic!("{e}"),
        };
        let mut out = String::new();
        go.marshal(escape_html, &mut out);
        out
    }

    #[test]
    fn go_marshal_sorts_keys_and_keeps_the_last_duplicate() {
        assert_eq!(
            marshal(r#"{"b":1,"a":{"d":2,"c":[true,null]},"b":2}"#, true),
            r#"{"a":{"c":[true,null],"d":2},"b":2}"#
        );
    }

    #[test]
    fn go_marshal_prints_floats_like_encoding_json() {
        assert_eq!(
            marshal(
                "[1.0, 123, 1.5, 1e21, 1e20, 0.000001, 0.0000001, 1.5e-7, 1e100, -2.5e-10, 12345678901234567890]",
                false
            ),
            "[1,123,1.5,1e+21,100000000000000000000,0.000001,1e-7,1.5e-7,1e+100,-2.5e-10,12345678901234567000]"
        );
    }

    #[test]
    fn go_marshal_escapes_strings_like_encoding_json() {
        assert_eq!(
            marshal(r#""<a&b>\u0001\u001f\u2028\u2029\b\f\t é""#, true),
            r#""\u003ca\u0026b\u003e\u0001\u001f\u2028\u2029\b\f\t é""#
        );
        assert_eq!(marshal(r#""<a&b>""#, false), r#""<a&b>""#);
    }

    #[test]
    fn numbers_beyond_float64_are_reported_by_offset() {
        let text = "[1, 1e400]";
        let v = ok(text);
        match GoValue::from_json(&v) {
            Err(e) => assert_eq!(e.offset, 4),
            Ok(_) => panic!("1e400 does not fit"),
        }
    }
}
