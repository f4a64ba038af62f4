//! Scenario tests of planning and of the engine: each feeds events and asserts on the actions.

use super::*;
use proto::CommandKind::{self, *};
use proto::rollout::RolloutFile;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

pub(super) const T0: OffsetDateTime = datetime!(2026-11-23 10:00 UTC); // a Monday
pub(super) const SUB_A: &str = "00000000-0000-0000-0000-00000000000a";
pub(super) const SUB_VAULT: &str = "00000000-0000-0000-0000-000000000001";

pub(super) fn mk_member(cluster: &str, labels: &[(&str, &str)], subscription: &str) -> Member {
    Member {
        cluster: cluster.to_string(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        subscription: subscription.to_string(),
    }
}

/// `n` clusters `aks-00 … aks-{n-1}` in subscription A, labelled `region=eu` or `us` alternately.
pub(super) fn mk_fleet(n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| mk_member(&format!("aks-{i:02}"), &[("region", if i % 2 == 0 { "eu" } else { "us" })], SUB_A))
        .collect()
}

pub(super) fn mk_file(strategy: Value) -> RolloutFile {
    serde_json::from_value(json!({
        "name": "gmsa-test",
        "setup": {
            "dns_server": "10.1.0.4",
            "root_domain": "contoso.com",
            "vault": {"subscription_id": SUB_VAULT, "resource_group": "rg-gmsa", "name": "contosoGmsaVault"},
            "identity": {"type": "kubelet"},
            "credspec": {"spec_name": "aks-gmsa-spec", "gmsa_account": "WebApp01"},
            "validate": false
        },
        "strategy": strategy
    }))
    .unwrap()
}

/// A canary of one, then the rest with the given concurrency and budget.
pub(super) fn mk_strategy(max_concurrency: Value, failure_budget: Value) -> Value {
    json!({
        "stages": [
            {"name": "canary", "count": 1},
            {"name": "wave-1", "max_concurrency": max_concurrency, "failure_budget": failure_budget}
        ],
        "arm_budget": {"burst": 200, "per_sec": 10}
    })
}

fn mk_rollout(file: &RolloutFile, fleet: &[Member]) -> (RolloutState, Vec<Action>) {
    let plan = plan(file, fleet).unwrap_or_else(|err| panic!("{err}"));
    RolloutState::start("r1", plan, T0)
}

fn sends(actions: &[Action]) -> Vec<(String, CommandKind)> {
    (actions.iter())
        .filter_map(|action| match action {
            Action::Send { cluster, step, .. } => Some((cluster.clone(), *step)),
            _ => None,
        })
        .collect()
}

fn sent(cluster: &str, step: CommandKind) -> (String, CommandKind) {
    (cluster.to_string(), step)
}

fn finish(state: &mut RolloutState, cluster: &str, step: CommandKind, outcome: StepResult) -> Vec<Action> {
    let now = state.last_now;
    state.handle(Event::StepFinished { cluster: cluster.into(), step, outcome }, now)
}

fn fail(state: &mut RolloutState, cluster: &str, step: CommandKind) -> Vec<Action> {
    finish(state, cluster, step, StepResult::Failed { code: "arm_error".into(), message: "boom".into() })
}

/// Answers every step of `cluster` with `changed`, returning every action along the way.
fn run_cluster(state: &mut RolloutState, cluster: &str) -> Vec<Action> {
    let mut actions = Vec::new();
    while let Some(flight) = state.clusters[cluster].in_flight.clone() {
        actions.extend(finish(state, cluster, flight.step, StepResult::Changed));
    }
    actions
}

#[test]
fn plan_assigns_selector_stages_first_then_counts_in_cluster_order() {
    let file = mk_file(json!({"stages": [
        {"name": "canary", "count": 1},
        {"name": "us", "selector": "region=us"},
        {"name": "half", "percent": 50},
        {"name": "rest"}
    ]}));
    let plan = plan(&file, &mk_fleet(8)).unwrap();
    assert_eq!(plan.stages[0], ["aks-00"]);
    assert_eq!(plan.stages[1], ["aks-01", "aks-03", "aks-05", "aks-07"]);
    assert_eq!(plan.stages[2], ["aks-02", "aks-04"]); // ⌈50 % of 3⌉
    assert_eq!(plan.stages[3], ["aks-06"]);
}

