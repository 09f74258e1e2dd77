//! `ExternalSecret` (`external-secrets.io/v1`): which provider keys to read and the Secret to
//! write them into.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{ConditionStatus, DNS_SUBDOMAIN, SECRET_KEY, is_false};
use secret_sync_gosem::duration::{DurationError, parse_go_duration_nanos};

/// What ESO's CRD defaults `refreshInterval` to.
pub const DEFAULT_REFRESH_INTERVAL: &str = "1h0m0s";

/// What ESO's CRD defaults `generatorRef.apiVersion` to.
pub const DEFAULT_GENERATOR_API_VERSION: &str = "generators.external-secrets.io/v1alpha1";

pub(crate) fn default_refresh_interval() -> String {
    DEFAULT_REFRESH_INTERVAL.to_owned()
}

/// Desired state of an ExternalSecret: where its values come from and which Secret receives them.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "ExternalSecret",
    plural = "externalsecrets",
    singular = "externalsecret",
    namespaced,
    status = "ExternalSecretStatus",
    shortname = "es",
    category = "external-secrets",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    doc = "ExternalSecret reads values from a secret store and keeps a Kubernetes Secret in step with them.",
    printcolumn = r#"{"name":"StoreType","type":"string","jsonPath":".spec.secretStoreRef.kind"}"#,
    printcolumn = r#"{"name":"Store","type":"string","jsonPath":".spec.secretStoreRef.name"}"#,
    printcolumn = r#"{"name":"Refresh Interval","type":"string","jsonPath":".spec.refreshInterval"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Last Sync","type":"date","jsonPath":".status.refreshTime"}"#,
    selectable = ".spec.secretStoreRef.name",
    selectable = ".spec.secretStoreRef.kind",
    selectable = ".spec.target.name",
    selectable = ".spec.refreshInterval"
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
#[schemars(extend("x-kubernetes-validations" = [{
    // ESO's webhook: validateExternalSecret, except that a template alone is accepted, as the
    // engine accepts it (its data comes from the template; ESO refuses it).
    "rule": "(has(self.data) && size(self.data) > 0) || (has(self.dataFrom) && size(self.dataFrom) > 0) || (has(self.target) && has(self.target.template))",
    "message": "either data or dataFrom should be specified"
}]))]
pub struct ExternalSecretSpec {
    /// The SecretStore or ClusterSecretStore to read from. May be omitted when every `data` and
    /// `dataFrom` entry names its own source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_store_ref: Option<SecretStoreRef>,

    /// The Secret to create or update.
    #[serde(default)]
    pub target: ExternalSecretTarget,

    /// When to sync: `Periodic` (the default when unset) every `refreshInterval`; `OnChange` only
    /// when this ExternalSecret's spec, labels or annotations change; `CreatedOnce` only until the
    /// Secret exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_policy: Option<RefreshPolicy>,

    /// How often to re-read the provider, as a Go duration such as "1h0m0s", "30m" or "10s".
    /// "0s" syncs once and never again.
    // ESO's webhook decodes it as a metav1.Duration (Go's time.ParseDuration) and refuses the
    // object when that fails. The pattern gives the readable message; `duration()` parses with
    // time.ParseDuration too, so an overflow the pattern lets through still fails the rule.
    #[serde(default = "default_refresh_interval")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') && type(duration(self)) == google.protobuf.Duration",
        "message": "refreshInterval must be a Go duration such as \"1h0m0s\", \"30m\" or \"0s\" (units ns, us, ms, s, m, h)"
    }]))]
    pub refresh_interval: String,

    /// Restricts when periodic refreshes may run (UTC). Applies only to the `Periodic` policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_windows: Option<SyncWindows>,

    /// Individual provider values, each stored under its own key of the Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<ExternalSecretData>,

    /// Provider values that expand into many keys (a whole JSON secret, a search, a generator).
    /// Entries are merged in order; later keys win, and `data` wins over all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_from: Vec<ExternalSecretDataFromRemoteRef>,
}

impl Default for ExternalSecretSpec {
    /// The spec of a manifest that sets nothing, after ESO's defaults.
    fn default() -> Self {
        Self {
            secret_store_ref: None,
            target: ExternalSecretTarget::default(),
            refresh_policy: None,
            refresh_interval: default_refresh_interval(),
            sync_windows: None,
            data: Vec::new(),
            data_from: Vec::new(),
        }
    }
}

