//! Generators (`generators.external-secrets.io`) through the controller, on the real apiserver:
//! ESO's docs examples applied unchanged make Secrets of ESO's shape; ClusterGenerators and
//! `rewrite`; a new value at every refresh and the first kept by `CreatedOnce`; ECR and STS
//! tokens from moto; Vault dynamic secrets from the OpenBao dev server; a webhook served by the
//! test; values that expire renewed before they do; kinds not served yet refused by name.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use secret_sync_crd::{ConditionStatus, ExternalSecret};
use secret_sync_tests::controller::{
    apply, data_of, force_sync, ready_of, setup, wait_for, wait_ready, wait_ready_reason,
    wait_secret,
};
use secret_sync_tests::{Stack, unique_name};
use serde_json::{Value, json};

/// A docs example (YAML, possibly several documents) as JSON objects in `ns`.
fn example(yaml: &str, ns: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .map(|doc| {
            let mut object: Value = serde_saphyr::from_str(doc).expect("example YAML");
            object["metadata"]["namespace"] = json!(ns);
            object
        })
        .collect()
}

async fn apply_all(client: &kube::Client, objects: &[Value]) {
    for object in objects {
        apply(client, object).await;
    }
}

async fn secret(client: &kube::Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    data_of(&wait_secret(client, ns, name, |_| true).await)
}

/// ESO's docs examples `generator-password.yaml` with `generator-password-example.yaml`,
/// `generator-password-multiple-keys.yaml`, `generator-uuid.yaml` with
/// `generator-uuid-example.yaml`, `generator-fake.yaml` with `generator-fake-example.yaml`, and
/// `generator-sshkey.yaml` with `generator-sshkey-example.yaml`, as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_examples_make_secrets_of_esos_shape() {
    let t = setup("gen-docs").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let examples = [
        r#"apiVersion: generators.external-secrets.io/v1alpha1
kind: Password
metadata:
  name: my-password
spec:
  length: 42
  digits: 5
  symbols: 5
  symbolCharacters: "-_$@"
  noUpper: false
  allowRepeat: true
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: "password"
spec:
  refreshInterval: "30m0s"
  target:
    name: password-secret
  dataFrom:
  - sourceRef:
      generatorRef:
        apiVersion: generators.external-secrets.io/v1alpha1
        kind: Password
        name: "my-password""#,
        r#"apiVersion: generators.external-secrets.io/v1alpha1
kind: Password
metadata:
  name: multiple-passwords
spec:
  length: 36
  secretKeys:
    - key1
    - key2
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: auth-secrets
spec:
  refreshInterval: "30m"
  target:
    name: auth-secrets
  dataFrom:
    - sourceRef:
        generatorRef:
          apiVersion: generators.external-secrets.io/v1alpha1
          kind: Password
          name: multiple-passwords"#,
        r#"apiVersion: generators.external-secrets.io/v1alpha1
kind: UUID
metadata:
  name: my-uuid
spec: {}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: "uuid"
spec:
  refreshInterval: "30m0s"
  target:
    name: uuid-secret
  dataFrom:
    - sourceRef:
        generatorRef:
          apiVersion: generators.external-secrets.io/v1alpha1
          kind: UUID
          name: "my-uuid""#,
        r#"apiVersion: generators.external-secrets.io/v1alpha1
kind: Fake
metadata:
  name: fake-key
spec:
  data:
    foo: bar
    baz: bang
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: "fake"
spec:
  refreshInterval: "30m0s"
  target:
    name: fake
  dataFrom:
  - sourceRef:
      generatorRef:
        apiVersion: generators.external-secrets.io/v1alpha1
        kind: Fake
        name: "fake-key""#,
        r#"apiVersion: generators.external-secrets.io/v1alpha1
kind: SSHKey
metadata:
  name: example-ssh-key
spec:
  keyType: "ed25519"
  comment: "user@example.com"
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: example-ssh-key
spec:
  refreshInterval: "30m0s"
  target:
    name: ssh-key-secret
  dataFrom:
    - sourceRef:
        generatorRef:
          apiVersion: generators.external-secrets.io/v1alpha1
          kind: SSHKey
          name: example-ssh-key"#,
    ];
    for yaml in examples {
        apply_all(&client, &example(yaml, &ns)).await;
    }

    let password = secret(&client, &ns, "password-secret").await;
    let p = &password["password"];
    assert_eq!(password.len(), 1);
    assert_eq!(p.len(), 42);
    assert_eq!(p.chars().filter(char::is_ascii_digit).count(), 5);
    assert_eq!(p.chars().filter(|c| "-_$@".contains(*c)).count(), 5);

    let auth = secret(&client, &ns, "auth-secrets").await;
    assert_eq!(auth.keys().collect::<Vec<_>>(), ["key1", "key2"]);
    assert!(auth.values().all(|v| v.len() == 36));
    assert_ne!(auth["key1"], auth["key2"]);

    let uuid = secret(&client, &ns, "uuid-secret").await;
    let id = &uuid["uuid"];
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(id.as_bytes()[14], b'4', "a version 4 UUID: {id}");
    assert_eq!(id.to_lowercase(), *id);

    let fake = secret(&client, &ns, "fake").await;
    assert_eq!(
        fake,
        BTreeMap::from([("baz".into(), "bang".into()), ("foo".into(), "bar".into())])
    );

    let ssh = secret(&client, &ns, "ssh-key-secret").await;
    assert!(
        ssh["privateKey"].starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"),
        "not an OpenSSH private key"
    );
    assert!(ssh["publicKey"].starts_with("ssh-ed25519 "));
    assert!(ssh["publicKey"].ends_with(" user@example.com\n"));

    for name in [
        "password",
        "auth-secrets",
        "uuid",
        "fake",
        "example-ssh-key",
    ] {
        let es = wait_ready(&client, &ns, name).await;
        let status = es.status.as_ref().expect("status");
        assert!(
            status.expires_at.is_none() && status.renew_at.is_none(),
            "{name}: nothing it generated expires"
        );
    }
}

