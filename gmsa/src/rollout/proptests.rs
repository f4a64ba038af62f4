//! Property tests of the engine's guarantees over random fleets, strategies and event orders:
//! concurrency, stage order, gates, halting, pause and abort, one step at a time and in order,
//! the ARM write budget, redelivery, and crash-resume through serialization.

use super::tests::{SUB_VAULT, T0, mk_file, mk_member};
use super::*;
use proptest::prelude::*;
use proto::CommandKind;
use proto::rollout::RolloutFile;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use time::{Duration, OffsetDateTime};

const SUBSCRIPTIONS: [&str; 3] = [
    "00000000-0000-0000-0000-0000000000a1",
    "00000000-0000-0000-0000-0000000000a2",
    "00000000-0000-0000-0000-0000000000a3",
];

#[derive(Debug, Clone)]
enum Op {
    Advance(u16),
    Finish { pick: usize, outcome: u8 },
    Redeliver,
    Approve,
    Pause,
    Resume,
    Abort,
    Throttle { subscription: usize, secs: u8 },
    Foreign,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Mostly short steps, so the ARM budget binds; sometimes long ones, so soaks, deadlines
        // and windows pass.
        3 => (0u16..3).prop_map(Op::Advance),
        1 => (0u16..900).prop_map(Op::Advance),
        8 => (any::<usize>(), 0u8..10).prop_map(|(pick, outcome)| Op::Finish { pick, outcome }),
        1 => Just(Op::Redeliver),
        2 => Just(Op::Approve),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
        1 => Just(Op::Abort),
        1 => (0usize..3, 0u8..60).prop_map(|(subscription, secs)| Op::Throttle { subscription, secs }),
        1 => Just(Op::Foreign),
    ]
}

fn amount() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![(1u32..4).prop_map(|n| json!(n)), (10u32..=100).prop_map(|p| json!(format!("{p}%")))]
}

fn budget() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![(0u32..3).prop_map(|n| json!(n)), (0u32..=60).prop_map(|p| json!(format!("{p}%")))]
}

fn stage(index: usize, last: bool) -> impl Strategy<Value = serde_json::Value> {
    (0u8..3, 1u32..4, 10u32..=100, amount(), budget(), 0u64..300, any::<bool>(), any::<bool>(), 30u64..900).prop_map(
        move |(kind, count, percent, concurrency, failures, soak, before, after, deadline)| {
            let mut stage = json!({
                "name": format!("s{index}"),
                "max_concurrency": concurrency,
                "failure_budget": failures,
                "soak_secs": soak,
                "approval_before": before,
                "approval_after": after,
                "cluster_deadline_secs": deadline,
            });
            match (last, kind) {
                (true, _) => {}
                (false, 0) => stage["count"] = json!(count),
                (false, 1) => stage["percent"] = json!(percent),
                (false, _) if index == 0 => stage["selector"] = json!("region=us"),
                (false, _) => stage["count"] = json!(count),
            }
            stage
        },
    )
}

fn scenario() -> impl Strategy<Value = (RolloutFile, Vec<Member>, Vec<Op>, usize)> {
    let stages = (1usize..4).prop_flat_map(|n| (0..n).map(|i| stage(i, i + 1 == n)).collect::<Vec<_>>());
    let fleet = prop::collection::vec((any::<bool>(), 0usize..2), 1..12);
    (stages, fleet, 1u32..4, 1u32..3, any::<bool>(), any::<bool>(), prop::collection::vec(op(), 0..150), any::<usize>())
        .prop_map(|(stages, fleet, burst, per_sec, user_assigned, windowed, ops, split)| {
            let mut strategy = json!({"stages": stages, "arm_budget": {"burst": burst, "per_sec": per_sec}});
            if windowed {
                strategy["maintenance_windows"] =
                    json!([{"selector": "region=eu", "cron": "*/20 * * * *", "duration_secs": 300}]);
            }
            let mut file = mk_file(strategy);
            if user_assigned {
                file.setup.identity = proto::command::IdentityChoice::UserAssigned {
                    resource_group: "rg".into(),
                    name: "gmsa-id".into(),
                };
            }
            let members = (fleet.iter().enumerate())
                .map(|(i, (eu, subscription))| {
                    let region = if *eu { "eu" } else { "us" };
                    mk_member(&format!("aks-{i:02}"), &[("region", region)], SUBSCRIPTIONS[*subscription])
                })
                .collect();
            (file, members, ops, split)
        })
}

/// One ARM-writing send, for the budget replay.
struct ArmSend {
    at: OffsetDateTime,
    cluster: String,
    step: CommandKind,
    subscriptions: Vec<String>,
}

fn arm_subscriptions(state: &RolloutState, cluster: &str, step: CommandKind) -> Vec<String> {
    let setup = state.plan.setup_of(cluster).unwrap();
    let own = state.plan.clusters[cluster].subscription.clone();
    match step {
        CommandKind::EnableGmsa => vec![own],
        CommandKind::GrantIdentity => {
            let mut subscriptions = vec![setup.vault.subscription_id.clone()];
            if matches!(setup.identity, proto::command::IdentityChoice::UserAssigned { .. }) && own != SUB_VAULT {
                subscriptions.push(own);
            }
            subscriptions
        }
        _ => Vec::new(),
    }
}