impl ExternalSecretSpec {
    /// Name of the Secret to write: `target.name`, or else the ExternalSecret's own name.
    pub fn target_name<'a>(&'a self, es: &'a ExternalSecret) -> &'a str {
        match self.target.name.as_deref() {
            Some(name) if !name.is_empty() => name,
            _ => es.metadata.name.as_deref().unwrap_or_default(),
        }
    }

    /// The refresh policy in effect: an unset policy behaves as `Periodic`.
    pub fn refresh_policy(&self) -> RefreshPolicy {
        self.refresh_policy.unwrap_or_default()
    }

    /// `refreshInterval` as a duration. Zero or negative means "no periodic refresh" (as in ESO,
    /// where `refreshInterval <= 0` stops requeueing), so both come back as `Duration::ZERO`.
    pub fn refresh_interval(&self) -> Result<Duration, DurationError> {
        let nanos = parse_go_duration_nanos(&self.refresh_interval)?;
        Ok(Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)))
    }
}

/// Points at the store to read from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreRef {
    /// Name of the SecretStore or ClusterSecretStore.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,

    /// `SecretStore` (the default) or `ClusterSecretStore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StoreKind>,
}

impl SecretStoreRef {
    /// The store kind in effect: an unset kind means `SecretStore`.
    pub fn kind(&self) -> StoreKind {
        self.kind.unwrap_or_default()
    }
}

/// The two kinds of store an ExternalSecret or PushSecret may refer to: `SecretStore` or
/// `ClusterSecretStore`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum StoreKind {
    #[default]
    SecretStore,
    ClusterSecretStore,
}

impl StoreKind {
    /// The kind as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecretStore => "SecretStore",
            Self::ClusterSecretStore => "ClusterSecretStore",
        }
    }
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When an ExternalSecret syncs: `CreatedOnce`, `Periodic` or `OnChange`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RefreshPolicy {
    CreatedOnce,
    #[default]
    Periodic,
    OnChange,
}

/// Time windows that allow or block periodic refreshes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncWindows {
    /// `allow`: refresh only while a window is open. `deny`: never refresh while a window is open.
    pub kind: SyncWindowKind,

    /// The windows; all share `kind`.
    #[schemars(length(min = 1))]
    pub windows: Vec<SyncWindow>,
}

/// Whether sync windows permit (`allow`) or block (`deny`) refreshes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncWindowKind {
    #[default]
    Allow,
    Deny,
}

/// One recurring window: opens at each `schedule` firing and stays open for `duration`.
// ESO's webhook decodes `duration` as a metav1.Duration and refuses what does not parse. A
// pattern would cost too much here (a list without maxItems), `duration()` does not: a string it
// cannot parse makes the rule fail with a conversion error, followed by this message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "type(duration(self.duration)) == google.protobuf.Duration",
    "message": "duration must be a Go duration such as \"8h\" or \"30m\""
}]))]
pub struct SyncWindow {
    /// 5-field cron expression in UTC ("0 22 * * 1-5"), or a descriptor such as "@daily" or
    /// "@every 1h".
    #[schemars(
        length(min = 1),
        pattern(r"^(@(annually|yearly|monthly|weekly|daily|midnight|hourly)|@every [^\s]+.*|[^\s]+( [^\s]+){4})$")
    )]
    pub schedule: String,

    /// How long the window stays open after each firing, as a Go duration ("8h").
    pub duration: String,
}

