//! Providers: where secret values come from.
//!
//! A [`Provider`] is a client for one configured store (a SecretStore or ClusterSecretStore,
//! as seen from one namespace). It fetches **whole** values ([`Provider::get`]) and lists values
//! by name, path or tags ([`Provider::find`]); everything ESO does with a value afterwards
//! (property paths, decoding, key conversion, rewrite, templates) is the engine's pure render
//! stage, so one fetched value serves every ExternalSecret and every property that reads it.
//!
//! Each provider is a [`ProviderKind`], registered in one place ([`kind`]). Clients are built
//! once per store generation by [`build`] and reused; building one may read
//! credentials through [`Referents`] (Kubernetes Secrets, ConfigMaps and ServiceAccount tokens),
//! which the engine implements. A client keeps the `Arc<dyn Referents>` it was built with when
//! its credentials must be refreshed later (a ServiceAccount token is short-lived), so the
//! implementation must stay usable for the client's lifetime. Providers never write to Kubernetes.
//!
//! Secret material travels as [`SecretBytes`], which has no `Debug` or `Display` that shows
//! its contents, and is zeroed when dropped.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use secret_sync_crd::StoreKind;

pub mod aws;
pub mod fake;
pub mod keyed;
pub mod kind;
pub mod kubernetes;
pub mod vault;

pub use kind::{ProviderKind, build, kind_of, uses_referent_auth};

/// Secret material. Its `Debug` prints only the length; the bytes are zeroed on drop.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The bytes. Call sites that use this are where a value can leak: keep them few.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, moved out (this wrapper no longer zeroes them).
    pub fn into_inner(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretBytes {
    fn from(s: String) -> Self {
        Self(s.into_bytes())
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// What to fetch: the unit of deduplication. Two ExternalSecrets (or two `data[]` entries with
/// different properties) that read the same `RemoteRef` from the same store share one call.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteRef {
    /// The provider key, as written in `remoteRef.key` (a provider adds its store `prefix`).
    pub key: String,
    /// `remoteRef.version`: an AWS version stage or `uuid/<VersionId>`; a Vault KV v2 version.
    pub version: Option<String>,
    /// `metadataPolicy: Fetch`: the secret's tags / custom metadata as a JSON object, not its value.
    pub metadata: bool,
}

impl RemoteRef {
    /// The current value of `key`.
    pub fn key(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            version: None,
            metadata: false,
        }
    }
}

/// Where a PushSecret writes one value (`data[].match.remoteRef`, and the entry's `metadata`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PushRef {
    pub key: String,
    /// A key within the secret's JSON object; `None` writes the whole secret.
    pub property: Option<String>,
    /// Provider-specific settings (AWS: `PushSecretMetadata` with `secretPushFormat`).
    pub metadata: Option<serde_json::Value>,
    /// The PushSecret's namespace: where objects the metadata names are read (AWS: the
    /// ConfigMap or Secret of a `resourcePolicy`).
    pub namespace: String,
    /// The source Secret as pushed (after the PushSecret's template), for providers that store
    /// Secrets themselves (Kubernetes copies its type, labels and annotations, and without a
    /// property its whole data). `None` when deleting.
    pub source: Option<std::sync::Arc<PushSource>>,
}

/// The Secret a PushSecret pushes from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PushSource {
    /// Its `type`; `None` for none (Opaque).
    pub type_: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Its data, exactly.
    pub data: BTreeMap<String, SecretBytes>,
}

/// The tag (AWS) or custom-metadata entry (Vault) marking what PushSecret created, as ESO marks
/// it. A secret without it is never overwritten, and deleting one is a no-op.
pub const MANAGED_BY: (&str, &str) = ("managed-by", "external-secrets");

/// `dataFrom[].find`: which secrets to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Find {
    /// Only secrets under this path (AWS: name prefix; Vault: folder).
    pub path: Option<String>,
    /// Only secrets whose name matches this regular expression (unanchored, as in ESO).
    pub name_regexp: Option<String>,
    /// Only secrets carrying all these tags.
    pub tags: BTreeMap<String, String>,
}

