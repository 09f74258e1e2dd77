//! Command-line flags (each also read from a `SECRET_SYNC_*` environment variable).
//!
//! Where ESO's controller has a flag for the same thing, the name, spelling and default are ESO's
//! (`cmd/controller/root.go`), so a Deployment's `args:` carry over: `--metrics-addr=:8080`,
//! `--live-addr=:8082`, `--enable-leader-election=true`, `--leader-election-id`, `--concurrent`,
//! `--controller-class`, `--store-requeue-interval=5m`, `--namespace`, `--loglevel`. Durations
//! are Go duration strings (`90s`, `1h30m`), addresses Go listen addresses (`:8080`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

/// Flags of the `secret-sync-controller` binary.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "secret-sync-controller",
    version,
    about = "Keeps Kubernetes Secrets in step with external secret stores (ESO-compatible API)."
)]
pub struct Config {
    /// The address the metric endpoint binds to (`:8080` = every interface; `0` disables it).
    #[arg(long, env = "SECRET_SYNC_METRICS_ADDR", default_value = ":8080", value_parser = parse_listen_addr)]
    pub metrics_addr: ListenAddr,

    /// The address the liveness and readiness endpoints (`/healthz`, `/readyz`) bind to
    /// (`0` disables them). May equal `--metrics-addr`, then one server serves both.
    #[arg(
        long,
        visible_alias = "health-addr",
        env = "SECRET_SYNC_LIVE_ADDR",
        default_value = ":8082",
        value_parser = parse_listen_addr
    )]
    pub live_addr: ListenAddr,

    /// Enable leader election, so that only one replica reconciles at a time.
    #[arg(
        long,
        env = "SECRET_SYNC_ENABLE_LEADER_ELECTION",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true"
    )]
    pub enable_leader_election: bool,

    /// Name of the Lease used for leader election. Set it to a unique value when several
    /// deployments share a namespace.
    #[arg(
        long,
        env = "SECRET_SYNC_LEADER_ELECTION_ID",
        default_value = "secret-sync-controller"
    )]
    pub leader_election_id: String,

    /// Namespace of the Lease [default: the pod's namespace (in-cluster) or the kubeconfig
    /// context's].
    #[arg(long, env = "SECRET_SYNC_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// How long a leader's lease is valid without renewal; standbys wait this long before
    /// taking over from a leader that stopped renewing.
    #[arg(long, env = "SECRET_SYNC_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_election_lease_duration: Duration,

    /// How long the leader keeps retrying a failed renewal before it gives up leadership (and
    /// exits).
    #[arg(long, env = "SECRET_SYNC_LEADER_ELECTION_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub leader_election_renew_deadline: Duration,

    /// How often the leader renews and standbys try to acquire.
    #[arg(long, env = "SECRET_SYNC_LEADER_ELECTION_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub leader_election_retry_period: Duration,

    /// This replica's own Pod (in the client's namespace: in-cluster, the pod's): while it leads,
    /// the Pod is labelled `secret-sync.io/leader=true` (else `false`), so a Service can reach
    /// the leader only (the Vault audit device, webhooks). Needs get and patch on pods. Only
    /// with leader election.
    #[arg(long, env = "SECRET_SYNC_LEADER_LABEL_POD")]
    pub leader_label_pod: Option<String>,

    /// The number of concurrent reconciles.
    #[arg(long, env = "SECRET_SYNC_CONCURRENT", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrent: u16,

    /// An SQS queue that an EventBridge rule routes AWS Secrets Manager events to: each event
    /// syncs the ExternalSecrets reading the changed secret at once. Unset: no queue is read.
    #[arg(long, env = "SECRET_SYNC_SQS_QUEUE_URL")]
    pub sqs_queue_url: Option<String>,

    /// How long a received SQS message stays hidden from other consumers; extended while it is
    /// handled. A message whose sync failed returns after it.
    #[arg(long, env = "SECRET_SYNC_SQS_VISIBILITY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub sqs_visibility_timeout: Duration,

    /// Listen here for a Vault / OpenBao `socket` audit device (`socket_type=tcp`): each KV
    /// change it reports syncs the ExternalSecrets reading that key at once. Unset: no listener.
    #[arg(long, env = "SECRET_SYNC_VAULT_AUDIT_ADDR")]
    pub vault_audit_addr: Option<std::net::SocketAddr>,

    /// Peers allowed to connect to the audit listener (comma-separated IPs) [default: loopback
    /// only].
    #[arg(
        long,
        env = "SECRET_SYNC_VAULT_AUDIT_ALLOWED_PEERS",
        value_delimiter = ','
    )]
    pub vault_audit_allowed_peers: Vec<std::net::IpAddr>,

    /// The Vault server (as stores' `server` names it) whose audit device writes to the
    /// listener: only stores on it are matched. Unset: stores on any server with the mount.
    #[arg(long, env = "SECRET_SYNC_VAULT_AUDIT_SERVER")]
    pub vault_audit_server: Option<String>,

    /// At most this many audit connections at once.
    #[arg(
        long,
        env = "SECRET_SYNC_VAULT_AUDIT_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub vault_audit_max_connections: usize,

    /// PEM certificate chain for TLS on the audit listener (with `--vault-audit-tls-key`).
    #[arg(
        long,
        env = "SECRET_SYNC_VAULT_AUDIT_TLS_CERT",
        requires = "vault_audit_tls_key"
    )]
    pub vault_audit_tls_cert: Option<std::path::PathBuf>,

    /// PEM private key for TLS on the audit listener.
    #[arg(
        long,
        env = "SECRET_SYNC_VAULT_AUDIT_TLS_KEY",
        requires = "vault_audit_tls_cert"
    )]
    pub vault_audit_tls_key: Option<std::path::PathBuf>,

    /// Subscribe to the event stream (`sys/events/subscribe`, Vault Enterprise 1.16+) of every
    /// Vault server the stores name, logged in as one of those stores.
    #[arg(long, env = "SECRET_SYNC_VAULT_EVENT_STREAM", default_value_t = false)]
    pub vault_event_stream: bool,

    /// The event types to subscribe to, one websocket each (comma-separated).
    #[arg(
        long,
        env = "SECRET_SYNC_VAULT_EVENT_TYPES",
        value_delimiter = ',',
        default_value = "kv*"
    )]
    pub vault_event_types: Vec<String>,

    /// Listen here for signed change webhooks (`POST /webhook`). Needs
    /// `--webhook-secret-file`. Unset: no listener.
    #[arg(
        long,
        env = "SECRET_SYNC_WEBHOOK_ADDR",
        requires = "webhook_secret_file"
    )]
    pub webhook_addr: Option<std::net::SocketAddr>,

    /// A file with the webhook's shared secrets, one per line (several while rotating).
    #[arg(long, env = "SECRET_SYNC_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<std::path::PathBuf>,

    /// How far a webhook's timestamp may be from now, either way.
    #[arg(long, env = "SECRET_SYNC_WEBHOOK_REPLAY_WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub webhook_replay_window: Duration,

    /// Webhook calls accepted per second (bursts of twice this); more get 429.
    #[arg(long, env = "SECRET_SYNC_WEBHOOK_RATE_LIMIT", default_value_t = 100)]
    pub webhook_rate_limit: u32,

    /// Reconcile ClusterExternalSecrets (ESO's flag). Only without `--namespace`: a
    /// ClusterExternalSecret writes into every namespace it selects.
    #[arg(
        long,
        env = "SECRET_SYNC_ENABLE_CLUSTER_EXTERNAL_SECRET_RECONCILER",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true"
    )]
    pub enable_cluster_external_secret_reconciler: bool,

    /// Sync an ExternalSecret as soon as a ConfigMap or Secret its `templateFrom` reads changes
    /// (ESO waits for the refresh). Needs list/watch on ConfigMaps.
    #[arg(
        long,
        env = "SECRET_SYNC_WATCH_TEMPLATE_SOURCES",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true"
    )]
    pub watch_template_sources: bool,

    /// Sync an ExternalSecret as soon as a Secret its Kubernetes store reads changes, through a
    /// watch made with the store's credentials (which then need list/watch on Secrets).
    #[arg(
        long,
        env = "SECRET_SYNC_WATCH_KUBERNETES_STORES",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true"
    )]
    pub watch_kubernetes_stores: bool,

    /// Reconcile PushSecrets (ESO's flag).
    #[arg(
        long,
        env = "SECRET_SYNC_ENABLE_PUSH_SECRET_RECONCILER",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true"
    )]
    pub enable_push_secret_reconciler: bool,

    /// Reconcile ClusterPushSecrets (ESO's flag). Only without `--namespace`: a
    /// ClusterPushSecret writes into every namespace it selects.
    #[arg(
        long,
        env = "SECRET_SYNC_ENABLE_CLUSTER_PUSH_SECRET_RECONCILER",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true"
    )]
    pub enable_cluster_push_secret_reconciler: bool,

    /// ESO's flood gate: an ExternalSecret or PushSecret never uses a store that is not Ready.
    #[arg(
        long,
        env = "SECRET_SYNC_ENABLE_FLOOD_GATE",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true"
    )]
    pub enable_flood_gate: bool,

    /// Roll the Deployments, StatefulSets and DaemonSets using a target Secret whose data changed,
    /// for ExternalSecrets without the annotation `secret-sync.io/rollout-on-change`.
    #[arg(
        long,
        env = "SECRET_SYNC_ROLLOUT_ON_CHANGE",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true"
    )]
    pub rollout_on_change: bool,

    /// ESO's: let ExternalSecrets write other kinds than Secrets (`target.manifest`), such as
    /// ConfigMaps. Their values land in objects the API server may not encrypt and more people
    /// may read; the controller needs RBAC for each kind (the chart's `genericTargets`).
    #[arg(
        long,
        env = "SECRET_SYNC_UNSAFE_ALLOW_GENERIC_TARGETS",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true"
    )]
    pub unsafe_allow_generic_targets: bool,

    /// Record an Event each time a sync creates, updates or deletes a target (ESO's `Created`,
    /// `Updated`, `Deleted`). Off, a rotation fanned out to many ExternalSecrets writes a third
    /// fewer objects; failures are Events either way.
    #[arg(
        long,
        env = "SECRET_SYNC_SUCCESS_EVENTS",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true"
    )]
    pub success_events: bool,

    /// Write the status of a sync that a provider change started behind its Secret, from a
    /// queue (the newest status per ExternalSecret wins), instead of before the sync completes.
    /// A fan-out of one key to many ExternalSecrets then writes every Secret first. Off, each
    /// sync writes its status before the next one starts on its slot, as before.
    #[arg(
        long,
        env = "SECRET_SYNC_DEFERRED_STATUSES",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true"
    )]
    pub deferred_statuses: bool,

    /// Per-object series: `externalsecret_sync_calls_total`, `externalsecret_sync_calls_error`,
    /// `<kind>_status_condition` and `<kind>_reconcile_duration`, one set per object (ESO's).
    /// Off, those families stay empty: at 100,000 ExternalSecrets they are hundreds of thousands
    /// of series, in the controller's memory and in Prometheus. Every other metric is kept.
    #[arg(
        long,
        env = "SECRET_SYNC_OBJECT_METRICS",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true"
    )]
    pub object_metrics: bool,

    /// ESO's: keep what generators made (a Vault lease, a token) as GeneratorStates, cleaned up
    /// once replaced or once their ExternalSecret is deleted.
    #[arg(
        long,
        env = "SECRET_SYNC_ENABLE_GENERATOR_STATE",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true"
    )]
    pub enable_generator_state: bool,

    /// ESO's: how long replaced generated values stay before their cleanup.
    #[arg(long, env = "SECRET_SYNC_GENERATOR_GC_GRACE_PERIOD", default_value = "2m", value_parser = parse_duration)]
    pub generator_gc_grace_period: Duration,

    /// Only stores whose `spec.controller` equals this (or is empty) are handled.
    #[arg(long, env = "SECRET_SYNC_CONTROLLER_CLASS", default_value = "default")]
    pub controller_class: String,

    /// Default time between reconciles of a SecretStore or ClusterSecretStore.
    #[arg(long, env = "SECRET_SYNC_STORE_REQUEUE_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub store_requeue_interval: Duration,

    /// How often every cached ExternalSecret is reconciled again whatever the watches said (the
    /// safety net for a lost event); no re-list. One that is not due costs no request.
    #[arg(long, env = "SECRET_SYNC_RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub resync_interval: Duration,

    /// Divide the work among replicas: this many shard Leases (by namespace), each held by one
    /// replica at a time (`shards.rs`). 0 or 1: not sharded. Needs `--enable-leader-election`
    /// (its id names the Leases, its timings are theirs), `--shard-peer-url` (or `POD_IP`) and
    /// `--shard-secret-file`.
    #[arg(long, env = "SECRET_SYNC_SHARDS", default_value_t = 0)]
    pub shards: u32,

    /// Listen here for changes forwarded by the other replicas (sharded only).
    #[arg(
        long,
        env = "SECRET_SYNC_SHARD_PEER_ADDR",
        default_value = "0.0.0.0:8084"
    )]
    pub shard_peer_addr: std::net::SocketAddr,

    /// The URL the other replicas reach this one's peer listener at; by default
    /// `http://$POD_IP:<port of --shard-peer-addr>`.
    #[arg(long, env = "SECRET_SYNC_SHARD_PEER_URL")]
    pub shard_peer_url: Option<String>,

    /// A file whose first line is the secret replicas sign forwarded changes with (the same on
    /// every replica).
    #[arg(long, env = "SECRET_SYNC_SHARD_SECRET_FILE")]
    pub shard_secret_file: Option<std::path::PathBuf>,

    /// Watch ExternalSecrets, stores and PushSecrets in this namespace only (empty: every
    /// namespace).
    #[arg(long, env = "SECRET_SYNC_NAMESPACE", default_value = "")]
    pub namespace: String,

    /// How long reconcilers may take to finish in-flight work on shutdown before the process
    /// releases its lease and exits anyway.
    #[arg(long, env = "SECRET_SYNC_GRACEFUL_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub graceful_shutdown_timeout: Duration,

    /// Log level. `RUST_LOG`, when set, overrides it with a full filter.
    #[arg(long = "loglevel", visible_alias = "log-level", env = "SECRET_SYNC_LOG_LEVEL", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Log format: one JSON object per line, or human-readable text.
    #[arg(long, env = "SECRET_SYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// ESO's `--loglevel` values; zap's `dpanic`, `panic` and `fatal` mean "errors only" here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Dpanic,
    Panic,
    Fatal,
}

