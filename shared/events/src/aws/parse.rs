//! EventBridge events (and their SQS, SNS and Lambda wrappers) → [`Parsed`].

use serde_json::Value;

use super::{ChangeKind, Parsed, SecretChange, SecretId, ssm};
use crate::json::{self, Object};
use crate::{MAX_BATCH_BYTES, MAX_EVENT_BYTES, ParseError};

/// The EventBridge `source` of every Secrets Manager event.
const SOURCE: &str = "aws.secretsmanager";

/// Where CloudTrail-derived events are searched for a secret id, for [`ParseError::NoSecretId`].
const CLOUDTRAIL_ID_FIELDS: &str = "detail.responseElements, detail.additionalEventData, \
     detail.serviceEventDetails, detail.requestParameters, detail.resources, resources, \
     detail.requestID";

/// Where native label events are searched for a secret id, for [`ParseError::NoSecretId`].
const LABEL_ID_FIELDS: &str = "detail.name, detail.secretId, detail.arn, resources";

/// Parses one EventBridge event: the payload of a Lambda invoked by an EventBridge rule, or an
/// SQS message body written by an EventBridge rule (see [`parse_sqs_body`] for SNS too).
///
/// Errors on input over [`MAX_EVENT_BYTES`], on malformed JSON, and on a Secrets Manager event
/// missing what its family requires (`source`, `detail-type`, `detail`, `detail.eventName`, a
/// secret id). A Parameter Store change (`source: "aws.ssm"`) is [`Parsed::Parameter`] (see
/// [`super::ssm`]). Other sources and unknown detail-types are [`Parsed::Ignored`].
pub fn parse_event(json: &[u8]) -> Result<Parsed, ParseError> {
    let event = json::parse("event", json, MAX_EVENT_BYTES)?;
    from_event(&event)
}

/// Parses an SQS message body: an EventBridge event, or an SNS `Notification` whose `Message` is
/// one (an EventBridge rule → SNS topic → SQS queue without raw message delivery). SNS
/// subscription confirmations are [`Parsed::Ignored`].
pub fn parse_sqs_body(body: &str) -> Result<Parsed, ParseError> {
    let value = json::parse("SQS message body", body.as_bytes(), MAX_EVENT_BYTES)?;
    let object = json::object(&value, "SQS message body")?;
    match json::opt_str(object, "Type") {
        Some("Notification") => {
            let message = json::required_str(object, "Message", "Message")?;
            let event = json::parse("SNS Message", message.as_bytes(), MAX_EVENT_BYTES)?;
            from_event(&event)
        }
        Some("SubscriptionConfirmation" | "UnsubscribeConfirmation") => {
            Ok(Parsed::Ignored("SNS subscription message"))
        }
        _ => from_event(&value),
    }
}

/// One record of a Lambda SQS event, parsed on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsRecord {
    /// The record's `messageId`, for the Lambda's `batchItemFailures`.
    pub message_id: Option<String>,
    /// Its body, parsed by [`parse_sqs_body`].
    pub result: Result<Parsed, ParseError>,
}

/// Parses a Lambda SQS event (`{"Records": [{"messageId", "body", …}]}`), each record's body on
/// its own: a malformed record is an `Err` in its [`SqsRecord`], not in the batch. The batch
/// itself errors only when it is over [`MAX_BATCH_BYTES`], not JSON, or has no `Records` array.
pub fn parse_sqs_batch(json: &[u8]) -> Result<Vec<SqsRecord>, ParseError> {
    let batch = json::parse("SQS batch", json, MAX_BATCH_BYTES)?;
    let batch = json::object(&batch, "SQS batch")?;
    let records = match batch.get("Records") {
        None | Some(Value::Null) => return Err(ParseError::Missing { field: "Records" }),
        Some(Value::Array(records)) => records,
        Some(_) => {
            return Err(ParseError::WrongType {
                field: "Records",
                expected: "an array",
            });
        }
    };
    Ok(records.iter().map(sqs_record).collect())
}

fn sqs_record(record: &Value) -> SqsRecord {
    let Some(record) = record.as_object() else {
        let error = ParseError::WrongType {
            field: "Records[]",
            expected: "an object",
        };
        return SqsRecord {
            message_id: None,
            result: Err(error),
        };
    };
    SqsRecord {
        message_id: json::opt_str(record, "messageId").map(str::to_owned),
        result: json::required_str(record, "body", "Records[].body").and_then(parse_sqs_body),
    }
}

/// The three event families, told apart by `detail-type`.
enum Family {
    /// `AWS API Call via CloudTrail` and `AWS Service Event via CloudTrail`: `detail` is a
    /// CloudTrail record.
    CloudTrail,
    /// `Secret Label Updated`: Secrets Manager's own event.
    LabelUpdated,
}

