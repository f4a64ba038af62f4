//! The leader election loop (I/O): every `renew` interval, read the lease, decide
//! ([`crate::lease::decide`]) and compare-and-set it in `fleet_leader`. Whether this process leads
//! is published on a `watch` channel; the leader's tasks (the rollout driver, the rotation runner)
//! run one term each time it turns true ([`each_term`]).
//!
//! # Guarantees
//! - A process that cannot renew (the write lost a race, the server is unreachable past the
//!   lease's expiry) stops leading before another can have taken over: it steps down as soon as
//!   a renewal fails and its last successful renewal is older than `ttl / 2`.
//! - A leader that stops cleanly deletes nothing: its lease expires after `ttl`, and the standby
//!   takes over then (within `ttl + renew`).

use crate::lease::{self, Decision, Lease};
use bus::kv::Bucket;
use bus::{Bus, BusError};
use proto::subjects;
use std::future::Future;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::{info, warn};

/// How leadership is held.
#[derive(Debug, Clone)]
pub struct LeaderSettings {
    /// This process's name in the lease (unique per process: host and pid by default).
    pub name: String,
    /// How long a lease lasts without renewal.
    pub ttl: Duration,
    /// How often the lease is read and renewed.
    pub renew: Duration,
}

impl Default for LeaderSettings {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "coordinator".into());
        LeaderSettings {
            name: format!("{host}-{}", std::process::id()),
            ttl: Duration::from_secs(6),
            renew: Duration::from_secs(1),
        }
    }
}

const KEY: &str = "leader";

/// Runs the election until `shutdown`; `leading` turns true while this process holds the lease.
pub async fn run(
    bus: Bus,
    settings: LeaderSettings,
    leading: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let ttl = time::Duration::try_from(settings.ttl).unwrap_or(time::Duration::seconds(6));
    let mut last_renewal: Option<tokio::time::Instant> = None;
    let mut ticker = tokio::time::interval(settings.renew);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        let renewed = match Bucket::<Lease>::open(&bus, subjects::LEADER_BUCKET).await {
            Ok(bucket) => try_claim(&bucket, &settings.name, ttl).await,
            Err(err) => Err(bus::chain(&err)),
        };
        match renewed {
            Ok(true) => {
                last_renewal = Some(tokio::time::Instant::now());
                if !*leading.borrow() {
                    info!(name = %settings.name, "leading: this coordinator runs the rollouts");
                    let _ = leading.send(true);
                }
            }
            Ok(false) => {
                last_renewal = None;
                if *leading.borrow() {
                    warn!(name = %settings.name, "another coordinator holds the lease; stepping down");
                    let _ = leading.send(false);
                }
            }
            Err(cause) => {
                let stale = last_renewal.is_none_or(|at| at.elapsed() > settings.ttl / 2);
                if *leading.borrow() && stale {
                    warn!(name = %settings.name, error = %cause, "lease not renewed in time; stepping down");
                    let _ = leading.send(false);
                } else {
                    warn!(name = %settings.name, error = %cause, "lease not renewed; retrying");
                }
            }
        }
    }
    let _ = leading.send(false);
}

/// One round: true when this process holds the lease afterwards.
async fn try_claim(bucket: &Bucket<Lease>, me: &str, ttl: time::Duration) -> Result<bool, String> {
    let stored = bucket.get_raw(KEY).await.map_err(|err| bus::chain(&err))?;
    let (current, revision) = match &stored {
        Some((bytes, revision)) => (serde_json::from_slice::<Lease>(bytes).ok(), *revision),
        None => (None, 0),
    };
    match lease::decide(current.as_ref(), me, OffsetDateTime::now_utc(), ttl) {
        Decision::Follow { .. } => Ok(false),
        Decision::Claim(lease) => match bucket.update(KEY, &lease, revision).await {
            Ok(_) => Ok(true),
            // Someone else wrote first: they lead; we read it again next round.
            Err(bus::BusError::KvWrite { .. }) => Ok(false),
            Err(err) => Err(bus::chain(&err)),
        },
    }
}

/// Runs a leader-only task: `term` (given the `leading` and `shutdown` receivers) each time this
/// process becomes the leader, until `shutdown`. A term ends when leadership is lost (the term
/// returns `Ok`) or on an error, after which it is started again in a second if this process
/// still leads; `task` names it in that warning.
pub async fn each_term<F, Fut>(
    task: &'static str,
    mut leading: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
    mut term: F,
) -> Result<(), BusError>
where
    F: FnMut(watch::Receiver<bool>, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = Result<(), BusError>>,
{
    let mut waiting = shutdown.clone();
    loop {
        while !*leading.borrow() {
            tokio::select! {
                changed = leading.changed() => if changed.is_err() { return Ok(()) },
                _ = waiting.changed() => return Ok(()),
            }
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        if let Err(err) = term(leading.clone(), shutdown.clone()).await {
            warn!(task, error = %bus::chain(&err), "leader task stopped; restarting its term in 1s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if *shutdown.borrow() {
            return Ok(());
        }
    }
}
