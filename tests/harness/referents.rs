//! [`MemoryReferents`]: the [`Referents`] a provider reads credentials through, kept in memory
//! as Kubernetes would keep them, recording what was read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use secret_sync_providers::{ReferentError, Referents, SecretBytes};

/// Secrets and ConfigMaps in memory; records every read. ServiceAccount tokens are refused and
/// ServiceAccounts carry no annotations.
#[derive(Debug, Default)]
pub struct MemoryReferents {
    /// (namespace, name, key) → the Secret's value.
    secrets: Mutex<HashMap<(String, String, String), Vec<u8>>>,
    /// (namespace, name) → the ConfigMap's `data`.
    config_maps: Mutex<HashMap<(String, String), BTreeMap<String, String>>>,
    /// `namespace/name/key` per Secret read, `configmap:namespace/name/key` per ConfigMap read.
    reads: Mutex<Vec<String>>,
}

impl MemoryReferents {
    /// With the Secret `ns/name` holding `value` under `key`.
    pub fn with_secret(self, ns: &str, name: &str, key: &str, value: &str) -> Self {
        self.set(ns, name, key, value);
        self
    }

    /// A ConfigMap whose `data` holds `entries`.
    pub fn with_config_map(self, ns: &str, name: &str, entries: &[(&str, &str)]) -> Self {
        if let Ok(mut c) = self.config_maps.lock() {
            c.insert(
                (ns.into(), name.into()),
                entries
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
        }
        self
    }

    /// Sets `key` of the Secret `ns/name` to `value`.
    pub fn set(&self, ns: &str, name: &str, key: &str, value: &str) {
        if let Ok(mut s) = self.secrets.lock() {
            s.insert(
                (ns.into(), name.into(), key.into()),
                value.as_bytes().to_vec(),
            );
        }
    }

    /// How many times `name/key` (a Secret's or a ConfigMap's, in any namespace) was read.
    pub fn reads_of(&self, name: &str, key: &str) -> usize {
        let wanted = format!("{name}/{key}");
        self.reads
            .lock()
            .map(|r| r.iter().filter(|x| x.ends_with(&wanted)).count())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Referents for MemoryReferents {
    async fn secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ReferentError> {
        if let Ok(mut r) = self.reads.lock() {
            r.push(format!("{namespace}/{name}/{key}"));
        }
        self.secrets
            .lock()
            .ok()
            .and_then(|s| s.get(&(namespace.into(), name.into(), key.into())).cloned())
            .map(SecretBytes::new)
            .ok_or_else(|| ReferentError::SecretNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })
    }

    async fn config_map_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ReferentError> {
        if let Ok(mut r) = self.reads.lock() {
            r.push(format!("configmap:{namespace}/{name}/{key}"));
        }
        let config_maps = self.config_maps.lock().map_err(|_| ReferentError::Api {
            what: format!("configmap {namespace}/{name}"),
            message: "poisoned".into(),
        })?;
        let Some(data) = config_maps.get(&(namespace.into(), name.into())) else {
            return Err(ReferentError::ConfigMapNotFound {
                namespace: namespace.into(),
                name: name.into(),
            });
        };
        data.get(key)
            .map(|v| SecretBytes::from(v.clone()))
            .ok_or_else(|| ReferentError::ConfigMapKeyNotFound {
                namespace: namespace.into(),
                name: name.into(),
                key: key.into(),
            })
    }

    async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        _: &[String],
        _: i64,
    ) -> Result<SecretBytes, ReferentError> {
        Err(ReferentError::Token {
            namespace: namespace.into(),
            name: name.into(),
            message: "no tokens here".into(),
        })
    }

    async fn service_account_annotations(
        &self,
        _: &str,
        _: &str,
    ) -> Result<BTreeMap<String, String>, ReferentError> {
        Ok(BTreeMap::new())
    }
}
