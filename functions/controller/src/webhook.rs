//! The signed change webhook: `POST /webhook` with a JSON body naming a store and the keys that
//! changed in it (plain, or as a CloudEvent); the ExternalSecrets reading those keys through that
//! store sync at once. For any provider: a rotation Lambda, a CI job, a Vault plugin, a script
//! after `bao kv put`.
//!
//! The scheme (`secret_sync_events::webhook`, documented in `events/webhook/README.md`):
//! `X-Secret-Sync-Timestamp: <unix seconds>` and `X-Secret-Sync-Signature: v1=<hex>`, an
//! HMAC-SHA256 over `<timestamp>.<body>` with a shared secret, compared in constant time. Several
//! secrets may be configured at once, so a secret can be rotated without downtime.
//!
//! | answer | when | counted as (`secret_sync_events_total{source="webhook"}`) |
//! |---|---|---|
//! | 202 `{"affected": n}` | accepted; `n` ExternalSecrets are syncing (0 when none reads the keys) | `received`, then `matched` or `dropped` |
//! | 400 | signed, but the body is not a change notification | `malformed` |
//! | 401 | signature or timestamp missing, malformed, wrong, outside the replay window, or replayed | `unauthorized` |
//! | 413 | body over 64 KiB | `malformed` |
//! | 408 | the request (body included) took over 10 s | `malformed` |
//! | 429 | over the request rate, over 64 requests at once, or too many changes in flight (`Retry-After: 1`) | `overloaded` |
//! | 503 | this replica does not lead, or its caches are still loading at start-up (`Retry-After: 1`) | not counted; `overloaded` while loading |
//!
//! A call answered 429 or 503 may be sent again unchanged (same timestamp and signature, within
//! the replay window): it was not taken, so it is no replay.
//!
//! Every replica listens ([`WebhookSlot`]); only the leader handles calls.
//!
//! Nothing of the request is logged but the reason label; the body is parsed only once its
//! signature holds.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secret_sync_events::webhook::{
    MAX_WEBHOOK_BODY_BYTES, SIGNATURE_HEADER, TIMESTAMP_HEADER, Verifier, parse_webhook_body,
};
use tokio_util::sync::CancellationToken;

use crate::dispatch::Dispatcher;
use crate::metrics::{EventResult, Metrics};

const SOURCE: &str = "webhook";

/// Where the webhook listens and how it checks callers.
#[derive(Clone)]
pub struct WebhookSettings {
    pub addr: SocketAddr,
    /// Shared secrets; a signature made with any of them is accepted.
    pub secrets: Vec<Vec<u8>>,
    /// How far a timestamp may be from now, either way, in seconds.
    pub replay_window: u64,
    /// Requests per second accepted (a token bucket; bursts of twice this).
    pub rate_per_second: u32,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("addr", &self.addr)
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("replay_window", &self.replay_window)
            .field("rate_per_second", &self.rate_per_second)
            .finish()
    }
}

/// Reads the webhook's shared secrets from a file: one per line, surrounding whitespace and
/// empty lines ignored (a mounted Secret with a trailing newline works as is).
pub fn read_secrets(path: &std::path::Path) -> anyhow::Result<Vec<Vec<u8>>> {
    use anyhow::Context as _;
    let text = std::fs::read(path)
        .with_context(|| format!("cannot read the webhook secret file {}", path.display()))?;
    let secrets: Vec<Vec<u8>> = text
        .split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if secrets.is_empty() {
        anyhow::bail!("the webhook secret file {} holds no secret", path.display());
    }
    if let Some(short) = secrets.iter().find(|s| s.len() < 16) {
        anyhow::bail!(
            "a webhook secret in {} is {} bytes; use at least 16 (32 random bytes, hex or base64, is a good choice)",
            path.display(),
            short.len()
        );
    }
    Ok(secrets)
}

/// A token bucket.
struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            burst: rate * 2.0,
            tokens: rate * 2.0,
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Requests seen within the replay window, by the digest of what the signature covers (the
/// timestamp and the body), not by the signature header: a header written differently (another
/// `v1` entry added, hex in capitals) must not let a captured request through again.
struct Seen {
    window: Duration,
    order: VecDeque<(Instant, Vec<u8>)>,
    set: HashMap<Vec<u8>, Instant>,
}

/// At most this many signatures are remembered; past it, the oldest are forgotten (a replay
/// of those is still bounded by the timestamp window).
const MAX_SEEN: usize = 100_000;

impl Seen {
    fn new(window: Duration) -> Self {
        Self {
            window,
            order: VecDeque::new(),
            set: HashMap::new(),
        }
    }

    /// Records `signed` (a digest); false if it was seen within the window.
    fn first_time(&mut self, signed: &[u8]) -> bool {
        let now = Instant::now();
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) <= self.window && self.order.len() < MAX_SEEN {
                break;
            }
            if let Some((at, old)) = self.order.pop_front()
                && self.set.get(&old) == Some(&at)
            {
                self.set.remove(&old);
            }
        }
        if self.set.contains_key(signed) {
            return false;
        }
        self.set.insert(signed.to_vec(), now);
        self.order.push_back((now, signed.to_vec()));
        true
    }

    /// Forgets `signed`: the request was refused for a reason of ours (503, 429), and its
    /// sender is told to send it again, unchanged.
    fn forget(&mut self, signed: &[u8]) {
        self.set.remove(signed);
    }
}

