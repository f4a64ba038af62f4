//! Key Vault management plane: vaults GET/PUT/PATCH (`enableRbacAuthorization`, `accessPolicies`,
//! `vaultUri`, `tenantId`, `sku`) and `accessPolicies/{add|replace|remove}`.
//!
//! Modelled on `specification/keyvault/resource-manager/Microsoft.KeyVault/stable/2023-07-01/
//! keyvault.json` (Vaults_Get, Vaults_CreateOrUpdate, Vaults_Update, Vaults_UpdateAccessPolicy,
//! `AccessPolicyEntry`, `Permissions`) and its examples `getVault.json`, `createVault.json`,
//! `updateAccessPoliciesAdd.json`. A new vault gets its own data-plane listener, so `vaultUri`
//! is `https://127.0.0.1:<port>/`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ArmRequest;
use super::error::{ArmError, ArmResponse, ArmResult};
use crate::config::Operation;
use crate::seed::{AccessPolicyEntry, Permissions, SeededVault, VaultSeed};
use crate::state::{State, Vault};

const TYPE: &str = "Microsoft.KeyVault/vaults";
const SECRET_PERMISSIONS: [&str; 9] = ["all", "get", "list", "set", "delete", "backup", "restore", "recover", "purge"];

pub(crate) fn vault_id(subscription: &str, resource_group: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.KeyVault/vaults/{name}")
}

/// Lower-cased state key of a vault.
pub(crate) fn key(subscription: &str, resource_group: &str, name: &str) -> String {
    vault_id(subscription, resource_group, name).to_ascii_lowercase()
}

/// Seeds a vault whose data plane listens on `port`.
pub(crate) fn seed(
    state: &mut State,
    subscription: &str,
    resource_group: &str,
    name: &str,
    seed: &VaultSeed,
    port: u16,
) -> SeededVault {
    state.ensure_resource_group(subscription, resource_group);
    let id = vault_id(subscription, resource_group, name);
    let vault_uri = state.vault_uri(name, port);
    let vault = Vault {
        id: id.clone(),
        name: name.to_string(),
        location: seed.location.clone().unwrap_or_else(|| state.location.clone()),
        tags: json!({}),
        sku: json!({"family": "A", "name": "standard"}),
        tenant_id: state.tenant_id.clone(),
        enable_rbac_authorization: seed.enable_rbac_authorization,
        access_policies: seed.access_policies.clone(),
        extra_properties: serde_json::Map::new(),
        vault_uri: vault_uri.clone(),
        port,
    };
    state.vaults.insert(id.to_ascii_lowercase(), vault);
    SeededVault { id, vault_uri }
}

/// The vault's resource body.
pub(crate) fn render(vault: &Vault) -> Value {
    let mut properties = Value::Object(vault.extra_properties.clone());
    properties["sku"] = vault.sku.clone();
    properties["tenantId"] = Value::from(vault.tenant_id.clone());
    properties["accessPolicies"] = serde_json::to_value(&vault.access_policies).unwrap_or(Value::Null);
    properties["enableRbacAuthorization"] = Value::from(vault.enable_rbac_authorization);
    properties["vaultUri"] = Value::from(vault.vault_uri.clone());
    properties["provisioningState"] = Value::from("Succeeded");
    for (field, default) in [
        ("enableSoftDelete", json!(true)),
        ("softDeleteRetentionInDays", json!(90)),
        ("publicNetworkAccess", json!("Enabled")),
    ] {
        if properties[field].is_null() {
            properties[field] = default;
        }
    }
    json!({
        "id": vault.id,
        "name": vault.name,
        "type": TYPE,
        "location": vault.location,
        "tags": vault.tags,
        "properties": properties,
    })
}

/// Vaults_Get.
pub(crate) fn get(state: &State, subscription: &str, resource_group: &str, name: &str) -> ArmResult {
    if !state.has_resource_group(subscription, resource_group) {
        return Err(ArmError::resource_group_not_found(resource_group));
    }
    let vault = state
        .vaults
        .get(&key(subscription, resource_group, name))
        .ok_or_else(|| ArmError::resource_not_found(TYPE, name, resource_group))?;
    Ok(ArmResponse::ok(render(vault)))
}

