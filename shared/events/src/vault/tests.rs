use serde_json::{Value, json};

use super::*;
use crate::test_support::{Rng, assert_no_leak, field_replacements, forbidden_strings, to_json};

macro_rules! sample {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!("../../../../events/vault/", $file)),
        )
    };
}

const KV2_WRITE: (&str, &str) = sample!("audit-kv2-write.json");
const KV2_DELETE: (&str, &str) = sample!("audit-kv2-delete.json");
const KV1_WRITE: (&str, &str) = sample!("audit-kv1-write.json");
const READ: (&str, &str) = sample!("audit-read-ignored.json");

const ALL: [(&str, &str); 4] = [KV2_WRITE, KV2_DELETE, KV1_WRITE, READ];

/// The mounts of the samples: `secret` (v2) and `legacy` (v1) in root, `kv` (v2) in `ns1`.
fn sample_mounts(namespace: Option<&str>, mount: &str) -> Option<KvVersion> {
    match (namespace, mount) {
        (None, "secret") | (Some("ns1"), "kv") | (None, "team/kv") => Some(KvVersion::V2),
        (None, "legacy") => Some(KvVersion::V1),
        _ => None,
    }
}

fn no_mounts(_: Option<&str>, _: &str) -> Option<KvVersion> {
    None
}

fn parse(json: &str) -> Result<Parsed, ParseError> {
    parse_audit_line(json.as_bytes(), &sample_mounts)
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

/// A successful response entry in the root namespace with only the fields that matter.
fn entry(operation: &str, path: &str, mount_point: Option<&str>) -> String {
    let mut request = json!({"id": "req-1", "operation": operation, "path": path,
        "mount_type": "kv", "namespace": {"id": "root"}});
    if let Some(mount) = mount_point {
        request["mount_point"] = json!(mount);
    }
    to_json(&json!({"time": "2026-09-09T06:14:02Z", "type": "response", "request": request}))
}

fn kind_key(operation: &str, path: &str) -> Result<(KvChangeKind, String), &'static str> {
    match parse(&entry(operation, path, None)) {
        Ok(Parsed::Change(c)) => Ok((c.kind, c.key)),
        Ok(Parsed::Ignored(reason)) => Err(reason),
        Err(error) => panic!("{error}"),
    }
}

// ---- the samples --------------------------------------------------------------------------

#[test]
fn the_kv2_write_sample_is_a_write_of_its_key() {
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
            request_id: Some("3f2b8c1e-9d4a-4e7b-b6c5-1a2d3e4f5a6b".into()),
        }
    );
}

#[test]
fn the_kv2_delete_sample_is_a_delete_in_its_namespace() {
    let c = change(KV2_DELETE.1);
    assert_eq!(c.kind, KvChangeKind::Delete);
    assert_eq!(
        (c.mount.as_str(), c.key.as_str()),
        ("kv", "payments/stripe-api-key")
    );
    assert_eq!(c.namespace.as_deref(), Some("ns1"));
    assert_eq!(c.version, Some(KvVersion::V2));
    assert_eq!(
        c.request_id.as_deref(),
        Some("b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e")
    );
}

#[test]
fn the_kv1_write_sample_is_a_write_of_the_whole_rest_of_the_path() {
    let c = change(KV1_WRITE.1);
    assert_eq!(c.kind, KvChangeKind::Write);
    assert_eq!(
        (c.mount.as_str(), c.key.as_str()),
        ("legacy", "apps/billing/smtp")
    );
    assert_eq!(c.version, Some(KvVersion::V1));
    assert_eq!(c.namespace, None);
}

#[test]
fn the_read_sample_is_ignored() {
    assert_eq!(ignored(READ.1), "not a write operation");
}

#[test]
fn samples_are_one_line_each() {
    for (name, json) in ALL {
        assert_eq!(json.trim_end().lines().count(), 1, "{name}");
    }
}

