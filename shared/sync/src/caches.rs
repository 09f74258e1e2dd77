//! The watch caches every entry point reads from, wired one way for the controller and the
//! Lambda: what a cached object keeps, and the ExternalSecret watch feeding the [`ReadIndex`].

use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, Store, reflector};
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
