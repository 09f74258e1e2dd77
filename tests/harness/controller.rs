//! Running the controller in the test process, and waiting on what it writes.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use secret_sync_controller::metrics::Metrics;
use secret_sync_controller::reconcile::run::{RunSettings, run};
use secret_sync_crd::{
    ConditionStatus, ExternalSecret, ExternalSecretConditionType, ExternalSecretStatusCondition,
};
use tokio_util::sync::CancellationToken;

use crate::FIELD_MANAGER;

/// How long a test waits for the controller to converge.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// A controller running in this process; stopped when dropped.
pub struct Running {
    shutdown: CancellationToken,
    pub metrics: Metrics,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts the reconcilers for one namespace (ClusterSecretStores are watched cluster-wide), with
/// AWS stores pointed at moto.
pub async fn start(client: &kube::Client, namespace: &str) -> Running {
    let aws = crate::Stack::get().await.aws().await;
    start_with(client, namespace, move |s| s.providers.aws_base = Some(aws))
}

/// Starts the reconcilers with adjusted settings.
pub fn start_with(
    client: &kube::Client,
    namespace: &str,
    adjust: impl FnOnce(&mut RunSettings),
) -> Running {
    let shutdown = CancellationToken::new();
    let metrics = Metrics::new();
    let mut settings = RunSettings {
        namespace: Some(namespace.to_owned()),
        controller_class: "default".into(),
        concurrency: 4,
        store_requeue: Duration::from_secs(300),
        value_reuse: Duration::from_secs(1),
        providers: Default::default(),
    };
    adjust(&mut settings);
    let task = run(
        client.clone(),
        metrics.clone(),
        settings,
        None,
        shutdown.clone(),
    );
    tokio::spawn(async move {
        if let Err(e) = task.await {
            panic!("controller stopped with an error: {e:#}");
        }
    });
    Running { shutdown, metrics }
}

/// Server-side applies any object given as JSON.
pub async fn apply(client: &kube::Client, object: &serde_json::Value) -> DynamicObject {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let (resource, caps) = pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
        .await
        .expect("served kind");
    let name = object["metadata"]["name"].as_str().expect("name");
    let api: Api<DynamicObject> = match (caps.scope, object["metadata"]["namespace"].as_str()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => {
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        _ => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"))
}

/// The Ready condition of an ExternalSecret.
pub fn ready_of(es: &ExternalSecret) -> Option<&ExternalSecretStatusCondition> {
    es.status
        .as_ref()?
        .condition(ExternalSecretConditionType::Ready)
}

/// A Secret's data as strings.
pub fn data_of(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// Polls an ExternalSecret until `done` holds.
pub async fn wait_for(
    client: &kube::Client,
    ns: &str,
    name: &str,
    done: impl Fn(&ExternalSecret) -> bool,
) -> ExternalSecret {
    let api: Api<ExternalSecret> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let current = api.get_opt(name).await.expect("get ExternalSecret");
        if let Some(es) = current {
            if done(&es) {
                return es;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "ExternalSecret {ns}/{name} did not converge within {CONVERGE:?}; status: {:?}",
                    es.status
                );
            }
        } else if tokio::time::Instant::now() > deadline {
            panic!("ExternalSecret {ns}/{name} does not exist");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until an ExternalSecret is Ready=True.
pub async fn wait_ready(client: &kube::Client, ns: &str, name: &str) -> ExternalSecret {
    wait_for(client, ns, name, |es| {
        ready_of(es).is_some_and(|c| c.status == ConditionStatus::True)
    })
    .await
}

/// Polls a Secret until it exists and `done` holds.
pub async fn wait_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    done: impl Fn(&Secret) -> bool,
) -> Secret {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        if let Some(secret) = api.get_opt(name).await.expect("get Secret")
            && done(&secret)
        {
            return secret;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("Secret {ns}/{name} did not reach the expected state within {CONVERGE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
