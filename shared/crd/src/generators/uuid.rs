//! `UUID`: random UUIDs.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The UUID generator has no settings.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "UUID",
    root = "Uuid",
    plural = "uuids",
    singular = "uuid",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "UUID generates a random UUID under the key `uuid`."
)]
#[serde(remote = "Self")]
#[schemars(rename = "UuidSpec")]
pub struct UuidSpec {}

super::missing_spec_is_default!(UuidSpec);
