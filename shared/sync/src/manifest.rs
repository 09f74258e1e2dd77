//! Generic targets (`spec.target.manifest`): an ExternalSecret that writes a ConfigMap, or any
//! other kind, instead of a Secret, as ESO v2.9 does behind `--unsafe-allow-generic-targets`
//! (R: `pkg/controllers/externalsecret/externalsecret_controller_manifest.go`,
//! `runtime/template/v2/template.go`).
//!
//! The object is built as ESO builds it:
//! - it starts from the existing object (so fields others set survive), or a new one with an empty
//!   `data` (ConfigMap, Secret) or `spec` (any other kind);
//! - labels and annotations of the ExternalSecret (or of `template.metadata` when there is a
//!   template) are merged into its own, with ESO's managed label;
//! - without a template, the fetched values become `data` of a ConfigMap, else `spec.data`, as
//!   strings;
//! - with one, each `templateFrom` renders into its `target`: `Data`, `Labels`, `Annotations`,
//!   `Spec`, or a path such as `spec.config.rules[0]` (a literal's YAML output is merged into the
//!   map at the path; other outputs are read as YAML values and put there), then `template.data`
//!   into `data`;
//! - a data-hash annotation over its content, and with `creationPolicy: Owner` a controller
//!   reference to the ExternalSecret, so the object goes when the ExternalSecret goes.
//!
//! Values end up in plain fields of a kind that the API server may not encrypt and that more
//! people may read: that is why ESO and secret-sync make it opt-in. The controller needs RBAC
//! for each kind it writes (the chart's `genericTargets.rules`).

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::{Resource, ResourceExt};
use secret_sync_crd::well_known::{ANNOTATION_DATA_HASH, LABEL_MANAGED, LABEL_MANAGED_VALUE};
use secret_sync_crd::{
    CreationPolicy, DecodingStrategy, ExternalSecret, ManifestReference, TemplateScope,
};
use secret_sync_providers::SecretBytes;
use serde_json::{Map, Value, json};

use crate::apply::{Applied, ApplyError};
use crate::template::{self, Sources, TemplateError};

/// ESO's refusal when generic targets are off.
pub const DISABLED: &str =
    "generic targets are disabled. Enable with --unsafe-allow-generic-targets flag";

