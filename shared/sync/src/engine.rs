//! The engine: one ExternalSecret, from trigger to written Secret and status.
//!
//! `Engine::sync` reads top to bottom: check the spec, decide whether a sync is due, resolve
//! stores, fetch (deduplicated), render, template, apply, then record status and Events. Every
//! failure is recorded on the object (Ready=False with a reason a person can act on, a Warning
//! Event) and returned classified; the entry point decides when to retry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::events::{EventType, Job, Publisher, Queue};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::{Resource, ResourceExt};
use secret_sync_crd::well_known::{ANNOTATION_DATA_HASH, event_reason, message, reason};
use secret_sync_crd::{
    CreationPolicy, DeletionPolicy, ExternalSecret, ExternalSecretStatus, StoreKind,
};
use secret_sync_providers::{BuildOptions, Find, ProviderError, Referents, RemoteRef, SecretBytes};

use crate::apply::{self, Applied, ApplyError, Desired};
use crate::fetch::{FetchResult, Fetcher, FindKey};
use crate::generate::{self, Generation};
use crate::refresh::{self, Due};
use crate::render::{self, Fetched, Need, RenderError, StoreRefKey};
use crate::resolve::StoreId;
use crate::rollout;
use crate::shards::ShardGuard;
use crate::status::{self, Ready};
use crate::statuses::Statuses;
use crate::stores::{self, Clients, Resolution, ResolvedStore, StoreError, StoreSettings};
use crate::template::{self, TemplateError};
use crate::view::ClusterView;

/// Where a successful sync's status goes.
enum StatusWrite {
    /// Written before the sync completes.
    Now,
    /// Queued behind the Secret writes, holding the sync's shard admission until written.
    Later(Option<ShardGuard>),
}

/// What caused a sync.
#[derive(Clone, Copy, Debug)]
pub enum Trigger {
    /// A watch event or a timer: sync if the refresh policy says so or the Secret drifted.
    Reconcile,
    /// A provider change event for a key this ExternalSecret reads, observed at `at`: sync now,
    /// with values fetched after `at`.
    ProviderChanged { at: Instant },
}

/// Errors of a sync, classified.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("invalid ExternalSecret: {0}")]
    InvalidSpec(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("reading the target Secret failed: {0}")]
    ReadSecret(#[source] kube::Error),
    #[error("writing the status failed: {0}")]
    Status(#[source] kube::Error),
    #[error("the sync did not finish within {0:?} and was abandoned")]
    TimedOut(Duration),
}

impl SyncError {
    /// Whether retrying without a change to the ExternalSecret can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidSpec(_) => false,
            Self::Template(e) => e.is_retryable(),
            Self::Store(e) => e.is_retryable(),
            Self::Render(e) => e.is_retryable(),
            Self::Apply(e) => e.is_retryable(),
            Self::ReadSecret(_) | Self::Status(_) | Self::TimedOut(_) => true,
        }
    }

    /// A key the provider does not have (yet): only a change fixes it, but the change may be at
    /// the provider, where no event may announce it (a PushSecret writing it a moment later, a
    /// provider without change events). A reconciler retries it with its usual back-off, as ESO
    /// does; change sources do not (a deleted secret's event must not be redelivered for ever).
    pub fn is_missing_at_provider(&self) -> bool {
        matches!(
            self,
            Self::Render(RenderError::Provider { failure, .. }) if failure.missing
        )
    }

    /// Nothing failed yet: a store is still being validated. The controller retries shortly and
    /// the store's watch wakes the ExternalSecret; no failure is recorded on it.
    pub fn is_pending(&self) -> bool {
        matches!(self, Self::Store(StoreError::NotValidatedYet { .. }))
    }

    /// The store this sync waits for, as an ExternalSecret in `namespace` names it: one that
    /// exists but has not been validated yet or is not Ready. It may become Ready any moment
    /// (GitOps applies in any order, a credential Secret arrives late); an event-driven sync
    /// waits for it a while rather than dropping the change.
    pub fn awaited_store(&self, namespace: &str) -> Option<StoreId> {
        let (Self::Store(StoreError::NotReady { kind, name })
        | Self::Store(StoreError::NotValidatedYet { kind, name })) = self
        else {
            return None;
        };
        let cluster = *kind == StoreKind::ClusterSecretStore.as_str();
        Some(StoreId {
            kind: if cluster {
                StoreKind::ClusterSecretStore
            } else {
                StoreKind::SecretStore
            },
            name: name.clone(),
            namespace: if cluster {
                String::new()
            } else {
                namespace.to_owned()
            },
        })
    }

    /// A conflict: retry at once, without recording a failure (ESO requeues silently).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Apply(ApplyError::Conflict))
            || matches!(self, Self::Status(kube::Error::Api(s)) if s.code == 409)
    }

    /// The `reason` label of error metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) => "invalid_spec",
            Self::Store(_) => "store",
            Self::Render(_) => "provider",
            Self::Template(_) => "template",
            Self::Apply(_) => "apply",
            Self::ReadSecret(_) => "read_secret",
            Self::Status(_) => "status",
            Self::TimedOut(_) => "timeout",
        }
    }

    /// The Ready condition's message: ESO's wording first, then what went wrong.
    fn condition_message(&self) -> String {
        match self {
            Self::Store(e) => format!("{}: {e}", message::ERR_GET_SECRET_DATA),
            Self::Render(e) => format!("{}: {e}", message::ERR_GET_SECRET_DATA),
            Self::Apply(ApplyError::Immutable) => message::ERR_SECRET_IMMUTABLE.to_owned(),
            Self::Apply(ApplyError::OwnedByAnother) => message::ERR_SECRET_IS_OWNED.to_owned(),
            Self::Apply(e) => format!("{}: {e}", message::ERR_UPDATE_SECRET),
            other => other.to_string(),
        }
    }
}

