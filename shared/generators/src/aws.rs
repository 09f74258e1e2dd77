//! AWS generators: `ECRAuthorizationToken` (a registry login) and `STSSessionToken` (temporary
//! credentials), authenticated as the AWS provider is (`auth.secretRef`, `auth.jwt`, `role`, or
//! the controller's own credentials), in the using object's namespace.

use aws_config::SdkConfig;
use base64::Engine as _;
use jiff::Timestamp;
use secret_sync_crd::generators::{EcrAuthorizationTokenSpec, StsSessionTokenSpec};
use secret_sync_providers::{ProviderError, SecretBytes};

use crate::{Context, Generated, Generator, typed};

/// ESO's endpoint override for ECR (the SDK's own `AWS_ENDPOINT_URL_ECR` works too).
const ECR_ENDPOINT_ENV: &str = "AWS_ECR_ENDPOINT";

pub(crate) struct EcrAuthorizationToken;

#[async_trait::async_trait]
impl Generator for EcrAuthorizationToken {
    fn kind(&self) -> &'static str {
        "ECRAuthorizationToken"
    }

    /// `username`, `password`, `proxy_endpoint` and `expires_at` (Unix seconds), from ECR's
    /// `GetAuthorizationToken`; the token is good for 12 hours.
    async fn generate(
        &self,
        spec: &serde_json::Value,
        context: &Context,
    ) -> Result<Generated, ProviderError> {
        let spec: EcrAuthorizationTokenSpec = typed(self.kind(), spec)?;
        if spec.scope.as_deref() == Some("public") {
            return Err(ProviderError::Config(
                "ECRAuthorizationToken scope public (ECR Public) is not supported by secret-sync yet"
                    .into(),
            ));
        }
        let config = config(
            &spec.region,
            spec.auth.as_ref(),
            spec.role.as_deref(),
            context,
        )
        .await?;
        let mut builder = aws_sdk_ecr::config::Builder::from(&config);
        if let Ok(endpoint) = std::env::var(ECR_ENDPOINT_ENV)
            && !endpoint.is_empty()
        {
            builder = builder.endpoint_url(endpoint);
        }
        let ecr = aws_sdk_ecr::Client::from_conf(builder.build());
        let answer = ecr
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| failed("GetAuthorizationToken", &e))?;
        let [data] = answer.authorization_data() else {
            return Err(ProviderError::Provider {
                operation: "GetAuthorizationToken",
                message: format!(
                    "expected one authorization, ECR answered {}",
                    answer.authorization_data().len()
                ),
                source: None,
            });
        };
        let token = data.authorization_token().unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok());
        let Some((username, password)) = decoded.as_deref().and_then(|t| t.split_once(':')) else {
            return Err(ProviderError::Provider {
                operation: "GetAuthorizationToken",
                message: "ECR's authorization token is not base64 of user:password".into(),
                source: None,
            });
        };
        let mut out = Generated::default();
        out.data
            .insert("username".into(), SecretBytes::from(username.to_owned()));
        out.data
            .insert("password".into(), SecretBytes::from(password.to_owned()));
        if let Some(endpoint) = data.proxy_endpoint() {
            out.data.insert(
                "proxy_endpoint".into(),
                SecretBytes::from(endpoint.to_owned()),
            );
        }
        if let Some(at) = data.expires_at() {
            out.data.insert(
                "expires_at".into(),
                SecretBytes::from(at.secs().to_string()),
            );
            out.expires_at = Timestamp::from_second(at.secs()).ok();
        }
        Ok(out)
    }
}

pub(crate) struct StsSessionToken;

#[async_trait::async_trait]
impl Generator for StsSessionToken {
    fn kind(&self) -> &'static str {
        "STSSessionToken"
    }

    /// `access_key_id`, `secret_access_key`, `session_token` and `expiration` (Unix seconds),
    /// from STS's `GetSessionToken`.
    async fn generate(
        &self,
        spec: &serde_json::Value,
        context: &Context,
    ) -> Result<Generated, ProviderError> {
        let spec: StsSessionTokenSpec = typed(self.kind(), spec)?;
        if spec.auth.as_ref().is_some_and(|a| a.jwt.is_some()) {
            return Err(ProviderError::Config(
                "jwt auth cannot be used for STS Session Token generation".into(),
            ));
        }
        let config = config(
            &spec.region,
            spec.auth.as_ref(),
            spec.role.as_deref(),
            context,
        )
        .await?;
        let sts = aws_sdk_sts::Client::new(&config);
        let parameters = spec.request_parameters.unwrap_or_default();
        let answer = sts
            .get_session_token()
            .set_duration_seconds(parameters.session_duration)
            .set_serial_number(parameters.serial_number)
            .set_token_code(parameters.token_code)
            .send()
            .await
            .map_err(|e| failed("GetSessionToken", &e))?;
        let credentials = answer
            .credentials()
            .ok_or_else(|| ProviderError::Provider {
                operation: "GetSessionToken",
                message: "STS answered without credentials".into(),
                source: None,
            })?;
        let expiration = credentials.expiration().secs();
        let mut out = Generated::default();
        for (key, value) in [
            ("access_key_id", credentials.access_key_id()),
            ("secret_access_key", credentials.secret_access_key()),
            ("session_token", credentials.session_token()),
        ] {
            out.data
                .insert(key.into(), SecretBytes::from(value.to_owned()));
        }
        out.data.insert(
            "expiration".into(),
            SecretBytes::from(expiration.to_string()),
        );
        out.expires_at = Timestamp::from_second(expiration).ok();
        Ok(out)
    }
}

async fn config(
    region: &str,
    auth: Option<&secret_sync_crd::provider::AwsAuth>,
    role: Option<&str>,
    context: &Context,
) -> Result<SdkConfig, ProviderError> {
    if region.is_empty() {
        return Err(ProviderError::Config("spec.region is required".into()));
    }
    secret_sync_providers::aws::sdk_config(
        region,
        auth,
        role.filter(|r| !r.is_empty()),
        &context.namespace,
        context.referents.clone(),
        &context.options,
    )
    .await
}

/// An SDK failure, by its code and message (AWS's messages name resources, not values).
fn failed<E>(operation: &'static str, err: &aws_sdk_sts::error::SdkError<E>) -> ProviderError
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let (code, message) = match err.as_service_error() {
        Some(service) => (
            service.code().unwrap_or("Unknown").to_owned(),
            service.message().unwrap_or_default().to_owned(),
        ),
        None => (
            "Transport".to_owned(),
            secret_sync_providers::aws::describe(err),
        ),
    };
    match code.as_str() {
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
            ProviderError::AccessDenied {
                message: format!("{operation}: {message}"),
            }
        }
        "ThrottlingException" | "Throttling" => ProviderError::Throttled { message },
        _ => ProviderError::Provider {
            operation,
            message: format!("{code}: {message}"),
            source: None,
        },
    }
}
