//! The SQS consumer: AWS Secrets Manager change events, routed by an EventBridge rule into an
//! SQS queue, sync the ExternalSecrets that read the changed secret at once.
//!
//! - Long polling, up to 10 messages per receive, all handled concurrently, each through the
//!   engine's ingest ([`secret_sync::ingest`]), which resolves, coalesces and syncs.
//! - A message is deleted only once every affected ExternalSecret has synced, or when nothing
//!   can come of retrying it: no ExternalSecret reads the secret, the event is not a change, the
//!   body is malformed (counted in `secret_sync_events_total{result="malformed"}` and logged by
//!   message id, never by content), or the sync failed for a reason only a spec change fixes
//!   (the ExternalSecret's status says so).
//! - A message whose sync failed in a way a retry can fix stays in the queue: it comes back after
//!   its visibility timeout, and the queue's redrive policy moves it to a dead-letter queue after
//!   `maxReceiveCount` receives.
//! - While a message is being handled its visibility is extended, so long work is not handed to
//!   another consumer.
//! - On shutdown the receive in progress is not abandoned: SQS (and moto) would still hand the
//!   next message to that long poll and hide it for the visibility timeout with nobody to handle
//!   it (a rolling update would delay events by 30 s, and count a receive towards the
//!   dead-letter queue). The poll is let end (within `wait`, 10 s by default) and what it got is
//!   handed back at once (visibility 0) for the next consumer.
//! - Values are always read from the provider afresh (from after the message arrived), never
//!   taken from the event: duplicate, late and out-of-order events all converge on the newest
//!   value, and the engine never writes a Secret from a read older than the one it holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::Message;
use secret_sync::ingest::{self, Ingest};
use secret_sync_events::aws::{Parsed, parse_sqs_body};
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, EventResult, Metrics};

/// How the consumer reads its queue.
#[derive(Clone, Debug)]
pub struct SqsSettings {
    pub queue_url: String,
    /// How long a received message stays invisible to others; extended while it is handled.
    pub visibility: Duration,
    /// Long-polling wait per receive (at most 20 s).
    pub wait: Duration,
    /// How many affected ExternalSecrets of one message sync at once.
    pub concurrency: usize,
}

impl SqsSettings {
    pub fn new(queue_url: String) -> Self {
        Self {
            queue_url,
            visibility: Duration::from_secs(30),
            // Shutdown waits for a pending poll: at most this long.
            wait: Duration::from_secs(10),
            concurrency: 100,
        }
    }
}

/// What to do with a message once handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Disposition {
    Delete,
    /// Leave it: it returns after its visibility timeout.
    Retry,
}

pub struct Consumer {
    pub sqs: aws_sdk_sqs::Client,
    pub settings: SqsSettings,
    pub ingest: Arc<Ingest>,
    /// Sharded: the replicas holding the other shards, asked about each message too.
    pub peers: Option<Arc<crate::shards::Peers>>,
    pub metrics: Metrics,
}

const SOURCE: &str = "sqs";

