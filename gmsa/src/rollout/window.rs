//! Maintenance windows: a 5-field cron (`min hour dom month dow`, UTC) that opens a window, and the
//! window's length. The engine asks two questions: is `now` inside a window, and when does the next
//! one open.
//!
//! Why our own matcher: the Rust cron crates checked (`cron`, `croner`, `cron_clock`,
//! `chronos-parser-rs`) all take `chrono` types, and the workspace uses `time`. Five fields in UTC
//! are small enough to own.
//!
//! Syntax: `*`, numbers, `a-b` ranges, `*/n` and `a-b/n` steps, comma lists, month names (`jan`)
//! and weekday names (`mon`); weekday 0 and 7 are Sunday. As in Vixie cron, when both day of month
//! and day of week are restricted (their field does not start with `*`) a day matches if either
//! does. Searches jump field by field (to the next matching month, day, hour, minute), so even a
//! year-long search takes a few hundred steps.

use time::{Date, Duration, Month, OffsetDateTime, Time, UtcOffset};

/// How far ahead [`Window::next_open`] looks.
pub const NEXT_OPEN_HORIZON_DAYS: i64 = 366;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    /// Bit `d` for day of month `d` (1-31).
    days: u32,
    /// Bit `m` for month `m` (1-12).
    months: u16,
    /// Bit `d` for weekday `d`, 0 = Sunday.
    weekdays: u8,
    day_restricted: bool,
    weekday_restricted: bool,
}

/// A cron expression that cannot be parsed, naming the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron {cron:?}: {field} field {value:?}: {rule}")]
pub struct CronError {
    pub cron: String,
    /// `minute`, `hour`, `day-of-month`, `month` or `day-of-week` (or `expression`).
    pub field: &'static str,
    pub value: String,
    pub rule: String,
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTH_NAMES: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAY_NAMES: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [FieldSpec; 5] = [
    FieldSpec { name: "minute", min: 0, max: 59, names: &[] },
    FieldSpec { name: "hour", min: 0, max: 23, names: &[] },
    FieldSpec { name: "day-of-month", min: 1, max: 31, names: &[] },
    FieldSpec { name: "month", min: 1, max: 12, names: MONTH_NAMES },
    // 7 is Sunday too; folded into bit 0 after parsing.
    FieldSpec { name: "day-of-week", min: 0, max: 7, names: WEEKDAY_NAMES },
];

impl FieldSpec {
    fn value(&self, text: &str) -> Result<u32, String> {
        let lower = text.to_ascii_lowercase();
        if let Some(index) = self.names.iter().position(|name| *name == lower) {
            // Month names count from 1 (the field's minimum), weekday names from 0 (Sunday).
            return Ok(index as u32 + self.min);
        }
        let value: u32 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
        if !(self.min..=self.max).contains(&value) {
            return Err(format!("{value} is out of range {}-{}", self.min, self.max));
        }
        Ok(value)
    }

    /// The bit set of one field (bit `v` for value `v`).
    fn parse(&self, field: &str) -> Result<u64, String> {
        let mut bits = 0u64;
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => {
                    let step: u32 = step.parse().map_err(|_| format!("step {step:?} is not a number"))?;
                    if step == 0 {
                        return Err("a step must be at least 1".into());
                    }
                    if range != "*" && !range.contains('-') {
                        return Err(format!("step {item:?} needs a range (a-b/n) or * (*/n)"));
                    }
                    (range, step)
                }
                None => (item, 1),
            };
            let (low, high) = if range == "*" {
                (self.min, self.max)
            } else if let Some((low, high)) = range.split_once('-') {
                let (low, high) = (self.value(low)?, self.value(high)?);
                if low > high {
                    return Err(format!("range {range:?} starts after it ends"));
                }
                (low, high)
            } else if range.is_empty() {
                return Err("empty list item".into());
            } else {
                let value = self.value(range)?;
                (value, value)
            };
            let mut value = low;
            while value <= high {
                bits |= 1 << value;
                value += step;
            }
        }
        Ok(bits)
    }
}

