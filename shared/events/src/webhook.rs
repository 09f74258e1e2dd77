//! Signed webhooks: any sender (a CI job, a rotation Lambda, a script) tells secret-sync that
//! secrets changed in a store, so the ExternalSecrets reading them sync now rather than at their
//! next `refreshInterval`.
//!
//! # The signature scheme
//!
//! This is what senders are configured with; `events/webhook/README.md` has a shell example.
//!
//! - `X-Secret-Sync-Timestamp: <unix seconds>`, the time of sending, as ASCII digits.
//! - `X-Secret-Sync-Signature: v1=<hex>`, where `<hex>` is the lowercase hex HMAC-SHA256, keyed
//!   with the shared secret, of the *signed payload*: the timestamp header's value, a `.`, then
//!   the raw body bytes (`1767225600.{"store":…}`). [`sign`] computes the header value.
//! - The header may hold several comma-separated entries (`v1=<hex>,v1=<hex>`), so that a sender
//!   rotating its secret can sign with the old and the new one for a while. Entries of other
//!   schemes (`v0=…`) are skipped, so a later scheme can be added without breaking receivers.
//! - The receiver holds one or more secrets (rotation on its side): a request verifies when any
//!   of its secrets matches any `v1` entry.
//! - Replay window: the request is accepted only when |now − timestamp| ≤ the window (default
//!   [`DEFAULT_REPLAY_WINDOW_SECS`], 300 s), in both directions, so a captured request cannot be
//!   replayed later. Within the window a replay is possible; replaying a "sync now" only costs a
//!   sync, and the CloudEvents `id` (or the plain body's `id`) lets a receiver drop duplicates.
//!
//! The timestamp is signed, so it cannot be moved into the window without the secret. Comparison
//! is constant time (`hmac`'s `verify_slice`). The signature is checked before the window, so
//! that [`SignatureError::OutsideWindow`] means "genuine but stale or clock-skewed" and
//! [`SignatureError::Mismatch`] means "wrong secret or altered in transit"; the two call for
//! different fixes.
//!
//! # The body
//!
//! [`parse_webhook_body`] reads the (verified) body, at most [`MAX_WEBHOOK_BODY_BYTES`], in one
//! of two shapes:
//!
//! ```json
//! {"store": {"kind": "ClusterSecretStore", "name": "vault"}, "keys": ["prod/db"], "id": "opt"}
//! ```
//!
//! or the same object as the `data` of a CloudEvents 1.0 structured-mode event (recognized by its
//! `specversion` field):
//!
//! ```json
//! {"specversion": "1.0", "type": "com.example.secret.rotated", "source": "/ci/rotate",
//!  "id": "8c1e…", "datacontenttype": "application/json",
//!  "data": {"store": {"kind": "SecretStore", "name": "aws", "namespace": "team-a"}}}
//! ```
//!
//! `store.kind` defaults to `SecretStore`, as an ExternalSecret's `secretStoreRef.kind` does; a
//! `SecretStore` needs its `namespace`, a `ClusterSecretStore` must not have one. `keys` are
//! remote keys as an ExternalSecret's `remoteRef.key` (or `dataFrom[].extract.key`) names them;
//! absent or empty means every ExternalSecret reading from the store. Unknown fields are ignored.
//!
//! Like the rest of this crate: pure, no clock (the caller passes `now`), and no error holds any
//! part of the input (nor, for [`Verifier`], any secret).

use std::collections::HashSet;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::ParseError;
use crate::json::{self, Object};

#[cfg(test)]
mod tests;

/// The header holding the unix time of sending (lowercase, as HTTP/2 and the `http` crate
/// spell header names; HTTP/1.1 matching is case-insensitive).
pub const TIMESTAMP_HEADER: &str = "x-secret-sync-timestamp";

/// The header holding the `v1=<hex>` signature entries.
pub const SIGNATURE_HEADER: &str = "x-secret-sync-signature";

/// The largest webhook body accepted, in bytes (64 KiB): a thousand keys of sixty bytes fit.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 64 * 1024;

/// How far a request's timestamp may be from the receiver's clock, in seconds, either way.
pub const DEFAULT_REPLAY_WINDOW_SECS: u64 = 300;

