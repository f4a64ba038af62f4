//! Step `vault-revoke`: the exact reverse of `vault-grant` (`Remove-*` half of
//! `Grant-AkvAccessToAksWindowsHosts`), in whichever permission model the vault uses.
//!
//! - Access-policy vault: when the principal's own entry (vault tenant, no application id) holds
//!   secrets `get`, `PUT vaults/{v}/accessPolicies/remove` with exactly secrets `["get"]`. ARM
//!   removes just that permission and drops the entry when nothing is left in it (Vaults_
//!   UpdateAccessPolicy, `operationKind: remove`); the principal's other permissions and every
//!   other entry stay.
//! - RBAC vault: `DELETE` the "Key Vault Secrets User" role assignment `vault-grant` created, found
//!   by its deterministic name ([`role_assignment_name`]) and checked to be that principal's
//!   Secrets User assignment at the vault. Nothing else is deleted: an equivalent assignment under
//!   another name (which made `vault-grant` report `unchanged`) was not ours and stays.
//!
//! Guarantees: at most one write; in [`Mode::DryRun`] none, and the diff is reported as
//! `planned`; absent grant → `unchanged`.
//!
//! Caveat: on an access-policy vault `get` cannot be told apart by who granted it. A principal
//! that held `get` before `vault-grant` ran (grant reported `unchanged`) loses it too; callers
//! revoke only grants their own record shows as `changed`.

use crate::arm::ArmClient;
use crate::config::AzureConfig;
use crate::error::{Error, Operation};
use crate::resource::VaultRef;
use crate::vault_grant::{KEY_VAULT_SECRETS_USER_ROLE, Vault, access_policy_of, read_vault, role_assignment_name};
use azure_core::http::Method;
use proto::outcome::{FieldChange, Mode, StepOutcome};
use serde_json::{Value, json};

/// The step name reported for vault revocations.
pub const STEP_VAULT_REVOKE: &str = "vault-revoke";

/// The diff of removing secrets `get` from `principal_id`'s access policy entry, `None` when
/// the entry does not hold `get` (an `all` grant is not ours and is not touched).
pub fn plan_policy_revoke(vault: &Vault, principal_id: &str) -> Option<FieldChange> {
    let entry = access_policy_of(vault, &vault.properties.tenant_id, principal_id)?;
    let permissions = &entry.permissions;
    if !permissions.secrets.iter().any(|permission| permission.eq_ignore_ascii_case("get")) {
        return None;
    }
    let remaining: Vec<&String> =
        permissions.secrets.iter().filter(|permission| !permission.eq_ignore_ascii_case("get")).collect();
    let entry_left_empty = remaining.is_empty()
        && permissions.keys.is_empty()
        && permissions.certificates.is_empty()
        && permissions.storage.is_empty();
    let change = if entry_left_empty {
        FieldChange {
            path: format!("/properties/accessPolicies/{principal_id}"),
            before: Some(json!({"permissions": {"secrets": permissions.secrets}})),
            after: None,
        }
    } else {
        FieldChange {
            path: format!("/properties/accessPolicies/{principal_id}/permissions/secrets"),
            before: Some(json!(permissions.secrets)),
            after: Some(json!(remaining)),
        }
    };
    Some(change)
}

/// Whether a role assignment body is `principal_id`'s Key Vault Secrets User assignment.
pub fn is_our_role_assignment(assignment: &Value, principal_id: &str) -> bool {
    let field = |name: &str| assignment.pointer(&format!("/properties/{name}")).and_then(Value::as_str);
    field("principalId").is_some_and(|principal| principal.eq_ignore_ascii_case(principal_id))
        && field("roleDefinitionId").is_some_and(|role| {
            role.rsplit('/').next().is_some_and(|guid| guid.eq_ignore_ascii_case(KEY_VAULT_SECRETS_USER_ROLE))
        })
}

/// Revokes secrets `get` on `vault` from `principal_id`; see the module docs.
pub(crate) async fn revoke_secret_get(
    arm: &ArmClient,
    config: &AzureConfig,
    vault: &VaultRef,
    principal_id: &str,
    mode: Mode,
) -> Result<StepOutcome, Error> {
    let current = read_vault(arm, config, vault).await?;
    if current.properties.enable_rbac_authorization == Some(true) {
        revoke_role_assignment(arm, config, vault, principal_id, mode).await
    } else {
        revoke_access_policy(arm, config, vault, &current, principal_id, mode).await
    }
}

