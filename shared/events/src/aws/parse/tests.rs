use serde_json::{Value, json};

use super::*;
use crate::aws::{SecretArn, matches};
use crate::test_support::{Rng, assert_no_leak, field_replacements};

macro_rules! sample {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!("../../../../../events/aws/", $file)),
        )
    };
}

const PUT: (&str, &str) = sample!("cloudtrail-put-secret-value.json");
const UPDATE: (&str, &str) = sample!("cloudtrail-update-secret.json");
const STAGE: (&str, &str) = sample!("cloudtrail-update-secret-version-stage.json");
const ROTATE: (&str, &str) = sample!("cloudtrail-rotate-secret.json");
const DELETE: (&str, &str) = sample!("cloudtrail-delete-secret.json");
const RESTORE: (&str, &str) = sample!("cloudtrail-restore-secret.json");
const CREATE: (&str, &str) = sample!("cloudtrail-create-secret.json");
const TAG: (&str, &str) = sample!("cloudtrail-tag-resource.json");
const ROTATION_SUCCEEDED: (&str, &str) = sample!("service-event-rotation-succeeded.json");
const LABEL: (&str, &str) = sample!("secret-label-updated.json");
const SNS: (&str, &str) = sample!("sqs-message-body-sns-envelope.json");
const BATCH: (&str, &str) = sample!("lambda-sqs-batch.json");
const POISON: (&str, &str) = sample!("lambda-sqs-batch-with-poison.json");

const EVENTS: [(&str, &str); 10] = [
    PUT,
    UPDATE,
    STAGE,
    ROTATE,
    DELETE,
    RESTORE,
    CREATE,
    TAG,
    ROTATION_SUCCEEDED,
    LABEL,
];
const ALL: [(&str, &str); 13] = [
    PUT,
    UPDATE,
    STAGE,
    ROTATE,
    DELETE,
    RESTORE,
    CREATE,
    TAG,
    ROTATION_SUCCEEDED,
    LABEL,
    SNS,
    BATCH,
    POISON,
];

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const NAME: &str = "prod/db-credentials";
const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-credentials-AbCdEf";

