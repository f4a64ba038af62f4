//! The parts of a cluster's gMSA state and which step of which command speaks for each (pure).
//!
//! Agents name their steps (`proto::outcome::StepOutcome::step`, stable across versions: see
//! `agent/src/cloud/mod.rs`); the coordinator's record keeps, per part, the last thing a result said
//! about it ([`observations_of`]), so `fleetctl clusters show` can set each part against the desired
//! state even when the cluster's last result was about something else.
//!
//! | part           | steps                                                        | commands                           |
//! |----------------|--------------------------------------------------------------|------------------------------------|
//! | `gmsa-profile` | `cluster-update`                                             | enable-gmsa, disable-gmsa, teardown |
//! | `identity-grant` | `identity-attach`, `vault-grant`, `vault-revoke`, `identity-detach` | grant-identity, teardown   |
//! | `credspec`     | `preflight`, `credspec-apply`, `credspec-remove`             | apply-credspec, teardown           |
//! | `validation`   | `credspec-validate`, `verify`                                | validate-credspec, verify          |
//! | `rotation`     | `credential-confirm`                                         | rotate-credential                  |
//!
//! A failed command reports only the steps it completed; the step that failed is inferred from the
//! command's kind ([`failing_step`]).

use proto::outcome::{Change, FieldChange, StepOutcome};
use proto::{CommandResult, ResultStatus};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One part of a cluster's gMSA state, as `fleetctl clusters show` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// The managed cluster's `windowsProfile.gmsaProfile` (ARM).
    GmsaProfile,
    /// The identity the Windows pools run with and its `get` on the domain-user secret.
    IdentityGrant,
    /// The credspec, its ClusterRole and RoleBindings (Kubernetes).
    Credspec,
    /// The last validation of the credspec (`validate-credspec`) or of the sample workload (`verify`).
    Validation,
    /// The last credential rotation the cluster confirmed (`rotate-credential`).
    Rotation,
    /// A part a newer coordinator records that this build does not know (a record written by it).
    #[serde(other)]
    Unknown,
}

impl Part {
    /// Every part this build knows, in display order.
    pub const ALL: [Part; 5] =
        [Part::GmsaProfile, Part::IdentityGrant, Part::Credspec, Part::Validation, Part::Rotation];

    /// The part's name as it stands in records and output.
    pub fn label(self) -> &'static str {
        match self {
            Part::GmsaProfile => "gmsa-profile",
            Part::IdentityGrant => "identity-grant",
            Part::Credspec => "credspec",
            Part::Validation => "validation",
            Part::Rotation => "rotation",
            Part::Unknown => "unknown",
        }
    }
}

/// What a step did to its part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartOutcome {
    Changed,
    Unchanged,
    /// A dry run found something to write (and wrote nothing).
    Planned,
    Failed,
    /// An outcome a newer coordinator records.
    #[serde(other)]
    Unknown,
}

impl PartOutcome {
    pub fn label(self) -> &'static str {
        match self {
            PartOutcome::Changed => "changed",
            PartOutcome::Unchanged => "unchanged",
            PartOutcome::Planned => "planned",
            PartOutcome::Failed => "failed",
            PartOutcome::Unknown => "unknown",
        }
    }

    /// True when the part is as the command asked (written now, or found so).
    pub fn is_applied(self) -> bool {
        matches!(self, PartOutcome::Changed | PartOutcome::Unchanged)
    }
}

/// The last thing a result said about one part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartObservation {
    /// The step that spoke for the part (the failing one, for a failed command).
    pub step: String,
    pub outcome: PartOutcome,
    /// What the step changed (or would change); for a failed command, what its completed steps of
    /// this part changed before it failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<FieldChange>,
    /// The result's finish time.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub command_id: String,
    /// The command's kind (`apply-credspec`, `teardown`, …).
    pub kind: String,
    /// The rollout (or `fleetctl run`) the command belonged to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<String>,
    /// The failure's stable code and message, when the command failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The part a step speaks for; `None` for steps that are no part of the desired state (audits,
/// diagnostics, connectivity checks, central steps).
pub fn part_of_step(step: &str) -> Option<Part> {
    Some(match step {
        azure::STEP_CLUSTER_UPDATE => Part::GmsaProfile,
        azure::STEP_IDENTITY_ATTACH | azure::STEP_VAULT_GRANT | azure::STEP_VAULT_REVOKE | "identity-detach" => {
            Part::IdentityGrant
        }
        "preflight" | "credspec-apply" | "credspec-remove" => Part::Credspec,
        proto::report::STEP_CREDSPEC_VALIDATE | "verify" => Part::Validation,
        "credential-confirm" => Part::Rotation,
        _ => return None,
    })
}

