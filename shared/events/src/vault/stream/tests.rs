use serde_json::{Value, json};

use super::*;
use crate::test_support::{
    Rng, assert_no_leak, byte_mutations, field_replacements, forbidden_strings, to_json,
};

macro_rules! sample {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!("../../../../../events/vault/", $file)),
        )
    };
}

const KV2_WRITE: (&str, &str) = sample!("stream-kv2-data-write.json");
const KV1_WRITE: (&str, &str) = sample!("stream-kv1-write.json");
const KV2_DESTROY_NS: (&str, &str) = sample!("stream-kv2-destroy-ns.json");
const KV2_METADATA_DELETE: (&str, &str) = sample!("stream-kv2-metadata-delete.json");
const NOT_MODIFIED: (&str, &str) = sample!("stream-not-modified.json");

const ALL: [(&str, &str); 5] = [
    KV2_WRITE,
    KV1_WRITE,
    KV2_DESTROY_NS,
    KV2_METADATA_DELETE,
    NOT_MODIFIED,
];

fn parse(json: &str) -> Result<Parsed, ParseError> {
    parse_event_frame(json.as_bytes())
}

fn change(json: &str) -> KvChange {
    match parse(json) {
        Ok(Parsed::Change(change)) => change,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn ignored(json: &str) -> &'static str {
    match parse(json) {
        Ok(Parsed::Ignored(reason)) => reason,
        other => panic!("expected ignored, got {other:?}"),
    }
}

/// A modified KV event frame with only the fields that matter.
fn frame(event_type: &str, mount_path: &str, path: &str, namespace: Option<Value>) -> Value {
    let mut data = json!({
        "event": {"id": "evt-1", "metadata": {"modified": "true", "path": path}},
        "event_type": event_type,
        "plugin_info": {"mount_path": mount_path, "plugin": "kv"},
    });
    if let Some(namespace) = namespace {
        data["namespace"] = namespace;
    }
    json!({"id": "evt-1", "specversion": "1.0", "type": "*", "data": data})
}

/// (mount, key, kind) of a frame, or why it was ignored.
fn read(frame: &Value) -> Result<(String, String, KvChangeKind), &'static str> {
    match parse(&to_json(frame)) {
        Ok(Parsed::Change(c)) => Ok((c.mount, c.key, c.kind)),
        Ok(Parsed::Ignored(reason)) => Err(reason),
        Err(error) => panic!("{error}"),
    }
}

fn found(
    mount: &str,
    key: &str,
    kind: KvChangeKind,
) -> Result<(String, String, KvChangeKind), &'static str> {
    Ok((mount.to_owned(), key.to_owned(), kind))
}

// ---- the samples --------------------------------------------------------------------------

#[test]
fn the_kv2_data_write_sample_is_a_write_of_its_key() {
    assert_eq!(
        change(KV2_WRITE.1),
        KvChange {
            mount: "secret".into(),
            key: "prod/db-credentials".into(),
            kind: KvChangeKind::Write,
            version: Some(KvVersion::V2),
            namespace: None,
            time: Some(
                "2026-09-09T06:14:02.518230417Z"
                    .parse()
                    .expect("a timestamp")
            ),
            request_id: Some("a3be9fb1-b514-519f-5b25-b6f144a8c1ce".into()),
        }
    );
}

#[test]
fn the_kv1_write_sample_is_a_write_of_the_whole_rest_of_the_path() {
    let c = change(KV1_WRITE.1);
    assert_eq!(
        (c.mount.as_str(), c.key.as_str(), c.kind, c.version),
        (
            "legacy",
            "apps/billing/smtp",
            KvChangeKind::Write,
            Some(KvVersion::V1)
        )
    );
    assert_eq!(c.namespace, None);
    assert_eq!(
        c.time,
        Some("2026-09-09T06:20:11.004211Z".parse().expect("a timestamp"))
    );
}

#[test]
fn the_destroy_sample_is_a_destroy_in_its_namespace() {
    let c = change(KV2_DESTROY_NS.1);
    assert_eq!(
        (c.mount.as_str(), c.key.as_str(), c.kind),
        ("kv", "payments/stripe-api-key", KvChangeKind::Destroy)
    );
    assert_eq!(c.namespace.as_deref(), Some("ns1"));
    assert_eq!(c.version, Some(KvVersion::V2));
    assert_eq!(
        c.request_id.as_deref(),
        Some("5d9c2a7e-3f41-4b8a-8e07-c6b1f2a9d3e4")
    );
}

