//! The rollout driver (I/O): runs on the leading coordinator only, and turns the pure engine
//! (`gmsa::rollout`) into effects. It owns every rollout in flight: it plans a rollout file
//! against the inventory, runs stage 0 centrally, feeds the engine ticks, step results (from its
//! own durable consumer on the result stream) and operators' requests, **appends each transition
//! to the rollout's log before acting on it**, then publishes the commands the engine asks for.
//!
//! # Guarantees
//! - **Persist, then act.** A transition is acknowledged by JetStream before any command it asks
//!   for is published; a coordinator killed at any instant rebuilds every rollout from its log
//!   ([`super::log::rebuild`]) and re-sends the steps in flight with their original command ids,
//!   which the bus and the agents deduplicate — no step runs twice, no result is lost (results
//!   stay in the durable consumer until the transition they cause is logged).
//! - **One writer.** Appends are checked against the log's last sequence; a driver whose append is
//!   refused (another leader wrote) reloads the rollout from its log before doing anything else.
//! - **Frozen membership.** Only the clusters planned at start are in a rollout; a result from
//!   any other cluster changes nothing.

use super::api::{MAX_CLUSTERS_IN_STATUS, PlannedStage, RolloutReply, RolloutRequest, RolloutSummary};
use super::log::{self, LogEntry};
use crate::inventory;
use bus::commands::CommandPublisher;
use bus::kv::Bucket;
use bus::log::RolloutLog;
use bus::{Bus, BusError};
use futures::StreamExt;
use futures::future::BoxFuture;
use gmsa::rollout::{Action, Event, Gate, GateWhen, Member, Phase, Plan, RolloutState, StagePhase, StepResult};
use proto::rollout::{CredspecInputs, GmsaSetup, RolloutFile};
use proto::version::SchemaVersion;
use proto::{CommandEnvelope, CommandKind, CommandResult, ResultStatus, StepOutcome, subjects};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{Instrument, info, info_span, warn};

/// Where the driver reads the time: the system clock, or a test's.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told (tests of maintenance windows and soaks).
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(now: OffsetDateTime) -> Self {
        ManualClock(Mutex::new(now))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = now.checked_add(by).unwrap_or(*now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Stage 0, run centrally before the first stage: the coordinator's Active Directory and Key Vault
/// work, returning the credspec inputs as AD reports them (see `crate::central`).
pub trait Stage0: Send + Sync + 'static {
    /// Runs stage 0 for `setup`; [`proto::Mode::DryRun`] (a plan) reads and diffs only.
    fn prepare<'a>(
        &'a self,
        setup: &'a GmsaSetup,
        mode: proto::Mode,
    ) -> BoxFuture<'a, Result<(CredspecInputs, Vec<StepOutcome>), String>>;
}

impl Stage0 for crate::central::Central {
    fn prepare<'a>(
        &'a self,
        setup: &'a GmsaSetup,
        mode: proto::Mode,
    ) -> BoxFuture<'a, Result<(CredspecInputs, Vec<StepOutcome>), String>> {
        Box::pin(async move {
            crate::central::Central::prepare(self, setup, mode)
                .await
                .map(|prepared| (prepared.credspec, prepared.steps))
                .map_err(|err| format!("{}: {}", err.code(), bus::chain(&err)))
        })
    }
}

/// How the driver runs.
#[derive(Clone)]
pub struct DriverSettings {
    /// How often time is fed to the engine (soaks, windows, budgets, deadlines).
    pub tick: Duration,
    pub clock: Arc<dyn Clock>,
    pub stage0: Option<Arc<dyn Stage0>>,
    /// Whose signed requests are answered (the daemon sets it from the configuration).
    pub operators: Arc<crate::authz::Operators>,
}

impl Default for DriverSettings {
    fn default() -> Self {
        DriverSettings {
            tick: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
            stage0: None,
            operators: Arc::default(),
        }
    }
}

/// Stage 0's outcome for one rollout, sent back from its task to the driver's loop.
type PreparedOutcome = (String, Result<(CredspecInputs, Vec<StepOutcome>), String>);

/// A request from the control API with where to answer.
pub type Request = (RolloutRequest, oneshot::Sender<RolloutReply>);

/// One rollout's row in `fleet_rollout_index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub summary: RolloutSummary,
    /// False once the rollout completed or was aborted: a new leader does not load it.
    pub active: bool,
}

/// The key in `fleet_rollout_index` holding the fleet's desired state (the last file started).
const DESIRED_KEY: &str = "desired-state";

/// What the index keeps of the fleet's desired state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub file: Box<RolloutFile>,
    pub rollout_id: String,
}

/// The fleet's desired state: the last rollout file started (not a dry run), if any.
pub async fn desired_state(bus: &Bus) -> Result<Option<Desired>, BusError> {
    Ok(desired_state_revision(bus).await?.map(|(desired, _)| desired))
}

/// [`desired_state`] with the KV revision it was written at (`fleetctl clusters show`).
pub async fn desired_state_revision(bus: &Bus) -> Result<Option<(Desired, u64)>, BusError> {
    let bucket: Bucket<Desired> = Bucket::open(bus, subjects::ROLLOUT_INDEX_BUCKET).await?;
    bucket.get(DESIRED_KEY).await
}

/// A rollout this driver runs.
struct Active {
    rebuilt: log::Rebuilt,
    last_sequence: u64,
    /// A publish failed: re-send the steps in flight at the next tick.
    resend: bool,
}

