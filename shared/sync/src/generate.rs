//! The generate stage: a `generatorRef` (a namespaced generator, or a `ClusterGenerator`) read
//! from the apiserver and run in the using object's namespace, for fresh values each time.
//!
//! Generators are read when used, not watched: an ExternalSecret using one is synced on its own
//! schedule, and a generator's edit takes effect at its next sync, as in ESO.
//!
//! What a generation leaves to clean up (its [`Generated::state`]) is kept as ESO keeps it: a
//! `GeneratorState` per generation, labelled with ESO's owner key (the owner's kind, namespace,
//! name and entry), owned by the ExternalSecret or PushSecret (so deleting it deletes them), and
//! holding the generator object and the state. A newer generation gives the earlier ones a
//! garbage-collection deadline a grace period ahead (`--generator-gc-grace-period`, ESO's 2
//! minutes: consumers have time to pick up the new values); the GeneratorState controller
//! deletes them then, and its finalizer runs the generator's cleanup.
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use secret_sync_crd::GeneratorRef;
use secret_sync_crd::generators::{
    GENERATOR_API_VERSION, GeneratorState, GeneratorStateSpec, LABEL_GENERATOR_STATE_OWNER_KEY,
};
use secret_sync_generators::{Context, Generated};
use secret_sync_providers::ProviderError;
use serde_json::{Value, json};

use crate::stores::Clients;

/// The kind a `generatorRef` names to use a cluster-wide generator.
pub const CLUSTER_GENERATOR: &str = "ClusterGenerator";

/// What running a `generatorRef` gave.
pub enum Generation {
    /// Fresh values, and the generator object that made them (a ClusterGenerator's as the
    /// namespaced object it stands for).
    Made {
        generated: Generated,
        resource: Value,
    },
    /// The generator names another controller class (`spec.controller`): the object using it is
    /// that controller's, as a store of another class makes it.
    OtherController,
}

/// The generator `reference` names, read and run for an object in `namespace`.
pub async fn generate(
    client: &kube::Client,
    clients: &Clients,
    controller_class: &str,
    namespace: &str,
    reference: &GeneratorRef,
) -> Result<Generation, ProviderError> {
    let (kind, spec) = read(client, namespace, reference).await?;
    let controller = spec
        .get("controller")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !controller.is_empty() && controller != controller_class {
        return Ok(Generation::OtherController);
    }
    let generator = secret_sync_generators::generator(&kind)?;
    let generated = generator
        .generate(&spec, &context(clients, namespace))
        .await?;
    let resource = json!({ "apiVersion": GENERATOR_API_VERSION, "kind": kind, "spec": spec });
    Ok(Generation::Made {
        generated,
        resource,
    })
}

fn context(clients: &Clients, namespace: &str) -> Context {
    Context {
        namespace: namespace.to_owned(),
        referents: clients.referents(),
        options: clients.options().clone(),
    }
}

/// Undoes the generation `resource` made, whose state is `state` (see the module notes).
pub async fn cleanup(
    clients: &Clients,
    namespace: &str,
    resource: &Value,
    state: &Value,
) -> Result<(), ProviderError> {
    let kind = resource
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let spec = resource.get("spec").cloned().unwrap_or(Value::Null);
    secret_sync_generators::generator(kind)?
        .cleanup(&spec, state, &context(clients, namespace))
        .await
}

/// Who a GeneratorState belongs to: an ExternalSecret's or PushSecret's entry.
pub struct StateOwner<'a> {
    /// `ExternalSecret` or `PushSecret`.
    pub kind: &'static str,
    pub api_version: &'static str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    /// The entry: a `dataFrom` index, or ESO's `__pushsecret`.
    pub key: String,
}

impl StateOwner<'_> {
    /// ESO's owner key: the hex SHA3-224 of `<Kind>-<namespace>-<name>-<key>`.
    pub fn owner_key(&self) -> String {
        let text = format!(
            "{}-{}-{}-{}",
            self.kind, self.namespace, self.name, self.key
        );
        crate::hash::sha3_224_hex(text.as_bytes())
    }
}

