//! Generators (`generators.external-secrets.io/v1alpha1`): resources that produce fresh values
//! (passwords, keys, short-lived tokens) for an ExternalSecret's `dataFrom[].sourceRef.generatorRef`
//! or a PushSecret's `selector.generatorRef`. Every reference produces new values.
//!
//! There is one namespaced kind per generator, whose spec says how to generate; a
//! [`ClusterGenerator`] holds any one of those specs for use from every namespace; a
//! [`GeneratorState`] records what a generator created (a GitLab or Grafana token) until it is
//! cleaned up.
//!
//! The kinds, fields, JSON names, enums and defaults are ESO v2.9.0's. Every namespaced kind reads
//! a missing `spec` as its default spec, and every field ESO defaults has the same default here
//! when absent (such as [`PasswordSpec::length`] 24), so objects written before defaulting read
//! as ESO reads them.
//!
//! | kind | Rust type | spec | ClusterGenerator field |
//! |---|---|---|---|
//! | `ACRAccessToken` | [`AcrAccessToken`] | [`AcrAccessTokenSpec`] | `acrAccessTokenSpec` |
//! | `BeyondtrustWorkloadCredentialsDynamicSecret` | [`BeyondtrustWorkloadCredentialsDynamicSecret`] | [`BeyondtrustWorkloadCredentialsDynamicSecretSpec`] | `beyondtrustWorkloadCredentialsDynamicSecretSpec` |
//! | `CloudsmithAccessToken` | [`CloudsmithAccessToken`] | [`CloudsmithAccessTokenSpec`] | `cloudsmithAccessTokenSpec` |
//! | `ECRAuthorizationToken` | [`EcrAuthorizationToken`] | [`EcrAuthorizationTokenSpec`] | `ecrAuthorizationTokenSpec` |
//! | `Fake` | [`Fake`] | [`FakeSpec`] | `fakeSpec` |
//! | `GCRAccessToken` | [`GcrAccessToken`] | [`GcrAccessTokenSpec`] | `gcrAccessTokenSpec` |
//! | `GithubAccessToken` | [`GithubAccessToken`] | [`GithubAccessTokenSpec`] | `githubAccessTokenSpec` |
//! | `GitlabDeployToken` | [`GitlabDeployToken`] | [`GitlabDeployTokenSpec`] | `gitlabDeployTokenSpec` |
//! | `QuayAccessToken` | [`QuayAccessToken`] | [`QuayAccessTokenSpec`] | `quayAccessTokenSpec` |
//! | `Password` | [`Password`] | [`PasswordSpec`] | `passwordSpec` |
//! | `SSHKey` | [`SshKey`] | [`SshKeySpec`] | `sshKeySpec` |
//! | `STSSessionToken` | [`StsSessionToken`] | [`StsSessionTokenSpec`] | `stsSessionTokenSpec` |
//! | `UUID` | [`Uuid`] | [`UuidSpec`] | `uuidSpec` |
//! | `VaultDynamicSecret` | [`VaultDynamicSecret`] | [`VaultDynamicSecretSpec`] | `vaultDynamicSecretSpec` |
//! | `Webhook` | [`Webhook`] | [`WebhookSpec`] | `webhookSpec` |
//! | `Grafana` | [`Grafana`] | [`GrafanaSpec`] | `grafanaSpec` |
//! | `MFA` | [`Mfa`] | [`MfaSpec`] | `mfaSpec` |

/// Implements `Serialize` and `Deserialize` for a generator spec whose derives carry
/// `#[serde(remote = "Self")]` (which turns them into inherent functions): the same as derived,
/// except that a missing or `null` spec reads as the spec's `Default`, as ESO reads an object
/// without `spec`.
macro_rules! missing_spec_is_default {
    ($spec:ty) => {
        impl serde::Serialize for $spec {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$spec>::serialize(self, serializer)
            }
        }

        impl<'de> serde::Deserialize<'de> for $spec {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Derived($spec);
                impl<'de> serde::Deserialize<'de> for Derived {
                    fn deserialize<D: serde::Deserializer<'de>>(
                        deserializer: D,
                    ) -> Result<Self, D::Error> {
                        <$spec>::deserialize(deserializer).map(Derived)
                    }
                }
                // A missing field reaches here as `deserialize_option` with nothing in it.
                Ok(Option::<Derived>::deserialize(deserializer)?
                    .map(|derived| derived.0)
                    .unwrap_or_default())
            }
        }
    };
}
pub(crate) use missing_spec_is_default;

