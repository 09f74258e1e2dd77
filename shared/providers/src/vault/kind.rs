//! Vault / OpenBao as a provider kind: its stores' location (server, namespace, and the KV mount
//! when `path` names one) and how a `remoteRef.key` names a key under a mount, as the client
//! builds its paths.

use std::sync::Arc;

use async_trait::async_trait;
use secret_sync_crd::SecretStoreProvider;
use secret_sync_crd::provider::{VaultKvVersion, VaultProvider};
use secret_sync_events::vault::{KIND, location};
use secret_sync_events::{Change, Location, Place};

use crate::kind::{FindMatcher, ProviderKind, trimmed};
use crate::{BuildOptions, Provider, ProviderError, Referents, StoreScope};

/// `spec.provider.vault`.
pub struct VaultKind;

/// The KV mount a store's `path` names (slashes trimmed, a KV v2 `/data` suffix dropped).
pub fn mount(vault: &VaultProvider) -> Option<&str> {
    vault
        .path
        .as_deref()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .map(|p| match vault.version {
            VaultKvVersion::V2 => p.strip_suffix("/data").unwrap_or(p),
            VaultKvVersion::V1 => p,
        })
}

/// The (mount, key) a `remoteRef.key` reads through `vault`; see [`split_key`].
pub fn mount_and_key<'a>(vault: &'a VaultProvider, key: &'a str) -> Option<(&'a str, &'a str)> {
    split_key(mount(vault), vault.version, key)
}

/// The (mount, key under it) that `key` reads through a store with `mount` (from its `path`)
/// and KV `version`, as ESO builds the path: a key under the store's mount may repeat the mount
/// (and, for KV v2, `data/` after it); without a mount in the store, the key's first segment is
/// the mount (for KV v2: everything before a `/data/`, when the key has one). `None` for an
/// empty key without a mount.
pub fn split_key<'a>(
    mount: Option<&'a str>,
    version: VaultKvVersion,
    key: &'a str,
) -> Option<(&'a str, &'a str)> {
    let key = key.trim_start_matches('/');
    let strip_data = |rest: &'a str| match version {
        VaultKvVersion::V2 => rest.strip_prefix("data/").unwrap_or(rest),
        VaultKvVersion::V1 => rest,
    };
    match mount {
        Some(mount) => {
            let rest = match key.strip_prefix(mount).and_then(|r| r.strip_prefix('/')) {
                Some(rest) => strip_data(rest),
                None => key,
            };
            Some((mount, rest))
        }
        None if key.is_empty() => None,
        None => match (version, key.split_once("/data/")) {
            (VaultKvVersion::V2, Some((mount, rest))) => Some((mount, rest)),
            _ => Some(key.split_once('/').unwrap_or((key, ""))),
        },
    }
}

/// The namespace of a store, slashes trimmed, empty for the root namespace.
fn namespace(vault: &VaultProvider) -> &str {
    vault
        .namespace
        .as_deref()
        .unwrap_or_default()
        .trim_matches('/')
}

#[async_trait]
impl ProviderKind for VaultKind {
    fn id(&self) -> &'static str {
        KIND
    }

    /// `spec.provider.vault`, and ESO's `spec.provider.openBao` (the same client).
    fn serves(&self, provider: &SecretStoreProvider) -> bool {
        provider.vault_settings().is_some()
    }

    async fn build(
        &self,
        provider: &SecretStoreProvider,
        scope: &StoreScope,
        referents: Arc<dyn Referents>,
        _options: &BuildOptions,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        let vault = provider
            .vault_settings()
            .ok_or_else(|| ProviderError::Config("not a Vault store".into()))?;
        Ok(Arc::new(
            super::VaultClient::new(&vault, scope, referents).await?,
        ))
    }

    fn uses_referent_auth(&self, provider: &SecretStoreProvider) -> bool {
        provider
            .vault_settings()
            .is_some_and(|v| super::is_referent_auth(v.auth.as_ref()))
    }

    fn location(&self, provider: &SecretStoreProvider) -> Location {
        match provider.vault_settings() {
            Some(vault) => location(Some(&vault.server), Some(namespace(&vault)), mount(&vault)),
            None => Location::new(KIND),
        }
    }

    fn is_at(&self, provider: &SecretStoreProvider, at: &Location) -> bool {
        let Some(vault) = provider.vault_settings() else {
            return false;
        };
        let vault = vault.as_ref();
        at.kind == KIND
            && at
                .get("server")
                .is_none_or(|s| s == vault.server.trim_end_matches('/'))
            && at.get("namespace").is_none_or(|n| n == namespace(vault))
            && match (at.get("mount"), mount(vault)) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// A key `k` under mount `m` is read as `k`, `m/k` or (KV v2) `m/data/k`.
    fn change_keys(&self, change: &Change) -> Vec<String> {
        let mount = match &change.place {
            Place::At(at) => at.get("mount"),
            Place::Store(_) => None,
        };
        let mut keys = Vec::new();
        for key in &change.keys {
            let key = trimmed(key);
            keys.push(key.to_owned());
            if let Some(mount) = mount {
                keys.push(format!("{mount}/{key}"));
                keys.push(format!("{mount}/data/{key}"));
            }
        }
        keys
    }

    fn reads(&self, provider: &SecretStoreProvider, remote_key: &str, change: &Change) -> bool {
        let (Some(vault), Place::At(at)) = (provider.vault_settings(), &change.place) else {
            return false;
        };
        let Some((mount, key)) = mount_and_key(&vault, remote_key) else {
            return false;
        };
        at.get("mount").is_none_or(|m| m == mount)
            && change
                .keys
                .iter()
                .any(|k| trimmed(k) == key.trim_end_matches('/'))
    }

    fn find_may_select(
        &self,
        _provider: &SecretStoreProvider,
        find: &FindMatcher,
        change: &Change,
    ) -> bool {
        change.keys.iter().any(|k| find.may_select_key(k))
    }
}
