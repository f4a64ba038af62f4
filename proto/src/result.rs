//! What an agent reports when a command ends, on `fleet.result.<cluster>.<command id>`.

use crate::command::CommandId;
use crate::outcome::StepOutcome;
use crate::version::SchemaVersion;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How a command ended on one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ResultStatus {
    /// At least one step changed something, and every step succeeded.
    Succeeded,
    /// Every step found the desired state already in place.
    Unchanged,
    /// The command did not reach its desired state. `code` is stable and machine-readable
    /// (`invalid_payload`, `unsupported_schema`, `deadline_exceeded`, `attempts_exhausted`,
    /// `executor_error`, …); `message` is for people and never holds a secret.
    Failed { code: String, message: String },
}

impl ResultStatus {
    pub fn is_success(&self) -> bool {
        !matches!(self, ResultStatus::Failed { .. })
    }

    /// The status of a command whose steps all succeeded.
    pub fn from_steps(steps: &[StepOutcome]) -> Self {
        if steps.iter().any(StepOutcome::is_changed) { ResultStatus::Succeeded } else { ResultStatus::Unchanged }
    }

    pub fn label(&self) -> &str {
        match self {
            ResultStatus::Succeeded => "succeeded",
            ResultStatus::Unchanged => "unchanged",
            ResultStatus::Failed { .. } => "failed",
        }
    }
}

/// The result of one command on one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    pub schema: SchemaVersion,
    pub command_id: CommandId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<String>,
    pub cluster: String,
    /// The command's kind name, or the raw kind when the agent could not decode it.
    pub kind: String,
    #[serde(flatten)]
    pub status: ResultStatus,
    /// Per-step outcomes with their diffs and observed state.
    #[serde(default)]
    pub steps: Vec<StepOutcome>,
    /// 1 for the first attempt; more when the agent restarted during the command.
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    pub agent_version: String,
    /// Shared resources this command started or stopped using (schema 1.2; empty before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<crate::resources::ResourceUse>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::StepOutcome;

    #[test]
    fn status_is_flattened_into_the_result() {
        let result = CommandResult {
            schema: SchemaVersion::CURRENT,
            command_id: CommandId("c1".into()),
            rollout_id: None,
            cluster: "aks-1".into(),
            kind: "enable-gmsa".into(),
            status: ResultStatus::Failed { code: "invalid_payload".into(), message: "payload.dns_server: bad".into() },
            steps: vec![],
            attempt: 1,
            finished_at: OffsetDateTime::UNIX_EPOCH,
            agent_version: "0.1.0".into(),
            resources: vec![],
        };
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["status"], "failed");
        assert_eq!(json["code"], "invalid_payload");
        assert_eq!(serde_json::from_value::<CommandResult>(json).unwrap(), result);
    }

    #[test]
    fn status_from_steps() {
        let unchanged = StepOutcome::unchanged("a", serde_json::Value::Null);
        let changed = StepOutcome::from_diff(
            "b",
            vec![crate::outcome::FieldChange { path: "/x".into(), before: None, after: Some(1.into()) }],
            serde_json::Value::Null,
        );
        assert_eq!(ResultStatus::from_steps(std::slice::from_ref(&unchanged)), ResultStatus::Unchanged);
        assert_eq!(ResultStatus::from_steps(&[unchanged, changed]), ResultStatus::Succeeded);
    }
}
