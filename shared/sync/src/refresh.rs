//! When an ExternalSecret must be synced, and when to look again: ESO's `shouldRefresh`,
//! `isSecretValid` and `getRequeueResult` (`pkg/controllers/externalsecret`), as pure functions.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use secret_sync_crd::well_known::{
    ANNOTATION_DATA_HASH, LABEL_MANAGED, LABEL_MANAGED_VALUE, reason,
};
use secret_sync_crd::{
    ConditionStatus, CreationPolicy, ExternalSecret, ExternalSecretConditionType, RefreshPolicy,
};

use crate::hash;

/// Why a sync runs (or `None` when it need not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Never synced, or the last success is unknown.
    FirstSync,
    /// The spec, labels or annotations changed since the last sync (includes force-sync).
    SpecChanged,
    /// The refresh interval elapsed.
    Interval,
    /// The target Secret is missing, unmanaged, or its data was edited.
    SecretInvalid,
    /// A provider change event named a key this ExternalSecret reads.
    ProviderChanged,
    /// The last sync failed (`Ready=False`, `SecretSyncedError`): tried again, with the
    /// reconciler's back-off, until one succeeds.
    Failed,
    /// Generated values are near their expiry (`status.renewAt` passed).
    Expiring,
}

impl Due {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstSync => "first-sync",
            Self::SpecChanged => "spec-changed",
            Self::Interval => "interval",
            Self::SecretInvalid => "secret-invalid",
            Self::ProviderChanged => "provider-changed",
            Self::Failed => "failed",
            Self::Expiring => "expiring",
        }
    }
}

/// When values generated at `synced` that expire at `expires` are renewed: three quarters of
/// their lifetime in (an ECR token's 12 h: after 9 h), so a slow or failing renewal still has a
/// quarter of it to succeed. `None` when they had expired already.
pub fn renew_at(synced: Timestamp, expires: Timestamp) -> Option<Timestamp> {
    let life = expires.duration_since(synced);
    if life.is_negative() || life.is_zero() {
        return None;
    }
    synced.checked_add(life.checked_mul(3)? / 4).ok()
}

/// `status.renewAt`, for a Periodic ExternalSecret with a refresh interval (CreatedOnce keeps
/// its first values, and an interval of 0 asks for no refresh at all).
fn renewal(es: &ExternalSecret, interval: Duration) -> Option<Timestamp> {
    if interval.is_zero() || es.spec.refresh_policy() != RefreshPolicy::Periodic {
        return None;
    }
    es.status.as_ref()?.renew_at.as_ref().map(|t| t.0)
}

/// Whether `spec.syncWindows` (if any) let a periodic refresh run now.
fn windows_allow(es: &ExternalSecret, now: Timestamp) -> bool {
    es.spec
        .sync_windows
        .as_ref()
        .is_none_or(|w| crate::windows::allow(w, now))
}

fn refresh_time(es: &ExternalSecret) -> Option<Timestamp> {
    es.status.as_ref()?.refresh_time.as_ref().map(|t| t.0)
}

/// Whether the last sync failed: `Ready=False` with ESO's `SecretSyncedError`.
fn last_sync_failed(es: &ExternalSecret) -> bool {
    es.status
        .as_ref()
        .and_then(|s| s.condition(ExternalSecretConditionType::Ready))
        .is_some_and(|c| {
            c.status == ConditionStatus::False
                && c.reason.as_deref() == Some(reason::SECRET_SYNCED_ERROR)
        })
}

fn synced_version(es: &ExternalSecret) -> &str {
    es.status
        .as_ref()
        .and_then(|s| s.synced_resource_version.as_deref())
        .unwrap_or_default()
}

/// The grid periodic refreshes fall due on: a sixtieth of the interval in whole seconds, at
/// most 60 s (1 h → 60 s, 10 min → 10 s, 2 min → 2 s); none under a minute.
fn grid(interval: Duration) -> Option<i64> {
    let step = (interval.as_secs() / 60).min(60);
    (step > 0).then(|| i64::try_from(step).unwrap_or(60))
}