#[test]
fn the_metadata_delete_sample_deletes_the_key_without_a_data_path() {
    let c = change(KV2_METADATA_DELETE.1);
    assert_eq!(
        (c.mount.as_str(), c.key.as_str(), c.kind),
        (
            "secret",
            "prod/db-credentials",
            KvChangeKind::MetadataDelete
        )
    );
}

#[test]
fn the_not_modified_sample_is_ignored() {
    assert_eq!(ignored(NOT_MODIFIED.1), "event did not modify the secret");
}

#[test]
fn the_samples_are_the_kv_events_they_are_named_for() {
    for (name, json) in ALL {
        let value: Value = serde_json::from_str(json).expect("the sample is JSON");
        let event_type = value["data"]["event_type"].as_str().expect("an event type");
        let operation = event_type.split_once('/').expect("a plugin prefix").1;
        assert_eq!(
            value["data"]["event"]["metadata"]["operation"].as_str(),
            Some(operation),
            "{name}"
        );
        assert_eq!(value["specversion"], "1.0", "{name}");
    }
}

// ---- event types --------------------------------------------------------------------------

#[test]
fn each_kv_event_type_maps_to_its_kind_and_version() {
    use KvChangeKind::*;
    let cases = [
        ("kv-v1/write", "legacy/", "legacy/a/b", Write, KvVersion::V1),
        (
            "kv-v1/delete",
            "legacy/",
            "legacy/a/b",
            Delete,
            KvVersion::V1,
        ),
        (
            "kv-v2/data-write",
            "secret/",
            "secret/data/a/b",
            Write,
            KvVersion::V2,
        ),
        (
            "kv-v2/data-patch",
            "secret/",
            "secret/data/a/b",
            Patch,
            KvVersion::V2,
        ),
        (
            "kv-v2/data-delete",
            "secret/",
            "secret/data/a/b",
            Delete,
            KvVersion::V2,
        ),
        (
            "kv-v2/delete",
            "secret/",
            "secret/delete/a/b",
            Delete,
            KvVersion::V2,
        ),
        (
            "kv-v2/destroy",
            "secret/",
            "secret/destroy/a/b",
            Destroy,
            KvVersion::V2,
        ),
        (
            "kv-v2/undelete",
            "secret/",
            "secret/undelete/a/b",
            Undelete,
            KvVersion::V2,
        ),
        (
            "kv-v2/metadata-write",
            "secret/",
            "secret/metadata/a/b",
            MetadataWrite,
            KvVersion::V2,
        ),
        (
            "kv-v2/metadata-patch",
            "secret/",
            "secret/metadata/a/b",
            MetadataWrite,
            KvVersion::V2,
        ),
        (
            "kv-v2/metadata-delete",
            "secret/",
            "secret/metadata/a/b",
            MetadataDelete,
            KvVersion::V2,
        ),
    ];
    for (event_type, mount, path, kind, version) in cases {
        let c = change(&to_json(&frame(event_type, mount, path, None)));
        assert_eq!(
            (c.mount.as_str(), c.key.as_str(), c.kind, c.version),
            (mount.trim_end_matches('/'), "a/b", kind, Some(version)),
            "{event_type}"
        );
    }
}

#[test]
fn config_writes_other_plugins_and_unknown_kv_types_are_ignored() {
    let cases = [
        ("kv-v2/config-write", "KV mount configuration change"),
        ("database/rotate", "not a KV event"),
        ("database/creds-create", "not a KV event"),
        ("kv-v3/data-write", "not a KV event"),
        ("kv", "not a KV event"),
        ("", "not a KV event"),
        ("kv-v2/data-read", "unknown KV event type"),
        ("kv-v1/data-write", "unknown KV event type"),
        ("kv-v2/", "unknown KV event type"),
    ];
    for (event_type, reason) in cases {
        let mut f = frame(event_type, "secret/", "secret/config", None);
        assert_eq!(read(&f), Err(reason), "{event_type}");
        // Even without the fields a KV change needs.
        f["data"].as_object_mut().expect("object").remove("event");
        f["data"]
            .as_object_mut()
            .expect("object")
            .remove("plugin_info");
        assert_eq!(read(&f), Err(reason), "{event_type}");
    }
}