/// The most `v1` entries a signature header may hold: a rotating sender needs two.
const MAX_SIGNATURES: usize = 16;

/// The longest signature header accepted, in bytes.
const MAX_SIGNATURE_HEADER_BYTES: usize = 4096;

/// The most keys one webhook may name.
const MAX_KEYS: usize = 1000;

/// The longest key, and the longest id, in bytes.
const MAX_KEY_BYTES: usize = 1024;

type HmacSha256 = Hmac<Sha256>;

// ---- signatures ---------------------------------------------------------------------------

/// Checks webhook signatures against the receiver's secrets.
///
/// Its `Debug` shows how many secrets it holds, never the secrets.
#[derive(Clone)]
pub struct Verifier {
    secrets: Vec<Vec<u8>>,
    window_secs: u64,
}

impl Verifier {
    /// A verifier accepting a signature by any of `secrets`, with a replay window of
    /// `window_secs` either way ([`DEFAULT_REPLAY_WINDOW_SECS`] is the usual choice).
    ///
    /// Empty secrets are dropped: anyone can compute an HMAC with an empty key. With no secret
    /// left, every request is a [`SignatureError::Mismatch`]; see [`Verifier::secret_count`].
    pub fn new(secrets: Vec<Vec<u8>>, window_secs: u64) -> Self {
        let secrets = secrets
            .into_iter()
            .filter(|secret| !secret.is_empty())
            .collect();
        Self {
            secrets,
            window_secs,
        }
    }

    /// How many (non-empty) secrets the verifier holds; zero means it accepts nothing, which a
    /// caller may want to refuse at startup.
    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// `Ok(())` when `signature` (the [`SIGNATURE_HEADER`] value) holds a `v1` entry that one of
    /// the secrets made over `timestamp` (the [`TIMESTAMP_HEADER`] value) and `body`, and the
    /// timestamp is within the window of `now` (unix seconds); else the first reason it is not,
    /// checked in this order: timestamp present and well formed, signature present and well
    /// formed, signature matches, timestamp within the window.
    ///
    /// `body` is hashed whole: read at most [`MAX_WEBHOOK_BODY_BYTES`] before calling this.
    pub fn verify(
        &self,
        timestamp: Option<&[u8]>,
        signature: Option<&[u8]>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let timestamp_bytes = timestamp.ok_or(SignatureError::MissingTimestamp)?;
        let sent_at = parse_timestamp(timestamp_bytes)?;
        let signature = signature.ok_or(SignatureError::MissingSignature)?;
        let tags = parse_signature(signature)?;
        let matched = self.secrets.iter().any(|secret| {
            let mac = mac(secret, timestamp_bytes, body);
            tags.iter().any(|tag| mac.clone().verify_slice(tag).is_ok())
        });
        if !matched {
            return Err(SignatureError::Mismatch);
        }
        let skew = (i128::from(now) - i128::from(sent_at)).unsigned_abs();
        if skew > u128::from(self.window_secs) {
            return Err(SignatureError::OutsideWindow);
        }
        Ok(())
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .field("window_secs", &self.window_secs)
            .finish()
    }
}

/// Why a webhook request's signature was not accepted. Holds nothing of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No [`TIMESTAMP_HEADER`].
    #[error("no x-secret-sync-timestamp header")]
    MissingTimestamp,
    /// The timestamp is not unix seconds as ASCII digits.
    #[error("x-secret-sync-timestamp is not unix seconds")]
    MalformedTimestamp,
    /// The signature is genuine but the timestamp is further from now than the replay window: a
    /// replay, or a sender's clock that is off.
    #[error("x-secret-sync-timestamp is outside the replay window")]
    OutsideWindow,
    /// No [`SIGNATURE_HEADER`].
    #[error("no x-secret-sync-signature header")]
    MissingSignature,
    /// The signature header is not a comma-separated list of `scheme=value` entries with at least
    /// one `v1=<64 hex digits>` (and at most 16), or is over 4 KiB.
    #[error("x-secret-sync-signature holds no well-formed v1 signature")]
    MalformedSignature,
    /// No `v1` entry matches any secret: a wrong secret, or a body or timestamp altered in
    /// transit.
    #[error("no signature matches")]
    Mismatch,
}

