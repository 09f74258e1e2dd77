//! `ECRAuthorizationToken` and `STSSessionToken`: short-lived AWS credentials.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::provider::AwsAuth;

/// Where and as whom to request an ECR authorization token.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "ECRAuthorizationToken",
    root = "EcrAuthorizationToken",
    plural = "ecrauthorizationtokens",
    singular = "ecrauthorizationtoken",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "ECRAuthorizationToken requests a registry login for Amazon ECR (GetAuthorizationToken); the token is valid for 12 hours."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(rename = "EcrAuthorizationTokenSpec")]
pub struct EcrAuthorizationTokenSpec {
    /// AWS region, such as "eu-west-1".
    pub region: String,

    /// Credentials. When unset, the SDK's default chain is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AwsAuth>,

    /// ARN of a role to assume first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,

    /// `public` for ECR Public; anything else (or unset) means private ECR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

super::missing_spec_is_default!(EcrAuthorizationTokenSpec);

/// Where and as whom to request an STS session token.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "STSSessionToken",
    root = "StsSessionToken",
    plural = "stssessiontokens",
    singular = "stssessiontoken",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "STSSessionToken requests temporary AWS credentials (STS GetSessionToken)."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(rename = "StsSessionTokenSpec")]
pub struct StsSessionTokenSpec {
    /// AWS region, such as "eu-west-1".
    pub region: String,

    /// Credentials. When unset, the SDK's default chain is used. `jwt` is not accepted here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AwsAuth>,

    /// ARN of a role to assume first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,

    /// Parameters of the GetSessionToken call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_parameters: Option<StsRequestParameters>,
}

super::missing_spec_is_default!(StsSessionTokenSpec);

/// Parameters of an STS GetSessionToken call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StsRequestParameters {
    /// Lifetime of the credentials in seconds: 900 to 129600 for IAM users (AWS default 43200),
    /// at most 3600 for account owners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_duration: Option<i32>,

    /// Serial number or ARN of the MFA device of the calling user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,

    /// Current code of that MFA device, when MFA is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_code: Option<String>,
}
