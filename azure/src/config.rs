//! How the adapter reaches Azure: endpoints, credential choice, trusted roots, retry and polling.
//!
//! Defaults are Azure public cloud. Every endpoint is overridable so the same code talks to a
//! sovereign cloud or to the local simulator (`azsim`), whose self-signed certificate is added
//! with [`AzureConfig::extra_ca_pem`].

use crate::error::{Error, ErrorKind, Operation};
use crate::retry::RetrySettings;
use gmsa::SecretString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Azure public cloud's Resource Manager endpoint.
pub const PUBLIC_ARM_ENDPOINT: &str = "https://management.azure.com";

/// Which `azure_identity` credential obtains tokens.
#[derive(Debug)]
pub enum CredentialConfig {
    /// In-cluster, Microsoft Entra Workload ID: the federated service-account token file.
    /// `None` fields fall back to `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity {
        /// Client id of the federated identity.
        client_id: Option<String>,
        /// Tenant id.
        tenant_id: Option<String>,
        /// Path of the projected service-account token.
        token_file: Option<PathBuf>,
    },
    /// In-cluster on the node's managed identity (IMDS); `client_id` picks a user-assigned one.
    ManagedIdentity {
        /// Client id of a user-assigned identity; `None` for the system-assigned identity.
        client_id: Option<String>,
    },
    /// Operators and CI: a service principal with a client secret.
    ClientSecret {
        /// Tenant id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The client secret.
        secret: SecretString,
    },
    /// Operators: the account logged in with `az login`.
    AzureCli {
        /// Tenant to request tokens for; `None` for the CLI's default.
        tenant_id: Option<String>,
    },
}

impl Clone for CredentialConfig {
    fn clone(&self) -> Self {
        match self {
            CredentialConfig::WorkloadIdentity { client_id, tenant_id, token_file } => {
                CredentialConfig::WorkloadIdentity {
                    client_id: client_id.clone(),
                    tenant_id: tenant_id.clone(),
                    token_file: token_file.clone(),
                }
            }
            CredentialConfig::ManagedIdentity { client_id } => {
                CredentialConfig::ManagedIdentity { client_id: client_id.clone() }
            }
            CredentialConfig::ClientSecret { tenant_id, client_id, secret } => CredentialConfig::ClientSecret {
                tenant_id: tenant_id.clone(),
                client_id: client_id.clone(),
                secret: secret.duplicate(),
            },
            CredentialConfig::AzureCli { tenant_id } => CredentialConfig::AzureCli { tenant_id: tenant_id.clone() },
        }
    }
}

/// The api-versions the adapter speaks, one per resource provider (all GA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersions {
    /// `Microsoft.ContainerService/managedClusters` (spec: aks/stable/2025-07-01/managedClusters.json).
    pub container_service: String,
    /// `Microsoft.KeyVault/vaults` and `vaults/accessPolicies` (spec: keyvault/resource-manager/Microsoft.KeyVault/stable/2023-07-01/vaults.json).
    pub key_vault: String,
    /// `Microsoft.Authorization/roleAssignments` (spec: authorization/stable/2022-04-01).
    pub authorization: String,
    /// `Microsoft.ManagedIdentity/userAssignedIdentities` (spec: msi/stable/2023-01-31/ManagedIdentity.json).
    pub managed_identity: String,
    /// `Microsoft.Compute/virtualMachineScaleSets` (spec: compute/stable/2024-07-01/virtualMachineScaleSet.json).
    pub compute: String,
}

impl Default for ApiVersions {
    fn default() -> Self {
        ApiVersions {
            container_service: "2025-07-01".to_string(),
            key_vault: "2023-07-01".to_string(),
            authorization: "2022-04-01".to_string(),
            managed_identity: "2023-01-31".to_string(),
            compute: "2024-07-01".to_string(),
        }
    }
}

