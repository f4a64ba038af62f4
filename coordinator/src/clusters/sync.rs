//! Is a cluster in sync with the fleet's desired state, and if not, why (pure).
//!
//! The desired state is the last rollout file started (`rollouts::driver::desired_state`); its
//! revision is that rollout's id. A cluster is **in sync** when the desired file picks it, every
//! part the file asks for was last reported applied (changed or unchanged) by a command of that
//! rollout, no drift reported since the credspec was last applied is still standing, and its agent
//! said hello within the unreachable threshold.
//!
//! Why a rollout id and not the content: a command outside the desired rollout (`fleetctl run`, a
//! teardown, an older file) may carry any payload, so only the desired rollout's own results prove
//! the desired state. Re-running the rollout (a new desired revision) is how a drifted cluster is
//! brought back.
//!
//! Caveat: a dry-run rollout (`fleetctl rollout plan`) that finds nothing to change reports
//! `unchanged` under its own rollout id; results do not say they were dry runs, so such a plan makes
//! the clusters it covered read "older revision" until the desired rollout runs again.

use super::parts::{Part, PartObservation, PartOutcome};
use proto::drift::DriftReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// What the desired state asks of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredFor {
    /// The desired revision: the rollout id of the last file started.
    pub rollout_id: String,
    /// Whether the file's selector picks the cluster (with its current labels).
    pub selected: bool,
    /// The parts the file sets up on a cluster it picks, in display order.
    pub parts: Vec<Part>,
}

/// Everything the decision looks at, as plain values.
#[derive(Debug, Clone)]
pub struct SyncInput<'a> {
    /// `None` when no rollout has set a desired state yet.
    pub desired: Option<&'a DesiredFor>,
    pub parts: &'a BTreeMap<Part, PartObservation>,
    /// The cluster's recent drift reports, any order.
    pub drift: &'a [DriftReport],
    /// The agent's last hello or heartbeat.
    pub last_seen: Option<OffsetDateTime>,
    pub now: OffsetDateTime,
    /// No hello for longer than this: unreachable.
    pub unreachable_after: time::Duration,
}

/// One reason a cluster is not in sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// No rollout has set the fleet's desired state.
    NoDesiredState,
    /// The desired file's selector does not pick this cluster: nothing is desired of it.
    NotSelected { rollout_id: String },
    /// Nothing was ever reported about this part.
    NeverApplied { part: Part },
    /// The last result for this part, from the desired rollout, failed.
    Failed { part: Part, rollout_id: String, code: String, message: String },
    /// The last result for this part is from another rollout or command (`observed`), not the
    /// desired one — or from the desired one, but only planned (a dry run).
    OlderRevision { part: Part, observed: Option<String>, desired: String, outcome: PartOutcome },
    /// An object was edited or deleted out of band after the credspec was last applied, and the
    /// agent did not put it back (`remedy` `reported` or `reapply-failed`).
    Drifted {
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        name: String,
        cause: String,
        remedy: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The agent said no hello within the threshold (or never did).
    Unreachable {
        #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
        last_seen: Option<OffsetDateTime>,
        after_secs: i64,
    },
}

/// The one word for a cluster, worst first: `unreachable`, `failed`, `drifted`, `pending` (not yet
/// applied, or applied for an older revision), `not_targeted`, `in_sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    Unreachable,
    Failed,
    Drifted,
    Pending,
    NotTargeted,
    InSync,
}

impl SyncState {
    pub fn label(self) -> &'static str {
        match self {
            SyncState::Unreachable => "unreachable",
            SyncState::Failed => "failed",
            SyncState::Drifted => "drifted",
            SyncState::Pending => "pending",
            SyncState::NotTargeted => "not_targeted",
            SyncState::InSync => "in_sync",
        }
    }
}

/// The decision: the state and every reason behind it (empty exactly when in sync).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub state: SyncState,
    pub in_sync: bool,
    pub reasons: Vec<Reason>,
}

impl Verdict {
    /// Out of sync and the desired state applies: what `clusters list --out-of-sync` shows.
    pub fn needs_attention(&self) -> bool {
        !self.in_sync && self.state != SyncState::NotTargeted
    }
}

