//! sprig's case functions and `shuffle`, ports of huandu/xstrings v1.5.0 (the version ESO's
//! go.mod pins): `snakecase` (`ToSnakeCase`), `kebabcase` (`ToKebabCase`), `camelcase`
//! (`ToPascalCase`: sprig's `camelcase` upper-cases the first word) and `shuffle` (`Shuffle`).
//!
//! xstrings walks Go strings rune by rune with `utf8.DecodeRuneInString`, so these work on the
//! bytes Go holds: an invalid byte is a `RuneError` of width 1, written back raw where xstrings
//! copies a word and as U+FFFD where it writes the rune. Character classes and case mappings
//! are Go's `unicode` package's ([`super::unicode`]).

use super::unicode::{
    RUNE_ERROR, decode_rune, is_letter, is_number, is_punct, is_upper, to_lower, to_upper,
    write_rune,
};
use super::{Args, R, b};
use crate::bytes;

fn is_connector(r: char) -> bool {
    r == '-' || r == '_' || r.is_whitespace()
}

const MIN_CJK: char = '\u{3400}';

/// xstrings' `isAlphabet`: a letter, but not a CJK ideograph.
fn is_alphabet(r: char) -> bool {
    if !is_letter(r) {
        return false;
    }
    !(r >= MIN_CJK
        && (('\u{4E00}'..='\u{9FCC}').contains(&r)
            || ('\u{3400}'..='\u{4D85}').contains(&r)
            || ('\u{20000}'..='\u{2B81D}').contains(&r)))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Word {
    Invalid,
    Number,
    UpperCase,
    Alphabet,
    Connector,
    Punct,
    Other,
}

/// xstrings' `nextValidRune`: the next rune that is not a `RuneError`, and the bytes up to and
/// including it; `prev` and every byte if there is none.
fn next_valid_rune(s: &[u8], prev: char) -> (char, usize) {
    let mut size = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let (r, sz) = decode_rune(rest);
        size += sz;
        if r != RUNE_ERROR {
            return (r, size);
        }
        rest = &rest[sz..];
    }
    (prev, size)
}

/// xstrings' `nextWord`: the kind of the word at the start of `s`, the word and the rest.
fn next_word(s: &[u8]) -> (Word, &[u8], &[u8]) {
    if s.is_empty() {
        return (Word::Invalid, s, s);
    }
    let mut remaining = s;
    let (mut r, mut size) = next_valid_rune(remaining, RUNE_ERROR);
    let mut offset = size;
    if r == RUNE_ERROR {
        return (Word::Invalid, &s[..offset], &s[offset..]);
    }
    // Consumes runes while `keep` holds (nextWord's inner loops).
    let take_while =
        |remaining: &mut &[u8], offset: &mut usize, mut r: char, keep: &dyn Fn(char) -> bool| {
            while !remaining.is_empty() {
                let (next, size) = next_valid_rune(remaining, r);
                r = next;
                if !keep(r) {
                    break;
                }
                *offset += size;
                *remaining = &remaining[size..];
            }
        };
    let wt;
    if is_connector(r) {
        wt = Word::Connector;
        remaining = &remaining[size..];
        take_while(&mut remaining, &mut offset, r, &is_connector);
    } else if is_punct(r) {
        wt = Word::Punct;
        remaining = &remaining[size..];
        take_while(&mut remaining, &mut offset, r, &is_punct);
    } else if is_upper(r) {
        wt = Word::UpperCase;
        remaining = &remaining[size..];
        if !remaining.is_empty() {
            (r, size) = next_valid_rune(remaining, r);
            if is_upper(r) {
                let mut prev_size = size;
                offset += size;
                remaining = &remaining[size..];
                while !remaining.is_empty() {
                    (r, size) = next_valid_rune(remaining, r);
                    if !is_upper(r) {
                        break;
                    }
                    prev_size = size;
                    offset += size;
                    remaining = &remaining[size..];
                }
                // "HTTPStatus" is "HTTP" and "Status": the last upper-case letter starts the
                // next word.
                if !remaining.is_empty() && is_alphabet(r) {
                    offset -= prev_size;
                    remaining = &s[offset..];
                }
            } else if is_alphabet(r) {
                offset += size;
                remaining = &remaining[size..];
                take_while(&mut remaining, &mut offset, r, &|c| {
                    is_alphabet(c) && !is_upper(c)
                });
            }
        }
    } else if is_alphabet(r) {
        wt = Word::Alphabet;
        remaining = &remaining[size..];
        take_while(&mut remaining, &mut offset, r, &|c| {
            is_alphabet(c) && !is_upper(c)
        });
    } else if is_number(r) {
        wt = Word::Number;
        remaining = &remaining[size..];
        take_while(&mut remaining, &mut offset, r, &is_number);
    } else {
        wt = Word::Other;
        remaining = &remaining[size..];
        while !remaining.is_empty() {
            (r, size) = next_valid_rune(remaining, r);
            if size == 0 || is_connector(r) || is_alphabet(r) || is_number(r) || is_punct(r) {
                break;
            }
            offset += size;
            remaining = &remaining[size..];
        }
    }
    (wt, &s[..offset], remaining)
}

