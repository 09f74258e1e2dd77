//! `spec.provider.kubernetes`: Secrets of a namespace in this or another Kubernetes cluster.

use k8s_openapi::ByteString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{DNS_LABEL, SecretKeySelector, ServiceAccountSelector};
use crate::provider::CaProvider;

/// Reads Secrets of one namespace (`remoteNamespace`) of a Kubernetes cluster, and writes them
/// for PushSecrets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesProvider {
    /// The API server, and the CA that signs its certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<KubernetesServer>,

    /// How to authenticate: set one method. Without it, `authRef` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<KubernetesAuth>,

    /// A Secret key holding a kubeconfig, used instead of `server` and `auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_ref: Option<SecretKeySelector>,

    /// The namespace whose Secrets are read and written.
    #[serde(default = "default_namespace")]
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub remote_namespace: String,
}

fn default_namespace() -> String {
    "default".into()
}

/// Where the API server is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesServer {
    /// The API server's address, such as `https://cluster.example:6443`. Without a scheme,
    /// `https://` is meant.
    #[serde(default = "default_url", skip_serializing_if = "String::is_empty")]
    pub url: String,

    /// PEM CA bundle that signs the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::meta::base64_bytes")]
    pub ca_bundle: Option<ByteString>,

    /// A Secret or ConfigMap holding the CA bundle instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_provider: Option<CaProvider>,
}

impl Default for KubernetesServer {
    fn default() -> Self {
        Self {
            url: default_url(),
            ca_bundle: None,
            ca_provider: None,
        }
    }
}

fn default_url() -> String {
    "kubernetes.default".into()
}

/// How to authenticate to the API server. Set one method.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct KubernetesAuth {
    /// A client certificate and its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<KubernetesCertAuth>,

    /// A bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<KubernetesTokenAuth>,

    /// A ServiceAccount, whose token is requested from this cluster's TokenRequest API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountSelector>,
}

/// A client certificate and key, each a Secret key holding PEM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesCertAuth {
    pub client_cert: SecretKeySelector,
    pub client_key: SecretKeySelector,
}

/// A bearer token kept in a Secret key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesTokenAuth {
    pub bearer_token: SecretKeySelector,
}
