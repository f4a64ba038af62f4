//! The rollout state machine: [`RolloutState::handle`] takes an [`Event`] and the current time and
//! returns the [`Action`]s the driver must carry out. No I/O and no clock: `now` comes with every
//! event, so a test can replay any order of events and any passage of time.
//!
//! # Expected flow
//! 1. The driver plans (`plan::plan`), calls [`RolloutState::start`], persists the state, then
//!    carries out the actions (`Send` → publish the command built from `plan.setup_of(cluster)`).
//! 2. On every result, operator verb, ARM 429 and on a periodic timer (`Tick`), it calls
//!    `handle`, persists the state, then carries out the actions.
//! 3. After a crash it loads the state and calls [`RolloutState::resend_in_flight`]: the commands
//!    carry the same ids, so the bus and the agents deduplicate them.
//!
//! # Guarantees
//! - A stage never has more clusters `running` than its resolved `max_concurrency`; one stage
//!   runs at a time; a cluster has at most one step in flight and runs its steps in order.
//! - Stage k+1 starts only after every cluster of stage k is terminal, the soak has passed and
//!   both approvals (after k, before k+1) were given.
//! - When a stage's failed + timed-out clusters exceed its failure budget the rollout halts with
//!   the reason: no cluster starts afterwards; clusters already started run their remaining steps
//!   (a cluster is the unit of change, as with maintenance windows).
//! - Pause stops new cluster starts (started clusters go on); abort stops them, marks every
//!   cluster not started `skipped`, and a started one `skipped` once its step in flight returns.
//! - ARM-writing steps (`enable-gmsa`, `grant-identity`) are sent only with a token of every
//!   subscription they write to (see `budget.rs` for the accounting and what it proves).
//! - A step not answered by its deadline makes the cluster `timed_out` (a failure); a result for
//!   a step that is not in flight (redelivery, late result) changes nothing except that a late
//!   `changed` is remembered for rollback.
//! - The same state and the same events give the same actions, also across serialization.
//!
//! # Assumptions
//! - Membership is frozen: a result for a cluster outside the plan is ignored (`Ignored`).
//! - Each step is sent once per rollout; a retry is a new rollout (a new `rollout_id`, so new
//!   command ids) over [`retry_plan`](super::status::retry_plan).
//!
//! # Caveats
//! - A window gates the *start* of a cluster; a cluster started late in its window runs on after
//!   it closes.
//! - The state holds every member; for fleets of tens of thousands of clusters its serialized
//!   size is in megabytes, above NATS KV's default value size.

use super::budget::TokenBucket;
use super::plan::Plan;
use super::state::*;
use super::window::{self, WindowGate};
use proto::command::IdentityChoice;
use proto::{CommandId, CommandKind};
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};

fn steps_of(plan: &Plan) -> Vec<CommandKind> {
    if plan.rotation.is_some() {
        return vec![CommandKind::RotateCredential];
    }
    let mut steps = vec![CommandKind::EnableGmsa, CommandKind::GrantIdentity, CommandKind::ApplyCredspec];
    if plan.setup.validate {
        steps.push(CommandKind::ValidateCredspec);
    }
    if plan.setup.run_workload {
        steps.push(CommandKind::Verify);
    }
    steps
}

