//! VM scale sets in a node resource group, reduced to what gMSA needs: list (to find a pool's
//! scale set by its `aks-managed-poolName` tag), GET, and identity updates by PATCH or PUT
//! (`identity.userAssignedIdentities`: in PATCH a `{}` value attaches an identity and `null`
//! detaches it; in PUT the map is the new set). Answers are synchronous 200 `Succeeded`.
//!
//! Modelled on `specification/compute/resource-manager/Microsoft.Compute/ComputeRP/stable/
//! 2024-07-01/virtualMachineScaleSet.json` (VirtualMachineScaleSets_Get, _List, _Update,
//! _CreateOrUpdate, `VirtualMachineScaleSetIdentity`).

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::ArmRequest;
use super::error::{ArmError, ArmResponse, ArmResult};
use super::managed_clusters::normalize_etag;
use crate::config::Operation;
use crate::seed::OsType;
use crate::state::{ScaleSet, State};

const TYPE: &str = "Microsoft.Compute/virtualMachineScaleSets";

pub(crate) fn scale_set_id(subscription: &str, resource_group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}"
    )
}

/// Seeds a pool's scale set; returns its id.
#[allow(clippy::too_many_arguments)]
pub(crate) fn create(
    state: &mut State,
    subscription: &str,
    resource_group: &str,
    name: &str,
    location: &str,
    pool_name: &str,
    os_type: OsType,
    capacity: u32,
) -> String {
    let id = scale_set_id(subscription, resource_group, name);
    let scale_set = ScaleSet {
        id: id.clone(),
        name: name.to_string(),
        location: location.to_string(),
        tags: json!({"aks-managed-poolName": pool_name, "aks-managed-orchestrator": "Kubernetes"}),
        os_type: os_type.as_str().to_string(),
        capacity,
        system_assigned: false,
        user_assigned: BTreeSet::new(),
        etag: format!("\"{}\"", 1),
    };
    state.scale_sets.insert(id.to_ascii_lowercase(), scale_set);
    id
}

fn render(state: &State, scale_set: &ScaleSet) -> Value {
    let user_assigned: Map<String, Value> = scale_set
        .user_assigned
        .iter()
        .map(|id| {
            let identity = state.identities.get(&id.to_ascii_lowercase());
            let value = json!({
                "principalId": identity.map(|identity| identity.principal_id.clone()),
                "clientId": identity.map(|identity| identity.client_id.clone()),
            });
            (id.clone(), value)
        })
        .collect();
    let identity_type = match (scale_set.system_assigned, !user_assigned.is_empty()) {
        (true, true) => "SystemAssigned, UserAssigned",
        (true, false) => "SystemAssigned",
        (false, true) => "UserAssigned",
        (false, false) => "None",
    };
    let mut identity = json!({"type": identity_type});
    if !user_assigned.is_empty() {
        identity["userAssignedIdentities"] = Value::Object(user_assigned);
    }
    let prefix = scale_set.name.trim_end_matches("-vmss");
    json!({
        "id": scale_set.id,
        "name": scale_set.name,
        "type": TYPE,
        "location": scale_set.location,
        "tags": scale_set.tags,
        "etag": scale_set.etag,
        "sku": {"name": "Standard_D4s_v3", "tier": "Standard", "capacity": scale_set.capacity},
        "identity": identity,
        "properties": {
            "provisioningState": "Succeeded",
            "orchestrationMode": "Uniform",
            "overprovision": false,
            "virtualMachineProfile": {
                "osProfile": {"computerNamePrefix": prefix, "adminUsername": "azureuser"},
                "storageProfile": {"osDisk": {"osType": scale_set.os_type, "createOption": "FromImage"}},
            },
        },
    })
}

/// VirtualMachineScaleSets_List (one resource group).
pub(crate) fn list(state: &State, subscription: &str, resource_group: &str) -> ArmResult {
    if !state.has_resource_group(subscription, resource_group) {
        return Err(ArmError::resource_group_not_found(resource_group));
    }
    let prefix = scale_set_id(subscription, resource_group, "").to_ascii_lowercase();
    let value: Vec<Value> = state
        .scale_sets
        .iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .map(|(_, scale_set)| render(state, scale_set))
        .collect();
    Ok(ArmResponse::ok(json!({"value": value})))
}

