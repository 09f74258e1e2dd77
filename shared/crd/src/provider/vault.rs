//! `spec.provider.vault`: HashiCorp Vault and OpenBao KV engines.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{SecretKeySelector, ServiceAccountSelector};
use crate::provider::CaProvider;

/// Reads and writes secrets in a Vault (or OpenBao) KV engine.
// The rules here and below are ESO's webhook's (the vault provider's ValidateStore, which
// validateStore calls), with its messages; those that compare a reference's namespace with the
// store's cannot be written in CEL, which does not see the store's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(has(self.checkAndSet) && has(self.checkAndSet.required) && self.checkAndSet.required && has(self.version) && self.version == 'v1')",
    "message": "checkAndSet is not supported with Vault KV version v1"
}]))]
pub struct VaultProvider {
    /// How to log in. Set one method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<VaultAuth>,

    /// Address of the server, such as `https://vault.example.com:8200`.
    pub server: String,

    /// Mount path of the KV engine, such as "secret". For v2 the "/data" suffix is optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,

    /// KV engine version: "v1" or "v2" (the default).
    #[serde(default)]
    pub version: VaultKvVersion,

    /// Vault Enterprise namespace, such as "ns1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// PEM CA bundle to trust for https. When neither this nor `caProvider` is set, the system
    /// roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::meta::base64_bytes")]
    pub ca_bundle: Option<ByteString>,

    /// Client certificate for servers that require mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<VaultClientTls>,

    /// A Secret or ConfigMap holding the CA bundle to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_provider: Option<CaProvider>,

    /// Sends replication state with each request so reads see earlier writes (Vault Enterprise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_your_writes: Option<bool>,

    /// Asks standby nodes to forward inconsistent reads to the leader (Vault Enterprise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_inconsistent: Option<bool>,

    /// Extra HTTP headers sent with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,

    /// Check-and-set for writes by PushSecrets (KV v2 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_and_set: Option<VaultCheckAndSet>,
}

/// KV engine version: `v1` or `v2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum VaultKvVersion {
    #[serde(rename = "v1")]
    V1,
    #[default]
    #[serde(rename = "v2")]
    V2,
}

/// Check-and-set for KV v2 writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultCheckAndSet {
    /// Every write must carry the current version, so concurrent changes are not overwritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

/// Client certificate for mutual TLS with the server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.certSecretRef) == has(self.keySecretRef)",
    "message": "when provided, both ClientTLS.ClientCert and ClientTLS.SecretRef should be provided"
}]))]
pub struct VaultClientTls {
    /// Secret holding the client certificate (key defaults to "tls.crt").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<SecretKeySelector>,

    /// Secret holding the client private key (key defaults to "tls.key").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeySelector>,
}

/// How to log in to Vault. Set one method; `namespace` may accompany it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultAuth {
    /// Namespace to log in to, when it differs from the provider's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// A static token kept in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeySelector>,

    /// AppRole login with a role ID and a secret ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role: Option<VaultAppRole>,

    /// Kubernetes login with a ServiceAccount token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<VaultKubernetesAuth>,

    /// LDAP login with a username and password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<VaultLdapAuth>,

    /// JWT/OIDC login with a token from a Secret or a ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<VaultJwtAuth>,

    /// TLS certificate login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<VaultCertAuth>,

    /// AWS IAM login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam: Option<VaultIamAuth>,

    /// Username and password login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pass: Option<VaultUserPassAuth>,

    /// Google Cloud login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<VaultGcpAuth>,
}

/// AppRole login. Give the role ID inline (`roleId`) or from a Secret (`roleRef`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.roleId) && self.roleId != '') || has(self.roleRef)",
    "message": "invalid Auth.AppRole: neither `roleId` nor `roleRef` was supplied"
}]))]
pub struct VaultAppRole {
    /// Mount path of the AppRole method. Defaults to "approle".
    #[serde(default = "default_approle_path")]
    pub path: String,

    /// The role ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,

    /// Secret key holding the role ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_ref: Option<SecretKeySelector>,

    /// Secret key holding the secret ID.
    pub secret_ref: SecretKeySelector,
}

/// Kubernetes login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesAuth {
    /// Mount path of the Kubernetes method. Defaults to "kubernetes".
    #[serde(default = "default_kubernetes_path")]
    pub mount_path: String,

    /// ServiceAccount to request a token for. Takes precedence over `secretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountSelector>,

    /// Secret holding a ServiceAccount token (key defaults to "token"). When neither this nor
    /// `serviceAccountRef` is set, the controller's own token is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,

    /// The Vault role to log in as.
    pub role: String,
}