/// When a periodic refresh after a sync at `last` falls due: `last + interval`, rounded down to
/// the [`grid`]. ExternalSecrets synced within one grid step of each other (typically created or
/// rotated together) then fall due at the same instant, and those reading the same key share one
/// provider read, which they could not if each took only values fetched after its own due time.
/// The price: a refresh may come up to one step (under 2 %) before `last + interval`, never
/// later; rounding down, not up, also keeps the period from drifting by a step each round.
pub fn due_at(last: Timestamp, interval: Duration) -> Timestamp {
    let raw = last.checked_add(interval).unwrap_or(Timestamp::MAX);
    let Some(step) = grid(interval) else {
        return raw;
    };
    let second = raw.as_second();
    Timestamp::from_second(second - second.rem_euclid(step)).unwrap_or(raw)
}

/// ESO's `shouldRefresh`: whether the refresh policy asks for a sync now.
pub fn should_refresh(es: &ExternalSecret, interval: Duration, now: Timestamp) -> Option<Due> {
    let synced = synced_version(es);
    let last = refresh_time(es);
    if synced.is_empty() || last.is_none() {
        return Some(Due::FirstSync);
    }
    let changed = synced != hash::synced_resource_version(&es.metadata);
    match es.spec.refresh_policy() {
        RefreshPolicy::CreatedOnce => None,
        RefreshPolicy::OnChange => changed.then_some(Due::SpecChanged),
        RefreshPolicy::Periodic => {
            // ESO: with refreshInterval 0 nothing refreshes after the first sync, not even a
            // spec change ("should not refresh when refreshInterval is 0 even if spec changes").
            if interval.is_zero() {
                return None;
            }
            if changed {
                return Some(Due::SpecChanged);
            }
            // A failed sync is tried again until one succeeds, as in ESO, where a failure leaves
            // the refresh due. Here a sync can also fail between refreshes (one a provider event
            // started): without this, the change it announced would wait for the next refresh.
            if last_sync_failed(es) {
                return Some(Due::Failed);
            }
            let last = last?;
            if last > now {
                return Some(Due::Interval);
            }
            if due_at(last, interval) <= now && windows_allow(es, now) {
                return Some(Due::Interval);
            }
            renewal(es, interval)
                .is_some_and(|at| at <= now)
                .then_some(Due::Expiring)
        }
    }
}

/// The earliest instant at which [`should_refresh`] can find `es` due, from what `es` says now
/// (`now` being when it is asked); `None` if never until `es` changes. For a look at every cached
/// ExternalSecret that needs to look closely only at those that may be due. Sync windows only
/// ever defer a refresh, so they are left out.
pub fn earliest_due(es: &ExternalSecret, interval: Duration, now: Timestamp) -> Option<Timestamp> {
    let synced = synced_version(es);
    let Some(last) = refresh_time(es).filter(|_| !synced.is_empty()) else {
        return Some(Timestamp::MIN);
    };
    let changed = synced != hash::synced_resource_version(&es.metadata);
    match es.spec.refresh_policy() {
        RefreshPolicy::CreatedOnce => None,
        RefreshPolicy::OnChange => changed.then_some(Timestamp::MIN),
        RefreshPolicy::Periodic if interval.is_zero() => None,
        RefreshPolicy::Periodic if changed || last_sync_failed(es) || last > now => {
            Some(Timestamp::MIN)
        }
        RefreshPolicy::Periodic => {
            let at = due_at(last, interval);
            Some(renewal(es, interval).map_or(at, |renew| renew.min(at)))
        }
    }
}

