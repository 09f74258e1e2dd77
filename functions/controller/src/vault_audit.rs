//! The Vault / OpenBao audit-stream receiver: a `socket` audit device (community editions have
//! it) writes one JSON line per request and response to this TCP listener; every successful KV
//! write, patch, delete, undelete, destroy or metadata change syncs the ExternalSecrets that read
//! the key at once.
//!
//! - Only connections from the configured peers are accepted; others are closed unread and
//!   counted (`result="unauthorized"`). At most `max_connections` are open at once; past that a
//!   connection is closed at once (`result="overloaded"`).
//! - TLS is optional (`--vault-audit-tls-cert`, `--vault-audit-tls-key`): Vault's socket device
//!   speaks plain TCP, so TLS is for a forwarder in between (stunnel, a sidecar, Fluent Bit).
//! - Reading never waits for a sync: the affected ExternalSecrets go to the [`Dispatcher`], which
//!   coalesces repeated changes and bounds the work in flight. Vault blocks its requests while an
//!   audit device cannot write, so a slow sync must never slow the reader.
//! - A line is parsed by `secret_sync_events::vault` (which never reads an HMAC'd field); the KV
//!   mounts are those of the cached Vault stores. Malformed lines are counted
//!   (`secret_sync_events_total{source="vault-audit",result="malformed"}`) and skipped; a line
//!   longer than 1 MiB ends the connection (Vault reconnects).
//! - After a gap (a connection ended, a new one came) every ExternalSecret reading through a
//!   Vault store is synced, since Vault may drop the entry its broken connection was writing.
//! - Values are read from Vault afresh after the line arrived, never taken from the line.
//! - At start-up (and when this replica becomes the leader) the listener is bound at once but
//!   accepts only once the caches a line resolves against are listed: a device connecting
//!   meanwhile waits in the listen backlog, its lines in the socket buffers (bounded by the
//!   kernel), and is read then. Nothing is resolved against a cache still loading.
//! - Vault fails requests when no audit device can log them: enable a second device (such as
//!   `file_path=discard`) so that a restart of this receiver never blocks Vault.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use secret_sync::resolve::StoreCaches;
use secret_sync_events::vault;
use secret_sync_events::vault::{KvVersion, MAX_AUDIT_LINE_BYTES, Parsed, parse_audit_line};
use secret_sync_events::{Change, Place};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::dispatch::{Dispatcher, ResyncGate};
use crate::metrics::{EventResult, Metrics};

const SOURCE: &str = "vault-audit";

/// At most one resync after a gap per this long.
const RESYNC_SPACING: std::time::Duration = std::time::Duration::from_secs(30);

/// Where the receiver listens and whom it accepts.
#[derive(Clone, Debug)]
pub struct AuditSettings {
    pub addr: SocketAddr,
    /// Peers allowed to connect; empty accepts loopback only.
    pub allowed_peers: Vec<IpAddr>,
    /// At most this many connections at once.
    pub max_connections: usize,
    /// TLS on the listener, if configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The Vault server whose audit device writes here, as stores name it: only stores on it
    /// are matched. `None` matches stores on any server (an audit line does not say which
    /// server wrote it).
    pub server: Option<String>,
}

impl AuditSettings {
    /// Plain TCP on `addr`, loopback peers only, 16 connections.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            allowed_peers: Vec::new(),
            max_connections: 16,
            tls: None,
            server: None,
        }
    }
}

