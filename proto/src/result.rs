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
    /// A status a newer agent reports that this build does not know: not a success.
    #[serde(other)]
    Unknown,
}

impl ResultStatus {
    pub fn is_success(&self) -> bool {
        matches!(self, ResultStatus::Succeeded | ResultStatus::Unchanged)
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
            ResultStatus::Unknown => "unknown",
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

impl CommandResult {
    /// This result made to fit in `max_bytes` of JSON, so it can always be published: the failure
    /// message is bounded first ([`crate::decode::MAX_MESSAGE_BYTES`]); if that is not enough the
    /// steps' observed state, then their diffs, are replaced by markers saying what was cut. The
    /// status, the step names and their changes are always kept.
    pub fn fit(mut self, max_bytes: usize) -> CommandResult {
        use crate::decode::{MAX_MESSAGE_BYTES, bounded};
        if let ResultStatus::Failed { code, message } = &mut self.status {
            *code = bounded(code, 64);
            *message = bounded(message, MAX_MESSAGE_BYTES);
        }
        self.kind = bounded(&self.kind, 64);
        let fits = |result: &CommandResult| serde_json::to_vec(result).is_ok_and(|bytes| bytes.len() <= max_bytes);
        if fits(&self) {
            return self;
        }
        for step in &mut self.steps {
            if !step.observed.is_null() {
                step.observed = serde_json::json!({ "cut": "observed state too large for one message" });
            }
        }
        if fits(&self) {
            return self;
        }
        for step in &mut self.steps {
            if !step.diff.is_empty() {
                let cut = format!("{} field changes cut: too large for one message", step.diff.len());
                step.diff =
                    vec![crate::outcome::FieldChange { path: "/".into(), before: None, after: Some(cut.into()) }];
            }
            step.step = bounded(&step.step, 128);
        }
        if fits(&self) {
            return self;
        }
        // Thousands of steps: keep the first ones that fit, and say so.
        let total = self.steps.len();
        while !fits(&self) && !self.steps.is_empty() {
            let keep = self.steps.len() / 2;
            self.steps.truncate(keep);
        }
        if self.steps.len() < total {
            let cut =
                format!("{} of {total} steps cut: too large for one message", total.saturating_sub(self.steps.len()));
            self.steps.push(crate::outcome::StepOutcome::unchanged("cut", cut.into()));
        }
        self
    }
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
    fn an_oversized_result_is_fitted_keeping_status_and_steps() {
        let huge = "x".repeat(600 * 1024);
        let change =
            crate::outcome::FieldChange { path: "/dns".into(), before: None, after: Some(huge.clone().into()) };
        let result = CommandResult {
            schema: SchemaVersion::CURRENT,
            command_id: CommandId("c1".into()),
            rollout_id: None,
            cluster: "aks-1".into(),
            kind: "enable-gmsa".into(),
            status: ResultStatus::Failed { code: "x".into(), message: huge.clone() },
            steps: vec![StepOutcome::from_diff("cluster-update", vec![change], huge.clone().into())],
            attempt: 1,
            finished_at: OffsetDateTime::UNIX_EPOCH,
            agent_version: "0.1.0".into(),
            resources: vec![],
        };
        let fitted = result.fit(64 * 1024);
        assert!(serde_json::to_vec(&fitted).unwrap().len() <= 64 * 1024);
        assert_eq!(fitted.steps[0].step, "cluster-update");
        assert!(fitted.steps[0].is_changed());
        assert!(matches!(&fitted.status, ResultStatus::Failed { message, .. } if message.ends_with("bytes cut]")));
        let small = CommandResult { status: ResultStatus::Succeeded, steps: vec![], ..fitted.clone() };
        assert_eq!(small.clone().fit(64 * 1024), small);
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
