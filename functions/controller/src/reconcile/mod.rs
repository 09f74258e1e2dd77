//! The reconcilers: ExternalSecret, (Cluster)SecretStore, ClusterExternalSecret, PushSecret.
//! Each one is a thin shell over the shared engine (`secret-sync-engine`).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::context::Context;

/// Runs every reconciler until `shutdown` is cancelled, then returns once in-flight reconciles
/// have finished. Called only while this replica leads (or always, without leader election).
///
/// Placeholder until the reconcilers land: it has no caches to sync, so it reports ready at once
/// and waits for shutdown. The real one sets `ctx.readiness` after its reflectors' first sync.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> anyhow::Result<()> {
    ctx.readiness.set_ready(true);
    shutdown.cancelled().await;
    Ok(())
}
