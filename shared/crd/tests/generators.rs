//! The generator kinds (`generators.external-secrets.io/v1alpha1`) against ESO v2.9.0: each CRD's
//! names, scope, categories, printer columns and subresources and each schema's fields, types,
//! defaults and enums against ESO's own CRDs; ESO's docs examples parse into the typed kinds and
//! serialize to exactly what an apiserver stores for them under ESO's CRDs. The fixtures and
//! where they come from: `tests/fixtures/README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use secret_sync_crd::provider::VaultKvVersion;
use secret_sync_crd::{
    AcrAccessToken, AzureEnvironmentType, BeyondtrustWorkloadCredentialsDynamicSecret,
    CloudsmithAccessToken, ClusterGenerator, EcrAuthorizationToken, ExternalSecret,
    FINALIZER_GENERATOR_STATE, Fake, GENERATOR_API_VERSION, GENERATOR_GROUP, GENERATOR_VERSION,
    GcrAccessToken, GeneratorKind, GeneratorState, GithubAccessToken, GitlabDeployToken,
    GitlabDeployTokenScope, Grafana, GrafanaServiceAccountTokenState,
    LABEL_GENERATOR_STATE_OWNER_KEY, Mfa, Password, PasswordEncoding, PasswordSpec, PushSecret,
    QuayAccessToken, SshKey, SshKeyType, StsSessionToken, Uuid, UuidSpec, VaultDynamicSecret,
    VaultDynamicSecretResultType, VaultDynamicSecretSpec, Webhook, WebhookSpec,
    cluster_generator_field, crds, generator_kinds,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_json(file: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(file)).expect("fixture");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// ESO's generator CRDs, by plural (`eso-v2.9.0-generator-crds.json`).
fn eso_crds() -> BTreeMap<String, Value> {
    serde_json::from_value(read_json("eso-v2.9.0-generator-crds.json")["crds"].clone())
        .expect("crds by plural")
}

/// Our generator CRDs as rendered to `infra/crds/`, by plural.
fn our_crds() -> BTreeMap<String, CustomResourceDefinition> {
    crds::generators()
        .into_iter()
        .map(|crd| (crd.spec.names.plural.clone(), crd))
        .collect()
}

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    serde_json::to_value(schema).expect("schema as JSON")
}

/// The keywords compared with ESO's (`flatten_eso_crds.py` keeps the same).
const KEYWORDS: &[&str] = &[
    "type",
    "default",
    "enum",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-validations",
];

/// One entry per property path, as `flatten_eso_crds.py` writes ESO's.
fn flatten(schema: &Value, path: &str, required: bool, out: &mut BTreeMap<String, Value>) {
    let mut attrs = serde_json::Map::new();
    for k in KEYWORDS {
        if let Some(v) = schema.get(*k) {
            attrs.insert((*k).to_owned(), v.clone());
        }
    }
    as_float(&mut attrs);
    if required {
        attrs.insert("required".to_owned(), Value::Bool(true));
    }
    out.insert(path.to_owned(), Value::Object(attrs));
    let required_here: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if let Some(props) = schema["properties"].as_object() {
        for (name, sub) in props {
            flatten(
                sub,
                &format!("{path}.{name}"),
                required_here.contains(&name.as_str()),
                out,
            );
        }
    }
    if let Some(items) = schema.get("items") {
        flatten(items, &format!("{path}[]"), false, out);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        flatten(values, &format!("{path}{{}}"), false, out);
    }
}

/// `minimum` and `maximum` as floats: the CRD types hold them as `f64`, ESO's YAML as integers.
fn as_float(attrs: &mut serde_json::Map<String, Value>) {
    for k in ["minimum", "maximum"] {
        if let Some(n) = attrs.get(k).and_then(Value::as_f64) {
            attrs.insert(k.to_owned(), json!(n));
        }
    }
}

/// Our CRD's schema flattened like ESO's fixture (ClusterGenerator cut at its union fields).
fn our_flat(crd: &CustomResourceDefinition) -> BTreeMap<String, Value> {
    let schema = schema_of(crd);
    let top_required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut out = BTreeMap::new();
    for k in ["spec", "status"] {
        if let Some(sub) = schema["properties"].get(k) {
            flatten(sub, &format!(".{k}"), top_required.contains(&k), &mut out);
        }
    }
    if crd.spec.names.kind == "ClusterGenerator" {
        out.retain(|path, _| path.matches('.').count() <= 3 && !path.contains(['[', '{']));
    }
    out
}

fn flat_of(plural: &str) -> BTreeMap<String, Value> {
    our_flat(&our_crds()[plural])
}

#[test]
fn there_is_one_crd_per_esos_generator_crd() {
    let ours: BTreeSet<String> = our_crds().into_keys().collect();
    let esos: BTreeSet<String> = eso_crds().into_keys().collect();
    assert_eq!(ours, esos);
    assert_eq!(
        ours.len(),
        19,
        "17 generator kinds, ClusterGenerator, GeneratorState"
    );
    // They follow the six external-secrets.io CRDs in crds::all().
    let all: Vec<String> = crds::all()
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    let generators: Vec<String> = crds::generators()
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(&all[6..], &generators[..]);
    for (crd, file) in crds::generators().iter().zip(&generators) {
        assert_eq!(
            crds::file_name(crd),
            format!("{file}.yaml"),
            "rendered as <plural>.generators.external-secrets.io.yaml"
        );
        assert!(file.ends_with(".generators.external-secrets.io"));
    }
}

