//! AWS credentials for a store, as ESO builds them (`providers/v1/aws/auth/auth.go` in
//! external-secrets):
//!
//! 1. the source: `auth.jwt` (a ServiceAccount token exchanged with STS
//!    `AssumeRoleWithWebIdentity`), else `auth.secretRef` (static keys read from a Secret), else
//!    the SDK's default chain (environment, web-identity token file, EKS pod identity, IMDS);
//! 2. each of `additionalRoles` assumed in order, each with the previous credentials;
//! 3. `role` assumed last, with `externalID`, the session tags and `transitiveTagKeys`.
//!
//! Every step is a credentials provider; the SDK client on top caches the final credentials and
//! refreshes them before they expire, which re-runs the chain (a fresh ServiceAccount token
//! included).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::types::Tag;
use secret_sync_crd::SecretKeySelector;
use secret_sync_crd::provider::{AwsAuth, AwsAuthSecretRef, AwsProvider, AwsSessionTagsPolicy};

use crate::{ProviderError, Referents, StoreScope};

/// The ServiceAccount annotation naming the role to assume with its token (IRSA).
pub(crate) const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The ServiceAccount annotation naming the token audience (IRSA).
pub(crate) const AUDIENCE_ANNOTATION: &str = "eks.amazonaws.com/audience";
/// The token audience when the ServiceAccount names none.
pub(crate) const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
/// ServiceAccount token lifetime requested from the TokenRequest API.
const TOKEN_EXPIRATION_SECONDS: i64 = 600;
/// Session name for `AssumeRoleWithWebIdentity` (ESO's, so IAM conditions written for ESO match).
const WEB_IDENTITY_SESSION_NAME: &str = "external-secrets-provider-aws";
/// Session name for `AssumeRole`.
const ASSUME_ROLE_SESSION_NAME: &str = "secret-sync";
/// ESO's environment variable for a custom STS endpoint; honoured as ESO does.
const STS_ENDPOINT_ENV: &str = "AWS_STS_ENDPOINT";

/// Whether the auth references credentials without a namespace: in a ClusterSecretStore these
/// resolve in each ExternalSecret's namespace (ESO's `IsReferentSpec`).
pub(crate) fn is_referent_auth(auth: Option<&AwsAuth>) -> bool {
    let Some(auth) = auth else { return false };
    if let Some(sa) = auth
        .jwt
        .as_ref()
        .and_then(|j| j.service_account_ref.as_ref())
        && sa.namespace.is_none()
    {
        return true;
    }
    if let Some(refs) = &auth.secret_ref {
        let no_ns =
            |sel: &Option<SecretKeySelector>| sel.as_ref().is_some_and(|s| s.namespace.is_none());
        return refs
            .access_key_id
            .as_ref()
            .is_none_or(|s| s.namespace.is_none())
            || refs
                .secret_access_key
                .as_ref()
                .is_none_or(|s| s.namespace.is_none())
            || no_ns(&refs.session_token);
    }
    false
}

/// The credentials provider for a store, or `None` to keep `base`'s (the default chain) when the
/// store names neither auth nor roles.
pub(crate) async fn store_credentials(
    provider: &AwsProvider,
    scope: &StoreScope,
    referents: Arc<dyn Referents>,
    base: &SdkConfig,
) -> Result<Option<SharedCredentialsProvider>, ProviderError> {
    let mut role = provider.role.as_deref().filter(|r| !r.is_empty());
    let auth = provider.auth.as_ref();
    let mut current = if let Some(jwt) = auth.and_then(|a| a.jwt.as_ref()) {
        let sa = jwt.service_account_ref.as_ref().ok_or_else(|| {
            ProviderError::Config("auth.jwt.serviceAccountRef is required".into())
        })?;
        let namespace = scope.referent_namespace(sa.namespace.as_deref()).to_owned();
        let annotations = referents
            .service_account_annotations(&namespace, &sa.name)
            .await?;
        // ESO requires the IRSA annotation. Without it, secret-sync uses `role` for the token
        // exchange (and does not assume it a second time).
        let role_arn = match non_empty(&annotations, ROLE_ARN_ANNOTATION) {
            Some(arn) => arn.to_owned(),
            None => role.take().map(str::to_owned).ok_or_else(|| {
                ProviderError::Config(format!(
                    "an IAM role must be associated with service account {} (namespace: {namespace}): \
                     annotate it with {ROLE_ARN_ANNOTATION} or set spec.provider.aws.role",
                    sa.name
                ))
            })?,
        };
        let audiences = token_audiences(&annotations, &sa.audiences);
        let sts = sts_client(base, None);
        Some(SharedCredentialsProvider::new(WebIdentity {
            referents,
            namespace,
            name: sa.name.clone(),
            audiences,
            role_arn,
            sts,
        }))
    } else if let Some(refs) = auth.and_then(|a| a.secret_ref.as_ref()) {
        Some(SharedCredentialsProvider::new(
            static_credentials(refs, scope, referents.as_ref()).await?,
        ))
    } else {
        None
    };

    for arn in provider.additional_roles.iter().filter(|r| !r.is_empty()) {
        let source = source_credentials(current.take(), base, arn)?;
        current = Some(SharedCredentialsProvider::new(AssumeRole {
            sts: sts_client(base, Some(source)),
            role_arn: arn.clone(),
            external_id: None,
            tags: Vec::new(),
            transitive_tag_keys: Vec::new(),
        }));
    }
    if let Some(arn) = role {
        let source = source_credentials(current.take(), base, arn)?;
        current = Some(SharedCredentialsProvider::new(AssumeRole {
            sts: sts_client(base, Some(source)),
            role_arn: arn.to_owned(),
            external_id: provider.external_id.clone().filter(|id| !id.is_empty()),
            tags: session_tags(provider, scope)?,
            transitive_tag_keys: provider.transitive_tag_keys.clone(),
        }));
    }
    Ok(current)
}