/// A ClusterGenerator (`kind` + its spec) used from a namespace, its keys rewritten; a refresh
/// makes a new value; `CreatedOnce` keeps its first one through a forced sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_generator_with_rewrite_refreshes_and_created_once_keeps_its_first_value() {
    let t = setup("gen-cluster").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let cluster_generator = unique_name("pw");
    apply(
        &client,
        &json!({
            "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "ClusterGenerator",
            "metadata": {"name": cluster_generator},
            "spec": {"kind": "Password", "generator": {"passwordSpec": {"length": 16, "noUpper": true}}}
        }),
    )
    .await;
    let _cleanup = ClusterObject(client.clone(), cluster_generator.clone());
    let reader = |name: &str, policy: &str, interval: &str| {
        json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "refreshPolicy": policy,
                "refreshInterval": interval,
                "dataFrom": [{
                    "sourceRef": {"generatorRef": {"kind": "ClusterGenerator", "name": cluster_generator}},
                    "rewrite": [{"regexp": {"source": "^password$", "target": "db-password"}}]
                }]
            }
        })
    };
    apply(&client, &reader("periodic", "Periodic", "2s")).await;
    apply(&client, &reader("once", "CreatedOnce", "1h")).await;

    let first = secret(&client, &ns, "periodic").await;
    assert_eq!(first.keys().collect::<Vec<_>>(), ["db-password"]);
    let value = &first["db-password"];
    assert_eq!(value.len(), 16);
    assert!(!value.chars().any(|c| c.is_ascii_uppercase()));
    let renewed = wait_secret(&client, &ns, "periodic", |s| {
        data_of(s).get("db-password").is_some_and(|v| v != value)
    })
    .await;
    assert_eq!(data_of(&renewed)["db-password"].len(), 16);

    let once = secret(&client, &ns, "once").await;
    force_sync(&client, &ns, "once").await;
    wait_for(&client, &ns, "once", |es| {
        es.status
            .as_ref()
            .and_then(|s| s.synced_resource_version.as_deref())
            .is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        secret(&client, &ns, "once").await,
        once,
        "CreatedOnce regenerated"
    );
}

/// Deletes a cluster-scoped ClusterGenerator when dropped.
struct ClusterObject(kube::Client, String);