fn change(parsed: Result<Parsed, ParseError>) -> SecretChange {
    match parsed {
        Ok(Parsed::Change(change)) => change,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn event_change(json: &str) -> SecretChange {
    change(parse_event(json.as_bytes()))
}

fn event_json(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serializes")
}

/// A minimal CloudTrail-derived event with `detail` as given.
fn cloudtrail(detail: Value) -> Value {
    json!({
        "version": "0",
        "id": "00000000-0000-4000-8000-000000000001",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.secretsmanager",
        "account": ACCOUNT,
        "time": "2025-03-14T09:26:45Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    })
}

fn parse_value(value: &Value) -> Result<Parsed, ParseError> {
    parse_event(&event_json(value))
}

fn parse_detail(detail: Value) -> Result<Parsed, ParseError> {
    parse_value(&cloudtrail(detail))
}

// ---- the sample files ----------------------------------------------------------------------

#[test]
fn every_event_sample_parses_to_the_expected_change() {
    let cases: [(_, &str, ChangeKind, Option<&str>, &str); 10] = [
        (
            PUT,
            "PutSecretValue",
            ChangeKind::ValueChanged,
            Some("4d383ea9-084a-49c9-8722-cbfb0f25c456"),
            "2025-03-14T09:26:45Z",
        ),
        (
            UPDATE,
            "UpdateSecret",
            ChangeKind::ValueChanged,
            Some("a3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
            "2025-03-14T09:31:02Z",
        ),
        (
            STAGE,
            "UpdateSecretVersionStage",
            ChangeKind::StageMoved {
                label: Some("AWSCURRENT".to_owned()),
            },
            Some("b7e6d5c4-3b2a-4190-8f7e-6d5c4b3a2910"),
            "2025-03-14T10:02:17Z",
        ),
        (
            ROTATE,
            "RotateSecret",
            ChangeKind::NoValueChange,
            None,
            "2025-03-14T10:00:03Z",
        ),
        (
            DELETE,
            "DeleteSecret",
            ChangeKind::Deleted,
            None,
            "2025-03-15T08:00:00Z",
        ),
        (
            RESTORE,
            "RestoreSecret",
            ChangeKind::Restored,
            None,
            "2025-03-15T08:05:00Z",
        ),
        (
            CREATE,
            "CreateSecret",
            ChangeKind::Created,
            None,
            "2025-03-13T17:50:55Z",
        ),
        (
            TAG,
            "TagResource",
            ChangeKind::MetadataChanged,
            None,
            "2025-03-14T11:12:13Z",
        ),
        (
            ROTATION_SUCCEEDED,
            "RotationSucceeded",
            ChangeKind::ValueChanged,
            None,
            "2025-03-14T10:02:18Z",
        ),
        (
            LABEL,
            "Secret Label Updated",
            ChangeKind::StageMoved {
                label: Some("AWSCURRENT".to_owned()),
            },
            Some("b7e6d5c4-3b2a-4190-8f7e-6d5c4b3a2910"),
            "2025-03-14T10:02:17Z",
        ),
    ];
    for ((file, json), event_name, kind, version_id, time) in cases {
        let change = event_change(json);
        assert_eq!(change.event_name, event_name, "{file}");
        assert_eq!(change.kind, kind, "{file}");
        assert_eq!(change.version_id.as_deref(), version_id, "{file}");
        assert_eq!(change.account.as_deref(), Some(ACCOUNT), "{file}");
        assert_eq!(change.region.as_deref(), Some(REGION), "{file}");
        assert_eq!(
            change.event_time,
            Some(time.parse().expect("a timestamp")),
            "{file}"
        );
        assert!(change.event_id.is_some(), "{file}");
        assert!(
            change.secret.index_keys().contains(&NAME.to_owned()),
            "{file}"
        );
        for remote_key in [
            NAME,
            ARN,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-credentials",
        ] {
            assert!(
                matches(&change, remote_key, REGION, Some(ACCOUNT)),
                "{file} / {remote_key}"
            );
        }
        assert!(
            !matches(&change, NAME, "eu-west-1", Some(ACCOUNT)),
            "{file}"
        );
        assert!(
            !matches(&change, NAME, REGION, Some("210987654321")),
            "{file}"
        );
        assert!(
            !matches(&change, "prod/db", REGION, Some(ACCOUNT)),
            "{file}"
        );
    }
}

#[test]
fn the_put_secret_value_sample_keeps_the_stated_name_and_the_service_arn() {
    let change = event_change(PUT.1);
    assert_eq!(change.secret.names(), [NAME]);
    assert_eq!(
        change.secret.arns(),
        [SecretArn::parse(ARN).expect("a secret ARN")]
    );
    assert_eq!(
        change.event_id.as_deref(),
        Some("79f04f06-924c-7a00-b3f8-e532167d23e0")
    );
    assert!(change.needs_sync());
}

#[test]
fn the_create_secret_sample_names_the_secret_only_by_request_parameters_name() {
    let change = event_change(CREATE.1);
    assert_eq!(change.secret.names(), [NAME]);
    assert!(change.secret.arns().is_empty());
}

#[test]
fn the_rotate_secret_sample_does_not_need_a_sync() {
    assert!(!event_change(ROTATE.1).needs_sync());
}

#[test]
fn the_sns_envelope_sample_carries_the_rotation_succeeded_event() {
    let change = change(parse_sqs_body(SNS.1));
    assert_eq!(change, event_change(ROTATION_SUCCEEDED.1));
}

#[test]
fn an_sqs_body_that_is_the_event_itself_parses_like_the_event() {
    for (file, json) in EVENTS {
        assert_eq!(parse_sqs_body(json), parse_event(json.as_bytes()), "{file}");
    }
}

#[test]
fn the_lambda_sqs_batch_sample_gives_one_change_per_record_with_its_message_id() {
    let records = parse_sqs_batch(BATCH.1.as_bytes()).expect("a batch");
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[0].message_id.as_deref(),
        Some("059f36b4-87a3-44ab-83d2-661975830a71")
    );
    assert_eq!(change(records[0].result.clone()), event_change(PUT.1));
    assert_eq!(
        records[1].message_id.as_deref(),
        Some("059f36b4-87a3-44ab-83d2-661975830a72")
    );
    assert_eq!(change(records[1].result.clone()), event_change(LABEL.1));
}

#[test]
fn a_poison_record_fails_alone_and_the_rest_of_the_batch_still_parses() {
    let records = parse_sqs_batch(POISON.1.as_bytes()).expect("a batch");
    assert_eq!(records.len(), 3);
    assert_eq!(
        change(records[0].result.clone()),
        event_change(ROTATION_SUCCEEDED.1)
    );
    assert_eq!(
        records[1].message_id.as_deref(),
        Some("059f36b4-87a3-44ab-83d2-661975830a72")
    );
    assert!(matches!(
        records[1].result,
        Err(ParseError::Json {
            what: "SQS message body",
            problem: "unexpected end of input",
            ..
        })
    ));
    assert_eq!(
        records[2].result,
        Ok(Parsed::Ignored(
            "source is not aws.secretsmanager or aws.ssm"
        ))
    );
}

// ---- where the secret id may be --------------------------------------------------------------

fn keys_of(detail: Value) -> Vec<String> {
    change(parse_detail(detail)).secret.index_keys()
}

#[test]
fn the_secret_id_is_read_from_request_parameters_secret_id_as_a_name_or_an_arn() {
    let name =
        keys_of(json!({"eventName": "PutSecretValue", "requestParameters": {"secretId": NAME}}));
    assert_eq!(name, [NAME]);
    let arn =
        keys_of(json!({"eventName": "PutSecretValue", "requestParameters": {"secretId": ARN}}));
    assert_eq!(arn, ["prod/db-credentials-AbCdEf", NAME]);
}

#[test]
fn the_secret_id_is_read_from_request_parameters_name() {
    let keys = keys_of(json!({
        "eventName": "CreateSecret",
        "requestParameters": {"name": NAME},
        "responseElements": null,
    }));
    assert_eq!(keys, [NAME]);
}

#[test]
fn the_secret_id_is_read_from_every_spelling_of_response_elements_arn() {
    for key in ["arn", "aRN", "ARN"] {
        let detail = json!({
            "eventName": "DeleteSecret",
            "requestParameters": null,
            "responseElements": {key: ARN},
        });
        assert_eq!(
            keys_of(detail),
            ["prod/db-credentials-AbCdEf", NAME],
            "{key}"
        );
    }
}

#[test]
fn the_secret_id_is_read_from_response_elements_name() {
    let keys = keys_of(json!({"eventName": "DeleteSecret", "responseElements": {"name": NAME}}));
    assert_eq!(keys, [NAME]);
}

#[test]
fn the_secret_id_is_read_from_additional_event_data_secret_id() {
    let detail =
        json!({"eventName": "RotationSucceeded", "additionalEventData": {"SecretId": ARN}});
    assert_eq!(keys_of(detail), ["prod/db-credentials-AbCdEf", NAME]);
}

#[test]
fn the_secret_id_is_read_from_service_event_details() {
    let detail =
        json!({"eventName": "RotationSucceeded", "serviceEventDetails": {"secretId": ARN}});
    assert_eq!(keys_of(detail), ["prod/db-credentials-AbCdEf", NAME]);
}

#[test]
fn the_secret_id_is_read_from_top_level_resources() {
    let mut event = cloudtrail(json!({"eventName": "RotationSucceeded"}));
    event["resources"] = json!(["arn:aws:kms:us-east-1:123456789012:key/abc", ARN]);
    assert_eq!(
        change(parse_value(&event)).secret.index_keys(),
        ["prod/db-credentials-AbCdEf", NAME]
    );
}

#[test]
fn the_secret_id_is_read_from_cloudtrail_resources_objects() {
    let detail = json!({
        "eventName": "RotationSucceeded",
        "resources": [{"accountId": ACCOUNT, "type": "AWS::SecretsManager::Secret", "ARN": ARN}],
    });
    assert_eq!(keys_of(detail), ["prod/db-credentials-AbCdEf", NAME]);
}

#[test]
fn the_secret_id_is_read_from_a_rotation_request_id_when_nothing_else_names_it() {
    let request_id = format!("Rotation-{ARN}-7ac47c8c-f328-423b-9698-6926dd1f293e");
    let detail = json!({
        "eventName": "RotationSucceeded",
        "requestParameters": null,
        "requestID": request_id,
    });
    assert_eq!(keys_of(detail), ["prod/db-credentials-AbCdEf", NAME]);
    assert_eq!(arn_in_rotation_request_id("Rotation-"), None);
    assert_eq!(
        arn_in_rotation_request_id("Rotation-x-7ac47c8c-f328-423b-9698-6926dd1f293e"),
        None
    );
    assert_eq!(
        arn_in_rotation_request_id("0b5a7c1e-6f7d-4c1b-9a52-3f0b8f0e1a11"),
        None
    );
}

#[test]
fn the_label_event_reads_the_name_alone_when_resources_is_empty() {
    let mut event: Value = serde_json::from_str(LABEL.1).expect("the sample is JSON");
    event["resources"] = json!([]);
    let change = change(parse_value(&event));
    assert_eq!(change.secret.index_keys(), [NAME]);
    assert_eq!(change.account.as_deref(), Some(ACCOUNT));
    assert_eq!(change.region.as_deref(), Some(REGION));
}

#[test]
fn the_label_event_reads_the_arn_alone_and_the_fixture_variant_with_secret_id() {
    let event = json!({
        "source": "aws.secretsmanager",
        "detail-type": "AWS Secrets Manager Secret Label Updated",
        "region": REGION,
        "detail": {"SecretId": ARN, "AddedLabels": ["AWSCURRENT"]},
    });
    let change = change(parse_value(&event));
    assert_eq!(
        change.secret.index_keys(),
        ["prod/db-credentials-AbCdEf", NAME]
    );
    assert_eq!(change.kind, ChangeKind::StageMoved { label: None });
    assert_eq!(
        change.event_name,
        "AWS Secrets Manager Secret Label Updated"
    );
}

#[test]
fn the_account_and_region_come_from_the_secret_arn_before_the_envelope() {
    let other = "arn:aws:secretsmanager:eu-west-1:210987654321:secret:shared-AbCdEf";
    let detail = json!({"eventName": "PutSecretValue", "requestParameters": {"secretId": other}});
    let change = change(parse_detail(detail));
    assert_eq!(change.account.as_deref(), Some("210987654321"));
    assert_eq!(change.region.as_deref(), Some("eu-west-1"));
}

#[test]
fn the_account_and_region_fall_back_to_the_cloudtrail_record() {
    let event = json!({
        "source": "aws.secretsmanager",
        "detail-type": "AWS Service Event via CloudTrail",
        "detail": {
            "eventName": "RotationSucceeded",
            "additionalEventData": {"SecretId": NAME},
            "recipientAccountId": ACCOUNT,
            "awsRegion": REGION,
            "eventTime": "2025-03-14T10:02:18Z",
            "eventID": "638c6d2d-e098-4100-a3e0-a4b7b87e5b92",
        },
    });
    let change = change(parse_value(&event));
    assert_eq!(change.account.as_deref(), Some(ACCOUNT));
    assert_eq!(change.region.as_deref(), Some(REGION));
    assert_eq!(
        change.event_time,
        Some("2025-03-14T10:02:18Z".parse().expect("a timestamp"))
    );
    assert_eq!(
        change.event_id.as_deref(),
        Some("638c6d2d-e098-4100-a3e0-a4b7b87e5b92")
    );
}

#[test]
fn an_unreadable_time_is_dropped_not_an_error() {
    let mut event: Value = serde_json::from_str(PUT.1).expect("the sample is JSON");
    event["time"] = json!("yesterday");
    event["detail"]["eventTime"] = json!(17);
    assert_eq!(change(parse_value(&event)).event_time, None);
}

#[test]
fn a_secret_id_of_the_wrong_type_is_skipped_for_the_next_place() {
    let detail = json!({
        "eventName": "PutSecretValue",
        "requestParameters": {"secretId": 42},
        "responseElements": {"arn": ["x"], "name": NAME},
    });
    assert_eq!(keys_of(detail), [NAME]);
}

// ---- kinds and ignored events ----------------------------------------------------------------

fn kind_of(event_name: &str) -> ChangeKind {
    change(parse_detail(
        json!({"eventName": event_name, "requestParameters": {"secretId": NAME}}),
    ))
    .kind
}

#[test]
fn each_event_name_maps_to_its_kind() {
    assert_eq!(kind_of("UntagResource"), ChangeKind::MetadataChanged);
    assert_eq!(kind_of("PutResourcePolicy"), ChangeKind::MetadataChanged);
    assert_eq!(kind_of("CancelRotateSecret"), ChangeKind::NoValueChange);
    assert_eq!(kind_of("RotationStarted"), ChangeKind::NoValueChange);
    assert_eq!(kind_of("RotationFailed"), ChangeKind::NoValueChange);
    assert_eq!(kind_of("RotationAbandoned"), ChangeKind::NoValueChange);
    assert_eq!(kind_of("TestRotationSucceeded"), ChangeKind::NoValueChange);
    assert_eq!(kind_of("EndSecretVersionDelete"), ChangeKind::NoValueChange);
    assert_eq!(kind_of("SomeFutureSecretCall"), ChangeKind::Other);
    assert!(ChangeKind::Other.needs_sync());
    assert!(ChangeKind::MetadataChanged.needs_sync());
    assert!(!ChangeKind::NoValueChange.needs_sync());
}

#[test]
fn a_service_event_detail_type_parses_like_an_api_call() {
    let mut event = cloudtrail(
        json!({"eventName": "RotationFailed", "additionalEventData": {"SecretId": ARN},
        "errorMessage": "Error when executing lambda during setSecret step"}),
    );
    event["detail-type"] = json!("AWS Service Event via CloudTrail");
    assert_eq!(change(parse_value(&event)).kind, ChangeKind::NoValueChange);
}

#[test]
fn a_failed_api_call_is_ignored() {
    let mut event: Value = serde_json::from_str(PUT.1).expect("the sample is JSON");
    event["detail"]["errorCode"] = json!("AccessDeniedException");
    event["detail"]["errorMessage"] = json!("User is not authorized");
    assert_eq!(parse_value(&event), Ok(Parsed::Ignored("failed API call")));
}

#[test]
fn read_only_calls_are_ignored() {
    for name in [
        "GetSecretValue",
        "BatchGetSecretValue",
        "DescribeSecret",
        "ListSecrets",
        "ListSecretVersionIds",
        "GetRandomPassword",
        "ValidateResourcePolicy",
    ] {
        let parsed =
            parse_detail(json!({"eventName": name, "requestParameters": {"secretId": NAME}}));
        assert_eq!(parsed, Ok(Parsed::Ignored("read-only call")), "{name}");
    }
    let parsed = parse_detail(json!({"eventName": "PutSecretValue", "readOnly": true}));
    assert_eq!(parsed, Ok(Parsed::Ignored("read-only call")));
}

#[test]
fn events_from_other_sources_and_unknown_detail_types_are_ignored() {
    let mut event: Value = serde_json::from_str(PUT.1).expect("the sample is JSON");
    event["source"] = json!("aws.s3");
    assert_eq!(
        parse_value(&event),
        Ok(Parsed::Ignored(
            "source is not aws.secretsmanager or aws.ssm"
        ))
    );
    event["source"] = json!("aws.secretsmanager");
    event["detail-type"] = json!("Scheduled Event");
    assert_eq!(
        parse_value(&event),
        Ok(Parsed::Ignored("detail-type not supported"))
    );
}

#[test]
fn an_sns_subscription_confirmation_is_ignored() {
    let body = json!({
        "Type": "SubscriptionConfirmation",
        "Message": "You have chosen to subscribe",
        "Token": "x",
    });
    assert_eq!(
        parse_sqs_body(&body.to_string()),
        Ok(Parsed::Ignored("SNS subscription message"))
    );
}

// ---- malformed input -------------------------------------------------------------------------

#[test]
fn malformed_events_give_errors_that_name_the_field() {
    let put: Value = serde_json::from_str(PUT.1).expect("the sample is JSON");
    let with = |path: &[&str], value: Value| {
        let mut event = put.clone();
        let mut target = &mut event;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        match value {
            Value::Null => {
                target
                    .as_object_mut()
                    .expect("an object")
                    .remove(path[path.len() - 1]);
            }
            value => target[path[path.len() - 1]] = value,
        }
        parse_value(&event)
            .map(|_| ())
            .map_err(|error| error.to_string())
    };
    assert_eq!(
        with(&["detail"], Value::Null),
        Err("detail: missing".to_owned())
    );
    assert_eq!(
        with(&["detail"], json!("PutSecretValue")),
        Err("detail: expected an object".to_owned())
    );
    assert_eq!(
        with(&["source"], Value::Null),
        Err("source: missing".to_owned())
    );
    assert_eq!(
        with(&["source"], json!(1)),
        Err("source: expected a string".to_owned())
    );
    assert_eq!(
        with(&["detail-type"], json!([])),
        Err("detail-type: expected a string".to_owned())
    );
    assert_eq!(
        with(&["detail", "eventName"], Value::Null),
        Err("detail.eventName: missing".to_owned())
    );
    assert_eq!(
        with(&["detail", "eventName"], json!({})),
        Err("detail.eventName: expected a string".to_owned())
    );
    let no_id = parse_detail(
        json!({"eventName": "PutSecretValue", "requestParameters": {}, "responseElements": null}),
    );
    assert!(matches!(no_id, Err(ParseError::NoSecretId { .. })));
    let label = json!({
        "source": "aws.secretsmanager",
        "detail-type": "Secret Label Updated",
        "detail": {"labelUpdated": "AWSCURRENT"},
        "resources": [],
    });
    assert_eq!(
        parse_value(&label),
        Err(ParseError::NoSecretId {
            looked_in: LABEL_ID_FIELDS
        })
    );
}

#[test]
fn non_json_and_non_object_input_are_errors() {
    assert!(matches!(
        parse_event(b""),
        Err(ParseError::Json {
            problem: "unexpected end of input",
            ..
        })
    ));
    assert!(matches!(
        parse_event(b"{\"source\": \"aws.secretsmanager\""),
        Err(ParseError::Json { .. })
    ));
    assert!(matches!(
        parse_event(b"\xff\xfe"),
        Err(ParseError::Json { .. })
    ));
    assert_eq!(
        parse_event(b"[]"),
        Err(ParseError::WrongType {
            field: "event",
            expected: "an object"
        })
    );
    assert_eq!(
        parse_event(b"null"),
        Err(ParseError::WrongType {
            field: "event",
            expected: "an object"
        })
    );
    assert_eq!(
        parse_sqs_body("\"text\""),
        Err(ParseError::WrongType {
            field: "SQS message body",
            expected: "an object"
        })
    );
    let sns = json!({"Type": "Notification", "Message": {"source": "aws.secretsmanager"}});
    assert_eq!(
        parse_sqs_body(&sns.to_string()),
        Err(ParseError::WrongType {
            field: "Message",
            expected: "a string"
        })
    );
    assert_eq!(
        parse_sqs_batch(b"{}"),
        Err(ParseError::Missing { field: "Records" })
    );
    assert_eq!(
        parse_sqs_batch(b"{\"Records\": {}}"),
        Err(ParseError::WrongType {
            field: "Records",
            expected: "an array"
        })
    );
    let records = parse_sqs_batch(b"{\"Records\": [7, {\"messageId\": \"m\"}]}").expect("a batch");
    assert_eq!(
        records[0].result,
        Err(ParseError::WrongType {
            field: "Records[]",
            expected: "an object"
        })
    );
    assert_eq!(records[1].message_id.as_deref(), Some("m"));
    assert_eq!(
        records[1].result,
        Err(ParseError::Missing {
            field: "Records[].body"
        })
    );
}

#[test]
fn input_over_the_size_limit_is_rejected_before_parsing() {
    let mut event: Value = serde_json::from_str(PUT.1).expect("the sample is JSON");
    event["detail"]["userAgent"] = json!("x".repeat(MAX_EVENT_BYTES));
    let bytes = event_json(&event);
    let expected = ParseError::TooLarge {
        what: "event",
        len: bytes.len(),
        max: MAX_EVENT_BYTES,
    };
    assert_eq!(parse_event(&bytes), Err(expected));
    let body = String::from_utf8(bytes).expect("UTF-8");
    assert!(matches!(
        parse_sqs_body(&body),
        Err(ParseError::TooLarge {
            what: "SQS message body",
            ..
        })
    ));
    let batch = vec![b' '; MAX_BATCH_BYTES + 1];
    assert!(matches!(
        parse_sqs_batch(&batch),
        Err(ParseError::TooLarge {
            what: "SQS batch",
            ..
        })
    ));
    assert!(parse_event(&vec![b' '; MAX_EVENT_BYTES + 1]).is_err());
}

#[test]
fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(100_000);
    assert!(matches!(
        parse_event(deep.as_bytes()),
        Err(ParseError::Json { .. })
    ));
    let detail = format!("{}{}", "{\"a\":".repeat(50_000), "1");
    let head = r#"{"source":"aws.secretsmanager","detail-type":"Secret Label Updated","detail":"#;
    let event = format!("{head}{detail}");
    assert!(matches!(
        parse_event(event.as_bytes()),
        Err(ParseError::Json { .. })
    ));
}

// ---- no panic, no leak: every sample, mutated ------------------------------------------------

const CANARY: &str = "CANARY-hunter2-prod/db-credentials";

/// Every string in `value`, recursing into strings that are themselves JSON (SQS bodies, SNS
/// messages).
fn strings_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                strings_in(&inner, out);
            }
            out.push(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|item| strings_in(item, out)),
        Value::Object(fields) => fields.values().for_each(|field| strings_in(field, out)),
        _ => {}
    }
}

