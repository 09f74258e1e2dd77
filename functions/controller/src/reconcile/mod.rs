//! The reconcilers: ExternalSecret, (Cluster)SecretStore, ClusterExternalSecret, PushSecret and
//! ClusterPushSecret. Each one is a thin shell over the shared engine (`secret-sync-engine`).

pub mod cluster_external_secret;
pub mod cluster_push_secret;
pub mod external_secret;
pub mod generator_state;
pub mod push_secret;
pub mod run;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::context::Context;

/// Runs every reconciler until `shutdown` is cancelled, then returns once in-flight reconciles
/// have finished. Called only while this replica leads (or always, without leader election).
/// `/readyz` turns ready once the caches have their first full list.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = &ctx.config;
    let settings = run::RunSettings {
        namespace: Some(config.namespace.clone()).filter(|n| !n.is_empty()),
        controller_class: config.controller_class.clone(),
        cluster_external_secrets: config.enable_cluster_external_secret_reconciler,
        push_secrets: config.enable_push_secret_reconciler,
        cluster_push_secrets: config.enable_cluster_push_secret_reconciler,
        template_sources: config.watch_template_sources,
        kubernetes_watch: config.watch_kubernetes_stores,
        concurrency: config.concurrent,
        store_requeue: config.store_requeue_interval,
        value_reuse: Duration::from_secs(300),
        resync: config.resync_interval,
        providers: Default::default(),
        sync_timeout: Duration::from_secs(120),
        store_wait: secret_sync::ingest::STORE_WAIT,
        flood_gate: config.enable_flood_gate,
        generator_state: config.enable_generator_state,
        rollout_on_change: config.rollout_on_change,
        generic_targets: config.unsafe_allow_generic_targets,
        success_events: config.success_events,
        deferred_statuses: config.deferred_statuses,
        generator_gc_grace: config.generator_gc_grace_period,
        vault_audit: match config.vault_audit_addr {
            Some(addr) => Some(crate::vault_audit::AuditSettings {
                allowed_peers: config.vault_audit_allowed_peers.clone(),
                max_connections: config.vault_audit_max_connections,
                server: config.vault_audit_server.clone(),
                tls: audit_tls(config)?.map(Arc::new),
                ..crate::vault_audit::AuditSettings::new(addr)
            }),
            None => None,
        },
        vault_events: config
            .vault_event_stream
            .then(|| crate::vault_events::EventStreamSettings {
                event_types: config.vault_event_types.clone(),
                ..Default::default()
            }),
        webhook: match (config.webhook_addr, &config.webhook_secret_file) {
            (Some(addr), Some(file)) => Some(crate::webhook::WebhookSettings {
                addr,
                secrets: crate::webhook::read_secrets(file)?,
                replay_window: config.webhook_replay_window.as_secs(),
                rate_per_second: config.webhook_rate_limit,
            }),
            _ => None,
        },
        webhook_slot: ctx.webhook_slot.clone(),
        sharding: ctx
            .peers
            .clone()
            .map(|peers| (peers, config.shard_peer_addr)),
        sqs: config
            .sqs_queue_url
            .clone()
            .map(|url| crate::sqs::SqsSettings {
                visibility: config.sqs_visibility_timeout,
                ..crate::sqs::SqsSettings::new(url)
            }),
    };
    run::run(
        ctx.client.clone(),
        ctx.metrics.clone(),
        settings,
        Some(ctx.readiness.clone()),
        shutdown,
    )
    .await
}

/// The audit listener's TLS configuration, when its certificate and key are given.
fn audit_tls(config: &crate::Config) -> anyhow::Result<Option<rustls::ServerConfig>> {
    use anyhow::Context as _;
    let (Some(cert), Some(key)) = (&config.vault_audit_tls_cert, &config.vault_audit_tls_key)
    else {
        return Ok(None);
    };
    let cert = std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
    let key = std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
    crate::vault_audit::server_tls(&cert, &key).map(Some)
}

/// A `status` merge patch that also clears the `fields` the status leaves out: an omitted field
/// keeps its old value under a merge patch (a namespace that recovered would stay listed as
/// failed, and every reconcile would patch again).
pub(crate) fn status_patch(status: &impl serde::Serialize, fields: &[&str]) -> serde_json::Value {
    let mut body = serde_json::to_value(status).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(present) = body.as_object_mut() {
        for field in fields {
            present.entry(*field).or_insert(serde_json::Value::Null);
        }
    }
    serde_json::json!({ "status": body })
}
