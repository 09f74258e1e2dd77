//! Provider settings of a store (`spec.provider.<name>`), for the providers secret-sync serves.
//! Other providers are kept as raw JSON in [`crate::SecretStoreProvider::other`].

mod aws;
mod fake;
mod kubernetes;
mod openbao;
mod vault;

pub use aws::*;
pub use fake::*;
pub use kubernetes::*;
pub use openbao::*;
pub use vault::*;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{DNS_LABEL, DNS_SUBDOMAIN, SECRET_KEY};

/// A Secret or ConfigMap key holding a PEM CA bundle to trust.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaProvider {
    /// `Secret` or `ConfigMap`.
    #[serde(rename = "type")]
    pub type_: CaProviderType,

    /// Name of the Secret or ConfigMap.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,

    /// Key holding the certificates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY))]
    pub key: String,

    /// Namespace of the Secret or ConfigMap. Only allowed in a ClusterSecretStore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub namespace: Option<String>,
}

/// Where a CA bundle is kept: `Secret` or `ConfigMap`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CaProviderType {
    #[default]
    Secret,
    ConfigMap,
}
