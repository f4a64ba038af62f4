//! azsim: a local Azure for gmsa-fleet's tests, benchmarks and demo. It speaks HTTPS on loopback
//! and behaves like Azure Resource Manager (managed clusters, key vaults, role assignments,
//! user-assigned identities, VM scale sets), the Key Vault secrets data plane and the Entra ID
//! token endpoint, closely enough that a client written against Microsoft's REST specs and the
//! official Rust SDK (azure_core / azure_identity / azure_security_keyvault_secrets 1.x) works
//! unchanged against it: same paths, api-versions, JSON field names, status codes, headers and
//! error bodies. Each modelled operation cites the spec file it follows.
//!
//! ```text
//!   tests ──seed/faults──▶ AzureSim ──mutations(), state readers──▶ tests
//!                            │
//!   client ─HTTPS─▶ https://127.0.0.1:P  (one listener: ARM + /{tenant}/oauth2/v2.0/token)
//!   client ─HTTPS─▶ https://127.0.0.1:Vn (one listener per vault: Key Vault secrets data plane)
//! ```
//!
//! # Talking to it
//! - **TLS**: every listener serves a certificate for `127.0.0.1`, `::1` and `localhost` signed by
//!   a CA generated at start; trust [`AzureSim::ca_pem`] in the client's reqwest (add it as a root).
//! - **Entra**: point the credential's authority host at [`AzureSim::authority_host`]
//!   (`ClientOptions::cloud = CloudConfiguration::Custom{authority_host, ..}` or
//!   `AZURE_AUTHORITY_HOST`). `ClientSecretCredential` posts straight to
//!   `/{tenant}/oauth2/v2.0/token`; seed the client with [`AzureSim::add_service_principal`].
//!   Workload identity's client assertion is accepted for [`AzureSim::add_federated_principal`].
//! - **ARM**: use [`AzureSim::arm_endpoint`] as the management endpoint, audience/scope
//!   `https://management.azure.com/.default`.
//! - **Key Vault**: each vault's `properties.vaultUri` is `https://127.0.0.1:<port>/`. The first
//!   request without a token gets the real 401 challenge
//!   (`WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"`).
//!   azure_security_keyvault_secrets 1.x verifies that the request host ends with
//!   `.` + the challenge resource's host (`.vault.azure.net`), which a loopback address never does:
//!   create the `SecretClient` with `SecretClientOptions { verify_challenge_resource: Some(false), .. }`
//!   against the simulator (keep the default, `true`, against Azure). The SDK's default
//!   api-version (`2025-07-01`) and 7.4–7.6 are accepted.
//!
//! # What it does not model
//! ARM authorization (any valid management token may write anything), deletes other than role
//! assignments, agent pool sub-resources, managed identity tokens from IMDS, Key Vault keys and
//! certificates, soft-delete and recovery, private endpoints/firewalls, and tag-only PATCH of
//! clusters. Throttling is per subscription only (ARM also throttles per principal and region).
//!
//! # Errors
//! Setup failures are [`SimError`]; everything a client can do wrong is answered on the wire
//! with the service's own error body, never a panic.

mod arm;
mod config;
mod faults;
mod keyvault;
mod mutations;
mod rng;
mod roles;
mod seed;
mod sim;
mod state;
mod tls;
mod token;
mod token_endpoint;

pub use config::{ArmBudget, FaultKind, FaultRule, Faults, Frequency, Operation, SimConfig, Target, TokenBucketSpec};
pub use mutations::{Mutation, REDACTED};
pub use roles::{
    KEY_VAULT_ADMINISTRATOR, KEY_VAULT_SECRETS_OFFICER, KEY_VAULT_SECRETS_USER, MANAGED_IDENTITY_OPERATOR,
    role_definition_id,
};
pub use seed::{
    AccessPolicyEntry, AgentPoolSeed, ClusterSeed, GmsaProfile, IdentityInfo, OsType, Permissions, SeededCluster,
    SeededVault, VaultSeed,
};
pub use sim::{AzureSim, RoleAssignmentView, SecretVersionInfo, SimError};
pub use tls::TlsError;
pub use token::Claims;
