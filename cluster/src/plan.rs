//! The pure decisions of an apply: which desired objects differ from what the cluster holds
//! (compared on the fields gmsa-fleet manages only), which must be recreated instead of
//! patched, which refuse because someone else owns the name, and which labelled leftovers of a
//! previous apply to prune.
//!
//! **Guarantee:** nothing without both gmsa-fleet labels of this owner is ever planned for
//! deletion, and an object with the right name but without them is never overwritten.

use std::collections::{BTreeMap, BTreeSet};

use proto::outcome::FieldChange;
use serde_json::{Map, Value};

use crate::desired::{DesiredObject, MANAGED_BY_KEY, MANAGED_BY_VALUE, OWNER_KEY, ObjectKind, ObjectRef};

/// Projects `live` onto the shape of `desired`: keeps only the keys `desired` has, recursively
/// through objects (arrays and scalars are taken whole, as server-side apply replaces atomic
/// lists whole). Server-populated fields (`uid`, `managedFields`, `status`) and labels or
/// annotations added by others thereby drop out of the comparison.
pub fn managed_view(live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(live_map), Value::Object(desired_map)) => {
            let mut view = Map::new();
            for (key, desired_child) in desired_map {
                if let Some(live_child) = live_map.get(key) {
                    view.insert(key.clone(), managed_view(live_child, desired_child));
                }
            }
            Value::Object(view)
        }
        (live, _) => live.clone(),
    }
}

/// The diff from `live` (or absence) to `desired` on managed fields, with paths prefixed by the
/// object's identity (`/ClusterRole/x-role/rules`). A missing object is one change at its prefix.
pub fn object_diff(object: &ObjectRef, live: Option<&Value>, desired: &Value) -> Vec<FieldChange> {
    let prefix = object.diff_prefix();
    match live {
        None => vec![FieldChange { path: prefix, before: None, after: Some(desired.clone()) }],
        Some(live) => gmsa::json_diff(&managed_view(live, desired), desired)
            .into_iter()
            .map(|change| FieldChange { path: format!("{prefix}{}", change.path), ..change })
            .collect(),
    }
}

/// Whether a live object carries gmsa-fleet's labels, and for which owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Labelled managed-by gmsa-fleet with this owner.
    Ours,
    /// Labelled managed-by gmsa-fleet, another owner.
    OtherOwner(String),
    /// Not labelled managed-by gmsa-fleet.
    Foreign,
}

/// Reads the ownership labels of a live object.
pub fn ownership(live: &Value, owner: &str) -> Ownership {
    let labels = &live["metadata"]["labels"];
    if labels[MANAGED_BY_KEY].as_str() != Some(MANAGED_BY_VALUE) {
        return Ownership::Foreign;
    }
    match labels[OWNER_KEY].as_str() {
        Some(found) if found == owner => Ownership::Ours,
        Some(found) => Ownership::OtherOwner(found.to_string()),
        None => Ownership::OtherOwner(String::new()),
    }
}

/// One write the apply will make.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub desired: DesiredObject,
    /// The managed fields that change, prefixed by the object's identity.
    pub diff: Vec<FieldChange>,
    /// Delete and create instead of apply: a RoleBinding's `roleRef` is immutable, so the API
    /// server rejects an update that changes it.
    pub recreate: bool,
}

/// An object whose name gmsa-fleet wants but which it does not own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameConflict {
    pub object: ObjectRef,
    pub ownership: Ownership,
}

/// What an apply will do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApplyPlan {
    pub writes: Vec<Write>,
    /// Labelled objects of this owner that the desired set no longer contains.
    pub prunes: Vec<(ObjectRef, Value)>,
    /// Desired names held by objects gmsa-fleet does not own; the apply refuses all writes.
    pub conflicts: Vec<NameConflict>,
}

impl ApplyPlan {
    /// The step diff: writes' field changes, then one removal per pruned object.
    pub fn diff(&self) -> Vec<FieldChange> {
        let mut diff: Vec<FieldChange> = self.writes.iter().flat_map(|write| write.diff.clone()).collect();
        for (object, live) in &self.prunes {
            diff.push(FieldChange { path: object.diff_prefix(), before: Some(live.clone()), after: None });
        }
        diff
    }

    /// True when nothing is to be written or deleted.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.prunes.is_empty()
    }
}

/// What the cluster holds, as read before an apply.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    /// The live object at each desired identity, if any.
    pub at_desired: BTreeMap<ObjectRef, Value>,
    /// Every object the owner selector lists (all managed kinds, all namespaces).
    pub labelled: BTreeMap<ObjectRef, Value>,
}

