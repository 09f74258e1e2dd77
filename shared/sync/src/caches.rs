//! The watch caches every entry point reads from, wired one way for the controller and the
//! Lambda: what a cached object keeps, and the ExternalSecret watch feeding the [`ReadIndex`].

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use secret_sync_crd::{ExternalSecret, PushSecret};

use crate::cached::CachedExternalSecret;
use crate::index::{PushIndex, ReadIndex, Reader};

/// The client-side-apply copy of a whole object. An ExternalSecret keeps it (ESO's metadata hash
/// covers every annotation); a cached Secret does not need it.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Cached PushSecrets keep no managedFields either.
pub fn trim_push_secret(ps: &mut PushSecret) {
    ps.metadata.managed_fields = None;
}

/// Cached Secrets keep only what the apply stage reads of their managedFields, compacted, and no
/// last-applied copy (with `kubectl apply`d Merge targets it doubles the object).
pub fn trim_secret(secret: &mut Secret) {
    crate::apply::compact_managed_fields(secret);
    if let Some(annotations) = secret.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// The ExternalSecret cache and the stream that fills it: `events` (a watch), each object in its
/// cached form ([`CachedExternalSecret`]), into a reflector store, then into `index`. The stream
/// must be polled for both to follow the cluster; an ExternalSecret is in the index only once it
/// is in the store.
pub fn external_secrets<S>(
    events: S,
    index: Arc<ReadIndex>,
) -> (
    Store<CachedExternalSecret>,
    impl Stream<Item = Result<watcher::Event<CachedExternalSecret>, watcher::Error>> + Send + 'static,
)
where
    S: Stream<Item = Result<watcher::Event<ExternalSecret>, watcher::Error>> + Send + 'static,
{
    let events = events.map_ok(|event| match event {
        watcher::Event::Apply(es) => watcher::Event::Apply(es.into()),
        watcher::Event::Delete(es) => watcher::Event::Delete(es.into()),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(es) => watcher::Event::InitApply(es.into()),
        watcher::Event::InitDone => watcher::Event::InitDone,
    });
    indexed(events, index, |_| {})
}

/// The PushSecret cache and the stream that fills it and the [`PushIndex`], as
/// [`external_secrets`].
pub fn push_secrets<S>(
    events: S,
    index: Arc<PushIndex>,
) -> (
    Store<PushSecret>,
    impl Stream<Item = Result<watcher::Event<PushSecret>, watcher::Error>> + Send + 'static,
)
where
    S: Stream<Item = Result<watcher::Event<PushSecret>, watcher::Error>> + Send + 'static,
{
    indexed(events, index, trim_push_secret)
}

fn indexed<R, S>(
    events: S,
    index: Arc<ReadIndex<R>>,
    trim: fn(&mut R),
) -> (
    Store<R>,
    impl Stream<Item = Result<watcher::Event<R>, watcher::Error>> + Send + 'static,
)
where
    R: Reader + std::fmt::Debug,
    S: Stream<Item = Result<watcher::Event<R>, watcher::Error>> + Send + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector(writer, events.modify(trim)).inspect_ok(move |event| index.apply(event));
    (store, stream)
}

/// The back-off of every watch and controller trigger stream: 100 ms doubling to at most 5 s,
/// back to 100 ms after 30 s without an error. kube's default (800 ms doubling to 30 s, reset
/// after 2 minutes), stacked on a controller's own trigger back-off, kept new ExternalSecrets
/// waiting 9 to 98 s after an apiserver restart that took 3 s; a watch re-established within
/// seconds costs the apiserver one list, which it serves from its watch cache.
pub fn watch_backoff() -> impl kube::runtime::utils::Backoff + 'static {
    kube::runtime::utils::ResetTimerBackoff::new(
        Doubling::new(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(5),
        ),
        std::time::Duration::from_secs(30),
    )
}

/// At most one desync (410 Gone) per this long is re-listed without a back-off.
const DESYNC_SPACING: std::time::Duration = std::time::Duration::from_secs(10);

