use serde_json::{Value, json};

use super::*;
use crate::aws::{SqsRecord, parse_event, parse_sqs_batch, parse_sqs_body};
use crate::test_support::{
    Rng, assert_no_leak, byte_mutations, field_replacements, forbidden_strings,
};

macro_rules! sample {
    ($file:literal) => {
        include_str!(concat!("../../../../../events/aws/", $file))
    };
}

const CREATE: &str = sample!("parameter-store-change-create.json");
const UPDATE: &str = sample!("parameter-store-change-update.json");
const DELETE: &str = sample!("parameter-store-change-delete.json");
const LABEL: &str = sample!("parameter-store-change-label-parameter-version.json");
const SAMPLES: [&str; 4] = [CREATE, UPDATE, DELETE, LABEL];

const NAME: &str = "/prod/db-credentials";
const CANARY: &str = "CANARY-hunter2-/prod/db-credentials";

fn parameter(parsed: Result<Parsed, ParseError>) -> ParameterChange {
    match parsed {
        Ok(Parsed::Parameter(change)) => change,
        other => panic!("expected a parameter change, got {other:?}"),
    }
}

fn value(json: &str) -> Value {
    serde_json::from_str(json).expect("the sample is JSON")
}

fn parse_value(event: &Value) -> Result<Parsed, ParseError> {
    parse_event(&serde_json::to_vec(event).expect("serializes"))
}

#[test]
fn each_sample_is_a_change_of_the_named_parameter_with_its_operation() {
    for (json, operation) in [
        (CREATE, ParameterOperation::Create),
        (UPDATE, ParameterOperation::Update),
        (DELETE, ParameterOperation::Delete),
        (LABEL, ParameterOperation::LabelParameterVersion),
    ] {
        let change = parameter(parse_event(json.as_bytes()));
        assert_eq!(change.name, NAME);
        assert_eq!(change.operation, operation);
        assert_eq!(change.region.as_deref(), Some("us-east-1"));
        assert_eq!(change.account.as_deref(), Some("123456789012"));
        assert!(change.event_time.is_some());
        assert_eq!(
            change.event_id.as_deref(),
            value(json)["id"].as_str(),
            "{operation:?}"
        );
        assert!(change.needs_sync());
    }
}

#[test]
fn the_update_sample_reads_in_full() {
    let change = parameter(parse_event(UPDATE.as_bytes()));
    assert_eq!(
        change,
        ParameterChange {
            region: Some("us-east-1".into()),
            account: Some("123456789012".into()),
            name: NAME.into(),
            operation: ParameterOperation::Update,
            event_time: Some("2026-11-02T10:21:47Z".parse().expect("time")),
            event_id: Some("8b2e7c44-1d93-4b6f-a0e2-5f6c7d8e9a02".into()),
        }
    );
}

#[test]
fn the_arn_locates_the_parameter_before_the_envelope_does() {
    let mut event = value(UPDATE);
    event["resources"] =
        json!(["arn:aws:ssm:eu-west-1:210987654321:parameter/prod/db-credentials"]);
    let change = parameter(parse_value(&event));
    assert_eq!(change.region.as_deref(), Some("eu-west-1"));
    assert_eq!(change.account.as_deref(), Some("210987654321"));
}

#[test]
fn the_envelope_locates_the_parameter_when_no_arn_does() {
    let mut event = value(UPDATE);
    event["resources"] = json!(["arn:aws:kms:us-east-1:123456789012:key/abc", 7, null]);
    let change = parameter(parse_value(&event));
    assert_eq!(change.region.as_deref(), Some("us-east-1"));
    assert_eq!(change.account.as_deref(), Some("123456789012"));
    event.as_object_mut().expect("object").remove("resources");
    event["region"] = json!("");
    let change = parameter(parse_value(&event));
    assert_eq!(change.region, None);
    assert_eq!(change.name, NAME);
}

#[test]
fn without_detail_name_the_arn_names_the_parameter_with_its_leading_slash_put_back() {
    let mut event = value(DELETE);
    event["detail"]
        .as_object_mut()
        .expect("detail")
        .remove("name");
    assert_eq!(parameter(parse_value(&event)).name, NAME);
    event["resources"] = json!(["arn:aws-cn:ssm:cn-north-1:123456789012:parameter/plain"]);
    let change = parameter(parse_value(&event));
    assert_eq!(change.name, "plain");
    assert_eq!(change.region.as_deref(), Some("cn-north-1"));
    event["detail"]["name"] = json!(42);
    assert_eq!(parameter(parse_value(&event)).name, "plain");
}