/// The result of a sync the engine completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Why it synced; `None` when nothing was due.
    pub due: Option<Due>,
    /// What happened to the Secret.
    pub applied: Option<Applied>,
    /// When to look again (`None`: only on change).
    pub requeue_after: Option<Duration>,
}

/// Counters the engine reports to whoever exposes them.
pub trait Observer: Send + Sync {
    fn provider_call(&self, _provider: &str, _operation: &'static str, _ok: bool) {}
    fn secret_write(&self, _verb: &'static str) {}
    fn status_write(&self) {}
    /// A Kubernetes Event was dropped because too many were waiting to be written.
    fn event_dropped(&self) {}
    /// Statuses queued behind their Secrets, not yet written ([`crate::statuses`]).
    fn status_queue(&self, _depth: usize) {}
}

/// An observer that records nothing.
pub struct NoObserver;
impl Observer for NoObserver {}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub stores: StoreSettings,
    /// The longest a fetched value may serve later syncs. Each sync also has its own reference
    /// point (see `Engine::fresh_after`): this only bounds it.
    pub value_reuse: Duration,
    /// How long a provider client (and the credentials it read) is kept.
    pub client_ttl: Duration,
    /// The name Events are reported under.
    pub reporter: String,
    /// How provider clients are built.
    pub providers: BuildOptions,
    /// How long one sync may take before it is abandoned (and retried by its caller).
    pub sync_timeout: Duration,
    /// ESO's `--enable-generator-state`: keep what generators made as GeneratorStates, to clean
    /// up once replaced.
    pub generator_state: bool,
    /// ESO's `--generator-gc-grace-period`: how long replaced generated values stay before their
    /// cleanup.
    pub generator_gc_grace: Duration,
    /// Roll the workloads using a target Secret whose data changed, for ExternalSecrets that do
    /// not say (see [`rollout`]).
    pub rollout_on_change: bool,
    /// ESO's `--unsafe-allow-generic-targets`: ExternalSecrets may write other kinds than
    /// Secrets (`target.manifest`, see [`manifest`](crate::manifest)).
    pub generic_targets: bool,
    /// Whether a sync that wrote its target says so in an Event (`Created`, `Updated`,
    /// `Deleted`), as ESO does. Off, a fan-out of one key to many ExternalSecrets writes a third
    /// fewer objects; failures are always Events.
    pub success_events: bool,
    /// Whether a sync for a provider change ([`Engine::sync_for_change`]) leaves its status to
    /// the status queue (see [`statuses`](crate::statuses)) instead of writing it before it
    /// completes. The in-cluster controller does; a Lambda, frozen after it answers, must not.
    pub deferred_statuses: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            stores: StoreSettings {
                controller_class: "default".into(),
                flood_gate: true,
            },
            value_reuse: Duration::from_secs(300),
            client_ttl: Duration::from_secs(300),
            reporter: "secret-sync".into(),
            providers: BuildOptions::default(),
            sync_timeout: Duration::from_secs(120),
            generator_state: true,
            generator_gc_grace: Duration::from_secs(120),
            rollout_on_change: false,
            generic_targets: false,
            success_events: true,
            deferred_statuses: false,
        }
    }
}

/// The sync engine. Cheap to share (`Arc`); every entry point uses one per process.
pub struct Engine {
    client: kube::Client,
    view: Arc<dyn ClusterView>,
    clients: Clients,
    fetcher: Fetcher,
    events: Queue,
    observer: Arc<dyn Observer>,
    settings: Settings,
    recent: Arc<Recent>,
    statuses: Statuses,
}

/// Read-your-writes: what this engine wrote last, for the moments before the watch caches show it.
/// A reconcile woken by our own Secret write can otherwise see the ExternalSecret without the
/// status just written (and sync it again), or not see the Secret just created.
#[derive(Default)]
struct Recent {
    /// ExternalSecret UID → the status last written, and when.
    statuses: Mutex<HashMap<String, (ExternalSecretStatus, Instant)>>,
    /// (namespace, name) → the Secret last written, and when.
    secrets: Mutex<HashMap<(String, String), WrittenSecret>>,
    /// How many statuses the last sweep kept.
    statuses_after_sweep: AtomicUsize,
}

type WrittenSecret = (Arc<Secret>, Instant);

/// How long a written Secret may stand in for a cache that does not show it yet. A sync that
/// relies on it looks again after this long, so a Secret deleted meanwhile is still restored.
const RECENT_SECRET: Duration = Duration::from_secs(3);

/// How long a written status is remembered for a cache that does not show it yet: far longer
/// than a watch takes to deliver it, so only a status the cache already shows is forgotten.
const RECENT_STATUS: Duration = Duration::from_secs(60);

fn rv(meta: &kube::api::ObjectMeta) -> Option<u64> {
    meta.resource_version.as_deref()?.parse().ok()
}

