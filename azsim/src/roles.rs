//! Built-in Azure role definitions the simulator knows, and which Key Vault secret data actions
//! each grants (from Microsoft's built-in roles reference: Key Vault Secrets User may read secret
//! contents and metadata; Secrets Officer and Administrator may do everything on secrets).

/// "Key Vault Secrets User": read secret contents.
pub const KEY_VAULT_SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
/// "Key Vault Secrets Officer": every action on secrets.
pub const KEY_VAULT_SECRETS_OFFICER: &str = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7";
/// "Key Vault Administrator": every data action on the vault.
pub const KEY_VAULT_ADMINISTRATOR: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
/// "Managed Identity Operator": assign user-assigned identities.
pub const MANAGED_IDENTITY_OPERATOR: &str = "f1a07417-d97a-45cb-824c-7a7467783830";
/// "Owner".
pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
/// "Contributor".
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
/// "Reader".
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

/// Role definition GUIDs a role assignment may reference.
pub(crate) const BUILT_IN: [&str; 7] = [
    KEY_VAULT_SECRETS_USER,
    KEY_VAULT_SECRETS_OFFICER,
    KEY_VAULT_ADMINISTRATOR,
    MANAGED_IDENTITY_OPERATOR,
    OWNER,
    CONTRIBUTOR,
    READER,
];

/// The ARM id of a built-in role definition as seen from `subscription`.
pub fn role_definition_id(subscription: &str, role_guid: &str) -> String {
    format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}")
}

/// The GUID at the end of a role definition id (`.../roleDefinitions/{guid}`), lower-cased.
pub(crate) fn role_guid(role_definition_id: &str) -> Option<String> {
    let (prefix, guid) = role_definition_id.rsplit_once('/')?;
    prefix
        .to_ascii_lowercase()
        .ends_with("/providers/microsoft.authorization/roledefinitions")
        .then(|| guid.to_ascii_lowercase())
}

/// Whether a role grants the Key Vault secret data action for `permission` (`get`, `list`, `set`).
pub(crate) fn grants_secret_permission(role_guid: &str, permission: &str) -> bool {
    match role_guid {
        KEY_VAULT_SECRETS_OFFICER | KEY_VAULT_ADMINISTRATOR => true,
        KEY_VAULT_SECRETS_USER => matches!(permission, "get" | "list"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_user_reads_but_does_not_write_and_owner_has_no_data_access() {
        assert!(grants_secret_permission(KEY_VAULT_SECRETS_USER, "get"));
        assert!(!grants_secret_permission(KEY_VAULT_SECRETS_USER, "set"));
        assert!(grants_secret_permission(KEY_VAULT_SECRETS_OFFICER, "set"));
        assert!(!grants_secret_permission(OWNER, "get"));
        let id = role_definition_id("sub", KEY_VAULT_SECRETS_USER);
        assert_eq!(role_guid(&id).as_deref(), Some(KEY_VAULT_SECRETS_USER));
        assert_eq!(role_guid("/x/y"), None);
    }
}
