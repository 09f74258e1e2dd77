//! `Password`: random passwords, as ESO makes them (sethvargo/go-password's algorithm: letters,
//! then digits, then symbols, each put at a random place; without `allowRepeat` no character
//! appears twice), one per `secretKeys` entry, then encoded.

use async_trait::async_trait;
use base64::Engine as _;
use secret_sync_crd::generators::{PasswordEncoding, PasswordSpec};
use secret_sync_providers::{ProviderError, SecretBytes};

use crate::{Context, Generated, Generator, random, typed};

const DEFAULT_LENGTH: i64 = 24;
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
/// ESO's default `symbolCharacters`.
const ESO_SYMBOLS: &str = "~!@#$%^&*()_+`-={}|[]\\:\"<>?,./";
/// go-password's own symbols, which an empty `symbolCharacters` falls back to.
const LIBRARY_SYMBOLS: &str = "!@#$%,-.";

pub(crate) struct Password;

#[async_trait]
impl Generator for Password {
    fn kind(&self) -> &'static str {
        "Password"
    }

    async fn generate(
        &self,
        spec: &serde_json::Value,
        _context: &Context,
    ) -> Result<Generated, ProviderError> {
        let spec: PasswordSpec = typed(self.kind(), spec)?;
        generate(&spec)
    }
}

fn generate(spec: &PasswordSpec) -> Result<Generated, ProviderError> {
    let length = if spec.length > 0 {
        spec.length
    } else {
        DEFAULT_LENGTH
    };
    // A quarter of the length each, truncated, as ESO computes it.
    let quarter = length / 4;
    let digits = spec.digits.unwrap_or(quarter);
    let symbols = spec.symbols.unwrap_or(quarter);
    if digits < 0 || symbols < 0 {
        return Err(invalid("digits and symbols must not be negative"));
    }
    let symbol_chars = match spec.symbol_characters.as_deref() {
        None => ESO_SYMBOLS,
        Some("") => LIBRARY_SYMBOLS,
        Some(chars) => chars,
    };
    let letters: String = if spec.no_upper {
        LOWER.to_owned()
    } else {
        format!("{LOWER}{UPPER}")
    };
    let keys: Vec<&str> = if spec.secret_keys.is_empty() {
        vec!["password"]
    } else {
        spec.secret_keys.iter().map(String::as_str).collect()
    };
    let mut unique = keys.clone();
    unique.sort_unstable();
    unique.dedup();
    if keys.iter().any(|k| k.is_empty()) || unique.len() != keys.len() {
        return Err(invalid("secretKeys must be non-empty and unique"));
    }
    let classes = Classes {
        letters: letters.chars().collect(),
        digits: DIGITS.chars().collect(),
        symbols: symbol_chars.chars().collect(),
    };
    let counts = (
        usize::try_from(length - digits - symbols)
            .map_err(|_| invalid("number of digits and symbols must be less than total length"))?,
        usize::try_from(digits).unwrap_or(0),
        usize::try_from(symbols).unwrap_or(0),
    );
    let mut out = Generated::default();
    for key in keys {
        let password = classes.password(counts, spec.allow_repeat)?;
        out.data.insert(
            key.to_owned(),
            SecretBytes::new(encode(spec.encoding, password)),
        );
    }
    Ok(out)
}

struct Classes {
    letters: Vec<char>,
    digits: Vec<char>,
    symbols: Vec<char>,
}

impl Classes {
    fn password(
        &self,
        (letters, digits, symbols): (usize, usize, usize),
        allow_repeat: bool,
    ) -> Result<String, ProviderError> {
        if !allow_repeat {
            for (wanted, class, name) in [
                (letters, &self.letters, "letters"),
                (digits, &self.digits, "digits"),
                (symbols, &self.symbols, "symbols"),
            ] {
                if wanted > class.len() {
                    return Err(invalid(format!(
                        "number of {name} exceeds available {name} and repeats are not allowed"
                    )));
                }
            }
        }
        let mut result: Vec<char> = Vec::with_capacity(letters + digits + symbols);
        for (wanted, class) in [
            (letters, &self.letters),
            (digits, &self.digits),
            (symbols, &self.symbols),
        ] {
            if wanted > 0 && class.is_empty() {
                return Err(invalid("symbolCharacters is empty but symbols are wanted"));
            }
            let mut placed = 0;
            while placed < wanted {
                let c = class[random::below(class.len())?];
                if !allow_repeat && result.contains(&c) {
                    continue;
                }
                result.insert(random::below(result.len() + 1)?, c);
                placed += 1;
            }
        }
        Ok(result.into_iter().collect())
    }
}

