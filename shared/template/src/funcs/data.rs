//! sprig's defaults, JSON, reflection, list and dict functions; ESO's `toYaml` and `fromYaml`.
//!
//! Go's `set`, `unset` and `merge` change their map argument in place; template values here are
//! immutable, so they return the changed map and leave the argument as it was (use the result:
//! `{{ $d = set $d "k" "v" }}`).

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;

use super::{Args, R, elements, list, s, strings};
use crate::budget;
use crate::go;
use crate::json::{self, Style};
use crate::yaml;

type Map = BTreeMap<Arc<str>, Value>;

fn map_value(m: Map) -> R {
    Ok(Value::Map(Arc::new(m)))
}

fn max_value() -> usize {
    budget::max_value_bytes()
}

pub(crate) fn default(a: &Args) -> R {
    a.at_least(1)?;
    match a.v.get(1) {
        Some(given) if !go::is_empty(given) => Ok(given.clone()),
        _ => Ok(a.any(0).clone()),
    }
}

pub(crate) fn empty(a: &Args) -> R {
    a.exactly(1)?;
    Ok(Value::Bool(go::is_empty(a.any(0))))
}

pub(crate) fn coalesce(a: &Args) -> R {
    Ok(a.v
        .iter()
        .find(|v| !go::is_empty(v))
        .cloned()
        .unwrap_or(Value::Nil))
}

pub(crate) fn all(a: &Args) -> R {
    Ok(Value::Bool(a.v.iter().all(|v| !go::is_empty(v))))
}

pub(crate) fn any(a: &Args) -> R {
    Ok(Value::Bool(a.v.iter().any(|v| !go::is_empty(v))))
}

pub(crate) fn compact(a: &Args) -> R {
    a.exactly(1)?;
    let items = elements(a.any(0), "compact on")?;
    list(items.iter().filter(|v| !go::is_empty(v)).cloned().collect())
}

pub(crate) fn from_json(a: &Args) -> R {
    a.exactly(1)?;
    Ok(json::decode(a.str(0)?).unwrap_or(Value::Nil))
}

pub(crate) fn must_from_json(a: &Args) -> R {
    a.exactly(1)?;
    json::decode(a.str(0)?)
}

const COMPACT: Style = Style {
    escape_html: true,
    pretty: false,
};
const PRETTY: Style = Style {
    escape_html: true,
    pretty: true,
};
const RAW: Style = Style {
    escape_html: false,
    pretty: false,
};

fn encode(a: &Args, style: Style) -> Result<String, String> {
    a.exactly(1)?;
    json::encode(a.any(0), style, max_value())
}

/// sprig's `toJson` swallows errors and prints "".
pub(crate) fn to_json(a: &Args) -> R {
    s(encode(a, COMPACT).unwrap_or_default())
}

pub(crate) fn must_to_json(a: &Args) -> R {
    s(encode(a, COMPACT)?)
}

pub(crate) fn to_pretty_json(a: &Args) -> R {
    s(encode(a, PRETTY).unwrap_or_default())
}

pub(crate) fn must_to_pretty_json(a: &Args) -> R {
    s(encode(a, PRETTY)?)
}

/// `toRawJson` panics on an error in sprig, which text/template reports as an error.
pub(crate) fn must_to_raw_json(a: &Args) -> R {
    s(encode(a, RAW)?)
}

/// ESO's `toYaml` prints "" on error.
pub(crate) fn to_yaml(a: &Args) -> R {
    a.exactly(1)?;
    match yaml::to_yaml(a.any(0), max_value()) {
        Ok(out) => s(out),
        Err(e) if e == budget::LIMIT_MESSAGE => Err(e),
        Err(_) => s(""),
    }
}

pub(crate) fn from_yaml(a: &Args) -> R {
    a.exactly(1)?;
    Ok(yaml::from_yaml(a.str(0)?))
}

pub(crate) fn ternary(a: &Args) -> R {
    a.exactly(3)?;
    Ok(if a.bool(2)? {
        a.any(0).clone()
    } else {
        a.any(1).clone()
    })
}

pub(crate) fn deep_copy(a: &Args) -> R {
    a.exactly(1)?;
    Ok(a.any(0).clone())
}

/// `fmt.Sprintf("%T", v)`.
pub(crate) fn type_of(a: &Args) -> R {
    a.exactly(1)?;
    s(match a.any(0) {
        Value::Nil => "<nil>",
        v => go::type_name(v),
    })
}

/// sprig's `typeIsLike(target, v)`: `typeOf v` is `target` or `*target`.
pub(crate) fn type_is_like(a: &Args) -> R {
    a.exactly(2)?;
    let t = a.str(0)?;
    let actual = match a.any(1) {
        Value::Nil => "<nil>",
        v => go::type_name(v),
    };
    Ok(Value::Bool(
        t == actual || actual.strip_prefix('*').is_some_and(|a| a == t),
    ))
}

/// sprig's `hello`.
pub(crate) fn hello(a: &Args) -> R {
    a.exactly(0)?;
    s("Hello!")
}