/// xstrings' `toLower`: upper-case and connector words rune by rune, the others as they are.
fn write_lower(buf: &mut Vec<u8>, wt: Word, word: &[u8], connector: char) {
    if wt != Word::UpperCase && wt != Word::Connector {
        buf.extend_from_slice(word);
        return;
    }
    let mut rest = word;
    while !rest.is_empty() {
        let (r, size) = decode_rune(rest);
        rest = &rest[size..];
        if is_connector(r) {
            write_rune(buf, connector);
        } else if is_upper(r) {
            write_rune(buf, to_lower(r));
        } else {
            write_rune(buf, r);
        }
    }
}

/// xstrings' `camelCaseToLowerCase`, behind `ToSnakeCase` and `ToKebabCase`.
fn camel_case_to_lower_case(s: &[u8], connector: char) -> Vec<u8> {
    let mut buf = Vec::with_capacity(s.len() + s.len() / 2);
    if s.is_empty() {
        return buf;
    }
    let (mut wt, mut word, mut remaining) = next_word(s);
    let words_continue = |wt: Word| wt == Word::Alphabet || wt == Word::Number;
    while !remaining.is_empty() {
        if wt != Word::Connector {
            write_lower(&mut buf, wt, word, connector);
        }
        let (prev, last) = (wt, word);
        (wt, word, remaining) = next_word(remaining);
        match prev {
            Word::Number => {
                while words_continue(wt) {
                    write_lower(&mut buf, wt, word, connector);
                    (wt, word, remaining) = next_word(remaining);
                }
                if !matches!(wt, Word::Invalid | Word::Punct | Word::Connector) {
                    write_rune(&mut buf, connector);
                }
            }
            Word::Connector => write_lower(&mut buf, prev, last, connector),
            Word::Punct => {}
            _ => {
                if wt != Word::Number {
                    if wt != Word::Connector && wt != Word::Punct {
                        write_rune(&mut buf, connector);
                    }
                    continue;
                }
                if remaining.is_empty() {
                    continue;
                }
                let number = word;
                (wt, word, remaining) = next_word(remaining);
                // A number followed by anything but letters belongs to the word before it
                // ("Bld4Floor" is "bld4_floor").
                if wt != Word::Alphabet {
                    write_lower(&mut buf, Word::Number, number, connector);
                    if wt != Word::Connector && wt != Word::Punct {
                        write_rune(&mut buf, connector);
                    }
                    continue;
                }
                // Lower-case letters after a number start a word with it ("HTTP2xx" is
                // "http_2xx").
                write_rune(&mut buf, connector);
                write_lower(&mut buf, Word::Number, number, connector);
                while words_continue(wt) {
                    write_lower(&mut buf, wt, word, connector);
                    (wt, word, remaining) = next_word(remaining);
                }
                if !matches!(wt, Word::Invalid | Word::Connector | Word::Punct) {
                    write_rune(&mut buf, connector);
                }
            }
        }
    }
    write_lower(&mut buf, wt, word, connector);
    buf
}

