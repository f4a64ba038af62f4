//! Steps `identity-detach` and `identity-delete`: the reverse of `identity-attach`
//! (`Remove-GMSAManagedIdentity` and the scale-set half of the module's revoke).
//!
//! `identity-detach` — expected flow: GET the cluster → list the node resource group's scale sets
//! → for each Windows pool's scale set whose `identity.userAssignedIdentities` names the identity
//! (case-insensitively), PATCH `identity` with `{id: null}` ([`detach_patch`]) and follow the
//! operation. Per the VMSS spec a `null` value removes one identity and the others stay; when it
//! was the last user-assigned identity the type becomes `None` (or `SystemAssigned` when a
//! system identity is on), since `UserAssigned` with an empty map is invalid.
//!
//! `identity-delete` — GET the identity; 404 → `unchanged`; else `DELETE` (200, or 204 when it
//! vanished meanwhile). Azure does not detach a deleted identity from scale sets: detach first.
//!
//! Guarantees: only the named identity is touched; in [`Mode::DryRun`] nothing is written and
//! the diff is reported as `planned`; a second run finds nothing to do and is `unchanged`.

use crate::arm::ArmClient;
use crate::config::AzureConfig;
use crate::error::{Error, Operation};
use crate::gmsa_profile::windows_node_pools;
use crate::host_identity::{cluster_and_scale_sets, patch_identity, scale_sets_of_pools};
use crate::resource::{ClusterRef, HostIdentityRef};
use azure_core::http::Method;
use proto::outcome::{FieldChange, Mode, StepOutcome};
use serde_json::{Map, Value, json};

/// The step name reported for host identity detachment.
pub const STEP_IDENTITY_DETACH: &str = "identity-detach";

/// The step name reported for host identity deletion.
pub const STEP_IDENTITY_DELETE: &str = "identity-delete";

