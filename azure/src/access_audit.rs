//! Who can read the domain user's secret, and why — the computation behind the PowerShell module's
//! `Get-AksAgentPoolsAkvAccess`, as a pure function over what ARM reports (access policies, role
//! assignments) so every case is unit-tested. Groundwork for the fleet-wide access audit (#11).
//!
//! Rules (Azure Key Vault documentation, "Azure RBAC for Key Vault data plane operations" and
//! "access policies"):
//! - An **access-policy** vault grants `get` to exactly the principals whose policy lists secret
//!   `get` (or `all`); role assignments do not grant data-plane access there.
//! - An **RBAC** vault grants `get` to principals holding a built-in role with the data action
//!   `Microsoft.KeyVault/vaults/secrets/getSecret/action` — Key Vault Secrets User, Secrets Officer,
//!   Administrator — at a scope containing the secret: the subscription, the resource group, the
//!   vault or the secret itself. Owner and Contributor are management-plane roles and grant no
//!   secret read. Access policies are ignored.
//! - A management-group scope contains the vault only if the vault's subscription is below that
//!   group, which ARM's role assignments alone do not say: such a grant is reported as
//!   `unverified`, never silently counted or dropped.

use crate::arm::ArmClient;
use crate::config::AzureConfig;
use crate::error::{Error, Operation};
use crate::resource::VaultRef;
use crate::vault_grant::read_vault;
use serde::Serialize;

/// Built-in roles whose data actions include reading secret values.
pub const SECRET_READER_ROLES: [(&str, &str); 3] = [
    ("4633458b-17de-408a-b874-0445c86b69e6", "Key Vault Secrets User"),
    ("b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "Key Vault Secrets Officer"),
    ("00482a5a-887f-4fb3-b363-3b7fe8e74483", "Key Vault Administrator"),
];

/// One access policy entry as ARM reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    pub object_id: String,
    pub secret_permissions: Vec<String>,
}

/// One role assignment as ARM reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleEntry {
    pub principal_id: String,
    /// The role definition's id (`/subscriptions/…/roleDefinitions/<guid>`) or bare GUID.
    pub role_definition_id: String,
    pub scope: String,
}

/// What the audit knows about one vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultAccess {
    /// ARM id of the vault.
    pub vault_id: String,
    pub rbac: bool,
    pub policies: Vec<PolicyEntry>,
    pub roles: Vec<RoleEntry>,
}

impl VaultAccess {
    /// True when a role assignment of `role_definition_guid` to `principal_id` exists at exactly
    /// `scope` (what ARM's 409 `RoleAssignmentExists` refers to), case-insensitively.
    pub fn has_assignment(&self, scope: &str, principal_id: &str, role_definition_guid: &str) -> bool {
        self.roles.iter().any(|role| {
            role.scope.eq_ignore_ascii_case(scope)
                && role.principal_id.eq_ignore_ascii_case(principal_id)
                && role
                    .role_definition_id
                    .rsplit('/')
                    .next()
                    .is_some_and(|guid| guid.eq_ignore_ascii_case(role_definition_guid))
        })
    }
}

/// Why a principal can (or may) read the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "via", rename_all = "kebab-case")]
pub enum Grant {
    /// An access policy with secret `get` (or `all`).
    AccessPolicy,
    /// A secret-reading role at a scope that contains the secret.
    Role { role: String, scope: String },
    /// A secret-reading role at a management-group scope: valid only if the vault's subscription
    /// is below that group.
    Unverified { role: String, scope: String },
}

/// One principal's access to the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrincipalAccess {
    pub principal_id: String,
    pub grants: Vec<Grant>,
    /// The principal can read the secret but is not one of the identities that should.
    pub over_broad: bool,
}

/// `scope` contains `resource` when it is the resource itself or one of its ancestors, compared
/// case-insensitively on whole path segments (`/resourceGroups/rg` does not contain `/resourceGroups/rg2`).
pub fn scope_contains(scope: &str, resource: &str) -> bool {
    let scope = scope.trim_end_matches('/').to_ascii_lowercase();
    let resource = resource.trim_end_matches('/').to_ascii_lowercase();
    scope.is_empty() || resource == scope || resource.starts_with(&format!("{scope}/"))
}

fn role_name(role_definition_id: &str) -> Option<&'static str> {
    let guid = role_definition_id.rsplit('/').next().unwrap_or(role_definition_id).to_ascii_lowercase();
    SECRET_READER_ROLES.iter().find(|(id, _)| *id == guid).map(|(_, name)| *name)
}

/// Every principal that can read `secret_name` in the vault, with how, sorted by principal id.
/// `expected` are the identities that should read it (e.g. the Windows pools' identity); anyone
/// else who can is flagged `over_broad`.
pub fn audit(access: &VaultAccess, secret_name: &str, expected: &[&str]) -> Vec<PrincipalAccess> {
    let secret_id = format!("{}/secrets/{secret_name}", access.vault_id.trim_end_matches('/'));
    let mut found: std::collections::BTreeMap<String, Vec<Grant>> = std::collections::BTreeMap::new();
    if access.rbac {
        for role in &access.roles {
            let Some(name) = role_name(&role.role_definition_id) else { continue };
            let grant =
                if role.scope.to_ascii_lowercase().starts_with("/providers/microsoft.management/managementgroups/") {
                    Grant::Unverified { role: name.to_string(), scope: role.scope.clone() }
                } else if scope_contains(&role.scope, &secret_id) {
                    Grant::Role { role: name.to_string(), scope: role.scope.clone() }
                } else {
                    continue;
                };
            found.entry(role.principal_id.to_ascii_lowercase()).or_default().push(grant);
        }
    } else {
        for policy in &access.policies {
            let reads = policy
                .secret_permissions
                .iter()
                .any(|p| p.eq_ignore_ascii_case("get") || p.eq_ignore_ascii_case("all"));
            if reads {
                found.entry(policy.object_id.to_ascii_lowercase()).or_default().push(Grant::AccessPolicy);
            }
        }
    }
    found
        .into_iter()
        .map(|(principal_id, grants)| {
            let over_broad = !expected.iter().any(|e| e.eq_ignore_ascii_case(&principal_id))
                && grants.iter().any(|grant| !matches!(grant, Grant::Unverified { .. }));
            PrincipalAccess { principal_id, grants, over_broad }
        })
        .collect()
}