/// Decides whether the cluster is in sync (pure).
pub fn decide(input: &SyncInput<'_>) -> Verdict {
    let mut reasons = Vec::new();
    if !reachable(input.last_seen, input.now, input.unreachable_after) {
        reasons.push(Reason::Unreachable {
            last_seen: input.last_seen,
            after_secs: input.unreachable_after.whole_seconds(),
        });
    }
    match input.desired {
        None => reasons.push(Reason::NoDesiredState),
        Some(desired) if !desired.selected => {
            reasons.push(Reason::NotSelected { rollout_id: desired.rollout_id.clone() });
        }
        Some(desired) => {
            for &part in &desired.parts {
                if let Some(reason) = part_reason(part, input.parts.get(&part), &desired.rollout_id) {
                    reasons.push(reason);
                }
            }
            reasons.extend(standing_drift(input.parts.get(&Part::Credspec), input.drift));
        }
    }
    let state = state_of(&reasons);
    Verdict { state, in_sync: reasons.is_empty(), reasons }
}

/// Whether a hello at `last_seen` is recent enough. Checked arithmetic: a threshold so large that
/// `now - threshold` leaves time's range means every agent that ever said hello is reachable.
fn reachable(last_seen: Option<OffsetDateTime>, now: OffsetDateTime, unreachable_after: time::Duration) -> bool {
    let Some(last_seen) = last_seen else { return false };
    match now.checked_sub(unreachable_after) {
        Some(oldest) => last_seen >= oldest,
        None => true,
    }
}

fn part_reason(part: Part, observed: Option<&PartObservation>, desired: &str) -> Option<Reason> {
    let Some(observed) = observed else { return Some(Reason::NeverApplied { part }) };
    let of_desired = observed.rollout_id.as_deref() == Some(desired);
    match observed.outcome {
        PartOutcome::Failed if of_desired => Some(Reason::Failed {
            part,
            rollout_id: desired.to_string(),
            code: observed.code.clone().unwrap_or_default(),
            message: observed.message.clone().unwrap_or_default(),
        }),
        outcome if of_desired && outcome.is_applied() => None,
        outcome => Some(Reason::OlderRevision {
            part,
            observed: observed.rollout_id.clone(),
            desired: desired.to_string(),
            outcome,
        }),
    }
}

/// The drift still standing: per object, its latest report after the credspec was last applied,
/// unless the agent re-applied it. Any report counts when the credspec was never applied.
fn standing_drift(credspec: Option<&PartObservation>, drift: &[DriftReport]) -> Vec<Reason> {
    let applied_at = credspec.filter(|observed| observed.outcome.is_applied()).map(|observed| observed.at);
    let mut latest: BTreeMap<(&str, Option<&str>, &str), &DriftReport> = BTreeMap::new();
    for report in drift {
        let key = (report.kind.as_str(), report.namespace.as_deref(), report.name.as_str());
        match latest.get(&key) {
            Some(known) if known.at > report.at => {}
            _ => {
                latest.insert(key, report);
            }
        }
    }
    latest
        .into_values()
        .filter(|report| applied_at.is_none_or(|applied_at| report.at > applied_at))
        // Only `reapplied` says the object is back; `reported`, `reapply-failed` and a remedy this
        // build does not know leave it drifted.
        .filter(|report| report.remedy != "reapplied")
        .map(|report| Reason::Drifted {
            kind: report.kind.clone(),
            namespace: report.namespace.clone(),
            name: report.name.clone(),
            cause: report.cause.clone(),
            remedy: report.remedy.clone(),
            at: report.at,
        })
        .collect()
}

fn state_of(reasons: &[Reason]) -> SyncState {
    reasons
        .iter()
        .map(|reason| match reason {
            Reason::Unreachable { .. } => SyncState::Unreachable,
            Reason::Failed { .. } => SyncState::Failed,
            Reason::Drifted { .. } => SyncState::Drifted,
            Reason::NeverApplied { .. } | Reason::OlderRevision { .. } => SyncState::Pending,
            Reason::NoDesiredState | Reason::NotSelected { .. } => SyncState::NotTargeted,
        })
        .min()
        .unwrap_or(SyncState::InSync)
}

#[cfg(test)]
mod tests;
