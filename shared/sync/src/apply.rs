//! The apply stage: writes the target Secret per creationPolicy, with ESO's labels, annotations
//! and owner reference, through server-side apply under the ExternalSecret's own field manager.
//!
//! Server-side apply gives ESO's key tracking for free: keys, labels and annotations this
//! ExternalSecret applied before and no longer renders are removed; keys other writers own (a
//! `Merge` target's own data) are kept. Nothing is written when the Secret already holds what
//! would be applied, and an apply carries the `resourceVersion` it was computed from, so a
//! concurrent writer (another replica, a Lambda) makes it fail with a conflict instead of being
//! overwritten. A Secret written from a fetch that started later than ours is never rolled back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Resource, ResourceExt};
use secret_sync_crd::well_known::{
    ANNOTATION_DATA_HASH, FIELD_MANAGER_PREFIX, LABEL_MANAGED, LABEL_MANAGED_VALUE, LABEL_OWNER,
};
use secret_sync_crd::{CreationPolicy, ExternalSecret};
use secret_sync_providers::SecretBytes;
use serde_json::{Map, Value, json};

use crate::hash;
use crate::view::bounded;

/// Annotation recording when the provider read behind the Secret's data started (RFC 3339). A
/// writer whose read started earlier does not overwrite it.
pub const ANNOTATION_SOURCE_TIME: &str = "secret-sync.io/source-time";

const SKIPPED_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// What to write.
pub struct Desired {
    pub data: BTreeMap<String, SecretBytes>,
    /// Labels and annotations besides ESO's own (the ExternalSecret's, or the template's).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub type_: Option<String>,
    /// When the provider reads behind `data` started.
    pub source_time: Timestamp,
}

impl Desired {
    /// The metadata ESO copies when there is no template: the ExternalSecret's own labels and
    /// annotations.
    pub fn metadata_of(
        es: &ExternalSecret,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let labels = es.metadata.labels.clone().unwrap_or_default();
        let mut annotations = es.metadata.annotations.clone().unwrap_or_default();
        for key in SKIPPED_ANNOTATIONS {
            annotations.remove(*key);
        }
        (labels, annotations)
    }
}

/// What the apply stage did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    Unchanged,
    /// creationPolicy None: nothing is written.
    NotWritten,
    /// creationPolicy Merge and the Secret does not exist.
    Missing,
    /// A newer write (from a later provider read) is already there.
    Newer,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("target is owned by another ExternalSecret")]
    OwnedByAnother,
    #[error("failed to take ownership of target secret: it is controlled by {kind} {name:?}")]
    TakeOwnership { kind: String, name: String },
    #[error("could not update secret, target is immutable")]
    Immutable,
    #[error("the Secret changed while it was being written; retrying")]
    Conflict,
    #[error("could not update secret {name:?}: {source}")]
    Write {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("could not delete secret {name:?}: {source}")]
    Delete {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("could not write {kind} {name:?}: {source}")]
    Target {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The API server refused the rendered object. Its own message is not kept: for a custom
    /// resource it quotes the invalid value, which a template may have filled with a secret.
    #[error("the API server refused {kind} {name:?} ({reason}){}", fields_note(.fields))]
    Refused {
        kind: String,
        name: String,
        reason: String,
        fields: Vec<String>,
    },
    #[error("target.manifest {api_version} {kind} is not served by the API server: {source}")]
    NotServed {
        api_version: String,
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("target.manifest kind {kind} is cluster-scoped; only namespaced kinds can be targets")]
    ClusterScoped { kind: String },
    /// The rendered generic target is not an object the API can take (a template put something
    /// other than a map where `metadata` belongs, say).
    #[error("the rendered {kind} {name:?} is not a valid Kubernetes object")]
    Malformed { kind: String, name: String },
    #[error("unable to delete secret {name:?}: creationPolicy={policy:?} is not Owner")]
    DeleteNotOwner {
        name: String,
        policy: CreationPolicy,
    },
}

fn fields_note(fields: &[String]) -> String {
    if fields.is_empty() {
        String::new()
    } else {
        format!(" at {}", fields.join(", "))
    }
}

