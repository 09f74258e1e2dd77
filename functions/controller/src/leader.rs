//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics.
//!
//! The algorithm is client-go's `leaderelection` package (`tryAcquireOrRenew`), step for step:
//!
//! - **Acquire** when the Lease does not exist (create it), when `holderIdentity` is empty (a
//!   leader released it), or when it has expired: the holder's record has not changed for
//!   `leaseDurationSeconds` *as measured on this process's monotonic clock* from when this
//!   process first saw that record. client-go measures expiry this way rather than comparing the
//!   holder's `renewTime` with the local wall clock, so clock skew between nodes cannot make a
//!   standby take over from a live leader. (A standby that starts while a dead leader's record
//!   is still there therefore waits one full lease duration, as client-go does.)
//! - **Optimistic concurrency.** Every write is a `replace` (PUT) carrying the `resourceVersion`
//!   that was read, or a `create`; a 409 means another candidate wrote first, and this attempt
//!   simply lost. There is no read-modify-write window.
//! - **Renew** every retry period. The leader first tries a write against the Lease it last saw
//!   (client-go's fast path) and reads again only on conflict. If it cannot renew for the renew
//!   deadline, or it sees another holder, it has lost leadership.
//! - **Release** on graceful shutdown: the leader clears `holderIdentity` (and sets
//!   `leaseDurationSeconds: 1`, as client-go's `ReleaseOnCancel` does), so a standby takes over
//!   on its next retry instead of after the lease duration.
//! - `leaseTransitions` grows by one whenever the holder changes; `acquireTime` is kept while the
//!   same holder renews.
//! - Standbys retry every `retry_period` plus up to 1.2× of it in jitter (client-go's
//!   `JitterFactor`), so candidates do not hit the API server in lockstep.
//!
//! **Losing the lease.** [`Leadership::lost`] resolves; the binary then stops its reconcilers and
//! exits non-zero, and Kubernetes restarts the pod as a fresh standby. That is what
//! controller-runtime does (`leader election lost` → `os.Exit(1)`): restarting is the simplest
//! way to guarantee that no reconcile, cache or in-flight write of the old term survives into a
//! time when another replica leads, without making every component restartable in place.
//!
//! Neither `kube` 5 (kube-runtime has no leader election) nor the crates for it fit:
//! `kube-leader-election` 0.44 requires kube 4, and `kube-lease-manager` 0.13 (kube 5) takes over
//! by comparing the holder's `renewTime` with the local clock, renews with patches that carry no
//! `resourceVersion`, counts durations in whole seconds, and has no renew deadline: a leader cut
//! off from the API server keeps reporting itself leader past the expiry of its lease.

use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// client-go's default `LeaseDuration`.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// client-go's default `RenewDeadline`.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// client-go's default `RetryPeriod`.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);
/// client-go's `JitterFactor`.
const JITTER_FACTOR: f64 = 1.2;

/// Which Lease to contend for, as whom, and how fast.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Name of the Lease (`--leader-election-id`).
    pub name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This candidate's identity; unique among candidates ([`default_identity`]).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader retries a failing renewal before it gives up.
    pub renew_deadline: Duration,
    /// The interval between attempts.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A configuration with client-go's default timings (15s, 10s, 2s).
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaseConfig {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }

    /// client-go's checks: `lease > renew deadline > 1.2 × retry period > 0`.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let invalid = |msg| Err(LeaderError::InvalidConfig(msg));
        if self.name.is_empty() || self.namespace.is_empty() {
            return invalid("the lease needs a name and a namespace");
        }
        if self.identity.is_empty() {
            return invalid("the identity must not be empty");
        }
        if self.retry_period.is_zero() {
            return invalid("the retry period must be greater than zero");
        }
        if self.lease_duration <= self.renew_deadline {
            return invalid("the lease duration must be greater than the renew deadline");
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return invalid("the renew deadline must be greater than 1.2 times the retry period");
        }
        Ok(())
    }

    /// `leaseDurationSeconds`: whole seconds, rounded up, at least one.
    fn lease_duration_seconds(&self) -> i32 {
        let secs =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
    }
}

/// `<pod name>_<random>`: the pod name from `POD_NAME` (downward API) or the host name (which
/// Kubernetes sets to the pod name), plus a random suffix so that a restarted container never
/// mistakes its predecessor's lease for its own.
pub fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "secret-sync-controller".to_owned());
    format!("{base}_{:016x}", fastrand::u64(..))
}

