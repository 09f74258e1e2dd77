//! Benchmark: how fast a `kv put` in OpenBao reaches the cluster through the audit stream, and
//! how many Vault requests a fleet of ExternalSecrets costs.
//!
//!     cargo build --release -p secret-sync-controller -p secret-sync-tests \
//!         --bin secret-sync-controller --bin bench-vault-audit
//!     target/release/bench-vault-audit [--writes 200] [--fleet 1000] [--window 60]
//!         [--rotations 20] [--refresh-check 300] [--concurrent 8] [--record]
//!
//! On the local stack (OpenBao's `socket` audit device writing to `SECRET_SYNC_VAULT_AUDIT_ADDR`,
//! the real apiserver) with the release controller binary listening there: `--writes` times, a
//! new value is written to a KV v2 key; the time from the start of that write until a watch on
//! the Secret sees the value. One ExternalSecret, refresh 1 h, so only the audit stream can move
//! the value within the run. Beside it, computed: the Vault reads per hour of polling at a 1 h
//! refresh for 1,000 ExternalSecrets.
//!
//! Then (unless `--fleet 0`) the Vault requests of a fleet, measured: a fresh KV v2 mount holds
//! `K = fleet / 10` keys of 10 properties each; a fresh namespace holds one SecretStore (token
//! auth from a Secret, a controller class of its own, so that other controllers on the shared stack
//! leave it alone) and `--fleet` ExternalSecrets (refresh 1 h), ten per key, each reading one
//! property. A second controller process (the same binary, this namespace and class only,
//! `--concurrent`) syncs them; counted are (a) the initial sync until a watch has seen all Secrets
//! with their values, (b) a quiet window of `--window` seconds without writes, (c) `--rotations`
//! `kv put`s, each to another key, each waited for until the key's 10 Secrets hold the new value,
//! (d) unless `--refresh-check 0`, one round of periodic refreshes: every ExternalSecret's
//! `refreshInterval` is set to `--refresh-check` seconds, and once all have synced that change, the
//! reads of the round falling due that long after are counted (before a second round can start).
//! Periodic refreshes fall due on a grid of a sixtieth of the interval (none under a minute; see
//! `secret_sync::refresh::due_at`), so the default, 300 s (5 s steps), shares reads as 1 h (60 s
//! steps) would, at most as well; 45 s would show no grid at all.
//!
//! How requests are counted: server-side, from OpenBao's own telemetry
//! (`GET /v1/sys/metrics?format=prometheus`, cumulative since the server started; the JSON form
//! only shows the last finished 10 s interval), as the `vault.route.<operation>.<mount>-` timers
//! of the bench's own mount: no other client reads that mount (the bench only writes it), so its
//! `read` and `list` counts are the controller's requests, whatever else uses the shared OpenBao.
//! Requests outside the mount (the store validation's `auth/token/lookup-self`, logins) cannot be
//! told apart from other clients' there; for them, and as a cross-check, the controller's own
//! `secret_sync_provider_calls_total` from its `/metrics` (one per value fetched, `ReadSecretData`;
//! not logins or the store validation). With token auth there are no logins. The per-hour
//! comparison is computed from these figures and says so.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use secret_sync_crd::ExternalSecret;
use secret_sync_tests::controller::apply;
use secret_sync_tests::{
    Stack, delete_namespace, ensure_namespace, install_crds, repo_root, unique_name,
};
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Waits until the watch has seen the Secret holding `value`; when it saw it.
async fn wait_for(
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Instant)>,
    value: &str,
) -> anyhow::Result<Instant> {
    loop {
        let (v, at) = tokio::time::timeout(Duration::from_secs(60), seen.recv())
            .await
            .context("no Secret update within 60 s")?
            .context("watch ended")?;
        if v == value {
            return Ok(at);
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut writes = 200usize;
    let mut record = false;
    let mut fleet = FleetArgs {
        external_secrets: 1000,
        window: Duration::from_secs(60),
        rotations: 20,
        concurrent: 8,
        refresh_check: Duration::from_secs(300),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--writes" => writes = args.next().context("--writes N")?.parse()?,
            "--fleet" => fleet.external_secrets = args.next().context("--fleet N")?.parse()?,
            "--window" => {
                fleet.window = Duration::from_secs(args.next().context("--window S")?.parse()?)
            }
            "--rotations" => fleet.rotations = args.next().context("--rotations R")?.parse()?,
            "--concurrent" => fleet.concurrent = args.next().context("--concurrent C")?.parse()?,
            "--refresh-check" => {
                fleet.refresh_check =
                    Duration::from_secs(args.next().context("--refresh-check S")?.parse()?)
            }
            "--record" => record = true,
            other => bail!("unknown flag {other}"),
        }
    }
    if fleet.window.is_zero() {
        bail!("--window must be at least 1 second");
    }
    if !fleet.refresh_check.is_zero() && fleet.refresh_check < Duration::from_secs(20) {
        bail!("--refresh-check must be 0 (skip) or at least 20 seconds");
    }
    let stack = Stack::get().await;
    let client = stack.kube().await;
    install_crds(&client).await;
    let run = unique_name("audit");
    let ns = run.clone();
    ensure_namespace(&client, &ns).await;
    let vault = stack.vault();
    let key = format!("{run}/db");
    vaultrs::kv2::set(&vault, "secret", &key, &json!({ "password": "initial" })).await?;
    let token: Secret = serde_json::from_value(json!({
        "metadata": { "name": "bao-token" },
        "stringData": { "token": stack.var("VAULT_TOKEN") }
    }))?;
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &token)
        .await?;
    apply(
        &client,
        &json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": { "name": "bao", "namespace": ns },
            "spec": { "provider": { "vault": {
                "server": stack.var("VAULT_ADDR"), "path": "secret", "version": "v2",
                "auth": { "tokenSecretRef": { "name": "bao-token", "key": "token" } }
            } } }
        }),
    )
    .await;
    apply(&client, &json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": { "name": "db", "namespace": ns },
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": { "name": "bao" },
            "data": [{ "secretKey": "password", "remoteRef": { "key": key, "property": "password" } }]
        }
    }))
    .await;

    let bin = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .join("secret-sync-controller");
    if !bin.exists() {
        bail!("{} not found: build it first", bin.display());
    }
    let stack_dir = PathBuf::from(stack.var("SECRET_SYNC_STACK_DIR"));
    let log = std::fs::File::create(stack_dir.join(format!("logs/{run}-controller.log")))?;
    let mut controller = tokio::process::Command::new(&bin)
        .args([
            "--metrics-addr",
            "0",
            "--live-addr",
            "0",
            "--log-level",
            "warn",
        ])
        .args(["--namespace", &ns])
        .args([
            "--vault-audit-addr",
            stack.var("SECRET_SYNC_VAULT_AUDIT_ADDR"),
        ])
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()?;

    // The Secret as a watch sees it.
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let api = Api::<Secret>::namespaced(client.clone(), &ns);
    let watch = tokio::spawn(async move {
        let config = watcher::Config::default().fields("metadata.name=db");
        let events = watcher(api, config).applied_objects();
        let mut events = std::pin::pin!(events);
        while let Ok(Some(secret)) = events.try_next().await {
            if let Some(v) = secret.data.as_ref().and_then(|d| d.get("password")) {
                let _ = tx.send((String::from_utf8_lossy(&v.0).into_owned(), Instant::now()));
            }
        }
    });
    wait_for(&mut seen, "initial").await?;
    // The receiver is up once the first sync is done; let OpenBao's device connect.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut latencies = Vec::with_capacity(writes);
    for i in 0..writes {
        let value = format!("write-{i}");
        let started = Instant::now();
        vaultrs::kv2::set(&vault, "secret", &key, &json!({ "password": value })).await?;
        let at = wait_for(&mut seen, &value)
            .await
            .with_context(|| format!("write {i}"))?;
        latencies.push(at.saturating_duration_since(started));
    }
    latencies.sort();
    watch.abort();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &controller.id().unwrap_or(0).to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(30), controller.wait()).await;

    let report = format!(
        "| {writes} writes, `kv put` (vaultrs, KV v2) → OpenBao socket audit device → controller | p50 {}, p90 {}, p99 {}, max {} | polling at 1 h: mean 30 min, worst 60 min; 1,000 ExternalSecrets cost ESO 1,000 Vault reads/h; the audit stream costs 1 read per write of a key read, plus the periodic refresh (its reads per round: the fleet table below) |",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().context("no writes")?),
    );
    println!("{LATENCY_HEADER}");
    println!("|---|---|---|");
    println!("{report}");
    if record {
        record_rows(LATENCY_HEADER, &[], &[report])?;
    }
    delete_namespace(&client, &ns).await;

    if fleet.external_secrets > 0 {
        let row = fleet_requests(stack, &client, &bin, &fleet, writes).await?;
        println!();
        println!("{FLEET_HEADER}");
        println!("{}", separator(FLEET_HEADER));
        println!("{row}");
        if record {
            record_rows(FLEET_HEADER, &fleet_preface(), &[row])?;
        }
    }
    Ok(())
}

