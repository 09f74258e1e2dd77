//! What the engine reads from Kubernetes, behind one trait: the in-cluster controller answers
//! from its watch caches (no apiserver round trip per reconcile); the Lambda and tests answer
//! with direct reads.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{ObjectRef, Store};
use secret_sync_crd::well_known::LABEL_OWNER;
use secret_sync_crd::{ClusterSecretStore, SecretStore};

/// Read access to the objects a sync depends on.
#[async_trait]
pub trait ClusterView: Send + Sync {
    /// A Secret the engine manages or may merge into. With `managed_only`, the caller needs the
    /// Secret only if it carries the managed label, so a cache may answer without a request.
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
        managed_only: bool,
    ) -> Result<Option<Arc<Secret>>, kube::Error>;
    /// Secrets carrying `reconcile.external-secrets.io/created-by=<owner hash>` in a namespace.
    async fn secrets_created_by(
        &self,
        namespace: &str,
        owner_hash: &str,
    ) -> Result<Vec<Arc<Secret>>, kube::Error>;
    async fn secret_store(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<SecretStore>>, kube::Error>;
    async fn cluster_secret_store(
        &self,
        name: &str,
    ) -> Result<Option<Arc<ClusterSecretStore>>, kube::Error>;
    async fn namespace(&self, name: &str) -> Result<Option<Arc<Namespace>>, kube::Error>;
}

/// Answers every read with a request to the apiserver.
#[derive(Clone)]
pub struct ApiView {
    client: kube::Client,
}

impl ApiView {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ClusterView for ApiView {
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
        _managed_only: bool,
    ) -> Result<Option<Arc<Secret>>, kube::Error> {
        let api = Api::<Secret>::namespaced(self.client.clone(), namespace);
        Ok(bounded("reading a Secret", api.get_opt(name))
            .await?
            .map(Arc::new))
    }

    async fn secrets_created_by(
        &self,
        namespace: &str,
        owner_hash: &str,
    ) -> Result<Vec<Arc<Secret>>, kube::Error> {
        let params = ListParams::default().labels(&format!("{LABEL_OWNER}={owner_hash}"));
        let api = Api::<Secret>::namespaced(self.client.clone(), namespace);
        let list = bounded("listing Secrets", api.list(&params)).await?;
        Ok(list.items.into_iter().map(Arc::new).collect())
    }

    async fn secret_store(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<SecretStore>>, kube::Error> {
        let api = Api::<SecretStore>::namespaced(self.client.clone(), namespace);
        Ok(bounded("reading a SecretStore", api.get_opt(name))
            .await?
            .map(Arc::new))
    }

    async fn cluster_secret_store(
        &self,
        name: &str,
    ) -> Result<Option<Arc<ClusterSecretStore>>, kube::Error> {
        let api = Api::<ClusterSecretStore>::all(self.client.clone());
        Ok(bounded("reading a ClusterSecretStore", api.get_opt(name))
            .await?
            .map(Arc::new))
    }

    async fn namespace(&self, name: &str) -> Result<Option<Arc<Namespace>>, kube::Error> {
        let api = Api::<Namespace>::all(self.client.clone());
        Ok(bounded("reading a Namespace", api.get_opt(name))
            .await?
            .map(Arc::new))
    }
}

/// Answers from watch caches (kube-runtime reflectors) kept by the controller. Secrets are
/// cached only when they carry the managed label; a Secret outside the cache (a Merge target
/// not yet written) is read from the apiserver.
#[derive(Clone)]
pub struct CachedView {
    pub secrets: Arc<crate::secret_cache::SecretCache>,
    pub secret_stores: Store<SecretStore>,
    pub cluster_secret_stores: Store<ClusterSecretStore>,
    pub namespaces: Store<Namespace>,
    pub api: ApiView,
}

#[async_trait]
impl ClusterView for CachedView {
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
        managed_only: bool,
    ) -> Result<Option<Arc<Secret>>, kube::Error> {
        self.secrets.ready().await;
        match self.secrets.get(namespace, name) {
            Some(secret) => Ok(Some(secret)),
            None if managed_only => Ok(None),
            // Not managed (yet): an unlabelled Secret to merge into, or not there at all.
            None => self.api.secret(namespace, name, false).await,
        }
    }

    async fn secrets_created_by(
        &self,
        namespace: &str,
        owner_hash: &str,
    ) -> Result<Vec<Arc<Secret>>, kube::Error> {
        self.secrets.ready().await;
        Ok(self.secrets.created_by(namespace, owner_hash))
    }

    async fn secret_store(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<SecretStore>>, kube::Error> {
        ready(&self.secret_stores).await;
        Ok(self
            .secret_stores
            .get(&ObjectRef::new(name).within(namespace)))
    }

    async fn cluster_secret_store(
        &self,
        name: &str,
    ) -> Result<Option<Arc<ClusterSecretStore>>, kube::Error> {
        ready(&self.cluster_secret_stores).await;
        Ok(self.cluster_secret_stores.get(&ObjectRef::new(name)))
    }

    async fn namespace(&self, name: &str) -> Result<Option<Arc<Namespace>>, kube::Error> {
        ready(&self.namespaces).await;
        Ok(self.namespaces.get(&ObjectRef::new(name)))
    }
}

/// Waits for a cache's first full list (immediate afterwards), so a sync never mistakes a cache
/// still filling for a missing object.
async fn ready<K>(store: &Store<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    crate::caches::ready(store).await;
}

/// How long one apiserver request of a sync may take. kube's client sets no response timeout (its
/// watches must stay open), so a request stuck in a slow or overloaded apiserver would hold a
/// reconcile worker for ever; bounded, it fails as retryable and the sync is retried.
pub const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs one apiserver request with [`API_TIMEOUT`].
pub async fn bounded<T>(
    what: &'static str,
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    match tokio::time::timeout(API_TIMEOUT, request).await {
        Ok(result) => result,
        Err(_) => Err(kube::Error::Service(
            format!("{what}: no answer from the apiserver within {API_TIMEOUT:?}").into(),
        )),
    }
}
