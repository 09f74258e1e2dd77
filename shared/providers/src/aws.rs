//! AWS Secrets Manager (`spec.provider.aws` with `service: SecretsManager`).
//!
//! Behaviour follows ESO's provider (`providers/v1/aws/secretsmanager/secretsmanager.go`,
//! `providers/v1/aws/provider.go`, `providers/v1/aws/util/provider.go` in external-secrets):
//!
//! - **get**: the secret id is `prefix + key` (a name or a full ARN). No version reads the
//!   `AWSCURRENT` stage; `uuid/<id>` reads that VersionId; any other version is a VersionStage.
//!   The value is the SecretString, or the SecretBinary bytes.
//! - **metadata** (`metadataPolicy: Fetch`): `DescribeSecret` tags as one JSON object
//!   `{"tagKey":"tagValue",...}` with sorted keys (ESO's `SecretTagsToJSONString`).
//! - **not found**: `ResourceNotFoundException`, or an invalid-parameter/-request error saying
//!   the secret was marked for deletion.
//! - **find**: `name` without `path` lists secrets (`ListSecrets`, filtered by tags when given)
//!   and matches the regular expression on each name; `path` (with or without `name`) and `tags`
//!   alone use `BatchGetSecretValue` with `name` (path prefix) and `tag-key`/`tag-value` filters,
//!   the regular expression applied here. Values are read 20 at a time with
//!   `BatchGetSecretValue` (ESO reads one `GetSecretValue` per listed secret). Keys are the
//!   secret names as AWS reports them: the store `prefix` is not applied to `find`, as in ESO.
//!   AWS filters match by prefix, so a tag value `prod` also selects `production` (as in ESO).
//! - **validate**: a ClusterSecretStore whose credentials references lack a namespace (referent
//!   auth) is `Unknown` without calling AWS; otherwise one `ListSecrets` call with
//!   `MaxResults=1` proves the credentials (an `AccessDeniedException` proves them too: the
//!   caller was authenticated, it only may not list).
//!
//! The SDK client is built once per store and reused; it caches credentials and refreshes them
//! before they expire. Errors carry the AWS error code and message (which never contain secret
//! values) and the secret id.

pub(crate) mod auth;
pub(crate) mod kind;
mod parameter_store;

pub use kind::SecretsManagerKind;
pub use parameter_store::{ParameterStoreClient, ParameterStoreKind};

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{ApiErrorType, Filter, FilterNameStringType};
use secret_sync_crd::StoreKind;
use secret_sync_crd::provider::{AwsProvider, AwsServiceType};
use secret_sync_gosem::GoRegexp;

use crate::{
    Find, MANAGED_BY, Provider, ProviderError, PushRef, Referents, RemoteRef, SecretBytes,
    StoreScope, Validation,
};

/// The stage read when `remoteRef.version` is unset.
const CURRENT_STAGE: &str = "AWSCURRENT";
/// The `remoteRef.version` prefix that selects a VersionId instead of a stage.
const VERSION_ID_PREFIX: &str = "uuid/";
/// `BatchGetSecretValue` takes at most 20 secret ids, and returns at most 20 values a page.
const BATCH_SIZE: usize = 20;
/// `ListSecrets` page size (the AWS maximum).
const LIST_PAGE_SIZE: i32 = 100;

/// A client for one Secrets Manager store.
pub struct SecretsManagerClient {
    /// `None` for a ClusterSecretStore with referent auth built without a namespace: it can only
    /// be validated (to `Unknown`), not read from.
    client: Option<aws_sdk_secretsmanager::Client>,
    prefix: String,
    /// A ClusterSecretStore whose credentials are read in each ExternalSecret's namespace.
    referent_auth: bool,
    /// How PushSecret deletions delete (`spec.provider.aws.secretsManager`).
    deletion: secret_sync_crd::provider::AwsSecretsManager,
    /// Reads the ConfigMap or Secret a PushSecret's `resourcePolicy` names.
    referents: Option<Arc<dyn Referents>>,
}

impl SecretsManagerClient {
    /// Builds the client for a store: the store's region, the standard AWS environment
    /// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`, the default credentials chain
    /// when the store has no `auth`), then the store's credentials and roles.
    pub async fn new(
        provider: &AwsProvider,
        scope: &StoreScope,
        referents: Arc<dyn Referents>,
    ) -> Result<Self, ProviderError> {
        check_service(provider)?;
        let base = StoreConfig::environment(provider).await;
        Self::with_base_config(provider, scope, referents, &base).await
    }

    /// As [`new`](Self::new), on top of `base` instead of the process environment: `base`
    /// supplies the endpoint, HTTP client, retry settings, and the credentials used when the
    /// store has no `auth`; the store's region and credentials replace `base`'s. Tests use this
    /// to reach a local server without process environment variables.
    pub async fn with_base_config(
        provider: &AwsProvider,
        scope: &StoreScope,
        referents: Arc<dyn Referents>,
        base: &SdkConfig,
    ) -> Result<Self, ProviderError> {
        check_service(provider)?;
        let store = StoreConfig::build(provider, scope, referents.clone(), base).await?;
        let client = store.sdk.as_ref().map(|sdk| {
            tracing::debug!(
                store = %scope.name,
                kind = %scope.kind,
                namespace = %scope.namespace,
                region = %provider.region,
                "built AWS Secrets Manager client"
            );
            aws_sdk_secretsmanager::Client::new(sdk)
        });
        Ok(Self {
            client,
            prefix: store.prefix,
            referent_auth: store.referent_auth,
            deletion: provider.secrets_manager.clone().unwrap_or_default(),
            referents: Some(referents),
        })
    }

    /// A client that uses `config` as it is (endpoint, region, credentials), with `prefix` added
    /// to every key `get` reads.
    pub fn from_sdk_config(config: &SdkConfig, prefix: impl Into<String>) -> Self {
        Self {
            client: Some(aws_sdk_secretsmanager::Client::new(config)),
            prefix: prefix.into(),
            referent_auth: false,
            deletion: Default::default(),
            referents: None,
        }
    }

    fn client(&self) -> Result<&aws_sdk_secretsmanager::Client, ProviderError> {
        self.client.as_ref().ok_or_else(|| {
            ProviderError::Config(
                "this ClusterSecretStore reads its AWS credentials in the namespace of each \
                 ExternalSecret (referent auth); build the client with that namespace"
                    .into(),
            )
        })
    }

