//! `grant-identity`: let the Windows nodes' identity `get` the domain-user secret.
//!
//! `mode` (schema 1.3) defaults to `apply`; `dry-run` reports the identity it would create, the
//! scale sets it would attach it to and the access policy or role assignment it would add, as
//! `planned`, and writes nothing.

use super::{ValidationError, check_mode};
use crate::outcome::Mode;
use serde::{Deserialize, Serialize};

/// An Azure Key Vault by its ARM coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultRef {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
}

impl VaultRef {
    pub(crate) fn validate(&self, field: &str) -> Result<(), ValidationError> {
        if uuid::Uuid::parse_str(&self.subscription_id).is_err() {
            return Err(ValidationError::new(format!("{field}.subscription_id"), "must be a GUID"));
        }
        let rg_ok = !self.resource_group.is_empty()
            && self.resource_group.len() <= 90
            && !self.resource_group.ends_with('.')
            && self.resource_group.chars().all(|c| c.is_alphanumeric() || "-_.()".contains(c));
        if !rg_ok {
            return Err(ValidationError::new(
                format!("{field}.resource_group"),
                "must be 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'",
            ));
        }
        // Key Vault names: 3-24 characters, letters, digits and '-', starting with a letter,
        // ending with a letter or digit, no "--".
        let name = &self.name;
        let name_ok = (3..=24).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && name.as_bytes()[0].is_ascii_alphabetic()
            && !name.ends_with('-')
            && !name.contains("--");
        if !name_ok {
            return Err(ValidationError::new(
                format!("{field}.name"),
                "must be 3-24 letters, digits and '-', start with a letter, end with a letter or digit, no '--'",
            ));
        }
        Ok(())
    }
}

/// Which identity is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum IdentityChoice {
    /// The cluster's kubelet identity (`identityProfile.kubeletidentity`), as in the az CLI procedure.
    Kubelet,
    /// A user-assigned identity (in the cluster's subscription) attached to the scale sets of every
    /// Windows node pool, as the PowerShell module's `Grant-AkvAccessToAksWindowsHosts` does;
    /// created if absent.
    UserAssigned { resource_group: String, name: String },
    /// An identity type a newer coordinator added: decoded, then refused by validation.
    #[serde(other)]
    Unknown,
}

/// Payload of `grant-identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantIdentity {
    pub vault: VaultRef,
    /// Name of the secret holding `DOMAIN\user:password`.
    #[serde(default = "default_secret_name")]
    pub secret_name: String,
    pub identity: IdentityChoice,
    /// `apply` (the default, also for a payload written before schema 1.3) or `dry-run`.
    #[serde(default)]
    pub mode: Mode,
}

pub(crate) fn default_secret_name() -> String {
    "GMSADomainUserCred".to_string()
}

/// Key Vault secret names: 1-127 letters, digits and '-'.
pub(crate) fn is_secret_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl GrantIdentity {
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.vault.validate("payload.vault")?;
        if !is_secret_name(&self.secret_name) {
            return Err(ValidationError::new("payload.secret_name", "must be 1-127 letters, digits and '-'"));
        }
        self.identity.validate("payload.identity")?;
        check_mode(self.mode)
    }
}

impl IdentityChoice {
    pub(crate) fn validate(&self, field: &str) -> Result<(), ValidationError> {
        if *self == IdentityChoice::Unknown {
            return Err(ValidationError::new(
                format!("{field}.type"),
                "unknown identity type; this build knows `kubelet` and `user-assigned`",
            ));
        }
        if let IdentityChoice::UserAssigned { resource_group, name } = self {
            if resource_group.is_empty() {
                return Err(ValidationError::new(format!("{field}.resource_group"), "must not be empty"));
            }
            if !(3..=128).contains(&name.len()) {
                return Err(ValidationError::new(format!("{field}.name"), "must be 3-128 characters"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_grant() -> GrantIdentity {
        GrantIdentity {
            vault: VaultRef {
                subscription_id: "00000000-0000-0000-0000-000000000001".into(),
                resource_group: "rg-gmsa".into(),
                name: "myGMSAVault".into(),
            },
            secret_name: "GMSADomainUserCred".into(),
            identity: IdentityChoice::Kubelet,
            mode: Mode::Apply,
        }
    }

    #[test]
    fn a_good_grant_passes() {
        assert!(mk_grant().validate().is_ok());
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut grant = mk_grant();
        grant.vault.subscription_id = "sub".into();
        assert_eq!(grant.validate().unwrap_err().field, "payload.vault.subscription_id");
        let mut grant = mk_grant();
        grant.vault.name = "9vault".into();
        assert_eq!(grant.validate().unwrap_err().field, "payload.vault.name");
        let mut grant = mk_grant();
        grant.secret_name = "a_b".into();
        assert_eq!(grant.validate().unwrap_err().field, "payload.secret_name");
        let mut grant = mk_grant();
        grant.identity = IdentityChoice::UserAssigned { resource_group: "rg".into(), name: "mi".into() };
        assert_eq!(grant.validate().unwrap_err().field, "payload.identity.name");
        let mut grant = mk_grant();
        grant.mode = Mode::Unknown;
        assert_eq!(grant.validate().unwrap_err().field, "payload.mode");
    }

    #[test]
    fn a_grant_without_mode_applies() {
        let mut json = serde_json::to_value(mk_grant()).unwrap();
        json.as_object_mut().unwrap().remove("mode");
        let older: GrantIdentity = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(older.mode, Mode::Apply);
        json["mode"] = "dry-run".into();
        assert_eq!(serde_json::from_value::<GrantIdentity>(json).unwrap().mode, Mode::DryRun);
    }
}
