//! `ACRAccessToken`: Azure Container Registry tokens.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{SecretKeySelector, ServiceAccountSelector};

/// Which registry to get a token for, and how to authenticate to Azure.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "ACRAccessToken",
    root = "AcrAccessToken",
    plural = "acraccesstokens",
    singular = "acraccesstoken",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "ACRAccessToken returns an Azure Container Registry refresh token, or an access token limited to `scope`."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
#[schemars(rename = "AcrAccessTokenSpec")]
pub struct AcrAccessTokenSpec {
    /// How to authenticate to Azure.
    pub auth: AcrAuth,

    /// Azure tenant; needed for service principal authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,

    /// Domain of the registry, such as "example.azurecr.io".
    pub registry: String,

    /// Token scope, such as "repository:my-repository:pull,push". Unset returns a refresh token
    /// with full scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,

    /// Azure cloud: `PublicCloud` (the default), `USGovernmentCloud`, `ChinaCloud`,
    /// `GermanCloud` or `AzureStackCloud`.
    #[serde(default)]
    pub environment_type: AzureEnvironmentType,
}

super::missing_spec_is_default!(AcrAccessTokenSpec);

/// Azure cloud whose endpoints are used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AzureEnvironmentType {
    #[default]
    PublicCloud,
    USGovernmentCloud,
    ChinaCloud,
    GermanCloud,
    AzureStackCloud,
}

/// How to authenticate to Azure for ACR. Set one method.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcrAuth {
    /// A service principal's client ID and secret from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal: Option<AcrServicePrincipalAuth>,

    /// The pod's managed identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_identity: Option<AcrManagedIdentityAuth>,

    /// Azure Workload Identity with a ServiceAccount token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<AcrWorkloadIdentityAuth>,
}

/// Service principal authentication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcrServicePrincipalAuth {
    /// Where the client ID and secret are kept.
    pub secret_ref: AcrServicePrincipalAuthSecretRef,
}

/// A service principal's credentials kept in Secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcrServicePrincipalAuthSecretRef {
    /// The client ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<SecretKeySelector>,

    /// The client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretKeySelector>,
}

/// Managed identity authentication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcrManagedIdentityAuth {
    /// The identity to use when the pod has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<String>,
}

/// Workload Identity authentication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcrWorkloadIdentityAuth {
    /// The ServiceAccount whose token is exchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountSelector>,
}