    async fn get_value(
        &self,
        id: &str,
        version: Option<&str>,
    ) -> Result<SecretBytes, ProviderError> {
        let client = self.client()?;
        let request = client.get_secret_value().secret_id(id);
        let request = match version.filter(|v| !v.is_empty()) {
            None => request.version_stage(CURRENT_STAGE),
            Some(v) => match v.strip_prefix(VERSION_ID_PREFIX) {
                Some(version_id) => request.version_id(version_id),
                None => request.version_stage(v),
            },
        };
        tracing::debug!(key = %id, version = version.unwrap_or(CURRENT_STAGE), "GetSecretValue");
        let out = request
            .send()
            .await
            .map_err(|e| from_sdk_error("GetSecretValue", id, e))?;
        value_of(out.secret_string, out.secret_binary).ok_or_else(|| ProviderError::Provider {
            operation: "GetSecretValue",
            message: format!("secret {id:?} has neither a string nor a binary value"),
            source: None,
        })
    }

    async fn get_tags(&self, id: &str) -> Result<SecretBytes, ProviderError> {
        let client = self.client()?;
        tracing::debug!(key = %id, "DescribeSecret (metadata)");
        let out = client
            .describe_secret()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| from_sdk_error("DescribeSecret", id, e))?;
        let tags = out
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        Ok(SecretBytes::from(tags_json(&tags)))
    }

    /// `ListSecrets` (all pages), then the values of the secrets whose names match.
    async fn find_by_listing(
        &self,
        filters: Vec<Filter>,
        matcher: &GoRegexp,
    ) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        let client = self.client()?;
        let filters = (!filters.is_empty()).then_some(filters);
        let mut ids = Vec::new();
        let mut next_token = None;
        loop {
            tracing::debug!(
                "ListSecrets to find secrets by name; a find with a path reads fewer secrets"
            );
            let page = client
                .list_secrets()
                .max_results(LIST_PAGE_SIZE)
                .set_filters(filters.clone())
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| from_sdk_error("ListSecrets", "find", e))?;
            for entry in page.secret_list() {
                let (Some(name), Some(arn)) = (entry.name(), entry.arn()) else {
                    continue;
                };
                if matcher.is_match(name) {
                    ids.push(arn.to_owned());
                }
            }
            match page.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => break,
            }
        }
        let mut found = BTreeMap::new();
        for chunk in ids.chunks(BATCH_SIZE) {
            let mut next_token = None;
            loop {
                tracing::debug!(secrets = chunk.len(), "BatchGetSecretValue by id");
                let page = client
                    .batch_get_secret_value()
                    .set_secret_id_list(Some(chunk.to_vec()))
                    .set_next_token(next_token.take())
                    .send()
                    .await
                    .map_err(|e| from_sdk_error("BatchGetSecretValue", "find", e))?;
                next_token = collect_batch(page, None, &mut found)?;
                if next_token.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// `BatchGetSecretValue` with filters (all pages), the regular expression applied here.
    async fn find_by_batch(
        &self,
        filters: Vec<Filter>,
        matcher: Option<&GoRegexp>,
    ) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        let client = self.client()?;
        let mut found = BTreeMap::new();
        let mut next_token = None;
        loop {
            tracing::debug!("BatchGetSecretValue by filters");
            let page = client
                .batch_get_secret_value()
                .set_filters(Some(filters.clone()))
                .max_results(BATCH_SIZE as i32)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| from_sdk_error("BatchGetSecretValue", "find", e))?;
            next_token = collect_batch(page, matcher, &mut found)?;
            if next_token.is_none() {
                break;
            }
        }
        Ok(found)
    }
}

/// What every AWS service client of a store is built from: the store's region, credentials
/// (`auth`, role chain, referent auth) and key prefix on top of a base configuration. Secrets
/// Manager and Parameter Store share it, so both authenticate alike.
pub(crate) struct StoreConfig {
    /// The SDK configuration with the store's region and credentials. `None` for a
    /// ClusterSecretStore with referent auth built without a namespace: its credentials live in
    /// each ExternalSecret's namespace, none is known here, and it can only be validated.
    pub(crate) sdk: Option<SdkConfig>,
    /// `spec.provider.aws.prefix`, added to every key read or written.
    pub(crate) prefix: String,
    /// A ClusterSecretStore whose credentials are read in each ExternalSecret's namespace.
    pub(crate) referent_auth: bool,
}

impl StoreConfig {
    /// The base configuration from the process environment, as the SDK loads it
    /// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, the default credentials chain), in the
    /// store's region.
    pub(crate) async fn environment(provider: &AwsProvider) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(provider.region.clone()))
            .load()
            .await
    }

    /// The store's configuration on top of `base`: the store's region and credentials replace
    /// `base`'s (whose credentials stay when the store names neither auth nor roles).
    pub(crate) async fn build(
        provider: &AwsProvider,
        scope: &StoreScope,
        referents: Arc<dyn Referents>,
        base: &SdkConfig,
    ) -> Result<Self, ProviderError> {
        if provider.region.is_empty() {
            return Err(ProviderError::Config(
                "spec.provider.aws.region is required".into(),
            ));
        }
        let prefix = provider.prefix.clone().unwrap_or_default();
        let referent_auth = scope.kind == StoreKind::ClusterSecretStore
            && auth::is_referent_auth(provider.auth.as_ref());
        if referent_auth && scope.namespace.is_empty() {
            return Ok(Self {
                sdk: None,
                prefix,
                referent_auth,
            });
        }
        let base = base
            .to_builder()
            .region(Region::new(provider.region.clone()))
            .build();
        let sdk = match auth::store_credentials(provider, scope, referents, &base).await? {
            Some(credentials) => base.to_builder().credentials_provider(credentials).build(),
            None => base,
        };
        Ok(Self {
            sdk: Some(sdk),
            prefix,
            referent_auth,
        })
    }
}

