//! AKS managed clusters: GET/PUT with `eTag` + `If-Match`/`If-None-Match`, the long-running
//! update (201/200 with `Azure-AsyncOperation`, `Location`, `Retry-After`; `Updating` → `Succeeded`
//! after the configured duration), the operation status endpoint, 409 `OperationNotAllowed`
//! while an operation runs, and AKS's gMSA validation.
//!
//! Modelled on `specification/containerservice/resource-manager/Microsoft.ContainerService/aks/
//! stable/2024-09-01/managedClusters.json` (ManagedClusters_Get, ManagedClusters_CreateOrUpdate,
//! `WindowsGmsaProfile`, `ManagedClusterIdentity`, `eTag`) and its examples
//! `ManagedClustersGet.json` and `ManagedClustersCreate_UpdateWindowsGmsa.json`.

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

mod lro;
mod validation;

pub(crate) use lro::{begin_operation, operation_status, set_provisioning_state};
pub(crate) use validation::normalize_etag;
use validation::{check_preconditions, validate};

use super::ArmRequest;
use super::error::{ArmError, ArmResponse, ArmResult};
use crate::config::Operation;
use crate::seed::{ClusterSeed, IdentityInfo, OsType, SeededCluster};
use crate::state::{Cluster, State};

const TYPE: &str = "Microsoft.ContainerService/ManagedClusters";

/// Canonical id (AKS writes `resourcegroups` in lower case, as in the spec examples).
pub(crate) fn cluster_id(subscription: &str, resource_group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourcegroups/{resource_group}/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
}

/// Seeds a cluster with its node resource group, kubelet identity and scale sets.
pub(crate) fn seed(
    state: &mut State,
    subscription: &str,
    resource_group: &str,
    name: &str,
    seed: &ClusterSeed,
) -> SeededCluster {
    state.ensure_resource_group(subscription, resource_group);
    let location = seed.location.clone().unwrap_or_else(|| state.location.clone());
    let node_resource_group = format!("MC_{resource_group}_{name}_{location}");
    state.ensure_resource_group(subscription, &node_resource_group);
    let kubelet_name = format!("{name}-agentpool");
    let kubelet_id = super::identities::create(state, subscription, &node_resource_group, &kubelet_name, &location);
    let kubelet = state.identities.get(&kubelet_id.to_ascii_lowercase()).map(|identity| IdentityInfo {
        resource_id: identity.id.clone(),
        client_id: identity.client_id.clone(),
        object_id: identity.principal_id.clone(),
    });
    let kubelet =
        kubelet.unwrap_or(IdentityInfo { resource_id: kubelet_id, client_id: String::new(), object_id: String::new() });
    let pool_suffix = (state.rng.next_u64() % 90_000_000 + 10_000_000).to_string();
    let scale_sets = seed
        .agent_pools
        .iter()
        .map(|pool| {
            let vmss_name = format!("aks-{}-{pool_suffix}-vmss", pool.name);
            super::scale_sets::create(
                state,
                subscription,
                &node_resource_group,
                &vmss_name,
                &location,
                &pool.name,
                pool.os_type,
                pool.count,
            )
        })
        .collect::<Vec<String>>();
    // AKS attaches the kubelet identity to every pool's scale set (that is how kubelet gets its
    // token from IMDS), Linux and Windows alike.
    for scale_set_id in &scale_sets {
        if let Some(scale_set) = state.scale_sets.get_mut(&scale_set_id.to_ascii_lowercase()) {
            scale_set.user_assigned.insert(kubelet.resource_id.clone());
        }
    }

    let pools: Vec<Value> = seed
        .agent_pools
        .iter()
        .enumerate()
        .map(|(index, pool)| {
            json!({
                "name": pool.name,
                "count": pool.count,
                "vmSize": "Standard_D4s_v3",
                "osType": pool.os_type.as_str(),
                "osSKU": if pool.os_type == OsType::Windows { "Windows2022" } else { "Ubuntu" },
                "type": "VirtualMachineScaleSets",
                "mode": if index == 0 { "System" } else { "User" },
                "maxPods": 30,
                "orchestratorVersion": seed.kubernetes_version,
                "currentOrchestratorVersion": seed.kubernetes_version,
                "provisioningState": "Succeeded",
                "powerState": {"code": "Running"},
                "eTag": state.new_guid(),
            })
        })
        .collect();
    let mut properties = json!({
        "provisioningState": "Succeeded",
        "powerState": {"code": "Running"},
        "kubernetesVersion": seed.kubernetes_version,
        "currentKubernetesVersion": seed.kubernetes_version,
        "dnsPrefix": format!("{name}-dns"),
        "fqdn": format!("{name}-dns-{pool_suffix}.hcp.{location}.azmk8s.io"),
        "agentPoolProfiles": pools,
        "servicePrincipalProfile": {"clientId": "msi"},
        "identityProfile": {"kubeletidentity": {
            "resourceId": kubelet.resource_id,
            "clientId": kubelet.client_id,
            "objectId": kubelet.object_id,
        }},
        "nodeResourceGroup": node_resource_group,
        "enableRBAC": true,
        "maxAgentPools": 100,
        "networkProfile": {"networkPlugin": "azure", "loadBalancerSku": "standard", "outboundType": "loadBalancer"},
    });
    if let Some(admin) = &seed.windows_admin_username {
        let mut windows = json!({"adminUsername": admin, "enableCSIProxy": true});
        if let Some(gmsa) = &seed.gmsa {
            windows["gmsaProfile"] = serde_json::to_value(gmsa).unwrap_or(Value::Null);
        }
        properties["windowsProfile"] = windows;
    }
    let id = cluster_id(subscription, resource_group, name);
    let resource = json!({
        "id": id,
        "location": location,
        "name": name,
        "type": TYPE,
        "eTag": state.new_guid(),
        "tags": {},
        "sku": {"name": "Base", "tier": "Free"},
        "identity": {"type": "SystemAssigned", "principalId": state.new_guid(), "tenantId": state.tenant_id},
        "properties": properties,
    });
    state.clusters.insert(id.to_ascii_lowercase(), Cluster { resource, running_operation: None });
    SeededCluster { id, node_resource_group, kubelet, scale_sets }
}

