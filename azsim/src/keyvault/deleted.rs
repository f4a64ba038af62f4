//! Deleting secrets: DeleteSecret (`DELETE /secrets/{name}`, every version at once), and on a
//! soft-delete vault GetDeletedSecret (`GET /deletedsecrets/{name}`) and PurgeDeletedSecret
//! (`DELETE /deletedsecrets/{name}`, 204, refused while the vault has purge protection).
//!
//! Shapes follow `keyvault/data-plane/Microsoft.KeyVault/stable/7.5/secrets.json`
//! (`DeletedSecretBundle`: `recoveryId`, `deletedDate`, `scheduledPurgeDate` in Unix seconds,
//! `id` of the latest version, `attributes`). The service never returns the value of a deleted
//! secret, and neither does the simulator. Error bodies are the service's: an absent deleted
//! secret is 404 `SecretNotFound` "Deleted Secret not found: {name}".
//!
//! Soft delete is on unless the vault's `properties.enableSoftDelete` is `false` (new vaults
//! cannot turn it off any more); the retention is `softDeleteRetentionInDays` (default 90).
//! Azure completes a delete asynchronously (a purge right after the delete may get 409 "Secret
//! is currently being deleted"); the simulator completes it before answering.

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::VaultAnswer;
use super::secrets::{attributes, not_found};
use crate::config::Operation;
use crate::state::{DeletedSecret, State, Vault};

const SECONDS_PER_DAY: i64 = 86_400;

fn soft_delete(vault: &Vault) -> bool {
    vault.extra_properties.get("enableSoftDelete").and_then(Value::as_bool) != Some(false)
}

fn purge_protection(vault: &Vault) -> bool {
    vault.extra_properties.get("enablePurgeProtection").and_then(Value::as_bool) == Some(true)
}

fn retention_days(vault: &Vault) -> i64 {
    vault.extra_properties.get("softDeleteRetentionInDays").and_then(Value::as_i64).unwrap_or(90)
}

/// Whether `name` is soft-deleted in `vault` (then SetSecret must refuse the name).
pub(super) fn is_deleted(state: &State, vault: &Vault, name: &str) -> bool {
    state
        .deleted_secrets
        .get(&vault.id.to_ascii_lowercase())
        .is_some_and(|deleted| deleted.contains_key(&name.to_ascii_lowercase()))
}

fn deleted_not_found(name: &str) -> VaultAnswer {
    VaultAnswer::error(StatusCode::NOT_FOUND, "SecretNotFound", format!("Deleted Secret not found: {name}"))
}

/// The `DeletedSecretBundle` (no value).
fn deleted_bundle(vault: &Vault, deleted: &DeletedSecret, soft: bool) -> Value {
    let name = &deleted.history.name;
    let Some(latest) = deleted.history.versions.last() else { return json!({}) };
    let mut body = json!({
        "id": format!("{}secrets/{name}/{}", vault.vault_uri, latest.version),
        "attributes": attributes(latest),
    });
    if soft {
        body["recoveryId"] = Value::from(format!("{}deletedsecrets/{name}", vault.vault_uri));
        body["deletedDate"] = Value::from(deleted.deleted_date);
        body["scheduledPurgeDate"] = Value::from(deleted.scheduled_purge_date);
        let level = if purge_protection(vault) { "Recoverable" } else { "Recoverable+Purgeable" };
        body["attributes"]["recoveryLevel"] = Value::from(level);
        body["attributes"]["recoverableDays"] = Value::from(retention_days(vault));
    } else {
        body["attributes"]["recoveryLevel"] = Value::from("Purgeable");
        body["attributes"]["recoverableDays"] = Value::from(0);
    }
    if let Some(content_type) = &latest.content_type {
        body["contentType"] = Value::from(content_type.clone());
    }
    if let Some(tags) = &latest.tags {
        body["tags"] = tags.clone();
    }
    body
}

/// DeleteSecret: every version goes; kept as a deleted secret when the vault has soft delete.
pub(super) fn delete(state: &mut State, vault: &Vault, name: &str) -> VaultAnswer {
    let vault_key = vault.id.to_ascii_lowercase();
    let Some(history) =
        state.secrets.get_mut(&vault_key).and_then(|secrets| secrets.remove(&name.to_ascii_lowercase()))
    else {
        return not_found(name);
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let deleted = DeletedSecret {
        history,
        deleted_date: now,
        scheduled_purge_date: now + retention_days(vault) * SECONDS_PER_DAY,
    };
    let soft = soft_delete(vault);
    let body = deleted_bundle(vault, &deleted, soft);
    let resource_id = format!("{}secrets/{}", vault.vault_uri, deleted.history.name);
    if soft {
        state.deleted_secrets.entry(vault_key).or_default().insert(name.to_ascii_lowercase(), deleted);
    }
    state.record("DELETE", &resource_id, Operation::SecretDelete, true, &Value::Null);
    VaultAnswer::ok(body)
}

/// GetDeletedSecret.
pub(super) fn get(state: &State, vault: &Vault, name: &str) -> VaultAnswer {
    if !soft_delete(vault) {
        return VaultAnswer::error(
            StatusCode::BAD_REQUEST,
            "NotSupported",
            "Operation \"get deleted\" is not enabled for this vault.",
        );
    }
    match state
        .deleted_secrets
        .get(&vault.id.to_ascii_lowercase())
        .and_then(|deleted| deleted.get(&name.to_ascii_lowercase()))
    {
        Some(deleted) => VaultAnswer::ok(deleted_bundle(vault, deleted, true)),
        None => deleted_not_found(name),
    }
}

/// PurgeDeletedSecret: 204; refused with purge protection, 404 when nothing is deleted under the name.
pub(super) fn purge(state: &mut State, vault: &Vault, name: &str) -> VaultAnswer {
    if !soft_delete(vault) {
        return VaultAnswer::error(
            StatusCode::BAD_REQUEST,
            "NotSupported",
            "Operation \"purge\" is not enabled for this vault.",
        );
    }
    let vault_key = vault.id.to_ascii_lowercase();
    if !is_deleted(state, vault, name) {
        return deleted_not_found(name);
    }
    if purge_protection(vault) {
        return VaultAnswer::error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.",
        );
    }
    let removed =
        state.deleted_secrets.get_mut(&vault_key).and_then(|deleted| deleted.remove(&name.to_ascii_lowercase()));
    let resource_id = format!(
        "{}deletedsecrets/{}",
        vault.vault_uri,
        removed.as_ref().map_or(name, |deleted| deleted.history.name.as_str())
    );
    state.record("DELETE", &resource_id, Operation::DeletedSecretPurge, true, &Value::Null);
    VaultAnswer { status: StatusCode::NO_CONTENT, body: Value::Null, headers: Vec::new() }
}
