//! Read-only views of a rollout: [`status`] (what fleetctl renders: per stage counts, per cluster
//! step and reason, why the rollout waits or halted) and the follow-up helpers [`retry_plan`]
//! (the failed and timed-out clusters, with identical inputs) and [`changed_clusters`] (where
//! something was written: the rollback targets).

use super::plan::Plan;
use super::state::*;
use proto::CommandKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// The whole rollout at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStatus {
    pub rollout_id: String,
    pub name: String,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_by: Option<String>,
    /// The stage that runs or waits now.
    pub current_stage: String,
    /// Why nothing (more) starts right now, as sentences; empty while clusters are being started.
    pub waiting: Vec<String>,
    pub stages: Vec<StageStatus>,
    pub clusters: Vec<ClusterView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStatus {
    pub name: String,
    pub phase: StagePhase,
    pub max_concurrency: usize,
    pub failure_budget: usize,
    pub counts: Counts,
}

/// Clusters of a stage by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub pending: usize,
    pub waiting_window: usize,
    pub running: usize,
    pub succeeded: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub skipped: usize,
}

impl Counts {
    fn add(&mut self, status: ClusterStatus) {
        let slot = match status {
            ClusterStatus::Pending => &mut self.pending,
            ClusterStatus::WaitingWindow => &mut self.waiting_window,
            ClusterStatus::Running => &mut self.running,
            ClusterStatus::Succeeded => &mut self.succeeded,
            ClusterStatus::Unchanged => &mut self.unchanged,
            ClusterStatus::Failed => &mut self.failed,
            ClusterStatus::TimedOut => &mut self.timed_out,
            ClusterStatus::Skipped => &mut self.skipped,
        };
        *slot += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub cluster: String,
    pub stage: String,
    pub status: ClusterStatus,
    /// The step in flight, next, or that failed; `None` once every step finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<CommandKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// The status view of `state` at `now` (for "soaks until …" wording only; it changes nothing).
pub fn status(state: &RolloutState, now: OffsetDateTime) -> RolloutStatus {
    let definitions = &state.plan.strategy.stages;
    let stages = (state.stages.iter().enumerate())
        .map(|(index, stage)| {
            let mut counts = Counts::default();
            for cluster in &state.plan.stages[index] {
                counts.add(state.clusters[cluster].status);
            }
            StageStatus {
                name: definitions[index].name.clone(),
                phase: stage.phase,
                max_concurrency: stage.max_concurrency,
                failure_budget: stage.failure_budget,
                counts,
            }
        })
        .collect();
    let clusters = (state.clusters.iter())
        .map(|(cluster, cluster_state)| {
            let step = match (&cluster_state.in_flight, &cluster_state.failure) {
                (Some(flight), _) => Some(flight.step),
                (None, Some(failure)) => Some(failure.step),
                (None, None) => state.steps.get(cluster_state.next_step).copied(),
            };
            ClusterView {
                cluster: cluster.clone(),
                stage: definitions[cluster_state.stage].name.clone(),
                status: cluster_state.status,
                step,
                why: cluster_state.why.clone(),
            }
        })
        .collect();
    RolloutStatus {
        rollout_id: state.rollout_id.clone(),
        name: state.plan.name.clone(),
        phase: state.phase.clone(),
        paused_by: state.paused_by.clone(),
        current_stage: definitions[state.current_stage].name.clone(),
        waiting: waiting(state, now),
        stages,
        clusters,
    }
}

fn waiting(state: &RolloutState, now: OffsetDateTime) -> Vec<String> {
    let index = state.current_stage;
    let name = &state.plan.strategy.stages[index].name;
    let mut reasons = Vec::new();
    match &state.phase {
        Phase::Halted { reason } => reasons.push(format!("halted: {reason}")),
        Phase::Aborted { by } => reasons.push(format!("aborted by {by}")),
        Phase::Completed => return reasons,
        Phase::Running => {}
    }
    if let Some(by) = &state.paused_by {
        reasons.push(format!("paused by {by}"));
    }
    match state.stages[index].phase {
        StagePhase::WaitingApprovalBefore => reasons.push(format!("stage {name} waits for approval before it starts")),
        StagePhase::WaitingApprovalAfter => reasons.push(format!("stage {name} waits for approval after it finished")),
        StagePhase::Soaking => {
            if let Some(until) = state.stages[index].soak_until.filter(|until| *until > now) {
                reasons.push(format!("stage {name} soaks until {until}"));
            }
        }
        _ => {}
    }
    let members = &state.plan.stages[index];
    let outside =
        members.iter().filter(|cluster| state.clusters[*cluster].status == ClusterStatus::WaitingWindow).count();
    if outside > 0 {
        reasons.push(format!("{outside} cluster(s) of stage {name} wait for their maintenance window"));
    }
    let budget = (members.iter())
        .filter(|cluster| state.clusters[*cluster].in_flight.is_none())
        .filter(|cluster| state.clusters[*cluster].why.as_deref().is_some_and(|why| why.contains("ARM write budget")))
        .count();
    if budget > 0 {
        reasons.push(format!("{budget} cluster(s) of stage {name} wait for ARM write budget"));
    }
    reasons
}

/// The failed and timed-out clusters of `state`, with the same stages, gates, setup and
/// overrides. Start it as a **new** rollout (new id: the old command ids are already answered).
pub fn retry_plan(state: &RolloutState) -> Plan {
    let keep: BTreeSet<String> = (state.clusters.iter())
        .filter(|(_, cluster)| cluster.status.is_failure())
        .map(|(cluster, _)| cluster.clone())
        .collect();
    state.plan.restricted_to(&keep)
}

/// Clusters where any step reported `changed` (including a late result after a timeout): what a
/// rollback has to visit. In cluster-id order.
pub fn changed_clusters(state: &RolloutState) -> Vec<String> {
    (state.clusters.iter())
        .filter(|(_, cluster)| !cluster.changed.is_empty())
        .map(|(cluster, _)| cluster.clone())
        .collect()
}
