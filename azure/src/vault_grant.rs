//! Step `vault-grant`: let one principal (the kubelet identity, or the host identity) read
//! secrets from the vault, in whichever permission model the vault uses.
//!
//! - Access-policy vault: if no policy of the vault's tenant for the principal grants secrets
//!   `get`, `PUT vaults/{v}/accessPolicies/add` with just that. `add` merges into the existing
//!   policy set, so others' policies (and the principal's other permissions) stay as they are.
//! - RBAC vault (`enableRbacAuthorization`): a "Key Vault Secrets User" role assignment at the
//!   vault scope, named by a UUID v5 of scope + principal + role, so a retry or a second run
//!   addresses the same assignment. `GET` finds it; a `PUT` answered 409 `RoleAssignmentExists`
//!   means an equivalent assignment under another name already grants the access: unchanged.
//!
//! Guarantees: at most one write per run; nothing is removed or replaced. In [`Mode::DryRun`]
//! only reads are sent — the vault, the assignment by name and (RBAC) the assignments at the
//! vault's scope, so an equivalent assignment under another name reads as `unchanged` as its 409
//! would — and the diff the write would make is reported as `planned`. [`plan_for_new_principal`]
//! is the dry run for an identity that does not exist yet (its principal id is assigned on
//! creation, so the diff names it as a placeholder).

use crate::arm::ArmClient;
use crate::config::AzureConfig;
use crate::error::{Error, ErrorKind, Operation};
use crate::resource::VaultRef;
use azure_core::http::Method;
use proto::outcome::{FieldChange, Mode, StepOutcome};
use serde::Deserialize;
use serde_json::{Value, json};

/// The step name reported for vault grants.
pub const STEP_VAULT_GRANT: &str = "vault-grant";

/// Built-in role "Key Vault Secrets User" (read secret contents).
pub const KEY_VAULT_SECRETS_USER_ROLE: &str = "4633458b-17de-408a-b874-0445c86b69e6";

/// The fields of a vault the grant needs (unknown fields are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Vault {
    /// `properties`.
    #[serde(default)]
    pub properties: VaultProperties,
}

/// `properties` of a vault.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultProperties {
    /// Tenant that authenticates requests to the vault.
    #[serde(default)]
    pub tenant_id: String,
    /// Data-plane URL.
    #[serde(default)]
    pub vault_uri: Option<String>,
    /// True when data-plane access is controlled by Azure RBAC (access policies ignored).
    #[serde(default)]
    pub enable_rbac_authorization: Option<bool>,
    /// Access policies (access-policy model).
    #[serde(default)]
    pub access_policies: Vec<AccessPolicy>,
    /// Soft delete (`None`: the service default, on).
    #[serde(default)]
    pub enable_soft_delete: Option<bool>,
    /// Purge protection: deleted secrets cannot be purged before the retention ends.
    #[serde(default)]
    pub enable_purge_protection: Option<bool>,
}

/// One access policy entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicy {
    /// Tenant of the principal.
    #[serde(default)]
    pub tenant_id: String,
    /// Object id of the principal.
    #[serde(default)]
    pub object_id: String,
    /// Compound identity: the application acting for the principal (then the entry is not the principal's own).
    #[serde(default)]
    pub application_id: Option<String>,
    /// Permissions.
    #[serde(default)]
    pub permissions: Permissions,
}

/// Permissions of an access policy (secrets matter here; the others tell whether an entry
/// would be left empty by a removal).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Permissions {
    /// Secret permissions (`get`, `list`, ...; case-insensitive, `all` grants everything).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Key permissions.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Certificate permissions.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Storage permissions.
    #[serde(default)]
    pub storage: Vec<String>,
}