/// The Secret an ExternalSecret manages.
// ESO's webhook: validatePolicies and validatePrivilegedTemplate, with their messages. The
// template rules sit here rather than on ExternalSecretTemplate, which PushSecret shares (ESO has
// no webhook for PushSecrets). The templateFrom rules for a SA token match the two usual
// spellings of "Annotations" only, one rule each: ESO compares with Go's EqualFold, and anything
// more than one comparison per entry of a list without maxItems exceeds the apiserver's CEL cost
// budget for a rule. ESO's check of every templateFrom target against Data/Annotations/Labels
// (validateTemplateFromTarget) is left to the engine for the same reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.deletionPolicy) && self.deletionPolicy == 'Delete' && has(self.creationPolicy) && self.creationPolicy in ['Merge', 'None', 'CreateOrMerge'])",
        "message": "deletionPolicy=Delete must not be used when the controller doesn't own the secret. Please set creationPolicy=Owner"
    },
    {
        "rule": "!(has(self.deletionPolicy) && self.deletionPolicy == 'Merge' && has(self.creationPolicy) && self.creationPolicy == 'None')",
        "message": "deletionPolicy=Merge must not be used with creationPolicy=None. There is no Secret to merge with"
    },
    {
        "rule": "!has(self.template) || !has(self.template.type) || self.template.type != 'bootstrap.kubernetes.io/token'",
        "message": "template.type=\"bootstrap.kubernetes.io/token\" is not allowed"
    },
    {
        "rule": "!has(self.template) || !has(self.template.type) || self.template.type != 'kubernetes.io/service-account-token' || !has(self.template.metadata) || !has(self.template.metadata.annotations) || !('kubernetes.io/service-account.name' in self.template.metadata.annotations)",
        "message": "template.type=\"kubernetes.io/service-account-token\" with annotation \"kubernetes.io/service-account.name\" is not allowed"
    },
    {
        "rule": "!has(self.template) || !has(self.template.type) || self.template.type != 'kubernetes.io/service-account-token' || !has(self.template.templateFrom) || !self.template.templateFrom.exists(t, t.target == 'Annotations')",
        "message": "template.type=\"kubernetes.io/service-account-token\" with templateFrom target=\"Annotations\" is not allowed"
    },
    {
        "rule": "!has(self.template) || !has(self.template.type) || self.template.type != 'kubernetes.io/service-account-token' || !has(self.template.templateFrom) || !self.template.templateFrom.exists(t, t.target == 'annotations')",
        "message": "template.type=\"kubernetes.io/service-account-token\" with templateFrom target=\"Annotations\" is not allowed"
    }
]))]
pub struct ExternalSecretTarget {
    /// Name of the Secret. Defaults to the ExternalSecret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: Option<String>,

    /// Who creates the Secret and owns it. Defaults to `Owner`.
    #[serde(default)]
    pub creation_policy: CreationPolicy,

    /// What happens to the Secret when the provider values are gone. Defaults to `Retain`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Shapes the Secret: type, metadata and data rendered from templates.
    // Boxed: most ExternalSecrets have none, and every cached one would carry its size inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Box<ExternalSecretTemplate>>,

    /// Writes a different kind of object (for example a ConfigMap) instead of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestReference>,

    /// Marks the Secret immutable; its data is then never updated, only recreated if deleted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub immutable: bool,
}

/// How the Secret is created:
/// `Owner` creates it and sets an owner reference to the ExternalSecret;
/// `Orphan` creates it without an owner reference;
/// `Merge` never creates it, only merges keys into an existing Secret;
/// `None` writes nothing;
/// `CreateOrMerge` creates it if missing and merges otherwise, without an owner reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CreationPolicy {
    #[default]
    Owner,
    Orphan,
    Merge,
    None,
    CreateOrMerge,
}

/// What happens when the provider values are gone:
/// `Delete` deletes the Secret once every provider value is gone;
/// `Merge` removes the missing keys and keeps the Secret;
/// `Retain` keeps the Secret as it is and reports an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    Delete,
    Merge,
    #[default]
    Retain,
}

/// Another kind of object to write instead of a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestReference {
    /// API version of the object, for example "v1".
    #[schemars(length(min = 1))]
    pub api_version: String,

    /// Kind of the object, for example "ConfigMap".
    #[schemars(length(min = 1))]
    pub kind: String,
}

/// Blueprint of the Secret: its type, metadata and templated data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTemplate {
    /// Secret type, such as "kubernetes.io/tls". When unset, an existing Secret keeps its type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,

    /// Template engine version. Only "v2" exists.
    #[serde(default)]
    pub engine_version: TemplateEngineVersion,

    /// Labels, annotations and finalizers for the Secret. Values are templates.
    #[serde(
        default,
        skip_serializing_if = "ExternalSecretTemplateMetadata::is_empty"
    )]
    pub metadata: ExternalSecretTemplateMetadata,

    /// `Replace` (the default) keeps only the templated keys; `Merge` adds them to the provider
    /// values.
    #[serde(default)]
    pub merge_policy: TemplateMergePolicy,

    /// Secret key to Go template producing its value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,

    /// Further templates, from ConfigMaps, Secrets or inline text, applied in order before `data`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub template_from: Vec<TemplateFrom>,
}

/// Template engine version: only `v2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TemplateEngineVersion {
    #[default]
    #[serde(rename = "v2")]
    V2,
}

/// How templated keys combine with provider values: `Replace` or `Merge`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TemplateMergePolicy {
    #[default]
    Replace,
    Merge,
}

