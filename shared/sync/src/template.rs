//! The target template: Go text/template over the fetched values (ESO's engine v2), applied to
//! `target.template.data`, its metadata and type, with `mergePolicy` Replace or Merge.
//!
//! This is the engine's first template stage: the language is complete (the `gotmpl` crate, with
//! missing keys as errors, as in ESO), the sprig and ESO function library and `templateFrom` are
//! not here yet.

use std::collections::BTreeMap;

use gotmpl::{MissingKey, Template, Value};
use secret_sync_crd::{ExternalSecretTemplate, TemplateMergePolicy};
use secret_sync_providers::SecretBytes;

/// A template that failed. The message names the key and the template position; it never holds
/// a value.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template for {field} {key:?} failed: {message}")]
    Render {
        field: &'static str,
        key: String,
        message: String,
    },
    #[error("templateFrom is not supported yet")]
    TemplateFromUnsupported,
}

/// What the template makes of the fetched data.
pub struct Rendered {
    pub data: BTreeMap<String, SecretBytes>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub type_: Option<String>,
}

fn context(data: &BTreeMap<String, SecretBytes>) -> Value {
    let map: BTreeMap<String, Value> = data
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value::from(String::from_utf8_lossy(v.expose()).into_owned()),
            )
        })
        .collect();
    Value::from(map)
}

fn execute(
    field: &'static str,
    key: &str,
    text: &str,
    ctx: &Value,
) -> Result<String, TemplateError> {
    let fail = |e: gotmpl::TemplateError| TemplateError::Render {
        field,
        key: key.to_owned(),
        message: e.to_string(),
    };
    Template::new(key)
        .missing_key(MissingKey::Error)
        .parse(text)
        .map_err(fail)?
        .execute_to_string(ctx)
        .map_err(fail)
}

/// Applies `template` to `data`. Without data templates the fetched data passes through (ESO);
/// with them, `Replace` keeps only the templated keys and `Merge` lays them over the fetched data.
pub fn apply(
    template: &ExternalSecretTemplate,
    data: BTreeMap<String, SecretBytes>,
) -> Result<Rendered, TemplateError> {
    if !template.template_from.is_empty() {
        return Err(TemplateError::TemplateFromUnsupported);
    }
    let ctx = context(&data);
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    let meta = &template.metadata;
    for (k, v) in &meta.labels {
        labels.insert(k.clone(), execute("label", k, v, &ctx)?);
    }
    for (k, v) in &meta.annotations {
        annotations.insert(k.clone(), execute("annotation", k, v, &ctx)?);
    }
    let out = if template.data.is_empty() {
        data
    } else {
        let mut out = match template.merge_policy {
            TemplateMergePolicy::Merge => data,
            TemplateMergePolicy::Replace => BTreeMap::new(),
        };
        for (k, v) in &template.data {
            out.insert(k.clone(), SecretBytes::from(execute("data", k, v, &ctx)?));
        }
        out
    };
    Ok(Rendered {
        data: out,
        labels,
        annotations,
        type_: template.type_.clone().filter(|t| !t.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretBytes> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretBytes::from((*v).to_owned())))
            .collect()
    }

    fn template(json: serde_json::Value) -> ExternalSecretTemplate {
        serde_json::from_value(json).expect("template")
    }

    #[test]
    fn the_seed_database_url_renders_from_four_properties() {
        let t = template(serde_json::json!({ "data": {
            "DATABASE_URL": "postgresql://{{ .username }}:{{ .password }}@{{ .host }}:5432/{{ .dbname }}?sslmode=require"
        }}));
        let out = apply(
            &t,
            data(&[
                ("username", "app"),
                ("password", "pw"),
                ("host", "db"),
                ("dbname", "main"),
            ]),
        )
        .expect("renders");
        assert_eq!(out.data.keys().collect::<Vec<_>>(), ["DATABASE_URL"]);
        assert_eq!(
            out.data["DATABASE_URL"].expose(),
            b"postgresql://app:pw@db:5432/main?sslmode=require"
        );
    }

    #[test]
    fn merge_policy_keeps_the_fetched_keys() {
        let t =
            template(serde_json::json!({ "mergePolicy": "Merge", "data": { "b": "{{ .a }}!" } }));
        let out = apply(&t, data(&[("a", "1")])).expect("renders");
        assert_eq!(out.data.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn a_missing_key_is_an_error_that_names_the_key_but_no_value() {
        let t = template(serde_json::json!({ "data": { "url": "{{ .nope }}" } }));
        let err = apply(&t, data(&[("a", "canary-value")]))
            .err()
            .expect("fails");
        let text = err.to_string();
        assert!(text.contains("\"url\""), "{text}");
        assert!(!text.contains("canary-value"), "{text}");
    }

    #[test]
    fn without_data_templates_the_fetched_data_passes_through_with_templated_metadata() {
        let t = template(serde_json::json!({ "type": "kubernetes.io/basic-auth",
            "metadata": { "labels": { "user": "{{ .username }}" } } }));
        let out = apply(&t, data(&[("username", "app")])).expect("renders");
        assert_eq!(out.data.keys().collect::<Vec<_>>(), ["username"]);
        assert_eq!(out.labels["user"], "app");
        assert_eq!(out.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    }
}