/// The strings no error message may contain: every string of four or more characters in any
/// sample, and the canary.
fn forbidden_strings() -> Vec<String> {
    let mut strings = vec![CANARY.to_owned()];
    for (_, json) in ALL {
        strings_in(
            &serde_json::from_str(json).expect("the sample is JSON"),
            &mut strings,
        );
    }
    strings.retain(|s| s.chars().count() >= 4);
    strings.sort();
    strings.dedup();
    strings
}

/// Feeds `bytes` to every entry point (as an event, an SQS body, a batch; with `wrap` also inside
/// an SNS envelope and a batch record) and checks that no error message holds a forbidden
/// string. Returns how many errors it saw.
fn feed(bytes: &[u8], wrap: bool, forbidden: &[String]) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let mut errors: Vec<ParseError> = Vec::new();
    let mut batch_errors = |batch: Result<Vec<SqsRecord>, ParseError>| match batch {
        Ok(records) => errors.extend(records.into_iter().filter_map(|r| r.result.err())),
        Err(error) => errors.push(error),
    };
    batch_errors(parse_sqs_batch(bytes));
    if wrap {
        let sns = json!({"Type": "Notification", "Message": text}).to_string();
        let batch =
            json!({"Records": [{"messageId": "m", "body": text}, {"messageId": "n", "body": sns}]});
        batch_errors(parse_sqs_batch(&event_json(&batch)));
    }
    errors.extend(parse_event(bytes).err());
    errors.extend(parse_sqs_body(&text).err());
    for error in &errors {
        assert_no_leak(error, forbidden);
    }
    errors.len()
}

