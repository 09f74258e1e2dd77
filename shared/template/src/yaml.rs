//! ESO's `toYaml` and `fromYaml` (sigs.k8s.io/yaml): a value goes through JSON, then out in
//! go-yaml v2's style: block mappings with sorted keys, sequences not indented under their key,
//! strings plain when they read back as strings, else quoted as libyaml's emitter chooses;
//! multi-line strings as literal blocks; scalars folded at spaces past column 80.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;

use crate::go;

const BEST_WIDTH: usize = 80;

/// `toYaml`: the YAML text without its final newline; `Err` where sigs.k8s.io/yaml fails (ESO
/// then prints "").
pub(crate) fn to_yaml(v: &Value, max: usize) -> Result<String, String> {
    // Through JSON first, as sigs.k8s.io/yaml does: floats become ints when integral, and an
    // unsupported value fails the whole document.
    crate::json::encode(
        v,
        crate::json::Style {
            escape_html: false,
            pretty: false,
        },
        max,
    )?;
    let mut out = String::new();
    match v {
        Value::Map(m) if !m.is_empty() => emit_map(&mut out, m, 0, true),
        Value::List(l) if !l.is_empty() => emit_seq(&mut out, l, 0, true),
        other => scalar(&mut out, other, 2, true),
    }
    if out.len() > max {
        return Err(crate::budget::ensure_size(out.len())
            .err()
            .unwrap_or_default());
    }
    Ok(out)
}

fn newline(out: &mut String, indent: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', indent));
}

fn emit_map(out: &mut String, m: &BTreeMap<Arc<str>, Value>, indent: usize, inline: bool) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !inline {
            newline(out, indent);
        }
        write_str(out, k, indent + 2, true);
        out.push(':');
        match v {
            Value::Map(inner) if !inner.is_empty() => emit_map(out, inner, indent + 2, false),
            Value::List(l) if !l.is_empty() => emit_seq(out, l, indent, false),
            other => {
                out.push(' ');
                scalar(out, other, indent + 2, false);
            }
        }
    }
}

fn emit_seq(out: &mut String, l: &[Value], indent: usize, inline: bool) {
    for (i, v) in l.iter().enumerate() {
        if i > 0 || !inline {
            newline(out, indent);
        }
        out.push_str("- ");
        match v {
            Value::Map(inner) if !inner.is_empty() => emit_map(out, inner, indent + 2, true),
            Value::List(inner) if !inner.is_empty() => emit_seq(out, inner, indent + 2, true),
            other => scalar(out, other, indent + 2, false),
        }
    }
}

fn scalar(out: &mut String, v: &Value, indent: usize, root: bool) {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Uint(n) => out.push_str(&n.to_string()),
        Value::Float(f) => {
            // JSON writes integral floats as integers, which YAML then reads as ints.
            let json = secret_sync_gosem::json::format_float(*f);
            if json.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                out.push_str(&json);
            } else {
                out.push_str(&go::format_float_v(*f));
            }
        }
        Value::String(s) => write_str(out, s, if root { 2 } else { indent }, false),
        Value::Map(_) => out.push_str("{}"),
        Value::List(_) => out.push_str("[]"),
        Value::Function(_) => {}
    }
}

