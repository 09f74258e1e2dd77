//! The fake provider: serves the values written in the store itself (`spec.provider.fake`).
//!
//! Semantics follow ESO's fake provider (`providers/v1/fake/fake.go` in external-secrets):
//!
//! - an entry is addressed by `key` and `version`: an entry without a version serves requests
//!   without a version, an entry with a version serves exactly that version; a later entry with
//!   the same key and version replaces an earlier one;
//! - the value is `value`, or, for entries written for ESO's deprecated `valueMap`, that map as a
//!   JSON object (so `dataFrom.extract` reads it as ESO's `GetSecretMap` did);
//! - `find` needs `name` (a regular expression, unanchored) and returns, per matching key, the
//!   entry with the greatest version (string order, no version sorting first); tags are ignored
//!   when a name is given, as in ESO, and a find by tags alone is refused. secret-sync also
//!   honours `path` as a key prefix (ESO ignores it for this provider);
//! - `validationResult` (ESO's internal number: 0 Ready, 1 Unknown, 2 Error) decides `validate`.
//!
//! Metadata requests (`metadataPolicy: Fetch`) get the value, as in ESO.
//!
//! PushSecrets write into the store too, as in ESO: a pushed key lives in this process for as
//! long as it runs, per store, and is read like the store's own entries (without a version). A
//! key the store itself defines cannot be pushed to. Unlike ESO's, `deletionPolicy: Delete`
//! removes a pushed key (ESO's fake provider ignores deletions).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use secret_sync_crd::provider::FakeProvider;
use secret_sync_gosem::GoRegexp;

use crate::{
    Find, Provider, ProviderError, PushRef, RemoteRef, SecretBytes, StoreScope, Validation,
};

/// What PushSecrets wrote, per store (`<kind>/<namespace>/<name>`), for the life of the process.
type Pushed = Arc<Mutex<HashMap<String, SecretBytes>>>;
static PUSHED: LazyLock<Mutex<HashMap<String, Pushed>>> = LazyLock::new(Default::default);

/// ESO's `ValidationResultReady`.
const VALIDATION_READY: i32 = 0;
/// ESO's `ValidationResultUnknown`.
const VALIDATION_UNKNOWN: i32 = 1;

/// A client for a fake store: an in-memory copy of its `data`.
pub struct FakeClient {
    /// (key, version or "") → value.
    entries: HashMap<(String, String), SecretBytes>,
    validation_result: Option<i32>,
    /// Keys PushSecrets wrote into this store.
    pushed: Pushed,
}

impl FakeClient {
    /// Copies the store's entries, with the keys PushSecrets wrote into the store `scope` names.
    pub fn for_store(provider: &FakeProvider, scope: &StoreScope) -> Self {
        let store = format!(
            "{}/{}/{}",
            scope.kind.as_str(),
            if scope.kind == secret_sync_crd::StoreKind::SecretStore {
                scope.namespace.as_str()
            } else {
                ""
            },
            scope.name
        );
        let pushed = PUSHED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(store)
            .or_default()
            .clone();
        Self {
            pushed,
            ..Self::new(provider)
        }
    }

    /// Copies the store's entries (a client of its own: nothing pushed is shared).
    pub fn new(provider: &FakeProvider) -> Self {
        let entries = provider
            .data
            .iter()
            .map(|entry| {
                let value = match (&entry.value, entry.value_map.is_empty()) {
                    (Some(value), _) => SecretBytes::from(value.clone()),
                    (None, false) => value_map_json(&entry.value_map),
                    (None, true) => SecretBytes::default(),
                };
                let version = entry.version.clone().unwrap_or_default();
                ((entry.key.clone(), version), value)
            })
            .collect();
        Self {
            entries,
            validation_result: provider.validation_result,
            pushed: Pushed::default(),
        }
    }

    fn pushed(&self) -> std::sync::MutexGuard<'_, HashMap<String, SecretBytes>> {
        self.pushed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `valueMap` as Go's `json.Marshal` writes a map: sorted keys, HTML characters escaped.
fn value_map_json(map: &BTreeMap<String, String>) -> SecretBytes {
    SecretBytes::from(secret_sync_gosem::json::marshal_string_map(map))
}

#[async_trait]
impl Provider for FakeClient {
    fn metric_name(&self) -> &'static str {
        "Fake"
    }

