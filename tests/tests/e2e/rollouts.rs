//! Fleet rollouts end to end over a real nats-server: the coordinator's driver (the same daemon
//! code production runs) against simulated clusters. Effects are counted where they land — the
//! Azure and Kubernetes simulators' mutation logs, or the in-memory clusters' own write logs — never
//! taken from the coordinator's reports.

use super::support::{azure_state, stored_results};
use agent::{ExecError, Executor, Progress};
use bus::Bus;
use coordinator::inventory::DeclaredCluster;
use coordinator::rollouts::api::{RolloutReply, RolloutRequest};
use gmsa::rollout::{ClusterStatus, Phase, RolloutStatus};
use proto::rollout::RolloutFile;
use proto::{CommandEnvelope, CommandKind, StepOutcome, subjects};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::nats::NatsServer;
use tests::fleet::{AgentHandle, CoordinatorHandle, spawn_agent, start_coordinator, test_settings};
use tests::memory::{MemoryExecutor, MemoryFleet, Pause};
use tests::world::SimWorld;

const WAIT: Duration = Duration::from_secs(60);

/// A rollout file: the setup every test uses (AD facts given: no stage 0), and `strategy` (YAML).
pub fn mk_file(strategy: &str) -> RolloutFile {
    tests::fleet::rollout_file("test-rollout", strategy).unwrap_or_else(|err| panic!("{err}"))
}

/// Sends a rollout request through fleetctl's client (the same one the binary uses).
pub async fn ask(bus: &Bus, request: RolloutRequest) -> RolloutReply {
    coordinator::rollout_verbs::request(bus, &request).await.unwrap()
}

pub async fn start(bus: &Bus, file: RolloutFile) -> String {
    match ask(bus, RolloutRequest::Start { file: Box::new(file), dry_run: false, requested_by: Some("test".into()) })
        .await
    {
        RolloutReply::Started { rollout_id, .. } => rollout_id,
        other => panic!("{other:?}"),
    }
}

