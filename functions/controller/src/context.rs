//! What every reconciler and entry point shares: built once in `main`, handed out as
//! `Arc<Context>`.

use std::sync::Arc;

use crate::config::Config;
use crate::http::Readiness;
use crate::metrics::Metrics;

/// Clients and handles shared by the reconcilers. Cheap to share (`Arc<Context>`); nothing in it
/// holds secret bytes.
#[derive(Clone)]
pub struct Context {
    /// The Kubernetes client (one connection pool for the whole process).
    pub client: kube::Client,
    /// The metrics handle; `/metrics` serves the same registry.
    pub metrics: Metrics,
    /// The parsed flags.
    pub config: Arc<Config>,
    /// `/readyz`: set once the reconcilers' caches have synced.
    pub readiness: Readiness,
    /// The webhook's handler slot when `main` listens on every replica.
    pub webhook_slot: Option<crate::webhook::WebhookSlot>,
    /// Sharded (`--shards`): this replica's shards and peers.
    pub peers: Option<Arc<crate::shards::Peers>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(
        client: kube::Client,
        metrics: Metrics,
        config: Arc<Config>,
        readiness: Readiness,
    ) -> Self {
        Context {
            client,
            metrics,
            config,
            readiness,
            webhook_slot: None,
            peers: None,
        }
    }
}
