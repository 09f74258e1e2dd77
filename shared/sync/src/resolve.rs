//! The resolve stage: which ExternalSecrets a normalized [`Change`] affects.
//!
//! An ExternalSecret is affected when one of the stores it reads through (its own
//! `secretStoreRef`, or a `sourceRef.storeRef` of a `data` or `dataFrom` entry) is at the change's
//! place, and it reads a changed key there: a `remoteRef.key` or `extract.key` naming it, or a
//! `find` that may select it. What "at the place" and "naming it" mean is the store's provider
//! kind's business ([`ProviderKind`]); this module only walks the ExternalSecret's reads. When in
//! doubt it is affected: an extra sync costs one provider read, a missed one leaves the Secret
//! stale until the next refresh.
//!
//! [`affects`] is the rule for one ExternalSecret; [`crate::index::ReadIndex`] applies it to the
//! few ExternalSecrets an index lookup finds, and [`scan`] to every cached one (the reference the
//! index is tested and measured against).

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use secret_sync_crd::provider::VaultKvVersion;
use secret_sync_crd::{
    ClusterSecretStore, ExternalSecret, ExternalSecretFind, SecretStore, SecretStoreRef,
    SecretStoreSpec, StoreKind,
};
use secret_sync_events::vault::KvVersion;
use secret_sync_events::webhook::{StoreKindName, StoreName};
use secret_sync_events::{Change, Place};
use secret_sync_providers::kind::{FindMatcher, NameMatcher, ProviderKind, kind, kind_of, trimmed};

use secret_sync_gosem::GoRegexp;

/// The stores, as cached, that ExternalSecrets refer to.
#[derive(Clone)]
pub struct StoreCaches {
    pub secret_stores: Store<SecretStore>,
    pub cluster_secret_stores: Store<ClusterSecretStore>,
}

/// A store as an ExternalSecret refers to it: kind, name, and for a SecretStore the
/// ExternalSecret's namespace (empty for a ClusterSecretStore).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreId {
    pub kind: StoreKind,
    pub name: String,
    pub namespace: String,
}

impl StoreId {
    /// The store `store` refers to from an object in `namespace`.
    pub fn of(namespace: &str, store: &SecretStoreRef) -> Self {
        let kind = store.kind();
        Self {
            kind,
            name: store.name.clone(),
            namespace: match kind {
                StoreKind::SecretStore => namespace.to_owned(),
                StoreKind::ClusterSecretStore => String::new(),
            },
        }
    }

    /// The store a webhook names.
    pub fn named(store: &StoreName) -> Self {
        Self {
            kind: match store.kind {
                StoreKindName::SecretStore => StoreKind::SecretStore,
                StoreKindName::ClusterSecretStore => StoreKind::ClusterSecretStore,
            },
            name: store.name.clone(),
            namespace: store.namespace.clone().unwrap_or_default(),
        }
    }
}

impl StoreCaches {
    /// `f` of the cached spec of a store.
    pub fn with_spec<T>(
        &self,
        store: &StoreId,
        f: impl FnOnce(&SecretStoreSpec) -> T,
    ) -> Option<T> {
        match store.kind {
            StoreKind::SecretStore => {
                let key = ObjectRef::<SecretStore>::new(&store.name).within(&store.namespace);
                Some(f(&self.secret_stores.get(&key)?.spec))
            }
            StoreKind::ClusterSecretStore => {
                let key = ObjectRef::<ClusterSecretStore>::new(&store.name);
                Some(f(&self.cluster_secret_stores.get(&key)?.spec))
            }
        }
    }

    /// Whether a cached store's `Ready` condition is `True`; `None` when it is not cached.
    pub fn is_ready(&self, store: &StoreId) -> Option<bool> {
        match store.kind {
            StoreKind::SecretStore => {
                let key = ObjectRef::<SecretStore>::new(&store.name).within(&store.namespace);
                Some(crate::stores::store_is_ready(
                    self.secret_stores.get(&key)?.as_ref(),
                ))
            }
            StoreKind::ClusterSecretStore => {
                let key = ObjectRef::<ClusterSecretStore>::new(&store.name);
                Some(crate::stores::store_is_ready(
                    self.cluster_secret_stores.get(&key)?.as_ref(),
                ))
            }
        }
    }

