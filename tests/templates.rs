//! ESO templates end to end: `templateFrom` ConfigMaps and literals, Secret types the apiserver
//! validates (TLS, docker config), and template errors on the ExternalSecret's status.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use secret_sync_crd::ConditionStatus;
use secret_sync_tests::controller::{
    apply, data_of, external_secret, fake_store, ready_of, setup, wait_ready_reason, wait_secret,
};
use serde_json::json;

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ4b3ZGZmZmZmZmZmZmZmZmZmZmYwCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_from_a_config_map_renders_with_the_fetched_values() {
    let t = setup("tpl-from").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "app-config" },
        "data": {
            "config.yaml": "database:\n  user: {{ .username }}\n  password: {{ .password | quote }}\n",
            "labels": "team: {{ .team | upper }}"
        }
    }))
    .expect("configmap");
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let templates: Secret = serde_json::from_value(json!({
        "metadata": { "name": "app-templates" },
        "stringData": { "owner": "owner: {{ .team }}" }
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &templates)
        .await
        .expect("create secret");
    apply(
        &client,
        &fake_store(
            &ns,
            "fake",
            json!([
                { "key": "user", "value": "app" },
                { "key": "pass", "value": "s3cr3t" },
                { "key": "team", "value": "core" }
            ]),
        ),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "app",
            json!({
                "secretStoreRef": { "name": "fake" },
                "target": { "template": {
                    "templateFrom": [
                        { "configMap": { "name": "app-config", "items": [{ "key": "config.yaml" }] } },
                        { "configMap": { "name": "app-config", "items": [{ "key": "labels", "templateAs": "KeysAndValues" }] }, "target": "Labels" },
                        { "literal": "generated-by: {{ .username }}" },
                        { "secret": { "name": "app-templates", "items": [{ "key": "owner", "templateAs": "KeysAndValues" }] } }
                    ]
                } },
                "data": [
                    { "secretKey": "username", "remoteRef": { "key": "user" } },
                    { "secretKey": "password", "remoteRef": { "key": "pass" } },
                    { "secretKey": "team", "remoteRef": { "key": "team" } }
                ]
            }),
        ),
    )
    .await;
    // A reader that promised to sync once: a template change leaves it alone.
    apply(
        &client,
        &external_secret(
            &ns,
            "once",
            json!({
                "refreshPolicy": "CreatedOnce",
                "secretStoreRef": { "name": "fake" },
                "target": { "template": { "templateFrom": [
                    { "configMap": { "name": "app-config", "items": [{ "key": "config.yaml" }] } }
                ] } },
                "data": [
                    { "secretKey": "username", "remoteRef": { "key": "user" } },
                    { "secretKey": "password", "remoteRef": { "key": "pass" } }
                ]
            }),
        ),
    )
    .await;
    wait_secret(&client, &ns, "once", |s| {
        data_of(s).contains_key("config.yaml")
    })
    .await;
    let secret = wait_secret(&client, &ns, "app", |s| {
        data_of(s).contains_key("config.yaml")
    })
    .await;
    let data = data_of(&secret);
    assert_eq!(
        data["config.yaml"],
        "database:\n  user: app\n  password: \"s3cr3t\"\n"
    );
    assert_eq!(data["generated-by"], "app");
    assert_eq!(data["owner"], "core");
    assert_eq!(data.len(), 3, "Replace keeps only templated keys: {data:?}");
    assert_eq!(
        secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str),
        Some("CORE")
    );

    // A changed template source is rendered at once, not at the refresh an hour away.
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .patch(
            "app-config",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "config.yaml": "user: {{ .username }}\n" } })),
        )
        .await
        .expect("patch configmap");
    wait_secret(&client, &ns, "app", |s| {
        data_of(s).get("config.yaml").map(String::as_str) == Some("user: app\n")
    })
    .await;
    let once = wait_secret(&client, &ns, "once", |_| true).await;
    assert!(
        data_of(&once)["config.yaml"].starts_with("database:"),
        "CreatedOnce was synced again: {:?}",
        data_of(&once)
    );
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch(
            "app-templates",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "owner": "owner: {{ .team | upper }}" } })),
        )
        .await
        .expect("patch secret");
    wait_secret(&client, &ns, "app", |s| {
        data_of(s).get("owner").map(String::as_str) == Some("CORE")
    })
    .await;
    // Both changes came through the template-source feed (the creation of a source may count
    // too, when its watch event is handled after the ExternalSecret is cached).
    let metrics = t.controller.metrics.encode().expect("metrics");
    let matched = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "secret_sync_events_total{result=\"matched\",source=\"template-source\"} ",
            )
        })
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(matched >= 2, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_docker_config_secrets_are_built_and_accepted_by_the_apiserver() {
    let t = setup("tpl-types").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(
        &client,
        &fake_store(
            &ns,
            "fake",
            json!([
                { "key": "cert", "value": CERT },
                { "key": "key", "value": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n" },
                { "key": "registry", "value": "{\"user\":\"robot\",\"token\":\"t0ken\"}" }
            ]),
        ),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "tls",
            json!({
                "secretStoreRef": { "name": "fake" },
                "target": { "template": { "type": "kubernetes.io/tls", "data": {
                    "tls.crt": "{{ .cert | filterPEM \"CERTIFICATE\" }}",
                    "tls.key": "{{ .key }}"
                } } },
                "data": [
                    { "secretKey": "cert", "remoteRef": { "key": "cert" } },
                    { "secretKey": "key", "remoteRef": { "key": "key" } }
                ]
            }),
        ),
    )
    .await;
    apply(&client, &external_secret(&ns, "pull", json!({
        "secretStoreRef": { "name": "fake" },
        "target": { "template": { "type": "kubernetes.io/dockerconfigjson", "data": {
            ".dockerconfigjson": "{{ $r := .registry | fromJson }}{\"auths\":{\"registry.example.com\":{\"auth\":{{ printf \"%s:%s\" $r.user $r.token | b64enc | quote }}}}}"
        } } },
        "data": [{ "secretKey": "registry", "remoteRef": { "key": "registry" } }]
    }))).await;

    let tls = wait_secret(&client, &ns, "tls", |s| data_of(s).contains_key("tls.crt")).await;
    assert_eq!(tls.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(data_of(&tls)["tls.crt"], CERT);
    let pull = wait_secret(&client, &ns, "pull", |s| {
        data_of(s).contains_key(".dockerconfigjson")
    })
    .await;
    assert_eq!(
        pull.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    let config: serde_json::Value =
        serde_json::from_str(&data_of(&pull)[".dockerconfigjson"]).expect("JSON");
    assert_eq!(
        config["auths"]["registry.example.com"]["auth"], "cm9ib3Q6dDBrZW4=",
        "base64 of robot:t0ken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_template_names_key_and_position_on_the_status_without_the_value() {
    let t = setup("tpl-error").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(
        &client,
        &fake_store(
            &ns,
            "fake",
            json!([{ "key": "k", "value": "canary-value-7781" }]),
        ),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "bad",
            json!({
                "secretStoreRef": { "name": "fake" },
                "target": { "template": { "data": { "url": "x{{ .value | nosuchfunction }}" } } },
                "data": [{ "secretKey": "value", "remoteRef": { "key": "k" } }]
            }),
        ),
    )
    .await;
    let es = wait_ready_reason(
        &client,
        &ns,
        "bad",
        ConditionStatus::False,
        "SecretSyncedError",
    )
    .await;
    let message = ready_of(&es)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("\"url\""), "names the key: {message}");
    assert!(message.contains("url:1:"), "names the position: {message}");
    assert!(
        !message.contains("canary-value-7781"),
        "no value: {message}"
    );
}
