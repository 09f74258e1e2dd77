//! One invocation: detect the payload, parse the events, find the affected ExternalSecrets in
//! every target cluster, sync (push) or annotate (nudge) each once, and answer as Lambda expects.
//!
//! | payload | how it is told apart | answer |
//! |---|---|---|
//! | EventBridge event (rule target = this function) | reads as `aws_lambda_events`' `EventBridgeEvent` | a summary; an error when a sync failed retryably, so Lambda's async retries and the on-failure destination take over |
//! | SQS batch (event source mapping) | reads as `SqsEvent`, every `eventSource` `aws:sqs` | an `SqsBatchResponse` listing in `batchItemFailures` the records whose syncs failed retryably |
//!
//! Each change goes through the engine's ingest ([`secret_sync::ingest`]): the read index finds the
//! affected ExternalSecrets, and (push mode) syncs are coalesced and retried on conflicts exactly
//! as in the in-cluster controller.
//!
//! A record that is malformed, from another source, or not a change that needs a sync is
//! counted and dropped, never failed: redelivering it cannot help and would loop. A sync that
//! failed for good (an invalid ExternalSecret, a template error) is recorded on the
//! ExternalSecret by the engine and not retried either.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use lambda_runtime::Diagnostic;
use secret_sync::ingest::{Target, Verdict};
use secret_sync::view::bounded;
use secret_sync_crd::ExternalSecret;
use secret_sync_crd::well_known::ANNOTATION_FORCE_SYNC;
use secret_sync_events::aws::{Parsed, parse_event, parse_sqs_body};
use secret_sync_events::{Change, ParseError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::config::Mode;

/// The field manager of the Lambda's own writes (nudge annotations). Push-mode Secret and status
/// writes are the engine's, under the controller's field manager.
pub const FIELD_MANAGER: &str = "secret-sync-lambda";

/// Time kept back from the invocation deadline to answer before Lambda stops the function.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// The longest an invocation works when Lambda gave no usable deadline.
const DEFAULT_BUDGET: Duration = Duration::from_secs(60);

/// The shape of an invocation payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// An EventBridge event, delivered directly.
    EventBridge,
    /// A Lambda SQS event (`Records[]` from an event source mapping).
    Sqs,
    /// Anything else.
    Unknown,
}

impl Shape {
    fn as_str(self) -> &'static str {
        match self {
            Self::EventBridge => "eventbridge",
            Self::Sqs => "sqs",
            Self::Unknown => "unknown",
        }
    }
}

/// An invocation payload, read through `aws_lambda_events`' envelope types.
pub enum Envelope {
    EventBridge(Box<EventBridgeEvent<Value>>),
    Sqs(SqsEvent),
    Unknown,
}

impl Envelope {
    /// Reads the envelope: an SQS batch has `Records`, every one from `aws:sqs`; anything else
    /// that reads as an EventBridge event (a `source` and a `detail-type`) is one.
    pub fn of(payload: &Value) -> Self {
        if payload.get("Records").is_some() {
            return match SqsEvent::deserialize(payload) {
                Ok(batch)
                    if !batch.records.is_empty()
                        && batch
                            .records
                            .iter()
                            .all(|r| r.event_source.as_deref() == Some("aws:sqs")) =>
                {
                    Self::Sqs(batch)
                }
                _ => Self::Unknown,
            };
        }
        match EventBridgeEvent::<Value>::deserialize(payload) {
            Ok(event) => Self::EventBridge(Box::new(event)),
            Err(_) => Self::Unknown,
        }
    }

    pub fn shape(&self) -> Shape {
        match self {
            Self::EventBridge(_) => Shape::EventBridge,
            Self::Sqs(_) => Shape::Sqs,
            Self::Unknown => Shape::Unknown,
        }
    }
}

/// The shape of a payload.
pub fn shape(payload: &Value) -> Shape {
    Envelope::of(payload).shape()
}

