//! Turns [`CredentialConfig`] into an `azure_identity` token credential that uses our transport
//! (so the simulator's CA is trusted for token requests too) and our authority host.

use crate::config::{AzureConfig, CredentialConfig};
use crate::error::{Error, Operation};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use std::sync::Arc;

/// Client options for a credential's own token pipeline: our transport and authority host.
fn credential_client_options(config: &AzureConfig, transport: &Transport) -> ClientOptions {
    let cloud = config.authority_host.as_ref().map(|authority_host| {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = authority_host.trim_end_matches('/').to_string();
        Arc::new(CloudConfiguration::Custom(custom))
    });
    ClientOptions { transport: Some(transport.clone()), cloud, ..ClientOptions::default() }
}

/// Builds the configured credential.
pub(crate) fn build_credential(config: &AzureConfig, transport: &Transport) -> Result<Arc<dyn TokenCredential>, Error> {
    let client_options = credential_client_options(config, transport);
    let built: azure_core::Result<Arc<dyn TokenCredential>> = match &config.credential {
        CredentialConfig::WorkloadIdentity { client_id, tenant_id, token_file } => {
            let options = WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions { client_options },
                client_id: client_id.clone(),
                tenant_id: tenant_id.clone(),
                token_file_path: token_file.clone(),
            };
            WorkloadIdentityCredential::new(Some(options)).map(|credential| credential as Arc<dyn TokenCredential>)
        }
        CredentialConfig::ManagedIdentity { client_id } => {
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                client_options,
            };
            ManagedIdentityCredential::new(Some(options)).map(|credential| credential as Arc<dyn TokenCredential>)
        }
        CredentialConfig::ClientSecret { tenant_id, client_id, secret } => {
            // The single point where the client secret leaves its SecretString: into the SDK's Secret.
            let sdk_secret = Secret::new(secret.expose().to_string());
            let options = ClientSecretCredentialOptions { client_options };
            ClientSecretCredential::new(tenant_id, client_id.clone(), sdk_secret, Some(options))
                .map(|credential| credential as Arc<dyn TokenCredential>)
        }
        CredentialConfig::AzureCli { tenant_id } => {
            let options =
                AzureCliCredentialOptions { tenant_id: tenant_id.clone(), ..AzureCliCredentialOptions::default() };
            AzureCliCredential::new(Some(options)).map(|credential| credential as Arc<dyn TokenCredential>)
        }
    };
    built.map_err(|error| Error::from_sdk(Operation::Connect, credential_name(&config.credential), error))
}

/// The credential's kind, for errors and traces (never its secret).
pub(crate) fn credential_name(credential: &CredentialConfig) -> &'static str {
    match credential {
        CredentialConfig::WorkloadIdentity { .. } => "WorkloadIdentityCredential",
        CredentialConfig::ManagedIdentity { .. } => "ManagedIdentityCredential",
        CredentialConfig::ClientSecret { .. } => "ClientSecretCredential",
        CredentialConfig::AzureCli { .. } => "AzureCliCredential",
    }
}
