//! Benchmark: how fast a rotation in AWS Secrets Manager reaches the cluster through events.
//!
//!     cargo build --release -p secret-sync-controller -p secret-sync-tests \
//!         --bin secret-sync-controller --bin bench-propagation
//!     target/release/bench-propagation [--rotations 200] [--fanout 1000] [--namespaces 100] [--record]
//!
//! On the local stack (moto's EventBridge routing to SQS, the real apiserver) with the release
//! controller binary consuming the queue:
//!
//! - propagation: `--rotations` times, a new value is put into moto, then the matching CloudTrail
//!   event is put on EventBridge; the time from that PutEvents call until a watch on the Secret
//!   sees the new value. Reports p50, p90, p99 and max.
//! - fan-out: one key read by `--fanout` ExternalSecrets over `--namespaces` namespaces is
//!   rotated once; the time until every one of their Secrets holds the new value, and the
//!   provider reads it took (the controller's own count of GetSecretValue calls).
//! - beside them, computed rather than waited for: the delay and provider calls per hour of
//!   poll-only operation at the default 1 h refresh.
//!
//! All ExternalSecrets refresh hourly, so within the run only events can move a value.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use secret_sync_crd::{ConditionStatus, ExternalSecret, ExternalSecretConditionType};
use secret_sync_tests::aws_events::EventQueue;
use secret_sync_tests::controller::apply;
use secret_sync_tests::{
    Stack, delete_namespace, ensure_namespace, install_crds, repo_root, unique_name,
};
use serde_json::json;
use tokio::sync::mpsc;

struct Args {
    rotations: usize,
    fanout: usize,
    namespaces: usize,
    record: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        rotations: 200,
        fanout: 1000,
        namespaces: 100,
        record: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .context("missing value")
                .and_then(|v| v.parse::<usize>().context("not a number"))
        };
        match flag.as_str() {
            "--rotations" => args.rotations = value()?,
            "--fanout" => args.fanout = value()?,
            "--namespaces" => args.namespaces = value()?,
            "--record" => args.record = true,
            other => bail!("unknown flag {other}"),
        }
    }
    if args.namespaces == 0 {
        bail!("--namespaces must be at least 1");
    }
    Ok(args)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The controller's count of AWS GetSecretValue calls, from its `/metrics`.