#[test]
fn only_an_explicit_false_modified_is_ignored() {
    let mut f = frame("kv-v2/data-write", "secret/", "secret/data/a", None);
    for value in [
        json!("false"),
        json!("False"),
        json!("FALSE"),
        json!("f"),
        json!("0"),
        json!(false),
    ] {
        f["data"]["event"]["metadata"]["modified"] = value.clone();
        assert_eq!(read(&f), Err("event did not modify the secret"), "{value}");
    }
    for value in [
        json!("true"),
        json!("1"),
        json!(true),
        json!("yes?"),
        json!(0),
        Value::Null,
    ] {
        f["data"]["event"]["metadata"]["modified"] = value.clone();
        assert!(read(&f).is_ok(), "{value}");
    }
    // The Vault 1.13 format had no `modified`.
    f["data"]["event"]["metadata"]
        .as_object_mut()
        .expect("object")
        .remove("modified");
    assert!(read(&f).is_ok());
}

// ---- paths --------------------------------------------------------------------------------

#[test]
fn a_vault_1_13_mount_relative_path_is_read_under_the_mount() {
    use KvChangeKind::*;
    let cases = [
        (
            "kv-v2/data-write",
            "secret/",
            "data/foo",
            "secret",
            "foo",
            Write,
        ),
        (
            "kv-v2/delete",
            "secret/",
            "delete/a/b",
            "secret",
            "a/b",
            Delete,
        ),
        (
            "kv-v2/metadata-write",
            "team/kv/",
            "metadata/x",
            "team/kv",
            "x",
            MetadataWrite,
        ),
        (
            "kv-v1/write",
            "legacy/",
            "apps/x",
            "legacy",
            "apps/x",
            Write,
        ),
        // A mount named like a sub-resource: 1.13 relative and 1.14+ prefixed both read right.
        (
            "kv-v2/data-write",
            "data/",
            "data/foo",
            "data",
            "foo",
            Write,
        ),
        (
            "kv-v2/data-write",
            "data/",
            "data/data/foo",
            "data",
            "foo",
            Write,
        ),
        (
            "kv-v2/destroy",
            "destroy/",
            "destroy/foo",
            "destroy",
            "foo",
            Destroy,
        ),
    ];
    for (event_type, mount_path, path, mount, key, kind) in cases {
        assert_eq!(
            read(&frame(event_type, mount_path, path, None)),
            found(mount, key, kind),
            "{event_type} {mount_path} {path}"
        );
    }
}

#[test]
fn the_segment_the_event_type_names_wins_and_any_other_still_counts() {
    use KvChangeKind::*;
    // On the mount `data`, a data-write of `data/metadata/x` is the 1.13 relative form of the
    // key `metadata/x` (1.14+ would send `data/data/metadata/x`), not `x` under `metadata/`.
    assert_eq!(
        read(&frame("kv-v2/data-write", "data/", "data/metadata/x", None)),
        found("data", "metadata/x", Write)
    );
    // A path that contradicts its event type still names the secret.
    assert_eq!(
        read(&frame(
            "kv-v2/data-write",
            "secret/",
            "secret/metadata/x",
            None
        )),
        found("secret", "x", Write)
    );
    assert_eq!(
        read(&frame("kv-v2/data-write", "secret/", "secret/x", None)),
        Err("path does not match the event type")
    );
    assert_eq!(
        read(&frame("kv-v2/data-write", "secret/", "secret/data", None)),
        Err("path does not match the event type")
    );
}

#[test]
fn an_empty_key_is_ignored_and_slashes_are_trimmed() {
    assert_eq!(
        read(&frame("kv-v2/data-write", "secret/", "secret/data/", None)),
        Err("no secret key in path")
    );
    assert_eq!(
        read(&frame("kv-v1/write", "legacy/", "legacy/", None)),
        Err("no secret key in path")
    );
    assert_eq!(
        read(&frame(
            "kv-v2/data-write",
            "/secret/",
            "/secret/data/a/b/",
            None
        )),
        found("secret", "a/b", KvChangeKind::Write)
    );
}

// ---- namespaces ---------------------------------------------------------------------------

