//! Starting a fleet in one process for tests, the demo and the benchmark: the coordinator's tasks
//! and one agent task per cluster, each agent with its own NATS connection as in production.

use agent::{Agent, AgentSettings, Executor};
use bus::Bus;
use coordinator::config::{CoordinatorConfig, NatsConfig};
use coordinator::inventory::DeclaredCluster;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// A running agent task.
pub struct AgentHandle {
    pub cluster: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), agent::AgentError>>,
}

impl AgentHandle {
    /// Asks the agent to stop gracefully and waits for it.
    pub async fn stop(self) -> Result<(), agent::AgentError> {
        let _ = self.shutdown.send(true);
        self.task.await.unwrap_or(Ok(()))
    }

    /// Kills the agent's task at its next await point, as a crash would: nothing is handed back.
    pub fn kill(self) {
        self.task.abort();
    }
}

/// Settings for test agents: quick polls so tests do not wait on timers.
pub fn test_settings(cluster: &str, labels: &[(&str, &str)]) -> AgentSettings {
    let mut settings = AgentSettings::new(cluster);
    settings.labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
    settings.poll_interval = Duration::from_millis(500);
    settings.progress_interval = Duration::from_millis(200);
    settings.shutdown_grace = Duration::from_millis(200);
    // Tests drive the coordinator with manual clocks that run hours ahead of the agents'.
    settings.max_clock_skew = Duration::from_secs(6 * 3600);
    settings
}

/// Connects an agent to a server from the shipped configuration: TLS with `ca_file`, and its
/// signed `agent:<cluster>` credentials checked by the coordinator's auth callout (the agent must
/// be enrolled already).
pub async fn spawn_agent_secured<E: Executor>(
    url: &str,
    ca_file: &std::path::Path,
    settings: AgentSettings,
    executor: E,
) -> anyhow::Result<AgentHandle> {
    let (reconnected_tx, reconnected_rx) = mpsc::unbounded_channel();
    let security = bus::Security {
        ca_file: Some(ca_file.to_path_buf()),
        credentials: bus::Credentials::Signed { user: format!("agent:{}", settings.cluster) },
    };
    let key = testkit::identity::agent_key(&settings.cluster);
    let name = format!("agent-{}", settings.cluster);
    let bus = Bus::connect_secured(&security, Some(key), url, &name, Some(reconnected_tx)).await?;
    run_agent(bus, settings, executor, reconnected_rx).await
}

/// Runs an agent on `bus` in a task, trusting the test coordinator key unless `settings` name keys.
async fn run_agent<E: Executor>(
    bus: Bus,
    mut settings: AgentSettings,
    executor: E,
    reconnected: mpsc::UnboundedReceiver<()>,
) -> anyhow::Result<AgentHandle> {
    if settings.coordinator_keys.is_empty() {
        settings.coordinator_keys = vec![testkit::identity::coordinator_public()];
    }
    let cluster = settings.cluster.clone();
    let agent = Agent::new(bus, settings, executor).await?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(agent.run(shutdown_rx, Some(reconnected)));
    Ok(AgentHandle { cluster, shutdown, task })
}

/// Connects an agent to `url` with its test identity (enrolled, as `fleetctl agents enroll`
/// would), trusting the test coordinator key unless `settings` name keys, and runs it in a task.
pub async fn spawn_agent<E: Executor>(url: &str, settings: AgentSettings, executor: E) -> anyhow::Result<AgentHandle> {
    spawn_agent_as(url, settings, executor, true).await
}

/// [`spawn_agent`] for a cluster enrolled beforehand (`enroll` false): only the agent's own
/// connection and start, as in production.
pub async fn spawn_agent_as<E: Executor>(
    url: &str,
    settings: AgentSettings,
    executor: E,
    enroll: bool,
) -> anyhow::Result<AgentHandle> {
    let (reconnected_tx, reconnected_rx) = mpsc::unbounded_channel();
    let bus = Bus::connect_with_events(url, &format!("agent-{}", settings.cluster), Some(reconnected_tx))
        .await?
        .with_identity(testkit::identity::agent_key(&settings.cluster));
    if enroll {
        testkit::identity::enroll(&bus, &settings.cluster).await?;
    }
    run_agent(bus, settings, executor, reconnected_rx).await
}

