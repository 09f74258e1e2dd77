//! Secret key conversion and validation (R: `runtime/esutils/utils.go` `ConvertKeys`,
//! `transformKeys`, `ValidateKeys`).
//!
//! One deliberate difference: ESO treats every Unicode letter and digit as valid
//! (`unicode.IsLetter`, `unicode.IsNumber`), so a key such as `café` passes its checks and the
//! API server then rejects the Secret. Here the valid set is the API server's own,
//! `[-._a-zA-Z0-9]`: `Default` turns `é` into `_`, `Unicode` into `_U00e9_`, and validation
//! reports it before anything is written.

use std::collections::BTreeMap;
use std::fmt;

use secret_sync_crd::ConversionStrategy;
use secret_sync_providers::SecretBytes;

/// The longest key a Secret accepts.
pub(crate) const MAX_KEY_LEN: usize = 253;

/// Whether `c` may appear in a Secret key.
pub(crate) fn is_valid_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
}

/// `key` with every character a Secret does not allow replaced per `strategy`.
pub(crate) fn convert_key(strategy: ConversionStrategy, key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if is_valid_key_char(c) {
            out.push(c);
        } else {
            match strategy {
                ConversionStrategy::Default => out.push('_'),
                // Go's `fmt.Sprintf("_U%04x_", rv)`: lower-case hex, at least four digits.
                ConversionStrategy::Unicode => out.push_str(&format!("_U{:04x}_", u32::from(c))),
            }
        }
    }
    out
}

/// ESO's `ReverseKey` for `ReverseUnicode`: every `_UXXXX_` (4 or 5 hex digits) becomes the
/// character it names, so a key written by the `Unicode` conversion reads as the original. An
/// escape that names no character (a surrogate) becomes U+FFFD, as Go's `%c` prints it.
pub fn reverse_unicode(key: &str) -> String {
    static ESCAPE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new("_U([0-9a-fA-F]{4,5})_").expect("a valid pattern")
    });
    ESCAPE
        .replace_all(key, |c: &regex::Captures<'_>| {
            u32::from_str_radix(&c[1], 16)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or(char::REPLACEMENT_CHARACTER)
                .to_string()
        })
        .into_owned()
}

/// Converts every key of `map`. Two keys converting to the same key is an error naming it
/// (ESO: "secret name collision during conversion: %s").
pub(crate) fn convert_keys(
    strategy: ConversionStrategy,
    map: BTreeMap<String, SecretBytes>,
) -> Result<BTreeMap<String, SecretBytes>, String> {
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let converted = convert_key(strategy, &key);
        if out.contains_key(&converted) {
            return Err(converted);
        }
        out.insert(converted, value);
    }
    Ok(out)
}

/// Why a key cannot be a Secret key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyProblem {
    /// The key is longer than 253 bytes; `truncated` is its first 253 bytes (as in ESO).
    TooLong { len: usize, truncated: String },
    /// The key holds a character outside `[-._a-zA-Z0-9]`.
    InvalidCharacter { character: char, key: String },
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::TooLong { len, truncated } => write!(
                f,
                "key has length {len} but max is {MAX_KEY_LEN}: (following is truncated): {truncated}"
            ),
            KeyProblem::InvalidCharacter { character, key } => write!(
                f,
                "key has invalid character {character:?}, only alphanumeric, '-', '.' and '_' are allowed: {key}"
            ),
        }
    }
}

/// Drops empty keys and checks the rest. Keys are checked in sorted order, so the error is
/// deterministic (ESO's order follows Go's map iteration).
pub(crate) fn validate_keys(map: &mut BTreeMap<String, SecretBytes>) -> Result<(), KeyProblem> {
    map.remove("");
    for key in map.keys() {
        if key.len() > MAX_KEY_LEN {
            let mut end = MAX_KEY_LEN;
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            return Err(KeyProblem::TooLong {
                len: key.len(),
                truncated: key[..end].to_owned(),
            });
        }
        if let Some(character) = key.chars().find(|&c| !is_valid_key_char(c)) {
            return Err(KeyProblem::InvalidCharacter {
                character,
                key: key.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: &[&str]) -> BTreeMap<String, SecretBytes> {
        keys.iter()
            .map(|k| ((*k).to_owned(), SecretBytes::new(b"noop".to_vec())))
            .collect()
    }

    fn keys(map: &BTreeMap<String, SecretBytes>) -> Vec<&str> {
        map.keys().map(String::as_str).collect()
    }

    // ESO: runtime/esutils/utils_test.go TestConvertKeys.
    #[test]
    fn default_conversion_replaces_special_characters_with_underscores() {
        let out = convert_keys(ConversionStrategy::Default, map(&["foo$bar%baz*bing"]));
        assert_eq!(out.as_ref().map(keys), Ok(vec!["foo_bar_baz_bing"]));
    }

    #[test]
    fn default_conversion_turns_paths_into_keys() {
        let out = convert_keys(
            ConversionStrategy::Default,
            map(&["/foo/bar/baz/bing", "foo/bar/baz/bing/"]),
        );
        assert_eq!(
            out.as_ref().map(keys),
            Ok(vec!["_foo_bar_baz_bing", "foo_bar_baz_bing_"])
        );
    }

    #[test]
    fn a_collision_after_conversion_is_an_error_naming_the_key() {
        let out = convert_keys(
            ConversionStrategy::Default,
            map(&["foo$bar%baz*bing", "foo_bar_baz$bing"]),
        );
        assert_eq!(out.err().as_deref(), Some("foo_bar_baz_bing"));
    }

    #[test]
    fn unicode_conversion_spells_out_code_points() {
        let out = convert_keys(ConversionStrategy::Unicode, map(&["😀foo😁bar😂baz😈bing"]));
        assert_eq!(
            out.as_ref().map(keys),
            Ok(vec!["_U1f600_foo_U1f601_bar_U1f602_baz_U1f608_bing"])
        );
        assert_eq!(
            convert_key(ConversionStrategy::Unicode, "some-array[0].entity"),
            "some-array_U005b_0_U005d_.entity"
        );
    }

    #[test]
    fn non_ascii_letters_are_converted_because_secrets_cannot_hold_them() {
        assert_eq!(convert_key(ConversionStrategy::Default, "café"), "caf_");
        assert_eq!(
            convert_key(ConversionStrategy::Unicode, "café"),
            "caf_U00e9_"
        );
    }

    #[test]
    fn validation_drops_empty_keys() {
        let mut m = map(&["", "a"]);
        assert_eq!(validate_keys(&mut m), Ok(()));
        assert_eq!(keys(&m), ["a"]);
    }

    #[test]
    fn validation_rejects_keys_longer_than_253_bytes() {
        let long = "k".repeat(254);
        let mut m = map(&[&long, &"k".repeat(253)]);
        match validate_keys(&mut m) {
            Err(KeyProblem::TooLong { len, truncated }) => {
                assert_eq!(len, 254);
                assert_eq!(truncated.len(), 253);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn validation_rejects_characters_a_secret_cannot_hold() {
        let mut m = map(&["ok", "a/b"]);
        let err = validate_keys(&mut m);
        assert_eq!(
            err,
            Err(KeyProblem::InvalidCharacter {
                character: '/',
                key: "a/b".into()
            })
        );
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("key has invalid character '/', only alphanumeric, '-', '.' and '_' are allowed: a/b".into())
        );
        assert!(validate_keys(&mut map(&["café"])).is_err());
        assert_eq!(validate_keys(&mut map(&["a-b.c_D9"])), Ok(()));
    }
}
