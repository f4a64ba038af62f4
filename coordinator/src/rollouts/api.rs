//! The rollout control API: what `fleetctl rollout …` asks the leading coordinator on
//! `fleet.ctl.rollout` (request-reply) and what it answers.
//!
//! These types live here, not in `proto`, because both ends ship from this crate (fleetctl and
//! fleet-coordinator) and the status they carry is the engine's own view (`gmsa::rollout::status`):
//! agents never see them. They follow the wire's rules all the same — tagged by `verb`/`outcome`,
//! unknown fields ignored, an unknown verb or outcome decoded as `Unknown` — so a fleetctl and a
//! coordinator of different minor versions keep talking.

use gmsa::rollout::RolloutStatus;
use proto::rollout::RolloutFile;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The subject of every rollout verb; only the leading coordinator subscribes to it.
pub const SUBJECT: &str = "fleet.ctl.rollout";

/// Most clusters a status reply lists one by one (the counts always cover every cluster).
pub const MAX_CLUSTERS_IN_STATUS: usize = 2000;

/// What fleetctl asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum RolloutRequest {
    /// Plan `file` against the inventory and start it (or, `dry_run`, only say what it would do).
    Start {
        file: Box<RolloutFile>,
        #[serde(default)]
        dry_run: bool,
        #[serde(default)]
        requested_by: Option<String>,
    },
    Status {
        rollout_id: String,
    },
    List,
    /// Approve the gate that waits now (optionally naming its stage, as a check).
    Approve {
        rollout_id: String,
        #[serde(default)]
        stage: Option<String>,
        by: String,
    },
    Pause {
        rollout_id: String,
        by: String,
    },
    Resume {
        rollout_id: String,
        by: String,
    },
    Abort {
        rollout_id: String,
        by: String,
    },
    /// A new rollout of the failed and timed-out clusters only, with identical inputs.
    Retry {
        rollout_id: String,
        by: String,
    },
    /// Undo what the rollout changed, on exactly the clusters it changed.
    Rollback {
        rollout_id: String,
        by: String,
    },
    /// A credential rotation's rollout (sent by the coordinator's rotation runner, not by
    /// fleetctl): `rotate-credential` to every cluster of `file`, naming `rotation`'s versions.
    /// The id is the caller's, so asking again for a rollout that exists answers `started`
    /// without starting a second one.
    StartRotation {
        rollout_id: String,
        file: Box<RolloutFile>,
        rotation: gmsa::rollout::RotationPlan,
        #[serde(default)]
        requested_by: Option<String>,
    },
    #[serde(other)]
    Unknown,
}

impl RolloutRequest {
    /// The role an operator needs to ask this ([`crate::authz`]).
    pub fn required_role(&self) -> proto::identity::Role {
        use proto::identity::Role;
        match self {
            RolloutRequest::Status { .. } | RolloutRequest::List | RolloutRequest::Unknown => Role::ReadOnly,
            RolloutRequest::Start { dry_run: true, .. } => Role::ReadOnly,
            RolloutRequest::Approve { .. } | RolloutRequest::StartRotation { .. } => Role::Approve,
            _ => Role::Operate,
        }
    }

    /// The request with the verified `actor` as its requester, whatever the body said.
    pub fn asked_by(self, actor: String) -> RolloutRequest {
        match self {
            RolloutRequest::Start { file, dry_run, .. } => {
                RolloutRequest::Start { file, dry_run, requested_by: Some(actor) }
            }
            RolloutRequest::Approve { rollout_id, stage, .. } => {
                RolloutRequest::Approve { rollout_id, stage, by: actor }
            }
            RolloutRequest::Pause { rollout_id, .. } => RolloutRequest::Pause { rollout_id, by: actor },
            RolloutRequest::Resume { rollout_id, .. } => RolloutRequest::Resume { rollout_id, by: actor },
            RolloutRequest::Abort { rollout_id, .. } => RolloutRequest::Abort { rollout_id, by: actor },
            RolloutRequest::Retry { rollout_id, .. } => RolloutRequest::Retry { rollout_id, by: actor },
            RolloutRequest::Rollback { rollout_id, .. } => RolloutRequest::Rollback { rollout_id, by: actor },
            RolloutRequest::StartRotation { rollout_id, file, rotation, requested_by } => {
                // The runner names the operator who asked for the rotation; the coordinator signed it.
                RolloutRequest::StartRotation { rollout_id, file, rotation, requested_by: requested_by.or(Some(actor)) }
            }
            other => other,
        }
    }
}

/// One stage of a plan, as a start (or dry run) reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStage {
    pub name: String,
    pub clusters: Vec<String>,
}

/// One rollout in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutSummary {
    pub rollout_id: String,
    pub name: String,
    /// `preparing`, `running`, `paused`, `halted`, `aborted`, `completed`.
    pub phase: String,
    pub clusters: usize,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default)]
    pub requested_by: Option<String>,
    /// Where it came from: `file`, `retry of <id>`, `rollback of <id>`.
    pub origin: String,
}

/// What the coordinator answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RolloutReply {
    /// The rollout was planned (and, unless `dry_run`, started).
    Started {
        rollout_id: String,
        dry_run: bool,
        stages: Vec<PlannedStage>,
        /// Clusters in the inventory the selection left out, or that could not be read.
        #[serde(default)]
        notes: Vec<String>,
    },
    Status {
        status: Box<RolloutStatus>,
        /// Clusters beyond [`MAX_CLUSTERS_IN_STATUS`] are counted but not listed.
        #[serde(default)]
        truncated: bool,
    },
    List {
        rollouts: Vec<RolloutSummary>,
    },
    /// An operator's action was applied (or changed nothing, `message` says which).
    Done {
        rollout_id: String,
        message: String,
    },
    Refused {
        code: String,
        message: String,
    },
    #[serde(other)]
    Unknown,
}

impl RolloutReply {
    pub fn refused(code: &str, message: impl Into<String>) -> Self {
        RolloutReply::Refused { code: code.to_string(), message: message.into() }
    }
}
