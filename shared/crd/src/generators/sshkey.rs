//! `SSHKey`: SSH key pairs.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::go_int;

/// The kind of SSH key to generate.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "SSHKey",
    root = "SshKey",
    plural = "sshkeys",
    singular = "sshkey",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "SSHKey generates an SSH key pair (keys `privateKey` and `publicKey`)."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
#[schemars(rename = "SshKeySpec")]
pub struct SshKeySpec {
    /// Key type: `rsa` (the default), `ecdsa` or `ed25519`.
    #[serde(default)]
    pub key_type: SshKeyType,

    /// Key size in bits: for RSA 2048 (default), 3072 or 4096; for ECDSA 256 (default), 384 or
    /// 521. Ignored for ed25519.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "go_int", range(min = 256, max = 8192))]
    pub key_size: Option<i64>,

    /// Comment stored in the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

super::missing_spec_is_default!(SshKeySpec);

/// SSH key type: `rsa`, `ecdsa` or `ed25519`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SshKeyType {
    #[default]
    Rsa,
    Ecdsa,
    Ed25519,
}
