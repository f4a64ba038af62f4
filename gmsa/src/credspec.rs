//! The `GMSACredentialSpec` a Windows node's Container Credential Guard (CCG) reads: built from
//! typed, validated inputs, in exactly the shape of the AKS seed's `gmsa-spec.yaml`.
//!
//! ```text
//!   CredSpecInputs (strings from config / AD facts)
//!        │  CredSpec::new — validates every field, errors name the field and the rule
//!        ▼
//!   CredSpec ──manifest(ApiVersion)──► serde_json::Value (what `cluster` server-side applies)
//! ```
//!
//! The seed's YAML has two known defects that this builder does not copy: the `$GMSA_SID`
//! placeholder (the field holds the **domain** SID, `S-1-5-21-a-b-c`, as Microsoft's
//! CredentialSpec module writes it) and a mis-indented `CmsPlugins` list (the test parses the
//! seed with that indentation corrected). Field rules are documented in [`fields`].

pub mod fields;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use fields::{DnsName, DomainSid, GmsaAccountName, Guid, NetBiosName, ObjectName, Rule, SecretUri};

/// The CCG plugin that reads the domain user's credential from Azure Key Vault with the node's
/// managed identity (the AKS gMSA plugin).
pub const KEY_VAULT_PLUGIN_GUID: &str = "{CCC2A336-D7F3-4818-A213-272B7924213E}";
/// The API group of the windows-gmsa CRD.
pub const API_GROUP: &str = "windows.k8s.io";
/// The CRD's kind.
pub const KIND: &str = "GMSACredentialSpec";
/// The CRD's plural resource name, used in URLs and RBAC rules.
pub const PLURAL: &str = "gmsacredentialspecs";

/// The raw inputs of one credential spec, as they come from configuration and from the domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredSpecInputs {
    /// `metadata.name` of the GMSACredentialSpec, referenced by pods' `gmsaCredentialSpecName`.
    pub name: String,
    /// The gMSA's name without the trailing `$` (`MachineAccountName`).
    pub gmsa_account: String,
    /// The domain's NetBIOS name (`CONTOSO`).
    pub netbios_domain: String,
    /// The domain's DNS name (`contoso.com`).
    pub dns_domain: String,
    /// The DNS name of the forest's tree root (`contoso.com`, or a parent of `dns_domain`).
    pub dns_tree_root: String,
    /// The domain's objectGUID.
    pub domain_guid: String,
    /// The domain's SID `S-1-5-21-a-b-c` (not the gMSA's SID).
    pub domain_sid: String,
    /// The Key Vault secret holding `DOMAIN\user:password` of the user allowed to read the gMSA.
    pub secret_uri: String,
    /// The object id of the managed identity the Windows nodes use to read that secret.
    pub managed_identity_object_id: String,
}

/// A credential spec input that broke its rule; each variant names the field it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredSpecError {
    /// `metadata.name` is not a DNS-1123 subdomain.
    #[error("credspec metadata.name {value:?} is invalid: {rule}")]
    Name { value: String, rule: Rule },
    /// The gMSA account name breaks the sAMAccountName rules.
    #[error("credspec gMSA account name (MachineAccountName) {value:?} is invalid: {rule}")]
    GmsaAccount { value: String, rule: Rule },
    /// The NetBIOS domain name is invalid.
    #[error("credspec NetBIOS domain name (NetBiosName) {value:?} is invalid: {rule}")]
    NetBiosDomain { value: String, rule: Rule },
    /// The DNS domain name is not an RFC 1123 FQDN.
    #[error("credspec DNS domain name (DnsName) {value:?} is invalid: {rule}")]
    DnsDomain { value: String, rule: Rule },
    /// The DNS tree root is not an RFC 1123 FQDN or not a parent of the DNS domain name.
    #[error("credspec DNS tree root (DnsTreeName) {value:?} is invalid: {rule}")]
    DnsTreeRoot { value: String, rule: Rule },
    /// The domain GUID is not a GUID.
    #[error("credspec domain GUID (DomainJoinConfig.Guid) {value:?} is invalid: {rule}")]
    DomainGuid { value: String, rule: Rule },
    /// The domain SID is not a domain SID.
    #[error("credspec domain SID (DomainJoinConfig.Sid) {value:?} is invalid: {rule}")]
    DomainSid { value: String, rule: Rule },
    /// The Key Vault secret URI does not have the Key Vault form.
    #[error("credspec Key Vault secret URI (PluginInput SecretUri) {value:?} is invalid: {rule}")]
    SecretUri { value: String, rule: Rule },
    /// The managed identity object id is not a GUID.
    #[error("credspec managed identity object id (PluginInput ObjectId) {value:?} is invalid: {rule}")]
    ObjectId { value: String, rule: Rule },
}

