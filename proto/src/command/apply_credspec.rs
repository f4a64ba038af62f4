//! `apply-credspec`: install the GMSACredentialSpec, its ClusterRole and RoleBindings.
//!
//! `mode` (schema 1.3) defaults to `apply`; `dry-run` runs preflight (it only reads), diffs the
//! desired objects against the cluster's, reports the diff as `planned`, writes nothing and does
//! not start the drift watch.

use super::{ValidationError, check_mode};
use crate::outcome::Mode;
use serde::{Deserialize, Serialize};

/// A service account that may use the credspec (one RoleBinding each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

/// Payload of `apply-credspec`: the Active Directory facts (read centrally by the coordinator) and
/// the cluster-side names. The agent builds and validates the credspec with `gmsa::credspec`,
/// which checks every field's syntax; this type only checks presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyCredspec {
    /// `metadata.name` of the GMSACredentialSpec (the seed's `aks-gmsa-spec`).
    pub spec_name: String,
    /// The gMSA's account name, without `$`.
    pub gmsa_account: String,
    pub netbios_domain: String,
    pub dns_domain: String,
    pub dns_tree_root: String,
    /// The domain's objectGUID, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub domain_guid: String,
    /// The domain's SID, `S-1-5-21-a-b-c` (no RID).
    pub domain_sid: String,
    /// `https://<vault>.vault.azure.net/secrets/<name>[/<version>]`.
    pub secret_uri: String,
    /// Object id of the identity the CCG plugin uses; `None` means the cluster's kubelet identity,
    /// which the agent reads from the managed cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_object_id: Option<String>,
    /// Service accounts bound to the ClusterRole (the seed binds `default/default`).
    #[serde(default)]
    pub bindings: Vec<ServiceAccountRef>,
    /// Stable identity of this credspec across renames (a label value): applying under the same
    /// owner with a new `spec_name` prunes the objects of the old name.
    #[serde(default = "default_owner")]
    pub owner: String,
    /// `apply` (the default, also for a payload written before schema 1.3) or `dry-run`.
    #[serde(default)]
    pub mode: Mode,
}

fn default_owner() -> String {
    "default".to_string()
}

impl ApplyCredspec {
    pub fn validate(&self) -> Result<(), ValidationError> {
        let required = [
            ("payload.spec_name", &self.spec_name),
            ("payload.gmsa_account", &self.gmsa_account),
            ("payload.netbios_domain", &self.netbios_domain),
            ("payload.dns_domain", &self.dns_domain),
            ("payload.dns_tree_root", &self.dns_tree_root),
            ("payload.domain_guid", &self.domain_guid),
            ("payload.domain_sid", &self.domain_sid),
            ("payload.secret_uri", &self.secret_uri),
        ];
        for (field, value) in required {
            if value.trim().is_empty() {
                return Err(ValidationError::new(field, "must not be empty"));
            }
        }
        for (index, binding) in self.bindings.iter().enumerate() {
            if binding.namespace.is_empty() || binding.name.is_empty() {
                return Err(ValidationError::new(format!("payload.bindings[{index}]"), "needs a namespace and a name"));
            }
        }
        check_mode(self.mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_payload_json() -> serde_json::Value {
        serde_json::json!({
            "spec_name": "aks-gmsa-spec", "gmsa_account": "WebApp01", "netbios_domain": "CONTOSO",
            "dns_domain": "contoso.com", "dns_tree_root": "contoso.com",
            "domain_guid": "e7e8a8b0-5f5a-4b5e-9d8a-0c8c2f1e4a11", "domain_sid": "S-1-5-21-1-2-3",
            "secret_uri": "https://kv.vault.azure.net/secrets/GMSADomainUserCred",
        })
    }

    #[test]
    fn a_payload_without_mode_applies_and_an_unknown_mode_is_refused() {
        let older: ApplyCredspec = serde_json::from_value(mk_payload_json()).unwrap();
        assert_eq!(older.mode, Mode::Apply, "an older coordinator's payload means apply");
        assert!(older.validate().is_ok());
        let mut json = mk_payload_json();
        json["mode"] = "dry-run".into();
        assert_eq!(serde_json::from_value::<ApplyCredspec>(json.clone()).unwrap().mode, Mode::DryRun);
        json["mode"] = "rehearse".into();
        let newer: ApplyCredspec = serde_json::from_value(json).unwrap();
        assert_eq!((newer.mode, newer.validate().unwrap_err().field.as_str()), (Mode::Unknown, "payload.mode"));
    }
}