/// A running coordinator (recorder and control API).
pub struct CoordinatorHandle {
    pub bus: Bus,
    shutdown: watch::Sender<bool>,
    running: Option<coordinator::daemon::Running>,
}

impl CoordinatorHandle {
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(running) = self.running.take() {
            let _ = running.wait().await;
        }
    }
}

/// The operators of every test coordinator: `test-admin` (approve), `test-operate` (operate) and
/// `test-reader` (read-only), with their testkit keys.
pub fn test_operators() -> Vec<coordinator::authz::OperatorConfig> {
    use proto::identity::Role;
    use testkit::identity::{TEST_OPERATE, TEST_OPERATOR, TEST_READER, operator_key};
    [(TEST_OPERATOR, Role::Approve), (TEST_OPERATE, Role::Operate), (TEST_READER, Role::ReadOnly)]
        .into_iter()
        .map(|(name, role)| coordinator::authz::OperatorConfig {
            name: name.into(),
            public_key: operator_key(name).public().to_string(),
            role,
        })
        .collect()
}

/// Starts the coordinator with these declared clusters.
pub async fn start_coordinator(url: &str, clusters: Vec<DeclaredCluster>) -> anyhow::Result<CoordinatorHandle> {
    start_coordinator_with(url, clusters, coordinator::daemon::Options::default()).await
}

/// Starts the coordinator with these declared clusters and daemon options (a test clock, a
/// faster tick), and waits until it leads (runs the rollouts).
pub async fn start_coordinator_with(
    url: &str,
    clusters: Vec<DeclaredCluster>,
    options: coordinator::daemon::Options,
) -> anyhow::Result<CoordinatorHandle> {
    let bus = Bus::connect(url, "fleet-coordinator").await?.with_identity(testkit::identity::coordinator_key());
    start_coordinator_on(bus, url, clusters, options).await
}

/// [`start_coordinator_with`] on a connection the caller made (TLS and credentials of its own).
pub async fn start_coordinator_on(
    bus: Bus,
    url: &str,
    clusters: Vec<DeclaredCluster>,
    options: coordinator::daemon::Options,
) -> anyhow::Result<CoordinatorHandle> {
    start_coordinator_replicated(bus, url, clusters, options, 1).await
}

