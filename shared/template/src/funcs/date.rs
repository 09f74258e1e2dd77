//! sprig's date functions with Go's reference-time layouts (`2006-01-02 15:04:05`).
//!
//! A template value has no time type, so a time is carried as the string Go's `Time.String()`
//! prints (`2006-01-02 15:04:05.999999999 -0700 MST`); functions that take a time read that
//! form back. `Local` is UTC (ESO's container has no zone configured).

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};

use gotmpl::Value;
use secret_sync_gosem as gosem;

use super::{Args, R, s};
use crate::go;

/// A Go `time.Time`: an instant seen at an offset, with the zone's abbreviation.
struct GoTime {
    ts: Timestamp,
    dt: DateTime,
    offset: i32,
    abbrev: String,
}

impl GoTime {
    fn in_zone(ts: Timestamp, tz: &TimeZone) -> Self {
        let zoned = ts.to_zoned(tz.clone());
        let offset = zoned.offset().seconds();
        let abbrev = zoned.strftime("%Z").to_string();
        Self {
            ts,
            dt: zoned.datetime(),
            offset,
            abbrev,
        }
    }

    fn utc(ts: Timestamp) -> Self {
        Self::in_zone(ts, &TimeZone::UTC)
    }

    fn now() -> Self {
        Self::utc(Timestamp::now())
    }

    /// `Time.String()`.
    fn to_value(&self) -> Value {
        Value::from(format("2006-01-02 15:04:05.999999999 -0700 MST", self))
    }

    /// Reads the `Time.String()` form back.
    fn parse_value(v: &Value) -> Option<Self> {
        let Value::String(text) = v else { return None };
        let mut parts = text.splitn(4, ' ');
        let (date, time, off, abbrev) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let dt: DateTime = format!("{date}T{time}").parse().ok()?;
        let sign = match off.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let digits = &off[1..];
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let secs = sign
            * (digits[..2].parse::<i32>().ok()? * 3600 + digits[2..].parse::<i32>().ok()? * 60);
        let offset = Offset::from_seconds(secs).ok()?;
        let ts = offset.to_timestamp(dt).ok()?;
        Some(Self {
            ts,
            dt,
            offset: secs,
            abbrev: abbrev.to_owned(),
        })
    }
}

/// Layout elements, as Go's `nextStdChunk` finds them.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    Tz,
    Iso8601Tz,
    Iso8601SecondsTz,
    Iso8601ShortTz,
    Iso8601ColonTz,
    Iso8601ColonSecondsTz,
    NumTz,
    NumSecondsTz,
    NumShortTz,
    NumColonTz,
    NumColonSecondsTz,
    Frac0(usize, u8),
    Frac9(usize, u8),
}

enum Chunk<'a> {
    Lit(&'a str),
    Std(Std),
}

