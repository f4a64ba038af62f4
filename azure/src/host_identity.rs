//! Step `identity-attach`: the PowerShell module's host identity path
//! (`New-GMSAManagedIdentity` + the scale-set half of `Grant-AkvAccessToAksWindowsHosts`).
//!
//! Expected flow: GET the user-assigned identity, PUT it if missing → GET the cluster for its
//! node resource group and Windows pools → list the scale sets there → for each Windows pool's
//! scale set (tag `aks-managed-poolName`) that lacks the identity, PATCH `identity` with the
//! existing identities plus ours and follow the operation.
//!
//! Guarantees: existing identities (system- or user-assigned) stay attached; a scale set that
//! already carries the identity is not written; a cluster without Windows scale sets is
//! reported as [`ErrorKind::Validation`] before anything is written on scale sets. In
//! [`Mode::DryRun`] only the GETs are sent: the diff names the identity it would create and
//! the scale sets it would attach it to (`planned`), and a missing identity is returned as
//! `None` (its principal and client ids do not exist before it is created).

use crate::arm::ArmClient;
use crate::cluster::read_cluster;
use crate::config::AzureConfig;
use crate::error::{Error, ErrorKind, Operation};
use crate::gmsa_profile::windows_node_pools;
use crate::lro::{self, Terminal};
use crate::resource::{ClusterRef, HostIdentityRef};
use azure_core::http::Method;
use proto::outcome::{FieldChange, Mode, StepOutcome};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The step name reported for host identity attachment.
pub const STEP_IDENTITY_ATTACH: &str = "identity-attach";

/// The tag AKS puts on a node pool's scale set.
pub(crate) const POOL_NAME_TAG: &str = "aks-managed-poolName";

/// A user-assigned identity as the grant and the credspec need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    /// ARM id.
    pub id: String,
    /// Object (principal) id: what the vault grant names.
    pub principal_id: String,
    /// Client id: what the credspec's `PluginInput` `ObjectId=` names.
    pub client_id: String,
}

#[derive(Debug, Deserialize)]
struct IdentityResource {
    #[serde(default)]
    properties: IdentityProperties,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityProperties {
    #[serde(default)]
    principal_id: String,
    #[serde(default)]
    client_id: String,
}

/// A scale set, only the fields this step reads.
#[derive(Debug, Clone, Deserialize)]
pub struct ScaleSet {
    /// ARM id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Tags (AKS sets `aks-managed-poolName`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `identity`, kept raw to carry everything back.
    #[serde(default)]
    pub identity: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScaleSetPage {
    #[serde(default)]
    value: Vec<ScaleSet>,
    #[serde(default)]
    next_link: Option<String>,
}

/// The scale sets that belong to the named pools (by AKS tag, else by equal name).
pub fn scale_sets_of_pools<'s>(scale_sets: &'s [ScaleSet], pools: &[&str]) -> Vec<&'s ScaleSet> {
    scale_sets
        .iter()
        .filter(|scale_set| {
            let pool = scale_set.tags.get(POOL_NAME_TAG).map(String::as_str).unwrap_or(&scale_set.name);
            pools.iter().any(|wanted| wanted.eq_ignore_ascii_case(pool))
        })
        .collect()
}

/// The `identity` to PATCH so `identity_id` is attached, or `None` when it already is.
pub fn identity_patch(current: Option<&Value>, identity_id: &str) -> Option<Value> {
    let current_type = current.and_then(|i| i.get("type")).and_then(Value::as_str).unwrap_or("None");
    let mut assigned: Map<String, Value> = current
        .and_then(|i| i.get("userAssignedIdentities"))
        .and_then(Value::as_object)
        .map(|ids| ids.keys().map(|key| (key.clone(), json!({}))).collect())
        .unwrap_or_default();
    if assigned.keys().any(|key| key.eq_ignore_ascii_case(identity_id)) {
        return None;
    }
    assigned.insert(identity_id.to_string(), json!({}));
    let has_system = current_type.to_ascii_lowercase().contains("systemassigned");
    let new_type = if has_system { "SystemAssigned, UserAssigned" } else { "UserAssigned" };
    Some(json!({"type": new_type, "userAssignedIdentities": assigned}))
}