fn column(out: &str) -> usize {
    out[out.rfind('\n').map_or(0, |i| i + 1)..].chars().count()
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

/// libyaml's `yaml_emitter_analyze_scalar` and `select_scalar_style`, for block context.
fn choose_style(s: &str, key: bool) -> Style {
    let requested = if s.contains('\n') {
        Style::Literal
    } else if resolves_to_string(s) {
        Style::Plain
    } else {
        Style::Double
    };
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let (mut block_ind, mut special, mut line_breaks) = (false, false, false);
    let (mut leading_sp, mut leading_br, mut trailing_sp, mut trailing_br) =
        (false, false, false, false);
    let (mut space_break, mut break_space) = (false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    if s.starts_with("---") || s.starts_with("...") {
        block_ind = true;
    }
    let mut preceded_by_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = chars
            .get(i + 1)
            .is_none_or(|&d| d == ' ' || d == '\t' || is_break(d));
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_ind = true,
                '?' | ':' | '-' if followed_by_ws => block_ind = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_ws => block_ind = true,
                '#' if preceded_by_ws => block_ind = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_sp = true;
            }
            if i + 1 == n {
                trailing_sp = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            line_breaks = true;
            if i == 0 {
                leading_br = true;
            }
            if i + 1 == n {
                trailing_br = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = c == ' ' || c == '\t' || is_break(c);
    }
    let mut plain_ok = !(leading_sp || leading_br || trailing_sp || trailing_br);
    let mut block_ok = !trailing_sp;
    let mut single_ok = true;
    if break_space {
        plain_ok = false;
        single_ok = false;
    }
    if space_break || special {
        plain_ok = false;
        single_ok = false;
        block_ok = false;
    }
    if line_breaks || block_ind || n == 0 {
        plain_ok = false;
    }
    let mut style = requested;
    if style == Style::Plain && !plain_ok {
        style = Style::Single;
    }
    if style == Style::Single && !single_ok {
        style = Style::Double;
    }
    if style == Style::Literal && (!block_ok || key) {
        style = Style::Double;
    }
    style
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_printable(c: char) -> bool {
    matches!(c as u32, 0x0A | 0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..)
        && c != '\u{FEFF}'
}

/// go-yaml v2's `resolve` for an untagged plain scalar: does `s` read back as a string?
fn resolves_to_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "n", "N", "no",
        "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "", "~", "null", "Null",
        "NULL", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if SPECIAL.contains(&s) {
        return false;
    }
    let Some(first) = s.chars().next() else {
        return false;
    };
    if first.is_ascii_digit() || matches!(first, '+' | '-' | '.') {
        let plain = s.replace('_', "");
        if go::parse_int_literal(&plain).is_some()
            || is_yaml_float(&plain)
            || is_binary(&plain)
            || (first.is_ascii_digit() && is_timestamp(s))
        {
            return false;
        }
    }
    !is_base60_float(s)
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let b = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.first() == Some(&b'.') {
        i = 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

fn is_binary(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    body.strip_prefix("0b")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b == b'0' || b == b'1'))
}

/// go-yaml v2's timestamp formats: `2006-1-2`, optionally followed by `T`, `t` or a space and a
/// time.
fn is_timestamp(s: &str) -> bool {
    let date_end = s.find(['T', 't', ' ']).unwrap_or(s.len());
    let parts: Vec<&str> = s[..date_end].split('-').collect();
    let date_ok = parts.len() == 3
        && parts[0].len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[1].len() <= 2
        && parts[2].len() <= 2;
    if !date_ok {
        return false;
    }
    if date_end == s.len() {
        return true;
    }
    let time = &s[date_end + 1..];
    let hms = time.split(['Z', '+', '-']).next().unwrap_or("");
    let hms_parts: Vec<&str> = hms.split(':').collect();
    hms_parts.len() == 3
        && hms_parts[..2]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
        && !hms_parts[2].is_empty()
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
fn is_base60_float(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, frac) = match body.find('.') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if frac.is_some_and(|f| !f.bytes().all(|b| b.is_ascii_digit() || b == b'_')) {
        return false;
    }
    let mut groups = main.split(':');
    let head = groups.next().unwrap_or("");
    if !head.starts_with(|c: char| c.is_ascii_digit())
        || !head.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return false;
    }
    let rest: Vec<&str> = groups.collect();
    !rest.is_empty()
        && rest.iter().all(|g| {
            let b = g.as_bytes();
            match b.len() {
                1 => b[0].is_ascii_digit(),
                2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
                _ => false,
            }
        })
}

/// Writes `s` in the style libyaml picks, folding at spaces past column 80 as it does.
fn write_str(out: &mut String, s: &str, indent: usize, key: bool) {
    let chars: Vec<char> = s.chars().collect();
    let allow_breaks = !key;
    let mut col = column(out);
    let put = |out: &mut String, c: char, col: &mut usize| {
        out.push(c);
        *col += 1;
    };
    let fold = |out: &mut String, col: &mut usize| {
        newline(out, indent);
        *col = indent;
    };
    match choose_style(s, key) {
        Style::Plain => {
            let mut spaces = false;
            for (i, &c) in chars.iter().enumerate() {
                if c == ' ' {
                    if allow_breaks
                        && !spaces
                        && col > BEST_WIDTH
                        && chars.get(i + 1).is_some_and(|&d| d != ' ')
                    {
                        fold(out, &mut col);
                    } else {
                        put(out, c, &mut col);
                    }
                    spaces = true;
                } else {
                    put(out, c, &mut col);
                    spaces = false;
                }
            }
        }
        Style::Single => {
            put(out, '\'', &mut col);
            let mut spaces = false;
            for (i, &c) in chars.iter().enumerate() {
                if c == ' ' {
                    if allow_breaks
                        && !spaces
                        && col > BEST_WIDTH
                        && i != 0
                        && i + 1 != chars.len()
                        && chars.get(i + 1).is_some_and(|&d| d != ' ')
                    {
                        fold(out, &mut col);
                    } else {
                        put(out, c, &mut col);
                    }
                    spaces = true;
                } else {
                    if c == '\'' {
                        put(out, '\'', &mut col);
                    }
                    put(out, c, &mut col);
                    spaces = false;
                }
            }
            put(out, '\'', &mut col);
        }
        Style::Double => {
            put(out, '"', &mut col);
            let mut spaces = false;
            for (i, &c) in chars.iter().enumerate() {
                if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                    let esc = match c {
                        '\0' => "\\0".to_owned(),
                        '\u{7}' => "\\a".to_owned(),
                        '\u{8}' => "\\b".to_owned(),
                        '\t' => "\\t".to_owned(),
                        '\n' => "\\n".to_owned(),
                        '\u{b}' => "\\v".to_owned(),
                        '\u{c}' => "\\f".to_owned(),
                        '\r' => "\\r".to_owned(),
                        '\u{1b}' => "\\e".to_owned(),
                        '"' => "\\\"".to_owned(),
                        '\\' => "\\\\".to_owned(),
                        '\u{85}' => "\\N".to_owned(),
                        '\u{a0}' => "\\_".to_owned(),
                        '\u{2028}' => "\\L".to_owned(),
                        '\u{2029}' => "\\P".to_owned(),
                        c if (c as u32) <= 0xFF => format!("\\x{:02X}", c as u32),
                        c if (c as u32) <= 0xFFFF => format!("\\u{:04X}", c as u32),
                        c => format!("\\U{:08X}", c as u32),
                    };
                    for e in esc.chars() {
                        put(out, e, &mut col);
                    }
                    spaces = false;
                } else if c == ' ' {
                    if allow_breaks && !spaces && col > BEST_WIDTH && i != 0 && i + 1 != chars.len()
                    {
                        fold(out, &mut col);
                        if chars.get(i + 1) == Some(&' ') {
                            put(out, '\\', &mut col);
                        }
                    } else {
                        put(out, c, &mut col);
                    }
                    spaces = true;
                } else {
                    put(out, c, &mut col);
                    spaces = false;
                }
            }
            put(out, '"', &mut col);
        }
        Style::Literal => {
            out.push('|');
            if s.starts_with([' ', '\n']) {
                out.push('2');
            }
            let trailing = s.len() - s.trim_end_matches('\n').len();
            if trailing == 0 {
                out.push('-');
            } else if trailing > 1 || s.trim_end_matches('\n').is_empty() {
                out.push('+');
            }
            let body = if trailing > 0 { &s[..s.len() - 1] } else { s };
            for line in body.split('\n') {
                if line.is_empty() {
                    out.push('\n');
                } else {
                    newline(out, indent);
                    out.push_str(line);
                }
            }
        }
    }
}

