//! The Kubernetes provider (`spec.provider.kubernetes`): Secrets of one namespace
//! (`remoteNamespace`) of this or another cluster, read and written with the store's own
//! credentials, never the controller's.
//!
//! As ESO's (R: `providers/v1/kubernetes/client.go`):
//! - a key is a Secret's name; its value is its `data`, handed to the engine as a
//!   [keyed](crate::keyed) map so a property or `extract` reads a key's bytes exactly; without a
//!   property, the render writes the map as ESO does; `metadataPolicy: Fetch` gives
//!   `{"annotations":…,"labels":…}`;
//! - `find.name` lists the namespace and keeps the names the pattern matches; `find.tags` is a
//!   label selector; each found Secret's value is its data as above;
//! - PushSecret writes one key of a remote Secret (`remoteRef.property`), or the whole data
//!   (no property), creating the Secret when missing, with the local Secret's type, labels and
//!   annotations merged as its `PushSecretMetadata` says; deleting removes the key, or the Secret
//!   when it was the last key or no property is named. ESO's provider marks nothing as managed,
//!   and neither does this one: a store that may push into a namespace owns its Secrets.
//!
//! Connecting, as ESO's `BuildRESTConfigFromKubernetesConnection`: `authRef` (a kubeconfig in a
//! Secret) or `server` with exactly one `auth` method (a bearer token, a ServiceAccount whose
//! token this cluster's TokenRequest API issues, or a client certificate). Unlike ESO, a
//! kubeconfig may not run commands (`exec`, `auth-provider`) or read the controller's files
//! (`tokenFile`, `client-certificate`, `certificate-authority` paths): those would let anyone
//! who can write a SecretStore act as the controller.
//!
//! Its change source is a watch on the remote namespace's Secrets (the controller's
//! `kubernetes_watch`), so a copy follows its source at once; [`KubernetesClient::kube`] hands
//! it the store's connection.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use secret_sync_crd::StoreKind;
use secret_sync_crd::meta::SecretKeySelector;
use secret_sync_crd::provider::{CaProviderType, KubernetesProvider, KubernetesServer};

use crate::{
    Find, Provider, ProviderError, PushRef, Referents, RemoteRef, SecretBytes, StoreScope,
    Validation,
};

mod kind;

pub use kind::{KIND, KubernetesKind, location};

/// How long a requested ServiceAccount token lives, as ESO requests it. Clients are rebuilt
/// well within it (the engine's client TTL), and the watch rebuilds its own on any error.
const TOKEN_SECONDS: i64 = 3600;

/// A client for one Kubernetes store.
pub struct KubernetesClient {
    kube: kube::Client,
    /// `remoteNamespace`.
    namespace: String,
    /// The API server's address, as the connection uses it.
    server: String,
    store_kind: StoreKind,
}

impl KubernetesClient {
    /// Connects as the store says; credentials are read now, through `referents`.
    pub async fn new(
        provider: &KubernetesProvider,
        scope: &StoreScope,
        referents: Arc<dyn Referents>,
    ) -> Result<Self, ProviderError> {
        let kubeconfig = kubeconfig(provider, scope, referents.as_ref()).await?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| {
                    // Not `e` itself: a kubeconfig error may quote the file.
                    ProviderError::Config(format!(
                        "spec.provider.kubernetes: the connection cannot be configured ({})",
                        kubeconfig_error_kind(&e)
                    ))
                })?;
        let server = config.cluster_url.to_string();
        let kube = kube::Client::try_from(config).map_err(|e| {
            ProviderError::Config(format!(
                "spec.provider.kubernetes: cannot build a client for {}: {e}",
                provider_server(provider)
            ))
        })?;
        Ok(Self {
            kube,
            namespace: provider.remote_namespace.clone(),
            server: server.trim_end_matches('/').to_owned(),
            store_kind: scope.kind,
        })
    }

    /// The store's connection and `remoteNamespace`: what the change source watches.
    pub fn kube(&self) -> (kube::Client, &str) {
        (self.kube.clone(), &self.namespace)
    }

    /// The API server's address (without a trailing `/`).
    pub fn server(&self) -> &str {
        &self.server
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.kube.clone(), namespace)
    }

    async fn read(&self, namespace: &str, name: &str) -> Result<Option<Secret>, ProviderError> {
        self.secrets(namespace)
            .get_opt(name)
            .await
            .map_err(|e| api_error("GetSecret", e))
    }

    /// The namespace a push writes to: `remoteNamespace`, or the PushSecretMetadata's
    /// (ClusterSecretStore only, as ESO).
    fn push_namespace(&self, meta: &PushMetadata) -> Result<String, ProviderError> {
        match meta.remote_namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(ns) if self.store_kind == StoreKind::ClusterSecretStore => Ok(ns.to_owned()),
            Some(_) => Err(ProviderError::Config(
                "remoteNamespace override is only supported with ClusterSecretStore".into(),
            )),
            None => Ok(self.namespace.clone()),
        }
    }
}

