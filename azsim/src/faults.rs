//! Decides, per request, whether an injected fault or ARM's request budget answers it instead of
//! the simulated service. Pure state machine over a clock value: unit-tested without sockets.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{FaultKind, Faults, Frequency, Operation, TokenBucketSpec};
use crate::rng::Prng;

/// What the fault layer decided for one request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Serve the request after `delay`.
    Serve { delay: Duration },
    /// Answer 429 with `Retry-After: retry_after_secs` after `delay`.
    Throttle { retry_after_secs: u64, delay: Duration },
    /// Answer this 5xx status after `delay`.
    ServerError { status: u16, delay: Duration },
}

/// ARM's budget refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OverBudget {
    /// Seconds until a token is available again (at least 1).
    pub retry_after_secs: u64,
}

/// A token bucket's live state.
#[derive(Clone, Debug)]
struct Bucket {
    tokens: f64,
    refreshed: Instant,
}

impl Bucket {
    fn full(spec: TokenBucketSpec, now: Instant) -> Self {
        Bucket { tokens: f64::from(spec.burst), refreshed: now }
    }

    /// Takes one token, or says how long until one is available.
    fn take(&mut self, spec: TokenBucketSpec, now: Instant) -> Result<u64, OverBudget> {
        let elapsed = now.saturating_duration_since(self.refreshed).as_secs_f64();
        self.tokens = (self.tokens + elapsed * spec.refill_per_second).min(f64::from(spec.burst));
        self.refreshed = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(self.tokens.floor() as u64)
        } else if spec.refill_per_second <= 0.0 {
            Err(OverBudget { retry_after_secs: 3600 })
        } else {
            let wait = (1.0 - self.tokens) / spec.refill_per_second;
            Err(OverBudget { retry_after_secs: (wait.ceil() as u64).max(1) })
        }
    }
}

/// Live fault state: the configured rules, what is left of each `Next(n)` rule, the seeded
/// generator and the per-subscription buckets.
#[derive(Debug)]
pub(crate) struct FaultEngine {
    faults: Faults,
    remaining: Vec<u32>,
    rng: Prng,
    write_buckets: HashMap<String, Bucket>,
    read_buckets: HashMap<String, Bucket>,
}

impl FaultEngine {
    /// An engine for `faults`, drawing from a generator seeded with `seed`.
    pub(crate) fn new(faults: Faults, seed: u64) -> Self {
        let remaining = remaining_counts(&faults);
        FaultEngine {
            faults,
            remaining,
            rng: Prng::new(seed),
            write_buckets: HashMap::new(),
            read_buckets: HashMap::new(),
        }
    }

    /// Replaces the rules and budget; buckets restart full.
    pub(crate) fn replace(&mut self, faults: Faults) {
        self.remaining = remaining_counts(&faults);
        self.faults = faults;
        self.write_buckets.clear();
        self.read_buckets.clear();
    }

    /// Takes one "the next cluster operation fails" credit, if any is left.
    pub(crate) fn take_cluster_failure(&mut self) -> bool {
        if self.faults.fail_next_cluster_operations > 0 {
            self.faults.fail_next_cluster_operations -= 1;
            true
        } else {
            false
        }
    }

    /// Applies the rules to one request for `operation`.
    pub(crate) fn decide(&mut self, operation: Operation) -> Verdict {
        let mut delay = Duration::ZERO;
        let mut answer: Option<FaultKind> = None;
        for (index, rule) in self.faults.rules.iter().enumerate() {
            if !rule.target.covers(operation) {
                continue;
            }
            let is_latency = matches!(rule.kind, FaultKind::Latency(_));
            if !is_latency && answer.is_some() {
                continue;
            }
            let fires = match rule.frequency {
                Frequency::Always => true,
                Frequency::Rate(probability) => self.rng.next_f64() < probability,
                Frequency::Next(_) => {
                    let left = &mut self.remaining[index];
                    if *left > 0 {
                        *left -= 1;
                        true
                    } else {
                        false
                    }
                }
            };
            if !fires {
                continue;
            }
            match &rule.kind {
                FaultKind::Latency(extra) => delay += *extra,
                other => answer = Some(other.clone()),
            }
        }
        match answer {
            Some(FaultKind::Throttle { retry_after_secs }) => Verdict::Throttle { retry_after_secs, delay },
            Some(FaultKind::ServerError { status }) => Verdict::ServerError { status, delay },
            _ => Verdict::Serve { delay },
        }
    }