#[test]
fn unknown_kv_mounts_follow_the_entrys_mount_type_and_the_path_shape() {
    let write = parse_audit_line(KV2_WRITE.1.as_bytes(), &no_mounts).expect("parses");
    let Parsed::Change(c) = write else {
        panic!("{write:?}")
    };
    assert_eq!(
        (c.kind, c.key.as_str(), c.version),
        (KvChangeKind::Write, "prod/db-credentials", None)
    );

    let v1 = parse_audit_line(KV1_WRITE.1.as_bytes(), &no_mounts).expect("parses");
    let Parsed::Change(c) = v1 else {
        panic!("{v1:?}")
    };
    assert_eq!(
        (c.kind, c.key.as_str(), c.version),
        (KvChangeKind::Write, "apps/billing/smtp", None)
    );

    let mut other: Value = serde_json::from_str(KV2_WRITE.1).expect("JSON");
    other["request"]["mount_type"] = json!("transit");
    other["response"]["mount_type"] = json!("transit");
    assert_eq!(
        parse_audit_line(to_json(&other).as_bytes(), &no_mounts),
        Ok(Parsed::Ignored("not a KV mount"))
    );
    // The caller's table wins over the entry's mount_type.
    assert!(matches!(parse(&to_json(&other)), Ok(Parsed::Change(_))));

    let mut generic: Value = serde_json::from_str(KV1_WRITE.1).expect("JSON");
    generic["request"]["mount_type"] = json!("generic");
    let g = parse_audit_line(to_json(&generic).as_bytes(), &no_mounts).expect("parses");
    let Parsed::Change(c) = g else {
        panic!("{g:?}")
    };
    assert_eq!(c.version, Some(KvVersion::V1));
}

#[test]
fn the_response_mount_fields_stand_in_for_missing_request_ones() {
    let mut value: Value = serde_json::from_str(KV2_WRITE.1).expect("JSON");
    let request = value["request"].as_object_mut().expect("object");
    request.remove("mount_point");
    request.remove("mount_type");
    let c = parse_audit_line(to_json(&value).as_bytes(), &no_mounts).expect("parses");
    let Parsed::Change(c) = c else {
        panic!("{c:?}")
    };
    assert_eq!(
        (c.mount.as_str(), c.key.as_str()),
        ("secret", "prod/db-credentials")
    );
}

// ---- which entries count ------------------------------------------------------------------

#[test]
fn request_entries_and_unknown_types_are_ignored() {
    let mut value: Value = serde_json::from_str(KV2_WRITE.1).expect("JSON");
    value["type"] = json!("request");
    assert_eq!(
        ignored(&to_json(&value)),
        "request entry, outcome not yet known"
    );
    value["type"] = json!("audit-test");
    assert_eq!(ignored(&to_json(&value)), "unknown entry type");
}

#[test]
fn failed_requests_are_ignored_and_an_empty_error_is_success() {
    let mut value: Value = serde_json::from_str(KV2_WRITE.1).expect("JSON");
    value["error"] = json!("1 error occurred:\n\t* permission denied\n\n");
    assert_eq!(ignored(&to_json(&value)), "request failed");
    value["error"] = json!({"unexpected": true});
    assert_eq!(ignored(&to_json(&value)), "request failed");
    value["error"] = json!("");
    assert!(matches!(parse(&to_json(&value)), Ok(Parsed::Change(_))));
    value["error"] = Value::Null;
    assert!(matches!(parse(&to_json(&value)), Ok(Parsed::Change(_))));
}

#[test]
fn reads_lists_logins_and_sys_paths_are_ignored() {
    assert_eq!(
        kind_key("read", "secret/data/a"),
        Err("not a write operation")
    );
    assert_eq!(
        kind_key("list", "secret/metadata/"),
        Err("not a write operation")
    );
    assert_eq!(
        kind_key("help", "secret/data/a"),
        Err("not a write operation")
    );
    assert_eq!(kind_key("update", "auth/approle/login"), Err("auth path"));
    assert_eq!(kind_key("update", "sys/mounts/secret"), Err("sys path"));
    assert_eq!(kind_key("delete", "sys/policies/acl/x"), Err("sys path"));
    assert_eq!(
        kind_key("update", "transit/encrypt/k"),
        Err("not a KV mount")
    );
    assert_eq!(kind_key("update", "secret"), Err("not a KV mount"));
}

