//! sprig's integer and float arithmetic. Integer operations wrap on overflow, as Go's do.

use gotmpl::Value;

use super::{Args, R, list, s};
use crate::budget;
use crate::go;

pub(crate) fn atoi(a: &Args) -> R {
    a.exactly(1)?;
    Ok(Value::Int(go::atoi(a.str(0)?).unwrap_or(0)))
}

pub(crate) fn int64(a: &Args) -> R {
    a.exactly(1)?;
    Ok(Value::Int(go::to_int64(a.any(0))))
}

pub(crate) fn float64(a: &Args) -> R {
    a.exactly(1)?;
    Ok(Value::Float(go::to_float64(a.any(0))))
}

/// `strconv.ParseInt(fmt.Sprint(v), 8, 64)`, or 0.
pub(crate) fn to_decimal(a: &Args) -> R {
    a.exactly(1)?;
    let text = go::strval(a.any(0));
    let body = text.strip_prefix(['+', '-']).unwrap_or(&text);
    let parsed = if body.is_empty() || !body.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        None
    } else {
        i64::from_str_radix(&text, 8).ok()
    };
    Ok(Value::Int(parsed.unwrap_or(0)))
}

/// sprig's `untilStep`, refusing a list past the value limit before building it.
fn until_step(start: i64, stop: i64, step: i64) -> Result<Vec<i64>, String> {
    let len = if stop < start {
        if step >= 0 {
            return Ok(Vec::new());
        }
        (i128::from(start) - i128::from(stop) - 1) / -i128::from(step) + 1
    } else {
        if step <= 0 || stop == start {
            return Ok(Vec::new());
        }
        (i128::from(stop) - i128::from(start) - 1) / i128::from(step) + 1
    };
    budget::ensure_len(usize::try_from(len).unwrap_or(usize::MAX))?;
    let mut out = Vec::with_capacity(len as usize);
    let mut i = start;
    for _ in 0..len {
        out.push(i);
        i = i.wrapping_add(step);
    }
    Ok(out)
}

fn int_list(v: Vec<i64>) -> R {
    list(v.into_iter().map(Value::Int).collect())
}

pub(crate) fn until(a: &Args) -> R {
    a.exactly(1)?;
    let count = a.int(0)?;
    int_list(until_step(0, count, if count < 0 { -1 } else { 1 })?)
}

pub(crate) fn until_step_fn(a: &Args) -> R {
    a.exactly(3)?;
    int_list(until_step(a.int(0)?, a.int(1)?, a.int(2)?)?)
}

/// sprig's `seq`, as a space-separated string.
pub(crate) fn seq(a: &Args) -> R {
    let mut params = Vec::new();
    for i in 0..a.len() {
        params.push(a.int(i)?);
    }
    let nums = match params[..] {
        [end] => {
            let inc = if end < 1 { -1 } else { 1 };
            until_step(1, end.wrapping_add(inc), inc)?
        }
        [start, end] => {
            let step = if end < start { -1 } else { 1 };
            until_step(start, end.wrapping_add(step), step)?
        }
        [start, step, end] => {
            let inc = if end < start {
                if step > 0 {
                    return s("");
                }
                -1
            } else {
                1
            };
            until_step(start, end.wrapping_add(inc), step)?
        }
        _ => return s(""),
    };
    let strs: Vec<String> = nums.iter().map(i64::to_string).collect();
    s(strs.join(" "))
}

fn ints(a: &Args) -> Vec<i64> {
    a.v.iter().map(go::to_int64).collect()
}

pub(crate) fn add1(a: &Args) -> R {
    a.exactly(1)?;
    Ok(Value::Int(go::to_int64(a.any(0)).wrapping_add(1)))
}

pub(crate) fn add(a: &Args) -> R {
    Ok(Value::Int(ints(a).into_iter().fold(0, i64::wrapping_add)))
}

pub(crate) fn sub(a: &Args) -> R {
    a.exactly(2)?;
    let v = ints(a);
    Ok(Value::Int(v[0].wrapping_sub(v[1])))
}

pub(crate) fn mul(a: &Args) -> R {
    a.at_least(1)?;
    Ok(Value::Int(ints(a).into_iter().fold(1, i64::wrapping_mul)))
}

pub(crate) fn div(a: &Args) -> R {
    a.exactly(2)?;
    let v = ints(a);
    if v[1] == 0 {
        return Err("runtime error: integer divide by zero".to_owned());
    }
    Ok(Value::Int(v[0].wrapping_div(v[1])))
}

