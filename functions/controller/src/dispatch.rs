//! Hands the ExternalSecrets that a provider change affects to the engine, off the path that
//! received the change.
//!
//! The receivers (the Vault audit stream, the Vault event stream, the signed webhook) must not
//! wait for syncs: a Vault audit device that cannot write blocks every Vault request, a webhook
//! sender times out, and an event stream falls behind. So a receiver resolves the affected
//! ExternalSecrets (a cache lookup) and calls [`Dispatcher::dispatch`], which returns at once.
//!
//! - **Coalescing.** An ExternalSecret already being synced for an earlier change is not synced
//!   twice at once: it is marked, and synced once more when the running sync ends, with values
//!   read after the latest change. A burst of 100 writes to one key costs at most two syncs at a
//!   time per ExternalSecret, never 100 in parallel racing each other.
//! - **A bound.** At most `max_changes` changes are in flight; past that a change is refused
//!   ([`Overloaded`]), counted by the caller and left to the periodic reconcile. A webhook answers
//!   it with 429.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::reflector::ObjectRef;
use secret_sync::{Engine, Trigger};
use secret_sync_crd::ExternalSecret;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::metrics::{self, EventResult, Metrics};

/// Too many changes are in flight; this one was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many provider changes in flight")]
pub struct Overloaded;

/// See the module documentation.
pub struct Dispatcher {
    engine: Arc<Engine>,
    metrics: Metrics,
    trigger: metrics::Trigger,
    /// How many ExternalSecrets of one change sync at once.
    per_change: usize,
    changes: Arc<Semaphore>,
    /// ExternalSecrets being synced → the time of a change that arrived meanwhile, if any.
    running: Mutex<HashMap<ObjectRef<ExternalSecret>, Option<Instant>>>,
    tasks: TaskTracker,
}

impl Dispatcher {
    /// `trigger` labels the latency metric (`event` or `webhook`).
    pub fn new(
        engine: Arc<Engine>,
        metrics: Metrics,
        trigger: metrics::Trigger,
        max_changes: usize,
        per_change: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            metrics,
            trigger,
            per_change: per_change.max(1),
            changes: Arc::new(Semaphore::new(max_changes.max(1))),
            running: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
        })
    }

    /// Starts syncing `targets` for a change received at `received`, and returns at once.
    pub fn dispatch(
        self: &Arc<Self>,
        targets: Vec<Arc<ExternalSecret>>,
        received: Instant,
    ) -> Result<(), Overloaded> {
        let permit = self
            .changes
            .clone()
            .try_acquire_owned()
            .map_err(|_| Overloaded)?;
        let fresh: Vec<_> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            targets
                .into_iter()
                .filter(
                    |es| match running.get_mut(&ObjectRef::from_obj(es.as_ref())) {
                        Some(again) => {
                            *again = Some(received);
                            false
                        }
                        None => {
                            running.insert(ObjectRef::from_obj(es.as_ref()), None);
                            true
                        }
                    },
                )
                .collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        let this = self.clone();
        self.tasks.spawn(async move {
            futures::stream::iter(fresh)
                .for_each_concurrent(this.per_change, |es| this.sync_until_settled(es, received))
                .await;
            this.metrics.sync_latency(this.trigger, received.elapsed());
            drop(permit);
        });
        Ok(())
    }

    /// [`Dispatcher::dispatch`] for one change from `source`, counted in
    /// `secret_sync_events_total{source}`: `dropped` when no ExternalSecret reads what changed,
    /// `matched` when taken, `overloaded` when refused.
    pub fn deliver(
        self: &Arc<Self>,
        source: &str,
        targets: Vec<Arc<ExternalSecret>>,
        received: Instant,
    ) -> Result<(), Overloaded> {
        let result = if targets.is_empty() {
            Ok(EventResult::Dropped)
        } else {
            self.dispatch(targets, received)
                .map(|()| EventResult::Matched)
        };
        self.metrics
            .event(source, result.unwrap_or(EventResult::Overloaded));
        result.map(drop)
    }

    /// Syncs `es`, then again for as long as changes arrived during the previous sync.
    async fn sync_until_settled(&self, es: Arc<ExternalSecret>, received: Instant) {
        let key = ObjectRef::from_obj(es.as_ref());
        let mut at = received;
        loop {
            if let Err(e) = self.engine.sync(&es, Trigger::ProviderChanged { at }).await {
                // The controller's own reconcile retries it; nothing to keep here.
                tracing::debug!(error = %e, "event-driven sync failed");
            }
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            match running.get_mut(&key).and_then(Option::take) {
                Some(later) => at = later,
                None => {
                    running.remove(&key);
                    return;
                }
            }
        }
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
                "event-driven syncs still running at shutdown; the next leader's reconcile covers them"
            );
        }
    }
}

/// Spaces the full resyncs that follow a gap in a change feed (a reconnect): at most one per
/// `spacing`. A gap within the spacing schedules one resync at its end, and further gaps until
/// then merge into it. A feed that flaps every few seconds would otherwise sync every
/// ExternalSecret of a Vault server every few seconds.
pub struct ResyncGate {
    spacing: Duration,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    last: Option<tokio::time::Instant>,
    scheduled: bool,
}

impl ResyncGate {
    pub fn new(spacing: Duration) -> Arc<Self> {
        Arc::new(Self {
            spacing,
            state: Mutex::new(GateState::default()),
        })
    }

    /// Runs `resync` now, or once the spacing since the last run has passed.
    pub fn request(self: &Arc<Self>, resync: impl FnOnce() + Send + 'static) {
        let delay = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.scheduled {
                return;
            }
            let since = state.last.map(|last| last.elapsed());
            match since {
                Some(since) if since < self.spacing => {
                    state.scheduled = true;
                    Some(self.spacing - since)
                }
                _ => {
                    state.last = Some(tokio::time::Instant::now());
                    None
                }
            }
        };
        match delay {
            None => resync(),
            Some(delay) => {
                let gate = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    {
                        let mut state = gate.state.lock().unwrap_or_else(|e| e.into_inner());
                        state.scheduled = false;
                        state.last = Some(tokio::time::Instant::now());
                    }
                    resync();
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gaps_within_the_spacing_merge_into_one_later_resync() {
        let gate = ResyncGate::new(Duration::from_secs(30));
        let runs = Arc::new(AtomicUsize::new(0));
        let count = |runs: &Arc<AtomicUsize>| {
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
            }
        };
        gate.request(count(&runs));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the first runs at once");
        for _ in 0..5 {
            gate.request(count(&runs));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the rest wait");
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "and run once, merged");
        tokio::time::sleep(Duration::from_secs(31)).await;
        gate.request(count(&runs));
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "after the spacing, at once again"
        );
    }
}