/// Ensures the identity exists and is attached, in `mode`; see the module docs.
pub(crate) async fn attach(
    arm: &ArmClient,
    config: &AzureConfig,
    cluster: &ClusterRef,
    identity_ref: &HostIdentityRef,
    mode: Mode,
) -> Result<(StepOutcome, Option<HostIdentity>), Error> {
    let mut diff = Vec::new();
    let identity = ensure_identity(arm, config, identity_ref, mode, &mut diff).await?;
    let identity_id = identity_ref.id();

    let (cluster_body, scale_sets) = cluster_and_scale_sets(arm, config, cluster, Operation::AttachIdentity).await?;
    let pools: Vec<&str> = windows_node_pools(&cluster_body).collect();
    let windows_scale_sets = scale_sets_of_pools(&scale_sets, &pools);
    if windows_scale_sets.is_empty() {
        let node_resource_group = cluster_body.pointer("/properties/nodeResourceGroup").and_then(Value::as_str);
        let node_resource_group = node_resource_group.unwrap_or_default();
        let detail = format!("no scale set of a Windows node pool ({pools:?}) in resource group {node_resource_group}");
        return Err(Error::new(Operation::AttachIdentity, cluster.id(), ErrorKind::Validation, detail));
    }
    for scale_set in windows_scale_sets {
        let Some(patch) = identity_patch(scale_set.identity.as_ref(), &identity_id) else { continue };
        if mode.applies() {
            patch_identity(arm, config, Operation::AttachIdentity, scale_set, patch).await?;
            tracing::info!(scale_set = %scale_set.id, identity = %identity_id, "attached host identity");
        }
        diff.push(FieldChange {
            path: format!("/virtualMachineScaleSets/{}/identity/userAssignedIdentities/{identity_id}", scale_set.name),
            before: None,
            after: Some(json!({})),
        });
    }
    let observed = json!({
        "identity": identity_id,
        "principalId": identity.as_ref().map(|identity| identity.principal_id.clone()),
        "clientId": identity.as_ref().map(|identity| identity.client_id.clone()),
    });
    Ok((StepOutcome::in_mode(mode, STEP_IDENTITY_ATTACH, diff, observed), identity))
}

/// The identity, created first when missing; `None` when it is missing in a dry run.
async fn ensure_identity(
    arm: &ArmClient,
    config: &AzureConfig,
    identity_ref: &HostIdentityRef,
    mode: Mode,
    diff: &mut Vec<FieldChange>,
) -> Result<Option<HostIdentity>, Error> {
    let id = identity_ref.id();
    let api_version = &config.api_versions.managed_identity;
    let existing = arm.get(Operation::PutIdentity, &id, api_version).await?;
    let response = if existing.status == 404 {
        let body = json!({"location": identity_ref.location});
        let change =
            FieldChange { path: format!("/userAssignedIdentities/{}", identity_ref.name), before: None, after: None };
        if !mode.applies() {
            diff.push(FieldChange { after: Some(body), ..change });
            return Ok(None);
        }
        let url = arm.url(&id, api_version);
        let created = arm.send(Operation::PutIdentity, &id, Method::Put, url, Some(&body), None).await?;
        let created = created.into_success(Operation::PutIdentity, &id)?;
        diff.push(FieldChange { after: Some(body), ..change });
        created
    } else {
        existing.into_success(Operation::PutIdentity, &id)?
    };
    let resource: IdentityResource = response.json(Operation::PutIdentity, &id)?;
    if resource.properties.principal_id.is_empty() {
        return Err(Error::new(
            Operation::PutIdentity,
            &id,
            ErrorKind::Decode,
            "identity has no properties.principalId",
        ));
    }
    Ok(Some(HostIdentity {
        id,
        principal_id: resource.properties.principal_id,
        client_id: resource.properties.client_id,
    }))
}

/// The cluster body and every scale set of its node resource group.
pub(crate) async fn cluster_and_scale_sets(
    arm: &ArmClient,
    config: &AzureConfig,
    cluster: &ClusterRef,
    operation: Operation,
) -> Result<(Value, Vec<ScaleSet>), Error> {
    let (cluster_body, _) = read_cluster(arm, config, cluster).await?;
    let node_resource_group =
        cluster_body.pointer("/properties/nodeResourceGroup").and_then(Value::as_str).ok_or_else(|| {
            Error::new(
                Operation::GetCluster,
                cluster.id(),
                ErrorKind::Decode,
                "cluster has no properties.nodeResourceGroup",
            )
        })?;
    let scale_sets = list_scale_sets(arm, config, operation, &cluster.subscription_id, node_resource_group).await?;
    Ok((cluster_body, scale_sets))
}

