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
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use secret_sync::cached::CachedExternalSecret;
use secret_sync::index::ReadIndex;
use secret_sync::resolve::StoreId;
use secret_sync::{Engine, SyncError, Trigger};
use secret_sync_crd::{ExternalSecretConditionType, StoreKind};

use crate::metrics::{Kind, Metrics, ReconcileResult};

/// What the ExternalSecret reconciler needs.
pub struct EsContext {
    pub engine: Arc<Engine>,
    pub metrics: Metrics,
    /// The shards this replica syncs (all of them unless sharded).
    pub shards: Arc<secret_sync::shards::Shards>,
    /// Consecutive failures per object, for exponential backoff (ESO: 1 s doubling to 7 min).
    failures: Mutex<HashMap<ObjectRef<CachedExternalSecret>, u32>>,
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
    pub fn forget(&self, es: &ObjectRef<CachedExternalSecret>) {
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

    fn reset_failures(&self, es: &CachedExternalSecret) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ObjectRef::from_obj(es));
    }

    fn next_backoff(&self, es: &CachedExternalSecret) -> Duration {
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

pub async fn reconcile(
    cached: Arc<CachedExternalSecret>,
    ctx: Arc<EsContext>,
) -> Result<Action, SyncError> {
    let (namespace, name) = (cached.namespace().unwrap_or_default(), cached.name_any());
    let Some(_shard) = ctx.shards.enter(&namespace) else {
        // Another replica's: what was kept here for it (a shard handed over) goes.
        ctx.forget(&ObjectRef::from_obj(cached.as_ref()));
        return Ok(Action::await_change());
    };
    if cached.meta().deletion_timestamp.is_some() {
        // No finalizer of ours: the garbage collector removes Owner Secrets.
        ctx.metrics.clear(Kind::ExternalSecret, &namespace, &name);
        return Ok(Action::await_change());
    }
    let Some(es) = cached.expanded() else {
        // Logged; a later version of the object is cached anew.
        return Ok(Action::await_change());
    };
    let _timer = ctx
        .metrics
        .reconcile_timer(Kind::ExternalSecret, &namespace, &name);
    ctx.metrics.sync_call(&namespace, &name);
    let outcome = ctx.engine.sync(&es, Trigger::Reconcile).await?;
    ctx.reset_failures(&cached);
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

pub fn error_policy(
    cached: Arc<CachedExternalSecret>,
    error: &SyncError,
    ctx: Arc<EsContext>,
) -> Action {
    let (namespace, name) = (cached.namespace().unwrap_or_default(), cached.name_any());
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
        let wait = ctx.next_backoff(&cached);
        tracing::warn!(namespace, name, error = %error, retry_in = ?wait, "sync failed");
        Action::requeue(wait)
    } else {
        // Only a change can fix it; a slow safety net still catches a lost event.
        tracing::warn!(namespace, name, error = %error, "sync failed; waiting for a change");
        let interval = cached
            .expanded()
            .and_then(|es| es.spec.refresh_interval().ok())
            .unwrap_or(Duration::ZERO);
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
    external_secrets: &Store<CachedExternalSecret>,
) -> Vec<ObjectRef<CachedExternalSecret>> {
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
    external_secrets: &Store<CachedExternalSecret>,
) -> Vec<ObjectRef<CachedExternalSecret>> {
    external_secrets
        .state()
        .iter()
        .filter(|es| es.namespace().as_deref() == Some(namespace) && es.target_name() == name)
        .map(|es| ObjectRef::from_obj(es.as_ref()))
        .collect()
}

/// The ExternalSecrets that read a store (directly or through a `sourceRef`): a lookup in the
/// read index.
pub fn external_secrets_for_store(
    kind: StoreKind,
    namespace: Option<&str>,
    name: &str,
    index: &ReadIndex,
) -> Vec<ObjectRef<CachedExternalSecret>> {
    index.store_readers(&StoreId {
        kind,
        name: name.to_owned(),
        namespace: match kind {
            StoreKind::SecretStore => namespace.unwrap_or_default().to_owned(),
            StoreKind::ClusterSecretStore => String::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use secret_sync_crd::ExternalSecret;

    use super::*;

    fn external_secret(namespace: &str, name: &str, spec: serde_json::Value) -> ExternalSecret {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": { "name": name, "namespace": namespace },
            "spec": spec,
        }))
        .expect("ExternalSecret")
    }

    fn cached(all: &[ExternalSecret]) -> (Store<CachedExternalSecret>, Arc<ReadIndex>) {
        let mut writer = kube::runtime::reflector::store::Writer::default();
        let index = ReadIndex::new();
        for es in all {
            let event = kube::runtime::watcher::Event::Apply(CachedExternalSecret::new(es.clone()));
            writer.apply_watcher_event(&event);
            index.apply(&event);
        }
        (writer.as_reader(), index)
    }

    fn names(refs: Vec<ObjectRef<CachedExternalSecret>>) -> Vec<String> {
        let mut names: Vec<String> = refs
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_secret_wakes_its_owner_or_else_the_external_secrets_targeting_it() {
        let all = [
            external_secret(
                "a",
                "db",
                serde_json::json!({ "target": { "name": "db-credentials" } }),
            ),
            external_secret(
                "a",
                "db-credentials",
                serde_json::json!({ "target": { "name": "other" } }),
            ),
            external_secret("a", "api", serde_json::json!({})),
            external_secret(
                "b",
                "db",
                serde_json::json!({ "target": { "name": "db-credentials" } }),
            ),
        ];
        let (store, _) = cached(&all);
        assert_eq!(
            names(external_secrets_targeting("a", "db-credentials", &store)),
            ["a/db"]
        );
        assert_eq!(
            names(external_secrets_targeting("a", "api", &store)),
            ["a/api"]
        );
        assert!(external_secrets_targeting("c", "db-credentials", &store).is_empty());
        let mut secret = Secret::default();
        secret.metadata.namespace = Some("a".into());
        secret.metadata.name = Some("api".into());
        assert_eq!(
            names(external_secrets_for_secret(&secret, &store)),
            ["a/api"]
        );
        secret.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "external-secrets.io/v1".into(),
                kind: "ExternalSecret".into(),
                name: "db".into(),
                uid: "u".into(),
                controller: Some(true),
                ..Default::default()
            },
        ]);
        assert_eq!(
            names(external_secrets_for_secret(&secret, &store)),
            ["a/db"]
        );
    }

    #[test]
    fn a_store_wakes_the_external_secrets_reading_through_it() {
        let read = |store: serde_json::Value| {
            serde_json::json!({ "secretStoreRef": store,
                "data": [{ "secretKey": "k", "remoteRef": { "key": "db" } }] })
        };
        let all = [
            external_secret("a", "direct", read(serde_json::json!({ "name": "aws" }))),
            external_secret("b", "direct", read(serde_json::json!({ "name": "aws" }))),
            external_secret(
                "a",
                "cluster",
                read(serde_json::json!({ "name": "aws", "kind": "ClusterSecretStore" })),
            ),
            external_secret(
                "b",
                "through-source",
                serde_json::json!({
                    "data": [{ "secretKey": "k", "remoteRef": { "key": "db" },
                        "sourceRef": { "storeRef": { "name": "aws", "kind": "ClusterSecretStore" } } }]
                }),
            ),
            external_secret(
                "a",
                "elsewhere",
                read(serde_json::json!({ "name": "vault" })),
            ),
        ];
        let (_, index) = cached(&all);
        assert_eq!(
            names(external_secrets_for_store(
                StoreKind::SecretStore,
                Some("a"),
                "aws",
                &index
            )),
            ["a/direct"]
        );
        assert_eq!(
            names(external_secrets_for_store(
                StoreKind::ClusterSecretStore,
                None,
                "aws",
                &index
            )),
            ["a/cluster", "b/through-source"]
        );
        assert!(
            external_secrets_for_store(StoreKind::SecretStore, Some("c"), "aws", &index).is_empty()
        );
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_seven_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(20), Duration::from_secs(420));
        assert_eq!(backoff(200), Duration::from_secs(420));
    }
}