fn seconds(secs: u64) -> Duration {
    Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

impl RolloutState {
    /// A new rollout over `plan`, and the first actions (the first stage starting, or its gate).
    pub fn start(rollout_id: impl Into<String>, plan: Plan, now: OffsetDateTime) -> (RolloutState, Vec<Action>) {
        let stages = (plan.strategy.stages.iter().zip(&plan.stages))
            .map(|(stage, members)| StageState {
                phase: StagePhase::Pending,
                max_concurrency: stage.max_concurrency.of_ceil(members.len()).max(1),
                failure_budget: stage.failure_budget.of_floor(members.len()),
                approved_before_by: None,
                approved_after_by: None,
                soak_until: None,
            })
            .collect();
        let clusters = (plan.clusters.iter())
            .map(|(cluster, planned)| {
                let state = ClusterState {
                    stage: planned.stage,
                    status: ClusterStatus::Pending,
                    next_step: 0,
                    in_flight: None,
                    changed: Vec::new(),
                    unchanged: Vec::new(),
                    why: None,
                    failure: None,
                };
                (cluster.clone(), state)
            })
            .collect();
        let mut state = RolloutState {
            rollout_id: rollout_id.into(),
            steps: steps_of(&plan),
            plan,
            phase: Phase::Running,
            paused_by: None,
            current_stage: 0,
            stages,
            clusters,
            buckets: BTreeMap::new(),
            last_now: now,
        };
        let actions = state.handle(Event::Tick, now);
        (state, actions)
    }

    /// Applies one event at `now` and returns what the driver must do.
    ///
    /// Order within one call: deadlines that passed expire, the event applies, then the rollout
    /// advances as far as it can (stage transitions, steps sent, clusters started).
    pub fn handle(&mut self, event: Event, now: OffsetDateTime) -> Vec<Action> {
        let now = now.max(self.last_now);
        self.last_now = now;
        let mut actions = Vec::new();
        self.expire_deadlines(now, &mut actions);
        match event {
            Event::Tick => {}
            Event::StepFinished { cluster, step, outcome } => self.step_finished(cluster, step, outcome, &mut actions),
            Event::Approve { gate, by } => self.approve(gate, by, &mut actions),
            Event::Pause { by } => {
                if self.phase == Phase::Running && self.paused_by.is_none() {
                    self.paused_by = Some(by.clone());
                    actions.push(Action::Paused { by });
                } else {
                    actions.push(ignored(None, "the rollout is not running or already paused"));
                }
            }
            Event::Resume { by } => {
                if self.paused_by.take().is_some() {
                    actions.push(Action::Resumed { by });
                } else {
                    actions.push(ignored(None, "the rollout is not paused"));
                }
            }
            Event::Abort { by } => self.abort(by, &mut actions),
            Event::ArmThrottled { subscription, retry_after_secs } => {
                let budget = self.plan.strategy.arm_budget;
                let bucket = self.buckets.entry(subscription).or_insert_with(|| TokenBucket::new(budget, now));
                bucket.refill(now);
                bucket.throttle(now, retry_after_secs);
            }
        }
        self.advance(now, &mut actions);
        actions
    }

    /// `Send` again for every step in flight, with the same ids (after a crash, or when the driver
    /// is unsure a publish happened). Changes nothing.
    pub fn resend_in_flight(&self) -> Vec<Action> {
        (self.clusters.iter())
            .filter_map(|(cluster, state)| state.in_flight.as_ref().map(|flight| send_action(cluster, flight)))
            .collect()
    }

    /// The key and command id of one cluster's step in this rollout: the same inputs, the same id.
    pub fn step_key(&self, cluster: &str, step: CommandKind) -> (String, CommandId) {
        let key = format!("{}/{cluster}/{step}", self.rollout_id);
        (key, CommandId::for_rollout(&self.rollout_id, &format!("{cluster}/{step}")))
    }

    fn expire_deadlines(&mut self, now: OffsetDateTime, actions: &mut Vec<Action>) {
        let members = self.plan.stages.get(self.current_stage).cloned().unwrap_or_default();
        for cluster in members {
            let state = self.clusters.get_mut(&cluster).expect("stage members are clusters");
            let Some(flight) = state.in_flight.as_ref().filter(|flight| flight.deadline <= now) else {
                continue;
            };
            let flight = flight.clone();
            state.in_flight = None;
            state.status = ClusterStatus::TimedOut;
            let message = format!("no result for {} by its deadline {}", flight.step, flight.deadline);
            state.why = Some(message.clone());
            state.failure = Some(Failure { step: flight.step, code: "timed_out".into(), message });
            for subscription in &flight.reserved {
                if let Some(bucket) = self.buckets.get_mut(subscription) {
                    bucket.spend();
                }
            }
            actions.push(Action::ClusterFinished { cluster, status: ClusterStatus::TimedOut });
            self.check_failure_budget(actions);
        }
    }

    fn step_finished(&mut self, cluster: String, step: CommandKind, outcome: StepResult, actions: &mut Vec<Action>) {
        let Some(state) = self.clusters.get_mut(&cluster) else {
            actions.push(ignored(Some(cluster), "not in this rollout"));
            return;
        };
        let Some(flight) = state.in_flight.take_if(|flight| flight.step == step) else {
            // A step that timed out may still have written: remember it for rollback.
            let timed_out_here = state.status == ClusterStatus::TimedOut
                && state.failure.as_ref().is_some_and(|failure| failure.step == step);
            if timed_out_here && outcome == StepResult::Changed && !state.changed.contains(&step) {
                state.changed.push(step);
            }
            actions.push(ignored(Some(cluster), &format!("{step} is not in flight (a redelivered or late result)")));
            return;
        };
        for subscription in &flight.reserved {
            if let Some(bucket) = self.buckets.get_mut(subscription) {
                match outcome {
                    StepResult::Unchanged => bucket.refund(),
                    _ => bucket.spend(),
                }
            }
        }
        match outcome {
            StepResult::Failed { code, message } => {
                state.status = ClusterStatus::Failed;
                state.why = Some(format!("{step} failed: {code}: {message}"));
                state.failure = Some(Failure { step, code, message });
                actions.push(Action::ClusterFinished { cluster, status: ClusterStatus::Failed });
                self.check_failure_budget(actions);
                return;
            }
            StepResult::Changed => state.changed.push(step),
            StepResult::Unchanged => state.unchanged.push(step),
        }
        state.next_step += 1;
        state.why = None;
        let status = if state.next_step == self.steps.len() {
            if state.changed.is_empty() { ClusterStatus::Unchanged } else { ClusterStatus::Succeeded }
        } else if let Phase::Aborted { by } = &self.phase {
            state.why = Some(format!("aborted by {by} after {step}"));
            ClusterStatus::Skipped
        } else {
            return;
        };
        state.status = status;
        actions.push(Action::ClusterFinished { cluster, status });
    }

    /// Halts when the current stage's failures exceed its budget (once).
    fn check_failure_budget(&mut self, actions: &mut Vec<Action>) {
        if self.phase != Phase::Running {
            return;
        }
        let index = self.current_stage;
        let failed: Vec<&String> =
            (self.plan.stages[index].iter()).filter(|cluster| self.clusters[*cluster].status.is_failure()).collect();
        let budget = self.stages[index].failure_budget;
        if failed.len() > budget {
            let name = &self.plan.strategy.stages[index].name;
            let examples: Vec<String> = (failed.iter().take(3))
                .map(|cluster| format!("{cluster}: {}", self.clusters[*cluster].why.as_deref().unwrap_or("failed")))
                .collect();
            let reason = format!(
                "stage {name}: {} cluster(s) failed or timed out, over its failure budget of {budget} ({})",
                failed.len(),
                examples.join("; ")
            );
            self.phase = Phase::Halted { reason: reason.clone() };
            actions.push(Action::Halted { reason });
        }
    }

    fn approve(&mut self, gate: Gate, by: String, actions: &mut Vec<Action>) {
        let index = self.current_stage;
        let waiting = self.plan.strategy.stages[index].name == gate.stage
            && self.phase == Phase::Running
            && matches!(
                (self.stages[index].phase, gate.when),
                (StagePhase::WaitingApprovalBefore, GateWhen::Before)
                    | (StagePhase::WaitingApprovalAfter, GateWhen::After)
            );
        if !waiting {
            let when = match gate.when {
                GateWhen::Before => "before",
                GateWhen::After => "after",
            };
            actions.push(ignored(None, &format!("the gate {when} stage {} is not waiting for approval", gate.stage)));
            return;
        }
        match gate.when {
            GateWhen::Before => self.stages[index].approved_before_by = Some(by),
            GateWhen::After => self.stages[index].approved_after_by = Some(by),
        }
    }

    fn abort(&mut self, by: String, actions: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Completed | Phase::Aborted { .. }) {
            actions.push(ignored(None, "the rollout already ended"));
            return;
        }
        self.phase = Phase::Aborted { by: by.clone() };
        self.paused_by = None;
        actions.push(Action::Aborted { by: by.clone() });
        for (cluster, state) in &mut self.clusters {
            let not_started = matches!(state.status, ClusterStatus::Pending | ClusterStatus::WaitingWindow);
            let between_steps = state.status == ClusterStatus::Running && state.in_flight.is_none();
            if not_started || between_steps {
                state.status = ClusterStatus::Skipped;
                state.why = Some(format!("aborted by {by}"));
                actions.push(Action::ClusterFinished { cluster: cluster.clone(), status: ClusterStatus::Skipped });
            }
        }
    }

    /// Moves stages forward and sends what can be sent, until nothing changes.
    fn advance(&mut self, now: OffsetDateTime, actions: &mut Vec<Action>) {
        for bucket in self.buckets.values_mut() {
            bucket.refill(now);
        }
        loop {
            if self.phase == Phase::Completed {
                return;
            }
            let index = self.current_stage;
            let definition = &self.plan.strategy.stages[index];
            let name = definition.name.clone();
            let stage = &mut self.stages[index];
            match stage.phase {
                StagePhase::Pending if definition.approval_before => {
                    stage.phase = StagePhase::WaitingApprovalBefore;
                    let gate = Gate { stage: name, when: GateWhen::Before };
                    actions.push(Action::AwaitingApproval { gate });
                }
                StagePhase::Pending => {
                    stage.phase = StagePhase::Running;
                    actions.push(Action::StageStarted { stage: name });
                }
                StagePhase::WaitingApprovalBefore if stage.approved_before_by.is_some() => {
                    stage.phase = StagePhase::Running;
                    actions.push(Action::StageStarted { stage: name });
                }
                StagePhase::Running => {
                    self.send_steps(now, actions);
                    let all_done =
                        (self.plan.stages[index].iter()).all(|cluster| self.clusters[cluster].status.is_terminal());
                    if !all_done || self.phase != Phase::Running {
                        return;
                    }
                    let soak = seconds(self.plan.strategy.stages[index].soak_secs);
                    let until = now.checked_add(soak).unwrap_or(now);
                    let stage = &mut self.stages[index];
                    stage.phase = StagePhase::Soaking;
                    stage.soak_until = Some(until);
                    if until > now {
                        actions.push(Action::StageSoaking { stage: name, until });
                    }
                }
                StagePhase::Soaking if stage.soak_until.is_none_or(|until| now >= until) => {
                    if definition.approval_after {
                        stage.phase = StagePhase::WaitingApprovalAfter;
                        let gate = Gate { stage: name, when: GateWhen::After };
                        actions.push(Action::AwaitingApproval { gate });
                    } else {
                        stage.phase = StagePhase::Complete;
                    }
                }
                StagePhase::WaitingApprovalAfter if stage.approved_after_by.is_some() => {
                    stage.phase = StagePhase::Complete;
                }
                StagePhase::Complete => {
                    actions.push(Action::StageCompleted { stage: name });
                    if index + 1 == self.stages.len() {
                        self.phase = Phase::Completed;
                        actions.push(Action::Completed);
                        return;
                    }
                    self.current_stage += 1;
                }
                StagePhase::WaitingApprovalBefore | StagePhase::Soaking | StagePhase::WaitingApprovalAfter => return,
            }
        }
    }

    /// The current stage's sends: next steps of started clusters first, then new clusters while
    /// there is room, the rollout runs and is not paused.
    fn send_steps(&mut self, now: OffsetDateTime, actions: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Aborted { .. } | Phase::Completed) {
            return;
        }
        let index = self.current_stage;
        let members = self.plan.stages[index].clone();
        for cluster in &members {
            let state = &self.clusters[cluster];
            if state.status == ClusterStatus::Running && state.in_flight.is_none() {
                self.try_send(cluster, now, actions);
            }
        }
        if self.phase != Phase::Running || self.paused_by.is_some() {
            self.refresh_budget_reasons(&members, now);
            return;
        }
        let mut running =
            members.iter().filter(|cluster| self.clusters[*cluster].status == ClusterStatus::Running).count();
        for cluster in &members {
            if running >= self.stages[index].max_concurrency {
                break;
            }
            let status = self.clusters[cluster].status;
            if !matches!(status, ClusterStatus::Pending | ClusterStatus::WaitingWindow) {
                continue;
            }
            let windows = self.plan.windows_of(cluster);
            if let WindowGate::Closed { opens_at } = window::gate(&windows.iter().collect::<Vec<_>>(), now) {
                let state = self.clusters.get_mut(cluster).expect("member");
                state.status = ClusterStatus::WaitingWindow;
                state.why = Some(match opens_at {
                    Some(at) => format!("outside its maintenance window; the next opens at {at}"),
                    None => "outside its maintenance window; none opens within a year".to_string(),
                });
                continue;
            }
            if self.try_send(cluster, now, actions) {
                self.clusters.get_mut(cluster).expect("member").status = ClusterStatus::Running;
                running += 1;
            }
        }
        self.refresh_budget_reasons(&members, now);
    }

    /// Says, for every started cluster whose next step waits for ARM budget, which budget it
    /// waits for as the buckets stand at the end of this pass — not as they stood when it was
    /// tried, before later clusters of the same pass took tokens. So the reason is a function of
    /// the state, and handling an event that changes nothing else (a redelivery) changes it not.
    fn refresh_budget_reasons(&mut self, members: &[String], now: OffsetDateTime) {
        for cluster in members {
            let state = &self.clusters[cluster];
            if state.status != ClusterStatus::Running || state.in_flight.is_some() {
                continue;
            }
            let step = self.steps[state.next_step];
            let blocked = self.arm_subscriptions(cluster, step).into_iter().find_map(|subscription| {
                let bucket = self.buckets.get(&subscription)?;
                (!bucket.has_token(now)).then(|| (subscription, bucket.next_token_at(now)))
            });
            if let Some((subscription, at)) = blocked {
                let state = self.clusters.get_mut(cluster).expect("member");
                state.why = Some(format!(
                    "{step} waits for the ARM write budget of subscription {subscription} (next token at {at})"
                ));
            }
        }
    }

    /// The subscriptions whose ARM write budget a step spends: `enable-gmsa` writes the managed
    /// cluster; `grant-identity` writes the vault's access policy (the vault's subscription) and,
    /// for a user-assigned identity, the identity and the scale sets (the cluster's).
    fn arm_subscriptions(&self, cluster: &str, step: CommandKind) -> Vec<String> {
        let planned = &self.plan.clusters[cluster];
        match step {
            CommandKind::EnableGmsa => vec![planned.subscription.clone()],
            CommandKind::GrantIdentity => {
                let setup = self.plan.setup_of(cluster).expect("member");
                let mut subscriptions = vec![setup.vault.subscription_id.clone()];
                if matches!(setup.identity, IdentityChoice::UserAssigned { .. })
                    && !subscriptions.contains(&planned.subscription)
                {
                    subscriptions.push(planned.subscription.clone());
                }
                subscriptions
            }
            _ => Vec::new(),
        }
    }

    /// Sends the cluster's next step if every budget it needs has a token; else records why not.
    fn try_send(&mut self, cluster: &str, now: OffsetDateTime, actions: &mut Vec<Action>) -> bool {
        let step = self.steps[self.clusters[cluster].next_step];
        let subscriptions = self.arm_subscriptions(cluster, step);
        let budget = self.plan.strategy.arm_budget;
        for subscription in &subscriptions {
            let bucket = self.buckets.entry(subscription.clone()).or_insert_with(|| TokenBucket::new(budget, now));
            if !bucket.has_token(now) {
                let at = bucket.next_token_at(now);
                let state = self.clusters.get_mut(cluster).expect("member");
                state.why = Some(format!(
                    "{step} waits for the ARM write budget of subscription {subscription} (next token at {at})"
                ));
                return false;
            }
        }
        for subscription in &subscriptions {
            let reserved = self.buckets.get_mut(subscription).is_some_and(|bucket| bucket.reserve(now));
            debug_assert!(reserved, "checked above");
        }
        let deadline_secs = self.plan.strategy.stages[self.clusters[cluster].stage].cluster_deadline_secs;
        let (step_key, command_id) = self.step_key(cluster, step);
        let flight = InFlight {
            step,
            step_key,
            command_id,
            sent_at: now,
            // Validated to at most 30 days, so this cannot overflow for any representable `now`
            // short of the year 9999; if it did, the step would time out at once.
            deadline: now.checked_add(seconds(deadline_secs)).unwrap_or(now),
            reserved: subscriptions,
        };
        actions.push(send_action(cluster, &flight));
        let state = self.clusters.get_mut(cluster).expect("member");
        state.in_flight = Some(flight);
        state.why = None;
        true
    }
}

fn send_action(cluster: &str, flight: &InFlight) -> Action {
    Action::Send {
        cluster: cluster.to_string(),
        step: flight.step,
        step_key: flight.step_key.clone(),
        command_id: flight.command_id.clone(),
        deadline: flight.deadline,
    }
}

fn ignored(cluster: Option<String>, reason: &str) -> Action {
    Action::Ignored { cluster, reason: reason.to_string() }
}
