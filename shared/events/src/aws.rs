//! AWS Secrets Manager change events, as EventBridge delivers them; Parameter Store changes
//! (`source: "aws.ssm"`) come through the same entry points and are read by [`ssm`].
//!
//! Three families reach the default event bus, all with `source: "aws.secretsmanager"`:
//!
//! | family | `detail-type` | examples | secret id in |
//! |---|---|---|---|
//! | API calls | `AWS API Call via CloudTrail` | `PutSecretValue`, `UpdateSecret`, `CreateSecret`, `DeleteSecret` | `detail.requestParameters`, `detail.responseElements` |
//! | service events | `AWS Service Event via CloudTrail` | `RotationSucceeded`, `RotationFailed` | `detail.additionalEventData.SecretId` (or `serviceEventDetails`) |
//! | native | `Secret Label Updated` | a staging label moved to a new version | `detail.name`, `resources[0]` |
//!
//! [`parse_event`] reads one such event (a Lambda invoked by an EventBridge rule gets exactly this);
//! [`parse_sqs_body`] reads an SQS message body, which is either the event itself or an SNS
//! notification carrying it; [`parse_sqs_batch`] reads a Lambda SQS event (`Records[]`) and parses
//! each body on its own, so one poison message does not hide the others.
//!
//! The outcome is a [`SecretChange`] or [`Parsed::Ignored`] with the reason: events from other
//! sources, failed API calls (`errorCode` set), read-only calls (`Get*`, `Describe*`, `List*`,
//! `BatchGet*`, `readOnly: true`), and detail-types this parser does not know.
//!
//! Matching a change to an ExternalSecret is [`matches()`]; an index over many ExternalSecrets keys
//! them by `(store region, key)` for each of [`remote_key_index_keys`] and looks a change up by
//! `(change.region, key)` for each of [`SecretId::index_keys`]. Both sides follow one rule, which
//! prefers an extra sync to a missed one; see [`SecretId`].

mod parse;
mod secret_id;
pub mod ssm;

pub use parse::{SqsRecord, parse_event, parse_sqs_batch, parse_sqs_body};
pub use secret_id::{SecretArn, SecretId, matches, remote_key_index_keys};
pub use ssm::{ParameterChange, ParameterOperation};

/// One change to one secret, normalized from any of the three event families.
///
/// Holds no secret value: Secrets Manager events never carry one.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretChange {
    /// The account that owns the secret: the secret ARN's account when the event carries an ARN,
    /// else the event's `account`, else `detail.recipientAccountId`.
    pub account: Option<String>,
    /// The secret's region: the secret ARN's region when the event carries an ARN, else the
    /// event's `region`, else `detail.awsRegion`.
    pub region: Option<String>,
    /// The names and ARNs the event used for the secret.
    pub secret: SecretId,
    /// What happened.
    pub kind: ChangeKind,
    /// The secret version the event names, when it names one: `responseElements.versionId`, the
    /// `moveToVersionId` of `UpdateSecretVersionStage`, the `clientRequestToken` of
    /// `PutSecretValue` (which becomes the new version's id), `detail.versionId` of
    /// `Secret Label Updated`.
    pub version_id: Option<String>,
    /// When it happened: the event's `time`, else `detail.eventTime`.
    pub event_time: Option<jiff::Timestamp>,
    /// The EventBridge event id (else CloudTrail's `eventID`), for deduplication and logs.
    pub event_id: Option<String>,
    /// `detail.eventName` for CloudTrail families (`PutSecretValue`, `RotationSucceeded`), the
    /// `detail-type` for native events (`Secret Label Updated`).
    pub event_name: String,
}

/// The provider kind Secrets Manager changes are for: [`crate::Location::kind`].
pub const KIND: &str = "aws/SecretsManager";

impl SecretChange {
    /// Whether the change may alter what an ExternalSecret reads; see [`ChangeKind::needs_sync`].
    pub fn needs_sync(&self) -> bool {
        self.kind.needs_sync()
    }

    /// Where it happened: the region and account, each when known.
    pub fn location(&self) -> crate::Location {
        crate::Location::new(KIND)
            .with("region", self.region.clone())
            .with("account", self.account.clone())
    }

    /// The normalized change: at [`SecretChange::location`], the keys the secret may be indexed
    /// under ([`SecretId::index_keys`]).
    pub fn to_change(&self) -> crate::Change {
        crate::Change {
            place: crate::Place::At(self.location()),
            keys: self.secret.index_keys(),
            event_time: self.event_time,
            id: self.event_id.clone(),
        }
    }
}

/// What happened to the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new value may now be current: `PutSecretValue`, `UpdateSecret` (which may also be a
    /// description-only update: CloudTrail does not say, so it counts), `RotationSucceeded`.
    ValueChanged,
    /// A staging label moved to another version: `UpdateSecretVersionStage`, native
    /// `Secret Label Updated`. `label` is the label moved, when the event says.
    StageMoved { label: Option<String> },
    /// `CreateSecret`: an ExternalSecret waiting for a missing secret can now sync.
    Created,
    /// `DeleteSecret` (scheduled or immediate): reads now fail.
    Deleted,
    /// `RestoreSecret`: a scheduled deletion was cancelled; reads work again.
    Restored,
    /// Tags, resource policy or replication changed: `TagResource`, `UntagResource`,
    /// `PutResourcePolicy`, `DeleteResourcePolicy`, `ReplicateSecretToRegions`,
    /// `RemoveRegionsFromReplication`, `StopReplicationToReplica`. ESO reads tags
    /// (`metadataPolicy: Fetch`), and a policy change can turn a denied read into a good one.
    MetadataChanged,
    /// Activity that moves no value: `RotateSecret` and `RotationStarted` (rotation only starts;
    /// the value moves at `RotationSucceeded` or the rotation function's
    /// `UpdateSecretVersionStage`), `CancelRotateSecret`, `RotationFailed`, `RotationAbandoned`,
    /// `TestRotation*`, `StartSecretVersionDelete`, `EndSecretVersionDelete`,
    /// `CancelSecretVersionDelete`.
    NoValueChange,
    /// A mutating event this parser does not know (a new API, say). It needs a sync: a missed
    /// change costs more than one extra read.
    Other,
}

impl ChangeKind {
    /// Whether an ExternalSecret reading this secret should sync: every kind but
    /// [`ChangeKind::NoValueChange`].
    pub fn needs_sync(&self) -> bool {
        !matches!(self, Self::NoValueChange)
    }
}

/// The outcome of parsing one well-formed event.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A change to a secret.
    Change(SecretChange),
    /// A change to a Parameter Store parameter (`source: "aws.ssm"`); see [`ssm`].
    Parameter(ParameterChange),
    /// Not a change this crate acts on; the reason is a fixed phrase, safe to log and to use as
    /// a metric label (for example "read-only call", "detail-type not supported").
    Ignored(&'static str),
}

impl Parsed {
    /// The normalized change to sync, or the fixed phrase saying why there is none (an ignored
    /// event, or a change that moves no value). Every AWS event source answers through this.
    pub fn to_change(&self) -> Result<crate::Change, &'static str> {
        match self {
            Self::Change(change) if change.needs_sync() => Ok(change.to_change()),
            Self::Change(_) => Err("moves no value"),
            Self::Parameter(change) => Ok(change.to_change()),
            Self::Ignored(reason) => Err(reason),
        }
    }
}
