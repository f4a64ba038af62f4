//! Role assignments at any scope: PUT (201; 200 when the same assignment already exists under
//! that name), GET, DELETE, and list with `$filter=atScope()` / `principalId eq '...'`. The same
//! principal + role + scope under a different name is 409 `RoleAssignmentExists`, as in Azure.
//!
//! Modelled on `specification/authorization/resource-manager/Microsoft.Authorization/stable/
//! 2022-04-01/authorization-RoleAssignmentsCalls.json` (RoleAssignments_Create, _Get, _Delete,
//! _ListForScope) and its examples `RoleAssignments_CreateForResource.json`,
//! `RoleAssignments_Get.json`.

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::ArmRequest;
use super::error::{ArmError, ArmResponse, ArmResult};
use crate::config::Operation;
use crate::roles::{BUILT_IN, role_definition_id, role_guid};
use crate::state::{RoleAssignment, State, rfc3339};

const TYPE: &str = "Microsoft.Authorization/roleAssignments";

fn assignment_id(scope: &str, name: &str) -> String {
    format!("{}/providers/Microsoft.Authorization/roleAssignments/{name}", scope.trim_end_matches('/'))
}

/// Seeds an assignment with a generated name; returns its id.
pub(crate) fn seed(state: &mut State, scope: &str, principal_id: &str, role_guid: &str) -> String {
    let name = state.new_guid();
    let subscription = scope.split('/').nth(2).unwrap_or_default().to_string();
    let id = assignment_id(scope, &name);
    state.role_assignments.insert(
        id.to_ascii_lowercase(),
        RoleAssignment {
            id: id.clone(),
            name,
            scope: scope.trim_end_matches('/').to_string(),
            role_definition_id: role_definition_id(&subscription, role_guid),
            principal_id: principal_id.to_string(),
            principal_type: "ServicePrincipal".to_string(),
            description: None,
            created_on: rfc3339(OffsetDateTime::now_utc()),
        },
    );
    id
}

fn render(assignment: &RoleAssignment) -> Value {
    json!({
        "properties": {
            "roleDefinitionId": assignment.role_definition_id,
            "principalId": assignment.principal_id,
            "principalType": assignment.principal_type,
            "scope": assignment.scope,
            "condition": null,
            "conditionVersion": null,
            "createdOn": assignment.created_on,
            "updatedOn": assignment.created_on,
            "createdBy": null,
            "updatedBy": null,
            "delegatedManagedIdentityResourceId": null,
            "description": assignment.description,
        },
        "id": assignment.id,
        "type": TYPE,
        "name": assignment.name,
    })
}

/// RoleAssignments_Create.
pub(crate) fn put(state: &mut State, scope: &str, name: &str, request: &ArmRequest<'_>) -> ArmResult {
    if uuid::Uuid::parse_str(name).is_err() {
        return Err(ArmError::bad_request(
            "InvalidRoleAssignmentId",
            format!("The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."),
        ));
    }
    let body = request.json_body()?;
    let properties = &body["properties"];
    let (Some(role_definition), Some(principal_id)) =
        (properties["roleDefinitionId"].as_str(), properties["principalId"].as_str())
    else {
        return Err(ArmError::bad_request(
            "InvalidCreateRoleAssignmentRequest",
            "The request to create role assignment is invalid: properties.roleDefinitionId and properties.principalId are required.",
        ));
    };
    let Some(guid) = role_guid(role_definition).filter(|guid| BUILT_IN.contains(&guid.as_str())) else {
        return Err(ArmError::bad_request(
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{role_definition}' does not exist."),
        ));
    };
    if !state.principals.contains(&principal_id.to_ascii_lowercase()) {
        return Err(ArmError::bad_request(
            "PrincipalNotFound",
            format!(
                "Principal {principal_id} does not exist in the directory {}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay.",
                state.tenant_id
            ),
        ));
    }
    let scope = scope.trim_end_matches('/');
    let id = assignment_id(scope, name);
    let key = id.to_ascii_lowercase();
    let same_grant = |existing: &RoleAssignment| {
        existing.scope.eq_ignore_ascii_case(scope)
            && existing.principal_id.eq_ignore_ascii_case(principal_id)
            && role_guid(&existing.role_definition_id).as_deref() == Some(guid.as_str())
    };
    if let Some(existing) = state.role_assignments.get(&key) {
        if same_grant(existing) {
            let response = ArmResponse::ok(render(existing));
            state.record("PUT", &id, Operation::RoleAssignmentPut, false, &body);
            return Ok(response);
        }
        return Err(ArmError::bad_request(
            "RoleAssignmentUpdateNotPermitted",
            "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
        ));
    }
    if state.role_assignments.values().any(same_grant) {
        return Err(ArmError::conflict("RoleAssignmentExists", "The role assignment already exists."));
    }
    let assignment = RoleAssignment {
        id: id.clone(),
        name: name.to_string(),
        scope: scope.to_string(),
        role_definition_id: role_definition.to_string(),
        principal_id: principal_id.to_string(),
        principal_type: properties["principalType"].as_str().unwrap_or("ServicePrincipal").to_string(),
        description: properties["description"].as_str().map(str::to_string),
        created_on: rfc3339(OffsetDateTime::now_utc()),
    };
    let mut rendered = render(&assignment);
    rendered["properties"]["createdBy"] = Value::from(request.caller.oid.clone());
    rendered["properties"]["updatedBy"] = Value::from(request.caller.oid.clone());
    state.role_assignments.insert(key, assignment);
    state.record("PUT", &id, Operation::RoleAssignmentPut, true, &body);
    Ok(ArmResponse::json(StatusCode::CREATED, rendered))
}

