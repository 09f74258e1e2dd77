//! sprig's string, encoding, hash and path functions, and ESO's `filterPEM`.
//!
//! Go slices strings by byte; where a Go function can cut a UTF-8 sequence, the cut bytes are
//! read lossily (U+FFFD) rather than emitted raw.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use gotmpl::Value;
use sha2::Digest as _;

use super::{Args, R, b, s, strings};
use crate::budget;
use crate::go;

fn bytes_lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `s[a:b]` on bytes, or Go's panic as an error.
fn byte_slice(s: &str, a: i64, b: i64) -> Result<String, String> {
    let len = s.len() as i64;
    if a < 0 || b < a || b > len {
        return Err(format!(
            "slice bounds out of range [{a}:{b}] with length {len}"
        ));
    }
    Ok(bytes_lossy(&s.as_bytes()[a as usize..b as usize]))
}

/// goutils.AbbreviateFull.
fn abbreviate_full(s: &str, offset: i64, max_width: i64) -> Result<String, String> {
    if s.is_empty() {
        return Ok(String::new());
    }
    if max_width < 4 {
        return Err("minimum abbreviation width is 4".to_owned());
    }
    let len = s.len() as i64;
    if len <= max_width {
        return Ok(s.to_owned());
    }
    let mut offset = offset.min(len);
    if len - offset < max_width - 3 {
        offset = len - (max_width - 3);
    }
    if offset <= 4 {
        return Ok(byte_slice(s, 0, max_width - 3)? + "...");
    }
    if max_width < 7 {
        return Err("minimum abbreviation width with offset is 7".to_owned());
    }
    if offset + max_width - 3 < len {
        let tail = byte_slice(s, offset, len)?;
        return Ok(format!("...{}", abbreviate_full(&tail, 0, max_width - 3)?));
    }
    Ok(format!("...{}", byte_slice(s, len - (max_width - 3), len)?))
}

pub(crate) fn abbrev(a: &Args) -> R {
    a.exactly(2)?;
    let (width, text) = (a.int(0)?, a.str(1)?);
    if width < 4 {
        return s(text);
    }
    s(abbreviate_full(text, 0, width).unwrap_or_default())
}

pub(crate) fn abbrevboth(a: &Args) -> R {
    a.exactly(3)?;
    let (left, right, text) = (a.int(0)?, a.int(1)?, a.str(2)?);
    if right < 4 || (left > 0 && right < 7) {
        return s(text);
    }
    s(abbreviate_full(text, left, right).unwrap_or_default())
}

pub(crate) fn trunc(a: &Args) -> R {
    a.exactly(2)?;
    let (c, text) = (a.int(0)?, a.str(1)?);
    let len = text.len() as i64;
    if c < 0 && len + c > 0 {
        return s(byte_slice(text, len + c, len)?);
    }
    if c >= 0 && len > c {
        return s(byte_slice(text, 0, c)?);
    }
    s(text)
}

pub(crate) fn trim(a: &Args) -> R {
    a.exactly(1)?;
    s(a.str(0)?.trim())
}

/// Go maps case rune by rune; a rune whose full mapping is several runes stays as it is.
fn map_case(text: &str, upper: bool) -> String {
    text.chars()
        .map(|c| {
            let mut m: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            if m.len() == 1 { m.remove(0) } else { c }
        })
        .collect()
}

pub(crate) fn upper(a: &Args) -> R {
    a.exactly(1)?;
    s(map_case(a.str(0)?, true))
}

pub(crate) fn lower(a: &Args) -> R {
    a.exactly(1)?;
    s(map_case(a.str(0)?, false))
}

/// strings.Title's word boundary.
fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphanumeric() {
        return false;
    }
    c.is_whitespace()
}

pub(crate) fn title(a: &Args) -> R {
    a.exactly(1)?;
    let mut prev = ' ';
    let out: String = a
        .str(0)?
        .chars()
        .map(|c| {
            let r = if is_separator(prev) {
                map_case(&c.to_string(), true)
            } else {
                c.to_string()
            };
            prev = c;
            r
        })
        .collect();
    s(out)
}

pub(crate) fn untitle(a: &Args) -> R {
    a.exactly(1)?;
    let mut gap = true;
    let out: String = a
        .str(0)?
        .chars()
        .map(|c| {
            let r = if gap && !c.is_whitespace() {
                map_case(&c.to_string(), false)
            } else {
                c.to_string()
            };
            gap = c.is_whitespace();
            r
        })
        .collect();
    s(out)
}

