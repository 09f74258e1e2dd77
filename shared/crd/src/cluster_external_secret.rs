//! `ClusterExternalSecret` (`external-secrets.io/v1`): one ExternalSecret stamped into many
//! namespaces.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::external_secret::ExternalSecretSpec;
use crate::meta::{ConditionStatus, DNS_LABEL, DNS_SUBDOMAIN};
use secret_sync_gosem::duration::{DurationError, parse_go_duration};

/// What the controller uses when `refreshTime` is unset.
pub const DEFAULT_NAMESPACE_REFRESH: Duration = Duration::from_secs(3600);

/// Desired state of a ClusterExternalSecret: the ExternalSecret to create and the namespaces to
/// create it in.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "ClusterExternalSecret",
    plural = "clusterexternalsecrets",
    singular = "clusterexternalsecret",
    status = "ClusterExternalSecretStatus",
    shortname = "ces",
    category = "external-secrets",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    doc = "ClusterExternalSecret creates the same ExternalSecret in every namespace it selects.",
    printcolumn = r#"{"name":"Store","type":"string","jsonPath":".spec.externalSecretSpec.secretStoreRef.name"}"#,
    printcolumn = r#"{"name":"Refresh Interval","type":"string","jsonPath":".spec.refreshTime"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
pub struct ClusterExternalSecretSpec {
    /// Spec of the ExternalSecret created in each selected namespace.
    #[schemars(transform = crate::meta::strip_cel_rules)]
    pub external_secret_spec: ExternalSecretSpec,

    /// Name of the ExternalSecrets. Defaults to the ClusterExternalSecret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub external_secret_name: Option<String>,

    /// Labels and annotations for the ExternalSecrets.
    #[serde(default, skip_serializing_if = "ExternalSecretMetadata::is_empty")]
    pub external_secret_metadata: ExternalSecretMetadata,

    /// Deprecated: use `namespaceSelectors`. Namespaces whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Namespaces whose labels match any of these selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,

    /// Deprecated: use `namespaceSelectors`. Namespaces by name, added to those selected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 63), pattern(DNS_LABEL)))]
    pub namespaces: Vec<String>,

    /// How often to re-check which namespaces match, as a Go duration. Defaults to 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<String>,
}

impl ClusterExternalSecretSpec {
    /// Name of the ExternalSecrets to create: `externalSecretName`, or else the
    /// ClusterExternalSecret's own name.
    pub fn external_secret_name<'a>(&'a self, ces: &'a ClusterExternalSecret) -> &'a str {
        match self.external_secret_name.as_deref() {
            Some(name) if !name.is_empty() => name,
            _ => ces.metadata.name.as_deref().unwrap_or_default(),
        }
    }

    /// How often to re-check namespaces; [`DEFAULT_NAMESPACE_REFRESH`] when unset.
    pub fn refresh_time(&self) -> Result<Duration, DurationError> {
        match self.refresh_time.as_deref() {
            None => Ok(DEFAULT_NAMESPACE_REFRESH),
            Some(s) => parse_go_duration(s),
        }
    }
}

/// Labels and annotations for the ExternalSecrets a ClusterExternalSecret creates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretMetadata {
    /// Annotations to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Labels to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl ExternalSecretMetadata {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty() && self.labels.is_empty()
    }
}

/// Observed state of a ClusterExternalSecret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
pub struct ClusterExternalSecretStatus {
    /// Name of the ExternalSecrets created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret_name: Option<String>,

    /// Namespaces where the ExternalSecret could not be written, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_namespaces: Vec<ClusterExternalSecretNamespaceFailure>,

    /// Namespaces that hold the ExternalSecret, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provisioned_namespaces: Vec<String>,

    /// Current conditions; `Ready` is `False` when any namespace failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterExternalSecretStatusCondition>,
}

/// A namespace where the ExternalSecret could not be written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretNamespaceFailure {
    /// The namespace.
    pub namespace: String,

    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A condition of a ClusterExternalSecret. Unlike other kinds it has no reason and no transition
/// time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretStatusCondition {
    /// Condition type: `Ready`.
    #[serde(rename = "type")]
    pub type_: String,

    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,

    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_secret_name_defaults_to_the_cluster_external_secret_name() {
        let mut spec = ClusterExternalSecretSpec::default();
        assert_eq!(
            spec.external_secret_name(&ClusterExternalSecret::new("shared", spec.clone())),
            "shared"
        );
        spec.external_secret_name = Some("child".to_owned());
        assert_eq!(
            spec.external_secret_name(&ClusterExternalSecret::new("shared", spec.clone())),
            "child"
        );
    }

    #[test]
    fn namespace_refresh_defaults_to_one_hour() {
        let mut spec = ClusterExternalSecretSpec::default();
        assert_eq!(spec.refresh_time(), Ok(Duration::from_secs(3600)));
        spec.refresh_time = Some("10m".to_owned());
        assert_eq!(spec.refresh_time(), Ok(Duration::from_secs(600)));
    }
}
