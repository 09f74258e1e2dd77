//! Syncs the ExternalSecrets whose template reads a ConfigMap or a Secret (`templateFrom`) as
//! soon as that ConfigMap or Secret changes. ESO sees such a change only at the next refresh,
//! an hour later by default, and its users have asked for more.
//!
//! Two metadata-only watches, of ConfigMaps and of Secrets (nothing of them is cached), feed
//! their changes to a lookup in the read index (which files ExternalSecrets under the sources
//! their templates read); the readers found are handed to a
//! dispatcher of their own (so that a burst cannot crowd out provider events) as a provider
//! change would be, so they sync at once (reading the provider again), coalesced and bounded
//! like every event-driven sync (`secret_sync_sync_latency_seconds{trigger="watch"}`). Only readers under the `Periodic` refresh
//! policy with an interval are synced: `CreatedOnce`, `OnChange` and `refreshInterval: 0` keep
//! their promise that nothing else syncs them. The initial list, and the re-list after a
//! broken watch, trigger nothing: that would sync every templated ExternalSecret at each start.
//! The watches start with the controller, and it reports ready only once both have their
//! initial list (`listed`): a change made after that is never missed. Changes are looked up once
//! the caches they resolve against are listed; until then they wait in the watch.
//! A change made while a watch was broken waits for the refresh, as in ESO. Secrets that
//! secret-sync manages themselves (labelled `reconcile.external-secrets.io/managed`) are skipped
//! before any lookup: they change at every sync.
//!
//! Counted in `secret_sync_events_total{source="template-source"}` (`matched`, or `overloaded`
//! when the dispatcher is full); a change nobody reads is not counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use secret_sync_crd::well_known::{LABEL_MANAGED, LABEL_MANAGED_VALUE};
use secret_sync_crd::{ExternalSecret, RefreshPolicy};
use tokio_util::sync::CancellationToken;

use secret_sync::cached::CachedExternalSecret;
use secret_sync::caches::Recovering as _;
use secret_sync::index::{ReadIndex, SourceKind};
use secret_sync::ingest::Target;

use crate::dispatch::Dispatcher;

/// The `source` label of this feed's events.
pub const SOURCE: &str = "template-source";

/// Whether a template change may sync `es` before its refresh: only under the `Periodic`
/// policy with an interval. `CreatedOnce`, `OnChange` and `refreshInterval: 0` promise that
/// nothing but a spec change (or nothing at all) syncs again, and that holds here too.
fn refreshes(es: &ExternalSecret) -> bool {
    es.spec.refresh_policy.unwrap_or_default() == RefreshPolicy::Periodic
        && es.spec.refresh_interval().is_ok_and(|i| !i.is_zero())
}

/// The ExternalSecrets in `namespace` whose template reads the `kind` named `name` (a lookup
/// in the read index), and that refresh periodically.
pub fn readers(
    index: &ReadIndex,
    external_secrets: &Store<CachedExternalSecret>,
    kind: SourceKind,
    namespace: &str,
    name: &str,
) -> Vec<Arc<ExternalSecret>> {
    index
        .source_readers(kind, namespace, name, &BTreeMap::new())
        .into_iter()
        .filter_map(|at| external_secrets.get(&at)?.expanded())
        .filter(|es| refreshes(es))
        .collect()
}

/// The changes (not the initial list) of one kind's metadata watch, as (namespace, name); the
/// end of its first list counted in `listed`.
fn changes<K>(
    api: Api<PartialObjectMeta<K>>,
    listed: tokio::sync::watch::Sender<usize>,
) -> impl Stream<Item = (String, String)> + Send
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Default,
    PartialObjectMeta<K>: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    let mut first_list = true;
    watcher(api, watcher::Config::default())
        .recovering()
        .inspect(move |event| {
            if first_list && matches!(event, Ok(watcher::Event::InitDone)) {
                first_list = false;
                listed.send_modify(|n| *n += 1);
            }
        })
        .filter_map(|event| async move {
            match event {
                Ok(watcher::Event::Apply(meta) | watcher::Event::Delete(meta)) => {
                    let managed = meta
                        .labels()
                        .get(LABEL_MANAGED)
                        .is_some_and(|v| v == LABEL_MANAGED_VALUE);
                    (!managed).then(|| (meta.namespace().unwrap_or_default(), meta.name_any()))
                }
                Ok(_) => None,
                Err(e) => {
                    // A missing list/watch right shows here; the backoff spaces the lines.
                    tracing::warn!(error = %e, "watching templateFrom sources failed");
                    None
                }
            }
        })
}

/// Runs both watches until `shutdown`; `namespace` limits them as it limits the controller.
pub async fn run(
    client: kube::Client,
    namespace: Option<String>,
    index: Arc<ReadIndex>,
    external_secrets: Store<CachedExternalSecret>,
    dispatcher: Arc<Dispatcher>,
    listed: tokio::sync::watch::Sender<usize>,
    shutdown: CancellationToken,
) {
    let (config_maps, secrets) = match namespace.as_deref() {
        Some(ns) => (
            Api::<PartialObjectMeta<ConfigMap>>::namespaced(client.clone(), ns),
            Api::<PartialObjectMeta<Secret>>::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let merged = futures::stream::select(
        changes(config_maps, listed.clone()).map(|(ns, name)| (SourceKind::ConfigMap, ns, name)),
        changes(secrets, listed).map(|(ns, name)| (SourceKind::Secret, ns, name)),
    );
    // A change is looked up in the read index: not before the caches it resolves against hold
    // their first list, or its readers would not be found. Until then changes wait in the watch.
    let ingest_ready = {
        let dispatcher = dispatcher.clone();
        async move { dispatcher.ingest().ready().await }
    };
    let merged = futures::stream::once(ingest_ready)
        .filter_map(|()| async { None })
        .chain(merged);
    let handle = merged.for_each(|(kind, ns, name)| {
        let targets: Vec<Target> = readers(&index, &external_secrets, kind, &ns, &name)
            .into_iter()
            .map(Target::Pull)
            .collect();
        if !targets.is_empty() {
            tracing::debug!(?kind, namespace = %ns, name = %name, readers = targets.len(), "templateFrom source changed");
            // Refused when the dispatcher is full: counted, and the refresh catches up.
            let _ = dispatcher.deliver_targets(SOURCE, targets, Instant::now());
        }
        async {}
    });
    tokio::select! {
        () = handle => {}
        () = shutdown.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(spec: serde_json::Value) -> ExternalSecret {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": { "name": "es", "namespace": "ns" }, "spec": spec
        }))
        .expect("ExternalSecret")
    }

    #[test]
    fn only_periodic_readers_with_an_interval_are_synced_by_a_template_change() {
        assert!(refreshes(&es(serde_json::json!({}))));
        assert!(refreshes(&es(
            serde_json::json!({ "refreshInterval": "1h" })
        )));
        for spec in [
            serde_json::json!({ "refreshPolicy": "CreatedOnce" }),
            serde_json::json!({ "refreshPolicy": "OnChange" }),
            serde_json::json!({ "refreshInterval": "0s" }),
        ] {
            assert!(!refreshes(&es(spec.clone())), "{spec}");
        }
    }
}