/// Vaults_CreateOrUpdate (PUT; a new vault needs `new_port`) and Vaults_Update (PATCH). Returns
/// the answer and, when a vault was created, its id (so the caller starts its listener).
pub(crate) fn put_or_patch(
    state: &mut State,
    subscription: &str,
    resource_group: &str,
    name: &str,
    request: &ArmRequest<'_>,
    new_port: Option<u16>,
) -> Result<(ArmResponse, Option<String>), ArmError> {
    if !state.has_resource_group(subscription, resource_group) {
        return Err(ArmError::resource_group_not_found(resource_group));
    }
    let body = request.json_body()?;
    let is_patch = request.method.as_str() == "PATCH";
    let vault_key = key(subscription, resource_group, name);
    let existing = state.vaults.get(&vault_key).cloned();
    let properties = body["properties"].as_object().cloned().unwrap_or_default();
    let mut vault = match (&existing, is_patch, new_port) {
        (Some(vault), _, _) => vault.clone(),
        (None, true, _) => return Err(ArmError::resource_not_found(TYPE, name, resource_group)),
        (None, false, Some(port)) => {
            let Some(location) = body["location"].as_str().filter(|location| !location.is_empty()) else {
                return Err(ArmError::bad_request(
                    "LocationRequired",
                    "The location property is required for this definition.",
                ));
            };
            if properties.get("tenantId").and_then(Value::as_str).is_none() || properties.get("sku").is_none() {
                return Err(ArmError::bad_request(
                    "BadRequest",
                    "The parameters 'properties.tenantId' and 'properties.sku' are required.",
                ));
            }
            Vault {
                id: vault_id(subscription, resource_group, name),
                name: name.to_string(),
                location: location.to_string(),
                tags: json!({}),
                sku: json!({}),
                tenant_id: String::new(),
                enable_rbac_authorization: false,
                access_policies: Vec::new(),
                extra_properties: serde_json::Map::new(),
                vault_uri: state.vault_uri(name, port),
                port,
            }
        }
        (None, false, None) => {
            return Err(ArmError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "No listener for the new vault.",
            ));
        }
    };
    if body["tags"].is_object() {
        vault.tags = body["tags"].clone();
    }
    for (field, value) in &properties {
        match field.as_str() {
            "sku" => vault.sku = value.clone(),
            "tenantId" => vault.tenant_id = value.as_str().unwrap_or_default().to_string(),
            "enableRbacAuthorization" => vault.enable_rbac_authorization = value.as_bool().unwrap_or(false),
            "accessPolicies" => {
                let entries: Vec<AccessPolicyEntry> = serde_json::from_value(value.clone())
                    .map_err(|error| ArmError::bad_request("BadRequest", format!("Invalid accessPolicies: {error}")))?;
                validate_entries(&entries)?;
                vault.access_policies = entries;
            }
            "vaultUri" | "provisioningState" => {}
            _ => {
                vault.extra_properties.insert(field.clone(), value.clone());
            }
        }
    }
    let changed = existing.as_ref().is_none_or(|before| render(before) != render(&vault));
    let created = existing.is_none().then(|| vault.id.clone());
    let id = vault.id.clone();
    let rendered = render(&vault);
    state.vaults.insert(vault_key, vault);
    state.record(request.method.as_str(), &id, Operation::VaultPut, changed, &body);
    let status = if created.is_some() { StatusCode::CREATED } else { StatusCode::OK };
    Ok((ArmResponse::json(status, rendered), created))
}

/// Vaults_UpdateAccessPolicy: `add` merges permissions into the principal's entry (creating it),
/// `replace` sets them, `remove` takes them away (dropping an entry left empty or named with no
/// permissions). Other principals' entries are never touched.
pub(crate) fn update_access_policies(
    state: &mut State,
    subscription: &str,
    resource_group: &str,
    name: &str,
    kind: &str,
    request: &ArmRequest<'_>,
) -> ArmResult {
    if !state.has_resource_group(subscription, resource_group) {
        return Err(ArmError::resource_group_not_found(resource_group));
    }
    let kind = kind.to_ascii_lowercase();
    if !matches!(kind.as_str(), "add" | "replace" | "remove") {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!(
                "The value '{kind}' of parameter 'operationKind' is invalid; expected 'add', 'replace' or 'remove'."
            ),
        ));
    }
    let body = request.json_body()?;
    let entries: Vec<AccessPolicyEntry> = serde_json::from_value(body["properties"]["accessPolicies"].clone())
        .map_err(|error| ArmError::bad_request("BadRequest", format!("Invalid properties.accessPolicies: {error}")))?;
    validate_entries(&entries)?;
    let vault_key = key(subscription, resource_group, name);
    let vault =
        state.vaults.get_mut(&vault_key).ok_or_else(|| ArmError::resource_not_found(TYPE, name, resource_group))?;
    let before = vault.access_policies.clone();
    for entry in entries.iter().cloned() {
        apply(&mut vault.access_policies, &kind, entry);
    }
    let changed = before != vault.access_policies;
    let id = format!("{}/accessPolicies/{kind}", vault.id);
    let location = vault.location.clone();
    let response = json!({
        "id": id,
        "name": kind,
        "type": "Microsoft.KeyVault/vaults/accessPolicies",
        "location": location,
        "properties": {"accessPolicies": entries},
    });
    state.record("PUT", &id, Operation::AccessPolicyUpdate, changed, &body);
    Ok(ArmResponse::ok(response))
}

