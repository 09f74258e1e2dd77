//! PushSecret to Parameter Store, as ESO's `PushSecret`, `SecretExists` and `DeleteSecret`
//! (`providers/v1/aws/parameterstore/parameterstore.go`, v2.9.0):
//!
//! - The entry's `metadata` is a `PushSecretMetadata` (`apiVersion:
//!   kubernetes.external-secrets.io/v1alpha1`, unknown fields refused) whose `spec` sets
//!   `secretType` (`String`, the default, `StringList`, `SecureString`), `kmsKeyID` (for a
//!   SecureString; default `alias/aws/ssm`), `tier` (`type: Advanced` with optional `policies`;
//!   anything else leaves AWS's Standard), `tags`, and `description` (default
//!   `secret 'managed-by:external-secrets'`). `encodeAsDecoded` is accepted: the engine already
//!   writes a whole Secret as a JSON object of decoded strings.
//! - A missing parameter is created by `PutParameter` with `Overwrite=false` and the tags plus
//!   `managed-by: external-secrets` (AWS refuses tags together with `Overwrite=true`).
//! - An existing one without that tag is refused ([`ProviderError::NotManaged`]); with it, an
//!   unchanged value is not written again (nor are its tags touched, as in ESO); a changed one is
//!   written with `Overwrite=true`, then tags that the metadata no longer names are removed and
//!   the metadata's tags added when any differs.
//! - With a `property`, the value is set at that (dotted) key of the parameter's JSON object,
//!   as the Secrets Manager client does. ESO's Parameter Store provider ignores `property` and
//!   writes the whole parameter.
//! - Deleting removes only a parameter carrying the tag; a missing one is fine.

use std::collections::BTreeMap;

use aws_sdk_ssm::types::{ParameterTier, ParameterType, ResourceTypeForTagging, Tag};
use serde::Deserialize;

use super::{ParameterStoreClient, from_sdk_error};
use crate::{MANAGED_BY, ProviderError, PushRef, SecretBytes};

/// `PushSecretMetadata.apiVersion`, as ESO requires it.
const METADATA_API_VERSION: &str = "kubernetes.external-secrets.io/v1alpha1";
/// `PushSecretMetadata.kind`.
const METADATA_KIND: &str = "PushSecretMetadata";
/// ESO's default KMS key for a SecureString.
const DEFAULT_KMS_KEY: &str = "alias/aws/ssm";

