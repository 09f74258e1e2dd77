//! ClusterExternalSecrets end to end: the seed manifest unchanged against the real apiserver and
//! OpenBao, namespace selection following labels, ESO's status, force-sync mirroring, conflicts
//! with ExternalSecrets that are not ours, renames, drift, and deletion by the garbage collector.
//!
//! A ClusterExternalSecret reconciler needs a controller that watches every namespace, so each
//! test here runs one, and they take turns (`TURN`): two cluster-wide controllers of the same
//! class would both act on every test's objects.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use secret_sync_controller::reconcile::cluster_external_secret::{
    MESSAGE_NAMESPACES_FAILED, REASON_ALREADY_EXISTS,
};
use secret_sync_crd::well_known::ANNOTATION_FORCE_SYNC;
use secret_sync_crd::{ClusterExternalSecret, ConditionStatus, ExternalSecret};
use secret_sync_tests::cleanup::Cleanup;
use secret_sync_tests::controller::{
    Running, apply, data_of, external_secret, init_logging, start_with, wait_secret,
    wait_secret_gone,
};
use secret_sync_tests::{Stack, install_crds, repo_root, scoped_namespace, unique_name};
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};
use tokio::time::{Instant, sleep};

static TURN: Mutex<()> = Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(30);

struct Cluster {
    client: kube::Client,
    controller: Running,
    _turn: MutexGuard<'static, ()>,
}

/// Takes this test's turn, installs the CRDs and starts a controller over every namespace.
async fn cluster() -> Cluster {
    let turn = TURN.lock().await;
    init_logging();
    let stack = Stack::get().await;
    let client = stack.kube().await;
    install_crds(&client).await;
    let aws = stack.aws().await;
    let controller = start_with(&client, "", |s| {
        s.namespace = None;
        s.providers.aws_base = Some(aws);
    })
    .ready()
    .await;
    Cluster {
        client,
        controller,
        _turn: turn,
    }
}

async fn label_namespace(client: &kube::Client, ns: &str, labels: Value) {
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": labels } })),
        )
        .await
        .expect("label namespace");
}

/// Polls until `done` holds for the ClusterExternalSecret.
async fn wait_ces(
    client: &kube::Client,
    name: &str,
    what: &str,
    done: impl Fn(&ClusterExternalSecret) -> bool,
) -> ClusterExternalSecret {
    let api: Api<ClusterExternalSecret> = Api::all(client.clone());
    let deadline = Instant::now() + WAIT;
    loop {
        let ces = api.get(name).await.expect("get ClusterExternalSecret");
        if done(&ces) {
            return ces;
        }
        assert!(
            Instant::now() < deadline,
            "ClusterExternalSecret {name}: {what} not reached within {WAIT:?}; status {:?}",
            ces.status
        );
        sleep(Duration::from_millis(100)).await;
    }
}

fn provisioned(ces: &ClusterExternalSecret) -> Vec<String> {
    ces.status
        .as_ref()
        .map(|s| s.provisioned_namespaces.clone())
        .unwrap_or_default()
}

fn ready(ces: &ClusterExternalSecret) -> Option<(ConditionStatus, Option<String>)> {
    let condition = ces
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((condition.status, condition.message.clone()))
}

async fn external_secret_in(client: &kube::Client, ns: &str, name: &str) -> Option<ExternalSecret> {
    Api::<ExternalSecret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .expect("get ExternalSecret")
}

