//! Rollout on change, beyond ESO (its most requested feature it declines; users add stakater
//! Reloader): when a sync really changes a target Secret's data, the Deployments, StatefulSets
//! and DaemonSets in its namespace whose pod template uses that Secret (an `env` or `envFrom`
//! reference in any container, a `secret` volume, a projected volume's secret) are rolled, by
//! setting a pod-template annotation to the Secret's data hash. Unchanged data never rolls
//! anything: the annotation would not change.
//!
//! Opt-in, per ExternalSecret with the annotation [`ANNOTATION_ROLLOUT`] (`"true"` or
//! `"false"`), and for every ExternalSecret without it by the controller's default
//! (`--rollout-on-change`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodSpec;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// On an ExternalSecret: roll the workloads using its Secret when the Secret's data changes.
pub const ANNOTATION_ROLLOUT: &str = "secret-sync.io/rollout-on-change";

/// The pod-template annotation a rollout sets, for the Secret `name`: `checksum.secret-sync.io/
/// <name>` (a name too long for an annotation key is cut and completed by a hash of it).
pub fn template_annotation(name: &str) -> String {
    const MAX_NAME: usize = 63;
    let part = if name.len() <= MAX_NAME {
        name.to_owned()
    } else {
        let digest = crate::hash::sha3_224_hex(name.as_bytes());
        let keep = MAX_NAME - 9;
        format!("{}-{}", &name[..keep], &digest[..8])
    };
    format!("checksum.secret-sync.io/{part}")
}

/// Whether the ExternalSecret with `annotations` asks for rollouts, `default` when it says
/// nothing.
pub fn wanted(annotations: Option<&BTreeMap<String, String>>, default: bool) -> bool {
    match annotations
        .and_then(|a| a.get(ANNOTATION_ROLLOUT))
        .map(String::as_str)
    {
        Some("true") => true,
        Some("false") => false,
        _ => default,
    }
}

/// Whether `pod` uses the Secret `name`.
pub fn uses_secret(pod: &PodSpec, name: &str) -> bool {
    let containers = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten());
    for container in containers {
        let in_env = container.env.iter().flatten().any(|e| {
            e.value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .is_some_and(|r| r.name == name)
        });
        let in_env_from = container
            .env_from
            .iter()
            .flatten()
            .any(|e| e.secret_ref.as_ref().is_some_and(|r| r.name == name));
        if in_env || in_env_from {
            return true;
        }
    }
    pod.volumes.iter().flatten().any(|v| {
        v.secret
            .as_ref()
            .is_some_and(|s| s.secret_name.as_deref() == Some(name))
            || v.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.secret.as_ref().is_some_and(|s| s.name == name))
            })
    })
}

/// Rolls the workloads in `namespace` that use the Secret `name` to its data `hash`: the ones
/// rolled, as `Kind/name`. One whose template already carries `hash` is left alone.
pub async fn roll(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    hash: &str,
) -> Result<Vec<String>, kube::Error> {
    let key = template_annotation(name);
    let mut rolled = Vec::new();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    for d in deployments.list(&ListParams::default()).await?.items {
        let template = d.spec.as_ref().map(|s| &s.template);
        if let Some(workload) = candidate(template, name, &key, hash, d.metadata.name.as_deref()) {
            patch(&deployments, workload, &key, hash).await?;
            rolled.push(format!("Deployment/{workload}"));
        }
    }
    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    for s in stateful_sets.list(&ListParams::default()).await?.items {
        let template = s.spec.as_ref().map(|s| &s.template);
        if let Some(workload) = candidate(template, name, &key, hash, s.metadata.name.as_deref()) {
            patch(&stateful_sets, workload, &key, hash).await?;
            rolled.push(format!("StatefulSet/{workload}"));
        }
    }
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    for s in daemon_sets.list(&ListParams::default()).await?.items {
        let template = s.spec.as_ref().map(|s| &s.template);
        if let Some(workload) = candidate(template, name, &key, hash, s.metadata.name.as_deref()) {
            patch(&daemon_sets, workload, &key, hash).await?;
            rolled.push(format!("DaemonSet/{workload}"));
        }
    }
    Ok(rolled)
}

/// The workload's name when its template uses the Secret and does not carry `hash` yet.
fn candidate<'a>(
    template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>,
    secret: &str,
    key: &str,
    hash: &str,
    workload: Option<&'a str>,
) -> Option<&'a str> {
    let template = template?;
    let uses = template
        .spec
        .as_ref()
        .is_some_and(|pod| uses_secret(pod, secret));
    let current = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(key));
    (uses && current.map(String::as_str) != Some(hash))
        .then_some(workload)
        .flatten()
}

async fn patch<K>(api: &Api<K>, name: &str, key: &str, hash: &str) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let body = json!({ "spec": { "template": { "metadata": { "annotations": { key: hash } } } } });
    crate::view::bounded(
        "rolling a workload",
        api.patch(name, &PatchParams::default(), &Patch::Merge(&body)),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> PodSpec {
        serde_json::from_value(json).expect("pod spec")
    }

    #[test]
    fn every_way_a_pod_uses_a_secret_is_found() {
        let uses = [
            json!({"containers": [{"name": "a", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]}]}),
            json!({"containers": [{"name": "a"}], "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "db"}}]}]}),
            json!({"containers": [{"name": "a"}], "volumes": [{"name": "v", "secret": {"secretName": "db"}}]}),
            json!({"containers": [{"name": "a"}], "volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": "c"}}, {"secret": {"name": "db"}}]}}]}),
        ];
        for spec in uses {
            assert!(uses_secret(&pod(spec.clone()), "db"), "{spec}");
        }
        let other = json!({"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "other"}}, {"configMapRef": {"name": "db"}}]}],
                           "volumes": [{"name": "v", "configMap": {"name": "db"}}]});
        assert!(!uses_secret(&pod(other), "db"));
    }

    #[test]
    fn the_annotation_says_yes_no_or_defers_to_the_default() {
        let with = |v: &str| BTreeMap::from([(ANNOTATION_ROLLOUT.to_owned(), v.to_owned())]);
        assert!(wanted(Some(&with("true")), false));
        assert!(!wanted(Some(&with("false")), true));
        assert!(wanted(None, true));
        assert!(!wanted(Some(&with("yes please")), false));
    }

    #[test]
    fn template_annotation_keys_fit_kubernetes_limits() {
        assert_eq!(template_annotation("db"), "checksum.secret-sync.io/db");
        let long = "x".repeat(200);
        let key = template_annotation(&long);
        let name = key.split_once('/').expect("prefix").1;
        assert_eq!(name.len(), 63);
        assert_ne!(
            template_annotation(&long),
            template_annotation(&"y".repeat(200))
        );
    }
}