/// The result of validating a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// Credentials work and the provider answers.
    Ready,
    /// Cannot be decided now (for example, a ClusterSecretStore with referent auth, whose
    /// credentials live in each ExternalSecret's namespace). ESO reports Ready=True
    /// `ValidationUnknown` for this.
    Unknown,
}

/// Errors from providers. Each knows whether retrying can help; messages carry key names and
/// store names, never values.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The secret (or version) does not exist at the provider. Deletion policies act on this.
    #[error("secret {key:?} does not exist at the provider")]
    NotFound { key: String },
    /// A PushSecret would overwrite a secret it did not create (no [`MANAGED_BY`] marker).
    #[error("secret {key:?} not managed by external-secrets")]
    NotManaged { key: String },
    /// The value exists but has no such property.
    #[error("key {property:?} does not exist in secret {key:?}")]
    PropertyNotFound { key: String, property: String },
    /// The store's configuration cannot work (unknown provider, missing field, bad regexp...).
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// Credentials could not be read or were refused.
    #[error("authentication failed: {message}")]
    Auth {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A credential reference could not be resolved (missing Secret, ConfigMap or key).
    #[error(transparent)]
    Referent(#[from] ReferentError),
    /// The provider refused for lack of permission.
    #[error("access denied: {message}")]
    AccessDenied { message: String },
    /// The provider asked us to slow down.
    #[error("throttled by the provider: {message}")]
    Throttled { message: String },
    /// Anything else the provider or the network returned; usually worth retrying.
    #[error("{operation} failed: {message}")]
    Provider {
        operation: &'static str,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl ProviderError {
    /// Whether retrying later, without a spec change, can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NotFound { .. }
            | Self::PropertyNotFound { .. }
            | Self::NotManaged { .. }
            | Self::Config(_) => false,
            Self::Referent(e) => e.is_retryable(),
            Self::Auth { .. }
            | Self::AccessDenied { .. }
            | Self::Throttled { .. }
            | Self::Provider { .. } => true,
        }
    }

    /// A short, stable label for metrics (`reason` label).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::NotManaged { .. } => "not_managed",
            Self::PropertyNotFound { .. } => "property_not_found",
            Self::Config(_) => "config",
            Self::Auth { .. } => "auth",
            Self::Referent(_) => "referent",
            Self::AccessDenied { .. } => "access_denied",
            Self::Throttled { .. } => "throttled",
            Self::Provider { .. } => "provider",
        }
    }
}

/// Errors resolving credentials held in Kubernetes.
#[derive(Debug, thiserror::Error)]
pub enum ReferentError {
    /// The Secret does not exist.
    #[error("secret {namespace}/{name} not found")]
    SecretNotFound { namespace: String, name: String },
    /// The Secret exists but has no such key.
    #[error("key {key:?} not found in secret {namespace}/{name}")]
    KeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    /// The ConfigMap does not exist.
    #[error("configmap {namespace}/{name} not found")]
    ConfigMapNotFound { namespace: String, name: String },
    /// The ConfigMap exists but its `data` has no such key.
    #[error("key {key:?} not found in configmap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    /// The TokenRequest for a ServiceAccount failed.
    #[error("could not request a token for service account {namespace}/{name}: {message}")]
    Token {
        namespace: String,
        name: String,
        message: String,
    },
    /// Any other Kubernetes API failure.
    #[error("reading {what} failed: {message}")]
    Api { what: String, message: String },
    /// The Secret exists but lacks the label that allows this use (ESO's webhook Secrets must
    /// carry `external-secrets.io/type: webhook`).
    #[error("secret {namespace}/{name} does not carry the label {label}")]
    Unlabelled {
        namespace: String,
        name: String,
        label: String,
    },
}

impl ReferentError {
    /// Whether retrying later can succeed.
    pub fn is_retryable(&self) -> bool {
        // A missing Secret or ConfigMap often appears moments later (GitOps applies in any
        // order).
        true
    }
}

/// Access to credentials that stores reference in Kubernetes. Implemented by the engine.
#[async_trait]
pub trait Referents: Send + Sync {
    /// One key of a Secret.
    async fn secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ReferentError>;
    /// One key of a ConfigMap's `data`. `binaryData` is not read: ESO reads only `data` for a
    /// `caProvider` of type ConfigMap (`getCertFromConfigMap` in `runtime/esutils/utils.go`).
    async fn config_map_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ReferentError>;

