//! Sharded replicas on the local stack: three controller processes (`--shards`) divide the
//! namespaces, each change on the SQS queue (taken by one of them) reaches every shard, and when
//! one is killed during a rotation storm the survivors take its shards over and every Secret
//! ends at the newest value. What each process synced is read from its own log: no namespace is
//! synced by two live processes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use secret_sync::shards::shard_of;
use secret_sync_tests::aws_events::EventQueue;
use secret_sync_tests::cleanup::Cleanup;
use secret_sync_tests::controller::{
    apply, aws_store, create_aws_secret, data_of, hourly_reader, moto, put_aws_secret,
};
use secret_sync_tests::process::{ControllerProcess, free_addr};
use secret_sync_tests::{Stack, ensure_namespace, install_crds, scoped_namespace, unique_name};

const SHARDS: usize = 6;
const ROUNDS: usize = 12;
/// The round after which one replica is killed.
const KILL_AFTER: usize = 4;

/// Holders of the shard Leases `<id>-shard-<i>`, by shard (`None`: free).
async fn holders(client: &kube::Client, ns: &str, id: &str) -> Vec<Option<String>> {
    let leases = Api::<Lease>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .expect("list leases");
    (0..SHARDS)
        .map(|i| {
            let name = format!("{id}-shard-{i}");
            leases
                .items
                .iter()
                .find(|l| l.metadata.name.as_deref() == Some(&name))
                .and_then(|l| l.spec.as_ref()?.holder_identity.clone())
                .filter(|h| !h.is_empty())
        })
        .collect()
}

