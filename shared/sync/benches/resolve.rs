//! Benchmark: the cost of resolving one provider change event to the ExternalSecrets it
//! affects, with many cached, through the read index and by the scan it replaced, in one run.
//!
//!     cargo bench -p secret-sync-engine --bench resolve -- [--external-secrets 10000] [--namespaces 100] [--finds 100] [--events 2000]
//!
//! In memory, no stack: `--namespaces` SecretStores (AWS Secrets Manager, one per namespace),
//! one ClusterSecretStore (Vault), and `--external-secrets` ExternalSecrets over the namespaces,
//! each reading two keys of its own (one AWS, one Vault), and `--finds` of them also a `find` by
//! name pattern. Then `--events` changes, alternating an AWS `PutSecretValue` CloudTrail event
//! and a Vault KV write, each naming a key exactly one ExternalSecret reads, are resolved both
//! ways: `ReadIndex::affected` (what every change source does) and `resolve::scan` (every cached
//! ExternalSecret looked at, each `find` pattern compiled per event, as before the index). Both
//! must return the same ExternalSecrets. Prints the median and p99 per event of each, and their
//! ratio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use secret_sync::index::ReadIndex;
use secret_sync::resolve::{self, StoreCaches};
use secret_sync_crd::provider::{AwsProvider, AwsServiceType, VaultKvVersion, VaultProvider};
use secret_sync_crd::{
    ClusterSecretStore, ClusterSecretStoreSpec, ExternalSecret, ExternalSecretData,
    ExternalSecretDataFromRemoteRef, ExternalSecretDataRemoteRef, ExternalSecretFind,
    ExternalSecretSpec, FindName, SecretStore, SecretStoreProvider, SecretStoreRef,
    SecretStoreSpec, StoreKind,
};
use secret_sync_events::vault::{KvChange, KvChangeKind, KvVersion};
use secret_sync_events::{Change, aws};

