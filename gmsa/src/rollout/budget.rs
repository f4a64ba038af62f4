//! The per-subscription ARM write budget: a token bucket that counts the steps in flight.
//!
//! ARM throttles writes per subscription with a token bucket (200 burst, 10/s); a rollout over
//! thousands of clusters in one subscription would empty it in seconds and starve every other
//! writer. The engine reserves a token before it sends an ARM-writing step and settles it when
//! the step finishes:
//!
//! - `changed`, `failed`, timed out: the token is spent (the step may have written);
//! - `unchanged`: the token is refunded (the step only read).
//!
//! **Guarantee.** Refill fills `available` only up to `burst - reserved`, so a refund can never
//! lift the bucket above what it would hold had the refunded step never been sent. Hence: replay a
//! plain `(burst, per_sec)` bucket over the sends whose step was *not* `unchanged`, at their send
//! instants, and it never goes below zero — the rollout never sends more possible ARM writes per
//! subscription than the budget allows over any interval (property-tested in `tests.rs`).
//!
//! **Caveat.** The write happens some time after the send (the agent's queue, the step's reads):
//! ARM may still see writes closer together than they were sent. ARM's 429 `Retry-After` reaches
//! the engine as `ArmThrottled`; the bucket then empties and blocks until the hint has passed.
//!
//! Tokens are kept in thousandths so the bucket needs no floating point and round-trips exactly.

use proto::rollout::{ArmBudget, MAX_RETRY_AFTER_SECS};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

const MILLI: u64 = 1000;

