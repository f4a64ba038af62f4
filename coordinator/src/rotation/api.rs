//! The rotation control API on `fleet.ctl.rotate` (request-reply, the leading coordinator
//! answers). Tolerant like every wire type: unknown fields ignored, unknown verbs `Unknown`.

use super::store::CredentialRecord;
use gmsa::rotation::{RotationRun, Schedule};
use serde::{Deserialize, Serialize};

/// The subject of every rotation verb.
pub const SUBJECT: &str = "fleet.ctl.rotate";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum RotateRequest {
    /// Start a rotation of the fleet's credential now (refused while one is in progress).
    Now {
        #[serde(default)]
        requested_by: Option<String>,
        /// Only say which user would be reset and which secrets written.
        #[serde(default)]
        dry_run: bool,
    },
    /// Each credential's state.
    Status,
    /// Finished runs, newest first.
    History,
    /// Set (or, `None`, clear) the schedule; checked against the domain's password policy.
    Schedule {
        #[serde(default)]
        schedule: Option<Schedule>,
        #[serde(default)]
        requested_by: Option<String>,
    },
    /// Undo the last run with a new version naming the previous user.
    Rollback {
        #[serde(default)]
        requested_by: Option<String>,
    },
    #[serde(other)]
    Unknown,
}

impl RotateRequest {
    /// The role an operator needs to ask this ([`crate::authz`]).
    pub fn required_role(&self) -> proto::identity::Role {
        use proto::identity::Role;
        match self {
            RotateRequest::Status | RotateRequest::History | RotateRequest::Unknown => Role::ReadOnly,
            RotateRequest::Now { dry_run: true, .. } => Role::ReadOnly,
            _ => Role::Operate,
        }
    }

    /// The request with the verified `actor` as its requester.
    pub fn asked_by(self, actor: String) -> RotateRequest {
        match self {
            RotateRequest::Now { dry_run, .. } => RotateRequest::Now { requested_by: Some(actor), dry_run },
            RotateRequest::Schedule { schedule, .. } => RotateRequest::Schedule { schedule, requested_by: Some(actor) },
            RotateRequest::Rollback { .. } => RotateRequest::Rollback { requested_by: Some(actor) },
            other => other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RotateReply {
    Started {
        run: Box<RotationRun>,
        #[serde(default)]
        dry_run: bool,
    },
    Status {
        credentials: Vec<CredentialRecord>,
    },
    History {
        runs: Vec<RotationRun>,
    },
    Scheduled {
        credential: Box<CredentialRecord>,
    },
    Refused {
        code: String,
        message: String,
    },
    #[serde(other)]
    Unknown,
}

impl RotateReply {
    pub fn refused(code: &str, message: impl Into<String>) -> Self {
        RotateReply::Refused { code: code.to_string(), message: message.into() }
    }
}
