//! Configuration of a simulator instance: tenant, timing of long-running operations, the ARM request
//! budget and the injected faults. Everything here is plain data; `faults.rs` interprets it.

use std::time::Duration;

/// One operation the simulator serves, used to aim faults and latency at it and to label mutations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Operation {
    /// `POST /{tenant}/oauth2/v2.0/token`.
    Token,
    /// `GET /subscriptions[/{s}]`, `GET /tenants`, `GET /subscriptions/{s}/resources`.
    SubscriptionRead,
    /// `GET .../managedClusters/{name}`.
    ClusterGet,
    /// `PUT .../managedClusters/{name}`.
    ClusterPut,
    /// `GET .../locations/{loc}/operations/{id}` and `.../operationresults/{id}`.
    OperationStatus,
    /// `GET .../vaults/{name}`.
    VaultGet,
    /// `PUT`/`PATCH .../vaults/{name}`.
    VaultPut,
    /// `PUT .../vaults/{name}/accessPolicies/{add|replace|remove}`.
    AccessPolicyUpdate,
    /// `GET {scope}/providers/Microsoft.Authorization/roleAssignments[/{name}]`.
    RoleAssignmentGet,
    /// `PUT {scope}/providers/Microsoft.Authorization/roleAssignments/{name}`.
    RoleAssignmentPut,
    /// `DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{name}`.
    RoleAssignmentDelete,
    /// `GET .../userAssignedIdentities/{name}`.
    IdentityGet,
    /// `PUT .../userAssignedIdentities/{name}`.
    IdentityPut,
    /// `DELETE .../userAssignedIdentities/{name}`.
    IdentityDelete,
    /// `GET .../virtualMachineScaleSets[/{name}]`.
    ScaleSetGet,
    /// `PATCH`/`PUT .../virtualMachineScaleSets/{name}`.
    ScaleSetUpdate,
    /// Key Vault data plane `GET /secrets/{name}[/{version}]`.
    SecretGet,
    /// Key Vault data plane `PUT /secrets/{name}`.
    SecretSet,
    /// Key Vault data plane `GET /secrets/{name}/versions` (and `GET /secrets`).
    SecretVersions,
    /// Key Vault data plane `DELETE /secrets/{name}`.
    SecretDelete,
    /// Key Vault data plane `GET /deletedsecrets/{name}`.
    DeletedSecretGet,
    /// Key Vault data plane `DELETE /deletedsecrets/{name}` (purge).
    DeletedSecretPurge,
}

impl Operation {
    /// Whether ARM counts this operation against the subscription's write budget.
    pub fn is_arm_write(self) -> bool {
        matches!(
            self,
            Operation::ClusterPut
                | Operation::VaultPut
                | Operation::AccessPolicyUpdate
                | Operation::RoleAssignmentPut
                | Operation::RoleAssignmentDelete
                | Operation::IdentityPut
                | Operation::IdentityDelete
                | Operation::ScaleSetUpdate
        )
    }

    /// Whether this operation is served by ARM (as opposed to Key Vault's data plane or the token endpoint).
    pub fn is_arm(self) -> bool {
        !matches!(self, Operation::Token) && !self.is_key_vault()
    }

    /// Whether this operation is served by a vault's data plane.
    pub fn is_key_vault(self) -> bool {
        matches!(
            self,
            Operation::SecretGet
                | Operation::SecretSet
                | Operation::SecretVersions
                | Operation::SecretDelete
                | Operation::DeletedSecretGet
                | Operation::DeletedSecretPurge
        )
    }
}

/// A token bucket: `burst` requests at once, then `refill_per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenBucketSpec {
    /// Bucket size: how many requests may arrive at once.
    pub burst: u32,
    /// Tokens added per second, up to `burst`.
    pub refill_per_second: f64,
}

/// ARM's per-subscription request budget (Microsoft's published figures: writes 200 burst then
/// 10/s, reads 250 burst then 25/s; 429 `SubscriptionRequestsThrottled` with `Retry-After` beyond).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArmBudget {
    /// Budget of PUT/PATCH/DELETE requests per subscription; `None` = unlimited.
    pub writes: Option<TokenBucketSpec>,
    /// Budget of GET requests per subscription; `None` = unlimited.
    pub reads: Option<TokenBucketSpec>,
}

