//! ExternalSecret status writes: one at a time per ExternalSecret, and for the syncs a provider
//! change started, behind the Secrets instead of on the sync's path.
//!
//! A fan-out of one rotated key to many ExternalSecrets is bounded by the apiserver's write
//! rate, and each sync writes twice: the Secret, then the status. Workloads read the Secret, so
//! a change's syncs write their Secrets and hand the status (Ready, `refreshTime`,
//! `syncedResourceVersion`) to this queue ([`Statuses::defer`]). While such syncs run, a few
//! queued statuses are written at a time, behind the Secret writes; once none runs, as many as
//! the syncs had, so they catch up at the apiserver's pace. The newest status of an
//! ExternalSecret replaces one still queued (two rotations in a row write one status, not two);
//! a refused write is retried with back-off. The engine reasons from the status it queued meanwhile (its overlay of recent
//! statuses), so only a reader of the object sees the lag.
//!
//! Every status write of the engine goes through [`Statuses`], queued or not, so that an older
//! status never lands after a newer one: a direct write ([`Statuses::write`]) waits for a queued
//! write of the same ExternalSecret in flight, and replaces one not started.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use kube::ResourceExt;
use secret_sync_crd::{ExternalSecret, ExternalSecretStatus};
use tokio::sync::{Notify, mpsc, watch};

use crate::engine::Observer;
use crate::shards::ShardGuard;
use crate::status;

/// Queued status writes in flight at once while a change's syncs run: few, so that they trail a
/// fan-out's Secret writes (up to the ingest's concurrency) instead of taking turns with them at
/// the apiserver.
const WRITERS_BUSY: usize = 8;
/// ... and once none runs: as many as the ingest's syncs, so that the statuses catch up at the
/// apiserver's pace.
const WRITERS_IDLE: usize = 256;
/// Attempts at a queued write before it is left to the ExternalSecret's next sync.
const ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The engine's status writer. See the module notes.
pub struct Statuses {
    inner: Arc<Inner>,
}

/// Called with an ExternalSecret's UID when its queued status was given up: the engine stops
/// reasoning from a status the object does not have.
pub type Forget = Box<dyn Fn(&str) + Send + Sync>;

struct Inner {
    client: kube::Client,
    observer: Arc<dyn Observer>,
    forget: Forget,
    /// ExternalSecret UID → its turn and queued status, while either is in use.
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// UIDs with a queued status, to the workers (started with the first).
    queue: OnceLock<mpsc::UnboundedSender<String>>,
    /// Queued statuses not written yet: waiting, in flight or backing off.
    outstanding: watch::Sender<usize>,
    /// Syncs for a change running ([`Statuses::syncing`]).
    syncing: AtomicUsize,
    /// Queued writes in flight.
    writing: AtomicUsize,
    /// Room for another queued write may have come: a write ended, or the syncs did.
    room: Notify,
}

#[derive(Default)]
struct Slot {
    /// Held across a write.
    turn: tokio::sync::Mutex<()>,
    /// The newest queued status, not yet taken by a writer.
    queued: Mutex<Option<Queued>>,
}

impl Slot {
    fn queued(&self) -> MutexGuard<'_, Option<Queued>> {
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A sync for a change, running. See [`Statuses::syncing`].
pub struct Syncing {
    inner: Arc<Inner>,
}

impl Drop for Syncing {
    fn drop(&mut self) {
        if self.inner.syncing.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.room.notify_one();
        }
    }
}

struct Queued {
    namespace: String,
    name: String,
    status: ExternalSecretStatus,
    attempts: u32,
    /// Keeps the ExternalSecret's shard from being handed over before the first attempt: a
    /// replica taking it over would otherwise see its status overwritten by an older one.
    _shard: Option<ShardGuard>,
}