/// VirtualMachineScaleSets_Get.
pub(crate) fn get(state: &State, subscription: &str, resource_group: &str, name: &str) -> ArmResult {
    let scale_set = find(state, subscription, resource_group, name)?;
    Ok(ArmResponse::ok(render(state, scale_set)))
}

fn find<'a>(state: &'a State, subscription: &str, resource_group: &str, name: &str) -> Result<&'a ScaleSet, ArmError> {
    if !state.has_resource_group(subscription, resource_group) {
        return Err(ArmError::resource_group_not_found(resource_group));
    }
    state
        .scale_sets
        .get(&scale_set_id(subscription, resource_group, name).to_ascii_lowercase())
        .ok_or_else(|| ArmError::resource_not_found(TYPE, name, resource_group))
}

/// VirtualMachineScaleSets_Update (PATCH) and the identity part of _CreateOrUpdate (PUT).
pub(crate) fn update(
    state: &mut State,
    subscription: &str,
    resource_group: &str,
    name: &str,
    request: &ArmRequest<'_>,
) -> ArmResult {
    let current = find(state, subscription, resource_group, name)?.clone();
    if let Some(if_match) = request.header("if-match")
        && normalize_etag(if_match) != "*"
        && normalize_etag(if_match) != normalize_etag(&current.etag)
    {
        return Err(ArmError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            format!(
                "The etag '{if_match}' provided in the If-Match header does not match the current etag '{}'.",
                current.etag
            ),
        ));
    }
    let body = request.json_body()?;
    let is_patch = request.method.as_str() == "PATCH";
    let (system_assigned, user_assigned) = apply_identity(state, &current, &body["identity"], is_patch)?;
    let changed = system_assigned != current.system_assigned || user_assigned != current.user_assigned;
    let key = current.id.to_ascii_lowercase();
    if let Some(scale_set) = state.scale_sets.get_mut(&key) {
        scale_set.system_assigned = system_assigned;
        scale_set.user_assigned = user_assigned;
        if changed {
            let generation = normalize_etag(&scale_set.etag).parse::<u64>().unwrap_or(1) + 1;
            scale_set.etag = format!("\"{generation}\"");
        }
    }
    let method = request.method.as_str().to_string();
    state.record(&method, &current.id, Operation::ScaleSetUpdate, changed, &body);
    let scale_set = state.scale_sets.get(&key).map(|scale_set| render(state, scale_set)).unwrap_or(Value::Null);
    Ok(ArmResponse::ok(scale_set))
}

/// The identity set after applying `identity` from a request body.
fn apply_identity(
    state: &State,
    current: &ScaleSet,
    identity: &Value,
    is_patch: bool,
) -> Result<(bool, BTreeSet<String>), ArmError> {
    if identity.is_null() {
        return Ok((current.system_assigned, current.user_assigned.clone()));
    }
    let identity_type = identity["type"].as_str().unwrap_or_default().to_ascii_lowercase();
    let wants_system = identity_type.contains("systemassigned");
    let wants_user = identity_type.contains("userassigned");
    if identity_type.is_empty() || (identity_type != "none" && !wants_system && !wants_user) {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!("The value '{}' of parameter 'identity.type' is invalid.", identity["type"]),
        ));
    }
    let mut user_assigned = if is_patch { current.user_assigned.clone() } else { BTreeSet::new() };
    if let Some(requested) = identity["userAssignedIdentities"].as_object() {
        for (id, value) in requested {
            if value.is_null() {
                user_assigned.retain(|existing| !existing.eq_ignore_ascii_case(id));
                continue;
            }
            let Some(found) = state.identities.get(&id.to_ascii_lowercase()) else {
                return Err(ArmError::bad_request(
                    "FailedIdentityOperation",
                    format!(
                        "Identity operation for resource '{}' failed: the user-assigned identity '{id}' was not found.",
                        current.id
                    ),
                ));
            };
            user_assigned.retain(|existing| !existing.eq_ignore_ascii_case(id));
            user_assigned.insert(found.id.clone());
        }
    } else if wants_user && !is_patch {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            "Parameter 'identity.userAssignedIdentities' is required when identity type includes UserAssigned.",
        ));
    }
    if !wants_user {
        user_assigned.clear();
    }
    Ok((wants_system, user_assigned))
}