/// The SDK configuration for AWS settings outside a store (ESO's ECR and STS generators take a
/// region, the AWS provider's `auth` and a `role`): credentials are read in `namespace`, as a
/// SecretStore there would read them, on the base configuration of `options` (else the
/// process's environment).
pub async fn sdk_config(
    region: &str,
    auth: Option<&secret_sync_crd::provider::AwsAuth>,
    role: Option<&str>,
    namespace: &str,
    referents: Arc<dyn Referents>,
    options: &crate::BuildOptions,
) -> Result<SdkConfig, ProviderError> {
    let provider = AwsProvider {
        region: region.to_owned(),
        auth: auth.cloned(),
        role: role.map(str::to_owned),
        ..AwsProvider::default()
    };
    let scope = StoreScope {
        kind: StoreKind::SecretStore,
        name: String::new(),
        namespace: namespace.to_owned(),
    };
    let base = match &options.aws_base {
        Some(base) => base.clone(),
        None => StoreConfig::environment(&provider).await,
    };
    let config = StoreConfig::build(&provider, &scope, referents, &base).await?;
    config
        .sdk
        .ok_or_else(|| ProviderError::Config("no AWS credentials could be built".into()))
}

fn check_service(provider: &AwsProvider) -> Result<(), ProviderError> {
    match provider.service {
        AwsServiceType::SecretsManager => Ok(()),
        AwsServiceType::ParameterStore => Err(ProviderError::Config(
            "a ParameterStore store is served by ParameterStoreClient, not SecretsManagerClient"
                .into(),
        )),
        other => Err(ProviderError::Config(format!(
            "AWS service {other:?} is not supported by secret-sync yet \
             (supported: SecretsManager, ParameterStore)"
        ))),
    }
}

/// The value of a secret: its string, else its binary.
fn value_of(
    string: Option<String>,
    binary: Option<aws_sdk_secretsmanager::primitives::Blob>,
) -> Option<SecretBytes> {
    string
        .map(SecretBytes::from)
        .or_else(|| binary.map(|b| SecretBytes::new(b.into_inner())))
}

/// Tags as ESO's metadata JSON (`json.Marshal` of a `map[string]string`): one object, keys
/// sorted, HTML characters escaped.
fn tags_json(tags: &BTreeMap<String, String>) -> String {
    secret_sync_gosem::json::marshal_string_map(tags)
}

/// Moves the values of a `BatchGetSecretValue` page into `found` (those whose names match), and
/// returns the next page's token. A secret that vanished between listing and reading is
/// skipped; any other per-secret error fails the find.
fn collect_batch(
    page: aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueOutput,
    matcher: Option<&GoRegexp>,
    found: &mut BTreeMap<String, SecretBytes>,
) -> Result<Option<String>, ProviderError> {
    batch_errors(page.errors())?;
    for entry in page.secret_values.unwrap_or_default() {
        let Some(name) = entry.name else { continue };
        if matcher.is_some_and(|m| !m.is_match(&name)) {
            continue;
        }
        if let Some(value) = value_of(entry.secret_string, entry.secret_binary) {
            found.insert(name, value);
        }
    }
    Ok(page.next_token.filter(|t| !t.is_empty()))
}

fn batch_errors(errors: &[ApiErrorType]) -> Result<(), ProviderError> {
    for e in errors {
        let id = e.secret_id().unwrap_or_default();
        let err = classify(
            "BatchGetSecretValue",
            id,
            e.error_code().unwrap_or("Unknown"),
            e.message().unwrap_or_default(),
        );
        match err {
            ProviderError::NotFound { .. } => {
                tracing::debug!(key = %id, "skipping a secret that no longer exists");
            }
            err => return Err(err),
        }
    }
    Ok(())
}

/// One filter with one value.
fn filter(key: FilterNameStringType, value: &str) -> Filter {
    Filter::builder().key(key).values(value).build()
}

/// ESO's filters for `find.tags`: a `tag-key` and a `tag-value` filter per tag.
fn tag_filters(tags: &BTreeMap<String, String>) -> Vec<Filter> {
    tags.iter()
        .flat_map(|(k, v)| {
            [
                filter(FilterNameStringType::TagKey, k),
                filter(FilterNameStringType::TagValue, v),
            ]
        })
        .collect()
}

/// Classifies an AWS error code. `id` names the secret (or the operation's subject).
fn classify(operation: &'static str, id: &str, code: &str, message: &str) -> ProviderError {
    let text = format!("{operation} {id:?}: {code}: {message}");
    match code {
        "ResourceNotFoundException" => ProviderError::NotFound { key: id.to_owned() },
        // AWS says "...because it was marked for deletion"; moto "...currently marked deleted".
        "InvalidParameterException" | "InvalidRequestException"
            if message.contains("marked for deletion") || message.contains("marked deleted") =>
        {
            ProviderError::NotFound { key: id.to_owned() }
        }
        "AccessDeniedException" | "AccessDenied" => ProviderError::AccessDenied { message: text },
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => ProviderError::Throttled { message: text },
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "ExpiredToken"
        | "ExpiredTokenException" => ProviderError::Auth {
            message: text,
            source: None,
        },
        _ => ProviderError::Provider {
            operation,
            message: format!("{id:?}: {code}: {message}"),
            source: None,
        },
    }
}

/// Converts an SDK error: service errors by their code, credential failures to `Auth`,
/// everything else (network, timeouts) to `Provider`. The source kept is the modeled error or
/// the transport error, never the raw HTTP response.
fn from_sdk_error<E, R>(operation: &'static str, id: &str, err: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let err = match err {
        SdkError::ServiceError(service) => {
            let service = service.into_err();
            let code = service.code().unwrap_or("Unknown").to_owned();
            let message = service.message().unwrap_or_default().to_owned();
            return from_service_error(operation, id, &code, &message, Box::new(service));
        }
        other => other,
    };
    let context = describe(&err);
    let credentials = is_credentials_error(&err);
    let source = err.into_source().ok();
    if credentials {
        ProviderError::Auth {
            message: format!("could not obtain AWS credentials: {operation} {id:?}: {context}"),
            source,
        }
    } else {
        ProviderError::Provider {
            operation,
            message: format!("{id:?}: {context}"),
            source,
        }
    }
}

/// A service error classified by its code, with the modeled error as its source.
fn from_service_error(
    operation: &'static str,
    id: &str,
    code: &str,
    message: &str,
    source: Box<dyn std::error::Error + Send + Sync>,
) -> ProviderError {
    match classify(operation, id, code, message) {
        ProviderError::Auth { message, .. } => ProviderError::Auth {
            message,
            source: Some(source),
        },
        ProviderError::Provider {
            operation, message, ..
        } => ProviderError::Provider {
            operation,
            message,
            source: Some(source),
        },
        other => other,
    }
}

