//! One target cluster: its client, the watch caches that answer "which ExternalSecrets does this
//! change affect" without a request, and (push mode) the engine that syncs them.
//!
//! The caches are kube-runtime reflectors started at cold start and kept for the life of the
//! execution environment: an invocation is then an in-memory lookup. While Lambda freezes the
//! environment between invocations the watches are frozen too; on thaw they resume (or re-list
//! when the API server has compacted past them), so an object created meanwhile is seen a moment
//! into the next invocation, not at its start. The in-cluster controller's periodic reconcile is
//! the safety net for a change that arrives in that window.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use secret_sync::cached::CachedExternalSecret;
use secret_sync::caches::{self, Recovering as _};
use secret_sync::index::{PushIndex, ReadIndex};
use secret_sync::ingest::{self, Ingest, Target};
use secret_sync::resolve::StoreCaches;
use secret_sync::secret_cache::SecretCache;
use secret_sync::stores::StoreSettings;
use secret_sync::{ApiView, CachedView, Engine, KubeReferents, NoObserver, Settings};
use secret_sync_crd::well_known::{LABEL_MANAGED, LABEL_MANAGED_VALUE};
use secret_sync_crd::{ClusterSecretStore, ExternalSecret, PushSecret, SecretStore};
use secret_sync_events::Change;
use secret_sync_providers::BuildOptions;
use tokio::task::JoinHandle;

use crate::config::{ClusterConfig, ClusterSource, Config, Mode};
use crate::eks;

/// Why a cluster cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster {cluster}: reading the kubeconfig failed: {message}")]
    Kubeconfig { cluster: String, message: String },
    #[error("cluster {cluster}: building the client failed: {source}")]
    Client {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("cluster {cluster}: {source}")]
    Eks {
        cluster: String,
        #[source]
        source: eks::EksError,
    },
    #[error(
        "cluster {cluster}: the watch caches did not finish their first list within {waited:?}"
    )]
    NotReady { cluster: String, waited: Duration },
}

/// A target cluster with its caches.
pub struct Cluster {
    pub name: String,
    client: kube::Client,
    external_secrets: Store<CachedExternalSecret>,
    stores: StoreCaches,
    index: Arc<ReadIndex>,
    /// Caches only push mode reads (managed Secrets, Namespaces).
    engine_caches: Option<(Arc<SecretCache>, Store<Namespace>)>,
    /// The engine's ingest (push mode only).
    ingest: Option<Arc<Ingest>>,
    watches: Vec<JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for watch in &self.watches {
            watch.abort();
        }
    }
}

/// Builds the kube client for a target.
pub async fn client(
    target: &ClusterConfig,
    aws: Option<&aws_config::SdkConfig>,
) -> Result<kube::Client, ClusterError> {
    let cluster = || target.name.clone();
    let config = match &target.source {
        ClusterSource::Ambient => {
            kube::Config::infer()
                .await
                .map_err(|e| ClusterError::Kubeconfig {
                    cluster: cluster(),
                    message: e.to_string(),
                })?
        }
        ClusterSource::Kubeconfig { path, context } => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| ClusterError::Kubeconfig {
                cluster: cluster(),
                message: e.to_string(),
            })?;
            let options = KubeConfigOptions {
                context: context.clone(),
                ..KubeConfigOptions::default()
            };
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| ClusterError::Kubeconfig {
                    cluster: cluster(),
                    message: e.to_string(),
                })?
        }
        ClusterSource::Eks(eks_cluster) => {
            let credentials = aws
                .and_then(aws_config::SdkConfig::credentials_provider)
                .ok_or_else(|| ClusterError::Eks {
                    cluster: cluster(),
                    source: eks::EksError::NoCredentialsProvider,
                })?;
            return eks::client(eks_cluster, credentials)
                .await
                .map_err(|source| ClusterError::Eks {
                    cluster: cluster(),
                    source,
                });
        }
    };
    kube::Client::try_from(config).map_err(|source| ClusterError::Client {
        cluster: cluster(),
        source,
    })
}

fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Starts a reflector for `api` into a new store, driven by a task of its own.
fn cache<K>(api: Api<K>, config: watcher::Config, trim: fn(&mut K)) -> (Store<K>, JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, config).modify(trim)).recovering();
    (store, drive(stream))
}

fn keep<K>(_: &mut K) {}

/// Drives a watch stream in a task of its own.
fn drive<S, T, E>(stream: S) -> JoinHandle<()>
where
    S: futures::Stream<Item = Result<T, E>> + Send + 'static,
    E: std::fmt::Display,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::debug!(error = %e, "watch error (retried with backoff)");
            }
        }
    })
}

