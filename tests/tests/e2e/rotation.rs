//! Credential rotation (#19) through the coordinator daemon, on real components: a real
//! nats-server, the Azure simulator's Key Vault, a real Samba AD DC, and agents. A CCG-like client
//! runs during every rotation: it reads the secret as the plugin does (latest version, split at the
//! first `\` and `:`), and binds as that user over LDAPS with OpenLDAP's `ldapsearch`; it must
//! never fail.

use coordinator::rotation::api::{RotateReply, RotateRequest};
use coordinator::rotation::store::CredentialRecord;
use gmsa::rotation::{RunPhase, Schedule};
use proto::subjects;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::nats::NatsServer;
use testkit::samba::{SambaDc, unique_name};
use tests::ccg::{CcgLoop, ccg_bind};
use tests::fleet::{AgentHandle, CoordinatorHandle, spawn_agent, test_settings};
use tests::memory::{MemoryFleet, Pause};
use tests::world::{SimWorld, VAULT_RESOURCE_GROUP, VAULT_SUBSCRIPTION};

const WAIT: Duration = Duration::from_secs(90);

/// The setup every rotation test starts from: stage 0 creates the vault, users A and B, the gMSA
/// and the secret naming A.
fn setup_file(
    dc: &SambaDc,
    user: &str,
    gmsa: &str,
    vault: &str,
    overrides: &str,
    strategy: &str,
) -> proto::rollout::RolloutFile {
    let yaml = tests::fleet::central_rollout_yaml("rotation-setup", dc.realm(), user, gmsa, vault, overrides, strategy);
    serde_yaml::from_str(&yaml).unwrap_or_else(|err| panic!("{err}\n{yaml}"))
}

pub async fn rotate(bus: &bus::Bus, request: RotateRequest) -> RotateReply {
    coordinator::rotate_verbs::request(bus, &request).await.unwrap()
}

pub async fn record(bus: &bus::Bus) -> CredentialRecord {
    let RotateReply::Status { mut credentials } = rotate(bus, RotateRequest::Status).await else { panic!() };
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    credentials.remove(0)
}