/// Builds the object to write; see the module notes.
pub fn build(
    es: &ExternalSecret,
    manifest: &ManifestReference,
    existing: Option<&Value>,
    data: &BTreeMap<String, SecretBytes>,
    sources: Option<&Sources>,
) -> Result<Value, TemplateError> {
    let name = es.spec.target_name(es).to_owned();
    let mut obj = match existing {
        Some(existing) => existing.clone(),
        None => {
            let body = if matches!(manifest.kind.as_str(), "ConfigMap" | "Secret") {
                "data"
            } else {
                "spec"
            };
            json!({
                "apiVersion": manifest.api_version,
                "kind": manifest.kind,
                "metadata": { "name": name, "namespace": es.namespace() },
                body: {}
            })
        }
    };
    let template = es.spec.target.template.as_ref();
    let (labels, annotations) = match template {
        Some(t) => (t.metadata.labels.clone(), t.metadata.annotations.clone()),
        None => (es.labels().clone(), es.annotations().clone()),
    };
    for (k, v) in labels {
        set_string(&mut obj, &["metadata", "labels"], &k, v);
    }
    for (k, v) in annotations {
        set_string(&mut obj, &["metadata", "annotations"], &k, v);
    }
    set_string(
        &mut obj,
        &["metadata", "labels"],
        LABEL_MANAGED,
        LABEL_MANAGED_VALUE.to_owned(),
    );
    match template {
        None => {
            let strings: Map<String, Value> = data
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(text(v.expose()))))
                .collect();
            if manifest.kind == "ConfigMap" {
                obj["data"] = Value::Object(strings);
            } else {
                object_at(&mut obj, &["spec"]).insert("data".into(), Value::Object(strings));
            }
        }
        Some(t) => {
            for from in &t.template_from {
                let target = if from.target.is_empty() {
                    "Data"
                } else {
                    from.target.as_str()
                };
                if let Some(literal) = &from.literal {
                    let out = template::render_text("templateFrom", "literal", literal, data)?;
                    keys_and_values(
                        &mut obj,
                        target,
                        &out,
                        "literal",
                        from.values_decoding_strategy,
                    )?;
                }
                let mut collected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                let empty = Sources::default();
                let sources = sources.unwrap_or(&empty);
                if let Some(r) = &from.config_map {
                    let items = sources.config_map(&r.name).ok_or_else(|| {
                        TemplateError::SourceMissing {
                            kind: "configmap",
                            name: r.name.clone(),
                        }
                    })?;
                    for item in &r.items {
                        let text =
                            items
                                .get(&item.key)
                                .ok_or_else(|| TemplateError::SourceKey {
                                    kind: "configmap",
                                    name: r.name.clone(),
                                    key: item.key.clone(),
                                })?;
                        collect(
                            &mut collected,
                            &r.name,
                            &item.key,
                            item.template_as,
                            text,
                            data,
                        )?;
                    }
                }
                if let Some(r) = &from.secret {
                    let items =
                        sources
                            .secret(&r.name)
                            .ok_or_else(|| TemplateError::SourceMissing {
                                kind: "secret",
                                name: r.name.clone(),
                            })?;
                    for item in &r.items {
                        let bytes =
                            items
                                .get(&item.key)
                                .ok_or_else(|| TemplateError::SourceKey {
                                    kind: "secret",
                                    name: r.name.clone(),
                                    key: item.key.clone(),
                                })?;
                        let text = text(bytes.expose());
                        collect(
                            &mut collected,
                            &r.name,
                            &item.key,
                            item.template_as,
                            &text,
                            data,
                        )?;
                    }
                }
                for (k, v) in collected {
                    to_target(&mut obj, target, &k, &v)?;
                }
            }
            for (k, v) in &t.data {
                let out = template::render_text("data", k, v, data)?;
                to_target(&mut obj, "Data", k, &out)?;
            }
        }
    }
    let hash = content_hash(&obj);
    set_string(
        &mut obj,
        &["metadata", "annotations"],
        ANNOTATION_DATA_HASH,
        hash,
    );
    if es.spec.target.creation_policy == CreationPolicy::Owner
        && let Some(owner) = es.controller_owner_ref(&())
    {
        let refs = object_at(&mut obj, &["metadata"])
            .entry("ownerReferences")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(refs) = refs {
            let uid = owner.uid.clone();
            refs.retain(|r| r["uid"] != Value::String(uid.clone()));
            refs.push(serde_json::to_value(owner).unwrap_or(Value::Null));
        }
    }
    Ok(obj)
}

/// Writes the object: created when missing, updated when its content differs.
pub async fn write(
    client: &kube::Client,
    es: &ExternalSecret,
    manifest: &ManifestReference,
    data: &BTreeMap<String, SecretBytes>,
    sources: Option<&Sources>,
) -> Result<Applied, crate::SyncError> {
    let api = api(client, es, manifest).await?;
    let name = es.spec.target_name(es).to_owned();
    let existing = api
        .get_opt(&name)
        .await
        .map_err(|e| write_failed(e, &manifest.kind, &name))?;
    if let Some(existing) = &existing
        && let Some(controller) = existing
            .owner_references()
            .iter()
            .find(|r| r.controller == Some(true))
        && Some(&controller.uid) != es.uid().as_ref()
    {
        return Err(ApplyError::TakeOwnership {
            kind: controller.kind.clone(),
            name: controller.name.clone(),
        }
        .into());
    }
    let malformed = || ApplyError::Malformed {
        kind: manifest.kind.clone(),
        name: name.clone(),
    };
    let before = existing
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|_| malformed())?;
    let desired = build(es, manifest, before.as_ref(), data, sources)?;
    if before.as_ref() == Some(&desired) {
        return Ok(Applied::Unchanged);
    }
    let object: DynamicObject = serde_json::from_value(desired).map_err(|_| malformed())?;
    match existing {
        None => {
            api.create(&PostParams::default(), &object)
                .await
                .map_err(|e| write_failed(e, &manifest.kind, &name))?;
            Ok(Applied::Created)
        }
        Some(_) => {
            api.replace(&name, &PostParams::default(), &object)
                .await
                .map_err(|e| write_failed(e, &manifest.kind, &name))?;
            Ok(Applied::Updated)
        }
    }
}

