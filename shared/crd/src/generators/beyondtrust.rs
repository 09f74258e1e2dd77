//! `BeyondtrustWorkloadCredentialsDynamicSecret`: dynamic credentials from BeyondTrust Workload
//! Credentials.

use k8s_openapi::ByteString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretStoreRetrySettings;
use crate::meta::SecretKeySelector;
use crate::provider::CaProvider;

/// Which dynamic secret definition to request credentials from.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "BeyondtrustWorkloadCredentialsDynamicSecret",
    plural = "beyondtrustworkloadcredentialsdynamicsecrets",
    singular = "beyondtrustworkloadcredentialsdynamicsecret",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "BeyondtrustWorkloadCredentialsDynamicSecret requests fresh temporary credentials (such as AWS STS keys) from a BeyondTrust Workload Credentials dynamic secret definition."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
#[schemars(rename = "BeyondtrustWorkloadCredentialsDynamicSecretSpec")]
pub struct BeyondtrustWorkloadCredentialsDynamicSecretSpec {
    /// Controller class that handles this generator (like an ingress class). Empty means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,

    /// How to reach BeyondTrust; `folderPath` names the dynamic secret definition, such as
    /// "production/aws-temp".
    pub provider: BeyondtrustWorkloadCredentialsProvider,

    /// HTTP retries against the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_settings: Option<SecretStoreRetrySettings>,
}

super::missing_spec_is_default!(BeyondtrustWorkloadCredentialsDynamicSecretSpec);

/// How to reach BeyondTrust Workload Credentials (ESO's store provider settings).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BeyondtrustWorkloadCredentialsProvider {
    /// How to authenticate.
    pub auth: BeyondtrustWorkloadCredentialsAuth,

    /// The API server.
    pub server: BeyondtrustWorkloadCredentialsServer,

    /// Folder path; for the generator, the path of the dynamic secret definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_path: Option<String>,

    /// PEM CA bundle to trust for the API. When neither this nor `caProvider` is set, the system
    /// roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::meta::base64_bytes")]
    pub ca_bundle: Option<ByteString>,

    /// A Secret or ConfigMap holding the CA bundle to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_provider: Option<CaProvider>,
}

/// How to authenticate to BeyondTrust Workload Credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BeyondtrustWorkloadCredentialsAuth {
    /// An API key.
    pub apikey: BeyondtrustWorkloadCredentialsAuthSecretRef,
}

/// A BeyondTrust API key kept in a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BeyondtrustWorkloadCredentialsAuthSecretRef {
    /// The Secret key holding the API token.
    pub token: SecretKeySelector,
}

/// The BeyondTrust Workload Credentials API server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BeyondtrustWorkloadCredentialsServer {
    /// Base URL of the API, such as `https://api.beyondtrust.io/siie`.
    #[serde(rename = "apiUrl")]
    pub api_url: String,

    /// Site ID (a UUID).
    pub site_id: String,
}
