//! Secret hygiene, proven end to end: no secret value reaches a log line, an Event, a status, a
//! metric or an error message, whatever happens to the sync.
//!
//! The controller runs in this process with every log of our crates captured at TRACE level as
//! JSON. The provider (AWS Secrets Manager on moto) holds distinctive canary values; the
//! controller syncs them, follows a rotation, and fails in the ways that tend to quote what they
//! choke on: a property looked up in a value that is not JSON, a value that is not base64,
//! templates misusing a value, a provider secret deleted under `deletionPolicy: Retain`; and a
//! PushSecret pushes a canary, then fails on a non-JSON secret and on one it did not create;
//! generators make a password and call a webhook with a canary credential that answers a canary
//! where a JSON object belongs, or does not answer at all. Then
//! every output is searched for every canary, in the forms a value would take if it leaked
//! (plain, base64 as in a Secret body, hex, a Debug byte list).
//!
//! This is its own test binary because it installs the process-wide tracing subscriber.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use secret_sync::{ApiView, Engine, KubeReferents, NoObserver, Settings, Trigger};
use secret_sync_crd::{ConditionStatus, ExternalSecret, PushSecret, SecretStore};
use secret_sync_providers::BuildOptions;
use secret_sync_tests::controller::{
    apply, aws_store, create_aws_secret, data_of, delete_aws_secret, events, external_secret,
    force_sync, moto, put_aws_secret, ready_of, setup, wait_for, wait_ready, wait_secret,
};
use secret_sync_tests::{Stack, unique_name};
use serde_json::json;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Log lines, as written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Captures every log of our crates, at TRACE, as JSON, for the rest of the process.
fn capture_logs() -> Captured {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::new(
            "secret_sync=trace,secret_sync_controller=trace,secret_sync_providers=trace",
        ))
        .with_writer(captured.clone())
        .with_ansi(false)
        .init();
    captured
}

/// A value no code, fixture or log line contains by accident.
fn canary() -> String {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("canary-{random:016x}")
}

/// The forms a leaked value would take: as text, base64 (a Secret body), hex, a Debug byte list.
fn leaked_forms(canary: &str) -> Vec<String> {
    let bytes = canary.as_bytes();
    vec![
        canary.to_owned(),
        STANDARD.encode(bytes),
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
        format!("{bytes:?}"),
    ]
}

/// Fails if any form of any canary occurs in `text`.
fn assert_clean(what: &str, text: &str, canaries: &[String]) {
    for canary in canaries {
        for form in leaked_forms(canary) {
            assert!(
                !text.contains(&form),
                "{what} reveals a secret value ({form:?}):\n{}",
                excerpt(text, &form)
            );
        }
    }
}

fn excerpt(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap_or_default();
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(300)
        .map_or(0, |(i, _)| i);
    let end = (at + needle.len() + 300).min(text.len());
    text.get(start..end).unwrap_or(text).to_owned()
}

