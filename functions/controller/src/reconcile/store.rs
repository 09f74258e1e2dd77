//! The SecretStore and ClusterSecretStore reconciler: builds the provider client, validates it,
//! and reports ESO's Ready condition (`Valid`, `ValidationUnknown`, `InvalidProviderConfig`).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use secret_sync::stores::{serves, uses_referent_auth};
use secret_sync_crd::well_known::{condition, message, reason};
use secret_sync_crd::{
    ClusterSecretStore, ConditionStatus, GenericStore, SecretStore, SecretStoreCapabilities,
    SecretStoreStatus, SecretStoreStatusCondition, StoreKind,
};
use secret_sync_providers::{BuildOptions, Referents, StoreScope, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::metrics::{Kind, Metrics, ReconcileResult};

/// What the store reconcilers need.
pub struct StoreContext {
    pub client: kube::Client,
    pub referents: Arc<dyn Referents>,
    pub providers: BuildOptions,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub controller_class: String,
    /// ESO's `--store-requeue-interval` (5 minutes by default).
    pub requeue: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreReconcileError {
    #[error("writing the store status failed: {0}")]
    Status(#[source] kube::Error),
}

struct Verdict {
    ready: bool,
    reason: &'static str,
    message: String,
    event: Option<(EventType, String)>,
}

async fn validate<S: GenericStore>(store: &S, ctx: &StoreContext) -> Verdict {
    let spec = store.store_spec();
    if S::STORE_KIND == StoreKind::ClusterSecretStore && uses_referent_auth(&spec.provider) {
        // Credentials live in each using namespace: nothing to validate here (ESO does the same).
        return Verdict {
            ready: true,
            reason: reason::STORE_VALIDATION_UNKNOWN,
            message: message::STORE_VALIDATION_UNKNOWN.into(),
            event: None,
        };
    }
    let scope = StoreScope {
        kind: S::STORE_KIND,
        name: store.name_any(),
        namespace: store.namespace().unwrap_or_default(),
    };
    let provider = match secret_sync_providers::build(
        &spec.provider,
        &scope,
        ctx.referents.clone(),
        &ctx.providers,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            return Verdict {
                ready: false,
                reason: reason::STORE_INVALID_PROVIDER_CONFIG,
                message: format!("{}: {e}", message::STORE_ERR_CREATE_CLIENT),
                event: Some((EventType::Warning, e.to_string())),
            };
        }
    };
    match provider.validate().await {
        Ok(Validation::Ready) => Verdict {
            ready: true,
            reason: reason::STORE_VALID,
            message: message::STORE_VALIDATED.into(),
            event: None,
        },
        Ok(Validation::Unknown) => Verdict {
            ready: true,
            reason: reason::STORE_VALIDATION_UNKNOWN,
            message: message::STORE_VALIDATION_UNKNOWN.into(),
            event: None,
        },
        Err(e) => Verdict {
            ready: false,
            reason: reason::STORE_INVALID_PROVIDER_CONFIG,
            message: format!("{}: {e}", message::STORE_ERR_VALIDATE),
            event: Some((EventType::Warning, e.to_string())),
        },
    }
}

fn next_status<S: GenericStore>(store: &S, verdict: &Verdict) -> SecretStoreStatus {
    let previous = store.store_status().cloned().unwrap_or_default();
    let status = ConditionStatus::from_bool(verdict.ready);
    let transition = secret_sync::status::transition_time(
        previous
            .condition(condition::READY)
            .map(|c| (c.status, c.last_transition_time.as_ref())),
        status,
        Timestamp::now(),
    );
    let mut conditions: Vec<_> = previous
        .conditions
        .iter()
        .filter(|c| c.type_ != condition::READY)
        .cloned()
        .collect();
    conditions.insert(
        0,
        SecretStoreStatusCondition {
            type_: condition::READY.into(),
            status,
            reason: Some(verdict.reason.into()),
            message: Some(verdict.message.clone()),
            last_transition_time: transition,
        },
    );
    SecretStoreStatus {
        conditions,
        capabilities: Some(SecretStoreCapabilities::ReadWrite),
    }
}

/// Reconciles one store of either kind.
pub async fn reconcile<S>(
    store: Arc<S>,
    ctx: Arc<StoreContext>,
) -> Result<Action, StoreReconcileError>
where
    S: StoreApi + Clone + Serialize + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let kind = match S::STORE_KIND {
        StoreKind::SecretStore => Kind::SecretStore,
        StoreKind::ClusterSecretStore => Kind::ClusterSecretStore,
    };
    let (namespace, name) = (store.namespace().unwrap_or_default(), store.name_any());
    if store.meta().deletion_timestamp.is_some() {
        ctx.metrics.clear(kind, &namespace, &name);
        return Ok(Action::await_change());
    }
    if !serves(store.store_spec(), &ctx.controller_class) {
        return Ok(Action::await_change());
    }
    let _timer = ctx.metrics.reconcile_timer(kind, &namespace, &name);
    let verdict = validate(store.as_ref(), &ctx).await;
    let status = next_status(store.as_ref(), &verdict);
    let changed = store.store_status() != Some(&status);
    if changed {
        let api = S::api(ctx.client.clone(), &namespace);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .map_err(StoreReconcileError::Status)?;
        let (type_, note) = verdict
            .event
            .clone()
            .unwrap_or((EventType::Normal, verdict.message.clone()));
        let event = Event {
            type_,
            reason: verdict.reason.into(),
            note: Some(note),
            action: "Validate".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &store.object_ref(&())).await {
            tracing::debug!(error = %e, "could not publish an Event");
        }
        tracing::info!(
            kind = S::STORE_KIND.as_str(),
            namespace,
            name,
            ready = verdict.ready,
            reason = verdict.reason,
            "store validated"
        );
    }
    ctx.metrics
        .set_ready(kind, &namespace, &name, verdict.ready);
    ctx.metrics.reconcile_result(kind, ReconcileResult::Success);
    let interval = store
        .store_spec()
        .refresh_interval()
        .ok()
        .flatten()
        .unwrap_or(ctx.requeue);
    Ok(Action::requeue(if verdict.ready {
        interval
    } else {
        interval.min(Duration::from_secs(30))
    }))
}

pub fn error_policy<S>(store: Arc<S>, error: &StoreReconcileError, ctx: Arc<StoreContext>) -> Action
where
    S: GenericStore,
{
    let kind = match S::STORE_KIND {
        StoreKind::SecretStore => Kind::SecretStore,
        StoreKind::ClusterSecretStore => Kind::ClusterSecretStore,
    };
    ctx.metrics.reconcile_result(kind, ReconcileResult::Error);
    tracing::warn!(name = store.name_any(), error = %error, "store reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// The API of each store kind: SecretStores are namespaced, ClusterSecretStores are not.
pub trait StoreApi: GenericStore + Sized {
    fn api(client: kube::Client, namespace: &str) -> Api<Self>;
}

impl StoreApi for SecretStore {
    fn api(client: kube::Client, namespace: &str) -> Api<Self> {
        Api::namespaced(client, namespace)
    }
}

impl StoreApi for ClusterSecretStore {
    fn api(client: kube::Client, _: &str) -> Api<Self> {
        Api::all(client)
    }
}
