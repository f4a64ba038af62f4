//! The plain data of the rollout engine: what it stores ([`RolloutState`] and its parts), what it
//! is told ([`Event`]) and what it asks for ([`Action`]). Everything here is `Serialize +
//! Deserialize`: the driver persists the whole state after every transition and resumes from it.

use super::budget::TokenBucket;
use super::plan::Plan;
use proto::{CommandId, CommandKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// A rollout in progress: its frozen plan and where every stage and cluster stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutState {
    pub rollout_id: String,
    pub plan: Plan,
    /// The steps every cluster runs, in order (from the setup's `validate` and `run_workload`).
    pub steps: Vec<CommandKind>,
    pub phase: Phase,
    /// Who paused the rollout; while set, no cluster starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_by: Option<String>,
    /// Index of the stage that runs (or waits) now.
    pub current_stage: usize,
    pub stages: Vec<StageState>,
    pub clusters: BTreeMap<String, ClusterState>,
    /// ARM write budgets by subscription id, created when first needed.
    #[serde(default)]
    pub buckets: BTreeMap<String, TokenBucket>,
    /// The latest `now` seen; an earlier `now` is taken as this one, so time never goes back.
    #[serde(with = "time::serde::rfc3339")]
    pub last_now: OffsetDateTime,
}

/// The rollout as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Stages advance and clusters start (unless paused).
    Running,
    /// A stage's failures exceeded its budget: no cluster starts; clusters in flight finish.
    /// Only an abort or a new rollout (see `retry_plan`) follows.
    Halted { reason: String },
    /// An operator aborted: no cluster starts, the rest are `skipped`; steps in flight finish.
    Aborted { by: String },
    /// Every stage completed.
    Completed,
}

/// Where a stage is in its life: `pending → [waiting_approval_before] → running → [soaking] →
/// [waiting_approval_after] → complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StagePhase {
    Pending,
    WaitingApprovalBefore,
    Running,
    Soaking,
    WaitingApprovalAfter,
    Complete,
}

/// One stage's progress; its definition is `plan.strategy.stages[i]`, its members `plan.stages[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageState {
    pub phase: StagePhase,
    /// `max_concurrency` resolved against the stage's size (at least 1).
    pub max_concurrency: usize,
    /// `failure_budget` resolved against the stage's size.
    pub failure_budget: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_before_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_after_by: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub soak_until: Option<OffsetDateTime>,
}

/// One cluster's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub stage: usize,
    pub status: ClusterStatus,
    /// Index into `RolloutState::steps` of the step in flight or to send next.
    pub next_step: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    /// Steps that reported `changed` (rollback targets), including a late result after a timeout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<CommandKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchanged: Vec<CommandKind>,
    /// Why the cluster failed, timed out, was skipped or waits, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// The state of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterStatus {
    /// Not started.
    Pending,
    /// Its stage runs and there is room, but it is outside its maintenance window.
    WaitingWindow,
    /// Started: a step is in flight, or the next one waits for ARM budget.
    Running,
    /// Every step finished and at least one changed something.
    Succeeded,
    /// Every step finished and none changed anything.
    Unchanged,
    Failed,
    /// A step did not finish within the stage's `cluster_deadline_secs`.
    TimedOut,
    /// Aborted before it finished.
    Skipped,
}

impl ClusterStatus {
    /// Nothing more happens to the cluster in this rollout.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ClusterStatus::Succeeded
                | ClusterStatus::Unchanged
                | ClusterStatus::Failed
                | ClusterStatus::TimedOut
                | ClusterStatus::Skipped
        )
    }

    /// Counts against the stage's failure budget.
    pub fn is_failure(self) -> bool {
        matches!(self, ClusterStatus::Failed | ClusterStatus::TimedOut)
    }
}

/// The step a cluster has been sent and not yet answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub step: CommandKind,
    pub step_key: String,
    pub command_id: CommandId,
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    /// Subscriptions whose ARM budget holds a token for this step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reserved: Vec<String>,
}

/// Why a cluster failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub step: CommandKind,
    pub code: String,
    pub message: String,
}

/// How one step ended, as the agent reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepResult {
    Changed,
    Unchanged,
    Failed { code: String, message: String },
}

/// Which approval: before a stage starts or after it soaked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateWhen {
    Before,
    After,
}

/// An approval gate, named by its stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    pub stage: String,
    pub when: GateWhen,
}

/// What happens to a rollout. Each comes with `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Time passed: soaks end, windows open, budgets refill, deadlines expire.
    Tick,
    /// A cluster's agent reported a step's result.
    StepFinished {
        cluster: String,
        step: CommandKind,
        outcome: StepResult,
    },
    Approve {
        gate: Gate,
        by: String,
    },
    Pause {
        by: String,
    },
    Resume {
        by: String,
    },
    Abort {
        by: String,
    },
    /// ARM answered 429 with `Retry-After` for this subscription.
    ArmThrottled {
        subscription: String,
        retry_after_secs: u64,
    },
}

/// What the driver does, in order, after persisting the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Send this step to the cluster. `command_id` is derived from rollout, cluster and step, so
    /// sending it again (after a crash) is deduplicated by the bus and the agent; the command's
    /// deadline is `deadline`.
    Send {
        cluster: String,
        step: CommandKind,
        step_key: String,
        command_id: CommandId,
        #[serde(with = "time::serde::rfc3339")]
        deadline: OffsetDateTime,
    },
    StageStarted {
        stage: String,
    },
    StageSoaking {
        stage: String,
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
    },
    /// A gate waits for an operator's `Approve`.
    AwaitingApproval {
        gate: Gate,
    },
    StageCompleted {
        stage: String,
    },
    /// A cluster reached a terminal status.
    ClusterFinished {
        cluster: String,
        status: ClusterStatus,
    },
    Halted {
        reason: String,
    },
    Paused {
        by: String,
    },
    Resumed {
        by: String,
    },
    Aborted {
        by: String,
    },
    Completed,
    /// An event that changed nothing, and why (a cluster not in this rollout, a redelivered result,
    /// an approval of a gate that is not waiting).
    Ignored {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<String>,
        reason: String,
    },
}
