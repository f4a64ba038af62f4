//! One pure decoder per message type read from the bus: bytes (and the schema header) in, a typed
//! value or a [`Refusal`] with a stable [`Code`] out. The agent and the coordinator decode every
//! message they read through these functions and nothing else, so what a hostile or buggy writer
//! can put on the bus is answered here, in one place, with no I/O — and fuzzed
//! (`decode/tests.rs` feeds them arbitrary bytes and mutated valid messages).
//!
//! # Guarantees
//! - No input panics a decoder.
//! - Ids and cluster names that are not subject tokens ([`crate::subjects::is_valid_token`]) are
//!   refused here: nothing downstream builds a subject or a KV key from them.
//! - Every refusal message is bounded ([`MAX_MESSAGE_BYTES`]), cut with a marker saying how much
//!   was cut, so a 900 KiB field cannot grow into a result NATS refuses to carry.
#![deny(clippy::arithmetic_side_effects)]

use crate::AgentInfo;
use crate::command::{CommandEnvelope, CommandKind, EnvelopeHead};
use crate::control::RunRequest;
use crate::result::CommandResult;
use crate::subjects::is_valid_token;
use crate::version::SchemaVersion;
use serde::Deserialize;
use std::fmt;

/// The longest human-readable message a refusal, a result or a dead letter carries.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// Why a message was refused: stable, machine-readable, the `code` of the failed result or the
/// dead letter that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The message's major schema version is not this build's, or the version does not parse.
    UnsupportedSchema,
    /// The message is not JSON, or not the shape its subject promises.
    UndecodableCommand,
    /// The command id is missing or not a subject token: no result can be published under it.
    InvalidId,
    /// The command's kind is unknown to this build (a newer coordinator's kind).
    UnsupportedKind,
    /// The command is addressed to another cluster.
    WrongCluster,
    /// A payload field breaks a rule.
    InvalidPayload,
    /// The command's deadline passed, or is further away than a command may run.
    DeadlineExceeded,
    /// The agent stopped during the command too often.
    AttemptsExhausted,
    /// A result is not JSON, not a result, or names another cluster or command than its subject.
    UndecodableResult,
    /// A KV entry (hello, declared cluster, record) cannot be decoded or does not match its key.
    InvalidEntry,
    /// An agent's cursor cannot be decoded; it was reset.
    UndecodableCursor,
    /// A control request cannot be decoded or breaks a rule.
    InvalidRequest,
    /// A command, result or request carries no signature.
    Unsigned,
    /// A signature names a key the reader does not trust (or the signer's enrollment is revoked).
    UnknownKey,
    /// A signature does not verify for the subject and payload.
    BadSignature,
    /// A command issued too long ago, or in the future.
    Stale,
    /// A command whose id this agent has answered already, arriving again.
    Replayed,
    /// The verified operator's role does not allow the request.
    Forbidden,
    /// The reader cannot check the message now (a store it needs is unreachable); retry.
    Unavailable,
}

impl Code {
    /// The code as it stands in results and dead letters.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::UnsupportedSchema => "unsupported_schema",
            Code::UndecodableCommand => "undecodable_command",
            Code::InvalidId => "invalid_id",
            Code::UnsupportedKind => "unsupported_kind",
            Code::WrongCluster => "wrong_cluster",
            Code::InvalidPayload => "invalid_payload",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::AttemptsExhausted => "attempts_exhausted",
            Code::UndecodableResult => "undecodable_result",
            Code::InvalidEntry => "invalid_entry",
            Code::UndecodableCursor => "undecodable_cursor",
            Code::InvalidRequest => "invalid_request",
            Code::Unsigned => "unsigned",
            Code::UnknownKey => "unknown_key",
            Code::BadSignature => "bad_signature",
            Code::Stale => "stale",
            Code::Replayed => "replayed",
            Code::Forbidden => "forbidden",
            Code::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason to answer a message with a refusal instead of acting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    /// For people; at most [`MAX_MESSAGE_BYTES`] (cut with a marker).
    pub message: String,
}

