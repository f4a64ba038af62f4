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
//!   a CA generated at start; trust [`AzureSim::ca_pem`] in the client's reqwest
//!   (`reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(pem)?])`) and hand
//!   that client to azure_core as `ClientOptions { transport: Some(Transport::new(Arc::new(client))), .. }`
//!   (tests/wire.rs `official_sdk` does exactly this). Install ring as the rustls provider first.
//! - **Entra**: point the credential's authority host at [`AzureSim::authority_host`]
//!   (`let mut cloud = CustomConfiguration::default(); cloud.authority_host = sim.authority_host();`
//!   then `ClientOptions { cloud: Some(Arc::new(cloud.into())), .. }`; `CustomConfiguration` is
//!   non-exhaustive), or `AZURE_AUTHORITY_HOST`. `ClientSecretCredential` posts straight to
//!   `/{tenant}/oauth2/v2.0/token`; seed the client with [`AzureSim::add_service_principal`].
//!   Workload identity's client assertion is accepted for [`AzureSim::add_federated_principal`].
//! - **ARM**: use [`AzureSim::arm_endpoint`] as the management endpoint, audience/scope
//!   `https://management.azure.com/.default`.
//! - **Key Vault**: each vault's `properties.vaultUri` is `https://127.0.0.1:<port>/`, or with
//!   [`SimConfig::vault_dns_names`] `https://<vault>.vault.azure.net/`. The first request without
//!   a token gets the real 401 challenge
//!   (`WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"`),
//!   before any other check. Key Vault SDKs verify that the request host ends with `.` + the
//!   challenge resource's host (`.vault.azure.net`), which a loopback address never does: reach
//!   vaults by their DNS names through the proxy below and keep that check on, or (loopback
//!   `vaultUri`) create the Rust `SecretClient` with `verify_challenge_resource: Some(false)`.
//!   Data-plane api-versions `7.0` … `7.6` and `2025-07-01` … `2026-04-01` are accepted.
//! - **Azure's host names**: [`AzureSim::https_proxy`] is an HTTPS (`CONNECT`) proxy for
//!   `HTTPS_PROXY` through which `management.azure.com`, `login.microsoftonline.com` and
//!   `<vault>.vault.azure.net` reach the simulator; the listeners' certificate carries those
//!   names. With it and the CA in `REQUESTS_CA_BUNDLE`, the Azure CLI and the Python SDKs run
//!   unconfigured (tests/wire/official_clients.rs).
//! - **Entra discovery**: `GET /{tenant}/v2.0/.well-known/openid-configuration` (MSAL and
//!   azure-identity fetch it first) and `GET /common/discovery/instance`, on the token
//!   endpoint's listener, naming the host the client used.
//!
//! # Public API (all on [`AzureSim`])
//! - start/stop: [`AzureSim::start`]`(`[`SimConfig`]`)`; dropping the handle stops every listener.
//! - endpoints: [`AzureSim::arm_endpoint`], [`AzureSim::authority_host`], [`AzureSim::ca_pem`],
//!   [`AzureSim::tenant_id`].
//! - seeding (not logged as mutations): [`AzureSim::add_managed_cluster`] (also creates the node
//!   resource group, the kubelet identity `{name}-agentpool` and one scale set per pool, tagged
//!   `aks-managed-poolName` and carrying the kubelet identity, as AKS attaches it to every pool), [`AzureSim::add_vault`], [`AzureSim::add_service_principal`],
//!   [`AzureSim::add_federated_principal`], [`AzureSim::add_role_assignment`],
//!   [`AzureSim::add_resource_group`], [`AzureSim::issue_token`].
//! - faults at runtime: [`AzureSim::set_faults`] ([`Faults`]: [`FaultRule`]s of latency, 429 with
//!   `Retry-After`, 5xx, each for the next N requests, at a seeded rate or always, aimed by
//!   [`Target`]/[`Operation`]; the ARM budget [`ArmBudget`]; failing cluster operations),
//!   [`AzureSim::set_lro_duration`], [`AzureSim::begin_cluster_operation`] (someone else's
//!   operation: PUTs get 409 meanwhile).
//! - effects: [`AzureSim::mutations`] (every successful write, body redacted, with `changed`),
//!   [`AzureSim::managed_cluster`], [`AzureSim::gmsa_profile`], [`AzureSim::vault`],
//!   [`AzureSim::access_policies`], [`AzureSim::role_assignments`], [`AzureSim::identity`],
//!   [`AzureSim::scale_set_identities`], [`AzureSim::secret_versions`], [`AzureSim::secret_value`],
//!   [`AzureSim::deleted_secret_names`], and [`AzureSim::snapshot`] of the whole world (for
//!   "teardown leaves exactly what existed before setup"; see its docs for what is normalized).
//!
//! # ARM behaviour a client can rely on
//! - Authentication comes first (401 with `WWW-Authenticate` whatever else is wrong). Paths and
//!   ids are case-insensitive; `api-version` is required (400 `MissingApiVersionParameter`),
//!   must be well-formed (400 `InvalidApiVersionParameter`) and accepted by rule (400
//!   `NoRegisteredProviderFound` otherwise): every stable date from the oldest modelled version
//!   through the newest today's SDKs and CLI send — AKS 2023-08-01 … 2026-08-01 (modelled on
//!   2024-09-01), Key Vault management 2019-09-01 … 2026-05-15 (2023-07-01), Authorization
//!   2022-04-01 … 2026-04-01 and two previews, Managed Identity 2018-11-30 … 2025-05-31,
//!   Compute 2023-03-01 … 2026-04-01, Resource Manager's own 2015-11-01 … 2026-12-01. Fields a
//!   newer version adds are kept as sent, not modelled.
//! - Resource Manager reads: `GET /subscriptions`, `GET /subscriptions/{s}`, `GET /tenants`,
//!   and `GET /subscriptions/{s}/resources` with `$filter` on `resourceType` and `name` (`eq`,
//!   `and`; 400 `InvalidFilterInQueryString` for anything else).
//! - Every error is `{"error":{"code","message"}}` with the service's code; every answer carries
//!   `x-ms-request-id`. 401 without/with a bad management token, 404 `SubscriptionNotFound`,
//!   `ResourceGroupNotFound`, `ResourceNotFound`.
//! - Managed clusters: body `eTag` (and agent pool `eTag`s) renewed by every PUT, also sent as an
//!   `ETag` header; `If-Match` mismatch → 412 `PreconditionFailed`; `If-None-Match: *` on an
//!   existing cluster → 412. PUT answers 201 (new) / 200 (existing) with
//!   `provisioningState` `Creating`/`Updating`, headers `Azure-AsyncOperation`
//!   (`{arm}/subscriptions/{s}/providers/Microsoft.ContainerService/locations/{loc}/operations/{id}?api-version=…`,
//!   body `{"id","name","status":"InProgress"|"Succeeded"|"Failed","startTime","endTime"?,"error"?}`),
//!   `Location` (`…/operationresults/{id}`: 202 while running, then 200 with the cluster) and
//!   `Retry-After` ([`SimConfig::lro_retry_after_secs`], may be 0). The operation ends after
//!   [`SimConfig::lro_duration`]; meanwhile PUT → 409 `OperationNotAllowed`. gMSA validation →
//!   400 `InvalidParameter`. `windowsProfile.adminPassword` is accepted and never returned.
//! - Throttling: ARM's per-subscription token buckets → 429 `SubscriptionRequestsThrottled` with
//!   `Retry-After` and `x-ms-ratelimit-remaining-subscription-writes|reads` on success;
//!   injected 429s use `TooManyRequests`, injected 5xx `InternalServerError`/`ServiceUnavailable`.
//!
//! # Scale
//! State lives in one mutex-guarded map keyed by ARM id; thousands of clusters are fine. Each
//! vault holds one loopback port and one accept task.
//!
//! # What it does not model
//! ARM authorization (any valid management token may write anything), deletes other than role
//! assignments and user-assigned identities, agent pool sub-resources, managed identity tokens
//! from IMDS, Key Vault keys and certificates, secret recovery (delete, get-deleted and purge are
//! modelled; a delete completes at once, where Azure finishes it asynchronously), vault
//! soft-delete, private endpoints/firewalls, and tag-only PATCH of clusters. Throttling is per subscription only (ARM also throttles per principal and region).
//!
//! # Errors
//! Setup failures are [`SimError`]; everything a client can do wrong is answered on the wire
//! with the service's own error body, never a panic.

mod arm;
mod config;
mod faults;
mod keyvault;
mod mutations;
mod proxy;
mod rng;
mod roles;
mod seed;
mod sim;
mod snapshot;
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

#[cfg(test)]
mod tidy {
    use std::path::Path;

    /// Every source file opens with a `//!` doc saying what it is for.
    #[test]
    fn every_source_file_opens_with_a_module_doc() {
        fn visit(directory: &Path, missing: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(directory) else { return };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    visit(&path, missing);
                } else if path.extension().is_some_and(|extension| extension == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    if !text.starts_with("//!") {
                        missing.push(path.display().to_string());
                    }
                }
            }
        }
        let mut missing = Vec::new();
        visit(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut missing);
        visit(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"), &mut missing);
        assert!(missing.is_empty(), "files without a //! doc: {missing:?}");
    }
}