impl Statuses {
    pub fn new(client: kube::Client, observer: Arc<dyn Observer>, forget: Forget) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                observer,
                forget,
                slots: Mutex::default(),
                queue: OnceLock::new(),
                outstanding: watch::Sender::new(0),
                syncing: AtomicUsize::new(0),
                writing: AtomicUsize::new(0),
                room: Notify::new(),
            }),
        }
    }

    /// Writes `status` now, unless `es` already has it; after a queued write of the same
    /// ExternalSecret in flight, and in place of one not started. Whether it wrote.
    pub async fn write(
        &self,
        es: &ExternalSecret,
        status: &ExternalSecretStatus,
    ) -> Result<bool, kube::Error> {
        let status = status::as_stored(status);
        let (namespace, name) = (es.namespace().unwrap_or_default(), es.name_any());
        // Without a UID (only an object never stored lacks one) there is nothing to order by.
        let uid = es.metadata.uid.as_deref();
        let slot = uid.map(|uid| self.inner.slot(uid));
        let turn = match &slot {
            Some(slot) => Some(slot.turn.lock().await),
            None => None,
        };
        // `es` may carry the replaced status as if written (the engine's overlay): write
        // whatever it says.
        let replaced = slot.as_ref().is_some_and(|s| s.queued().take().is_some());
        if replaced {
            self.inner.settled();
        }
        let result = if !replaced && es.status.as_ref() == Some(&status) {
            Ok(false)
        } else {
            self.inner
                .patch(&namespace, &name, &status)
                .await
                .map(|()| true)
        };
        drop(turn);
        if let (Some(uid), Some(slot)) = (uid, slot) {
            self.inner.release(uid, slot);
        }
        result
    }

    /// Queues `status` to be written behind the Secrets: whether it was, `false` if `es` already
    /// has it. `None` if `es` has no UID (only an object never stored lacks one): the caller
    /// writes it. `shard`, the sync's admission, is held until the first attempt.
    pub fn defer(
        &self,
        es: &ExternalSecret,
        status: &ExternalSecretStatus,
        shard: Option<ShardGuard>,
    ) -> Option<bool> {
        let status = status::as_stored(status);
        let uid = es.metadata.uid.as_deref()?;
        if es.status.as_ref() == Some(&status) {
            return Some(false);
        }
        let slot = self.inner.slot(uid);
        let mut queued = slot.queued();
        match queued.as_mut() {
            Some(newer) => {
                newer.status = status;
                newer.attempts = 0;
                newer._shard = shard;
            }
            None => {
                *queued = Some(Queued {
                    namespace: es.namespace().unwrap_or_default(),
                    name: es.name_any(),
                    status,
                    attempts: 0,
                    _shard: shard,
                });
                drop(queued);
                self.inner.outstanding.send_modify(|n| *n += 1);
                self.inner.report();
                self.inner.enqueue(uid.to_owned());
            }
        }
        Some(true)
    }

    /// Marks a sync for a change as running until the guard drops: queued statuses then take
    /// fewer turns at the apiserver.
    pub fn syncing(&self) -> Syncing {
        self.inner.syncing.fetch_add(1, Ordering::AcqRel);
        Syncing {
            inner: self.inner.clone(),
        }
    }

    /// Queued statuses not written yet.
    pub fn outstanding(&self) -> usize {
        *self.inner.outstanding.borrow()
    }

    /// Waits up to `limit` for every queued status to be written (or given up). Whether none is
    /// left.
    pub async fn flush(&self, limit: Duration) -> bool {
        let mut outstanding = self.inner.outstanding.subscribe();
        tokio::time::timeout(limit, outstanding.wait_for(|n| *n == 0))
            .await
            .is_ok()
    }
}