#[test]
fn the_leak_check_forbids_the_names_arns_and_ids_of_the_samples() {
    let forbidden = forbidden_strings();
    for s in [
        NAME,
        ARN,
        CANARY,
        "4d383ea9-084a-49c9-8722-cbfb0f25c456",
        "payments",
        "ci-deploy",
    ] {
        assert!(forbidden.iter().any(|f| f == s), "{s}");
    }
}

#[test]
fn every_truncation_of_every_sample_is_handled_without_panic_or_leak() {
    let forbidden = forbidden_strings();
    let mut errors = 0;
    for (_, json) in ALL {
        for end in 0..json.len() {
            // Wrapping every prefix too would take most of a minute in a debug build.
            errors += feed(&json.as_bytes()[..end], end % 16 == 0, &forbidden);
        }
    }
    assert!(errors > 0);
}

#[test]
fn random_byte_mutations_of_every_sample_are_handled_without_panic_or_leak() {
    let forbidden = forbidden_strings();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    const REPLACEMENTS: &[u8] = b"\"\\{}[]:,0-eE.nulltrue \x00\xff\xc3";
    for (_, json) in ALL {
        for _ in 0..300 {
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
            feed(&bytes, true, &forbidden);
        }
    }
}

#[test]
fn every_field_of_every_sample_replaced_by_every_type_is_handled_without_panic_or_leak() {
    let forbidden = forbidden_strings();
    let replacements = [
        Value::Null,
        json!(true),
        json!(42),
        json!(-1.5e300),
        json!(""),
        json!(CANARY),
        json!(format!(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:{CANARY}"
        )),
        json!([]),
        json!([CANARY, {"ARN": CANARY}]),
        json!({}),
        json!({CANARY: CANARY, "Message": CANARY, "body": CANARY}),
    ];
    let mut errors = 0;
    for (_, json) in ALL {
        for mutated in field_replacements(json, &replacements) {
            errors += feed(mutated.as_bytes(), true, &forbidden);
        }
    }
    assert!(errors > 0);
}
