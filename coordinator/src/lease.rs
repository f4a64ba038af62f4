//! Leadership between coordinator processes: which one runs the rollout driver. Pure — the lease
//! as stored and the decision each process takes on every renewal tick; `leader.rs` does the
//! revision-checked KV reads and writes.
//!
//! A lease names its holder and when it expires. The holder renews it every `renew` interval
//! (well inside `ttl`); another process takes it only once it has expired, with a compare-and-set
//! on the revision it read, so exactly one process wins. **Assumption:** the processes' clocks
//! agree to well within `ttl` (NTP); the rollout log's single-writer check
//! (`bus::log`) keeps a wrongly-deposed leader from forking a rollout even when they do not.
#![deny(clippy::arithmetic_side_effects)]

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// The lease as stored in `fleet_leader/leader`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What a process does on one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write this lease with the revision read (0: create); on success the process leads.
    Claim(Lease),
    /// Someone else holds a valid lease: follow.
    Follow { holder: String },
}

/// The decision of process `me` at `now`, given the stored lease (`None`: none, or unreadable).
pub fn decide(stored: Option<&Lease>, me: &str, now: OffsetDateTime, ttl: Duration) -> Decision {
    let claim = || Decision::Claim(Lease { holder: me.to_string(), expires_at: now.checked_add(ttl).unwrap_or(now) });
    match stored {
        None => claim(),
        Some(lease) if lease.holder == me => claim(),
        Some(lease) if lease.expires_at <= now => claim(),
        Some(lease) => Decision::Follow { holder: lease.holder.clone() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const TTL: Duration = Duration::seconds(5);

    fn lease(holder: &str, expires_at: OffsetDateTime) -> Lease {
        Lease { holder: holder.into(), expires_at }
    }

    #[test]
    fn a_free_or_expired_lease_is_claimed_and_a_valid_one_followed() {
        let now = datetime!(2026-12-01 10:00 UTC);
        assert!(matches!(decide(None, "a", now, TTL), Decision::Claim(l) if l.expires_at == now + TTL));
        let held = lease("b", now + Duration::seconds(1));
        assert_eq!(decide(Some(&held), "a", now, TTL), Decision::Follow { holder: "b".into() });
        let expired = lease("b", now);
        assert!(matches!(decide(Some(&expired), "a", now, TTL), Decision::Claim(l) if l.holder == "a"));
        // The holder renews its own lease.
        assert!(matches!(decide(Some(&held), "b", now, TTL), Decision::Claim(l) if l.holder == "b"));
        // A date at the end of the calendar does not overflow.
        let late = OffsetDateTime::new_utc(time::Date::MAX, time::Time::from_hms(23, 59, 59).unwrap());
        assert!(matches!(decide(None, "a", late, TTL), Decision::Claim(_)));
    }
}
