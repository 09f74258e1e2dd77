use secret_sync_crd::StoreKind;
use secret_sync_crd::provider::{AwsAuth, AwsAuthSecretRef};
use secret_sync_crd::{SecretKeySelector, SecretStoreProvider};

use super::*;
use crate::{BuildOptions, ReferentError};

#[test]
fn a_version_or_label_is_appended_as_a_selector() {
    assert_eq!(with_selector("/app/db", None), "/app/db");
    assert_eq!(with_selector("/app/db", Some("")), "/app/db");
    assert_eq!(with_selector("/app/db", Some("3")), "/app/db:3");
    assert_eq!(with_selector("/app/db", Some("prod")), "/app/db:prod");
}

#[test]
fn each_tag_is_an_equals_filter_on_its_key_and_a_path_is_recursive() {
    let filters = tag_filters(&BTreeMap::from([
        ("env".to_owned(), "prod".to_owned()),
        ("team".to_owned(), "a".to_owned()),
    ]))
    .expect("filters");
    let path = path_filter(Some("/app")).expect("filter");
    let shown: Vec<_> = filters
        .iter()
        .chain(path.iter())
        .map(|f| (f.key(), f.option(), f.values().to_vec()))
        .collect();
    assert_eq!(
        shown,
        [
            ("tag:env", Some("Equals"), vec!["prod".to_owned()]),
            ("tag:team", Some("Equals"), vec!["a".to_owned()]),
            ("Path", Some("Recursive"), vec!["/app".to_owned()]),
        ]
    );
    assert!(path_filter(None).expect("no filter").is_empty());
}

#[test]
fn missing_parameters_versions_and_tagged_resources_are_not_found() {
    assert!(is_not_found("GetParameter", "ParameterNotFound"));
    assert!(is_not_found("GetParameter", "ParameterVersionNotFound"));
    assert!(is_not_found("ListTagsForResource", "InvalidResourceId"));
    assert!(!is_not_found("GetParameter", "InvalidResourceId"));
    assert!(!is_not_found("GetParameter", "AccessDeniedException"));
}

/// Referents for stores that read none.
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

fn store(service: AwsServiceType, auth: Option<AwsAuth>) -> SecretStoreProvider {
    SecretStoreProvider {
        aws: Some(AwsProvider {
            service,
            region: "eu-west-1".into(),
            auth,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn base() -> BuildOptions {
    let sdk = SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    BuildOptions {
        aws_base: Some(sdk),
    }
}

#[tokio::test]
async fn build_makes_a_parameter_store_client_for_a_parameter_store_store() {
    let scope = StoreScope {
        kind: StoreKind::SecretStore,
        name: "s".into(),
        namespace: "ns".into(),
    };
    let client = crate::build(
        &store(AwsServiceType::ParameterStore, None),
        &scope,
        Arc::new(NoReferents),
        &base(),
    )
    .await
    .ok();
    assert_eq!(
        client
            .as_ref()
            .map(|c| (c.metric_name(), c.get_call_name())),
        Some(("AWS/ParameterStore", "GetParameter"))
    );
    let err = crate::build(
        &store(AwsServiceType::CertificateManager, None),
        &scope,
        Arc::new(NoReferents),
        &base(),
    )
    .await
    .err();
    assert!(
        matches!(&err, Some(ProviderError::Config(m)) if m.contains("CertificateManager")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_cluster_store_with_referent_auth_validates_to_unknown_without_a_namespace() {
    let auth = AwsAuth {
        secret_ref: Some(AwsAuthSecretRef {
            access_key_id: Some(SecretKeySelector {
                name: "aws".into(),
                key: "id".into(),
                ..Default::default()
            }),
            secret_access_key: Some(SecretKeySelector {
                name: "aws".into(),
                key: "secret".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let scope = StoreScope {
        kind: StoreKind::ClusterSecretStore,
        name: "c".into(),
        namespace: String::new(),
    };
    let client = crate::build(
        &store(AwsServiceType::ParameterStore, Some(auth)),
        &scope,
        Arc::new(NoReferents),
        &base(),
    )
    .await
    .expect("client");
    assert_eq!(client.validate().await.ok(), Some(Validation::Unknown));
    assert!(matches!(
        client.get(&RemoteRef::key("k")).await,
        Err(ProviderError::Config(_))
    ));
}

#[tokio::test]
async fn find_without_name_or_tags_is_refused_as_in_eso() {
    let sdk = SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let client = ParameterStoreClient::from_sdk_config(&sdk, "");
    let err = client
        .find(&Find {
            path: Some("/app".into()),
            ..Default::default()
        })
        .await
        .err();
    assert!(matches!(err, Some(ProviderError::Config(_))), "{err:?}");
    let err = client
        .find(&Find {
            name_regexp: Some("(".into()),
            ..Default::default()
        })
        .await
        .err();
    assert!(
        matches!(&err, Some(ProviderError::Config(m)) if m.contains("find.name.regexp")),
        "{err:?}"
    );
    // A Go pattern the regex crate refuses (`\Q...\E`, `[[]`) compiles: the find gets past
    // the pattern, to the (absent) service.
    let err = client
        .find(&Find {
            name_regexp: Some(r"^\Qa.b\E[[]$".into()),
            ..Default::default()
        })
        .await
        .err();
    assert!(
        !matches!(&err, Some(ProviderError::Config(m)) if m.contains("find.name.regexp")),
        "{err:?}"
    );
}