impl Active {
    fn phase_label(&self) -> String {
        match (&self.rebuilt.state, &self.rebuilt.prepare_failed) {
            (_, Some(_)) => "failed".into(),
            (None, None) => "preparing".into(),
            (Some(state), None) => match &state.phase {
                Phase::Running if state.paused_by.is_some() => "paused".into(),
                Phase::Running => "running".into(),
                Phase::Halted { .. } => "halted".into(),
                Phase::Aborted { .. } => "aborted".into(),
                Phase::Completed => "completed".into(),
            },
        }
    }

    fn summary(&self, rollout_id: &str) -> RolloutSummary {
        RolloutSummary {
            rollout_id: rollout_id.to_string(),
            name: self.rebuilt.name.clone(),
            phase: self.phase_label(),
            clusters: self.rebuilt.plan.clusters.len(),
            created_at: self.rebuilt.created_at,
            requested_by: self.rebuilt.requested_by.clone(),
            origin: self.rebuilt.origin.clone(),
        }
    }

    fn finished(&self) -> bool {
        self.rebuilt.prepare_failed.is_some()
            || self
                .rebuilt
                .state
                .as_ref()
                .is_some_and(|state| matches!(state.phase, Phase::Completed | Phase::Aborted { .. }))
    }
}

/// The driver of one leadership term.
pub struct Driver {
    bus: Bus,
    settings: DriverSettings,
    log: RolloutLog,
    index: Bucket<IndexEntry>,
    publisher: CommandPublisher,
    rollouts: BTreeMap<String, Active>,
    /// Stage 0 outcomes come back here from their tasks.
    prepared: mpsc::UnboundedSender<PreparedOutcome>,
}

/// Runs the driver while `leading` is true: each time this process becomes the leader, the driver
/// reloads every active rollout from its log and takes up where the last leader stopped.
pub async fn run_while_leading(
    bus: Bus,
    settings: DriverSettings,
    leading: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), BusError> {
    crate::leader::each_term("rollout driver", leading, shutdown, |mut leading, mut shutdown| {
        let (bus, settings) = (bus.clone(), settings.clone());
        async move {
            let (prepared_sender, prepared) = mpsc::unbounded_channel();
            let mut driver = Driver::open(&bus, settings, prepared_sender).await?;
            driver.serve(prepared, &mut leading, &mut shutdown).await
        }
        .instrument(info_span!("rollout-driver"))
    })
    .await
}

impl Driver {
    async fn open(
        bus: &Bus,
        settings: DriverSettings,
        prepared: mpsc::UnboundedSender<PreparedOutcome>,
    ) -> Result<Driver, BusError> {
        let mut driver = Driver {
            bus: bus.clone(),
            log: RolloutLog::open(bus).await?,
            index: Bucket::open(bus, subjects::ROLLOUT_INDEX_BUCKET).await?,
            publisher: CommandPublisher::new(bus),
            settings,
            rollouts: BTreeMap::new(),
            prepared,
        };
        driver.load_active().await?;
        Ok(driver)
    }

    /// Loads every active rollout of the index from its log and re-sends its steps in flight.
    async fn load_active(&mut self) -> Result<(), BusError> {
        let raw = self.index.entries_raw().await?;
        for (rollout_id, bytes) in raw {
            let Ok(entry) = serde_json::from_slice::<IndexEntry>(&bytes) else { continue };
            if !entry.active {
                continue;
            }
            match self.reload(&rollout_id).await {
                Ok(()) => info!(rollout_id = %rollout_id, "rollout resumed from its log"),
                Err(err) => warn!(rollout_id = %rollout_id, error = %err, "rollout log cannot be replayed; left alone"),
            }
        }
        for rollout_id in self.rollouts.keys().cloned().collect::<Vec<_>>() {
            self.resume_after_load(&rollout_id);
        }
        let sends: Vec<(String, Action)> = (self.rollouts.iter())
            .filter_map(|(id, active)| active.rebuilt.state.as_ref().map(|state| (id, state.resend_in_flight())))
            .flat_map(|(id, actions)| actions.into_iter().map(move |action| (id.clone(), action)))
            .collect();
        self.publish_sends(sends).await;
        Ok(())
    }

    /// After loading: a rollout whose stage 0 did not finish runs it again (it is idempotent).
    fn resume_after_load(&self, rollout_id: &str) {
        let Some(active) = self.rollouts.get(rollout_id) else { return };
        if active.rebuilt.state.is_none() && active.rebuilt.prepare_failed.is_none() {
            if active.rebuilt.plan.rotation.is_some() {
                // No stage 0 for a rotation's rollout: it starts as soon as it is loaded.
                let prepared = (active.rebuilt.plan.setup.credspec.clone(), Vec::new());
                let _ = self.prepared.send((rollout_id.to_string(), Ok(prepared)));
                return;
            }
            self.spawn_stage0(rollout_id, &active.rebuilt.plan.setup, active.rebuilt.dry_run);
        }
    }

    /// Rebuilds one rollout from its log, replacing what this driver held.
    async fn reload(&mut self, rollout_id: &str) -> Result<(), String> {
        let raw = self.log.read(rollout_id).await.map_err(|err| bus::chain(&err))?;
        let last_sequence = raw.last().map_or(0, |(sequence, _)| *sequence);
        let mut entries = Vec::with_capacity(raw.len());
        for (sequence, bytes) in raw {
            let entry: LogEntry = serde_json::from_slice(&bytes)
                .map_err(|err| log::RebuildError::Entry { sequence, message: err.to_string() }.to_string())?;
            entries.push((sequence, entry));
        }
        let rebuilt = log::rebuild(rollout_id, &entries).map_err(|err| err.to_string())?;
        self.rollouts.insert(rollout_id.to_string(), Active { rebuilt, last_sequence, resend: false });
        Ok(())
    }