impl Cluster {
    /// Connects to a target and starts its watches; does not wait for them.
    pub async fn start(
        target: &ClusterConfig,
        config: &Config,
        aws: Option<&aws_config::SdkConfig>,
    ) -> Result<Self, ClusterError> {
        let client = client(target, aws).await?;
        let ns = config.namespace.as_deref();
        let watch = watcher::Config::default();
        let mut watches = Vec::new();
        let index = ReadIndex::new();
        let (external_secrets, stream) = caches::external_secrets(
            watcher(api::<ExternalSecret>(&client, ns), watch.clone()),
            index.clone(),
        );
        watches.push(drive(stream.recovering()));
        let (secret_stores, task) = cache(api::<SecretStore>(&client, ns), watch.clone(), keep);
        watches.push(task);
        let (cluster_secret_stores, task) = cache(
            Api::<ClusterSecretStore>::all(client.clone()),
            watch.clone(),
            keep,
        );
        watches.push(task);
        let stores = StoreCaches {
            secret_stores,
            cluster_secret_stores,
        };
        let (ingest, engine_caches) = match config.mode {
            Mode::Nudge => (None, None),
            Mode::Push => {
                let managed = watcher::Config::default()
                    .labels(&format!("{LABEL_MANAGED}={LABEL_MANAGED_VALUE}"));
                let secrets = SecretCache::new();
                let cache_of = secrets.clone();
                watches.push(drive(
                    watcher(api::<Secret>(&client, ns), managed)
                        .modify(caches::trim_secret)
                        // Departures need no action here: the next sync of their ExternalSecret
                        // finds them gone.
                        .inspect_ok(move |event| drop(cache_of.apply(event)))
                        .recovering(),
                ));
                let (namespaces, task) = cache(Api::<Namespace>::all(client.clone()), watch, keep);
                watches.push(task);
                let view = CachedView {
                    secrets: secrets.clone(),
                    secret_stores: stores.secret_stores.clone(),
                    cluster_secret_stores: stores.cluster_secret_stores.clone(),
                    namespaces: namespaces.clone(),
                    api: ApiView::new(client.clone()),
                };
                let engine = Engine::new(
                    client.clone(),
                    Arc::new(view),
                    Arc::new(KubeReferents::new(client.clone())),
                    Arc::new(NoObserver),
                    Settings {
                        stores: StoreSettings {
                            controller_class: config.controller_class.clone(),
                            flood_gate: config.flood_gate,
                        },
                        providers: BuildOptions {
                            aws_base: aws.cloned(),
                        },
                        ..Settings::default()
                    },
                );
                let ingest = Ingest::new(
                    Arc::new(engine),
                    index.clone(),
                    external_secrets.clone(),
                    stores.clone(),
                    ingest::Limits::new(config.concurrency.max(1)),
                );
                if config.push_secrets {
                    let push_index = PushIndex::new();
                    let (push_secrets, stream) = caches::push_secrets(
                        watcher(api::<PushSecret>(&client, ns), watcher::Config::default()),
                        push_index.clone(),
                    );
                    watches.push(drive(stream.recovering()));
                    ingest.serve_push_secrets(push_index, push_secrets);
                }
                (Some(ingest), Some((secrets, namespaces)))
            }
        };
        Ok(Self {
            name: target.name.clone(),
            client,
            external_secrets,
            stores,
            index,
            engine_caches,
            ingest,
            watches,
        })
    }

    /// Waits until every cache has its first full list (immediate afterwards), for at most
    /// `within`.
    pub async fn ready(&self, within: Duration) -> Result<(), ClusterError> {
        let all = async {
            caches::ready(&self.external_secrets).await;
            caches::ready(&self.stores.secret_stores).await;
            caches::ready(&self.stores.cluster_secret_stores).await;
            if let Some((secrets, namespaces)) = &self.engine_caches {
                secrets.ready().await;
                caches::ready(namespaces).await;
            }
            if let Some(ingest) = &self.ingest {
                ingest.ready().await;
            }
        };
        tokio::time::timeout(within, all)
            .await
            .map_err(|_| ClusterError::NotReady {
                cluster: self.name.clone(),
                waited: within,
            })
    }

    /// How many ExternalSecrets are cached.
    pub fn cached(&self) -> usize {
        self.index.len()
    }

    /// What `change` affects: the ExternalSecrets reading it, through the index, and in push mode
    /// the PushSecrets that pushed it.
    pub fn affected(&self, change: &Change) -> Vec<Target> {
        match &self.ingest {
            Some(ingest) => ingest.resolve(change),
            None => self
                .index
                .affected(change, &self.stores, &self.external_secrets)
                .into_iter()
                .filter_map(|es| es.expanded())
                .map(Target::Pull)
                .collect(),
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The engine's ingest (push mode only).
    pub fn ingest(&self) -> Option<&Arc<Ingest>> {
        self.ingest.as_ref()
    }
}
