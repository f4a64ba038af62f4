//! The simulated world: subscriptions, resource groups, resources, principals, secrets, running
//! operations, issued tokens and the mutation log, behind one mutex that no handler holds across
//! an await. Keys are lower-cased ARM ids, because ARM ids are case-insensitive.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::config::{Operation, SimConfig};
use crate::faults::FaultEngine;
use crate::mutations::{Mutation, redact};
use crate::rng::Prng;
use crate::seed::AccessPolicyEntry;
use crate::token::Client;

/// A managed cluster: the full resource body as GET returns it (including `eTag` and
/// `properties.provisioningState`), and the operation running on it, if any.
#[derive(Clone, Debug)]
pub(crate) struct Cluster {
    pub(crate) resource: Value,
    pub(crate) running_operation: Option<String>,
}

/// A long-running managed-cluster operation.
#[derive(Clone, Debug)]
pub(crate) struct ClusterOperation {
    pub(crate) id: String,
    /// Lower-cased id of the cluster it runs on.
    pub(crate) cluster_key: String,
    pub(crate) started_at: OffsetDateTime,
    /// Ends `Failed` instead of `Succeeded`.
    pub(crate) fails: bool,
    /// `None` while running; the terminal status and end time after.
    pub(crate) finished: Option<(bool, OffsetDateTime)>,
}

/// A key vault (management-plane view plus where its data plane listens).
#[derive(Clone, Debug)]
pub(crate) struct Vault {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) location: String,
    pub(crate) tags: Value,
    pub(crate) sku: Value,
    pub(crate) tenant_id: String,
    pub(crate) enable_rbac_authorization: bool,
    pub(crate) access_policies: Vec<AccessPolicyEntry>,
    /// Other `properties` the client set, echoed back.
    pub(crate) extra_properties: serde_json::Map<String, Value>,
    pub(crate) vault_uri: String,
    /// The loopback port of the vault's data-plane listener (what the HTTPS proxy connects
    /// `<vault>.vault.azure.net` to).
    pub(crate) port: u16,
}

/// A role assignment (roleAssignments 2022-04-01 `RoleAssignmentProperties`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoleAssignment {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) scope: String,
    pub(crate) role_definition_id: String,
    pub(crate) principal_id: String,
    pub(crate) principal_type: String,
    pub(crate) description: Option<String>,
    pub(crate) created_on: String,
}

/// A user-assigned managed identity.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) location: String,
    pub(crate) tags: Value,
    pub(crate) client_id: String,
    pub(crate) principal_id: String,
}

/// A VM scale set in a node resource group, reduced to what identity updates touch.
#[derive(Clone, Debug)]
pub(crate) struct ScaleSet {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) location: String,
    pub(crate) tags: Value,
    pub(crate) os_type: String,
    pub(crate) capacity: u32,
    pub(crate) system_assigned: bool,
    /// Canonical ids of attached user-assigned identities.
    pub(crate) user_assigned: BTreeSet<String>,
    pub(crate) etag: String,
}

/// One version of a secret. `Debug` never shows the value.
#[derive(Clone)]
pub(crate) struct SecretVersion {
    pub(crate) version: String,
    pub(crate) value: String,
    pub(crate) content_type: Option<String>,
    pub(crate) tags: Option<Value>,
    pub(crate) enabled: bool,
    pub(crate) created: i64,
}

impl std::fmt::Debug for SecretVersion {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SecretVersion")
            .field("version", &self.version)
            .field("value", &crate::mutations::REDACTED)
            .field("enabled", &self.enabled)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// All versions of one secret, oldest first.
#[derive(Clone, Debug)]
pub(crate) struct SecretHistory {
    pub(crate) name: String,
    pub(crate) versions: Vec<SecretVersion>,
}

/// A soft-deleted secret (Key Vault `DeletedSecretBundle`): every version, kept until purged.
#[derive(Clone, Debug)]
pub(crate) struct DeletedSecret {
    pub(crate) history: SecretHistory,
    /// `deletedDate`, Unix seconds.
    pub(crate) deleted_date: i64,
    /// `scheduledPurgeDate`, Unix seconds (deleted date + the vault's retention days).
    pub(crate) scheduled_purge_date: i64,
}

/// The whole simulated world.
pub(crate) struct State {
    pub(crate) tenant_id: String,
    pub(crate) location: String,
    /// [`SimConfig::vault_dns_names`].
    pub(crate) vault_dns_names: bool,
    pub(crate) lro_duration: Duration,
    pub(crate) lro_retry_after_secs: u64,
    pub(crate) token_lifetime: Duration,
    pub(crate) rng: Prng,
    pub(crate) faults: FaultEngine,
    pub(crate) subscriptions: HashSet<String>,
    /// Lower-cased `/subscriptions/{s}/resourcegroups/{rg}`.
    pub(crate) resource_groups: HashSet<String>,
    pub(crate) clusters: HashMap<String, Cluster>,
    pub(crate) operations: HashMap<String, ClusterOperation>,
    /// Running operations by end time, earliest first, so settling is cheap with many clusters.
    pub(crate) running_operations: BinaryHeap<Reverse<(Instant, String)>>,
    pub(crate) vaults: HashMap<String, Vault>,
    pub(crate) role_assignments: BTreeMap<String, RoleAssignment>,
    pub(crate) identities: HashMap<String, Identity>,
    pub(crate) scale_sets: BTreeMap<String, ScaleSet>,
    /// Client id (lower-cased) → credential and object id.
    pub(crate) clients: HashMap<String, Client>,
    /// Object ids Entra knows (service principals and managed identities).
    pub(crate) principals: HashSet<String>,
    /// Lower-cased vault id → lower-cased secret name → history.
    pub(crate) secrets: HashMap<String, BTreeMap<String, SecretHistory>>,
    /// Lower-cased vault id → lower-cased secret name → soft-deleted secret.
    pub(crate) deleted_secrets: HashMap<String, BTreeMap<String, DeletedSecret>>,
    pub(crate) issued_tokens: HashSet<String>,
    pub(crate) mutations: Vec<Mutation>,
}

impl State {
    /// The `vaultUri` of a vault served on `port`.
    pub(crate) fn vault_uri(&self, name: &str, port: u16) -> String {
        if self.vault_dns_names {
            format!("https://{}.vault.azure.net/", name.to_ascii_lowercase())
        } else {
            format!("https://127.0.0.1:{port}/")
        }
    }

