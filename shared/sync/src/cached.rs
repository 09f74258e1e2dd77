//! What the ExternalSecret cache keeps of each object.
//!
//! A typed `ExternalSecret` in memory is about 2.5 KiB: 736 bytes inline, a B-tree node of 544
//! bytes for a label map of one entry, and a separate allocation for every string of its spec and
//! status. At 100,000 ExternalSecrets the cache of them was the largest part of the controller.
//! [`CachedExternalSecret`] keeps what is read of every cached object (its identity, its owners,
//! the Secret it writes) as fields, and the rest (spec, status, labels, annotations) as one block
//! of JSON, decoded when a reconcile, a resolve or a mapper needs the whole object: a few
//! microseconds, against a sync's milliseconds.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::ObjectRef;
use secret_sync_crd::{ExternalSecret, ExternalSecretSpec, ExternalSecretStatus};
use serde::{Deserialize, Serialize};

use crate::index::{Reader, Source};
use crate::refresh;
use crate::resolve::{Read, StoreId};

/// An ExternalSecret as the cache keeps it; [`CachedExternalSecret::expand`] gives it back
/// whole (without managedFields, which no cache keeps).
#[derive(Clone)]
pub struct CachedExternalSecret {
    /// Name, namespace, uid, resource version, generation, deletion time and owners: what kube's
    /// controller, the shards and the ClusterExternalSecret reconciler read of every object.
    metadata: ObjectMeta,
    /// The Secret it writes, when not the one of its own name.
    target: Option<Box<str>>,
    /// The earliest instant it may fall due for a refresh, as cached ([`refresh::earliest_due`]);
    /// `None` if never, or if its spec is invalid.
    earliest_due: Option<jiff::Timestamp>,
    /// The rest, as JSON: [`Body`].
    body: Box<[u8]>,
}

/// What [`CachedExternalSecret`] keeps as JSON.
#[derive(Serialize)]
struct BodyRef<'a> {
    metadata: &'a ObjectMeta,
    spec: &'a ExternalSecretSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: &'a Option<ExternalSecretStatus>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    metadata: ObjectMeta,
    spec: ExternalSecretSpec,
    #[serde(default)]
    status: Option<ExternalSecretStatus>,
}

impl CachedExternalSecret {
    /// The cached form of `es`.
    pub fn new(mut es: ExternalSecret) -> Self {
        let earliest_due = crate::engine::validate_spec(&es)
            .ok()
            .and_then(|interval| refresh::earliest_due(&es, interval, jiff::Timestamp::now()));
        let meta = &mut es.metadata;
        meta.managed_fields = None;
        let metadata = ObjectMeta {
            name: meta.name.take(),
            namespace: meta.namespace.take(),
            uid: meta.uid.take(),
            resource_version: meta.resource_version.take(),
            generation: meta.generation.take(),
            deletion_timestamp: meta.deletion_timestamp.take(),
            owner_references: meta.owner_references.take(),
            ..ObjectMeta::default()
        };
        let target = es
            .spec
            .target
            .name
            .as_deref()
            .filter(|t| !t.is_empty() && Some(*t) != metadata.name.as_deref())
            .map(Box::from);
        let body = serde_json::to_vec(&BodyRef {
            metadata: &es.metadata,
            spec: &es.spec,
            status: &es.status,
        })
        // Serialising these types into memory cannot fail: no map has keys other than strings.
        .unwrap_or_default();
        Self {
            metadata,
            target,
            earliest_due,
            body: body.into_boxed_slice(),
        }
    }

    /// The whole ExternalSecret.
    pub fn expand(&self) -> Result<ExternalSecret, serde_json::Error> {
        let body: Body = serde_json::from_slice(&self.body)?;
        let kept = self.metadata.clone();
        Ok(ExternalSecret {
            metadata: ObjectMeta {
                name: kept.name,
                namespace: kept.namespace,
                uid: kept.uid,
                resource_version: kept.resource_version,
                generation: kept.generation,
                deletion_timestamp: kept.deletion_timestamp,
                owner_references: kept.owner_references,
                ..body.metadata
            },
            spec: body.spec,
            status: body.status,
        })
    }

    /// [`CachedExternalSecret::expand`], shared; `None`, logged, for one that cannot be decoded
    /// (never seen: it was encoded here).
    pub fn expanded(&self) -> Option<std::sync::Arc<ExternalSecret>> {
        match self.expand() {
            Ok(es) => Some(std::sync::Arc::new(es)),
            Err(e) => {
                tracing::error!(namespace = ?self.metadata.namespace, name = ?self.metadata.name, error = %e, "a cached ExternalSecret could not be decoded");
                None
            }
        }
    }

    /// The name of the Secret it writes: `spec.target.name`, or else its own.
    pub fn target_name(&self) -> &str {
        match &self.target {
            Some(target) => target,
            None => self.metadata.name.as_deref().unwrap_or_default(),
        }
    }

    /// Whether it may be due for a refresh at `now`: if not, [`refresh::should_refresh`] of the
    /// whole object says not due (or it is invalid), without decoding it.
    pub fn may_be_due(&self, now: jiff::Timestamp) -> bool {
        self.earliest_due.is_some_and(|at| at <= now)
    }
}

