//! AWS Secrets Manager change events, end to end on the local stack: an EventBridge rule on moto
//! routes a Secrets Manager event to an SQS queue, the controller's consumer reads it and syncs
//! the ExternalSecrets that read the changed secret, long before their refresh is due.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use secret_sync_controller::sqs::SqsSettings;
use secret_sync_crd::{ConditionStatus, ExternalSecret, ExternalSecretConditionType};
use secret_sync_tests::aws_events::EventQueue;
use secret_sync_tests::controller::{
    apply, assert_secret_stays, aws_store, aws_store_object, aws_value, create_aws_secret,
    external_secret, hourly_reader, moto, push_password, put_aws_secret, setup_with,
    store_ready_of, value_of, wait_data,
};
use secret_sync_tests::{Stack, unique_name};
use serde_json::json;

/// Within this, an event-driven sync has happened; refreshes are an hour away.
const PROMPT: Duration = Duration::from_secs(10);

fn sqs_settings(url: &str) -> SqsSettings {
    SqsSettings {
        // Short, so a message left for a retry comes back within the test.
        visibility: Duration::from_secs(2),
        wait: Duration::from_secs(1),
        ..SqsSettings::new(url.to_owned())
    }
}

fn reader(ns: &str, name: &str, key: &str) -> serde_json::Value {
    hourly_reader(ns, name, "aws", key)
}