impl Cron {
    /// Parses `min hour dom month dow`.
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let error = |field: &'static str, value: &str, rule: String| CronError {
            cron: text.to_string(),
            field,
            value: value.to_string(),
            rule,
        };
        if parts.len() != 5 {
            return Err(error(
                "expression",
                text,
                format!("needs 5 fields (minute hour day-of-month month day-of-week), got {}", parts.len()),
            ));
        }
        let mut sets = [0u64; 5];
        for (index, (spec, part)) in FIELDS.iter().zip(&parts).enumerate() {
            sets[index] = spec.parse(part).map_err(|rule| error(spec.name, part, rule))?;
        }
        // Sunday is 0 and 7.
        let weekdays = ((sets[4] | (sets[4] >> 7)) & 0x7f) as u8;
        let cron = Cron {
            minutes: sets[0],
            hours: sets[1] as u32,
            days: sets[2] as u32,
            months: sets[3] as u16,
            weekdays,
            day_restricted: !parts[2].starts_with('*'),
            weekday_restricted: !parts[4].starts_with('*'),
        };
        // A day of month that no chosen month has (`0 0 31 2 *`) never opens a window.
        if cron.day_restricted && !cron.weekday_restricted {
            let possible = (1..=12u8).any(|month| {
                let month_ok = cron.months & (1 << month) != 0;
                let longest = Month::try_from(month).map(|month| month.length(2024)).unwrap_or(31);
                month_ok && (1..=longest).any(|day| cron.days & (1 << day) != 0)
            });
            if !possible {
                return Err(error("day-of-month", parts[2], "no month in the month field has such a day".into()));
            }
        }
        Ok(cron)
    }

    fn day_matches(&self, date: Date) -> bool {
        let by_day = self.days & (1 << date.day()) != 0;
        let by_weekday = self.weekdays & (1 << date.weekday().number_days_from_sunday()) != 0;
        match (self.day_restricted, self.weekday_restricted) {
            (true, true) => by_day || by_weekday,
            (true, false) => by_day,
            (false, true) => by_weekday,
            (false, false) => true,
        }
    }

    fn month_matches(&self, date: Date) -> bool {
        self.months & (1 << u8::from(date.month())) != 0
    }

    /// Whether the minute containing `at` (UTC) matches.
    pub fn matches(&self, at: OffsetDateTime) -> bool {
        let at = at.to_offset(UtcOffset::UTC);
        self.month_matches(at.date())
            && self.day_matches(at.date())
            && self.hours & (1 << at.hour()) != 0
            && self.minutes & (1 << at.minute()) != 0
    }

    /// The first matching minute at or after `from`, if it is not later than `limit`.
    pub fn next_at_or_after(&self, from: OffsetDateTime, limit: OffsetDateTime) -> Option<OffsetDateTime> {
        let from = from.to_offset(UtcOffset::UTC);
        let floor = floor_to_minute(from)?;
        let start = if floor < from { floor.checked_add(Duration::MINUTE)? } else { floor };
        let (mut date, mut hour, mut minute) = (start.date(), start.hour(), start.minute());
        loop {
            let at = date.with_time(Time::from_hms(hour, minute, 0).ok()?).assume_utc();
            if at > limit {
                return None;
            }
            if !self.month_matches(date) {
                date = first_of_next_month(date)?;
                (hour, minute) = (0, 0);
            } else if !self.day_matches(date) {
                date = date.next_day()?;
                (hour, minute) = (0, 0);
            } else if self.hours & (1 << hour) == 0 {
                match (hour + 1..24).find(|h| self.hours & (1 << h) != 0) {
                    Some(next_hour) => (hour, minute) = (next_hour, 0),
                    None => (date, hour, minute) = (date.next_day()?, 0, 0),
                }
            } else if self.minutes & (1 << minute) == 0 {
                match (minute + 1..60).find(|m| self.minutes & (1 << m) != 0) {
                    Some(next_minute) => minute = next_minute,
                    None if hour < 23 => (hour, minute) = (hour + 1, 0),
                    None => (date, hour, minute) = (date.next_day()?, 0, 0),
                }
            } else {
                return Some(at);
            }
        }
    }

    /// The last matching minute at or before `from`, if it is not earlier than `limit`.
    pub fn prev_at_or_before(&self, from: OffsetDateTime, limit: OffsetDateTime) -> Option<OffsetDateTime> {
        let start = floor_to_minute(from.to_offset(UtcOffset::UTC))?;
        let (mut date, mut hour, mut minute) = (start.date(), start.hour(), start.minute());
        loop {
            let at = date.with_time(Time::from_hms(hour, minute, 0).ok()?).assume_utc();
            if at < limit {
                return None;
            }
            if !self.month_matches(date) {
                date = date.replace_day(1).ok()?.previous_day()?;
                (hour, minute) = (23, 59);
            } else if !self.day_matches(date) {
                date = date.previous_day()?;
                (hour, minute) = (23, 59);
            } else if self.hours & (1 << hour) == 0 {
                match (0..hour).rev().find(|h| self.hours & (1 << h) != 0) {
                    Some(previous_hour) => (hour, minute) = (previous_hour, 59),
                    None => (date, hour, minute) = (date.previous_day()?, 23, 59),
                }
            } else if self.minutes & (1 << minute) == 0 {
                match (0..minute).rev().find(|m| self.minutes & (1 << m) != 0) {
                    Some(previous_minute) => minute = previous_minute,
                    None if hour > 0 => (hour, minute) = (hour - 1, 59),
                    None => (date, hour, minute) = (date.previous_day()?, 23, 59),
                }
            } else {
                return Some(at);
            }
        }
    }
}

