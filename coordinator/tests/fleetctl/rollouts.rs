//! Rollouts through the built binaries: `fleetctl rollout …` against `fleet-coordinator` processes
//! (killed with SIGKILL at random points, and two of them for fail-over), with in-memory clusters
//! whose executors count every execution of every command.

use super::{fleetctl, mk_fleet, of_type};
use agent::{ExecError, Executor, Progress};
use coordinator::inventory::DeclaredCluster;
use proto::{CommandEnvelope, CommandKind, StepOutcome, subjects};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::nats::NatsServer;
use tests::memory::{MemoryExecutor, MemoryFleet, Pause};

const ROLLOUT: &str = r#"
name: binary-rollout
setup:
  dns_server: 10.1.0.4
  root_domain: contoso.com
  vault: {subscription_id: 00000000-0000-4000-8000-000000000000, resource_group: rg-gmsa, name: kv-gmsa-fleet}
  secret_name: GMSADomainUserCred
  identity: {type: kubelet}
  credspec:
    spec_name: aks-gmsa-spec
    gmsa_account: WebApp01
    bindings: [{namespace: default, name: default}]
    netbios_domain: CONTOSO
    dns_domain: contoso.com
    dns_tree_root: contoso.com
    domain_guid: 244818ae-87ca-4fcd-92ec-e79e5252348a
    domain_sid: S-1-5-21-2126729477-2524075714-3094792973
  validate: false
strategy:
  stages:
    - {name: canary, count: 1}
    - {name: wave, max_concurrency: "25%"}
  # ARM's own per-subscription limits (the default leaves other writers room, and would pace
  # 200 clusters of one subscription at 2 a second).
  arm_budget: {burst: 200, per_sec: 10}
"#;

/// fleetctl, signing its requests as the test operator (role approve).
pub(super) fn fleetctl_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleetctl"));
    command.env("FLEETCTL_OPERATOR_KEY", testkit::identity::operator_key_file());
    command
}

