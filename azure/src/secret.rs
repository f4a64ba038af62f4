//! Step `secret-write`: the standard domain user credential `DOMAIN\user:password` in Key
//! Vault, through the official `SecretClient`.
//!
//! Expected flow: get the current version → equal value: unchanged, its versioned id returned;
//! missing or different: set a new version. The value is compared in memory only.
//!
//! Invariant: the value lives in [`SecretString`]s; it is exposed once to build the request and
//! once to compare, never formatted, logged, put into an error or a diff (`<redacted>` there).

use crate::error::{Error, ErrorKind, Operation};
use azure_security_keyvault_secrets::SecretClient;
use azure_security_keyvault_secrets::models::SetSecretParameters;
use gmsa::SecretString;
use proto::outcome::{FieldChange, StepOutcome};
use serde_json::{Value, json};
use std::fmt;

/// The step name reported for secret writes.
pub const STEP_SECRET_WRITE: &str = "secret-write";

/// The secret name the Microsoft procedure uses.
pub const DEFAULT_SECRET_NAME: &str = "GMSADomainUserCred";

/// The versioned URI of a secret (`https://{vault}/secrets/{name}/{version}`), as the
/// credspec's `PluginInput` `SecretUri=` wants it. Not secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUri(pub String);

impl fmt::Display for SecretUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a secret write did.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretWrite {
    /// `changed` when a new version was written.
    pub outcome: StepOutcome,
    /// The versioned URI of the current version.
    pub uri: SecretUri,
}

/// Builds the credential string `DOMAIN\user:password` (the seed's `$Domain\\$DomainUsername:$DomainUserPassword`).
///
/// `domain` is the domain's FQDN (the procedure asks for it); neither it nor `user` may be
/// empty or contain `\` or `:`, which would make the string ambiguous for the CCG plugin.
pub fn domain_user_credential(domain: &str, user: &str, password: &SecretString) -> Result<SecretString, String> {
    for (field, value) in [("domain", domain), ("user", user)] {
        if value.trim().is_empty() {
            return Err(format!("{field} must not be empty"));
        }
        if value.contains('\\') || value.contains(':') {
            return Err(format!("{field} must not contain '\\' or ':'"));
        }
    }
    if password.expose().is_empty() {
        return Err("password must not be empty".to_string());
    }
    Ok(SecretString::new(format!("{}\\{}:{}", domain.trim(), user.trim(), password.expose())))
}

/// Reads the current value and versioned id, `None` when the secret does not exist.
pub(crate) async fn read_secret(
    client: &SecretClient,
    resource: &str,
) -> Result<Option<(SecretString, SecretUri)>, Error> {
    let name = secret_name_of(resource);
    match client.get_secret(name, None).await {
        Ok(response) => {
            let secret =
                response.into_model().map_err(|error| Error::from_sdk(Operation::GetSecret, resource, error))?;
            let value = SecretString::new(secret.value.unwrap_or_default());
            let uri = secret.id.map(SecretUri).ok_or_else(|| {
                Error::new(Operation::GetSecret, resource, ErrorKind::Decode, "secret bundle has no id")
            })?;
            Ok(Some((value, uri)))
        }
        Err(error) if error.http_status().map(u16::from) == Some(404) => Ok(None),
        Err(error) => Err(Error::from_sdk(Operation::GetSecret, resource, error)),
    }
}

/// Writes `value` unless the current version already holds it.
pub(crate) async fn write_secret(
    client: &SecretClient,
    resource: &str,
    value: &SecretString,
) -> Result<SecretWrite, Error> {
    let name = secret_name_of(resource);
    let current = read_secret(client, resource).await?;
    if let Some((current_value, uri)) = &current
        && current_value == value
    {
        let observed = json!({"secret": resource, "uri": uri.0});
        return Ok(SecretWrite { outcome: StepOutcome::unchanged(STEP_SECRET_WRITE, observed), uri: uri.clone() });
    }
    let parameters = SetSecretParameters {
        // The one place the value leaves its SecretString: the request body to Key Vault.
        value: Some(value.expose().to_string()),
        content_type: Some("text/plain".to_string()),
        ..SetSecretParameters::default()
    };
    let content = parameters.try_into().map_err(|error| Error::from_sdk(Operation::SetSecret, resource, error))?;
    let written = client
        .set_secret(name, content, None)
        .await
        .map_err(|error| Error::from_sdk(Operation::SetSecret, resource, error))?
        .into_model()
        .map_err(|error| Error::from_sdk(Operation::SetSecret, resource, error))?;
    let uri = written.id.map(SecretUri).ok_or_else(|| {
        Error::new(Operation::SetSecret, resource, ErrorKind::Decode, "set secret answered without an id")
    })?;
    tracing::info!(secret = resource, uri = %uri, "wrote a new secret version");
    let change = FieldChange {
        path: "/value".to_string(),
        before: current.as_ref().map(|_| Value::String("<redacted>".to_string())),
        after: Some(Value::String("<redacted>".to_string())),
    };
    let observed = json!({"secret": resource, "uri": uri.0});
    Ok(SecretWrite { outcome: StepOutcome::from_diff(STEP_SECRET_WRITE, vec![change], observed), uri })
}

