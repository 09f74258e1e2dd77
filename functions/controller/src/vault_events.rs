//! The Vault Enterprise event-stream subscriber: one websocket per Vault server and namespace
//! (and event type) to `GET /v1/sys/events/subscribe/<type>?json=true`; each KV change it
//! announces syncs the ExternalSecrets reading that key at once.
//!
//! - **Which servers.** Every distinct (server, namespace) among the cached Vault stores, when
//!   `--vault-event-stream` is on. The subscription logs in as one of those stores (SecretStores
//!   first, then ClusterSecretStores, by name), with its own client: its token needs `read` on
//!   `sys/events/subscribe/<type>` and `list` + `subscribe` on the KV paths (see the README). A
//!   ClusterSecretStore with referent auth has no credentials of its own and is skipped (its
//!   server is subscribed to only if another store names it). The set is looked at again every
//!   `rescan`; a store that changed restarts its subscription.
//! - **Event types.** `kv*` by default: one connection for KV v1 and every KV v2 change,
//!   including `kv-v2/destroy`, `kv-v2/undelete` and `kv-v2/metadata-*`, which `kv-v2/data-*`
//!   would miss. It is the pattern Vault Secrets Operator subscribes to, so the policies written
//!   for it work.
//! - **Gaps.** Vault keeps no backlog: what happens while the socket is down is not replayed. So
//!   after every reconnect (not the first connect) every ExternalSecret reading through a Vault
//!   store on that server and namespace is synced, at most once per `backoff_max` (a flapping
//!   socket is no resync storm). Reconnects back off from `backoff_min` to
//!   `backoff_max`, with jitter; a socket silent for 90 s (Vault pings every 30 s) is dropped.
//! - **Community editions.** Vault CE answers 404 and OpenBao has no event stream at all: the
//!   subscriber says so once per server, in words, and retries at `backoff_max`. Use the audit
//!   stream there (`vault_audit.rs`).
//! - Values are read from Vault afresh after the event, never taken from it; frames are parsed
//!   by `secret_sync_events::vault::parse_event_frame`, which keeps nothing but names.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::ResourceExt;
use secret_sync::resolve::StoreCaches;
use secret_sync_crd::StoreKind;
use secret_sync_crd::provider::VaultProvider;
use secret_sync_events::vault::{Parsed, parse_event_frame};
use secret_sync_events::{Change, Place};
use secret_sync_providers::vault::{StreamAccess, VaultClient};
use secret_sync_providers::{Referents, StoreScope};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::dispatch::{Dispatcher, ResyncGate};
use crate::metrics::{EventResult, Metrics};

const SOURCE: &str = "vault-events";

/// A socket with no frame (Vault pings every 30 s) for this long is dead.
const IDLE: Duration = Duration::from_secs(90);

/// At most this many redirects (a standby forwarding to the active node) are followed.
const MAX_REDIRECTS: usize = 10;

