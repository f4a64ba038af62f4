//! What `fleetctl clusters show|list` prints about one cluster, assembled from plain values
//! (pure): its inventory entry, its record, the desired state, the clock and the threshold. The
//! reads are in `clusters::read`; the decision is `clusters::sync::decide`.

use super::parts::{Part, PartObservation};
use super::sync::{self, DesiredFor, SyncInput, SyncState, Verdict};
use crate::inventory::ClusterEntry;
use crate::record::ClusterRecord;
use proto::drift::DriftReport;
use proto::rollout::RolloutFile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The desired state as it applies to one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredView {
    /// The desired revision: the rollout that started the file.
    pub rollout_id: String,
    /// The file's name.
    pub name: String,
    /// The KV revision of the desired-state entry in `fleet_rollout_index`.
    pub kv_revision: u64,
    /// Whether the file's selector picks the cluster (with its labels now).
    pub selected: bool,
    /// Indices of the file's `overrides` whose selector picks the cluster, in order of application.
    pub overrides: Vec<usize>,
    /// The parts the file sets up.
    pub parts: Vec<Part>,
}

/// One part's last reported outcome (`None`: never reported).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartView {
    pub part: Part,
    /// Whether the desired state asks for this part.
    pub desired: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<PartObservation>,
}

/// The cluster's last result, whatever it was about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastResult {
    pub kind: String,
    pub status: String,
    pub command_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// One cluster's desired state against its observed state.
/// How many of a cluster's last audit entries `clusters show` prints.
pub const AUDIT_TAIL: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub cluster: String,
    pub labels: BTreeMap<String, String>,
    pub declared: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// The agent's last hello or heartbeat.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<DesiredView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<LastResult>,
    /// Every part, in display order (parts a newer coordinator recorded come last, as `unknown`).
    pub parts: Vec<PartView>,
    /// Recent drift reports, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftReport>,
    pub sync: Verdict,
    /// The cluster's last audit entries (at most [`AUDIT_TAIL`], oldest first), filled by
    /// `clusters::show` from the audit log; empty (and not printed) where there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<proto::audit::AuditEntry>,
}

/// What the desired file asks of a cluster with `labels` (pure). A selector that no longer parses
/// (the file was checked when started; a newer build may read it differently) picks nothing.
pub fn desired_for(
    file: &RolloutFile,
    rollout_id: &str,
    labels: &BTreeMap<String, String>,
) -> (DesiredFor, Vec<usize>) {
    let picks = |selector: &str| gmsa::selector::Selector::parse(selector).is_ok_and(|parsed| parsed.matches(labels));
    let mut parts = vec![Part::GmsaProfile, Part::IdentityGrant, Part::Credspec];
    if file.setup.validate || file.setup.run_workload {
        parts.push(Part::Validation);
    }
    let overrides = (file.overrides.iter().enumerate())
        .filter(|(_, entry)| picks(&entry.selector))
        .map(|(index, _)| index)
        .collect();
    (DesiredFor { rollout_id: rollout_id.to_string(), selected: picks(&file.selector), parts }, overrides)
}

/// The desired state as read: the file, its rollout id and the KV revision.
#[derive(Debug, Clone, Copy)]
pub struct Desired<'a> {
    pub file: &'a RolloutFile,
    pub rollout_id: &'a str,
    pub kv_revision: u64,
}

/// How old a hello may be before the cluster counts as unreachable, and the time now.
#[derive(Debug, Clone, Copy)]
pub struct Judged {
    pub now: OffsetDateTime,
    pub unreachable_after: time::Duration,
}

/// Assembles one cluster's view (pure).
pub fn view_of(
    entry: &ClusterEntry,
    record: Option<&ClusterRecord>,
    desired: Option<Desired<'_>>,
    judged: Judged,
) -> ClusterView {
    let desired_for = desired.map(|desired| {
        let (wanted, overrides) = desired_for(desired.file, desired.rollout_id, &entry.labels);
        let view = DesiredView {
            rollout_id: desired.rollout_id.to_string(),
            name: desired.file.name.clone(),
            kv_revision: desired.kv_revision,
            selected: wanted.selected,
            overrides,
            parts: wanted.parts.clone(),
        };
        (wanted, view)
    });
    let empty = BTreeMap::new();
    let recorded = record.map_or(&empty, |record| &record.parts);
    let drift = record.map_or(&[][..], |record| &record.drift[..]);
    let last_seen = entry.agent.as_ref().map(|agent| agent.last_seen);
    let verdict = sync::decide(&SyncInput {
        desired: desired_for.as_ref().map(|(wanted, _)| wanted),
        parts: recorded,
        drift,
        last_seen,
        now: judged.now,
        unreachable_after: judged.unreachable_after,
    });
    let wanted_parts = desired_for.as_ref().map(|(wanted, _)| wanted.parts.clone()).unwrap_or_default();
    let mut parts: Vec<PartView> = Part::ALL
        .iter()
        .map(|part| PartView { part: *part, desired: wanted_parts.contains(part), last: recorded.get(part).cloned() })
        .collect();
    parts.extend((recorded.iter()).filter(|(part, _)| !Part::ALL.contains(part)).map(|(part, last)| PartView {
        part: *part,
        desired: false,
        last: Some(last.clone()),
    }));
    ClusterView {
        cluster: entry.id.clone(),
        labels: entry.labels.clone(),
        declared: entry.declared,
        agent_version: entry.agent.as_ref().map(|agent| agent.agent_version.clone()),
        last_seen,
        desired: desired_for.map(|(_, view)| view),
        last_result: record.map(|record| LastResult {
            kind: record.last_result.kind.clone(),
            status: record.last_result.status.label().to_string(),
            command_id: record.last_result.command_id.to_string(),
            rollout_id: record.last_result.rollout_id.clone(),
            at: record.last_result.finished_at,
        }),
        parts,
        drift: drift.to_vec(),
        sync: verdict,
        audit: Vec::new(),
    }
}