/// goutils' `SwapCase`: upper and title case to lower, lower case to upper (to title case
/// after a space or at the start), on runes (`[]rune` reads an invalid byte as U+FFFD).
pub(crate) fn swapcase(a: &Args) -> R {
    use super::unicode::{is_lower, is_title, is_upper, to_lower, to_title, to_upper};
    a.exactly(1)?;
    let text = crate::bytes::decode(a.str(0)?);
    let mut out = String::with_capacity(text.len());
    let mut after_space = true;
    for chunk in text.utf8_chunks() {
        let invalid = chunk.invalid().iter().map(|_| char::REPLACEMENT_CHARACTER);
        for c in chunk.valid().chars().chain(invalid) {
            out.push(if is_upper(c) || is_title(c) {
                after_space = false;
                to_lower(c)
            } else if is_lower(c) {
                let swapped = if after_space {
                    to_title(c)
                } else {
                    to_upper(c)
                };
                after_space = false;
                swapped
            } else {
                after_space = c.is_whitespace();
                c
            });
        }
    }
    s(out)
}

pub(crate) fn substr(a: &Args) -> R {
    a.exactly(3)?;
    let (start, end, text) = (a.int(0)?, a.int(1)?, a.str(2)?);
    let len = text.len() as i64;
    if start < 0 {
        return s(byte_slice(text, 0, end)?);
    }
    if end < 0 || end > len {
        return s(byte_slice(text, start, len)?);
    }
    s(byte_slice(text, start, end)?)
}

pub(crate) fn repeat(a: &Args) -> R {
    a.exactly(2)?;
    let (count, text) = (a.int(0)?, a.str(1)?);
    if count < 0 {
        return Err("strings: negative Repeat count".to_owned());
    }
    budget::ensure_size((count as usize).saturating_mul(text.len()))?;
    s(text.repeat(count as usize))
}

pub(crate) fn trim_all(a: &Args) -> R {
    a.exactly(2)?;
    let (cutset, text) = (a.str(0)?, a.str(1)?);
    s(text.trim_matches(|c| cutset.contains(c)))
}

pub(crate) fn trim_suffix(a: &Args) -> R {
    a.exactly(2)?;
    let (suffix, text) = (a.str(0)?, a.str(1)?);
    s(text.strip_suffix(suffix).unwrap_or(text))
}

pub(crate) fn trim_prefix(a: &Args) -> R {
    a.exactly(2)?;
    let (prefix, text) = (a.str(0)?, a.str(1)?);
    s(text.strip_prefix(prefix).unwrap_or(text))
}

pub(crate) fn nospace(a: &Args) -> R {
    a.exactly(1)?;
    s(a.str(0)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>())
}

/// goutils.Initials: the first byte after each run of spaces (byte-wise, as goutils reads).
pub(crate) fn initials(a: &Args) -> R {
    a.exactly(1)?;
    let mut out = String::new();
    let mut gap = true;
    for b in a.str(0)?.bytes() {
        let c = char::from(b);
        if c.is_whitespace() {
            gap = true;
        } else if gap {
            out.push(c);
            gap = false;
        }
    }
    s(out)
}

fn random_from(a: &Args, alphabet: &[u8]) -> R {
    a.exactly(1)?;
    let count = a.int(0)?;
    if count < 0 {
        return Err("count must be non-negative".to_owned());
    }
    let count = count as usize;
    budget::ensure_size(count)?;
    let mut out = String::with_capacity(count);
    let mut buf = [0u8; 64];
    // Rejection sampling: no modulo bias.
    let limit = 256 - 256 % alphabet.len();
    while out.len() < count {
        getrandom::fill(&mut buf).map_err(|_| "no randomness available".to_owned())?;
        for &b in &buf {
            if (b as usize) < limit && out.len() < count {
                out.push(char::from(alphabet[b as usize % alphabet.len()]));
            }
        }
    }
    s(out)
}

const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";

pub(crate) fn rand_alpha_num(a: &Args) -> R {
    random_from(
        a,
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    )
}

pub(crate) fn rand_alpha(a: &Args) -> R {
    random_from(a, ALPHA)
}

pub(crate) fn rand_numeric(a: &Args) -> R {
    random_from(a, DIGITS)
}

/// goutils.CryptoRandomAscii: printable ASCII, space to tilde.
pub(crate) fn rand_ascii(a: &Args) -> R {
    let printable: Vec<u8> = (b' '..=b'~').collect();
    random_from(a, &printable)
}