#[test]
fn generator_crds_are_named_scoped_and_served_as_esos() {
    let ours = our_crds();
    for (plural, eso) in eso_crds() {
        let crd = &ours[&plural];
        let version = &crd.spec.versions[0];
        assert_eq!(
            crd.metadata.name.as_deref(),
            eso["name"].as_str(),
            "{plural}"
        );
        assert_eq!(
            serde_json::to_value(&crd.metadata.labels).expect("labels"),
            eso["labels"],
            "{plural}: labels"
        );
        assert_eq!(crd.spec.group, eso["group"], "{plural}");
        assert_eq!(crd.spec.group, GENERATOR_GROUP);
        assert_eq!(crd.spec.scope, eso["scope"], "{plural}: scope");
        assert_eq!(
            serde_json::to_value(&crd.spec.names).expect("names"),
            eso["names"],
            "{plural}: kind, listKind, plural, singular, shortNames, categories"
        );
        let versions: Vec<Value> = crd
            .spec
            .versions
            .iter()
            .map(|v| json!({"name": v.name, "served": v.served, "storage": v.storage}))
            .collect();
        assert_eq!(Value::from(versions), eso["versions"], "{plural}: versions");
        assert_eq!(version.name, GENERATOR_VERSION);
        assert_eq!(
            serde_json::to_value(&version.subresources).expect("subresources"),
            eso["subresources"],
            "{plural}: subresources"
        );
        assert_eq!(
            serde_json::to_value(&version.additional_printer_columns).expect("columns"),
            eso["additionalPrinterColumns"],
            "{plural}: printer columns"
        );
        // ESO's schemas list apiVersion, kind and metadata too; kube leaves them to the apiserver.
        let schema = schema_of(crd);
        let top: Vec<&String> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .collect();
        let eso_top: Vec<&str> = eso["topLevelProperties"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(Value::as_str)
            .filter(|p| !["apiVersion", "kind", "metadata"].contains(p))
            .collect();
        assert_eq!(top, eso_top, "{plural}: top-level properties");
        assert!(
            schema.get("required").is_none(),
            "{plural}: spec is optional"
        );
        assert_eq!(eso["topLevelRequired"], json!([]));
    }
}

#[test]
fn generator_crds_have_esos_categories_subresources_and_columns() {
    let ours = our_crds();
    for (plural, crd) in &ours {
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(
                &[
                    "external-secrets".to_owned(),
                    "external-secrets-generators".to_owned()
                ][..]
            ),
            "{plural}"
        );
        let version = &crd.spec.versions[0];
        let subresources = version.subresources.as_ref().expect("subresources");
        assert!(subresources.scale.is_none());
        if plural == "generatorstates" {
            assert!(
                subresources.status.is_none(),
                "GeneratorState: subresources {{}}"
            );
            assert_eq!(
                crd.spec.names.short_names.as_deref(),
                Some(&["gs".to_owned()][..])
            );
            let columns: Vec<(&str, &str, &str)> = version
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
                .collect();
            assert_eq!(
                columns,
                [
                    ("GC Deadline", "string", ".spec.garbageCollectionDeadline"),
                    ("Age", "date", ".metadata.creationTimestamp")
                ]
            );
        } else {
            assert!(
                subresources.status.is_some(),
                "{plural}: status subresource"
            );
            assert!(crd.spec.names.short_names.is_none(), "{plural}");
            assert!(version.additional_printer_columns.is_none(), "{plural}");
        }
        let scope = if plural == "clustergenerators" {
            "Cluster"
        } else {
            "Namespaced"
        };
        assert_eq!(crd.spec.scope, scope, "{plural}");
    }
    // The kube-derived CRDs lack ESO's subresource choices; crds::generators() adds them.
    assert!(Password::crd().spec.versions[0].subresources.is_none());
}

