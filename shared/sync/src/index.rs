//! The read index: from a changed key to the ExternalSecrets that read it, kept incrementally from
//! the ExternalSecret watch, so a change costs a few hash lookups instead of a scan of the cache.
//!
//! Every `remoteRef.key` and `extract.key` is indexed under each key it may stand for
//! ([`secret_sync_providers::kind::index_keys`]; store-independent, since an ExternalSecret may be
//! cached before its store), and every ExternalSecret under each store it reads through (for
//! changes that name a whole place or store, and for `find`s, whose patterns are compiled once
//! here). A lookup gathers candidates and keeps those [`resolve::read_affected`] accepts: the
//! index only narrows, the rule is the same one [`resolve::scan`] applies to every
//! ExternalSecret.
//!
//! The same index serves PushSecrets ([`PushIndex`]): what a PushSecret reads back is what it
//! pushed (its `status.syncedPushSecrets`), so a provider change at a pushed key finds the
//! PushSecrets to push again.
//!
//! It also files each object under the Kubernetes objects of its namespace it reads
//! ([`Source`]: an ExternalSecret's `templateFrom` ConfigMaps and Secrets, a PushSecret's source
//! Secret by name or labels), so a change to one of those finds its readers by a lookup too
//! ([`ReadIndex::source_readers`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use secret_sync_crd::{ExternalSecret, PushSecret, StoreKind};
use secret_sync_events::Change;
use secret_sync_providers::kind::index_keys;

use secret_sync_providers::kind::{FindMatcher, trimmed};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::cached::CachedExternalSecret;
use crate::resolve::{self, Read, StoreAt, StoreCaches, StoreId, change_kind};
use crate::stores::selector_matches;

/// A kind of Kubernetes object an ExternalSecret or a PushSecret reads from its namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKind {
    ConfigMap,
    Secret,
}

/// A Kubernetes object (or objects) an ExternalSecret or a PushSecret reads, in its namespace.
#[derive(Clone, Debug)]
pub enum Source {
    Named(SourceKind, String),
    Selected(SourceKind, LabelSelector),
}

/// An object that reads keys through stores: what the index files it under.
pub trait Reader: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static {
    fn reads(&self) -> Vec<(StoreId, Read)>;

    /// The Kubernetes objects of its namespace it reads.
    fn sources(&self) -> Vec<Source> {
        Vec::new()
    }

    /// Both: [`Reader::reads`] and [`Reader::sources`], for a type that works both out at once.
    fn readings(&self) -> (Vec<(StoreId, Read)>, Vec<Source>) {
        (self.reads(), self.sources())
    }
}

impl Reader for ExternalSecret {
    fn reads(&self) -> Vec<(StoreId, Read)> {
        resolve::reads(self)
    }

    /// The ConfigMaps and Secrets its template reads (`templateFrom`).
    fn sources(&self) -> Vec<Source> {
        let template_from = self
            .spec
            .target
            .template
            .iter()
            .flat_map(|t| &t.template_from);
        let mut sources = Vec::new();
        for from in template_from {
            if let Some(c) = &from.config_map {
                sources.push(Source::Named(SourceKind::ConfigMap, c.name.clone()));
            }
            if let Some(s) = &from.secret {
                sources.push(Source::Named(SourceKind::Secret, s.name.clone()));
            }
        }
        sources
    }
}

/// A PushSecret reads back what it pushed: each entry of `status.syncedPushSecrets`
/// (`<Kind>/<store>` → entries), at its `remoteKey`.
impl Reader for PushSecret {
    fn reads(&self) -> Vec<(StoreId, Read)> {
        let Some(status) = &self.status else {
            return Vec::new();
        };
        let namespace = self.namespace().unwrap_or_default();
        let mut reads = Vec::new();
        for (store, entries) in &status.synced_push_secrets {
            let Some((kind, name)) = store.split_once('/') else {
                continue;
            };
            let (kind, namespace) = match kind {
                "SecretStore" => (StoreKind::SecretStore, namespace.clone()),
                "ClusterSecretStore" => (StoreKind::ClusterSecretStore, String::new()),
                _ => continue,
            };
            let id = StoreId {
                kind,
                name: name.to_owned(),
                namespace,
            };
            for data in entries.values() {
                let key = Read::Key(data.match_.remote_ref.remote_key.clone());
                reads.push((id.clone(), key));
            }
        }
        reads
    }