/// Why leader election could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The timings or names make no sense.
    #[error("invalid leader election settings: {0}")]
    InvalidConfig(&'static str),
    /// A call to the API server failed (other than a lost race).
    #[error("failed to {verb} lease {namespace}/{name}")]
    Api {
        verb: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// Where a candidate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderState {
    /// Not leading; trying to acquire.
    Standby,
    /// Holds the lease.
    Leading,
    /// Held the lease and lost it (renewal failed for the renew deadline, or another holder
    /// appeared). The elector has stopped.
    Lost,
    /// Stopped on request; if it was leading, it released the lease first.
    Stopped,
}

/// One candidate in the election for one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The Lease as last read or written (its `resourceVersion` guards the next write).
    observed: Option<Lease>,
    /// When `observed`'s spec last changed, on the monotonic clock.
    observed_at: Instant,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("config", &self.config)
            .field("holder", &self.observed_holder())
            .finish_non_exhaustive()
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl LeaderElector {
    /// A candidate; nothing is sent to the API server until it runs.
    pub fn new(client: Client, config: LeaseConfig) -> Result<Self, LeaderError> {
        config.validate()?;
        Ok(LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            observed_at: Instant::now(),
        })
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// The holder in the last Lease seen, if any.
    pub fn observed_holder(&self) -> Option<&str> {
        self.observed_spec()
            .and_then(|s| s.holder_identity.as_deref())
            .filter(|h| !h.is_empty())
    }

    /// Whether the last Lease seen names this candidate as holder.
    pub fn is_leader(&self) -> bool {
        self.observed_holder() == Some(self.identity())
    }

    fn observed_spec(&self) -> Option<&LeaseSpec> {
        self.observed.as_ref().and_then(|l| l.spec.as_ref())
    }

    fn api_error(&self, verb: &'static str, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            verb,
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source: Box::new(source),
        }
    }

    /// Takes in the Lease as a list read it (the shard manager reads every Lease at once), so
    /// that expiry is measured from when its record last changed.
    pub fn observe_listed(&mut self, lease: Lease) {
        self.observe(lease);
    }

    /// The holder in the last Lease seen, unless its record has not changed for its lease
    /// duration (measured on this process's clock since first seen), i.e. it has expired.
    pub fn live_holder(&self) -> Option<&str> {
        let holder = self.observed_holder()?;
        let duration = self
            .observed_spec()
            .and_then(|s| s.lease_duration_seconds)
            .map_or(0, |s| u64::try_from(s).unwrap_or(0));
        (self.observed_at + Duration::from_secs(duration) > Instant::now()).then_some(holder)
    }

    fn observe(&mut self, lease: Lease) {
        if self.observed_spec() != lease.spec.as_ref() {
            self.observed_at = Instant::now();
        }
        self.observed = Some(lease);
    }

    /// Our record on top of `old`: keeps fields we do not own (`preferredHolder`, `strategy`),
    /// keeps `acquireTime` and `leaseTransitions` while we already hold it, bumps the
    /// transitions on a change of holder.
    fn our_record(&self, old: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let old = old.cloned().unwrap_or_default();
        let we_hold = old.holder_identity.as_deref() == Some(self.identity());
        let transitions = old.lease_transitions.unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration_seconds()),
            acquire_time: if we_hold {
                old.acquire_time.clone().or_else(|| Some(now.clone()))
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if we_hold {
                transitions
            } else {
                transitions.saturating_add(1)
            }),
            ..old
        }
    }

    /// One step of client-go's `tryAcquireOrRenew`: `Ok(true)` when this candidate holds the
    /// lease afterwards, `Ok(false)` when someone else does (or won a race), `Err` when the API
    /// server could not be asked.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let pp = PostParams::default();

        // Fast path: the leader renews against the Lease it last wrote; a conflict sends it down
        // the slow path.
        if self.is_leader()
            && let Some(mut lease) = self.observed.clone()
        {
            lease.spec = Some(self.our_record(lease.spec.as_ref()));
            match self.api.replace(&self.config.name, &pp, &lease).await {
                Ok(updated) => {
                    self.observe(updated);
                    return Ok(true);
                }
                Err(e) if is_conflict(&e) => debug!("lease changed since last renewal; re-reading"),
                Err(e) => return Err(self.api_error("renew", e)),
            }
        }

        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.api_error("get", e))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.our_record(None)),
            };
            return match self.api.create(&pp, &lease).await {
                Ok(created) => {
                    self.observe(created);
                    Ok(true)
                }
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(self.api_error("create", e)),
            };
        };
        self.observe(lease.clone());

        if let Some(holder) = self.observed_holder()
            && holder != self.identity()
        {
            let duration = self
                .observed_spec()
                .and_then(|s| s.lease_duration_seconds)
                .map_or(0, |s| u64::try_from(s).unwrap_or(0));
            if self.observed_at + Duration::from_secs(duration) > Instant::now() {
                return Ok(false);
            }
            info!(%holder, lease = %self.config.name, "lease expired; taking over");
        }

        lease.spec = Some(self.our_record(lease.spec.as_ref()));
        match self.api.replace(&self.config.name, &pp, &lease).await {
            Ok(updated) => {
                self.observe(updated);
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(self.api_error("update", e)),
        }
    }

    /// Gives the lease up if this candidate holds it: clears `holderIdentity` so that a standby
    /// takes over at its next retry. `Ok(true)` if it was released, `Ok(false)` if there was
    /// nothing to release (or someone else had already taken it).
    pub async fn release(&mut self) -> Result<bool, LeaderError> {
        if !self.is_leader() {
            return Ok(false);
        }
        let Some(mut lease) = self.observed.clone() else {
            return Ok(false);
        };
        let now = MicroTime(Timestamp::now());
        let old = lease.spec.take().unwrap_or_default();
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..old
        });
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(updated);
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(self.api_error("release", e)),
        }
    }

    /// Runs the election in a task until `stop` is cancelled or leadership is lost; on `stop`,
    /// a leader releases the lease before the task ends.
    pub fn start(self, stop: CancellationToken) -> Leadership {
        let (tx, rx) = watch::channel(LeaderState::Standby);
        let task = tokio::spawn(self.run(tx, stop));
        Leadership { state: rx, task }
    }

    fn jittered_retry(&self) -> Duration {
        self.config
            .retry_period
            .mul_f64(1.0 + JITTER_FACTOR * fastrand::f64())
    }

    async fn run(mut self, tx: watch::Sender<LeaderState>, stop: CancellationToken) {
        let lease = format!("{}/{}", self.config.namespace, self.config.name);
        info!(%lease, identity = %self.config.identity, "attempting to acquire leader lease");

        {
            // Standby: try until acquired, every retry period, and at once when the Lease is seen
            // released (its holder gone: a leader that stopped hands over without the wait).
            let released = kube::runtime::watcher(
                self.api.clone(),
                kube::runtime::watcher::Config::default()
                    .fields(&format!("metadata.name={}", self.config.name)),
            )
            .default_backoff()
            .applied_objects()
            .filter_map(|lease| async move {
                let lease = lease.ok()?;
                let holder = lease.spec.as_ref()?.holder_identity.as_deref();
                holder.is_none_or(str::is_empty).then_some(())
            });
            let mut released = std::pin::pin!(released);
            loop {
                if stop.is_cancelled() {
                    tx.send_replace(LeaderState::Stopped);
                    return;
                }
                // Never abandon a write half-way: a create that succeeded but whose answer was lost
                // would leave us holding a lease we do not know about (until it expires, or until
                // the next attempt reads it back and finds our own identity).
                match tokio::time::timeout(self.config.renew_deadline, self.try_acquire_or_renew())
                    .await
                {
                    Ok(Ok(true)) => break,
                    Ok(Ok(false)) => {
                        debug!(%lease, holder = ?self.observed_holder(), "lease held by another candidate");
                    }
                    Ok(Err(e)) => {
                        warn!(%lease, error = %error_chain(&e), "failed to acquire lease")
                    }
                    Err(_) => warn!(%lease, "acquiring the lease timed out"),
                }
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(self.jittered_retry()) => {}
                    Some(()) = released.next() => {
                        debug!(%lease, "lease released; trying at once");
                    }
                }
            }
        }

        info!(%lease, identity = %self.config.identity, "successfully acquired lease");
        tx.send_replace(LeaderState::Leading);
        let mut last_renew = Instant::now();

        // Leading: renew every retry period until stopped or the renew deadline passes.
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => {
                    match tokio::time::timeout(self.config.renew_deadline, self.release()).await {
                        Ok(Ok(true)) => info!(%lease, "released leader lease"),
                        Ok(Ok(false)) => info!(%lease, "leader lease was no longer ours to release"),
                        Ok(Err(e)) => warn!(%lease, error = %error_chain(&e), "failed to release leader lease"),
                        Err(_) => warn!(%lease, "releasing the leader lease timed out"),
                    }
                    tx.send_replace(LeaderState::Stopped);
                    return;
                }
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
            let deadline = last_renew + self.config.renew_deadline;
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renew = Instant::now(),
                Ok(Ok(false)) => {
                    if let Some(holder) = self.observed_holder()
                        && holder != self.identity()
                    {
                        warn!(%lease, %holder, "another candidate holds the lease");
                        break;
                    }
                }
                Ok(Err(e)) => warn!(%lease, error = %error_chain(&e), "failed to renew lease"),
                Err(_) => {}
            }
            if Instant::now() >= last_renew + self.config.renew_deadline {
                warn!(%lease, deadline = ?self.config.renew_deadline, "could not renew lease within the renew deadline");
                break;
            }
        }
        warn!(%lease, identity = %self.config.identity, "leader election lost");
        tx.send_replace(LeaderState::Lost);
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The running election, from [`LeaderElector::start`].
#[derive(Debug)]
pub struct Leadership {
    state: watch::Receiver<LeaderState>,
    task: JoinHandle<()>,
}

