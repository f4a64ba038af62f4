//! Who may say what on the bus: the headers that carry a signature, an agent's enrollment (the
//! public key its results must verify with) and the operators' roles.
//!
//! Signatures never travel in a body: a message's `Fleet-Key` header names the signer's public
//! key (`ed25519:<base64url>`), `Fleet-Signature` carries the signature over purpose, subject and
//! payload (`gmsa::signing`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Header naming the signer's public key.
pub const KEY_HEADER: &str = "Fleet-Key";
/// Header carrying the Ed25519 signature, base64url without padding.
pub const SIGNATURE_HEADER: &str = "Fleet-Signature";
/// Header of a control request: when it was signed, in Unix seconds. With the nonce it is part of
/// what the signature covers ([`request_context`]), so a captured request cannot be sent again.
pub const REQUEST_AT_HEADER: &str = "Fleet-Request-At";
/// Header of a control request: 32 lowercase hex digits, new for every request.
pub const REQUEST_NONCE_HEADER: &str = "Fleet-Request-Nonce";

/// What a control request's signature is taken over in place of the bare subject: the subject,
/// the signing time and the nonce. The coordinator accepts a request only within
/// [`REQUEST_WINDOW_SECS`] of its time and only the first time it sees the nonce.
pub fn request_context(subject: &str, at: i64, nonce: &str) -> String {
    format!("{subject} at={at} nonce={nonce}")
}

/// How far (either way, seconds) a control request's time may be from the coordinator's clock.
pub const REQUEST_WINDOW_SECS: i64 = 120;

/// Whether `nonce` has the shape [`REQUEST_NONCE_HEADER`] requires.
pub fn is_request_nonce(nonce: &str) -> bool {
    nonce.len() == 32 && nonce.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// One cluster's agent identity, written by the coordinator (`fleetctl agents enroll`) to
/// `fleet_enrollments/<cluster>`. The coordinator records a cluster's result only when it is signed
/// by this key and the enrollment is not revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub cluster: String,
    /// `ed25519:<base64url>`.
    pub public_key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
    /// The verified operator who enrolled it.
    #[serde(default)]
    pub enrolled_by: Option<String>,
    /// Set by `fleetctl agents revoke`: from then on the cluster's results are refused.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
}

/// What an operator may do through the control API. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Status, lists, plans (dry runs), audit reads.
    ReadOnly,
    /// Also: run commands, start, pause, resume, abort, retry and roll back rollouts, rotate,
    /// enroll and revoke agents.
    Operate,
    /// Also: approve a rollout's gated stage.
    Approve,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::Operate => "operate",
            Role::Approve => "approve",
        }
    }
}

/// A request to `fleet.ctl.agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum AgentsRequest {
    /// Records `public_key` as the identity of `cluster`'s agent (replacing an earlier one).
    Enroll { cluster: String, public_key: String },
    /// Revokes `cluster`'s enrollment.
    Revoke { cluster: String },
    /// Every enrollment.
    List,
}

/// The coordinator's answer on `fleet.ctl.agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum AgentsReply {
    Enrolled { enrollment: Enrollment },
    Revoked { enrollment: Enrollment },
    List { enrollments: Vec<Enrollment> },
    Refused { code: String, message: String },
}