/// ESO's `PushSecretMetadata` for Parameter Store, with its defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct PushMetadata {
    pub(super) parameter_type: ParameterType,
    /// Sent only for a SecureString.
    pub(super) kms_key_id: String,
    /// `Some` only for the Advanced tier (ESO sends no tier otherwise).
    pub(super) advanced_policies: Option<Option<String>>,
    pub(super) description: String,
    /// The metadata's tags and [`MANAGED_BY`].
    pub(super) tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetadata {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    spec: RawSpec,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSpec {
    #[serde(default)]
    secret_type: String,
    #[serde(rename = "kmsKeyID", default)]
    kms_key_id: String,
    #[serde(default)]
    tier: RawTier,
    #[serde(default)]
    #[allow(dead_code)] // accepted; see the module docs
    encode_as_decoded: bool,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTier {
    #[serde(rename = "type", default)]
    tier_type: String,
    #[serde(default)]
    policies: Option<serde_json::Value>,
}

impl PushMetadata {
    /// Parses an entry's `metadata` (ESO's `constructMetadataWithDefaults`).
    pub(super) fn of(metadata: Option<&serde_json::Value>) -> Result<Self, ProviderError> {
        let raw = match metadata {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(RawMetadata::deserialize(value).map_err(|e| {
                ProviderError::Config(format!(
                    "failed to parse metadata: failed to parse {METADATA_API_VERSION} \
                     {METADATA_KIND}: {e}"
                ))
            })?),
        };
        if let Some(raw) = &raw {
            if raw.api_version != METADATA_API_VERSION {
                return Err(ProviderError::Config(format!(
                    "failed to parse metadata: unexpected apiVersion {:?}, expected \
                     {METADATA_API_VERSION:?}",
                    raw.api_version
                )));
            }
            if raw.kind != METADATA_KIND {
                return Err(ProviderError::Config(format!(
                    "failed to parse metadata: unexpected kind {:?}, expected {METADATA_KIND:?}",
                    raw.kind
                )));
            }
        }
        let spec = raw.map(|r| r.spec).unwrap_or_default();
        let parameter_type = match spec.secret_type.as_str() {
            "" | "String" => ParameterType::String,
            "StringList" => ParameterType::StringList,
            "SecureString" => ParameterType::SecureString,
            other => {
                return Err(ProviderError::Config(format!(
                    "invalid secretType {other:?} (String, StringList or SecureString)"
                )));
            }
        };
        let advanced_policies = (spec.tier.tier_type == ParameterTier::Advanced.as_str())
            .then(|| spec.tier.policies.map(|p| p.to_string()));
        let mut tags = spec.tags;
        if tags.contains_key(MANAGED_BY.0) {
            return Err(ProviderError::Config(format!(
                "error parsing tags in metadata: Cannot specify a '{}' tag",
                MANAGED_BY.0
            )));
        }
        tags.insert(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned());
        Ok(Self {
            parameter_type,
            kms_key_id: non_empty_or(spec.kms_key_id, DEFAULT_KMS_KEY),
            advanced_policies,
            description: non_empty_or(
                spec.description,
                &format!("secret '{}:{}'", MANAGED_BY.0, MANAGED_BY.1),
            ),
            tags,
        })
    }
}

fn non_empty_or(value: String, default: &str) -> String {
    if value.is_empty() {
        default.to_owned()
    } else {
        value
    }
}

/// Tag keys on the parameter that the metadata no longer names (ESO's `FindTagKeysToRemove`).
/// [`MANAGED_BY`] is always named, so it stays.
pub(super) fn tag_keys_to_remove(
    current: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> Vec<String> {
    current
        .keys()
        .filter(|k| !desired.contains_key(*k))
        .cloned()
        .collect()
}

/// Whether a tag other than [`MANAGED_BY`] is missing or different (ESO's
/// `computeTagsToUpdate`); then all desired tags are written.
pub(super) fn tags_changed(
    current: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> bool {
    desired
        .iter()
        .any(|(k, v)| k != MANAGED_BY.0 && current.get(k) != Some(v))
}

fn is_managed(tags: &BTreeMap<String, String>) -> bool {
    tags.get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1)
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| ProviderError::Config(format!("invalid tag {k:?}: {e}")))
        })
        .collect()
}

/// The value to write: `value`, or with a property, the existing JSON object with that property
/// set (the Secrets Manager client's rule).
fn pushed_value(
    name: &str,
    value: &[u8],
    property: Option<&str>,
    existing: Option<&SecretBytes>,
) -> Result<String, ProviderError> {
    let with_property = property.is_some_and(|p| !p.is_empty());
    let is_object = |e: &SecretBytes| {
        e.is_empty()
            || matches!(
                serde_json::from_slice::<serde_json::Value>(e.expose()),
                Ok(serde_json::Value::Object(_))
            )
    };
    if with_property && existing.is_some_and(|e| !is_object(e)) {
        return Err(ProviderError::Config(format!(
            "PushSecret with a property requires parameter {name:?} to hold a JSON object"
        )));
    }
    let bytes = crate::aws::pushed_value(value, property, existing)?;
    String::from_utf8(bytes).map_err(|_| {
        ProviderError::Config(format!(
            "the value for parameter {name:?} is not UTF-8; Parameter Store holds text only"
        ))
    })
}

/// Whether the dotted `property` is a key of the JSON object `value`.
fn has_property(value: &SecretBytes, property: &str) -> bool {
    let Ok(mut at) = serde_json::from_slice::<serde_json::Value>(value.expose()) else {
        return false;
    };
    for part in property.split('.') {
        match at {
            serde_json::Value::Object(mut map) => match map.remove(part) {
                Some(next) => at = next,
                None => return false,
            },
            _ => return false,
        }
    }
    true
}

