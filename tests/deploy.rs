//! The Helm chart (`infra/helm/secret-sync`) against the real apiserver, which runs with RBAC:
//!
//! - it renders, and the apiserver accepts every object it makes with strict field validation;
//! - the Deployment's arguments are flags the controller takes, with the values asked for;
//! - the controller, running with exactly the chart's rights (as its service account, through a
//!   requested token), does what its features need: caches over every namespace, Secrets
//!   created, templated from a ConfigMap and deleted, status and Events written, a ClusterSecretStore
//!   validated, a ClusterExternalSecret stamped out, a PushSecret pushed, a ClusterPushSecret
//!   stamped out and pushing, AWS web identity
//!   through a requested service-account token, the leader Lease and the leader label on its Pod. A missing rule shows as a sync that never converges.
//!
//! The local control plane has no scheduler or kubelet, so the Deployment's pods never run; the
//! controller runs in this process instead, with the identity the pods would have.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use secret_sync_controller::Config;
use secret_sync_controller::leader::{LEADER_LABEL, LeaderElector, LeaseConfig, label_pod};
use secret_sync_controller::shards::{Peers, ShardManager, ShardSettings};
use secret_sync_crd::{
    ClusterExternalSecret, ClusterPushSecret, ClusterSecretStore, ConditionStatus, GenericStore,
    SecretStore,
};
use secret_sync_tests::cleanup::Cleanup;
use secret_sync_tests::controller::{
    apply, create_aws_secret, data_of, external_secret, force_sync, init_logging, moto, start_with,
    wait_event, wait_ready, wait_secret, wait_secret_gone,
};
use secret_sync_tests::identity::{client_with_token, service_account_token};
use secret_sync_tests::{
    FIELD_MANAGER, Stack, install_crds, repo_root, scoped_namespace, unique_name,
};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

const CHART: &str = "infra/helm/secret-sync";
/// moto's account: a role in it can read what the tests create.
const MOTO_ACCOUNT: &str = "123456789012";

