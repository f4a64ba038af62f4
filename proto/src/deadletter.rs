//! Dead letters: what a reader could not answer. A command without a usable id, a result that
//! cannot be decoded or recorded, a cursor that had to be reset — each is reported once as a
//! [`DeadLetter`] on `fleet.dead.<reporter>` (stream `FLEET_DEAD`) and the reader moves on, so no
//! message can stop a cursor or loop in a consumer. Operators read them with
//! `nats stream view FLEET_DEAD` or fleetctl.

use crate::version::SchemaVersion;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The reporter name the coordinator uses on `fleet.dead.<reporter>` (agents use their cluster id).
pub const COORDINATOR: &str = "coordinator";

/// One message a reader could not act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub schema: SchemaVersion,
    /// Who read it: a cluster id, or [`COORDINATOR`].
    pub reporter: String,
    /// Where it was read: a subject, or `kv:<bucket>/<key>`.
    pub source: String,
    /// Its stream sequence, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// A stable code (`proto::decode::Code`'s names).
    pub code: String,
    /// Why, bounded (`proto::decode::MAX_MESSAGE_BYTES`); never a secret: readers quote ids, not bodies.
    pub message: String,
    /// What the reader did about it (`skipped`, `reset to 0`, …).
    pub action: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}
