//! The Vault / OpenBao audit-stream receiver: a `socket` audit device (community editions have
//! it) writes one JSON line per request and response to this TCP listener; every successful KV
//! write, patch, delete, undelete, destroy or metadata change syncs the ExternalSecrets that read
//! the key at once.
//!
//! - Only connections from the configured peers are accepted; others are closed unread.
//! - A line is parsed by `secret_sync_events::vault` (which never reads an HMAC'd field); the KV
//!   mounts are those of the cached Vault stores. Malformed lines are counted
//!   (`secret_sync_events_total{source="vault-audit",result="malformed"}`) and skipped; a line
//!   longer than 1 MiB ends the connection (Vault reconnects).
//! - Values are read from Vault afresh after the line arrived, never taken from the line.
//! - Vault fails requests when no audit device can log them: enable a second device (such as
//!   `file_path=discard`) so that a restart of this receiver never blocks Vault.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use kube::runtime::reflector::Store;
use secret_sync::resolve::{StoreCaches, affected_by_vault};
use secret_sync::{Engine, Trigger};
use secret_sync_crd::ExternalSecret;
use secret_sync_events::vault::{KvVersion, MAX_AUDIT_LINE_BYTES, Parsed, parse_audit_line};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, EventResult, Metrics};

const SOURCE: &str = "vault-audit";

/// Where the receiver listens and whom it accepts.
#[derive(Clone, Debug)]
pub struct AuditSettings {
    pub addr: SocketAddr,
    /// Peers allowed to connect; empty accepts loopback only.
    pub allowed_peers: Vec<IpAddr>,
    /// How many affected ExternalSecrets of one change sync at once.
    pub concurrency: usize,
}

pub struct AuditReceiver {
    pub settings: AuditSettings,
    pub engine: Arc<Engine>,
    pub external_secrets: Store<ExternalSecret>,
    pub stores: StoreCaches,
    pub metrics: Metrics,
}

impl AuditReceiver {
    fn allowed(&self, peer: IpAddr) -> bool {
        if self.settings.allowed_peers.is_empty() {
            peer.is_loopback()
        } else {
            self.settings.allowed_peers.contains(&peer)
        }
    }

    /// Accepts connections until `shutdown`.
    pub async fn run(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let _ = self.external_secrets.wait_until_ready().await;
        tracing::info!(addr = %self.settings.addr, "Vault audit receiver started");
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) if self.allowed(peer.ip()) => {
                    let this = self.clone();
                    let stop = shutdown.clone();
                    tokio::spawn(async move { this.connection(stream, stop).await });
                }
                Ok((_, peer)) => {
                    tracing::warn!(peer = %peer.ip(), "Vault audit connection refused: peer not allowed");
                }
                Err(e) => tracing::warn!(error = %e, "accepting a Vault audit connection failed"),
            }
        }
    }

    async fn connection(&self, stream: TcpStream, shutdown: CancellationToken) {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = tokio::select! {
                () = shutdown.cancelled() => return,
                r = read_line(&mut reader, &mut line) => r,
            };
            match read {
                Ok(0) => return,
                Ok(_) => self.line(&line).await,
                Err(e) => {
                    self.metrics.event(SOURCE, EventResult::Malformed);
                    tracing::warn!(error = %e, "Vault audit connection closed");
                    return;
                }
            }
        }
    }

    async fn line(&self, line: &[u8]) {
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
        let targets = affected_by_vault(&change, &self.external_secrets.state(), &self.stores);
        tracing::debug!(mount = %change.mount, key = %change.key, kind = ?change.kind, affected = targets.len(), "Vault change");
        if targets.is_empty() {
            self.metrics.event(SOURCE, EventResult::Dropped);
            return;
        }
        self.metrics.event(SOURCE, EventResult::Matched);
        let trigger = Trigger::ProviderChanged { at: received };
        futures::stream::iter(targets)
            .for_each_concurrent(self.settings.concurrency, |es| async move {
                if let Err(e) = self.engine.sync(&es, trigger).await {
                    // The controller's own reconcile retries it; nothing to keep here.
                    tracing::debug!(error = %e, "event-driven sync failed");
                }
            })
            .await;
        self.metrics
            .sync_latency(metrics::Trigger::Event, received.elapsed());
    }
}

/// Reads one line (without its newline) of at most `MAX_AUDIT_LINE_BYTES`.
async fn read_line(
    reader: &mut BufReader<TcpStream>,
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