/// Decides writes, prunes and conflicts.
pub fn plan_apply(desired: &[DesiredObject], live: &LiveState, owner: &str) -> ApplyPlan {
    let mut plan = ApplyPlan::default();
    let wanted: BTreeSet<&ObjectRef> = desired.iter().map(|d| &d.object).collect();
    for desired_object in desired {
        let live_object = live.at_desired.get(&desired_object.object);
        if let Some(live_object) = live_object {
            let found = ownership(live_object, owner);
            if found != Ownership::Ours {
                plan.conflicts.push(NameConflict { object: desired_object.object.clone(), ownership: found });
                continue;
            }
        }
        let diff = object_diff(&desired_object.object, live_object, &desired_object.manifest);
        if diff.is_empty() {
            continue;
        }
        let role_ref_path = format!("{}/roleRef", desired_object.object.diff_prefix());
        let recreate = desired_object.object.kind == ObjectKind::RoleBinding
            && live_object.is_some()
            && diff.iter().any(|change| change.path.starts_with(&role_ref_path));
        plan.writes.push(Write { desired: desired_object.clone(), diff, recreate });
    }
    for (object, live_object) in &live.labelled {
        if !wanted.contains(object) && ownership(live_object, owner) == Ownership::Ours {
            plan.prunes.push((object.clone(), live_object.clone()));
        }
    }
    // Delete bindings before the role and the role before the spec: the reverse of apply order.
    plan.prunes.sort_by(|a, b| b.0.cmp(&a.0));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{desired_objects, tests::mk_request};
    use gmsa::credspec::ApiVersion;
    use serde_json::json;

    fn mk_live(desired: &DesiredObject) -> Value {
        let mut live = desired.manifest.clone();
        live["metadata"]["uid"] = json!("1234");
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["managedFields"] = json!([{"manager": "gmsa-fleet"}]);
        live["metadata"]["labels"]["team"] = json!("someone-else");
        live
    }

    fn mk_state(objects: &[DesiredObject]) -> LiveState {
        let mut state = LiveState::default();
        for object in objects {
            state.at_desired.insert(object.object.clone(), mk_live(object));
            state.labelled.insert(object.object.clone(), mk_live(object));
        }
        state
    }

    #[test]
    fn server_fields_and_foreign_labels_are_not_differences() {
        let desired = desired_objects(&mk_request("aks-gmsa-spec"), ApiVersion::V1).unwrap();
        let plan = plan_apply(&desired, &mk_state(&desired), "webapp");
        assert!(plan.is_empty(), "{plan:?}");
        assert!(plan.conflicts.is_empty());
    }

    #[test]
    fn missing_objects_are_created_with_one_change_each() {
        let desired = desired_objects(&mk_request("aks-gmsa-spec"), ApiVersion::V1).unwrap();
        let plan = plan_apply(&desired, &LiveState::default(), "webapp");
        assert_eq!(plan.writes.len(), 3);
        assert!(plan.writes.iter().all(|write| write.diff.len() == 1 && !write.recreate));
    }

    #[test]
    fn one_changed_input_is_exactly_one_field_change() {
        let before = desired_objects(&mk_request("aks-gmsa-spec"), ApiVersion::V1).unwrap();
        let mut request = mk_request("aks-gmsa-spec");
        request.credspec.domain_sid = gmsa::credspec::DomainSid::parse("S-1-5-21-1-2-3").unwrap();
        let after = desired_objects(&request, ApiVersion::V1).unwrap();
        let plan = plan_apply(&after, &mk_state(&before), "webapp");
        let diff = plan.diff();
        let paths: Vec<&str> = diff.iter().map(|change| change.path.as_str()).collect();
        assert_eq!(paths, ["/GMSACredentialSpec/aks-gmsa-spec/credspec/DomainJoinConfig/Sid"]);
    }

    #[test]
    fn rename_prunes_only_this_owners_labelled_leftovers_in_reverse_order() {
        let old = desired_objects(&mk_request("old-spec"), ApiVersion::V1).unwrap();
        let new = desired_objects(&mk_request("new-spec"), ApiVersion::V1).unwrap();
        let mut state = mk_state(&old);
        let mut other_owner = mk_live(&old[1]);
        other_owner["metadata"]["labels"][OWNER_KEY] = json!("other");
        let other_ref = ObjectRef { name: "other-role".into(), ..old[1].object.clone() };
        state.labelled.insert(other_ref, other_owner);
        let plan = plan_apply(&new, &state, "webapp");
        assert_eq!(plan.writes.len(), 3);
        let pruned: Vec<String> = plan.prunes.iter().map(|(object, _)| object.to_string()).collect();
        assert_eq!(
            pruned,
            [
                "RoleBinding/default/allow-default-svc-account-read-on-old-spec",
                "ClusterRole/old-spec-role",
                "GMSACredentialSpec/old-spec"
            ]
        );
    }

    #[test]
    fn unlabelled_or_other_owner_object_at_a_desired_name_is_a_conflict() {
        let desired = desired_objects(&mk_request("aks-gmsa-spec"), ApiVersion::V1).unwrap();
        let mut state = LiveState::default();
        let mut foreign = desired[1].manifest.clone();
        foreign["metadata"]["labels"] = json!({});
        state.at_desired.insert(desired[1].object.clone(), foreign);
        let mut other = desired[0].manifest.clone();
        other["metadata"]["labels"][OWNER_KEY] = json!("payroll");
        state.at_desired.insert(desired[0].object.clone(), other);
        let plan = plan_apply(&desired, &state, "webapp");
        assert_eq!(
            plan.conflicts.iter().map(|c| c.ownership.clone()).collect::<Vec<_>>(),
            [Ownership::OtherOwner("payroll".into()), Ownership::Foreign]
        );
    }

    #[test]
    fn changed_role_ref_recreates_the_binding() {
        let desired = desired_objects(&mk_request("aks-gmsa-spec"), ApiVersion::V1).unwrap();
        let mut state = mk_state(&desired);
        let binding = desired[2].object.clone();
        state.at_desired.get_mut(&binding).unwrap()["roleRef"]["name"] = json!("someone-elses-role");
        let plan = plan_apply(&desired, &state, "webapp");
        assert_eq!(plan.writes.len(), 1);
        assert!(plan.writes[0].recreate);
        let mut state = mk_state(&desired);
        state.at_desired.get_mut(&binding).unwrap()["subjects"] = json!([]);
        assert!(!plan_apply(&desired, &state, "webapp").writes[0].recreate);
    }
}
