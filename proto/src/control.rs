//! The coordinator's control API, request-reply on `fleet.ctl.<verb>`, used by `fleetctl`.
//! Read-only queries (inventory, status) do not go through it: fleetctl reads the buckets and the
//! result stream directly with the coordinator library, so large fleets are not bound by one
//! reply's size.

use crate::command::{Command, CommandId, Teardown};
use crate::outcome::StepOutcome;
use crate::version::SchemaVersion;
use serde::{Deserialize, Serialize};

/// Verb of [`RunRequest`].
pub const RUN: &str = "run";
/// Verb of [`TeardownSharedRequest`].
pub const TEARDOWN_SHARED: &str = "teardown-shared";

/// The longest deadline a command may carry: 30 days. Longer ones are refused (by fleetctl before
/// sending, by the coordinator when planning), so no deadline arithmetic can overflow.
pub const MAX_DEADLINE_SECS: u64 = 30 * 24 * 3600;

/// Checks a deadline in seconds against `1..=MAX_DEADLINE_SECS`; the error names the field.
pub fn check_deadline_secs(field: &str, seconds: u64) -> Result<(), crate::command::ValidationError> {
    if seconds == 0 {
        return Err(crate::command::ValidationError::new(field, "must be at least 1 second"));
    }
    if seconds > MAX_DEADLINE_SECS {
        return Err(crate::command::ValidationError::new(
            field,
            format!("must be at most {MAX_DEADLINE_SECS} seconds (30 days), got {seconds}"),
        ));
    }
    Ok(())
}

/// Send one command to every cluster a label selector picks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub schema: SchemaVersion,
    pub command: Command,
    /// A Kubernetes-style label selector (`env=prod,region in (eu,us),!canary`); empty picks all.
    #[serde(default)]
    pub selector: String,
    /// How long the agents have to finish, from now.
    pub deadline_secs: u64,
    /// Plan only: say which clusters would get the command, send nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Who asked (for the record).
    #[serde(default)]
    pub requested_by: Option<String>,
}

/// One command sent (or that would be sent) to one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub cluster: String,
    pub command_id: CommandId,
}

/// A selected cluster that was not sent the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub cluster: String,
    /// Stable: `unsupported_kind` (its agent did not announce the command's kind).
    pub code: String,
    pub message: String,
}

/// A KV entry that could not be decoded, or does not match its key: skipped, and reported by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidEntry {
    pub bucket: String,
    pub key: String,
    pub code: String,
    pub message: String,
}

/// The coordinator's answer to a [`RunRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunReply {
    /// The rollout was planned (and, unless dry run, its commands published).
    Accepted {
        rollout_id: String,
        dry_run: bool,
        targets: Vec<Target>,
        /// Selected clusters that were not sent the command, and why (schema 1.3).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        skipped: Vec<Skipped>,
        /// Inventory entries that could not be read and were planned around (schema 1.3).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        invalid: Vec<InvalidEntry>,
    },
    /// The request was refused; nothing was sent.
    Refused { code: String, message: String },
    /// An outcome a newer coordinator sends that this build does not know.
    #[serde(other)]
    Unknown,
}

/// Delete the shared resources a teardown names (`teardown.delete`: the secret, the user-assigned
/// identities, the gMSA, the domain user), centrally, in the coordinator that holds the
/// credentials. In `teardown.mode` dry run it reads and plans only. Refused while any cluster's
/// record still uses one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeardownSharedRequest {
    pub schema: SchemaVersion,
    /// The teardown the clusters ran (its vault, secret name, identity choice, `delete` and `mode`).
    pub teardown: Teardown,
    /// Ids of the user-assigned identities to delete (`/subscriptions/…/userAssignedIdentities/…`)
    /// when `teardown.delete.identity`: the ones the torn-down clusters used, as their records
    /// said before they released them. Each must name `teardown.identity`'s group and name.
    #[serde(default)]
    pub identities: Vec<String>,
    /// Who asked (for the log).
    #[serde(default)]
    pub requested_by: Option<String>,
}

/// The coordinator's answer to a [`TeardownSharedRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TeardownSharedReply {
    /// Every deletion asked for ran (or, in dry run, was planned), in order.
    Done { steps: Vec<StepOutcome> },
    /// A deletion failed; `completed` are the steps before it.
    Failed { code: String, message: String, completed: Vec<StepOutcome> },
    /// Refused before anything was deleted: `in_use`, `central_not_configured`, `invalid_request`,
    /// `unsupported_schema`.
    Refused { code: String, message: String },
    /// An outcome a newer coordinator sends that this build does not know.
    #[serde(other)]
    Unknown,
}
