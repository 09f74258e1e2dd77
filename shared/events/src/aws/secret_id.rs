//! Secret identity (names and ARNs) and the one normalization that lets an event's secret and an
//! ExternalSecret's `remoteRef.key` meet in an index.
//!
//! A secret can be named three ways, and ESO accepts all three as `remoteRef.key`:
//!
//! - its name, `prod/db-credentials`;
//! - its full ARN, `arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-credentials-AbCdEf`,
//!   where `-AbCdEf` is a hyphen and six random characters that Secrets Manager appends;
//! - a partial ARN, the same without the suffix.
//!
//! Every identifier is reduced to *index keys*: a name is its own key; an ARN's resource part
//! (after `secret:`) is a key, and when it ends like a suffix (`-` and six ASCII letters or
//! digits) the part before it is a key too. Names may contain `/_+=.@-`, so `app-secret` could be
//! a name or `app` with suffix `secret`; such a resource yields both. Two identifiers may mean
//! the same secret exactly when their keys intersect.
//!
//! This errs on the side of a false match. A full ARN `…:secret:app-AbCdEf` also matches an
//! ExternalSecret whose key is the *name* `app-AbCdEf`, a different secret. A false match costs one
//! extra read of a secret that did not change; a miss leaves a rotated value stale until the next
//! poll. Name comparison is exact otherwise (Secrets Manager names are case-sensitive).

use std::fmt;

/// The longest identifier accepted as a secret id: the longest ARN AWS allows. Longer strings in
/// an event are not secret ids and are skipped.
const MAX_IDENTIFIER_BYTES: usize = 2048;

/// The length of the random suffix Secrets Manager appends to a secret's name in its ARN.
const SUFFIX_CHARS: usize = 6;

/// A Secrets Manager secret ARN, full or partial:
/// `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:RESOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretArn {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: String,
    /// The region; `None` when the ARN leaves it empty.
    pub region: Option<String>,
    /// The owning account; `None` when the ARN leaves it empty.
    pub account: Option<String>,
    /// Everything after `secret:`: the name and the random suffix in a full ARN, the bare name in
    /// a partial one. Which one it is cannot always be told; see [`SecretArn::name_candidates`].
    pub resource: String,
}

impl SecretArn {
    /// Parses a Secrets Manager secret ARN; `None` for anything else (other services' ARNs,
    /// names, malformed strings).
    pub fn parse(arn: &str) -> Option<Self> {
        let mut parts = arn.splitn(7, ':');
        let (Some("arn"), Some(partition), Some("secretsmanager"), Some(region), Some(account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let (Some("secret"), Some(resource)) = (parts.next(), parts.next()) else {
            return None;
        };
        if partition.is_empty() || resource.is_empty() {
            return None;
        }
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Some(Self {
            partition: partition.to_owned(),
            region: non_empty(region),
            account: non_empty(account),
            resource: resource.to_owned(),
        })
    }

    /// The secret names this ARN may stand for: the resource as written, and, when it ends like
    /// a random suffix, the resource without it.
    pub fn name_candidates(&self) -> Vec<&str> {
        let mut names = vec![self.resource.as_str()];
        names.extend(strip_random_suffix(&self.resource));
        names
    }
}

impl fmt::Display for SecretArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let region = self.region.as_deref().unwrap_or_default();
        let account = self.account.as_deref().unwrap_or_default();
        write!(
            f,
            "arn:{}:secretsmanager:{region}:{account}:secret:{}",
            self.partition, self.resource
        )
    }
}

/// `name` without its last `-XXXXXX` when that looks like Secrets Manager's random suffix.
fn strip_random_suffix(name: &str) -> Option<&str> {
    let bytes = name.as_bytes();
    let cut = bytes
        .len()
        .checked_sub(SUFFIX_CHARS + 1)
        .filter(|&cut| cut > 0)?;
    let looks_random = bytes[cut] == b'-' && bytes[cut + 1..].iter().all(u8::is_ascii_alphanumeric);
    // `cut` is a char boundary: the byte there is an ASCII hyphen.
    looks_random.then(|| &name[..cut])
}

/// Every way one event (or one `remoteRef.key`) named a secret: the friendly names it stated and
/// the ARNs it carried, each once, most authoritative first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretId {
    names: Vec<String>,
    arns: Vec<SecretArn>,
}