fn floor_to_minute(at: OffsetDateTime) -> Option<OffsetDateTime> {
    at.replace_second(0).ok()?.replace_nanosecond(0).ok()
}

fn first_of_next_month(date: Date) -> Option<Date> {
    let (year, month) = match date.month() {
        Month::December => (date.year().checked_add(1)?, Month::January),
        month => (date.year(), month.next()),
    };
    Date::from_calendar_date(year, month, 1).ok()
}

/// A maintenance window: opens at each matching minute of `cron` and lasts `duration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub cron: Cron,
    pub duration: Duration,
}

impl Window {
    /// From the file's fields (`duration_secs` already checked against `MAX_WINDOW_SECS`).
    pub fn parse(cron: &str, duration_secs: u64) -> Result<Window, CronError> {
        let seconds = i64::try_from(duration_secs).unwrap_or(i64::MAX);
        Ok(Window { cron: Cron::parse(cron)?, duration: Duration::seconds(seconds) })
    }

    /// Whether `now` is inside a window: the last opening at or before `now` is less than
    /// `duration` ago.
    pub fn contains(&self, now: OffsetDateTime) -> bool {
        let Some(earliest) = now.checked_sub(self.duration) else {
            return false;
        };
        self.cron
            .prev_at_or_before(now, earliest)
            .and_then(|opened| opened.checked_add(self.duration))
            .is_some_and(|closes| closes > now)
    }

    /// When the next window opens at or after `now`, looking [`NEXT_OPEN_HORIZON_DAYS`] ahead.
    pub fn next_open(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let horizon = now.checked_add(Duration::days(NEXT_OPEN_HORIZON_DAYS))?;
        self.cron.next_at_or_after(now, horizon)
    }
}

/// Whether a cluster with these windows may start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowGate {
    /// No window applies, or `now` is inside one.
    Open,
    /// Outside every window; the earliest next opening, if one opens within the horizon.
    Closed { opens_at: Option<OffsetDateTime> },
}

