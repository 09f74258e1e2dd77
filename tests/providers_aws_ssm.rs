//! The AWS Parameter Store provider against the real moto_server: reads by name, version number
//! and label, SecureString and StringList values, metadata, every `find` strategy with
//! pagination, and PushSecret (create with the managed-by tag, refusing unmanaged parameters,
//! not rewriting an unchanged value, properties, deleting only what it manages).
//!
//! The client is built as the controller builds it, by `secret_sync_providers::build` from a
//! store spec. Each test makes its own uniquely named parameters under `/secret-sync-tests/`,
//! and deletes them when it ends (passing or not).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_ssm::Client as Ssm;
use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging, Tag};
use secret_sync_crd::provider::{AwsProvider, AwsServiceType};
use secret_sync_crd::{SecretStoreProvider, StoreKind};
use secret_sync_providers::{
    BuildOptions, Find, Provider, ProviderError, PushRef, ReferentError, Referents, RemoteRef,
    SecretBytes, StoreScope, Validation,
};
use secret_sync_tests::{Stack, unique_name};

/// Parameters a test made; deleted when dropped.
struct Owned {
    names: Arc<Mutex<Vec<String>>>,
}

impl Owned {
    fn new() -> Self {
        Self {
            names: Arc::default(),
        }
    }