    /// Every cached store, with its id as a ClusterSecretStore or as a SecretStore in its
    /// namespace, for which `f` holds.
    pub fn stores_where(&self, f: impl Fn(&SecretStoreSpec) -> bool) -> Vec<StoreId> {
        let mut ids: Vec<StoreId> = self
            .secret_stores
            .state()
            .iter()
            .filter(|s| f(&s.spec))
            .map(|s| StoreId {
                kind: StoreKind::SecretStore,
                name: s.name_any(),
                namespace: s.namespace().unwrap_or_default(),
            })
            .collect();
        ids.extend(
            self.cluster_secret_stores
                .state()
                .iter()
                .filter(|s| f(&s.spec))
                .map(|s| StoreId {
                    kind: StoreKind::ClusterSecretStore,
                    name: s.name_any(),
                    namespace: String::new(),
                }),
        );
        ids
    }

    /// The KV version of `mount` in `namespace` according to the cached Vault stores: the
    /// mount table an audit stream is read with.
    pub fn vault_kv_version(&self, namespace: Option<&str>, mount: &str) -> Option<KvVersion> {
        let version_of = |spec: &SecretStoreSpec| {
            let vault = spec.provider.vault_settings()?;
            let store_namespace = vault
                .namespace
                .as_deref()
                .map(|n| n.trim_matches('/'))
                .filter(|n| !n.is_empty());
            (secret_sync_providers::vault::mount(&vault) == Some(mount)
                && store_namespace == namespace)
                .then_some(match vault.version {
                    VaultKvVersion::V1 => KvVersion::V1,
                    VaultKvVersion::V2 => KvVersion::V2,
                })
        };
        self.secret_stores
            .state()
            .iter()
            .find_map(|s| version_of(&s.spec))
            .or_else(|| {
                self.cluster_secret_stores
                    .state()
                    .iter()
                    .find_map(|s| version_of(&s.spec))
            })
    }
}

/// One thing an ExternalSecret reads through a store.
#[derive(Clone, Debug)]
pub enum Read {
    /// A `remoteRef.key` or `extract.key`, as written.
    Key(String),
    /// A `find`, compiled.
    Find(FindMatcher),
}

/// A `find` compiled once: its path, and its name pattern with Go's semantics (an invalid
/// pattern may select anything: the sync reports it).
pub fn find_matcher(find: &ExternalSecretFind) -> FindMatcher {
    let name = find
        .name
        .as_ref()
        .and_then(|n| n.regexp.as_deref())
        .and_then(|pattern| GoRegexp::new(pattern).ok())
        .map(|re| Arc::new(move |s: &str| re.is_match(s)) as NameMatcher);
    FindMatcher {
        path: find.path.clone(),
        name,
    }
}

/// Everything `es` reads, each with the store it reads it through: `data` keys, `dataFrom`
/// extracts and finds, through their `sourceRef` store or the ExternalSecret's own (generators
/// read no store).
pub fn reads(es: &ExternalSecret) -> Vec<(StoreId, Read)> {
    let namespace = es.namespace().unwrap_or_default();
    let default_store = es.spec.secret_store_ref.as_ref();
    let mut reads = Vec::new();
    for data in &es.spec.data {
        let store = data
            .source_ref
            .as_ref()
            .and_then(|s| s.store_ref.as_ref())
            .or(default_store);
        if let Some(store) = store {
            reads.push((
                StoreId::of(&namespace, store),
                Read::Key(data.remote_ref.key.clone()),
            ));
        }
    }
    for from in &es.spec.data_from {
        let store = match &from.source_ref {
            Some(source) if source.generator_ref.is_some() => None,
            Some(source) => source.store_ref.as_ref().or(default_store),
            None => default_store,
        };
        let Some(store) = store else { continue };
        let id = StoreId::of(&namespace, store);
        if let Some(extract) = &from.extract {
            reads.push((id.clone(), Read::Key(extract.key.clone())));
        }
        if let Some(find) = &from.find {
            reads.push((id, Read::Find(find_matcher(find))));
        }
    }
    reads
}

/// A cached store of either kind.
#[derive(Clone)]
pub enum CachedStore {
    Namespaced(Arc<SecretStore>),
    Cluster(Arc<ClusterSecretStore>),
}