impl Recent {
    /// The ExternalSecret as this engine last left it: its cached copy, with our last status if
    /// the cache has not caught up with it.
    fn external_secret<'a>(&self, es: &'a ExternalSecret) -> std::borrow::Cow<'a, ExternalSecret> {
        let uid = es.metadata.uid.clone().unwrap_or_default();
        let mut statuses = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        let Some((ours, _)) = statuses.get(&uid) else {
            return std::borrow::Cow::Borrowed(es);
        };
        let cached_time = es
            .status
            .as_ref()
            .and_then(|s| s.refresh_time.as_ref())
            .map(|t| t.0);
        let our_time = ours.refresh_time.as_ref().map(|t| t.0);
        if es.status.as_ref() == Some(ours) || cached_time >= our_time {
            // The cache has caught up (or moved past us).
            statuses.remove(&uid);
            return std::borrow::Cow::Borrowed(es);
        }
        let mut patched = es.clone();
        patched.status = Some(ours.clone());
        std::borrow::Cow::Owned(patched)
    }

    /// Stops standing in for the status of the ExternalSecret `uid`: it was never written.
    fn forget_status(&self, uid: &str) {
        let mut statuses = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        statuses.remove(uid);
    }

    fn wrote_status(&self, es: &ExternalSecret, status: &ExternalSecretStatus) {
        let Some(uid) = es.metadata.uid.clone() else {
            return;
        };
        let mut statuses = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        // A status the cache has long shown is dropped; checking only when the map has doubled
        // since the last sweep keeps this linear overall.
        if statuses.len() >= 2 * self.statuses_after_sweep.load(Ordering::Relaxed).max(512) {
            statuses.retain(|_, (_, at)| at.elapsed() < RECENT_STATUS);
            self.statuses_after_sweep
                .store(statuses.len(), Ordering::Relaxed);
        }
        statuses.insert(uid, (status::as_stored(status), Instant::now()));
    }

    /// The Secret to reason about: the cached one, or the one we wrote if the cache is behind.
    /// The flag tells whether our copy was used (the caller then looks again soon).
    fn secret(
        &self,
        namespace: &str,
        name: &str,
        cached: Option<Arc<Secret>>,
    ) -> (Option<Arc<Secret>>, bool) {
        let key = (namespace.to_owned(), name.to_owned());
        let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        let Some((ours, at)) = secrets.get(&key).cloned() else {
            return (cached, false);
        };
        let cache_behind = match &cached {
            None => true,
            Some(c) => rv(&c.metadata) < rv(&ours.metadata),
        };
        if at.elapsed() < RECENT_SECRET && cache_behind {
            return (Some(ours), true);
        }
        secrets.remove(&key);
        (cached, false)
    }

    fn wrote_secret(&self, mut secret: Secret) {
        crate::apply::compact_managed_fields(&mut secret);
        let key = (
            secret.metadata.namespace.clone().unwrap_or_default(),
            secret.metadata.name.clone().unwrap_or_default(),
        );
        let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        secrets.retain(|_, (_, at)| at.elapsed() < RECENT_SECRET);
        secrets.insert(key, (Arc::new(secret), Instant::now()));
    }
}

/// The Secret a sync writes: its namespace and name, and what the cache holds of it.
#[derive(Clone, Copy)]
struct Target<'a> {
    namespace: &'a str,
    name: &'a str,
    existing: Option<&'a Secret>,
}

/// A generation whose values need cleaning up once unused: its `dataFrom` index, the generator
/// object and its state.
struct MadeState {
    index: usize,
    resource: serde_json::Value,
    state: serde_json::Value,
}

/// Values fetched for one sync, as the render stage reads them.
#[derive(Default)]
struct Pass {
    values: HashMap<(StoreRefKey, RemoteRef), FetchResult<SecretBytes>>,
    finds: HashMap<(StoreRefKey, FindKey), FetchResult<BTreeMap<String, SecretBytes>>>,
    /// What each `dataFrom[]` generator made, by index.
    generated: HashMap<usize, Result<BTreeMap<String, SecretBytes>, ProviderError>>,
    /// When the earliest generated value expires.
    expires_at: Option<jiff::Timestamp>,
    /// The values that are keyed maps (their provider says).
    keyed: HashSet<(StoreRefKey, RemoteRef)>,
}

/// A generator kind as a metric label: the kinds secret-sync serves, else `other`.
fn kind_name(kind: &str) -> &'static str {
    secret_sync_generators::kinds()
        .find(|k| *k == kind)
        .unwrap_or("other")
}

static MISSING_FETCH: std::sync::LazyLock<ProviderError> =
    std::sync::LazyLock::new(|| ProviderError::Config("internal: value was not fetched".into()));

impl Fetched for Pass {
    fn value(
        &self,
        store: &StoreRefKey,
        remote: &RemoteRef,
    ) -> Result<&SecretBytes, &ProviderError> {
        match self.values.get(&(store.clone(), remote.clone())) {
            Some(Ok(v)) => Ok(v.as_ref()),
            Some(Err(e)) => Err(e.as_ref()),
            None => Err(&MISSING_FETCH),
        }
    }

    fn found(
        &self,
        store: &StoreRefKey,
        find: &Find,
    ) -> Result<&BTreeMap<String, SecretBytes>, &ProviderError> {
        match self.finds.get(&(store.clone(), FindKey::from(find))) {
            Some(Ok(v)) => Ok(v.as_ref()),
            Some(Err(e)) => Err(e.as_ref()),
            None => Err(&MISSING_FETCH),
        }
    }

    fn generated(&self, index: usize) -> Result<&BTreeMap<String, SecretBytes>, &ProviderError> {
        match self.generated.get(&index) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e),
            None => Err(&MISSING_FETCH),
        }
    }
    fn keyed(&self, store: &StoreRefKey, remote: &RemoteRef) -> bool {
        self.keyed.contains(&(store.clone(), remote.clone()))
    }
}

