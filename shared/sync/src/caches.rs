//! The watch caches every entry point reads from, wired one way for the controller and the
//! Lambda: what a cached object keeps, and the ExternalSecret watch feeding the [`ReadIndex`].

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use secret_sync_crd::{ExternalSecret, PushSecret};

use crate::index::{PushIndex, ReadIndex, Reader};

/// The client-side-apply copy of a whole object. An ExternalSecret keeps it (ESO's metadata hash
/// covers every annotation); a cached Secret does not need it.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Cached ExternalSecrets keep no managedFields: the engine never reads them, and at 10,000
/// objects they are most of the cache.
pub fn trim_external_secret(es: &mut ExternalSecret) {
    es.metadata.managed_fields = None;
}

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

/// The ExternalSecret cache and the stream that fills it: `events` (a watch), trimmed, into a
/// reflector store, then into `index`. The stream must be polled for both to follow the
/// cluster; an ExternalSecret is in the index only once it is in the store.
pub fn external_secrets<S>(
    events: S,
    index: Arc<ReadIndex>,
) -> (
    Store<ExternalSecret>,
    impl Stream<Item = Result<watcher::Event<ExternalSecret>, watcher::Error>> + Send + 'static,
)
where
    S: Stream<Item = Result<watcher::Event<ExternalSecret>, watcher::Error>> + Send + 'static,
{
    indexed(events, index, trim_external_secret)
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
