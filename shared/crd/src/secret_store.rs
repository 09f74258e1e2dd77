//! `SecretStore` and `ClusterSecretStore` (`external-secrets.io/v1`): how to reach a provider.
//!
//! Both kinds share one spec, [`SecretStoreSpec`]. `SecretStore` is derived from it directly;
//! `ClusterSecretStore` is derived from [`ClusterSecretStoreSpec`], a transparent wrapper around
//! the same struct (identical JSON and schema, and it dereferences to [`SecretStoreSpec`], so
//! `css.spec.provider` works). Code that handles either kind uses the [`GenericStore`] trait.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, Resource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::external_secret::StoreKind;
use crate::meta::{ConditionStatus, DNS_LABEL};
use crate::provider::{
    AwsProvider, FakeProvider, KubernetesProvider, OpenBaoProvider, VaultProvider,
};
use secret_sync_gosem::duration::{DurationError, parse_go_duration};

/// How to reach a secret provider. Shared by SecretStore and ClusterSecretStore.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "SecretStore",
    plural = "secretstores",
    singular = "secretstore",
    namespaced,
    status = "SecretStoreStatus",
    shortname = "ss",
    category = "external-secrets",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    doc = "SecretStore tells how to reach a secret provider. ExternalSecrets and PushSecrets in the same namespace refer to it.",
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Capabilities","type":"string","jsonPath":".status.capabilities"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
pub struct SecretStoreSpec {
    /// Controller class that processes this store (like an ingress class). Empty means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,

    /// The provider and its settings. Exactly one provider may be set.
    pub provider: SecretStoreProvider,

    /// HTTP retries against the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_settings: Option<SecretStoreRetrySettings>,

    /// How often the store is validated: a Go duration ("5m") or a number of seconds. Empty or 0
    /// uses the controller's default.
    // ESO's webhook (validateStore, through GetRefreshInterval) refuses a negative number, a
    // string Go's time.ParseDuration refuses (the empty string too) and a negative duration, with
    // these messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "type(self) == int ? self >= 0 : self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') && duration(self) >= duration('0s')",
        "message": "invalid refreshInterval: must be a number of seconds or a Go duration, not negative",
        "messageExpression": "type(self) == int ? 'invalid refreshInterval ' + string(self) + ': must not be negative' : self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') ? 'invalid refreshInterval \"' + self + '\": must not be negative' : 'invalid refreshInterval \"' + self + '\": time: invalid duration \"' + self + '\"'"
    }]))]
    pub refresh_interval: Option<IntOrString>,

    /// ClusterSecretStore only: the namespaces allowed to use the store. A namespace is allowed if
    /// any condition matches it. Ignored by SecretStore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterSecretStoreCondition>,
}

impl SecretStoreSpec {
    /// The store refresh interval, or `None` when unset or zero (use the controller default).
    /// An integer counts seconds; a string is a Go duration. Negative values are errors.
    pub fn refresh_interval(&self) -> Result<Option<Duration>, DurationError> {
        let d = match &self.refresh_interval {
            None => return Ok(None),
            Some(IntOrString::Int(secs)) => {
                let secs =
                    u64::try_from(*secs).map_err(|_| DurationError::Negative(secs.to_string()))?;
                Duration::from_secs(secs)
            }
            Some(IntOrString::String(s)) if s.is_empty() => return Ok(None),
            Some(IntOrString::String(s)) => parse_go_duration(s)?,
        };
        Ok((!d.is_zero()).then_some(d))
    }
}

/// The spec of a ClusterSecretStore: the same fields as a SecretStore's.
///
/// Serializes exactly as [`SecretStoreSpec`] and dereferences to it.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "ClusterSecretStore",
    plural = "clustersecretstores",
    singular = "clustersecretstore",
    status = "SecretStoreStatus",
    shortname = "css",
    category = "external-secrets",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    doc = "ClusterSecretStore tells how to reach a secret provider, for ExternalSecrets and PushSecrets in any namespace its conditions allow.",
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Capabilities","type":"string","jsonPath":".status.capabilities"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(transparent)]
#[schemars(
    transparent,
    description = "How to reach a secret provider. Shared by SecretStore and ClusterSecretStore."
)]
pub struct ClusterSecretStoreSpec(pub SecretStoreSpec);

