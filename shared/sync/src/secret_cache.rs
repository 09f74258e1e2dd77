//! The cache of managed Secrets (labelled `reconcile.external-secrets.io/managed=true`), kept
//! small: one entry per Secret holding only what the engine reads, in boxed slices instead of
//! `k8s-openapi`'s maps (a `BTreeMap` node is about half a kilobyte however few its entries), and
//! indexed by owner label so that finding the Secrets an ExternalSecret created is a lookup, not
//! a scan of every Secret.
//!
//! At 10,000 Secrets kube-runtime's store of whole `Secret`s held 32 MiB (heaptrack, at the peak
//! of `bench-initial-sync`); this one keeps a fraction of that. Readers get a `Secret` rebuilt
//! from the entry, which is what the apply stage compares and patches against.
//!
//! Fed by the Secret watch ([`SecretCache::apply`]), which also reports departures: Secrets a
//! re-list no longer lists, deleted while the watch was down, with no delete event of their own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    FieldsV1, ManagedFieldsEntry, OwnerReference,
};
use kube::api::ObjectMeta;
use kube::runtime::watcher;
use secret_sync_crd::well_known::LABEL_OWNER;

type Pairs<V> = Box<[(Box<str>, V)]>;

/// A compacted managedFields entry: manager, operation, and its owned keys in one string.
type Managed = (Box<str>, Box<str>, Option<Box<str>>);

/// One Secret as the cache keeps it.
#[derive(Debug)]
struct Entry {
    namespace: Box<str>,
    name: Box<str>,
    uid: Option<Box<str>>,
    resource_version: Option<Box<str>>,
    labels: Pairs<Box<str>>,
    annotations: Pairs<Box<str>>,
    data: Pairs<Box<[u8]>>,
    type_: Option<Box<str>>,
    immutable: Option<bool>,
    owner_references: Box<[Owner]>,
    /// The managedFields entries [`crate::apply::compact_managed_fields`] keeps: manager,
    /// operation, and the owned keys in one string.
    managed_fields: Box<[Managed]>,
}

/// An owner reference, boxed.
#[derive(Debug)]
struct Owner {
    api_version: Box<str>,
    kind: Box<str>,
    name: Box<str>,
    uid: Box<str>,
    controller: Option<bool>,
    block_owner_deletion: Option<bool>,
}

impl Owner {
    fn of(o: OwnerReference) -> Self {
        Self {
            api_version: boxed(o.api_version),
            kind: boxed(o.kind),
            name: boxed(o.name),
            uid: boxed(o.uid),
            controller: o.controller,
            block_owner_deletion: o.block_owner_deletion,
        }
    }

    fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.to_string(),
            kind: self.kind.to_string(),
            name: self.name.to_string(),
            uid: self.uid.to_string(),
            controller: self.controller,
            block_owner_deletion: self.block_owner_deletion,
        }
    }
}

/// A compacted managedFields entry, boxed (its `fieldsV1` is a string after compaction).
fn managed(e: ManagedFieldsEntry) -> Managed {
    let fields = match e.fields_v1 {
        Some(FieldsV1(serde_json::Value::String(s))) => Some(boxed(s)),
        Some(FieldsV1(other)) => Some(boxed(other.to_string())),
        None => None,
    };
    (
        boxed(e.manager.unwrap_or_default()),
        boxed(e.operation.unwrap_or_default()),
        fields,
    )
}

fn unmanaged(
    (manager, operation, fields): &(Box<str>, Box<str>, Option<Box<str>>),
) -> ManagedFieldsEntry {
    ManagedFieldsEntry {
        manager: Some(manager.to_string()),
        operation: Some(operation.to_string()),
        fields_v1: fields
            .as_deref()
            .map(|f| FieldsV1(serde_json::Value::String(f.to_owned()))),
        ..ManagedFieldsEntry::default()
    }
}

fn boxed(s: String) -> Box<str> {
    s.into_boxed_str()
}

fn pairs(map: Option<BTreeMap<String, String>>) -> Pairs<Box<str>> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (boxed(k), boxed(v)))
        .collect()
}