/// ESO's `isSecretValid`: whether the target Secret is as this ExternalSecret last left it. An
/// invalid Secret is synced at once, whatever the refresh policy (an Owner Secret that is deleted
/// or edited comes back immediately). `Orphan` Secrets are always valid: ESO restores them only at
/// the next due refresh.
pub fn secret_is_valid(es: &ExternalSecret, secret: Option<&Secret>) -> bool {
    if es.spec.target.creation_policy == CreationPolicy::Orphan {
        return true;
    }
    let Some(secret) = secret else { return false };
    let labels = secret.metadata.labels.as_ref();
    if labels
        .and_then(|l| l.get(LABEL_MANAGED))
        .map(String::as_str)
        != Some(LABEL_MANAGED_VALUE)
    {
        return false;
    }
    let recorded = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_DATA_HASH));
    let empty = Default::default();
    let data = secret.data.as_ref().unwrap_or(&empty);
    recorded.is_some_and(|h| *h == hash::data_hash(data.iter().map(|(k, v)| (k, &v.0))))
}

/// ESO's `getRequeueResult`: when to look again after a successful (or skipped) sync. `None`
/// means never (refreshInterval 0); only a change to the ExternalSecret or its Secret wakes it.
pub fn requeue_after(es: &ExternalSecret, interval: Duration, now: Timestamp) -> Option<Duration> {
    if interval.is_zero() {
        return None;
    }
    if matches!(
        es.spec.refresh_policy(),
        RefreshPolicy::CreatedOnce | RefreshPolicy::OnChange
    ) {
        return None;
    }
    let Some(last) = refresh_time(es) else {
        return Some(interval);
    };
    let mut next = due_at(last, interval);
    // A refresh the sync windows block now: looked at again when they may next allow it.
    if next <= now
        && let Some(windows) = &es.spec.sync_windows
        && !crate::windows::allow(windows, now)
    {
        let wait = crate::windows::until_change(windows, now).unwrap_or(interval);
        next = now
            .checked_add(wait.max(Duration::from_secs(1)))
            .unwrap_or(Timestamp::MAX);
    }
    if let Some(renew) = renewal(es, interval) {
        next = next.min(renew);
    }
    let left = next.duration_since(now);
    Some(
        Duration::try_from(left)
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;
    use secret_sync_crd::{ExternalSecretSpec, ExternalSecretStatus};
    use std::collections::BTreeMap;

    fn es(policy: Option<RefreshPolicy>) -> ExternalSecret {
        let mut es = ExternalSecret::new(
            "db",
            ExternalSecretSpec {
                refresh_policy: policy,
                ..Default::default()
            },
        );
        es.metadata.namespace = Some("ns".into());
        es.metadata.generation = Some(1);
        es
    }

    fn synced_at(mut es: ExternalSecret, at: Timestamp) -> ExternalSecret {
        es.status = Some(ExternalSecretStatus {
            refresh_time: Some(Time(at)),
            synced_resource_version: Some(hash::synced_resource_version(&es.metadata)),
            ..Default::default()
        });
        es
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("valid timestamp")
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_never_synced_external_secret_is_due() {
        assert_eq!(should_refresh(&es(None), HOUR, at(0)), Some(Due::FirstSync));
        assert_eq!(
            should_refresh(&es(Some(RefreshPolicy::CreatedOnce)), HOUR, at(0)),
            Some(Due::FirstSync)
        );
    }

    #[test]
    fn periodic_is_due_once_the_interval_has_passed() {
        let es = synced_at(es(None), at(0));
        assert_eq!(should_refresh(&es, HOUR, at(3599)), None);
        assert_eq!(should_refresh(&es, HOUR, at(3600)), Some(Due::Interval));
    }

    #[test]
    fn a_failed_sync_is_due_again_until_one_succeeds() {
        let failed = |es: ExternalSecret, reason: &str, status| {
            let mut es = synced_at(es, at(0));
            es.status.as_mut().expect("status").conditions =
                vec![secret_sync_crd::ExternalSecretStatusCondition {
                    type_: ExternalSecretConditionType::Ready,
                    status,
                    reason: Some(reason.into()),
                    ..Default::default()
                }];
            es
        };
        let es_failed = failed(
            es(None),
            reason::SECRET_SYNCED_ERROR,
            ConditionStatus::False,
        );
        assert_eq!(should_refresh(&es_failed, HOUR, at(10)), Some(Due::Failed));
        let synced = failed(es(None), reason::SECRET_SYNCED, ConditionStatus::True);
        assert_eq!(should_refresh(&synced, HOUR, at(10)), None);
        // Policies that do not refresh on time do not retry on time either.
        for policy in [RefreshPolicy::CreatedOnce, RefreshPolicy::OnChange] {
            let es = failed(
                es(Some(policy)),
                reason::SECRET_SYNCED_ERROR,
                ConditionStatus::False,
            );
            assert_eq!(should_refresh(&es, HOUR, at(10)), None);
        }
        assert_eq!(should_refresh(&es_failed, Duration::ZERO, at(10)), None);
    }

    #[test]
    fn a_label_or_annotation_change_forces_a_sync() {
        let mut es = synced_at(es(None), at(0));
        es.metadata.annotations = Some(BTreeMap::from([("force-sync".into(), "1".into())]));
        assert_eq!(should_refresh(&es, HOUR, at(1)), Some(Due::SpecChanged));
        let mut bumped = synced_at(self::es(None), at(0));
        bumped.metadata.generation = Some(2);
        assert_eq!(should_refresh(&bumped, HOUR, at(1)), Some(Due::SpecChanged));
    }

    #[test]
    fn periodic_refreshes_fall_due_on_a_grid_of_a_sixtieth_of_the_interval() {
        // Synced 10:00:00.4 and 10:00:41: both due at the same grid point.
        let early = Timestamp::from_millisecond(at(0).as_millisecond() + 400).expect("ts");
        assert_eq!(due_at(early, HOUR), at(3600));
        assert_eq!(due_at(at(41), HOUR), at(3600));
        assert_eq!(due_at(at(60), HOUR), at(3660));
        let a = synced_at(es(None), at(41));
        assert_eq!(should_refresh(&a, HOUR, at(3599)), None);
        assert_eq!(should_refresh(&a, HOUR, at(3600)), Some(Due::Interval));
        assert_eq!(
            requeue_after(&a, HOUR, at(600)),
            Some(Duration::from_secs(3000))
        );
        // 10 min → 10 s steps; under a minute, no grid.
        assert_eq!(due_at(at(7), Duration::from_secs(600)), at(600));
        assert_eq!(due_at(at(7), Duration::from_secs(45)), at(52));
        // Never before the sync itself.
        let short = Duration::from_secs(60);
        let late = Timestamp::from_millisecond(at(59).as_millisecond() + 999).expect("ts");
        assert!(due_at(late, short) > late);
    }

    #[test]
    fn a_zero_interval_never_refreshes_after_the_first_sync_even_on_change() {
        let mut es = synced_at(es(None), at(0));
        es.metadata.generation = Some(5);
        assert_eq!(should_refresh(&es, Duration::ZERO, at(100_000)), None);
        assert_eq!(requeue_after(&es, Duration::ZERO, at(1)), None);
    }

    #[test]
    fn created_once_ignores_changes_and_time() {
        let mut es = synced_at(es(Some(RefreshPolicy::CreatedOnce)), at(0));
        es.metadata.generation = Some(9);
        assert_eq!(should_refresh(&es, HOUR, at(1_000_000)), None);
    }

    #[test]
    fn on_change_syncs_only_on_change() {
        let es = synced_at(es(Some(RefreshPolicy::OnChange)), at(0));
        assert_eq!(should_refresh(&es, HOUR, at(1_000_000)), None);
        let mut changed = es.clone();
        changed.metadata.labels = Some(BTreeMap::from([("team".into(), "a".into())]));
        assert_eq!(
            should_refresh(&changed, HOUR, at(1)),
            Some(Due::SpecChanged)
        );
    }

    #[test]
    fn a_refresh_time_in_the_future_is_treated_as_due() {
        let es = synced_at(es(None), at(100));
        assert_eq!(should_refresh(&es, HOUR, at(0)), Some(Due::Interval));
    }

    #[test]
    fn requeue_waits_for_the_rest_of_the_interval() {
        let es = synced_at(es(None), at(0));
        assert_eq!(
            requeue_after(&es, HOUR, at(600)),
            Some(Duration::from_secs(3000))
        );
        assert_eq!(
            requeue_after(&es, HOUR, at(7200)),
            Some(Duration::from_millis(1))
        );
    }

    fn secret(data: &[(&str, &str)], hash_override: Option<&str>) -> Secret {
        let data: BTreeMap<String, ByteString> = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
            .collect();
        let hash = hash_override
            .map(str::to_owned)
            .unwrap_or_else(|| hash::data_hash(data.iter().map(|(k, v)| (k, &v.0))));
        Secret {
            metadata: ObjectMeta {
                labels: Some(BTreeMap::from([(LABEL_MANAGED.into(), "true".into())])),
                annotations: Some(BTreeMap::from([(ANNOTATION_DATA_HASH.into(), hash)])),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn a_missing_or_edited_secret_is_invalid_unless_orphaned() {
        let owner = es(None);
        assert!(!secret_is_valid(&owner, None));
        assert!(secret_is_valid(&owner, Some(&secret(&[("k", "v")], None))));
        assert!(!secret_is_valid(
            &owner,
            Some(&secret(&[("k", "v")], Some("stale")))
        ));
        let mut unmanaged = secret(&[("k", "v")], None);
        unmanaged.metadata.labels = None;
        assert!(!secret_is_valid(&owner, Some(&unmanaged)));

        let mut orphan = es(None);
        orphan.spec.target.creation_policy = CreationPolicy::Orphan;
        assert!(secret_is_valid(&orphan, None));
    }

    /// `earliest_due` never comes after an instant at which `should_refresh` finds the object
    /// due, over every policy and state here, asked before and after the last refresh.
    #[test]
    fn nothing_is_due_before_its_earliest_due() {
        let mut cases = Vec::new();
        for policy in [
            None,
            Some(RefreshPolicy::Periodic),
            Some(RefreshPolicy::OnChange),
            Some(RefreshPolicy::CreatedOnce),
        ] {
            let fresh = es(policy);
            let synced = synced_at(fresh.clone(), at(0));
            let mut changed = synced.clone();
            changed.metadata.generation = Some(2);
            let mut failed = synced.clone();
            failed.status.as_mut().expect("status").conditions =
                vec![secret_sync_crd::ExternalSecretStatusCondition {
                    type_: ExternalSecretConditionType::Ready,
                    status: secret_sync_crd::ConditionStatus::False,
                    reason: Some("SecretSyncedError".into()),
                    ..Default::default()
                }];
            let mut renewing = synced.clone();
            renewing.status.as_mut().expect("status").renew_at = Some(Time(at(600)));
            cases.extend([fresh, synced, changed, failed, renewing]);
        }
        let mut due_somewhere = 0;
        for es in &cases {
            for interval in [Duration::ZERO, Duration::from_secs(60), HOUR] {
                for asked in [at(-10), at(0), at(30)] {
                    let earliest = earliest_due(es, interval, asked);
                    for now in (-20..8000).step_by(10).map(at).filter(|now| *now >= asked) {
                        if should_refresh(es, interval, now).is_some() {
                            due_somewhere += 1;
                            assert!(
                                earliest.is_some_and(|e| e <= now),
                                "{es:?} every {interval:?}, asked at {asked}: due at {now}, earliest {earliest:?}"
                            );
                        }
                    }
                }
            }
        }
        assert!(due_somewhere > 1000, "{due_somewhere}");
        // And it is not just "at once": a periodic one synced at 0 is not due before its hour.
        let synced = synced_at(es(None), at(0));
        assert_eq!(earliest_due(&synced, HOUR, at(5)), Some(at(3600)));
        assert_eq!(
            earliest_due(
                &synced_at(es(Some(RefreshPolicy::CreatedOnce)), at(0)),
                HOUR,
                at(5)
            ),
            None
        );
    }
}
