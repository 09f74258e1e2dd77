//! Resolving the store an ExternalSecret names: which object it is, whether this controller
//! serves it, whether the ExternalSecret's namespace may use it, whether it is ready, and the
//! provider client for it (built once per store generation and reused).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use secret_sync_crd::well_known::condition::READY;
use secret_sync_crd::{
    ClusterSecretStoreCondition, ConditionStatus, GenericStore, SecretStoreProvider,
    SecretStoreSpec, StoreKind,
};
use secret_sync_gosem::GoRegexp;
use secret_sync_providers::{BuildOptions, Provider, ProviderError, Referents, StoreScope};

use crate::render::StoreRefKey;
use crate::view::ClusterView;

/// Why a store cannot be used. Messages follow ESO's wording where ESO has one.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not get {kind} {name:?}: not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name:?} is not ready")]
    NotReady { kind: &'static str, name: String },
    /// The store has not been validated yet (no Ready condition): a moment's wait, not a failure.
    #[error("{kind} {name:?} has not been validated yet")]
    NotValidatedYet { kind: &'static str, name: String },
    #[error(
        "using cluster store {name:?} is not allowed from namespace {namespace:?}: denied by spec.condition"
    )]
    NotAllowed { name: String, namespace: String },
    #[error("cluster store {name:?} has an invalid namespaceRegexes entry {regex:?}: {message}")]
    BadCondition {
        name: String,
        regex: String,
        message: String,
    },
    #[error("could not create a client for {kind} {name:?}: {source}")]
    Client {
        kind: &'static str,
        name: String,
        #[source]
        source: ProviderError,
    },
    #[error("reading {kind} {name:?} failed: {source}")]
    Api {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl StoreError {
    /// Whether the same ExternalSecret may succeed later without a change to it. A store that
    /// is missing or not ready usually appears (GitOps applies in any order); the controller also
    /// re-syncs waiting ExternalSecrets when their store becomes ready.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NotFound { .. }
            | Self::NotReady { .. }
            | Self::NotValidatedYet { .. }
            | Self::Api { .. } => true,
            Self::NotAllowed { .. } | Self::BadCondition { .. } => false,
            Self::Client { source, .. } => source.is_retryable(),
        }
    }
}

/// A store ready for use, with its client.
#[derive(Clone)]
pub struct ResolvedStore {
    pub identity: StoreIdentity,
    pub provider: Arc<dyn Provider>,
}

/// Identifies a provider client, and so the scope within which fetched values may be shared: the
/// store object at one generation, and, for a ClusterSecretStore whose credentials are read in the
/// using namespace (referent auth), that namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreIdentity {
    pub kind: StoreKind,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub generation: i64,
    pub referent_namespace: Option<String>,
}

/// The result of looking up a store.
pub enum Resolution {
    Ready(ResolvedStore),
    /// The store belongs to another controller class: ESO skips such ExternalSecrets silently.
    Unmanaged,
}

/// A client and when it was built.
type Built = (Arc<dyn Provider>, Instant);

/// Builds provider clients once per store identity and keeps them. A client older than `ttl` is
/// rebuilt on next use, so rotated credentials in a referenced Secret are picked up; a client that
/// failed to authenticate is dropped at once ([`Clients::invalidate`]).
pub struct Clients {
    referents: Arc<dyn Referents>,
    options: BuildOptions,
    ttl: Duration,
    cache: Mutex<HashMap<StoreIdentity, Built>>,
    /// One lock per store identity being built, so concurrent syncs of one store build it
    /// once while other stores build at the same time (a slow AWS build, probing STS or IMDS,
    /// must not hold up every other store's first sync).
    building: Mutex<HashMap<StoreIdentity, Arc<tokio::sync::Mutex<()>>>>,
}

impl Clients {
    pub fn new(referents: Arc<dyn Referents>, options: BuildOptions, ttl: Duration) -> Self {
        Self {
            referents,
            options,
            ttl,
            cache: Mutex::new(HashMap::new()),
            building: Mutex::new(HashMap::new()),
        }
    }

    /// How clients read credentials: generators read theirs the same way.
    pub fn referents(&self) -> Arc<dyn Referents> {
        self.referents.clone()
    }

    /// How clients are built.
    pub fn options(&self) -> &BuildOptions {
        &self.options
    }