    /// Its source Secret, by name or by labels.
    fn sources(&self) -> Vec<Source> {
        match self.spec.selector.secret.as_ref() {
            Some(s) => match (&s.name, &s.selector) {
                (Some(name), _) => vec![Source::Named(SourceKind::Secret, name.clone())],
                (None, Some(selector)) => {
                    vec![Source::Selected(SourceKind::Secret, selector.clone())]
                }
                (None, None) => Vec::new(),
            },
            None => Vec::new(),
        }
    }
}

/// What one object reads, as indexed (boxed slices: exactly as long as what they hold).
struct Indexed {
    reads: Box<[(StoreId, Read)]>,
    keys: Box<[String]>,
    /// Where it is filed by its sources: under `by_source` keys, and whether under `selecting`.
    sources: Box<[SourceAt]>,
    selects: bool,
}

/// One object's reference, shared by every map that files it (by key, by store, the entry),
/// not copied into each: with the boxed slices above, the index at 10,000 ExternalSecrets went
/// from 11.6 to 4.5 MiB (BENCHMARKS.md).
type Shared<R> = Arc<ObjectRef<R>>;

/// A source object: its kind, namespace and name.
type SourceAt = (SourceKind, String, String);

/// The objects choosing sources by labels, each with its selector.
type Selectors<R> = Vec<(Shared<R>, LabelSelector)>;

struct Inner<R: Reader> {
    /// Index key → the objects reading a key that may stand for it.
    by_key: HashMap<String, HashSet<Shared<R>>>,
    /// Store → the objects reading anything through it.
    by_store: HashMap<StoreId, HashSet<Shared<R>>>,
    /// Store → the `find`s through it, compiled, with their objects.
    finds: HashMap<StoreId, Vec<(Shared<R>, FindMatcher)>>,
    /// A source object → the objects reading it by name.
    by_source: HashMap<SourceAt, HashSet<Shared<R>>>,
    /// (kind, namespace) → the objects choosing sources of that kind there by labels.
    selecting: HashMap<(SourceKind, String), Selectors<R>>,
    entries: HashMap<Shared<R>, Indexed>,
    /// During a re-list: the objects seen so far; the others are gone at its end.
    relisting: Option<HashSet<ObjectRef<R>>>,
}

impl<R: Reader> Default for Inner<R> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            by_store: HashMap::new(),
            finds: HashMap::new(),
            by_source: HashMap::new(),
            selecting: HashMap::new(),
            entries: HashMap::new(),
            relisting: None,
        }
    }
}

/// An object's reference without its resource version and uid (which `from_obj` copies and
/// equality ignores): the index holds several per object, and at 10,000 objects those two
/// strings were a fifth of it.
fn plain_ref<R: Reader>(es: &R) -> ObjectRef<R> {
    ObjectRef::new(&es.name_any()).within(&es.namespace().unwrap_or_default())
}

/// Sorts references by namespace, then name: every lookup answers in this order.
fn in_stable_order<R: Reader>(hits: &mut [ObjectRef<R>]) {
    hits.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
}

