//! The central audit log's entries and how they are stored (issue 20). Wire types only.
//!
//! The log is the stream `FLEET_AUDIT`, subject `fleet.audit.log`, appended only by the leading
//! coordinator. Each message is a **batch** of entries:
//! - the body is the entries' JSON, one per line (`\n` between them, none after the last); each
//!   line's bytes are one leaf of the RFC 6962 Merkle tree, in order — the leaf index is the
//!   entry's `index`;
//! - headers: [`FIRST_HEADER`] (the first entry's index), [`HASHES_HEADER`] (base64 of the leaf
//!   hashes, 32 bytes each, in order), [`FRONTIER_HEADER`] (the tree's right edge after the batch,
//!   so a new leader continues the tree without reading it all), [`CURSOR_HEADER`] (where the
//!   writer is in each source stream), and `Fleet-Key` / `Fleet-Signature`: the coordinator's
//!   Ed25519 signature over the batch's [`seal`].
//!
//! Checkpoints (C2SP `tlog-checkpoint` as a `signed-note`) go to `fleet.audit.checkpoint` in
//! `FLEET_AUDIT_CHECKPOINTS`. Coordinator-side events (operator requests, rollout transitions,
//! rotation steps) are first published to the inbox stream `FLEET_AUDIT_INBOX`; the writer reads
//! them from there, and the commands, results, progress, drift and dead letters from their own
//! streams. No entry carries a secret: the bus never carries one.

use crate::outcome::StepOutcome;
use crate::result::CommandResult;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The entries' schema version.
pub const AUDIT_SCHEMA: u32 = 1;

/// The first entry's index in a batch.
pub const FIRST_HEADER: &str = "Fleet-Audit-First";
/// The batch's leaf hashes: base64 (standard, padded) of 32 bytes per entry.
pub const HASHES_HEADER: &str = "Fleet-Audit-Hashes";
/// The tree's right edge after the batch: base64 hashes separated by `,`, largest subtree first.
pub const FRONTIER_HEADER: &str = "Fleet-Audit-Frontier";
/// The writer's position in each source: `name=sequence` pairs separated by `,`.
pub const CURSOR_HEADER: &str = "Fleet-Audit-Cursor";
/// A checkpoint's tree size.
pub const SIZE_HEADER: &str = "Fleet-Audit-Size";

/// The text the coordinator signs for one batch: the log's origin, the first index, the count
/// and the leaf hashes. An entry altered, dropped, added or moved changes a hash or the count; a
/// forged seal needs the coordinator's key.
pub fn seal(origin: &str, first: u64, hashes_base64: &str, count: usize) -> String {
    format!("gmsa-fleet-audit/v1\n{origin}\n{first}\n{count}\n{hashes_base64}\n")
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub schema: u32,
    /// The entry's leaf index (set by the writer; 0 in a draft).
    pub index: u64,
    /// When it happened (the source message's own time where it has one).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who: `coordinator`, `agent:<cluster>` or `operator:<name>` — a verified identity, never a
    /// name a client wrote.
    pub actor: String,
    /// Where it came from: the source stream and sequence (`FLEET_RESULTS#42`), or for an
    /// operator request its subject and the key that signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    #[serde(flatten)]
    pub event: AuditEvent,
}

impl AuditEntry {
    /// A draft (index 0) of `event` by `actor` at `at`.
    pub fn draft(at: OffsetDateTime, actor: impl Into<String>, event: AuditEvent) -> AuditEntry {
        AuditEntry {
            schema: AUDIT_SCHEMA,
            index: 0,
            at,
            actor: actor.into(),
            source: None,
            cluster: None,
            rollout: None,
            command_id: None,
            event,
        }
    }

    /// The kind's name (`command`, `result`, …), as `fleetctl audit log --kind` takes it.
    pub fn kind(&self) -> &'static str {
        self.event.kind()
    }
}

/// What an entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AuditEvent {
    /// A command the coordinator published: the envelope as published (commands carry no secret)
    /// and the key its signature header names.
    Command {
        command: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signed_by: Option<String>,
        envelope: serde_json::Value,
    },
    /// A cluster's result, with each step's diff.
    Result {
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// Whether the result carries a valid signature by the cluster's enrolled key.
        verified: bool,
        result: Box<CommandResult>,
    },
    /// A step of a command began (heartbeats are not recorded).
    Progress { step: String, message: String },
    /// An agent's drift report.
    Drift { report: Box<crate::drift::DriftReport> },
    /// A message a reader refused (forged, stale, replayed, undecodable), from the dead letters.
    Refusal { reporter: String, code: String, message: String, action: String },
    /// A rollout's transition: `started`, `stage-started`, `awaiting-approval`, `approved`,
    /// `paused`, `resumed`, `halted`, `aborted`, `completed`, `rolled-back`, …
    Rollout {
        transition: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        steps: Vec<StepOutcome>,
    },
    /// A step of a credential rotation (`reset`, `written`, `rollout-started`, `completed`, …).
    Rotation {
        credential: String,
        step: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// An operator's request to the coordinator, answered or refused.
    Request {
        subject: String,
        outcome: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// The request body (requests carry no secret), or `null` when it was not JSON.
        #[serde(default)]
        request: serde_json::Value,
    },
    /// A source message that could not be read as what its stream holds.
    Unreadable { message: String },
    /// A kind a newer writer records that this build does not know.
    #[serde(other)]
    Unknown,
}

impl AuditEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::Command { .. } => "command",
            AuditEvent::Result { .. } => "result",
            AuditEvent::Progress { .. } => "progress",
            AuditEvent::Drift { .. } => "drift",
            AuditEvent::Refusal { .. } => "refusal",
            AuditEvent::Rollout { .. } => "rollout",
            AuditEvent::Rotation { .. } => "rotation",
            AuditEvent::Request { .. } => "request",
            AuditEvent::Unreadable { .. } => "unreadable",
            AuditEvent::Unknown => "unknown",
        }
    }

    /// Every kind name, for `--kind`'s check.
    pub const KINDS: [&'static str; 9] =
        ["command", "result", "progress", "drift", "refusal", "rollout", "rotation", "request", "unreadable"];
}

/// One line of `fleetctl audit export`: the entry, its leaf hash, and the checkpoint that covers
/// it (the first one at or beyond it), with the entry's inclusion proof in that checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportLine {
    pub index: u64,
    /// Base64 of the leaf hash.
    pub leaf_hash: String,
    pub entry: AuditEntry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CoveredBy>,
}

/// The checkpoint an exported entry is included in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoveredBy {
    pub size: u64,
    /// The signed note.
    pub note: String,
    /// The RFC 6962 inclusion proof (base64 hashes).
    pub inclusion_proof: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_their_kind_and_tolerate_unknown_ones() {
        let entry = AuditEntry::draft(
            OffsetDateTime::UNIX_EPOCH,
            "operator:ann",
            AuditEvent::Rotation { credential: "c".into(), step: "reset".into(), detail: None },
        );
        let json = serde_json::to_string(&entry).unwrap();
        assert!(json.contains("\"kind\":\"rotation\""), "{json}");
        let back: AuditEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, entry);
        let newer = json.replace("\"kind\":\"rotation\"", "\"kind\":\"teleport\"").replace("}", ",\"x\":1}");
        let read: AuditEntry = serde_json::from_str(&newer).unwrap();
        assert_eq!(read.event, AuditEvent::Unknown);
        assert_eq!(read.actor, "operator:ann");
    }
}