impl Leadership {
    /// The current state.
    pub fn state(&self) -> LeaderState {
        *self.state.borrow()
    }

    /// Whether this process leads right now.
    pub fn is_leader(&self) -> bool {
        self.state() == LeaderState::Leading
    }

    /// A receiver of state changes, e.g. for a metrics gauge.
    pub fn subscribe(&self) -> watch::Receiver<LeaderState> {
        self.state.clone()
    }

    /// Waits until this process leads (`true`) or the election stopped first (`false`).
    pub async fn acquired(&mut self) -> bool {
        let state = self
            .state
            .wait_for(|s| *s != LeaderState::Standby)
            .await
            .map(|s| *s)
            .unwrap_or(LeaderState::Stopped);
        state == LeaderState::Leading
    }

    /// Waits until this process no longer leads: leadership was lost, or the election stopped.
    /// Returns which.
    pub async fn lost(&mut self) -> LeaderState {
        self.state
            .wait_for(|s| matches!(s, LeaderState::Lost | LeaderState::Stopped))
            .await
            .map(|s| *s)
            .unwrap_or(LeaderState::Stopped)
    }

    /// Waits for the election task to end (after `stop`, once the lease has been released).
    pub async fn join(self) {
        if let Err(e) = self.task.await {
            warn!(error = %e, "leader election task failed");
        }
    }
}

