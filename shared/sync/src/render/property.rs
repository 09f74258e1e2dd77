//! `remoteRef.property` and `extract.property`: selecting part of a JSON value.
//!
//! ESO leaves this to each provider, and both providers we serve read it the same way in the
//! common cases (R: `providers/v1/aws/secretsmanager/secretsmanager.go` `GetSecret`,
//! `escapeDotsIfRequired`; `providers/v1/vault/client_get.go`):
//!
//! 1. a top-level member whose name is exactly the property wins (Vault looks it up directly;
//!    AWS first tries the property with every `.` escaped, which is the same lookup);
//! 2. otherwise the property is a [gjson path](https://github.com/tidwall/gjson/blob/master/SYNTAX.md).
//!
//! Supported gjson syntax: `a.b.c`; array indices (`friends.1.first`); `\` escapes (`a\.b`);
//! the wildcards `*` and `?` in member names (first match in source order); `#` (an array's
//! length) and `friends.#.first` (the path applied to every element, collected into a JSON
//! array; elements where it does not resolve are left out). Queries (`#(...)`), modifiers
//! (`@reverse`), pipes (`|`), multipaths (`{a,b}`, `[a,b]`) and literals (`!true`) are refused
//! with [`PropertyError::Unsupported`] rather than silently resolving to something else.
//!
//! The result, as ESO's `gjson.Result.String()` gives it: a string is its decoded text; `true`,
//! `false` and numbers are their JSON text; `null` is empty. Deliberate differences from gjson:
//! numbers keep their source text (gjson reformats non-integers: `1.0` → `1`, `1e3` → `1000`),
//! and objects and arrays are printed compact (gjson returns them with the source whitespace;
//! Vault re-marshals top-level members with sorted keys). Both keep every value exactly.

use super::json::{self, Kind, Value};

/// Why a property could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PropertyError {
    /// The value is not JSON at all.
    NotJson,
    /// The value is JSON but the property does not resolve.
    NotFound,
    /// The path uses gjson syntax outside the supported subset.
    Unsupported(&'static str),
}

/// Selects `property` from `value`; see the module documentation.
pub(crate) fn select(value: &[u8], property: &str) -> Result<Vec<u8>, PropertyError> {
    let root = json::parse(value).map_err(|_| PropertyError::NotJson)?;
    if let Kind::Object(members) = &root.kind
        && let Some((_, member)) = members.iter().find(|(name, _)| name == property)
    {
        return Ok(result_text(member));
    }
    let path = parse_path(property)?;
    match eval(&root, &path) {
        Some(Selected::Value(v)) => Ok(result_text(v)),
        Some(Selected::Count(n)) => Ok(n.to_string().into_bytes()),
        Some(selected @ Selected::Array(_)) => {
            let mut out = Vec::new();
            selected.write_json(&mut out);
            Ok(out)
        }
        None => Err(PropertyError::NotFound),
    }
}

/// What a resolved value contributes to a Secret (gjson's `Result.String()`).
pub(crate) fn result_text(value: &Value<'_>) -> Vec<u8> {
    match &value.kind {
        Kind::String(s) => s.clone().into_bytes(),
        Kind::Null => Vec::new(),
        Kind::Bool(_) | Kind::Number => value.raw.to_vec(),
        Kind::Array(_) | Kind::Object(_) => json::compact(value.raw),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Component {
    /// `#`
    Hash,
    /// A member name or array index; `wildcard` when it holds an unescaped `*` or `?`.
    Name { text: String, wildcard: bool },
}

/// Splits a gjson path into its components, resolving `\` escapes.
fn parse_path(path: &str) -> Result<Vec<Component>, PropertyError> {
    if path.starts_with('[') || path.starts_with('{') {
        return Err(PropertyError::Unsupported("a multipath ([...] or {...})"));
    }
    let mut components = Vec::new();
    let mut chars = path.chars().peekable();
    loop {
        let mut text = String::new();
        let mut wildcard = false;
        let mut escaped_any = false;
        let mut ended_by_dot = false;
        let mut first = true;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    escaped_any = true;
                    if let Some(next) = chars.next() {
                        text.push(next);
                    }
                }
                '.' => {
                    ended_by_dot = true;
                    break;
                }
                '|' => return Err(PropertyError::Unsupported("a pipe (|)")),
                '@' if first => return Err(PropertyError::Unsupported("a modifier (@...)")),
                '!' if first => return Err(PropertyError::Unsupported("a literal (!...)")),
                '#' if first && matches!(chars.peek(), Some('(' | '[')) => {
                    return Err(PropertyError::Unsupported("a query (#(...))"));
                }
                '*' | '?' => {
                    wildcard = true;
                    text.push(c);
                }
                c => text.push(c),
            }
            first = false;
        }
        if text == "#" && !escaped_any {
            components.push(Component::Hash);
        } else {
            components.push(Component::Name { text, wildcard });
        }
        // A trailing `.` leaves an empty last component, as in gjson.
        if !ended_by_dot {
            return Ok(components);
        }
    }
}

