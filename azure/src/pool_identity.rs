//! Which identities the Windows node pools run with (`Get-AksAgentPoolsAkvAccess`, first half):
//! per Windows pool, its scale set in the node resource group and the user-assigned identities
//! attached to it, with the cluster's kubelet identity marked.
//!
//! Expected flow: GET the cluster (Windows pools, `nodeResourceGroup`,
//! `identityProfile.kubeletidentity.resourceId`) → list the scale sets of the node resource group
//! → [`pool_identities_of`] matches each Windows pool to its scale set (tag
//! `aks-managed-poolName`, else equal name) and reads `identity.userAssignedIdentities`, whose
//! values carry `principalId` and `clientId`.
//!
//! Guarantees: read-only. Linux pools are not reported. A Windows pool whose scale set is not
//! found is reported with an empty `scale_set` and no identities (a pool of type
//! `VirtualMachines`, or a node resource group being rebuilt), so an audit still shows it.

use crate::arm::ArmClient;
use crate::cluster::kubelet_identity_of;
use crate::config::AzureConfig;
use crate::error::{Error, Operation};
use crate::gmsa_profile::windows_node_pools;
use crate::host_identity::{ScaleSet, cluster_and_scale_sets, scale_sets_of_pools};
use crate::resource::ClusterRef;
use serde::Serialize;
use serde_json::Value;

/// A Windows node pool and the identities its scale set runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolIdentity {
    /// Agent pool name (`agentPoolProfiles[].name`).
    pub pool: String,
    /// Name of the pool's scale set in the node resource group; empty when none was found.
    pub scale_set: String,
    /// User-assigned identities attached to the scale set, in the order ARM lists them.
    pub identities: Vec<AttachedIdentity>,
}

/// One user-assigned identity attached to a scale set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachedIdentity {
    /// ARM id of the user-assigned identity (as the scale set names it).
    pub id: String,
    /// Object (principal) id: what access policies and role assignments name.
    pub principal_id: String,
    /// Client id: what a credspec's `PluginInput` `ObjectId=` names.
    pub client_id: String,
    /// True when this is the cluster's kubelet identity (`identityProfile.kubeletidentity`).
    pub kubelet: bool,
}

/// The identities of the user-assigned map of a scale set's `identity`.
pub fn attached_identities(identity: Option<&Value>, kubelet_resource_id: Option<&str>) -> Vec<AttachedIdentity> {
    let Some(assigned) =
        identity.and_then(|identity| identity.get("userAssignedIdentities")).and_then(Value::as_object)
    else {
        return Vec::new();
    };
    assigned
        .iter()
        .map(|(id, value)| {
            let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
            AttachedIdentity {
                id: id.clone(),
                principal_id: field("principalId"),
                client_id: field("clientId"),
                kubelet: kubelet_resource_id.is_some_and(|kubelet| kubelet.eq_ignore_ascii_case(id)),
            }
        })
        .collect()
}

/// Per Windows pool of `cluster` (a managedClusters body), its scale set among `scale_sets` and
/// the identities on it.
pub fn pool_identities_of(cluster: &Value, scale_sets: &[ScaleSet]) -> Vec<PoolIdentity> {
    let kubelet = kubelet_identity_of(cluster).and_then(|identity| identity.resource_id);
    windows_node_pools(cluster)
        .map(|pool| match scale_sets_of_pools(scale_sets, &[pool]).first() {
            Some(scale_set) => PoolIdentity {
                pool: pool.to_string(),
                scale_set: scale_set.name.clone(),
                identities: attached_identities(scale_set.identity.as_ref(), kubelet.as_deref()),
            },
            None => PoolIdentity { pool: pool.to_string(), scale_set: String::new(), identities: Vec::new() },
        })
        .collect()
}

/// Reads the Windows pools' identities; see the module docs.
pub(crate) async fn windows_pool_identities(
    arm: &ArmClient,
    config: &AzureConfig,
    cluster: &ClusterRef,
) -> Result<Vec<PoolIdentity>, Error> {
    let (cluster_body, scale_sets) = cluster_and_scale_sets(arm, config, cluster, Operation::ListScaleSets).await?;
    Ok(pool_identities_of(&cluster_body, &scale_sets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KUBELET: &str = "/subscriptions/s/resourcegroups/MC_rg_aks_eastus/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aks-agentpool";
    const HOST: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/gmsa";

    fn mk_cluster() -> Value {
        json!({"properties": {
            "agentPoolProfiles": [{"name": "nodepool1", "osType": "Linux"}, {"name": "npwin", "osType": "Windows"},
                {"name": "npwin2", "osType": "Windows"}],
            "identityProfile": {"kubeletidentity": {"resourceId": KUBELET, "objectId": "k-object", "clientId": "k-client"}}
        }})
    }

    fn mk_scale_set(name: &str, pool: &str, identities: Value) -> ScaleSet {
        ScaleSet {
            id: format!("/vmss/{name}"),
            name: name.to_string(),
            tags: [("aks-managed-poolName".to_string(), pool.to_string())].into(),
            identity: Some(json!({"type": "UserAssigned", "userAssignedIdentities": identities})),
        }
    }

    #[test]
    fn windows_pools_report_their_identities_and_mark_the_kubelet_case_insensitively() {
        let scale_sets = [
            mk_scale_set("aks-nodepool1-1-vmss", "nodepool1", json!({KUBELET: {"principalId": "k-object"}})),
            mk_scale_set(
                "aks-npwin-1-vmss",
                "npwin",
                json!({KUBELET.to_uppercase(): {"principalId": "k-object", "clientId": "k-client"},
                    HOST: {"principalId": "h-object", "clientId": "h-client"}}),
            ),
        ];
        let pools = pool_identities_of(&mk_cluster(), &scale_sets);
        assert_eq!(pools.len(), 2, "Linux pool ignored, both Windows pools reported");
        assert_eq!((pools[0].pool.as_str(), pools[0].scale_set.as_str()), ("npwin", "aks-npwin-1-vmss"));
        let kubelet = pools[0].identities.iter().find(|identity| identity.kubelet).unwrap();
        assert_eq!((kubelet.principal_id.as_str(), kubelet.client_id.as_str()), ("k-object", "k-client"));
        let host = pools[0].identities.iter().find(|identity| !identity.kubelet).unwrap();
        assert_eq!(
            (host.id.as_str(), host.principal_id.as_str(), host.client_id.as_str()),
            (HOST, "h-object", "h-client")
        );
        assert_eq!(pools[1], PoolIdentity { pool: "npwin2".into(), scale_set: String::new(), identities: Vec::new() });
    }

    #[test]
    fn a_scale_set_without_user_assigned_identities_has_none() {
        assert!(attached_identities(Some(&json!({"type": "SystemAssigned"})), Some(KUBELET)).is_empty());
        assert!(attached_identities(None, None).is_empty());
    }
}