#[test]
fn namespace_forms_are_trimmed_and_root_reads_as_none() {
    let cases = [
        (Some(json!("ns1/")), Some("ns1")),
        (Some(json!("/ns1")), Some("ns1")),
        (Some(json!("ns1")), Some("ns1")),
        (Some(json!("/ns1/ns2/")), Some("ns1/ns2")),
        (Some(json!("")), None),
        (Some(json!("/")), None),
        (Some(Value::Null), None),
        (Some(json!(7)), None),
        (Some(json!({"path": "ns1/"})), None),
        (None, None),
    ];
    for (namespace, expected) in cases {
        let label = format!("{namespace:?}");
        let c = change(&to_json(&frame(
            "kv-v2/data-write",
            "kv/",
            "kv/data/a",
            namespace,
        )));
        assert_eq!(c.namespace.as_deref(), expected, "{label}");
        assert_eq!((c.mount.as_str(), c.key.as_str()), ("kv", "a"), "{label}");
    }
}

#[test]
fn a_namespace_prefix_on_the_path_or_the_mount_is_dropped() {
    use KvChangeKind::*;
    let ns = || Some(json!("ns1/"));
    let cases = [
        ("kv/", "ns1/kv/data/a", "kv", "a"),
        ("ns1/kv/", "kv/data/a", "kv", "a"),
        ("ns1/kv/", "ns1/kv/data/a", "ns1/kv", "a"),
        // Relative, with the prefix.
        ("kv/", "ns1/data/a", "kv", "a"),
    ];
    for (mount_path, path, mount, key) in cases {
        assert_eq!(
            read(&frame("kv-v2/data-write", mount_path, path, ns())),
            found(mount, key, Write),
            "{mount_path} {path}"
        );
    }
    assert_eq!(
        read(&frame("kv-v1/write", "legacy/", "ns1/legacy/a", ns())),
        found("legacy", "a", Write)
    );
    // Without a namespace, the prefix is part of the path: `ns1/kv/data/a` read mount-relative.
    assert_eq!(
        read(&frame("kv-v2/data-write", "kv/", "ns1/kv/data/a", None)),
        Err("path does not match the event type")
    );
}

// ---- time and id --------------------------------------------------------------------------

#[test]
fn the_time_is_rfc_3339_with_any_offset_and_otherwise_dropped() {
    let mut f = frame("kv-v2/data-write", "secret/", "secret/data/a", None);
    f["time"] = json!("2023-09-12T15:19:49.394915-07:00");
    assert_eq!(
        change(&to_json(&f)).time,
        Some("2023-09-12T22:19:49.394915Z".parse().expect("a timestamp"))
    );
    for bad in [
        json!("yesterday"),
        json!("2023-09-12 15:19:49"),
        json!(1_694_557_189),
        Value::Null,
    ] {
        f["time"] = bad.clone();
        assert_eq!(change(&to_json(&f)).time, None, "{bad}");
    }
}

#[test]
fn the_id_is_the_frames_else_the_events() {
    let mut f = frame("kv-v2/data-write", "secret/", "secret/data/a", None);
    f["id"] = json!("frame-id");
    f["data"]["event"]["id"] = json!("event-id");
    assert_eq!(change(&to_json(&f)).request_id.as_deref(), Some("frame-id"));
    f["id"] = json!("");
    assert_eq!(change(&to_json(&f)).request_id.as_deref(), Some("event-id"));
    f.as_object_mut().expect("object").remove("id");
    assert_eq!(change(&to_json(&f)).request_id.as_deref(), Some("event-id"));
    f["data"]["event"]["id"] = json!(42);
    assert_eq!(change(&to_json(&f)).request_id, None);
}

// ---- errors -------------------------------------------------------------------------------