impl LogLevel {
    /// The `tracing` filter directive.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error | LogLevel::Dpanic | LogLevel::Panic | LogLevel::Fatal => "error",
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

impl Config {
    /// The namespace to watch, or `None` for every namespace.
    pub fn watch_namespace(&self) -> Option<&str> {
        Some(self.namespace.as_str()).filter(|ns| !ns.is_empty())
    }
}

/// A listen address, or `None` when the server is disabled (`0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr(pub Option<SocketAddr>);

impl ListenAddr {
    pub fn get(self) -> Option<SocketAddr> {
        self.0
    }
}

/// A Go listen address: `:8080` (every interface), `127.0.0.1:8080`, `[::1]:8080`, or `0`
/// (disabled).
pub fn parse_listen_addr(s: &str) -> Result<ListenAddr, String> {
    parse_socket_addr(s).map(ListenAddr)
}

fn parse_socket_addr(s: &str) -> Result<Option<SocketAddr>, String> {
    if s == "0" {
        return Ok(None);
    }
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port in address {s:?}"))?;
        return Ok(Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        )));
    }
    s.parse::<SocketAddr>()
        .map(Some)
        .map_err(|_| format!("invalid address {s:?}: expected :PORT, HOST:PORT or 0 (disabled)"))
}

/// A non-negative Go duration (`90s`, `1h30m`, `300ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    secret_sync_gosem::parse_go_duration(s).map_err(|e| e.to_string())
}

