//! Rollouts: the record of a fleet command (kept in the `fleet_rollouts` bucket) and its status,
//! computed from the result stream: for each target, the result recorded under its command id.

use bus::kv::Bucket;
use bus::{Bus, BusError};
use futures::StreamExt;
use proto::control::Target;
use proto::{CommandKind, CommandResult, ResultStatus, subjects};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A rollout as the coordinator started it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub rollout_id: String,
    pub kind: CommandKind,
    pub selector: String,
    pub targets: Vec<Target>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    #[serde(default)]
    pub requested_by: Option<String>,
}

/// The `fleet_rollouts` bucket.
pub async fn rollouts(bus: &Bus) -> Result<Bucket<RolloutRecord>, BusError> {
    Bucket::open(bus, subjects::ROLLOUTS_BUCKET).await
}

/// Where one target of a rollout stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// No result yet, deadline not passed.
    Pending,
    /// No result and the deadline passed.
    TimedOut,
    /// A result arrived.
    Done(Box<CommandResult>),
}

impl TargetState {
    pub fn label(&self) -> &str {
        match self {
            TargetState::Pending => "pending",
            TargetState::TimedOut => "timed_out",
            TargetState::Done(result) => result.status.label(),
        }
    }

    pub fn is_final(&self) -> bool {
        !matches!(self, TargetState::Pending)
    }

    pub fn is_success(&self) -> bool {
        matches!(self, TargetState::Done(result) if result.status.is_success())
    }
}

/// Counts of a rollout's targets by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub targets: usize,
    pub succeeded: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub pending: usize,
}

impl Tally {
    pub fn of<'a>(states: impl IntoIterator<Item = &'a TargetState>) -> Tally {
        let mut tally = Tally::default();
        for state in states {
            tally.targets += 1;
            match state {
                TargetState::Pending => tally.pending += 1,
                TargetState::TimedOut => tally.timed_out += 1,
                TargetState::Done(result) => match result.status {
                    ResultStatus::Succeeded => tally.succeeded += 1,
                    ResultStatus::Unchanged => tally.unchanged += 1,
                    // A status this build does not know is not a success.
                    ResultStatus::Failed { .. } | ResultStatus::Unknown => tally.failed += 1,
                },
            }
        }
        tally
    }

    pub fn finished(&self) -> bool {
        self.pending == 0
    }

    pub fn all_succeeded(&self) -> bool {
        self.finished() && self.failed == 0 && self.timed_out == 0
    }
}

/// The state of each target, read from the result stream (256 direct gets in flight); only a
/// result signed by the cluster's enrolled key counts.
pub async fn target_states(
    bus: &Bus,
    rollout: &RolloutRecord,
    now: OffsetDateTime,
) -> Result<Vec<(Target, TargetState)>, BusError> {
    let publisher = bus::results::ResultPublisher::open(bus).await?;
    let enrollments = bus::enrollment::Enrollments::open(bus).await?;
    let lookups = futures::stream::iter(rollout.targets.iter().cloned())
        .map(|target| {
            let (publisher, enrollments) = (publisher.clone(), enrollments.clone());
            async move {
                let found =
                    publisher.lookup_enrolled(&enrollments, &target.cluster, target.command_id.as_str()).await?;
                let state = match found {
                    bus::results::Lookup::Found(result) => TargetState::Done(result),
                    _ if now > rollout.deadline => TargetState::TimedOut,
                    _ => TargetState::Pending,
                };
                Ok::<_, BusError>((target, state))
            }
        })
        .buffered(256)
        .collect::<Vec<_>>()
        .await;
    lookups.into_iter().collect()
}
