//! Prometheus metrics: ESO's names and labels, controller-runtime's, and our own.
//!
//! Served as OpenMetrics text on `/metrics`. ESO users' dashboards and alerts query exact
//! names, so the names below are the ones ESO and controller-runtime expose:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `externalsecret_sync_calls_total` | counter | name, namespace |
//! | `externalsecret_sync_calls_error` | gauge (see below) | name, namespace |
//! | `<kind>_status_condition` | gauge | condition, name, namespace, status |
//! | `<kind>_reconcile_duration` | gauge, **nanoseconds** as in ESO | name, namespace |
//! | `externalsecret_provider_api_calls_count` | gauge (see below) | call, provider, status |
//! | `controller_runtime_reconcile_total` | counter | controller, result |
//! | `controller_runtime_reconcile_errors_total` | counter | controller |
//! | `controller_runtime_reconcile_time_seconds` | histogram (controller-runtime's buckets) | controller |
//! | `controller_runtime_max_concurrent_reconciles` | gauge | controller |
//! | `controller_runtime_active_workers` | gauge | controller |
//! | `workqueue_depth` | gauge | controller, name |
//! | `leader_election_master_status` | gauge | name |
//! | `secret_sync_provider_calls_total` | counter | operation, provider, result |
//! | `secret_sync_apiserver_writes_total` | counter | kind, verb |
//! | `secret_sync_kube_events_dropped_total` | counter | |
//! | `secret_sync_status_queue_depth` | gauge | |
//! | `secret_sync_sync_latency_seconds` | histogram | trigger |
//! | `secret_sync_events_total` | counter | result, source |
//! | `secret_sync_vault_event_stream_connected` | gauge | event_type, server |
//!
//! `<kind>` is `externalsecret`, `secretstore`, `clustersecretstore`, `clusterexternalsecret`,
//! `pushsecret` or `clusterpushsecret` ([`Kind`]).
//! The four per-object families (name, namespace) stay empty with `--object-metrics false`
//! ([`Metrics::with_object_series`]).
//!
//! **Names without `_total`.** ESO registers two counters whose names do not end in `_total`
//! (`externalsecret_sync_calls_error`, `externalsecret_provider_api_calls_count`). OpenMetrics
//! requires a counter's sample to be called `<family>_total`, and prometheus-client always
//! appends it, so a counter cannot carry those names. They are exposed as gauges that only ever
//! go up: the sample name is exactly ESO's, and `rate()`/`increase()` work as before (PromQL
//! does not look at the type). Label order follows client_golang's, which sorts label names.
//!
//! **`workqueue_depth`**, ESO's documented SLI, is controller-runtime's count of objects waiting
//! for a worker. kube-rs's scheduler does not expose its queue, so for ExternalSecrets it is
//! counted from the cache: those whose sync is due now (first sync, spec change, refresh
//! interval passed, expiring generated values) and not yet done, sampled every few seconds. A
//! healthy controller keeps it near zero; a growing value means syncs fall behind.
//!
//! **Secret hygiene.** Label values are object names, namespaces, provider and operation names:
//! never a secret value, a remote key's content or an error message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use secret_sync_crd::ConditionStatus;

/// controller-runtime's `controller_runtime_reconcile_time_seconds` buckets, verbatim.
const RECONCILE_TIME_BUCKETS: [f64; 40] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
    1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0,
    25.0, 30.0, 40.0, 50.0, 60.0,
];

/// From a provider event in a few milliseconds to a timer-driven refresh an hour late.
const SYNC_LATENCY_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The resource kinds whose reconcilers report ESO's per-object metrics. The metric prefix
/// (`externalsecret_…`) and controller-runtime's `controller` label are the same lowercase name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    ExternalSecret,
    SecretStore,
    ClusterSecretStore,
    ClusterExternalSecret,
    PushSecret,
    ClusterPushSecret,
}

impl Kind {
    /// Every kind, in the order their families are registered.
    pub const ALL: [Kind; 6] = [
        Kind::ExternalSecret,
        Kind::SecretStore,
        Kind::ClusterSecretStore,
        Kind::ClusterExternalSecret,
        Kind::PushSecret,
        Kind::ClusterPushSecret,
    ];

