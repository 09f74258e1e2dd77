//! `QuayAccessToken`: Quay robot account tokens through OIDC federation.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::ServiceAccountSelector;

/// Which robot account to get a token for.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "QuayAccessToken",
    plural = "quayaccesstokens",
    singular = "quayaccesstoken",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "QuayAccessToken exchanges a ServiceAccount token for a Quay robot account token."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(rename = "QuayAccessTokenSpec")]
pub struct QuayAccessTokenSpec {
    /// Quay instance. Defaults to quay.io.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// The robot account to federate with.
    pub robot_account: String,

    /// The ServiceAccount whose token is exchanged.
    pub service_account_ref: ServiceAccountSelector,
}

super::missing_spec_is_default!(QuayAccessTokenSpec);
