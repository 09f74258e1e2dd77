//! The ClusterExternalSecret reconciler: the same ExternalSecret in every namespace a
//! ClusterExternalSecret selects, with ESO's selection, naming, metadata and status.
//!
//! Each pass works out the target namespaces (the deprecated `namespaceSelector`, any of
//! `namespaceSelectors`, and the names in `namespaces`; terminating namespaces are left alone),
//! server-side applies the ExternalSecret in each of them, deletes the ExternalSecrets this
//! ClusterExternalSecret owns anywhere else (a namespace that no longer matches, a renamed
//! `externalSecretName`), and writes `provisionedNamespaces`, `failedNamespaces` and `Ready`.
//! It runs again when a namespace or one of its ExternalSecrets changes, and every `refreshTime`.
//!
//! Where it differs from ESO: no finalizer on the ClusterExternalSecret and none on the target
//! Namespaces. The children carry a controller ownerReference to the ClusterExternalSecret, so
//! the garbage collector removes them with it; ESO's per-namespace finalizers
//! (`externalsecrets.external-secrets.io/ces-<name>`) add a write per namespace and keep a
//! namespace Terminating for as long as the controller is away.
//!
//! A ClusterExternalSecret whose ClusterSecretStore is served by another controller class is
//! left to that controller, so two classes never write the same children.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use secret_sync::cached::CachedExternalSecret;
use secret_sync::resolve::StoreCaches;
use secret_sync::stores::{selector_matches, serves};
use secret_sync_crd::well_known::ANNOTATION_FORCE_SYNC;
use secret_sync_crd::{
    ClusterExternalSecret, ClusterExternalSecretNamespaceFailure, ClusterExternalSecretStatus,
    ClusterExternalSecretStatusCondition, ConditionStatus, ExternalSecret, StoreKind,
};
use serde_json::json;

use crate::metrics::{Kind, Metrics, ReconcileResult};

/// The field manager of the ExternalSecrets this reconciler writes.
pub const FIELD_MANAGER: &str = "secret-sync-clusterexternalsecret";
/// ESO's Ready message when a namespace failed (its `errNamespacesFailed`).
pub const MESSAGE_NAMESPACES_FAILED: &str = "one or more namespaces failed";
/// ESO's reason for a namespace that already has an ExternalSecret of that name of its own.
pub const REASON_ALREADY_EXISTS: &str = "external secret already exists in namespace";