/// Which field of [`CredSpecInputs`] an error is about, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredSpecField {
    Name,
    GmsaAccount,
    NetBiosDomain,
    DnsDomain,
    DnsTreeRoot,
    DomainGuid,
    DomainSid,
    SecretUri,
    ObjectId,
}

impl CredSpecError {
    /// The field that failed.
    pub fn field(&self) -> CredSpecField {
        match self {
            CredSpecError::Name { .. } => CredSpecField::Name,
            CredSpecError::GmsaAccount { .. } => CredSpecField::GmsaAccount,
            CredSpecError::NetBiosDomain { .. } => CredSpecField::NetBiosDomain,
            CredSpecError::DnsDomain { .. } => CredSpecField::DnsDomain,
            CredSpecError::DnsTreeRoot { .. } => CredSpecField::DnsTreeRoot,
            CredSpecError::DomainGuid { .. } => CredSpecField::DomainGuid,
            CredSpecError::DomainSid { .. } => CredSpecField::DomainSid,
            CredSpecError::SecretUri { .. } => CredSpecField::SecretUri,
            CredSpecError::ObjectId { .. } => CredSpecField::ObjectId,
        }
    }

    /// The rule the field broke.
    pub fn rule(&self) -> &Rule {
        match self {
            CredSpecError::Name { rule, .. }
            | CredSpecError::GmsaAccount { rule, .. }
            | CredSpecError::NetBiosDomain { rule, .. }
            | CredSpecError::DnsDomain { rule, .. }
            | CredSpecError::DnsTreeRoot { rule, .. }
            | CredSpecError::DomainGuid { rule, .. }
            | CredSpecError::DomainSid { rule, .. }
            | CredSpecError::SecretUri { rule, .. }
            | CredSpecError::ObjectId { rule, .. } => rule,
        }
    }
}

/// The served version of the windows-gmsa CRD a manifest is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ApiVersion {
    /// `windows.k8s.io/v1`, served since windows-gmsa 0.4 and by AKS since release v20230903.
    V1,
    /// `windows.k8s.io/v1alpha1`, deprecated; used only when a cluster serves nothing newer.
    V1Alpha1,
}

impl ApiVersion {
    /// The version part (`v1`, `v1alpha1`).
    pub fn version(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1",
            ApiVersion::V1Alpha1 => "v1alpha1",
        }
    }

    /// The full `apiVersion` (`windows.k8s.io/v1`).
    pub fn api_version(self) -> String {
        format!("{API_GROUP}/{}", self.version())
    }

    /// Picks `v1` when served, else `v1alpha1` when that is all there is, else `None`.
    pub fn choose(served_versions: &[String]) -> Option<ApiVersion> {
        let serves = |wanted: &str| served_versions.iter().any(|served| served == wanted);
        if serves("v1") {
            Some(ApiVersion::V1)
        } else if serves("v1alpha1") {
            Some(ApiVersion::V1Alpha1)
        } else {
            None
        }
    }
}

/// A validated credential spec: every field has passed its rule, so [`CredSpec::manifest`]
/// cannot produce something the Windows node would reject for syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredSpec {
    pub name: ObjectName,
    pub gmsa_account: GmsaAccountName,
    pub netbios_domain: NetBiosName,
    pub dns_domain: DnsName,
    pub dns_tree_root: DnsName,
    pub domain_guid: Guid,
    pub domain_sid: DomainSid,
    pub secret_uri: SecretUri,
    pub managed_identity_object_id: Guid,
}

