//! Helpers for the no-panic, no-leak tests: walking and mutating JSON samples, and a seeded
//! generator so that a failing mutation reproduces.

use serde_json::Value;

pub(crate) fn to_json(value: &Value) -> String {
    serde_json::to_string(value).expect("a Value serializes")
}

/// Every string and object key in `value`.
pub(crate) fn strings_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings_in(item, out)),
        Value::Object(fields) => {
            for (key, field) in fields {
                out.push(key.clone());
                strings_in(field, out);
            }
        }
        _ => {}
    }
}

/// The strings of `samples` (and `extra`) of four or more characters, minus `allowed` (field
/// names and fixed words the error messages themselves use), sorted and deduplicated: what no
/// error may contain.
pub(crate) fn forbidden_strings(samples: &[&str], extra: &[&str], allowed: &[&str]) -> Vec<String> {
    let mut strings: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    for json in samples {
        strings_in(
            &serde_json::from_str(json).expect("the sample is JSON"),
            &mut strings,
        );
    }
    strings.retain(|s| s.chars().count() >= 4 && !allowed.contains(&s.as_str()));
    strings.sort();
    strings.dedup();
    strings
}

/// Panics when the message or the debug form of `error` holds any of `forbidden`.
pub(crate) fn assert_no_leak(
    error: &(impl std::fmt::Display + std::fmt::Debug),
    forbidden: &[String],
) {
    let message = error.to_string();
    let debug = format!("{error:?}");
    for s in forbidden {
        assert!(
            !message.contains(s.as_str()) && !debug.contains(s.as_str()),
            "{message:?} holds {s:?}"
        );
    }
}

#[derive(Clone)]
pub(crate) enum PathStep {
    Key(String),
    Index(usize),
}

/// The path of every node in `value`, the root included.
pub(crate) fn paths(value: &Value) -> Vec<Vec<PathStep>> {
    fn walk(value: &Value, prefix: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
        out.push(prefix.clone());
        match value {
            Value::Object(fields) => {
                for (key, field) in fields {
                    prefix.push(PathStep::Key(key.clone()));
                    walk(field, prefix, out);
                    prefix.pop();
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    prefix.push(PathStep::Index(index));
                    walk(item, prefix, out);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

pub(crate) fn node_mut<'a>(value: &'a mut Value, path: &[PathStep]) -> &'a mut Value {
    path.iter().fold(value, |node, step| match step {
        PathStep::Key(key) => &mut node[key.as_str()],
        PathStep::Index(index) => &mut node[*index],
    })
}

/// Every mutation of `sample` that replaces one node by one of `replacements`, serialized.
pub(crate) fn field_replacements(sample: &str, replacements: &[Value]) -> Vec<String> {
    let sample: Value = serde_json::from_str(sample).expect("the sample is JSON");
    let mut out = Vec::new();
    for path in paths(&sample) {
        for replacement in replacements {
            let mut mutated = sample.clone();
            *node_mut(&mut mutated, &path) = replacement.clone();
            out.push(to_json(&mutated));
        }
    }
    out
}

/// `count` copies of `bytes`, each with one to three random bytes replaced, removed or inserted
/// (from bytes that matter to JSON and UTF-8).
pub(crate) fn byte_mutations(bytes: &[u8], count: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    const REPLACEMENTS: &[u8] = b"\"\\{}[]:,/0-eE.nulltrue= \x00\xff\xc3";
    (0..count)
        .map(|_| {
            let mut bytes = bytes.to_vec();
            for _ in 0..=rng.below(3) {
                let at = rng.below(bytes.len().max(1));
                match rng.below(3) {
                    0 if !bytes.is_empty() => {
                        bytes[at] = REPLACEMENTS[rng.below(REPLACEMENTS.len())];
                    }
                    1 if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(
                        at.min(bytes.len()),
                        REPLACEMENTS[rng.below(REPLACEMENTS.len())],
                    ),
                }
            }
            bytes
        })
        .collect()
}

/// A deterministic xorshift generator, so a failure reproduces.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("below n fits usize")
    }
}
