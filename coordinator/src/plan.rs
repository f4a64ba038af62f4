//! Planning a fleet command: which clusters get it and with which envelope. Pure: the inventory and
//! the clock come in, envelopes go out.
//!
//! A cluster whose agent announced its capabilities without the command's kind is not sent the
//! command: it is reported as skipped (`unsupported_kind`) before anything is sent. A cluster with
//! no hello yet is planned (its agent reads the command when it starts).
#![deny(clippy::arithmetic_side_effects)]

use crate::inventory::ClusterEntry;
use crate::selector::{Selector, SelectorError};
use proto::command::CommandEnvelope;
use proto::control::{Skipped, Target};
use proto::version::SchemaVersion;
use proto::{Command, CommandId};
use time::{Duration, OffsetDateTime};

/// A planned rollout: one envelope per selected cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub rollout_id: String,
    pub envelopes: Vec<CommandEnvelope>,
    /// Selected clusters not sent the command, and why.
    pub skipped: Vec<Skipped>,
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
    /// The deadline is out of `1..=MAX_DEADLINE_SECS`, or beyond the calendar from `now`.
    #[error(transparent)]
    Deadline(proto::command::ValidationError),
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
    gmsa::validate::command(command)?;
    proto::control::check_deadline_secs("deadline_secs", deadline_secs).map_err(PlanError::Deadline)?;
    let deadline =
        i64::try_from(deadline_secs).ok().and_then(|seconds| now.checked_add(Duration::seconds(seconds))).ok_or_else(
            || PlanError::Deadline(proto::command::ValidationError::new("deadline_secs", "is beyond the calendar")),
        )?;
    let kind = command.kind();
    let (selected, unable): (Vec<&ClusterEntry>, Vec<&ClusterEntry>) = inventory
        .iter()
        .filter(|entry| selector.matches(&entry.labels))
        .partition(|entry| entry.agent.as_ref().is_none_or(|agent| agent.capabilities.contains(&kind)));
    let skipped = unable
        .into_iter()
        .map(|entry| Skipped {
            cluster: entry.id.clone(),
            code: proto::decode::Code::UnsupportedKind.as_str().to_string(),
            message: format!(
                "its agent ({}) did not announce {kind}",
                entry.agent.as_ref().map_or("no version", |agent| agent.agent_version.as_str())
            ),
        })
        .collect();
    let envelopes = selected
        .into_iter()
        .map(|entry| CommandEnvelope {
            schema: SchemaVersion::CURRENT,
            command_id: CommandId::for_rollout(rollout_id, &entry.id),
            rollout_id: Some(rollout_id.to_string()),
            cluster: entry.id.clone(),
            issued_at: now,
            deadline,
            issuer: issuer.clone(),
            command: command.clone(),
        })
        .collect();
    Ok(Plan { rollout_id: rollout_id.to_string(), envelopes, skipped })
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
        let command = Command::EnableGmsa(EnableGmsa { dns_server: Some("10.0.0.1".into()), ..EnableGmsa::default() });
        let err =
            plan(&[mk_cluster("a", "prod")], "", &command, "r1", OffsetDateTime::UNIX_EPOCH, 60, None).unwrap_err();
        assert!(err.to_string().contains("payload.root_domain"), "{err}");
        let ok = Command::EnableGmsa(EnableGmsa::default());
        assert!(matches!(
            plan(&[], "env=", &ok, "r", OffsetDateTime::UNIX_EPOCH, 60, None),
            Err(PlanError::Selector(_))
        ));
        assert!(matches!(plan(&[], "", &ok, "r", OffsetDateTime::UNIX_EPOCH, 0, None), Err(PlanError::Deadline(_))));
    }

    #[test]
    fn a_huge_deadline_is_refused_not_a_panic() {
        let ok = Command::EnableGmsa(EnableGmsa::default());
        for seconds in [proto::control::MAX_DEADLINE_SECS + 1, 10_000_000_000_000, u64::MAX] {
            let err =
                plan(&[mk_cluster("a", "prod")], "", &ok, "r", OffsetDateTime::now_utc(), seconds, None).unwrap_err();
            assert!(err.to_string().starts_with("deadline_secs:"), "{err}");
        }
        // Within bounds but beyond the calendar from a far-future now.
        let late = OffsetDateTime::new_utc(time::Date::MAX, time::Time::from_hms(23, 59, 30).unwrap());
        assert!(matches!(plan(&[], "", &ok, "r", late, 60, None), Err(PlanError::Deadline(_))));
    }

    #[test]
    fn clusters_whose_agent_lacks_the_kind_are_skipped_before_sending() {
        use proto::AgentInfo;
        use proto::version::SchemaVersion;
        let with_agent = |id: &str, capabilities: Vec<proto::CommandKind>| ClusterEntry {
            agent: Some(AgentInfo {
                schema: SchemaVersion::CURRENT,
                cluster: id.into(),
                agent_version: "9.9".into(),
                capabilities,
                labels: BTreeMap::new(),
                started_at: OffsetDateTime::UNIX_EPOCH,
                last_seen: OffsetDateTime::UNIX_EPOCH,
            }),
            ..mk_cluster(id, "prod")
        };
        let inventory = vec![
            with_agent("new", vec![proto::CommandKind::RotateCredential, proto::CommandKind::Unknown]),
            with_agent("old", vec![proto::CommandKind::EnableGmsa]),
            mk_cluster("no-hello-yet", "prod"),
        ];
        let command = Command::RotateCredential(proto::command::RotateCredential {
            vault: proto::command::VaultRef {
                subscription_id: "00000000-0000-0000-0000-000000000001".into(),
                resource_group: "rg".into(),
                name: "kv1".into(),
            },
            secret_name: "GMSADomainUserCred".into(),
            secret_version: "0123456789abcdef0123456789abcdef".into(),
            spec_name: None,
            run_workload: false,
            timeout_secs: 600,
        });
        let planned = plan(&inventory, "", &command, "r1", OffsetDateTime::UNIX_EPOCH, 60, None).unwrap();
        let sent: Vec<&str> = planned.envelopes.iter().map(|e| e.cluster.as_str()).collect();
        assert_eq!(sent, ["new", "no-hello-yet"]);
        assert_eq!(planned.skipped.len(), 1);
        assert_eq!(
            (planned.skipped[0].cluster.as_str(), planned.skipped[0].code.as_str()),
            ("old", "unsupported_kind")
        );
    }
}