/// Whether an ESO flag takes a value (`--name=v` or `--name v`) or is a switch (`--name`,
/// `--name=true`; pflag's switches take no separate value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Takes {
    Value,
    Switch,
}

/// ESO controller flags (v2.9: `cmd/controller/root.go` and its feature flags) that mean nothing
/// here or are not supported: accepted, so that an ESO Deployment's arguments start this
/// controller, and named in one warning at start-up. ESO's Helm chart passes
/// `--zap-time-encoding=epoch` by default.
const ESO_IGNORED: &[(&str, Takes)] = &[
    ("metrics-auth", Takes::Switch),
    ("metrics-secure", Takes::Switch),
    ("metrics-cert-dir", Takes::Value),
    ("metrics-cert-name", Takes::Value),
    ("metrics-key-name", Takes::Value),
    ("client-qps", Takes::Value),
    ("client-burst", Takes::Value),
    ("zap-time-encoding", Takes::Value),
    ("enable-cluster-store-reconciler", Takes::Switch),
    ("enable-secret-store-reconciler", Takes::Switch),
    ("enable-secrets-caching", Takes::Switch),
    ("enable-configmaps-caching", Takes::Switch),
    ("enable-managed-secrets-caching", Takes::Switch),
    ("enable-secret-api-read-on-cache-mismatch", Takes::Switch),
    ("enable-extended-metric-labels", Takes::Switch),
    ("enable-http2", Takes::Switch),
    ("template-left-delimiter", Takes::Value),
    ("template-right-delimiter", Takes::Value),
    ("enable-vault-token-cache", Takes::Switch),
    ("vault-token-cache-size", Takes::Value),
    ("experimental-enable-vault-token-cache", Takes::Switch),
    ("experimental-vault-token-cache-size", Takes::Value),
    ("experimental-enable-doppler-oidc-cache", Takes::Switch),
    ("experimental-doppler-oidc-cache-size", Takes::Value),
    ("doppler-etag-cache-size", Takes::Value),
    ("mysterybox-tokens-cache-size", Takes::Value),
    ("mysterybox-connections-cache-size", Takes::Value),
];

