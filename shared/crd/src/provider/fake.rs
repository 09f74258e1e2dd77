//! `spec.provider.fake`: static values, for tests and examples.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A provider that serves the values written in the store itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FakeProvider {
    /// The values to serve.
    pub data: Vec<FakeProviderData>,

    /// Validation result the store reports (ESO's internal `ValidationResult` number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_result: Option<i32>,
}

/// One static value of the fake provider.
// ESO's webhook (the fake provider's ValidateStore), with its messages less the entry's index,
// which the apiserver puts in the field path instead. A `valueMap` (ESO's before v1) counts as a
// value: secret-sync serves it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.key != ''",
        "message": "key must be set in data"
    },
    {
        "rule": "(has(self.value) && self.value != '') || (has(self.valueMap) && size(self.valueMap) > 0)",
        "message": "at least one value must be set in data"
    }
]))]
pub struct FakeProviderData {
    /// Key that `remoteRef.key` matches.
    pub key: String,

    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,

    /// Deprecated: put a JSON object in `value` instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub value_map: BTreeMap<String, String>,

    /// Version that `remoteRef.version` matches. Unset serves requests without a version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}
