//! AWS Parameter Store as a provider kind: its stores' location (region, and the account their
//! role names, as for Secrets Manager), and how a `Parameter Store Change` event's parameter
//! meets a `remoteRef.key` (a name, with or without its leading `/`, or the parameter's ARN).

use std::sync::Arc;

use async_trait::async_trait;
use secret_sync_crd::SecretStoreProvider;
use secret_sync_crd::provider::{AwsProvider, AwsServiceType};
use secret_sync_events::aws::ssm::{KIND, ParameterArn};
use secret_sync_events::{Change, Location, Place};

use super::ParameterStoreClient;
use crate::aws::kind::{aws_is_at, aws_location, store_prefix, with_prefix};
use crate::kind::{FindMatcher, ProviderKind, trimmed};
use crate::{BuildOptions, Provider, ProviderError, Referents, StoreScope};

/// `spec.provider.aws` with `service: ParameterStore`.
pub struct ParameterStoreKind;

fn config(provider: &SecretStoreProvider) -> Option<&AwsProvider> {
    provider
        .aws
        .as_ref()
        .filter(|aws| aws.service == AwsServiceType::ParameterStore)
}

#[async_trait]
impl ProviderKind for ParameterStoreKind {
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
            .ok_or_else(|| ProviderError::Config("not a Parameter Store store".into()))?;
        let client =
            ParameterStoreClient::build(aws, scope, referents, options.aws_base.as_ref()).await?;
        Ok(Arc::new(client))
    }

    fn uses_referent_auth(&self, provider: &SecretStoreProvider) -> bool {
        config(provider).is_some_and(|aws| crate::aws::auth::is_referent_auth(aws.auth.as_ref()))
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

    /// A name without slashes at either end; an ARN also under its name.
    fn index_keys(&self, remote_key: &str) -> Vec<String> {
        let mut keys = vec![trimmed(remote_key).to_owned()];
        if let Some(arn) = ParameterArn::parse(remote_key) {
            keys.push(trimmed(arn.name).to_owned());
        }
        keys
    }

    /// The same name, with or without its leading `/`; a key read by ARN must be in the change's
    /// region and account. The store's `prefix` is part of the name.
    fn reads(&self, provider: &SecretStoreProvider, remote_key: &str, change: &Change) -> bool {
        let Place::At(at) = &change.place else {
            return false;
        };
        let remote_key = with_prefix(config(provider), remote_key);
        let remote_key = remote_key.as_ref();
        let name = match ParameterArn::parse(remote_key) {
            Some(arn) => {
                if at.get("region").is_some_and(|r| r != arn.region)
                    || at.get("account").is_some_and(|a| a != arn.account)
                {
                    return false;
                }
                arn.name
            }
            None => remote_key,
        };
        change.keys.iter().any(|k| trimmed(k) == trimmed(name))
    }

    /// Parameter names are matched as written (with their leading `/`), as `find` lists them.
    fn find_may_select(
        &self,
        _provider: &SecretStoreProvider,
        find: &FindMatcher,
        change: &Change,
    ) -> bool {
        find.may_select(change.keys.iter().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str) -> Change {
        Change::new(
            Place::At(
                Location::new(KIND)
                    .with("region", Some("us-east-1"))
                    .with("account", Some("123456789012")),
            ),
            vec![name.into()],
        )
    }

    #[test]
    fn a_parameter_is_read_by_its_name_with_or_without_the_slash_or_by_its_arn() {
        let kind = ParameterStoreKind;
        let provider = SecretStoreProvider::default();
        let c = change("/prod/db");
        assert!(kind.reads(&provider, "/prod/db", &c));
        assert!(kind.reads(&provider, "prod/db", &c));
        assert!(kind.reads(
            &provider,
            "arn:aws:ssm:us-east-1:123456789012:parameter/prod/db",
            &c
        ));
        assert!(!kind.reads(
            &provider,
            "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db",
            &c
        ));
        assert!(!kind.reads(&provider, "/prod/dbx", &c));
        assert_eq!(
            kind.index_keys("arn:aws:ssm:us-east-1:123456789012:parameter/prod/db"),
            [
                "arn:aws:ssm:us-east-1:123456789012:parameter/prod/db",
                "prod/db"
            ]
        );
    }

    #[test]
    fn the_store_prefix_is_part_of_the_name_read() {
        let kind = ParameterStoreKind;
        let provider = SecretStoreProvider {
            aws: Some(AwsProvider {
                service: AwsServiceType::ParameterStore,
                region: "us-east-1".into(),
                prefix: Some("/prod/".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(kind.key_prefix(&provider), Some("/prod/"));
        assert!(kind.reads(&provider, "db", &change("/prod/db")));
        assert!(!kind.reads(&provider, "db", &change("/db")));
        assert!(!kind.reads(&provider, "prod/db", &change("/prod/db")));
    }
}