/// The label a replica keeps on its own Pod with [`label_pod`]: `"true"` while it leads,
/// `"false"` otherwise. A Service selecting it reaches the leader only, which is what the Vault
/// audit device (one long-lived connection) and webhook senders need.
pub const LEADER_LABEL: &str = "secret-sync.io/leader";

/// Keeps the [`LEADER_LABEL`] of Pod `pod` in `namespace` in step with `states`, starting with
/// the current state (so a restarted container does not keep a stale `"true"`), until the
/// election ends. A failed write is retried every `retry` until it succeeds or a newer state
/// supersedes it. Await the handle after the election has ended, so the last state is written.
pub fn label_pod(
    client: Client,
    namespace: &str,
    pod: &str,
    mut states: watch::Receiver<LeaderState>,
    retry: Duration,
) -> JoinHandle<()> {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let pod = pod.to_owned();
    tokio::spawn(async move {
        'states: loop {
            let leading = *states.borrow_and_update() == LeaderState::Leading;
            let patch = serde_json::json!({
                "metadata": { "labels": { LEADER_LABEL: leading.to_string() } }
            });
            loop {
                match api
                    .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {
                        debug!(%pod, leading, "leader label written");
                        break;
                    }
                    Err(e) => {
                        warn!(%pod, leading, error = %e, "failed to write the leader label on this pod; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(retry) => {}
                            changed = states.changed() => match changed {
                                Ok(()) => continue 'states,
                                Err(_) => return,
                            },
                        }
                    }
                }
            }
            if states.changed().await.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LeaseConfig {
        LeaseConfig::new("lease", "ns", "me")
    }

    #[test]
    fn client_go_defaults_are_valid() {
        let c = config();
        assert_eq!(c.lease_duration, Duration::from_secs(15));
        assert_eq!(c.renew_deadline, Duration::from_secs(10));
        assert_eq!(c.retry_period, Duration::from_secs(2));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn a_renew_deadline_not_below_the_lease_duration_is_rejected() {
        let mut c = config();
        c.renew_deadline = c.lease_duration;
        assert!(c.validate().is_err());
    }

    #[test]
    fn a_retry_period_too_close_to_the_renew_deadline_is_rejected() {
        let mut c = config();
        c.retry_period = Duration::from_secs(9);
        assert!(c.validate().is_err());
    }

    #[test]
    fn lease_duration_seconds_round_up() {
        let mut c = config();
        c.lease_duration = Duration::from_millis(2500);
        assert_eq!(c.lease_duration_seconds(), 3);
        c.lease_duration = Duration::from_millis(200);
        assert_eq!(c.lease_duration_seconds(), 1);
    }

    #[test]
    fn default_identities_differ_between_processes_on_one_host() {
        let (a, b) = (default_identity(), default_identity());
        assert_ne!(a, b);
        assert!(a.contains('_'));
    }
}
