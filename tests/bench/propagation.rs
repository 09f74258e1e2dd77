//! Benchmark: how fast a rotation in AWS Secrets Manager reaches the cluster through events, by
//! each way an event can arrive.
//!
//!     cargo build --release -p secret-sync-controller -p secret-sync-lambda -p secret-sync-tests \
//!         --bin secret-sync-controller --bin secret-sync-lambda --bin bench-propagation
//!     target/release/bench-propagation [--path sqs|webhook|lambda-direct|lambda-sqs|all] [--rotations 200]
//!         [--fanout 1000] [--namespaces 100] [--record]
//!
//! On the local stack (the real apiserver, moto), one set of objects: a ClusterSecretStore, one
//! ExternalSecret reading the key `rotating`, and `--fanout` ExternalSecrets over `--namespaces`
//! namespaces all reading the key `shared`; every one refreshes hourly, so within the run only
//! events move a value. For each `--path`:
//!
//! - `sqs`: the release controller binary consumes an SQS queue that moto's EventBridge feeds
//!   through a rule. Handed over: the PutEvents call to EventBridge starts.
//! - `webhook`: the release controller binary listens on `--webhook-addr`; the benchmark signs
//!   and POSTs `{"store": …, "keys": [key]}`. Handed over: the call starts.
//! - `lambda-direct`, `lambda-sqs`: the release `secret-sync-lambda` runs in push mode against
//!   the local apiserver, under AWS's Lambda Runtime Interface Emulator (moto cannot invoke a
//!   Lambda from EventBridge, so the benchmark invokes it through the emulator): with the
//!   EventBridge event as the payload, or with a Lambda SQS batch of one record whose body is
//!   that event. Handed over: the invoke request to the emulator starts. No controller runs meanwhile: the store is switched to a
//!   controller class only the Lambda serves, and marked Ready as the controller would. Each
//!   Lambda path starts a fresh function and warms it with one invocation per key (its first
//!   waits for the watch caches' first list), as a warm execution environment would be.
//!
//! Per path:
//!
//! - propagation: `--rotations` times, a new value is put into moto, then the event is handed
//!   over; the time until a watch on the Secret sees the new value. p50, p90, p99, max, and
//!   where the time goes.
//! - fan-out: `shared` is rotated once; the time until every one of the `--fanout` Secrets holds
//!   the new value (on the controller paths also until their ExternalSecrets' statuses are
//!   written, by the controller's `secret_sync_apiserver_writes_total`), and the GetSecretValue
//!   calls it took: the controller's own counter
//!   (`secret_sync_provider_calls_total`) on the SQS path; on the Lambda paths, which have no
//!   metrics, the Lambda's own log (the provider logs each GetSecretValue call at debug level),
//!   with moto's request log beside it (every POST moto served meanwhile, whoever sent it).
//! - the Lambda's `invocation handled` lines: the median `took_ms` of the rotations'
//!   invocations, the fan-out's, the cold one's, and the ExternalSecrets in its caches (an
//!   event is a lookup in memory, not a list request).
//!
//! A last row gives poll-only operation at the default 1 h refresh, computed rather than waited
//! for. `--record` adds the rows to BENCHMARKS.md, to the table of the section on propagation.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use secret_sync_crd::{
    ClusterSecretStore, ConditionStatus, ExternalSecret, ExternalSecretConditionType,
};
use secret_sync_tests::aws_events::EventQueue;
use secret_sync_tests::controller::{apply, aws_cluster_credentials, aws_cluster_store_object};
use secret_sync_tests::lambda::{Answer, Lambda, put_secret_value, sqs_record};
use secret_sync_tests::{
    Stack, delete_namespace, ensure_namespace, install_crds, repo_root, unique_name,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The controller class the store is switched to for the Lambda paths: the controller (of the
/// default class) would leave it alone, were it running.
const LAMBDA_CLASS: &str = "bench-lambda";

/// The Lambda's `SECRET_SYNC_CONCURRENCY`: the controller's `--concurrent` on the SQS path.
const CONCURRENCY: &str = "32";

/// The section of BENCHMARKS.md the rows go to, and its table's header.
const SECTION: &str = "## Propagation of a rotation (issue: AWS events)";
const HEADER: &str = "| run | path | handed over → Secret seen by a watch: p50, p90, p99, max | where the time goes (p50, from handed over) | fan-out of one key: all Secrets updated | GetSecretValue calls in the fan-out | the Lambda's `invocation handled` lines |";
const SEPARATOR: &str = "|---|---|---|---|---|---|---|";
const RESTART_SECTION: &str =
    "## A pending event across a restart (issue: nothing lost at the edges)";
const RESTART_HEADER: &str = "| run | path | rounds | controller ready (`/readyz` 200) → Secret seen by a watch: median, max | process start → ready: median | process start → Secret: median |";
const RESTART_SEPARATOR: &str = "|---|---|---|---|---|---|";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Sqs,
    Webhook,
    LambdaDirect,
    LambdaSqs,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Self::Sqs => "sqs",
            Self::Webhook => "webhook",
            Self::LambdaDirect => "lambda-direct",
            Self::LambdaSqs => "lambda-sqs",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Sqs => "`sqs`: PutEvents → EventBridge → SQS → controller",
            Self::Webhook => {
                "`webhook`: signed POST /webhook naming the store and key → controller"
            }
            Self::LambdaDirect => {
                "`lambda-direct`: EventBridge event as the payload → Lambda (push)"
            }
            Self::LambdaSqs => "`lambda-sqs`: SQS batch of one record → Lambda (push)",
        }
    }
}