enum Selected<'v, 'a> {
    Value(&'v Value<'a>),
    Count(usize),
    Array(Vec<Selected<'v, 'a>>),
}

impl Selected<'_, '_> {
    /// The JSON text gjson builds for an element of a `#.` projection.
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Selected::Value(v) => out.extend_from_slice(&json::compact(v.raw)),
            Selected::Count(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Selected::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
        }
    }
}

fn eval<'v, 'a>(value: &'v Value<'a>, path: &[Component]) -> Option<Selected<'v, 'a>> {
    let Some((head, rest)) = path.split_first() else {
        return Some(Selected::Value(value));
    };
    match (head, &value.kind) {
        (Component::Hash, Kind::Array(items)) if rest.is_empty() => {
            Some(Selected::Count(items.len()))
        }
        (Component::Hash, Kind::Array(items)) => Some(Selected::Array(
            items.iter().filter_map(|item| eval(item, rest)).collect(),
        )),
        // On an object, gjson reads `#` as a member name.
        (Component::Hash, Kind::Object(members)) => members
            .iter()
            .find(|(name, _)| name == "#")
            .and_then(|(_, member)| eval(member, rest)),
        (Component::Name { text, wildcard }, Kind::Object(members)) => members
            .iter()
            .find(|(name, _)| {
                if *wildcard {
                    wildcard_match(text, name)
                } else {
                    name == text
                }
            })
            .and_then(|(_, member)| eval(member, rest)),
        (
            Component::Name {
                text,
                wildcard: false,
            },
            Kind::Array(items),
        ) => {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let index: usize = text.parse().ok()?;
            items.get(index).and_then(|item| eval(item, rest))
        }
        _ => None,
    }
}

