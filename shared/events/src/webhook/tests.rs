use serde_json::{Value, json};

use super::*;
use crate::test_support::{
    Rng, assert_no_leak, byte_mutations, field_replacements, forbidden_strings, to_json,
};

macro_rules! sample {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!("../../../../events/webhook/", $file)),
        )
    };
}

const PLAIN: (&str, &str) = sample!("plain.json");
const CLOUDEVENT: (&str, &str) = sample!("cloudevent.json");
const README: &str = include_str!("../../../../events/webhook/README.md");

const ALL: [(&str, &str); 2] = [PLAIN, CLOUDEVENT];

const SECRET: &[u8] = b"whsec-test-key";
const NOW: i64 = 1_767_225_600;
const TS: &str = "1767225600";
const BODY: &[u8] = br#"{"store":{"kind":"ClusterSecretStore","name":"vault"},"keys":["prod/db"]}"#;

fn verifier() -> Verifier {
    Verifier::new(vec![SECRET.to_vec()], DEFAULT_REPLAY_WINDOW_SECS)
}

fn verify(timestamp: &str, signature: &str, body: &[u8], now: i64) -> Result<(), SignatureError> {
    verifier().verify(
        Some(timestamp.as_bytes()),
        Some(signature.as_bytes()),
        body,
        now,
    )
}

// ---- sign ---------------------------------------------------------------------------------

#[test]
fn sign_matches_vectors_computed_with_openssl() {
    // printf '%s' '1767225600.{"store":…}' | openssl dgst -sha256 -hmac 'whsec-test-key'
    assert_eq!(
        sign(SECRET, TS, BODY),
        "v1=ad32e35adb33d79a02adbfe915a14d25364804211829c31cce15fb4e448b1c60"
    );
    // … -hmac 'rotated-key'
    assert_eq!(
        sign(b"rotated-key", TS, BODY),
        "v1=4e71e7ef8b8495c9ec91e3535732c54f0f4673cf54309eb40e19e82761f5ccb1"
    );
    // printf '%s' '1767225600.' | openssl dgst -sha256 -hmac 'whsec-test-key': an empty body.
    assert_eq!(
        sign(SECRET, TS, b""),
        "v1=e35f4425a001588a0495d57a92700f02d60541a6134c7317f19e62c467c3c5ad"
    );
    // The payload is timestamp, `.`, body: HMAC-SHA256("key", "The quick brown fox jumps over
    // the lazy dog.").
    assert_eq!(
        sign(b"key", "The quick brown fox jumps over the lazy dog", b""),
        "v1=e98139c39d76eb80d8db982552b44b251b94f312987f91ee72d12ef673caa813"
    );
}

#[test]
fn the_readme_signatures_of_the_samples_match() {
    for (file, json) in ALL {
        let expected = sign(b"change-me", TS, json.as_bytes());
        let row = README
            .lines()
            .find(|line| line.starts_with(&format!("| `{file}` | `v1=")))
            .unwrap_or_else(|| panic!("the README has a signature row for {file}"));
        assert!(row.contains(&format!("`{expected}`")), "{file}: {row}");
    }
}

#[test]
fn sign_is_lowercase_hex_and_verifies() {
    let header = sign(SECRET, TS, BODY);
    let hex = header.strip_prefix("v1=").expect("the v1 scheme");
    assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    assert_eq!(verify(TS, &header, BODY, NOW), Ok(()));
}

// ---- verify -------------------------------------------------------------------------------

#[test]
fn a_good_signature_verifies() {
    assert_eq!(verify(TS, &sign(SECRET, TS, BODY), BODY, NOW), Ok(()));
    // An empty body is a body like any other.
    assert_eq!(verify(TS, &sign(SECRET, TS, b""), b"", NOW), Ok(()));
}