/// The `identity` to PATCH so `identity_id` is no longer attached, or `None` when it is not.
pub fn detach_patch(current: Option<&Value>, identity_id: &str) -> Option<Value> {
    let assigned = current.and_then(|identity| identity.get("userAssignedIdentities")).and_then(Value::as_object)?;
    let attached_as = assigned.keys().find(|key| key.eq_ignore_ascii_case(identity_id))?;
    let has_system = current
        .and_then(|identity| identity.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.to_ascii_lowercase().contains("systemassigned"));
    let others_remain = assigned.keys().any(|key| !key.eq_ignore_ascii_case(identity_id));
    let patch = match (others_remain, has_system) {
        (true, true) => json!({"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {attached_as: null}}),
        (true, false) => json!({"type": "UserAssigned", "userAssignedIdentities": {attached_as: null}}),
        (false, true) => json!({"type": "SystemAssigned"}),
        (false, false) => json!({"type": "None"}),
    };
    Some(patch)
}

/// Detaches the identity from every Windows pool's scale set; see the module docs.
pub(crate) async fn detach(
    arm: &ArmClient,
    config: &AzureConfig,
    cluster: &ClusterRef,
    identity_ref: &HostIdentityRef,
    mode: Mode,
) -> Result<StepOutcome, Error> {
    let identity_id = identity_ref.id();
    let (cluster_body, scale_sets) = cluster_and_scale_sets(arm, config, cluster, Operation::DetachIdentity).await?;
    let pools: Vec<&str> = windows_node_pools(&cluster_body).collect();
    let mut diff = Vec::new();
    let mut detached_from = Vec::new();
    for scale_set in scale_sets_of_pools(&scale_sets, &pools) {
        let Some(patch) = detach_patch(scale_set.identity.as_ref(), &identity_id) else { continue };
        if mode.applies() {
            patch_identity(arm, config, Operation::DetachIdentity, scale_set, patch).await?;
            tracing::info!(scale_set = %scale_set.id, identity = %identity_id, "detached host identity");
        }
        detached_from.push(scale_set.name.clone());
        diff.push(FieldChange {
            path: format!("/virtualMachineScaleSets/{}/identity/userAssignedIdentities/{identity_id}", scale_set.name),
            before: Some(json!({})),
            after: None,
        });
    }
    let observed = json!({"identity": identity_id, "scaleSets": detached_from});
    Ok(StepOutcome::in_mode(mode, STEP_IDENTITY_DETACH, diff, observed))
}

/// Deletes the user-assigned identity; see the module docs.
pub(crate) async fn delete(
    arm: &ArmClient,
    config: &AzureConfig,
    identity_ref: &HostIdentityRef,
    mode: Mode,
) -> Result<StepOutcome, Error> {
    let id = identity_ref.id();
    let api_version = &config.api_versions.managed_identity;
    let observed = json!({"identity": id});
    let existing = arm.get(Operation::DeleteIdentity, &id, api_version).await?;
    if existing.status == 404 {
        return Ok(StepOutcome::unchanged(STEP_IDENTITY_DELETE, observed));
    }
    let existing = existing.into_success(Operation::DeleteIdentity, &id)?;
    let body = existing.json_value(Operation::DeleteIdentity, &id)?;
    let field = |name: &str| body.pointer(&format!("/properties/{name}")).cloned().unwrap_or(Value::Null);
    let mut before = Map::new();
    before.insert("location".to_string(), body.get("location").cloned().unwrap_or(Value::Null));
    before.insert("principalId".to_string(), field("principalId"));
    before.insert("clientId".to_string(), field("clientId"));
    if mode.applies() {
        let url = arm.url(&id, api_version);
        arm.send(Operation::DeleteIdentity, &id, Method::Delete, url, None, None)
            .await?
            .into_success(Operation::DeleteIdentity, &id)?;
        tracing::info!(identity = %id, "deleted user-assigned identity");
    }
    let change = FieldChange {
        path: format!("/userAssignedIdentities/{}", identity_ref.name),
        before: Some(Value::Object(before)),
        after: None,
    };
    Ok(StepOutcome::in_mode(mode, STEP_IDENTITY_DELETE, vec![change], observed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/gmsa";
    const KUBELET: &str =
        "/subscriptions/s/resourcegroups/mc/providers/Microsoft.ManagedIdentity/userAssignedIdentities/k";

    #[test]
    fn detaching_one_of_several_nulls_only_it_under_its_own_casing() {
        let current = json!({"type": "UserAssigned",
            "userAssignedIdentities": {ID.to_uppercase(): {"principalId": "p"}, KUBELET: {"principalId": "k"}}});
        let patch = detach_patch(Some(&current), ID).unwrap();
        assert_eq!(patch, json!({"type": "UserAssigned", "userAssignedIdentities": {ID.to_uppercase(): null}}));
        let with_system =
            json!({"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {ID: {}, KUBELET: {}}});
        assert_eq!(detach_patch(Some(&with_system), ID).unwrap()["type"], "SystemAssigned, UserAssigned");
    }

    #[test]
    fn detaching_the_last_user_assigned_identity_changes_the_type() {
        let only = json!({"type": "UserAssigned", "userAssignedIdentities": {ID: {}}});
        assert_eq!(detach_patch(Some(&only), ID).unwrap(), json!({"type": "None"}));
        let with_system = json!({"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {ID: {}}});
        assert_eq!(detach_patch(Some(&with_system), ID).unwrap(), json!({"type": "SystemAssigned"}));
    }

    #[test]
    fn nothing_to_patch_when_not_attached() {
        let other = json!({"type": "UserAssigned", "userAssignedIdentities": {KUBELET: {}}});
        assert_eq!(detach_patch(Some(&other), ID), None);
        assert_eq!(detach_patch(Some(&json!({"type": "SystemAssigned"})), ID), None);
        assert_eq!(detach_patch(None, ID), None);
    }
}
