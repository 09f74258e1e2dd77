//! Benchmark: initial sync of many ExternalSecrets against the local stack.
//!
//!     cargo run --release -p secret-sync-tests --bin bench-initial-sync -- [--external-secrets 1000]
//!         [--namespaces 100] [--keys 100] [--concurrent 16] [--replicas 1] [--shards 0]
//!         [--refresh-round SECS] [--record]
//!
//! Creates `--keys` secrets in moto, one ClusterSecretStore, and `--external-secrets`
//! ExternalSecrets spread over `--namespaces` namespaces, each reading two properties of one key
//! (so keys are shared). Then starts the release controller binary and measures, in one run:
//! wall time until every ExternalSecret is Ready, apiserver writes (from the apiserver's own
//! `apiserver_request_total`), provider calls (moto's request log), the controller's peak RSS
//! (VmHWM), and a ceiling: the same number of raw Secret creates from this process. `--record`
//! appends the figures to BENCHMARKS.md.
//!
//! `--replicas R --shards S` starts R sharded controller processes (`--shards S`, peers on
//! loopback) instead of one, and reports each one's peak RSS. `--refresh-round SECS` gives the
//! ExternalSecrets that refresh interval and, once all are Ready, waits for a whole refresh round
//! (every ExternalSecret refreshed once more): its provider calls, apiserver writes and duration,
//! and the controllers' CPU time in it.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use secret_sync_crd::{ConditionStatus, ExternalSecret, ExternalSecretConditionType};
use secret_sync_tests::controller::{apply, aws_cluster_credentials, aws_cluster_store_object};
use secret_sync_tests::{
    Stack, delete_namespace, ensure_namespace, install_crds, repo_root, unique_name,
};
use serde_json::json;

struct Args {
    external_secrets: usize,
    namespaces: usize,
    keys: usize,
    concurrent: usize,
    replicas: usize,
    shards: usize,
    refresh_round: Option<u64>,
    record: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        external_secrets: 1000,
        namespaces: 100,
        keys: 100,
        concurrent: 16,
        replicas: 1,
        shards: 0,
        refresh_round: None,
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
            "--external-secrets" => args.external_secrets = value()?,
            "--namespaces" => args.namespaces = value()?,
            "--keys" => args.keys = value()?,
            "--concurrent" => args.concurrent = value()?,
            "--replicas" => args.replicas = value()?.max(1),
            "--shards" => args.shards = value()?,
            "--refresh-round" => args.refresh_round = Some(value()? as u64),
            "--record" => args.record = true,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// Sum of `apiserver_request_total` for write verbs, by resource.
async fn apiserver_writes(client: &kube::Client) -> anyhow::Result<BTreeMap<String, u64>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let mut writes = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let verb = label(line, "verb");
        if !matches!(
            verb,
            Some("POST" | "PUT" | "PATCH" | "DELETE" | "APPLY" | "CREATE" | "UPDATE")
        ) {
            continue;
        }
        let resource = label(line, "resource").unwrap_or("?").to_owned();
        let sub = label(line, "subresource").filter(|s| !s.is_empty());
        let key = match sub {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource,
        };
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *writes.entry(key).or_insert(0) += value as u64;
    }
    Ok(writes)
}

fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let end = line[start..].find('"')? + start;
    Some(&line[start..end])
}

fn moto_requests(stack_dir: &std::path::Path) -> anyhow::Result<u64> {
    let log =
        std::fs::read_to_string(stack_dir.join("logs/moto.log")).context("reading moto's log")?;
    Ok(log.lines().filter(|l| l.contains("\"POST / HTTP")).count() as u64)
}

