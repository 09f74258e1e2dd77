//! The AWS Secrets Manager provider against the real moto_server: reads by name, ARN, stage and
//! version id, binary values, metadata, every `find` strategy with pagination, the credential
//! chain (static keys from Secrets, assumed roles, web identity), and error hygiene.
//!
//! Each test makes its own uniquely named secrets, so tests run in parallel and against a stack
//! earlier runs left secrets in.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client as SecretsManager;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::Tag;
use secret_sync_crd::provider::{
    AwsAuth, AwsAuthSecretRef, AwsJwtAuth, AwsProvider, AwsServiceType,
};
use secret_sync_crd::{SecretKeySelector, ServiceAccountSelector, StoreKind};
use secret_sync_providers::aws::SecretsManagerClient;
use secret_sync_providers::{
    Find, Provider, ProviderError, ReferentError, Referents, RemoteRef, SecretBytes, StoreScope,
    Validation,
};
use secret_sync_tests::{Stack, unique_name};

/// A second moto account: credentials for a role in it act in it.
const OTHER_ACCOUNT: &str = "111111111111";

async fn setup() -> (aws_config::SdkConfig, SecretsManager) {
    let stack = Stack::get().await;
    let sdk = stack.aws().await;
    let sm = SecretsManager::new(&sdk);
    (sdk, sm)
}

async fn create(sm: &SecretsManager, name: &str, value: &str, tags: &[(&str, &str)]) -> String {
    let tags = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect();
    sm.create_secret()
        .name(name)
        .secret_string(value)
        .set_tags(Some(tags))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e:?}"))
        .arn
        .expect("created secret has an ARN")
}

fn text(v: &SecretBytes) -> String {
    String::from_utf8_lossy(v.expose()).into_owned()
}

fn texts(found: &BTreeMap<String, SecretBytes>) -> BTreeMap<String, String> {
    found.iter().map(|(k, v)| (k.clone(), text(v))).collect()
}

fn versioned(key: &str, version: &str) -> RemoteRef {
    RemoteRef {
        version: Some(version.into()),
        ..RemoteRef::key(key)
    }
}

/// Credentials kept in memory as Kubernetes would keep them; records what was asked.
#[derive(Default)]
struct MemoryReferents {
    secrets: HashMap<(String, String, String), Vec<u8>>,
    annotations: HashMap<(String, String), BTreeMap<String, String>>,
    /// TokenRequests fail (as when the ServiceAccount is gone).
    refuse_tokens: bool,
    requests: Mutex<Vec<String>>,
}

impl MemoryReferents {
    fn with_secret(mut self, ns: &str, name: &str, key: &str, value: &str) -> Self {
        self.secrets.insert(
            (ns.into(), name.into(), key.into()),
            value.as_bytes().to_vec(),
        );
        self
    }