pub(crate) fn rand_bytes(a: &Args) -> R {
    a.exactly(1)?;
    let count = a.int(0)?;
    if count < 0 {
        return Err("count must be non-negative".to_owned());
    }
    budget::ensure_size((count as usize).saturating_mul(2))?;
    let mut buf = vec![0u8; count as usize];
    getrandom::fill(&mut buf).map_err(|_| "no randomness available".to_owned())?;
    s(base64::engine::general_purpose::STANDARD.encode(buf))
}

pub(crate) fn uuidv4(a: &Args) -> R {
    a.exactly(0)?;
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| "no randomness available".to_owned())?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    s(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

pub(crate) fn contains(a: &Args) -> R {
    a.exactly(2)?;
    Ok(Value::Bool(a.str(1)?.contains(a.str(0)?)))
}

pub(crate) fn has_prefix(a: &Args) -> R {
    a.exactly(2)?;
    Ok(Value::Bool(a.str(1)?.starts_with(a.str(0)?)))
}

pub(crate) fn has_suffix(a: &Args) -> R {
    a.exactly(2)?;
    Ok(Value::Bool(a.str(1)?.ends_with(a.str(0)?)))
}

pub(crate) fn quote(a: &Args) -> R {
    let parts: Vec<String> =
        a.v.iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| go::quote(&go::strval(v)))
            .collect();
    s(parts.join(" "))
}

pub(crate) fn squote(a: &Args) -> R {
    let parts: Vec<String> =
        a.v.iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| format!("'{}'", go::strval(v)))
            .collect();
    s(parts.join(" "))
}

pub(crate) fn cat(a: &Args) -> R {
    let parts: Vec<String> =
        a.v.iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(go::strval)
            .collect();
    s(parts.join(" "))
}

fn indent_by(spaces: i64, text: &str) -> Result<String, String> {
    if spaces < 0 {
        return Err("strings: negative Repeat count".to_owned());
    }
    let lines = text.matches('\n').count() + 1;
    budget::ensure_size(
        (spaces as usize)
            .saturating_mul(lines)
            .saturating_add(text.len()),
    )?;
    let pad = " ".repeat(spaces as usize);
    Ok(format!("{pad}{}", text.replace('\n', &format!("\n{pad}"))))
}

pub(crate) fn indent(a: &Args) -> R {
    a.exactly(2)?;
    s(indent_by(a.int(0)?, a.str(1)?)?)
}

pub(crate) fn nindent(a: &Args) -> R {
    a.exactly(2)?;
    s(format!("\n{}", indent_by(a.int(0)?, a.str(1)?)?))
}

pub(crate) fn replace(a: &Args) -> R {
    a.exactly(3)?;
    let (old, new, src) = (a.str(0)?, a.str(1)?, a.str(2)?);
    let n = if old.is_empty() {
        src.chars().count() + 1
    } else {
        src.matches(old).count()
    };
    budget::ensure_size(src.len().saturating_add(n.saturating_mul(new.len())))?;
    s(src.replace(old, new))
}

pub(crate) fn plural(a: &Args) -> R {
    a.exactly(3)?;
    let (one, many, count) = (a.str(0)?, a.str(1)?, a.int(2)?);
    s(if count == 1 { one } else { many })
}

fn hex(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() * 2);
    for byte in b {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

pub(crate) fn sha1sum(a: &Args) -> R {
    a.exactly(1)?;
    s(hex(&sha1::Sha1::digest(a.bytes(0)?)))
}

pub(crate) fn sha256sum(a: &Args) -> R {
    a.exactly(1)?;
    s(hex(&sha2::Sha256::digest(a.bytes(0)?)))
}

pub(crate) fn sha512sum(a: &Args) -> R {
    a.exactly(1)?;
    s(hex(&sha2::Sha512::digest(a.bytes(0)?)))
}

/// hash/adler32, printed in decimal.
pub(crate) fn adler32sum(a: &Args) -> R {
    a.exactly(1)?;
    let (mut x, mut y) = (1u32, 0u32);
    for &byte in a.bytes(0)?.iter() {
        x = (x + u32::from(byte)) % 65521;
        y = (y + x) % 65521;
    }
    s(((y << 16) | x).to_string())
}

pub(crate) fn to_string(a: &Args) -> R {
    a.exactly(1)?;
    s(go::strval(a.any(0)))
}

/// strings.Split: an empty separator splits after each UTF-8 sequence.
fn go_split(text: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let limit = if n < 0 { usize::MAX } else { n as usize };
    if sep.is_empty() {
        let chars: Vec<char> = text.chars().collect();
        let mut out: Vec<String> = Vec::new();
        for (i, c) in chars.iter().enumerate() {
            if out.len() + 1 == limit {
                out.push(chars[i..].iter().collect());
                return out;
            }
            out.push(c.to_string());
        }
        return out;
    }
    text.splitn(limit, sep).map(str::to_owned).collect()
}

fn numbered(parts: Vec<String>) -> R {
    let map: BTreeMap<Arc<str>, Value> = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| (Arc::from(format!("_{i}")), Value::from(p)))
        .collect();
    Ok(Value::Map(Arc::new(map)))
}

