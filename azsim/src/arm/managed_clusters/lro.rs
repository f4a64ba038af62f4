//! The long-running side of managed-cluster writes: an operation per PUT (or injected from a
//! test), its end after the configured duration (`Succeeded`, or `Failed` when a failure was
//! injected), and the `Azure-AsyncOperation` status / `Location` result endpoints
//! (`.../providers/Microsoft.ContainerService/locations/{loc}/operations|operationresults/{id}`),
//! following ARM's async-operation contract as AKS implements it.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::arm::error::{ArmError, ArmResponse, ArmResult};
use crate::state::{ClusterOperation, State, rfc3339};

/// Sets `provisioningState` of the cluster and of each agent pool profile.
pub(crate) fn set_provisioning_state(resource: &mut Value, state_name: &str) {
    let Some(properties) = resource.get_mut("properties").and_then(Value::as_object_mut) else { return };
    properties.insert("provisioningState".to_string(), Value::from(state_name));
    if let Some(pools) = properties.get_mut("agentPoolProfiles").and_then(Value::as_array_mut) {
        for pool in pools.iter_mut().filter_map(Value::as_object_mut) {
            pool.insert("provisioningState".to_string(), Value::from(state_name));
        }
    }
}

/// Starts an operation on a cluster (a PUT's, or someone else's); `None` if the cluster is unknown.
pub(crate) fn begin_operation(state: &mut State, cluster_id: &str, duration: Duration, now: Instant) -> Option<String> {
    let key = cluster_id.to_ascii_lowercase();
    if !state.clusters.contains_key(&key) {
        return None;
    }
    let operation_id = state.new_guid();
    let fails = state.faults.take_cluster_failure();
    state.operations.insert(
        operation_id.clone(),
        ClusterOperation {
            id: operation_id.clone(),
            cluster_key: key.clone(),
            started_at: OffsetDateTime::now_utc(),
            fails,
            finished: None,
        },
    );
    state.running_operations.push(std::cmp::Reverse((now + duration, operation_id.clone())));
    if let Some(cluster) = state.clusters.get_mut(&key) {
        cluster.running_operation = Some(operation_id.clone());
        if cluster.resource["properties"]["provisioningState"] == "Succeeded" {
            cluster.resource["properties"]["provisioningState"] = Value::from("Updating");
        }
    }
    Some(operation_id)
}

/// GET `.../locations/{loc}/operations/{id}` (status) and `.../operationresults/{id}` (result).
pub(crate) fn operation_status(state: &State, location: &str, operation_id: &str, result: bool) -> ArmResult {
    let Some(operation) = state.operations.get(operation_id) else {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("Operation '{operation_id}' was not found in location '{location}'."),
        ));
    };
    let retry_after = state.lro_retry_after_secs.to_string();
    if result {
        return match operation.finished {
            None => Ok(ArmResponse { status: StatusCode::ACCEPTED, headers: Vec::new(), body: None }
                .with_header("Retry-After", retry_after)),
            Some(_) => {
                let resource = state.clusters.get(&operation.cluster_key).map(|cluster| cluster.resource.clone());
                Ok(ArmResponse { status: StatusCode::OK, headers: Vec::new(), body: resource })
            }
        };
    }
    let subscription = operation.cluster_key.split('/').nth(2).unwrap_or_default();
    let mut body = json!({
        "id": format!("/subscriptions/{subscription}/providers/Microsoft.ContainerService/locations/{location}/operations/{}", operation.id),
        "name": operation.id,
        "status": "InProgress",
        "startTime": rfc3339(operation.started_at),
    });
    match operation.finished {
        None => return Ok(ArmResponse::ok(body).with_header("Retry-After", retry_after)),
        Some((succeeded, ended)) => {
            body["status"] = Value::from(if succeeded { "Succeeded" } else { "Failed" });
            body["endTime"] = Value::from(rfc3339(ended));
            if !succeeded {
                body["error"] = json!({"code": "ReconcileError", "message": "The cluster operation failed while reconciling the requested state (injected by azsim)."});
            }
        }
    }
    Ok(ArmResponse::ok(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Faults, SimConfig};
    use crate::seed::ClusterSeed;

    #[test]
    fn injected_failure_ends_the_operation_failed_and_settle_waits_for_the_duration() {
        let mut state = State::new(&SimConfig::default());
        state.faults.replace(Faults { fail_next_cluster_operations: 1, ..Faults::default() });
        let cluster = super::super::seed(&mut state, "s", "rg", "aks", &ClusterSeed::windows());
        let start = Instant::now();
        let operation_id =
            begin_operation(&mut state, &cluster.id, Duration::from_secs(5), start).expect("cluster exists");
        state.settle(start + Duration::from_secs(4));
        let resource = &state.clusters[&cluster.id.to_ascii_lowercase()].resource;
        assert_eq!(resource["properties"]["provisioningState"], "Updating");
        state.settle(start + Duration::from_secs(5));
        let resource = &state.clusters[&cluster.id.to_ascii_lowercase()].resource;
        assert_eq!(resource["properties"]["provisioningState"], "Failed");
        assert_eq!(resource["properties"]["agentPoolProfiles"][1]["provisioningState"], "Failed");
        assert_eq!(state.operations[&operation_id].finished.map(|(succeeded, _)| succeeded), Some(false));
        // The credit is used up: the next operation succeeds.
        let next = begin_operation(&mut state, &cluster.id, Duration::ZERO, start).expect("cluster exists");
        state.settle(start);
        assert_eq!(state.operations[&next].finished.map(|(succeeded, _)| succeeded), Some(true));
    }
}
