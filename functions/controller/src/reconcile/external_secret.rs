//! The ExternalSecret reconciler: a thin wrapper that hands each ExternalSecret to the engine and
//! turns the outcome into the next requeue.
//!
//! Wake-ups: the ExternalSecret changed; its Secret changed or was deleted (an Owner Secret comes
//! back at once); a store it reads changed (an ExternalSecret waiting on a store syncs as soon as
//! the store becomes Ready, where ESO only retries); its refresh interval elapsed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use secret_sync::{Engine, SyncError, Trigger};
use secret_sync_crd::{ExternalSecret, ExternalSecretConditionType, StoreKind};

use crate::metrics::{Kind, Metrics, ReconcileResult};

/// What the ExternalSecret reconciler needs.
pub struct EsContext {
    pub engine: Arc<Engine>,
    pub metrics: Metrics,
    /// The shards this replica syncs (all of them unless sharded).
    pub shards: Arc<secret_sync::shards::Shards>,
    /// Consecutive failures per object, for exponential backoff (ESO: 1 s doubling to 7 min).
    failures: Mutex<HashMap<ObjectRef<ExternalSecret>, u32>>,
}

impl EsContext {
    pub fn new(
        engine: Arc<Engine>,
        metrics: Metrics,
        shards: Arc<secret_sync::shards::Shards>,
    ) -> Self {
        Self {
            engine,
            metrics,
            shards,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Drops what is kept for a deleted ExternalSecret: its metric series and failure count.
    pub fn forget(&self, es: &ObjectRef<ExternalSecret>) {
        self.metrics.forget(
            Kind::ExternalSecret,
            es.namespace.as_deref().unwrap_or_default(),
            &es.name,
        );
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(es);
    }

    fn reset_failures(&self, es: &ExternalSecret) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ObjectRef::from_obj(es));
    }

    fn next_backoff(&self, es: &ExternalSecret) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(ObjectRef::from_obj(es)).or_insert(0);
        *n = n.saturating_add(1);
        backoff(*n)
    }
}

/// ESO's per-item backoff: 1 s, doubling, at most 7 minutes.
pub fn backoff(failures: u32) -> Duration {
    let secs = 1u64
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u64::MAX);
    Duration::from_secs(secs.min(420))
}