    async fn get(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let lookup = (
            remote.key.clone(),
            remote.version.clone().unwrap_or_default(),
        );
        let pushed = match remote.version.as_deref() {
            None | Some("") => self.pushed().get(&remote.key).cloned(),
            Some(_) => None,
        };
        pushed
            .or_else(|| self.entries.get(&lookup).cloned())
            .ok_or_else(|| ProviderError::NotFound {
                key: remote.key.clone(),
            })
    }

    async fn push(&self, remote: &PushRef, value: &[u8]) -> Result<bool, ProviderError> {
        if self.entries.keys().any(|(key, _)| *key == remote.key) {
            return Err(ProviderError::NotManaged {
                key: remote.key.clone(),
            });
        }
        let value = SecretBytes::new(value.to_vec());
        let mut pushed = self.pushed();
        if pushed.get(&remote.key) == Some(&value) {
            return Ok(false);
        }
        pushed.insert(remote.key.clone(), value);
        Ok(true)
    }

    async fn exists(&self, remote: &PushRef) -> Result<bool, ProviderError> {
        Ok(self.pushed().contains_key(&remote.key)
            || self.entries.keys().any(|(key, _)| *key == remote.key))
    }

    async fn delete_pushed(&self, remote: &PushRef) -> Result<(), ProviderError> {
        self.pushed().remove(&remote.key);
        Ok(())
    }

    async fn find(&self, find: &Find) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        if find.name_regexp.is_none() && (find.path.is_none() || !find.tags.is_empty()) {
            return Err(ProviderError::Config(
                "the fake provider finds secrets by name (and path) only".into(),
            ));
        }
        let matcher = find
            .name_regexp
            .as_deref()
            .map(GoRegexp::new)
            .transpose()
            .map_err(|e| ProviderError::Config(format!("invalid find.name.regexp: {e}")))?;
        // Per key, the entry with the greatest version wins ("" sorts first); a pushed key has
        // no version.
        let pushed: Vec<((String, String), SecretBytes)> = self
            .pushed()
            .iter()
            .map(|(k, v)| ((k.clone(), String::new()), v.clone()))
            .collect();
        let mut latest: BTreeMap<&str, (&str, &SecretBytes)> = BTreeMap::new();
        for ((key, version), value) in self
            .entries
            .iter()
            .chain(pushed.iter().map(|(k, v)| (k, v)))
        {
            if find.path.as_deref().is_some_and(|p| !key.starts_with(p)) {
                continue;
            }
            if matcher.as_ref().is_some_and(|m| !m.is_match(key)) {
                continue;
            }
            match latest.get(key.as_str()) {
                Some((best, _)) if *best >= version.as_str() => {}
                _ => {
                    latest.insert(key, (version, value));
                }
            }
        }
        Ok(latest
            .into_iter()
            .map(|(key, (_, value))| (key.to_owned(), value.clone()))
            .collect())
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        match self.validation_result {
            None | Some(VALIDATION_READY) => Ok(Validation::Ready),
            Some(VALIDATION_UNKNOWN) => Ok(Validation::Unknown),
            Some(_) => Err(ProviderError::Config("unable to validate".into())),
        }
    }
}

/// The fake provider as a kind: static values, no location, no change events (a webhook can
/// still name a fake store).
pub struct FakeKind;

#[async_trait]
impl crate::kind::ProviderKind for FakeKind {
    fn id(&self) -> &'static str {
        "fake"
    }

    fn serves(&self, provider: &secret_sync_crd::SecretStoreProvider) -> bool {
        provider.fake.is_some()
    }

    async fn build(
        &self,
        provider: &secret_sync_crd::SecretStoreProvider,
        scope: &StoreScope,
        _referents: Arc<dyn crate::Referents>,
        _options: &crate::BuildOptions,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        let fake = provider
            .fake
            .as_ref()
            .ok_or_else(|| ProviderError::Config("not a fake store".into()))?;
        Ok(Arc::new(FakeClient::for_store(fake, scope)))
    }
}

#[cfg(test)]
mod tests {
    use secret_sync_crd::provider::FakeProviderData;

    use super::*;

    fn entry(key: &str, value: &str, version: Option<&str>) -> FakeProviderData {
        FakeProviderData {
            key: key.into(),
            value: Some(value.into()),
            version: version.map(Into::into),
            ..Default::default()
        }
    }

    fn client(data: Vec<FakeProviderData>) -> FakeClient {
        FakeClient::new(&FakeProvider {
            data,
            validation_result: None,
        })
    }

    fn versioned(key: &str, version: &str) -> RemoteRef {
        RemoteRef {
            version: Some(version.into()),
            ..RemoteRef::key(key)
        }
    }