async fn wait_external_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    what: &str,
    done: impl Fn(Option<&ExternalSecret>) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let es = external_secret_in(client, ns, name).await;
        if done(es.as_ref()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ExternalSecret {ns}/{name}: {what} not reached within {WAIT:?}"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

/// Sums a counter's samples whose labels contain `labels`.
fn metric_sum(controller: &Running, name: &str, labels: &str) -> f64 {
    controller
        .metrics
        .encode()
        .expect("metrics")
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn seed(file: &str) -> Value {
    let path = repo_root().join("tests/fixtures/seed").join(file);
    let text = std::fs::read_to_string(&path).expect("seed manifest");
    serde_saphyr::from_str(&text).expect("seed YAML")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_cluster_external_secret_follows_namespace_labels_and_reads_each_key_once() {
    // Every field bound: `..` would drop the controller and the turn at once.
    let Cluster {
        client,
        controller,
        _turn,
    } = cluster().await;
    let stack = Stack::get().await;
    // Whatever else is in the cluster (the demo leaves the seed's ClusterExternalSecret, its
    // store and two labelled namespaces) is reconciled by this controller as it starts: the
    // counts below start once that has settled.
    let (writes, reconciles, reads) = (
        || {
            metric_sum(
                &controller,
                "secret_sync_apiserver_writes_total",
                "kind=\"ExternalSecret\"",
            )
        },
        || {
            metric_sum(
                &controller,
                "controller_runtime_reconcile_total",
                "controller=\"clusterexternalsecret\"",
            )
        },
        || {
            metric_sum(
                &controller,
                "secret_sync_provider_calls_total",
                "provider=\"HashiCorp/Vault\"",
            )
        },
    );
    let mut last = (writes(), reconciles(), reads());
    let settled_by = Instant::now() + WAIT;
    loop {
        sleep(Duration::from_secs(1)).await;
        let now = (writes(), reconciles(), reads());
        if now == last || Instant::now() > settled_by {
            break;
        }
        last = now;
    }
    let (writes_at_start, reads_at_start) = (writes(), reads());
    // The seed's objects under names of this run (the demo's copies keep theirs), selecting
    // namespaces by a label value of this run; their shape is the seed's.
    let tls = unique_name("tls");

    // The seed's store, pointed at the local OpenBao with a token (the seed's Kubernetes auth
    // needs a cluster Vault can reach); the ClusterExternalSecret exactly as users write it.
    let (creds_ns, _creds) = scoped_namespace(&client, "ces-creds", &[]).await;
    let token: Secret = serde_json::from_value(json!({
        "metadata": { "name": "vault-token" },
        "stringData": { "token": stack.var("VAULT_TOKEN") }
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &creds_ns)
        .create(&PostParams::default(), &token)
        .await
        .expect("token Secret");
    let mut store = seed("clustersecretstore-vault-backend.yaml");
    store["spec"]["provider"]["vault"]["server"] = json!(stack.var("VAULT_ADDR"));
    store["spec"]["provider"]["vault"]["auth"] = json!({ "tokenSecretRef": {
        "name": "vault-token", "key": "token", "namespace": creds_ns } });
    let store_name = unique_name("vault-backend");
    store["metadata"]["name"] = json!(store_name);
    let _store = Cleanup::cluster_secret_store(&store_name);
    apply(&client, &store).await;
    let cert = unique_name("-----BEGIN CERTIFICATE-----");
    vaultrs::kv2::set(
        &stack.vault(),
        "secret",
        "shared/tls/wildcard",
        &json!({ "certificate": cert, "private_key": "not-a-real-key" }),
    )
    .await
    .expect("kv put");

    let (a, _a) = scoped_namespace(&client, "ces-a", &[("needs-tls", tls.as_str())]).await;
    let (b, _b) = scoped_namespace(&client, "ces-b", &[("needs-tls", tls.as_str())]).await;
    let (c, _c) = scoped_namespace(&client, "ces-c", &[("needs-tls", tls.as_str())]).await;
    let (other, _other) = scoped_namespace(&client, "ces-other", &[]).await;
    let mut ces = seed("clusterexternalsecret-shared-tls-cert.yaml");
    let name = unique_name("shared-tls-cert");
    ces["metadata"]["name"] = json!(name);
    ces["spec"]["namespaceSelectors"][0]["matchLabels"]["needs-tls"] = json!(tls);
    ces["spec"]["externalSecretSpec"]["secretStoreRef"]["name"] = json!(store_name);
    let _ces = Cleanup::cluster_external_secret(&name);
    apply(&client, &ces).await;

    // Every labelled namespace, and no other, gets the ExternalSecret and so the Secret.
    let mut labelled = vec![a.clone(), b.clone(), c.clone()];
    labelled.sort();
    for ns in &labelled {
        let secret = wait_secret(&client, ns, "tls-cert", |s| {
            data_of(s).get("tls.crt") == Some(&cert)
        })
        .await;
        assert_eq!(data_of(&secret)["tls.key"], "not-a-real-key");
    }
    let status = wait_ces(&client, &name, "three namespaces", |ces| {
        labelled.iter().all(|ns| provisioned(ces).contains(ns))
    })
    .await;
    assert_eq!(
        ready(&status),
        Some((ConditionStatus::True, None)),
        "ESO's Ready: True, no message"
    );
    assert_eq!(
        status
            .status
            .as_ref()
            .and_then(|s| s.external_secret_name.as_deref()),
        Some(name.as_str())
    );
    let child = external_secret_in(&client, &a, &name).await.expect("child");
    let owner = &child.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("ClusterExternalSecret", name.as_str(), Some(true))
    );
    assert!(external_secret_in(&client, &other, &name).await.is_none());
    // ESO reads per data entry of each ExternalSecret: 3 namespaces x 2 entries = 6 reads. Here
    // the three ExternalSecrets share one read of the key.
    assert_eq!(
        reads() - reads_at_start,
        1.0,
        "Vault reads for 3 namespaces"
    );

    // A label change on a namespace nobody selects reconciles the ClusterExternalSecret again;
    // its children are up to date, so nothing is written.
    let (writes_before, reconciles_before) = (writes(), reconciles());
    assert_eq!(
        writes_before - writes_at_start,
        3.0,
        "one apply per namespace"
    );
    label_namespace(&client, &other, json!({ "unrelated": "x" })).await;
    let deadline = Instant::now() + WAIT;
    while reconciles() == reconciles_before {
        assert!(
            Instant::now() < deadline,
            "no reconcile after a namespace label change"
        );
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        writes(),
        writes_before,
        "up-to-date children were written again"
    );

    // A namespace that gains the label is provisioned; one that loses it is cleaned up.
    label_namespace(&client, &other, json!({ "needs-tls": tls })).await;
    label_namespace(&client, &a, json!({ "needs-tls": null })).await;
    wait_secret(&client, &other, "tls-cert", |s| {
        data_of(s).get("tls.crt") == Some(&cert)
    })
    .await;
    wait_external_secret(&client, &a, &name, "deleted", |es| es.is_none()).await;
    wait_secret_gone(&client, &a, "tls-cert").await;
    let mut now = vec![b.clone(), c.clone(), other.clone()];
    now.sort();
    wait_ces(&client, &name, "provisioned follows the labels", |ces| {
        provisioned(ces) == now
    })
    .await;

    // The force-sync annotation is mirrored onto every child, and removed with it.
    let ces_api: Api<ClusterExternalSecret> = Api::all(client.clone());
    let annotate =
        |value: Value| json!({ "metadata": { "annotations": { ANNOTATION_FORCE_SYNC: value } } });
    ces_api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(annotate(json!("now"))),
        )
        .await
        .expect("annotate");
    for ns in &now {
        wait_external_secret(&client, ns, &name, "annotated", |es| {
            es.and_then(|es| es.annotations().get(ANNOTATION_FORCE_SYNC).cloned())
                == Some("now".into())
        })
        .await;
    }
    ces_api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(annotate(Value::Null)),
        )
        .await
        .expect("remove the annotation");
    for ns in &now {
        wait_external_secret(&client, ns, &name, "annotation removed", |es| {
            es.is_some_and(|es| !es.annotations().contains_key(ANNOTATION_FORCE_SYNC))
        })
        .await;
    }

    // Deleting the ClusterExternalSecret deletes its ExternalSecrets (and so their Secrets):
    // the garbage collector follows the ownerReferences; no finalizer is involved.
    ces_api
        .delete(&name, &DeleteParams::foreground())
        .await
        .expect("delete");
    for ns in &now {
        wait_external_secret(&client, ns, &name, "deleted", |es| es.is_none()).await;
    }
    for ns in &labelled {
        let finalizers = Api::<Namespace>::all(client.clone())
            .get(ns)
            .await
            .expect("namespace")
            .finalizers()
            .to_vec();
        assert!(
            finalizers
                .iter()
                .all(|f| !f.contains("external-secrets.io")),
            "a namespace finalizer: {finalizers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_external_secret_fails_its_namespace_and_renames_and_drift_are_repaired() {
    let Cluster {
        client,
        controller: _controller,
        _turn,
    } = cluster().await;
    let store = unique_name("ces-fake");
    let _store = Cleanup::cluster_secret_store(&store);
    apply(
        &client,
        &json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
            "metadata": { "name": store },
            "spec": { "provider": { "fake": { "data": [{ "key": "k", "value": "v" }] } } }
        }),
    )
    .await;
    let team = unique_name("team");
    let (mine, _mine) = scoped_namespace(&client, "ces-mine", &[("team", &team)]).await;
    let (theirs, _theirs) = scoped_namespace(&client, "ces-theirs", &[("team", &team)]).await;
    // Someone's own ExternalSecret with the name the ClusterExternalSecret wants.
    apply(
        &client,
        &external_secret(
            &theirs,
            "shared",
            json!({ "secretStoreRef": { "name": "elsewhere" },
                    "data": [{ "secretKey": "k", "remoteRef": { "key": "theirs" } }] }),
        ),
    )
    .await;

    let name = unique_name("ces");
    let _ces = Cleanup::cluster_external_secret(&name);
    let ces = |child: &str| {
        json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
            "metadata": { "name": name },
            "spec": {
                "externalSecretName": child,
                "externalSecretMetadata": { "labels": { "from": "ces" } },
                "namespaceSelectors": [{ "matchLabels": { "team": team } }],
                "externalSecretSpec": {
                    "secretStoreRef": { "name": store, "kind": "ClusterSecretStore" },
                    "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
                }
            }
        })
    };
    apply(&client, &ces("shared")).await;
    let status = wait_ces(&client, &name, "one failure", |ces| {
        ces.status.as_ref().is_some_and(|s| {
            !s.failed_namespaces.is_empty() && !s.provisioned_namespaces.is_empty()
        })
    })
    .await;
    let status_body = status.status.clone().expect("status");
    assert_eq!(
        status_body.provisioned_namespaces,
        std::slice::from_ref(&mine)
    );
    assert_eq!(status_body.failed_namespaces.len(), 1);
    assert_eq!(status_body.failed_namespaces[0].namespace, theirs);
    assert_eq!(
        status_body.failed_namespaces[0].reason.as_deref(),
        Some(REASON_ALREADY_EXISTS)
    );
    assert_eq!(
        ready(&status),
        Some((
            ConditionStatus::False,
            Some(MESSAGE_NAMESPACES_FAILED.into())
        ))
    );
    let foreign = external_secret_in(&client, &theirs, "shared")
        .await
        .expect("foreign");
    assert!(foreign.owner_references().is_empty(), "not taken over");
    assert_eq!(
        foreign
            .spec
            .secret_store_ref
            .as_ref()
            .map(|r| r.name.as_str()),
        Some("elsewhere")
    );
    wait_secret(&client, &mine, "shared", |s| {
        data_of(s) == BTreeMap::from([("k".to_owned(), "v".to_owned())])
    })
    .await;

    // Drift: a child edited by hand is put back, a deleted one comes back; labels another tool
    // added stay (ESO would wipe them).
    let child_api: Api<ExternalSecret> = Api::namespaced(client.clone(), &mine);
    child_api
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "from": "hand", "extra": "kept" } } })),
        )
        .await
        .expect("edit child");
    wait_external_secret(&client, &mine, "shared", "label restored", |es| {
        es.is_some_and(|es| {
            es.labels().get("from").map(String::as_str) == Some("ces")
                && es.labels().get("extra").map(String::as_str) == Some("kept")
        })
    })
    .await;
    let uid = child_api.get("shared").await.expect("child").uid();
    child_api
        .delete("shared", &DeleteParams::default())
        .await
        .expect("delete child");
    wait_external_secret(&client, &mine, "shared", "recreated", |es| {
        es.is_some_and(|es| es.uid() != uid)
    })
    .await;

    // A rename: the children move to the new name; the foreign one is left as it is, and the
    // namespace that failed for the old name is provisioned under the new one.
    apply(&client, &ces("renamed")).await;
    for ns in [&mine, &theirs] {
        wait_external_secret(&client, ns, "renamed", "created", |es| es.is_some()).await;
    }
    wait_external_secret(&client, &mine, "shared", "old name deleted", |es| {
        es.is_none()
    })
    .await;
    assert!(
        external_secret_in(&client, &theirs, "shared")
            .await
            .is_some(),
        "the foreign ExternalSecret was deleted"
    );
    let mut both = vec![mine.clone(), theirs.clone()];
    both.sort();
    let status = wait_ces(&client, &name, "both provisioned", |ces| {
        provisioned(ces) == both
    })
    .await;
    assert_eq!(ready(&status), Some((ConditionStatus::True, None)));
    assert_eq!(
        status.status.as_ref().map(|s| s.failed_namespaces.len()),
        Some(0),
        "the namespace that recovered is no longer listed as failed"
    );
    assert_eq!(
        status.status.and_then(|s| s.external_secret_name),
        Some("renamed".into())
    );
}