/// The steps a command of `kind` ends with, in order, each with its part: a failed command
/// failed at the first of them it did not complete.
fn final_steps(kind: &str) -> &'static [(&'static str, Part)] {
    match kind {
        "enable-gmsa" | "disable-gmsa" => &[(azure::STEP_CLUSTER_UPDATE, Part::GmsaProfile)],
        "grant-identity" => &[(azure::STEP_VAULT_GRANT, Part::IdentityGrant)],
        "apply-credspec" => &[("credspec-apply", Part::Credspec)],
        "validate-credspec" => &[(proto::report::STEP_CREDSPEC_VALIDATE, Part::Validation)],
        "verify" => &[("verify", Part::Validation)],
        "rotate-credential" => &[("credential-confirm", Part::Rotation)],
        "teardown" => &[
            ("credspec-remove", Part::Credspec),
            (azure::STEP_VAULT_REVOKE, Part::IdentityGrant),
            (azure::STEP_CLUSTER_UPDATE, Part::GmsaProfile),
        ],
        _ => &[],
    }
}

/// The step at which a failed command of `kind` failed, given the steps it completed: the first
/// of its final steps not completed, or its last final step when all were (a validation that
/// reports its checks and fails). `None` for kinds that touch no part.
pub fn failing_step(kind: &str, completed: &[StepOutcome]) -> Option<(&'static str, Part)> {
    let steps = final_steps(kind);
    let done = |name: &str| completed.iter().any(|outcome| outcome.step == name);
    steps.iter().find(|(name, _)| !done(name)).or(steps.last()).copied()
}

/// What `result` says about each part (pure): every step with a part gives that part an
/// observation (several steps of one part are merged: changed if any changed, diffs joined, the
/// last step named); a failed command marks the part it failed at as failed, with its code.
pub fn observations_of(result: &CommandResult) -> Vec<(Part, PartObservation)> {
    let mut observed: Vec<(Part, PartObservation)> = Vec::new();
    let base = |step: &str, outcome: PartOutcome| PartObservation {
        step: step.to_string(),
        outcome,
        diff: Vec::new(),
        at: result.finished_at,
        command_id: result.command_id.to_string(),
        kind: result.kind.clone(),
        rollout_id: result.rollout_id.clone(),
        code: None,
        message: None,
    };
    for step in &result.steps {
        let Some(part) = part_of_step(&step.step) else { continue };
        let outcome = match step.change {
            Change::Changed => PartOutcome::Changed,
            Change::Unchanged => PartOutcome::Unchanged,
            Change::Planned => PartOutcome::Planned,
            Change::Unknown => PartOutcome::Unknown,
        };
        match observed.iter_mut().find(|(known, _)| *known == part) {
            Some((_, observation)) => {
                observation.step = step.step.clone();
                observation.diff.extend(step.diff.iter().cloned());
                observation.outcome = merge(observation.outcome, outcome);
            }
            None => {
                let mut observation = base(&step.step, outcome);
                observation.diff = step.diff.clone();
                observed.push((part, observation));
            }
        }
    }
    if let ResultStatus::Failed { code, message } = &result.status
        && let Some((step, part)) = failing_step(&result.kind, &result.steps)
    {
        let diff = observed.iter().find(|(known, _)| *known == part).map(|(_, seen)| seen.diff.clone());
        let mut failed = base(step, PartOutcome::Failed);
        failed.diff = diff.unwrap_or_default();
        failed.code = Some(code.clone());
        failed.message = Some(message.clone());
        observed.retain(|(known, _)| *known != part);
        observed.push((part, failed));
    }
    if matches!(result.status, ResultStatus::Unknown) {
        for (_, observation) in &mut observed {
            observation.outcome = PartOutcome::Unknown;
        }
    }
    observed
}

