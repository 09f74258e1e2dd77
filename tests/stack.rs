//! The local stack is made of real servers: each test makes a round trip through one of them and
//! checks behaviour that only the real thing has (GC of owned objects, namespace finalization,
//! version stages, KV versions).

use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsManager;
use aws_sdk_sqs::Client as Sqs;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use secret_sync_tests::{Stack, namespace, scoped_namespace, unique_name};
use serde_json::json;

#[tokio::test]
async fn apiserver_stores_a_secret_and_collects_it_when_its_owner_is_deleted() {
    let stack = Stack::get().await;
    let client = stack.kube().await;
    let (ns, _cleanup) = scoped_namespace(&client, "gc", &[]).await;
    let owners: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);

    let owner = owners
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create owner");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("owned".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: "owner".into(),
                uid: owner.metadata.uid.clone().expect("uid"),
                ..Default::default()
            }]),
            ..Default::default()
        },
        string_data: Some([("password".to_owned(), "round-trip".to_owned())].into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");

    let read = secrets.get("owned").await.expect("read secret");
    let value = read.data.expect("data")["password"].0.clone();
    assert_eq!(value, b"round-trip");

    owners
        .delete("owner", &DeleteParams::default())
        .await
        .expect("delete owner");
    let uid = read.metadata.uid.expect("uid");
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(secrets, "owned", conditions::is_deleted(&uid)),
    )
    .await
    .expect("the garbage collector removed the owned Secret within 60s")
    .expect("watch");
}

#[tokio::test]
async fn apiserver_finalizes_a_deleted_namespace_and_its_contents() {
    let stack = Stack::get().await;
    let client = stack.kube().await;
    let ns = namespace(&client, "nsdel").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("inside".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let uid = namespaces
        .get(&ns)
        .await
        .expect("get ns")
        .metadata
        .uid
        .expect("uid");
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete ns");
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(namespaces, &ns, conditions::is_deleted(&uid)),
    )
    .await
    .expect("the namespace controller finalized the namespace within 60s")
    .expect("watch");
}

#[tokio::test]
async fn apiserver_creates_default_service_accounts_and_issues_their_tokens() {
    let stack = Stack::get().await;
    let client = stack.kube().await;
    let (ns, _cleanup) = scoped_namespace(&client, "sa", &[]).await;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while accounts.get_opt("default").await.expect("get sa").is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no default ServiceAccount in {ns} after 30s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": { "audiences": ["vault"], "expirationSeconds": 600 }
        }))
        .expect("token request");
    let issued = accounts
        .create_token_request("default", &PostParams::default(), &request)
        .await
        .expect("TokenRequest for the default ServiceAccount");
    let token = issued.status.expect("status").token;
    assert_eq!(token.split('.').count(), 3, "a signed JWT has three parts");
}

#[tokio::test]
async fn moto_keeps_secret_versions_with_their_stages() {
    let stack = Stack::get().await;
    let sm = SecretsManager::new(&stack.aws().await);
    let name = unique_name("stack/round-trip");

    sm.create_secret()
        .name(&name)
        .secret_string(r#"{"password":"v1"}"#)
        .send()
        .await
        .expect("create");
    let first = sm
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .expect("get v1");
    assert_eq!(first.secret_string(), Some(r#"{"password":"v1"}"#));

    sm.put_secret_value()
        .secret_id(&name)
        .secret_string(r#"{"password":"v2"}"#)
        .send()
        .await
        .expect("put v2");
    let current = sm
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .expect("get current");
    assert_eq!(current.secret_string(), Some(r#"{"password":"v2"}"#));
    assert!(current.version_stages().iter().any(|s| s == "AWSCURRENT"));

    let previous = sm
        .get_secret_value()
        .secret_id(&name)
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .expect("get AWSPREVIOUS");
    assert_eq!(previous.secret_string(), Some(r#"{"password":"v1"}"#));
    assert_eq!(previous.version_id(), first.version_id());
}

#[tokio::test]
async fn moto_delivers_an_sqs_message() {
    let stack = Stack::get().await;
    let sqs = Sqs::new(&stack.aws().await);
    let queue = sqs
        .create_queue()
        .queue_name(unique_name("stack"))
        .send()
        .await
        .expect("create queue");
    let url = queue.queue_url().expect("queue url");

    sqs.send_message()
        .queue_url(url)
        .message_body(r#"{"hello":"queue"}"#)
        .send()
        .await
        .expect("send");
    let received = sqs
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(5)
        .send()
        .await
        .expect("receive");
    let bodies: Vec<_> = received
        .messages()
        .iter()
        .filter_map(|m| m.body())
        .collect();
    assert_eq!(bodies, [r#"{"hello":"queue"}"#]);
}

#[tokio::test]
async fn openbao_serves_kv_v2_versions_and_a_kv_v1_mount() {
    let stack = Stack::get().await;
    let vault = stack.vault();
    let path = unique_name("stack/round-trip");

    vaultrs::kv2::set(&vault, "secret", &path, &json!({"password": "v1"}))
        .await
        .expect("kv2 write v1");
    vaultrs::kv2::set(&vault, "secret", &path, &json!({"password": "v2"}))
        .await
        .expect("kv2 write v2");
    let latest: serde_json::Value = vaultrs::kv2::read(&vault, "secret", &path)
        .await
        .expect("kv2 read");
    assert_eq!(latest, json!({"password": "v2"}));
    let first: serde_json::Value = vaultrs::kv2::read_version(&vault, "secret", &path, 1)
        .await
        .expect("kv2 read v1");
    assert_eq!(first, json!({"password": "v1"}));

    let data = [("password", "v1-mount")].into_iter().collect();
    vaultrs::kv1::set(&vault, "kv1", &path, &data)
        .await
        .expect("kv1 write");
    let read: serde_json::Value = vaultrs::kv1::get(&vault, "kv1", &path)
        .await
        .expect("kv1 read");
    assert_eq!(read, json!({"password": "v1-mount"}));
}
