//! Objects a test creates and deletes again when it ends, even when it fails.
//!
//! A guard deletes its object when dropped, through [`Stack::clean_up`]: from a thread of its
//! own with a current-thread runtime and a fresh client built from the stack's kubeconfig,
//! because a kube client is bound to the runtime it was created on, and the test's runtime may
//! be shutting down (or blocked in this very drop). Set `SECRET_SYNC_KEEP_TEST_OBJECTS=1` to
//! keep everything for a post-mortem.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams};
use secret_sync_crd::{ClusterExternalSecret, ClusterPushSecret, ClusterSecretStore};

use crate::Stack;

#[derive(Debug)]
enum Target {
    Namespace(String),
    ClusterSecretStore(String),
    ClusterRbac(String),
    ClusterExternalSecret(String),
    ClusterPushSecret(String),
}

/// Deletes one object when dropped.
#[must_use = "the object is deleted when the guard is dropped"]
#[derive(Debug)]
pub struct Cleanup {
    target: Option<Target>,
}

impl Cleanup {
    /// Deletes the namespace (and so everything in it) when dropped.
    pub fn namespace(name: &str) -> Self {
        Self {
            target: Some(Target::Namespace(name.to_owned())),
        }
    }

    /// Deletes the ClusterSecretStore when dropped.
    pub fn cluster_secret_store(name: &str) -> Self {
        Self {
            target: Some(Target::ClusterSecretStore(name.to_owned())),
        }
    }

    /// Deletes the ClusterExternalSecret when dropped.
    pub fn cluster_external_secret(name: &str) -> Self {
        Self {
            target: Some(Target::ClusterExternalSecret(name.to_owned())),
        }
    }

    /// Deletes the ClusterPushSecret when dropped.
    pub fn cluster_push_secret(name: &str) -> Self {
        Self {
            target: Some(Target::ClusterPushSecret(name.to_owned())),
        }
    }

    /// Deletes the ClusterRole and the ClusterRoleBinding of this name when dropped.
    pub fn cluster_rbac(name: &str) -> Self {
        Self {
            target: Some(Target::ClusterRbac(name.to_owned())),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(target) = self.target.take() else {
            return;
        };
        if std::env::var_os("SECRET_SYNC_KEEP_TEST_OBJECTS").is_some() {
            return;
        }
        Stack::clean_up(move |stack| async move {
            let client = stack.kube().await;
            let result = match &target {
                Target::Namespace(name) => Api::<Namespace>::all(client)
                    .delete(name, &DeleteParams::background())
                    .await
                    .map(drop),
                Target::ClusterSecretStore(name) => Api::<ClusterSecretStore>::all(client)
                    .delete(name, &DeleteParams::background())
                    .await
                    .map(drop),
                Target::ClusterExternalSecret(name) => Api::<ClusterExternalSecret>::all(client)
                    .delete(name, &DeleteParams::background())
                    .await
                    .map(drop),
                Target::ClusterPushSecret(name) => Api::<ClusterPushSecret>::all(client)
                    .delete(name, &DeleteParams::background())
                    .await
                    .map(drop),
                Target::ClusterRbac(name) => {
                    let binding = Api::<ClusterRoleBinding>::all(client.clone())
                        .delete(name, &DeleteParams::background())
                        .await
                        .map(drop);
                    let role = Api::<ClusterRole>::all(client)
                        .delete(name, &DeleteParams::background())
                        .await
                        .map(drop);
                    binding.and(role)
                }
            };
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => eprintln!("cleanup of {target:?} failed: {e}"),
            }
        });
    }
}