impl ParameterStoreClient {
    pub(super) async fn push_parameter(
        &self,
        remote: &PushRef,
        value: &[u8],
    ) -> Result<bool, ProviderError> {
        let client = self.client()?;
        let meta = PushMetadata::of(remote.metadata.as_ref())?;
        let name = format!("{}{}", self.prefix, remote.key);
        let property = remote.property.as_deref();
        let request = |value: String, overwrite: bool| {
            let mut request = client
                .put_parameter()
                .name(&name)
                .value(value)
                .r#type(meta.parameter_type.clone())
                .overwrite(overwrite)
                .description(&meta.description);
            if meta.parameter_type == ParameterType::SecureString {
                request = request.key_id(&meta.kms_key_id);
            }
            if let Some(policies) = &meta.advanced_policies {
                request = request
                    .tier(ParameterTier::Advanced)
                    .set_policies(policies.clone());
            }
            request
        };

        let Some(existing) = self.parameter(&name).await? else {
            let value = pushed_value(&name, value, property, None)?;
            tracing::debug!(key = %name, "PutParameter (create, tagged)");
            request(value, false)
                .set_tags(Some(sdk_tags(&meta.tags)?))
                .send()
                .await
                .map_err(|e| from_sdk_error("PutParameter", &name, e))?;
            return Ok(true);
        };
        let current_tags = self
            .tags(&name)
            .await?
            .ok_or_else(|| ProviderError::Provider {
                operation: "ListTagsForResource",
                message: format!("parameter {name:?} was deleted while being pushed"),
                source: None,
            })?;
        if !is_managed(&current_tags) {
            return Err(ProviderError::NotManaged {
                key: remote.key.clone(),
            });
        }
        let value = pushed_value(&name, value, property, Some(&existing))?;
        if existing.expose() == value.as_bytes() {
            return Ok(false);
        }
        tracing::debug!(key = %name, "PutParameter (overwrite)");
        request(value, true)
            .send()
            .await
            .map_err(|e| from_sdk_error("PutParameter", &name, e))?;

        let remove = tag_keys_to_remove(&current_tags, &meta.tags);
        if !remove.is_empty() {
            tracing::debug!(key = %name, tags = remove.len(), "RemoveTagsFromResource");
            client
                .remove_tags_from_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(&name)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| from_sdk_error("RemoveTagsFromResource", &name, e))?;
        }
        if tags_changed(&current_tags, &meta.tags) {
            tracing::debug!(key = %name, "AddTagsToResource");
            client
                .add_tags_to_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(&name)
                .set_tags(Some(sdk_tags(&meta.tags)?))
                .send()
                .await
                .map_err(|e| from_sdk_error("AddTagsToResource", &name, e))?;
        }
        Ok(true)
    }

    /// Whether the parameter exists; with a property, whether its JSON object has that key.
    pub(super) async fn parameter_exists(&self, remote: &PushRef) -> Result<bool, ProviderError> {
        let name = format!("{}{}", self.prefix, remote.key);
        let Some(value) = self.parameter(&name).await? else {
            return Ok(false);
        };
        Ok(match remote.property.as_deref().filter(|p| !p.is_empty()) {
            Some(property) => has_property(&value, property),
            None => true,
        })
    }

    /// As ESO: the whole parameter is deleted, even for an entry with a property.
    pub(super) async fn delete_parameter(&self, remote: &PushRef) -> Result<(), ProviderError> {
        let client = self.client()?;
        let name = format!("{}{}", self.prefix, remote.key);
        let Some(tags) = self.tags(&name).await? else {
            return Ok(());
        };
        if !is_managed(&tags) {
            tracing::debug!(key = %name, "not deleting a parameter PushSecret did not create");
            return Ok(());
        }
        tracing::debug!(key = %name, "DeleteParameter");
        match client.delete_parameter().name(&name).send().await {
            Ok(_) => Ok(()),
            Err(e) => match from_sdk_error("DeleteParameter", &name, e) {
                ProviderError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn metadata(spec: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
            "kind": "PushSecretMetadata",
            "spec": spec,
        })
    }

    #[test]
    fn no_metadata_pushes_a_string_described_and_tagged_as_managed() {
        let meta = PushMetadata::of(None).expect("metadata");
        assert_eq!(meta.parameter_type, ParameterType::String);
        assert_eq!(meta.description, "secret 'managed-by:external-secrets'");
        assert_eq!(meta.kms_key_id, "alias/aws/ssm");
        assert_eq!(meta.advanced_policies, None);
        assert_eq!(meta.tags, tags(&[("managed-by", "external-secrets")]));
    }

    #[test]
    fn metadata_sets_type_key_tier_tags_and_description() {
        let meta = PushMetadata::of(Some(&metadata(serde_json::json!({
            "secretType": "SecureString",
            "kmsKeyID": "alias/mine",
            "tier": { "type": "Advanced", "policies": [{ "Type": "Expiration" }] },
            "encodeAsDecoded": true,
            "tags": { "team": "a" },
            "description": "mine",
        }))))
        .expect("metadata");
        assert_eq!(meta.parameter_type, ParameterType::SecureString);
        assert_eq!(meta.kms_key_id, "alias/mine");
        assert_eq!(
            meta.advanced_policies,
            Some(Some(r#"[{"Type":"Expiration"}]"#.to_owned()))
        );
        assert_eq!(meta.description, "mine");
        assert_eq!(
            meta.tags,
            tags(&[("managed-by", "external-secrets"), ("team", "a")])
        );
    }

    #[test]
    fn a_standard_tier_sends_no_tier() {
        let meta = PushMetadata::of(Some(&metadata(serde_json::json!({
            "tier": { "type": "Standard", "policies": [] },
        }))))
        .expect("metadata");
        assert_eq!(meta.advanced_policies, None);
    }

    #[test]
    fn metadata_refuses_a_managed_by_tag_unknown_fields_and_the_wrong_kind() {
        let managed = metadata(serde_json::json!({ "tags": { "managed-by": "me" } }));
        let unknown = metadata(serde_json::json!({ "secretPushFormat": "string" }));
        let kind = serde_json::json!({ "apiVersion": METADATA_API_VERSION, "kind": "Other" });
        let version = serde_json::json!({ "apiVersion": "v1", "kind": METADATA_KIND });
        let bad_type = metadata(serde_json::json!({ "secretType": "Binary" }));
        for (what, bad) in [
            ("managed-by", managed),
            ("unknown", unknown),
            ("kind", kind),
            ("apiVersion", version),
            ("secretType", bad_type),
        ] {
            let err = PushMetadata::of(Some(&bad)).err();
            assert!(
                err.as_ref()
                    .is_some_and(|e| matches!(e, ProviderError::Config(m) if m.contains(what))),
                "{what}: {err:?}"
            );
        }
    }

    #[test]
    fn tags_the_metadata_no_longer_names_are_removed_but_managed_by_stays() {
        let current = tags(&[
            ("managed-by", "external-secrets"),
            ("old", "x"),
            ("team", "a"),
        ]);
        let desired = tags(&[("managed-by", "external-secrets"), ("team", "b")]);
        assert_eq!(tag_keys_to_remove(&current, &desired), ["old"]);
        assert!(tags_changed(&current, &desired));
        let same = tags(&[("managed-by", "external-secrets"), ("team", "a")]);
        assert!(!tags_changed(&current, &same));
        let only_marker = tags(&[("managed-by", "someone")]);
        assert!(!tags_changed(&only_marker, &tags(&[("managed-by", "x")])));
    }

    #[test]
    fn a_property_needs_a_json_object_and_is_set_inside_it() {
        let existing = SecretBytes::new(br#"{"a":"1"}"#.to_vec());
        let v = pushed_value("p", b"2", Some("b"), Some(&existing)).expect("value");
        assert_eq!(v, r#"{"a":"1","b":"2"}"#);
        let plain = SecretBytes::new(b"text".to_vec());
        let err = pushed_value("p", b"2", Some("b"), Some(&plain)).err();
        assert!(
            matches!(&err, Some(ProviderError::Config(m)) if m.contains("JSON object")),
            "{err:?}"
        );
        assert_eq!(
            pushed_value("p", b"whole", None, Some(&plain)).expect("value"),
            "whole"
        );
        assert!(pushed_value("p", &[0xff, 0xfe], None, None).is_err());
    }

    #[test]
    fn a_dotted_property_exists_only_when_each_level_does() {
        let value = SecretBytes::new(br#"{"a":{"b":"x"},"c":"y"}"#.to_vec());
        assert!(has_property(&value, "a.b"));
        assert!(has_property(&value, "c"));
        assert!(!has_property(&value, "a.c"));
        assert!(!has_property(&value, "c.d"));
        assert!(!has_property(&SecretBytes::new(b"text".to_vec()), "c"));
    }
}
