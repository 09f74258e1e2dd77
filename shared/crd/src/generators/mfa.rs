//! `MFA`: time-based one-time passwords (RFC 6238).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::go_int;
use crate::meta::SecretKeySelector;

/// The TOTP seed and parameters.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "MFA",
    root = "Mfa",
    plural = "mfas",
    singular = "mfa",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "MFA generates a TOTP code (RFC 6238) from a seed kept in a Secret (keys `token` and `timeLeft`)."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(rename = "MfaSpec")]
pub struct MfaSpec {
    /// The Secret key holding the seed.
    pub secret: SecretKeySelector,

    /// Number of digits. Defaults to 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "go_int")]
    pub length: Option<i64>,

    /// Seconds a code stays valid. Defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "go_int")]
    pub time_period: Option<i64>,

    /// Hash algorithm. Defaults to SHA1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,

    /// Time to compute the code for, instead of now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Time>,
}

super::missing_spec_is_default!(MfaSpec);