/// ManagedClusters_Get.
pub(crate) fn get(state: &State, subscription: &str, resource_group: &str, name: &str) -> ArmResult {
    let cluster = find(state, subscription, resource_group, name)?;
    Ok(with_etag(ArmResponse::ok(cluster.resource.clone()), &cluster.resource))
}

fn find<'a>(state: &'a State, subscription: &str, resource_group: &str, name: &str) -> Result<&'a Cluster, ArmError> {
    if !state.has_resource_group(subscription, resource_group) {
        return Err(ArmError::resource_group_not_found(resource_group));
    }
    state
        .clusters
        .get(&cluster_id(subscription, resource_group, name).to_ascii_lowercase())
        .ok_or_else(|| ArmError::resource_not_found("Microsoft.ContainerService/managedClusters", name, resource_group))
}

fn with_etag(response: ArmResponse, resource: &Value) -> ArmResponse {
    match resource["eTag"].as_str() {
        Some(etag) => response.with_header("ETag", format!("\"{etag}\"")),
        None => response,
    }
}

/// ManagedClusters_CreateOrUpdate.
pub(crate) fn put(
    state: &mut State,
    subscription: &str,
    resource_group: &str,
    name: &str,
    request: &ArmRequest<'_>,
    now: Instant,
) -> ArmResult {
    if !state.has_resource_group(subscription, resource_group) {
        return Err(ArmError::resource_group_not_found(resource_group));
    }
    let body = request.json_body()?;
    let key = cluster_id(subscription, resource_group, name).to_ascii_lowercase();
    let existing = state.clusters.get(&key).cloned();
    let current_etag = existing.as_ref().and_then(|cluster| cluster.resource["eTag"].as_str().map(str::to_string));
    check_preconditions(request, current_etag.as_deref())?;
    if let Some(operation_id) = existing.as_ref().and_then(|cluster| cluster.running_operation.clone()) {
        let running = existing
            .as_ref()
            .and_then(|cluster| cluster.resource["properties"]["provisioningState"].as_str())
            .unwrap_or("Updating");
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "Operation is not allowed: Another operation ({running}) is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details. Operation ID: {operation_id}"
            ),
        ));
    }
    validate(&body, existing.as_ref().map(|cluster| &cluster.resource))?;

    let created = existing.is_none();
    let mut resource = match &existing {
        Some(cluster) => merge_into_existing(&cluster.resource, &body),
        None => new_resource(state, subscription, resource_group, name, &body),
    };
    let changed = existing.as_ref().is_none_or(|cluster| comparable(&cluster.resource) != comparable(&resource));
    let state_name = if created { "Creating" } else { "Updating" };
    set_provisioning_state(&mut resource, state_name);
    // A cluster-level write renews the cluster's and every agent pool's eTag (AKS "use-etags").
    resource["eTag"] = Value::from(state.new_guid());
    if let Some(pools) = resource
        .get_mut("properties")
        .and_then(|properties| properties.get_mut("agentPoolProfiles"))
        .and_then(Value::as_array_mut)
    {
        for pool in pools.iter_mut().filter_map(Value::as_object_mut) {
            pool.insert("eTag".to_string(), Value::from(state.rng.uuid().to_string()));
        }
    }
    let id = resource["id"].as_str().unwrap_or_default().to_string();
    let location = resource["location"].as_str().unwrap_or_default().to_string();
    state.clusters.insert(key.clone(), Cluster { resource: resource.clone(), running_operation: None });
    let duration = state.lro_duration;
    let operation_id = begin_operation(state, &id, duration, now).unwrap_or_default();
    state.record("PUT", &id, Operation::ClusterPut, changed, &body);

    let status_url = format!(
        "{}/subscriptions/{subscription}/providers/Microsoft.ContainerService/locations/{location}/operations/{operation_id}?api-version={}",
        request.arm_endpoint, request.api_version
    );
    let result_url = status_url.replacen("/operations/", "/operationresults/", 1);
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(with_etag(ArmResponse::json(status, resource.clone()), &resource)
        .with_header("Azure-AsyncOperation", status_url)
        .with_header("Location", result_url)
        .with_header("Retry-After", state.lro_retry_after_secs.to_string()))
}