/// Deletes the object (`deletionPolicy: Delete` with nothing left to write).
pub async fn delete(
    client: &kube::Client,
    es: &ExternalSecret,
    manifest: &ManifestReference,
) -> Result<bool, crate::SyncError> {
    let api = api(client, es, manifest).await?;
    let name = es.spec.target_name(es).to_owned();
    match api.delete(&name, &Default::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(source) => Err(ApplyError::Target {
            kind: manifest.kind.clone(),
            name,
            source,
        }
        .into()),
    }
}

/// A failed write: a conflict to retry, a refusal named by its reason and fields only (the API
/// server's message quotes invalid values, which may be rendered secrets), or anything else.
fn write_failed(e: kube::Error, kind: &str, name: &str) -> ApplyError {
    match e {
        kube::Error::Api(s) if s.code == 409 => ApplyError::Conflict,
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => ApplyError::Refused {
            kind: kind.to_owned(),
            name: name.to_owned(),
            reason: s.reason.clone(),
            fields: s
                .details
                .iter()
                .flat_map(|d| d.causes.iter())
                .map(|c| c.field.clone())
                .filter(|f| !f.is_empty())
                .collect(),
        },
        source => ApplyError::Target {
            kind: kind.to_owned(),
            name: name.to_owned(),
            source,
        },
    }
}

/// The namespaced API of the manifest's kind, found by discovery.
async fn api(
    client: &kube::Client,
    es: &ExternalSecret,
    manifest: &ManifestReference,
) -> Result<Api<DynamicObject>, ApplyError> {
    let (group, version) = manifest
        .api_version
        .split_once('/')
        .unwrap_or(("", manifest.api_version.as_str()));
    let gvk = GroupVersionKind::gvk(group, version, &manifest.kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|source| ApplyError::NotServed {
            api_version: manifest.api_version.clone(),
            kind: manifest.kind.clone(),
            source,
        })?;
    if caps.scope != kube::discovery::Scope::Namespaced {
        return Err(ApplyError::ClusterScoped {
            kind: manifest.kind.clone(),
        });
    }
    Ok(Api::namespaced_with(
        client.clone(),
        &es.namespace().unwrap_or_default(),
        &resource,
    ))
}

/// A hash of everything but metadata and status: what the template decides.
fn content_hash(obj: &Value) -> String {
    let mut content = obj.clone();
    if let Value::Object(map) = &mut content {
        map.remove("metadata");
        map.remove("status");
    }
    let text = serde_json::to_vec(&content).unwrap_or_default();
    let key = "content".to_owned();
    crate::hash::data_hash([(&key, &text)])
}

/// Bytes as Go's `string(b)` shows them in a JSON string.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The object at `path` under `obj`, created (replacing anything else there) when missing.
fn object_at<'a>(obj: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut here = obj;
    for key in path {
        if !here.is_object() {
            *here = Value::Object(Map::new());
        }
        here = here
            .as_object_mut()
            .map(|m| m.entry(key.to_string()).or_insert(Value::Null))
            .expect("an object");
    }
    if !here.is_object() {
        *here = Value::Object(Map::new());
    }
    here.as_object_mut().expect("an object")
}

fn set_string(obj: &mut Value, path: &[&str], key: &str, value: String) {
    object_at(obj, path).insert(key.to_owned(), Value::String(value));
}

/// One rendered ConfigMap or Secret item into `collected` (ESO's temporary Secret): one key
/// (`Values`), or the YAML map it renders (`KeysAndValues`).
fn collect(
    collected: &mut BTreeMap<String, Vec<u8>>,
    what: &str,
    key: &str,
    scope: TemplateScope,
    text: &str,
    data: &BTreeMap<String, SecretBytes>,
) -> Result<(), TemplateError> {
    let out = template::render_text("templateFrom", key, text, data)?;
    match scope {
        TemplateScope::Values => {
            collected.insert(key.to_owned(), out);
        }
        TemplateScope::KeysAndValues => {
            let map: BTreeMap<String, String> =
                serde_saphyr::from_slice(&out).map_err(|_| TemplateError::NotKeysAndValues {
                    what: what.to_owned(),
                })?;
            collected.extend(map.into_iter().map(|(k, v)| (k, v.into_bytes())));
        }
    }
    Ok(())
}

