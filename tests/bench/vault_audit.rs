//! Benchmark: how fast a `kv put` in OpenBao reaches the cluster through the audit stream.
//!
//!     cargo build --release -p secret-sync-controller -p secret-sync-tests \
//!         --bin secret-sync-controller --bin bench-vault-audit
//!     target/release/bench-vault-audit [--writes 200] [--record]
//!
//! On the local stack (OpenBao's `socket` audit device writing to `SECRET_SYNC_VAULT_AUDIT_ADDR`,
//! the real apiserver) with the release controller binary listening there: `--writes` times, a
//! new value is written to a KV v2 key; the time from the start of that write until a watch on
//! the Secret sees the value. One ExternalSecret, refresh 1 h, so only the audit stream can move
//! the value within the run. Beside it, computed: the Vault reads per hour of polling at a 1 h
//! refresh for 1,000 ExternalSecrets.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
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
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--writes" => writes = args.next().context("--writes N")?.parse()?,
            "--record" => record = true,
            other => bail!("unknown flag {other}"),
        }
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
        "| {writes} writes, `kv put` (vaultrs, KV v2) → OpenBao socket audit device → controller | p50 {}, p90 {}, p99 {}, max {} | polling at 1 h: mean 30 min, worst 60 min; 1,000 ExternalSecrets cost ESO 1,000 Vault reads/h; the audit stream costs 1 read per write of a key read, plus secret-sync's periodic safety net of 1 read per key per refresh |",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().context("no writes")?),
    );
    println!("| run | write started → Secret seen by a watch | polling, computed |");
    println!("|---|---|---|");
    println!("{report}");
    if record {
        let path = repo_root().join("BENCHMARKS.md");
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str(&format!("{report}\n"));
        std::fs::write(&path, text)?;
    }
    delete_namespace(&client, &ns).await;
    Ok(())
}
