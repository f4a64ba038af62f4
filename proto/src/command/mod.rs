//! The command envelope and the command kinds. Each kind's payload lives in its own file with its
//! validation; this module only dispatches.

mod apply_credspec;
mod audit_access;
mod check_dc_connectivity;
mod collect_diagnostics;
mod disable_gmsa;
mod enable_gmsa;
mod grant_identity;
mod rotate_credential;
mod teardown;
mod validate_credspec;
mod verify;

pub use apply_credspec::{ApplyCredspec, ServiceAccountRef};
pub use audit_access::AuditAccess;
pub use check_dc_connectivity::CheckDcConnectivity;
pub use collect_diagnostics::CollectDiagnostics;
pub use disable_gmsa::DisableGmsa;
pub use enable_gmsa::EnableGmsa;
pub use grant_identity::{GrantIdentity, IdentityChoice, VaultRef};
pub use rotate_credential::RotateCredential;
pub use teardown::{SharedDeletes, Teardown};
pub use validate_credspec::{DomainFacts, ValidateCredspec};
pub use verify::Verify;

// Field rules the rollout file (`crate::rollout`) shares with the payloads.
pub(crate) use enable_gmsa::is_dns_name;
pub(crate) use grant_identity::{default_secret_name, is_secret_name};

use crate::version::SchemaVersion;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

/// A command's identity. The same id always means the same command: it is the JetStream
/// `Nats-Msg-Id` (server-side dedup) and the key of the agent's idempotency check (beyond the
/// server's dedup window).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommandId(pub String);

