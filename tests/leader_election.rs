//! Leader election against the real kube-apiserver: one leader at a time, a released lease is
//! taken over at the next retry, an abandoned one after the lease duration, and a leader that
//! finds someone else holding its lease says it lost. Timings are shortened (lease 2s, renew
//! deadline 1.5s, retry 200ms) so the tests take seconds.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use secret_sync_controller::leader::{
    LEADER_LABEL, LeaderElector, LeaderState, Leadership, LeaseConfig, label_pod,
};
use secret_sync_tests::{Stack, scoped_namespace};
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

const LEASE: &str = "secret-sync-controller";
const RETRY: Duration = Duration::from_millis(200);
/// client-go's jitter: a standby waits between 1 and 2.2 retry periods between attempts.
const MAX_RETRY_WAIT: Duration = Duration::from_millis(440);

fn config(ns: &str, identity: &str, lease_duration: Duration) -> LeaseConfig {
    LeaseConfig {
        lease_duration,
        renew_deadline: lease_duration.mul_f64(0.75),
        retry_period: RETRY,
        ..LeaseConfig::new(LEASE, ns, identity)
    }
}

fn start(client: &kube::Client, config: LeaseConfig, stop: &CancellationToken) -> Leadership {
    LeaderElector::new(client.clone(), config)
        .expect("valid lease config")
        .start(stop.clone())
}

async fn lease_spec(client: &kube::Client, ns: &str) -> LeaseSpec {
    Api::<Lease>::namespaced(client.clone(), ns)
        .get(LEASE)
        .await
        .expect("get lease")
        .spec
        .expect("lease has a spec")
}

async fn acquired_within(leadership: &mut Leadership, limit: Duration) -> bool {
    timeout(limit, leadership.acquired()).await.unwrap_or(false)
}

#[tokio::test]
async fn two_electors_on_one_lease_yield_exactly_one_leader() {
    let client = Stack::get().await.kube().await;
    let (ns, _cleanup) = scoped_namespace(&client, "leader-one", &[]).await;
    let stop = CancellationToken::new();
    let lease_duration = Duration::from_secs(2);
    let a = start(&client, config(&ns, "a", lease_duration), &stop);
    let b = start(&client, config(&ns, "b", lease_duration), &stop);

    let first = timeout(Duration::from_secs(10), async {
        loop {
            if a.is_leader() || b.is_leader() {
                break;
            }
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(first.is_ok(), "nobody acquired the lease within 10s");
    let leader = if a.is_leader() { "a" } else { "b" };

    // Watch for longer than a lease duration: the leader renews, the standby never takes over.
    let until = Instant::now() + lease_duration + Duration::from_secs(1);
    while Instant::now() < until {
        assert!(!(a.is_leader() && b.is_leader()), "two leaders at once");
        let now = if a.is_leader() { "a" } else { "b" };
        assert_eq!(now, leader, "leadership moved while the leader was healthy");
        sleep(Duration::from_millis(25)).await;
    }
    let spec = lease_spec(&client, &ns).await;
    assert_eq!(spec.holder_identity.as_deref(), Some(leader));
    assert_eq!(spec.lease_transitions, Some(1));
    assert_eq!(spec.lease_duration_seconds, Some(2));

    stop.cancel();
    a.join().await;
    b.join().await;
    let spec = lease_spec(&client, &ns).await;
    assert_eq!(spec.holder_identity, None, "the leader released on stop");
}

#[tokio::test]
async fn a_released_lease_is_taken_over_at_the_standbys_next_retry() {
    let client = Stack::get().await.kube().await;
    let (ns, _cleanup) = scoped_namespace(&client, "leader-release", &[]).await;
    // A long lease: a takeover well before it ends can only come from the release.
    let lease_duration = Duration::from_secs(10);
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let mut a = start(&client, config(&ns, "a", lease_duration), &stop_a);
    assert!(acquired_within(&mut a, Duration::from_secs(10)).await);
    let mut b = start(&client, config(&ns, "b", lease_duration), &stop_b);
    sleep(3 * RETRY).await;
    assert_eq!(b.state(), LeaderState::Standby);

    stop_a.cancel();
    a.join().await;
    let released = Instant::now();
    // Released: nobody holds it, or the standby already took it (its retry may fall just here).
    let holder = lease_spec(&client, &ns).await.holder_identity;
    assert!(
        holder.is_none() || holder.as_deref() == Some("b"),
        "held by {holder:?} after the leader stopped"
    );

    assert!(acquired_within(&mut b, lease_duration).await);
    let took = released.elapsed();
    assert!(
        took < MAX_RETRY_WAIT + Duration::from_secs(1),
        "took {took:?} to take over a released lease"
    );
    let spec = lease_spec(&client, &ns).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(2));

    stop_b.cancel();
    b.join().await;
}

#[tokio::test]
async fn a_leader_that_stops_renewing_is_replaced_after_the_lease_duration() {
    let client = Stack::get().await.kube().await;
    let (ns, _cleanup) = scoped_namespace(&client, "leader-crash", &[]).await;
    let lease_duration = Duration::from_secs(2);

    // `a` acquires once and then vanishes without releasing, as a crashed pod would.
    let mut a = LeaderElector::new(client.clone(), config(&ns, "a", lease_duration))
        .expect("valid lease config");
    let before_acquire = Instant::now();
    assert!(a.try_acquire_or_renew().await.expect("acquire"));
    let acquired = lease_spec(&client, &ns).await;
    drop(a);

    let stop = CancellationToken::new();
    let mut b = start(&client, config(&ns, "b", lease_duration), &stop);
    assert!(acquired_within(&mut b, Duration::from_secs(10)).await);
    let took = before_acquire.elapsed();
    assert!(
        took >= lease_duration,
        "took over after {took:?}, before the lease expired"
    );
    assert!(
        took < lease_duration + MAX_RETRY_WAIT + Duration::from_secs(1),
        "took {took:?} to take over an expired lease"
    );
    let spec = lease_spec(&client, &ns).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(2));
    assert_ne!(spec.acquire_time, acquired.acquire_time);

    stop.cancel();
    b.join().await;
}

#[tokio::test]
async fn a_leader_that_finds_another_holder_reports_leadership_lost() {
    let client = Stack::get().await.kube().await;
    let (ns, _cleanup) = scoped_namespace(&client, "leader-lost", &[]).await;
    let stop = CancellationToken::new();
    let mut a = start(&client, config(&ns, "a", Duration::from_secs(2)), &stop);
    assert!(acquired_within(&mut a, Duration::from_secs(10)).await);

    // Someone else writes the lease (as a candidate would after a partition).
    let api = Api::<Lease>::namespaced(client.clone(), &ns);
    let mut lease = api.get(LEASE).await.expect("get lease");
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = Some("intruder".into());
    }
    api.replace(LEASE, &PostParams::default(), &lease)
        .await
        .expect("take the lease over");

    let state = timeout(Duration::from_secs(5), a.lost())
        .await
        .expect("the leader noticed within 5s");
    assert_eq!(state, LeaderState::Lost);
    a.join().await;
    let spec = lease_spec(&client, &ns).await;
    assert_eq!(
        spec.holder_identity.as_deref(),
        Some("intruder"),
        "a leader that lost must not release someone else's lease"
    );
}