impl Drop for ClusterObject {
    fn drop(&mut self) {
        let (client, name) = (self.0.clone(), self.1.clone());
        let resource = kube::api::ApiResource {
            group: "generators.external-secrets.io".into(),
            version: "v1alpha1".into(),
            api_version: "generators.external-secrets.io/v1alpha1".into(),
            kind: "ClusterGenerator".into(),
            plural: "clustergenerators".into(),
        };
        tokio::spawn(async move {
            let api: Api<kube::api::DynamicObject> = Api::all_with(client, &resource);
            let _ = api.delete(&name, &Default::default()).await;
        });
    }
}

/// ESO's `generator-ecr.yaml` shape (static credentials from a Secret) against moto's ECR, and
/// `generator-sts.yaml`'s against moto's STS: ESO's keys, the expiry recorded with its renewal
/// three quarters of the way there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_and_sts_tokens_come_from_moto_with_their_expiry_and_renewal() {
    let t = setup("gen-aws").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let stack = Stack::get().await;
    apply(
        &client,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "my-aws-creds", "namespace": ns},
            "stringData": {
                "key-id": stack.var("AWS_ACCESS_KEY_ID"),
                "access-secret": stack.var("AWS_SECRET_ACCESS_KEY")
            }
        }),
    )
    .await;
    let auth = json!({"secretRef": {
        "accessKeyIDSecretRef": {"name": "my-aws-creds", "key": "key-id"},
        "secretAccessKeySecretRef": {"name": "my-aws-creds", "key": "access-secret"}
    }});
    for (kind, spec) in [
        (
            "ECRAuthorizationToken",
            json!({"region": "eu-west-1", "auth": auth}),
        ),
        (
            "STSSessionToken",
            json!({"region": "eu-west-1", "auth": auth, "requestParameters": {"sessionDuration": 3600}}),
        ),
    ] {
        apply(
            &client,
            &json!({
                "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": kind,
                "metadata": {"name": kind.to_lowercase(), "namespace": ns}, "spec": spec
            }),
        )
        .await;
        apply(
            &client,
            &json!({
                "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "metadata": {"name": kind.to_lowercase(), "namespace": ns},
                "spec": {"refreshInterval": "24h", "dataFrom": [{"sourceRef": {"generatorRef": {
                    "apiVersion": "generators.external-secrets.io/v1alpha1",
                    "kind": kind, "name": kind.to_lowercase()}}}]}
            }),
        )
        .await;
    }

    let ecr = secret(&client, &ns, "ecrauthorizationtoken").await;
    assert_eq!(
        ecr.keys().collect::<Vec<_>>(),
        ["expires_at", "password", "proxy_endpoint", "username"]
    );
    assert_eq!(ecr["username"], "AWS");
    assert!(!ecr["password"].is_empty());
    assert!(
        ecr["proxy_endpoint"].starts_with("https://"),
        "{}",
        ecr["proxy_endpoint"]
    );
    let sts = secret(&client, &ns, "stssessiontoken").await;
    assert_eq!(
        sts.keys().collect::<Vec<_>>(),
        [
            "access_key_id",
            "expiration",
            "secret_access_key",
            "session_token"
        ]
    );

    // STS: the session's expiry recorded, and its renewal three quarters of the way there.
    let expires: i64 = sts["expiration"].parse().expect("Unix seconds");
    let status = wait_ready(&client, &ns, "stssessiontoken")
        .await
        .status
        .expect("status");
    let synced = status.refresh_time.expect("refreshTime").0.as_second();
    assert!(expires > synced + 3000, "a one-hour session");
    assert_eq!(status.expires_at.expect("expiresAt").0.as_second(), expires);
    let renew = status.renew_at.expect("renewAt").0.as_second();
    let want = synced + (expires - synced) * 3 / 4;
    assert!((renew - want).abs() <= 1, "renewAt {renew}, want {want}");
    // ECR: moto answers a fixed expiry in the past (2015-01-01; real ECR's is 12 h ahead). It is
    // recorded as it is, and nothing is scheduled for a token that has already expired.
    let expires: i64 = ecr["expires_at"].parse().expect("Unix seconds");
    let status = wait_ready(&client, &ns, "ecrauthorizationtoken")
        .await
        .status
        .expect("status");
    assert_eq!(status.expires_at.expect("expiresAt").0.as_second(), expires);
    assert_eq!(status.renew_at, None);
}