    async fn text(c: &FakeClient, r: &RemoteRef) -> Result<String, ProviderError> {
        c.get(r)
            .await
            .map(|v| String::from_utf8_lossy(v.expose()).into_owned())
    }

    #[tokio::test]
    async fn an_entry_without_a_version_serves_requests_without_a_version_only() {
        let c = client(vec![entry("db", "plain", None)]);
        assert_eq!(
            text(&c, &RemoteRef::key("db")).await.ok().as_deref(),
            Some("plain")
        );
        assert!(matches!(
            text(&c, &versioned("db", "v1")).await,
            Err(ProviderError::NotFound { key }) if key == "db"
        ));
    }

    #[tokio::test]
    async fn an_entry_with_a_version_serves_that_version_only() {
        let c = client(vec![
            entry("db", "one", Some("v1")),
            entry("db", "two", Some("v2")),
        ]);
        assert_eq!(
            text(&c, &versioned("db", "v1")).await.ok().as_deref(),
            Some("one")
        );
        assert_eq!(
            text(&c, &versioned("db", "v2")).await.ok().as_deref(),
            Some("two")
        );
        assert!(matches!(
            text(&c, &RemoteRef::key("db")).await,
            Err(ProviderError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn pushed_keys_are_read_back_by_every_client_of_the_store_and_deleted() {
        let scope = StoreScope {
            kind: secret_sync_crd::StoreKind::SecretStore,
            name: "fake".into(),
            namespace: "fake-push-test".into(),
        };
        let provider = FakeProvider {
            data: vec![entry("defined", "by the store", None)],
            validation_result: None,
        };
        let writer = FakeClient::for_store(&provider, &scope);
        let remote = PushRef {
            key: "pushed".into(),
            ..PushRef::default()
        };
        assert!(!writer.exists(&remote).await.expect("exists"));
        assert!(writer.push(&remote, b"v1").await.expect("push"));
        assert!(
            !writer.push(&remote, b"v1").await.expect("push"),
            "unchanged"
        );
        let reader = FakeClient::for_store(&provider, &scope);
        assert_eq!(
            text(&reader, &RemoteRef::key("pushed"))
                .await
                .ok()
                .as_deref(),
            Some("v1")
        );
        assert!(reader.exists(&remote).await.expect("exists"));
        let defined = PushRef {
            key: "defined".into(),
            ..remote.clone()
        };
        assert!(matches!(
            writer.push(&defined, b"x").await,
            Err(ProviderError::NotManaged { .. })
        ));
        reader.delete_pushed(&remote).await.expect("delete");
        assert!(matches!(
            text(&writer, &RemoteRef::key("pushed")).await,
            Err(ProviderError::NotFound { .. })
        ));
        let other = StoreScope {
            namespace: "elsewhere".into(),
            ..scope
        };
        writer.push(&remote, b"v2").await.expect("push");
        assert!(
            !FakeClient::for_store(&provider, &other)
                .exists(&remote)
                .await
                .expect("exists"),
            "another store does not see it"
        );
    }

    #[tokio::test]
    async fn a_missing_key_is_not_found_and_not_retryable() {
        let c = client(vec![entry("db", "x", None)]);
        let err = c.get(&RemoteRef::key("nope")).await.err();
        assert!(matches!(&err, Some(ProviderError::NotFound { key }) if key == "nope"));
        assert!(err.is_some_and(|e| !e.is_retryable()));
    }

    #[tokio::test]
    async fn a_later_entry_with_the_same_key_and_version_wins() {
        let c = client(vec![entry("db", "old", None), entry("db", "new", None)]);
        assert_eq!(
            text(&c, &RemoteRef::key("db")).await.ok().as_deref(),
            Some("new")
        );
    }

    #[tokio::test]
    async fn a_value_map_is_served_as_a_json_object_with_sorted_keys() {
        let c = client(vec![FakeProviderData {
            key: "map".into(),
            value_map: [("b", "<2&>"), ("a", "1\"quoted\"")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Default::default()
        }]);
        assert_eq!(
            text(&c, &RemoteRef::key("map")).await.ok().as_deref(),
            // As Go's json.Marshal: HTML characters escaped.
            Some(r#"{"a":"1\"quoted\"","b":"\u003c2\u0026\u003e"}"#)
        );
    }

    #[tokio::test]
    async fn value_takes_precedence_over_value_map() {
        let mut e = entry("k", "the value", None);
        e.value_map.insert("a".into(), "b".into());
        let c = client(vec![e]);
        assert_eq!(
            text(&c, &RemoteRef::key("k")).await.ok().as_deref(),
            Some("the value")
        );
    }

    #[tokio::test]
    async fn metadata_requests_get_the_value_as_in_eso() {
        let c = client(vec![entry("k", "v", None)]);
        let r = RemoteRef {
            metadata: true,
            ..RemoteRef::key("k")
        };
        assert_eq!(text(&c, &r).await.ok().as_deref(), Some("v"));
    }

    #[tokio::test]
    async fn find_by_name_matches_unanchored_and_keeps_the_greatest_version() {
        let c = client(vec![
            entry("app/db", "unversioned", None),
            entry("app/db", "v1", Some("v1")),
            entry("app/db", "v2", Some("v2")),
            entry("app/api", "api", None),
            entry("other", "other", None),
        ]);
        let found = c
            .find(&Find {
                name_regexp: Some("app/".into()),
                ..Default::default()
            })
            .await
            .unwrap_or_default();
        let found: BTreeMap<_, _> = found
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(v.expose()).into_owned()))
            .collect();
        assert_eq!(
            found,
            BTreeMap::from([
                ("app/api".to_owned(), "api".to_owned()),
                ("app/db".to_owned(), "v2".to_owned()),
            ])
        );
    }

    #[tokio::test]
    async fn find_by_path_keeps_keys_under_the_prefix() {
        let c = client(vec![
            entry("team-a/one", "1", None),
            entry("team-a/two", "2", None),
            entry("team-b/one", "3", None),
        ]);
        let found = c
            .find(&Find {
                path: Some("team-a/".into()),
                name_regexp: Some("one$".into()),
                ..Default::default()
            })
            .await
            .unwrap_or_default();
        assert_eq!(found.keys().collect::<Vec<_>>(), ["team-a/one"]);
    }

    #[tokio::test]
    async fn find_by_tags_alone_is_a_configuration_error() {
        let c = client(vec![entry("k", "v", None)]);
        let err = c
            .find(&Find {
                tags: BTreeMap::from([("env".into(), "prod".into())]),
                ..Default::default()
            })
            .await
            .err();
        assert!(matches!(err, Some(ProviderError::Config(_))));
    }

    #[tokio::test]
    async fn find_reads_the_name_regexp_as_go_does() {
        // Go's `\d` is ASCII only (the regex crate's is any Unicode digit, "٣" included), and
        // Go reads `[[]` as a class holding `[` (the regex crate: an unclosed nested class).
        let c = client(vec![
            entry("db-3", "ascii", None),
            entry("db-٣", "arabic-indic", None),
            entry("db-[", "bracket", None),
        ]);
        let find = |pattern: &str| {
            let c = &c;
            let pattern = pattern.to_owned();
            async move {
                c.find(&Find {
                    name_regexp: Some(pattern),
                    ..Default::default()
                })
                .await
                .map(|found| found.into_keys().collect::<Vec<_>>())
            }
        };
        assert_eq!(find(r"^db-\d$").await.ok(), Some(vec!["db-3".to_owned()]));
        assert_eq!(find(r"^db-[[]$").await.ok(), Some(vec!["db-[".to_owned()]));
    }

    #[tokio::test]
    async fn find_with_an_invalid_regexp_is_a_configuration_error() {
        let c = client(vec![entry("k", "v", None)]);
        let err = c
            .find(&Find {
                name_regexp: Some("(".into()),
                ..Default::default()
            })
            .await
            .err();
        assert!(matches!(err, Some(ProviderError::Config(m)) if m.contains("regexp")));
    }

    #[tokio::test]
    async fn validation_follows_the_stores_validation_result() {
        let with = |result| {
            FakeClient::new(&FakeProvider {
                data: vec![],
                validation_result: result,
            })
        };
        assert_eq!(with(None).validate().await.ok(), Some(Validation::Ready));
        assert_eq!(with(Some(0)).validate().await.ok(), Some(Validation::Ready));
        assert_eq!(
            with(Some(1)).validate().await.ok(),
            Some(Validation::Unknown)
        );
        assert!(matches!(
            with(Some(2)).validate().await,
            Err(ProviderError::Config(_))
        ));
    }

    #[test]
    fn secret_bytes_debug_shows_no_value() {
        let v = SecretBytes::from("hunter2".to_owned());
        assert_eq!(format!("{v:?}"), "SecretBytes(<7 bytes redacted>)");
    }
}