/// RoleAssignments_Get.
pub(crate) fn get(state: &State, scope: &str, name: &str) -> ArmResult {
    state
        .role_assignments
        .get(&assignment_id(scope, name).to_ascii_lowercase())
        .map(|assignment| ArmResponse::ok(render(assignment)))
        .ok_or_else(|| {
            ArmError::new(
                StatusCode::NOT_FOUND,
                "RoleAssignmentNotFound",
                format!("The role assignment '{name}' is not found."),
            )
        })
}

/// RoleAssignments_Delete: 200 with the deleted assignment, 204 when there was none.
pub(crate) fn delete(state: &mut State, scope: &str, name: &str) -> ArmResult {
    let id = assignment_id(scope, name);
    match state.role_assignments.remove(&id.to_ascii_lowercase()) {
        Some(assignment) => {
            state.record("DELETE", &assignment.id, Operation::RoleAssignmentDelete, true, &Value::Null);
            Ok(ArmResponse::ok(render(&assignment)))
        }
        None => Ok(ArmResponse { status: StatusCode::NO_CONTENT, headers: Vec::new(), body: None }),
    }
}

/// Whether `outer` is `inner` or one of its ancestors, at a segment boundary.
pub(crate) fn covers(outer: &str, inner: &str) -> bool {
    let outer = outer.trim_end_matches('/').to_ascii_lowercase();
    let inner = inner.trim_end_matches('/').to_ascii_lowercase();
    inner == outer || inner.starts_with(&format!("{outer}/"))
}

/// RoleAssignments_ListForScope with the `atScope()` and `principalId eq '{id}'` filters.
pub(crate) fn list(state: &State, scope: &str, request: &ArmRequest<'_>) -> ArmResult {
    let filter = request.query_param("$filter").unwrap_or_default().to_string();
    let at_scope_only = filter.to_ascii_lowercase().contains("atscope()");
    let principal = filter
        .split_once("principalId eq '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(principal, _)| principal.to_ascii_lowercase());
    let value: Vec<Value> = state
        .role_assignments
        .values()
        .filter(|assignment| covers(&assignment.scope, scope) || (!at_scope_only && covers(scope, &assignment.scope)))
        .filter(|assignment| {
            principal.as_ref().is_none_or(|principal| assignment.principal_id.eq_ignore_ascii_case(principal))
        })
        .map(render)
        .collect();
    Ok(ArmResponse::ok(json!({"value": value})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_respects_segment_boundaries() {
        assert!(covers("/subscriptions/s", "/subscriptions/s/resourceGroups/rg"));
        assert!(covers("/subscriptions/S/resourceGroups/RG", "/subscriptions/s/resourcegroups/rg"));
        assert!(!covers("/subscriptions/s/resourceGroups/rg", "/subscriptions/s/resourceGroups/rg2"));
        assert!(!covers("/subscriptions/s/resourceGroups/rg", "/subscriptions/s"));
    }
}
