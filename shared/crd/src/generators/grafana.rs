//! `Grafana`: Grafana service account tokens, deleted when replaced.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalSecretKeySelector;

/// Which Grafana to create a service account token in.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "Grafana",
    plural = "grafanas",
    singular = "grafana",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "Grafana creates a service account token in a Grafana instance (keys `login` and `token`)."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(rename = "GrafanaSpec")]
pub struct GrafanaSpec {
    /// URL of the Grafana instance.
    pub url: String,

    /// How to authenticate to Grafana; the identity must be allowed to manage service accounts.
    pub auth: GrafanaAuth,

    /// The service account the token is created for.
    pub service_account: GrafanaServiceAccount,
}

super::missing_spec_is_default!(GrafanaSpec);

/// A Grafana service account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaServiceAccount {
    /// Name of the service account.
    pub name: String,

    /// Basic role of the service account, such as `Viewer`.
    pub role: String,

    /// Lifetime of the token in seconds. Unset: the token does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub seconds_to_live: Option<i64>,
}

/// How to authenticate to Grafana. Set one method.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaAuth {
    /// A service account token kept in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<LocalSecretKeySelector>,

    /// Basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<GrafanaBasicAuth>,
}

/// Grafana basic authentication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaBasicAuth {
    /// The username.
    pub username: String,

    /// The Secret key holding the password.
    pub password: LocalSecretKeySelector,
}

/// What the Grafana generator records in a GeneratorState (`spec.state`) to delete the token
/// later.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaServiceAccountTokenState {
    /// The service account and token.
    pub service_account: GrafanaStateServiceAccount,
}

/// The service account and token a Grafana generator created.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrafanaStateServiceAccount {
    /// ID of the service account.
    #[serde(default)]
    pub id: Option<i64>,

    /// Login of the service account.
    #[serde(default)]
    pub login: Option<String>,

    /// ID of the token.
    #[serde(default, rename = "tokenID")]
    pub token_id: Option<i64>,
}