struct Args {
    routes: Vec<Route>,
    rotations: usize,
    fanout: usize,
    namespaces: usize,
    restarts: usize,
    record: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        routes: vec![
            Route::Sqs,
            Route::Webhook,
            Route::LambdaDirect,
            Route::LambdaSqs,
        ],
        rotations: 200,
        fanout: 1000,
        namespaces: 100,
        restarts: 5,
        record: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().context("missing value");
        let mut number = || {
            value().and_then(|v| {
                v.parse::<usize>()
                    .with_context(|| format!("{v}: not a number"))
            })
        };
        match flag.as_str() {
            "--rotations" => args.rotations = number()?,
            "--fanout" => args.fanout = number()?,
            "--namespaces" => args.namespaces = number()?,
            "--restarts" => args.restarts = number()?,
            "--path" => {
                args.routes = match value()?.as_str() {
                    "all" => vec![
                        Route::Sqs,
                        Route::Webhook,
                        Route::LambdaDirect,
                        Route::LambdaSqs,
                    ],
                    "sqs" => vec![Route::Sqs],
                    "webhook" => vec![Route::Webhook],
                    "lambda-direct" => vec![Route::LambdaDirect],
                    "lambda-sqs" => vec![Route::LambdaSqs],
                    other => {
                        bail!("--path {other}: sqs, webhook, lambda-direct, lambda-sqs or all")
                    }
                }
            }
            "--record" => args.record = true,
            other => bail!("unknown flag {other}"),
        }
    }
    if args.namespaces == 0 || args.rotations == 0 || args.fanout == 0 {
        bail!("--namespaces, --rotations and --fanout must be at least 1");
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

/// p50, p90, p99 and max of `durations`.
fn spread(durations: &mut [Duration]) -> String {
    durations.sort();
    format!(
        "p50 {}, p90 {}, p99 {}, max {}",
        ms(percentile(durations, 0.50)),
        ms(percentile(durations, 0.90)),
        ms(percentile(durations, 0.99)),
        ms(durations[durations.len() - 1]),
    )
}

fn median(durations: &mut [Duration]) -> Duration {
    durations.sort();
    percentile(durations, 0.5)
}

/// The sum of the controller's samples of `family` whose labels include every one of
/// `labels`, from its `/metrics`.
async fn controller_metric(family: &str, labels: &[&str]) -> anyhow::Result<u64> {
    let out = tokio::process::Command::new("curl")
        .args(["-fsS", "http://127.0.0.1:18181/metrics"])
        .output()
        .await?;
    if !out.status.success() {
        bail!("curl: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let prefix = format!("{family}{{");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&prefix) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// The controller's count of AWS GetSecretValue calls.
async fn get_secret_value_calls() -> anyhow::Result<u64> {
    controller_metric(
        "secret_sync_provider_calls_total",
        &[
            "operation=\"GetSecretValue\"",
            "provider=\"AWS/SecretsManager\"",
        ],
    )
    .await
}

/// The controller's count of ExternalSecret status writes.
async fn status_writes() -> anyhow::Result<u64> {
    controller_metric(
        "secret_sync_apiserver_writes_total",
        &["kind=\"ExternalSecret/status\""],
    )
    .await
}

/// Requests in moto's request log (as bench-initial-sync counts provider calls). The log does
/// not name the operation: every POST moto served, whoever sent it.
fn moto_requests(stack_dir: &Path) -> anyhow::Result<u64> {
    let log =
        std::fs::read_to_string(stack_dir.join("logs/moto.log")).context("reading moto's log")?;
    Ok(log.lines().filter(|l| l.contains("\"POST / HTTP")).count() as u64)
}

/// GetSecretValue calls in a part of the Lambda's log: the AWS provider logs each one at debug
/// level (`secret_sync_providers::aws: GetSecretValue key=… version=…`).
fn logged_get_secret_value(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("secret_sync_providers") && l.contains(": GetSecretValue "))
        .count()
}

/// One `invocation handled` line of the Lambda's log.
#[derive(Debug)]
struct Handled {
    took_ms: u64,
    cached: u64,
    affected: u64,
}

fn field(line: &str, name: &str) -> Option<u64> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn handled(log: &str) -> Vec<Handled> {
    log.lines()
        .filter(|l| l.contains("invocation handled"))
        .filter_map(|l| {
            Some(Handled {
                took_ms: field(l, "took_ms")?,
                cached: field(l, "cached")?,
                affected: field(l, "affected")?,
            })
        })
        .collect()
}

fn password(secret: &Secret) -> Option<String> {
    let data = secret.data.as_ref()?.get("password")?;
    Some(String::from_utf8_lossy(&data.0).into_owned())
}

/// A Secret of this run as a watch saw it.
struct Seen {
    ns: String,
    name: String,
    password: String,
    at: Instant,
}

/// One table row's cells after `run`.
struct Row {
    path: String,
    latency: String,
    breakdown: String,
    fanout: String,
    calls: String,
    lambda: String,
}

/// A pending event across restarts, on a controller path.
struct RestartRow {
    path: String,
    rounds: String,
    ready_to_secret: String,
    start_to_ready: String,
    start_to_secret: String,
}

/// What every path works on.
struct Bench {
    client: kube::Client,
    sm: aws_sdk_secretsmanager::Client,
    run: String,
    stack_dir: PathBuf,
    namespaces: Vec<String>,
    creds_ns: String,
    /// The moto key read by one ExternalSecret (`rotating` in `latency_ns`).
    rotating: String,
    /// The moto key read by the `fan-*` ExternalSecrets.
    shared: String,
    latency_ns: String,
    rotations: usize,
    fanout: usize,
    restarts: usize,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Bench {
    async fn put(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.sm
            .put_secret_value()
            .secret_id(key)
            .secret_string(value)
            .send()
            .await
            .with_context(|| format!("putting a value into {key}"))?;
        Ok(())
    }

    fn drain(&mut self) {
        while self.seen.try_recv().is_ok() {}
    }

    /// When the watch sees the `rotating` Secret holding `value`.
    async fn rotated(&mut self, value: &str) -> anyhow::Result<Instant> {
        loop {
            let seen = tokio::time::timeout(Duration::from_secs(30), self.seen.recv())
                .await
                .with_context(|| format!("{value} did not arrive within 30 s"))?
                .context("watch ended")?;
            if seen.ns == self.latency_ns && seen.name == "rotating" && seen.password == value {
                return Ok(seen.at);
            }
        }
    }

    /// When the watch has seen every `fan-*` Secret holding `value`: the last one's time.
    async fn fanned_out(&mut self, value: &str, since: Instant) -> anyhow::Result<Instant> {
        let mut updated = HashSet::new();
        let mut last = since;
        while updated.len() < self.fanout {
            let seen = tokio::time::timeout(Duration::from_secs(60), self.seen.recv())
                .await
                .with_context(|| {
                    format!("fan-out of {value} stalled at {} Secrets", updated.len())
                })?
                .context("watch ended")?;
            if seen.name.starts_with("fan-")
                && seen.password == value
                && updated.insert(format!("{}/{}", seen.ns, seen.name))
            {
                last = seen.at;
            }
        }
        Ok(last)
    }

    /// The ClusterSecretStore, served by `class` (`None`: the default class).
    async fn apply_store(&self, class: Option<&str>) {
        apply(
            &self.client,
            &aws_cluster_store_object(&self.run, &self.creds_ns, class),
        )
        .await;
    }

    /// Marks the store Ready, as the controller's store reconciler does once it validated it
    /// (the Lambda's engine keeps ESO's flood gate: it refuses unvalidated stores).
    async fn mark_store_ready(&self) -> anyhow::Result<()> {
        let status = json!({ "status": { "conditions": [{
            "type": "Ready", "status": "True", "reason": "Valid", "message": "store validated",
            "lastTransitionTime": jiff::Timestamp::now().to_string(),
        }] } });
        Api::<ClusterSecretStore>::all(self.client.clone())
            .patch_status(&self.run, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .context("marking the ClusterSecretStore Ready")?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let stack = Stack::get().await;
    let client = stack.kube().await;
    install_crds(&client).await;
    let run = unique_name("prop");
    eprintln!(
        "bench {run}: paths {:?}; {} rotations; fan-out to {} ExternalSecrets over {} namespaces",
        args.routes.iter().map(|r| r.name()).collect::<Vec<_>>(),
        args.rotations,
        args.fanout,
        args.namespaces
    );
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
    aws_cluster_credentials(&client, &creds_ns).await?;

    // Secrets of this run as a watch sees them, for every path.
    let ours: HashSet<String> = namespaces.iter().cloned().collect();
    let (seen_tx, seen) = mpsc::unbounded_channel::<Seen>();
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
                if let (true, Some(password)) = (ours.contains(&ns), password(&secret)) {
                    let name = secret.name_any();
                    let at = Instant::now();
                    let _ = seen_tx.send(Seen {
                        ns,
                        name,
                        password,
                        at,
                    });
                }
            }
        })
    };

    let mut bench = Bench {
        client: client.clone(),
        sm,
        stack_dir: PathBuf::from(stack.var("SECRET_SYNC_STACK_DIR")),
        latency_ns: namespaces[0].clone(),
        namespaces,
        creds_ns,
        rotating,
        shared,
        rotations: args.rotations,
        fanout: args.fanout,
        restarts: args.restarts,
        seen,
        run,
    };
    let lambda_only = !args.routes.contains(&Route::Sqs) && !args.routes.contains(&Route::Webhook);
    bench.apply_store(lambda_only.then_some(LAMBDA_CLASS)).await;
    let external_secret = |ns: &str, name: &str, key: &str| -> anyhow::Result<ExternalSecret> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": { "name": name, "namespace": ns },
            "spec": {
                "refreshInterval": "1h",
                "secretStoreRef": { "name": bench.run, "kind": "ClusterSecretStore" },
                "data": [{ "secretKey": "password", "remoteRef": { "key": key } }]
            }
        }))?)
    };
    Api::<ExternalSecret>::namespaced(client.clone(), &bench.latency_ns)
        .create(
            &PostParams::default(),
            &external_secret(&bench.latency_ns, "rotating", &bench.rotating)?,
        )
        .await?;
    futures::stream::iter(0..args.fanout)
        .map(|i| {
            let client = client.clone();
            let ns = bench.namespaces[i % args.namespaces].clone();
            let es = external_secret(&ns, &format!("fan-{i}"), &bench.shared);
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

    let mut rows = Vec::new();
    let mut restart_rows = Vec::new();
    let mut store_switched = lambda_only;
    let measured: anyhow::Result<()> = async {
        for route in &args.routes {
            let row = match route {
                Route::Sqs | Route::Webhook => {
                    let (row, restarts) = controller(&mut bench, &ours, *route).await?;
                    if let Some(restarts) = restarts {
                        eprintln!(
                            "{}: after a restart: {}",
                            route.name(),
                            restarts.ready_to_secret
                        );
                        restart_rows.push(restarts);
                    }
                    row
                }
                Route::LambdaDirect | Route::LambdaSqs => {
                    if !store_switched {
                        bench.apply_store(Some(LAMBDA_CLASS)).await;
                        store_switched = true;
                    }
                    bench.mark_store_ready().await?;
                    lambda(&mut bench, *route).await?
                }
            };
            eprintln!("{}: {} ; fan-out {}", route.name(), row.latency, row.fanout);
            rows.push(row);
        }
        Ok(())
    }
    .await;
    secret_watch.abort();
    if let Err(e) = measured {
        // A failed run leaves nothing behind either.
        clean_up(&client, &bench).await;
        return Err(e);
    }

    // Poll-only, computed: a change waits for the next refresh (uniformly 0 to 1 h, mean 30
    // min); ESO reads every ExternalSecret's keys at every refresh.
    rows.push(Row {
        path: "poll-only at the default 1 h refresh (ESO; computed, not measured)".into(),
        latency: "mean 30 min, worst 60 min".into(),
        breakdown: "waiting for the next refresh".into(),
        fanout: "within 60 min".into(),
        calls: format!(
            "ESO: {} per hour for {} ExternalSecrets, rotated or not; secret-sync: events 1 per rotation per key, plus the periodic refresh, shared among a key's ExternalSecrets that fall due together (measured by bench-vault-audit)",
            args.fanout, args.fanout
        ),
        lambda: "–".into(),
    });

    let run_cell = format!(
        "{} {}; {} rotations; fan-out {} ES / {} ns",
        jiff::Zoned::now().date(),
        commit(),
        args.rotations,
        args.fanout,
        args.namespaces
    );
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "| {run_cell} | {} | {} | {} | {} | {} | {} |",
                r.path, r.latency, r.breakdown, r.fanout, r.calls, r.lambda
            )
        })
        .collect();
    println!("{HEADER}");
    println!("{SEPARATOR}");
    for line in &lines {
        println!("{line}");
    }
    let restart_cell = format!(
        "{} {}; {} ES",
        jiff::Zoned::now().date(),
        commit(),
        args.fanout + 1
    );
    let restart_lines: Vec<String> = restart_rows
        .iter()
        .map(|r| {
            format!(
                "| {restart_cell} | {} | {} | {} | {} | {} |",
                r.path, r.rounds, r.ready_to_secret, r.start_to_ready, r.start_to_secret
            )
        })
        .collect();
    if !restart_lines.is_empty() {
        println!();
        println!("{RESTART_HEADER}");
        println!("{RESTART_SEPARATOR}");
        for line in &restart_lines {
            println!("{line}");
        }
    }
    if args.record {
        record(SECTION, HEADER, SEPARATOR, &lines)?;
        if !restart_lines.is_empty() {
            record(
                RESTART_SECTION,
                RESTART_HEADER,
                RESTART_SEPARATOR,
                &restart_lines,
            )?;
        }
    }

    clean_up(&client, &bench).await;
    Ok(())
}

