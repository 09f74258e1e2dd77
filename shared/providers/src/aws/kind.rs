//! AWS Secrets Manager as a provider kind: its stores' location (region, and the account their
//! role names), and how a change event's secret meets a `remoteRef.key` (by name, full ARN or
//! ARN without its random suffix; see `secret_sync_events::aws::SecretId`).

use std::sync::Arc;

use async_trait::async_trait;
use secret_sync_crd::SecretStoreProvider;
use secret_sync_crd::provider::{AwsProvider, AwsServiceType};
use secret_sync_events::aws::{KIND, SecretId, remote_key_index_keys};
use secret_sync_events::{Change, Location, Place};

use crate::kind::{FindMatcher, ProviderKind};
use crate::{BuildOptions, Provider, ProviderError, Referents, StoreScope};

/// `spec.provider.aws` with `service: SecretsManager`.
pub struct SecretsManagerKind;

fn config(provider: &SecretStoreProvider) -> Option<&AwsProvider> {
    provider
        .aws
        .as_ref()
        .filter(|aws| aws.service == AwsServiceType::SecretsManager)
}

/// The account of an IAM role ARN (`arn:aws:iam::123456789012:role/name`).
fn account_of_role(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next()? == "arn").then_some(())?;
    let account = parts.nth(3)?;
    (!account.is_empty()).then_some(account)
}

/// The account an AWS store names: that of its `role`, else of its last `additionalRoles`.
fn store_account(aws: &AwsProvider) -> Option<&str> {
    aws.role
        .as_deref()
        .or(aws.additional_roles.last().map(String::as_str))
        .and_then(account_of_role)
}

/// [`aws_location`] overlaps `at`, without building it.
pub(crate) fn aws_is_at(kind: &'static str, aws: &AwsProvider, at: &Location) -> bool {
    at.kind == kind
        && at.get("region").is_none_or(|r| r == aws.region)
        && match (at.get("account"), store_account(aws)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
}

/// The `prefix` an AWS store adds to every key, when it has one.
pub(crate) fn store_prefix(aws: &AwsProvider) -> Option<&str> {
    aws.prefix.as_deref().filter(|p| !p.is_empty())
}

/// The key an AWS store reads for `remote_key`: with its `prefix` in front, as the clients do.
pub(crate) fn with_prefix<'a>(
    aws: Option<&AwsProvider>,
    remote_key: &'a str,
) -> std::borrow::Cow<'a, str> {
    match aws.and_then(store_prefix) {
        Some(prefix) => format!("{prefix}{remote_key}").into(),
        None => remote_key.into(),
    }
}

/// Where an AWS store reads: its region, and the account of its `role` (else of the last
/// `additionalRoles` entry) when it names one. Shared by the AWS kinds.
pub(crate) fn aws_location(kind: &'static str, aws: &AwsProvider) -> Location {
    let account = store_account(aws);
    Location::new(kind)
        .with("region", Some(aws.region.as_str()))
        .with("account", account)
}

#[async_trait]
impl ProviderKind for SecretsManagerKind {
    fn id(&self) -> &'static str {
        KIND
    }

    fn serves(&self, provider: &SecretStoreProvider) -> bool {
        config(provider).is_some()
    }

    async fn build(
        &self,
        provider: &SecretStoreProvider,
        scope: &StoreScope,
        referents: Arc<dyn Referents>,
        options: &BuildOptions,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        let aws = config(provider)
            .ok_or_else(|| ProviderError::Config("not a Secrets Manager store".into()))?;
        let client = match &options.aws_base {
            Some(base) => {
                super::SecretsManagerClient::with_base_config(aws, scope, referents, base).await?
            }
            None => super::SecretsManagerClient::new(aws, scope, referents).await?,
        };
        Ok(Arc::new(client))
    }

    fn uses_referent_auth(&self, provider: &SecretStoreProvider) -> bool {
        config(provider).is_some_and(|aws| super::auth::is_referent_auth(aws.auth.as_ref()))
    }

    fn refusal(&self, provider: &SecretStoreProvider) -> Option<String> {
        let service = provider.aws.as_ref()?.service;
        (service == AwsServiceType::CertificateManager).then(|| {
            format!(
                "AWS service {service:?} is not supported by secret-sync yet (supported: SecretsManager, ParameterStore)"
            )
        })
    }

    fn location(&self, provider: &SecretStoreProvider) -> Location {
        match config(provider) {
            Some(aws) => aws_location(KIND, aws),
            None => Location::new(KIND),
        }
    }

    fn key_prefix<'a>(&self, provider: &'a SecretStoreProvider) -> Option<&'a str> {
        store_prefix(config(provider)?)
    }

    fn is_at(&self, provider: &SecretStoreProvider, at: &Location) -> bool {
        config(provider).is_some_and(|aws| aws_is_at(KIND, aws, at))
    }

    fn index_keys(&self, remote_key: &str) -> Vec<String> {
        remote_key_index_keys(remote_key)
    }

    fn change_keys(&self, change: &Change) -> Vec<String> {
        change.keys.clone()
    }

    /// A key read by ARN must be in the change's region and account; a key read by name is in
    /// the store's account, when the store names one. The store's `prefix` is part of the key.
    fn reads(&self, provider: &SecretStoreProvider, remote_key: &str, change: &Change) -> bool {
        let Place::At(at) = &change.place else {
            return false;
        };
        let remote_key = with_prefix(config(provider), remote_key);
        let remote = SecretId::parse(&remote_key);
        let remote_arn = remote.arns().first();
        if let (Some(region), Some(remote_region)) = (
            at.get("region"),
            remote_arn.and_then(|arn| arn.region.as_deref()),
        ) && region != remote_region
        {
            return false;
        }
        let expected_account = remote_arn
            .and_then(|arn| arn.account.as_deref())
            .or(config(provider).and_then(store_account));
        if let (Some(account), Some(expected)) = (at.get("account"), expected_account)
            && account != expected
        {
            return false;
        }
        remote
            .index_keys()
            .iter()
            .any(|key| change.keys.contains(key))
    }

    /// Secrets Manager names are matched as written (a leading `/` is part of a name).
    fn find_may_select(
        &self,
        _provider: &SecretStoreProvider,
        find: &FindMatcher,
        change: &Change,
    ) -> bool {
        change.keys.is_empty() || find.may_select(change.keys.iter().map(String::as_str))
    }
}
