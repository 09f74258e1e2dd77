//! The render pipeline end to end: specs as users write them, fetched values, rendered data.

use std::collections::{BTreeMap, HashMap};

use secret_sync_crd::ExternalSecretSpec;
use secret_sync_providers::{Find, ProviderError, RemoteRef, SecretBytes};
use serde_json::json;

use super::*;

/// Fetch results keyed by store name.
#[derive(Default)]
struct FakeFetched {
    values: HashMap<(StoreRefKey, RemoteRef), Result<SecretBytes, ProviderError>>,
    finds: HashMap<(StoreRefKey, Find), Result<BTreeMap<String, SecretBytes>, ProviderError>>,
    generated: HashMap<usize, Result<BTreeMap<String, SecretBytes>, ProviderError>>,
    keyed: Vec<RemoteRef>,
}

fn store(name: &str) -> StoreRefKey {
    StoreRefKey {
        kind: StoreKind::SecretStore,
        name: name.to_owned(),
    }
}

impl FakeFetched {
    fn value(mut self, key: &str, value: &[u8]) -> Self {
        self.values.insert(
            (store("vault"), RemoteRef::key(key)),
            Ok(SecretBytes::new(value.to_vec())),
        );
        self
    }

    /// A keyed map (a Kubernetes Secret's data).
    fn keyed(mut self, key: &str, entries: &[(&str, &[u8])]) -> Self {
        let value = secret_sync_providers::keyed::encode(entries.iter().copied());
        self.values
            .insert((store("vault"), RemoteRef::key(key)), Ok(value));
        self.keyed.push(RemoteRef::key(key));
        self
    }

    fn error(mut self, key: &str, error: ProviderError) -> Self {
        self.values
            .insert((store("vault"), RemoteRef::key(key)), Err(error));
        self
    }

    fn found(mut self, name_regexp: &str, entries: &[(&str, &[u8])]) -> Self {
        let map = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretBytes::new(v.to_vec())))
            .collect();
        self.finds
            .insert((store("vault"), find(name_regexp)), Ok(map));
        self
    }

    fn generated(mut self, index: usize, entries: &[(&str, &[u8])]) -> Self {
        let map = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretBytes::new(v.to_vec())))
            .collect();
        self.generated.insert(index, Ok(map));
        self
    }

    fn find_error(mut self, name_regexp: &str, error: ProviderError) -> Self {
        self.finds
            .insert((store("vault"), find(name_regexp)), Err(error));
        self
    }
}

fn find(name_regexp: &str) -> Find {
    Find {
        path: None,
        name_regexp: Some(name_regexp.to_owned()),
        tags: BTreeMap::new(),
    }
}

static NOT_FETCHED: std::sync::LazyLock<ProviderError> =
    std::sync::LazyLock::new(|| ProviderError::Config("not fetched".into()));

impl Fetched for FakeFetched {
    fn value(
        &self,
        store: &StoreRefKey,
        remote: &RemoteRef,
    ) -> Result<&SecretBytes, &ProviderError> {
        match self.values.get(&(store.clone(), remote.clone())) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e),
            None => Err(&NOT_FETCHED),
        }
    }

    fn found(
        &self,
        store: &StoreRefKey,
        find: &Find,
    ) -> Result<&BTreeMap<String, SecretBytes>, &ProviderError> {
        match self.finds.get(&(store.clone(), find.clone())) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e),
            None => Err(&NOT_FETCHED),
        }
    }

    fn generated(&self, index: usize) -> Result<&BTreeMap<String, SecretBytes>, &ProviderError> {
        match self.generated.get(&index) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e),
            None => Err(&NOT_FETCHED),
        }
    }

    fn keyed(&self, _: &StoreRefKey, remote: &RemoteRef) -> bool {
        self.keyed.contains(remote)
    }
}

/// A spec from its manifest form, reading from the SecretStore "vault".
fn spec(mut manifest: serde_json::Value) -> ExternalSecretSpec {
    if manifest.get("secretStoreRef").is_none() {
        manifest["secretStoreRef"] = json!({"name": "vault"});
    }
    match serde_json::from_value(manifest) {
        Ok(spec) => spec,
        Err(e) => panic!("bad test manifest: {e}"),
    }
}

fn ok(spec: &ExternalSecretSpec, fetched: &FakeFetched) -> Rendered {
    match render(spec, fetched) {
        Ok(rendered) => rendered,
        Err(e) => panic!("render failed: {e}"),
    }
}

fn err(spec: &ExternalSecretSpec, fetched: &FakeFetched) -> RenderError {
    match render(spec, fetched) {
        Ok(rendered) => panic!("render should fail, got keys {:?}", rendered.data.keys()),
        Err(e) => e,
    }
}

fn data(rendered: &Rendered) -> Vec<(&str, String)> {
    rendered
        .data
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.expose()).into_owned()))
        .collect()
}

