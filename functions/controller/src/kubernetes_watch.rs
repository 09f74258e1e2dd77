//! The Kubernetes provider's change source: a watch on the Secrets each Kubernetes store reads,
//! so an ExternalSecret copying a Secret follows it at once. ESO sees such a change only at the
//! next refresh.
//!
//! - **Which watches.** One per feed: a distinct (API server, `remoteNamespace`) among the cached
//!   Kubernetes stores, made with the credentials of one of them (SecretStores first, then
//!   ClusterSecretStores, by name; a ClusterSecretStore with referent auth has none of its own
//!   and is skipped). Those credentials need `list` and `watch` on Secrets there, beyond the
//!   `get` that reading needs; without them the watch says so and the refresh still converges.
//!   The set is looked at again every `rescan`; a store that changed restarts its watch.
//! - **What it sends.** The watch is metadata-only (no Secret value reaches this process through
//!   it). A Secret whose `resourceVersion` moved, or that was deleted, is a change of that key at
//!   the feed's place, delivered to the engine's ingest like a provider event; values are read
//!   afresh by the sync, with the store's credentials.
//! - **Gaps.** A broken watch is rebuilt (a new client, so an expired ServiceAccount token is
//!   renewed) with backoff. Its re-list is compared with the resource versions known before:
//!   exactly the Secrets that changed, appeared or went away meanwhile are sent, so nothing is
//!   lost and nothing else is synced. A feed that starts after the controller's first look (a
//!   new store) sends everything at its place once, after its first list: changes made before
//!   the watch began are caught too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use secret_sync::resolve::StoreCaches;
use secret_sync_crd::StoreKind;
use secret_sync_crd::provider::KubernetesProvider;
use secret_sync_events::{Change, Place};
use secret_sync_providers::kubernetes::{KubernetesClient, location};
use secret_sync_providers::{Referents, StoreScope};
use tokio_util::sync::CancellationToken;

use crate::dispatch::Dispatcher;

/// The `source` label of this feed's events.
pub const SOURCE: &str = "kubernetes-watch";

/// How the watches run.
#[derive(Clone, Debug)]
pub struct WatchSettings {
    /// How often the set of Kubernetes stores is looked at again.
    pub rescan: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            rescan: Duration::from_secs(1),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// One watch: a server (or, for a kubeconfig store, the kubeconfig it is named in) and a
/// namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Feed {
    Server {
        url: String,
        namespace: String,
    },
    /// `authRef`: the store's kind, namespace, and the Secret key holding the kubeconfig.
    Kubeconfig {
        store: (StoreKind, String),
        secret: (Option<String>, String, String),
        namespace: String,
    },
}

/// The store a feed watches as, at one generation.
#[derive(Clone, Debug, PartialEq)]
struct Source {
    scope: StoreScope,
    uid: String,
    generation: Option<i64>,
    provider: KubernetesProvider,
}

pub struct KubernetesWatches {
    pub settings: WatchSettings,
    pub dispatcher: Arc<Dispatcher>,
    pub stores: StoreCaches,
    pub referents: Arc<dyn Referents>,
}