async fn get_secret_value_calls() -> anyhow::Result<u64> {
    let out = tokio::process::Command::new("curl")
        .args(["-fsS", "http://127.0.0.1:18181/metrics"])
        .output()
        .await?;
    if !out.status.success() {
        bail!("curl: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.starts_with("secret_sync_provider_calls_total{")
                && l.contains("operation=\"GetSecretValue\"")
                && l.contains("provider=\"AWS/SecretsManager\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

fn password(secret: &Secret) -> Option<String> {
    let data = secret.data.as_ref()?.get("password")?;
    Some(String::from_utf8_lossy(&data.0).into_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let stack = Stack::get().await;
    let client = stack.kube().await;
    install_crds(&client).await;
    let run = unique_name("prop");
    let stack_dir = PathBuf::from(stack.var("SECRET_SYNC_STACK_DIR"));
    eprintln!(
        "bench {run}: {} rotations; fan-out to {} ExternalSecrets over {} namespaces",
        args.rotations, args.fanout, args.namespaces
    );
    let queue = EventQueue::create(&run, 5).await;
    let sm = aws_sdk_secretsmanager::Client::new(&stack.aws().await);
    let rotating = format!("{run}/rotating");
    let shared = format!("{run}/shared");
    for key in [&rotating, &shared] {
        sm.create_secret()
            .name(key)
            .secret_string("initial")
            .send()
            .await?;
    }

    let namespaces: Vec<String> = (0..args.namespaces).map(|i| format!("{run}-{i}")).collect();
    let creds_ns = format!("{run}-creds");
    for ns in namespaces.iter().chain(std::iter::once(&creds_ns)) {
        ensure_namespace(&client, ns).await;
    }
    let creds: Secret = serde_json::from_value(json!({
        "metadata": { "name": "aws" },
        "stringData": { "id": stack.var("AWS_ACCESS_KEY_ID"), "secret": stack.var("AWS_SECRET_ACCESS_KEY") }
    }))?;
    Api::<Secret>::namespaced(client.clone(), &creds_ns)
        .create(&PostParams::default(), &creds)
        .await?;
    apply(&client, &json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": { "name": run },
        "spec": { "provider": { "aws": { "service": "SecretsManager", "region": stack.var("AWS_REGION"), "auth": { "secretRef": {
            "accessKeyIDSecretRef": { "name": "aws", "key": "id", "namespace": creds_ns },
            "secretAccessKeySecretRef": { "name": "aws", "key": "secret", "namespace": creds_ns } } } } } }
    }))
    .await;
    let external_secret = |ns: &str, name: &str, key: &str| -> anyhow::Result<ExternalSecret> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": { "name": name, "namespace": ns },
            "spec": {
                "refreshInterval": "1h",
                "secretStoreRef": { "name": run, "kind": "ClusterSecretStore" },
                "data": [{ "secretKey": "password", "remoteRef": { "key": key } }]
            }
        }))?)
    };
    let latency_ns = namespaces[0].clone();
    Api::<ExternalSecret>::namespaced(client.clone(), &latency_ns)
        .create(
            &PostParams::default(),
            &external_secret(&latency_ns, "rotating", &rotating)?,
        )
        .await?;
    futures::stream::iter(0..args.fanout)
        .map(|i| {
            let client = client.clone();
            let ns = namespaces[i % args.namespaces].clone();
            let es = external_secret(&ns, &format!("fan-{i}"), &shared);
            async move {
                Api::<ExternalSecret>::namespaced(client, &ns)
                    .create(&PostParams::default(), &es?)
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;

    // The controller, consuming the queue.
    let bin = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .join("secret-sync-controller");
    if !bin.exists() {
        bail!("{} not found: build it first", bin.display());
    }
    let log = std::fs::File::create(stack_dir.join(format!("logs/{run}-controller.log")))?;
    let mut controller = tokio::process::Command::new(&bin)
        .args(["--metrics-addr", "127.0.0.1:18181", "--live-addr", "0"])
        .args(["--concurrent", "32", "--log-level", "warn"])
        .args(["--sqs-queue-url", &queue.url])
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .env("AWS_ENDPOINT_URL", stack.var("AWS_ENDPOINT_URL"))
        .env("AWS_REGION", stack.var("AWS_REGION"))
        .env("AWS_ACCESS_KEY_ID", stack.var("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", stack.var("AWS_SECRET_ACCESS_KEY"))
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;

    // Every ExternalSecret of this run Ready.
    let ours: HashSet<String> = namespaces.iter().cloned().collect();
    let want = args.fanout + 1;
    let mut ready = HashSet::new();
    let es_events = watcher(
        Api::<ExternalSecret>::all(client.clone()),
        Default::default(),
    )
    .applied_objects();
    let mut es_events = Box::pin(es_events);
    let deadline = Instant::now() + Duration::from_secs(300);
    while ready.len() < want {
        let next = tokio::time::timeout_at(deadline.into(), es_events.try_next())
            .await
            .context("ExternalSecrets did not all become Ready in 300 s")??;
        let Some(es) = next else { bail!("watch ended") };
        let ns = es.namespace().unwrap_or_default();
        if !ours.contains(&ns) {
            continue;
        }
        let is_ready = es.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == ExternalSecretConditionType::Ready && c.status == ConditionStatus::True
            })
        });
        if is_ready {
            ready.insert(format!("{ns}/{}", es.name_any()));
        }
    }
    // The watch is not read any more: stop it, so the apiserver does not stream to it.
    drop(es_events);
    eprintln!("all {want} ExternalSecrets Ready");

    // Secrets of this run as a watch sees them: (namespace, name, password, when seen).
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<(String, String, String, Instant)>();
    let secret_watch = {
        let ours = ours.clone();
        let api = Api::<Secret>::all(client.clone());
        let config =
            watcher::Config::default().labels("reconcile.external-secrets.io/managed=true");
        tokio::spawn(async move {
            let events = watcher(api, config).applied_objects();
            let mut events = std::pin::pin!(events);
            while let Ok(Some(secret)) = events.try_next().await {
                let ns = secret.namespace().unwrap_or_default();
                if let (true, Some(p)) = (ours.contains(&ns), password(&secret)) {
                    let _ = seen_tx.send((ns, secret.name_any(), p, Instant::now()));
                }
            }
        })
    };

    // Propagation, one rotation at a time.
    let mut latencies = Vec::with_capacity(args.rotations);
    let mut put_events = Vec::with_capacity(args.rotations);
    let mut after_put = Vec::with_capacity(args.rotations);
    for i in 0..args.rotations {
        let value = format!("rotation-{i}");
        sm.put_secret_value()
            .secret_id(&rotating)
            .secret_string(&value)
            .send()
            .await?;
        let sent = Instant::now();
        queue.put_api_call("PutSecretValue", &rotating, None).await;
        put_events.push(sent.elapsed());
        let arrived = loop {
            let (ns, name, p, at) = tokio::time::timeout(Duration::from_secs(30), seen.recv())
                .await
                .with_context(|| format!("rotation {i} did not arrive within 30 s"))?
                .context("watch ended")?;
            if ns == latency_ns && name == "rotating" && p == value {
                break at;
            }
        };
        latencies.push(arrived.saturating_duration_since(sent));
        after_put.push(arrived.saturating_duration_since(sent + put_events[i]));
    }
    latencies.sort();
    put_events.sort();
    after_put.sort();

    // Fan-out: one rotation of the shared key.
    while seen.try_recv().is_ok() {}
    let calls_before = get_secret_value_calls().await?;
    let fan_value = "fanned-out".to_owned();
    sm.put_secret_value()
        .secret_id(&shared)
        .secret_string(&fan_value)
        .send()
        .await?;
    let sent = Instant::now();
    queue.put_api_call("PutSecretValue", &shared, None).await;
    let mut updated = HashSet::new();
    let mut last = sent;
    while updated.len() < args.fanout {
        let (ns, name, p, at) = tokio::time::timeout(Duration::from_secs(60), seen.recv())
            .await
            .with_context(|| format!("fan-out stalled at {} Secrets", updated.len()))?
            .context("watch ended")?;
        if name.starts_with("fan-") && p == fan_value && updated.insert(format!("{ns}/{name}")) {
            last = at;
        }
    }
    let fan_time = last.saturating_duration_since(sent);
    // Let any straggling read be counted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fan_calls = get_secret_value_calls().await? - calls_before;
    secret_watch.abort();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &controller.id().unwrap_or(0).to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(30), controller.wait()).await;

    // Poll-only, computed: a change waits for the next refresh (uniformly 0 to 1 h, mean 30
    // min); ESO reads every ExternalSecret's keys at every refresh.
    let n = args.fanout as f64;
    let report = format!(
        "| SQS (EventBridge → SQS → controller), {rot} rotations | p50 {p50}, p90 {p90}, p99 {p99}, max {max} ; the PutEvents call to moto alone p50 {pe50}; from its return p50 {ap50}, p99 {ap99} | {fan} ExternalSecrets / {nss} namespaces on one key: all updated in {fan_time}, {fan_calls} GetSecretValue call(s) | mean 30 min, worst 60 min; ESO reads {n:.0} values/h for {fan} ExternalSecrets, secret-sync's periodic safety net 1/h per unique key, events 1 read per rotation per key |",
        rot = args.rotations,
        p50 = ms(percentile(&latencies, 0.50)),
        p90 = ms(percentile(&latencies, 0.90)),
        p99 = ms(percentile(&latencies, 0.99)),
        max = ms(*latencies.last().context("no rotations")?),
        pe50 = ms(percentile(&put_events, 0.50)),
        ap50 = ms(percentile(&after_put, 0.50)),
        ap99 = ms(percentile(&after_put, 0.99)),
        fan = args.fanout,
        nss = args.namespaces,
        fan_time = ms(fan_time),
    );
    println!("| path | PutEvents → Secret updated | fan-out | poll-only at 1 h (computed) |");
    println!("|---|---|---|---|");
    println!("{report}");
    if args.record {
        let path = repo_root().join("BENCHMARKS.md");
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&format!("{report}\n"));
        std::fs::write(&path, text)?;
    }

    for ns in namespaces.iter().chain(std::iter::once(&creds_ns)) {
        delete_namespace(&client, ns).await;
    }
    Ok(())
}
