//! Sharded replicas (`--shards N`): several controller processes divide the work by namespace,
//! each holding some of N shard Leases, and take over a lost replica's shards.
//!
//! **Ownership.** The work is cut into `N` shards ([`secret_sync::shards`]: a namespace's FNV-1a
//! hash mod N; cluster-scoped objects in the shard of `""`). Shard `i` is the Lease
//! `<leader-election-id>-shard-<i>`, taken and renewed with [`LeaderElector`]'s client-go
//! semantics, so at most one replica holds it at a time. Every sync first enters its shard
//! ([`Shards::enter`]); a shard handed over is given up first (no new sync admitted, those in
//! flight finished) and only then released, so no object is synced by two replicas at once.
//! A replica that cannot renew a shard for the renew deadline stops every sync and exits, as a
//! leader that lost its Lease does (`leader.rs`).
//!
//! **Membership and balance.** Each replica keeps a member Lease
//! (`<leader-election-id>-member-<hash of identity>`, annotated with the URL its peers reach it
//! at), renewed every retry period. Every replica lists the Leases once per retry period and
//! computes the same plan from what it sees ([`plan`]): the live members (a member is live while
//! its record keeps changing, measured on this process's monotonic clock as client-go measures
//! a Lease), each shard staying with its holder while that holder is live and within its fair
//! share, the rest going to the least loaded members. A replica takes the shards the plan gives
//! it when their Lease is free or expired, and hands over those it gives to another. A replica
//! that dies stops renewing; a lease duration later its member record and its shard Leases have
//! expired on every survivor's clock, and the survivors take its shards at their next look.
//!
//! **Changes reach every shard.** Some sources reach every replica by themselves (each one runs
//! its own Vault event subscription and Kubernetes watches). Others deliver each change once, to
//! one replica: an SQS message, a Vault audit line, a webhook call. That replica syncs what the
//! change affects in its own shards and forwards the change (names only, never a value) to every
//! live peer, signed with the shared secret as a webhook is (`x-secret-sync-signature`); each
//! peer answers with the shards it synced it in ([`Ingest::apply_in`]). Until every shard has
//! answered (a peer died, a shard is between holders), it asks again each retry period, for the
//! missing shards only; past its patience an SQS message goes back to the queue, and anything
//! else is left to the periodic reconcile.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams};
use secret_sync::ingest::{Bound, Ingest, Overloaded, Report};
use secret_sync::shards::Shards;
use secret_sync_events::webhook::{
    SIGNATURE_HEADER, StoreKindName, StoreName, TIMESTAMP_HEADER, Verifier, sign,
};
use secret_sync_events::{Change, Location, Place};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::leader::{LeaderElector, LeaseConfig};
use crate::metrics::Metrics;

/// The annotation on a member Lease with the URL its peers reach it at.
pub const PEER_URL_ANNOTATION: &str = "secret-sync.io/peer-url";
/// The path a peer's forwarded changes arrive at.
pub const CHANGES_PATH: &str = "/shards/changes";
/// The largest forwarded change accepted.
const MAX_BODY: usize = 64 * 1024;
/// How long a peer may take to answer a forwarded change (its syncs included).
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// How the shards are set up: their number, the Lease names and timings, how peers talk.
#[derive(Clone)]
pub struct ShardSettings {
    pub count: u32,
    /// Name prefix (`--leader-election-id`), namespace, identity and timings of the Leases.
    pub lease: LeaseConfig,
    /// The URL peers reach this replica's [`CHANGES_PATH`] at (scheme, host and port).
    pub peer_url: String,
    /// The shared secret peers sign forwarded changes with.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for ShardSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardSettings")
            .field("count", &self.count)
            .field("lease", &self.lease)
            .field("peer_url", &self.peer_url)
            .finish_non_exhaustive()
    }
}

impl ShardSettings {
    fn shard_lease(&self, shard: u32) -> String {
        format!("{}-shard-{shard}", self.lease.name)
    }

    fn member_prefix(&self) -> String {
        format!("{}-member-", self.lease.name)
    }

    fn member_lease(&self) -> String {
        let hash = self
            .lease
            .identity
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
        format!("{}{hash:016x}", self.member_prefix())
    }

    /// How long a forwarded change is retried for before it is given back: long enough for a
    /// dead replica's shards to be taken over (a lease duration, then the survivors' next look).
    fn patience(&self) -> Duration {
        2 * self.lease.lease_duration + 2 * self.lease.retry_period
    }
}

