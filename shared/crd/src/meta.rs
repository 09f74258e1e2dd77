//! Types shared by every kind: references to Secrets and ServiceAccounts, condition status, and the
//! schema helpers that keep ESO's validation (name patterns, raw JSON fields).

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// DNS-1123 subdomain: the rule for most Kubernetes object names.
pub(crate) const DNS_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// DNS-1123 label: the rule for namespace names.
pub(crate) const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A key of a Secret or ConfigMap.
pub(crate) const SECRET_KEY: &str = r"^[-._a-zA-Z0-9]+$";

/// Schema of a field that holds arbitrary JSON which the API server keeps as written.
pub(crate) fn preserve_unknown_fields(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// Removes the `null` that schemars adds to the `enum` of an optional enum field, so each enum
/// lists exactly ESO's values. Applied (recursively) on the spec and status of every kind.
pub(crate) fn strip_null_from_enums(schema: &mut Schema) {
    schemars::transform::transform_subschemas(&mut strip_null_from_enums, schema);
    if let Some(serde_json::Value::Array(values)) =
        schema.as_object_mut().and_then(|o| o.get_mut("enum"))
    {
        values.retain(|v| !v.is_null());
    }
}

/// Removes every `x-kubernetes-validations` rule, recursively, for a type embedded where ESO
/// does not validate it. ClusterExternalSecret embeds an ExternalSecret spec whose rules are ESO's
/// ExternalSecret webhook's: ESO runs no webhook for ClusterExternalSecrets, so it accepts one
/// whose ExternalSecret would be refused (the ExternalSecrets it creates are refused then), and so
/// do these CRDs. Likewise a VaultDynamicSecret's `provider` (no webhook for generators).
pub(crate) fn strip_cel_rules(schema: &mut Schema) {
    schemars::transform::transform_subschemas(&mut strip_cel_rules, schema);
    if let Some(o) = schema.as_object_mut() {
        o.remove("x-kubernetes-validations");
    }
}

/// Schema of a `[]byte` field: a base64 string.
pub(crate) fn base64_bytes(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "byte" })
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// A key in a Secret, for credentials a provider reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Name of the Secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,

    /// Namespace of the Secret. Only honoured in a ClusterSecretStore; a namespaced store always
    /// reads from its own namespace. Defaults to the namespace of the object that refers to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub namespace: Option<String>,

    /// Key in the Secret. Some fields have a default key; others require it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY))]
    pub key: String,
}

/// A ServiceAccount whose token is used to authenticate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSelector {
    /// Name of the ServiceAccount.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,

    /// Namespace of the ServiceAccount. Only honoured in a ClusterSecretStore; defaults to the
    /// namespace of the object that refers to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub namespace: Option<String>,

    /// Audiences (`aud` claim) to request for the token, added to those that well-known
    /// annotations such as IRSA or GCP Workload Identity imply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
}

/// Status of a condition, as in Kubernetes core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// It is not known whether the condition holds.
    #[default]
    Unknown,
}

impl ConditionStatus {
    /// `True` for `true`, `False` for `false`.
    pub fn from_bool(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }

    /// ESO's spelling: `"True"`, `"False"`, `"Unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}