pub async fn reconcile(es: Arc<ExternalSecret>, ctx: Arc<EsContext>) -> Result<Action, SyncError> {
    let (namespace, name) = (es.namespace().unwrap_or_default(), es.name_any());
    let Some(_shard) = ctx.shards.enter(&namespace) else {
        // Another replica's: what was kept here for it (a shard handed over) goes.
        ctx.forget(&ObjectRef::from_obj(es.as_ref()));
        return Ok(Action::await_change());
    };
    if es.metadata.deletion_timestamp.is_some() {
        // No finalizer of ours: the garbage collector removes Owner Secrets.
        ctx.metrics.clear(Kind::ExternalSecret, &namespace, &name);
        return Ok(Action::await_change());
    }
    let _timer = ctx
        .metrics
        .reconcile_timer(Kind::ExternalSecret, &namespace, &name);
    ctx.metrics.sync_call(&namespace, &name);
    let outcome = ctx.engine.sync(&es, Trigger::Reconcile).await?;
    ctx.reset_failures(&es);
    ctx.metrics
        .reconcile_result(Kind::ExternalSecret, ReconcileResult::Success);
    if outcome.due.is_some() {
        ctx.metrics
            .set_ready(Kind::ExternalSecret, &namespace, &name, true);
    } else if let Some(ready) = es
        .status
        .as_ref()
        .and_then(|s| s.condition(ExternalSecretConditionType::Ready))
    {
        // Not due: its condition as it stands, so that a replica that has just started, or
        // taken the shard over, reports it too.
        ctx.metrics.set_ready(
            Kind::ExternalSecret,
            &namespace,
            &name,
            ready.status == secret_sync_crd::ConditionStatus::True,
        );
    }
    tracing::debug!(namespace, name, due = ?outcome.due, applied = ?outcome.applied, requeue = ?outcome.requeue_after, "reconciled");
    if let Some(due) = outcome.due {
        tracing::info!(namespace, name, due = due.as_str(), applied = ?outcome.applied, "synced");
    }
    Ok(outcome
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

pub fn error_policy(es: Arc<ExternalSecret>, error: &SyncError, ctx: Arc<EsContext>) -> Action {
    let (namespace, name) = (es.namespace().unwrap_or_default(), es.name_any());
    if error.is_conflict() {
        tracing::debug!(namespace, name, "conflict; retrying");
        return Action::requeue(Duration::from_millis(200));
    }
    if error.is_pending() {
        // The store's watch wakes us when it is validated; this is only a safety net.
        tracing::debug!(namespace, name, error = %error, "waiting");
        return Action::requeue(Duration::from_secs(5));
    }
    ctx.metrics.sync_error(&namespace, &name);
    ctx.metrics
        .set_ready(Kind::ExternalSecret, &namespace, &name, false);
    ctx.metrics
        .reconcile_result(Kind::ExternalSecret, ReconcileResult::Error);
    if error.is_retryable() || error.is_missing_at_provider() {
        let wait = ctx.next_backoff(&es);
        tracing::warn!(namespace, name, error = %error, retry_in = ?wait, "sync failed");
        Action::requeue(wait)
    } else {
        // Only a change can fix it; a slow safety net still catches a lost event.
        tracing::warn!(namespace, name, error = %error, "sync failed; waiting for a change");
        let interval = es.spec.refresh_interval().unwrap_or(Duration::ZERO);
        if interval.is_zero() {
            Action::await_change()
        } else {
            Action::requeue(interval.max(Duration::from_secs(60)))
        }
    }
}

/// The ExternalSecrets to wake for a changed Secret: its controller owner, or (for Secrets an
/// ExternalSecret writes without owning them) those targeting it by name.
pub fn external_secrets_for_secret(
    secret: &Secret,
    external_secrets: &Store<ExternalSecret>,
) -> Vec<ObjectRef<ExternalSecret>> {
    let namespace = secret.namespace().unwrap_or_default();
    let owners: Vec<_> = secret
        .owner_references()
        .iter()
        .filter(|o| o.kind == "ExternalSecret" && o.api_version.starts_with("external-secrets.io/"))
        .map(|o| ObjectRef::new(&o.name).within(&namespace))
        .collect();
    if !owners.is_empty() {
        return owners;
    }
    external_secrets_targeting(&namespace, &secret.name_any(), external_secrets)
}

/// The ExternalSecrets in `namespace` whose target is the Secret `name`.
pub fn external_secrets_targeting(
    namespace: &str,
    name: &str,
    external_secrets: &Store<ExternalSecret>,
) -> Vec<ObjectRef<ExternalSecret>> {
    external_secrets
        .state()
        .iter()
        .filter(|es| {
            es.namespace().as_deref() == Some(namespace) && es.spec.target_name(es) == name
        })
        .map(|es| ObjectRef::from_obj(es.as_ref()))
        .collect()
}

/// The ExternalSecrets that read a store (directly or through a `sourceRef`).
pub fn external_secrets_for_store(
    kind: StoreKind,
    namespace: Option<&str>,
    name: &str,
    external_secrets: &Store<ExternalSecret>,
) -> Vec<ObjectRef<ExternalSecret>> {
    external_secrets
        .state()
        .iter()
        .filter(|es| {
            kind == StoreKind::ClusterSecretStore || es.namespace().as_deref() == namespace
        })
        .filter(|es| {
            let refs = es.spec.secret_store_ref.iter().chain(
                es.spec
                    .data
                    .iter()
                    .filter_map(|d| d.source_ref.as_ref().and_then(|s| s.store_ref.as_ref())),
            );
            let mut refs = refs.chain(
                es.spec
                    .data_from
                    .iter()
                    .filter_map(|d| d.source_ref.as_ref().and_then(|s| s.store_ref.as_ref())),
            );
            refs.any(|r| r.kind() == kind && r.name == name)
        })
        .map(|es| ObjectRef::from_obj(es.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_seven_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(20), Duration::from_secs(420));
        assert_eq!(backoff(200), Duration::from_secs(420));
    }
}
