//! `decodingStrategy` and `nullBytePolicy` (R: `runtime/decoding/decoding.go` `Decode`,
//! `DecodeMap`; `pkg/controllers/externalsecret` `validateFetchedSecretValue`).
//!
//! ESO decodes with Go's `base64.StdEncoding` / `base64.URLEncoding`, which require padding,
//! accept non-zero trailing bits (they are not `Strict()`), and skip `\r` and `\n` anywhere in
//! the input. The engines below are configured to accept exactly that set.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use secret_sync_crd::{DecodingStrategy, NullBytePolicy};

const GO_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(true)
    .with_decode_allow_trailing_bits(true)
    .with_decode_padding_mode(DecodePaddingMode::RequireCanonical);

/// Go's `base64.StdEncoding`.
const GO_STD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, GO_CONFIG);
/// Go's `base64.URLEncoding` (URL alphabet, padded).
const GO_URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, GO_CONFIG);

/// A value that is not valid base64. Like Go's `CorruptInputError` it carries an offset into
/// the value and nothing of its content (the `base64` crate's own errors print the byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Base64Problem {
    /// Offset in the value; for missing or bad padding, where the last group of four starts.
    pub offset: usize,
}

impl fmt::Display for Base64Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Go's `base64.CorruptInputError` text.
        write!(f, "illegal base64 data at input byte {}", self.offset)
    }
}

/// The strategy's name as written in manifests.
pub(crate) fn strategy_name(strategy: DecodingStrategy) -> &'static str {
    match strategy {
        DecodingStrategy::Auto => "Auto",
        DecodingStrategy::Base64 => "Base64",
        DecodingStrategy::Base64Url => "Base64URL",
        DecodingStrategy::None => "None",
    }
}

/// Decodes `value` per `strategy`. `Auto` tries standard base64, then URL-safe base64, and
/// otherwise keeps the value as it is; it never fails.
pub(crate) fn decode(strategy: DecodingStrategy, value: &[u8]) -> Result<Vec<u8>, Base64Problem> {
    match strategy {
        DecodingStrategy::None => Ok(value.to_vec()),
        DecodingStrategy::Base64 => go_decode(&GO_STD, value),
        DecodingStrategy::Base64Url => go_decode(&GO_URL, value),
        DecodingStrategy::Auto => Ok(go_decode(&GO_STD, value)
            .or_else(|_| go_decode(&GO_URL, value))
            .unwrap_or_else(|_| value.to_vec())),
    }
}

fn go_decode(engine: &GeneralPurpose, value: &[u8]) -> Result<Vec<u8>, Base64Problem> {
    // Go skips `\r` and `\n` wherever they appear; keep where each remaining byte came from so
    // an error can point into the original value.
    let mut kept = Vec::with_capacity(value.len());
    let mut origin = Vec::with_capacity(value.len());
    for (i, &b) in value.iter().enumerate() {
        if b != b'\r' && b != b'\n' {
            kept.push(b);
            origin.push(i);
        }
    }
    engine.decode(&kept).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(offset, _)
            | base64::DecodeError::InvalidLastSymbol(offset, _) => offset,
            base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => {
                kept.len().saturating_sub(1) / 4 * 4
            }
        };
        Base64Problem {
            offset: origin.get(at).copied().unwrap_or(value.len()),
        }
    })
}