impl SignatureError {
    /// A fixed snake_case label for metrics (`missing_timestamp`, …, `mismatch`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::MissingTimestamp => "missing_timestamp",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::OutsideWindow => "outside_window",
            Self::MissingSignature => "missing_signature",
            Self::MalformedSignature => "malformed_signature",
            Self::Mismatch => "mismatch",
        }
    }
}

/// The [`SIGNATURE_HEADER`] value a sender sends: `v1=<lowercase hex HMAC-SHA256>` of
/// `timestamp`, `.`, `body`, keyed with `secret`. `timestamp` must be sent byte for byte as the
/// [`TIMESTAMP_HEADER`] value.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let tag = mac(secret, timestamp.as_bytes(), body)
        .finalize()
        .into_bytes();
    let mut header = String::with_capacity(3 + 2 * tag.len());
    header.push_str("v1=");
    for byte in tag {
        header.push(char::from(HEX[usize::from(byte >> 4)]));
        header.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    header
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The HMAC state after the signed payload: `timestamp`, `.`, `body`.
fn mac(secret: &[u8], timestamp: &[u8], body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp);
    mac.update(b".");
    mac.update(body);
    mac
}

/// Unix seconds from ASCII digits only (no sign, no space, no fraction), fitting an `i64`.
fn parse_timestamp(bytes: &[u8]) -> Result<i64, SignatureError> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(SignatureError::MalformedTimestamp);
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or(SignatureError::MalformedTimestamp)
}

/// The 32-byte tags of the `v1` entries; see [`SignatureError::MalformedSignature`].
fn parse_signature(bytes: &[u8]) -> Result<Vec<[u8; 32]>, SignatureError> {
    const MALFORMED: SignatureError = SignatureError::MalformedSignature;
    if bytes.len() > MAX_SIGNATURE_HEADER_BYTES {
        return Err(MALFORMED);
    }
    let header = std::str::from_utf8(bytes).map_err(|_| MALFORMED)?;
    let mut tags = Vec::new();
    for entry in header.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (scheme, value) = entry.split_once('=').ok_or(MALFORMED)?;
        if scheme.trim() != "v1" {
            continue;
        }
        tags.push(decode_tag(value.trim()).ok_or(MALFORMED)?);
        if tags.len() > MAX_SIGNATURES {
            return Err(MALFORMED);
        }
    }
    if tags.is_empty() {
        return Err(MALFORMED);
    }
    Ok(tags)
}

/// 64 hex digits (either case) → 32 bytes.
fn decode_tag(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut tag = [0; 32];
    for (byte, pair) in tag.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(tag)
}

fn hex_digit(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

// ---- bodies -------------------------------------------------------------------------------

/// A change announced by a webhook: which store, which keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookChange {
    /// The store whose secrets changed.
    pub store: StoreName,
    /// Remote keys as an ExternalSecret's remoteRef.key / extract.key names them, in the order
    /// given, duplicates dropped. Empty: every ExternalSecret reading from the store.
    pub keys: Vec<String>,
    /// The CloudEvents `id`, or the plain body's optional `id`.
    pub id: Option<String>,
}

impl WebhookChange {
    /// The normalized change: the named store's keys (all of them when none are named).
    pub fn to_change(&self) -> crate::Change {
        crate::Change {
            place: crate::Place::Store(self.store.clone()),
            keys: self.keys.clone(),
            event_time: None,
            id: self.id.clone(),
        }
    }
}

/// A `SecretStore` (namespaced) or `ClusterSecretStore`, as an ExternalSecret's
/// `secretStoreRef` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreName {
    pub kind: StoreKindName,
    /// A Kubernetes object name (DNS-1123 subdomain).
    pub name: String,
    /// The `SecretStore`'s namespace; `None` for a `ClusterSecretStore`.
    pub namespace: Option<String>,
}

/// The kind of store a webhook names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKindName {
    SecretStore,
    ClusterSecretStore,
}

impl StoreKindName {
    /// The Kubernetes kind: `"SecretStore"` or `"ClusterSecretStore"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::SecretStore => "SecretStore",
            Self::ClusterSecretStore => "ClusterSecretStore",
        }
    }
}

