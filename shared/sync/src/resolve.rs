//! The resolve stage for provider events: which ExternalSecrets a change in a provider affects.
//!
//! An ExternalSecret is affected when one of the stores it reads from (its own `secretStoreRef`,
//! or a `sourceRef.storeRef` of a `data` or `dataFrom` entry) is an AWS Secrets Manager store in
//! the change's region and account, and it reads the changed secret: a `remoteRef.key` or
//! `extract.key` naming it (by name, full ARN or ARN without its suffix), or a `find` whose
//! `name.regexp` or `path` could select it (a `find` by tags alone matches any secret of the
//! store: its tags may just have changed). When in doubt it is affected: an extra sync costs one
//! provider read, a missed one leaves the Secret stale until the next refresh.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use secret_sync_crd::provider::{AwsServiceType, VaultKvVersion, VaultProvider};
use secret_sync_crd::{
    ClusterSecretStore, ExternalSecret, ExternalSecretFind, SecretStore, SecretStoreRef,
    SecretStoreSpec, StoreKind,
};
use secret_sync_events::aws::{SecretChange, matches};
use secret_sync_events::vault::{KvChange, KvVersion};

use crate::render::goregex::GoRegexp;

/// The stores, as cached, that ExternalSecrets refer to.
#[derive(Clone)]
pub struct StoreCaches {
    pub secret_stores: Store<SecretStore>,
    pub cluster_secret_stores: Store<ClusterSecretStore>,
}

/// Where an AWS Secrets Manager store reads: its region, and its account when the store names
/// one (the account of `role`, else of the last `additionalRoles` entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsLocation {
    pub region: String,
    pub account: Option<String>,
}

fn account_of_role(arn: &str) -> Option<String> {
    // arn:aws:iam::123456789012:role/name
    let mut parts = arn.split(':');
    (parts.next()? == "arn").then_some(())?;
    let account = parts.nth(3)?;
    (!account.is_empty()).then(|| account.to_owned())
}

/// The AWS Secrets Manager location of a store, or `None` for any other provider.
pub fn aws_location(spec: &SecretStoreSpec) -> Option<AwsLocation> {
    let aws = spec.provider.aws.as_ref()?;
    if aws.service != AwsServiceType::SecretsManager {
        return None;
    }
    let account = aws
        .role
        .as_deref()
        .or(aws.additional_roles.last().map(String::as_str))
        .and_then(account_of_role);
    Some(AwsLocation {
        region: aws.region.clone(),
        account,
    })
}

impl StoreCaches {
    /// `f` of the spec of the store `store` refers to from an ExternalSecret in `es_namespace`.
    fn with_spec<T>(
        &self,
        es_namespace: &str,
        store: &SecretStoreRef,
        f: impl FnOnce(&SecretStoreSpec) -> Option<T>,
    ) -> Option<T> {
        match store.kind() {
            StoreKind::SecretStore => {
                let key = ObjectRef::<SecretStore>::new(&store.name).within(es_namespace);
                f(&self.secret_stores.get(&key)?.spec)
            }
            StoreKind::ClusterSecretStore => {
                let key = ObjectRef::<ClusterSecretStore>::new(&store.name);
                f(&self.cluster_secret_stores.get(&key)?.spec)
            }
        }
    }
}