    /// ESO's metric subsystem and controller-runtime's controller name: `externalsecret`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ExternalSecret => "externalsecret",
            Kind::SecretStore => "secretstore",
            Kind::ClusterSecretStore => "clustersecretstore",
            Kind::ClusterExternalSecret => "clusterexternalsecret",
            Kind::PushSecret => "pushsecret",
            Kind::ClusterPushSecret => "clusterpushsecret",
        }
    }

    fn human(self) -> &'static str {
        match self {
            Kind::ExternalSecret => "External Secret",
            Kind::SecretStore => "Secret Store",
            Kind::ClusterSecretStore => "Cluster Secret Store",
            Kind::ClusterExternalSecret => "Cluster External Secret",
            Kind::PushSecret => "Push Secret",
            Kind::ClusterPushSecret => "Cluster Push Secret",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The condition types ESO reports in `<kind>_status_condition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionType {
    Ready,
    Deleted,
}

impl ConditionType {
    const ALL: [ConditionType; 2] = [ConditionType::Ready, ConditionType::Deleted];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Deleted => "Deleted",
        }
    }
}

impl From<secret_sync_crd::ExternalSecretConditionType> for ConditionType {
    fn from(t: secret_sync_crd::ExternalSecretConditionType) -> Self {
        match t {
            secret_sync_crd::ExternalSecretConditionType::Ready => ConditionType::Ready,
            secret_sync_crd::ExternalSecretConditionType::Deleted => ConditionType::Deleted,
        }
    }
}

const STATUSES: [ConditionStatus; 3] = [
    ConditionStatus::True,
    ConditionStatus::False,
    ConditionStatus::Unknown,
];

/// controller-runtime's `result` label of `controller_runtime_reconcile_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    Success,
    Error,
    Requeue,
    RequeueAfter,
}

impl ReconcileResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::Error => "error",
            ReconcileResult::Requeue => "requeue",
            ReconcileResult::RequeueAfter => "requeue_after",
        }
    }
}

/// What started a sync, for `secret_sync_sync_latency_seconds{trigger}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The refresh interval came round.
    Timer,
    /// A watched Kubernetes object changed.
    Watch,
    /// A provider change event (EventBridge, SQS, Vault events).
    Event,
    /// A signed webhook call.
    Webhook,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Timer => "timer",
            Trigger::Watch => "watch",
            Trigger::Event => "event",
            Trigger::Webhook => "webhook",
        }
    }
}

/// What became of a provider change event, for `secret_sync_events_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventResult {
    /// Parsed and accepted.
    Received,
    /// Named a remote key that at least one ExternalSecret reads.
    Matched,
    /// Valid, but no ExternalSecret reads the key (or it was a duplicate).
    Dropped,
    /// Could not be parsed (or was too large).
    Malformed,
    /// Refused before it was read: a peer not allowed, a bad or missing signature.
    Unauthorized,
    /// Refused because too much was in flight (connections, changes, requests per second); the
    /// periodic reconcile covers it.
    Overloaded,
}

impl EventResult {
    pub fn as_str(self) -> &'static str {
        match self {
            EventResult::Received => "received",
            EventResult::Matched => "matched",
            EventResult::Dropped => "dropped",
            EventResult::Malformed => "malformed",
            EventResult::Unauthorized => "unauthorized",
            EventResult::Overloaded => "overloaded",
        }
    }
}

