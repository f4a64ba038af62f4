//! Planning a fleet command: which clusters get it and with which envelope. Pure: the inventory and
//! the clock come in, envelopes go out.

use crate::inventory::ClusterEntry;
use crate::selector::{Selector, SelectorError};
use proto::command::CommandEnvelope;
use proto::control::Target;
use proto::version::SchemaVersion;
use proto::{Command, CommandId};
use time::{Duration, OffsetDateTime};

/// A planned rollout: one envelope per selected cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub rollout_id: String,
    pub envelopes: Vec<CommandEnvelope>,
}

impl Plan {
    pub fn targets(&self) -> Vec<Target> {
        self.envelopes
            .iter()
            .map(|envelope| Target { cluster: envelope.cluster.clone(), command_id: envelope.command_id.clone() })
            .collect()
    }
}

/// Why a rollout cannot be planned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The selector does not parse.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// The command's payload breaks a rule.
    #[error("invalid command: {0}")]
    Invalid(#[from] proto::command::ValidationError),
    /// The deadline is zero.
    #[error("deadline_secs: must be at least 1")]
    Deadline,
}

/// Plans `command` for every cluster of `inventory` that `selector` picks.
pub fn plan(
    inventory: &[ClusterEntry],
    selector: &str,
    command: &Command,
    rollout_id: &str,
    now: OffsetDateTime,
    deadline_secs: u64,
    issuer: Option<String>,
) -> Result<Plan, PlanError> {
    let selector = Selector::parse(selector)?;
    command.validate()?;
    if deadline_secs == 0 {
        return Err(PlanError::Deadline);
    }
    let deadline = now + Duration::seconds(i64::try_from(deadline_secs).unwrap_or(i64::MAX / 2));
    let envelopes = inventory
        .iter()
        .filter(|entry| selector.matches(&entry.labels))
        .map(|entry| CommandEnvelope {
            schema: SchemaVersion::CURRENT,
            command_id: CommandId::for_rollout(rollout_id, &entry.id),
            rollout_id: Some(rollout_id.to_string()),
            cluster: entry.id.clone(),
            issued_at: now,
            deadline,
            issuer: issuer.clone(),
            signature: None,
            command: command.clone(),
        })
        .collect();
    Ok(Plan { rollout_id: rollout_id.to_string(), envelopes })
}

/// A new rollout id: sortable by time, unique, a subject token.
pub fn new_rollout_id(now: OffsetDateTime) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("r{}-{}", now.unix_timestamp(), &random[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::command::EnableGmsa;
    use std::collections::BTreeMap;

    fn mk_cluster(id: &str, env: &str) -> ClusterEntry {
        ClusterEntry {
            id: id.into(),
            labels: BTreeMap::from([("env".into(), env.into())]),
            declared: true,
            agent: None,
        }
    }

    #[test]
    fn selects_by_label_with_stable_command_ids() {
        let inventory = vec![mk_cluster("a", "prod"), mk_cluster("b", "dev"), mk_cluster("c", "prod")];
        let command = Command::EnableGmsa(EnableGmsa::default());
        let now = OffsetDateTime::UNIX_EPOCH;
        let plan = plan(&inventory, "env=prod", &command, "r1", now, 60, None).unwrap();
        let clusters: Vec<&str> = plan.envelopes.iter().map(|e| e.cluster.as_str()).collect();
        assert_eq!(clusters, ["a", "c"]);
        assert_eq!(plan.envelopes[0].command_id, CommandId::for_rollout("r1", "a"));
        assert_eq!(plan.envelopes[0].deadline, now + Duration::seconds(60));
    }

    #[test]
    fn invalid_input_plans_nothing() {
        let command = Command::EnableGmsa(EnableGmsa { dns_server: Some("10.0.0.1".into()), root_domain: None });
        let err =
            plan(&[mk_cluster("a", "prod")], "", &command, "r1", OffsetDateTime::UNIX_EPOCH, 60, None).unwrap_err();
        assert!(err.to_string().contains("payload.root_domain"), "{err}");
        let ok = Command::EnableGmsa(EnableGmsa::default());
        assert!(matches!(
            plan(&[], "env=", &ok, "r", OffsetDateTime::UNIX_EPOCH, 60, None),
            Err(PlanError::Selector(_))
        ));
        assert_eq!(plan(&[], "", &ok, "r", OffsetDateTime::UNIX_EPOCH, 0, None), Err(PlanError::Deadline));
    }
}
