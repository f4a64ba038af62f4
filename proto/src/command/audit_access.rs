//! `audit-access` (schema 1.2): which identity each Windows node pool runs with and who can `get`
//! the domain-user secret — the PowerShell module's `Get-AksAgentPoolsAkvAccess`. Reads only.

use super::ValidationError;
use super::grant_identity::{IdentityChoice, VaultRef, default_secret_name, is_secret_name};
use serde::{Deserialize, Serialize};

/// Payload of `audit-access`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAccess {
    pub vault: VaultRef,
    #[serde(default = "default_secret_name")]
    pub secret_name: String,
    /// The identity that *should* read the secret. Any other principal that can — including the
    /// kubelet identity when a dedicated pool identity is configured — is flagged over-broad.
    pub identity: IdentityChoice,
}

impl AuditAccess {
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.vault.validate("payload.vault")?;
        if !is_secret_name(&self.secret_name) {
            return Err(ValidationError::new("payload.secret_name", "must be 1-127 letters, digits and '-'"));
        }
        self.identity.validate("payload.identity")
    }
}
