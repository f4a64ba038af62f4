//! Step `cluster-update`: enable or disable Windows gMSA on a managed cluster, and read the
//! kubelet identity the vault grant is for.
//!
//! Expected flow: GET the cluster → [`plan_cluster_update`] → nothing to do, or PUT the full
//! body with `If-Match: <etag>` → follow the long-running operation to a terminal state.
//!
//! Guarantees: nothing is written when the plan is `Unchanged` or invalid, nor in
//! [`Mode::DryRun`] (the plan's diff is reported as `planned`); a 412 (someone
//! wrote in between) re-reads and re-plans, at most `max_precondition_retries` times; a 409
//! "operation in progress" waits inside the retry policy; the outcome is `changed` only after
//! the operation reached `Succeeded`.

use crate::arm::ArmClient;
use crate::config::AzureConfig;
use crate::error::{Error, ErrorKind, Operation};
use crate::gmsa_profile::{ClusterPlan, GmsaChange, PlanError, plan_cluster_update, validate_settings};
use crate::lro::{self, Terminal};
use crate::resource::ClusterRef;
use azure_core::http::Method;
use proto::outcome::{Mode, StepOutcome};
use serde::Deserialize;
use serde_json::{Value, json};

/// The step name reported for cluster updates.
pub const STEP_CLUSTER_UPDATE: &str = "cluster-update";

/// The kubelet identity of a cluster (`properties.identityProfile.kubeletidentity`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletIdentity {
    /// Object (principal) id: what access policies and role assignments name.
    pub object_id: String,
    /// Client id: what the credspec's `PluginInput` `ObjectId=` names for the CCG plugin.
    #[serde(default)]
    pub client_id: Option<String>,
    /// ARM id of the user-assigned identity.
    #[serde(default)]
    pub resource_id: Option<String>,
}

/// Reads the cluster body and its etag (header first, then the body's `eTag`).
pub(crate) async fn read_cluster(
    arm: &ArmClient,
    config: &AzureConfig,
    cluster: &ClusterRef,
) -> Result<(Value, Option<String>), Error> {
    let id = cluster.id();
    let response = arm.get(Operation::GetCluster, &id, &config.api_versions.container_service).await?;
    let response = response.into_success(Operation::GetCluster, &id)?;
    let body = response.json_value(Operation::GetCluster, &id)?;
    let etag = response
        .header("etag")
        .map(str::to_string)
        .or_else(|| body.get("eTag").and_then(Value::as_str).map(str::to_string));
    Ok((body, etag))
}

/// Reads `identityProfile.kubeletidentity` of a cluster.
pub(crate) async fn kubelet_identity(
    arm: &ArmClient,
    config: &AzureConfig,
    cluster: &ClusterRef,
) -> Result<KubeletIdentity, Error> {
    let (body, _) = read_cluster(arm, config, cluster).await?;
    kubelet_identity_of(&body).ok_or_else(|| {
        Error::new(
            Operation::GetCluster,
            cluster.id(),
            ErrorKind::Validation,
            "cluster has no properties.identityProfile.kubeletidentity.objectId (managed identity not enabled?)",
        )
    })
}

/// The kubelet identity in a cluster body, when present.
pub fn kubelet_identity_of(cluster: &Value) -> Option<KubeletIdentity> {
    let identity = cluster.pointer("/properties/identityProfile/kubeletidentity")?;
    serde_json::from_value::<KubeletIdentity>(identity.clone()).ok().filter(|identity| !identity.object_id.is_empty())
}

/// Applies `change` to the cluster; see the module docs for the flow and guarantees.
pub(crate) async fn update_gmsa(
    arm: &ArmClient,
    config: &AzureConfig,
    cluster: &ClusterRef,
    change: &GmsaChange,
    mode: Mode,
) -> Result<StepOutcome, Error> {
    let id = cluster.id();
    if let GmsaChange::Enable(settings) = change {
        validate_settings(settings)
            .map_err(|error| Error::new(Operation::ValidateSettings, &id, ErrorKind::Validation, error.to_string()))?;
    }
    let api_version = &config.api_versions.container_service;
    for round in 0..=config.retry.max_precondition_retries {
        let (current, etag) = read_cluster(arm, config, cluster).await?;
        let plan = plan_cluster_update(&current, change).map_err(|error| plan_error(&id, error))?;
        let (body, diff) = match plan {
            ClusterPlan::Unchanged => {
                tracing::info!(cluster = %id, "gMSA profile already as desired; nothing written");
                return Ok(StepOutcome::unchanged(STEP_CLUSTER_UPDATE, observed(&id, &current)));
            }
            ClusterPlan::Write { body, diff } => (body, diff),
        };
        if !mode.applies() {
            tracing::info!(cluster = %id, "dry run: gMSA profile would change; nothing written");
            return Ok(StepOutcome::in_mode(mode, STEP_CLUSTER_UPDATE, diff, observed(&id, &current)));
        }
        let url = arm.url(&id, api_version);
        let response =
            arm.send(Operation::PutCluster, &id, Method::Put, url.clone(), Some(&body), etag.as_deref()).await?;
        if response.status == 412 {
            tracing::info!(cluster = %id, round, "etag changed since read; re-reading and re-planning");
            continue;
        }
        let response = response.into_success(Operation::PutCluster, &id)?;
        tracing::info!(cluster = %id, status = response.status, "cluster PUT accepted; following the operation");
        match lro::follow(arm, &id, url, &response, config.lro_poll_interval, config.lro_timeout).await? {
            Terminal::Succeeded => return Ok(StepOutcome::from_diff(STEP_CLUSTER_UPDATE, diff, observed(&id, &body))),
            Terminal::Failed { state, code, message } => {
                let detail = format!("operation ended {state}: {code}: {message}");
                return Err(Error::new(Operation::PollOperation, &id, ErrorKind::Failed, detail));
            }
        }
    }
    let detail = format!(
        "etag changed on every one of {} attempts (HTTP 412); another writer keeps updating the cluster",
        config.retry.max_precondition_retries + 1
    );
    Err(Error::new(Operation::PutCluster, &id, ErrorKind::Conflict, detail))
}

fn plan_error(id: &str, error: PlanError) -> Error {
    let operation = match error {
        PlanError::DnsSettingsIncomplete { .. } | PlanError::EmptySetting { .. } => Operation::ValidateSettings,
        PlanError::NoWindowsProfile | PlanError::NoWindowsNodePool => Operation::GetCluster,
    };
    Error::new(operation, id, ErrorKind::Validation, error.to_string())
}

/// Non-secret facts for the coordinator's record.
fn observed(id: &str, cluster: &Value) -> Value {
    json!({
        "cluster": id,
        "gmsaProfile": cluster.pointer("/properties/windowsProfile/gmsaProfile").cloned().unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_identity_is_read_from_the_identity_profile() {
        let cluster = json!({"properties": {"identityProfile": {"kubeletidentity": {
            "resourceId": "/subscriptions/s/resourcegroups/MC_rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/c-agentpool",
            "clientId": "client-1", "objectId": "object-1"}}}});
        let identity = kubelet_identity_of(&cluster).unwrap();
        assert_eq!(identity.object_id, "object-1");
        assert_eq!(identity.client_id.as_deref(), Some("client-1"));
        assert_eq!(kubelet_identity_of(&json!({"properties": {}})), None);
    }
}
