//! gotmpl's output builtins, replaced so that their results count against the value limit
//! (`{{ $x = print $x $x }}` in a loop would otherwise double without bound).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use gotmpl::{Template, Value};

use super::{Args, R, s};
use crate::go;

/// `fmt.Sprint`.
pub(crate) fn print(a: &Args) -> R {
    s(go::sprint(a.v))
}

/// `fmt.Sprintln`: a space between every operand, and a newline.
pub(crate) fn println(a: &Args) -> R {
    let mut out = String::new();
    for (i, v) in a.v.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        go::write_v(&mut out, v);
    }
    out.push('\n');
    s(out)
}

/// text/template's `evalArgs`: a single string as is, else `fmt.Sprint`.
fn eval_args(a: &Args) -> String {
    match a.v {
        [Value::String(one)] => one.to_string(),
        _ => go::sprint(a.v),
    }
}

pub(crate) fn html(a: &Args) -> R {
    s(gotmpl::html_escape(&eval_args(a)))
}

pub(crate) fn js(a: &Args) -> R {
    s(gotmpl::js_escape(&eval_args(a)))
}

pub(crate) fn urlquery(a: &Args) -> R {
    s(gotmpl::url_encode(&eval_args(a)))
}

const MAX_PRINTF_ARGS: usize = 32;

/// `fmt.Sprintf`, by gotmpl's port of Go's `fmt` (a template per arity, parsed once).
pub(crate) fn printf(a: &Args) -> R {
    a.at_least(1)?;
    let format = a.str(0)?;
    let rest = &a.v[1..];
    if rest.len() > MAX_PRINTF_ARGS {
        return Err(format!("printf takes at most {MAX_PRINTF_ARGS} operands"));
    }
    static BY_ARITY: OnceLock<Vec<Option<Template>>> = OnceLock::new();
    let templates = BY_ARITY.get_or_init(|| {
        (0..=MAX_PRINTF_ARGS)
            .map(|n| {
                let operands: String = (0..n).map(|i| format!(" .a{i}")).collect();
                Template::new("printf")
                    .parse(&format!("{{{{printf .f{operands}}}}}"))
                    .ok()
            })
            .collect()
    });
    let Some(Some(t)) = templates.get(rest.len()) else {
        return Err("printf is unavailable".to_owned());
    };
    let mut data = BTreeMap::new();
    data.insert("f".to_owned(), Value::from(format));
    for (i, v) in rest.iter().enumerate() {
        data.insert(format!("a{i}"), v.clone());
    }
    t.execute_to_string(&Value::from(data))
        .map(Value::from)
        .map_err(|_| "formatting failed".to_owned())
}

/// text/template's `index`: a missing key of ESO's `map[string]string` context is "", of any
/// other map nil; a list index must be in range; a string index is a byte.
pub(crate) fn index(a: &Args) -> R {
    a.at_least(1)?;
    let mut item = a.any(0).clone();
    for idx in &a.v[1..] {
        item = match (&item, idx) {
            (Value::Map(m), Value::String(k)) => match m.get(k.as_ref()) {
                Some(v) => v.clone(),
                None if crate::budget::is_root(&item) => Value::from(""),
                None => Value::Nil,
            },
            (Value::List(l), Value::Int(_) | Value::Uint(_)) => {
                let i = go::to_int64(idx);
                usize::try_from(i)
                    .ok()
                    .and_then(|i| l.get(i))
                    .cloned()
                    .ok_or_else(|| "index out of range".to_owned())?
            }
            (Value::String(st), Value::Int(_) | Value::Uint(_)) => {
                let i = go::to_int64(idx);
                let bytes = crate::bytes::decode(st);
                let byte = usize::try_from(i)
                    .ok()
                    .and_then(|i| bytes.get(i).copied())
                    .ok_or_else(|| "index out of range".to_owned())?;
                Value::Int(i64::from(byte))
            }
            (Value::Nil, _) => return Err("index of untyped nil".to_owned()),
            (Value::Map(_), other) | (Value::List(_), other) | (Value::String(_), other) => {
                return Err(format!(
                    "cannot index {} with {}",
                    go::kind(&item),
                    go::type_name(other)
                ));
            }
            (other, _) => return Err(format!("can't index item of type {}", go::type_name(other))),
        };
    }
    Ok(item)
}