/// `helm template` of the chart, as JSON objects.
fn render(release: &str, namespace: &str, sets: &[String]) -> Vec<Value> {
    let stack = Stack::started().expect("the stack is up");
    let helm = PathBuf::from(stack.var("SECRET_SYNC_STACK_DIR")).join("bin/helm");
    let mut command = Command::new(&helm);
    command
        .args(["template", release])
        .arg(repo_root().join(CHART))
        .args(["--namespace", namespace]);
    for set in sets {
        command.args(["--set", set]);
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", helm.display()));
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 manifests");
    serde_saphyr::from_multiple::<Value>(&text)
        .expect("the chart renders YAML")
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The Deployment's container arguments, parsed by the controller's own flag parser.
fn controller_flags(objects: &[Value]) -> Config {
    let deployment = of_kind(objects, "Deployment")[0];
    let args: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect();
    Config::try_parse_from(std::iter::once("secret-sync-controller").chain(args))
        .unwrap_or_else(|e| panic!("the chart passes flags the controller refuses: {e}"))
}

/// Server-side applies an object, refusing unknown or duplicate fields.
async fn apply_strict(client: &kube::Client, object: &Value) -> DynamicObject {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let (resource, caps) = pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
        .await
        .unwrap_or_else(|e| panic!("{kind} is not served: {e}"));
    let name = object["metadata"]["name"].as_str().expect("name");
    let api: Api<DynamicObject> = match caps.scope {
        kube::discovery::Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_else(|| panic!("{kind} {name} has no namespace")),
            &resource,
        ),
        kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER)
            .force()
            .validation_strict(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("the apiserver refused {kind} {name}: {e}"))
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

async fn wait_label(client: &kube::Client, ns: &str, pod: &str, want: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let labels = api.get(pod).await.expect("get pod").metadata.labels;
        let now = labels.and_then(|mut l| l.remove(LEADER_LABEL));
        if now.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leader label {now:?}, wanted {want}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_cluster_store_ready(client: &kube::Client, name: &str) {
    let api: Api<ClusterSecretStore> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let store = api.get(name).await.expect("get ClusterSecretStore");
        let ready = store
            .store_status()
            .and_then(|s| s.condition(secret_sync_crd::well_known::condition::READY));
        if ready.is_some_and(|c| c.status == ConditionStatus::True) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ClusterSecretStore {name} not Ready: {:?}",
            store.status
        );
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_and_its_rbac_is_all_the_controller_needs() {
    init_logging();
    let stack = Stack::get().await;
    let admin = stack.kube().await;
    install_crds(&admin).await;
    let (release_ns, _release_ns) = scoped_namespace(&admin, "deploy", &[]).await;
    let (app_ns, _app_ns) = scoped_namespace(&admin, "deploy-app", &[]).await;

    // The release is named after its namespace, so its cluster-wide names are this run's own.
    let release = release_ns.clone();
    let fullname = format!("{release}-secret-sync");
    let class = unique_name("deploy");
    let objects = render(
        &release,
        &release_ns,
        &[
            format!("controllerClass={class}"),
            "vault.audit.enabled=true".into(),
            "vault.audit.allowedPeers={10.0.0.7,10.0.0.8}".into(),
            "webhook.enabled=true".into(),
            "webhook.secretName=webhook-secrets".into(),
            "metrics.objectSeries=false".into(),
        ],
    );
    let _rbac = Cleanup::cluster_rbac(&fullname);
    let kinds: BTreeSet<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(kind), "the chart makes no {kind}: {kinds:?}");
    }
    for object in &objects {
        apply_strict(&admin, object).await;
    }

    // The Deployment's arguments are the controller's flags.
    let config = controller_flags(&objects);
    let container =
        &of_kind(&objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(config.controller_class, class);
    assert!(config.enable_leader_election);
    assert_eq!(config.leader_election_id, fullname);
    assert_eq!(config.leader_label_pod.as_deref(), Some("$(POD_NAME)"));
    assert!(!config.object_metrics);
    assert_eq!(
        config.vault_audit_allowed_peers,
        [
            "10.0.0.7".parse::<std::net::IpAddr>().expect("ip"),
            "10.0.0.8".parse().expect("ip")
        ]
    );
    assert_eq!(
        config.webhook_secret_file.as_deref(),
        Some(std::path::Path::new("/etc/secret-sync/webhook/secrets"))
    );
    // Pushed changes reach the leader only; metrics reach every replica.
    let services = of_kind(&objects, "Service");
    let events_service = services
        .iter()
        .find(|s| s["metadata"]["name"] == fullname.as_str())
        .expect("the Service for pushed changes");
    assert_eq!(events_service["spec"]["selector"][LEADER_LABEL], "true");
    let ports: BTreeSet<&str> = events_service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(ports, BTreeSet::from(["vault-audit", "webhook"]));
    assert_eq!(config.shards, 0, "not sharded unless asked");

    // From here on, the controller's own identity.
    let token = service_account_token(&admin, &release_ns, &fullname).await;
    let sa = client_with_token(&token, &release_ns).await;
    let forbidden = Api::<SecretStore>::namespaced(sa.clone(), &app_ns)
        .delete("anything", &DeleteParams::default())
        .await
        .expect_err("RBAC is enforced");
    assert!(
        matches!(&forbidden, kube::Error::Api(s) if s.code == 403),
        "{forbidden}"
    );

    // Leader election and the leader label, as a replica runs them.
    let pod_name = format!("{fullname}-0");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": pod_name },
        "spec": { "containers": [{ "name": "controller", "image": container["image"] }] }
    }))
    .expect("pod");
    Api::<Pod>::namespaced(admin.clone(), &release_ns)
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let stop_election = CancellationToken::new();
    let lease = LeaseConfig {
        retry_period: Duration::from_millis(200),
        ..LeaseConfig::new(&config.leader_election_id, &release_ns, &pod_name)
    };
    let mut leadership = LeaderElector::new(sa.clone(), lease)
        .expect("lease config")
        .start(stop_election.clone());
    assert!(
        timeout(Duration::from_secs(10), leadership.acquired())
            .await
            .unwrap_or(false),
        "the chart's Role does not let the controller take its Lease"
    );
    let labeller = label_pod(
        sa.clone(),
        &release_ns,
        &pod_name,
        leadership.subscribe(),
        Duration::from_millis(200),
    );
    wait_label(&admin, &release_ns, &pod_name, "true").await;

    // The controller over every namespace, for this run's controller class.
    let aws = stack.aws().await;
    let _controller = start_with(&sa, "", |s| {
        s.namespace = None;
        s.controller_class = class.clone();
        s.providers.aws_base = Some(aws);
    })
    .ready()
    .await;

    // A SecretStore and an ExternalSecret templated from a ConfigMap.
    apply(
        &admin,
        &json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "template", "namespace": app_ns },
            "data": { "dsn": "postgres://app:{{ .password }}@db" }
        }),
    )
    .await;
    let fake = |data: Value| {
        json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": { "name": "fake", "namespace": app_ns },
            "spec": { "controller": class, "provider": { "fake": { "data": data } } }
        })
    };
    apply(
        &admin,
        &fake(json!([
            { "key": "db", "value": "pw-1" },
            { "key": "short-lived", "value": "soon-gone" }
        ])),
    )
    .await;
    apply(
        &admin,
        &external_secret(
            &app_ns,
            "templated",
            json!({
                "secretStoreRef": { "name": "fake" },
                "target": { "template": { "templateFrom": [
                    { "configMap": { "name": "template", "items": [{ "key": "dsn" }] } }
                ] } },
                "data": [{ "secretKey": "password", "remoteRef": { "key": "db" } }]
            }),
        ),
    )
    .await;
    let secret = wait_secret(&admin, &app_ns, "templated", |s| {
        data_of(s).contains_key("dsn")
    })
    .await;
    assert_eq!(data_of(&secret)["dsn"], "postgres://app:pw-1@db");
    wait_ready(&admin, &app_ns, "templated").await;
    wait_event(&admin, &app_ns, "templated", "Created").await;
    // A changed template is rendered at once (the ConfigMap watch needs its own rule).
    apply(
        &admin,
        &json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "template", "namespace": app_ns },
            "data": { "dsn": "postgres://app:{{ .password }}@db-2" }
        }),
    )
    .await;
    wait_secret(&admin, &app_ns, "templated", |s| {
        data_of(s).get("dsn").map(String::as_str) == Some("postgres://app:pw-1@db-2")
    })
    .await;

    // deletionPolicy Delete: the Secret goes when its value does.
    apply(
        &admin,
        &external_secret(
            &app_ns,
            "doomed",
            json!({
                "secretStoreRef": { "name": "fake" },
                "target": { "deletionPolicy": "Delete" },
                "data": [{ "secretKey": "v", "remoteRef": { "key": "short-lived" } }]
            }),
        ),
    )
    .await;
    wait_secret(&admin, &app_ns, "doomed", |s| {
        data_of(s).get("v").map(String::as_str) == Some("soon-gone")
    })
    .await;
    apply(&admin, &fake(json!([{ "key": "db", "value": "pw-1" }]))).await;
    force_sync(&admin, &app_ns, "doomed").await;
    wait_secret_gone(&admin, &app_ns, "doomed").await;

    // AWS web identity: the store's service account is read for its role, and a token is
    // requested for it.
    let sm = moto().await;
    let aws_key = unique_name("deploy/irsa");
    create_aws_secret(&sm, &aws_key, "from-irsa", &[]).await;
    let irsa: ServiceAccount = serde_json::from_value(json!({
        "metadata": { "name": "app", "annotations": {
            "eks.amazonaws.com/role-arn": format!("arn:aws:iam::{MOTO_ACCOUNT}:role/app")
        } }
    }))
    .expect("service account");
    Api::<ServiceAccount>::namespaced(admin.clone(), &app_ns)
        .create(&PostParams::default(), &irsa)
        .await
        .expect("create service account");
    apply(
        &admin,
        &json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": { "name": "aws", "namespace": app_ns },
            "spec": { "controller": class, "provider": { "aws": {
                "service": "SecretsManager", "region": stack.var("AWS_REGION"),
                "auth": { "jwt": { "serviceAccountRef": { "name": "app" } } }
            } } }
        }),
    )
    .await;
    apply(
        &admin,
        &external_secret(
            &app_ns,
            "from-aws",
            json!({
                "secretStoreRef": { "name": "aws" },
                "data": [{ "secretKey": "v", "remoteRef": { "key": aws_key } }]
            }),
        ),
    )
    .await;
    wait_secret(&admin, &app_ns, "from-aws", |s| {
        data_of(s).get("v").map(String::as_str) == Some("from-irsa")
    })
    .await;

    // A PushSecret through the same store: the source Secret is read, the PushSecret gets its
    // status (and its finalizer, under deletionPolicy Delete).
    let pushed = unique_name("deploy/pushed");
    apply(
        &admin,
        &json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": { "name": "push", "namespace": app_ns },
            "spec": {
                "deletionPolicy": "Delete",
                "secretStoreRefs": [{ "name": "aws" }],
                "selector": { "secret": { "name": "templated" } },
                "data": [{ "match": { "secretKey": "dsn", "remoteRef": { "remoteKey": pushed } } }]
            }
        }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = sm.get_secret_value().secret_id(&pushed).send().await;
        if let Ok(out) = value {
            let bytes = out
                .secret_binary
                .map(|b| b.into_inner())
                .unwrap_or_default();
            assert_eq!(bytes, b"postgres://app:pw-1@db-2");
            break;
        }
        assert!(Instant::now() < deadline, "the PushSecret pushed nothing");
        sleep(Duration::from_millis(100)).await;
    }

    // A ClusterSecretStore: validated (its status is cluster-scoped) and used from a namespace.
    let cluster_store = format!("{release}-fake");
    let _cluster_store = Cleanup::cluster_secret_store(&cluster_store);
    apply(
        &admin,
        &json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
            "metadata": { "name": cluster_store },
            "spec": { "controller": class, "provider": { "fake": { "data": [
                { "key": "shared", "value": "for-everyone" }
            ] } } }
        }),
    )
    .await;
    wait_cluster_store_ready(&admin, &cluster_store).await;
    // A ClusterSecretStore's Events land in `default`: its reference has no namespace.
    wait_event(&admin, "default", &cluster_store, "Valid").await;
    apply(
        &admin,
        &external_secret(
            &app_ns,
            "shared",
            json!({
                "secretStoreRef": { "name": cluster_store, "kind": "ClusterSecretStore" },
                "data": [{ "secretKey": "v", "remoteRef": { "key": "shared" } }]
            }),
        ),
    )
    .await;
    wait_secret(&admin, &app_ns, "shared", |s| {
        data_of(s).get("v").map(String::as_str) == Some("for-everyone")
    })
    .await;

    // A ClusterExternalSecret: its ExternalSecret is created, its status is cluster-scoped.
    let stamp = format!("{release}-stamp");
    let _stamp = Cleanup::cluster_external_secret(&stamp);
    apply(
        &admin,
        &json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
            "metadata": { "name": stamp },
            "spec": {
                "externalSecretName": "stamped",
                "namespaces": [app_ns],
                "externalSecretSpec": {
                    "secretStoreRef": { "name": cluster_store, "kind": "ClusterSecretStore" },
                    "data": [{ "secretKey": "v", "remoteRef": { "key": "shared" } }]
                }
            }
        }),
    )
    .await;
    wait_secret(&admin, &app_ns, "stamped", |s| {
        data_of(s).get("v").map(String::as_str) == Some("for-everyone")
    })
    .await;
    let stamps: Api<ClusterExternalSecret> = Api::all(admin.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while stamps
        .get(&stamp)
        .await
        .expect("get ClusterExternalSecret")
        .status
        .is_none_or(|s| s.provisioned_namespaces != [app_ns.clone()])
    {
        assert!(Instant::now() < deadline, "no ClusterExternalSecret status");
        sleep(Duration::from_millis(100)).await;
    }

    // A ClusterPushSecret: its PushSecret is created (owned by it) and pushes, its status is
    // cluster-scoped.
    let cluster_push = format!("{release}-push");
    let _cluster_push = Cleanup::cluster_push_secret(&cluster_push);
    let pushed_by_cluster = unique_name("deploy/cluster-pushed");
    apply(
        &admin,
        &json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
            "metadata": { "name": cluster_push },
            "spec": {
                "pushSecretName": "cluster-push",
                "namespaceSelectors": [{ "matchLabels": { "kubernetes.io/metadata.name": app_ns } }],
                "pushSecretSpec": {
                    "secretStoreRefs": [{ "name": "aws" }],
                    "selector": { "secret": { "name": "templated" } },
                    "data": [{ "match": { "secretKey": "dsn",
                                          "remoteRef": { "remoteKey": pushed_by_cluster } } }]
                }
            }
        }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sm
        .get_secret_value()
        .secret_id(&pushed_by_cluster)
        .send()
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the ClusterPushSecret's PushSecret pushed nothing"
        );
        sleep(Duration::from_millis(100)).await;
    }
    let cluster_pushes: Api<ClusterPushSecret> = Api::all(admin.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster_pushes
        .get(&cluster_push)
        .await
        .expect("get ClusterPushSecret")
        .status
        .is_none_or(|s| s.provisioned_namespaces != [app_ns.clone()])
    {
        assert!(Instant::now() < deadline, "no ClusterPushSecret status");
        sleep(Duration::from_millis(100)).await;
    }

    // Still leading after all that, and the label is cleared when the election ends.
    assert!(leadership.is_leader(), "the controller lost its Lease");
    stop_election.cancel();
    leadership.join().await;
    timeout(Duration::from_secs(5), labeller)
        .await
        .expect("the labeller ends with the election")
        .expect("labeller task");
    wait_label(&admin, &release_ns, &pod_name, "false").await;
}

