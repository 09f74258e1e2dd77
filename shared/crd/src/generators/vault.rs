//! `VaultDynamicSecret`: a request against any Vault path, such as a database or PKI engine.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretStoreRetrySettings;
use crate::meta::preserve_unknown_fields;
use crate::provider::VaultProvider;

/// The Vault request whose response becomes the generator's output.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "VaultDynamicSecret",
    plural = "vaultdynamicsecrets",
    singular = "vaultdynamicsecret",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "VaultDynamicSecret calls a Vault path (read, list, delete or write) and returns part of the response."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
#[schemars(rename = "VaultDynamicSecretSpec")]
pub struct VaultDynamicSecretSpec {
    /// Controller class that handles this generator (like an ingress class). Empty means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,

    /// HTTP method. Unset or `GET` reads, `LIST` lists, `DELETE` deletes; any other value
    /// writes `parameters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,

    /// Body of a write (any method other than GET, LIST and DELETE), as arbitrary JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub parameters: Option<serde_json::Value>,

    /// Query parameters of a read; each key may have several values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub get_parameters: BTreeMap<String, Vec<String>>,

    /// Which part of the response is returned: `Data` (the default), `Auth` or `Raw`.
    #[serde(default)]
    pub result_type: VaultDynamicSecretResultType,

    /// HTTP retries against Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_settings: Option<SecretStoreRetrySettings>,

    /// How to reach and log in to Vault: the same settings as a store's `provider.vault`.
    // Without the store's rules: ESO runs no webhook for generators.
    #[schemars(transform = crate::meta::strip_cel_rules)]
    pub provider: VaultProvider,

    /// The Vault path, such as "/pki/issue/example-dot-com".
    pub path: String,

    /// Returns no keys instead of failing when Vault answers with no data.
    #[serde(default)]
    pub allow_empty_response: bool,
}

super::missing_spec_is_default!(VaultDynamicSecretSpec);

/// Part of a Vault response a VaultDynamicSecret returns: `Data` (the `data` section), `Auth`
/// (the `auth` section) or `Raw` (the whole response).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum VaultDynamicSecretResultType {
    #[default]
    Data,
    Auth,
    Raw,
}