impl Inner {
    fn slots(&self) -> MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, uid: &str) -> Arc<Slot> {
        self.slots().entry(uid.to_owned()).or_default().clone()
    }

    /// Drops `slot` from the map once nobody else uses it and nothing is queued in it. Under
    /// the map's lock, the count of references is exact: every user got its own from the map.
    fn release(&self, uid: &str, slot: Arc<Slot>) {
        let mut slots = self.slots();
        if Arc::strong_count(&slot) == 2 && slot.queued().is_none() {
            slots.remove(uid);
        }
    }

    fn settled(&self) {
        self.outstanding.send_modify(|n| *n = n.saturating_sub(1));
        self.report();
    }

    fn report(&self) {
        self.observer.status_queue(*self.outstanding.borrow());
    }

    fn enqueue(self: &Arc<Self>, uid: String) {
        let tx = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(Self::dispatch(Arc::downgrade(self), rx));
            tx
        });
        let _ = tx.send(uid);
    }

    /// How many queued writes may be in flight now.
    fn writers(&self) -> usize {
        match self.syncing.load(Ordering::Acquire) {
            0 => WRITERS_IDLE,
            _ => WRITERS_BUSY,
        }
    }

    async fn dispatch(inner: std::sync::Weak<Self>, mut rx: mpsc::UnboundedReceiver<String>) {
        while let Some(uid) = rx.recv().await {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            while inner.writing.load(Ordering::Acquire) >= inner.writers() {
                // A permit stored by a `notify_one` since the last look wakes this at once.
                inner.room.notified().await;
            }
            inner.writing.fetch_add(1, Ordering::AcqRel);
            tokio::spawn(async move {
                inner.write_queued(&uid).await;
                inner.writing.fetch_sub(1, Ordering::AcqRel);
                inner.room.notify_one();
            });
        }
    }

    async fn write_queued(self: &Arc<Self>, uid: &str) {
        let Some(slot) = self.slots().get(uid).cloned() else {
            // Replaced by a direct write, which wrote it.
            return;
        };
        let turn = slot.turn.lock().await;
        let Some(mut queued) = slot.queued().take() else {
            drop(turn);
            self.release(uid, slot);
            return;
        };
        let result = self
            .patch(&queued.namespace, &queued.name, &queued.status)
            .await;
        drop(turn);
        match result {
            Ok(()) => self.settled(),
            // Deleted meanwhile.
            Err(kube::Error::Api(e)) if e.code == 404 => self.settled(),
            Err(e) => {
                queued.attempts += 1;
                let permanent = matches!(&e, kube::Error::Api(s) if s.code == 400 || s.code == 422);
                if permanent || queued.attempts >= ATTEMPTS {
                    tracing::warn!(
                        namespace = %queued.namespace,
                        name = %queued.name,
                        attempts = queued.attempts,
                        error = %e,
                        "could not record a sync in the status; the next sync writes it"
                    );
                    (self.forget)(uid);
                    self.settled();
                } else {
                    tracing::debug!(
                        namespace = %queued.namespace,
                        name = %queued.name,
                        error = %e,
                        "status write failed; trying again"
                    );
                    let mut slot_queued = slot.queued();
                    if slot_queued.is_some() {
                        // A newer status came meanwhile; it is on its way.
                        self.settled();
                    } else {
                        // A retry need not keep the shard: the status may trail a hand-over.
                        queued._shard = None;
                        let backoff = FIRST_BACKOFF
                            .saturating_mul(1 << (queued.attempts - 1).min(16))
                            .min(MAX_BACKOFF);
                        *slot_queued = Some(queued);
                        drop(slot_queued);
                        let (inner, uid) = (self.clone(), uid.to_owned());
                        tokio::spawn(async move {
                            tokio::time::sleep(backoff).await;
                            inner.enqueue(uid);
                        });
                    }
                }
            }
        }
        self.release(uid, slot);
    }

    async fn patch(
        &self,
        namespace: &str,
        name: &str,
        status: &ExternalSecretStatus,
    ) -> Result<(), kube::Error> {
        status::patch(&self.client, namespace, name, status).await?;
        self.observer.status_write();
        Ok(())
    }
}