/// Metadata for the Secret; values are templates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTemplateMetadata {
    /// Annotations to set on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Labels to set on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Finalizers to add to the Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

impl ExternalSecretTemplateMetadata {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty() && self.labels.is_empty() && self.finalizers.is_empty()
    }
}

/// One source of templates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFrom {
    /// Templates stored in a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<TemplateRef>,

    /// Templates stored in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<TemplateRef>,

    /// Where the rendered result goes: "Data" (the default), "Annotations" or "Labels"
    /// (case-insensitive); for a `manifest` target also a dotted path such as "spec.config".
    #[serde(default = "default_template_target")]
    pub target: String,

    /// An inline template whose output is YAML key/value pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,

    /// Decoding applied to the rendered values (never to keys). Defaults to `None`.
    #[serde(default)]
    pub values_decoding_strategy: DecodingStrategy,
}

fn default_template_target() -> String {
    "Data".to_owned()
}

/// A ConfigMap or Secret holding templates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// Name of the ConfigMap or Secret, in the ExternalSecret's namespace.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,

    /// The keys to use as templates.
    pub items: Vec<TemplateRefItem>,
}

/// One key holding a template.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRefItem {
    /// Key in the ConfigMap or Secret.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY))]
    pub key: String,

    /// `Values` (the default) renders the template as the value of `key`; `KeysAndValues`
    /// renders YAML key/value pairs.
    #[serde(default)]
    pub template_as: TemplateScope,
}

/// How a template's output is used: `Values` or `KeysAndValues`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TemplateScope {
    #[default]
    Values,
    KeysAndValues,
}

/// One provider value stored under one Secret key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretData {
    /// Key in the Secret.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY))]
    pub secret_key: String,

    /// The provider value to read.
    pub remote_ref: ExternalSecretDataRemoteRef,

    /// Reads this entry from another store than `secretStoreRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<StoreSourceRef>,
}

/// Location of a value in the provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretDataRemoteRef {
    /// Key (name or path) of the secret in the provider.
    pub key: String,

    /// `Fetch` reads the secret's tags or metadata instead of its value. Defaults to `None`.
    #[serde(default)]
    pub metadata_policy: MetadataPolicy,

    /// A property of a JSON value to select (a gjson path for AWS and Vault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,

    /// A provider version to read. AWS: a version stage, or `uuid/<VersionId>`. Vault KV v2: a
    /// version number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// How keys with characters a Secret does not allow are converted. Defaults to `Default`.
    #[serde(default)]
    pub conversion_strategy: ConversionStrategy,

    /// How the fetched value is decoded. Defaults to `None`.
    #[serde(default)]
    pub decoding_strategy: DecodingStrategy,

    /// `Fail` rejects values containing NUL bytes; unset or `Ignore` accepts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_byte_policy: Option<NullBytePolicy>,
}

/// Whether to read a secret's value (`None`) or its metadata (`Fetch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MetadataPolicy {
    #[default]
    None,
    Fetch,
}

/// Key conversion: `Default` replaces each invalid character with `_`; `Unicode` with `_UXXXX_`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConversionStrategy {
    #[default]
    Default,
    Unicode,
}

/// Value decoding: `Auto` (try base64, then base64url, else as is), `Base64`, `Base64URL`, or
/// `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DecodingStrategy {
    Auto,
    Base64,
    #[serde(rename = "Base64URL")]
    Base64Url,
    #[default]
    None,
}

/// Handling of NUL bytes in fetched values: `Ignore` or `Fail`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum NullBytePolicy {
    #[default]
    Ignore,
    Fail,
}

/// A source that expands into many Secret keys. Set one of `extract`, `find` or a generator in
/// `sourceRef`.
// ESO's webhook: validateExtractFindGenerator and validateFindExtractSourceRef.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.extract) && has(self.find)) && !((has(self.extract) || has(self.find)) && has(self.sourceRef) && has(self.sourceRef.generatorRef))",
        "message": "extract, find, or generatorRef cannot be set at the same time"
    },
    {
        "rule": "has(self.extract) || has(self.find) || has(self.sourceRef)",
        "message": "either extract, find, or sourceRef must be set to dataFrom"
    }
]))]
pub struct ExternalSecretDataFromRemoteRef {
    /// Reads one provider secret whose value is a JSON object and stores each of its properties
    /// as a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<ExternalSecretDataRemoteRef>,

    /// Reads every provider secret matching a name pattern or tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find: Option<ExternalSecretFind>,

