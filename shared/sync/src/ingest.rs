//! The one ingest path every change source hands its changes to: resolve the affected
//! ExternalSecrets through the [`ReadIndex`], coalesce, sync with conflict retries, and answer
//! with one [`Disposition`], which the source maps onto its protocol (an SQS delete or not, a
//! Lambda `batchItemFailures` entry, an HTTP status).
//!
//! - **Two ways in.** [`Ingest::apply`] waits for the syncs (an SQS message is deleted only once
//!   they are done; a Lambda answers only then). [`Ingest::dispatch`] returns at once (a Vault
//!   audit device must never wait, a webhook sender times out), within a [`Bound`] of changes in
//!   flight per feed, past which a change is refused ([`Overloaded`]) and left to the periodic
//!   reconcile.
//! - **Coalescing.** An ExternalSecret already being synced is not synced twice at once: the
//!   change is noted, and one more sync runs when the running one ends, with values read after
//!   the latest change noted. A burst of 100 writes to one key costs at most two syncs per
//!   ExternalSecret, never 100 racing each other; every caller gets the verdict of a sync that read
//!   values after its change arrived.
//! - **Conflicts.** A sync that lost an update conflict to another writer is tried again at once,
//!   a few times.
//! - **Stores not Ready yet.** A change for an ExternalSecret (or PushSecret) whose store exists
//!   but is not Ready (not validated yet, or failing until a credential Secret arrives) waits for
//!   it up to [`STORE_WAIT`] (by default), holding no sync slot, and syncs once it is: not dropped, not left
//!   to an SQS visibility timeout.
//! - **PushSecrets.** With [`Ingest::serve_push_secrets`], a change at a key a PushSecret pushed
//!   (`status.syncedPushSecrets`, through the [`PushIndex`]) pushes it again at once: a secret
//!   changed or deleted at the provider by hand is put back in milliseconds, where ESO waits for
//!   the next `refreshInterval`. Our own write comes back as a change too; that pass finds the
//!   value in place and writes nothing. A PushSecret is pushed for a change at most once per
//!   [`PUSH_COOLDOWN`], so two PushSecrets writing one key cannot chase each other faster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use secret_sync_crd::{ExternalSecret, PushSecret};
use secret_sync_events::Change;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::task::TaskTracker;

use crate::Engine;
use crate::cached::{self, CachedExternalSecret};
use crate::caches;
use crate::index::{PushIndex, ReadIndex};
use crate::push::{PushError, Pushed};
use crate::resolve::{StoreCaches, StoreId};
use crate::shards::{ShardGuard, Shards};

/// How often a sync that lost an update conflict is tried again at once.
const CONFLICT_ATTEMPTS: usize = 3;

/// How long a change waits for a store that exists but is not Ready yet (not validated yet, or
/// failing), rather than being dropped or left to a redelivery. The controller also syncs a
/// store's readers when it turns Ready; the wait is what keeps an SQS message from coming back
/// after its visibility timeout, and what a Lambda or a webhook change has instead.
pub const STORE_WAIT: Duration = Duration::from_secs(20);

/// How often a waiting change looks at its store again (a cache read).
const STORE_POLL: Duration = Duration::from_millis(100);

/// The shortest time between two pushes of one PushSecret for changes.
pub const PUSH_COOLDOWN: Duration = Duration::from_secs(10);

/// What the ingest syncs for a change.
#[derive(Clone, Debug)]
pub enum Target {
    /// An ExternalSecret, synced from its provider.
    Pull(Arc<ExternalSecret>),
    /// A PushSecret, pushed again.
    Push(Arc<PushSecret>),
}

impl Target {
    fn key(&self) -> TargetRef {
        match self {
            Self::Pull(es) => TargetRef::Pull(ObjectRef::from_obj(es.as_ref())),
            Self::Push(ps) => TargetRef::Push(ObjectRef::from_obj(ps.as_ref())),
        }
    }