/// The entry of `object_id` in `tenant_id` (its own entry, not compound), if it has one.
pub fn access_policy_of<'v>(vault: &'v Vault, tenant_id: &str, object_id: &str) -> Option<&'v AccessPolicy> {
    vault.properties.access_policies.iter().find(|policy| {
        policy.object_id.eq_ignore_ascii_case(object_id)
            && policy.tenant_id.eq_ignore_ascii_case(tenant_id)
            && policy.application_id.as_deref().is_none_or(str::is_empty)
    })
}

/// The secrets permissions `object_id` holds in `tenant_id` (its own entry, not compound), if it has an entry.
pub fn secret_permissions_of<'v>(vault: &'v Vault, tenant_id: &str, object_id: &str) -> Option<&'v [String]> {
    access_policy_of(vault, tenant_id, object_id).map(|policy| policy.permissions.secrets.as_slice())
}

/// True when the access policies already let `object_id` get secrets.
pub fn grants_secret_get(vault: &Vault, object_id: &str) -> bool {
    secret_permissions_of(vault, &vault.properties.tenant_id, object_id)
        .is_some_and(|secrets| secrets.iter().any(|p| p.eq_ignore_ascii_case("get") || p.eq_ignore_ascii_case("all")))
}

/// The deterministic role assignment name for (scope, principal, role): a UUID v5 of the
/// lower-cased triple, so every run and every retry names the same assignment.
pub fn role_assignment_name(scope: &str, principal_id: &str, role_definition_guid: &str) -> uuid::Uuid {
    let key = format!(
        "{}|{}|{}",
        scope.to_ascii_lowercase(),
        principal_id.to_ascii_lowercase(),
        role_definition_guid.to_ascii_lowercase()
    );
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, key.as_bytes())
}

/// `/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}`.
pub fn role_definition_id(subscription_id: &str, role_definition_guid: &str) -> String {
    format!("/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role_definition_guid}")
}

/// Reads the vault's management view.
pub(crate) async fn read_vault(arm: &ArmClient, config: &AzureConfig, vault: &VaultRef) -> Result<Vault, Error> {
    let id = vault.id();
    let response = arm.get(Operation::GetVault, &id, &config.api_versions.key_vault).await?;
    response.into_success(Operation::GetVault, &id)?.json::<Vault>(Operation::GetVault, &id)
}

/// Grants secrets `get` on `vault` to `principal_id` in `mode`; see the module docs.
pub(crate) async fn grant_secret_get(
    arm: &ArmClient,
    config: &AzureConfig,
    vault: &VaultRef,
    principal_id: &str,
    mode: Mode,
) -> Result<StepOutcome, Error> {
    let current = read_vault(arm, config, vault).await?;
    if current.properties.enable_rbac_authorization == Some(true) {
        grant_by_role_assignment(arm, config, vault, principal_id, mode).await
    } else {
        grant_by_access_policy(arm, config, vault, &current, principal_id, mode).await
    }
}

/// The dry run of a grant to the user-assigned identity `identity_id` that does not exist yet:
/// reads the vault for its permission model and plans the grant, the principal id named
/// `<principalId of {identity_id}>` (Entra assigns it on creation). Never writes.
pub(crate) async fn plan_for_new_principal(
    arm: &ArmClient,
    config: &AzureConfig,
    vault: &VaultRef,
    identity_id: &str,
) -> Result<StepOutcome, Error> {
    let current = read_vault(arm, config, vault).await?;
    let principal_id = format!("<principalId of {identity_id}>");
    let (change, observed) = if current.properties.enable_rbac_authorization == Some(true) {
        let (path, change) = role_assignment_change(vault, &principal_id);
        (change, json!({"vault": vault.id(), "model": "rbac", "principalId": principal_id, "roleAssignment": path}))
    } else {
        let change = access_policy_change(&current, &principal_id);
        (change, json!({"vault": vault.id(), "model": "accessPolicy", "principalId": principal_id}))
    };
    Ok(StepOutcome::in_mode(Mode::DryRun, STEP_VAULT_GRANT, vec![change], observed))
}

