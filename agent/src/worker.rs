//! The agent's main loop for one cluster: read the next command after the cursor, decide, apply,
//! publish the result, advance the cursor — and wait for a wake-up, a reconnect, a poll tick or
//! shutdown.
//!
//! # Guarantees
//! - **At most one effect per command id:** the result is looked up before anything is applied
//!   ([`crate::decision`]); the result is published (acknowledged) before the cursor advances, so a
//!   crash between the two re-reads the command, finds the result and applies nothing.
//! - **Nothing missed while offline:** the cursor lives in JetStream KV, and the catch-up reads the
//!   stream from it; wake-ups only shorten the wait.
//! - **Bounded retries:** each start of a command is counted in the cursor before it runs; after
//!   `max_attempts` starts without a result the command ends `failed{attempts_exhausted}`.
//! - **Bounded duration:** a command runs until its deadline at most, then ends
//!   `failed{deadline_exceeded}`.
//!
//! # Caveats
//! One agent per cluster is assumed. A second one is harmless (the cursor is updated with a
//! revision check, so the loser re-reads) but wasteful.

use crate::decision::{self, Action, Inputs, Refusal};
use crate::executor::{ExecError, Executor, Progress};
use bus::commands::{CommandInbox, StoredCommand};
use bus::kv::{Bucket, Cursor};
use bus::results::{Lookup, ResultPublisher};
use bus::{Bus, BusError, headers};
use futures::StreamExt;
use gmsa::backoff::retry_delay;
use proto::command::EnvelopeHead;
use proto::deadletter::DeadLetter;
use proto::decode::{self, CommandMessage};
use proto::resources::ResourceUse;
use proto::version::SchemaVersion;
use proto::{AgentInfo, CommandEnvelope, CommandResult, ProgressEvent, ResultStatus, StepOutcome};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, info, info_span, warn};

/// Room left in a message for headers and the subject when a result is fitted to the server's
/// maximum payload.
const RESULT_HEADROOM: usize = 8 * 1024;
/// The smallest bound a result is fitted to, whatever the server announces.
const MIN_RESULT_BYTES: usize = 16 * 1024;

/// Settings of one agent.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub cluster: String,
    pub labels: BTreeMap<String, String>,
    /// How often the agent re-reads the stream even without a wake-up (a safety net for wake-ups
    /// lost while disconnected).
    pub poll_interval: Duration,
    pub heartbeat_interval: Duration,
    /// Starts of one command without a result before it is given up.
    pub max_attempts: u32,
    /// How long a command in flight may take to finish after shutdown is asked; then it is
    /// handed back (not counted as an attempt) for the next start.
    pub shutdown_grace: Duration,
    /// Interval of progress heartbeats while a command runs.
    pub progress_interval: Duration,
    pub agent_version: String,
    /// The keys the coordinator signs commands with (several while a key rotates). A command
    /// signed by none of them is not applied.
    pub coordinator_keys: Vec<gmsa::signing::PublicKey>,
    /// How long after its `issued_at` a command is accepted (then it is `stale`).
    pub max_command_age: Duration,
    /// How far ahead of this agent's clock a command's `issued_at` may be.
    pub max_clock_skew: Duration,
}

