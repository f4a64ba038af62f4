//! `rotate-credential`: the coordinator rotated the domain user's password and wrote a new secret
//! version; the cluster is pointed at it and proves it can read it. The password never travels:
//! only the vault, the secret's name and its new version do.

use super::ValidationError;
use super::grant_identity::{VaultRef, is_secret_name};
use serde::{Deserialize, Serialize};

/// Payload of `rotate-credential`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateCredential {
    pub vault: VaultRef,
    pub secret_name: String,
    /// The Key Vault secret version the coordinator wrote (32 hex characters).
    pub secret_version: String,
    /// The credspec whose plugin identity must be able to read the version (schema 1.4; absent:
    /// every identity of the cluster's Windows pools is checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_name: Option<String>,
    /// Also start the sample workload with the credspec (a canary pod that makes a container
    /// start read the new version) and wait up to `timeout_secs` for it (schema 1.4; needs
    /// `spec_name`).
    #[serde(default)]
    pub run_workload: bool,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
}

fn default_timeout() -> u32 {
    600
}

impl RotateCredential {
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.vault.validate("payload.vault")?;
        if !is_secret_name(&self.secret_name) {
            return Err(ValidationError::new("payload.secret_name", "must be 1-127 letters, digits and '-'"));
        }
        if self.secret_version.len() != 32 || !self.secret_version.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ValidationError::new(
                "payload.secret_version",
                "must be a Key Vault version: 32 hex characters",
            ));
        }
        if let Some(spec_name) = &self.spec_name
            && spec_name.trim().is_empty()
        {
            return Err(ValidationError::new("payload.spec_name", "must not be empty when given"));
        }
        if self.run_workload && self.spec_name.is_none() {
            return Err(ValidationError::new(
                "payload.run_workload",
                "needs payload.spec_name (the credspec to run with)",
            ));
        }
        if !(1..=3600).contains(&self.timeout_secs) {
            return Err(ValidationError::new("payload.timeout_secs", "must be between 1 and 3600"));
        }
        Ok(())
    }
}
