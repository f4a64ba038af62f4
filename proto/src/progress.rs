//! Progress of a long command, on `fleet.progress.<cluster>.<command id>`. Progress events are
//! also the agent's proof of life for a command in flight: the coordinator extends its patience
//! while they keep coming.

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
