//! Reports that read-only commands put in their step's `observed` (schema 1.2), typed here so the
//! agent that writes them and fleetctl that prints them agree: the access audit
//! (`audit-access`) and named checks (`validate-credspec`).

use serde::{Deserialize, Serialize};

/// The step name of `audit-access`.
pub const STEP_ACCESS_AUDIT: &str = "access-audit";
/// The step name of `validate-credspec`.
pub const STEP_CREDSPEC_VALIDATE: &str = "credspec-validate";
/// The step name of `collect-diagnostics`.
pub const STEP_DIAGNOSTICS: &str = "diagnostics";

/// One identity on one Windows node pool, and whether it can read the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRow {
    pub pool: String,
    /// The identity's name (last segment of its ARM id).
    pub identity: String,
    pub identity_id: String,
    pub principal_id: String,
    /// It is the cluster's kubelet identity.
    pub kubelet: bool,
    /// It is the identity that should read the secret.
    pub expected: bool,
    /// It can `get` the secret.
    pub can_get: bool,
    /// How it can (`access-policy`, `role Key Vault Secrets User at <scope>`, …).
    #[serde(default)]
    pub via: Vec<String>,
    /// It can read the secret but should not.
    pub flagged: bool,
}

/// A principal that can read the secret and runs on no Windows pool of this cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherReader {
    pub principal_id: String,
    #[serde(default)]
    pub via: Vec<String>,
    /// Not one of the identities that should read the secret.
    pub over_broad: bool,
}

/// The access audit of one cluster (`Get-AksAgentPoolsAkvAccess`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessReport {
    /// The secret, `<vault ARM id>/secrets/<name>`.
    pub secret: String,
    /// Principal id of the identity that should read it, when found.
    #[serde(default)]
    pub expected_principal: Option<String>,
    pub rows: Vec<AccessRow>,
    #[serde(default)]
    pub others: Vec<OtherReader>,
    /// What an operator should act on, one sentence each; empty when all is as configured.
    #[serde(default)]
    pub findings: Vec<String>,
}

/// How one named check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    Pass,
    Fail,
    Warn,
    Skipped,
    /// A status a newer agent reports that this build does not know.
    #[serde(other)]
    Unknown,
}

/// One named check (`domain-sid`, `plugin-identity`, `secret-readable`, `workload`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    /// What was compared or found; never a secret value.
    pub detail: String,
}

impl Check {
    pub fn new(name: impl Into<String>, status: CheckStatus, detail: impl Into<String>) -> Self {
        Check { name: name.into(), status, detail: detail.into() }
    }

    /// Pass when `passed`, otherwise fail.
    pub fn of(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Self {
        Check::new(name, if passed { CheckStatus::Pass } else { CheckStatus::Fail }, detail)
    }
}

/// The checks of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub checks: Vec<Check>,
}

impl CheckReport {
    /// The checks that failed.
    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|check| check.status == CheckStatus::Fail).collect()
    }
}

/// What `collect-diagnostics` reports about the archive it attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveInfo {
    /// Where the archive is: `fleet.artifact.<cluster>.<command id>` in the artifact stream.
    pub subject: String,
    pub bytes: u64,
    /// Paths inside the tar archive.
    pub files: Vec<String>,
    /// What could not be collected, and why.
    #[serde(default)]
    pub notes: Vec<String>,
    /// How many secret values or secret-named fields were replaced by `<redacted>`.
    pub redactions: u64,
}