    /// Rewrites the resulting keys, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrite: Vec<ExternalSecretRewrite>,

    /// Reads from another store, or from a generator, instead of `secretStoreRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<StoreGeneratorSourceRef>,
}

/// Selects provider secrets by name or tags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretFind {
    /// Root path to search under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,

    /// Matches secret names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<FindName>,

    /// Matches secrets carrying all of these tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,

    /// How keys with characters a Secret does not allow are converted. Defaults to `Default`.
    #[serde(default)]
    pub conversion_strategy: ConversionStrategy,

    /// How fetched values are decoded. Defaults to `None`.
    #[serde(default)]
    pub decoding_strategy: DecodingStrategy,

    /// `Fail` rejects values containing NUL bytes; unset or `Ignore` accepts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_byte_policy: Option<NullBytePolicy>,
}

/// Name pattern for `find`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindName {
    /// Regular expression (Go syntax, not anchored) matched against secret names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<String>,
}

/// One key rewrite. Set exactly one of `merge`, `regexp` or `transform`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct ExternalSecretRewrite {
    /// Merges the JSON values of all keys into one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<ExternalSecretRewriteMerge>,

    /// Replaces matches of a regular expression in each key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<ExternalSecretRewriteRegexp>,

    /// Renders each key through a template, where `.value` is the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<ExternalSecretRewriteTransform>,
}

/// Merges JSON object values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretRewriteMerge {
    /// Key receiving the merged object. Required with the `JSON` strategy.
    #[serde(default)]
    pub into: String,

    /// Keys merged last, so their values win conflicts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priority: Vec<String>,

    /// `Strict` (the default) fails when a `priority` key is missing; `IgnoreNotFound` skips it.
    #[serde(default)]
    pub priority_policy: MergePriorityPolicy,

    /// `Error` (the default) fails on conflicting keys; `Ignore` lets the later value win.
    #[serde(default)]
    pub conflict_policy: MergeConflictPolicy,

    /// `Extract` (the default) stores each merged property as a key; `JSON` stores the merged
    /// object under `into`.
    #[serde(default)]
    pub strategy: MergeStrategy,
}

/// Missing priority keys: `IgnoreNotFound` or `Strict`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MergePriorityPolicy {
    IgnoreNotFound,
    #[default]
    Strict,
}

/// Conflicting keys while merging: `Ignore` or `Error`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MergeConflictPolicy {
    Ignore,
    #[default]
    Error,
}

/// Merge output: `Extract` or `JSON`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MergeStrategy {
    #[default]
    Extract,
    #[serde(rename = "JSON")]
    Json,
}

/// Regular-expression rewrite of keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretRewriteRegexp {
    /// Regular expression (Go syntax) to match in each key.
    pub source: String,

    /// Replacement; `$1` and `${name}` refer to capture groups.
    pub target: String,
}

/// Template rewrite of keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretRewriteTransform {
    /// Go template producing the new key; `.value` is the current key.
    pub template: String,
}

/// Overrides the store for one `data` entry. Set exactly one field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct StoreSourceRef {
    /// The store to read this entry from.
    #[serde(default, rename = "storeRef", skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<SecretStoreRef>,

    /// Deprecated: generators are not supported in `data`; use `dataFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_ref: Option<GeneratorRef>,
}

/// Overrides the source for one `dataFrom` entry: another store, or a generator. Set exactly one
/// field.
// ESO's webhook: validateSourceRef (its CRD's minProperties refuses `sourceRef: {}` as well).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.storeRef) || has(self.generatorRef)",
    "message": "generatorRef or storeRef must be set when using sourceRef in dataFrom"
}]))]
pub struct StoreGeneratorSourceRef {
    /// The store to read this entry from.
    #[serde(default, rename = "storeRef", skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<SecretStoreRef>,

    /// A generator whose output becomes the entry's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_ref: Option<GeneratorRef>,
}

/// Points at a generator resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorRef {
    /// API version of the generator.
    #[serde(default = "default_generator_api_version")]
    pub api_version: String,

    /// Kind of the generator.
    #[schemars(extend("enum" = [
        "ACRAccessToken",
        "BeyondtrustWorkloadCredentialsDynamicSecret",
        "ClusterGenerator",
        "CloudsmithAccessToken",
        "ECRAuthorizationToken",
        "Fake",
        "GCRAccessToken",
        "GithubAccessToken",
        "GitlabDeployToken",
        "QuayAccessToken",
        "Password",
        "SSHKey",
        "STSSessionToken",
        "UUID",
        "VaultDynamicSecret",
        "Webhook",
        "Grafana",
        "MFA"
    ]))]
    pub kind: String,

    /// Name of the generator.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,
}

