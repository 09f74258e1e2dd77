//! The `kubernetes` provider on the local apiserver: copies from another namespace with a
//! ServiceAccount's token, from a "remote" cluster through a kubeconfig (`authRef`), `find` by
//! labels and by name, PushSecret into Secrets, and the watch that makes a copy follow its
//! source at once (refresh intervals here are an hour: only the watch can explain a follow).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::config::Kubeconfig;
use secret_sync_crd::{ConditionStatus, SecretStore};
use secret_sync_tests::cleanup::Cleanup;
use secret_sync_tests::controller::{
    TestNamespace, apply, data_of, external_secret, setup, wait_ready, wait_secret,
};
use secret_sync_tests::{Stack, ensure_namespace, unique_name};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

const WAIT: Duration = Duration::from_secs(30);

/// The local apiserver's address and CA, as the stack's kubeconfig has them.
fn apiserver(stack: &Stack) -> (String, String) {
    let kubeconfig = Kubeconfig::read_from(stack.var("KUBECONFIG")).expect("kubeconfig");
    let cluster = kubeconfig.clusters[0].cluster.clone().expect("a cluster");
    (
        cluster.server.expect("a server"),
        cluster.certificate_authority_data.expect("inline CA data"),
    )
}

/// A namespace holding the "remote" Secrets, and a ServiceAccount in the test's namespace that
/// may `verbs` Secrets there (and nothing else).
async fn remote_namespace(t: &TestNamespace, account: &str, verbs: &[&str]) -> (String, Cleanup) {
    let remote = unique_name("k8s-remote");
    ensure_namespace(&t.client, &remote).await;
    let guard = Cleanup::namespace(&remote);
    apply(
        &t.client,
        &json!({ "apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": { "name": account, "namespace": t.ns } }),
    )
    .await;
    apply(
        &t.client,
        &json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                 "metadata": { "name": "secret-reader", "namespace": remote },
                 "rules": [{ "apiGroups": [""], "resources": ["secrets"], "verbs": verbs }] }),
    )
    .await;
    apply(
        &t.client,
        &json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": { "name": "secret-reader", "namespace": remote },
                 "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader" },
                 "subjects": [{ "kind": "ServiceAccount", "name": account, "namespace": t.ns }] }),
    )
    .await;
    (remote, guard)
}

async fn put_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    labels: &[(&str, &str)],
    data: &[(&str, &str)],
) {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("secret-sync-tests").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": { "name": name, "labels": labels },
                "stringData": data
            })),
        )
        .await
        .expect("apply remote secret");
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Waits until the target Secret's data is `want`; the time it took.
async fn follows(
    client: &kube::Client,
    ns: &str,
    name: &str,
    want: &BTreeMap<String, String>,
) -> Duration {
    let started = Instant::now();
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    loop {
        let got = api
            .get_opt(name)
            .await
            .expect("get target")
            .map(|s| data_of(&s));
        if got.as_ref() == Some(want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < WAIT,
            "{ns}/{name} did not follow its source within {WAIT:?}: keys now {:?}",
            got.map(|g| g.into_keys().collect::<Vec<_>>())
        );
        sleep(Duration::from_millis(20)).await;
    }
}