/// A live peer: its identity and where it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    identity: String,
    url: String,
}

/// This replica's shards and its live peers; forwards changes and answers forwarded ones.
pub struct Peers {
    settings: ShardSettings,
    shards: Arc<Shards>,
    members: RwLock<Vec<Member>>,
    verifier: Verifier,
    http: reqwest::Client,
    metrics: Metrics,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A forwarded change and the shards it is asked about.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Forwarded {
    change: WireChange,
    shards: Vec<u32>,
}

/// What a peer answers: its report, and the shards it answered for.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    affected: usize,
    synced: usize,
    retryable: usize,
    permanent: usize,
    answered: Vec<u32>,
}

/// [`Change`] on the wire between replicas.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    coords: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store: Option<WireStore>,
    keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStore {
    cluster: bool,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

impl From<&Change> for WireChange {
    fn from(change: &Change) -> Self {
        let (kind, coords, store) = match &change.place {
            Place::At(at) => (
                Some(at.kind.to_owned()),
                at.coords()
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect(),
                None,
            ),
            Place::Store(store) => (
                None,
                Vec::new(),
                Some(WireStore {
                    cluster: store.kind == StoreKindName::ClusterSecretStore,
                    name: store.name.clone(),
                    namespace: store.namespace.clone(),
                }),
            ),
        };
        Self {
            kind,
            coords,
            store,
            keys: change.keys.clone(),
            event_time: change.event_time.map(|t| t.to_string()),
            id: change.id.clone(),
        }
    }
}

/// The names a forwarded change may use: provider kinds and coordinate names are `&'static str`
/// in a [`Location`]; each distinct one is kept once, and at most [`MAX_NAMES`] of them, so a
/// peer cannot grow this without bound.
static NAMES: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);
const MAX_NAMES: usize = 256;

fn intern(name: &str) -> Option<&'static str> {
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.get(name) {
        return Some(known);
    }
    if names.len() >= MAX_NAMES {
        return None;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    Some(leaked)
}

impl WireChange {
    fn into_change(self) -> Option<Change> {
        let place = match (self.kind, self.store) {
            (Some(kind), None) => {
                let mut at = Location::new(intern(&kind)?);
                for (name, value) in self.coords {
                    at = at.with(intern(&name)?, Some(value));
                }
                Place::At(at)
            }
            (None, Some(store)) => Place::Store(StoreName {
                kind: if store.cluster {
                    StoreKindName::ClusterSecretStore
                } else {
                    StoreKindName::SecretStore
                },
                name: store.name,
                namespace: store.namespace,
            }),
            _ => return None,
        };
        let event_time = match self.event_time {
            Some(t) => Some(t.parse::<jiff::Timestamp>().ok()?),
            None => None,
        };
        Some(Change {
            place,
            keys: self.keys,
            event_time,
            id: self.id,
        })
    }
}

fn add(total: &mut Report, part: &Report) {
    total.affected += part.affected;
    total.synced += part.synced;
    total.retryable += part.retryable;
    total.permanent += part.permanent;
}

impl Peers {
    pub fn new(settings: ShardSettings, metrics: Metrics) -> anyhow::Result<Arc<Self>> {
        let http = reqwest::Client::builder()
            .timeout(PEER_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the peer HTTP client: {e}"))?;
        Ok(Arc::new(Self {
            shards: Shards::new(settings.count),
            verifier: Verifier::new(
                vec![settings.secret.clone()],
                secret_sync_events::webhook::DEFAULT_REPLAY_WINDOW_SECS,
            ),
            settings,
            members: RwLock::new(Vec::new()),
            http,
            metrics,
        }))
    }

    /// This replica's shards.
    pub fn shards(&self) -> &Arc<Shards> {
        &self.shards
    }

    fn peers(&self) -> Vec<Member> {
        self.members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|m| m.identity != self.settings.lease.identity)
            .cloned()
            .collect()
    }