fn default_generator_api_version() -> String {
    DEFAULT_GENERATOR_API_VERSION.to_owned()
}

/// Observed state of an ExternalSecret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
pub struct ExternalSecretStatus {
    /// When the provider was last read and the Secret written successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<Time>,

    /// The object version last synced: `<generation>-<hash of labels and annotations>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_resource_version: Option<String>,

    /// Current conditions; `Ready` tells whether the Secret is in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ExternalSecretStatusCondition>,

    /// The Secret written, as a servicebinding.io provisioned-service reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<SecretBinding>,

    /// When the earliest generated value of the last sync expires at its source (an ECR or STS
    /// token, a Vault lease). Not in ESO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,

    /// When the generated values are renewed, three quarters of the way to `expiresAt`, if no
    /// refresh comes first (`refreshPolicy: Periodic` with a `refreshInterval`). Not in ESO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_at: Option<Time>,
}

impl ExternalSecretStatus {
    /// The condition of the given type, if present.
    pub fn condition(
        &self,
        type_: ExternalSecretConditionType,
    ) -> Option<&ExternalSecretStatusCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// A condition of an ExternalSecret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretStatusCondition {
    /// `Ready` or `Deleted`.
    #[serde(rename = "type")]
    pub type_: ExternalSecretConditionType,

    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,

    /// Machine-readable reason, such as `SecretSynced` or `SecretSyncedError`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// Condition types of an ExternalSecret: `Ready` or `Deleted`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ExternalSecretConditionType {
    #[default]
    Ready,
    Deleted,
}

/// Reference to the Secret an ExternalSecret wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretBinding {
    /// Name of the Secret.
    #[serde(default)]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(name: &str, spec: ExternalSecretSpec) -> ExternalSecret {
        ExternalSecret::new(name, spec)
    }

    #[test]
    fn target_name_defaults_to_the_external_secret_name() {
        let mut spec = ExternalSecretSpec::default();
        assert_eq!(spec.target_name(&es("db", spec.clone())), "db");
        spec.target.name = Some(String::new());
        assert_eq!(spec.target_name(&es("db", spec.clone())), "db");
        spec.target.name = Some("db-credentials".to_owned());
        assert_eq!(spec.target_name(&es("db", spec.clone())), "db-credentials");
    }

    #[test]
    fn store_ref_kind_defaults_to_secret_store() {
        let mut r = SecretStoreRef {
            name: "s".to_owned(),
            kind: None,
        };
        assert_eq!(r.kind(), StoreKind::SecretStore);
        r.kind = Some(StoreKind::ClusterSecretStore);
        assert_eq!(r.kind(), StoreKind::ClusterSecretStore);
        assert_eq!(r.kind().to_string(), "ClusterSecretStore");
    }

    #[test]
    fn an_unset_refresh_policy_behaves_as_periodic() {
        assert_eq!(
            ExternalSecretSpec::default().refresh_policy(),
            RefreshPolicy::Periodic
        );
    }

    #[test]
    fn refresh_interval_zero_or_negative_means_no_periodic_refresh() {
        let with = |s: &str| ExternalSecretSpec {
            refresh_interval: s.to_owned(),
            ..ExternalSecretSpec::default()
        };
        assert_eq!(
            ExternalSecretSpec::default().refresh_interval(),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(with("0s").refresh_interval(), Ok(Duration::ZERO));
        assert_eq!(with("0").refresh_interval(), Ok(Duration::ZERO));
        assert_eq!(with("-1m").refresh_interval(), Ok(Duration::ZERO));
        assert_eq!(
            with("2h45m").refresh_interval(),
            Ok(Duration::from_secs(9900))
        );
        assert!(with("1d").refresh_interval().is_err());
    }

    #[test]
    fn the_default_spec_is_what_the_api_server_stores_for_an_empty_one() {
        let from_empty: ExternalSecretSpec = serde_json::from_str("{}").expect("empty spec parses");
        assert_eq!(from_empty, ExternalSecretSpec::default());
        assert_eq!(
            serde_json::to_value(&from_empty).expect("serialize"),
            serde_json::json!({
                "refreshInterval": "1h0m0s",
                "target": {"creationPolicy": "Owner", "deletionPolicy": "Retain"}
            })
        );
    }
}
