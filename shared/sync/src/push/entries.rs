//! What a PushSecret pushes to one store: its `data` entries, and its `dataTo` rules expanded
//! against the source's keys (R: `pkg/controllers/pushsecret/pushsecret_controller_v2.go`
//! `validateDataToStoreRefs`, `filterDataToForStore`, `expandDataTo`, `mergeDataEntries`;
//! `runtime/esutils/utils.go` `ReverseKeys`).
//!
//! A `dataTo` rule applies to the stores its `storeRef` names (name and kind) or selects
//! (labels and kind). Its keys are the source's, converted by its `conversionStrategy`, that
//! `match.regexp` finds (all when unset). Without `remoteKey` each key becomes its own entry,
//! its remote key rewritten by `rewrite[]`; with `remoteKey` the matched keys are pushed
//! together as one JSON object. An explicit `data` entry for the same source key wins over a
//! rule's; two entries for one destination are an error. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::render::{KeyRewrites, reverse_unicode};
use crate::stores::selector_matches;
use secret_sync_crd::{
    PushSecretConversionStrategy, PushSecretData, PushSecretDataTo, PushSecretMatch,
    PushSecretRemoteRef, PushSecretSpec, PushSecretStoreRef, StoreKind,
};
use secret_sync_gosem::GoRegexp;

/// A source Secret's keys and values, after the template.
pub type Data = BTreeMap<String, Vec<u8>>;

/// A store as `dataTo` rules see it.
pub struct StoreId<'a> {
    pub kind: StoreKind,
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// One thing to push to a store.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// As recorded in `syncedPushSecrets`.
    pub spec: PushSecretData,
    /// For a `dataTo` bundle (`remoteKey` set): the matched keys, pushed as one JSON object.
    pub bundle: Option<Data>,
}

impl Entry {
    /// The bytes this entry pushes: one key's value, or with no key (and for a bundle) the keys
    /// as a JSON object of strings (ESO's `ExtractSecretData`). Errors name keys only.
    pub fn value(&self, data: &Data) -> Result<Vec<u8>, String> {
        if let Some(bundle) = &self.bundle {
            return json_object(bundle);
        }
        let converted = reverse_keys(self.spec.conversion_strategy, data)
            .map_err(|e| format!("could not apply conversion strategy to keys: {e}"))?;
        match self
            .spec
            .match_
            .secret_key
            .as_deref()
            .filter(|k| !k.is_empty())
        {
            Some(key) => converted
                .get(key)
                .cloned()
                .ok_or_else(|| format!("secret key {key} does not exist")),
            None => json_object(&converted),
        }
    }
}

fn json_object(data: &Data) -> Result<Vec<u8>, String> {
    let map: BTreeMap<&str, String> = data
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    serde_json::to_vec(&map).map_err(|e| e.to_string())
}

/// The keys of `data` converted by `strategy` (ESO's `ReverseKeys`); two keys converting to one
/// is an error naming it.
pub fn reverse_keys(strategy: PushSecretConversionStrategy, data: &Data) -> Result<Data, String> {
    if strategy == PushSecretConversionStrategy::None {
        return Ok(data.clone());
    }
    let mut out = Data::new();
    for (key, value) in data {
        let converted = reverse_unicode(key);
        if out.insert(converted.clone(), value.clone()).is_some() {
            return Err(format!(
                "secret name collision during conversion: {converted}"
            ));
        }
    }
    Ok(out)
}

/// Checks every `dataTo` rule's `storeRef` against `secretStoreRefs`, before anything is read
/// (ESO's `validateDataToStoreRefs`).
pub fn check_store_refs(spec: &PushSecretSpec) -> Result<(), String> {
    for (i, rule) in spec.data_to.iter().enumerate() {
        let reference = &rule.store_ref;
        match (named(reference), &reference.label_selector) {
            (Some(name), _) => {
                // A ref choosing stores by labels may choose this one too (ESO assumes so).
                let listed = spec.secret_store_refs.iter().any(|r| {
                    r.kind == reference.kind
                        && (named(r) == Some(name) || r.label_selector.is_some())
                });
                if !listed {
                    return Err(format!(
                        "dataTo[{i}]: storeRef {name:?} not found in secretStoreRefs"
                    ));
                }
            }
            (None, Some(_)) => {}
            (None, None) => {
                return Err(format!(
                    "dataTo[{i}]: storeRef must have name or labelSelector"
                ));
            }
        }
        if rule.remote_key.as_deref().is_some_and(|k| !k.is_empty()) && !rule.rewrite.is_empty() {
            return Err(format!(
                "dataTo[{i}]: remoteKey and rewrite are mutually exclusive: rewrite is only \
                 supported in per-key mode (without remoteKey)"
            ));
        }
        if let Some(pattern) = rule.match_.as_ref().and_then(|m| m.regexp.as_deref()) {
            GoRegexp::new(pattern).map_err(|e| {
                format!(
                    "dataTo[{i}]: match failed: failed to compile regexp pattern {pattern:?}: {e}"
                )
            })?;
        }
        KeyRewrites::compile(&rule.rewrite).map_err(|e| format!("dataTo[{i}]: {e}"))?;
    }
    Ok(())
}

