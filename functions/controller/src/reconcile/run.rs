//! Wires the watches, caches and reconcilers, and runs them until shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use secret_sync::caches::{self, Recovering as _};
use secret_sync::index::{PushIndex, ReadIndex};
use secret_sync::ingest::{self, Ingest};
use secret_sync::resolve::StoreCaches;
use secret_sync::shards::Shards;
use secret_sync::stores::StoreSettings;
use secret_sync::{ApiView, CachedView, Engine, KubeReferents, Settings};
use secret_sync_crd::well_known::{LABEL_MANAGED, LABEL_MANAGED_VALUE};
use secret_sync_crd::{
    ClusterExternalSecret, ClusterPushSecret, ClusterSecretStore, ExternalSecret, GeneratorState,
    PushSecret, SecretStore, StoreKind,
};
use secret_sync_providers::BuildOptions;
use tokio_util::sync::CancellationToken;

use super::cluster_external_secret;
use super::cluster_push_secret;
use super::external_secret::{
    self, EsContext, external_secrets_for_secret, external_secrets_for_store,
};
use super::generator_state;
use super::push_secret;
use super::store::{self, StoreContext};
use crate::http::Readiness;
use crate::metrics::{Kind, Metrics};

/// How the reconcilers run.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// Watch one namespace only (ESO's `--namespace`); `None` watches all.
    pub namespace: Option<String>,
    pub controller_class: String,
    /// Reconcile ClusterExternalSecrets (only when watching every namespace).
    pub cluster_external_secrets: bool,
    /// Reconcile PushSecrets.
    pub push_secrets: bool,
    /// Reconcile ClusterPushSecrets (only when watching every namespace).
    pub cluster_push_secrets: bool,
    /// Sync ExternalSecrets when a ConfigMap or Secret their `templateFrom` reads changes.
    pub template_sources: bool,
    /// Sync ExternalSecrets when a Secret their Kubernetes store reads changes.
    pub kubernetes_watch: bool,
    pub concurrency: u16,
    pub store_requeue: Duration,
    pub value_reuse: Duration,
    /// Every this often, every ExternalSecret is looked at again, whatever the watches said: the
    /// safety net for a lost event. Cheap: an ExternalSecret that is not due costs no request.
    pub resync: Duration,
    /// How provider clients are built (the AWS SDK base configuration).
    pub providers: BuildOptions,
    /// The SQS queue of provider change events to consume, if any.
    pub sqs: Option<crate::sqs::SqsSettings>,
    /// How long one sync may take before it is abandoned and retried.
    pub sync_timeout: Duration,
    /// The Vault audit-stream listener, if any.
    pub vault_audit: Option<crate::vault_audit::AuditSettings>,
    /// The Vault event-stream subscriber, if on.
    pub vault_events: Option<crate::vault_events::EventStreamSettings>,
    /// How long a provider change waits for a store that is not Ready yet.
    pub store_wait: Duration,
    /// ESO's flood gate: stores that are not Ready are not used.
    pub flood_gate: bool,
    /// Keep what generators made as GeneratorStates (ESO's `--enable-generator-state`).
    pub generator_state: bool,
    /// How long replaced generated values stay before their cleanup.
    pub generator_gc_grace: Duration,
    /// Roll workloads using a changed Secret, for ExternalSecrets that do not say.
    pub rollout_on_change: bool,
    /// Let ExternalSecrets write other kinds than Secrets (`target.manifest`).
    pub generic_targets: bool,
    /// Record an Event when a sync writes its target.
    pub success_events: bool,
    /// A change's statuses trail its Secrets ([`secret_sync::statuses`]).
    pub deferred_statuses: bool,
    /// The signed change webhook, if any.
    pub webhook: Option<crate::webhook::WebhookSettings>,
    /// Where to install the webhook's handler when `main` already listens on every replica
    /// (with leader election); `None`: listen here, while running.
    pub webhook_slot: Option<crate::webhook::WebhookSlot>,
    /// Sharded replicas (`--shards`): this replica's shards and peers, and the address its
    /// peers' forwarded changes arrive at. `None`: this process syncs everything.
    pub sharding: Option<(Arc<crate::shards::Peers>, std::net::SocketAddr)>,
}