/// One thing an ExternalSecret reads from a store.
#[derive(Clone, Copy)]
enum Read<'a> {
    Key(&'a str),
    Find(&'a ExternalSecretFind),
}

/// Everything `es` reads, each with the store it reads it through: `data` keys, `dataFrom`
/// extracts and finds, through their `sourceRef` store or the ExternalSecret's own (generators
/// read no store).
fn reads(es: &ExternalSecret) -> impl Iterator<Item = (&SecretStoreRef, Read<'_>)> {
    let default_store = es.spec.secret_store_ref.as_ref();
    let data = es.spec.data.iter().filter_map(move |data| {
        let store = data
            .source_ref
            .as_ref()
            .and_then(|s| s.store_ref.as_ref())
            .or(default_store)?;
        Some((store, Read::Key(&data.remote_ref.key)))
    });
    let data_from = es.spec.data_from.iter().flat_map(move |from| {
        let store = match &from.source_ref {
            Some(source) if source.generator_ref.is_some() => None,
            Some(source) => source.store_ref.as_ref().or(default_store),
            None => default_store,
        };
        let extract = from.extract.as_ref().map(|e| Read::Key(&e.key));
        let find = from.find.as_ref().map(Read::Find);
        store.into_iter().flat_map(move |store| {
            [extract, find]
                .into_iter()
                .flatten()
                .map(move |r| (store, r))
        })
    });
    data.chain(data_from)
}

/// The ExternalSecrets among `external_secrets` for which `affects` holds.
fn filtered(
    external_secrets: &[Arc<ExternalSecret>],
    affects: impl Fn(&ExternalSecret) -> bool,
) -> Vec<Arc<ExternalSecret>> {
    external_secrets
        .iter()
        .filter(|es| affects(es))
        .cloned()
        .collect()
}

/// What a `find` may select, as far as a change can tell.
fn find_may_select(find: &ExternalSecretFind, change: &SecretChange) -> bool {
    let names: Vec<&str> = change
        .secret
        .names()
        .iter()
        .map(String::as_str)
        .chain(
            change
                .secret
                .arns()
                .iter()
                .flat_map(|a| a.name_candidates()),
        )
        .collect();
    if names.is_empty() {
        return true;
    }
    let by_path = find
        .path
        .as_deref()
        .is_none_or(|p| names.iter().any(|n| n.starts_with(p)));
    let by_name = match find.name.as_ref().and_then(|n| n.regexp.as_deref()) {
        None => true,
        Some(pattern) => match GoRegexp::new(pattern) {
            Ok(re) => names.iter().any(|n| re.is_match(n)),
            // An invalid pattern fails the sync anyway; let it report that.
            Err(_) => true,
        },
    };
    by_path && by_name
}

/// Whether `change` affects `es`, given the stores it refers to.
pub fn affects(change: &SecretChange, es: &ExternalSecret, stores: &StoreCaches) -> bool {
    let namespace = es.namespace().unwrap_or_default();
    let in_location = |at: &AwsLocation| {
        change.region.as_deref().is_none_or(|r| r == at.region)
            && match (change.account.as_deref(), at.account.as_deref()) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    };
    reads(es).any(|(store, read)| {
        let Some(at) = stores.with_spec(&namespace, store, aws_location) else {
            return false;
        };
        match read {
            Read::Key(key) => matches(change, key, &at.region, at.account.as_deref()),
            Read::Find(find) => in_location(&at) && find_may_select(find, change),
        }
    })
}

/// The ExternalSecrets among `external_secrets` that `change` affects.
pub fn affected(
    change: &SecretChange,
    external_secrets: &[Arc<ExternalSecret>],
    stores: &StoreCaches,
) -> Vec<Arc<ExternalSecret>> {
    filtered(external_secrets, |es| affects(change, es, stores))
}

/// Where a Vault / OpenBao store reads: its server (without a trailing `/`), KV mount (when
/// `path` names one), version and namespace (slashes trimmed; `None` for the root namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultLocation {
    pub server: String,
    pub mount: Option<String>,
    pub version: VaultKvVersion,
    pub namespace: Option<String>,
}

/// The Vault location of a store, or `None` for any other provider.
pub fn vault_location(spec: &SecretStoreSpec) -> Option<VaultLocation> {
    spec.provider.vault.as_ref().map(VaultLocation::of)
}

impl VaultLocation {
    /// Where a Vault provider reads, its names in one spelling (no trailing `/` on the server,
    /// none around the mount or the namespace, an empty namespace as root).
    pub fn of(vault: &VaultProvider) -> Self {
        let mount = vault
            .path
            .as_deref()
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(|p| match vault.version {
                VaultKvVersion::V2 => p.strip_suffix("/data").unwrap_or(p).to_owned(),
                VaultKvVersion::V1 => p.to_owned(),
            });
        VaultLocation {
            server: vault.server.trim_end_matches('/').to_owned(),
            mount,
            version: vault.version,
            namespace: vault
                .namespace
                .as_deref()
                .map(|n| n.trim_matches('/').to_owned())
                .filter(|n| !n.is_empty()),
        }
    }
}

