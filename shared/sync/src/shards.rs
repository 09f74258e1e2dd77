//! Which part of the cluster this process syncs, when several replicas divide the work.
//!
//! The work is cut into a fixed number of shards by namespace: an object belongs to shard
//! `fnv1a64(namespace) mod count`, cluster-scoped objects (ClusterSecretStores,
//! ClusterExternalSecrets) to the shard of the empty namespace. The hash is part of the protocol
//! between replicas: every version must keep it, or two versions would disagree during a rollout.
//!
//! Who holds a shard is decided elsewhere (the controller's shard Leases); this is the process's
//! own view, which every sync consults:
//!
//! - [`Shards::enter`] admits a sync of an object only while its shard is held, and counts it in
//!   flight until the guard drops.
//! - [`Shards::give_up`] stops admitting a shard's syncs and waits for those in flight, so the
//!   Lease is released only when nothing of the shard is being written: no object is synced by
//!   two replicas at once.
//! - [`Shards::changed`] ticks whenever a shard is taken or stopped, so that reconcilers look at
//!   every object again (those of a new shard were skipped until then; those of a shard handed
//!   over drop what this process kept for them, such as metric series).
//!
//! [`Shards::all`] is the unsharded case: one shard, always held.

use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use futures::stream::BoxStream;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{Notify, watch};

/// The shard of `namespace` among `count` (FNV-1a, 64 bits; stable across versions).
pub fn shard_of(count: u32, namespace: &str) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = namespace
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    u32::try_from(hash % u64::from(count.max(1))).unwrap_or(0)
}

#[derive(Debug, Default)]
struct Shard {
    held: bool,
    /// The caches that follow the shards ([`Shards::watch`]) hold this shard's objects.
    listed: bool,
    /// The generation at which it was last taken.
    taken_at: u64,
    in_flight: usize,
}

/// This process's view of the shards it holds. See the module notes.
#[derive(Debug)]
pub struct Shards {
    count: u32,
    state: Mutex<Vec<Shard>>,
    drained: Notify,
    /// The generation: bumped whenever a shard is taken or stopped.
    changed: watch::Sender<u64>,
    /// Whether caches follow the shards ([`Shards::watch`]): then a shard taken is answerable
    /// only once they have listed it.
    follows_lists: bool,
}

/// A sync admitted by [`Shards::enter`]; its shard cannot be given up while it lives.
#[derive(Debug)]
pub struct ShardGuard {
    shards: Arc<Shards>,
    shard: u32,
}

impl Clone for ShardGuard {
    /// Another admission to the same shard, counted in flight until it drops.
    fn clone(&self) -> Self {
        self.shards.lock()[self.shard as usize].in_flight += 1;
        Self {
            shards: self.shards.clone(),
            shard: self.shard,
        }
    }
}

impl Drop for ShardGuard {
    fn drop(&mut self) {
        let mut state = self.shards.lock();
        let shard = &mut state[self.shard as usize];
        shard.in_flight = shard.in_flight.saturating_sub(1);
        if shard.in_flight == 0 {
            self.shards.drained.notify_waiters();
        }
    }
}

impl Shards {
    /// Unsharded: one shard, held from the start.
    pub fn all() -> Arc<Self> {
        let shards = Self::build(1, false);
        shards.take(0);
        shards
    }

    /// `count` shards, none held yet; the ExternalSecret cache follows them ([`Shards::watch`]).
    pub fn new(count: u32) -> Arc<Self> {
        Self::build(count, true)
    }