impl Family {
    /// Matches on the end of the detail-type: the China regions' documentation writes "Amazon"
    /// where the global one writes "AWS", and one public fixture prefixes "AWS Secrets Manager"
    /// to the native event's name.
    fn of(detail_type: &str) -> Option<Self> {
        if detail_type.ends_with("API Call via CloudTrail")
            || detail_type.ends_with("Service Event via CloudTrail")
        {
            Some(Self::CloudTrail)
        } else if detail_type.ends_with("Secret Label Updated") {
            Some(Self::LabelUpdated)
        } else {
            None
        }
    }
}

fn from_event(value: &Value) -> Result<Parsed, ParseError> {
    let event = json::object(value, "event")?;
    match json::required_str(event, "source", "source")? {
        SOURCE => {}
        ssm::SOURCE => return ssm::from_event(event),
        _ => {
            return Ok(Parsed::Ignored(
                "source is not aws.secretsmanager or aws.ssm",
            ));
        }
    }
    let detail_type = json::required_str(event, "detail-type", "detail-type")?;
    let Some(family) = Family::of(detail_type) else {
        return Ok(Parsed::Ignored("detail-type not supported"));
    };
    let detail = json::required_object(event, "detail", "detail")?;
    match family {
        Family::CloudTrail => from_cloudtrail(event, detail),
        Family::LabelUpdated => from_label_updated(event, detail, detail_type),
    }
}

/// Families A and B: `detail` is a CloudTrail record.
fn from_cloudtrail(event: &Object, detail: &Object) -> Result<Parsed, ParseError> {
    let event_name = json::required_str(detail, "eventName", "detail.eventName")?;
    if detail.get("errorCode").is_some_and(|code| !code.is_null()) {
        return Ok(Parsed::Ignored("failed API call"));
    }
    if detail.get("readOnly") == Some(&Value::Bool(true)) || is_read_only(event_name) {
        return Ok(Parsed::Ignored("read-only call"));
    }
    let request = json::opt_object(detail, "requestParameters");
    let response = json::opt_object(detail, "responseElements");

    // Most authoritative first, since the first ARN gives the account and region: the ARN the
    // service answered with, the ids service events carry, then what the caller passed.
    let mut secret = SecretId::default();
    push_keys(&mut secret, response, &["arn", "aRN", "ARN", "Arn"]);
    for key in ["additionalEventData", "serviceEventDetails"] {
        let ids = &[
            "SecretId",
            "secretId",
            "SecretArn",
            "secretArn",
            "arn",
            "aRN",
            "ARN",
        ];
        push_keys(&mut secret, json::opt_object(detail, key), ids);
    }
    push_keys(
        &mut secret,
        request,
        &["secretId", "SecretId", "name", "Name"],
    );
    push_keys(&mut secret, response, &["name", "Name"]);
    push_resources(&mut secret, detail.get("resources"));
    push_resources(&mut secret, event.get("resources"));
    if secret.is_empty() {
        // Rotation events' requestID is "Rotation-<secret ARN>-<uuid>".
        if let Some(arn) = json::opt_str(detail, "requestID").and_then(arn_in_rotation_request_id) {
            secret.push(arn);
        }
    }
    if secret.is_empty() {
        return Err(ParseError::NoSecretId {
            looked_in: CLOUDTRAIL_ID_FIELDS,
        });
    }

    let version_id = response
        .and_then(|r| json::first_str(r, &["versionId", "VersionId"]))
        .or_else(|| match event_name {
            "UpdateSecretVersionStage" => {
                request.and_then(|r| json::first_str(r, &["moveToVersionId", "MoveToVersionId"]))
            }
            // The token becomes the new version's id.
            "PutSecretValue" => request
                .and_then(|r| json::first_str(r, &["clientRequestToken", "ClientRequestToken"])),
            _ => None,
        });
    let (account, region) = locate(
        &secret,
        event,
        json::opt_str(detail, "recipientAccountId"),
        json::opt_str(detail, "awsRegion"),
    );
    Ok(Parsed::Change(SecretChange {
        account,
        region,
        kind: cloudtrail_kind(event_name, request),
        secret,
        version_id: version_id.map(str::to_owned),
        event_time: timestamp(event, "time").or_else(|| timestamp(detail, "eventTime")),
        event_id: json::opt_str(event, "id")
            .or_else(|| json::opt_str(detail, "eventID"))
            .map(str::to_owned),
        event_name: event_name.to_owned(),
    }))
}

/// Family C: `Secret Label Updated`, `detail: {name, labelUpdated, versionId}`, ARN in
/// `resources[0]`.
fn from_label_updated(
    event: &Object,
    detail: &Object,
    detail_type: &str,
) -> Result<Parsed, ParseError> {
    let mut secret = SecretId::default();
    push_resources(&mut secret, event.get("resources"));
    let ids = &[
        "name",
        "Name",
        "secretId",
        "SecretId",
        "arn",
        "ARN",
        "secretArn",
        "SecretArn",
    ];
    push_keys(&mut secret, Some(detail), ids);
    if secret.is_empty() {
        return Err(ParseError::NoSecretId {
            looked_in: LABEL_ID_FIELDS,
        });
    }
    let label = json::first_str(detail, &["labelUpdated", "LabelUpdated"]).map(str::to_owned);
    let (account, region) = locate(&secret, event, None, None);
    Ok(Parsed::Change(SecretChange {
        account,
        region,
        secret,
        kind: ChangeKind::StageMoved { label },
        version_id: json::first_str(detail, &["versionId", "VersionId"]).map(str::to_owned),
        event_time: timestamp(event, "time"),
        event_id: json::opt_str(event, "id").map(str::to_owned),
        event_name: detail_type.to_owned(),
    }))
}

