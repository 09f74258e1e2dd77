//! `spec.syncWindows` (ESO 2.9): when periodic refreshes may run. Each window opens at every
//! firing of its `schedule` (5-field cron in UTC, a descriptor such as `@daily`, or
//! `@every <duration>`) and stays open for `duration`. `kind: allow` lets refreshes run only
//! while a window is open; `kind: deny` blocks them while one is. As in ESO, only the refresh
//! interval is gated: a first sync, a spec change, a deleted or edited Secret and (here) a
//! provider change event sync at once; and a window whose schedule or duration cannot be read is
//! ignored (treated as closed), so a typo cannot block refreshes forever.
//!
//! Unlike ESO, which looks again only after another `refreshInterval`, a blocked refresh is
//! looked at again when the windows next open or close, so a short window is not missed.

use std::str::FromStr as _;
use std::time::Duration;

use croner::Cron;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use secret_sync_crd::{SyncWindow, SyncWindowKind, SyncWindows};

/// A window's firings.
enum Schedule {
    Cron(Box<Cron>),
    /// `@every`: robfig/cron's constant delay, which fires `every` after any instant asked about.
    Every(SignedDuration),
}

struct Window {
    schedule: Schedule,
    duration: SignedDuration,
}

impl Window {
    /// The window, or `None` when its schedule or duration cannot be read.
    fn read(spec: &SyncWindow) -> Option<Self> {
        let duration = secret_sync_gosem::duration::parse_go_duration(&spec.duration).ok()?;
        let duration = SignedDuration::try_from(duration).ok()?;
        let text = spec.schedule.trim();
        let schedule = if let Some(every) = text.strip_prefix("@every ") {
            let every = secret_sync_gosem::duration::parse_go_duration(every.trim()).ok()?;
            Schedule::Every(SignedDuration::try_from(every).ok()?)
        } else {
            let text = if text.eq_ignore_ascii_case("@midnight") {
                "@daily"
            } else {
                text
            };
            if !text.starts_with('@') && text.split_whitespace().count() != 5 {
                return None;
            }
            Schedule::Cron(Box::new(Cron::from_str(text).ok()?))
        };
        Some(Self { schedule, duration })
    }

    /// The firing after `at` (strictly), in UTC.
    fn next(&self, at: Timestamp) -> Option<Timestamp> {
        match &self.schedule {
            Schedule::Every(every) => at.checked_add(*every).ok(),
            Schedule::Cron(cron) => {
                let civil: DateTime = at.to_zoned(TimeZone::UTC).datetime();
                let next = cron.find_next_occurrence(&civil, false).ok()?;
                next.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp())
            }
        }
    }

    /// Whether the window is open at `at`: it opened at the latest firing no later than `at`,
    /// and `at` is within `duration` of it (ESO's `isWithinSyncWindow`).
    fn open_at(&self, at: Timestamp) -> Option<Timestamp> {
        let from = at
            .checked_sub(self.duration)
            .ok()?
            .checked_sub(SignedDuration::from_secs(1))
            .ok()?;
        let opened = self.next(from)?;
        let closes = opened.checked_add(self.duration).ok()?;
        (opened <= at && at <= closes).then_some(closes)
    }
}

/// Whether `windows` let a periodic refresh run at `at`.
pub fn allow(windows: &SyncWindows, at: Timestamp) -> bool {
    let read: Vec<Window> = windows.windows.iter().filter_map(Window::read).collect();
    if windows.windows.is_empty() {
        return true;
    }
    let open = read.iter().any(|w| w.open_at(at).is_some());
    match windows.kind {
        SyncWindowKind::Allow => open,
        SyncWindowKind::Deny => !open,
    }
}

/// How long until the windows may next change from blocking to allowing a refresh: the next
/// opening of any window (`allow`), or the latest close of the windows open now (`deny`);
/// `None` when that cannot be told (no window can be read).
pub fn until_change(windows: &SyncWindows, at: Timestamp) -> Option<Duration> {
    let read: Vec<Window> = windows.windows.iter().filter_map(Window::read).collect();
    let next = match windows.kind {
        SyncWindowKind::Allow => read.iter().filter_map(|w| w.next(at)).min(),
        SyncWindowKind::Deny => read.iter().filter_map(|w| w.open_at(at)).max(),
    }?;
    Duration::try_from(next.duration_since(at)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(kind: SyncWindowKind, entries: &[(&str, &str)]) -> SyncWindows {
        SyncWindows {
            kind,
            windows: entries
                .iter()
                .map(|(schedule, duration)| SyncWindow {
                    schedule: (*schedule).into(),
                    duration: (*duration).into(),
                })
                .collect(),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    /// ESO's docs example: business hours, Monday to Friday 09:00-17:00 UTC.
    #[test]
    fn an_allow_window_permits_refreshes_only_while_open() {
        let w = windows(SyncWindowKind::Allow, &[("0 9 * * 1-5", "8h")]);
        // 2026-12-07 is a Monday.
        assert!(allow(&w, at("2026-12-07T09:00:00Z")));
        assert!(allow(&w, at("2026-12-07T16:59:59Z")));
        assert!(!allow(&w, at("2026-12-07T17:00:01Z")));
        assert!(!allow(&w, at("2026-12-07T08:59:00Z")));
        assert!(!allow(&w, at("2026-12-12T10:00:00Z")), "Saturday");
        // Blocked on Monday evening until Tuesday 09:00.
        assert_eq!(
            until_change(&w, at("2026-12-07T18:00:00Z")),
            Some(Duration::from_secs(15 * 3600))
        );
    }

    /// ESO's docs example: a Saturday maintenance window 02:00-04:00 UTC.
    #[test]
    fn a_deny_window_blocks_refreshes_only_while_open() {
        let w = windows(SyncWindowKind::Deny, &[("0 2 * * 6", "2h")]);
        assert!(!allow(&w, at("2026-12-12T03:00:00Z")));
        assert!(allow(&w, at("2026-12-12T04:00:01Z")));
        assert!(allow(&w, at("2026-12-11T03:00:00Z")), "Friday");
        assert_eq!(
            until_change(&w, at("2026-12-12T03:00:00Z")),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn descriptors_every_and_unreadable_windows() {
        let daily = windows(SyncWindowKind::Allow, &[("@midnight", "1h")]);
        assert!(allow(&daily, at("2026-12-07T00:30:00Z")));
        assert!(!allow(&daily, at("2026-12-07T01:30:00Z")));
        // robfig's `@every`: open whenever the delay fits in the window (plus its second).
        let every = windows(SyncWindowKind::Allow, &[("@every 1h", "1h")]);
        assert!(allow(&every, at("2026-12-07T05:17:00Z")));
        let rare = windows(SyncWindowKind::Allow, &[("@every 2h", "1h")]);
        assert!(!allow(&rare, at("2026-12-07T05:17:00Z")));
        // A typo is a closed window: `deny` with only typos allows everything; `allow` nothing.
        let typo = windows(
            SyncWindowKind::Deny,
            &[("0 2 * *", "2h"), ("0 2 * * 6", "two hours")],
        );
        assert!(allow(&typo, at("2026-12-12T03:00:00Z")));
        let typo = windows(SyncWindowKind::Allow, &[("not a schedule", "1h")]);
        assert!(!allow(&typo, at("2026-12-12T03:00:00Z")));
        assert_eq!(until_change(&typo, at("2026-12-12T03:00:00Z")), None);
    }
}