impl CommandId {
    /// A fresh random id (UUID v4, simple form: it is also a subject token).
    pub fn random() -> Self {
        CommandId(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The id of one rollout's command for one cluster: stable, so re-sending a rollout's command
    /// to a cluster is deduplicated rather than applied twice.
    pub fn for_rollout(rollout_id: &str, cluster: &str) -> Self {
        let name = format!("{rollout_id}/{cluster}");
        CommandId(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to do, with its typed payload. Serialized as `{"kind": "enable-gmsa", "payload": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "kebab-case")]
pub enum Command {
    /// `az aks update --enable-windows-gmsa [--gmsa-dns-server --gmsa-root-domain-name]`.
    EnableGmsa(EnableGmsa),
    /// `az aks update --disable-windows-gmsa`.
    DisableGmsa(DisableGmsa),
    /// Grant the Windows nodes' identity `get` on the domain-user secret.
    GrantIdentity(GrantIdentity),
    /// Install the GMSACredentialSpec, its ClusterRole and RoleBindings.
    ApplyCredspec(ApplyCredspec),
    /// Point the cluster at a rotated domain-user secret version and check it can read it.
    RotateCredential(RotateCredential),
    /// Run the seed's sample workload and report whether it came up.
    Verify(Verify),
    /// Find the domain controllers through DNS and reach their ports (added in schema 1.1).
    CheckDcConnectivity(CheckDcConnectivity),
    /// Report each Windows pool's identity and who can read the secret (schema 1.2).
    AuditAccess(AuditAccess),
    /// Check the installed credspec against AD, the identity's access and the workload (schema 1.2).
    ValidateCredspec(ValidateCredspec),
    /// Undo the setup in reverse order; dry run unless `mode: apply` (schema 1.2).
    Teardown(Teardown),
    /// Collect a redacted diagnostics archive (schema 1.2).
    CollectDiagnostics(CollectDiagnostics),
}

/// The kind of a command without its payload: for selectors, capabilities and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandKind {
    EnableGmsa,
    DisableGmsa,
    GrantIdentity,
    ApplyCredspec,
    RotateCredential,
    Verify,
    CheckDcConnectivity,
    AuditAccess,
    ValidateCredspec,
    Teardown,
    CollectDiagnostics,
    /// A kind this build does not know (a newer agent's capability, a newer coordinator's
    /// command): decoded rather than failing the whole message; never planned or executed.
    #[serde(other)]
    Unknown,
}

impl CommandKind {
    /// Every kind, in the order of a first-time setup.
    pub const ALL: [CommandKind; 11] = [
        CommandKind::CheckDcConnectivity,
        CommandKind::EnableGmsa,
        CommandKind::GrantIdentity,
        CommandKind::ApplyCredspec,
        CommandKind::Verify,
        CommandKind::AuditAccess,
        CommandKind::ValidateCredspec,
        CommandKind::RotateCredential,
        CommandKind::CollectDiagnostics,
        CommandKind::DisableGmsa,
        CommandKind::Teardown,
    ];

    /// The kebab-case name used on the wire and on fleetctl's command line.
    pub fn name(self) -> &'static str {
        match self {
            CommandKind::EnableGmsa => "enable-gmsa",
            CommandKind::DisableGmsa => "disable-gmsa",
            CommandKind::GrantIdentity => "grant-identity",
            CommandKind::ApplyCredspec => "apply-credspec",
            CommandKind::RotateCredential => "rotate-credential",
            CommandKind::Verify => "verify",
            CommandKind::CheckDcConnectivity => "check-dc-connectivity",
            CommandKind::AuditAccess => "audit-access",
            CommandKind::ValidateCredspec => "validate-credspec",
            CommandKind::Teardown => "teardown",
            CommandKind::CollectDiagnostics => "collect-diagnostics",
            CommandKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CommandKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CommandKind::ALL.into_iter().find(|kind| kind.name() == text).ok_or_else(|| {
            let names: Vec<&str> = CommandKind::ALL.iter().map(|kind| kind.name()).collect();
            format!("unknown command kind {text:?}; expected one of {}", names.join(", "))
        })
    }
}

impl Command {
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::EnableGmsa(_) => CommandKind::EnableGmsa,
            Command::DisableGmsa(_) => CommandKind::DisableGmsa,
            Command::GrantIdentity(_) => CommandKind::GrantIdentity,
            Command::ApplyCredspec(_) => CommandKind::ApplyCredspec,
            Command::RotateCredential(_) => CommandKind::RotateCredential,
            Command::Verify(_) => CommandKind::Verify,
            Command::CheckDcConnectivity(_) => CommandKind::CheckDcConnectivity,
            Command::AuditAccess(_) => CommandKind::AuditAccess,
            Command::ValidateCredspec(_) => CommandKind::ValidateCredspec,
            Command::Teardown(_) => CommandKind::Teardown,
            Command::CollectDiagnostics(_) => CommandKind::CollectDiagnostics,
        }
    }

    /// Checks every field of the payload; the error names the field and the rule it breaks.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Command::EnableGmsa(payload) => payload.validate(),
            Command::DisableGmsa(payload) => payload.validate(),
            Command::GrantIdentity(payload) => payload.validate(),
            Command::ApplyCredspec(payload) => payload.validate(),
            Command::RotateCredential(payload) => payload.validate(),
            Command::Verify(payload) => payload.validate(),
            Command::CheckDcConnectivity(payload) => payload.validate(),
            Command::AuditAccess(payload) => payload.validate(),
            Command::ValidateCredspec(payload) => payload.validate(),
            Command::Teardown(payload) => payload.validate(),
            Command::CollectDiagnostics(payload) => payload.validate(),
        }
    }
}

/// A payload field that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ValidationError {
    /// The field's path in the payload, e.g. `payload.dns_server`.
    pub field: String,
    /// The rule it breaks, as a sentence fragment.
    pub rule: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        ValidationError { field: field.into(), rule: rule.into() }
    }
}

/// Refuses a `payload.mode` this build does not know: an unknown mode must not be taken for
/// `apply`, nor silently for a dry run the operator did not ask for.
pub(crate) fn check_mode(mode: crate::outcome::Mode) -> Result<(), ValidationError> {
    if mode == crate::outcome::Mode::Unknown {
        return Err(ValidationError::new("payload.mode", "unknown mode; this build knows `apply` and `dry-run`"));
    }
    Ok(())
}

/// What travels on `fleet.cmd.<cluster>`.
///
/// The coordinator's signature is not in the body: it travels in the `Fleet-Signature` header
/// over the subject and these exact bytes ([`crate::identity::SIGNATURE_HEADER`]). Older builds
/// had a `signature` body field (never set); a body that carries one decodes, the field ignored
/// like any unknown field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    pub schema: SchemaVersion,
    pub command_id: CommandId,
    /// The rollout this command belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<String>,
    /// The cluster the command is for; equals the subject's last token.
    pub cluster: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// After this instant the agent does not start the command (it reports `failed{deadline_exceeded}`),
    /// and a command in progress is abandoned with that result.
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    /// Who asked for the command, as the coordinator verified it (the operator's name, a
    /// rollout's requester); informational, the header's signature is what agents trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub command: Command,
}

/// The fields of an envelope that can be read even when the rest cannot (an unknown kind, a
/// payload of a newer major): enough to answer with a `failed` result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EnvelopeHead {
    pub command_id: CommandId,
    #[serde(default)]
    pub rollout_id: Option<String>,
    /// Empty when missing: the agent then answers `wrong_cluster` under its own cluster.
    #[serde(default)]
    pub cluster: String,
}

impl From<&CommandEnvelope> for EnvelopeHead {
    fn from(envelope: &CommandEnvelope) -> Self {
        EnvelopeHead {
            command_id: envelope.command_id.clone(),
            rollout_id: envelope.rollout_id.clone(),
            cluster: envelope.cluster.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
