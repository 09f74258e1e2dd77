//! AWS Systems Manager Parameter Store (`spec.provider.aws` with `service: ParameterStore`).
//!
//! Behaviour follows ESO's provider (`providers/v1/aws/parameterstore/parameterstore.go` in
//! external-secrets, read at v2.9.0):
//!
//! - **get**: `GetParameter` with `WithDecryption=true` on `prefix + key`, and with a
//!   `remoteRef.version` on `prefix + key + ":" + version`, Parameter Store's selector syntax,
//!   which takes a version number or a label alike. The value is returned as AWS stores it: a
//!   SecureString decrypted, a StringList as its comma-separated string. `property` is the
//!   engine's business.
//! - **metadata** (`metadataPolicy: Fetch`): `ListTagsForResource` (`ResourceType=Parameter`) as
//!   one JSON object with sorted keys (ESO's `ParameterTagsToJSONString`). ESO passes the name
//!   with its `:version` selector as the resource id; tags belong to the parameter, not to a
//!   version, so the selector is left off here.
//! - **not found**: `ParameterNotFound` and `ParameterVersionNotFound` (and, for metadata,
//!   `InvalidResourceId`, which is how `ListTagsForResource` says it).
//! - **find**: with `name`, `GetParametersByPath` (`Recursive`, `WithDecryption`, all pages) under
//!   `path` or `/`, the regular expression applied to each name; when that call is denied,
//!   ESO's fallback: `DescribeParameters` (filtered by `Path` when given) and one `GetParameter`
//!   per matching name. Without `name`, `tags`: `DescribeParameters` with one `tag:<key>` Equals
//!   filter per tag (and `Path` when given), then one `GetParameter` each. With `name`, `tags`
//!   are ignored, as in ESO. Neither is ESO's "unexpected find operator". Keys are the names as
//!   AWS reports them; the store `prefix` is not applied to `find`, as in ESO.
//! - **validate**: as ESO, the store's credentials are resolved (which runs a role chain), and
//!   no Parameter Store call is made; a ClusterSecretStore with referent auth is `Unknown`.
//! - **PushSecret**: see [`push`].

mod kind;
mod push;

pub use kind::ParameterStoreKind;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::{ParameterStringFilter, ResourceTypeForTagging};
use secret_sync_crd::provider::{AwsProvider, AwsServiceType};
use secret_sync_gosem::GoRegexp;

use super::StoreConfig;
use crate::{
    Find, Provider, ProviderError, PushRef, Referents, RemoteRef, SecretBytes, StoreScope,
    Validation,
};

/// The path a `find` by name searches when it has none (ESO's default).
const ROOT_PATH: &str = "/";

/// A client for one Parameter Store store.
pub struct ParameterStoreClient {
    /// `None` for a ClusterSecretStore with referent auth built without a namespace: it can only
    /// be validated (to `Unknown`), not read from.
    client: Option<aws_sdk_ssm::Client>,
    prefix: String,
    /// A ClusterSecretStore whose credentials are read in each ExternalSecret's namespace.
    referent_auth: bool,
    /// The client's credentials, which `validate` resolves (the SDK client does not expose
    /// them).
    credentials: Option<SharedCredentialsProvider>,
}

impl ParameterStoreClient {
    /// Builds the client for a store on top of `base` (endpoint, HTTP client, retries, and the
    /// credentials used when the store has no `auth`), or of the process environment when `base`
    /// is `None` (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SSM`, the default credentials chain). The
    /// store's region and credentials (auth, role chain, referent auth) are those of a Secrets
    /// Manager store: both are built by one helper.
    pub async fn build(
        provider: &AwsProvider,
        scope: &StoreScope,
        referents: Arc<dyn Referents>,
        base: Option<&SdkConfig>,
    ) -> Result<Self, ProviderError> {
        if provider.service != AwsServiceType::ParameterStore {
            return Err(ProviderError::Config(format!(
                "the Parameter Store client cannot serve AWS service {:?}",
                provider.service
            )));
        }
        let store = match base {
            Some(base) => StoreConfig::build(provider, scope, referents, base).await?,
            None => {
                let base = StoreConfig::environment(provider).await;
                StoreConfig::build(provider, scope, referents, &base).await?
            }
        };
        let client = store.sdk.as_ref().map(|sdk| {
            tracing::debug!(
                store = %scope.name,
                kind = %scope.kind,
                namespace = %scope.namespace,
                region = %provider.region,
                "built AWS Parameter Store client"
            );
            aws_sdk_ssm::Client::new(sdk)
        });
        Ok(Self {
            client,
            prefix: store.prefix,
            referent_auth: store.referent_auth,
            credentials: store.sdk.as_ref().and_then(SdkConfig::credentials_provider),
        })
    }

