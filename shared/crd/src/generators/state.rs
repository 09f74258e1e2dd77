//! `GeneratorState`: what a generator created, kept so it can be cleaned up later.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{ConditionStatus, preserve_unknown_fields};

/// The generator that produced a state, and the state.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "GeneratorState",
    plural = "generatorstates",
    singular = "generatorstate",
    namespaced,
    status = "GeneratorStateStatus",
    shortname = "gs",
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    doc = "GeneratorState records what a generator created (such as a token) for an ExternalSecret or PushSecret, so it can be revoked once replaced.",
    printcolumn = r#"{"name":"GC Deadline","type":"string","jsonPath":".spec.garbageCollectionDeadline"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorStateSpec {
    /// When the state is deleted (and the generator's cleanup runs). Unset: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garbage_collection_deadline: Option<Time>,

    /// The generator manifest that produced the state, as it was then; cleanup uses it, so what
    /// it refers to must still exist.
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub resource: serde_json::Value,

    /// The state the generator returned.
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub state: serde_json::Value,
}

/// Observed state of a GeneratorState.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorStateStatus {
    /// Current conditions; ESO sets `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<GeneratorStateStatusCondition>,
}

/// A condition of a GeneratorState.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorStateStatusCondition {
    /// Condition type; ESO uses `Ready`.
    #[serde(rename = "type")]
    pub type_: String,

    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,

    /// Machine-readable reason: `Created` or `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}
