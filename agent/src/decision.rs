//! What the agent does with a command it read from the stream — a pure function of what it knows,
//! so every branch is unit-tested without a bus.
//!
//! The handler never asks *why* a command arrived (first delivery, wake-up, poll, redelivery after a
//! crash, a duplicate publish beyond the dedup window): the same inputs give the same action, which
//! is what makes the agent idempotent by construction.

use bus::kv::{Cursor, InFlight};
use proto::version::SchemaVersion;
use proto::{CommandEnvelope, CommandResult};
use time::OffsetDateTime;

/// What the agent knows about one stored command.
pub struct Inputs<'a> {
    /// The sequence of the stored message.
    pub sequence: u64,
    /// The agent's own cluster id.
    pub cluster: &'a str,
    /// The decoded envelope, or why it could not be decoded.
    pub envelope: Result<&'a CommandEnvelope, Refusal>,
    /// The result already recorded for this command id, if any.
    pub recorded: Option<&'a CommandResult>,
    /// The agent's cursor as stored.
    pub cursor: &'a Cursor,
    pub max_attempts: u32,
    pub now: OffsetDateTime,
}

/// A reason to answer a command with `failed` without applying anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable machine-readable code.
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into() }
    }
}

/// The action for one stored command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A result exists already: advance the cursor, touch nothing.
    AlreadyDone,
    /// Answer `failed` with this refusal and advance; nothing is applied.
    Refuse(Refusal),
    /// Apply the command; this is attempt number `attempt`.
    Execute { attempt: u32 },
}

/// Decides what to do with a stored command.
pub fn decide(inputs: &Inputs<'_>) -> Action {
    if inputs.recorded.is_some() {
        return Action::AlreadyDone;
    }
    let envelope = match &inputs.envelope {
        Ok(envelope) => *envelope,
        Err(refusal) => return Action::Refuse(refusal.clone()),
    };
    if let Err(err) = envelope.schema.check_supported() {
        return Action::Refuse(Refusal::new("unsupported_schema", err.to_string()));
    }
    if envelope.cluster != inputs.cluster {
        return Action::Refuse(Refusal::new(
            "wrong_cluster",
            format!("command addressed to {:?} arrived at agent of {:?}", envelope.cluster, inputs.cluster),
        ));
    }
    if let Err(err) = gmsa::validate::command(&envelope.command) {
        return Action::Refuse(Refusal::new("invalid_payload", err.to_string()));
    }
    if inputs.now > envelope.deadline {
        return Action::Refuse(Refusal::new(
            "deadline_exceeded",
            format!("deadline {} passed before the command started", envelope.deadline),
        ));
    }
    let attempt = match &inputs.cursor.in_flight {
        Some(in_flight) if in_flight.sequence == inputs.sequence => in_flight.attempts + 1,
        _ => 1,
    };
    if attempt > inputs.max_attempts {
        return Action::Refuse(Refusal::new(
            "attempts_exhausted",
            format!("the agent stopped during this command {} times; giving up", attempt - 1),
        ));
    }
    Action::Execute { attempt }
}

/// The cursor to store before applying: records the attempt, so a crash mid-command counts.
pub fn cursor_before_execute(cursor: &Cursor, sequence: u64, command_id: &str, attempt: u32) -> Cursor {
    Cursor {
        last_done: cursor.last_done,
        in_flight: Some(InFlight { sequence, command_id: command_id.to_string(), attempts: attempt }),
    }
}

/// The cursor to store once the command's result is published.
pub fn cursor_after_done(sequence: u64) -> Cursor {
    Cursor { last_done: sequence, in_flight: None }
}

/// The cursor to store when the agent hands a command back at shutdown: the attempt did not fail,
/// so it does not count.
pub fn cursor_handed_back(cursor: &Cursor) -> Cursor {
    let in_flight = cursor.in_flight.clone().and_then(|mut in_flight| {
        in_flight.attempts = in_flight.attempts.saturating_sub(1);
        (in_flight.attempts > 0).then_some(in_flight)
    });
    Cursor { last_done: cursor.last_done, in_flight }
}

/// Reads the schema version a message declares (header first, then body).
pub fn declared_schema(header: Option<&str>, body: &serde_json::Value) -> Option<Result<SchemaVersion, Refusal>> {
    let text =
        header.map(str::to_string).or_else(|| body.get("schema").and_then(|v| v.as_str()).map(str::to_string))?;
    Some(text.parse::<SchemaVersion>().map_err(|err| Refusal::new("unsupported_schema", err.to_string())))
}

#[cfg(test)]
mod tests;