/// Checks ESO's admission rules, which the controller re-applies because a webhook may be absent.
pub fn validate_spec(es: &ExternalSecret) -> Result<Duration, SyncError> {
    let spec = &es.spec;
    let interval = spec.refresh_interval().map_err(|e| {
        SyncError::InvalidSpec(format!(
            "spec.refreshInterval {:?}: {e}",
            spec.refresh_interval
        ))
    })?;
    if spec.data.is_empty() && spec.data_from.is_empty() && spec.target.template.is_none() {
        return Err(SyncError::InvalidSpec(
            "either data or dataFrom should be specified".into(),
        ));
    }
    let (creation, deletion) = (spec.target.creation_policy, spec.target.deletion_policy);
    if deletion == DeletionPolicy::Delete
        && matches!(
            creation,
            CreationPolicy::Merge | CreationPolicy::None | CreationPolicy::CreateOrMerge
        )
    {
        return Err(SyncError::InvalidSpec(format!(
            "deletionPolicy=Delete must not be used with creationPolicy={creation:?}"
        )));
    }
    if deletion == DeletionPolicy::Merge && creation == CreationPolicy::None {
        return Err(SyncError::InvalidSpec(
            "deletionPolicy=Merge must not be used with creationPolicy=None".into(),
        ));
    }
    if let Some(t) = spec
        .target
        .template
        .as_ref()
        .and_then(|t| t.type_.as_deref())
        && (t == "kubernetes.io/service-account-token" || t == "bootstrap.kubernetes.io/token")
    {
        return Err(SyncError::InvalidSpec(format!(
            "template type {t:?} is not allowed"
        )));
    }
    Ok(interval)
}

