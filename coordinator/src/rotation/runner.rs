//! The rotation runner (I/O): on the leading coordinator, it answers `fleet.ctl.rotate`, starts
//! scheduled rotations when due, and advances the run in progress one step at a time, persisting
//! the run before each step's effect is relied on (see the module documentation of
//! [`super`] for the guarantees).

use super::api::{RotateReply, RotateRequest, SUBJECT};
use super::store::{CredentialRecord, Store};
use crate::inventory;
use crate::rollouts::api::{RolloutReply, RolloutRequest};
use crate::rollouts::driver::SUBSCRIPTION_LABEL;
use crate::rollouts::{Clock, SystemClock};
use bus::{Bus, BusError};
use futures::StreamExt;
use futures::future::BoxFuture;
use gmsa::SecretString;
use gmsa::rollout::{Member, Phase, RotationPlan};
use gmsa::rotation::run::{RotationRun, RunPhase, Target, TargetView, active_user, next_step, targets_of};
use gmsa::rotation::{Next, Schedule};
use proto::rollout::RolloutFile;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

/// Why a central rotation step failed, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RotationError {
    pub code: String,
    pub message: String,
}

impl RotationError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        RotationError { code: code.into(), message: message.into() }
    }
}

type PortResult<'a, T> = BoxFuture<'a, Result<T, RotationError>>;

/// What the latest version of a secret names (never its password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentCredential {
    pub domain: String,
    pub user: String,
    pub version: String,
}

/// The central adapters a rotation needs (Key Vault and Active Directory).
pub trait RotationPort: Send + Sync + 'static {
    /// `(DOMAIN, user, version)` of the latest version of the target's secret; `None` when it
    /// does not exist.
    fn current_user<'a>(&'a self, target: &'a Target) -> PortResult<'a, Option<CurrentCredential>>;
    /// The enabled version of the target's secret tagged with `run_id`, if one exists.
    fn tagged_version<'a>(&'a self, target: &'a Target, run_id: &'a str) -> PortResult<'a, Option<String>>;
    /// Resets `user`'s password on the PDC emulator — refusing any account gmsa-fleet did not
    /// create for `credential` (the marker stage 0 writes: `<vault>/<secret>` of the fleet's
    /// setup), or that is built-in, critical or privileged — and confirms it by binding as the
    /// user. The password is returned in memory only.
    fn reset_password<'a>(&'a self, credential: &'a str, user: &'a str) -> PortResult<'a, SecretString>;
    /// Writes `value` (`DOMAIN\user:password`) as a new version tagged with `run_id`; its id.
    fn write_version<'a>(
        &'a self,
        target: &'a Target,
        value: &'a SecretString,
        run_id: &'a str,
    ) -> PortResult<'a, String>;
    /// The value of one version of the target's secret.
    fn read_version<'a>(&'a self, target: &'a Target, version: &'a str) -> PortResult<'a, Option<SecretString>>;
    /// The longest password age the domain's policy allows the users; `None`: never expires.
    fn max_password_age<'a>(&'a self, users: &'a [String; 2]) -> PortResult<'a, Option<time::Duration>>;
}

/// A test's failpoint: the process aborts (as SIGKILL would end it, with no cleanup) right after
/// this step's effect, before anything else is persisted. Set by `fleet-coordinator` from
/// `FLEET_COORDINATOR_CRASH_AT` (`after-reset`, `after-write`, `after-rollout-start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    AfterReset,
    AfterWrite,
    AfterRolloutStart,
}

impl FromStr for CrashPoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "after-reset" => Ok(CrashPoint::AfterReset),
            "after-write" => Ok(CrashPoint::AfterWrite),
            "after-rollout-start" => Ok(CrashPoint::AfterRolloutStart),
            other => Err(format!("{other:?} is not after-reset, after-write or after-rollout-start")),
        }
    }
}

/// How the runner runs.
#[derive(Clone)]
pub struct RotationSettings {
    pub tick: Duration,
    pub clock: Arc<dyn Clock>,
    /// The central adapters; without them every verb but `status` and `history` is refused.
    pub port: Option<Arc<dyn RotationPort>>,
    pub crash_at: Option<CrashPoint>,
    /// Whose signed requests are answered (the daemon sets it from the configuration).
    pub operators: Arc<crate::authz::Operators>,
}

impl Default for RotationSettings {
    fn default() -> Self {
        RotationSettings {
            tick: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
            port: None,
            crash_at: None,
            operators: Arc::default(),
        }
    }
}