/// `reconcile` for the objects in the shards this replica holds: one of another shard is left
/// alone (its holder reconciles it), and a shard is not handed over while one of its reconciles
/// runs (see `secret_sync::shards`).
fn in_shards<K, C, E, F, Fut>(
    shards: Arc<Shards>,
    mut reconcile: F,
) -> impl FnMut(Arc<K>, Arc<C>) -> futures::future::BoxFuture<'static, Result<controller::Action, E>>
where
    K: kube::Resource,
    E: Send + 'static,
    F: FnMut(Arc<K>, Arc<C>) -> Fut,
    Fut: Future<Output = Result<controller::Action, E>> + Send + 'static,
{
    move |object, ctx| {
        let namespace = object.meta().namespace.clone().unwrap_or_default();
        match shards.enter(&namespace) {
            None => Box::pin(futures::future::ready(Ok(
                controller::Action::await_change(),
            ))),
            Some(guard) => {
                let reconciled = reconcile(object, ctx);
                Box::pin(async move {
                    let result = reconciled.await;
                    drop(guard);
                    result
                })
            }
        }
    }
}

/// How often `workqueue_depth` is sampled.
const WORKQUEUE_SAMPLE: Duration = Duration::from_secs(5);

/// Changes in flight at once from the push receivers (audit stream, event stream, webhook).
const MAX_CHANGES_IN_FLIGHT: usize = 256;
/// Event-driven syncs at once, over every change source.
const MAX_EVENT_SYNCS: usize = 256;

/// The Event recorder of the store and PushSecret reconcilers.
fn recorder(client: &kube::Client) -> Recorder {
    Recorder::new(
        client.clone(),
        Reporter {
            controller: "secret-sync".into(),
            instance: None,
        },
    )
}

/// Reports engine activity as metrics.
struct MetricsObserver(Metrics);

impl secret_sync::Observer for MetricsObserver {
    fn provider_call(&self, provider: &str, operation: &'static str, ok: bool) {
        self.0.provider_call(provider, operation, ok);
    }
    fn secret_write(&self, verb: &'static str) {
        self.0.apiserver_write("Secret", verb);
    }
    fn status_write(&self) {
        self.0.apiserver_write("ExternalSecret/status", "patch");
    }
    fn event_dropped(&self) {
        self.0.kube_event_dropped();
    }
    fn status_queue(&self, depth: usize) {
        self.0.set_status_queue(depth);
    }
}

/// The reconciler of one store kind, with a watch of its own as `Controller::new` would make it,
/// but with our back-off (see `caches::recovering`) and no trigger back-off over it.
fn store_controller<S>(
    api: Api<S>,
    watch: watcher::Config,
    ctx: Arc<StoreContext>,
    shards: Arc<Shards>,
    shutdown: CancellationToken,
) -> impl Future<Output = ()>
where
    S: store::StoreApi
        + kube::Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (cache, writer) = reflector::store();
    let events = reflector(writer, watcher(api, watch))
        .recovering()
        .applied_objects();
    Controller::for_stream(events, cache)
        .trigger_backoff(caches::no_trigger_backoff())
        .reconcile_all_on(shards.changed())
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            in_shards(shards, store::reconcile::<S>),
            store::error_policy::<S>,
            ctx,
        )
        .for_each(|_| async {})
}

/// Drops the metric series of each `kind` object that leaves its watch (see
/// [`caches::departures`]).
fn forget_series<K>(
    metrics: &Metrics,
    kind: Kind,
) -> impl FnMut(&watcher::Event<K>) + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + 'static,
{
    let leaving = metrics.clone();
    caches::departures(
        arrival(metrics, kind),
        move |at: &reflector::ObjectRef<K>| {
            leaving.forget(kind, at.namespace.as_deref().unwrap_or_default(), &at.name);
        },
    )
}

/// Notes each `kind` object a watch shows (see [`Metrics::arrived`]).
fn arrival<K>(
    metrics: &Metrics,
    kind: Kind,
) -> impl FnMut(&reflector::ObjectRef<K>) + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + 'static,
{
    let metrics = metrics.clone();
    move |at| metrics.arrived(kind, at.namespace.as_deref().unwrap_or_default(), &at.name)
}

/// The objects of a watch whose `fingerprint` changed since last seen (new ones included), and
/// every deleted one: a watch that triggers reconciles only for the changes that matter.
fn changes<K, S, F>(
    events: S,
    fingerprint: F,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource + Send + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    F: Fn(&K) -> u64 + Send + 'static,
{
    let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    events.filter_map(move |event| {
        let changed = match event {
            Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                let uid = object.meta().uid.clone().unwrap_or_default();
                let print = fingerprint(&object);
                (seen.insert(uid, print) != Some(print)).then_some(object)
            }
            Ok(watcher::Event::Delete(object)) => {
                seen.remove(object.meta().uid.as_deref().unwrap_or_default());
                Some(object)
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => None,
        };
        std::future::ready(changed.map(Ok))
    })
}

fn fingerprint(value: impl std::hash::Hash) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(value)
}

