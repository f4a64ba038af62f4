//! The pure decisions of a teardown: which of the objects found for one spec and owner
//! gmsa-fleet may delete, which it must leave (and why), in which order, and how each removal
//! appears in the step diff.
//!
//! **Guarantee:** an object is planned for deletion only when it carries both gmsa-fleet labels
//! of this owner *and* its managedFields show that field manager `gmsa-fleet` wrote it, which is
//! exactly how `apply` marks what it creates. Everything else found at our names is left and
//! reported with the reason.

use std::collections::BTreeMap;

use proto::outcome::FieldChange;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::desired::{FIELD_MANAGER, ObjectRef};
use crate::plan::{Ownership, ownership};

/// Why a found object is not deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
pub enum LeftReason {
    /// No `managed-by=gmsa-fleet` label: someone else's object at one of our names.
    NotOurs,
    /// gmsa-fleet's label for another owner (another rollout's object).
    OtherOwner(String),
    /// Our labels, but no managedFields entry of field manager `gmsa-fleet` (labels copied by
    /// someone else, or managedFields stripped): not provably written by gmsa-fleet.
    NotWrittenByGmsaFleet,
}

impl std::fmt::Display for LeftReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeftReason::NotOurs => f.write_str("not ours"),
            LeftReason::OtherOwner(owner) => write!(f, "owned by {owner:?}"),
            LeftReason::NotWrittenByGmsaFleet => {
                write!(f, "labelled ours but not written by field manager {FIELD_MANAGER}")
            }
        }
    }
}

/// What a teardown will do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemovePlan {
    /// Objects to delete, RoleBindings first, then the ClusterRole, then the credspec.
    pub deletes: Vec<(ObjectRef, Value)>,
    /// Objects found at our names that stay, with the reason.
    pub left: Vec<(ObjectRef, LeftReason)>,
}

impl RemovePlan {
    /// One removal per deleted object: path = the object's diff prefix, before = its summary.
    pub fn diff(&self) -> Vec<FieldChange> {
        self.deletes
            .iter()
            .map(|(object, live)| FieldChange { path: object.diff_prefix(), before: Some(summary(live)), after: None })
            .collect()
    }
}

/// True when a managedFields entry names field manager `gmsa-fleet`.
pub fn written_by_gmsa_fleet(live: &Value) -> bool {
    live["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|entry| entry["manager"].as_str() == Some(FIELD_MANAGER))
}

/// The object as a diff shows it: kind, apiVersion, name, namespace, labels and content (rules,
/// subjects, roleRef, credspec), without server metadata or status.
pub fn summary(live: &Value) -> Value {
    let mut summary = Map::new();
    for (key, value) in live.as_object().into_iter().flatten() {
        match key.as_str() {
            "status" => {}
            "metadata" => {
                let mut metadata = Map::new();
                for field in ["name", "namespace", "labels"] {
                    if let Some(value) = value.get(field) {
                        metadata.insert(field.to_string(), value.clone());
                    }
                }
                summary.insert(key.clone(), Value::Object(metadata));
            }
            _ => {
                summary.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(summary)
}

/// Decides deletes and leftovers among `found` (the objects at our names and those the owner
/// selector listed).
pub fn plan_remove(found: &BTreeMap<ObjectRef, Value>, owner: &str) -> RemovePlan {
    let mut plan = RemovePlan::default();
    for (object, live) in found {
        match ownership(live, owner) {
            Ownership::Ours if written_by_gmsa_fleet(live) => plan.deletes.push((object.clone(), live.clone())),
            Ownership::Ours => plan.left.push((object.clone(), LeftReason::NotWrittenByGmsaFleet)),
            Ownership::OtherOwner(other) => plan.left.push((object.clone(), LeftReason::OtherOwner(other))),
            Ownership::Foreign => plan.left.push((object.clone(), LeftReason::NotOurs)),
        }
    }
    // Bindings before the role and the role before the spec: the reverse of apply order.
    plan.deletes.sort_by(|a, b| b.0.cmp(&a.0));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{MANAGED_BY_KEY, OWNER_KEY, desired_objects, tests::mk_request};
    use gmsa::credspec::ApiVersion;
    use serde_json::json;

    fn mk_found() -> BTreeMap<ObjectRef, Value> {
        desired_objects(&mk_request("aks-gmsa-spec"), ApiVersion::V1)
            .unwrap()
            .into_iter()
            .map(|desired| {
                let mut live = desired.manifest;
                live["metadata"]["uid"] = json!("u-1");
                live["metadata"]["managedFields"] = json!([{"manager": "gmsa-fleet", "operation": "Apply"}]);
                (desired.object, live)
            })
            .collect()
    }

    #[test]
    fn our_objects_are_deleted_bindings_first_with_summaries_in_the_diff() {
        let plan = plan_remove(&mk_found(), "webapp");
        let order: Vec<String> = plan.deletes.iter().map(|(object, _)| object.to_string()).collect();
        assert_eq!(
            order,
            [
                "RoleBinding/default/allow-default-svc-account-read-on-aks-gmsa-spec",
                "ClusterRole/aks-gmsa-spec-role",
                "GMSACredentialSpec/aks-gmsa-spec"
            ]
        );
        assert!(plan.left.is_empty());
        let diff = plan.diff();
        assert_eq!(diff[1].path, "/ClusterRole/aks-gmsa-spec-role");
        assert_eq!(diff[1].after, None);
        let before = diff[1].before.as_ref().unwrap();
        assert_eq!(before["rules"][0]["resourceNames"], json!(["aks-gmsa-spec"]));
        assert_eq!(before["metadata"]["labels"][OWNER_KEY], "webapp");
        assert!(before["metadata"].get("managedFields").is_none() && before["metadata"].get("uid").is_none());
    }

    #[test]
    fn unlabelled_other_owner_and_unwritten_objects_are_left_with_their_reason() {
        let mut found = mk_found();
        let mut keys = found.keys().cloned();
        let (spec, role, binding) = (keys.next().unwrap(), keys.next().unwrap(), keys.next().unwrap());
        found.get_mut(&role).unwrap()["metadata"]["labels"] = json!({});
        found.get_mut(&spec).unwrap()["metadata"]["labels"][OWNER_KEY] = json!("payroll");
        found.get_mut(&binding).unwrap()["metadata"]["managedFields"] = json!([{"manager": "kubectl"}]);
        let plan = plan_remove(&found, "webapp");
        assert!(plan.deletes.is_empty(), "{plan:?}");
        let reasons: BTreeMap<ObjectRef, LeftReason> = plan.left.into_iter().collect();
        assert_eq!(reasons[&role], LeftReason::NotOurs);
        assert_eq!(reasons[&spec], LeftReason::OtherOwner("payroll".into()));
        assert_eq!(reasons[&binding], LeftReason::NotWrittenByGmsaFleet);
        assert_eq!(LeftReason::NotOurs.to_string(), "not ours");
        let mut helm = mk_found();
        helm.get_mut(&role).unwrap()["metadata"]["labels"][MANAGED_BY_KEY] = json!("Helm");
        assert_eq!(plan_remove(&helm, "webapp").left, [(role, LeftReason::NotOurs)]);
    }
}