// ---- path shapes --------------------------------------------------------------------------

#[test]
fn each_kv2_path_shape_maps_to_its_kind() {
    use KvChangeKind::*;
    let cases = [
        ("create", "secret/data/a/b", Write),
        ("update", "secret/data/a/b", Write),
        ("patch", "secret/data/a/b", Patch),
        ("delete", "secret/data/a/b", Delete),
        ("update", "secret/delete/a/b", Delete),
        ("create", "secret/delete/a/b", Delete),
        ("update", "secret/undelete/a/b", Undelete),
        ("update", "secret/destroy/a/b", Destroy),
        ("create", "secret/metadata/a/b", MetadataWrite),
        ("update", "secret/metadata/a/b", MetadataWrite),
        ("patch", "secret/metadata/a/b", MetadataWrite),
        ("delete", "secret/metadata/a/b", MetadataDelete),
        ("update", "team/kv/data/a", Write),
    ];
    for (operation, path, kind) in cases {
        let expected_key = if path.starts_with("team/") {
            "a"
        } else {
            "a/b"
        };
        assert_eq!(
            kind_key(operation, path),
            Ok((kind, expected_key.to_owned())),
            "{operation} {path}"
        );
    }
}

#[test]
fn kv2_paths_outside_the_table_are_ignored() {
    for (operation, path) in [
        ("update", "secret/config"),
        ("update", "secret/subkeys/a"),
        ("update", "secret/a"),
        ("delete", "secret/delete/a"),
        ("patch", "secret/destroy/a"),
        ("delete", "secret/undelete/a"),
    ] {
        assert!(kind_key(operation, path).is_err(), "{operation} {path}");
    }
    assert_eq!(
        kind_key("update", "secret/data/"),
        Err("no secret key in path")
    );
    assert_eq!(
        kind_key("update", "secret/data"),
        Err("not a KV v2 secret path")
    );
}

#[test]
fn each_kv1_path_shape_maps_to_its_kind() {
    use KvChangeKind::*;
    assert_eq!(kind_key("create", "legacy/a/b"), Ok((Write, "a/b".into())));
    assert_eq!(kind_key("update", "legacy/a"), Ok((Write, "a".into())));
    assert_eq!(kind_key("delete", "legacy/a"), Ok((Delete, "a".into())));
    // On a KV v1 mount, `data/` is part of the key.
    assert_eq!(
        kind_key("update", "legacy/data/a"),
        Ok((Write, "data/a".into()))
    );
    assert!(kind_key("patch", "legacy/a").is_err());
    assert_eq!(kind_key("update", "legacy/"), Err("no secret key in path"));
}

#[test]
fn the_mount_point_splits_the_path_without_the_table() {
    let json = entry("update", "apps/team-a/data/db", Some("apps/team-a/"));
    let c = parse_audit_line(json.as_bytes(), &no_mounts).expect("parses");
    let Parsed::Change(c) = c else {
        panic!("{c:?}")
    };
    assert_eq!((c.mount.as_str(), c.key.as_str()), ("apps/team-a", "db"));
    // A mount point the path is not under: no mount.
    let json = entry("update", "other/data/db", Some("apps/"));
    assert_eq!(
        parse_audit_line(json.as_bytes(), &no_mounts),
        Ok(Parsed::Ignored("not a KV mount"))
    );
}

// ---- namespaces ---------------------------------------------------------------------------

fn ns_entry(namespace: Value, path: &str, mount_point: Option<&str>) -> String {
    let mut request = json!({"operation": "update", "path": path, "namespace": namespace});
    if let Some(mount) = mount_point {
        request["mount_point"] = json!(mount);
        request["mount_type"] = json!("kv");
    }
    to_json(&json!({"type": "response", "request": request}))
}