/// Runs the rotation runner while `leading` is true.
pub async fn run_while_leading(
    bus: Bus,
    settings: RotationSettings,
    leading: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), BusError> {
    crate::leader::each_term("rotation runner", leading, shutdown, |mut leading, mut shutdown| {
        let (bus, settings) = (bus.clone(), settings.clone());
        async move {
            let store = Store::open(&bus).await?;
            let mut runner = Runner { bus, store, settings, value: None };
            runner.serve(&mut leading, &mut shutdown).await
        }
        .instrument(info_span!("rotation-runner"))
    })
    .await
}

/// The fleet's credential: the desired state's file and users A and B.
struct Fleet {
    file: RolloutFile,
    users: [String; 2],
    /// The credential the users were created for (their AD marker): `<vault>/<secret>`.
    marker: String,
}

struct Runner {
    bus: Bus,
    store: Store,
    settings: RotationSettings,
    /// The new credential value of the run in progress (`DOMAIN\user:password`), by run id: in
    /// this process's memory only, lost by a crash (then read back from a vault this run wrote,
    /// or the idle user is reset again).
    value: Option<(String, SecretString)>,
}

impl Runner {
    async fn serve(
        &mut self,
        leading: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), BusError> {
        let mut requests = self
            .bus
            .client()
            .subscribe(SUBJECT)
            .await
            .map_err(|source| BusError::Subscribe { subject: SUBJECT.to_string(), source })?;
        let mut ticker = tokio::time::interval(self.settings.tick);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.tick().await,
                message = requests.next() => {
                    let Some(message) = message else { return Ok(()) };
                    let Some(reply_to) = message.reply.clone() else { continue };
                    let mut verified: Result<String, (String, String)> = Err(("invalid_request".into(), String::new()));
                    let reply = match serde_json::from_slice::<RotateRequest>(&message.payload) {
                        Ok(request) => match crate::admit::admit(&self.bus, &self.settings.operators, &message, request.required_role()).await {
                            Ok(actor) => {
                                verified = Ok(actor.name.clone());
                                self.on_request(request.asked_by(actor.name)).instrument(info_span!("rotation.request")).await
                            }
                            Err(refusal) => {
                                verified = Err((refusal.code.as_str().into(), refusal.message.clone()));
                                RotateReply::refused(refusal.code.as_str(), refusal.message)
                            }
                        },
                        Err(err) => RotateReply::refused("invalid_request", proto::decode::bounded(&err.to_string(), 2048)),
                    };
                    crate::audit::record_request(&self.bus, &message, verified, &reply).await;
                    match serde_json::to_vec(&reply) {
                        Ok(body) => if let Err(err) = self.bus.client().publish(reply_to, body.into()).await {
                            warn!(error = %err, "rotation reply not sent");
                        },
                        Err(err) => warn!(error = %err, "rotation reply not encoded"),
                    }
                }
                _ = leading.changed() => if !*leading.borrow() { return Ok(()) },
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.settings.clock.now()
    }

    async fn fleet(&self) -> Result<Fleet, RotationError> {
        let desired = crate::rollouts::driver::desired_state(&self.bus)
            .await
            .map_err(|err| RotationError::new("bus_error", bus::chain(&err)))?
            .ok_or_else(|| {
                RotationError::new("no_desired_state", "no rollout has set the fleet's desired state yet")
            })?;
        let central = desired.file.setup.central.as_ref().ok_or_else(|| {
            RotationError::new(
                "no_central_setup",
                "the fleet's desired state has no central section: no users to rotate",
            )
        })?;
        let marker = format!("{}/{}", desired.file.setup.vault.name, desired.file.setup.secret_name);
        Ok(Fleet { users: central.users(), marker, file: *desired.file })
    }

    async fn record(&self, users: &[String; 2]) -> Result<(CredentialRecord, u64), RotationError> {
        let credential = users[0].to_ascii_lowercase();
        match self.store.get(&credential).await {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Ok((CredentialRecord::new(users.clone()), 0)),
            Err(err) => Err(RotationError::new("bus_error", bus::chain(&err))),
        }
    }

    async fn save(&self, record: &CredentialRecord, revision: &mut u64) -> Result<(), RotationError> {
        match self.store.put(record, *revision).await {
            Ok(next) => {
                *revision = next;
                Ok(())
            }
            Err(err) => Err(RotationError::new(
                "conflict",
                format!("the rotation record changed meanwhile: {}", bus::chain(&err)),
            )),
        }
    }