/// `Get*`, `Describe*`, `List*`, `BatchGet*` and `ValidateResourcePolicy` change nothing. They
/// reach EventBridge only through rules in state `ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`
/// (so a sync service's own reads do not feed back), but such a rule may exist.
fn is_read_only(event_name: &str) -> bool {
    ["Get", "Describe", "List", "BatchGet"]
        .iter()
        .any(|prefix| event_name.starts_with(prefix))
        || event_name == "ValidateResourcePolicy"
}

fn cloudtrail_kind(event_name: &str, request: Option<&Object>) -> ChangeKind {
    match event_name {
        "PutSecretValue" | "UpdateSecret" | "RotationSucceeded" => ChangeKind::ValueChanged,
        "UpdateSecretVersionStage" => ChangeKind::StageMoved {
            label: request
                .and_then(|r| json::first_str(r, &["versionStage", "VersionStage"]))
                .map(str::to_owned),
        },
        "CreateSecret" => ChangeKind::Created,
        "DeleteSecret" => ChangeKind::Deleted,
        "RestoreSecret" => ChangeKind::Restored,
        "TagResource"
        | "UntagResource"
        | "PutResourcePolicy"
        | "DeleteResourcePolicy"
        | "ReplicateSecretToRegions"
        | "RemoveRegionsFromReplication"
        | "StopReplicationToReplica" => ChangeKind::MetadataChanged,
        "RotateSecret"
        | "CancelRotateSecret"
        | "RotationStarted"
        | "RotationFailed"
        | "RotationAbandoned"
        | "TestRotationStarted"
        | "TestRotationSucceeded"
        | "TestRotationFailed"
        | "StartSecretVersionDelete"
        | "EndSecretVersionDelete"
        | "CancelSecretVersionDelete" => ChangeKind::NoValueChange,
        _ => ChangeKind::Other,
    }
}

/// Pushes every string held under `keys` in `object`.
fn push_keys(secret: &mut SecretId, object: Option<&Object>, keys: &[&str]) {
    let Some(object) = object else { return };
    for key in keys {
        if let Some(id) = json::opt_str(object, key) {
            secret.push(id);
        }
    }
}

/// Pushes the ARNs of a `resources` array: strings (EventBridge) or objects with an `ARN`
/// (CloudTrail). Other services' ARNs (a KMS key, say) are skipped by [`SecretId::push`].
fn push_resources(secret: &mut SecretId, resources: Option<&Value>) {
    let Some(Value::Array(resources)) = resources else {
        return;
    };
    for resource in resources {
        match resource {
            Value::String(arn) => {
                secret.push(arn);
            }
            Value::Object(resource) => push_keys(secret, Some(resource), &["ARN", "arn"]),
            _ => {}
        }
    }
}

/// The ARN inside a rotation event's `requestID`, `Rotation-<ARN>-<36-character uuid>`.
fn arn_in_rotation_request_id(request_id: &str) -> Option<&str> {
    const UUID_WITH_HYPHEN: usize = 37;
    let rest = request_id.strip_prefix("Rotation-")?;
    let cut = rest.len().checked_sub(UUID_WITH_HYPHEN)?;
    let arn = rest.get(..cut)?;
    (rest.as_bytes()[cut] == b'-' && arn.starts_with("arn:")).then_some(arn)
}

/// The secret's account and region: from its first ARN, else the event envelope, else the
/// CloudTrail record.
fn locate(
    secret: &SecretId,
    event: &Object,
    detail_account: Option<&str>,
    detail_region: Option<&str>,
) -> (Option<String>, Option<String>) {
    let arn = secret.arns().first();
    let account = arn
        .and_then(|arn| arn.account.as_deref())
        .or_else(|| json::opt_str(event, "account"))
        .or(detail_account)
        .filter(|account| !account.is_empty());
    let region = arn
        .and_then(|arn| arn.region.as_deref())
        .or_else(|| json::opt_str(event, "region"))
        .or(detail_region)
        .filter(|region| !region.is_empty());
    (account.map(str::to_owned), region.map(str::to_owned))
}

/// An RFC 3339 timestamp field; absent when missing or unreadable (it is only metadata).
fn timestamp(object: &Object, key: &str) -> Option<jiff::Timestamp> {
    json::opt_str(object, key)?.parse().ok()
}

#[cfg(test)]
mod tests;