/// How the subscriber runs.
#[derive(Clone, Debug)]
pub struct EventStreamSettings {
    /// Event-type patterns, one websocket each.
    pub event_types: Vec<String>,
    /// How often the set of Vault servers is looked at again.
    pub rescan: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for EventStreamSettings {
    fn default() -> Self {
        Self {
            event_types: vec!["kv*".to_owned()],
            rescan: Duration::from_secs(30),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// One change feed: a Vault server and namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Feed {
    /// Without a trailing `/`.
    server: String,
    /// Slashes trimmed; `None` for root.
    namespace: Option<String>,
}

/// The store a feed logs in as, at one generation.
#[derive(Clone, Debug, PartialEq)]
struct Source {
    scope: StoreScope,
    uid: String,
    generation: Option<i64>,
    provider: VaultProvider,
}

pub struct EventStreams {
    pub settings: EventStreamSettings,
    pub dispatcher: Arc<Dispatcher>,
    pub stores: StoreCaches,
    pub referents: Arc<dyn Referents>,
    pub metrics: Metrics,
}

impl EventStreams {
    /// Keeps one subscription per feed until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // The mount table and the resolve read the store caches too.
        self.dispatcher.ingest().ready().await;
        tracing::info!(event_types = ?self.settings.event_types, "Vault event-stream subscriber started");
        let this = self.clone();
        crate::dispatch::keep_feeds(
            shutdown,
            self.settings.rescan,
            || this.wanted(),
            |feed, source, stop, _| {
                for event_type in &this.settings.event_types {
                    let (this, feed, source, stop, event_type) = (
                        this.clone(),
                        feed.clone(),
                        source.clone(),
                        stop.clone(),
                        event_type.clone(),
                    );
                    tokio::spawn(async move {
                        this.subscribe(&feed, &source, &event_type, &stop).await;
                    });
                }
            },
        )
        .await;
    }

    /// Each (server, namespace) of the cached Vault stores, with the store to log in as.
    fn wanted(&self) -> HashMap<Feed, Source> {
        let mut candidates: Vec<(Feed, Source)> = Vec::new();
        let mut secret_stores: Vec<_> = self.stores.secret_stores.state();
        secret_stores.sort_by_key(|s| (s.namespace(), s.name_any()));
        for store in secret_stores {
            if let Some(vault) = store.spec.provider.vault_settings() {
                let vault = vault.into_owned();
                candidates.push((
                    feed_of(&vault),
                    Source {
                        scope: StoreScope {
                            kind: StoreKind::SecretStore,
                            name: store.name_any(),
                            namespace: store.namespace().unwrap_or_default(),
                        },
                        uid: store.uid().unwrap_or_default(),
                        generation: store.metadata.generation,
                        provider: vault.clone(),
                    },
                ));
            }
        }
        let mut cluster_stores: Vec<_> = self.stores.cluster_secret_stores.state();
        cluster_stores.sort_by_key(|s| s.name_any());
        for store in cluster_stores {
            // Referent auth reads its credentials in each ExternalSecret's namespace: such a
            // store has no credentials of its own to subscribe with.
            if secret_sync_providers::uses_referent_auth(&store.spec.provider) {
                continue;
            }
            if let Some(vault) = store.spec.provider.vault_settings() {
                let vault = vault.into_owned();
                candidates.push((
                    feed_of(&vault),
                    Source {
                        scope: StoreScope {
                            kind: StoreKind::ClusterSecretStore,
                            name: store.name_any(),
                            namespace: String::new(),
                        },
                        uid: store.uid().unwrap_or_default(),
                        generation: store.metadata.generation,
                        provider: vault.clone(),
                    },
                ));
            }
        }
        let mut wanted = HashMap::new();
        for (feed, source) in candidates {
            wanted.entry(feed).or_insert(source);
        }
        wanted
    }

    /// Subscribes to one event type of one feed until `stop`, reconnecting with backoff.
    async fn subscribe(
        self: &Arc<Self>,
        feed: &Feed,
        source: &Source,
        event_type: &str,
        stop: &CancellationToken,
    ) {
        let mut backoff = self.settings.backoff_min;
        let mut connected_before = false;
        let mut said_unsupported = false;
        let mut client: Option<VaultClient> = None;
        let resyncs = ResyncGate::new(self.settings.backoff_max);
        loop {
            if client.is_none() {
                match VaultClient::new(&source.provider, &source.scope, self.referents.clone())
                    .await
                {
                    Ok(built) => client = Some(built),
                    Err(e) => tracing::warn!(
                        server = %feed.server,
                        store = %source.scope.name,
                        error = %e,
                        "cannot build a Vault client for the event stream"
                    ),
                }
            }
            if let Some(vault) = client.as_ref() {
                match connect(vault, event_type).await {
                    Ok(socket) => {
                        tracing::info!(server = %feed.server, namespace = ?feed.namespace, event_type, "Vault event stream connected");
                        said_unsupported = false;
                        if connected_before {
                            let (this, feed) = (self.clone(), feed.clone());
                            resyncs.request(move || this.resync(&feed));
                        }
                        connected_before = true;
                        let started = Instant::now();
                        self.metrics
                            .set_event_stream_connected(&feed.server, event_type, true);
                        let ended = self.read(socket, feed, stop).await;
                        self.metrics
                            .set_event_stream_connected(&feed.server, event_type, false);
                        match ended {
                            Ended::Stopped => return,
                            Ended::Lost(why) => {
                                tracing::warn!(server = %feed.server, event_type, why, "Vault event stream lost; reconnecting");
                            }
                        }
                        if started.elapsed() > self.settings.backoff_max {
                            backoff = self.settings.backoff_min;
                        }
                    }
                    Err(ConnectError::Unsupported) => {
                        if !said_unsupported {
                            tracing::warn!(
                                server = %feed.server,
                                event_type,
                                "Vault has no event stream here (it needs Vault Enterprise 1.16 or later; OpenBao and Vault Community have none); use the audit stream instead"
                            );
                            said_unsupported = true;
                        }
                        backoff = self.settings.backoff_max;
                    }
                    Err(ConnectError::Denied(status)) => {
                        tracing::warn!(
                            server = %feed.server,
                            store = %source.scope.name,
                            event_type,
                            status,
                            "Vault refused the event-stream subscription: the store's token needs read on sys/events/subscribe/<type> and subscribe on the KV paths"
                        );
                        // The token may have been revoked: log in again next time.
                        client = None;
                    }
                    Err(ConnectError::Other(why)) => {
                        tracing::warn!(server = %feed.server, event_type, error = %why, "cannot connect to the Vault event stream");
                    }
                }
            }
            let jittered = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(jittered) => {}
            }
            backoff = (backoff * 2).min(self.settings.backoff_max);
        }
    }

    /// Reads frames until the socket ends, goes silent or `stop`.
    async fn read(&self, mut socket: Socket, feed: &Feed, stop: &CancellationToken) -> Ended {
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => {
                    let _ = socket.close(None).await;
                    return Ended::Stopped;
                }
                next = tokio::time::timeout(IDLE, socket.next()) => next,
            };
            let message = match next {
                Err(_) => return Ended::Lost("silent for 90 s"),
                Ok(None) => return Ended::Lost("closed"),
                Ok(Some(Err(_))) => return Ended::Lost("websocket error"),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => self.frame(text.as_bytes(), feed),
                Message::Binary(_) => {
                    // `json=true` was asked for; a protobuf frame is not read.
                    self.metrics.event(SOURCE, EventResult::Malformed);
                }
                Message::Close(_) => return Ended::Lost("closed by Vault"),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    fn frame(&self, frame: &[u8], feed: &Feed) {
        let received = Instant::now();
        let change = match parse_event_frame(frame) {
            Ok(Parsed::Change(change)) => change,
            Ok(Parsed::Ignored(_)) => return,
            Err(e) => {
                self.metrics.event(SOURCE, EventResult::Malformed);
                tracing::warn!(error = %e, "malformed Vault event skipped");
                return;
            }
        };
        self.metrics.event(SOURCE, EventResult::Received);
        // The frame's namespace is relative to the subscription's.
        let change = match (&feed.namespace, change.namespace.as_deref()) {
            (Some(base), Some(inner)) if !inner.starts_with(base.as_str()) => {
                secret_sync_events::vault::KvChange {
                    namespace: Some(format!("{base}/{inner}")),
                    ..change
                }
            }
            (Some(base), None) => secret_sync_events::vault::KvChange {
                namespace: Some(base.clone()),
                ..change
            },
            _ => change,
        };
        // Refused work is counted there; the periodic reconcile covers it.
        if let Ok(affected) =
            self.dispatcher
                .deliver(SOURCE, &change.to_change(Some(&feed.server)), received)
        {
            tracing::debug!(mount = %change.mount, key = %change.key, kind = ?change.kind, affected, "Vault event");
        }
    }

    /// After a gap: sync everything read through this feed's stores.
    fn resync(&self, feed: &Feed) {
        let everything = Change::everything_at(Place::At(secret_sync_events::vault::location(
            Some(&feed.server),
            Some(feed.namespace.as_deref().unwrap_or_default()),
            None,
        )));
        let affected = self.dispatcher.resync(SOURCE, &everything);
        tracing::info!(server = %feed.server, namespace = ?feed.namespace, external_secrets = affected, "resyncing after a gap in the Vault event stream");
    }
}

/// The feed of a Vault store: its server and namespace, spelled as the resolve stage spells
/// them, so the feed's changes match its stores.
fn feed_of(vault: &VaultProvider) -> Feed {
    Feed {
        server: vault.server.trim_end_matches('/').to_owned(),
        namespace: vault
            .namespace
            .as_deref()
            .map(|n| n.trim_matches('/'))
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

enum Ended {
    Stopped,
    Lost(&'static str),
}

#[derive(Debug)]
enum ConnectError {
    /// 404 (or 405): no event stream on this server.
    Unsupported,
    /// 401 or 403.
    Denied(u16),
    Other(String),
}

/// Opens the websocket for `event_type` as `vault`'s store, following redirects to the active node.
async fn connect(vault: &VaultClient, event_type: &str) -> Result<Socket, ConnectError> {
    let access = vault
        .stream_access()
        .await
        .map_err(|e| ConnectError::Other(e.to_string()))?;
    let tls = tls_config(&access).map_err(|e| ConnectError::Other(format!("{e:#}")))?;
    let mut url = format!(
        "{}sys/events/subscribe/{event_type}?json=true",
        websocket_base(&access.base)
    );
    for _ in 0..=MAX_REDIRECTS {
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::Other(format!("bad event-stream URL: {e}")))?;
        for (name, value) in &access.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let connector = tls
            .clone()
            .map(|config| tokio_tungstenite::Connector::Rustls(Arc::new(config)));
        match tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector).await
        {
            Ok((socket, _)) => return Ok(socket),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                match status {
                    307 | 308 => {
                        let location = response
                            .headers()
                            .get("location")
                            .and_then(|l| l.to_str().ok())
                            .ok_or_else(|| {
                                ConnectError::Other("a redirect without a Location".into())
                            })?;
                        url = websocket_base(location);
                    }
                    404 | 405 => return Err(ConnectError::Unsupported),
                    401 | 403 => return Err(ConnectError::Denied(status)),
                    _ => {
                        return Err(ConnectError::Other(format!(
                            "Vault answered {status} to the subscription"
                        )));
                    }
                }
            }
            Err(e) => return Err(ConnectError::Other(e.to_string())),
        }
    }
    Err(ConnectError::Other("too many redirects".into()))
}

/// `http://` → `ws://`, `https://` → `wss://`.
fn websocket_base(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        url.to_owned()
    }
}

/// The TLS client configuration for an `https://` server: the store's CA bundle (else the
/// system's roots) and its client certificate, if any.
fn tls_config(access: &StreamAccess) -> anyhow::Result<Option<rustls::ClientConfig>> {
    use anyhow::Context as _;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    if !access.base.starts_with("https://") {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    match &access.ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(cert.context("the Vault CA bundle is not valid PEM")?)
                    .context("the Vault CA bundle holds a bad certificate")?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match &access.identity_pem {
        Some(pem) => {
            let certs = CertificateDer::pem_slice_iter(pem.expose())
                .collect::<Result<Vec<_>, _>>()
                .context("the Vault client certificate is not valid PEM")?;
            let key = PrivateKeyDer::from_pem_slice(pem.expose())
                .context("the Vault client key is not valid PEM")?;
            builder
                .with_client_auth_cert(certs, key)
                .context("the Vault client certificate and key do not fit")?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls_follow_the_server_scheme() {
        assert_eq!(
            websocket_base("https://vault:8200/v1/"),
            "wss://vault:8200/v1/"
        );
        assert_eq!(
            websocket_base("http://127.0.0.1:8200/v1/"),
            "ws://127.0.0.1:8200/v1/"
        );
    }

    #[test]
    fn feeds_are_keyed_by_server_and_namespace_in_one_spelling() {
        let a = feed_of(&VaultProvider {
            server: "https://vault:8200/".into(),
            namespace: Some("/team-a/".into()),
            ..Default::default()
        });
        let b = feed_of(&VaultProvider {
            server: "https://vault:8200".into(),
            namespace: Some("team-a".into()),
            ..Default::default()
        });
        assert_eq!(a, b);
        let root = feed_of(&VaultProvider {
            server: "https://vault:8200".into(),
            namespace: Some(String::new()),
            ..Default::default()
        });
        assert_eq!(root.namespace, None);
    }
}
