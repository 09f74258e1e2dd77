//! `secret-sync-controller`: parses flags, starts HTTP (metrics, health), takes part in leader
//! election when asked, runs the reconcilers while leading, and shuts down in order on
//! SIGTERM/SIGINT: reconcilers stop, the lease is released, HTTP stops, exit 0.
//!
//! Losing leadership stops the reconcilers and exits with status 1 so that Kubernetes restarts
//! the pod as a fresh standby (controller-runtime does the same; see `leader.rs`).

use std::future::pending;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use secret_sync_controller::config::LogFormat;
use secret_sync_controller::leader::{LeaderState, default_identity, label_pod};
use secret_sync_controller::shards::{Peers, ShardManager, ShardSettings};
use secret_sync_controller::{
    Config, Context, HttpState, LeaderElector, Leadership, LeaseConfig, Metrics, Readiness, http,
    reconcile,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    if rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("a rustls crypto provider was already installed");
        return ExitCode::FAILURE;
    }
    let (args, ignored) =
        secret_sync_controller::config::without_eso_only_flags(std::env::args_os());
    let config = Arc::new(Config::parse_from(args));
    if let Err(e) = init_logging(&config) {
        eprintln!("{e:#}");
        return ExitCode::FAILURE;
    }
    if !ignored.is_empty() {
        warn!(
            flags = ignored.join(", "),
            "ESO flags that mean nothing here (or are not supported) are ignored"
        );
    }
    match run(config).await {
        Ok(()) => {
            info!("shut down cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = format!("{e:#}"), "exiting with an error");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Arc<Config>) -> anyhow::Result<()> {
    info!(
        version = env!("CARGO_PKG_VERSION"),
        "starting secret-sync-controller"
    );
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;

    let client = kube::Client::try_default()
        .await
        .context("failed to build the Kubernetes client")?;
    let metrics = Metrics::with_object_series(config.object_metrics);
    let readiness = Readiness::default();

    let http_stop = CancellationToken::new();
    let state = HttpState {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
    };
    // Extra routes on the metrics listener: none. The signed change webhook has its own
    // listener (`--webhook-addr`), served by the leader with the reconcilers (`webhook.rs`).
    let webhook_routes = axum::Router::new();
    let servers = http::start(
        config.metrics_addr.get(),
        config.live_addr.get(),
        state,
        webhook_routes,
        http_stop.clone(),
    )
    .await?;

    // With leader election, every replica listens for webhooks and the leader handles them
    // (standbys answer 503), so a Service in front of the replicas never meets a closed port.
    // Without it, the reconcilers listen themselves.
    let mut ctx = Context::new(client, metrics, config.clone(), readiness);
    let mut webhook_server = None;
    if let (Some(addr), true) = (config.webhook_addr, config.enable_leader_election) {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("failed to bind the webhook listener {addr}"))?;
        let slot = secret_sync_controller::webhook::WebhookSlot::default();
        webhook_server = Some(tokio::spawn(
            slot.clone().serve(listener, http_stop.clone()),
        ));
        ctx.webhook_slot = Some(slot);
    }
    if config.shards > 1 {
        ctx.peers = Some(Peers::new(
            shard_settings(&config, &ctx.client)?,
            ctx.metrics.clone(),
        )?);
    }
    let ctx = Arc::new(ctx);
    if config.leader_label_pod.is_some() && !config.enable_leader_election {
        warn!("--leader-label-pod has no effect without --enable-leader-election");
    }
    let result = if ctx.peers.is_some() {
        run_sharded(ctx, shutdown).await
    } else if config.enable_leader_election {
        run_as_candidate(ctx, shutdown).await
    } else {
        run_reconcilers(ctx, shutdown, None).await
    };

    // HTTP stops last, so metrics and probes answer until the lease is released.
    http_stop.cancel();
    servers.join().await;
    if let Some(server) = webhook_server {
        let _ = server.await;
    }
    result
}

/// The shard Leases' names and timings (the leader election's), this replica's peer URL and
/// the peers' shared secret.
fn shard_settings(config: &Config, client: &kube::Client) -> anyhow::Result<ShardSettings> {
    if !config.enable_leader_election {
        bail!("--shards needs --enable-leader-election (its id names the shard Leases)");
    }
    let peer_url = match (&config.shard_peer_url, std::env::var("POD_IP")) {
        (Some(url), _) => url.clone(),
        (None, Ok(ip)) if !ip.is_empty() => {
            format!("http://{ip}:{}", config.shard_peer_addr.port())
        }
        _ => bail!(
            "--shards needs --shard-peer-url (or POD_IP) for the other replicas to reach this one"
        ),
    };
    let file = config.shard_secret_file.as_ref().context(
        "--shards needs --shard-secret-file: the replicas sign the changes they forward",
    )?;
    let secret = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .as_bytes()
        .to_vec();
    if secret.is_empty() {
        bail!("{} holds no secret on its first line", file.display());
    }
    let namespace = config
        .leader_election_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    Ok(ShardSettings {
        count: config.shards,
        lease: LeaseConfig {
            lease_duration: config.leader_election_lease_duration,
            renew_deadline: config.leader_election_renew_deadline,
            retry_period: config.leader_election_retry_period,
            ..LeaseConfig::new(&config.leader_election_id, namespace, default_identity())
        },
        peer_url,
        secret,
    })
}

/// Sharded: keeps this replica's share of the shard Leases and runs the reconcilers over the
/// shards it holds, from the start. On shutdown the shards are handed back first (after their
/// syncs), so the others take over at once; a lost shard stops everything and exits non-zero.
async fn run_sharded(ctx: Arc<Context>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let peers = ctx.peers.clone().context("not sharded")?;
    let manager = ShardManager::new(ctx.client.clone(), peers)?;
    let grace = ctx.config.graceful_shutdown_timeout;
    let manager_stop = CancellationToken::new();
    let mut manager = tokio::spawn(manager.run(manager_stop.clone()));
    let stop = CancellationToken::new();
    let mut task = tokio::spawn(reconcile::run(ctx, stop.clone()));
    let lost = tokio::select! {
        () = shutdown.cancelled() => None,
        kept = &mut manager => Some(kept.context("the shard manager panicked")?),
        joined = &mut task => {
            joined.context("the reconcilers panicked")??;
            bail!("the reconcilers stopped unexpectedly");
        }
    };
    let lost = match lost {
        Some((_, Err(lost))) => Some(lost),
        Some((_, Ok(()))) => None,
        None => {
            manager_stop.cancel();
            let (manager, kept) = manager.await.context("the shard manager panicked")?;
            manager.leave().await;
            kept.err()
        }
    };
    stop.cancel();
    finish(&mut task, grace).await?;
    match lost {
        Some(lost) => Err(lost.into()),
        None => Ok(()),
    }
}

/// Waits for the lease, reconciles while leading, then releases the lease (after the
/// reconcilers have stopped, so two leaders never write at once).
async fn run_as_candidate(ctx: Arc<Context>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = &ctx.config;
    let namespace = config
        .leader_election_namespace
        .clone()
        .unwrap_or_else(|| ctx.client.default_namespace().to_owned());
    let lease = LeaseConfig {
        lease_duration: config.leader_election_lease_duration,
        renew_deadline: config.leader_election_renew_deadline,
        retry_period: config.leader_election_retry_period,
        ..LeaseConfig::new(&config.leader_election_id, namespace, default_identity())
    };
    let lease_name = lease.name.clone();
    let elector = LeaderElector::new(ctx.client.clone(), lease)?;
    let election_stop = CancellationToken::new();
    let mut leadership = elector.start(election_stop.clone());

    let mut states = leadership.subscribe();
    let metrics = ctx.metrics.clone();
    tokio::spawn(async move {
        loop {
            let leading = *states.borrow_and_update() == LeaderState::Leading;
            metrics.set_leader(&lease_name, leading);
            if states.changed().await.is_err() {
                break;
            }
        }
    });

    let labeller = config.leader_label_pod.as_deref().map(|pod| {
        label_pod(
            ctx.client.clone(),
            ctx.client.default_namespace(),
            pod,
            leadership.subscribe(),
            config.leader_election_retry_period,
        )
    });

    // A standby is ready: it serves metrics and health, and has nothing to sync until it leads.
    ctx.readiness.set_ready(true);

    let acquired = tokio::select! {
        acquired = leadership.acquired() => acquired,
        () = shutdown.cancelled() => false,
    };
    let result = if acquired {
        run_reconcilers(ctx, shutdown, Some(&mut leadership)).await
    } else {
        Ok(())
    };
    election_stop.cancel();
    leadership.join().await;
    if let Some(labeller) = labeller {
        // The last state (`false`) is written before the process exits, when the API answers.
        let _ = tokio::time::timeout(Duration::from_secs(2), labeller).await;
    }
    result
}

/// Runs the reconcilers until shutdown (or lost leadership), then gives them
/// `--graceful-shutdown-timeout` to finish.
async fn run_reconcilers(
    ctx: Arc<Context>,
    shutdown: CancellationToken,
    leadership: Option<&mut Leadership>,
) -> anyhow::Result<()> {
    let grace = ctx.config.graceful_shutdown_timeout;
    let stop = CancellationToken::new();
    let mut task = tokio::spawn(reconcile::run(ctx, stop.clone()));
    let lost = async {
        match leadership {
            Some(leadership) => leadership.lost().await,
            None => pending().await,
        }
    };

    let lost_leadership = tokio::select! {
        () = shutdown.cancelled() => false,
        state = lost => state == LeaderState::Lost,
        joined = &mut task => {
            joined.context("the reconcilers panicked")??;
            bail!("the reconcilers stopped unexpectedly");
        }
    };

    stop.cancel();
    finish(&mut task, grace).await?;
    if lost_leadership {
        bail!("leader election lost");
    }
    Ok(())
}

/// Gives the stopped reconcilers `grace` to finish, then abandons them.
async fn finish(
    task: &mut tokio::task::JoinHandle<anyhow::Result<()>>,
    grace: Duration,
) -> anyhow::Result<()> {
    match tokio::time::timeout(grace, &mut *task).await {
        Ok(joined) => joined.context("the reconcilers panicked")?,
        Err(_) => {
            warn!(?grace, "reconcilers did not stop in time; abandoning them");
            task.abort();
            Ok(())
        }
    }
}

/// SIGTERM or SIGINT cancels `shutdown`; a second one exits at once (as controller-runtime's
/// signal handler does).
fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("received SIGTERM; shutting down"),
            _ = int.recv() => info!("received SIGINT; shutting down"),
        }
        shutdown.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        warn!("second signal; exiting immediately");
        std::process::exit(1);
    });
    Ok(())
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => {
            EnvFilter::try_new(directives).context("invalid RUST_LOG")?
        }
        // vaultrs and rustify log each failed Vault request at ERROR, routine 404s included;
        // the Vault provider reports its own errors. A set RUST_LOG decides alone.
        _ => EnvFilter::new(format!(
            "{},vaultrs=off,rustify=off",
            config.log_level.directive()
        )),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    }
    .map_err(|e| anyhow!("failed to set up logging: {e}"))
}