fn unpairs(pairs: &[(Box<str>, Box<str>)]) -> Option<BTreeMap<String, String>> {
    (!pairs.is_empty()).then(|| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

impl Entry {
    /// What is kept of a (trimmed) Secret.
    fn of(secret: Secret) -> Self {
        let meta = secret.metadata;
        Self {
            namespace: boxed(meta.namespace.unwrap_or_default()),
            name: boxed(meta.name.unwrap_or_default()),
            uid: meta.uid.map(boxed),
            resource_version: meta.resource_version.map(boxed),
            labels: pairs(meta.labels),
            annotations: pairs(meta.annotations),
            data: secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (boxed(k), v.0.into_boxed_slice()))
                .collect(),
            type_: secret.type_.map(boxed),
            immutable: secret.immutable,
            owner_references: meta
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .map(Owner::of)
                .collect(),
            managed_fields: meta
                .managed_fields
                .unwrap_or_default()
                .into_iter()
                .map(managed)
                .collect(),
        }
    }

    /// The Secret again, as far as it was kept.
    fn secret(&self) -> Secret {
        Secret {
            metadata: ObjectMeta {
                namespace: Some(self.namespace.to_string()),
                name: Some(self.name.to_string()),
                uid: self.uid.as_deref().map(str::to_owned),
                resource_version: self.resource_version.as_deref().map(str::to_owned),
                labels: unpairs(&self.labels),
                annotations: unpairs(&self.annotations),
                owner_references: (!self.owner_references.is_empty())
                    .then(|| self.owner_references.iter().map(Owner::reference).collect()),
                managed_fields: (!self.managed_fields.is_empty())
                    .then(|| self.managed_fields.iter().map(unmanaged).collect()),
                ..ObjectMeta::default()
            },
            data: (!self.data.is_empty()).then(|| {
                self.data
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect()
            }),
            type_: self.type_.as_deref().map(str::to_owned),
            immutable: self.immutable,
            ..Secret::default()
        }
    }

    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| &**v)
    }
}

/// `namespace/name`: neither may contain a `/`.
fn key(namespace: &str, name: &str) -> Box<str> {
    format!("{namespace}/{name}").into_boxed_str()
}

#[derive(Default)]
struct Inner {
    secrets: HashMap<Box<str>, Arc<Entry>>,
    /// `namespace/owner hash` → names of the Secrets carrying that owner label (usually one).
    owned: HashMap<Box<str>, Vec<Box<str>>>,
    /// The keys a re-list in progress has listed.
    relisting: Option<HashSet<Box<str>>>,
}

impl Inner {
    fn insert(&mut self, entry: Entry) -> Box<str> {
        let at = key(&entry.namespace, &entry.name);
        self.remove(&at);
        if let Some(owner) = entry.label(LABEL_OWNER) {
            let names = self.owned.entry(key(&entry.namespace, owner)).or_default();
            names.push(entry.name.clone());
            names.sort();
        }
        self.secrets.insert(at.clone(), Arc::new(entry));
        at
    }

    fn remove(&mut self, at: &str) -> bool {
        let Some(old) = self.secrets.remove(at) else {
            return false;
        };
        if let Some(owner) = old.label(LABEL_OWNER) {
            let by = key(&old.namespace, owner);
            if let Some(names) = self.owned.get_mut(&by) {
                names.retain(|n| *n != old.name);
                if names.is_empty() {
                    self.owned.remove(&by);
                }
            }
        }
        true
    }
}

/// See the module notes. Cheap to share behind an `Arc`.
pub struct SecretCache {
    inner: RwLock<Inner>,
    listed: tokio::sync::watch::Sender<bool>,
}

