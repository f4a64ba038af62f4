//! User-assigned managed identities: PUT (201 new, 200 existing; `principalId`/`clientId` are
//! assigned once and kept), GET and DELETE (200 when it existed, 204 when it did not, no body).
//! Each identity becomes an Entra principal that role assignments and access policies may name;
//! deleting it removes the principal too. As in Azure, a delete does not touch what refers to the
//! identity: scale sets keep naming it, role assignments and access policies stay (orphaned).
//!
//! Modelled on `specification/msi/resource-manager/Microsoft.ManagedIdentity/stable/2023-01-31/
//! ManagedIdentity.json` (UserAssignedIdentities_CreateOrUpdate, _Get, _Delete,
//! `UserAssignedIdentityProperties`) and its examples `IdentityCreate.json`, `IdentityGet.json`,
//! `IdentityDelete.json`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ArmRequest;
use super::error::{ArmError, ArmResponse, ArmResult};
use crate::config::Operation;
use crate::state::{Identity, State};

const TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";

pub(crate) fn identity_id(subscription: &str, resource_group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourcegroups/{resource_group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
}

/// Creates an identity (or returns the existing one's id) and registers its principal.
pub(crate) fn create(
    state: &mut State,
    subscription: &str,
    resource_group: &str,
    name: &str,
    location: &str,
) -> String {
    let id = identity_id(subscription, resource_group, name);
    let key = id.to_ascii_lowercase();
    if !state.identities.contains_key(&key) {
        let identity = Identity {
            id: id.clone(),
            name: name.to_string(),
            location: location.to_string(),
            tags: json!({}),
            client_id: state.new_guid(),
            principal_id: state.new_guid(),
        };
        state.principals.insert(identity.principal_id.to_ascii_lowercase());
        state.identities.insert(key, identity);
    }
    id
}

pub(crate) fn render(identity: &Identity, tenant_id: &str) -> Value {
    json!({
        "id": identity.id,
        "name": identity.name,
        "type": TYPE,
        "location": identity.location,
        "tags": identity.tags,
        "properties": {
            "tenantId": tenant_id,
            "principalId": identity.principal_id,
            "clientId": identity.client_id,
            "isolationScope": "None",
        },
    })
}

/// UserAssignedIdentities_Get.
pub(crate) fn get(state: &State, subscription: &str, resource_group: &str, name: &str) -> ArmResult {
    if !state.has_resource_group(subscription, resource_group) {
        return Err(ArmError::resource_group_not_found(resource_group));
    }
    let identity = state
        .identities
        .get(&identity_id(subscription, resource_group, name).to_ascii_lowercase())
        .ok_or_else(|| ArmError::resource_not_found(TYPE, name, resource_group))?;
    Ok(ArmResponse::ok(render(identity, &state.tenant_id)))
}

/// UserAssignedIdentities_CreateOrUpdate.
pub(crate) fn put(
    state: &mut State,
    subscription: &str,
    resource_group: &str,
    name: &str,
    request: &ArmRequest<'_>,
) -> ArmResult {
    if !state.has_resource_group(subscription, resource_group) {
        return Err(ArmError::resource_group_not_found(resource_group));
    }
    let body = request.json_body()?;
    let Some(location) = body["location"].as_str().filter(|location| !location.is_empty()) else {
        return Err(ArmError::bad_request(
            "LocationRequired",
            "The location property is required for this definition.",
        ));
    };
    let key = identity_id(subscription, resource_group, name).to_ascii_lowercase();
    let existed = state.identities.contains_key(&key);
    let id = create(state, subscription, resource_group, name, location);
    let mut changed = !existed;
    if let Some(identity) = state.identities.get_mut(&key) {
        let tags = if body["tags"].is_object() { body["tags"].clone() } else { json!({}) };
        changed |= identity.tags != tags;
        identity.tags = tags;
    }
    state.record("PUT", &id, Operation::IdentityPut, changed, &body);
    let identity = state.identities.get(&key).map(|identity| render(identity, &state.tenant_id)).unwrap_or(Value::Null);
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok(ArmResponse::json(status, identity))
}

/// UserAssignedIdentities_Delete: 200 when the identity existed, 204 when it did not.
pub(crate) fn delete(state: &mut State, subscription: &str, resource_group: &str, name: &str) -> ArmResult {
    if !state.has_resource_group(subscription, resource_group) {
        return Err(ArmError::resource_group_not_found(resource_group));
    }
    let key = identity_id(subscription, resource_group, name).to_ascii_lowercase();
    match state.identities.remove(&key) {
        Some(identity) => {
            state.principals.remove(&identity.principal_id.to_ascii_lowercase());
            state.record("DELETE", &identity.id, Operation::IdentityDelete, true, &Value::Null);
            Ok(ArmResponse { status: StatusCode::OK, headers: Vec::new(), body: None })
        }
        None => Ok(ArmResponse { status: StatusCode::NO_CONTENT, headers: Vec::new(), body: None }),
    }
}
