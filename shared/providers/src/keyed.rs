//! Keyed values: a provider whose secrets are maps of byte strings (a Kubernetes Secret's
//! `data`) hands [`Provider::get`](crate::Provider::get) the whole map in this encoding, and says
//! so through [`Provider::keyed`](crate::Provider::keyed). The render stage then reads one key's
//! bytes exactly, binary included, where a JSON text of the map would have turned bytes that are
//! not UTF-8 into U+FFFD; the map's JSON (what ESO returns for a reference without a property) is
//! written only when a whole value is asked for.
//!
//! The encoding is internal: a JSON object of base64 strings. It never leaves the process.

use std::collections::BTreeMap;

use base64::Engine as _;

use crate::SecretBytes;

/// Encodes a map.
pub fn encode<'a>(map: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> SecretBytes {
    let b64 = base64::engine::general_purpose::STANDARD;
    let map: BTreeMap<&str, String> = map.into_iter().map(|(k, v)| (k, b64.encode(v))).collect();
    // A map of strings always serializes.
    SecretBytes::new(serde_json::to_vec(&map).unwrap_or_default())
}

/// A map as ESO's providers return one whole (`json.Marshal(map[string]string)` through an
/// encoder with HTML escaping off): sorted keys, and bytes that are not UTF-8 as U+FFFD, as Go's
/// string conversion makes them.
pub fn to_json<'a>(map: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> SecretBytes {
    let sorted: BTreeMap<&str, &[u8]> = map.into_iter().collect();
    let mut out = String::from("{");
    for (i, (key, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        secret_sync_gosem::json::write_string(&mut out, key, false);
        out.push(':');
        secret_sync_gosem::json::write_bytes(&mut out, value, false);
    }
    out.push('}');
    SecretBytes::from(out)
}

/// Decodes a map [`encode`] wrote; `None` for anything else (no message: it would quote it).
pub fn decode(value: &[u8]) -> Option<BTreeMap<String, SecretBytes>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let map: BTreeMap<String, String> = serde_json::from_slice(value).ok()?;
    map.into_iter()
        .map(|(k, v)| b64.decode(v).ok().map(|v| (k, SecretBytes::new(v))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_map_is_written_as_go_marshals_it() {
        let json = to_json([("b", &b"<&>\n"[..]), ("a", &b"x\xffy"[..])]);
        assert_eq!(json.expose(), br#"{"a":"x\ufffdy","b":"<&>\n"}"#);
        assert_eq!(to_json([]).expose(), b"{}");
    }

    #[test]
    fn bytes_survive_the_round_trip() {
        let encoded = encode([("a", &b"x\xffy"[..]), ("b", &b""[..])]);
        let decoded = decode(encoded.expose()).expect("decodes");
        assert_eq!(decoded["a"].expose(), b"x\xffy");
        assert_eq!(decoded["b"].expose(), b"");
        assert!(decode(br#"{"a":1}"#).is_none());
    }
}
