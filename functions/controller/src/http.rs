//! The HTTP side: `/metrics` on `--metrics-addr` (ESO: `:8080`), `/healthz` and `/readyz` on
//! `--live-addr` (ESO: `:8082`), one server when both addresses are equal.
//!
//! Extra routes may join the metrics listener: build them as an `axum::Router` and pass it as
//! `extra` to [`start`]. The signed change webhook does not: it has its own listener
//! (`--webhook-addr`, `webhook.rs`), so that it can be exposed without exposing `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::Metrics;

/// OpenMetrics text, as prometheus-client writes it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The readiness flag behind `/readyz`: false until someone (the reconcilers, once their caches
/// have synced; or `main` for a standby replica) says otherwise.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What the handlers read: the metrics registry and the readiness flag.
#[derive(Clone, Debug)]
pub struct HttpState {
    pub metrics: Metrics,
    pub readiness: Readiness,
}

/// Why the HTTP servers could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("failed to bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// `GET /metrics`.
pub fn metrics_router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `GET /healthz` (the process serves HTTP) and `GET /readyz` (the readiness flag is set).
pub fn health_router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<HttpState>) -> Response {
    match state.metrics.encode() {
        Ok(body) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            warn!(error = %e, "failed to encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// The running servers, from [`start`].
#[derive(Debug)]
pub struct Servers {
    /// Where `/metrics` (and webhooks) are served, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Where `/healthz` and `/readyz` are served, if enabled.
    pub health_addr: Option<SocketAddr>,
    tasks: JoinSet<std::io::Result<()>>,
}

impl Servers {
    /// Waits until every server has shut down (after the `shutdown` token given to [`start`]).
    pub async fn join(mut self) {
        while let Some(done) = self.tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "HTTP server failed"),
                Err(e) => warn!(error = %e, "HTTP server task failed"),
            }
        }
    }
}

/// Binds the listeners (errors here are fatal: a taken port should stop the process, as it stops
/// ESO) and serves until `shutdown` is cancelled, then finishes in-flight requests. `extra` is
/// merged into the metrics listener's routes: the place for webhook receivers.
pub async fn start(
    metrics_addr: Option<SocketAddr>,
    health_addr: Option<SocketAddr>,
    state: HttpState,
    extra: Router,
    shutdown: CancellationToken,
) -> Result<Servers, HttpError> {
    let mut tasks = JoinSet::new();
    let metrics_app = metrics_router(state.clone()).merge(extra);
    let health_app = health_router(state);

    let (bound_metrics, bound_health) = match (metrics_addr, health_addr) {
        (Some(m), Some(h)) if m == h => {
            let (listener, addr) = bind(m).await?;
            spawn(
                &mut tasks,
                listener,
                metrics_app.merge(health_app),
                &shutdown,
            );
            (Some(addr), Some(addr))
        }
        (m, h) => {
            let mut bound_metrics = None;
            if let Some(m) = m {
                let (listener, addr) = bind(m).await?;
                spawn(&mut tasks, listener, metrics_app, &shutdown);
                bound_metrics = Some(addr);
            }
            let mut bound_health = None;
            if let Some(h) = h {
                let (listener, addr) = bind(h).await?;
                spawn(&mut tasks, listener, health_app, &shutdown);
                bound_health = Some(addr);
            }
            (bound_metrics, bound_health)
        }
    };
    let show = |a: Option<SocketAddr>| a.map_or_else(|| "disabled".to_owned(), |a| a.to_string());
    info!(metrics = %show(bound_metrics), health = %show(bound_health), "serving HTTP");
    Ok(Servers {
        metrics_addr: bound_metrics,
        health_addr: bound_health,
        tasks,
    })
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), HttpError> {
    let err = |source| HttpError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

fn spawn(
    tasks: &mut JoinSet<std::io::Result<()>>,
    listener: TcpListener,
    app: Router,
    shutdown: &CancellationToken,
) {
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// A minimal HTTP/1.1 GET; returns the status code and the body.
    async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("read response");
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status code");
        (status, head.to_owned(), body.to_owned())
    }

    fn state() -> HttpState {
        HttpState {
            metrics: Metrics::new(),
            readiness: Readiness::default(),
        }
    }

    fn loopback() -> Option<SocketAddr> {
        Some("127.0.0.1:0".parse().expect("addr"))
    }

    #[tokio::test]
    async fn healthz_answers_ok_and_readyz_follows_the_readiness_flag() {
        let state = state();
        let shutdown = CancellationToken::new();
        let servers = start(
            loopback(),
            loopback(),
            state.clone(),
            Router::new(),
            shutdown.clone(),
        )
        .await
        .expect("start");
        let health = servers.health_addr.expect("health bound");

        assert_eq!(http_get(health, "/healthz").await.0, 200);
        let (status, _, body) = http_get(health, "/readyz").await;
        assert_eq!((status, body.as_str()), (503, "not ready"));
        state.readiness.set_ready(true);
        assert_eq!(http_get(health, "/readyz").await.0, 200);

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), servers.join())
            .await
            .expect("servers stop on shutdown");
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let state = state();
        state.metrics.sync_call("ns", "es");
        let shutdown = CancellationToken::new();
        let servers = start(loopback(), None, state, Router::new(), shutdown.clone())
            .await
            .expect("start");
        assert_eq!(servers.health_addr, None);
        let (status, head, body) = http_get(servers.metrics_addr.expect("bound"), "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/openmetrics-text; version=1.0.0"),
            "{head}"
        );
        assert!(body.contains("externalsecret_sync_calls_total{name=\"es\",namespace=\"ns\"} 1"));
        assert!(body.ends_with("# EOF\n"));
        shutdown.cancel();
        servers.join().await;
    }

    #[tokio::test]
    async fn extra_routes_are_served_next_to_metrics() {
        let shutdown = CancellationToken::new();
        let webhooks = Router::new().route("/webhook/test", get(|| async { "hook" }));
        let servers = start(loopback(), None, state(), webhooks, shutdown.clone())
            .await
            .expect("start");
        let (status, _, body) =
            http_get(servers.metrics_addr.expect("bound"), "/webhook/test").await;
        assert_eq!((status, body.as_str()), (200, "hook"));
        shutdown.cancel();
        servers.join().await;
    }

    #[tokio::test]
    async fn equal_addresses_share_one_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let shutdown = CancellationToken::new();
        let servers = start(
            Some(addr),
            Some(addr),
            state(),
            Router::new(),
            shutdown.clone(),
        )
        .await
        .expect("start");
        assert_eq!(servers.metrics_addr, Some(addr));
        assert_eq!(http_get(addr, "/metrics").await.0, 200);
        assert_eq!(http_get(addr, "/healthz").await.0, 200);
        shutdown.cancel();
        servers.join().await;
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
        let addr = taken.local_addr().expect("addr");
        let err = start(
            Some(addr),
            None,
            state(),
            Router::new(),
            CancellationToken::new(),
        )
        .await
        .expect_err("port is taken");
        assert!(err.to_string().contains(&addr.to_string()));
    }
}
