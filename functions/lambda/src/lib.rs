//! secret-sync as an AWS Lambda function: AWS Secrets Manager and Parameter Store change events,
//! delivered by an EventBridge rule (directly, or through an SQS queue and an event source
//! mapping), reach the ExternalSecrets that read the changed secret in one or more Kubernetes
//! clusters.
//!
//! The binary `secret-sync-lambda` is the function (runtime `provided.al2023`, handler
//! `bootstrap`). One binary takes both payloads, told apart by their envelope
//! ([`handler::Envelope`], read with `aws_lambda_events`): an EventBridge event, or an SQS batch
//! answered with partial-batch
//! failures (the event source mapping needs `FunctionResponseTypes: [ReportBatchItemFailures]`).
//!
//! # Modes
//!
//! - `push`: each affected ExternalSecret is synced by the shared engine, with values fetched
//!   after the event, exactly as the in-cluster controller would (same engine, same field
//!   managers, same labels, annotations and status). The Lambda's role needs read access to the
//!   Secrets Manager secrets (or the stores' own credentials), and in the cluster what the
//!   controller needs: get/list/watch ExternalSecrets, SecretStores, ClusterSecretStores,
//!   Namespaces and Secrets; create/patch Secrets; patch `externalsecrets/status`; create Events.
//! - `nudge`: each affected ExternalSecret gets the annotation
//!   `external-secrets.io/force-sync: <event id>`, and the in-cluster controller syncs it. The
//!   Lambda needs no secret access at all: get/list/watch ExternalSecrets, SecretStores and
//!   ClusterSecretStores, and patch ExternalSecrets.
//!
//! # Configuration (environment variables)
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SECRET_SYNC_MODE` | `push` | `push` or `nudge` |
//! | `SECRET_SYNC_CLUSTERS` | the ambient cluster | a JSON list of target clusters, below |
//! | `SECRET_SYNC_NAMESPACE` | all | watch ExternalSecrets, SecretStores and Secrets in this namespace only |
//! | `SECRET_SYNC_CONCURRENCY` | `16` | ExternalSecrets synced (or annotated) at once per invocation |
//! | `SECRET_SYNC_CONTROLLER_CLASS` | `default` | push: stores whose `spec.controller` names another class are skipped |
//! | `SECRET_SYNC_FLOOD_GATE` | `true` | push: refuse stores that are not `Ready` (ESO's flood gate); a store never validated makes the record retryable |
//! | `SECRET_SYNC_PUSH_SECRETS` | `true` | push: a change at a key a PushSecret pushed (its `status.syncedPushSecrets`) pushes it again, through the engine's PushSecret pass; needs the PushSecret rights of `infra/lambda/rbac.yaml` |
//! | `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL` | `info` | log filter |
//! | `AWS_LAMBDA_LOG_FORMAT` | `Text` | `JSON` for one JSON object per line |
//!
//! AWS credentials, region and endpoint come from the SDK's default chain (the execution role;
//! `AWS_ENDPOINT_URL` in tests).
//!
//! `SECRET_SYNC_CLUSTERS` entries, each with a unique `name`:
//!
//! ```json
//! [
//!   { "name": "local", "kubeconfig": "/opt/kubeconfig.yaml", "context": "optional" },
//!   { "name": "prod", "eks": { "cluster": "prod", "region": "eu-west-1",
//!       "endpoint": "https://ABC.gr7.eu-west-1.eks.amazonaws.com", "caData": "LS0tLS1CRUdJTi..." } }
//! ]
//! ```
//!
//! An `eks` target is reached with a bearer token minted from the Lambda's credentials
//! ([`eks`]); an entry with only a `name` uses the ambient configuration (`KUBECONFIG`, else
//! in-cluster). Unset, the one target is the ambient cluster.
//!
//! # Finding the affected ExternalSecrets
//!
//! Each target keeps watch caches (ExternalSecrets, SecretStores, ClusterSecretStores; in push
//! mode also managed Secrets, Namespaces and PushSecrets), started at cold start and kept across
//! invocations; the first invocation waits for their first list. An event is then an in-memory
//! lookup in the read index the ExternalSecret watch keeps ([`secret_sync::index::ReadIndex`]),
//! and push mode syncs through the engine's ingest ([`secret_sync::ingest`]), as the in-cluster
//! controller does. Staleness: while Lambda freezes the function
//! between invocations, its watches are frozen too. An ExternalSecret created meanwhile is seen
//! once the watch resumes, a moment into the next invocation, so an event in that moment can miss
//! it; the in-cluster controller's periodic reconcile is the safety net.
//!
//! # Logs
//!
//! One `info` line per invocation, `invocation handled`, with counts (`records`, `changes`,
//! `ignored`, `malformed`, `cached`, `affected`, `done`, `failed_retryable`, `failed_permanent`)
//! and `took_ms`; a `warn` per failed sync with the ExternalSecret's namespace and name. No
//! secret value, and no event content, is ever logged.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod config;
pub mod eks;
pub mod handler;

pub use cluster::Cluster;
pub use config::{Config, Mode};
pub use handler::Handler;

/// Connects to every configured target and starts its watches, without waiting for them.
pub async fn start(config: &Config) -> Result<Handler, cluster::ClusterError> {
    let needs_aws = config.mode == Mode::Push
        || config
            .clusters
            .iter()
            .any(|c| matches!(c.source, config::ClusterSource::Eks(_)));
    let aws = if needs_aws {
        Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
    } else {
        None
    };
    let mut clusters = Vec::with_capacity(config.clusters.len());
    for target in &config.clusters {
        clusters.push(Cluster::start(target, config, aws.as_ref()).await?);
    }
    Ok(Handler::new(clusters, config.mode, config.concurrency))
}