/// Reads what ARM says about the vault: its access policies and every role assignment at the
/// vault's scope or above (`$filter=atScope()`, following `nextLink`).
pub(crate) async fn read_access(arm: &ArmClient, config: &AzureConfig, vault: &VaultRef) -> Result<VaultAccess, Error> {
    let vault_id = vault.id();
    let current = read_vault(arm, config, vault).await?;
    let policies = current
        .properties
        .access_policies
        .iter()
        .filter(|policy| policy.application_id.is_none())
        .map(|policy| PolicyEntry {
            object_id: policy.object_id.clone(),
            secret_permissions: policy.permissions.secrets.clone(),
        })
        .collect();
    let path = format!("{vault_id}/providers/Microsoft.Authorization/roleAssignments");
    let mut url = arm.url(&path, &config.api_versions.authorization);
    url.query_pairs_mut().append_pair("$filter", "atScope()");
    let mut roles = Vec::new();
    for _page in 0..100 {
        let response = arm
            .send(Operation::ListRoleAssignments, &path, azure_core::http::Method::Get, url.clone(), None, None)
            .await?
            .into_success(Operation::ListRoleAssignments, &path)?;
        let page = response.json_value(Operation::ListRoleAssignments, &path)?;
        for assignment in page["value"].as_array().into_iter().flatten() {
            let properties = &assignment["properties"];
            roles.push(RoleEntry {
                principal_id: properties["principalId"].as_str().unwrap_or_default().to_string(),
                role_definition_id: properties["roleDefinitionId"].as_str().unwrap_or_default().to_string(),
                scope: properties["scope"].as_str().unwrap_or_default().to_string(),
            });
        }
        match page["nextLink"].as_str() {
            Some(next) if !next.is_empty() => url = arm.absolute(Operation::ListRoleAssignments, &path, next)?,
            _ => break,
        }
    }
    Ok(VaultAccess { vault_id, rbac: current.properties.enable_rbac_authorization == Some(true), policies, roles })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAULT: &str = "/subscriptions/s1/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv1";
    const USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
    const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

    fn mk_role(principal: &str, role: &str, scope: &str) -> RoleEntry {
        RoleEntry {
            principal_id: principal.into(),
            role_definition_id: format!("/subscriptions/s1/providers/Microsoft.Authorization/roleDefinitions/{role}"),
            scope: scope.into(),
        }
    }

    fn mk_rbac(roles: Vec<RoleEntry>) -> VaultAccess {
        VaultAccess { vault_id: VAULT.into(), rbac: true, policies: vec![], roles }
    }

    #[test]
    fn scopes_contain_on_whole_segments_only() {
        assert!(scope_contains("/subscriptions/s1", VAULT));
        assert!(scope_contains("/subscriptions/S1/resourceGroups/RG-KV", VAULT));
        assert!(!scope_contains("/subscriptions/s1/resourceGroups/rg-k", VAULT));
        assert!(!scope_contains("/subscriptions/s2", VAULT));
    }

    #[test]
    fn rbac_grants_come_from_secret_reading_roles_at_containing_scopes() {
        let access = mk_rbac(vec![
            mk_role("pool", USER, VAULT),
            mk_role("team", USER, "/subscriptions/s1/resourceGroups/rg-kv"),
            mk_role("other-secret", USER, &format!("{VAULT}/secrets/another")),
            mk_role("reader", READER, "/subscriptions/s1"),
            mk_role("elsewhere", USER, "/subscriptions/s2"),
        ]);
        let result = audit(&access, "GMSADomainUserCred", &["pool"]);
        let ids: Vec<&str> = result.iter().map(|p| p.principal_id.as_str()).collect();
        assert_eq!(ids, ["pool", "team"]);
        assert!(!result[0].over_broad);
        assert!(result[1].over_broad, "a resource-group grant to someone else is flagged");
    }

    #[test]
    fn access_policy_vaults_ignore_roles_and_read_get_or_all() {
        let access = VaultAccess {
            vault_id: VAULT.into(),
            rbac: false,
            policies: vec![
                PolicyEntry { object_id: "pool".into(), secret_permissions: vec!["Get".into()] },
                PolicyEntry { object_id: "admin".into(), secret_permissions: vec!["all".into()] },
                PolicyEntry { object_id: "writer".into(), secret_permissions: vec!["set".into()] },
            ],
            roles: vec![mk_role("kubelet", USER, VAULT)],
        };
        let result = audit(&access, "GMSADomainUserCred", &["pool"]);
        let flagged: Vec<(&str, bool)> = result.iter().map(|p| (p.principal_id.as_str(), p.over_broad)).collect();
        assert_eq!(flagged, [("admin", true), ("pool", false)]);
    }

    #[test]
    fn management_group_grants_are_reported_unverified_and_not_flagged() {
        let access = mk_rbac(vec![mk_role("mg-team", USER, "/providers/Microsoft.Management/managementGroups/corp")]);
        let result = audit(&access, "GMSADomainUserCred", &[]);
        assert!(matches!(result[0].grants[0], Grant::Unverified { .. }));
        assert!(!result[0].over_broad);
    }
}