/// Waits until an ExternalSecret is Ready=False and returns its condition message.
async fn wait_failed(client: &kube::Client, ns: &str, name: &str) -> String {
    let es = wait_for(client, ns, name, |es| {
        ready_of(es).is_some_and(|c| c.status == ConditionStatus::False)
    })
    .await;
    ready_of(&es)
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

/// The local apiserver's address and CA data, as the stack's kubeconfig has them.
fn stack_apiserver(stack: &Stack) -> (String, String) {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(stack.var("KUBECONFIG")).expect("kubeconfig");
    let cluster = kubeconfig.clusters[0].cluster.clone().expect("a cluster");
    (
        cluster.server.expect("a server"),
        cluster.certificate_authority_data.expect("inline CA data"),
    )
}

/// A SecretStore `k8s` reading `ns`'s own Secrets as a ServiceAccount allowed to.
async fn kubernetes_store(client: &kube::Client, ns: &str, (server, ca): (String, String)) {
    for object in [
        json!({ "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": { "name": "k8s-reader", "namespace": ns } }),
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": { "name": "k8s-reader", "namespace": ns },
                "rules": [{ "apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"] }] }),
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": { "name": "k8s-reader", "namespace": ns },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "k8s-reader" },
                "subjects": [{ "kind": "ServiceAccount", "name": "k8s-reader", "namespace": ns }] }),
        json!({ "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                "metadata": { "name": "k8s", "namespace": ns },
                "spec": { "provider": { "kubernetes": {
                    "remoteNamespace": ns,
                    "server": { "url": server, "caBundle": ca },
                    "auth": { "serviceAccount": { "name": "k8s-reader" } } } } } }),
    ] {
        apply(client, &object).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_reaches_logs_events_status_metrics_or_errors() {
    let logs = capture_logs();
    let t = setup("hygiene").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    aws_store(&client, &ns, "aws").await;

    let first = canary();
    let rotated = canary();
    let not_json = canary();
    let not_base64 = format!("{}!", canary());
    let nested = canary();
    let templated = canary();
    let retained = canary();
    let pushed = canary();
    let foreign = canary();
    let mut canaries = vec![
        first.clone(),
        rotated.clone(),
        not_json.clone(),
        not_base64.trim_end_matches('!').to_owned(),
        nested.clone(),
        templated.clone(),
        retained.clone(),
        pushed.clone(),
        foreign.clone(),
    ];

    // Success, then a rotation.
    let app = unique_name("hygiene/app");
    create_aws_secret(
        &sm,
        &app,
        &json!({ "username": "app", "password": first }).to_string(),
        &[],
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "app",
            json!({
                "refreshInterval": "1h", "secretStoreRef": { "name": "aws" },
                "data": [
                    { "secretKey": "username", "remoteRef": { "key": app, "property": "username" } },
                    { "secretKey": "password", "remoteRef": { "key": app, "property": "password" } }
                ]
            }),
        ),
    )
    .await;
    wait_secret(&client, &ns, "app", |s| {
        data_of(s).get("password") == Some(&first)
    })
    .await;
    put_aws_secret(
        &sm,
        &app,
        &json!({ "username": "app", "password": rotated }).to_string(),
    )
    .await;
    force_sync(&client, &ns, "app").await;
    wait_secret(&client, &ns, "app", |s| {
        data_of(s).get("password") == Some(&rotated)
    })
    .await;
    wait_ready(&client, &ns, "app").await;

    // Failures that look into values.
    let plain = unique_name("hygiene/plain");
    create_aws_secret(&sm, &plain, &not_json, &[]).await;
    let undecodable = unique_name("hygiene/undecodable");
    create_aws_secret(&sm, &undecodable, &not_base64, &[]).await;
    let object = unique_name("hygiene/object");
    create_aws_secret(
        &sm,
        &object,
        &json!({ "password": nested }).to_string(),
        &[],
    )
    .await;
    let for_template = unique_name("hygiene/template");
    create_aws_secret(&sm, &for_template, &templated, &[]).await;
    let mut failing: Vec<(String, serde_json::Value)> = vec![
        (
            "bad-property".into(),
            json!({ "data": [{ "secretKey": "v", "remoteRef": { "key": plain, "property": "x" } }] }),
        ),
        (
            "bad-nested-property".into(),
            json!({ "data": [{ "secretKey": "v", "remoteRef": { "key": object, "property": "password.x" } }] }),
        ),
        (
            "bad-extract".into(),
            json!({ "dataFrom": [{ "extract": { "key": plain } }] }),
        ),
        (
            "bad-base64".into(),
            json!({ "data": [{ "secretKey": "v", "remoteRef": { "key": undecodable, "decodingStrategy": "Base64" } }] }),
        ),
    ];
    let bad_templates = [
        "{{ .v.field }}",
        "{{ .v 1 }}",
        "{{ call .v }}",
        "{{ index .v \"k\" }}",
        "{{ eq .v 3 }}",
        "{{ template .v }}",
        "{{ .missing }}",
    ];
    for (i, text) in bad_templates.iter().enumerate() {
        failing.push((
            format!("bad-template-{i}"),
            json!({
                "target": { "template": { "data": { "out": text } } },
                "data": [{ "secretKey": "v", "remoteRef": { "key": for_template } }]
            }),
        ));
    }
    // The Kubernetes provider, reading this namespace's Secrets with a ServiceAccount's token:
    // a copy, and failures that look into a key's value.
    let k8s_value = canary();
    let k8s_not_json = canary();
    canaries.extend([k8s_value.clone(), k8s_not_json.clone()]);
    kubernetes_store(&client, &ns, stack_apiserver(Stack::get().await)).await;
    apply(
        &client,
        &json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "k8s-source", "namespace": ns },
                 "stringData": { "pw": k8s_value, "doc": k8s_not_json } }),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "k8s-copy",
            json!({
                "refreshInterval": "1h", "secretStoreRef": { "name": "k8s" },
                "data": [{ "secretKey": "pw", "remoteRef": { "key": "k8s-source", "property": "pw" } }]
            }),
        ),
    )
    .await;
    wait_secret(&client, &ns, "k8s-copy", |s| {
        data_of(s).get("pw") == Some(&k8s_value)
    })
    .await;
    failing.push((
        "k8s-bad-nested".into(),
        json!({ "secretStoreRef": { "name": "k8s" },
                "data": [{ "secretKey": "v", "remoteRef": { "key": "k8s-source", "property": "doc.x" } }] }),
    ));
    failing.push((
        "k8s-bad-extract".into(),
        json!({ "secretStoreRef": { "name": "k8s" },
                "dataFrom": [{ "extract": { "key": "k8s-source", "property": "doc" } }] }),
    ));
    for (name, spec) in &failing {
        let mut spec = spec.clone();
        if spec.get("secretStoreRef").is_none() {
            spec["secretStoreRef"] = json!({ "name": "aws" });
        }
        apply(&client, &external_secret(&ns, name, spec)).await;
    }

    // A provider secret deleted under deletionPolicy Retain.
    let gone = unique_name("hygiene/retained");
    create_aws_secret(&sm, &gone, &retained, &[]).await;
    apply(
        &client,
        &external_secret(
            &ns,
            "retain",
            json!({
                "refreshInterval": "1h", "secretStoreRef": { "name": "aws" },
                "data": [{ "secretKey": "v", "remoteRef": { "key": gone } }]
            }),
        ),
    )
    .await;
    wait_secret(&client, &ns, "retain", |s| {
        data_of(s).get("v") == Some(&retained)
    })
    .await;
    delete_aws_secret(&sm, &gone).await;
    force_sync(&client, &ns, "retain").await;

    let mut messages = BTreeMap::new();
    for name in failing.iter().map(|(n, _)| n.as_str()).chain(["retain"]) {
        let message = wait_failed(&client, &ns, name).await;
        assert!(!message.is_empty(), "{name} explains its failure");
        messages.insert(name.to_owned(), message);
    }
    // The failures are the ones intended (not, say, a missing store).
    assert!(messages["retain"].contains(&gone), "{}", messages["retain"]);
    for name in [
        "bad-property",
        "bad-nested-property",
        "bad-extract",
        "bad-base64",
        "k8s-bad-nested",
        "k8s-bad-extract",
    ] {
        assert!(
            messages[name].starts_with("could not get secret data from provider"),
            "{name}: {}",
            messages[name]
        );
    }
    assert!(
        messages["k8s-bad-nested"].contains("doc.x"),
        "{}",
        messages["k8s-bad-nested"]
    );
    assert!(
        messages["bad-base64"].contains("illegal base64 data"),
        "{}",
        messages["bad-base64"]
    );
    for i in 0..bad_templates.len() {
        let message = &messages[&format!("bad-template-{i}")];
        assert!(message.contains("template"), "{message}");
    }

    // PushSecrets: a push, then the failures that handle values: a property pushed into a
    // secret whose value is not JSON, and a secret PushSecret did not create.
    let source: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": { "name": "push-source" }, "stringData": { "token": pushed }
    }))
    .expect("source");
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns)
        .create(&Default::default(), &source)
        .await
        .expect("create source");
    let plain = unique_name("hygiene/pushed");
    let theirs = unique_name("hygiene/theirs");
    create_aws_secret(&sm, &theirs, &foreign, &[]).await;
    let push = |name: &str, key: &str, property: Option<&str>| {
        let mut remote = json!({ "remoteKey": key });
        if let Some(property) = property {
            remote["property"] = json!(property);
        }
        json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": { "name": name, "namespace": ns },
            "spec": { "secretStoreRefs": [{ "name": "aws" }],
                      "selector": { "secret": { "name": "push-source" } },
                      "data": [{ "match": { "secretKey": "token", "remoteRef": remote } }] }
        })
    };
    apply(&client, &push("push-plain", &plain, None)).await;
    let push_secrets: Api<PushSecret> = Api::namespaced(client.clone(), &ns);
    let push_ready = |name: &'static str, want: ConditionStatus| {
        let push_secrets = push_secrets.clone();
        async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let ps = push_secrets.get(name).await.expect("get PushSecret");
                let condition = ps
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
                if let Some(c) = condition.filter(|c| c.status == want) {
                    return c.message.unwrap_or_default();
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{name} never {want:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    push_ready("push-plain", ConditionStatus::True).await;
    apply(&client, &push("push-into-plain", &plain, Some("token"))).await;
    apply(&client, &push("push-foreign", &theirs, Some("token"))).await;
    let into_plain = push_ready("push-into-plain", ConditionStatus::False).await;
    assert!(
        into_plain.contains("requires a json secret"),
        "{into_plain}"
    );
    let into_foreign = push_ready("push-foreign", ConditionStatus::False).await;
    assert!(
        into_foreign.contains("not managed by external-secrets"),
        "{into_foreign}"
    );
    for ps in push_secrets
        .list(&ListParams::default())
        .await
        .expect("list")
    {
        let text = serde_json::to_string(&ps.status).expect("serialise status");
        assert_clean(
            &format!("the status of {}", ps.name_any()),
            &text,
            &canaries,
        );
    }

    // Generators: a generated password (its value joins the canaries), and a webhook generator
    // whose credential and answer are canaries, failing on an answer that is not a JSON object
    // and on a server that does not answer (reqwest's errors name the templated URL).
    apply(
        &client,
        &json!({
            "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password",
            "metadata": { "name": "pw", "namespace": ns }, "spec": {}
        }),
    )
    .await;
    apply(
        &client,
        &external_secret(
            &ns,
            "generated",
            json!({ "dataFrom": [{ "sourceRef": { "generatorRef": { "kind": "Password", "name": "pw" } } }] }),
        ),
    )
    .await;
    let generated = wait_secret(&client, &ns, "generated", |_| true).await;
    canaries.push(data_of(&generated)["password"].clone());
    let webhook_credential = canary();
    let webhook_answer = canary();
    canaries.push(webhook_credential.clone());
    canaries.push(webhook_answer.clone());
    let answer = json!({ "result": webhook_answer }).to_string();
    let server = axum::Router::new().route("/", axum::routing::get(move || async move { answer }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, server).await });
    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    apply(
        &client,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "webhook-credential", "namespace": ns,
                          "labels": { "external-secrets.io/type": "webhook" } },
            "stringData": { "key": webhook_credential }
        }),
    )
    .await;
    for (name, url) in [
        (
            "webhook-not-json",
            format!("http://127.0.0.1:{port}/?k={{{{ .auth.key }}}}"),
        ),
        (
            "webhook-down",
            format!("http://127.0.0.1:{closed}/{{{{ .auth.key }}}}"),
        ),
    ] {
        apply(
            &client,
            &json!({
                "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Webhook",
                "metadata": { "name": name, "namespace": ns },
                "spec": {
                    "url": url,
                    "headers": { "X-Key": "{{ .auth.key }}" },
                    "result": { "jsonPath": "$.result" },
                    "secrets": [{ "name": "auth", "secretRef": { "name": "webhook-credential", "key": "key" } }]
                }
            }),
        )
        .await;
        apply(
            &client,
            &external_secret(
                &ns,
                name,
                json!({ "dataFrom": [{ "sourceRef": { "generatorRef": { "kind": "Webhook", "name": name } } }] }),
            ),
        )
        .await;
    }
    let webhook_not_json = wait_failed(&client, &ns, "webhook-not-json").await;
    assert!(webhook_not_json.contains("not JSON"), "{webhook_not_json}");
    let webhook_down = wait_failed(&client, &ns, "webhook-down").await;
    assert!(webhook_down.contains("request failed"), "{webhook_down}");
    messages.insert("webhook-not-json".to_owned(), webhook_not_json);
    messages.insert("webhook-down".to_owned(), webhook_down);

    // The same failures, straight from the engine: the errors themselves, Display and Debug.
    let stack = Stack::get().await;
    let engine = Engine::new(
        client.clone(),
        Arc::new(ApiView::new(client.clone())),
        Arc::new(KubeReferents::new(client.clone())),
        Arc::new(NoObserver),
        Settings {
            providers: BuildOptions {
                aws_base: Some(stack.aws().await),
            },
            ..Settings::default()
        },
    );
    let external_secrets: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    let mut errors = String::new();
    for name in failing.iter().map(|(n, _)| n.as_str()).chain(["retain"]) {
        let es = external_secrets.get(name).await.expect("get");
        let err = engine
            .sync(&es, Trigger::ProviderChanged { at: Instant::now() })
            .await
            .expect_err("still failing");
        errors.push_str(&format!("{name}: {err}\n{err:?}\n"));
        let mut source = std::error::Error::source(&err);
        while let Some(e) = source {
            errors.push_str(&format!("  caused by: {e}\n"));
            source = e.source();
        }
    }

    // Everything the controller and engine said, in every channel.
    let log_text = logs.text();
    assert!(
        log_text.lines().count() > 20 && log_text.contains(&app),
        "the capture holds our logs (key names included): {} lines",
        log_text.lines().count()
    );
    assert!(
        log_text.contains("\"level\":\"TRACE\"") || log_text.contains("\"level\":\"DEBUG\""),
        "verbose levels are captured"
    );
    assert_clean("the log", &log_text, &canaries);

    let all_events = events(&client, &ns).await;
    assert!(
        all_events
            .iter()
            .any(|e| e.reason.as_deref() == Some("UpdateFailed")),
        "failures were reported as Events"
    );
    for event in &all_events {
        let text = format!(
            "{} {}\n{}",
            event.reason.as_deref().unwrap_or_default(),
            event.note.as_deref().unwrap_or_default(),
            serde_json::to_string(event).expect("serialise Event")
        );
        assert_clean("an Event", &text, &canaries);
    }

    for es in external_secrets
        .list(&ListParams::default())
        .await
        .expect("list")
    {
        let text = serde_json::to_string(&es.status).expect("serialise status");
        assert_clean(
            &format!("the status of {}", es.name_any()),
            &text,
            &canaries,
        );
    }
    let stores = Api::<SecretStore>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("list stores");
    for store in stores {
        let text = serde_json::to_string(&store.status).expect("serialise status");
        assert_clean("a store status", &text, &canaries);
    }

    let metrics = t.controller.metrics.encode().expect("metrics");
    assert!(
        metrics.contains("externalsecret_sync_calls_total"),
        "metrics were recorded"
    );
    assert_clean("the metrics", &metrics, &canaries);

    let all_messages = format!("{messages:?}\n{errors}");
    assert_clean("an error message", &all_messages, &canaries);
}
