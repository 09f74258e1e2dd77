//! One Go pattern, one meaning: the secrets a `find.name.regexp` fetches are exactly the
//! secrets whose changes wake its ExternalSecret. Fetch (the fake provider's `find`) and event
//! matching (the resolve stage's compiled `find`, which every provider kind's change rule and
//! the read index ask) both read the pattern through `secret_sync_gosem`, so a pattern whose
//! meaning differs between Go and the `regex` crate cannot make them disagree.

use secret_sync::resolve::find_matcher;
use secret_sync_crd::provider::{FakeProvider, FakeProviderData};
use secret_sync_crd::{ExternalSecretFind, FindName};
use secret_sync_providers::fake::FakeClient;
use secret_sync_providers::{Find, Provider};

const KEYS: [&str; 6] = ["db-3", "db-٣", "db-é", "db-e", "db-[", "db-&"];

async fn fetched(pattern: &str) -> Vec<String> {
    let client = FakeClient::new(&FakeProvider {
        data: KEYS
            .iter()
            .map(|key| FakeProviderData {
                key: (*key).into(),
                value: Some("v".into()),
                ..Default::default()
            })
            .collect(),
        validation_result: None,
    });
    let find = Find {
        name_regexp: Some(pattern.into()),
        ..Default::default()
    };
    match client.find(&find).await {
        Ok(found) => found.into_keys().collect(),
        Err(e) => panic!("{pattern:?}: {e}"),
    }
}

fn woken_by(pattern: &str) -> Vec<String> {
    let find = find_matcher(&ExternalSecretFind {
        name: Some(FindName {
            regexp: Some(pattern.into()),
        }),
        ..Default::default()
    });
    let mut keys: Vec<String> = KEYS
        .iter()
        .filter(|key| find.may_select_key(key))
        .map(|key| (*key).to_owned())
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn fetch_and_event_matching_select_the_same_keys_for_go_patterns() {
    // Each pattern means something else to the regex crate: Unicode `\d` and `\w`, a nested
    // class for `[[]`, an intersection for `&&`.
    let cases: [(&str, &[&str]); 4] = [
        (r"^db-\d$", &["db-3"]),
        (r"^db-\w$", &["db-3", "db-e"]),
        (r"^db-[[]$", &["db-["]),
        (r"^db-[e&&x]$", &["db-&", "db-e"]),
    ];
    for (pattern, want) in cases {
        assert_eq!(fetched(pattern).await, want, "fetch, {pattern:?}");
        assert_eq!(woken_by(pattern), want, "events, {pattern:?}");
    }
}