/// Polls until `check` holds, or panics after `within`.
async fn eventually<F: Future<Output = bool>>(within: Duration, what: &str, check: impl Fn() -> F) {
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_store_not_ready(client: &kube::Client, ns: &str, name: &str) {
    let stores: kube::Api<secret_sync_crd::SecretStore> = kube::Api::namespaced(client.clone(), ns);
    eventually(PROMPT, "the store turns NotReady", || async {
        let store = stores.get(name).await.expect("store");
        store_ready_of(&store).is_some_and(|c| c.status == secret_sync_crd::ConditionStatus::False)
    })
    .await;
}

fn counter(metrics: &str, result: &str) -> u64 {
    let series = format!("secret_sync_events_total{{result=\"{result}\",source=\"sqs\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_secret_value_event_syncs_the_readers_long_before_their_refresh() {
    Stack::get().await;
    let queue = EventQueue::create(&unique_name("put"), 5).await;
    let url = queue.url.clone();
    let t = setup_with("sqs-put", &[], move |s| s.sqs = Some(sqs_settings(&url))).await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    let key = unique_name("events/db");
    create_aws_secret(&sm, &key, "v1", &[]).await;
    aws_store(&client, &ns, "aws").await;
    apply(&client, &reader(&ns, "by-name", &key)).await;
    let arn = sm
        .describe_secret()
        .secret_id(&key)
        .send()
        .await
        .expect("describe")
        .arn
        .expect("arn");
    apply(&client, &reader(&ns, "by-arn", &arn)).await;
    wait_data(&client, &ns, "by-name", &[("password", "v1")]).await;
    wait_data(&client, &ns, "by-arn", &[("password", "v1")]).await;
    let external_secrets = Api::<ExternalSecret>::namespaced(client.clone(), &ns);
    let synced = |es: ExternalSecret| {
        let status = es.status.unwrap_or_default();
        let ready = status
            .condition(ExternalSecretConditionType::Ready)
            .map(|c| c.status);
        (status.refresh_time, ready)
    };
    let initial = synced(external_secrets.get("by-name").await.expect("get"));
    // A status records its sync to the second: let the initial sync's second pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    put_aws_secret(&sm, &key, "v2").await;
    queue.put_api_call("PutSecretValue", &key, Some(&arn)).await;
    let started = tokio::time::Instant::now();
    wait_data(&client, &ns, "by-name", &[("password", "v2")]).await;
    wait_data(&client, &ns, "by-arn", &[("password", "v2")]).await;
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    // The status records the event-driven sync too (written behind the Secret).
    let api = &external_secrets;
    eventually(
        PROMPT,
        "the status records the event-driven sync",
        || async {
            let (refreshed, ready) = synced(api.get("by-name").await.expect("get"));
            refreshed > initial.0 && ready == Some(ConditionStatus::True)
        },
    )
    .await;

    let q = &queue;
    eventually(PROMPT, "the handled message is deleted", || async {
        q.depth(&q.url).await == 0
    })
    .await;
    let metrics = t.controller.metrics.encode().expect("metrics");
    assert!(counter(&metrics, "matched") >= 1, "{metrics}");
    assert!(
        metrics.contains("secret_sync_sync_latency_seconds_count{trigger=\"event\"}"),
        "the propagation latency is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_store_change_event_syncs_the_readers_long_before_their_refresh() {
    let stack = Stack::get().await;
    let queue = EventQueue::create(&unique_name("ssm"), 5).await;
    let url = queue.url.clone();
    let t = setup_with("sqs-ssm", &[], move |s| s.sqs = Some(sqs_settings(&url))).await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let ssm = aws_sdk_ssm::Client::new(&stack.aws().await);
    let name = format!("/{}", unique_name("events/ssm/db"));
    let put = |value: &'static str| {
        ssm.put_parameter()
            .name(&name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
    };
    put("v1").await.expect("put version 1");
    // The Secrets Manager store's credentials, for a Parameter Store store beside it.
    aws_store(&client, &ns, "aws").await;
    let mut store = aws_store_object(&ns, "ssm", "aws-credentials");
    store["spec"]["provider"]["aws"]["service"] = json!("ParameterStore");
    apply(&client, &store).await;
    let ssm_reader = |es: &str, key: &str| {
        external_secret(
            &ns,
            es,
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": { "name": "ssm" },
                "data": [{ "secretKey": "password", "remoteRef": { "key": key } }]
            }),
        )
    };
    apply(&client, &ssm_reader("by-name", &name)).await;
    wait_data(&client, &ns, "by-name", &[("password", "v1")]).await;

    put("v2").await.expect("put version 2");
    queue.put_parameter_change("Update", &name).await;
    let started = tokio::time::Instant::now();
    wait_data(&client, &ns, "by-name", &[("password", "v2")]).await;
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());

    let q = &queue;
    eventually(PROMPT, "the handled message is deleted", || async {
        q.depth(&q.url).await == 0
    })
    .await;
    let metrics = t.controller.metrics.encode().expect("metrics");
    assert!(counter(&metrics, "matched") >= 1, "{metrics}");
    let _ = ssm.delete_parameter().name(&name).send().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_foreign_and_unknown_events_are_counted_and_dropped_without_a_write() {
    Stack::get().await;
    let queue = EventQueue::create(&unique_name("bad"), 5).await;
    let url = queue.url.clone();
    let t = setup_with("sqs-bad", &[], move |s| s.sqs = Some(sqs_settings(&url))).await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    let key = unique_name("events/app");
    create_aws_secret(&sm, &key, "v1", &[]).await;
    aws_store(&client, &ns, "aws").await;
    apply(&client, &reader(&ns, "app", &key)).await;
    let synced = wait_data(&client, &ns, "app", &[("password", "v1")]).await;
    put_aws_secret(&sm, &key, "changed-but-not-announced").await;

    // Not JSON; JSON of another shape; an event for this key in another region (another account
    // is refused only for stores that name their account through a role: unit-tested in the
    // engine); an event for a secret nobody reads.
    queue.send_raw("{ this is not json").await;
    queue.send_raw(r#"{"Records": 42}"#).await;
    for (event_region, account) in [("eu-west-3", "123456789012")] {
        let arn = format!("arn:aws:secretsmanager:{event_region}:{account}:secret:{key}-AbCdEf");
        let detail = secret_sync_tests::aws_events::api_call_detail(
            "PutSecretValue",
            &key,
            Some(&arn),
            event_region,
        );
        let event = json!({
            "version": "0", "id": unique_name("id"), "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.secretsmanager", "account": account, "time": jiff::Timestamp::now().to_string(),
            "region": event_region, "resources": [], "detail": detail
        });
        queue.send_raw(&event.to_string()).await;
    }
    queue
        .put_api_call("PutSecretValue", &unique_name("events/nobody"), None)
        .await;

    let q = &queue;
    eventually(PROMPT, "every message is consumed and dropped", || async {
        q.depth(&q.url).await == 0
    })
    .await;
    let metrics = t.controller.metrics.encode().expect("metrics");
    assert_eq!(counter(&metrics, "malformed"), 2, "{metrics}");
    assert!(counter(&metrics, "dropped") >= 2, "{metrics}");
    assert_eq!(counter(&metrics, "matched"), 0, "{metrics}");
    let rv = synced.resource_version();
    assert_secret_stays(
        &client,
        &ns,
        "app",
        Duration::from_secs(1),
        "untouched",
        |s| {
            s.is_some_and(|s| s.resource_version() == rv)
                && value_of(Some(s.expect("exists")), "password").as_deref() == Some("v1")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_out_of_order_events_leave_the_newest_value() {
    Stack::get().await;
    let queue = EventQueue::create(&unique_name("order"), 5).await;
    let url = queue.url.clone();
    let t = setup_with("sqs-order", &[], move |s| s.sqs = Some(sqs_settings(&url))).await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    let key = unique_name("events/rotating");
    create_aws_secret(&sm, &key, "v1", &[]).await;
    aws_store(&client, &ns, "aws").await;
    apply(&client, &reader(&ns, "app", &key)).await;
    wait_data(&client, &ns, "app", &[("password", "v1")]).await;

    // Two rotations; their events arrive late, twice, and the older one last.
    put_aws_secret(&sm, &key, "v2").await;
    put_aws_secret(&sm, &key, "v3").await;
    for _ in 0..2 {
        queue.put_api_call("PutSecretValue", &key, None).await;
    }
    queue
        .put_api_call("UpdateSecretVersionStage", &key, None)
        .await;
    wait_data(&client, &ns, "app", &[("password", "v3")]).await;
    let q = &queue;
    eventually(PROMPT, "all events are consumed", || async {
        q.depth(&q.url).await == 0
    })
    .await;
    assert_secret_stays(
        &client,
        &ns,
        "app",
        Duration::from_secs(1),
        "holds v3",
        |s| value_of(s, "password").as_deref() == Some("v3"),
    )
    .await;
}

/// Writes the controller made to objects of `kind`, by its own metric.
fn writes(metrics: &str, kind: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("secret_sync_apiserver_writes_total{")
                && l.contains(&format!("kind=\"{kind}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A burst of events for one key read by many ExternalSecrets coalesces: each is synced a few
/// times, not once per event, and writes only what changed (30 events × 20 readers once cost
/// about 620 status patches and 320 Secret updates with conflicts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_events_for_one_key_coalesces_into_a_few_syncs_per_reader() {
    Stack::get().await;
    let queue = EventQueue::create(&unique_name("burst"), 5).await;
    let url = queue.url.clone();
    let t = setup_with("sqs-burst", &[], move |s| s.sqs = Some(sqs_settings(&url))).await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    let key = unique_name("events/burst");
    create_aws_secret(&sm, &key, "v0", &[]).await;
    aws_store(&client, &ns, "aws").await;
    const READERS: u64 = 20;
    const EVENTS: usize = 30;
    for i in 0..READERS {
        apply(&client, &reader(&ns, &format!("app-{i}"), &key)).await;
    }
    for i in 0..READERS {
        wait_data(&client, &ns, &format!("app-{i}"), &[("password", "v0")]).await;
    }
    // Settled: nothing more is written for the first syncs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = t.controller.metrics.encode().expect("metrics");
    // The rotations happen, then their events arrive, all at once.
    for i in 1..=EVENTS {
        put_aws_secret(&sm, &key, &format!("v{i}")).await;
    }
    for _ in 1..=EVENTS {
        queue.put_api_call("PutSecretValue", &key, None).await;
    }
    let newest = format!("v{EVENTS}");
    for i in 0..READERS {
        wait_data(&client, &ns, &format!("app-{i}"), &[("password", &newest)]).await;
    }
    let q = &queue;
    eventually(PROMPT, "all events are consumed", || async {
        q.depth(&q.url).await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = t.controller.metrics.encode().expect("metrics");
    let secrets = writes(&after, "Secret") - writes(&before, "Secret");
    let statuses =
        writes(&after, "ExternalSecret/status") - writes(&before, "ExternalSecret/status");
    eprintln!(
        "{EVENTS} events × {READERS} readers: {secrets} Secret writes, {statuses} status writes"
    );
    // Every sync reads the newest value: one Secret write per reader, however many events
    // came. The status records the syncs' refresh time in whole seconds: at most one write per
    // reader and second the burst lasts (a loaded CI machine stretches it to a few seconds),
    // never one per event.
    assert_eq!(secrets, READERS, "{secrets} Secret writes");
    assert!(statuses <= READERS * 10, "{statuses} status writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_sync_keeps_failing_returns_and_ends_in_the_dead_letter_queue() {
    Stack::get().await;
    let queue = EventQueue::create(&unique_name("poison"), 2).await;
    let url = queue.url.clone();
    let t = setup_with("sqs-poison", &[], move |s| {
        s.sqs = Some(sqs_settings(&url));
        // Each receive waits this long for the failing store before the message goes back.
        s.store_wait = Duration::from_secs(1);
    })
    .await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    let key = unique_name("events/gone");
    create_aws_secret(&sm, &key, "v1", &[]).await;
    aws_store(&client, &ns, "aws").await;
    apply(&client, &reader(&ns, "app", &key)).await;
    wait_data(&client, &ns, "app", &[("password", "v1")]).await;

    // The store now names credentials that do not exist: it turns NotReady, every sync through
    // it fails, and a retry may succeed once the credentials appear, so the message is kept.
    apply(
        &client,
        &aws_store_object(&ns, "aws", "missing-credentials"),
    )
    .await;
    wait_store_not_ready(&client, &ns, "aws").await;
    put_aws_secret(&sm, &key, "v2").await;
    queue.put_api_call("PutSecretValue", &key, None).await;

    let dlq = queue.dlq_url().await;
    let q = &queue;
    let dlq_ref = &dlq;
    eventually(
        Duration::from_secs(30),
        "the message reaches the dead-letter queue",
        || async { q.depth(dlq_ref).await == 1 },
    )
    .await;
    // Moved, not copied: the queue empties (moto's counts follow the move a moment later).
    eventually(PROMPT, "the queue empties", || async {
        q.depth(&q.url).await == 0
    })
    .await;
    let es: kube::Api<secret_sync_crd::ExternalSecret> = kube::Api::namespaced(client.clone(), &ns);
    let status = es.get("app").await.expect("es").status.expect("status");
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.reason.as_deref() == Some("SecretSyncedError")),
        "the failure is on the ExternalSecret: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_secret_changed_by_hand_is_pushed_back_by_its_event_long_before_the_refresh() {
    Stack::get().await;
    let queue = EventQueue::create(&unique_name("drift"), 5).await;
    let url = queue.url.clone();
    let t = setup_with("sqs-drift", &[], move |s| s.sqs = Some(sqs_settings(&url))).await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    aws_store(&client, &ns, "aws").await;
    let remote = unique_name("events/pushed");
    push_password(&client, &ns, "source", "from-the-cluster", &remote).await;
    let sm_ref = &sm;
    let key = remote.as_str();
    // The first push waits for the store's validation.
    eventually(Duration::from_secs(30), "the PushSecret pushes", || async {
        aws_value(sm_ref, key).await.as_deref() == Some("from-the-cluster")
    })
    .await;
    // The status records the push (what the push index files the PushSecret under).
    let pushes: kube::Api<secret_sync_crd::PushSecret> = kube::Api::namespaced(client.clone(), &ns);
    let p = &pushes;
    eventually(PROMPT, "syncedPushSecrets names the key", || async {
        p.get("push")
            .await
            .ok()
            .and_then(|ps| ps.status)
            .is_some_and(|s| {
                s.synced_push_secrets
                    .get("SecretStore/aws")
                    .is_some_and(|e| e.contains_key(key))
            })
    })
    .await;

    // The PushSecret settles: a pass follows its own status write; wait until none comes.
    let mut version = p.get("push").await.expect("get").metadata.resource_version;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = p.get("push").await.expect("get").metadata.resource_version;
        if now == version {
            break;
        }
        version = now;
    }

    // Someone changes it by hand; nothing puts it back until the event, which does so at once.
    put_aws_secret(&sm, &remote, "changed-by-hand").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        aws_value(&sm, &remote).await.as_deref(),
        Some("changed-by-hand"),
        "nothing but the event may put it back"
    );
    queue.put_api_call("PutSecretValue", &remote, None).await;
    let started = tokio::time::Instant::now();
    eventually(PROMPT, "the pushed value is put back", || async {
        aws_value(sm_ref, key).await.as_deref() == Some("from-the-cluster")
    })
    .await;
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    let q = &queue;
    eventually(PROMPT, "the handled message is deleted", || async {
        q.depth(&q.url).await == 0
    })
    .await;

    // Deleted by hand: pushed again. (Within the cooldown of the first repair the change is left
    // to the refresh, so this waits it out.)
    tokio::time::sleep(secret_sync::ingest::PUSH_COOLDOWN).await;
    sm.delete_secret()
        .secret_id(&remote)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("delete");
    queue.put_api_call("DeleteSecret", &remote, None).await;
    eventually(PROMPT, "the deleted secret is pushed again", || async {
        aws_value(sm_ref, key).await.as_deref() == Some("from-the-cluster")
    })
    .await;
}

/// A rolling update: the controller stops while an event is on its way and the next one starts.
/// The stopping consumer lets its last long poll end and hands back what it got, so the event is
/// handled as soon as the next controller is ready, not after the 30 s visibility timeout an
/// abandoned poll would hide it for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_arriving_while_the_controller_stops_is_handled_at_once_by_the_next_one() {
    Stack::get().await;
    let queue = EventQueue::create(&unique_name("restart"), 5).await;
    // Production's visibility, and a poll long enough for the event to meet it.
    let sqs = SqsSettings {
        visibility: Duration::from_secs(30),
        wait: Duration::from_secs(5),
        ..SqsSettings::new(queue.url.clone())
    };
    let first = sqs.clone();
    let mut t = setup_with("sqs-restart", &[], move |s| s.sqs = Some(first)).await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let sm = moto().await;
    let key = unique_name("events/restart");
    create_aws_secret(&sm, &key, "v1", &[]).await;
    aws_store(&client, &ns, "aws").await;
    apply(&client, &reader(&ns, "reader", &key)).await;
    wait_data(&client, &ns, "reader", &[("password", "v1")]).await;

    // Stopping; the consumer's poll is still open when the event arrives.
    let stopped = t.controller.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    put_aws_secret(&sm, &key, "v2").await;
    queue.put_api_call("PutSecretValue", &key, None).await;
    stopped.await;

    let aws = Stack::get().await.aws().await;
    let _next = secret_sync_tests::controller::start_with(&client, &ns, move |s| {
        s.providers.aws_base = Some(aws);
        s.sqs = Some(sqs);
    })
    .ready()
    .await;
    let started = tokio::time::Instant::now();
    wait_data(&client, &ns, "reader", &[("password", "v2")]).await;
    // The refresh is an hour away and the visibility timeout 30 s.
    assert!(
        started.elapsed() < PROMPT,
        "the event was handled {:?} after the next controller was ready",
        started.elapsed()
    );
}
