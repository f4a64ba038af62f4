//! Names of the Azure resources the adapter works on, and their ARM ids.

use std::fmt;

/// An AKS managed cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterRef {
    /// Subscription id.
    pub subscription_id: String,
    /// Resource group of the cluster.
    pub resource_group: String,
    /// Cluster name.
    pub name: String,
}

impl ClusterRef {
    /// A cluster reference.
    pub fn new(subscription_id: impl Into<String>, resource_group: impl Into<String>, name: impl Into<String>) -> Self {
        ClusterRef { subscription_id: subscription_id.into(), resource_group: resource_group.into(), name: name.into() }
    }

    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}`.
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
}

impl fmt::Display for ClusterRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// An Azure Key Vault.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VaultRef {
    /// Subscription id.
    pub subscription_id: String,
    /// Resource group of the vault.
    pub resource_group: String,
    /// Vault name.
    pub name: String,
    /// Data-plane URL (`https://{name}.vault.azure.net/`); `None` to read `properties.vaultUri`.
    pub vault_uri: Option<String>,
}

impl VaultRef {
    /// A vault reference whose data-plane URL is read from ARM when needed.
    pub fn new(subscription_id: impl Into<String>, resource_group: impl Into<String>, name: impl Into<String>) -> Self {
        VaultRef {
            subscription_id: subscription_id.into(),
            resource_group: resource_group.into(),
            name: name.into(),
            vault_uri: None,
        }
    }

    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}`.
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
}

/// A vault as commands name it on the wire; its data-plane URL is read from ARM when needed.
impl From<&proto::command::VaultRef> for VaultRef {
    fn from(vault: &proto::command::VaultRef) -> Self {
        VaultRef::new(&vault.subscription_id, &vault.resource_group, &vault.name)
    }
}

impl fmt::Display for VaultRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// A user-assigned managed identity to create (if missing) and attach to the Windows node
/// pools' scale sets, as the PowerShell module's `Grant-AkvAccessToAksWindowsHosts` does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostIdentityRef {
    /// Subscription id.
    pub subscription_id: String,
    /// Resource group of the identity.
    pub resource_group: String,
    /// Identity name.
    pub name: String,
    /// Region to create it in.
    pub location: String,
}

impl HostIdentityRef {
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}`.
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_arm_layout() {
        let cluster = ClusterRef::new("sub", "rg", "aks1");
        assert_eq!(
            cluster.id(),
            "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1"
        );
        let vault = VaultRef::new("sub", "rg", "kv1");
        assert_eq!(vault.id(), "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1");
    }
}
