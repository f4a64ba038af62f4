//! The secret's versions (for credspec validation) and step `secret-delete`
//! (`Remove-GMSAAzureKeyVaultSecret`-style teardown), through the official `SecretClient`.
//!
//! [`list_versions`]: `GET /secrets/{name}/versions`, following `nextLink`; never reads a value.
//!
//! `secret-delete` — expected flow: list the versions (does the secret exist?) and, on a
//! soft-delete vault, GET `deletedsecrets/{name}` (is a deleted one waiting?) → the diff →
//! in [`Mode::Apply`]: `DELETE /secrets/{name}` (every version), wait until the deleted secret
//! shows up (Azure completes a delete asynchronously), then `DELETE /deletedsecrets/{name}`
//! (purge), retrying a 409 "currently being deleted".
//!
//! Guarantees: no value is read, so none can reach a diff, an error or a log; a vault with purge
//! protection keeps the deleted secret until its retention ends (reported in `observed`, not
//! an error: nothing more can be done); an absent secret with nothing deleted is `unchanged`;
//! in [`Mode::DryRun`] nothing is written and the diff is `planned`.

use crate::config::AzureConfig;
use crate::error::{Error, Operation};
use crate::secret::secret_name_of;
use crate::vault_grant::VaultProperties;
use azure_security_keyvault_secrets::SecretClient;
use futures::StreamExt;
use proto::outcome::{FieldChange, Mode, StepOutcome};
use serde::Serialize;
use serde_json::json;

/// The step name reported for secret deletion.
pub const STEP_SECRET_DELETE: &str = "secret-delete";

/// Longest wait, in polls, for a delete to complete or a purge to be accepted.
const MAX_POLLS: u32 = 60;

/// One version of a secret, without its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretVersion {
    /// Version id (32 hex digits).
    pub version: String,
    /// Versioned URI, `https://{vault}/secrets/{name}/{version}`, as a credspec names it.
    pub uri: String,
    /// `attributes.enabled` (a disabled version cannot be read).
    pub enabled: bool,
    /// The version's tags (a rotation tags what it writes with its run id).
    pub tags: std::collections::BTreeMap<String, String>,
}

fn is_status(error: &azure_core::Error, status: u16) -> bool {
    error.http_status().map(u16::from) == Some(status)
}

/// Every version of the secret (in the order Key Vault lists them); empty when it does not exist.
pub(crate) async fn list_versions(client: &SecretClient, resource: &str) -> Result<Vec<SecretVersion>, Error> {
    let name = secret_name_of(resource);
    let mut pager = client
        .list_secret_properties_versions(name, None)
        .map_err(|error| Error::from_sdk(Operation::ListSecretVersions, resource, error))?;
    let mut versions = Vec::new();
    while let Some(item) = pager.next().await {
        let properties = match item {
            Ok(properties) => properties,
            Err(error) if is_status(&error, 404) => return Ok(Vec::new()),
            Err(error) => return Err(Error::from_sdk(Operation::ListSecretVersions, resource, error)),
        };
        let Some(uri) = properties.id else { continue };
        let uri = uri.split('?').next().unwrap_or_default().to_string();
        let version = uri.rsplit('/').next().unwrap_or_default().to_string();
        let enabled = properties.attributes.and_then(|attributes| attributes.enabled).unwrap_or(true);
        let tags = properties.tags.unwrap_or_default().into_iter().collect();
        versions.push(SecretVersion { version, uri, enabled, tags });
    }
    Ok(versions)
}

/// Whether a deleted secret of that name waits to be purged (`false` without soft delete).
async fn deleted_exists(client: &SecretClient, resource: &str) -> Result<bool, Error> {
    match client.get_deleted_secret(secret_name_of(resource), None).await {
        Ok(_) => Ok(true),
        // 404: nothing deleted under the name; 400 NotSupported: the vault has no soft delete.
        Err(error) if is_status(&error, 404) || is_status(&error, 400) => Ok(false),
        Err(error) => Err(Error::from_sdk(Operation::DeleteSecret, resource, error)),
    }
}