/// Turns an op into an event against the live state (which cluster is in flight, which gate waits).
fn event_of(op: &Op, state: &RolloutState, last_finish: &Option<Event>) -> (Event, i64) {
    let in_flight: Vec<(&String, CommandKind)> = (state.clusters.iter())
        .filter_map(|(cluster, c)| c.in_flight.as_ref().map(|flight| (cluster, flight.step)))
        .collect();
    match op {
        Op::Advance(secs) => (Event::Tick, i64::from(*secs)),
        Op::Finish { pick, outcome } if !in_flight.is_empty() => {
            let (cluster, step) = in_flight[pick % in_flight.len()];
            let outcome = match outcome {
                0 => StepResult::Failed { code: "arm_error".into(), message: "boom".into() },
                1..=4 => StepResult::Unchanged,
                _ => StepResult::Changed,
            };
            (Event::StepFinished { cluster: cluster.clone(), step, outcome }, 0)
        }
        Op::Finish { .. } => (Event::Tick, 30),
        Op::Redeliver => (last_finish.clone().unwrap_or(Event::Tick), 0),
        Op::Approve => {
            let stage = &state.stages[state.current_stage];
            let when = match stage.phase {
                StagePhase::WaitingApprovalBefore => GateWhen::Before,
                _ => GateWhen::After,
            };
            let gate = Gate { stage: state.plan.strategy.stages[state.current_stage].name.clone(), when };
            (Event::Approve { gate, by: "prop".into() }, 0)
        }
        Op::Pause => (Event::Pause { by: "prop".into() }, 0),
        Op::Resume => (Event::Resume { by: "prop".into() }, 0),
        Op::Abort => (Event::Abort { by: "prop".into() }, 0),
        Op::Throttle { subscription, secs } => {
            let event = Event::ArmThrottled {
                subscription: SUBSCRIPTIONS[*subscription].into(),
                retry_after_secs: u64::from(*secs),
            };
            (event, 0)
        }
        Op::Foreign => {
            let event = Event::StepFinished {
                cluster: "zz-not-a-member".into(),
                step: CommandKind::EnableGmsa,
                outcome: StepResult::Changed,
            };
            (event, 0)
        }
    }
}

/// Checks every per-transition guarantee; returns the ARM-writing sends of this transition.
fn check_transition(
    before: &RolloutState,
    event: &Event,
    actions: &[Action],
    after: &RolloutState,
    now: OffsetDateTime,
    sent_steps: &mut BTreeMap<String, Vec<CommandKind>>,
) -> Vec<ArmSend> {
    let mut arm = Vec::new();
    let mut sent_now = BTreeSet::new();
    for action in actions {
        let Action::Send { cluster, step, .. } = action else { continue };
        // One step per cluster at a time, in order.
        assert!(sent_now.insert(cluster.clone()), "two sends to {cluster} at once");
        let finished_here = matches!(event, Event::StepFinished { cluster: c, .. } if c == cluster);
        assert!(
            before.clusters[cluster].in_flight.is_none() || finished_here,
            "{cluster} already had a step in flight"
        );
        let history = sent_steps.entry(cluster.clone()).or_default();
        assert_eq!(*step, after.steps[history.len()], "{cluster}'s steps out of order: {history:?} then {step}");
        history.push(*step);
        // Stage order: every earlier stage is complete.
        let stage = after.clusters[cluster].stage;
        for earlier in 0..stage {
            assert_eq!(
                after.stages[earlier].phase,
                StagePhase::Complete,
                "stage {stage} sent before stage {earlier} completed"
            );
        }
        let is_start = history.len() == 1;
        if is_start {
            // No new start while halted, paused or aborted.
            assert_eq!(after.phase, Phase::Running, "a cluster started while {:?}", after.phase);
            assert!(after.paused_by.is_none(), "a cluster started while paused");
            let definition = &after.plan.strategy.stages[stage];
            if definition.approval_before {
                assert!(after.stages[stage].approved_before_by.is_some(), "stage started without its approval");
            }
        }
        let subscriptions = arm_subscriptions(after, cluster, *step);
        if !subscriptions.is_empty() {
            arm.push(ArmSend { at: now, cluster: cluster.clone(), step: *step, subscriptions });
        }
    }
    // Concurrency, in every stage; only the current stage runs.
    for (index, members) in after.plan.stages.iter().enumerate() {
        let running = members.iter().filter(|c| after.clusters[*c].status == ClusterStatus::Running).count();
        assert!(running <= after.stages[index].max_concurrency, "stage {index}: {running} running");
        assert!(running == 0 || index == after.current_stage);
    }
    // Stage k+1 begins only after stage k completed: soaked and approved.
    for index in 1..=after.current_stage {
        let previous = &after.stages[index - 1];
        assert_eq!(previous.phase, StagePhase::Complete);
        assert!(previous.soak_until.is_some_and(|until| until <= now));
        if after.plan.strategy.stages[index - 1].approval_after {
            assert!(previous.approved_after_by.is_some());
        }
        assert!(after.plan.stages[index - 1].iter().all(|c| after.clusters[c].status.is_terminal()));
    }
    // While running, no stage's failures exceed its budget; a halt names the stage over it.
    let failures =
        |index: usize| after.plan.stages[index].iter().filter(|c| after.clusters[*c].status.is_failure()).count();
    match &after.phase {
        Phase::Running => assert!(failures(after.current_stage) <= after.stages[after.current_stage].failure_budget),
        Phase::Halted { reason } => {
            assert!(failures(after.current_stage) > after.stages[after.current_stage].failure_budget);
            assert!(reason.contains(&after.plan.strategy.stages[after.current_stage].name));
        }
        Phase::Aborted { .. } => {
            assert!(
                after
                    .clusters
                    .values()
                    .all(|c| !matches!(c.status, ClusterStatus::Pending | ClusterStatus::WaitingWindow))
            );
        }
        Phase::Completed => assert!(after.clusters.values().all(|c| c.status.is_terminal())),
    }
    arm
}