struct Args {
    external_secrets: usize,
    namespaces: usize,
    finds: usize,
    events: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        external_secrets: 10_000,
        namespaces: 100,
        finds: 100,
        events: 2_000,
    };
    // `cargo bench` passes `--bench`; it is not ours.
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(flag) = it.next() {
        let mut value = || -> anyhow::Result<usize> {
            it.next()
                .with_context(|| format!("{flag} needs a value"))?
                .parse()
                .with_context(|| format!("{flag} takes a number"))
        };
        match flag.as_str() {
            "--external-secrets" => args.external_secrets = value()?,
            "--namespaces" => args.namespaces = value()?.max(1),
            "--finds" => args.finds = value()?,
            "--events" => args.events = value()?.max(2),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const VAULT: &str = "http://127.0.0.1:8200";

fn stores(namespaces: usize) -> StoreCaches {
    let mut ss = Writer::<SecretStore>::default();
    for n in 0..namespaces {
        let mut store = SecretStore::new(
            "aws",
            SecretStoreSpec {
                provider: SecretStoreProvider {
                    aws: Some(AwsProvider {
                        service: AwsServiceType::SecretsManager,
                        region: REGION.into(),
                        ..AwsProvider::default()
                    }),
                    ..SecretStoreProvider::default()
                },
                ..SecretStoreSpec::default()
            },
        );
        store.metadata.namespace = Some(format!("ns-{n}"));
        ss.apply_watcher_event(&watcher::Event::Apply(store));
    }
    let mut css = Writer::<ClusterSecretStore>::default();
    css.apply_watcher_event(&watcher::Event::Apply(ClusterSecretStore::new(
        "vault",
        ClusterSecretStoreSpec(SecretStoreSpec {
            provider: SecretStoreProvider {
                vault: Some(VaultProvider {
                    server: VAULT.into(),
                    path: Some("secret".into()),
                    version: VaultKvVersion::V2,
                    ..VaultProvider::default()
                }),
                ..SecretStoreProvider::default()
            },
            ..SecretStoreSpec::default()
        }),
    )));
    StoreCaches {
        secret_stores: ss.as_reader(),
        cluster_secret_stores: css.as_reader(),
    }
}

fn data(key: String, store: &str, kind: StoreKind) -> ExternalSecretData {
    ExternalSecretData {
        secret_key: key.replace('/', "-"),
        remote_ref: ExternalSecretDataRemoteRef {
            key,
            ..Default::default()
        },
        source_ref: Some(secret_sync_crd::StoreSourceRef {
            store_ref: Some(SecretStoreRef {
                name: store.into(),
                kind: Some(kind),
            }),
            generator_ref: None,
        }),
    }
}

fn external_secret(i: usize, args: &Args) -> ExternalSecret {
    let mut spec = ExternalSecretSpec {
        data: vec![
            data(format!("app-{i}/db"), "aws", StoreKind::SecretStore),
            data(
                format!("app-{i}/api"),
                "vault",
                StoreKind::ClusterSecretStore,
            ),
        ],
        ..ExternalSecretSpec::default()
    };
    if i < args.finds {
        spec.secret_store_ref = Some(SecretStoreRef {
            name: "aws".into(),
            kind: Some(StoreKind::SecretStore),
        });
        spec.data_from = vec![ExternalSecretDataFromRemoteRef {
            find: Some(ExternalSecretFind {
                name: Some(FindName {
                    regexp: Some(format!("^team-{i}/[a-z]+-(db|api)$")),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }];
    }
    let mut es = ExternalSecret::new(&format!("es-{i}"), spec);
    es.metadata.namespace = Some(format!("ns-{}", i % args.namespaces));
    es
}

fn aws_change(i: usize) -> anyhow::Result<Change> {
    let event = serde_json::json!({
        "version": "0", "id": format!("e{i}"), "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.secretsmanager", "account": ACCOUNT, "time": "2026-12-06T10:00:00Z",
        "region": REGION, "resources": [],
        "detail": {
            "eventVersion": "1.08", "eventSource": "secretsmanager.amazonaws.com",
            "eventName": "PutSecretValue", "awsRegion": REGION, "eventType": "AwsApiCall",
            "requestParameters": { "secretId": format!("app-{i}/db") }
        }
    });
    aws::parse_event(event.to_string().as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_change()
        .map_err(|why| anyhow::anyhow!("not a change: {why}"))
}

fn vault_change(i: usize) -> Change {
    KvChange {
        mount: "secret".into(),
        key: format!("app-{i}/api"),
        kind: KvChangeKind::Write,
        version: Some(KvVersion::V2),
        namespace: None,
        time: None,
        request_id: None,
    }
    .to_change(Some(VAULT))
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let stores = stores(args.namespaces);
    let all: Vec<Arc<ExternalSecret>> = (0..args.external_secrets)
        .map(|i| Arc::new(external_secret(i, &args)))
        .collect();
    let mut writer = Writer::<ExternalSecret>::default();
    let index = ReadIndex::<ExternalSecret>::new();
    let started = Instant::now();
    for es in &all {
        let event = watcher::Event::Apply(es.as_ref().clone());
        writer.apply_watcher_event(&event);
        index.apply(&event);
    }
    let indexing = started.elapsed();
    let cache = writer.as_reader();

    let mut by_index = Vec::with_capacity(args.events);
    let mut by_scan = Vec::with_capacity(args.events);
    for e in 0..args.events {
        let i = (e * 7919) % args.external_secrets;
        let change = if e % 2 == 0 {
            aws_change(i)?
        } else {
            vault_change(i)
        };
        let t = Instant::now();
        let found = index.affected(&change, &stores, &cache);
        by_index.push(t.elapsed());
        // The scan is given the cache's contents as the old code took them: a fresh clone of it.
        let t = Instant::now();
        let snapshot = cache.state();
        let scanned = resolve::scan(&change, &snapshot, &stores);
        by_scan.push(t.elapsed());
        let names = |v: &[Arc<ExternalSecret>]| {
            let mut n: Vec<_> = v.iter().map(|es| es.metadata.name.clone()).collect();
            n.sort();
            n
        };
        ensure!(
            names(&found) == names(&scanned),
            "index and scan disagree on event {e}"
        );
        ensure!(
            found.len() == 1,
            "event {e} affects exactly one ExternalSecret"
        );
    }
    by_index.sort();
    by_scan.sort();
    let (index_p50, scan_p50) = (quantile(&by_index, 0.5), quantile(&by_scan, 0.5));
    println!(
        "{} ExternalSecrets cached ({} with a find) in {} namespaces; {} events (AWS and Vault alternating), each affecting one",
        args.external_secrets, args.finds, args.namespaces, args.events
    );
    println!(
        "indexing all of them: {:.1} ms",
        indexing.as_secs_f64() * 1e3
    );
    println!(
        "index: median {}, p99 {}",
        micros(index_p50),
        micros(quantile(&by_index, 0.99))
    );
    println!(
        "scan:  median {}, p99 {}",
        micros(scan_p50),
        micros(quantile(&by_scan, 0.99))
    );
    println!(
        "ratio of medians (scan / index): {:.0}x",
        scan_p50.as_secs_f64() / index_p50.as_secs_f64().max(1e-9)
    );
    Ok(())
}