fn non_empty<'a>(map: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    map.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

/// ESO's audiences: the ServiceAccount's IRSA audience (or `sts.amazonaws.com`), then the
/// reference's own.
pub(crate) fn token_audiences(
    annotations: &BTreeMap<String, String>,
    extra: &[String],
) -> Vec<String> {
    let first = non_empty(annotations, AUDIENCE_ANNOTATION).unwrap_or(DEFAULT_AUDIENCE);
    std::iter::once(first.to_owned())
        .chain(extra.iter().cloned())
        .collect()
}

/// The session tags for `role`: `sessionTags`, then what `sessionTagsPolicy` adds.
pub(crate) fn session_tag_pairs(
    provider: &AwsProvider,
    scope: &StoreScope,
) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = provider
        .session_tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    if matches!(
        provider.session_tags_policy,
        AwsSessionTagsPolicy::Simple | AwsSessionTagsPolicy::Custom
    ) {
        tags.push(("esoNamespace".into(), scope.namespace.clone()));
        tags.push(("esoStoreName".into(), scope.name.clone()));
        tags.push(("esoStoreKind".into(), scope.kind.as_str().into()));
    }
    if provider.session_tags_policy == AwsSessionTagsPolicy::Custom {
        tags.extend(
            provider
                .custom_session_tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    tags
}

fn session_tags(provider: &AwsProvider, scope: &StoreScope) -> Result<Vec<Tag>, ProviderError> {
    session_tag_pairs(provider, scope)
        .into_iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| ProviderError::Config(format!("invalid session tag: {e}")))
        })
        .collect()
}

fn source_credentials(
    current: Option<SharedCredentialsProvider>,
    base: &SdkConfig,
    role: &str,
) -> Result<SharedCredentialsProvider, ProviderError> {
    current
        .or_else(|| base.credentials_provider())
        .ok_or_else(|| {
            ProviderError::Config(format!(
                "no credentials to assume role {role} with: set spec.provider.aws.auth or provide \
                 credentials to the controller"
            ))
        })
}

/// An STS client on `base`'s region, endpoint and HTTP client, signing with `credentials`
/// (`None`: unsigned, for `AssumeRoleWithWebIdentity`). ESO's `AWS_STS_ENDPOINT` overrides the
/// endpoint, as do the SDK's standard `AWS_ENDPOINT_URL(_STS)`.
fn sts_client(
    base: &SdkConfig,
    credentials: Option<SharedCredentialsProvider>,
) -> aws_sdk_sts::Client {
    let mut config = aws_sdk_sts::config::Builder::from(base);
    config.set_credentials_provider(credentials);
    if let Ok(endpoint) = std::env::var(STS_ENDPOINT_ENV)
        && !endpoint.is_empty()
    {
        config.set_endpoint_url(Some(endpoint));
    }
    aws_sdk_sts::Client::from_conf(config.build())
}

/// Reads static keys from Secrets.
async fn static_credentials(
    refs: &AwsAuthSecretRef,
    scope: &StoreScope,
    referents: &dyn Referents,
) -> Result<Credentials, ProviderError> {
    let required = |sel: &Option<SecretKeySelector>, field: &str| {
        sel.clone()
            .ok_or_else(|| ProviderError::Config(format!("auth.secretRef.{field} is required")))
    };
    let akid_sel = required(&refs.access_key_id, "accessKeyIDSecretRef")?;
    let sak_sel = required(&refs.secret_access_key, "secretAccessKeySecretRef")?;
    let akid = read_key(referents, scope, &akid_sel, "accessKeyIDSecretRef").await?;
    let sak = read_key(referents, scope, &sak_sel, "secretAccessKeySecretRef").await?;
    let token = match &refs.session_token {
        Some(sel) => Some(read_key(referents, scope, sel, "sessionTokenSecretRef").await?),
        None => None,
    };
    Ok(Credentials::new(
        akid,
        sak,
        token,
        None,
        "secret-sync-secret-ref",
    ))
}