pub(super) fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_files_that_break_a_rule_are_refused_before_anything_is_sent() {
    let fleet = mk_fleet(&[("p1", "prod"), ("p2", "prod"), ("d1", "dev")]).await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown field",
            ROLLOUT.replace("  validate: false", "  validate: false\n  valdate: true"),
            "setup.valdate: unknown field; did you mean validate?",
        ),
        (
            "wrong type",
            ROLLOUT.replace("soak", "x").replace("{name: canary, count: 1}", "{name: canary, count: one}"),
            "strategy.stages[0].count",
        ),
        (
            "budget over 100 %",
            ROLLOUT.replace("max_concurrency: \"25%\"}", "max_concurrency: \"25%\", failure_budget: \"150%\"}"),
            "strategy.stages[1].failure_budget",
        ),
        (
            "zero concurrency",
            ROLLOUT.replace("max_concurrency: \"25%\"", "max_concurrency: 0"),
            "strategy.stages[1].max_concurrency",
        ),
        (
            "overlapping stage selectors",
            ROLLOUT
                .replace("{name: canary, count: 1}", "{name: canary, selector: env=prod}")
                .replace("{name: wave, max_concurrency: \"25%\"}", "{name: wave, selector: \"env in (prod,dev)\"}"),
            "canary",
        ),
        (
            "an override of a field that does not exist",
            ROLLOUT.replace("strategy:", "overrides:\n  - {selector: env=dev, set: {dns_servr: 10.2.0.4}}\nstrategy:"),
            "overrides[0].set.dns_servr: unknown field; did you mean dns_server?",
        ),
    ];
    for (index, (what, text, names)) in cases.iter().enumerate() {
        let path = write_file(dir.path(), &format!("bad-{index}.yaml"), text);
        for verb in ["plan", "start"] {
            let (code, _, stderr) = fleetctl(&fleet, &["rollout", verb, "-f", path.to_str().unwrap()]).await;
            assert_eq!(code, 2, "{what} ({verb}): {stderr}");
            assert!(stderr.contains(names), "{what} ({verb}): expected {names:?} in: {stderr}");
        }
    }
    // Nothing was sent, and no rollout exists.
    let bus = bus::Bus::connect(&fleet.server.url(), "check")
        .await
        .unwrap()
        .with_identity(testkit::identity::operator_key(testkit::identity::TEST_OPERATOR));
    let mut stream = bus.jetstream().get_stream(subjects::COMMAND_STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
    let (code, records, stderr) = fleetctl(&fleet, &["rollout", "list", "-o", "json"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(of_type(&records, "rollout").is_empty(), "{records:?}");
    let _ = fleet.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_plan_prints_the_stages_and_start_watch_follows_it_to_the_end() {
    let fleet = mk_fleet(&[("p1", "prod"), ("p2", "prod"), ("p3", "prod"), ("d1", "dev")]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "rollout.yaml",
        &ROLLOUT.replace("name: binary-rollout", "name: binary-rollout\nselector: env=prod"),
    );
    let (code, records, stderr) =
        fleetctl(&fleet, &["rollout", "plan", "-f", path.to_str().unwrap(), "-o", "json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let stages = of_type(&records, "planned_stage");
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0]["clusters"], serde_json::json!(["p1"]));
    assert_eq!(stages[1]["clusters"], serde_json::json!(["p2", "p3"]));
    let (code, records, stderr) =
        fleetctl(&fleet, &["rollout", "start", "-f", path.to_str().unwrap(), "--watch", "-o", "json"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("canary ["), "live progress on stderr: {stderr}");
    let phase = of_type(&records, "rollout_phase");
    assert_eq!(phase[0]["phase"], "completed", "{records:?}");
    let clusters = of_type(&records, "rollout_cluster");
    assert_eq!(clusters.len(), 3);
    assert!(clusters.iter().all(|cluster| cluster["state"] == "succeeded"), "{clusters:?}");
    let (code, records, _) = fleetctl(&fleet, &["rollout", "list", "-o", "json"]).await;
    assert_eq!(code, 0);
    assert_eq!(of_type(&records, "rollout")[0]["phase"], "completed");
    let _ = fleet.shutdown.send(true);
}

/// Executions of every command, by cluster and command id, across the whole test.
#[derive(Default)]
struct Executions(Mutex<BTreeMap<(String, String), u32>>);

#[derive(Clone)]
struct Counting {
    inner: MemoryExecutor,
    cluster: String,
    executions: Arc<Executions>,
    delay: Duration,
}

impl Executor for Counting {
    fn capabilities(&self) -> Vec<CommandKind> {
        CommandKind::ALL.to_vec()
    }

    async fn execute(&self, envelope: &CommandEnvelope, progress: Progress) -> Result<Vec<StepOutcome>, ExecError> {
        *self
            .executions
            .0
            .lock()
            .unwrap()
            .entry((self.cluster.clone(), envelope.command_id.to_string()))
            .or_default() += 1;
        tokio::time::sleep(self.delay).await;
        self.inner.execute(envelope, progress).await
    }
}

/// A nats-server, `n` in-process agents over in-memory clusters, and coordinator processes.
struct ProcessFleet {
    server: NatsServer,
    dir: tempfile::TempDir,
    config: PathBuf,
    memory: MemoryFleet,
    executions: Arc<Executions>,
    shutdown: tokio::sync::watch::Sender<bool>,
    spawned: std::sync::atomic::AtomicU64,
}

impl ProcessFleet {
    async fn start(n: usize, delay: Duration, ttl_secs: u64) -> ProcessFleet {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = NatsServer::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let clusters: Vec<DeclaredCluster> = (0..n)
            .map(|i| DeclaredCluster {
                id: format!("k-{i:03}"),
                labels: BTreeMap::from([("env".into(), "prod".into())]),
            })
            .collect();
        let mut toml = format!(
            "replicas = 1\n[nats]\nurl = \"{}\"\n[leader]\nttl_secs = {ttl_secs}\nrenew_millis = 250\n",
            server.url()
        );
        let key = write_file(dir.path(), "coordinator.key", &testkit::identity::coordinator_key().to_text());
        toml.push_str(&format!("[identity]\nkey_file = \"{}\"\n", key.display()));
        toml.push_str(&testkit::identity::test_operator_toml());
        for cluster in &clusters {
            toml.push_str(&format!("[[clusters]]\nid = \"{}\"\nlabels = {{ env = \"prod\" }}\n", cluster.id));
        }
        let config = write_file(dir.path(), "coordinator.toml", &toml);
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let fleet = ProcessFleet {
            server,
            dir,
            config,
            memory: MemoryFleet::default(),
            executions: Arc::default(),
            shutdown,
            spawned: Default::default(),
        };
        // The first coordinator creates the bus layout the agents need.
        let first = fleet.coordinator();
        fleet.wait_for_leader(first.id()).await;
        for cluster in clusters {
            let bus = bus::Bus::connect(&fleet.server.url(), &cluster.id)
                .await
                .unwrap()
                .with_identity(testkit::identity::agent_key(&cluster.id));
            testkit::identity::enroll(&bus, &cluster.id).await.unwrap();
            let mut settings = agent::AgentSettings::new(cluster.id.clone());
            settings.coordinator_keys = vec![testkit::identity::coordinator_public()];
            settings.poll_interval = Duration::from_millis(500);
            let executor = Counting {
                inner: fleet.memory.executor(&cluster.id, Pause::None),
                cluster: cluster.id.clone(),
                executions: fleet.executions.clone(),
                delay,
            };
            let agent = agent::Agent::new(bus, settings, executor).await.unwrap();
            tokio::spawn(agent.run(shutdown_rx.clone(), None));
        }
        drop(first);
        fleet
    }

    /// Starts a `fleet-coordinator` process (killed when the handle drops, even on a panic).
    fn coordinator(&self) -> Process {
        let child = Command::new(env!("CARGO_BIN_EXE_fleet-coordinator"))
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", std::env::var("COORDINATOR_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(std::process::Stdio::null())
            .stderr(match std::env::var("COORDINATOR_LOG_DIR") {
                Ok(dir) => std::process::Stdio::from(
                    std::fs::File::create(format!(
                        "{dir}/coordinator-{}.log",
                        std::process::id() as u64 * 1000 + self.spawned()
                    ))
                    .unwrap(),
                ),
                Err(_) => std::process::Stdio::null(),
            })
            .spawn()
            .unwrap();
        Process(child)
    }

    /// How many coordinators this fleet started (names their log files).
    fn spawned(&self) -> u64 {
        self.spawned.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }

    /// The current lease holder's process id, if a lease is valid.
    async fn leader_pid(&self) -> Option<u32> {
        let bus = bus::Bus::connect(&self.server.url(), "lease-reader").await.ok()?;
        let bucket: bus::kv::Bucket<coordinator::lease::Lease> =
            bus::kv::Bucket::open(&bus, subjects::LEADER_BUCKET).await.ok()?;
        let (lease, _) = bucket.get("leader").await.ok().flatten()?;
        if lease.expires_at < time::OffsetDateTime::now_utc() {
            return None;
        }
        lease.holder.rsplit('-').next()?.parse().ok()
    }

    /// Waits until `pid` holds the lease (a killed leader's lease must expire first).
    async fn wait_for_leader(&self, pid: u32) {
        let started = Instant::now();
        loop {
            if self.leader_pid().await == Some(pid) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no coordinator took the lease");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fleetctl(&self, args: &[&str]) -> (i32, Vec<Value>, String) {
        let url = self.server.url();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let output =
            tokio::task::spawn_blocking(move || fleetctl_command().arg("--nats").arg(url).args(args).output().unwrap())
                .await
                .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let records = stdout.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
        (output.status.code().unwrap_or(-1), records, String::from_utf8(output.stderr).unwrap())
    }

    async fn start_rollout(&self, dns_server: &str) -> String {
        let text = ROLLOUT.replace("10.1.0.4", dns_server);
        let path = write_file(self.dir.path(), &format!("rollout-{dns_server}.yaml"), &text);
        let (code, records, stderr) =
            self.fleetctl(&["rollout", "start", "-f", path.to_str().unwrap(), "-o", "json"]).await;
        assert_eq!(code, 0, "{stderr}");
        of_type(&records, "started")[0]["rollout_id"].as_str().unwrap().to_string()
    }

    /// Polls `fleetctl rollout status` until the rollout is no longer running.
    async fn wait_done(&self, rollout_id: &str, within: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let (_, records, _) = self.fleetctl(&["rollout", "status", rollout_id, "-o", "json"]).await;
            if let Some(phase) = of_type(&records, "rollout_phase").first()
                && phase["phase"] != "running"
            {
                return records;
            }
            assert!(started.elapsed() < within, "{rollout_id} not done: {records:?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// A child process killed (SIGKILL) and reaped on drop.
pub(super) struct Process(pub(super) Child);

impl Process {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A small deterministic generator for the kill points (a seed per trial, printed on failure).
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_killed_at_random_points_of_a_200_cluster_rollout_loses_nothing_and_repeats_nothing() {
    let fleet = ProcessFleet::start(200, Duration::from_millis(20), 2).await;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for trial in 0..10u64 {
        let trial_started = Instant::now();
        let mut coordinator = fleet.coordinator();
        fleet.wait_for_leader(coordinator.id()).await;
        // Each trial changes the DNS server, so every cluster's enable-gmsa writes once more.
        let dns = format!("10.1.0.{}", 10 + trial);
        let writes_before = fleet.memory.total_writes();
        let rollout_id = fleet.start_rollout(&dns).await;
        for _ in 0..2 {
            let wait_ms = 100 + next_random(&mut seed) % 1500;
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            drop(coordinator);
            coordinator = fleet.coordinator();
        }
        let records = fleet.wait_done(&rollout_id, Duration::from_secs(90)).await;
        let phase = &of_type(&records, "rollout_phase")[0];
        assert_eq!(phase["phase"], "completed", "trial {trial} (seed {seed:#x}): {phase}");
        let stage = of_type(&records, "stage");
        let succeeded: u64 = stage.iter().map(|s| s["succeeded"].as_u64().unwrap()).sum();
        assert_eq!(succeeded, 200, "trial {trial}: every cluster's results reached the engine");
        // Every command of this rollout ran exactly once on its cluster.
        let bus = bus::Bus::connect(&fleet.server.url(), "check")
            .await
            .unwrap()
            .with_identity(testkit::identity::operator_key(testkit::identity::TEST_OPERATOR));
        let mut per_cluster: BTreeMap<String, usize> = BTreeMap::new();
        for ((cluster, command_id), count) in fleet.executions.0.lock().unwrap().iter() {
            let _ = command_id;
            assert!(*count <= 1, "trial {trial}: {cluster} ran {command_id} {count} times");
            *per_cluster.entry(cluster.clone()).or_default() += 1;
        }
        assert_eq!(per_cluster.len(), 200);
        assert!(per_cluster.values().all(|runs| *runs == 3 * (trial as usize + 1)), "trial {trial}: {per_cluster:?}");
        // One effect per cluster: the DNS change written once each.
        assert_eq!(fleet.memory.total_writes() - writes_before, if trial == 0 { 600 } else { 200 }, "trial {trial}");
        drop(bus);
        drop(coordinator);
        eprintln!("trial {trial}: {:?}", trial_started.elapsed());
    }
    let _ = fleet.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_within_ten_seconds_of_the_leader_being_killed_and_completes_the_rollout() {
    let fleet = ProcessFleet::start(20, Duration::from_millis(300), 3).await;
    let first = fleet.coordinator();
    let first_pid = first.id();
    fleet.wait_for_leader(first_pid).await;
    let standby = fleet.coordinator();
    let standby_pid = standby.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rollout_id = fleet.start_rollout("10.9.0.4").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = Instant::now();
    drop(first);
    let started = Instant::now();
    let new_leader = loop {
        if let Some(pid) = fleet.leader_pid().await
            && pid != first_pid
        {
            break pid;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "nobody took over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took_over = killed.elapsed();
    assert_eq!(new_leader, standby_pid);
    assert!(took_over < Duration::from_secs(10), "took {took_over:?}");
    let records = fleet.wait_done(&rollout_id, Duration::from_secs(60)).await;
    assert_eq!(of_type(&records, "rollout_phase")[0]["phase"], "completed", "{records:?}");
    assert!(fleet.executions.0.lock().unwrap().values().all(|count| *count == 1));
    eprintln!("fail-over took {took_over:?}");
    drop(standby);
    let _ = fleet.shutdown.send(true);
}

/// A `fleet-coordinator` configuration with its central section on `world`'s simulators and the
/// Samba DC `dc` (secrets from `S0_COORDINATOR_SECRET` and `S0_AD_PASSWORD`), declaring `world`'s
/// clusters.
pub(super) fn central_config(
    dir: &Path,
    nats_url: &str,
    world: &tests::world::SimWorld,
    dc: &testkit::samba::SambaDc,
) -> PathBuf {
    use tests::world::{COORDINATOR_CLIENT_ID, COORDINATOR_OBJECT_ID};
    let mut toml = format!(
        r#"replicas = 1
[nats]
url = "{nats}"
[leader]
ttl_secs = 2
renew_millis = 250
[central]
tenant_id = "{tenant}"
principal_object_id = "{object_id}"
[central.azure]
extra_ca_file = "{ca}"
https_proxy = "{proxy}"
[central.azure.credential]
type = "client-secret"
tenant_id = "{tenant}"
client_id = "{client}"
secret_env = "S0_COORDINATOR_SECRET"
[central.ad]
url = "{ldaps}"
bind_principal = "{principal}"
password_env = "S0_AD_PASSWORD"
ca_file = "{dc_ca}"
"#,
        nats = nats_url,
        tenant = world.azure.tenant_id(),
        object_id = COORDINATOR_OBJECT_ID,
        proxy = world.azure.https_proxy(),
        ca = world.ca_file().display(),
        client = COORDINATOR_CLIENT_ID,
        ldaps = dc.ldaps_url(),
        principal = dc.admin_principal(),
        dc_ca = dc.ca_cert_path().display(),
    );
    let key = write_file(dir, "coordinator.key", &testkit::identity::coordinator_key().to_text());
    toml.push_str(&format!("[identity]\nkey_file = \"{}\"\n", key.display()));
    toml.push_str(&testkit::identity::test_operator_toml());
    for cluster in world.declared() {
        let labels: Vec<String> = cluster.labels.iter().map(|(k, v)| format!("{k} = \"{v}\"")).collect();
        toml.push_str(&format!("[[clusters]]\nid = \"{}\"\nlabels = {{ {} }}\n", cluster.id, labels.join(", ")));
    }
    write_file(dir, "coordinator.toml", &toml)
}

/// The whole setup, stage 0 included, by `fleet-coordinator` run as its own process with its
/// central configuration, against the Azure and Kubernetes simulators and a real Samba AD DC,
/// driven only by fleetctl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_coordinator_with_its_central_section_does_the_whole_setup_stage_0_included_driven_by_fleetctl() {
    use tests::world::{COORDINATOR_SECRET, SimWorld, VAULT_RESOURCE_GROUP, VAULT_SUBSCRIPTION};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = NatsServer::start().unwrap();
    let dc = tokio::task::spawn_blocking(testkit::samba::SambaDc::shared).await.unwrap();
    let world = SimWorld::build("s0", 2, 2).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = central_config(dir.path(), &server.url(), &world, dc);
    let coordinator = Process(
        Command::new(env!("CARGO_BIN_EXE_fleet-coordinator"))
            .arg("--config")
            .arg(&config)
            .env("S0_COORDINATOR_SECRET", COORDINATOR_SECRET)
            .env("S0_AD_PASSWORD", dc.admin_password())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Agents start once the coordinator has laid out the bus.
    let bus = bus::Bus::connect(&server.url(), "check")
        .await
        .unwrap()
        .with_identity(testkit::identity::operator_key(testkit::identity::TEST_OPERATOR));
    let started = Instant::now();
    while bus::kv::cursors(&bus).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the coordinator never created the bus layout");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let agents = world.spawn_agents(&server.url(), |cluster| tests::fleet::test_settings(cluster, &[])).await.unwrap();
    let (user, gmsa) = (testkit::samba::unique_name("s0u"), testkit::samba::unique_name("s0g"));
    let vault = format!("kv{}", testkit::samba::unique_name("s"));
    let rollout = tests::fleet::central_rollout_yaml(
        "stage-0-through-the-binaries",
        dc.realm(),
        &user,
        &gmsa,
        &vault,
        "",
        "  stages:\n    - {name: canary, count: 1}\n    - {name: rest}",
    );
    let path = write_file(dir.path(), "rollout.yaml", &rollout);
    let url = server.url();
    let args = ["rollout", "start", "-f", path.to_str().unwrap(), "--watch", "-o", "json"].map(String::from);
    let output =
        tokio::task::spawn_blocking(move || fleetctl_command().arg("--nats").arg(url).args(args).output().unwrap())
            .await
            .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let records: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(output.status.code(), Some(0), "{stderr}\n{records:?}");
    assert_eq!(of_type(&records, "rollout_phase")[0]["phase"], "completed");
    // Stage 0 ran centrally: the vault exists, the secret names the user, AD has user and gMSA.
    let vault_id = azure::VaultRef::new(VAULT_SUBSCRIPTION, VAULT_RESOURCE_GROUP, &vault).id();
    let secret = world.azure.secret_value(&vault_id, "GMSADomainUserCred", None).expect("the secret was written");
    assert!(secret.starts_with(&format!("{}\\{user}:", dc.netbios_domain())), "the secret names the domain user");
    let found =
        dc.ldbsearch(&dc.base_dn(), "sub", &format!("(sAMAccountName={gmsa}$)"), &["distinguishedName"]).unwrap();
    assert!(!found.is_empty(), "the gMSA exists in AD");
    // Every cluster got a credspec carrying what Samba reports.
    for cluster in &world.clusters {
        let credspec = cluster.kube.get("GMSACredentialSpec", None, "aks-gmsa-spec").expect("a credspec");
        let text = credspec.to_string();
        assert!(text.contains(dc.domain_sid()), "{}: {text}", cluster.id);
        assert!(text.contains(&gmsa), "{}: {text}", cluster.id);
        assert!(world.azure.gmsa_profile(&cluster.arm_id).is_some_and(|profile| profile.enabled == Some(true)));
    }
    // The password never reached the bus: not in any rollout log entry, command or result.
    let password = secret.split_once(':').map(|(_, password)| password.to_string()).unwrap();
    for stream in [subjects::ROLLOUT_LOG_STREAM, subjects::COMMAND_STREAM, subjects::RESULT_STREAM] {
        let info = bus.jetstream().get_stream(stream).await.unwrap();
        let mut sequence = 0;
        while let Ok(message) = info.direct_get_next_for_subject(">", Some(sequence + 1)).await {
            sequence = message.sequence;
            assert!(!String::from_utf8_lossy(&message.payload).contains(&password), "{stream} carries the password");
        }
    }
    for agent in agents {
        agent.stop().await.unwrap();
    }
    drop(coordinator);
}