/// ESO's VaultDynamicSecret against the OpenBao dev server: a PKI certificate issued (`POST`
/// with `parameters`, `resultType: Data`), and a token created (`resultType: Auth`) whose
/// 8-second lease is renewed before it ends although the refresh interval is an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_dynamic_secrets_issue_certificates_and_renew_a_token_before_its_lease_ends() {
    let t = setup("gen-vault").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let stack = Stack::get().await;
    let pki = unique_name("pki");
    stack.bao(&["secrets", "enable", &format!("-path={pki}"), "pki"]);
    stack.bao(&[
        "write",
        &format!("{pki}/root/generate/internal"),
        "common_name=example.com",
        "ttl=24h",
    ]);
    stack.bao(&[
        "write",
        &format!("{pki}/roles/web"),
        "allowed_domains=example.com",
        "allow_subdomains=true",
        "max_ttl=1h",
    ]);
    apply(
        &client,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "bao-token", "namespace": ns},
            "stringData": {"token": stack.var("VAULT_TOKEN")}
        }),
    )
    .await;
    let provider = json!({
        "server": stack.var("VAULT_ADDR"),
        "auth": {"tokenSecretRef": {"name": "bao-token", "key": "token"}}
    });
    let generators = [
        (
            "cert",
            json!({"path": format!("{pki}/issue/web"), "method": "POST",
                   "parameters": {"common_name": "app.example.com", "ttl": "10m"},
                   "provider": provider}),
        ),
        (
            "token",
            json!({"path": "auth/token/create", "method": "POST",
                   "parameters": {"ttl": "8s", "policies": ["default"], "no_parent": true},
                   "resultType": "Auth", "provider": provider}),
        ),
    ];
    for (name, spec) in generators {
        apply(
            &client,
            &json!({
                "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "VaultDynamicSecret",
                "metadata": {"name": name, "namespace": ns}, "spec": spec
            }),
        )
        .await;
        apply(
            &client,
            &json!({
                "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"refreshInterval": "1h", "dataFrom": [{"sourceRef": {"generatorRef": {
                    "kind": "VaultDynamicSecret", "name": name}}}]}
            }),
        )
        .await;
    }

    let cert = secret(&client, &ns, "cert").await;
    assert!(cert["certificate"].starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(cert["private_key"].contains("PRIVATE KEY-----"));
    assert!(cert.contains_key("serial_number") && cert.contains_key("issuing_ca"));
    // ESO's GetByteValue: a list is JSON.
    assert!(cert["ca_chain"].starts_with("[\""), "{}", cert["ca_chain"]);

    let token = secret(&client, &ns, "token").await;
    assert!(!token["client_token"].is_empty());
    assert_eq!(token["lease_duration"], "8");
    assert_eq!(token["renewable"], "true");
    let first = wait_ready(&client, &ns, "token")
        .await
        .status
        .expect("status");
    let renew_at = first.renew_at.clone().expect("renewAt");
    assert!(first.expires_at.expect("expiresAt").0 > renew_at.0);
    // Renewed at about 6 s (three quarters of 8), not after the hour: a new token.
    let renewed = wait_secret(&client, &ns, "token", |s| {
        data_of(s).get("client_token") != Some(&token["client_token"])
    })
    .await;
    assert!(!data_of(&renewed)["client_token"].is_empty());
    let again = wait_for(&client, &ns, "token", |es| {
        es.status
            .as_ref()
            .and_then(|s| s.renew_at.as_ref())
            .is_some_and(|at| at.0 > renew_at.0)
    })
    .await;
    assert_eq!(
        ready_of(&again).map(|c| c.status),
        Some(ConditionStatus::True)
    );
}