/// Writes `value` as a **new** version tagged `tags` (a rotation's run id), whatever the current
/// version holds; returns the new version's id. Never disables or deletes a version: the
/// previous one stays readable, and a rollback is another new version.
pub(crate) async fn write_new_version(
    client: &SecretClient,
    resource: &str,
    value: &SecretString,
    tags: &std::collections::BTreeMap<String, String>,
) -> Result<String, Error> {
    let name = secret_name_of(resource);
    let parameters = SetSecretParameters {
        // The one place the value leaves its SecretString: the request body to Key Vault.
        value: Some(value.expose().to_string()),
        content_type: Some("text/plain".to_string()),
        tags: Some(tags.iter().map(|(key, value)| (key.clone(), value.clone())).collect()),
        ..SetSecretParameters::default()
    };
    let content = parameters.try_into().map_err(|error| Error::from_sdk(Operation::SetSecret, resource, error))?;
    let written = client
        .set_secret(name, content, None)
        .await
        .map_err(|error| Error::from_sdk(Operation::SetSecret, resource, error))?
        .into_model()
        .map_err(|error| Error::from_sdk(Operation::SetSecret, resource, error))?;
    let id = written.id.ok_or_else(|| {
        Error::new(Operation::SetSecret, resource, ErrorKind::Decode, "set secret answered without an id")
    })?;
    let version = id.split('?').next().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string();
    tracing::info!(secret = resource, version = %version, "wrote a new secret version");
    Ok(version)
}

/// Reads the value of one version; `None` when it does not exist.
pub(crate) async fn read_version(
    client: &SecretClient,
    resource: &str,
    version: &str,
) -> Result<Option<SecretString>, Error> {
    let options = azure_security_keyvault_secrets::models::SecretClientGetSecretOptions {
        secret_version: Some(version.to_string()),
        ..Default::default()
    };
    match client.get_secret(secret_name_of(resource), Some(options)).await {
        Ok(response) => {
            let secret =
                response.into_model().map_err(|error| Error::from_sdk(Operation::GetSecret, resource, error))?;
            Ok(Some(SecretString::new(secret.value.unwrap_or_default())))
        }
        Err(error) if error.http_status().map(u16::from) == Some(404) => Ok(None),
        Err(error) => Err(Error::from_sdk(Operation::GetSecret, resource, error)),
    }
}

/// `resource` is `{vault_url}/secrets/{name}`; the name is its last segment.
pub(crate) fn secret_name_of(resource: &str) -> &str {
    resource.rsplit('/').next().unwrap_or(resource)
}

/// `{vault_url}/secrets/{name}` (no version), used as the resource in errors and traces.
pub(crate) fn secret_resource(vault_url: &str, name: &str) -> String {
    format!("{}/secrets/{}", vault_url.trim_end_matches('/'), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_string_has_the_documented_shape() {
        let password = SecretString::new("P@ss:w0rd");
        let credential = domain_user_credential("contoso.com", "gmsa-user", &password).unwrap();
        assert_eq!(credential.expose(), "contoso.com\\gmsa-user:P@ss:w0rd");
        assert!(!format!("{credential:?}").contains("P@ss"));
    }

    #[test]
    fn ambiguous_parts_are_rejected() {
        let password = SecretString::new("x");
        assert!(domain_user_credential("contoso.com", "a:b", &password).is_err());
        assert!(domain_user_credential("CONTOSO\\x", "user", &password).is_err());
        assert!(domain_user_credential("", "user", &password).is_err());
        assert!(domain_user_credential("contoso.com", "user", &SecretString::new("")).is_err());
    }

    #[test]
    fn resource_and_name_round_trip() {
        let resource = secret_resource("https://kv.vault.azure.net/", DEFAULT_SECRET_NAME);
        assert_eq!(resource, "https://kv.vault.azure.net/secrets/GMSADomainUserCred");
        assert_eq!(secret_name_of(&resource), DEFAULT_SECRET_NAME);
    }
}