impl Default for SecretCache {
    fn default() -> Self {
        Self {
            inner: RwLock::default(),
            listed: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl SecretCache {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows one event of the Secret watch (trimmed Secrets). Returns the Secrets that went
    /// away without a delete event, as (namespace, name): those a re-list did not list again.
    pub fn apply(&self, event: &watcher::Event<Secret>) -> Vec<(String, String)> {
        let mut inner = self.write();
        match event {
            watcher::Event::Apply(secret) => {
                inner.insert(Entry::of(secret.clone()));
            }
            watcher::Event::Delete(secret) => {
                let at = key(
                    secret.metadata.namespace.as_deref().unwrap_or_default(),
                    secret.metadata.name.as_deref().unwrap_or_default(),
                );
                inner.remove(&at);
            }
            watcher::Event::Init => inner.relisting = Some(HashSet::new()),
            watcher::Event::InitApply(secret) => {
                let at = inner.insert(Entry::of(secret.clone()));
                if let Some(listed) = inner.relisting.as_mut() {
                    listed.insert(at);
                }
            }
            watcher::Event::InitDone => {
                let listed = inner.relisting.take().unwrap_or_default();
                let gone: Vec<Box<str>> = inner
                    .secrets
                    .keys()
                    .filter(|k| !listed.contains(*k))
                    .cloned()
                    .collect();
                let mut departed = Vec::new();
                for at in gone {
                    if let Some(entry) = inner.secrets.get(&at).cloned()
                        && inner.remove(&at)
                    {
                        departed.push((entry.namespace.to_string(), entry.name.to_string()));
                    }
                }
                drop(inner);
                self.listed.send_replace(true);
                return departed;
            }
        }
        Vec::new()
    }

    /// Whether the first list is in.
    pub fn is_ready(&self) -> bool {
        *self.listed.borrow()
    }

    /// Waits for the first list.
    pub async fn ready(&self) {
        let mut listed = self.listed.subscribe();
        let _ = listed.wait_for(|listed| *listed).await;
    }

    /// The Secret `namespace/name`, if cached.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        let entry = self.read().secrets.get(&key(namespace, name)).cloned()?;
        Some(Arc::new(entry.secret()))
    }

    /// The Secrets in `namespace` labelled with the owner hash `owner`.
    pub fn created_by(&self, namespace: &str, owner: &str) -> Vec<Arc<Secret>> {
        let inner = self.read();
        let Some(names) = inner.owned.get(&key(namespace, owner)) else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|name| inner.secrets.get(&key(namespace, name)))
            .map(|entry| Arc::new(entry.secret()))
            .collect()
    }

    /// How many Secrets are cached.
    pub fn len(&self) -> usize {
        self.read().secrets.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, owner: Option<&str>, value: &[u8]) -> Secret {
        let mut labels = BTreeMap::from([("managed".to_owned(), "true".to_owned())]);
        if let Some(owner) = owner {
            labels.insert(LABEL_OWNER.to_owned(), owner.to_owned());
        }
        Secret {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                resource_version: Some("7".into()),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([("a".to_owned(), "b".to_owned())])),
                owner_references: Some(vec![OwnerReference {
                    name: "es".into(),
                    uid: "u".into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some("external-secrets-es".into()),
                    operation: Some("Apply".into()),
                    fields_v1: Some(FieldsV1(serde_json::Value::String("d:k".into()))),
                    ..ManagedFieldsEntry::default()
                }]),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                "k".to_owned(),
                ByteString(value.to_vec()),
            )])),
            type_: Some("Opaque".into()),
            immutable: Some(false),
            ..Secret::default()
        }
    }

    #[test]
    fn a_cached_secret_reads_back_as_it_was_kept() {
        let cache = SecretCache::default();
        let s = secret("a", Some("o1"), b"\xffv");
        cache.apply(&watcher::Event::Apply(s.clone()));
        assert_eq!(cache.get("ns", "a").as_deref(), Some(&s));
        assert!(cache.get("ns", "b").is_none());
        assert!(cache.get("other", "a").is_none());
    }

    #[test]
    fn owners_are_found_by_lookup_and_follow_changes() {
        let cache = SecretCache::default();
        cache.apply(&watcher::Event::Apply(secret("a", Some("o1"), b"1")));
        cache.apply(&watcher::Event::Apply(secret("b", Some("o1"), b"2")));
        cache.apply(&watcher::Event::Apply(secret("c", Some("o2"), b"3")));
        let names = |owner: &str| {
            cache
                .created_by("ns", owner)
                .iter()
                .map(|s| s.metadata.name.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("o1"), ["a", "b"]);
        // Relabelled, then deleted.
        cache.apply(&watcher::Event::Apply(secret("b", Some("o2"), b"2")));
        assert_eq!(names("o1"), ["a"]);
        assert_eq!(names("o2"), ["b", "c"]);
        cache.apply(&watcher::Event::Delete(secret("c", Some("o2"), b"3")));
        assert_eq!(names("o2"), ["b"]);
        assert!(cache.created_by("other", "o1").is_empty());
    }

    #[test]
    fn a_relist_reports_what_went_away_unannounced_and_makes_it_ready() {
        let cache = SecretCache::default();
        assert!(!cache.is_ready());
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(secret("a", None, b"1")));
        cache.apply(&watcher::Event::InitApply(secret("b", None, b"2")));
        assert!(cache.apply(&watcher::Event::InitDone).is_empty());
        assert!(cache.is_ready());
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(secret("b", None, b"2")));
        // Still answering during the re-list.
        assert!(cache.get("ns", "a").is_some());
        assert_eq!(
            cache.apply(&watcher::Event::InitDone),
            [("ns".to_owned(), "a".to_owned())]
        );
        assert!(cache.get("ns", "a").is_none());
        assert_eq!(cache.len(), 1);
    }
}
