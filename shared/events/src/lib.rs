//! Provider change events → normalized changes, for secret-sync's trigger stage. Pure: bytes in,
//! changes out, no I/O, no clock, no logging; every function may be fed arbitrary bytes (a test
//! does) and answers with a value or a [`ParseError`] (a [`webhook::SignatureError`] for
//! signatures), never a panic. Where time matters, the caller passes `now`.
//!
//! - [`aws`]: AWS Secrets Manager events as EventBridge delivers them (directly to a Lambda, as an
//!   SQS message body, inside an SNS notification, in a Lambda SQS batch), and the matching of a
//!   change against an ExternalSecret's `remoteRef.key`; Parameter Store changes through the same
//!   entry points ([`aws::ssm`]).
//! - [`vault`]: HashiCorp Vault / OpenBao KV changes, read from audit device lines (the only push
//!   feed OpenBao has) or from the frames of Vault Enterprise's event stream
//!   (`/v1/sys/events/subscribe/…?json=true`).
//! - [`webhook`]: signed webhooks from any sender (HMAC-SHA256 over timestamp and body, secret
//!   rotation on both sides, a replay window), and their bodies, plain JSON or CloudEvents, naming
//!   a store and the keys that changed in it.
//!
//! - [`change`]: the normalized [`Change`] every source hands to the engine's ingest.
//!
//! The sample payloads in the repository's `events/` directory are the test fixtures here.

#![forbid(unsafe_code)]

pub mod aws;
pub mod change;
mod error;
mod json;
#[cfg(test)]
mod test_support;
pub mod vault;
pub mod webhook;

pub use change::{Change, Location, Place};
pub use error::ParseError;

/// The largest single event or SQS message body accepted, in bytes: EventBridge's event size
/// limit (256 KiB). Real Secrets Manager events are 1–3 KiB.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// The largest Lambda SQS batch accepted, in bytes: Lambda's synchronous invocation payload limit
/// (6 MB).
pub const MAX_BATCH_BYTES: usize = 6 * 1024 * 1024;
