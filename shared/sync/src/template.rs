//! The target template: Go text/template with sprig's and ESO's functions (engine v2, the
//! `secret-sync-template` crate) over the fetched values, applied in ESO's order
//! (`ApplyTemplate`): the type; the fetched data when `mergePolicy` is `Merge` or there is no
//! data template; each `templateFrom` entry in order (ConfigMap items, Secret items, then the
//! literal; `Values` or `KeysAndValues`; into Data, Annotations or Labels); `template.data`,
//! which overrides them; then templated labels and annotations.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use secret_sync_crd::{
    DecodingStrategy, ExternalSecretTemplate, TemplateFrom, TemplateMergePolicy, TemplateScope,
};
use secret_sync_providers::SecretBytes;
use secret_sync_template::{Engine, Limits};

use crate::view::bounded;

/// One engine for the process: its function map is built once.
static ENGINE: LazyLock<Engine> = LazyLock::new(|| Engine::new(Limits::default()));

/// A template that failed. The message names the key and the template position; it never holds
/// a value.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template for {field} {key:?} failed: {source}")]
    Render {
        field: &'static str,
        key: String,
        #[source]
        source: secret_sync_template::TemplateError,
    },
    #[error("templateFrom: {kind} {name:?} not found")]
    SourceMissing { kind: &'static str, name: String },
    #[error("error in {kind} {name}: missing key {key}")]
    SourceKey {
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("templateFrom: reading {kind} {name:?} failed: {source}")]
    SourceRead {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("templateFrom {what}: the rendered output is not a YAML map of strings")]
    NotKeysAndValues { what: String },
    #[error("templateFrom {what}: the rendered value {key:?} is not valid {strategy}")]
    Decode {
        what: String,
        key: String,
        strategy: &'static str,
    },
    #[error("templateFrom target {target:?} is not one of Data, Annotations, Labels")]
    Target { target: String },
    #[error("templateFrom target {target:?}: {problem}")]
    Path {
        target: String,
        problem: &'static str,
    },
}

impl TemplateError {
    /// Whether the same spec may render later: a ConfigMap or Secret it reads may appear or
    /// change; a template that fails on its own does not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::SourceMissing { .. } | Self::SourceKey { .. } | Self::SourceRead { .. }
        )
    }
}

/// The ConfigMaps and Secrets `templateFrom` reads, by name, as loaded for one sync.
#[derive(Default)]
pub struct Sources {
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
    secrets: BTreeMap<String, BTreeMap<String, SecretBytes>>,
}

impl Sources {
    /// Reads every ConfigMap and Secret the template refers to, from `namespace`.
    pub async fn load(
        client: &kube::Client,
        namespace: &str,
        template: &ExternalSecretTemplate,
    ) -> Result<Self, TemplateError> {
        let mut sources = Self::default();
        for from in &template.template_from {
            if let Some(r) = &from.config_map
                && !sources.config_maps.contains_key(&r.name)
            {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
                let cm = bounded("reading a templateFrom ConfigMap", api.get_opt(&r.name))
                    .await
                    .map_err(|source| TemplateError::SourceRead {
                        kind: "configmap",
                        name: r.name.clone(),
                        source,
                    })?
                    .ok_or_else(|| TemplateError::SourceMissing {
                        kind: "configmap",
                        name: r.name.clone(),
                    })?;
                let mut data = cm.data.unwrap_or_default();
                for (k, v) in cm.binary_data.unwrap_or_default() {
                    data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                }
                sources.config_maps.insert(r.name.clone(), data);
            }
            if let Some(r) = &from.secret
                && !sources.secrets.contains_key(&r.name)
            {
                let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
                let secret = bounded("reading a templateFrom Secret", api.get_opt(&r.name))
                    .await
                    .map_err(|source| TemplateError::SourceRead {
                        kind: "secret",
                        name: r.name.clone(),
                        source,
                    })?
                    .ok_or_else(|| TemplateError::SourceMissing {
                        kind: "secret",
                        name: r.name.clone(),
                    })?;
                let data = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, SecretBytes::from(v.0)))
                    .collect();
                sources.secrets.insert(r.name.clone(), data);
            }
        }
        Ok(sources)
    }
}

impl Sources {
    /// A ConfigMap's data (binary data as text), when loaded.
    pub(crate) fn config_map(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.config_maps.get(name)
    }

    /// A Secret's data, when loaded.
    pub(crate) fn secret(&self, name: &str) -> Option<&BTreeMap<String, SecretBytes>> {
        self.secrets.get(name)
    }
}

/// Renders one template text over the fetched `data` (for generic targets, which place the
/// output themselves).
pub(crate) fn render_text(
    field: &'static str,
    key: &str,
    text: &str,
    data: &BTreeMap<String, SecretBytes>,
) -> Result<Vec<u8>, TemplateError> {
    render(field, key, text, &context(data))
}