pub(crate) fn kind_of(a: &Args) -> R {
    a.exactly(1)?;
    s(go::kind(a.any(0)))
}

pub(crate) fn type_is(a: &Args) -> R {
    a.exactly(2)?;
    let t = a.str(0)?;
    let actual = match a.any(1) {
        Value::Nil => "<nil>",
        v => go::type_name(v),
    };
    Ok(Value::Bool(t == actual))
}

pub(crate) fn kind_is(a: &Args) -> R {
    a.exactly(2)?;
    Ok(Value::Bool(a.str(0)? == go::kind(a.any(1))))
}

pub(crate) fn deep_equal(a: &Args) -> R {
    a.exactly(2)?;
    Ok(Value::Bool(go::deep_equal(a.any(0), a.any(1))))
}

pub(crate) fn fail(a: &Args) -> R {
    a.exactly(1)?;
    Err(a.str(0)?.to_owned())
}

pub(crate) fn list_fn(a: &Args) -> R {
    list(a.v.to_vec())
}

pub(crate) fn dict(a: &Args) -> R {
    let mut m = Map::new();
    for pair in a.v.chunks(2) {
        let key: Arc<str> = Arc::from(go::strval(&pair[0]));
        m.insert(key, pair.get(1).cloned().unwrap_or_else(|| Value::from("")));
    }
    map_value(m)
}

pub(crate) fn get(a: &Args) -> R {
    a.exactly(2)?;
    let (m, key) = (a.map(0)?, a.str(1)?);
    Ok(m.get(key).cloned().unwrap_or_else(|| Value::from("")))
}

pub(crate) fn set(a: &Args) -> R {
    a.exactly(3)?;
    let (m, key) = (a.map(0)?, a.str(1)?);
    let mut m = (**m).clone();
    m.insert(Arc::from(key), a.any(2).clone());
    map_value(m)
}

pub(crate) fn unset(a: &Args) -> R {
    a.exactly(2)?;
    let (m, key) = (a.map(0)?, a.str(1)?);
    let mut m = (**m).clone();
    m.remove(key);
    map_value(m)
}

pub(crate) fn has_key(a: &Args) -> R {
    a.exactly(2)?;
    Ok(Value::Bool(a.map(0)?.contains_key(a.str(1)?)))
}

pub(crate) fn pluck(a: &Args) -> R {
    a.at_least(1)?;
    let key = a.str(0)?;
    let mut out = Vec::new();
    for i in 1..a.len() {
        if let Some(v) = a.map(i)?.get(key) {
            out.push(v.clone());
        }
    }
    list(out)
}

/// Go iterates maps in random order; these keys come sorted per dictionary.
pub(crate) fn keys(a: &Args) -> R {
    let mut out = Vec::new();
    for i in 0..a.len() {
        out.extend(a.map(i)?.keys().map(|k| k.to_string()));
    }
    strings(out)
}

pub(crate) fn pick(a: &Args) -> R {
    a.at_least(1)?;
    let m = a.map(0)?;
    let mut out = Map::new();
    for i in 1..a.len() {
        let k = a.str(i)?;
        if let Some(v) = m.get(k) {
            out.insert(Arc::from(k), v.clone());
        }
    }
    map_value(out)
}

