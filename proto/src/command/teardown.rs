//! `teardown` (schema 1.2): every `Remove-*` of the PowerShell module, in reverse order of setup.
//!
//! The agent's part, per cluster: `credspec-remove` (RoleBindings, ClusterRole, credspec that
//! gmsa-fleet created, nothing else), `vault-revoke` (the grant gmsa-fleet made), `identity-detach`
//! (a user-assigned identity, from the Windows pools' scale sets) and `cluster-update` (disable
//! gMSA). Shared resources — the secret, the user-assigned identity, the gMSA and the domain user —
//! are deleted centrally, only when asked in `delete`, after every cluster that used them is torn
//! down; the coordinator refuses the command while a cluster outside the selection still uses one.
//!
//! `mode` defaults to `dry-run`: the agent reads, diffs and reports each step as `planned`.

use super::grant_identity::{IdentityChoice, VaultRef, default_secret_name, is_secret_name};
use super::{ValidationError, check_mode};
use crate::outcome::Mode;
use serde::{Deserialize, Serialize};

/// Shared resources to delete once no cluster uses them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedDeletes {
    /// Delete (and purge) the domain-user secret.
    #[serde(default)]
    pub secret: bool,
    /// Delete the user-assigned identity named in `identity`.
    #[serde(default)]
    pub identity: bool,
    /// Delete this gMSA (account name without `$`) from Active Directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gmsa: Option<String>,
    /// Delete this standard domain user from Active Directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_user: Option<String>,
}

impl SharedDeletes {
    /// True when nothing shared is to be deleted.
    pub fn is_empty(&self) -> bool {
        !self.secret && !self.identity && self.gmsa.is_none() && self.domain_user.is_none()
    }
}

/// Payload of `teardown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Teardown {
    /// The credspec (and its ClusterRole and RoleBindings) to remove.
    pub spec_name: String,
    #[serde(default = "default_owner")]
    pub owner: String,
    pub vault: VaultRef,
    #[serde(default = "default_secret_name")]
    pub secret_name: String,
    /// The identity that was granted (its grant is revoked; a user-assigned one is detached).
    pub identity: IdentityChoice,
    /// Also disable gMSA on the managed cluster (the default).
    #[serde(default = "yes")]
    pub disable_gmsa: bool,
    #[serde(default)]
    pub delete: SharedDeletes,
    /// `dry-run` (the default) plans; `apply` acts.
    #[serde(default = "dry_run")]
    pub mode: Mode,
}

fn default_owner() -> String {
    "default".to_string()
}
fn yes() -> bool {
    true
}
fn dry_run() -> Mode {
    Mode::DryRun
}

impl Teardown {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.spec_name.trim().is_empty() {
            return Err(ValidationError::new("payload.spec_name", "must not be empty"));
        }
        if self.owner.trim().is_empty() {
            return Err(ValidationError::new("payload.owner", "must not be empty"));
        }
        self.vault.validate("payload.vault")?;
        if !is_secret_name(&self.secret_name) {
            return Err(ValidationError::new("payload.secret_name", "must be 1-127 letters, digits and '-'"));
        }
        self.identity.validate("payload.identity")?;
        check_mode(self.mode)?;
        if self.delete.identity && self.identity == IdentityChoice::Kubelet {
            return Err(ValidationError::new(
                "payload.delete.identity",
                "only a user-assigned identity can be deleted; the kubelet identity belongs to the cluster",
            ));
        }
        for (field, value) in
            [("payload.delete.gmsa", &self.delete.gmsa), ("payload.delete.domain_user", &self.delete.domain_user)]
        {
            if value.as_deref().is_some_and(|name| name.trim().is_empty() || name.ends_with('$')) {
                return Err(ValidationError::new(field, "must be an account name without a trailing '$'"));
            }
        }
        Ok(())
    }
}