/// `args` without the ESO flags of [`ESO_IGNORED`] (and their values), and the names of those
/// removed, for [`Config::parse_from`]. Everything after `--` is kept as it is.
pub fn without_eso_only_flags(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> (Vec<std::ffi::OsString>, Vec<String>) {
    let mut kept = Vec::new();
    let mut ignored: Vec<String> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.to_str().and_then(|a| a.strip_prefix("--")) else {
            kept.push(arg);
            continue;
        };
        if flag.is_empty() {
            kept.push(arg);
            kept.extend(args.by_ref());
            break;
        }
        let (name, inline_value) = match flag.split_once('=') {
            Some((name, _)) => (name, true),
            None => (flag, false),
        };
        match ESO_IGNORED.iter().find(|(n, _)| *n == name) {
            Some((name, takes)) => {
                if *takes == Takes::Value && !inline_value {
                    // The value is the next argument.
                    args.next();
                }
                if !ignored.iter().any(|i| i == name) {
                    ignored.push((*name).to_owned());
                }
            }
            None => kept.push(arg),
        }
    }
    (kept, ignored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_describes_each_flag_under_its_own_name() {
        use clap::CommandFactory;
        let help = Config::command().render_long_help().to_string();
        let section = |flag: &str| {
            let start = help.find(&format!("--{flag} ")).expect(flag);
            let rest = &help[start + 2..];
            let end = ["\n  -", "\n      --"]
                .iter()
                .filter_map(|next| rest.find(next))
                .min()
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        };
        assert!(
            section("namespace").contains("in this namespace only"),
            "{}",
            section("namespace")
        );
        let resync = section("resync-interval");
        assert!(
            resync.contains("safety net") && !resync.contains("namespace"),
            "{resync}"
        );
    }

    #[test]
    fn esos_own_flags_are_set_aside_by_name_with_their_values() {
        let args = [
            "secret-sync-controller",
            "--concurrent=1",
            "--zap-time-encoding=epoch",
            "--client-qps",
            "50",
            "--enable-http2",
            "--enable-secrets-caching=false",
            "--metrics-addr=:8080",
            "--loglevel=info",
            "--zap-time-encoding",
            "iso8601",
        ]
        .map(std::ffi::OsString::from);
        let (kept, ignored) = without_eso_only_flags(args);
        assert_eq!(
            kept,
            [
                "secret-sync-controller",
                "--concurrent=1",
                "--metrics-addr=:8080",
                "--loglevel=info"
            ]
            .map(std::ffi::OsString::from)
        );
        assert_eq!(
            ignored,
            [
                "zap-time-encoding",
                "client-qps",
                "enable-http2",
                "enable-secrets-caching"
            ]
        );
    }

    /// The arguments ESO's Helm chart gives its controller by default, and those its values
    /// switch on, start this one.
    #[test]
    fn an_eso_deployments_arguments_are_accepted() {
        let args = [
            "secret-sync-controller",
            "--concurrent=1",
            "--metrics-addr=:8080",
            "--loglevel=info",
            "--zap-time-encoding=epoch",
            "--enable-leader-election=true",
            "--leader-election-id=external-secrets-controller",
            "--enable-flood-gate=false",
            "--enable-cluster-store-reconciler=false",
            "--enable-extended-metric-labels",
            "--live-addr=:8082",
        ]
        .map(std::ffi::OsString::from);
        let (kept, ignored) = without_eso_only_flags(args);
        let c = Config::try_parse_from(kept).expect("ESO's arguments parse");
        assert!(!c.enable_flood_gate);
        assert_eq!(c.leader_election_id, "external-secrets-controller");
        assert_eq!(ignored.len(), 3, "{ignored:?}");
        assert!(
            parse(&[]).enable_flood_gate,
            "the flood gate is on by default"
        );
    }

    fn parse(args: &[&str]) -> Config {
        let argv = std::iter::once("secret-sync-controller").chain(args.iter().copied());
        Config::try_parse_from(argv).expect("flags parse")
    }

    #[test]
    fn defaults_match_esos_controller_and_client_gos_leader_election() {
        let c = parse(&[]);
        assert_eq!(
            c.metrics_addr.get(),
            Some("0.0.0.0:8080".parse().expect("addr"))
        );
        assert_eq!(
            c.live_addr.get(),
            Some("0.0.0.0:8082".parse().expect("addr"))
        );
        assert!(!c.enable_leader_election);
        assert_eq!(c.leader_election_id, "secret-sync-controller");
        assert_eq!(c.leader_election_namespace, None);
        assert_eq!(c.leader_election_lease_duration, Duration::from_secs(15));
        assert_eq!(c.leader_election_renew_deadline, Duration::from_secs(10));
        assert_eq!(c.leader_election_retry_period, Duration::from_secs(2));
        assert_eq!(c.concurrent, 1);
        assert_eq!(c.controller_class, "default");
        assert_eq!(c.store_requeue_interval, Duration::from_secs(300));
        assert_eq!(c.watch_namespace(), None);
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn esos_deployment_args_parse_unchanged() {
        let c = parse(&[
            "--metrics-addr=:8080",
            "--live-addr=:8082",
            "--enable-leader-election=true",
            "--concurrent=4",
            "--controller-class=team-a",
            "--store-requeue-interval=1m30s",
            "--namespace=apps",
            "--loglevel=debug",
        ]);
        assert!(c.enable_leader_election);
        assert_eq!(c.concurrent, 4);
        assert_eq!(c.controller_class, "team-a");
        assert_eq!(c.store_requeue_interval, Duration::from_secs(90));
        assert_eq!(c.watch_namespace(), Some("apps"));
        assert_eq!(c.log_level.directive(), "debug");
    }

    #[test]
    fn a_bare_enable_leader_election_flag_means_true() {
        assert!(parse(&["--enable-leader-election"]).enable_leader_election);
        assert!(!parse(&["--enable-leader-election=false"]).enable_leader_election);
    }

    #[test]
    fn health_addr_and_log_level_are_accepted_as_aliases() {
        let c = parse(&["--health-addr", "127.0.0.1:9000", "--log-level", "warn"]);
        assert_eq!(
            c.live_addr.get(),
            Some("127.0.0.1:9000".parse().expect("addr"))
        );
        assert_eq!(c.log_level, LogLevel::Warn);
    }

    #[test]
    fn zaps_panic_levels_mean_errors_only() {
        assert_eq!(parse(&["--loglevel=dpanic"]).log_level.directive(), "error");
        assert_eq!(parse(&["--loglevel=fatal"]).log_level.directive(), "error");
    }

    #[test]
    fn an_address_of_zero_disables_the_server() {
        assert_eq!(parse(&["--metrics-addr=0"]).metrics_addr.get(), None);
    }

    #[test]
    fn go_listen_addresses_parse() {
        assert_eq!(
            parse_listen_addr("[::1]:8080"),
            Ok(ListenAddr(Some("[::1]:8080".parse().expect("addr"))))
        );
        assert!(parse_listen_addr(":http").is_err());
        assert!(parse_listen_addr("localhost").is_err());
    }

    #[test]
    fn leader_election_durations_take_go_syntax() {
        let c = parse(&[
            "--leader-election-lease-duration=2s",
            "--leader-election-renew-deadline=1500ms",
            "--leader-election-retry-period=200ms",
        ]);
        assert_eq!(
            c.leader_election_renew_deadline,
            Duration::from_millis(1500)
        );
        assert_eq!(c.leader_election_retry_period, Duration::from_millis(200));
    }

    #[test]
    fn bad_values_are_rejected() {
        let argv = |a: &'static str| ["secret-sync-controller", a];
        assert!(Config::try_parse_from(argv("--concurrent=0")).is_err());
        assert!(Config::try_parse_from(argv("--store-requeue-interval=5")).is_err());
        assert!(Config::try_parse_from(argv("--store-requeue-interval=-5s")).is_err());
        assert!(Config::try_parse_from(argv("--loglevel=loud")).is_err());
        assert!(Config::try_parse_from(argv("--no-such-flag")).is_err());
    }

    #[test]
    fn change_receiver_flags_parse_and_come_in_pairs() {
        let config = parse(&[
            "--vault-audit-addr=0.0.0.0:9000",
            "--vault-audit-allowed-peers=10.0.3.17,10.0.3.18",
            "--vault-audit-tls-cert=/tls/tls.crt",
            "--vault-audit-tls-key=/tls/tls.key",
            "--vault-audit-server=https://vault:8200",
            "--vault-event-stream",
            "--vault-event-types=kv-v2/*,kv-v1/*",
            "--webhook-addr=0.0.0.0:9443",
            "--webhook-secret-file=/secrets/webhook",
            "--webhook-replay-window=2m",
        ]);
        assert_eq!(config.vault_audit_allowed_peers.len(), 2);
        assert_eq!(config.vault_audit_max_connections, 16);
        assert!(config.vault_event_stream);
        assert_eq!(config.vault_event_types, ["kv-v2/*", "kv-v1/*"]);
        assert_eq!(config.webhook_replay_window, Duration::from_secs(120));
        assert_eq!(config.webhook_rate_limit, 100);

        let defaults = parse(&[]);
        assert!(!defaults.vault_event_stream);
        assert_eq!(defaults.vault_event_types, ["kv*"]);
        assert!(defaults.webhook_addr.is_none());

        // A webhook without its secrets, half a TLS pair: refused at start.
        for alone in [
            "--webhook-addr=0.0.0.0:9443",
            "--vault-audit-tls-cert=/c",
            "--vault-audit-tls-key=/k",
        ] {
            let argv = ["secret-sync-controller", alone];
            assert!(Config::try_parse_from(argv).is_err(), "{alone}");
        }
    }
}