/// The fleet in one line: how many clusters are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_rollout_id: Option<String>,
    pub clusters: usize,
    pub in_sync: usize,
    pub drifted: usize,
    pub failed: usize,
    pub unreachable: usize,
    pub pending: usize,
    pub not_targeted: usize,
    /// The threshold used for `unreachable`, in seconds.
    pub unreachable_after_secs: i64,
}

/// Counts `views` by state (pure); each cluster counts once, under its worst reason.
pub fn summarize<'v>(
    views: impl IntoIterator<Item = &'v ClusterView>,
    desired_rollout_id: Option<String>,
    unreachable_after: time::Duration,
) -> FleetSummary {
    let mut summary = FleetSummary {
        desired_rollout_id,
        unreachable_after_secs: unreachable_after.whole_seconds(),
        ..FleetSummary::default()
    };
    for view in views {
        summary.clusters += 1;
        let count = match view.sync.state {
            SyncState::InSync => &mut summary.in_sync,
            SyncState::Drifted => &mut summary.drifted,
            SyncState::Failed => &mut summary.failed,
            SyncState::Unreachable => &mut summary.unreachable,
            SyncState::Pending => &mut summary.pending,
            SyncState::NotTargeted => &mut summary.not_targeted,
        };
        *count += 1;
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_file(selector: &str) -> RolloutFile {
        let mut file: RolloutFile = serde_yaml::from_str(
            r#"
name: f
setup:
  vault: {subscription_id: s, resource_group: g, name: v}
  identity: {type: kubelet}
  credspec: {spec_name: s, gmsa_account: g, bindings: []}
overrides:
  - {selector: "ring=0", set: {secret_name: other}}
  - {selector: "ring=1", set: {secret_name: more}}
strategy: {stages: [{name: all}]}
"#,
        )
        .unwrap();
        file.selector = selector.into();
        file
    }

    fn mk_entry(labels: &[(&str, &str)], seen: Option<i64>) -> ClusterEntry {
        ClusterEntry {
            id: "a".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            declared: true,
            agent: seen.map(|secs| proto::AgentInfo {
                schema: proto::version::SchemaVersion::CURRENT,
                cluster: "a".into(),
                agent_version: "t".into(),
                capabilities: vec![],
                labels: BTreeMap::new(),
                started_at: OffsetDateTime::UNIX_EPOCH,
                last_seen: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs),
            }),
        }
    }

    #[test]
    fn the_files_selector_and_overrides_say_whether_and_how_the_cluster_is_picked() {
        let labels: BTreeMap<String, String> = [("ring".to_string(), "0".to_string())].into();
        let (wanted, overrides) = desired_for(&mk_file(""), "r1", &labels);
        assert!(wanted.selected);
        assert_eq!(overrides, [0]);
        assert_eq!(wanted.parts, [Part::GmsaProfile, Part::IdentityGrant, Part::Credspec, Part::Validation]);
        assert!(!desired_for(&mk_file("ring=1"), "r1", &labels).0.selected);
        assert!(!desired_for(&mk_file("not a (selector"), "r1", &labels).0.selected);
    }

    #[test]
    fn a_cluster_never_applied_is_pending_and_the_summary_counts_it_once() {
        let file = mk_file("");
        let judged = Judged {
            now: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(100),
            unreachable_after: time::Duration::minutes(10),
        };
        let desired = Desired { file: &file, rollout_id: "r1", kv_revision: 7 };
        let view = view_of(&mk_entry(&[("ring", "0")], Some(90)), None, Some(desired), judged);
        assert_eq!(view.sync.state, SyncState::Pending);
        assert_eq!(view.desired.as_ref().map(|desired| desired.kv_revision), Some(7));
        assert_eq!(view.parts.len(), Part::ALL.len());
        assert!(view.parts.iter().all(|part| part.last.is_none()));
        let json = serde_json::to_value(&view).unwrap();
        assert!(json.get("audit").is_none(), "the empty audit hook is not printed");
        let unreachable = view_of(&mk_entry(&[], None), None, None, judged);
        let summary = summarize([&view, &unreachable], Some("r1".into()), judged.unreachable_after);
        assert_eq!((summary.clusters, summary.pending, summary.unreachable, summary.in_sync), (2, 1, 1, 0));
        assert_eq!(summary.unreachable_after_secs, 600);
    }
}