/// The password as `encoding` asks (ESO's: padded base64 and base32, lower-case hex; `raw`
/// unchanged).
fn encode(encoding: PasswordEncoding, password: String) -> Vec<u8> {
    let raw = password.into_bytes();
    match encoding {
        PasswordEncoding::Base64 => base64::engine::general_purpose::STANDARD
            .encode(&raw)
            .into_bytes(),
        PasswordEncoding::Base64Url => base64::engine::general_purpose::URL_SAFE
            .encode(&raw)
            .into_bytes(),
        PasswordEncoding::Base32 => data_encoding::BASE32.encode(&raw).into_bytes(),
        PasswordEncoding::Hex => data_encoding::HEXLOWER.encode(&raw).into_bytes(),
        PasswordEncoding::Raw => raw,
    }
}

fn invalid(reason: impl Into<String>) -> ProviderError {
    ProviderError::Config(format!("invalid Password spec: {}", reason.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> PasswordSpec {
        serde_json::from_value(json).expect("spec")
    }

    fn one(json: serde_json::Value) -> String {
        let out = generate(&spec(json)).expect("generate");
        String::from_utf8(out.data["password"].expose().to_vec()).expect("utf-8")
    }

    #[test]
    fn the_defaults_make_24_characters_with_6_digits_6_symbols_and_no_repeats() {
        for _ in 0..50 {
            let p = one(serde_json::json!({}));
            assert_eq!(p.chars().count(), 24);
            assert_eq!(p.chars().filter(|c| c.is_ascii_digit()).count(), 6);
            assert_eq!(p.chars().filter(|c| ESO_SYMBOLS.contains(*c)).count(), 6);
            let mut chars: Vec<char> = p.chars().collect();
            chars.sort_unstable();
            chars.dedup();
            assert_eq!(chars.len(), 24, "a character repeats");
        }
    }

    /// ESO's docs example `generator-password.yaml`: length 42, 5 digits, 5 symbols from
    /// `-_$@`, repeats allowed.
    #[test]
    fn the_docs_example_counts_hold() {
        let p = one(serde_json::json!({
            "length": 42, "digits": 5, "symbols": 5, "symbolCharacters": "-_$@",
            "noUpper": false, "allowRepeat": true
        }));
        assert_eq!(p.len(), 42);
        assert_eq!(p.chars().filter(|c| c.is_ascii_digit()).count(), 5);
        assert_eq!(p.chars().filter(|c| "-_$@".contains(*c)).count(), 5);
        assert_eq!(p.chars().filter(|c| c.is_ascii_alphabetic()).count(), 32);
    }

    #[test]
    fn no_upper_leaves_out_capitals_and_each_key_gets_its_own_password() {
        let out = generate(&spec(serde_json::json!({
            "length": 36, "noUpper": true, "secretKeys": ["key1", "key2"]
        })))
        .expect("generate");
        assert_eq!(out.data.keys().collect::<Vec<_>>(), ["key1", "key2"]);
        assert_ne!(out.data["key1"], out.data["key2"]);
        for v in out.data.values() {
            assert!(!v.expose().iter().any(u8::is_ascii_uppercase));
        }
    }

    /// ESO's docs encoding table, for `Test>>Pass??word` (its base32 sample is wrong; this is
    /// Go's `base32.StdEncoding`).
    #[test]
    fn encodings_match_go() {
        let raw = || "Test>>Pass??word".to_owned();
        use PasswordEncoding::*;
        assert_eq!(encode(Base64, raw()), b"VGVzdD4+UGFzcz8/d29yZA==");
        assert_eq!(encode(Base64Url, raw()), b"VGVzdD4-UGFzcz8_d29yZA==");
        assert_eq!(encode(Hex, raw()), b"546573743e3e506173733f3f776f7264");
        assert_eq!(encode(Base32, raw()), b"KRSXG5B6HZIGC43TH47XO33SMQ======");
        assert_eq!(encode(Raw, raw()), raw().as_bytes());
    }

    #[test]
    fn impossible_counts_are_refused_with_go_passwords_reasons() {
        let err = |json| generate(&spec(json)).expect_err("refused").to_string();
        assert!(
            err(serde_json::json!({"length": 4, "digits": 3, "symbols": 3}))
                .contains("must be less than total length")
        );
        assert!(
            err(serde_json::json!({"length": 20, "digits": 11, "symbols": 0}))
                .contains("number of digits exceeds available digits")
        );
        assert!(err(serde_json::json!({"secretKeys": ["a", "a"]})).contains("unique"));
        // With repeats allowed, 11 digits are fine.
        assert!(
            generate(&spec(serde_json::json!({
                "length": 20, "digits": 11, "symbols": 0, "allowRepeat": true
            })))
            .is_ok()
        );
    }
}
