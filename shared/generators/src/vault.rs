//! `VaultDynamicSecret`: one request to any path of Vault's (or OpenBao's) API, authenticated
//! as the Vault provider is (`spec.provider` is a SecretStore's `vault` block), whose answer
//! becomes the Secret's keys: its `data` (`resultType: Data`), its `auth` (`Auth`) or all of it
//! (`Raw`), each top-level member one key (nested values as JSON). A lease in the answer says
//! when the values expire.
//!
//! Beyond ESO (whose generator revokes nothing): what the answer leased is revoked once the
//! values are replaced or their ExternalSecret is deleted (through a GeneratorState, after its
//! grace period): a lease by its id (`sys/leases/revoke`), a token by its accessor
//! (`auth/token/revoke-accessor`).

use std::time::Duration;

use jiff::Timestamp;
use secret_sync_crd::StoreKind;
use secret_sync_crd::generators::{
    VaultDynamicSecretResultType as ResultType, VaultDynamicSecretSpec,
};
use secret_sync_providers::vault::VaultClient;
use secret_sync_providers::{ProviderError, SecretBytes, StoreScope};
use serde_json::Value;

use crate::{Context, Generated, Generator, typed, value};

/// Retries when `retrySettings` is absent: the Vault Go client's default, which ESO keeps.
const DEFAULT_RETRIES: u32 = 2;
const DEFAULT_RETRY_WAIT: Duration = Duration::from_secs(1);

pub(crate) struct VaultDynamicSecret;

#[async_trait::async_trait]
impl Generator for VaultDynamicSecret {
    fn kind(&self) -> &'static str {
        "VaultDynamicSecret"
    }

    async fn generate(
        &self,
        spec: &serde_json::Value,
        context: &Context,
    ) -> Result<Generated, ProviderError> {
        let spec: VaultDynamicSecretSpec = typed(self.kind(), spec)?;
        if spec.path.is_empty() {
            return Err(ProviderError::Config(
                "invalid VaultDynamicSecret spec: path is required".into(),
            ));
        }
        let client = client(&spec, context).await?;
        let method = spec.method.as_deref().unwrap_or_default();
        let body = match method {
            "" | "GET" | "LIST" | "DELETE" => None,
            _ => Some(SecretBytes::from(
                spec.parameters
                    .as_ref()
                    .filter(|p| !p.is_null())
                    .map_or_else(|| "{}".to_owned(), Value::to_string),
            )),
        };
        let query = query_string(&spec.get_parameters);
        let (retries, wait) = retries(&spec);
        let mut attempt = 0;
        let answer = loop {
            match client
                .request(method, &spec.path, &query, body.clone())
                .await
            {
                Err(e) if e.is_retryable() && attempt < retries => {
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
                other => break other?,
            }
        };
        let Some(answer) = answer else {
            return if spec.allow_empty_response {
                Ok(Generated::default())
            } else {
                Err(empty())
            };
        };
        let selected = match spec.result_type {
            ResultType::Auth => answer.get("auth"),
            ResultType::Raw => Some(&answer),
            ResultType::Data => answer.get("data"),
        };
        let object = match selected {
            Some(Value::Object(object)) => object,
            _ if spec.allow_empty_response => return Ok(Generated::default()),
            _ => return Err(empty()),
        };
        let lease = match spec.result_type {
            ResultType::Auth => object.get("lease_duration"),
            ResultType::Data | ResultType::Raw => answer.get("lease_duration"),
        }
        .and_then(Value::as_i64)
        .filter(|&seconds| seconds > 0);
        let state = match spec.result_type {
            ResultType::Auth => object
                .get("accessor")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
                .map(|accessor| serde_json::json!({ "accessor": accessor })),
            ResultType::Data | ResultType::Raw => answer
                .get("lease_id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(|lease| serde_json::json!({ "leaseID": lease })),
        };
        Ok(Generated {
            data: value::members(object),
            expires_at: lease.and_then(|seconds| {
                Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_secs(seconds))
                    .ok()
            }),
            state,
        })
    }

    async fn cleanup(
        &self,
        spec: &serde_json::Value,
        state: &serde_json::Value,
        context: &Context,
    ) -> Result<(), ProviderError> {
        let spec: VaultDynamicSecretSpec = typed(self.kind(), spec)?;
        let (path, body) = if let Some(accessor) = state.get("accessor").and_then(Value::as_str) {
            (
                "auth/token/revoke-accessor",
                serde_json::json!({ "accessor": accessor }),
            )
        } else if let Some(lease) = state.get("leaseID").and_then(Value::as_str) {
            (
                "sys/leases/revoke",
                serde_json::json!({ "lease_id": lease }),
            )
        } else {
            return Ok(());
        };
        let client = client(&spec, context).await?;
        match client
            .request("PUT", path, "", Some(SecretBytes::from(body.to_string())))
            .await
        {
            // Already revoked or expired: Vault answers 400 for an unknown accessor or lease.
            Err(ProviderError::Provider { message, .. }) if message.contains("HTTP 400") => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

async fn client(
    spec: &VaultDynamicSecretSpec,
    context: &Context,
) -> Result<VaultClient, ProviderError> {
    let scope = StoreScope {
        kind: StoreKind::SecretStore,
        name: String::new(),
        namespace: context.namespace.clone(),
    };
    VaultClient::new(&spec.provider, &scope, context.referents.clone()).await
}

fn empty() -> ProviderError {
    ProviderError::Provider {
        operation: "VaultDynamicSecret",
        message: "unable to get dynamic secret: empty response from Vault".into(),
        source: None,
    }
}

/// `retrySettings` as ESO applies it: absent, the client's defaults; present without
/// `maxRetries`, none.
fn retries(spec: &VaultDynamicSecretSpec) -> (u32, Duration) {
    let Some(settings) = &spec.retry_settings else {
        return (DEFAULT_RETRIES, DEFAULT_RETRY_WAIT);
    };
    let count = settings
        .max_retries
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    let wait = settings
        .retry_interval
        .as_deref()
        .and_then(|d| secret_sync_gosem::duration::parse_go_duration(d).ok())
        .unwrap_or(DEFAULT_RETRY_WAIT);
    (count, wait)
}

/// `getParameters` as a query string, each value of each name, percent-encoded.
fn query_string(parameters: &std::collections::BTreeMap<String, Vec<String>>) -> String {
    let mut pairs = Vec::new();
    for (name, values) in parameters {
        for value in values {
            pairs.push(format!("{}={}", escape(name), escape(value)));
        }
    }
    pairs.join("&")
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_parameters_become_an_escaped_query() {
        let parameters = [
            ("common_name".to_owned(), vec!["a b&c".to_owned()]),
            ("ttl".to_owned(), vec!["1h".to_owned(), "2h".to_owned()]),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            query_string(&parameters),
            "common_name=a%20b%26c&ttl=1h&ttl=2h"
        );
    }
}
