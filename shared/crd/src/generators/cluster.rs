//! `ClusterGenerator`: one generator spec, usable from every namespace.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    AcrAccessTokenSpec, BeyondtrustWorkloadCredentialsDynamicSecretSpec, CloudsmithAccessTokenSpec,
    EcrAuthorizationTokenSpec, FakeSpec, GENERATOR_API_VERSION, GcrAccessTokenSpec, GeneratorKind,
    GithubAccessTokenSpec, GitlabDeployTokenSpec, GrafanaSpec, MfaSpec, PasswordSpec,
    QuayAccessTokenSpec, SshKeySpec, StsSessionTokenSpec, UuidSpec, VaultDynamicSecretSpec,
    WebhookSpec,
};

/// A generator kind and its spec.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "ClusterGenerator",
    plural = "clustergenerators",
    singular = "clustergenerator",
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    doc = "ClusterGenerator holds the spec of any generator kind, for `generatorRef`s in every namespace. It runs in the namespace of the object that refers to it."
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
pub struct ClusterGeneratorSpec {
    /// The generator kind; the matching field of `generator` must be set.
    pub kind: GeneratorKind,

    /// The spec of the generator: the one field that matches `kind`.
    pub generator: GeneratorSpec,
}

impl ClusterGeneratorSpec {
    /// The namespaced generator this stands for, as ESO builds it: `{apiVersion, kind, spec}`
    /// (no metadata). `None` when the field matching `kind` is unset (ESO's terminal error
    /// "when kind is X, XSpec must be set").
    pub fn to_generator_object(&self) -> Option<serde_json::Value> {
        let spec = self.generator.spec_json(self.kind)?;
        Some(serde_json::json!({
            "apiVersion": GENERATOR_API_VERSION,
            "kind": self.kind.as_str(),
            "spec": spec,
        }))
    }
}

/// The spec of a ClusterGenerator's generator. Exactly one field may be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct GeneratorSpec {
    /// For `ACRAccessToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr_access_token_spec: Option<AcrAccessTokenSpec>,

    /// For `BeyondtrustWorkloadCredentialsDynamicSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beyondtrust_workload_credentials_dynamic_secret_spec:
        Option<BeyondtrustWorkloadCredentialsDynamicSecretSpec>,

    /// For `CloudsmithAccessToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudsmith_access_token_spec: Option<CloudsmithAccessTokenSpec>,

    /// For `ECRAuthorizationToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecr_authorization_token_spec: Option<EcrAuthorizationTokenSpec>,

    /// For `Fake`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fake_spec: Option<FakeSpec>,

    /// For `GCRAccessToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcr_access_token_spec: Option<GcrAccessTokenSpec>,

    /// For `GithubAccessToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_access_token_spec: Option<GithubAccessTokenSpec>,

    /// For `GitlabDeployToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab_deploy_token_spec: Option<GitlabDeployTokenSpec>,

    /// For `QuayAccessToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quay_access_token_spec: Option<QuayAccessTokenSpec>,

    /// For `Password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_spec: Option<PasswordSpec>,

    /// For `SSHKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_spec: Option<SshKeySpec>,

    /// For `STSSessionToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_session_token_spec: Option<StsSessionTokenSpec>,

    /// For `UUID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid_spec: Option<UuidSpec>,

    /// For `VaultDynamicSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_dynamic_secret_spec: Option<VaultDynamicSecretSpec>,

    /// For `Webhook`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_spec: Option<WebhookSpec>,

    /// For `Grafana`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana_spec: Option<GrafanaSpec>,

    /// For `MFA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_spec: Option<MfaSpec>,
}

impl GeneratorSpec {
    /// The spec set for `kind`, as JSON; `None` when that field is unset.
    pub fn spec_json(&self, kind: GeneratorKind) -> Option<serde_json::Value> {
        fn json<T: Serialize>(spec: Option<&T>) -> Option<serde_json::Value> {
            spec.and_then(|s| serde_json::to_value(s).ok())
        }
        match kind {
            GeneratorKind::AcrAccessToken => json(self.acr_access_token_spec.as_ref()),
            GeneratorKind::BeyondtrustWorkloadCredentialsDynamicSecret => json(
                self.beyondtrust_workload_credentials_dynamic_secret_spec
                    .as_ref(),
            ),
            GeneratorKind::CloudsmithAccessToken => {
                json(self.cloudsmith_access_token_spec.as_ref())
            }
            GeneratorKind::EcrAuthorizationToken => {
                json(self.ecr_authorization_token_spec.as_ref())
            }
            GeneratorKind::Fake => json(self.fake_spec.as_ref()),
            GeneratorKind::GcrAccessToken => json(self.gcr_access_token_spec.as_ref()),
            GeneratorKind::GithubAccessToken => json(self.github_access_token_spec.as_ref()),
            GeneratorKind::GitlabDeployToken => json(self.gitlab_deploy_token_spec.as_ref()),
            GeneratorKind::QuayAccessToken => json(self.quay_access_token_spec.as_ref()),
            GeneratorKind::Password => json(self.password_spec.as_ref()),
            GeneratorKind::SshKey => json(self.ssh_key_spec.as_ref()),
            GeneratorKind::StsSessionToken => json(self.sts_session_token_spec.as_ref()),
            GeneratorKind::Uuid => json(self.uuid_spec.as_ref()),
            GeneratorKind::VaultDynamicSecret => json(self.vault_dynamic_secret_spec.as_ref()),
            GeneratorKind::Webhook => json(self.webhook_spec.as_ref()),
            GeneratorKind::Grafana => json(self.grafana_spec.as_ref()),
            GeneratorKind::Mfa => json(self.mfa_spec.as_ref()),
        }
    }
}
