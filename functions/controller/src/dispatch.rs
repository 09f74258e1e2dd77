//! A feed's door into the engine's ingest ([`secret_sync::ingest`]), off the path that received
//! the change.
//!
//! The receivers (the Vault audit stream, the Vault event stream, the signed webhook, the watch
//! of template sources) must not wait for syncs: a Vault audit device that cannot write blocks
//! every Vault request, a webhook sender times out, and an event stream falls behind. So a
//! receiver calls [`Dispatcher::deliver`], which resolves the change through the index, starts
//! the syncs and returns at once. Coalescing and conflict retries are the ingest's, shared by every
//! feed; each feed has its own [`Bound`] of changes in flight, so that one cannot crowd out
//! another. Past it a change is refused ([`Overloaded`]), counted, and left to the periodic
//! reconcile; a webhook answers it with 429.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secret_sync::ingest::{Bound, Ingest, Target};
use secret_sync_events::Change;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, EventResult, Metrics};

pub use secret_sync::ingest::Overloaded;

/// See the module documentation.
pub struct Dispatcher {
    ingest: Arc<Ingest>,
    /// Sharded: the peers a change is forwarded to (see `shards.rs`).
    peers: Option<Arc<crate::shards::Peers>>,
    bound: Bound,
    metrics: Metrics,
    trigger: metrics::Trigger,
}

impl Dispatcher {
    /// `trigger` labels the latency metric (`event`, `webhook` or `watch`); at most
    /// `max_changes` of this feed's changes are in flight.
    pub fn new(
        ingest: Arc<Ingest>,
        metrics: Metrics,
        trigger: metrics::Trigger,
        max_changes: usize,
    ) -> Arc<Self> {
        Self::build(ingest, None, metrics, trigger, max_changes)
    }

    /// [`Dispatcher::new`] for a feed that reaches one replica only: each change is also
    /// forwarded to the replicas holding the other shards.
    pub fn forwarding(
        ingest: Arc<Ingest>,
        peers: Arc<crate::shards::Peers>,
        metrics: Metrics,
        trigger: metrics::Trigger,
        max_changes: usize,
    ) -> Arc<Self> {
        Self::build(ingest, Some(peers), metrics, trigger, max_changes)
    }

    fn build(
        ingest: Arc<Ingest>,
        peers: Option<Arc<crate::shards::Peers>>,
        metrics: Metrics,
        trigger: metrics::Trigger,
        max_changes: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            ingest,
            peers,
            bound: Bound::new(max_changes),
            metrics,
            trigger,
        })
    }

    /// The ingest behind this door.
    pub fn ingest(&self) -> &Arc<Ingest> {
        &self.ingest
    }

    /// Records how long after `received` the change's syncs were done.
    fn settled(
        &self,
        received: Instant,
    ) -> impl FnOnce(secret_sync::ingest::Report) + Send + 'static {
        let metrics = self.metrics.clone();
        let trigger = self.trigger;
        move |report| {
            if report.affected > 0 {
                metrics.sync_latency(trigger, received.elapsed());
            }
        }
    }

    fn count(&self, source: &str, result: &Result<usize, Overloaded>) {
        let counted = match result {
            Ok(0) => EventResult::Dropped,
            Ok(_) => EventResult::Matched,
            Err(Overloaded) => EventResult::Overloaded,
        };
        self.metrics.event(source, counted);
    }

    /// Takes one change from `source`, received at `received`, and returns at once with the
    /// number of ExternalSecrets it affects. Counted in `secret_sync_events_total{source}`:
    /// `dropped` when none reads what changed, `matched` when taken, `overloaded` when refused.
    pub fn deliver(
        &self,
        source: &str,
        change: &Change,
        received: Instant,
    ) -> Result<usize, Overloaded> {
        let result = match &self.peers {
            Some(peers) => peers.dispatch(
                &self.ingest,
                change,
                received,
                &self.bound,
                self.settled(received),
            ),
            None => self
                .ingest
                .dispatch(change, received, &self.bound, self.settled(received)),
        };
        self.count(source, &result);
        result
    }

    /// [`Dispatcher::deliver`] for targets the caller resolved itself.
    pub fn deliver_targets(
        &self,
        source: &str,
        targets: Vec<Target>,
        received: Instant,
    ) -> Result<usize, Overloaded> {
        let result =
            self.ingest
                .dispatch_targets(targets, received, &self.bound, self.settled(received));
        self.count(source, &result);
        result
    }

    /// A resync after a gap in `source`'s feed: everything at the change's place. Counted only
    /// when refused.
    pub fn resync(&self, source: &str, change: &Change) -> usize {
        match self
            .ingest
            .dispatch(change, Instant::now(), &self.bound, |_| {})
        {
            Ok(affected) => affected,
            Err(Overloaded) => {
                self.metrics.event(source, EventResult::Overloaded);
                0
            }
        }
    }

    /// Waits up to `grace` for the changes in flight (of every feed: they share the ingest).
    pub async fn close(&self, grace: Duration) {
        self.ingest.close(grace).await;
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

/// Keeps one running feed per entry of `wanted()` until `shutdown`: looked at every `rescan`, a
/// feed no longer wanted, or wanted with another source (a store that changed), is stopped
/// through its token; a new one is begun by `start(feed, source, stop, at_first_look)`, which
/// spawns what it needs and returns. `at_first_look` says whether the feed was wanted at the
/// first look (at start-up) rather than appearing later.
pub async fn keep_feeds<F, S>(
    shutdown: CancellationToken,
    rescan: Duration,
    mut wanted: impl FnMut() -> HashMap<F, S>,
    mut start: impl FnMut(&F, &S, CancellationToken, bool),
) where
    F: Clone + Eq + Hash,
    S: Clone + PartialEq,
{
    let mut running: HashMap<F, (S, CancellationToken)> = HashMap::new();
    let mut first_look = true;
    loop {
        let wanted = wanted();
        running.retain(|feed, (source, stop)| {
            let keep = wanted.get(feed) == Some(source);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for (feed, source) in wanted {
            if running.contains_key(&feed) {
                continue;
            }
            let stop = shutdown.child_token();
            start(&feed, &source, stop.clone(), first_look);
            running.insert(feed, (source, stop));
        }
        first_look = false;
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(rescan) => {}
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