    /// A client that uses `config` as it is (endpoint, region, credentials), with `prefix` added
    /// to every key `get` and PushSecret use.
    pub fn from_sdk_config(config: &SdkConfig, prefix: impl Into<String>) -> Self {
        Self {
            client: Some(aws_sdk_ssm::Client::new(config)),
            prefix: prefix.into(),
            referent_auth: false,
            credentials: config.credentials_provider(),
        }
    }

    fn client(&self) -> Result<&aws_sdk_ssm::Client, ProviderError> {
        self.client.as_ref().ok_or_else(|| {
            ProviderError::Config(
                "this ClusterSecretStore reads its AWS credentials in the namespace of each \
                 ExternalSecret (referent auth); build the client with that namespace"
                    .into(),
            )
        })
    }

    /// `GetParameter` (decrypted) of `name`, which may carry a `:version` or `:label` selector;
    /// `None` when it does not exist.
    async fn parameter(&self, name: &str) -> Result<Option<SecretBytes>, ProviderError> {
        let client = self.client()?;
        tracing::debug!(key = %name, "GetParameter");
        let out = match client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match from_sdk_error("GetParameter", name, e) {
                    ProviderError::NotFound { .. } => Ok(None),
                    other => Err(other),
                };
            }
        };
        match out.parameter.and_then(|p| p.value) {
            Some(value) => Ok(Some(SecretBytes::from(value))),
            None => Err(ProviderError::Provider {
                operation: "GetParameter",
                message: format!("parameter {name:?} has no value"),
                source: None,
            }),
        }
    }

    /// The value of `name`, or `NotFound` naming `key` (what the ExternalSecret wrote).
    async fn value(&self, name: &str, key: &str) -> Result<SecretBytes, ProviderError> {
        self.parameter(name)
            .await?
            .ok_or_else(|| ProviderError::NotFound {
                key: key.to_owned(),
            })
    }

    /// The tags of parameter `name`; `None` when it does not exist.
    async fn tags(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
        let client = self.client()?;
        tracing::debug!(key = %name, "ListTagsForResource");
        match client
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.tag_list()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect(),
            )),
            Err(e) => match from_sdk_error("ListTagsForResource", name, e) {
                ProviderError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// `GetParametersByPath` under `path` (recursive, decrypted, all pages), names matched here.
    /// `Ok(None)` when the call is denied, for ESO's fallback.
    async fn find_by_path(
        &self,
        path: &str,
        matcher: &GoRegexp,
    ) -> Result<Option<BTreeMap<String, SecretBytes>>, ProviderError> {
        let client = self.client()?;
        let mut found = BTreeMap::new();
        let mut next_token = None;
        loop {
            tracing::debug!(path, "GetParametersByPath");
            let page = match client
                .get_parameters_by_path()
                .path(path)
                .recursive(true)
                .with_decryption(true)
                .set_next_token(next_token.take())
                .send()
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    return match from_sdk_error("GetParametersByPath", path, e) {
                        ProviderError::AccessDenied { message } => {
                            tracing::info!(
                                path,
                                %message,
                                "GetParametersByPath: access denied; falling back to \
                                 DescribeParameters and GetParameter (grant \
                                 ssm:GetParametersByPath to read fewer times)"
                            );
                            Ok(None)
                        }
                        other => Err(other),
                    };
                }
            };
            for parameter in page.parameters.unwrap_or_default() {
                let (Some(name), Some(value)) = (parameter.name, parameter.value) else {
                    continue;
                };
                if matcher.is_match(&name) {
                    found.insert(name, SecretBytes::from(value));
                }
            }
            match page.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => break,
            }
        }
        Ok(Some(found))
    }

    /// `DescribeParameters` with `filters` (all pages), then one `GetParameter` per name that
    /// `matcher` (when given) matches. A parameter deleted in between is skipped.
    async fn find_by_describing(
        &self,
        filters: Vec<ParameterStringFilter>,
        matcher: Option<&GoRegexp>,
    ) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        let client = self.client()?;
        let filters = (!filters.is_empty()).then_some(filters);
        let mut names = Vec::new();
        let mut next_token = None;
        loop {
            tracing::debug!("DescribeParameters");
            let page = client
                .describe_parameters()
                .set_parameter_filters(filters.clone())
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| from_sdk_error("DescribeParameters", "find", e))?;
            for parameter in page.parameters() {
                let Some(name) = parameter.name() else {
                    continue;
                };
                if matcher.is_none_or(|m| m.is_match(name)) {
                    names.push(name.to_owned());
                }
            }
            match page.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => break,
            }
        }
        let mut found = BTreeMap::new();
        for name in names {
            match self.parameter(&name).await? {
                Some(value) => {
                    found.insert(name, value);
                }
                None => tracing::debug!(key = %name, "skipping a parameter that no longer exists"),
            }
        }
        Ok(found)
    }
}

/// A `DescribeParameters` filter.
fn string_filter(
    key: impl Into<String>,
    option: &str,
    value: &str,
) -> Result<ParameterStringFilter, ProviderError> {
    ParameterStringFilter::builder()
        .key(key)
        .option(option)
        .values(value)
        .build()
        .map_err(|e| ProviderError::Config(format!("invalid parameter filter: {e}")))
}