const LATENCY_HEADER: &str = "| run | write started → Secret seen by a watch | polling, computed |";
const SECTION: &str = "## Vault audit stream (issue: Vault and OpenBao)";
const FLEET_HEADER: &str = "| run | (a) initial sync | (b) quiet window | (c) rotations through the audit stream | (d) one round of periodic refreshes | per hour, secret-sync | per hour, ESO polling at 1 h (computed) | in short |";
/// ExternalSecrets per key in the fleet, each reading another property of it.
const PER_KEY: usize = 10;

struct FleetArgs {
    external_secrets: usize,
    window: Duration,
    rotations: usize,
    concurrent: usize,
    /// Phase (d): the fleet's `refreshInterval` is set to this, and one refresh round is counted
    /// (zero: skipped, and the refresh figure is only computed).
    refresh_check: Duration,
}

/// Text put before the fleet table when BENCHMARKS.md has none yet.
fn fleet_preface() -> Vec<String> {
    [
        "Vault requests per hour for 1,000 ExternalSecrets, compared with ESO polling at a 1 h refresh",
        "(same command, after the latency run; `--fleet 0` skips it):",
        "",
        "```sh",
        "target/release/bench-vault-audit --writes 200 --fleet 1000 --window 60 --rotations 20 --refresh-check 300 --record",
        "```",
        "",
        "What it does: a fresh KV v2 mount holds `fleet / 10` keys of 10 properties; a fresh namespace",
        "holds one SecretStore (token auth from a Secret, a controller class of its own so that no other",
        "controller on the shared stack touches it) and `--fleet` ExternalSecrets (refresh 1 h), ten per",
        "key, each reading one property. A second controller process (this namespace only,",
        "`--concurrent 8`) syncs them. Measured, one phase after the other: (a) the initial sync, until a",
        "watch has seen every Secret with its value; (b) a quiet window without writes; (c) `kv put`s,",
        "each to another key, each waited for until the key's ten Secrets hold the new value; (d) one",
        "round of periodic refreshes: `refreshInterval` is set to `--refresh-check` (300 s) on every",
        "ExternalSecret, and once all have synced that change, the reads of the round that falls due",
        "then are counted (the window closes before a second round). Refreshes fall due on a grid of a",
        "sixtieth of the interval (5 s here, 60 s at 1 h), so 300 s shares reads as 1 h would, at most",
        "as well. Requests are counted server-side by OpenBao's own",
        "telemetry (`/v1/sys/metrics?format=prometheus`, cumulative; the JSON form only shows the last",
        "10 s interval): the `vault.route.read` requests on the bench's own mount, which no other client",
        "reads; beside it the controller's `secret_sync_provider_calls_total` (one per value fetched; it",
        "does not count the store validation's `auth/token/lookup-self`, one per store every 5 min on both",
        "sides, left out here). Token auth: no logins.",
        "Computed from these: the per-hour figure of secret-sync (the quiet window scaled to an hour,",
        "plus an assumed rotation rate times the measured reads per rotation, plus one refresh round as",
        "measured in (d), which at a 1 h refresh happens once an hour; an upper bound, since a rotation",
        "also restarts its ExternalSecrets' refresh interval), and ESO's, from its code (a provider client",
        "per reconcile, every `data[]` entry read at every refresh, no value kept between reconciles;",
        "with a non-token auth and without `--enable-vault-token-cache`, a login per reconcile and a",
        "`revoke-self` when the client closes).",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

fn separator(header: &str) -> String {
    let columns = header.matches('|').count().saturating_sub(1);
    format!("|{}", "---|".repeat(columns))
}

/// Adds `rows` to the table under `header` in the Vault audit section of BENCHMARKS.md; without
/// such a table, puts `preface`, the table and the rows at the end of the section.
fn record_rows(header: &str, preface: &[String], rows: &[String]) -> anyhow::Result<()> {
    let path = repo_root().join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let table = [header.to_owned(), separator(header)];
    match lines.iter().position(|l| l.trim() == SECTION) {
        Some(start) => {
            let end = lines[start + 1..]
                .iter()
                .position(|l| l.starts_with("## "))
                .map_or(lines.len(), |i| start + 1 + i);
            match lines[start..end].iter().position(|l| l.trim() == header) {
                Some(found) => {
                    let mut at = start + found + 1;
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
                    if !preface.is_empty() {
                        block.extend(preface.iter().cloned());
                        block.push(String::new());
                    }
                    block.extend(table);
                    block.extend(rows.iter().cloned());
                    lines.splice(at..at, block);
                }
            }
        }
        None => {
            lines.extend([String::new(), SECTION.to_owned(), String::new()]);
            if !preface.is_empty() {
                lines.extend(preface.iter().cloned());
                lines.push(String::new());
            }
            lines.extend(table);
            lines.extend(rows.iter().cloned());
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text)?;
    Ok(())
}

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

fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let end = line[start..].find('"')? + start;
    Some(&line[start..end])
}

/// OpenBao's own count of the requests routed to `mount`, by operation: the
/// `vault.route.<operation>.<mount>-` timers of its telemetry, in Prometheus form (cumulative
/// since the server started; a timer not yet used is absent, that is 0).
async fn bao_mount_requests(
    http: &reqwest::Client,
    stack: &Stack,
    mount: &str,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let text = http
        .get(format!(
            "{}/v1/sys/metrics?format=prometheus",
            stack.var("VAULT_ADDR")
        ))
        .header("X-Vault-Token", stack.var("VAULT_TOKEN"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    // `vault.route.read.<mount>-` becomes `vault_route_read_<mount>_`, its count `…__count`.
    let suffix = format!("_{}__count", mount.replace(['-', '.', '/'], "_"));
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let Some(op) = name
            .strip_prefix("vault_route_")
            .and_then(|n| n.strip_suffix(&suffix))
        else {
            continue;
        };
        let value: f64 = value.trim().parse().context("telemetry value")?;
        *counts.entry(op.to_owned()).or_default() += value as u64;
    }
    Ok(counts)
}

/// The requests a client made on the bench's mount: reads and lists. Not counted: the bench's own
/// writes (`create`, `update`) and OpenBao's internal `rollback` every minute.
fn client_reads(counts: &BTreeMap<String, u64>) -> u64 {
    ["read", "list"]
        .iter()
        .map(|op| counts.get(*op).copied().unwrap_or(0))
        .sum()
}

/// The controller's `secret_sync_provider_calls_total`, by "operation result".
async fn controller_calls(
    http: &reqwest::Client,
    port: u16,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut calls = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("secret_sync_provider_calls_total{"))
    {
        let op = label(line, "operation").unwrap_or("?");
        let result = label(line, "result").unwrap_or("?");
        let value: f64 = line.rsplit(' ').next().unwrap_or("0").parse()?;
        *calls.entry(format!("{op} {result}")).or_default() += value as u64;
    }
    Ok(calls)
}

/// `after - before`, the non-zero entries, as "ReadSecretData success 100, LookupSelf success 1".
fn calls_between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| format!("{k} {d}"))
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The latest `value` of every Secret of a namespace, as a watch sees it.
struct SecretValues {
    rx: tokio::sync::mpsc::UnboundedReceiver<(String, String, Instant)>,
    current: HashMap<String, String>,
    task: tokio::task::JoinHandle<()>,
}

impl SecretValues {
    fn watch(api: Api<Secret>) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let events = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects();
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                let Ok(secret) = event else { continue };
                let (Some(name), Some(v)) = (
                    secret.metadata.name.clone(),
                    secret.data.as_ref().and_then(|d| d.get("value")),
                ) else {
                    continue;
                };
                let value = String::from_utf8_lossy(&v.0).into_owned();
                if tx.send((name, value, Instant::now())).is_err() {
                    return;
                }
            }
        });
        Self {
            rx,
            current: HashMap::new(),
            task,
        }
    }

    /// Waits until every Secret of `want` holds its value; when the watch saw the last of them.
    async fn wait(
        &mut self,
        want: &[(String, String)],
        limit: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = Instant::now();
        loop {
            while let Ok((name, value, at)) = self.rx.try_recv() {
                self.current.insert(name, value);
                last = at;
            }
            let missing = want
                .iter()
                .filter(|(name, value)| self.current.get(name) != Some(value))
                .count();
            if missing == 0 {
                return Ok(last);
            }
            let Ok(event) = tokio::time::timeout_at(deadline, self.rx.recv()).await else {
                bail!(
                    "{missing} of {} Secrets without their value after {limit:?}",
                    want.len()
                );
            };
            let (name, value, at) = event.context("Secret watch ended")?;
            self.current.insert(name, value);
            last = at;
        }
    }
}

