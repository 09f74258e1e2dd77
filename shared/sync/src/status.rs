//! ExternalSecret status: ESO's Ready condition, refreshTime and syncedResourceVersion, computed
//! purely and written only when it changed.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use secret_sync_crd::{
    ConditionStatus, ExternalSecret, ExternalSecretConditionType, ExternalSecretStatus,
    ExternalSecretStatusCondition, SecretBinding,
};
use serde_json::json;

use crate::hash;

/// The Ready condition to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// A condition's `lastTransitionTime`: kept while its status stays the same, `now` when it flips
/// (or first appears). `previous` is the condition's status and time before.
pub fn transition_time(
    previous: Option<(ConditionStatus, Option<&Time>)>,
    status: ConditionStatus,
    now: Timestamp,
) -> Option<Time> {
    match previous {
        Some((before, time)) if before == status => time.cloned(),
        _ => Some(Time(now)),
    }
}

/// The status after a sync. On success (`synced_at` set) ESO moves `refreshTime` and
/// `syncedResourceVersion`; on failure they stay. `lastTransitionTime` moves only when the
/// condition's status flips.
pub fn next(
    es: &ExternalSecret,
    ready: &Ready,
    synced_at: Option<Timestamp>,
    binding: Option<&str>,
    now: Timestamp,
) -> ExternalSecretStatus {
    next_with_expiry(es, ready, synced_at, binding, None, now)
}

/// [`next`], for a sync whose generated values expire at `expires_at`: a successful sync
/// records the expiry and when to renew (see [`crate::refresh::renew_at`]); a failed one keeps
/// what the last success recorded.
pub fn next_with_expiry(
    es: &ExternalSecret,
    ready: &Ready,
    synced_at: Option<Timestamp>,
    binding: Option<&str>,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> ExternalSecretStatus {
    let previous = es.status.clone().unwrap_or_default();
    let prev_ready = previous.condition(ExternalSecretConditionType::Ready);
    let status = ConditionStatus::from_bool(ready.status);
    let transition = transition_time(
        prev_ready.map(|c| (c.status, c.last_transition_time.as_ref())),
        status,
        now,
    );
    let mut conditions: Vec<_> = previous
        .conditions
        .iter()
        .filter(|c| c.type_ != ExternalSecretConditionType::Ready)
        .cloned()
        .collect();
    conditions.insert(
        0,
        ExternalSecretStatusCondition {
            type_: ExternalSecretConditionType::Ready,
            status,
            reason: Some(ready.reason.to_owned()),
            message: Some(ready.message.clone()),
            last_transition_time: transition,
        },
    );
    ExternalSecretStatus {
        refresh_time: synced_at.map(Time).or(previous.refresh_time),
        synced_resource_version: if synced_at.is_some() {
            Some(hash::synced_resource_version(&es.metadata))
        } else {
            previous.synced_resource_version
        },
        conditions,
        binding: binding
            .map(|name| SecretBinding {
                name: name.to_owned(),
            })
            .or(previous.binding),
        expires_at: match synced_at {
            Some(_) => expires_at.map(Time),
            None => previous.expires_at,
        },
        renew_at: match synced_at {
            Some(at) => expires_at
                .and_then(|exp| crate::refresh::renew_at(at, exp))
                .map(Time),
            None => previous.renew_at,
        },
    }
}

/// `status` as the apiserver stores it: times in whole seconds. Compared at full precision, a
/// status would differ from its stored self (a write for nothing each sync), and one remembered
/// would look newer than a later write in the same second.
pub fn as_stored(status: &ExternalSecretStatus) -> ExternalSecretStatus {
    let whole = |t: &mut Time| t.0 = Timestamp::from_second(t.0.as_second()).unwrap_or(t.0);
    let mut status = status.clone();
    if let Some(t) = status.refresh_time.as_mut() {
        whole(t);
    }
    for condition in &mut status.conditions {
        if let Some(t) = condition.last_transition_time.as_mut() {
            whole(t);
        }
    }
    status
}

/// Writes `status` to the ExternalSecret `namespace/name` (a merge patch of the status
/// subresource). Writes go through [`crate::statuses::Statuses`], which orders them.
pub async fn patch(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    status: &ExternalSecretStatus,
) -> Result<(), kube::Error> {
    let api = Api::<ExternalSecret>::namespaced(client.clone(), namespace);
    let mut body = json!({ "status": status });
    // A merge patch keeps a field it does not name: an expiry no longer reported is cleared.
    // Always, not only when the last status had one: the last status written may not be the
    // one this was computed from (a queued status replaced before it was written).
    for (field, value) in [
        ("expiresAt", &status.expires_at),
        ("renewAt", &status.renew_at),
    ] {
        if value.is_none() {
            body["status"][field] = serde_json::Value::Null;
        }
    }
    let patch = Patch::Merge(body);
    crate::view::bounded(
        "writing a status",
        api.patch_status(name, &PatchParams::default(), &patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secret_sync_crd::ExternalSecretSpec;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("timestamp")
    }

    fn ok() -> Ready {
        Ready {
            status: true,
            reason: "SecretSynced",
            message: "secret synced".into(),
        }
    }

    #[test]
    fn a_repeated_success_changes_nothing_but_the_refresh_time() {
        let mut es = ExternalSecret::new("db", ExternalSecretSpec::default());
        es.status = Some(next(&es, &ok(), Some(at(0)), Some("db"), at(0)));
        let again = next(&es, &ok(), Some(at(60)), Some("db"), at(60));
        let first = es.status.as_ref().expect("status");
        assert_eq!(
            again.conditions, first.conditions,
            "lastTransitionTime is kept"
        );
        assert_eq!(again.refresh_time, Some(Time(at(60))));
    }

    #[test]
    fn a_failure_keeps_the_last_refresh_time_and_moves_the_transition_time() {
        let mut es = ExternalSecret::new("db", ExternalSecretSpec::default());
        es.status = Some(next(&es, &ok(), Some(at(0)), Some("db"), at(0)));
        let failed = Ready {
            status: false,
            reason: "SecretSyncedError",
            message: "boom".into(),
        };
        let status = next(&es, &failed, None, None, at(30));
        assert_eq!(status.refresh_time, Some(Time(at(0))));
        let ready = status
            .condition(ExternalSecretConditionType::Ready)
            .expect("ready");
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.last_transition_time, Some(Time(at(30))));
        assert_eq!(status.binding.as_ref().map(|b| b.name.as_str()), Some("db"));
    }
}
