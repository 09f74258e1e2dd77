//! The fetch stage: one provider call per unique (store, key, version) however many
//! ExternalSecrets read it, across concurrent syncs.
//!
//! Concurrent requests for the same value share one in-flight call (single flight). A finished
//! value is kept for a short reuse window, so a burst of syncs (a controller start, many
//! ExternalSecrets sharing keys) reads each key once. Freshness is explicit: every request says how
//! old a value it accepts (`fresh_after`); a sync caused by a provider change event accepts only
//! values fetched after the event, so an event is never answered from the cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use secret_sync_providers::{Find, ProviderError, RemoteRef, SecretBytes};

use crate::stores::{ResolvedStore, StoreIdentity};

/// A value, or the error fetching it; shared between every sync that asked for it.
pub type FetchResult<T> = Result<Arc<T>, Arc<ProviderError>>;

type ValueFuture = Shared<BoxFuture<'static, FetchResult<SecretBytes>>>;
type FindFuture = Shared<BoxFuture<'static, FetchResult<BTreeMap<String, SecretBytes>>>>;

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Value(StoreIdentity, RemoteRef),
    Find(StoreIdentity, FindKey),
}

/// A `Find`, hashable (its tags in order).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FindKey {
    path: Option<String>,
    name_regexp: Option<String>,
    tags: Vec<(String, String)>,
}

impl From<&Find> for FindKey {
    fn from(f: &Find) -> Self {
        Self {
            path: f.path.clone(),
            name_regexp: f.name_regexp.clone(),
            tags: f.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

enum Slot {
    Value(ValueFuture),
    Find(FindFuture),
}

struct Entry {
    slot: Slot,
    /// When the provider call started: the value is at least this fresh.
    started: Instant,
}

/// Counts of provider calls, for metrics and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FetchStats {
    pub calls: u64,
    pub shared: u64,
}

/// Deduplicating, single-flight access to providers.
pub struct Fetcher {
    reuse: Duration,
    observer: Arc<dyn crate::engine::Observer>,
    entries: Mutex<HashMap<Key, Entry>>,
    inserts: std::sync::atomic::AtomicU64,
    stats: Mutex<FetchStats>,
}

impl Fetcher {
    /// `reuse`: how long a fetched value may answer later requests that accept its age.
    pub fn new(reuse: Duration, observer: Arc<dyn crate::engine::Observer>) -> Self {
        Self {
            reuse,
            observer,
            entries: Mutex::new(HashMap::new()),
            inserts: std::sync::atomic::AtomicU64::new(1),
            stats: Mutex::new(FetchStats::default()),
        }
    }

    pub fn stats(&self) -> FetchStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The default freshness bound for a sync not caused by a provider event.
    pub fn default_fresh_after(&self) -> Instant {
        Instant::now()
            .checked_sub(self.reuse)
            .unwrap_or_else(Instant::now)
    }

    fn lookup_or_insert<F>(&self, key: Key, fresh_after: Instant, start: F) -> Slot
    where
        F: FnOnce() -> Slot,
    {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Sweep finished entries past the reuse window now and then, so values do not linger.
        let sweep = self
            .inserts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(256);
        if sweep || entries.len() > 4096 {
            let horizon = Instant::now()
                .checked_sub(self.reuse)
                .unwrap_or_else(Instant::now);
            entries.retain(|_, e| e.started >= horizon || !slot_done(&e.slot));
        }
        if let Some(entry) = entries.get(&key) {
            // A failure is shared only with requests that overlapped it, never reused later.
            if entry.started >= fresh_after && !slot_failed(&entry.slot) {
                self.stats.lock().unwrap_or_else(|e| e.into_inner()).shared += 1;
                return clone_slot(&entry.slot);
            }
        }
        let slot = start();
        let copy = clone_slot(&slot);
        entries.insert(
            key,
            Entry {
                slot,
                started: Instant::now(),
            },
        );
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).calls += 1;
        copy
    }

    /// The whole value of `remote` in `store`, fetched at or after `fresh_after`.
    pub async fn value(
        &self,
        store: &ResolvedStore,
        remote: &RemoteRef,
        fresh_after: Instant,
    ) -> FetchResult<SecretBytes> {
        let key = Key::Value(store.identity.clone(), remote.clone());
        let slot = self.lookup_or_insert(key, fresh_after, || {
            let provider = store.provider.clone();
            let remote = remote.clone();
            let observer = self.observer.clone();
            let fut: BoxFuture<'static, FetchResult<SecretBytes>> = async move {
                let result = provider.get(&remote).await;
                observer.provider_call(
                    provider.metric_name(),
                    provider.get_call_name(),
                    result.is_ok(),
                );
                result.map(Arc::new).map_err(Arc::new)
            }
            .boxed();
            Slot::Value(fut.shared())
        });
        match slot {
            Slot::Value(fut) => fut.await,
            Slot::Find(_) => unreachable_slot(),
        }
    }