/// An error and its sources, one `: ` apart, without the Debug dumps of `DisplayErrorContext`;
/// a source whose text the previous one already contains is skipped.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut last = text.clone();
    let mut current = err.source();
    while let Some(e) = current {
        let next = e.to_string();
        if !last.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        last = next;
        current = e.source();
    }
    text
}

impl SecretsManagerClient {
    /// `DescribeSecret`, or `None` when there is no such secret.
    async fn describe(
        &self,
        id: &str,
    ) -> Result<
        Option<aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput>,
        ProviderError,
    > {
        let client = self.client()?;
        match client.describe_secret().secret_id(id).send().await {
            Ok(out) => Ok(Some(out)),
            Err(e) => match from_sdk_error("DescribeSecret", id, e) {
                ProviderError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The policy document `metadata` names, read in `namespace`; `None` when it names none.
    async fn wanted_policy(
        &self,
        namespace: &str,
        metadata: &PushMetadata,
    ) -> Result<Option<String>, ProviderError> {
        match metadata
            .resource_policy
            .as_ref()
            .and_then(|p| p.source.as_ref())
        {
            Some(source) => Ok(Some(self.policy_document(namespace, source).await?)),
            None => Ok(None),
        }
    }

    /// Removes `regions` from a secret's replication.
    async fn remove_replicas(&self, id: &str, regions: Vec<String>) -> Result<(), ProviderError> {
        if regions.is_empty() {
            return Ok(());
        }
        tracing::debug!(key = %id, ?regions, "RemoveRegionsFromReplication");
        self.client()?
            .remove_regions_from_replication()
            .secret_id(id)
            .set_remove_replica_regions(Some(regions))
            .send()
            .await
            .map_err(|e| from_sdk_error("RemoveRegionsFromReplication", id, e))?;
        Ok(())
    }

    /// The policy document `source` names, read in `namespace`.
    async fn policy_document(
        &self,
        namespace: &str,
        source: &PolicySource,
    ) -> Result<String, ProviderError> {
        let referents = self.referents.as_ref().ok_or_else(|| {
            ProviderError::Config("this client cannot read a resourcePolicy's source".into())
        })?;
        let bytes = if source.kind == "Secret" {
            referents
                .secret_key(namespace, &source.name, &source.key)
                .await?
        } else {
            referents
                .config_map_key(namespace, &source.name, &source.key)
                .await?
        };
        String::from_utf8(bytes.expose().to_vec()).map_err(|_| {
            ProviderError::Config(format!(
                "the resource policy in {} {namespace}/{} key {:?} is not UTF-8",
                source.kind, source.name, source.key
            ))
        })
    }

    /// Brings the resource policy of a pushed secret to `wanted`, the document `metadata` names
    /// (ESO's `manageResourcePolicy`): put when it differs (compared as JSON), removed when none
    /// is given. `fresh`: the secret was just created, with no policy yet.
    async fn keep_policy(
        &self,
        id: &str,
        wanted: Option<String>,
        metadata: &PushMetadata,
        fresh: bool,
    ) -> Result<(), ProviderError> {
        let client = self.client()?;
        let wanted = wanted.filter(|doc| !doc.is_empty());
        if fresh && wanted.is_none() {
            return Ok(());
        }
        let current = if fresh {
            None
        } else {
            client
                .get_resource_policy()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| from_sdk_error("GetResourcePolicy", id, e))?
                .resource_policy
                .filter(|p| !p.is_empty())
        };
        let parse = |doc: &str| serde_json::from_str::<serde_json::Value>(doc).ok();
        match (wanted, current) {
            (None, None) => Ok(()),
            (None, Some(_)) => {
                tracing::debug!(key = %id, "DeleteResourcePolicy");
                client
                    .delete_resource_policy()
                    .secret_id(id)
                    .send()
                    .await
                    .map_err(|e| from_sdk_error("DeleteResourcePolicy", id, e))?;
                Ok(())
            }
            (Some(wanted), current) => {
                if current.is_some_and(|c| parse(&c).is_some() && parse(&c) == parse(&wanted)) {
                    return Ok(());
                }
                tracing::debug!(key = %id, "PutResourcePolicy");
                client
                    .put_resource_policy()
                    .secret_id(id)
                    .resource_policy(wanted)
                    .set_block_public_policy(
                        metadata
                            .resource_policy
                            .as_ref()
                            .and_then(|p| p.block_public_policy),
                    )
                    .send()
                    .await
                    .map_err(|e| from_sdk_error("PutResourcePolicy", id, e))?;
                Ok(())
            }
        }
    }

    /// Replicates a pushed secret that exists to exactly the regions `metadata` lists (ESO's
    /// `manageRegionReplication`); with none listed, replication is left as it is.
    async fn keep_replication(
        &self,
        id: &str,
        described: &aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput,
        metadata: &PushMetadata,
    ) -> Result<(), ProviderError> {
        let Some(wanted) = metadata.replication.as_ref() else {
            return Ok(());
        };
        let client = self.client()?;
        let current: Vec<&str> = described
            .replication_status()
            .iter()
            .filter_map(|r| r.region())
            .collect();
        let stale: Vec<String> = current
            .iter()
            .filter(|r| !wanted.iter().any(|w| w == *r))
            .map(|r| (*r).to_owned())
            .collect();
        self.remove_replicas(id, stale).await?;
        let missing: Vec<String> = wanted
            .iter()
            .filter(|w| !current.contains(&w.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            tracing::debug!(key = %id, regions = ?missing, "ReplicateSecretToRegions");
            client
                .replicate_secret_to_regions()
                .secret_id(id)
                .set_add_replica_regions(Some(PushMetadata::replicas(
                    &missing,
                    described.kms_key_id(),
                )))
                .send()
                .await
                .map_err(|e| from_sdk_error("ReplicateSecretToRegions", id, e))?;
        }
        Ok(())
    }

    /// Brings the tags of a pushed secret that exists to those `metadata` gives (ESO's
    /// `patchTags`): with no tags given, the secret's tags are left alone; with some, the others
    /// are removed and the given ones added or changed (`managed-by` stays).
    async fn keep_tags(
        &self,
        id: &str,
        current: &[aws_sdk_secretsmanager::types::Tag],
        metadata: &PushMetadata,
    ) -> Result<(), ProviderError> {
        if metadata.tags.is_empty() {
            return Ok(());
        }
        let client = self.client()?;
        let stale: Vec<String> = current
            .iter()
            .filter_map(|t| t.key())
            .filter(|k| *k != MANAGED_BY.0 && !metadata.tags.contains_key(*k))
            .map(str::to_owned)
            .collect();
        if !stale.is_empty() {
            tracing::debug!(key = %id, tags = stale.len(), "UntagResource");
            client
                .untag_resource()
                .secret_id(id)
                .set_tag_keys(Some(stale))
                .send()
                .await
                .map_err(|e| from_sdk_error("UntagResource", id, e))?;
        }
        let changed = metadata.tags.iter().any(|(k, v)| {
            !current
                .iter()
                .any(|t| t.key() == Some(k.as_str()) && t.value() == Some(v.as_str()))
        });
        if changed {
            tracing::debug!(key = %id, "TagResource");
            client
                .tag_resource()
                .secret_id(id)
                .set_tags(Some(metadata.all_tags()))
                .send()
                .await
                .map_err(|e| from_sdk_error("TagResource", id, e))?;
        }
        Ok(())
    }
}

/// How PushSecret writes a value: ESO's `PushSecretMetadata.spec.secretPushFormat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PushFormat {
    /// `SecretBinary`, ESO's default.
    Binary,
    /// `SecretString`.
    String,
}

/// ESO's `PushSecretMetadata` for Secrets Manager (`spec`): `secretPushFormat`, and for a secret
/// PushSecret creates, its `description` (ESO's by default), `kmsKeyId` (the account's default
/// key when unset) and `tags` (besides `managed-by`, which may not be given); the `tags` are also
/// kept on a secret that exists (added, changed, and others removed, as ESO does).
/// `resourcePolicy` puts the policy document a ConfigMap or Secret in the PushSecret's namespace
/// holds (unset: a secret that exists has its policy removed, as ESO does);
/// `replicationLocations` replicates the secret to exactly those regions (unset: replication is
/// left as it is).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PushMetadata {
    format: PushFormat,
    description: Option<String>,
    kms_key_id: Option<String>,
    /// Without `managed-by`.
    tags: BTreeMap<String, String>,
    resource_policy: Option<ResourcePolicy>,
    /// `None`: leave replication as it is.
    replication: Option<Vec<String>>,
}

/// `spec.resourcePolicy`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ResourcePolicy {
    block_public_policy: Option<bool>,
    /// `None`: no policy (one in place is removed).
    source: Option<PolicySource>,
}