#[test]
fn namespaces_are_trimmed_and_passed_to_the_mount_table() {
    let c = change(&ns_entry(
        json!({"id": "Xq3Lk", "path": "ns1/"}),
        "kv/data/a",
        None,
    ));
    assert_eq!(
        (c.namespace.as_deref(), c.mount.as_str(), c.key.as_str()),
        (Some("ns1"), "kv", "a")
    );
    // The same mount in root is unknown.
    assert_eq!(
        ignored(&ns_entry(json!({"id": "root"}), "kv/data/a", None)),
        "not a KV mount"
    );
    // Nested namespaces keep their inner slash.
    let seen = std::cell::RefCell::new(Vec::new());
    let table = |ns: Option<&str>, mount: &str| {
        seen.borrow_mut()
            .push((ns.map(str::to_owned), mount.to_owned()));
        (mount == "kv").then_some(KvVersion::V2)
    };
    let json = ns_entry(json!({"id": "a", "path": "/ns1/ns2/"}), "kv/data/a", None);
    let Ok(Parsed::Change(c)) = parse_audit_line(json.as_bytes(), &table) else {
        panic!()
    };
    assert_eq!(c.namespace.as_deref(), Some("ns1/ns2"));
    assert!(
        seen.borrow()
            .iter()
            .all(|(ns, _)| ns.as_deref() == Some("ns1/ns2"))
    );
}

#[test]
fn root_namespace_forms_all_read_as_none() {
    for namespace in [
        json!({"id": "root"}),
        json!({"id": "root", "path": ""}),
        json!({"path": "/"}),
        json!(""),
        Value::Null,
        json!(7),
    ] {
        let c = change(&ns_entry(namespace.clone(), "secret/data/a", None));
        assert_eq!(c.namespace, None, "{namespace}");
    }
    // A bare string namespace is accepted too.
    let c = change(&ns_entry(json!("ns1/"), "kv/data/a", None));
    assert_eq!(c.namespace.as_deref(), Some("ns1"));
}

#[test]
fn a_namespace_prefix_left_on_the_path_is_dropped() {
    let ns = json!({"id": "Xq3Lk", "path": "ns1/"});
    // Found through the mount table.
    let c = change(&ns_entry(ns.clone(), "ns1/kv/data/a", None));
    assert_eq!((c.mount.as_str(), c.key.as_str()), ("kv", "a"));
    // Found through the mount point.
    let c = change(&ns_entry(ns.clone(), "ns1/kv/data/a", Some("kv/")));
    assert_eq!((c.mount.as_str(), c.key.as_str()), ("kv", "a"));
    // A mount point that carries the prefix while the path does not.
    let c = change(&ns_entry(ns, "kv/data/a", Some("ns1/kv/")));
    assert_eq!(
        (c.mount.as_str(), c.key.as_str(), c.namespace.as_deref()),
        ("kv", "a", Some("ns1"))
    );
}

// ---- errors -------------------------------------------------------------------------------

