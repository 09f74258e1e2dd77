//! `secret-sync-controller`: the in-cluster Deployment's runtime plumbing, as a library so that
//! the integration tests can drive it: flags ([`config`]), leader election on a Lease
//! ([`leader`]), Prometheus metrics with ESO's names ([`metrics`]), the HTTP server for metrics,
//! health ([`http`]), the shared [`context`], the [`reconcile`]rs, and the provider change
//! receivers: the [`sqs`] consumer, the Vault [`vault_audit`] stream, the Vault
//! [`vault_events`] subscriber, the signed [`webhook`] and the [`kubernetes_watch`] of Kubernetes
//! stores' Secrets, which hand their changes to the
//! [`dispatch`]er. `main.rs` wires them together.

#![forbid(unsafe_code)]

pub mod config;
pub mod context;
pub mod dispatch;
pub mod http;
pub mod kubernetes_watch;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod shards;
pub mod sqs;
pub mod template_sources;
pub mod vault_audit;
pub mod vault_events;
pub mod webhook;

pub use config::Config;
pub use context::Context;
pub use http::{HttpState, Readiness};
pub use leader::{LeaderElector, LeaderState, Leadership, LeaseConfig};
pub use metrics::Metrics;
