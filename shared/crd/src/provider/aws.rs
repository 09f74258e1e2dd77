//! `spec.provider.aws`: AWS Secrets Manager, Parameter Store and Certificate Manager.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{SecretKeySelector, ServiceAccountSelector};

/// Reads and writes secrets in AWS.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsProvider {
    /// The AWS service: `SecretsManager`, `ParameterStore` or `CertificateManager`.
    pub service: AwsServiceType,

    /// Credentials. When unset, the SDK's default chain is used (environment, IRSA, pod
    /// identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AwsAuth>,

    /// ARN of a role to assume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,

    /// AWS region, such as "us-east-1".
    pub region: String,

    /// Role ARNs assumed in order before `role`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_roles: Vec<String>,

    /// External ID passed when assuming roles.
    #[serde(
        default,
        rename = "externalID",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<String>,

    /// Session tags passed when assuming roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_tags: Vec<AwsTag>,

    /// Secrets Manager settings used when a PushSecret deletes a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_manager: Option<AwsSecretsManager>,

    /// Session tag keys that pass on to roles assumed further down a chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitive_tag_keys: Vec<String>,

    /// Session tags added automatically: `None` (the default) adds none; `Simple` adds
    /// esoNamespace, esoStoreName and esoStoreKind; `Custom` adds those and `customSessionTags`.
    /// `Simple` and `Custom` need `sts:TagSession`.
    #[serde(default)]
    pub session_tags_policy: AwsSessionTagsPolicy,

    /// Extra session tags for the `Custom` policy.
    // ESO's CRD rule and message, on the same field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "!('esoNamespace' in self) && !('esoStoreName' in self) && !('esoStoreKind' in self)",
        "message": "customSessionTags cannot contain automatically injected reserved keys: esoNamespace, esoStoreName, esoStoreKind"
    }]))]
    pub custom_session_tags: BTreeMap<String, String>,

    /// Prefix added to every key read or written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// The AWS service: `SecretsManager`, `ParameterStore` or `CertificateManager`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AwsServiceType {
    #[default]
    SecretsManager,
    ParameterStore,
    CertificateManager,
}

/// Session tag policy: `None`, `Simple` or `Custom`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AwsSessionTagsPolicy {
    #[default]
    None,
    Simple,
    Custom,
}

/// AWS credentials: static keys from a Secret, or a ServiceAccount token (web identity). Set at
/// most one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuth {
    /// Static access keys kept in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<AwsAuthSecretRef>,

    /// Assume a role with a ServiceAccount token (IRSA-style web identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<AwsJwtAuth>,
}

/// Static AWS access keys kept in a Secret. Both the access key ID and the secret access key are
/// needed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AwsAuthSecretRef {
    /// The access key ID.
    #[serde(
        default,
        rename = "accessKeyIDSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_key_id: Option<SecretKeySelector>,

    /// The secret access key.
    #[serde(
        default,
        rename = "secretAccessKeySecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret_access_key: Option<SecretKeySelector>,

    /// The session token, needed when the keys are temporary credentials.
    #[serde(
        default,
        rename = "sessionTokenSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_token: Option<SecretKeySelector>,
}

/// Authenticates to AWS with a ServiceAccount token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsJwtAuth {
    /// The ServiceAccount whose token is exchanged for AWS credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountSelector>,
}

/// An STS session tag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsTag {
    /// Tag key.
    pub key: String,

    /// Tag value.
    pub value: String,
}

/// Secrets Manager settings for deletions made by PushSecrets with `deletionPolicy: Delete`.
// ESO's webhook (the aws provider's ValidateStore: ValidateDeleteSecretInput), with its messages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.recoveryWindowInDays) || self.recoveryWindowInDays == 0 || (self.recoveryWindowInDays >= 7 && self.recoveryWindowInDays <= 30)",
        "message": "invalid DeleteSecretInput: RecoveryWindowInDays must be between 7 and 30 days"
    },
    {
        "rule": "!(has(self.recoveryWindowInDays) && self.recoveryWindowInDays != 0 && has(self.forceDeleteWithoutRecovery) && self.forceDeleteWithoutRecovery)",
        "message": "invalid DeleteSecretInput: ForceDeleteWithoutRecovery conflicts with RecoveryWindowInDays"
    }
]))]
pub struct AwsSecretsManager {
    /// Deletes at once, without a recovery window. Excludes `recoveryWindowInDays`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_delete_without_recovery: Option<bool>,

    /// Days (7 to 30) Secrets Manager keeps a deleted secret recoverable. AWS defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_window_in_days: Option<i64>,
}
