//! `GithubAccessToken`: GitHub App installation tokens.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::SecretKeySelector;

/// Which GitHub App installation to get a token for.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "GithubAccessToken",
    plural = "githubaccesstokens",
    singular = "githubaccesstoken",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "GithubAccessToken returns a GitHub App installation access token (`ghs_...`) under the key `token`."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(rename = "GithubAccessTokenSpec")]
pub struct GithubAccessTokenSpec {
    /// URL of the GitHub instance. Defaults to `https://github.com/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// ID of the GitHub App.
    #[serde(rename = "appID")]
    pub app_id: String,

    /// ID of the App's installation.
    #[serde(rename = "installID")]
    pub install_id: String,

    /// Repositories the token may access. Unset means all the installation can access.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,

    /// Permissions of the token, such as `contents: read`. Unset means all the App has.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub permissions: BTreeMap<String, String>,

    /// How to authenticate as the App.
    pub auth: GithubAuth,
}

super::missing_spec_is_default!(GithubAccessTokenSpec);

/// How to authenticate as a GitHub App.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GithubAuth {
    /// The App's private key.
    pub private_key: GithubSecretRef,
}

/// A GitHub credential kept in a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GithubSecretRef {
    /// The Secret key holding it.
    pub secret_ref: SecretKeySelector,
}
