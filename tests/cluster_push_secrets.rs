//! ClusterPushSecrets end to end against the real apiserver and moto: PushSecrets stamped into
//! the namespaces whose labels match and pushing into AWS Secrets Manager, namespace selection
//! following labels, ESO's status, a foreign PushSecret of the same name left alone (its
//! namespace in `failedNamespaces`), drift repaired, renames, the refresh, and deletion by the
//! garbage collector.
//!
//! A ClusterPushSecret reconciler needs a controller that watches every namespace, so each test
//! here runs one, and they take turns (`TURN`): two cluster-wide controllers of the same class
//! would both act on every test's objects.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use secret_sync_controller::reconcile::cluster_push_secret::{
    MESSAGE_NAMESPACES_FAILED, REASON_ALREADY_EXISTS,
};
use secret_sync_crd::{ClusterPushSecret, ConditionStatus, PushSecret};
use secret_sync_tests::cleanup::Cleanup;
use secret_sync_tests::controller::{
    Running, apply, aws_cluster_credentials, aws_cluster_store_object, aws_value, init_logging,
    moto, start_with,
};
use secret_sync_tests::{Stack, install_crds, scoped_namespace, unique_name};
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

/// A ClusterSecretStore over moto, with its credentials in a namespace of its own; both go when
/// the guards drop.
async fn aws_cluster_store(client: &kube::Client) -> (String, Vec<Cleanup>) {
    let (creds_ns, creds_guard) = scoped_namespace(client, "cps-creds", &[]).await;
    aws_cluster_credentials(client, &creds_ns)
        .await
        .expect("credentials");
    let name = unique_name("cps-aws");
    let store_guard = Cleanup::cluster_secret_store(&name);
    apply(client, &aws_cluster_store_object(&name, &creds_ns, None)).await;
    (name, vec![store_guard, creds_guard])
}

async fn source(client: &kube::Client, ns: &str, name: &str, key: &str, value: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": name }, "stringData": { key: value }
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("source Secret");
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

/// Polls until `done` holds for the ClusterPushSecret.
async fn wait_cps(
    client: &kube::Client,
    name: &str,
    what: &str,
    done: impl Fn(&ClusterPushSecret) -> bool,
) -> ClusterPushSecret {
    let api: Api<ClusterPushSecret> = Api::all(client.clone());
    let deadline = Instant::now() + WAIT;
    loop {
        let cps = api.get(name).await.expect("get ClusterPushSecret");
        if done(&cps) {
            return cps;
        }
        assert!(
            Instant::now() < deadline,
            "ClusterPushSecret {name}: {what} not reached within {WAIT:?}; status {:?}",
            cps.status
        );
        sleep(Duration::from_millis(100)).await;
    }
}

fn provisioned(cps: &ClusterPushSecret) -> Vec<String> {
    cps.status
        .as_ref()
        .map(|s| s.provisioned_namespaces.clone())
        .unwrap_or_default()
}

/// `Ready`'s status, reason and message.
fn ready(cps: &ClusterPushSecret) -> Option<(ConditionStatus, Option<String>, Option<String>)> {
    let c = cps
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status, c.reason.clone(), c.message.clone()))
}

async fn push_secret_in(client: &kube::Client, ns: &str, name: &str) -> Option<PushSecret> {
    Api::<PushSecret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .expect("get PushSecret")
}

async fn wait_push_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    what: &str,
    done: impl Fn(Option<&PushSecret>) -> bool,
) -> Option<PushSecret> {
    let deadline = Instant::now() + WAIT;
    loop {
        let ps = push_secret_in(client, ns, name).await;
        if done(ps.as_ref()) {
            return ps;
        }
        assert!(
            Instant::now() < deadline,
            "PushSecret {ns}/{name}: {what} not reached within {WAIT:?}; status {:?}",
            ps.and_then(|p| p.status)
        );
        sleep(Duration::from_millis(100)).await;
    }
}

fn push_ready(ps: Option<&PushSecret>) -> bool {
    ps.and_then(|ps| ps.status.as_ref()).is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
    })
}

