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
use proto::outcome::{FieldChange, StepOutcome};
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
}

/// The body of the vault's PUT: standard SKU, no access policies (grants come later, one per
/// identity, through `accessPolicies/add` or role assignments).
pub fn create_body(spec: &VaultSpec) -> Value {
    json!({
        "location": spec.location,
        "properties": {
            "tenantId": spec.tenant_id,
            "sku": {"family": "A", "name": "standard"},
            "enableRbacAuthorization": spec.rbac,
            "accessPolicies": [],
        }
    })
}

/// Creates the vault if absent; reports `unchanged` (with the mode it found) when it exists.
pub(crate) async fn ensure_vault(
    arm: &ArmClient,
    config: &AzureConfig,
    vault: &VaultRef,
    spec: &VaultSpec,
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
        let body = create_body(&VaultSpec { location: "westeurope".into(), tenant_id: "t".into(), rbac: true });
        assert_eq!(body["location"], "westeurope");
        assert_eq!(body["properties"]["tenantId"], "t");
        assert_eq!(body["properties"]["sku"]["name"], "standard");
        assert_eq!(body["properties"]["enableRbacAuthorization"], true);
        assert_eq!(body["properties"]["accessPolicies"], json!([]));
    }
}
