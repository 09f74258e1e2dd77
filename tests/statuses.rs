//! The engine's status writer (`secret_sync::statuses`) against the local apiserver: a queued
//! status is written behind the caller, the newest of several queued wins, a direct write
//! replaces a queued one and lands last, a queued write holds its shard until written, and a
//! write for an ExternalSecret that is gone settles instead of waiting for ever.
//!
//! The ExternalSecrets here name a store of a controller class nobody serves, so a controller
//! left running on the stack (the demo's) skips them and writes no status of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use secret_sync::Observer;
use secret_sync::shards::Shards;
use secret_sync::statuses::Statuses;
use secret_sync_crd::{
    ConditionStatus, ExternalSecret, ExternalSecretConditionType, ExternalSecretStatus,
    ExternalSecretStatusCondition,
};
use secret_sync_tests::cleanup::Cleanup;
use secret_sync_tests::controller::{apply, hourly_reader};
use secret_sync_tests::{Stack, install_crds, scoped_namespace, unique_name};
use serde_json::json;

/// Counts the status writes the writer reports, and keeps the last queue depth and the deepest.
#[derive(Default)]
struct Writes(AtomicUsize, AtomicUsize, AtomicUsize);

impl Observer for Writes {
    fn status_write(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn status_queue(&self, depth: usize) {
        self.1.store(depth, Ordering::Relaxed);
        self.2.fetch_max(depth, Ordering::Relaxed);
    }
}

impl Writes {
    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// A status recording a sync at `second` past a fixed instant, with `message`.
fn status(second: i64, message: &str) -> ExternalSecretStatus {
    let at = Time(Timestamp::from_second(1_800_000_000 + second).expect("time"));
    ExternalSecretStatus {
        refresh_time: Some(at.clone()),
        synced_resource_version: Some(format!("1-{second}")),
        conditions: vec![ExternalSecretStatusCondition {
            type_: ExternalSecretConditionType::Ready,
            status: ConditionStatus::True,
            reason: Some("SecretSynced".into()),
            message: Some(message.into()),
            last_transition_time: Some(at),
        }],
        ..Default::default()
    }
}

struct Fixture {
    api: Api<ExternalSecret>,
    writes: Arc<Writes>,
    statuses: Statuses,
    _ns: Cleanup,
}

impl Fixture {
    async fn new(prefix: &str) -> (Self, ExternalSecret) {
        let client = Stack::get().await.kube().await;
        install_crds(&client).await;
        let (ns, guard) = scoped_namespace(&client, prefix, &[]).await;
        let class = unique_name("nobody");
        apply(
            &client,
            &json!({
                "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                "metadata": { "name": "elsewhere", "namespace": ns },
                "spec": { "controller": class, "provider": { "fake": { "data": [] } } }
            }),
        )
        .await;
        apply(&client, &hourly_reader(&ns, "db", "elsewhere", "db")).await;
        let api = Api::<ExternalSecret>::namespaced(client.clone(), &ns);
        let es = api.get("db").await.expect("the ExternalSecret");
        let writes = Arc::new(Writes::default());
        let statuses = Statuses::new(client.clone(), writes.clone(), Box::new(|_| {}));
        let fixture = Self {
            api,
            writes,
            statuses,
            _ns: guard,
        };
        (fixture, es)
    }

    async fn stored(&self) -> Option<ExternalSecretStatus> {
        self.api.get("db").await.expect("get").status
    }

    async fn flushed(&self) {
        assert!(
            self.statuses.flush(Duration::from_secs(30)).await,
            "{} statuses still queued",
            self.statuses.outstanding()
        );
    }
}

// Each test runs on one thread: nothing else runs between two calls that do not await, so the
// order of queued and direct writes is the test's.

#[tokio::test]
async fn the_newest_queued_status_wins_and_a_direct_write_replaces_a_queued_one() {
    let (f, es) = Fixture::new("statuses-order").await;

    // Two queued before a writer runs: one write, of the second.
    assert_eq!(f.statuses.defer(&es, &status(1, "first"), None), Some(true));
    assert_eq!(
        f.statuses.defer(&es, &status(2, "second"), None),
        Some(true)
    );
    assert_eq!(f.statuses.outstanding(), 1);
    f.flushed().await;
    assert_eq!(f.stored().await, Some(status(2, "second")));
    assert_eq!(
        f.writes.count(),
        1,
        "the first status was replaced, not written"
    );
    let depths = (
        f.writes.1.load(Ordering::Relaxed),
        f.writes.2.load(Ordering::Relaxed),
    );
    assert_eq!(depths, (0, 1), "the queue depth reported: last, deepest");

    // A direct write after a queued one: it takes the queued one's place and lands last.
    let es = f.api.get("db").await.expect("get");
    assert_eq!(
        f.statuses.defer(&es, &status(3, "queued"), None),
        Some(true)
    );
    let wrote = f
        .statuses
        .write(&es, &status(4, "direct"))
        .await
        .expect("direct write");
    assert!(wrote);
    assert_eq!(
        f.statuses.outstanding(),
        0,
        "the queued status was replaced"
    );
    f.flushed().await;
    assert_eq!(f.stored().await, Some(status(4, "direct")));
    assert_eq!(f.writes.count(), 2);

    // What the object already has is neither queued nor written.
    let es = f.api.get("db").await.expect("get");
    assert_eq!(
        f.statuses.defer(&es, &status(4, "direct"), None),
        Some(false)
    );
    assert!(
        !f.statuses
            .write(&es, &status(4, "direct"))
            .await
            .expect("write")
    );
    assert_eq!(f.writes.count(), 2);

    // A direct write of the status the engine believes written (its overlay shows the queued
    // status as the object's) is still written when it replaces that queued status.
    let mut overlaid = es.clone();
    overlaid.status = Some(status(5, "overlay"));
    assert_eq!(
        f.statuses.defer(&es, &status(5, "overlay"), None),
        Some(true)
    );
    assert!(
        f.statuses
            .write(&overlaid, &status(5, "overlay"))
            .await
            .expect("write")
    );
    f.flushed().await;
    assert_eq!(f.stored().await, Some(status(5, "overlay")));
}

#[tokio::test]
async fn a_queued_status_holds_its_shard_until_it_is_written() {
    let (f, es) = Fixture::new("statuses-shard").await;
    let shards = Shards::all();
    let namespace = es.metadata.namespace.clone().expect("namespace");
    let guard = shards.enter(&namespace).expect("the one shard is held");
    assert_eq!(
        f.statuses.defer(&es, &status(7, "held"), Some(guard)),
        Some(true)
    );
    assert_eq!(shards.in_flight(0), 1);
    // Giving the shard up waits for the write: once it returns, the status is there.
    tokio::time::timeout(Duration::from_secs(30), shards.give_up(0))
        .await
        .expect("the shard is given up once the status is written");
    assert_eq!(f.stored().await, Some(status(7, "held")));
    assert_eq!(f.writes.count(), 1);
}

#[tokio::test]
async fn a_status_for_an_external_secret_that_is_gone_settles() {
    let (f, es) = Fixture::new("statuses-gone").await;
    let mut gone = es.clone();
    gone.metadata.name = Some(unique_name("deleted"));
    gone.metadata.uid = Some(unique_name("uid"));
    assert_eq!(
        f.statuses.defer(&gone, &status(9, "lost"), None),
        Some(true)
    );
    f.flushed().await;
    assert_eq!(f.writes.count(), 0, "nothing was written");
    assert_eq!(
        f.stored().await,
        None,
        "the other ExternalSecret is untouched"
    );
}