/// Requests handled at once; more get 429 before their body is read.
const MAX_IN_FLIGHT: usize = 64;

/// A request (its body included) must be done within this; a slow sender gets 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Bounds every request before its body is read: at most [`MAX_IN_FLIGHT`] at once, each
/// within [`REQUEST_TIMEOUT`], so slow or many senders cannot hold the listener.
async fn guard(
    State(slot): State<WebhookSlot>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(hook) = slot.get() else {
        return not_leading();
    };
    let Ok(_slot) = hook.in_flight.clone().try_acquire_owned() else {
        return hook.refuse(
            EventResult::Overloaded,
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests in flight",
        );
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => hook.refuse(
            EventResult::Malformed,
            StatusCode::REQUEST_TIMEOUT,
            "request not complete in time",
        ),
    }
}

/// The answer of a replica that does not lead: 503 with `Retry-After: 1`, so the sender tries
/// again (through a Service, likely another replica).
fn not_leading() -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({ "error": "not the leader" })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

/// Where the webhook's handler lives: empty on a standby replica (every call gets 503, so a
/// sender retries), filled while this replica leads. The listener is bound by every replica, so
/// a Service in front of several never sees a refused connection.
#[derive(Clone, Default)]
pub struct WebhookSlot(Arc<std::sync::RwLock<Option<Arc<Webhook>>>>);

impl std::fmt::Debug for WebhookSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSlot")
            .field("leading", &self.get().is_some())
            .finish()
    }
}

impl WebhookSlot {
    /// Installs the handler (`Some`) when leading, removes it (`None`) when not.
    pub fn set(&self, hook: Option<Arc<Webhook>>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = hook;
    }

    fn get(&self) -> Option<Arc<Webhook>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `POST /webhook`, with the body limit and the guard.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/webhook", post(receive))
            .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY_BYTES))
            .layer(axum::middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self.clone())
    }

    /// Serves the router on `listener` until `shutdown`.
    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: CancellationToken) {
        let addr = listener.local_addr().ok();
        tracing::info!(?addr, "webhook receiver started");
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the webhook server stopped");
        }
    }
}

/// The handler's state.
pub struct Webhook {
    in_flight: Arc<tokio::sync::Semaphore>,
    verifier: Verifier,
    limit: Mutex<RateLimit>,
    seen: Mutex<Seen>,
    dispatcher: Arc<Dispatcher>,
    metrics: Metrics,
}