#[test]
fn each_signature_error() {
    let v = verifier();
    let good = sign(SECRET, TS, BODY);
    let good = good.as_bytes();
    let ts = TS.as_bytes();
    assert_eq!(
        v.verify(None, Some(good), BODY, NOW),
        Err(SignatureError::MissingTimestamp)
    );
    for bad in [
        "",
        " 1767225600",
        "1767225600 ",
        "+1767225600",
        "-1",
        "1767225600.5",
        "17e8",
        "99999999999999999999",
        "٣",
    ] {
        assert_eq!(
            v.verify(Some(bad.as_bytes()), Some(good), BODY, NOW),
            Err(SignatureError::MalformedTimestamp),
            "{bad:?}"
        );
    }
    assert_eq!(
        v.verify(Some(ts), None, BODY, NOW),
        Err(SignatureError::MissingSignature)
    );
    let hex = &sign(SECRET, TS, BODY)[3..];
    for bad in [
        String::new(),
        " , ".to_owned(),
        hex.to_owned(),
        format!("v0={hex}"),
        format!("v1={}", &hex[..63]),
        format!("v1={hex}0"),
        format!("v1={}g", &hex[..63]),
        format!("v1={hex},garbage"),
        format!("v1=,v1={hex}"),
        format!("{}v1={hex}", " ".repeat(MAX_SIGNATURE_HEADER_BYTES)),
        vec![format!("v1={hex}"); MAX_SIGNATURES + 1].join(","),
    ] {
        assert_eq!(
            v.verify(Some(ts), Some(bad.as_bytes()), BODY, NOW),
            Err(SignatureError::MalformedSignature),
            "{bad:?}"
        );
    }
    assert_eq!(
        v.verify(Some(ts), Some(b"v1=\xff"), BODY, NOW),
        Err(SignatureError::MalformedSignature)
    );
    assert_eq!(
        v.verify(
            Some(ts),
            Some(sign(b"other", TS, BODY).as_bytes()),
            BODY,
            NOW
        ),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        v.verify(Some(b"1767225000"), Some(good), BODY, NOW),
        Err(SignatureError::Mismatch),
        "the timestamp is signed"
    );
    let stale = "1767225000";
    assert_eq!(
        v.verify(
            Some(stale.as_bytes()),
            Some(sign(SECRET, stale, BODY).as_bytes()),
            BODY,
            NOW
        ),
        Err(SignatureError::OutsideWindow)
    );
}

#[test]
fn signature_entries_tolerate_spaces_other_schemes_and_upper_case() {
    let header = sign(SECRET, TS, BODY);
    let hex = &header[3..];
    for good in [
        format!(" v1={hex} "),
        format!("v0=abc, v1={hex}"),
        format!("v1={hex},"),
        format!("v2=future,v1 = {hex}"),
        format!("v1={}", hex.to_ascii_uppercase()),
        vec![format!("v1={hex}"); MAX_SIGNATURES].join(","),
    ] {
        assert_eq!(verify(TS, &good, BODY, NOW), Ok(()), "{good:?}");
    }
}

