//! The controller as users deploy it: the image (built from this profile's binary) run by a real
//! kubelet with containerd and runc (the stack's opt-in node), installed with the Helm chart,
//! syncing with only the chart's ServiceAccount and RBAC.

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, LogParams};
use kube::config::Kubeconfig;
use secret_sync_tests::aws_events::EventQueue;
use secret_sync_tests::controller::{
    apply, aws_store, aws_store_object, create_aws_secret, fake_store, hourly_reader, init_logging,
    moto, put_aws_secret,
};
use secret_sync_tests::node::{IMAGE_REPOSITORY, IMAGE_TAG, Node};
use secret_sync_tests::{Stack, install_crds, repo_root, scoped_namespace, unique_name};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

/// The apiserver's port, from the stack's kubeconfig: Pods on the node reach it at the node's
/// gateway on the same port (there is no Service network).
fn apiserver_port(stack: &Stack) -> String {
    let kubeconfig = Kubeconfig::read_from(stack.var("KUBECONFIG")).expect("kubeconfig");
    let server = kubeconfig.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .expect("server");
    server.rsplit(':').next().expect("port").to_owned()
}

/// `url` (a server of the stack on loopback) as Pods on the node reach it: at the gateway.
fn via_gateway(stack: &Stack, url: &str) -> String {
    url.replace("127.0.0.1", stack.var("SECRET_SYNC_NODE_GATEWAY"))
}