/// Everything [`crate::Azure::connect`] needs.
#[derive(Debug, Clone)]
pub struct AzureConfig {
    /// Resource Manager base URL, e.g. `https://management.azure.com` or the simulator's.
    pub arm_endpoint: String,
    /// Token audience for ARM; the scope requested is `{arm_audience}/.default`. `None` uses
    /// `arm_endpoint` (right for public and sovereign clouds).
    pub arm_audience: Option<String>,
    /// Microsoft Entra authority host (`https://login.microsoftonline.com` by default).
    pub authority_host: Option<String>,
    /// The credential to use.
    pub credential: CredentialConfig,
    /// Extra PEM root certificate(s) to trust, merged with the system roots (the simulator's CA).
    pub extra_ca_pem: Option<String>,
    /// An HTTPS proxy every request goes through (`http://host:port`, HTTP `CONNECT`): a
    /// corporate egress proxy, or the simulator's, which serves Azure's own host names.
    pub https_proxy: Option<String>,
    /// Whether the Key Vault client requires the challenge's resource to match the vault's
    /// domain (`SecretClientOptions::verify_challenge_resource`). Keep `true`: the simulator
    /// serves vaults by their `.vault.azure.net` names too (through its proxy).
    pub verify_challenge_resource: bool,
    /// Retry, backoff and per-try timeout.
    pub retry: RetrySettings,
    /// Wait between polls of a long-running operation when the server sends no `Retry-After`.
    pub lro_poll_interval: Duration,
    /// Give up following a long-running operation after this long.
    pub lro_timeout: Duration,
    /// The api-versions used.
    pub api_versions: ApiVersions,
}

impl AzureConfig {
    /// Public-cloud defaults with the given credential.
    pub fn new(credential: CredentialConfig) -> Self {
        AzureConfig {
            arm_endpoint: PUBLIC_ARM_ENDPOINT.to_string(),
            arm_audience: None,
            authority_host: None,
            credential,
            extra_ca_pem: None,
            https_proxy: None,
            verify_challenge_resource: true,
            retry: RetrySettings::default(),
            lro_poll_interval: Duration::from_secs(10),
            lro_timeout: Duration::from_secs(30 * 60),
            api_versions: ApiVersions::default(),
        }
    }

    /// The OAuth scope for ARM tokens.
    pub fn arm_scope(&self) -> String {
        let audience = self.arm_audience.as_deref().unwrap_or(&self.arm_endpoint);
        format!("{}/.default", audience.trim_end_matches('/'))
    }
}

/// The `azure` section of an operator's configuration file (agent and coordinator alike): where
/// Azure is and which credential to use. Secrets are never in the file: `client-secret` names the
/// environment variable that holds the secret. [`AzureSection::azure_config`] turns it into an
/// [`AzureConfig`].
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSection {
    #[serde(default = "default_arm")]
    pub arm_endpoint: String,
    /// Token audience for ARM (defaults to the endpoint).
    #[serde(default)]
    pub arm_audience: Option<String>,
    #[serde(default)]
    pub authority_host: Option<String>,
    /// A PEM file of extra trusted CAs (a private cloud, or the simulator).
    #[serde(default)]
    pub extra_ca_file: Option<PathBuf>,
    /// An HTTPS proxy for every request (`http://host:port`).
    #[serde(default)]
    pub https_proxy: Option<String>,
    /// Key Vault's challenge-resource check; keep `true` against Azure.
    #[serde(default = "yes")]
    pub verify_challenge_resource: bool,
    pub credential: CredentialSection,
}

/// The credential of an [`AzureSection`], chosen by `type`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CredentialSection {
    WorkloadIdentity {
        #[serde(default)]
        client_id: Option<String>,
        #[serde(default)]
        tenant_id: Option<String>,
    },
    ManagedIdentity {
        #[serde(default)]
        client_id: Option<String>,
    },
    ClientSecret {
        tenant_id: String,
        client_id: String,
        /// The environment variable holding the client secret.
        secret_env: String,
    },
    AzureCli {
        #[serde(default)]
        tenant_id: Option<String>,
    },
}

fn default_arm() -> String {
    PUBLIC_ARM_ENDPOINT.to_string()
}

fn yes() -> bool {
    true
}

/// A section field that cannot be used; `field` is relative to the section (`credential.secret_env`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct SectionError {
    pub field: &'static str,
    pub rule: String,
}