/// PATCHes a scale set's `identity` and follows the operation to its end; failures are reported
/// as `operation`.
pub(crate) async fn patch_identity(
    arm: &ArmClient,
    config: &AzureConfig,
    operation: Operation,
    scale_set: &ScaleSet,
    patch: Value,
) -> Result<(), Error> {
    let url = arm.url(&scale_set.id, &config.api_versions.compute);
    let body = json!({"identity": patch});
    let response = arm
        .send(operation, &scale_set.id, Method::Patch, url.clone(), Some(&body), None)
        .await?
        .into_success(operation, &scale_set.id)?;
    if let Terminal::Failed { state, code, message } =
        lro::follow(arm, &scale_set.id, url, &response, config.lro_poll_interval, config.lro_timeout).await?
    {
        let detail = format!("scale set update ended {state}: {code}: {message}");
        return Err(Error::new(operation, &scale_set.id, ErrorKind::Failed, detail));
    }
    Ok(())
}

/// Every scale set of a resource group (following `nextLink`); failures are reported as `operation`.
pub(crate) async fn list_scale_sets(
    arm: &ArmClient,
    config: &AzureConfig,
    operation: Operation,
    subscription_id: &str,
    resource_group: &str,
) -> Result<Vec<ScaleSet>, Error> {
    let path = format!(
        "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachineScaleSets"
    );
    let mut url = arm.url(&path, &config.api_versions.compute);
    let mut scale_sets = Vec::new();
    // A resource group holds a handful of scale sets; the page bound only guards against a loop.
    for _page in 0..100 {
        let page: ScaleSetPage = arm
            .send(operation, &path, Method::Get, url, None, None)
            .await?
            .into_success(operation, &path)?
            .json(operation, &path)?;
        scale_sets.extend(page.value);
        match page.next_link.filter(|link| !link.is_empty()) {
            Some(link) => url = arm.absolute(operation, &path, &link)?,
            None => return Ok(scale_sets),
        }
    }
    Ok(scale_sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/gmsa";

    fn mk_scale_set(name: &str, pool_tag: Option<&str>) -> ScaleSet {
        let tags =
            pool_tag.map(|pool| BTreeMap::from([(POOL_NAME_TAG.to_string(), pool.to_string())])).unwrap_or_default();
        ScaleSet { id: format!("/vmss/{name}"), name: name.to_string(), tags, identity: None }
    }

    #[test]
    fn windows_pools_are_matched_by_tag_then_name() {
        let scale_sets = [
            mk_scale_set("aks-nodepool1-1-vmss", Some("nodepool1")),
            mk_scale_set("akswin", Some("npwin")),
            mk_scale_set("npwin2", None),
        ];
        let names: Vec<&str> =
            scale_sets_of_pools(&scale_sets, &["npwin", "NPWIN2"]).iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["akswin", "npwin2"]);
    }

    #[test]
    fn patch_keeps_existing_identities_and_system_assignment() {
        let current = json!({"type": "SystemAssigned, UserAssigned", "principalId": "p",
            "userAssignedIdentities": {"/other": {"principalId": "x", "clientId": "y"}}});
        let patch = identity_patch(Some(&current), ID).unwrap();
        assert_eq!(patch["type"], "SystemAssigned, UserAssigned");
        assert_eq!(patch["userAssignedIdentities"], json!({"/other": {}, ID: {}}));
        let system_only = identity_patch(Some(&json!({"type": "SystemAssigned"})), ID).unwrap();
        assert_eq!(system_only["type"], "SystemAssigned, UserAssigned");
        assert_eq!(identity_patch(None, ID).unwrap()["type"], "UserAssigned");
    }

    #[test]
    fn already_attached_identity_needs_no_patch() {
        let current = json!({"type": "UserAssigned", "userAssignedIdentities": {ID.to_lowercase(): {}}});
        assert_eq!(identity_patch(Some(&current), ID), None);
    }
}
