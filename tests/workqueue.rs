//! `workqueue_depth` under a backlog: ExternalSecrets that cannot sync yet (their SecretStore
//! does not exist) are counted as waiting, and the count falls to nothing once they sync.

use std::time::Duration;

use secret_sync_tests::controller::{apply, external_secret, fake_store, setup, wait_ready};
use serde_json::json;
use tokio::time::{Instant, sleep};

/// The sampled depth of the ExternalSecret queue, as the metrics endpoint shows it.
fn depth(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with("workqueue_depth{") && l.contains("controller=\"externalsecret\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
}

/// Waits (the gauge is sampled every 5 s) until `done` holds for the depth; the depth then.
async fn wait_depth(
    t: &secret_sync_tests::controller::TestNamespace,
    what: &str,
    done: impl Fn(u64) -> bool,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = t.controller.metrics.encode().expect("metrics encode");
        if let Some(d) = depth(&text)
            && done(d)
        {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "workqueue_depth never {what}; now {:?}",
            depth(&text)
        );
        sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workqueue_depth_counts_a_backlog_and_drains_to_zero() {
    let t = setup("workqueue").await;
    const WAITING: u64 = 12;
    for i in 0..WAITING {
        apply(
            &t.client,
            &external_secret(
                &t.ns,
                &format!("waiting-{i}"),
                json!({
                    "refreshInterval": "1h",
                    "secretStoreRef": { "name": "late", "kind": "SecretStore" },
                    "data": [{ "secretKey": "k", "remoteRef": { "key": "k" } }]
                }),
            ),
        )
        .await;
    }
    // The controller watches only this namespace: every waiting ExternalSecret is ours.
    let backlog = wait_depth(&t, "reached the backlog", |d| d >= WAITING).await;
    assert_eq!(backlog, WAITING);
    apply(
        &t.client,
        &fake_store(&t.ns, "late", json!([{ "key": "k", "value": "v" }])),
    )
    .await;
    for i in 0..WAITING {
        wait_ready(&t.client, &t.ns, &format!("waiting-{i}")).await;
    }
    wait_depth(&t, "drained to 0", |d| d == 0).await;
}