#[test]
fn generator_schemas_have_esos_fields_types_defaults_and_enums() {
    let ours = our_crds();
    let mut problems = Vec::new();
    let mut compared = 0;
    for (plural, eso) in eso_crds() {
        let esos: BTreeMap<String, Value> =
            serde_json::from_value(eso["schema"].clone()).expect("flat schema");
        let mine = our_flat(&ours[&plural]);
        let paths: BTreeSet<&String> = esos.keys().chain(mine.keys()).collect();
        for path in paths {
            compared += 1;
            let (Some(e), Some(o)) = (esos.get(path), mine.get(path)) else {
                problems.push(format!(
                    "{plural} {path}: only in {}",
                    if esos.contains_key(path) {
                        "ESO's"
                    } else {
                        "ours"
                    }
                ));
                continue;
            };
            let mut e = e.clone();
            let mut o = o.clone();
            as_float(e.as_object_mut().expect("object"));
            // A field ESO both requires and defaults is filled in by the apiserver before
            // validation; ours only defaults it, which accepts and stores the same objects.
            if e.get("default").is_some() && o.get("required").is_none() {
                e.as_object_mut().expect("object").remove("required");
            }
            // Known and kept: our condition status lists its three values, ESO's is any string.
            if plural == "generatorstates" && path == ".status.conditions[].status" {
                assert_eq!(o["enum"], json!(["True", "False", "Unknown"]));
                o.as_object_mut().expect("object").remove("enum");
            }
            if e != o {
                problems.push(format!("{plural} {path}:\n  ESO:  {e}\n  ours: {o}"));
            }
        }
    }
    assert!(compared > 400, "compared only {compared} paths");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn cluster_generator_union_members_are_the_namespaced_specs() {
    let ours = our_crds();
    let cluster = schema_of(&ours["clustergenerators"]);
    let union = &cluster["properties"]["spec"]["properties"]["generator"];
    assert_eq!(union["minProperties"], 1);
    assert_eq!(union["maxProperties"], 1);
    // The member is optional (nullable) and described as a union member; the rest is equal.
    let without_description = |v: &Value| {
        let mut v = v.clone();
        let top = v.as_object_mut().expect("object");
        top.remove("description");
        top.remove("nullable");
        v
    };
    for kind in GeneratorKind::ALL {
        let crd = ours
            .values()
            .find(|c| c.spec.names.kind == kind.as_str())
            .unwrap_or_else(|| panic!("a CRD for {kind}"));
        let member = &union["properties"][kind.cluster_generator_field()];
        assert!(
            member.is_object(),
            "{kind}: no {}",
            kind.cluster_generator_field()
        );
        assert_eq!(
            without_description(member),
            without_description(&schema_of(crd)["properties"]["spec"]),
            "{kind}: the union member is the kind's spec"
        );
    }
    assert_eq!(
        union["properties"].as_object().expect("members").len(),
        GeneratorKind::ALL.len()
    );
}

#[test]
fn generator_kinds_and_union_field_names_are_esos() {
    let eso = &eso_crds()["clustergenerators"]["schema"];
    assert_eq!(
        eso[".spec.kind"]["enum"],
        json!(generator_kinds()),
        "generator_kinds() in the order of ESO's GeneratorKind enum"
    );
    let eso_fields: BTreeSet<&str> = eso
        .as_object()
        .expect("flat schema")
        .keys()
        .filter_map(|p| p.strip_prefix(".spec.generator."))
        .collect();
    let fields: BTreeSet<&str> = generator_kinds()
        .iter()
        .map(|k| cluster_generator_field(k).expect("a generator kind"))
        .collect();
    assert_eq!(fields, eso_fields);
    for (kind, field) in [
        ("ACRAccessToken", "acrAccessTokenSpec"),
        (
            "BeyondtrustWorkloadCredentialsDynamicSecret",
            "beyondtrustWorkloadCredentialsDynamicSecretSpec",
        ),
        ("CloudsmithAccessToken", "cloudsmithAccessTokenSpec"),
        ("ECRAuthorizationToken", "ecrAuthorizationTokenSpec"),
        ("Fake", "fakeSpec"),
        ("GCRAccessToken", "gcrAccessTokenSpec"),
        ("GithubAccessToken", "githubAccessTokenSpec"),
        ("GitlabDeployToken", "gitlabDeployTokenSpec"),
        ("QuayAccessToken", "quayAccessTokenSpec"),
        ("Password", "passwordSpec"),
        ("SSHKey", "sshKeySpec"),
        ("STSSessionToken", "stsSessionTokenSpec"),
        ("UUID", "uuidSpec"),
        ("VaultDynamicSecret", "vaultDynamicSecretSpec"),
        ("Webhook", "webhookSpec"),
        ("Grafana", "grafanaSpec"),
        ("MFA", "mfaSpec"),
    ] {
        assert_eq!(cluster_generator_field(kind), Some(field), "{kind}");
        let parsed: GeneratorKind = kind.parse().expect("a generator kind");
        assert_eq!(parsed.as_str(), kind);
        assert_eq!(parsed.to_string(), kind);
        assert_eq!(serde_json::to_value(parsed).expect("serialize"), kind);
    }
    for not_a_generator in ["ClusterGenerator", "GeneratorState", "password", "Uuid", ""] {
        assert_eq!(cluster_generator_field(not_a_generator), None);
        assert!(not_a_generator.parse::<GeneratorKind>().is_err());
    }
    // The namespaced CRDs are exactly the generator kinds.
    let namespaced: BTreeSet<String> = our_crds()
        .values()
        .map(|c| c.spec.names.kind.clone())
        .filter(|k| k != "ClusterGenerator" && k != "GeneratorState")
        .collect();
    let kinds: BTreeSet<String> = generator_kinds().iter().map(|k| (*k).to_owned()).collect();
    assert_eq!(namespaced, kinds);
    // An ExternalSecret's generatorRef accepts those kinds and ClusterGenerator.
    let es = serde_json::to_value(
        ExternalSecret::crd().spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("json");
    let ref_kinds: BTreeSet<String> =
        serde_json::from_value(
            es["properties"]["spec"]["properties"]["dataFrom"]["items"]["properties"]["sourceRef"]
                ["properties"]["generatorRef"]["properties"]["kind"]["enum"]
                .clone(),
        )
        .expect("enum");
    let mut want = kinds;
    want.insert("ClusterGenerator".to_owned());
    assert_eq!(ref_kinds, want);
    assert_eq!(
        GENERATOR_API_VERSION,
        format!("{GENERATOR_GROUP}/{GENERATOR_VERSION}")
    );
}

#[test]
fn schemas_carry_esos_key_defaults_and_enums() {
    let password = flat_of("passwords");
    assert_eq!(password[".spec.length"]["default"], 24);
    assert_eq!(password[".spec.noUpper"]["default"], false);
    assert_eq!(password[".spec.allowRepeat"]["default"], false);
    assert_eq!(password[".spec.encoding"]["default"], "raw");
    assert_eq!(
        password[".spec.encoding"]["enum"],
        json!(["base64", "base64url", "base32", "hex", "raw"])
    );
    assert_eq!(password[".spec.secretKeys"]["minItems"], 1);

    let sshkey = flat_of("sshkeys");
    assert_eq!(sshkey[".spec.keyType"]["default"], "rsa");
    assert_eq!(
        sshkey[".spec.keyType"]["enum"],
        json!(["rsa", "ecdsa", "ed25519"])
    );
    assert_eq!(sshkey[".spec.keySize"]["minimum"], 256.0);
    assert_eq!(sshkey[".spec.keySize"]["maximum"], 8192.0);

    let vault = flat_of("vaultdynamicsecrets");
    assert_eq!(vault[".spec.resultType"]["default"], "Data");
    assert_eq!(
        vault[".spec.resultType"]["enum"],
        json!(["Data", "Auth", "Raw"])
    );
    assert_eq!(vault[".spec.allowEmptyResponse"]["default"], false);
    assert_eq!(
        vault[".spec.parameters"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    assert_eq!(vault[".spec.provider"]["required"], true);
    assert_eq!(vault[".spec.path"]["required"], true);
    assert_eq!(vault[".spec.provider.version"]["default"], "v2");
    assert_eq!(
        vault[".spec.provider.auth.kubernetes.mountPath"]["default"],
        "kubernetes"
    );

    let acr = flat_of("acraccesstokens");
    assert_eq!(acr[".spec.environmentType"]["default"], "PublicCloud");

    let gitlab = flat_of("gitlabdeploytokens");
    assert_eq!(gitlab[".spec.scopes"]["minItems"], 1);
    assert_eq!(
        gitlab[".spec.scopes[]"]["enum"],
        json!([
            "read_repository",
            "read_registry",
            "write_registry",
            "read_package_registry",
            "write_package_registry",
            "read_virtual_registry",
            "write_virtual_registry"
        ])
    );
    assert_eq!(
        gitlab[".spec"]["x-kubernetes-validations"][0]["rule"],
        "has(self.projectID) != has(self.groupID)"
    );

    let webhook = flat_of("webhooks");
    assert_eq!(webhook[".spec.result"]["required"], true);
    assert_eq!(webhook[".spec.auth"]["minProperties"], 1);
    assert_eq!(webhook[".spec.auth"]["maxProperties"], 1);
    assert_eq!(webhook[".spec.caBundle"]["format"], "byte");
    assert!(
        !webhook.contains_key(".spec.secrets[].secretRef.namespace"),
        "webhook secrets are local"
    );

    for (plural, region) in [
        ("ecrauthorizationtokens", ".spec.region"),
        ("stssessiontokens", ".spec.region"),
    ] {
        assert_eq!(flat_of(plural)[region]["required"], true, "{plural}");
    }

    let state = flat_of("generatorstates");
    for field in [".spec.resource", ".spec.state"] {
        assert_eq!(state[field]["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(state[field]["required"], true);
        assert!(state[field].get("type").is_none());
    }
    assert_eq!(
        state[".spec.garbageCollectionDeadline"]["format"],
        "date-time"
    );

    // Nested in a ClusterGenerator the same defaults apply.
    let cluster = schema_of(&our_crds()["clustergenerators"]);
    let mut flat = BTreeMap::new();
    flatten(&cluster["properties"]["spec"], ".spec", false, &mut flat);
    assert_eq!(flat[".spec.generator.passwordSpec.length"]["default"], 24);
    assert_eq!(flat[".spec.generator.sshKeySpec.keyType"]["default"], "rsa");
    assert_eq!(
        flat[".spec.generator.vaultDynamicSecretSpec.resultType"]["default"],
        "Data"
    );
    assert_eq!(flat[".spec.kind"]["required"], true);
    assert_eq!(flat[".spec.generator"]["required"], true);
}

// ---------------------------------------------------------------------------------------------
// ESO's docs examples

/// The generator documents of a docs snippet (Jinja `{% raw %}` lines dropped), as JSON.
fn docs_file(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("eso-v2.9.0-docs").join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("{%"))
        .map(|l| format!("{l}\n"))
        .collect();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The one document of `kind` in a docs snippet, typed.
fn doc_example<T: DeserializeOwned>(file: &str, kind: &str) -> T {
    let docs = docs_file(file);
    let mut of_kind = docs.iter().filter(|d| d["kind"] == kind);
    let doc = of_kind
        .next()
        .unwrap_or_else(|| panic!("{file}: no {kind}"));
    assert!(of_kind.next().is_none(), "{file}: several {kind}");
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// True when every field of `subset` is in `superset` with the same value.
fn contains(superset: &Value, subset: &Value) -> bool {
    match (superset, subset) {
        (Value::Object(sup), Value::Object(sub)) => sub
            .iter()
            .all(|(k, v)| sup.get(k).is_some_and(|s| contains(s, v))),
        (Value::Array(sup), Value::Array(sub)) => {
            sup.len() == sub.len() && sup.iter().zip(sub).all(|(a, b)| contains(a, b))
        }
        (a, b) => a == b,
    }
}

/// `v` without empty lists, which the typed kinds leave out when serializing.
fn without_empty_lists(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.as_array().is_some_and(Vec::is_empty))
                .map(|(k, v)| (k.clone(), without_empty_lists(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_empty_lists).collect()),
        other => other.clone(),
    }
}

/// Parses `doc` as `T` and checks it against what the apiserver stored under ESO's CRDs: the
/// typed object keeps every field written, and its spec (and status) serialize to exactly the
/// stored ones, defaults included.
fn check_against_stored<T: DeserializeOwned + Serialize>(
    file: &str,
    doc: &Value,
    stored: Option<&Value>,
) {
    let name = doc["metadata"]["name"].as_str().expect("name");
    let typed: T =
        serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file} {name}: {e}"));
    let back = serde_json::to_value(&typed).expect("serialize");
    let mut written = without_empty_lists(doc);
    if file == "generator-gcr.yaml" {
        // ESO's snippet has an empty Secret name and key (which its CRD refuses); a
        // SecretKeySelector leaves empty ones out.
        let selector = "/spec/auth/secretRef/secretAccessKeySecretRef";
        assert_eq!(back.pointer(selector), Some(&json!({})));
        *written.pointer_mut(selector).expect("selector") = json!({});
    }
    if file == "generator-cloudsmith.yaml" {
        // ESO's snippet has a field its CRD does not know (and rejects); it is dropped here too.
        assert!(back["spec"].get("apiHost").is_none());
        written["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("apiHost");
    }
    assert!(
        contains(&back, &written),
        "{file} {name}: a field was lost or changed\nwritten: {written:#}\nback: {back:#}"
    );
    let Some(stored) = stored else {
        // Only ESO's two invalid snippets were refused by the apiserver.
        assert!(
            ["generator-cloudsmith.yaml", "generator-gcr.yaml"].contains(&file),
            "{file} {name}: not stored"
        );
        return;
    };
    match stored.get("spec") {
        Some(spec) => assert_eq!(
            without_empty_lists(&back["spec"]),
            without_empty_lists(spec),
            "{file} {name}: the spec with ESO's defaults"
        ),
        None => assert!(
            doc.get("spec").is_none(),
            "{file} {name}: stored without spec"
        ),
    }
    if let Some(status) = stored.get("status") {
        assert_eq!(&back["status"], status, "{file} {name}: status");
    }
}

#[test]
fn every_docs_example_parses_and_serializes_to_what_the_apiserver_stores() {
    let stored = read_json("eso-v2.9.0-docs-stored.json");
    let mut files: Vec<String> = std::fs::read_dir(fixtures().join("eso-v2.9.0-docs"))
        .expect("docs dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 24, "ESO's generator docs snippets");
    let mut seen = BTreeSet::new();
    let mut checked = 0;
    let minimal = std::fs::read_to_string(fixtures().join("generators-minimal.yaml"))
        .expect("generators-minimal.yaml");
    let minimal: Vec<Value> = serde_saphyr::from_multiple(&minimal).expect("yaml");
    let docs = files
        .iter()
        .flat_map(|f| docs_file(f).into_iter().map(move |d| (f.clone(), d)))
        .chain(
            minimal
                .into_iter()
                .map(|d| ("generators-minimal.yaml".to_owned(), d)),
        );
    for (file, doc) in docs {
        let kind = doc["kind"].as_str().expect("kind");
        let name = doc["metadata"]["name"].as_str().expect("name");
        let at = stored[&file].get(format!("{kind}/{name}"));
        match (doc["apiVersion"].as_str().expect("apiVersion"), kind) {
            (GENERATOR_API_VERSION, _) => {
                seen.insert(kind.to_owned());
                checked += 1;
            }
            ("external-secrets.io/v1", "ExternalSecret") => {
                let es: ExternalSecret = serde_json::from_value(doc.clone()).expect("parses");
                let generator = es.spec.data_from[0]
                    .source_ref
                    .as_ref()
                    .and_then(|s| s.generator_ref.as_ref())
                    .expect("generatorRef");
                assert_eq!(generator.api_version, GENERATOR_API_VERSION);
                continue;
            }
            ("external-secrets.io/v1alpha1", "PushSecret") => {
                let ps: PushSecret = serde_json::from_value(doc.clone()).expect("parses");
                let generator = ps.spec.selector.generator_ref.expect("generatorRef");
                assert_eq!(generator.kind, "Password");
                continue;
            }
            ("v1", "Secret") => continue,
            other => panic!("{file}: unexpected {other:?}"),
        }
        match kind {
            "ACRAccessToken" => check_against_stored::<AcrAccessToken>(&file, &doc, at),
            "CloudsmithAccessToken" => {
                check_against_stored::<CloudsmithAccessToken>(&file, &doc, at);
            }
            "ClusterGenerator" => check_against_stored::<ClusterGenerator>(&file, &doc, at),
            "ECRAuthorizationToken" => {
                check_against_stored::<EcrAuthorizationToken>(&file, &doc, at);
            }
            "Fake" => check_against_stored::<Fake>(&file, &doc, at),
            "GCRAccessToken" => check_against_stored::<GcrAccessToken>(&file, &doc, at),
            "GeneratorState" => check_against_stored::<GeneratorState>(&file, &doc, at),
            "GithubAccessToken" => check_against_stored::<GithubAccessToken>(&file, &doc, at),
            "GitlabDeployToken" => check_against_stored::<GitlabDeployToken>(&file, &doc, at),
            "Grafana" => check_against_stored::<Grafana>(&file, &doc, at),
            "MFA" => check_against_stored::<Mfa>(&file, &doc, at),
            "Password" => check_against_stored::<Password>(&file, &doc, at),
            "QuayAccessToken" => check_against_stored::<QuayAccessToken>(&file, &doc, at),
            "SSHKey" => check_against_stored::<SshKey>(&file, &doc, at),
            "STSSessionToken" => check_against_stored::<StsSessionToken>(&file, &doc, at),
            "UUID" => check_against_stored::<Uuid>(&file, &doc, at),
            "VaultDynamicSecret" => check_against_stored::<VaultDynamicSecret>(&file, &doc, at),
            "Webhook" => check_against_stored::<Webhook>(&file, &doc, at),
            other => panic!("{file}: no check for {other}"),
        }
    }
    assert_eq!(
        checked, 37,
        "generator objects in the docs and generators-minimal.yaml"
    );
    let missing: Vec<&&str> = generator_kinds()
        .iter()
        .filter(|k| !seen.contains(**k))
        .collect();
    // ESO's docs have no example of the BeyondTrust generator.
    assert_eq!(missing, [&"BeyondtrustWorkloadCredentialsDynamicSecret"]);
}

#[test]
fn docs_generator_password_yaml() {
    // Parsed straight from the YAML text, as a client reading the file would.
    let text = std::fs::read_to_string(fixtures().join("eso-v2.9.0-docs/generator-password.yaml"))
        .expect("file");
    let p: Password = serde_saphyr::from_str(&text).expect("parses");
    assert_eq!(p.metadata.name.as_deref(), Some("my-password"));
    assert_eq!(
        p.spec,
        PasswordSpec {
            length: 42,
            digits: Some(5),
            symbols: Some(5),
            symbol_characters: Some("-_$@".to_owned()),
            no_upper: false,
            allow_repeat: true,
            secret_keys: vec![],
            encoding: PasswordEncoding::Raw,
        }
    );
    let rotation: Password = doc_example("pushsecret-generator-rotation-example.yaml", "Password");
    assert_eq!(
        (rotation.spec.length, rotation.spec.allow_repeat),
        (128, true)
    );
}

#[test]
fn docs_generator_password_multiple_keys_and_encoding_examples() {
    let p: Password = doc_example("generator-password-multiple-keys.yaml", "Password");
    assert_eq!(p.spec.length, 36);
    assert_eq!(p.spec.secret_keys, ["key1", "key2"]);
    assert_eq!(p.spec.encoding, PasswordEncoding::Raw);
    assert_eq!(p.spec.digits, None);

    let encodings: Vec<(String, i64, PasswordEncoding)> =
        docs_file("generator-password-encoding-examples.yaml")
            .into_iter()
            .map(|d| {
                let p: Password = serde_json::from_value(d).expect("parses");
                (
                    p.metadata.name.expect("name"),
                    p.spec.length,
                    p.spec.encoding,
                )
            })
            .collect();
    assert_eq!(
        encodings,
        [
            ("password-hex".to_owned(), 16, PasswordEncoding::Hex),
            ("password-base32".to_owned(), 20, PasswordEncoding::Base32),
            ("password-raw".to_owned(), 12, PasswordEncoding::Raw),
            (
                "password-base64url".to_owned(),
                24,
                PasswordEncoding::Base64Url
            ),
        ]
    );
}

#[test]
fn docs_generator_uuid_and_fake_yaml() {
    let u: Uuid = doc_example("generator-uuid.yaml", "UUID");
    assert_eq!(u.metadata.name.as_deref(), Some("my-uuid"));
    assert_eq!(u.spec, UuidSpec {});
    assert_eq!(serde_json::to_value(&u).expect("json")["spec"], json!({}));

    let f: Fake = doc_example("generator-fake.yaml", "Fake");
    assert_eq!(
        f.spec.data,
        BTreeMap::from([
            ("baz".to_owned(), "bang".to_owned()),
            ("foo".to_owned(), "bar".to_owned())
        ])
    );
    assert_eq!(f.spec.controller, None);
}

#[test]
fn docs_generator_sshkey_yaml_rsa_and_ecdsa() {
    let cases = [
        (
            "generator-sshkey.yaml",
            SshKeyType::Ed25519,
            None,
            "user@example.com",
        ),
        (
            "generator-sshkey-rsa.yaml",
            SshKeyType::Rsa,
            Some(4096),
            "rsa@example.com",
        ),
        (
            "generator-sshkey-ecdsa.yaml",
            SshKeyType::Ecdsa,
            Some(521),
            "ecdsa@example.com",
        ),
    ];
    for (file, key_type, key_size, comment) in cases {
        let k: SshKey = doc_example(file, "SSHKey");
        assert_eq!(k.spec.key_type, key_type, "{file}");
        assert_eq!(k.spec.key_size, key_size, "{file}");
        assert_eq!(k.spec.comment.as_deref(), Some(comment), "{file}");
    }
}

#[test]
fn docs_generator_ecr_yaml() {
    let ecr: EcrAuthorizationToken = doc_example("generator-ecr.yaml", "ECRAuthorizationToken");
    assert_eq!(ecr.metadata.name.as_deref(), Some("ecr-gen"));
    assert_eq!(ecr.spec.region, "eu-west-1");
    assert_eq!(ecr.spec.role.as_deref(), Some("my-role"));
    assert_eq!(ecr.spec.scope, None);
    let auth = ecr.spec.auth.expect("auth");
    let keys = auth.secret_ref.expect("secretRef");
    let id = keys.access_key_id.expect("accessKeyIDSecretRef");
    assert_eq!(
        (id.name.as_str(), id.key.as_str()),
        ("my-aws-creds", "key-id")
    );
    let secret = keys.secret_access_key.expect("secretAccessKeySecretRef");
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("my-aws-creds", "access-secret")
    );
    let sa = auth.jwt.and_then(|j| j.service_account_ref).expect("jwt");
    assert_eq!(sa.name, "oci-token-sync");
}

#[test]
fn docs_generator_sts_yaml() {
    let sts: StsSessionToken = doc_example("generator-sts.yaml", "STSSessionToken");
    assert_eq!(sts.spec.region, "eu-west-1");
    assert_eq!(sts.spec.role.as_deref(), Some("my-role"));
    assert!(sts.spec.auth.expect("auth").secret_ref.is_some());
    let params = sts.spec.request_parameters.expect("requestParameters");
    assert_eq!(params.session_duration, Some(900));
    assert_eq!(
        params.serial_number.as_deref(),
        Some("arn:aws:iam::123456789012:mfa/user")
    );
    assert_eq!(params.token_code.as_deref(), Some("123456"));
}

#[test]
fn docs_generator_vault_yaml_and_vault_get_yaml() {
    let pki: VaultDynamicSecret = doc_example("generator-vault.yaml", "VaultDynamicSecret");
    let spec = &pki.spec;
    assert_eq!(spec.path, "/pki/issue/example-dot-com");
    assert_eq!(spec.method.as_deref(), Some("POST"));
    assert_eq!(
        spec.parameters,
        Some(json!({"common_name": "localhost", "ip_sans": "127.0.0.1,127.0.0.11"}))
    );
    assert_eq!(spec.result_type, VaultDynamicSecretResultType::Data);
    assert!(!spec.allow_empty_response);
    assert_eq!(
        spec.provider.server,
        "http://vault.default.svc.cluster.local:8200"
    );
    assert_eq!(spec.provider.version, VaultKvVersion::V2);
    let k8s = spec
        .provider
        .auth
        .as_ref()
        .and_then(|a| a.kubernetes.as_ref())
        .expect("kubernetes auth");
    assert_eq!(k8s.mount_path, "kubernetes");
    assert_eq!(k8s.role, "external-secrets-operator");
    assert_eq!(
        k8s.service_account_ref.as_ref().map(|s| s.name.as_str()),
        Some("default")
    );

    let get: VaultDynamicSecret = doc_example("generator-vault-get.yaml", "VaultDynamicSecret");
    assert_eq!(get.spec.method.as_deref(), Some("GET"));
    assert_eq!(get.spec.path, "/kv/data/example");
    assert_eq!(
        get.spec.get_parameters,
        BTreeMap::from([("version".to_owned(), vec!["1".to_owned()])])
    );
    assert_eq!(get.spec.parameters, None);
}

#[test]
fn docs_generator_webhook_yaml() {
    let w: Webhook = doc_example("generator-webhook.yaml", "Webhook");
    let spec = &w.spec;
    assert_eq!(
        spec.url,
        "http://httpbin.org/get?parameter={{ .auth.param }}"
    );
    assert_eq!(spec.result.json_path.as_deref(), Some("$.args"));
    assert_eq!(spec.method, None, "GET when unset");
    assert_eq!(spec.headers["Content-Type"], "application/json");
    assert_eq!(
        spec.headers["Authorization"],
        "Basic {{ print .auth.username \":\" .auth.password | b64enc }}"
    );
    assert_eq!(spec.secrets.len(), 1);
    assert_eq!(spec.secrets[0].name, "auth");
    assert_eq!(spec.secrets[0].secret_ref.name, "webhook-credentials");
    assert_eq!(spec.secrets[0].secret_ref.key, "");
}

#[test]
fn docs_generator_cluster_yaml() {
    let cg: ClusterGenerator = doc_example("generator-cluster.yaml", "ClusterGenerator");
    assert_eq!(cg.metadata.name.as_deref(), Some("cluster-gen"));
    assert_eq!(cg.spec.kind, GeneratorKind::Password);
    let password = cg
        .spec
        .generator
        .password_spec
        .as_ref()
        .expect("passwordSpec");
    assert_eq!(
        (password.length, password.digits, password.allow_repeat),
        (42, Some(5), true)
    );
    assert_eq!(
        cg.spec.to_generator_object(),
        Some(json!({
            "apiVersion": "generators.external-secrets.io/v1alpha1",
            "kind": "Password",
            "spec": {
                "length": 42,
                "digits": 5,
                "symbols": 5,
                "symbolCharacters": "-_$@",
                "noUpper": false,
                "allowRepeat": true,
                "encoding": "raw"
            }
        }))
    );
}

#[test]
fn docs_examples_of_the_other_generators() {
    let acr: AcrAccessToken = doc_example("generator-acr.yaml", "ACRAccessToken");
    assert_eq!(acr.spec.registry, "example.azurecr.io");
    assert_eq!(acr.spec.environment_type, AzureEnvironmentType::PublicCloud);
    assert_eq!(acr.spec.scope.as_deref(), Some("repository:foo:pull,push"));
    let sp = acr.spec.auth.service_principal.expect("servicePrincipal");
    assert_eq!(sp.secret_ref.client_id.expect("clientId").key, "clientid");
    assert_eq!(
        acr.spec.auth.managed_identity.and_then(|m| m.identity_id),
        Some("11111111-2222-3333-4444-111111111111".to_owned())
    );

    let gcr: GcrAccessToken = doc_example("generator-gcr.yaml", "GCRAccessToken");
    assert_eq!(gcr.spec.project_id, "");
    let wi = gcr.spec.auth.workload_identity.expect("workloadIdentity");
    assert_eq!(wi.cluster_project_id.as_deref(), Some(""));

    let gh: GithubAccessToken = doc_example("generator-github.yaml", "GithubAccessToken");
    assert_eq!(
        (gh.spec.app_id.as_str(), gh.spec.install_id.as_str()),
        ("0000000", "00000000")
    );
    assert_eq!(
        gh.spec.url.as_deref(),
        Some(""),
        "empty, so the default URL"
    );
    assert_eq!(gh.spec.repositories, ["Hello-World"]);
    assert_eq!(gh.spec.permissions["contents"], "read");
    assert_eq!(gh.spec.auth.private_key.secret_ref.name, "github-app-pem");

    let gl: GitlabDeployToken = doc_example("generator-gitlab.yaml", "GitlabDeployToken");
    assert_eq!(gl.spec.project_id.as_deref(), Some("42"));
    assert_eq!(gl.spec.group_id, None);
    assert_eq!(
        gl.spec.scopes,
        [
            GitlabDeployTokenScope::ReadRepository,
            GitlabDeployTokenScope::ReadRegistry
        ]
    );
    assert!(gl.spec.expires_at.is_some());
    assert_eq!(gl.spec.auth.token.secret_ref.key, "token");

    let token: Grafana = doc_example("generator-grafana.yaml", "Grafana");
    assert_eq!(
        token.spec.auth.token.expect("token").name,
        "grafana-admin-token"
    );
    assert_eq!(token.spec.service_account.role, "Viewer");
    assert_eq!(token.spec.service_account.seconds_to_live, None);
    let basic: Grafana = doc_example("generator-grafana-basicauth.yaml", "Grafana");
    let basic = basic.spec.auth.basic.expect("basic");
    assert_eq!(basic.username, "admin");
    assert_eq!(basic.password.name, "grafana-basic-auth");

    let mfa: Mfa = doc_example("generator-mfa.yaml", "MFA");
    assert_eq!(
        (mfa.spec.secret.name.as_str(), mfa.spec.secret.key.as_str()),
        ("secret", "token")
    );
    assert_eq!((mfa.spec.length, mfa.spec.time_period), (None, None));

    let quay: QuayAccessToken = doc_example("generator-quay.yaml", "QuayAccessToken");
    assert_eq!(
        quay.spec.robot_account,
        "quay_user_or_org+robot_account_name"
    );
    assert_eq!(
        quay.spec.service_account_ref.namespace.as_deref(),
        Some("default")
    );

    let cs: CloudsmithAccessToken =
        doc_example("generator-cloudsmith.yaml", "CloudsmithAccessToken");
    assert_eq!(cs.spec.org_slug, "my-organization");
    assert_eq!(
        cs.spec.api_url, None,
        "the snippet's apiHost is not a field"
    );
}

// ---------------------------------------------------------------------------------------------
// Defaults, enums and helpers

#[test]
fn a_generator_without_spec_reads_as_its_default_spec() {
    let password: Password = serde_json::from_value(json!({
        "apiVersion": GENERATOR_API_VERSION,
        "kind": "Password",
        "metadata": {"name": "p", "namespace": "n"},
    }))
    .expect("parses without spec");
    assert_eq!(password.spec, PasswordSpec::default());
    assert_eq!(password.spec.length, 24);
    // A spec written as `{}` or `null` reads the same, and serializes as the apiserver stores it.
    for spec in [json!({}), Value::Null] {
        let p: Password = serde_json::from_value(json!({
            "apiVersion": GENERATOR_API_VERSION,
            "kind": "Password",
            "metadata": {"name": "p"},
            "spec": spec,
        }))
        .expect("parses");
        assert_eq!(p.spec, PasswordSpec::default());
    }
    assert_eq!(
        serde_json::to_value(PasswordSpec::default()).expect("json"),
        json!({"length": 24, "noUpper": false, "allowRepeat": false, "encoding": "raw"})
    );
    let uuid: Uuid = serde_saphyr::from_str(
        "apiVersion: generators.external-secrets.io/v1alpha1\nkind: UUID\nmetadata:\n  name: u\n",
    )
    .expect("YAML without spec");
    assert_eq!(uuid.spec, UuidSpec {});
    let webhook: Webhook = serde_json::from_value(json!({
        "apiVersion": GENERATOR_API_VERSION, "kind": "Webhook", "metadata": {"name": "w"},
    }))
    .expect("parses");
    assert_eq!(webhook.spec, WebhookSpec::default());
    let vault: VaultDynamicSecret = serde_json::from_value(json!({
        "apiVersion": GENERATOR_API_VERSION, "kind": "VaultDynamicSecret", "metadata": {"name": "v"},
    }))
    .expect("parses");
    assert_eq!(vault.spec, VaultDynamicSecretSpec::default());
    assert_eq!(vault.spec.result_type, VaultDynamicSecretResultType::Data);
    let beyondtrust: BeyondtrustWorkloadCredentialsDynamicSecret = serde_json::from_value(json!({
        "apiVersion": GENERATOR_API_VERSION,
        "kind": "BeyondtrustWorkloadCredentialsDynamicSecret",
        "metadata": {"name": "b"},
        "spec": {"provider": {
            "auth": {"apikey": {"token": {"name": "bt", "key": "token"}}},
            "server": {"apiUrl": "https://api.beyondtrust.io/siie", "siteId": "a1b2"},
            "folderPath": "production/aws-temp"
        }},
    }))
    .expect("parses");
    assert_eq!(
        beyondtrust.spec.provider.folder_path.as_deref(),
        Some("production/aws-temp")
    );
    assert_eq!(beyondtrust.spec.provider.auth.apikey.token.key, "token");
}

#[test]
fn values_outside_esos_enums_are_rejected() {
    let parse = |kind: &str, spec: Value| {
        let object = json!({
            "apiVersion": GENERATOR_API_VERSION, "kind": kind, "metadata": {"name": "x"}, "spec": spec,
        });
        match kind {
            "Password" => serde_json::from_value::<Password>(object).map(|_| ()),
            "SSHKey" => serde_json::from_value::<SshKey>(object).map(|_| ()),
            "VaultDynamicSecret" => {
                serde_json::from_value::<VaultDynamicSecret>(object).map(|_| ())
            }
            "ACRAccessToken" => serde_json::from_value::<AcrAccessToken>(object).map(|_| ()),
            "GitlabDeployToken" => serde_json::from_value::<GitlabDeployToken>(object).map(|_| ()),
            "ClusterGenerator" => serde_json::from_value::<ClusterGenerator>(object).map(|_| ()),
            other => panic!("{other}"),
        }
    };
    assert!(parse("Password", json!({"encoding": "base64url"})).is_ok());
    assert!(parse("Password", json!({"encoding": "HEX"})).is_err());
    assert!(parse("SSHKey", json!({"keyType": "ed25519"})).is_ok());
    assert!(parse("SSHKey", json!({"keyType": "dsa"})).is_err());
    let vault = |result_type: &str| json!({"path": "p", "provider": {"server": "s"}, "resultType": result_type});
    assert!(parse("VaultDynamicSecret", vault("Raw")).is_ok());
    assert!(parse("VaultDynamicSecret", vault("data")).is_err());
    let acr = |env: &str| json!({"registry": "r", "auth": {}, "environmentType": env});
    assert!(parse("ACRAccessToken", acr("AzureStackCloud")).is_ok());
    assert!(parse("ACRAccessToken", acr("AzureCloud")).is_err());
    let gitlab = |scope: &str| {
        json!({"projectID": "1", "name": "n", "scopes": [scope],
               "auth": {"token": {"secretRef": {"name": "t", "key": "token"}}}})
    };
    assert!(parse("GitlabDeployToken", gitlab("write_package_registry")).is_ok());
    assert!(parse("GitlabDeployToken", gitlab("api")).is_err());
    let cluster = |kind: &str| json!({"kind": kind, "generator": {"uuidSpec": {}}});
    assert!(parse("ClusterGenerator", cluster("UUID")).is_ok());
    assert!(parse("ClusterGenerator", cluster("ClusterGenerator")).is_err());
    assert!(parse("ClusterGenerator", cluster("Uuid")).is_err());
}

#[test]
fn a_cluster_generator_stands_for_the_namespaced_generator_of_its_kind() {
    let cg: ClusterGenerator = serde_json::from_value(json!({
        "apiVersion": GENERATOR_API_VERSION,
        "kind": "ClusterGenerator",
        "metadata": {"name": "vault"},
        "spec": {"kind": "VaultDynamicSecret", "generator": {"vaultDynamicSecretSpec": {
            "path": "database/creds/app", "provider": {"server": "https://vault.example.com"}
        }}},
    }))
    .expect("parses");
    let object = cg
        .spec
        .to_generator_object()
        .expect("the kind's spec is set");
    assert_eq!(object["apiVersion"], GENERATOR_API_VERSION);
    assert_eq!(object["kind"], "VaultDynamicSecret");
    assert!(
        object.get("metadata").is_none(),
        "ESO's virtual object has no metadata"
    );
    let spec: VaultDynamicSecretSpec =
        serde_json::from_value(object["spec"].clone()).expect("the namespaced spec");
    assert_eq!(spec.path, "database/creds/app");
    assert_eq!(spec.result_type, VaultDynamicSecretResultType::Data);
    assert_eq!(spec.provider.version, VaultKvVersion::V2);
    assert_eq!(
        cg.spec
            .generator
            .spec_json(GeneratorKind::VaultDynamicSecret)
            .as_ref(),
        Some(&object["spec"])
    );

    // The kind and the set field disagree: ESO's "when kind is X, XSpec must be set".
    let mismatch: ClusterGenerator = serde_json::from_value(json!({
        "apiVersion": GENERATOR_API_VERSION,
        "kind": "ClusterGenerator",
        "metadata": {"name": "m"},
        "spec": {"kind": "Password", "generator": {"sshKeySpec": {}}},
    }))
    .expect("parses");
    assert_eq!(mismatch.spec.to_generator_object(), None);
    assert_eq!(
        mismatch.spec.generator.spec_json(GeneratorKind::SshKey),
        Some(json!({"keyType": "rsa"}))
    );
}

#[test]
fn a_generator_state_as_esos_controller_writes_it() {
    let stored = read_json("eso-v2.9.0-docs-stored.json");
    let stored = &stored["generators-minimal.yaml"]["GeneratorState/gen-grafana-app-abcde"];
    let gs: GeneratorState = serde_json::from_value(json!({
        "apiVersion": GENERATOR_API_VERSION,
        "kind": "GeneratorState",
        "metadata": {
            "name": "gen-grafana-app-abcde",
            "namespace": "app",
            "labels": {LABEL_GENERATOR_STATE_OWNER_KEY: "0123abcd"},
            "finalizers": [FINALIZER_GENERATOR_STATE],
        },
        "spec": stored["spec"],
        "status": stored["status"],
    }))
    .expect("parses");
    assert!(gs.spec.garbage_collection_deadline.is_some());
    assert_eq!(
        gs.spec.resource, stored["spec"]["resource"],
        "kept verbatim"
    );
    assert_eq!(gs.spec.resource["kind"], "Grafana");
    let state: GrafanaServiceAccountTokenState =
        serde_json::from_value(gs.spec.state.clone()).expect("Grafana's state");
    assert_eq!(state.service_account.id, Some(7));
    assert_eq!(state.service_account.token_id, Some(12));
    assert_eq!(
        serde_json::to_value(&state).expect("json"),
        stored["spec"]["state"]
    );
    let status = gs.status.as_ref().expect("status");
    assert_eq!(status.conditions[0].type_, "Ready");
    assert_eq!(status.conditions[0].reason.as_deref(), Some("Created"));
    assert_eq!(
        LABEL_GENERATOR_STATE_OWNER_KEY,
        "generators.external-secrets.io/owner-key"
    );
    assert_eq!(
        FINALIZER_GENERATOR_STATE,
        "generatorstate.externalsecrets.io/finalizer"
    );
    // resource and state are required.
    assert!(
        serde_json::from_value::<GeneratorState>(json!({
            "apiVersion": GENERATOR_API_VERSION, "kind": "GeneratorState",
            "metadata": {"name": "x"}, "spec": {"resource": {}},
        }))
        .is_err()
    );
}