/// Parses a webhook body, plain or CloudEvents (see the module notes).
///
/// Errors, each naming the field: over [`MAX_WEBHOOK_BODY_BYTES`], not JSON, not an object; for
/// CloudEvents a `specversion` other than `"1.0"`, a missing or empty `id`, `source` or `type`, a
/// `datacontenttype` that is not JSON, `data` missing or not an object; then `store` missing,
/// `store.kind` not one of the two kinds, `store.name` not a Kubernetes name, a `SecretStore`
/// without a `namespace` or a `ClusterSecretStore` with one, a namespace that is not a DNS label,
/// over 1000 `keys`, a key that is not a string or not 1..=1024 bytes, an `id` that is not a
/// string or over 1024 bytes.
pub fn parse_webhook_body(body: &[u8]) -> Result<WebhookChange, ParseError> {
    let value = json::parse("webhook body", body, MAX_WEBHOOK_BODY_BYTES)?;
    let object = json::object(&value, "webhook body")?;
    if object.contains_key("specversion") {
        let (id, data) = cloudevent(object)?;
        change(data, &CLOUDEVENT_FIELDS, Some(id))
    } else {
        let id = opt_id(object)?;
        change(object, &PLAIN_FIELDS, id)
    }
}

/// The names errors give the fields, which differ between the two shapes.
struct Fields {
    store: &'static str,
    kind: &'static str,
    name: &'static str,
    namespace: &'static str,
    keys: &'static str,
    key: &'static str,
}

const PLAIN_FIELDS: Fields = Fields {
    store: "store",
    kind: "store.kind",
    name: "store.name",
    namespace: "store.namespace",
    keys: "keys",
    key: "keys[]",
};

const CLOUDEVENT_FIELDS: Fields = Fields {
    store: "data.store",
    kind: "data.store.kind",
    name: "data.store.name",
    namespace: "data.store.namespace",
    keys: "data.keys",
    key: "data.keys[]",
};

/// Checks the CloudEvents 1.0 envelope; returns the event `id` and `data`.
fn cloudevent(event: &Object) -> Result<(String, &Object), ParseError> {
    if json::required_str(event, "specversion", "specversion")? != "1.0" {
        return Err(ParseError::Invalid {
            field: "specversion",
            problem: "not 1.0",
        });
    }
    let id = required_id(event)?;
    for (key, field) in [("source", "source"), ("type", "type")] {
        if json::required_str(event, key, field)?.is_empty() {
            return Err(ParseError::Invalid {
                field,
                problem: "empty",
            });
        }
    }
    match event.get("datacontenttype") {
        None | Some(Value::Null) => {}
        Some(Value::String(media_type)) if is_json_media_type(media_type) => {}
        Some(Value::String(_)) => {
            return Err(ParseError::Invalid {
                field: "datacontenttype",
                problem: "not application/json or +json",
            });
        }
        Some(_) => {
            return Err(ParseError::WrongType {
                field: "datacontenttype",
                expected: "a string",
            });
        }
    }
    let data = json::required_object(event, "data", "data")?;
    Ok((id, data))
}

/// The CloudEvents `id`: required, non-empty, at most [`MAX_KEY_BYTES`].
fn required_id(event: &Object) -> Result<String, ParseError> {
    json::required_str(event, "id", "id")?;
    opt_id(event)?.ok_or(ParseError::Invalid {
        field: "id",
        problem: "empty",
    })
}

/// An optional `id`: `None` when absent, null or empty; an error when not a string or over
/// [`MAX_KEY_BYTES`] (an id ends up in logs).
fn opt_id(object: &Object) -> Result<Option<String>, ParseError> {
    let field = "id";
    let id = match object.get("id") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(id)) => id,
        Some(_) => {
            return Err(ParseError::WrongType {
                field,
                expected: "a string",
            });
        }
    };
    if id.len() > MAX_KEY_BYTES {
        return Err(ParseError::Invalid {
            field,
            problem: "longer than 1024 bytes",
        });
    }
    Ok(Some(id.clone()).filter(|id| !id.is_empty()))
}

/// `application/json` or `<type>/<subtype>+json`, any case, parameters (`; charset=utf-8`)
/// allowed.
fn is_json_media_type(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .split_once('/')
            .is_some_and(|(kind, subtype)| !kind.is_empty() && subtype.ends_with("+json"))
}