/// `spec.resourcePolicy.policySourceRef`: where the policy document is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
struct PolicySource {
    kind: String,
    name: String,
    key: String,
}

impl PushMetadata {
    fn of(metadata: Option<&serde_json::Value>) -> Result<Self, ProviderError> {
        let spec = metadata.and_then(|m| m.get("spec"));
        let text = |field: &str| {
            spec.and_then(|s| s.get(field))
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let format = match text("secretPushFormat").as_deref() {
            None | Some("binary") => PushFormat::Binary,
            Some("string") => PushFormat::String,
            Some(other) => {
                return Err(ProviderError::Config(format!(
                    "invalid secret push format: {other}"
                )));
            }
        };
        let mut tags = BTreeMap::new();
        if let Some(given) = spec.and_then(|s| s.get("tags")) {
            let given = given.as_object().ok_or_else(|| {
                ProviderError::Config(
                    "PushSecretMetadata spec.tags must map names to values".into(),
                )
            })?;
            for (key, value) in given {
                if key == MANAGED_BY.0 {
                    return Err(ProviderError::Config(format!(
                        "error parsing tags in metadata: Cannot specify a '{}' tag",
                        MANAGED_BY.0
                    )));
                }
                let value = value.as_str().ok_or_else(|| {
                    ProviderError::Config(format!(
                        "PushSecretMetadata spec.tags.{key} must be a string"
                    ))
                })?;
                tags.insert(key.clone(), value.to_owned());
            }
        }
        let field = |name: &str| spec.and_then(|s| s.get(name)).filter(|v| !v.is_null());
        let resource_policy = field("resourcePolicy")
            .map(|policy| {
                let invalid = |what: &str| {
                    ProviderError::Config(format!(
                        "PushSecretMetadata spec.resourcePolicy: {what}"
                    ))
                };
                let block_public_policy = match policy.get("blockPublicPolicy") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(v) => Some(
                        v.as_bool()
                            .ok_or_else(|| invalid("blockPublicPolicy must be true or false"))?,
                    ),
                };
                let source = match policy.get("policySourceRef") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(v) => {
                        let source: PolicySource = serde_json::from_value(v.clone()).map_err(
                            |_| invalid("policySourceRef needs kind, name and key"),
                        )?;
                        if source.kind != "ConfigMap" && source.kind != "Secret" {
                            return Err(invalid(&format!(
                                "unsupported PolicySourceRef kind: {} (must be ConfigMap or Secret)",
                                source.kind
                            )));
                        }
                        Some(source)
                    }
                };
                Ok(ResourcePolicy {
                    block_public_policy,
                    source,
                })
            })
            .transpose()?;
        let replication = field("replicationLocations")
            .map(|regions| {
                regions
                    .as_array()
                    .and_then(|a| {
                        a.iter()
                            .map(|r| r.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| {
                        ProviderError::Config(
                            "PushSecretMetadata spec.replicationLocations must list regions".into(),
                        )
                    })
            })
            .transpose()?;
        Ok(Self {
            format,
            description: text("description"),
            kms_key_id: text("kmsKeyId"),
            tags,
            resource_policy,
            replication,
        })
    }

    /// Replica regions as `CreateSecret` and `ReplicateSecretToRegions` take them, with `kms`.
    fn replicas(
        regions: &[String],
        kms: Option<&str>,
    ) -> Vec<aws_sdk_secretsmanager::types::ReplicaRegionType> {
        regions
            .iter()
            .map(|region| {
                aws_sdk_secretsmanager::types::ReplicaRegionType::builder()
                    .region(region)
                    .set_kms_key_id(kms.map(str::to_owned))
                    .build()
            })
            .collect()
    }

    /// The tags a pushed secret carries: the given ones and `managed-by`.
    fn all_tags(&self) -> Vec<aws_sdk_secretsmanager::types::Tag> {
        self.tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([MANAGED_BY])
            .map(|(k, v)| {
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
            })
            .collect()
    }
}

fn is_managed(tags: &[aws_sdk_secretsmanager::types::Tag]) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(MANAGED_BY.0) && t.value() == Some(MANAGED_BY.1))
}