/// What the template makes of the fetched data.
pub struct Rendered {
    pub data: BTreeMap<String, SecretBytes>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub type_: Option<String>,
}

/// Where rendered values go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Data,
    Annotations,
    Labels,
}

impl Target {
    fn parse(target: &str) -> Result<Self, TemplateError> {
        match target.to_ascii_lowercase().as_str() {
            "data" => Ok(Self::Data),
            "annotations" => Ok(Self::Annotations),
            "labels" => Ok(Self::Labels),
            _ => Err(TemplateError::Target {
                target: target.to_owned(),
            }),
        }
    }
}

/// The context values as the template engine reads them.
fn context(data: &BTreeMap<String, SecretBytes>) -> BTreeMap<String, Vec<u8>> {
    data.iter()
        .map(|(k, v)| (k.clone(), v.expose().to_vec()))
        .collect()
}

fn render(
    field: &'static str,
    key: &str,
    text: &str,
    ctx: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<u8>, TemplateError> {
    ENGINE
        .render(key, text, ctx)
        .map_err(|source| TemplateError::Render {
            field,
            key: key.to_owned(),
            source,
        })
}

fn text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

impl Rendered {
    fn put(&mut self, target: Target, key: String, value: Vec<u8>) {
        match target {
            Target::Data => {
                self.data.insert(key, SecretBytes::from(value));
            }
            Target::Annotations => {
                self.annotations.insert(key, text(value));
            }
            Target::Labels => {
                self.labels.insert(key, text(value));
            }
        }
    }

    /// One `templateFrom` item: its rendered output as one value (`Values`) or as a YAML map of
    /// keys and values (`KeysAndValues`), decoded per `valuesDecodingStrategy` for Data.
    fn apply_item(
        &mut self,
        from: &TemplateFrom,
        what: &str,
        key: &str,
        scope: TemplateScope,
        text: &str,
        ctx: &BTreeMap<String, Vec<u8>>,
    ) -> Result<(), TemplateError> {
        let target = Target::parse(&from.target)?;
        let out = render("templateFrom", key, text, ctx)?;
        let pairs: Vec<(String, Vec<u8>)> = match scope {
            TemplateScope::Values => vec![(key.to_owned(), out)],
            TemplateScope::KeysAndValues => {
                let map: BTreeMap<String, String> =
                    serde_saphyr::from_slice(&out).map_err(|_| {
                        TemplateError::NotKeysAndValues {
                            what: what.to_owned(),
                        }
                    })?;
                map.into_iter().map(|(k, v)| (k, v.into_bytes())).collect()
            }
        };
        for (k, v) in pairs {
            let v = if target == Target::Data
                && from.values_decoding_strategy != DecodingStrategy::None
            {
                crate::render::decode::decode(from.values_decoding_strategy, &v).map_err(|_| {
                    TemplateError::Decode {
                        what: what.to_owned(),
                        key: k.clone(),
                        strategy: crate::render::decode::strategy_name(
                            from.values_decoding_strategy,
                        ),
                    }
                })?
            } else {
                v
            };
            self.put(target, k, v);
        }
        Ok(())
    }
}

/// Applies `template` to the fetched `data`, reading `templateFrom` items from `sources`.
pub fn apply(
    template: &ExternalSecretTemplate,
    data: BTreeMap<String, SecretBytes>,
    sources: &Sources,
) -> Result<Rendered, TemplateError> {
    let ctx = context(&data);
    let keep_fetched = template.merge_policy == TemplateMergePolicy::Merge
        || (template.data.is_empty() && template.template_from.is_empty());
    let mut out = Rendered {
        data: if keep_fetched { data } else { BTreeMap::new() },
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        type_: template.type_.clone().filter(|t| !t.is_empty()),
    };
    for from in &template.template_from {
        if let Some(r) = &from.config_map {
            let items =
                sources
                    .config_maps
                    .get(&r.name)
                    .ok_or_else(|| TemplateError::SourceMissing {
                        kind: "configmap",
                        name: r.name.clone(),
                    })?;
            let what = format!("configmap {}", r.name);
            for item in &r.items {
                let text = items
                    .get(&item.key)
                    .ok_or_else(|| TemplateError::SourceKey {
                        kind: "configmap",
                        name: r.name.clone(),
                        key: item.key.clone(),
                    })?;
                out.apply_item(from, &what, &item.key, item.template_as, text, &ctx)?;
            }
        }
        if let Some(r) = &from.secret {
            let items =
                sources
                    .secrets
                    .get(&r.name)
                    .ok_or_else(|| TemplateError::SourceMissing {
                        kind: "secret",
                        name: r.name.clone(),
                    })?;
            let what = format!("secret {}", r.name);
            for item in &r.items {
                let bytes = items
                    .get(&item.key)
                    .ok_or_else(|| TemplateError::SourceKey {
                        kind: "secret",
                        name: r.name.clone(),
                        key: item.key.clone(),
                    })?;
                let text = String::from_utf8_lossy(bytes.expose()).into_owned();
                out.apply_item(from, &what, &item.key, item.template_as, &text, &ctx)?;
            }
        }
        if let Some(literal) = &from.literal {
            out.apply_item(
                from,
                "literal",
                "literal",
                TemplateScope::KeysAndValues,
                literal,
                &ctx,
            )?;
        }
    }
    for (k, v) in &template.data {
        let value = render("data", k, v, &ctx)?;
        out.data.insert(k.clone(), SecretBytes::from(value));
    }
    let meta = &template.metadata;
    for (k, v) in &meta.labels {
        let value = render("label", k, v, &ctx)?;
        out.labels.insert(k.clone(), text(value));
    }
    for (k, v) in &meta.annotations {
        let value = render("annotation", k, v, &ctx)?;
        out.annotations.insert(k.clone(), text(value));
    }
    Ok(out)
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
            &Sources::default(),
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
        let out = apply(&t, data(&[("a", "1")]), &Sources::default()).expect("renders");
        assert_eq!(out.data.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn a_missing_key_is_an_error_that_names_the_key_but_no_value() {
        let t = template(serde_json::json!({ "data": { "url": "{{ .nope }}" } }));
        let err = apply(&t, data(&[("a", "canary-value")]), &Sources::default())
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
        let out = apply(&t, data(&[("username", "app")]), &Sources::default()).expect("renders");
        assert_eq!(out.data.keys().collect::<Vec<_>>(), ["username"]);
        assert_eq!(out.labels["user"], "app");
        assert_eq!(out.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    }

    fn sources() -> Sources {
        let mut sources = Sources::default();
        sources.config_maps.insert(
            "tpl".into(),
            BTreeMap::from([
                ("config.yaml".into(), "user: {{ .username }}".into()),
                (
                    "pairs".into(),
                    "team: {{ .team | upper }}\ntier: gold".into(),
                ),
            ]),
        );
        sources.secrets.insert(
            "tpl-secret".into(),
            BTreeMap::from([(
                "encoded".into(),
                SecretBytes::from("{{ .username | b64enc }}".to_owned()),
            )]),
        );
        sources
    }

    #[test]
    fn template_from_renders_config_map_and_secret_items_and_literals_in_esos_order() {
        let t = template(serde_json::json!({
            "templateFrom": [
                { "configMap": { "name": "tpl", "items": [{ "key": "config.yaml" }] } },
                { "configMap": { "name": "tpl", "items": [{ "key": "pairs", "templateAs": "KeysAndValues" }] },
                  "target": "Labels" },
                { "secret": { "name": "tpl-secret", "items": [{ "key": "encoded" }] },
                  "valuesDecodingStrategy": "Base64" },
                { "literal": "greeting: hello {{ .username }}", "target": "annotations" },
                { "literal": "config.yaml: overridden-by-data" }
            ],
            "data": { "config.yaml": "from data {{ .username }}" }
        }));
        let out = apply(
            &t,
            data(&[("username", "app"), ("team", "core")]),
            &sources(),
        )
        .expect("renders");
        let keys: Vec<&String> = out.data.keys().collect();
        assert_eq!(
            keys,
            ["config.yaml", "encoded"],
            "only templated keys (Replace)"
        );
        assert_eq!(
            out.data["config.yaml"].expose(),
            b"from data app",
            "template.data wins"
        );
        assert_eq!(
            out.data["encoded"].expose(),
            b"app",
            "decoded after rendering"
        );
        assert_eq!(out.labels["team"], "CORE");
        assert_eq!(out.labels["tier"], "gold");
        assert_eq!(out.annotations["greeting"], "hello app");
    }

    #[test]
    fn a_missing_template_item_is_named_in_esos_words_and_retryable() {
        let t = template(serde_json::json!({
            "templateFrom": [{ "configMap": { "name": "tpl", "items": [{ "key": "nope" }] } }]
        }));
        let err = apply(&t, data(&[("username", "app")]), &sources())
            .err()
            .expect("fails");
        assert_eq!(err.to_string(), "error in configmap tpl: missing key nope");
        assert!(err.is_retryable());
    }

    #[test]
    fn keys_and_values_output_that_is_not_a_map_is_an_error_without_the_value() {
        let t = template(serde_json::json!({
            "templateFrom": [{ "literal": "{{ .username }}" }]
        }));
        let err = apply(
            &t,
            data(&[("username", "canary-value")]),
            &Sources::default(),
        )
        .err()
        .expect("fails");
        assert!(!err.to_string().contains("canary-value"), "{err}");
        assert!(!err.is_retryable());
    }
}