mod acr;
mod aws;
mod beyondtrust;
mod cloudsmith;
mod cluster;
mod fake;
mod gcr;
mod github;
mod gitlab;
mod grafana;
mod mfa;
mod password;
mod quay;
mod sshkey;
mod state;
mod uuid;
mod vault;
mod webhook;

pub use acr::*;
pub use aws::*;
pub use beyondtrust::*;
pub use cloudsmith::*;
pub use cluster::*;
pub use fake::*;
pub use gcr::*;
pub use github::*;
pub use gitlab::*;
pub use grafana::*;
pub use mfa::*;
pub use password::*;
pub use quay::*;
pub use sshkey::*;
pub use state::*;
pub use uuid::*;
pub use vault::*;
pub use webhook::*;

use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::meta::{DNS_SUBDOMAIN, SECRET_KEY};

/// The API group of every generator kind.
pub const GENERATOR_GROUP: &str = "generators.external-secrets.io";

/// The API version of every generator kind.
pub const GENERATOR_VERSION: &str = "v1alpha1";

/// `apiVersion` of every generator kind: `generators.external-secrets.io/v1alpha1`.
pub const GENERATOR_API_VERSION: &str = "generators.external-secrets.io/v1alpha1";

/// Kind of [`ClusterGenerator`].
pub const CLUSTER_GENERATOR_KIND: &str = "ClusterGenerator";

/// Kind of [`GeneratorState`].
pub const GENERATOR_STATE_KIND: &str = "GeneratorState";

/// Label on a GeneratorState: the hash that identifies its owner and source (ESO's owner key).
pub const LABEL_GENERATOR_STATE_OWNER_KEY: &str = "generators.external-secrets.io/owner-key";

/// Finalizer ESO puts on every GeneratorState until the generator's cleanup has run.
pub const FINALIZER_GENERATOR_STATE: &str = "generatorstate.externalsecrets.io/finalizer";

/// The `kind` of every namespaced generator, in the order of ESO's `GeneratorKind` enum (the
/// values a ClusterGenerator's `spec.kind` accepts).
pub fn generator_kinds() -> &'static [&'static str] {
    const KINDS: [&str; GeneratorKind::ALL.len()] = {
        let mut kinds = [""; GeneratorKind::ALL.len()];
        let mut i = 0;
        while i < kinds.len() {
            kinds[i] = GeneratorKind::ALL[i].as_str();
            i += 1;
        }
        kinds
    };
    &KINDS
}

/// The field of a ClusterGenerator's `spec.generator` that holds the spec of `kind`, such as
/// `passwordSpec` for `Password`; `None` for a kind that is not a generator.
pub fn cluster_generator_field(kind: &str) -> Option<&'static str> {
    kind.parse::<GeneratorKind>()
        .ok()
        .map(GeneratorKind::cluster_generator_field)
}

/// A generator kind: the values of a ClusterGenerator's `spec.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum GeneratorKind {
    #[serde(rename = "ACRAccessToken")]
    AcrAccessToken,
    BeyondtrustWorkloadCredentialsDynamicSecret,
    CloudsmithAccessToken,
    #[serde(rename = "ECRAuthorizationToken")]
    EcrAuthorizationToken,
    Fake,
    #[serde(rename = "GCRAccessToken")]
    GcrAccessToken,
    GithubAccessToken,
    GitlabDeployToken,
    QuayAccessToken,
    Password,
    #[serde(rename = "SSHKey")]
    SshKey,
    #[serde(rename = "STSSessionToken")]
    StsSessionToken,
    #[serde(rename = "UUID")]
    Uuid,
    VaultDynamicSecret,
    Webhook,
    Grafana,
    #[serde(rename = "MFA")]
    Mfa,
}