impl ArmBudget {
    /// The published ARM figures.
    pub fn azure_default() -> Self {
        ArmBudget {
            writes: Some(TokenBucketSpec { burst: 200, refill_per_second: 10.0 }),
            reads: Some(TokenBucketSpec { burst: 250, refill_per_second: 25.0 }),
        }
    }

    /// No budget at all.
    pub fn unlimited() -> Self {
        ArmBudget { writes: None, reads: None }
    }
}

/// Which requests a fault rule applies to.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Every request to every endpoint.
    All,
    /// Every ARM request.
    Arm,
    /// Every Key Vault data-plane request.
    KeyVault,
    /// Only these operations.
    Only(Vec<Operation>),
}

impl Target {
    /// Whether `operation` is covered.
    pub fn covers(&self, operation: Operation) -> bool {
        match self {
            Target::All => true,
            Target::Arm => operation.is_arm(),
            Target::KeyVault => operation.is_key_vault(),
            Target::Only(operations) => operations.contains(&operation),
        }
    }
}

/// What an injected fault does to a request.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// Answer 429 with `Retry-After: retry_after_secs` and the service's throttling error body.
    Throttle {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Answer with this 5xx status and the service's error body.
    ServerError {
        /// 500, 502, 503 or 504.
        status: u16,
    },
    /// Delay the response by this much, then serve it normally.
    Latency(Duration),
}

/// How often a fault rule fires.
#[derive(Clone, Debug, PartialEq)]
pub enum Frequency {
    /// The next `n` matching requests.
    Next(u32),
    /// Each matching request with this probability (0.0–1.0), drawn from the seeded generator.
    Rate(f64),
    /// Every matching request.
    Always,
}

/// One fault injection rule.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    /// Requests the rule applies to.
    pub target: Target,
    /// What happens to them.
    pub kind: FaultKind,
    /// How often.
    pub frequency: Frequency,
}

/// The complete fault set; replace it at runtime with `AzureSim::set_faults`.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Rules checked in order; every firing latency rule adds its delay, the first firing
    /// throttle or server-error rule answers the request.
    pub rules: Vec<FaultRule>,
    /// ARM's per-subscription token buckets.
    pub arm_budget: ArmBudget,
    /// The next `n` managed-cluster operations end `Failed` instead of `Succeeded`.
    pub fail_next_cluster_operations: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { rules: Vec::new(), arm_budget: ArmBudget::azure_default(), fail_next_cluster_operations: 0 }
    }
}

/// Configuration of `AzureSim::start`.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The Entra tenant every token, vault and identity belongs to.
    pub tenant_id: String,
    /// Location given to seeded resources (`location` in bodies, in operation URLs).
    pub location: String,
    /// How long a managed-cluster PUT stays `Updating`/`Creating` before it succeeds.
    pub lro_duration: Duration,
    /// `Retry-After` (seconds) sent with long-running operation responses and status polls.
    pub lro_retry_after_secs: u64,
    /// Seed of the generator behind rate-based faults and generated ids.
    pub seed: u64,
    /// Initial faults.
    pub faults: Faults,
    /// Lifetime of issued access tokens.
    pub token_lifetime: Duration,
    /// Whether vaults are named by their DNS names (`vaultUri` = `https://<vault>.vault.azure.net/`,
    /// reached through [`crate::AzureSim::https_proxy`]) rather than by `https://127.0.0.1:<port>/`.
    /// With DNS names every client can keep Key Vault's challenge-resource check on.
    pub vault_dns_names: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".to_string(),
            location: "eastus".to_string(),
            lro_duration: Duration::from_millis(200),
            lro_retry_after_secs: 1,
            seed: 1,
            faults: Faults::default(),
            token_lifetime: Duration::from_secs(3600),
            vault_dns_names: false,
        }
    }
}
