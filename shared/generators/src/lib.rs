//! Generators: ESO's `generators.external-secrets.io` kinds, which make secret values instead
//! of reading them.
//!
//! A [`Generator`] turns a generator's `spec` (a `Password`, an `ECRAuthorizationToken`, ...)
//! into fresh values, every time it is asked: ESO's semantics, where each refresh of an
//! ExternalSecret gets a new password or token. Values that expire (registry tokens, STS
//! sessions, Vault leases) come with their expiry, so the engine can renew them before it
//! instead of at the next fixed refresh.
//!
//! Each kind is one module and one line in [`GENERATORS`]. Kinds ESO serves that secret-sync
//! does not generate yet are listed in [`NOT_YET`]; their CRDs are served, and a sync using one
//! fails naming the kind. Generators read credentials through the providers' [`Referents`]
//! (the ExternalSecret's namespace only, as ESO's generators do) and never write to Kubernetes.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use secret_sync_providers::{BuildOptions, ProviderError, Referents, SecretBytes};

mod aws;
mod fake;
mod password;
mod random;
mod ssh_key;
mod uuid;
mod value;
mod vault;
mod webhook;

/// What a generator made: the values by key, when the earliest of them stops working, and what
/// to clean up once they are no longer used.
#[derive(Debug, Default)]
pub struct Generated {
    pub data: BTreeMap<String, SecretBytes>,
    /// When the values expire at the source (a token's or lease's end); `None` when they do not.
    pub expires_at: Option<Timestamp>,
    /// What [`Generator::cleanup`] needs to undo this generation (a Vault lease's id, a token's
    /// accessor), kept in a GeneratorState; `None` when nothing outlives the values. Never a
    /// secret value.
    pub state: Option<serde_json::Value>,
}

/// Where a generator runs: the namespace of the object using it (credentials are read there),
/// how to read them, and the process's base settings for clients it builds.
#[derive(Clone)]
pub struct Context {
    pub namespace: String,
    pub referents: Arc<dyn Referents>,
    pub options: BuildOptions,
}

/// One generator kind.
#[async_trait]
pub trait Generator: Send + Sync {
    /// The kind, as `generatorRef.kind` and a ClusterGenerator's `spec.kind` name it.
    fn kind(&self) -> &'static str;

    /// Makes fresh values from `spec` (the generator object's `spec`, as stored). Errors name
    /// fields, keys and servers, never values.
    async fn generate(
        &self,
        spec: &serde_json::Value,
        context: &Context,
    ) -> Result<Generated, ProviderError>;

    /// Undoes a generation whose values are no longer used (revokes a lease or a token), from
    /// the `spec` it was made with and the [`Generated::state`] it returned. Idempotent: what is
    /// already gone is not an error.
    async fn cleanup(
        &self,
        spec: &serde_json::Value,
        state: &serde_json::Value,
        context: &Context,
    ) -> Result<(), ProviderError> {
        let _ = (spec, state, context);
        Ok(())
    }
}

/// Every generator kind secret-sync serves. The registration line of a new kind goes here.
static GENERATORS: &[&dyn Generator] = &[
    &password::Password,
    &uuid::Uuid,
    &fake::Fake,
    &ssh_key::SshKey,
    &aws::EcrAuthorizationToken,
    &aws::StsSessionToken,
    &vault::VaultDynamicSecret,
    &webhook::Webhook,
];

/// Kinds ESO serves whose CRDs secret-sync serves too, but which it does not generate yet.
pub const NOT_YET: &[&str] = &[
    "ACRAccessToken",
    "BeyondtrustWorkloadCredentialsDynamicSecret",
    "CloudsmithAccessToken",
    "GCRAccessToken",
    "GithubAccessToken",
    "GitlabDeployToken",
    "Grafana",
    "MFA",
    "QuayAccessToken",
];

/// The generator of `kind`, or an error a person can act on.
pub fn generator(kind: &str) -> Result<&'static dyn Generator, ProviderError> {
    if let Some(found) = GENERATORS.iter().copied().find(|g| g.kind() == kind) {
        return Ok(found);
    }
    let supported = GENERATORS
        .iter()
        .map(|g| g.kind())
        .collect::<Vec<_>>()
        .join(", ");
    Err(ProviderError::Config(if NOT_YET.contains(&kind) {
        format!(
            "generator kind {kind} is not supported by secret-sync yet (supported: {supported})"
        )
    } else {
        format!("{kind:?} is not a generator kind (supported: {supported})")
    }))
}

/// The kinds secret-sync generates.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    GENERATORS.iter().map(|g| g.kind())
}

/// `spec` read as a kind's typed spec; a refusal names the kind and serde's reason (which
/// quotes field names and types, not values of secret fields: specs hold no secrets).
fn typed<T: serde::de::DeserializeOwned>(
    kind: &str,
    spec: &serde_json::Value,
) -> Result<T, ProviderError> {
    let spec = if spec.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        spec.clone()
    };
    serde_json::from_value(spec)
        .map_err(|e| ProviderError::Config(format!("invalid {kind} spec: {e}")))
}
