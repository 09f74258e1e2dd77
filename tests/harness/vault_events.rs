//! A stand-in for Vault Enterprise's event stream, in front of the real OpenBao dev server.
//!
//! OpenBao has no event stream (it was removed; see `../shared/research/events.md` §2d) and
//! Vault Enterprise cannot be had here, so this server speaks the one part that is missing:
//! `GET /v1/sys/events/subscribe/<pattern>?json=true` upgraded to a websocket that sends the
//! CloudEvents JSON frames a test hands it, checking `X-Vault-Token` as Vault does. Every other
//! connection is passed through, byte for byte, to OpenBao, so logins and KV reads are real.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_util::sync::CancellationToken;

/// What a connected subscriber is sent.
#[derive(Clone, Debug)]
enum Push {
    Frame(String),
    Drop,
}

/// The server; dropping it stops it.
pub struct EventServer {
    pub addr: SocketAddr,
    pushes: broadcast::Sender<Push>,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
}

#[derive(Default)]
struct State {
    /// Subscriptions accepted so far (each reconnect counts).
    accepted: usize,
    /// Subscriptions refused for a bad token.
    refused: usize,
    /// The event-type patterns asked for.
    patterns: Vec<String>,
}

impl EventServer {
    /// Listens on a free loopback port; accepts subscriptions with `token`; passes everything
    /// else to `upstream` (`host:port`).
    pub async fn start(upstream: String, token: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (pushes, _) = broadcast::channel(64);
        let state = Arc::new(Mutex::new(State::default()));
        let stop = CancellationToken::new();
        let server = Self {
            addr,
            pushes: pushes.clone(),
            state: state.clone(),
            stop: stop.clone(),
        };
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    () = stop.cancelled() => return,
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                };
                let (upstream, token, pushes, state) = (
                    upstream.clone(),
                    token.clone(),
                    pushes.clone(),
                    state.clone(),
                );
                let stop = stop.clone();
                tokio::spawn(async move {
                    if is_subscription(&stream).await {
                        subscription(stream, &token, pushes.subscribe(), &state, stop).await;
                    } else if let Ok(mut bao) = TcpStream::connect(&upstream).await {
                        let mut stream = stream;
                        let _ = tokio::io::copy_bidirectional(&mut stream, &mut bao).await;
                    }
                });
            }
        });
        server
    }

    /// `http://127.0.0.1:<port>`: what a store's `server` names.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends `frame` to every subscriber.
    pub fn emit(&self, frame: impl Into<String>) {
        let _ = self.pushes.send(Push::Frame(frame.into()));
    }

    /// Closes every subscription, as a Vault restart or a network cut would.
    pub fn drop_connections(&self) {
        let _ = self.pushes.send(Push::Drop);
    }

    pub fn accepted(&self) -> usize {
        self.state.lock().expect("state").accepted
    }

    pub fn refused(&self) -> usize {
        self.state.lock().expect("state").refused
    }

    pub fn patterns(&self) -> Vec<String> {
        self.state.lock().expect("state").patterns.clone()
    }
}

impl Drop for EventServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Whether the request on `stream` (not consumed) is an event subscription.
async fn is_subscription(stream: &TcpStream) -> bool {
    let mut head = [0u8; 64];
    let Ok(n) = stream.peek(&mut head).await else {
        return false;
    };
    head[..n].starts_with(b"GET /v1/sys/events/subscribe/")
}

// tungstenite's handshake callback returns its own (large) `ErrorResponse`.
#[allow(clippy::result_large_err)]
async fn subscription(
    stream: TcpStream,
    token: &str,
    mut pushes: broadcast::Receiver<Push>,
    state: &Mutex<State>,
    stop: CancellationToken,
) {
    let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let given = request
            .headers()
            .get("x-vault-token")
            .and_then(|v| v.to_str().ok());
        let mut state = state.lock().expect("state");
        if given != Some(token) {
            state.refused += 1;
            let mut refusal = ErrorResponse::new(Some("permission denied".into()));
            *refusal.status_mut() = StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        let path = request.uri().path();
        let pattern = path
            .strip_prefix("/v1/sys/events/subscribe/")
            .unwrap_or_default();
        let json = request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "json=true"));
        if !json {
            // The stand-in speaks JSON only; a protobuf subscriber is a test failure.
            let mut refusal = ErrorResponse::new(Some("json=true expected".into()));
            *refusal.status_mut() = StatusCode::BAD_REQUEST;
            return Err(refusal);
        }
        state.patterns.push(pattern.to_owned());
        state.accepted += 1;
        Ok(response)
    };
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        return;
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            push = pushes.recv() => match push {
                Ok(Push::Frame(frame)) => {
                    if socket.send(Message::text(frame)).await.is_err() {
                        return;
                    }
                }
                Ok(Push::Drop) | Err(_) => {
                    let _ = socket.close(None).await;
                    return;
                }
            },
            incoming = socket.next() => match incoming {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

/// A CloudEvents frame as Vault sends for a KV v2 change of `key` in `mount`.
pub fn kv2_frame(event_type: &str, mount: &str, key: &str) -> String {
    let operation = event_type.rsplit('/').next().unwrap_or_default();
    let segment = match operation {
        "data-write" | "data-patch" | "data-delete" => "data",
        "delete" => "delete",
        "undelete" => "undelete",
        "destroy" => "destroy",
        _ => "metadata",
    };
    let path = format!("{mount}/{segment}/{key}");
    serde_json::json!({
        "id": format!("ev-{}", jiff::Timestamp::now().as_nanosecond()),
        "source": "https://vaultproject.io/",
        "specversion": "1.0",
        "type": "*",
        "data": {
            "event": {
                "id": "inner",
                "metadata": {
                    "current_version": "2", "data_path": path, "modified": "true",
                    "oldest_version": "0", "operation": operation, "path": path
                }
            },
            "event_type": event_type,
            "plugin_info": {
                "mount_class": "secret", "mount_accessor": "kv_0000",
                "mount_path": format!("{mount}/"), "plugin": "kv"
            }
        },
        "datacontentype": "application/cloudevents",
        "time": jiff::Timestamp::now().to_string()
    })
    .to_string()
}
