//! `CloudsmithAccessToken`: Cloudsmith tokens through OIDC federation.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::ServiceAccountSelector;

/// Which Cloudsmith service to get a token for.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "CloudsmithAccessToken",
    plural = "cloudsmithaccesstokens",
    singular = "cloudsmithaccesstoken",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "CloudsmithAccessToken exchanges a ServiceAccount token for a Cloudsmith access token (OIDC)."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(rename = "CloudsmithAccessTokenSpec")]
pub struct CloudsmithAccessTokenSpec {
    /// Cloudsmith API URL. Defaults to `https://api.cloudsmith.io`.
    #[serde(default, rename = "apiUrl", skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,

    /// Slug of the organization.
    pub org_slug: String,

    /// Slug of the service to authenticate as.
    pub service_slug: String,

    /// The ServiceAccount whose token is exchanged.
    pub service_account_ref: ServiceAccountSelector,
}

super::missing_spec_is_default!(CloudsmithAccessTokenSpec);