/// A `KeysAndValues` output (a literal) at `target`: a YAML map of strings into data, labels or
/// annotations; anything else parsed as YAML and merged into the map at the path (a single
/// segment, such as `spec`, is replaced).
fn keys_and_values(
    obj: &mut Value,
    target: &str,
    out: &[u8],
    what: &str,
    decoding: DecodingStrategy,
) -> Result<(), TemplateError> {
    if matches!(
        target.to_ascii_lowercase().as_str(),
        "data" | "labels" | "annotations"
    ) {
        let map: BTreeMap<String, String> =
            serde_saphyr::from_slice(out).map_err(|_| TemplateError::NotKeysAndValues {
                what: what.to_owned(),
            })?;
        for (k, v) in map {
            let v = crate::render::decode::decode(decoding, v.as_bytes()).map_err(|_| {
                TemplateError::Decode {
                    what: what.to_owned(),
                    key: k.clone(),
                    strategy: crate::render::decode::strategy_name(decoding),
                }
            })?;
            to_target(obj, target, &k, &v)?;
        }
        return Ok(());
    }
    let parsed: Value =
        serde_saphyr::from_slice(out).map_err(|_| TemplateError::NotKeysAndValues {
            what: what.to_owned(),
        })?;
    let tokens = parse_path(target)?;
    let whole = tokens.len() == 1;
    set_at(
        obj,
        &tokens,
        target,
        &mut |existing| match (existing, &parsed) {
            (Value::Object(existing), Value::Object(new)) if !whole => {
                let mut merged = existing.clone();
                merged.extend(new.clone());
                Value::Object(merged)
            }
            _ => parsed.clone(),
        },
    )
}