impl GeneratorKind {
    /// Every kind, in the order of ESO's enum.
    pub const ALL: [GeneratorKind; 17] = [
        Self::AcrAccessToken,
        Self::BeyondtrustWorkloadCredentialsDynamicSecret,
        Self::CloudsmithAccessToken,
        Self::EcrAuthorizationToken,
        Self::Fake,
        Self::GcrAccessToken,
        Self::GithubAccessToken,
        Self::GitlabDeployToken,
        Self::QuayAccessToken,
        Self::Password,
        Self::SshKey,
        Self::StsSessionToken,
        Self::Uuid,
        Self::VaultDynamicSecret,
        Self::Webhook,
        Self::Grafana,
        Self::Mfa,
    ];

    /// The `kind` string, such as `"SSHKey"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AcrAccessToken => "ACRAccessToken",
            Self::BeyondtrustWorkloadCredentialsDynamicSecret => {
                "BeyondtrustWorkloadCredentialsDynamicSecret"
            }
            Self::CloudsmithAccessToken => "CloudsmithAccessToken",
            Self::EcrAuthorizationToken => "ECRAuthorizationToken",
            Self::Fake => "Fake",
            Self::GcrAccessToken => "GCRAccessToken",
            Self::GithubAccessToken => "GithubAccessToken",
            Self::GitlabDeployToken => "GitlabDeployToken",
            Self::QuayAccessToken => "QuayAccessToken",
            Self::Password => "Password",
            Self::SshKey => "SSHKey",
            Self::StsSessionToken => "STSSessionToken",
            Self::Uuid => "UUID",
            Self::VaultDynamicSecret => "VaultDynamicSecret",
            Self::Webhook => "Webhook",
            Self::Grafana => "Grafana",
            Self::Mfa => "MFA",
        }
    }

    /// The field of a ClusterGenerator's `spec.generator` for this kind, such as `"sshKeySpec"`.
    pub const fn cluster_generator_field(self) -> &'static str {
        match self {
            Self::AcrAccessToken => "acrAccessTokenSpec",
            Self::BeyondtrustWorkloadCredentialsDynamicSecret => {
                "beyondtrustWorkloadCredentialsDynamicSecretSpec"
            }
            Self::CloudsmithAccessToken => "cloudsmithAccessTokenSpec",
            Self::EcrAuthorizationToken => "ecrAuthorizationTokenSpec",
            Self::Fake => "fakeSpec",
            Self::GcrAccessToken => "gcrAccessTokenSpec",
            Self::GithubAccessToken => "githubAccessTokenSpec",
            Self::GitlabDeployToken => "gitlabDeployTokenSpec",
            Self::QuayAccessToken => "quayAccessTokenSpec",
            Self::Password => "passwordSpec",
            Self::SshKey => "sshKeySpec",
            Self::StsSessionToken => "stsSessionTokenSpec",
            Self::Uuid => "uuidSpec",
            Self::VaultDynamicSecret => "vaultDynamicSecretSpec",
            Self::Webhook => "webhookSpec",
            Self::Grafana => "grafanaSpec",
            Self::Mfa => "mfaSpec",
        }
    }
}

impl fmt::Display for GeneratorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `kind` that is not a generator kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a generator kind")]
pub struct UnknownGeneratorKind(pub String);

impl FromStr for GeneratorKind {
    type Err = UnknownGeneratorKind;

    /// Exact, case-sensitive match on the `kind` string, as ESO matches it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownGeneratorKind(s.to_owned()))
    }
}

/// A key in a Secret in the namespace of the object that refers to it (ESO's generator-local
/// `SecretKeySelector`, which has no `namespace`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretKeySelector {
    /// Name of the Secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,

    /// Key in the Secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY))]
    pub key: String,
}

/// Schema of a Go `int` field: an integer with no format, as ESO's CRDs have it.
pub(crate) fn go_int(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer" })
}
