//! Moving over from an installed ESO: our CRDs apply over ESO's on a cluster that still records
//! ESO's old `v1beta1` as a stored version (a control plane of the test's own, since CRDs are
//! cluster-wide), and Secrets that ESO wrote are taken over without a write when their data is
//! unchanged (on the shared stack, in a namespace of the test's own).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use secret_sync_crd::ExternalSecret;
use secret_sync_crd::well_known::{
    ANNOTATION_DATA_HASH, LABEL_MANAGED, LABEL_MANAGED_VALUE, LABEL_OWNER,
};
use secret_sync_tests::apiserver::Apiserver;
use secret_sync_tests::controller::{apply, fake_store, init_logging, start_with, wait_for};
use secret_sync_tests::{
    FIELD_MANAGER, Stack, committed_crds, ensure_namespace, install_crds, scoped_namespace,
};
use serde_json::json;

/// ESO's ExternalSecret CRD as ESO before 0.16 installed it: `v1beta1` served and stored.
fn eso_v1beta1_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "externalsecrets.external-secrets.io" },
        "spec": {
            "group": "external-secrets.io", "scope": "Namespaced",
            "names": { "kind": "ExternalSecret", "listKind": "ExternalSecretList",
                       "plural": "externalsecrets", "singular": "externalsecret",
                       "shortNames": ["es"], "categories": ["external-secrets"] },
            "versions": [{ "name": "v1beta1", "served": true, "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": { "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true } } }]
        }
    }))
    .expect("CRD")
}

async fn stored_versions(client: &kube::Client, name: &str) -> Vec<String> {
    Api::<CustomResourceDefinition>::all(client.clone())
        .get(name)
        .await
        .expect("CRD")
        .status
        .and_then(|s| s.stored_versions)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_crds_apply_over_an_eso_install_that_still_records_v1beta1() {
    init_logging();
    let api = Apiserver::start().await;
    let client = api.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = "externalsecrets.external-secrets.io";
    crds.create(&PostParams::default(), &eso_v1beta1_crd())
        .await
        .expect("ESO's old CRD");
    // An ExternalSecret stored as v1beta1.
    let old = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("external-secrets.io", "v1beta1", "ExternalSecret"),
        "externalsecrets",
    );
    ensure_namespace(&client, "apps").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1beta1", "kind": "ExternalSecret",
        "metadata": { "name": "db", "namespace": "apps" },
        "spec": { "refreshInterval": "1h",
            "secretStoreRef": { "name": "vault", "kind": "SecretStore" },
            "data": [{ "secretKey": "password", "remoteRef": { "key": "db", "property": "password" } }] }
    }))
    .expect("object");
    let old_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "apps", &old);
    // The new CRD is served a moment after it is created.
    while let Err(e) = old_api.create(&PostParams::default(), &object).await {
        assert!(Instant::now() < deadline, "creating a v1beta1 object: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored_versions(&client, name).await, ["v1beta1"]);

    // Without the retired v1beta1 entry, the apiserver refuses the CRD: it still records it.
    let mut without = committed_crds()
        .into_iter()
        .find(|c| c.name_any() == name)
        .expect("our ExternalSecret CRD");
    without.spec.versions.retain(|v| v.name != "v1beta1");
    let refused = crds
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&without),
        )
        .await
        .expect_err("a CRD dropping a stored version is refused");
    assert!(refused.to_string().contains("storedVersions"), "{refused}");

    // Ours, as committed: accepted; the old object reads as v1.
    install_crds(&client).await;
    let versions = stored_versions(&client, name).await;
    assert!(
        versions.contains(&"v1beta1".to_owned()) && versions.contains(&"v1".to_owned()),
        "{versions:?}"
    );
    let es = Api::<ExternalSecret>::namespaced(client.clone(), "apps")
        .get("db")
        .await
        .expect("the v1beta1 object read as v1");
    assert_eq!(
        es.spec.secret_store_ref.map(|r| r.name).as_deref(),
        Some("vault")
    );
    assert_eq!(es.spec.data.len(), 1);
}

