//! Provider kinds, and the one place they are registered.
//!
//! A [`ProviderKind`] owns everything secret-sync knows about one kind of provider: which store
//! configurations are its own, building their clients, whether they use referent auth, where a
//! store reads (its [`Location`]: what makes two stores "the same place" for a change event),
//! the index keys of a remote reference, and how a `find` matches a changed key. Nothing outside
//! a kind's module knows its rules; adding a provider is its module and one line in [`KINDS`].

use std::sync::Arc;

use async_trait::async_trait;
use secret_sync_crd::SecretStoreProvider;
use secret_sync_events::{Change, Location};

use crate::{BuildOptions, Provider, ProviderError, Referents, StoreScope};

/// Every provider kind secret-sync serves. The registration line of a new kind goes here.
static KINDS: &[&dyn ProviderKind] = &[
    &crate::aws::SecretsManagerKind,
    &crate::aws::ParameterStoreKind,
    &crate::vault::VaultKind,
    &crate::kubernetes::KubernetesKind,
    &crate::fake::FakeKind,
];

/// A compiled name pattern: whether a name matches.
pub type NameMatcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A compiled `find`, as the resolve stage keeps it: its `path`, and its `name.regexp` compiled
/// once (with Go's semantics) by whoever builds it.
#[derive(Clone)]
pub struct FindMatcher {
    pub path: Option<String>,
    pub name: Option<NameMatcher>,
}

impl FindMatcher {
    /// Whether the find may select the secret `key` (slashes at either end ignored, and a
    /// leading one of the path): it is under the path and matches the name pattern.
    pub fn may_select_key(&self, key: &str) -> bool {
        let key = trimmed(key);
        self.path
            .as_deref()
            .is_none_or(|p| key.starts_with(p.trim_start_matches('/')))
            && self.name.as_ref().is_none_or(|matches| matches(key))
    }

    /// Whether the find may select a secret known by any of `names`, compared as written: one
    /// starts with the path and one matches the name pattern.
    pub fn may_select<'a>(&self, names: impl Iterator<Item = &'a str> + Clone) -> bool {
        let by_path = self
            .path
            .as_deref()
            .is_none_or(|p| names.clone().any(|n| n.starts_with(p)));
        let by_name = self
            .name
            .as_ref()
            .is_none_or(|matches| names.clone().any(|n| matches(n)));
        by_path && by_name
    }
}

impl std::fmt::Debug for FindMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FindMatcher")
            .field("path", &self.path)
            .field("name", &self.name.is_some())
            .finish()
    }
}

/// A key as written, without slashes at either end: the spelling every kind indexes a key
/// under, and compares keys in, unless it says otherwise.
pub fn trimmed(key: &str) -> &str {
    key.trim_matches('/')
}

/// One kind of provider. See the module notes.
#[async_trait]
pub trait ProviderKind: Send + Sync {
    /// The kind's id: [`Location::kind`] of its stores and of its change events.
    fn id(&self) -> &'static str;

    /// Whether a store's `spec.provider` is of this kind.
    fn serves(&self, provider: &SecretStoreProvider) -> bool;

    /// Builds the client for a store of this kind.
    async fn build(
        &self,
        provider: &SecretStoreProvider,
        scope: &StoreScope,
        referents: Arc<dyn Referents>,
        options: &BuildOptions,
    ) -> Result<Arc<dyn Provider>, ProviderError>;

    /// Why a `spec.provider` this kind nearly serves is refused (an AWS store naming a service
    /// no AWS kind serves), for the store's status; `None` when it is not this kind's business.
    fn refusal(&self, provider: &SecretStoreProvider) -> Option<String> {
        let _ = provider;
        None
    }

    /// Whether the store, used as a ClusterSecretStore, reads its credentials in each using
    /// object's namespace (a credential reference without a namespace: ESO's referent auth).
    fn uses_referent_auth(&self, provider: &SecretStoreProvider) -> bool {
        let _ = provider;
        false
    }

    /// Where a store of this kind reads.
    fn location(&self, provider: &SecretStoreProvider) -> Location {
        let _ = provider;
        Location::new(self.id())
    }

    /// Whether a store with this `provider` may be at `at` (a change's place): by default its
    /// [`ProviderKind::location`] overlaps it. A kind may answer without building the location:
    /// this is asked for every store with a `find` on every change.
    fn is_at(&self, provider: &SecretStoreProvider, at: &Location) -> bool {
        self.location(provider).overlaps(at)
    }