impl KubernetesWatches {
    /// Keeps one watch per feed until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        self.dispatcher.ingest().ready().await;
        let this = self.clone();
        crate::dispatch::keep_feeds(
            shutdown,
            self.settings.rescan,
            || this.wanted(),
            |_, source, stop, at_first_look| {
                // At start every ExternalSecret syncs anyway; a feed that comes later catches up.
                let (this, source) = (this.clone(), source.clone());
                tokio::spawn(async move {
                    this.watch(&source, !at_first_look, &stop).await;
                });
            },
        )
        .await;
    }

    /// Each feed of the cached Kubernetes stores, with the store to watch as.
    fn wanted(&self) -> HashMap<Feed, Source> {
        let mut candidates: Vec<(Feed, Source)> = Vec::new();
        let mut secret_stores = self.stores.secret_stores.state();
        secret_stores.sort_by_key(|s| (s.namespace(), s.name_any()));
        for store in secret_stores {
            if let Some(k) = &store.spec.provider.kubernetes {
                let scope = StoreScope {
                    kind: StoreKind::SecretStore,
                    name: store.name_any(),
                    namespace: store.namespace().unwrap_or_default(),
                };
                candidates.push(candidate(k, scope, store.uid(), store.metadata.generation));
            }
        }
        let mut cluster_stores = self.stores.cluster_secret_stores.state();
        cluster_stores.sort_by_key(|s| s.name_any());
        for store in cluster_stores {
            if secret_sync_providers::uses_referent_auth(&store.spec.provider) {
                continue;
            }
            if let Some(k) = &store.spec.provider.kubernetes {
                let scope = StoreScope {
                    kind: StoreKind::ClusterSecretStore,
                    name: store.name_any(),
                    namespace: String::new(),
                };
                candidates.push(candidate(k, scope, store.uid(), store.metadata.generation));
            }
        }
        let mut wanted = HashMap::new();
        for (feed, source) in candidates {
            wanted.entry(feed).or_insert(source);
        }
        wanted
    }

    /// Watches one feed until `stop`, rebuilding the client and the watch after any error.
    async fn watch(&self, source: &Source, catch_up: bool, stop: &CancellationToken) {
        let store = &source.scope.name;
        let mut backoff = self.settings.backoff_min;
        // Name → resourceVersion of every Secret at the feed, as last seen.
        let mut known: Option<HashMap<String, String>> = None;
        let mut catch_up = catch_up;
        loop {
            match KubernetesClient::new(&source.provider, &source.scope, self.referents.clone())
                .await
            {
                Err(e) => {
                    tracing::warn!(store, error = %e, "cannot connect the Kubernetes store's watch");
                }
                Ok(client) => {
                    let started = Instant::now();
                    let ended = self.follow(&client, &mut known, &mut catch_up, stop).await;
                    match ended {
                        None => return,
                        Some(e) => tracing::warn!(
                            store,
                            namespace = client.kube().1,
                            error = %e,
                            "watching the Kubernetes store's Secrets failed (its credentials need list and watch on Secrets there); reconnecting"
                        ),
                    }
                    if started.elapsed() > self.settings.backoff_max {
                        backoff = self.settings.backoff_min;
                    }
                }
            }
            let jittered = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(jittered) => {}
            }
            backoff = (backoff * 2).min(self.settings.backoff_max);
        }
    }

    /// Follows one watch until it fails (the error) or `stop` (`None`).
    async fn follow(
        &self,
        client: &KubernetesClient,
        known: &mut Option<HashMap<String, String>>,
        catch_up: &mut bool,
        stop: &CancellationToken,
    ) -> Option<watcher::Error> {
        let (kube, namespace) = client.kube();
        let place = Place::At(location(Some(client.server()), namespace));
        let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(kube, namespace);
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
        let mut listing: HashMap<String, String> = HashMap::new();
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => return None,
                event = events.next() => event,
            };
            let event = match event {
                None => return None,
                Some(Err(e)) => return Some(e),
                Some(Ok(event)) => event,
            };
            match event {
                watcher::Event::Init => listing.clear(),
                watcher::Event::InitApply(meta) => {
                    listing.insert(meta.name_any(), meta.resource_version().unwrap_or_default());
                }
                watcher::Event::InitDone => {
                    let listed = std::mem::take(&mut listing);
                    let changed: Vec<String> = match known.as_ref() {
                        Some(before) => {
                            let mut changed: Vec<String> = listed
                                .iter()
                                .filter(|(name, rv)| before.get(*name) != Some(*rv))
                                .map(|(name, _)| name.clone())
                                .collect();
                            changed.extend(
                                before.keys().filter(|n| !listed.contains_key(*n)).cloned(),
                            );
                            changed
                        }
                        None => Vec::new(),
                    };
                    *known = Some(listed);
                    if std::mem::take(catch_up) {
                        self.dispatcher
                            .resync(SOURCE, &Change::everything_at(place.clone()));
                    } else if !changed.is_empty() {
                        self.send(&place, changed);
                    }
                }
                watcher::Event::Apply(meta) => {
                    let rv = meta.resource_version().unwrap_or_default();
                    let name = meta.name_any();
                    let seen = known.get_or_insert_with(HashMap::new);
                    if seen.get(&name) != Some(&rv) {
                        seen.insert(name.clone(), rv);
                        self.send(&place, vec![name]);
                    }
                }
                watcher::Event::Delete(meta) => {
                    let name = meta.name_any();
                    known.get_or_insert_with(HashMap::new).remove(&name);
                    self.send(&place, vec![name]);
                }
            }
        }
    }

    fn send(&self, place: &Place, keys: Vec<String>) {
        let change = Change::new(place.clone(), keys);
        // Refused when overloaded (counted); the refresh catches it.
        let _ = self.dispatcher.deliver(SOURCE, &change, Instant::now());
    }
}

fn candidate(
    k: &KubernetesProvider,
    scope: StoreScope,
    uid: Option<String>,
    generation: Option<i64>,
) -> (Feed, Source) {
    let feed = match &k.auth_ref {
        Some(secret) => Feed::Kubeconfig {
            store: (scope.kind, scope.namespace.clone()),
            secret: (
                secret.namespace.clone(),
                secret.name.clone(),
                secret.key.clone(),
            ),
            namespace: k.remote_namespace.clone(),
        },
        None => Feed::Server {
            url: k.server.as_ref().map(|s| s.url.clone()).unwrap_or_default(),
            namespace: k.remote_namespace.clone(),
        },
    };
    let source = Source {
        scope,
        uid: uid.unwrap_or_default(),
        generation,
        provider: k.clone(),
    };
    (feed, source)
}