/// `fromYaml`: a mapping, or `{"Error": reason}` where sigs.k8s.io/yaml fails (ESO's behaviour).
/// Numbers are float64, as they come back from JSON.
pub(crate) fn from_yaml(s: &str) -> Value {
    if s.trim().is_empty() {
        return Value::Map(Arc::new(BTreeMap::new()));
    }
    match serde_saphyr::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(m)) => crate::json::from_serde(&serde_json::Value::Object(m)),
        Ok(serde_json::Value::Null) => Value::Map(Arc::new(BTreeMap::new())),
        Ok(_) => error_map("error unmarshaling JSON: the document is not a mapping"),
        Err(_) => error_map("error converting YAML to JSON: the document is not valid YAML"),
    }
}

fn error_map(reason: &str) -> Value {
    let mut m = BTreeMap::new();
    m.insert(Arc::from("Error"), Value::from(reason));
    Value::Map(Arc::new(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(v: &Value) -> String {
        to_yaml(v, 1 << 20).expect("test input is valid")
    }

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(Arc::new(
            pairs
                .iter()
                .map(|(k, v)| (Arc::from(*k), v.clone()))
                .collect(),
        ))
    }

    #[test]
    fn mappings_and_sequences_use_go_yaml_v2_layout() {
        // go-yaml v2 README example output ("--- m dump:"): sequences sit at their key's indent.
        let v = map(&[
            ("a", Value::from("Easy!")),
            (
                "b",
                map(&[
                    ("c", Value::Int(2)),
                    ("d", Value::List(vec![Value::Int(3), Value::Int(4)].into())),
                ]),
            ),
        ]);
        assert_eq!(yaml(&v), "a: Easy!\nb:\n  c: 2\n  d:\n  - 3\n  - 4");
    }

    #[test]
    fn strings_that_read_back_as_other_types_are_double_quoted() {
        for (s, want) in [
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("123", "\"123\""),
            ("1.5", "\"1.5\""),
            ("", "\"\""),
            ("null", "\"null\""),
            ("2001-12-14", "\"2001-12-14\""),
            ("1:20", "\"1:20\""),
            ("0x1F", "\"0x1F\""),
        ] {
            assert_eq!(
                yaml(&map(&[("k", Value::from(s))])),
                format!("k: {want}"),
                "{s}"
            );
        }
    }

    #[test]
    fn strings_with_indicators_are_single_quoted() {
        for (s, want) in [
            ("- a", "'- a'"),
            ("a: b", "'a: b'"),
            ("#x", "'#x'"),
            (" lead", "' lead'"),
            ("it's: x", "'it''s: x'"),
            ("a-b", "a-b"),
            ("a:b", "a:b"),
        ] {
            assert_eq!(
                yaml(&map(&[("k", Value::from(s))])),
                format!("k: {want}"),
                "{s}"
            );
        }
    }

    #[test]
    fn multi_line_strings_are_literal_blocks() {
        assert_eq!(yaml(&map(&[("k", Value::from("a\nb"))])), "k: |-\n  a\n  b");
        assert_eq!(
            yaml(&map(&[("k", Value::from("a\n\nb\n"))])),
            "k: |\n  a\n\n  b"
        );
        assert_eq!(
            yaml(&map(&[("k", Value::from("a\t\nb"))])),
            "k: \"a\\t\\nb\""
        );
    }

    #[test]
    fn long_plain_strings_fold_after_column_80() {
        let words = vec!["word"; 30].join(" ");
        let out = yaml(&map(&[("k", Value::from(words.as_str()))]));
        let first = out.lines().next().expect("test input is valid");
        assert!(first.len() > 80 && first.len() < 90, "{out}");
        assert!(
            out.lines()
                .nth(1)
                .expect("test input is valid")
                .starts_with("  word"),
            "{out}"
        );
    }

    #[test]
    fn from_yaml_reads_a_mapping_with_float_numbers() {
        // go-yaml v2 reads YAML 1.1 booleans: `y` is true (resolve.go's table).
        let v = from_yaml("a: 1\nb: [x, y]\n");
        assert_eq!(yaml(&v), "a: 1\nb:\n- x\n- true");
        let Value::Map(m) = v else { panic!() };
        assert!(matches!(m["a"], Value::Float(_)));
        let Value::Map(e) = from_yaml("- 1") else {
            panic!()
        };
        assert!(e.contains_key("Error"));
    }
}