/// An invocation that must be retried as a whole.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Some syncs failed with a retryable error (a direct EventBridge invocation, or an SQS
    /// record without a `messageId` to report).
    #[error("{failed} of {affected} affected ExternalSecrets failed with a retryable error")]
    SyncFailed { failed: usize, affected: usize },
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match error {
            HandlerError::SyncFailed { .. } => "SecretSync.SyncFailed",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// What happened in one invocation; logged, never holding a value or a secret name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Events received (1 for a direct invocation, the batch size for SQS).
    pub records: usize,
    /// Secrets Manager changes that need a sync.
    pub changes: usize,
    /// Events for other sources, read-only or failed calls, changes that move no value.
    pub ignored: usize,
    /// Events that could not be read.
    pub malformed: usize,
    /// ExternalSecrets (across clusters, each once) the changes affect.
    pub affected: usize,
    /// Of those: synced (push), or annotated (nudge; including those already annotated).
    pub done: usize,
    /// Of those: failed with an error a retry can fix.
    pub failed_retryable: usize,
    /// Of those: failed for good (recorded on the ExternalSecret).
    pub failed_permanent: usize,
    /// Targets whose caches were not ready in time.
    pub clusters_unavailable: usize,
    /// ExternalSecrets in the caches, over all clusters.
    pub cached: usize,
}

/// The outcome of one invocation's work, before it is shaped into Lambda's answer.
#[derive(Debug, Default)]
pub struct Processed {
    pub counts: Counts,
    /// Per input record: whether it must be redelivered.
    pub failed: Vec<bool>,
}

/// One input event: its SQS `messageId` (when it came in a batch) and what parsing made of it.
struct Input {
    message_id: Option<String>,
    parsed: Result<Parsed, ParseError>,
}

/// One ExternalSecret (or PushSecret) to act on, with the input records that affect it.
struct Job {
    cluster: usize,
    target: Target,
    /// The force-sync value of the first change that named it (nudge mode).
    nudge: String,
    records: Vec<usize>,
}

/// Handles invocations; one per process, shared by all of them.
pub struct Handler {
    clusters: Vec<Cluster>,
    mode: Mode,
    concurrency: usize,
}

impl Handler {
    pub fn new(clusters: Vec<Cluster>, mode: Mode, concurrency: usize) -> Self {
        Self {
            clusters,
            mode,
            concurrency: concurrency.max(1),
        }
    }

    /// Handles one invocation. `deadline` is Lambda's, when known.
    pub async fn handle(
        &self,
        payload: &Value,
        deadline: Option<SystemTime>,
    ) -> Result<Value, HandlerError> {
        let started = Instant::now();
        let budget = deadline
            .and_then(|d| d.duration_since(SystemTime::now()).ok())
            .map(|left| {
                left.saturating_sub(DEADLINE_MARGIN)
                    .max(Duration::from_secs(1))
            })
            .unwrap_or(DEFAULT_BUDGET);
        let envelope = Envelope::of(payload);
        let shape = envelope.shape();
        let inputs = match &envelope {
            Envelope::EventBridge(_) => vec![Input {
                message_id: None,
                parsed: serde_json::to_vec(payload)
                    .map_err(|_| ParseError::Missing { field: "event" })
                    .and_then(|bytes| parse_event(&bytes)),
            }],
            Envelope::Sqs(batch) => batch
                .records
                .iter()
                .map(|record| Input {
                    message_id: record.message_id.clone(),
                    parsed: record
                        .body
                        .as_deref()
                        .ok_or(ParseError::Missing {
                            field: "Records[].body",
                        })
                        .and_then(parse_sqs_body),
                })
                .collect(),
            Envelope::Unknown => Vec::new(),
        };
        let mut processed = self.process(&inputs, started, budget).await;
        if shape == Shape::Unknown {
            processed.counts.records = 1;
            processed.counts.ignored = 1;
        }
        let c = &processed.counts;
        tracing::info!(
            shape = shape.as_str(),
            records = c.records,
            changes = c.changes,
            ignored = c.ignored,
            malformed = c.malformed,
            cached = c.cached,
            affected = c.affected,
            done = c.done,
            failed_retryable = c.failed_retryable,
            failed_permanent = c.failed_permanent,
            clusters_unavailable = c.clusters_unavailable,
            took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "invocation handled"
        );
        let must_retry = |i: usize| processed.failed.get(i).copied().unwrap_or(false);
        let error = HandlerError::SyncFailed {
            failed: c.failed_retryable.max(c.clusters_unavailable),
            affected: c.affected,
        };
        match shape {
            Shape::Sqs => {
                let mut answer = SqsBatchResponse::default();
                for (i, input) in inputs.iter().enumerate() {
                    if !must_retry(i) {
                        continue;
                    }
                    match input.message_id.as_deref().filter(|id| !id.is_empty()) {
                        Some(id) => answer.add_failure(id),
                        // Lambda retries the whole batch for a failure it cannot attribute.
                        None => return Err(error),
                    }
                }
                Ok(serde_json::to_value(&answer)
                    .unwrap_or_else(|_| json!({ "batchItemFailures": [] })))
            }
            Shape::EventBridge if must_retry(0) => Err(error),
            Shape::EventBridge | Shape::Unknown => Ok(json!({
                "affected": c.affected,
                "done": c.done,
                "failedPermanently": c.failed_permanent,
            })),
        }
    }

