//! PushSecrets end to end against the real apiserver, moto and OpenBao: the seed manifest pushing
//! two keys into one AWS secret (and a source change pushed at once), a Vault secret PushSecret
//! did not create left alone with ESO's error, whole-secret pushes, dropped entries and the
//! PushSecret itself deleted from the provider under `deletionPolicy: Delete`, and IfNotExists.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use secret_sync::push::{
    FINALIZER, MESSAGE_SYNCED, MESSAGE_UNCHANGED, REASON_ERRORED, REASON_SYNCED,
};
use secret_sync_crd::{ConditionStatus, PushSecret};
use secret_sync_tests::controller::{
    apply, aws_store, external_secret, fake_store, moto, setup, vault_token_store, wait_data,
    wait_event,
};
use secret_sync_tests::{Stack, repo_root, unique_name};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

const WAIT: Duration = Duration::from_secs(30);

async fn source(client: &kube::Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": name }, "stringData": data
    }))
    .expect("secret");
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await.expect("get secret") {
        None => {
            api.create(&PostParams::default(), &secret)
                .await
                .expect("create source");
        }
        Some(_) => {
            api.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "stringData": data })),
            )
            .await
            .expect("update source");
        }
    }
}

async fn wait_push_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    what: &str,
    done: impl Fn(&PushSecret) -> bool,
) -> PushSecret {
    let api: Api<PushSecret> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + WAIT;
    loop {
        let ps = api.get_opt(name).await.expect("get PushSecret");
        if let Some(ps) = &ps
            && done(ps)
        {
            return ps.clone();
        }
        assert!(
            Instant::now() < deadline,
            "PushSecret {ns}/{name}: {what} not reached within {WAIT:?}; status {:?}",
            ps.and_then(|p| p.status)
        );
        sleep(Duration::from_millis(100)).await;
    }
}