/// xstrings' `toCamelCase(str, isBig)`: words joined by connectors, each capitalised, the
/// first upper-cased when `big` (`ToPascalCase`).
fn to_camel_case(s: &[u8], big: bool) -> Vec<u8> {
    let mut buf = Vec::with_capacity(s.len());
    if s.is_empty() {
        return buf;
    }
    let mut rest = s;
    let mut first_upper = false;
    let (mut r0, mut size) = (RUNE_ERROR, 0);
    // Leading connectors are kept.
    while !rest.is_empty() {
        (r0, size) = decode_rune(rest);
        rest = &rest[size..];
        if !is_connector(r0) {
            first_upper = is_upper(r0);
            r0 = if big { to_upper(r0) } else { to_lower(r0) };
            break;
        }
        write_rune(&mut buf, r0);
    }
    if rest.is_empty() {
        if size != 0 {
            write_rune(&mut buf, r0);
        }
        return buf;
    }
    while !rest.is_empty() {
        let r1 = r0;
        (r0, size) = decode_rune(rest);
        rest = &rest[size..];
        if is_connector(r0) && is_connector(r1) {
            write_rune(&mut buf, r1);
            continue;
        }
        if is_connector(r1) {
            first_upper = is_upper(r0);
            r0 = to_upper(r0);
        } else {
            if first_upper {
                if is_upper(r0) {
                    r0 = to_lower(r0);
                } else {
                    first_upper = false;
                }
            }
            write_rune(&mut buf, r1);
        }
    }
    if first_upper && !big {
        r0 = to_lower(r0);
    }
    write_rune(&mut buf, r0);
    buf
}

/// `snakecase`: xstrings `ToSnakeCase`.
pub(crate) fn snakecase(a: &Args) -> R {
    a.exactly(1)?;
    b(&camel_case_to_lower_case(&a.bytes(0)?, '_'))
}

/// `kebabcase`: xstrings `ToKebabCase`.
pub(crate) fn kebabcase(a: &Args) -> R {
    a.exactly(1)?;
    b(&camel_case_to_lower_case(&a.bytes(0)?, '-'))
}

/// `camelcase`: xstrings `ToPascalCase`.
pub(crate) fn camelcase(a: &Args) -> R {
    a.exactly(1)?;
    b(&to_camel_case(&a.bytes(0)?, true))
}

/// `shuffle`: xstrings `Shuffle`, the runes in a random order (Fisher-Yates, as `math/rand`
/// drives it); invalid bytes are runes U+FFFD, as `[]rune(s)` reads them.
pub(crate) fn shuffle(a: &Args) -> R {
    a.exactly(1)?;
    let text = bytes::decode(a.str(0)?);
    let mut runes: Vec<char> = text.utf8_chunks().flat_map(chunk_runes).collect();
    for i in (1..runes.len()).rev() {
        let j = random_below(i + 1)?;
        runes.swap(i, j);
    }
    let mut out = Vec::with_capacity(text.len());
    for r in runes {
        write_rune(&mut out, r);
    }
    b(&out)
}

fn chunk_runes(chunk: std::str::Utf8Chunk<'_>) -> impl Iterator<Item = char> + '_ {
    chunk
        .valid()
        .chars()
        .chain(chunk.invalid().iter().map(|_| RUNE_ERROR))
}

/// A uniform index below `n`.
fn random_below(n: usize) -> Result<usize, String> {
    let n = n as u64;
    // Rejection sampling keeps the draw uniform.
    let zone = u64::MAX - u64::MAX % n;
    loop {
        let mut buf = [0u8; 8];
        getrandom::fill(&mut buf).map_err(|_| "no randomness available".to_owned())?;
        let v = u64::from_le_bytes(buf);
        if v < zone {
            return Ok((v % n) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snake(s: &str) -> String {
        String::from_utf8_lossy(&camel_case_to_lower_case(s.as_bytes(), '_')).into_owned()
    }

    #[test]
    fn cjk_ideographs_are_letters_but_not_alphabet() {
        assert!(is_letter('中') && !is_alphabet('中') && is_alphabet('é'));
    }

    #[test]
    fn snake_case_splits_abbreviations_before_words() {
        assert_eq!(snake("HTTPServer"), "http_server");
        assert_eq!(snake("HTTPStatus"), "http_status");
    }
}
