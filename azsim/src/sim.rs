//! `AzureSim`: starts the listeners, and is the tests' handle for seeding, faults, the mutation
//! log and state readers. Dropping it stops every listener and open connection.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::config::{Faults, SimConfig};
use crate::mutations::Mutation;
use crate::seed::{AccessPolicyEntry, ClusterSeed, GmsaProfile, IdentityInfo, SeededCluster, SeededVault, VaultSeed};
use crate::state::{RoleAssignment, State};
use crate::tls::{self, Tls, TlsError};
use crate::token::{Claims, Client, ClientAuth};
use crate::{arm, keyvault};

/// Failure of a simulator setup call.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// TLS material or a listener could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A seeding or fault call named a cluster that does not exist.
    #[error("managed cluster '{id}' does not exist in the simulator")]
    UnknownCluster {
        /// The id given.
        id: String,
    },
}

/// What every listener task shares.
pub(crate) struct Shared {
    /// The world; never held across an await.
    pub(crate) state: Mutex<State>,
    /// TLS acceptor for every listener (same certificate).
    pub(crate) tls: Tls,
    /// `https://127.0.0.1:<port>` of the ARM + Entra listener.
    pub(crate) arm_endpoint: String,
    /// `http://127.0.0.1:<port>` of the HTTPS (CONNECT) proxy that serves Azure's host names.
    pub(crate) https_proxy: String,
    /// Abort handles of every listener task: `AzureSim::drop` aborts them, which also breaks the
    /// `Arc<Shared>` cycle (tasks hold the `Arc`).
    pub(crate) tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    /// Locks the world, recovering from a poisoned lock (a panicking handler must not wedge tests).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers a listener task so drop can stop it.
    pub(crate) fn track(&self, handle: AbortHandle) {
        self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(handle);
    }
}

/// A role assignment as tests read it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleAssignmentView {
    /// ARM id (`{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`).
    pub id: String,
    /// Assignment name (a GUID).
    pub name: String,
    /// Scope it applies at.
    pub scope: String,
    /// Full role definition id.
    pub role_definition_id: String,
    /// Object id of the assignee.
    pub principal_id: String,
}

/// Metadata of one secret version (no value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretVersionInfo {
    /// Version id (32 hex digits).
    pub version: String,
    /// Versioned secret id, `{vaultUri}secrets/{name}/{version}`.
    pub id: String,
    /// `attributes.enabled`.
    pub enabled: bool,
    /// `contentType`.
    pub content_type: Option<String>,
}

/// A running simulator. See the crate docs for how clients must be configured.
pub struct AzureSim {
    shared: Arc<Shared>,
}

