//! `GitlabDeployToken`: GitLab deploy tokens, revoked when replaced.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::SecretKeySelector;

/// Where to create a deploy token, and with which scopes.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "GitlabDeployToken",
    plural = "gitlabdeploytokens",
    singular = "gitlabdeploytoken",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "GitlabDeployToken creates a GitLab deploy token for a project or group (keys `username` and `token`)."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(
    transform = crate::meta::strip_null_from_enums,
    extend("x-kubernetes-validations" = [{
        "rule": "has(self.projectID) != has(self.groupID)",
        "message": "exactly one of projectID or groupID must be set"
    }])
)]
#[schemars(rename = "GitlabDeployTokenSpec")]
pub struct GitlabDeployTokenSpec {
    /// URL of the GitLab instance. Defaults to `https://gitlab.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Numeric ID or path (such as "group/project", not URL-encoded) of the project. Set this
    /// or `groupID`.
    #[serde(default, rename = "projectID", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub project_id: Option<String>,

    /// Numeric ID or path (such as "parent/group", not URL-encoded) of the group. Set this or
    /// `projectID`.
    #[serde(default, rename = "groupID", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub group_id: Option<String>,

    /// Name of the deploy token.
    #[schemars(length(min = 1))]
    pub name: String,

    /// Scopes granted to the token; at least one.
    #[schemars(length(min = 1))]
    pub scopes: Vec<GitlabDeployTokenScope>,

    /// When the token expires on GitLab's side. Unset: it never expires, and is only revoked
    /// when replaced or when its ExternalSecret is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,

    /// Username of the token. GitLab defaults it to `gitlab+deploy-token-{n}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,

    /// How to authenticate to the GitLab API.
    pub auth: GitlabDeployTokenAuth,
}

super::missing_spec_is_default!(GitlabDeployTokenSpec);

/// A scope of a GitLab deploy token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GitlabDeployTokenScope {
    ReadRepository,
    ReadRegistry,
    WriteRegistry,
    ReadPackageRegistry,
    WritePackageRegistry,
    ReadVirtualRegistry,
    WriteVirtualRegistry,
}

/// How to authenticate to the GitLab API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitlabDeployTokenAuth {
    /// An access token (personal, group or project) with the `api` scope and at least the
    /// Maintainer role on the project or group.
    pub token: GitlabDeployTokenSecretRef,
}

/// A GitLab access token kept in a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitlabDeployTokenSecretRef {
    /// The Secret key holding it.
    pub secret_ref: SecretKeySelector,
}
