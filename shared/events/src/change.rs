//! The normalized change: what every change source (an SQS message, a Lambda event, a Vault audit
//! line or event frame, a signed webhook, a gap in a feed) hands to the engine's one ingest path.
//!
//! A change names a [`Place`] and the keys that changed there. A place is either a [`Location`]
//! in a provider kind's own coordinates (AWS: region and account; Vault: server, namespace and
//! mount), which the kind compares with the locations of the cached stores, or a store the sender
//! named (a webhook). No keys means anything at the place may have changed.
//!
//! A change holds names only, never a value.

use jiff::Timestamp;

use crate::webhook::StoreName;

/// A provider kind's coordinates of a place.
///
/// On a change, a coordinate that is absent is unknown: it may be any value (an audit line does
/// not say which Vault server wrote it). On a store, an absent coordinate is one the store leaves
/// open (an AWS store whose role names no account reads whatever account its credentials are
/// in; a Vault store without a mount in its `path` takes the mount from each key). Two locations
/// may be the same place when they are of one kind and every coordinate both name is equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The provider kind's id, such as `aws/SecretsManager`.
    pub kind: &'static str,
    coords: Vec<(&'static str, String)>,
}

impl Location {
    /// A location of `kind` with no coordinates yet.
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            coords: Vec::new(),
        }
    }

    /// This location with the coordinate `name` set, when `value` is known.
    #[must_use]
    pub fn with(mut self, name: &'static str, value: Option<impl Into<String>>) -> Self {
        if let Some(value) = value {
            let value = value.into();
            match self.coords.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => self.coords.push((name, value)),
            }
        }
        self
    }

    /// The coordinate `name`, when known.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.coords
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The coordinates set, in the order they were set.
    pub fn coords(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.coords.iter().map(|(n, v)| (*n, v.as_str()))
    }

    /// Whether the two may be the same place: one kind, and every coordinate both name equal.
    pub fn overlaps(&self, other: &Location) -> bool {
        self.kind == other.kind
            && self
                .coords
                .iter()
                .all(|(name, value)| other.get(name).is_none_or(|o| o == value))
    }
}

/// Where a change happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A place at a provider.
    At(Location),
    /// A store named by the sender: what changed is whatever that store reads.
    Store(StoreName),
}

/// One normalized change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub place: Place,
    /// The keys that changed, each as the provider names it; one key may come in several
    /// spellings (a Secrets Manager name and the names its ARN may stand for). Empty: anything at
    /// the place may have changed.
    pub keys: Vec<String>,
    /// When it happened at the provider, when the source says.
    pub event_time: Option<Timestamp>,
    /// The source's id of the change (an EventBridge event id, a Vault request id), for logs.
    pub id: Option<String>,
}

impl Change {
    /// A change to `keys` at `place`, with no time or id.
    pub fn new(place: Place, keys: Vec<String>) -> Self {
        Self {
            place,
            keys,
            event_time: None,
            id: None,
        }
    }

    /// Anything at `place` may have changed: a gap in a feed.
    pub fn everything_at(place: Place) -> Self {
        Self::new(place, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_overlap_when_every_coordinate_both_name_is_equal() {
        let store = Location::new("k")
            .with("region", Some("us-east-1"))
            .with("account", None::<String>);
        let change = Location::new("k")
            .with("region", Some("us-east-1"))
            .with("account", Some("123"));
        assert!(store.overlaps(&change), "the store leaves the account open");
        assert!(change.overlaps(&store));
        let elsewhere = Location::new("k").with("region", Some("eu-west-1"));
        assert!(!store.overlaps(&elsewhere));
        let other_kind = Location::new("other").with("region", Some("us-east-1"));
        assert!(!store.overlaps(&other_kind));
        assert_eq!(change.get("account"), Some("123"));
        assert_eq!(store.get("account"), None);
    }
}