    /// What a store with this `provider` puts in front of every `remoteRef.key` it reads (AWS's
    /// `prefix`): an ExternalSecret reading `db` through a store with prefix `prod/` reads
    /// `prod/db`, and is found for a change of `prod/db` by the rest, `db`.
    fn key_prefix<'a>(&self, provider: &'a SecretStoreProvider) -> Option<&'a str> {
        let _ = provider;
        None
    }

    /// The keys a `remoteRef.key` is indexed under, whatever store it is read through: the key
    /// trimmed of slashes, and any other spelling of it this kind knows (a Secrets Manager ARN
    /// stands for a name). Must not depend on the store: an ExternalSecret is indexed before
    /// its store may be cached.
    fn index_keys(&self, remote_key: &str) -> Vec<String> {
        vec![trimmed(remote_key).to_owned()]
    }

    /// The index keys a change's keys are looked up under: every spelling under which an
    /// ExternalSecret reading a changed key may be indexed.
    fn change_keys(&self, change: &Change) -> Vec<String> {
        change.keys.iter().map(|k| trimmed(k).to_owned()).collect()
    }

    /// Whether `remote_key`, read through a store with this `provider` whose location overlaps
    /// the change's, is one of the changed keys. Called only for index hits, so it may be exact
    /// and slow. When in doubt, yes: an extra sync costs one read, a missed one a stale Secret.
    fn reads(&self, provider: &SecretStoreProvider, remote_key: &str, change: &Change) -> bool {
        let _ = provider;
        let key = trimmed(remote_key);
        change.keys.iter().any(|k| trimmed(k) == key)
    }

    /// Whether `find`, listing through a store with this `provider` whose location overlaps the
    /// change's, may select one of the changed keys.
    fn find_may_select(
        &self,
        provider: &SecretStoreProvider,
        find: &FindMatcher,
        change: &Change,
    ) -> bool {
        let _ = provider;
        change.keys.iter().any(|k| find.may_select_key(k))
    }
}

/// The kind of a store's provider; `None` when secret-sync does not serve it.
pub fn kind_of(provider: &SecretStoreProvider) -> Option<&'static dyn ProviderKind> {
    KINDS.iter().copied().find(|kind| kind.serves(provider))
}

/// The kind with this id.
pub fn kind(id: &str) -> Option<&'static dyn ProviderKind> {
    KINDS.iter().copied().find(|kind| kind.id() == id)
}

/// Every key a `remoteRef.key` may be indexed under, over all kinds (its store, and so its kind,
/// may not be known yet), each once.
pub fn index_keys(remote_key: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for key in KINDS.iter().flat_map(|kind| kind.index_keys(remote_key)) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// Where a store reads; `None` when secret-sync does not serve its provider.
pub fn location(provider: &SecretStoreProvider) -> Option<Location> {
    kind_of(provider).map(|kind| kind.location(provider))
}

/// Builds the client for a store's provider. Static credentials are read now, through
/// `referents`; short-lived ones (ServiceAccount tokens) whenever the client refreshes them.
pub async fn build(
    provider: &SecretStoreProvider,
    scope: &StoreScope,
    referents: Arc<dyn Referents>,
    options: &BuildOptions,
) -> Result<Arc<dyn Provider>, ProviderError> {
    match (kind_of(provider), provider.name()) {
        (Some(kind), _) => kind.build(provider, scope, referents, options).await,
        (None, _) if let Some(why) = KINDS.iter().find_map(|k| k.refusal(provider)) => {
            Err(ProviderError::Config(why))
        }
        (None, Some(name)) => Err(ProviderError::Config(format!(
            "provider {name:?} is not supported by secret-sync yet (supported: {})",
            supported()
        ))),
        (None, None) => Err(ProviderError::Config(
            "spec.provider names no provider".into(),
        )),
    }
}

fn supported() -> String {
    KINDS.iter().map(|k| k.id()).collect::<Vec<_>>().join(", ")
}

/// Whether a store, used as a ClusterSecretStore, reads its credentials in the namespace of each
/// ExternalSecret (ESO's referent auth). Such a store needs one client per using namespace; any
/// other store shares one client cluster-wide.
pub fn uses_referent_auth(provider: &SecretStoreProvider) -> bool {
    kind_of(provider).is_some_and(|kind| kind.uses_referent_auth(provider))
}