// Label sets. Fields are in alphabetical order, as client_golang writes them.

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    condition: &'static str,
    name: String,
    namespace: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    controller: &'static str,
    name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerResultLabels {
    controller: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    event_type: String,
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EsoProviderLabels {
    call: String,
    provider: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    operation: String,
    provider: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    kind: String,
    verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    result: &'static str,
    source: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// `<kind>_status_condition` and `<kind>_reconcile_duration` of one kind.
struct PerKind {
    condition: Family<ConditionLabels, FloatGauge>,
    duration: Family<ObjectLabels, FloatGauge>,
}

struct Inner {
    registry: Registry,
    /// The length of the last exposition: the next one is written into a buffer of about that
    /// size, not one doubled past it (at 10,000 ExternalSecrets the text is megabytes).
    last_len: AtomicUsize,
    /// Whether per-object series are kept (`--object-metrics`).
    object_series: bool,
    /// Deleted objects, and when they were deleted: a reconcile in flight at the deletion (and
    /// its error policy) may still report it; those reports are dropped for [`GONE_FOR`].
    gone: Mutex<HashMap<(Kind, String, String), Instant>>,
    sync_calls: Family<ObjectLabels, Counter>,
    sync_calls_error: Family<ObjectLabels, Gauge<i64, AtomicI64>>,
    kinds: Vec<PerKind>,
    eso_provider_calls: Family<EsoProviderLabels, Gauge<i64, AtomicI64>>,
    reconcile_total: Family<ControllerResultLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    reconcile_time: HistogramFamily<ControllerLabels>,
    max_concurrent: Family<ControllerLabels, Gauge>,
    workqueue_depth: Family<QueueLabels, Gauge>,
    active_workers: Family<ControllerLabels, Gauge>,
    leader: Family<LeaseLabels, Gauge>,
    provider_calls: Family<ProviderLabels, Counter>,
    apiserver_writes: Family<WriteLabels, Counter>,
    kube_events_dropped: Counter,
    status_queue: Gauge,
    sync_latency: HistogramFamily<TriggerLabels>,
    events: Family<EventLabels, Counter>,
    event_streams: Family<StreamLabels, Gauge>,
}

/// How long reports of a deleted object are ignored: longer than a reconcile in flight at the
/// deletion can take (the sync timeout is 2 minutes).
const GONE_FOR: Duration = Duration::from_secs(600);

/// A cheap, cloneable handle on the process's metrics. Every method is lock-free apart from the
/// first use of a label set, and the look-up of recently deleted objects in per-object reports.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn object(namespace: &str, name: &str) -> ObjectLabels {
    ObjectLabels {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
    }
}

impl Metrics {
    /// A fresh registry with every family registered. A family appears in the exposition once it
    /// has a series, as with client_golang's vectors.
    pub fn new() -> Self {
        Self::with_object_series(true)
    }

    /// As [`Metrics::new`]; with `object_series` false, the per-object families (sync calls,
    /// conditions, reconcile durations) stay empty.
    pub fn with_object_series(object_series: bool) -> Self {
        let mut registry = Registry::default();

        let sync_calls = Family::default();
        registry.register(
            // Exposed as `externalsecret_sync_calls_total`: the encoder adds `_total`.
            "externalsecret_sync_calls",
            "Total number of the External Secret sync calls",
            sync_calls.clone(),
        );
        let sync_calls_error = Family::default();
        registry.register(
            "externalsecret_sync_calls_error",
            "Total number of the External Secret sync errors",
            sync_calls_error.clone(),
        );

        let kinds = Kind::ALL
            .iter()
            .map(|kind| {
                let condition = Family::default();
                registry.register(
                    format!("{}_status_condition", kind.as_str()),
                    format!("The status condition of a specific {}", kind.human()),
                    condition.clone(),
                );
                let duration = Family::default();
                registry.register(
                    format!("{}_reconcile_duration", kind.as_str()),
                    format!(
                        "The duration time to reconcile the {} (nanoseconds)",
                        kind.human()
                    ),
                    duration.clone(),
                );
                PerKind {
                    condition,
                    duration,
                }
            })
            .collect();

        let eso_provider_calls = Family::default();
        registry.register(
            "externalsecret_provider_api_calls_count",
            "Number of API calls towards the secret provider",
            eso_provider_calls.clone(),
        );

        let reconcile_total = Family::default();
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            reconcile_total.clone(),
        );
        let reconcile_errors = Family::default();
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            reconcile_errors.clone(),
        );
        let reconcile_time: HistogramFamily<ControllerLabels> =
            Family::new_with_constructor(|| Histogram::new(RECONCILE_TIME_BUCKETS));
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            reconcile_time.clone(),
        );
        let max_concurrent = Family::default();
        registry.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            max_concurrent.clone(),
        );
        let workqueue_depth = Family::default();
        registry.register(
            "workqueue_depth",
            "Current depth of workqueue",
            workqueue_depth.clone(),
        );
        let active_workers = Family::default();
        registry.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            active_workers.clone(),
        );
        let event_streams = Family::default();
        registry.register(
            "secret_sync_vault_event_stream_connected",
            "1 while the websocket to a Vault server's event stream is open, for each event type",
            event_streams.clone(),
        );
        let leader = Family::default();
        registry.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease",
            leader.clone(),
        );

        let provider_calls = Family::default();
        registry.register(
            "secret_sync_provider_calls",
            "Calls to secret providers by provider, operation and result",
            provider_calls.clone(),
        );
        let apiserver_writes = Family::default();
        registry.register(
            "secret_sync_apiserver_writes",
            "Writes to the Kubernetes API server by kind and verb",
            apiserver_writes.clone(),
        );
        let status_queue = Gauge::default();
        registry.register(
            "secret_sync_status_queue_depth",
            "ExternalSecret statuses of change-driven syncs queued behind their Secrets, not yet written",
            status_queue.clone(),
        );
        let kube_events_dropped = Counter::default();
        registry.register(
            "secret_sync_kube_events_dropped",
            "Kubernetes Events dropped because too many were waiting to be written",
            kube_events_dropped.clone(),
        );
        let sync_latency: HistogramFamily<TriggerLabels> =
            Family::new_with_constructor(|| Histogram::new(SYNC_LATENCY_BUCKETS));
        registry.register(
            "secret_sync_sync_latency_seconds",
            "Time from a change (provider event, webhook, watch or timer) to the Secret written",
            sync_latency.clone(),
        );
        let events = Family::default();
        registry.register(
            "secret_sync_events",
            "Provider change events by source and what became of them",
            events.clone(),
        );

        Metrics {
            inner: Arc::new(Inner {
                gone: Mutex::new(HashMap::new()),
                registry,
                last_len: AtomicUsize::new(0),
                object_series,
                sync_calls,
                sync_calls_error,
                kinds,
                eso_provider_calls,
                reconcile_total,
                reconcile_errors,
                reconcile_time,
                max_concurrent,
                workqueue_depth,
                active_workers,
                leader,
                provider_calls,
                apiserver_writes,
                kube_events_dropped,
                status_queue,
                sync_latency,
                events,
                event_streams,
            }),
        }
    }

    /// The OpenMetrics text exposition, ending in `# EOF`.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let last = self.inner.last_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity(last + last / 16);
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)?;
        self.inner.last_len.store(out.len(), Ordering::Relaxed);
        Ok(out)
    }

    fn kind(&self, kind: Kind) -> &PerKind {
        &self.inner.kinds[kind.index()]
    }

    /// The object left its watch (deleted): its series are dropped, and reports of it that
    /// come later from a reconcile that was in flight are ignored.
    pub fn forget(&self, kind: Kind, namespace: &str, name: &str) {
        self.clear(kind, namespace, name);
        let mut gone = self.inner.gone.lock().unwrap_or_else(|e| e.into_inner());
        if gone.len() >= 4096 {
            gone.retain(|_, at| at.elapsed() < GONE_FOR);
        }
        gone.insert(
            (kind, namespace.to_owned(), name.to_owned()),
            Instant::now(),
        );
    }

    /// The object is in its watch (again: one of the same name may be created after a delete).
    pub fn arrived(&self, kind: Kind, namespace: &str, name: &str) {
        let mut gone = self.inner.gone.lock().unwrap_or_else(|e| e.into_inner());
        if !gone.is_empty() {
            gone.remove(&(kind, namespace.to_owned(), name.to_owned()));
        }
    }

    /// Whether reports of this object are dropped: per-object series are off, or it was deleted
    /// a moment ago (see [`Metrics::forget`]).
    fn ignores(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        if !self.inner.object_series {
            return true;
        }
        let gone = self.inner.gone.lock().unwrap_or_else(|e| e.into_inner());
        !gone.is_empty()
            && gone
                .get(&(kind, namespace.to_owned(), name.to_owned()))
                .is_some_and(|at| at.elapsed() < GONE_FOR)
    }

    /// One ExternalSecret reconcile: `externalsecret_sync_calls_total`.
    pub fn sync_call(&self, namespace: &str, name: &str) {
        if self.ignores(Kind::ExternalSecret, namespace, name) {
            return;
        }
        self.inner
            .sync_calls
            .get_or_create(&object(namespace, name))
            .inc();
    }

    /// One failed ExternalSecret sync: `externalsecret_sync_calls_error`.
    pub fn sync_error(&self, namespace: &str, name: &str) {
        if self.ignores(Kind::ExternalSecret, namespace, name) {
            return;
        }
        self.inner
            .sync_calls_error
            .get_or_create(&object(namespace, name))
            .inc();
    }

    /// Reports an object's condition in `<kind>_status_condition`, as ESO does: the current
    /// `(condition, status)` is 1 and the opposite of `True`/`False` is 0; `Unknown` appears
    /// only while it is current. Reporting `Ready` removes the `Deleted` series and vice versa.
    pub fn set_condition(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        condition: ConditionType,
        status: ConditionStatus,
    ) {
        if self.ignores(kind, namespace, name) {
            return;
        }
        let family = &self.kind(kind).condition;
        let labels = |condition: ConditionType, status: ConditionStatus| ConditionLabels {
            condition: condition.as_str(),
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            status: status.as_str(),
        };
        for other in ConditionType::ALL.into_iter().filter(|c| *c != condition) {
            for s in STATUSES {
                family.remove(&labels(other, s));
            }
        }
        for s in STATUSES {
            let value = if s == status { 1.0 } else { 0.0 };
            if s == ConditionStatus::Unknown && s != status {
                family.remove(&labels(condition, s));
            } else {
                family.get_or_create(&labels(condition, s)).set(value);
            }
        }
    }

    /// `Ready=True` or `Ready=False`: the common case of [`Metrics::set_condition`].
    pub fn set_ready(&self, kind: Kind, namespace: &str, name: &str, ready: bool) {
        self.set_condition(
            kind,
            namespace,
            name,
            ConditionType::Ready,
            ConditionStatus::from_bool(ready),
        );
    }

    /// Drops every per-object series of a deleted object, so deleted objects do not leak series:
    /// its conditions, reconcile duration and (for ExternalSecrets) sync counters.
    pub fn clear(&self, kind: Kind, namespace: &str, name: &str) {
        let per_kind = self.kind(kind);
        for condition in ConditionType::ALL {
            for status in STATUSES {
                per_kind.condition.remove(&ConditionLabels {
                    condition: condition.as_str(),
                    name: name.to_owned(),
                    namespace: namespace.to_owned(),
                    status: status.as_str(),
                });
            }
        }
        let obj = object(namespace, name);
        per_kind.duration.remove(&obj);
        if kind == Kind::ExternalSecret {
            self.inner.sync_calls.remove(&obj);
            self.inner.sync_calls_error.remove(&obj);
        }
    }

    /// Starts timing one reconcile. While the guard lives, the controller counts as an active
    /// worker; when it drops, `<kind>_reconcile_duration` is set (nanoseconds, as ESO) and
    /// `controller_runtime_reconcile_time_seconds` observes the time.
    pub fn reconcile_timer(&self, kind: Kind, namespace: &str, name: &str) -> ReconcileTimer {
        let controller = ControllerLabels {
            controller: kind.as_str(),
        };
        self.inner.active_workers.get_or_create(&controller).inc();
        ReconcileTimer {
            metrics: self.clone(),
            kind,
            object: object(namespace, name),
            start: Instant::now(),
        }
    }

    /// The outcome of one reconcile: `controller_runtime_reconcile_total{result}`, and
    /// `controller_runtime_reconcile_errors_total` for errors.
    pub fn reconcile_result(&self, kind: Kind, result: ReconcileResult) {
        let controller = kind.as_str();
        self.inner
            .reconcile_total
            .get_or_create(&ControllerResultLabels {
                controller,
                result: result.as_str(),
            })
            .inc();
        if result == ReconcileResult::Error {
            self.inner
                .reconcile_errors
                .get_or_create(&ControllerLabels { controller })
                .inc();
        }
    }

    /// `workqueue_depth{controller, name}`: objects of `kind` waiting to be synced.
    pub fn set_workqueue_depth(&self, kind: Kind, depth: usize) {
        self.inner
            .workqueue_depth
            .get_or_create(&QueueLabels {
                controller: kind.as_str(),
                name: kind.as_str(),
            })
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// `controller_runtime_max_concurrent_reconciles`: the configured concurrency.
    pub fn set_max_concurrent_reconciles(&self, kind: Kind, n: usize) {
        self.inner
            .max_concurrent
            .get_or_create(&ControllerLabels {
                controller: kind.as_str(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// `secret_sync_vault_event_stream_connected{event_type, server}`: 1 while that websocket
    /// is open.
    pub fn set_event_stream_connected(&self, server: &str, event_type: &str, connected: bool) {
        self.inner
            .event_streams
            .get_or_create(&StreamLabels {
                event_type: event_type.to_owned(),
                server: server.to_owned(),
            })
            .set(i64::from(connected));
    }

    /// `leader_election_master_status{name=<lease>}`: 1 while this process leads.
    pub fn set_leader(&self, lease: &str, leading: bool) {
        self.inner
            .leader
            .get_or_create(&LeaseLabels {
                name: lease.to_owned(),
            })
            .set(i64::from(leading));
    }

    /// One call to a secret provider. Use ESO's names so its dashboards work: provider
    /// `AWS/SecretsManager`, `HashiCorp/Vault`, …; operation `GetSecretValue`,
    /// `ReadSecretData`, …. Feeds `secret_sync_provider_calls_total` and ESO's
    /// `externalsecret_provider_api_calls_count`.
    pub fn provider_call(&self, provider: &str, operation: &str, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.inner
            .provider_calls
            .get_or_create(&ProviderLabels {
                operation: operation.to_owned(),
                provider: provider.to_owned(),
                result,
            })
            .inc();
        self.inner
            .eso_provider_calls
            .get_or_create(&EsoProviderLabels {
                call: operation.to_owned(),
                provider: provider.to_owned(),
                status: result,
            })
            .inc();
    }

    /// One write to the API server, e.g. `("Secret", "apply")`, `("ExternalSecret/status",
    /// "patch")`.
    pub fn apiserver_write(&self, kind: &str, verb: &str) {
        self.inner
            .apiserver_writes
            .get_or_create(&WriteLabels {
                kind: kind.to_owned(),
                verb: verb.to_owned(),
            })
            .inc();
    }

    /// A Kubernetes Event dropped from a full queue.
    pub fn kube_event_dropped(&self) {
        self.inner.kube_events_dropped.inc();
    }

    /// Statuses queued behind their Secrets, not yet written.
    pub fn set_status_queue(&self, depth: usize) {
        self.inner
            .status_queue
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Time from the change (the event's own timestamp where it has one) to the Secret written.
    pub fn sync_latency(&self, trigger: Trigger, latency: Duration) {
        self.inner
            .sync_latency
            .get_or_create(&TriggerLabels {
                trigger: trigger.as_str(),
            })
            .observe(latency.as_secs_f64());
    }

    /// One provider change event from `source` (`sqs`, `eventbridge`, `vault`, `webhook`, …).
    pub fn event(&self, source: &str, result: EventResult) {
        self.inner
            .events
            .get_or_create(&EventLabels {
                result: result.as_str(),
                source: source.to_owned(),
            })
            .inc();
    }
}

/// Drop guard from [`Metrics::reconcile_timer`].
#[must_use = "the reconcile is timed until the guard drops"]
pub struct ReconcileTimer {
    metrics: Metrics,
    kind: Kind,
    object: ObjectLabels,
    start: Instant,
}

impl std::fmt::Debug for ReconcileTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconcileTimer")
            .field("kind", &self.kind)
            .field("object", &self.object)
            .finish_non_exhaustive()
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let inner = &self.metrics.inner;
        let controller = ControllerLabels {
            controller: self.kind.as_str(),
        };
        // ESO sets `float64(time.Since(start))`: nanoseconds.
        if !self
            .metrics
            .ignores(self.kind, &self.object.namespace, &self.object.name)
        {
            inner.kinds[self.kind.index()]
                .duration
                .get_or_create(&self.object)
                .set(elapsed.as_nanos() as f64);
        }
        inner
            .reconcile_time
            .get_or_create(&controller)
            .observe(elapsed.as_secs_f64());
        inner.active_workers.get_or_create(&controller).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample names the controller exposes, each family's as OpenMetrics writes its samples
    /// (`_total` for counters; `_bucket`, `_sum`, `_count` for histograms): every recording
    /// method is called once, as a family with no sample is not written.
    fn exported_names() -> std::collections::BTreeSet<String> {
        let metrics = Metrics::new();
        for kind in Kind::ALL {
            metrics.set_ready(kind, "ns", "n", false);
            drop(metrics.reconcile_timer(kind, "ns", "n"));
            metrics.reconcile_result(kind, ReconcileResult::Error);
            metrics.set_workqueue_depth(kind, 1);
            metrics.set_max_concurrent_reconciles(kind, 1);
        }
        metrics.sync_call("ns", "n");
        metrics.sync_error("ns", "n");
        metrics.set_event_stream_connected("server", "kv*", true);
        metrics.set_leader("lease", true);
        metrics.provider_call("aws", "GetSecretValue", true);
        metrics.apiserver_write("Secret", "create");
        metrics.kube_event_dropped();
        metrics.sync_latency(Trigger::Event, Duration::from_millis(5));
        metrics.event("sqs", EventResult::Received);
        let mut names = std::collections::BTreeSet::new();
        for line in lines(&metrics) {
            let mut words = line.split_whitespace();
            if words.next() != Some("#") || words.next() != Some("TYPE") {
                continue;
            }
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            match kind {
                "counter" => {
                    names.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {
                    names.insert(name.to_owned());
                }
            }
        }
        names
    }

    /// `infra/grafana/secret-sync.json` is a dashboard Grafana loads (valid JSON, panels with
    /// queries) that asks only for metrics the controller exports: every identifier followed by
    /// a selector (`{`) or a range (`[`) in its queries is an exported sample name.
    #[test]
    fn the_grafana_dashboard_queries_only_exported_metrics() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../infra/grafana/secret-sync.json");
        let text = std::fs::read_to_string(&path).expect("dashboard");
        let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(panels.len() >= 10);
        let exported = exported_names();
        assert!(exported.contains("workqueue_depth"), "{exported:?}");
        let metric = regex::Regex::new(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[\{\[]").expect("regex");
        let mut queried = 0;
        for panel in panels {
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{}", panel["title"]);
            for target in targets {
                let expr = target["expr"].as_str().expect("expr");
                let names: Vec<&str> = metric
                    .captures_iter(expr)
                    .filter_map(|c| c.get(1))
                    .map(|m| m.as_str())
                    .collect();
                assert!(!names.is_empty(), "no metric in {expr}");
                for name in names {
                    assert!(
                        exported.contains(name),
                        "{name} (in {expr}) is not exported"
                    );
                    queried += 1;
                }
            }
        }
        assert!(queried >= 15);
    }

    fn lines(metrics: &Metrics) -> Vec<String> {
        metrics
            .encode()
            .expect("encode")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn has(metrics: &Metrics, line: &str) -> bool {
        lines(metrics).iter().any(|l| l == line)
    }

    #[test]
    fn sync_calls_are_exposed_as_externalsecret_sync_calls_total() {
        let m = Metrics::new();
        m.sync_call("team-a", "db");
        m.sync_call("team-a", "db");
        let text = m.encode().expect("encode");
        assert!(text.contains("# TYPE externalsecret_sync_calls counter\n"));
        assert!(
            text.contains("externalsecret_sync_calls_total{name=\"db\",namespace=\"team-a\"} 2\n"),
            "{text}"
        );
    }

    #[test]
    fn sync_errors_are_exposed_under_esos_exact_name_without_total() {
        let m = Metrics::new();
        m.sync_error("team-a", "db");
        assert!(has(
            &m,
            "externalsecret_sync_calls_error{name=\"db\",namespace=\"team-a\"} 1"
        ));
        assert!(has(&m, "# TYPE externalsecret_sync_calls_error gauge"));
        let text = m.encode().expect("encode");
        assert!(!text.contains("externalsecret_sync_calls_error_total"));
    }

    #[test]
    fn ready_true_sets_true_to_one_and_false_to_zero_as_eso_does() {
        let m = Metrics::new();
        m.set_ready(Kind::ExternalSecret, "ns", "es", true);
        assert!(has(
            &m,
            "externalsecret_status_condition{condition=\"Ready\",name=\"es\",namespace=\"ns\",status=\"True\"} 1.0"
        ));
        assert!(has(
            &m,
            "externalsecret_status_condition{condition=\"Ready\",name=\"es\",namespace=\"ns\",status=\"False\"} 0.0"
        ));
        m.set_ready(Kind::ExternalSecret, "ns", "es", false);
        assert!(has(
            &m,
            "externalsecret_status_condition{condition=\"Ready\",name=\"es\",namespace=\"ns\",status=\"True\"} 0.0"
        ));
        assert!(has(
            &m,
            "externalsecret_status_condition{condition=\"Ready\",name=\"es\",namespace=\"ns\",status=\"False\"} 1.0"
        ));
    }

    #[test]
    fn a_deleted_condition_replaces_the_ready_series() {
        let m = Metrics::new();
        m.set_ready(Kind::ExternalSecret, "ns", "es", true);
        m.set_condition(
            Kind::ExternalSecret,
            "ns",
            "es",
            ConditionType::Deleted,
            ConditionStatus::True,
        );
        let text = m.encode().expect("encode");
        assert!(!text.contains("condition=\"Ready\""), "{text}");
        assert!(text.contains(
            "externalsecret_status_condition{condition=\"Deleted\",name=\"es\",namespace=\"ns\",status=\"True\"} 1.0"
        ));
    }

    #[test]
    fn unknown_status_appears_only_while_current() {
        let m = Metrics::new();
        m.set_condition(
            Kind::SecretStore,
            "ns",
            "vault",
            ConditionType::Ready,
            ConditionStatus::Unknown,
        );
        assert!(has(
            &m,
            "secretstore_status_condition{condition=\"Ready\",name=\"vault\",namespace=\"ns\",status=\"Unknown\"} 1.0"
        ));
        m.set_ready(Kind::SecretStore, "ns", "vault", true);
        assert!(!m.encode().expect("encode").contains("status=\"Unknown\""));
    }

    #[test]
    fn a_reconcile_still_running_when_its_object_is_deleted_reports_nothing_after() {
        let m = Metrics::new();
        let timer = m.reconcile_timer(Kind::PushSecret, "ns", "gone");
        m.forget(Kind::PushSecret, "ns", "gone");
        // The reconcile ends after the deletion, and fails.
        drop(timer);
        m.set_ready(Kind::PushSecret, "ns", "gone", false);
        let text = m.encode().expect("encode");
        assert!(!text.contains("name=\"gone\""), "{text}");
        // One of the same name created again is reported again.
        m.arrived(Kind::PushSecret, "ns", "gone");
        m.set_ready(Kind::PushSecret, "ns", "gone", true);
        let text = m.encode().expect("encode");
        assert!(text.contains("name=\"gone\""), "{text}");
    }

    #[test]
    fn clearing_a_deleted_external_secret_removes_all_its_series() {
        let m = Metrics::new();
        m.sync_call("ns", "gone");
        m.sync_error("ns", "gone");
        m.set_ready(Kind::ExternalSecret, "ns", "gone", false);
        drop(m.reconcile_timer(Kind::ExternalSecret, "ns", "gone"));
        m.sync_call("ns", "kept");
        m.clear(Kind::ExternalSecret, "ns", "gone");
        let text = m.encode().expect("encode");
        assert!(!text.contains("name=\"gone\""), "{text}");
        assert!(text.contains("name=\"kept\""));
    }

    #[test]
    fn the_reconcile_timer_records_eso_nanoseconds_and_controller_runtime_seconds() {
        let m = Metrics::new();
        {
            let _timer = m.reconcile_timer(Kind::ExternalSecret, "ns", "es");
            assert!(has(
                &m,
                "controller_runtime_active_workers{controller=\"externalsecret\"} 1"
            ));
            std::thread::sleep(Duration::from_millis(2));
        }
        let text = m.encode().expect("encode");
        let duration = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("externalsecret_reconcile_duration{name=\"es\",namespace=\"ns\"} ")
            })
            .expect("duration series");
        let nanos: f64 = duration.parse().expect("a number");
        assert!(nanos >= 2_000_000.0, "{nanos} should be nanoseconds");
        assert!(text.contains(
            "controller_runtime_reconcile_time_seconds_count{controller=\"externalsecret\"} 1\n"
        ));
        assert!(text.contains(
            "controller_runtime_reconcile_time_seconds_bucket{le=\"0.005\",controller=\"externalsecret\"}"
        ));
        assert!(text.contains(
            "controller_runtime_reconcile_time_seconds_bucket{le=\"60.0\",controller=\"externalsecret\"}"
        ));
        assert!(has(
            &m,
            "controller_runtime_active_workers{controller=\"externalsecret\"} 0"
        ));
    }

    #[test]
    fn without_object_series_only_the_per_object_families_stay_empty() {
        let m = Metrics::with_object_series(false);
        m.sync_call("ns", "es");
        m.sync_error("ns", "es");
        m.set_ready(Kind::ExternalSecret, "ns", "es", true);
        drop(m.reconcile_timer(Kind::ExternalSecret, "ns", "es"));
        m.reconcile_result(Kind::ExternalSecret, ReconcileResult::Success);
        let text = m.encode().expect("encode");
        for family in [
            "externalsecret_sync_calls_total{",
            "externalsecret_sync_calls_error{",
            "externalsecret_status_condition{",
            "externalsecret_reconcile_duration{",
        ] {
            assert!(!text.contains(family), "{family} in {text}");
        }
        for line in [
            "controller_runtime_reconcile_total{controller=\"externalsecret\",result=\"success\"} 1",
            "controller_runtime_reconcile_time_seconds_count{controller=\"externalsecret\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in {text}");
        }
    }

    #[test]
    fn reconcile_results_feed_controller_runtime_counters() {
        let m = Metrics::new();
        m.reconcile_result(Kind::ExternalSecret, ReconcileResult::Success);
        m.reconcile_result(Kind::ExternalSecret, ReconcileResult::Error);
        m.reconcile_result(Kind::ExternalSecret, ReconcileResult::RequeueAfter);
        m.set_max_concurrent_reconciles(Kind::ExternalSecret, 4);
        for line in [
            "controller_runtime_reconcile_total{controller=\"externalsecret\",result=\"success\"} 1",
            "controller_runtime_reconcile_total{controller=\"externalsecret\",result=\"error\"} 1",
            "controller_runtime_reconcile_total{controller=\"externalsecret\",result=\"requeue_after\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"externalsecret\"} 1",
            "controller_runtime_max_concurrent_reconciles{controller=\"externalsecret\"} 4",
        ] {
            assert!(has(&m, line), "missing {line}");
        }
    }

    #[test]
    fn provider_calls_feed_our_counter_and_esos_count() {
        let m = Metrics::new();
        m.provider_call("AWS/SecretsManager", "GetSecretValue", true);
        m.provider_call("HashiCorp/Vault", "ReadSecretData", false);
        for line in [
            "secret_sync_provider_calls_total{operation=\"GetSecretValue\",provider=\"AWS/SecretsManager\",result=\"success\"} 1",
            "secret_sync_provider_calls_total{operation=\"ReadSecretData\",provider=\"HashiCorp/Vault\",result=\"error\"} 1",
            "externalsecret_provider_api_calls_count{call=\"GetSecretValue\",provider=\"AWS/SecretsManager\",status=\"success\"} 1",
        ] {
            assert!(has(&m, line), "missing {line}");
        }
    }

    #[test]
    fn our_own_counters_and_histogram_use_the_secret_sync_prefix() {
        let m = Metrics::new();
        m.apiserver_write("Secret", "apply");
        m.event("eventbridge", EventResult::Received);
        m.event("eventbridge", EventResult::Malformed);
        m.sync_latency(Trigger::Event, Duration::from_millis(30));
        m.set_leader("secret-sync-controller", true);
        m.set_status_queue(3);
        for line in [
            "secret_sync_status_queue_depth 3",
            "secret_sync_apiserver_writes_total{kind=\"Secret\",verb=\"apply\"} 1",
            "secret_sync_events_total{result=\"received\",source=\"eventbridge\"} 1",
            "secret_sync_events_total{result=\"malformed\",source=\"eventbridge\"} 1",
            "secret_sync_sync_latency_seconds_count{trigger=\"event\"} 1",
            "secret_sync_sync_latency_seconds_bucket{le=\"0.05\",trigger=\"event\"} 1",
            "leader_election_master_status{name=\"secret-sync-controller\"} 1",
        ] {
            assert!(has(&m, line), "missing {line}");
        }
    }

    #[test]
    fn every_kind_reports_under_esos_condition_and_duration_names() {
        let m = Metrics::new();
        for kind in Kind::ALL {
            m.set_ready(kind, "", "obj", true);
            drop(m.reconcile_timer(kind, "", "obj"));
        }
        let text = m.encode().expect("encode");
        for kind in Kind::ALL {
            let k = kind.as_str();
            assert!(text.contains(&format!("# TYPE {k}_status_condition gauge\n")));
            assert!(text.contains(&format!("# TYPE {k}_reconcile_duration gauge\n")));
            assert!(text.contains(&format!(
                "{k}_status_condition{{condition=\"Ready\",name=\"obj\",namespace=\"\",status=\"True\"}} 1.0\n"
            )));
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
