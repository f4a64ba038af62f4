//! How long a client waits before trying again, spread per client.
//!
//! Ten thousand agents hit by the same event (a server restart, a request queue full at start)
//! must not come back in lockstep: a delay that is the same for every agent turns one outage into
//! waves of simultaneous connects and requests. Each delay here grows with the attempt and is
//! spread by a jitter derived from a per-client seed (the cluster id, the connection's name), so
//! it is deterministic for one client — testable without a clock or a random source — and
//! different across a fleet.

use std::time::Duration;

/// A hash of `seed` mixed with `attempt`: where in its window this client's delay falls.
fn spread(seed: &str, attempt: u64) -> u64 {
    // FNV-1a: cheap, and well spread over short, similar ids such as `aks-0001`, `aks-0002`.
    let hash = seed
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    (hash ^ attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16
}

/// Delay before catch-up attempt `failures + 1`: 200 ms doubling to 10 s, plus a jitter of up
/// to half the delay derived from `seed` (the cluster id).
pub fn retry_delay(failures: u32, seed: &str) -> Duration {
    let base =
        Duration::from_millis(200).saturating_mul(1 << failures.min(6).saturating_sub(1)).min(Duration::from_secs(10));
    let window = base.as_millis() as u64 / 2 + 1;
    base + Duration::from_millis(spread(seed, u64::from(failures)) % window)
}

/// Delay before connection attempt `attempt` (1-based, as async-nats counts: the count restarts
/// after each successful connect). The first attempt is immediate, so a start or the move to a
/// live server of a cluster costs nothing; from the second on, the delay doubles from 100 ms to
/// at most 4 s (the client's own default cap) and falls anywhere in its upper half, by `seed`.
///
/// Refuses nothing; it replaces async-nats' default (0, 2, 4, … ms, the same for every client),
/// under which every agent of a restarted server reconnects at the same instants.
pub fn reconnect_delay(attempt: usize, seed: &str) -> Duration {
    if attempt <= 1 {
        return Duration::ZERO;
    }
    let doublings = (attempt - 2).min(6) as u32;
    let cap = Duration::from_millis(100).saturating_mul(1 << doublings).min(Duration::from_secs(4));
    let half = cap.as_millis() as u64 / 2;
    Duration::from_millis(half + spread(seed, attempt as u64) % (half + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn catch_up_retries_grow_are_bounded_and_spread() {
        let first = retry_delay(1, "aks-1");
        assert!(first >= Duration::from_millis(200) && first <= Duration::from_millis(300));
        assert!(retry_delay(4, "aks-1") > retry_delay(1, "aks-1"));
        assert!(retry_delay(50, "aks-1") <= Duration::from_secs(15));
        let spread: BTreeSet<_> = (0..50).map(|i| retry_delay(3, &format!("aks-{i}"))).collect();
        assert!(spread.len() > 10, "jitter spreads agents: {}", spread.len());
    }

    #[test]
    fn the_first_connect_is_immediate_and_later_ones_grow_to_at_most_four_seconds() {
        assert_eq!(reconnect_delay(0, "agent-aks-1"), Duration::ZERO);
        assert_eq!(reconnect_delay(1, "agent-aks-1"), Duration::ZERO);
        let second = reconnect_delay(2, "agent-aks-1");
        assert!(second >= Duration::from_millis(50) && second <= Duration::from_millis(100), "{second:?}");
        for attempt in 2..200 {
            let delay = reconnect_delay(attempt, "agent-aks-1");
            assert!(delay <= Duration::from_secs(4), "attempt {attempt}: {delay:?}");
            assert!(delay >= reconnect_delay(2, "agent-aks-1") / 2, "attempt {attempt}: {delay:?}");
        }
        assert!(reconnect_delay(usize::MAX, "agent-aks-1") >= Duration::from_secs(2));
    }

    #[test]
    fn ten_thousand_agents_of_a_restarted_server_do_not_reconnect_in_lockstep() {
        // Each attempt's delays spread over the upper half of its window; under async-nats'
        // default every one of these 10,000 would be the same value.
        for attempt in [3, 6, 12] {
            let delays: Vec<u128> =
                (0..10_000).map(|i| reconnect_delay(attempt, &format!("agent:aks-{i:05}")).as_millis()).collect();
            let (low, high) = (delays.iter().min().copied().unwrap_or(0), delays.iter().max().copied().unwrap_or(0));
            let distinct = delays.iter().collect::<BTreeSet<_>>().len();
            let window = high - low + 1;
            assert!(
                distinct as u128 * 10 >= window * 9,
                "attempt {attempt}: {distinct} distinct delays over {window} ms"
            );
            // No millisecond gets more than a few times its fair share.
            let mut per_ms = std::collections::BTreeMap::<u128, u32>::new();
            for delay in &delays {
                *per_ms.entry(*delay).or_default() += 1;
            }
            let fair = 10_000 / window as u32 + 1;
            let worst = per_ms.values().max().copied().unwrap_or(0);
            assert!(worst <= fair * 4, "attempt {attempt}: {worst} agents at one millisecond (fair share {fair})");
        }
    }
}