/// Checks that every `dataTo` rule choosing stores by labels chooses one of `stores` (ESO's
/// `validateDataToMatchesResolvedStores`).
pub fn check_selected(spec: &PushSecretSpec, stores: &[StoreId<'_>]) -> Result<(), String> {
    for (i, rule) in spec.data_to.iter().enumerate() {
        if named(&rule.store_ref).is_none()
            && !stores.iter().any(|s| applies_to(&rule.store_ref, s))
        {
            return Err(format!(
                "dataTo[{i}]: labelSelector does not match any store in secretStoreRefs"
            ));
        }
    }
    Ok(())
}

fn named(reference: &PushSecretStoreRef) -> Option<&str> {
    reference.name.as_deref().filter(|n| !n.is_empty())
}

fn applies_to(reference: &PushSecretStoreRef, store: &StoreId<'_>) -> bool {
    reference.kind == store.kind
        && match (named(reference), &reference.label_selector) {
            (Some(name), _) => name == store.name,
            (None, Some(selector)) => selector_matches(selector, store.labels),
            (None, None) => false,
        }
}

/// Everything `spec` pushes to `store` from `data`: the expanded rules, then the explicit
/// entries. Entries are shaped as ESO shapes them: a rule's entry names the source key as its
/// conversion left it, with the rule's `conversionStrategy`; a bundle names none.
pub fn for_store(
    spec: &PushSecretSpec,
    store: &StoreId<'_>,
    data: &Data,
) -> Result<Vec<Entry>, String> {
    let mut expanded: Vec<Entry> = Vec::new();
    // Remote key → the rule and source key that produced it.
    let mut destinations: BTreeMap<String, String> = BTreeMap::new();
    for (i, rule) in spec.data_to.iter().enumerate() {
        if !applies_to(&rule.store_ref, store) {
            continue;
        }
        let entries =
            expand(rule, data).map_err(|e| format!("failed to expand dataTo: dataTo[{i}]: {e}"))?;
        for entry in entries {
            let source = match &entry.bundle {
                Some(_) => BUNDLE.to_owned(),
                None => entry.spec.match_.secret_key.clone().unwrap_or_default(),
            };
            let remote = &entry.spec.match_.remote_ref.remote_key;
            if let Some(other) =
                destinations.insert(remote.clone(), format!("dataTo[{i}]:{source}"))
            {
                return Err(format!(
                    "failed to expand dataTo: dataTo[{i}]: duplicate remote key {remote:?} from \
                     source key {source:?} (conflicts with {other})"
                ));
            }
            expanded.push(entry);
        }
    }

    // An explicit entry wins over a rule's naming the same source key (ESO compares the keys as
    // written: a bundle names none, and so does an explicit entry pushing the whole Secret).
    let secret_key = |d: &PushSecretData| d.match_.secret_key.clone().unwrap_or_default();
    let explicit: BTreeSet<String> = spec.data.iter().map(secret_key).collect();
    let mut entries: Vec<Entry> = expanded
        .into_iter()
        .filter(|entry| !explicit.contains(&secret_key(&entry.spec)))
        .collect();
    entries.extend(spec.data.iter().map(|d| Entry {
        spec: d.clone(),
        bundle: None,
    }));

    let mut seen: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for entry in &entries {
        let remote = &entry.spec.match_.remote_ref;
        let property = remote.property.as_deref().unwrap_or_default();
        let source = entry.spec.match_.secret_key.as_deref().unwrap_or_default();
        if let Some(first) = seen.insert((remote.remote_key.as_str(), property), source) {
            return Err(if property.is_empty() {
                format!(
                    "failed to merge data entries: duplicate remote key {:?}: source keys \
                     {first:?} and {source:?} both map to the same destination",
                    remote.remote_key
                )
            } else {
                format!(
                    "failed to merge data entries: duplicate remote key {:?} with property \
                     {property:?}: source keys {first:?} and {source:?} both map to the same \
                     destination",
                    remote.remote_key
                )
            });
        }
    }
    Ok(entries)
}

/// How a bundle is named in duplicate-destination messages (ESO's `bundleSourceKey`).
const BUNDLE: &str = "(bundle)";

/// One rule's entries.
fn expand(rule: &PushSecretDataTo, data: &Data) -> Result<Vec<Entry>, String> {
    let pattern = rule
        .match_
        .as_ref()
        .and_then(|m| m.regexp.as_deref())
        .filter(|p| !p.is_empty());
    let pattern = pattern
        .map(GoRegexp::new)
        .transpose()
        .map_err(|e| format!("match failed: failed to compile regexp pattern: {e}"))?;
    let converted = reverse_keys(rule.conversion_strategy, data)
        .map_err(|e| format!("conversion failed: {e}"))?;
    let matched: Data = converted
        .into_iter()
        .filter(|(key, _)| pattern.as_ref().is_none_or(|p| p.is_match(key)))
        .collect();
    if matched.is_empty() {
        return Ok(Vec::new());
    }
    let entry = |secret_key: &str, remote_key: String, strategy| PushSecretData {
        match_: PushSecretMatch {
            secret_key: Some(secret_key.to_owned()).filter(|k| !k.is_empty()),
            remote_ref: PushSecretRemoteRef {
                remote_key,
                property: None,
            },
        },
        metadata: rule.metadata.clone(),
        conversion_strategy: strategy,
    };
    if let Some(remote_key) = rule.remote_key.as_deref().filter(|k| !k.is_empty()) {
        return Ok(vec![Entry {
            spec: entry(
                "",
                remote_key.to_owned(),
                PushSecretConversionStrategy::None,
            ),
            bundle: Some(matched),
        }]);
    }
    let rewrites =
        KeyRewrites::compile(&rule.rewrite).map_err(|e| format!("rewrite failed: {e}"))?;
    let mut out = Vec::with_capacity(matched.len());
    for key in matched.keys() {
        let remote_key = rewrites
            .apply(key)
            .map_err(|e| format!("rewrite failed: {e}"))?;
        if remote_key.is_empty() {
            return Err(format!("empty remote key produced for source key {key:?}"));
        }
        out.push(Entry {
            spec: entry(key, remote_key, rule.conversion_strategy),
            bundle: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> PushSecretSpec {
        serde_json::from_value(value).expect("spec")
    }

    fn data(pairs: &[(&str, &str)]) -> Data {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    const NO_LABELS: &BTreeMap<String, String> = &BTreeMap::new();

    fn store(name: &str) -> StoreId<'_> {
        StoreId {
            kind: StoreKind::SecretStore,
            name,
            labels: NO_LABELS,
        }
    }

    fn remote_keys(entries: &[Entry]) -> Vec<(Option<&str>, &str)> {
        entries
            .iter()
            .map(|e| {
                (
                    e.spec.match_.secret_key.as_deref(),
                    e.spec.match_.remote_ref.remote_key.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn a_rule_pushes_each_matching_key_under_its_rewritten_name() {
        let spec = spec(json!({
            "secretStoreRefs": [{ "name": "aws" }],
            "selector": { "secret": { "name": "app" } },
            "dataTo": [{
                "storeRef": { "name": "aws" },
                "match": { "regexp": "^db-" },
                "rewrite": [
                    { "regexp": { "source": "^db-", "target": "app/db/" } },
                    { "transform": { "template": "{{ .value | upper }}" } }
                ]
            }]
        }));
        let data = data(&[("db-user", "u"), ("db-pass", "p"), ("api-key", "k")]);
        check_store_refs(&spec).expect("valid");
        let entries = for_store(&spec, &store("aws"), &data).expect("entries");
        assert_eq!(
            remote_keys(&entries),
            [
                (Some("db-pass"), "APP/DB/PASS"),
                (Some("db-user"), "APP/DB/USER")
            ]
        );
        assert_eq!(entries[0].value(&data).expect("value"), b"p");
        // Another store is not the rule's.
        assert!(
            for_store(&spec, &store("vault"), &data)
                .expect("entries")
                .is_empty()
        );
    }

    #[test]
    fn data_to_matches_and_rewrites_with_go_patterns() {
        // Go's `\w` is ASCII (the regex crate's takes "é"); `$01` names a missing group "01"
        // (the regex crate reads group 1) and `\Q...\E` quotes (the regex crate refuses it).
        let spec = spec(json!({
            "secretStoreRefs": [{ "name": "aws" }],
            "selector": { "secret": { "name": "app" } },
            "dataTo": [{
                "storeRef": { "name": "aws" },
                "match": { "regexp": r"^db-\w+$" },
                "rewrite": [{ "regexp": { "source": r"^\Qdb-\E(\w+)$", "target": "app/${1}$01" } }]
            }]
        }));
        let data = data(&[("db-user", "u"), ("db-é", "e")]);
        check_store_refs(&spec).expect("valid Go patterns");
        let entries = for_store(&spec, &store("aws"), &data).expect("entries");
        assert_eq!(remote_keys(&entries), [(Some("db-user"), "app/user")]);
    }

    #[test]
    fn a_bundle_pushes_the_matching_keys_as_one_json_object() {
        let spec = spec(json!({
            "secretStoreRefs": [{ "labelSelector": { "matchLabels": { "tier": "prod" } } }],
            "selector": { "secret": { "name": "app" } },
            "dataTo": [{
                "storeRef": { "labelSelector": { "matchLabels": { "tier": "prod" } } },
                "remoteKey": "app/all",
                "match": { "regexp": "pass|user" }
            }]
        }));
        let labels = BTreeMap::from([("tier".to_owned(), "prod".to_owned())]);
        let prod = StoreId {
            kind: StoreKind::SecretStore,
            name: "a",
            labels: &labels,
        };
        check_selected(&spec, &[prod]).expect("selected");
        let prod = StoreId {
            kind: StoreKind::SecretStore,
            name: "a",
            labels: &labels,
        };
        let data = data(&[("db-user", "u"), ("db-pass", "p"), ("api-key", "k")]);
        let entries = for_store(&spec, &prod, &data).expect("entries");
        assert_eq!(remote_keys(&entries), [(None, "app/all")]);
        assert_eq!(
            entries[0].value(&data).expect("value"),
            br#"{"db-pass":"p","db-user":"u"}"#
        );
        assert_eq!(
            check_selected(&spec, &[store("a")]),
            Err("dataTo[0]: labelSelector does not match any store in secretStoreRefs".into())
        );
    }

    #[test]
    fn an_explicit_entry_wins_and_two_entries_for_one_destination_are_refused() {
        let spec_ok = spec(json!({
            "secretStoreRefs": [{ "name": "aws" }],
            "selector": { "secret": { "name": "app" } },
            "data": [{ "match": { "secretKey": "a", "remoteRef": { "remoteKey": "explicit/a" } } }],
            "dataTo": [{ "storeRef": { "name": "aws" } }]
        }));
        let data = data(&[("a", "1"), ("b", "2")]);
        let entries = for_store(&spec_ok, &store("aws"), &data).expect("entries");
        assert_eq!(
            remote_keys(&entries),
            [(Some("b"), "b"), (Some("a"), "explicit/a")]
        );

        let clash = spec(json!({
            "secretStoreRefs": [{ "name": "aws" }],
            "selector": { "secret": { "name": "app" } },
            "data": [{ "match": { "secretKey": "a", "remoteRef": { "remoteKey": "b" } } }],
            "dataTo": [{ "storeRef": { "name": "aws" } }]
        }));
        assert_eq!(
            for_store(&clash, &store("aws"), &data),
            Err(
                "failed to merge data entries: duplicate remote key \"b\": source keys \"b\" \
                 and \"a\" both map to the same destination"
                    .into()
            )
        );
        let rewritten_clash = spec(json!({
            "secretStoreRefs": [{ "name": "aws" }],
            "selector": { "secret": { "name": "app" } },
            "dataTo": [{ "storeRef": { "name": "aws" },
                "rewrite": [{ "regexp": { "source": ".*", "target": "same" } }] }]
        }));
        let err = for_store(&rewritten_clash, &store("aws"), &data).expect_err("clash");
        assert!(
            err.starts_with("failed to expand dataTo: dataTo[0]: duplicate remote key \"same\""),
            "{err}"
        );
    }

    #[test]
    fn bad_rules_are_refused_before_anything_is_read() {
        let cases = [
            (
                json!({ "storeRef": { "name": "other" } }),
                "dataTo[0]: storeRef \"other\" not found in secretStoreRefs",
            ),
            (
                json!({ "storeRef": {} }),
                "dataTo[0]: storeRef must have name or labelSelector",
            ),
            (
                json!({ "storeRef": { "name": "aws" }, "remoteKey": "k",
                    "rewrite": [{ "regexp": { "source": "a", "target": "b" } }] }),
                "dataTo[0]: remoteKey and rewrite are mutually exclusive",
            ),
            (
                json!({ "storeRef": { "name": "aws" }, "match": { "regexp": "(" } }),
                "dataTo[0]: match failed: failed to compile regexp pattern \"(\"",
            ),
            (
                json!({ "storeRef": { "name": "aws" },
                    "rewrite": [{ "transform": { "template": "{{ .value" } }] }),
                "dataTo[0]: rewrite[0]: invalid template",
            ),
        ];
        for (rule, message) in cases {
            let spec = spec(json!({
                "secretStoreRefs": [{ "name": "aws" }],
                "selector": { "secret": { "name": "app" } },
                "dataTo": [rule]
            }));
            let err = check_store_refs(&spec).expect_err(message);
            assert!(err.starts_with(message), "{err} is not {message}");
        }
    }

    #[test]
    fn reverse_unicode_turns_escapes_back_into_characters() {
        let data = data(&[("user_U0020_name", "alice"), ("tls.crt", "c")]);
        let entry = Entry {
            spec: serde_json::from_value(json!({
                "match": { "secretKey": "user name", "remoteRef": { "remoteKey": "k" } },
                "conversionStrategy": "ReverseUnicode"
            }))
            .expect("entry"),
            bundle: None,
        };
        assert_eq!(entry.value(&data).expect("value"), b"alice");
        let whole = Entry {
            spec: serde_json::from_value(json!({
                "match": { "remoteRef": { "remoteKey": "k" } },
                "conversionStrategy": "ReverseUnicode"
            }))
            .expect("entry"),
            bundle: None,
        };
        assert_eq!(
            whole.value(&data).expect("value"),
            br#"{"tls.crt":"c","user name":"alice"}"#
        );
        let clash = data_with_clash();
        assert_eq!(
            whole.value(&clash),
            Err(
                "could not apply conversion strategy to keys: secret name collision during \
                 conversion: a b"
                    .into()
            )
        );
    }

    #[test]
    fn reverse_unicode_reads_four_or_five_digits() {
        assert_eq!(reverse_unicode("a_U0020_b_U1f600_c"), "a b\u{1f600}c");
        // A surrogate names no character: Go's %c prints U+FFFD. Too few digits is no escape.
        assert_eq!(reverse_unicode("x_Ud800_y_U20_"), "x\u{fffd}y_U20_");
    }

    #[test]
    fn a_converting_rule_names_converted_keys_and_an_explicit_entry_for_one_wins() {
        let spec = spec(json!({
            "secretStoreRefs": [{ "labelSelector": { "matchLabels": { "a": "b" } } }],
            "selector": { "secret": { "name": "app" } },
            "data": [{ "match": { "secretKey": "user name", "remoteRef": { "remoteKey": "explicit" } },
                       "conversionStrategy": "ReverseUnicode" }],
            "dataTo": [{ "storeRef": { "name": "aws" }, "conversionStrategy": "ReverseUnicode" }]
        }));
        // A named storeRef is accepted beside a ref choosing by labels, as ESO accepts it.
        check_store_refs(&spec).expect("valid");
        let data = data(&[("user_U0020_name", "alice"), ("api_U0020_key", "k")]);
        let entries = for_store(&spec, &store("aws"), &data).expect("entries");
        assert_eq!(
            remote_keys(&entries),
            [
                (Some("api key"), "api key"),
                (Some("user name"), "explicit")
            ]
        );
        assert_eq!(
            entries[0].spec.conversion_strategy,
            PushSecretConversionStrategy::ReverseUnicode
        );
        assert_eq!(entries[0].value(&data).expect("value"), b"k");
    }

    fn data_with_clash() -> Data {
        data(&[("a b", "1"), ("a_U0020_b", "2")])
    }
}