impl ApplyError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::OwnedByAnother
            | Self::TakeOwnership { .. }
            | Self::Immutable
            | Self::DeleteNotOwner { .. }
            | Self::ClusterScoped { .. }
            | Self::Malformed { .. }
            | Self::Refused { .. } => false,
            Self::Conflict
            | Self::Write { .. }
            | Self::Delete { .. }
            | Self::Target { .. }
            | Self::NotServed { .. } => true,
        }
    }

    fn from_kube(name: &str, e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(s) if s.code == 409 => Self::Conflict,
            _ => Self::Write {
                name: name.to_owned(),
                source: e,
            },
        }
    }
}

/// The data keys, labels and annotations a field manager applied to an object, from its
/// managedFields (`f:data`, `f:metadata.f:labels`, `f:metadata.f:annotations`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Owned {
    data: BTreeSet<String>,
    labels: BTreeSet<String>,
    annotations: BTreeSet<String>,
    found: bool,
    /// The same field manager wrote the object with a plain create or update: ESO, whose field
    /// manager names are ours. Such a Secret is ours to keep as it is while it holds what we
    /// would write; its keys are not counted as applied (an apply cannot remove them).
    written_by_eso: bool,
}

fn owned_by(secret: &Secret, manager: &str) -> Owned {
    let mut owned = Owned::default();
    let entries = secret.metadata.managed_fields.iter().flatten();
    let ours = entries.filter(|e| e.manager.as_deref() == Some(manager));
    for entry in ours {
        if entry.operation.as_deref() == Some("Update") {
            owned.written_by_eso = true;
            continue;
        }
        if entry.operation.as_deref() != Some("Apply") {
            continue;
        }
        owned.found = true;
        match entry.fields_v1.as_ref().map(|f| &f.0) {
            Some(Value::String(compact)) => owned.extend_compact(compact),
            Some(fields) => owned.extend_fields(fields),
            None => {}
        }
    }
    owned
}

impl Owned {
    /// Adds the keys of a managedFields `fieldsV1` tree.
    fn extend_fields(&mut self, fields: &Value) {
        fn keys(v: Option<&Value>) -> impl Iterator<Item = String> + '_ {
            v.and_then(Value::as_object)
                .into_iter()
                .flat_map(|m| m.keys())
                .filter_map(|k| k.strip_prefix("f:"))
                .map(str::to_owned)
        }
        self.data.extend(keys(fields.get("f:data")));
        let meta = fields.get("f:metadata");
        self.labels
            .extend(keys(meta.and_then(|m| m.get("f:labels"))));
        self.annotations
            .extend(keys(meta.and_then(|m| m.get("f:annotations"))));
    }

    /// Adds the keys of the compact form `compact_managed_fields` leaves in a cache.
    fn extend_compact(&mut self, compact: &str) {
        for line in compact.lines() {
            match line.split_once(':') {
                Some(("d", key)) => self.data.insert(key.to_owned()),
                Some(("l", key)) => self.labels.insert(key.to_owned()),
                Some(("a", key)) => self.annotations.insert(key.to_owned()),
                _ => false,
            };
        }
    }

    fn to_compact(&self) -> String {
        let lines = (self.data.iter().map(|k| ("d", k)))
            .chain(self.labels.iter().map(|k| ("l", k)))
            .chain(self.annotations.iter().map(|k| ("a", k)));
        let mut out = String::new();
        for (kind, key) in lines {
            out.push_str(kind);
            out.push(':');
            out.push_str(key);
            out.push('\n');
        }
        out
    }
}

/// Shrinks a Secret's managedFields for a watch cache, keeping what the apply stage reads: the
/// entries of ExternalSecret field managers, those that applied reduced to their key lists in one
/// string, those that updated (ESO) to nothing but their name. The full trees cost about 4 KiB
/// per Secret, most of a 10,000-Secret cache.
pub fn compact_managed_fields(secret: &mut Secret) {
    let Some(entries) = secret.metadata.managed_fields.as_mut() else {
        return;
    };
    entries.retain(|e| {
        matches!(e.operation.as_deref(), Some("Apply" | "Update"))
            && e.manager
                .as_deref()
                .is_some_and(|m| m.starts_with(FIELD_MANAGER_PREFIX))
    });
    for entry in entries.iter_mut() {
        let mut owned = Owned::default();
        match entry.fields_v1.as_ref().map(|f| &f.0) {
            _ if entry.operation.as_deref() == Some("Update") => {}
            Some(Value::String(compact)) => owned.extend_compact(compact),
            Some(fields) => owned.extend_fields(fields),
            None => {}
        }
        entry.fields_v1 = Some(FieldsV1(Value::String(owned.to_compact())));
        entry.api_version = None;
        entry.fields_type = None;
        entry.time = None;
        entry.subresource = None;
    }
    if entries.is_empty() {
        secret.metadata.managed_fields = None;
    }
}

