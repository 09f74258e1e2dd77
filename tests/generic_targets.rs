//! Generic targets (`spec.target.manifest`, ESO's `--unsafe-allow-generic-targets`) on the local
//! apiserver: refused with ESO's message unless turned on; then a ConfigMap written from
//! provider values and kept in step, a custom resource's spec rendered by a template, and both
//! removed with their ExternalSecret.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject};
use kube::core::GroupVersionKind;
use secret_sync_crd::{ConditionStatus, ExternalSecret};
use secret_sync_tests::controller::{
    apply, external_secret, fake_store, force_sync, ready_of, setup, setup_with, wait_for,
    wait_ready,
};
use serde_json::json;
use tokio::time::{Instant, sleep};

const WAIT: Duration = Duration::from_secs(30);

fn config_map_target(
    ns: &str,
    name: &str,
    template: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut target =
        json!({ "name": name, "manifest": { "apiVersion": "v1", "kind": "ConfigMap" } });
    if let Some(template) = template {
        target["template"] = template;
    }
    external_secret(
        ns,
        name,
        json!({
            "refreshInterval": "1h",
            "secretStoreRef": { "name": "fake", "kind": "SecretStore" },
            "target": target,
            "data": [
                { "secretKey": "host", "remoteRef": { "key": "db-host" } },
                { "secretKey": "length", "remoteRef": { "key": "length" } }
            ]
        }),
    )
}

async fn wait_config_map(
    client: &kube::Client,
    ns: &str,
    name: &str,
    done: impl Fn(Option<&ConfigMap>) -> bool,
) -> Option<ConfigMap> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + WAIT;
    loop {
        let cm = api.get_opt(name).await.expect("get ConfigMap");
        if done(cm.as_ref()) {
            return cm;
        }
        assert!(
            Instant::now() < deadline,
            "ConfigMap {ns}/{name} did not reach the expected state; now {:?}",
            cm.map(|c| c.data)
        );
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_targets_are_refused_unless_turned_on() {
    let t = setup("generic-off").await;
    apply(
        &t.client,
        &fake_store(
            &t.ns,
            "fake",
            json!([{ "key": "db-host", "value": "db" }, { "key": "length", "value": "8" }]),
        ),
    )
    .await;
    apply(&t.client, &config_map_target(&t.ns, "cm", None)).await;
    let es = wait_for(&t.client, &t.ns, "cm", |es| {
        ready_of(es).is_some_and(|c| c.status == ConditionStatus::False)
    })
    .await;
    let message = ready_of(&es)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(
            "generic targets are disabled. Enable with --unsafe-allow-generic-targets flag"
        ),
        "{message}"
    );
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.ns);
    assert!(cms.get_opt("cm").await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_map_and_a_custom_resource_follow_the_provider() {
    let t = setup_with("generic-on", &[], |s| s.generic_targets = true).await;
    let store = |host: &str| {
        fake_store(
            &t.ns,
            "fake",
            json!([{ "key": "db-host", "value": host }, { "key": "length", "value": "24" }]),
        )
    };
    apply(&t.client, &store("db-1.internal")).await;

    // Without a template: the values are the ConfigMap's data; the ExternalSecret's labels too.
    let mut plain = config_map_target(&t.ns, "plain", None);
    plain["metadata"]["labels"] = json!({ "team": "payments" });
    apply(&t.client, &plain).await;
    wait_ready(&t.client, &t.ns, "plain").await;
    let cm = wait_config_map(&t.client, &t.ns, "plain", |cm| cm.is_some())
        .await
        .expect("exists");
    assert_eq!(
        cm.data.clone().unwrap_or_default(),
        [
            ("host".to_owned(), "db-1.internal".to_owned()),
            ("length".to_owned(), "24".to_owned())
        ]
        .into()
    );
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("payments"));
    assert_eq!(
        labels
            .get("reconcile.external-secrets.io/managed")
            .map(String::as_str),
        Some("true")
    );

    // With a template: a rendered key and an annotation.
    apply(
        &t.client,
        &config_map_target(
            &t.ns,
            "templated",
            Some(json!({
                "data": { "url": "postgres://{{ .host }}:5432/app" },
                "templateFrom": [{ "target": "Annotations", "literal": "db: '{{ .host }}'" }]
            })),
        ),
    )
    .await;
    wait_ready(&t.client, &t.ns, "templated").await;
    let cm = wait_config_map(&t.client, &t.ns, "templated", |cm| cm.is_some())
        .await
        .expect("exists");
    assert_eq!(
        cm.data.unwrap_or_default().get("url").map(String::as_str),
        Some("postgres://db-1.internal:5432/app")
    );
    assert_eq!(
        cm.metadata
            .annotations
            .unwrap_or_default()
            .get("db")
            .map(String::as_str),
        Some("db-1.internal")
    );

    // A custom resource (ESO's Password generator, a namespaced kind this cluster serves): its
    // spec rendered from a literal, with a number parsed as YAML.
    apply(
        &t.client,
        &password_spec_reader(
            &t.ns,
            "password-spec",
            "generated-spec",
            "length: {{ .length }}\nnoUpper: true\nallowRepeat: true",
            "length",
        ),
    )
    .await;
    wait_ready(&t.client, &t.ns, "password-spec").await;
    let gvk = GroupVersionKind::gvk("generators.external-secrets.io", "v1alpha1", "Password");
    let passwords: Api<DynamicObject> =
        Api::namespaced_with(t.client.clone(), &t.ns, &ApiResource::from_gvk(&gvk));
    let generated = passwords
        .get("generated-spec")
        .await
        .expect("the Password object");
    assert_eq!(generated.data["spec"]["length"], json!(24));
    assert_eq!(generated.data["spec"]["noUpper"], json!(true));

    // The provider changes; a sync brings the ConfigMap along.
    apply(&t.client, &store("db-2.internal")).await;
    force_sync(&t.client, &t.ns, "plain").await;
    wait_config_map(&t.client, &t.ns, "plain", |cm| {
        cm.and_then(|c| c.data.as_ref())
            .and_then(|d| d.get("host"))
            .map(String::as_str)
            == Some("db-2.internal")
    })
    .await;

    // Deleting the ExternalSecret deletes what it owns.
    let ess: Api<ExternalSecret> = Api::namespaced(t.client.clone(), &t.ns);
    ess.delete("plain", &DeleteParams::default())
        .await
        .expect("delete ExternalSecret");
    wait_config_map(&t.client, &t.ns, "plain", |cm| cm.is_none()).await;
}

