//! sprig's regular-expression functions (R: ESO `runtime/template/v2/sprig/regex.go`), on
//! Go's `regexp` as `secret_sync_gosem` reads it, the same reading as `find.name.regexp` and
//! `rewrite`: `\d` is ASCII, `$01` in a replacement is a (missing) group name, `[[]` is a class.
//! The `must` forms fail on a bad pattern; the others fail too (sprig panics in
//! `MustCompile`), except `regexMatch`, which is false.

use std::cell::RefCell;
use std::collections::HashMap;

use gotmpl::Value;
use secret_sync_gosem::GoRegexp;
use secret_sync_gosem::regexp::{Replacement, quote_meta};

use super::{Args, R, s, strings};
use crate::budget;

/// The compiled size a template's pattern may reach.
const SIZE_LIMIT: usize = 1 << 20;

thread_local! {
    static CACHE: RefCell<HashMap<String, GoRegexp>> = RefCell::new(HashMap::new());
}

/// A compiled pattern, cached per thread (templates call the same few patterns many times).
fn compile(pattern: &str) -> Result<GoRegexp, String> {
    if let Some(re) = CACHE.with(|c| c.borrow().get(pattern).cloned()) {
        return Ok(re);
    }
    let re = GoRegexp::with_size_limit(pattern, SIZE_LIMIT)
        .map_err(|_| "regexp: invalid regular expression".to_owned())?;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 64 {
            c.clear();
        }
        c.insert(pattern.to_owned(), re.clone());
    });
    Ok(re)
}

/// Go's `n` argument: negative means all.
fn limit(n: i64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

pub(crate) fn regex_match(a: &Args) -> R {
    a.exactly(2)?;
    let (pattern, text) = (a.str(0)?, a.str(1)?);
    Ok(Value::Bool(
        compile(pattern).is_ok_and(|re| re.is_match(text)),
    ))
}

pub(crate) fn must_regex_match(a: &Args) -> R {
    a.exactly(2)?;
    Ok(Value::Bool(compile(a.str(0)?)?.is_match(a.str(1)?)))
}

/// `FindAllString(s, n)`.
pub(crate) fn regex_find_all(a: &Args) -> R {
    a.exactly(3)?;
    let (re, text, n) = (compile(a.str(0)?)?, a.str(1)?, a.int(2)?);
    strings(
        re.find_iter(text)
            .take(limit(n))
            .map(|m| m.as_str().to_owned()),
    )
}

/// `FindString(s)`.
pub(crate) fn regex_find(a: &Args) -> R {
    a.exactly(2)?;
    let (re, text) = (compile(a.str(0)?)?, a.str(1)?);
    s(re.find(text).unwrap_or(""))
}

/// `ReplaceAllString` or `ReplaceAllLiteralString`, checking the size as it goes.
fn replace_all(a: &Args, with: fn(&str) -> Replacement<'_>) -> R {
    a.exactly(3)?;
    let (re, text, repl) = (compile(a.str(0)?)?, a.str(1)?, a.str(2)?);
    s(re.try_replace_all(text, with(repl), budget::ensure_size)?)
}

pub(crate) fn regex_replace_all(a: &Args) -> R {
    replace_all(a, |r| Replacement::Expand(r))
}

pub(crate) fn regex_replace_all_literal(a: &Args) -> R {
    replace_all(a, |r| Replacement::Literal(r))
}

/// `Split(s, n)`.
pub(crate) fn regex_split(a: &Args) -> R {
    a.exactly(3)?;
    let (re, text, n) = (compile(a.str(0)?)?, a.str(1)?, a.int(2)?);
    strings(re.split(text, n).into_iter().map(str::to_owned))
}

/// `QuoteMeta(s)`.
pub(crate) fn regex_quote_meta(a: &Args) -> R {
    a.exactly(1)?;
    s(quote_meta(a.str(0)?))
}
