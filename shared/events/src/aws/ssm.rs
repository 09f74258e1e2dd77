//! AWS Systems Manager Parameter Store change events, as EventBridge delivers them.
//!
//! Parameter Store sends them to the default event bus itself (no CloudTrail trail needed), best
//! effort, with `source: "aws.ssm"` and `detail-type: "Parameter Store Change"`:
//!
//! ```json
//! { "source": "aws.ssm", "detail-type": "Parameter Store Change",
//!   "account": "123456789012", "region": "us-east-1", "time": "…", "id": "…",
//!   "resources": ["arn:aws:ssm:us-east-1:123456789012:parameter/prod/db-password"],
//!   "detail": { "operation": "Update", "name": "/prod/db-password", "type": "SecureString",
//!               "description": "…" } }
//! ```
//!
//! `operation` is `Create`, `Update`, `Delete` or `LabelParameterVersion`. No event carries a
//! value. The ARN drops the leading `/` of a hierarchical name (`parameter/prod/db-password` for
//! `/prod/db-password`), so the name is read from `detail.name`, and from the ARN only when that
//! is missing. Other `aws.ssm` detail-types (Run Command, Automation, `Parameter Store Policy
//! Action`, …) are [`Parsed::Ignored`].
//!
//! [`super::parse_event`], [`super::parse_sqs_body`] and [`super::parse_sqs_batch`] route such
//! events here and answer [`Parsed::Parameter`].

use serde_json::Value;

use super::Parsed;
use crate::ParseError;
use crate::json::{self, Object};

/// The EventBridge `source` of Systems Manager events.
pub(crate) const SOURCE: &str = "aws.ssm";

/// The `detail-type` of a parameter's change.
const CHANGE: &str = "Parameter Store Change";

/// Where a parameter name is searched, for [`ParseError::NoSecretId`].
const NAME_FIELDS: &str = "detail.name, resources";

/// One change to one Parameter Store parameter. Holds no value: the events carry none.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterChange {
    /// The parameter's region: the ARN's, else the event's `region`.
    pub region: Option<String>,
    /// The account that owns the parameter: the ARN's, else the event's `account`.
    pub account: Option<String>,
    /// The parameter name as `GetParameter` takes it (`/prod/db-password`): `detail.name`, else
    /// the name in the ARN, with the `/` the ARN drops put back when the name has a hierarchy
    /// (`parameter/prod/db` is `/prod/db`). A top-level name read from an ARN alone
    /// (`parameter/db`) cannot tell `db` from `/db`, and is taken as `db`.
    pub name: String,
    /// What happened.
    pub operation: ParameterOperation,
    /// When it happened: the event's `time`.
    pub event_time: Option<jiff::Timestamp>,
    /// The EventBridge event id, for deduplication and logs.
    pub event_id: Option<String>,
}

/// The provider kind Parameter Store changes are for: [`crate::Location::kind`].
pub const KIND: &str = "aws/ParameterStore";

impl ParameterChange {
    /// Whether an ExternalSecret reading this parameter should sync: every operation changes
    /// what some reader gets (a label move changes what `remoteRef.version: <label>` reads).
    pub fn needs_sync(&self) -> bool {
        true
    }

    /// The normalized change: the parameter's name, in its region and account (each when known).
    pub fn to_change(&self) -> crate::Change {
        crate::Change {
            place: crate::Place::At(
                crate::Location::new(KIND)
                    .with("region", self.region.clone())
                    .with("account", self.account.clone()),
            ),
            keys: vec![self.name.clone()],
            event_time: self.event_time,
            id: self.event_id.clone(),
        }
    }
}

/// `detail.operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterOperation {
    /// The parameter was created (version 1).
    Create,
    /// A new version was written (or only its description, tier or policies changed: the event
    /// does not say).
    Update,
    /// The parameter and all its versions were deleted.
    Delete,
    /// A label was attached to (or moved to) a version.
    LabelParameterVersion,
    /// An operation this parser does not know, or none readable. It still needs a sync: a
    /// missed change costs more than one extra read.
    Other,
}

impl ParameterOperation {
    fn of(operation: Option<&str>) -> Self {
        match operation {
            Some("Create") => Self::Create,
            Some("Update") => Self::Update,
            Some("Delete") => Self::Delete,
            Some("LabelParameterVersion") => Self::LabelParameterVersion,
            _ => Self::Other,
        }
    }

    /// The operation as AWS spells it (`Other` for any other), safe to log and to use as a
    /// metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "Create",
            Self::Update => "Update",
            Self::Delete => "Delete",
            Self::LabelParameterVersion => "LabelParameterVersion",
            Self::Other => "Other",
        }
    }
}

/// A parameter ARN, `arn:<partition>:ssm:<region>:<account>:parameter/<name>`: as an event
/// carries it, and as a `remoteRef.key` may name a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterArn<'a> {
    pub region: &'a str,
    pub account: &'a str,
    /// The name as the ARN writes it: without the leading `/` of a hierarchical name.
    pub name: &'a str,
}

impl<'a> ParameterArn<'a> {
    /// Parses a parameter ARN; `None` for anything else.
    pub fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(_partition), Some("ssm"), Some(region), Some(account), Some(rest)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let name = rest.strip_prefix("parameter/")?;
        (!name.is_empty()).then_some(Self {
            region,
            account,
            name,
        })
    }

    /// The name as `GetParameter` takes it: a name with a hierarchy begins with `/`.
    pub fn parameter_name(&self) -> String {
        if self.name.contains('/') && !self.name.starts_with('/') {
            format!("/{}", self.name)
        } else {
            self.name.to_owned()
        }
    }
}

/// Reads an `aws.ssm` event (its `source` already checked).
pub(crate) fn from_event(event: &Object) -> Result<Parsed, ParseError> {
    let detail_type = json::required_str(event, "detail-type", "detail-type")?;
    if detail_type != CHANGE {
        return Ok(Parsed::Ignored("detail-type not supported"));
    }
    let detail = json::required_object(event, "detail", "detail")?;
    let arn = first_parameter_arn(event.get("resources"));
    let name = match json::opt_str(detail, "name").filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => arn
            .as_ref()
            .map(ParameterArn::parameter_name)
            .ok_or(ParseError::NoSecretId {
                looked_in: NAME_FIELDS,
            })?,
    };
    let located = |from_arn: Option<&'_ str>, key: &str| {
        from_arn
            .filter(|s| !s.is_empty())
            .or_else(|| json::opt_str(event, key))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(Parsed::Parameter(ParameterChange {
        region: located(arn.as_ref().map(|a| a.region), "region"),
        account: located(arn.as_ref().map(|a| a.account), "account"),
        name,
        operation: ParameterOperation::of(json::opt_str(detail, "operation")),
        event_time: json::opt_str(event, "time").and_then(|t| t.parse().ok()),
        event_id: json::opt_str(event, "id").map(str::to_owned),
    }))
}

/// The first parameter ARN among `resources` (strings); others are skipped.
fn first_parameter_arn(resources: Option<&Value>) -> Option<ParameterArn<'_>> {
    let Some(Value::Array(resources)) = resources else {
        return None;
    };
    resources
        .iter()
        .filter_map(Value::as_str)
        .find_map(ParameterArn::parse)
}

#[cfg(test)]
mod tests;