/// LDAP login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultLdapAuth {
    /// Mount path of the LDAP method. Defaults to "ldap".
    #[serde(default = "default_ldap_path")]
    pub path: String,

    /// The LDAP username.
    pub username: String,

    /// Secret key holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
}

/// Username and password login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultUserPassAuth {
    /// Mount path of the userpass method. Defaults to "userpass".
    #[serde(default = "default_userpass_path")]
    pub path: String,

    /// The username.
    pub username: String,

    /// Secret key holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
}

/// JWT/OIDC login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.secretRef) || has(self.kubernetesServiceAccountToken)",
    "message": "neither `secretRef` nor `kubernetesServiceAccountToken` was supplied as token source for jwt authentication"
}]))]
pub struct VaultJwtAuth {
    /// Mount path of the JWT method. Defaults to "jwt".
    #[serde(default = "default_jwt_path")]
    pub path: String,

    /// The Vault role to log in as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,

    /// Secret key holding the JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,

    /// Requests a short-lived ServiceAccount token and logs in with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_service_account_token: Option<VaultKubernetesServiceAccountTokenAuth>,
}

/// A ServiceAccount token requested through the TokenRequest API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesServiceAccountTokenAuth {
    /// The ServiceAccount to request a token for.
    pub service_account_ref: ServiceAccountSelector,

    /// Deprecated: use `serviceAccountRef.audiences`. Audiences of the token (default ["vault"]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,

    /// Deprecated: lifetime of the token in seconds (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_seconds: Option<i64>,
}

/// TLS certificate login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultCertAuth {
    /// Mount path of the cert method. Defaults to "cert".
    #[serde(default = "default_cert_path")]
    pub path: String,

    /// The Vault role to log in as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_role: Option<String>,

    /// Secret key holding the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<SecretKeySelector>,

    /// Secret key holding the client private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
}

/// AWS IAM login. Without `secretRef` and `jwt`, the controller's own AWS identity is used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultIamAuth {
    /// Mount path of the AWS method. Defaults to "aws" when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,

    /// AWS region for STS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// ARN of an AWS role to assume before logging in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,

    /// The Vault role to log in as.
    pub vault_role: String,

    /// External ID passed when assuming `role`.
    #[serde(
        default,
        rename = "externalID",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<String>,

    /// Value of the X-Vault-AWS-IAM-Server-ID header, which guards against replay.
    #[serde(
        default,
        rename = "vaultAwsIamServerID",
        skip_serializing_if = "Option::is_none"
    )]
    pub vault_aws_iam_server_id: Option<String>,

    /// Static AWS keys kept in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<crate::provider::AwsAuthSecretRef>,

    /// A ServiceAccount token exchanged for AWS credentials (IRSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<crate::provider::AwsJwtAuth>,
}

/// Google Cloud login. Without `secretRef`, `workloadIdentity` and `serviceAccountRef`, the
/// controller's own identity is used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultGcpAuth {
    /// Mount path of the GCP method. Defaults to "gcp".
    #[serde(default = "default_gcp_path")]
    pub path: String,

    /// The Vault role to log in as.
    pub role: String,

    /// Google Cloud project ID.
    #[serde(default, rename = "projectID", skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,

    /// Google Cloud location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,

    /// Service account key kept in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<GcpSecretRef>,

    /// GKE Workload Identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<GcpWorkloadIdentity>,

    /// A ServiceAccount to impersonate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountSelector>,
}

/// Google Cloud credentials kept in a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GcpSecretRef {
    /// Secret key holding the service account key (JSON).
    #[serde(
        default,
        rename = "secretAccessKeySecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret_access_key: Option<SecretKeySelector>,
}

/// GKE Workload Identity settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpWorkloadIdentity {
    /// The Kubernetes ServiceAccount bound to a Google service account.
    pub service_account_ref: ServiceAccountSelector,

    /// Location of the cluster; read from the metadata server when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_location: Option<String>,

    /// Name of the cluster; read from the metadata server when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,

    /// Project of the cluster; read from the metadata server when unset.
    #[serde(
        default,
        rename = "clusterProjectID",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_project_id: Option<String>,
}

fn default_approle_path() -> String {
    "approle".to_owned()
}
fn default_kubernetes_path() -> String {
    "kubernetes".to_owned()
}
fn default_ldap_path() -> String {
    "ldap".to_owned()
}
fn default_userpass_path() -> String {
    "userpass".to_owned()
}
fn default_jwt_path() -> String {
    "jwt".to_owned()
}
fn default_cert_path() -> String {
    "cert".to_owned()
}
fn default_gcp_path() -> String {
    "gcp".to_owned()
}