/// Whether `policy` rejects `value` for holding a NUL byte.
pub(crate) fn violates_null_byte_policy(policy: Option<NullBytePolicy>, value: &[u8]) -> bool {
    policy == Some(NullBytePolicy::Fail) && value.contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(strategy: DecodingStrategy, input: &str) -> Result<Vec<u8>, Base64Problem> {
        decode(strategy, input.as_bytes())
    }

    #[test]
    fn none_passes_values_through() {
        assert_eq!(
            d(DecodingStrategy::None, "aGVsbG8="),
            Ok(b"aGVsbG8=".to_vec())
        );
    }

    #[test]
    fn base64_is_gos_padded_standard_encoding() {
        assert_eq!(
            d(DecodingStrategy::Base64, "aGVsbG8="),
            Ok(b"hello".to_vec())
        );
        assert_eq!(d(DecodingStrategy::Base64, ""), Ok(Vec::new()));
        assert_eq!(
            d(DecodingStrategy::Base64, "+/+/"),
            Ok(vec![0xfb, 0xff, 0xbf])
        );
        // Go's StdEncoding requires padding.
        assert!(d(DecodingStrategy::Base64, "aGVsbG8").is_err());
        assert!(d(DecodingStrategy::Base64, "aGVsbG8==").is_err());
        // ... rejects the URL alphabet ...
        assert!(d(DecodingStrategy::Base64, "-_-_").is_err());
        // ... and data after the padding.
        assert!(d(DecodingStrategy::Base64, "YQ==YQ==").is_err());
    }

    #[test]
    fn base64_ignores_carriage_returns_and_newlines_like_go() {
        assert_eq!(
            d(DecodingStrategy::Base64, "aGVs\r\nbG8=\n"),
            Ok(b"hello".to_vec())
        );
        assert_eq!(d(DecodingStrategy::Base64, "YQ=\n="), Ok(b"a".to_vec()));
        // Other whitespace is not skipped.
        assert!(d(DecodingStrategy::Base64, "aGVs bG8=").is_err());
    }

    #[test]
    fn base64_accepts_non_zero_trailing_bits_like_gos_non_strict_decoder() {
        assert_eq!(d(DecodingStrategy::Base64, "YR=="), Ok(b"a".to_vec()));
    }

    #[test]
    fn base64url_is_gos_padded_url_encoding() {
        assert_eq!(
            d(DecodingStrategy::Base64Url, "-_-_"),
            Ok(vec![0xfb, 0xff, 0xbf])
        );
        assert_eq!(d(DecodingStrategy::Base64Url, "aGk="), Ok(b"hi".to_vec()));
        // URLEncoding is padded: unpadded input is rejected, as in Go.
        assert!(d(DecodingStrategy::Base64Url, "aGk").is_err());
        assert!(d(DecodingStrategy::Base64Url, "+/+/").is_err());
    }

    #[test]
    fn auto_tries_standard_then_url_then_keeps_the_value() {
        assert_eq!(d(DecodingStrategy::Auto, "aGVsbG8="), Ok(b"hello".to_vec()));
        assert_eq!(
            d(DecodingStrategy::Auto, "-_-_"),
            Ok(vec![0xfb, 0xff, 0xbf])
        );
        assert_eq!(
            d(DecodingStrategy::Auto, "not base64!"),
            Ok(b"not base64!".to_vec())
        );
        // A plain word that happens to be valid base64 is decoded, as in ESO.
        assert_eq!(
            d(DecodingStrategy::Auto, "abcd"),
            Ok(vec![0x69, 0xb7, 0x1d])
        );
    }

    #[test]
    fn errors_carry_an_offset_into_the_original_value_and_no_content() {
        let err = d(DecodingStrategy::Base64, "\n\nab$d");
        assert_eq!(err, Err(Base64Problem { offset: 4 }));
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("illegal base64 data at input byte 4".to_owned())
        );
        assert_eq!(
            d(DecodingStrategy::Base64, "aGVsbG8"),
            Err(Base64Problem { offset: 4 })
        );
    }

    #[test]
    fn only_the_fail_policy_rejects_nul_bytes() {
        assert!(violates_null_byte_policy(
            Some(NullBytePolicy::Fail),
            b"A\0B"
        ));
        assert!(!violates_null_byte_policy(
            Some(NullBytePolicy::Fail),
            b"QQBC"
        ));
        assert!(!violates_null_byte_policy(
            Some(NullBytePolicy::Ignore),
            b"A\0B"
        ));
        assert!(!violates_null_byte_policy(None, b"A\0B"));
    }
}
