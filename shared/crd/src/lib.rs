//! ESO-compatible API types and CRD generation for secret-sync. No I/O.
//!
//! The kinds are External Secrets Operator's, with ESO's group, names, JSON field names, enums
//! and defaults, so manifests written for ESO apply unchanged:
//!
//! | kind | API version | scope | module |
//! |---|---|---|---|
//! | [`ExternalSecret`] (`es`) | `external-secrets.io/v1` | Namespaced | [`external_secret`] |
//! | [`SecretStore`] (`ss`) | `external-secrets.io/v1` | Namespaced | [`secret_store`] |
//! | [`ClusterSecretStore`] (`css`) | `external-secrets.io/v1` | Cluster | [`secret_store`] |
//! | [`ClusterExternalSecret`] (`ces`) | `external-secrets.io/v1` | Cluster | [`cluster_external_secret`] |
//! | [`PushSecret`] (`ps`) | `external-secrets.io/v1alpha1` | Namespaced | [`push_secret`] |
//! | [`ClusterPushSecret`] | `external-secrets.io/v1alpha1` | Cluster | [`cluster_push_secret`] |
//!
//! Generators (`generators.external-secrets.io/v1alpha1`, module [`generators`]): one namespaced
//! kind per generator ([`Password`], [`Uuid`], [`Fake`], [`SshKey`], [`EcrAuthorizationToken`],
//! [`StsSessionToken`], [`VaultDynamicSecret`], [`Webhook`], [`AcrAccessToken`],
//! [`GcrAccessToken`], [`GithubAccessToken`], [`GitlabDeployToken`], [`QuayAccessToken`],
//! [`Grafana`], [`CloudsmithAccessToken`], [`Mfa`],
//! [`BeyondtrustWorkloadCredentialsDynamicSecret`]), the cluster-scoped [`ClusterGenerator`], and
//! [`GeneratorState`] (`gs`).
//!
//! Providers: [`provider`] types `aws`, `vault` and `fake`; any other provider is kept as raw JSON
//! ([`SecretStoreProvider::other`]) and its CRD schema preserves unknown fields.
//!
//! Also here: [`well_known`] label, annotation, finalizer and reason strings; [`crds`], the CRDs
//! and their YAML in `infra/crds/`. Duration fields are read as Go reads them, by
//! `secret_sync_gosem::duration`.

#![forbid(unsafe_code)]

pub mod cluster_external_secret;
pub mod cluster_push_secret;
pub mod crds;
pub mod external_secret;
pub mod generators;
pub mod meta;
pub mod provider;
pub mod push_secret;
pub mod secret_store;
pub mod well_known;

pub use cluster_external_secret::{
    ClusterExternalSecret, ClusterExternalSecretNamespaceFailure, ClusterExternalSecretSpec,
    ClusterExternalSecretStatus, ClusterExternalSecretStatusCondition, ExternalSecretMetadata,
};
pub use cluster_push_secret::{
    ClusterPushSecret, ClusterPushSecretNamespaceFailure, ClusterPushSecretSpec,
    ClusterPushSecretStatus, PushSecretMetadata,
};
pub use external_secret::*;
pub use generators::*;
pub use meta::{ConditionStatus, SecretKeySelector, ServiceAccountSelector};
pub use push_secret::*;
pub use secret_store::*;