fn remove_from<K: std::hash::Hash + Eq, R: Reader>(
    map: &mut HashMap<K, HashSet<Shared<R>>>,
    key: &K,
    es: &ObjectRef<R>,
) {
    if let Some(set) = map.get_mut(key) {
        set.remove(es);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

impl<R: Reader> Inner<R> {
    fn insert(&mut self, es: &R) {
        let at = Arc::new(plain_ref(es));
        self.remove(&at);
        // Two entries reading one key (two properties of it) are filed once.
        let (mut reads, read_sources) = es.readings();
        let mut filed = HashSet::new();
        reads.retain(|(store, read)| match read {
            Read::Key(key) => filed.insert((store.clone(), key.clone())),
            Read::Find(_) => true,
        });
        let mut keys: Vec<String> = Vec::new();
        for (store, read) in &reads {
            self.by_store
                .entry(store.clone())
                .or_default()
                .insert(at.clone());
            match read {
                Read::Key(key) => {
                    for k in index_keys(key) {
                        if !keys.contains(&k) {
                            keys.push(k);
                        }
                    }
                }
                Read::Find(find) => {
                    self.finds
                        .entry(store.clone())
                        .or_default()
                        .push((at.clone(), find.clone()));
                }
            }
        }
        for key in &keys {
            self.by_key
                .entry(key.clone())
                .or_default()
                .insert(at.clone());
        }
        let namespace = es.namespace().unwrap_or_default();
        let (mut sources, mut selects) = (Vec::new(), false);
        for source in read_sources {
            match source {
                Source::Named(kind, name) => {
                    let place = (kind, namespace.clone(), name);
                    self.by_source
                        .entry(place.clone())
                        .or_default()
                        .insert(at.clone());
                    sources.push(place);
                }
                Source::Selected(kind, selector) => {
                    self.selecting
                        .entry((kind, namespace.clone()))
                        .or_default()
                        .push((at.clone(), selector));
                    selects = true;
                }
            }
        }
        self.entries.insert(
            at,
            Indexed {
                reads: reads.into(),
                keys: keys.into(),
                sources: sources.into(),
                selects,
            },
        );
    }

    fn remove(&mut self, at: &ObjectRef<R>) {
        let Some(old) = self.entries.remove(at) else {
            return;
        };
        for key in old.keys.iter() {
            remove_from(&mut self.by_key, key, at);
        }
        for place in old.sources.iter() {
            remove_from(&mut self.by_source, place, at);
        }
        if old.selects {
            self.selecting.retain(|_, selectors| {
                selectors.retain(|(r, _)| **r != *at);
                !selectors.is_empty()
            });
        }
        for (store, read) in old.reads.iter() {
            remove_from(&mut self.by_store, store, at);
            if matches!(read, Read::Find(_))
                && let Some(finds) = self.finds.get_mut(store)
            {
                finds.retain(|(es, _)| **es != *at);
                if finds.is_empty() {
                    self.finds.remove(store);
                }
            }
        }
    }
}

/// See the module notes.
pub struct ReadIndex<R: Reader = CachedExternalSecret> {
    inner: RwLock<Inner<R>>,
}

/// The PushSecrets by what they pushed.
pub type PushIndex = ReadIndex<PushSecret>;

impl<R: Reader> Default for ReadIndex<R> {
    fn default() -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
        }
    }
}

impl<R: Reader> ReadIndex<R> {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<R>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<R>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Indexes `es` (again: what it read before is forgotten).
    pub fn insert(&self, es: &R) {
        self.write().insert(es);
    }

    /// Forgets `es`.
    pub fn remove(&self, es: &ObjectRef<R>) {
        self.write().remove(es);
    }

    /// Follows one event of the ExternalSecret watch. A re-list (`Init` … `InitDone`) keeps the
    /// index answering throughout and forgets, at its end, what it did not list.
    pub fn apply(&self, event: &watcher::Event<R>) {
        let mut inner = self.write();
        match event {
            watcher::Event::Apply(es) => inner.insert(es),
            watcher::Event::Delete(es) => inner.remove(&plain_ref(es)),
            watcher::Event::Init => inner.relisting = Some(HashSet::new()),
            watcher::Event::InitApply(es) => {
                inner.insert(es);
                if let Some(seen) = inner.relisting.as_mut() {
                    seen.insert(plain_ref(es));
                }
            }
            watcher::Event::InitDone => {
                if let Some(seen) = inner.relisting.take() {
                    let gone: Vec<ObjectRef<R>> = inner
                        .entries
                        .keys()
                        .filter(|at| !seen.contains(at.as_ref()))
                        .map(|at| (**at).clone())
                        .collect();
                    for at in gone {
                        inner.remove(&at);
                    }
                }
            }
        }
    }