/// One subscription's bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBucket {
    pub burst: u32,
    pub per_sec: u32,
    /// Thousandths of a token that may be reserved now.
    available_milli: u64,
    /// Tokens reserved by steps in flight; they count against `burst` until settled.
    reserved: u32,
    #[serde(with = "time::serde::rfc3339")]
    refilled_at: OffsetDateTime,
    /// ARM asked us to wait (429 `Retry-After`) until then.
    #[serde(default, with = "time::serde::rfc3339::option")]
    blocked_until: Option<OffsetDateTime>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(budget: ArmBudget, now: OffsetDateTime) -> Self {
        TokenBucket {
            burst: budget.burst,
            per_sec: budget.per_sec,
            available_milli: u64::from(budget.burst) * MILLI,
            reserved: 0,
            refilled_at: now,
            blocked_until: None,
        }
    }

    /// Adds what `per_sec` gives since the last refill. A clock that goes back adds nothing.
    pub fn refill(&mut self, now: OffsetDateTime) {
        if now <= self.refilled_at {
            return;
        }
        let elapsed_ms = u64::try_from((now - self.refilled_at).whole_milliseconds()).unwrap_or(u64::MAX);
        // per_sec tokens a second is per_sec thousandths a millisecond.
        let added = elapsed_ms.saturating_mul(u64::from(self.per_sec));
        let cap = u64::from(self.burst.saturating_sub(self.reserved)) * MILLI;
        self.available_milli = self.available_milli.saturating_add(added).min(cap);
        // Only whole milliseconds are consumed, so no time is lost to rounding.
        self.refilled_at += Duration::milliseconds(i64::try_from(elapsed_ms).unwrap_or(i64::MAX));
    }

    /// Whether a token could be reserved at `now` (after [`TokenBucket::refill`]).
    pub fn has_token(&self, now: OffsetDateTime) -> bool {
        self.blocked_until.is_none_or(|until| now >= until) && self.available_milli >= MILLI
    }

    /// Takes a token for a step about to be sent; false (and nothing taken) when there is none.
    pub fn reserve(&mut self, now: OffsetDateTime) -> bool {
        if !self.has_token(now) {
            return false;
        }
        self.available_milli -= MILLI;
        self.reserved += 1;
        true
    }

    /// The step reported `unchanged`: it wrote nothing, the token comes back.
    pub fn refund(&mut self) {
        if self.reserved > 0 {
            self.reserved -= 1;
            let cap = u64::from(self.burst.saturating_sub(self.reserved)) * MILLI;
            self.available_milli = (self.available_milli + MILLI).min(cap);
        }
    }

    /// The step changed something, failed or timed out: the token is spent.
    pub fn spend(&mut self) {
        self.reserved = self.reserved.saturating_sub(1);
    }

    /// ARM answered 429 with `Retry-After`: nothing more until then (at most
    /// [`MAX_RETRY_AFTER_SECS`]), and the bucket is empty, as ARM's is.
    pub fn throttle(&mut self, now: OffsetDateTime, retry_after_secs: u64) {
        let wait = Duration::seconds(retry_after_secs.min(MAX_RETRY_AFTER_SECS) as i64);
        let until = now.checked_add(wait).unwrap_or(now);
        self.blocked_until = Some(self.blocked_until.map_or(until, |blocked| blocked.max(until)));
        self.available_milli = 0;
    }

    /// Whole tokens available now (for status).
    pub fn available(&self) -> u64 {
        self.available_milli / MILLI
    }

    /// Tokens held by steps in flight.
    pub fn reserved(&self) -> u32 {
        self.reserved
    }

    /// Until when a 429 blocks this subscription, if it still does at `now`.
    pub fn blocked_at(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.blocked_until.filter(|until| *until > now)
    }

    /// When the next whole token is there, for status ("waits for ARM budget until …").
    pub fn next_token_at(&self, now: OffsetDateTime) -> OffsetDateTime {
        let missing = MILLI.saturating_sub(self.available_milli);
        let wait_ms = missing.div_ceil(u64::from(self.per_sec.max(1)));
        let refilled = self.refilled_at.max(now) + Duration::milliseconds(wait_ms as i64);
        self.blocked_at(now).map_or(refilled, |until| until.max(refilled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

    #[test]
    fn burst_then_rate() {
        let mut bucket = TokenBucket::new(ArmBudget { burst: 2, per_sec: 1 }, T0);
        assert!(bucket.reserve(T0) && bucket.reserve(T0));
        assert!(!bucket.reserve(T0));
        bucket.spend();
        bucket.spend();
        bucket.refill(T0 + Duration::milliseconds(999));
        assert!(!bucket.reserve(T0));
        bucket.refill(T0 + Duration::seconds(1));
        assert!(bucket.reserve(T0 + Duration::seconds(1)));
        bucket.refill(T0 + Duration::hours(1));
        assert_eq!(bucket.available(), 1, "capped at burst minus the one in flight");
    }

    #[test]
    fn a_refund_never_lifts_the_bucket_above_what_it_would_hold_without_the_step() {
        let mut bucket = TokenBucket::new(ArmBudget { burst: 1, per_sec: 1 }, T0);
        assert!(bucket.reserve(T0)); // will be unchanged
        bucket.refill(T0 + Duration::seconds(5));
        assert_eq!(bucket.available(), 0, "the reservation holds the only slot");
        bucket.refund();
        assert_eq!(bucket.available(), 1);
    }

    #[test]
    fn a_429_empties_and_blocks_until_retry_after() {
        let mut bucket = TokenBucket::new(ArmBudget { burst: 10, per_sec: 10 }, T0);
        bucket.throttle(T0, 30);
        bucket.refill(T0 + Duration::seconds(10));
        assert!(!bucket.has_token(T0 + Duration::seconds(10)));
        assert_eq!(bucket.next_token_at(T0 + Duration::seconds(10)), T0 + Duration::seconds(30));
        bucket.refill(T0 + Duration::seconds(30));
        assert!(bucket.reserve(T0 + Duration::seconds(30)));
        bucket.throttle(T0, u64::MAX);
        assert_eq!(bucket.blocked_at(T0), Some(T0 + Duration::seconds(MAX_RETRY_AFTER_SECS as i64)));
    }
}