/// Waits until run `run_id` is in the history (finished).
pub async fn wait_finished(bus: &bus::Bus, run_id: &str) -> gmsa::rotation::RotationRun {
    let started = Instant::now();
    loop {
        let record = record(bus).await;
        if let Some(run) = record.history.iter().find(|run| run.run_id == run_id) {
            return run.clone();
        }
        assert!(started.elapsed() < WAIT, "rotation {run_id} did not finish: {record:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start_run(bus: &bus::Bus) -> String {
    match rotate(bus, RotateRequest::Now { requested_by: Some("test".into()), dry_run: false }).await {
        RotateReply::Started { run, .. } => run.run_id,
        other => panic!("{other:?}"),
    }
}

async fn wait_rollout(bus: &bus::Bus, rollout_id: &str) -> gmsa::rollout::RolloutStatus {
    let started = Instant::now();
    loop {
        let reply = coordinator::rollout_verbs::request(
            bus,
            &coordinator::rollouts::api::RolloutRequest::Status { rollout_id: rollout_id.into() },
        )
        .await
        .unwrap();
        if let coordinator::rollouts::api::RolloutReply::Status { status, .. } = reply
            && !matches!(status.phase, gmsa::rollout::Phase::Running)
        {
            return *status;
        }
        assert!(started.elapsed() < WAIT, "rollout {rollout_id} did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A coordinator with its central side on `world` and `dc`, and `n` in-memory clusters `prefix-NNN`.
struct Fleet {
    _server: NatsServer,
    world: Arc<SimWorld>,
    coordinator: CoordinatorHandle,
    agents: Vec<AgentHandle>,
    _memory: MemoryFleet,
}

impl Fleet {
    async fn start(prefix: &str, n: usize, clock: Option<Arc<coordinator::rollouts::ManualClock>>) -> Fleet {
        let server = NatsServer::start().unwrap();
        let dc = tokio::task::spawn_blocking(SambaDc::shared).await.unwrap();
        let world = SimWorld::build(prefix, 0, 1).await.unwrap();
        let declared = (0..n)
            .map(|index| coordinator::inventory::DeclaredCluster {
                id: format!("{prefix}-{index:03}"),
                labels: BTreeMap::from([
                    ("cluster".to_string(), format!("{prefix}-{index:03}")),
                    ("subscription".to_string(), "s0".to_string()),
                ]),
            })
            .collect::<Vec<_>>();
        let central = Arc::new(super::central::mk_central(&world, dc));
        let mut options = coordinator::daemon::Options { central: Some(central), ..Default::default() };
        options.driver.tick = Duration::from_millis(200);
        options.rotation.tick = Duration::from_millis(200);
        if let Some(clock) = clock {
            options.driver.clock = clock;
        }
        let coordinator = tests::fleet::start_coordinator_with(&server.url(), declared.clone(), options).await.unwrap();
        let memory = MemoryFleet::default();
        let mut agents = Vec::new();
        for cluster in &declared {
            let url = server.url();
            let agent = spawn_agent(&url, test_settings(&cluster.id, &[]), memory.executor(&cluster.id, Pause::None));
            agents.push(agent.await.unwrap());
        }
        Fleet { _server: server, world: Arc::new(world), coordinator, agents, _memory: memory }
    }

    fn bus(&self) -> &bus::Bus {
        &self.coordinator.bus
    }

    async fn setup(&self, file: proto::rollout::RolloutFile) {
        let reply = coordinator::rollout_verbs::request(
            self.bus(),
            &coordinator::rollouts::api::RolloutRequest::Start {
                file: Box::new(file),
                dry_run: false,
                requested_by: None,
            },
        )
        .await
        .unwrap();
        let coordinator::rollouts::api::RolloutReply::Started { rollout_id, .. } = reply else { panic!("{reply:?}") };
        let status = wait_rollout(self.bus(), &rollout_id).await;
        assert_eq!(status.phase, gmsa::rollout::Phase::Completed, "{status:#?}");
    }

    async fn stop(self) {
        for agent in self.agents {
            agent.stop().await.unwrap();
        }
        self.coordinator.stop().await;
    }
}

fn vault_id(name: &str) -> String {
    azure::VaultRef::new(VAULT_SUBSCRIPTION, VAULT_RESOURCE_GROUP, name).id()
}

fn user_of(value: &str) -> String {
    gmsa::secret::split_credential(value).map(|(_, user, _)| user.to_string()).unwrap()
}

/// Two full rotation cycles (A → B → A) over 50 clusters sharing one vault: one new version per
/// rotation (counted at the simulator), the users alternate, every cluster confirms, and the
/// CCG-like client never fails a logon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rotations_of_fifty_clusters_sharing_a_vault_write_one_version_each_and_no_logon_fails() {
    let _dc_writer = super::support::SHARED_DC_WRITERS.lock().await;
    let fleet = Fleet::start("rot", 50, None).await;
    let dc = SambaDc::shared();
    let (user, gmsa, vault) = (unique_name("rta"), unique_name("rtg"), format!("kv{}", unique_name("r")));
    let strategy = "  stages:\n    - {name: canary, count: 1}\n    - {name: rest, max_concurrency: 10}";
    fleet.setup(setup_file(dc, &user, &gmsa, &vault, "", strategy)).await;
    let id = vault_id(&vault);
    let secret = |world: &SimWorld| world.azure.secret_value(&id, "GMSADomainUserCred", None);
    let first = secret(&fleet.world).expect("stage 0 wrote the secret");
    assert_eq!(user_of(&first), user, "the secret names user A");
    // User B exists and may retrieve the gMSA's password next to A.
    let standby = format!("{user}-b");
    assert!(!dc.ldbsearch(&dc.base_dn(), "sub", &format!("(sAMAccountName={standby})"), &["dn"]).unwrap().is_empty());
    let world = fleet.world.clone();
    let id_for_loop = id.clone();
    let ccg = CcgLoop::start(dc, &gmsa, move || world.azure.secret_value(&id_for_loop, "GMSADomainUserCred", None));

    let versions_before = fleet.world.azure.secret_versions(&id, "GMSADomainUserCred").len();
    let run = start_run(fleet.bus()).await;
    let finished = wait_finished(fleet.bus(), &run).await;
    assert_eq!(finished.phase, RunPhase::Completed, "{finished:#?}");
    assert_eq!((finished.target_user.as_str(), finished.resets, finished.writes), (standby.as_str(), 1, 1));
    assert_eq!(fleet.world.azure.secret_versions(&id, "GMSADomainUserCred").len(), versions_before + 1);
    let second = secret(&fleet.world).unwrap();
    assert_eq!(user_of(&second), standby, "Key Vault names B after the first rotation");
    let status = wait_rollout(fleet.bus(), finished.rollout_id.as_deref().unwrap()).await;
    assert_eq!(status.clusters.len(), 50);
    assert!(
        status.clusters.iter().all(|view| view.status == gmsa::rollout::ClusterStatus::Succeeded
            || view.status == gmsa::rollout::ClusterStatus::Unchanged),
        "{status:#?}"
    );
    assert_eq!(record(fleet.bus()).await.active_user.as_deref(), Some(standby.as_str()));
    // Both passwords work: B's new one, and A's (never reset in this cycle).
    ccg_bind(dc, &second).unwrap();
    ccg_bind(dc, &first).unwrap();

    // The second cycle resets A.
    let run = start_run(fleet.bus()).await;
    let finished = wait_finished(fleet.bus(), &run).await;
    assert_eq!(finished.phase, RunPhase::Completed, "{finished:#?}");
    assert_eq!(finished.target_user, user);
    assert_eq!(fleet.world.azure.secret_versions(&id, "GMSADomainUserCred").len(), versions_before + 2);
    let third = secret(&fleet.world).unwrap();
    assert_eq!(user_of(&third), user);
    ccg_bind(dc, &third).unwrap();
    ccg_bind(dc, &second).unwrap();
    // The test DC allows no old password (Samba's `old password allowed period = 0`): A's
    // previous password stopped working when A was reset — while nothing named it any more.
    assert!(ccg_bind(dc, &first).is_err(), "A's previous password is refused after A's reset");
    let history = match rotate(fleet.bus(), RotateRequest::History).await {
        RotateReply::History { runs } => runs,
        other => panic!("{other:?}"),
    };
    assert_eq!(history.len(), 2);

    let stats = ccg.finish().await;
    let (attempts, failures, errors) = (stats.attempts, stats.failures, stats.first_failures.clone());
    eprintln!("CCG-like client: {} attempts got a TGT as the gMSA", stats.kerberos);
    eprintln!("CCG-like client: {attempts} attempts, {failures} failures over two rotations");
    assert!(attempts >= 4, "the client ran during the rotations ({attempts} attempts)");
    assert_eq!(failures, 0, "{errors:?}");
    // No password on the bus: not in a command, result, rollout log entry or the rotation record.
    let passwords: Vec<String> =
        [&first, &second, &third].iter().map(|value| value.split_once(':').unwrap().1.to_string()).collect();
    for stream in
        [subjects::ROLLOUT_LOG_STREAM, subjects::COMMAND_STREAM, subjects::RESULT_STREAM, "KV_fleet_rotations"]
    {
        let info = fleet.bus().jetstream().get_stream(stream).await.unwrap();
        let mut sequence = 0;
        while let Ok(message) = info.direct_get_next_for_subject(">", Some(sequence + 1)).await {
            sequence = message.sequence;
            let text = String::from_utf8_lossy(&message.payload);
            assert!(passwords.iter().all(|password| !text.contains(password.as_str())), "{stream} carries a password");
        }
    }
    // The audit log holds each rotation's steps in order, and no password.
    let started = std::time::Instant::now();
    let steps = loop {
        let (entries, _) =
            coordinator::audit::read::entries(fleet.bus(), &gmsa::audit::query::Filter::default()).await.unwrap();
        let steps: Vec<String> = entries
            .iter()
            .filter_map(|entry| match &entry.event {
                proto::audit::AuditEvent::Rotation { step, .. } => Some(step.clone()),
                _ => None,
            })
            .collect();
        let text = serde_json::to_string(&entries).unwrap();
        assert!(passwords.iter().all(|password| !text.contains(password.as_str())), "the audit carries a password");
        if steps.iter().filter(|step| *step == "completed").count() >= 2 {
            break steps;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "rotation steps audited: {steps:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut steps = steps;
    steps.dedup();
    let cycle = ["resetting", "writing", "rolling_out", "completed"];
    let mut at = 0;
    for step in cycle.iter().chain(cycle.iter()) {
        let found = steps[at..].iter().position(|s| s == step);
        let Some(found) = found else { panic!("{step} not after {at}: {steps:?}") };
        at += found + 1;
    }
    fleet.stop().await;
}

/// Three clusters, each with its own vault: one new version in each vault, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_with_a_vault_each_get_exactly_one_new_version_per_vault() {
    let _dc_writer = super::support::SHARED_DC_WRITERS.lock().await;
    let fleet = Fleet::start("rov", 3, None).await;
    let dc = SambaDc::shared();
    let (user, gmsa, vault) = (unique_name("rva"), unique_name("rvg"), format!("kv{}", unique_name("v")));
    let strategy = "  stages:\n    - {name: all, max_concurrency: 3}";
    fleet.setup(setup_file(dc, &user, &gmsa, &vault, "", strategy)).await;
    let value = fleet.world.azure.secret_value(&vault_id(&vault), "GMSADomainUserCred", None).unwrap();
    // Clusters 1 and 2 get their own vault, holding the same credential (as an operator would copy it).
    let azure = fleet.world.coordinator_azure().unwrap();
    let mut overrides = String::from("overrides:\n");
    let mut vaults = vec![vault.clone()];
    for index in 1..3 {
        let own = format!("{vault}{index}");
        let reference = azure::VaultRef::new(VAULT_SUBSCRIPTION, VAULT_RESOURCE_GROUP, &own);
        let spec = azure::VaultSpec {
            location: "westeurope".into(),
            tenant_id: fleet.world.azure.tenant_id(),
            rbac: false,
            writer_object_id: Some(tests::world::COORDINATOR_OBJECT_ID.into()),
        };
        azure.ensure_vault(&reference, &spec).await.unwrap();
        azure.write_domain_user_secret(&reference, None, &gmsa::SecretString::new(value.clone())).await.unwrap();
        overrides.push_str(&format!(
            "  - {{selector: cluster=rov-{index:03}, set: {{vault: {{subscription_id: {VAULT_SUBSCRIPTION}, resource_group: {VAULT_RESOURCE_GROUP}, name: {own}}}}}}}\n"
        ));
        vaults.push(own);
    }
    fleet.setup(setup_file(dc, &user, &gmsa, &vault, &overrides, strategy)).await;
    let before: Vec<usize> = vaults
        .iter()
        .map(|name| fleet.world.azure.secret_versions(&vault_id(name), "GMSADomainUserCred").len())
        .collect();
    let run = start_run(fleet.bus()).await;
    let finished = wait_finished(fleet.bus(), &run).await;
    assert_eq!(finished.phase, RunPhase::Completed, "{finished:#?}");
    assert_eq!((finished.targets.len(), finished.writes), (3, 3));
    let values: Vec<String> = vaults
        .iter()
        .zip(&before)
        .map(|(name, before)| {
            assert_eq!(
                fleet.world.azure.secret_versions(&vault_id(name), "GMSADomainUserCred").len(),
                before + 1,
                "{name}"
            );
            fleet.world.azure.secret_value(&vault_id(name), "GMSADomainUserCred", None).unwrap()
        })
        .collect();
    assert!(values.iter().all(|value| *value == values[0]), "every vault holds the same new credential");
    ccg_bind(dc, &values[0]).unwrap();
    fleet.stop().await;
}

/// A schedule under which a password would outlive the domain's maxPwdAge (Samba's default, 42
/// days) is refused; a missed window runs once after a restart, not once per window missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_beyond_max_pwd_age_is_refused_and_missed_windows_run_once_after_a_restart() {
    let _dc_writer = super::support::SHARED_DC_WRITERS.lock().await;
    let clock = Arc::new(coordinator::rollouts::ManualClock::new(time::OffsetDateTime::now_utc()));
    let fleet = Fleet::start("ros", 2, Some(clock.clone())).await;
    let dc = SambaDc::shared();
    let (user, gmsa, vault) = (unique_name("rsa"), unique_name("rsg"), format!("kv{}", unique_name("s")));
    fleet.setup(setup_file(dc, &user, &gmsa, &vault, "", "  stages:\n    - {name: all, max_concurrency: 2}")).await;
    let refused = rotate(
        fleet.bus(),
        RotateRequest::Schedule { schedule: Some(Schedule::every("30d").unwrap()), requested_by: None },
    )
    .await;
    let RotateReply::Refused { code, message } = refused else { panic!("{refused:?}") };
    assert_eq!(code, "schedule_invalid");
    assert!(message.contains("2 × 30d = 60d") && message.contains("42d"), "{message}");
    let RotateReply::Status { credentials } = rotate(fleet.bus(), RotateRequest::Status).await else { panic!() };
    assert!(credentials.iter().all(|record| record.schedule.is_none()), "nothing was stored: {credentials:?}");
    let accepted = rotate(
        fleet.bus(),
        RotateRequest::Schedule { schedule: Some(Schedule::every("1h").unwrap()), requested_by: None },
    )
    .await;
    assert!(matches!(accepted, RotateReply::Scheduled { .. }), "{accepted:?}");
    // The coordinator is down for five windows.
    let bus_url = fleet._server.url();
    let Fleet { _server, world, coordinator, agents, _memory } = fleet;
    coordinator.stop().await;
    clock.advance(time::Duration::hours(5));
    let central = Arc::new(super::central::mk_central(&world, dc));
    let mut options = coordinator::daemon::Options { central: Some(central), ..Default::default() };
    options.driver.tick = Duration::from_millis(200);
    options.driver.clock = clock.clone();
    options.rotation.tick = Duration::from_millis(200);
    let declared = (0..2)
        .map(|index| coordinator::inventory::DeclaredCluster {
            id: format!("ros-{index:03}"),
            labels: BTreeMap::from([
                ("cluster".to_string(), format!("ros-{index:03}")),
                ("subscription".to_string(), "s0".to_string()),
            ]),
        })
        .collect();
    let coordinator = tests::fleet::start_coordinator_with(&bus_url, declared, options).await.unwrap();
    let bus = &coordinator.bus;
    let started = Instant::now();
    let done = loop {
        let record = record(bus).await;
        if record.history.first().is_some_and(|run| run.phase == RunPhase::Completed) {
            break record;
        }
        assert!(started.elapsed() < WAIT, "the missed rotation did not run: {record:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Given time to start more, it does not: one run for five missed windows, the next one an
    // hour after it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let record = record(bus).await;
    assert_eq!(record.history.len(), 1, "{record:#?}");
    assert!(record.current.is_none());
    let now = coordinator::rollouts::Clock::now(&*clock);
    assert!(record.next_run.is_some_and(|next| next > now), "{:?} after {now}", record.next_run);
    assert_eq!(done.history[0].requested_by.as_deref(), Some("scheduler"));
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}

/// Real agents (the cloud executor): the canary's Windows identity loses `get` on the secret, so
/// its `rotate-credential` check fails and the rotation halts before wave 1 — no wave-1 cluster
/// gets the command — while Key Vault still names a user whose password works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_cannot_read_the_new_version_halts_the_rotation_before_wave_1() {
    let _dc_writer = super::support::SHARED_DC_WRITERS.lock().await;
    let server = NatsServer::start().unwrap();
    let dc = tokio::task::spawn_blocking(SambaDc::shared).await.unwrap();
    let world = SimWorld::build("rcn", 3, 3).await.unwrap();
    let central = Arc::new(super::central::mk_central(&world, dc));
    let mut options = coordinator::daemon::Options { central: Some(central), ..Default::default() };
    options.driver.tick = Duration::from_millis(200);
    options.rotation.tick = Duration::from_millis(200);
    let coordinator = tests::fleet::start_coordinator_with(&server.url(), world.declared(), options).await.unwrap();
    let bus = &coordinator.bus;
    let agents = world.spawn_agents(&server.url(), |cluster| test_settings(cluster, &[])).await.unwrap();
    let (user, gmsa) = (unique_name("rca"), unique_name("rcg"));
    let strategy = "  stages:\n    - {name: canary, count: 1}\n    - {name: wave-1, max_concurrency: 2}";
    let file = setup_file(dc, &user, &gmsa, tests::world::VAULT_NAME, "", strategy);
    let reply = coordinator::rollout_verbs::request(
        bus,
        &coordinator::rollouts::api::RolloutRequest::Start { file: Box::new(file), dry_run: false, requested_by: None },
    )
    .await
    .unwrap();
    let coordinator::rollouts::api::RolloutReply::Started { rollout_id, stages, .. } = reply else {
        panic!("{reply:?}")
    };
    let canary = stages[0].clusters[0].clone();
    let wave: Vec<String> = stages[1].clusters.clone();
    assert_eq!(wait_rollout(bus, &rollout_id).await.phase, gmsa::rollout::Phase::Completed);
    // The canary's kubelet identity may no longer get the secret.
    let azure = world.coordinator_azure().unwrap();
    let cluster = world.clusters.iter().find(|c| c.id == canary).unwrap();
    let kubelet = azure
        .kubelet_identity(&azure::ClusterRef::new(&cluster.subscription_id, &cluster.resource_group, &cluster.id))
        .await
        .unwrap();
    let vault = azure::VaultRef::from(&world.vault_ref());
    azure.revoke_secret_get(&vault, &kubelet.object_id, proto::Mode::Apply).await.unwrap();
    let id = world.vault_id.clone();
    let world = Arc::new(world);
    let for_loop = world.clone();
    let ccg = CcgLoop::start(dc, &gmsa, move || for_loop.azure.secret_value(&id, "GMSADomainUserCred", None));

    let run = start_run(bus).await;
    let finished = wait_finished(bus, &run).await;
    let RunPhase::Failed { code, message } = &finished.phase else { panic!("{finished:#?}") };
    assert_eq!(code, "rollout_halted", "{message}");
    let status = wait_rollout(bus, finished.rollout_id.as_deref().unwrap()).await;
    let canary_view = status.clusters.iter().find(|view| view.cluster == canary).unwrap();
    assert_eq!(canary_view.status, gmsa::rollout::ClusterStatus::Failed, "{status:#?}");
    assert!(canary_view.why.as_deref().is_some_and(|why| why.contains("credential_unreadable")), "{canary_view:?}");
    // No wave-1 cluster got a rotate-credential command.
    let stream = bus.jetstream().get_stream(subjects::COMMAND_STREAM).await.unwrap();
    for cluster in &wave {
        let mut sequence = 0;
        while let Ok(message) = stream.direct_get_next_for_subject(subjects::command(cluster), Some(sequence + 1)).await
        {
            sequence = message.sequence;
            let envelope: proto::CommandEnvelope = serde_json::from_slice(&message.payload).unwrap();
            assert_ne!(
                envelope.command.kind(),
                proto::CommandKind::RotateCredential,
                "{cluster} was sent the rotation"
            );
        }
    }
    // Key Vault names B, whose new password works; the record says so and lists the unconfirmed.
    let value = world.azure.secret_value(&world.vault_id, "GMSADomainUserCred", None).unwrap();
    assert_eq!(user_of(&value), format!("{user}-b"));
    ccg_bind(dc, &value).unwrap();
    let record = record(bus).await;
    assert_eq!(record.active_user.as_deref(), Some(format!("{user}-b").as_str()));
    assert!(record.unconfirmed.contains(&canary), "{record:#?}");
    // Rollback: a new version naming A again, with A's untouched password; nothing disabled.
    let versions = world.azure.secret_versions(&world.vault_id, "GMSADomainUserCred");
    let reply = rotate(bus, RotateRequest::Rollback { requested_by: Some("test".into()) }).await;
    let RotateReply::Started { run: rollback, .. } = reply else { panic!("{reply:?}") };
    assert_eq!((rollback.target_user.as_str(), rollback.writes), (user.as_str(), 1));
    let after = world.azure.secret_versions(&world.vault_id, "GMSADomainUserCred");
    assert_eq!(after.len(), versions.len() + 1);
    assert!(after.iter().all(|version| version.enabled), "no version is ever disabled");
    let restored = world.azure.secret_value(&world.vault_id, "GMSADomainUserCred", None).unwrap();
    assert_eq!(user_of(&restored), user);
    ccg_bind(dc, &restored).unwrap();
    assert_eq!(self::record(bus).await.active_user.as_deref(), Some(user.as_str()));
    // A second rollback has nothing to undo.
    let again = rotate(bus, RotateRequest::Rollback { requested_by: None }).await;
    assert!(matches!(&again, RotateReply::Refused { code, .. } if code == "nothing_to_roll_back"), "{again:?}");
    // Every cluster's diagnostics archive after the rotation holds none of the passwords.
    let diagnose = proto::Command::CollectDiagnostics(proto::command::CollectDiagnostics {
        spec_name: "aks-gmsa-spec".into(),
        owner: "default".into(),
        recent_results: 20,
    });
    let (_, states) = tests::fleet::run_and_follow(bus, diagnose, "", WAIT, |_| {}).await.unwrap();
    assert_eq!(states.len(), 3);
    for (target, _) in &states {
        let bytes = bus::results::fetch_artifact(bus, &target.cluster, target.command_id.as_str())
            .await
            .unwrap()
            .expect("archive stored");
        let files = gmsa::archive::untar(&bytes).unwrap();
        let all: String = files.iter().map(|(_, content)| String::from_utf8_lossy(content).into_owned()).collect();
        for secret in [&value, &restored] {
            let password = secret.split_once(':').unwrap().1;
            assert!(!all.contains(password), "{}: the archive holds a password", target.cluster);
        }
    }
    let stats = ccg.finish().await;
    let (attempts, failures, errors) = (stats.attempts, stats.failures, stats.first_failures.clone());
    eprintln!("CCG-like client: {} attempts got a TGT as the gMSA", stats.kerberos);
    eprintln!("CCG-like client: {attempts} attempts, {failures} failures during the halted rotation and its rollback");
    assert!(attempts > 0);
    assert_eq!(failures, 0, "{errors:?}");
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}

/// A full rotation with every component logging at TRACE into one buffer (a current-thread
/// runtime: the daemon, the simulators and the agents all run on this thread): no password —
/// neither A's nor the new one — appears in any log line.
#[tokio::test]
async fn a_full_rotation_logs_no_password_at_trace() {
    let captured = super::central::Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let _dc_writer = super::support::SHARED_DC_WRITERS.lock().await;
    tracing::callsite::rebuild_interest_cache();
    let fleet = Fleet::start("rtl", 2, None).await;
    let dc = SambaDc::shared();
    let (user, gmsa, vault) = (unique_name("rla"), unique_name("rlg"), format!("kv{}", unique_name("l")));
    fleet.setup(setup_file(dc, &user, &gmsa, &vault, "", "  stages:\n    - {name: all, max_concurrency: 2}")).await;
    let id = vault_id(&vault);
    let before = fleet.world.azure.secret_value(&id, "GMSADomainUserCred", None).unwrap();
    let run = start_run(fleet.bus()).await;
    assert_eq!(wait_finished(fleet.bus(), &run).await.phase, RunPhase::Completed);
    let after = fleet.world.azure.secret_value(&id, "GMSADomainUserCred", None).unwrap();
    fleet.stop().await;
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(logs.contains("new credential version written"), "the rotation ran under the capture");
    for value in [&before, &after] {
        let password = value.split_once(':').unwrap().1;
        assert!(!logs.contains(password), "a password is in the TRACE logs");
    }
    eprintln!("scanned {} bytes of TRACE logs", logs.len());
}

/// The rotation never resets an account gmsa-fleet did not create for the credential: with the
/// standby user pointed at the domain's Administrator, the run fails before any write, with the
/// guard's code, Key Vault is untouched and Administrator's password still binds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_user_that_gmsa_fleet_did_not_create_is_never_reset() {
    let _dc_writer = super::support::SHARED_DC_WRITERS.lock().await;
    let fleet = Fleet::start("rog", 1, None).await;
    let dc = SambaDc::shared();
    let (user, gmsa, vault) = (unique_name("rga"), unique_name("rgg"), format!("kv{}", unique_name("g")));
    let mut file = setup_file(dc, &user, &gmsa, &vault, "", "  stages:\n    - {name: all}");
    if let Some(central) = file.setup.central.as_mut() {
        central.standby_user = Some("Administrator".into());
    }
    fleet.setup(file).await;
    let id = vault_id(&vault);
    let versions = fleet.world.azure.secret_versions(&id, "GMSADomainUserCred").len();
    let run = start_run(fleet.bus()).await;
    let finished = wait_finished(fleet.bus(), &run).await;
    let RunPhase::Failed { code, message } = &finished.phase else { panic!("{finished:#?}") };
    assert_eq!(code, "ad_write_refused_built_in_account", "{message}");
    assert!(message.contains("Administrator"), "the refusal names the account: {message}");
    assert_eq!((finished.resets, finished.writes), (0, 0));
    assert_eq!(fleet.world.azure.secret_versions(&id, "GMSADomainUserCred").len(), versions, "Key Vault untouched");
    let record = record(fleet.bus()).await;
    assert_eq!(record.active_user.as_deref(), Some(user.as_str()), "A stays active");
    let admin = format!("{}\\Administrator:{}", dc.netbios_domain(), dc.admin_password());
    ccg_bind(dc, &admin).expect("Administrator's password is unchanged");
    fleet.stop().await;
}

/// One rotation of a credential at a time: while a run's rollout soaks after its canary (the clock
/// is the test's and does not move), `rotate now` is refused `rotation_in_progress`; once the
/// soak is over the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_rotation_is_refused_while_one_is_in_progress() {
    let _dc_writer = super::support::SHARED_DC_WRITERS.lock().await;
    let clock = Arc::new(coordinator::rollouts::ManualClock::new(time::OffsetDateTime::now_utc()));
    let fleet = Fleet::start("rop", 2, Some(clock.clone())).await;
    let dc = SambaDc::shared();
    let (user, gmsa, vault) = (unique_name("rpa"), unique_name("rpg"), format!("kv{}", unique_name("p")));
    fleet.setup(setup_file(dc, &user, &gmsa, &vault, "", "  stages:\n    - {name: all, max_concurrency: 2}")).await;
    // The fleet's desired state now soaks an hour after its canary: so does a rotation's rollout.
    let soaking = setup_file(
        dc,
        &user,
        &gmsa,
        &vault,
        "",
        "  stages:\n    - {name: canary, count: 1, soak_secs: 3600}\n    - {name: rest}",
    );
    let reply = coordinator::rollout_verbs::request(
        fleet.bus(),
        &coordinator::rollouts::api::RolloutRequest::Start {
            file: Box::new(soaking),
            dry_run: false,
            requested_by: None,
        },
    )
    .await
    .unwrap();
    assert!(matches!(reply, coordinator::rollouts::api::RolloutReply::Started { .. }), "{reply:?}");
    let run = start_run(fleet.bus()).await;
    let started = Instant::now();
    while record(fleet.bus()).await.current.as_ref().is_none_or(|current| current.phase != RunPhase::RollingOut) {
        assert!(started.elapsed() < WAIT, "the run never reached its rollout");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = rotate(fleet.bus(), RotateRequest::Now { requested_by: None, dry_run: false }).await;
    assert!(matches!(&second, RotateReply::Refused { code, .. } if code == "rotation_in_progress"), "{second:?}");
    clock.advance(time::Duration::hours(2));
    let finished = wait_finished(fleet.bus(), &run).await;
    assert_eq!(finished.phase, RunPhase::Completed, "{finished:#?}");
    assert_eq!(finished.writes, 1);
    fleet.stop().await;
}
