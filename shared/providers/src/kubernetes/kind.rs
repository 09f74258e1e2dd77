//! Kubernetes as a provider kind. A store reads one namespace of one API server: its location
//! is the server's address (`server.url`, with `https://` when it has no scheme; unknown for a
//! store with `authRef`, whose kubeconfig names the server) and `remoteNamespace`. A key is a
//! Secret's name.

use std::sync::Arc;

use async_trait::async_trait;
use secret_sync_crd::SecretStoreProvider;
use secret_sync_crd::provider::KubernetesProvider;
use secret_sync_events::Location;

use crate::kind::ProviderKind;
use crate::{BuildOptions, Provider, ProviderError, Referents, StoreScope};

/// The kind's id, and the [`Location::kind`] of its changes.
pub const KIND: &str = "kubernetes";

/// `spec.provider.kubernetes`.
pub struct KubernetesKind;

/// The place a watch on `namespace` of the API server at `server` reports changes in.
pub fn location(server: Option<&str>, namespace: &str) -> Location {
    Location::new(KIND)
        .with("server", server.map(normalized))
        .with("namespace", Some(namespace))
}

/// A server address as compared: with a scheme, without a trailing `/`.
fn normalized(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("https://{url}")
    }
}

/// The server a store names; `None` with `authRef` (its kubeconfig names it).
fn server(k: &KubernetesProvider) -> Option<&str> {
    match &k.auth_ref {
        Some(_) => None,
        None => k
            .server
            .as_ref()
            .map(|s| s.url.as_str())
            .filter(|u| !u.is_empty()),
    }
}

#[async_trait]
impl ProviderKind for KubernetesKind {
    fn id(&self) -> &'static str {
        KIND
    }

    fn serves(&self, provider: &SecretStoreProvider) -> bool {
        provider.kubernetes.is_some()
    }

    async fn build(
        &self,
        provider: &SecretStoreProvider,
        scope: &StoreScope,
        referents: Arc<dyn Referents>,
        _options: &BuildOptions,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        let k = provider
            .kubernetes
            .as_ref()
            .ok_or_else(|| ProviderError::Config("not a Kubernetes store".into()))?;
        Ok(Arc::new(
            super::KubernetesClient::new(k, scope, referents).await?,
        ))
    }

    /// ESO's `IsReferentKubernetesAuth`: a credential selector without a namespace.
    fn uses_referent_auth(&self, provider: &SecretStoreProvider) -> bool {
        let Some(auth) = provider.kubernetes.as_ref().and_then(|k| k.auth.as_ref()) else {
            return false;
        };
        auth.cert
            .as_ref()
            .is_some_and(|c| c.client_cert.namespace.is_none() || c.client_key.namespace.is_none())
            || auth
                .service_account
                .as_ref()
                .is_some_and(|s| s.namespace.is_none())
            || auth
                .token
                .as_ref()
                .is_some_and(|t| t.bearer_token.namespace.is_none())
    }

    fn location(&self, provider: &SecretStoreProvider) -> Location {
        match &provider.kubernetes {
            Some(k) => location(server(k), &k.remote_namespace),
            None => Location::new(KIND),
        }
    }
}

#[cfg(test)]
mod tests {
    use secret_sync_crd::provider::KubernetesServer;

    use super::*;

    fn store(url: &str, namespace: &str) -> SecretStoreProvider {
        SecretStoreProvider {
            kubernetes: Some(KubernetesProvider {
                server: Some(KubernetesServer {
                    url: url.into(),
                    ..KubernetesServer::default()
                }),
                remote_namespace: namespace.into(),
                ..KubernetesProvider::default()
            }),
            ..SecretStoreProvider::default()
        }
    }

    #[test]
    fn a_store_is_at_its_server_and_namespace() {
        let at = location(Some("https://api.example:6443/"), "team-a");
        assert!(KubernetesKind.is_at(&store("https://api.example:6443", "team-a"), &at));
        assert!(KubernetesKind.is_at(&store("api.example:6443", "team-a"), &at));
        assert!(!KubernetesKind.is_at(&store("https://api.example:6443", "team-b"), &at));
        assert!(!KubernetesKind.is_at(&store("https://other:6443", "team-a"), &at));
        // A kubeconfig store's server is not known without reading it: any server may be it.
        let mut by_kubeconfig = store("", "team-a");
        if let Some(k) = by_kubeconfig.kubernetes.as_mut() {
            k.auth_ref = Some(Default::default());
        }
        assert!(KubernetesKind.is_at(&by_kubeconfig, &at));
    }
}
