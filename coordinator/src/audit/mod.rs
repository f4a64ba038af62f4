//! The central audit log (issue 20): every command, result, progress step, drift report,
//! refusal, rollout transition, rotation step and operator request, in one append-only,
//! tamper-evident log.
//!
//! - [`sources`] (pure) says what is recorded of each message;
//! - [`writer`] (I/O) appends while this coordinator leads;
//! - [`read`] (I/O) reads the log back for `fleetctl audit log | export | verify`; its checks
//!   are `gmsa::audit::verify`, written apart from the writer.
//!
//! Coordinator tasks that are not sources themselves (the control API, the rollout driver)
//! [`submit`] drafts to the inbox stream; the writer appends them with everything else.

pub mod read;
pub mod sources;
pub mod writer;

use bus::Bus;
use gmsa::audit::seal::CheckpointPolicy;
use proto::audit::AuditEntry;
use std::time::Duration;

/// How the audit log is written.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Whether the leader writes the log (on by default; the benchmark measures the cost).
    pub enabled: bool,
    /// The log's name in its checkpoints (C2SP origin line).
    pub origin: String,
    /// The coordinator key's name in checkpoint signatures (and in the verifier key auditors use).
    pub key_name: String,
    pub checkpoints: CheckpointPolicy,
    /// At most this many entries per batch.
    pub batch_max: usize,
    /// How long a batch waits for more entries after its first.
    pub linger: Duration,
}

/// The log's default origin.
pub const DEFAULT_ORIGIN: &str = "gmsa-fleet/audit";
/// The coordinator key's default name in checkpoints.
pub const DEFAULT_KEY_NAME: &str = "gmsa-fleet-coordinator";

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            origin: DEFAULT_ORIGIN.into(),
            key_name: DEFAULT_KEY_NAME.into(),
            checkpoints: CheckpointPolicy::default(),
            batch_max: 256,
            linger: Duration::from_millis(20),
        }
    }
}

/// Submits a draft to the inbox (best effort: a failure is logged, the caller goes on — the
/// action it records has already happened).
pub async fn submit(bus: &Bus, id: &str, draft: &AuditEntry) {
    if let Err(err) = bus::audit::publish_draft(bus, id, draft).await {
        tracing::warn!(id, kind = draft.kind(), error = %bus::chain(&err), "audit draft not stored");
    }
}

/// Records an operator request answered outside `control::serve_requests` (the rollout driver,
/// the rotation runner): `verified` is the actor's name or the refusal's code and message.
pub async fn record_request(
    bus: &Bus,
    message: &async_nats::Message,
    verified: Result<String, (String, String)>,
    reply: &impl serde::Serialize,
) {
    let signer = bus::headers::signer_of(message.headers.as_ref()).map(|key| key.to_string());
    let verified = match &verified {
        Ok(name) => Ok(name.as_str()),
        Err((code, why)) => Err((code.as_str(), why.as_str())),
    };
    let draft = sources::request_draft(
        time::OffsetDateTime::now_utc(),
        message.subject.as_str(),
        signer.as_deref(),
        verified,
        &message.payload,
        serde_json::to_value(reply).ok().as_ref(),
    );
    submit(bus, &format!("request-{}", uuid::Uuid::new_v4().simple()), &draft).await;
}