#[test]
fn malformed_lines_are_errors() {
    let cases: [(&[u8], ParseError); 7] = [
        (
            b"",
            ParseError::Json {
                what: "audit line",
                problem: "unexpected end of input",
                line: 1,
                column: 0,
            },
        ),
        (
            b"[1]",
            ParseError::WrongType {
                field: "audit line",
                expected: "an object",
            },
        ),
        (br#"{"request":{}}"#, ParseError::Missing { field: "type" }),
        (
            br#"{"type":3}"#,
            ParseError::WrongType {
                field: "type",
                expected: "a string",
            },
        ),
        (
            br#"{"type":"response"}"#,
            ParseError::Missing { field: "request" },
        ),
        (
            br#"{"type":"response","request":{"path":"secret/data/a"}}"#,
            ParseError::Missing {
                field: "request.operation",
            },
        ),
        (
            br#"{"type":"response","request":{"operation":"update","path":7}}"#,
            ParseError::WrongType {
                field: "request.path",
                expected: "a string",
            },
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(
            parse_audit_line(line, &sample_mounts),
            Err(expected),
            "{line:?}"
        );
    }
    assert!(matches!(
        parse_audit_line(b"<AuditRequestEntry>", &sample_mounts),
        Err(ParseError::Json { .. })
    ));
}

#[test]
fn a_trailing_newline_is_fine() {
    let line = format!("{}\n", KV2_WRITE.1.trim_end());
    assert!(matches!(parse(&line), Ok(Parsed::Change(_))));
}

#[test]
fn lines_over_the_limit_are_rejected_before_parsing() {
    let mut line = KV2_WRITE.1.trim_end().to_owned();
    line.push_str(&" ".repeat(MAX_AUDIT_LINE_BYTES + 1 - line.len()));
    assert_eq!(
        parse(&line),
        Err(ParseError::TooLarge {
            what: "audit line",
            len: MAX_AUDIT_LINE_BYTES + 1,
            max: MAX_AUDIT_LINE_BYTES
        })
    );
    line.pop();
    assert!(matches!(parse(&line), Ok(Parsed::Change(_))));
}

#[test]
fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
    let line = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(parse(&line), Err(ParseError::Json { .. })));
}

// ---- no panic, no leak, no HMAC: every sample, mutated -------------------------------------

const CANARY: &str = "CANARY-hunter2-secret/data/leak";

/// Every string (and key) of four or more characters in any sample, and the canary, except the
/// field names and fixed values the error messages themselves use.
fn forbidden() -> Vec<String> {
    forbidden_strings(
        &ALL.map(|(_, json)| json),
        &[CANARY],
        &["type", "request", "path", "operation", "response"],
    )
}

/// Parses `bytes`, checks that an error holds no forbidden string and a change holds no HMAC.
/// Returns whether it was an error.
fn feed(bytes: &[u8], forbidden: &[String]) -> bool {
    match parse_audit_line(bytes, &sample_mounts) {
        Ok(Parsed::Change(c)) => {
            let text = format!("{c:?}");
            assert!(!text.contains("hmac-sha256"), "{text}");
            false
        }
        Ok(Parsed::Ignored(_)) => false,
        Err(error) => {
            assert_no_leak(&error, forbidden);
            true
        }
    }
}

#[test]
fn the_leak_check_forbids_the_paths_tokens_and_ids_of_the_samples() {
    let forbidden = forbidden();
    for s in [
        CANARY,
        "secret/data/prod/db-credentials",
        "hmac-sha256:9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d",
        "3f2b8c1e-9d4a-4e7b-b6c5-1a2d3e4f5a6b",
        "10.0.7.33",
        "ns1/",
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
    const REPLACEMENTS: &[u8] = b"\"\\{}[]:,/0-eE.nulltrue \x00\xff\xc3";
    for (_, json) in ALL {
        for _ in 0..500 {
            let mut bytes = json.as_bytes().to_vec();
            for _ in 0..=rng.below(3) {
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 => bytes[at] = REPLACEMENTS[rng.below(REPLACEMENTS.len())],
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, REPLACEMENTS[rng.below(REPLACEMENTS.len())]),
                }
            }
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
        json!(CANARY),
        json!([]),
        json!([CANARY, {"path": CANARY}]),
        json!({}),
        json!({CANARY: CANARY, "path": CANARY, "id": CANARY}),
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
fn hmacd_values_never_reach_a_change() {
    // Even when the request data is plain text (`log_raw`), nothing of it is read.
    let mut value: Value = serde_json::from_str(KV2_WRITE.1).expect("JSON");
    value["request"]["data"] = json!({"data": {"password": CANARY}});
    value["response"]["data"] = json!({"version": CANARY});
    let c = change(&to_json(&value));
    assert!(!format!("{c:?}").contains("hunter2"));
}