/// ESO's Webhook generator against a server the test runs: the URL and a header are templates
/// over a labelled Secret, `result.jsonPath` picks the object whose members become keys; a
/// Secret without ESO's webhook label is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_generator_calls_with_templated_credentials_and_keeps_the_selected_object() {
    let t = setup("gen-webhook").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let app = axum::Router::new().route(
        "/tokens/{id}",
        axum::routing::get(
            |axum::extract::Path(id): axum::extract::Path<String>,
             headers: axum::http::HeaderMap| async move {
                let authorized = headers
                    .get("authorization")
                    .is_some_and(|v| v.as_bytes() == b"Bearer s3cr3t-api-key");
                if !authorized {
                    return (axum::http::StatusCode::UNAUTHORIZED, String::new());
                }
                let body = json!({"result": {"token": format!("token-for-{id}"), "ttl": 3600}});
                (axum::http::StatusCode::OK, body.to_string())
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The ExternalSecrets write `<name>-token`, beside the credentials Secrets `<name>`.
    for (name, labelled) in [("api-key", true), ("unlabelled", false)] {
        let mut secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "stringData": {"key": "s3cr3t-api-key"}
        });
        if labelled {
            secret["metadata"]["labels"] = json!({"external-secrets.io/type": "webhook"});
        }
        apply(&client, &secret).await;
        apply(
            &client,
            &json!({
                "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Webhook",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "url": format!("http://127.0.0.1:{port}/tokens/{{{{ .auth.key | len }}}}"),
                    "headers": {"Authorization": "Bearer {{ .auth.key }}"},
                    "result": {"jsonPath": "$.result"},
                    "secrets": [{"name": "auth", "secretRef": {"name": name, "key": "key"}}]
                }
            }),
        )
        .await;
        apply(
            &client,
            &json!({
                "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "metadata": {"name": format!("{name}-token"), "namespace": ns},
                "spec": {"refreshInterval": "1h", "dataFrom": [{"sourceRef": {"generatorRef": {
                    "kind": "Webhook", "name": name}}}]}
            }),
        )
        .await;
    }
    assert_eq!(
        secret(&client, &ns, "api-key-token").await,
        BTreeMap::from([
            ("token".into(), "token-for-14".into()),
            ("ttl".into(), "3600".into())
        ])
    );
    let refused = wait_ready_reason(
        &client,
        &ns,
        "unlabelled-token",
        ConditionStatus::False,
        "SecretSyncedError",
    )
    .await;
    let message = ready_of(&refused)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("does not carry the label external-secrets.io/type=webhook"),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");
}

/// A kind ESO serves that secret-sync does not generate yet: its CRD is served, and using it
/// gives Ready=False naming the kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_not_served_yet_is_refused_by_name() {
    let t = setup("gen-not-yet").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    apply(
        &client,
        &json!({
            "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "GithubAccessToken",
            "metadata": {"name": "gh", "namespace": ns},
            "spec": {"appID": "1", "installID": "2", "auth": {"privateKey": {"secretRef": {"name": "k", "key": "k"}}}}
        }),
    )
    .await;
    apply(
        &client,
        &json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "gh", "namespace": ns},
            "spec": {"dataFrom": [{"sourceRef": {"generatorRef": {"kind": "GithubAccessToken", "name": "gh"}}}]}
        }),
    )
    .await;
    let es: ExternalSecret = wait_ready_reason(
        &client,
        &ns,
        "gh",
        ConditionStatus::False,
        "SecretSyncedError",
    )
    .await;
    let message = ready_of(&es)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("generator kind GithubAccessToken is not supported by secret-sync yet"),
        "{message}"
    );
    assert!(
        Api::<Secret>::namespaced(client.clone(), &ns)
            .get_opt("gh")
            .await
            .expect("get")
            .is_none()
    );
}

