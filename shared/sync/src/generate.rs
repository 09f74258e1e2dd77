//! The generate stage: a `generatorRef` (a namespaced generator, or a `ClusterGenerator`) read
//! from the apiserver and run in the using object's namespace, for fresh values each time.
//!
//! Generators are read when used, not watched: an ExternalSecret using one is synced on its own
//! schedule, and a generator's edit takes effect at its next sync, as in ESO.

use jiff::Timestamp;
use kube::Api;
use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use secret_sync_crd::GeneratorRef;
use secret_sync_generators::{Context, Generated};
use secret_sync_providers::ProviderError;
use serde_json::Value;

use crate::stores::Clients;

/// The kind a `generatorRef` names to use a cluster-wide generator.
pub const CLUSTER_GENERATOR: &str = "ClusterGenerator";

/// What running a `generatorRef` gave.
pub enum Generation {
    /// Fresh values.
    Made(Generated),
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
    let context = Context {
        namespace: namespace.to_owned(),
        referents: clients.referents(),
        options: clients.options().clone(),
    };
    generator
        .generate(&spec, &context)
        .await
        .map(Generation::Made)
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
