//! What sprig's string functions use of Go's `unicode` and `unicode/utf8`: decoding runes from
//! bytes (`utf8.DecodeRune`), the general categories (`IsUpper` is Lu, `IsLower` Ll, `IsTitle`
//! Lt, `IsLetter` L, `IsPunct` P, `IsNumber` N) and the simple case mappings (Rust's where it
//! maps one character to one, else the character itself, as Go's tables do for most).

use std::sync::LazyLock;

use regex::Regex;

pub(crate) const RUNE_ERROR: char = char::REPLACEMENT_CHARACTER;

/// `utf8.DecodeRune`: the rune at the start of `s` and its width; `(RuneError, 1)` for a byte
/// that does not start valid UTF-8, `(RuneError, 0)` for nothing.
pub(crate) fn decode_rune(s: &[u8]) -> (char, usize) {
    let Some(&first) = s.first() else {
        return (RUNE_ERROR, 0);
    };
    let width = match first {
        0x00..=0x7f => return (char::from(first), 1),
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return (RUNE_ERROR, 1),
    };
    match s.get(..width).map(std::str::from_utf8) {
        Some(Ok(text)) => (text.chars().next().unwrap_or(RUNE_ERROR), width),
        _ => (RUNE_ERROR, 1),
    }
}

/// `bytes.Buffer.WriteRune`.
pub(crate) fn write_rune(buf: &mut Vec<u8>, r: char) {
    let mut tmp = [0u8; 4];
    buf.extend_from_slice(r.encode_utf8(&mut tmp).as_bytes());
}

fn category(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|_| unreachable!("a valid Unicode class"))
}

static UPPER: LazyLock<Regex> = LazyLock::new(|| category(r"^\p{Lu}$"));
static LETTER: LazyLock<Regex> = LazyLock::new(|| category(r"^\p{L}$"));
static PUNCT: LazyLock<Regex> = LazyLock::new(|| category(r"^\p{P}$"));

fn in_class(re: &Regex, r: char) -> bool {
    let mut tmp = [0u8; 4];
    re.is_match(r.encode_utf8(&mut tmp))
}

/// `unicode.IsUpper`: category Lu.
pub(crate) fn is_upper(r: char) -> bool {
    if r.is_ascii() {
        r.is_ascii_uppercase()
    } else {
        in_class(&UPPER, r)
    }
}

/// `unicode.IsLetter`: category L.
pub(crate) fn is_letter(r: char) -> bool {
    if r.is_ascii() {
        r.is_ascii_alphabetic()
    } else {
        in_class(&LETTER, r)
    }
}

/// `unicode.IsPunct`: category P.
pub(crate) fn is_punct(r: char) -> bool {
    if r.is_ascii() {
        // ASCII punctuation less the symbols (Sm, Sc, Sk): $ + < = > ^ ` | ~
        r.is_ascii_punctuation() && !"$+<=>^`|~".contains(r)
    } else {
        in_class(&PUNCT, r)
    }
}

/// `unicode.IsNumber`: categories Nd, Nl, No (Rust's `is_numeric` is the same set).
pub(crate) fn is_number(r: char) -> bool {
    r.is_numeric()
}

/// `unicode.ToUpper` / `ToLower`: the simple mapping, where Rust's maps to one character.
pub(crate) fn to_upper(r: char) -> char {
    let mut m = r.to_uppercase();
    match (m.next(), m.next()) {
        (Some(u), None) => u,
        _ => r,
    }
}

pub(crate) fn to_lower(r: char) -> char {
    let mut m = r.to_lowercase();
    match (m.next(), m.next()) {
        (Some(l), None) => l,
        _ => r,
    }
}

static LOWER: LazyLock<Regex> = LazyLock::new(|| category(r"^\p{Ll}$"));
static TITLE: LazyLock<Regex> = LazyLock::new(|| category(r"^\p{Lt}$"));

/// `unicode.IsLower`: category Ll.
pub(crate) fn is_lower(r: char) -> bool {
    if r.is_ascii() {
        r.is_ascii_lowercase()
    } else {
        in_class(&LOWER, r)
    }
}

/// `unicode.IsTitle`: category Lt.
pub(crate) fn is_title(r: char) -> bool {
    !r.is_ascii() && in_class(&TITLE, r)
}

/// `unicode.ToTitle`: the upper case, except for the four digraphs with a title case.
pub(crate) fn to_title(r: char) -> char {
    match r {
        '\u{1C4}'..='\u{1C6}' => '\u{1C5}',
        '\u{1C7}'..='\u{1C9}' => '\u{1C8}',
        '\u{1CA}'..='\u{1CC}' => '\u{1CB}',
        '\u{1F1}'..='\u{1F3}' => '\u{1F2}',
        _ => to_upper(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bytes_are_runes_of_width_one() {
        assert_eq!(decode_rune(b"\xffa"), (RUNE_ERROR, 1));
        assert_eq!(decode_rune(b"\xe4\xb8"), (RUNE_ERROR, 1));
        assert_eq!(decode_rune("é".as_bytes()), ('é', 2));
        assert_eq!(decode_rune(b""), (RUNE_ERROR, 0));
    }

    #[test]
    fn go_categories_tell_punctuation_from_symbols() {
        assert!(is_punct('/') && is_punct('%') && is_punct('('));
        assert!(!is_punct('$') && !is_punct('+') && !is_punct('|'));
        assert!(is_upper('É') && !is_upper('é') && is_letter('中'));
        // Circled letters are upper case to Rust, a symbol (So) to Go.
        assert!(!is_upper('Ⓐ') && !is_lower('ⓐ'));
        assert!(is_title('ǅ') && to_title('ǆ') == 'ǅ' && to_title('a') == 'A');
    }
}
