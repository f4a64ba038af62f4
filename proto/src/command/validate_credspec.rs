//! `validate-credspec` (schema 1.2): the PowerShell module's `Start-GMSACredentialSpecValidation`.
//! The credspec installed in the cluster is compared with what Active Directory reports now (the
//! coordinator reads AD; agents hold no AD credential), the identity in its `PluginInput` must be
//! one the Windows pools run with and must be able to read the secret version it names, and —
//! by option — the sample workload must come up. Each is a named check.
//!
//! No `mode`, unlike the other setup commands (schema 1.3): validation only reads — the AD
//! facts, the installed credspec, the identities and the vault's access — so its dry run is the
//! command itself; a `mode` a coordinator sends anyway is ignored like any unknown field. The
//! one write is the optional sample workload (`run_workload`), which a plan leaves `false`.

use super::ValidationError;
use super::grant_identity::VaultRef;
use serde::{Deserialize, Serialize};

/// The Active Directory facts a credspec is built from, as AD reports them now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainFacts {
    /// The gMSA's account name, without `$`.
    pub gmsa_account: String,
    pub netbios_domain: String,
    pub dns_domain: String,
    pub dns_tree_root: String,
    pub domain_guid: String,
    pub domain_sid: String,
}

/// Payload of `validate-credspec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateCredspec {
    /// `metadata.name` of the GMSACredentialSpec to check.
    pub spec_name: String,
    pub expected: DomainFacts,
    /// The vault the credspec's secret URI points into (its ARM coordinates, for the access check).
    pub vault: VaultRef,
    /// Also run the sample workload with the credspec (slow: minutes on a real cluster).
    #[serde(default)]
    pub run_workload: bool,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
}

fn default_timeout() -> u32 {
    600
}

impl ValidateCredspec {
    pub fn validate(&self) -> Result<(), ValidationError> {
        let required = [
            ("payload.spec_name", &self.spec_name),
            ("payload.expected.gmsa_account", &self.expected.gmsa_account),
            ("payload.expected.netbios_domain", &self.expected.netbios_domain),
            ("payload.expected.dns_domain", &self.expected.dns_domain),
            ("payload.expected.dns_tree_root", &self.expected.dns_tree_root),
            ("payload.expected.domain_guid", &self.expected.domain_guid),
            ("payload.expected.domain_sid", &self.expected.domain_sid),
        ];
        for (field, value) in required {
            if value.trim().is_empty() {
                return Err(ValidationError::new(field, "must not be empty"));
            }
        }
        self.vault.validate("payload.vault")?;
        if !(1..=3600).contains(&self.timeout_secs) {
            return Err(ValidationError::new("payload.timeout_secs", "must be between 1 and 3600"));
        }
        Ok(())
    }
}