/// What the reconciler reads and writes with.
pub struct CesContext {
    pub client: kube::Client,
    /// Every namespace (the engine's cache).
    pub namespaces: Store<Namespace>,
    /// Every ExternalSecret (the ExternalSecret reconciler's cache): the children are found here.
    pub external_secrets: Store<CachedExternalSecret>,
    pub stores: StoreCaches,
    pub controller_class: String,
    pub metrics: Metrics,
    /// Per ClusterExternalSecret (uid), the fingerprint of the child last applied in every
    /// selected namespace. While it holds, a child the cache shows as up to date is not written
    /// again: a label change on any namespace reconciles every ClusterExternalSecret, and that
    /// should not cost a write per child.
    pub applied: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl CesContext {
    /// Drops what is kept for a deleted ClusterExternalSecret: its metric series and the
    /// fingerprint of what it last applied.
    pub fn forget(&self, ces: &kube::runtime::reflector::ObjectRef<ClusterExternalSecret>) {
        self.metrics
            .forget(Kind::ClusterExternalSecret, "", &ces.name);
        if let (Some(uid), Ok(mut applied)) = (&ces.extra.uid, self.applied.lock()) {
            applied.remove(uid);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CesError {
    #[error("failed to delete ExternalSecret {namespace}/{name}: {source}")]
    Delete {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to write the status: {0}")]
    Status(#[source] kube::Error),
}

/// Whether `namespace` is one `ces` selects (whether it exists or is terminating aside).
pub fn selects(ces: &ClusterExternalSecret, namespace: &Namespace) -> bool {
    let spec = &ces.spec;
    let labels = namespace.labels();
    spec.namespace_selector
        .as_ref()
        .is_some_and(|s| selector_matches(s, labels))
        || spec
            .namespace_selectors
            .iter()
            .any(|s| selector_matches(s, labels))
        || spec.namespaces.iter().any(|n| *n == namespace.name_any())
}

/// Whether `namespace` is being deleted: nothing is written into it any more.
pub(crate) fn terminating(namespace: &Namespace) -> bool {
    namespace.metadata.deletion_timestamp.is_some()
        || namespace
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Terminating")
}

/// Whether `es` is controlled by `ces`.
fn owned_by(es: &impl Resource, ces: &ClusterExternalSecret) -> bool {
    let Some(uid) = ces.uid() else { return false };
    es.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// The ClusterExternalSecret that controls `es`, if any: for the watch on ExternalSecrets.
pub fn owner_of(
    es: &kube::core::PartialObjectMeta<ExternalSecret>,
) -> Option<ObjectRef<ClusterExternalSecret>> {
    es.owner_references()
        .iter()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == "ClusterExternalSecret"
                && o.api_version.starts_with("external-secrets.io/")
        })
        .map(|o| ObjectRef::new(&o.name))
}

/// The ExternalSecret `ces` wants in `namespace`, as an apply patch.
pub fn child(ces: &ClusterExternalSecret, namespace: &str) -> serde_json::Value {
    let metadata = &ces.spec.external_secret_metadata;
    let mut annotations: BTreeMap<String, String> = metadata.annotations.clone();
    // ESO mirrors the force-sync annotation of the ClusterExternalSecret onto every child.
    match ces.annotations().get(ANNOTATION_FORCE_SYNC) {
        Some(value) => {
            annotations.insert(ANNOTATION_FORCE_SYNC.to_owned(), value.clone());
        }
        None => {
            annotations.remove(ANNOTATION_FORCE_SYNC);
        }
    }
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {
            "name": ces.spec.external_secret_name(ces),
            "namespace": namespace,
            "labels": metadata.labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "external-secrets.io/v1",
                "kind": "ClusterExternalSecret",
                "name": ces.name_any(),
                "uid": ces.uid().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": ces.spec.external_secret_spec,
    })
}

/// Whether `es` already is what `ces` wants: the same spec and controller, and every label and
/// annotation `ces` sets (others' labels may be there too), force-sync mirrored.
pub fn up_to_date(es: &ExternalSecret, ces: &ClusterExternalSecret) -> bool {
    let metadata = &ces.spec.external_secret_metadata;
    let contains = |actual: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>| {
        wanted.iter().all(|(k, v)| actual.get(k) == Some(v))
    };
    let force_sync = ces.annotations().get(ANNOTATION_FORCE_SYNC);
    owned_by(es, ces)
        && es.spec == ces.spec.external_secret_spec
        && contains(es.labels(), &metadata.labels)
        && contains(es.annotations(), &metadata.annotations)
        && es.annotations().get(ANNOTATION_FORCE_SYNC) == force_sync
}

fn fingerprint(child: &serde_json::Value) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(child.to_string())
}

/// Whether this controller handles `ces`: not when it reads through a ClusterSecretStore that
/// another controller class serves.
fn handles(ces: &ClusterExternalSecret, ctx: &CesContext) -> bool {
    let Some(reference) = &ces.spec.external_secret_spec.secret_store_ref else {
        return true;
    };
    if reference.kind() != StoreKind::ClusterSecretStore {
        return true;
    }
    ctx.stores
        .cluster_secret_stores
        .get(&ObjectRef::new(&reference.name))
        .is_none_or(|store| serves(&store.spec, &ctx.controller_class))
}

/// The status `ces` gets for what happened.
fn status(
    ces: &ClusterExternalSecret,
    provisioned: BTreeSet<String>,
    failed: BTreeMap<String, String>,
    problem: Option<String>,
) -> ClusterExternalSecretStatus {
    let ready = failed.is_empty() && problem.is_none();
    let message = match (problem, failed.is_empty()) {
        (Some(problem), _) => Some(problem),
        (None, false) => Some(MESSAGE_NAMESPACES_FAILED.to_owned()),
        (None, true) => None,
    };
    ClusterExternalSecretStatus {
        external_secret_name: Some(ces.spec.external_secret_name(ces).to_owned()),
        failed_namespaces: failed
            .into_iter()
            .map(
                |(namespace, reason)| ClusterExternalSecretNamespaceFailure {
                    namespace,
                    reason: Some(reason),
                },
            )
            .collect(),
        provisioned_namespaces: provisioned.into_iter().collect(),
        conditions: vec![ClusterExternalSecretStatusCondition {
            type_: "Ready".into(),
            status: ConditionStatus::from_bool(ready),
            message,
        }],
    }
}

/// The status fields a merge patch must clear when empty.
const STATUS_FIELDS: &[&str] = &[
    "externalSecretName",
    "failedNamespaces",
    "provisionedNamespaces",
    "conditions",
];

pub async fn reconcile(
    ces: Arc<ClusterExternalSecret>,
    ctx: Arc<CesContext>,
) -> Result<Action, CesError> {
    let name = ces.name_any();
    tracing::debug!(cluster_external_secret = %name, "reconciling");
    if ces.meta().deletion_timestamp.is_some() {
        // The garbage collector deletes the children (they name this object as their owner).
        ctx.metrics.clear(Kind::ClusterExternalSecret, "", &name);
        if let Ok(mut applied) = ctx.applied.lock() {
            applied.remove(ces.uid().as_deref().unwrap_or_default());
        }
        return Ok(Action::await_change());
    }
    if !handles(&ces, &ctx) {
        return Ok(Action::await_change());
    }
    let _timer = ctx
        .metrics
        .reconcile_timer(Kind::ClusterExternalSecret, "", &name);
    let (refresh, problem) = match ces.spec.refresh_time() {
        Ok(refresh) => (refresh, None),
        Err(e) => (
            secret_sync_crd::cluster_external_secret::DEFAULT_NAMESPACE_REFRESH,
            Some(format!("invalid spec.refreshTime: {e}")),
        ),
    };
    let child_name = ces.spec.external_secret_name(&ces).to_owned();
    let uid = ces.uid().unwrap_or_default();
    let print = fingerprint(&child(&ces, ""));
    let settled = ctx.applied.lock().ok().and_then(|a| a.get(&uid).copied()) == Some(print);

    let mut wanted = BTreeSet::new();
    let mut provisioned = BTreeSet::new();
    let mut failed = BTreeMap::new();
    for namespace in ctx.namespaces.state() {
        if !selects(&ces, &namespace) || terminating(&namespace) {
            continue;
        }
        let ns = namespace.name_any();
        wanted.insert(ns.clone());
        match provision(&ces, &ns, &child_name, settled, &ctx).await {
            Ok(()) => {
                provisioned.insert(ns);
            }
            Err(reason) => {
                failed.insert(ns, reason);
            }
        }
    }

    // Children anywhere else (a namespace no longer selected, a former externalSecretName) go.
    for es in ctx.external_secrets.state() {
        let ns = es.namespace().unwrap_or_default();
        if !owned_by(es.as_ref(), &ces) || (wanted.contains(&ns) && es.name_any() == child_name) {
            continue;
        }
        delete_child(&ctx.client, es.as_ref()).await?;
        tracing::info!(cluster_external_secret = %name, namespace = %ns, name = %es.name_any(), "deleted an ExternalSecret no longer wanted");
    }

    if let Ok(mut applied) = ctx.applied.lock() {
        if failed.is_empty() {
            applied.insert(uid, print);
        } else {
            applied.remove(&uid);
        }
    }

    let next = status(&ces, provisioned, failed, problem);
    let ready = next.conditions[0].status == ConditionStatus::True;
    if ces.status.as_ref() != Some(&next) {
        Api::<ClusterExternalSecret>::all(ctx.client.clone())
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(super::status_patch(&next, STATUS_FIELDS)),
            )
            .await
            .map_err(CesError::Status)?;
        tracing::info!(
            cluster_external_secret = %name,
            provisioned = next.provisioned_namespaces.len(),
            failed = next.failed_namespaces.len(),
            "ClusterExternalSecret reconciled"
        );
    }
    ctx.metrics
        .set_ready(Kind::ClusterExternalSecret, "", &name, ready);
    ctx.metrics
        .reconcile_result(Kind::ClusterExternalSecret, ReconcileResult::Success);
    Ok(Action::requeue(refresh))
}

/// Writes the child in `namespace`; the reason it could not, for `failedNamespaces`.
async fn provision(
    ces: &ClusterExternalSecret,
    namespace: &str,
    child_name: &str,
    settled: bool,
    ctx: &CesContext,
) -> Result<(), String> {
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), namespace);
    let cached = ctx
        .external_secrets
        .get(&ObjectRef::new(child_name).within(namespace))
        .and_then(|es| es.expanded());
    // The cache may lag a create by someone else: a child it does not know is looked up first,
    // so an ExternalSecret of the same name that is not ours is never taken over.
    let existing = match cached {
        Some(es) => Some(es),
        None => api
            .get_opt(child_name)
            .await
            .map_err(|e| format!("failed to read the ExternalSecret: {e}"))?
            .map(Arc::new),
    };
    match existing {
        Some(es) if !owned_by(es.as_ref(), ces) => return Err(REASON_ALREADY_EXISTS.to_owned()),
        Some(es) if settled && up_to_date(&es, ces) => return Ok(()),
        _ => {}
    }
    ctx.metrics.apiserver_write("ExternalSecret", "apply");
    api.patch(
        child_name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(child(ces, namespace)),
    )
    .await
    .map(drop)
    .map_err(|e| format!("could not create or update ExternalSecret: {e}"))
}

