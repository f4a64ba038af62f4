//! A value of the whole simulated world that tests compare before setup and after teardown
//! (`assert_eq!(sim.snapshot(), before)`): clusters, vaults with their access policies, role
//! assignments, user-assigned identities, scale-set identities, secrets and deleted secrets.
//!
//! Every map is keyed by lower-cased ARM id (or vault id, then lower-cased secret name) and is a
//! `serde_json::Map`, whose equality ignores insertion order; lists whose order carries no
//! meaning are sorted. Secret values never appear: each version shows a SHA-256 of its value.
//!
//! Normalized out (they change on every write even when the resulting state is the same):
//! - clusters: `eTag`, `properties.provisioningState`, and each agent pool's `eTag` and
//!   `provisioningState`;
//! - scale sets: `etag` (only `systemAssigned` and the sorted user-assigned ids are kept);
//! - role assignments: `createdOn`/`updatedOn`/`createdBy`/`updatedBy`;
//! - vaults: `provisioningState`;
//! - secrets: `created`/`updated` times, and deleted secrets' `deletedDate`/`scheduledPurgeDate`.
//!
//! Not normalized, on purpose: `properties.windowsProfile.gmsaProfile`. AKS reports
//! `{"enabled": false}` after gMSA was disabled, while a cluster that never had gMSA may carry no
//! `gmsaProfile` at all; the snapshot shows what AKS shows, and a test comparing "before setup"
//! with "after teardown" must normalize that one field itself, explicitly.

use serde_json::{Map, Value, json};

use crate::state::{SecretHistory, State};

/// SHA-256 of a secret value, hex, through rustls's ring provider (no extra dependency).
fn value_hash(value: &str) -> String {
    let hash = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .map(|suite| suite.common.hash_provider.hash(value.as_bytes()));
    match hash {
        Some(output) => {
            let hex: String = output.as_ref().iter().map(|byte| format!("{byte:02x}")).collect();
            format!("sha256:{hex}")
        }
        None => "sha256:unavailable".to_string(),
    }
}

fn remove_pointer(value: &mut Value, parent: &str, field: &str) {
    if let Some(Value::Object(object)) = value.pointer_mut(parent) {
        object.remove(field);
    }
}

fn cluster_view(resource: &Value) -> Value {
    let mut view = resource.clone();
    remove_pointer(&mut view, "", "eTag");
    remove_pointer(&mut view, "/properties", "provisioningState");
    if let Some(Value::Array(pools)) = view.pointer_mut("/properties/agentPoolProfiles") {
        for pool in pools.iter_mut() {
            if let Value::Object(pool) = pool {
                pool.remove("eTag");
                pool.remove("provisioningState");
            }
        }
    }
    view
}

fn history_view(history: &SecretHistory, vault_uri: &str) -> Value {
    let versions: Vec<Value> = history
        .versions
        .iter()
        .map(|version| {
            json!({
                "version": version.version,
                "id": format!("{vault_uri}secrets/{}/{}", history.name, version.version),
                "enabled": version.enabled,
                "contentType": version.content_type,
                "tags": version.tags,
                "valueHash": value_hash(&version.value),
            })
        })
        .collect();
    json!({"name": history.name, "versions": versions})
}

/// The snapshot described in the module docs.
pub(crate) fn snapshot(state: &State) -> Value {
    let clusters: Map<String, Value> =
        state.clusters.iter().map(|(key, cluster)| (key.clone(), cluster_view(&cluster.resource))).collect();
    let vaults: Map<String, Value> = state
        .vaults
        .iter()
        .map(|(key, vault)| {
            let mut view = crate::arm::vaults::render(vault);
            remove_pointer(&mut view, "/properties", "provisioningState");
            (key.clone(), view)
        })
        .collect();
    let role_assignments: Map<String, Value> = state
        .role_assignments
        .iter()
        .map(|(key, assignment)| {
            let view = json!({
                "scope": assignment.scope,
                "roleDefinitionId": assignment.role_definition_id,
                "principalId": assignment.principal_id,
                "principalType": assignment.principal_type,
                "description": assignment.description,
            });
            (key.clone(), view)
        })
        .collect();
    let identities: Map<String, Value> = state
        .identities
        .iter()
        .map(|(key, identity)| {
            let view = json!({
                "name": identity.name,
                "location": identity.location,
                "tags": identity.tags,
                "principalId": identity.principal_id,
                "clientId": identity.client_id,
            });
            (key.clone(), view)
        })
        .collect();
    let scale_sets: Map<String, Value> = state
        .scale_sets
        .iter()
        .map(|(key, scale_set)| {
            let mut user_assigned: Vec<String> =
                scale_set.user_assigned.iter().map(|id| id.to_ascii_lowercase()).collect();
            user_assigned.sort();
            let view = json!({
                "name": scale_set.name,
                "tags": scale_set.tags,
                "systemAssigned": scale_set.system_assigned,
                "userAssignedIdentities": user_assigned,
            });
            (key.clone(), view)
        })
        .collect();
    let vault_uri =
        |vault_key: &str| state.vaults.get(vault_key).map(|vault| vault.vault_uri.clone()).unwrap_or_default();
    let secrets: Map<String, Value> = state
        .secrets
        .iter()
        .filter(|(_, secrets)| !secrets.is_empty())
        .map(|(vault_key, secrets)| {
            let uri = vault_uri(vault_key);
            let by_name: Map<String, Value> =
                secrets.iter().map(|(name, history)| (name.clone(), history_view(history, &uri))).collect();
            (vault_key.clone(), Value::Object(by_name))
        })
        .collect();
    let deleted_secrets: Map<String, Value> = state
        .deleted_secrets
        .iter()
        .filter(|(_, deleted)| !deleted.is_empty())
        .map(|(vault_key, deleted)| {
            let uri = vault_uri(vault_key);
            let by_name: Map<String, Value> =
                deleted.iter().map(|(name, deleted)| (name.clone(), history_view(&deleted.history, &uri))).collect();
            (vault_key.clone(), Value::Object(by_name))
        })
        .collect();
    json!({
        "clusters": clusters,
        "vaults": vaults,
        "roleAssignments": role_assignments,
        "identities": identities,
        "scaleSets": scale_sets,
        "secrets": secrets,
        "deletedSecrets": deleted_secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_hash_is_sha256_and_never_the_value() {
        let hash = value_hash("abc");
        assert_eq!(hash, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(!value_hash("CONTOSO\\user:hunter2").contains("hunter2"));
    }

    #[test]
    fn volatile_cluster_fields_are_dropped_and_gmsa_profile_kept() {
        let resource = json!({"eTag": "1", "properties": {"provisioningState": "Updating",
            "agentPoolProfiles": [{"name": "np", "eTag": "2", "provisioningState": "Updating"}],
            "windowsProfile": {"gmsaProfile": {"enabled": false}}}});
        let view = cluster_view(&resource);
        assert_eq!(
            view,
            json!({"properties": {"agentPoolProfiles": [{"name": "np"}],
                "windowsProfile": {"gmsaProfile": {"enabled": false}}}})
        );
    }
}
