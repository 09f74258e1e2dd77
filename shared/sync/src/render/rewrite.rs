//! `dataFrom[].rewrite`: key rewrites applied in order (R: `runtime/esutils/utils.go`
//! `RewriteMap`, `RewriteMerge`, `merge`, `sortKeysWithPriority`, `RewriteRegexp`,
//! `RewriteTransform`, `GetByteValue`, `JSONMarshal`).
//!
//! ESO walks Go maps, so where two keys rewrite to the same new key the survivor is random, and
//! merge conflicts are listed in random order. Here keys are walked in sorted order: the
//! alphabetically last source key wins, and conflicts are listed sorted.

use std::collections::BTreeMap;
use std::fmt;

use gotmpl::Template;
use secret_sync_crd::{
    ExternalSecretRewriteMerge, MergeConflictPolicy, MergePriorityPolicy, MergeStrategy,
    PushSecretRewrite,
};
use secret_sync_providers::SecretBytes;

use super::funcs;
use super::json::{self, GoValue, NumberOutOfRange, SyntaxError};
use secret_sync_gosem::GoRegexp;

type Map = BTreeMap<String, SecretBytes>;

/// One compiled rewrite operation.
pub(crate) enum Rewrite<'s> {
    Merge(&'s ExternalSecretRewriteMerge),
    Regexp { source: GoRegexp, target: &'s str },
    Transform(Template),
}

/// Why a rewrite operation failed. Names keys, never values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RewriteError {
    /// `conflictPolicy: Error` and several values set these properties.
    MergeConflicts(Vec<String>),
    /// `priorityPolicy: Strict` and a `priority` key is not in the map.
    MergePriorityKeyNotFound(String),
    /// A value to merge is not a JSON object.
    MergeValueNotAnObject { key: String, problem: JsonProblem },
    /// `strategy: JSON` without `into`.
    MergeMissingInto,
    /// The transform template failed for a key.
    Transform { key: String, message: String },
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RewriteError::MergeConflicts(keys) => {
                write!(f, "merge failed with conflicts: {}", keys.join(", "))
            }
            RewriteError::MergePriorityKeyNotFound(key) => {
                write!(f, "merge failed with key {key:?} not found in input map")
            }
            RewriteError::MergeValueNotAnObject { key, problem } => write!(
                f,
                "merge failed with failed to unmarshal JSON: the value of key {key:?} {problem}"
            ),
            RewriteError::MergeMissingInto => f.write_str("merge failed with missing 'into' field"),
            RewriteError::Transform { key, message } => write!(
                f,
                "transform failed with failed to execute template for key {key:?}: {message}"
            ),
        }
    }
}

/// Why a value is not the JSON object it has to be. Positions and types only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonProblem {
    /// Not JSON at all.
    Syntax(SyntaxError),
    /// JSON, but another type (the type name is given).
    NotAnObject(&'static str),
    /// A number Go could not hold in a `float64`.
    Number(NumberOutOfRange),
}