/// A TLS server configuration from a PEM certificate chain and key.
pub fn server_tls(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<rustls::ServerConfig> {
    use anyhow::Context as _;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("the audit listener's certificate is not valid PEM")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .context("the audit listener's key is not valid PEM")?;
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the audit listener's certificate and key do not fit")
}

pub struct AuditReceiver {
    settings: AuditSettings,
    dispatcher: Arc<Dispatcher>,
    stores: StoreCaches,
    metrics: Metrics,
    /// A connection has ended since the last resync: the next one starts with a resync.
    gap: AtomicBool,
    resyncs: Arc<ResyncGate>,
}

impl AuditReceiver {
    pub fn new(
        settings: AuditSettings,
        dispatcher: Arc<Dispatcher>,
        stores: StoreCaches,
        metrics: Metrics,
    ) -> Self {
        Self {
            settings,
            dispatcher,
            stores,
            metrics,
            gap: AtomicBool::new(false),
            resyncs: ResyncGate::new(RESYNC_SPACING),
        }
    }

    /// Vault's socket device may drop the entry it was writing when its connection breaks
    /// (Vault's docs say so), and writes nothing while it is down. So when a connection comes
    /// after one has ended, every ExternalSecret reading through a Vault store (on
    /// `--vault-audit-server`, when given) is synced: one read per key, shared.
    /// Resyncs are spaced by [`RESYNC_SPACING`] ([`ResyncGate`]), so a flapping device costs
    /// one resync per spacing, not one per reconnect.
    fn resync_after_gap(self: &Arc<Self>) {
        if !self.gap.swap(false, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        self.resyncs.request(move || {
            let everything = Change::everything_at(Place::At(vault::location(
                this.settings.server.as_deref(),
                None,
                None,
            )));
            let affected = this.dispatcher.resync(SOURCE, &everything);
            tracing::info!(
                external_secrets = affected,
                "Vault audit stream reconnected; resyncing what an entry lost in between could have changed"
            );
        });
    }

    fn allowed(&self, peer: IpAddr) -> bool {
        if self.settings.allowed_peers.is_empty() {
            peer.is_loopback()
        } else {
            self.settings.allowed_peers.contains(&peer)
        }
    }

    /// Accepts connections until `shutdown`.
    pub async fn run(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        // The mount table and the resolve read the store caches too.
        self.dispatcher.ingest().ready().await;
        tracing::info!(addr = %self.settings.addr, tls = self.settings.tls.is_some(), "Vault audit receiver started");
        let slots = Arc::new(Semaphore::new(self.settings.max_connections.max(1)));
        let acceptor = self
            .settings
            .tls
            .clone()
            .map(tokio_rustls::TlsAcceptor::from);
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a Vault audit connection failed");
                    continue;
                }
            };
            if !self.allowed(peer.ip()) {
                self.metrics.event(SOURCE, EventResult::Unauthorized);
                tracing::warn!(peer = %peer.ip(), "Vault audit connection refused: peer not allowed");
                continue;
            }
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                self.metrics.event(SOURCE, EventResult::Overloaded);
                tracing::warn!(peer = %peer.ip(), max = self.settings.max_connections, "Vault audit connection refused: too many open");
                continue;
            };
            let this = self.clone();
            let stop = shutdown.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    None => this.connection(stream, slot, stop).await,
                    Some(acceptor) => {
                        // A refused handshake is counted and its slot freed while its socket is still
                        // open, so whoever sees the close also sees both (as with a refused peer).
                        let accept = acceptor.accept(stream).into_fallible();
                        tokio::pin!(accept);
                        let handshake =
                            tokio::time::timeout(std::time::Duration::from_secs(10), &mut accept)
                                .await;
                        match handshake {
                            Ok(Ok(tls)) => this.connection(tls, slot, stop).await,
                            Ok(Err((e, stream))) => {
                                this.metrics.event(SOURCE, EventResult::Unauthorized);
                                tracing::warn!(peer = %peer.ip(), error = %e, "Vault audit TLS handshake failed");
                                drop(slot);
                                drop(stream);
                            }
                            Err(_) => {
                                this.metrics.event(SOURCE, EventResult::Unauthorized);
                                tracing::warn!(peer = %peer.ip(), "Vault audit TLS handshake timed out");
                                drop(slot);
                            }
                        }
                    }
                }
            });
        }
    }

    async fn connection<S: AsyncRead + Unpin>(
        self: &Arc<Self>,
        stream: S,
        slot: OwnedSemaphorePermit,
        shutdown: CancellationToken,
    ) {
        self.resync_after_gap();
        let mut reader = BufReader::new(stream);
        self.read_lines(&mut reader, shutdown).await;
        self.gap.store(true, Ordering::Release);
        // The slot is free before the socket closes: a device that reconnects as soon as it sees
        // the close is not refused as one connection too many.
        drop(slot);
        drop(reader);
    }

    async fn read_lines<S: AsyncRead + Unpin>(
        &self,
        reader: &mut BufReader<S>,
        shutdown: CancellationToken,
    ) {
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = tokio::select! {
                () = shutdown.cancelled() => return,
                r = read_line(reader, &mut line) => r,
            };
            match read {
                Ok(0) => return,
                Ok(_) => self.line(&line),
                Err(e) => {
                    self.metrics.event(SOURCE, EventResult::Malformed);
                    tracing::warn!(error = %e, "Vault audit connection closed");
                    return;
                }
            }
        }
    }

    fn line(&self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let received = Instant::now();
        let mounts = |namespace: Option<&str>, mount: &str| -> Option<KvVersion> {
            self.stores.vault_kv_version(namespace, mount)
        };
        let change = match parse_audit_line(line, &mounts) {
            Ok(Parsed::Change(change)) => change,
            Ok(Parsed::Ignored(_)) => return,
            Err(e) => {
                self.metrics.event(SOURCE, EventResult::Malformed);
                tracing::warn!(error = %e, "malformed Vault audit line skipped");
                return;
            }
        };
        self.metrics.event(SOURCE, EventResult::Received);
        let normalized = change.to_change(self.settings.server.as_deref());
        match self.dispatcher.deliver(SOURCE, &normalized, received) {
            Ok(affected) => {
                tracing::debug!(mount = %change.mount, key = %change.key, kind = ?change.kind, affected, "Vault change");
            }
            Err(_) => tracing::warn!(
                "Vault change not synced now: too many changes in flight; the periodic reconcile covers it"
            ),
        }
    }
}

/// Reads one line (without its newline) of at most `MAX_AUDIT_LINE_BYTES`.
async fn read_line<S: AsyncRead + Unpin>(
    reader: &mut BufReader<S>,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(line.len());
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if line.len() + chunk.len() > MAX_AUDIT_LINE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "an audit line is longer than 1 MiB",
            ));
        }
        line.extend_from_slice(chunk);
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(line.len() + 1);
        }
    }
}