impl From<ExternalSecret> for CachedExternalSecret {
    fn from(es: ExternalSecret) -> Self {
        Self::new(es)
    }
}

impl std::fmt::Debug for CachedExternalSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedExternalSecret")
            .field("namespace", &self.metadata.namespace)
            .field("name", &self.metadata.name)
            .field("resource_version", &self.metadata.resource_version)
            .finish_non_exhaustive()
    }
}

/// The cache's key for the ExternalSecret at `at`.
pub fn key(at: &ObjectRef<ExternalSecret>) -> ObjectRef<CachedExternalSecret> {
    ObjectRef::new(&at.name).within(at.namespace.as_deref().unwrap_or_default())
}

/// Read as an ExternalSecret, kept in the cached form: what kube's `Controller` needs of a type
/// it watches.
impl<'de> Deserialize<'de> for CachedExternalSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ExternalSecret::deserialize(deserializer).map(Self::new)
    }
}

impl Resource for CachedExternalSecret {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        ExternalSecret::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        ExternalSecret::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        ExternalSecret::version(dt)
    }

    fn api_version(dt: &()) -> Cow<'_, str> {
        ExternalSecret::api_version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        ExternalSecret::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Indexed by what the whole object reads; one that cannot be decoded (never seen: it was
/// encoded here) reads nothing.
impl Reader for CachedExternalSecret {
    fn reads(&self) -> Vec<(StoreId, Read)> {
        self.readings().0
    }

    fn sources(&self) -> Vec<Source> {
        self.readings().1
    }

    fn readings(&self) -> (Vec<(StoreId, Read)>, Vec<Source>) {
        self.expanded()
            .map_or_else(|| (Vec::new(), Vec::new()), |es| es.readings())
    }
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt;
    use serde_json::json;

    use super::*;

    fn full() -> ExternalSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {
                "name": "db", "namespace": "apps", "uid": "u-1", "resourceVersion": "42",
                "generation": 3, "creationTimestamp": "2026-12-07T10:00:00Z",
                "labels": { "team": "a" }, "annotations": { "note": "x" },
                "finalizers": ["example.com/keep"],
                "ownerReferences": [{ "apiVersion": "external-secrets.io/v1",
                    "kind": "ClusterExternalSecret", "name": "shared", "uid": "c-1" }],
                "managedFields": [{ "manager": "kubectl", "operation": "Apply" }]
            },
            "spec": {
                "refreshInterval": "1h",
                "secretStoreRef": { "name": "aws", "kind": "ClusterSecretStore" },
                "target": { "name": "db-credentials", "creationPolicy": "Owner" },
                "data": [{ "secretKey": "password", "remoteRef": { "key": "db", "property": "password" } }]
            },
            "status": {
                "refreshTime": "2026-12-07T10:00:01Z",
                "syncedResourceVersion": "3-abc",
                "conditions": [{ "type": "Ready", "status": "True", "reason": "SecretSynced",
                    "message": "secret synced", "lastTransitionTime": "2026-12-07T10:00:01Z" }]
            }
        }))
        .expect("ExternalSecret")
    }

    #[test]
    fn the_cached_form_gives_back_the_whole_object_without_managed_fields() {
        let es = full();
        let cached = CachedExternalSecret::new(es.clone());
        let mut want = es;
        want.metadata.managed_fields = None;
        assert_eq!(cached.expand().expect("decoded"), want);
        assert_eq!(cached.name_any(), "db");
        assert_eq!(cached.namespace().as_deref(), Some("apps"));
        assert_eq!(cached.resource_version().as_deref(), Some("42"));
        assert_eq!(cached.owner_references()[0].name, "shared");
        assert_eq!(cached.target_name(), "db-credentials");
        // Kept once: the identity is not in the JSON as well.
        let body = String::from_utf8(cached.body.to_vec()).expect("JSON");
        assert!(!body.contains("\"uid\""), "{body}");
        assert!(body.contains("\"team\""), "{body}");
    }

    #[test]
    fn without_a_target_name_it_writes_the_secret_of_its_own_name() {
        let mut es = full();
        es.spec.target.name = None;
        assert_eq!(CachedExternalSecret::new(es.clone()).target_name(), "db");
        es.spec.target.name = Some("db".into());
        let cached = CachedExternalSecret::new(es);
        assert!(cached.target.is_none());
        assert_eq!(cached.target_name(), "db");
    }

    #[test]
    fn it_reads_as_an_external_secret_and_is_indexed_as_one() {
        let es = full();
        let cached: CachedExternalSecret =
            serde_json::from_value(serde_json::to_value(&es).expect("JSON")).expect("read");
        assert_eq!(
            format!("{:?}", cached.readings()),
            format!("{:?}", es.readings())
        );
        assert!(!cached.reads().is_empty());
        // Far smaller than the typed object: one block, no allocation per field.
        assert!(
            cached.body.len() < 800,
            "{}",
            String::from_utf8_lossy(&cached.body)
        );
    }
}
