//! `ClusterPushSecret` (`external-secrets.io/v1alpha1`): one PushSecret stamped into many
//! namespaces.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::DNS_SUBDOMAIN;
use crate::push_secret::{PushSecretSpec, PushSecretStatusCondition};
use secret_sync_gosem::duration::{DurationError, parse_go_duration};

/// What the controller uses when `refreshTime` is unset (ESO's requeue interval).
pub const DEFAULT_PUSH_NAMESPACE_REFRESH: Duration = Duration::from_secs(3600);

/// Desired state of a ClusterPushSecret: the PushSecret to create and the namespaces to create it
/// in.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1alpha1",
    kind = "ClusterPushSecret",
    plural = "clusterpushsecrets",
    singular = "clusterpushsecret",
    status = "ClusterPushSecretStatus",
    category = "external-secrets",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    doc = "ClusterPushSecret creates the same PushSecret in every namespace it selects.",
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
pub struct ClusterPushSecretSpec {
    /// Spec of the PushSecret created in each selected namespace.
    pub push_secret_spec: PushSecretSpec,

    /// How often to re-check which namespaces match and rewrite the PushSecrets, as a Go
    /// duration. Defaults to 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<String>,

    /// Name of the PushSecrets. Defaults to the ClusterPushSecret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub push_secret_name: Option<String>,

    /// Labels and annotations for the PushSecrets.
    #[serde(default, skip_serializing_if = "PushSecretMetadata::is_empty")]
    pub push_secret_metadata: PushSecretMetadata,

    /// Namespaces whose labels match any of these selectors. None: no namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
}

impl ClusterPushSecretSpec {
    /// Name of the PushSecrets to create: `pushSecretName`, or else the ClusterPushSecret's own
    /// name.
    pub fn push_secret_name<'a>(&'a self, cps: &'a ClusterPushSecret) -> &'a str {
        match self.push_secret_name.as_deref() {
            Some(name) if !name.is_empty() => name,
            _ => cps.metadata.name.as_deref().unwrap_or_default(),
        }
    }

    /// How often to re-check namespaces; [`DEFAULT_PUSH_NAMESPACE_REFRESH`] when unset.
    pub fn refresh_time(&self) -> Result<Duration, DurationError> {
        match self.refresh_time.as_deref() {
            None => Ok(DEFAULT_PUSH_NAMESPACE_REFRESH),
            Some(s) => parse_go_duration(s),
        }
    }
}

/// Labels and annotations for the PushSecrets a ClusterPushSecret creates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretMetadata {
    /// Annotations to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Labels to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl PushSecretMetadata {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty() && self.labels.is_empty()
    }
}

/// Observed state of a ClusterPushSecret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
pub struct ClusterPushSecretStatus {
    /// Namespaces where the PushSecret could not be written, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_namespaces: Vec<ClusterPushSecretNamespaceFailure>,

    /// Namespaces that hold the PushSecret, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provisioned_namespaces: Vec<String>,

    /// Name of the PushSecrets created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_secret_name: Option<String>,

    /// Current conditions; `Ready` is `False` when any namespace failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PushSecretStatusCondition>,
}

/// A namespace where the PushSecret could not be written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPushSecretNamespaceFailure {
    /// The namespace.
    pub namespace: String,

    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cps(spec: serde_json::Value) -> ClusterPushSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
            "metadata": { "name": "shared" },
            "spec": spec
        }))
        .expect("ClusterPushSecret")
    }

    fn minimal_push_spec() -> serde_json::Value {
        json!({ "secretStoreRefs": [{ "name": "s" }], "selector": { "secret": { "name": "src" } } })
    }

    #[test]
    fn push_secret_name_defaults_to_the_cluster_push_secret_name() {
        let parent = cps(json!({ "pushSecretSpec": minimal_push_spec() }));
        assert_eq!(parent.spec.push_secret_name(&parent), "shared");
        let parent =
            cps(json!({ "pushSecretSpec": minimal_push_spec(), "pushSecretName": "child" }));
        assert_eq!(parent.spec.push_secret_name(&parent), "child");
    }

    #[test]
    fn namespace_refresh_defaults_to_one_hour() {
        let parent = cps(json!({ "pushSecretSpec": minimal_push_spec() }));
        assert_eq!(parent.spec.refresh_time(), Ok(Duration::from_secs(3600)));
        let parent = cps(json!({ "pushSecretSpec": minimal_push_spec(), "refreshTime": "10m" }));
        assert_eq!(parent.spec.refresh_time(), Ok(Duration::from_secs(600)));
    }

    #[test]
    fn esos_field_names_read_and_write_back() {
        let manifest = json!({
            "pushSecretSpec": minimal_push_spec(),
            "refreshTime": "1m",
            "pushSecretName": "child",
            "pushSecretMetadata": { "labels": { "l": "1" }, "annotations": { "a": "2" } },
            "namespaceSelectors": [{ "matchLabels": { "team": "a" } }]
        });
        let parent = cps(manifest.clone());
        let back = serde_json::to_value(&parent.spec).expect("spec");
        for key in [
            "refreshTime",
            "pushSecretName",
            "pushSecretMetadata",
            "namespaceSelectors",
        ] {
            assert_eq!(back[key], manifest[key], "{key}");
        }
        let status: ClusterPushSecretStatus = serde_json::from_value(json!({
            "failedNamespaces": [{ "namespace": "x", "reason": "why" }],
            "provisionedNamespaces": ["a"],
            "pushSecretName": "child",
            "conditions": [{ "type": "Ready", "status": "True" }]
        }))
        .expect("status");
        assert_eq!(status.failed_namespaces[0].reason.as_deref(), Some("why"));
        assert_eq!(status.push_secret_name.as_deref(), Some("child"));
    }
}