impl AzureSim {
    /// Generates TLS material and starts the ARM + Entra listener on `127.0.0.1:0`.
    pub async fn start(config: SimConfig) -> Result<AzureSim, SimError> {
        let tls = Tls::generate()?;
        let listener = tls::bind_loopback().await?;
        let port = listener.local_addr().map_err(TlsError::Bind)?.port();
        let proxy_listener = tls::bind_loopback().await?;
        let proxy_port = proxy_listener.local_addr().map_err(TlsError::Bind)?.port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(&config)),
            tls,
            arm_endpoint: format!("https://127.0.0.1:{port}"),
            https_proxy: format!("http://127.0.0.1:{proxy_port}"),
            tasks: Mutex::new(Vec::new()),
        });
        let router = arm::router(shared.clone());
        let task = tokio::spawn(tls::serve(listener, shared.tls.acceptor.clone(), router));
        shared.track(task.abort_handle());
        let proxy = tokio::spawn(crate::proxy::serve(shared.clone(), proxy_listener, port));
        shared.track(proxy.abort_handle());
        tracing::info!(endpoint = %shared.arm_endpoint, "azsim started");
        Ok(AzureSim { shared })
    }

    /// ARM endpoint, `https://127.0.0.1:<port>` (no trailing slash).
    pub fn arm_endpoint(&self) -> String {
        self.shared.arm_endpoint.clone()
    }

    /// Entra authority host (same listener as ARM), `https://127.0.0.1:<port>/`.
    pub fn authority_host(&self) -> String {
        format!("{}/", self.shared.arm_endpoint)
    }

    /// `http://127.0.0.1:<port>`: an HTTPS proxy (for `HTTPS_PROXY`) through which
    /// `https://management.azure.com`, `https://login.microsoftonline.com` and
    /// `https://<vault>.vault.azure.net` reach this simulator, with certificates for those names.
    pub fn https_proxy(&self) -> String {
        self.shared.https_proxy.clone()
    }

    /// PEM of the CA that signed every listener's certificate.
    pub fn ca_pem(&self) -> String {
        self.shared.tls.ca_pem.clone()
    }

    /// The tenant everything belongs to.
    pub fn tenant_id(&self) -> String {
        self.shared.lock().tenant_id.clone()
    }

    /// Registers a service principal that authenticates with a client secret.
    pub fn add_service_principal(&self, client_id: &str, secret: &str, object_id: &str) {
        let client = Client { object_id: object_id.to_string(), auth: ClientAuth::Secret(secret.to_string()) };
        self.shared.lock().add_client(client_id, client);
    }

    /// Registers a principal with a federated credential: any client assertion is accepted
    /// (workload identity), the token carries `object_id`.
    pub fn add_federated_principal(&self, client_id: &str, object_id: &str) {
        let client = Client { object_id: object_id.to_string(), auth: ClientAuth::Federated };
        self.shared.lock().add_client(client_id, client);
    }

    /// Creates an (empty) resource group, and its subscription if new.
    pub fn add_resource_group(&self, subscription: &str, resource_group: &str) {
        self.shared.lock().ensure_resource_group(subscription, resource_group);
    }

    /// Seeds a managed cluster in `Succeeded` state, with its node resource group, kubelet identity
    /// and one VM scale set per pool. Not recorded as a mutation.
    pub fn add_managed_cluster(
        &self,
        subscription: &str,
        resource_group: &str,
        name: &str,
        seed: ClusterSeed,
    ) -> SeededCluster {
        arm::managed_clusters::seed(&mut self.shared.lock(), subscription, resource_group, name, &seed)
    }

    /// Seeds a vault and starts its data-plane listener. Not recorded as a mutation.
    pub async fn add_vault(
        &self,
        subscription: &str,
        resource_group: &str,
        name: &str,
        seed: VaultSeed,
    ) -> Result<SeededVault, SimError> {
        let listener = tls::bind_loopback().await?;
        let port = listener.local_addr().map_err(TlsError::Bind)?.port();
        let vault = arm::vaults::seed(&mut self.shared.lock(), subscription, resource_group, name, &seed, port);
        keyvault::spawn_listener(&self.shared, listener, &vault.id);
        Ok(vault)
    }

    /// Seeds a role assignment (e.g. Secrets Officer for the agent on an RBAC vault); returns its id.
    pub fn add_role_assignment(&self, scope: &str, principal_id: &str, role_guid: &str) -> String {
        arm::role_assignments::seed(&mut self.shared.lock(), scope, principal_id, role_guid)
    }

    /// Issues a token for `object_id` with audience `audience` without a token request, for raw
    /// HTTP tests.
    pub fn issue_token(&self, object_id: &str, audience: &str) -> String {
        crate::token_endpoint::issue(&mut self.shared.lock(), object_id, object_id, audience)
    }

    /// Decodes a token this simulator issued.
    pub fn decode_token(&self, token: &str) -> Option<Claims> {
        crate::token::decode(token).ok()
    }

    /// Replaces the fault set (rules, ARM budget, failing operations) at runtime.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults.replace(faults);
    }

    /// Changes how long future managed-cluster operations run.
    pub fn set_lro_duration(&self, duration: Duration) {
        self.shared.lock().lro_duration = duration;
    }

    /// Starts an operation on a cluster as if someone else updated it: for `duration` every PUT
    /// gets 409 `OperationNotAllowed`.
    pub fn begin_cluster_operation(&self, cluster_id: &str, duration: Duration) -> Result<(), SimError> {
        let mut state = self.shared.lock();
        arm::managed_clusters::begin_operation(&mut state, cluster_id, duration, Instant::now())
            .map(|_| ())
            .ok_or_else(|| SimError::UnknownCluster { id: cluster_id.to_string() })
    }

    /// Every successful write so far, oldest first.
    pub fn mutations(&self) -> Vec<Mutation> {
        self.shared.lock().mutations.clone()
    }

    /// The managed cluster's resource body as GET returns it.
    pub fn managed_cluster(&self, cluster_id: &str) -> Option<Value> {
        let mut state = self.shared.lock();
        state.settle(Instant::now());
        state.clusters.get(&cluster_id.to_ascii_lowercase()).map(|cluster| cluster.resource.clone())
    }

    /// `properties.windowsProfile.gmsaProfile` of a cluster (`None` if absent).
    pub fn gmsa_profile(&self, cluster_id: &str) -> Option<GmsaProfile> {
        let resource = self.managed_cluster(cluster_id)?;
        serde_json::from_value(resource["properties"]["windowsProfile"]["gmsaProfile"].clone()).ok()
    }

    /// The vault's resource body as GET returns it.
    pub fn vault(&self, vault_id: &str) -> Option<Value> {
        let state = self.shared.lock();
        state.vaults.get(&vault_id.to_ascii_lowercase()).map(arm::vaults::render)
    }

    /// The vault's access policies.
    pub fn access_policies(&self, vault_id: &str) -> Vec<AccessPolicyEntry> {
        let state = self.shared.lock();
        state.vaults.get(&vault_id.to_ascii_lowercase()).map(|vault| vault.access_policies.clone()).unwrap_or_default()
    }

    /// Every role assignment, ordered by id.
    pub fn role_assignments(&self) -> Vec<RoleAssignmentView> {
        let state = self.shared.lock();
        state.role_assignments.values().map(view_of).collect()
    }

    /// A user-assigned identity by ARM id.
    pub fn identity(&self, identity_id: &str) -> Option<IdentityInfo> {
        let state = self.shared.lock();
        state.identities.get(&identity_id.to_ascii_lowercase()).map(|identity| IdentityInfo {
            resource_id: identity.id.clone(),
            client_id: identity.client_id.clone(),
            object_id: identity.principal_id.clone(),
        })
    }

    /// Ids of the user-assigned identities attached to a scale set.
    pub fn scale_set_identities(&self, scale_set_id: &str) -> Vec<String> {
        let state = self.shared.lock();
        state
            .scale_sets
            .get(&scale_set_id.to_ascii_lowercase())
            .map(|scale_set| scale_set.user_assigned.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Metadata of every version of a secret, oldest first.
    pub fn secret_versions(&self, vault_id: &str, secret_name: &str) -> Vec<SecretVersionInfo> {
        let state = self.shared.lock();
        let key = vault_id.to_ascii_lowercase();
        let Some(vault) = state.vaults.get(&key) else { return Vec::new() };
        let Some(history) = state.secrets.get(&key).and_then(|secrets| secrets.get(&secret_name.to_ascii_lowercase()))
        else {
            return Vec::new();
        };
        history
            .versions
            .iter()
            .map(|version| SecretVersionInfo {
                version: version.version.clone(),
                id: format!("{}secrets/{}/{}", vault.vault_uri, history.name, version.version),
                enabled: version.enabled,
                content_type: version.content_type.clone(),
            })
            .collect()
    }

    /// Names of the soft-deleted (not yet purged) secrets of a vault, sorted.
    pub fn deleted_secret_names(&self, vault_id: &str) -> Vec<String> {
        let state = self.shared.lock();
        state
            .deleted_secrets
            .get(&vault_id.to_ascii_lowercase())
            .map(|deleted| deleted.values().map(|secret| secret.history.name.clone()).collect())
            .unwrap_or_default()
    }

    /// The whole simulated state as one JSON value in a stable order, for `assert_eq!(sim.snapshot(), before)`.
    ///
    /// Holds clusters, vaults (with access policies), role assignments, user-assigned identities,
    /// scale-set identities, secrets and soft-deleted secrets (each version's id, `enabled` and a
    /// SHA-256 of the value — never the value), keyed by lower-cased ids.
    ///
    /// Normalized out: cluster and agent pool `eTag`s and `provisioningState`s, scale-set
    /// `etag`s, role assignment timestamps and creators, vault `provisioningState`, secret
    /// timestamps. **Not** normalized: after gMSA is disabled AKS reports
    /// `windowsProfile.gmsaProfile: {"enabled": false}`, while a cluster that never had gMSA may
    /// have no `gmsaProfile`; a before/after comparison must normalize that field explicitly.
    pub fn snapshot(&self) -> Value {
        crate::snapshot::snapshot(&self.shared.lock())
    }

    /// A secret's value (latest version when `version` is `None`), for tests asserting it was written.
    pub fn secret_value(&self, vault_id: &str, secret_name: &str, version: Option<&str>) -> Option<String> {
        let state = self.shared.lock();
        let history = state.secrets.get(&vault_id.to_ascii_lowercase())?.get(&secret_name.to_ascii_lowercase())?;
        let found = match version {
            Some(version) => history.versions.iter().find(|candidate| candidate.version == version),
            None => history.versions.last(),
        };
        found.map(|version| version.value.clone())
    }
}

impl Drop for AzureSim {
    fn drop(&mut self) {
        let tasks = std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for task in tasks {
            task.abort();
        }
    }
}

fn view_of(assignment: &RoleAssignment) -> RoleAssignmentView {
    RoleAssignmentView {
        id: assignment.id.clone(),
        name: assignment.name.clone(),
        scope: assignment.scope.clone(),
        role_definition_id: assignment.role_definition_id.clone(),
        principal_id: assignment.principal_id.clone(),
    }
}