/// User plus system CPU time of a process, from /proc/<pid>/stat (clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The local control plane's process (`kas serve`: kube-apiserver and etcd in one).
fn control_plane_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        let mut args = cmdline.split('\0');
        (args.next()?.ends_with("/kas") && args.next() == Some("serve")).then_some(pid)
    })
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let stack = Stack::get().await;
    let client = stack.kube().await;
    install_crds(&client).await;
    let run = unique_name("bench");
    let stack_dir = PathBuf::from(stack.var("SECRET_SYNC_STACK_DIR"));
    eprintln!(
        "bench {run}: {} ExternalSecrets, {} namespaces, {} keys",
        args.external_secrets, args.namespaces, args.keys
    );

    // Provider side: the keys in moto.
    let sm = aws_sdk_secretsmanager::Client::new(&stack.aws().await);
    let keys: Vec<String> = (0..args.keys).map(|i| format!("{run}/key-{i}")).collect();
    futures::stream::iter(keys.iter().enumerate())
        .map(|(i, key)| {
            let sm = sm.clone();
            async move {
                sm.create_secret()
                    .name(key)
                    .secret_string(format!(r#"{{"username":"user-{i}","password":"pw-{i}"}}"#))
                    .send()
                    .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;

    // Cluster side: namespaces, one ClusterSecretStore (credentials in a fixed namespace, so one
    // client serves every namespace), and the ExternalSecrets.
    let namespaces: Vec<String> = (0..args.namespaces).map(|i| format!("{run}-{i}")).collect();
    let creds_ns = format!("{run}-creds");
    for ns in namespaces.iter().chain(std::iter::once(&creds_ns)) {
        ensure_namespace(&client, ns).await;
    }
    aws_cluster_credentials(&client, &creds_ns).await?;
    apply(&client, &aws_cluster_store_object(&run, &creds_ns, None)).await;
    let created = Instant::now();
    let refresh = &args
        .refresh_round
        .map_or_else(|| "1h".to_owned(), |s| format!("{s}s"));
    futures::stream::iter(0..args.external_secrets)
        .map(|i| {
            let client = client.clone();
            let (ns, key, run) = (&namespaces[i % args.namespaces], &keys[i % args.keys], &run);
            async move {
                let es: ExternalSecret = serde_json::from_value(json!({
                    "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                    "metadata": { "name": format!("es-{i}"), "namespace": ns, "labels": { "bench": run } },
                    "spec": {
                        "refreshInterval": refresh,
                        "secretStoreRef": { "name": run, "kind": "ClusterSecretStore" },
                        "data": [
                            { "secretKey": "username", "remoteRef": { "key": key, "property": "username" } },
                            { "secretKey": "password", "remoteRef": { "key": key, "property": "password" } }
                        ]
                    }
                }))?;
                Api::<ExternalSecret>::namespaced(client, ns).create(&PostParams::default(), &es).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    eprintln!(
        "created {} ExternalSecrets in {:.1?}",
        args.external_secrets,
        created.elapsed()
    );

    // Measure: start the controller, wait for every ExternalSecret to be Ready.
    let writes_before = apiserver_writes(&client).await?;
    let moto_before = moto_requests(&stack_dir)?;
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .context("exe dir")?
        .join("secret-sync-controller");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p secret-sync-controller)",
            bin.display()
        );
    }
    // Sharded: the replicas' Leases in the credentials namespace, peers on loopback.
    let shards = if args.replicas > 1 && args.shards == 0 {
        2 * args.replicas
    } else {
        args.shards
    };
    let secret_file = stack_dir.join(format!("{run}-shard-secret"));
    std::fs::write(&secret_file, unique_name("bench-secret"))?;
    let control_plane = control_plane_pid();
    let control_plane_cpu = control_plane.and_then(cpu_seconds);
    let started = Instant::now();
    let mut controllers = Vec::new();
    for r in 0..args.replicas {
        let log = std::fs::File::create(stack_dir.join(format!("logs/{run}-controller-{r}.log")))?;
        let metrics = format!("127.0.0.1:{}", 18181 + r);
        let peer = format!("127.0.0.1:{}", 18281 + r);
        let mut command = tokio::process::Command::new(&bin);
        command
            .args(["--metrics-addr", &metrics, "--live-addr", "0"])
            .args([
                "--concurrent",
                &args.concurrent.to_string(),
                "--log-level",
                "warn",
            ]);
        if shards > 0 {
            command.args([
                "--enable-leader-election",
                "--leader-election-id",
                &run,
                "--leader-election-namespace",
                &creds_ns,
                "--shards",
                &shards.to_string(),
                "--shard-peer-addr",
                &peer,
                "--shard-peer-url",
                &format!("http://{peer}"),
                "--shard-secret-file",
                &secret_file.to_string_lossy(),
            ]);
        }
        let controller = command
            .env("KUBECONFIG", stack.var("KUBECONFIG"))
            .env("AWS_ENDPOINT_URL", stack.var("AWS_ENDPOINT_URL"))
            .env("AWS_REGION", stack.var("AWS_REGION"))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = controller.id().context("controller pid")?;
        controllers.push((controller, pid, metrics));
    }

    let es_api: Api<ExternalSecret> = Api::all(client.clone());
    let mut ready: HashSet<String> = HashSet::new();
    let events = watcher(
        es_api,
        watcher::Config::default().labels(&format!("bench={run}")),
    )
    .applied_objects();
    let mut events = std::pin::pin!(events);
    // 600 s, and more for a large run (100,000 at 200 per second take over 500 s).
    let limit = 600 + args.external_secrets as u64 / 50;
    let deadline = Instant::now() + Duration::from_secs(limit);
    while ready.len() < args.external_secrets {
        let next = tokio::time::timeout_at(deadline.into(), events.next()).await;
        let Ok(Some(event)) = next else {
            bail!(
                "only {} of {} Ready after {limit} s",
                ready.len(),
                args.external_secrets
            )
        };
        let es = event?;
        let is_ready = es
            .status
            .as_ref()
            .and_then(|s| s.condition(ExternalSecretConditionType::Ready))
            .is_some_and(|c| c.status == ConditionStatus::True);
        if is_ready {
            ready.insert(format!(
                "{}/{}",
                es.metadata.namespace.unwrap_or_default(),
                es.metadata.name.unwrap_or_default()
            ));
        }
    }
    let wall = started.elapsed();
    let control_plane_cpu = match (control_plane.and_then(cpu_seconds), control_plane_cpu) {
        (Some(after), Some(before)) => format!(
            "; control plane {:.1} s CPU ({:.0}% of both cores)",
            after - before,
            100.0 * (after - before) / (2.0 * wall.as_secs_f64())
        ),
        _ => String::new(),
    };
    let rss_kib: Vec<u64> = controllers
        .iter()
        .map(|(_, pid, _)| peak_rss_kib(*pid).unwrap_or(0))
        .collect();
    let cpu: f64 = controllers
        .iter()
        .map(|(_, pid, _)| cpu_seconds(*pid).unwrap_or(0.0))
        .sum();
    let mut provider_metric = Vec::new();
    for (_, _, metrics) in &controllers {
        provider_metric.push(
            scrape_provider_calls(metrics)
                .await
                .unwrap_or_else(|e| format!("metrics unreadable: {e}")),
        );
    }
    let provider_metric = provider_metric.join("; ");
    let writes_after = apiserver_writes(&client).await?;
    let moto_calls = moto_requests(&stack_dir)? - moto_before;

    // A whole refresh round after the cold start: every ExternalSecret refreshed once more.
    let round = match args.refresh_round {
        Some(_) => Some(
            refresh_round(
                &client,
                &run,
                args.external_secrets,
                &stack_dir,
                &controllers
                    .iter()
                    .map(|(_, pid, _)| *pid)
                    .collect::<Vec<_>>(),
            )
            .await?,
        ),
        None => None,
    };
    for (controller, pid, _) in &mut controllers {
        let _ = nix_terminate(*pid);
        let _ = tokio::time::timeout(Duration::from_secs(30), controller.wait()).await;
    }
    let _ = std::fs::remove_file(&secret_file);
    let mut write_delta: BTreeMap<String, u64> = BTreeMap::new();
    // Only what the controller writes; namespace clean-up of earlier runs also writes meanwhile.
    for (k, v) in writes_after.iter().filter(|(k, _)| {
        k.starts_with("secrets") || k.starts_with("externalsecrets") || *k == "events"
    }) {
        let d = v.saturating_sub(writes_before.get(k).copied().unwrap_or(0));
        if d > 0 {
            write_delta.insert(k.clone(), d);
        }
    }
    let total_writes: u64 = write_delta.values().sum();

    // Ceiling: raw Secret creates from this process, same count, same concurrency.
    let raw_started = Instant::now();
    futures::stream::iter(0..args.external_secrets)
        .map(|i| {
            let client = client.clone();
            let ns = &namespaces[i % args.namespaces];
            async move {
                let secret: Secret = serde_json::from_value(json!({
                    "metadata": { "name": format!("raw-{i}") },
                    "stringData": { "username": "u", "password": "p" }
                }))?;
                Api::<Secret>::namespaced(client, ns)
                    .create(&PostParams::default(), &secret)
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.concurrent)
        .try_collect::<Vec<_>>()
        .await?;
    let raw = raw_started.elapsed();

    let n = args.external_secrets as f64;
    let report = format!(
        "| {n} ES / {ns} ns / {k} keys, --concurrent {c}{sharded} | {wall:.1} s ({sps:.0} ES/s) | {writes} ({detail}); {wps:.0}/s | {calls} ({metric}) | {rss} MiB, {cpu:.1} s CPU{control_plane_cpu} | {raw:.1} s ({rps:.0} Secrets/s) | {ratio:.0}% of Secrets/s, {wratio:.0}% of writes/s |",
        sharded = if args.replicas > 1 || shards > 0 {
            format!(", {} replicas, {shards} shards", args.replicas)
        } else {
            String::new()
        },
        n = args.external_secrets,
        ns = args.namespaces,
        k = args.keys,
        c = args.concurrent,
        wall = wall.as_secs_f64(),
        sps = n / wall.as_secs_f64(),
        writes = total_writes,
        detail = write_delta
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        calls = moto_calls,
        metric = provider_metric,
        wps = total_writes as f64 / wall.as_secs_f64(),
        wratio = 100.0 * (total_writes as f64 / wall.as_secs_f64()) / (n / raw.as_secs_f64()),
        rss = rss_kib
            .iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" + "),
        cpu = cpu,
        raw = raw.as_secs_f64(),
        rps = n / raw.as_secs_f64(),
        ratio = 100.0 * raw.as_secs_f64() / wall.as_secs_f64(),
    );
    println!(
        "| run | wall time to all Ready | apiserver writes | provider calls (moto) | controller peak RSS, CPU time (and the control plane's) | raw Secret creates (ceiling) | of ceiling |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!("{report}");
    if let Some(round) = &round {
        println!("refresh round: {round}");
    }
    if args.record {
        let path = repo_root().join("BENCHMARKS.md");
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&format!("{report}\n"));
        if let Some(round) = &round {
            text.push_str(&format!("\nRefresh round: {round}\n"));
        }
        std::fs::write(&path, text)?;
    }

    // Clean up, and wait: a later run must not share the apiserver with this one's deletions.
    for ns in namespaces.iter().chain(std::iter::once(&creds_ns)) {
        delete_namespace(&client, ns).await;
    }
    let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let left = ns_api
            .list(&Default::default())
            .await?
            .items
            .iter()
            .filter(|n| {
                n.metadata
                    .name
                    .as_deref()
                    .is_some_and(|name| name.starts_with(&run))
            })
            .count();
        if left == 0 || Instant::now() > deadline {
            eprintln!("clean-up: {left} namespaces left");
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}

fn nix_terminate(pid: u32) -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
}

/// Waits until every ExternalSecret of the run has refreshed once more after now (its
/// `status.refreshTime` later than now), and reports the round: how long it took, the provider
/// calls (moto's log) and apiserver writes in it, and the controllers' CPU time.
async fn refresh_round(
    client: &kube::Client,
    run: &str,
    count: usize,
    stack_dir: &std::path::Path,
    pids: &[u32],
) -> anyhow::Result<String> {
    let from = jiff::Timestamp::now();
    let started = Instant::now();
    let moto_before = moto_requests(stack_dir)?;
    let writes_before = apiserver_writes(client).await?;
    let cpu_before: f64 = pids.iter().map(|p| cpu_seconds(*p).unwrap_or(0.0)).sum();
    let es_api: Api<ExternalSecret> = Api::all(client.clone());
    let events = watcher(
        es_api,
        watcher::Config::default().labels(&format!("bench={run}")),
    )
    .applied_objects();
    let mut events = std::pin::pin!(events);
    let mut refreshed: HashSet<String> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while refreshed.len() < count {
        let next = tokio::time::timeout_at(deadline.into(), events.next()).await;
        let Ok(Some(event)) = next else {
            bail!("only {} of {count} refreshed after 1800 s", refreshed.len())
        };
        let es = event?;
        let after = es
            .status
            .as_ref()
            .and_then(|s| s.refresh_time.as_ref())
            .is_some_and(|t| t.0 > from);
        if after {
            refreshed.insert(format!(
                "{}/{}",
                es.metadata.namespace.unwrap_or_default(),
                es.metadata.name.unwrap_or_default()
            ));
        }
    }
    let took = started.elapsed();
    let calls = moto_requests(stack_dir)? - moto_before;
    let writes_after = apiserver_writes(client).await?;
    let writes: Vec<String> = writes_after
        .iter()
        .filter(|(k, _)| k.starts_with("secrets") || k.starts_with("externalsecrets"))
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(writes_before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| format!("{k} {d}"))
        })
        .collect();
    let cpu: f64 = pids
        .iter()
        .map(|p| cpu_seconds(*p).unwrap_or(0.0))
        .sum::<f64>()
        - cpu_before;
    Ok(format!(
        "{count} ExternalSecrets refreshed once more within {:.1} s of the end of the cold start; provider calls {calls}; writes {}; {cpu:.1} s CPU",
        took.as_secs_f64(),
        writes.join(", ")
    ))
}

/// The controller's own count of provider calls, by operation (its `/metrics`, read with curl).
async fn scrape_provider_calls(addr: &str) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("curl")
        .args(["-fsS", &format!("http://{addr}/metrics")])
        .output()
        .await?;
    if !out.status.success() {
        bail!("curl: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let calls: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("secret_sync_provider_calls_total{"))
        .map(|l| {
            let op = label(l, "operation").unwrap_or("?");
            let result = label(l, "result").unwrap_or("?");
            format!("{op} {result} {}", l.rsplit(' ').next().unwrap_or("?"))
        })
        .collect();
    Ok(calls.join(", "))
}