/// `spec.provider.kubernetes.server.url` as the store writes it, for messages.
fn provider_server(provider: &KubernetesProvider) -> String {
    provider
        .server
        .as_ref()
        .map(|s| s.url.clone())
        .unwrap_or_default()
}

/// What kind of kubeconfig problem, without quoting it.
fn kubeconfig_error_kind(e: &kube::config::KubeconfigError) -> &'static str {
    use kube::config::KubeconfigError as E;
    match e {
        E::CurrentContextNotSet => "the kubeconfig names no current context",
        E::LoadContext(_) => "the kubeconfig's context is missing",
        E::LoadClusterOfContext(_) => "the kubeconfig's cluster is missing",
        E::MissingClusterUrl => "the kubeconfig's cluster has no server",
        E::ParseClusterUrl(_) => "the server address is not a URL",
        E::LoadCertificateAuthority(_) => "the CA certificate does not load",
        E::LoadClientCertificate(_) | E::LoadClientKey(_) => {
            "the client certificate or key does not load"
        }
        E::ParseCertificates(_) | E::ParseProxyUrl(_) => {
            "a certificate or proxy address does not parse"
        }
        _ => "the kubeconfig is not valid",
    }
}

/// The store's connection as a kubeconfig: the Secret `authRef` names, or one built from
/// `server` and `auth`.
async fn kubeconfig(
    provider: &KubernetesProvider,
    scope: &StoreScope,
    referents: &dyn Referents,
) -> Result<Kubeconfig, ProviderError> {
    if let Some(auth_ref) = &provider.auth_ref {
        if provider.auth.is_some() {
            return Err(ProviderError::Config(
                "spec.provider.kubernetes: authRef and inline auth cannot both be set".into(),
            ));
        }
        let text = secret_key(auth_ref, "authRef", scope, referents).await?;
        let text = std::str::from_utf8(text.expose()).map_err(|_| {
            ProviderError::Config(
                "spec.provider.kubernetes.authRef: the kubeconfig is not UTF-8".into(),
            )
        })?;
        let kubeconfig = Kubeconfig::from_yaml(text).map_err(|_| {
            ProviderError::Config(format!(
                "spec.provider.kubernetes.authRef: key {:?} of Secret {:?} is not a kubeconfig",
                auth_ref.key, auth_ref.name
            ))
        })?;
        refuse_local_access(&kubeconfig)?;
        return Ok(kubeconfig);
    }
    let Some(auth) = &provider.auth else {
        return Err(ProviderError::Config(
            "spec.provider.kubernetes: no auth provider given (set auth or authRef)".into(),
        ));
    };
    let server = provider.server.clone().unwrap_or_default();
    if server.url.is_empty() {
        return Err(ProviderError::Config(
            "spec.provider.kubernetes: no server URL provided".into(),
        ));
    }
    let methods = [
        auth.token.is_some(),
        auth.service_account.is_some(),
        auth.cert.is_some(),
    ];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(ProviderError::Config(
            "spec.provider.kubernetes.auth: multiple auth methods provided: set exactly one of \
             token, serviceAccount, or cert"
                .into(),
        ));
    }
    let mut user = AuthInfo::default();
    if let Some(token) = &auth.token {
        let token = secret_key(
            &token.bearer_token,
            "auth.token.bearerToken",
            scope,
            referents,
        )
        .await?;
        user.token = Some(text(token, "auth.token.bearerToken")?.into());
    } else if let Some(account) = &auth.service_account {
        let ns = scope.referent_namespace(account.namespace.as_deref());
        let token = referents
            .service_account_token(ns, &account.name, &account.audiences, TOKEN_SECONDS)
            .await?;
        user.token = Some(text(token, "auth.serviceAccount")?.into());
    } else if let Some(cert) = &auth.cert {
        let pem = secret_key(&cert.client_cert, "auth.cert.clientCert", scope, referents).await?;
        let key = secret_key(&cert.client_key, "auth.cert.clientKey", scope, referents).await?;
        let b64 = base64::engine::general_purpose::STANDARD;
        user.client_certificate_data = Some(b64.encode(pem.expose()));
        user.client_key_data = Some(b64.encode(key.expose()).into());
    } else {
        return Err(ProviderError::Config(
            "spec.provider.kubernetes.auth: no auth provider given".into(),
        ));
    }
    let ca = ca_pem(&server, scope, referents).await?;
    let url = if server.url.contains("://") {
        server.url.clone()
    } else {
        format!("https://{}", server.url)
    };
    Ok(Kubeconfig {
        clusters: vec![NamedCluster {
            name: "store".into(),
            cluster: Some(Cluster {
                server: Some(url),
                certificate_authority_data: ca
                    .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem.expose())),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "store".into(),
            auth_info: Some(user),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: "store".into(),
            context: Some(Context {
                cluster: "store".into(),
                user: Some("store".into()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some("store".into()),
        ..Kubeconfig::default()
    })
}

/// Refuses a kubeconfig that would run a command or read a file of the controller's.
fn refuse_local_access(kubeconfig: &Kubeconfig) -> Result<(), ProviderError> {
    let refuse = |what: &str| {
        Err(ProviderError::Config(format!(
            "spec.provider.kubernetes.authRef: the kubeconfig uses {what}, which secret-sync does \
             not allow (only inline data: token, client-certificate-data, \
             certificate-authority-data)"
        )))
    };
    for cluster in kubeconfig
        .clusters
        .iter()
        .filter_map(|c| c.cluster.as_ref())
    {
        if cluster.certificate_authority.is_some() {
            return refuse("a certificate-authority file");
        }
    }
    for user in kubeconfig
        .auth_infos
        .iter()
        .filter_map(|u| u.auth_info.as_ref())
    {
        if user.exec.is_some() {
            return refuse("an exec credential plugin");
        }
        if user.auth_provider.is_some() {
            return refuse("an auth-provider");
        }
        if user.token_file.is_some() {
            return refuse("a token file");
        }
        if user.client_certificate.is_some() || user.client_key.is_some() {
            return refuse("a client certificate or key file");
        }
    }
    Ok(())
}

/// A credential as text.
fn text(value: SecretBytes, field: &str) -> Result<String, ProviderError> {
    String::from_utf8(value.into_inner())
        .map(|s| s.trim().to_owned())
        .map_err(|_| {
            ProviderError::Config(format!("spec.provider.kubernetes.{field} is not UTF-8"))
        })
}

/// One Secret key a credential selector names, in the namespace the store's kind allows.
async fn secret_key(
    selector: &SecretKeySelector,
    field: &str,
    scope: &StoreScope,
    referents: &dyn Referents,
) -> Result<SecretBytes, ProviderError> {
    if selector.name.is_empty() || selector.key.is_empty() {
        return Err(ProviderError::Config(format!(
            "spec.provider.kubernetes.{field}: name and key must be set"
        )));
    }
    let ns = scope.referent_namespace(selector.namespace.as_deref());
    Ok(referents
        .secret_key(ns, &selector.name, &selector.key)
        .await?)
}

/// The CA to trust: `caBundle`, or a `caProvider` key, with ESO's namespace rules.
async fn ca_pem(
    server: &KubernetesServer,
    scope: &StoreScope,
    referents: &dyn Referents,
) -> Result<Option<SecretBytes>, ProviderError> {
    if let Some(bundle) = server.ca_bundle.as_ref().filter(|b| !b.0.is_empty()) {
        return Ok(Some(SecretBytes::new(bundle.0.clone())));
    }
    let Some(ca) = &server.ca_provider else {
        return Ok(None);
    };
    let ns = match (scope.kind, ca.namespace.as_deref()) {
        (StoreKind::ClusterSecretStore, Some(ns)) => ns,
        (StoreKind::ClusterSecretStore, None) => {
            return Err(ProviderError::Config(
                "CAProvider.namespace must not be empty with ClusterSecretStore".into(),
            ));
        }
        (StoreKind::SecretStore, Some(_)) => {
            return Err(ProviderError::Config(
                "CAProvider.namespace must be empty with SecretStore".into(),
            ));
        }
        (StoreKind::SecretStore, None) => scope.namespace.as_str(),
    };
    let pem = match ca.type_ {
        CaProviderType::Secret => referents.secret_key(ns, &ca.name, &ca.key).await?,
        CaProviderType::ConfigMap => referents.config_map_key(ns, &ca.name, &ca.key).await?,
    };
    Ok(Some(pem))
}

/// A Kubernetes API error as a provider error: the apiserver's status message names objects,
/// never values.
fn api_error(operation: &'static str, e: kube::Error) -> ProviderError {
    match &e {
        kube::Error::Api(status) if status.code == 401 => ProviderError::Auth {
            message: status.message.clone(),
            source: None,
        },
        kube::Error::Api(status) if status.code == 403 => ProviderError::AccessDenied {
            message: status.message.clone(),
        },
        kube::Error::Api(status) if status.code == 429 => ProviderError::Throttled {
            message: status.message.clone(),
        },
        // A body that does not decode is not quoted: it may hold a Secret's data.
        kube::Error::SerdeError(_) => ProviderError::Provider {
            operation,
            message: "the API server's answer does not decode".into(),
            source: None,
        },
        _ => ProviderError::Provider {
            operation,
            message: e.to_string(),
            source: None,
        },
    }
}

/// `find.tags` as a label selector, each tag checked as a label (ESO's
/// `labels.ValidatedSelectorFromSet`): a value with a `,` or `!=` must not widen or change the
/// selection.
fn label_selector(tags: &BTreeMap<String, String>) -> Result<String, ProviderError> {
    let segment = |s: &str| {
        s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
            && s.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric())
    };
    let valid_key = |k: &str| {
        let (prefix, name) = k.rsplit_once('/').unwrap_or(("", k));
        !name.is_empty()
            && segment(name)
            && prefix.len() <= 253
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
    };
    let mut selector = Vec::new();
    for (k, v) in tags {
        if !valid_key(k) || !segment(v) {
            return Err(ProviderError::Config(format!(
                "unable to validate selector tags: {k:?} is not a valid label key and value"
            )));
        }
        selector.push(format!("{k}={v}"));
    }
    Ok(selector.join(","))
}

/// `metadataPolicy: Fetch`: `{"annotations":{…},"labels":{…}}`, as ESO marshals it (a missing
/// map is `null`).
fn metadata_json(secret: &Secret) -> SecretBytes {
    let map = |m: Option<&BTreeMap<String, String>>| match m {
        None => "null".to_owned(),
        Some(m) => {
            let mut out = String::from("{");
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                secret_sync_gosem::json::write_string(&mut out, k, false);
                out.push(':');
                secret_sync_gosem::json::write_string(&mut out, v, false);
            }
            out.push('}');
            out
        }
    };
    SecretBytes::from(format!(
        "{{\"annotations\":{},\"labels\":{}}}",
        map(secret.metadata.annotations.as_ref()),
        map(secret.metadata.labels.as_ref())
    ))
}

/// ESO's `PushSecretMetadata` for this provider (`spec`): labels and annotations to set on the
/// remote Secret, how they merge with its own, and (ClusterSecretStore only) another namespace.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushMetadata {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    target_merge_policy: Option<String>,
    #[serde(default)]
    source_merge_policy: Option<String>,
    #[serde(default)]
    remote_namespace: Option<String>,
}

impl PushMetadata {
    fn of(metadata: Option<&serde_json::Value>) -> Result<Self, ProviderError> {
        let Some(spec) = metadata.and_then(|m| m.get("spec")) else {
            return Ok(Self::default());
        };
        let meta: Self = serde_json::from_value(spec.clone()).map_err(|_| {
            ProviderError::Config(
                "unable to parse metadata parameters: PushSecretMetadata spec must have string \
                 maps labels and annotations, and string policies"
                    .into(),
            )
        })?;
        match meta.source_merge_policy.as_deref() {
            None | Some("" | "Merge" | "Replace") => {}
            Some(other) => {
                return Err(ProviderError::Config(format!(
                    "unexpected source merge policy {other:?}"
                )));
            }
        }
        match meta.target_merge_policy.as_deref() {
            None | Some("" | "Merge" | "Replace" | "Ignore") => Ok(meta),
            Some(other) => Err(ProviderError::Config(format!(
                "unexpected target merge policy {other:?}"
            ))),
        }
    }

    /// The labels and annotations pushed: the local Secret's with the metadata's merged in
    /// (`sourceMergePolicy: Merge`, the default), or the metadata's alone (`Replace`).
    fn source_metadata(
        &self,
        source: &crate::PushSource,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        match self.source_merge_policy.as_deref() {
            Some("Replace") => (self.labels.clone(), self.annotations.clone()),
            _ => {
                let mut labels = source.labels.clone();
                labels.extend(self.labels.clone());
                let mut annotations = source.annotations.clone();
                annotations.extend(self.annotations.clone());
                (labels, annotations)
            }
        }
    }

    /// The remote Secret's labels or annotations after a push: `ours` merged into `theirs`
    /// (`Merge`, the default), in place of them (`Replace`), or theirs untouched (`Ignore`).
    fn merged(
        &self,
        theirs: Option<BTreeMap<String, String>>,
        ours: &BTreeMap<String, String>,
    ) -> Option<BTreeMap<String, String>> {
        match self.target_merge_policy.as_deref() {
            Some("Ignore") => theirs,
            Some("Replace") => Some(ours.clone()).filter(|m| !m.is_empty()),
            _ => {
                let mut merged = theirs.unwrap_or_default();
                merged.extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
                Some(merged).filter(|m| !m.is_empty())
            }
        }
    }
}

#[async_trait]
impl Provider for KubernetesClient {
    async fn get(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let secret = self
            .read(&self.namespace, &remote.key)
            .await?
            .ok_or_else(|| ProviderError::NotFound {
                key: remote.key.clone(),
            })?;
        Ok(if remote.metadata {
            metadata_json(&secret)
        } else {
            crate::keyed::encode(
                secret
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str(), v.0.as_slice())),
            )
        })
    }

    async fn find(&self, find: &Find) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        let mut params = ListParams::default();
        if !find.tags.is_empty() {
            params = params.labels(&label_selector(&find.tags)?);
        }
        let matcher = match find.name_regexp.as_deref() {
            Some(pattern) => Some(secret_sync_gosem::GoRegexp::new(pattern).map_err(|e| {
                ProviderError::Config(format!("find.name.regexp does not compile: {e}"))
            })?),
            None => None,
        };
        let list = self
            .secrets(&self.namespace)
            .list(&params)
            .await
            .map_err(|e| api_error("ListSecrets", e))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|secret| {
                let name = secret.metadata.name.clone()?;
                let selected = matcher.as_ref().is_none_or(|m| m.is_match(&name));
                selected.then(|| {
                    let data = secret.data.iter().flatten();
                    (
                        name,
                        crate::keyed::to_json(data.map(|(k, v)| (k.as_str(), v.0.as_slice()))),
                    )
                })
            })
            .collect())
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    resource: Some("secrets".into()),
                    namespace: Some(self.namespace.clone()),
                    verb: Some("get".into()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer = Api::<SelfSubjectAccessReview>::all(self.kube.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| api_error("CreateSelfSubjectAccessReview", e))?;
        if answer.status.is_some_and(|s| s.allowed) {
            Ok(Validation::Ready)
        } else {
            Err(ProviderError::AccessDenied {
                message: format!(
                    "client is not allowed to get secrets in namespace {:?}",
                    self.namespace
                ),
            })
        }
    }

    fn metric_name(&self) -> &'static str {
        "Kubernetes"
    }

    /// A Secret's data is a map; its metadata (`metadataPolicy: Fetch`) a document.
    fn keyed(&self, remote: &RemoteRef) -> bool {
        !remote.metadata
    }

    fn get_call_name(&self) -> &'static str {
        "GetSecret"
    }

    fn find_call_name(&self) -> &'static str {
        "ListSecrets"
    }

    async fn push(&self, remote: &PushRef, value: &[u8]) -> Result<bool, ProviderError> {
        let meta = PushMetadata::of(remote.metadata.as_ref())?;
        let namespace = self.push_namespace(&meta)?;
        let existing = self.read(&namespace, &remote.key).await?;
        let mut secret = existing.clone().unwrap_or_else(|| Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(remote.key.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            ..Default::default()
        });
        let source = remote.source.as_deref().cloned().unwrap_or_default();
        // As ESO: the local Secret's type (a type change of an existing Secret is refused by
        // the API server, as it is for ESO).
        secret.type_ = Some(source.type_.clone().unwrap_or_else(|| "Opaque".into()));
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        match remote.property.as_deref().filter(|p| !p.is_empty()) {
            Some(property) => {
                data.insert(property.to_owned(), ByteString(value.to_vec()));
            }
            None if remote.source.is_some() => {
                *data = source
                    .data
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
                    .collect();
            }
            None => {
                return Err(ProviderError::Config(
                    "requires property in RemoteRef to push secret value if secret key is defined"
                        .into(),
                ));
            }
        }
        let (labels, annotations) = meta.source_metadata(&source);
        secret.metadata.labels = meta.merged(secret.metadata.labels.take(), &labels);
        secret.metadata.annotations = meta.merged(secret.metadata.annotations.take(), &annotations);
        let api = self.secrets(&namespace);
        match existing {
            None => {
                api.create(&PostParams::default(), &secret)
                    .await
                    .map_err(|e| api_error("CreateSecret", e))?;
                Ok(true)
            }
            Some(before) if before == secret => Ok(false),
            Some(_) => {
                api.replace(&remote.key, &PostParams::default(), &secret)
                    .await
                    .map_err(|e| api_error("UpdateSecret", e))?;
                Ok(true)
            }
        }
    }

    async fn exists(&self, remote: &PushRef) -> Result<bool, ProviderError> {
        let meta = PushMetadata::of(remote.metadata.as_ref())?;
        let namespace = self.push_namespace(&meta)?;
        Ok(match self.read(&namespace, &remote.key).await? {
            None => false,
            Some(secret) => match remote.property.as_deref().filter(|p| !p.is_empty()) {
                Some(property) => secret.data.is_some_and(|d| d.contains_key(property)),
                None => true,
            },
        })
    }

    async fn delete_pushed(&self, remote: &PushRef) -> Result<(), ProviderError> {
        let meta = PushMetadata::of(remote.metadata.as_ref())?;
        let namespace = self.push_namespace(&meta)?;
        let Some(mut secret) = self.read(&namespace, &remote.key).await? else {
            return Ok(());
        };
        let api = self.secrets(&namespace);
        if let Some(property) = remote.property.as_deref().filter(|p| !p.is_empty()) {
            let data = secret.data.get_or_insert_with(BTreeMap::new);
            if !data.contains_key(property) {
                return Ok(());
            }
            if data.len() > 1 {
                data.remove(property);
                api.replace(&remote.key, &PostParams::default(), &secret)
                    .await
                    .map_err(|e| api_error("UpdateSecret", e))?;
                return Ok(());
            }
        }
        match api.delete(&remote.key, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(api_error("DeleteSecret", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(data: &[(&str, &[u8])]) -> Secret {
        Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn metadata_is_annotations_then_labels_with_null_for_none() {
        let mut s = secret(&[]);
        s.metadata.labels = Some(BTreeMap::from([("app".into(), "db".into())]));
        assert_eq!(
            metadata_json(&s).expose(),
            br#"{"annotations":null,"labels":{"app":"db"}}"#
        );
    }

    #[test]
    fn push_metadata_merges_replaces_or_ignores() {
        let theirs = || Some(BTreeMap::from([("keep".to_owned(), "1".to_owned())]));
        let ours = BTreeMap::from([("add".to_owned(), "2".to_owned())]);
        let policy = |p: &str| {
            PushMetadata::of(Some(&serde_json::json!({"spec": {"targetMergePolicy": p}})))
                .map(|m| m.merged(theirs(), &ours))
                .ok()
                .flatten()
                .map(|m| m.into_keys().collect::<Vec<_>>())
        };
        assert_eq!(policy("Merge"), Some(vec!["add".into(), "keep".into()]));
        assert_eq!(policy("Replace"), Some(vec!["add".into()]));
        assert_eq!(policy("Ignore"), Some(vec!["keep".into()]));
        let bad = PushMetadata::of(Some(
            &serde_json::json!({"spec": {"targetMergePolicy": "X"}}),
        ));
        assert!(matches!(bad, Err(ProviderError::Config(m)) if m.contains("\"X\"")));
    }

    #[test]
    fn tags_must_be_labels_so_a_selector_cannot_be_widened() {
        let tags = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert_eq!(
            label_selector(&tags("app.kubernetes.io/name", "web"))
                .ok()
                .as_deref(),
            Some("app.kubernetes.io/name=web")
        );
        assert_eq!(
            label_selector(&tags("tier", "")).ok().as_deref(),
            Some("tier=")
        );
        for (k, v) in [
            ("tier", "web,env!=prod"),
            ("a b", "x"),
            ("tier", "-x"),
            ("", "x"),
        ] {
            assert!(label_selector(&tags(k, v)).is_err(), "{k:?}={v:?}");
        }
    }

    #[test]
    fn kubeconfigs_that_run_commands_or_read_files_are_refused() {
        let with_exec = r#"
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://example:6443"}}]
users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"#;
        let with_file = with_exec.replace(
            "{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}}",
            "{tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}",
        );
        let with_token = with_exec.replace(
            "{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}}",
            "{token: abc}",
        );
        for (yaml, refused) in [(with_exec, true), (&with_file, true), (&with_token, false)] {
            let config = Kubeconfig::from_yaml(yaml).expect("a kubeconfig");
            assert_eq!(refuse_local_access(&config).is_err(), refused, "{yaml}");
        }
    }
}