/// One credential string from a Secret, surrounding whitespace (a trailing newline) removed.
async fn read_key(
    referents: &dyn Referents,
    scope: &StoreScope,
    sel: &SecretKeySelector,
    field: &str,
) -> Result<String, ProviderError> {
    let namespace = scope.referent_namespace(sel.namespace.as_deref());
    let bytes = referents.secret_key(namespace, &sel.name, &sel.key).await?;
    let mut text = String::from_utf8(bytes.into_inner()).map_err(|_| {
        ProviderError::Config(format!(
            "auth.secretRef.{field}: key {:?} of secret {namespace}/{} is not UTF-8",
            sel.key, sel.name
        ))
    })?;
    let trimmed = text.trim().to_owned();
    zeroize::Zeroize::zeroize(&mut text);
    if trimmed.is_empty() {
        return Err(ProviderError::Config(format!(
            "auth.secretRef.{field}: key {:?} of secret {namespace}/{} is empty",
            sel.key, sel.name
        )));
    }
    Ok(trimmed)
}

/// Converts STS credentials.
fn sts_credentials(
    creds: Option<aws_sdk_sts::types::Credentials>,
    provider_name: &'static str,
) -> Result<Credentials, CredentialsError> {
    let creds = creds
        .ok_or_else(|| CredentialsError::unhandled("STS returned no credentials".to_owned()))?;
    let expiry = SystemTime::try_from(creds.expiration).ok();
    Ok(Credentials::new(
        creds.access_key_id,
        creds.secret_access_key,
        Some(creds.session_token),
        expiry,
        provider_name,
    ))
}

/// An STS failure: the AWS error code and message, or the transport error chain.
fn sts_error<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    match (err.code(), err.message()) {
        (Some(code), message) => format!("{code}: {}", message.unwrap_or_default()),
        _ => super::describe(err),
    }
}

/// `AssumeRoleWithWebIdentity` with a token the TokenRequest API issues for a ServiceAccount;
/// a fresh token on every refresh.
struct WebIdentity {
    referents: Arc<dyn Referents>,
    namespace: String,
    name: String,
    audiences: Vec<String>,
    role_arn: String,
    sts: aws_sdk_sts::Client,
}

impl fmt::Debug for WebIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebIdentity")
            .field(
                "service_account",
                &format_args!("{}/{}", self.namespace, self.name),
            )
            .field("audiences", &self.audiences)
            .field("role_arn", &self.role_arn)
            .finish()
    }
}

impl WebIdentity {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        tracing::debug!(
            service_account = %format_args!("{}/{}", self.namespace, self.name),
            role = %self.role_arn,
            "requesting a ServiceAccount token for AssumeRoleWithWebIdentity"
        );
        let token = self
            .referents
            .service_account_token(
                &self.namespace,
                &self.name,
                &self.audiences,
                TOKEN_EXPIRATION_SECONDS,
            )
            .await
            .map_err(CredentialsError::provider_error)?;
        let token = String::from_utf8(token.into_inner()).map_err(|_| {
            CredentialsError::provider_error(format!(
                "the token for service account {}/{} is not UTF-8",
                self.namespace, self.name
            ))
        })?;
        let result = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name(WEB_IDENTITY_SESSION_NAME)
            .web_identity_token(token)
            .send()
            .await;
        match result {
            Ok(out) => sts_credentials(out.credentials, "secret-sync-web-identity"),
            Err(e) => Err(CredentialsError::provider_error(format!(
                "AssumeRoleWithWebIdentity for role {} with service account {}/{} failed: {}",
                self.role_arn,
                self.namespace,
                self.name,
                sts_error(&e)
            ))),
        }
    }
}

impl ProvideCredentials for WebIdentity {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}

/// `AssumeRole` with the previous step's credentials.
#[derive(Debug)]
struct AssumeRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    external_id: Option<String>,
    tags: Vec<Tag>,
    transitive_tag_keys: Vec<String>,
}