/// Keeps a generation's state: a new GeneratorState for it, and a deadline `grace` ahead for
/// every earlier one of the same owner entry that has none. `due_now` gives the new one a
/// deadline of now instead (a generation whose values were never used and whose cleanup
/// failed: the GeneratorState controller retries it).
pub async fn keep_state(
    client: &kube::Client,
    owner: &StateOwner<'_>,
    resource: &Value,
    state: Value,
    grace: Duration,
    due_now: bool,
) -> Result<(), kube::Error> {
    let api: Api<GeneratorState> = Api::namespaced(client.clone(), owner.namespace);
    let owner_key = owner.owner_key();
    let kind = resource
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("generator");
    let mut object = GeneratorState::new(
        "",
        GeneratorStateSpec {
            garbage_collection_deadline: due_now.then(|| Time(Timestamp::now())),
            resource: resource.clone(),
            state,
        },
    );
    object.metadata.name = None;
    object.metadata.generate_name = Some(format!(
        "gen-{}-{}-",
        kind.to_lowercase(),
        truncate(owner.name, 200)
    ));
    object
        .metadata
        .labels
        .get_or_insert_default()
        .insert(LABEL_GENERATOR_STATE_OWNER_KEY.into(), owner_key.clone());
    object.metadata.owner_references = Some(vec![OwnerReference {
        api_version: owner.api_version.into(),
        kind: owner.kind.into(),
        name: owner.name.into(),
        uid: owner.uid.into(),
        ..OwnerReference::default()
    }]);
    let created = crate::view::bounded(
        "creating a GeneratorState",
        api.create(&PostParams::default(), &object),
    )
    .await?;
    if due_now {
        return Ok(());
    }
    let selector = format!("{LABEL_GENERATOR_STATE_OWNER_KEY}={owner_key}");
    let earlier = crate::view::bounded(
        "listing GeneratorStates",
        api.list(&ListParams::default().labels(&selector)),
    )
    .await?;
    let deadline = Timestamp::now()
        .checked_add(jiff::SignedDuration::try_from(grace).unwrap_or_default())
        .unwrap_or(Timestamp::MAX);
    for old in earlier.items {
        if old.metadata.uid == created.metadata.uid
            || old.spec.garbage_collection_deadline.is_some()
        {
            continue;
        }
        let Some(name) = old.metadata.name.as_deref() else {
            continue;
        };
        let patch = json!({ "spec": { "garbageCollectionDeadline": Time(deadline) } });
        crate::view::bounded(
            "flagging a GeneratorState",
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await?;
    }
    Ok(())
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// The generator's kind and `spec`: a namespaced generator's own, or the one a ClusterGenerator
/// holds for its `spec.kind`.
async fn read(
    client: &kube::Client,
    namespace: &str,
    reference: &GeneratorRef,
) -> Result<(String, Value), ProviderError> {
    let (group, version) = reference
        .api_version
        .rsplit_once('/')
        .unwrap_or((reference.api_version.as_str(), "v1alpha1"));
    let cluster = reference.kind == CLUSTER_GENERATOR;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, &reference.kind),
        &format!("{}s", reference.kind.to_lowercase()),
    );
    let api: Api<DynamicObject> = if cluster {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, &resource)
    };
    let object = crate::view::bounded("reading a generator", api.get_opt(&reference.name))
        .await
        .map_err(|e| unreadable(reference, namespace, cluster, e.to_string()))?
        .ok_or_else(|| unreadable(reference, namespace, cluster, "not found".into()))?;
    let spec = object.data.get("spec").cloned().unwrap_or(Value::Null);
    if !cluster {
        return Ok((reference.kind.clone(), spec));
    }
    let kind = spec
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let field = secret_sync_crd::generators::cluster_generator_field(&kind).ok_or_else(|| {
        ProviderError::Config(format!(
            "ClusterGenerator {:?}: spec.kind {kind:?} is not a generator kind",
            reference.name
        ))
    })?;
    match spec.get("generator").and_then(|g| g.get(field)) {
        Some(inner) => Ok((kind, inner.clone())),
        None => Err(ProviderError::Config(format!(
            "ClusterGenerator {:?}: when kind is {kind}, {field} must be set",
            reference.name
        ))),
    }
}

/// A generator that could not be read: retried (it may be created later), naming where it was
/// looked for.
fn unreadable(
    reference: &GeneratorRef,
    namespace: &str,
    cluster: bool,
    why: String,
) -> ProviderError {
    let place = if cluster {
        String::new()
    } else {
        format!(" in namespace {namespace}")
    };
    ProviderError::Provider {
        operation: "GetGenerator",
        message: format!("{} {:?}{place}: {why}", reference.kind, reference.name),
        source: None,
    }
}

/// The earliest of two expiries.
pub fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ESO's `ObjectHash` of `ExternalSecret-apps-db-0` (Python's `hashlib.sha3_224`), so
    /// GeneratorStates carry the owner key ESO would look for.
    #[test]
    fn the_owner_key_is_esos() {
        let owner = StateOwner {
            kind: "ExternalSecret",
            api_version: "external-secrets.io/v1",
            namespace: "apps",
            name: "db",
            uid: "u",
            key: "0".into(),
        };
        assert_eq!(
            owner.owner_key(),
            "d409767afc23190711761fa5e7e0c3f8affe060108fb327448095332"
        );
    }
}