fn same_principal(left: &AccessPolicyEntry, right: &AccessPolicyEntry) -> bool {
    left.tenant_id.eq_ignore_ascii_case(&right.tenant_id)
        && left.object_id.eq_ignore_ascii_case(&right.object_id)
        && left.application_id.as_deref().map(str::to_ascii_lowercase)
            == right.application_id.as_deref().map(str::to_ascii_lowercase)
}

/// Applies one entry of an access policy operation.
pub(crate) fn apply(policies: &mut Vec<AccessPolicyEntry>, kind: &str, entry: AccessPolicyEntry) {
    let position = policies.iter().position(|existing| same_principal(existing, &entry));
    match (kind, position) {
        ("add", Some(index)) => {
            let permissions = &mut policies[index].permissions;
            for (target, extra) in [
                (&mut permissions.keys, &entry.permissions.keys),
                (&mut permissions.secrets, &entry.permissions.secrets),
                (&mut permissions.certificates, &entry.permissions.certificates),
                (&mut permissions.storage, &entry.permissions.storage),
            ] {
                for permission in extra {
                    if !contains_ignoring_case(target, permission) {
                        target.push(permission.clone());
                    }
                }
            }
        }
        ("add" | "replace", None) => policies.push(entry),
        ("replace", Some(index)) => policies[index].permissions = entry.permissions,
        ("remove", Some(index)) => {
            let requested_nothing = entry.permissions == Permissions::default();
            let permissions = &mut policies[index].permissions;
            for (target, removed) in [
                (&mut permissions.keys, &entry.permissions.keys),
                (&mut permissions.secrets, &entry.permissions.secrets),
                (&mut permissions.certificates, &entry.permissions.certificates),
                (&mut permissions.storage, &entry.permissions.storage),
            ] {
                target.retain(|permission| !contains_ignoring_case(removed, permission));
            }
            if requested_nothing || policies[index].permissions == Permissions::default() {
                policies.remove(index);
            }
        }
        _ => {}
    }
}

/// Permissions are stored as the client wrote them (the service's enums are case-insensitive
/// and mixed-case, e.g. `wrapKey`), so comparisons ignore case.
fn contains_ignoring_case(list: &[String], permission: &str) -> bool {
    list.iter().any(|existing| existing.eq_ignore_ascii_case(permission))
}

fn validate_entries(entries: &[AccessPolicyEntry]) -> Result<(), ArmError> {
    for entry in entries {
        if uuid::Uuid::parse_str(&entry.object_id).is_err() || uuid::Uuid::parse_str(&entry.tenant_id).is_err() {
            return Err(ArmError::bad_request(
                "BadRequest",
                format!(
                    "Invalid value found at accessPolicies[].objectId/tenantId: '{}' / '{}' must be GUIDs.",
                    entry.object_id, entry.tenant_id
                ),
            ));
        }
        if let Some(bad) = entry
            .permissions
            .secrets
            .iter()
            .find(|permission| !SECRET_PERMISSIONS.contains(&permission.to_ascii_lowercase().as_str()))
        {
            return Err(ArmError::bad_request(
                "BadRequest",
                format!("Invalid value found at accessPolicies[].permissions.secrets: '{bad}'."),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_entry(object_id: &str, secrets: &[&str]) -> AccessPolicyEntry {
        AccessPolicyEntry {
            tenant_id: "t".to_string(),
            object_id: object_id.to_string(),
            application_id: None,
            permissions: Permissions {
                secrets: secrets.iter().map(|text| text.to_string()).collect(),
                ..Permissions::default()
            },
        }
    }

    #[test]
    fn add_merges_into_the_principals_entry_and_leaves_others_alone() {
        let mut policies = vec![mk_entry("other", &["all"]), mk_entry("kubelet", &["list"])];
        apply(&mut policies, "add", mk_entry("KUBELET", &["get"]));
        apply(&mut policies, "add", mk_entry("kubelet", &["Get"]));
        assert_eq!(policies, vec![mk_entry("other", &["all"]), mk_entry("kubelet", &["list", "get"])]);
        apply(&mut policies, "add", mk_entry("new", &["get"]));
        assert_eq!(policies.len(), 3);
    }

    #[test]
    fn replace_and_remove() {
        let mut policies = vec![mk_entry("a", &["get", "list"])];
        apply(&mut policies, "replace", mk_entry("a", &["set"]));
        assert_eq!(policies, vec![mk_entry("a", &["set"])]);
        apply(&mut policies, "remove", mk_entry("a", &["set"]));
        assert!(policies.is_empty());
    }
}
