//! The generated CRDs install on a real kube-apiserver, are served, and accept the manifests ESO
//! users write today, with the apiserver's strict field validation: an unknown field anywhere in
//! a seed manifest fails the test.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope, pinned_kind};
use secret_sync_tests::cleanup::Cleanup;
use secret_sync_tests::{
    FIELD_MANAGER, Stack, ensure_namespace, install_crds, repo_root, scoped_namespace,
};
use serde_json::{Value, json};

const SEED_DIR: &str = "tests/fixtures/seed";

async fn api_for(client: &kube::Client, object: &Value) -> (Api<DynamicObject>, ApiResource) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("{kind} is not served: {e}"));
    let api = match (caps.scope, object["metadata"]["namespace"].as_str()) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    };
    (api, resource)
}

/// Server-side apply with `fieldValidation=Strict`, as `kubectl apply --server-side` would.
async fn apply(client: &kube::Client, object: &Value) -> Result<DynamicObject, kube::Error> {
    let (api, _) = api_for(client, object).await;
    let name = object["metadata"]["name"].as_str().expect("name");
    let params = PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict();
    api.patch(name, &params, &Patch::Apply(object)).await
}

fn seed_manifests() -> Vec<(String, Value)> {
    let dir = repo_root().join(SEED_DIR);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read seed");
            let value: Value =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (
                p.file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned(),
                value,
            )
        })
        .collect()
}

#[tokio::test]
async fn every_crd_is_established_and_served_under_esos_names() {
    let client = Stack::get().await.kube().await;
    let installed = install_crds(&client).await;
    let mut names: Vec<_> = installed
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    names.sort();
    let (generators, core): (Vec<_>, Vec<_>) = names
        .iter()
        .partition(|n| n.ends_with(".generators.external-secrets.io"));
    assert_eq!(
        core,
        [
            "clusterexternalsecrets.external-secrets.io",
            "clusterpushsecrets.external-secrets.io",
            "clustersecretstores.external-secrets.io",
            "externalsecrets.external-secrets.io",
            "pushsecrets.external-secrets.io",
            "secretstores.external-secrets.io",
        ]
    );
    // ESO v2.9's 17 generator kinds, ClusterGenerator and GeneratorState.
    assert_eq!(generators.len(), 19, "{generators:?}");
    for plural in [
        "passwords",
        "clustergenerators",
        "generatorstates",
        "vaultdynamicsecrets",
    ] {
        assert!(
            generators.contains(&&format!("{plural}.generators.external-secrets.io")),
            "{generators:?}"
        );
    }

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (kind, version, short) in [
        ("ExternalSecret", "v1", "es"),
        ("SecretStore", "v1", "ss"),
        ("ClusterSecretStore", "v1", "css"),
        ("ClusterExternalSecret", "v1", "ces"),
        ("PushSecret", "v1alpha1", "ps"),
        // ESO gives ClusterPushSecret no short name.
        ("ClusterPushSecret", "v1alpha1", ""),
    ] {
        let gvk = GroupVersionKind::gvk("external-secrets.io", version, kind);
        let (resource, _) = pinned_kind(&client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("{kind} not served: {e}"));
        let crd = crds
            .get(&format!("{}.external-secrets.io", resource.plural))
            .await
            .expect("crd");
        let shorts = crd.spec.names.short_names.unwrap_or_default();
        assert!(
            short.is_empty() || shorts.iter().any(|s| s == short),
            "{kind} lacks short name {short}: {shorts:?}"
        );
        let categories = crd.spec.names.categories.unwrap_or_default();
        assert!(
            categories.iter().any(|c| c == "external-secrets"),
            "{kind} lacks its category"
        );
        let served = crd
            .spec
            .versions
            .iter()
            .find(|v| v.name == version)
            .expect("version present");
        assert!(
            served.served && served.storage,
            "{kind} {version} must be served and stored"
        );
        assert!(
            served
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some()),
            "{kind} lacks /status"
        );
    }
}