impl Refusal {
    /// A refusal; the message is bounded.
    pub fn new(code: Code, message: impl AsRef<str>) -> Self {
        Refusal { code, message: bounded(message.as_ref(), MAX_MESSAGE_BYTES) }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// `text` cut to at most `max` bytes (at a character boundary) with a marker saying how many
/// bytes were cut; unchanged when it fits.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    // The marker itself takes room; keep it inside the bound.
    let marker_room = 40.min(max);
    let mut end = max.saturating_sub(marker_room);
    while end > 0 && !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    let cut = text.len().saturating_sub(end);
    format!("{}… [{cut} bytes cut]", &text[..end])
}

/// A value quoted for a message, itself bounded (so a huge id does not fill the message).
fn quoted(value: &str) -> String {
    format!("{:?}", bounded(value, 80))
}

/// What a command message read from `fleet.cmd.<cluster>` turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandMessage {
    /// Decoded; the agent still decides (cluster, deadline, attempts, payload rules).
    Valid(Box<CommandEnvelope>),
    /// Its id is usable, so the refusal is answered with a `failed` result under that id.
    Refused { head: EnvelopeHead, kind: String, refusal: Refusal },
    /// Without a usable id nobody can be answered: the reader records a dead letter and moves on.
    Unanswerable(Refusal),
}

/// Decodes a command: `schema_header` is the `Gmsa-Schema` header, if any.
pub fn command(schema_header: Option<&str>, payload: &[u8]) -> CommandMessage {
    let body: serde_json::Value = match serde_json::from_slice(payload) {
        Ok(body) => body,
        Err(err) => {
            return CommandMessage::Unanswerable(Refusal::new(Code::UndecodableCommand, format!("not JSON: {err}")));
        }
    };
    let head = match EnvelopeHead::deserialize(&body) {
        Ok(head) => head,
        Err(err) => {
            return CommandMessage::Unanswerable(Refusal::new(
                Code::InvalidId,
                format!("no readable command_id: {err}"),
            ));
        }
    };
    if !is_valid_token(head.command_id.as_str()) {
        return CommandMessage::Unanswerable(Refusal::new(
            Code::InvalidId,
            format!(
                "command_id {} is not a subject token (1-63 letters, digits, '-', '_')",
                quoted(head.command_id.as_str())
            ),
        ));
    }
    let kind = body
        .pointer("/command/kind")
        .and_then(|kind| kind.as_str())
        .map_or("unknown".to_string(), |kind| bounded(kind, 64));
    let refused = |refusal: Refusal| CommandMessage::Refused { head: head.clone(), kind: kind.clone(), refusal };
    if let Some(declared) = declared_schema(schema_header, &body) {
        match declared {
            Err(refusal) => return refused(refusal),
            Ok(version) => {
                if let Err(err) = version.check_supported() {
                    return refused(Refusal::new(Code::UnsupportedSchema, err.to_string()));
                }
            }
        }
    }
    if kind.parse::<CommandKind>().is_err() {
        return refused(Refusal::new(
            Code::UnsupportedKind,
            format!("this agent does not know the command kind {}", quoted(&kind)),
        ));
    }
    match CommandEnvelope::deserialize(&body) {
        Ok(envelope) => CommandMessage::Valid(Box::new(envelope)),
        Err(err) => refused(Refusal::new(Code::UndecodableCommand, format!("cannot decode the command: {err}"))),
    }
}

/// The schema version a message declares (header first, then body), if any.
pub fn declared_schema(header: Option<&str>, body: &serde_json::Value) -> Option<Result<SchemaVersion, Refusal>> {
    let text = header.or_else(|| body.get("schema").and_then(|value| value.as_str()))?;
    Some(text.parse::<SchemaVersion>().map_err(|err| Refusal::new(Code::UnsupportedSchema, err.to_string())))
}

