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
    in_flight: usize,
}

/// This process's view of the shards it holds. See the module notes.
#[derive(Debug)]
pub struct Shards {
    count: u32,
    state: Mutex<Vec<Shard>>,
    drained: Notify,
    /// Bumped whenever a shard is taken or stopped.
    changed: watch::Sender<u64>,
}

/// A sync admitted by [`Shards::enter`]; its shard cannot be given up while it lives.
#[derive(Debug)]
pub struct ShardGuard {
    shards: Arc<Shards>,
    shard: u32,
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
        let shards = Self::new(1);
        shards.take(0);
        shards
    }

    /// `count` shards, none held yet.
    pub fn new(count: u32) -> Arc<Self> {
        let count = count.max(1);
        Arc::new(Self {
            count,
            state: Mutex::new((0..count).map(|_| Shard::default()).collect()),
            drained: Notify::new(),
            changed: watch::Sender::new(0),
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
        let taken = {
            let mut state = self.lock();
            match state.get_mut(shard as usize) {
                Some(slot) if !slot.held => {
                    slot.held = true;
                    true
                }
                _ => false,
            }
        };
        if taken {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Stops admitting `shard`'s syncs at once; those in flight go on ([`Shards::in_flight`]).
    pub fn stop(&self, shard: u32) {
        let stopped = match self.lock().get_mut(shard as usize) {
            Some(slot) if slot.held => {
                slot.held = false;
                true
            }
            _ => false,
        };
        if stopped {
            self.changed.send_modify(|n| *n += 1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

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

    #[test]
    fn unsharded_holds_everything() {
        let shards = Shards::all();
        assert!(!shards.is_sharded());
        assert!(shards.owns("") && shards.owns("any"));
    }
}