#[tokio::test]
async fn the_default_values_lint_render_and_apply() {
    let stack = Stack::get().await;
    let admin = stack.kube().await;
    let helm = PathBuf::from(stack.var("SECRET_SYNC_STACK_DIR")).join("bin/helm");
    let lint = Command::new(&helm)
        .args(["lint", "--strict"])
        .arg(repo_root().join(CHART))
        .output()
        .expect("helm lint");
    assert!(
        lint.status.success(),
        "helm lint: {}",
        String::from_utf8_lossy(&lint.stdout)
    );

    let (ns, _ns) = scoped_namespace(&admin, "deploy-defaults", &[]).await;
    let objects = render(&ns, &ns, &[]);
    let _rbac = Cleanup::cluster_rbac(&format!("{ns}-secret-sync"));
    for object in &objects {
        apply_strict(&admin, object).await;
    }
    let config = controller_flags(&objects);
    assert!(config.enable_leader_election, "two replicas need a leader");
    assert_eq!(config.controller_class, "default");
    assert!(config.object_metrics, "ESO's per-object series by default");
    assert_eq!(
        config.leader_label_pod, None,
        "nothing listens, so no label"
    );
    assert_eq!(config.vault_audit_addr, None);
    assert_eq!(config.webhook_addr, None);
    // Nothing listens: only the metrics Service.
    let services: Vec<&str> = of_kind(&objects, "Service")
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .collect();
    assert_eq!(services, [format!("{ns}-secret-sync-metrics")]);
}

