//! When to try an Azure call again, and how long to wait first: a pure decision over what the
//! last attempt observed, so every rule is unit-tested without a clock or a network.
//!
//! Rules (Microsoft's guidance for ARM and AKS):
//! - 429 and 408/500/502/503/504 are transient: wait `Retry-After` when the server sent one,
//!   otherwise an exponential backoff with jitter.
//! - 409 `OperationNotAllowed` ("another operation is in progress") means AKS is busy with an
//!   operation; it is not a failure of our change: wait and send the same request again.
//! - A per-try timeout and a dropped connection are retried like a 5xx.
//! - Everything else (2xx, 4xx such as 404, 403, 412, other 409s) goes back to the caller,
//!   which knows what it means (412: re-read and re-diff, `RoleAssignmentExists`: unchanged).
//! - Attempts are bounded; the last response is handed back when the budget is spent.

use std::time::Duration;

/// How hard the adapter retries; part of [`crate::AzureConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// Total attempts per request, the first included (at least 1).
    pub max_attempts: u32,
    /// First backoff step for 5xx, timeouts and transport errors; doubles per attempt.
    pub base_delay: Duration,
    /// Cap of the computed backoff (a server's `Retry-After` is honoured even when longer).
    pub max_delay: Duration,
    /// Wait between attempts while AKS reports another operation in progress (409).
    pub in_progress_delay: Duration,
    /// Deadline of one attempt (connect, send, read the whole response).
    pub per_try_timeout: Duration,
    /// How many times an update re-reads and re-diffs after a 412 (etag race).
    pub max_precondition_retries: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: 8,
            base_delay: Duration::from_millis(800),
            max_delay: Duration::from_secs(60),
            in_progress_delay: Duration::from_secs(15),
            per_try_timeout: Duration::from_secs(60),
            max_precondition_retries: 5,
        }
    }
}

/// What the last attempt saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed<'a> {
    /// The server answered.
    Response {
        /// HTTP status code.
        status: u16,
        /// ARM/Key Vault `error.code`, when the body carried one.
        error_code: Option<&'a str>,
        /// ARM `error.message`, when the body carried one.
        error_message: Option<&'a str>,
        /// The server's `Retry-After` (or `x-ms-retry-after-ms`), when sent.
        retry_after: Option<Duration>,
    },
    /// The attempt hit the per-try timeout.
    Timeout,
    /// The connection failed or broke before a response arrived.
    Transport,
}

/// Why the adapter waits before the next attempt (for the trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// 429.
    Throttled,
    /// 408 or 5xx.
    ServerError,
    /// 409 while another operation runs on the resource.
    OperationInProgress,
    /// Per-try timeout.
    Timeout,
    /// Connection failure.
    Transport,
}

/// The decision for the last attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RetryAction {
    /// Hand the result to the caller: a success, a non-retryable error, or the budget is spent.
    Return,
    /// Wait, then send the same request again.
    RetryAfter {
        /// How long to wait.
        delay: Duration,
        /// Why.
        reason: RetryReason,
    },
}

/// Decides whether to retry after attempt number `attempt` (1 for the first) observed `observed`.
///
/// `jitter` is a number in `[0, 1)` from the caller's random source; the decision is otherwise
/// deterministic. Backoff is "equal jitter": half the exponential step plus a random half, so
/// a fleet of agents throttled at the same moment spreads out instead of retrying in lockstep.
pub fn decide(settings: &RetrySettings, attempt: u32, observed: &Observed<'_>, jitter: f64) -> RetryAction {
    let reason = match retry_reason(observed) {
        Some(reason) => reason,
        None => return RetryAction::Return,
    };
    if attempt >= settings.max_attempts.max(1) {
        return RetryAction::Return;
    }
    let jitter = jitter.clamp(0.0, 1.0);
    let server_hint = match observed {
        Observed::Response { retry_after, .. } => *retry_after,
        _ => None,
    };
    let delay = match (server_hint, reason) {
        // The server said when: honour it, plus up to 10% so a fleet does not return in lockstep.
        (Some(retry_after), _) => retry_after.mul_f64(1.0 + 0.1 * jitter),
        (None, RetryReason::OperationInProgress) => settings.in_progress_delay.mul_f64(0.75 + 0.5 * jitter),
        (None, _) => {
            let step = exponential_step(settings.base_delay, settings.max_delay, attempt);
            step.mul_f64(0.5 + 0.5 * jitter)
        }
    };
    RetryAction::RetryAfter { delay, reason }
}

/// The retryable reason behind an observation, or `None` when the caller should see it.
fn retry_reason(observed: &Observed<'_>) -> Option<RetryReason> {
    match observed {
        Observed::Timeout => Some(RetryReason::Timeout),
        Observed::Transport => Some(RetryReason::Transport),
        Observed::Response { status, error_code, error_message, .. } => match *status {
            429 => Some(RetryReason::Throttled),
            408 | 500 | 502 | 503 | 504 => Some(RetryReason::ServerError),
            409 if is_operation_in_progress(*error_code, *error_message) => Some(RetryReason::OperationInProgress),
            _ => None,
        },
    }
}