/// A cluster matched by no window may start any time; otherwise it must be inside one of them.
pub fn gate(windows: &[&Window], now: OffsetDateTime) -> WindowGate {
    if windows.is_empty() || windows.iter().any(|window| window.contains(now)) {
        return WindowGate::Open;
    }
    WindowGate::Closed { opens_at: windows.iter().filter_map(|window| window.next_open(now)).min() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn cron(text: &str) -> Cron {
        Cron::parse(text).unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn fields_lists_ranges_and_steps() {
        let every_quarter = cron("*/15 9-17 * * mon-fri");
        assert!(every_quarter.matches(datetime!(2026-11-23 09:45 UTC))); // a Monday
        assert!(!every_quarter.matches(datetime!(2026-11-23 09:46 UTC)));
        assert!(!every_quarter.matches(datetime!(2026-11-23 18:00 UTC)));
        assert!(!every_quarter.matches(datetime!(2026-11-22 10:00 UTC))); // a Sunday
        let listed = cron("0,30 1,3-5/2 1 jan,Jul *");
        assert!(listed.matches(datetime!(2026-07-01 05:30 UTC)));
        assert!(!listed.matches(datetime!(2026-07-01 04:30 UTC)));
        assert!(!listed.matches(datetime!(2026-08-01 05:30 UTC)));
    }

    #[test]
    fn sunday_is_0_and_7() {
        let sunday = datetime!(2026-11-22 00:00 UTC);
        assert!(cron("0 0 * * 0").matches(sunday));
        assert!(cron("0 0 * * 7").matches(sunday));
        assert!(cron("0 0 * * 5-7").matches(sunday));
        assert!(cron("0 0 * * sun").matches(sunday));
        assert!(!cron("0 0 * * 1-6").matches(sunday));
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_restricted() {
        let either = cron("0 0 13 * fri");
        assert!(either.matches(datetime!(2026-11-13 00:00 UTC))); // the 13th, a Friday
        assert!(either.matches(datetime!(2026-11-20 00:00 UTC))); // a Friday
        assert!(either.matches(datetime!(2026-12-13 00:00 UTC))); // the 13th, a Sunday
        assert!(!either.matches(datetime!(2026-11-19 00:00 UTC)));
        // A stepped `*/2` counts as unrestricted, as in Vixie cron: only the weekday decides.
        assert!(!cron("0 0 */2 * fri").matches(datetime!(2026-11-19 00:00 UTC)));
    }

    #[test]
    fn invalid_fields_say_which_and_why() {
        let cases = [
            ("* * * *", "expression", "needs 5 fields"),
            ("60 * * * *", "minute", "out of range 0-59"),
            ("* 24 * * *", "hour", "out of range"),
            ("* * 0 * *", "day-of-month", "out of range 1-31"),
            ("* * * 13 *", "month", "out of range"),
            ("* * * * 8", "day-of-week", "out of range 0-7"),
            ("*/0 * * * *", "minute", "at least 1"),
            ("5/10 * * * *", "minute", "needs a range"),
            ("10-5 * * * *", "minute", "starts after it ends"),
            ("1,,2 * * * *", "minute", "empty list item"),
            ("x * * * *", "minute", "not a number"),
            ("0 0 31 feb,apr *", "day-of-month", "no month"),
        ];
        for (text, field, rule) in cases {
            let err = Cron::parse(text).unwrap_err();
            assert_eq!(err.field, field, "{text}: {err}");
            assert!(err.rule.contains(rule), "{text}: {err}");
            assert!(err.to_string().contains(text), "{err}");
        }
        // Feb 29 is possible (in leap years).
        assert!(Cron::parse("0 0 29 2 *").is_ok());
    }

    #[test]
    fn next_and_previous_openings() {
        let nightly = cron("30 22 * * mon-fri");
        let friday_noon = datetime!(2026-11-27 12:00:10 UTC);
        let far = datetime!(2030-01-01 00:00 UTC);
        assert_eq!(nightly.next_at_or_after(friday_noon, far), Some(datetime!(2026-11-27 22:30 UTC)));
        let saturday = datetime!(2026-11-28 01:00 UTC);
        assert_eq!(nightly.next_at_or_after(saturday, far), Some(datetime!(2026-11-30 22:30 UTC)));
        assert_eq!(
            nightly.prev_at_or_before(saturday, datetime!(2000-01-01 00:00 UTC)),
            Some(datetime!(2026-11-27 22:30 UTC))
        );
        // Exactly on an opening counts, at or after and at or before.
        let opening = datetime!(2026-11-27 22:30 UTC);
        assert_eq!(nightly.next_at_or_after(opening, far), Some(opening));
        assert_eq!(nightly.prev_at_or_before(opening, opening), Some(opening));
        // Limits bound the search.
        assert_eq!(nightly.next_at_or_after(saturday, datetime!(2026-11-30 22:29 UTC)), None);
        // Crossing a year and a leap day.
        let leap = cron("0 0 29 2 *");
        assert_eq!(leap.next_at_or_after(datetime!(2026-03-01 00:00 UTC), far), Some(datetime!(2028-02-29 00:00 UTC)));
        assert_eq!(
            leap.prev_at_or_before(datetime!(2026-03-01 00:00 UTC), datetime!(2000-01-01 00:00 UTC)),
            Some(datetime!(2024-02-29 00:00 UTC))
        );
    }

    #[test]
    fn search_agrees_with_a_minute_by_minute_scan() {
        let crons = ["*/7 */5 * * *", "0 3 1,15 * *", "59 23 * * 6", "15 10 10-12 */3 2", "0 0 * 2 *"];
        let from = datetime!(2026-12-30 23:50:30 UTC);
        for text in crons {
            let parsed = cron(text);
            let mut at = datetime!(2026-12-30 23:51 UTC);
            let scanned = loop {
                if parsed.matches(at) {
                    break at;
                }
                at += Duration::MINUTE;
            };
            let limit = datetime!(2028-01-01 00:00 UTC);
            assert_eq!(parsed.next_at_or_after(from, limit), Some(scanned), "{text}");
            let back = scanned + Duration::seconds(59);
            assert_eq!(parsed.prev_at_or_before(back, from), Some(scanned), "{text}");
        }
    }

    #[test]
    fn a_window_is_open_for_its_duration() {
        let window = Window::parse("0 22 * * *", 4 * 3600).unwrap();
        assert!(window.contains(datetime!(2026-11-23 23:59 UTC)));
        assert!(window.contains(datetime!(2026-11-24 01:59:59 UTC)));
        assert!(!window.contains(datetime!(2026-11-24 02:00 UTC)));
        assert!(!window.contains(datetime!(2026-11-23 21:59 UTC)));
        assert_eq!(window.next_open(datetime!(2026-11-24 02:00 UTC)), Some(datetime!(2026-11-24 22:00 UTC)));
        let other = Window::parse("0 6 * * *", 3600).unwrap();
        let now = datetime!(2026-11-24 03:00 UTC);
        assert_eq!(
            gate(&[&window, &other], now),
            WindowGate::Closed { opens_at: Some(datetime!(2026-11-24 06:00 UTC)) }
        );
        assert_eq!(gate(&[&window, &other], datetime!(2026-11-24 06:30 UTC)), WindowGate::Open);
        assert_eq!(gate(&[], now), WindowGate::Open);
    }
}