impl CredentialSection {
    /// The credential this section names; a client secret is read from its environment variable.
    pub fn resolve(&self) -> Result<CredentialConfig, SectionError> {
        Ok(match self {
            CredentialSection::WorkloadIdentity { client_id, tenant_id } => CredentialConfig::WorkloadIdentity {
                client_id: client_id.clone(),
                tenant_id: tenant_id.clone(),
                token_file: None,
            },
            CredentialSection::ManagedIdentity { client_id } => {
                CredentialConfig::ManagedIdentity { client_id: client_id.clone() }
            }
            CredentialSection::ClientSecret { tenant_id, client_id, secret_env } => {
                let secret = std::env::var(secret_env).map_err(|_| SectionError {
                    field: "credential.secret_env",
                    rule: format!("environment variable {secret_env} is not set"),
                })?;
                CredentialConfig::ClientSecret {
                    tenant_id: tenant_id.clone(),
                    client_id: client_id.clone(),
                    secret: SecretString::new(secret),
                }
            }
            CredentialSection::AzureCli { tenant_id } => CredentialConfig::AzureCli { tenant_id: tenant_id.clone() },
        })
    }
}

impl AzureSection {
    /// The adapter configuration with `credential` (from [`CredentialSection::resolve`], or given
    /// by a test); reads `extra_ca_file`.
    pub fn azure_config(&self, credential: CredentialConfig) -> Result<AzureConfig, SectionError> {
        let mut config = AzureConfig::new(credential);
        config.arm_endpoint = self.arm_endpoint.clone();
        config.arm_audience = self.arm_audience.clone();
        config.authority_host = self.authority_host.clone();
        config.verify_challenge_resource = self.verify_challenge_resource;
        config.https_proxy = self.https_proxy.clone();
        if let Some(path) = &self.extra_ca_file {
            let pem = std::fs::read_to_string(path).map_err(|err| SectionError {
                field: "extra_ca_file",
                rule: format!("cannot read {}: {err}", path.display()),
            })?;
            config.extra_ca_pem = Some(pem);
        }
        Ok(config)
    }
}

/// Builds the one reqwest client all pipelines share, trusting `extra_ca_pem` in addition to
/// the system roots. The process must have installed a rustls crypto provider (ring) first.
pub(crate) fn build_http_client(config: &AzureConfig) -> Result<Arc<reqwest::Client>, Error> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        // ARM follows no redirects for us; a Location header is an LRO, not a redirect.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = &config.extra_ca_pem {
        let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|error| {
            Error::new(Operation::Connect, "extra_ca_pem", ErrorKind::Config, format!("unreadable PEM: {error}"))
        })?;
        if certificates.is_empty() {
            return Err(Error::new(Operation::Connect, "extra_ca_pem", ErrorKind::Config, "no certificate in PEM"));
        }
        builder = builder.tls_certs_merge(certificates);
    }
    if let Some(proxy) = &config.https_proxy {
        let proxy = reqwest::Proxy::https(proxy).map_err(|error| {
            Error::new(Operation::Connect, "https_proxy", ErrorKind::Config, format!("unusable proxy URL: {error}"))
        })?;
        builder = builder.proxy(proxy);
    }
    let client = builder.build().map_err(|error| {
        Error::new(
            Operation::Connect,
            "http client",
            ErrorKind::Config,
            format!("cannot build TLS client (is a rustls crypto provider installed?): {error}"),
        )
    })?;
    Ok(Arc::new(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_scope_defaults_to_the_endpoint() {
        let mut config = AzureConfig::new(CredentialConfig::AzureCli { tenant_id: None });
        assert_eq!(config.arm_scope(), "https://management.azure.com/.default");
        config.arm_audience = Some("https://management.core.usgovcloudapi.net/".to_string());
        assert_eq!(config.arm_scope(), "https://management.core.usgovcloudapi.net/.default");
    }

    #[test]
    fn client_secret_is_redacted_in_debug() {
        let credential = CredentialConfig::ClientSecret {
            tenant_id: "t".to_string(),
            client_id: "c".to_string(),
            secret: SecretString::new("hunter2-very-secret"),
        };
        let config = AzureConfig::new(credential.clone());
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn garbage_ca_pem_is_a_config_error() {
        let mut config = AzureConfig::new(CredentialConfig::AzureCli { tenant_id: None });
        config.extra_ca_pem = Some("not a certificate".to_string());
        let error = build_http_client(&config).err().map(|error| error.kind());
        assert_eq!(error, Some(ErrorKind::Config));
    }
}