#[tokio::test]
async fn every_seed_manifest_applies_unchanged_with_strict_validation() {
    let client = Stack::get().await.kube().await;
    install_crds(&client).await;
    let manifests = seed_manifests();
    assert_eq!(manifests.len(), 6, "the six seed manifests are present");
    for (_, manifest) in &manifests {
        if let Some(ns) = manifest["metadata"]["namespace"].as_str() {
            ensure_namespace(&client, ns).await;
        }
    }
    // Cluster-scoped seed objects go when the test ends: left behind, the seed's
    // ClusterExternalSecret would stamp ExternalSecrets into labelled namespaces under any
    // controller run later on this stack, and the seed's store would meet the demo's.
    let _cluster_scoped: Vec<Cleanup> = manifests
        .iter()
        .filter_map(|(_, m)| {
            let name = m["metadata"]["name"].as_str()?;
            match m["kind"].as_str()? {
                "ClusterSecretStore" => Some(Cleanup::cluster_secret_store(name)),
                "ClusterExternalSecret" => Some(Cleanup::cluster_external_secret(name)),
                _ => None,
            }
        })
        .collect();
    for (file, manifest) in &manifests {
        let applied = apply(&client, manifest)
            .await
            .unwrap_or_else(|e| panic!("{file} was refused: {e}"));
        // What the user wrote comes back as written: nothing pruned, nothing renamed.
        assert_contains(
            &serde_json::to_value(&applied).expect("json")["spec"],
            &manifest["spec"],
            file,
        );
    }
}

#[tokio::test]
async fn defaults_come_from_the_crd_as_in_eso() {
    let client = Stack::get().await.kube().await;
    install_crds(&client).await;
    let (ns, _cleanup) = scoped_namespace(&client, "defaults", &[]).await;
    let es = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": { "name": "minimal", "namespace": ns },
        "spec": {
            "secretStoreRef": { "name": "store" },
            "data": [{ "secretKey": "k", "remoteRef": { "key": "remote" } }]
        }
    });
    let applied = serde_json::to_value(apply(&client, &es).await.expect("apply")).expect("json");
    assert_eq!(applied["spec"]["refreshInterval"], "1h0m0s");
    assert_eq!(applied["spec"]["target"]["creationPolicy"], "Owner");
    assert_eq!(applied["spec"]["target"]["deletionPolicy"], "Retain");
}

#[tokio::test]
async fn stores_for_providers_we_do_not_implement_are_kept_verbatim() {
    let client = Stack::get().await.kube().await;
    install_crds(&client).await;
    let (ns, _cleanup) = scoped_namespace(&client, "unknown-provider", &[]).await;
    let provider = json!({
        "gcpsm": {
            "projectID": "my-project",
            "auth": { "secretRef": { "secretAccessKeySecretRef": { "name": "gcp", "key": "sa.json" } } }
        }
    });
    let store = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": { "name": "gcp", "namespace": ns },
        "spec": { "provider": provider }
    });
    let applied = serde_json::to_value(apply(&client, &store).await.expect("apply")).expect("json");
    assert_eq!(applied["spec"]["provider"], provider);
}

#[tokio::test]
async fn the_apiserver_rejects_values_outside_esos_enums() {
    let client = Stack::get().await.kube().await;
    install_crds(&client).await;
    let (ns, _cleanup) = scoped_namespace(&client, "invalid", &[]).await;
    let es = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": { "name": "bad-policy", "namespace": ns },
        "spec": {
            "secretStoreRef": { "name": "store", "kind": "SecretStore" },
            "target": { "creationPolicy": "Sometimes" },
            "data": [{ "secretKey": "k", "remoteRef": { "key": "remote" } }]
        }
    });
    let err = apply(&client, &es)
        .await
        .expect_err("an unknown creationPolicy must be refused");
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err}")
    };
    assert_eq!(status.code, 422, "{}", status.message);
    assert!(
        status.message.contains("creationPolicy"),
        "the message names the field: {}",
        status.message
    );
}

/// Every field of `expected` is present in `actual` with the same value (the apiserver may add
/// defaults, but must not drop or change what the user wrote).
fn assert_contains(actual: &Value, expected: &Value, context: &str) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, v) in e {
                let got = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{context}: field {k} was dropped"));
                assert_contains(got, v, &format!("{context}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{context}: list length changed");
            for (i, (x, y)) in a.iter().zip(e).enumerate() {
                assert_contains(x, y, &format!("{context}[{i}]"));
            }
        }
        _ => assert_eq!(actual, expected, "{context}"),
    }
}