fn ready(ps: &PushSecret) -> Option<(ConditionStatus, String, String)> {
    let c = ps
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((
        c.status,
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

/// Polls until `done` holds for the value of a moto secret (`None`: absent).
async fn wait_aws(key: &str, what: &str, done: impl Fn(Option<&Value>) -> bool) -> Option<Value> {
    let sm = moto().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let value = match sm.get_secret_value().secret_id(key).send().await {
            Ok(out) => {
                let bytes = out
                    .secret_binary
                    .map(|b| b.into_inner())
                    .or(out.secret_string.map(String::into_bytes))
                    .expect("a value");
                // A JSON value, or a plain one as a JSON string.
                Some(serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                }))
            }
            Err(_) => None,
        };
        if done(value.as_ref()) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "AWS secret {key}: {what} not reached within {WAIT:?}; now {value:?}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_push_secret_writes_two_keys_into_one_aws_secret_and_follows_the_source() {
    let t = setup("push-seed").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let path = repo_root().join("tests/fixtures/seed/pushsecret-push-generated-cert.yaml");
    let mut ps: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(path).expect("seed")).expect("seed YAML");
    ps["metadata"]["namespace"] = json!(ns);
    // The remote key is per run, so runs do not meet in moto.
    let remote = unique_name("infra/tls/wildcard");
    for entry in ps["spec"]["data"].as_array_mut().expect("data") {
        entry["match"]["remoteRef"]["remoteKey"] = json!(remote);
    }
    let store = ps["spec"]["secretStoreRefs"][0]["name"]
        .as_str()
        .expect("store")
        .to_owned();
    let source_name = ps["spec"]["selector"]["secret"]["name"]
        .as_str()
        .expect("source")
        .to_owned();
    aws_store(&client, &ns, &store).await;
    source(
        &client,
        &ns,
        &source_name,
        &[("tls.crt", "cert-v1"), ("tls.key", "key-v1")],
    )
    .await;
    apply(&client, &ps).await;
    let name = ps["metadata"]["name"].as_str().expect("name");

    wait_aws(&remote, "pushed", |v| {
        v == Some(&json!({ "certificate": "cert-v1", "private_key": "key-v1" }))
    })
    .await;
    let synced = wait_push_secret(&client, &ns, name, "Ready", |ps| {
        ready(ps).is_some_and(|r| r.0 == ConditionStatus::True)
    })
    .await;
    assert_eq!(
        ready(&synced),
        Some((
            ConditionStatus::True,
            REASON_SYNCED.into(),
            MESSAGE_SYNCED.into()
        ))
    );
    let status = synced.status.expect("status");
    let entries = &status.synced_push_secrets[&format!("SecretStore/{store}")];
    assert_eq!(
        entries.keys().cloned().collect::<Vec<_>>(),
        [
            format!("{remote}/certificate"),
            format!("{remote}/private_key")
        ]
    );
    assert!(status.synced_resource_version.is_some());
    wait_event(&client, &ns, name, REASON_SYNCED).await;
    let tags = moto()
        .await
        .describe_secret()
        .secret_id(&remote)
        .send()
        .await
        .expect("describe")
        .tags
        .unwrap_or_default();
    assert!(
        tags.iter()
            .any(|t| t.key() == Some("managed-by") && t.value() == Some("external-secrets")),
        "{tags:?}"
    );

    // A rotated source is pushed on its change: within the wait, long before the 10m refresh.
    source(&client, &ns, &source_name, &[("tls.crt", "cert-v2")]).await;
    wait_aws(&remote, "the new certificate", |v| {
        v == Some(&json!({ "certificate": "cert-v2", "private_key": "key-v1" }))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_to_rules_a_template_and_reverse_unicode_push_what_eso_pushes() {
    let t = setup("push-data-to").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let prefix = unique_name("bulk");
    aws_store(&client, &ns, "aws").await;
    source(
        &client,
        &ns,
        "app",
        &[
            ("db_user", "alice"),
            ("db_pass", "pw-1"),
            ("api_U0020_key", "k-1"),
        ],
    )
    .await;
    apply(
        &client,
        &json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": { "name": "bulk", "namespace": ns },
            "spec": {
                "refreshInterval": "1h",
                "deletionPolicy": "Delete",
                "secretStoreRefs": [{ "name": "aws" }],
                "selector": { "secret": { "name": "app" } },
                "template": { "data": { "url": "db://{{ .db_user }}@db" } },
                "data": [{
                    "match": { "secretKey": "api key", "remoteRef": { "remoteKey": format!("{prefix}/api") } },
                    "conversionStrategy": "ReverseUnicode"
                }],
                "dataTo": [
                    { "storeRef": { "name": "aws" }, "match": { "regexp": "^db_" },
                      "rewrite": [{ "regexp": { "source": "^db_", "target": format!("{prefix}/db/") } }] },
                    { "storeRef": { "name": "aws" }, "remoteKey": format!("{prefix}/bundle"),
                      "match": { "regexp": "^(url|db_user)$" } }
                ]
            }
        }),
    )
    .await;

    for (key, value) in [
        ("db/user", json!("alice")),
        ("db/pass", json!("pw-1")),
        ("api", json!("k-1")),
        (
            "bundle",
            json!({ "db_user": "alice", "url": "db://alice@db" }),
        ),
    ] {
        let key = format!("{prefix}/{key}");
        wait_aws(&key, "pushed", |v| v == Some(&value)).await;
    }
    let synced = wait_push_secret(&client, &ns, "bulk", "Ready", |ps| {
        ready(ps).is_some_and(|r| r.0 == ConditionStatus::True)
    })
    .await;
    let entries = &synced.status.expect("status").synced_push_secrets["SecretStore/aws"];
    assert_eq!(
        entries.keys().cloned().collect::<Vec<_>>(),
        ["api", "bundle", "db/pass", "db/user"].map(|k| format!("{prefix}/{k}"))
    );
    assert_eq!(
        entries[&format!("{prefix}/db/pass")]
            .match_
            .secret_key
            .as_deref(),
        Some("db_pass")
    );

    // A key gone from the source leaves its rule's entries, and under Delete the provider.
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    api.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "db_pass": null } })),
    )
    .await
    .expect("remove a key");
    wait_aws(&format!("{prefix}/db/pass"), "deleted", |v| v.is_none()).await;
    wait_aws(&format!("{prefix}/db/user"), "kept", |v| {
        v == Some(&json!("alice"))
    })
    .await;

    // A rule that cannot work is reported on the status, naming the rule.
    client_patch_spec(
        &client,
        &ns,
        "bulk",
        json!({ "dataTo": [{ "storeRef": { "name": "vault" } }] }),
    )
    .await;
    let failed = wait_push_secret(&client, &ns, "bulk", "the bad rule reported", |ps| {
        ready(ps).is_some_and(|r| r.0 == ConditionStatus::False)
    })
    .await;
    assert_eq!(
        ready(&failed).map(|r| r.2),
        Some("dataTo[0]: storeRef \"vault\" not found in secretStoreRefs".into())
    );
}