/// The change adding secrets `get` makes to `principal_id`'s access policy entry.
fn access_policy_change(current: &Vault, principal_id: &str) -> FieldChange {
    let before =
        secret_permissions_of(current, &current.properties.tenant_id, principal_id).map(|secrets| json!(secrets));
    let mut after_secrets: Vec<Value> = before.as_ref().and_then(Value::as_array).cloned().unwrap_or_default();
    after_secrets.push(json!("get"));
    FieldChange {
        path: format!("/properties/accessPolicies/{principal_id}/permissions/secrets"),
        before,
        after: Some(Value::Array(after_secrets)),
    }
}

/// The path of the grant's role assignment for `principal_id` and the change creating it.
fn role_assignment_change(vault: &VaultRef, principal_id: &str) -> (String, FieldChange) {
    let scope = vault.id();
    let name = role_assignment_name(&scope, principal_id, KEY_VAULT_SECRETS_USER_ROLE);
    let path = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
    let properties = json!({
        "roleDefinitionId": role_definition_id(&vault.subscription_id, KEY_VAULT_SECRETS_USER_ROLE),
        "principalId": principal_id,
        "principalType": "ServicePrincipal"
    });
    (path, FieldChange { path: format!("/roleAssignments/{name}"), before: None, after: Some(properties) })
}

async fn grant_by_access_policy(
    arm: &ArmClient,
    config: &AzureConfig,
    vault: &VaultRef,
    current: &Vault,
    principal_id: &str,
    mode: Mode,
) -> Result<StepOutcome, Error> {
    let id = vault.id();
    let observed = json!({"vault": id, "model": "accessPolicy", "principalId": principal_id});
    if grants_secret_get(current, principal_id) {
        return Ok(StepOutcome::unchanged(STEP_VAULT_GRANT, observed));
    }
    let change = access_policy_change(current, principal_id);
    if !mode.applies() {
        tracing::info!(vault = %id, principal = principal_id, "dry run: would add a secrets get access policy");
        return Ok(StepOutcome::in_mode(mode, STEP_VAULT_GRANT, vec![change], observed));
    }
    let body = json!({"properties": {"accessPolicies": [{
        "tenantId": current.properties.tenant_id,
        "objectId": principal_id,
        "permissions": {"secrets": ["get"]}
    }]}});
    let path = format!("{id}/accessPolicies/add");
    let url = arm.url(&path, &config.api_versions.key_vault);
    arm.send(Operation::AddAccessPolicy, &path, Method::Put, url, Some(&body), None)
        .await?
        .into_success(Operation::AddAccessPolicy, &path)?;
    tracing::info!(vault = %id, principal = principal_id, "added secrets get access policy");
    Ok(StepOutcome::from_diff(STEP_VAULT_GRANT, vec![change], observed))
}