/// A watch as every cache and controller here runs it: retried with [`watch_backoff`] after an
/// error, except after a desync. A desync (410 Gone: the resource version it resumes from has
/// been compacted, as after every apiserver restart) leaves the watcher about to list again;
/// backing off first would add up to 5 s (the back-off having grown while the apiserver was
/// away) before a list the apiserver is ready to serve. One desync per 10 s is let through at
/// once; a second within that is backed off like any error, so a desync that repeats cannot
/// loop.
pub fn recovering<T, S>(stream: S) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send,
    T: Send,
{
    let mut last_desync: Option<std::time::Instant> = None;
    stream
        .filter_map(move |item| {
            let pass = match &item {
                Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                    let now = std::time::Instant::now();
                    let first =
                        last_desync.is_none_or(|at| now.duration_since(at) > DESYNC_SPACING);
                    if first {
                        last_desync = Some(now);
                        tracing::debug!("watch desynced (410 Gone); listing again at once");
                    }
                    !first
                }
                _ => true,
            };
            std::future::ready(pass.then_some(item))
        })
        .backoff(watch_backoff())
}

/// [`recovering`] as a method.
pub trait Recovering<T: Send>: Stream<Item = Result<T, watcher::Error>> + Send + Sized {
    /// See [`recovering`].
    fn recovering(self) -> impl Stream<Item = Result<T, watcher::Error>> + Send {
        recovering(self)
    }
}

impl<T: Send, S: Stream<Item = Result<T, watcher::Error>> + Send> Recovering<T> for S {}

/// The trigger back-off of every controller here: none. Each watch feeding a controller has its
/// own ([`recovering`]); a controller's back-off applies to all its triggers merged, so one
/// failing watch (say, Secrets) would pause the others (ExternalSecrets, stores) with it.
pub fn no_trigger_backoff() -> impl kube::runtime::utils::Backoff + 'static {
    Doubling::new(std::time::Duration::ZERO, std::time::Duration::ZERO)
}

/// A delay doubling from `min` to at most `max`.
struct Doubling {
    min: std::time::Duration,
    max: std::time::Duration,
    next: std::time::Duration,
}

impl Doubling {
    fn new(min: std::time::Duration, max: std::time::Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }
}

