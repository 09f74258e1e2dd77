//! `spec.provider.openBao`: ESO's OpenBao provider, a KV engine reached with the Vault client.
//! Its fields are a subset of `spec.provider.vault`'s, under the same names.

use k8s_openapi::ByteString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::SecretKeySelector;
use crate::provider::{
    CaProvider, VaultAppRole, VaultAuth, VaultKvVersion, VaultProvider, VaultUserPassAuth,
};

/// Reads and writes secrets in an OpenBao KV engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(has(self.caBundle) && has(self.caProvider))",
    "message": "at most one of caBundle and caProvider may be set"
}]))]
pub struct OpenBaoProvider {
    /// How to log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<OpenBaoAuth>,

    /// PEM CA bundle that signs the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::meta::base64_bytes")]
    pub ca_bundle: Option<ByteString>,

    /// Where to read the CA bundle from instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_provider: Option<CaProvider>,

    /// OpenBao namespace for reads and writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Server URL, such as `https://openbao.example:8200`.
    pub server: String,

    /// Mount path of the KV engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,

    /// KV engine version: `v1` or `v2` (the default).
    #[serde(default)]
    pub version: VaultKvVersion,
}

/// How to log in to OpenBao: exactly one of `appRole`, `tokenSecretRef` and `userPass`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.appRole), has(self.tokenSecretRef), has(self.userPass)].filter(x, x).size() == 1",
    "message": "exactly one of appRole, tokenSecretRef and userPass must be set"
}]))]
pub struct OpenBaoAuth {
    /// AppRole login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role: Option<VaultAppRole>,

    /// Namespace to log in under, when it differs from `namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// A token, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeySelector>,

    /// Username and password login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pass: Option<VaultUserPassAuth>,
}

impl OpenBaoProvider {
    /// The same settings as a `vault` block: what the Vault client is built from.
    pub fn as_vault(&self) -> VaultProvider {
        VaultProvider {
            auth: self.auth.as_ref().map(|auth| VaultAuth {
                namespace: auth.namespace.clone(),
                token_secret_ref: auth.token_secret_ref.clone(),
                app_role: auth.app_role.clone(),
                user_pass: auth.user_pass.clone(),
                ..VaultAuth::default()
            }),
            server: self.server.clone(),
            path: self.path.clone(),
            version: self.version,
            namespace: self.namespace.clone(),
            ca_bundle: self.ca_bundle.clone(),
            ca_provider: self.ca_provider.clone(),
            ..VaultProvider::default()
        }
    }
}