    /// Syncs `change` in every shard: here in those this replica holds, through the peers in
    /// the others, asking again for the shards not answered yet until every one is or
    /// [`ShardSettings::patience`] runs out (then the report says to retry).
    pub async fn apply(
        &self,
        ingest: &Arc<Ingest>,
        change: &Change,
        received: std::time::Instant,
    ) -> Report {
        let mut missing: BTreeSet<u32> = (0..self.shards.count()).collect();
        let mut total = Report::default();
        let deadline = Instant::now() + self.settings.patience();
        let body = |wanted: &[u32]| {
            serde_json::to_vec(&Forwarded {
                change: change.into(),
                shards: wanted.to_vec(),
            })
            .unwrap_or_default()
        };
        loop {
            let wanted: Vec<u32> = missing.iter().copied().collect();
            let body = body(&wanted);
            let peers = self.peers();
            let here = ingest.apply_in(change, received, &wanted);
            let there = futures::future::join_all(peers.iter().map(|m| self.ask(m, &body)));
            let ((report, answered), answers) = tokio::join!(here, there);
            if !answered.is_empty() {
                add(&mut total, &report);
                missing.retain(|s| !answered.contains(s));
            }
            for answer in answers.into_iter().flatten() {
                let fresh: Vec<u32> = answer
                    .answered
                    .iter()
                    .copied()
                    .filter(|s| missing.contains(s))
                    .collect();
                if !fresh.is_empty() {
                    add(
                        &mut total,
                        &Report {
                            affected: answer.affected,
                            synced: answer.synced,
                            retryable: answer.retryable,
                            permanent: answer.permanent,
                        },
                    );
                    missing.retain(|s| !fresh.contains(s));
                }
            }
            if missing.is_empty() {
                return total;
            }
            if Instant::now() >= deadline {
                warn!(
                    shards = ?missing,
                    "a change was not answered for every shard; it is left to a retry"
                );
                total.affected = total.affected.max(1);
                total.retryable += 1;
                return total;
            }
            debug!(shards = ?missing, peers = peers.len(), "shards not answered yet; asking again");
            tokio::time::sleep(self.settings.lease.retry_period).await;
        }
    }

    /// [`Ingest::dispatch`] across the shards: resolves here at once (the count returned is this
    /// replica's), then applies everywhere in the background within `bound`.
    pub fn dispatch(
        self: &Arc<Self>,
        ingest: &Arc<Ingest>,
        change: &Change,
        received: std::time::Instant,
        bound: &Bound,
        settled: impl FnOnce(Report) + Send + 'static,
    ) -> Result<usize, Overloaded> {
        let here = ingest.resolve(change).len();
        let permit = bound.try_take()?;
        let (this, ingest, change) = (self.clone(), ingest.clone(), change.clone());
        tokio::spawn(async move {
            let report = this.apply(&ingest, &change, received).await;
            drop(permit);
            settled(report);
        });
        Ok(here)
    }

    /// Asks `member` about the shards in `body`; `None` if it could not be asked.
    async fn ask(&self, member: &Member, body: &[u8]) -> Option<Answer> {
        let timestamp = jiff::Timestamp::now().as_second().to_string();
        let url = format!("{}{CHANGES_PATH}", member.url.trim_end_matches('/'));
        let sent = self
            .http
            .post(&url)
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(
                SIGNATURE_HEADER,
                sign(&self.settings.secret, &timestamp, body),
            )
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await;
        let response = match sent {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                warn!(peer = %member.identity, status = %response.status(), "a peer refused a forwarded change");
                return None;
            }
            Err(e) => {
                debug!(peer = %member.identity, error = %e, "a peer could not be asked");
                return None;
            }
        };
        let bytes = response.bytes().await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// `POST /shards/changes`: a change a peer forwards. 401 unless signed with the shared
    /// secret.
    pub fn router(self: Arc<Self>, ingest: Arc<Ingest>) -> Router {
        Router::new()
            .route(CHANGES_PATH, post(forwarded))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .with_state((self, ingest))
    }

    /// Serves [`Peers::router`] on `listener` until `stop`.
    pub async fn serve(
        self: Arc<Self>,
        ingest: Arc<Ingest>,
        listener: tokio::net::TcpListener,
        stop: CancellationToken,
    ) {
        let router = self.router(ingest);
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        {
            warn!(error = %e, "the peer listener failed");
        }
    }
}