pub(crate) fn split(a: &Args) -> R {
    a.exactly(2)?;
    numbered(go_split(a.str(1)?, a.str(0)?, -1))
}

pub(crate) fn splitn(a: &Args) -> R {
    a.exactly(3)?;
    numbered(go_split(a.str(2)?, a.str(0)?, a.int(1)?))
}

pub(crate) fn split_list(a: &Args) -> R {
    a.exactly(2)?;
    strings(go_split(a.str(1)?, a.str(0)?, -1))
}

/// sprig's `strslice`: a list's non-nil elements as strings; nil is empty; anything else is a
/// one-element list.
pub(crate) fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l
            .iter()
            .filter(|i| !matches!(i, Value::Nil))
            .map(go::strval)
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![go::strval(other)],
    }
}

pub(crate) fn to_strings(a: &Args) -> R {
    a.exactly(1)?;
    strings(strslice(a.any(0)))
}

pub(crate) fn join(a: &Args) -> R {
    a.exactly(2)?;
    s(strslice(a.any(1)).join(a.str(0)?))
}

pub(crate) fn sort_alpha(a: &Args) -> R {
    a.exactly(1)?;
    match a.any(0) {
        v @ Value::List(_) => {
            let mut items = strslice(v);
            items.sort();
            strings(items)
        }
        other => strings([go::strval(other)]),
    }
}

/// goutils.WrapCustom (byte offsets, as goutils works).
fn wrap_custom(text: &str, width: i64, newline: &str, long_words: bool) -> String {
    let newline = if newline.is_empty() { "\n" } else { newline };
    let width = width.max(1) as usize;
    let b = text.as_bytes();
    let len = b.len();
    let mut offset = 0usize;
    let mut out: Vec<u8> = Vec::new();
    while len - offset > width {
        if b[offset] == b' ' {
            offset += 1;
            continue;
        }
        let end = (width + offset + 1).min(len);
        match b[offset..end].iter().rposition(|&c| c == b' ') {
            Some(i) => {
                out.extend_from_slice(&b[offset..offset + i]);
                out.extend_from_slice(newline.as_bytes());
                offset += i + 1;
            }
            None if long_words => {
                out.extend_from_slice(&b[offset..offset + width]);
                out.extend_from_slice(newline.as_bytes());
                offset += width;
            }
            None => {
                let end = width + offset;
                match b[end..].iter().position(|&c| c == b' ') {
                    None => {
                        out.extend_from_slice(&b[offset..]);
                        offset = len;
                    }
                    Some(i) => {
                        out.extend_from_slice(&b[offset..end + i]);
                        out.extend_from_slice(newline.as_bytes());
                        offset = end + i + 1;
                    }
                }
            }
        }
    }
    out.extend_from_slice(&b[offset..]);
    bytes_lossy(&out)
}

pub(crate) fn wrap(a: &Args) -> R {
    a.exactly(2)?;
    let text = a.str(1)?;
    budget::ensure_size(text.len().saturating_mul(2))?;
    s(wrap_custom(text, a.int(0)?, "\n", false))
}

pub(crate) fn wrap_with(a: &Args) -> R {
    a.exactly(3)?;
    let (sep, text) = (a.str(1)?, a.str(2)?);
    budget::ensure_size(text.len().saturating_mul(sep.len().max(1) + 1))?;
    s(wrap_custom(text, a.int(0)?, sep, true))
}

pub(crate) fn b64enc(a: &Args) -> R {
    a.exactly(1)?;
    s(base64::engine::general_purpose::STANDARD.encode(a.bytes(0)?))
}