/// ESO's filter for `find.path` in `DescribeParameters`: the parameters under it, recursively.
fn path_filter(path: Option<&str>) -> Result<Vec<ParameterStringFilter>, ProviderError> {
    path.map(|p| string_filter("Path", "Recursive", p))
        .into_iter()
        .collect()
}

/// ESO's filters for `find.tags`: `tag:<key>` Equals `<value>`, one per tag.
fn tag_filters(
    tags: &BTreeMap<String, String>,
) -> Result<Vec<ParameterStringFilter>, ProviderError> {
    tags.iter()
        .map(|(k, v)| string_filter(format!("tag:{k}"), "Equals", v))
        .collect()
}

/// Parameter Store's selector syntax: `name:version` or `name:label`.
fn with_selector(name: &str, version: Option<&str>) -> String {
    match version.filter(|v| !v.is_empty()) {
        Some(version) => format!("{name}:{version}"),
        None => name.to_owned(),
    }
}

/// Converts an SDK error as the Secrets Manager client does (`AccessDeniedException`,
/// `ThrottlingException`, credential failures...), with Parameter Store's own codes first: its
/// not-found codes, and `TooManyUpdates` (too many writes to one parameter) as throttling.
fn from_sdk_error<E, R>(operation: &'static str, id: &str, err: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.as_service_error().and_then(|e| e.code());
    if code.is_some_and(|code| is_not_found(operation, code)) {
        return ProviderError::NotFound { key: id.to_owned() };
    }
    if code == Some("TooManyUpdates") {
        return ProviderError::Throttled {
            message: format!("{operation} {id:?}: TooManyUpdates"),
        };
    }
    super::from_sdk_error(operation, id, err)
}

/// Whether `code` says the parameter (or the version or label asked for) does not exist.
fn is_not_found(operation: &str, code: &str) -> bool {
    match code {
        "ParameterNotFound" | "ParameterVersionNotFound" => true,
        // How `ListTagsForResource` and the other tagging calls say it.
        "InvalidResourceId" => operation.contains("Tags"),
        _ => false,
    }
}

#[async_trait]
impl Provider for ParameterStoreClient {
    fn metric_name(&self) -> &'static str {
        "AWS/ParameterStore"
    }

    fn get_call_name(&self) -> &'static str {
        "GetParameter"
    }

    /// ESO's `find` by name, the common one; by tags it is `DescribeParameter`.
    fn find_call_name(&self) -> &'static str {
        "GetParametersByPath"
    }

    async fn get(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let name = format!("{}{}", self.prefix, remote.key);
        if remote.metadata {
            let tags = self
                .tags(&name)
                .await?
                .ok_or_else(|| ProviderError::NotFound { key: name.clone() })?;
            return Ok(SecretBytes::from(super::tags_json(&tags)));
        }
        self.value(&with_selector(&name, remote.version.as_deref()), &name)
            .await
    }

    async fn find(&self, find: &Find) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        let matcher = find
            .name_regexp
            .as_deref()
            .map(GoRegexp::new)
            .transpose()
            .map_err(|e| ProviderError::Config(format!("invalid find.name.regexp: {e}")))?;
        let path = find.path.as_deref().filter(|p| !p.is_empty());
        match matcher {
            Some(matcher) => {
                if let Some(found) = self
                    .find_by_path(path.unwrap_or(ROOT_PATH), &matcher)
                    .await?
                {
                    return Ok(found);
                }
                self.find_by_describing(path_filter(path)?, Some(&matcher))
                    .await
            }
            None if !find.tags.is_empty() => {
                let mut filters = tag_filters(&find.tags)?;
                filters.extend(path_filter(path)?);
                self.find_by_describing(filters, None).await
            }
            // ESO's "unexpected find operator".
            None => Err(ProviderError::Config(
                "find needs name.regexp or tags to select parameters".into(),
            )),
        }
    }

    async fn push(&self, remote: &PushRef, value: &[u8]) -> Result<bool, ProviderError> {
        self.push_parameter(remote, value).await
    }

    async fn exists(&self, remote: &PushRef) -> Result<bool, ProviderError> {
        self.parameter_exists(remote).await
    }

    async fn delete_pushed(&self, remote: &PushRef) -> Result<(), ProviderError> {
        self.delete_parameter(remote).await
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        if self.referent_auth {
            return Ok(Validation::Unknown);
        }
        self.client()?;
        let Some(credentials) = &self.credentials else {
            return Err(ProviderError::Auth {
                message: "no AWS credentials are configured".into(),
                source: None,
            });
        };
        match credentials.provide_credentials().await {
            Ok(_) => Ok(Validation::Ready),
            Err(e) => Err(ProviderError::Auth {
                message: format!("could not obtain AWS credentials: {}", super::describe(&e)),
                source: Some(Box::new(e)),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