/// What of a child (an ExternalSecret or PushSecret stamped out by a cluster-scoped kind) makes
/// its owner look again: its spec (generation), labels, annotations, controller and deletion,
/// not its status writes.
fn child_fingerprint(meta: &kube::api::ObjectMeta) -> u64 {
    fingerprint((
        meta.generation,
        &meta.labels,
        &meta.annotations,
        meta.owner_references
            .iter()
            .flatten()
            .map(|o| (&o.uid, o.controller))
            .collect::<Vec<_>>(),
        meta.deletion_timestamp.is_some(),
    ))
}

/// A tick every `period`, the first one `period` from now.
fn resync_ticks(period: Duration) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(period).await;
        Some(((), ()))
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

/// Runs the ExternalSecret, SecretStore and ClusterSecretStore reconcilers until `shutdown`.
pub async fn run(
    client: kube::Client,
    metrics: Metrics,
    settings: RunSettings,
    readiness: Option<Readiness>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let ns = settings.namespace.as_deref();
    let shards = settings
        .sharding
        .as_ref()
        .map_or_else(Shards::all, |(peers, _)| peers.shards().clone());
    let peers = settings.sharding.as_ref().map(|(peers, _)| peers.clone());
    // Consistent lists (from etcd, not the apiserver's watch cache): an "any" list may miss an
    // object created a moment before, and in tests it did, leaving an ExternalSecret never synced.
    let watch = watcher::Config::default();

    // Caches the engine reads from. Only Secrets carrying the managed label are cached.
    let secrets = secret_sync::secret_cache::SecretCache::new();
    let managed =
        watcher::Config::default().labels(&format!("{LABEL_MANAGED}={LABEL_MANAGED_VALUE}"));
    // A managed Secret deleted while its watch was down (an apiserver restart) comes with no
    // delete event: the re-list no longer lists it. Such departures are sent here, for its
    // ExternalSecret to sync it back at once, not at the next resync.
    let (departed_tx, mut departed_rx) =
        tokio::sync::mpsc::unbounded_channel::<ObjectRef<Secret>>();
    let secret_cache = secrets.clone();
    let secret_api = api::<Secret>(&client, ns);
    // Sharded: only the Secrets of the shards held (listed again when they change).
    let secret_events = shards
        .watch(move || watcher(secret_api.clone(), managed.clone()))
        .modify(caches::trim_secret)
        .inspect_ok(move |event| {
            for (namespace, name) in secret_cache.apply(event) {
                let _ = departed_tx.send(ObjectRef::new(&name).within(&namespace));
            }
        })
        .recovering()
        .touched_objects();
    let (secret_stores, ss_writer) = reflector::store();
    let ss_events = reflector(
        ss_writer,
        watcher(api::<SecretStore>(&client, ns), watch.clone()),
    )
    .inspect_ok(forget_series(&metrics, Kind::SecretStore))
    .recovering()
    .touched_objects();
    let (cluster_secret_stores, css_writer) = reflector::store();
    let css_events = reflector(
        css_writer,
        watcher(
            Api::<ClusterSecretStore>::all(client.clone()),
            watch.clone(),
        ),
    )
    .inspect_ok(forget_series(&metrics, Kind::ClusterSecretStore))
    .recovering()
    .touched_objects();
    let (namespaces, ns_writer) = reflector::store();
    let ns_events = reflector(
        ns_writer,
        watcher(Api::<Namespace>::all(client.clone()), watch.clone()),
    )
    .recovering();

    let store_caches = StoreCaches {
        secret_stores: secret_stores.clone(),
        cluster_secret_stores: cluster_secret_stores.clone(),
    };
    let view = CachedView {
        secrets,
        secret_stores,
        cluster_secret_stores,
        namespaces: namespaces.clone(),
        api: ApiView::new(client.clone()),
    };
    let referents = Arc::new(KubeReferents::new(client.clone()));
    let engine = Arc::new(Engine::new(
        client.clone(),
        Arc::new(view),
        referents.clone(),
        Arc::new(MetricsObserver(metrics.clone())),
        Settings {
            stores: StoreSettings {
                controller_class: settings.controller_class.clone(),
                flood_gate: settings.flood_gate,
            },
            value_reuse: settings.value_reuse,
            providers: settings.providers.clone(),
            sync_timeout: settings.sync_timeout,
            generator_state: settings.generator_state,
            generator_gc_grace: settings.generator_gc_grace,
            rollout_on_change: settings.rollout_on_change,
            generic_targets: settings.generic_targets,
            success_events: settings.success_events,
            deferred_statuses: settings.deferred_statuses,
            ..Settings::default()
        },
    ));

    let watch_es = watch.clone();
    let es_api = api::<ExternalSecret>(&client, ns);
    let index = ReadIndex::new();
    // A plain watch, not re-listed on a timer: the lost reconcile that a periodic re-list once
    // covered was a lost wake-up (see `caches::ready`), not a lost watch event. The periodic
    // reconcile of every cached ExternalSecret (`resync_ticks` below) stays as the safety net,
    // and costs no request for one that is not due.
    // Sharded: only the ExternalSecrets of the shards held, listed again when they change.
    let (es_store, es_events) = caches::external_secrets(
        shards.watch(move || watcher(es_api.clone(), watch_es.clone())),
        index.clone(),
    );
    // What is kept per ExternalSecret outside the caches (metric series, failure counts) goes
    // with it: on its delete event, or when a re-list no longer lists it.
    let es_ctx = Arc::new(EsContext::new(
        engine.clone(),
        metrics.clone(),
        shards.clone(),
    ));
    let leaving = es_ctx.clone();
    let es_events = es_events
        .inspect_ok(caches::departures(
            arrival(&metrics, Kind::ExternalSecret),
            move |at| leaving.forget(at),
        ))
        .recovering();
    let es_events = caches::settled_objects(es_events, es_store.clone());
    // Every change source hands its changes to this one ingest.
    let ingest = Ingest::new(
        engine.clone(),
        index.clone(),
        es_store.clone(),
        store_caches.clone(),
        ingest::Limits {
            max_syncs: MAX_EVENT_SYNCS,
            store_wait: settings.store_wait,
        },
    );
    ingest.serve_shards(shards.clone());
    // Changes other replicas forward (sharded only).
    let peer_listener = match &settings.sharding {
        Some((peers, addr)) => Some((peers.clone(), tokio::net::TcpListener::bind(addr).await?)),
        None => None,
    };
    let peer_ingest = ingest.clone();
    let peer_shutdown = shutdown.clone();
    let peer_server = async move {
        if let Some((peers, listener)) = peer_listener {
            peers.serve(peer_ingest, listener, peer_shutdown).await;
        }
    };
    // PushSecrets: their cache feeds the push index, through which a provider change at a key
    // one pushed pushes it again.
    let ps_cache = settings.push_secrets.then(|| {
        let push_index = PushIndex::new();
        let ps_api = api::<PushSecret>(&client, ns);
        let ps_watch = watch.clone();
        // A plain watch, not re-listed every resync as ExternalSecrets are: a re-list reconciles
        // every object, and a PushSecret pass reads its providers.
        let (ps_store, ps_events) =
            caches::push_secrets(watcher(ps_api, ps_watch), push_index.clone());
        ingest.serve_push_secrets(push_index.clone(), ps_store.clone());
        let ps_events = caches::settled_objects(
            ps_events
                .inspect_ok(forget_series(&metrics, Kind::PushSecret))
                .recovering(),
            ps_store.clone(),
        );
        (push_index, ps_store, ps_events)
    });
    // ClusterPushSecrets find their PushSecrets in this cache when it is kept.
    let shared_ps_store = ps_cache.as_ref().map(|(_, store, _)| store.clone());
    let es_controller = Controller::for_stream(es_events, es_store.clone())
        .trigger_backoff(caches::no_trigger_backoff());
    let sqs_consumer = match settings.sqs.clone() {
        Some(sqs) => {
            let base = match settings.providers.aws_base.clone() {
                Some(base) => base,
                None => aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
            };
            Some(crate::sqs::Consumer {
                sqs: aws_sdk_sqs::Client::new(&base),
                settings: sqs,
                ingest: ingest.clone(),
                peers: peers.clone(),
                metrics: metrics.clone(),
            })
        }
        None => None,
    };
    // One per kind of feed, each with its own bound, so that one cannot crowd out another.
    let dispatcher = |trigger| {
        crate::dispatch::Dispatcher::new(
            ingest.clone(),
            metrics.clone(),
            trigger,
            MAX_CHANGES_IN_FLIGHT,
        )
    };
    // Feeds that reach one replica only (an audit line, a webhook call) are forwarded to the
    // others; the event stream and the watches reach every replica by themselves.
    let forwarding = |trigger| match &peers {
        Some(peers) => crate::dispatch::Dispatcher::forwarding(
            ingest.clone(),
            peers.clone(),
            metrics.clone(),
            trigger,
            MAX_CHANGES_IN_FLIGHT,
        ),
        None => dispatcher(trigger),
    };
    let event_dispatcher = dispatcher(crate::metrics::Trigger::Event);
    let audit_dispatcher = forwarding(crate::metrics::Trigger::Event);
    let webhook_dispatcher = forwarding(crate::metrics::Trigger::Webhook);
    let audit_receiver = match settings.vault_audit.clone() {
        Some(audit) => {
            let listener = tokio::net::TcpListener::bind(audit.addr).await?;
            Some((
                Arc::new(crate::vault_audit::AuditReceiver::new(
                    audit,
                    audit_dispatcher.clone(),
                    store_caches.clone(),
                    metrics.clone(),
                )),
                listener,
            ))
        }
        None => None,
    };
    let audit_shutdown = shutdown.clone();
    let vault_audit = async move {
        if let Some((receiver, listener)) = audit_receiver {
            receiver.run(listener, audit_shutdown).await;
        }
    };
    let event_streams = settings.vault_events.clone().map(|streams| {
        Arc::new(crate::vault_events::EventStreams {
            settings: streams,
            dispatcher: event_dispatcher.clone(),
            stores: store_caches.clone(),
            referents: referents.clone(),
            metrics: metrics.clone(),
        })
    });
    let streams_shutdown = shutdown.clone();
    let vault_events = async move {
        if let Some(streams) = event_streams {
            streams.run(streams_shutdown).await;
        }
    };
    let webhook = match settings.webhook.clone() {
        Some(hook) => {
            let handler =
                crate::webhook::Webhook::new(&hook, webhook_dispatcher.clone(), metrics.clone());
            match settings.webhook_slot.clone() {
                Some(slot) => {
                    slot.set(Some(handler));
                    None
                }
                None => {
                    let listener = tokio::net::TcpListener::bind(hook.addr).await?;
                    let slot = crate::webhook::WebhookSlot::default();
                    slot.set(Some(handler));
                    Some((slot, listener))
                }
            }
        }
        None => None,
    };
    let webhook_shutdown = shutdown.clone();
    let webhook = async move {
        if let Some((slot, listener)) = webhook {
            slot.serve(listener, webhook_shutdown).await;
        }
    };
    let template_dispatcher = dispatcher(crate::metrics::Trigger::Watch);
    // Both template-source watches' first lists (the controller is ready only after them).
    let (sources_listed, mut sources_listed_rx) = tokio::sync::watch::channel(0usize);
    let template_sources = settings.template_sources.then(|| {
        crate::template_sources::run(
            client.clone(),
            settings.namespace.clone(),
            index.clone(),
            es_store.clone(),
            template_dispatcher.clone(),
            sources_listed,
            shutdown.clone(),
        )
    });
    let kubernetes_watches = settings.kubernetes_watch.then(|| {
        Arc::new(crate::kubernetes_watch::KubernetesWatches {
            settings: Default::default(),
            dispatcher: dispatcher(crate::metrics::Trigger::Watch),
            stores: store_caches.clone(),
            referents: referents.clone(),
        })
    });
    let watches_shutdown = shutdown.clone();
    let kubernetes_watches = async move {
        if let Some(watches) = kubernetes_watches {
            watches.run(watches_shutdown).await;
        }
    };
    let template_sources_wanted = settings.template_sources;
    let template_sources = async move {
        if let Some(run) = template_sources {
            run.await;
        }
    };
    let sqs_shutdown = shutdown.clone();
    let sqs = async move {
        if let Some(consumer) = sqs_consumer {
            consumer.run(sqs_shutdown).await;
        }
    };
    let by_secret = es_store.clone();
    let by_departed = es_store.clone();
    let departed_secrets = futures::stream::poll_fn(move |cx| departed_rx.poll_recv(cx)).flat_map(
        move |gone: ObjectRef<Secret>| {
            let namespace = gone.namespace.clone().unwrap_or_default();
            futures::stream::iter(external_secret::external_secrets_targeting(
                &namespace,
                &gone.name,
                &by_departed,
            ))
        },
    );
    let by_store = index.clone();
    let by_cluster_store = index.clone();
    let external_secrets = es_controller
        .watches_stream(secret_events, move |secret: Secret| {
            external_secrets_for_secret(&secret, &by_secret)
        })
        .reconcile_on(departed_secrets)
        .watches_stream(ss_events, move |s: SecretStore| {
            external_secrets_for_store(
                StoreKind::SecretStore,
                s.namespace().as_deref(),
                &s.name_any(),
                &by_store,
            )
        })
        .watches_stream(css_events, move |s: ClusterSecretStore| {
            external_secrets_for_store(
                StoreKind::ClusterSecretStore,
                None,
                &s.name_any(),
                &by_cluster_store,
            )
        })
        .with_config(controller::Config::default().concurrency(settings.concurrency))
        .reconcile_all_on(resync_ticks(settings.resync))
        .reconcile_all_on(shards.changed())
        // Wakes the runner once the cache is listed (see `caches::once_ready`).
        .reconcile_all_on(caches::once_ready(es_store.clone()))
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            external_secret::reconcile,
            external_secret::error_policy,
            es_ctx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "ExternalSecret controller event");
            }
        });

    let store_ctx = Arc::new(StoreContext {
        client: client.clone(),
        referents,
        providers: settings.providers.clone(),
        recorder: recorder(&client),
        metrics: metrics.clone(),
        controller_class: settings.controller_class.clone(),
        requeue: settings.store_requeue,
    });
    let secret_store_controller = store_controller(
        api::<SecretStore>(&client, ns),
        watch.clone(),
        store_ctx.clone(),
        shards.clone(),
        shutdown.clone(),
    );
    let cluster_store_controller = store_controller(
        Api::<ClusterSecretStore>::all(client.clone()),
        watch.clone(),
        store_ctx,
        shards.clone(),
        shutdown.clone(),
    );
    // GeneratorStates: deleted at their deadline, cleaned up (their finalizer) when deleted.
    let generator_states = {
        let (cache, writer) = reflector::store();
        let events = reflector(
            writer,
            watcher(api::<GeneratorState>(&client, ns), watch.clone()),
        )
        .recovering()
        .applied_objects();
        Controller::for_stream(events, cache.clone())
            .trigger_backoff(caches::no_trigger_backoff())
            // Wakes the runner once the cache is listed (see `caches::once_ready`).
            .reconcile_all_on(caches::once_ready(cache))
            .reconcile_all_on(shards.changed())
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                in_shards(shards.clone(), generator_state::reconcile),
                generator_state::error_policy,
                Arc::new(generator_state::GsContext {
                    engine: engine.clone(),
                }),
            )
            .for_each(|_| async {})
    };

    // The namespace cache is read by the engine (ClusterSecretStore conditions) and by the
    // ClusterExternalSecret and ClusterPushSecret reconcilers; its label changes (and new and
    // deleted namespaces) are handed to those of them that run. Only label changes can change a
    // selection: not the status writes of a namespace being finalized.
    let ces_enabled = settings.cluster_external_secrets && ns.is_none();
    let cps_enabled = settings.cluster_push_secrets && ns.is_none();
    let (ces_ns_tx, mut ces_ns_rx) = tokio::sync::mpsc::unbounded_channel::<Namespace>();
    let (cps_ns_tx, mut cps_ns_rx) = tokio::sync::mpsc::unbounded_channel::<Namespace>();
    let ns_followers: Vec<_> = [(ces_enabled, ces_ns_tx), (cps_enabled, cps_ns_tx)]
        .into_iter()
        .filter_map(|(enabled, tx)| enabled.then_some(tx))
        .collect();
    let ns_shutdown = shutdown.clone();
    let namespace_cache = async move {
        let events = changes(ns_events, |ns: &Namespace| fingerprint(ns.labels()));
        let mut events = std::pin::pin!(events);
        loop {
            tokio::select! {
                _ = ns_shutdown.cancelled() => break,
                next = events.next() => match next {
                    None => break,
                    Some(Ok(namespace)) => {
                        for follower in &ns_followers {
                            let _ = follower.send(namespace.clone());
                        }
                    }
                    Some(Err(_)) => {}
                },
            }
        }
    };
    let ces_ctx = Arc::new(cluster_external_secret::CesContext {
        client: client.clone(),
        namespaces: namespaces.clone(),
        external_secrets: es_store.clone(),
        stores: store_caches.clone(),
        controller_class: settings.controller_class.clone(),
        metrics: metrics.clone(),
        applied: Default::default(),
    });
    let ces_shutdown = shutdown.clone();
    let ces_shards = shards.clone();
    let ces_client = client.clone();
    let ces_watch = watch.clone();
    let ces_metrics = metrics.clone();
    let cluster_external_secrets = async move {
        if !ces_enabled {
            return;
        }
        let (all, writer) = reflector::store();
        let leaving = ces_ctx.clone();
        let ces_events = reflector(
            writer,
            watcher(
                Api::<ClusterExternalSecret>::all(ces_client.clone()),
                ces_watch.clone(),
            ),
        )
        .inspect_ok(caches::departures(
            arrival(&ces_metrics, Kind::ClusterExternalSecret),
            move |at| leaving.forget(at),
        ))
        .recovering();
        let controller = Controller::for_stream(
            caches::settled_objects(ces_events, all.clone()),
            all.clone(),
        )
        .trigger_backoff(caches::no_trigger_backoff());
        // A child changed or went: its owner puts it back. Metadata is all that is needed.
        let children = watcher(
            Api::<kube::core::PartialObjectMeta<ExternalSecret>>::all(ces_client),
            ces_watch,
        )
        .recovering();
        let ns_changes = futures::stream::poll_fn(move |cx| ces_ns_rx.poll_recv(cx))
            .map(Ok::<_, watcher::Error>);
        // Not an ExternalSecret's own status writes.
        let children = changes(
            children,
            |es: &kube::core::PartialObjectMeta<ExternalSecret>| {
                fingerprint((
                    es.metadata.generation,
                    es.labels(),
                    es.annotations(),
                    es.owner_references()
                        .iter()
                        .map(|o| (&o.uid, o.controller))
                        .collect::<Vec<_>>(),
                    es.metadata.deletion_timestamp.is_some(),
                ))
            },
        );
        controller
            .watches_stream(ns_changes, move |_: Namespace| {
                all.state()
                    .iter()
                    .map(|ces| reflector::ObjectRef::from_obj(ces.as_ref()))
                    .collect::<Vec<_>>()
            })
            .watches_stream(children, |es| cluster_external_secret::owner_of(&es))
            .reconcile_all_on(ces_shards.changed())
            .graceful_shutdown_on(ces_shutdown.cancelled_owned())
            .run(
                in_shards(ces_shards, cluster_external_secret::reconcile),
                cluster_external_secret::error_policy,
                ces_ctx,
            )
            .for_each(|_| async {})
            .await;
    };

    // ClusterPushSecrets: as ClusterExternalSecrets, over PushSecrets. The children are found in
    // the PushSecret reconciler's cache, or in one of this reconciler's own when that is off.
    let cps_client = client.clone();
    let cps_watch = watch.clone();
    let cps_metrics = metrics.clone();
    let cps_namespaces = namespaces.clone();
    let cps_shutdown = shutdown.clone();
    let cps_shards = shards.clone();
    let cluster_push_secrets = async move {
        if !cps_enabled {
            return;
        }
        type Children = futures::stream::BoxStream<
            'static,
            Result<kube::core::PartialObjectMeta<PushSecret>, watcher::Error>,
        >;
        let (children_store, children): (reflector::Store<PushSecret>, Children) =
            match shared_ps_store {
                Some(store) => {
                    // Children no longer wanted are found in this cache: a first pass before it
                    // is listed would leave them to the refresh.
                    tokio::select! {
                        _ = cps_shutdown.cancelled() => return,
                        _ = caches::ready(&store) => {}
                    }
                    let metadata = watcher(
                        Api::<kube::core::PartialObjectMeta<PushSecret>>::all(cps_client.clone()),
                        cps_watch.clone(),
                    )
                    .recovering();
                    let children = changes(
                        metadata,
                        |ps: &kube::core::PartialObjectMeta<PushSecret>| {
                            child_fingerprint(&ps.metadata)
                        },
                    );
                    (store, children.boxed())
                }
                None => {
                    let (store, writer) = reflector::store();
                    let events = reflector(
                        writer,
                        watcher(
                            Api::<PushSecret>::all(cps_client.clone()),
                            cps_watch.clone(),
                        )
                        .modify(caches::trim_push_secret),
                    )
                    .recovering();
                    let children =
                        changes(events, |ps: &PushSecret| child_fingerprint(&ps.metadata)).map_ok(
                            |ps| {
                                use kube::core::PartialObjectMetaExt as _;
                                ps.metadata.into_request_partial::<PushSecret>()
                            },
                        );
                    (store, children.boxed())
                }
            };
        let ctx = Arc::new(cluster_push_secret::CpsContext {
            client: cps_client.clone(),
            namespaces: cps_namespaces,
            push_secrets: children_store,
            metrics: cps_metrics.clone(),
            applied: Default::default(),
        });
        let (all, writer) = reflector::store();
        let leaving = ctx.clone();
        let cps_events = reflector(
            writer,
            watcher(Api::<ClusterPushSecret>::all(cps_client), cps_watch),
        )
        .inspect_ok(caches::departures(
            arrival(&cps_metrics, Kind::ClusterPushSecret),
            move |at| leaving.forget(at),
        ))
        .recovering();
        let ns_changes = futures::stream::poll_fn(move |cx| cps_ns_rx.poll_recv(cx))
            .map(Ok::<_, watcher::Error>);
        Controller::for_stream(
            caches::settled_objects(cps_events, all.clone()),
            all.clone(),
        )
        .trigger_backoff(caches::no_trigger_backoff())
        .watches_stream(ns_changes, move |_: Namespace| {
            all.state()
                .iter()
                .map(|cps| reflector::ObjectRef::from_obj(cps.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(children, |ps| cluster_push_secret::owner_of(&ps))
        .reconcile_all_on(cps_shards.changed())
        .graceful_shutdown_on(cps_shutdown.cancelled_owned())
        .run(
            in_shards(cps_shards, cluster_push_secret::reconcile),
            cluster_push_secret::error_policy,
            ctx,
        )
        .for_each(|_| async {})
        .await;
    };

    // PushSecrets: pushed again when they change, when their source Secret changes (a
    // metadata watch of Secrets, mapped to the PushSecrets naming or selecting them), and every
    // refreshInterval.
    let ps_ctx = Arc::new(push_secret::PsContext {
        engine: engine.clone(),
        stores: store_caches.clone(),
        metrics: metrics.clone(),
    });
    let ps_client = client.clone();
    let ps_watch = watch.clone();
    let ps_shutdown = shutdown.clone();
    let ps_shards = shards.clone();
    let ps_namespace = settings.namespace.clone();
    let push_secrets = async move {
        let Some((push_index, ps_store, ps_events)) = ps_cache else {
            return;
        };
        let ns = ps_namespace.as_deref();
        // The ingest waits on this cache too: see `caches::once_ready`.
        let controller = Controller::for_stream(ps_events, ps_store.clone())
            .trigger_backoff(caches::no_trigger_backoff())
            .reconcile_all_on(caches::once_ready(ps_store.clone()));
        let sources = watcher(
            api::<kube::core::PartialObjectMeta<Secret>>(&ps_client, ns),
            ps_watch,
        )
        .recovering()
        .touched_objects();
        controller
            .watches_stream(sources, move |secret| {
                push_secret::readers_of(&secret, &push_index)
            })
            .reconcile_all_on(ps_shards.changed())
            .graceful_shutdown_on(ps_shutdown.cancelled_owned())
            .run(
                in_shards(ps_shards, push_secret::reconcile),
                push_secret::error_policy,
                ps_ctx,
            )
            .for_each(|_| async {})
            .await;
    };

    // `workqueue_depth` for ExternalSecrets: those due now, sampled (see `metrics`).
    let depth_store = es_store.clone();
    let depth_metrics = metrics.clone();
    let depth_shutdown = shutdown.clone();
    let depth_shards = shards.clone();
    let workqueue_depth = async move {
        caches::ready(&depth_store).await;
        let mut ticks = tokio::time::interval(WORKQUEUE_SAMPLE);
        loop {
            tokio::select! {
                _ = depth_shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let now = jiff::Timestamp::now();
            let due = depth_store
                .state()
                .iter()
                .filter(|es| depth_shards.owns(es.namespace().as_deref().unwrap_or("")))
                // Only those that may be due are decoded and looked at closely.
                .filter(|es| es.may_be_due(now))
                .filter_map(|es| es.expanded())
                .filter(|es| {
                    secret_sync::engine::validate_spec(es).is_ok_and(|interval| {
                        secret_sync::refresh::should_refresh(es, interval, now)
                            .is_some_and(|due| due != secret_sync::refresh::Due::Failed)
                    })
                })
                .count();
            depth_metrics.set_workqueue_depth(Kind::ExternalSecret, due);
        }
    };

    let ready = async move {
        caches::ready(&es_store).await;
        if template_sources_wanted {
            // A templateFrom source changed after readiness is never missed.
            let _ = sources_listed_rx.wait_for(|n| *n >= 2).await;
        }
        if let Some(readiness) = readiness {
            readiness.set_ready(true);
        }
        tracing::info!("caches synced");
    };
    tracing::info!(namespace = ?settings.namespace, concurrency = settings.concurrency, "reconcilers started");
    tokio::join!(
        external_secrets,
        secret_store_controller,
        cluster_store_controller,
        generator_states,
        cluster_external_secrets,
        cluster_push_secrets,
        push_secrets,
        namespace_cache,
        sqs,
        vault_audit,
        vault_events,
        webhook,
        template_sources,
        kubernetes_watches,
        workqueue_depth,
        peer_server,
        ready
    );
    if let Some(slot) = &settings.webhook_slot {
        slot.set(None);
    }
    // In-flight event-driven syncs get a moment; the next reconcile covers any left.
    drop((
        event_dispatcher,
        audit_dispatcher,
        webhook_dispatcher,
        template_dispatcher,
    ));
    ingest.close(Duration::from_secs(5)).await;
    Ok(())
}