#[test]
fn plan_refuses_overlaps_and_unassigned_clusters_by_name() {
    let overlap = mk_file(json!({"stages": [
        {"name": "eu", "selector": "region=eu"},
        {"name": "first", "selector": "region in (eu,us)"}
    ]}));
    let err = plan(&overlap, &mk_fleet(2)).unwrap_err().to_string();
    assert!(err.contains("aks-00") && err.contains("(eu)") && err.contains("(first)"), "{err}");
    let partial = mk_file(json!({"stages": [{"name": "eu", "selector": "region=eu"}]}));
    assert_eq!(
        plan(&partial, &mk_fleet(4)).unwrap_err(),
        PlanError::Unassigned { clusters: vec!["aks-01".into(), "aks-03".into()] }
    );
    let mut twice = mk_fleet(2);
    twice.push(mk_member("aks-01", &[], SUB_A));
    assert!(matches!(plan(&partial, &twice), Err(PlanError::DuplicateCluster { .. })));
}

#[test]
fn plan_names_the_override_and_the_cluster_it_broke() {
    let mut file = mk_file(json!({"stages": [{"name": "all"}]}));
    file.overrides = serde_json::from_value(json!([
        {"selector": "region=us", "set": {"secret_name": "other-secret"}},
        {"selector": "region=eu", "set": {"root_domain": "fabrikam.com"}},
        {"selector": "region=eu", "set": {"dns_server": "dc1.contoso.com"}}
    ]))
    .unwrap();
    let err = plan(&file, &mk_fleet(2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "overrides[2].set.dns_server: not an IPv4 address (\"dc1.contoso.com\") (cluster aks-00)"
    );
    file.overrides[2].set.dns_server = Some("10.9.0.4".into());
    let plan = plan(&file, &mk_fleet(2)).unwrap();
    let eu = plan.setup_of("aks-00").unwrap();
    assert_eq!((eu.dns_server.as_deref(), eu.root_domain.as_deref()), (Some("10.9.0.4"), Some("fabrikam.com")));
    assert_eq!(plan.setup_of("aks-01").unwrap().secret_name, "other-secret");
    // Selector and cron syntax are checked too, naming the field.
    let mut bad = mk_file(json!({"stages": [{"name": "all", "selector": "region in eu"}]}));
    assert!(validate(&bad).unwrap_err().field.starts_with("strategy.stages[0].selector"));
    bad.strategy.stages[0].selector = None;
    bad.strategy.maintenance_windows =
        serde_json::from_value(json!([{"selector": "", "cron": "0 25 * * *", "duration_secs": 60}])).unwrap();
    let err = validate(&bad).unwrap_err();
    assert_eq!(err.field, "strategy.maintenance_windows[0].cron");
    assert!(err.rule.contains("hour field"), "{err}");
}

#[test]
fn a_cluster_runs_its_steps_in_order_and_succeeds() {
    let mut file = mk_file(mk_strategy(json!(1), json!(0)));
    file.setup.validate = true;
    file.setup.run_workload = true;
    let (mut state, actions) = mk_rollout(&file, &mk_fleet(1));
    assert_eq!(actions[0], Action::StageStarted { stage: "canary".into() });
    assert_eq!(sends(&actions), [sent("aks-00", EnableGmsa)]);
    let mut steps = vec![EnableGmsa];
    loop {
        let step = *steps.last().unwrap();
        let actions = finish(&mut state, "aks-00", step, StepResult::Changed);
        match sends(&actions).as_slice() {
            [(_, next)] => steps.push(*next),
            [] => break,
            more => panic!("{more:?}"),
        }
    }
    assert_eq!(steps, [EnableGmsa, GrantIdentity, ApplyCredspec, ValidateCredspec, Verify]);
    assert_eq!(state.clusters["aks-00"].status, ClusterStatus::Succeeded);
    // The empty wave still passes through, and the rollout completes.
    assert_eq!(state.phase, Phase::Completed);
}

#[test]
fn canary_failure_halts_before_wave_1() {
    let (mut state, _) = mk_rollout(&mk_file(mk_strategy(json!(10), json!(5))), &mk_fleet(5));
    let actions = fail(&mut state, "aks-00", EnableGmsa);
    assert!(
        actions.iter().any(|action| matches!(action, Action::Halted { reason } if reason.contains("stage canary")))
    );
    assert!(sends(&actions).is_empty());
    let later = state.handle(Event::Tick, T0 + Duration::days(1));
    assert!(sends(&later).is_empty(), "no wave-1 cluster is ever sent anything");
    assert!(matches!(state.phase, Phase::Halted { .. }));
    let view = status(&state, T0);
    assert!(view.waiting[0].starts_with("halted: stage canary"), "{:?}", view.waiting);
    assert_eq!(view.stages[1].counts.pending, 4);
    assert_eq!(retry_plan(&state).clusters.keys().collect::<Vec<_>>(), ["aks-00"]);
}

#[test]
fn budget_exceeded_mid_wave_halts_lets_in_flight_clusters_finish_and_starts_none() {
    let (mut state, _) = mk_rollout(&mk_file(mk_strategy(json!(3), json!(1))), &mk_fleet(8));
    run_cluster(&mut state, "aks-00");
    let wave: Vec<String> =
        state.clusters.iter().filter(|(_, c)| c.in_flight.is_some()).map(|(k, _)| k.clone()).collect();
    assert_eq!(wave, ["aks-01", "aks-02", "aks-03"]);
    // One failure is within the budget: another cluster takes its place.
    assert_eq!(sends(&fail(&mut state, "aks-01", EnableGmsa)), [sent("aks-04", EnableGmsa)]);
    // The second exceeds it: halt, and nothing new starts.
    let actions = fail(&mut state, "aks-02", EnableGmsa);
    assert!(actions.iter().any(|action| matches!(action, Action::Halted { .. })));
    assert!(sends(&actions).is_empty());
    // Clusters in flight run their remaining steps to the end.
    let actions = run_cluster(&mut state, "aks-03");
    assert!(sends(&actions).iter().all(|(cluster, _)| cluster == "aks-03"));
    assert_eq!(state.clusters["aks-03"].status, ClusterStatus::Succeeded);
    run_cluster(&mut state, "aks-04");
    assert!(sends(&state.handle(Event::Tick, T0 + Duration::hours(2))).is_empty());
    assert_eq!(state.clusters["aks-05"].status, ClusterStatus::Pending);
    let mut retry: Vec<String> = retry_plan(&state).clusters.into_keys().collect();
    retry.sort();
    assert_eq!(retry, ["aks-01", "aks-02"]);
    assert_eq!(changed_clusters(&state), ["aks-00", "aks-03", "aks-04"]);
}

#[test]
fn approval_gate_holds_until_approved_and_soak_is_respected() {
    let mut file = mk_file(mk_strategy(json!(2), json!(0)));
    file.strategy.stages[0].approval_after = true;
    file.strategy.stages[0].soak_secs = 600;
    let (mut state, _) = mk_rollout(&file, &mk_fleet(3));
    let actions = run_cluster(&mut state, "aks-00");
    assert!(actions.contains(&Action::StageSoaking { stage: "canary".into(), until: T0 + Duration::minutes(10) }));
    assert!(sends(&state.handle(Event::Tick, T0 + Duration::minutes(9))).is_empty());
    let gate = Gate { stage: "canary".into(), when: GateWhen::After };
    let actions = state.handle(Event::Tick, T0 + Duration::minutes(10));
    assert_eq!(actions, [Action::AwaitingApproval { gate: gate.clone() }]);
    assert!(sends(&state.handle(Event::Tick, T0 + Duration::days(3))).is_empty());
    // Approving another gate changes nothing.
    let wrong = Gate { stage: "wave-1".into(), when: GateWhen::Before };
    let actions = state.handle(Event::Approve { gate: wrong, by: "ops".into() }, T0 + Duration::days(3));
    assert!(matches!(actions.as_slice(), [Action::Ignored { .. }]));
    let actions = state.handle(Event::Approve { gate, by: "alice".into() }, T0 + Duration::days(3));
    assert!(actions.contains(&Action::StageCompleted { stage: "canary".into() }));
    assert_eq!(sends(&actions), [sent("aks-01", EnableGmsa), sent("aks-02", EnableGmsa)]);
    assert_eq!(state.stages[0].approved_after_by.as_deref(), Some("alice"));
}

#[test]
fn pause_stops_new_starts_and_resume_continues() {
    let (mut state, _) = mk_rollout(&mk_file(mk_strategy(json!(1), json!(0))), &mk_fleet(3));
    state.handle(Event::Pause { by: "ops".into() }, T0);
    // The started cluster goes on; the next one does not start.
    let actions = run_cluster(&mut state, "aks-00");
    assert!(sends(&actions).iter().all(|(cluster, _)| cluster == "aks-00"));
    assert!(actions.contains(&Action::StageStarted { stage: "wave-1".into() }));
    assert!(state.clusters.values().all(|c| c.in_flight.is_none()));
    assert_eq!(status(&state, T0).waiting, ["paused by ops"]);
    let actions = state.handle(Event::Resume { by: "ops".into() }, T0);
    assert_eq!(sends(&actions), [sent("aks-01", EnableGmsa)]);
}

#[test]
fn abort_skips_the_rest_and_in_flight_steps_finish() {
    let (mut state, _) = mk_rollout(&mk_file(mk_strategy(json!(2), json!(0))), &mk_fleet(4));
    run_cluster(&mut state, "aks-00");
    let actions = state.handle(Event::Abort { by: "bob".into() }, T0);
    assert!(actions.contains(&Action::Aborted { by: "bob".into() }));
    assert_eq!(state.clusters["aks-03"].status, ClusterStatus::Skipped);
    // aks-01's step in flight returns; no further step is sent and it ends skipped.
    let actions = finish(&mut state, "aks-01", EnableGmsa, StepResult::Changed);
    assert!(sends(&actions).is_empty());
    assert_eq!(state.clusters["aks-01"].status, ClusterStatus::Skipped);
    assert_eq!(changed_clusters(&state), ["aks-00", "aks-01"]);
    let view = status(&state, T0);
    assert_eq!(view.stages[1].counts.skipped, 2);
    assert_eq!(view.stages[1].counts.running, 1);
}

#[test]
fn a_cluster_outside_its_window_waits_and_starts_when_it_opens() {
    let mut file = mk_file(json!({"stages": [{"name": "all", "max_concurrency": 2, "cluster_deadline_secs": 86400}]}));
    file.strategy.maintenance_windows =
        serde_json::from_value(json!([{"selector": "region=eu", "cron": "0 22 * * *", "duration_secs": 7200}]))
            .unwrap();
    let (mut state, actions) = mk_rollout(&file, &mk_fleet(3));
    // aks-00 and aks-02 are in eu, outside the window at 10:00; aks-01 (us) has no window.
    assert_eq!(sends(&actions), [sent("aks-01", EnableGmsa)]);
    assert_eq!(state.clusters["aks-00"].status, ClusterStatus::WaitingWindow);
    let why = state.clusters["aks-00"].why.clone().unwrap();
    assert!(why.contains("2026-11-23 22:00"), "{why}");
    assert!(sends(&state.handle(Event::Tick, T0 + Duration::hours(11))).is_empty());
    let actions = state.handle(Event::Tick, datetime!(2026-11-23 22:00 UTC));
    assert_eq!(sends(&actions), [sent("aks-00", EnableGmsa)], "one slot is free");
}

#[test]
fn arm_budget_limits_sends_refunds_unchanged_and_honours_429() {
    let file = mk_file(json!({
        "stages": [{"name": "all", "max_concurrency": 10}],
        "arm_budget": {"burst": 2, "per_sec": 1}
    }));
    let (mut state, actions) = mk_rollout(&file, &mk_fleet(4));
    assert_eq!(sends(&actions), [sent("aks-00", EnableGmsa), sent("aks-01", EnableGmsa)]);
    assert!(state.clusters["aks-02"].why.as_deref().unwrap().contains("ARM write budget"));
    // An unchanged step gives its token back: aks-00's grant (vault subscription) goes out, and
    // the refunded token of subscription A starts aks-02.
    let actions = finish(&mut state, "aks-00", EnableGmsa, StepResult::Unchanged);
    assert_eq!(sends(&actions), [sent("aks-00", GrantIdentity), sent("aks-02", EnableGmsa)]);
    // 429 on subscription A: nothing for A until Retry-After, although tokens refill meanwhile.
    let throttle = Event::ArmThrottled { subscription: SUB_A.into(), retry_after_secs: 30 };
    state.handle(throttle, T0);
    finish(&mut state, "aks-01", EnableGmsa, StepResult::Changed);
    assert!(sends(&state.handle(Event::Tick, T0 + Duration::seconds(29))).is_empty());
    assert_eq!(sends(&state.handle(Event::Tick, T0 + Duration::seconds(30))), [sent("aks-03", EnableGmsa)]);
}

#[test]
fn a_cluster_that_never_answers_times_out_at_its_deadline() {
    let mut file = mk_file(mk_strategy(json!(1), json!(0)));
    file.strategy.stages[0].cluster_deadline_secs = 300;
    let (mut state, actions) = mk_rollout(&file, &mk_fleet(2));
    let Action::Send { deadline, .. } = &actions[1] else { panic!("{actions:?}") };
    assert_eq!(*deadline, T0 + Duration::minutes(5));
    assert!(state.handle(Event::Tick, T0 + Duration::seconds(299)).is_empty());
    let actions = state.handle(Event::Tick, T0 + Duration::minutes(5));
    assert!(actions.contains(&Action::ClusterFinished { cluster: "aks-00".into(), status: ClusterStatus::TimedOut }));
    assert!(matches!(state.phase, Phase::Halted { .. }));
    // A late result changes nothing but is remembered for rollback.
    let late = finish(&mut state, "aks-00", EnableGmsa, StepResult::Changed);
    assert!(matches!(late.as_slice(), [Action::Ignored { .. }]));
    assert_eq!(state.clusters["aks-00"].status, ClusterStatus::TimedOut);
    assert_eq!(changed_clusters(&state), ["aks-00"]);
}

#[test]
fn foreign_and_redelivered_results_are_ignored() {
    let (mut state, _) = mk_rollout(&mk_file(mk_strategy(json!(1), json!(0))), &mk_fleet(2));
    let actions = finish(&mut state, "aks-99", EnableGmsa, StepResult::Changed);
    assert_eq!(actions, [Action::Ignored { cluster: Some("aks-99".into()), reason: "not in this rollout".into() }]);
    finish(&mut state, "aks-00", EnableGmsa, StepResult::Changed);
    let before = state.clone();
    let again = finish(&mut state, "aks-00", EnableGmsa, StepResult::Changed);
    assert!(matches!(again.as_slice(), [Action::Ignored { .. }]));
    assert_eq!(state, before);
}

#[test]
fn command_ids_are_deterministic_and_resend_repeats_them() {
    let (state, actions) = mk_rollout(&mk_file(mk_strategy(json!(1), json!(0))), &mk_fleet(2));
    let (key, id) = state.step_key("aks-00", EnableGmsa);
    assert_eq!(key, "r1/aks-00/enable-gmsa");
    assert_eq!(id, proto::CommandId::for_rollout("r1", "aks-00/enable-gmsa"));
    assert_eq!(sends(&state.resend_in_flight()), sends(&actions));
    assert_eq!(state.resend_in_flight()[0], actions[1]);
}

#[test]
fn the_example_rollout_file_parses_validates_and_plans() {
    let text = include_str!("../../../deploy/rollout.example.yaml");
    let file: RolloutFile = serde_yaml::from_str(text).unwrap();
    validate(&file).unwrap_or_else(|err| panic!("{err}"));
    let central = file.setup.central.as_ref().expect("the example documents stage 0");
    assert_eq!((central.domain_user.as_str(), central.reset_existing_user_password), ("gmsa-fleet-user", false));
    let fleet: Vec<Member> = (0..10)
        .map(|i| {
            let region = if i < 4 { "westeurope" } else { "eastus" };
            mk_member(&format!("aks-{i:02}"), &[("region", region), ("env", "prod")], SUB_A)
        })
        .collect();
    let plan = plan(&file, &fleet).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(plan.stages.iter().map(Vec::len).collect::<Vec<_>>(), [1, 3, 6]);
    assert_eq!(plan.setup_of("aks-00").unwrap().dns_server.as_deref(), Some("10.2.0.4"));
    assert_eq!(plan.setup_of("aks-09").unwrap().dns_server.as_deref(), Some("10.1.0.4"));
    assert!(plan.clusters.values().all(|cluster| cluster.windows == [0]));
}
