//! What an agent says about itself: its hello at start and its heartbeat, stored in the
//! `fleet_agents` KV bucket under the cluster id (the latest value is the agent's current state).

use crate::command::CommandKind;
use crate::version::SchemaVersion;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// An agent's hello and heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub schema: SchemaVersion,
    pub cluster: String,
    pub agent_version: String,
    /// Command kinds this agent can execute.
    pub capabilities: Vec<CommandKind>,
    /// Labels the agent was configured with (merged into the coordinator's inventory).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}
