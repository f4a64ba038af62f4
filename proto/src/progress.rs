//! Progress of a long command, on `fleet.progress.<cluster>.<command id>`: each step as it starts,
//! and a heartbeat every few seconds while the command runs, so an operator can tell a slow command
//! from a stuck one. A command's bound is its deadline, not its progress.

use crate::command::CommandId;
use crate::version::SchemaVersion;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One progress event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressEvent {
    pub schema: SchemaVersion,
    pub command_id: CommandId,
    pub cluster: String,
    /// The step under way (`cluster-update`, `vault-grant`, …) or `started` / `heartbeat`.
    pub step: String,
    pub message: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}