#[test]
fn a_change_without_a_name_anywhere_is_an_error() {
    let mut event = value(CREATE);
    event["detail"]["name"] = json!("");
    event["resources"] = json!(["arn:aws:ssm:us-east-1:123456789012:document/x"]);
    assert_eq!(
        parse_value(&event),
        Err(ParseError::NoSecretId {
            looked_in: "detail.name, resources"
        })
    );
}

#[test]
fn an_unknown_missing_or_mistyped_operation_is_other_and_still_needs_a_sync() {
    for operation in [
        json!("Rename"),
        json!(null),
        json!(3),
        json!({"op": "Update"}),
    ] {
        let mut event = value(UPDATE);
        event["detail"]["operation"] = operation.clone();
        let change = parameter(parse_value(&event));
        assert_eq!(change.operation, ParameterOperation::Other, "{operation}");
        assert!(change.needs_sync());
    }
    assert_eq!(ParameterOperation::Other.as_str(), "Other");
    assert_eq!(
        ParameterOperation::LabelParameterVersion.as_str(),
        "LabelParameterVersion"
    );
}

#[test]
fn unreadable_times_and_ids_are_left_out() {
    let mut event = value(UPDATE);
    event["time"] = json!("yesterday");
    event["id"] = json!(12);
    let change = parameter(parse_value(&event));
    assert_eq!(change.event_time, None);
    assert_eq!(change.event_id, None);
}

#[test]
fn other_ssm_detail_types_are_ignored() {
    for detail_type in [
        "Parameter Store Policy Action",
        "EC2 Command Status-change Notification",
        "AWS API Call via CloudTrail",
    ] {
        let mut event = value(UPDATE);
        event["detail-type"] = json!(detail_type);
        assert_eq!(
            parse_value(&event),
            Ok(Parsed::Ignored("detail-type not supported")),
            "{detail_type}"
        );
    }
}

#[test]
fn a_missing_or_mistyped_envelope_field_is_named_in_the_error() {
    let mut event = value(UPDATE);
    event["detail"] = json!("Update");
    assert_eq!(
        parse_value(&event),
        Err(ParseError::WrongType {
            field: "detail",
            expected: "an object"
        })
    );
    event.as_object_mut().expect("object").remove("detail");
    assert_eq!(
        parse_value(&event),
        Err(ParseError::Missing { field: "detail" })
    );
    let mut event = value(UPDATE);
    event["detail-type"] = json!(["Parameter Store Change"]);
    assert_eq!(
        parse_value(&event),
        Err(ParseError::WrongType {
            field: "detail-type",
            expected: "a string"
        })
    );
}

#[test]
fn an_sqs_body_an_sns_notification_and_a_lambda_batch_carry_the_change() {
    let direct = parameter(parse_sqs_body(LABEL));
    assert_eq!(direct.operation, ParameterOperation::LabelParameterVersion);
    let sns = json!({ "Type": "Notification", "MessageId": "m-1", "Message": DELETE }).to_string();
    let wrapped = parameter(parse_sqs_body(&sns));
    assert_eq!(wrapped.operation, ParameterOperation::Delete);
    assert_eq!(wrapped.name, NAME);
    let batch = json!({ "Records": [
        { "messageId": "a", "body": CREATE },
        { "messageId": "b", "body": sns },
        { "messageId": "c", "body": "{\"source\": \"aws.ssm\"" },
    ]});
    let records = parse_sqs_batch(batch.to_string().as_bytes()).expect("a batch");
    let ids: Vec<_> = records.iter().map(|r| r.message_id.as_deref()).collect();
    assert_eq!(ids, [Some("a"), Some("b"), Some("c")]);
    assert_eq!(
        parameter(records[0].result.clone()).operation,
        ParameterOperation::Create
    );
    assert_eq!(
        parameter(records[1].result.clone()).operation,
        ParameterOperation::Delete
    );
    assert!(matches!(
        records[2],
        SqsRecord {
            result: Err(ParseError::Json { .. }),
            ..
        }
    ));
}