    fn crash(&self, point: CrashPoint) {
        if self.settings.crash_at == Some(point) {
            warn!(?point, "failpoint reached: aborting");
            std::process::abort();
        }
    }

    fn port(&self) -> Result<Arc<dyn RotationPort>, RotationError> {
        self.settings.port.clone().ok_or_else(|| {
            RotationError::new("no_central", "this coordinator has no central section (Active Directory, Key Vault)")
        })
    }

    /// Starts a due scheduled run, and advances the run in progress.
    async fn tick(&mut self) {
        if self.settings.port.is_none() {
            return;
        }
        let Ok(fleet) = self.fleet().await else { return };
        let Ok((record, revision)) = self.record(&fleet.users).await else { return };
        let busy = record.current.as_ref().is_some_and(|run| !run.finished());
        let result = if busy {
            self.advance(&fleet, record, revision).await
        } else if record.next_run.is_some_and(|next| next <= self.now()) {
            info!(credential = %record.credential, "scheduled rotation due");
            self.start(&fleet, record, revision, Some("scheduler".into()), false).await.map(|_| ())
        } else {
            Ok(())
        };
        if let Err(err) = result {
            warn!(code = %err.code, message = %err.message, "rotation step failed; retried at the next tick");
        }
    }

    async fn on_request(&mut self, request: RotateRequest) -> RotateReply {
        let refused = |err: RotationError| RotateReply::refused(&err.code, err.message);
        match request {
            RotateRequest::Now { requested_by, dry_run } => {
                let fleet = match self.fleet().await {
                    Ok(fleet) => fleet,
                    Err(err) => return refused(err),
                };
                let (record, revision) = match self.record(&fleet.users).await {
                    Ok(found) => found,
                    Err(err) => return refused(err),
                };
                match self.start(&fleet, record, revision, requested_by, dry_run).await {
                    Ok(run) => RotateReply::Started { run: Box::new(run), dry_run },
                    Err(err) => refused(err),
                }
            }
            RotateRequest::Status => match self.store.all().await {
                Ok(credentials) => RotateReply::Status { credentials },
                Err(err) => RotateReply::refused("bus_error", bus::chain(&err)),
            },
            RotateRequest::History => match self.store.all().await {
                Ok(records) => {
                    let mut runs: Vec<RotationRun> = records.into_iter().flat_map(|record| record.history).collect();
                    runs.sort_by_key(|run| std::cmp::Reverse(run.started_at));
                    RotateReply::History { runs }
                }
                Err(err) => RotateReply::refused("bus_error", bus::chain(&err)),
            },
            RotateRequest::Schedule { schedule, requested_by } => {
                match self.set_schedule(schedule, requested_by).await {
                    Ok(record) => RotateReply::Scheduled { credential: Box::new(record) },
                    Err(err) => refused(err),
                }
            }
            RotateRequest::Rollback { requested_by } => match self.rollback(requested_by).await {
                Ok(run) => RotateReply::Started { run: Box::new(run), dry_run: false },
                Err(err) => refused(err),
            },
            RotateRequest::Unknown => {
                RotateReply::refused("unsupported_verb", "this coordinator does not know that verb")
            }
        }
    }

    async fn set_schedule(
        &mut self,
        schedule: Option<Schedule>,
        requested_by: Option<String>,
    ) -> Result<CredentialRecord, RotationError> {
        let fleet = self.fleet().await?;
        let (mut record, mut revision) = self.record(&fleet.users).await?;
        let now = self.now();
        if let Some(schedule) = &schedule {
            let port = self.port()?;
            let max_age = port.max_password_age(&fleet.users).await?;
            gmsa::rotation::check_against_max_age(schedule, max_age, now)
                .map_err(|err| RotationError::new("schedule_invalid", err.to_string()))?;
        }
        info!(credential = %record.credential, schedule = ?schedule, by = ?requested_by, "rotation schedule set");
        record.schedule = schedule;
        record.schedule_set_at = Some(now);
        record.reschedule();
        self.save(&record, &mut revision).await?;
        Ok(record)
    }

