//! Go's `strconv.FormatFloat` for a `float64` with precision -1 (the shortest digits that read
//! back as the same number), in the formats ESO's outputs use.
//!
//! Rust's `{}` and `{:e}` print the same shortest digits as Go; only the layout differs.

/// `strconv.FormatFloat(f, 'g', -1, 64)`, which is also `fmt`'s `%v` (`fmt.Sprint(1e6)` is
/// `1e+06`): shortest digits, exponent form when the exponent is below -4 or at least 6, with
/// two or more exponent digits.
pub fn format_float_g(f: f64) -> String {
    if let Some(special) = special(f) {
        return special.to_owned();
    }
    let (digits, dp) = shortest_digits(f);
    let exp = dp - 1;
    if !(-4..6).contains(&exp) {
        return exponent_form(f, &digits, exp, 2);
    }
    format!("{}{}", sign(f), fixed(&digits, dp))
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest digits, never in exponent form
/// (`1e21` is `1000000000000000000000`). Rust's `Display` for `f64` is exactly that.
pub fn format_float_f(f: f64) -> String {
    if let Some(special) = special(f) {
        return special.to_owned();
    }
    format!("{f}")
}

/// `strconv.FormatFloat(f, 'e', -1, 64)` with at least `min_exp_digits` exponent digits
/// (Go writes two; `encoding/json` trims a negative exponent back to one).
pub(crate) fn format_float_e(f: f64, min_exp_digits: usize) -> String {
    if f == 0.0 {
        return format!("{}0e+{:0>min_exp_digits$}", sign(f), 0);
    }
    if let Some(special) = special(f) {
        return special.to_owned();
    }
    let (digits, dp) = shortest_digits(f);
    exponent_form(f, &digits, dp - 1, min_exp_digits)
}

/// Go's spelling of zero and the non-finite values.
fn special(f: f64) -> Option<&'static str> {
    if f.is_nan() {
        Some("NaN")
    } else if f.is_infinite() {
        Some(if f > 0.0 { "+Inf" } else { "-Inf" })
    } else if f == 0.0 {
        Some(if f.is_sign_negative() { "-0" } else { "0" })
    } else {
        None
    }
}

fn sign(f: f64) -> &'static str {
    if f.is_sign_negative() { "-" } else { "" }
}

/// `d.ddde±XX`.
fn exponent_form(f: f64, digits: &str, exp: i32, min_exp_digits: usize) -> String {
    let (first, rest) = digits.split_at(1);
    let point = if rest.is_empty() { "" } else { "." };
    let exp_sign = if exp < 0 { '-' } else { '+' };
    let exp = exp.unsigned_abs();
    format!(
        "{}{first}{point}{rest}e{exp_sign}{exp:0>min_exp_digits$}",
        sign(f)
    )
}

/// Shortest decimal digits of `f` (no sign) and the decimal exponent `dp` such that
/// `|f| = 0.d1d2d3... × 10^dp`, as Go's `strconv` computes them. `f` is finite and not zero.
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    (digits, exp + 1)
}

/// Digits placed around the decimal point at position `dp`.
fn fixed(digits: &str, dp: i32) -> String {
    let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let zeros = |count: i32| "0".repeat(usize::try_from(count).unwrap_or(0));
    if dp <= 0 {
        format!("0.{}{digits}", zeros(-dp))
    } else if dp >= n {
        format!("{digits}{}", zeros(dp - n))
    } else {
        let (int, frac) = digits.split_at(usize::try_from(dp).unwrap_or(0));
        format!("{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_prints_as_fmt_v_does() {
        // fmt.Sprint(float64(x)) in Go 1.2x.
        assert_eq!(format_float_g(8080.0), "8080");
        assert_eq!(format_float_g(1.5), "1.5");
        assert_eq!(format_float_g(0.1), "0.1");
        assert_eq!(format_float_g(1e6), "1e+06");
        assert_eq!(format_float_g(123456.0), "123456");
        assert_eq!(format_float_g(1234567.0), "1.234567e+06");
        assert_eq!(format_float_g(0.0001), "0.0001");
        assert_eq!(format_float_g(0.00001), "1e-05");
        assert_eq!(format_float_g(-2.5), "-2.5");
        assert_eq!(format_float_g(1e100), "1e+100");
        assert_eq!(format_float_g(-0.0), "-0");
        assert_eq!(format_float_g(f64::NAN), "NaN");
        assert_eq!(format_float_g(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn f_never_uses_an_exponent() {
        assert_eq!(format_float_f(1e21), "1000000000000000000000");
        assert_eq!(format_float_f(123.45), "123.45");
        assert_eq!(format_float_f(123.0), "123");
        assert_eq!(format_float_f(1.5e-7), "0.00000015");
        assert_eq!(format_float_f(f64::INFINITY), "+Inf");
    }

    #[test]
    fn e_writes_at_least_the_asked_exponent_digits() {
        assert_eq!(format_float_e(1e21, 2), "1e+21");
        assert_eq!(format_float_e(1.5e-7, 2), "1.5e-07");
        assert_eq!(format_float_e(1.5e-7, 1), "1.5e-7");
        assert_eq!(format_float_e(-2.5e100, 2), "-2.5e+100");
        assert_eq!(format_float_e(0.0, 2), "0e+00");
    }
}