    /// How many ExternalSecrets are indexed.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The objects reading the `kind` object `namespace`/`name` with `labels` (by its name, or
    /// by a label selector it matches), in a stable order.
    pub fn source_readers(
        &self,
        kind: SourceKind,
        namespace: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<ObjectRef<R>> {
        let inner = self.read();
        let place = (kind, namespace.to_owned(), name.to_owned());
        let mut hits: Vec<ObjectRef<R>> = inner
            .by_source
            .get(&place)
            .into_iter()
            .flatten()
            .map(|r| (**r).clone())
            .collect();
        if let Some(selectors) = inner.selecting.get(&(kind, namespace.to_owned())) {
            hits.extend(
                selectors
                    .iter()
                    .filter(|(_, selector)| selector_matches(selector, labels))
                    .map(|(r, _)| (**r).clone()),
            );
        }
        in_stable_order(&mut hits);
        hits.dedup();
        hits
    }

    /// The objects reading anything through `store`, in a stable order.
    pub fn store_readers(&self, store: &StoreId) -> Vec<ObjectRef<R>> {
        let mut hits: Vec<ObjectRef<R>> = self
            .read()
            .by_store
            .get(store)
            .into_iter()
            .flatten()
            .map(|r| (**r).clone())
            .collect();
        in_stable_order(&mut hits);
        hits
    }

    /// The ExternalSecrets (as `external_secrets` caches them) that `change` affects.
    pub fn affected(
        &self,
        change: &Change,
        stores: &StoreCaches,
        external_secrets: &Store<R>,
    ) -> Vec<Arc<R>> {
        self.affected_refs(change, stores)
            .into_iter()
            .filter_map(|at| external_secrets.get(&at))
            .collect()
    }

    /// The references of the ExternalSecrets `change` affects, in a stable order.
    pub fn affected_refs(&self, change: &Change, stores: &StoreCaches) -> Vec<ObjectRef<R>> {
        let inner = self.read();
        // Whether a store is at the change's place, decided once per store and change.
        let mut places: HashMap<StoreId, Option<StoreAt>> = HashMap::new();
        let mut hits: Vec<ObjectRef<R>> = Vec::new();
        let here = |store: &StoreId, places: &mut HashMap<StoreId, Option<StoreAt>>| {
            if !places.contains_key(store) {
                places.insert(store.clone(), resolve::store_at(change, store, stores));
            }
            places.get(store).cloned().flatten()
        };
        if change.keys.is_empty() {
            // Anything at the place changed: every reader through a store there.
            for (store, readers) in &inner.by_store {
                if here(store, &mut places).is_some() {
                    hits.extend(readers.iter().map(|r| (**r).clone()));
                }
            }
        } else {
            // Readers of a changed key, found by its spellings, checked by their keys.
            let mut lookups = match change_kind(change) {
                Some(kind) => kind.change_keys(change),
                None => change.keys.iter().map(|k| trimmed(k).to_owned()).collect(),
            };
            // Read through a store with a key prefix: indexed under the rest of the key.
            for prefix in resolve::key_prefixes(change, stores) {
                for key in change.keys.iter().flat_map(|k| [k.as_str(), trimmed(k)]) {
                    if let Some(rest) = key.strip_prefix(prefix.as_str()) {
                        let rest = trimmed(rest).to_owned();
                        if !lookups.contains(&rest) {
                            lookups.push(rest);
                        }
                    }
                }
            }
            for es in lookups.iter().filter_map(|k| inner.by_key.get(k)).flatten() {
                let Some(entry) = inner.entries.get(es) else {
                    continue;
                };
                let reads_it = entry.reads.iter().any(|(store, read)| {
                    matches!(read, Read::Key(_))
                        && here(store, &mut places)
                            .is_some_and(|at| resolve::read_affected_at(change, &at, read))
                });
                if reads_it {
                    hits.push((**es).clone());
                }
            }
            // `find`s through the stores at the place, by their compiled patterns.
            // Each store is visited once here: no memo.
            for (store, finds) in &inner.finds {
                let Some(at) = resolve::store_at(change, store, stores) else {
                    continue;
                };
                for (es, find) in finds {
                    if resolve::find_affected_at(change, &at, find) {
                        hits.push((**es).clone());
                    }
                }
            }
        }
        in_stable_order(&mut hits);
        hits.dedup();
        hits
    }
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt;
    use kube::runtime::reflector::store::Writer;
    use secret_sync_crd::provider::{AwsProvider, AwsServiceType, VaultKvVersion, VaultProvider};
    use secret_sync_crd::{
        ClusterSecretStore, ClusterSecretStoreSpec, ExternalSecretData,
        ExternalSecretDataFromRemoteRef, ExternalSecretDataRemoteRef, ExternalSecretFind,
        ExternalSecretSpec, FindName, SecretStore, SecretStoreProvider, SecretStoreRef,
        SecretStoreSpec, StoreKind,
    };
    use secret_sync_events::Place;
    use secret_sync_events::webhook::{StoreKindName, StoreName};

    use super::*;

    type EsRef = ObjectRef<ExternalSecret>;

    fn aws(region: &str, role: Option<&str>) -> SecretStoreSpec {
        SecretStoreSpec {
            provider: SecretStoreProvider {
                aws: Some(AwsProvider {
                    service: AwsServiceType::SecretsManager,
                    region: region.into(),
                    role: role.map(Into::into),
                    ..AwsProvider::default()
                }),
                ..SecretStoreProvider::default()
            },
            ..SecretStoreSpec::default()
        }
    }

    fn vault(server: &str, path: Option<&str>, version: VaultKvVersion) -> SecretStoreSpec {
        SecretStoreSpec {
            provider: SecretStoreProvider {
                vault: Some(VaultProvider {
                    server: server.into(),
                    path: path.map(Into::into),
                    version,
                    ..VaultProvider::default()
                }),
                ..SecretStoreProvider::default()
            },
            ..SecretStoreSpec::default()
        }
    }

    fn stores() -> StoreCaches {
        let mut ss = Writer::<SecretStore>::default();
        for (ns, name, spec) in [
            ("a", "aws", aws("us-east-1", None)),
            ("b", "aws", aws("us-west-2", None)),
            (
                "b",
                "vault",
                vault("http://vault-b:8200", None, VaultKvVersion::V1),
            ),
        ] {
            let mut s = SecretStore::new(name, spec);
            s.metadata.namespace = Some(ns.into());
            ss.apply_watcher_event(&watcher::Event::Apply(s));
        }
        let mut css = Writer::<ClusterSecretStore>::default();
        for (name, spec) in [
            (
                "aws-eu",
                aws("eu-west-1", Some("arn:aws:iam::999999999999:role/r")),
            ),
            (
                "vault",
                vault("http://vault-a:8200/", Some("secret"), VaultKvVersion::V2),
            ),
        ] {
            css.apply_watcher_event(&watcher::Event::Apply(ClusterSecretStore::new(
                name,
                ClusterSecretStoreSpec(spec),
            )));
        }
        StoreCaches {
            secret_stores: ss.as_reader(),
            cluster_secret_stores: css.as_reader(),
        }
    }

    const STORES: [(StoreKind, &str); 4] = [
        (StoreKind::SecretStore, "aws"),
        (StoreKind::ClusterSecretStore, "aws-eu"),
        (StoreKind::ClusterSecretStore, "vault"),
        (StoreKind::SecretStore, "vault"),
    ];
    const KEYS: [&str; 8] = [
        "prod/db",
        "/prod/db/",
        "prod/api",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
        "arn:aws:secretsmanager:eu-west-1:999999999999:secret:prod/api",
        "secret/prod/db",
        "secret/data/prod/api",
        "kv/prod/db",
    ];

    /// A varied, deterministic population: every store, key spelling and a few finds, in two
    /// namespaces.
    fn population() -> Vec<ExternalSecret> {
        (0..120)
            .map(|i| {
                let (kind, store) = STORES[i % STORES.len()];
                let key = KEYS[(i / 3) % KEYS.len()];
                let mut spec = ExternalSecretSpec {
                    secret_store_ref: Some(SecretStoreRef {
                        name: store.into(),
                        kind: Some(kind),
                    }),
                    data: vec![ExternalSecretData {
                        secret_key: "k".into(),
                        remote_ref: ExternalSecretDataRemoteRef {
                            key: key.into(),
                            ..Default::default()
                        },
                        source_ref: None,
                    }],
                    ..ExternalSecretSpec::default()
                };
                if i % 7 == 0 {
                    spec.data_from = vec![ExternalSecretDataFromRemoteRef {
                        find: Some(ExternalSecretFind {
                            path: (i % 2 == 0).then(|| "prod".into()),
                            name: Some(FindName {
                                regexp: Some(["db$", "^prod/a", "["][i % 3].into()),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }];
                }
                let mut es = ExternalSecret::new(&format!("es-{i}"), spec);
                es.metadata.namespace = Some(["a", "b"][i % 2].into());
                es
            })
            .collect()
    }

    fn sm(name: &str, region: &str, account: &str) -> Change {
        let event = serde_json::json!({
            "version": "0", "id": "e1", "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.secretsmanager", "account": account, "time": "2026-11-27T10:00:00Z",
            "region": region, "resources": [],
            "detail": {
                "eventVersion": "1.08", "eventSource": "secretsmanager.amazonaws.com",
                "eventName": "PutSecretValue", "awsRegion": region, "eventType": "AwsApiCall",
                "requestParameters": { "secretId": name }
            }
        });
        secret_sync_events::aws::parse_event(event.to_string().as_bytes())
            .ok()
            .and_then(|p| p.to_change().ok())
            .expect("a change")
    }

    fn vault_change(server: Option<&str>, mount: &str, key: &str) -> Change {
        Change::new(
            Place::At(secret_sync_events::vault::location(
                server,
                Some(""),
                Some(mount),
            )),
            vec![key.into()],
        )
    }

    fn changes() -> Vec<Change> {
        let named = |kind, name: &str, namespace: Option<&str>, keys: &[&str]| {
            Change::new(
                Place::Store(StoreName {
                    kind,
                    name: name.into(),
                    namespace: namespace.map(Into::into),
                }),
                keys.iter().map(|k| (*k).to_owned()).collect(),
            )
        };
        vec![
            sm("prod/db", "us-east-1", "123456789012"),
            sm("prod/api", "us-east-1", "123456789012"),
            sm(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
                "us-east-1",
                "123456789012",
            ),
            sm("prod/api", "eu-west-1", "999999999999"),
            sm("prod/api", "eu-west-1", "111111111111"),
            sm("prod/db", "us-west-2", "123456789012"),
            sm("nobody/reads", "us-east-1", "123456789012"),
            vault_change(Some("http://vault-a:8200"), "secret", "prod/db"),
            vault_change(None, "secret", "prod/api"),
            vault_change(Some("http://vault-b:8200"), "kv", "prod/db"),
            vault_change(None, "kv", "prod/db"),
            vault_change(Some("http://vault-c:8200"), "secret", "prod/db"),
            Change::everything_at(Place::At(secret_sync_events::vault::location(
                Some("http://vault-a:8200"),
                Some(""),
                None,
            ))),
            Change::everything_at(Place::At(secret_sync_events::vault::location(
                None, None, None,
            ))),
            named(StoreKindName::SecretStore, "aws", Some("a"), &["prod/db"]),
            named(StoreKindName::SecretStore, "aws", Some("b"), &[]),
            named(
                StoreKindName::ClusterSecretStore,
                "vault",
                None,
                &["/secret/prod/db", "prod/x"],
            ),
        ]
    }

    fn refs(all: &[Arc<ExternalSecret>]) -> Vec<EsRef> {
        let mut refs: Vec<EsRef> = all
            .iter()
            .map(|es| ObjectRef::from_obj(es.as_ref()))
            .collect();
        refs.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        refs
    }

    /// The controller indexes ExternalSecrets in their cached form: it must find the same.
    #[test]
    fn the_cached_form_is_indexed_as_the_whole_object() {
        let stores = stores();
        let typed = ReadIndex::<ExternalSecret>::new();
        let cached = ReadIndex::<CachedExternalSecret>::new();
        for es in population() {
            typed.insert(&es);
            cached.insert(&CachedExternalSecret::new(es));
        }
        fn names<K: Reader>(refs: Vec<ObjectRef<K>>) -> Vec<(Option<String>, String)> {
            refs.into_iter().map(|r| (r.namespace, r.name)).collect()
        }
        let mut hits = 0;
        for change in changes() {
            let want = names(typed.affected_refs(&change, &stores));
            hits += want.len();
            assert_eq!(
                names(cached.affected_refs(&change, &stores)),
                want,
                "{change:?}"
            );
        }
        assert!(hits > 100, "the changes hit something: {hits}");
    }

    #[test]
    fn a_store_finds_the_objects_reading_through_it() {
        let all: Vec<Arc<ExternalSecret>> = population().into_iter().map(Arc::new).collect();
        let index = ReadIndex::<ExternalSecret>::new();
        for es in &all {
            index.insert(es);
        }
        let mut found = 0;
        let ids: HashSet<StoreId> = all
            .iter()
            .flat_map(|es| es.reads())
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            let want: Vec<EsRef> = refs(
                &all.iter()
                    .filter(|es| es.reads().iter().any(|(store, _)| *store == id))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            assert!(!want.is_empty());
            found += want.len();
            assert_eq!(index.store_readers(&id), want, "{id:?}");
        }
        assert!(found > 10, "{found}");
        let nobody = StoreId {
            kind: StoreKind::SecretStore,
            name: "nobody".into(),
            namespace: "a".into(),
        };
        assert!(index.store_readers(&nobody).is_empty());
    }

    #[test]
    fn the_index_finds_exactly_what_a_scan_of_every_external_secret_finds() {
        let stores = stores();
        let all: Vec<Arc<ExternalSecret>> = population().into_iter().map(Arc::new).collect();
        let index = ReadIndex::<ExternalSecret>::new();
        for es in &all {
            index.insert(es);
        }
        let mut hits = 0;
        for change in changes() {
            let scanned = refs(&resolve::scan(&change, &all, &stores));
            assert_eq!(index.affected_refs(&change, &stores), scanned, "{change:?}");
            hits += scanned.len();
        }
        assert!(hits > 100, "the changes hit something: {hits}");
        assert!(
            changes()
                .iter()
                .any(|c| resolve::scan(c, &all, &stores).is_empty()),
            "and some hit nothing"
        );
    }

    #[test]
    fn an_edited_external_secret_is_found_by_what_it_reads_now_and_a_relist_forgets_the_deleted() {
        let stores = stores();
        let index = ReadIndex::<ExternalSecret>::new();
        let mut population = population();
        for es in &population {
            index.apply(&watcher::Event::Apply(es.clone()));
        }
        let db = sm("prod/db", "us-east-1", "123456789012");
        let before = index.affected_refs(&db, &stores);
        assert!(!before.is_empty());
        // Every reader of prod/db switches to another key.
        for es in population.iter_mut() {
            for data in &mut es.spec.data {
                data.remote_ref.key = "elsewhere".into();
            }
            es.spec.data_from.clear();
            index.apply(&watcher::Event::Apply(es.clone()));
        }
        assert!(index.affected_refs(&db, &stores).is_empty());
        let elsewhere = sm("elsewhere", "us-east-1", "123456789012");
        let all: Vec<Arc<ExternalSecret>> = population.iter().cloned().map(Arc::new).collect();
        let now = index.affected_refs(&elsewhere, &stores);
        assert!(!now.is_empty());
        assert_eq!(now, refs(&resolve::scan(&elsewhere, &all, &stores)));
        // A relist that lists only the first ten.
        index.apply(&watcher::Event::Init);
        for es in population.iter().take(10) {
            index.apply(&watcher::Event::InitApply(es.clone()));
        }
        assert_eq!(
            index.len(),
            population.len(),
            "answers on during the relist"
        );
        index.apply(&watcher::Event::InitDone);
        assert_eq!(index.len(), 10);
        let kept: Vec<String> = index
            .affected_refs(&elsewhere, &stores)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert!(
            kept.iter()
                .all(|n| population.iter().take(10).any(|es| es.name_any() == *n))
        );
        index.apply(&watcher::Event::Delete(population[0].clone()));
        assert_eq!(index.len(), 9);
    }

    #[test]
    fn a_push_secret_is_found_by_the_keys_its_status_says_it_pushed() {
        let stores = stores();
        let push: PushSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": { "name": "push", "namespace": "a" },
            "spec": { "secretStoreRefs": [{ "name": "aws" }], "selector": { "secret": { "name": "s" } } },
            "status": { "syncedPushSecrets": {
                "SecretStore/aws": {
                    "prod/db": { "match": { "secretKey": "k", "remoteRef": { "remoteKey": "prod/db" } } }
                },
                "Bogus/entry": {
                    "prod/api": { "match": { "remoteRef": { "remoteKey": "prod/api" } } }
                }
            } }
        }))
        .expect("PushSecret");
        let index = PushIndex::new();
        // Before its first push it reads nothing.
        let mut fresh = push.clone();
        fresh.status = None;
        index.insert(&fresh);
        assert!(
            index
                .affected_refs(&sm("prod/db", "us-east-1", "123456789012"), &stores)
                .is_empty()
        );

        index.insert(&push);
        let at = ObjectRef::from_obj(&push);
        assert_eq!(
            index.affected_refs(&sm("prod/db", "us-east-1", "123456789012"), &stores),
            vec![at.clone()]
        );
        // Another key, another region, an entry of no known store kind: nothing.
        assert!(
            index
                .affected_refs(&sm("prod/api", "us-east-1", "123456789012"), &stores)
                .is_empty()
        );
        assert!(
            index
                .affected_refs(&sm("prod/db", "eu-west-1", "123456789012"), &stores)
                .is_empty()
        );
        index.remove(&at);
        assert!(index.is_empty());
    }

    #[test]
    fn a_key_read_through_a_store_with_a_prefix_is_found_by_the_prefixed_key_only() {
        let mut prefixed = aws("us-east-1", None);
        if let Some(a) = prefixed.provider.aws.as_mut() {
            a.prefix = Some("prod/".into());
        }
        let mut ss = Writer::<SecretStore>::default();
        let mut store = SecretStore::new("aws", prefixed);
        store.metadata.namespace = Some("p".into());
        ss.apply_watcher_event(&watcher::Event::Apply(store));
        let stores = StoreCaches {
            secret_stores: ss.as_reader(),
            cluster_secret_stores: Writer::<ClusterSecretStore>::default().as_reader(),
        };
        let mut es = ExternalSecret::new(
            "es",
            ExternalSecretSpec {
                secret_store_ref: Some(SecretStoreRef {
                    name: "aws".into(),
                    kind: Some(StoreKind::SecretStore),
                }),
                data: vec![ExternalSecretData {
                    secret_key: "k".into(),
                    remote_ref: ExternalSecretDataRemoteRef {
                        key: "db".into(),
                        ..Default::default()
                    },
                    ..Default::default()
                }],
                ..ExternalSecretSpec::default()
            },
        );
        es.metadata.namespace = Some("p".into());
        let index = ReadIndex::<ExternalSecret>::new();
        index.insert(&es);
        let all = vec![Arc::new(es.clone())];
        for (changed, hit) in [("prod/db", true), ("db", false), ("prod/dbx", false)] {
            let change = sm(changed, "us-east-1", "123456789012");
            let found = index.affected_refs(&change, &stores);
            assert_eq!(found.len(), usize::from(hit), "{changed}");
            assert_eq!(
                refs(&resolve::scan(&change, &all, &stores)),
                found,
                "{changed}"
            );
        }
    }

    #[test]
    fn sources_find_their_readers_by_name_or_by_labels_in_their_namespace_only() {
        let es: ExternalSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": { "name": "es", "namespace": "a" },
            "spec": { "target": { "template": { "templateFrom": [
                { "configMap": { "name": "tpl", "items": [{ "key": "k" }] } },
                { "secret": { "name": "extra", "items": [{ "key": "k" }] } }
            ] } } }
        }))
        .expect("ExternalSecret");
        let index = ReadIndex::<ExternalSecret>::new();
        index.insert(&es);
        let none = BTreeMap::new();
        let at = ObjectRef::from_obj(&es);
        assert_eq!(
            index.source_readers(SourceKind::ConfigMap, "a", "tpl", &none),
            vec![at.clone()]
        );
        assert_eq!(
            index.source_readers(SourceKind::Secret, "a", "extra", &none),
            vec![at.clone()]
        );
        assert!(
            index
                .source_readers(SourceKind::Secret, "a", "tpl", &none)
                .is_empty()
        );
        assert!(
            index
                .source_readers(SourceKind::ConfigMap, "b", "tpl", &none)
                .is_empty()
        );
        index.remove(&at);
        assert!(
            index
                .source_readers(SourceKind::ConfigMap, "a", "tpl", &none)
                .is_empty()
        );