    /// Charges one ARM request against `subscription`'s read or write bucket. `Ok` carries the
    /// remaining tokens (for `x-ms-ratelimit-remaining-subscription-*`), `None` when unlimited.
    pub(crate) fn charge(
        &mut self,
        subscription: &str,
        is_write: bool,
        now: Instant,
    ) -> Result<Option<u64>, OverBudget> {
        let budget = self.faults.arm_budget;
        let (spec, buckets) =
            if is_write { (budget.writes, &mut self.write_buckets) } else { (budget.reads, &mut self.read_buckets) };
        let Some(spec) = spec else {
            return Ok(None);
        };
        let bucket = buckets.entry(subscription.to_ascii_lowercase()).or_insert_with(|| Bucket::full(spec, now));
        bucket.take(spec, now).map(Some)
    }
}

fn remaining_counts(faults: &Faults) -> Vec<u32> {
    faults
        .rules
        .iter()
        .map(|rule| match rule.frequency {
            Frequency::Next(count) => count,
            _ => 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ArmBudget, FaultRule, Target};

    fn mk_faults(rules: Vec<FaultRule>, arm_budget: ArmBudget) -> Faults {
        Faults { rules, arm_budget, fail_next_cluster_operations: 0 }
    }

    #[test]
    fn next_n_throttles_exactly_n_matching_requests() {
        let rule = FaultRule {
            target: Target::Only(vec![Operation::ClusterPut]),
            kind: FaultKind::Throttle { retry_after_secs: 3 },
            frequency: Frequency::Next(2),
        };
        let mut engine = FaultEngine::new(mk_faults(vec![rule], ArmBudget::unlimited()), 7);
        assert_eq!(engine.decide(Operation::ClusterGet), Verdict::Serve { delay: Duration::ZERO });
        for _ in 0..2 {
            assert_eq!(
                engine.decide(Operation::ClusterPut),
                Verdict::Throttle { retry_after_secs: 3, delay: Duration::ZERO }
            );
        }
        assert_eq!(engine.decide(Operation::ClusterPut), Verdict::Serve { delay: Duration::ZERO });
    }

    #[test]
    fn rate_is_deterministic_by_seed_and_roughly_right() {
        let rule = FaultRule {
            target: Target::All,
            kind: FaultKind::ServerError { status: 503 },
            frequency: Frequency::Rate(0.25),
        };
        let run = |seed| {
            let mut engine = FaultEngine::new(mk_faults(vec![rule.clone()], ArmBudget::unlimited()), seed);
            (0..4000)
                .map(|_| matches!(engine.decide(Operation::SecretGet), Verdict::ServerError { .. }))
                .collect::<Vec<_>>()
        };
        let first = run(9);
        assert_eq!(first, run(9));
        let failures = first.iter().filter(|failed| **failed).count();
        assert!((800..1200).contains(&failures), "{failures} of 4000 at rate 0.25");
    }

    #[test]
    fn latency_rules_add_up_and_do_not_answer() {
        let latency = |millis| FaultRule {
            target: Target::Arm,
            kind: FaultKind::Latency(Duration::from_millis(millis)),
            frequency: Frequency::Always,
        };
        let mut engine = FaultEngine::new(mk_faults(vec![latency(10), latency(5)], ArmBudget::unlimited()), 1);
        assert_eq!(engine.decide(Operation::VaultGet), Verdict::Serve { delay: Duration::from_millis(15) });
        assert_eq!(engine.decide(Operation::SecretGet), Verdict::Serve { delay: Duration::ZERO });
    }

    #[test]
    fn write_budget_refuses_beyond_burst_and_refills() {
        let budget = ArmBudget { writes: Some(TokenBucketSpec { burst: 3, refill_per_second: 0.5 }), reads: None };
        let mut engine = FaultEngine::new(mk_faults(Vec::new(), budget), 1);
        let start = Instant::now();
        assert_eq!(engine.charge("sub-a", true, start), Ok(Some(2)));
        assert_eq!(engine.charge("sub-a", true, start), Ok(Some(1)));
        assert_eq!(engine.charge("sub-a", true, start), Ok(Some(0)));
        assert_eq!(engine.charge("sub-a", true, start), Err(OverBudget { retry_after_secs: 2 }));
        // Another subscription has its own bucket; reads are unlimited here.
        assert_eq!(engine.charge("sub-b", true, start), Ok(Some(2)));
        assert_eq!(engine.charge("sub-a", false, start), Ok(None));
        // Two seconds at 0.5/s refill one token.
        assert_eq!(engine.charge("sub-a", true, start + Duration::from_secs(2)), Ok(Some(0)));
        assert!(engine.charge("sub-a", true, start + Duration::from_secs(2)).is_err());
    }
}