/// Go's `base64.StdEncoding`: padding required, `\r` and `\n` skipped, trailing bits ignored.
pub(crate) fn std_base64_decode(text: &str) -> Result<Vec<u8>, String> {
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
    );
    let cleaned: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    ENGINE.decode(cleaned.as_bytes()).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(i, _)
            | base64::DecodeError::InvalidLastSymbol(i, _) => i,
            base64::DecodeError::InvalidLength(n) => n - n % 4,
            base64::DecodeError::InvalidPadding => cleaned.trim_end_matches('=').len(),
        };
        format!("illegal base64 data at input byte {at}")
    })
}

/// ESO's vendored sprig returns the decoder's error text as the value.
pub(crate) fn b64dec(a: &Args) -> R {
    a.exactly(1)?;
    match std_base64_decode(a.str(0)?) {
        Ok(decoded) => b(&decoded),
        Err(e) => s(e),
    }
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

pub(crate) fn b32enc(a: &Args) -> R {
    a.exactly(1)?;
    let data = a.bytes(0)?;
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(char::from(B32[((bits >> (35 - i * 5)) & 31) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    s(out)
}

/// Go's `base32.StdEncoding.DecodeString`, with its error text as the value.
pub(crate) fn b32dec(a: &Args) -> R {
    a.exactly(1)?;
    let text: Vec<u8> = a
        .bytes(0)?
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    if !text.len().is_multiple_of(8) {
        return s(format!(
            "illegal base32 data at input byte {}",
            text.len() - text.len() % 8
        ));
    }
    let mut out = Vec::new();
    for (ci, chunk) in text.chunks(8).enumerate() {
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        let data_len = 8 - pad;
        let bytes = match data_len {
            8 => 5,
            7 => 4,
            5 => 3,
            4 => 2,
            2 => 1,
            _ => {
                return s(format!(
                    "illegal base32 data at input byte {}",
                    ci * 8 + data_len
                ));
            }
        };
        if pad > 0 && ci + 1 != text.len() / 8 {
            return s(format!(
                "illegal base32 data at input byte {}",
                ci * 8 + data_len
            ));
        }
        let mut bits = 0u64;
        for (i, &c) in chunk[..data_len].iter().enumerate() {
            let Some(v) = B32.iter().position(|&x| x == c) else {
                return s(format!("illegal base32 data at input byte {}", ci * 8 + i));
            };
            bits |= (v as u64) << (35 - i * 5);
        }
        for i in 0..bytes {
            out.push((bits >> (32 - i * 8)) as u8);
        }
    }
    b(&out)
}

/// encoding/hex, with its error text as the value.
pub(crate) fn hexdec(a: &Args) -> R {
    a.exactly(1)?;
    let text = a.bytes(0)?;
    let mut out = Vec::with_capacity(text.len() / 2);
    let val = |c: u8| (c as char).to_digit(16);
    for (i, pair) in text.chunks(2).enumerate() {
        let Some(hi) = val(pair[0]) else {
            return s(format!("encoding/hex: invalid byte: {}", go_rune(pair[0])));
        };
        if pair.len() < 2 {
            return s("encoding/hex: odd length hex string");
        }
        let Some(lo) = val(pair[1]) else {
            return s(format!("encoding/hex: invalid byte: {}", go_rune(pair[1])));
        };
        let _ = i;
        out.push((hi * 16 + lo) as u8);
    }
    b(&out)
}

/// Go's `%#U` of a byte.
fn go_rune(b: u8) -> String {
    format!("U+{:04X} {:?}", b, char::from(b)).replace('"', "'")
}

/// path.Clean: lexical processing of `/`-separated paths.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

pub(crate) fn path_clean(a: &Args) -> R {
    a.exactly(1)?;
    s(clean(a.str(0)?))
}

pub(crate) fn path_base(a: &Args) -> R {
    a.exactly(1)?;
    let p = a.str(0)?;
    if p.is_empty() {
        return s(".");
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return s("/");
    }
    s(trimmed.rsplit('/').next().unwrap_or(trimmed))
}

pub(crate) fn path_dir(a: &Args) -> R {
    a.exactly(1)?;
    let p = a.str(0)?;
    let dir = p.rfind('/').map_or("", |i| &p[..=i]);
    s(clean(dir))
}

pub(crate) fn path_ext(a: &Args) -> R {
    a.exactly(1)?;
    let p = a.str(0)?;
    for (i, c) in p.char_indices().rev() {
        match c {
            '/' => break,
            '.' => return s(&p[i..]),
            _ => {}
        }
    }
    s("")
}

pub(crate) fn path_is_abs(a: &Args) -> R {
    a.exactly(1)?;
    Ok(Value::Bool(a.str(0)?.starts_with('/')))
}

/// One PEM block as Go's encoding/pem reads it.
pub(crate) struct PemBlock {
    pub kind: String,
    pub headers: BTreeMap<String, String>,
    pub bytes: Vec<u8>,
}

/// Go's `getLine`: up to `\n`, trailing spaces, tabs and `\r` trimmed.
fn get_line(data: &[u8]) -> (&[u8], &[u8]) {
    let (line, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[data.len()..]),
    };
    let end = line
        .iter()
        .rposition(|&b| !matches!(b, b' ' | b'\t' | b'\r'))
        .map_or(0, |i| i + 1);
    (&line[..end], rest)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// encoding/pem.Decode: the first block and the rest, or `None` and the input.
pub(crate) fn pem_decode(data: &[u8]) -> (Option<PemBlock>, &[u8]) {
    const START: &[u8] = b"\n-----BEGIN ";
    const END: &[u8] = b"\n-----END ";
    const EOL: &[u8] = b"-----";
    let mut rest = data;
    loop {
        if rest.starts_with(&START[1..]) {
            rest = &rest[START.len() - 1..];
        } else if let Some(i) = find(rest, START) {
            rest = &rest[i + START.len()..];
        } else {
            return (None, data);
        }
        let (type_line, after) = get_line(rest);
        rest = after;
        let Some(kind) = type_line.strip_suffix(EOL) else {
            continue;
        };
        let mut headers = BTreeMap::new();
        loop {
            if rest.is_empty() {
                return (None, data);
            }
            let (line, next) = get_line(rest);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                break;
            };
            let key = String::from_utf8_lossy(&line[..colon]).trim().to_owned();
            let val = String::from_utf8_lossy(&line[colon + 1..])
                .trim()
                .to_owned();
            headers.insert(key, val);
            rest = next;
        }
        let (end_index, trailer_index) = if headers.is_empty() && rest.starts_with(&END[1..]) {
            (0, END.len() - 1)
        } else {
            match find(rest, END) {
                Some(i) => (i, i + END.len()),
                None => continue,
            }
        };
        let trailer = &rest[trailer_index..];
        let trailer_len = kind.len() + EOL.len();
        if trailer.len() < trailer_len {
            continue;
        }
        let (end_trailer, rest_of_line) = trailer.split_at(trailer_len);
        if !end_trailer.starts_with(kind) || !end_trailer.ends_with(EOL) {
            continue;
        }
        if !get_line(rest_of_line).0.is_empty() {
            continue;
        }
        let b64: String = rest[..end_index]
            .iter()
            .filter(|b| !matches!(b, b' ' | b'\t'))
            .map(|&b| char::from(b))
            .collect();
        let Ok(bytes) = std_base64_decode(&b64) else {
            continue;
        };
        let (_, after_block) = get_line(&rest[end_index + END.len() - 1..]);
        return (
            Some(PemBlock {
                kind: String::from_utf8_lossy(kind).into_owned(),
                headers,
                bytes,
            }),
            after_block,
        );
    }
}

/// encoding/pem.Encode: `Proc-Type` first, other headers sorted, 64-column base64.
pub(crate) fn pem_encode(block: &PemBlock) -> String {
    let mut out = format!("-----BEGIN {}-----\n", block.kind);
    if !block.headers.is_empty() {
        if let Some(v) = block.headers.get("Proc-Type") {
            let _ = writeln!(out, "Proc-Type: {v}");
        }
        for (k, v) in &block.headers {
            if k != "Proc-Type" {
                let _ = writeln!(out, "{k}: {v}");
            }
        }
        out.push('\n');
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&block.bytes);
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {}-----", block.kind);
    out
}

/// ESO's `filterPEM(type, input)`: the blocks of `type` (case-insensitive), re-encoded, in order.
pub(crate) fn filter_pem(a: &Args) -> R {
    a.exactly(2)?;
    let (kind, input) = (a.str(0)?, a.str(1)?);
    let input = input.find("-----BEGIN").map_or(input, |i| &input[i..]);
    let mut data = input.as_bytes();
    let mut out = String::new();
    let mut rest: &[u8];
    loop {
        let (block, r) = pem_decode(data);
        rest = r;
        data = r;
        let Some(block) = block else { break };
        if block.kind.eq_ignore_ascii_case(kind) {
            out.push_str(&pem_encode(&block));
        }
    }
    if out.is_empty() && !rest.is_empty() {
        return Err("error filtering pem: found junk".to_owned());
    }
    s(out)
}