/// Two steps of one part in one command: changed wins, then planned, then unchanged.
fn merge(first: PartOutcome, second: PartOutcome) -> PartOutcome {
    use PartOutcome::*;
    match (first, second) {
        (Failed, _) | (_, Failed) => Failed,
        (Unknown, _) | (_, Unknown) => Unknown,
        (Changed, _) | (_, Changed) => Changed,
        (Planned, _) | (_, Planned) => Planned,
        (Unchanged, Unchanged) => Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::version::SchemaVersion;
    use proto::{CommandId, FieldChange};

    fn mk_step(step: &str, changed: bool) -> StepOutcome {
        let diff = if changed {
            vec![FieldChange { path: format!("/{step}"), before: None, after: Some(true.into()) }]
        } else {
            vec![]
        };
        StepOutcome::from_diff(step, diff, serde_json::Value::Null)
    }

    fn mk_result(kind: &str, status: ResultStatus, steps: Vec<StepOutcome>) -> CommandResult {
        CommandResult {
            schema: SchemaVersion::CURRENT,
            command_id: CommandId("c1".into()),
            rollout_id: Some("r1".into()),
            cluster: "a".into(),
            kind: kind.into(),
            status,
            steps,
            attempt: 1,
            finished_at: OffsetDateTime::UNIX_EPOCH,
            agent_version: "t".into(),
            resources: vec![],
        }
    }

    fn failed() -> ResultStatus {
        ResultStatus::Failed { code: "boom".into(), message: "it broke".into() }
    }

    #[test]
    fn every_step_the_agents_name_maps_to_its_part() {
        for (step, part) in [
            ("cluster-update", Part::GmsaProfile),
            ("identity-attach", Part::IdentityGrant),
            ("vault-grant", Part::IdentityGrant),
            ("vault-revoke", Part::IdentityGrant),
            ("identity-detach", Part::IdentityGrant),
            ("preflight", Part::Credspec),
            ("credspec-apply", Part::Credspec),
            ("credspec-remove", Part::Credspec),
            ("credspec-validate", Part::Validation),
            ("verify", Part::Validation),
            ("credential-confirm", Part::Rotation),
        ] {
            assert_eq!(part_of_step(step), Some(part), "{step}");
        }
        for other in ["access-audit", "diagnostics", "dc-connectivity", "secret-write", "cut", ""] {
            assert_eq!(part_of_step(other), None, "{other}");
        }
    }

    #[test]
    fn a_user_assigned_grant_merges_attach_and_grant_into_one_changed_part() {
        let result = mk_result(
            "grant-identity",
            ResultStatus::Succeeded,
            vec![mk_step("identity-attach", true), mk_step("vault-grant", false)],
        );
        let observed = observations_of(&result);
        assert_eq!(observed.len(), 1);
        let (part, observation) = &observed[0];
        assert_eq!(*part, Part::IdentityGrant);
        assert_eq!(observation.outcome, PartOutcome::Changed);
        assert_eq!(observation.step, "vault-grant");
        assert_eq!(observation.diff.len(), 1);
        assert_eq!(observation.rollout_id.as_deref(), Some("r1"));
    }

    #[test]
    fn a_failed_command_marks_the_part_it_failed_at_with_its_code() {
        // The grant failed after the attach completed: the part is failed, the attach's diff kept.
        let result = mk_result("grant-identity", failed(), vec![mk_step("identity-attach", true)]);
        let observed = observations_of(&result);
        assert_eq!(observed.len(), 1);
        assert_eq!(observed[0].0, Part::IdentityGrant);
        assert_eq!(observed[0].1.outcome, PartOutcome::Failed);
        assert_eq!(observed[0].1.step, "vault-grant");
        assert_eq!(observed[0].1.code.as_deref(), Some("boom"));
        assert_eq!(observed[0].1.diff.len(), 1);
        // Refused before any step ran: still the kind's part.
        let refused = observations_of(&mk_result("apply-credspec", failed(), vec![]));
        assert_eq!(refused[0].0, Part::Credspec);
        assert_eq!(refused[0].1.step, "credspec-apply");
        // A validation that reports its checks and fails is a failed validation.
        let validation =
            observations_of(&mk_result("validate-credspec", failed(), vec![mk_step("credspec-validate", false)]));
        assert_eq!((validation[0].0, validation[0].1.outcome), (Part::Validation, PartOutcome::Failed));
    }

    #[test]
    fn a_teardown_that_fails_midway_keeps_what_it_did_and_fails_the_next_part() {
        let result = mk_result("teardown", failed(), vec![mk_step("credspec-remove", true)]);
        let observed = observations_of(&result);
        let credspec = observed.iter().find(|(part, _)| *part == Part::Credspec).unwrap();
        assert_eq!(credspec.1.outcome, PartOutcome::Changed);
        let identity = observed.iter().find(|(part, _)| *part == Part::IdentityGrant).unwrap();
        assert_eq!(identity.1.outcome, PartOutcome::Failed);
        assert_eq!(identity.1.step, "vault-revoke");
    }

    #[test]
    fn commands_that_touch_no_part_give_no_observation() {
        for kind in ["audit-access", "collect-diagnostics", "check-dc-connectivity"] {
            assert!(observations_of(&mk_result(kind, failed(), vec![])).is_empty(), "{kind}");
        }
        let audit = mk_result("audit-access", ResultStatus::Unchanged, vec![mk_step("access-audit", false)]);
        assert!(observations_of(&audit).is_empty());
    }

    #[test]
    fn a_dry_run_reports_planned_and_an_unknown_part_decodes() {
        let planned = StepOutcome::in_mode(
            proto::Mode::DryRun,
            "cluster-update",
            vec![FieldChange { path: "/x".into(), before: None, after: Some(1.into()) }],
            serde_json::Value::Null,
        );
        let observed = observations_of(&mk_result("enable-gmsa", ResultStatus::Unchanged, vec![planned]));
        assert_eq!(observed[0].1.outcome, PartOutcome::Planned);
        assert_eq!(serde_json::from_str::<Part>("\"a-newer-part\"").unwrap(), Part::Unknown);
        assert_eq!(serde_json::to_string(&Part::IdentityGrant).unwrap(), "\"identity-grant\"");
        for part in Part::ALL {
            assert_eq!(serde_json::to_value(part).unwrap(), part.label());
        }
    }
}