/// An ExternalSecret `name` writing the spec of ESO's Password generator `target` (a namespaced
/// custom resource) from `literal`, reading `key` of the fake store into the template's `.key`.
fn password_spec_reader(
    ns: &str,
    name: &str,
    target: &str,
    literal: &str,
    key: &str,
) -> serde_json::Value {
    external_secret(
        ns,
        name,
        json!({
            "refreshInterval": "1h",
            "secretStoreRef": { "name": "fake", "kind": "SecretStore" },
            "target": {
                "name": target,
                "manifest": { "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password" },
                "template": { "templateFrom": [{ "target": "spec", "literal": literal }] }
            },
            "data": [{ "secretKey": key, "remoteRef": { "key": key } }]
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_target_is_reported_without_the_value_the_api_server_quotes() {
    let t = setup_with("generic-refused", &[], |s| s.generic_targets = true).await;
    // A provider value that the target's schema refuses: the API server's message quotes it.
    let canary = format!("canary-{}", secret_sync_tests::unique_name("v"));
    apply(
        &t.client,
        &fake_store(&t.ns, "fake", json!([{ "key": "mode", "value": canary }])),
    )
    .await;
    apply(
        &t.client,
        &password_spec_reader(
            &t.ns,
            "bad-spec",
            "bad-spec",
            "length: 8\nencoding: '{{ .mode }}'",
            "mode",
        ),
    )
    .await;
    let es = wait_for(&t.client, &t.ns, "bad-spec", |es| {
        ready_of(es).is_some_and(|c| c.status == ConditionStatus::False)
    })
    .await;
    let message = ready_of(&es)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("refused") && message.contains("spec.encoding"),
        "{message}"
    );
    assert!(!message.contains(&canary), "the value leaked: {message}");
    let events = secret_sync_tests::controller::events(&t.client, &t.ns).await;
    assert!(
        events
            .iter()
            .all(|e| !e.note.as_deref().unwrap_or_default().contains(&canary)),
        "the value leaked into an Event"
    );
}