pub(crate) fn omit(a: &Args) -> R {
    a.at_least(1)?;
    let m = a.map(0)?;
    let mut drop = Vec::new();
    for i in 1..a.len() {
        drop.push(a.str(i)?);
    }
    map_value(
        m.iter()
            .filter(|(k, _)| !drop.contains(&k.as_ref()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// mergo.Merge (`overwrite` false) and mergo.MergeWithOverwrite: maps merge deeply; a value
/// is taken from `src` when `dst` lacks it or holds an empty value, or, when overwriting, when
/// the source value is not empty.
fn merge_into(dst: &mut Map, src: &Map, overwrite: bool) {
    for (k, sv) in src {
        match dst.get_mut(k) {
            None => {
                dst.insert(k.clone(), sv.clone());
            }
            Some(Value::Map(dm)) if matches!(sv, Value::Map(_)) => {
                if let Value::Map(sm) = sv {
                    let mut merged = (**dm).clone();
                    merge_into(&mut merged, sm, overwrite);
                    *dm = Arc::new(merged);
                }
            }
            Some(dv) => {
                if go::is_empty(dv) || (overwrite && !go::is_empty(sv)) {
                    *dv = sv.clone();
                }
            }
        }
    }
}

fn merge_with(a: &Args, overwrite: bool) -> R {
    a.at_least(1)?;
    let mut dst = (**a.map(0)?).clone();
    for i in 1..a.len() {
        merge_into(&mut dst, a.map(i)?, overwrite);
    }
    map_value(dst)
}

pub(crate) fn merge(a: &Args) -> R {
    merge_with(a, false)
}

pub(crate) fn merge_overwrite(a: &Args) -> R {
    merge_with(a, true)
}

pub(crate) fn values(a: &Args) -> R {
    a.exactly(1)?;
    list(a.map(0)?.values().cloned().collect())
}

pub(crate) fn dig(a: &Args) -> R {
    if a.len() < 3 {
        return Err("dig needs at least three arguments".to_owned());
    }
    let n = a.len();
    let mut current = a.map(n - 1)?.clone();
    let default = a.any(n - 2).clone();
    for i in 0..n - 2 {
        let key = a.str(i)?;
        let Some(step) = current.get(key) else {
            return Ok(default);
        };
        if i == n - 3 {
            return Ok(step.clone());
        }
        match step {
            Value::Map(m) => current = m.clone(),
            _ => return Err("dig: a value on the path is not a dictionary".to_owned()),
        }
    }
    Ok(default)
}

pub(crate) fn push(a: &Args) -> R {
    a.exactly(2)?;
    let items = elements(a.any(0), "push on")?;
    budget::ensure_len(items.len() + 1)?;
    let mut out = items.to_vec();
    out.push(a.any(1).clone());
    list(out)
}

pub(crate) fn prepend(a: &Args) -> R {
    a.exactly(2)?;
    let items = elements(a.any(0), "prepend on")?;
    budget::ensure_len(items.len() + 1)?;
    let mut out = vec![a.any(1).clone()];
    out.extend_from_slice(items);
    list(out)
}

pub(crate) fn first(a: &Args) -> R {
    a.exactly(1)?;
    Ok(elements(a.any(0), "find first on")?
        .first()
        .cloned()
        .unwrap_or(Value::Nil))
}

pub(crate) fn last(a: &Args) -> R {
    a.exactly(1)?;
    Ok(elements(a.any(0), "find last on")?
        .last()
        .cloned()
        .unwrap_or(Value::Nil))
}

pub(crate) fn rest(a: &Args) -> R {
    a.exactly(1)?;
    match elements(a.any(0), "find rest on")? {
        [] => list(Vec::new()),
        [_, tail @ ..] => list(tail.to_vec()),
    }
}

pub(crate) fn initial(a: &Args) -> R {
    a.exactly(1)?;
    match elements(a.any(0), "find initial on")? {
        [] => list(Vec::new()),
        [init @ .., _] => list(init.to_vec()),
    }
}

pub(crate) fn reverse(a: &Args) -> R {
    a.exactly(1)?;
    let mut out = elements(a.any(0), "find reverse on")?.to_vec();
    out.reverse();
    list(out)
}

pub(crate) fn uniq(a: &Args) -> R {
    a.exactly(1)?;
    let mut out: Vec<Value> = Vec::new();
    for v in elements(a.any(0), "find uniq on")? {
        if !out.iter().any(|o| go::deep_equal(o, v)) {
            out.push(v.clone());
        }
    }
    list(out)
}

pub(crate) fn without(a: &Args) -> R {
    a.at_least(1)?;
    let omit = &a.v[1..];
    list(
        elements(a.any(0), "find without on")?
            .iter()
            .filter(|v| !omit.iter().any(|o| go::deep_equal(o, v)))
            .cloned()
            .collect(),
    )
}

pub(crate) fn has(a: &Args) -> R {
    a.exactly(2)?;
    let (needle, haystack) = (a.any(0), a.any(1));
    if matches!(haystack, Value::Nil) {
        return Ok(Value::Bool(false));
    }
    Ok(Value::Bool(
        elements(haystack, "find has on")?
            .iter()
            .any(|v| go::deep_equal(needle, v)),
    ))
}

/// sprig's `slice` (it replaces text/template's builtin): lists only.
pub(crate) fn slice(a: &Args) -> R {
    a.at_least(1)?;
    let items = match a.any(0) {
        Value::List(l) => l,
        other => {
            return Err(format!(
                "list should be type of slice or array but {}",
                go::kind(other)
            ));
        }
    };
    if items.is_empty() {
        return Ok(Value::Nil);
    }
    let start = if a.len() > 1 {
        go::to_int64(a.any(1))
    } else {
        0
    };
    let end = if a.len() > 2 {
        go::to_int64(a.any(2))
    } else {
        items.len() as i64
    };
    if start < 0 || end < start || end > items.len() as i64 {
        return Err(format!(
            "reflect: slice index out of range [{start}:{end}] with length {}",
            items.len()
        ));
    }
    list(items[start as usize..end as usize].to_vec())
}

pub(crate) fn concat(a: &Args) -> R {
    let mut out = Vec::new();
    for v in a.v {
        match v {
            Value::List(l) => {
                budget::ensure_len(out.len() + l.len())?;
                out.extend_from_slice(l);
            }
            other => return Err(format!("Cannot concat type {} as list", go::kind(other))),
        }
    }
    list(out)
}

pub(crate) fn chunk(a: &Args) -> R {
    a.exactly(2)?;
    let size = a.int(0)?;
    let items = elements(a.any(1), "chunk")?;
    if size <= 0 {
        return Err("chunk size must be positive".to_owned());
    }
    list(
        items
            .chunks(size as usize)
            .map(|c| Value::List(c.to_vec().into()))
            .collect(),
    )
}