    /// Undoes the last run: a **new** version of every secret it wrote, holding the value each
    /// had before it (the previous user, whose password that run did not touch). Refused while a
    /// run is in progress, when the last run wrote nothing, or when the active user is no longer
    /// the one it made active (a later change). Idempotent: a secret that already holds the
    /// rollback (a version tagged `rollback-<run>`) is not written again.
    async fn rollback(&mut self, requested_by: Option<String>) -> Result<RotationRun, RotationError> {
        let port = self.port()?;
        let fleet = self.fleet().await?;
        let (mut record, mut revision) = self.record(&fleet.users).await?;
        if let Some(run) = record.current.as_ref().filter(|run| !run.finished()) {
            return Err(RotationError::new("rotation_in_progress", format!("run {} is in progress", run.run_id)));
        }
        let last = record
            .history
            .first()
            .filter(|run| run.writes > 0 && !run.run_id.starts_with("rollback-"))
            .cloned()
            .ok_or_else(|| RotationError::new("nothing_to_roll_back", "the last run wrote no new version"))?;
        if record.active_user.as_deref() != Some(last.target_user.as_str()) {
            return Err(RotationError::new(
                "nothing_to_roll_back",
                format!("the active user is {:?}, not {} (run {})", record.active_user, last.target_user, last.run_id),
            ));
        }
        let tag = format!("rollback-{}", last.run_id);
        let now = self.now();
        let mut run = RotationRun {
            run_id: tag.clone(),
            credential: last.credential.clone(),
            domain: last.domain.clone(),
            target_user: last.previous_user.clone(),
            previous_user: last.target_user.clone(),
            phase: RunPhase::Writing,
            targets: last.targets.clone(),
            versions: Default::default(),
            previous_versions: last.versions.clone(),
            resets: 0,
            writes: 0,
            rollout_id: None,
            started_at: now,
            finished_at: None,
            requested_by,
        };
        for target in &last.targets {
            if let Some(version) = port.tagged_version(target, &tag).await? {
                run.versions.insert(target.key.clone(), version);
                continue;
            }
            let Some(previous) = last.previous_versions.get(&target.key) else { continue };
            let value = port.read_version(target, previous).await?.ok_or_else(|| {
                RotationError::new("version_missing", format!("version {previous} of {} is gone", target.key))
            })?;
            let version = port.write_version(target, &value, &tag).await?;
            run.versions.insert(target.key.clone(), version);
            run.writes = run.writes.saturating_add(1);
        }
        run.phase = RunPhase::Completed;
        run.finished_at = Some(now);
        info!(run_id = %run.run_id, user = %run.target_user, writes = run.writes, "rotation rolled back");
        record.active_user = Some(run.target_user.clone());
        record.history.insert(0, run.clone());
        record.history.truncate(super::store::HISTORY_LIMIT);
        self.save(&record, &mut revision).await?;
        Ok(run)
    }

    /// The targets of the fleet's desired state over today's inventory.
    async fn targets(&self, file: &RolloutFile) -> Result<Vec<Target>, RotationError> {
        let inventory =
            inventory::load(&self.bus).await.map_err(|err| RotationError::new("bus_error", bus::chain(&err)))?;
        let members: Vec<Member> = inventory
            .entries
            .into_iter()
            .map(|entry| Member {
                subscription: entry.labels.get(SUBSCRIPTION_LABEL).cloned().unwrap_or_default(),
                cluster: entry.id,
                labels: entry.labels,
            })
            .collect();
        let plan = gmsa::rollout::plan(file, &members)
            .map_err(|err| RotationError::new("invalid_rollout", err.to_string()))?;
        Ok(targets_of(&plan))
    }

