//! The ClusterPushSecret reconciler: the same PushSecret in every namespace a ClusterPushSecret
//! selects, with ESO's selection, naming, ownership and status.
//!
//! Each pass works out the target namespaces (any of `namespaceSelectors`; terminating
//! namespaces are left alone), server-side applies the PushSecret in each of them unless a
//! PushSecret of that name that is not ours is there (that namespace is reported in
//! `failedNamespaces`, as ESO does), deletes the PushSecrets this ClusterPushSecret controls
//! anywhere else (a namespace that no longer matches, a renamed `pushSecretName`), and writes
//! `provisionedNamespaces`, `failedNamespaces`, `pushSecretName` and `Ready`. It runs again when
//! a namespace's labels change, when one of its PushSecrets changes, and every `refreshTime`.
//! The PushSecrets themselves are pushed by the PushSecret reconciler.
//!
//! As in ESO: no finalizer; the PushSecrets carry a controller ownerReference to the
//! ClusterPushSecret, so the garbage collector removes them with it (and each one's own
//! `deletionPolicy` then applies). Where it differs: ownership is by the owner's uid (ESO
//! compares names), labels and annotations other tools put on a PushSecret are kept (server-side
//! apply; ESO replaces them with `pushSecretMetadata`), and a label change on any namespace
//! reconciles every ClusterPushSecret (ESO only those that select the namespace's new labels, so
//! a namespace that stops matching waits for the refresh there).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use secret_sync::stores::selector_matches;
use secret_sync_crd::cluster_push_secret::DEFAULT_PUSH_NAMESPACE_REFRESH;
use secret_sync_crd::{
    ClusterPushSecret, ClusterPushSecretNamespaceFailure, ClusterPushSecretStatus, ConditionStatus,
    PushSecret, PushSecretStatusCondition,
};
use serde_json::json;

use super::cluster_external_secret::terminating;
use crate::metrics::{Kind, Metrics, ReconcileResult};

/// The field manager of the PushSecrets this reconciler writes.
pub const FIELD_MANAGER: &str = "secret-sync-clusterpushsecret";
/// ESO's Ready message when a namespace failed (its `errNamespacesFailed`).
pub const MESSAGE_NAMESPACES_FAILED: &str = "one or more namespaces failed";
/// ESO's reason for a namespace that already has a PushSecret of that name of its own.
pub const REASON_ALREADY_EXISTS: &str = "push secret already exists in namespace";
/// ESO's condition reason when the ClusterPushSecret itself cannot be handled.
pub const REASON_ERRORED: &str = "Errored";