impl SecretId {
    /// One identifier as a caller passes it to the Secrets Manager API (and as ESO's
    /// `remoteRef.key` holds it): a Secrets Manager ARN, full or partial, or else a name.
    pub fn parse(identifier: &str) -> Self {
        let mut id = Self::default();
        if !id.push(identifier) && !identifier.is_empty() {
            id.names.push(identifier.to_owned());
        }
        id
    }

    /// Adds an identifier found in an event: a Secrets Manager ARN or a name. Skips (and returns
    /// false for) empty or overlong strings and other services' ARNs.
    pub(crate) fn push(&mut self, identifier: &str) -> bool {
        if identifier.is_empty() || identifier.len() > MAX_IDENTIFIER_BYTES {
            return false;
        }
        if identifier.starts_with("arn:") {
            // Names cannot contain ':', so this is an ARN or nothing.
            let Some(arn) = SecretArn::parse(identifier) else {
                return false;
            };
            if !self.arns.contains(&arn) {
                self.arns.push(arn);
            }
        } else if !self.names.iter().any(|name| name == identifier) {
            self.names.push(identifier.to_owned());
        }
        true
    }

    /// The friendly names the event stated outright (`requestParameters.name`, a non-ARN
    /// `secretId`, `responseElements.name`, `detail.name`).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The secret ARNs the event carried, the service's own first.
    pub fn arns(&self) -> &[SecretArn] {
        &self.arns
    }

    /// Whether no identifier was found.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.arns.is_empty()
    }

    /// The normalized names this secret may be known by, deduplicated: every stated name, and
    /// every ARN's [`SecretArn::name_candidates`]. An index keyed by
    /// [`remote_key_index_keys`] finds every ExternalSecret that may read this secret by looking
    /// up each of these.
    pub fn index_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        let candidates = self.names.iter().map(String::as_str);
        let candidates = candidates.chain(self.arns.iter().flat_map(SecretArn::name_candidates));
        for key in candidates {
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_owned());
            }
        }
        keys
    }
}

impl fmt::Display for SecretId {
    /// The most readable identifier: a stated name, else the first ARN. For logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.names.first(), self.arns.first()) {
            (Some(name), _) => f.write_str(name),
            (None, Some(arn)) => arn.fmt(f),
            (None, None) => Ok(()),
        }
    }
}

/// The index keys of an ExternalSecret's `remoteRef.key` (a name, a full ARN or a partial ARN),
/// normalized as [`SecretId::index_keys`] normalizes an event's secret. Empty for an empty key.
pub fn remote_key_index_keys(remote_key: &str) -> Vec<String> {
    SecretId::parse(remote_key).index_keys()
}

/// Whether `change` may concern the secret an ExternalSecret reads as `remote_key` through a
/// store in `store_region` (and `store_account`, when the store's account is known).
///
/// - The keys of both sides must intersect (see the module documentation: ambiguity resolves
///   towards a match).
/// - Region: when the change knows its region, it must be the store's (a Secrets Manager client
///   is regional), and that of `remote_key` when that is an ARN naming a region.
/// - Account: when the change knows its account, it must be the one `remote_key` names when that
///   is an ARN (cross-account reads name the owner that way), else `store_account` when given.
///
/// Whatever a side does not know is not held against the match.
pub fn matches(
    change: &super::SecretChange,
    remote_key: &str,
    store_region: &str,
    store_account: Option<&str>,
) -> bool {
    let remote = SecretId::parse(remote_key);
    let remote_arn = remote.arns().first();
    if let Some(region) = change.region.as_deref() {
        let remote_region = remote_arn.and_then(|arn| arn.region.as_deref());
        if region != store_region || remote_region.is_some_and(|r| r != region) {
            return false;
        }
    }
    let expected_account = remote_arn
        .and_then(|arn| arn.account.as_deref())
        .or(store_account);
    if let (Some(account), Some(expected)) = (change.account.as_deref(), expected_account)
        && account != expected
    {
        return false;
    }
    let keys = change.secret.index_keys();
    remote.index_keys().iter().any(|key| keys.contains(key))
}

#[cfg(test)]
mod tests {
    use super::super::{ChangeKind, SecretChange};
    use super::*;

    const REGION: &str = "us-east-1";
    const ACCOUNT: &str = "123456789012";
    const FULL_ARN: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-credentials-AbCdEf";
    const PARTIAL_ARN: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-credentials";
    const NAME: &str = "prod/db-credentials";