impl AgentSettings {
    pub fn new(cluster: impl Into<String>) -> Self {
        AgentSettings {
            cluster: cluster.into(),
            labels: BTreeMap::new(),
            poll_interval: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(30),
            max_attempts: 3,
            shutdown_grace: Duration::from_secs(30),
            progress_interval: Duration::from_secs(10),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            coordinator_keys: Vec::new(),
            max_command_age: Duration::from_secs(8 * 24 * 3600),
            max_clock_skew: Duration::from_secs(300),
        }
    }
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The bus failed in a way the agent cannot ride out.
    #[error("bus operation failed for cluster {cluster}")]
    Bus {
        cluster: String,
        #[source]
        source: BusError,
    },
    /// The agent has no identity to sign its results with, or trusts no coordinator key.
    #[error("agent of cluster {cluster} cannot start: {rule}")]
    Identity { cluster: String, rule: &'static str },
}

/// Everything one agent holds.
pub struct Agent<E> {
    settings: AgentSettings,
    bus: Bus,
    executor: Arc<E>,
    inbox: CommandInbox,
    results: ResultPublisher,
    cursors: Bucket<Cursor>,
    started_at: OffsetDateTime,
    /// The cursor as this agent last read or stored it. This agent is its only writer (every write
    /// checks the revision), so it is read from the bucket only at start and after a failed write.
    cursor: std::sync::Mutex<Option<HeldCursor>>,
}

/// The agent's cursor held in memory, and the revision of the stored one.
struct HeldCursor {
    cursor: Cursor,
    revision: u64,
    /// False when `cursor` is ahead of what is stored: a finished command's `last_done`, written
    /// with the next command's start (or on the heartbeat, or at shutdown) instead of after each
    /// result. Until then the stored cursor says the command is in flight; a restart that reads it
    /// again finds the command's result and applies nothing.
    stored: bool,
}

/// What every result of one stored command shares.
struct Ending<'a> {
    head: &'a EnvelopeHead,
    kind: &'a str,
    sequence: u64,
    traceparent: Option<&'a str>,
}

/// What ended a command run.
enum RunEnd {
    Finished(Result<Vec<StepOutcome>, ExecError>),
    DeadlineExceeded,
    HandedBack,
}

impl<E: Executor> Agent<E> {
    /// Opens the streams and buckets the agent uses (they must exist: the coordinator creates them).
    pub async fn new(bus: Bus, settings: AgentSettings, executor: E) -> Result<Self, AgentError> {
        let cluster = settings.cluster.clone();
        if bus.identity().is_none() {
            return Err(AgentError::Identity {
                cluster,
                rule: "the bus connection has no identity key to sign results with",
            });
        }
        if settings.coordinator_keys.is_empty() {
            return Err(AgentError::Identity {
                cluster,
                rule: "no coordinator key is trusted: every command would be refused",
            });
        }
        let bus_error = |source| AgentError::Bus { cluster: cluster.clone(), source };
        let inbox = CommandInbox::open(&bus, &settings.cluster).await.map_err(bus_error)?;
        let results = ResultPublisher::open(&bus).await.map_err(bus_error)?;
        let cursors = bus::kv::cursors(&bus).await.map_err(bus_error)?;
        Ok(Agent {
            settings,
            bus,
            executor: Arc::new(executor),
            inbox,
            results,
            cursors,
            started_at: OffsetDateTime::now_utc(),
            cursor: std::sync::Mutex::new(None),
        })
    }

    fn bus_error(&self, source: BusError) -> AgentError {
        AgentError::Bus { cluster: self.settings.cluster.clone(), source }
    }

    /// Announces the agent (hello / heartbeat) in the `fleet_agents` bucket.
    pub async fn announce(&self) -> Result<(), AgentError> {
        let info = AgentInfo {
            schema: SchemaVersion::CURRENT,
            cluster: self.settings.cluster.clone(),
            agent_version: self.settings.agent_version.clone(),
            capabilities: self.executor.capabilities(),
            labels: self.settings.labels.clone(),
            started_at: self.started_at,
            last_seen: OffsetDateTime::now_utc(),
        };
        // The hello is only written, never read here: no bucket to open (one round trip less at start).
        bus::kv::put_unopened(&self.bus, proto::subjects::AGENTS_BUCKET, &self.settings.cluster, &info)
            .await
            .map_err(|err| self.bus_error(err))?;
        Ok(())
    }

    /// Sends the hello; when it is not stored, counts the failure and returns when to send it
    /// again (the catch-up's jittered back-off).
    async fn hello(&self, failures: &mut u32) -> Option<tokio::time::Instant> {
        let err = self.announce().await.err()?;
        *failures = failures.saturating_add(1);
        warn!(error = %err, "hello not stored; sending it again shortly");
        Some(tokio::time::Instant::now() + retry_delay(*failures, &self.settings.cluster))
    }