impl Consumer {
    /// Receives and handles messages until `shutdown`; a batch being handled is finished first,
    /// and a receive in progress ends and hands back what it got (see the module notes).
    pub async fn run(self, shutdown: CancellationToken) {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = self.ingest.ready() => {}
        }
        tracing::info!(queue = %self.settings.queue_url, "SQS consumer started");
        let mut failures = 0u32;
        loop {
            let receive = self.receive();
            let mut receive = std::pin::pin!(receive);
            let received = tokio::select! {
                () = shutdown.cancelled() => {
                    if let Ok(messages) = receive.await {
                        self.hand_back(messages).await;
                    }
                    break;
                }
                r = &mut receive => r,
            };
            match received {
                Ok(messages) => {
                    failures = 0;
                    futures::future::join_all(messages.into_iter().map(|m| self.handle(m))).await;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let backoff = Duration::from_millis(500) * 2u32.pow(failures.min(6));
                    tracing::warn!(error = %e, retry_in = ?backoff, "receiving from SQS failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                }
            }
        }
        tracing::info!("SQS consumer stopped");
    }

    async fn receive(&self) -> Result<Vec<Message>, aws_sdk_sqs::Error> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.settings.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.settings.wait.as_secs().min(20) as i32)
            .visibility_timeout(self.settings.visibility.as_secs() as i32)
            .send()
            .await?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Makes `messages` visible again at once, for the next consumer.
    async fn hand_back(&self, messages: Vec<Message>) {
        let entries: Vec<_> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle.clone())
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let count = entries.len();
        match self
            .sqs
            .change_message_visibility_batch()
            .queue_url(&self.settings.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(_) => tracing::info!(
                messages = count,
                "SQS messages received at shutdown handed back"
            ),
            // They come back after their visibility timeout.
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::Error::from(e), "handing SQS messages back at shutdown failed")
            }
        }
    }

    async fn handle(&self, message: Message) {
        let received = Instant::now();
        let id = message.message_id.as_deref().unwrap_or("");
        let Some(receipt) = message.receipt_handle.as_deref() else {
            return;
        };
        let work = self.process(id, message.body.as_deref().unwrap_or(""), received);
        let mut work = std::pin::pin!(work);
        let mut heartbeat = tokio::time::interval(self.settings.visibility / 2);
        heartbeat.tick().await;
        let disposition = loop {
            tokio::select! {
                d = &mut work => break d,
                _ = heartbeat.tick() => self.extend(id, receipt).await,
            }
        };
        if disposition == Disposition::Delete
            && let Err(e) = self
                .sqs
                .delete_message()
                .queue_url(&self.settings.queue_url)
                .receipt_handle(receipt)
                .send()
                .await
        {
            // It comes back and is handled again: a sync is idempotent.
            tracing::warn!(message_id = id, error = %aws_sdk_sqs::Error::from(e), "deleting an SQS message failed");
        }
    }

    async fn extend(&self, id: &str, receipt: &str) {
        let extended = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.settings.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(self.settings.visibility.as_secs() as i32)
            .send()
            .await;
        if let Err(e) = extended {
            tracing::warn!(message_id = id, error = %aws_sdk_sqs::Error::from(e), "extending an SQS message's visibility failed");
        }
    }

    async fn process(&self, id: &str, body: &str, received: Instant) -> Disposition {
        let parsed = match parse_sqs_body(body) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.metrics.event(SOURCE, EventResult::Malformed);
                tracing::warn!(message_id = id, error = %e, "malformed SQS message dropped");
                return Disposition::Delete;
            }
        };
        if !matches!(parsed, Parsed::Ignored(_)) {
            self.metrics.event(SOURCE, EventResult::Received);
        }
        let change = match parsed.to_change() {
            Ok(change) => change,
            Err(why) => {
                self.metrics.event(SOURCE, EventResult::Dropped);
                tracing::debug!(message_id = id, reason = why, "SQS message ignored");
                return Disposition::Delete;
            }
        };
        let report = match &self.peers {
            Some(peers) => peers.apply(&self.ingest, &change, received).await,
            None => self.ingest.apply(&change, received).await,
        };
        tracing::debug!(
            message_id = id,
            event_id = change.id.as_deref().unwrap_or(""),
            affected = report.affected,
            synced = report.synced,
            failed_retryable = report.retryable,
            failed_permanent = report.permanent,
            "provider change"
        );
        if report.affected == 0 {
            self.metrics.event(SOURCE, EventResult::Dropped);
            return Disposition::Delete;
        }
        self.metrics.event(SOURCE, EventResult::Matched);
        if let Some(at) = change.event_time {
            let since = jiff::Timestamp::now().duration_since(at);
            if let Ok(latency) = Duration::try_from(since) {
                self.metrics.sync_latency(metrics::Trigger::Event, latency);
            }
        }
        match report.disposition() {
            ingest::Disposition::Done | ingest::Disposition::Dropped => Disposition::Delete,
            ingest::Disposition::Retry => Disposition::Retry,
        }
    }
}