impl Engine {
    pub fn new(
        client: kube::Client,
        view: Arc<dyn ClusterView>,
        referents: Arc<dyn Referents>,
        observer: Arc<dyn Observer>,
        settings: Settings,
    ) -> Self {
        let recent = Arc::new(Recent::default());
        let forget = {
            let recent = recent.clone();
            Box::new(move |uid: &str| recent.forget_status(uid))
        };
        Self {
            statuses: Statuses::new(client.clone(), observer.clone(), forget),
            events: Queue::new(Publisher::new(
                client.clone(),
                settings.reporter.clone(),
                std::env::var("POD_NAME").ok(),
            )),
            clients: Clients::new(referents, settings.providers.clone(), settings.client_ttl),
            fetcher: Fetcher::new(settings.value_reuse, observer.clone()),
            client,
            view,
            observer,
            settings,
            recent,
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub fn view(&self) -> &Arc<dyn ClusterView> {
        &self.view
    }

    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Syncs one ExternalSecret.
    pub async fn sync(&self, es: &ExternalSecret, trigger: Trigger) -> Result<Outcome, SyncError> {
        self.sync_bounded(es, trigger, StatusWrite::Now).await
    }

    /// Syncs one ExternalSecret for a provider change observed at `at`. With
    /// [`Settings::deferred_statuses`], a success's status is queued behind the Secret writes
    /// instead of written before this returns; `shard`, the sync's admission, is held until it
    /// is written.
    pub async fn sync_for_change(
        &self,
        es: &ExternalSecret,
        at: Instant,
        shard: Option<ShardGuard>,
    ) -> Result<Outcome, SyncError> {
        let write = match self.settings.deferred_statuses {
            true => StatusWrite::Later(shard),
            false => StatusWrite::Now,
        };
        let _syncing = self.statuses.syncing();
        self.sync_bounded(es, Trigger::ProviderChanged { at }, write)
            .await
    }

    /// Waits up to `limit` for the queued statuses to be written; whether they were.
    pub async fn flush_statuses(&self, limit: Duration) -> bool {
        self.statuses.flush(limit).await
    }

    /// Queued statuses not written yet.
    pub fn statuses_outstanding(&self) -> usize {
        self.statuses.outstanding()
    }

    async fn sync_bounded(
        &self,
        es: &ExternalSecret,
        trigger: Trigger,
        write: StatusWrite,
    ) -> Result<Outcome, SyncError> {
        // A sync that never finishes would hold its ExternalSecret (a controller does not start
        // another reconcile of an object while one runs): give up, and let the caller retry.
        let sync = self.sync_once(es, trigger, write);
        match tokio::time::timeout(self.settings.sync_timeout, sync).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    namespace = es.namespace().as_deref().unwrap_or(""),
                    name = %es.name_any(),
                    after = ?self.settings.sync_timeout,
                    "sync abandoned: it did not finish in time"
                );
                Err(SyncError::TimedOut(self.settings.sync_timeout))
            }
        }
    }

    async fn sync_once(
        &self,
        es: &ExternalSecret,
        trigger: Trigger,
        write: StatusWrite,
    ) -> Result<Outcome, SyncError> {
        let es = self.recent.external_secret(es);
        let es = es.as_ref();
        let now = Timestamp::now();
        let interval = match validate_spec(es) {
            Ok(interval) => interval,
            Err(e) => return Err(self.fail(es, e, now).await),
        };
        let namespace = es.namespace().unwrap_or_default();
        let target = es.spec.target_name(es).to_owned();
        let generic = es.spec.target.manifest.is_some();
        if generic && !self.settings.generic_targets {
            let e = SyncError::InvalidSpec(crate::manifest::DISABLED.into());
            return Err(self.fail(es, e, now).await);
        }
        // An Owner target is created or adopted by a server-side apply either way, so only a
        // managed Secret matters (the cache answers); Merge-like targets may be unlabelled.
        // A generic target is no Secret: none is looked up, and it is put right at refreshes.
        let managed_only = es.spec.target.creation_policy == CreationPolicy::Owner;
        let cached = match generic {
            true => None,
            false => match self.view.secret(&namespace, &target, managed_only).await {
                Ok(s) => s,
                Err(e) => return Err(SyncError::ReadSecret(e)),
            },
        };
        let (existing, provisional) = match generic {
            true => (None, false),
            false => self.recent.secret(&namespace, &target, cached),
        };
        let due = match trigger {
            Trigger::ProviderChanged { .. } => Some(Due::ProviderChanged),
            Trigger::Reconcile => refresh::should_refresh(es, interval, now).or_else(|| {
                (!generic && !refresh::secret_is_valid(es, existing.as_deref()))
                    .then_some(Due::SecretInvalid)
            }),
        };
        // Relying on our own write instead of the cache: look again once the cache has it.
        let soon = |after: Option<Duration>| match (provisional, after) {
            (true, Some(after)) => Some(after.min(RECENT_SECRET)),
            (true, None) => Some(RECENT_SECRET),
            (false, after) => after,
        };
        let Some(due) = due else {
            return Ok(Outcome {
                due: None,
                applied: None,
                requeue_after: soon(refresh::requeue_after(es, interval, now)),
            });
        };
        let fresh_after = self.fresh_after(es, trigger, due, interval, now);
        let mut made = Vec::new();
        let result = self
            .run(
                es,
                Target {
                    namespace: &namespace,
                    name: &target,
                    existing: existing.as_deref(),
                },
                fresh_after,
                now,
                &mut made,
            )
            .await;
        self.settle_states(es, &namespace, made, matches!(result, Ok(Some(_))))
            .await;
        match result {
            Ok(Some((applied, ready, expires_at))) => {
                let synced_at = ready.status.then_some(now);
                let status =
                    status::next_with_expiry(es, &ready, synced_at, Some(&target), expires_at, now);
                let mut after = es.clone();
                after.status = Some(status.clone());
                let queued = match write {
                    StatusWrite::Later(shard) => self.statuses.defer(es, &status, shard),
                    StatusWrite::Now => None,
                };
                let recorded = match queued {
                    Some(queued) => queued,
                    None => self
                        .statuses
                        .write(es, &status)
                        .await
                        .map_err(SyncError::Status)?,
                };
                if recorded {
                    self.recent.wrote_status(es, &status);
                }
                Ok(Outcome {
                    due: Some(due),
                    applied: Some(applied),
                    requeue_after: soon(refresh::requeue_after(&after, interval, now)),
                })
            }
            // Unmanaged store: ESO skips silently.
            Ok(None) => Ok(Outcome {
                due: None,
                applied: None,
                requeue_after: None,
            }),
            Err(e) if e.is_conflict() || e.is_pending() => Err(e),
            Err(e) => Err(self.fail(es, e, now).await),
        }
    }

    /// How fresh the provider values of this sync must be: a value fetched before the returned
    /// instant is not used. Each reason for a sync has its own reference point, and a value is
    /// never older than the reuse window:
    /// - a provider event: fetched after the event;
    /// - a change to the ExternalSecret (ESO's force sync): fetched now;
    /// - a periodic refresh: fetched after it fell due (on the grid of `refresh::due_at`, which
    ///   lets ExternalSecrets of one key share a read), so a change is seen within one
    ///   refreshInterval, as with ESO;
    /// - a first sync: fetched after the ExternalSecret was created;
    /// - a deleted or edited Secret: fetched now (it comes back with the provider's current values,
    ///   whatever the refresh policy, as in ESO);
    /// - a retry after a failed sync: fetched now.
    ///
    /// Kubernetes times have second precision, so a reference point may be up to a second early.
    fn fresh_after(
        &self,
        es: &ExternalSecret,
        trigger: Trigger,
        due: Due,
        interval: Duration,
        now: Timestamp,
    ) -> Instant {
        let clock = Instant::now();
        let window = clock
            .checked_sub(self.settings.value_reuse)
            .unwrap_or(clock);
        // The instant a Kubernetes timestamp (plus `offset`) corresponds to on the monotonic clock.
        let instant_of = |at: Timestamp, offset: Duration| -> Option<Instant> {
            let age = Duration::try_from(now.duration_since(at)).unwrap_or(Duration::ZERO);
            let at = clock.checked_sub(age)?;
            Some(at + offset)
        };
        let last_sync = es
            .status
            .as_ref()
            .and_then(|s| s.refresh_time.as_ref())
            .map(|t| t.0);
        let created = es.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let reference = match (trigger, due) {
            (Trigger::ProviderChanged { at }, _) => return at,
            (
                _,
                Due::SpecChanged
                | Due::ProviderChanged
                | Due::SecretInvalid
                | Due::Failed
                | Due::Expiring,
            ) => {
                return clock;
            }
            (_, Due::Interval) => {
                last_sync.and_then(|t| instant_of(refresh::due_at(t, interval), Duration::ZERO))
            }
            (_, Due::FirstSync) => created.and_then(|t| instant_of(t, Duration::ZERO)),
        };
        match reference {
            Some(reference) => reference.max(window).min(clock),
            None => window,
        }
    }

    /// Resolve, fetch (and generate), render, apply; with when the earliest generated value
    /// expires. `None` when a store or generator belongs to another controller.
    async fn run(
        &self,
        es: &ExternalSecret,
        to: Target<'_>,
        fresh_after: Instant,
        now: Timestamp,
        made: &mut Vec<MadeState>,
    ) -> Result<Option<(Applied, Ready, Option<Timestamp>)>, SyncError> {
        let Target {
            namespace,
            name: target,
            existing,
        } = to;
        let needs = render::needs(&es.spec)?;

        // Resolve each store once.
        let mut resolved: HashMap<StoreRefKey, ResolvedStore> = HashMap::new();
        for need in &needs {
            let key = match need {
                Need::Value { store, .. } | Need::Find { store, .. } => store,
                Need::Generate { .. } => continue,
            };
            if resolved.contains_key(key) {
                continue;
            }
            match stores::resolve(
                self.view.as_ref(),
                &self.clients,
                &self.settings.stores,
                key,
                namespace,
            )
            .await?
            {
                Resolution::Ready(store) => {
                    resolved.insert(key.clone(), store);
                }
                Resolution::Unmanaged => return Ok(None),
            }
        }

        // Fetch each unique value once, concurrently.
        let mut pass = Pass::default();
        let mut value_jobs = Vec::new();
        let mut find_jobs = Vec::new();
        let mut generate_jobs = Vec::new();
        for need in &needs {
            match need {
                Need::Value { store, remote } => {
                    if pass.values.contains_key(&(store.clone(), remote.clone())) {
                        continue;
                    }
                    pass.values.insert(
                        (store.clone(), remote.clone()),
                        Err(Arc::new(ProviderError::Config(String::new()))),
                    );
                    value_jobs.push((store.clone(), remote.clone()));
                }
                Need::Find { store, find } => {
                    let key = (store.clone(), FindKey::from(find));
                    if pass.finds.contains_key(&key) {
                        continue;
                    }
                    pass.finds
                        .insert(key, Err(Arc::new(ProviderError::Config(String::new()))));
                    find_jobs.push((store.clone(), find.clone()));
                }
                Need::Generate { index, generator } => generate_jobs.push((*index, generator)),
            }
        }
        let values = futures::future::join_all(value_jobs.iter().map(|(store, remote)| async {
            let r = self
                .fetcher
                .value(&resolved[store], remote, fresh_after)
                .await;
            (store.clone(), remote.clone(), r)
        }));
        let finds = futures::future::join_all(find_jobs.iter().map(|(store, find)| async {
            let r = self.fetcher.find(&resolved[store], find, fresh_after).await;
            (store.clone(), find.clone(), r)
        }));
        let generated =
            futures::future::join_all(generate_jobs.iter().map(|(index, generator)| async move {
                let result = generate::generate(
                    &self.client,
                    &self.clients,
                    &self.settings.stores.controller_class,
                    namespace,
                    generator,
                )
                .await;
                self.observer.provider_call(
                    "generator",
                    kind_name(&generator.kind),
                    result.is_ok(),
                );
                (*index, result)
            }));
        let (values, finds, generated) = futures::join!(values, finds, generated);
        for (index, result) in generated {
            match result {
                Ok(Generation::Made {
                    mut generated,
                    resource,
                }) => {
                    if let Some(state) = generated.state.take() {
                        made.push(MadeState {
                            index,
                            resource,
                            state,
                        });
                    }
                    pass.expires_at = generate::earliest(pass.expires_at, generated.expires_at);
                    pass.generated.insert(index, Ok(generated.data));
                }
                Ok(Generation::OtherController) => return Ok(None),
                Err(e) => {
                    pass.generated.insert(index, Err(e));
                }
            }
        }
        for (store, remote, result) in values {
            self.after_fetch(&resolved[&store], result.as_ref().err());
            if resolved[&store].provider.keyed(&remote) {
                pass.keyed.insert((store.clone(), remote.clone()));
            }
            pass.values.insert((store, remote), result);
        }
        for (store, find, result) in finds {
            self.after_fetch(&resolved[&store], result.as_ref().err());
            pass.finds.insert((store, FindKey::from(&find)), result);
        }

        let rendered = render::render(&es.spec, &pass)?;
        let expires_at = pass.expires_at;
        for missing in &rendered.missing {
            self.event(
                es,
                EventType::Normal,
                event_reason::MISSING_PROVIDER_SECRET,
                missing.to_string(),
            )
            .await;
        }
        let data = rendered.data;

        if let Some(manifest) = &es.spec.target.manifest {
            return self
                .write_generic(es, manifest, namespace, &needs, data)
                .await
                .map(|(applied, ready)| Some((applied, ready, expires_at)));
        }

        if data.is_empty() {
            match es.spec.target.deletion_policy {
                DeletionPolicy::Delete => {
                    let deleted = apply::delete(&self.client, es, target, existing).await?;
                    if deleted {
                        self.observer.secret_write("delete");
                        self.event(
                            es,
                            EventType::Normal,
                            event_reason::DELETED,
                            message::SECRET_DELETED.into(),
                        )
                        .await;
                    }
                    let ready = Ready {
                        status: true,
                        reason: reason::SECRET_DELETED,
                        message: message::SECRET_DELETED.into(),
                    };
                    return Ok(Some((Applied::Unchanged, ready, expires_at)));
                }
                DeletionPolicy::Retain if !needs.is_empty() => {
                    let ready = Ready {
                        status: true,
                        reason: reason::SECRET_SYNCED,
                        message: message::SECRET_RETAINED.into(),
                    };
                    return Ok(Some((Applied::Unchanged, ready, expires_at)));
                }
                _ => {}
            }
        }

        let (labels, annotations, type_, data) = match &es.spec.target.template {
            Some(t) => {
                let sources = template::Sources::load(&self.client, namespace, t).await?;
                let out = template::apply(t, data, &sources)?;
                (out.labels, out.annotations, out.type_, out.data)
            }
            None => {
                let (labels, annotations) = Desired::metadata_of(es);
                (labels, annotations, None, data)
            }
        };
        let source_time = now;
        let desired = Desired {
            data,
            labels,
            annotations,
            type_,
            source_time,
        };

        if es.spec.target.creation_policy == CreationPolicy::Owner {
            let owner_hash = crate::hash::owner_label(namespace, &es.name_any());
            let candidates = self
                .view
                .secrets_created_by(namespace, &owner_hash)
                .await
                .map_err(SyncError::ReadSecret)?;
            let deleted = apply::delete_orphans(&self.client, es, target, &candidates).await?;
            for _ in &deleted {
                self.observer.secret_write("delete");
                self.event(
                    es,
                    EventType::Normal,
                    event_reason::DELETED,
                    message::EVENT_SECRET_ORPHAN_DELETED.into(),
                )
                .await;
            }
        }

        let (applied, written) = apply::write(&self.client, es, target, existing, desired).await?;
        if applied == Applied::Updated
            && rollout::wanted(
                es.metadata.annotations.as_ref(),
                self.settings.rollout_on_change,
            )
        {
            self.roll(es, namespace, target, existing, written.as_ref())
                .await;
        }
        if let Some(secret) = written {
            self.recent.wrote_secret(secret);
        }
        let ready = match applied {
            Applied::Created => {
                self.observer.secret_write("create");
                self.event(
                    es,
                    EventType::Normal,
                    event_reason::CREATED,
                    message::EVENT_SECRET_CREATED.into(),
                )
                .await;
                Ready {
                    status: true,
                    reason: reason::SECRET_SYNCED,
                    message: message::SECRET_SYNCED.into(),
                }
            }
            Applied::Updated => {
                self.observer.secret_write("update");
                self.event(
                    es,
                    EventType::Normal,
                    event_reason::UPDATED,
                    message::EVENT_SECRET_UPDATED.into(),
                )
                .await;
                Ready {
                    status: true,
                    reason: reason::SECRET_SYNCED,
                    message: message::SECRET_SYNCED.into(),
                }
            }
            Applied::Missing => Ready {
                status: true,
                reason: reason::SECRET_MISSING,
                message: message::SECRET_MISSING.into(),
            },
            Applied::Unchanged | Applied::NotWritten | Applied::Newer => Ready {
                status: true,
                reason: reason::SECRET_SYNCED,
                message: message::SECRET_SYNCED.into(),
            },
        };
        Ok(Some((applied, ready, expires_at)))
    }

    /// The apply stage of a generic target (`target.manifest`).
    async fn write_generic(
        &self,
        es: &ExternalSecret,
        manifest: &secret_sync_crd::ManifestReference,
        namespace: &str,
        needs: &[Need],
        data: BTreeMap<String, SecretBytes>,
    ) -> Result<(Applied, Ready), SyncError> {
        let name = es.spec.target_name(es).to_owned();
        if data.is_empty() {
            match es.spec.target.deletion_policy {
                DeletionPolicy::Delete => {
                    if crate::manifest::delete(&self.client, es, manifest).await? {
                        self.observer.secret_write("delete");
                        self.event(
                            es,
                            EventType::Normal,
                            event_reason::DELETED,
                            format!("Deleted {} {name}", manifest.kind),
                        )
                        .await;
                    }
                    let ready = Ready {
                        status: true,
                        reason: reason::SECRET_DELETED,
                        message: message::SECRET_DELETED.into(),
                    };
                    return Ok((Applied::Unchanged, ready));
                }
                DeletionPolicy::Retain if !needs.is_empty() => {
                    let ready = Ready {
                        status: true,
                        reason: reason::SECRET_SYNCED,
                        message: message::SECRET_RETAINED.into(),
                    };
                    return Ok((Applied::Unchanged, ready));
                }
                _ => {}
            }
        }
        let sources = match &es.spec.target.template {
            Some(t) => Some(template::Sources::load(&self.client, namespace, t).await?),
            None => None,
        };
        let applied =
            crate::manifest::write(&self.client, es, manifest, &data, sources.as_ref()).await?;
        let said = match applied {
            Applied::Created => Some((event_reason::CREATED, "Created", "create")),
            Applied::Updated => Some((event_reason::UPDATED, "Updated", "update")),
            _ => None,
        };
        if let Some((reason, verb, metric)) = said {
            self.observer.secret_write(metric);
            self.event(
                es,
                EventType::Normal,
                reason,
                format!("{verb} {} {name}", manifest.kind),
            )
            .await;
        }
        let ready = Ready {
            status: true,
            reason: reason::SECRET_SYNCED,
            message: message::SECRET_SYNCED.into(),
        };
        Ok((applied, ready))
    }

    fn after_fetch(&self, store: &ResolvedStore, error: Option<&Arc<ProviderError>>) {
        if let Some(e) = error
            && matches!(e.as_ref(), ProviderError::Auth { .. })
        {
            // Credentials may have rotated: rebuild the client on the next sync.
            self.clients.invalidate(&store.identity);
            self.fetcher.forget_store(&store.identity);
        }
    }

    /// Rolls the workloads using `target` when its data really changed (the data hash `written`
    /// carries is not `existing`'s), with an Event naming them; a failure is a Warning Event, not
    /// a failed sync.
    async fn roll(
        &self,
        es: &ExternalSecret,
        namespace: &str,
        target: &str,
        existing: Option<&Secret>,
        written: Option<&Secret>,
    ) {
        let hash_of = |s: Option<&Secret>| {
            s.and_then(|s| s.metadata.annotations.as_ref())
                .and_then(|a| a.get(ANNOTATION_DATA_HASH))
                .cloned()
        };
        let (Some(new), old) = (hash_of(written), hash_of(existing)) else {
            return;
        };
        if old.as_deref() == Some(new.as_str()) {
            return;
        }
        match rollout::roll(&self.client, namespace, target, &new).await {
            Ok(rolled) if rolled.is_empty() => {}
            Ok(rolled) => {
                self.event(
                    es,
                    EventType::Normal,
                    "RolledOut",
                    format!(
                        "the data of Secret {target} changed: rolled {}",
                        rolled.join(", ")
                    ),
                )
                .await;
            }
            Err(e) => {
                self.event(
                    es,
                    EventType::Warning,
                    "RolloutFailed",
                    format!("the data of Secret {target} changed, but rolling the workloads using it failed: {e}"),
                )
                .await;
            }
        }
    }

    /// What generations left to clean up: kept as GeneratorStates when the sync used their values
    /// (earlier ones then fall due after the grace period), else cleaned up now (a GeneratorState
    /// due now when that fails, for the GeneratorState controller to retry). See
    /// [`generate`]'s notes.
    async fn settle_states(
        &self,
        es: &ExternalSecret,
        namespace: &str,
        made: Vec<MadeState>,
        used: bool,
    ) {
        if made.is_empty() {
            return;
        }
        let name = es.name_any();
        let uid = es.metadata.uid.clone().unwrap_or_default();
        for MadeState {
            index,
            resource,
            state,
        } in made
        {
            let owner = generate::StateOwner {
                kind: "ExternalSecret",
                api_version: "external-secrets.io/v1",
                namespace,
                name: &name,
                uid: &uid,
                key: index.to_string(),
            };
            let kept = if used {
                if !self.settings.generator_state {
                    continue;
                }
                generate::keep_state(
                    &self.client,
                    &owner,
                    &resource,
                    state,
                    self.settings.generator_gc_grace,
                    false,
                )
                .await
            } else {
                match generate::cleanup(&self.clients, namespace, &resource, &state).await {
                    Ok(()) => continue,
                    Err(e) => {
                        tracing::warn!(namespace, name = %name, error = %e, "cleaning up unused generated values failed; a GeneratorState retries it");
                        generate::keep_state(
                            &self.client,
                            &owner,
                            &resource,
                            state,
                            Duration::ZERO,
                            true,
                        )
                        .await
                    }
                }
            };
            if let Err(e) = kept {
                tracing::warn!(namespace, name = %name, error = %e, "recording a GeneratorState failed: what the generator made will not be cleaned up");
            }
        }
    }

    /// Records a failure on the object (Ready=False, Warning Event) and hands the error back.
    async fn fail(&self, es: &ExternalSecret, error: SyncError, now: Timestamp) -> SyncError {
        let message = error.condition_message();
        let ready = Ready {
            status: false,
            reason: reason::SECRET_SYNCED_ERROR,
            message: message.clone(),
        };
        let status = status::next(es, &ready, None, None, now);
        if let Err(e) = self.statuses.write(es, &status).await {
            tracing::warn!(error = %e, "could not record the failure in the status");
        }
        self.event(
            es,
            EventType::Warning,
            event_reason::UPDATE_FAILED,
            error.to_string(),
        )
        .await;
        error
    }

    async fn event(&self, es: &ExternalSecret, type_: EventType, reason: &str, note: String) {
        let success = matches!(
            reason,
            event_reason::CREATED | event_reason::UPDATED | event_reason::DELETED
        );
        if success && !self.settings.success_events {
            return;
        }
        self.publish(es.object_ref(&()), type_, reason, "Sync", note);
    }

    /// Queues an Event about `regarding`. Off the sync's critical path: a slow or failing Event
    /// write never delays or fails a sync (nor holds a reconcile worker); a full queue drops the
    /// Event and counts it.
    pub(crate) fn publish(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: &str,
        action: &'static str,
        note: String,
    ) {
        let queued = self.events.send(Job {
            regarding,
            type_,
            reason: reason.to_owned(),
            action,
            note,
        });
        if !queued {
            self.observer.event_dropped();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use secret_sync_crd::{
        ConditionStatus, ExternalSecretConditionType, ExternalSecretSpec,
        ExternalSecretStatusCondition,
    };

    fn with_status(status: ExternalSecretStatus) -> ExternalSecret {
        let mut es = ExternalSecret::new("db", ExternalSecretSpec::default());
        es.metadata.uid = Some("uid-1".into());
        es.status = Some(status);
        es
    }

    fn ready(status: ConditionStatus, reason: &str) -> Vec<ExternalSecretStatusCondition> {
        vec![ExternalSecretStatusCondition {
            type_: ExternalSecretConditionType::Ready,
            status,
            reason: Some(reason.into()),
            ..Default::default()
        }]
    }

    #[test]
    fn a_failure_recorded_in_the_second_of_our_success_is_not_hidden_by_it() {
        let recent = Recent::default();
        let synced_at = Timestamp::from_millisecond(1_800_000_000_670).expect("ts");
        let ours = ExternalSecretStatus {
            refresh_time: Some(Time(synced_at)),
            conditions: ready(ConditionStatus::True, reason::SECRET_SYNCED),
            ..Default::default()
        };
        recent.wrote_status(&with_status(ours.clone()), &ours);
        // The cache shows a failure recorded later, its refreshTime (our success) in seconds.
        let failed = with_status(ExternalSecretStatus {
            refresh_time: Some(Time(Timestamp::from_second(1_800_000_000).expect("ts"))),
            conditions: ready(ConditionStatus::False, reason::SECRET_SYNCED_ERROR),
            ..Default::default()
        });
        let seen = recent.external_secret(&failed);
        assert_eq!(seen.status, failed.status);
    }
}