    /// Runs until `shutdown` turns true. `reconnected` carries one `()` per (re)connection.
    pub async fn run(
        self,
        mut shutdown: watch::Receiver<bool>,
        mut reconnected: Option<mpsc::UnboundedReceiver<()>>,
    ) -> Result<(), AgentError> {
        let span = info_span!("agent", cluster = %self.settings.cluster);
        async move {
            let mut wakeups = self.inbox.wakeups(&self.bus).await.map_err(|err| self.bus_error(err))?;
            // A hello lost under load (10,000 agents connecting at once) is sent again soon, with
            // the catch-up's jittered back-off, not only with the next heartbeat.
            let mut hello_failures: u32 = 0;
            let mut hello_due = self.hello(&mut hello_failures).await;
            info!("agent started");
            let mut poll = tokio::time::interval(self.settings.poll_interval);
            let mut heartbeat = tokio::time::interval(self.settings.heartbeat_interval);
            heartbeat.tick().await;
            // After a failed catch-up (a server restart, a request lost under load) the agent retries
            // soon, with growing jittered delays, instead of waiting for the next wake-up or poll.
            let mut failures: u32 = 0;
            // True when this pass was started by a nudge. A nudge that finds nothing to read is
            // re-checked once shortly after: in a replicated stream the direct get may be answered
            // by a replica that has not applied the command yet.
            let mut nudged = false;
            // Connection events seen (one per connect, the first one included).
            let mut connections: u32 = 0;
            loop {
                if *shutdown.borrow() {
                    break;
                }
                let retry = match self.catch_up(&mut shutdown).await {
                    Ok(0) if nudged => {
                        failures = 0;
                        Some(Duration::from_millis(250))
                    }
                    Ok(_) => {
                        failures = 0;
                        None
                    }
                    Err(err) => {
                        failures = failures.saturating_add(1);
                        let delay = retry_delay(failures, &self.settings.cluster);
                        warn!(error = %bus::chain(&err), retry_in_ms = delay.as_millis() as u64, "catch-up failed; retrying");
                        Some(delay)
                    }
                };
                if *shutdown.borrow() {
                    break;
                }
                nudged = false;
                tokio::select! {
                    // A delivery of the standing pull wakes the agent itself; the nudge covers a
                    // pull that is not standing (after a failure). Not after a failed catch-up: a
                    // kept delivery would wake it at once, again and again, instead of backing off.
                    _ = self.inbox.arrival(), if failures == 0 => {}
                    _ = wakeups.next() => nudged = true,
                    _ = async { match reconnected.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                        info!("reconnected; catching up");
                        // The first event is the first connection: the pull made since is fresh.
                        connections = connections.saturating_add(1);
                        if connections > 1 {
                            self.inbox.reconnected().await;
                        }
                    }
                    _ = poll.tick() => {}
                    _ = heartbeat.tick() => {
                        match self.announce().await {
                            Ok(()) => hello_due = None,
                            Err(err) => warn!(error = %err, "heartbeat failed"),
                        }
                        self.flush_cursor().await;
                    }
                    _ = async { match hello_due { Some(due) => tokio::time::sleep_until(due).await, None => std::future::pending().await } } => {
                        hello_due = self.hello(&mut hello_failures).await;
                    }
                    _ = async { match retry { Some(delay) => tokio::time::sleep(delay).await, None => std::future::pending().await } } => {}
                    _ = shutdown.changed() => {}
                }
            }
            self.flush_cursor().await;
            info!("agent stopped");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Applies every command after the cursor, in stream order; returns how many it handled.
    async fn catch_up(&self, shutdown: &mut watch::Receiver<bool>) -> Result<usize, AgentError> {
        let mut handled = 0;
        loop {
            let (cursor, revision) = self.read_cursor().await?;
            let Some(stored) = self.inbox.next_after(cursor.last_done).await.map_err(|err| self.bus_error(err))? else {
                return Ok(handled);
            };
            let receipt = stored.clone();
            let handed_back = self.handle(stored, cursor, revision, shutdown).await?;
            if !handed_back {
                // Outcome recorded (result and cursor): the consumer may move on. A lost ack only
                // means a redelivery, which the cursor passes over.
                if let Err(err) = self.inbox.done(&receipt).await {
                    warn!(error = %bus::chain(&err), "command not acknowledged; its redelivery is passed over");
                }
            }
            handled += 1;
            if handed_back || *shutdown.borrow() {
                return Ok(handled);
            }
        }
    }

    /// Reads the agent's cursor. A cursor that cannot be decoded (an edit by hand, a hostile
    /// client) is reset to the start of the stream — safe, because every command is looked up by
    /// id before it is applied, so replaying finished ones applies nothing — and reported as a
    /// dead letter.
    async fn read_cursor(&self) -> Result<(Cursor, u64), AgentError> {
        if let Some(held) = self.held_cursor().as_ref() {
            return Ok((held.cursor.clone(), held.revision));
        }
        let cluster = self.settings.cluster.as_str();
        let Some((bytes, revision)) = self.cursors.get_raw(cluster).await.map_err(|err| self.bus_error(err))? else {
            // None stored yet: revision 0 is what the first write checks against.
            *self.held_cursor() = Some(HeldCursor { cursor: Cursor::default(), revision: 0, stored: true });
            return Ok((Cursor::default(), 0));
        };
        match bus::kv::decode_cursor(&bytes) {
            Ok(cursor) => {
                *self.held_cursor() = Some(HeldCursor { cursor: cursor.clone(), revision, stored: true });
                Ok((cursor, revision))
            }
            Err(refusal) => {
                let action = "reset to the start of the stream; each command is looked up by id before it is applied";
                warn!(code = %refusal.code, message = %refusal.message, "cursor cannot be decoded; {action}");
                let source = format!("kv:{}/{cluster}", self.cursors.name());
                self.dead_letter(source, None, &refusal, action, &format!("cursor-{cluster}-{revision}")).await?;
                let reset = Cursor::default();
                let revision = self.store_cursor(&reset, revision).await?;
                Ok((reset, revision))
            }
        }
    }

    /// Records a dead letter for something this agent read and could not act on.
    async fn dead_letter(
        &self,
        source: String,
        sequence: Option<u64>,
        refusal: &Refusal,
        action: &str,
        message_id: &str,
    ) -> Result<(), AgentError> {
        let letter = DeadLetter {
            schema: SchemaVersion::CURRENT,
            reporter: self.settings.cluster.clone(),
            source,
            sequence,
            code: refusal.code.as_str().to_string(),
            message: refusal.message.clone(),
            action: action.to_string(),
            at: OffsetDateTime::now_utc(),
        };
        bus::deadletters::publish(&self.bus, &letter, message_id).await.map_err(|err| self.bus_error(err))
    }

    /// Handles one stored command. Returns true when it was handed back at shutdown.
    ///
    /// Every message ends in a published result (under its id) or, when it has no usable id, a
    /// dead letter — and the cursor moves past it: no message can stop the cursor.
    async fn handle(
        &self,
        stored: StoredCommand,
        cursor: Cursor,
        revision: u64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, AgentError> {
        let cluster = self.settings.cluster.as_str();
        let traceparent = headers::traceparent_of(&stored.headers);
        // First gate: only what a trusted coordinator key signed, for this subject, is read at all.
        // A forgery gets no result (its id is the forger's choice: a result under it could squat a
        // real command's id), only a dead letter with the rule it broke.
        let subject = proto::subjects::command(cluster);
        let signed = headers::verify(
            Some(&stored.headers),
            &self.settings.coordinator_keys,
            gmsa::signing::Purpose::Command,
            &subject,
            &stored.payload,
        );
        if let Err(err) = signed {
            let refusal = headers::refusal_of(&err);
            warn!(sequence = stored.sequence, code = %refusal.code, message = %refusal.message, "command not signed by a trusted coordinator key; not applied");
            let message_id = format!("cmd-{cluster}-{}", stored.sequence);
            self.dead_letter(subject, Some(stored.sequence), &refusal, "not applied", &message_id).await?;
            self.store_cursor(&decision::cursor_after_done(stored.sequence), revision).await?;
            return Ok(false);
        }
        let (head, kind, envelope) = match decode::command(headers::schema_of(&stored.headers), &stored.payload) {
            CommandMessage::Valid(envelope) => {
                (EnvelopeHead::from(&*envelope), envelope.command.kind().name().to_string(), Ok(envelope))
            }
            CommandMessage::Refused { head, kind, refusal } => (head, kind, Err(refusal)),
            CommandMessage::Unanswerable(refusal) => {
                // Without a usable command id there is nobody to answer: record it, move on.
                warn!(sequence = stored.sequence, code = %refusal.code, message = %refusal.message, "command cannot be answered; recorded as a dead letter and skipped");
                let source = proto::subjects::command(cluster);
                let message_id = format!("cmd-{cluster}-{}", stored.sequence);
                self.dead_letter(source, Some(stored.sequence), &refusal, "skipped", &message_id).await?;
                self.store_cursor(&decision::cursor_after_done(stored.sequence), revision).await?;
                return Ok(false);
            }
        };
        let span = info_span!("command", command_id = %head.command_id, sequence = stored.sequence, traceparent = traceparent.as_deref().unwrap_or(""));
        async {
            // Only a result this agent signed counts as done: one someone else put on the subject
            // cannot make the agent skip the command.
            let own = self.bus.identity().map(|key| key.public()).into_iter().collect::<Vec<_>>();
            let recorded =
                match self.results.lookup(cluster, head.command_id.as_str(), &own).await.map_err(|err| self.bus_error(err))? {
                    Lookup::Found(result) => Some(*result),
                    Lookup::Absent => None,
                    Lookup::Undecodable(refusal) => {
                        // Not this command's result: apply (idempotently) and publish the real one,
                        // which becomes the last message on the subject.
                        warn!(code = %refusal.code, message = %refusal.message, "the command's result subject holds something else; applying");
                        None
                    }
                };
            let action = decision::decide(&Inputs {
                sequence: stored.sequence,
                cluster,
                envelope: envelope.as_deref().map_err(Clone::clone),
                recorded: recorded.as_ref(),
                cursor: &cursor,
                max_attempts: self.settings.max_attempts,
                max_age: time::Duration::try_from(self.settings.max_command_age).unwrap_or(time::Duration::MAX),
                max_skew: time::Duration::try_from(self.settings.max_clock_skew).unwrap_or(time::Duration::MAX),
                now: OffsetDateTime::now_utc(),
            });
            let ending =
                Ending { head: &head, kind: &kind, sequence: stored.sequence, traceparent: traceparent.as_deref() };
            match action {
                Action::AlreadyDone => {
                    info!("result already recorded; nothing applied");
                    self.store_cursor(&decision::cursor_after_done(stored.sequence), revision).await?;
                    Ok(false)
                }
                Action::Replayed => {
                    let refusal = Refusal::new(
                        decode::Code::Replayed,
                        format!("command {} was answered already; the first result stands", head.command_id.as_str()),
                    );
                    warn!(code = %refusal.code, "command id answered already; not applied again");
                    let message_id = format!("cmd-{cluster}-{}", stored.sequence);
                    self.dead_letter(subject.clone(), Some(stored.sequence), &refusal, "not applied", &message_id).await?;
                    self.store_cursor(&decision::cursor_after_done(stored.sequence), revision).await?;
                    Ok(false)
                }
                Action::Refuse(refusal) => {
                    warn!(code = %refusal.code, message = %refusal.message, "command refused");
                    let attempt = cursor.in_flight.as_ref().map_or(0, |in_flight| in_flight.attempts);
                    let earlier = decision::earlier_steps(&cursor, stored.sequence).to_vec();
                    let status = ResultStatus::Failed { code: refusal.code.as_str().to_string(), message: refusal.message };
                    self.finish(&ending, status, earlier, Vec::new(), attempt, revision).await?;
                    Ok(false)
                }
                Action::Execute { attempt } => {
                    let Ok(envelope) = envelope else { return Ok(false) };
                    let earlier = decision::earlier_steps(&cursor, stored.sequence).to_vec();
                    let mut before =
                        decision::cursor_before_execute(&cursor, stored.sequence, head.command_id.as_str(), attempt);
                    let mut revision = self.store_cursor(&before, revision).await?;
                    info!(attempt, kind = %kind, "applying");
                    let (status, steps, resources) = match self.run_command(&envelope, &mut before, &mut revision, shutdown).await {
                        RunEnd::HandedBack => {
                            info!("shutdown: command handed back for the next start");
                            self.store_cursor(&decision::cursor_handed_back(&before), revision).await?;
                            return Ok(true);
                        }
                        RunEnd::DeadlineExceeded => {
                            let message =
                                format!("the command did not finish before its deadline {}", envelope.deadline);
                            let steps = decision::earlier_steps(&before, stored.sequence).to_vec();
                            let code = decode::Code::DeadlineExceeded.as_str().to_string();
                            (ResultStatus::Failed { code, message }, steps, Vec::new())
                        }
                        RunEnd::Finished(Ok(steps)) => {
                            let steps = decision::merge_steps(&earlier, steps);
                            let resources = self.executor.resource_uses(&envelope.command, &steps);
                            (ResultStatus::from_steps(&steps), steps, resources)
                        }
                        RunEnd::Finished(Err(err)) => {
                            warn!(code = %err.code, message = %decode::bounded(&err.message, decode::MAX_MESSAGE_BYTES), "command failed");
                            let steps = decision::merge_steps(&earlier, err.completed);
                            (ResultStatus::Failed { code: err.code, message: err.message }, steps, Vec::new())
                        }
                    };
                    self.finish(&ending, status, steps, resources, attempt, revision).await?;
                    Ok(false)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Runs the executor with progress heartbeats, the deadline and the shutdown grace. Each step
    /// the executor reports done is recorded in the in-flight cursor (`before`, at `revision`)
    /// before the executor goes on.
    async fn run_command(
        &self,
        envelope: &CommandEnvelope,
        before: &mut Cursor,
        revision: &mut u64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> RunEnd {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let (artifact_sender, mut artifacts) = mpsc::unbounded_channel();
        let (step_sender, mut finished_steps) = mpsc::unbounded_channel();
        // No "started" event of its own: the executor's first step report says it (and the audit
        // records step starts only).
        let progress = Progress::new(sender).with_artifacts(artifact_sender).with_steps(step_sender);
        let until_deadline = (envelope.deadline - OffsetDateTime::now_utc()).try_into().unwrap_or(Duration::ZERO);
        let execution = self.executor.execute(envelope, progress);
        tokio::pin!(execution);
        let deadline = tokio::time::sleep(until_deadline);
        tokio::pin!(deadline);
        let mut beat = tokio::time::interval(self.settings.progress_interval);
        beat.tick().await;
        let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            tokio::select! {
                outcome = &mut execution => {
                    self.drain_progress(envelope, &mut receiver).await;
                    let mut artifact = None;
                    while let Ok(bytes) = artifacts.try_recv() {
                        artifact = Some(bytes);
                    }
                    return RunEnd::Finished(self.store_artifact(envelope, artifact, outcome).await);
                }
                _ = &mut deadline => return RunEnd::DeadlineExceeded,
                Some((step, message)) = receiver.recv() => self.send_progress(envelope, step, message).await,
                Some((outcome, recorded)) = finished_steps.recv() => {
                    let next = decision::cursor_with_step(before, outcome);
                    match self.store_cursor(&next, *revision).await {
                        Ok(stored) => {
                            *before = next;
                            *revision = stored;
                        }
                        // Not fatal: the step is still reported by this attempt's result; only a
                        // crash before that result would lose it.
                        Err(err) => warn!(error = %bus::chain(&err), "finished step not recorded in the cursor"),
                    }
                    let _ = recorded.send(());
                }
                _ = beat.tick() => self.send_progress(envelope, "heartbeat".into(), "still working".into()).await,
                _ = shutdown.changed(), if grace.is_none() => {
                    grace = Some(Box::pin(tokio::time::sleep(self.settings.shutdown_grace)));
                }
                _ = async { match grace.as_mut() { Some(sleep) => sleep.await, None => std::future::pending().await } } => {
                    return RunEnd::HandedBack;
                }
            }
        }
    }

    /// Stores a successful command's artifact before its result is published; a command whose
    /// artifact cannot be stored fails (`artifact_not_stored`) rather than pointing at nothing.
    async fn store_artifact(
        &self,
        envelope: &CommandEnvelope,
        artifact: Option<Vec<u8>>,
        outcome: Result<Vec<StepOutcome>, ExecError>,
    ) -> Result<Vec<StepOutcome>, ExecError> {
        let (Some(bytes), Ok(steps)) = (artifact, &outcome) else { return outcome };
        let size = bytes.len();
        match self.results.publish_artifact(&envelope.cluster, envelope.command_id.as_str(), bytes).await {
            Ok(()) => {
                info!(size, "artifact stored");
                outcome
            }
            Err(err) => {
                Err(ExecError::new("artifact_not_stored", format!("{size} bytes: {err}")).with_completed(steps.clone()))
            }
        }
    }

    async fn drain_progress(
        &self,
        envelope: &CommandEnvelope,
        receiver: &mut mpsc::UnboundedReceiver<(String, String)>,
    ) {
        while let Ok((step, message)) = receiver.try_recv() {
            self.send_progress(envelope, step, message).await;
        }
    }

    async fn send_progress(&self, envelope: &CommandEnvelope, step: String, message: String) {
        let event = ProgressEvent {
            schema: SchemaVersion::CURRENT,
            command_id: envelope.command_id.clone(),
            cluster: self.settings.cluster.clone(),
            step: decode::bounded(&step, 128),
            message: decode::bounded(&message, decode::MAX_MESSAGE_BYTES),
            at: OffsetDateTime::now_utc(),
        };
        if let Err(err) = self.results.publish_progress(&event).await {
            warn!(error = %err, "progress event not sent");
        }
    }

    /// Publishes the result, then advances the cursor past the command.
    async fn finish(
        &self,
        ending: &Ending<'_>,
        status: ResultStatus,
        steps: Vec<StepOutcome>,
        resources: Vec<ResourceUse>,
        attempt: u32,
        revision: u64,
    ) -> Result<(), AgentError> {
        let result = CommandResult {
            schema: SchemaVersion::CURRENT,
            command_id: ending.head.command_id.clone(),
            rollout_id: ending.head.rollout_id.clone(),
            cluster: self.settings.cluster.clone(),
            kind: ending.kind.to_string(),
            status,
            steps,
            attempt,
            finished_at: OffsetDateTime::now_utc(),
            agent_version: self.settings.agent_version.clone(),
            resources,
        };
        // A result must fit in one message, whatever the executor or the refusal put in it.
        let max_payload = self.bus.client().server_info().max_payload;
        let result = result.fit(max_payload.saturating_sub(RESULT_HEADROOM).max(MIN_RESULT_BYTES));
        self.results.publish_result(&result, ending.traceparent).await.map_err(|err| self.bus_error(err))?;
        info!(status = result.status.label(), "result published");
        // The result is the record that the command is done; the cursor's `last_done` follows with
        // the next write (see `HeldCursor::stored`).
        *self.held_cursor() =
            Some(HeldCursor { cursor: decision::cursor_after_done(ending.sequence), revision, stored: false });
        Ok(())
    }

    /// Stores the cursor with a revision check; returns the new revision. A failed write forgets
    /// the held cursor, so the next read takes the stored one.
    async fn store_cursor(&self, cursor: &Cursor, revision: u64) -> Result<u64, AgentError> {
        match self.cursors.update(&self.settings.cluster, cursor, revision).await {
            Ok(stored) => {
                *self.held_cursor() = Some(HeldCursor { cursor: cursor.clone(), revision: stored, stored: true });
                Ok(stored)
            }
            Err(err) => {
                *self.held_cursor() = None;
                Err(self.bus_error(err))
            }
        }
    }

    /// Stores a held cursor that is ahead of the stored one (a finished command's `last_done`).
    async fn flush_cursor(&self) {
        let pending = match self.held_cursor().as_ref() {
            Some(held) if !held.stored => Some((held.cursor.clone(), held.revision)),
            _ => None,
        };
        if let Some((cursor, revision)) = pending
            && let Err(err) = self.store_cursor(&cursor, revision).await
        {
            warn!(error = %bus::chain(&err), "cursor not stored; a restart re-reads the finished command and applies nothing");
        }
    }

    fn held_cursor(&self) -> std::sync::MutexGuard<'_, Option<HeldCursor>> {
        // The lock is never held across an await, so it is never poisoned by a cancelled task;
        // a panic elsewhere while it was held still leaves a valid value.
        self.cursor.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