/// Applies a PUT body to an existing cluster, keeping what the service owns.
fn merge_into_existing(existing: &Value, body: &Value) -> Value {
    let mut resource = existing.clone();
    for field in ["tags", "sku", "identity"] {
        if !body[field].is_null() {
            resource[field] = body[field].clone();
        }
    }
    let read_only = [
        "provisioningState",
        "powerState",
        "fqdn",
        "currentKubernetesVersion",
        "nodeResourceGroup",
        "identityProfile",
        "maxAgentPools",
    ];
    if let Some(requested) = body["properties"].as_object() {
        for (field, value) in requested {
            if !read_only.contains(&field.as_str()) {
                resource["properties"][field] = value.clone();
            }
        }
    }
    scrub(&mut resource);
    resource
}

fn new_resource(state: &mut State, subscription: &str, resource_group: &str, name: &str, body: &Value) -> Value {
    let mut resource = body.clone();
    let location = body["location"].as_str().unwrap_or_default().to_string();
    resource["id"] = Value::from(cluster_id(subscription, resource_group, name));
    resource["name"] = Value::from(name);
    resource["type"] = Value::from(TYPE);
    let node_resource_group = body["properties"]["nodeResourceGroup"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("MC_{resource_group}_{name}_{location}"));
    state.ensure_resource_group(subscription, &node_resource_group);
    resource["properties"]["nodeResourceGroup"] = Value::from(node_resource_group.clone());
    let kubelet_id =
        super::identities::create(state, subscription, &node_resource_group, &format!("{name}-agentpool"), &location);
    if let Some(kubelet) = state.identities.get(&kubelet_id.to_ascii_lowercase()) {
        resource["properties"]["identityProfile"] = json!({"kubeletidentity": {
            "resourceId": kubelet.id, "clientId": kubelet.client_id, "objectId": kubelet.principal_id,
        }});
    }
    resource["properties"]["fqdn"] = Value::from(format!("{name}.hcp.{location}.azmk8s.io"));
    scrub(&mut resource);
    resource
}

/// Removes what GET never returns (passwords, secrets).
fn scrub(resource: &mut Value) {
    let Some(properties) = resource.get_mut("properties").and_then(Value::as_object_mut) else { return };
    if let Some(windows) = properties.get_mut("windowsProfile").and_then(Value::as_object_mut) {
        windows.remove("adminPassword");
    }
    if let Some(principal) = properties.get_mut("servicePrincipalProfile").and_then(Value::as_object_mut) {
        principal.remove("secret");
    }
}

/// The resource without fields every write changes, to tell a real change from a same-body PUT.
fn comparable(resource: &Value) -> Value {
    let mut copy = resource.clone();
    if let Some(object) = copy.as_object_mut() {
        object.remove("eTag");
    }
    if let Some(properties) = copy["properties"].as_object_mut() {
        properties.remove("provisioningState");
        if let Some(pools) = properties.get_mut("agentPoolProfiles").and_then(Value::as_array_mut) {
            for pool in pools {
                if let Some(pool) = pool.as_object_mut() {
                    pool.remove("provisioningState");
                    pool.remove("eTag");
                }
            }
        }
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_body_put_is_not_a_change_but_gmsa_flip_is() {
        let existing = json!({"eTag": "1", "properties": {"provisioningState": "Succeeded", "windowsProfile": {"adminUsername": "a"}}});
        let same = merge_into_existing(
            &existing,
            &json!({"properties": {"windowsProfile": {"adminUsername": "a", "adminPassword": "p"}}}),
        );
        assert_eq!(comparable(&existing), comparable(&same));
        assert!(same["properties"]["windowsProfile"].get("adminPassword").is_none());
        let flipped = merge_into_existing(
            &existing,
            &json!({"properties": {"windowsProfile": {"adminUsername": "a", "gmsaProfile": {"enabled": true}}}}),
        );
        assert_ne!(comparable(&existing), comparable(&flipped));
    }
}