    fn build(count: u32, follows_lists: bool) -> Arc<Self> {
        let count = count.max(1);
        Arc::new(Self {
            count,
            state: Mutex::new((0..count).map(|_| Shard::default()).collect()),
            drained: Notify::new(),
            changed: watch::Sender::new(0),
            follows_lists,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Shard>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many shards the work is cut into.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether the work is divided at all.
    pub fn is_sharded(&self) -> bool {
        self.count > 1
    }

    /// The shard of an object in `namespace` (`""` for a cluster-scoped one).
    pub fn of(&self, namespace: &str) -> u32 {
        shard_of(self.count, namespace)
    }

    /// Whether this process holds the shard of `namespace`.
    pub fn owns(&self, namespace: &str) -> bool {
        self.holds(self.of(namespace))
    }

    /// Whether this process holds `shard`.
    pub fn holds(&self, shard: u32) -> bool {
        self.lock().get(shard as usize).is_some_and(|s| s.held)
    }

    /// The shards held, in order.
    pub fn held(&self) -> Vec<u32> {
        self.lock()
            .iter()
            .zip(0..)
            .filter(|(s, _)| s.held)
            .map(|(_, i)| i)
            .collect()
    }

    /// Admits a sync of an object in `namespace` if its shard is held.
    pub fn enter(self: &Arc<Self>, namespace: &str) -> Option<ShardGuard> {
        let shard = self.of(namespace);
        let mut state = self.lock();
        let slot = &mut state[shard as usize];
        if !slot.held {
            return None;
        }
        slot.in_flight += 1;
        Some(ShardGuard {
            shards: self.clone(),
            shard,
        })
    }

    /// Starts admitting `shard`'s syncs (its Lease is ours now).
    pub fn take(&self, shard: u32) {
        let mut state = self.lock();
        if let Some(slot) = state.get_mut(shard as usize)
            && !slot.held
        {
            let generation = self.bump();
            slot.held = true;
            slot.listed = !self.follows_lists;
            slot.taken_at = generation;
        }
    }

    /// The next generation (called with the state locked, so generations follow the changes).
    fn bump(&self) -> u64 {
        let mut next = 0;
        self.changed.send_modify(|n| {
            *n += 1;
            next = *n;
        });
        next
    }

    /// Whether this process can answer for `shard` now: it holds it, and the ExternalSecret
    /// cache has listed its objects since it was taken (a change resolved before would miss
    /// them).
    pub fn answers_for(&self, shard: u32) -> bool {
        self.lock()
            .get(shard as usize)
            .is_some_and(|s| s.held && s.listed)
    }

    /// The generation and the shards held now: what a list begun now covers.
    fn snapshot(&self) -> (u64, Vec<u32>) {
        let state = self.lock();
        let generation = *self.changed.borrow();
        let held = state
            .iter()
            .zip(0..)
            .filter(|(s, _)| s.held)
            .map(|(_, i)| i)
            .collect();
        (generation, held)
    }

    /// A list begun at `generation` over `shards` is complete: those still held, not taken
    /// again since, are answerable.
    fn mark_listed(&self, generation: u64, shards: &[u32]) {
        let mut state = self.lock();
        for &shard in shards {
            if let Some(slot) = state.get_mut(shard as usize)
                && slot.held
                && slot.taken_at <= generation
            {
                slot.listed = true;
            }
        }
    }

    /// Stops admitting `shard`'s syncs at once; those in flight go on ([`Shards::in_flight`]).
    pub fn stop(&self, shard: u32) {
        let mut state = self.lock();
        if let Some(slot) = state.get_mut(shard as usize)
            && slot.held
        {
            self.bump();
            slot.held = false;
            slot.listed = false;
        }
    }

    /// How many of `shard`'s syncs are in flight.
    pub fn in_flight(&self, shard: u32) -> usize {
        self.lock().get(shard as usize).map_or(0, |s| s.in_flight)
    }

    /// Stops admitting `shard`'s syncs and waits until none is in flight.
    pub async fn give_up(&self, shard: u32) {
        self.stop(shard);
        loop {
            let drained = self.drained.notified();
            if self
                .lock()
                .get(shard as usize)
                .is_none_or(|s| s.in_flight == 0)
            {
                return;
            }
            drained.await;
        }
    }

    /// Ticks when shards were taken or stopped since the last tick (not for changes before the
    /// call).
    pub fn changed(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        let mut rx = self.changed.subscribe();
        rx.mark_unchanged();
        futures::stream::unfold(rx, |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
    }
}

/// How long a watch waits after the shards held change before it lists again, so that the
/// shards taken in one look cost one list.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

impl Shards {
    /// A watch of the objects in the shards held: `watch()` started again (a re-list) whenever
    /// the shards held change, passing only the objects of the shards held when it started. A
    /// reflector fed by it adds a new shard's objects and drops a given-up one's at the end of
    /// the re-list; then the shards it listed become answerable ([`Shards::answers_for`]).
    /// Unsharded, it is `watch()` itself.
    pub fn watch<K, S>(
        self: &Arc<Self>,
        watch: impl Fn() -> S + Send + Sync + 'static,
    ) -> BoxStream<'static, Result<Event<K>, watcher::Error>>
    where
        K: kube::Resource + Send + 'static,
        S: futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    {
        if !self.is_sharded() {
            return watch().boxed();
        }
        struct Following<K> {
            shards: Arc<Shards>,
            watch:
                Arc<dyn Fn() -> BoxStream<'static, Result<Event<K>, watcher::Error>> + Send + Sync>,
            current: BoxStream<'static, Result<Event<K>, watcher::Error>>,
            /// The generation and the shards the current list covers.
            covers: (u64, Vec<u32>),
            changes: BoxStream<'static, ()>,
        }
        let watch: Arc<
            dyn Fn() -> BoxStream<'static, Result<Event<K>, watcher::Error>> + Send + Sync,
        > = Arc::new(move || watch().boxed());
        // Nothing held: an empty list at once (the cache is ready, and empty), then nothing.
        let idle = || {
            futures::stream::iter([Ok(Event::Init), Ok(Event::InitDone)])
                .chain(futures::stream::pending())
                .boxed()
        };
        let covers = self.snapshot();
        let state = Following {
            shards: self.clone(),
            current: if covers.1.is_empty() { idle() } else { watch() },
            watch,
            covers,
            changes: self.changed().boxed(),
        };
        futures::stream::unfold(state, move |mut st| async move {
            loop {
                tokio::select! {
                    biased;
                    Some(()) = st.changes.next() => {
                        // Shards are taken one by one in a look: list once they have settled.
                        tokio::time::sleep(SETTLE).await;
                        let now = st.shards.snapshot();
                        if now.0 == st.covers.0 {
                            continue;
                        }
                        st.covers = now;
                        st.current = if st.covers.1.is_empty() {
                            idle()
                        } else {
                            (st.watch)()
                        };
                        tracing::debug!(shards = ?st.covers.1, "shards changed; listing again");
                    }
                    item = st.current.next() => {
                        let item = item?;
                        let covered = |o: &K| {
                            let ns = o.meta().namespace.as_deref().unwrap_or("");
                            st.covers.1.contains(&st.shards.of(ns))
                        };
                        match &item {
                            Ok(Event::Apply(o) | Event::InitApply(o)) if !covered(o) => continue,
                            Ok(Event::InitDone) => st.shards.mark_listed(st.covers.0, &st.covers.1),
                            _ => {}
                        }
                        return Some((item, st));
                    }
                }
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fixed_and_spreads_namespaces() {
        // Part of the protocol between replicas: these values must never change.
        assert_eq!(shard_of(1, "anything"), 0);
        assert_eq!(shard_of(7, ""), (0xcbf2_9ce4_8422_2325u64 % 7) as u32);
        let mut counts = [0usize; 4];
        for i in 0..1000 {
            counts[shard_of(4, &format!("team-{i}")) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (200..300).contains(&c)),
            "{counts:?}"
        );
    }

    #[tokio::test]
    async fn a_shard_is_given_up_only_after_its_syncs_are_done() {
        let shards = Shards::new(2);
        let ns = (0..)
            .map(|i| format!("ns-{i}"))
            .find(|ns| shards.of(ns) == 1)
            .expect("some namespace is in shard 1");
        assert!(shards.enter(&ns).is_none(), "not held yet");
        let mut changed = Box::pin(shards.changed());
        shards.take(1);
        assert_eq!(
            tokio::time::timeout(std::time::Duration::from_secs(1), changed.next()).await,
            Ok(Some(()))
        );
        assert_eq!(shards.held(), vec![1]);
        let guard = shards.enter(&ns).expect("held");
        let giving_up = tokio::spawn({
            let shards = shards.clone();
            async move { shards.give_up(1).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!giving_up.is_finished(), "a sync is still in flight");
        assert!(shards.enter(&ns).is_none(), "no new sync once giving up");
        drop(guard);
        tokio::time::timeout(std::time::Duration::from_secs(1), giving_up)
            .await
            .expect("given up once the sync ended")
            .expect("the task ended");
        assert!(shards.held().is_empty());
    }

    /// The next event of a watch, in short: `init`, an object's namespace, `done`.
    async fn next(
        events: &mut BoxStream<
            'static,
            Result<Event<k8s_openapi::api::core::v1::ConfigMap>, watcher::Error>,
        >,
    ) -> String {
        match tokio::time::timeout(std::time::Duration::from_secs(5), events.next()).await {
            Ok(Some(Ok(Event::Init))) => "init".to_owned(),
            Ok(Some(Ok(Event::InitApply(o)))) => o.metadata.namespace.unwrap_or_default(),
            Ok(Some(Ok(Event::InitDone))) => "done".to_owned(),
            other => format!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_watch_lists_again_when_the_shards_change_and_passes_only_theirs() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let shards = Shards::new(2);
        let ns_in = |shard: u32| {
            (0..)
                .map(|i| format!("ns-{i}"))
                .find(|ns| shards.of(ns) == shard)
                .expect("a namespace in the shard")
        };
        let (a, b) = (ns_in(0), ns_in(1));
        let object = |ns: &str| ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some("cm".into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let lists = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listed = lists.clone();
        let (oa, ob) = (object(&a), object(&b));
        let mut events = shards.watch(move || {
            listed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            futures::stream::iter([
                Ok(Event::Init),
                Ok(Event::InitApply(oa.clone())),
                Ok(Event::InitApply(ob.clone())),
                Ok(Event::InitDone),
            ])
            .chain(futures::stream::pending())
        });
        // Nothing held: an empty list, without asking the API server.
        assert_eq!(next(&mut events).await, "init");
        assert_eq!(next(&mut events).await, "done");
        assert_eq!(lists.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Shard 0 taken: listed once, only its object passes; answerable once listed.
        shards.take(0);
        assert!(!shards.answers_for(0), "not listed yet");
        assert_eq!(next(&mut events).await, "init");
        assert_eq!(next(&mut events).await, a);
        assert_eq!(next(&mut events).await, "done");
        assert!(shards.answers_for(0));
        // Handed over for shard 1: listed again, now only shard 1's object.
        shards.stop(0);
        shards.take(1);
        assert_eq!(next(&mut events).await, "init");
        assert_eq!(next(&mut events).await, b);
        assert_eq!(next(&mut events).await, "done");
        assert!(shards.answers_for(1) && !shards.answers_for(0));
        assert_eq!(
            lists.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "one list per settled change"
        );
    }

    #[test]
    fn unsharded_holds_everything() {
        let shards = Shards::all();
        assert!(!shards.is_sharded());
        assert!(shards.owns("") && shards.owns("any"));
    }
}
