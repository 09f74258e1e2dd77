//! ESO's ExternalSecret behaviour, end to end: the controller runs in this process against the
//! real apiserver, with the fake provider, with AWS Secrets Manager on moto and with OpenBao's
//! KV engines.
//!
//! Each test has its own namespace (deleted when the test ends, pass or fail) and its own
//! controller watching only that namespace. Tests that read AWS or OpenBao use secret names,
//! paths and tags of their own (`unique_name`), so no test ever sees another's data in the shared
//! moto or OpenBao.
//!
//! Where secret-sync deliberately differs from ESO the tests assert secret-sync's behaviour: no
//! finalizer on ExternalSecrets (the garbage collector removes Owner Secrets), and a store change
//! wakes the ExternalSecrets that read it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsManager;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use secret_sync::{ApiView, Engine, KubeReferents, NoObserver, Settings, Trigger};
use secret_sync_crd::{ConditionStatus, ExternalSecret};
use secret_sync_tests::cleanup::Cleanup;
use secret_sync_tests::controller::{
    self, apply, assert_secret_stays, aws_store, aws_store_object, create_aws_secret, data_of,
    delete_aws_secret, external_secret, fake_store, force_sync, moto, patch_es, put_aws_secret,
    ready_of, setup, setup_with, store_ready_of, value_of, vault_token_store, wait_data,
    wait_event, wait_for, wait_ready, wait_ready_reason, wait_secret, wait_secret_gone, wait_store,
};
use secret_sync_tests::{Stack, install_crds, repo_root, scoped_namespace, unique_name};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_paths_read_nested_values_and_array_elements() {
    let t = setup("props").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
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
    let t = setup("owner").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
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
    let t = setup("conflict").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
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
    let t = setup("merge").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
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
    let t = setup("badspec").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
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
        // A spec the CRDs accept and the engine refuses: ESO's webhook refuses a duplicate
        // secretKey under deletionPolicy Retain, which no CEL rule can check within the
        // apiserver's cost budget. (The CRDs refuse deletionPolicy Delete with creationPolicy
        // Merge at apply now: tests/crd_validation.rs.)
        &external_secret(
            &ns,
            "bad-spec",
            json!({
                "secretStoreRef": { "name": "fake" },
                "data": [
                    { "secretKey": "k", "remoteRef": { "key": "k" } },
                    { "secretKey": "k", "remoteRef": { "key": "k" } }
                ]
            }),
        ),
    )
    .await;
    for (name, expected) in [
        ("missing-store", "SecretStore \"nope\""),
        ("missing-key", "does-not-exist"),
        ("bad-spec", "duplicate secretKey found: k"),
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
    let t = setup("waiting").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
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
    let t = setup("churn").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
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
    let t = setup("aws").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_store_values_sync_by_version_and_property_and_follow_a_change() {
    let stack = Stack::get().await;
    let t = setup("ssm").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let ssm = aws_sdk_ssm::Client::new(&stack.aws().await);
    let key = format!("/{}", unique_name("eso/ssm/db"));
    let put = |value: &'static str| {
        ssm.put_parameter()
            .name(&key)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
    };
    put(r#"{"username":"app","password":"first"}"#)
        .await
        .expect("put version 1");
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
        "metadata": { "name": "ssm", "namespace": ns },
        "spec": { "provider": { "aws": { "service": "ParameterStore", "region": stack.var("AWS_REGION"), "auth": { "secretRef": {
            "accessKeyIDSecretRef": { "name": "aws-credentials", "key": "access-key-id" },
            "secretAccessKeySecretRef": { "name": "aws-credentials", "key": "secret-access-key" } } } } } }
    }))
    .await;
    apply(&client, &external_secret(&ns, "db", json!({
        "refreshInterval": "2s", "secretStoreRef": { "name": "ssm", "kind": "SecretStore" },
        "target": { "name": "db-credentials" },
        "data": [
            { "secretKey": "username", "remoteRef": { "key": key, "property": "username" } },
            { "secretKey": "password", "remoteRef": { "key": key, "property": "password" } },
            { "secretKey": "first", "remoteRef": { "key": key, "version": "1", "property": "password" } }
        ]
    }))).await;
    wait_secret(&client, &ns, "db-credentials", |s| {
        data_of(s).get("password").map(String::as_str) == Some("first")
    })
    .await;
    put(r#"{"username":"app","password":"second"}"#)
        .await
        .expect("put version 2");
    let rotated = wait_secret(&client, &ns, "db-credentials", |s| {
        data_of(s).get("password").map(String::as_str) == Some("second")
    })
    .await;
    assert_eq!(data_of(&rotated)["username"], "app");
    assert_eq!(data_of(&rotated)["first"], "first");
    let _ = ssm.delete_parameter().name(&key).send().await;
}