/// Polls the rollout's status until `done` holds.
pub async fn wait_until(
    bus: &Bus,
    rollout_id: &str,
    what: &str,
    done: impl Fn(&RolloutStatus) -> bool,
) -> RolloutStatus {
    let started = Instant::now();
    loop {
        if let RolloutReply::Status { status, .. } =
            ask(bus, RolloutRequest::Status { rollout_id: rollout_id.into() }).await
        {
            if done(&status) {
                return *status;
            }
            assert!(started.elapsed() < WAIT, "{what}: {status:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn state_of(status: &RolloutStatus, cluster: &str) -> ClusterStatus {
    status
        .clusters
        .iter()
        .find(|view| view.cluster == cluster)
        .map(|view| view.status)
        .unwrap_or(ClusterStatus::Pending)
}

/// An agent's executor over an in-memory cluster that fails `fail_at` on the clusters named,
/// takes `delay` per command, and records — fleet-wide — how many commands run at once and when
/// each ARM write happened, by subscription.
#[derive(Clone)]
struct Scripted {
    inner: MemoryExecutor,
    cluster: String,
    subscription: String,
    script: Arc<Script>,
}

#[derive(Default)]
struct Script {
    fail: BTreeMap<String, CommandKind>,
    delay: Duration,
    running: AtomicUsize,
    max_running: AtomicUsize,
    /// (subscription, when, cluster, step) of every step that changed something.
    writes: Mutex<Vec<(String, Instant, String, CommandKind)>>,
}

impl Script {
    /// The ARM writes by the subscription they write in: `enable-gmsa` the cluster's, a kubelet
    /// `grant-identity` the vault's (an access-policy write on the vault), `"vault"` here.
    fn arm_writes(&self) -> Vec<(String, Instant)> {
        let writes = self.writes.lock().unwrap();
        (writes.iter())
            .filter_map(|(subscription, at, _, step)| match step {
                CommandKind::EnableGmsa => Some((subscription.clone(), *at)),
                CommandKind::GrantIdentity => Some(("vault".to_string(), *at)),
                _ => None,
            })
            .collect()
    }
}

impl Executor for Scripted {
    fn capabilities(&self) -> Vec<CommandKind> {
        CommandKind::ALL.to_vec()
    }

    async fn execute(&self, envelope: &CommandEnvelope, progress: Progress) -> Result<Vec<StepOutcome>, ExecError> {
        let now = self.script.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.script.max_running.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.script.delay).await;
        let kind = envelope.command.kind();
        let outcome = if self.script.fail.get(&self.cluster) == Some(&kind) {
            Err(ExecError::new("preflight_failed", format!("{} has no GMSACredentialSpec CRD", self.cluster)))
        } else {
            self.inner.execute(envelope, progress).await
        };
        if let Ok(steps) = &outcome
            && steps.iter().any(StepOutcome::is_changed)
        {
            self.script.writes.lock().unwrap().push((
                self.subscription.clone(),
                Instant::now(),
                self.cluster.clone(),
                kind,
            ));
        }
        self.script.running.fetch_sub(1, Ordering::SeqCst);
        outcome
    }
}

/// A coordinator and `n` in-memory clusters `m-000…`, `per_subscription` to a subscription.
struct MemoryRollout {
    _server: NatsServer,
    url: String,
    coordinator: CoordinatorHandle,
    agents: BTreeMap<String, AgentHandle>,
    fleet: MemoryFleet,
    script: Arc<Script>,
}

impl MemoryRollout {
    async fn start(n: usize, per_subscription: usize, script: Script) -> MemoryRollout {
        Self::start_with(n, per_subscription, script, coordinator::daemon::Options::default()).await
    }

    async fn start_with(
        n: usize,
        per_subscription: usize,
        script: Script,
        options: coordinator::daemon::Options,
    ) -> MemoryRollout {
        let server = NatsServer::start().unwrap();
        let url = server.url();
        let declared: Vec<DeclaredCluster> = (0..n)
            .map(|index| DeclaredCluster {
                id: format!("m-{index:03}"),
                labels: BTreeMap::from([
                    ("env".to_string(), "prod".to_string()),
                    ("subscription".to_string(), format!("s{}", index / per_subscription.max(1))),
                ]),
            })
            .collect();
        let coordinator = tests::fleet::start_coordinator_with(&url, declared.clone(), options).await.unwrap();
        let mut rollout = MemoryRollout {
            _server: server,
            url,
            coordinator,
            agents: BTreeMap::new(),
            fleet: MemoryFleet::default(),
            script: Arc::new(script),
        };
        for cluster in declared {
            rollout.spawn(&cluster.id, &cluster.labels["subscription"]).await;
        }
        rollout
    }

    async fn spawn(&mut self, cluster: &str, subscription: &str) {
        let executor = Scripted {
            inner: self.fleet.executor(cluster, Pause::None),
            cluster: cluster.to_string(),
            subscription: subscription.to_string(),
            script: self.script.clone(),
        };
        let agent = spawn_agent(&self.url, test_settings(cluster, &[]), executor).await.unwrap();
        self.agents.insert(cluster.to_string(), agent);
    }

    fn bus(&self) -> &Bus {
        &self.coordinator.bus
    }

    async fn stop(self) {
        for (_, agent) in self.agents {
            agent.stop().await.unwrap();
        }
        self.coordinator.stop().await;
    }
}

/// The clusters that got any command on the command stream.
async fn commanded(bus: &Bus, clusters: &[String]) -> BTreeSet<String> {
    let stream = bus.jetstream().get_stream(subjects::COMMAND_STREAM).await.unwrap();
    let mut found = BTreeSet::new();
    for cluster in clusters {
        if stream.direct_get_last_for_subject(subjects::command(cluster)).await.is_ok() {
            found.insert(cluster.clone());
        }
    }
    found
}

const CANARY_THEN_WAVE: &str = r#"
  stages:
    - {name: canary, count: 1, max_concurrency: 1}
    - {name: wave-1, max_concurrency: 2}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_failure_halts_the_rollout_before_any_wave_1_cluster_is_touched() {
    let server = NatsServer::start().unwrap();
    // The canary (the first cluster) has no gMSA CRD: its apply-credspec preflight fails.
    let world = SimWorld::build_with("cw", 4, 4, |index| kubesim::ClusterSeed {
        gmsa_crd: if index == 0 {
            kubesim::GmsaCrd::Absent
        } else {
            kubesim::GmsaCrd::Served { v1: true, v1alpha1: true }
        },
        ..kubesim::ClusterSeed::default()
    })
    .await
    .unwrap();
    let coordinator = start_coordinator(&server.url(), world.declared()).await.unwrap();
    let agents = world.spawn_agents(&server.url(), |cluster: &str| test_settings(cluster, &[])).await.unwrap();
    let rollout_id = start(&coordinator.bus, mk_file(CANARY_THEN_WAVE)).await;
    let halted =
        wait_until(&coordinator.bus, &rollout_id, "halted", |status| matches!(status.phase, Phase::Halted { .. }))
            .await;
    let Phase::Halted { reason } = &halted.phase else { unreachable!() };
    assert!(reason.contains("canary"), "{reason}");
    assert_eq!(state_of(&halted, "cw-000"), ClusterStatus::Failed);
    // Not one request of any kind reached a wave-1 cluster, at either simulator.
    let wave_1: Vec<&str> = ["cw-001", "cw-002", "cw-003"].into();
    for mutation in world.azure.mutations() {
        assert!(!wave_1.iter().any(|cluster| mutation.resource_id.contains(cluster)), "{mutation:?}");
    }
    for cluster in &world.clusters[1..] {
        assert!(cluster.kube.api_mutations().is_empty(), "{}: {:?}", cluster.id, cluster.kube.api_mutations());
        assert!(world.azure.gmsa_profile(&cluster.arm_id).is_none_or(|profile| profile.enabled != Some(true)));
    }
    let wave_ids: Vec<String> = wave_1.iter().map(|id| id.to_string()).collect();
    assert!(commanded(&coordinator.bus, &wave_ids).await.is_empty());
    // The canary's own steps before the failure did land (enable-gmsa), as reported.
    assert!(world.azure.gmsa_profile(&world.clusters[0].arm_id).is_some_and(|profile| profile.enabled == Some(true)));
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_budget_halts_mid_wave_in_flight_clusters_finish_and_none_starts_after() {
    // Wave of 8, two at a time, one failure tolerated; m-001, m-002 and m-006 fail apply-credspec.
    let script = Script {
        fail: ["m-001", "m-002", "m-006"].iter().map(|c| (c.to_string(), CommandKind::ApplyCredspec)).collect(),
        delay: Duration::from_millis(150),
        ..Script::default()
    };
    let fleet = MemoryRollout::start(8, 8, script).await;
    let file = mk_file("  stages:\n    - {name: wave, max_concurrency: 2, failure_budget: 1}\n");
    let rollout_id = start(fleet.bus(), file).await;
    let halted =
        wait_until(fleet.bus(), &rollout_id, "halted", |status| matches!(status.phase, Phase::Halted { .. })).await;
    // Let anything still in flight finish.
    let settled =
        wait_until(fleet.bus(), &rollout_id, "in-flight finished", |status| status.stages[0].counts.running == 0).await;
    let Phase::Halted { reason } = &halted.phase else { unreachable!() };
    assert!(reason.contains("wave"), "{reason}");
    let failed: Vec<&str> = (settled.clusters.iter())
        .filter(|view| view.status == ClusterStatus::Failed)
        .map(|view| view.cluster.as_str())
        .collect();
    assert_eq!(failed, ["m-001", "m-002"], "the second failure exceeds the budget of 1");
    // No cluster started after the halt: every cluster still pending had no start at the
    // in-memory cluster (which clusters got in before it depends on timing: with two slots, the
    // slot beside a failing cluster may finish one or two others first), and the last ones in
    // the order are among them.
    let pending: Vec<&str> = (settled.clusters.iter())
        .filter(|view| view.status == ClusterStatus::Pending)
        .map(|view| view.cluster.as_str())
        .collect();
    for cluster in &pending {
        assert_eq!(fleet.fleet.cluster(cluster).starts(), 0, "{cluster} started after the halt");
    }
    for cluster in ["m-006", "m-007"] {
        assert!(pending.contains(&cluster), "{cluster} is not pending: {settled:#?}");
    }
    // Never more than two at once, at the clusters themselves.
    assert!(fleet.script.max_running.load(Ordering::SeqCst) <= 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fleet.fleet.cluster("m-006").starts(), 0);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_gate_holds_until_approved_and_pause_resume_and_abort_do_what_they_say() {
    let script = Script { delay: Duration::from_millis(100), ..Script::default() };
    let fleet = MemoryRollout::start(6, 6, script).await;
    let file = mk_file(
        r#"
  stages:
    - {name: canary, count: 1, approval_after: true}
    - {name: wave-1, count: 2}
    - {name: wave-2, max_concurrency: 1}
"#,
    );
    let rollout_id = start(fleet.bus(), file).await;
    let waiting = wait_until(fleet.bus(), &rollout_id, "canary gate", |status| {
        status.stages[0].phase == gmsa::rollout::StagePhase::WaitingApprovalAfter
    })
    .await;
    assert!(waiting.waiting.iter().any(|why| why.contains("approv")), "{:?}", waiting.waiting);
    // Held: wave 1 does not start while the gate waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fleet.fleet.cluster("m-001").starts(), 0);
    assert!(matches!(
        ask(
            fleet.bus(),
            RolloutRequest::Approve { rollout_id: rollout_id.clone(), stage: Some("wave-1".into()), by: "op".into() }
        )
        .await,
        RolloutReply::Refused { .. }
    ));
    // Only a verified operator with the approve role may approve; the body's `by` is ignored.
    let approve =
        RolloutRequest::Approve { rollout_id: rollout_id.clone(), stage: Some("canary".into()), by: "op".into() };
    let url = fleet._server.url();
    for (name, code) in [(testkit::identity::TEST_READER, "forbidden"), (testkit::identity::TEST_OPERATE, "forbidden")]
    {
        let bus = testkit::identity::operator_bus(&url, name).await.unwrap();
        match ask(&bus, approve.clone()).await {
            RolloutReply::Refused { code: got, .. } => assert_eq!(got, code, "{name}"),
            other => panic!("{name} approved: {other:?}"),
        }
    }
    let anonymous = Bus::connect(&url, "anonymous").await.unwrap();
    assert!(matches!(ask(&anonymous, approve.clone()).await, RolloutReply::Refused { code, .. } if code == "unsigned"));
    let mallory = Bus::connect(&url, "mallory")
        .await
        .unwrap()
        .with_identity(std::sync::Arc::new(gmsa::signing::SecretKey::from_seed([7; 32])));
    assert!(
        matches!(ask(&mallory, approve.clone()).await, RolloutReply::Refused { code, .. } if code == "unknown_key")
    );
    assert_eq!(fleet.fleet.cluster("m-001").starts(), 0, "no refused approval opened the gate");
    let admin = testkit::identity::operator_bus(&url, testkit::identity::TEST_OPERATOR).await.unwrap();
    let approved = ask(&admin, approve).await;
    let RolloutReply::Done { message, .. } = &approved else { panic!("{approved:?}") };
    assert!(message.ends_with("as test-admin"), "the verified approver is recorded: {message}");
    // Pause as soon as wave 2 runs: no new cluster starts until resume.
    wait_until(fleet.bus(), &rollout_id, "wave 2 running", |status| status.current_stage == "wave-2").await;
    let paused = ask(fleet.bus(), RolloutRequest::Pause { rollout_id: rollout_id.clone(), by: "op".into() }).await;
    assert!(matches!(paused, RolloutReply::Done { .. }), "{paused:?}");
    let at_pause: usize = (3..6).map(|i| fleet.fleet.cluster(&format!("m-{i:03}")).starts() as usize).sum();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during: usize = (3..6).map(|i| fleet.fleet.cluster(&format!("m-{i:03}")).starts() as usize).sum();
    // Only the cluster in flight at the pause may go on with its remaining steps.
    let in_flight_clusters = (3..6).filter(|i| fleet.fleet.cluster(&format!("m-{i:03}")).starts() > 0).count();
    assert!(in_flight_clusters <= 1, "a new cluster started while paused");
    assert!(during >= at_pause);
    let resumed = ask(fleet.bus(), RolloutRequest::Resume { rollout_id: rollout_id.clone(), by: "op".into() }).await;
    assert!(matches!(resumed, RolloutReply::Done { .. }), "{resumed:?}");
    // Abort before wave 2 ends: whatever did not start is skipped, nothing starts after.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let aborted = ask(fleet.bus(), RolloutRequest::Abort { rollout_id: rollout_id.clone(), by: "op".into() }).await;
    assert!(matches!(aborted, RolloutReply::Done { .. }), "{aborted:?}");
    let end = wait_until(fleet.bus(), &rollout_id, "aborted", |status| {
        matches!(status.phase, Phase::Aborted { .. }) && status.stages.iter().all(|stage| stage.counts.running == 0)
    })
    .await;
    let skipped: Vec<&str> = end
        .clusters
        .iter()
        .filter(|view| view.status == ClusterStatus::Skipped)
        .map(|view| view.cluster.as_str())
        .collect();
    assert!(!skipped.is_empty(), "{end:#?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    for cluster in &skipped {
        let started = fleet.fleet.cluster(cluster).starts();
        assert!(started <= 3, "{cluster}: a skipped cluster has at most the steps in flight at the abort");
    }
    fleet.stop().await;
}

/// Whether `writes` (instants of one subscription's ARM writes) ever exceed a token bucket of
/// `burst` then `per_sec`, with one token of slack for delivery jitter.
fn exceeds_budget(writes: &mut [Instant], burst: f64, per_sec: f64) -> bool {
    writes.sort();
    let mut tokens = burst + 1.0;
    let mut last = match writes.first() {
        Some(first) => *first,
        None => return false,
    };
    for at in writes.iter() {
        tokens = (tokens + at.duration_since(last).as_secs_f64() * per_sec).min(burst + 1.0);
        last = *at;
        tokens -= 1.0;
        if tokens < 0.0 {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arm_write_budget_per_subscription_and_max_concurrency_are_never_exceeded() {
    // 12 clusters in 2 subscriptions; a budget of 2 writes then 2/s per subscription; 4 at a time.
    let fleet = MemoryRollout::start(12, 6, Script::default()).await;
    let file = mk_file(
        r#"
  stages:
    - {name: all, max_concurrency: 4}
  arm_budget: {burst: 2, per_sec: 2}
"#,
    );
    let rollout_id = start(fleet.bus(), file).await;
    let done = wait_until(fleet.bus(), &rollout_id, "completed", |status| status.phase == Phase::Completed).await;
    assert_eq!(done.stages[0].counts.succeeded, 12);
    let writes = fleet.script.arm_writes();
    assert_eq!(writes.len(), 24, "enable-gmsa and grant-identity on every cluster");
    // s0 and s1: six enable-gmsa each; the vault's subscription: twelve grants.
    for (subscription, count, at_least) in [("s0", 6, 1.5), ("s1", 6, 1.5), ("vault", 12, 4.5)] {
        let mut instants: Vec<Instant> = writes.iter().filter(|(s, _)| s == subscription).map(|(_, at)| *at).collect();
        assert_eq!(instants.len(), count, "{subscription}");
        assert!(!exceeds_budget(&mut instants, 2.0, 2.0), "{subscription}: writes beyond the budget");
        // And the budget did bind: after a burst of 2, the rest at 2/s.
        let span = instants.last().unwrap().duration_since(instants[0]).as_secs_f64();
        assert!(span >= at_least, "{subscription}: {span:.2}s: the budget never held anything back");
    }
    assert!(fleet.script.max_running.load(Ordering::SeqCst) <= 4);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_re_runs_only_the_failed_clusters_with_identical_inputs() {
    let script = Script { fail: [("m-002".to_string(), CommandKind::ApplyCredspec)].into(), ..Script::default() };
    let fleet = MemoryRollout::start(4, 4, script).await;
    let file = mk_file("  stages:\n    - {name: all, max_concurrency: 4, failure_budget: 1}\n");
    let rollout_id = start(fleet.bus(), file).await;
    let done = wait_until(fleet.bus(), &rollout_id, "completed", |status| status.phase == Phase::Completed).await;
    assert_eq!(state_of(&done, "m-002"), ClusterStatus::Failed);
    let first_payload = stored_payload(fleet.bus(), "m-002", CommandKind::ApplyCredspec).await;
    let starts_before: Vec<u64> = (0..4).map(|i| fleet.fleet.cluster(&format!("m-{i:03}")).starts()).collect();
    let RolloutReply::Started { rollout_id: retry_id, stages, .. } =
        ask(fleet.bus(), RolloutRequest::Retry { rollout_id: rollout_id.clone(), by: "op".into() }).await
    else {
        panic!()
    };
    let planned: Vec<&String> = stages.iter().flat_map(|stage| &stage.clusters).collect();
    assert_eq!(planned, ["m-002"]);
    wait_until(fleet.bus(), &retry_id, "retry ended", |status| !matches!(status.phase, Phase::Running)).await;
    let starts_after: Vec<u64> = (0..4).map(|i| fleet.fleet.cluster(&format!("m-{i:03}")).starts()).collect();
    for (index, (before, after)) in starts_before.iter().zip(&starts_after).enumerate() {
        if index == 2 {
            assert!(after > before, "the failed cluster ran again");
        } else {
            assert_eq!(before, after, "m-{index:03} must not run again");
        }
    }
    let retried_payload = stored_payload(fleet.bus(), "m-002", CommandKind::ApplyCredspec).await;
    assert_eq!(first_payload, retried_payload, "identical inputs");
    fleet.stop().await;
}

/// The payload of the last `kind` command sent to `cluster`.
async fn stored_payload(bus: &Bus, cluster: &str, kind: CommandKind) -> serde_json::Value {
    let stream = bus.jetstream().get_stream(subjects::COMMAND_STREAM).await.unwrap();
    let mut sequence = 0;
    let mut last = serde_json::Value::Null;
    while let Ok(message) = stream.direct_get_next_for_subject(subjects::command(cluster), Some(sequence + 1)).await {
        sequence = message.sequence;
        let envelope: CommandEnvelope = serde_json::from_slice(&message.payload).unwrap();
        if envelope.command.kind() == kind {
            last = serde_json::to_value(&envelope.command).unwrap();
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_outside_its_maintenance_window_waits_and_starts_when_the_window_opens() {
    let clock = Arc::new(coordinator::rollouts::ManualClock::new(time::OffsetDateTime::now_utc()));
    let options = coordinator::daemon::Options {
        driver: coordinator::rollouts::DriverSettings {
            tick: Duration::from_millis(200),
            clock: clock.clone(),
            stage0: None,
            ..Default::default()
        },
        ..Default::default()
    };
    let fleet = MemoryRollout::start_with(2, 2, Script::default(), options).await;
    // m-001's window opens two hours from now (at a whole hour), for an hour.
    let opens_at = (time::OffsetDateTime::now_utc().hour() + 2) % 24;
    let file = mk_file(&format!(
        r#"
  stages:
    - {{name: all, max_concurrency: 2}}
  maintenance_windows:
    - {{selector: "subscription=s0,env=prod,!nowindow", cron: "0 {opens_at} * * *", duration_secs: 3600}}
"#
    ));
    // Only m-001 gets the window: m-000 is labelled out of it.
    let inventory: bus::kv::Bucket<DeclaredCluster> =
        bus::kv::Bucket::open(fleet.bus(), subjects::INVENTORY_BUCKET).await.unwrap();
    let mut m0 = inventory.get("m-000").await.unwrap().unwrap().0;
    m0.labels.insert("nowindow".into(), "yes".into());
    inventory.put("m-000", &m0).await.unwrap();
    let rollout_id = start(fleet.bus(), file).await;
    let waiting = wait_until(fleet.bus(), &rollout_id, "m-000 done, m-001 waiting", |status| {
        state_of(status, "m-000") == ClusterStatus::Succeeded
            && state_of(status, "m-001") == ClusterStatus::WaitingWindow
    })
    .await;
    assert!(
        waiting.clusters.iter().any(|view| view.why.as_deref().is_some_and(|why| why.contains("window"))),
        "{waiting:#?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fleet.fleet.cluster("m-001").starts(), 0, "outside its window, nothing starts");
    // At a minute past the window's hour, it is open.
    let now = coordinator::rollouts::Clock::now(&*clock);
    clock.advance(time::Duration::minutes(i64::from(60 - now.minute()) + 60 + 1));
    let done = wait_until(fleet.bus(), &rollout_id, "completed", |status| status.phase == Phase::Completed).await;
    assert_eq!(state_of(&done, "m-001"), ClusterStatus::Succeeded);
    assert!(fleet.fleet.cluster("m-001").starts() > 0);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_joins_mid_rollout_is_not_picked_up_and_one_that_leaves_times_out() {
    let script = Script { delay: Duration::from_millis(200), ..Script::default() };
    let mut fleet = MemoryRollout::start(3, 3, script).await;
    let file = mk_file(
        r#"
  stages:
    - {name: canary, count: 1, approval_after: true}
    - {name: rest, max_concurrency: 2, failure_budget: 1, cluster_deadline_secs: 3}
"#,
    );
    let rollout_id = start(fleet.bus(), file).await;
    wait_until(fleet.bus(), &rollout_id, "canary gate", |status| {
        status.stages[0].phase == gmsa::rollout::StagePhase::WaitingApprovalAfter
    })
    .await;
    // A new cluster says hello, and m-002 goes away, while the gate waits.
    fleet.spawn("m-new", "s0").await;
    if let Some(gone) = fleet.agents.remove("m-002") {
        gone.kill();
    }
    ask(fleet.bus(), RolloutRequest::Approve { rollout_id: rollout_id.clone(), stage: None, by: "op".into() }).await;
    let end = wait_until(fleet.bus(), &rollout_id, "ended", |status| !matches!(status.phase, Phase::Running)).await;
    assert_eq!(state_of(&end, "m-002"), ClusterStatus::TimedOut, "{end:#?}");
    assert!(end.clusters.iter().all(|view| view.cluster != "m-new"), "m-new is not in this rollout");
    assert!(commanded(fleet.bus(), &["m-new".to_string()]).await.is_empty());
    assert_eq!(fleet.fleet.cluster("m-new").starts(), 0);
    assert!(stored_results(fleet.bus(), "m-new").await.is_empty());
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_leaves_exactly_the_changed_clusters_as_before_and_touches_no_other() {
    let server = NatsServer::start().unwrap();
    let world = SimWorld::build("rb", 4, 4).await.unwrap();
    let coordinator = start_coordinator(&server.url(), world.declared()).await.unwrap();
    // rb-003 is not in the rollout's selection.
    let agents = world.spawn_agents(&server.url(), |cluster: &str| test_settings(cluster, &[])).await.unwrap();
    let azure_before = azure_state(&world);
    let kube_before: Vec<serde_json::Value> = world.clusters.iter().map(|c| c.kube.snapshot()).collect();
    let mut file = mk_file(
        r#"
  stages:
    - {name: canary, selector: "ring=0"}
    - {name: wave, selector: "ring=1", max_concurrency: 3}
"#,
    );
    // The rollout covers ring 0 and 1; rb-003 is moved to a later ring.
    file.selector = "ring in (0,1)".into();
    let inventory: bus::kv::Bucket<DeclaredCluster> =
        bus::kv::Bucket::open(&coordinator.bus, subjects::INVENTORY_BUCKET).await.unwrap();
    let mut kept = inventory.get("rb-003").await.unwrap().unwrap().0;
    kept.labels.insert("ring".into(), "later".into());
    inventory.put("rb-003", &kept).await.unwrap();
    let rollout_id = start(&coordinator.bus, file).await;
    let done = wait_until(&coordinator.bus, &rollout_id, "completed", |status| status.phase == Phase::Completed).await;
    assert_eq!(done.clusters.len(), 3);
    assert!(world.azure.gmsa_profile(&world.clusters[1].arm_id).is_some_and(|profile| profile.enabled == Some(true)));
    let mutations_before_rollback = world.azure.mutations().len();
    let RolloutReply::Started { rollout_id: undo, stages, .. } =
        ask(&coordinator.bus, RolloutRequest::Rollback { rollout_id: rollout_id.clone(), by: "op".into() }).await
    else {
        panic!()
    };
    assert_eq!(stages[0].clusters, ["rb-000", "rb-001", "rb-002"]);
    let (_, states) = follow_fleet_command(&coordinator.bus, &undo).await;
    assert!(states.iter().all(|state| state.is_success()), "{states:?}");
    assert!(world.azure.mutations().len() > mutations_before_rollback);
    assert_eq!(azure_state(&world), azure_before, "Azure is as before the rollout");
    for (cluster, before) in world.clusters.iter().zip(&kube_before) {
        assert_eq!(&cluster.kube.snapshot(), before, "{}: Kubernetes is as before the rollout", cluster.id);
    }
    assert!(world.clusters[3].kube.api_mutations().is_empty(), "rb-003 was never touched");
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}

/// Follows a fleet command (the rollback's teardown) until every target has a result.
async fn follow_fleet_command(bus: &Bus, rollout_id: &str) -> (String, Vec<coordinator::rollout::TargetState>) {
    let bucket = coordinator::rollout::rollouts(bus).await.unwrap();
    let (record, _) = bucket.get(rollout_id).await.unwrap().unwrap();
    let started = Instant::now();
    loop {
        let states = coordinator::rollout::target_states(bus, &record, time::OffsetDateTime::now_utc()).await.unwrap();
        if states.iter().all(|(_, state)| state.is_final()) {
            return (rollout_id.to_string(), states.into_iter().map(|(_, state)| state).collect());
        }
        assert!(started.elapsed() < WAIT, "{states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_asks_every_agent_for_the_diff_each_step_would_apply_and_writes_nothing() {
    let server = NatsServer::start().unwrap();
    let world = SimWorld::build("pl", 3, 3).await.unwrap();
    let coordinator = start_coordinator(&server.url(), world.declared()).await.unwrap();
    let agents = world.spawn_agents(&server.url(), |cluster: &str| test_settings(cluster, &[])).await.unwrap();
    let mutations_before = world.azure.mutations().len();
    let file = mk_file("  stages:\n    - {name: canary, count: 1, approval_after: true}\n    - {name: rest}\n");
    let reply =
        ask(&coordinator.bus, RolloutRequest::Start { file: Box::new(file), dry_run: true, requested_by: None }).await;
    let RolloutReply::Started { rollout_id, dry_run: true, stages, .. } = reply else { panic!("{reply:?}") };
    assert_eq!(stages.iter().map(|stage| stage.clusters.len()).collect::<Vec<_>>(), [1, 2], "the real plan's stages");
    // A dry run has no gates: it runs to the end without an approval.
    let done =
        wait_until(&coordinator.bus, &rollout_id, "dry run done", |status| status.phase == Phase::Completed).await;
    assert_eq!(done.clusters.len(), 3);
    for cluster in &world.clusters {
        for step in [CommandKind::EnableGmsa, CommandKind::GrantIdentity, CommandKind::ApplyCredspec] {
            let command_id = proto::CommandId::for_rollout(&rollout_id, &format!("{}/{step}", cluster.id));
            let result = stored_results(&coordinator.bus, &cluster.id)
                .await
                .into_iter()
                .find(|result| result.command_id == command_id)
                .unwrap_or_else(|| panic!("{}: no {step} result", cluster.id));
            assert!(result.status.is_success(), "{}: {step}: {:?}", cluster.id, result.status);
            let planned: Vec<&StepOutcome> = result.steps.iter().filter(|outcome| outcome.is_planned()).collect();
            assert!(!planned.is_empty(), "{}: {step} plans a change: {:?}", cluster.id, result.steps);
            assert!(planned.iter().all(|outcome| !outcome.diff.is_empty()));
        }
        assert!(cluster.kube.api_mutations().is_empty(), "{}: the dry run wrote to Kubernetes", cluster.id);
        assert!(world.azure.gmsa_profile(&cluster.arm_id).is_none_or(|profile| profile.enabled != Some(true)));
    }
    assert_eq!(world.azure.mutations().len(), mutations_before, "the dry run wrote to Azure");
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}
