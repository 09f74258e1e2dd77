//! `Webhook`: values from an HTTP endpoint.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalSecretKeySelector;
use crate::meta::SecretKeySelector;
use crate::provider::CaProvider;

/// The HTTP call whose JSON answer becomes the generator's output.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "Webhook",
    plural = "webhooks",
    singular = "webhook",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "Webhook calls an HTTP endpoint and returns the keys of the JSON object it answers with."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(rename = "WebhookSpec")]
pub struct WebhookSpec {
    /// HTTP method. Defaults to GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,

    /// URL to call; a template.
    pub url: String,

    /// Request headers; values are templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,

    /// An authentication protocol. Set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthorizationProtocol>,

    /// Request body; a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,

    /// Request timeout, as a Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,

    /// Where the values are in the answer.
    pub result: WebhookResult,

    /// Secrets (in the namespace of the referring object) whose keys templates may use, each
    /// under its `name`. They must carry the label `external-secrets.io/type: webhook`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<WebhookSecret>,

    /// PEM CA bundle to trust for https. When neither this nor `caProvider` is set, the system
    /// roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::meta::base64_bytes")]
    pub ca_bundle: Option<ByteString>,

    /// A Secret or ConfigMap holding the CA bundle to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_provider: Option<CaProvider>,
}

super::missing_spec_is_default!(WebhookSpec);

/// An authentication protocol for a webhook. Exactly one may be set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct AuthorizationProtocol {
    /// NTLM with a username and password from Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntlm: Option<NtlmProtocol>,
}

/// NTLM credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NtlmProtocol {
    /// The username.
    #[serde(rename = "usernameSecret")]
    pub username_secret: SecretKeySelector,

    /// The password.
    #[serde(rename = "passwordSecret")]
    pub password_secret: SecretKeySelector,
}

/// Where the values are in a webhook's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookResult {
    /// JSONPath of a JSON object (or of a string holding one) in the answer. Unset means the
    /// whole answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
}

/// A Secret whose keys webhook templates may use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSecret {
    /// Name under which templates see the Secret's keys.
    pub name: String,

    /// The Secret; only its name is used.
    pub secret_ref: LocalSecretKeySelector,
}
