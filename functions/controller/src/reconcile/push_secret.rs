//! The PushSecret reconciler: a shell over the engine's pass ([`secret_sync::push`]) that turns
//! what it did into when to look again, and into metrics.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use secret_sync::Engine;
use secret_sync::index::{PushIndex, SourceKind};
use secret_sync::push::{PushError, Pushed};
use secret_sync::resolve::StoreCaches;
use secret_sync_crd::PushSecret;

use crate::metrics::{Kind, Metrics, ReconcileResult};

pub struct PsContext {
    pub engine: Arc<Engine>,
    pub stores: StoreCaches,
    pub metrics: Metrics,
}

pub async fn reconcile(ps: Arc<PushSecret>, ctx: Arc<PsContext>) -> Result<Action, PushError> {
    let (ns, name) = (ps.namespace().unwrap_or_default(), ps.name_any());
    if ps.metadata.deletion_timestamp.is_some() {
        ctx.metrics.clear(Kind::PushSecret, &ns, &name);
    }
    let _timer = ctx.metrics.reconcile_timer(Kind::PushSecret, &ns, &name);
    match ctx.engine.push(&ps, &ctx.stores).await {
        Ok(Pushed::Foreign) => Ok(Action::requeue(Duration::from_secs(300))),
        Ok(Pushed::Pending) => Ok(Action::requeue(Duration::from_secs(1))),
        Ok(Pushed::Finalizer | Pushed::Finalized) => Ok(Action::await_change()),
        Ok(Pushed::Synced { refresh, .. }) => {
            ctx.metrics.set_ready(Kind::PushSecret, &ns, &name, true);
            ctx.metrics
                .reconcile_result(Kind::PushSecret, ReconcileResult::Success);
            Ok(refresh.map_or_else(Action::await_change, Action::requeue))
        }
        Err(e) => {
            if matches!(e, PushError::Failed(_)) && ps.metadata.deletion_timestamp.is_none() {
                ctx.metrics.set_ready(Kind::PushSecret, &ns, &name, false);
            }
            Err(e)
        }
    }
}

pub fn error_policy(ps: Arc<PushSecret>, error: &PushError, ctx: Arc<PsContext>) -> Action {
    ctx.metrics
        .reconcile_result(Kind::PushSecret, ReconcileResult::Error);
    tracing::debug!(name = %ps.name_any(), error = %error, "PushSecret reconcile failed");
    Action::requeue(Duration::from_secs(10))
}

/// The PushSecrets in `secret`'s namespace whose source it is (by name or labels): a lookup in
/// the push index, for the watch on Secrets.
pub fn readers_of(
    secret: &kube::core::PartialObjectMeta<Secret>,
    index: &PushIndex,
) -> Vec<ObjectRef<PushSecret>> {
    index.source_readers(
        SourceKind::Secret,
        &secret.namespace().unwrap_or_default(),
        &secret.name_any(),
        secret.labels(),
    )
}