// ---------------------------------------------------------------------------------------------
// dataFrom: extract, find, rewrite; data after dataFrom

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_converts_invalid_key_characters_with_the_default_and_unicode_strategies() {
    let t = setup("extract-keys").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    let key = unique_name("eso/extract-keys");
    create_aws_secret(
        &sm,
        &key,
        r#"{"app/user name":"alice","tls.crt":"cert","api-key!":"k"}"#,
        &[],
    )
    .await;
    aws_store(&client, &ns, "aws").await;
    for (name, strategy) in [("default", "Default"), ("unicode", "Unicode")] {
        apply(
            &client,
            &external_secret(
                &ns,
                name,
                json!({
                    "secretStoreRef": { "name": "aws" },
                    "dataFrom": [{ "extract": { "key": key, "conversionStrategy": strategy } }]
                }),
            ),
        )
        .await;
    }
    wait_data(
        &client,
        &ns,
        "default",
        &[
            ("app_user_name", "alice"),
            ("tls.crt", "cert"),
            ("api-key_", "k"),
        ],
    )
    .await;
    wait_data(
        &client,
        &ns,
        "unicode",
        &[
            ("app_U002f_user_U0020_name", "alice"),
            ("tls.crt", "cert"),
            ("api-key_U0021_", "k"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_decodes_values_with_the_base64_and_auto_strategies() {
    let t = setup("extract-decode").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    let encoded = unique_name("eso/extract-b64");
    let mixed = unique_name("eso/extract-auto");
    create_aws_secret(
        &sm,
        &encoded,
        r#"{"user":"YWxpY2U=","pass":"czNjcjN0"}"#,
        &[],
    )
    .await;
    // Standard base64, URL-safe base64 ('_' is not in the standard alphabet), and plain text.
    create_aws_secret(
        &sm,
        &mixed,
        r#"{"std":"aGVsbG8=","url":"aGk_Pj4=","plain":"not base64!"}"#,
        &[],
    )
    .await;
    aws_store(&client, &ns, "aws").await;
    apply(
        &client,
        &external_secret(
            &ns,
            "decoded",
            json!({
                "secretStoreRef": { "name": "aws" },
                "dataFrom": [
                    { "extract": { "key": encoded, "decodingStrategy": "Base64" } },
                    { "extract": { "key": mixed, "decodingStrategy": "Auto" } }
                ]
            }),
        ),
    )
    .await;
    wait_data(
        &client,
        &ns,
        "decoded",
        &[
            ("user", "alice"),
            ("pass", "s3cr3t"),
            ("std", "hello"),
            ("url", "hi?>>"),
            ("plain", "not base64!"),
        ],
    )
    .await;

    // Base64 is strict: a value that is not base64 fails the sync and names the key only.
    apply(
        &client,
        &external_secret(
            &ns,
            "strict",
            json!({
                "secretStoreRef": { "name": "aws" },
                "dataFrom": [{ "extract": { "key": mixed, "decodingStrategy": "Base64" } }]
            }),
        ),
    )
    .await;
    let es = wait_ready_reason(
        &client,
        &ns,
        "strict",
        ConditionStatus::False,
        "SecretSyncedError",
    )
    .await;
    let message = ready_of(&es)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("illegal base64 data"), "{message}");
    assert!(!message.contains("not base64!"), "no value in {message:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_selects_aws_secrets_by_name_by_tags_and_by_path_with_slashes_turned_into_underscores()
{
    let t = setup("find").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    // A prefix and a tag of this test's own, so other tests' secrets are never found.
    let base = unique_name("eso-find");
    let tag = unique_name("team");
    create_aws_secret(&sm, &format!("{base}/app/db-user"), "u", &[]).await;
    create_aws_secret(&sm, &format!("{base}/app/db-pass"), "p", &[]).await;
    create_aws_secret(&sm, &format!("{base}/app/cert"), "c", &[(&tag, "yes")]).await;
    create_aws_secret(&sm, &format!("{base}/other/token"), "t", &[(&tag, "yes")]).await;
    create_aws_secret(&sm, &format!("{base}/other/untagged"), "x", &[]).await;
    aws_store(&client, &ns, "aws").await;
    let finds = [
        (
            "by-name",
            json!({ "name": { "regexp": format!("^{base}/app/db-") } }),
        ),
        ("by-tags", json!({ "tags": { tag.clone(): "yes" } })),
        // As in ESO, a path narrows a find by name or by tags; alone it selects nothing.
        (
            "by-path",
            json!({ "path": format!("{base}/other/"), "name": { "regexp": "." } }),
        ),
        ("path-only", json!({ "path": format!("{base}/other/") })),
    ];
    for (name, find) in finds {
        apply(
            &client,
            &external_secret(
                &ns,
                name,
                json!({
                    "secretStoreRef": { "name": "aws" },
                    "dataFrom": [{ "find": find }]
                }),
            ),
        )
        .await;
    }
    let k = |suffix: &str| format!("{base}_{suffix}");
    wait_data(
        &client,
        &ns,
        "by-name",
        &[(&k("app_db-user"), "u"), (&k("app_db-pass"), "p")],
    )
    .await;
    wait_data(
        &client,
        &ns,
        "by-tags",
        &[(&k("app_cert"), "c"), (&k("other_token"), "t")],
    )
    .await;
    wait_data(
        &client,
        &ns,
        "by-path",
        &[(&k("other_token"), "t"), (&k("other_untagged"), "x")],
    )
    .await;
    let es = wait_ready_reason(
        &client,
        &ns,
        "path-only",
        ConditionStatus::False,
        "SecretSyncedError",
    )
    .await;
    let message = ready_of(&es)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("find needs name.regexp or tags"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_regexp_renames_keys_and_merge_flattens_found_json_objects() {
    let t = setup("rewrite").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    let key = unique_name("eso/rewrite");
    create_aws_secret(
        &sm,
        &key,
        r#"{"db-user":"u","db-pass":"p","other":"o"}"#,
        &[],
    )
    .await;
    let base = unique_name("eso-merge");
    create_aws_secret(
        &sm,
        &format!("{base}/mongo"),
        r#"{"username":"foz","password":"baz"}"#,
        &[],
    )
    .await;
    create_aws_secret(
        &sm,
        &format!("{base}/redis"),
        r#"{"host":"redis.example.com","port":"6379"}"#,
        &[],
    )
    .await;
    aws_store(&client, &ns, "aws").await;
    apply(
        &client,
        &external_secret(
            &ns,
            "regexp",
            json!({
                "secretStoreRef": { "name": "aws" },
                "dataFrom": [{
                    "extract": { "key": key },
                    "rewrite": [{ "regexp": { "source": "^db-(.*)", "target": "$1" } }]
                }]
            }),
        ),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "merged",
            json!({
                "secretStoreRef": { "name": "aws" },
                "dataFrom": [{
                    "find": { "name": { "regexp": format!("^{base}/") } },
                    "rewrite": [{ "merge": {} }]
                }]
            }),
        ),
    )
    .await;
    wait_data(
        &client,
        &ns,
        "regexp",
        &[("user", "u"), ("pass", "p"), ("other", "o")],
    )
    .await;
    wait_data(
        &client,
        &ns,
        "merged",
        &[
            ("username", "foz"),
            ("password", "baz"),
            ("host", "redis.example.com"),
            ("port", "6379"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_entries_are_applied_after_data_from_and_win_on_the_same_key() {
    let t = setup("order").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    let bundle = unique_name("eso/order-bundle");
    let single = unique_name("eso/order-single");
    create_aws_secret(
        &sm,
        &bundle,
        r#"{"user":"u","password":"from-extract"}"#,
        &[],
    )
    .await;
    create_aws_secret(&sm, &single, "from-data", &[]).await;
    aws_store(&client, &ns, "aws").await;
    apply(
        &client,
        &external_secret(
            &ns,
            "ordered",
            json!({
                "secretStoreRef": { "name": "aws" },
                // data is written first in the manifest; the order of processing is still dataFrom, data.
                "data": [{ "secretKey": "password", "remoteRef": { "key": single } }],
                "dataFrom": [{ "extract": { "key": bundle } }]
            }),
        ),
    )
    .await;
    wait_data(
        &client,
        &ns,
        "ordered",
        &[("user", "u"), ("password", "from-data")],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// remoteRef: version, metadataPolicy

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_ref_version_reads_an_aws_stage_or_a_version_id_and_metadata_fetch_reads_tags() {
    let t = setup("versions").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    let key = unique_name("eso/versions");
    let first = create_aws_secret(&sm, &key, "v1", &[]).await;
    put_aws_secret(&sm, &key, "v2").await;
    put_aws_secret(&sm, &key, "v3").await;
    let tagged = unique_name("eso/tagged");
    create_aws_secret(
        &sm,
        &tagged,
        "value",
        &[("team", "payments"), ("env", "prod")],
    )
    .await;
    aws_store(&client, &ns, "aws").await;
    apply(&client, &external_secret(&ns, "versions", json!({
        "secretStoreRef": { "name": "aws" },
        "data": [
            { "secretKey": "current", "remoteRef": { "key": key } },
            { "secretKey": "previous", "remoteRef": { "key": key, "version": "AWSPREVIOUS" } },
            { "secretKey": "first", "remoteRef": { "key": key, "version": format!("uuid/{first}") } },
            { "secretKey": "team", "remoteRef": { "key": tagged, "metadataPolicy": "Fetch", "property": "team" } },
            { "secretKey": "tags", "remoteRef": { "key": tagged, "metadataPolicy": "Fetch" } }
        ]
    })))
    .await;
    wait_data(
        &client,
        &ns,
        "versions",
        &[
            ("current", "v3"),
            ("previous", "v2"),
            ("first", "v1"),
            ("team", "payments"),
            ("tags", r#"{"env":"prod","team":"payments"}"#),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// creationPolicy

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_creates_a_secret_without_owner_that_survives_the_external_secret() {
    let t = setup("orphan").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(
        &client,
        &fake_store(&ns, "fake", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    for (name, policy) in [("orphan", "Orphan"), ("owned", "Owner")] {
        apply(
            &client,
            &external_secret(
                &ns,
                name,
                json!({
                    "secretStoreRef": { "name": "fake" },
                    "target": { "creationPolicy": policy },
                    "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
                }),
            ),
        )
        .await;
    }
    let orphan = wait_data(&client, &ns, "orphan", &[("k", "v")]).await;
    wait_data(&client, &ns, "owned", &[("k", "v")]).await;
    assert!(
        orphan.metadata.owner_references.is_none(),
        "Orphan sets no owner"
    );
    let labels = orphan.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("reconcile.external-secrets.io/managed")
            .map(String::as_str),
        Some("true")
    );
    assert!(
        !labels.contains_key("reconcile.external-secrets.io/created-by"),
        "created-by is for Owner only: {labels:?}"
    );
    wait_ready(&client, &ns, "orphan").await;

    // Delete both ExternalSecrets: the garbage collector removes the Owner Secret, and nothing
    // ever removes the Orphan one (no owner, no finalizer; the namespace guard cleans it up).
    let api: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    for name in ["orphan", "owned"] {
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete ExternalSecret");
    }
    wait_secret_gone(&client, &ns, "owned").await;
    assert_secret_stays(
        &client,
        &ns,
        "orphan",
        Duration::from_secs(2),
        "an Orphan Secret survives",
        |s| value_of(s, "k").as_deref() == Some("v"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_policy_none_writes_nothing_and_is_ready() {
    let t = setup("none").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(
        &client,
        &fake_store(&ns, "fake", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "nothing",
            json!({
                "secretStoreRef": { "name": "fake" },
                "target": { "creationPolicy": "None" },
                "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
            }),
        ),
    )
    .await;
    let es = wait_ready_reason(
        &client,
        &ns,
        "nothing",
        ConditionStatus::True,
        "SecretSynced",
    )
    .await;
    assert!(
        es.status
            .as_ref()
            .and_then(|s| s.refresh_time.as_ref())
            .is_some(),
        "the fetch ran: {:?}",
        es.status
    );
    assert_secret_stays(
        &client,
        &ns,
        "nothing",
        Duration::from_secs(3),
        "None creates nothing",
        |s| s.is_none(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_or_merge_creates_without_owner_merges_into_an_existing_secret_and_recreates_it() {
    let t = setup("create-or-merge").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(
        &client,
        &fake_store(&ns, "fake", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let existing: Secret = serde_json::from_value(json!({
        "metadata": { "name": "existing" }, "stringData": { "own": "kept" }
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &existing)
        .await
        .expect("create");
    for (name, target) in [("created", "created"), ("merged", "existing")] {
        apply(
            &client,
            &external_secret(
                &ns,
                name,
                json!({
                    "secretStoreRef": { "name": "fake" },
                    "target": { "name": target, "creationPolicy": "CreateOrMerge" },
                    "data": [{ "secretKey": "added", "remoteRef": { "key": "k" } }]
                }),
            ),
        )
        .await;
    }
    let created = wait_data(&client, &ns, "created", &[("added", "v")]).await;
    assert!(
        created.metadata.owner_references.is_none(),
        "CreateOrMerge sets no owner"
    );
    let merged = wait_data(&client, &ns, "existing", &[("own", "kept"), ("added", "v")]).await;
    assert!(merged.metadata.owner_references.is_none());

    // Deleted while the ExternalSecret exists: recreated.
    let uid = created.metadata.uid.clone();
    secrets
        .delete("created", &DeleteParams::default())
        .await
        .expect("delete");
    let again = wait_secret(&client, &ns, "created", |s| {
        s.metadata.uid != uid && data_of(s).get("added").map(String::as_str) == Some("v")
    })
    .await;
    assert!(again.metadata.owner_references.is_none());
}

// ---------------------------------------------------------------------------------------------
// deletionPolicy: the provider secret is deleted

/// An AWS-backed ExternalSecret reading `keys` (secretKey = remote key) with a deletionPolicy,
/// synced once; returns the remote keys.
async fn synced_with_deletion_policy(
    client: &kube::Client,
    ns: &str,
    policy: &str,
    secret_keys: &[&str],
) -> Vec<String> {
    let sm = moto().await;
    let mut remotes = Vec::new();
    let mut data = Vec::new();
    let mut want = Vec::new();
    for secret_key in secret_keys {
        let remote = unique_name(&format!("eso/deletion-{secret_key}"));
        create_aws_secret(&sm, &remote, &format!("value-{secret_key}"), &[]).await;
        data.push(json!({ "secretKey": secret_key, "remoteRef": { "key": remote } }));
        want.push(((*secret_key).to_owned(), format!("value-{secret_key}")));
        remotes.push(remote);
    }
    aws_store(client, ns, "aws").await;
    apply(
        client,
        &external_secret(
            ns,
            "es",
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": { "name": "aws" },
                "target": { "name": "target", "deletionPolicy": policy },
                "data": data
            }),
        ),
    )
    .await;
    let want: Vec<(&str, &str)> = want.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    wait_data(client, ns, "target", &want).await;
    wait_ready(client, ns, "es").await;
    remotes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policy_retain_keeps_the_secret_and_fails_the_sync_when_the_provider_secret_is_gone()
 {
    let t = setup("del-retain").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let remotes = synced_with_deletion_policy(&client, &ns, "Retain", &["a"]).await;
    delete_aws_secret(&moto().await, &remotes[0]).await;
    force_sync(&client, &ns, "es").await;
    let es = wait_ready_reason(
        &client,
        &ns,
        "es",
        ConditionStatus::False,
        "SecretSyncedError",
    )
    .await;
    let message = ready_of(&es)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.starts_with("could not get secret data from provider")
            && message.contains(&remotes[0]),
        "{message}"
    );
    let secret = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("target")
        .await
        .expect("kept");
    assert_eq!(data_of(&secret)["a"], "value-a");
    let event = wait_event(&client, &ns, "es", "UpdateFailed").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policy_delete_removes_the_secret_once_every_provider_secret_is_gone() {
    let t = setup("del-delete").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let remotes = synced_with_deletion_policy(&client, &ns, "Delete", &["a"]).await;
    delete_aws_secret(&moto().await, &remotes[0]).await;
    force_sync(&client, &ns, "es").await;
    wait_secret_gone(&client, &ns, "target").await;
    let es = wait_ready_reason(&client, &ns, "es", ConditionStatus::True, "SecretDeleted").await;
    assert_eq!(
        ready_of(&es).and_then(|c| c.message.as_deref()),
        Some("secret deleted due to DeletionPolicy=Delete")
    );
    let event = wait_event(&client, &ns, "es", "MissingProviderSecret").await;
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains("spec.data[0]") && note.contains(&remotes[0]),
        "{note}"
    );
    wait_event(&client, &ns, "es", "Deleted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policy_merge_removes_only_the_missing_key_and_keeps_the_secret() {
    let t = setup("del-merge").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let remotes = synced_with_deletion_policy(&client, &ns, "Merge", &["a", "b"]).await;
    delete_aws_secret(&moto().await, &remotes[1]).await;
    force_sync(&client, &ns, "es").await;
    wait_data(&client, &ns, "target", &[("a", "value-a")]).await;
    let es = wait_ready(&client, &ns, "es").await;
    assert_eq!(
        ready_of(&es).and_then(|c| c.reason.as_deref()),
        Some("SecretSynced")
    );
    let event = wait_event(&client, &ns, "es", "MissingProviderSecret").await;
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains("spec.data[1]") && note.contains(&remotes[1]),
        "{note}"
    );
}

// ---------------------------------------------------------------------------------------------
// refreshPolicy, refreshInterval, force sync

/// An AWS-backed ExternalSecret `es` → Secret `target` { value: <remote> }, synced to `v1`.
async fn synced_refresh(
    client: &kube::Client,
    ns: &str,
    spec: serde_json::Value,
) -> (aws_sdk_secretsmanager::Client, String) {
    let sm = moto().await;
    let remote = unique_name("eso/refresh");
    create_aws_secret(&sm, &remote, "v1", &[]).await;
    aws_store(client, ns, "aws").await;
    let mut spec = spec;
    spec["secretStoreRef"] = json!({ "name": "aws" });
    spec["target"] = json!({ "name": "target" });
    spec["data"] = json!([{ "secretKey": "value", "remoteRef": { "key": remote } }]);
    apply(client, &external_secret(ns, "es", spec)).await;
    wait_data(client, ns, "target", &[("value", "v1")]).await;
    wait_ready(client, ns, "es").await;
    (sm, remote)
}

fn holds(value: &'static str) -> impl Fn(Option<&Secret>) -> bool {
    move |s| value_of(s, "value").as_deref() == Some(value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_once_ignores_provider_changes_and_force_sync_but_recreates_a_deleted_secret() {
    let t = setup("created-once").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let (sm, remote) = synced_refresh(
        &client,
        &ns,
        json!({
            "refreshPolicy": "CreatedOnce", "refreshInterval": "1s"
        }),
    )
    .await;
    put_aws_secret(&sm, &remote, "v2").await;
    assert_secret_stays(
        &client,
        &ns,
        "target",
        Duration::from_secs(4),
        "CreatedOnce never refreshes",
        holds("v1"),
    )
    .await;
    force_sync(&client, &ns, "es").await;
    assert_secret_stays(
        &client,
        &ns,
        "target",
        Duration::from_secs(2),
        "force-sync does nothing for CreatedOnce",
        holds("v1"),
    )
    .await;

    // ESO's isSecretValid: a missing Owner Secret is synced whatever the refresh policy.
    Api::<Secret>::namespaced(client.clone(), &ns)
        .delete("target", &DeleteParams::default())
        .await
        .expect("delete");
    wait_data(&client, &ns, "target", &[("value", "v2")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_change_syncs_on_a_label_or_spec_change_and_never_on_time() {
    let t = setup("on-change").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let (sm, remote) = synced_refresh(
        &client,
        &ns,
        json!({
            "refreshPolicy": "OnChange", "refreshInterval": "1s"
        }),
    )
    .await;
    put_aws_secret(&sm, &remote, "v2").await;
    assert_secret_stays(
        &client,
        &ns,
        "target",
        Duration::from_secs(4),
        "OnChange does not refresh on time",
        holds("v1"),
    )
    .await;
    patch_es(
        &client,
        &ns,
        "es",
        json!({ "metadata": { "labels": { "team": "a" } } }),
    )
    .await;
    wait_data(&client, &ns, "target", &[("value", "v2")]).await;

    put_aws_secret(&sm, &remote, "v3").await;
    assert_secret_stays(
        &client,
        &ns,
        "target",
        Duration::from_secs(3),
        "OnChange does not refresh on time",
        holds("v2"),
    )
    .await;
    patch_es(
        &client,
        &ns,
        "es",
        json!({ "spec": { "refreshInterval": "2s" } }),
    )
    .await;
    wait_data(&client, &ns, "target", &[("value", "v3")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_refresh_interval_syncs_once_and_never_again() {
    let t = setup("interval-zero").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let (sm, remote) = synced_refresh(&client, &ns, json!({ "refreshInterval": "0s" })).await;
    let before = wait_ready(&client, &ns, "es").await;
    put_aws_secret(&sm, &remote, "v2").await;
    // ESO: not even a spec or metadata change refreshes once refreshInterval is 0.
    force_sync(&client, &ns, "es").await;
    assert_secret_stays(
        &client,
        &ns,
        "target",
        Duration::from_secs(4),
        "refreshInterval 0 syncs once",
        holds("v1"),
    )
    .await;
    let after = wait_ready(&client, &ns, "es").await;
    assert_eq!(
        after.status.as_ref().and_then(|s| s.refresh_time.clone()),
        before.status.as_ref().and_then(|s| s.refresh_time.clone()),
        "no sync after the first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_sync_picks_up_a_provider_change_at_once_under_a_one_hour_interval() {
    // The production value reuse window (5 min): a force sync must not be answered from it.
    let t = setup_with("force-sync", &[], |s| {
        s.value_reuse = Duration::from_secs(300)
    })
    .await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let (sm, remote) = synced_refresh(&client, &ns, json!({ "refreshInterval": "1h" })).await;
    put_aws_secret(&sm, &remote, "v2").await;
    force_sync(&client, &ns, "es").await;
    wait_data(&client, &ns, "target", &[("value", "v2")]).await;
}

// ---------------------------------------------------------------------------------------------
// target: name change, immutable

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_external_secret_never_gets_a_value_fetched_before_it_existed() {
    // The first ExternalSecret's fetch of v1 sits in the reuse window (5 min); a second
    // ExternalSecret created after the rotation must still read v2.
    let t = setup("first-sync-fresh").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let (sm, remote) = synced_refresh(&client, &ns, json!({ "refreshInterval": "1h" })).await;
    put_aws_secret(&sm, &remote, "v2").await;
    // Kubernetes timestamps have second precision: make the creation time unambiguous.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let spec = json!({
        "refreshInterval": "1h",
        "secretStoreRef": { "name": "aws" },
        "target": { "name": "second-target" },
        "data": [{ "secretKey": "value", "remoteRef": { "key": remote } }]
    });
    apply(&client, &external_secret(&ns, "second", spec)).await;
    wait_data(&client, &ns, "second-target", &[("value", "v2")]).await;
    // The first one keeps v1 until its own refresh: reuse never moves a Secret backwards or forwards
    // on its own, only a sync does.
    wait_data(&client, &ns, "target", &[("value", "v1")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_an_owner_target_deletes_the_old_secret_and_creates_the_new_one() {
    let t = setup("rename").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(
        &client,
        &fake_store(&ns, "fake", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    let spec = |target: &str| {
        json!({
            "secretStoreRef": { "name": "fake" },
            "target": { "name": target },
            "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
        })
    };
    apply(&client, &external_secret(&ns, "es", spec("first"))).await;
    let first = wait_data(&client, &ns, "first", &[("k", "v")]).await;
    assert!(
        first
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("reconcile.external-secrets.io/created-by")
    );
    apply(&client, &external_secret(&ns, "es", spec("second"))).await;
    wait_data(&client, &ns, "second", &[("k", "v")]).await;
    wait_secret_gone(&client, &ns, "first").await;
    let event = wait_event(&client, &ns, "es", "Deleted").await;
    assert_eq!(
        event.note.as_deref(),
        Some("secret deleted because it was orphaned")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_target_is_never_updated_and_is_recreated_with_the_new_value_when_deleted() {
    let t = setup("immutable").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    let remote = unique_name("eso/immutable");
    create_aws_secret(&sm, &remote, "v1", &[]).await;
    aws_store(&client, &ns, "aws").await;
    apply(
        &client,
        &external_secret(
            &ns,
            "es",
            json!({
                "refreshInterval": "1s",
                "secretStoreRef": { "name": "aws" },
                "target": { "name": "target", "immutable": true },
                "data": [{ "secretKey": "value", "remoteRef": { "key": remote } }]
            }),
        ),
    )
    .await;
    let secret = wait_data(&client, &ns, "target", &[("value", "v1")]).await;
    assert_eq!(secret.immutable, Some(true));

    put_aws_secret(&sm, &remote, "v2").await;
    assert_secret_stays(
        &client,
        &ns,
        "target",
        Duration::from_secs(4),
        "an immutable target is not updated",
        holds("v1"),
    )
    .await;
    let es = wait_ready(&client, &ns, "es").await;
    assert_eq!(
        ready_of(&es).and_then(|c| c.reason.as_deref()),
        Some("SecretSynced")
    );

    Api::<Secret>::namespaced(client.clone(), &ns)
        .delete("target", &DeleteParams::default())
        .await
        .expect("delete");
    let again = wait_data(&client, &ns, "target", &[("value", "v2")]).await;
    assert_eq!(again.immutable, Some(true));
}

// ---------------------------------------------------------------------------------------------
// Stores: ClusterSecretStore conditions, namespace boundaries, store status

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_secret_store_serves_only_the_namespaces_its_conditions_allow() {
    let client = Stack::get().await.kube().await;
    install_crds(&client).await;
    let label = unique_name("allowed");
    let regex_prefix = unique_name("cssre");
    let (by_name, _g1) = scoped_namespace(&client, "css-by-name", &[]).await;
    let (by_label, _g2) = scoped_namespace(
        &client,
        "css-by-label",
        &[("secret-sync.io/test-allow", &label)],
    )
    .await;
    let (by_regex, _g3) = scoped_namespace(&client, &regex_prefix, &[]).await;
    let (denied, _g4) = scoped_namespace(&client, "css-denied", &[]).await;
    let store = unique_name("css");
    let _store_guard = Cleanup::cluster_secret_store(&store);
    apply(&client, &json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": { "name": store },
        "spec": {
            "provider": { "fake": { "data": [{ "key": "k", "value": "shared" }] } },
            "conditions": [
                { "namespaces": [by_name] },
                { "namespaceSelector": { "matchLabels": { "secret-sync.io/test-allow": label } } },
                { "namespaceRegexes": [format!("^{regex_prefix}-")] }
            ]
        }
    }))
    .await;
    let mut controllers = Vec::new();
    for ns in [&by_name, &by_label, &by_regex, &denied] {
        controllers.push(controller::start(&client, ns).await);
        apply(
            &client,
            &external_secret(
                ns,
                "es",
                json!({
                    "secretStoreRef": { "name": store, "kind": "ClusterSecretStore" },
                    "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
                }),
            ),
        )
        .await;
    }
    for ns in [&by_name, &by_label, &by_regex] {
        wait_data(&client, ns, "es", &[("k", "shared")]).await;
    }
    let es = wait_ready_reason(
        &client,
        &denied,
        "es",
        ConditionStatus::False,
        "SecretSyncedError",
    )
    .await;
    let message = ready_of(&es)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&format!(
            "using cluster store {store:?} is not allowed from namespace {denied:?}"
        )),
        "{message}"
    );
    let secret = Api::<Secret>::namespaced(client.clone(), &denied)
        .get_opt("es")
        .await
        .expect("get");
    assert!(secret.is_none(), "nothing written in a denied namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_store_is_never_used_from_another_namespace() {
    // The store lives in A (a controller there makes it Ready); the ExternalSecret in B names it.
    let home = setup("ss-home").await;
    let client = home.client.clone();
    let (other, _other_guard) = scoped_namespace(&client, "ss-other", &[]).await;
    apply(
        &client,
        &fake_store(&home.ns, "fake", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    wait_store(&client, &home.ns, "fake", |s| {
        store_ready_of(s).is_some_and(|c| c.status == ConditionStatus::True)
    })
    .await;
    let spec = json!({
        "secretStoreRef": { "name": "fake" },
        "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
    });
    apply(&client, &external_secret(&home.ns, "es", spec.clone())).await;
    apply(&client, &external_secret(&other, "es", spec)).await;
    wait_data(&client, &home.ns, "es", &[("k", "v")]).await;

    // An engine that reads the apiserver directly sees every namespace, so only its own rules
    // keep it from using A's store for B.
    let engine = Engine::new(
        client.clone(),
        Arc::new(ApiView::new(client.clone())),
        Arc::new(KubeReferents::new(client.clone())),
        Arc::new(NoObserver),
        Settings::default(),
    );
    let es = Api::<ExternalSecret>::namespaced(client.clone(), &other)
        .get("es")
        .await
        .expect("get");
    let err = engine
        .sync(&es, Trigger::Reconcile)
        .await
        .expect_err("no store in B");
    assert!(
        err.to_string()
            .contains("could not get SecretStore \"fake\": not found"),
        "{err}"
    );
    let es = wait_ready_reason(
        &client,
        &other,
        "es",
        ConditionStatus::False,
        "SecretSyncedError",
    )
    .await;
    let message = ready_of(&es)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("could not get SecretStore \"fake\": not found"),
        "{message}"
    );
    let secret = Api::<Secret>::namespaced(client.clone(), &other)
        .get_opt("es")
        .await
        .expect("get");
    assert!(secret.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fake_store_is_valid_and_an_aws_store_without_its_credentials_secret_is_not() {
    let t = setup("store-status").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(&client, &fake_store(&ns, "fake", json!([]))).await;
    apply(
        &client,
        &aws_store_object(&ns, "aws", "missing-credentials"),
    )
    .await;
    let fake = wait_store(&client, &ns, "fake", |s| store_ready_of(s).is_some()).await;
    let ready = store_ready_of(&fake).expect("ready");
    assert_eq!(
        (
            ready.status,
            ready.reason.as_deref(),
            ready.message.as_deref()
        ),
        (
            ConditionStatus::True,
            Some("Valid"),
            Some("store validated")
        )
    );
    let aws = wait_store(&client, &ns, "aws", |s| store_ready_of(s).is_some()).await;
    let ready = store_ready_of(&aws).expect("ready");
    assert_eq!(
        (ready.status, ready.reason.as_deref()),
        (ConditionStatus::False, Some("InvalidProviderConfig"))
    );
    let message = ready.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("{ns}/missing-credentials")) && message.contains("not found"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// target.template

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_database_url_template_renders_one_key_from_four_properties() {
    let t = setup("template-seed").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let path = repo_root().join("tests/fixtures/seed/externalsecret-database-url.yaml");
    let text = std::fs::read_to_string(&path).expect("seed manifest");
    let mut es: serde_json::Value = serde_saphyr::from_str(&text).expect("seed YAML");
    es["metadata"]["namespace"] = json!(ns);
    let store = es["spec"]["secretStoreRef"]["name"]
        .as_str()
        .expect("store name")
        .to_owned();
    let value = r#"{"username":"app","password":"s3cr3t","host":"db.internal","dbname":"orders"}"#;
    apply(
        &client,
        &fake_store(
            &ns,
            &store,
            json!([{ "key": "prod/database", "value": value }]),
        ),
    )
    .await;
    apply(&client, &es).await;
    let target = es["spec"]["target"]["name"].as_str().expect("target name");
    wait_data(
        &client,
        &ns,
        target,
        &[(
            "DATABASE_URL",
            "postgresql://app:s3cr3t@db.internal:5432/orders?sslmode=require",
        )],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_auth_template_type_is_accepted_by_the_apiserver() {
    let t = setup("template-type").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(
        &client,
        &fake_store(
            &ns,
            "fake",
            json!([
                { "key": "login", "value": r#"{"user":"admin","pass":"hunter2"}"# }
            ]),
        ),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "login",
            json!({
                "secretStoreRef": { "name": "fake" },
                "target": { "template": {
                    "type": "kubernetes.io/basic-auth",
                    "data": { "username": "{{ .user }}", "password": "{{ .pass }}" }
                } },
                "dataFrom": [{ "extract": { "key": "login" } }]
            }),
        ),
    )
    .await;
    let secret = wait_data(
        &client,
        &ns,
        "login",
        &[("username", "admin"), ("password", "hunter2")],
    )
    .await;
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    wait_ready(&client, &ns, "login").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_kv_values_sync_through_external_secrets_with_properties_and_extract() {
    let t = setup("vault").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let vault = Stack::get().await.vault();
    let key = unique_name("es/db");
    let legacy = unique_name("es/legacy");
    vaultrs::kv2::set(
        &vault,
        "secret",
        &key,
        &json!({ "username": "app", "password": "v1" }),
    )
    .await
    .expect("kv2 put");
    vaultrs::kv1::set(
        &vault,
        "kv1",
        &legacy,
        &std::collections::HashMap::from([("api-key", "k1")]),
    )
    .await
    .expect("kv1 put");
    vault_token_store(&client, &ns, "bao", "secret", "v2").await;
    vault_token_store(&client, &ns, "bao-v1", "kv1", "v1").await;
    apply(
        &client,
        &external_secret(
            &ns,
            "db",
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": { "name": "bao" },
                "data": [
                    { "secretKey": "user", "remoteRef": { "key": key, "property": "username" } },
                    { "secretKey": "legacy", "remoteRef": { "key": legacy, "property": "api-key" },
                      "sourceRef": { "storeRef": { "name": "bao-v1" } } }
                ],
                "dataFrom": [{ "extract": { "key": key } }]
            }),
        ),
    )
    .await;
    wait_data(
        &client,
        &ns,
        "db",
        &[
            ("user", "app"),
            ("legacy", "k1"),
            ("username", "app"),
            ("password", "v1"),
        ],
    )
    .await;

    vaultrs::kv2::set(
        &vault,
        "secret",
        &key,
        &json!({ "username": "app", "password": "v2" }),
    )
    .await
    .expect("kv2 put");
    force_sync(&client, &ns, "db").await;
    wait_data(
        &client,
        &ns,
        "db",
        &[
            ("user", "app"),
            ("legacy", "k1"),
            ("username", "app"),
            ("password", "v2"),
        ],
    )
    .await;
    let es = wait_ready(&client, &ns, "db").await;
    assert_eq!(
        ready_of(&es).and_then(|c| c.reason.as_deref()),
        Some("SecretSynced")
    );
}

/// Writes a KV v2 secret at `secret/<path>` (a new version when it exists).
async fn kv2_put(vault: &vaultrs::client::VaultClient, path: &str, data: serde_json::Value) {
    vaultrs::kv2::set(vault, "secret", path, &data)
        .await
        .unwrap_or_else(|e| panic!("writing secret/{path}: {e}"));
}

/// Replaces the `custom_metadata` of the KV v2 secret `secret/<path>`.
async fn kv2_tag(vault: &vaultrs::client::VaultClient, path: &str, tags: &[(&str, &str)]) {
    let custom: std::collections::HashMap<String, String> = tags
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    vaultrs::kv2::set_metadata(
        vault,
        "secret",
        path,
        Some(
            vaultrs::api::kv2::requests::SetSecretMetadataRequest::builder()
                .custom_metadata(custom),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("writing the metadata of secret/{path}: {e}"));
}

/// Deletes the KV v2 secret `secret/<path>` with its metadata and every version.
async fn kv2_delete(vault: &vaultrs::client::VaultClient, path: &str) {
    vaultrs::kv2::delete_metadata(vault, "secret", path)
        .await
        .unwrap_or_else(|e| panic!("deleting secret/{path}: {e}"));
}

/// Waits for an Event with `reason` about `regarding` whose note contains every `needle`.
async fn wait_event_note(
    client: &kube::Client,
    ns: &str,
    regarding: &str,
    reason: &str,
    needles: &[&str],
) -> k8s_openapi::api::events::v1::Event {
    let deadline = tokio::time::Instant::now() + controller::CONVERGE;
    loop {
        let all = controller::events(client, ns).await;
        let found = all.iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(regarding)
                && needles
                    .iter()
                    .all(|n| e.note.as_deref().unwrap_or_default().contains(n))
        });
        if let Some(event) = found {
            return event.clone();
        }
        if tokio::time::Instant::now() > deadline {
            let notes: Vec<_> = all
                .iter()
                .filter(|e| e.reason.as_deref() == Some(reason))
                .map(|e| e.note.clone())
                .collect();
            panic!(
                "no {reason} Event about {ns}/{regarding} with {needles:?}; {reason} notes: {notes:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Ready condition's reason and message.
fn ready_text(es: &ExternalSecret) -> (String, String) {
    let ready = ready_of(es);
    (
        ready.and_then(|c| c.reason.clone()).unwrap_or_default(),
        ready.and_then(|c| c.message.clone()).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_find_selects_kv2_secrets_by_path_and_name_or_by_tags_under_esos_key_names() {
    let t = setup("vault-find").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let vault = Stack::get().await.vault();
    // A folder and a tag value of this test's own, so no other test's secret is ever found.
    let base = unique_name("es-find");
    let team = unique_name("team");
    let path = |rest: &str| format!("{base}/{rest}");
    kv2_put(&vault, &path("app/db-user"), json!({ "value": "u" })).await;
    kv2_put(&vault, &path("app/db-pass"), json!({ "value": "p" })).await;
    kv2_put(&vault, &path("app/cert"), json!({ "value": "c" })).await;
    // Matches the name regexp, but lies outside the searched path.
    kv2_put(&vault, &path("other/db-token"), json!({ "value": "t" })).await;
    kv2_put(&vault, &path("other/untagged"), json!({ "value": "x" })).await;
    kv2_put(&vault, &path("other/elsewhere"), json!({ "value": "e" })).await;
    kv2_tag(
        &vault,
        &path("app/cert"),
        &[("team", &team), ("env", "prod")],
    )
    .await;
    kv2_tag(&vault, &path("other/db-token"), &[("team", &team)]).await;
    kv2_tag(
        &vault,
        &path("other/elsewhere"),
        &[("team", "someone-else"), ("env", "prod")],
    )
    .await;
    vault_token_store(&client, &ns, "bao", "secret", "v2").await;
    let by_name = json!({ "path": path("app"), "name": { "regexp": "db-" } });
    let finds = [
        ("by-name", json!({ "find": by_name })),
        (
            "by-tag",
            json!({ "find": { "path": base, "tags": { "team": team } } }),
        ),
        (
            "by-two-tags",
            json!({ "find": { "path": base, "tags": { "team": team, "env": "prod" } } }),
        ),
        (
            "unicode",
            json!({ "find": {
                "path": path("app"), "name": { "regexp": "db-user$" }, "conversionStrategy": "Unicode"
            } }),
        ),
        (
            "rewritten",
            json!({
                "find": by_name,
                "rewrite": [{ "regexp": { "source": "^.*/db-(.*)$", "target": "$1" } }]
            }),
        ),
        // No name, no tags: everything under the path, as ESO's Vault `GetAllSecrets` does.
        ("path-only", json!({ "find": { "path": path("other") } })),
    ];
    for (name, entry) in finds {
        apply(
            &client,
            &external_secret(
                &ns,
                name,
                json!({
                    "refreshInterval": "1h",
                    "secretStoreRef": { "name": "bao" },
                    "dataFrom": [entry]
                }),
            ),
        )
        .await;
    }
    // ESO's Vault find: each key is the secret's path relative to the mount (the find path
    // included), its value the secret's whole data as JSON; `/` becomes `_` by default.
    let k = |rest: &str| format!("{base}_{rest}");
    wait_data(
        &client,
        &ns,
        "by-name",
        &[
            (&k("app_db-user"), r#"{"value":"u"}"#),
            (&k("app_db-pass"), r#"{"value":"p"}"#),
        ],
    )
    .await;
    wait_data(
        &client,
        &ns,
        "by-tag",
        &[
            (&k("app_cert"), r#"{"value":"c"}"#),
            (&k("other_db-token"), r#"{"value":"t"}"#),
        ],
    )
    .await;
    wait_data(
        &client,
        &ns,
        "by-two-tags",
        &[(&k("app_cert"), r#"{"value":"c"}"#)],
    )
    .await;
    wait_data(
        &client,
        &ns,
        "unicode",
        &[(
            &format!("{base}_U002f_app_U002f_db-user"),
            r#"{"value":"u"}"#,
        )],
    )
    .await;
    wait_data(
        &client,
        &ns,
        "rewritten",
        &[("user", r#"{"value":"u"}"#), ("pass", r#"{"value":"p"}"#)],
    )
    .await;
    wait_data(
        &client,
        &ns,
        "path-only",
        &[
            (&k("other_db-token"), r#"{"value":"t"}"#),
            (&k("other_untagged"), r#"{"value":"x"}"#),
            (&k("other_elsewhere"), r#"{"value":"e"}"#),
        ],
    )
    .await;
    for name in [
        "by-name",
        "by-tag",
        "by-two-tags",
        "unicode",
        "rewritten",
        "path-only",
    ] {
        let es = wait_ready(&client, &ns, name).await;
        assert_eq!(
            ready_text(&es),
            ("SecretSynced".into(), "secret synced".into()),
            "{name}"
        );
    }

    // A new matching secret is found at the next sync.
    kv2_put(&vault, &path("app/db-host"), json!({ "value": "h" })).await;
    force_sync(&client, &ns, "by-name").await;
    wait_data(
        &client,
        &ns,
        "by-name",
        &[
            (&k("app_db-user"), r#"{"value":"u"}"#),
            (&k("app_db-pass"), r#"{"value":"p"}"#),
            (&k("app_db-host"), r#"{"value":"h"}"#),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_remote_refs_read_versions_metadata_and_nested_properties_and_deletion_policies_apply()
 {
    let t = setup("vault-refs").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let vault = Stack::get().await.vault();
    let key = unique_name("es/refs");
    let value = |password: &str| {
        json!({
            "password": password,
            "db": { "host": "h", "port": 5432 },
            "a.b": "literal",
            "a": { "b": "nested" }
        })
    };
    kv2_put(&vault, &key, value("one")).await;
    kv2_tag(&vault, &key, &[("owner", "team-a"), ("env", "prod")]).await;
    // For the Delete and Merge policies.
    let gone = unique_name("es/gone");
    let kept = unique_name("es/kept");
    let dropped = unique_name("es/dropped");
    let folder = unique_name("es-gone");
    kv2_put(&vault, &gone, json!({ "value": "g" })).await;
    kv2_put(&vault, &kept, json!({ "value": "k" })).await;
    kv2_put(&vault, &dropped, json!({ "value": "d" })).await;
    kv2_put(&vault, &format!("{folder}/x"), json!({ "value": "x" })).await;
    vault_token_store(&client, &ns, "bao", "secret", "v2").await;

    let fetch = |property: Option<&str>| {
        let mut remote = json!({ "key": key, "metadataPolicy": "Fetch" });
        if let Some(p) = property {
            remote["property"] = json!(p);
        }
        remote
    };
    let prop = |property: &str| json!({ "key": key, "property": property });
    apply(&client, &external_secret(&ns, "refs", json!({
        "refreshInterval": "1h",
        "secretStoreRef": { "name": "bao" },
        "data": [
            { "secretKey": "first", "remoteRef": { "key": key, "version": "1", "property": "password" } },
            { "secretKey": "password", "remoteRef": prop("password") },
            { "secretKey": "db-host", "remoteRef": prop("db.host") },
            { "secretKey": "db-port", "remoteRef": prop("db.port") },
            { "secretKey": "db", "remoteRef": prop("db") },
            // An exact top-level key wins over the gjson path.
            { "secretKey": "literal", "remoteRef": prop("a.b") },
            { "secretKey": "owner", "remoteRef": fetch(Some("owner")) },
            { "secretKey": "version", "remoteRef": fetch(Some("current_version")) },
            { "secretKey": "metadata", "remoteRef": fetch(None) }
        ],
        "dataFrom": [{ "extract": { "key": key, "property": "db" } }]
    })))
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "delete",
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": { "name": "bao" },
                "target": { "deletionPolicy": "Delete" },
                "data": [{ "secretKey": "value", "remoteRef": { "key": gone, "property": "value" } }],
                "dataFrom": [{ "find": { "path": folder, "name": { "regexp": "." } } }]
            }),
        ),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "merge",
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": { "name": "bao" },
                "target": { "deletionPolicy": "Merge" },
                "data": [
                    { "secretKey": "kept", "remoteRef": { "key": kept, "property": "value" } },
                    { "secretKey": "dropped", "remoteRef": { "key": dropped, "property": "value" } }
                ]
            }),
        ),
    )
    .await;

    // ESO's metadata: created_time, current_version, delete_version_after, then custom_metadata.
    let meta = vaultrs::kv2::read_metadata(&vault, "secret", &key)
        .await
        .expect("read metadata");
    let metadata = |version: u32| {
        format!(
            r#"{{"created_time":"{}","current_version":"{version}","delete_version_after":"{}","env":"prod","owner":"team-a"}}"#,
            meta.created_time, meta.delete_version_after
        )
    };
    let want = |password: &str, version: u32| -> BTreeMap<String, String> {
        let metadata = metadata(version);
        let version = version.to_string();
        [
            ("first", "one".to_owned()),
            ("password", password.to_owned()),
            ("db-host", "h".into()),
            ("db-port", "5432".into()),
            ("db", r#"{"host":"h","port":5432}"#.into()),
            ("literal", "literal".into()),
            ("owner", "team-a".into()),
            ("version", version),
            ("metadata", metadata),
            ("host", "h".into()),
            ("port", "5432".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    };
    let pairs = |m: &BTreeMap<String, String>| -> Vec<(String, String)> {
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let first = pairs(&want("one", 1));
    let first: Vec<(&str, &str)> = first
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    wait_data(&client, &ns, "refs", &first).await;
    wait_data(
        &client,
        &ns,
        "delete",
        &[("value", "g"), (&format!("{folder}_x"), r#"{"value":"x"}"#)],
    )
    .await;
    wait_data(&client, &ns, "merge", &[("kept", "k"), ("dropped", "d")]).await;

    // A second version: `version: "1"` keeps reading the first.
    kv2_put(&vault, &key, value("two")).await;
    force_sync(&client, &ns, "refs").await;
    let second = want("two", 2);
    let second_pairs = pairs(&second);
    let second_pairs: Vec<(&str, &str)> = second_pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    wait_data(&client, &ns, "refs", &second_pairs).await;
    let es = wait_ready(&client, &ns, "refs").await;
    assert_eq!(
        ready_text(&es),
        ("SecretSynced".into(), "secret synced".into())
    );

    // Every secret deleted in Vault (metadata and all versions).
    for path in [&key, &gone, &dropped, &format!("{folder}/x")] {
        kv2_delete(&vault, path).await;
    }
    for name in ["refs", "delete", "merge"] {
        force_sync(&client, &ns, name).await;
    }
    // Retain (the default): the Secret keeps its last data and the sync fails.
    let es = wait_ready_reason(
        &client,
        &ns,
        "refs",
        ConditionStatus::False,
        "SecretSyncedError",
    )
    .await;
    let (_, message) = ready_text(&es);
    assert!(
        message.starts_with("could not get secret data from provider") && message.contains(&key),
        "{message}"
    );
    let event = wait_event(&client, &ns, "refs", "UpdateFailed").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_secret_stays(
        &client,
        &ns,
        "refs",
        Duration::from_secs(2),
        "Retain keeps the last data",
        |s| s.map(data_of).as_ref() == Some(&second),
    )
    .await;
    // Delete: every entry is gone, so is the Secret.
    wait_secret_gone(&client, &ns, "delete").await;
    let es = wait_ready_reason(
        &client,
        &ns,
        "delete",
        ConditionStatus::True,
        "SecretDeleted",
    )
    .await;
    assert_eq!(
        ready_text(&es).1,
        "secret deleted due to DeletionPolicy=Delete"
    );
    let event = wait_event_note(
        &client,
        &ns,
        "delete",
        "MissingProviderSecret",
        &["spec.data[0]", &gone],
    )
    .await;
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    wait_event_note(
        &client,
        &ns,
        "delete",
        "MissingProviderSecret",
        &["spec.dataFrom[0]"],
    )
    .await;

    // Merge: only the missing entry's key goes.
    wait_data(&client, &ns, "merge", &[("kept", "k")]).await;
    let es = wait_ready(&client, &ns, "merge").await;
    assert_eq!(
        ready_text(&es),
        ("SecretSynced".into(), "secret synced".into())
    );
}

/// An ExternalSecret reading a store of another controller class is that controller's, as is
/// the store: neither gets a status from this one, and no Secret is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_another_controller_class_and_its_readers_are_left_alone() {
    let t = setup("es-foreign").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let mut other = fake_store(&ns, "other", json!([{ "key": "k", "value": "v" }]));
    other["spec"]["controller"] = json!("another-class");
    apply(&client, &other).await;
    apply(
        &client,
        &fake_store(&ns, "ours", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    for (name, store) in [("foreign", "other"), ("mine", "ours")] {
        apply(
            &client,
            &external_secret(
                &ns,
                name,
                json!({
                    "secretStoreRef": { "name": store },
                    "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
                }),
            ),
        )
        .await;
    }
    wait_data(&client, &ns, "mine", &[("k", "v")]).await;
    wait_ready(&client, &ns, "mine").await;
    // Reconciled alongside "mine"; give it as long again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let foreign = Api::<ExternalSecret>::namespaced(client.clone(), &ns)
        .get("foreign")
        .await
        .expect("ExternalSecret");
    assert_eq!(foreign.status, None);
    assert!(
        Api::<Secret>::namespaced(client.clone(), &ns)
            .get_opt("foreign")
            .await
            .expect("get")
            .is_none()
    );
    let store = Api::<secret_sync_crd::SecretStore>::namespaced(client.clone(), &ns)
        .get("other")
        .await
        .expect("store");
    assert_eq!(store.status, None);
}

/// ESO's `syncWindows`: a `deny` window that is open holds back periodic refreshes (the store's
/// new value does not reach the Secret), while a spec change still syncs at once; an `allow`
/// window that is open lets them through. (`@every 1m` with a `1h` duration is a window that is
/// always open, as robfig/cron's constant delay reads it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_windows_hold_back_periodic_refreshes_but_not_spec_changes() {
    let t = setup("sync-windows").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let store = |value: &str| fake_store(&ns, "fake", json!([{ "key": "db", "value": value }]));
    apply(&client, &store("v1")).await;
    for (name, kind) in [("frozen", "deny"), ("open", "allow")] {
        apply(
            &client,
            &external_secret(
                &ns,
                name,
                json!({
                    "refreshInterval": "1s",
                    "secretStoreRef": { "name": "fake" },
                    "syncWindows": { "kind": kind, "windows": [{ "schedule": "@every 1m", "duration": "1h" }] },
                    "data": [{ "secretKey": "password", "remoteRef": { "key": "db" } }]
                }),
            ),
        )
        .await;
    }
    // The first sync is not a periodic refresh: both sync.
    wait_data(&client, &ns, "frozen", &[("password", "v1")]).await;
    wait_data(&client, &ns, "open", &[("password", "v1")]).await;

    apply(&client, &store("v2")).await;
    wait_data(&client, &ns, "open", &[("password", "v2")]).await;
    assert_secret_stays(
        &client,
        &ns,
        "frozen",
        Duration::from_secs(3),
        "v1 held back by the deny window",
        |s| value_of(s, "password").as_deref() == Some("v1"),
    )
    .await;

    // A spec change syncs whatever the windows say.
    patch_es(
        &client,
        &ns,
        "frozen",
        json!({ "spec": { "data": [{ "secretKey": "token", "remoteRef": { "key": "db" } }] } }),
    )
    .await;
    wait_data(&client, &ns, "frozen", &[("token", "v2")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_events_can_be_turned_off_and_failures_still_say_why() {
    let t = setup_with("quiet-events", &[], |s| s.success_events = false).await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(
        &client,
        &fake_store(&ns, "fake", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    let spec = |key: &str| {
        json!({
            "refreshInterval": "1h", "secretStoreRef": { "name": "fake" },
            "data": [{ "secretKey": "v", "remoteRef": { "key": key } }]
        })
    };
    apply(&client, &external_secret(&ns, "fine", spec("k"))).await;
    apply(&client, &external_secret(&ns, "broken", spec("missing"))).await;
    wait_ready(&client, &ns, "fine").await;
    // The failure's Warning arrives; by then the success would have had its Event too.
    wait_event(&client, &ns, "broken", "UpdateFailed").await;
    let reasons: Vec<String> = controller::events(&client, &ns)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        !reasons.iter().any(|r| r == "Created" || r == "Updated"),
        "no success Events: {reasons:?}"
    );
}