    fn change_for(identifiers: &[&str]) -> SecretChange {
        let mut secret = SecretId::default();
        for identifier in identifiers {
            secret.push(identifier);
        }
        SecretChange {
            account: Some(ACCOUNT.to_owned()),
            region: Some(REGION.to_owned()),
            secret,
            kind: ChangeKind::ValueChanged,
            version_id: None,
            event_time: None,
            event_id: None,
            event_name: "PutSecretValue".to_owned(),
        }
    }

    fn matches_here(event_ids: &[&str], remote_key: &str) -> bool {
        matches(&change_for(event_ids), remote_key, REGION, Some(ACCOUNT))
    }

    #[test]
    fn a_full_arn_parses_into_its_parts() {
        let arn = SecretArn::parse(FULL_ARN).expect("a secret ARN");
        assert_eq!(arn.partition, "aws");
        assert_eq!(arn.region.as_deref(), Some(REGION));
        assert_eq!(arn.account.as_deref(), Some(ACCOUNT));
        assert_eq!(arn.resource, "prod/db-credentials-AbCdEf");
        assert_eq!(arn.to_string(), FULL_ARN);
    }

    #[test]
    fn other_arns_and_malformed_arns_are_not_secret_arns() {
        for s in [
            "arn:aws:ssm:us-east-1:123456789012:parameter/prod/db",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
            "arn:aws:secretsmanager:us-east-1:123456789012",
            "arn:aws:secretsmanager:us-east-1:123456789012:other:x",
            "arn::secretsmanager:us-east-1:123456789012:secret:x",
            "prod/db-credentials",
            "",
        ] {
            assert_eq!(SecretArn::parse(s), None, "{s}");
        }
    }

    #[test]
    fn a_full_arn_yields_the_resource_and_the_name_without_the_suffix() {
        assert_eq!(
            SecretId::parse(FULL_ARN).index_keys(),
            ["prod/db-credentials-AbCdEf", "prod/db-credentials"]
        );
    }

    #[test]
    fn a_name_yields_only_itself_even_when_it_ends_like_a_suffix() {
        assert_eq!(SecretId::parse(NAME).index_keys(), [NAME]);
        assert_eq!(SecretId::parse("app-secret").index_keys(), ["app-secret"]);
    }

    #[test]
    fn a_partial_arn_whose_name_ends_like_a_suffix_yields_both_readings() {
        let key = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-secret";
        assert_eq!(remote_key_index_keys(key), ["app-secret", "app"]);
    }

    #[test]
    fn only_one_suffix_is_stripped() {
        let key = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-abcdef-AbCdEf";
        assert_eq!(
            remote_key_index_keys(key),
            ["app-abcdef-AbCdEf", "app-abcdef"]
        );
    }

    #[test]
    fn a_suffix_alone_or_with_non_alphanumerics_is_not_stripped() {
        assert_eq!(strip_random_suffix("-AbCdEf"), None);
        assert_eq!(strip_random_suffix("a-AbC/Ef"), None);
        assert_eq!(strip_random_suffix("a-AbCdE"), None);
        assert_eq!(strip_random_suffix("a_AbCdEf"), None);
        assert_eq!(strip_random_suffix("é-AbCdEf"), Some("é"));
        assert_eq!(strip_random_suffix("a-AbCdÉ"), None);
    }

    #[test]
    fn an_empty_remote_key_has_no_keys_and_matches_nothing() {
        assert!(remote_key_index_keys("").is_empty());
        assert!(!matches_here(&[NAME, FULL_ARN], ""));
    }

    #[test]
    fn an_event_with_a_full_arn_matches_a_name_a_full_arn_and_a_partial_arn() {
        for key in [NAME, FULL_ARN, PARTIAL_ARN] {
            assert!(matches_here(&[FULL_ARN], key), "{key}");
        }
    }

    #[test]
    fn an_event_with_a_name_matches_a_name_a_full_arn_and_a_partial_arn() {
        for key in [NAME, FULL_ARN, PARTIAL_ARN] {
            assert!(matches_here(&[NAME], key), "{key}");
        }
    }

    #[test]
    fn an_event_with_a_partial_arn_matches_a_name_a_full_arn_and_a_partial_arn() {
        for key in [NAME, FULL_ARN, PARTIAL_ARN] {
            assert!(matches_here(&[PARTIAL_ARN], key), "{key}");
        }
    }