#[test]
fn rotation_on_either_side_verifies() {
    let old = b"old-secret".to_vec();
    let new = b"new-secret".to_vec();
    // The receiver holds two secrets; the sender signs with either.
    let receiver = Verifier::new(vec![old.clone(), new.clone()], 300);
    for secret in [&old, &new] {
        let header = sign(secret, TS, BODY);
        assert_eq!(
            receiver.verify(Some(TS.as_bytes()), Some(header.as_bytes()), BODY, NOW),
            Ok(())
        );
    }
    // The sender signs with two secrets; the receiver holds either.
    let header = format!("{},{}", sign(&old, TS, BODY), sign(&new, TS, BODY));
    for secret in [&old, &new] {
        let receiver = Verifier::new(vec![secret.clone()], 300);
        assert_eq!(
            receiver.verify(Some(TS.as_bytes()), Some(header.as_bytes()), BODY, NOW),
            Ok(())
        );
    }
    // Neither.
    let receiver = Verifier::new(vec![b"third".to_vec()], 300);
    assert_eq!(
        receiver.verify(Some(TS.as_bytes()), Some(header.as_bytes()), BODY, NOW),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn the_window_is_inclusive_in_both_directions() {
    let header = sign(SECRET, TS, BODY);
    let window = i64::try_from(DEFAULT_REPLAY_WINDOW_SECS).expect("fits");
    for now in [NOW, NOW - window, NOW + window] {
        assert_eq!(verify(TS, &header, BODY, now), Ok(()), "{now}");
    }
    for now in [NOW - window - 1, NOW + window + 1, i64::MIN, i64::MAX, 0] {
        assert_eq!(
            verify(TS, &header, BODY, now),
            Err(SignatureError::OutsideWindow),
            "{now}"
        );
    }
    // A zero window accepts only the same second; a huge one never overflows.
    let exact = Verifier::new(vec![SECRET.to_vec()], 0);
    let check =
        |v: &Verifier, now| v.verify(Some(TS.as_bytes()), Some(header.as_bytes()), BODY, now);
    assert_eq!(check(&exact, NOW), Ok(()));
    assert_eq!(check(&exact, NOW + 1), Err(SignatureError::OutsideWindow));
    let forever = Verifier::new(vec![SECRET.to_vec()], u64::MAX);
    assert_eq!(check(&forever, i64::MIN), Ok(()));
    assert_eq!(check(&forever, i64::MAX), Ok(()));
}

#[test]
fn any_bit_flip_in_the_body_is_a_mismatch() {
    let header = sign(SECRET, TS, BODY);
    for at in 0..BODY.len() {
        for bit in 0..8 {
            let mut body = BODY.to_vec();
            body[at] ^= 1 << bit;
            assert_eq!(
                verify(TS, &header, &body, NOW),
                Err(SignatureError::Mismatch),
                "byte {at} bit {bit}"
            );
        }
    }
    let mut longer = BODY.to_vec();
    longer.push(b'\n');
    assert_eq!(
        verify(TS, &header, &longer, NOW),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(TS, &header, &BODY[1..], NOW),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn any_bit_flip_in_the_signature_is_a_mismatch_or_malformed() {
    let header = sign(SECRET, TS, BODY);
    for at in 3..header.len() {
        for bit in 0..8 {
            let mut bytes = header.clone().into_bytes();
            bytes[at] ^= 1 << bit;
            let result = verifier().verify(Some(TS.as_bytes()), Some(&bytes), BODY, NOW);
            if bytes[at].eq_ignore_ascii_case(&header.as_bytes()[at]) {
                // Hex digits are read in either case.
                assert_eq!(result, Ok(()));
                continue;
            }
            assert!(
                matches!(
                    result,
                    Err(SignatureError::Mismatch | SignatureError::MalformedSignature)
                ),
                "byte {at} bit {bit}: {result:?}"
            );
        }
    }
}

#[test]
fn empty_secrets_are_dropped_and_no_secret_accepts_nothing() {
    let v = Verifier::new(vec![Vec::new(), SECRET.to_vec(), Vec::new()], 300);
    assert_eq!(v.secret_count(), 1);
    let none = Verifier::new(vec![Vec::new()], 300);
    assert_eq!(none.secret_count(), 0);
    let header = sign(b"", TS, BODY);
    assert_eq!(
        none.verify(Some(TS.as_bytes()), Some(header.as_bytes()), BODY, NOW),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        Verifier::new(Vec::new(), 300).verify(
            Some(TS.as_bytes()),
            Some(header.as_bytes()),
            BODY,
            NOW
        ),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn debug_does_not_print_secrets() {
    let v = Verifier::new(
        vec![b"hunter2-secret".to_vec(), b"other-secret".to_vec()],
        300,
    );
    let debug = format!("{v:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains("104"), "no bytes either: {debug}");
    assert_eq!(
        debug,
        "Verifier { secrets: <2 redacted>, window_secs: 300 }"
    );
}

#[test]
fn errors_have_fixed_messages_and_metric_labels() {
    let all = [
        (SignatureError::MissingTimestamp, "missing_timestamp"),
        (SignatureError::MalformedTimestamp, "malformed_timestamp"),
        (SignatureError::OutsideWindow, "outside_window"),
        (SignatureError::MissingSignature, "missing_signature"),
        (SignatureError::MalformedSignature, "malformed_signature"),
        (SignatureError::Mismatch, "mismatch"),
    ];
    for (error, label) in all {
        assert_eq!(error.metric_label(), label);
        assert!(!error.to_string().is_empty());
    }
}

// ---- bodies -------------------------------------------------------------------------------

fn parse(value: &Value) -> Result<WebhookChange, ParseError> {
    parse_webhook_body(to_json(value).as_bytes())
}

fn cluster_store(name: &str) -> StoreName {
    StoreName {
        kind: StoreKindName::ClusterSecretStore,
        name: name.into(),
        namespace: None,
    }
}

#[test]
fn the_plain_sample_names_a_cluster_store_and_two_keys() {
    assert_eq!(
        parse_webhook_body(PLAIN.1.as_bytes()),
        Ok(WebhookChange {
            store: cluster_store("vault"),
            keys: vec!["prod/db-credentials".into(), "prod/api-token".into()],
            id: Some("rotate-db-2026-09-09T06:14:02Z".into()),
        })
    );
}

#[test]
fn the_cloudevent_sample_names_a_namespaced_store_and_takes_the_event_id() {
    assert_eq!(
        parse_webhook_body(CLOUDEVENT.1.as_bytes()),
        Ok(WebhookChange {
            store: StoreName {
                kind: StoreKindName::SecretStore,
                name: "aws-secrets".into(),
                namespace: Some("payments".into()),
            },
            keys: vec!["payments/stripe-api-key".into()],
            id: Some("8c1e2f4a-6b3d-4e5f-9a7b-0c1d2e3f4a5b".into()),
        })
    );
}

#[test]
fn the_kind_defaults_to_secret_store_and_keys_to_the_whole_store() {
    let c = parse(&json!({"store": {"name": "aws", "namespace": "team-a"}})).expect("parses");
    assert_eq!(c.store.kind, StoreKindName::SecretStore);
    assert_eq!(c.store.namespace.as_deref(), Some("team-a"));
    assert_eq!((c.keys.len(), c.id), (0, None));
    for keys in [json!([]), Value::Null] {
        let c =
            parse(&json!({"store": {"kind": "ClusterSecretStore", "name": "vault"}, "keys": keys}))
                .expect("parses");
        assert!(c.keys.is_empty());
    }
    // A null kind or namespace reads as absent; an empty id as none.
    let c = parse(&json!({"store": {"kind": null, "name": "a", "namespace": "b"}, "id": ""}))
        .expect("parses");
    assert_eq!((c.store.kind, c.id), (StoreKindName::SecretStore, None));
    let c =
        parse(&json!({"store": {"kind": "ClusterSecretStore", "name": "a", "namespace": null}}))
            .expect("parses");
    assert_eq!(c.store, cluster_store("a"));
    assert_eq!(StoreKindName::SecretStore.as_str(), "SecretStore");
    assert_eq!(
        StoreKindName::ClusterSecretStore.as_str(),
        "ClusterSecretStore"
    );
}

#[test]
fn duplicate_keys_are_dropped_in_order_and_unknown_fields_ignored() {
    let c = parse(&json!({
        "store": {"kind": "ClusterSecretStore", "name": "vault", "extra": 1},
        "keys": ["b", "a", "b", "c", "a"],
        "reason": "rotation",
    }))
    .expect("parses");
    assert_eq!(c.keys, ["b", "a", "c"]);
}

#[test]
fn store_names_and_namespaces_follow_kubernetes_rules() {
    let named = |name: &str, namespace: &str| {
        parse(&json!({"store": {"name": name, "namespace": namespace}}))
    };
    for name in ["a", "vault", "my-store.v2", "0x", &"a".repeat(253), "a.b.c"] {
        assert!(named(name, "ns").is_ok(), "{name}");
    }
    for (name, problem) in [
        ("", "empty"),
        (&*"a".repeat(254), "longer than 253 characters"),
        (
            "Vault",
            "not a Kubernetes name (lowercase letters, digits, '-', '.')",
        ),
        (
            "-a",
            "not a Kubernetes name (lowercase letters, digits, '-', '.')",
        ),
        (
            "a-",
            "not a Kubernetes name (lowercase letters, digits, '-', '.')",
        ),
        (
            "a..b",
            "not a Kubernetes name (lowercase letters, digits, '-', '.')",
        ),
        (
            ".a",
            "not a Kubernetes name (lowercase letters, digits, '-', '.')",
        ),
        (
            "a_b",
            "not a Kubernetes name (lowercase letters, digits, '-', '.')",
        ),
        (
            "a/b",
            "not a Kubernetes name (lowercase letters, digits, '-', '.')",
        ),
        (
            "é",
            "not a Kubernetes name (lowercase letters, digits, '-', '.')",
        ),
    ] {
        assert_eq!(
            named(name, "ns"),
            Err(ParseError::Invalid {
                field: "store.name",
                problem
            }),
            "{name}"
        );
    }
    for namespace in ["a", "team-a", "0", &"a".repeat(63)] {
        assert!(named("s", namespace).is_ok(), "{namespace}");
    }
    for (namespace, problem) in [
        ("", "empty"),
        (&*"a".repeat(64), "longer than 63 characters"),
        (
            "team.a",
            "not a Kubernetes namespace name (lowercase letters, digits, '-')",
        ),
        (
            "Team",
            "not a Kubernetes namespace name (lowercase letters, digits, '-')",
        ),
        (
            "-a",
            "not a Kubernetes namespace name (lowercase letters, digits, '-')",
        ),
    ] {
        assert_eq!(
            named("s", namespace),
            Err(ParseError::Invalid {
                field: "store.namespace",
                problem
            }),
            "{namespace}"
        );
    }
}

#[test]
fn key_limits() {
    let with_keys = |keys: Value| {
        parse(&json!({"store": {"kind": "ClusterSecretStore", "name": "v"}, "keys": keys}))
    };
    let many: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    assert_eq!(with_keys(json!(many)).expect("parses").keys.len(), 1000);
    let too_many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    assert_eq!(
        with_keys(json!(too_many)),
        Err(ParseError::Invalid {
            field: "keys",
            problem: "more than 1000 keys"
        })
    );
    assert!(with_keys(json!(["k".repeat(1024)])).is_ok());
    assert_eq!(
        with_keys(json!(["k".repeat(1025)])),
        Err(ParseError::Invalid {
            field: "keys[]",
            problem: "longer than 1024 bytes"
        })
    );
    assert_eq!(
        with_keys(json!(["a", ""])),
        Err(ParseError::Invalid {
            field: "keys[]",
            problem: "empty"
        })
    );
    assert_eq!(
        with_keys(json!(["a", 7])),
        Err(ParseError::WrongType {
            field: "keys[]",
            expected: "a string"
        })
    );
    assert_eq!(
        with_keys(json!("prod/db")),
        Err(ParseError::WrongType {
            field: "keys",
            expected: "an array"
        })
    );
}

#[test]
fn malformed_plain_bodies_are_errors_that_name_the_field() {
    let cases = [
        (
            json!([]),
            ParseError::WrongType {
                field: "webhook body",
                expected: "an object",
            },
        ),
        (json!({}), ParseError::Missing { field: "store" }),
        (
            json!({"store": "vault"}),
            ParseError::WrongType {
                field: "store",
                expected: "an object",
            },
        ),
        (
            json!({"store": {"kind": "ClusterSecretStore"}}),
            ParseError::Missing {
                field: "store.name",
            },
        ),
        (
            json!({"store": {"kind": "ClusterSecretStore", "name": 1}}),
            ParseError::WrongType {
                field: "store.name",
                expected: "a string",
            },
        ),
        (
            json!({"store": {"kind": "Vault", "name": "v"}}),
            ParseError::Invalid {
                field: "store.kind",
                problem: "not SecretStore or ClusterSecretStore",
            },
        ),
        (
            json!({"store": {"kind": "secretstore", "name": "v", "namespace": "n"}}),
            ParseError::Invalid {
                field: "store.kind",
                problem: "not SecretStore or ClusterSecretStore",
            },
        ),
        (
            json!({"store": {"kind": 1, "name": "v"}}),
            ParseError::WrongType {
                field: "store.kind",
                expected: "a string",
            },
        ),
        (
            json!({"store": {"name": "v"}}),
            ParseError::Missing {
                field: "store.namespace",
            },
        ),
        (
            json!({"store": {"kind": "SecretStore", "name": "v", "namespace": 3}}),
            ParseError::WrongType {
                field: "store.namespace",
                expected: "a string",
            },
        ),
        (
            json!({"store": {"kind": "ClusterSecretStore", "name": "v", "namespace": "n"}}),
            ParseError::Invalid {
                field: "store.namespace",
                problem: "not allowed for a ClusterSecretStore",
            },
        ),
        (
            json!({"store": {"kind": "ClusterSecretStore", "name": "v"}, "id": 5}),
            ParseError::WrongType {
                field: "id",
                expected: "a string",
            },
        ),
        (
            json!({"store": {"kind": "ClusterSecretStore", "name": "v"}, "id": "i".repeat(1025)}),
            ParseError::Invalid {
                field: "id",
                problem: "longer than 1024 bytes",
            },
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(parse(&body), Err(expected), "{body}");
    }
    assert!(matches!(
        parse_webhook_body(b""),
        Err(ParseError::Json { .. })
    ));
    assert!(matches!(
        parse_webhook_body(b"store=vault"),
        Err(ParseError::Json { .. })
    ));
}

#[test]
fn malformed_cloudevents_are_errors_that_name_the_field() {
    let good: Value = serde_json::from_str(CLOUDEVENT.1).expect("the sample is JSON");
    let with = |key: &str, value: Value| {
        let mut event = good.clone();
        event[key] = value;
        parse(&event)
    };
    let without = |key: &str| {
        let mut event = good.clone();
        event.as_object_mut().expect("object").remove(key);
        parse(&event)
    };
    assert_eq!(
        with("specversion", json!("0.3")),
        Err(ParseError::Invalid {
            field: "specversion",
            problem: "not 1.0"
        })
    );
    assert_eq!(
        with("specversion", json!(1.0)),
        Err(ParseError::WrongType {
            field: "specversion",
            expected: "a string"
        })
    );
    assert_eq!(
        with("specversion", Value::Null),
        Err(ParseError::Missing {
            field: "specversion"
        })
    );
    for field in ["id", "source", "type"] {
        assert_eq!(
            without(field),
            Err(ParseError::Missing { field }),
            "{field}"
        );
        assert_eq!(
            with(field, json!(1)),
            Err(ParseError::WrongType {
                field,
                expected: "a string"
            }),
            "{field}"
        );
        assert_eq!(
            with(field, json!("")),
            Err(ParseError::Invalid {
                field,
                problem: "empty"
            }),
            "{field}"
        );
    }
    assert_eq!(
        with("id", json!("i".repeat(1025))),
        Err(ParseError::Invalid {
            field: "id",
            problem: "longer than 1024 bytes"
        })
    );
    for bad in [
        "text/plain",
        "application/xml",
        "application/cloudevents",
        "json",
        "",
        "+json",
    ] {
        assert_eq!(
            with("datacontenttype", json!(bad)),
            Err(ParseError::Invalid {
                field: "datacontenttype",
                problem: "not application/json or +json"
            }),
            "{bad}"
        );
    }
    for ok in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/cloudevents+json",
        "application/vnd.secret-sync.v1+json",
    ] {
        assert!(with("datacontenttype", json!(ok)).is_ok(), "{ok}");
    }
    assert!(without("datacontenttype").is_ok());
    assert!(with("datacontenttype", Value::Null).is_ok());
    assert_eq!(
        with("datacontenttype", json!(["application/json"])),
        Err(ParseError::WrongType {
            field: "datacontenttype",
            expected: "a string"
        })
    );
    assert_eq!(without("data"), Err(ParseError::Missing { field: "data" }));
    assert_eq!(
        with("data", json!("eyJzdG9yZSI6e319")),
        Err(ParseError::WrongType {
            field: "data",
            expected: "an object"
        })
    );
    // The data's own fields are named under `data`.
    let mut event = good.clone();
    event["data"]["store"]["name"] = json!("Bad");
    assert_eq!(
        parse(&event),
        Err(ParseError::Invalid {
            field: "data.store.name",
            problem: "not a Kubernetes name (lowercase letters, digits, '-', '.')"
        })
    );
    event["data"] = json!({"keys": []});
    assert_eq!(
        parse(&event),
        Err(ParseError::Missing {
            field: "data.store"
        })
    );
    event["data"] = json!({"store": {"kind": "ClusterSecretStore", "name": "v"}, "keys": [1]});
    assert_eq!(
        parse(&event),
        Err(ParseError::WrongType {
            field: "data.keys[]",
            expected: "a string"
        })
    );
    // A top-level `store` does not count in a CloudEvent.
    let mut event = good.clone();
    event["store"] = json!({"kind": "ClusterSecretStore", "name": "other"});
    assert_eq!(parse(&event).expect("parses").store.name, "aws-secrets");
}

#[test]
fn bodies_over_the_limit_are_rejected_before_parsing() {
    let mut body = PLAIN.1.trim_end().to_owned();
    body.push_str(&" ".repeat(MAX_WEBHOOK_BODY_BYTES + 1 - body.len()));
    assert_eq!(
        parse_webhook_body(body.as_bytes()),
        Err(ParseError::TooLarge {
            what: "webhook body",
            len: MAX_WEBHOOK_BODY_BYTES + 1,
            max: MAX_WEBHOOK_BODY_BYTES
        })
    );
    body.pop();
    assert!(parse_webhook_body(body.as_bytes()).is_ok());
}

#[test]
fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
    let body = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    assert!(matches!(
        parse_webhook_body(body.as_bytes()),
        Err(ParseError::Json { .. })
    ));
}

// ---- no panic, no leak: every sample, mutated ----------------------------------------------

const CANARY: &str = "CANARY-hunter2-prod/db-credentials";

fn forbidden() -> Vec<String> {
    let samples: Vec<&str> = ALL.iter().map(|(_, json)| *json).collect();
    forbidden_strings(
        &samples,
        &[CANARY],
        &[
            "store",
            "kind",
            "name",
            "namespace",
            "keys",
            "specversion",
            "type",
            "source",
            "datacontenttype",
            "data",
            "SecretStore",
            "ClusterSecretStore",
            "application/json",
        ],
    )
}

fn feed(bytes: &[u8], forbidden: &[String]) -> bool {
    match parse_webhook_body(bytes) {
        Ok(_) => false,
        Err(error) => {
            assert_no_leak(&error, forbidden);
            true
        }
    }
}

#[test]
fn the_leak_check_forbids_the_names_keys_and_ids_of_the_samples() {
    let forbidden = forbidden();
    for s in [
        CANARY,
        "vault",
        "prod/db-credentials",
        "aws-secrets",
        "payments",
        "8c1e2f4a-6b3d-4e5f-9a7b-0c1d2e3f4a5b",
        "https://ci.example.com/pipelines/rotate-payments",
    ] {
        assert!(forbidden.iter().any(|f| f == s), "{s}");
    }
}

#[test]
fn every_truncation_of_every_sample_is_handled_without_panic_or_leak() {
    let forbidden = forbidden();
    let mut errors = 0;
    for (_, json) in ALL {
        let json = json.trim_end();
        for end in 0..json.len() {
            errors += usize::from(feed(&json.as_bytes()[..end], &forbidden));
        }
    }
    assert!(errors > 0);
}

#[test]
fn random_byte_mutations_of_every_sample_are_handled_without_panic_or_leak() {
    let forbidden = forbidden();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for (_, json) in ALL {
        for bytes in byte_mutations(json.as_bytes(), 1000, &mut rng) {
            feed(&bytes, &forbidden);
        }
    }
}

#[test]
fn every_field_of_every_sample_replaced_by_every_type_is_handled_without_panic_or_leak() {
    let forbidden = forbidden();
    let replacements = [
        Value::Null,
        json!(true),
        json!(42),
        json!(-1.5e300),
        json!(""),
        json!("1.0"),
        json!("ClusterSecretStore"),
        json!(CANARY),
        json!([]),
        json!([CANARY, {"name": CANARY}]),
        json!({}),
        json!({CANARY: CANARY, "name": CANARY, "namespace": CANARY, "kind": CANARY}),
    ];
    let mut errors = 0;
    for (_, json) in ALL {
        for mutated in field_replacements(json, &replacements) {
            errors += usize::from(feed(mutated.as_bytes(), &forbidden));
        }
    }
    assert!(errors > 0);
}

#[test]
fn random_headers_never_panic_and_errors_hold_nothing_of_them() {
    let v = verifier();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let header = sign(SECRET, TS, BODY);
    let forbidden = [TS.to_owned(), header[3..].to_owned(), "hunter2".to_owned()];
    for timestamp in byte_mutations(TS.as_bytes(), 300, &mut rng) {
        for signature in byte_mutations(header.as_bytes(), 3, &mut rng) {
            if let Err(error) = v.verify(Some(&timestamp), Some(&signature), BODY, NOW) {
                assert_no_leak(&error, &forbidden);
            }
        }
    }
}
