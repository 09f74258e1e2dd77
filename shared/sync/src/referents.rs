//! Credentials (and CA bundles) that stores reference in Kubernetes, read for the providers.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use secret_sync_providers::{ReferentError, Referents, SecretBytes};

/// Reads referenced Secrets and ConfigMaps and requests ServiceAccount tokens from the
/// apiserver. Credential Secrets and ConfigMaps are read directly (they are not in the
/// managed-Secret cache), and only when a provider client is built, not on every sync.
#[derive(Clone)]
pub struct KubeReferents {
    client: kube::Client,
}

impl KubeReferents {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    /// `key` of the Secret `namespace/name`, which must carry `label` when one is given.
    async fn read_secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        label: Option<(&str, &str)>,
    ) -> Result<SecretBytes, ReferentError> {
        let api = Api::<Secret>::namespaced(self.client.clone(), namespace);
        let secret = crate::view::bounded("reading a referenced Secret", api.get_opt(name))
            .await
            .map_err(|e| ReferentError::Api {
                what: format!("secret {namespace}/{name}"),
                message: e.to_string(),
            })?;
        let Some(mut secret) = secret else {
            return Err(ReferentError::SecretNotFound {
                namespace: namespace.into(),
                name: name.into(),
            });
        };
        if let Some((label, value)) = label {
            let labelled = secret
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(label))
                .is_some_and(|v| v == value);
            if !labelled {
                return Err(ReferentError::Unlabelled {
                    namespace: namespace.into(),
                    name: name.into(),
                    label: format!("{label}={value}"),
                });
            }
        }
        match secret.data.as_mut().and_then(|d| d.remove(key)) {
            Some(bytes) => Ok(SecretBytes::new(bytes.0)),
            None => Err(ReferentError::KeyNotFound {
                namespace: namespace.into(),
                name: name.into(),
                key: key.into(),
            }),
        }
    }
}

#[async_trait]
impl Referents for KubeReferents {
    async fn secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ReferentError> {
        self.read_secret_key(namespace, name, key, None).await
    }

    async fn labelled_secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        label: (&str, &str),
    ) -> Result<SecretBytes, ReferentError> {
        self.read_secret_key(namespace, name, key, Some(label))
            .await
    }

    async fn config_map_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ReferentError> {
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), namespace);
        let config_map = crate::view::bounded("reading a referenced ConfigMap", api.get_opt(name))
            .await
            .map_err(|e| ReferentError::Api {
                what: format!("configmap {namespace}/{name}"),
                message: e.to_string(),
            })?;
        let Some(mut config_map) = config_map else {
            return Err(ReferentError::ConfigMapNotFound {
                namespace: namespace.into(),
                name: name.into(),
            });
        };
        // `data` only, as ESO's `getCertFromConfigMap`: a key in `binaryData` is not found.
        let value = config_map.data.as_mut().and_then(|d| d.remove(key));
        match value {
            Some(text) => Ok(SecretBytes::from(text)),
            None => Err(ReferentError::ConfigMapKeyNotFound {
                namespace: namespace.into(),
                name: name.into(),
                key: key.into(),
            }),
        }
    }

    async fn service_account_annotations(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, ReferentError> {
        let api = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace);
        match crate::view::bounded("reading a ServiceAccount", api.get_opt(name)).await {
            Ok(Some(sa)) => Ok(sa.metadata.annotations.unwrap_or_default()),
            Ok(None) => Err(ReferentError::Api {
                what: format!("service account {namespace}/{name}"),
                message: "not found".into(),
            }),
            Err(e) => Err(ReferentError::Api {
                what: format!("service account {namespace}/{name}"),
                message: e.to_string(),
            }),
        }
    }

    async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[String],
        expiration_seconds: i64,
    ) -> Result<SecretBytes, ReferentError> {
        let api = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace);
        let request = TokenRequest {
            spec: k8s_openapi::api::authentication::v1::TokenRequestSpec {
                audiences: audiences.to_vec(),
                expiration_seconds: Some(expiration_seconds),
                ..Default::default()
            },
            ..Default::default()
        };
        let params = PostParams::default();
        let issued = crate::view::bounded(
            "requesting a token",
            api.create_token_request(name, &params, &request),
        )
        .await
        .map_err(|e| ReferentError::Token {
            namespace: namespace.into(),
            name: name.into(),
            message: e.to_string(),
        })?;
        match issued.status {
            Some(status) => Ok(SecretBytes::from(status.token)),
            None => Err(ReferentError::Token {
                namespace: namespace.into(),
                name: name.into(),
                message: "the apiserver returned no token".into(),
            }),
        }
    }
}