    /// `ExternalSecret` or `PushSecret`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Pull(_) => "ExternalSecret",
            Self::Push(_) => "PushSecret",
        }
    }

    pub fn namespace(&self) -> String {
        match self {
            Self::Pull(es) => es.namespace(),
            Self::Push(ps) => ps.namespace(),
        }
        .unwrap_or_default()
    }

    pub fn name(&self) -> String {
        match self {
            Self::Pull(es) => es.name_any(),
            Self::Push(ps) => ps.name_any(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum TargetRef {
    Pull(ObjectRef<ExternalSecret>),
    Push(ObjectRef<PushSecret>),
}

/// The PushSecrets an ingest serves: their cache, the index of what they pushed, and when each
/// was last pushed for a change.
struct Pushes {
    index: Arc<PushIndex>,
    cache: Store<PushSecret>,
    last: Mutex<HashMap<ObjectRef<PushSecret>, Instant>>,
}

impl Pushes {
    /// Whether `ps` may be pushed for a change now; if so, notes it.
    fn take_turn(&self, ps: &ObjectRef<PushSecret>, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last
            .get(ps)
            .is_some_and(|at| now.saturating_duration_since(*at) < PUSH_COOLDOWN)
        {
            return false;
        }
        if last.len() >= 1024 {
            last.retain(|_, at| now.saturating_duration_since(*at) < PUSH_COOLDOWN);
        }
        last.insert(ps.clone(), now);
        true
    }
}

/// What a source does with a change once the ingest is through with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Done: every affected ExternalSecret synced, or failed in a way only a spec change fixes
    /// (its status says so). Acknowledge it.
    Done,
    /// Nothing reads what changed. Acknowledge it.
    Dropped,
    /// A sync failed in a way a retry can fix, or the change could not be taken: deliver it again
    /// later.
    Retry,
}

/// How one ExternalSecret's sync ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Synced,
    /// Failed; retrying the change may help.
    Retryable,
    /// Failed; only a spec change helps (recorded on the ExternalSecret).
    Permanent,
}

/// What became of one change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// ExternalSecrets the change affects.
    pub affected: usize,
    pub synced: usize,
    pub retryable: usize,
    pub permanent: usize,
}

impl Report {
    fn count(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Synced => self.synced += 1,
            Verdict::Retryable => self.retryable += 1,
            Verdict::Permanent => self.permanent += 1,
        }
    }

    /// The one disposition of the change.
    pub fn disposition(&self) -> Disposition {
        if self.affected == 0 {
            Disposition::Dropped
        } else if self.retryable > 0 {
            Disposition::Retry
        } else {
            Disposition::Done
        }
    }
}

/// Too many changes are in flight; this one was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many provider changes in flight")]
pub struct Overloaded;

/// How many dispatched changes of one feed may be in flight: each feed has its own, so that one
/// cannot crowd out another.
#[derive(Clone)]
pub struct Bound(Arc<Semaphore>);

impl Bound {
    pub fn new(max_changes: usize) -> Self {
        Self(Arc::new(Semaphore::new(max_changes.max(1))))
    }

    /// A place for one change, held until the permit drops; refused when none is free.
    pub fn try_take(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Overloaded> {
        self.0.clone().try_acquire_owned().map_err(|_| Overloaded)
    }
}

/// How one sync attempt ended.
enum Tried {
    Verdict(Verdict),
    /// The store (if known) is not Ready yet: wait for it, then sync again.
    AwaitStore(Option<StoreId>),
}

/// An ExternalSecret being synced: the latest change noted meanwhile, and who waits for the sync
/// that will follow.
#[derive(Default)]
struct Running {
    again: Option<Instant>,
    waiting: Vec<oneshot::Sender<Verdict>>,
}

/// How much an ingest takes on.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Event-driven syncs at once.
    pub max_syncs: usize,
    /// How long a change waits for a store that is not Ready yet ([`STORE_WAIT`]).
    pub store_wait: Duration,
}

impl Limits {
    /// At most `max_syncs` syncs at once; stores waited for [`STORE_WAIT`].
    pub fn new(max_syncs: usize) -> Self {
        Self {
            max_syncs,
            store_wait: STORE_WAIT,
        }
    }
}

/// See the module notes. One per cluster: it syncs through that cluster's engine and caches.
pub struct Ingest {
    engine: Arc<Engine>,
    index: Arc<ReadIndex>,
    external_secrets: Store<CachedExternalSecret>,
    stores: StoreCaches,
    pushes: OnceLock<Pushes>,
    shards: OnceLock<Arc<Shards>>,
    syncs: Arc<Semaphore>,
    store_wait: Duration,
    running: Mutex<HashMap<TargetRef, Running>>,
    tasks: TaskTracker,
}