fn utf8(id: &str, value: Vec<u8>) -> Result<String, ProviderError> {
    String::from_utf8(value).map_err(|_| {
        ProviderError::Config(format!(
            "the value for {id:?} is not UTF-8; push it with secretPushFormat binary"
        ))
    })
}

/// The value PushSecret writes: `value` itself, or with a property, the existing JSON object
/// with that property (a dotted path, as ESO's sjson) set to `value` as a string.
fn pushed_value(
    value: &[u8],
    property: Option<&str>,
    existing: Option<&SecretBytes>,
) -> Result<Vec<u8>, ProviderError> {
    let Some(property) = property.filter(|p| !p.is_empty()) else {
        return Ok(value.to_vec());
    };
    let mut object = match existing.map(SecretBytes::expose) {
        None | Some([]) => serde_json::Value::Object(Default::default()),
        Some(current) => match serde_json::from_slice::<serde_json::Value>(current) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => {
                return Err(ProviderError::Config(
                    "PushSecret for aws secrets manager with a pushSecretData property requires a json secret".into(),
                ));
            }
        },
    };
    let text = std::str::from_utf8(value).map_err(|_| {
        ProviderError::Config(format!("the value for property {property:?} is not UTF-8"))
    })?;
    let mut at = &mut object;
    let mut parts = property.split('.').peekable();
    while let Some(part) = parts.next() {
        let map = match at {
            serde_json::Value::Object(map) => map,
            other => {
                *other = serde_json::Value::Object(Default::default());
                match other {
                    serde_json::Value::Object(map) => map,
                    _ => unreachable!("just made an object"),
                }
            }
        };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), serde_json::Value::String(text.to_owned()));
            break;
        }
        at = map
            .entry(part.to_owned())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
    serde_json::to_vec(&object).map_err(|e| ProviderError::Config(e.to_string()))
}

fn is_credentials_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if e.is::<CredentialsError>() {
            return true;
        }
        current = e.source();
    }
    false
}