/// Polls until moto holds `want` under `key`.
async fn wait_aws(key: &str, want: &str) {
    let sm = moto().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let value = aws_value(&sm, key).await;
        if value.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "AWS secret {key}: the pushed value not there within {WAIT:?}"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

/// Sums a metric's samples whose labels contain `labels`.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secrets_are_stamped_into_matching_namespaces_push_and_follow_namespace_labels() {
    // Every field bound: `..` would drop the controller and the turn at once.
    let Cluster {
        client,
        controller: _controller,
        _turn,
    } = cluster().await;
    let (store, _store) = aws_cluster_store(&client).await;
    let team = unique_name("team");
    let (a, _a) = scoped_namespace(&client, "cps-a", &[("team", team.as_str())]).await;
    let (b, _b) = scoped_namespace(&client, "cps-b", &[("team", team.as_str())]).await;
    let (other, _other) = scoped_namespace(&client, "cps-other", &[]).await;
    // Every namespace pushes its own `src` to the same remote key: the same value in each.
    let value = unique_name("pushed-value");
    for ns in [&a, &b, &other] {
        source(&client, ns, "src", "password", &value).await;
    }
    let remote = unique_name("cps/db-password");

    let name = unique_name("cps");
    let _cps = Cleanup::cluster_push_secret(&name);
    apply(
        &client,
        &json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
            "metadata": { "name": name },
            "spec": {
                "pushSecretMetadata": { "labels": { "from": "cps" }, "annotations": { "a": "1" } },
                "namespaceSelectors": [{ "matchLabels": { "team": team } }],
                "pushSecretSpec": {
                    "secretStoreRefs": [{ "name": store, "kind": "ClusterSecretStore" }],
                    "selector": { "secret": { "name": "src" } },
                    "data": [{ "match": { "secretKey": "password",
                                          "remoteRef": { "remoteKey": remote } } }]
                }
            }
        }),
    )
    .await;

    // The value really reaches the provider, through the stamped PushSecrets.
    wait_aws(&remote, &value).await;
    let mut labelled = vec![a.clone(), b.clone()];
    labelled.sort();
    let status = wait_cps(&client, &name, "two namespaces", |cps| {
        provisioned(cps) == labelled
    })
    .await;
    assert_eq!(
        ready(&status),
        Some((ConditionStatus::True, None, None)),
        "ESO's Ready: True, no reason, no message"
    );
    let body = status.status.clone().expect("status");
    assert_eq!(body.push_secret_name.as_deref(), Some(name.as_str()));
    assert!(body.failed_namespaces.is_empty());
    for ns in &labelled {
        let child = wait_push_secret(&client, ns, &name, "pushed", push_ready)
            .await
            .expect("child");
        let owner = &child.owner_references()[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            (
                "external-secrets.io/v1alpha1",
                "ClusterPushSecret",
                name.as_str(),
                Some(true),
                Some(true)
            )
        );
        assert_eq!(child.labels().get("from").map(String::as_str), Some("cps"));
        assert_eq!(child.annotations().get("a").map(String::as_str), Some("1"));
        assert!(child.finalizers().is_empty(), "no finalizer of ours");
    }
    assert!(push_secret_in(&client, &other, &name).await.is_none());
    let cps_finalizers = Api::<ClusterPushSecret>::all(client.clone())
        .get(&name)
        .await
        .expect("get")
        .finalizers()
        .to_vec();
    assert!(cps_finalizers.is_empty(), "{cps_finalizers:?}");

    // A namespace that gains the label gets the PushSecret; one that loses it loses it.
    label_namespace(&client, &other, json!({ "team": team })).await;
    label_namespace(&client, &a, json!({ "team": null })).await;
    wait_push_secret(&client, &other, &name, "created and pushed", push_ready).await;
    wait_push_secret(&client, &a, &name, "deleted", |ps| ps.is_none()).await;
    let mut now = vec![b.clone(), other.clone()];
    now.sort();
    wait_cps(&client, &name, "provisioned follows the labels", |cps| {
        provisioned(cps) == now
    })
    .await;

    // Deleting the ClusterPushSecret deletes its PushSecrets: the garbage collector follows
    // the ownerReferences; no finalizer is involved.
    Api::<ClusterPushSecret>::all(client.clone())
        .delete(&name, &DeleteParams::foreground())
        .await
        .expect("delete");
    for ns in &now {
        wait_push_secret(&client, ns, &name, "deleted with its owner", |ps| {
            ps.is_none()
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_push_secret_fails_its_namespace_and_drift_renames_and_the_refresh_are_handled() {
    let Cluster {
        client,
        controller,
        _turn,
    } = cluster().await;
    let (store, _store) = aws_cluster_store(&client).await;
    let team = unique_name("team");
    let (mine, _mine) = scoped_namespace(&client, "cps-mine", &[("team", &team)]).await;
    let (theirs, _theirs) = scoped_namespace(&client, "cps-theirs", &[("team", &team)]).await;
    let value = unique_name("pushed-value");
    for ns in [&mine, &theirs] {
        source(&client, ns, "src", "password", &value).await;
    }
    // Someone's own PushSecret with the name the ClusterPushSecret wants.
    apply(
        &client,
        &json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": { "name": "shared", "namespace": theirs },
            "spec": {
                "secretStoreRefs": [{ "name": "elsewhere" }],
                "selector": { "secret": { "name": "src" } },
                "data": [{ "match": { "secretKey": "password",
                                      "remoteRef": { "remoteKey": "theirs" } } }]
            }
        }),
    )
    .await;

    let remote = unique_name("cps/shared");
    let name = unique_name("cps");
    let _cps = Cleanup::cluster_push_secret(&name);
    let cps = |child: &str, refresh: &str| {
        json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
            "metadata": { "name": name },
            "spec": {
                "pushSecretName": child,
                "refreshTime": refresh,
                "pushSecretMetadata": { "labels": { "from": "cps" } },
                "namespaceSelectors": [{ "matchLabels": { "team": team } }],
                "pushSecretSpec": {
                    "secretStoreRefs": [{ "name": store, "kind": "ClusterSecretStore" }],
                    "selector": { "secret": { "name": "src" } },
                    "data": [{ "match": { "secretKey": "password",
                                          "remoteRef": { "remoteKey": remote } } }]
                }
            }
        })
    };
    apply(&client, &cps("shared", "1h")).await;
    let status = wait_cps(&client, &name, "one failure", |cps| {
        cps.status.as_ref().is_some_and(|s| {
            !s.failed_namespaces.is_empty() && !s.provisioned_namespaces.is_empty()
        })
    })
    .await;
    let body = status.status.clone().expect("status");
    assert_eq!(body.provisioned_namespaces, std::slice::from_ref(&mine));
    assert_eq!(body.failed_namespaces.len(), 1);
    assert_eq!(body.failed_namespaces[0].namespace, theirs);
    assert_eq!(
        body.failed_namespaces[0].reason.as_deref(),
        Some(REASON_ALREADY_EXISTS)
    );
    assert_eq!(
        ready(&status),
        Some((
            ConditionStatus::False,
            None,
            Some(MESSAGE_NAMESPACES_FAILED.into())
        ))
    );
    let foreign = push_secret_in(&client, &theirs, "shared")
        .await
        .expect("foreign");
    assert!(foreign.owner_references().is_empty(), "not taken over");
    assert_eq!(
        foreign.spec.secret_store_refs[0].name.as_deref(),
        Some("elsewhere")
    );
    assert!(!foreign.labels().contains_key("from"));
    wait_push_secret(&client, &mine, "shared", "pushed", push_ready).await;
    wait_aws(&remote, &value).await;

    // Drift: a child edited by hand is put back, a deleted one comes back; labels another tool
    // added stay.
    let child_api: Api<PushSecret> = Api::namespaced(client.clone(), &mine);
    child_api
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "from": "hand", "extra": "kept" } } })),
        )
        .await
        .expect("edit child");
    wait_push_secret(&client, &mine, "shared", "label restored", |ps| {
        ps.is_some_and(|ps| {
            ps.labels().get("from").map(String::as_str) == Some("cps")
                && ps.labels().get("extra").map(String::as_str) == Some("kept")
        })
    })
    .await;
    let uid = child_api.get("shared").await.expect("child").uid();
    child_api
        .delete("shared", &DeleteParams::default())
        .await
        .expect("delete child");
    wait_push_secret(&client, &mine, "shared", "recreated", |ps| {
        ps.is_some_and(|ps| ps.uid() != uid)
    })
    .await;

    // The foreign PushSecret goes: its namespace is provisioned, and the failure is cleared.
    Api::<PushSecret>::namespaced(client.clone(), &theirs)
        .delete("shared", &DeleteParams::default())
        .await
        .expect("delete the foreign PushSecret");
    let mut both = vec![mine.clone(), theirs.clone()];
    both.sort();
    let status = wait_cps(&client, &name, "both provisioned", |cps| {
        provisioned(cps) == both
    })
    .await;
    assert_eq!(ready(&status), Some((ConditionStatus::True, None, None)));
    assert!(
        status
            .status
            .as_ref()
            .expect("status")
            .failed_namespaces
            .is_empty(),
        "failedNamespaces cleared"
    );
    wait_push_secret(&client, &theirs, "shared", "ours now", |ps| {
        ps.is_some_and(|ps| !ps.owner_references().is_empty())
    })
    .await;

    // A rename: the children move to the new name, and the status says so.
    apply(&client, &cps("renamed", "1s")).await;
    for ns in &both {
        wait_push_secret(&client, ns, "renamed", "created", |ps| ps.is_some()).await;
        wait_push_secret(&client, ns, "shared", "old name deleted", |ps| ps.is_none()).await;
    }
    let status = wait_cps(&client, &name, "the new name", |cps| {
        cps.status
            .as_ref()
            .and_then(|s| s.push_secret_name.as_deref())
            == Some("renamed")
    })
    .await;
    assert_eq!(provisioned(&status), both);

    // refreshTime 1s: the ClusterPushSecret is reconciled again without any change.
    let reconciles = || {
        metric_sum(
            &controller,
            "controller_runtime_reconcile_total",
            "controller=\"clusterpushsecret\"",
        )
    };
    let before = reconciles();
    sleep(Duration::from_secs(3)).await;
    assert!(
        reconciles() >= before + 2.0,
        "no periodic reconcile: {before} then {}",
        reconciles()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_push_secret_reconciler_push_secrets_are_still_stamped_and_removed() {
    // ESO runs the two reconcilers independently: with PushSecrets off, the ClusterPushSecret
    // reconciler keeps a PushSecret cache of its own.
    let turn = TURN.lock().await;
    init_logging();
    let stack = Stack::get().await;
    let client = stack.kube().await;
    install_crds(&client).await;
    let controller = start_with(&client, "", |s| {
        s.namespace = None;
        s.push_secrets = false;
    })
    .ready()
    .await;
    let team = unique_name("team");
    let (a, _a) = scoped_namespace(&client, "cps-solo", &[("team", team.as_str())]).await;
    let name = unique_name("cps");
    let _cps = Cleanup::cluster_push_secret(&name);
    apply(
        &client,
        &json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
            "metadata": { "name": name },
            "spec": {
                "namespaceSelectors": [{ "matchLabels": { "team": team } }],
                "pushSecretSpec": {
                    "secretStoreRefs": [{ "name": "nowhere" }],
                    "selector": { "secret": { "name": "src" } }
                }
            }
        }),
    )
    .await;
    wait_push_secret(&client, &a, &name, "created", |ps| ps.is_some()).await;
    wait_cps(&client, &name, "provisioned", |cps| {
        provisioned(cps) == std::slice::from_ref(&a)
    })
    .await;
    label_namespace(&client, &a, json!({ "team": null })).await;
    wait_push_secret(&client, &a, &name, "deleted", |ps| ps.is_none()).await;
    wait_cps(&client, &name, "nothing provisioned", |cps| {
        provisioned(cps).is_empty()
    })
    .await;
    // The controller stops before the next test's turn.
    drop(controller);
    drop(turn);
}
