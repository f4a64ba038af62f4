//! What tests put into the simulator before they run: clusters, vaults, principals; and what the
//! seeding calls hand back (ids, kubelet identity, vault URI) so tests can aim at them.

use serde::{Deserialize, Serialize};

/// Operating system of an AKS agent pool (`agentPoolProfiles[].osType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OsType {
    /// `"Linux"`.
    Linux,
    /// `"Windows"`.
    Windows,
}

impl OsType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            OsType::Linux => "Linux",
            OsType::Windows => "Windows",
        }
    }
}

/// One agent pool of a seeded cluster; each gets a VM scale set in the node resource group.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentPoolSeed {
    /// Pool name (`agentPoolProfiles[].name`).
    pub name: String,
    /// Pool OS.
    pub os_type: OsType,
    /// Node count.
    pub count: u32,
}

/// `properties.windowsProfile.gmsaProfile` as AKS models it (managedClusters.json `WindowsGmsaProfile`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GmsaProfile {
    /// `enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `dnsServer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_server: Option<String>,
    /// `rootDomainName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_domain_name: Option<String>,
}

/// A managed cluster to seed.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSeed {
    /// Location; the simulator's default when `None`.
    pub location: Option<String>,
    /// `windowsProfile.adminUsername`; `None` seeds a cluster without a Windows profile.
    pub windows_admin_username: Option<String>,
    /// Initial `windowsProfile.gmsaProfile` (ignored without a Windows profile).
    pub gmsa: Option<GmsaProfile>,
    /// Agent pools, in order.
    pub agent_pools: Vec<AgentPoolSeed>,
    /// `kubernetesVersion`.
    pub kubernetes_version: String,
}

impl ClusterSeed {
    /// A cluster with a Linux system pool, a Windows user pool and a Windows profile, gMSA off.
    pub fn windows() -> Self {
        ClusterSeed {
            location: None,
            windows_admin_username: Some("azureuser".to_string()),
            gmsa: None,
            agent_pools: vec![
                AgentPoolSeed { name: "nodepool1".to_string(), os_type: OsType::Linux, count: 3 },
                AgentPoolSeed { name: "npwin".to_string(), os_type: OsType::Windows, count: 2 },
            ],
            kubernetes_version: "1.30.6".to_string(),
        }
    }

    /// A cluster with only a Linux pool and no Windows profile.
    pub fn linux_only() -> Self {
        ClusterSeed {
            windows_admin_username: None,
            agent_pools: vec![AgentPoolSeed { name: "nodepool1".to_string(), os_type: OsType::Linux, count: 3 }],
            ..ClusterSeed::windows()
        }
    }

    /// Same cluster with this initial gMSA profile.
    pub fn with_gmsa(mut self, gmsa: GmsaProfile) -> Self {
        self.gmsa = Some(gmsa);
        self
    }
}

/// An identity as ARM reports it: resource id plus the ids Entra knows it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityInfo {
    /// ARM id of the user-assigned identity.
    pub resource_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Object (principal) id.
    pub object_id: String,
}

/// What `add_managed_cluster` created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededCluster {
    /// ARM id of the managed cluster.
    pub id: String,
    /// `properties.nodeResourceGroup`.
    pub node_resource_group: String,
    /// `identityProfile.kubeletidentity`, also created as a user-assigned identity in the node resource group.
    pub kubelet: IdentityInfo,
    /// ARM ids of the pools' scale sets (same order as the seed's pools).
    pub scale_sets: Vec<String>,
}

/// Key Vault access policy permissions (vaults.json `Permissions`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Key permissions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Secret permissions (`get`, `list`, `set`, `delete`, `backup`, `restore`, `recover`, `purge`, `all`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Certificate permissions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    /// Storage permissions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<String>,
}

/// One access policy entry (vaults.json `AccessPolicyEntry`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicyEntry {
    /// Tenant of the principal.
    pub tenant_id: String,
    /// Object id of the principal.
    pub object_id: String,
    /// Compound identity application id, rarely used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// Granted permissions.
    pub permissions: Permissions,
}

/// A vault to seed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VaultSeed {
    /// Location; the simulator's default when `None`.
    pub location: Option<String>,
    /// `properties.enableRbacAuthorization`.
    pub enable_rbac_authorization: bool,
    /// `properties.accessPolicies`.
    pub access_policies: Vec<AccessPolicyEntry>,
}

/// What `add_vault` created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededVault {
    /// ARM id of the vault.
    pub id: String,
    /// `properties.vaultUri` (`https://127.0.0.1:<port>/`).
    pub vault_uri: String,
}