fn chunks(layout: &str) -> Vec<Chunk<'_>> {
    let b = layout.as_bytes();
    let mut out = Vec::new();
    let mut lit_start = 0;
    let mut i = 0;
    let at = |i: usize, p: &str| layout[i..].starts_with(p);
    while i < b.len() {
        let found: Option<(Std, usize)> = match b[i] {
            b'J' if at(i, "January") => Some((Std::LongMonth, 7)),
            b'J' if at(i, "Jan") => Some((Std::Month, 3)),
            b'M' if at(i, "Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if at(i, "Mon") => Some((Std::WeekDay, 3)),
            b'M' if at(i, "MST") => Some((Std::Tz, 3)),
            b'0' if at(i, "002") => Some((Std::ZeroYearDay, 3)),
            b'0' if i + 1 < b.len() && (b'1'..=b'6').contains(&b[i + 1]) => Some((
                [
                    Std::ZeroMonth,
                    Std::ZeroDay,
                    Std::ZeroHour12,
                    Std::ZeroMinute,
                    Std::ZeroSecond,
                    Std::Year,
                ][(b[i + 1] - b'1') as usize],
                2,
            )),
            b'1' if at(i, "15") => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if at(i, "2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            b'_' if at(i, "__2") => Some((Std::UnderYearDay, 3)),
            b'_' if at(i, "_2") && !at(i, "_2006") => Some((Std::UnderDay, 2)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if at(i, "PM") => Some((Std::PM, 2)),
            b'p' if at(i, "pm") => Some((Std::Pm, 2)),
            b'-' if at(i, "-070000") => Some((Std::NumSecondsTz, 7)),
            b'-' if at(i, "-07:00:00") => Some((Std::NumColonSecondsTz, 9)),
            b'-' if at(i, "-0700") => Some((Std::NumTz, 5)),
            b'-' if at(i, "-07:00") => Some((Std::NumColonTz, 6)),
            b'-' if at(i, "-07") => Some((Std::NumShortTz, 3)),
            b'Z' if at(i, "Z070000") => Some((Std::Iso8601SecondsTz, 7)),
            b'Z' if at(i, "Z07:00:00") => Some((Std::Iso8601ColonSecondsTz, 9)),
            b'Z' if at(i, "Z0700") => Some((Std::Iso8601Tz, 5)),
            b'Z' if at(i, "Z07:00") => Some((Std::Iso8601ColonTz, 6)),
            b'Z' if at(i, "Z07") => Some((Std::Iso8601ShortTz, 3)),
            c @ (b'.' | b',') if i + 1 < b.len() && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == ch {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    None
                } else {
                    let n = j - i - 1;
                    Some((
                        if ch == b'0' {
                            Std::Frac0(n, c)
                        } else {
                            Std::Frac9(n, c)
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        match found {
            Some((std, len)) => {
                if lit_start < i {
                    out.push(Chunk::Lit(&layout[lit_start..i]));
                }
                out.push(Chunk::Std(std));
                i += len;
                lit_start = i;
            }
            None => i += layout[i..].chars().next().map_or(1, char::len_utf8),
        }
    }
    if lit_start < b.len() {
        out.push(Chunk::Lit(&layout[lit_start..]));
    }
    out
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// `Time.Format(layout)`.
fn format(layout: &str, t: &GoTime) -> String {
    let dt = t.dt;
    let mut out = String::new();
    let month = dt.month() as usize;
    let weekday = dt.weekday().to_sunday_zero_offset() as usize;
    let hour12 = match dt.hour() % 12 {
        0 => 12,
        h => h,
    };
    for chunk in chunks(layout) {
        let std = match chunk {
            Chunk::Lit(l) => {
                out.push_str(l);
                continue;
            }
            Chunk::Std(std) => std,
        };
        match std {
            Std::LongMonth => out.push_str(MONTHS[month - 1]),
            Std::Month => out.push_str(&MONTHS[month - 1][..3]),
            Std::NumMonth => out.push_str(&month.to_string()),
            Std::ZeroMonth => out.push_str(&format!("{month:02}")),
            Std::LongWeekDay => out.push_str(DAYS[weekday]),
            Std::WeekDay => out.push_str(&DAYS[weekday][..3]),
            Std::Day => out.push_str(&dt.day().to_string()),
            Std::UnderDay => out.push_str(&format!("{:>2}", dt.day())),
            Std::ZeroDay => out.push_str(&format!("{:02}", dt.day())),
            Std::UnderYearDay => out.push_str(&format!("{:>3}", dt.day_of_year())),
            Std::ZeroYearDay => out.push_str(&format!("{:03}", dt.day_of_year())),
            Std::Hour => out.push_str(&format!("{:02}", dt.hour())),
            Std::Hour12 => out.push_str(&hour12.to_string()),
            Std::ZeroHour12 => out.push_str(&format!("{hour12:02}")),
            Std::Minute => out.push_str(&dt.minute().to_string()),
            Std::ZeroMinute => out.push_str(&format!("{:02}", dt.minute())),
            Std::Second => out.push_str(&dt.second().to_string()),
            Std::ZeroSecond => out.push_str(&format!("{:02}", dt.second())),
            Std::LongYear => out.push_str(&format!("{:04}", dt.year())),
            Std::Year => out.push_str(&format!("{:02}", dt.year().rem_euclid(100))),
            Std::PM => out.push_str(if dt.hour() >= 12 { "PM" } else { "AM" }),
            Std::Pm => out.push_str(if dt.hour() >= 12 { "pm" } else { "am" }),
            Std::Tz => {
                if t.abbrev.is_empty() {
                    out.push_str(&zone(t.offset, false, false, false));
                } else {
                    out.push_str(&t.abbrev);
                }
            }
            Std::Iso8601Tz
            | Std::Iso8601SecondsTz
            | Std::Iso8601ShortTz
            | Std::Iso8601ColonTz
            | Std::Iso8601ColonSecondsTz
                if t.offset == 0 =>
            {
                out.push('Z');
            }
            Std::Iso8601Tz | Std::NumTz => out.push_str(&zone(t.offset, false, false, false)),
            Std::Iso8601SecondsTz | Std::NumSecondsTz => {
                out.push_str(&zone(t.offset, false, true, false));
            }
            Std::Iso8601ShortTz | Std::NumShortTz => {
                out.push_str(&zone(t.offset, false, false, true));
            }
            Std::Iso8601ColonTz | Std::NumColonTz => {
                out.push_str(&zone(t.offset, true, false, false));
            }
            Std::Iso8601ColonSecondsTz | Std::NumColonSecondsTz => {
                out.push_str(&zone(t.offset, true, true, false));
            }
            Std::Frac0(n, sep) => {
                let nanos = format!("{:09}", dt.subsec_nanosecond());
                out.push(char::from(sep));
                out.push_str(&nanos[..n.min(9)]);
                out.extend(std::iter::repeat_n('0', n.saturating_sub(9)));
            }
            Std::Frac9(n, sep) => {
                let nanos = format!("{:09}", dt.subsec_nanosecond());
                let digits = nanos[..n.min(9)].trim_end_matches('0');
                if !digits.is_empty() {
                    out.push(char::from(sep));
                    out.push_str(digits);
                }
            }
        }
    }
    out
}

fn zone(offset: i32, colon: bool, seconds: bool, short: bool) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let o = offset.abs();
    let (h, m, sec) = (o / 3600, (o / 60) % 60, o % 60);
    let sep = if colon { ":" } else { "" };
    let mut out = format!("{sign}{h:02}");
    if !short {
        out.push_str(&format!("{sep}{m:02}"));
    }
    if seconds {
        out.push_str(&format!("{sep}{sec:02}"));
    }
    out
}

/// `time.ParseInLocation(layout, value, UTC)` for the common elements.
fn parse(layout: &str, value: &str) -> Option<GoTime> {
    let (mut year, mut month, mut day, mut hour, mut min, mut sec, mut nanos) =
        (1i16, 1i8, 1i8, 0i8, 0i8, 0i8, 0i32);
    let mut pm: Option<bool> = None;
    let mut offset: Option<i32> = None;
    let mut rest = value;
    fn num(rest: &mut &str, min: usize, max: usize) -> Option<i64> {
        let n = rest
            .bytes()
            .take(max)
            .take_while(u8::is_ascii_digit)
            .count();
        if n < min {
            return None;
        }
        let v = rest[..n].parse().ok()?;
        *rest = &rest[n..];
        Some(v)
    }
    let chunks = chunks(layout);
    for (ci, chunk) in chunks.iter().enumerate() {
        let std = match chunk {
            Chunk::Lit(l) => {
                rest = rest.strip_prefix(l)?;
                continue;
            }
            Chunk::Std(std) => *std,
        };
        match std {
            Std::LongMonth | Std::Month => {
                let i = MONTHS.iter().position(|m| {
                    let name = if std == Std::Month { &m[..3] } else { m };
                    rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name)
                })?;
                let len = if std == Std::Month {
                    3
                } else {
                    MONTHS[i].len()
                };
                rest = &rest[len..];
                month = i as i8 + 1;
            }
            Std::LongWeekDay | Std::WeekDay => {
                let i = DAYS.iter().position(|d| {
                    let name = if std == Std::WeekDay { &d[..3] } else { d };
                    rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name)
                })?;
                rest = &rest[if std == Std::WeekDay {
                    3
                } else {
                    DAYS[i].len()
                }..];
            }
            Std::NumMonth | Std::ZeroMonth => {
                month = num(&mut rest, if std == Std::ZeroMonth { 2 } else { 1 }, 2)? as i8;
            }
            Std::Day | Std::ZeroDay | Std::UnderDay => {
                if std == Std::UnderDay {
                    rest = rest.strip_prefix(' ').unwrap_or(rest);
                }
                day = num(&mut rest, if std == Std::ZeroDay { 2 } else { 1 }, 2)? as i8;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                num(&mut rest, 3, 3)?;
            }
            Std::Hour => hour = num(&mut rest, 2, 2)? as i8,
            Std::Hour12 | Std::ZeroHour12 => {
                hour = num(&mut rest, if std == Std::ZeroHour12 { 2 } else { 1 }, 2)? as i8;
            }
            Std::Minute | Std::ZeroMinute => {
                min = num(&mut rest, if std == Std::ZeroMinute { 2 } else { 1 }, 2)? as i8;
            }
            Std::Second | Std::ZeroSecond => {
                sec = num(&mut rest, if std == Std::ZeroSecond { 2 } else { 1 }, 2)? as i8;
                // Go reads a fraction after the seconds even when the layout has none.
                let next_is_frac = matches!(
                    chunks.get(ci + 1),
                    Some(Chunk::Std(Std::Frac0(..) | Std::Frac9(..)))
                );
                if !next_is_frac
                    && rest.starts_with(['.', ','])
                    && rest[1..].starts_with(|c: char| c.is_ascii_digit())
                {
                    rest = &rest[1..];
                    nanos = frac(&mut rest)?;
                }
            }
            Std::LongYear => year = num(&mut rest, 4, 4)? as i16,
            Std::Year => year = 2000 + num(&mut rest, 2, 2)? as i16,
            Std::PM | Std::Pm => {
                let p = rest.get(..2)?.to_ascii_uppercase();
                pm = Some(match p.as_str() {
                    "PM" => true,
                    "AM" => false,
                    _ => return None,
                });
                rest = &rest[2..];
            }
            Std::Tz => {
                let n = rest.bytes().take_while(u8::is_ascii_uppercase).count();
                if n < 3 {
                    return None;
                }
                rest = &rest[n..];
                offset.get_or_insert(0);
            }
            Std::Frac0(..) | Std::Frac9(..) => {
                if rest.starts_with(['.', ',']) {
                    rest = &rest[1..];
                    nanos = frac(&mut rest)?;
                }
            }
            _ => {
                if rest.starts_with('Z') {
                    rest = &rest[1..];
                    offset = Some(0);
                    continue;
                }
                let sign = match rest.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                rest = &rest[1..];
                let h = num(&mut rest, 2, 2)?;
                rest = rest.strip_prefix(':').unwrap_or(rest);
                let m = num(&mut rest, 2, 2).unwrap_or(0);
                offset = Some(sign * (h as i32 * 3600 + m as i32 * 60));
            }
        }
    }
    if !rest.is_empty() {
        return None;
    }
    match pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    let dt = DateTime::new(year, month, day, hour, min, sec, nanos).ok()?;
    let off = Offset::from_seconds(offset.unwrap_or(0)).ok()?;
    let ts = off.to_timestamp(dt).ok()?;
    Some(match offset {
        None | Some(0) => GoTime::utc(ts),
        Some(o) => GoTime {
            ts,
            dt,
            offset: o,
            abbrev: String::new(),
        },
    })
}

fn frac(rest: &mut &str) -> Option<i32> {
    let n = rest.bytes().take_while(u8::is_ascii_digit).count();
    let digits = &rest[..n];
    *rest = &rest[n..];
    let padded = format!("{:0<9}", &digits[..n.min(9)]);
    padded.parse().ok()
}

/// A time argument: a time value, or Unix seconds; anything else is now (sprig's `date`).
fn time_arg(v: &Value) -> GoTime {
    match v {
        Value::Int(n) => Timestamp::from_second(*n).map_or_else(|_| GoTime::now(), GoTime::utc),
        other => GoTime::parse_value(other).unwrap_or_else(GoTime::now),
    }
}

fn zone_named(name: &str) -> TimeZone {
    if name == "Local" || name == "UTC" || name.is_empty() {
        return TimeZone::UTC;
    }
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

fn in_zone(layout: &str, date: &Value, zone: &str) -> String {
    let t = time_arg(date);
    format(layout, &GoTime::in_zone(t.ts, &zone_named(zone)))
}

pub(crate) fn now(a: &Args) -> R {
    a.exactly(0)?;
    Ok(GoTime::now().to_value())
}

pub(crate) fn date(a: &Args) -> R {
    a.exactly(2)?;
    s(in_zone(a.str(0)?, a.any(1), "Local"))
}

pub(crate) fn date_in_zone(a: &Args) -> R {
    a.exactly(3)?;
    s(in_zone(a.str(0)?, a.any(1), a.str(2)?))
}

pub(crate) fn html_date(a: &Args) -> R {
    a.exactly(1)?;
    s(in_zone("2006-01-02", a.any(0), "Local"))
}

pub(crate) fn html_date_in_zone(a: &Args) -> R {
    a.exactly(2)?;
    s(in_zone("2006-01-02", a.any(0), a.str(1)?))
}

/// The zero time, which `toDate` returns when it cannot parse.
fn zero_time() -> Value {
    Value::from("0001-01-01 00:00:00 +0000 UTC")
}

pub(crate) fn to_date(a: &Args) -> R {
    a.exactly(2)?;
    Ok(parse(a.str(0)?, a.str(1)?).map_or_else(zero_time, |t| t.to_value()))
}

pub(crate) fn must_to_date(a: &Args) -> R {
    a.exactly(2)?;
    parse(a.str(0)?, a.str(1)?)
        .map(|t| t.to_value())
        .ok_or_else(|| "parsing time: the value does not match the layout".to_owned())
}

fn time_param(a: &Args, i: usize) -> Result<GoTime, String> {
    GoTime::parse_value(a.any(i)).ok_or_else(|| {
        format!(
            "wrong type for value; expected time.Time; got {}",
            go::type_name(a.any(i))
        )
    })
}

pub(crate) fn unix_epoch(a: &Args) -> R {
    a.exactly(1)?;
    s(time_param(a, 0)?.ts.as_second().to_string())
}

fn modify(a: &Args) -> Result<Option<GoTime>, String> {
    a.exactly(2)?;
    let t = time_param(a, 1)?;
    let Ok(d) = gosem::parse_go_duration_nanos(a.str(0)?) else {
        return Ok(None);
    };
    let ts =
        t.ts.checked_add(jiff::SignedDuration::from_nanos(d))
            .map_err(|_| "time out of range".to_owned())?;
    let abbrev_zone = if t.offset == 0 {
        TimeZone::UTC
    } else {
        TimeZone::fixed(Offset::from_seconds(t.offset).map_err(|_| "bad offset".to_owned())?)
    };
    let mut out = GoTime::in_zone(ts, &abbrev_zone);
    if t.offset != 0 {
        out.abbrev.clone_from(&t.abbrev);
    }
    Ok(Some(out))
}

pub(crate) fn date_modify(a: &Args) -> R {
    match modify(a)? {
        Some(t) => Ok(t.to_value()),
        None => Ok(a.any(1).clone()),
    }
}

pub(crate) fn must_date_modify(a: &Args) -> R {
    match modify(a)? {
        Some(t) => Ok(t.to_value()),
        None => Err("time: invalid duration".to_owned()),
    }
}

/// `time.Duration.String()` of whole seconds (Go's `time.Duration(n) * time.Second`, which
/// wraps on overflow).
fn duration_string(secs: i64) -> String {
    gosem::format_go_duration_nanos(secs.wrapping_mul(1_000_000_000))
}

pub(crate) fn duration(a: &Args) -> R {
    a.exactly(1)?;
    let n = match a.any(0) {
        Value::String(t) => t.parse().unwrap_or(0),
        Value::Int(n) => *n,
        _ => 0,
    };
    s(duration_string(n))
}

pub(crate) fn ago(a: &Args) -> R {
    a.exactly(1)?;
    let t = time_arg(a.any(0));
    let since = Timestamp::now().as_second() - t.ts.as_second();
    s(duration_string(since))
}

/// sprig's `durationRound`: a duration string (`time.ParseDuration`; unparsable is 0), an
/// int64 of nanoseconds, or a time (the time since it), as its largest whole unit: `y` (365
/// days), `mo` (30 days), `d`, `h`, `m`, `s`, else `0s`. A unit counts only when the duration
/// exceeds it (24h is `24h`, 24h5s is `1d`).
pub(crate) fn duration_round(a: &Args) -> R {
    a.exactly(1)?;
    let nanos: i64 = match a.any(0) {
        Value::String(t) => match gosem::parse_go_duration_nanos(t) {
            Ok(n) => n,
            Err(_) => match GoTime::parse_value(a.any(0)) {
                Some(t) => {
                    let since = Timestamp::now().duration_since(t.ts);
                    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
                }
                None => 0,
            },
        },
        Value::Int(n) => *n,
        _ => 0,
    };
    let u = nanos.unsigned_abs();
    const SECOND: u64 = 1_000_000_000;
    const UNITS: [(u64, &str); 6] = [
        (SECOND * 3600 * 24 * 365, "y"),
        (SECOND * 3600 * 24 * 30, "mo"),
        (SECOND * 3600 * 24, "d"),
        (SECOND * 3600, "h"),
        (SECOND * 60, "m"),
        (SECOND, "s"),
    ];
    for (unit, name) in UNITS {
        if u > unit {
            return s(format!("{}{name}", u / unit));
        }
    }
    s("0s")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> GoTime {
        GoTime::parse_value(&Value::from(text)).expect("test input is valid")
    }

    #[test]
    fn layouts_format_as_go_time_format_does() {
        // Go's time package doc: Mon Jan 2 15:04:05 MST 2006 is the reference time.
        let x = t("2023-03-05 14:07:09.120000000 +0000 UTC");
        assert_eq!(format("2006-01-02", &x), "2023-03-05");
        assert_eq!(format(time_rfc3339(), &x), "2023-03-05T14:07:09Z");
        assert_eq!(format("Jan _2 3:04PM", &x), "Mar  5 2:07PM");
        assert_eq!(
            format("Monday, 02-Jan-06 15:04:05 MST", &x),
            "Sunday, 05-Mar-23 14:07:09 UTC"
        );
        assert_eq!(format("15:04:05.000", &x), "14:07:09.120");
        assert_eq!(format("15:04:05.999", &x), "14:07:09.12");
        assert_eq!(x.to_value().to_string(), "2023-03-05 14:07:09.12 +0000 UTC");
    }

    fn time_rfc3339() -> &'static str {
        "2006-01-02T15:04:05Z07:00"
    }

    #[test]
    fn layouts_parse_back() {
        let x = parse("2006-01-02", "2017-12-31").expect("test input is valid");
        assert_eq!(x.to_value().to_string(), "2017-12-31 00:00:00 +0000 UTC");
        let y = parse(time_rfc3339(), "2020-01-02T03:04:05+02:00").expect("test input is valid");
        assert_eq!(y.ts.as_second(), 1_577_927_045);
        assert!(parse("2006-01-02", "31/12/2017").is_none());
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(duration_string(0), "0s");
        assert_eq!(duration_string(95), "1m35s");
        assert_eq!(duration_string(3600), "1h0m0s");
        assert_eq!(duration_string(-95), "-1m35s");
    }
}