/// gjson's member-name pattern: `*` matches any run of characters, `?` exactly one.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Classic two-pointer glob match with backtracking to the last `*`.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gjson's SYNTAX.md example document.
    const DOC: &str = r#"{
      "name": {"first": "Tom", "last": "Anderson"},
      "age":37,
      "children": ["Sara","Alex","Jack"],
      "fav.movie": "Deer Hunter",
      "friends": [
        {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
        {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]},
        {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]}
      ]
    }"#;

    fn get(doc: &str, property: &str) -> Result<String, PropertyError> {
        select(doc.as_bytes(), property)
            .map(|bytes| String::from_utf8(bytes).unwrap_or_else(|_| "<not utf-8>".into()))
    }

    #[test]
    fn the_gjson_syntax_examples_resolve_as_documented() {
        let cases = [
            ("name.last", "Anderson"),
            ("age", "37"),
            ("children", r#"["Sara","Alex","Jack"]"#),
            ("children.0", "Sara"),
            ("children.1", "Alex"),
            ("friends.1.first", "Roger"),
            ("child*.2", "Jack"),
            ("c?ildren.0", "Sara"),
            (r"fav\.movie", "Deer Hunter"),
            ("friends.#", "3"),
            ("friends.#.age", "[44,68,47]"),
            ("friends.#.first", r#"["Dale","Roger","Jane"]"#),
            ("friends.#.nets.#", "[3,2,2]"),
            ("friends.0.nets", r#"["ig","fb","tw"]"#),
        ];
        for (path, want) in cases {
            assert_eq!(get(DOC, path).as_deref(), Ok(want), "path {path:?}");
        }
    }

    #[test]
    fn an_exact_top_level_member_wins_over_the_path() {
        let doc = r#"{"a.b": "flat", "a": {"b": "nested"}}"#;
        assert_eq!(get(doc, "a.b").as_deref(), Ok("flat"));
        assert_eq!(
            get(r#"{"a": {"b": "nested"}}"#, "a.b").as_deref(),
            Ok("nested")
        );
        // A member name with characters gjson treats specially is still found literally.
        assert_eq!(get(r#"{"x|y@z#": "v"}"#, "x|y@z#").as_deref(), Ok("v"));
    }

    #[test]
    fn numbers_keep_their_source_text() {
        let doc =
            r#"{"f": 1.0, "big": 12345678901234567890, "e": 1e3, "neg": -0.50, "n": {"x": 2.50}}"#;
        assert_eq!(get(doc, "f").as_deref(), Ok("1.0"));
        assert_eq!(get(doc, "big").as_deref(), Ok("12345678901234567890"));
        assert_eq!(get(doc, "e").as_deref(), Ok("1e3"));
        assert_eq!(get(doc, "neg").as_deref(), Ok("-0.50"));
        assert_eq!(get(doc, "n.x").as_deref(), Ok("2.50"));
    }

    #[test]
    fn strings_are_decoded_and_other_values_are_compact_json() {
        let doc = r#"{"s": "a\"b\u00e9", "t": true, "z": null, "o": { "k" : [ 1, "x y" ] }}"#;
        assert_eq!(get(doc, "s").as_deref(), Ok("a\"bé"));
        assert_eq!(get(doc, "t").as_deref(), Ok("true"));
        assert_eq!(get(doc, "z").as_deref(), Ok(""));
        assert_eq!(get(doc, "o").as_deref(), Ok(r#"{"k":[1,"x y"]}"#));
        assert_eq!(get(doc, "o.k.1").as_deref(), Ok("x y"));
    }

    #[test]
    fn a_missing_property_is_not_found() {
        for path in [
            "nope",
            "name.middle",
            "children.3",
            "children.x",
            "children.-1",
            "age.x",
            "name.#",
        ] {
            assert_eq!(get(DOC, path), Err(PropertyError::NotFound), "{path:?}");
        }
    }

    #[test]
    fn a_projection_leaves_out_elements_where_the_rest_does_not_resolve() {
        assert_eq!(get(DOC, "friends.#.missing").as_deref(), Ok("[]"));
        assert_eq!(get(DOC, "friends.#.nets.2").as_deref(), Ok(r#"["tw"]"#));
    }

    #[test]
    fn a_value_that_is_not_json_cannot_have_properties() {
        assert_eq!(get("plain text", "a"), Err(PropertyError::NotJson));
        assert_eq!(get("", "a"), Err(PropertyError::NotJson));
        assert_eq!(get("\"just a string\"", "a"), Err(PropertyError::NotFound));
    }

    #[test]
    fn unsupported_gjson_syntax_is_refused_not_misread() {
        for path in [
            r#"friends.#(last=="Murphy").first"#,
            "children.@reverse",
            "friends|0",
            "{name.first,age}",
            "[age]",
            "!true",
        ] {
            assert!(
                matches!(get(DOC, path), Err(PropertyError::Unsupported(_))),
                "{path:?}"
            );
        }
    }

    #[test]
    fn escapes_make_special_characters_literal() {
        let doc = r##"{"a*b": 1, "a?c": 2, "#": 3, "list": [{"#": 4}]}"##;
        assert_eq!(get(doc, r"a\*b").as_deref(), Ok("1"));
        assert_eq!(get(doc, r"a\?c").as_deref(), Ok("2"));
        assert_eq!(get(doc, r"list.0.\#").as_deref(), Ok("4"));
        assert_eq!(get(doc, "list.0.#").as_deref(), Ok("4"));
    }

    #[test]
    fn wildcards_match_like_gjson() {
        assert!(wildcard_match("c*n", "children"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(wildcard_match("?", "é"));
        assert!(!wildcard_match("a?", "a"));
        assert!(!wildcard_match("a*d", "abc"));
    }
}
