//! Apply-time validation without a webhook: on a real kube-apiserver with `infra/crds/`
//! installed, the manifests ESO v2.9.0 refuses at `kubectl apply` (through its admission webhook
//! or its CRDs' own rules) are refused, with ESO's message; the seed manifests, ESO's docs
//! examples, the demo's manifests and the edge cases ESO accepts still apply.
//!
//! The apiserver is a private one (the stack's `kas` binary on free ports, in a data directory of
//! its own, `harness::apiserver`), not the local stack's: CRDs installed here leave the stack's
//! alone.

use std::path::PathBuf;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope, pinned_kind};
use secret_sync_tests::apiserver::Apiserver;
use secret_sync_tests::{FIELD_MANAGER, ensure_namespace, install_crds, repo_root};
use serde_json::{Value, json};

/// The namespace the namespaced objects of this test go to, unless they name their own.
const NS: &str = "validation";

// ---------------------------------------------------------------------------------------------
// Applying

async fn api_for(client: &kube::Client, object: &Value) -> Api<DynamicObject> {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps): (ApiResource, _) = pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("{kind} is not served: {e}"));
    match caps.scope {
        Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            object["metadata"]["namespace"].as_str().unwrap_or(NS),
            &resource,
        ),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    }
}

/// Server-side apply with `fieldValidation=Strict`, as `kubectl apply --server-side` does.
async fn apply(client: &kube::Client, object: &Value) -> Result<DynamicObject, kube::Error> {
    let name = object["metadata"]["name"].as_str().expect("name");
    let params = PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict();
    api_for(client, object)
        .await
        .patch(name, &params, &Patch::Apply(object))
        .await
}

/// A create (POST), as `kubectl create` does.
async fn create(client: &kube::Client, object: &Value) -> Result<DynamicObject, kube::Error> {
    let object: DynamicObject = serde_json::from_value(object.clone()).expect("object");
    api_for(client, &serde_json::to_value(&object).expect("json"))
        .await
        .create(&PostParams::default(), &object)
        .await
}

fn object(api_version: &str, kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": { "name": name, "namespace": NS },
        "spec": spec
    })
}

fn es(name: &str, spec: Value) -> Value {
    object("external-secrets.io/v1", "ExternalSecret", name, spec)
}

fn ss(name: &str, spec: Value) -> Value {
    object("external-secrets.io/v1", "SecretStore", name, spec)
}