impl Webhook {
    pub fn new(
        settings: &WebhookSettings,
        dispatcher: Arc<Dispatcher>,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            verifier: Verifier::new(settings.secrets.clone(), settings.replay_window),
            limit: Mutex::new(RateLimit::new(settings.rate_per_second)),
            // Twice the window: a timestamp may be `window` in the future as well as the past.
            seen: Mutex::new(Seen::new(Duration::from_secs(
                settings.replay_window.saturating_mul(2),
            ))),
            dispatcher,
            metrics,
        })
    }

    /// Counts a refused call as `result` and answers it.
    fn refuse(&self, result: EventResult, status: StatusCode, reason: &'static str) -> Response {
        self.metrics.event(SOURCE, result);
        self.answer(status, reason)
    }

    /// Answers a refused call (logged without anything of the request, `Retry-After` on 429
    /// and 503).
    fn answer(&self, status: StatusCode, reason: &'static str) -> Response {
        if status == StatusCode::TOO_MANY_REQUESTS {
            // A flood is counted, not logged line by line: the log must not be the next target.
            tracing::debug!(reason, status = status.as_u16(), "webhook call refused");
        } else {
            tracing::info!(reason, status = status.as_u16(), "webhook call refused");
        }
        let mut response =
            (status, axum::Json(serde_json::json!({ "error": reason }))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// SHA-256 of `<timestamp>.<body>`: what a signature covers.
fn signed_digest(timestamp: &[u8], body: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    digest.update(timestamp);
    digest.update(b".");
    digest.update(body);
    digest.finalize().to_vec()
}

fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

async fn receive(
    State(slot): State<WebhookSlot>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = Instant::now();
    let Some(hook) = slot.get() else {
        return not_leading();
    };
    let taken = hook.limit.lock().unwrap_or_else(|e| e.into_inner()).take();
    if !taken {
        return hook.refuse(
            EventResult::Overloaded,
            StatusCode::TOO_MANY_REQUESTS,
            "rate limited",
        );
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return hook.refuse(
                EventResult::Malformed,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large",
            );
        }
        Err(_) => {
            return hook.refuse(
                EventResult::Malformed,
                StatusCode::BAD_REQUEST,
                "body could not be read",
            );
        }
    };
    let timestamp = headers.get(TIMESTAMP_HEADER).map(|v| v.as_bytes());
    let signature = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    if let Err(e) = hook
        .verifier
        .verify(timestamp, signature, &body, unix_now())
    {
        return hook.refuse(
            EventResult::Unauthorized,
            StatusCode::UNAUTHORIZED,
            e.metric_label(),
        );
    }
    let digest = signed_digest(timestamp.unwrap_or_default(), &body);
    let first = hook
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .first_time(&digest);
    if !first {
        return hook.refuse(
            EventResult::Unauthorized,
            StatusCode::UNAUTHORIZED,
            "replayed",
        );
    }
    let change = match parse_webhook_body(&body) {
        Ok(change) => change,
        Err(e) => {
            hook.metrics.event(SOURCE, EventResult::Malformed);
            tracing::info!(error = %e, "signed webhook body is not a change notification");
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({ "error": e.to_string() })),
            )
                .into_response();
        }
    };
    hook.metrics.event(SOURCE, EventResult::Received);
    // A call refused for a reason of ours is sent again unchanged: it is no replay then.
    let forget = || {
        hook.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget(&digest)
    };
    if !hook.dispatcher.ingest().is_ready() {
        // Resolved now, the change would find nothing and be lost: the sender tries again.
        forget();
        return hook.refuse(
            EventResult::Overloaded,
            StatusCode::SERVICE_UNAVAILABLE,
            "caches not synced yet",
        );
    }
    let Ok(affected) = hook
        .dispatcher
        .deliver(SOURCE, &change.to_change(), received)
    else {
        // Counted by `deliver`.
        forget();
        return hook.answer(StatusCode::TOO_MANY_REQUESTS, "too many changes in flight");
    };
    tracing::debug!(
        store = %change.store.name,
        keys = change.keys.len(),
        affected,
        "webhook change"
    );
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "affected": affected })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_taken_once_within_the_window() {
        let mut seen = Seen::new(Duration::from_secs(600));
        assert!(seen.first_time(b"v1=aa"));
        assert!(!seen.first_time(b"v1=aa"));
        assert!(seen.first_time(b"v1=bb"));
    }

    #[test]
    fn a_refused_call_forgotten_may_come_again_once() {
        let mut seen = Seen::new(Duration::from_secs(600));
        assert!(seen.first_time(b"v1=aa"));
        seen.forget(b"v1=aa");
        assert!(seen.first_time(b"v1=aa"), "a refused call may come again");
        assert!(!seen.first_time(b"v1=aa"));
    }

    #[test]
    fn forgotten_signatures_leave_the_set_too() {
        let mut seen = Seen::new(Duration::ZERO);
        assert!(seen.first_time(b"v1=aa"));
        std::thread::sleep(Duration::from_millis(2));
        assert!(seen.first_time(b"v1=aa"), "past the window");
        assert_eq!(seen.set.len(), 1);
        assert_eq!(seen.order.len(), 1);
    }

    #[test]
    fn the_bucket_allows_a_burst_of_twice_the_rate_then_refuses() {
        let mut limit = RateLimit::new(5);
        let taken = (0..20).filter(|_| limit.take()).count();
        assert_eq!(taken, 10);
    }

    #[test]
    fn secrets_are_read_one_per_line_and_short_ones_refused() {
        let dir = std::env::temp_dir().join(format!("webhook-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("secrets");
        std::fs::write(&file, "0123456789abcdef0123\n\n  fedcba9876543210fedc  \n").expect("write");
        let secrets = read_secrets(&file).expect("secrets");
        assert_eq!(
            secrets,
            [
                b"0123456789abcdef0123".to_vec(),
                b"fedcba9876543210fedc".to_vec()
            ]
        );
        std::fs::write(&file, "short\n").expect("write");
        let error = read_secrets(&file).expect_err("too short").to_string();
        assert!(error.contains("5 bytes"), "{error}");
        assert!(!error.contains("short\n"), "no secret in the error");
        std::fs::write(&file, "\n").expect("write");
        assert!(read_secrets(&file).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
