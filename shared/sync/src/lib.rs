//! The sync engine: trigger → resolve → fetch → render → apply → status.
//!
//! Every entry point (the in-cluster reconciler, the SQS consumer, the Lambda handler, webhooks)
//! hands its input to [`Engine::sync`] and decides only when to run it and how to retry.
//!
//! | stage | module | I/O |
//! |---|---|---|
//! | which ExternalSecrets a change affects | [`index`], [`resolve`] | cached reads |
//! | take a change: resolve, coalesce, sync, answer | [`ingest`] | the syncs |
//! | should it run? | [`refresh`], [`windows`] | none |
//! | which store, which client | [`stores`] | cached reads |
//! | fetch, deduplicated | [`fetch`] | provider calls |
//! | generators: fresh values | [`generate`] | a generator read, provider calls |
//! | data / dataFrom pipeline | [`render`] | none |
//! | target template | [`template`] | none |
//! | write the Secret | [`apply`] | apiserver writes |
//! | roll the workloads using a changed Secret (opt-in) | [`rollout`] | apiserver writes |
//! | status | [`status`], [`statuses`] | one status write when it changed; for a change, after the Secret |
//! | PushSecret: source → entries → providers → status | [`push`] | reads, provider writes |

#![forbid(unsafe_code)]

pub mod apply;
pub mod cached;
pub mod caches;
pub mod engine;
pub mod events;
pub mod fetch;
pub mod generate;
pub mod hash;
pub mod index;
pub mod ingest;
pub mod manifest;
pub mod push;
pub mod referents;
pub mod refresh;
pub mod render;
pub mod resolve;
pub mod rollout;
pub mod secret_cache;
pub mod shards;
pub mod status;
pub mod statuses;
pub mod stores;
pub mod template;
pub mod view;
pub mod windows;

pub use engine::{Engine, NoObserver, Observer, Outcome, Settings, SyncError, Trigger};
pub use referents::KubeReferents;
pub use view::{ApiView, CachedView, ClusterView};