    fn cached(&self, identity: &StoreIdentity) -> Option<Arc<dyn Provider>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(identity)
            .filter(|(_, built)| built.elapsed() < self.ttl)
            .map(|(p, _)| p.clone())
    }

    /// The client for a store, built now if needed.
    pub async fn get(
        &self,
        identity: &StoreIdentity,
        provider: &SecretStoreProvider,
        scope: &StoreScope,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        if let Some(client) = self.cached(identity) {
            return Ok(client);
        }
        let lock = self
            .building
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(identity.clone())
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        if let Some(client) = self.cached(identity) {
            return Ok(client);
        }
        let built =
            secret_sync_providers::build(provider, scope, self.referents.clone(), &self.options)
                .await;
        // Waiters still hold the lock's Arc; a later caller finds the cache (or builds anew).
        self.building
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(identity);
        let client = built?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Older generations of the same store are dead weight now.
        cache.retain(|k, _| {
            !(k.kind == identity.kind
                && k.namespace == identity.namespace
                && k.name == identity.name
                && k.generation < identity.generation)
        });
        cache.insert(identity.clone(), (client.clone(), Instant::now()));
        Ok(client)
    }

    /// Drops the client for a store (after an authentication failure, or when the store is deleted).
    pub fn invalidate(&self, identity: &StoreIdentity) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(identity);
    }

    /// Number of clients held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub use secret_sync_providers::uses_referent_auth;

/// Whether a ClusterSecretStore's `conditions` let `namespace` (with `labels`) use it. No
/// conditions means every namespace may. Conditions are ORed, as in ESO; `namespaceRegexes` are
/// Go patterns (ESO's `regexp.MatchString`), unanchored.
pub fn namespace_allowed(
    store_name: &str,
    conditions: &[ClusterSecretStoreCondition],
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<bool, StoreError> {
    if conditions.is_empty() {
        return Ok(true);
    }
    for condition in conditions {
        if condition.namespaces.iter().any(|n| n == namespace) {
            return Ok(true);
        }
        if let Some(selector) = &condition.namespace_selector
            && selector_matches(selector, labels)
        {
            return Ok(true);
        }
        for pattern in &condition.namespace_regexes {
            let re = GoRegexp::new(pattern).map_err(|e| StoreError::BadCondition {
                name: store_name.into(),
                regex: pattern.clone(),
                message: e.to_string(),
            })?;
            if re.is_match(namespace) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Kubernetes label-selector semantics. An invalid selector matches nothing.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    match kube::core::Selector::try_from(selector.clone()) {
        Ok(selector) => kube::core::SelectorExt::matches(&selector, labels),
        Err(_) => false,
    }
}

/// A store's `Ready` condition is `True` (ESO's flood gate: a store not yet validated, or failing,
/// is not used).
pub fn store_is_ready<S: GenericStore>(store: &S) -> bool {
    store
        .store_status()
        .and_then(|s| s.condition(READY))
        .is_some_and(|c| c.status == ConditionStatus::True)
}

/// Whether this controller serves a store: `spec.controller` unset or equal to our class.
pub fn serves(spec: &SecretStoreSpec, controller_class: &str) -> bool {
    spec.controller
        .as_deref()
        .is_none_or(|c| c.is_empty() || c == controller_class)
}

/// Settings of store resolution.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    pub controller_class: String,
    /// ESO's `--enable-flood-gate`: refuse stores that are not Ready.
    pub flood_gate: bool,
}

/// Looks up the store `reference` names for an ExternalSecret in `namespace`, checks it, and
/// returns its client. A SecretStore is only ever looked up in `namespace` itself, so a store in
/// namespace A is never usable from namespace B.
pub async fn resolve(
    view: &dyn ClusterView,
    clients: &Clients,
    settings: &StoreSettings,
    reference: &StoreRefKey,
    namespace: &str,
) -> Result<Resolution, StoreError> {
    match reference.kind {
        StoreKind::SecretStore => {
            let store = view
                .secret_store(namespace, &reference.name)
                .await
                .map_err(|source| StoreError::Api {
                    kind: "SecretStore",
                    name: reference.name.clone(),
                    source,
                })?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "SecretStore",
                    name: reference.name.clone(),
                })?;
            finish(clients, settings, store.as_ref(), namespace, false).await
        }
        StoreKind::ClusterSecretStore => {
            let store = view
                .cluster_secret_store(&reference.name)
                .await
                .map_err(|source| StoreError::Api {
                    kind: "ClusterSecretStore",
                    name: reference.name.clone(),
                    source,
                })?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "ClusterSecretStore",
                    name: reference.name.clone(),
                })?;
            if !store.spec.conditions.is_empty() {
                let ns = view
                    .namespace(namespace)
                    .await
                    .map_err(|source| StoreError::Api {
                        kind: "Namespace",
                        name: namespace.into(),
                        source,
                    })?;
                let labels = ns
                    .and_then(|n| n.metadata.labels.clone())
                    .unwrap_or_default();
                if !namespace_allowed(&reference.name, &store.spec.conditions, namespace, &labels)?
                {
                    return Err(StoreError::NotAllowed {
                        name: reference.name.clone(),
                        namespace: namespace.into(),
                    });
                }
            }
            let referent = uses_referent_auth(&store.spec.provider);
            finish(clients, settings, store.as_ref(), namespace, referent).await
        }
    }
}