fn invalid_spec(manifest: serde_json::Value) -> String {
    match needs(&spec(manifest)) {
        Ok(n) => panic!("spec should be invalid, needs {n:?}"),
        Err(e @ (RenderError::InvalidSpec { .. } | RenderError::Unsupported { .. })) => {
            assert!(!e.is_retryable());
            e.to_string()
        }
        Err(e) => panic!("not a spec error: {e}"),
    }
}

// ---- needs ----

#[test]
fn needs_lists_one_fetch_per_entry_data_from_first() {
    let s = spec(json!({
        "data": [
            {"secretKey": "a", "remoteRef": {"key": "db", "property": "user", "version": "3"}},
            {"secretKey": "b", "remoteRef": {"key": "db", "metadataPolicy": "Fetch"},
             "sourceRef": {"storeRef": {"name": "aws", "kind": "ClusterSecretStore"}}},
        ],
        "dataFrom": [
            {"extract": {"key": "app"}},
            {"find": {"path": "team", "name": {"regexp": "^db"}, "tags": {"env": "prod"}},
             "sourceRef": {"storeRef": {"name": "other"}}},
        ],
    }));
    let got = needs(&s);
    let want = vec![
        Need::Value {
            store: store("vault"),
            remote: RemoteRef::key("app"),
        },
        Need::Find {
            store: store("other"),
            find: Find {
                path: Some("team".into()),
                name_regexp: Some("^db".into()),
                tags: BTreeMap::from([("env".into(), "prod".into())]),
            },
        },
        Need::Value {
            store: store("vault"),
            remote: RemoteRef {
                key: "db".into(),
                version: Some("3".into()),
                metadata: false,
            },
        },
        Need::Value {
            store: StoreRefKey {
                kind: StoreKind::ClusterSecretStore,
                name: "aws".into(),
            },
            remote: RemoteRef {
                key: "db".into(),
                version: None,
                metadata: true,
            },
        },
    ];
    assert_eq!(got.ok(), Some(want));
}

#[test]
fn a_find_name_without_a_regexp_matches_everything() {
    let s = spec(json!({"dataFrom": [{"find": {"name": {}}}]}));
    assert_eq!(
        needs(&s).ok(),
        Some(vec![Need::Find {
            store: store("vault"),
            find: find("")
        }])
    );
}

#[test]
fn an_empty_spec_needs_nothing_and_renders_nothing() {
    let s = spec(json!({}));
    assert_eq!(needs(&s).ok(), Some(vec![]));
    let rendered = ok(&s, &FakeFetched::default());
    assert!(rendered.data.is_empty() && rendered.missing.is_empty());
}

#[test]
fn esos_admission_rules_for_data_from_are_checked() {
    assert_eq!(
        invalid_spec(
            json!({"dataFrom": [{"extract": {"key": "a"}, "find": {"tags": {"a": "b"}}}]})
        ),
        "invalid spec: spec.dataFrom[0]: extract, find, or generatorRef cannot be set at the same time"
    );
    assert_eq!(
        invalid_spec(json!({"dataFrom": [{"rewrite": []}]})),
        "invalid spec: spec.dataFrom[0]: either extract, find, or sourceRef must be set to dataFrom"
    );
    assert_eq!(
        invalid_spec(json!({"dataFrom": [{"sourceRef": {}}]})),
        "invalid spec: spec.dataFrom[0].sourceRef: generatorRef or storeRef must be set when using sourceRef in dataFrom"
    );
}

#[test]
fn a_generator_entry_needs_its_generator_and_renders_rewritten_without_decoding() {
    let generator = json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "pw"});
    let s = spec(json!({"dataFrom": [
        {"extract": {"key": "a", "decodingStrategy": "Base64"}},
        {"sourceRef": {"generatorRef": generator},
         "rewrite": [{"regexp": {"source": "^password$", "target": "db-password"}}]}
    ]}));
    assert_eq!(
        needs(&s).expect("needs")[1],
        Need::Generate {
            index: 1,
            generator: serde_json::from_value(generator.clone()).expect("ref"),
        }
    );
    let fetched = FakeFetched::default()
        .value("a", br#"{"x": "eA=="}"#)
        // Base64-looking generated text stays as it is: decoding is the extract entry's only.
        .generated(1, &[("password", b"cGFzcw==")]);
    let rendered = ok(&s, &fetched);
    assert_eq!(rendered.data["x"].expose(), b"x");
    assert_eq!(rendered.data["db-password"].expose(), b"cGFzcw==");
    assert!(!rendered.data.contains_key("password"));
}

