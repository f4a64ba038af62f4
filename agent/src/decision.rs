//! What the agent does with a command it read from the stream — a pure function of what it knows,
//! so every branch is unit-tested without a bus.
//!
//! The handler never asks *why* a command arrived (first delivery, wake-up, poll, redelivery after a
//! crash, a duplicate publish beyond the dedup window): the same inputs give the same action, which
//! is what makes the agent idempotent by construction.
#![deny(clippy::arithmetic_side_effects)]

use bus::kv::{Cursor, InFlight};
pub use proto::decode::{Code, Refusal};
use proto::{CommandEnvelope, CommandResult, StepOutcome};
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
    /// How long after its `issued_at` a command is still accepted (older ones are `stale`).
    pub max_age: time::Duration,
    /// How far ahead of the agent's clock an `issued_at` may lie (clock skew).
    pub max_skew: time::Duration,
    pub now: OffsetDateTime,
}

/// The default of [`Inputs::max_skew`].
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// The action for one stored command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// This attempt's result was published before a crash: advance the cursor, touch nothing.
    AlreadyDone,
    /// The command id was answered already and the command arrives again (a replay, or a
    /// re-publish beyond the dedup window): record a dead letter `replayed`, touch nothing, keep
    /// the first result.
    Replayed,
    /// Answer `failed` with this refusal and advance; nothing is applied.
    Refuse(Refusal),
    /// Apply the command; this is attempt number `attempt`.
    Execute { attempt: u32 },
}

/// Decides what to do with a stored command.
///
/// The signature was checked before (`worker`: a command that is not signed by a trusted key gets
/// no result and no effect, only a dead letter); this decides for authentic commands.
pub fn decide(inputs: &Inputs<'_>) -> Action {
    if inputs.recorded.is_some() {
        // Only a crash between publishing the result and advancing the cursor leaves this very
        // message in flight with a result; any other arrival of an answered id is a replay.
        let interrupted =
            inputs.cursor.in_flight.as_ref().is_some_and(|in_flight| in_flight.sequence == inputs.sequence);
        return if interrupted { Action::AlreadyDone } else { Action::Replayed };
    }
    let envelope = match &inputs.envelope {
        Ok(envelope) => *envelope,
        Err(refusal) => return Action::Refuse(refusal.clone()),
    };
    if let Err(err) = envelope.schema.check_supported() {
        return Action::Refuse(Refusal::new(Code::UnsupportedSchema, err.to_string()));
    }
    if envelope.cluster != inputs.cluster {
        return Action::Refuse(Refusal::new(
            Code::WrongCluster,
            format!(
                "command addressed to {:?} arrived at agent of {:?}",
                proto::decode::bounded(&envelope.cluster, 80),
                inputs.cluster
            ),
        ));
    }
    if let Some(refusal) = stale(envelope.issued_at, inputs.now, inputs.max_age, inputs.max_skew) {
        return Action::Refuse(refusal);
    }
    if let Err(err) = gmsa::validate::command(&envelope.command) {
        return Action::Refuse(Refusal::new(Code::InvalidPayload, err.to_string()));
    }
    // A deadline further from its issue than any command may run is refused, whatever the clock
    // says: bounded deadlines keep every duration the agent derives from them in range.
    let longest = time::Duration::seconds(i64::try_from(proto::control::MAX_DEADLINE_SECS).unwrap_or(i64::MAX));
    if envelope.issued_at.checked_add(longest).is_none_or(|latest| envelope.deadline > latest) {
        return Action::Refuse(Refusal::new(
            Code::InvalidPayload,
            format!(
                "deadline: {} is more than {} seconds after issued_at {}",
                envelope.deadline,
                proto::control::MAX_DEADLINE_SECS,
                envelope.issued_at
            ),
        ));
    }
    if inputs.now > envelope.deadline {
        return Action::Refuse(Refusal::new(
            Code::DeadlineExceeded,
            format!("deadline {} passed before the command started", envelope.deadline),
        ));
    }
    let earlier_attempts = match &inputs.cursor.in_flight {
        Some(in_flight) if in_flight.sequence == inputs.sequence => in_flight.attempts,
        _ => 0,
    };
    let attempt = earlier_attempts.saturating_add(1);
    if attempt > inputs.max_attempts {
        return Action::Refuse(Refusal::new(
            Code::AttemptsExhausted,
            format!("the agent stopped during this command {earlier_attempts} times; giving up"),
        ));
    }
    Action::Execute { attempt }
}

/// Why a command issued at `issued_at` is too old or from the future at `now`, if it is.
pub fn stale(
    issued_at: OffsetDateTime,
    now: OffsetDateTime,
    max_age: time::Duration,
    max_skew: time::Duration,
) -> Option<Refusal> {
    let oldest = now.checked_sub(max_age)?;
    let newest = now.checked_add(max_skew)?;
    if issued_at < oldest {
        return Some(Refusal::new(
            Code::Stale,
            format!("issued_at {issued_at} is more than {max_age} before the agent's clock {now}"),
        ));
    }
    if issued_at > newest {
        return Some(Refusal::new(
            Code::Stale,
            format!("issued_at {issued_at} is more than {max_skew} after the agent's clock {now}"),
        ));
    }
    None
}

/// The cursor to store before applying: records the attempt, so a crash mid-command counts, and
/// keeps the steps earlier attempts of the same command recorded.
pub fn cursor_before_execute(cursor: &Cursor, sequence: u64, command_id: &str, attempt: u32) -> Cursor {
    Cursor {
        last_done: cursor.last_done,
        in_flight: Some(InFlight {
            sequence,
            command_id: command_id.to_string(),
            attempts: attempt,
            steps: earlier_steps(cursor, sequence).to_vec(),
        }),
    }
}

/// The steps earlier attempts of the command at `sequence` recorded in the cursor.
pub fn earlier_steps(cursor: &Cursor, sequence: u64) -> &[StepOutcome] {
    match &cursor.in_flight {
        Some(in_flight) if in_flight.sequence == sequence => &in_flight.steps,
        _ => &[],
    }
}

/// The cursor after one more step of the running attempt finished.
pub fn cursor_with_step(cursor: &Cursor, outcome: StepOutcome) -> Cursor {
    let mut next = cursor.clone();
    if let Some(in_flight) = next.in_flight.as_mut() {
        in_flight.steps.push(outcome);
    }
    next
}

/// The steps a result reports after a re-run: what this attempt found, with what earlier attempts
/// changed put back. A step this attempt found `unchanged` that an earlier attempt `changed` is
/// reported as the earlier change (with its diff): the command did change it. Steps only an
/// earlier attempt reached (this one failed before them) are kept. Order: this attempt's steps,
/// then the earlier-only ones in their order.
pub fn merge_steps(earlier: &[StepOutcome], current: Vec<StepOutcome>) -> Vec<StepOutcome> {
    let earlier_change = |name: &str| earlier.iter().rev().find(|step| step.step == name && step.is_changed());
    let mut merged: Vec<StepOutcome> = current
        .into_iter()
        .map(|step| match earlier_change(&step.step) {
            // The earlier change with what this attempt observed (the fresher state).
            Some(changed) if !step.is_changed() => StepOutcome { observed: step.observed, ..changed.clone() },
            _ => step,
        })
        .collect();
    for step in earlier {
        if !merged.iter().any(|kept| kept.step == step.step) {
            merged.push(step.clone());
        }
    }
    merged
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

#[cfg(test)]
mod tests;