#[test]
fn secrets_manager_events_are_unchanged_by_the_parameter_route() {
    let put = include_str!("../../../../../events/aws/cloudtrail-put-secret-value.json");
    assert!(matches!(parse_event(put.as_bytes()), Ok(Parsed::Change(_))));
    let mut event = value(UPDATE);
    event["source"] = json!("aws.s3");
    assert_eq!(
        parse_value(&event),
        Ok(Parsed::Ignored(
            "source is not aws.secretsmanager or aws.ssm"
        ))
    );
}

#[test]
fn arns_of_other_services_or_shapes_are_not_parameter_arns() {
    for arn in [
        "arn:aws:ssm:us-east-1:123456789012:document/x",
        "arn:aws:ssm:us-east-1:123456789012:parameter/",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
        "arn:aws:ssm:us-east-1",
        "not an arn",
        "",
    ] {
        assert_eq!(ParameterArn::parse(arn), None, "{arn}");
    }
    let arn =
        ParameterArn::parse("arn:aws:ssm:us-east-1:123456789012:parameter/a/b:c").expect("an ARN");
    assert_eq!(arn.parameter_name(), "/a/b:c");
}

// ---- no panic, no leak -----------------------------------------------------------------------

/// What no error may contain: every string of the samples (four or more characters) but the
/// field names and fixed words the errors use, and the canary.
fn forbidden() -> Vec<String> {
    forbidden_strings(
        &SAMPLES,
        &[CANARY],
        &[
            "detail",
            "detail-type",
            "source",
            "name",
            "type",
            "resources",
        ],
    )
}

/// Feeds `bytes` to every entry point, bare, in an SNS envelope and in a batch, and checks that
/// no error holds a forbidden string. Returns how many errors it saw.
fn feed(bytes: &[u8], forbidden: &[String]) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let sns = json!({"Type": "Notification", "Message": text}).to_string();
    let batch =
        json!({"Records": [{"messageId": "m", "body": text}, {"messageId": "n", "body": sns}]})
            .to_string();
    let mut errors: Vec<ParseError> = Vec::new();
    errors.extend(parse_event(bytes).err());
    errors.extend(parse_sqs_body(&text).err());
    errors.extend(parse_sqs_body(&sns).err());
    match parse_sqs_batch(batch.as_bytes()) {
        Ok(records) => errors.extend(records.into_iter().filter_map(|r| r.result.err())),
        Err(e) => errors.push(e),
    }
    for error in &errors {
        assert_no_leak(error, forbidden);
    }
    errors.len()
}

#[test]
fn the_leak_check_forbids_the_names_arns_and_ids_of_the_samples() {
    let forbidden = forbidden();
    for s in [
        NAME,
        CANARY,
        "arn:aws:ssm:us-east-1:123456789012:parameter/prod/db-credentials",
        "8b2e7c44-1d93-4b6f-a0e2-5f6c7d8e9a02",
        "Database credentials for the payments service",
    ] {
        assert!(forbidden.iter().any(|f| f == s), "{s}");
    }
}

#[test]
fn every_field_of_every_sample_replaced_by_every_type_is_handled_without_panic_or_leak() {
    let forbidden = forbidden();
    let replacements = [
        Value::Null,
        json!(true),
        json!(42),
        json!(""),
        json!(CANARY),
        json!(format!(
            "arn:aws:ssm:us-east-1:123456789012:parameter/{CANARY}"
        )),
        json!([]),
        json!([CANARY, {"ARN": CANARY}]),
        json!({}),
        json!({CANARY: CANARY}),
    ];
    let mut errors = 0;
    for json in SAMPLES {
        for mutated in field_replacements(json, &replacements) {
            errors += feed(mutated.as_bytes(), &forbidden);
        }
    }
    assert!(errors > 0);
}

#[test]
fn truncations_and_random_byte_mutations_are_handled_without_panic_or_leak() {
    let forbidden = forbidden();
    let mut rng = Rng(0x5EED_55A4_0000_0001);
    let mut errors = 0;
    for json in SAMPLES {
        for end in (0..json.len()).step_by(7) {
            errors += feed(&json.as_bytes()[..end], &forbidden);
        }
        for bytes in byte_mutations(json.as_bytes(), 200, &mut rng) {
            errors += feed(&bytes, &forbidden);
        }
    }
    assert!(errors > 0);
}