    async fn serve(
        &mut self,
        mut prepared: mpsc::UnboundedReceiver<PreparedOutcome>,
        leading: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), BusError> {
        let mut requests = self
            .bus
            .client()
            .subscribe(super::api::SUBJECT)
            .await
            .map_err(|source| BusError::Subscribe { subject: super::api::SUBJECT.to_string(), source })?;
        // A short ack wait: after a leader change, what the old leader pulled and never
        // acknowledged reaches the new one within seconds (a redelivery is ignored by the engine).
        let mut results = bus::results::feed_as(&self.bus, subjects::ROLLOUT_CONSUMER, Duration::from_secs(3)).await?;
        let mut ticker = tokio::time::interval(self.settings.tick);
        info!(rollouts = self.rollouts.len(), "rollout driver serving");
        loop {
            tokio::select! {
                _ = ticker.tick() => self.tick().await,
                received = results.next() => match received {
                    Some(Ok(received)) => {
                        let handled = match &received.value {
                            Ok(result) => self.on_result(result).await,
                            Err(_) => true,
                        };
                        if handled {
                            if let Err(err) = received.ack().await {
                                warn!(error = %bus::chain(&err), "result not acknowledged; a redelivery is ignored by the engine");
                            }
                        } else {
                            let _ = received.retry_after(Duration::from_secs(1)).await;
                        }
                    }
                    Some(Err(err)) => {
                        warn!(error = %bus::chain(&err), "result feed error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    None => return Ok(()),
                },
                message = requests.next() => {
                    let Some(message) = message else { return Ok(()) };
                    let Some(reply_to) = message.reply.clone() else { continue };
                    let mut verified: Result<String, (String, String)> = Err(("invalid_request".into(), String::new()));
                    let reply = match serde_json::from_slice::<RolloutRequest>(&message.payload) {
                        Ok(request) => match crate::admit::admit(&self.bus, &self.settings.operators, &message, request.required_role()).await {
                            Ok(actor) => {
                                verified = Ok(actor.name.clone());
                                self.on_request(request.asked_by(actor.name)).await
                            }
                            Err(refusal) => {
                                warn!(code = %refusal.code, message = %refusal.message, "rollout request refused");
                                verified = Err((refusal.code.as_str().into(), refusal.message.clone()));
                                RolloutReply::refused(refusal.code.as_str(), refusal.message)
                            }
                        },
                        Err(err) => RolloutReply::refused("invalid_request", proto::decode::bounded(&err.to_string(), 2048)),
                    };
                    crate::audit::record_request(&self.bus, &message, verified, &reply).await;
                    match serde_json::to_vec(&reply) {
                        Ok(body) => if let Err(err) = self.bus.client().publish(reply_to, body.into()).await {
                            warn!(error = %err, "rollout reply not sent");
                        },
                        Err(err) => warn!(error = %err, "rollout reply not encoded"),
                    }
                }
                Some((rollout_id, outcome)) = prepared.recv() => self.on_prepared(&rollout_id, outcome).await,
                _ = leading.changed() => if !*leading.borrow() {
                    info!("no longer leading; the rollout driver stops");
                    return Ok(());
                },
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    /// Feeds time to every running rollout; re-sends what a failed publish left unsent.
    async fn tick(&mut self) {
        let now = self.settings.clock.now();
        let ids: Vec<String> = self.rollouts.keys().cloned().collect();
        let mut sends = Vec::new();
        for rollout_id in ids {
            if let Some(active) = self.rollouts.get_mut(&rollout_id)
                && active.resend
                && let Some(state) = &active.rebuilt.state
            {
                active.resend = false;
                sends.extend(state.resend_in_flight().into_iter().map(|action| (rollout_id.clone(), action)));
            }
            sends.extend(self.apply(&rollout_id, Event::Tick, now).await);
        }
        self.publish_sends(sends).await;
    }

    /// A step result from the durable feed; false when it must be delivered again (the
    /// transition it causes could not be logged).
    async fn on_result(&mut self, result: &CommandResult) -> bool {
        let Some(event) = self.step_event(result) else { return true };
        let Some(rollout_id) = result.rollout_id.clone() else { return true };
        let now = self.settings.clock.now();
        let applied = self.apply_logged(&rollout_id, event, now).await;
        let acknowledge = applied.outcome != Logged::Failed;
        self.publish_sends(applied.sends).await;
        acknowledge
    }

    /// The engine event of a result of one of this driver's rollouts, if it is one.
    fn step_event(&self, result: &CommandResult) -> Option<Event> {
        let rollout_id = result.rollout_id.as_ref()?;
        if self.rollouts.get(rollout_id).is_none_or(|active| active.rebuilt.state.is_none()) {
            return None;
        }
        let step = result.kind.parse::<CommandKind>().ok()?;
        let outcome = match &result.status {
            ResultStatus::Succeeded => StepResult::Changed,
            ResultStatus::Unchanged => StepResult::Unchanged,
            ResultStatus::Failed { code, message } => {
                StepResult::Failed { code: code.clone(), message: message.clone() }
            }
            ResultStatus::Unknown => StepResult::Failed {
                code: "unknown_status".into(),
                message: "the agent reported a status this coordinator does not know".into(),
            },
        };
        Some(Event::StepFinished { cluster: result.cluster.clone(), step, outcome })
    }

    /// [`Driver::apply_logged`], keeping only the sends.
    async fn apply(&mut self, rollout_id: &str, event: Event, now: OffsetDateTime) -> Vec<(String, Action)> {
        self.apply_logged(rollout_id, event, now).await.sends
    }

    /// Applies one event to a rollout: the engine decides, the transition is logged, and the
    /// sends it asks for are returned for publishing. Nothing is returned when the transition
    /// could not be logged (the rollout is then reloaded from its log).
    async fn apply_logged(&mut self, rollout_id: &str, event: Event, now: OffsetDateTime) -> Applied {
        let unchanged = Applied { sends: Vec::new(), outcome: Logged::Unchanged };
        let Some(active) = self.rollouts.get_mut(rollout_id) else { return unchanged };
        let Some(state) = active.rebuilt.state.as_mut() else { return unchanged };
        let was_finished = matches!(state.phase, Phase::Completed | Phase::Aborted { .. });
        let actions = state.handle(event.clone(), now);
        let meaningful = actions.iter().any(|action| !matches!(action, Action::Ignored { .. }));
        if !meaningful {
            return unchanged;
        }
        let entry = LogEntry::Event { event, now };
        if let Err(err) = self.append(rollout_id, &entry).await {
            warn!(rollout_id, error = %err, "transition not logged; reloading the rollout from its log");
            if let Err(err) = self.reload(rollout_id).await {
                warn!(rollout_id, error = %err, "reload failed; the rollout is dropped from this term");
                self.rollouts.remove(rollout_id);
            }
            if let Some(active) = self.rollouts.get_mut(rollout_id) {
                active.resend = true;
            }
            return Applied { sends: Vec::new(), outcome: Logged::Failed };
        }
        let sequence = self.rollouts.get(rollout_id).map_or(0, |active| active.last_sequence);
        self.audit_logged(rollout_id, &entry, &actions, sequence).await;
        for action in &actions {
            match action {
                Action::Send { .. } | Action::Ignored { .. } => {}
                other => info!(rollout_id, action = ?other, "rollout transition"),
            }
        }
        let finished_now = self.rollouts.get(rollout_id).is_some_and(|active| active.finished());
        if finished_now != was_finished
            || actions.iter().any(|a| {
                matches!(
                    a,
                    Action::Halted { .. }
                        | Action::Paused { .. }
                        | Action::Resumed { .. }
                        | Action::StageStarted { .. }
                        | Action::Completed
                        | Action::Aborted { .. }
                )
            })
        {
            self.write_index(rollout_id).await;
        }
        let sends = actions
            .into_iter()
            .filter(|action| matches!(action, Action::Send { .. }))
            .map(|action| (rollout_id.to_string(), action))
            .collect();
        Applied { sends, outcome: Logged::Written }
    }

    /// Appends to a rollout's log with the single-writer check.
    async fn append(&mut self, rollout_id: &str, entry: &LogEntry) -> Result<(), String> {
        let Some(active) = self.rollouts.get_mut(rollout_id) else { return Err("no such rollout".into()) };
        let bytes = serde_json::to_vec(entry).map_err(|err| err.to_string())?;
        let sequence =
            self.log.append(rollout_id, bytes, active.last_sequence).await.map_err(|err| bus::chain(&err))?;
        active.last_sequence = sequence;
        // Events and the start are audited with the actions the engine takes on them.
        if !matches!(entry, LogEntry::Event { .. } | LogEntry::Started { .. }) {
            self.audit_logged(rollout_id, entry, &[], sequence).await;
        }
        Ok(())
    }

    /// Submits the audit drafts of a logged entry and the engine's actions on it; the ids come
    /// from the log's sequence, so a draft re-submitted after a crash is stored once.
    async fn audit_logged(&self, rollout_id: &str, entry: &LogEntry, actions: &[Action], sequence: u64) {
        let now = self.settings.clock.now();
        for (at, draft) in crate::audit::sources::rollout_drafts(rollout_id, entry, actions, now).iter().enumerate() {
            crate::audit::submit(&self.bus, &format!("rollout-{rollout_id}-{sequence}-{at}"), draft).await;
        }
    }

    async fn write_index(&self, rollout_id: &str) {
        let Some(active) = self.rollouts.get(rollout_id) else { return };
        let entry = IndexEntry { summary: active.summary(rollout_id), active: !active.finished() };
        if let Err(err) = self.index.put(rollout_id, &entry).await {
            warn!(rollout_id, error = %bus::chain(&err), "rollout index not updated");
        }
    }

    /// Publishes the commands of `Send` actions, many in flight. A failed publish marks its
    /// rollout for a re-send at the next tick (same command ids: deduplicated downstream).
    async fn publish_sends(&mut self, sends: Vec<(String, Action)>) {
        if sends.is_empty() {
            return;
        }
        let now = self.settings.clock.now();
        let mut envelopes = Vec::with_capacity(sends.len());
        let mut unbuildable = Vec::new();
        for (rollout_id, action) in sends {
            let Action::Send { cluster, step, command_id, deadline, .. } = action else { continue };
            let Some(active) = self.rollouts.get(&rollout_id) else { continue };
            let mode = if active.rebuilt.dry_run { proto::Mode::DryRun } else { proto::Mode::Apply };
            let command = gmsa::rollout::commands::command_of(&active.rebuilt.plan, &cluster, step, mode)
                .map_err(|err| err.to_string());
            match command {
                Ok(command) => envelopes.push((
                    rollout_id.clone(),
                    CommandEnvelope {
                        schema: SchemaVersion::CURRENT,
                        command_id,
                        rollout_id: Some(rollout_id.clone()),
                        cluster,
                        issued_at: now,
                        deadline,
                        issuer: active.rebuilt.requested_by.clone(),
                        command,
                    },
                )),
                Err(message) => unbuildable.push((rollout_id.clone(), cluster, step, message)),
            }
        }
        let traceparent = bus::headers::new_traceparent();
        let publisher = self.publisher.clone();
        let outcomes: Vec<(String, Result<(), BusError>)> = futures::stream::iter(envelopes)
            .map(|(rollout_id, envelope)| {
                let publisher = publisher.clone();
                let traceparent = traceparent.clone();
                async move {
                    let sent = async {
                        let ack = publisher.send(&envelope, Some(&traceparent)).await?;
                        publisher.confirm(&envelope.cluster, ack).await.map(|_| ())
                    }
                    .await;
                    (rollout_id, sent)
                }
            })
            .buffer_unordered(512)
            .collect()
            .await;
        for (rollout_id, sent) in outcomes {
            if let Err(err) = sent {
                warn!(rollout_id = %rollout_id, error = %bus::chain(&err), "command not published; re-sent at the next tick");
                if let Some(active) = self.rollouts.get_mut(&rollout_id) {
                    active.resend = true;
                }
            }
        }
        // A step whose command cannot be built fails on its cluster, as an agent's refusal would.
        for (rollout_id, cluster, step, message) in unbuildable {
            let outcome = StepResult::Failed { code: "invalid_payload".into(), message };
            let more = self.apply(&rollout_id, Event::StepFinished { cluster, step, outcome }, now).await;
            Box::pin(self.publish_sends(more)).await;
        }
    }

    async fn on_request(&mut self, request: RolloutRequest) -> RolloutReply {
        let now = self.settings.clock.now();
        match request {
            RolloutRequest::Start { file, dry_run, requested_by } => self.start(*file, dry_run, requested_by).await,
            RolloutRequest::Status { rollout_id } => match self.rollouts.get(&rollout_id) {
                Some(active) => status_reply(&rollout_id, active, now),
                None => match self.rebuild_finished(&rollout_id).await {
                    Some(active) => status_reply(&rollout_id, &active, now),
                    None => RolloutReply::refused("not_found", format!("no rollout {rollout_id}")),
                },
            },
            RolloutRequest::List => self.list().await,
            RolloutRequest::Approve { rollout_id, stage, by } => {
                let Some(state) = self.rollouts.get(&rollout_id).and_then(|active| active.rebuilt.state.as_ref())
                else {
                    return RolloutReply::refused("not_found", format!("no running rollout {rollout_id}"));
                };
                let Some(gate) = waiting_gate(state) else {
                    return RolloutReply::refused("no_gate", "no approval gate is waiting in this rollout");
                };
                if stage.as_ref().is_some_and(|stage| *stage != gate.stage) {
                    return RolloutReply::refused(
                        "wrong_gate",
                        format!("the gate waiting is stage {:?}'s, not {stage:?}'s", gate.stage),
                    );
                }
                let message = format!("approved stage {} ({:?}) as {by}", gate.stage, gate.when);
                self.operator_event(&rollout_id, Event::Approve { gate, by }, message, now).await
            }
            RolloutRequest::Pause { rollout_id, by } => {
                self.operator_event(&rollout_id, Event::Pause { by: by.clone() }, format!("paused by {by}"), now).await
            }
            RolloutRequest::Resume { rollout_id, by } => {
                self.operator_event(&rollout_id, Event::Resume { by: by.clone() }, format!("resumed by {by}"), now)
                    .await
            }
            RolloutRequest::Abort { rollout_id, by } => {
                self.operator_event(&rollout_id, Event::Abort { by: by.clone() }, format!("aborted by {by}"), now).await
            }
            RolloutRequest::Retry { rollout_id, by } => self.retry(&rollout_id, by).await,
            RolloutRequest::Rollback { rollout_id, by } => self.rollback(&rollout_id, by).await,
            RolloutRequest::StartRotation { rollout_id, file, rotation, requested_by } => {
                self.start_rotation(rollout_id, *file, rotation, requested_by).await
            }
            RolloutRequest::Unknown => {
                RolloutReply::refused("unsupported_verb", "this coordinator does not know that verb")
            }
        }
    }

    async fn operator_event(
        &mut self,
        rollout_id: &str,
        event: Event,
        message: String,
        now: OffsetDateTime,
    ) -> RolloutReply {
        if self.rollouts.get(rollout_id).and_then(|active| active.rebuilt.state.as_ref()).is_none() {
            return RolloutReply::refused("not_found", format!("no running rollout {rollout_id}"));
        }
        let applied = self.apply_logged(rollout_id, event, now).await;
        let logged = applied.outcome == Logged::Written;
        self.publish_sends(applied.sends).await;
        if logged {
            RolloutReply::Done { rollout_id: rollout_id.to_string(), message }
        } else {
            RolloutReply::refused("unchanged", "nothing changed: the rollout is not in a state this applies to")
        }
    }

    /// A rotation's rollout under the caller's id (see [`RolloutRequest::StartRotation`]).
    async fn start_rotation(
        &mut self,
        rollout_id: String,
        file: RolloutFile,
        rotation: gmsa::rollout::RotationPlan,
        requested_by: Option<String>,
    ) -> RolloutReply {
        let exists =
            self.rollouts.contains_key(&rollout_id) || matches!(self.index.get_raw(&rollout_id).await, Ok(Some(_)));
        if exists {
            return RolloutReply::Started {
                rollout_id,
                dry_run: false,
                stages: Vec::new(),
                notes: vec!["exists".into()],
            };
        }
        let (mut plan, notes) = match self.plan_file_for(&file, &[CommandKind::RotateCredential]).await {
            Ok(planned) => planned,
            Err(refusal) => return refusal,
        };
        plan.name = format!("{} (rotation {})", plan.name, rotation.run_id);
        let origin = format!("rotation {}", rotation.run_id);
        plan.rotation = Some(rotation);
        let stages = planned_stages(&plan);
        if let Err(message) = self.create(&rollout_id, plan, origin, requested_by, None, false).await {
            return RolloutReply::refused("bus_error", message);
        }
        RolloutReply::Started { rollout_id, dry_run: false, stages, notes }
    }

    /// Plans a file against the inventory: the members and the plan, or the refusal.
    async fn plan_file(&self, file: &RolloutFile) -> Result<(Plan, Vec<String>), RolloutReply> {
        self.plan_file_for(file, &[CommandKind::EnableGmsa, CommandKind::GrantIdentity, CommandKind::ApplyCredspec])
            .await
    }

    /// [`Driver::plan_file`] keeping only clusters whose agents announce every one of `steps`.
    async fn plan_file_for(
        &self,
        file: &RolloutFile,
        steps: &[CommandKind],
    ) -> Result<(Plan, Vec<String>), RolloutReply> {
        gmsa::rollout::validate(file).map_err(|err| RolloutReply::refused("invalid_rollout", err.to_string()))?;
        let inventory =
            inventory::load(&self.bus).await.map_err(|err| RolloutReply::refused("bus_error", bus::chain(&err)))?;
        let mut notes: Vec<String> = inventory
            .invalid
            .iter()
            .map(|entry| format!("{}/{} skipped: {}", entry.bucket, entry.key, entry.message))
            .collect();
        let mut members = Vec::new();
        for entry in inventory.entries {
            let lacks =
                entry.agent.as_ref().and_then(|agent| steps.iter().find(|step| !agent.capabilities.contains(step)));
            if let Some(step) = lacks {
                notes.push(format!("{} not in this rollout: its agent does not announce {step}", entry.id));
                continue;
            }
            members.push(Member {
                subscription: entry.labels.get(SUBSCRIPTION_LABEL).cloned().unwrap_or_default(),
                cluster: entry.id,
                labels: entry.labels,
            });
        }
        let plan = gmsa::rollout::plan(file, &members)
            .map_err(|err| RolloutReply::refused("invalid_rollout", err.to_string()))?;
        Ok((plan, notes))
    }

    async fn start(&mut self, file: RolloutFile, dry_run: bool, requested_by: Option<String>) -> RolloutReply {
        let (plan, notes) = match self.plan_file(&file).await {
            Ok(planned) => planned,
            Err(refusal) => return refusal,
        };
        if self.settings.stage0.is_none()
            && let Err(err) = gmsa::rollout::commands::domain_facts(&plan.setup)
        {
            return RolloutReply::refused("invalid_rollout", err.to_string());
        }
        let stages = planned_stages(&plan);
        let rollout_id = crate::plan::new_rollout_id(self.settings.clock.now());
        if dry_run {
            // A plan is a rollout of its own, every command a dry run: each agent reports the
            // diff each step would apply, and nothing is written anywhere.
            let plan = plan.for_dry_run();
            let created = self.create(&rollout_id, plan, "plan (dry run)".into(), requested_by, None, true).await;
            if let Err(message) = created {
                return RolloutReply::refused("bus_error", message);
            }
            return RolloutReply::Started { rollout_id, dry_run: true, stages, notes };
        }
        let previous = self.desired_state().await.map(|desired| desired.file);
        if let Err(message) = self.create(&rollout_id, plan, "file".into(), requested_by, previous, false).await {
            return RolloutReply::refused("bus_error", message);
        }
        self.write_desired(&file, &rollout_id).await;
        RolloutReply::Started { rollout_id, dry_run: false, stages, notes }
    }

    async fn desired_state(&self) -> Option<Desired> {
        let bucket: Bucket<Desired> = Bucket::open(&self.bus, subjects::ROLLOUT_INDEX_BUCKET).await.ok()?;
        bucket.get(DESIRED_KEY).await.ok().flatten().map(|(desired, _)| desired)
    }

    async fn write_desired(&self, file: &RolloutFile, rollout_id: &str) {
        let Ok(bucket) = Bucket::<Desired>::open(&self.bus, subjects::ROLLOUT_INDEX_BUCKET).await else { return };
        let desired = Desired { file: Box::new(file.clone()), rollout_id: rollout_id.to_string() };
        if let Err(err) = bucket.put(DESIRED_KEY, &desired).await {
            warn!(error = %bus::chain(&err), "desired state not stored");
        }
    }

    /// Logs a new rollout (`Created` and its plan), indexes it, and starts it — after stage 0
    /// when its credspec inputs still lack what Active Directory reports.
    async fn create(
        &mut self,
        rollout_id: &str,
        plan: Plan,
        origin: String,
        requested_by: Option<String>,
        previous: Option<Box<RolloutFile>>,
        dry_run: bool,
    ) -> Result<(), String> {
        let now = self.settings.clock.now();
        let parts = log::plan_parts(&plan).map_err(|err| err.to_string())?;
        let created = LogEntry::Created {
            name: plan.name.clone(),
            origin: origin.clone(),
            requested_by: requested_by.clone(),
            created_at: now,
            parts: u32::try_from(parts.len()).unwrap_or(u32::MAX),
            previous: previous.clone(),
            dry_run,
        };
        let rebuilt = log::Rebuilt {
            name: plan.name.clone(),
            origin,
            requested_by,
            created_at: now,
            previous,
            dry_run,
            plan: plan.clone(),
            prepared: None,
            prepare_failed: None,
            state: None,
        };
        self.rollouts.insert(rollout_id.to_string(), Active { rebuilt, last_sequence: 0, resend: false });
        let mut written = self.append(rollout_id, &created).await;
        for part in &parts {
            if written.is_err() {
                break;
            }
            written = self.append(rollout_id, part).await;
        }
        if let Err(message) = written {
            self.rollouts.remove(rollout_id);
            return Err(message);
        }
        self.write_index(rollout_id).await;
        // A rotation's rollout has no stage 0: the rotation did the central work.
        match gmsa::rollout::commands::domain_facts(&plan.setup) {
            Err(_) if plan.rotation.is_none() => self.spawn_stage0(rollout_id, &plan.setup, dry_run),
            _ => self.begin(rollout_id).await,
        }
        Ok(())
    }

    fn spawn_stage0(&self, rollout_id: &str, setup: &GmsaSetup, dry_run: bool) {
        let Some(stage0) = self.settings.stage0.clone() else {
            let _ = self.prepared.send((rollout_id.to_string(), Err("no central section to run stage 0".into())));
            return;
        };
        let sender = self.prepared.clone();
        let rollout_id = rollout_id.to_string();
        let setup = setup.clone();
        tokio::spawn(
            async move {
                let mode = if dry_run { proto::Mode::DryRun } else { proto::Mode::Apply };
                let outcome = stage0.prepare(&setup, mode).await;
                let _ = sender.send((rollout_id, outcome));
            }
            .instrument(info_span!("stage-0")),
        );
    }

    async fn on_prepared(&mut self, rollout_id: &str, outcome: Result<(CredspecInputs, Vec<StepOutcome>), String>) {
        if !self.rollouts.contains_key(rollout_id) {
            return;
        }
        let entry = match outcome {
            Ok((credspec, steps)) => LogEntry::Prepared { credspec, steps },
            Err(message) => LogEntry::PrepareFailed { message },
        };
        if let Err(err) = self.append(rollout_id, &entry).await {
            warn!(rollout_id, error = %err, "stage 0's outcome not logged; it runs again");
            if self.reload(rollout_id).await.is_ok() {
                self.resume_after_load(rollout_id);
            }
            return;
        }
        let Some(active) = self.rollouts.get_mut(rollout_id) else { return };
        match entry {
            LogEntry::Prepared { credspec, steps } => {
                info!(rollout_id, "stage 0 done");
                active.rebuilt.plan.setup.credspec = credspec;
                active.rebuilt.prepared = Some(steps);
                self.begin(rollout_id).await;
            }
            LogEntry::PrepareFailed { message } => {
                warn!(rollout_id, message = %message, "stage 0 failed; no cluster starts");
                active.rebuilt.prepare_failed = Some(message);
                self.write_index(rollout_id).await;
            }
            _ => {}
        }
    }

    /// Logs `Started` and carries out the first actions.
    async fn begin(&mut self, rollout_id: &str) {
        let now = self.settings.clock.now();
        if let Err(err) = self.append(rollout_id, &LogEntry::Started { now }).await {
            warn!(rollout_id, error = %err, "start not logged; reloading");
            let _ = self.reload(rollout_id).await;
            return;
        }
        let Some(active) = self.rollouts.get_mut(rollout_id) else { return };
        let (state, actions) = RolloutState::start(rollout_id, active.rebuilt.plan.clone(), now);
        active.rebuilt.state = Some(state);
        let sequence = active.last_sequence;
        info!(rollout_id, clusters = active.rebuilt.plan.clusters.len(), "rollout started");
        self.audit_logged(rollout_id, &LogEntry::Started { now }, &actions, sequence).await;
        self.write_index(rollout_id).await;
        let sends = actions
            .into_iter()
            .filter(|action| matches!(action, Action::Send { .. }))
            .map(|action| (rollout_id.to_string(), action))
            .collect();
        self.publish_sends(sends).await;
    }

    async fn retry(&mut self, rollout_id: &str, by: String) -> RolloutReply {
        let Some(state) = self.rollouts.get(rollout_id).and_then(|active| active.rebuilt.state.clone()) else {
            return RolloutReply::refused("not_found", format!("no running rollout {rollout_id}"));
        };
        let plan = gmsa::rollout::retry_plan(&state);
        if plan.clusters.is_empty() {
            return RolloutReply::refused("nothing_to_retry", "no cluster of this rollout failed or timed out");
        }
        let new_id = crate::plan::new_rollout_id(self.settings.clock.now());
        let stages = planned_stages(&plan);
        let previous = self.rollouts.get(rollout_id).and_then(|active| active.rebuilt.previous.clone());
        match self.create(&new_id, plan, format!("retry of {rollout_id}"), Some(by), previous, false).await {
            Ok(()) => RolloutReply::Started { rollout_id: new_id, dry_run: false, stages, notes: vec![] },
            Err(message) => RolloutReply::refused("bus_error", message),
        }
    }

    async fn rollback(&mut self, rollout_id: &str, by: String) -> RolloutReply {
        let Some(active) = self.rollouts.get(rollout_id) else {
            return RolloutReply::refused("not_found", format!("no active rollout {rollout_id}"));
        };
        let Some(state) = active.rebuilt.state.clone() else {
            return RolloutReply::refused("not_started", "the rollout has not started; abort it instead");
        };
        let changed: std::collections::BTreeSet<String> = gmsa::rollout::changed_clusters(&state).into_iter().collect();
        if changed.is_empty() {
            return RolloutReply::refused("nothing_changed", "the rollout changed no cluster");
        }
        let new_id = crate::plan::new_rollout_id(self.settings.clock.now());
        match active.rebuilt.previous.clone() {
            // A new rollout of the previous desired state, to exactly the clusters this one changed.
            Some(previous) => {
                let mut plan = state.plan.restricted_to(&changed);
                plan.setup = previous.setup.clone();
                plan.overrides = previous.overrides.clone();
                let stages = planned_stages(&plan);
                match self.create(&new_id, plan, format!("rollback of {rollout_id}"), Some(by), None, false).await {
                    Ok(()) => RolloutReply::Started { rollout_id: new_id, dry_run: false, stages, notes: vec![] },
                    Err(message) => RolloutReply::refused("bus_error", message),
                }
            }
            // The fleet had no gMSA setup before: undo it, by a teardown of those clusters.
            None => match super::rollback::teardown(&self.bus, &state, &changed, &new_id, &by).await {
                Ok(targets) => RolloutReply::Started {
                    rollout_id: new_id,
                    dry_run: false,
                    stages: vec![PlannedStage { name: "teardown".into(), clusters: targets }],
                    notes: vec!["the fleet had no earlier desired state: its changes are torn down".into()],
                },
                Err(message) => RolloutReply::refused("bus_error", message),
            },
        }
    }

    async fn list(&self) -> RolloutReply {
        let mut rollouts: Vec<RolloutSummary> = self.rollouts.iter().map(|(id, active)| active.summary(id)).collect();
        if let Ok(raw) = self.index.entries_raw().await {
            for (key, bytes) in raw {
                if self.rollouts.contains_key(&key) {
                    continue;
                }
                if let Ok(entry) = serde_json::from_slice::<IndexEntry>(&bytes) {
                    rollouts.push(entry.summary);
                }
            }
        }
        rollouts.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.rollout_id.cmp(&b.rollout_id)));
        RolloutReply::List { rollouts }
    }

    /// A finished rollout, rebuilt from its log for a status query.
    async fn rebuild_finished(&self, rollout_id: &str) -> Option<Active> {
        if !subjects::is_valid_token(rollout_id) {
            return None;
        }
        let raw = self.log.read(rollout_id).await.ok()?;
        let last_sequence = raw.last().map(|(sequence, _)| *sequence)?;
        let entries: Vec<(u64, LogEntry)> = raw
            .into_iter()
            .filter_map(|(sequence, bytes)| serde_json::from_slice(&bytes).ok().map(|e| (sequence, e)))
            .collect();
        let rebuilt = log::rebuild(rollout_id, &entries).ok()?;
        Some(Active { rebuilt, last_sequence, resend: false })
    }
}

/// Whether an event's transition reached the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logged {
    /// The engine changed nothing worth logging (a tick, a redelivered result).
    Unchanged,
    Written,
    /// The append failed: nothing was done; the rollout was reloaded from its log.
    Failed,
}

/// What applying one event gives the caller.
struct Applied {
    sends: Vec<(String, Action)>,
    outcome: Logged,
}

/// The label that names a cluster's Azure subscription (its ARM write budget); clusters without
/// it share one budget.
pub const SUBSCRIPTION_LABEL: &str = "subscription";

fn planned_stages(plan: &Plan) -> Vec<PlannedStage> {
    (plan.strategy.stages.iter().zip(&plan.stages))
        .map(|(stage, clusters)| PlannedStage { name: stage.name.clone(), clusters: clusters.clone() })
        .collect()
}

/// The approval gate the rollout waits at now, if any.
fn waiting_gate(state: &RolloutState) -> Option<Gate> {
    let stage = state.stages.get(state.current_stage)?;
    let name = state.plan.strategy.stages.get(state.current_stage)?.name.clone();
    match stage.phase {
        StagePhase::WaitingApprovalBefore => Some(Gate { stage: name, when: GateWhen::Before }),
        StagePhase::WaitingApprovalAfter => Some(Gate { stage: name, when: GateWhen::After }),
        _ => None,
    }
}

fn status_reply(rollout_id: &str, active: &Active, now: OffsetDateTime) -> RolloutReply {
    let Some(state) = &active.rebuilt.state else {
        let phase = active.phase_label();
        let why = active
            .rebuilt
            .prepare_failed
            .clone()
            .unwrap_or_else(|| "stage 0 runs (Active Directory, Key Vault)".into());
        return RolloutReply::Done { rollout_id: rollout_id.to_string(), message: format!("{phase}: {why}") };
    };
    let mut status = gmsa::rollout::status(state, now);
    let truncated = status.clusters.len() > MAX_CLUSTERS_IN_STATUS;
    if truncated {
        // Keep the clusters an operator acts on first: failed, timed out, running, waiting.
        status.clusters.sort_by_key(|view| match view.status {
            gmsa::rollout::ClusterStatus::Failed | gmsa::rollout::ClusterStatus::TimedOut => 0,
            gmsa::rollout::ClusterStatus::Running | gmsa::rollout::ClusterStatus::WaitingWindow => 1,
            _ => 2,
        });
        status.clusters.truncate(MAX_CLUSTERS_IN_STATUS);
    }
    RolloutReply::Status { status: Box::new(status), truncated }
}
