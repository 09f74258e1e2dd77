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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use secret_sync_crd::ExternalSecret;
use secret_sync_events::Change;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::task::TaskTracker;

use crate::index::ReadIndex;
use crate::resolve::StoreCaches;
use crate::{Engine, Trigger};

/// How often a sync that lost an update conflict is tried again at once.
const CONFLICT_ATTEMPTS: usize = 3;

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
}

/// An ExternalSecret being synced: the latest change noted meanwhile, and who waits for the sync
/// that will follow.
#[derive(Default)]
struct Running {
    again: Option<Instant>,
    waiting: Vec<oneshot::Sender<Verdict>>,
}

/// See the module notes. One per cluster: it syncs through that cluster's engine and caches.
pub struct Ingest {
    engine: Arc<Engine>,
    index: Arc<ReadIndex>,
    external_secrets: Store<ExternalSecret>,
    stores: StoreCaches,
    syncs: Arc<Semaphore>,
    running: Mutex<HashMap<ObjectRef<ExternalSecret>, Running>>,
    tasks: TaskTracker,
}

impl Ingest {
    /// At most `max_syncs` event-driven syncs run at once.
    pub fn new(
        engine: Arc<Engine>,
        index: Arc<ReadIndex>,
        external_secrets: Store<ExternalSecret>,
        stores: StoreCaches,
        max_syncs: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            index,
            external_secrets,
            stores,
            syncs: Arc::new(Semaphore::new(max_syncs.max(1))),
            running: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
        })
    }

    /// The ExternalSecrets `change` affects.
    pub fn resolve(&self, change: &Change) -> Vec<Arc<ExternalSecret>> {
        self.index
            .affected(change, &self.stores, &self.external_secrets)
    }

    /// The ExternalSecret cache this ingest resolves against.
    pub fn external_secrets(&self) -> &Store<ExternalSecret> {
        &self.external_secrets
    }

    /// Waits until every cache a change resolves against (ExternalSecrets, SecretStores,
    /// ClusterSecretStores) has its first full list. A source takes no change before: one
    /// resolved against a cache still loading finds nothing, and is lost.
    pub async fn ready(&self) {
        let _ = self.external_secrets.wait_until_ready().await;
        let _ = self.stores.secret_stores.wait_until_ready().await;
        let _ = self.stores.cluster_secret_stores.wait_until_ready().await;
    }

    /// Whether [`Ingest::ready`] would return at once.
    pub fn is_ready(&self) -> bool {
        futures::FutureExt::now_or_never(self.ready()).is_some()
    }

    /// Syncs `targets` for a change received at `received`, and waits for every verdict.
    pub async fn sync_all(
        self: &Arc<Self>,
        targets: Vec<Arc<ExternalSecret>>,
        received: Instant,
    ) -> Report {
        let mut report = Report {
            affected: targets.len(),
            ..Report::default()
        };
        let waits: Vec<_> = targets
            .into_iter()
            .map(|es| self.join(es, received))
            .collect();
        for verdict in futures::future::join_all(waits).await {
            report.count(verdict.unwrap_or(Verdict::Retryable));
        }
        report
    }

    /// Syncs one ExternalSecret for a change received at `received` (coalesced with any sync of
    /// it already running) and waits for the verdict.
    pub async fn sync_one(self: &Arc<Self>, es: Arc<ExternalSecret>, received: Instant) -> Verdict {
        self.join(es, received).await.unwrap_or(Verdict::Retryable)
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
        targets: Vec<Arc<ExternalSecret>>,
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

    /// Waits for the verdict of a sync of `es` that reads values from after `received`: a new
    /// one, or the one that follows the sync already running.
    fn join(
        self: &Arc<Self>,
        es: Arc<ExternalSecret>,
        received: Instant,
    ) -> oneshot::Receiver<Verdict> {
        let (tx, rx) = oneshot::channel();
        let key = ObjectRef::from_obj(es.as_ref());
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
            .spawn(async move { this.run(key, es, received, vec![tx]).await });
        rx
    }

    /// Syncs `es`, then again for as long as changes were noted during the previous sync.
    async fn run(
        &self,
        key: ObjectRef<ExternalSecret>,
        mut es: Arc<ExternalSecret>,
        mut at: Instant,
        mut waiting: Vec<oneshot::Sender<Verdict>>,
    ) {
        loop {
            let verdict = {
                let _permit = self.syncs.acquire().await;
                self.sync(&es, at).await
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
                    // The follow-up syncs what the ExternalSecret says now.
                    match self.external_secrets.get(&key) {
                        Some(latest) => es = latest,
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

    /// Syncs one ExternalSecret, trying again at once after an update conflict.
    async fn sync(&self, es: &ExternalSecret, at: Instant) -> Verdict {
        for _ in 0..CONFLICT_ATTEMPTS {
            match self.engine.sync(es, Trigger::ProviderChanged { at }).await {
                Ok(_) => return Verdict::Synced,
                Err(e) if e.is_conflict() => continue,
                Err(e) => {
                    tracing::debug!(
                        namespace = es.namespace().as_deref().unwrap_or(""),
                        name = %es.name_any(),
                        error = %e,
                        "event-driven sync failed"
                    );
                    return if e.is_retryable() || e.is_pending() {
                        Verdict::Retryable
                    } else {
                        Verdict::Permanent
                    };
                }
            }
        }
        Verdict::Retryable
    }

    /// Stops taking changes and waits up to `grace` for those in flight.
    pub async fn close(&self, grace: Duration) {
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
    }
}