impl Ingest {
    /// An ingest syncing through `engine`, resolving against `index` and the caches.
    pub fn new(
        engine: Arc<Engine>,
        index: Arc<ReadIndex>,
        external_secrets: Store<CachedExternalSecret>,
        stores: StoreCaches,
        limits: Limits,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            index,
            external_secrets,
            stores,
            pushes: OnceLock::new(),
            shards: OnceLock::new(),
            syncs: Arc::new(Semaphore::new(limits.max_syncs.max(1))),
            store_wait: limits.store_wait,
            running: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
        })
    }

    /// Pushes again the PushSecrets (as `cache` holds them, indexed by `index`) whose pushed keys
    /// a change names. Call once, before the first change; later calls are ignored.
    pub fn serve_push_secrets(&self, index: Arc<PushIndex>, cache: Store<PushSecret>) {
        let _ = self.pushes.set(Pushes {
            index,
            cache,
            last: Mutex::new(HashMap::new()),
        });
    }

    /// Syncs only what lies in the shards this process holds (see [`crate::shards`]). Call once,
    /// before the first change; later calls are ignored. Without it, everything is synced.
    pub fn serve_shards(&self, shards: Arc<Shards>) {
        let _ = self.shards.set(shards);
    }

    /// The shards this ingest syncs.
    pub fn shards(&self) -> Arc<Shards> {
        self.shards.get_or_init(Shards::all).clone()
    }

    /// What `change` affects in the shards held: the ExternalSecrets reading what changed, and the
    /// PushSecrets that pushed it (those pushed for a change within [`PUSH_COOLDOWN`] excepted).
    pub fn resolve(&self, change: &Change) -> Vec<Target> {
        let shards = self.shards();
        let mut targets = self.resolve_everywhere(change);
        if shards.is_sharded() {
            targets.retain(|target| shards.owns(&target.namespace()));
        }
        targets
    }

    /// [`Ingest::resolve`] in every shard, held or not.
    fn resolve_everywhere(&self, change: &Change) -> Vec<Target> {
        let mut targets: Vec<Target> = self
            .index
            .affected(change, &self.stores, &self.external_secrets)
            .into_iter()
            .filter_map(|es| es.expanded())
            .map(Target::Pull)
            .collect();
        if let Some(pushes) = self.pushes.get() {
            let now = Instant::now();
            targets.extend(
                pushes
                    .index
                    .affected_refs(change, &self.stores)
                    .into_iter()
                    .filter(|at| pushes.take_turn(at, now))
                    .filter_map(|at| pushes.cache.get(&at))
                    .map(Target::Push),
            );
        }
        targets
    }

    /// The ExternalSecret cache this ingest resolves against.
    pub fn external_secrets(&self) -> &Store<CachedExternalSecret> {
        &self.external_secrets
    }

    /// Waits until every cache a change resolves against (ExternalSecrets, SecretStores,
    /// ClusterSecretStores) has its first full list. A source takes no change before: one
    /// resolved against a cache still loading finds nothing, and is lost.
    pub async fn ready(&self) {
        caches::ready(&self.external_secrets).await;
        caches::ready(&self.stores.secret_stores).await;
        caches::ready(&self.stores.cluster_secret_stores).await;
        if let Some(pushes) = self.pushes.get() {
            caches::ready(&pushes.cache).await;
        }
    }

    /// Whether [`Ingest::ready`] would return at once.
    pub fn is_ready(&self) -> bool {
        caches::is_ready(&self.external_secrets)
            && caches::is_ready(&self.stores.secret_stores)
            && caches::is_ready(&self.stores.cluster_secret_stores)
            && self
                .pushes
                .get()
                .is_none_or(|pushes| caches::is_ready(&pushes.cache))
    }

    /// Syncs `targets` for a change received at `received`, and waits for every verdict.
    pub async fn sync_all(self: &Arc<Self>, targets: Vec<Target>, received: Instant) -> Report {
        let mut report = Report {
            affected: targets.len(),
            ..Report::default()
        };
        let waits: Vec<_> = targets
            .into_iter()
            .map(|target| self.join(target, received))
            .collect();
        for verdict in futures::future::join_all(waits).await {
            report.count(verdict.unwrap_or(Verdict::Retryable));
        }
        report
    }

    /// Syncs one target for a change received at `received` (coalesced with any sync of it
    /// already running) and waits for the verdict.
    pub async fn sync_one(self: &Arc<Self>, target: Target, received: Instant) -> Verdict {
        self.join(target, received)
            .await
            .unwrap_or(Verdict::Retryable)
    }

    /// [`Ingest::apply`] within the `wanted` shards: syncs what `change` affects in those of them
    /// this process holds, and answers with the report and the shards it answered for. A shard
    /// counts as answered when it was held throughout and no sync of the change needs a retry; the
    /// caller asks another replica (or again later) for the rest.
    pub async fn apply_in(
        self: &Arc<Self>,
        change: &Change,
        received: Instant,
        wanted: &[u32],
    ) -> (Report, Vec<u32>) {
        let shards = self.shards();
        let before: Vec<u32> = wanted
            .iter()
            .copied()
            .filter(|&s| shards.answers_for(s))
            .collect();
        if before.is_empty() {
            return (Report::default(), Vec::new());
        }
        let targets = self
            .resolve(change)
            .into_iter()
            .filter(|target| before.contains(&shards.of(&target.namespace())))
            .collect();
        let report = self.sync_all(targets, received).await;
        let answered = if report.disposition() == Disposition::Retry {
            Vec::new()
        } else {
            before
                .into_iter()
                .filter(|&s| shards.answers_for(s))
                .collect()
        };
        (report, answered)
    }

    /// Resolves `change`, syncs what it affects, and waits for the verdicts.
    pub async fn apply(self: &Arc<Self>, change: &Change, received: Instant) -> Report {
        let targets = self.resolve(change);
        self.sync_all(targets, received).await
    }

    /// Resolves `change` and starts the syncs, within `bound`; returns at once with the number
    /// affected. `settled` gets the report when they are done.
    pub fn dispatch(
        self: &Arc<Self>,
        change: &Change,
        received: Instant,
        bound: &Bound,
        settled: impl FnOnce(Report) + Send + 'static,
    ) -> Result<usize, Overloaded> {
        let targets = self.resolve(change);
        self.dispatch_targets(targets, received, bound, settled)
    }

    /// [`Ingest::dispatch`] for targets the caller resolved itself (a template source's readers).
    pub fn dispatch_targets(
        self: &Arc<Self>,
        targets: Vec<Target>,
        received: Instant,
        bound: &Bound,
        settled: impl FnOnce(Report) + Send + 'static,
    ) -> Result<usize, Overloaded> {
        let affected = targets.len();
        if affected == 0 {
            settled(Report::default());
            return Ok(0);
        }
        let permit = bound
            .0
            .clone()
            .try_acquire_owned()
            .map_err(|_| Overloaded)?;
        let this = self.clone();
        self.tasks.spawn(async move {
            let report = this.sync_all(targets, received).await;
            drop(permit);
            settled(report);
        });
        Ok(affected)
    }

    /// Waits for the verdict of a sync of `target` that reads values from after `received`: a
    /// new one, or the one that follows the sync already running.
    fn join(self: &Arc<Self>, target: Target, received: Instant) -> oneshot::Receiver<Verdict> {
        let (tx, rx) = oneshot::channel();
        let key = target.key();
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = running.get_mut(&key) {
                slot.again = Some(slot.again.map_or(received, |at| at.max(received)));
                slot.waiting.push(tx);
                return rx;
            }
            running.insert(key.clone(), Running::default());
        }
        let this = self.clone();
        self.tasks
            .spawn(async move { this.run(key, target, received, vec![tx]).await });
        rx
    }

    /// Syncs `target`, then again for as long as changes were noted during the previous sync.
    async fn run(
        &self,
        key: TargetRef,
        mut target: Target,
        mut at: Instant,
        mut waiting: Vec<oneshot::Sender<Verdict>>,
    ) {
        loop {
            let verdict = match self.attempt(&key, target, at).await {
                Some(verdict) => verdict,
                // Deleted while waiting for its store.
                None => Verdict::Synced,
            };
            for tx in waiting.drain(..) {
                let _ = tx.send(verdict);
            }
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let slot = running.entry(key.clone()).or_default();
            match slot.again.take() {
                Some(later) => {
                    at = later;
                    waiting = std::mem::take(&mut slot.waiting);
                    // The follow-up syncs what the object says now.
                    match self.latest(&key) {
                        Some(latest) => target = latest,
                        None => {
                            // Deleted meanwhile: nothing left to sync for anyone.
                            running.remove(&key);
                            for tx in waiting.drain(..) {
                                let _ = tx.send(Verdict::Synced);
                            }
                            return;
                        }
                    }
                }
                None => {
                    running.remove(&key);
                    return;
                }
            }
        }
    }

    /// One sync of `target`; if its store is not Ready yet, waits for it (up to
    /// [`Limits::store_wait`], holding no sync slot meanwhile) and syncs what the object says then.
    /// `None` if the object was deleted while waiting.
    async fn attempt(&self, key: &TargetRef, mut target: Target, at: Instant) -> Option<Verdict> {
        let deadline = tokio::time::Instant::now() + self.store_wait;
        let shards = self.shards();
        loop {
            let tried = {
                let _permit = self.syncs.acquire().await;
                // Its shard given up since the change was resolved: the holder syncs it now.
                let Some(shard) = shards.enter(&target.namespace()) else {
                    return Some(Verdict::Retryable);
                };
                match &target {
                    Target::Pull(es) => self.sync(es, at, &shard).await,
                    Target::Push(ps) => self.push(ps).await,
                }
            };
            let store = match tried {
                Tried::Verdict(verdict) => return Some(verdict),
                Tried::AwaitStore(store) => store,
            };
            if !self.store_ready(store.as_ref(), deadline).await {
                tracing::debug!(
                    kind = target.kind(),
                    namespace = %target.namespace(),
                    name = %target.name(),
                    "store still not ready; the change is left to a retry"
                );
                return Some(Verdict::Retryable);
            }
            target = self.latest(key)?;
        }
    }

    /// Waits until `store` is cached and Ready (`None`: a moment's pause), or `deadline`.
    async fn store_ready(&self, store: Option<&StoreId>, deadline: tokio::time::Instant) -> bool {
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            tokio::time::sleep_until((now + STORE_POLL).min(deadline)).await;
            match store {
                None => return true,
                Some(store) if self.stores.is_ready(store) == Some(true) => return true,
                Some(_) => {}
            }
        }
    }

    /// What the caches hold now for `key`.
    fn latest(&self, key: &TargetRef) -> Option<Target> {
        match key {
            TargetRef::Pull(at) => self
                .external_secrets
                .get(&cached::key(at))
                .and_then(|es| es.expanded())
                .map(Target::Pull),
            TargetRef::Push(at) => self.pushes.get()?.cache.get(at).map(Target::Push),
        }
    }

    /// Pushes one PushSecret again, trying again at once after an update conflict. A failure
    /// only a spec change fixes is recorded on it and retried by its reconciler.
    async fn push(&self, ps: &PushSecret) -> Tried {
        for _ in 0..CONFLICT_ATTEMPTS {
            match self.engine.push(ps, &self.stores).await {
                // A store not validated yet.
                Ok(Pushed::Pending) => return Tried::AwaitStore(None),
                Ok(_) => return Tried::Verdict(Verdict::Synced),
                Err(PushError::Write(kube::Error::Api(s))) if s.code == 409 => continue,
                Err(e) => {
                    tracing::debug!(
                        namespace = ps.namespace().as_deref().unwrap_or(""),
                        name = %ps.name_any(),
                        error = %e,
                        "event-driven push failed"
                    );
                    return Tried::Verdict(match e {
                        PushError::Write(_) => Verdict::Retryable,
                        PushError::Failed(_) => Verdict::Permanent,
                    });
                }
            }
        }
        Tried::Verdict(Verdict::Retryable)
    }

    /// Syncs one ExternalSecret, trying again at once after an update conflict. Its status may
    /// be written after this returns, under another admission to `shard`.
    async fn sync(&self, es: &ExternalSecret, at: Instant, shard: &ShardGuard) -> Tried {
        for _ in 0..CONFLICT_ATTEMPTS {
            let sync = self.engine.sync_for_change(es, at, Some(shard.clone()));
            match sync.await {
                Ok(_) => {
                    tracing::debug!(
                        namespace = es.namespace().as_deref().unwrap_or(""),
                        name = %es.name_any(),
                        "synced for a change"
                    );
                    return Tried::Verdict(Verdict::Synced);
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => {
                    if let Some(store) = e.awaited_store(es.namespace().as_deref().unwrap_or("")) {
                        return Tried::AwaitStore(Some(store));
                    }
                    tracing::debug!(
                        namespace = es.namespace().as_deref().unwrap_or(""),
                        name = %es.name_any(),
                        error = %e,
                        "event-driven sync failed"
                    );
                    return Tried::Verdict(if e.is_retryable() || e.is_pending() {
                        Verdict::Retryable
                    } else {
                        Verdict::Permanent
                    });
                }
            }
        }
        Tried::Verdict(Verdict::Retryable)
    }

    /// Stops taking changes and waits up to `grace` for those in flight and their statuses.
    pub async fn close(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "event-driven syncs still running at shutdown; the periodic reconcile covers them"
            );
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !self.engine.flush_statuses(left).await {
            tracing::warn!(
                unwritten = self.engine.statuses_outstanding(),
                "statuses of event-driven syncs still unwritten at shutdown; the next sync writes them"
            );
        }
    }
}