#[test]
fn malformed_frames_are_errors_that_name_the_field() {
    let good = frame("kv-v2/data-write", "secret/", "secret/data/a", None);
    let without = |pointer: &str, key: &str| {
        let mut f = good.clone();
        f.pointer_mut(pointer)
            .and_then(Value::as_object_mut)
            .expect("an object")
            .remove(key);
        to_json(&f)
    };
    let replaced = |pointer: &str, value: Value| {
        let mut f = good.clone();
        *f.pointer_mut(pointer).expect("a field") = value;
        to_json(&f)
    };
    let cases = [
        (
            "[]".to_owned(),
            ParseError::WrongType {
                field: "event frame",
                expected: "an object",
            },
        ),
        (without("", "data"), ParseError::Missing { field: "data" }),
        (
            replaced("/data", json!("x")),
            ParseError::WrongType {
                field: "data",
                expected: "an object",
            },
        ),
        (
            without("/data", "event_type"),
            ParseError::Missing {
                field: "data.event_type",
            },
        ),
        (
            replaced("/data/event_type", json!(["kv-v2/data-write"])),
            ParseError::WrongType {
                field: "data.event_type",
                expected: "a string",
            },
        ),
        (
            without("/data", "event"),
            ParseError::Missing {
                field: "data.event",
            },
        ),
        (
            without("/data/event", "metadata"),
            ParseError::Missing {
                field: "data.event.metadata",
            },
        ),
        (
            without("/data/event/metadata", "path"),
            ParseError::Missing {
                field: "data.event.metadata.path",
            },
        ),
        (
            replaced("/data/event/metadata/path", json!(7)),
            ParseError::WrongType {
                field: "data.event.metadata.path",
                expected: "a string",
            },
        ),
        (
            without("/data", "plugin_info"),
            ParseError::Missing {
                field: "data.plugin_info",
            },
        ),
        (
            without("/data/plugin_info", "mount_path"),
            ParseError::Missing {
                field: "data.plugin_info.mount_path",
            },
        ),
        (
            replaced("/data/plugin_info/mount_path", json!("/")),
            ParseError::Invalid {
                field: "data.plugin_info.mount_path",
                problem: "empty",
            },
        ),
    ];
    for (json, expected) in cases {
        assert_eq!(parse(&json), Err(expected), "{json}");
    }
    assert!(matches!(parse("not json"), Err(ParseError::Json { .. })));
    assert!(matches!(parse(""), Err(ParseError::Json { .. })));
}

#[test]
fn a_not_modified_event_needs_no_path_or_mount() {
    let mut f = frame("kv-v2/data-write", "secret/", "secret/data/a", None);
    f["data"]["event"]["metadata"] = json!({"modified": "false"});
    f["data"]
        .as_object_mut()
        .expect("object")
        .remove("plugin_info");
    assert_eq!(read(&f), Err("event did not modify the secret"));
}

#[test]
fn frames_over_the_limit_are_rejected_before_parsing() {
    let mut json = KV2_WRITE.1.trim_end().to_owned();
    json.push_str(&" ".repeat(MAX_EVENT_FRAME_BYTES + 1 - json.len()));
    assert_eq!(
        parse(&json),
        Err(ParseError::TooLarge {
            what: "event frame",
            len: MAX_EVENT_FRAME_BYTES + 1,
            max: MAX_EVENT_FRAME_BYTES
        })
    );
    json.pop();
    assert!(matches!(parse(&json), Ok(Parsed::Change(_))));
}

#[test]
fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
    let json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(parse(&json), Err(ParseError::Json { .. })));
    let json = format!(
        "{{\"data\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(matches!(parse(&json), Err(ParseError::Json { .. })));
}

// ---- no panic, no leak: every sample, mutated ----------------------------------------------

const CANARY: &str = "CANARY-hunter2-secret/data/leak";

fn forbidden() -> Vec<String> {
    let samples: Vec<&str> = ALL.iter().map(|(_, json)| *json).collect();
    forbidden_strings(
        &samples,
        &[CANARY],
        &[
            "data",
            "event",
            "event_type",
            "metadata",
            "path",
            "plugin_info",
            "mount_path",
            "plugin",
            "type",
        ],
    )
}

/// Parses `bytes` and checks that an error holds no forbidden string. Returns whether it was an
/// error.
fn feed(bytes: &[u8], forbidden: &[String]) -> bool {
    match parse_event_frame(bytes) {
        Ok(_) => false,
        Err(error) => {
            assert_no_leak(&error, forbidden);
            true
        }
    }
}

#[test]
fn the_leak_check_forbids_the_paths_ids_and_mounts_of_the_samples() {
    let forbidden = forbidden();
    for s in [
        CANARY,
        "secret/data/prod/db-credentials",
        "kv/destroy/payments/stripe-api-key",
        "a3be9fb1-b514-519f-5b25-b6f144a8c1ce",
        "secret/",
        "legacy/",
        "ns1/",
        "kv-v2/data-write",
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
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (_, json) in ALL {
        for bytes in byte_mutations(json.as_bytes(), 500, &mut rng) {
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
        json!("/"),
        json!("false"),
        json!(CANARY),
        json!([]),
        json!([CANARY, {"path": CANARY}]),
        json!({}),
        json!({CANARY: CANARY, "path": CANARY, "mount_path": CANARY, "event_type": CANARY}),
    ];
    let mut errors = 0;
    for (_, json) in ALL {
        for mutated in field_replacements(json, &replacements) {
            errors += usize::from(feed(mutated.as_bytes(), &forbidden));
        }
    }
    assert!(errors > 0);
}