/// Deletes what the run made: its namespaces, its ClusterSecretStore, its two keys.
async fn clean_up(client: &kube::Client, bench: &Bench) {
    for ns in bench
        .namespaces
        .iter()
        .chain(std::iter::once(&bench.creds_ns))
    {
        delete_namespace(client, ns).await;
    }
    let _ = Api::<ClusterSecretStore>::all(client.clone())
        .delete(&bench.run, &Default::default())
        .await;
    for key in [&bench.rotating, &bench.shared] {
        let _ = bench
            .sm
            .delete_secret()
            .secret_id(key)
            .force_delete_without_recovery(true)
            .send()
            .await;
    }
}

/// The webhook's shared secret in the benchmark.
const WEBHOOK_SECRET: &[u8] = b"bench-webhook-secret-0123456789abcdef";

/// Tells the controller of a change: an event on EventBridge (SQS path), or a signed webhook call.
enum Announce {
    Queue(EventQueue),
    Webhook {
        url: String,
        store: String,
        http: reqwest::Client,
    },
}

impl Announce {
    async fn changed(&self, key: &str) -> anyhow::Result<()> {
        match self {
            Self::Queue(queue) => {
                queue.put_api_call("PutSecretValue", key, None).await;
            }
            Self::Webhook { url, store, http } => {
                // Until its caches are listed the controller answers 503 with Retry-After, as
                // it does at every start, and while it restarts nothing listens: a sender tries
                // again, as this one does every 50 ms.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                loop {
                    // A distinct id per call: the same body and timestamp again would be a replay.
                    let body = json!({
                        "store": { "kind": "ClusterSecretStore", "name": store },
                        "keys": [key],
                        "id": jiff::Timestamp::now().as_nanosecond().to_string()
                    })
                    .to_string();
                    let answer =
                        secret_sync_tests::webhook::signed_now(http, url, WEBHOOK_SECRET, &body)
                            .send()
                            .await;
                    let waiting = tokio::time::Instant::now() < deadline;
                    match answer.map(|a| a.status().as_u16()) {
                        Ok(202) => break,
                        // Not listening yet (a restart), or not ready yet.
                        Err(_) | Ok(503) if waiting => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Ok(other) => bail!("the webhook answered {other}"),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(())
    }
}

/// The controller paths: the release controller binary consumes a queue that EventBridge feeds,
/// or listens for signed webhook calls.
async fn controller(
    bench: &mut Bench,
    ours: &HashSet<String>,
    route: Route,
) -> anyhow::Result<(Row, Option<RestartRow>)> {
    let stack = Stack::started().expect("stack");
    let bin = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .join("secret-sync-controller");
    if !bin.exists() {
        bail!("{} not found: build it first", bin.display());
    }
    let log = std::fs::File::create(
        bench
            .stack_dir
            .join(format!("logs/{}-controller.log", bench.run)),
    )?;
    let health = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?
    };
    let mut command = tokio::process::Command::new(&bin);
    command
        .args(["--metrics-addr", "127.0.0.1:18181"])
        .args(["--live-addr", &health.to_string()])
        .args(["--concurrent", CONCURRENCY, "--log-level", "warn"]);
    let announce = match route {
        Route::Sqs => {
            let queue = EventQueue::create(&bench.run, 5).await;
            command.args(["--sqs-queue-url", &queue.url]);
            Announce::Queue(queue)
        }
        _ => {
            let secret_file = bench
                .stack_dir
                .join(format!("{}-webhook-secret", bench.run));
            std::fs::write(&secret_file, WEBHOOK_SECRET)?;
            let port = {
                let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
                probe.local_addr()?.port()
            };
            command
                .args(["--webhook-addr", &format!("127.0.0.1:{port}")])
                .arg("--webhook-secret-file")
                .arg(&secret_file)
                .args(["--webhook-rate-limit", "100000"]);
            Announce::Webhook {
                url: format!("http://127.0.0.1:{port}/webhook"),
                store: bench.run.clone(),
                http: reqwest::Client::new(),
            }
        }
    };
    let mut controller = command
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
    let want = bench.fanout + 1;
    let mut ready = HashSet::new();
    let es_events = watcher(
        Api::<ExternalSecret>::all(bench.client.clone()),
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
    eprintln!("{}: all {want} ExternalSecrets Ready", route.name());

    // Propagation, one rotation at a time.
    bench.drain();
    let mut latencies = Vec::with_capacity(bench.rotations);
    let mut put_events = Vec::with_capacity(bench.rotations);
    let mut after_put = Vec::with_capacity(bench.rotations);
    for i in 0..bench.rotations {
        let value = format!("{}-rotation-{i}", route.name());
        bench.put(&bench.rotating, &value).await?;
        let sent = Instant::now();
        announce.changed(&bench.rotating).await?;
        let put = sent.elapsed();
        let arrived = bench.rotated(&value).await?;
        latencies.push(arrived.saturating_duration_since(sent));
        put_events.push(put);
        after_put.push(arrived.saturating_duration_since(sent + put));
    }

    // Fan-out: one rotation of the shared key. A status records its sync to the second: let the
    // second of the last sync so far pass, or a fan-out sync within it would find its status
    // already there and write none (and the count of status writes below would fall short).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    bench.drain();
    let calls_before = get_secret_value_calls().await?;
    let statuses_before = status_writes().await?;
    let fan_value = format!("{}-fanned-out", route.name());
    bench.put(&bench.shared, &fan_value).await?;
    let sent = Instant::now();
    announce.changed(&bench.shared).await?;
    let last = bench.fanned_out(&fan_value, sent).await?;
    let fan_time = last.saturating_duration_since(sent);
    // The statuses: each fanned-out ExternalSecret's records the sync (with
    // `--deferred-statuses`, behind the Secrets). Polled every 20 ms.
    let statuses_deadline = Instant::now() + Duration::from_secs(60);
    let statuses_time = loop {
        let written = status_writes().await? - statuses_before;
        if written >= bench.fanout as u64 {
            break sent.elapsed();
        }
        if Instant::now() > statuses_deadline {
            bail!(
                "only {written} of {} statuses written within 60 s",
                bench.fanout
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Let any straggling read be counted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fan_calls = get_secret_value_calls().await? - calls_before;

    // A pending event across a restart, `--restarts` times: the controller stops (SIGTERM), the
    // key rotates and its event is handed over while none runs (the webhook's sender retrying
    // until one answers), then a controller starts.
    let mut ready_to_secret = Vec::with_capacity(bench.restarts);
    let mut start_to_ready = Vec::with_capacity(bench.restarts);
    let mut start_to_secret = Vec::with_capacity(bench.restarts);
    let readyz = format!("http://{health}/readyz");
    let http = reqwest::Client::new();
    for i in 0..bench.restarts {
        terminate(&mut controller).await;
        bench.drain();
        let value = format!("{}-restart-{i}", route.name());
        bench.put(&bench.rotating, &value).await?;
        let announced = announce.changed(&bench.rotating);
        let started = async {
            if matches!(route, Route::Sqs) {
                // The message waits in the queue for a while before anyone polls.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let started = Instant::now();
            let child = command
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            let ready = ready_at(&http, &readyz).await?;
            anyhow::Ok((child, started, ready))
        };
        let (announced, started) = tokio::join!(announced, started);
        announced?;
        let (child, started, ready) = started?;
        controller = child;
        let arrived = bench.rotated(&value).await?;
        ready_to_secret.push(arrived.saturating_duration_since(ready));
        start_to_ready.push(ready.saturating_duration_since(started));
        start_to_secret.push(arrived.saturating_duration_since(started));
    }
    terminate(&mut controller).await;
    drop(announce);
    let restarts = (bench.restarts > 0).then(|| {
        let max = ready_to_secret.iter().max().copied().unwrap_or_default();
        RestartRow {
            path: route.describe().into(),
            rounds: bench.restarts.to_string(),
            ready_to_secret: format!("{}, {}", ms(median(&mut ready_to_secret)), ms(max)),
            start_to_ready: ms(median(&mut start_to_ready)),
            start_to_secret: ms(median(&mut start_to_secret)),
        }
    });

    after_put.sort();
    let handover = match route {
        Route::Sqs => "the PutEvents call to moto returns",
        _ => "the webhook call returns 202 after",
    };
    let row = Row {
        path: route.describe().into(),
        latency: format!("{} rotations: {}", bench.rotations, spread(&mut latencies)),
        breakdown: format!(
            "{handover} {}; from its return to the watch p50 {}, p99 {}",
            ms(median(&mut put_events)),
            ms(percentile(&after_put, 0.50)),
            ms(percentile(&after_put, 0.99)),
        ),
        fanout: format!(
            "{} ExternalSecrets / {} namespaces: {} (their statuses: {})",
            bench.fanout,
            bench.namespaces.len(),
            ms(fan_time),
            ms(statuses_time)
        ),
        calls: format!("{fan_calls} (the controller's metric)"),
        lambda: "–".into(),
    };
    Ok((row, restarts))
}

/// Stops the controller as Kubernetes would (SIGTERM) and waits for it to exit.
async fn terminate(controller: &mut tokio::process::Child) {
    if let Some(pid) = controller.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), controller.wait()).await;
}

/// When `/readyz` first answers 200 (polled every 5 ms).
async fn ready_at(http: &reqwest::Client, url: &str) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(answer) = http.get(url).send().await
            && answer.status() == 200
        {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("{url} not ready within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The invocation payload for `event` on a Lambda path.
fn payload(route: Route, event: Value, message_id: &str) -> Value {
    match route {
        Route::LambdaSqs => json!({ "Records": [sqs_record(message_id, &event.to_string())] }),
        _ => event,
    }
}

/// An error unless the function answered that everything was done.
fn check(answer: &Answer, lambda: &Lambda) -> anyhow::Result<()> {
    let ok = match answer {
        Answer::Response(r) => match r.get("batchItemFailures") {
            Some(failures) => failures.as_array().is_some_and(Vec::is_empty),
            None => r["failedPermanently"] == 0,
        },
        Answer::Error(_) => false,
    };
    if !ok {
        bail!(
            "the Lambda answered {answer:?}; its log: {}",
            lambda.log_path().display()
        );
    }
    Ok(())
}

/// A Lambda path: a fresh `secret-sync-lambda` in push mode under the emulator.
async fn lambda(bench: &mut Bench, route: Route) -> anyhow::Result<Row> {
    let name = route.name();
    let log_path = bench
        .stack_dir
        .join(format!("logs/{}-{name}.log", bench.run));
    let mut lambda = Lambda::start_logging_to(
        &[
            ("SECRET_SYNC_MODE", "push"),
            ("SECRET_SYNC_CONTROLLER_CLASS", LAMBDA_CLASS),
            ("SECRET_SYNC_CONCURRENCY", CONCURRENCY),
            // `invocation handled`, and a line per GetSecretValue call.
            ("RUST_LOG", "info,secret_sync_providers=debug"),
        ],
        &log_path,
    )
    .await;

    // Warm-up: the first invocation waits for the caches' first list (a cold start); the second
    // brings every fan-out Secret to a known value (creating them if no controller ran before).
    let cold = format!("{name}-warm-up");
    bench.put(&bench.rotating, &cold).await?;
    let warm = lambda
        .invoke(&payload(route, put_secret_value(&bench.rotating), "warm-1"))
        .await;
    check(&warm, &lambda)?;
    bench.rotated(&cold).await?;
    bench.put(&bench.shared, &cold).await?;
    let warm = lambda
        .invoke(&payload(route, put_secret_value(&bench.shared), "warm-2"))
        .await;
    check(&warm, &lambda)?;
    bench.fanned_out(&cold, Instant::now()).await?;
    eprintln!("{name}: warm");

    // Propagation, one rotation at a time.
    bench.drain();
    let rotations_from = lambda.logs().len();
    let mut latencies = Vec::with_capacity(bench.rotations);
    let mut answered = Vec::with_capacity(bench.rotations);
    for i in 0..bench.rotations {
        let value = format!("{name}-rotation-{i}");
        bench.put(&bench.rotating, &value).await?;
        let event = payload(route, put_secret_value(&bench.rotating), &format!("m-{i}"));
        let invocation = lambda.queue(&event);
        let arrived = bench.rotated(&value).await?;
        let answer = lambda.answer(invocation).await;
        check(&answer.answer, &lambda)?;
        latencies.push(arrived.saturating_duration_since(answer.queued));
        answered.push(answer.answered.saturating_duration_since(answer.queued));
    }

    // Fan-out: one rotation of the shared key.
    bench.drain();
    let fan_value = format!("{name}-fanned-out");
    bench.put(&bench.shared, &fan_value).await?;
    // moto logs a request as it answers it: let the put's line be written before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let moto_before = moto_requests(&bench.stack_dir)?;
    let fan_from = lambda.logs().len();
    let invocation = lambda.queue(&payload(route, put_secret_value(&bench.shared), "m-fan"));
    let queued = invocation.queued;
    let last = bench.fanned_out(&fan_value, queued).await?;
    let answer = lambda.answer(invocation).await;
    check(&answer.answer, &lambda)?;
    let fan_time = last.saturating_duration_since(queued);
    // Let any straggling request be logged.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let moto_calls = moto_requests(&bench.stack_dir)? - moto_before;
    let log = lambda.logs();
    drop(lambda);

    let cold_start = handled(&log[..rotations_from]);
    let rotations = handled(&log[rotations_from..fan_from]);
    let fan = handled(&log[fan_from..]);
    let rotation_calls = logged_get_secret_value(&log[rotations_from..fan_from]);
    let fan_calls = logged_get_secret_value(&log[fan_from..]);
    let mut took: Vec<u64> = rotations.iter().map(|h| h.took_ms).collect();
    took.sort_unstable();
    let took_median = took.get(took.len() / 2).copied().unwrap_or_default();
    let (Some(cold), Some(fan)) = (cold_start.first(), fan.first()) else {
        bail!("no `invocation handled` lines in {}", log_path.display());
    };
    if rotations.len() != bench.rotations {
        bail!(
            "{} `invocation handled` lines for {} rotations in {}",
            rotations.len(),
            bench.rotations,
            log_path.display()
        );
    }
    let cached_min = rotations.iter().map(|h| h.cached).min().unwrap_or_default();
    let cached_max = rotations.iter().map(|h| h.cached).max().unwrap_or_default();

    Ok(Row {
        path: route.describe().into(),
        latency: format!("{} rotations: {}", bench.rotations, spread(&mut latencies)),
        breakdown: format!(
            "the emulator answers (the sync done: GetSecretValue, Secret and status written) {}; the watch sees the Secret {}",
            ms(median(&mut answered)),
            ms(median(&mut latencies)),
        ),
        fanout: format!(
            "{} ExternalSecrets / {} namespaces: {}",
            bench.fanout,
            bench.namespaces.len(),
            ms(fan_time),
        ),
        calls: format!(
            "{fan_calls} (the Lambda's log: one debug line per call; {rotation_calls} over the {} rotations); moto's request log: {moto_calls} POST(s) meanwhile, from anyone",
            bench.rotations
        ),
        lambda: format!(
            "rotations: took_ms median {took_median}, affected {}, cached {}; fan-out: took_ms {}, affected {}, cached {}; cold start (first invocation, waits for the caches' first list): took_ms {}",
            rotations.first().map(|h| h.affected).unwrap_or_default(),
            if cached_min == cached_max {
                cached_min.to_string()
            } else {
                format!("{cached_min}–{cached_max}")
            },
            fan.took_ms,
            fan.affected,
            fan.cached,
            cold.took_ms,
        ),
    })
}

/// The commit measured, `-dirty` with uncommitted changes.
fn commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(repo_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "(unknown commit)".into())
}

/// Adds `rows` to the table with `header` in `section` of BENCHMARKS.md (creating the section
/// or its table if needed).
fn record(section: &str, header: &str, separator: &str, rows: &[String]) -> anyhow::Result<()> {
    let path = repo_root().join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let table = [header.to_owned(), separator.to_owned()];
    match lines.iter().position(|l| l.trim() == section) {
        Some(start) => {
            let end = lines[start + 1..]
                .iter()
                .position(|l| l.starts_with("## "))
                .map_or(lines.len(), |i| start + 1 + i);
            match lines[start..end].iter().position(|l| l.trim() == header) {
                Some(header) => {
                    let mut at = start + header + 1;
                    while at < end && lines[at].starts_with('|') {
                        at += 1;
                    }
                    lines.splice(at..at, rows.iter().cloned());
                }
                None => {
                    let mut at = end;
                    while at > start + 1 && lines[at - 1].trim().is_empty() {
                        at -= 1;
                    }
                    let mut block = vec![String::new()];
                    block.extend(table);
                    block.extend(rows.iter().cloned());
                    lines.splice(at..at, block);
                }
            }
        }
        None => {
            lines.extend([String::new(), section.to_owned(), String::new()]);
            lines.extend(table);
            lines.extend(rows.iter().cloned());
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text)?;
    Ok(())
}