    fn with_service_account(mut self, ns: &str, name: &str, annotations: &[(&str, &str)]) -> Self {
        self.annotations.insert(
            (ns.into(), name.into()),
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        self
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn record(&self, what: String) {
        if let Ok(mut r) = self.requests.lock() {
            r.push(what);
        }
    }
}

#[async_trait]
impl Referents for MemoryReferents {
    async fn secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ReferentError> {
        self.record(format!("secret {namespace}/{name}/{key}"));
        self.secrets
            .get(&(namespace.into(), name.into(), key.into()))
            .map(|v| SecretBytes::new(v.clone()))
            .ok_or_else(|| ReferentError::SecretNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })
    }

    async fn config_map_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ReferentError> {
        // AWS stores read no ConfigMap.
        self.record(format!("configmap {namespace}/{name}/{key}"));
        Err(ReferentError::ConfigMapNotFound {
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[String],
        expiration_seconds: i64,
    ) -> Result<SecretBytes, ReferentError> {
        self.record(format!(
            "token {namespace}/{name} aud={} exp={expiration_seconds}",
            audiences.join(",")
        ));
        if self.refuse_tokens {
            return Err(ReferentError::Token {
                namespace: namespace.into(),
                name: name.into(),
                message: "serviceaccounts \"gone\" not found".into(),
            });
        }
        Ok(SecretBytes::from(
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl".to_owned(),
        ))
    }

    async fn service_account_annotations(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, ReferentError> {
        self.record(format!("serviceaccount {namespace}/{name}"));
        self.annotations
            .get(&(namespace.into(), name.into()))
            .cloned()
            .ok_or_else(|| ReferentError::Api {
                what: format!("serviceaccount {namespace}/{name}"),
                message: "not found".into(),
            })
    }
}

fn key_selector(name: &str, namespace: Option<&str>, key: &str) -> Option<SecretKeySelector> {
    Some(SecretKeySelector {
        name: name.into(),
        namespace: namespace.map(Into::into),
        key: key.into(),
    })
}

fn static_auth(namespace: Option<&str>) -> AwsAuth {
    AwsAuth {
        secret_ref: Some(AwsAuthSecretRef {
            access_key_id: key_selector("aws-creds", namespace, "access-key-id"),
            secret_access_key: key_selector("aws-creds", namespace, "secret-access-key"),
            session_token: None,
        }),
        jwt: None,
    }
}

fn jwt_auth(service_account: &str, audiences: &[&str]) -> AwsAuth {
    AwsAuth {
        secret_ref: None,
        jwt: Some(AwsJwtAuth {
            service_account_ref: Some(ServiceAccountSelector {
                name: service_account.into(),
                namespace: None,
                audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            }),
        }),
    }
}

fn store(region: &str, auth: Option<AwsAuth>) -> AwsProvider {
    AwsProvider {
        service: AwsServiceType::SecretsManager,
        region: region.into(),
        auth,
        ..Default::default()
    }
}

fn scope(kind: StoreKind, namespace: &str) -> StoreScope {
    StoreScope {
        kind,
        name: "aws".into(),
        namespace: namespace.into(),
    }
}

const SECRET_ACCESS_KEY: &str = "static-secret-access-key-do-not-log";

fn creds_referents(ns: &str) -> MemoryReferents {
    MemoryReferents::default()
        .with_secret(ns, "aws-creds", "access-key-id", "AKIDSTATICTEST\n")
        .with_secret(ns, "aws-creds", "secret-access-key", SECRET_ACCESS_KEY)
}

// ---------------------------------------------------------------------------------------------
// get

#[tokio::test]
async fn get_reads_a_secret_by_name_and_by_full_arn() {
    let (sdk, sm) = setup().await;
    let name = unique_name("get/by-name");
    let arn = create(&sm, &name, r#"{"user":"admin"}"#, &[]).await;
    let client = SecretsManagerClient::from_sdk_config(&sdk, "");

    let by_name = client
        .get(&RemoteRef::key(&name))
        .await
        .expect("get by name");
    assert_eq!(text(&by_name), r#"{"user":"admin"}"#);
    let by_arn = client.get(&RemoteRef::key(&arn)).await.expect("get by ARN");
    assert_eq!(text(&by_arn), r#"{"user":"admin"}"#);
}

#[tokio::test]
async fn get_prepends_the_store_prefix_to_the_key() {
    let (sdk, sm) = setup().await;
    let prefix = format!("{}/", unique_name("prefixed"));
    create(&sm, &format!("{prefix}db"), "in-prefix", &[]).await;
    let client = SecretsManagerClient::from_sdk_config(&sdk, prefix);

    let value = client.get(&RemoteRef::key("db")).await.expect("get");
    assert_eq!(text(&value), "in-prefix");
}

#[tokio::test]
async fn get_reads_a_version_stage_and_a_uuid_version_id() {
    let (sdk, sm) = setup().await;
    let name = unique_name("get/versions");
    create(&sm, &name, "first", &[]).await;
    let first_id = sm
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .expect("read first version")
        .version_id
        .expect("version id");
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string("second")
        .send()
        .await
        .expect("put second version");
    let client = SecretsManagerClient::from_sdk_config(&sdk, "");

    let current = client.get(&RemoteRef::key(&name)).await.expect("current");
    assert_eq!(text(&current), "second");
    let explicit = client
        .get(&versioned(&name, "AWSCURRENT"))
        .await
        .expect("AWSCURRENT");
    assert_eq!(text(&explicit), "second");
    let previous = client
        .get(&versioned(&name, "AWSPREVIOUS"))
        .await
        .expect("AWSPREVIOUS");
    assert_eq!(text(&previous), "first");
    let by_id = client
        .get(&versioned(&name, &format!("uuid/{first_id}")))
        .await
        .expect("by version id");
    assert_eq!(text(&by_id), "first");
}

#[tokio::test]
async fn get_returns_binary_secrets_byte_for_byte() {
    let (sdk, sm) = setup().await;
    let name = unique_name("get/binary");
    let bytes = vec![0u8, 159, 146, 150, 255, b'\n', 0];
    sm.create_secret()
        .name(&name)
        .secret_binary(Blob::new(bytes.clone()))
        .send()
        .await
        .expect("create binary");
    let client = SecretsManagerClient::from_sdk_config(&sdk, "");

    let value = client.get(&RemoteRef::key(&name)).await.expect("get");
    assert_eq!(value.expose(), bytes.as_slice());
}

#[tokio::test]
async fn a_missing_secret_is_not_found_and_not_retryable() {
    let (sdk, _) = setup().await;
    let client = SecretsManagerClient::from_sdk_config(&sdk, "");
    let name = unique_name("get/missing");

    let err = client
        .get(&RemoteRef::key(&name))
        .await
        .expect_err("missing");
    assert!(
        matches!(&err, ProviderError::NotFound { key } if *key == name),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let err = client
        .get(&RemoteRef {
            metadata: true,
            ..RemoteRef::key(&name)
        })
        .await
        .expect_err("missing metadata");
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_secret_scheduled_for_deletion_is_not_found() {
    let (sdk, sm) = setup().await;
    let name = unique_name("get/deleted");
    create(&sm, &name, "doomed", &[]).await;
    sm.delete_secret()
        .secret_id(&name)
        .recovery_window_in_days(7)
        .send()
        .await
        .expect("delete");
    let client = SecretsManagerClient::from_sdk_config(&sdk, "");

    let err = client
        .get(&RemoteRef::key(&name))
        .await
        .expect_err("deleted");
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn metadata_is_the_secrets_tags_as_a_json_object() {
    let (sdk, sm) = setup().await;
    let name = unique_name("get/metadata");
    create(
        &sm,
        &name,
        "value",
        &[("team", "payments"), ("env", "prod")],
    )
    .await;
    let client = SecretsManagerClient::from_sdk_config(&sdk, "");

    let value = client
        .get(&RemoteRef {
            metadata: true,
            ..RemoteRef::key(&name)
        })
        .await
        .expect("metadata");
    let tags: BTreeMap<String, String> =
        serde_json::from_slice(value.expose()).expect("metadata is a JSON object of strings");
    assert_eq!(
        tags,
        BTreeMap::from([
            ("env".to_owned(), "prod".to_owned()),
            ("team".to_owned(), "payments".to_owned()),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// find

/// Secrets `<base>/app/a`, `<base>/app/b` (tagged), `<base>/other/c` (tagged), `<base>-x`.
async fn find_fixture(sm: &SecretsManager) -> (String, String) {
    let base = unique_name("find");
    let tag = unique_name("tag");
    create(sm, &format!("{base}/app/a"), "A", &[]).await;
    create(sm, &format!("{base}/app/b"), "B", &[(tag.as_str(), "yes")]).await;
    create(
        sm,
        &format!("{base}/other/c"),
        "C",
        &[(tag.as_str(), "yes")],
    )
    .await;
    create(sm, &format!("{base}-x"), "X", &[]).await;
    (base, tag)
}

#[tokio::test]
async fn find_by_name_lists_secrets_and_matches_the_regexp_unanchored() {
    let (sdk, sm) = setup().await;
    let (base, _) = find_fixture(&sm).await;
    let client = SecretsManagerClient::from_sdk_config(&sdk, "");

    let found = client
        .find(&Find {
            name_regexp: Some(format!("{base}/(app|other)/")),
            ..Default::default()
        })
        .await
        .expect("find");
    assert_eq!(
        texts(&found),
        BTreeMap::from([
            (format!("{base}/app/a"), "A".to_owned()),
            (format!("{base}/app/b"), "B".to_owned()),
            (format!("{base}/other/c"), "C".to_owned()),
        ])
    );
}

#[tokio::test]
async fn find_by_path_narrows_a_find_by_name_and_alone_is_refused_as_in_eso() {
    let (sdk, sm) = setup().await;
    let (base, _) = find_fixture(&sm).await;
    let client = SecretsManagerClient::from_sdk_config(&sdk, "");

    // ESO's AWS provider finds by name or by tags ("unexpected find operator" otherwise).
    let alone = client
        .find(&Find {
            path: Some(format!("{base}/app/")),
            ..Default::default()
        })
        .await
        .expect_err("a path alone");
    assert!(
        matches!(&alone, ProviderError::Config(m) if m.contains("name.regexp or tags")),
        "{alone:?}"
    );
    let under = client
        .find(&Find {
            path: Some(format!("{base}/app/")),
            name_regexp: Some(".".into()),
            ..Default::default()
        })
        .await
        .expect("find by path");
    assert_eq!(
        under.keys().cloned().collect::<Vec<_>>(),
        [format!("{base}/app/a"), format!("{base}/app/b")]
    );
    let matching = client
        .find(&Find {
            path: Some(format!("{base}/")),
            name_regexp: Some("/b$".into()),
            ..Default::default()
        })
        .await
        .expect("find by path and name");
    assert_eq!(
        texts(&matching),
        BTreeMap::from([(format!("{base}/app/b"), "B".to_owned())])
    );
}

#[tokio::test]
async fn find_by_tags_reads_the_tagged_secrets() {
    let (sdk, sm) = setup().await;
    let (base, tag) = find_fixture(&sm).await;
    let client = SecretsManagerClient::from_sdk_config(&sdk, "");
    let tags = BTreeMap::from([(tag.clone(), "yes".to_owned())]);

    let tagged = client
        .find(&Find {
            tags: tags.clone(),
            ..Default::default()
        })
        .await
        .expect("find by tags");
    assert_eq!(
        texts(&tagged),
        BTreeMap::from([
            (format!("{base}/app/b"), "B".to_owned()),
            (format!("{base}/other/c"), "C".to_owned()),
        ])
    );
    let tagged_under_path = client
        .find(&Find {
            tags: tags.clone(),
            path: Some(format!("{base}/other/")),
            ..Default::default()
        })
        .await
        .expect("find by tags and path");
    assert_eq!(
        tagged_under_path.keys().cloned().collect::<Vec<_>>(),
        [format!("{base}/other/c")]
    );
    let tagged_and_named = client
        .find(&Find {
            tags,
            name_regexp: Some("/app/".into()),
            ..Default::default()
        })
        .await
        .expect("find by tags and name");
    assert_eq!(
        tagged_and_named.keys().cloned().collect::<Vec<_>>(),
        [format!("{base}/app/b")]
    );
}

#[tokio::test]
async fn find_reads_every_page_when_more_than_a_hundred_secrets_match() {
    let (sdk, sm) = setup().await;
    let base = unique_name("many");
    let count = 105;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let sm = sm.clone();
        let name = format!("{base}/s{i:03}");
        tasks.spawn(async move { create(&sm, &name, &format!("v{i}"), &[]).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("create task");
    }
    let client = SecretsManagerClient::from_sdk_config(&sdk, "");

    let listed = client
        .find(&Find {
            name_regexp: Some(format!("^{base}/")),
            ..Default::default()
        })
        .await
        .expect("find by name");
    assert_eq!(listed.len(), count);
    assert_eq!(
        listed.get(&format!("{base}/s104")).map(text).as_deref(),
        Some("v104")
    );
    let batched = client
        .find(&Find {
            path: Some(format!("{base}/")),
            name_regexp: Some(".".into()),
            ..Default::default()
        })
        .await
        .expect("find by path");
    assert_eq!(batched.len(), count);
    assert_eq!(texts(&listed), texts(&batched));
}

#[tokio::test]
async fn find_with_nothing_to_match_on_is_a_configuration_error() {
    let (sdk, _) = setup().await;
    let client = SecretsManagerClient::from_sdk_config(&sdk, "");
    let err = client.find(&Find::default()).await.expect_err("empty find");
    assert!(matches!(err, ProviderError::Config(_)), "{err:?}");
    let err = client
        .find(&Find {
            name_regexp: Some("(unclosed".into()),
            ..Default::default()
        })
        .await
        .expect_err("bad regexp");
    assert!(matches!(err, ProviderError::Config(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// credentials and validation

#[tokio::test]
async fn static_credentials_are_read_from_the_stores_own_namespace() {
    let (sdk, sm) = setup().await;
    let name = unique_name("auth/static");
    create(&sm, &name, "via-static-keys", &[]).await;
    let referents = Arc::new(creds_referents("team-a"));
    // A SecretStore ignores the namespace written in the reference.
    let provider = store("us-east-1", Some(static_auth(Some("elsewhere"))));

    let client = SecretsManagerClient::with_base_config(
        &provider,
        &scope(StoreKind::SecretStore, "team-a"),
        referents.clone(),
        &sdk,
    )
    .await
    .expect("client");
    assert_eq!(
        client.validate().await.expect("validate"),
        Validation::Ready
    );
    let value = client.get(&RemoteRef::key(&name)).await.expect("get");
    assert_eq!(text(&value), "via-static-keys");
    assert_eq!(
        referents.requests(),
        [
            "secret team-a/aws-creds/access-key-id",
            "secret team-a/aws-creds/secret-access-key"
        ]
    );
}

#[tokio::test]
async fn a_cluster_store_reads_credentials_in_the_references_namespace() {
    let (sdk, _) = setup().await;
    let referents = Arc::new(creds_referents("creds-ns"));
    let provider = store("us-east-1", Some(static_auth(Some("creds-ns"))));

    let client = SecretsManagerClient::with_base_config(
        &provider,
        &scope(StoreKind::ClusterSecretStore, "consumer-ns"),
        referents.clone(),
        &sdk,
    )
    .await
    .expect("client");
    assert_eq!(
        client.validate().await.expect("validate"),
        Validation::Ready
    );
    assert!(
        referents
            .requests()
            .iter()
            .all(|r| r.starts_with("secret creds-ns/")),
        "{:?}",
        referents.requests()
    );
}

#[tokio::test]
async fn a_cluster_store_with_referent_auth_validates_as_unknown_without_credentials() {
    let (sdk, _) = setup().await;
    let referents = Arc::new(MemoryReferents::default());
    let provider = store("us-east-1", Some(static_auth(None)));

    let client = SecretsManagerClient::with_base_config(
        &provider,
        &scope(StoreKind::ClusterSecretStore, ""),
        referents.clone(),
        &sdk,
    )
    .await
    .expect("client");
    assert_eq!(
        client.validate().await.expect("validate"),
        Validation::Unknown
    );
    assert!(
        referents.requests().is_empty(),
        "{:?}",
        referents.requests()
    );
    let err = client
        .get(&RemoteRef::key("anything"))
        .await
        .expect_err("no namespace");
    assert!(matches!(err, ProviderError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn a_missing_credentials_secret_is_a_referent_error() {
    let (sdk, _) = setup().await;
    let provider = store("us-east-1", Some(static_auth(None)));
    let err = SecretsManagerClient::with_base_config(
        &provider,
        &scope(StoreKind::SecretStore, "no-creds-here"),
        Arc::new(MemoryReferents::default()),
        &sdk,
    )
    .await
    .err()
    .expect("no credentials secret");
    assert!(matches!(err, ProviderError::Referent(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn an_assumed_role_acts_in_the_roles_account() {
    let (sdk, sm) = setup().await;
    let name = unique_name("auth/role");
    create(&sm, &name, "default-account", &[]).await;
    let provider = AwsProvider {
        role: Some(format!("arn:aws:iam::{OTHER_ACCOUNT}:role/reader")),
        additional_roles: vec!["arn:aws:iam::123456789012:role/hop".into()],
        external_id: Some("ext-id".into()),
        ..store("us-east-1", Some(static_auth(None)))
    };
    let client = SecretsManagerClient::with_base_config(
        &provider,
        &scope(StoreKind::SecretStore, "team-a"),
        Arc::new(creds_referents("team-a")),
        &sdk,
    )
    .await
    .expect("client");

    // moto puts the role's credentials in the role's account, where this secret does not exist.
    assert_eq!(
        client.validate().await.expect("validate"),
        Validation::Ready
    );
    let err = client
        .get(&RemoteRef::key(&name))
        .await
        .expect_err("other account");
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
    // The same secret, read without the role, exists.
    let direct = SecretsManagerClient::from_sdk_config(&sdk, "");
    assert!(direct.get(&RemoteRef::key(&name)).await.is_ok());
}

#[tokio::test]
async fn web_identity_exchanges_a_service_account_token_for_the_annotated_role() {
    let (sdk, sm) = setup().await;
    let name = unique_name("auth/jwt");
    create(&sm, &name, "default-account", &[]).await;
    let referents = Arc::new(MemoryReferents::default().with_service_account(
        "team-a",
        "reader",
        &[(
            "eks.amazonaws.com/role-arn",
            &format!("arn:aws:iam::{OTHER_ACCOUNT}:role/irsa"),
        )],
    ));
    let provider = store("us-east-1", Some(jwt_auth("reader", &["extra"])));
    let client = SecretsManagerClient::with_base_config(
        &provider,
        &scope(StoreKind::SecretStore, "team-a"),
        referents.clone(),
        &sdk,
    )
    .await
    .expect("client");

    assert_eq!(
        client.validate().await.expect("validate"),
        Validation::Ready
    );
    let err = client
        .get(&RemoteRef::key(&name))
        .await
        .expect_err("other account");
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
    let requests = referents.requests();
    assert_eq!(requests[0], "serviceaccount team-a/reader");
    assert!(
        requests.contains(&"token team-a/reader aud=sts.amazonaws.com,extra exp=600".to_owned()),
        "{requests:?}"
    );
}

#[tokio::test]
async fn web_identity_without_a_role_is_a_configuration_error() {
    let (sdk, _) = setup().await;
    let referents = Arc::new(MemoryReferents::default().with_service_account("team-a", "sa", &[]));
    let provider = store("us-east-1", Some(jwt_auth("sa", &[])));
    let err = SecretsManagerClient::with_base_config(
        &provider,
        &scope(StoreKind::SecretStore, "team-a"),
        referents,
        &sdk,
    )
    .await
    .err()
    .expect("no role");
    assert!(
        matches!(&err, ProviderError::Config(m) if m.contains("eks.amazonaws.com/role-arn")),
        "{err:?}"
    );
}

#[tokio::test]
async fn parameter_store_is_refused_with_a_configuration_error() {
    let (sdk, _) = setup().await;
    let provider = AwsProvider {
        service: AwsServiceType::ParameterStore,
        ..store("us-east-1", None)
    };
    let err = SecretsManagerClient::with_base_config(
        &provider,
        &scope(StoreKind::SecretStore, "team-a"),
        Arc::new(MemoryReferents::default()),
        &sdk,
    )
    .await
    .err()
    .expect("unsupported service");
    assert!(matches!(err, ProviderError::Config(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// hygiene

#[tokio::test]
async fn a_failing_token_request_is_an_auth_error_naming_the_service_account() {
    let (sdk, _) = setup().await;
    let referents = MemoryReferents {
        refuse_tokens: true,
        ..MemoryReferents::default().with_service_account(
            "team-a",
            "gone",
            &[(
                "eks.amazonaws.com/role-arn",
                "arn:aws:iam::123456789012:role/r",
            )],
        )
    };
    let provider = store("us-east-1", Some(jwt_auth("gone", &[])));
    let client = SecretsManagerClient::with_base_config(
        &provider,
        &scope(StoreKind::SecretStore, "team-a"),
        Arc::new(referents),
        &sdk,
    )
    .await
    .expect("client (the token is requested when credentials are first needed)");

    let err = client
        .get(&RemoteRef::key("any"))
        .await
        .expect_err("no token");
    assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("team-a/gone"), "{err}");
    assert!(err.is_retryable());
}

/// Every text an error can be rendered as: Display, Debug and each source.
fn renderings(err: &ProviderError) -> Vec<String> {
    let mut texts = vec![err.to_string(), format!("{err:?}")];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        texts.push(s.to_string());
        texts.push(format!("{s:?}"));
        source = s.source();
    }
    texts
}

#[tokio::test]
async fn error_messages_carry_no_secret_values_or_credentials() {
    let (sdk, sm) = setup().await;
    let value = "s3cr3t-value-that-must-not-leak";
    let name = unique_name("hygiene");
    create(&sm, &name, value, &[]).await;
    let client = SecretsManagerClient::from_sdk_config(&sdk, "");
    // Nothing listens on port 9: transport failures, once each.
    let unreachable = sdk
        .to_builder()
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();

    let mut errors = vec![
        client
            .get(&versioned(
                &name,
                "uuid/00000000-0000-0000-0000-000000000000",
            ))
            .await
            .expect_err("unknown version id"),
        client
            .get(&versioned(&name, "NO_SUCH_STAGE"))
            .await
            .expect_err("unknown stage"),
        SecretsManagerClient::from_sdk_config(&unreachable, "")
            .get(&RemoteRef::key(&name))
            .await
            .expect_err("unreachable endpoint"),
    ];
    // Static keys, then a role that cannot be assumed: the keys must not show in the failure.
    let provider = AwsProvider {
        role: Some("arn:aws:iam::123456789012:role/r".into()),
        ..store("us-east-1", Some(static_auth(None)))
    };
    let with_keys = SecretsManagerClient::with_base_config(
        &provider,
        &scope(StoreKind::SecretStore, "team-a"),
        Arc::new(creds_referents("team-a")),
        &unreachable,
    )
    .await
    .expect("client");
    let auth = with_keys
        .get(&RemoteRef::key(&name))
        .await
        .expect_err("no STS");
    assert!(matches!(auth, ProviderError::Auth { .. }), "{auth:?}");
    errors.push(auth);

    for err in &errors {
        for text in renderings(err) {
            assert!(!text.contains(value), "value leaked: {text}");
            assert!(
                !text.contains(SECRET_ACCESS_KEY),
                "credential leaked: {text}"
            );
        }
    }
}