/// `helm <args>` against the stack.
fn helm(stack: &Stack, args: &[&str]) {
    let helm = std::path::Path::new(stack.var("SECRET_SYNC_STACK_DIR")).join("bin/helm");
    let output = Command::new(helm)
        .args(args)
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .current_dir(repo_root())
        .output()
        .expect("helm");
    assert!(
        output.status.success(),
        "helm {}: {}",
        args.first().copied().unwrap_or_default(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Uninstalls the release (its cluster-wide RBAC too) when dropped.
struct Release<'a> {
    stack: &'a Stack,
    name: String,
    namespace: String,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let helm = std::path::Path::new(self.stack.var("SECRET_SYNC_STACK_DIR")).join("bin/helm");
        let _ = Command::new(helm)
            .args(["uninstall", &self.name, "-n", &self.namespace])
            .env("KUBECONFIG", self.stack.var("KUBECONFIG"))
            .output();
    }
}

async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, check: impl Fn() -> F) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(done) = check().await {
            return done;
        }
        assert!(Instant::now() < deadline, "{what} within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `helm install <name>` of the chart in `ns` with the node's image: one replica in the node's
/// Pod network, serving the controller class `ns` in `ns` only, reaching the apiserver and moto
/// through the node's gateway; `extra` values added (a later value wins).
fn install(stack: &Stack, name: &str, ns: &str, extra: &[(&str, &str)]) {
    let gateway = stack.var("SECRET_SYNC_NODE_GATEWAY");
    let api_port = apiserver_port(stack);
    let aws_endpoint = via_gateway(stack, stack.var("AWS_ENDPOINT_URL"));
    let values = [
        ("image.repository", IMAGE_REPOSITORY),
        ("image.tag", IMAGE_TAG),
        ("image.pullPolicy", "Never"),
        ("replicaCount", "1"),
        ("controllerClass", ns),
        ("namespace", ns),
        ("extraEnv[0].name", "KUBERNETES_SERVICE_HOST"),
        ("extraEnv[0].value", gateway),
        ("extraEnv[1].name", "KUBERNETES_SERVICE_PORT"),
        ("extraEnv[1].value", api_port.as_str()),
        ("extraEnv[2].name", "AWS_ENDPOINT_URL"),
        ("extraEnv[2].value", aws_endpoint.as_str()),
        ("extraEnv[3].name", "AWS_REGION"),
        ("extraEnv[3].value", stack.var("AWS_REGION")),
        ("extraEnv[4].name", "AWS_ACCESS_KEY_ID"),
        ("extraEnv[4].value", stack.var("AWS_ACCESS_KEY_ID")),
        ("extraEnv[5].name", "AWS_SECRET_ACCESS_KEY"),
        ("extraEnv[5].value", stack.var("AWS_SECRET_ACCESS_KEY")),
    ];
    let mut args: Vec<String> = ["install", name, "infra/helm/secret-sync", "-n", ns]
        .map(str::to_owned)
        .into();
    for (k, v) in values.iter().chain(extra) {
        args.push("--set-string".to_owned());
        args.push(format!("{k}={v}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    helm(stack, &args);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_runs_the_image_on_a_node_syncs_and_a_bad_flag_crash_loops_readably() {
    init_logging();
    Node::get().await;
    let stack = Stack::get().await;
    let client = stack.kube().await;
    install_crds(&client).await;
    let (ns, _guard) = scoped_namespace(&client, "node", &[]).await;
    // The release serves a class of its own, so it leaves every other test's stores alone.
    let class = ns.clone();
    let mut store = fake_store(
        &ns,
        "fake",
        json!([{ "key": "db", "value": "from-the-node" }]),
    );
    store["spec"]["controller"] = json!(class);
    apply(&client, &store).await;
    apply(&client, &hourly_reader(&ns, "db", "fake", "db")).await;

    let release = Release {
        stack,
        name: ns.clone(),
        namespace: ns.clone(),
    };
    let started = Instant::now();
    install(stack, &release.name, &ns, &[]);

    // The Pod becomes Ready through its probes.
    let deployment = format!("{}-secret-sync", release.name);
    available(&client, &ns, &deployment, 1).await;
    let ready_after = started.elapsed();
    eprintln!("helm install → Deployment Available (Pod Ready): {ready_after:?}");

    // The in-cluster controller syncs, with the chart's ServiceAccount and RBAC only.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let s = &secrets;
    let value = eventually("the Secret synced by the Pod", || async move {
        s.get_opt("db")
            .await
            .ok()
            .flatten()?
            .data?
            .get("password")
            .map(|b| b.0.clone())
    })
    .await;
    assert_eq!(value, b"from-the-node");

    // A bad flag: the new Pod crash-loops, and says why in a line a person reads; the old one
    // keeps serving (the rollout waits for the new Pod to be Ready).
    let upgrade = [
        "upgrade",
        &release.name,
        "infra/helm/secret-sync",
        "-n",
        &ns,
        "--reuse-values",
        "--set",
        "extraArgs={--no-such-flag}",
    ];
    helm(stack, &upgrade);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let p = &pods;
    let crashing = eventually("a Pod in CrashLoopBackOff", || async move {
        let list = p.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find_map(|pod| {
            let waiting = pod
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .state
                .as_ref()?
                .waiting
                .as_ref()?
                .reason
                .clone()?;
            (waiting == "CrashLoopBackOff").then(|| pod.metadata.name.clone().unwrap_or_default())
        })
    })
    .await;
    let logs = pods
        .logs(
            &crashing,
            &LogParams {
                previous: true,
                ..LogParams::default()
            },
        )
        .await
        .expect("the crashed container's log");
    assert!(
        logs.contains("unexpected argument '--no-such-flag'"),
        "{logs}"
    );
    // The Pod that worked is still serving.
    assert_eq!(
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .get(&deployment)
            .await
            .expect("Deployment")
            .status
            .and_then(|s| s.available_replicas),
        Some(1)
    );
}

/// The Deployment `name` in `ns` has `replicas` available.
async fn available(client: &kube::Client, ns: &str, name: &str, replicas: i32) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = &deployments;
    eventually(&format!("{name} Available"), || async move {
        let status = d.get(name).await.ok()?.status?;
        (status.available_replicas == Some(replicas)).then_some(())
    })
    .await;
}

/// Two replicas of one Deployment, with leader election, on the node's Pod network. The
/// leader's Pod is deleted, then the next leader's is killed, and each time a rotation's event
/// goes to the queue while it goes; whoever leads next syncs it. Then `helm upgrade` rolls both
/// Pods while rotations of several keys are sent one after another: each key's Secret ends at
/// its newest value (every event handled, none hidden by a later one for the same key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_hand_over_when_the_leader_is_deleted_killed_or_rolled_and_nothing_is_lost() {
    init_logging();
    Node::get().await;
    let stack = Stack::get().await;
    let client = stack.kube().await;
    install_crds(&client).await;
    let (ns, _guard) = scoped_namespace(&client, "failover", &[]).await;
    let queue = EventQueue::create(&unique_name("failover"), 5).await;
    let sm = moto().await;
    const KEYS: usize = 6;
    let keys: Vec<String> = (0..KEYS)
        .map(|i| unique_name(&format!("node/failover-{i}")))
        .collect();
    aws_store(&client, &ns, "aws").await;
    let mut store = aws_store_object(&ns, "aws", "aws-credentials");
    store["spec"]["controller"] = json!(ns);
    apply(&client, &store).await;
    for (i, key) in keys.iter().enumerate() {
        create_aws_secret(&sm, key, "v1", &[]).await;
        apply(
            &client,
            &hourly_reader(&ns, &format!("app-{i}"), "aws", key),
        )
        .await;
    }

    let lease = format!("{ns}-lease");
    let release = Release {
        stack,
        name: ns.clone(),
        namespace: ns.clone(),
    };
    install(
        stack,
        &release.name,
        &ns,
        &[
            ("replicaCount", "2"),
            ("leaderElection.id", lease.as_str()),
            ("sqs.queueUrl", queue.url.as_str()),
        ],
    );
    let deployment = format!("{}-secret-sync", release.name);
    available(&client, &ns, &deployment, 2).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let s = &secrets;
    let value_of = |name: String| async move {
        s.get_opt(&name)
            .await
            .ok()
            .flatten()?
            .data?
            .get("password")
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    for i in 0..KEYS {
        eventually("v1 synced by the leader", || async move {
            (value_of(format!("app-{i}")).await.as_deref() == Some("v1")).then_some(())
        })
        .await;
    }

    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let holder = || async {
        leases
            .get(&lease)
            .await
            .ok()?
            .spec?
            .holder_identity
            .filter(|h| !h.is_empty())
    };
    for (round, grace) in [("deleted", None), ("killed", Some(0))] {
        available(&client, &ns, &deployment, 2).await;
        let leader = eventually("a leader", &holder).await;
        let leader_pod = leader.split('_').next().expect("pod name").to_owned();
        let value = format!("v-{round}");
        let gone = Instant::now();
        pods.delete(
            &leader_pod,
            &DeleteParams {
                grace_period_seconds: grace,
                ..DeleteParams::default()
            },
        )
        .await
        .expect("delete the leader's Pod");
        if grace == Some(0) {
            // Killed once its renewals stop (it renews every 2 s): the event then comes while
            // nobody leads, and only the next leader can sync it.
            let renewed = || async { leases.get(&lease).await.ok()?.spec?.renew_time.map(|t| t.0) };
            let mut last = renewed().await;
            let mut quiet_since = Instant::now();
            while quiet_since.elapsed() < Duration::from_secs(3) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let now = renewed().await;
                if now != last {
                    last = now;
                    quiet_since = Instant::now();
                }
                assert!(gone.elapsed() < WAIT, "the killed leader kept renewing");
            }
        }
        put_aws_secret(&sm, &keys[0], &value).await;
        queue.put_api_call("PutSecretValue", &keys[0], None).await;
        let v = value.as_str();
        eventually(&format!("{value} synced"), || async move {
            (value_of("app-0".to_owned()).await.as_deref() == Some(v)).then_some(())
        })
        .await;
        let took = gone.elapsed();
        let next = eventually("a new leader", || async {
            holder().await.filter(|h| *h != leader)
        })
        .await;
        assert!(!next.starts_with(&format!("{leader_pod}_")), "{next}");
        eprintln!("leader {round} → the rotation sent meanwhile in its Secret: {took:?}");
    }

    // `helm upgrade` rolls both Pods (a new Pod is Ready before an old one goes), while keys are
    // rotated one after another, each with its event, until the rollout is over.
    available(&client, &ns, &deployment, 2).await;
    let leader = eventually("a leader", &holder).await;
    let annotation = format!("podAnnotations.rolled={}", unique_name("at"));
    let started = Instant::now();
    helm(
        stack,
        &[
            "upgrade",
            &release.name,
            "infra/helm/secret-sync",
            "-n",
            &ns,
            "--reuse-values",
            "--set-string",
            &annotation,
        ],
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let rolled = || async {
        let d = deployments.get(&deployment).await.ok()?;
        let status = d.status?;
        let done = status.observed_generation >= d.metadata.generation
            && status.updated_replicas == Some(2)
            && status.available_replicas == Some(2)
            && status.replicas == Some(2);
        let pods = pods.list(&ListParams::default()).await.ok()?.items;
        let settled =
            pods.len() == 2 && pods.iter().all(|p| p.metadata.deletion_timestamp.is_none());
        (done && settled).then_some(())
    };
    let mut latest = vec!["v1".to_owned(); KEYS];
    let mut sent = 0;
    while rolled().await.is_none() || sent < KEYS {
        assert!(started.elapsed() < WAIT, "the rollout within {WAIT:?}");
        let i = sent % KEYS;
        latest[i] = format!("rolled-{sent}");
        put_aws_secret(&sm, &keys[i], &latest[i]).await;
        queue.put_api_call("PutSecretValue", &keys[i], None).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rollout = started.elapsed();
    let last_sent = Instant::now();
    for (i, want) in latest.iter().enumerate() {
        eventually(&format!("app-{i} at {want}"), || async move {
            (value_of(format!("app-{i}")).await.as_deref() == Some(want.as_str())).then_some(())
        })
        .await;
    }
    let next = eventually("a leader after the rollout", || async {
        holder().await.filter(|h| *h != leader)
    })
    .await;
    let new_pods: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert!(
        new_pods.iter().any(|p| next.starts_with(&format!("{p}_"))),
        "{next} leads, not one of the rolled Pods {new_pods:?}"
    );
    eprintln!(
        "helm upgrade rolled 2 Pods in {rollout:?} with {sent} rotations sent meanwhile; every key at its newest value {:?} after the rollout",
        last_sent.elapsed()
    );
}