impl Deref for ClusterSecretStoreSpec {
    type Target = SecretStoreSpec;
    fn deref(&self) -> &SecretStoreSpec {
        &self.0
    }
}

impl DerefMut for ClusterSecretStoreSpec {
    fn deref_mut(&mut self) -> &mut SecretStoreSpec {
        &mut self.0
    }
}

impl From<SecretStoreSpec> for ClusterSecretStoreSpec {
    fn from(spec: SecretStoreSpec) -> Self {
        Self(spec)
    }
}

/// Either kind of store, for code that handles both.
pub trait GenericStore: Resource<DynamicType = ()> {
    /// `SecretStore` or `ClusterSecretStore`.
    const STORE_KIND: StoreKind;

    /// The shared spec.
    fn store_spec(&self) -> &SecretStoreSpec;

    /// The status, if the controller wrote one.
    fn store_status(&self) -> Option<&SecretStoreStatus>;
}

impl GenericStore for SecretStore {
    const STORE_KIND: StoreKind = StoreKind::SecretStore;

    fn store_spec(&self) -> &SecretStoreSpec {
        &self.spec
    }

    fn store_status(&self) -> Option<&SecretStoreStatus> {
        self.status.as_ref()
    }
}

impl GenericStore for ClusterSecretStore {
    const STORE_KIND: StoreKind = StoreKind::ClusterSecretStore;

    fn store_spec(&self) -> &SecretStoreSpec {
        &self.spec.0
    }

    fn store_status(&self) -> Option<&SecretStoreStatus> {
        self.status.as_ref()
    }
}

/// The provider of a store. `aws`, `vault` and `fake` are understood; any other provider key
/// (`gcpsm`, `azurekv`, ...) is accepted and kept as written, so ESO manifests for providers
/// secret-sync does not serve still apply and round-trip.
// Exactly one provider: ESO's CRD says it with minProperties/maxProperties, which count every key,
// kept unknown ones included. No CEL rule can: CEL sees only the declared properties (aws, vault,
// fake) of an object that preserves unknown fields, and `size()` is not defined on an object with
// properties. The apiserver's messages: "should have at least 1 properties", "Too many: 2: must
// have at most 1 item".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct SecretStoreProvider {
    /// AWS Secrets Manager or Parameter Store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsProvider>,

    /// HashiCorp Vault or OpenBao, KV v1 or v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultProvider>,

    /// Static values, for tests and examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fake: Option<FakeProvider>,

    /// Secrets of a namespace in this or another Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesProvider>,

    /// OpenBao, KV v1 or v2 (ESO's `openBao` provider; `vault` serves OpenBao too).
    #[serde(default, rename = "openBao", skip_serializing_if = "Option::is_none")]
    pub open_bao: Option<OpenBaoProvider>,

    /// Every other provider, kept as raw JSON under its ESO key.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl SecretStoreProvider {
    /// The ESO key of the configured provider (`"aws"`, `"vault"`, `"fake"`, `"openBao"`, `"kubernetes"`, or another key kept
    /// as raw JSON), or `None` when no provider is set. With several set, the first in that order.
    pub fn name(&self) -> Option<&str> {
        if self.aws.is_some() {
            Some("aws")
        } else if self.vault.is_some() {
            Some("vault")
        } else if self.fake.is_some() {
            Some("fake")
        } else if self.open_bao.is_some() {
            Some("openBao")
        } else if self.kubernetes.is_some() {
            Some("kubernetes")
        } else {
            self.other.keys().next().map(String::as_str)
        }
    }

    /// The Vault client's settings: `vault`, or `openBao` read as the same settings.
    pub fn vault_settings(&self) -> Option<std::borrow::Cow<'_, VaultProvider>> {
        match (&self.vault, &self.open_bao) {
            (Some(vault), _) => Some(std::borrow::Cow::Borrowed(vault)),
            (None, Some(bao)) => Some(std::borrow::Cow::Owned(bao.as_vault())),
            (None, None) => None,
        }
    }
}