pub(crate) fn modulo(a: &Args) -> R {
    a.exactly(2)?;
    let v = ints(a);
    if v[1] == 0 {
        return Err("runtime error: integer divide by zero".to_owned());
    }
    Ok(Value::Int(v[0].wrapping_rem(v[1])))
}

pub(crate) fn max(a: &Args) -> R {
    a.at_least(1)?;
    Ok(Value::Int(ints(a).into_iter().max().unwrap_or(0)))
}

pub(crate) fn min(a: &Args) -> R {
    a.at_least(1)?;
    Ok(Value::Int(ints(a).into_iter().min().unwrap_or(0)))
}

pub(crate) fn rand_int(a: &Args) -> R {
    a.exactly(2)?;
    let (lo, hi) = (a.int(0)?, a.int(1)?);
    let span = hi.wrapping_sub(lo);
    if span <= 0 {
        return Err("invalid argument to Intn".to_owned());
    }
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|_| "no randomness available".to_owned())?;
    let r = (u64::from_le_bytes(b) % span as u64) as i64;
    Ok(Value::Int(lo + r))
}

fn floats(a: &Args) -> Vec<f64> {
    a.v.iter().map(go::to_float64).collect()
}

/// sprig computes these in shopspring/decimal from each float's shortest decimal form, so
/// `addf 0.1 0.2` is 0.3; rounding the binary result to 15 significant digits gives the same
/// answers for the inputs templates see.
fn decimal_like(x: f64) -> Value {
    if !x.is_finite() || x == 0.0 {
        return Value::Float(x);
    }
    let rounded: f64 = format!("{x:.14e}").parse().unwrap_or(x);
    Value::Float(rounded)
}

fn fold_f(a: &Args, init: Option<f64>, op: fn(f64, f64) -> f64) -> R {
    let v = floats(a);
    let (first, rest) = match init {
        Some(i) => (i, &v[..]),
        None => match v.split_first() {
            Some((f, r)) => (*f, r),
            None => {
                return Err(format!(
                    "wrong number of args for {}: want at least 1 got 0",
                    a.name
                ));
            }
        },
    };
    Ok(decimal_like(rest.iter().fold(first, |acc, x| op(acc, *x))))
}

pub(crate) fn add1f(a: &Args) -> R {
    a.exactly(1)?;
    Ok(decimal_like(go::to_float64(a.any(0)) + 1.0))
}

pub(crate) fn addf(a: &Args) -> R {
    fold_f(a, Some(0.0), |x, y| x + y)
}

pub(crate) fn subf(a: &Args) -> R {
    fold_f(a, None, |x, y| x - y)
}

pub(crate) fn mulf(a: &Args) -> R {
    fold_f(a, None, |x, y| x * y)
}

pub(crate) fn divf(a: &Args) -> R {
    if floats(a).iter().skip(1).any(|d| *d == 0.0) {
        return Err("decimal division by 0".to_owned());
    }
    fold_f(a, None, |x, y| x / y)
}

pub(crate) fn maxf(a: &Args) -> R {
    a.at_least(1)?;
    let v = floats(a);
    Ok(Value::Float(v[1..].iter().fold(v[0], |m, x| m.max(*x))))
}

pub(crate) fn minf(a: &Args) -> R {
    a.at_least(1)?;
    let v = floats(a);
    Ok(Value::Float(v[1..].iter().fold(v[0], |m, x| m.min(*x))))
}

pub(crate) fn ceil(a: &Args) -> R {
    a.exactly(1)?;
    Ok(Value::Float(go::to_float64(a.any(0)).ceil()))
}

pub(crate) fn floor(a: &Args) -> R {
    a.exactly(1)?;
    Ok(Value::Float(go::to_float64(a.any(0)).floor()))
}

/// sprig's `round(value, places, roundOn=.5)`.
pub(crate) fn round(a: &Args) -> R {
    if !(2..=3).contains(&a.len()) {
        return Err(format!(
            "wrong number of args for round: want 2 got {}",
            a.len()
        ));
    }
    let val = go::to_float64(a.any(0));
    let places = a.int(1)? as f64;
    let round_on = if a.len() == 3 {
        go::to_float64(a.any(2))
    } else {
        0.5
    };
    let pow = 10f64.powf(places);
    let digit = pow * val;
    let frac = digit - digit.trunc();
    let r = if frac >= round_on {
        digit.ceil()
    } else {
        digit.floor()
    };
    Ok(Value::Float(r / pow))
}