impl AssumeRole {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        tracing::debug!(role = %self.role_arn, "assuming role");
        let result = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(ASSUME_ROLE_SESSION_NAME)
            .set_external_id(self.external_id.clone())
            .set_tags((!self.tags.is_empty()).then(|| self.tags.clone()))
            .set_transitive_tag_keys(
                (!self.transitive_tag_keys.is_empty()).then(|| self.transitive_tag_keys.clone()),
            )
            .send()
            .await;
        match result {
            Ok(out) => sts_credentials(out.credentials, "secret-sync-assume-role"),
            Err(e) => Err(CredentialsError::provider_error(format!(
                "AssumeRole for role {} failed: {}",
                self.role_arn,
                sts_error(&e)
            ))),
        }
    }
}

impl ProvideCredentials for AssumeRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}

#[cfg(test)]
mod tests {
    use secret_sync_crd::provider::{AwsJwtAuth, AwsTag};
    use secret_sync_crd::{ServiceAccountSelector, StoreKind};

    use super::*;

    fn sel(namespace: Option<&str>) -> Option<SecretKeySelector> {
        Some(SecretKeySelector {
            name: "aws".into(),
            namespace: namespace.map(Into::into),
            key: "k".into(),
        })
    }

    fn secret_auth(akid: Option<&str>, sak: Option<&str>, token: Option<Option<&str>>) -> AwsAuth {
        AwsAuth {
            secret_ref: Some(AwsAuthSecretRef {
                access_key_id: sel(akid),
                secret_access_key: sel(sak),
                session_token: token.and_then(sel),
            }),
            jwt: None,
        }
    }

    fn jwt_auth(namespace: Option<&str>) -> AwsAuth {
        AwsAuth {
            secret_ref: None,
            jwt: Some(AwsJwtAuth {
                service_account_ref: Some(ServiceAccountSelector {
                    name: "sa".into(),
                    namespace: namespace.map(Into::into),
                    audiences: vec![],
                }),
            }),
        }
    }

    #[test]
    fn auth_is_referent_when_any_reference_lacks_a_namespace() {
        assert!(!is_referent_auth(None));
        assert!(!is_referent_auth(Some(&secret_auth(
            Some("a"),
            Some("a"),
            None
        ))));
        assert!(is_referent_auth(Some(&secret_auth(None, Some("a"), None))));
        assert!(is_referent_auth(Some(&secret_auth(Some("a"), None, None))));
        assert!(is_referent_auth(Some(&secret_auth(
            Some("a"),
            Some("a"),
            Some(None)
        ))));
        assert!(!is_referent_auth(Some(&secret_auth(
            Some("a"),
            Some("a"),
            Some(Some("a"))
        ))));
        assert!(is_referent_auth(Some(&jwt_auth(None))));
        assert!(!is_referent_auth(Some(&jwt_auth(Some("a")))));
    }

    #[test]
    fn token_audiences_default_to_sts_then_add_the_references_own() {
        let none = BTreeMap::new();
        assert_eq!(token_audiences(&none, &[]), ["sts.amazonaws.com"]);
        let annotated = BTreeMap::from([(AUDIENCE_ANNOTATION.to_owned(), "custom".to_owned())]);
        assert_eq!(
            token_audiences(&annotated, &["extra".to_owned()]),
            ["custom", "extra"]
        );
    }

    fn scope() -> StoreScope {
        StoreScope {
            kind: StoreKind::ClusterSecretStore,
            name: "aws-store".into(),
            namespace: "team-a".into(),
        }
    }

    #[test]
    fn session_tags_policy_none_passes_only_the_stores_tags() {
        let provider = AwsProvider {
            session_tags: vec![AwsTag {
                key: "team".into(),
                value: "a".into(),
            }],
            ..Default::default()
        };
        assert_eq!(
            session_tag_pairs(&provider, &scope()),
            [("team".to_owned(), "a".to_owned())]
        );
    }

    #[test]
    fn session_tags_policy_simple_adds_namespace_store_name_and_kind() {
        let provider = AwsProvider {
            session_tags_policy: AwsSessionTagsPolicy::Simple,
            custom_session_tags: BTreeMap::from([("ignored".into(), "x".into())]),
            ..Default::default()
        };
        assert_eq!(
            session_tag_pairs(&provider, &scope()),
            [
                ("esoNamespace".to_owned(), "team-a".to_owned()),
                ("esoStoreName".to_owned(), "aws-store".to_owned()),
                ("esoStoreKind".to_owned(), "ClusterSecretStore".to_owned()),
            ]
        );
    }

    #[test]
    fn session_tags_policy_custom_adds_the_custom_tags_too() {
        let provider = AwsProvider {
            session_tags_policy: AwsSessionTagsPolicy::Custom,
            custom_session_tags: BTreeMap::from([("cost-center".into(), "42".into())]),
            ..Default::default()
        };
        let tags = session_tag_pairs(&provider, &scope());
        assert_eq!(tags.len(), 4);
        assert_eq!(tags[3], ("cost-center".to_owned(), "42".to_owned()));
    }
}
