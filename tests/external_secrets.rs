//! ESO's ExternalSecret behaviour, end to end: the controller runs in this process against the
//! real apiserver, with the fake provider and with AWS Secrets Manager on moto.
//!
//! Each test has its own namespace and its own controller watching only that namespace.

use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsManager;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use secret_sync_crd::ExternalSecret;
use secret_sync_tests::controller::{
    self, apply, data_of, ready_of, wait_for, wait_ready, wait_secret,
};
use secret_sync_tests::{Stack, install_crds, namespace, unique_name};
use serde_json::json;

fn fake_store(ns: &str, name: &str, data: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "provider": { "fake": { "data": data } } }
    })
}

fn external_secret(ns: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": { "name": name, "namespace": ns },
        "spec": spec
    })
}

async fn setup(prefix: &str) -> (kube::Client, String, controller::Running) {
    let client = Stack::get().await.kube().await;
    install_crds(&client).await;
    let ns = namespace(&client, prefix).await;
    let running = controller::start(&client, &ns).await;
    (client, ns, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_paths_read_nested_values_and_array_elements() {
    let (client, ns, _controller) = setup("props").await;
    let value = r#"{"name":{"first":"Tom","last":"Anderson"},"friends":[{"first":"Dale"},{"first":"Roger"}],"a.b":"dotted"}"#;
    apply(
        &client,
        &fake_store(&ns, "fake", json!([{ "key": "/person", "value": value }])),
    )
    .await;
    apply(&client, &external_secret(&ns, "people", json!({
        "refreshInterval": "1h",
        "secretStoreRef": { "name": "fake" },
        "data": [
            { "secretKey": "first", "remoteRef": { "key": "/person", "property": "name.first" } },
            { "secretKey": "friend", "remoteRef": { "key": "/person", "property": "friends.1.first" } },
            { "secretKey": "dotted", "remoteRef": { "key": "/person", "property": "a.b" } },
            { "secretKey": "whole", "remoteRef": { "key": "/person" } }
        ]
    }))).await;
    let secret = wait_secret(&client, &ns, "people", |s| data_of(s).len() == 4).await;
    let data = data_of(&secret);
    assert_eq!(data["first"], "Tom");
    assert_eq!(data["friend"], "Roger");
    assert_eq!(data["dotted"], "dotted");
    assert_eq!(data["whole"], value);
    let es = wait_ready(&client, &ns, "people").await;
    let ready = ready_of(&es).expect("ready condition");
    assert_eq!(ready.reason.as_deref(), Some("SecretSynced"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_secret_carries_esos_labels_and_comes_back_when_deleted_or_edited() {
    let (client, ns, _controller) = setup("owner").await;
    apply(
        &client,
        &fake_store(&ns, "fake", json!([{ "key": "k", "value": "v1" }])),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "app",
            json!({
                "secretStoreRef": { "name": "fake" },
                "target": { "name": "app-secret" },
                "data": [{ "secretKey": "password", "remoteRef": { "key": "k" } }]
            }),
        ),
    )
    .await;
    let secret = wait_secret(&client, &ns, "app-secret", |s| {
        data_of(s).get("password").map(String::as_str) == Some("v1")
    })
    .await;
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("reconcile.external-secrets.io/managed")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        labels
            .get("reconcile.external-secrets.io/created-by")
            .map(String::len),
        Some(56)
    );
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    assert!(annotations.contains_key("reconcile.external-secrets.io/data-hash"));
    let owner = &secret.metadata.owner_references.clone().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("ExternalSecret", "app", Some(true))
    );

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    // Edited by hand: restored at once.
    let edit = json!({ "data": { "password": "aGFja2Vk" } });
    secrets
        .patch("app-secret", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .expect("edit");
    wait_secret(&client, &ns, "app-secret", |s| {
        data_of(s).get("password").map(String::as_str) == Some("v1")
    })
    .await;
    // Deleted: recreated at once.
    secrets
        .delete("app-secret", &DeleteParams::default())
        .await
        .expect("delete");
    wait_secret(&client, &ns, "app-secret", |s| {
        data_of(s).get("password").map(String::as_str) == Some("v1")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_owned_by_another_external_secret_is_refused_with_a_clear_reason() {
    let (client, ns, _controller) = setup("conflict").await;
    apply(
        &client,
        &fake_store(&ns, "fake", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    let spec = json!({
        "secretStoreRef": { "name": "fake" }, "target": { "name": "shared" },
        "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
    });
    apply(&client, &external_secret(&ns, "first", spec.clone())).await;
    wait_ready(&client, &ns, "first").await;
    apply(&client, &external_secret(&ns, "second", spec)).await;
    let es = wait_for(&client, &ns, "second", |es| {
        ready_of(es).is_some_and(|c| c.status == secret_sync_crd::ConditionStatus::False)
    })
    .await;
    let ready = ready_of(&es).expect("ready");
    assert_eq!(ready.reason.as_deref(), Some("SecretSyncedError"));
    assert_eq!(
        ready.message.as_deref(),
        Some("target is owned by another ExternalSecret")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_never_creates_and_merges_into_an_existing_secret() {
    let (client, ns, _controller) = setup("merge").await;
    apply(
        &client,
        &fake_store(
            &ns,
            "fake",
            json!([{ "key": "k", "value": "from-provider" }]),
        ),
    )
    .await;
    apply(&client, &external_secret(&ns, "merger", json!({
        "secretStoreRef": { "name": "fake" }, "target": { "name": "existing", "creationPolicy": "Merge" },
        "data": [{ "secretKey": "added", "remoteRef": { "key": "k" } }]
    }))).await;
    let es = wait_ready(&client, &ns, "merger").await;
    assert_eq!(
        ready_of(&es).and_then(|c| c.reason.clone()).as_deref(),
        Some("SecretMissing")
    );

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mine: Secret = serde_json::from_value(json!({
        "metadata": { "name": "existing" }, "stringData": { "own": "kept" }
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &mine)
        .await
        .expect("create");
    // Touch the ExternalSecret so it looks again (ESO would wait for its interval).
    let bump = json!({ "metadata": { "annotations": { "force-sync": "1" } } });
    Api::<ExternalSecret>::namespaced(client.clone(), &ns)
        .patch("merger", &PatchParams::default(), &Patch::Merge(&bump))
        .await
        .expect("annotate");
    let merged = wait_secret(&client, &ns, "existing", |s| {
        data_of(s).contains_key("added")
    })
    .await;
    let data = data_of(&merged);
    assert_eq!(data["own"], "kept");
    assert_eq!(data["added"], "from-provider");
    assert!(
        merged.metadata.owner_references.is_none(),
        "Merge sets no owner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_spec_gives_ready_false_with_a_message_a_person_can_act_on() {
    let (client, ns, _controller) = setup("badspec").await;
    apply(
        &client,
        &fake_store(&ns, "fake", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "missing-store",
            json!({
                "secretStoreRef": { "name": "nope" },
                "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
            }),
        ),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "missing-key",
            json!({
                "secretStoreRef": { "name": "fake" },
                "data": [{ "secretKey": "k", "remoteRef": { "key": "does-not-exist" } }]
            }),
        ),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "bad-policy",
            json!({
                "secretStoreRef": { "name": "fake" },
                "target": { "creationPolicy": "Merge", "deletionPolicy": "Delete" },
                "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
            }),
        ),
    )
    .await;
    for (name, expected) in [
        ("missing-store", "SecretStore \"nope\""),
        ("missing-key", "does-not-exist"),
        ("bad-policy", "deletionPolicy=Delete"),
    ] {
        let es = wait_for(&client, &ns, name, |es| {
            ready_of(es).is_some_and(|c| c.status == secret_sync_crd::ConditionStatus::False)
        })
        .await;
        let ready = ready_of(&es).expect("ready");
        assert_eq!(ready.reason.as_deref(), Some("SecretSyncedError"), "{name}");
        let message = ready.message.clone().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{name}: {message:?} should mention {expected:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_secret_waiting_for_its_store_syncs_as_soon_as_the_store_is_ready() {
    let (client, ns, _controller) = setup("waiting").await;
    apply(
        &client,
        &external_secret(
            &ns,
            "early",
            json!({
                "secretStoreRef": { "name": "late" },
                "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
            }),
        ),
    )
    .await;
    wait_for(&client, &ns, "early", |es| ready_of(es).is_some()).await;
    let started = std::time::Instant::now();
    apply(
        &client,
        &fake_store(&ns, "late", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    wait_secret(&client, &ns, "early", |s| {
        data_of(s).get("k").map(String::as_str) == Some("v")
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "synced {:?} after the store appeared",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_external_secret_writes_no_status_for_ten_seconds() {
    let (client, ns, _controller) = setup("churn").await;
    apply(
        &client,
        &fake_store(&ns, "fake", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "quiet",
            json!({
                "refreshInterval": "1h", "secretStoreRef": { "name": "fake" },
                "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
            }),
        ),
    )
    .await;
    let es = wait_ready(&client, &ns, "quiet").await;
    let secret = wait_secret(&client, &ns, "quiet", |_| true).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = Api::<ExternalSecret>::namespaced(client.clone(), &ns)
        .get("quiet")
        .await
        .expect("get");
    let secret_later = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("quiet")
        .await
        .expect("get");
    assert_eq!(
        later.metadata.resource_version, es.metadata.resource_version,
        "no status write"
    );
    assert_eq!(
        secret_later.metadata.resource_version, secret.metadata.resource_version,
        "no Secret write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_values_sync_and_follow_a_change_at_the_next_refresh() {
    let stack = Stack::get().await;
    let (client, ns, _controller) = setup("aws").await;
    let sm = SecretsManager::new(&stack.aws().await);
    let key = unique_name("eso/db");
    sm.create_secret()
        .name(&key)
        .secret_string(r#"{"username":"app","password":"first"}"#)
        .send()
        .await
        .expect("create");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let creds: Secret = serde_json::from_value(json!({
        "metadata": { "name": "aws-credentials" },
        "stringData": { "access-key-id": stack.var("AWS_ACCESS_KEY_ID"), "secret-access-key": stack.var("AWS_SECRET_ACCESS_KEY") }
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &creds)
        .await
        .expect("credentials");
    apply(&client, &json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": { "name": "aws", "namespace": ns },
        "spec": { "provider": { "aws": { "service": "SecretsManager", "region": stack.var("AWS_REGION"), "auth": { "secretRef": {
            "accessKeyIDSecretRef": { "name": "aws-credentials", "key": "access-key-id" },
            "secretAccessKeySecretRef": { "name": "aws-credentials", "key": "secret-access-key" } } } } } }
    }))
    .await;
    apply(&client, &external_secret(&ns, "db", json!({
        "refreshInterval": "2s", "secretStoreRef": { "name": "aws", "kind": "SecretStore" },
        "target": { "name": "db-credentials" },
        "data": [
            { "secretKey": "username", "remoteRef": { "key": key, "property": "username" } },
            { "secretKey": "password", "remoteRef": { "key": key, "property": "password" } }
        ]
    }))).await;
    wait_secret(&client, &ns, "db-credentials", |s| {
        data_of(s).get("password").map(String::as_str) == Some("first")
    })
    .await;
    sm.put_secret_value()
        .secret_id(&key)
        .secret_string(r#"{"username":"app","password":"second"}"#)
        .send()
        .await
        .expect("rotate");
    let rotated = wait_secret(&client, &ns, "db-credentials", |s| {
        data_of(s).get("password").map(String::as_str) == Some("second")
    })
    .await;
    assert_eq!(data_of(&rotated)["username"], "app");
}