/// [`start_coordinator_on`] with every stream and bucket at `replicas` (a JetStream cluster).
pub async fn start_coordinator_replicated(
    bus: Bus,
    url: &str,
    clusters: Vec<DeclaredCluster>,
    options: coordinator::daemon::Options,
    replicas: usize,
) -> anyhow::Result<CoordinatorHandle> {
    let config = CoordinatorConfig {
        nats: NatsConfig::plain(url),
        replicas,
        clusters,
        leader: Default::default(),
        central: None,
        identity: None,
        operators: test_operators(),
        audit: Default::default(),
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let running = coordinator::daemon::start_with(bus.clone(), &config, options, shutdown_rx).await?;
    let mut leading = running.leading.clone();
    let _ = tokio::time::timeout(Duration::from_secs(10), leading.wait_for(|leads| *leads)).await;
    Ok(CoordinatorHandle { bus, shutdown, running: Some(running) })
}

/// Declared clusters `prefix-000 … prefix-(n-1)` with `ring` labels: ring 0 (canary) for the first
/// cluster, ring 1 for the rest.
pub fn declare(prefix: &str, n: usize) -> Vec<DeclaredCluster> {
    (0..n)
        .map(|index| DeclaredCluster {
            id: format!("{prefix}-{index:03}"),
            labels: BTreeMap::from([
                ("env".to_string(), "demo".to_string()),
                ("ring".to_string(), if index == 0 { "0" } else { "1" }.to_string()),
            ]),
        })
        .collect()
}

/// Sends `command` to the clusters `selector` picks through the coordinator's control path, then
/// polls until every target has a result or timed out. `on_progress` gets the tally at each change.
pub async fn run_and_follow(
    bus: &Bus,
    command: proto::Command,
    selector: &str,
    deadline: Duration,
    mut on_progress: impl FnMut(&coordinator::rollout::Tally),
) -> anyhow::Result<(String, Vec<(proto::control::Target, coordinator::rollout::TargetState)>)> {
    use coordinator::rollout::{self, Tally};
    let request = proto::control::RunRequest {
        schema: proto::version::SchemaVersion::CURRENT,
        command,
        selector: selector.to_string(),
        deadline_secs: deadline.as_secs().max(1),
        dry_run: false,
        requested_by: Some("demo".into()),
    };
    let reply = coordinator::control::run(bus, request).await?;
    let rollout_id = match reply {
        proto::control::RunReply::Accepted { rollout_id, .. } => rollout_id,
        proto::control::RunReply::Refused { code, message } => anyhow::bail!("refused ({code}): {message}"),
        proto::control::RunReply::Unknown => anyhow::bail!("a reply this build does not know"),
    };
    let (record, _) =
        rollout::rollouts(bus).await?.get(&rollout_id).await?.ok_or_else(|| anyhow::anyhow!("rollout vanished"))?;
    let mut last = None;
    loop {
        let states = rollout::target_states(bus, &record, time::OffsetDateTime::now_utc()).await?;
        let tally = Tally::of(states.iter().map(|(_, state)| state));
        if last.as_ref() != Some(&tally) {
            on_progress(&tally);
            last = Some(tally.clone());
        }
        if tally.finished() {
            return Ok((rollout_id, states));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A rollout file named `name` whose setup every test, the demo's AD-less path and the benchmark
/// share (the AD facts given, so no stage 0; the simulated world's vault), with `strategy` — the
/// YAML body of the `strategy:` section, indented by two spaces.
pub fn rollout_file(name: &str, strategy: &str) -> anyhow::Result<proto::rollout::RolloutFile> {
    let yaml = format!(
        r#"
name: {name}
setup:
  dns_server: 10.1.0.4
  root_domain: contoso.com
  vault: {{subscription_id: {vault_subscription}, resource_group: {vault_group}, name: {vault_name}}}
  secret_name: GMSADomainUserCred
  identity: {{type: kubelet}}
  credspec:
    spec_name: aks-gmsa-spec
    gmsa_account: WebApp01
    bindings: [{{namespace: default, name: default}}]
    netbios_domain: CONTOSO
    dns_domain: contoso.com
    dns_tree_root: contoso.com
    domain_guid: 244818ae-87ca-4fcd-92ec-e79e5252348a
    domain_sid: S-1-5-21-2126729477-2524075714-3094792973
  validate: false
strategy:
{strategy}
"#,
        vault_subscription = crate::world::VAULT_SUBSCRIPTION,
        vault_group = crate::world::VAULT_RESOURCE_GROUP,
        vault_name = crate::world::VAULT_NAME,
    );
    serde_yaml::from_str(&yaml).map_err(|err| anyhow::anyhow!("the rollout file does not parse: {err}\n{yaml}"))
}

/// The YAML of a rollout file named `name` with a `central` section (stage 0 creates the vault
/// `vault` in the simulated world's vault group, users `user` and `<user>-b`, the gMSA `gmsa`, and
/// the secret), for the AD domain `realm` (its DNS name), with `overrides` (a top-level
/// `overrides:` section or nothing) and `strategy` (the body of `strategy:`, indented by two).
pub fn central_rollout_yaml(
    name: &str,
    realm: &str,
    user: &str,
    gmsa: &str,
    vault: &str,
    overrides: &str,
    strategy: &str,
) -> String {
    format!(
        r#"
name: {name}
setup:
  dns_server: 10.1.0.4
  root_domain: {realm}
  vault: {{subscription_id: {sub}, resource_group: {rg}, name: {vault}}}
  secret_name: GMSADomainUserCred
  identity: {{type: kubelet}}
  credspec:
    spec_name: aks-gmsa-spec
    gmsa_account: {gmsa}
    bindings: [{{namespace: default, name: default}}]
  central:
    domain_user: {user}
    vault_create: {{location: westeurope}}
  validate: false
{overrides}
strategy:
{strategy}
"#,
        realm = realm.to_lowercase(),
        sub = crate::world::VAULT_SUBSCRIPTION,
        rg = crate::world::VAULT_RESOURCE_GROUP,
    )
}