/// One rendered value `k` at `target` (ESO's `applyToTarget`).
fn to_target(obj: &mut Value, target: &str, k: &str, v: &[u8]) -> Result<(), TemplateError> {
    let value = text(v);
    match target.to_ascii_lowercase().as_str() {
        "annotations" => set_string(obj, &["metadata", "annotations"], k, value),
        "labels" => set_string(obj, &["metadata", "labels"], k, value),
        "data" => set_string(obj, &["data"], k, value),
        "spec" => set_string(obj, &["spec"], k, value),
        _ => {
            let tokens = parse_path(target)?;
            let parsed: Value = serde_saphyr::from_str(&value).unwrap_or(Value::String(value));
            set_at(obj, &tokens, target, &mut |_| parsed.clone())?;
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Token {
    Key(String),
    Index(usize),
}

/// ESO's most array index in a path.
const MAX_INDEX: usize = 10_000;

/// `spec.rules[0].from` → keys and indices.
fn parse_path(target: &str) -> Result<Vec<Token>, TemplateError> {
    let bad = |problem| TemplateError::Path {
        target: target.to_owned(),
        problem,
    };
    let mut tokens = Vec::new();
    for segment in target.split('.') {
        if segment.is_empty() {
            return Err(bad("empty segment"));
        }
        let (name, mut rest) = segment
            .find('[')
            .map_or((segment, ""), |i| (&segment[..i], &segment[i..]));
        if !name.is_empty() {
            tokens.push(Token::Key(name.to_owned()));
        }
        while !rest.is_empty() {
            let end = rest
                .strip_prefix('[')
                .and_then(|r| r.find(']'))
                .ok_or_else(|| bad("unterminated or misplaced '['"))?;
            let index: usize = rest[1..=end].parse().map_err(|_| bad("bad index"))?;
            if index > MAX_INDEX {
                return Err(bad("index exceeds maximum (10000)"));
            }
            tokens.push(Token::Index(index));
            rest = &rest[end + 2..];
        }
    }
    match tokens.first() {
        Some(Token::Key(_)) => Ok(tokens),
        Some(Token::Index(_)) => Err(bad("path must start with a key")),
        None => Err(bad("empty path")),
    }
}

/// Sets the value at `tokens` to `leaf(existing)`, creating maps and growing arrays on the way.
fn set_at(
    node: &mut Value,
    tokens: &[Token],
    target: &str,
    leaf: &mut dyn FnMut(&Value) -> Value,
) -> Result<(), TemplateError> {
    let Some((first, rest)) = tokens.split_first() else {
        *node = leaf(node);
        return Ok(());
    };
    let bad = |problem| TemplateError::Path {
        target: target.to_owned(),
        problem,
    };
    let child = match first {
        Token::Key(key) => {
            if node.is_null() {
                *node = Value::Object(Map::new());
            }
            let map = node
                .as_object_mut()
                .ok_or_else(|| bad("expected a map on the path"))?;
            map.entry(key.clone()).or_insert(Value::Null)
        }
        Token::Index(index) => {
            if node.is_null() {
                *node = Value::Array(Vec::new());
            }
            let list = node
                .as_array_mut()
                .ok_or_else(|| bad("expected an array on the path"))?;
            if list.len() <= *index {
                list.resize(index + 1, Value::Null);
            }
            &mut list[*index]
        }
    };
    set_at(child, rest, target, leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(spec: Value) -> ExternalSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": { "name": "app", "namespace": "ns", "uid": "u-1", "labels": { "team": "a" } },
            "spec": spec
        }))
        .expect("an ExternalSecret")
    }

    fn data() -> BTreeMap<String, SecretBytes> {
        BTreeMap::from([("user".to_owned(), SecretBytes::from("alice".to_owned()))])
    }

    fn manifest(kind: &str) -> ManifestReference {
        ManifestReference {
            api_version: if kind == "ConfigMap" {
                "v1"
            } else {
                "example.io/v1"
            }
            .into(),
            kind: kind.into(),
        }
    }

    #[test]
    fn without_a_template_values_go_to_a_config_maps_data_or_spec_data() {
        let e =
            es(json!({ "target": { "manifest": { "apiVersion": "v1", "kind": "ConfigMap" } } }));
        let cm = build(&e, &manifest("ConfigMap"), None, &data(), None).expect("builds");
        assert_eq!(cm["data"], json!({ "user": "alice" }));
        assert_eq!(cm["metadata"]["labels"]["team"], "a");
        assert_eq!(cm["metadata"]["labels"][LABEL_MANAGED], LABEL_MANAGED_VALUE);
        assert_eq!(cm["metadata"]["ownerReferences"][0]["uid"], "u-1");
        let other = build(&e, &manifest("Widget"), None, &data(), None).expect("builds");
        assert_eq!(other["spec"]["data"], json!({ "user": "alice" }));
    }

    #[test]
    fn templates_render_into_paths_merging_literal_maps() {
        let e = es(
            json!({ "target": { "manifest": { "apiVersion": "example.io/v1", "kind": "Widget" },
            "template": {
                "data": { "greeting": "hi {{ .user }}" },
                "templateFrom": [
                    { "target": "spec.config", "literal": "mode: fast\nowner: '{{ .user }}'" },
                    { "target": "spec.rules[1].port", "literal": "8080" },
                    { "target": "Annotations", "literal": "who: '{{ .user }}'" }
                ]
            } } }),
        );
        let existing = json!({
            "apiVersion": "example.io/v1", "kind": "Widget",
            "metadata": { "name": "app", "namespace": "ns" },
            "spec": { "config": { "keep": true, "mode": "slow" } }
        });
        let w = build(&e, &manifest("Widget"), Some(&existing), &data(), None).expect("builds");
        assert_eq!(
            w["spec"]["config"],
            json!({ "keep": true, "mode": "fast", "owner": "alice" })
        );
        assert_eq!(w["spec"]["rules"], json!([null, { "port": 8080 }]));
        assert_eq!(w["metadata"]["annotations"]["who"], "alice");
        assert_eq!(w["data"]["greeting"], "hi alice");
        // The ExternalSecret's own labels are not copied when a template is given.
        assert!(w["metadata"]["labels"].get("team").is_none());
    }

    #[test]
    fn bad_paths_are_refused_by_name() {
        for path in ["spec..x", "[0].a", "spec.a[x]", "spec.a[10001]", "spec.a[1"] {
            assert!(
                matches!(parse_path(path), Err(TemplateError::Path { .. })),
                "{path}"
            );
        }
        assert_eq!(
            parse_path("spec.rules[0].from").ok(),
            Some(vec![
                Token::Key("spec".into()),
                Token::Key("rules".into()),
                Token::Index(0),
                Token::Key("from".into())
            ])
        );
    }
}
