//! `PushSecret` (`external-secrets.io/v1alpha1`): copies keys of a Kubernetes Secret into
//! providers.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::external_secret::{
    ExternalSecretRewriteRegexp, ExternalSecretRewriteTransform, ExternalSecretTemplate,
    GeneratorRef, StoreKind, default_refresh_interval,
};
use crate::meta::{ConditionStatus, DNS_SUBDOMAIN, preserve_unknown_fields};
use secret_sync_gosem::duration::{DurationError, parse_go_duration_nanos};

/// Desired state of a PushSecret: the source Secret, the stores and the keys to push.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1alpha1",
    kind = "PushSecret",
    plural = "pushsecrets",
    singular = "pushsecret",
    namespaced,
    status = "PushSecretStatus",
    shortname = "ps",
    category = "external-secrets",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    doc = "PushSecret copies keys of a Kubernetes Secret into one or more secret stores.",
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
pub struct PushSecretSpec {
    /// How often to push again, as a Go duration. Defaults to "1h0m0s"; "0s" pushes once.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: String,

    /// The stores to push to.
    pub secret_store_refs: Vec<PushSecretStoreRef>,

    /// `Replace` (the default) overwrites provider secrets; `IfNotExists` leaves existing ones
    /// alone.
    #[serde(default)]
    pub update_policy: PushSecretUpdatePolicy,

    /// `None` (the default) leaves pushed secrets in the provider; `Delete` removes them when the
    /// PushSecret, or one of its entries, is deleted.
    #[serde(default)]
    pub deletion_policy: PushSecretDeletionPolicy,

    /// The source: a Secret in this namespace, or a generator.
    pub selector: PushSecretSelector,

    /// Keys of the source to push, each to its own provider location.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<PushSecretData>,

    /// Bulk rules: push every key that matches, without listing each one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_to: Vec<PushSecretDataTo>,

    /// A template applied to the source Secret before pushing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<ExternalSecretTemplate>,
}

impl PushSecretSpec {
    /// `refreshInterval` as a duration; zero or negative means "push once".
    pub fn refresh_interval(&self) -> Result<Duration, DurationError> {
        let nanos = parse_go_duration_nanos(&self.refresh_interval)?;
        Ok(Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)))
    }
}

/// A store to push to, by name or by labels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretStoreRef {
    /// Name of the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: Option<String>,

    /// Selects stores by label instead of by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,

    /// `SecretStore` (the default) or `ClusterSecretStore`.
    #[serde(default)]
    pub kind: StoreKind,
}

/// Provider secrets that exist already: `Replace` or `IfNotExists`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PushSecretUpdatePolicy {
    #[default]
    Replace,
    IfNotExists,
}

/// Pushed secrets when the PushSecret goes: `Delete` or `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PushSecretDeletionPolicy {
    Delete,
    #[default]
    None,
}

/// The source of a PushSecret. Set exactly one field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct PushSecretSelector {
    /// A Secret in the PushSecret's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<PushSecretSecret>,

    /// A generator whose output is pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_ref: Option<GeneratorRef>,
}

/// The source Secret, by name or by labels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretSecret {
    /// Name of the Secret, in the PushSecret's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: Option<String>,

    /// Selects Secrets by label instead of by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// One key to push.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretData {
    /// The source key and its destination.
    #[serde(rename = "match")]
    pub match_: PushSecretMatch,

    /// Provider-specific settings for the pushed secret; see the provider's documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub metadata: Option<serde_json::Value>,

    /// `None` (the default) pushes keys as they are; `ReverseUnicode` turns `_UXXXX_` escapes
    /// back into characters.
    #[serde(default)]
    pub conversion_strategy: PushSecretConversionStrategy,
}

/// A source key and where it goes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretMatch {
    /// Key of the source Secret. Empty pushes the whole Secret as a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,

    /// Destination in the provider.
    pub remote_ref: PushSecretRemoteRef,
}

/// A destination in the provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretRemoteRef {
    /// Name of the provider secret.
    pub remote_key: String,

    /// Property within the provider secret (a JSON key), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
}

/// Key conversion when pushing: `None` or `ReverseUnicode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PushSecretConversionStrategy {
    #[default]
    None,
    ReverseUnicode,
}

/// A bulk push rule. `remoteKey` and `rewrite` exclude each other.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
// ESO's CRD rules and messages (PushSecretDataTo's XValidation markers).
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.storeRef) && (has(self.storeRef.name) || has(self.storeRef.labelSelector))",
        "message": "storeRef must specify either name or labelSelector"
    },
    {
        "rule": "!has(self.remoteKey) || !has(self.rewrite) || size(self.rewrite) == 0",
        "message": "remoteKey and rewrite are mutually exclusive: rewrite is only supported in per-key mode (without remoteKey)"
    }
]))]
pub struct PushSecretDataTo {
    /// The store to push to.
    pub store_ref: PushSecretStoreRef,

    /// Pushes all matched keys as one JSON object under this provider key. When unset, each key
    /// becomes its own provider secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_key: Option<String>,

    /// Selects the keys to push; all keys when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "match")]
    pub match_: Option<PushSecretDataToMatch>,

    /// Rewrites keys before pushing, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrite: Vec<PushSecretRewrite>,

    /// Provider-specific settings for the pushed secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub metadata: Option<serde_json::Value>,

    /// `None` (the default) or `ReverseUnicode`.
    #[serde(default)]
    pub conversion_strategy: PushSecretConversionStrategy,
}

/// Key selection for a bulk push rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretDataToMatch {
    /// Regular expression (Go syntax) that keys must match; all keys when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<String>,
}

/// One key rewrite of a bulk push rule: `regexp` or `transform`.
// ESO's CRD rule and message (PushSecretRewrite's XValidation marker).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.regexp) && !has(self.transform)) || (!has(self.regexp) && has(self.transform))",
    "message": "exactly one of regexp or transform must be set"
}]))]
pub struct PushSecretRewrite {
    /// Replaces matches of a regular expression in each key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<ExternalSecretRewriteRegexp>,

    /// Renders each key through a template, where `.value` is the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<ExternalSecretRewriteTransform>,
}

/// Observed state of a PushSecret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
pub struct PushSecretStatus {
    /// When the source was last pushed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<Time>,

    /// The object version last synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_resource_version: Option<String>,

    /// What was pushed where: `<Kind>/<store name>` to remote key to the entry pushed, including
    /// entries that already existed in the provider.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub synced_push_secrets: BTreeMap<String, BTreeMap<String, PushSecretData>>,

    /// Current conditions; `Ready` tells whether the last push succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PushSecretStatusCondition>,
}

/// A condition of a PushSecret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretStatusCondition {
    /// Condition type: `Ready`.
    #[serde(rename = "type")]
    pub type_: String,

    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,

    /// Machine-readable reason: `Synced`, `Errored` or `SourceDeleted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}
