//! Resource Manager's own reads: `GET /subscriptions` (what `az login` lists), `GET
//! /subscriptions/{s}`, `GET /tenants`, and the generic resources list `GET
//! /subscriptions/{s}/resources` with `$filter` on `resourceType` and `name` (what `az keyvault
//! set-policy` without `-g` uses to find the vault's resource group).
//!
//! Modelled on `resources/resource-manager/Microsoft.Resources/stable/2022-12-01/subscriptions.json`
//! and `.../stable/2021-04-01/resources.json`. Every subscription the simulator knows belongs
//! to its one tenant and is visible to every caller (no per-principal RBAC on reads).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ArmRequest;
use super::error::{ArmError, ArmResponse, ArmResult};
use crate::state::State;

fn subscription_body(state: &State, subscription: &str) -> Value {
    json!({"id": format!("/subscriptions/{subscription}"), "subscriptionId": subscription,
        "tenantId": state.tenant_id, "displayName": format!("azsim {subscription}"), "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off"},
        "authorizationSource": "RoleBased", "managedByTenants": []})
}

/// `GET /subscriptions`.
pub(crate) fn list(state: &State) -> ArmResult {
    let mut names: Vec<&String> = state.subscriptions.iter().collect();
    names.sort();
    let value: Vec<Value> = names.into_iter().map(|subscription| subscription_body(state, subscription)).collect();
    Ok(ArmResponse::ok(json!({"value": value, "count": {"type": "Total", "value": value.len()}})))
}

/// `GET /subscriptions/{s}` (the caller checked the subscription exists).
pub(crate) fn get(state: &State, subscription: &str) -> ArmResult {
    Ok(ArmResponse::ok(subscription_body(state, &subscription.to_ascii_lowercase())))
}

/// `GET /tenants`.
pub(crate) fn tenants(state: &State) -> ArmResult {
    Ok(ArmResponse::ok(json!({"value": [{"id": format!("/tenants/{}", state.tenant_id), "tenantId": state.tenant_id,
        "tenantCategory": "Home", "displayName": "azsim", "defaultDomain": "azsim.onmicrosoft.com"}]})))
}

/// One `field eq 'value'` clause of a `$filter`.
#[derive(Debug, PartialEq, Eq)]
struct Clause {
    field: String,
    value: String,
}

/// Parses `resourceType eq '…' and name eq '…'` (fields and `eq`/`and` case-insensitive).
fn parse_filter(filter: &str) -> Result<Vec<Clause>, ArmError> {
    let invalid = || {
        ArmError::bad_request(
            "InvalidFilterInQueryString",
            format!("Invalid $filter '{filter}' specified in the query string."),
        )
    };
    let mut clauses = Vec::new();
    let mut rest = filter.trim();
    while !rest.is_empty() {
        let (field, after_field) = rest.split_once(char::is_whitespace).ok_or_else(invalid)?;
        let after_field = after_field.trim_start();
        let after_eq = after_field
            .get(..2)
            .filter(|op| op.eq_ignore_ascii_case("eq"))
            .map(|_| after_field[2..].trim_start())
            .ok_or_else(invalid)?;
        let quoted = after_eq.strip_prefix('\'').ok_or_else(invalid)?;
        let (value, after_value) = quoted.split_once('\'').ok_or_else(invalid)?;
        let field = field.to_ascii_lowercase();
        if !matches!(field.as_str(), "resourcetype" | "name") {
            return Err(invalid());
        }
        clauses.push(Clause { field, value: value.to_string() });
        rest = after_value.trim_start();
        if !rest.is_empty() {
            let lowered = rest.to_ascii_lowercase();
            rest = lowered.strip_prefix("and ").map(|_| rest[4..].trim_start()).ok_or_else(invalid)?;
        }
    }
    Ok(clauses)
}

/// `(id, name, type, location, tags)` of every resource in the subscription.
fn resources_of(state: &State, subscription: &str) -> Vec<Value> {
    let prefix = format!("/subscriptions/{}/", subscription.to_ascii_lowercase());
    let mut resources: Vec<Value> = Vec::new();
    for cluster in state.clusters.values() {
        let id = cluster.resource["id"].as_str().unwrap_or_default();
        if id.to_ascii_lowercase().starts_with(&prefix) {
            resources.push(
                json!({"id": id, "name": cluster.resource["name"], "type": "Microsoft.ContainerService/managedClusters",
                "location": cluster.resource["location"], "tags": cluster.resource["tags"]}),
            );
        }
    }
    for vault in state.vaults.values().filter(|vault| vault.id.to_ascii_lowercase().starts_with(&prefix)) {
        resources.push(json!({"id": vault.id, "name": vault.name, "type": "Microsoft.KeyVault/vaults",
            "location": vault.location, "tags": vault.tags}));
    }
    for identity in state.identities.values().filter(|identity| identity.id.to_ascii_lowercase().starts_with(&prefix)) {
        resources.push(json!({"id": identity.id, "name": identity.name,
            "type": "Microsoft.ManagedIdentity/userAssignedIdentities", "location": identity.location, "tags": identity.tags}));
    }
    for scale_set in state.scale_sets.values().filter(|set| set.id.to_ascii_lowercase().starts_with(&prefix)) {
        resources.push(
            json!({"id": scale_set.id, "name": scale_set.name, "type": "Microsoft.Compute/virtualMachineScaleSets",
            "location": scale_set.location, "tags": scale_set.tags}),
        );
    }
    resources.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    resources
}

/// `GET /subscriptions/{s}/resources[?$filter=…]`.
pub(crate) fn list_resources(state: &State, subscription: &str, request: &ArmRequest<'_>) -> ArmResult {
    let clauses = match request.query_param("$filter") {
        Some(filter) => parse_filter(filter)?,
        None => Vec::new(),
    };
    let value: Vec<Value> = resources_of(state, subscription)
        .into_iter()
        .filter(|resource| {
            clauses.iter().all(|clause| {
                let field = if clause.field == "name" { "name" } else { "type" };
                resource[field].as_str().is_some_and(|found| found.eq_ignore_ascii_case(&clause.value))
            })
        })
        .collect();
    Ok(ArmResponse::json(StatusCode::OK, json!({"value": value})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_as_the_cli_writes_them() {
        let clauses = parse_filter("resourceType eq 'Microsoft.KeyVault/vaults' and name eq 'myGMSAVault'").unwrap();
        assert_eq!(
            clauses,
            [
                Clause { field: "resourcetype".into(), value: "Microsoft.KeyVault/vaults".into() },
                Clause { field: "name".into(), value: "myGMSAVault".into() }
            ]
        );
        assert!(parse_filter("tagName eq 'x'").is_err());
        assert!(parse_filter("name ne 'x'").is_err());
        assert!(parse_filter("name eq 'x' or name eq 'y'").is_err());
    }
}