#[async_trait]
impl Provider for SecretsManagerClient {
    fn metric_name(&self) -> &'static str {
        "AWS/SecretsManager"
    }

    async fn get(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let id = format!("{}{}", self.prefix, remote.key);
        if remote.metadata {
            self.get_tags(&id).await
        } else {
            self.get_value(&id, remote.version.as_deref()).await
        }
    }

    async fn find(&self, find: &Find) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        let matcher = find
            .name_regexp
            .as_deref()
            .map(GoRegexp::new)
            .transpose()
            .map_err(|e| ProviderError::Config(format!("invalid find.name.regexp: {e}")))?;
        let mut filters = tag_filters(&find.tags);
        match (&matcher, find.path.as_deref()) {
            // ESO's AWS provider finds by name or by tags, nothing else ("unexpected find
            // operator"); a path only narrows those.
            (None, _) if filters.is_empty() => Err(ProviderError::Config(
                "find needs name.regexp or tags to select secrets".into(),
            )),
            (Some(matcher), None) => self.find_by_listing(filters, matcher).await,
            (matcher, Some(path)) => {
                filters.push(filter(FilterNameStringType::Name, path));
                self.find_by_batch(filters, matcher.as_ref()).await
            }
            (None, None) => self.find_by_batch(filters, None).await,
        }
    }

    async fn push(&self, remote: &PushRef, value: &[u8]) -> Result<bool, ProviderError> {
        let client = self.client()?;
        let id = format!("{}{}", self.prefix, remote.key);
        let metadata = PushMetadata::of(remote.metadata.as_ref())?;
        let format = metadata.format;
        let Some(described) = self.describe(&id).await? else {
            let value = pushed_value(value, remote.property.as_deref(), None)?;
            tracing::debug!(key = %id, "CreateSecret");
            let description = metadata
                .description
                .clone()
                .unwrap_or_else(|| format!("secret '{}:{}'", MANAGED_BY.0, MANAGED_BY.1));
            // The policy document is read first: a secret is not created without it.
            let policy = self.wanted_policy(&remote.namespace, &metadata).await?;
            let replicas = metadata
                .replication
                .as_deref()
                .filter(|r| !r.is_empty())
                .map(|r| PushMetadata::replicas(r, metadata.kms_key_id.as_deref()));
            let request = client
                .create_secret()
                .name(&id)
                .description(description)
                .set_kms_key_id(metadata.kms_key_id.clone())
                .set_tags(Some(metadata.all_tags()))
                .set_add_replica_regions(replicas);
            let request = match format {
                PushFormat::Binary => request.secret_binary(Blob::new(value)),
                PushFormat::String => request.secret_string(utf8(&id, value)?),
            };
            request
                .send()
                .await
                .map_err(|e| from_sdk_error("CreateSecret", &id, e))?;
            self.keep_policy(&id, policy, &metadata, true).await?;
            return Ok(true);
        };
        if !is_managed(described.tags()) {
            return Err(ProviderError::NotManaged {
                key: remote.key.clone(),
            });
        }
        self.keep_tags(&id, described.tags(), &metadata).await?;
        let policy = self.wanted_policy(&remote.namespace, &metadata).await?;
        self.keep_policy(&id, policy, &metadata, false).await?;
        self.keep_replication(&id, &described, &metadata).await?;
        let existing = match described.version_ids_to_stages() {
            Some(versions) if !versions.is_empty() => Some(self.get_value(&id, None).await?),
            _ => None,
        };
        let value = pushed_value(value, remote.property.as_deref(), existing.as_ref())?;
        if existing
            .as_ref()
            .is_some_and(|e| e.expose() == value.as_slice())
        {
            return Ok(false);
        }
        tracing::debug!(key = %id, "PutSecretValue");
        let request = client.put_secret_value().secret_id(&id);
        let request = match format {
            PushFormat::Binary => request.secret_binary(Blob::new(value)),
            PushFormat::String => request.secret_string(utf8(&id, value)?),
        };
        request
            .send()
            .await
            .map_err(|e| from_sdk_error("PutSecretValue", &id, e))?;
        Ok(true)
    }

    async fn exists(&self, remote: &PushRef) -> Result<bool, ProviderError> {
        PushMetadata::of(remote.metadata.as_ref())?;
        let id = format!("{}{}", self.prefix, remote.key);
        match self.get_value(&id, None).await {
            Ok(_) => Ok(true),
            Err(ProviderError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// As ESO: the whole secret is deleted, even for an entry with a property.
    async fn delete_pushed(&self, remote: &PushRef) -> Result<(), ProviderError> {
        let client = self.client()?;
        let id = format!("{}{}", self.prefix, remote.key);
        let Some(described) = self.describe(&id).await? else {
            return Ok(());
        };
        if !is_managed(described.tags()) {
            tracing::debug!(key = %id, "not deleting a secret PushSecret did not create");
            return Ok(());
        }
        // A secret with replicas cannot be deleted: they go first, as ESO does.
        let replicas: Vec<String> = described
            .replication_status()
            .iter()
            .filter_map(|r| r.region().map(str::to_owned))
            .collect();
        self.remove_replicas(&id, replicas).await?;
        let mut request = client
            .delete_secret()
            .secret_id(described.arn().unwrap_or(&id));
        if self.deletion.force_delete_without_recovery == Some(true) {
            request = request.force_delete_without_recovery(true);
        } else if let Some(days) = self.deletion.recovery_window_in_days.filter(|d| *d > 0) {
            request = request.recovery_window_in_days(days);
        }
        tracing::debug!(key = %id, "DeleteSecret");
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) => match from_sdk_error("DeleteSecret", &id, e) {
                ProviderError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        if self.referent_auth {
            return Ok(Validation::Unknown);
        }
        let client = self.client()?;
        match client.list_secrets().max_results(1).send().await {
            Ok(_) => Ok(Validation::Ready),
            Err(e) => match from_sdk_error("ListSecrets", "validate", e) {
                ProviderError::AccessDenied { message } => {
                    tracing::debug!(%message, "credentials work; listing is not allowed");
                    Ok(Validation::Ready)
                }
                err => Err(err),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pushed_property_is_set_in_the_existing_json_object_and_nested_by_dots() {
        let v = |b: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&b).expect("JSON");
        assert_eq!(pushed_value(b"raw", None, None).expect("value"), b"raw");
        assert_eq!(
            v(pushed_value(b"x", Some("a"), None).expect("value")),
            serde_json::json!({ "a": "x" })
        );
        let existing = SecretBytes::new(br#"{"a":"old","b":"kept"}"#.to_vec());
        assert_eq!(
            v(pushed_value(b"new", Some("a"), Some(&existing)).expect("value")),
            serde_json::json!({ "a": "new", "b": "kept" })
        );
        assert_eq!(
            v(pushed_value(b"deep", Some("c.d"), Some(&existing)).expect("value")),
            serde_json::json!({ "a": "old", "b": "kept", "c": { "d": "deep" } })
        );
        let plain = SecretBytes::new(b"not json".to_vec());
        assert!(matches!(
            pushed_value(b"x", Some("a"), Some(&plain)),
            Err(ProviderError::Config(m)) if m.contains("requires a json secret")
        ));
    }

    #[test]
    fn push_metadata_is_read_as_eso_reads_it_and_bad_settings_are_refused_by_name() {
        let full = serde_json::json!({ "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
            "kind": "PushSecretMetadata", "spec": {
                "description": "db password", "kmsKeyId": "alias/team",
                "tags": { "team": "db", "env": "prod" } } });
        let m = PushMetadata::of(Some(&full)).expect("metadata");
        assert_eq!(m.description.as_deref(), Some("db password"));
        assert_eq!(m.kms_key_id.as_deref(), Some("alias/team"));
        assert_eq!(m.tags.len(), 2);
        assert_eq!((&m.resource_policy, &m.replication), (&None, &None));
        let policy = serde_json::json!({ "spec": {
            "resourcePolicy": { "blockPublicPolicy": true,
                "policySourceRef": { "kind": "ConfigMap", "name": "p", "key": "policy.json" } },
            "replicationLocations": ["eu-west-1", "us-west-2"] } });
        let p = PushMetadata::of(Some(&policy)).expect("metadata");
        assert_eq!(
            p.resource_policy,
            Some(ResourcePolicy {
                block_public_policy: Some(true),
                source: Some(PolicySource {
                    kind: "ConfigMap".into(),
                    name: "p".into(),
                    key: "policy.json".into()
                }),
            })
        );
        assert_eq!(
            p.replication,
            Some(vec!["eu-west-1".to_owned(), "us-west-2".to_owned()])
        );
        let tags: Vec<(String, String)> = m
            .all_tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert!(
            tags.contains(&("managed-by".into(), "external-secrets".into())),
            "{tags:?}"
        );
        let none = PushMetadata::of(None).expect("metadata");
        assert_eq!(
            (none.description, none.kms_key_id, none.tags.len()),
            (None, None, 0)
        );
        for (spec, says) in [
            (
                serde_json::json!({ "resourcePolicy": { "policySourceRef": { "kind": "Pod", "name": "p", "key": "k" } } }),
                "unsupported PolicySourceRef kind: Pod (must be ConfigMap or Secret)",
            ),
            (
                serde_json::json!({ "resourcePolicy": { "policySourceRef": { "name": "p" } } }),
                "policySourceRef needs kind, name and key",
            ),
            (
                serde_json::json!({ "replicationLocations": "eu-west-1" }),
                "spec.replicationLocations must list regions",
            ),
            (
                serde_json::json!({ "tags": { "managed-by": "me" } }),
                "Cannot specify a 'managed-by' tag",
            ),
        ] {
            let err =
                PushMetadata::of(Some(&serde_json::json!({ "spec": spec }))).expect_err("refused");
            assert!(err.to_string().contains(says), "{err}");
        }
    }

    #[test]
    fn the_push_format_is_binary_unless_the_metadata_says_string() {
        assert_eq!(
            PushMetadata::of(None).expect("format").format,
            PushFormat::Binary
        );
        let string = serde_json::json!({ "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
            "kind": "PushSecretMetadata", "spec": { "secretPushFormat": "string" } });
        assert_eq!(
            PushMetadata::of(Some(&string)).expect("format").format,
            PushFormat::String
        );
        let bad = serde_json::json!({ "spec": { "secretPushFormat": "hex" } });
        assert!(PushMetadata::of(Some(&bad)).is_err());
    }

    #[test]
    fn resource_not_found_is_not_found_with_the_secret_id() {
        let err = classify(
            "GetSecretValue",
            "app/db",
            "ResourceNotFoundException",
            "gone",
        );
        assert!(matches!(err, ProviderError::NotFound { key } if key == "app/db"));
    }

    #[test]
    fn a_secret_marked_for_deletion_is_not_found() {
        for code in ["InvalidParameterException", "InvalidRequestException"] {
            let err = classify(
                "GetSecretValue",
                "k",
                code,
                "You can't perform this operation on the secret because it was marked for deletion.",
            );
            assert!(matches!(err, ProviderError::NotFound { .. }), "{code}");
        }
        let other = classify(
            "GetSecretValue",
            "k",
            "InvalidRequestException",
            "bad stage",
        );
        assert!(matches!(other, ProviderError::Provider { .. }));
    }

    #[test]
    fn access_denied_throttling_and_auth_codes_are_classified() {
        assert!(matches!(
            classify("GetSecretValue", "k", "AccessDeniedException", "no"),
            ProviderError::AccessDenied { .. }
        ));
        for code in ["ThrottlingException", "TooManyRequestsException"] {
            assert!(matches!(
                classify("GetSecretValue", "k", code, "slow down"),
                ProviderError::Throttled { .. }
            ));
        }
        for code in [
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "ExpiredTokenException",
            "ExpiredToken",
        ] {
            assert!(matches!(
                classify("GetSecretValue", "k", code, "who are you"),
                ProviderError::Auth { .. }
            ));
        }
    }

    #[test]
    fn other_codes_are_provider_errors_naming_operation_code_and_key() {
        let err = classify(
            "GetSecretValue",
            "app/db",
            "DecryptionFailure",
            "kms said no",
        );
        assert_eq!(
            err.to_string(),
            r#"GetSecretValue failed: "app/db": DecryptionFailure: kms said no"#
        );
        assert!(err.is_retryable());
    }

    #[test]
    fn describe_joins_an_error_chain_without_repeating_itself() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner: {0}")]
        struct Inner(String);
        let err = Outer(Inner("root cause".into()));
        assert_eq!(describe(&err), "outer: inner: root cause");
    }

    #[test]
    fn metadata_is_a_json_object_of_tags_with_sorted_keys() {
        let tags = BTreeMap::from([
            ("team".to_owned(), "a".to_owned()),
            ("env".to_owned(), "prod \"x\"".to_owned()),
        ]);
        assert_eq!(tags_json(&tags), r#"{"env":"prod \"x\"","team":"a"}"#);
        // json.Marshal escapes HTML characters.
        let tags = BTreeMap::from([("team".to_owned(), "a&b".to_owned())]);
        assert_eq!(tags_json(&tags), r#"{"team":"a\u0026b"}"#);
        assert_eq!(tags_json(&BTreeMap::new()), "{}");
    }

    #[test]
    fn each_tag_becomes_a_tag_key_and_a_tag_value_filter() {
        let filters = tag_filters(&BTreeMap::from([("env".to_owned(), "prod".to_owned())]));
        let pairs: Vec<_> = filters
            .iter()
            .map(|f| (f.key().map(|k| k.as_str().to_owned()), f.values().to_vec()))
            .collect();
        assert_eq!(
            pairs,
            [
                (Some("tag-key".to_owned()), vec!["env".to_owned()]),
                (Some("tag-value".to_owned()), vec!["prod".to_owned()]),
            ]
        );
    }

    #[test]
    fn a_batch_is_filtered_by_the_name_regexp_read_as_go_does() {
        use aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueOutput;
        use aws_sdk_secretsmanager::types::SecretValueEntry;
        let page = || {
            BatchGetSecretValueOutput::builder()
                .set_secret_values(Some(
                    ["app/é", "app/e", "app/٣", "app/3"]
                        .into_iter()
                        .map(|name| {
                            SecretValueEntry::builder()
                                .name(name)
                                .secret_string("v")
                                .build()
                        })
                        .collect(),
                ))
                .build()
        };
        let names = |pattern: &str| {
            let matcher = GoRegexp::new(pattern).expect("a valid Go pattern");
            let mut found = BTreeMap::new();
            collect_batch(page(), Some(&matcher), &mut found).expect("no batch errors");
            found.into_keys().collect::<Vec<_>>()
        };
        // Go's `\w` and `\d` are ASCII only; the regex crate's would take "é" and "٣" too.
        assert_eq!(names(r"^app/\w$"), ["app/3", "app/e"]);
        assert_eq!(names(r"^app/\d$"), ["app/3"]);
    }

    #[test]
    fn a_string_value_wins_over_a_binary_one() {
        let blob = aws_sdk_secretsmanager::primitives::Blob::new(vec![0u8, 1]);
        let v = value_of(Some("s".into()), Some(blob.clone()));
        assert_eq!(v.map(|v| v.expose().to_vec()), Some(b"s".to_vec()));
        let v = value_of(None, Some(blob));
        assert_eq!(v.map(|v| v.expose().to_vec()), Some(vec![0u8, 1]));
        assert!(value_of(None, None).is_none());
    }

    #[test]
    fn the_secrets_manager_client_refuses_other_services_with_a_clear_message() {
        let refused = |service| {
            let provider = AwsProvider {
                service,
                region: "us-east-1".into(),
                ..Default::default()
            };
            check_service(&provider).err().map(|e| e.to_string())
        };
        let certificates = refused(AwsServiceType::CertificateManager);
        assert!(
            certificates
                .as_deref()
                .is_some_and(|m| m.contains("not supported")
                    && m.contains("CertificateManager")
                    && m.contains("ParameterStore")),
            "{certificates:?}"
        );
        let parameters = refused(AwsServiceType::ParameterStore);
        assert!(
            parameters
                .as_deref()
                .is_some_and(|m| m.contains("ParameterStoreClient")),
            "{parameters:?}"
        );
    }
}