impl fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonProblem::Syntax(e) => write!(f, "is not JSON ({e})"),
            JsonProblem::NotAnObject(found) => write!(f, "is a JSON {found}, not an object"),
            JsonProblem::Number(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

/// Applies `rewrites` in order; the error carries the index of the failing operation.
pub(crate) fn apply(rewrites: &[Rewrite<'_>], mut map: Map) -> Result<Map, (usize, RewriteError)> {
    for (i, rewrite) in rewrites.iter().enumerate() {
        map = match rewrite {
            Rewrite::Merge(merge) => apply_merge(merge, map),
            Rewrite::Regexp { source, target } => Ok(map
                .into_iter()
                .map(|(key, value)| (source.replace_all(&key, target), value))
                .collect()),
            Rewrite::Transform(template) => apply_transform(template, map),
        }
        .map_err(|e| (i, e))?;
    }
    Ok(map)
}

fn apply_transform(template: &Template, map: Map) -> Result<Map, RewriteError> {
    let mut out = Map::new();
    for (key, value) in map {
        let new_key = funcs::render_key(template, &key).map_err(|e| RewriteError::Transform {
            key: key.clone(),
            message: e.to_string(),
        })?;
        out.insert(new_key, value);
    }
    Ok(out)
}

/// A PushSecret's `dataTo[].rewrite`, compiled: regexp and transform operations applied in order
/// to a key name, which becomes the remote key (ESO's `rewriteWithKeyMapping`). Messages name
/// the operation and the key, never a value.
pub struct KeyRewrites(Vec<KeyRewrite>);

enum KeyRewrite {
    Regexp { source: GoRegexp, target: String },
    Transform(Template),
}

impl KeyRewrites {
    pub fn compile(rewrites: &[PushSecretRewrite]) -> Result<Self, String> {
        let mut compiled = Vec::with_capacity(rewrites.len());
        for (i, rewrite) in rewrites.iter().enumerate() {
            compiled.push(match (&rewrite.regexp, &rewrite.transform) {
                (Some(regexp), None) => KeyRewrite::Regexp {
                    source: GoRegexp::new(&regexp.source).map_err(|e| {
                        format!("rewrite[{i}]: invalid regexp {:?}: {e}", regexp.source)
                    })?,
                    target: regexp.target.clone(),
                },
                (None, Some(transform)) => KeyRewrite::Transform(
                    funcs::key_template(&transform.template)
                        .map_err(|e| format!("rewrite[{i}]: invalid template: {e}"))?,
                ),
                _ => {
                    return Err(format!(
                        "rewrite[{i}]: exactly one of regexp or transform must be set"
                    ));
                }
            });
        }
        Ok(Self(compiled))
    }

    /// `key` rewritten by every operation in turn.
    pub fn apply(&self, key: &str) -> Result<String, String> {
        let mut key = key.to_owned();
        for (i, rewrite) in self.0.iter().enumerate() {
            key = match rewrite {
                KeyRewrite::Regexp { source, target } => source.replace_all(&key, target),
                KeyRewrite::Transform(template) => funcs::render_key(template, &key)
                    .map_err(|e| format!("rewrite[{i}] on key {key:?}: template exec: {e}"))?,
            };
        }
        Ok(key)
    }
}

/// ESO's `RewriteMerge`.
fn apply_merge(op: &ExternalSecretRewriteMerge, map: Map) -> Result<Map, RewriteError> {
    // Keys alphabetically, then the priority keys last, in their given order.
    let mut order: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !op.priority.iter().any(|p| p == k))
        .collect();
    order.extend(op.priority.iter().map(String::as_str));

    let mut merged: BTreeMap<String, GoValue> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for key in order {
        let Some(value) = map.get(key) else {
            match op.priority_policy {
                MergePriorityPolicy::IgnoreNotFound => continue,
                MergePriorityPolicy::Strict => {
                    return Err(RewriteError::MergePriorityKeyNotFound(key.to_owned()));
                }
            }
        };
        let not_an_object = |problem| RewriteError::MergeValueNotAnObject {
            key: key.to_owned(),
            problem,
        };
        let parsed =
            json::parse(value.expose()).map_err(|e| not_an_object(JsonProblem::Syntax(e)))?;
        let object =
            match GoValue::from_json(&parsed).map_err(|e| not_an_object(JsonProblem::Number(e)))? {
                GoValue::Object(object) => object,
                // Go unmarshals `null` into a nil map without error: nothing to merge.
                GoValue::Null => continue,
                _ => {
                    return Err(not_an_object(JsonProblem::NotAnObject(
                        parsed.kind.type_name(),
                    )));
                }
            };
        for (name, member) in object {
            if merged.contains_key(&name) {
                conflicts.push(name.clone());
            }
            merged.insert(name, member);
        }
    }

    if op.conflict_policy != MergeConflictPolicy::Ignore && !conflicts.is_empty() {
        conflicts.sort();
        return Err(RewriteError::MergeConflicts(conflicts));
    }

    match op.strategy {
        MergeStrategy::Extract => Ok(merged
            .into_iter()
            .map(|(name, member)| (name, SecretBytes::new(byte_value(&member))))
            .collect()),
        MergeStrategy::Json => {
            if op.into.is_empty() {
                return Err(RewriteError::MergeMissingInto);
            }
            // ESO's `JSONMarshal`: an encoder with HTML escaping off.
            let mut text = String::new();
            GoValue::Object(merged).marshal(false, &mut text);
            let mut out = map;
            out.insert(op.into.clone(), SecretBytes::from(text));
            Ok(out)
        }
    }
}

/// ESO's `GetByteValue` for what `json.Unmarshal` into `any` yields.
fn byte_value(value: &GoValue) -> Vec<u8> {
    match value {
        GoValue::String(s) => s.clone().into_bytes(),
        GoValue::Number(n) => secret_sync_gosem::strconv::format_float_f(*n).into_bytes(),
        GoValue::Bool(b) => b.to_string().into_bytes(),
        GoValue::Null => Vec::new(),
        // `json.Marshal`, which escapes HTML characters.
        GoValue::Array(_) | GoValue::Object(_) => {
            let mut text = String::new();
            value.marshal(true, &mut text);
            text.into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> Map {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretBytes::new(v.as_bytes().to_vec())))
            .collect()
    }

    fn plain(map: &Map) -> Vec<(String, String)> {
        map.iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v.expose()).into_owned()))
            .collect()
    }

    fn want(entries: &[(&str, &str)]) -> Vec<(String, String)> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn merge(op: ExternalSecretRewriteMerge) -> ExternalSecretRewriteMerge {
        op
    }

    fn regexp(source: &'static str, target: &'static str) -> Rewrite<'static> {
        match GoRegexp::new(source) {
            Ok(source) => Rewrite::Regexp { source, target },
            Err(e) => panic!("{e}"),
        }
    }

    fn run(
        rewrites: &[Rewrite<'_>],
        input: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>, (usize, RewriteError)> {
        apply(rewrites, map(input)).map(|m| plain(&m))
    }

    const MONGO: (&str, &str) = (
        "mongo-credentials",
        r#"{"username": "foz", "password": "baz"}"#,
    );
    const REDIS: (&str, &str) = (
        "redis-credentials",
        r#"{"host": "redis.example.com", "port": "6379"}"#,
    );

    // The cases below are ESO's runtime/esutils/utils_test.go TestRewrite and TestRewriteMerge.

    #[test]
    fn an_empty_merge_extracts_every_property() {
        let op = ExternalSecretRewriteMerge::default();
        assert_eq!(
            run(&[Rewrite::Merge(&op)], &[MONGO, REDIS]),
            Ok(want(&[
                ("host", "redis.example.com"),
                ("password", "baz"),
                ("port", "6379"),
                ("username", "foz"),
            ]))
        );
    }

    #[test]
    fn priority_keys_are_merged_last_and_win() {
        let op = merge(ExternalSecretRewriteMerge {
            conflict_policy: MergeConflictPolicy::Ignore,
            priority: vec!["mongo-credentials".into(), "redis-credentials".into()],
            ..Default::default()
        });
        let other = (
            "other-credentials",
            r#"{"key": "value", "host": "other.example.com"}"#,
        );
        assert_eq!(
            run(&[Rewrite::Merge(&op)], &[REDIS, MONGO, other]),
            Ok(want(&[
                ("host", "redis.example.com"),
                ("key", "value"),
                ("password", "baz"),
                ("port", "6379"),
                ("username", "foz"),
            ]))
        );
    }

    #[test]
    fn a_missing_priority_key_fails_unless_ignored() {
        let strict = merge(ExternalSecretRewriteMerge {
            conflict_policy: MergeConflictPolicy::Ignore,
            priority: vec!["non-existent-key".into(), "mongo-credentials".into()],
            ..Default::default()
        });
        assert_eq!(
            run(&[Rewrite::Merge(&strict)], &[MONGO, REDIS]),
            Err((
                0,
                RewriteError::MergePriorityKeyNotFound("non-existent-key".into())
            ))
        );
        let lenient = ExternalSecretRewriteMerge {
            priority_policy: MergePriorityPolicy::IgnoreNotFound,
            ..strict.clone()
        };
        assert_eq!(
            run(&[Rewrite::Merge(&lenient)], &[MONGO, REDIS]).map(|m| m.len()),
            Ok(4)
        );
    }

    #[test]
    fn conflicts_fail_by_default_and_are_listed_sorted() {
        let op = ExternalSecretRewriteMerge::default();
        let err = run(
            &[Rewrite::Merge(&op)],
            &[
                ("a", r#"{"username": "foz", "password": "baz"}"#),
                (
                    "b",
                    r#"{"username": "redis", "port": "6379", "password": "x"}"#,
                ),
            ],
        );
        assert_eq!(
            err,
            Err((
                0,
                RewriteError::MergeConflicts(vec!["password".into(), "username".into()])
            ))
        );
        assert_eq!(
            RewriteError::MergeConflicts(vec!["password".into(), "username".into()]).to_string(),
            "merge failed with conflicts: password, username"
        );
    }

    #[test]
    fn the_json_strategy_stores_the_merged_object_and_keeps_the_other_keys() {
        let op = ExternalSecretRewriteMerge {
            strategy: MergeStrategy::Json,
            into: "credentials".into(),
            ..Default::default()
        };
        assert_eq!(
            run(&[Rewrite::Merge(&op)], &[MONGO, REDIS]),
            Ok(want(&[
                (
                    "credentials",
                    r#"{"host":"redis.example.com","password":"baz","port":"6379","username":"foz"}"#
                ),
                MONGO,
                REDIS,
            ]))
        );
        let without_into = ExternalSecretRewriteMerge {
            into: String::new(),
            ..op
        };
        assert_eq!(
            run(&[Rewrite::Merge(&without_into)], &[MONGO]),
            Err((0, RewriteError::MergeMissingInto))
        );
    }

    #[test]
    fn values_that_are_not_json_objects_cannot_be_merged() {
        let op = ExternalSecretRewriteMerge::default();
        let invalid = run(
            &[Rewrite::Merge(&op)],
            &[("invalid-json", r#"{"username": "foz", "password": "baz""#)],
        );
        assert!(matches!(
            invalid,
            Err((
                0,
                RewriteError::MergeValueNotAnObject {
                    problem: JsonProblem::Syntax(_),
                    ..
                }
            ))
        ));
        let array = run(&[Rewrite::Merge(&op)], &[("list", "[1]")]);
        assert!(matches!(
            array,
            Err((
                0,
                RewriteError::MergeValueNotAnObject {
                    problem: JsonProblem::NotAnObject("array"),
                    ..
                }
            ))
        ));
        // `null` unmarshals into a nil map in Go: it merges nothing.
        assert_eq!(run(&[Rewrite::Merge(&op)], &[("n", "null")]), Ok(vec![]));
    }

    #[test]
    fn a_double_merge_reads_numbers_as_go_floats() {
        let first = ExternalSecretRewriteMerge {
            strategy: MergeStrategy::Json,
            conflict_policy: MergeConflictPolicy::Ignore,
            into: "merged".into(),
            priority: vec!["a".into()],
            ..Default::default()
        };
        let second = ExternalSecretRewriteMerge {
            strategy: MergeStrategy::Extract,
            conflict_policy: MergeConflictPolicy::Ignore,
            priority: vec!["b".into()],
            ..Default::default()
        };
        assert_eq!(
            run(
                &[Rewrite::Merge(&first), Rewrite::Merge(&second)],
                &[
                    ("a", r#"{"host": "dba", "pass": "yola", "port": 123}"#),
                    ("b", r#"{"host": "dbb", "pass": "yolb"}"#),
                ],
            ),
            Ok(want(&[("host", "dbb"), ("pass", "yolb"), ("port", "123")]))
        );
    }

    #[test]
    fn extracted_members_print_like_gos_get_byte_value() {
        let op = ExternalSecretRewriteMerge::default();
        assert_eq!(
            run(
                &[Rewrite::Merge(&op)],
                &[(
                    "k",
                    r#"{"f": 1.50, "big": 1e21, "t": true, "n": null, "o": {"z": "<&>", "a": [1.0]}}"#
                )],
            ),
            Ok(want(&[
                ("big", "1000000000000000000000"),
                ("f", "1.5"),
                ("n", ""),
                ("o", r#"{"a":[1],"z":"\u003c\u0026\u003e"}"#),
                ("t", "true"),
            ]))
        );
    }

    #[test]
    fn regexp_then_merge_into_json() {
        let op = ExternalSecretRewriteMerge {
            strategy: MergeStrategy::Json,
            conflict_policy: MergeConflictPolicy::Ignore,
            into: "merged".into(),
            priority: vec!["a".into()],
            ..Default::default()
        };
        assert_eq!(
            run(
                &[regexp("db/(.*)", "$1"), Rewrite::Merge(&op)],
                &[
                    ("db/a", r#"{"host": "dba.example.com"}"#),
                    ("db/b", r#"{"host": "dbb.example.com", "pass": "yolo"}"#),
                ],
            ),
            Ok(want(&[
                ("a", r#"{"host": "dba.example.com"}"#),
                ("b", r#"{"host": "dbb.example.com", "pass": "yolo"}"#),
                ("merged", r#"{"host":"dba.example.com","pass":"yolo"}"#),
            ]))
        );
    }

    #[test]
    fn a_regexp_rewrite_matches_and_expands_as_go() {
        // Go: `\d` is ASCII (the regex crate's takes "٣" too), and `$01` names a group "01"
        // that does not exist, so it expands to nothing (the regex crate reads group 1).
        assert_eq!(
            run(
                &[regexp(r"^app-(\d)$", "${1}x$01")],
                &[("app-3", "a"), ("app-٣", "b")]
            ),
            Ok(want(&[("3x", "a"), ("app-٣", "b")]))
        );
    }

    #[test]
    fn regexps_apply_in_sequence() {
        assert_eq!(
            run(
                &[
                    regexp("my/(.*?)/bar/(.*)", "$1-$2"),
                    regexp("-", "_"),
                    regexp("ass", "***"),
                ],
                &[("my/app/bar/key", "bar"), ("my/app/bar/password", "barr")],
            ),
            Ok(want(&[("app_key", "bar"), ("app_p***word", "barr")]))
        );
        assert_eq!(
            run(&[regexp("hello", "world")], &[("foo", "bar")]),
            Ok(want(&[("foo", "bar")]))
        );
    }

    #[test]
    fn regexp_then_transform_makes_env_var_keys() {
        let template = match funcs::key_template(r#"{{ .value | upper | replace "-" "_" }}"#) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            run(
                &[
                    regexp("my/(.*?)/bar/(.*)", "$1-$2"),
                    Rewrite::Transform(template)
                ],
                &[("my/app/bar/key", "bar")],
            ),
            Ok(want(&[("APP_KEY", "bar")]))
        );
    }

    #[test]
    fn keys_rewritten_to_the_same_name_keep_the_alphabetically_last_source() {
        assert_eq!(
            run(&[regexp(".*", "same")], &[("a", "1"), ("b", "2")]),
            Ok(want(&[("same", "2")]))
        );
    }
}