async fn store_ready(client: &kube::Client, ns: &str, name: &str) -> (ConditionStatus, String) {
    let api: Api<SecretStore> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + WAIT;
    loop {
        let condition = api
            .get_opt(name)
            .await
            .expect("get store")
            .and_then(|s| s.status)
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"));
        if let Some(c) = condition {
            return (c.status, c.message.unwrap_or_default());
        }
        assert!(
            Instant::now() < deadline,
            "store {name} got no Ready condition"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_from_another_namespace_follows_its_source_at_once() {
    let t = setup("k8s-copy").await;
    let stack = Stack::get().await;
    let (remote, _remote) = remote_namespace(&t, "reader", &["get", "list", "watch"]).await;
    let (server, ca) = apiserver(stack);
    apply(
        &t.client,
        &json!({ "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                 "metadata": { "name": "k8s", "namespace": t.ns },
                 "spec": { "provider": { "kubernetes": {
                     "remoteNamespace": remote,
                     "server": { "url": server, "caBundle": ca },
                     "auth": { "serviceAccount": { "name": "reader" } } } } } }),
    )
    .await;
    put_secret(
        &t.client,
        &remote,
        "db",
        &[],
        &[
            ("username", "app"),
            ("password", "pw-1"),
            ("config", r#"{"port":5432}"#),
        ],
    )
    .await;
    put_secret(
        &t.client,
        &remote,
        "web-a",
        &[("tier", "web")],
        &[("token", "a-1")],
    )
    .await;
    put_secret(
        &t.client,
        &remote,
        "web-b",
        &[("tier", "web")],
        &[("token", "b-1")],
    )
    .await;
    put_secret(&t.client, &remote, "other", &[], &[("token", "o-1")]).await;
    assert_eq!(
        store_ready(&t.client, &t.ns, "k8s").await.0,
        ConditionStatus::True
    );

    // ESO's documented shapes: a property, a gjson path into a key, the whole data, extract.
    apply(
        &t.client,
        &external_secret(&t.ns, "copy", json!({
            "refreshInterval": "1h",
            "secretStoreRef": { "name": "k8s", "kind": "SecretStore" },
            "target": { "name": "copy" },
            "data": [
                { "secretKey": "user", "remoteRef": { "key": "db", "property": "username" } },
                { "secretKey": "port", "remoteRef": { "key": "db", "property": "config.port" } },
                { "secretKey": "whole", "remoteRef": { "key": "db" } }
            ],
            "dataFrom": [{ "extract": { "key": "db" } }]
        })),
    )
    .await;
    wait_ready(&t.client, &t.ns, "copy").await;
    let whole = |pw: &str| {
        format!(r#"{{"config":"{{\"port\":5432}}","password":"{pw}","username":"app"}}"#)
    };
    let want = |pw: &str| {
        strings(&[
            ("user", "app"),
            ("port", "5432"),
            ("whole", &whole(pw)),
            ("username", "app"),
            ("password", pw),
            ("config", r#"{"port":5432}"#),
        ])
    };
    follows(&t.client, &t.ns, "copy", &want("pw-1")).await;

    // Binary data (a Java keystore, say) is copied byte for byte, by property and by extract.
    let keystore: &[u8] = b"\xfe\xed\xfe\xed\x00\x02\xff";
    Api::<Secret>::namespaced(t.client.clone(), &remote)
        .patch(
            "keystore",
            &PatchParams::apply("secret-sync-tests").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "keystore" },
                "data": { "store.jks": base64::engine::general_purpose::STANDARD.encode(keystore) }
            })),
        )
        .await
        .expect("apply keystore");
    apply(
        &t.client,
        &external_secret(&t.ns, "keystore", json!({
            "refreshInterval": "1h",
            "secretStoreRef": { "name": "k8s", "kind": "SecretStore" },
            "target": { "name": "keystore" },
            "data": [{ "secretKey": "copy.jks", "remoteRef": { "key": "keystore", "property": "store.jks" } }],
            "dataFrom": [{ "extract": { "key": "keystore" } }]
        })),
    )
    .await;
    wait_ready(&t.client, &t.ns, "keystore").await;
    let copied = Api::<Secret>::namespaced(t.client.clone(), &t.ns)
        .get("keystore")
        .await
        .expect("get keystore copy")
        .data
        .unwrap_or_default();
    for key in ["copy.jks", "store.jks"] {
        assert_eq!(
            copied.get(key).map(|v| v.0.as_slice()),
            Some(keystore),
            "{key}"
        );
    }

    // find by labels (ESO's `tags`) and by name.
    apply(
        &t.client,
        &external_secret(
            &t.ns,
            "found",
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": { "name": "k8s", "kind": "SecretStore" },
                "target": { "name": "found" },
                "dataFrom": [
                    { "find": { "tags": { "tier": "web" } },
                      "rewrite": [{ "regexp": { "source": "^", "target": "label-" } }] },
                    { "find": { "name": { "regexp": "^oth" } } }
                ]
            }),
        ),
    )
    .await;
    wait_ready(&t.client, &t.ns, "found").await;
    let found = |b: &str| {
        strings(&[
            ("label-web-a", r#"{"token":"a-1"}"#),
            ("label-web-b", &format!(r#"{{"token":"{b}"}}"#)),
            ("other", r#"{"token":"o-1"}"#),
        ])
    };
    follows(&t.client, &t.ns, "found", &found("b-1")).await;

    // Rotations reach the copies through the watch, not the hourly refresh.
    let mut latencies = Vec::new();
    for round in 2..=12 {
        let pw = format!("pw-{round}");
        put_secret(
            &t.client,
            &remote,
            "db",
            &[],
            &[
                ("username", "app"),
                ("password", &pw),
                ("config", r#"{"port":5432}"#),
            ],
        )
        .await;
        latencies.push(follows(&t.client, &t.ns, "copy", &want(&pw)).await);
    }
    put_secret(
        &t.client,
        &remote,
        "web-b",
        &[("tier", "web")],
        &[("token", "b-2")],
    )
    .await;
    follows(&t.client, &t.ns, "found", &found("b-2")).await;
    // A Secret that newly carries the label is found too.
    put_secret(
        &t.client,
        &remote,
        "web-c",
        &[("tier", "web")],
        &[("token", "c-1")],
    )
    .await;
    let mut with_c = found("b-2");
    with_c.insert("label-web-c".into(), r#"{"token":"c-1"}"#.into());
    follows(&t.client, &t.ns, "found", &with_c).await;
    // The first rotation may come before the store's watch began (it starts at the next look
    // at the stores, within a second); the watch's first list then catches it up.
    eprintln!(
        "kubernetes provider: first rotation after the store appeared {:?}",
        latencies[0]
    );
    let mut latencies = latencies.split_off(1);
    latencies.sort();
    eprintln!(
        "kubernetes provider: source rotation to copy, median {:?} of {} (max {:?})",
        latencies[latencies.len() / 2],
        latencies.len(),
        latencies[latencies.len() - 1]
    );

    // A deleted source is a deleted key at the provider: with ESO's default deletionPolicy
    // (Retain) the copy keeps its data and the ExternalSecret says why.
    Api::<Secret>::namespaced(t.client.clone(), &remote)
        .delete("db", &DeleteParams::default())
        .await
        .expect("delete source");
    let deadline = Instant::now() + WAIT;
    loop {
        let es = secret_sync_tests::controller::ready_of(
            &Api::<secret_sync_crd::ExternalSecret>::namespaced(t.client.clone(), &t.ns)
                .get("copy")
                .await
                .expect("get es"),
        )
        .cloned();
        if es
            .as_ref()
            .is_some_and(|c| c.status == ConditionStatus::False)
        {
            let message = es.and_then(|c| c.message).unwrap_or_default();
            assert!(message.contains("db"), "{message}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a deleted source was not noticed"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_reaches_a_remote_cluster_and_a_push_writes_there() {
    let t = setup("k8s-kubeconfig").await;
    let stack = Stack::get().await;
    let (remote, _remote) = remote_namespace(
        &t,
        "pusher",
        &["get", "list", "watch", "create", "update", "delete"],
    )
    .await;
    let (server, ca) = apiserver(stack);
    // A token for the ServiceAccount, as a remote cluster's admin would hand one out.
    let token: Value = t
        .client
        .request(
            http::Request::post(format!(
                "/api/v1/namespaces/{}/serviceaccounts/pusher/token",
                t.ns
            ))
            .header("content-type", "application/json")
            .body(
                serde_json::to_vec(&json!({
                    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": { "expirationSeconds": 3600 }
                }))
                .expect("json"),
            )
            .expect("request"),
        )
        .await
        .expect("token request");
    let token = token["status"]["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: remote\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: pusher\n  user:\n    token: {token}\ncontexts:\n- name: remote\n  context: {{cluster: remote, user: pusher}}\ncurrent-context: remote\n"
    );
    put_secret(
        &t.client,
        &t.ns,
        "remote-kubeconfig",
        &[],
        &[("config", &kubeconfig)],
    )
    .await;
    apply(
        &t.client,
        &json!({ "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                 "metadata": { "name": "remote", "namespace": t.ns },
                 "spec": { "provider": { "kubernetes": {
                     "remoteNamespace": remote,
                     "authRef": { "name": "remote-kubeconfig", "key": "config" } } } } }),
    )
    .await;
    assert_eq!(
        store_ready(&t.client, &t.ns, "remote").await.0,
        ConditionStatus::True
    );

    put_secret(&t.client, &remote, "api", &[], &[("key", "k-1")]).await;
    apply(
        &t.client,
        &external_secret(
            &t.ns,
            "api",
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": { "name": "remote", "kind": "SecretStore" },
                "target": { "name": "api" },
                "data": [{ "secretKey": "key", "remoteRef": { "key": "api", "property": "key" } }]
            }),
        ),
    )
    .await;
    wait_secret(&t.client, &t.ns, "api", |s| {
        data_of(s).get("key").map(String::as_str) == Some("k-1")
    })
    .await;
    put_secret(&t.client, &remote, "api", &[], &[("key", "k-2")]).await;
    follows(&t.client, &t.ns, "api", &strings(&[("key", "k-2")])).await;

    // The same remote through a bearer token kept in a Secret, trusting a CA from a ConfigMap.
    put_secret(&t.client, &t.ns, "pusher-token", &[], &[("token", &token)]).await;
    let ca_pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&ca)
            .expect("CA data is base64"),
    )
    .expect("PEM");
    apply(
        &t.client,
        &json!({ "apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": { "name": "cluster-ca", "namespace": t.ns },
                 "data": { "ca.crt": ca_pem } }),
    )
    .await;
    apply(
        &t.client,
        &json!({ "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                 "metadata": { "name": "by-token", "namespace": t.ns },
                 "spec": { "provider": { "kubernetes": {
                     "remoteNamespace": remote,
                     "server": { "url": server,
                                 "caProvider": { "type": "ConfigMap", "name": "cluster-ca", "key": "ca.crt" } },
                     "auth": { "token": { "bearerToken": { "name": "pusher-token", "key": "token" } } } } } } }),
    )
    .await;
    assert_eq!(
        store_ready(&t.client, &t.ns, "by-token").await.0,
        ConditionStatus::True
    );
    apply(
        &t.client,
        &external_secret(
            &t.ns,
            "api-by-token",
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": { "name": "by-token", "kind": "SecretStore" },
                "target": { "name": "api-by-token" },
                "data": [{ "secretKey": "key", "remoteRef": { "key": "api", "property": "key" } }]
            }),
        ),
    )
    .await;
    follows(
        &t.client,
        &t.ns,
        "api-by-token",
        &strings(&[("key", "k-2")]),
    )
    .await;
    put_secret(&t.client, &remote, "api", &[], &[("key", "k-3")]).await;
    follows(
        &t.client,
        &t.ns,
        "api-by-token",
        &strings(&[("key", "k-3")]),
    )
    .await;
    follows(&t.client, &t.ns, "api", &strings(&[("key", "k-3")])).await;

    // PushSecret: one key into a property of a remote Secret, labelled by its metadata; with
    // deletionPolicy Delete, removing the PushSecret removes what it wrote.
    put_secret(
        &t.client,
        &t.ns,
        "local",
        &[("team", "db")],
        &[("password", "local-1")],
    )
    .await;
    let binary: &[u8] = b"\x00\xff\xfe";
    Api::<Secret>::namespaced(t.client.clone(), &t.ns)
        .patch(
            "local",
            &PatchParams::apply("secret-sync-tests-binary"),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "local" },
                "data": { "blob": base64::engine::general_purpose::STANDARD.encode(binary) }
            })),
        )
        .await
        .expect("add a binary key");
    apply(
        &t.client,
        &json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": { "name": "push", "namespace": t.ns },
            "spec": {
                "refreshInterval": "1h",
                "deletionPolicy": "Delete",
                "secretStoreRefs": [{ "name": "remote", "kind": "SecretStore" }],
                "selector": { "secret": { "name": "local" } },
                "data": [{
                    "match": { "secretKey": "password",
                               "remoteRef": { "remoteKey": "pushed", "property": "db-password" } },
                    "metadata": { "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
                                  "kind": "PushSecretMetadata",
                                  "spec": { "labels": { "pushed-by": "secret-sync" } } }
                }, {
                    // No key and no property: the whole Secret, as it is.
                    "match": { "remoteRef": { "remoteKey": "whole" } }
                }]
            }
        }),
    )
    .await;
    let remote_secrets: Api<Secret> = Api::namespaced(t.client.clone(), &remote);
    let deadline = Instant::now() + WAIT;
    let pushed = loop {
        if let Some(s) = remote_secrets.get_opt("pushed").await.expect("get pushed")
            && data_of(&s).get("db-password").map(String::as_str) == Some("local-1")
        {
            break s;
        }
        assert!(Instant::now() < deadline, "the push did not arrive");
        sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        pushed
            .metadata
            .labels
            .unwrap_or_default()
            .get("pushed-by")
            .map(String::as_str),
        Some("secret-sync")
    );
    let whole = remote_secrets
        .get("whole")
        .await
        .expect("the whole Secret pushed");
    let data = whole.data.unwrap_or_default();
    assert_eq!(data.get("blob").map(|v| v.0.as_slice()), Some(binary));
    assert_eq!(
        data.get("password").map(|v| v.0.as_slice()),
        Some(&b"local-1"[..])
    );
    assert_eq!(
        whole
            .metadata
            .labels
            .unwrap_or_default()
            .get("team")
            .map(String::as_str),
        Some("db"),
        "the source's labels are copied"
    );
    Api::<secret_sync_crd::PushSecret>::namespaced(t.client.clone(), &t.ns)
        .delete("push", &DeleteParams::default())
        .await
        .expect("delete PushSecret");
    let deadline = Instant::now() + WAIT;
    while remote_secrets
        .get_opt("pushed")
        .await
        .expect("get pushed")
        .is_some()
        || remote_secrets
            .get_opt("whole")
            .await
            .expect("get whole")
            .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the pushed Secret was not deleted"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_that_cannot_work_say_why() {
    let t = setup("k8s-refused").await;
    let stack = Stack::get().await;
    let (server, ca) = apiserver(stack);
    // A kubeconfig that would run a command in the controller.
    let exec = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: {server}, certificate-authority-data: {ca}}}\nusers:\n- name: u\n  user:\n    exec: {{apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, 'touch /tmp/pwned']}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
    );
    put_secret(
        &t.client,
        &t.ns,
        "exec-kubeconfig",
        &[],
        &[("config", &exec)],
    )
    .await;
    // A ServiceAccount without any right in the remote namespace.
    apply(
        &t.client,
        &json!({ "apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": { "name": "nobody", "namespace": t.ns } }),
    )
    .await;
    let stores = [
        (
            "exec",
            json!({ "authRef": { "name": "exec-kubeconfig", "key": "config" } }),
            "exec credential plugin",
        ),
        (
            "no-auth",
            json!({ "server": { "url": server } }),
            "no auth provider given",
        ),
        (
            "no-right",
            json!({ "server": { "url": server, "caBundle": ca },
                            "auth": { "serviceAccount": { "name": "nobody" } } }),
            "not allowed to get secrets",
        ),
    ];
    for (name, spec, _) in &stores {
        apply(
            &t.client,
            &json!({ "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                     "metadata": { "name": name, "namespace": t.ns },
                     "spec": { "provider": { "kubernetes": spec } } }),
        )
        .await;
    }
    for (name, _, why) in &stores {
        let (status, message) = store_ready(&t.client, &t.ns, name).await;
        assert_eq!(status, ConditionStatus::False, "{name}: {message}");
        assert!(message.contains(why), "{name}: {message}");
    }
    assert!(
        !std::path::Path::new("/tmp/pwned").exists(),
        "the kubeconfig's command ran"
    );
}