    fn add(&self, name: &str) {
        if let Ok(mut names) = self.names.lock() {
            names.push(name.to_owned());
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        if names.is_empty() {
            return;
        }
        Stack::clean_up(move |stack| async move {
            let ssm = Ssm::new(&stack.aws().await);
            for chunk in names.chunks(10) {
                if let Err(e) = ssm
                    .delete_parameters()
                    .set_names(Some(chunk.to_vec()))
                    .send()
                    .await
                {
                    eprintln!("cleanup: deleting parameters failed: {e}");
                }
            }
        });
    }
}

/// Stores here read no credentials from Kubernetes.
struct NoReferents;

#[async_trait]
impl Referents for NoReferents {
    async fn secret_key(
        &self,
        ns: &str,
        name: &str,
        _: &str,
    ) -> Result<SecretBytes, ReferentError> {
        Err(ReferentError::SecretNotFound {
            namespace: ns.into(),
            name: name.into(),
        })
    }
    async fn config_map_key(
        &self,
        ns: &str,
        name: &str,
        _: &str,
    ) -> Result<SecretBytes, ReferentError> {
        Err(ReferentError::ConfigMapNotFound {
            namespace: ns.into(),
            name: name.into(),
        })
    }
    async fn service_account_token(
        &self,
        ns: &str,
        name: &str,
        _: &[String],
        _: i64,
    ) -> Result<SecretBytes, ReferentError> {
        Err(ReferentError::Token {
            namespace: ns.into(),
            name: name.into(),
            message: "none".into(),
        })
    }
    async fn service_account_annotations(
        &self,
        _: &str,
        _: &str,
    ) -> Result<BTreeMap<String, String>, ReferentError> {
        Ok(BTreeMap::new())
    }
}

struct Fixture {
    ssm: Ssm,
    sdk: aws_config::SdkConfig,
    region: String,
    owned: Owned,
    /// A fresh path, `/secret-sync-tests/<unique>`, for this test's parameters.
    base: String,
}

async fn setup(what: &str) -> Fixture {
    let stack = Stack::get().await;
    let sdk = stack.aws().await;
    Fixture {
        ssm: Ssm::new(&sdk),
        region: stack.var("AWS_REGION").to_owned(),
        sdk,
        owned: Owned::new(),
        base: format!("/secret-sync-tests/{}", unique_name(what)),
    }
}

impl Fixture {
    /// The client for a ParameterStore SecretStore with `prefix`, built by `build`.
    async fn client(&self, prefix: Option<&str>) -> Arc<dyn Provider> {
        let provider = SecretStoreProvider {
            aws: Some(AwsProvider {
                service: AwsServiceType::ParameterStore,
                region: self.region.clone(),
                prefix: prefix.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        };
        let scope = StoreScope {
            kind: StoreKind::SecretStore,
            name: "ssm".into(),
            namespace: "default".into(),
        };
        let options = BuildOptions {
            aws_base: Some(self.sdk.clone()),
        };
        secret_sync_providers::build(&provider, &scope, Arc::new(NoReferents), &options)
            .await
            .unwrap_or_else(|e| panic!("build: {e}"))
    }

    /// `<base>/<rest>`, owned by this test.
    fn name(&self, rest: &str) -> String {
        let name = format!("{}/{rest}", self.base);
        self.owned.add(&name);
        name
    }

    async fn put(
        &self,
        name: &str,
        value: &str,
        kind: ParameterType,
        tags: &[(&str, &str)],
    ) -> i64 {
        self.owned.add(name);
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build().expect("tag"))
            .collect();
        let request = self
            .ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(kind);
        let request = if tags.is_empty() {
            request.overwrite(true)
        } else {
            request.set_tags(Some(tags))
        };
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {name}: {e:?}"))
            .version
    }

    async fn value_of(&self, name: &str) -> Option<(String, ParameterType, i64)> {
        let out = self
            .ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .ok()?;
        let p = out.parameter?;
        Some((p.value?, p.r#type?, p.version))
    }

    async fn tags_of(&self, name: &str) -> BTreeMap<String, String> {
        self.ssm
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("tags of {name}: {e:?}"))
            .tag_list()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect()
    }
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

fn metadata_of(key: &str) -> RemoteRef {
    RemoteRef {
        metadata: true,
        ..RemoteRef::key(key)
    }
}

fn pairs(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn push_ref(key: &str) -> PushRef {
    PushRef {
        key: key.into(),
        ..PushRef::default()
    }
}

fn push_metadata(spec: serde_json::Value) -> Option<serde_json::Value> {
    Some(serde_json::json!({
        "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
        "kind": "PushSecretMetadata",
        "spec": spec,
    }))
}

// ---------------------------------------------------------------------------------------------
// get

#[tokio::test]
async fn get_reads_the_current_value_a_version_number_and_a_label() {
    let f = setup("get-versions").await;
    let name = f.name("db");
    f.put(&name, "first", ParameterType::String, &[]).await;
    f.put(&name, "second", ParameterType::String, &[]).await;
    f.ssm
        .label_parameter_version()
        .name(&name)
        .parameter_version(1)
        .labels("stable")
        .send()
        .await
        .expect("label version 1");
    let client = f.client(None).await;

    let current = client.get(&RemoteRef::key(&name)).await.expect("current");
    assert_eq!(text(&current), "second");
    let first = client.get(&versioned(&name, "1")).await.expect("version 1");
    assert_eq!(text(&first), "first");
    let labelled = client
        .get(&versioned(&name, "stable"))
        .await
        .expect("label");
    assert_eq!(text(&labelled), "first");

    for missing in ["9", "nolabel"] {
        let err = client
            .get(&versioned(&name, missing))
            .await
            .expect_err("no such version");
        assert!(
            matches!(&err, ProviderError::NotFound { .. }) && !err.is_retryable(),
            "{missing}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_secure_string_is_decrypted_and_a_string_list_is_its_comma_joined_text() {
    let f = setup("get-types").await;
    let secure = f.name("password");
    let list = f.name("hosts");
    f.put(&secure, "s3cr3t-value", ParameterType::SecureString, &[])
        .await;
    f.put(
        &list,
        "a.example,b.example,c",
        ParameterType::StringList,
        &[],
    )
    .await;
    let client = f.client(None).await;

    let value = client.get(&RemoteRef::key(&secure)).await.expect("secure");
    assert_eq!(text(&value), "s3cr3t-value");
    let value = client.get(&RemoteRef::key(&list)).await.expect("list");
    assert_eq!(text(&value), "a.example,b.example,c");
}

#[tokio::test]
async fn get_prepends_the_store_prefix_and_returns_a_json_value_whole() {
    let f = setup("get-prefix").await;
    let name = f.name("app/config");
    f.put(
        &name,
        r#"{"user":"admin","port":5432}"#,
        ParameterType::String,
        &[],
    )
    .await;
    let client = f.client(Some(&format!("{}/", f.base))).await;

    let value = client
        .get(&RemoteRef::key("app/config"))
        .await
        .expect("get");
    assert_eq!(text(&value), r#"{"user":"admin","port":5432}"#);
}

#[tokio::test]
async fn a_missing_parameter_is_not_found_for_its_value_and_its_metadata() {
    let f = setup("get-missing").await;
    let name = format!("{}/nothing", f.base);
    let client = f.client(None).await;

    let err = client
        .get(&RemoteRef::key(&name))
        .await
        .expect_err("missing");
    assert!(
        matches!(&err, ProviderError::NotFound { key } if *key == name),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let err = client.get(&metadata_of(&name)).await.expect_err("missing");
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn metadata_is_the_parameters_tags_as_a_json_object_with_sorted_keys() {
    let f = setup("get-metadata").await;
    let name = f.name("tagged");
    f.put(
        &name,
        "value",
        ParameterType::String,
        &[("team", "payments"), ("env", "prod")],
    )
    .await;
    let client = f.client(None).await;

    let value = client.get(&metadata_of(&name)).await.expect("metadata");
    assert_eq!(text(&value), r#"{"env":"prod","team":"payments"}"#);
}

#[tokio::test]
async fn validate_resolves_the_credentials() {
    let f = setup("validate").await;
    let client = f.client(None).await;
    assert_eq!(client.validate().await.ok(), Some(Validation::Ready));
    assert_eq!(client.metric_name(), "AWS/ParameterStore");
}

// ---------------------------------------------------------------------------------------------
// find

/// `<base>/app/p00`..`p11` (12, more than a page; `p01` tagged `yes`, the others `app`),
/// `<base>/other/q` (tagged `yes`) and `<base>/other/app-like` (tagged `no`). Returns the tag
/// key.
async fn find_fixture(f: &Fixture) -> String {
    let tag = unique_name("tag");
    for i in 0..12 {
        let name = f.name(&format!("app/p{i:02}"));
        let value = if i == 1 { "yes" } else { "app" };
        let tags: &[(&str, &str)] = &[(&tag, value)];
        f.put(&name, &format!("v{i}"), ParameterType::String, tags)
            .await;
    }
    f.put(
        &f.name("other/q"),
        "Q",
        ParameterType::SecureString,
        &[(&tag, "yes")],
    )
    .await;
    f.put(
        &f.name("other/app-like"),
        "L",
        ParameterType::String,
        &[(&tag, "no")],
    )
    .await;
    tag
}

/// `find` until it returns `expected` (at most five tries). moto pages `GetParametersByPath` by
/// an offset into the current list, so when other tests delete parameters that sort earlier
/// between two pages, a page skips some; a search of the whole store (no `path`) crosses every
/// test's parameters and needs this. A search under a test's own path does not.
async fn find_settled(
    client: &dyn Provider,
    find: &Find,
    expected: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for _ in 0..5 {
        found = texts(&client.find(find).await.expect("find"));
        if found == *expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    found
}

#[tokio::test]
async fn find_by_name_without_a_path_searches_the_whole_store_and_matches_unanchored() {
    let f = setup("find-name").await;
    find_fixture(&f).await;
    let client = f.client(None).await;
    let base = regex_escape(&f.base);

    let expected = pairs(&[
        (&format!("{}/app/p10", f.base), "v10"),
        (&format!("{}/app/p11", f.base), "v11"),
    ]);
    let find = Find {
        name_regexp: Some(format!("{base}/app/p1")),
        ..Default::default()
    };
    assert_eq!(
        find_settled(client.as_ref(), &find, &expected).await,
        expected
    );
}

#[tokio::test]
async fn find_by_name_reads_every_page() {
    let f = setup("find-pages").await;
    find_fixture(&f).await;
    let client = f.client(None).await;
    let base = regex_escape(&f.base);

    let found = client
        .find(&Find {
            path: Some(f.base.clone()),
            name_regexp: Some(format!("^{base}/app/p")),
            ..Default::default()
        })
        .await
        .expect("find");
    let names: Vec<_> = found.keys().cloned().collect();
    let expected: Vec<_> = (0..12).map(|i| format!("{}/app/p{i:02}", f.base)).collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn find_by_name_under_a_path_is_recursive_and_decrypts() {
    let f = setup("find-path").await;
    find_fixture(&f).await;
    let client = f.client(None).await;

    let found = client
        .find(&Find {
            path: Some(f.base.clone()),
            name_regexp: Some("app".into()),
            ..Default::default()
        })
        .await
        .expect("find");
    assert_eq!(found.len(), 13, "{:?}", found.keys());
    assert_eq!(
        found
            .get(&format!("{}/other/app-like", f.base))
            .map(text)
            .as_deref(),
        Some("L")
    );

    let found = client
        .find(&Find {
            path: Some(format!("{}/other", f.base)),
            name_regexp: Some(".".into()),
            ..Default::default()
        })
        .await
        .expect("find");
    assert_eq!(
        texts(&found),
        pairs(&[
            (&format!("{}/other/app-like", f.base), "L"),
            (&format!("{}/other/q", f.base), "Q"),
        ])
    );

    // The pattern is Go's: `[a&&q]` is the class {a, &, q} (the regex crate reads an empty
    // intersection) and `\Q...\E` quotes (the regex crate refuses it).
    let found = client
        .find(&Find {
            path: Some(f.base.clone()),
            name_regexp: Some(r"/other/[a&&q]$|\Qapp-like\E".into()),
            ..Default::default()
        })
        .await
        .expect("find by a Go pattern");
    assert_eq!(
        found.keys().cloned().collect::<Vec<_>>(),
        [
            format!("{}/other/app-like", f.base),
            format!("{}/other/q", f.base)
        ]
    );
}

#[tokio::test]
async fn find_by_tags_matches_each_tag_exactly_and_narrows_by_path() {
    let f = setup("find-tags").await;
    let tag = find_fixture(&f).await;
    let client = f.client(None).await;

    let found = client
        .find(&Find {
            tags: pairs(&[(&tag, "yes")]),
            ..Default::default()
        })
        .await
        .expect("find by tags");
    assert_eq!(
        texts(&found),
        pairs(&[
            (&format!("{}/app/p01", f.base), "v1"),
            (&format!("{}/other/q", f.base), "Q"),
        ])
    );

    let found = client
        .find(&Find {
            tags: pairs(&[(&tag, "yes")]),
            path: Some(format!("{}/other", f.base)),
            ..Default::default()
        })
        .await
        .expect("find by tags under a path");
    assert_eq!(
        texts(&found),
        pairs(&[(&format!("{}/other/q", f.base), "Q")])
    );

    let found = client
        .find(&Find {
            tags: pairs(&[(&tag, "app")]),
            ..Default::default()
        })
        .await
        .expect("find by tags over two pages");
    assert_eq!(found.len(), 11, "{:?}", found.keys());
}

#[tokio::test]
async fn find_by_name_ignores_tags_as_eso_does() {
    let f = setup("find-name-tags").await;
    let tag = find_fixture(&f).await;
    let client = f.client(None).await;

    let found = client
        .find(&Find {
            path: Some(f.base.clone()),
            name_regexp: Some("/app/p01$".into()),
            tags: pairs(&[(&tag, "no")]),
        })
        .await
        .expect("find");
    assert_eq!(
        texts(&found),
        pairs(&[(&format!("{}/app/p01", f.base), "v1")])
    );
}

#[tokio::test]
async fn find_with_only_a_path_is_refused_as_in_eso() {
    let f = setup("find-none").await;
    let client = f.client(None).await;
    let err = client
        .find(&Find {
            path: Some(f.base.clone()),
            ..Default::default()
        })
        .await
        .expect_err("no name, no tags");
    assert!(matches!(err, ProviderError::Config(_)), "{err:?}");
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$-".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// PushSecret

#[tokio::test]
async fn push_creates_a_string_parameter_tagged_managed_by_external_secrets() {
    let f = setup("push-create").await;
    let name = f.name("created");
    let client = f.client(None).await;

    assert!(!client.exists(&push_ref(&name)).await.expect("exists"));
    let wrote = client
        .push(&push_ref(&name), b"pushed-value")
        .await
        .expect("push");
    assert!(wrote);
    let (value, kind, version) = f.value_of(&name).await.expect("created");
    assert_eq!(
        (value.as_str(), kind, version),
        ("pushed-value", ParameterType::String, 1)
    );
    assert_eq!(
        f.tags_of(&name).await,
        pairs(&[("managed-by", "external-secrets")])
    );
    assert!(client.exists(&push_ref(&name)).await.expect("exists"));
}

#[tokio::test]
async fn an_unchanged_value_is_not_written_again_and_a_changed_one_is() {
    let f = setup("push-unchanged").await;
    let name = f.name("stable");
    let client = f.client(None).await;

    assert!(client.push(&push_ref(&name), b"same").await.expect("push"));
    assert!(!client.push(&push_ref(&name), b"same").await.expect("again"));
    assert_eq!(f.value_of(&name).await.map(|v| v.2), Some(1));
    assert!(client.push(&push_ref(&name), b"new").await.expect("change"));
    let (value, _, version) = f.value_of(&name).await.expect("updated");
    assert_eq!((value.as_str(), version), ("new", 2));
    assert_eq!(
        f.tags_of(&name).await,
        pairs(&[("managed-by", "external-secrets")])
    );
}

#[tokio::test]
async fn push_refuses_to_overwrite_a_parameter_it_did_not_create() {
    let f = setup("push-unmanaged").await;
    let name = f.name("someone-elses");
    f.put(&name, "theirs", ParameterType::String, &[("owner", "me")])
        .await;
    let client = f.client(None).await;

    let err = client
        .push(&push_ref(&name), b"mine")
        .await
        .expect_err("not managed");
    assert!(
        matches!(&err, ProviderError::NotManaged { key } if *key == name),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        f.value_of(&name).await.map(|v| v.0).as_deref(),
        Some("theirs")
    );
}

#[tokio::test]
async fn push_metadata_sets_the_type_and_tags_and_later_pushes_reconcile_the_tags() {
    let f = setup("push-metadata").await;
    let name = f.name("secure");
    let client = f.client(None).await;
    let first = PushRef {
        metadata: push_metadata(serde_json::json!({
            "secretType": "SecureString",
            "tags": { "team": "a", "old": "x" },
        })),
        ..push_ref(&name)
    };

    assert!(client.push(&first, b"one").await.expect("push"));
    let (value, kind, _) = f.value_of(&name).await.expect("created");
    assert_eq!((value.as_str(), kind), ("one", ParameterType::SecureString));
    assert_eq!(
        f.tags_of(&name).await,
        pairs(&[
            ("managed-by", "external-secrets"),
            ("old", "x"),
            ("team", "a")
        ])
    );

    let second = PushRef {
        metadata: push_metadata(serde_json::json!({
            "secretType": "SecureString",
            "tags": { "team": "b" },
        })),
        ..push_ref(&name)
    };
    assert!(client.push(&second, b"two").await.expect("push"));
    assert_eq!(
        f.tags_of(&name).await,
        pairs(&[("managed-by", "external-secrets"), ("team", "b")])
    );
    let bad = PushRef {
        metadata: push_metadata(serde_json::json!({ "tags": { "managed-by": "me" } })),
        ..push_ref(&name)
    };
    let err = client.push(&bad, b"x").await.expect_err("managed-by tag");
    assert!(matches!(err, ProviderError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn push_with_a_property_sets_that_key_in_the_parameters_json_object() {
    let f = setup("push-property").await;
    let name = f.name("json");
    let client = f.client(None).await;
    let at = |property: &str| PushRef {
        property: Some(property.into()),
        ..push_ref(&name)
    };

    assert!(client.push(&at("user"), b"admin").await.expect("push user"));
    assert!(client.push(&at("pass"), b"pw").await.expect("push pass"));
    assert!(!client.push(&at("user"), b"admin").await.expect("unchanged"));
    let (value, _, _) = f.value_of(&name).await.expect("pushed");
    let object: serde_json::Value = serde_json::from_str(&value).expect("JSON");
    assert_eq!(object, serde_json::json!({ "user": "admin", "pass": "pw" }));
    assert!(client.exists(&at("pass")).await.expect("exists"));
    assert!(!client.exists(&at("nope")).await.expect("exists"));
}

#[tokio::test]
async fn delete_pushed_removes_only_managed_parameters_and_a_missing_one_is_fine() {
    let f = setup("push-delete").await;
    let managed = f.name("managed");
    let unmanaged = f.name("unmanaged");
    f.put(
        &unmanaged,
        "keep",
        ParameterType::String,
        &[("owner", "me")],
    )
    .await;
    let client = f.client(None).await;
    client
        .push(&push_ref(&managed), b"temp")
        .await
        .expect("push");

    client
        .delete_pushed(&push_ref(&managed))
        .await
        .expect("delete managed");
    assert_eq!(f.value_of(&managed).await, None);
    client
        .delete_pushed(&push_ref(&managed))
        .await
        .expect("delete missing");
    client
        .delete_pushed(&push_ref(&unmanaged))
        .await
        .expect("leave unmanaged");
    assert_eq!(
        f.value_of(&unmanaged).await.map(|v| v.0).as_deref(),
        Some("keep")
    );
}