async fn grant_by_role_assignment(
    arm: &ArmClient,
    config: &AzureConfig,
    vault: &VaultRef,
    principal_id: &str,
    mode: Mode,
) -> Result<StepOutcome, Error> {
    let scope = vault.id();
    let (path, change) = role_assignment_change(vault, principal_id);
    let api_version = &config.api_versions.authorization;
    let observed = json!({"vault": scope, "model": "rbac", "principalId": principal_id, "roleAssignment": path});
    let existing = arm.get(Operation::PutRoleAssignment, &path, api_version).await?;
    if existing.status == 200 {
        return Ok(StepOutcome::unchanged(STEP_VAULT_GRANT, observed));
    }
    if existing.status != 404 {
        return Err(existing.to_error(Operation::PutRoleAssignment, &path));
    }
    if !mode.applies() {
        // The PUT would answer 409 RoleAssignmentExists for the same role and principal at the
        // same scope under another name; a dry run looks for that assignment instead.
        let access = crate::access_audit::read_access(arm, config, vault).await?;
        if access.has_assignment(&scope, principal_id, KEY_VAULT_SECRETS_USER_ROLE) {
            return Ok(StepOutcome::unchanged(STEP_VAULT_GRANT, observed));
        }
        tracing::info!(vault = %scope, principal = principal_id, "dry run: would create a role assignment");
        return Ok(StepOutcome::in_mode(mode, STEP_VAULT_GRANT, vec![change], observed));
    }
    let body = json!({"properties": change.after});
    let url = arm.url(&path, api_version);
    let response = arm.send(Operation::PutRoleAssignment, &path, Method::Put, url, Some(&body), None).await?;
    if response.status == 409
        && response.error_code().is_some_and(|code| code.eq_ignore_ascii_case("RoleAssignmentExists"))
    {
        tracing::info!(vault = %scope, principal = principal_id, "an equivalent role assignment already exists");
        return Ok(StepOutcome::unchanged(STEP_VAULT_GRANT, observed));
    }
    response.into_success(Operation::PutRoleAssignment, &path)?;
    tracing::info!(vault = %scope, principal = principal_id, "created Key Vault Secrets User role assignment");
    Ok(StepOutcome::from_diff(STEP_VAULT_GRANT, vec![change], observed))
}

/// Rejects a vault reference whose principal id is empty (nothing sensible to grant).
pub(crate) fn require_principal(vault: &VaultRef, principal_id: &str) -> Result<(), Error> {
    if principal_id.trim().is_empty() {
        return Err(Error::new(
            Operation::AddAccessPolicy,
            vault.id(),
            ErrorKind::Validation,
            "principal object id is empty",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_vault(policies: Value) -> Vault {
        serde_json::from_value(json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
            "properties": {"tenantId": "tenant-1", "sku": {"family": "A", "name": "standard"}, "accessPolicies": policies}
        }))
        .unwrap()
    }

    #[test]
    fn an_existing_get_policy_is_recognised_case_insensitively() {
        let vault = mk_vault(
            json!([{"tenantId": "tenant-1", "objectId": "OBJ-1", "permissions": {"secrets": ["Get", "List"]}}]),
        );
        assert!(grants_secret_get(&vault, "obj-1"));
        assert!(!grants_secret_get(&vault, "obj-2"));
    }

    #[test]
    fn list_only_other_tenant_or_compound_policies_do_not_grant_get() {
        let vault = mk_vault(json!([
            {"tenantId": "tenant-1", "objectId": "obj-1", "permissions": {"secrets": ["list"]}},
            {"tenantId": "tenant-2", "objectId": "obj-2", "permissions": {"secrets": ["get"]}},
            {"tenantId": "tenant-1", "objectId": "obj-3", "applicationId": "app", "permissions": {"secrets": ["get"]}}
        ]));
        for object_id in ["obj-1", "obj-2", "obj-3"] {
            assert!(!grants_secret_get(&vault, object_id), "{object_id}");
        }
        assert_eq!(secret_permissions_of(&vault, "tenant-1", "obj-1"), Some(&["list".to_string()][..]));
    }

    #[test]
    fn role_assignment_names_are_deterministic_and_distinct() {
        let scope = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv";
        let first = role_assignment_name(scope, "obj-1", KEY_VAULT_SECRETS_USER_ROLE);
        assert_eq!(first, role_assignment_name(&scope.to_uppercase(), "OBJ-1", KEY_VAULT_SECRETS_USER_ROLE));
        assert_ne!(first, role_assignment_name(scope, "obj-2", KEY_VAULT_SECRETS_USER_ROLE));
        assert_eq!(first.get_version_num(), 5);
    }

    #[test]
    fn rbac_flag_is_read() {
        let vault: Vault =
            serde_json::from_value(json!({"properties": {"tenantId": "t", "enableRbacAuthorization": true}})).unwrap();
        assert_eq!(vault.properties.enable_rbac_authorization, Some(true));
        assert!(vault.properties.access_policies.is_empty());
    }
}