impl VaultLocation {
    /// The (mount, key) a `remoteRef.key` reads through this store, as the provider builds the
    /// path (`shared/providers/src/vault.rs`).
    fn mount_and_key<'a>(&'a self, key: &'a str) -> Option<(&'a str, &'a str)> {
        let key = key.trim_start_matches('/');
        match &self.mount {
            Some(mount) => {
                let stripped = key
                    .strip_prefix(mount.as_str())
                    .and_then(|r| r.strip_prefix('/'));
                let rest = match (stripped, self.version) {
                    (Some(r), VaultKvVersion::V2) => r.strip_prefix("data/").unwrap_or(r),
                    (Some(r), VaultKvVersion::V1) => r,
                    (None, _) => key,
                };
                Some((mount.as_str(), rest))
            }
            None => {
                let (mount, rest) = key.split_once('/')?;
                let rest = match self.version {
                    VaultKvVersion::V2 => rest.strip_prefix("data/").unwrap_or(rest),
                    VaultKvVersion::V1 => rest,
                };
                Some((mount, rest))
            }
        }
    }

    fn in_namespace(&self, change: &KvChange) -> bool {
        self.namespace.as_deref() == change.namespace.as_deref()
    }

    /// Whether this store talks to `server` (any server when `None`: an audit line does not say
    /// which server wrote it).
    fn on_server(&self, server: Option<&str>) -> bool {
        server.is_none_or(|s| s.trim_end_matches('/') == self.server)
    }
}