        let push = |name: &str, secret: serde_json::Value| -> PushSecret {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
                "metadata": { "name": name, "namespace": "a" },
                "spec": { "secretStoreRefs": [{ "name": "aws" }], "selector": { "secret": secret } }
            }))
            .expect("PushSecret")
        };
        let by_name = push("by-name", serde_json::json!({ "name": "src" }));
        let by_labels = push(
            "by-labels",
            serde_json::json!({ "selector": { "matchLabels": { "team": "db" } } }),
        );
        let pushes = PushIndex::new();
        pushes.insert(&by_name);
        pushes.insert(&by_labels);
        let db: BTreeMap<String, String> = [("team".to_owned(), "db".to_owned())].into();
        assert_eq!(
            pushes.source_readers(SourceKind::Secret, "a", "src", &db),
            vec![
                ObjectRef::from_obj(&by_labels),
                ObjectRef::from_obj(&by_name)
            ]
        );
        assert_eq!(
            pushes.source_readers(SourceKind::Secret, "a", "src", &none),
            vec![ObjectRef::from_obj(&by_name)]
        );
        assert!(
            pushes
                .source_readers(SourceKind::Secret, "b", "other", &db)
                .is_empty()
        );
        // Edited to read by name: no longer chosen by labels.
        pushes.insert(&push("by-labels", serde_json::json!({ "name": "other" })));
        assert!(
            pushes
                .source_readers(SourceKind::Secret, "a", "x", &db)
                .is_empty()
        );
    }
}