/// What `secret-delete` would remove, from what it read.
pub fn plan_secret_delete(
    name: &str,
    versions: &[SecretVersion],
    deleted_waiting: bool,
    purgeable: bool,
) -> Vec<FieldChange> {
    let mut diff = Vec::new();
    if !versions.is_empty() {
        let uris: Vec<&str> = versions.iter().map(|version| version.uri.as_str()).collect();
        diff.push(FieldChange {
            path: format!("/secrets/{name}"),
            before: Some(json!({"versions": uris})),
            after: None,
        });
    }
    if purgeable && (deleted_waiting || !versions.is_empty()) {
        diff.push(FieldChange { path: format!("/deletedsecrets/{name}"), before: Some(json!("deleted")), after: None });
    }
    diff
}

/// Deletes and purges the secret; see the module docs.
pub(crate) async fn delete_secret(
    client: &SecretClient,
    resource: &str,
    vault: &VaultProperties,
    config: &AzureConfig,
    mode: Mode,
) -> Result<StepOutcome, Error> {
    let name = secret_name_of(resource);
    let soft_delete = vault.enable_soft_delete != Some(false);
    let purge_protection = vault.enable_purge_protection == Some(true);
    let purgeable = soft_delete && !purge_protection;
    let versions = list_versions(client, resource).await?;
    let deleted_waiting = soft_delete && deleted_exists(client, resource).await?;
    let diff = plan_secret_delete(name, &versions, deleted_waiting, purgeable);
    let observed = |deleted_kept: bool| {
        json!({"secret": resource, "softDelete": soft_delete, "purgeProtection": purge_protection,
            "deletedSecretKept": deleted_kept})
    };
    if diff.is_empty() || !mode.applies() {
        let kept = soft_delete && !purgeable && (deleted_waiting || !versions.is_empty());
        return Ok(StepOutcome::in_mode(mode, STEP_SECRET_DELETE, diff, observed(kept)));
    }
    if !versions.is_empty() {
        match client.delete_secret(name, None).await {
            Ok(_) => tracing::info!(secret = resource, versions = versions.len(), "deleted secret"),
            Err(error) if is_status(&error, 404) => {}
            Err(error) => return Err(Error::from_sdk(Operation::DeleteSecret, resource, error)),
        }
    }
    if purgeable {
        let mut polls = 0;
        while !deleted_exists(client, resource).await? && polls < MAX_POLLS {
            polls += 1;
            tokio::time::sleep(config.lro_poll_interval).await;
        }
        purge(client, resource, config).await?;
    }
    Ok(StepOutcome::in_mode(mode, STEP_SECRET_DELETE, diff, observed(soft_delete && !purgeable)))
}

/// Purges the deleted secret, retrying while Key Vault still finishes the delete (409).
async fn purge(client: &SecretClient, resource: &str, config: &AzureConfig) -> Result<(), Error> {
    let name = secret_name_of(resource);
    for attempt in 0..=MAX_POLLS {
        match client.purge_deleted_secret(name, None).await {
            Ok(_) => {
                tracing::info!(secret = resource, "purged deleted secret");
                return Ok(());
            }
            Err(error) if is_status(&error, 404) => return Ok(()),
            Err(error) if is_status(&error, 409) && attempt < MAX_POLLS => {
                tracing::debug!(secret = resource, attempt, "delete still in progress; purge retried");
                tokio::time::sleep(config.lro_poll_interval).await;
            }
            Err(error) => return Err(Error::from_sdk(Operation::PurgeSecret, resource, error)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_version(version: &str) -> SecretVersion {
        SecretVersion {
            version: version.into(),
            uri: format!("https://kv/secrets/s/{version}"),
            enabled: true,
            tags: Default::default(),
        }
    }

    #[test]
    fn an_existing_secret_is_deleted_and_purged_when_purgeable() {
        let diff = plan_secret_delete("s", &[mk_version("a"), mk_version("b")], false, true);
        let paths: Vec<&str> = diff.iter().map(|change| change.path.as_str()).collect();
        assert_eq!(paths, ["/secrets/s", "/deletedsecrets/s"]);
        assert_eq!(diff[0].before, Some(json!({"versions": ["https://kv/secrets/s/a", "https://kv/secrets/s/b"]})));
        assert!(diff.iter().all(|change| change.after.is_none()));
    }

    #[test]
    fn purge_protection_or_nothing_left_limits_the_plan() {
        assert_eq!(plan_secret_delete("s", &[mk_version("a")], false, false).len(), 1);
        assert_eq!(plan_secret_delete("s", &[], true, true)[0].path, "/deletedsecrets/s");
        assert!(plan_secret_delete("s", &[], true, false).is_empty());
        assert!(plan_secret_delete("s", &[], false, true).is_empty());
    }
}
