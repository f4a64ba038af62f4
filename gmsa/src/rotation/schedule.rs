//! When a credential rotates: every N days/hours, or at a cron expression's times, and whether
//! that keeps every password younger than the domain's `maxPwdAge`.
//!
//! A user is reset every **second** rotation (A and B alternate), so its password reaches twice
//! the longest gap between two runs: that is what is checked against the policy.
//!
//! A missed window runs once: [`next_due`] gives the first time after the last run (or after the
//! schedule was set), and after a run the next one is computed from the run's own time — however
//! many windows passed while the coordinator was down, one run catches up.

use crate::rollout::window::Cron;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::{Duration, OffsetDateTime};

/// The shortest interval: an hour (a rotation is a fleet-wide rollout, not a heartbeat).
pub const MIN_INTERVAL_SECS: u64 = 3600;
/// The longest interval: ten years (AD's `maxPwdAge` cannot express more meaningfully).
pub const MAX_INTERVAL_SECS: u64 = 3650 * 24 * 3600;
/// How far ahead a cron schedule's gaps are examined: a little over a year.
const CRON_HORIZON_DAYS: i64 = 400;

/// A credential's rotation schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// A fixed interval in seconds after the previous run.
    Every { secs: u64 },
    /// The times a five-field cron expression (UTC) names.
    Cron { cron: String },
    /// A schedule written by a newer coordinator: never due here.
    #[serde(other)]
    Unknown,
}

/// Why a schedule is refused; the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ScheduleError {
    pub field: &'static str,
    pub rule: String,
}

impl ScheduleError {
    fn new(field: &'static str, rule: impl Into<String>) -> Self {
        ScheduleError { field, rule: rule.into() }
    }
}

fn secs(value: u64) -> Duration {
    Duration::seconds(i64::try_from(value).unwrap_or(i64::MAX))
}

/// `30d`, `12h`, `90m` or `3600s` (an operator's `--every`).
pub fn parse_interval(text: &str) -> Result<u64, ScheduleError> {
    let text = text.trim();
    let rule = "must be a number followed by d, h, m or s (e.g. 30d), at least 1h and at most 3650d";
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| ScheduleError::new("every", rule))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| ScheduleError::new("every", rule))?;
    let unit_secs = match unit {
        "d" => 86_400,
        "h" => 3600,
        "m" => 60,
        "s" => 1,
        _ => return Err(ScheduleError::new("every", rule)),
    };
    let total = number.checked_mul(unit_secs).ok_or_else(|| ScheduleError::new("every", rule))?;
    if !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&total) {
        return Err(ScheduleError::new("every", rule));
    }
    Ok(total)
}

impl Schedule {
    /// An interval schedule from `--every` text.
    pub fn every(text: &str) -> Result<Schedule, ScheduleError> {
        parse_interval(text).map(|secs| Schedule::Every { secs })
    }

    /// A cron schedule, its syntax checked.
    pub fn cron(text: &str) -> Result<Schedule, ScheduleError> {
        Cron::parse(text).map_err(|err| ScheduleError::new("cron", err.to_string()))?;
        Ok(Schedule::Cron { cron: text.trim().to_string() })
    }

    /// Re-checks a stored schedule (a KV entry is input too).
    pub fn validate(&self) -> Result<(), ScheduleError> {
        match self {
            Schedule::Every { secs } if !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(secs) => {
                Err(ScheduleError::new("every", "must be at least 1h and at most 3650d"))
            }
            Schedule::Every { .. } => Ok(()),
            Schedule::Cron { cron } => Schedule::cron(cron).map(|_| ()),
            Schedule::Unknown => Err(ScheduleError::new("schedule", "written by a newer coordinator")),
        }
    }

    /// The first run strictly after `after`; `None` for a cron expression that never fires
    /// within the horizon, or an unknown schedule.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            Schedule::Every { secs: interval } => after.checked_add(secs(*interval)),
            Schedule::Cron { cron } => {
                let cron = Cron::parse(cron).ok()?;
                let from =
                    after.checked_add(Duration::minutes(1))?.replace_second(0).ok()?.replace_nanosecond(0).ok()?;
                cron.next_at_or_after(from, from.checked_add(Duration::days(CRON_HORIZON_DAYS))?)
            }
            Schedule::Unknown => None,
        }
    }

    /// The longest time between two consecutive runs, looking a year ahead from `from` for a
    /// cron expression; `None` when it does not fire twice within the horizon.
    pub fn longest_gap(&self, from: OffsetDateTime) -> Option<Duration> {
        match self {
            Schedule::Every { secs: interval } => Some(secs(*interval)),
            Schedule::Cron { .. } => {
                let horizon = from.checked_add(Duration::days(CRON_HORIZON_DAYS))?;
                let mut at = self.next_after(from)?;
                let mut longest: Option<Duration> = None;
                while let Some(next) = self.next_after(at) {
                    if next > horizon {
                        break;
                    }
                    let gap = next - at;
                    longest = Some(longest.map_or(gap, |known| known.max(gap)));
                    at = next;
                }
                longest
            }
            Schedule::Unknown => None,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every { secs } if secs % 86_400 == 0 => write!(f, "every {}d", secs / 86_400),
            Schedule::Every { secs } if secs % 3600 == 0 => write!(f, "every {}h", secs / 3600),
            Schedule::Every { secs } => write!(f, "every {secs}s"),
            Schedule::Cron { cron } => write!(f, "cron {cron}"),
            Schedule::Unknown => f.write_str("unknown"),
        }
    }
}

