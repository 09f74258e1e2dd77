//! The GeneratorState reconciler, as ESO's: a GeneratorState carries ESO's finalizer while it
//! exists, is deleted at its `garbageCollectionDeadline` (set when a newer generation replaced
//! it), and when deleted (at its deadline, or with the ExternalSecret or PushSecret owning it)
//! runs its generator's cleanup (a Vault lease or token revoked) before the finalizer goes. A
//! cleanup that fails keeps the finalizer and is retried.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use secret_sync::Engine;
use secret_sync_crd::GeneratorState;
use secret_sync_crd::generators::FINALIZER_GENERATOR_STATE;
use secret_sync_providers::ProviderError;
use serde_json::json;

pub struct GsContext {
    pub engine: Arc<Engine>,
}

#[derive(Debug, thiserror::Error)]
pub enum GsError {
    #[error("GeneratorState update failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("cleaning up what the generator made failed: {0}")]
    Cleanup(#[from] ProviderError),
}

pub async fn reconcile(gs: Arc<GeneratorState>, ctx: Arc<GsContext>) -> Result<Action, GsError> {
    let ns = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let api: Api<GeneratorState> = Api::namespaced(ctx.engine.client().clone(), &ns);
    let finalizers = gs.finalizers();
    let held = finalizers.iter().any(|f| f == FINALIZER_GENERATOR_STATE);
    if gs.meta().deletion_timestamp.is_some() {
        if !held {
            return Ok(Action::await_change());
        }
        secret_sync::generate::cleanup(
            ctx.engine.clients(),
            &ns,
            &gs.spec.resource,
            &gs.spec.state,
        )
        .await?;
        tracing::debug!(namespace = %ns, name = %name, "generated values cleaned up");
        let others: Vec<&String> = finalizers
            .iter()
            .filter(|f| *f != FINALIZER_GENERATOR_STATE)
            .collect();
        set_finalizers(&api, &gs, json!(others)).await?;
        return Ok(Action::await_change());
    }
    if !held {
        let mut all: Vec<&str> = finalizers.iter().map(String::as_str).collect();
        all.push(FINALIZER_GENERATOR_STATE);
        set_finalizers(&api, &gs, json!(all)).await?;
        return Ok(Action::await_change());
    }
    let Some(deadline) = &gs.spec.garbage_collection_deadline else {
        return Ok(Action::await_change());
    };
    let left = deadline.0.duration_since(Timestamp::now());
    if left.is_positive() {
        return Ok(Action::requeue(
            Duration::try_from(left).unwrap_or(Duration::from_secs(1)),
        ));
    }
    match api.delete(&name, &DeleteParams::default()).await {
        Err(e) if !is_not_found(&e) => return Err(e.into()),
        _ => {}
    }
    Ok(Action::await_change())
}

/// Replaces the finalizer list, if the object is as it was read (its resourceVersion).
async fn set_finalizers(
    api: &Api<GeneratorState>,
    gs: &GeneratorState,
    finalizers: serde_json::Value,
) -> Result<(), kube::Error> {
    let patch = json!({ "metadata": {
        "finalizers": finalizers,
        "resourceVersion": gs.resource_version(),
    } });
    match api
        .patch(
            &gs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Err(e) if !is_not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

pub fn error_policy(gs: Arc<GeneratorState>, error: &GsError, _ctx: Arc<GsContext>) -> Action {
    tracing::warn!(namespace = ?gs.namespace(), name = %gs.name_any(), error = %error, "GeneratorState reconcile failed");
    Action::requeue(Duration::from_secs(10))
}
