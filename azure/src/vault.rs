//! Creating the Key Vault that holds the domain user's credential, when it is absent (the
//! PowerShell module's `New-GMSAAzureKeyVault`). An existing vault is never changed: not its
//! permission model, not its access policies — other teams may share it.
//!
//! Spec: Microsoft.KeyVault `stable/2023-07-01/keyvault.json`, `Vaults_CreateOrUpdate`.

use crate::arm::ArmClient;
use crate::config::AzureConfig;
use crate::error::{Error, ErrorKind, Operation};
use crate::resource::VaultRef;
use crate::vault_grant::read_vault;
use azure_core::http::Method;
use proto::outcome::{FieldChange, Mode, StepOutcome};
use serde_json::{Value, json};

/// Step name of the vault creation.
pub const STEP_VAULT_CREATE: &str = "vault-create";

/// How a vault is created when it does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultSpec {
    pub location: String,
    /// Entra tenant that authenticates requests to the vault.
    pub tenant_id: String,
    /// Azure RBAC (`true`) or access policies (`false`) for the data plane.
    pub rbac: bool,
    /// The principal (object id) that writes the domain-user secret — the coordinator. On an
    /// access-policy vault it gets secrets `get`, `set`, `list`, `delete` and `purge` in the new
    /// vault's policies, so it can write the secret it created the vault for. Only at creation.
    pub writer_object_id: Option<String>,
}

/// The secret permissions [`VaultSpec::writer_object_id`] gets in a vault created here.
pub const WRITER_SECRET_PERMISSIONS: [&str; 5] = ["get", "set", "list", "delete", "purge"];

/// The body of the vault's PUT: standard SKU, no access policies but the writer's (the clusters'
/// grants come later, one per identity, through `accessPolicies/add` or role assignments).
pub fn create_body(spec: &VaultSpec) -> Value {
    let policies: Vec<Value> = match (&spec.writer_object_id, spec.rbac) {
        (Some(object_id), false) => vec![json!({
            "tenantId": spec.tenant_id,
            "objectId": object_id,
            "permissions": {"secrets": WRITER_SECRET_PERMISSIONS},
        })],
        _ => Vec::new(),
    };
    json!({
        "location": spec.location,
        "properties": {
            "tenantId": spec.tenant_id,
            "sku": {"family": "A", "name": "standard"},
            "enableRbacAuthorization": spec.rbac,
            "accessPolicies": policies,
        }
    })
}

/// Creates the vault if absent; reports `unchanged` (with the mode it found) when it exists. In
/// [`Mode::DryRun`] a missing vault is `planned` with the body it would get; nothing is written.
pub(crate) async fn ensure_vault(
    arm: &ArmClient,
    config: &AzureConfig,
    vault: &VaultRef,
    spec: &VaultSpec,
    mode: Mode,
) -> Result<StepOutcome, Error> {
    let id = vault.id();
    match read_vault(arm, config, vault).await {
        Ok(existing) => {
            let rbac = existing.properties.enable_rbac_authorization == Some(true);
            if rbac != spec.rbac {
                tracing::warn!(vault = %id, existing_rbac = rbac, "vault exists with another permission model; left as it is");
            }
            return Ok(StepOutcome::unchanged(
                STEP_VAULT_CREATE,
                json!({"vault": id, "enableRbacAuthorization": rbac, "created": false}),
            ));
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let body = create_body(spec);
    if !mode.applies() {
        let change = FieldChange { path: "/".into(), before: None, after: Some(body) };
        let observed = json!({"vault": id, "enableRbacAuthorization": spec.rbac, "created": false});
        return Ok(StepOutcome::in_mode(mode, STEP_VAULT_CREATE, vec![change], observed));
    }
    let url = arm.url(&id, &config.api_versions.key_vault);
    arm.send(Operation::PutVault, &id, Method::Put, url, Some(&body), None)
        .await?
        .into_success(Operation::PutVault, &id)?;
    tracing::info!(vault = %id, rbac = spec.rbac, "vault created");
    let change = FieldChange { path: "/".into(), before: None, after: Some(body) };
    Ok(StepOutcome::from_diff(
        STEP_VAULT_CREATE,
        vec![change],
        json!({"vault": id, "enableRbacAuthorization": spec.rbac, "created": true}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_what_vaults_createorupdate_requires_and_no_policies() {
        let body = create_body(&VaultSpec {
            location: "westeurope".into(),
            tenant_id: "t".into(),
            rbac: true,
            writer_object_id: Some("w".into()),
        });
        assert_eq!(body["location"], "westeurope");
        assert_eq!(body["properties"]["tenantId"], "t");
        assert_eq!(body["properties"]["sku"]["name"], "standard");
        assert_eq!(body["properties"]["enableRbacAuthorization"], true);
        assert_eq!(body["properties"]["accessPolicies"], json!([]), "an RBAC vault has no policies");
    }

    #[test]
    fn an_access_policy_vault_lets_its_writer_write_and_nobody_else() {
        let spec = VaultSpec {
            location: "westeurope".into(),
            tenant_id: "t".into(),
            rbac: false,
            writer_object_id: Some("w".into()),
        };
        let policies = &create_body(&spec)["properties"]["accessPolicies"];
        assert_eq!(
            policies,
            &json!([{"tenantId": "t", "objectId": "w", "permissions": {"secrets": ["get", "set", "list", "delete", "purge"]}}])
        );
    }
}