async fn forwarded(
    State((peers, ingest)): State<(Arc<Peers>, Arc<Ingest>)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let verified = peers.verifier.verify(
        headers.get(TIMESTAMP_HEADER).map(|v| v.as_bytes()),
        headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes()),
        &body,
        jiff::Timestamp::now().as_second(),
    );
    if let Err(e) = verified {
        peers
            .metrics
            .event("peer", crate::metrics::EventResult::Malformed);
        warn!(reason = e.metric_label(), "a forwarded change was refused");
        return (StatusCode::UNAUTHORIZED, "signature not accepted").into_response();
    }
    let Some((change, wanted)) = serde_json::from_slice::<Forwarded>(&body)
        .ok()
        .and_then(|f| Some((f.change.into_change()?, f.shards)))
    else {
        peers
            .metrics
            .event("peer", crate::metrics::EventResult::Malformed);
        return (StatusCode::BAD_REQUEST, "not a forwarded change").into_response();
    };
    if !ingest.is_ready() {
        // Resolved now, it would find nothing: unanswered, it is asked again.
        return axum::Json(Answer::default()).into_response();
    }
    let (report, answered) = ingest
        .apply_in(&change, std::time::Instant::now(), &wanted)
        .await;
    axum::Json(Answer {
        affected: report.affected,
        synced: report.synced,
        retryable: report.retryable,
        permanent: report.permanent,
        answered,
    })
    .into_response()
}

/// Why the shards were lost: a held shard could not be renewed for the renew deadline, or
/// another replica holds it.
#[derive(Debug, thiserror::Error)]
#[error("shard {shard} lost: {why}")]
pub struct ShardLost {
    pub shard: u32,
    pub why: &'static str,
}

/// Who gets which shard: `holders[i]` is shard `i`'s live holder (an index into `live`, sorted),
/// if any. Each shard stays with its holder while the holder is within the fair share
/// (`count / live`, rounded down); the rest go to the least loaded members, a shard's holder
/// first among equals, then the first in order. Every replica computes the same plan from the
/// same Leases.
pub fn plan(count: usize, live: usize, holders: &[Option<usize>]) -> Vec<usize> {
    if live == 0 {
        return Vec::new();
    }
    let floor = count / live;
    let mut load = vec![0usize; live];
    let mut plan: Vec<Option<usize>> = vec![None; count];
    for (shard, holder) in holders.iter().enumerate().take(count) {
        if let Some(h) = *holder
            && h < live
            && load[h] < floor
        {
            plan[shard] = Some(h);
            load[h] += 1;
        }
    }
    for (shard, planned) in plan.iter_mut().enumerate() {
        if planned.is_some() {
            continue;
        }
        let least = load.iter().copied().min().unwrap_or(0);
        let holder = holders.get(shard).copied().flatten();
        let to = match holder {
            Some(h) if h < live && load[h] == least => h,
            _ => load.iter().position(|&l| l == least).unwrap_or(0),
        };
        *planned = Some(to);
        load[to] += 1;
    }
    plan.into_iter().map(|p| p.unwrap_or(0)).collect()
}

/// The loop that keeps this replica's member Lease and its shard Leases. See the module notes.
pub struct ShardManager {
    api: Api<Lease>,
    peers: Arc<Peers>,
    electors: Vec<LeaderElector>,
    last_renewed: Vec<Instant>,
    /// Shards being handed over: no longer admitting syncs, released once none is in flight.
    handing_over: BTreeSet<u32>,
    /// Member Leases by name: their last resourceVersion and when it changed, on our clock.
    seen: HashMap<String, (String, Instant)>,
    looks: u64,
}