    #[test]
    fn a_name_that_ends_like_a_suffix_is_still_matched_by_its_own_full_arn_and_name() {
        let full = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-abcdef-XyZ123";
        assert!(matches_here(&[full], "app-abcdef"));
        assert!(matches_here(&["app-abcdef"], full));
        assert!(matches_here(&["app-abcdef"], "app-abcdef"));
    }

    #[test]
    fn ambiguity_resolves_to_a_false_match_rather_than_a_miss() {
        // `…:secret:app-abcdef` is the name `app-abcdef` or `app` with suffix `abcdef`.
        let partial = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-abcdef";
        assert!(matches_here(&["app"], partial));
        assert!(matches_here(&[partial], "app"));
        assert!(matches_here(&[partial], "app-abcdef"));
    }

    #[test]
    fn different_secrets_do_not_match() {
        assert!(!matches_here(&[NAME], "prod/db"));
        assert!(!matches_here(&[FULL_ARN], "prod/db"));
        assert!(!matches_here(&[FULL_ARN], "prod/db-credentials-old"));
        assert!(!matches_here(&["prod/db"], FULL_ARN));
        assert!(!matches_here(&[NAME], "Prod/DB-Credentials"));
        let other = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/api-key-AbCdEf";
        assert!(!matches_here(&[FULL_ARN], other));
    }

    #[test]
    fn a_change_in_another_region_does_not_match() {
        let change = change_for(&[FULL_ARN]);
        assert!(!matches(&change, NAME, "eu-west-1", Some(ACCOUNT)));
    }

    #[test]
    fn a_remote_arn_in_another_region_does_not_match() {
        let key = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-credentials-AbCdEf";
        assert!(!matches_here(&[NAME], key));
    }

    #[test]
    fn a_change_in_another_account_does_not_match() {
        let change = change_for(&[FULL_ARN]);
        assert!(!matches(&change, NAME, REGION, Some("210987654321")));
        let key = "arn:aws:secretsmanager:us-east-1:210987654321:secret:prod/db-credentials-AbCdEf";
        assert!(!matches_here(&[NAME], key));
    }

    #[test]
    fn a_cross_account_remote_arn_is_compared_with_its_own_account_not_the_stores() {
        let mut change =
            change_for(&["arn:aws:secretsmanager:us-east-1:210987654321:secret:shared-AbCdEf"]);
        change.account = Some("210987654321".to_owned());
        let key = "arn:aws:secretsmanager:us-east-1:210987654321:secret:shared";
        assert!(matches(&change, key, REGION, Some(ACCOUNT)));
        assert!(!matches(&change, "shared", REGION, Some(ACCOUNT)));
    }

    #[test]
    fn what_either_side_does_not_know_is_not_held_against_the_match() {
        let mut change = change_for(&[NAME]);
        assert!(matches(&change, NAME, REGION, None));
        change.account = None;
        change.region = None;
        assert!(matches(&change, NAME, "eu-west-1", Some("210987654321")));
    }

    #[test]
    fn index_keys_intersect_exactly_when_the_same_account_and_region_match() {
        let identifiers = [
            NAME,
            FULL_ARN,
            PARTIAL_ARN,
            "prod/db",
            "app-secret",
            "app",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-secret",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-secret-Zz9Zz9",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
        ];
        for event in identifiers {
            for remote in identifiers {
                let keys = SecretId::parse(event).index_keys();
                let intersect = remote_key_index_keys(remote)
                    .iter()
                    .any(|k| keys.contains(k));
                assert_eq!(
                    matches_here(&[event], remote),
                    intersect,
                    "{event} / {remote}"
                );
            }
        }
    }

    #[test]
    fn identifiers_are_deduplicated_and_skipped_when_not_secret_ids() {
        let mut id = SecretId::default();
        assert!(id.push(NAME));
        assert!(id.push(NAME));
        assert!(id.push(FULL_ARN));
        assert!(id.push(FULL_ARN));
        assert!(!id.push(""));
        assert!(!id.push("arn:aws:kms:us-east-1:123456789012:key/1234"));
        assert!(!id.push(&"x".repeat(MAX_IDENTIFIER_BYTES + 1)));
        assert_eq!(id.names(), [NAME]);
        assert_eq!(id.arns().len(), 1);
        assert_eq!(
            id.index_keys(),
            ["prod/db-credentials", "prod/db-credentials-AbCdEf"]
        );
        assert_eq!(id.to_string(), NAME);
    }
}