impl CachedStore {
    pub fn spec(&self) -> &SecretStoreSpec {
        match self {
            Self::Namespaced(s) => &s.spec,
            Self::Cluster(s) => &s.spec,
        }
    }
}

impl StoreCaches {
    /// The cached store `id` names.
    pub fn get(&self, id: &StoreId) -> Option<CachedStore> {
        match id.kind {
            StoreKind::SecretStore => {
                let key = ObjectRef::<SecretStore>::new(&id.name).within(&id.namespace);
                self.secret_stores.get(&key).map(CachedStore::Namespaced)
            }
            StoreKind::ClusterSecretStore => {
                let key = ObjectRef::<ClusterSecretStore>::new(&id.name);
                self.cluster_secret_stores
                    .get(&key)
                    .map(CachedStore::Cluster)
            }
        }
    }
}

/// A store that is at a change's place: the store the change names, or a cached store of the
/// change's kind whose location overlaps the change's.
#[derive(Clone)]
pub enum StoreAt {
    Named,
    Provider {
        store: CachedStore,
        kind: &'static dyn ProviderKind,
    },
}

/// Whether the store `id` is at `change`'s place; the first half of the rule for one read.
pub fn store_at(change: &Change, id: &StoreId, stores: &StoreCaches) -> Option<StoreAt> {
    match &change.place {
        Place::Store(named) => (*id == StoreId::named(named)).then_some(StoreAt::Named),
        Place::At(at) => {
            let store = stores.get(id)?;
            let provider = &store.spec().provider;
            let kind = kind_of(provider).filter(|k| k.id() == at.kind)?;
            kind.is_at(provider, at)
                .then_some(StoreAt::Provider { store, kind })
        }
    }
}

/// Whether `read`, through a store at the change's place, reads what changed; the second half.
pub fn read_affected_at(change: &Change, store: &StoreAt, read: &Read) -> bool {
    if change.keys.is_empty() {
        return true;
    }
    match store {
        StoreAt::Named => match read {
            Read::Key(key) => {
                let key = trimmed(key);
                change.keys.iter().any(|k| trimmed(k) == key)
            }
            Read::Find(find) => find_affected_at(change, store, find),
        },
        StoreAt::Provider {
            store: cached,
            kind,
        } => match read {
            Read::Key(key) => kind.reads(&cached.spec().provider, key, change),
            Read::Find(find) => find_affected_at(change, store, find),
        },
    }
}

/// [`read_affected_at`] for a `find`.
pub fn find_affected_at(change: &Change, store: &StoreAt, find: &FindMatcher) -> bool {
    if change.keys.is_empty() {
        return true;
    }
    match store {
        StoreAt::Named => change.keys.iter().any(|k| find.may_select_key(k)),
        StoreAt::Provider { store, kind } => {
            kind.find_may_select(&store.spec().provider, find, change)
        }
    }
}

/// Whether `read`, through `store`, is affected by `change`: the rule for one read.
pub fn read_affected(change: &Change, store: &StoreId, read: &Read, stores: &StoreCaches) -> bool {
    store_at(change, store, stores).is_some_and(|at| read_affected_at(change, &at, read))
}

/// Whether `change` affects `es`, given the stores it refers to.
pub fn affects(change: &Change, es: &ExternalSecret, stores: &StoreCaches) -> bool {
    reads(es)
        .iter()
        .any(|(store, read)| read_affected(change, store, read, stores))
}

/// The ExternalSecrets among `external_secrets` that `change` affects, by looking at each: the
/// reference [`crate::index::ReadIndex`] agrees with, at a cost that grows with the cache.
pub fn scan(
    change: &Change,
    external_secrets: &[Arc<ExternalSecret>],
    stores: &StoreCaches,
) -> Vec<Arc<ExternalSecret>> {
    external_secrets
        .iter()
        .filter(|es| affects(change, es, stores))
        .cloned()
        .collect()
}

/// The key prefixes of the cached stores at `change`'s place (AWS's `prefix`), each once.
pub fn key_prefixes(change: &Change, stores: &StoreCaches) -> Vec<String> {
    let (Place::At(at), Some(kind)) = (&change.place, change_kind(change)) else {
        return Vec::new();
    };
    let mut prefixes: Vec<String> = Vec::new();
    let mut note = |spec: &SecretStoreSpec| {
        if let Some(prefix) = kind.key_prefix(&spec.provider)
            && kind.is_at(&spec.provider, at)
            && !prefixes.iter().any(|p| p == prefix)
        {
            prefixes.push(prefix.to_owned());
        }
    };
    for store in stores.secret_stores.state() {
        note(&store.spec);
    }
    for store in stores.cluster_secret_stores.state() {
        note(&store.spec);
    }
    prefixes
}