/// ESO's PushSecret with `selector.generatorRef` (its docs' "push a generated password"
/// pattern): the Password pushed into OpenBao's KV, a new one at each refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_secret_pushes_a_generated_password_and_a_new_one_each_refresh() {
    let t = setup("gen-push").await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    secret_sync_tests::controller::vault_token_store(&client, &ns, "bao", "secret", "v2").await;
    apply(
        &client,
        &json!({
            "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password",
            "metadata": {"name": "pw", "namespace": ns},
            "spec": {"length": 20, "symbols": 0}
        }),
    )
    .await;
    let key = unique_name("gen-push");
    apply(
        &client,
        &json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": {"name": "pw", "namespace": ns},
            "spec": {
                "refreshInterval": "2s",
                "secretStoreRefs": [{"name": "bao"}],
                "selector": {"generatorRef": {
                    "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "pw"}},
                "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": key, "property": "password"}}}]
            }
        }),
    )
    .await;
    let vault = Stack::get().await.vault();
    let read = || async {
        vaultrs::kv2::read::<Value>(&vault, "secret", &key)
            .await
            .ok()
            .and_then(|v| v["password"].as_str().map(str::to_owned))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<String> = Vec::new();
    while seen.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pushed passwords seen: {}",
            seen.len()
        );
        if let Some(pw) = read().await
            && seen.last() != Some(&pw)
        {
            assert_eq!(pw.len(), 20);
            assert_eq!(pw.chars().filter(char::is_ascii_digit).count(), 5);
            seen.push(pw);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a generation leaves behind is cleaned up, beyond ESO (whose VaultDynamicSecret revokes
/// nothing): each Vault token a refresh replaces is revoked once the grace period has passed
/// (its GeneratorState falls due and its finalizer revokes it), and the last one when the
/// ExternalSecret is deleted. GeneratorStates carry ESO's owner key and the ExternalSecret as
/// owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_and_orphaned_vault_tokens_are_revoked_through_generator_states() {
    let t = secret_sync_tests::controller::setup_with("gen-state", &[], |s| {
        s.generator_gc_grace = Duration::from_secs(1);
    })
    .await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let stack = Stack::get().await;
    apply(
        &client,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "bao-token", "namespace": ns},
            "stringData": {"token": stack.var("VAULT_TOKEN")}
        }),
    )
    .await;
    apply(
        &client,
        &json!({
            "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "VaultDynamicSecret",
            "metadata": {"name": "token", "namespace": ns},
            "spec": {
                "path": "auth/token/create", "method": "POST", "resultType": "Auth",
                "parameters": {"ttl": "1h", "policies": ["default"], "no_parent": true},
                "provider": {"server": stack.var("VAULT_ADDR"),
                             "auth": {"tokenSecretRef": {"name": "bao-token", "key": "token"}}}
            }
        }),
    )
    .await;
    let reader = |interval: &str| {
        json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "leased", "namespace": ns},
            "spec": {"refreshInterval": interval, "dataFrom": [{"sourceRef": {"generatorRef": {
                "kind": "VaultDynamicSecret", "name": "token"}}}]}
        })
    };
    apply(&client, &reader("2s")).await;
    let alive = |accessor: &str| {
        stack
            .bao_try(&["token", "lookup", "-accessor", accessor])
            .is_ok()
    };
    // Three generations: the first two are replaced.
    let mut accessors: Vec<String> = Vec::new();
    while accessors.len() < 3 {
        let current = secret(&client, &ns, "leased").await;
        let accessor = current["accessor"].clone();
        if accessors.last() != Some(&accessor) {
            accessors.push(accessor);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    apply(&client, &reader("1h")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while alive(&accessors[0]) || alive(&accessors[1]) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replaced tokens revoked"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let states: Api<secret_sync_crd::GeneratorState> = Api::namespaced(client.clone(), &ns);
    let list = states.list(&Default::default()).await.expect("list");
    assert!(!list.items.is_empty());
    let es = wait_ready(&client, &ns, "leased").await;
    for state in &list.items {
        let labels = state.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("generators.external-secrets.io/owner-key")
                .map(String::len),
            Some(56),
            "ESO's owner key"
        );
        let owners = state.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owners.first().map(|o| &o.uid), es.metadata.uid.as_ref());
        assert_eq!(state.spec.resource["kind"], "VaultDynamicSecret");
    }
    // The ExternalSecret goes: the garbage collector deletes its GeneratorStates, whose
    // finalizer revokes what they hold: every token this test saw, and any made since.
    let last = secret(&client, &ns, "leased").await["accessor"].clone();
    Api::<ExternalSecret>::namespaced(client.clone(), &ns)
        .delete("leased", &Default::default())
        .await
        .expect("delete");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while alive(&last)
        || !states
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the last token revoked and the GeneratorStates gone"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(accessors.iter().all(|a| !alive(a)));
}