impl StoreCaches {
    /// The KV version of `mount` in `namespace` according to the cached Vault stores: the
    /// mount table an audit stream is read with.
    pub fn vault_kv_version(&self, namespace: Option<&str>, mount: &str) -> Option<KvVersion> {
        let version_of = |spec: &SecretStoreSpec| {
            let at = vault_location(spec)?;
            (at.mount.as_deref() == Some(mount) && at.namespace.as_deref() == namespace).then_some(
                match at.version {
                    VaultKvVersion::V1 => KvVersion::V1,
                    VaultKvVersion::V2 => KvVersion::V2,
                },
            )
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

/// Whether a Vault KV change affects `es`: a key it reads (through a Vault store in the
/// change's namespace, and on `server` when the change says which server it came from) is the
/// changed one, or a `find` under that mount may select it.
pub fn affects_vault(
    change: &KvChange,
    server: Option<&str>,
    es: &ExternalSecret,
    stores: &StoreCaches,
) -> bool {
    let namespace = es.namespace().unwrap_or_default();
    reads(es).any(|(store, read)| {
        let Some(at) = stores.with_spec(&namespace, store, vault_location) else {
            return false;
        };
        if !at.in_namespace(change) || !at.on_server(server) {
            return false;
        }
        match read {
            Read::Key(key) => at
                .mount_and_key(key)
                .is_some_and(|(m, k)| m == change.mount && k.trim_end_matches('/') == change.key),
            Read::Find(find) => {
                at.mount.as_deref().is_none_or(|m| m == change.mount)
                    && find_may_select_key(find, &change.key)
            }
        }
    })
}

/// The ExternalSecrets among `external_secrets` that a Vault KV change (from `server`, when
/// known) affects.
pub fn affected_by_vault(
    change: &KvChange,
    server: Option<&str>,
    external_secrets: &[Arc<ExternalSecret>],
    stores: &StoreCaches,
) -> Vec<Arc<ExternalSecret>> {
    filtered(external_secrets, |es| {
        affects_vault(change, server, es, stores)
    })
}

/// The ExternalSecrets among `external_secrets` that read anything through a Vault store on
/// `server` in `namespace` (slashes trimmed, `None` for root): what a gap in that server's
/// event stream may have left stale.
pub fn reading_from_vault(
    server: &str,
    namespace: Option<&str>,
    external_secrets: &[Arc<ExternalSecret>],
    stores: &StoreCaches,
) -> Vec<Arc<ExternalSecret>> {
    reading_from_vault_where(external_secrets, stores, |at| {
        at.on_server(Some(server)) && at.namespace.as_deref() == namespace
    })
}

/// The ExternalSecrets among `external_secrets` that read anything through a Vault store on
/// `server` (any server when `None`), in any namespace: what a gap in an audit stream may have
/// left stale.
pub fn reading_from_vault_server(
    server: Option<&str>,
    external_secrets: &[Arc<ExternalSecret>],
    stores: &StoreCaches,
) -> Vec<Arc<ExternalSecret>> {
    reading_from_vault_where(external_secrets, stores, |at| at.on_server(server))
}

fn reading_from_vault_where(
    external_secrets: &[Arc<ExternalSecret>],
    stores: &StoreCaches,
    at: impl Fn(&VaultLocation) -> bool,
) -> Vec<Arc<ExternalSecret>> {
    filtered(external_secrets, |es| {
        let es_namespace = es.namespace().unwrap_or_default();
        reads(es).any(|(store, _)| {
            stores
                .with_spec(&es_namespace, store, vault_location)
                .is_some_and(|location| at(&location))
        })
    })
}

/// A store named by a change notification (a signed webhook): kind, name and, for a
/// SecretStore, namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamedStore<'a> {
    pub kind: StoreKind,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
}

impl NamedStore<'_> {
    /// Whether `store`, referred to from an ExternalSecret in `es_namespace`, is this store.
    fn is(&self, es_namespace: &str, store: &SecretStoreRef) -> bool {
        store.kind() == self.kind
            && store.name == self.name
            && match self.kind {
                StoreKind::ClusterSecretStore => true,
                StoreKind::SecretStore => self.namespace == Some(es_namespace),
            }
    }
}

/// Whether a `find` may select `key` (a key of its store, as the store names it), judged by its
/// path and name pattern alone: a Vault change's key, a webhook's keys.
fn find_may_select_key(find: &ExternalSecretFind, key: &str) -> bool {
    let key = key.trim_matches('/');
    let by_path = find
        .path
        .as_deref()
        .is_none_or(|p| key.starts_with(p.trim_start_matches('/')));
    let by_name = match find.name.as_ref().and_then(|n| n.regexp.as_deref()) {
        None => true,
        // An invalid pattern fails the sync anyway; let it report that.
        Some(pattern) => GoRegexp::new(pattern).map_or(true, |re| re.is_match(key)),
    };
    by_path && by_name
}

/// Whether a change to `keys` of `store` affects `es`: it reads one of the keys through that
/// store (`remoteRef.key` or `extract.key`, compared as written, slashes at either end ignored),
/// or a `find` of that store may select one. No keys means the whole store changed.
pub fn affects_store_keys(store: &NamedStore<'_>, keys: &[String], es: &ExternalSecret) -> bool {
    let namespace = es.namespace().unwrap_or_default();
    reads(es).any(|(store_ref, read)| {
        if !store.is(&namespace, store_ref) {
            return false;
        }
        if keys.is_empty() {
            return true;
        }
        match read {
            Read::Key(key) => {
                let key = key.trim_matches('/');
                keys.iter().any(|k| k.trim_matches('/') == key)
            }
            Read::Find(find) => keys.iter().any(|k| find_may_select_key(find, k)),
        }
    })
}

/// The ExternalSecrets among `external_secrets` that a change to `keys` of `store` affects.
pub fn affected_by_store_keys(
    store: &NamedStore<'_>,
    keys: &[String],
    external_secrets: &[Arc<ExternalSecret>],
) -> Vec<Arc<ExternalSecret>> {
    filtered(external_secrets, |es| affects_store_keys(store, keys, es))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher;
    use secret_sync_crd::provider::AwsProvider;
    use secret_sync_crd::{
        ClusterSecretStoreSpec, ExternalSecretData, ExternalSecretDataFromRemoteRef,
        ExternalSecretDataRemoteRef, ExternalSecretSpec, FindName, SecretStoreProvider,
    };

    fn change(name: &str, region: &str, account: &str) -> SecretChange {
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
        let hit = affected(&change("key-1", "us-east-1", "123456789012"), &all, &stores);
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
        let ss = NamedStore {
            kind: StoreKind::SecretStore,
            name: "vault",
            namespace: Some("team-a"),
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

        let css = NamedStore {
            kind: StoreKind::ClusterSecretStore,
            name: "vault",
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