fn css(name: &str, spec: Value) -> Value {
    let mut o = object("external-secrets.io/v1", "ClusterSecretStore", name, spec);
    o["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("namespace");
    o
}

fn ps(name: &str, extra: Value) -> Value {
    let mut spec = json!({
        "secretStoreRefs": [{ "name": "aws" }],
        "selector": { "secret": { "name": "source" } }
    });
    for (k, v) in extra.as_object().expect("object") {
        spec[k] = v.clone();
    }
    object("external-secrets.io/v1alpha1", "PushSecret", name, spec)
}

/// One data entry, so that an ExternalSecret's other fields are what a case is about.
fn data() -> Value {
    json!([{ "secretKey": "k", "remoteRef": { "key": "remote" } }])
}

fn with_data(mut spec: Value) -> Value {
    spec["data"] = data();
    spec
}

fn vault(extra: Value) -> Value {
    let mut vault = json!({ "server": "https://vault.example.com", "path": "secret" });
    for (k, v) in extra.as_object().expect("object") {
        vault[k] = v.clone();
    }
    json!({ "provider": { "vault": vault } })
}

fn aws(extra: Value) -> Value {
    let mut aws = json!({ "service": "SecretsManager", "region": "us-east-1" });
    for (k, v) in extra.as_object().expect("object") {
        aws[k] = v.clone();
    }
    json!({ "provider": { "aws": aws } })
}

fn fake() -> Value {
    json!({ "provider": { "fake": { "data": [{ "key": "k", "value": "v" }] } } })
}

fn key_ref() -> Value {
    json!({ "name": "creds", "key": "k" })
}

// ---------------------------------------------------------------------------------------------
// What ESO refuses

/// A manifest ESO refuses at apply, where the apiserver reports it, and what it says (ESO's
/// message, or the apiserver's for rules that are ESO's CRD's own).
struct Refused {
    case: String,
    object: Value,
    field: &'static str,
    message: &'static str,
}

fn refused(
    case: impl Into<String>,
    object: Value,
    field: &'static str,
    message: &'static str,
) -> Refused {
    Refused {
        case: case.into(),
        object,
        field,
        message,
    }
}

const NO_DATA: &str = "either data or dataFrom should be specified";
const DELETE_UNOWNED: &str = "deletionPolicy=Delete must not be used when the controller doesn't own the secret. Please set creationPolicy=Owner";
const MERGE_NONE: &str = "deletionPolicy=Merge must not be used with creationPolicy=None. There is no Secret to merge with";
const SA_ANNOTATIONS: &str = "template.type=\"kubernetes.io/service-account-token\" with templateFrom target=\"Annotations\" is not allowed";
const TOO_MANY_SOURCES: &str = "extract, find, or generatorRef cannot be set at the same time";
const NO_SOURCE: &str = "either extract, find, or sourceRef must be set to dataFrom";
const ES_DURATION: &str = "refreshInterval must be a Go duration such as \"1h0m0s\", \"30m\" or \"0s\" (units ns, us, ms, s, m, h)";

fn refused_external_secrets() -> Vec<Refused> {
    let generator = json!({ "generatorRef": { "kind": "Password", "name": "pw" } });
    let extract = json!({ "key": "remote" });
    let find = json!({ "name": { "regexp": "^db-" } });
    let sa_template = |target: &str| {
        with_data(json!({ "target": { "template": {
            "type": "kubernetes.io/service-account-token",
            "templateFrom": [{ "literal": "a: b", "target": target }]
        } } }))
    };
    vec![
        refused(
            "no data and no dataFrom",
            es("no-data", json!({ "secretStoreRef": { "name": "aws" } })),
            "spec",
            NO_DATA,
        ),
        refused(
            "empty data and dataFrom",
            es("empty-data", json!({ "data": [], "dataFrom": [] })),
            "spec",
            NO_DATA,
        ),
        refused(
            "deletionPolicy Delete with creationPolicy Merge",
            es(
                "delete-merge",
                with_data(
                    json!({ "target": { "creationPolicy": "Merge", "deletionPolicy": "Delete" } }),
                ),
            ),
            "spec.target",
            DELETE_UNOWNED,
        ),
        refused(
            "deletionPolicy Delete with creationPolicy None",
            es(
                "delete-none",
                with_data(
                    json!({ "target": { "creationPolicy": "None", "deletionPolicy": "Delete" } }),
                ),
            ),
            "spec.target",
            DELETE_UNOWNED,
        ),
        refused(
            "deletionPolicy Delete with creationPolicy CreateOrMerge",
            es(
                "delete-create-or-merge",
                with_data(
                    json!({ "target": { "creationPolicy": "CreateOrMerge", "deletionPolicy": "Delete" } }),
                ),
            ),
            "spec.target",
            DELETE_UNOWNED,
        ),
        refused(
            "deletionPolicy Merge with creationPolicy None",
            es(
                "merge-none",
                with_data(
                    json!({ "target": { "creationPolicy": "None", "deletionPolicy": "Merge" } }),
                ),
            ),
            "spec.target",
            MERGE_NONE,
        ),
        refused(
            "a bootstrap token template",
            es(
                "bootstrap-token",
                with_data(
                    json!({ "target": { "template": { "type": "bootstrap.kubernetes.io/token" } } }),
                ),
            ),
            "spec.target",
            "template.type=\"bootstrap.kubernetes.io/token\" is not allowed",
        ),
        refused(
            "a service-account token template naming its ServiceAccount",
            es(
                "sa-token-annotation",
                with_data(json!({ "target": { "template": {
                    "type": "kubernetes.io/service-account-token",
                    "metadata": { "annotations": { "kubernetes.io/service-account.name": "admin" } }
                } } })),
            ),
            "spec.target",
            "template.type=\"kubernetes.io/service-account-token\" with annotation \"kubernetes.io/service-account.name\" is not allowed",
        ),
        refused(
            "a service-account token template with templateFrom into Annotations",
            es("sa-token-template-from", sa_template("Annotations")),
            "spec.target",
            SA_ANNOTATIONS,
        ),
        refused(
            "a service-account token template with templateFrom into annotations",
            es("sa-token-template-from-lower", sa_template("annotations")),
            "spec.target",
            SA_ANNOTATIONS,
        ),
        refused(
            "dataFrom with extract and find",
            es(
                "extract-find",
                json!({ "dataFrom": [{ "extract": extract, "find": find }] }),
            ),
            "spec.dataFrom[0]",
            TOO_MANY_SOURCES,
        ),
        refused(
            "dataFrom with extract and a generator",
            es(
                "extract-generator",
                json!({ "dataFrom": [{ "extract": extract, "sourceRef": generator }] }),
            ),
            "spec.dataFrom[0]",
            TOO_MANY_SOURCES,
        ),
        refused(
            "dataFrom with find and a generator",
            es(
                "find-generator",
                json!({ "dataFrom": [{ "find": find, "sourceRef": generator }] }),
            ),
            "spec.dataFrom[0]",
            TOO_MANY_SOURCES,
        ),
        refused(
            "a second dataFrom entry with nothing to read",
            es(
                "no-source",
                json!({ "dataFrom": [
                    { "extract": extract },
                    { "rewrite": [{ "regexp": { "source": "a", "target": "b" } }] }
                ] }),
            ),
            "spec.dataFrom[1]",
            NO_SOURCE,
        ),
        refused(
            "an empty dataFrom sourceRef",
            es(
                "empty-source-ref",
                json!({ "dataFrom": [{ "sourceRef": {} }] }),
            ),
            "spec.dataFrom[0].sourceRef",
            "generatorRef or storeRef must be set when using sourceRef in dataFrom",
        ),
        refused(
            "a dataFrom sourceRef with a store and a generator",
            es(
                "store-and-generator",
                json!({ "dataFrom": [{ "sourceRef": {
                    "storeRef": { "name": "aws" },
                    "generatorRef": { "kind": "Password", "name": "pw" }
                } }] }),
            ),
            "spec.dataFrom[0].sourceRef",
            "Too many: 2: must have at most 1 item",
        ),
        refused(
            "a refreshInterval in days",
            es(
                "interval-days",
                with_data(json!({ "refreshInterval": "1d" })),
            ),
            "spec.refreshInterval",
            ES_DURATION,
        ),
        refused(
            "a refreshInterval with a space",
            es(
                "interval-space",
                with_data(json!({ "refreshInterval": "1h 30m" })),
            ),
            "spec.refreshInterval",
            ES_DURATION,
        ),
        refused(
            "a refreshInterval that overflows",
            es(
                "interval-overflow",
                with_data(json!({ "refreshInterval": "9999999999h" })),
            ),
            "spec.refreshInterval",
            ES_DURATION,
        ),
        refused(
            "a sync window duration that is no Go duration",
            es(
                "window-duration",
                with_data(json!({ "syncWindows": { "kind": "allow", "windows": [
                    { "schedule": "@daily", "duration": "eight hours" }
                ] } })),
            ),
            "spec.syncWindows.windows[0]",
            "duration must be a Go duration such as \"8h\" or \"30m\"",
        ),
        refused(
            "a store kind ESO does not know",
            es(
                "store-kind",
                with_data(json!({ "secretStoreRef": { "name": "aws", "kind": "Provider" } })),
            ),
            "spec.secretStoreRef.kind",
            "Unsupported value: \"Provider\"",
        ),
        refused(
            "a dataFrom store kind ESO does not know",
            es(
                "source-store-kind",
                json!({ "dataFrom": [{ "extract": extract, "sourceRef": {
                    "storeRef": { "name": "aws", "kind": "ClusterProvider" }
                } }] }),
            ),
            "spec.dataFrom[0].sourceRef.storeRef.kind",
            "Unsupported value: \"ClusterProvider\"",
        ),
        refused(
            "a generator kind ESO does not know",
            es(
                "generator-kind",
                json!({ "dataFrom": [{ "sourceRef": {
                    "generatorRef": { "kind": "Dice", "name": "d" }
                } }] }),
            ),
            "spec.dataFrom[0].sourceRef.generatorRef.kind",
            "Unsupported value: \"Dice\"",
        ),
    ]
}

fn refused_stores() -> Vec<Refused> {
    let mut cases = vec![
        refused(
            "two providers",
            ss(
                "two-providers",
                json!({ "provider": {
                    "fake": { "data": [] },
                    "gcpsm": { "projectID": "p" }
                } }),
            ),
            "spec.provider",
            "Too many: 2: must have at most 1 item",
        ),
        refused(
            "two providers secret-sync serves",
            ss(
                "two-known-providers",
                json!({ "provider": {
                    "fake": { "data": [] },
                    "aws": { "service": "SecretsManager", "region": "us-east-1" }
                } }),
            ),
            "spec.provider",
            "Too many: 2: must have at most 1 item",
        ),
        refused(
            "no provider",
            ss("no-provider", json!({ "provider": {} })),
            "spec.provider",
            "should have at least 1 properties",
        ),
        refused(
            "reserved AWS session tags",
            ss(
                "reserved-tags",
                aws(json!({
                    "sessionTagsPolicy": "Custom",
                    "customSessionTags": { "team": "a", "esoStoreName": "x" }
                })),
            ),
            "spec.provider.aws.customSessionTags",
            "customSessionTags cannot contain automatically injected reserved keys: esoNamespace, esoStoreName, esoStoreKind",
        ),
        refused(
            "a recovery window below 7 days",
            ss(
                "recovery-window",
                aws(json!({ "secretsManager": { "recoveryWindowInDays": 3 } })),
            ),
            "spec.provider.aws.secretsManager",
            "invalid DeleteSecretInput: RecoveryWindowInDays must be between 7 and 30 days",
        ),
        refused(
            "a recovery window with forced deletion",
            ss(
                "recovery-window-forced",
                aws(json!({ "secretsManager": {
                    "recoveryWindowInDays": 7, "forceDeleteWithoutRecovery": true
                } })),
            ),
            "spec.provider.aws.secretsManager",
            "invalid DeleteSecretInput: ForceDeleteWithoutRecovery conflicts with RecoveryWindowInDays",
        ),
        refused(
            "check-and-set on KV v1",
            ss(
                "cas-v1",
                vault(json!({ "version": "v1", "checkAndSet": { "required": true } })),
            ),
            "spec.provider.vault",
            "checkAndSet is not supported with Vault KV version v1",
        ),
        refused(
            "a client certificate without its key",
            ss(
                "tls-half",
                vault(json!({ "tls": { "certSecretRef": key_ref() } })),
            ),
            "spec.provider.vault.tls",
            "when provided, both ClientTLS.ClientCert and ClientTLS.SecretRef should be provided",
        ),
        refused(
            "AppRole without a role ID",
            ss(
                "approle-no-role",
                vault(json!({ "auth": { "appRole": { "secretRef": key_ref() } } })),
            ),
            "spec.provider.vault.auth.appRole",
            "invalid Auth.AppRole: neither `roleId` nor `roleRef` was supplied",
        ),
        refused(
            "JWT without a token source",
            ss(
                "jwt-no-token",
                vault(json!({ "auth": { "jwt": { "role": "app" } } })),
            ),
            "spec.provider.vault.auth.jwt",
            "neither `secretRef` nor `kubernetesServiceAccountToken` was supplied as token source for jwt authentication",
        ),
        refused(
            "a fake entry without a key",
            ss(
                "fake-no-key",
                json!({ "provider": { "fake": { "data": [{ "key": "", "value": "v" }] } } }),
            ),
            "spec.provider.fake.data[0]",
            "key must be set in data",
        ),
        refused(
            "a fake entry without a value",
            ss(
                "fake-no-value",
                json!({ "provider": { "fake": { "data": [
                    { "key": "a", "value": "v" }, { "key": "b" }
                ] } } }),
            ),
            "spec.provider.fake.data[1]",
            "at least one value must be set in data",
        ),
    ];
    for (kind, make) in [
        ("SecretStore", ss as fn(&str, Value) -> Value),
        ("ClusterSecretStore", css as fn(&str, Value) -> Value),
    ] {
        let with_interval = |interval: Value| {
            let mut spec = fake();
            spec["refreshInterval"] = interval;
            spec
        };
        let prefix = kind.to_lowercase();
        cases.extend([
            refused(
                format!("a negative store refreshInterval ({kind})"),
                make(
                    &format!("{prefix}-interval-negative"),
                    with_interval(json!(-1)),
                ),
                "spec.refreshInterval",
                "invalid refreshInterval -1: must not be negative",
            ),
            refused(
                format!("a store refreshInterval of seconds as a string ({kind})"),
                make(
                    &format!("{prefix}-interval-string"),
                    with_interval(json!("300")),
                ),
                "spec.refreshInterval",
                "invalid refreshInterval \"300\": time: invalid duration \"300\"",
            ),
            refused(
                format!("an empty store refreshInterval ({kind})"),
                make(
                    &format!("{prefix}-interval-empty"),
                    with_interval(json!("")),
                ),
                "spec.refreshInterval",
                "invalid refreshInterval \"\": time: invalid duration \"\"",
            ),
            refused(
                format!("a negative store refreshInterval duration ({kind})"),
                make(
                    &format!("{prefix}-interval-negative-duration"),
                    with_interval(json!("-5m")),
                ),
                "spec.refreshInterval",
                "invalid refreshInterval \"-5m\": must not be negative",
            ),
        ]);
    }
    cases
}

fn refused_push_secrets() -> Vec<Refused> {
    vec![
        refused(
            "a dataTo store without name or labels",
            ps(
                "data-to-no-store",
                json!({ "dataTo": [{ "storeRef": { "kind": "SecretStore" } }] }),
            ),
            "spec.dataTo[0]",
            "storeRef must specify either name or labelSelector",
        ),
        refused(
            "a dataTo remoteKey with rewrites",
            ps(
                "data-to-remote-key-rewrite",
                json!({ "dataTo": [{
                    "storeRef": { "name": "aws" }, "remoteKey": "bundle",
                    "rewrite": [{ "regexp": { "source": "^db_", "target": "" } }]
                }] }),
            ),
            "spec.dataTo[0]",
            "remoteKey and rewrite are mutually exclusive: rewrite is only supported in per-key mode (without remoteKey)",
        ),
        refused(
            "a dataTo rewrite with regexp and transform",
            ps(
                "data-to-rewrite-both",
                json!({ "dataTo": [{ "storeRef": { "name": "aws" }, "rewrite": [{
                    "regexp": { "source": "a", "target": "b" },
                    "transform": { "template": "{{ .value }}" }
                }] }] }),
            ),
            "spec.dataTo[0].rewrite[0]",
            "exactly one of regexp or transform must be set",
        ),
        refused(
            "an empty dataTo rewrite",
            ps(
                "data-to-rewrite-empty",
                json!({ "dataTo": [{ "storeRef": { "name": "aws" }, "rewrite": [{}] }] }),
            ),
            "spec.dataTo[0].rewrite[0]",
            "exactly one of regexp or transform must be set",
        ),
    ]
}

/// Checks that `object` is refused by server-side apply and by create, naming `field` and saying
/// `message`. Returns what went wrong, if anything.
async fn check_refused(client: &kube::Client, case: &Refused) -> Option<String> {
    for (how, result) in [
        ("apply", apply(client, &case.object).await),
        ("create", create(client, &case.object).await),
    ] {
        let status = match result {
            Ok(_) => return Some(format!("{}: {how} was accepted", case.case)),
            Err(kube::Error::Api(status)) => status,
            Err(e) => return Some(format!("{}: {how}: not an API error: {e}", case.case)),
        };
        let names_field = status.message.contains(&format!("{}:", case.field));
        if status.code != 422 || !names_field || !status.message.contains(case.message) {
            return Some(format!(
                "{}: {how} was refused with {} {:?}; expected 422 naming {}: and saying {:?}",
                case.case, status.code, status.message, case.field, case.message
            ));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// What ESO accepts

/// The ExternalSecrets, stores and PushSecrets ESO v2.9.0 accepts at apply that sit next to a
/// refused case.
fn accepted_edge_cases() -> Vec<(&'static str, Value)> {
    let extract = json!({ "key": "remote" });
    vec![
        (
            "deletionPolicy Delete with creationPolicy Orphan",
            es(
                "delete-orphan",
                with_data(
                    json!({ "target": { "creationPolicy": "Orphan", "deletionPolicy": "Delete" } }),
                ),
            ),
        ),
        (
            "deletionPolicy Delete with creationPolicy Owner",
            es(
                "delete-owner",
                with_data(
                    json!({ "target": { "creationPolicy": "Owner", "deletionPolicy": "Delete" } }),
                ),
            ),
        ),
        (
            "deletionPolicy Merge with creationPolicy Merge",
            es(
                "merge-merge",
                with_data(
                    json!({ "target": { "creationPolicy": "Merge", "deletionPolicy": "Merge" } }),
                ),
            ),
        ),
        (
            "deletionPolicy Retain with creationPolicy None",
            es(
                "retain-none",
                with_data(json!({ "target": { "creationPolicy": "None" } })),
            ),
        ),
        (
            "a data entry's sourceRef.generatorRef (ESO's webhook lets it through)",
            es(
                "data-generator",
                json!({ "data": [{
                    "secretKey": "k", "remoteRef": { "key": "remote" },
                    "sourceRef": { "generatorRef": { "kind": "Password", "name": "pw" } }
                }] }),
            ),
        ),
        (
            "a duplicate secretKey under deletionPolicy Delete",
            es(
                "duplicate-delete",
                json!({
                    "target": { "deletionPolicy": "Delete" },
                    "data": [
                        { "secretKey": "k", "remoteRef": { "key": "a" } },
                        { "secretKey": "k", "remoteRef": { "key": "b" } }
                    ]
                }),
            ),
        ),
        (
            "a dataFrom entry with only sourceRef.storeRef",
            es(
                "store-only",
                json!({ "dataFrom": [{ "sourceRef": { "storeRef": { "name": "aws" } } }] }),
            ),
        ),
        (
            "dataFrom extract from another store, find, and a generator in separate entries",
            es(
                "three-sources",
                json!({ "dataFrom": [
                    { "extract": extract, "sourceRef": { "storeRef": { "name": "vault", "kind": "ClusterSecretStore" } } },
                    { "find": { "tags": { "team": "a" } } },
                    { "sourceRef": { "generatorRef": { "kind": "ClusterGenerator", "name": "pw" } } }
                ] }),
            ),
        ),
        (
            "refreshInterval forms Go accepts",
            es(
                "interval-forms",
                with_data(json!({ "refreshInterval": "1h30m0.5s" })),
            ),
        ),
        (
            "refreshInterval 0",
            es(
                "interval-zero",
                with_data(json!({ "refreshInterval": "0" })),
            ),
        ),
        (
            "a negative refreshInterval (no periodic refresh)",
            es(
                "interval-negative",
                with_data(json!({ "refreshInterval": "-1m" })),
            ),
        ),
        (
            "refreshInterval in microseconds",
            es(
                "interval-micro",
                with_data(json!({ "refreshInterval": "1500µs" })),
            ),
        ),
        (
            "a service-account token template without its ServiceAccount",
            es(
                "sa-token",
                with_data(json!({ "target": { "template": {
                    "type": "kubernetes.io/service-account-token",
                    "metadata": { "annotations": { "team": "a" } },
                    "templateFrom": [{ "literal": "a: b", "target": "Labels" }]
                } } })),
            ),
        ),
        (
            "templateFrom into annotations of an Opaque Secret",
            es(
                "annotations",
                with_data(json!({ "target": { "template": {
                    "type": "Opaque",
                    "templateFrom": [{ "literal": "a: b", "target": "Annotations" }]
                } } })),
            ),
        ),
        (
            "templateFrom into a path of a ConfigMap target",
            es(
                "manifest-target",
                with_data(json!({ "target": {
                    "manifest": { "apiVersion": "v1", "kind": "ConfigMap" },
                    "template": { "templateFrom": [{ "literal": "a: b", "target": "spec.config" }] }
                } })),
            ),
        ),
        (
            "sync windows with Go durations",
            es(
                "windows",
                with_data(json!({ "syncWindows": { "kind": "deny", "windows": [
                    { "schedule": "0 22 * * 1-5", "duration": "8h" },
                    { "schedule": "@every 1h", "duration": "90s" }
                ] } })),
            ),
        ),
        (
            "a store refreshInterval in seconds",
            ss("interval-seconds", {
                let mut s = fake();
                s["refreshInterval"] = json!(300);
                s
            }),
        ),
        (
            "a store refreshInterval of 0",
            ss("interval-zero", {
                let mut s = fake();
                s["refreshInterval"] = json!(0);
                s
            }),
        ),
        (
            "a store refreshInterval as a duration",
            css("interval-duration", {
                let mut s = fake();
                s["refreshInterval"] = json!("5m");
                s
            }),
        ),
        (
            "a store refreshInterval of -0s (zero)",
            ss("interval-minus-zero", {
                let mut s = fake();
                s["refreshInterval"] = json!("-0s");
                s
            }),
        ),
        (
            "a provider ESO has and secret-sync keeps as written",
            ss(
                "gcpsm",
                json!({ "provider": { "gcpsm": { "projectID": "p" } } }),
            ),
        ),
        (
            "AWS custom session tags without reserved keys",
            ss(
                "custom-tags",
                aws(json!({ "sessionTagsPolicy": "Custom", "customSessionTags": { "team": "a" } })),
            ),
        ),
        (
            "a recovery window of 30 days",
            ss(
                "recovery-window-ok",
                aws(json!({ "secretsManager": { "recoveryWindowInDays": 30 } })),
            ),
        ),
        (
            "forced deletion without a recovery window",
            ss(
                "forced-delete",
                aws(
                    json!({ "secretsManager": { "forceDeleteWithoutRecovery": true, "recoveryWindowInDays": 0 } }),
                ),
            ),
        ),
        (
            "check-and-set on KV v2, mutual TLS, AppRole by reference, JWT from a ServiceAccount",
            ss(
                "vault-ok",
                vault(json!({
                    "checkAndSet": { "required": true },
                    "tls": { "certSecretRef": key_ref(), "keySecretRef": key_ref() },
                    "auth": { "appRole": { "roleRef": key_ref(), "secretRef": key_ref() } }
                })),
            ),
        ),
        (
            "JWT from a ServiceAccount token",
            ss(
                "vault-jwt",
                vault(json!({ "auth": { "jwt": { "role": "app",
                    "kubernetesServiceAccountToken": { "serviceAccountRef": { "name": "app" } } } } })),
            ),
        ),
        (
            "a fake entry with ESO's old valueMap",
            ss(
                "fake-value-map",
                json!({ "provider": { "fake": { "data": [{ "key": "k", "valueMap": { "a": "b" } }] } } }),
            ),
        ),
        (
            "a dataTo remoteKey with an empty rewrite list",
            ps(
                "data-to-remote-key",
                json!({ "dataTo": [{ "storeRef": { "name": "aws" }, "remoteKey": "bundle", "rewrite": [] }] }),
            ),
        ),
        (
            "dataTo by labels, with a rewrite",
            ps(
                "data-to-labels",
                json!({ "dataTo": [{
                    "storeRef": { "labelSelector": { "matchLabels": { "team": "a" } } },
                    "rewrite": [{ "transform": { "template": "app/{{ .value }}" } }]
                }] }),
            ),
        ),
        (
            "a ClusterExternalSecret whose ExternalSecret ESO's webhook would refuse (ESO runs none for it)",
            json!({
                "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
                "metadata": { "name": "unchecked" },
                "spec": {
                    "namespaceSelectors": [{ "matchLabels": { "none": "none" } }],
                    "externalSecretSpec": {
                        "target": { "creationPolicy": "Merge", "deletionPolicy": "Delete" },
                        "refreshInterval": "1d"
                    }
                }
            }),
        ),
        (
            "a VaultDynamicSecret whose provider a store could not have (ESO runs no webhook for generators)",
            json!({
                "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "VaultDynamicSecret",
                "metadata": { "name": "unchecked", "namespace": NS },
                "spec": {
                    "path": "/pki/issue/example",
                    "provider": { "server": "https://vault.example.com",
                        "auth": { "jwt": { "role": "app" } } }
                }
            }),
        ),
    ]
}

/// What ESO's webhook refuses and these CRDs accept: each is the engine's to refuse (the
/// ExternalSecret gets Ready=False), because CEL cannot say it within the apiserver's cost budget
/// or cannot see what it needs. Kept here so that a rule added later moves its case to the
/// refused ones.
fn left_to_the_engine() -> Vec<(&'static str, Value)> {
    vec![
        (
            // ESO refuses it; secret-sync renders the template alone (a deliberate difference).
            "a template alone, without data or dataFrom",
            es(
                "template-only",
                json!({ "target": { "template": { "data": { "k": "v" } } } }),
            ),
        ),
        (
            "a duplicate secretKey under deletionPolicy Retain (O(n²) over a list without maxItems)",
            es(
                "duplicate-retain",
                json!({ "data": [
                    { "secretKey": "k", "remoteRef": { "key": "a" } },
                    { "secretKey": "k", "remoteRef": { "key": "b" } }
                ] }),
            ),
        ),
        (
            "templateFrom into a Secret's type (a case-insensitive match per entry exceeds the budget)",
            es(
                "template-from-type",
                with_data(json!({ "target": { "template": {
                    "templateFrom": [{ "literal": "kubernetes.io/tls", "target": "type" }]
                } } })),
            ),
        ),
        (
            "a service-account token template with templateFrom into ANNOTATIONS (same budget)",
            es(
                "sa-token-upper",
                with_data(json!({ "target": { "template": {
                    "type": "kubernetes.io/service-account-token",
                    "templateFrom": [{ "literal": "a: b", "target": "ANNOTATIONS" }]
                } } })),
            ),
        ),
        (
            "a namespace regular expression that does not compile (CEL cannot test a pattern)",
            css(
                "bad-regex",
                json!({
                    "provider": { "fake": { "data": [] } },
                    "conditions": [{ "namespaceRegexes": ["("] }]
                }),
            ),
        ),
        (
            "a SecretStore credential in another namespace (CEL does not see the store's namespace)",
            ss(
                "foreign-namespace",
                vault(json!({ "auth": { "tokenSecretRef": {
                    "name": "token", "key": "t", "namespace": "elsewhere"
                } } })),
            ),
        ),
    ]
}

/// The documents of a YAML file (Jinja `{% raw %}` lines dropped), as JSON.
fn documents(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("{%"))
        .map(|l| format!("{l}\n"))
        .collect();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = repo_root().join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every manifest of the seed (`tests/fixtures/seed/`), of ESO's docs examples
/// (`shared/crd/tests/fixtures/eso-v2.9.0-docs/`, less the two ESO's own CRDs refuse: see that
/// directory's README; and `tests/fixtures/eso-v2.9.0-docs/`) and of the demo (`infra/local/demo`), by file.
fn manifests_users_write() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in yaml_files("tests/fixtures/seed") {
        for doc in documents(&path) {
            out.push((
                format!("seed/{}", path.file_name().expect("name").to_string_lossy()),
                doc,
            ));
        }
    }
    let invalid_under_esos_crds = ["generator-cloudsmith.yaml", "generator-gcr.yaml"];
    for path in yaml_files("shared/crd/tests/fixtures/eso-v2.9.0-docs") {
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if invalid_under_esos_crds.contains(&file.as_str()) {
            continue;
        }
        for doc in documents(&path) {
            out.push((format!("docs/{file}"), doc));
        }
    }
    // ESO's docs examples of the features of issue 15 (the Kubernetes provider, generic
    // targets, ClusterPushSecret), copied verbatim.
    // Less what ESO's own CRDs (or any apiserver) refuse too: see that directory's README.
    let placeholders = |doc: &Value| {
        doc["data"]["token"] == "...."
            || (doc["kind"] == "PushSecret" && doc["spec"].get("selector").is_none())
            || doc["spec"]["pushSecretSpec"]["selector"]
                .as_object()
                .is_some_and(|s| s.len() > 1)
    };
    for path in yaml_files("tests/fixtures/eso-v2.9.0-docs") {
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        for doc in documents(&path) {
            if !placeholders(&doc) {
                out.push((format!("docs/{file}"), doc));
            }
        }
    }
    // infra/local/demo applies these (the store's server is the stack's OpenBao there).
    for doc in [
        ss(
            "demo-aws",
            aws(json!({ "auth": { "secretRef": {
                "accessKeyIDSecretRef": { "name": "aws-credentials", "key": "access-key-id" },
                "secretAccessKeySecretRef": { "name": "aws-credentials", "key": "secret-access-key" }
            } } })),
        ),
        es(
            "demo-my-app-db-credentials",
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": { "name": "demo-aws", "kind": "SecretStore" },
                "target": { "name": "db-credentials", "creationPolicy": "Owner" },
                "data": [
                    { "secretKey": "username", "remoteRef": { "key": "demo/my-app/database", "property": "username" } },
                    { "secretKey": "password", "remoteRef": { "key": "demo/my-app/database", "property": "password" } }
                ]
            }),
        ),
        css(
            "demo-vault-backend",
            json!({ "provider": { "vault": {
                "server": "http://127.0.0.1:18200", "path": "secret", "version": "v2",
                "auth": { "tokenSecretRef": { "name": "bao-token", "key": "token", "namespace": "demo" } }
            } } }),
        ),
    ] {
        out.push(("infra/local/demo".to_owned(), doc));
    }
    out
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_refuses_what_eso_refuses_and_accepts_what_eso_accepts() {
    let server = Apiserver::start().await;
    let client = server.client().await;
    install_crds(&client).await;
    ensure_namespace(&client, NS).await;

    let mut problems = Vec::new();

    let refused: Vec<Refused> = refused_external_secrets()
        .into_iter()
        .chain(refused_stores())
        .chain(refused_push_secrets())
        .collect();
    for case in &refused {
        if let Some(problem) = check_refused(&client, case).await {
            problems.push(problem);
        }
    }

    let users = manifests_users_write();
    assert!(
        users.iter().filter(|(f, _)| f.starts_with("seed/")).count() == 6,
        "the six seed manifests are present"
    );
    for (_, manifest) in &users {
        if let Some(ns) = manifest["metadata"]["namespace"].as_str() {
            ensure_namespace(&client, ns).await;
        }
    }
    let accepted: Vec<(String, Value)> = users
        .into_iter()
        .chain(
            accepted_edge_cases()
                .into_iter()
                .chain(left_to_the_engine())
                .map(|(case, o)| (case.to_owned(), o)),
        )
        .collect();
    for (case, manifest) in &accepted {
        if let Err(e) = apply(&client, manifest).await {
            problems.push(format!(
                "{case}: {} {:?} was refused: {e}",
                manifest["kind"].as_str().unwrap_or_default(),
                manifest["metadata"]["name"].as_str().unwrap_or_default()
            ));
        }
    }

    assert!(
        problems.is_empty(),
        "{} of {} cases went wrong:\n{}",
        problems.len(),
        refused.len() + accepted.len(),
        problems.join("\n")
    );
    eprintln!(
        "{} manifests refused as ESO refuses them, {} applied as ESO applies them",
        refused.len(),
        accepted.len()
    );
}