/// Decodes a result. `expected` is the cluster and command id of the subject it was read from (or
/// looked up under): a result whose body names others is refused.
pub fn result(expected: Option<(&str, &str)>, payload: &[u8]) -> Result<CommandResult, Refusal> {
    let result: CommandResult = serde_json::from_slice(payload)
        .map_err(|err| Refusal::new(Code::UndecodableResult, format!("not a result: {err}")))?;
    if let Err(err) = result.schema.check_supported() {
        return Err(Refusal::new(Code::UnsupportedSchema, err.to_string()));
    }
    for (field, value) in [("cluster", result.cluster.as_str()), ("command_id", result.command_id.as_str())] {
        if !is_valid_token(value) {
            return Err(Refusal::new(
                Code::UndecodableResult,
                format!("{field} {} is not a subject token", quoted(value)),
            ));
        }
    }
    if let Some((cluster, command_id)) = expected
        && (result.cluster != cluster || result.command_id.as_str() != command_id)
    {
        return Err(Refusal::new(
            Code::UndecodableResult,
            format!(
                "the body names cluster {} and command {} but the subject names {} and {}",
                quoted(&result.cluster),
                quoted(result.command_id.as_str()),
                quoted(cluster),
                quoted(command_id)
            ),
        ));
    }
    Ok(result)
}

/// Decodes a drift report read from `fleet.drift.<expected>`: a report whose body names another
/// cluster (or one that is not a subject token) is refused, like a result.
pub fn drift(expected: &str, payload: &[u8]) -> Result<crate::drift::DriftReport, Refusal> {
    let report: crate::drift::DriftReport = serde_json::from_slice(payload)
        .map_err(|err| Refusal::new(Code::UndecodableResult, format!("not a drift report: {err}")))?;
    if let Err(err) = report.schema.check_supported() {
        return Err(Refusal::new(Code::UnsupportedSchema, err.to_string()));
    }
    if !is_valid_token(&report.cluster) || report.cluster != expected {
        return Err(Refusal::new(
            Code::UndecodableResult,
            format!("the body names cluster {} but the subject names {}", quoted(&report.cluster), quoted(expected)),
        ));
    }
    Ok(report)
}

/// Decodes an agent's hello or heartbeat stored under `key` in `fleet_agents`: the cluster it
/// claims must be a subject token and equal the key.
pub fn agent_info(key: &str, payload: &[u8]) -> Result<AgentInfo, Refusal> {
    let info: AgentInfo = serde_json::from_slice(payload)
        .map_err(|err| Refusal::new(Code::InvalidEntry, format!("not an agent hello: {err}")))?;
    if !is_valid_token(&info.cluster) {
        return Err(Refusal::new(
            Code::InvalidEntry,
            format!("cluster {} is not a subject token", quoted(&info.cluster)),
        ));
    }
    if info.cluster != key {
        return Err(Refusal::new(
            Code::InvalidEntry,
            format!("the hello under key {} claims cluster {}", quoted(key), quoted(&info.cluster)),
        ));
    }
    Ok(info)
}

/// Decodes a control request to `fleet.ctl.run`: the schema major must be this build's and the
/// deadline within bounds.
pub fn run_request(payload: &[u8]) -> Result<RunRequest, Refusal> {
    let request: RunRequest = serde_json::from_slice(payload)
        .map_err(|err| Refusal::new(Code::InvalidRequest, format!("not a run request: {err}")))?;
    request.schema.check_supported().map_err(|err| Refusal::new(Code::UnsupportedSchema, err.to_string()))?;
    crate::control::check_deadline_secs("deadline_secs", request.deadline_secs)
        .map_err(|err| Refusal::new(Code::InvalidRequest, err.to_string()))?;
    Ok(request)
}

/// Decodes a control request to `fleet.ctl.teardown-shared`: the schema major must be this
/// build's and the teardown valid.
pub fn teardown_shared_request(payload: &[u8]) -> Result<crate::control::TeardownSharedRequest, Refusal> {
    let request: crate::control::TeardownSharedRequest = serde_json::from_slice(payload)
        .map_err(|err| Refusal::new(Code::InvalidRequest, format!("not a teardown-shared request: {err}")))?;
    request.schema.check_supported().map_err(|err| Refusal::new(Code::UnsupportedSchema, err.to_string()))?;
    crate::Command::Teardown(request.teardown.clone())
        .validate()
        .map_err(|err| Refusal::new(Code::InvalidRequest, err.to_string()))?;
    Ok(request)
}

#[cfg(test)]
mod tests;