impl CredSpec {
    /// Validates every input; the first field that breaks its rule is returned as the error.
    pub fn new(inputs: &CredSpecInputs) -> Result<CredSpec, CredSpecError> {
        let value = |text: &String| text.clone();
        let dns_domain = DnsName::parse(&inputs.dns_domain)
            .map_err(|rule| CredSpecError::DnsDomain { value: value(&inputs.dns_domain), rule })?;
        let dns_tree_root = DnsName::parse(&inputs.dns_tree_root)
            .map_err(|rule| CredSpecError::DnsTreeRoot { value: value(&inputs.dns_tree_root), rule })?;
        if !dns_tree_root.is_same_or_parent_of(&dns_domain) {
            return Err(CredSpecError::DnsTreeRoot {
                value: value(&inputs.dns_tree_root),
                rule: Rule::NotTreeRoot { dns_name: inputs.dns_domain.clone() },
            });
        }
        Ok(CredSpec {
            name: ObjectName::parse(&inputs.name)
                .map_err(|rule| CredSpecError::Name { value: value(&inputs.name), rule })?,
            gmsa_account: GmsaAccountName::parse(&inputs.gmsa_account)
                .map_err(|rule| CredSpecError::GmsaAccount { value: value(&inputs.gmsa_account), rule })?,
            netbios_domain: NetBiosName::parse(&inputs.netbios_domain)
                .map_err(|rule| CredSpecError::NetBiosDomain { value: value(&inputs.netbios_domain), rule })?,
            dns_domain,
            dns_tree_root,
            domain_guid: Guid::parse(&inputs.domain_guid)
                .map_err(|rule| CredSpecError::DomainGuid { value: value(&inputs.domain_guid), rule })?,
            domain_sid: DomainSid::parse(&inputs.domain_sid)
                .map_err(|rule| CredSpecError::DomainSid { value: value(&inputs.domain_sid), rule })?,
            secret_uri: SecretUri::parse(&inputs.secret_uri)
                .map_err(|rule| CredSpecError::SecretUri { value: value(&inputs.secret_uri), rule })?,
            managed_identity_object_id: Guid::parse(&inputs.managed_identity_object_id)
                .map_err(|rule| CredSpecError::ObjectId { value: value(&inputs.managed_identity_object_id), rule })?,
        })
    }

    /// The `PluginInput` string the Key Vault CCG plugin parses.
    pub fn plugin_input(&self) -> String {
        format!("ObjectId={};SecretUri={}", self.managed_identity_object_id, self.secret_uri)
    }

    /// The `credspec` body (everything under the top-level `credspec` key).
    pub fn body(&self) -> Value {
        let account = self.gmsa_account.as_str();
        serde_json::json!({
            "ActiveDirectoryConfig": {
                "GroupManagedServiceAccounts": [
                    { "Name": account, "Scope": self.netbios_domain.as_str() },
                    { "Name": account, "Scope": self.dns_domain.as_str() },
                ],
                "HostAccountConfig": {
                    "PluginGUID": KEY_VAULT_PLUGIN_GUID,
                    "PortableCcgVersion": "1",
                    "PluginInput": self.plugin_input(),
                },
            },
            "CmsPlugins": ["ActiveDirectory"],
            "DomainJoinConfig": {
                "DnsName": self.dns_domain.as_str(),
                "DnsTreeName": self.dns_tree_root.as_str(),
                "Guid": self.domain_guid.as_str(),
                "MachineAccountName": account,
                "NetBiosName": self.netbios_domain.as_str(),
                "Sid": self.domain_sid.as_str(),
            },
        })
    }

    /// The whole object as the seed's `gmsa-spec.yaml` has it, for the given served version.
    /// Labels are the caller's business (the `cluster` crate adds its ownership labels).
    pub fn manifest(&self, version: ApiVersion) -> Value {
        serde_json::json!({
            "apiVersion": version.api_version(),
            "kind": KIND,
            "metadata": { "name": self.name.as_str() },
            "credspec": self.body(),
        })
    }
}