fn owner_reference(es: &ExternalSecret) -> Option<Value> {
    let oref = es.controller_owner_ref(&())?;
    Some(json!({
        "apiVersion": oref.api_version, "kind": oref.kind, "name": oref.name, "uid": oref.uid,
        "controller": true, "blockOwnerDeletion": true,
    }))
}

/// Refuses a Secret controlled by something else: another ExternalSecret (ESO's
/// `ErrSecretIsOwned`) or, for `Owner`, any other controller.
fn check_ownership(es: &ExternalSecret, secret: &Secret) -> Result<(), ApplyError> {
    let Some(controller) = secret
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
    else {
        return Ok(());
    };
    if Some(controller.uid.as_str()) == es.metadata.uid.as_deref() {
        return Ok(());
    }
    if controller.kind == "ExternalSecret"
        && controller.api_version.starts_with("external-secrets.io/")
    {
        return Err(ApplyError::OwnedByAnother);
    }
    if es.spec.target.creation_policy == CreationPolicy::Owner {
        return Err(ApplyError::TakeOwnership {
            kind: controller.kind.clone(),
            name: controller.name.clone(),
        });
    }
    Ok(())
}

/// Writes `desired` into the Secret `name` for `es`, given the Secret as last seen. Returns what
/// happened and, when it wrote, the Secret as the apiserver stored it.
pub async fn write(
    client: &kube::Client,
    es: &ExternalSecret,
    name: &str,
    existing: Option<&Secret>,
    desired: Desired,
) -> Result<(Applied, Option<Secret>), ApplyError> {
    let policy = es.spec.target.creation_policy;
    if policy == CreationPolicy::None {
        return Ok((Applied::NotWritten, None));
    }
    if existing.is_none() && policy == CreationPolicy::Merge {
        return Ok((Applied::Missing, None));
    }
    let namespace = es.namespace().unwrap_or_default();
    let manager = hash::field_manager(&es.name_any());
    if let Some(secret) = existing {
        check_ownership(es, secret)?;
        if es.spec.target.immutable {
            // ESO: an existing immutable target is never re-templated; only a deleted one is recreated.
            return Ok((Applied::Unchanged, None));
        }
        let recorded = secret
            .annotations()
            .get(ANNOTATION_SOURCE_TIME)
            .and_then(|t| t.parse::<Timestamp>().ok());
        if recorded.is_some_and(|t| t > desired.source_time) {
            return Ok((Applied::Newer, None));
        }
    }

    let owned = existing.map(|s| owned_by(s, &manager)).unwrap_or_default();
    // The Secret's data after the apply: other managers' keys stay, ours are replaced.
    let mut final_data: BTreeMap<String, Vec<u8>> = existing
        .and_then(|s| s.data.as_ref())
        .map(|d| {
            d.iter()
                .filter(|(k, _)| !owned.data.contains(*k) && !desired.data.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in &desired.data {
        final_data.insert(k.clone(), v.expose().to_vec());
    }
    let data_hash = hash::data_hash(&final_data);

    let mut labels = desired.labels.clone();
    labels.insert(LABEL_MANAGED.into(), LABEL_MANAGED_VALUE.into());
    if policy == CreationPolicy::Owner {
        labels.insert(
            LABEL_OWNER.into(),
            hash::owner_label(&namespace, &es.name_any()),
        );
    }
    let mut annotations = desired.annotations.clone();
    annotations.insert(ANNOTATION_DATA_HASH.into(), data_hash);

    if let Some(secret) = existing {
        if is_unchanged(secret, &owned, &desired, &labels, &annotations, es, policy) {
            return Ok((Applied::Unchanged, None));
        }
        if secret.immutable == Some(true) {
            return Err(ApplyError::Immutable);
        }
    }
    annotations.insert(
        ANNOTATION_SOURCE_TIME.into(),
        desired.source_time.to_string(),
    );

    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    metadata.insert("namespace".into(), json!(namespace));
    metadata.insert("labels".into(), json!(labels));
    metadata.insert("annotations".into(), json!(annotations));
    if let Some(rv) = existing.and_then(|s| s.metadata.resource_version.as_ref()) {
        metadata.insert("resourceVersion".into(), json!(rv));
    }
    if policy == CreationPolicy::Owner
        && let Some(oref) = owner_reference(es)
    {
        metadata.insert("ownerReferences".into(), json!([oref]));
    }
    let data: Map<String, Value> = desired
        .data
        .iter()
        .map(|(k, v)| (k.clone(), json!(STANDARD.encode(v.expose()))))
        .collect();
    let mut body =
        json!({ "apiVersion": "v1", "kind": "Secret", "metadata": metadata, "data": data });
    if let Some(type_) = &desired.type_ {
        body["type"] = json!(type_);
    }
    if es.spec.target.immutable {
        body["immutable"] = json!(true);
    }

    let api = Api::<Secret>::namespaced(client.clone(), &namespace);
    let params = PatchParams::apply(&manager).force();
    let written = bounded(
        "applying a Secret",
        api.patch(name, &params, &Patch::Apply(&body)),
    )
    .await
    .map_err(|e| ApplyError::from_kube(name, e))?;
    let applied = if existing.is_some() {
        Applied::Updated
    } else {
        Applied::Created
    };
    Ok((applied, Some(written)))
}

fn is_unchanged(
    secret: &Secret,
    owned: &Owned,
    desired: &Desired,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    es: &ExternalSecret,
    policy: CreationPolicy,
) -> bool {
    if !owned.found && !owned.written_by_eso {
        return false;
    }
    let data = secret.data.as_ref();
    let data_same = desired.data.iter().all(|(k, v)| {
        data.and_then(|d| d.get(k))
            .is_some_and(|b| b.0 == v.expose())
    }) && owned.data.iter().all(|k| desired.data.contains_key(k));
    let map_same = |have: &BTreeMap<String, String>,
                    want: &BTreeMap<String, String>,
                    owned: &BTreeSet<String>| {
        want.iter().all(|(k, v)| have.get(k) == Some(v))
            && owned
                .iter()
                .all(|k| want.contains_key(k) || k == ANNOTATION_SOURCE_TIME)
    };
    let labels_same = map_same(secret.labels(), labels, &owned.labels);
    let annotations_same = map_same(secret.annotations(), annotations, &owned.annotations);
    let type_same = desired
        .type_
        .as_ref()
        .is_none_or(|t| secret.type_.as_ref() == Some(t));
    let is_controller = secret
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == es.metadata.uid.as_deref());
    let owner_same = (policy == CreationPolicy::Owner) == is_controller;
    data_same && labels_same && annotations_same && type_same && owner_same
}

/// `deletionPolicy: Delete` with every provider value gone: deletes the Secret if this
/// ExternalSecret controls it.
pub async fn delete(
    client: &kube::Client,
    es: &ExternalSecret,
    name: &str,
    existing: Option<&Secret>,
) -> Result<bool, ApplyError> {
    let policy = es.spec.target.creation_policy;
    if policy != CreationPolicy::Owner {
        return Err(ApplyError::DeleteNotOwner {
            name: name.into(),
            policy,
        });
    }
    let Some(secret) = existing else {
        return Ok(false);
    };
    check_ownership(es, secret)?;
    let api = Api::<Secret>::namespaced(client.clone(), &es.namespace().unwrap_or_default());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match bounded("deleting a Secret", api.delete(name, &params)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(source) => Err(ApplyError::Delete {
            name: name.into(),
            source,
        }),
    }
}

/// Owner policy: deletes Secrets this ExternalSecret created under another name (after a
/// `target.name` change). Returns the names deleted.
pub async fn delete_orphans(
    client: &kube::Client,
    es: &ExternalSecret,
    target: &str,
    candidates: &[Arc<Secret>],
) -> Result<Vec<String>, ApplyError> {
    let api = Api::<Secret>::namespaced(client.clone(), &es.namespace().unwrap_or_default());
    let mut deleted = Vec::new();
    for secret in candidates {
        let name = secret.name_any();
        if name == target {
            continue;
        }
        match bounded(
            "deleting a Secret",
            api.delete(&name, &DeleteParams::default()),
        )
        .await
        {
            Ok(_) => deleted.push(name),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(ApplyError::Delete { name, source }),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};
    use kube::api::ObjectMeta;
    use secret_sync_crd::ExternalSecretSpec;

    fn es() -> ExternalSecret {
        let mut es = ExternalSecret::new("db", ExternalSecretSpec::default());
        es.metadata.namespace = Some("ns".into());
        es.metadata.uid = Some("uid-1".into());
        es
    }

    fn secret_with_controller(kind: &str, uid: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                owner_references: Some(vec![OwnerReference {
                    api_version: "external-secrets.io/v1".into(),
                    kind: kind.into(),
                    name: "other".into(),
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_secret_controlled_by_another_external_secret_is_refused() {
        let err = check_ownership(&es(), &secret_with_controller("ExternalSecret", "uid-2"))
            .expect_err("refused");
        assert!(matches!(err, ApplyError::OwnedByAnother));
        assert!(!err.is_retryable());
        assert!(check_ownership(&es(), &secret_with_controller("ExternalSecret", "uid-1")).is_ok());
    }

    #[test]
    fn an_owner_target_controlled_by_another_kind_cannot_be_taken_over() {
        let err = check_ownership(&es(), &secret_with_controller("Deployment", "uid-9"))
            .expect_err("refused");
        assert!(matches!(err, ApplyError::TakeOwnership { .. }));
    }

    #[test]
    fn managed_fields_tell_which_keys_this_manager_applied() {
        let fields = json!({
            "f:data": { "f:password": {}, "f:username": {} },
            "f:metadata": { "f:labels": { "f:reconcile.external-secrets.io/managed": {} }, "f:annotations": { ".": {} } }
        });
        let secret = Secret {
            metadata: ObjectMeta {
                managed_fields: Some(vec![
                    ManagedFieldsEntry {
                        manager: Some("externalsecrets.external-secrets.io/db".into()),
                        operation: Some("Apply".into()),
                        fields_v1: Some(FieldsV1(fields)),
                        ..Default::default()
                    },
                    ManagedFieldsEntry {
                        manager: Some("kubectl".into()),
                        operation: Some("Update".into()),
                        fields_v1: Some(FieldsV1(json!({ "f:data": { "f:other": {} } }))),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            },
            ..Default::default()
        };
        let owned = owned_by(&secret, "externalsecrets.external-secrets.io/db");
        assert!(owned.found);
        assert_eq!(
            owned.data,
            BTreeSet::from(["password".to_owned(), "username".to_owned()])
        );
        assert_eq!(owned.labels, BTreeSet::from([LABEL_MANAGED.to_owned()]));
        assert!(owned.annotations.is_empty(), "'.' is not a key");
    }

    #[test]
    fn compacted_managed_fields_keep_what_the_apply_stage_reads() {
        let manager = "externalsecrets.external-secrets.io/db";
        let mut secret = Secret {
            metadata: ObjectMeta {
                managed_fields: Some(vec![
                    ManagedFieldsEntry {
                        manager: Some(manager.into()),
                        operation: Some("Apply".into()),
                        fields_v1: Some(FieldsV1(json!({
                            "f:data": { "f:password": {}, "f:username": {} },
                            "f:metadata": {
                                "f:labels": { "f:reconcile.external-secrets.io/managed": {} },
                                "f:annotations": { "f:reconcile.external-secrets.io/data-hash": {} },
                                "f:ownerReferences": { "k:{\"uid\":\"u\"}": {} }
                            },
                            "f:type": {}
                        }))),
                        ..Default::default()
                    },
                    ManagedFieldsEntry {
                        manager: Some("kubectl".into()),
                        operation: Some("Update".into()),
                        fields_v1: Some(FieldsV1(json!({ "f:data": { "f:other": {} } }))),
                        ..Default::default()
                    },
                    // ESO's own write, under the same name.
                    ManagedFieldsEntry {
                        manager: Some(manager.into()),
                        operation: Some("Update".into()),
                        fields_v1: Some(FieldsV1(json!({ "f:data": { "f:legacy": {} } }))),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            },
            ..Default::default()
        };
        let before = owned_by(&secret, manager);
        assert!(before.found && before.written_by_eso);
        assert!(
            !before.data.contains("legacy"),
            "keys ESO wrote are not counted as applied"
        );
        compact_managed_fields(&mut secret);
        let entries = secret.metadata.managed_fields.as_ref().expect("kept");
        assert_eq!(entries.len(), 2, "only ExternalSecret managers are kept");
        assert!(matches!(
            entries[0].fields_v1.as_ref().map(|f| &f.0),
            Some(Value::String(_))
        ));
        assert_eq!(owned_by(&secret, manager), before);
        compact_managed_fields(&mut secret);
        assert_eq!(
            owned_by(&secret, manager),
            before,
            "compacting twice changes nothing"
        );
    }
}
