//! The reconcilers: ExternalSecret and (Cluster)SecretStore. Each one is a thin shell over the
//! shared engine (`secret-sync-engine`).

pub mod external_secret;
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
        concurrency: config.concurrent,
        store_requeue: config.store_requeue_interval,
        value_reuse: Duration::from_secs(300),
        resync: config.resync_interval,
        providers: Default::default(),
        sync_timeout: Duration::from_secs(120),
        vault_audit: config
            .vault_audit_addr
            .map(|addr| crate::vault_audit::AuditSettings {
                addr,
                allowed_peers: config.vault_audit_allowed_peers.clone(),
                concurrency: 32,
            }),
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