async fn client_patch_spec(client: &kube::Client, ns: &str, name: &str, spec: Value) {
    Api::<PushSecret>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("patch PushSecret");
}

async fn bao_read(key: &str) -> Option<Value> {
    let vault = Stack::get().await.vault();
    vaultrs::kv2::read::<Value>(&vault, "secret", key)
        .await
        .ok()
}

async fn wait_bao(key: &str, what: &str, done: impl Fn(Option<&Value>) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = bao_read(key).await;
        if done(value.as_ref()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Vault secret {key}: {what} not reached within {WAIT:?}; now {value:?}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

fn push_secret(ns: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
        "metadata": { "name": name, "namespace": ns }, "spec": spec
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_pushes_are_marked_refuse_foreign_secrets_and_are_deleted_under_delete() {
    let t = setup("push-vault").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let stack = Stack::get().await;
    vault_token_store(&client, &ns, "bao", "secret", "v2").await;
    source(
        &client,
        &ns,
        "app",
        &[("user", "app"), ("password", "s3cr3t-push")],
    )
    .await;
    let base = unique_name("push");

    // Someone else's secret: left alone, with ESO's error.
    let theirs = format!("{base}/theirs");
    vaultrs::kv2::set(&stack.vault(), "secret", &theirs, &json!({ "keep": "me" }))
        .await
        .expect("kv put");
    apply(
        &client,
        &push_secret(&ns, "foreign", json!({
            "secretStoreRefs": [{ "name": "bao" }],
            "selector": { "secret": { "name": "app" } },
            "data": [{ "match": { "secretKey": "password",
                                  "remoteRef": { "remoteKey": theirs, "property": "password" } } }]
        })),
    )
    .await;
    // Waits for the refusal, past a moment's "could not get SecretStore" while the store is new
    // to the controller's cache.
    let failed = wait_push_secret(&client, &ns, "foreign", "Errored", |ps| {
        ready(ps)
            .is_some_and(|r| r.0 == ConditionStatus::False && r.2.starts_with("set secret failed"))
    })
    .await;
    let (_, reason, message) = ready(&failed).expect("condition");
    assert_eq!(reason, REASON_ERRORED);
    assert!(
        message.starts_with(
            "set secret failed: could not write remote ref password to target secretstore bao"
        ) && message.contains("not managed by external-secrets"),
        "{message}"
    );
    assert!(
        !message.contains("s3cr3t-push"),
        "the value is in the status"
    );
    wait_event(&client, &ns, "foreign", REASON_ERRORED).await;
    assert_eq!(bao_read(&theirs).await, Some(json!({ "keep": "me" })));

    // Ours: the whole Secret as the Vault secret, and one key as a property of another.
    let whole = format!("{base}/whole");
    let props = format!("{base}/props");
    let spec = |entries: Value| {
        json!({
            "deletionPolicy": "Delete",
            "secretStoreRefs": [{ "name": "bao" }],
            "selector": { "secret": { "name": "app" } },
            "data": entries
        })
    };
    let both = json!([
        { "match": { "remoteRef": { "remoteKey": whole } } },
        { "match": { "secretKey": "user", "remoteRef": { "remoteKey": props, "property": "user" } } },
        { "match": { "secretKey": "password", "remoteRef": { "remoteKey": props, "property": "password" } } }
    ]);
    apply(&client, &push_secret(&ns, "mine", spec(both))).await;
    wait_bao(&whole, "the whole Secret", |v| {
        v == Some(&json!({ "user": "app", "password": "s3cr3t-push" }))
    })
    .await;
    wait_bao(&props, "two properties", |v| {
        v == Some(&json!({ "user": "app", "password": "s3cr3t-push" }))
    })
    .await;
    let metadata = vaultrs::kv2::read_metadata(&stack.vault(), "secret", &props)
        .await
        .expect("metadata");
    assert_eq!(
        metadata
            .custom_metadata
            .and_then(|m| m.get("managed-by").cloned()),
        Some("external-secrets".into())
    );
    let ps = wait_push_secret(&client, &ns, "mine", "Ready", |ps| {
        ready(ps).is_some_and(|r| r.0 == ConditionStatus::True)
    })
    .await;
    assert!(
        ps.finalizers().iter().any(|f| f == FINALIZER),
        "{:?}",
        ps.finalizers()
    );

    // Dropping an entry deletes just that property.
    let fewer = json!([
        { "match": { "remoteRef": { "remoteKey": whole } } },
        { "match": { "secretKey": "user", "remoteRef": { "remoteKey": props, "property": "user" } } }
    ]);
    apply(&client, &push_secret(&ns, "mine", spec(fewer))).await;
    wait_bao(&props, "the password property deleted", |v| {
        v == Some(&json!({ "user": "app" }))
    })
    .await;

    // Deleting the PushSecret deletes what it pushed, then lets it go.
    Api::<PushSecret>::namespaced(client.clone(), &ns)
        .delete("mine", &DeleteParams::default())
        .await
        .expect("delete");
    for key in [&whole, &props] {
        wait_bao(key, "deleted", |v| v.is_none()).await;
        assert!(
            vaultrs::kv2::read_metadata(&stack.vault(), "secret", key)
                .await
                .is_err(),
            "{key}: every version and the metadata go"
        );
    }
    let api: Api<PushSecret> = Api::namespaced(client.clone(), &ns);
    let deadline = Instant::now() + WAIT;
    while api.get_opt("mine").await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "the finalizer was never removed");
        sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(bao_read(&theirs).await, Some(json!({ "keep": "me" })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_not_exists_leaves_an_existing_value_alone() {
    let t = setup("push-ifnotexists").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    vault_token_store(&client, &ns, "bao", "secret", "v2").await;
    source(&client, &ns, "app", &[("token", "first")]).await;
    let key = unique_name("push/once");
    let spec = json!({
        "updatePolicy": "IfNotExists",
        "secretStoreRefs": [{ "name": "bao" }],
        "selector": { "secret": { "name": "app" } },
        "data": [{ "match": { "secretKey": "token", "remoteRef": { "remoteKey": key, "property": "token" } } }]
    });
    apply(&client, &push_secret(&ns, "once", spec)).await;
    wait_bao(&key, "first push", |v| {
        v == Some(&json!({ "token": "first" }))
    })
    .await;
    let ps = wait_push_secret(&client, &ns, "once", "Ready", |ps| {
        ready(ps).is_some_and(|r| r.0 == ConditionStatus::True)
    })
    .await;
    assert_eq!(
        ready(&ps).map(|r| r.2),
        Some(format!("{MESSAGE_SYNCED}{MESSAGE_UNCHANGED}"))
    );
    // refreshTime has whole seconds: let one pass, so the next pass shows.
    sleep(Duration::from_millis(1100)).await;
    source(&client, &ns, "app", &[("token", "second")]).await;
    // The change is seen (a reconcile runs on the Secret's change) and deliberately not pushed.
    let api: Api<PushSecret> = Api::namespaced(client.clone(), &ns);
    let before = ps.status.and_then(|s| s.refresh_time);
    let deadline = Instant::now() + WAIT;
    while api
        .get("once")
        .await
        .expect("get")
        .status
        .and_then(|s| s.refresh_time)
        == before
    {
        assert!(
            Instant::now() < deadline,
            "no pass after the source changed"
        );
        sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(bao_read(&key).await, Some(json!({ "token": "first" })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fake_store_takes_a_push_and_serves_it_back_to_an_external_secret() {
    let t = setup("push-fake").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(
        &client,
        &fake_store(
            &ns,
            "fake",
            json!([{ "key": "defined", "value": "by the store" }]),
        ),
    )
    .await;
    source(&client, &ns, "app", &[("token", "round-trip-1")]).await;
    apply(
        &client,
        &push_secret(&ns, "to-fake", json!({
            "secretStoreRefs": [{ "name": "fake" }],
            "selector": { "secret": { "name": "app" } },
            "data": [{ "match": { "secretKey": "token", "remoteRef": { "remoteKey": "pushed/token" } } }]
        })),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "back",
            json!({
                "refreshInterval": "1s",
                "secretStoreRef": { "name": "fake" },
                "data": [{ "secretKey": "token", "remoteRef": { "key": "pushed/token" } }]
            }),
        ),
    )
    .await;
    wait_data(&client, &ns, "back", &[("token", "round-trip-1")]).await;
    // A change to the source goes through the store and back.
    source(&client, &ns, "app", &[("token", "round-trip-2")]).await;
    wait_data(&client, &ns, "back", &[("token", "round-trip-2")]).await;
}

/// A PushSecret whose stores all belong to another controller class is that controller's: this
/// one writes no status and no finalizer (ESO's finalizer has the same name), even when it
/// cannot work here. One naming a store of its own class beside it is served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_secret_of_another_controller_class_is_left_alone() {
    let t = setup("push-foreign").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let mut other = fake_store(&ns, "other", json!([]));
    other["spec"]["controller"] = json!("another-class");
    apply(&client, &other).await;
    apply(&client, &fake_store(&ns, "ours", json!([]))).await;
    source(&client, &ns, "app", &[("token", "t-1")]).await;
    let spec = |store: &str| {
        json!({
            "deletionPolicy": "Delete",
            "secretStoreRefs": [{ "name": store }],
            "selector": { "secret": { "name": "app" } },
            "data": [{ "match": { "secretKey": "token", "remoteRef": { "remoteKey": "k" } } }],
            // Not supported here: a controller serving it would report that.
            "template": { "data": { "x": "{{ .token }}" } }
        })
    };
    let mut foreign = push_secret(&ns, "foreign", spec("other"));
    foreign["spec"]["selector"] = json!({ "generatorRef": {
        "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "pw" } });
    apply(&client, &foreign).await;
    apply(&client, &push_secret(&ns, "mine", spec("ours"))).await;

    wait_push_secret(&client, &ns, "mine", "Ready", |ps| {
        ready(ps).is_some_and(|r| r.0 == ConditionStatus::True)
    })
    .await;
    // Reconciled alongside "mine"; give it as long again.
    sleep(Duration::from_secs(2)).await;
    let foreign = Api::<PushSecret>::namespaced(client.clone(), &ns)
        .get("foreign")
        .await
        .expect("PushSecret");
    assert_eq!(foreign.status, None);
    assert!(
        foreign.metadata.finalizers.is_none(),
        "{:?}",
        foreign.metadata.finalizers
    );
}

/// Deleting a namespace deletes its SecretStores alongside its PushSecrets: a PushSecret under
/// `deletionPolicy: Delete` whose store is gone cannot delete anything through it, and is let go
/// rather than held (with the namespace) forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_secret_whose_store_is_gone_is_not_held_by_its_finalizer() {
    let t = setup("push-store-gone").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(&client, &fake_store(&ns, "fake", json!([]))).await;
    source(&client, &ns, "app", &[("token", "t-1")]).await;
    apply(
        &client,
        &push_secret(
            &ns,
            "held",
            json!({
                "deletionPolicy": "Delete",
                "secretStoreRefs": [{ "name": "fake" }],
                "selector": { "secret": { "name": "app" } },
                "data": [{ "match": { "secretKey": "token", "remoteRef": { "remoteKey": "k" } } }]
            }),
        ),
    )
    .await;
    let synced = wait_push_secret(&client, &ns, "held", "Ready", |ps| {
        ready(ps).is_some_and(|r| r.0 == ConditionStatus::True)
    })
    .await;
    assert!(
        synced.finalizers().iter().any(|f| f == FINALIZER),
        "{:?}",
        synced.finalizers()
    );
    Api::<secret_sync_crd::SecretStore>::namespaced(client.clone(), &ns)
        .delete("fake", &DeleteParams::default())
        .await
        .expect("delete store");
    let api: Api<PushSecret> = Api::namespaced(client.clone(), &ns);
    api.delete("held", &DeleteParams::default())
        .await
        .expect("delete PushSecret");
    let deadline = Instant::now() + WAIT;
    while api.get_opt("held").await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "the PushSecret was held");
        sleep(Duration::from_millis(100)).await;
    }
}

/// Per-object metric series go with their objects: ExternalSecrets, SecretStores and PushSecrets
/// deleted (no finalizer of ours on any of them) leave no series naming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_objects_leave_no_metric_series_behind() {
    let t = setup("series-gone").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(
        &client,
        &fake_store(&ns, "fake", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    source(&client, &ns, "app", &[("token", "t")]).await;
    apply(
        &client,
        &push_secret(&ns, "push", json!({
            "secretStoreRefs": [{ "name": "fake" }],
            "selector": { "secret": { "name": "app" } },
            "data": [{ "match": { "secretKey": "token", "remoteRef": { "remoteKey": "pushed" } } }]
        })),
    )
    .await;
    let readers: Vec<String> = (0..3).map(|i| format!("reader-{i}")).collect();
    for name in &readers {
        apply(
            &client,
            &external_secret(
                &ns,
                name,
                json!({
                    "refreshInterval": "1h",
                    "secretStoreRef": { "name": "fake" },
                    "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
                }),
            ),
        )
        .await;
    }
    for name in &readers {
        wait_data(&client, &ns, name, &[("k", "v")]).await;
    }
    wait_push_secret(&client, &ns, "push", "Ready", |ps| {
        ready(ps).is_some_and(|r| r.0 == ConditionStatus::True)
    })
    .await;
    // Series of an object name it and its namespace.
    let named = |name: &str| format!("name=\"{name}\",namespace=\"{ns}\"");
    let series = |text: &str, name: &str| text.lines().filter(|l| l.contains(&named(name))).count();
    let metrics = &t.controller.metrics;
    let deadline = Instant::now() + WAIT;
    loop {
        let text = metrics.encode().expect("metrics");
        let all_there = readers.iter().all(|n| series(&text, n) > 0)
            && series(&text, "push") > 0
            && series(&text, "fake") > 0;
        if all_there {
            break;
        }
        assert!(Instant::now() < deadline, "series of every object:\n{text}");
        sleep(Duration::from_millis(100)).await;
    }

    for name in &readers {
        Api::<secret_sync_crd::ExternalSecret>::namespaced(client.clone(), &ns)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete ExternalSecret");
    }
    Api::<PushSecret>::namespaced(client.clone(), &ns)
        .delete("push", &DeleteParams::default())
        .await
        .expect("delete PushSecret");
    Api::<secret_sync_crd::SecretStore>::namespaced(client.clone(), &ns)
        .delete("fake", &DeleteParams::default())
        .await
        .expect("delete SecretStore");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics.encode().expect("metrics");
        let left: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!("namespace=\"{ns}\"")) && l.contains("name=\""))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "series left for deleted objects:\n{}",
            left.join("\n")
        );
        sleep(Duration::from_millis(100)).await;
    }
}

/// ESO's `PushSecretMetadata` for Secrets Manager: `description`, `kmsKeyId` and `tags` on the
/// secret PushSecret creates, the `tags` kept on later pushes; `resourcePolicy` from a ConfigMap
/// (a missing one is named on the status), `replicationLocations` kept to exactly the regions
/// listed, and a policy no longer given removed, as ESO does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_push_metadata_sets_description_key_tags_policy_and_replicas() {
    let t = setup("push-meta").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    aws_store(&client, &ns, "aws").await;
    source(&client, &ns, "app", &[("password", "meta-1")]).await;
    let remote = unique_name("push/meta");
    let entry = |tags: Value, extra: Value| {
        let mut spec = json!({ "description": "the app's password", "kmsKeyId": "alias/team-key", "tags": tags });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        json!([{ "match": { "secretKey": "password", "remoteRef": { "remoteKey": remote } },
                 "metadata": { "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
                               "kind": "PushSecretMetadata", "spec": spec } }])
    };
    apply(
        &client,
        &push_secret(
            &ns,
            "meta",
            json!({
                "refreshInterval": "1h",
                "secretStoreRefs": [{ "name": "aws" }],
                "selector": { "secret": { "name": "app" } },
                "data": entry(json!({ "team": "db", "env": "prod" }), json!({}))
            }),
        ),
    )
    .await;
    wait_aws(&remote, "pushed", |v| v == Some(&json!("meta-1"))).await;
    let sm = moto().await;
    let tags_of = |d: &aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput| {
        let mut tags: Vec<(String, String)> = d
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        tags.sort();
        tags
    };
    let described = sm
        .describe_secret()
        .secret_id(&remote)
        .send()
        .await
        .expect("describe");
    assert_eq!(described.description(), Some("the app's password"));
    assert_eq!(described.kms_key_id(), Some("alias/team-key"));
    assert_eq!(
        tags_of(&described),
        [
            ("env", "prod"),
            ("managed-by", "external-secrets"),
            ("team", "db")
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );

    // New tags: the dropped one is removed, the changed one changed, managed-by stays.
    client_patch_spec(
        &client,
        &ns,
        "meta",
        json!({ "data": entry(json!({ "team": "payments" }), json!({})) }),
    )
    .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let described = sm
            .describe_secret()
            .secret_id(&remote)
            .send()
            .await
            .expect("describe");
        let tags = tags_of(&described);
        if tags
            == [("managed-by", "external-secrets"), ("team", "payments")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tags kept as the metadata says: {tags:?}"
        );
        sleep(Duration::from_millis(100)).await;
    }

    // A resource policy from a ConfigMap that is not there yet: the status names it.
    let policy = |sid: &str| {
        json!({ "Version": "2012-10-17", "Statement": [{ "Sid": sid, "Effect": "Deny",
            "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*" }] })
    };
    let with_policy = |regions: Value| {
        json!({ "data": entry(json!({ "team": "payments" }), json!({
            "resourcePolicy": { "blockPublicPolicy": true,
                "policySourceRef": { "kind": "ConfigMap", "name": "policy", "key": "policy.json" } },
            "replicationLocations": regions })) })
    };
    client_patch_spec(&client, &ns, "meta", with_policy(json!(["eu-west-1"]))).await;
    let failed = wait_push_secret(&client, &ns, "meta", "refused", |ps| {
        ready(ps).is_some_and(|r| r.0 == ConditionStatus::False)
    })
    .await;
    let (_, reason, message) = ready(&failed).expect("condition");
    assert_eq!(reason, REASON_ERRORED);
    assert!(message.contains("policy"), "{message}");
    // The ConfigMap arrives: the policy is put, and the secret replicated to eu-west-1.
    apply(
        &client,
        &json!({ "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "policy", "namespace": ns },
            "data": { "policy.json": policy("first").to_string() } }),
    )
    .await;
    let state = || async {
        let policy = sm
            .get_resource_policy()
            .secret_id(&remote)
            .send()
            .await
            .expect("get policy")
            .resource_policy
            .and_then(|p| serde_json::from_str::<Value>(&p).ok());
        let described = sm
            .describe_secret()
            .secret_id(&remote)
            .send()
            .await
            .expect("describe");
        let mut regions: Vec<String> = described
            .replication_status()
            .iter()
            .filter_map(|r| r.region().map(str::to_owned))
            .collect();
        regions.sort();
        (policy, regions)
    };
    let until = |want: (Option<Value>, Vec<&'static str>), what: &'static str| {
        let state = &state;
        async move {
            let want = (
                want.0,
                want.1.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>(),
            );
            let deadline = Instant::now() + WAIT;
            loop {
                let now = state().await;
                if now == want {
                    break;
                }
                assert!(Instant::now() < deadline, "{what}: {now:?}");
                sleep(Duration::from_millis(200)).await;
            }
        }
    };
    until(
        (Some(policy("first")), vec!["eu-west-1"]),
        "policy put, replicated",
    )
    .await;
    wait_push_secret(&client, &ns, "meta", "ready again", |ps| {
        ready(ps).is_some_and(|r| r.0 == ConditionStatus::True)
    })
    .await;
    // Another region instead: eu-west-1 goes, us-west-2 comes.
    client_patch_spec(&client, &ns, "meta", with_policy(json!(["us-west-2"]))).await;
    until(
        (Some(policy("first")), vec!["us-west-2"]),
        "replicas follow the list",
    )
    .await;
    // The policy no longer given: removed, as ESO removes it.
    client_patch_spec(
        &client,
        &ns,
        "meta",
        json!({ "data": entry(json!({ "team": "payments" }), json!({ "replicationLocations": ["us-west-2"] })) }),
    )
    .await;
    until((None, vec!["us-west-2"]), "the policy removed").await;
}

/// ESO's `checkAndSet.required` on a KV v2 mount configured with `cas_required`: pushes carry
/// the version they replace and go through, a first write and an update alike; a store without
/// it is refused by OpenBao with its own message. What was pushed is read back through ESO's
/// `spec.provider.openBao` store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_set_pushes_into_a_cas_required_mount_through_an_openbao_store() {
    let t = setup("push-cas").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let stack = Stack::get().await;
    let mount = unique_name("cas");
    stack.bao(&["secrets", "enable", &format!("-path={mount}"), "kv-v2"]);
    stack.bao(&["write", &format!("{mount}/config"), "cas_required=true"]);
    let token: Secret = serde_json::from_value(json!({
        "metadata": { "name": "bao-token" },
        "stringData": { "token": stack.var("VAULT_TOKEN") }
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &token)
        .await
        .expect("token Secret");
    for (name, cas) in [("cas", true), ("plain", false)] {
        let mut vault = json!({
            "server": stack.var("VAULT_ADDR"), "path": mount, "version": "v2",
            "auth": { "tokenSecretRef": { "name": "bao-token", "key": "token" } }
        });
        if cas {
            vault["checkAndSet"] = json!({ "required": true });
        }
        apply(
            &client,
            &json!({
                "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                "metadata": { "name": name, "namespace": ns },
                "spec": { "provider": { "vault": vault } }
            }),
        )
        .await;
    }
    // ESO's openBao block, read by an ExternalSecret.
    apply(
        &client,
        &json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": { "name": "bao", "namespace": ns },
            "spec": { "provider": { "openBao": {
                "server": stack.var("VAULT_ADDR"), "path": mount,
                "auth": { "tokenSecretRef": { "name": "bao-token", "key": "token" } }
            } } }
        }),
    )
    .await;
    source(&client, &ns, "app", &[("token", "first")]).await;
    for name in ["cas", "plain"] {
        apply(
            &client,
            &push_secret(&ns, name, json!({
                "refreshInterval": "1h",
                "secretStoreRefs": [{ "name": name }],
                "selector": { "secret": { "name": "app" } },
                "data": [{ "match": { "secretKey": "token", "remoteRef": { "remoteKey": format!("pushed-{name}"), "property": "token" } } }]
            })),
        )
        .await;
    }
    wait_push_secret(&client, &ns, "cas", "synced", |ps| {
        ready(ps).is_some_and(|r| r.0 == ConditionStatus::True)
    })
    .await;
    let refused = wait_push_secret(&client, &ns, "plain", "refused", |ps| {
        ready(ps).is_some_and(|r| r.0 == ConditionStatus::False)
    })
    .await;
    let message = ready(&refused).map(|r| r.2).unwrap_or_default();
    assert!(message.contains("check-and-set"), "{message}");

    apply(
        &client,
        &external_secret(
            &ns,
            "back",
            json!({
                "refreshInterval": "1s",
                "secretStoreRef": { "name": "bao" },
                "data": [{ "secretKey": "token", "remoteRef": { "key": "pushed-cas", "property": "token" } }]
            }),
        ),
    )
    .await;
    wait_data(&client, &ns, "back", &[("token", "first")]).await;
    // An update replaces version 1 with check-and-set too, and the openBao store reads it back.
    source(&client, &ns, "app", &[("token", "second")]).await;
    wait_data(&client, &ns, "back", &[("token", "second")]).await;
}