/// A Pod object for a replica (never scheduled: the local control plane has no scheduler),
/// carrying `leader` as its leader label when given.
async fn replica_pod(client: &kube::Client, ns: &str, name: &str, leader: Option<&str>) {
    let labels: std::collections::BTreeMap<&str, &str> =
        leader.map(|v| (LEADER_LABEL, v)).into_iter().collect();
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "labels": labels },
        "spec": { "containers": [{ "name": "controller", "image": "secret-sync-controller" }] }
    }))
    .expect("pod object");
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
}

async fn leader_label(client: &kube::Client, ns: &str, pod: &str) -> Option<String> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .get(pod)
        .await
        .expect("get pod")
        .metadata
        .labels
        .and_then(|mut l| l.remove(LEADER_LABEL))
}

async fn wait_labels(client: &kube::Client, ns: &str, want: [(&str, &str); 2]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut now = Vec::new();
        for (pod, _) in want {
            now.push(leader_label(client, ns, pod).await);
        }
        if want
            .iter()
            .zip(&now)
            .all(|((_, v), n)| n.as_deref() == Some(*v))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leader labels {now:?}, wanted {want:?}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn only_the_leaders_pod_carries_the_leader_label_and_it_moves_on_takeover() {
    let client = Stack::get().await.kube().await;
    let (ns, _cleanup) = scoped_namespace(&client, "leader-label", &[]).await;
    // pod-b starts with a stale "true", as after a container restart of a former leader.
    replica_pod(&client, &ns, "pod-a", None).await;
    replica_pod(&client, &ns, "pod-b", Some("true")).await;
    let lease_duration = Duration::from_secs(10);
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let mut a = start(&client, config(&ns, "a", lease_duration), &stop_a);
    assert!(acquired_within(&mut a, Duration::from_secs(10)).await);
    let label_a = label_pod(client.clone(), &ns, "pod-a", a.subscribe(), RETRY);
    let b = start(&client, config(&ns, "b", lease_duration), &stop_b);
    let label_b = label_pod(client.clone(), &ns, "pod-b", b.subscribe(), RETRY);
    wait_labels(&client, &ns, [("pod-a", "true"), ("pod-b", "false")]).await;

    // The leader stops: its label is cleared before its labeller ends, and the standby that
    // takes over labels its own pod.
    stop_a.cancel();
    a.join().await;
    timeout(Duration::from_secs(5), label_a)
        .await
        .expect("the labeller ends with the election")
        .expect("labeller task");
    assert_eq!(
        leader_label(&client, &ns, "pod-a").await.as_deref(),
        Some("false")
    );
    wait_labels(&client, &ns, [("pod-a", "false"), ("pod-b", "true")]).await;

    stop_b.cancel();
    b.join().await;
    timeout(Duration::from_secs(5), label_b)
        .await
        .expect("the labeller ends with the election")
        .expect("labeller task");
    assert_eq!(
        leader_label(&client, &ns, "pod-b").await.as_deref(),
        Some("false")
    );
}