impl Iterator for Doubling {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<std::time::Duration> {
        let now = self.next;
        self.next = (now * 2).min(self.max);
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for Doubling {
    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// How often a wait for a cache's first list looks again (see [`ready`]).
const READY_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Waits until `store` has its first full list. Use this, never `Store::wait_until_ready`
/// directly: kube's readiness (`DelayedInit`, one oneshot receiver) keeps the waker of the last
/// waiter only, so of several waiting at once (a controller's runner, a receiver, a sync) all but
/// one can sleep through the moment the list completes, for ever when nothing else wakes them.
/// This looks again every 100 ms until then.
pub async fn ready<K>(store: &Store<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(READY_POLL, store.wait_until_ready())
        .await
        .is_err()
    {}
}

/// Whether `store` has its first full list, without waiting. The poll may take the waker of a
/// task waiting at that moment; every wait of ours is [`ready`], which looks again, and every
/// controller's runner is woken by [`once_ready`].
pub fn is_ready<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    futures::FutureExt::now_or_never(store.wait_until_ready()).is_some()
}

/// A stream that yields once, when `store` has its first full list: for a controller's
/// `reconcile_all_on`. A controller's runner is held until its store is ready and, like every
/// waiter, may miss the moment (see [`ready`]); the reconcile of everything this triggers wakes it,
/// and re-queues whatever was dropped meanwhile.
pub fn once_ready<K>(store: Store<K>) -> impl Stream<Item = ()> + Send + 'static
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    futures::stream::once(async move { ready(&store).await })
}

/// The objects of a reflector's event stream, each handed over once the reflector's store shows
/// it: an applied object at once, the objects of a (re-)list all together at its end
/// (`InitDone`, when the store swaps them in). For a controller's trigger stream, instead of
/// kube's `applied_objects`, which hands a listed object over as soon as it is listed: the
/// controller skips a reconcile for an object its store does not have yet, so an object that a
/// re-list brings (created while the watch was being re-established, or a watch event lost) had
/// its reconcile dropped, until the next periodic resync. `store` is that reflector's store: a
/// list's objects are taken from it at its end, as the controller takes them.
pub fn settled_objects<K, S>(
    events: S,
    store: Store<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    events
        .scan(Vec::new(), move |listed: &mut Vec<ObjectRef<K>>, event| {
            let ready: Box<dyn Iterator<Item = Result<K, watcher::Error>> + Send> = match event {
                Ok(watcher::Event::Apply(obj)) => Box::new(std::iter::once(Ok(obj))),
                Ok(watcher::Event::Init) => {
                    listed.clear();
                    Box::new(std::iter::empty())
                }
                Ok(watcher::Event::InitApply(obj)) => {
                    listed.push(plain_ref(&obj));
                    Box::new(std::iter::empty())
                }
                // Taken from the store one at a time as the controller takes them: a list held
                // whole until its end would double the cache at that moment.
                Ok(watcher::Event::InitDone) => {
                    let store = store.clone();
                    Box::new(
                        std::mem::take(listed)
                            .into_iter()
                            .filter_map(move |at| store.get(&at))
                            .map(|obj| Ok(obj.as_ref().clone())),
                    )
                }
                Ok(watcher::Event::Delete(_)) => Box::new(std::iter::empty()),
                Err(e) => Box::new(std::iter::once(Err(e))),
            };
            futures::future::ready(Some(futures::stream::iter(ready)))
        })
        .flatten()
}

/// An object's reference without its resource version and uid.
fn plain_ref<K: kube::Resource<DynamicType = ()>>(obj: &K) -> ObjectRef<K> {
    let at = ObjectRef::new(obj.meta().name.as_deref().unwrap_or_default());
    match obj.meta().namespace.as_deref() {
        Some(namespace) => at.within(namespace),
        None => at,
    }
}

/// Follows a watch for the objects that leave it, and calls `gone` for each: on a delete event,
/// and at the end of a re-list for every object it no longer lists (deleted while the watch was
/// down, when no delete event comes); and `arrived` for every object it shows. For state kept
/// per object outside the caches (metric series, backoff counters), which must go with the
/// object. Pass it to `inspect_ok` on the watch's event stream.
pub fn departures<K>(
    mut arrived: impl FnMut(&ObjectRef<K>) + Send + 'static,
    mut gone: impl FnMut(&ObjectRef<K>) + Send + 'static,
) -> impl FnMut(&watcher::Event<K>) + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + 'static,
{
    let mut known: HashSet<ObjectRef<K>> = HashSet::new();
    let mut relisted: Option<HashSet<ObjectRef<K>>> = None;
    move |event| match event {
        watcher::Event::Apply(obj) => {
            let at = ObjectRef::from_obj(obj);
            arrived(&at);
            known.insert(at);
        }
        watcher::Event::Delete(obj) => {
            let at = ObjectRef::from_obj(obj);
            known.remove(&at);
            gone(&at);
        }
        watcher::Event::Init => relisted = Some(HashSet::new()),
        watcher::Event::InitApply(obj) => {
            let at = ObjectRef::from_obj(obj);
            if let Some(seen) = relisted.as_mut() {
                seen.insert(at.clone());
            }
            arrived(&at);
            known.insert(at);
        }
        watcher::Event::InitDone => {
            if let Some(seen) = relisted.take() {
                let left: Vec<ObjectRef<K>> = known.difference(&seen).cloned().collect();
                for at in left {
                    known.remove(&at);
                    gone(&at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use kube::runtime::watcher::Event;
    use secret_sync_crd::{ExternalSecret, ExternalSecretSpec};

    use super::*;

    fn es(name: &str) -> ExternalSecret {
        let mut es = ExternalSecret::new(name, ExternalSecretSpec::default());
        es.metadata.namespace = Some("ns".into());
        es
    }

    #[test]
    fn watches_back_off_from_100_ms_to_5_s_and_start_again_after_a_reset() {
        use kube::runtime::utils::Backoff;
        let mut backoff = Doubling::new(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(5),
        );
        let first: Vec<u128> = backoff.by_ref().take(8).map(|d| d.as_millis()).collect();
        assert_eq!(first, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next(), Some(std::time::Duration::from_millis(100)));
    }

    /// A desync relists at once; another within 10 s backs off like any error.
    #[tokio::test(start_paused = true)]
    async fn a_desync_relists_at_once_and_a_repeated_one_backs_off() {
        let gone = || {
            Err(watcher::Error::WatchError(
                kube::core::Status::failure("too old resource version", "Expired")
                    .with_code(410)
                    .boxed(),
            ))
        };
        let items: Vec<Result<u32, watcher::Error>> = vec![gone(), Ok(1), gone(), Ok(2)];
        let mut stream = std::pin::pin!(recovering(futures::stream::iter(items)));
        let start = tokio::time::Instant::now();
        assert_eq!(stream.next().await.and_then(Result::ok), Some(1));
        assert_eq!(start.elapsed(), std::time::Duration::ZERO);
        assert!(stream.next().await.is_some_and(|r| r.is_err()));
        assert_eq!(stream.next().await.and_then(Result::ok), Some(2));
        assert!(start.elapsed() >= std::time::Duration::from_millis(100));
    }

    /// kube's readiness wakes only the last of several waiters; each of ours sees it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_sees_the_cache_ready() {
        let (store, mut writer) = reflector::store::<ExternalSecret>();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { ready(&store).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!is_ready(&store));
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        for waiter in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(2), waiter)
                .await
                .expect("woken")
                .expect("waiter");
        }
        assert!(is_ready(&store));
    }

    #[tokio::test]
    async fn listed_objects_are_handed_over_when_the_list_is_done() {
        let events = futures::stream::iter([
            Ok(Event::Init),
            Ok(Event::InitApply(es("a"))),
            Ok(Event::InitApply(es("b"))),
            Ok(Event::InitDone),
            Ok(Event::Apply(es("c"))),
            Ok(Event::Delete(es("a"))),
            // A re-list: b again, d new; c is gone.
            Ok(Event::Init),
            Ok(Event::InitApply(es("b"))),
            Ok(Event::InitApply(es("d"))),
            Ok(Event::InitDone),
        ]);
        let (store, writer) = reflector::store();
        let names: Vec<String> = settled_objects(reflector(writer, events), store)
            .map(|o| o.expect("object").metadata.name.unwrap_or_default())
            .collect()
            .await;
        assert_eq!(names, ["a", "b", "c", "b", "d"]);
    }

    #[test]
    fn an_object_leaves_by_a_delete_or_by_missing_from_a_relist() {
        let left = Arc::new(Mutex::new(Vec::<String>::new()));
        let record = left.clone();
        let mut follow = departures(
            |_: &ObjectRef<ExternalSecret>| {},
            move |at: &ObjectRef<ExternalSecret>| {
                record.lock().expect("lock").push(at.name.clone());
            },
        );
        for event in [
            Event::Init,
            Event::InitApply(es("a")),
            Event::InitApply(es("b")),
            Event::InitDone,
            Event::Apply(es("c")),
            Event::Delete(es("a")),
        ] {
            follow(&event);
        }
        assert_eq!(*left.lock().expect("lock"), ["a"]);
        // The watch was down while b was deleted: the re-list no longer lists it.
        for event in [Event::Init, Event::InitApply(es("c")), Event::InitDone] {
            follow(&event);
        }
        assert_eq!(*left.lock().expect("lock"), ["a", "b"]);
    }
}