/// Waits until every shard is held and `holders` distinct replicas hold them evenly.
async fn balanced(client: &kube::Client, ns: &str, id: &str, replicas: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = holders(client, ns, id).await;
        let mut load: BTreeMap<String, usize> = BTreeMap::new();
        for h in now.iter().flatten() {
            *load.entry(h.clone()).or_default() += 1;
        }
        if now.iter().all(Option::is_some)
            && load.len() == replicas
            && load.values().all(|&n| n == SHARDS / replicas)
        {
            return now.into_iter().flatten().collect();
        }
        assert!(
            Instant::now() < deadline,
            "shards not balanced over {replicas} replicas: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The namespaces a process's log says it synced (by a reconcile or for a change), with when.
fn synced(log: &str) -> Vec<(jiff::Timestamp, String)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["message"] == "synced" || v["message"] == "synced for a change")
        .filter_map(|v| {
            Some((
                v["timestamp"].as_str()?.parse().ok()?,
                v["namespace"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Whether every tenant's Secrets `es-<i>` hold `value`.
async fn all_at(
    client: &kube::Client,
    tenants: &BTreeSet<String>,
    readers: usize,
    value: String,
) -> bool {
    for ns in tenants {
        let secrets = Api::<Secret>::namespaced(client.clone(), ns);
        for i in 0..readers {
            let got = secrets.get_opt(&format!("es-{i}")).await.ok().flatten();
            if got
                .as_ref()
                .map(data_of)
                .and_then(|d| d.get("password").cloned())
                != Some(value.clone())
            {
                return false;
            }
        }
    }
    true
}

fn namespaces_between(
    log: &str,
    tenants: &BTreeSet<String>,
    from: jiff::Timestamp,
    to: jiff::Timestamp,
) -> BTreeSet<String> {
    synced(log)
        .into_iter()
        .filter(|(at, ns)| *at >= from && *at < to && tenants.contains(ns))
        .map(|(_, ns)| ns)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_divide_the_work_and_survive_one_killed_during_a_rotation_storm() {
    let stack = Stack::get().await;
    let client = stack.kube().await;
    install_crds(&client).await;
    let (lease_ns, _leases) = scoped_namespace(&client, "shards-leases", &[]).await;
    let sm = moto().await;
    let keys = [unique_name("shards/a"), unique_name("shards/b")];
    let mut arns = Vec::new();
    for key in &keys {
        create_aws_secret(&sm, key, "v0", &[]).await;
        let arn = sm
            .describe_secret()
            .secret_id(key)
            .send()
            .await
            .expect("describe")
            .arn
            .expect("arn");
        arns.push(arn);
    }
    // One tenant namespace in each shard, so that every replica has some.
    let mut tenants = Vec::new();
    let mut covered = BTreeSet::new();
    while covered.len() < SHARDS {
        let ns = unique_name("shards-t");
        if !covered.insert(shard_of(SHARDS as u32, &ns)) {
            continue;
        }
        ensure_namespace(&client, &ns).await;
        let guard = Cleanup::namespace(&ns);
        aws_store(&client, &ns, "aws").await;
        for (i, key) in keys.iter().enumerate() {
            apply(&client, &hourly_reader(&ns, &format!("es-{i}"), "aws", key)).await;
        }
        tenants.push((ns, guard));
    }
    let tenant_names: BTreeSet<String> = tenants.iter().map(|(ns, _)| ns.clone()).collect();
    let queue = EventQueue::create(&unique_name("shards"), 50).await;
    let secret_file = std::env::temp_dir().join(unique_name("shard-secret"));
    std::fs::write(&secret_file, unique_name("s3cr3t")).expect("secret file");
    let id = unique_name("shards");

    let mut replicas = Vec::new();
    let mut peers = Vec::new();
    for r in 0..3 {
        let peer = free_addr();
        peers.push(peer);
        let args: Vec<String> = [
            "--enable-leader-election",
            "--leader-election-id",
            &id,
            "--leader-election-namespace",
            &lease_ns,
            "--leader-election-lease-duration",
            "4s",
            "--leader-election-renew-deadline",
            "3s",
            "--leader-election-retry-period",
            "500ms",
            "--shards",
            &SHARDS.to_string(),
            "--shard-peer-addr",
            &peer.to_string(),
            "--shard-peer-url",
            &format!("http://{peer}"),
            "--shard-secret-file",
            secret_file.to_str().expect("utf-8 path"),
            "--sqs-queue-url",
            &queue.url,
            "--sqs-visibility-timeout",
            "10s",
            "--enable-cluster-external-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        replicas.push(ControllerProcess::start(&format!("shard-{r}"), &args).await);
    }

    // Every ExternalSecret synced, by whichever replica holds its namespace.
    let all_at = |value: String| all_at(&client, &tenant_names, keys.len(), value);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !all_at("v0".into()).await {
        assert!(Instant::now() < deadline, "not every ExternalSecret synced");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let holders_before = balanced(&client, &lease_ns, &id, 3).await;
    let identities: BTreeSet<&String> = holders_before.iter().collect();
    eprintln!("shards held: {holders_before:?}");
    // The victim's identity, from the member Lease naming its peer URL; its namespaces.
    let victim = 1;
    let victim_identity = Api::<Lease>::namespaced(client.clone(), &lease_ns)
        .list(&Default::default())
        .await
        .expect("list leases")
        .items
        .into_iter()
        .find(|l| {
            l.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("secret-sync.io/peer-url"))
                == Some(&format!("http://{}", peers[victim]))
        })
        .and_then(|l| l.spec?.holder_identity)
        .expect("the victim's member lease");
    let victims_namespaces: BTreeSet<String> = tenant_names
        .iter()
        .filter(|ns| holders_before[shard_of(SHARDS as u32, ns) as usize] == victim_identity)
        .cloned()
        .collect();
    assert_eq!(victims_namespaces.len(), SHARDS / 3);
    let steady = jiff::Timestamp::now();

    // A forged forwarded change is refused.
    let forged = reqwest::Client::new()
        .post(format!("http://{}/shards/changes", peers[0]))
        .header(
            "x-secret-sync-timestamp",
            jiff::Timestamp::now().as_second().to_string(),
        )
        .header("x-secret-sync-signature", format!("v1={}", "0".repeat(64)))
        .body(r#"{"change":{"keys":[]},"shards":[0]}"#)
        .send()
        .await
        .expect("peer listener");
    assert_eq!(forged.status().as_u16(), 401);

    // The storm: each round writes both keys and puts their events on the bus. One replica is
    // killed (SIGKILL: no lease released) after round KILL_AFTER.
    let mut killed_at = None;
    for round in 1..=ROUNDS {
        for (key, arn) in keys.iter().zip(&arns) {
            put_aws_secret(&sm, key, &format!("v{round}")).await;
            queue.put_api_call("PutSecretValue", key, Some(arn)).await;
        }
        if round == KILL_AFTER {
            replicas[victim].kill();
            killed_at = Some((jiff::Timestamp::now(), Instant::now()));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let last_rotation = Instant::now();
    let (killed_ts, killed) = killed_at.expect("killed");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !all_at(format!("v{ROUNDS}")).await {
        assert!(
            Instant::now() < deadline,
            "not every Secret reached v{ROUNDS} after a replica was killed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "every Secret at v{ROUNDS} {:?} after the last rotation, {:?} after the kill",
        last_rotation.elapsed(),
        killed.elapsed()
    );

    // The survivors hold every shard, three each.
    let holders_after = balanced(&client, &lease_ns, &id, 2).await;
    assert!(!holders_after.contains(&victim_identity));
    assert!(holders_after.iter().all(|h| identities.contains(h)));

    // No namespace was synced by two live replicas: before the kill, the three replicas' sets
    // are disjoint; after it, the two survivors' are.
    let logs: Vec<String> = replicas.iter().map(ControllerProcess::log).collect();
    let end = jiff::Timestamp::now();
    let before: Vec<BTreeSet<String>> = logs
        .iter()
        .map(|log| namespaces_between(log, &tenant_names, steady, killed_ts))
        .collect();
    let after: Vec<BTreeSet<String>> = logs
        .iter()
        .enumerate()
        .filter(|(r, _)| *r != victim)
        .map(|(_, log)| namespaces_between(log, &tenant_names, killed_ts, end))
        .collect();
    eprintln!("synced before the kill: {before:?}; after: {after:?}");
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        assert!(
            before[a].is_disjoint(&before[b]),
            "replicas {a} and {b} both synced {:?}",
            before[a].intersection(&before[b]).collect::<Vec<_>>()
        );
    }
    assert!(
        after[0].is_disjoint(&after[1]),
        "the survivors both synced {:?}",
        after[0].intersection(&after[1]).collect::<Vec<_>>()
    );
    let synced_after: BTreeSet<&String> = after.iter().flatten().collect();
    assert_eq!(
        synced_after.len(),
        SHARDS,
        "every namespace synced after the kill"
    );
    // Before the kill, the victim synced its own namespaces (changes taken by the others were
    // forwarded to it); after it, the survivors synced them.
    assert_eq!(before[victim], victims_namespaces);
    assert!(victims_namespaces.is_subset(&synced_after.into_iter().cloned().collect()));

    // Each survivor keeps (and reports) only its own shards' ExternalSecrets: their metric
    // series name the namespaces it holds, the others' none.
    let mut reported = Vec::new();
    for r in [0, 2] {
        let text = reqwest::get(format!("http://{}/metrics", replicas[r].metrics))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        let namespaces: BTreeSet<String> = text
            .lines()
            .filter(|l| l.starts_with("externalsecret_status_condition{"))
            .filter_map(|l| l.split("namespace=\"").nth(1)?.split('"').next())
            .filter(|ns| tenant_names.contains(*ns))
            .map(str::to_owned)
            .collect();
        reported.push(namespaces);
    }
    eprintln!("reported by the survivors: {reported:?}");
    assert!(reported[0].is_disjoint(&reported[1]), "{reported:?}");
    assert_eq!(
        reported[0].len() + reported[1].len(),
        SHARDS,
        "{reported:?}"
    );

    // A graceful stop hands the shards back at once.
    for r in [0, 2] {
        let status = replicas[r].stop().await.expect("stopped");
        assert!(status.success(), "replica {r} exited with {status}");
    }
    let left = holders(&client, &lease_ns, &id).await;
    assert!(
        left.iter().all(Option::is_none),
        "shards still held after a graceful stop: {left:?}"
    );
    let _ = std::fs::remove_file(&secret_file);
}