async fn delete_child(client: &kube::Client, es: &impl Resource) -> Result<(), CesError> {
    let (namespace, name) = (es.namespace().unwrap_or_default(), es.name_any());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: es.uid(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match Api::<ExternalSecret>::namespaced(client.clone(), &namespace)
        .delete(&name, &params)
        .await
    {
        Ok(_) => Ok(()),
        // Gone already, or replaced by another object of that name: nothing of ours to delete.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(source) => Err(CesError::Delete {
            namespace,
            name,
            source,
        }),
    }
}

pub fn error_policy(
    ces: Arc<ClusterExternalSecret>,
    error: &CesError,
    ctx: Arc<CesContext>,
) -> Action {
    ctx.metrics
        .reconcile_result(Kind::ClusterExternalSecret, ReconcileResult::Error);
    tracing::warn!(cluster_external_secret = %ces.name_any(), error = %error, "ClusterExternalSecret reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ces(spec: serde_json::Value) -> ClusterExternalSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
            "metadata": { "name": "shared", "uid": "u-1" },
            "spec": spec
        }))
        .expect("ClusterExternalSecret")
    }

    fn namespace(name: &str, labels: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({ "metadata": { "name": name, "labels": labels } }))
            .expect("Namespace")
    }

    #[test]
    fn selectors_and_names_are_ored_and_an_empty_selector_selects_every_namespace() {
        let by_label = ces(json!({
            "externalSecretSpec": {},
            "namespaceSelectors": [{ "matchLabels": { "team": "a" } }, { "matchExpressions": [
                { "key": "tier", "operator": "In", "values": ["gold"] }
            ] }],
            "namespaces": ["named"]
        }));
        assert!(selects(&by_label, &namespace("x", json!({ "team": "a" }))));
        assert!(selects(
            &by_label,
            &namespace("y", json!({ "tier": "gold" }))
        ));
        assert!(selects(&by_label, &namespace("named", json!({}))));
        assert!(!selects(&by_label, &namespace("z", json!({ "team": "b" }))));

        let deprecated = ces(json!({
            "externalSecretSpec": {},
            "namespaceSelector": { "matchLabels": { "team": "a" } }
        }));
        assert!(selects(
            &deprecated,
            &namespace("x", json!({ "team": "a" }))
        ));
        assert!(!selects(&deprecated, &namespace("y", json!({}))));

        let everything = ces(json!({ "externalSecretSpec": {}, "namespaceSelectors": [{}] }));
        assert!(selects(&everything, &namespace("any", json!({}))));
        let nothing = ces(json!({ "externalSecretSpec": {} }));
        assert!(!selects(
            &nothing,
            &namespace("any", json!({ "team": "a" }))
        ));
    }

    #[test]
    fn the_child_carries_the_metadata_the_spec_and_a_controller_reference() {
        let mut parent = ces(json!({
            "externalSecretName": "child",
            "externalSecretMetadata": { "labels": { "l": "1" }, "annotations": { "a": "2" } },
            "externalSecretSpec": { "secretStoreRef": { "name": "vault", "kind": "ClusterSecretStore" },
                                    "refreshInterval": "1h" }
        }));
        parent
            .annotations_mut()
            .insert(ANNOTATION_FORCE_SYNC.into(), "now".into());
        let child = child(&parent, "team-a");
        assert_eq!(child["metadata"]["name"], "child");
        assert_eq!(child["metadata"]["namespace"], "team-a");
        assert_eq!(child["metadata"]["labels"], json!({ "l": "1" }));
        assert_eq!(
            child["metadata"]["annotations"],
            json!({ "a": "2", ANNOTATION_FORCE_SYNC: "now" })
        );
        assert_eq!(
            child["metadata"]["ownerReferences"],
            json!([{ "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
                     "name": "shared", "uid": "u-1", "controller": true, "blockOwnerDeletion": true }])
        );
        assert_eq!(child["spec"]["secretStoreRef"]["name"], "vault");
        assert_eq!(child["spec"]["refreshInterval"], "1h");
    }

    #[test]
    fn a_child_is_up_to_date_with_extra_labels_but_not_with_a_changed_one() {
        let parent = ces(json!({
            "externalSecretMetadata": { "labels": { "l": "1" } },
            "externalSecretSpec": { "refreshInterval": "1h" }
        }));
        let mut es: ExternalSecret =
            serde_json::from_value(child(&parent, "ns")).expect("ExternalSecret");
        assert!(up_to_date(&es, &parent));
        es.labels_mut().insert("other-tool".into(), "x".into());
        assert!(up_to_date(&es, &parent), "labels of others are fine");
        es.labels_mut().insert("l".into(), "2".into());
        assert!(!up_to_date(&es, &parent), "a label of ours changed");
        let mut es: ExternalSecret =
            serde_json::from_value(child(&parent, "ns")).expect("ExternalSecret");
        es.spec.refresh_interval = "2h".into();
        assert!(!up_to_date(&es, &parent), "the spec drifted");
        let mut es: ExternalSecret =
            serde_json::from_value(child(&parent, "ns")).expect("ExternalSecret");
        es.annotations_mut()
            .insert(ANNOTATION_FORCE_SYNC.into(), "stale".into());
        assert!(!up_to_date(&es, &parent), "force-sync not mirrored");
        es.annotations_mut().remove(ANNOTATION_FORCE_SYNC);
        es.metadata.owner_references = None;
        assert!(!up_to_date(&es, &parent), "not ours");
    }

    #[test]
    fn ready_is_false_with_esos_message_when_a_namespace_failed() {
        let parent = ces(json!({ "externalSecretSpec": {} }));
        let ok = status(
            &parent,
            BTreeSet::from(["b".into(), "a".into()]),
            BTreeMap::new(),
            None,
        );
        assert_eq!(ok.provisioned_namespaces, ["a", "b"]);
        assert_eq!(ok.conditions[0].status, ConditionStatus::True);
        assert_eq!(ok.conditions[0].message, None);
        assert_eq!(ok.external_secret_name.as_deref(), Some("shared"));

        let failed = status(
            &parent,
            BTreeSet::from(["a".into()]),
            BTreeMap::from([("c".into(), REASON_ALREADY_EXISTS.into())]),
            None,
        );
        assert_eq!(failed.conditions[0].status, ConditionStatus::False);
        assert_eq!(
            failed.conditions[0].message.as_deref(),
            Some(MESSAGE_NAMESPACES_FAILED)
        );
        assert_eq!(failed.failed_namespaces[0].namespace, "c");
    }
}
