//! Vault / OpenBao change notifications end to end: the OpenBao dev server's `socket` audit
//! device (configured by `infra/local/stack` to write to `SECRET_SYNC_VAULT_AUDIT_ADDR`) feeds
//! the controller's audit receiver, and a `kv put` reaches the Secret long before its refresh is
//! due.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use secret_sync_controller::vault_audit::AuditSettings;
use secret_sync_tests::controller::{apply, external_secret, setup_with, wait_data};
use secret_sync_tests::{Stack, unique_name};
use serde_json::json;

/// Within this, an event-driven sync has happened; refreshes are an hour away.
const PROMPT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_put_reaches_the_secret_through_the_audit_stream_long_before_the_refresh() {
    let stack = Stack::get().await;
    let addr: std::net::SocketAddr = stack
        .var("SECRET_SYNC_VAULT_AUDIT_ADDR")
        .parse()
        .expect("the stack's audit address");
    let t = setup_with("vault-audit", &[], move |s| {
        s.vault_audit = Some(AuditSettings {
            addr,
            allowed_peers: Vec::new(),
            concurrency: 8,
        });
    })
    .await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let vault = stack.vault();
    let key = unique_name("audit/db");
    vaultrs::kv2::set(&vault, "secret", &key, &json!({ "password": "v1" }))
        .await
        .expect("kv put");
    let token: Secret = serde_json::from_value(json!({
        "metadata": { "name": "bao-token" },
        "stringData": { "token": stack.var("VAULT_TOKEN") }
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &token)
        .await
        .expect("token Secret");
    apply(
        &client,
        &json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": { "name": "bao", "namespace": ns },
            "spec": { "provider": { "vault": {
                "server": stack.var("VAULT_ADDR"), "path": "secret", "version": "v2",
                "auth": { "tokenSecretRef": { "name": "bao-token", "key": "token" } }
            } } }
        }),
    )
    .await;
    apply(&client, &external_secret(&ns, "db", json!({
        "refreshInterval": "1h",
        "secretStoreRef": { "name": "bao" },
        "data": [{ "secretKey": "password", "remoteRef": { "key": key, "property": "password" } }]
    })))
    .await;
    wait_data(&client, &ns, "db", &[("password", "v1")]).await;

    vaultrs::kv2::set(&vault, "secret", &key, &json!({ "password": "v2" }))
        .await
        .expect("kv put");
    let started = tokio::time::Instant::now();
    wait_data(&client, &ns, "db", &[("password", "v2")]).await;
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    let metrics = t.controller.metrics.encode().expect("metrics");
    assert!(
        metrics.contains("secret_sync_events_total{result=\"matched\",source=\"vault-audit\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("v2\""), "no value in the metrics");
}