fn days(duration: Duration) -> String {
    let hours = duration.whole_hours();
    if hours % 24 == 0 { format!("{}d", hours / 24) } else { format!("{hours}h") }
}

/// Refuses a schedule under which a password could expire: each user is reset every second run,
/// so twice the longest gap must stay within `max_age` (the domain's `maxPwdAge`, or the
/// fine-grained policy's `msDS-MaximumPasswordAge` that applies to the users; `None`: passwords
/// never expire). `from` is when the schedule starts (for a cron expression's gaps).
pub fn check_against_max_age(
    schedule: &Schedule,
    max_age: Option<Duration>,
    from: OffsetDateTime,
) -> Result<(), ScheduleError> {
    schedule.validate()?;
    let field = match schedule {
        Schedule::Cron { .. } => "cron",
        _ => "every",
    };
    let gap =
        schedule.longest_gap(from).ok_or_else(|| ScheduleError::new(field, "does not run at least twice a year"))?;
    let Some(max_age) = max_age else { return Ok(()) };
    let reset_every = gap.checked_mul(2).unwrap_or(Duration::MAX);
    if reset_every > max_age {
        return Err(ScheduleError::new(
            field,
            format!(
                "each user is reset every second rotation: 2 × {} = {} between resets exceeds the password policy's maximum age {}; rotate at least every {}",
                days(gap),
                days(reset_every),
                days(max_age),
                days(max_age / 2),
            ),
        ));
    }
    Ok(())
}

/// When the next rotation is due: the first scheduled time after `last_run` (or, never run, after
/// `since`, when the schedule was set). A time in the past means due now — once, however many
/// windows were missed.
pub fn next_due(
    schedule: &Schedule,
    last_run: Option<OffsetDateTime>,
    since: OffsetDateTime,
) -> Option<OffsetDateTime> {
    schedule.next_after(last_run.unwrap_or(since))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn intervals_parse_with_units_and_bounds() {
        assert_eq!(parse_interval("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_interval("12h").unwrap(), 12 * 3600);
        for bad in ["", "d", "30", "30x", "0d", "59m", "3651d", "99999999999999999999d", "-1d", "1.5d"] {
            let err = parse_interval(bad).unwrap_err();
            assert_eq!(err.field, "every", "{bad}");
        }
    }

    #[test]
    fn a_schedule_that_lets_a_password_expire_is_refused() {
        let from = datetime!(2026-12-01 00:00 UTC);
        let max = Some(Duration::days(42));
        check_against_max_age(&Schedule::every("21d").unwrap(), max, from).unwrap();
        let err = check_against_max_age(&Schedule::every("30d").unwrap(), max, from).unwrap_err();
        assert_eq!(err.field, "every");
        assert!(err.rule.contains("2 × 30d = 60d") && err.rule.contains("42d"), "{}", err.rule);
        // Monthly on the 1st: the longest gap is 31 days, so a user's password reaches 62 days.
        let monthly = Schedule::cron("0 3 1 * *").unwrap();
        assert_eq!(monthly.longest_gap(from), Some(Duration::days(31)));
        check_against_max_age(&monthly, Some(Duration::days(62)), from).unwrap();
        let err = check_against_max_age(&monthly, Some(Duration::days(61)), from).unwrap_err();
        assert_eq!(err.field, "cron");
        // Passwords that never expire accept any valid schedule.
        check_against_max_age(&Schedule::every("3650d").unwrap(), None, from).unwrap();
        // Once a year on 29 February does not run twice within the horizon.
        assert!(check_against_max_age(&Schedule::cron("0 0 29 2 *").unwrap(), None, from).is_err());
    }

    #[test]
    fn a_missed_window_runs_once() {
        let weekly = Schedule::cron("0 2 * * sun").unwrap();
        let last = datetime!(2026-11-01 02:00 UTC); // a Sunday
        let due = next_due(&weekly, Some(last), last).unwrap();
        assert_eq!(due, datetime!(2026-11-08 02:00 UTC));
        // Down for three weeks: one run is due (now), and after it the next is the next Sunday
        // after the run, not the three missed ones.
        let now = datetime!(2026-11-25 10:00 UTC);
        assert!(due <= now);
        let after_run = next_due(&weekly, Some(now), last).unwrap();
        assert_eq!(after_run, datetime!(2026-11-29 02:00 UTC));
        assert!(after_run > now);
    }

    #[test]
    fn unknown_schedules_are_never_due() {
        let unknown: Schedule = serde_json::from_str(r#""hourly_jitter""#).unwrap();
        assert_eq!(unknown, Schedule::Unknown);
        assert_eq!(next_due(&unknown, None, datetime!(2026-12-01 00:00 UTC)), None);
        assert!(unknown.validate().is_err());
    }

    proptest! {
        #[test]
        fn the_next_run_is_always_after_the_last(interval in MIN_INTERVAL_SECS..MAX_INTERVAL_SECS, offset in 0i64..10_000_000) {
            let at = datetime!(2026-01-01 00:00 UTC) + Duration::seconds(offset);
            let schedule = Schedule::Every { secs: interval };
            let next = next_due(&schedule, Some(at), at).unwrap();
            prop_assert!(next > at);
            prop_assert_eq!((next - at).whole_seconds() as u64, interval);
        }

        #[test]
        fn any_interval_text_is_an_answer_not_a_panic(text in "\\PC{0,24}") {
            let _ = parse_interval(&text);
            let _ = Schedule::cron(&text);
        }
    }
}
