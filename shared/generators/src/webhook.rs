//! `Webhook`: one HTTP request whose JSON answer becomes the Secret's keys, as ESO's webhook
//! generator makes it. The URL, headers and body are Go templates over the named `secrets`
//! (`{{ .<name>.<key> }}`), which must be in the using object's namespace and carry the label
//! `external-secrets.io/type: webhook`; `result.jsonPath` selects part of the answer (a string
//! there is read as JSON again), which must be a JSON object: each member one key. A 404 means
//! "no secret" (the entry is skipped, as a missing provider secret is).

use std::collections::BTreeMap;
use std::time::Duration;

use secret_sync_crd::generators::WebhookSpec;
use secret_sync_crd::provider::CaProviderType;
use secret_sync_providers::{ProviderError, SecretBytes};
use serde_json::Value;

use crate::{Context, Generated, Generator, typed, value};

/// The label a Secret needs before a webhook may read it.
const WEBHOOK_LABEL: (&str, &str) = ("external-secrets.io/type", "webhook");
/// When `timeout` is not set: ESO has none; an answer that never comes would hold a sync slot.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const OPERATION: &str = "Webhook";

pub(crate) struct Webhook;

#[async_trait::async_trait]
impl Generator for Webhook {
    fn kind(&self) -> &'static str {
        "Webhook"
    }

    async fn generate(
        &self,
        spec: &serde_json::Value,
        context: &Context,
    ) -> Result<Generated, ProviderError> {
        let spec: WebhookSpec = typed(self.kind(), spec)?;
        if spec.auth.is_some() {
            return Err(ProviderError::Config(
                "Webhook auth (NTLM) is not supported by secret-sync yet".into(),
            ));
        }
        // The named Secrets, for the templates.
        let mut data: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
        for secret in &spec.secrets {
            let reference = &secret.secret_ref;
            let value = context
                .referents
                .labelled_secret_key(
                    &context.namespace,
                    &reference.name,
                    &reference.key,
                    WEBHOOK_LABEL,
                )
                .await?;
            data.entry(secret.name.clone())
                .or_default()
                .insert(reference.key.clone(), value.into_inner());
        }
        let engine = secret_sync_template::Engine::new(secret_sync_template::Limits::default());
        let render = |name: &str, text: &str| -> Result<Vec<u8>, ProviderError> {
            engine
                .render_nested(name, text, &data)
                .map_err(|e| ProviderError::Config(format!("Webhook {name}: {e}")))
        };
        let url = String::from_utf8(render("url", &spec.url)?)
            .map_err(|_| ProviderError::Config("the Webhook url is not UTF-8".into()))?;
        let method = match spec.method.as_deref() {
            None | Some("") => "GET",
            Some(m) => m,
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| {
            ProviderError::Config(format!("Webhook method {method:?} is not an HTTP method"))
        })?;
        let timeout = match spec.timeout.as_deref() {
            Some(t) if !t.is_empty() => secret_sync_gosem::duration::parse_go_duration(t)
                .map_err(|e| ProviderError::Config(format!("Webhook timeout {t:?}: {e}")))?,
            _ => DEFAULT_TIMEOUT,
        };
        let client = client(&spec, context, timeout).await?;
        let mut request = client.request(method, &url);
        for (name, text) in &spec.headers {
            let rendered = render(&format!("headers.{name}"), text)?;
            let mut header = reqwest::header::HeaderValue::from_bytes(&rendered).map_err(|_| {
                ProviderError::Config(format!(
                    "Webhook header {name:?} is not a valid header value"
                ))
            })?;
            header.set_sensitive(true);
            request = request.header(name.as_str(), header);
        }
        if let Some(body) = spec.body.as_deref().filter(|b| !b.is_empty()) {
            request = request.body(render("body", body)?);
        }
        // reqwest's errors name the URL, which templates may have filled with secrets.
        let response = request
            .send()
            .await
            .map_err(|e| failed(format!("request failed: {}", e.without_url())))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ProviderError::NotFound {
                key: "the Webhook generator's answer".into(),
            });
        }
        if !status.is_success() {
            return Err(failed(format!("endpoint gave error {}", status.as_u16())));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| failed(format!("reading the answer failed: {}", e.without_url())))?;
        let answer: Value =
            serde_json::from_slice(&body).map_err(|_| failed("the answer is not JSON".into()))?;
        let object = select(answer, spec.result.json_path.as_deref().unwrap_or_default())?;
        Ok(Generated {
            data: value::members(&object),
            ..Generated::default()
        })
    }
}