#[test]
fn a_generator_ref_outside_the_generators_group_is_refused_as_eso_refuses_it() {
    let generator =
        json!({"apiVersion": "external-secrets.io/v1", "kind": "Password", "name": "pw"});
    assert_eq!(
        invalid_spec(json!({"dataFrom": [{"sourceRef": {"generatorRef": generator}}]})),
        "invalid spec: spec.dataFrom[0].sourceRef.generatorRef.apiVersion: generatorRef may only reference the generators group"
    );
    let generator = json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "pw"});
    assert!(
        invalid_spec(
            json!({"data": [{"secretKey": "a", "remoteRef": {"key": "k"},
                                        "sourceRef": {"generatorRef": generator}}]})
        )
        .contains("generatorRef is not implemented in spec.data[]")
    );
}

#[test]
fn a_find_regexp_must_compile() {
    assert!(
        invalid_spec(json!({"dataFrom": [{"find": {"name": {"regexp": "("}}}]}))
            .starts_with("invalid spec: spec.dataFrom[0].find.name.regexp: ")
    );
}

#[test]
fn every_entry_needs_a_store() {
    let mut s = spec(json!({"data": [{"secretKey": "a", "remoteRef": {"key": "k"}}]}));
    s.secret_store_ref = None;
    match needs(&s) {
        Err(e) => assert_eq!(
            e.to_string(),
            "invalid spec: spec.data[0]: no store to read from: set spec.secretStoreRef or spec.data[0].sourceRef.storeRef"
        ),
        Ok(n) => panic!("{n:?}"),
    }
    assert_eq!(
        invalid_spec(
            json!({"secretStoreRef": {"name": ""}, "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}]})
        ),
        "invalid spec: spec.secretStoreRef.name: the store name is empty"
    );
}

#[test]
fn duplicate_secret_keys_are_refused_with_the_retain_policy_only() {
    let entries = json!([
        {"secretKey": "a", "remoteRef": {"key": "k1"}},
        {"secretKey": "a", "remoteRef": {"key": "k2"}},
    ]);
    assert_eq!(
        invalid_spec(json!({"data": entries})),
        "invalid spec: spec.data[1].secretKey: duplicate secretKey found: a"
    );
    let s = spec(json!({"data": entries, "target": {"deletionPolicy": "Delete"}}));
    assert!(needs(&s).is_ok());
}

#[test]
fn rewrites_that_cannot_compile_name_their_field() {
    assert!(
        invalid_spec(json!({"dataFrom": [{"extract": {"key": "a"},
            "rewrite": [{"regexp": {"source": "x", "target": "y"}}, {"regexp": {"source": "(", "target": ""}}]}]}))
        .starts_with("invalid spec: spec.dataFrom[0].rewrite[1].regexp.source: regexp failed with failed to compile: ")
    );
    assert!(
        invalid_spec(json!({"dataFrom": [{"extract": {"key": "a"},
            "rewrite": [{"transform": {"template": "{{ .value"}}]}]}))
        .starts_with("invalid spec: spec.dataFrom[0].rewrite[0].transform.template: transform failed with failed to parse template: ")
    );
    assert_eq!(
        invalid_spec(json!({"dataFrom": [{"extract": {"key": "a"},
            "rewrite": [{"regexp": {"source": "x", "target": "y"}, "transform": {"template": "t"}}]}]})),
        "invalid spec: spec.dataFrom[0].rewrite[0]: set exactly one of merge, regexp or transform"
    );
}

// ---- the pipeline ----

#[test]
fn data_from_entries_merge_in_order_and_data_wins() {
    let s = spec(json!({
        "dataFrom": [
            {"extract": {"key": "first"}},
            {"extract": {"key": "second"}},
        ],
        "data": [{"secretKey": "shared", "remoteRef": {"key": "single"}}],
    }));
    let f = FakeFetched::default()
        .value(
            "first",
            br#"{"shared": "from-first", "only-first": "1", "both": "first"}"#,
        )
        .value("second", br#"{"both": "second"}"#)
        .value("single", b"from-data");
    assert_eq!(
        data(&ok(&s, &f)),
        [
            ("both", "second".to_owned()),
            ("only-first", "1".to_owned()),
            ("shared", "from-data".to_owned()),
        ]
    );
}

#[test]
fn data_stores_the_whole_value_without_a_property() {
    let s = spec(json!({"data": [{"secretKey": "blob", "remoteRef": {"key": "k"}}]}));
    let f = FakeFetched::default().value("k", b"\xff\x00 raw bytes, not JSON");
    let rendered = ok(&s, &f);
    assert_eq!(
        rendered.data.get("blob").map(SecretBytes::expose),
        Some(&b"\xff\x00 raw bytes, not JSON"[..])
    );
}

#[test]
fn data_selects_properties_like_aws_and_vault() {
    let s = spec(json!({"data": [
        {"secretKey": "user", "remoteRef": {"key": "db", "property": "user"}},
        {"secretKey": "port", "remoteRef": {"key": "db", "property": "port"}},
        {"secretKey": "dotted", "remoteRef": {"key": "db", "property": "a.b"}},
        {"secretKey": "nested", "remoteRef": {"key": "db", "property": "nested.deep.x"}},
        {"secretKey": "second", "remoteRef": {"key": "db", "property": "hosts.1"}},
        {"secretKey": "count", "remoteRef": {"key": "db", "property": "hosts.#"}},
        {"secretKey": "names", "remoteRef": {"key": "db", "property": "replicas.#.name"}},
        {"secretKey": "object", "remoteRef": {"key": "db", "property": "nested"}},
        {"secretKey": "empty-property", "remoteRef": {"key": "plain", "property": ""}},
    ]}));
    let f = FakeFetched::default()
        .value(
            "db",
            br#"{"user": "app", "port": 5432.0, "a.b": "flat", "a": {"b": "deep"},
                 "nested": {"deep": {"x": 1}}, "hosts": ["h0", "h1"],
                 "replicas": [{"name": "r1"}, {"name": "r2"}]}"#,
        )
        .value("plain", b"not json");
    assert_eq!(
        data(&ok(&s, &f)),
        [
            ("count", "2".to_owned()),
            ("dotted", "flat".to_owned()),
            ("empty-property", "not json".to_owned()),
            ("names", r#"["r1","r2"]"#.to_owned()),
            ("nested", "1".to_owned()),
            ("object", r#"{"deep":{"x":1}}"#.to_owned()),
            ("port", "5432.0".to_owned()),
            ("second", "h1".to_owned()),
            ("user", "app".to_owned()),
        ]
    );
}

#[test]
fn a_property_of_a_value_that_is_not_json_is_an_error() {
    let s = spec(
        json!({"data": [{"secretKey": "u", "remoteRef": {"key": "prod/db", "property": "user"}}]}),
    );
    let e = err(&s, &FakeFetched::default().value("prod/db", b"plain"));
    assert_eq!(
        e.to_string(),
        r#"error processing spec.data[0] (key: prod/db), err: secret "prod/db" is not JSON, so property "user" cannot be read"#
    );
    assert!(!e.is_retryable());
    assert_eq!(
        e.location(),
        Some(&Location::Data {
            index: 0,
            key: "prod/db".into()
        })
    );
}

#[test]
fn a_missing_property_is_an_error_whatever_the_deletion_policy() {
    for policy in ["Retain", "Delete", "Merge"] {
        let s = spec(json!({
            "target": {"deletionPolicy": policy},
            "data": [{"secretKey": "u", "remoteRef": {"key": "db", "property": "user"}}],
        }));
        let e = err(&s, &FakeFetched::default().value("db", br#"{"name": "x"}"#));
        assert_eq!(
            e.to_string(),
            r#"error processing spec.data[0] (key: db), err: key "user" does not exist in secret "db""#
        );
        assert_eq!(e.metric_label(), "property_not_found");
    }
}

#[test]
fn data_values_are_decoded_then_checked_for_nul_bytes() {
    let s = spec(json!({"data": [
        {"secretKey": "b64", "remoteRef": {"key": "a", "decodingStrategy": "Base64"}},
        {"secretKey": "url", "remoteRef": {"key": "b", "decodingStrategy": "Base64URL"}},
        {"secretKey": "auto", "remoteRef": {"key": "c", "decodingStrategy": "Auto"}},
        {"secretKey": "prop", "remoteRef": {"key": "d", "property": "v", "decodingStrategy": "Base64"}},
        {"secretKey": "nul", "remoteRef": {"key": "e"}},
    ]}));
    let f = FakeFetched::default()
        .value("a", b"aGVsbG8=")
        .value("b", b"-_-_")
        .value("c", b"not base64")
        .value("d", br#"{"v": "d29ybGQ="}"#)
        .value("e", b"A\0B");
    let rendered = ok(&s, &f);
    let get = |k: &str| rendered.data.get(k).map(|v| v.expose().to_vec());
    assert_eq!(get("b64"), Some(b"hello".to_vec()));
    assert_eq!(get("url"), Some(vec![0xfb, 0xff, 0xbf]));
    assert_eq!(get("auto"), Some(b"not base64".to_vec()));
    assert_eq!(get("prop"), Some(b"world".to_vec()));
    // `nullBytePolicy` unset behaves as Ignore.
    assert_eq!(get("nul"), Some(b"A\0B".to_vec()));

    let fail = spec(json!({"data": [
        {"secretKey": "payload", "remoteRef": {"key": "a", "decodingStrategy": "Base64", "nullBytePolicy": "Fail"}},
    ]}));
    let e = err(&fail, &FakeFetched::default().value("a", b"QQBC"));
    assert_eq!(
        e.to_string(),
        r#"error processing spec.data[0] (key: a), err: fetched secret value for key "payload" contains null bytes"#
    );
    let bad = spec(
        json!({"data": [{"secretKey": "x", "remoteRef": {"key": "a", "decodingStrategy": "Base64"}}]}),
    );
    assert_eq!(
        err(&bad, &FakeFetched::default().value("a", b"abc$")).to_string(),
        "error processing spec.data[0] (key: a), err: error applying decoding strategy Base64 to data: illegal base64 data at input byte 3"
    );
}

#[test]
fn extract_unquotes_strings_and_keeps_other_members_as_written() {
    let s = spec(json!({"dataFrom": [{"extract": {"key": "app"}}]}));
    let f = FakeFetched::default().value(
        "app",
        br#"{"username": "my_user", "port": 5432, "ratio": 1.50, "on": true, "none": null,
             "nested": {"baz": "nestedval", "n": [1, 2]}, "esc": "a\nb"}"#,
    );
    assert_eq!(
        data(&ok(&s, &f)),
        [
            ("esc", "a\nb".to_owned()),
            ("nested", r#"{"baz": "nestedval", "n": [1, 2]}"#.to_owned()),
            ("none", String::new()),
            ("on", "true".to_owned()),
            ("port", "5432".to_owned()),
            ("ratio", "1.50".to_owned()),
            ("username", "my_user".to_owned()),
        ]
    );
}

#[test]
fn extract_reads_a_property_first() {
    let s = spec(json!({"dataFrom": [{"extract": {"key": "app", "property": "db"}}]}));
    let f =
        FakeFetched::default().value("app", br#"{"db": {"user": "u", "pass": "p"}, "other": 1}"#);
    assert_eq!(
        data(&ok(&s, &f)),
        [("pass", "p".to_owned()), ("user", "u".to_owned())]
    );
}

#[test]
fn extract_needs_a_json_object() {
    let s = spec(json!({"dataFrom": [{"extract": {"key": "app"}}]}));
    let e = err(&s, &FakeFetched::default().value("app", b"[1, 2]"));
    assert_eq!(
        e.to_string(),
        r#"error processing spec.dataFrom[0].extract, err: unable to unmarshal secret "app": the value is a JSON array, not an object"#
    );
    let e = err(&s, &FakeFetched::default().value("app", b"{\"a\": "));
    assert_eq!(
        e.to_string(),
        r#"error processing spec.dataFrom[0].extract, err: unable to unmarshal secret "app": the value is not JSON (invalid JSON at byte 6: unexpected end of input)"#
    );
    // Go unmarshals `null` into an empty map.
    let rendered = ok(&s, &FakeFetched::default().value("app", b"null"));
    assert!(rendered.data.is_empty());
}

#[test]
fn extracted_keys_are_converted_unless_rewritten() {
    let s = spec(json!({"dataFrom": [
        {"extract": {"key": "a"}},
        {"extract": {"key": "b", "conversionStrategy": "Unicode"}},
    ]}));
    let f = FakeFetched::default()
        .value("a", br#"{"db/user": "u", "x y": "v"}"#)
        .value("b", br#"{"k@1": "w"}"#);
    assert_eq!(
        data(&ok(&s, &f)),
        [
            ("db_user", "u".to_owned()),
            ("k_U0040_1", "w".to_owned()),
            ("x_y", "v".to_owned()),
        ]
    );

    // With a rewrite, conversion is skipped: what the rewrite leaves must already be valid.
    let rewritten = spec(json!({"dataFrom": [{"extract": {"key": "a"},
        "rewrite": [{"regexp": {"source": "^db/", "target": ""}}]}]}));
    let e = err(&rewritten, &f);
    assert_eq!(
        e.to_string(),
        "error processing spec.dataFrom[0].extract, err: invalid secret keys (TIP: use rewrite or conversionStrategy to change keys): key has invalid character ' ', only alphanumeric, '-', '.' and '_' are allowed: x y"
    );
    let fixed = spec(json!({"dataFrom": [{"extract": {"key": "a"},
        "rewrite": [{"regexp": {"source": "^db/", "target": ""}}, {"regexp": {"source": " ", "target": "-"}}]}]}));
    assert_eq!(
        data(&ok(&fixed, &f)),
        [("user", "u".to_owned()), ("x-y", "v".to_owned())]
    );
}

#[test]
fn a_conversion_collision_is_an_error() {
    let s = spec(json!({"dataFrom": [{"extract": {"key": "a"}}]}));
    let f = FakeFetched::default().value("a", br#"{"a/b": "1", "a_b": "2"}"#);
    assert_eq!(
        err(&s, &f).to_string(),
        "error processing spec.dataFrom[0].extract, err: error applying conversion strategy Default to keys: secret name collision during conversion: a_b"
    );
}

#[test]
fn find_converts_secret_names_into_keys() {
    let s = spec(json!({"dataFrom": [{"find": {"name": {"regexp": "^app/"}}}]}));
    let f =
        FakeFetched::default().found("^app/", &[("app/db/password", b"p"), ("app/api-key", b"k")]);
    assert_eq!(
        data(&ok(&s, &f)),
        [
            ("app_api-key", "k".to_owned()),
            ("app_db_password", "p".to_owned())
        ]
    );
}

#[test]
fn find_values_are_decoded_and_nul_checked_in_key_order() {
    let s = spec(
        json!({"dataFrom": [{"find": {"name": {"regexp": "."}, "decodingStrategy": "Base64", "nullBytePolicy": "Fail"}}]}),
    );
    let f = FakeFetched::default().found(
        ".",
        &[("zeta", b"QQBC"), ("alpha", b"QwBE"), ("ok", b"aGk=")],
    );
    assert_eq!(
        err(&s, &f).to_string(),
        r#"error processing spec.dataFrom[0].find, err: fetched secret value for key "alpha" contains null bytes"#
    );
    let bad = FakeFetched::default().found(".", &[("k", b"@@@@")]);
    assert_eq!(
        err(&s, &bad).to_string(),
        "error processing spec.dataFrom[0].find, err: error applying decoding strategy Base64 to data: failure decoding key k: illegal base64 data at input byte 0"
    );
}

#[test]
fn find_with_rewrites_merges_json_values() {
    let s = spec(json!({"dataFrom": [{"find": {"name": {"regexp": "creds"}},
        "rewrite": [{"merge": {"strategy": "JSON", "into": "all", "conflictPolicy": "Ignore"}},
                    {"regexp": {"source": "-credentials$", "target": ""}}]}]}));
    let f = FakeFetched::default().found(
        "creds",
        &[
            (
                "mongo-credentials",
                br#"{"username": "foz", "password": "baz"}"#,
            ),
            (
                "redis-credentials",
                br#"{"host": "redis.example.com", "port": 6379}"#,
            ),
        ],
    );
    assert_eq!(
        data(&ok(&s, &f)),
        [
            (
                "all",
                r#"{"host":"redis.example.com","password":"baz","port":6379,"username":"foz"}"#
                    .to_owned()
            ),
            (
                "mongo",
                r#"{"username": "foz", "password": "baz"}"#.to_owned()
            ),
            (
                "redis",
                r#"{"host": "redis.example.com", "port": 6379}"#.to_owned()
            ),
        ]
    );
    let conflict = spec(
        json!({"dataFrom": [{"find": {"name": {"regexp": "creds"}}, "rewrite": [{"merge": {}}]}]}),
    );
    let f =
        FakeFetched::default().found("creds", &[("a", br#"{"u": "1"}"#), ("b", br#"{"u": "2"}"#)]);
    assert_eq!(
        err(&conflict, &f).to_string(),
        "error processing spec.dataFrom[0].find, err: error applying rewrite to keys: failed rewrite operation[0]: merge failed with conflicts: u"
    );
}

#[test]
fn a_transform_rewrite_renders_each_key() {
    let s = spec(json!({"dataFrom": [{"extract": {"key": "a"},
        "rewrite": [{"transform": {"template": "{{ .value | upper | replace \"-\" \"_\" }}"}}]}]}));
    let f = FakeFetched::default().value("a", br#"{"api-key": "k"}"#);
    assert_eq!(data(&ok(&s, &f)), [("API_KEY", "k".to_owned())]);
}

#[test]
fn empty_keys_are_dropped() {
    let s = spec(json!({"dataFrom": [{"extract": {"key": "a"},
        "rewrite": [{"regexp": {"source": "^drop$", "target": ""}}]}]}));
    let f = FakeFetched::default().value("a", br#"{"drop": "x", "keep": "y"}"#);
    assert_eq!(data(&ok(&s, &f)), [("keep", "y".to_owned())]);
}

// ---- missing secrets and provider errors ----

fn not_found(key: &str) -> ProviderError {
    ProviderError::NotFound {
        key: key.to_owned(),
    }
}

#[test]
fn a_missing_secret_is_an_error_with_the_retain_policy() {
    let s = spec(json!({"data": [{"secretKey": "a", "remoteRef": {"key": "gone"}}]}));
    let e = err(&s, &FakeFetched::default().error("gone", not_found("gone")));
    assert_eq!(
        e.to_string(),
        r#"error processing spec.data[0] (key: gone), err: secret "gone" does not exist at the provider"#
    );
    assert!(!e.is_retryable());
    assert_eq!(e.metric_label(), "not_found");
}

#[test]
fn missing_secrets_are_skipped_and_reported_with_delete_or_merge() {
    for policy in ["Delete", "Merge"] {
        let s = spec(json!({
            "target": {"deletionPolicy": policy},
            "dataFrom": [
                {"extract": {"key": "gone-map"}},
                {"find": {"name": {"regexp": "x"}}},
                {"extract": {"key": "here"}},
            ],
            "data": [
                {"secretKey": "a", "remoteRef": {"key": "gone"}},
                {"secretKey": "b", "remoteRef": {"key": "present"}},
            ],
        }));
        let f = FakeFetched::default()
            .error("gone-map", not_found("gone-map"))
            .find_error("x", not_found("x"))
            .value("here", br#"{"h": "1"}"#)
            .error("gone", not_found("gone"))
            .value("present", b"2");
        let rendered = ok(&s, &f);
        assert_eq!(
            data(&rendered),
            [("b", "2".to_owned()), ("h", "1".to_owned())]
        );
        let events: Vec<String> = rendered.missing.iter().map(ToString::to_string).collect();
        assert_eq!(
            events,
            [
                "secret does not exist at provider using spec.dataFrom[0]",
                "secret does not exist at provider using spec.dataFrom[1]",
                "secret does not exist at provider using spec.data[0] (key=gone)",
            ]
        );
    }
}

#[test]
fn provider_errors_keep_their_retry_classification() {
    let s = spec(json!({"dataFrom": [{"find": {"name": {"regexp": "x"}}}]}));
    let throttled = FakeFetched::default().find_error(
        "x",
        ProviderError::Throttled {
            message: "slow down".into(),
        },
    );
    let e = err(&s, &throttled);
    assert!(e.is_retryable());
    assert_eq!(e.metric_label(), "throttled");
    assert_eq!(
        e.to_string(),
        "error processing spec.dataFrom[0].find, err: throttled by the provider: slow down"
    );
    // Other errors are not skipped even with deletionPolicy Delete.
    let mut delete = s.clone();
    delete.target.deletion_policy = DeletionPolicy::Delete;
    assert!(err(&delete, &throttled).is_retryable());
    let config = FakeFetched::default().find_error("x", ProviderError::Config("bad".into()));
    assert!(!err(&s, &config).is_retryable());
}

// ---- secret hygiene ----

const CANARY: &str = "CANARY-7f3a9c-s3cr3t";

/// Renders many failing inputs whose values hold the canary and checks that no error shows it.
#[test]
fn no_error_reveals_a_secret_value() {
    let c = CANARY;
    let cases: Vec<(serde_json::Value, FakeFetched)> = vec![
        // A property of a value that is not JSON.
        (
            json!({"data": [{"secretKey": "k", "remoteRef": {"key": "a", "property": "p"}}]}),
            FakeFetched::default().value("a", c.as_bytes()),
        ),
        // A missing property in JSON full of the canary.
        (
            json!({"data": [{"secretKey": "k", "remoteRef": {"key": "a", "property": "p"}}]}),
            FakeFetched::default()
                .value("a", format!(r#"{{"q": "{c}", "r": ["{c}"]}}"#).as_bytes()),
        ),
        // An unsupported path.
        (
            json!({"data": [{"secretKey": "k", "remoteRef": {"key": "a", "property": "x|y"}}]}),
            FakeFetched::default().value("a", format!(r#"{{"q": "{c}"}}"#).as_bytes()),
        ),
        // Invalid base64.
        (
            json!({"data": [{"secretKey": "k", "remoteRef": {"key": "a", "decodingStrategy": "Base64"}}]}),
            FakeFetched::default().value("a", c.as_bytes()),
        ),
        (
            json!({"data": [{"secretKey": "k", "remoteRef": {"key": "a", "decodingStrategy": "Base64URL"}}]}),
            FakeFetched::default().value("a", format!("{c}=").as_bytes()),
        ),
        // NUL bytes.
        (
            json!({"data": [{"secretKey": "k", "remoteRef": {"key": "a", "nullBytePolicy": "Fail"}}]}),
            FakeFetched::default().value("a", format!("{c}\0{c}").as_bytes()),
        ),
        // Extract of text that is not JSON, of invalid JSON, of a JSON string and a JSON array.
        (
            json!({"dataFrom": [{"extract": {"key": "a"}}]}),
            FakeFetched::default().value("a", c.as_bytes()),
        ),
        (
            json!({"dataFrom": [{"extract": {"key": "a"}}]}),
            FakeFetched::default().value("a", format!(r#"{{"k": {c}}}"#).as_bytes()),
        ),
        (
            json!({"dataFrom": [{"extract": {"key": "a"}}]}),
            FakeFetched::default().value("a", format!(r#""{c}""#).as_bytes()),
        ),
        (
            json!({"dataFrom": [{"extract": {"key": "a"}}]}),
            FakeFetched::default().value("a", format!(r#"["{c}"]"#).as_bytes()),
        ),
        // Decoding and NUL checks of extracted members.
        (
            json!({"dataFrom": [{"extract": {"key": "a", "decodingStrategy": "Base64"}}]}),
            FakeFetched::default().value("a", format!(r#"{{"k": "{c}"}}"#).as_bytes()),
        ),
        (
            json!({"dataFrom": [{"extract": {"key": "a", "nullBytePolicy": "Fail"}}]}),
            FakeFetched::default().value("a", format!(r#"{{"k": "{c}\u0000"}}"#).as_bytes()),
        ),
        // Merges of values that are not JSON objects, or hold numbers Go cannot read.
        (
            json!({"dataFrom": [{"find": {"name": {"regexp": "x"}}, "rewrite": [{"merge": {}}]}]}),
            FakeFetched::default().found("x", &[("a", c.as_bytes())]),
        ),
        (
            json!({"dataFrom": [{"find": {"name": {"regexp": "x"}}, "rewrite": [{"merge": {}}]}]}),
            FakeFetched::default().found("x", &[("a", format!(r#"["{c}"]"#).as_bytes())]),
        ),
        (
            json!({"dataFrom": [{"find": {"name": {"regexp": "x"}}, "rewrite": [{"merge": {}}]}]}),
            FakeFetched::default().found(
                "x",
                &[("a", format!(r#"{{"k": "{c}", "n": 1e999}}"#).as_bytes())],
            ),
        ),
        (
            json!({"dataFrom": [{"find": {"name": {"regexp": "x"}}, "rewrite": [{"merge": {}}]}]}),
            FakeFetched::default().found(
                "x",
                &[
                    ("a", format!(r#"{{"k": "{c}"}}"#).as_bytes()),
                    ("b", format!(r#"{{"k": "{c}"}}"#).as_bytes()),
                ],
            ),
        ),
        // Find values with NUL bytes, invalid base64.
        (
            json!({"dataFrom": [{"find": {"name": {"regexp": "x"}, "nullBytePolicy": "Fail"}}]}),
            FakeFetched::default().found("x", &[("a", format!("{c}\0").as_bytes())]),
        ),
        (
            json!({"dataFrom": [{"find": {"name": {"regexp": "x"}, "decodingStrategy": "Base64"}}]}),
            FakeFetched::default().found("x", &[("a", c.as_bytes())]),
        ),
    ];
    let total = cases.len();
    for (i, (manifest, fetched)) in cases.into_iter().enumerate() {
        let s = spec(manifest);
        let e = err(&s, &fetched);
        let shown = format!("{e}\n{e:?}\n{:?}", std::error::Error::source(&e));
        assert!(
            !shown.contains(c) && !shown.contains("7f3a9c"),
            "case {i}/{total} reveals the value: {shown}"
        );
    }
}

#[test]
fn rendered_data_does_not_debug_print_values() {
    let s = spec(json!({"data": [{"secretKey": "k", "remoteRef": {"key": "a"}}]}));
    let rendered = ok(&s, &FakeFetched::default().value("a", CANARY.as_bytes()));
    let shown = format!("{rendered:?}");
    assert!(!shown.contains(CANARY), "{shown}");
}

#[test]
fn keyed_values_read_keys_exactly_and_paths_into_them_as_esos_kubernetes_provider() {
    let fetched = FakeFetched::default().keyed(
        "db",
        &[
            ("store.jks", b"\xfe\xed\x00\xff"),
            ("config", br#"{"port":5432,"tls":{"on":true}}"#),
            ("user", b"app"),
        ],
    );
    let s = spec(json!({
        "data": [
            { "secretKey": "jks", "remoteRef": { "key": "db", "property": "store.jks" } },
            { "secretKey": "port", "remoteRef": { "key": "db", "property": "config.port" } },
            { "secretKey": "tls", "remoteRef": { "key": "db", "property": "config.tls.on" } },
            { "secretKey": "whole", "remoteRef": { "key": "db" } }
        ],
        "dataFrom": [{ "extract": { "key": "db" } }]
    }));
    let rendered = ok(&s, &fetched);
    let bytes = |k: &str| rendered.data[k].expose().to_vec();
    // Binary survives, by property and by extract; the whole value is ESO's JSON (U+FFFD).
    assert_eq!(bytes("jks"), b"\xfe\xed\x00\xff");
    assert_eq!(bytes("store.jks"), b"\xfe\xed\x00\xff");
    assert_eq!(bytes("port"), b"5432");
    assert_eq!(bytes("tls"), b"true");
    assert_eq!(bytes("user"), b"app");
    assert_eq!(
        String::from_utf8(bytes("whole")).ok(),
        Some(r#"{"config":"{\"port\":5432,\"tls\":{\"on\":true}}","store.jks":"\ufffd\ufffd\u0000\ufffd","user":"app"}"#.to_owned())
    );
    for missing in ["nope", "user.x", "config.nope", ".config", "config."] {
        let s = spec(json!({
            "data": [{ "secretKey": "k", "remoteRef": { "key": "db", "property": missing } }]
        }));
        assert!(
            matches!(err(&s, &fetched), RenderError::PropertyNotFound { .. }),
            "{missing}"
        );
    }
}