/// The value of `property` of key `key` at `generation`.
fn fleet_value(key: usize, property: usize, generation: usize) -> String {
    format!("k{key}-p{property}-g{generation}")
}

/// The data of key `key` at `generation`: its 10 properties.
fn fleet_data(key: usize, generation: usize) -> serde_json::Value {
    (0..PER_KEY)
        .map(|p| (format!("p{p}"), json!(fleet_value(key, p, generation))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The Secrets of key `key` and their values at `generation`.
fn fleet_want(key: usize, generation: usize, n: usize) -> Vec<(String, String)> {
    (key * PER_KEY..((key + 1) * PER_KEY).min(n))
        .map(|i| (format!("es-{i}"), fleet_value(key, i % PER_KEY, generation)))
        .collect()
}

/// Phase (d)'s figures.
struct RefreshRound {
    /// Reads caused by the change of `refreshInterval` itself (a spec change syncs at once).
    spec_reads: u64,
    spec_calls: String,
    /// Reads during one round of periodic refreshes, and the controller's count of them.
    round_reads: u64,
    round_calls: String,
    /// ExternalSecrets whose `refreshTime` moved during the round (refreshed).
    refreshed: usize,
}

/// `status.syncedResourceVersion` and `status.refreshTime` of every ExternalSecret, by name.
async fn sync_stamps(
    es_api: &Api<ExternalSecret>,
) -> anyhow::Result<HashMap<String, (Option<String>, Option<String>)>> {
    let mut stamps = HashMap::new();
    for es in es_api.list(&Default::default()).await? {
        let status = es.status.as_ref();
        let refreshed = status
            .and_then(|s| s.refresh_time.as_ref())
            .map(serde_json::to_string)
            .transpose()?;
        stamps.insert(
            es.metadata.name.clone().unwrap_or_default(),
            (
                status.and_then(|s| s.synced_resource_version.clone()),
                refreshed,
            ),
        );
    }
    Ok(stamps)
}

/// Phase (d): sets every ExternalSecret's `refreshInterval` to `refresh`, waits until each has
/// synced that change, then counts the reads of the round of periodic refreshes that falls due
/// `refresh` later (the window ends before a second round can start).
async fn refresh_round(
    es_api: &Api<ExternalSecret>,
    http: &reqwest::Client,
    stack: &Stack,
    mount: &str,
    port: u16,
    refresh: Duration,
) -> anyhow::Result<RefreshRound> {
    let before = sync_stamps(es_api).await?;
    let bao_a = bao_mount_requests(http, stack, mount).await?;
    let calls_a = controller_calls(http, port).await?;
    let patched = Instant::now();
    let patch = json!({ "spec": { "refreshInterval": format!("{}s", refresh.as_secs()) } });
    futures::stream::iter(before.keys())
        .map(|name| {
            let patch = &patch;
            async move {
                es_api
                    .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    // Every ExternalSecret has synced its new spec once its syncedResourceVersion moved.
    let synced = loop {
        let now = sync_stamps(es_api).await?;
        let pending = before
            .iter()
            .filter(|(name, (version, _))| now.get(*name).map(|s| &s.0) == Some(version))
            .count();
        if pending == 0 {
            break now;
        }
        if patched.elapsed() > refresh / 2 {
            bail!(
                "{pending} ExternalSecrets had not synced their new refreshInterval after {:?}",
                refresh / 2
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let bao_b = bao_mount_requests(http, stack, mount).await?;
    let calls_b = controller_calls(http, port).await?;
    // The round falls due between `refresh` after the first spec sync and `refresh` after the
    // last; the next round starts no earlier than 2 × `refresh` after the patch.
    let end = Instant::now() + refresh + Duration::from_secs(10);
    if end >= patched + 2 * refresh {
        bail!("the spec syncs took too long to count one round alone; raise --refresh-check");
    }
    tokio::time::sleep_until(end.into()).await;
    let bao_c = bao_mount_requests(http, stack, mount).await?;
    let calls_c = controller_calls(http, port).await?;
    let after = sync_stamps(es_api).await?;
    let refreshed = synced
        .iter()
        .filter(|(name, (_, time))| after.get(*name).map(|s| &s.1) != Some(time))
        .count();
    Ok(RefreshRound {
        spec_reads: client_reads(&bao_b) - client_reads(&bao_a),
        spec_calls: calls_between(&calls_a, &calls_b),
        round_reads: client_reads(&bao_c) - client_reads(&bao_b),
        round_calls: calls_between(&calls_b, &calls_c),
        refreshed,
    })
}

/// The fleet phase: sets up the mount and namespace, measures, cleans up; the row for the table.
async fn fleet_requests(
    stack: &'static Stack,
    client: &kube::Client,
    bin: &std::path::Path,
    args: &FleetArgs,
    writes: usize,
) -> anyhow::Result<String> {
    let run = unique_name("audit-fleet");
    let ns = run.clone();
    // Letters and digits only, so that its telemetry name is unambiguous.
    let mount: String = run.chars().filter(char::is_ascii_alphanumeric).collect();
    let vault = stack.vault();
    let mut options = vaultrs::api::sys::requests::EnableEngineRequest::builder();
    options.options(HashMap::from([("version".to_owned(), "2".to_owned())]));
    vaultrs::sys::mount::enable(&vault, &mount, "kv", Some(&mut options)).await?;
    ensure_namespace(client, &ns).await;
    let result = fleet_measure(stack, client, bin, args, writes, &run, &mount).await;
    delete_namespace(client, &ns).await;
    if let Err(e) = vaultrs::sys::mount::disable(&vault, &mount).await {
        eprintln!("disabling the mount {mount}: {e}");
    }
    result
}

async fn fleet_measure(
    stack: &'static Stack,
    client: &kube::Client,
    bin: &std::path::Path,
    args: &FleetArgs,
    writes: usize,
    ns: &str,
    mount: &str,
) -> anyhow::Result<String> {
    let n = args.external_secrets;
    let keys = n.div_ceil(PER_KEY);
    let vault = stack.vault();
    let http = reqwest::Client::new();
    eprintln!("fleet {ns}: {n} ExternalSecrets over {keys} keys on the mount {mount}");

    // Provider side. A fresh KV v2 mount may refuse writes for a moment while it sets up.
    let mut tries = 0;
    while let Err(e) = vaultrs::kv2::set(&vault, mount, "k0", &fleet_data(0, 0)).await {
        tries += 1;
        if tries > 100 {
            return Err(e).context("writing the first key of the fresh mount");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    futures::stream::iter(1..keys)
        .map(|k| {
            let vault = &vault;
            async move {
                vaultrs::kv2::set(vault, mount, &format!("k{k}"), &fleet_data(k, 0)).await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;

    // Cluster side: the token Secret, the SecretStore, the ExternalSecrets.
    let token: Secret = serde_json::from_value(json!({
        "metadata": { "name": "bao-token" },
        "stringData": { "token": stack.var("VAULT_TOKEN") }
    }))?;
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &token)
        .await?;
    apply(
        client,
        &json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": { "name": "bao", "namespace": ns },
            "spec": {
                // Only this bench's controller serves the store: other controllers on the shared
                // stack (watching every namespace) leave the fleet alone.
                "controller": mount,
                "provider": { "vault": {
                    "server": stack.var("VAULT_ADDR"), "path": mount, "version": "v2",
                    "auth": { "tokenSecretRef": { "name": "bao-token", "key": "token" } }
                } }
            }
        }),
    )
    .await;
    let es_api = Api::<ExternalSecret>::namespaced(client.clone(), ns);
    let created = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let es_api = &es_api;
            async move {
                let es: ExternalSecret = serde_json::from_value(json!({
                    "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                    "metadata": { "name": format!("es-{i}"), "namespace": ns },
                    "spec": {
                        "refreshInterval": "1h",
                        "secretStoreRef": { "name": "bao" },
                        "data": [{ "secretKey": "value", "remoteRef": {
                            "key": format!("k{}", i / PER_KEY), "property": format!("p{}", i % PER_KEY)
                        } }]
                    }
                }))?;
                es_api.create(&PostParams::default(), &es).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    eprintln!("created {n} ExternalSecrets in {:.1?}", created.elapsed());

    let mut seen = SecretValues::watch(Api::namespaced(client.clone(), ns));
    let want_all: Vec<(String, String)> = (0..keys).flat_map(|k| fleet_want(k, 0, n)).collect();

    // (a) The initial sync, by a fresh controller process.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let stack_dir = PathBuf::from(stack.var("SECRET_SYNC_STACK_DIR"));
    let log = std::fs::File::create(stack_dir.join(format!("logs/{ns}-controller.log")))?;
    let bao0 = bao_mount_requests(&http, stack, mount).await?;
    let started = Instant::now();
    let mut controller = tokio::process::Command::new(bin)
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--live-addr", "0", "--log-level", "warn"])
        .args(["--concurrent", &args.concurrent.to_string()])
        .args(["--namespace", ns, "--controller-class", mount])
        .args([
            "--vault-audit-addr",
            stack.var("SECRET_SYNC_VAULT_AUDIT_ADDR"),
        ])
        .env("KUBECONFIG", stack.var("KUBECONFIG"))
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()?;
    let synced = seen
        .wait(&want_all, Duration::from_secs(300))
        .await
        .context("initial sync")?;
    let initial_time = synced.saturating_duration_since(started);
    let bao1 = bao_mount_requests(&http, stack, mount).await?;
    let calls1 = controller_calls(&http, port).await?;
    eprintln!(
        "initial sync: {n} Secrets in {initial_time:.1?}, {} reads",
        client_reads(&bao1) - client_reads(&bao0)
    );

    // (b) A quiet window: no writes.
    tokio::time::sleep(args.window).await;
    let bao2 = bao_mount_requests(&http, stack, mount).await?;
    let calls2 = controller_calls(&http, port).await?;

    // (c) Rotations through the audit stream, each to another key, one after the other.
    let mut rotation_times = Vec::with_capacity(args.rotations);
    for r in 0..args.rotations {
        let (key, generation) = (r % keys, 1 + r / keys);
        let begun = Instant::now();
        vaultrs::kv2::set(
            &vault,
            mount,
            &format!("k{key}"),
            &fleet_data(key, generation),
        )
        .await?;
        let at = seen
            .wait(&fleet_want(key, generation, n), Duration::from_secs(60))
            .await
            .with_context(|| format!("rotation {r}"))?;
        rotation_times.push(at.saturating_duration_since(begun));
    }
    rotation_times.sort();
    let bao3 = bao_mount_requests(&http, stack, mount).await?;
    let calls3 = controller_calls(&http, port).await?;

    // (d) One round of periodic refreshes, at a short refreshInterval.
    let round = if args.refresh_check.is_zero() {
        None
    } else {
        Some(refresh_round(&es_api, &http, stack, mount, port, args.refresh_check).await?)
    };

    seen.task.abort();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &controller.id().unwrap_or(0).to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(30), controller.wait()).await;

    let initial = client_reads(&bao1) - client_reads(&bao0);
    let quiet = client_reads(&bao2) - client_reads(&bao1);
    let rotated = client_reads(&bao3) - client_reads(&bao2);
    let window = args.window.as_secs_f64();
    let quiet_per_hour = quiet as f64 * 3600.0 / window;
    let per_rotation = (args.rotations > 0).then(|| rotated as f64 / args.rotations as f64);
    let rotation_per_hour = per_rotation.map(|p| p * keys as f64);
    // At a 1 h refresh, one round per hour; without phase (d), what sharing per key would give.
    let refresh_per_hour = round.as_ref().map_or(keys as f64, |r| r.round_reads as f64);
    let idle = quiet_per_hour + refresh_per_hour;
    let ours = idle + rotation_per_hour.unwrap_or(0.0);

    let run_cell = format!(
        "{} {}; `--writes {writes} --fleet {n} --window {} --rotations {} --refresh-check {} --concurrent {}`: {n} ExternalSecrets (refresh 1 h) in 1 namespace, {keys} keys × {PER_KEY} properties, token auth",
        jiff::Zoned::now().date(),
        commit(),
        args.window.as_secs(),
        args.rotations,
        args.refresh_check.as_secs(),
        args.concurrent,
    );
    let initial_cell = format!(
        "{initial} reads (OpenBao) for {n} ExternalSecrets reading {keys} keys; all Secrets seen {:.1} s after the controller's start; controller's count: {}",
        initial_time.as_secs_f64(),
        calls_between(&BTreeMap::new(), &calls1),
    );
    let quiet_cell = format!(
        "{} s: {quiet} reads (OpenBao); controller's count: {}",
        args.window.as_secs(),
        calls_between(&calls1, &calls2),
    );
    let rotation_cell = match per_rotation {
        Some(per) => format!(
            "{} `kv put`s, each to another key: {rotated} reads (OpenBao), {per:.2} per rotation; controller's count: {}; put started → the key's {PER_KEY} Secrets seen: p50 {}, max {}",
            args.rotations,
            calls_between(&calls2, &calls3),
            ms(percentile(&rotation_times, 0.5)),
            ms(*rotation_times.last().context("no rotations")?),
        ),
        None => "not run (`--rotations 0`)".into(),
    };
    let round_cell = match &round {
        Some(r) => format!(
            "`refreshInterval` set to {}s on all {n} (that spec change: {} reads, controller's count: {}); the round {}s later: {} reads (OpenBao) for {} ExternalSecrets refreshed, {keys} keys; controller's count: {}",
            args.refresh_check.as_secs(),
            r.spec_reads,
            r.spec_calls,
            args.refresh_check.as_secs(),
            r.round_reads,
            r.refreshed,
            r.round_calls,
        ),
        None => "not run (`--refresh-check 0`)".into(),
    };
    let refresh_term = match &round {
        Some(r) => format!(
            "periodic refresh {} (one round per hour, as measured in (d))",
            r.round_reads
        ),
        None => format!(
            "periodic refresh {keys} (computed, not measured: 1 read per key per refresh, if the key's {PER_KEY} ExternalSecrets shared it)"
        ),
    };
    let ours_cell = format!(
        "{ours:.0} at most: quiet window scaled to 1 h {quiet_per_hour:.0} + rotations {} (assumed: each key rotated once an hour, {keys} rotations/h × the reads per rotation of (c)) + {refresh_term}; no logins (token auth). Without rotations: {idle:.0}",
        rotation_per_hour.map_or("not measured".into(), |r| format!("{r:.0}")),
    );
    let eso_cell = format!(
        "{n} reads (each ExternalSecret reads its key at every refresh; nothing shared between reconciles), rotated or not; with a non-token auth and no token cache also {n} logins and {n} `revoke-self` (a client per reconcile)"
    );
    let sharing = match &round {
        Some(r) if r.round_reads as f64 > 1.5 * keys as f64 => format!(
            "the periodic refresh shares reads only in part ({} for {} refreshed ExternalSecrets of {keys} keys; 1 per key would be {keys}){}",
            r.round_reads,
            r.refreshed,
            if r.round_reads as f64 >= 0.8 * n as f64 {
                ", about what ESO's polling reads"
            } else {
                ""
            }
        ),
        Some(r) => format!(
            "the periodic refresh shares its reads per key ({} for {keys} keys)",
            r.round_reads
        ),
        None => "the refresh figure is computed".into(),
    };
    let short = format!(
        "secret-sync {ours:.0}/h with every key rotated hourly, {idle:.0}/h without rotations, against ESO's {n}/h; a rotation costs {} read(s) for the {PER_KEY} ExternalSecrets of its key and reached them in at most {}, where polling takes up to an hour; {sharing}",
        per_rotation.map_or("?".into(), |p| format!("{p:.2}")),
        rotation_times.last().map_or("?".into(), |d| ms(*d)),
    );
    Ok(format!(
        "| {run_cell} | {initial_cell} | {quiet_cell} | {rotation_cell} | {round_cell} | {ours_cell} | {eso_cell} | {short} |"
    ))
}