/// AKS answers 409 `OperationNotAllowed` ("Another operation (...) is in progress") while it
/// runs an operation; some resource providers use `AnotherOperationInProgress` or only say so
/// in the message.
pub fn is_operation_in_progress(error_code: Option<&str>, error_message: Option<&str>) -> bool {
    let code = error_code.unwrap_or_default();
    let by_code = code.eq_ignore_ascii_case("OperationNotAllowed")
        || code.eq_ignore_ascii_case("AnotherOperationInProgress")
        || code.eq_ignore_ascii_case("OperationInProgress");
    let by_message = error_message.is_some_and(|message| message.to_ascii_lowercase().contains("in progress"));
    by_code || by_message
}

/// `base * 2^(attempt-1)`, capped at `max`.
fn exponential_step(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    base.saturating_mul(1u32 << exponent).min(max)
}

/// A jitter value in `[0, 1)` from the standard library's randomly keyed hasher (no RNG crate
/// needed for spreading retries).
pub(crate) fn random_jitter() -> f64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_settings() -> RetrySettings {
        RetrySettings {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            in_progress_delay: Duration::from_secs(2),
            per_try_timeout: Duration::from_secs(5),
            max_precondition_retries: 3,
        }
    }

    fn mk_response(status: u16, code: Option<&'static str>, retry_after: Option<Duration>) -> Observed<'static> {
        Observed::Response { status, error_code: code, error_message: None, retry_after }
    }

    #[test]
    fn success_and_plain_client_errors_go_back_to_the_caller() {
        for status in [200, 201, 202, 400, 403, 404, 412] {
            assert_eq!(decide(&mk_settings(), 1, &mk_response(status, None, None), 0.5), RetryAction::Return);
        }
        let exists = mk_response(409, Some("RoleAssignmentExists"), None);
        assert_eq!(decide(&mk_settings(), 1, &exists, 0.5), RetryAction::Return);
    }

    #[test]
    fn throttling_waits_exactly_the_retry_after_plus_at_most_ten_percent() {
        let observed = mk_response(429, None, Some(Duration::from_secs(3)));
        let low = decide(&mk_settings(), 1, &observed, 0.0);
        let high = decide(&mk_settings(), 1, &observed, 0.999);
        assert_eq!(low, RetryAction::RetryAfter { delay: Duration::from_secs(3), reason: RetryReason::Throttled });
        let RetryAction::RetryAfter { delay, .. } = high else { panic!("expected a retry") };
        assert!(delay > Duration::from_secs(3) && delay <= Duration::from_millis(3300));
    }

    #[test]
    fn server_errors_back_off_exponentially_with_jitter_and_a_cap() {
        let observed = mk_response(503, None, None);
        let delay_at = |attempt, jitter| match decide(&mk_settings(), attempt, &observed, jitter) {
            RetryAction::RetryAfter { delay, reason } => {
                assert_eq!(reason, RetryReason::ServerError);
                delay
            }
            RetryAction::Return => panic!("expected a retry"),
        };
        assert_eq!(delay_at(1, 0.0), Duration::from_millis(50));
        assert_eq!(delay_at(1, 1.0), Duration::from_millis(100));
        assert_eq!(delay_at(3, 1.0), Duration::from_millis(400));
        assert_eq!(delay_at(4, 1.0), Duration::from_millis(800));
        let capped = RetrySettings { max_delay: Duration::from_millis(300), ..mk_settings() };
        assert_eq!(
            decide(&capped, 4, &observed, 1.0),
            RetryAction::RetryAfter { delay: Duration::from_millis(300), reason: RetryReason::ServerError },
            "capped at max_delay"
        );
    }

    #[test]
    fn operation_in_progress_waits_instead_of_failing() {
        let by_code = mk_response(409, Some("OperationNotAllowed"), None);
        let by_message = Observed::Response {
            status: 409,
            error_code: Some("Conflict"),
            error_message: Some("Another operation (Updating) is in progress, please wait"),
            retry_after: None,
        };
        for observed in [by_code, by_message] {
            let RetryAction::RetryAfter { delay, reason } = decide(&mk_settings(), 2, &observed, 0.5) else {
                panic!("expected a retry")
            };
            assert_eq!(reason, RetryReason::OperationInProgress);
            assert_eq!(delay, Duration::from_secs(2));
        }
    }

    #[test]
    fn timeouts_and_transport_errors_are_retried() {
        assert!(matches!(decide(&mk_settings(), 1, &Observed::Timeout, 0.0), RetryAction::RetryAfter { .. }));
        assert!(matches!(decide(&mk_settings(), 1, &Observed::Transport, 0.0), RetryAction::RetryAfter { .. }));
    }

    #[test]
    fn attempts_are_bounded() {
        let observed = mk_response(429, None, Some(Duration::from_millis(10)));
        assert!(matches!(decide(&mk_settings(), 4, &observed, 0.0), RetryAction::RetryAfter { .. }));
        assert_eq!(decide(&mk_settings(), 5, &observed, 0.0), RetryAction::Return);
    }

    #[test]
    fn jitter_source_stays_in_range() {
        for _ in 0..100 {
            let value = random_jitter();
            assert!((0.0..1.0).contains(&value));
        }
    }
}