#[test]
fn values_that_cannot_work_are_refused_at_render_time() {
    // No stack needed for rendering; helm comes from the stack's cache all the same.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let stack = runtime.block_on(Stack::get());
    let helm = PathBuf::from(stack.var("SECRET_SYNC_STACK_DIR")).join("bin/helm");
    for (sets, says) in [
        (
            vec!["vault.audit.enabled=true"],
            "vault.audit.allowedPeers is required",
        ),
        (
            vec!["webhook.enabled=true"],
            "webhook.secretName is required",
        ),
        (
            vec!["leaderElection.enabled=false"],
            "replicaCount > 1 needs leaderElection.enabled",
        ),
        (
            vec![
                "leaderElection.enabled=false",
                "replicaCount=1",
                "sharding.enabled=true",
            ],
            "sharding.enabled needs leaderElection.enabled",
        ),
    ] {
        let mut command = Command::new(&helm);
        command.args(["template", "x"]).arg(repo_root().join(CHART));
        for set in &sets {
            command.args(["--set", set]);
        }
        let out = command.output().expect("helm template");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sets:?} rendered");
        assert!(stderr.contains(says), "{sets:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sharded_chart_lets_a_replica_take_renew_and_hand_back_its_shards() {
    init_logging();
    let stack = Stack::get().await;
    let admin = stack.kube().await;
    install_crds(&admin).await;
    let (release_ns, _release_ns) = scoped_namespace(&admin, "deploy-shards", &[]).await;
    let release = release_ns.clone();
    let fullname = format!("{release}-secret-sync");
    let objects = render(
        &release,
        &release_ns,
        &[
            "sharding.enabled=true".into(),
            "sharding.shards=4".into(),
            "webhook.enabled=true".into(),
            "webhook.secretName=webhook-secrets".into(),
        ],
    );
    let _rbac = Cleanup::cluster_rbac(&fullname);
    for object in &objects {
        apply_strict(&admin, object).await;
    }
    let config = controller_flags(&objects);
    assert_eq!(config.shards, 4);
    assert_eq!(config.shard_peer_addr.port(), 8084);
    assert_eq!(
        config.leader_label_pod, None,
        "every replica takes pushed changes: no leader label"
    );
    let container =
        &of_kind(&objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e["name"] == "POD_IP"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"),
        "the replicas advertise their Pod IP"
    );
    let events_service = of_kind(&objects, "Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == fullname.as_str())
        .expect("the Service for pushed changes");
    assert!(events_service["spec"]["selector"][LEADER_LABEL].is_null());
    // The generated signing secret.
    let secret = of_kind(&objects, "Secret")
        .into_iter()
        .find(|s| s["metadata"]["name"] == format!("{fullname}-shards").as_str())
        .expect("the shards' Secret");
    assert!(
        secret["data"]["secret"]
            .as_str()
            .is_some_and(|s| s.len() >= 48)
    );

    // As the chart's service account: one replica takes every shard, then hands them back.
    let token = service_account_token(&admin, &release_ns, &fullname).await;
    let sa = client_with_token(&token, &release_ns).await;
    let lease = LeaseConfig {
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(300),
        ..LeaseConfig::new(&config.leader_election_id, &release_ns, "replica-a")
    };
    let peers = Peers::new(
        ShardSettings {
            count: config.shards,
            lease,
            peer_url: "http://127.0.0.1:1".into(),
            secret: b"not-used-here".to_vec(),
        },
        secret_sync_controller::Metrics::new(),
    )
    .expect("peers");
    let manager = ShardManager::new(sa.clone(), peers.clone()).expect("manager");
    let stop = CancellationToken::new();
    let running = tokio::spawn(manager.run(stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(15);
    while peers.shards().held().len() < 4 {
        assert!(
            Instant::now() < deadline,
            "the chart's Role does not let a replica take its shards: {:?}",
            peers.shards().held()
        );
        sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    let (manager, kept) = running.await.expect("manager task");
    kept.expect("no shard lost");
    manager.leave().await;
    let leases =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(admin.clone(), &release_ns)
            .list(&Default::default())
            .await
            .expect("leases");
    let names: Vec<String> = leases
        .items
        .iter()
        .filter_map(|l| l.metadata.name.clone())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("-member-")),
        "the member Lease was removed on leaving: {names:?}"
    );
    for lease in &leases.items {
        let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
        assert_eq!(holder, None, "{:?} still held", lease.metadata.name);
    }
    assert_eq!(names.len(), 4, "one Lease per shard: {names:?}");
}
