//! `collect-diagnostics` (schema 1.2): what support needs from one cluster — the PowerShell
//! module's `Copy-WindowsHostsLogs`, through the APIs: the agent's view of each step, the credspec
//! as applied, our RBAC objects, the webhook's configuration and the events about gMSA/CCG on
//! Windows nodes. The agent redacts every secret value and publishes one tar archive per cluster
//! on `fleet.diag.<cluster>.<command id>`; the result names it.

use super::ValidationError;
use serde::{Deserialize, Serialize};

/// Payload of `collect-diagnostics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectDiagnostics {
    pub spec_name: String,
    #[serde(default = "default_owner")]
    pub owner: String,
    /// How many of the agent's recent results to include.
    #[serde(default = "default_results")]
    pub recent_results: u32,
}

fn default_owner() -> String {
    "default".to_string()
}
fn default_results() -> u32 {
    20
}

impl CollectDiagnostics {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.spec_name.trim().is_empty() {
            return Err(ValidationError::new("payload.spec_name", "must not be empty"));
        }
        if self.owner.trim().is_empty() {
            return Err(ValidationError::new("payload.owner", "must not be empty"));
        }
        if !(0..=200).contains(&self.recent_results) {
            return Err(ValidationError::new("payload.recent_results", "must be between 0 and 200"));
        }
        Ok(())
    }
}