/// Reads `{store, keys}` from the plain body or the CloudEvents `data`.
fn change(
    object: &Object,
    fields: &Fields,
    id: Option<String>,
) -> Result<WebhookChange, ParseError> {
    Ok(WebhookChange {
        store: store(object, fields)?,
        keys: keys(object, fields)?,
        id,
    })
}

fn store(object: &Object, fields: &Fields) -> Result<StoreName, ParseError> {
    let store = json::required_object(object, "store", fields.store)?;
    let kind = match opt_string(store, "kind", fields.kind)? {
        None | Some("SecretStore") => StoreKindName::SecretStore,
        Some("ClusterSecretStore") => StoreKindName::ClusterSecretStore,
        Some(_) => {
            return Err(ParseError::Invalid {
                field: fields.kind,
                problem: "not SecretStore or ClusterSecretStore",
            });
        }
    };
    let name = json::required_str(store, "name", fields.name)?;
    check_subdomain(name, fields.name)?;
    let namespace = opt_string(store, "namespace", fields.namespace)?;
    match (kind, namespace) {
        (StoreKindName::SecretStore, None) => {
            return Err(ParseError::Missing {
                field: fields.namespace,
            });
        }
        (StoreKindName::ClusterSecretStore, Some(_)) => {
            return Err(ParseError::Invalid {
                field: fields.namespace,
                problem: "not allowed for a ClusterSecretStore",
            });
        }
        (_, Some(namespace)) => check_label(namespace, fields.namespace)?,
        (_, None) => {}
    }
    Ok(StoreName {
        kind,
        name: name.to_owned(),
        namespace: namespace.map(str::to_owned),
    })
}

/// `keys`: absent, null or `[]` for the whole store; duplicates dropped, order kept.
fn keys(object: &Object, fields: &Fields) -> Result<Vec<String>, ParseError> {
    let items = match object.get("keys") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ParseError::WrongType {
                field: fields.keys,
                expected: "an array",
            });
        }
    };
    if items.len() > MAX_KEYS {
        return Err(ParseError::Invalid {
            field: fields.keys,
            problem: "more than 1000 keys",
        });
    }
    let mut seen = HashSet::with_capacity(items.len());
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        let key = item.as_str().ok_or(ParseError::WrongType {
            field: fields.key,
            expected: "a string",
        })?;
        check_length(key, MAX_KEY_BYTES, "longer than 1024 bytes", fields.key)?;
        if seen.insert(key) {
            keys.push(key.to_owned());
        }
    }
    Ok(keys)
}

/// An optional string field: `None` when absent or null, an error when another type.
fn opt_string<'a>(
    object: &'a Object,
    key: &str,
    field: &'static str,
) -> Result<Option<&'a str>, ParseError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ParseError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

/// A Kubernetes object name: a DNS-1123 subdomain (at most 253 characters, dot-separated labels
/// of lowercase letters, digits and `-`, each starting and ending with a letter or digit).
fn check_subdomain(name: &str, field: &'static str) -> Result<(), ParseError> {
    check_length(name, 253, "longer than 253 characters", field)?;
    if name.split('.').all(is_label) {
        Ok(())
    } else {
        Err(ParseError::Invalid {
            field,
            problem: "not a Kubernetes name (lowercase letters, digits, '-', '.')",
        })
    }
}

/// A namespace name: a DNS-1123 label (at most 63 characters, lowercase letters, digits and
/// `-`, starting and ending with a letter or digit).
fn check_label(name: &str, field: &'static str) -> Result<(), ParseError> {
    check_length(name, 63, "longer than 63 characters", field)?;
    if is_label(name) {
        Ok(())
    } else {
        Err(ParseError::Invalid {
            field,
            problem: "not a Kubernetes namespace name (lowercase letters, digits, '-')",
        })
    }
}

/// `Invalid` with "empty" or `too_long` unless `name` is 1..=`max` bytes.
fn check_length(
    name: &str,
    max: usize,
    too_long: &'static str,
    field: &'static str,
) -> Result<(), ParseError> {
    let problem = match name.len() {
        0 => "empty",
        len if len > max => too_long,
        _ => return Ok(()),
    };
    Err(ParseError::Invalid { field, problem })
}

fn is_label(label: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|&c| alnum(c) || c == b'-')
        }
        _ => false,
    }
}