    /// `key` of a Secret that must carry the label `label` (`name=value`), as ESO requires of
    /// the Secrets a webhook reads. Only the engine's implementation reads labels; any other
    /// refuses.
    async fn labelled_secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        label: (&str, &str),
    ) -> Result<SecretBytes, ReferentError> {
        let _ = key;
        Err(ReferentError::Unlabelled {
            namespace: namespace.into(),
            name: name.into(),
            label: format!("{}={}", label.0, label.1),
        })
    }
    /// A token for a ServiceAccount from the TokenRequest API.
    async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[String],
        expiration_seconds: i64,
    ) -> Result<SecretBytes, ReferentError>;
    /// The annotations of a ServiceAccount. AWS web-identity auth reads the IRSA annotations
    /// `eks.amazonaws.com/role-arn` and `eks.amazonaws.com/audience` from them, as ESO does.
    async fn service_account_annotations(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, ReferentError>;
}

/// Which store a client is for, and from where it is used: referent namespaces resolve from this.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreScope {
    /// SecretStore or ClusterSecretStore.
    pub kind: StoreKind,
    /// The store's name.
    pub name: String,
    /// The SecretStore's namespace; for a ClusterSecretStore, the namespace of the object
    /// using it (the ExternalSecret), which is where referent credentials are read. Empty when a
    /// ClusterSecretStore is built on its own (to validate it).
    pub namespace: String,
}

impl StoreScope {
    /// The namespace a credential reference resolves in. A SecretStore always reads its own
    /// namespace (a `namespace` in the reference is ignored, as in ESO); a ClusterSecretStore
    /// reads the reference's namespace, or the using object's when it has none (referent auth).
    pub fn referent_namespace<'a>(&'a self, reference_namespace: Option<&'a str>) -> &'a str {
        match (self.kind, reference_namespace) {
            (StoreKind::ClusterSecretStore, Some(ns)) => ns,
            _ => &self.namespace,
        }
    }
}

/// A client for one store.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The whole value of one secret (or its metadata as JSON when `remote.metadata`).
    async fn get(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError>;

    /// Secret name → whole value, for every secret `find` selects.
    async fn find(&self, find: &Find) -> Result<BTreeMap<String, SecretBytes>, ProviderError>;

    /// Checks configuration and credentials.
    async fn validate(&self) -> Result<Validation, ProviderError>;

    /// ESO's provider label for metrics, such as `AWS/SecretsManager`.
    fn metric_name(&self) -> &'static str;

    /// Whether [`Provider::get`]'s value for `remote` is a map of byte strings in the
    /// [`keyed`] encoding (a Kubernetes Secret's data) rather than a document.
    fn keyed(&self, remote: &RemoteRef) -> bool {
        let _ = remote;
        false
    }

    /// ESO's name for the call behind [`Provider::get`] in metrics.
    fn get_call_name(&self) -> &'static str {
        "GetSecretValue"
    }

    /// ESO's name for the call behind [`Provider::find`] in metrics.
    fn find_call_name(&self) -> &'static str {
        "ListSecrets"
    }

    /// PushSecret: writes `value` at `remote`, creating the secret marked [`MANAGED_BY`], and
    /// refusing ([`ProviderError::NotManaged`]) one that is not marked. Returns whether anything
    /// was written: an unchanged value is not written again.
    async fn push(&self, remote: &PushRef, value: &[u8]) -> Result<bool, ProviderError> {
        let _ = (remote, value);
        Err(self.cannot_push())
    }

    /// PushSecret's `updatePolicy: IfNotExists`: whether `remote` (with a property: that
    /// property) exists.
    async fn exists(&self, remote: &PushRef) -> Result<bool, ProviderError> {
        let _ = remote;
        Err(self.cannot_push())
    }

    /// PushSecret's `deletionPolicy: Delete`: removes what [`Provider::push`] wrote at `remote`.
    /// A secret that is gone, or not marked [`MANAGED_BY`], is left alone without an error.
    async fn delete_pushed(&self, remote: &PushRef) -> Result<(), ProviderError> {
        let _ = remote;
        Err(self.cannot_push())
    }

    /// The error of a provider that cannot push.
    fn cannot_push(&self) -> ProviderError {
        ProviderError::Config(format!(
            "the {} provider does not support PushSecret",
            self.metric_name()
        ))
    }
}