/// Replays a plain (burst, per_sec) bucket per subscription over the sends that may have written
/// (everything but steps answered `unchanged` in time): it must never go below zero.
fn check_arm_budget(state: &RolloutState, sends: &[ArmSend]) {
    let budget = state.plan.strategy.arm_budget;
    let mut buckets: BTreeMap<&str, (i128, OffsetDateTime)> = BTreeMap::new();
    for send in sends {
        if state.clusters[&send.cluster].unchanged.contains(&send.step) {
            continue;
        }
        for subscription in &send.subscriptions {
            let (level, at) = buckets.entry(subscription).or_insert((i128::from(budget.burst) * 1000, send.at));
            let elapsed_ms = (send.at - *at).whole_milliseconds();
            *level = (*level + elapsed_ms * i128::from(budget.per_sec)).min(i128::from(budget.burst) * 1000);
            *at = send.at;
            *level -= 1000;
            assert!(
                *level >= 0,
                "subscription {subscription}: more possible ARM writes than the budget at {}",
                send.at
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_keeps_its_guarantees((file, fleet, ops, split) in scenario()) {
        let plan = plan(&file, &fleet).unwrap_or_else(|err| panic!("{err}"));
        let (mut state, first) = RolloutState::start("prop", plan, T0);
        let mut sent_steps = BTreeMap::new();
        // Before the first transition nothing was in flight.
        let mut fresh = state.clone();
        fresh.clusters.values_mut().for_each(|cluster| cluster.in_flight = None);
        let mut arm = check_transition(&fresh, &Event::Tick, &first, &state, T0, &mut sent_steps);
        let mut now = T0;
        let mut last_finish = None;
        let mut history: Vec<(Event, OffsetDateTime, Vec<Action>)> = Vec::new();
        let split = split % (ops.len() + 1);
        let mut snapshot = None;
        for (index, op) in ops.iter().enumerate() {
            if index == split {
                snapshot = Some(serde_json::to_string(&state).unwrap());
            }
            let (event, advance) = event_of(op, &state, &last_finish);
            now += Duration::seconds(advance);
            let before = state.clone();
            let actions = state.handle(event.clone(), now);
            if matches!(op, Op::Redeliver) && matches!(event, Event::StepFinished { .. }) {
                // Handling the same result twice changes nothing the second time.
                prop_assert_eq!(&state, &before);
                let only_ignored = actions.iter().all(|a| matches!(a, Action::Ignored { .. }));
                prop_assert!(only_ignored, "a redelivery produced {:?}", actions);
            }
            if let Event::StepFinished { cluster, .. } = &event
                && cluster == "zz-not-a-member"
            {
                prop_assert_eq!(&state, &before);
            }
            arm.extend(check_transition(&before, &event, &actions, &state, now, &mut sent_steps));
            if matches!(event, Event::StepFinished { .. }) {
                last_finish = Some(event.clone());
            }
            history.push((event, now, actions));
        }
        check_arm_budget(&state, &arm);
        // Crash-resume: the state serialized at `split`, fed the same events, gives the same actions.
        let snapshot = snapshot.unwrap_or_else(|| serde_json::to_string(&state).unwrap());
        let mut resumed: RolloutState = serde_json::from_str(&snapshot).unwrap();
        for (event, at, actions) in &history[split.min(history.len())..] {
            prop_assert_eq!(&resumed.handle(event.clone(), *at), actions);
        }
        prop_assert_eq!(&resumed, &state);
        // Retry plans hold exactly the failed and timed-out clusters.
        let retry = retry_plan(&state);
        for (cluster, cluster_state) in &state.clusters {
            prop_assert_eq!(retry.clusters.contains_key(cluster), cluster_state.status.is_failure());
        }
    }
}