async fn revoke_access_policy(
    arm: &ArmClient,
    config: &AzureConfig,
    vault: &VaultRef,
    current: &Vault,
    principal_id: &str,
    mode: Mode,
) -> Result<StepOutcome, Error> {
    let id = vault.id();
    let observed = json!({"vault": id, "model": "accessPolicy", "principalId": principal_id});
    let Some(change) = plan_policy_revoke(current, principal_id) else {
        return Ok(StepOutcome::unchanged(STEP_VAULT_REVOKE, observed));
    };
    if mode.applies() {
        let body = json!({"properties": {"accessPolicies": [{
            "tenantId": current.properties.tenant_id,
            "objectId": principal_id,
            "permissions": {"secrets": ["get"]}
        }]}});
        let path = format!("{id}/accessPolicies/remove");
        let url = arm.url(&path, &config.api_versions.key_vault);
        arm.send(Operation::RemoveAccessPolicy, &path, Method::Put, url, Some(&body), None)
            .await?
            .into_success(Operation::RemoveAccessPolicy, &path)?;
        tracing::info!(vault = %id, principal = principal_id, "removed secrets get access policy");
    }
    Ok(StepOutcome::in_mode(mode, STEP_VAULT_REVOKE, vec![change], observed))
}

async fn revoke_role_assignment(
    arm: &ArmClient,
    config: &AzureConfig,
    vault: &VaultRef,
    principal_id: &str,
    mode: Mode,
) -> Result<StepOutcome, Error> {
    let scope = vault.id();
    let name = role_assignment_name(&scope, principal_id, KEY_VAULT_SECRETS_USER_ROLE);
    let path = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
    let api_version = &config.api_versions.authorization;
    let observed = json!({"vault": scope, "model": "rbac", "principalId": principal_id, "roleAssignment": path});
    let existing = arm.get(Operation::DeleteRoleAssignment, &path, api_version).await?;
    if existing.status == 404 {
        return Ok(StepOutcome::unchanged(STEP_VAULT_REVOKE, observed));
    }
    let existing = existing.into_success(Operation::DeleteRoleAssignment, &path)?;
    let assignment = existing.json_value(Operation::DeleteRoleAssignment, &path)?;
    if !is_our_role_assignment(&assignment, principal_id) {
        tracing::warn!(assignment = %path, "role assignment under our name is not ours; left alone");
        return Ok(StepOutcome::unchanged(STEP_VAULT_REVOKE, observed));
    }
    let properties = assignment.get("properties").cloned().unwrap_or(Value::Null);
    let before = json!({
        "roleDefinitionId": properties.get("roleDefinitionId"),
        "principalId": properties.get("principalId"),
        "principalType": properties.get("principalType"),
    });
    if mode.applies() {
        let url = arm.url(&path, api_version);
        arm.send(Operation::DeleteRoleAssignment, &path, Method::Delete, url, None, None)
            .await?
            .into_success(Operation::DeleteRoleAssignment, &path)?;
        tracing::info!(vault = %scope, principal = principal_id, "deleted Key Vault Secrets User role assignment");
    }
    let change = FieldChange { path: format!("/roleAssignments/{name}"), before: Some(before), after: None };
    Ok(StepOutcome::in_mode(mode, STEP_VAULT_REVOKE, vec![change], observed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_vault(policies: Value) -> Vault {
        serde_json::from_value(json!({"properties": {"tenantId": "t", "accessPolicies": policies}})).unwrap()
    }

    #[test]
    fn a_get_only_entry_goes_away_and_other_permissions_stay() {
        let vault = mk_vault(json!([
            {"tenantId": "t", "objectId": "only-get", "permissions": {"secrets": ["Get"]}},
            {"tenantId": "t", "objectId": "more", "permissions": {"secrets": ["list", "get"]}},
            {"tenantId": "t", "objectId": "keys-too", "permissions": {"secrets": ["get"], "keys": ["get"]}}
        ]));
        let gone = plan_policy_revoke(&vault, "ONLY-GET").unwrap();
        assert_eq!((gone.path.as_str(), gone.after), ("/properties/accessPolicies/ONLY-GET", None));
        let narrowed = plan_policy_revoke(&vault, "more").unwrap();
        assert_eq!(narrowed.after, Some(json!(["list"])));
        assert_eq!(plan_policy_revoke(&vault, "keys-too").unwrap().after, Some(json!([])));
    }

    #[test]
    fn nothing_to_revoke_without_our_get() {
        let vault = mk_vault(json!([
            {"tenantId": "t", "objectId": "all", "permissions": {"secrets": ["all"]}},
            {"tenantId": "t", "objectId": "compound", "applicationId": "app", "permissions": {"secrets": ["get"]}},
            {"tenantId": "other", "objectId": "foreign", "permissions": {"secrets": ["get"]}}
        ]));
        for principal in ["all", "compound", "foreign", "absent"] {
            assert!(plan_policy_revoke(&vault, principal).is_none(), "{principal}");
        }
    }

    #[test]
    fn only_the_principals_secrets_user_assignment_is_ours() {
        let role =
            format!("/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_SECRETS_USER_ROLE}");
        let ours = json!({"properties": {"principalId": "P", "roleDefinitionId": role}});
        assert!(is_our_role_assignment(&ours, "p"));
        assert!(!is_our_role_assignment(&ours, "q"));
        let officer = json!({"properties": {"principalId": "p",
            "roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/b86a8fe4-44ce-4948-aee5-eccb2c155cd7"}});
        assert!(!is_our_role_assignment(&officer, "p"));
    }
}