/// What the reconciler reads and writes with.
pub struct CpsContext {
    pub client: kube::Client,
    /// Every namespace (the engine's cache).
    pub namespaces: Store<Namespace>,
    /// Every PushSecret (the PushSecret reconciler's cache, or one of this reconciler's own):
    /// the children are found here.
    pub push_secrets: Store<PushSecret>,
    pub metrics: Metrics,
    /// Per ClusterPushSecret (uid), the fingerprint of the child last applied in every selected
    /// namespace. While it holds, a child the cache shows as up to date is not written again: a
    /// label change on any namespace reconciles every ClusterPushSecret, and that should not
    /// cost a write per child.
    pub applied: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl CpsContext {
    /// Drops what is kept for a deleted ClusterPushSecret: its metric series and the fingerprint
    /// of what it last applied.
    pub fn forget(&self, cps: &ObjectRef<ClusterPushSecret>) {
        self.metrics.forget(Kind::ClusterPushSecret, "", &cps.name);
        if let (Some(uid), Ok(mut applied)) = (&cps.extra.uid, self.applied.lock()) {
            applied.remove(uid);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CpsError {
    #[error("failed to write the status: {0}")]
    Status(#[source] kube::Error),
}

/// Whether `namespace` is one `cps` selects (whether it exists or is terminating aside): its
/// labels match any of `namespaceSelectors`.
pub fn selects(cps: &ClusterPushSecret, namespace: &Namespace) -> bool {
    let labels = namespace.labels();
    cps.spec
        .namespace_selectors
        .iter()
        .any(|s| selector_matches(s, labels))
}

/// Whether `ps` is controlled by `cps`.
fn owned_by(ps: &PushSecret, cps: &ClusterPushSecret) -> bool {
    let Some(uid) = cps.uid() else { return false };
    ps.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// The ClusterPushSecret that controls `ps`, if any: for the watch on PushSecrets.
pub fn owner_of(
    ps: &kube::core::PartialObjectMeta<PushSecret>,
) -> Option<ObjectRef<ClusterPushSecret>> {
    ps.owner_references()
        .iter()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == "ClusterPushSecret"
                && o.api_version.starts_with("external-secrets.io/")
        })
        .map(|o| ObjectRef::new(&o.name))
}

/// The PushSecret `cps` wants in `namespace`, as an apply patch.
pub fn child(cps: &ClusterPushSecret, namespace: &str) -> serde_json::Value {
    let metadata = &cps.spec.push_secret_metadata;
    json!({
        "apiVersion": "external-secrets.io/v1alpha1",
        "kind": "PushSecret",
        "metadata": {
            "name": cps.spec.push_secret_name(cps),
            "namespace": namespace,
            "labels": metadata.labels,
            "annotations": metadata.annotations,
            "ownerReferences": [{
                "apiVersion": "external-secrets.io/v1alpha1",
                "kind": "ClusterPushSecret",
                "name": cps.name_any(),
                "uid": cps.uid().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": cps.spec.push_secret_spec,
    })
}

/// Whether `ps` already is what `cps` wants: the same spec and controller, and every label and
/// annotation `cps` sets (others' labels may be there too).
pub fn up_to_date(ps: &PushSecret, cps: &ClusterPushSecret) -> bool {
    let metadata = &cps.spec.push_secret_metadata;
    let contains = |actual: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>| {
        wanted.iter().all(|(k, v)| actual.get(k) == Some(v))
    };
    owned_by(ps, cps)
        && ps.spec == cps.spec.push_secret_spec
        && contains(ps.labels(), &metadata.labels)
        && contains(ps.annotations(), &metadata.annotations)
}

fn fingerprint(child: &serde_json::Value) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(child.to_string())
}

/// The status `cps` gets for what happened. ESO's `Ready` has no reason and no transition time
/// when it follows the namespaces; a ClusterPushSecret that cannot be handled at all (`problem`)
/// gets ESO's `Errored` with a transition time, kept while it stays `False`.
fn status(
    cps: &ClusterPushSecret,
    provisioned: BTreeSet<String>,
    failed: BTreeMap<String, String>,
    problem: Option<String>,
) -> ClusterPushSecretStatus {
    let condition = match problem {
        Some(problem) => {
            let previous = cps
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .filter(|c| c.status == ConditionStatus::False)
                .and_then(|c| c.last_transition_time.clone());
            PushSecretStatusCondition {
                type_: "Ready".into(),
                status: ConditionStatus::False,
                reason: Some(REASON_ERRORED.into()),
                message: Some(problem),
                last_transition_time: Some(
                    previous.unwrap_or_else(|| Time(jiff::Timestamp::now())),
                ),
            }
        }
        None => PushSecretStatusCondition {
            type_: "Ready".into(),
            status: ConditionStatus::from_bool(failed.is_empty()),
            reason: None,
            message: (!failed.is_empty()).then(|| MESSAGE_NAMESPACES_FAILED.to_owned()),
            last_transition_time: None,
        },
    };
    ClusterPushSecretStatus {
        failed_namespaces: failed
            .into_iter()
            .map(|(namespace, reason)| ClusterPushSecretNamespaceFailure {
                namespace,
                reason: Some(reason),
            })
            .collect(),
        provisioned_namespaces: provisioned.into_iter().collect(),
        push_secret_name: Some(cps.spec.push_secret_name(cps).to_owned()),
        conditions: vec![condition],
    }
}

/// The status fields a merge patch must clear when empty.
const STATUS_FIELDS: &[&str] = &[
    "failedNamespaces",
    "provisionedNamespaces",
    "pushSecretName",
    "conditions",
];

pub async fn reconcile(
    cps: Arc<ClusterPushSecret>,
    ctx: Arc<CpsContext>,
) -> Result<Action, CpsError> {
    let name = cps.name_any();
    tracing::debug!(cluster_push_secret = %name, "reconciling");
    if cps.meta().deletion_timestamp.is_some() {
        // The garbage collector deletes the children (they name this object as their owner).
        ctx.metrics.clear(Kind::ClusterPushSecret, "", &name);
        if let Ok(mut applied) = ctx.applied.lock() {
            applied.remove(cps.uid().as_deref().unwrap_or_default());
        }
        return Ok(Action::await_change());
    }
    let _timer = ctx
        .metrics
        .reconcile_timer(Kind::ClusterPushSecret, "", &name);
    let (refresh, problem) = match cps.spec.refresh_time() {
        Ok(refresh) => (refresh, None),
        Err(e) => (
            DEFAULT_PUSH_NAMESPACE_REFRESH,
            Some(format!("invalid spec.refreshTime: {e}")),
        ),
    };
    let child_name = cps.spec.push_secret_name(&cps).to_owned();
    let uid = cps.uid().unwrap_or_default();
    let print = fingerprint(&child(&cps, ""));
    let settled = ctx.applied.lock().ok().and_then(|a| a.get(&uid).copied()) == Some(print);

    let mut wanted = BTreeSet::new();
    let mut provisioned = BTreeSet::new();
    let mut failed = BTreeMap::new();
    for namespace in ctx.namespaces.state() {
        if !selects(&cps, &namespace) || terminating(&namespace) {
            continue;
        }
        let ns = namespace.name_any();
        wanted.insert(ns.clone());
        match provision(&cps, &ns, &child_name, settled, &ctx).await {
            Ok(()) => {
                provisioned.insert(ns);
            }
            Err(reason) => {
                failed.insert(ns, reason);
            }
        }
    }

    // Children anywhere else (a namespace no longer selected, a former pushSecretName) go. One
    // that cannot be deleted fails its namespace, as in ESO.
    for ps in ctx.push_secrets.state() {
        let ns = ps.namespace().unwrap_or_default();
        if !owned_by(&ps, &cps) || (wanted.contains(&ns) && ps.name_any() == child_name) {
            continue;
        }
        match delete_child(&ctx.client, &ps).await {
            Ok(()) => {
                tracing::info!(cluster_push_secret = %name, namespace = %ns, name = %ps.name_any(), "deleted a PushSecret no longer wanted");
            }
            Err(e) => {
                tracing::warn!(cluster_push_secret = %name, namespace = %ns, name = %ps.name_any(), error = %e, "could not delete a PushSecret no longer wanted");
                provisioned.remove(&ns);
                failed.insert(
                    ns,
                    format!("push secret in non matching namespace could not be deleted: {e}"),
                );
            }
        }
    }

    if let Ok(mut applied) = ctx.applied.lock() {
        if failed.is_empty() {
            applied.insert(uid, print);
        } else {
            applied.remove(&uid);
        }
    }

    let next = status(&cps, provisioned, failed, problem);
    let ready = next.conditions[0].status == ConditionStatus::True;
    if cps.status.as_ref() != Some(&next) {
        Api::<ClusterPushSecret>::all(ctx.client.clone())
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(super::status_patch(&next, STATUS_FIELDS)),
            )
            .await
            .map_err(CpsError::Status)?;
        tracing::info!(
            cluster_push_secret = %name,
            provisioned = next.provisioned_namespaces.len(),
            failed = next.failed_namespaces.len(),
            "ClusterPushSecret reconciled"
        );
    }
    ctx.metrics
        .set_ready(Kind::ClusterPushSecret, "", &name, ready);
    ctx.metrics
        .reconcile_result(Kind::ClusterPushSecret, ReconcileResult::Success);
    Ok(Action::requeue(refresh))
}

/// Writes the child in `namespace`; the reason it could not, for `failedNamespaces`.
async fn provision(
    cps: &ClusterPushSecret,
    namespace: &str,
    child_name: &str,
    settled: bool,
    ctx: &CpsContext,
) -> Result<(), String> {
    let api: Api<PushSecret> = Api::namespaced(ctx.client.clone(), namespace);
    let cached = ctx
        .push_secrets
        .get(&ObjectRef::new(child_name).within(namespace));
    // The cache may lag a create by someone else: a child it does not know is looked up first,
    // so a PushSecret of the same name that is not ours is never taken over.
    let existing = match cached {
        Some(ps) => Some(ps),
        None => api
            .get_opt(child_name)
            .await
            .map_err(|e| format!("could not get existing PushSecret: {e}"))?
            .map(Arc::new),
    };
    match existing {
        Some(ps) if !owned_by(&ps, cps) => return Err(REASON_ALREADY_EXISTS.to_owned()),
        Some(ps) if settled && up_to_date(&ps, cps) => return Ok(()),
        _ => {}
    }
    ctx.metrics.apiserver_write("PushSecret", "apply");
    api.patch(
        child_name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(child(cps, namespace)),
    )
    .await
    .map(drop)
    .map_err(|e| format!("could not create or update push secret: {e}"))
}

async fn delete_child(client: &kube::Client, ps: &PushSecret) -> Result<(), kube::Error> {
    let (namespace, name) = (ps.namespace().unwrap_or_default(), ps.name_any());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: ps.uid(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match Api::<PushSecret>::namespaced(client.clone(), &namespace)
        .delete(&name, &params)
        .await
    {
        Ok(_) => Ok(()),
        // Gone already, or replaced by another object of that name: nothing of ours to delete.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn error_policy(cps: Arc<ClusterPushSecret>, error: &CpsError, ctx: Arc<CpsContext>) -> Action {
    ctx.metrics
        .reconcile_result(Kind::ClusterPushSecret, ReconcileResult::Error);
    tracing::warn!(cluster_push_secret = %cps.name_any(), error = %error, "ClusterPushSecret reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cps(spec: serde_json::Value) -> ClusterPushSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
            "metadata": { "name": "shared", "uid": "u-1" },
            "spec": spec
        }))
        .expect("ClusterPushSecret")
    }

    fn push_spec() -> serde_json::Value {
        json!({ "secretStoreRefs": [{ "name": "aws", "kind": "ClusterSecretStore" }],
                "selector": { "secret": { "name": "src" } },
                "data": [{ "match": { "secretKey": "k", "remoteRef": { "remoteKey": "r" } } }] })
    }

    fn namespace(name: &str, labels: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({ "metadata": { "name": name, "labels": labels } }))
            .expect("Namespace")
    }

    #[test]
    fn selectors_are_ored_and_no_selector_selects_nothing() {
        let by_label = cps(json!({
            "pushSecretSpec": push_spec(),
            "namespaceSelectors": [{ "matchLabels": { "team": "a" } }, { "matchExpressions": [
                { "key": "tier", "operator": "In", "values": ["gold"] }
            ] }]
        }));
        assert!(selects(&by_label, &namespace("x", json!({ "team": "a" }))));
        assert!(selects(
            &by_label,
            &namespace("y", json!({ "tier": "gold" }))
        ));
        assert!(!selects(&by_label, &namespace("z", json!({ "team": "b" }))));
        let everything = cps(json!({ "pushSecretSpec": push_spec(), "namespaceSelectors": [{}] }));
        assert!(selects(&everything, &namespace("any", json!({}))));
        let nothing = cps(json!({ "pushSecretSpec": push_spec() }));
        assert!(!selects(
            &nothing,
            &namespace("any", json!({ "team": "a" }))
        ));
    }

    #[test]
    fn the_child_carries_the_metadata_the_spec_and_a_controller_reference() {
        let parent = cps(json!({
            "pushSecretName": "child",
            "pushSecretMetadata": { "labels": { "l": "1" }, "annotations": { "a": "2" } },
            "pushSecretSpec": push_spec()
        }));
        let child = child(&parent, "team-a");
        assert_eq!(child["apiVersion"], "external-secrets.io/v1alpha1");
        assert_eq!(child["metadata"]["name"], "child");
        assert_eq!(child["metadata"]["namespace"], "team-a");
        assert_eq!(child["metadata"]["labels"], json!({ "l": "1" }));
        assert_eq!(child["metadata"]["annotations"], json!({ "a": "2" }));
        assert_eq!(
            child["metadata"]["ownerReferences"],
            json!([{ "apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
                     "name": "shared", "uid": "u-1", "controller": true, "blockOwnerDeletion": true }])
        );
        assert_eq!(child["spec"]["secretStoreRefs"][0]["name"], "aws");
        assert_eq!(child["spec"]["selector"]["secret"]["name"], "src");
        let meta: kube::core::PartialObjectMeta<PushSecret> =
            serde_json::from_value(child).expect("metadata");
        assert_eq!(owner_of(&meta), Some(ObjectRef::new("shared")));
    }

    #[test]
    fn a_child_is_up_to_date_with_extra_labels_but_not_with_a_changed_one() {
        let parent = cps(json!({
            "pushSecretMetadata": { "labels": { "l": "1" } },
            "pushSecretSpec": push_spec()
        }));
        let mut ps: PushSecret = serde_json::from_value(child(&parent, "ns")).expect("PushSecret");
        assert!(up_to_date(&ps, &parent));
        ps.labels_mut().insert("other-tool".into(), "x".into());
        assert!(up_to_date(&ps, &parent), "labels of others are fine");
        ps.labels_mut().insert("l".into(), "2".into());
        assert!(!up_to_date(&ps, &parent), "a label of ours changed");
        let mut ps: PushSecret = serde_json::from_value(child(&parent, "ns")).expect("PushSecret");
        ps.spec.refresh_interval = "2h".into();
        assert!(!up_to_date(&ps, &parent), "the spec drifted");
        ps.spec = parent.spec.push_secret_spec.clone();
        ps.metadata.owner_references = None;
        assert!(!up_to_date(&ps, &parent), "not ours");
    }

    #[test]
    fn ready_follows_esos_condition_and_the_patch_clears_empty_fields() {
        let parent = cps(json!({ "pushSecretSpec": push_spec() }));
        let ok = status(
            &parent,
            BTreeSet::from(["b".into(), "a".into()]),
            BTreeMap::new(),
            None,
        );
        assert_eq!(ok.provisioned_namespaces, ["a", "b"]);
        assert_eq!(ok.push_secret_name.as_deref(), Some("shared"));
        assert_eq!(
            ok.conditions,
            [PushSecretStatusCondition {
                type_: "Ready".into(),
                status: ConditionStatus::True,
                ..Default::default()
            }]
        );
        let patch = super::super::status_patch(&ok, STATUS_FIELDS);
        assert_eq!(patch["status"]["failedNamespaces"], serde_json::Value::Null);
        assert!(
            patch["status"]
                .as_object()
                .expect("status")
                .contains_key("failedNamespaces")
        );

        let failed = status(
            &parent,
            BTreeSet::from(["a".into()]),
            BTreeMap::from([("c".into(), REASON_ALREADY_EXISTS.into())]),
            None,
        );
        let ready = &failed.conditions[0];
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.message.as_deref(), Some(MESSAGE_NAMESPACES_FAILED));
        assert_eq!(ready.reason, None);
        assert_eq!(failed.failed_namespaces[0].namespace, "c");
        assert_eq!(
            failed.failed_namespaces[0].reason.as_deref(),
            Some(REASON_ALREADY_EXISTS)
        );

        let broken = status(
            &parent,
            BTreeSet::new(),
            BTreeMap::new(),
            Some("invalid spec.refreshTime: x".into()),
        );
        let ready = &broken.conditions[0];
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.reason.as_deref(), Some(REASON_ERRORED));
        assert!(ready.last_transition_time.is_some());
    }
}
