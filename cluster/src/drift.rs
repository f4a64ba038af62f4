//! Drift: a change someone else made to what gmsa-fleet owns, decided purely from the desired
//! objects and one observation (an object as the watcher saw it, or its deletion).
//!
//! A drift diff reads from gmsa-fleet's state to the cluster's: `before` is what gmsa-fleet
//! applied, `after` is what the object holds now (`None` for a deleted object or field).

use proto::outcome::{FieldChange, StepOutcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::desired::{DesiredObject, ObjectKind, ObjectRef};
use crate::plan::managed_view;

/// What to do when drift is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftPolicy {
    /// Re-apply the desired objects (server-side apply with force), then report.
    Reapply,
    /// Only report; leave the cluster as someone else left it.
    ReportOnly,
}

/// How the object drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftCause {
    /// Managed fields differ from what gmsa-fleet applied.
    Modified,
    /// The object is gone (or no longer carries gmsa-fleet's labels).
    Deleted,
}

/// What was done about a drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "remedy")]
pub enum Remedy {
    /// Policy `ReportOnly`: nothing was written.
    Reported,
    /// Policy `Reapply`: the desired objects were applied again with this outcome.
    Reapplied { outcome: StepOutcome },
    /// Policy `Reapply`, but the re-apply failed.
    ReapplyFailed { error: String },
}

/// One drift, as sent on the agent's channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftEvent {
    pub kind: ObjectKind,
    pub namespace: Option<String>,
    pub name: String,
    pub cause: DriftCause,
    /// From gmsa-fleet's state (`before`) to the cluster's (`after`), paths prefixed by the object.
    pub diff: Vec<FieldChange>,
    pub remedy: Remedy,
}

/// An observation of one managed object by the watcher.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation<'a> {
    /// The object exists with this content.
    Present(&'a Value),
    /// The object was deleted (or left the label selector).
    Absent,
}

/// The drift an observation shows, if any: `None` for objects outside the desired set (pruned
/// leftovers, other owners) and for objects whose managed fields match.
pub fn detect(
    desired: &[DesiredObject],
    object: &ObjectRef,
    observation: Observation<'_>,
) -> Option<(DriftCause, Vec<FieldChange>)> {
    let wanted = desired.iter().find(|candidate| &candidate.object == object)?;
    let prefix = object.diff_prefix();
    match observation {
        Observation::Absent => Some((
            DriftCause::Deleted,
            vec![FieldChange { path: prefix, before: Some(wanted.manifest.clone()), after: None }],
        )),
        Observation::Present(live) => {
            let changes: Vec<FieldChange> = gmsa::json_diff(&wanted.manifest, &managed_view(live, &wanted.manifest))
                .into_iter()
                .map(|change| FieldChange { path: format!("{prefix}{}", change.path), ..change })
                .collect();
            (!changes.is_empty()).then_some((DriftCause::Modified, changes))
        }
    }
}

/// The desired objects not among `seen`: after a watcher's initial listing, these were deleted
/// while nobody was watching.
pub fn missing_after_listing<'a>(
    desired: &'a [DesiredObject],
    kind: ObjectKind,
    seen: &[ObjectRef],
) -> Vec<&'a DesiredObject> {
    desired.iter().filter(|candidate| candidate.object.kind == kind && !seen.contains(&candidate.object)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{desired_objects, tests::mk_request};
    use gmsa::credspec::ApiVersion;
    use serde_json::json;

    fn mk_desired() -> Vec<DesiredObject> {
        desired_objects(&mk_request("aks-gmsa-spec"), ApiVersion::V1).unwrap()
    }

    #[test]
    fn deletion_of_a_desired_object_is_drift_with_the_whole_object_as_before() {
        let desired = mk_desired();
        let binding = desired[2].object.clone();
        let (cause, diff) = detect(&desired, &binding, Observation::Absent).unwrap();
        assert_eq!(cause, DriftCause::Deleted);
        assert_eq!(diff[0].path, binding.diff_prefix());
        assert_eq!(diff[0].before.as_ref(), Some(&desired[2].manifest));
        assert_eq!(diff[0].after, None);
    }

    #[test]
    fn edited_managed_field_is_drift_from_ours_to_theirs() {
        let desired = mk_desired();
        let mut live = desired[1].manifest.clone();
        live["rules"][0]["verbs"] = json!(["use", "get"]);
        live["metadata"]["resourceVersion"] = json!("9");
        let (cause, diff) = detect(&desired, &desired[1].object, Observation::Present(&live)).unwrap();
        assert_eq!(cause, DriftCause::Modified);
        assert_eq!(diff.len(), 1);
        assert_eq!(diff[0].path, "/ClusterRole/aks-gmsa-spec-role/rules");
        assert_eq!(
            diff[0].after,
            Some(
                json!([{"apiGroups": ["windows.k8s.io"], "resources": ["gmsacredentialspecs"], "verbs": ["use", "get"], "resourceNames": ["aks-gmsa-spec"]}])
            )
        );
    }

    #[test]
    fn unmanaged_changes_and_objects_outside_the_set_are_not_drift() {
        let desired = mk_desired();
        let mut live = desired[0].manifest.clone();
        live["metadata"]["annotations"] = json!({"note": "added by an operator"});
        assert_eq!(detect(&desired, &desired[0].object, Observation::Present(&live)), None);
        let leftover = ObjectRef { name: "old-spec".into(), ..desired[0].object.clone() };
        assert_eq!(detect(&desired, &leftover, Observation::Absent), None);
    }

    #[test]
    fn objects_missing_from_the_initial_listing_are_reported() {
        let desired = mk_desired();
        let missing = missing_after_listing(&desired, ObjectKind::RoleBinding, &[]);
        assert_eq!(missing.len(), 1);
        assert!(missing_after_listing(&desired, ObjectKind::CredSpec, &[desired[0].object.clone()]).is_empty());
    }
}