/// HTTP retry settings for a provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreRetrySettings {
    /// Maximum retries per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,

    /// Wait between retries, as a Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<String>,
}

/// Namespaces allowed to use a ClusterSecretStore. Any field that matches allows the namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretStoreCondition {
    /// Namespaces whose labels match this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Namespaces by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 63), pattern(DNS_LABEL)))]
    pub namespaces: Vec<String>,

    /// Namespaces whose names match one of these regular expressions (Go syntax).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_regexes: Vec<String>,
}

/// Observed state of a store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
pub struct SecretStoreStatus {
    /// Current conditions; `Ready` tells whether the provider could be reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<SecretStoreStatusCondition>,

    /// What the store can do: `ReadOnly`, `WriteOnly` or `ReadWrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<SecretStoreCapabilities>,
}

impl SecretStoreStatus {
    /// The condition of the given type (`"Ready"`), if present.
    pub fn condition(&self, type_: &str) -> Option<&SecretStoreStatusCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// A condition of a store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreStatusCondition {
    /// Condition type; stores use `Ready`.
    #[serde(rename = "type")]
    pub type_: String,

    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,

    /// Machine-readable reason, such as `Valid` or `InvalidProviderConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// What a store can do: `ReadOnly`, `WriteOnly` or `ReadWrite`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SecretStoreCapabilities {
    ReadOnly,
    WriteOnly,
    ReadWrite,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_interval(i: Option<IntOrString>) -> SecretStoreSpec {
        SecretStoreSpec {
            refresh_interval: i,
            ..SecretStoreSpec::default()
        }
    }

    #[test]
    fn store_refresh_interval_takes_seconds_or_a_go_duration() {
        assert_eq!(with_interval(None).refresh_interval(), Ok(None));
        assert_eq!(
            with_interval(Some(IntOrString::Int(0))).refresh_interval(),
            Ok(None)
        );
        assert_eq!(
            with_interval(Some(IntOrString::String(String::new()))).refresh_interval(),
            Ok(None)
        );
        assert_eq!(
            with_interval(Some(IntOrString::String("0s".to_owned()))).refresh_interval(),
            Ok(None)
        );
        assert_eq!(
            with_interval(Some(IntOrString::Int(300))).refresh_interval(),
            Ok(Some(Duration::from_secs(300)))
        );
        assert_eq!(
            with_interval(Some(IntOrString::String("5m".to_owned()))).refresh_interval(),
            Ok(Some(Duration::from_secs(300)))
        );
        assert!(
            with_interval(Some(IntOrString::Int(-1)))
                .refresh_interval()
                .is_err()
        );
        assert!(
            with_interval(Some(IntOrString::String("-5m".to_owned())))
                .refresh_interval()
                .is_err()
        );
        assert!(
            with_interval(Some(IntOrString::String("300".to_owned())))
                .refresh_interval()
                .is_err()
        );
    }

    #[test]
    fn provider_name_tells_which_provider_is_set() {
        let mut p = SecretStoreProvider::default();
        assert_eq!(p.name(), None);
        p.other
            .insert("gcpsm".to_owned(), serde_json::json!({"projectID": "p"}));
        assert_eq!(p.name(), Some("gcpsm"));
        p.fake = Some(crate::provider::FakeProvider::default());
        assert_eq!(p.name(), Some("fake"));
    }

    #[test]
    fn both_store_kinds_are_handled_through_one_trait() {
        fn describe<S: GenericStore>(s: &S) -> (StoreKind, Option<&str>) {
            (S::STORE_KIND, s.store_spec().controller.as_deref())
        }
        let spec = SecretStoreSpec {
            controller: Some("dev".to_owned()),
            ..SecretStoreSpec::default()
        };
        let ss = SecretStore::new("a", spec.clone());
        let css = ClusterSecretStore::new("b", spec.into());
        assert_eq!(describe(&ss), (StoreKind::SecretStore, Some("dev")));
        assert_eq!(describe(&css), (StoreKind::ClusterSecretStore, Some("dev")));
        // Field access reaches the shared spec through Deref.
        assert_eq!(css.spec.controller.as_deref(), Some("dev"));
        assert!(css.store_status().is_none());
    }
}