    pub(crate) fn new(config: &SimConfig) -> Self {
        State {
            tenant_id: config.tenant_id.clone(),
            location: config.location.clone(),
            vault_dns_names: config.vault_dns_names,
            lro_duration: config.lro_duration,
            lro_retry_after_secs: config.lro_retry_after_secs,
            token_lifetime: config.token_lifetime,
            rng: Prng::new(config.seed),
            faults: FaultEngine::new(config.faults.clone(), config.seed ^ 0x5eed),
            subscriptions: HashSet::new(),
            resource_groups: HashSet::new(),
            clusters: HashMap::new(),
            operations: HashMap::new(),
            running_operations: BinaryHeap::new(),
            vaults: HashMap::new(),
            role_assignments: BTreeMap::new(),
            identities: HashMap::new(),
            scale_sets: BTreeMap::new(),
            clients: HashMap::new(),
            principals: HashSet::new(),
            secrets: HashMap::new(),
            deleted_secrets: HashMap::new(),
            issued_tokens: HashSet::new(),
            mutations: Vec::new(),
        }
    }

    /// Registers a subscription and resource group (seeding creates them implicitly).
    pub(crate) fn ensure_resource_group(&mut self, subscription: &str, resource_group: &str) {
        self.subscriptions.insert(subscription.to_ascii_lowercase());
        self.resource_groups.insert(resource_group_key(subscription, resource_group));
    }

    /// Whether the resource group exists.
    pub(crate) fn has_resource_group(&self, subscription: &str, resource_group: &str) -> bool {
        self.resource_groups.contains(&resource_group_key(subscription, resource_group))
    }

    /// Registers an Entra principal (service principal or managed identity).
    pub(crate) fn add_client(&mut self, client_id: &str, client: Client) {
        self.principals.insert(client.object_id.to_ascii_lowercase());
        self.clients.insert(client_id.to_ascii_lowercase(), client);
    }

    /// A fresh GUID from the seeded generator.
    pub(crate) fn new_guid(&mut self) -> String {
        self.rng.uuid().to_string()
    }

    /// Finishes every operation whose time has come: the cluster leaves `Updating`/`Creating`.
    pub(crate) fn settle(&mut self, now: Instant) {
        while let Some(Reverse((ends, _))) = self.running_operations.peek() {
            if *ends > now {
                break;
            }
            let Some(Reverse((_, operation_id))) = self.running_operations.pop() else { break };
            let Some(operation) = self.operations.get_mut(&operation_id) else { continue };
            let succeeded = !operation.fails;
            operation.finished = Some((succeeded, OffsetDateTime::now_utc()));
            let Some(cluster) = self.clusters.get_mut(&operation.cluster_key) else { continue };
            // A later operation (a test's injected one) may have taken over the cluster.
            if cluster.running_operation.as_deref() == Some(operation_id.as_str()) {
                cluster.running_operation = None;
                let state_name = if succeeded { "Succeeded" } else { "Failed" };
                crate::arm::managed_clusters::set_provisioning_state(&mut cluster.resource, state_name);
            }
        }
    }

    /// Appends a successful write to the mutation log (body redacted).
    pub(crate) fn record(
        &mut self,
        method: &str,
        resource_id: &str,
        operation: Operation,
        changed: bool,
        body: &Value,
    ) {
        let seq = self.mutations.len() as u64;
        tracing::debug!(seq, method, resource_id, ?operation, changed, "azsim mutation");
        self.mutations.push(Mutation {
            seq,
            at: OffsetDateTime::now_utc(),
            method: method.to_string(),
            resource_id: resource_id.to_string(),
            operation,
            changed,
            body: redact(body),
        });
    }
}

/// Lower-cased key of a resource group.
pub(crate) fn resource_group_key(subscription: &str, resource_group: &str) -> String {
    format!("/subscriptions/{subscription}/resourcegroups/{resource_group}").to_ascii_lowercase()
}

/// Current time as RFC 3339, as ARM writes timestamps.
pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