    /// Name → value for `find` in `store`, fetched at or after `fresh_after`.
    pub async fn find(
        &self,
        store: &ResolvedStore,
        find: &Find,
        fresh_after: Instant,
    ) -> FetchResult<BTreeMap<String, SecretBytes>> {
        let key = Key::Find(store.identity.clone(), FindKey::from(find));
        let slot = self.lookup_or_insert(key, fresh_after, || {
            let provider = store.provider.clone();
            let find = find.clone();
            let observer = self.observer.clone();
            let fut: BoxFuture<'static, FetchResult<BTreeMap<String, SecretBytes>>> = async move {
                let result = provider.find(&find).await;
                observer.provider_call(
                    provider.metric_name(),
                    provider.find_call_name(),
                    result.is_ok(),
                );
                result.map(Arc::new).map_err(Arc::new)
            }
            .boxed();
            Slot::Find(fut.shared())
        });
        match slot {
            Slot::Find(fut) => fut.await,
            Slot::Value(_) => unreachable_find(),
        }
    }

    /// Forgets every value fetched from a store (its client failed to authenticate, or it changed).
    pub fn forget_store(&self, identity: &StoreIdentity) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| match k {
                Key::Value(id, _) | Key::Find(id, _) => id != identity,
            });
    }
}

fn clone_slot(slot: &Slot) -> Slot {
    match slot {
        Slot::Value(f) => Slot::Value(f.clone()),
        Slot::Find(f) => Slot::Find(f.clone()),
    }
}

fn slot_failed(slot: &Slot) -> bool {
    match slot {
        Slot::Value(f) => f.peek().is_some_and(Result::is_err),
        Slot::Find(f) => f.peek().is_some_and(Result::is_err),
    }
}

fn slot_done(slot: &Slot) -> bool {
    match slot {
        Slot::Value(f) => f.peek().is_some(),
        Slot::Find(f) => f.peek().is_some(),
    }
}

// A key's variant fixes its slot's variant; these arms cannot be reached.
fn unreachable_slot() -> FetchResult<SecretBytes> {
    Err(Arc::new(ProviderError::Config(
        "internal: value slot holds a find".into(),
    )))
}

fn unreachable_find() -> FetchResult<BTreeMap<String, SecretBytes>> {
    Err(Arc::new(ProviderError::Config(
        "internal: find slot holds a value".into(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use secret_sync_crd::StoreKind;
    use secret_sync_providers::{Provider, Validation};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Counts calls; answers after a short delay so concurrent requests overlap.
    struct Counting(AtomicU32);

    #[async_trait]
    impl Provider for Counting {
        async fn get(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(SecretBytes::from(format!("{}#{n}", remote.key)))
        }
        async fn find(&self, _: &Find) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(BTreeMap::new())
        }
        async fn validate(&self) -> Result<Validation, ProviderError> {
            Ok(Validation::Ready)
        }
        fn metric_name(&self) -> &'static str {
            "Counting"
        }
    }

    fn store(provider: Arc<Counting>) -> ResolvedStore {
        ResolvedStore {
            identity: StoreIdentity {
                kind: StoreKind::SecretStore,
                namespace: Some("ns".into()),
                name: "s".into(),
                uid: "u".into(),
                generation: 1,
                referent_namespace: None,
            },
            provider,
        }
    }

    #[tokio::test]
    async fn concurrent_requests_for_one_key_make_one_call() {
        let counting = Arc::new(Counting(AtomicU32::new(0)));
        let fetcher = Fetcher::new(Duration::from_secs(30), Arc::new(crate::engine::NoObserver));
        let store = store(counting.clone());
        let remote = RemoteRef::key("db");
        let fresh = fetcher.default_fresh_after();
        let results =
            futures::future::join_all((0..50).map(|_| fetcher.value(&store, &remote, fresh))).await;
        assert_eq!(counting.0.load(Ordering::SeqCst), 1);
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().map(|v| v.expose() == b"db#0").unwrap_or(false))
        );
        assert_eq!(
            fetcher.stats(),
            FetchStats {
                calls: 1,
                shared: 49
            }
        );
    }

    #[tokio::test]
    async fn a_request_that_needs_a_newer_value_fetches_again() {
        let counting = Arc::new(Counting(AtomicU32::new(0)));
        let fetcher = Fetcher::new(Duration::from_secs(30), Arc::new(crate::engine::NoObserver));
        let store = store(counting.clone());
        let remote = RemoteRef::key("db");
        let first = fetcher
            .value(&store, &remote, fetcher.default_fresh_after())
            .await
            .expect("first");
        let reused = fetcher
            .value(&store, &remote, fetcher.default_fresh_after())
            .await
            .expect("reused");
        assert_eq!(first.expose(), reused.expose());
        // A provider event at this instant: only a value fetched from now on will do.
        let event_time = Instant::now();
        let fresh = fetcher
            .value(&store, &remote, event_time)
            .await
            .expect("fresh");
        assert_eq!(fresh.expose(), b"db#1");
        assert_eq!(counting.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn different_versions_are_different_fetches() {
        let counting = Arc::new(Counting(AtomicU32::new(0)));
        let fetcher = Fetcher::new(Duration::from_secs(30), Arc::new(crate::engine::NoObserver));
        let store = store(counting.clone());
        let fresh = fetcher.default_fresh_after();
        let current = RemoteRef::key("db");
        let previous = RemoteRef {
            version: Some("AWSPREVIOUS".into()),
            ..RemoteRef::key("db")
        };
        let _ = fetcher.value(&store, &current, fresh).await;
        let _ = fetcher.value(&store, &previous, fresh).await;
        assert_eq!(counting.0.load(Ordering::SeqCst), 2);
    }
}