/// The part of `answer` at `path` (all of it when empty), as ESO selects it: a string is read
/// as JSON again, and the result must be an object.
fn select(answer: Value, path: &str) -> Result<serde_json::Map<String, Value>, ProviderError> {
    let selected = if path.is_empty() {
        answer
    } else {
        use jsonpath_rust::JsonPath as _;
        let found: Vec<Value> = answer
            .query(path)
            .map_err(|e| ProviderError::Config(format!("Webhook result.jsonPath {path:?}: {e}")))?
            .into_iter()
            .cloned()
            .collect();
        match <[Value; 1]>::try_from(found) {
            Ok([one]) => one,
            Err(found) if found.is_empty() => {
                return Err(failed(format!("result.jsonPath {path:?} selects nothing")));
            }
            Err(many) => Value::Array(many),
        }
    };
    let selected = match selected {
        Value::String(text) => serde_json::from_str(&text)
            .map_err(|_| failed("the selected string is not JSON".into()))?,
        other => other,
    };
    match selected {
        Value::Object(object) => Ok(object),
        other => Err(failed(format!(
            "failed to get response (wrong type: {})",
            match other {
                Value::Array(_) => "array",
                Value::Number(_) => "number",
                Value::Bool(_) => "bool",
                _ => "null",
            }
        ))),
    }
}

/// The HTTP client: `timeout`, and the CA of `caBundle` or `caProvider` (read in the using
/// object's namespace) when set.
async fn client(
    spec: &WebhookSpec,
    context: &Context,
    timeout: Duration,
) -> Result<reqwest::Client, ProviderError> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    let mut builder = reqwest::Client::builder()
        .tls_backend_rustls()
        .timeout(timeout);
    let ca: Option<SecretBytes> = match (&spec.ca_bundle, &spec.ca_provider) {
        (Some(bundle), _) if !bundle.0.is_empty() => Some(SecretBytes::new(bundle.0.clone())),
        (_, Some(provider)) => Some(match provider.type_ {
            CaProviderType::ConfigMap => {
                context
                    .referents
                    .config_map_key(&context.namespace, &provider.name, &provider.key)
                    .await?
            }
            CaProviderType::Secret => {
                context
                    .referents
                    .secret_key(&context.namespace, &provider.name, &provider.key)
                    .await?
            }
        }),
        _ => None,
    };
    if let Some(pem) = ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem.expose()).map_err(|e| {
            ProviderError::Config(format!("the Webhook CA bundle is not valid PEM: {e}"))
        })?;
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| ProviderError::Config(format!("cannot build the Webhook HTTP client: {e}")))
}

fn failed(message: String) -> ProviderError {
    ProviderError::Provider {
        operation: OPERATION,
        message,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_json_path_selects_and_a_selected_string_is_read_as_json() {
        let answer = json!({"data": {"token": "t", "n": 1}, "wrapped": "{\"a\":\"b\"}"});
        let keys = |m: serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(select(answer.clone(), "$.data").expect("object")),
            ["n", "token"]
        );
        assert_eq!(
            keys(select(answer.clone(), "$.wrapped").expect("object")),
            ["a"]
        );
        assert_eq!(
            keys(select(answer.clone(), "").expect("object")),
            ["data", "wrapped"]
        );
        let err = select(answer, "$.data.token").expect_err("a string that is not JSON");
        assert!(err.to_string().contains("not JSON"), "{err}");
        let err = select(json!({"a": [1]}), "$.a").expect_err("an array");
        assert!(err.to_string().contains("wrong type: array"), "{err}");
    }
}