/// The provider kind a change is for, when it names a place at a provider.
pub fn change_kind(change: &Change) -> Option<&'static dyn ProviderKind> {
    match &change.place {
        Place::At(at) => kind(at.kind),
        Place::Store(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher;
    use secret_sync_crd::provider::{AwsProvider, AwsServiceType};
    use secret_sync_crd::{
        ClusterSecretStoreSpec, ExternalSecretData, ExternalSecretDataFromRemoteRef,
        ExternalSecretDataRemoteRef, ExternalSecretSpec, FindName, SecretStoreProvider,
    };

    use secret_sync_events::aws::SecretChange;
    use secret_sync_events::vault::KvChange;

    fn change(name: &str, region: &str, account: &str) -> Change {
        sm_change(name, region, account).to_change()
    }

    fn affects_vault(
        c: &KvChange,
        server: Option<&str>,
        es: &ExternalSecret,
        stores: &StoreCaches,
    ) -> bool {
        affects(&c.to_change(server), es, stores)
    }

    fn reading_from_vault(
        server: &str,
        namespace: Option<&str>,
        all: &[Arc<ExternalSecret>],
        stores: &StoreCaches,
    ) -> Vec<Arc<ExternalSecret>> {
        let at = secret_sync_events::vault::location(
            Some(server),
            Some(namespace.unwrap_or_default()),
            None,
        );
        scan(&Change::everything_at(Place::At(at)), all, stores)
    }

    fn reading_from_vault_server(
        server: Option<&str>,
        all: &[Arc<ExternalSecret>],
        stores: &StoreCaches,
    ) -> Vec<Arc<ExternalSecret>> {
        let at = secret_sync_events::vault::location(server, None, None);
        scan(&Change::everything_at(Place::At(at)), all, stores)
    }

    fn affects_store_keys(store: &StoreName, keys: &[String], es: &ExternalSecret) -> bool {
        let stores = caches(vec![], vec![]);
        affects(
            &Change::new(Place::Store(store.clone()), keys.to_vec()),
            es,
            &stores,
        )
    }

    fn sm_change(name: &str, region: &str, account: &str) -> SecretChange {
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
        match secret_sync_events::aws::parse_event(event.to_string().as_bytes()) {
            Ok(secret_sync_events::aws::Parsed::Change(c)) => c,
            other => panic!("not a change: {other:?}"),
        }
    }

    fn aws_store(region: &str, role: Option<&str>) -> SecretStoreSpec {
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

    fn caches(
        stores: Vec<(&str, &str, SecretStoreSpec)>,
        cluster: Vec<(&str, SecretStoreSpec)>,
    ) -> StoreCaches {
        let mut ss = Writer::<SecretStore>::default();
        for (ns, name, spec) in stores {
            let mut s = SecretStore::new(name, spec);
            s.metadata.namespace = Some(ns.into());
            ss.apply_watcher_event(&watcher::Event::Apply(s));
        }
        let mut css = Writer::<ClusterSecretStore>::default();
        for (name, spec) in cluster {
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

    fn es(namespace: &str, store: SecretStoreRef, keys: &[&str]) -> ExternalSecret {
        let mut es = ExternalSecret::new(
            "app",
            ExternalSecretSpec {
                secret_store_ref: Some(store),
                data: keys
                    .iter()
                    .map(|k| ExternalSecretData {
                        secret_key: "k".into(),
                        remote_ref: ExternalSecretDataRemoteRef {
                            key: (*k).into(),
                            ..Default::default()
                        },
                        source_ref: None,
                    })
                    .collect(),
                ..ExternalSecretSpec::default()
            },
        );
        es.metadata.namespace = Some(namespace.into());
        es
    }

    fn store_ref(kind: StoreKind, name: &str) -> SecretStoreRef {
        SecretStoreRef {
            name: name.into(),
            kind: Some(kind),
        }
    }

    #[test]
    fn a_change_affects_the_external_secrets_reading_that_key_through_an_aws_store_in_its_region() {
        let stores = caches(
            vec![("team-a", "aws", aws_store("us-east-1", None))],
            vec![("eu", aws_store("eu-west-1", None))],
        );
        let c = change("prod/db", "us-east-1", "123456789012");
        let reader = es(
            "team-a",
            store_ref(StoreKind::SecretStore, "aws"),
            &["prod/db"],
        );
        assert!(affects(&c, &reader, &stores));
        let by_arn = es(
            "team-a",
            store_ref(StoreKind::SecretStore, "aws"),
            &["arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"],
        );
        assert!(affects(&c, &by_arn, &stores));
        let other_key = es(
            "team-a",
            store_ref(StoreKind::SecretStore, "aws"),
            &["prod/other"],
        );
        assert!(!affects(&c, &other_key, &stores));
        let other_region = es(
            "team-a",
            store_ref(StoreKind::ClusterSecretStore, "eu"),
            &["prod/db"],
        );
        assert!(!affects(&c, &other_region, &stores));
        let store_elsewhere = es(
            "team-b",
            store_ref(StoreKind::SecretStore, "aws"),
            &["prod/db"],
        );
        assert!(
            !affects(&c, &store_elsewhere, &stores),
            "team-b has no store named aws"
        );
    }

    #[test]
    fn a_store_whose_role_names_another_account_is_not_affected() {
        let stores = caches(
            vec![(
                "ns",
                "aws",
                aws_store("us-east-1", Some("arn:aws:iam::999999999999:role/reader")),
            )],
            vec![],
        );
        let reader = es("ns", store_ref(StoreKind::SecretStore, "aws"), &["prod/db"]);
        assert!(!affects(
            &change("prod/db", "us-east-1", "123456789012"),
            &reader,
            &stores
        ));
        assert!(affects(
            &change("prod/db", "us-east-1", "999999999999"),
            &reader,
            &stores
        ));
    }

    #[test]
    fn a_find_by_name_or_path_is_affected_by_the_secrets_it_could_select() {
        let stores = caches(vec![("ns", "aws", aws_store("us-east-1", None))], vec![]);
        let mut finder = es("ns", store_ref(StoreKind::SecretStore, "aws"), &[]);
        finder.spec.data_from = vec![ExternalSecretDataFromRemoteRef {
            find: Some(ExternalSecretFind {
                path: Some("prod/".into()),
                name: Some(FindName {
                    regexp: Some("^prod/d.*$".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }];
        assert!(affects(
            &change("prod/db", "us-east-1", "123456789012"),
            &finder,
            &stores
        ));
        assert!(!affects(
            &change("prod/api", "us-east-1", "123456789012"),
            &finder,
            &stores
        ));
        assert!(!affects(
            &change("dev/db", "us-east-1", "123456789012"),
            &finder,
            &stores
        ));
        assert!(!affects(
            &change("prod/db", "us-west-2", "123456789012"),
            &finder,
            &stores
        ));
    }

    #[test]
    fn affected_picks_exactly_the_readers() {
        let stores = caches(vec![("ns", "aws", aws_store("us-east-1", None))], vec![]);
        let all: Vec<Arc<ExternalSecret>> = (0..10)
            .map(|i| {
                let key = format!("key-{}", i % 3);
                let mut e = es("ns", store_ref(StoreKind::SecretStore, "aws"), &[&key]);
                e.metadata.name = Some(format!("es-{i}"));
                Arc::new(e)
            })
            .collect();
        let hit = scan(&change("key-1", "us-east-1", "123456789012"), &all, &stores);
        let names: Vec<String> = hit.iter().map(|e| e.name_any()).collect();
        assert_eq!(names, ["es-1", "es-4", "es-7"]);
    }

    fn vault_store(server: &str, path: &str, namespace: Option<&str>) -> SecretStoreSpec {
        SecretStoreSpec {
            provider: SecretStoreProvider {
                vault: Some(secret_sync_crd::provider::VaultProvider {
                    server: server.into(),
                    path: Some(path.into()),
                    version: VaultKvVersion::V2,
                    namespace: namespace.map(Into::into),
                    ..Default::default()
                }),
                ..SecretStoreProvider::default()
            },
            ..SecretStoreSpec::default()
        }
    }

    fn kv_change(mount: &str, key: &str, namespace: Option<&str>) -> KvChange {
        KvChange {
            mount: mount.into(),
            key: key.into(),
            kind: secret_sync_events::vault::KvChangeKind::Write,
            version: Some(KvVersion::V2),
            namespace: namespace.map(Into::into),
            time: None,
            request_id: None,
        }
    }

    #[test]
    fn a_vault_change_from_a_known_server_affects_only_stores_on_that_server() {
        let stores = caches(
            vec![],
            vec![
                ("a", vault_store("https://vault-a:8200/", "secret", None)),
                ("b", vault_store("https://vault-b:8200", "secret", None)),
            ],
        );
        let on_a = es(
            "ns",
            store_ref(StoreKind::ClusterSecretStore, "a"),
            &["prod/db"],
        );
        let on_b = es(
            "ns",
            store_ref(StoreKind::ClusterSecretStore, "b"),
            &["secret/data/prod/db"],
        );
        let c = kv_change("secret", "prod/db", None);
        assert!(affects_vault(
            &c,
            Some("https://vault-a:8200"),
            &on_a,
            &stores
        ));
        assert!(!affects_vault(
            &c,
            Some("https://vault-a:8200"),
            &on_b,
            &stores
        ));
        // An audit line does not say which server wrote it: both may be affected.
        assert!(affects_vault(&c, None, &on_a, &stores));
        assert!(affects_vault(&c, None, &on_b, &stores));
        let in_ns = kv_change("secret", "prod/db", Some("ns1"));
        assert!(
            !affects_vault(&in_ns, None, &on_a, &stores),
            "root-namespace store"
        );

        let all: Vec<_> = [on_a, on_b].into_iter().map(Arc::new).collect();
        let gap = reading_from_vault("https://vault-b:8200/", None, &all, &stores);
        assert_eq!(gap.len(), 1);
        assert_eq!(
            gap[0]
                .spec
                .secret_store_ref
                .as_ref()
                .map(|s| s.name.as_str()),
            Some("b")
        );
        assert!(reading_from_vault("https://vault-b:8200", Some("ns1"), &all, &stores).is_empty());
        assert_eq!(reading_from_vault_server(None, &all, &stores).len(), 2);
        assert_eq!(
            reading_from_vault_server(Some("https://vault-a:8200"), &all, &stores).len(),
            1
        );
    }

    #[test]
    fn a_named_store_change_affects_readers_of_its_keys_through_that_store_only() {
        let ss = StoreName {
            kind: StoreKindName::SecretStore,
            name: "vault".into(),
            namespace: Some("team-a".into()),
        };
        let reader = es(
            "team-a",
            store_ref(StoreKind::SecretStore, "vault"),
            &["/prod/db"],
        );
        let other_ns = es(
            "team-b",
            store_ref(StoreKind::SecretStore, "vault"),
            &["prod/db"],
        );
        let via_cluster = es(
            "team-a",
            store_ref(StoreKind::ClusterSecretStore, "vault"),
            &["prod/db"],
        );
        let keys = vec!["prod/db".to_owned()];
        assert!(affects_store_keys(&ss, &keys, &reader));
        assert!(!affects_store_keys(&ss, &keys, &other_ns));
        assert!(!affects_store_keys(&ss, &keys, &via_cluster));
        assert!(!affects_store_keys(&ss, &["prod/api".to_owned()], &reader));
        assert!(
            affects_store_keys(&ss, &[], &reader),
            "no keys: the whole store"
        );

        let css = StoreName {
            kind: StoreKindName::ClusterSecretStore,
            name: "vault".into(),
            namespace: None,
        };
        assert!(affects_store_keys(&css, &keys, &via_cluster));
        assert!(!affects_store_keys(&css, &keys, &reader));

        let mut finder = es("team-a", store_ref(StoreKind::SecretStore, "vault"), &[]);
        finder.spec.data_from = vec![ExternalSecretDataFromRemoteRef {
            find: Some(ExternalSecretFind {
                path: Some("prod".into()),
                name: Some(FindName {
                    regexp: Some("db$".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }];
        assert!(affects_store_keys(&ss, &keys, &finder));
        assert!(!affects_store_keys(&ss, &["prod/api".to_owned()], &finder));
        assert!(!affects_store_keys(&ss, &["dev/db".to_owned()], &finder));
    }
}