async fn finish<S: GenericStore>(
    clients: &Clients,
    settings: &StoreSettings,
    store: &S,
    using_namespace: &str,
    referent: bool,
) -> Result<Resolution, StoreError> {
    let kind = S::STORE_KIND.as_str();
    let spec = store.store_spec();
    if !serves(spec, &settings.controller_class) {
        return Ok(Resolution::Unmanaged);
    }
    if settings.flood_gate && !store_is_ready(store) {
        let name = store.name_any();
        let validated = store
            .store_status()
            .and_then(|s| s.condition(READY))
            .is_some();
        return Err(if validated {
            StoreError::NotReady { kind, name }
        } else {
            StoreError::NotValidatedYet { kind, name }
        });
    }
    let identity = StoreIdentity {
        kind: S::STORE_KIND,
        namespace: store.namespace(),
        name: store.name_any(),
        uid: store.uid().unwrap_or_default(),
        generation: store.meta().generation.unwrap_or_default(),
        referent_namespace: referent.then(|| using_namespace.to_owned()),
    };
    let scope = StoreScope {
        kind: S::STORE_KIND,
        name: store.name_any(),
        namespace: store
            .namespace()
            .unwrap_or_else(|| using_namespace.to_owned()),
    };
    let provider = clients
        .get(&identity, &spec.provider, &scope)
        .await
        .map_err(|source| StoreError::Client {
            kind,
            name: store.name_any(),
            source,
        })?;
    Ok(Resolution::Ready(ResolvedStore { identity, provider }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_cluster_store_without_conditions_serves_every_namespace() {
        assert!(namespace_allowed("s", &[], "anything", &BTreeMap::new()).expect("valid"));
    }

    #[test]
    fn conditions_allow_by_name_selector_or_regex_and_deny_the_rest() {
        let conditions = vec![
            ClusterSecretStoreCondition {
                namespaces: vec!["team-a".into()],
                ..Default::default()
            },
            ClusterSecretStoreCondition {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(labels(&[("env", "prod")])),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ClusterSecretStoreCondition {
                namespace_regexes: vec!["^ci-[0-9]+$".into()],
                ..Default::default()
            },
        ];
        let allowed = |ns: &str, l: &[(&str, &str)]| {
            namespace_allowed("s", &conditions, ns, &labels(l)).expect("valid")
        };
        assert!(allowed("team-a", &[]));
        assert!(allowed("whatever", &[("env", "prod")]));
        assert!(allowed("ci-42", &[]));
        assert!(!allowed("team-b", &[("env", "dev")]));
        assert!(!allowed("ci-42x", &[]));
    }

    #[test]
    fn namespace_regexes_are_read_as_go_reads_them() {
        // Go reads `&&` in a class literally (the regex crate: intersection, here empty) and
        // knows `\Q...\E` quoting (the regex crate: a syntax error).
        let conditions = vec![ClusterSecretStoreCondition {
            namespace_regexes: vec![r"^team-[a&&b]$".into(), r"^\Qci-1\E$".into()],
            ..Default::default()
        }];
        let allowed = |ns: &str| {
            namespace_allowed("s", &conditions, ns, &BTreeMap::new()).expect("valid Go patterns")
        };
        assert!(allowed("team-a"));
        assert!(allowed("team-b"));
        assert!(allowed("ci-1"));
        assert!(!allowed("team-c"));
        assert!(!allowed("cix1"));
    }

    #[test]
    fn an_invalid_namespace_regex_is_reported_not_ignored() {
        let conditions = vec![ClusterSecretStoreCondition {
            namespace_regexes: vec!["(".into()],
            ..Default::default()
        }];
        let err = namespace_allowed("s", &conditions, "ns", &BTreeMap::new()).expect_err("invalid");
        assert!(err.to_string().contains("namespaceRegexes"), "{err}");
    }

    #[test]
    fn the_controller_class_selects_stores() {
        let mut spec = SecretStoreSpec::default();
        assert!(serves(&spec, "default"));
        spec.controller = Some("other".into());
        assert!(!serves(&spec, "default"));
        assert!(serves(&spec, "other"));
    }
}