/// Process-wide settings for building provider clients.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// The AWS SDK configuration stores build on (endpoint, HTTP client, retries, and the
    /// credentials of stores without `auth`). `None` loads it from the process environment, as
    /// the SDK does (`AWS_ENDPOINT_URL`, IRSA, pod identity, IMDS).
    pub aws_base: Option<aws_config::SdkConfig>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secret_sync_crd::SecretStoreProvider;
    use secret_sync_crd::provider::{FakeProvider, FakeProviderData};

    use super::*;

    /// Referents for stores that read none.
    struct NoReferents;

    #[async_trait]
    impl Referents for NoReferents {
        async fn secret_key(
            &self,
            namespace: &str,
            name: &str,
            _: &str,
        ) -> Result<SecretBytes, ReferentError> {
            Err(ReferentError::SecretNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })
        }
        async fn config_map_key(
            &self,
            namespace: &str,
            name: &str,
            _: &str,
        ) -> Result<SecretBytes, ReferentError> {
            Err(ReferentError::ConfigMapNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })
        }
        async fn service_account_token(
            &self,
            namespace: &str,
            name: &str,
            _: &[String],
            _: i64,
        ) -> Result<SecretBytes, ReferentError> {
            Err(ReferentError::Token {
                namespace: namespace.into(),
                name: name.into(),
                message: "none".into(),
            })
        }
        async fn service_account_annotations(
            &self,
            _: &str,
            _: &str,
        ) -> Result<BTreeMap<String, String>, ReferentError> {
            Ok(BTreeMap::new())
        }
    }

    fn scope() -> StoreScope {
        StoreScope {
            kind: StoreKind::SecretStore,
            name: "s".into(),
            namespace: "ns".into(),
        }
    }

    #[tokio::test]
    async fn build_makes_a_fake_client_for_a_fake_store() {
        let provider = SecretStoreProvider {
            fake: Some(FakeProvider {
                data: vec![FakeProviderData {
                    key: "k".into(),
                    value: Some("v".into()),
                    ..Default::default()
                }],
                validation_result: None,
            }),
            ..Default::default()
        };
        let client = build(
            &provider,
            &scope(),
            Arc::new(NoReferents),
            &BuildOptions::default(),
        )
        .await
        .ok();
        let value = match client {
            Some(c) => c.get(&RemoteRef::key("k")).await.ok(),
            None => None,
        };
        assert_eq!(value.map(|v| v.expose().to_vec()), Some(b"v".to_vec()));
    }

    #[tokio::test]
    async fn build_refuses_an_unsupported_provider_by_name() {
        let provider = SecretStoreProvider {
            other: BTreeMap::from([("gcpsm".to_owned(), serde_json::json!({}))]),
            ..Default::default()
        };
        let err = build(
            &provider,
            &scope(),
            Arc::new(NoReferents),
            &BuildOptions::default(),
        )
        .await
        .err();
        assert!(
            matches!(&err, Some(ProviderError::Config(m)) if m.contains("gcpsm")),
            "{err:?}"
        );
        let err = build(
            &SecretStoreProvider::default(),
            &scope(),
            Arc::new(NoReferents),
            &BuildOptions::default(),
        )
        .await
        .err();
        assert!(matches!(err, Some(ProviderError::Config(_))));
    }

    #[test]
    fn a_secret_store_reads_credentials_in_its_own_namespace_whatever_the_reference_says() {
        let s = scope();
        assert_eq!(s.referent_namespace(Some("other")), "ns");
        assert_eq!(s.referent_namespace(None), "ns");
        let c = StoreScope {
            kind: StoreKind::ClusterSecretStore,
            ..scope()
        };
        assert_eq!(c.referent_namespace(Some("other")), "other");
        assert_eq!(c.referent_namespace(None), "ns");
    }
}
