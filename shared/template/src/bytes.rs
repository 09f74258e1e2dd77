//! Go strings are bytes; template values here are UTF-8. A byte that is not part of valid UTF-8
//! (a decoded keystore, a raw digest) is carried as one private-use character, U+10FF00 plus
//! the byte, and turned back into that byte wherever Go would see bytes: the rendered output,
//! the encoders and the hashes. Valid characters in that range are escaped byte by byte, so every
//! byte string round-trips exactly.

use std::borrow::Cow;

const BASE: u32 = 0x10_FF00;

fn is_escape(c: char) -> bool {
    (BASE + 0x80..=BASE + 0xFF).contains(&(c as u32))
}

/// Bytes as a template string.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_escape(c) {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push(escape(b));
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            out.push(escape(b));
        }
    }
    out
}

fn escape(b: u8) -> char {
    char::from_u32(BASE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// A template string as the bytes Go would hold.
pub(crate) fn decode(s: &str) -> Cow<'_, [u8]> {
    if !s.chars().any(is_escape) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if is_escape(c) {
            out.push((c as u32 - BASE) as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_bytes_round_trip() {
        for bytes in [
            &b"plain"[..],
            &[0xff, 0x00, 0x80, b'a'],
            "é\u{10FF90}x".as_bytes(),
            &[0xf4, 0x8f, 0xbe],
        ] {
            assert_eq!(decode(&encode(bytes)).as_ref(), bytes);
        }
        assert_eq!(encode(b"plain"), "plain");
    }
}
