//! Kubernetes Events (`events.k8s.io/v1`) about ExternalSecrets, with bounded memory.
//!
//! An Event repeated for the same object (same type, reason and note) within [`SERIES_WINDOW`]
//! becomes a series on the first Event (`series.count`, `series.lastObservedTime`) instead of a
//! new object, as client-go's recorder and kube's `Recorder` do. Unlike kube's `Recorder`, which
//! keeps every Event it published in full for six minutes and scans them all on each publish
//! (23 MiB and a global lock at 10,000 ExternalSecrets), this keeps a small fixed-size entry per
//! recent Event, at most [`MAX_REMEMBERED`] of them.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

/// How long a repeated Event extends the earlier one instead of creating another.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// How many recent Events are remembered for series; beyond it the oldest are forgotten (a
/// repeat of a forgotten Event creates a new Event: more objects, never a lost one).
pub const MAX_REMEMBERED: usize = 4096;

/// Whether an Event reports normal operation or a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

struct Remembered {
    namespace: String,
    name: String,
    count: i32,
    at: Instant,
}

/// Publishes Events as one reporting controller.
pub struct Publisher {
    client: kube::Client,
    controller: String,
    instance: String,
    recent: Mutex<HashMap<u64, Remembered>>,
}

impl Publisher {
    pub fn new(client: kube::Client, controller: String, instance: Option<String>) -> Self {
        let instance = instance.unwrap_or_else(|| controller.clone());
        Self {
            client,
            controller,
            instance,
            recent: Mutex::new(HashMap::new()),
        }
    }

    fn key(regarding: &ObjectReference, type_: EventType, reason: &str, note: &str) -> u64 {
        let mut h = DefaultHasher::new();
        (&regarding.uid, &regarding.namespace, &regarding.name).hash(&mut h);
        (type_, reason, note).hash(&mut h);
        h.finish()
    }

    /// The Event to extend, if this one repeats a recent one; counts the repeat.
    fn repeat_of(&self, key: u64) -> Option<(String, String, i32)> {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let entry = recent.get_mut(&key)?;
        if entry.at.elapsed() > SERIES_WINDOW {
            recent.remove(&key);
            return None;
        }
        entry.count += 1;
        entry.at = Instant::now();
        Some((entry.namespace.clone(), entry.name.clone(), entry.count))
    }

    fn remember(&self, key: u64, namespace: String, name: String) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= MAX_REMEMBERED {
            recent.retain(|_, r| r.at.elapsed() <= SERIES_WINDOW);
            if recent.len() >= MAX_REMEMBERED {
                // Still full of live entries: forget the oldest quarter.
                let mut ages: Vec<Instant> = recent.values().map(|r| r.at).collect();
                ages.sort_unstable();
                let cutoff = ages[MAX_REMEMBERED / 4];
                recent.retain(|_, r| r.at > cutoff);
            }
        }
        recent.insert(
            key,
            Remembered {
                namespace,
                name,
                count: 1,
                at: Instant::now(),
            },
        );
    }

    /// Publishes an Event about `regarding` (in its namespace).
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let key = Self::key(regarding, type_, reason, note);
        let now = Timestamp::now();
        if let Some((namespace, name, count)) = self.repeat_of(key) {
            let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
            let series =
                json!({ "series": { "count": count, "lastObservedTime": MicroTime(now) } });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                .await
            {
                Ok(_) => return Ok(()),
                // The Event expired or was deleted: publish a new one.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note.to_owned()),
            type_: Some(type_.as_str().to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event).await?;
        self.remember(key, namespace, name);
        Ok(())
    }
}

/// One Event to publish.
pub struct Job {
    pub regarding: ObjectReference,
    pub type_: EventType,
    pub reason: String,
    /// What the controller did: `Sync` (an ExternalSecret), `Push` (a PushSecret).
    pub action: &'static str,
    pub note: String,
}

/// How many Events may wait to be written; beyond it new ones are dropped, as client-go's
/// broadcaster drops them (its queue is 1000 deep): an Event is a notice, never state.
pub const QUEUE_DEPTH: usize = 1024;
/// How many Events are written at once, so a burst of syncs spends the apiserver on Secrets.
pub const CONCURRENCY: usize = 16;
/// How long publishing one Event may take before it is given up.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Events off the sync's critical path: queued (bounded), written a few at a time in the
/// background. Memory stays bounded however many syncs a burst brings.
pub struct Queue {
    publisher: Arc<Publisher>,
    tx: OnceLock<mpsc::Sender<Job>>,
}

impl Queue {
    pub fn new(publisher: Publisher) -> Self {
        Self {
            publisher: Arc::new(publisher),
            tx: OnceLock::new(),
        }
    }

    /// Queues `job`; `false` when the queue was full and the Event is dropped.
    pub fn send(&self, job: Job) -> bool {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            tokio::spawn(dispatch(self.publisher.clone(), rx));
            tx
        });
        tx.try_send(job).is_ok()
    }
}

async fn dispatch(publisher: Arc<Publisher>, mut rx: mpsc::Receiver<Job>) {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    while let Some(job) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let publisher = publisher.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let publish = publisher.publish(
                &job.regarding,
                job.type_,
                &job.reason,
                job.action,
                &job.note,
            );
            match tokio::time::timeout(TIMEOUT, publish).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "could not publish an Event"),
                Err(_) => tracing::debug!("publishing an Event timed out"),
            }
        });
    }
}
