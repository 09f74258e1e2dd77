//! Rollout on change (not in ESO) on the real apiserver: a change of a target Secret's data rolls
//! the Deployments, StatefulSets and DaemonSets using it (a pod-template annotation set to the
//! data hash: their generation goes up), names them in an Event, and nothing else: workloads
//! using other Secrets, ExternalSecrets without the annotation, and refreshes with unchanged data
//! roll nothing.

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject};
use secret_sync_tests::controller::{apply, events, fake_store, setup, wait_data};
use serde_json::{Value, json};

fn workload(ns: &str, kind: &str, name: &str, pod: Value) -> Value {
    let labels = json!({ "app": name });
    let mut spec = json!({
        "selector": { "matchLabels": labels },
        "template": { "metadata": { "labels": labels }, "spec": pod }
    });
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(name);
    }
    json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": { "name": name, "namespace": ns }, "spec": spec
    })
}

fn container(extra: Value) -> Value {
    let mut c = json!({ "name": "app", "image": "registry.invalid/app:1" });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        c[k] = v;
    }
    c
}

async fn template_and_generation(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
) -> (Option<String>, i64) {
    let plural = format!("{}s", kind.to_lowercase());
    let resource = ApiResource {
        group: "apps".into(),
        version: "v1".into(),
        api_version: "apps/v1".into(),
        kind: kind.into(),
        plural,
    };
    let object = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource)
        .get(name)
        .await
        .expect("workload");
    let annotation = object.data["spec"]["template"]["metadata"]["annotations"][format!(
        "checksum.secret-sync.io/{}",
        if name == "quiet-user" { "quiet" } else { "app" }
    )]
    .as_str()
    .map(str::to_owned);
    (annotation, object.metadata.generation.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_change_rolls_the_workloads_using_the_secret_and_nothing_else() {
    let t = setup("rollout").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let store = |value: &str| fake_store(&ns, "fake", json!([{ "key": "db", "value": value }]));
    apply(&client, &store("v1")).await;
    for (name, annotated) in [("app", true), ("quiet", false)] {
        let mut es = json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": { "name": name, "namespace": ns },
            "spec": {
                "refreshInterval": "1s",
                "secretStoreRef": { "name": "fake" },
                "data": [{ "secretKey": "password", "remoteRef": { "key": "db" } }]
            }
        });
        if annotated {
            es["metadata"]["annotations"] = json!({ "secret-sync.io/rollout-on-change": "true" });
        }
        apply(&client, &es).await;
    }
    let workloads = [
        (
            "Deployment",
            "web",
            json!({ "containers": [container(json!({ "envFrom": [{ "secretRef": { "name": "app" } }] }))] }),
        ),
        (
            "StatefulSet",
            "db",
            json!({ "containers": [container(json!({}))],
            "volumes": [{ "name": "s", "secret": { "secretName": "app" } }] }),
        ),
        (
            "DaemonSet",
            "agent",
            json!({ "containers": [container(json!({ "env": [{ "name": "P",
            "valueFrom": { "secretKeyRef": { "name": "app", "key": "password" } } }] }))] }),
        ),
        (
            "Deployment",
            "other",
            json!({ "containers": [container(json!({ "envFrom": [{ "secretRef": { "name": "unrelated" } }] }))] }),
        ),
        (
            "Deployment",
            "quiet-user",
            json!({ "containers": [container(json!({ "envFrom": [{ "secretRef": { "name": "quiet" } }] }))] }),
        ),
    ];
    for (kind, name, pod) in &workloads {
        apply(&client, &workload(&ns, kind, name, pod.clone())).await;
    }
    wait_data(&client, &ns, "app", &[("password", "v1")]).await;
    wait_data(&client, &ns, "quiet", &[("password", "v1")]).await;
    let mut before = Vec::new();
    for (kind, name, _) in &workloads {
        before.push(template_and_generation(&client, &ns, kind, name).await);
    }
    assert!(before.iter().all(|(a, _)| a.is_none()), "{before:?}");

    apply(&client, &store("v2")).await;
    let secret = wait_data(&client, &ns, "app", &[("password", "v2")]).await;
    wait_data(&client, &ns, "quiet", &[("password", "v2")]).await;
    let hash = secret.metadata.annotations.as_ref().expect("annotations")
        ["reconcile.external-secrets.io/data-hash"]
        .clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut rolled = Vec::new();
        for (kind, name, _) in &workloads[..3] {
            rolled.push(template_and_generation(&client, &ns, kind, name).await);
        }
        if rolled
            .iter()
            .all(|(a, _)| a.as_deref() == Some(hash.as_str()))
        {
            for ((_, generation), (_, was)) in rolled.iter().zip(&before) {
                assert_eq!(*generation, was + 1);
            }
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "rolled: {rolled:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Refreshes with the same data (every second) roll nothing more; the unrelated workload and
    // the one using the ExternalSecret without the annotation were never rolled.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, (kind, name, _)) in workloads.iter().enumerate() {
        let (annotation, generation) = template_and_generation(&client, &ns, kind, name).await;
        let (_, was) = before[i];
        if i < 3 {
            assert_eq!(generation, was + 1, "{kind}/{name} rolled once");
        } else {
            assert_eq!(
                (annotation, generation),
                (None, was),
                "{kind}/{name} never rolled"
            );
        }
    }
    let notes: Vec<String> = events(&client, &ns)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("RolledOut"))
        .filter_map(|e| e.note)
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    for name in ["Deployment/web", "StatefulSet/db", "DaemonSet/agent"] {
        assert!(notes[0].contains(name), "{notes:?}");
    }
}