    /// Starts a run (after every read and refusal), or, `dry_run`, says what it would do.
    async fn start(
        &mut self,
        fleet: &Fleet,
        mut record: CredentialRecord,
        mut revision: u64,
        requested_by: Option<String>,
        dry_run: bool,
    ) -> Result<RotationRun, RotationError> {
        let port = self.port()?;
        if let Some(run) = record.current.as_ref().filter(|run| !run.finished()) {
            return Err(RotationError::new(
                "rotation_in_progress",
                format!("run {} is in progress ({:?})", run.run_id, run.phase),
            ));
        }
        let targets = self.targets(&fleet.file).await?;
        let mut named = Vec::with_capacity(targets.len());
        let mut domain = None;
        let mut previous_versions = std::collections::BTreeMap::new();
        for target in &targets {
            let current = port.current_user(target).await?;
            if let Some(current) = &current {
                domain.get_or_insert_with(|| current.domain.clone());
                previous_versions.insert(target.key.clone(), current.version.clone());
            }
            named.push((target.key.clone(), current.map(|current| current.user)));
        }
        let users = [fleet.users[0].as_str(), fleet.users[1].as_str()];
        let (active, idle) =
            active_user(users, &named).map_err(|err| RotationError::new(err.code(), err.to_string()))?;
        let now = self.now();
        let run_id = format!("{}-{}", now.unix_timestamp(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let run = RotationRun {
            run_id,
            credential: record.credential.clone(),
            domain: domain.unwrap_or_default(),
            target_user: idle,
            previous_user: active.clone(),
            phase: RunPhase::Resetting,
            targets,
            versions: Default::default(),
            previous_versions,
            resets: 0,
            writes: 0,
            rollout_id: None,
            started_at: now,
            finished_at: None,
            requested_by,
        };
        if dry_run {
            return Ok(run);
        }
        record.active_user = Some(active);
        record.current = Some(run.clone());
        self.save(&record, &mut revision).await?;
        info!(run_id = %run.run_id, user = %run.target_user, targets = run.targets.len(), "rotation started");
        self.advance(fleet, record, revision).await?;
        Ok(run)
    }

    /// Advances the run in progress as far as it goes now (it waits on the rollout).
    async fn advance(
        &mut self,
        fleet: &Fleet,
        mut record: CredentialRecord,
        mut revision: u64,
    ) -> Result<(), RotationError> {
        let port = self.port()?;
        loop {
            let Some(mut run) = record.current.clone() else { return Ok(()) };
            let span = info_span!("rotation.step", run_id = %run.run_id, phase = ?run.phase);
            // One version list per vault, and only while something may still be written: a run
            // that follows its rollout reads no vault at each tick.
            let mut views = Vec::new();
            if run.needs_views() {
                for target in &run.targets {
                    let tagged = port.tagged_version(target, &run.run_id).instrument(span.clone()).await?;
                    views.push(TargetView { key: target.key.clone(), tagged_version: tagged });
                }
            }
            let held = self.value.as_ref().filter(|(id, _)| *id == run.run_id).map(|(_, value)| value.duplicate());
            match next_step(&run, &views, held.is_some()) {
                Next::Reset => {
                    let reset = port.reset_password(&fleet.marker, &run.target_user).instrument(span.clone()).await;
                    let password = match reset {
                        Ok(password) => password,
                        Err(err) => return self.fail(&mut record, &mut revision, run, err, false).await,
                    };
                    let value = azure::domain_user_credential(&run.domain, &run.target_user, &password)
                        .map_err(|rule| RotationError::new("invalid_credential", rule))?;
                    self.value = Some((run.run_id.clone(), value));
                    run.resets = run.resets.saturating_add(1);
                    run.phase = RunPhase::Writing;
                    info!(run_id = %run.run_id, user = %run.target_user, "idle user's password reset and confirmed");
                    record.current = Some(run);
                    self.save(&record, &mut revision).await?;
                    self.crash(CrashPoint::AfterReset);
                }
                Next::Write { keys } => {
                    let Some(value) = held else { continue };
                    let Some(target) = run.targets.iter().find(|target| Some(&target.key) == keys.first()).cloned()
                    else {
                        return Ok(());
                    };
                    let version = port.write_version(&target, &value, &run.run_id).instrument(span.clone()).await?;
                    info!(run_id = %run.run_id, target = %target.key, version = %version, "new credential version written");
                    run.versions.insert(target.key.clone(), version);
                    run.writes = run.writes.saturating_add(1);
                    run.phase = RunPhase::Writing;
                    record.current = Some(run);
                    self.save(&record, &mut revision).await?;
                    self.crash(CrashPoint::AfterWrite);
                }
                Next::CopyFrom { from, version, .. } => {
                    let Some(source) = run.targets.iter().find(|target| target.key == from) else { return Ok(()) };
                    let value =
                        port.read_version(source, &version).instrument(span.clone()).await?.ok_or_else(|| {
                            RotationError::new("version_missing", format!("version {version} of {from} disappeared"))
                        })?;
                    info!(run_id = %run.run_id, from = %from, "resumed: the new credential is read back from a vault this run wrote");
                    self.value = Some((run.run_id.clone(), value));
                }
                Next::RollOut { versions } => {
                    if run.phase != RunPhase::RollingOut {
                        run.phase = RunPhase::RollingOut;
                        run.versions = versions.clone();
                        run.rollout_id = Some(RotationRun::rollout_id_of(&run.run_id));
                        record.current = Some(run.clone());
                        self.save(&record, &mut revision).await?;
                        self.value = None;
                    }
                    return self.follow_rollout(fleet, &mut record, &mut revision, run, versions).await;
                }
                Next::Done => return Ok(()),
            }
        }
    }

    async fn follow_rollout(
        &mut self,
        fleet: &Fleet,
        record: &mut CredentialRecord,
        revision: &mut u64,
        run: RotationRun,
        versions: std::collections::BTreeMap<String, String>,
    ) -> Result<(), RotationError> {
        let rollout_id = RotationRun::rollout_id_of(&run.run_id);
        let start = RolloutRequest::StartRotation {
            rollout_id: rollout_id.clone(),
            file: Box::new(fleet.file.clone()),
            rotation: RotationPlan { run_id: run.run_id.clone(), versions },
            requested_by: run.requested_by.clone(),
        };
        match self.rollout_request(&start).await? {
            RolloutReply::Started { .. } => {}
            RolloutReply::Refused { code, message } => {
                let err = RotationError::new("rollout_refused", format!("{code}: {message}"));
                return self.fail(record, revision, run, err, true).await;
            }
            other => return Err(RotationError::new("rollout_reply", format!("unexpected reply {other:?}"))),
        }
        self.crash(CrashPoint::AfterRolloutStart);
        let status = match self.rollout_request(&RolloutRequest::Status { rollout_id: rollout_id.clone() }).await? {
            RolloutReply::Status { status, .. } => status,
            other => return Err(RotationError::new("rollout_reply", format!("unexpected reply {other:?}"))),
        };
        let unconfirmed: Vec<String> = status
            .clusters
            .iter()
            .filter(|cluster| {
                !matches!(
                    cluster.status,
                    gmsa::rollout::ClusterStatus::Succeeded | gmsa::rollout::ClusterStatus::Unchanged
                )
            })
            .map(|cluster| cluster.cluster.clone())
            .collect();
        record.unconfirmed = unconfirmed;
        match &status.phase {
            Phase::Completed if record.unconfirmed.is_empty() => {
                let now = self.now();
                let mut run = run;
                run.phase = RunPhase::Completed;
                run.finished_at = Some(now);
                info!(run_id = %run.run_id, user = %run.target_user, "rotation completed; the user is active");
                record.active_user = Some(run.target_user.clone());
                record.rotated_at = Some(now);
                record.last_run_at = Some(now);
                record.current = Some(run);
                record.archive_current();
                record.reschedule();
                self.save(record, revision).await
            }
            Phase::Completed | Phase::Halted { .. } | Phase::Aborted { .. } => {
                let reason = match &status.phase {
                    Phase::Halted { reason } => format!("the rollout {rollout_id} halted: {reason}"),
                    Phase::Aborted { by } => format!("the rollout {rollout_id} was aborted by {by}"),
                    _ => format!("the rollout {rollout_id} completed with unconfirmed clusters"),
                };
                let err = RotationError::new("rollout_halted", reason);
                self.fail(record, revision, run, err, true).await
            }
            _ => {
                record.current = Some(run);
                self.save(record, revision).await
            }
        }
    }

    /// Ends the run as failed. `written`: the vaults hold the target user's new credential (a
    /// working one), so it is the active user now; otherwise the previous user stays active.
    async fn fail(
        &mut self,
        record: &mut CredentialRecord,
        revision: &mut u64,
        mut run: RotationRun,
        err: RotationError,
        written: bool,
    ) -> Result<(), RotationError> {
        let now = self.now();
        warn!(run_id = %run.run_id, code = %err.code, message = %err.message, "rotation failed; Key Vault names a working user");
        run.phase = RunPhase::Failed { code: err.code.clone(), message: err.message.clone() };
        run.finished_at = Some(now);
        record.active_user = Some(if written { run.target_user.clone() } else { run.previous_user.clone() });
        if written {
            record.rotated_at = Some(now);
        }
        record.last_run_at = Some(now);
        record.current = Some(run);
        record.archive_current();
        record.reschedule();
        self.value = None;
        self.save(record, revision).await
    }

    async fn rollout_request(&self, request: &RolloutRequest) -> Result<RolloutReply, RotationError> {
        crate::rollout_verbs::request(&self.bus, request)
            .await
            .map_err(|err| RotationError::new("rollout_unreachable", format!("{err:#}")))
    }
}