    async fn process(&self, inputs: &[Input], started: Instant, budget: Duration) -> Processed {
        let mut counts = Counts {
            records: inputs.len(),
            ..Counts::default()
        };
        let mut failed = vec![false; inputs.len()];
        let mut changes: Vec<(usize, Change)> = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            match input.parsed.as_ref().map(Parsed::to_change) {
                Err(e) => {
                    counts.malformed += 1;
                    tracing::debug!(record = i, message_id = ?input.message_id, error = %e, "malformed event dropped");
                }
                Ok(Err(reason)) => {
                    counts.ignored += 1;
                    tracing::debug!(record = i, reason, "event ignored");
                }
                Ok(Ok(change)) => changes.push((i, change)),
            }
        }
        counts.changes = changes.len();
        if changes.is_empty() {
            return Processed { counts, failed };
        }
        let deadline = tokio::time::Instant::from_std(started + budget);

        // Resolve: every target's caches, each ExternalSecret once however many records name it.
        let readiness = futures::future::join_all(
            self.clusters
                .iter()
                .map(|c| c.ready(deadline.saturating_duration_since(tokio::time::Instant::now()))),
        )
        .await;
        let mut jobs: HashMap<(usize, &'static str, String, String), Job> = HashMap::new();
        for (ci, (cluster, ready)) in self.clusters.iter().zip(readiness).enumerate() {
            if let Err(e) = ready {
                tracing::warn!(error = %e, "target cluster unavailable; its changes will be retried");
                counts.clusters_unavailable += 1;
                for (i, _) in &changes {
                    failed[*i] = true;
                }
                continue;
            }
            counts.cached += cluster.cached();
            for (i, change) in &changes {
                for target in cluster.affected(change) {
                    let key = (ci, target.kind(), target.namespace(), target.name());
                    jobs.entry(key)
                        .or_insert_with(|| Job {
                            cluster: ci,
                            target,
                            nudge: nudge_value(change),
                            records: Vec::new(),
                        })
                        .records
                        .push(*i);
                }
            }
        }
        counts.affected = jobs.len();

        let results: Vec<(Job, Verdict)> = futures::stream::iter(jobs.into_values())
            .map(|job| async move {
                let result = match tokio::time::timeout_at(deadline, self.run(&job, started)).await
                {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(
                            cluster = %self.clusters[job.cluster].name,
                            kind = job.target.kind(),
                            namespace = job.target.namespace(),
                            name = job.target.name(),
                            "not done before the invocation deadline; will be retried"
                        );
                        Verdict::Retryable
                    }
                };
                (job, result)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (job, result) in results {
            match result {
                Verdict::Synced => counts.done += 1,
                Verdict::Permanent => counts.failed_permanent += 1,
                Verdict::Retryable => {
                    counts.failed_retryable += 1;
                    for i in job.records {
                        failed[i] = true;
                    }
                }
            }
        }
        Processed { counts, failed }
    }

    async fn run(&self, job: &Job, started: Instant) -> Verdict {
        let cluster = &self.clusters[job.cluster];
        let namespace = job.target.namespace();
        let name = job.target.name();
        match (self.mode, cluster.ingest(), &job.target) {
            (Mode::Push, Some(ingest), _) => {
                let verdict = ingest.sync_one(job.target.clone(), started).await;
                tracing::debug!(cluster = %cluster.name, kind = job.target.kind(), %namespace, %name, ?verdict, "synced");
                verdict
            }
            (_, _, Target::Pull(es)) => {
                self.nudge(cluster, es, &job.nudge, &namespace, &name).await
            }
            // Nudge mode resolves no PushSecret.
            (_, _, Target::Push(_)) => Verdict::Synced,
        }
    }

    /// Sets `external-secrets.io/force-sync` to a value naming the event, so that the in-cluster
    /// controller syncs at once. A duplicate delivery of the same event sets the same value and
    /// causes no second sync.
    async fn nudge(
        &self,
        cluster: &Cluster,
        es: &ExternalSecret,
        value: &str,
        namespace: &str,
        name: &str,
    ) -> Verdict {
        if es
            .annotations()
            .get(ANNOTATION_FORCE_SYNC)
            .map(String::as_str)
            == Some(value)
        {
            return Verdict::Synced;
        }
        let patch = json!({ "metadata": { "annotations": { ANNOTATION_FORCE_SYNC: value } } });
        let api = Api::<ExternalSecret>::namespaced(cluster.client().clone(), namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match bounded(
            "annotating an ExternalSecret",
            api.patch(name, &params, &Patch::Merge(&patch)),
        )
        .await
        {
            Ok(_) => {
                tracing::debug!(cluster = %cluster.name, %namespace, %name, "annotated");
                Verdict::Synced
            }
            // Deleted since the cache saw it: nothing to sync.
            Err(kube::Error::Api(status)) if status.code == 404 => Verdict::Synced,
            Err(e) => {
                tracing::warn!(cluster = %cluster.name, %namespace, %name, error = %e, "annotating failed");
                Verdict::Retryable
            }
        }
    }
}

/// The force-sync value for a change: its event id, else its time, else now.
pub fn nudge_value(change: &Change) -> String {
    change
        .id
        .clone()
        .or_else(|| change.event_time.map(|t| t.to_string()))
        .unwrap_or_else(|| jiff::Timestamp::now().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/aws/");
        let text = std::fs::read_to_string(format!("{path}{name}")).expect("sample");
        serde_json::from_str(&text).expect("json")
    }

    #[test]
    fn payloads_are_told_apart_by_their_envelope() {
        assert_eq!(
            shape(&sample("cloudtrail-put-secret-value.json")),
            Shape::EventBridge
        );
        assert_eq!(
            shape(&sample("secret-label-updated.json")),
            Shape::EventBridge
        );
        assert_eq!(shape(&sample("lambda-sqs-batch.json")), Shape::Sqs);
        assert_eq!(
            shape(&sample("lambda-sqs-batch-with-poison.json")),
            Shape::Sqs
        );
        assert_eq!(shape(&json!({})), Shape::Unknown);
        assert_eq!(shape(&json!({ "Records": [] })), Shape::Unknown);
        assert_eq!(
            shape(&json!({ "Records": [{ "eventSource": "aws:s3" }] })),
            Shape::Unknown
        );
        assert_eq!(shape(&json!("a string")), Shape::Unknown);
    }

    #[tokio::test]
    async fn malformed_and_foreign_records_are_counted_and_never_failed() {
        let handler = Handler::new(Vec::new(), Mode::Push, 4);
        let answer = handler
            .handle(&sample("lambda-sqs-batch-with-poison.json"), None)
            .await
            .expect("an answer");
        assert_eq!(answer, json!({ "batchItemFailures": [] }));
        let Envelope::Sqs(batch) = Envelope::of(&sample("lambda-sqs-batch-with-poison.json"))
        else {
            panic!("an SQS batch")
        };
        let inputs: Vec<Input> = batch
            .records
            .into_iter()
            .map(|r| Input {
                message_id: r.message_id,
                parsed: r
                    .body
                    .as_deref()
                    .ok_or(ParseError::Missing { field: "body" })
                    .and_then(parse_sqs_body),
            })
            .collect();
        let processed = handler
            .process(&inputs, Instant::now(), Duration::from_secs(5))
            .await;
        assert_eq!(
            processed.counts,
            Counts {
                records: 3,
                changes: 1,
                ignored: 1,
                malformed: 1,
                ..Counts::default()
            }
        );
        assert_eq!(processed.failed, [false, false, false]);
    }

    #[tokio::test]
    async fn an_unknown_payload_is_answered_not_failed() {
        let handler = Handler::new(Vec::new(), Mode::Nudge, 1);
        assert!(handler.handle(&json!({"hello": 1}), None).await.is_ok());
    }

    #[test]
    fn the_force_sync_value_names_the_event() {
        let event = sample("cloudtrail-put-secret-value.json");
        let bytes = serde_json::to_vec(&event).expect("bytes");
        let Ok(Ok(mut change)) = parse_event(&bytes).map(|p| p.to_change()) else {
            panic!("a change")
        };
        let id = change.id.clone().expect("an id");
        assert_eq!(nudge_value(&change), id);
        change.id = None;
        let time = change.event_time.expect("a time");
        assert_eq!(nudge_value(&change), time.to_string());
    }

    #[test]
    fn a_retryable_failure_is_a_lambda_error_with_a_stable_type() {
        let d: Diagnostic = HandlerError::SyncFailed {
            failed: 1,
            affected: 2,
        }
        .into();
        assert_eq!(d.error_type, "SecretSync.SyncFailed");
        assert_eq!(
            d.error_message,
            "1 of 2 affected ExternalSecrets failed with a retryable error"
        );
    }
}
