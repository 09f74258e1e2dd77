//! `GCRAccessToken`: Google Cloud access tokens for container registries.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{DNS_LABEL, DNS_SUBDOMAIN, SECRET_KEY, ServiceAccountSelector};
use crate::provider::GcpSecretRef;

/// Which project to get a token for, and how to authenticate to Google Cloud.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "GCRAccessToken",
    root = "GcrAccessToken",
    plural = "gcraccesstokens",
    singular = "gcraccesstoken",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "GCRAccessToken returns a Google Cloud access token for logging in to GCR or Artifact Registry."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(rename = "GcrAccessTokenSpec")]
pub struct GcrAccessTokenSpec {
    /// How to authenticate to Google Cloud.
    pub auth: GcpSmAuth,

    /// Project to authenticate with.
    #[serde(rename = "projectID")]
    pub project_id: String,
}

super::missing_spec_is_default!(GcrAccessTokenSpec);

/// How to authenticate to Google Cloud. Set one method.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSmAuth {
    /// A service account key kept in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<GcpSecretRef>,

    /// GKE Workload Identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<GcrWorkloadIdentity>,

    /// Workload Identity Federation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity_federation: Option<GcpWorkloadIdentityFederation>,
}

/// GKE Workload Identity for the GCR generator; unlike a store's, the cluster's location and
/// name are required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcrWorkloadIdentity {
    /// The Kubernetes ServiceAccount bound to a Google service account.
    pub service_account_ref: ServiceAccountSelector,

    /// Location of the cluster.
    pub cluster_location: String,

    /// Name of the cluster.
    pub cluster_name: String,

    /// Project of the cluster.
    #[serde(
        default,
        rename = "clusterProjectID",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_project_id: Option<String>,
}

/// Workload Identity Federation: exchanges an external token for a Google access token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpWorkloadIdentityFederation {
    /// A ConfigMap key holding the external account credential configuration (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred_config: Option<GcpConfigMapReference>,

    /// ServiceAccount whose token is exchanged, when Kubernetes is the identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountSelector>,

    /// AWS region and credentials to use when AWS is the identity provider and its metadata
    /// server is not available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_security_credentials: Option<GcpAwsCredentialsConfig>,

    /// STS audience (workload identity pool and provider); overrides the one in `credConfig`.
    /// Needed with `serviceAccountRef` or `awsSecurityCredentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,

    /// Expected token URL of the credential configuration, checked against `credConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_token_endpoint: Option<String>,

    /// Google service account to impersonate after the exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), pattern(r"^.*@.*\.iam\.gserviceaccount\.com$"))]
    pub gcp_service_account_email: Option<String>,
}

/// A key in a ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpConfigMapReference {
    /// Name of the ConfigMap.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,

    /// Namespace of the ConfigMap; defaults to the local namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub namespace: Option<String>,

    /// Key holding the configuration.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY))]
    pub key: String,
}

/// AWS region and credentials for Workload Identity Federation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpAwsCredentialsConfig {
    /// AWS region, such as "ap-south-1".
    #[schemars(length(min = 1, max = 50), pattern(r"^[a-z0-9-]+$"))]
    pub region: String,

    /// Secret with the keys `aws_access_key_id`, `aws_secret_access_key` and optionally
    /// `aws_session_token`.
    pub aws_credentials_secret_ref: GcpSecretReference,
}

/// A Secret by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,

    /// Namespace of the Secret; defaults to the local namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub namespace: Option<String>,
}