impl ShardManager {
    pub fn new(client: Client, peers: Arc<Peers>) -> anyhow::Result<Self> {
        let settings = &peers.settings;
        settings.lease.validate()?;
        let electors = (0..settings.count)
            .map(|shard| {
                LeaderElector::new(
                    client.clone(),
                    LeaseConfig {
                        name: settings.shard_lease(shard),
                        ..settings.lease.clone()
                    },
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            api: Api::namespaced(client, &settings.lease.namespace),
            last_renewed: vec![Instant::now(); electors.len()],
            electors,
            peers,
            handing_over: BTreeSet::new(),
            seen: HashMap::new(),
            looks: 0,
        })
    }

    fn settings(&self) -> &ShardSettings {
        &self.peers.settings
    }

    /// Keeps the Leases until `stop`; then hands every shard back and leaves. Returns an error
    /// when a shard was lost (the caller exits, as a leader that lost its Lease does).
    pub async fn run(mut self, stop: CancellationToken) -> (Self, Result<(), ShardLost>) {
        let period = self.settings().lease.retry_period;
        let result = loop {
            if let Err(lost) = self.look().await {
                break Err(lost);
            }
            tokio::select! {
                () = stop.cancelled() => break Ok(()),
                () = tokio::time::sleep(period) => {}
            }
        };
        if let Err(lost) = &result {
            // Stop writing at once: another replica may take the shard a lease duration after
            // our last renewal.
            for shard in self.peers.shards.held() {
                self.peers.shards.stop(shard);
            }
            warn!(error = %lost, "shards lost; stopping");
        }
        (self, result)
    }

    /// Hands every held shard back (after its syncs are done) and removes the member Lease, so
    /// the others take over at their next look instead of a lease duration later.
    pub async fn leave(mut self) {
        let shards = self.peers.shards.clone();
        let mut leaving = shards.held();
        leaving.extend(std::mem::take(&mut self.handing_over));
        for shard in leaving {
            shards.give_up(shard).await;
            self.release(shard).await;
        }
        let name = self.settings().member_lease();
        if let Err(e) = self.api.delete(&name, &DeleteParams::default()).await {
            debug!(lease = %name, error = %e, "removing the member lease failed");
        }
    }

    async fn release(&mut self, shard: u32) {
        let name = self.settings().shard_lease(shard);
        match self.electors[shard as usize].release().await {
            Ok(_) => info!(lease = %name, "shard released"),
            Err(e) => warn!(lease = %name, error = %e, "releasing a shard failed; it expires"),
        }
        self.peers.metrics.set_leader(&name, false);
    }

    /// One look: renew the member Lease, read every Lease, plan, hand over, renew, take.
    async fn look(&mut self) -> Result<(), ShardLost> {
        self.looks += 1;
        if let Err(e) = self.keep_member().await {
            warn!(error = %e, "renewing the member lease failed");
        }
        let leases = match self.api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(e) => {
                warn!(error = %e, "listing the leases failed");
                return self.renew_held().await;
            }
        };
        let now = Instant::now();
        let settings = self.settings().clone();
        let prefix = settings.member_prefix();
        let mut members = Vec::new();
        for lease in &leases {
            let name = lease.metadata.name.clone().unwrap_or_default();
            if let Some(shard) = name
                .strip_prefix(&format!("{}-shard-", settings.lease.name))
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|&s| s < settings.count)
            {
                self.electors[shard as usize].observe_listed(lease.clone());
            } else if name.starts_with(&prefix) {
                let version = lease.metadata.resource_version.clone().unwrap_or_default();
                let seen = self
                    .seen
                    .entry(name.clone())
                    .or_insert_with(|| (version.clone(), now));
                if seen.0 != version {
                    *seen = (version, now);
                }
                let age = now.saturating_duration_since(seen.1);
                let identity = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default();
                let url = lease
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(PEER_URL_ANNOTATION).cloned())
                    .unwrap_or_default();
                if identity == settings.lease.identity
                    || (age < settings.lease.lease_duration && !identity.is_empty())
                {
                    members.push(Member { identity, url });
                } else if age > 10 * settings.lease.lease_duration {
                    // Long dead (a replica that was killed): tidy up.
                    let _ = self.api.delete(&name, &DeleteParams::default()).await;
                    self.seen.remove(&name);
                }
            }
        }
        if !members
            .iter()
            .any(|m| m.identity == settings.lease.identity)
        {
            members.push(Member {
                identity: settings.lease.identity.clone(),
                url: settings.peer_url.clone(),
            });
        }
        members.sort_by(|a, b| a.identity.cmp(&b.identity));
        *self
            .peers
            .members
            .write()
            .unwrap_or_else(|e| e.into_inner()) = members.clone();

        let me = members
            .iter()
            .position(|m| m.identity == settings.lease.identity)
            .unwrap_or(0);
        let holders: Vec<Option<usize>> = self
            .electors
            .iter()
            .map(|e| {
                e.live_holder()
                    .and_then(|h| members.iter().position(|m| m.identity == h))
            })
            .collect();
        let plan = plan(settings.count as usize, members.len(), &holders);

        // Hand over what the plan gives to others.
        let shards = self.peers.shards.clone();
        for shard in shards.held() {
            if plan[shard as usize] != me {
                shards.stop(shard);
                self.handing_over.insert(shard);
            }
        }
        for shard in self.handing_over.clone() {
            if shards.in_flight(shard) == 0 {
                self.handing_over.remove(&shard);
                self.release(shard).await;
            }
        }
        self.renew_held().await?;

        // Take what the plan gives us, once we have been seen by the others (the second look).
        if self.looks < 2 {
            return Ok(());
        }
        for (shard, &to) in plan.iter().enumerate() {
            let shard = shard as u32;
            if to != me || shards.holds(shard) || self.handing_over.contains(&shard) {
                continue;
            }
            match self.electors[shard as usize].try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %settings.shard_lease(shard), "shard taken");
                    self.last_renewed[shard as usize] = Instant::now();
                    self.peers
                        .metrics
                        .set_leader(&settings.shard_lease(shard), true);
                    shards.take(shard);
                }
                Ok(false) => {}
                Err(e) => debug!(error = %e, "taking a shard failed"),
            }
        }
        Ok(())
    }

    /// Renews every shard held or being handed over; a shard not renewed for the renew deadline,
    /// or held by another, is lost.
    async fn renew_held(&mut self) -> Result<(), ShardLost> {
        let deadline = self.settings().lease.renew_deadline;
        let mut renewing: Vec<u32> = self.peers.shards.held();
        renewing.extend(self.handing_over.iter().copied());
        for shard in renewing {
            let i = shard as usize;
            match self.electors[i].try_acquire_or_renew().await {
                Ok(true) => self.last_renewed[i] = Instant::now(),
                Ok(false) => {
                    return Err(ShardLost {
                        shard,
                        why: "another replica holds it",
                    });
                }
                Err(e) => {
                    warn!(shard, error = %e, "renewing a shard failed");
                    if self.last_renewed[i].elapsed() > deadline {
                        return Err(ShardLost {
                            shard,
                            why: "not renewed within the renew deadline",
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates or renews this replica's member Lease (server-side apply; only we write it).
    async fn keep_member(&self) -> Result<(), kube::Error> {
        let settings = self.settings();
        let name = settings.member_lease();
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(settings.lease.namespace.clone()),
                annotations: Some(
                    [(PEER_URL_ANNOTATION.to_owned(), settings.peer_url.clone())].into(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(settings.lease.identity.clone()),
                lease_duration_seconds: Some(
                    i32::try_from(settings.lease.lease_duration.as_secs().max(1))
                        .unwrap_or(i32::MAX),
                ),
                renew_time: Some(MicroTime(Timestamp::now())),
                ..LeaseSpec::default()
            }),
        };
        let value = serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": lease.metadata,
            "spec": lease.spec,
        });
        self.api
            .patch(
                &name,
                &PatchParams::apply("secret-sync-shards").force(),
                &Patch::Apply(value),
            )
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_keeps_holders_and_moves_only_what_it_must() {
        // Three live members hold two shards each: nothing moves.
        let holders = [Some(0), Some(0), Some(1), Some(1), Some(2), Some(2)];
        assert_eq!(plan(6, 3, &holders), vec![0, 0, 1, 1, 2, 2]);
        // A fourth member joins: one shard moves to it.
        let p = plan(6, 4, &holders);
        assert_eq!(p.iter().filter(|&&m| m == 3).count(), 1);
        assert_eq!(
            p.iter()
                .zip(holders)
                .filter(|(m, h)| Some(**m) != *h)
                .count(),
            1
        );
        // Member 1 died (two live members, renumbered): its shards are split, the rest stay.
        let holders = [Some(0), Some(0), None, None, Some(1), Some(1)];
        let p = plan(6, 2, &holders);
        assert_eq!(&p[..2], &[0, 0]);
        assert_eq!(&p[4..], &[1, 1]);
        assert_eq!(p.iter().filter(|&&m| m == 0).count(), 3);
        // Nobody holds anything yet: even shares.
        let p = plan(7, 3, &[None; 7]);
        let counts: Vec<usize> = (0..3)
            .map(|m| p.iter().filter(|&&x| x == m).count())
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 7);
        assert!(counts.iter().all(|&c| (2..=3).contains(&c)), "{counts:?}");
    }

    #[test]
    fn a_change_crosses_the_wire_unchanged() {
        let at = Change {
            place: Place::At(
                Location::new("aws/SecretsManager")
                    .with("region", Some("eu-west-1"))
                    .with("account", Some("123")),
            ),
            keys: vec!["prod/db".into()],
            event_time: Some("2026-12-07T10:00:00Z".parse().expect("a timestamp")),
            id: Some("e-1".into()),
        };
        let store = Change::new(
            Place::Store(StoreName {
                kind: StoreKindName::SecretStore,
                name: "vault".into(),
                namespace: Some("team-a".into()),
            }),
            vec![],
        );
        for change in [at, store] {
            let json = serde_json::to_vec(&WireChange::from(&change)).expect("serialized");
            let back: WireChange = serde_json::from_slice(&json).expect("parsed");
            assert_eq!(back.into_change(), Some(change));
        }
    }
}