/// A Secret as ESO v2.9 writes it for an ExternalSecret (`creationPolicy: Owner`, no
/// template): created by a plain create under ESO's field manager (managedFields operation
/// `Update`), ESO's labels, its data-hash annotation, the ExternalSecret as controller owner.
async fn eso_written_secret(client: &kube::Client, es: &ExternalSecret, data: &[(&str, &str)]) {
    let ns = es.namespace().expect("namespace");
    let name = es.name_any();
    let bytes: std::collections::BTreeMap<String, Vec<u8>> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
    let hash = secret_sync::hash::data_hash(&bytes);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": name, "namespace": ns,
            "labels": {
                LABEL_MANAGED: LABEL_MANAGED_VALUE,
                LABEL_OWNER: secret_sync::hash::owner_label(&ns, &name),
            },
            "annotations": { ANNOTATION_DATA_HASH: hash },
            "ownerReferences": [{
                "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "name": name, "uid": es.uid().expect("uid"),
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "stringData": data.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
    .expect("Secret");
    let params = PostParams {
        field_manager: Some(secret_sync::hash::field_manager(&name)),
        ..PostParams::default()
    };
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&params, &secret)
        .await
        .expect("ESO's Secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_eso_wrote_are_taken_over_without_a_write_when_their_data_is_unchanged() {
    init_logging();
    let stack = Stack::get().await;
    let client = stack.kube().await;
    install_crds(&client).await;
    let (ns, _guard) = scoped_namespace(&client, "from-eso", &[]).await;
    apply(
        &client,
        &fake_store(
            &ns,
            "fake",
            json!([{ "key": "db", "value": "from-the-provider" }]),
        ),
    )
    .await;
    // A short refresh: the controller really syncs within the test, and finds nothing to do.
    apply(
        &client,
        &json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": { "name": "app", "namespace": ns },
            "spec": { "refreshInterval": "3s", "secretStoreRef": { "name": "fake" },
                "data": [{ "secretKey": "password", "remoteRef": { "key": "db" } }] }
        }),
    )
    .await;
    let es = Api::<ExternalSecret>::namespaced(client.clone(), &ns)
        .get("app")
        .await
        .expect("ExternalSecret");
    eso_written_secret(&client, &es, &[("password", "from-the-provider")]).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let before = secrets.get("app").await.expect("Secret");

    let aws = stack.aws().await;
    let mut controller = start_with(&client, &ns, move |s| s.providers.aws_base = Some(aws))
        .ready()
        .await;
    // Synced twice at least (first sync, then a refresh), each finding the Secret as wanted.
    let first = wait_for(&client, &ns, "app", |es| {
        es.status.as_ref().is_some_and(|s| s.refresh_time.is_some())
    })
    .await;
    let first_time = first.status.and_then(|s| s.refresh_time).expect("synced");
    wait_for(&client, &ns, "app", |es| {
        es.status
            .as_ref()
            .and_then(|s| s.refresh_time.as_ref())
            .is_some_and(|t| t.0 > first_time.0)
    })
    .await;
    let after = secrets.get("app").await.expect("Secret");
    assert_eq!(
        after.resource_version(),
        before.resource_version(),
        "the Secret ESO wrote was written again: {:?}",
        after.metadata.managed_fields
    );
    let metrics = controller.metrics.encode().expect("metrics");
    assert!(
        !metrics.contains("secret_sync_apiserver_writes_total{kind=\"Secret\""),
        "{metrics}"
    );

    // A real change is written, and the Secret is ours from then on.
    apply(
        &client,
        &fake_store(&ns, "fake", json!([{ "key": "db", "value": "rotated" }])),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let secret = secrets.get("app").await.expect("Secret");
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get("password"))
            .map(|b| b.0.clone());
        if value.as_deref() == Some(b"rotated".as_slice()) {
            break;
        }
        assert!(Instant::now() < deadline, "the rotation was not written");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    controller.stop().await;
}
