//! `fleet-bench`: the transport's cost per cluster, measured on one real nats-server.
//!
//! ```text
//! cargo run --release -p tests --bin fleet-bench -- --clusters 1000 --clusters 10000
//! ```
//!
//! For each fleet size N it starts a fresh nats-server, the coordinator (this process: recorder,
//! planner and publisher from the `coordinator` crate) and N agents running the real `agent` code,
//! each with its own NATS connection as in production. The agents share one child process (tasks on
//! a 2-thread runtime: 10,000 OS processes do not fit a 2-core machine), so agent memory is measured
//! apart from the coordinator's. The executor is the in-memory simulated cluster: this measures the
//! bus, not Azure.
//!
//! Printed per size: clusters/s for one fleet-wide command (first publish → last result), p50/p99
//! of publish → result per cluster, nats-server RSS and its growth per cluster, coordinator RSS,
//! agent RSS per cluster — and, in the same run on the same server, the raw JetStream publish-ack
//! rate of same-sized messages (the baseline) with the ratio. `--compare-durables` also measures the
//! rejected alternative: one durable consumer per cluster (creation time and server memory).
//!
//! # Rollout mode
//!
//! ```text
//! cargo run --release -p tests --bin fleet-bench -- --rollout --clusters 1000 --clusters 10000
//! ```
//!
//! For each size N: a fresh nats-server, the coordinator **daemon** in this process
//! (`coordinator::daemon::start_with`, the code production runs, rollout driver tick `--tick-ms`),
//! N agents in a child process over in-memory clusters whose executor sleeps a simulated latency
//! per write: `--arm-latency-ms` (default 200) on `enable-gmsa` and `grant-identity` (ARM writes),
//! `--kube-latency-ms` (default 50) on `apply-credspec` (a Kubernetes write). The clusters are
//! spread round-robin over `--subscriptions` subscriptions (the `subscription` inventory label); the
//! vault is in a subscription of its own. One rollout file (AD facts given, so no stage 0) runs in
//! five stages — canary `count: 1` (concurrency 1), then 5 %, 15 %, 30 % and the rest of the
//! clusters left, each with `max_concurrency: --concurrency` (default `10%` of the stage), no
//! approvals, `soak_secs: 0` — with the ARM budget `{burst: --arm-burst, per_sec: --arm-per-sec}`.
//! It is started with `RolloutRequest::Start` and followed with `RolloutRequest::Status` once a
//! second.
//!
//! **Lower bound** (computed from the plan and the latencies, not measured). Let `L` be the sum of
//! a cluster's step latencies (`2 × arm + kube` for enable-gmsa, grant-identity, apply-credspec),
//! stage `s` have `n_s` clusters and concurrency `c_s`, and `W_{s,b}` be the ARM-writing steps of
//! stage `s` charged to subscription `b` (enable-gmsa: the cluster's; grant-identity: the vault's,
//! plus the cluster's for a user-assigned identity — as `gmsa::rollout::engine` charges them).
//! Stages run one after another, so with `P_0 = 0`:
//!
//! ```text
//! P_s = max( P_{s-1} + ceil(n_s / c_s) × L ,
//!            max_b ( (Σ_{s' ≤ s} W_{s',b} − burst) / per_sec + L )   over b with Σ W > burst )
//! lower bound = P_last
//! ```
//!
//! The first term: at most `c_s` clusters of a stage run at once, each takes at least `L`, and
//! the stage starts after the previous one ended. The second: bucket `b` is full (`burst`) when
//! first used and refills `per_sec` a second, so its k-th token beyond the burst is taken no
//! earlier than `k / per_sec` after its first use, which is no earlier than the latency of the
//! steps before the charged step; the step and the steps after it still take their latency
//! (together always `L`). Buckets carry over from stage to stage, hence the prefix sums. The
//! transport, the driver and the agents cost nothing in the bound; **ratio = bound ÷ wall**.
//!
//! Wall time runs from sending `Start` to the last step result arriving (a core subscription on
//! the result subjects in this process; the 1 s status poll that sees `completed` is printed
//! too). Coordinator CPU is this process's user+sys time from `/proc/self/stat` over the rollout
//! — the daemon plus the bench's own status poll and result subscription, which are small — and
//! RSS is this process's (`testkit::nats::rss_bytes`, with the peak `VmHWM`). The engine's
//! decisions per second come from a pure micro-benchmark in the same run: `RolloutState::start`
//! on the same plan, then `handle(StepFinished{changed})` for every `Send` as fast as possible
//! (simulated time advancing 1 ms a call, a `Tick` of 1 s when nothing is in flight), counting
//! `handle` calls per second. The raw JetStream publish+ack baseline is printed as in the
//! transport mode, with the ratio of the rollout's steps/s to it.

use anyhow::{Context, bail};
use bus::Bus;
use clap::Parser;
use coordinator::plan;
use coordinator::rollouts::api::{RolloutReply, RolloutRequest};
use coordinator::rollouts::driver::{DriverSettings, SUBSCRIPTION_LABEL};
use futures::StreamExt;
use gmsa::rollout::{Action, Event, Member, Phase, Plan, RolloutState, StepResult};
use proto::CommandKind;
use proto::command::IdentityChoice;
use proto::rollout::RolloutFile;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::nats::{NatsOptions, NatsServer, rss_bytes};
use testkit::nats_cluster::NatsCluster;
use tests::fleet::declare;
use tests::memory::{MemoryExecutor, MemoryFleet, Pause};

#[derive(Parser)]
#[command(about = "Measure gmsa-fleet's transport at fleet scale on one real nats-server")]
struct Args {
    /// Fleet sizes to measure (repeat the flag).
    #[arg(long = "clusters", default_values_t = vec![1000usize, 10000])]
    clusters: Vec<usize>,
    /// Also measure one durable consumer per cluster, the alternative design.
    #[arg(long)]
    compare_durables: bool,
    /// Transport mode: run on a JetStream cluster of 3 nodes on loopback with every stream and
    /// bucket (and the baseline's stream) at this replica count (1 = one server).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    replicas: u8,
    /// Transport mode: the shipped server configuration (`deploy/nats/nats-server.conf`: TLS, the
    /// accounts, the auth callout served by the coordinator); each agent connects with its own
    /// signed credentials, enrolled beforehand. One server (with `--replicas 1` only).
    #[arg(long, conflicts_with = "rollout")]
    secured: bool,
    /// Internal: the CA the child's agents trust (secured mode).
    #[arg(long, hide = true)]
    ca_file: Option<std::path::PathBuf>,
    /// Internal: the child's clusters are enrolled already (transport mode enrolls them first).
    #[arg(long, hide = true)]
    enrolled: bool,
    /// Internal: run the agents of a fleet in this process (used by the benchmark itself).
    #[arg(long, hide = true)]
    agents_for: Option<String>,
    #[arg(long, hide = true, default_value_t = 0)]
    count: usize,
    /// Measure a five-stage rollout through the coordinator daemon instead of one command.
    #[arg(long)]
    rollout: bool,
    /// Measure each fleet command twice, without and with the audit writer, and print the cost.
    #[arg(long)]
    audit_cost: bool,
    /// After the fleet command, SIGKILL the server and start it again at once (same port, same
    /// store), then time until every agent's consumer exists again and a second fleet command
    /// has every result. One server (with `--replicas 1` only).
    #[arg(long, conflicts_with_all = ["rollout", "audit_cost"])]
    restart: bool,
    /// Instead: write this many audit entries (realistic result entries) and time
    /// `fleetctl audit verify`'s check of them.
    #[arg(long)]
    verify_entries: Option<u64>,
    /// Rollout mode: simulated latency of an ARM write (enable-gmsa, grant-identity), in ms.
    #[arg(long, default_value_t = 200)]
    arm_latency_ms: u64,
    /// Rollout mode: simulated latency of a Kubernetes write (apply-credspec), in ms.
    #[arg(long, default_value_t = 50)]
    kube_latency_ms: u64,
    /// Rollout mode: the clusters are spread over this many subscriptions (the vault has its own).
    #[arg(long, default_value_t = 10)]
    subscriptions: usize,
    /// Rollout mode: the ARM budget's burst per subscription.
    #[arg(long, default_value_t = 200)]
    arm_burst: u32,
    /// Rollout mode: the ARM budget's refill per subscription and second (1-10, ARM's own rate).
    #[arg(long, default_value_t = 10)]
    arm_per_sec: u32,
    /// Rollout mode: `max_concurrency` of the stages after the canary (`25` or `10%`).
    #[arg(long, default_value = "10%")]
    concurrency: String,
    /// Rollout mode: the rollout driver's tick, in ms.
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// Rollout mode: give up after this many seconds.
    #[arg(long, default_value_t = 1800)]
    rollout_timeout_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if let Some(url) = &args.agents_for {
        let latency = Latency {
            arm: Duration::from_millis(args.arm_latency_ms),
            kube: Duration::from_millis(args.kube_latency_ms),
        };
        return runtime.block_on(run_agents(url.clone(), args.count, latency, args.ca_file.clone(), args.enrolled));
    }
    runtime.block_on(async {
        println!(
            "fleet-bench: {} cores, nats-server {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            nats_version()
        );
        if let Some(entries) = args.verify_entries {
            return verify_bench(entries).await;
        }
        for &clusters in &args.clusters {
            if args.audit_cost {
                let without = measure(clusters, false, false, args.replicas, args.secured, false).await?;
                without.print();
                let with = measure(clusters, args.compare_durables, true, args.replicas, args.secured, false).await?;
                with.print();
                let cost = with.fleet_command.as_secs_f64() / without.fleet_command.as_secs_f64() - 1.0;
                println!(
                    "audit cost at {clusters}: fleet command {:.3} s without, {:.3} s with the writer: {:+.1} % (goal: at most +10 %)",
                    without.fleet_command.as_secs_f64(),
                    with.fleet_command.as_secs_f64(),
                    cost * 100.0
                );
                continue;
            }
            if args.rollout {
                let figures = measure_rollout(clusters, &args).await?;
                figures.print();
                continue;
            }
            let figures =
                measure(clusters, args.compare_durables, true, args.replicas, args.secured, args.restart).await?;
            figures.print();
        }
        Ok(())
    })
}

fn nats_version() -> String {
    let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
    Command::new(binary)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// How many agents the child starts at once: a fleet's agents start independently; this bounds
/// the bench's own burst (each start makes a few JetStream API calls, and the server's API queue
/// drops everything beyond 10,000 pending requests).
const START_CONCURRENCY: usize = 256;

/// Child process: N agents, each with its own connection, until stdin closes.
async fn run_agents(
    url: String,
    count: usize,
    latency: Latency,
    ca_file: Option<std::path::PathBuf>,
    enrolled: bool,
) -> anyhow::Result<()> {
    let fleet = MemoryFleet::default();
    let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ids: Vec<String> = declare("bench", count).into_iter().map(|cluster| cluster.id).collect();
    let agents: Vec<_> = futures::stream::iter(ids)
        .map(|id| {
            let url = url.clone();
            let executor = Latent { inner: fleet.executor(&id, Pause::None), latency };
            let started = started.clone();
            let ca_file = ca_file.clone();
            async move {
                let mut settings = agent::AgentSettings::new(&id);
                // Production defaults, except no poll storm while measuring a 10k fleet.
                settings.poll_interval = Duration::from_secs(300);
                settings.heartbeat_interval = Duration::from_secs(300);
                let spawned = async {
                    match &ca_file {
                        Some(ca_file) => tests::fleet::spawn_agent_secured(&url, ca_file, settings, executor).await,
                        None => tests::fleet::spawn_agent_as(&url, settings, executor, !enrolled).await,
                    }
                };
                let agent = tokio::time::timeout(Duration::from_secs(60), spawned)
                    .await
                    .map_err(|_| anyhow::anyhow!("agent {id} did not start within 60s"))??;
                let count = started.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if count.is_multiple_of(1000) {
                    eprintln!("fleet-bench: {count} agents started");
                }
                Ok::<_, anyhow::Error>(agent)
            }
        })
        .buffer_unordered(START_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    println!("ready {}", agents.len());
    // Wait for the parent to close stdin, then stop every agent gracefully.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            line.clear();
        }
    })
    .await?;
    for agent in agents {
        let _ = agent.stop().await;
    }
    Ok(())
}

struct Figures {
    clusters: usize,
    replicas: u8,
    secured: bool,
    agents_start: Duration,
    /// From the start until every agent's command consumer exists (it can be sent commands).
    agents_listening: Duration,
    inventory_read: Duration,
    fleet_command: Duration,
    p50: Duration,
    p99: Duration,
    raw_rate: f64,
    server_rss_idle: u64,
    server_rss_fleet: u64,
    coordinator_rss: u64,
    agents_rss: u64,
    durables: Option<(Duration, u64)>,
    /// With the audit writer: when it had every command and result, its entries and bytes.
    audit: Option<(Duration, u64, u64)>,
    /// CPU (user+sys) from the first publish to the last result: nats-server, coordinator, agents.
    cpu: [Duration; 3],
    /// With `--restart`: what a server restart cost.
    restart: Option<Restart>,
}

/// After SIGKILL and an immediate restart of the server.
struct Restart {
    /// Agent consumers the restarted server still had when first asked (memory state is lost).
    consumers_left: u64,
    /// From the restart until every agent's consumer exists again.
    listening: Duration,
    /// The next fleet command, from its first publish to its last result.
    fleet_command: Duration,
    p99: Duration,
}

impl Figures {
    fn print(&self) {
        let n = self.clusters as f64;
        let rate = n / self.fleet_command.as_secs_f64();
        let mib = |bytes: u64| bytes as f64 / 1_048_576.0;
        let transport = if self.secured { "TLS, auth callout, per-agent credentials" } else { "plain TCP" };
        println!("\n== {} clusters, R{}, {transport} ==", self.clusters, self.replicas);
        println!(
            "agents connected and announced        {:>10.2} s   (goal at 10,000: <= 5 s)",
            self.agents_start.as_secs_f64()
        );
        println!("agents' command consumers all exist   {:>10.2} s", self.agents_listening.as_secs_f64());
        println!(
            "inventory read                        {:>10.3} s   (goal at 10,000: <= 0.5 s)",
            self.inventory_read.as_secs_f64()
        );
        println!(
            "one command fleet-wide, all results   {:>10.3} s  ({rate:.0} clusters/s)",
            self.fleet_command.as_secs_f64()
        );
        println!(
            "publish -> result per cluster         p50 {:.1} ms  p99 {:.1} ms   (goal at 10,000: p99 <= 500 ms)",
            ms(self.p50),
            ms(self.p99)
        );
        println!(
            "baseline: raw JetStream publish+ack   {:>10.0} msgs/s (same server, same size, same window)",
            self.raw_rate
        );
        println!("ratio clusters/s : raw publishes/s    {:>10.3}   (goal: >= 0.25)", rate / self.raw_rate);
        let [server, coordinator, agents] = self.cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / n);
        println!(
            "CPU per cluster over the command      server {server:.0} µs, coordinator {coordinator:.0} µs, agents {agents:.0} µs"
        );
        println!(
            "nats-server RSS idle / with fleet     {:>7.1} MiB / {:.1} MiB",
            mib(self.server_rss_idle),
            mib(self.server_rss_fleet)
        );
        println!(
            "nats-server memory per cluster        {:>10.1} KiB",
            self.server_rss_fleet.saturating_sub(self.server_rss_idle) as f64 / 1024.0 / n
        );
        println!("coordinator RSS                       {:>10.1} MiB", mib(self.coordinator_rss));
        println!(
            "agents RSS (one process) / per agent  {:>7.1} MiB / {:.1} KiB",
            mib(self.agents_rss),
            self.agents_rss as f64 / 1024.0 / n
        );
        match self.audit {
            Some((caught_up, entries, bytes)) => println!(
                "audit log caught up (commands+results) {:>9.2} s after the first publish; {entries} entries, {:.0} bytes each",
                caught_up.as_secs_f64(),
                bytes as f64 / entries.max(1) as f64
            ),
            None => println!("audit writer                          off"),
        }
        if let Some(restart) = &self.restart {
            println!(
                "server SIGKILLed and restarted: {} of {} consumers left; all back in {:.2} s",
                restart.consumers_left,
                self.clusters,
                restart.listening.as_secs_f64()
            );
            println!(
                "next command fleet-wide, all results  {:>10.3} s  ({:.0} clusters/s, p99 {:.1} ms)",
                restart.fleet_command.as_secs_f64(),
                n / restart.fleet_command.as_secs_f64(),
                ms(restart.p99)
            );
        }
        if let Some((created, rss)) = self.durables {
            println!(
                "alternative: durable consumer/cluster {:>10.2} s to create, {:.1} KiB server memory each",
                created.as_secs_f64(),
                rss as f64 / 1024.0 / n
            );
        }
        println!(
            "json {{\"clusters\":{},\"replicas\":{},\"secured\":{},\"inventory_s\":{:.3},\"agents_start_s\":{:.2},\"agents_listening_s\":{:.2},\"clusters_per_s\":{rate:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"raw_publish_per_s\":{:.1},\"ratio\":{:.4},\"server_kib_per_cluster\":{:.1},\"agent_kib_per_cluster\":{:.1},\"coordinator_mib\":{:.1}}}",
            self.clusters,
            self.replicas,
            self.secured,
            self.inventory_read.as_secs_f64(),
            self.agents_start.as_secs_f64(),
            self.agents_listening.as_secs_f64(),
            ms(self.p50),
            ms(self.p99),
            self.raw_rate,
            rate / self.raw_rate,
            self.server_rss_fleet.saturating_sub(self.server_rss_idle) as f64 / 1024.0 / n,
            self.agents_rss as f64 / 1024.0 / n,
            mib(self.coordinator_rss)
        );
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The server(s) a transport measurement runs on: one (plain, or from the shipped secured
/// configuration), or a 3-node JetStream cluster.
enum Servers {
    One(NatsServer),
    Cluster(NatsCluster),
}

impl Servers {
    fn start(replicas: u8, secured: bool) -> anyhow::Result<Servers> {
        Ok(match (replicas, secured) {
            (1, false) => Servers::One(NatsServer::start_with(NatsOptions::default())?),
            (1, true) => {
                let issuer = testkit::identity::callout_issuer_key();
                let nkey = gmsa::signing::nkey_of(&issuer.public(), gmsa::signing::NkeyKind::Account);
                Servers::One(NatsServer::start_shipped(&nkey)?)
            }
            (_, false) => Servers::Cluster(NatsCluster::start(3)?),
            (_, true) => {
                bail!("--secured runs on one server (the shipped single-node configuration): use --replicas 1")
            }
        })
    }

    fn url(&self) -> String {
        match self {
            Servers::One(server) => server.url(),
            Servers::Cluster(cluster) => cluster.url(),
        }
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Servers::One(server) => server.pid().into_iter().collect(),
            Servers::Cluster(cluster) => cluster.pids(),
        }
    }

    fn shipped(&self) -> Option<&testkit::nats::Shipped> {
        match self {
            Servers::One(server) => server.shipped(),
            Servers::Cluster(_) => None,
        }
    }

    /// The coordinator's connection, and with the shipped configuration the callout's settings.
    async fn coordinator_bus(&self) -> anyhow::Result<(Bus, Option<(Bus, coordinator::callout::CalloutSettings)>)> {
        let url = self.url();
        let Some(shipped) = self.shipped() else {
            let bus = Bus::connect(&url, "fleet-coordinator").await?;
            return Ok((bus.with_identity(testkit::identity::coordinator_key()), None));
        };
        let password = |user: &str, password: &str| bus::Security {
            ca_file: Some(shipped.ca_file.clone()),
            credentials: bus::Credentials::Password { user: user.into(), password: password.into() },
        };
        let security = password("coordinator", &shipped.coordinator_password);
        let key = Some(testkit::identity::coordinator_key());
        let bus = Bus::connect_secured(&security, key, &url, "fleet-coordinator", None).await?;
        let security = password("auth", &shipped.auth_password);
        let callout = Bus::connect_secured(&security, None, &url, "fleet-callout", None).await?;
        let settings = coordinator::callout::CalloutSettings {
            issuer: testkit::identity::callout_issuer_key(),
            account: "FLEET".into(),
            ttl: Duration::from_secs(3600),
            window: Duration::from_secs(120),
        };
        Ok((bus, Some((callout, settings))))
    }

    /// RSS of every node, summed.
    fn rss(&self) -> u64 {
        self.pids().into_iter().filter_map(rss_bytes).sum()
    }

    /// CPU of every node, summed.
    fn cpu(&self) -> Duration {
        self.pids().into_iter().filter_map(|pid| cpu_time(&pid.to_string())).sum()
    }
}

async fn measure(
    clusters: usize,
    compare_durables: bool,
    audit: bool,
    replicas: u8,
    secured: bool,
    restart: bool,
) -> anyhow::Result<Figures> {
    let mut servers = Servers::start(replicas, secured)?;
    let url = servers.url();
    let server_pid = *servers.pids().first().context("nats-server has no pid")?;
    let declared = declare("bench", clusters);
    let mut options = coordinator::daemon::Options::default();
    options.audit.enabled = audit;
    let (bus, callout) = servers.coordinator_bus().await?;
    options.callout = callout;
    // A new cluster takes a moment to elect its JetStream meta leader.
    let layout = bus::topology::Topology { replicas: replicas.into(), ..bus::topology::Topology::default() };
    let electing = Instant::now();
    while let Err(err) = bus::topology::ensure(&bus, &layout).await {
        anyhow::ensure!(electing.elapsed() < Duration::from_secs(60), "no R{replicas} layout: {}", bus::chain(&err));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let coordinator =
        tests::fleet::start_coordinator_replicated(bus, &url, declared.clone(), options, replicas.into()).await?;
    let bus = coordinator.bus.clone();
    {
        // Enrolled beforehand (an operator's `fleetctl agents enroll`), not part of connecting.
        let enrolled = Instant::now();
        let mut enrolling =
            futures::stream::iter(declared.iter().map(|cluster| testkit::identity::enroll(&bus, &cluster.id)))
                .buffer_unordered(64);
        while let Some(result) = enrolling.next().await {
            result?;
        }
        eprintln!("fleet-bench: {clusters} agents enrolled in {:.1}s", enrolled.elapsed().as_secs_f64());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server_rss_idle = servers.rss();

    // Agents in a child process.
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?);
    child.args([
        "--agents-for",
        &url,
        "--count",
        &clusters.to_string(),
        "--arm-latency-ms",
        "0",
        "--kube-latency-ms",
        "0",
    ]);
    child.arg("--enrolled");
    if let Some(shipped) = servers.shipped() {
        child.arg("--ca-file").arg(&shipped.ca_file);
    }
    let mut child = child.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await??;
    if !ready.starts_with("ready") {
        bail!("agents did not start: {ready:?}");
    }
    let agents_pid = child.id();
    // Started means connected *and* announced: every hello stored (each agent writes one at start).
    let agents_bucket = format!("KV_{}", proto::subjects::AGENTS_BUCKET);
    let agents_start = wait_for_count(&bus, &agents_bucket, clusters, started, |state| state.messages).await?;
    // Then every agent's consumer made (a fleet command's deliveries need it); the inventory is read
    // after that, not while 10,000 consumer creations queue in the server's API.
    let agents_listening =
        wait_for_count(&bus, proto::subjects::COMMAND_STREAM, clusters, started, |state| state.consumer_count as u64)
            .await?;

    eprintln!(
        "fleet-bench: {clusters} agents announced in {:.1}s, consumers made in {:.1}s; reading the inventory",
        agents_start.as_secs_f64(),
        agents_listening.as_secs_f64()
    );
    let inventory_started = Instant::now();
    let inventory = coordinator::inventory::load(&bus).await?.entries;
    let inventory_read = inventory_started.elapsed();
    anyhow::ensure!(inventory.len() == clusters, "the inventory holds {} of {clusters}", inventory.len());
    let pids = ["self".to_string(), agents_pid.to_string()];
    let cpu_before = (servers.cpu(), pids.each_ref().map(|pid| cpu_time(pid).unwrap_or_default()));
    let Commanded { publish_started, fleet_command, latencies, payload_size } =
        fleet_command(&bus, &inventory, clusters).await?;
    let cpu = [
        servers.cpu().saturating_sub(cpu_before.0),
        cpu_time(&pids[0]).unwrap_or_default().saturating_sub(cpu_before.1[0]),
        cpu_time(&pids[1]).unwrap_or_default().saturating_sub(cpu_before.1[1]),
    ];
    let audit_figures = if audit { Some(audit_caught_up(&bus, publish_started).await?) } else { None };
    let server_rss_fleet = servers.rss();
    let coordinator_rss = rss_bytes(std::process::id()).unwrap_or(0);
    let agents_rss = rss_bytes(agents_pid).unwrap_or(0);

    // Baseline: raw JetStream publish with ack, same payload size, same window, same server.
    let raw_rate = raw_publish_rate(&bus, clusters.max(10_000), payload_size, replicas.into()).await?;

    let restart = if restart { Some(after_restart(&mut servers, &bus, &inventory, clusters).await?) } else { None };

    let durables = if compare_durables { Some(durable_consumers(&bus, clusters, server_pid).await?) } else { None };

    drop(child.stdin.take());
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    coordinator.stop().await;
    Ok(Figures {
        clusters,
        replicas,
        secured,
        agents_start,
        agents_listening,
        inventory_read,
        fleet_command,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        raw_rate,
        server_rss_idle,
        server_rss_fleet,
        coordinator_rss,
        agents_rss,
        durables,
        audit: audit_figures,
        cpu,
        restart,
    })
}

/// One command fleet-wide, published as the coordinator does (512 acknowledgements in flight).
async fn fleet_command(
    bus: &Bus,
    inventory: &[coordinator::inventory::ClusterEntry],
    clusters: usize,
) -> anyhow::Result<Commanded> {
    // The coordinator watches results arrive (core copies of the result publishes).
    let mut results = bus.client().subscribe(proto::subjects::RESULT_ALL).await?;
    bus.client().flush().await?;
    let rollout_id = plan::new_rollout_id(time::OffsetDateTime::now_utc());
    let command = proto::Command::EnableGmsa(proto::command::EnableGmsa {
        dns_server: Some("10.1.0.4".into()),
        root_domain: Some("contoso.com".into()),
        mode: proto::Mode::Apply,
    });
    let planned = plan::plan(inventory, "env=demo", &command, &rollout_id, time::OffsetDateTime::now_utc(), 600, None)?;
    anyhow::ensure!(planned.envelopes.len() == clusters, "planned {} of {clusters}", planned.envelopes.len());
    // Result arrivals are timed in their own task so that publishing does not delay them.
    let arrivals = tokio::spawn(async move {
        let mut arrived: HashMap<String, Instant> = HashMap::with_capacity(clusters);
        let deadline = Instant::now() + Duration::from_secs(300);
        while arrived.len() < clusters {
            let message = tokio::time::timeout_at(deadline.into(), results.next())
                .await
                .context("results did not all arrive within 300s")?;
            let Some(message) = message else { bail!("result subscription ended") };
            let cluster = message.subject.split('.').nth(2).unwrap_or_default().to_string();
            arrived.entry(cluster).or_insert_with(Instant::now);
        }
        Ok::<_, anyhow::Error>(arrived)
    });
    // Publish as the coordinator does (512 acknowledgements in flight), noting each send time.
    let publisher = bus::commands::CommandPublisher::new(bus);
    let traceparent = bus::headers::new_traceparent();
    let publish_started = Instant::now();
    let sent_at: HashMap<String, Instant> = futures::stream::iter(planned.envelopes.iter().cloned())
        .map(|envelope| {
            let publisher = publisher.clone();
            let traceparent = traceparent.clone();
            async move {
                let sent = Instant::now();
                let ack = publisher.send(&envelope, Some(&traceparent)).await?;
                publisher.confirm(&envelope.cluster, ack).await?;
                Ok::<_, anyhow::Error>((envelope.cluster, sent))
            }
        })
        .buffer_unordered(512)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let arrivals = arrivals.await??;
    let last_arrival = arrivals.values().max().copied().unwrap_or_else(Instant::now);
    let fleet_command = last_arrival.saturating_duration_since(publish_started);
    let mut latencies: Vec<Duration> = arrivals
        .iter()
        .filter_map(|(cluster, arrived)| sent_at.get(cluster).map(|sent| arrived.saturating_duration_since(*sent)))
        .collect();
    latencies.sort();
    let payload_size = serde_json::to_vec(&planned.envelopes[0])?.len();
    Ok(Commanded { publish_started, fleet_command, latencies, payload_size })
}

/// What [`fleet_command`] measured.
struct Commanded {
    publish_started: Instant,
    /// From the first publish to the last result.
    fleet_command: Duration,
    /// Each cluster's publish → result, sorted.
    latencies: Vec<Duration>,
    /// The envelope's size, for the baseline.
    payload_size: usize,
}

/// SIGKILLs the server and starts it again at once, then times the fleet's return: every agent's
/// consumer made again (it lives in the server's memory), and a second fleet command.
async fn after_restart(
    servers: &mut Servers,
    bus: &Bus,
    inventory: &[coordinator::inventory::ClusterEntry],
    clusters: usize,
) -> anyhow::Result<Restart> {
    let Servers::One(server) = servers else { bail!("--restart runs on one server: use --replicas 1") };
    server.restart()?;
    let restarted = Instant::now();
    let stream = loop {
        match bus.jetstream().get_stream(proto::subjects::COMMAND_STREAM).await {
            Ok(stream) => break stream,
            Err(err) => {
                anyhow::ensure!(
                    restarted.elapsed() < Duration::from_secs(60),
                    "no command stream after the restart: {err}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let consumers_left = stream.cached_info().state.consumer_count as u64;
    let listening =
        wait_for_count(bus, proto::subjects::COMMAND_STREAM, clusters, restarted, |state| state.consumer_count as u64)
            .await?;
    eprintln!("fleet-bench: every consumer back {:.1}s after the restart", listening.as_secs_f64());
    let next = fleet_command(bus, inventory, clusters).await?;
    Ok(Restart { consumers_left, listening, fleet_command: next.fleet_command, p99: percentile(&next.latencies, 0.99) })
}

/// Waits until `count(state)` of `stream` reaches `target`; returns the time since `since`.
async fn wait_for_count(
    bus: &Bus,
    stream: &str,
    target: usize,
    since: Instant,
    count: impl Fn(&async_nats::jetstream::stream::State) -> u64,
) -> anyhow::Result<Duration> {
    let name = stream;
    let stream = bus.jetstream().get_stream_no_info(name).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        // A request may time out while thousands of agents connect: ask again.
        let reached = match stream.get_info().await {
            Ok(info) => count(&info.state),
            Err(_) => 0,
        };
        if reached >= target as u64 {
            return Ok(since.elapsed());
        }
        anyhow::ensure!(Instant::now() < deadline, "{reached} of {target} after 300 s in {name}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the audit log holds every command and result published so far; returns when
/// (from `since`), the log's entries and its stored bytes.
async fn audit_caught_up(bus: &Bus, since: Instant) -> anyhow::Result<(Duration, u64, u64)> {
    use proto::subjects;
    let commands = bus::audit::last_sequence(bus, subjects::COMMAND_STREAM).await?;
    let results = bus::audit::last_sequence(bus, subjects::RESULT_STREAM).await?;
    let log = bus::audit::AuditLog::open(bus).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(last) = log.last().await? {
            let cursors =
                gmsa::audit::seal::parse_cursors(last.header(proto::audit::CURSOR_HEADER).unwrap_or_default());
            let at = |stream: &str| cursors.get(stream).copied().unwrap_or(0);
            if at(subjects::COMMAND_STREAM) >= commands && at(subjects::RESULT_STREAM) >= results {
                let caught_up = since.elapsed();
                let first: u64 = last.header(proto::audit::FIRST_HEADER).and_then(|v| v.parse().ok()).unwrap_or(0);
                let count =
                    last.header(proto::audit::HASHES_HEADER).and_then(gmsa::audit::seal::sealed_count).unwrap_or(0);
                let mut stream = bus.jetstream().get_stream(subjects::AUDIT_STREAM).await?;
                let bytes = stream.info().await?.state.bytes;
                return Ok((caught_up, first + count as u64, bytes));
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "the audit writer did not catch up within 300 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `entries` audit entries (a result entry with two steps and their diffs, as a real
/// cluster reports) in batches of 256 with a checkpoint every 1,000, then times the verifier
/// over the stored log, as `fleetctl audit verify` runs it.
async fn verify_bench(entries: u64) -> anyhow::Result<()> {
    use gmsa::audit::seal;
    let server = NatsServer::start_with(NatsOptions::default())?;
    let bus = Bus::connect(&server.url(), "verify-bench").await?;
    bus::topology::ensure(&bus, &bus::topology::Topology::default()).await?;
    let key = testkit::identity::coordinator_key();
    let origin = coordinator::audit::DEFAULT_ORIGIN;
    let name = coordinator::audit::DEFAULT_KEY_NAME;
    let result: proto::CommandResult = serde_json::from_value(serde_json::json!({
        "schema": "1.4", "command_id": "r-20261202-000000-abcd-bench-0001-enable-gmsa", "rollout_id": "r-20261202-000000-abcd",
        "cluster": "bench-0001", "kind": "enable-gmsa", "status": "succeeded", "attempt": 1,
        "finished_at": "2026-12-02T10:00:00Z", "agent_version": "0.1.0",
        "steps": [
            {"step": "cluster-update", "change": "changed", "diff": [
                {"path": "/windowsProfile/gmsaProfile/enabled", "before": false, "after": true},
                {"path": "/windowsProfile/gmsaProfile/dnsServer", "before": null, "after": "10.1.0.4"},
                {"path": "/windowsProfile/gmsaProfile/rootDomainName", "before": null, "after": "contoso.com"}]},
            {"step": "validate", "change": "unchanged", "diff": []}
        ]
    }))?;
    let template = proto::audit::AuditEntry {
        cluster: Some("bench-0001".into()),
        rollout: result.rollout_id.clone(),
        command_id: Some(result.command_id.to_string()),
        source: Some("FLEET_RESULTS#123456".into()),
        ..proto::audit::AuditEntry::draft(
            time::OffsetDateTime::now_utc(),
            "agent:bench-0001",
            proto::audit::AuditEvent::Result {
                status: "succeeded".into(),
                code: None,
                verified: true,
                result: Box::new(result),
            },
        )
    };
    let log = bus::audit::AuditLog::open(&bus).await?;
    let mut tree = gmsa::merkle::Frontier::default();
    let (mut last, mut written) = (0u64, 0u64);
    let write_started = Instant::now();
    let mut pending = Vec::new();
    while written < entries {
        let count = 256.min(entries - written) as usize;
        let mut batch = vec![template.clone(); count];
        let sealed = seal::seal_batch(origin, &mut tree, &mut batch, &key)?;
        pending.push(sealed);
        written += count as u64;
        // Appends must be ordered (expected last sequence): one at a time.
        for sealed in pending.drain(..) {
            last = log.append(&sealed, "", last).await?;
        }
        if tree.size() % 1024 == 0 || written == entries {
            log.publish_checkpoint(&seal::checkpoint_note(origin, &tree, &[(name, &key)]), tree.size()).await?;
        }
    }
    let write_time = write_started.elapsed();
    let mut stream = bus.jetstream().get_stream(proto::subjects::AUDIT_STREAM).await?;
    let bytes = stream.info().await?.state.bytes;
    let trusted = vec![gmsa::audit::verify::TrustedKey::parse(&gmsa::merkle::verifier_key(name, &key.public()))?];
    let started = Instant::now();
    let report = coordinator::audit::read::verify(&bus, origin, trusted, &[]).await?;
    let verify_time = started.elapsed();
    anyhow::ensure!(report.failures.is_empty(), "the bench's own log does not verify: {:?}", report.first_failure());
    println!("\n== audit verify of {entries} entries ==");
    println!("written in                            {:>10.2} s ({} batches)", write_time.as_secs_f64(), report.batches);
    println!(
        "verified in                           {:>10.2} s  ({:.0} entries/s; goal: 1,000,000 in at most 10 s)",
        verify_time.as_secs_f64(),
        entries as f64 / verify_time.as_secs_f64()
    );
    println!("checkpoints checked                   {:>10}", report.checkpoints_checked);
    println!(
        "stored size per entry                 {:>10.0} bytes (headers and stream overhead included)",
        bytes as f64 / entries as f64
    );
    println!(
        "json {{\"audit_entries\":{entries},\"verify_s\":{:.3},\"bytes_per_entry\":{:.1}}}",
        verify_time.as_secs_f64(),
        bytes as f64 / entries as f64
    );
    Ok(())
}

async fn raw_publish_rate(bus: &Bus, messages: usize, size: usize, replicas: usize) -> anyhow::Result<f64> {
    let js = bus.jetstream();
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "BENCH_RAW".into(),
        subjects: vec!["bench.raw.*".into()],
        num_replicas: replicas,
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    let mut acks = futures::stream::iter(0..messages)
        .map(|index| {
            let js = js.clone();
            let payload = payload.clone();
            async move { js.publish(format!("bench.raw.{}", index % 10_000), payload).await?.await }
        })
        .buffer_unordered(512);
    while let Some(ack) = acks.next().await {
        ack?;
    }
    Ok(messages as f64 / started.elapsed().as_secs_f64())
}

/// The alternative design: one durable pull consumer per cluster on a stream that allows them.
async fn durable_consumers(bus: &Bus, clusters: usize, server_pid: u32) -> anyhow::Result<(Duration, u64)> {
    let js = bus.jetstream();
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "BENCH_DURABLES".into(),
            subjects: vec!["bench.cmd.*".into()],
            max_consumers: i32::try_from(clusters + 10)?,
            ..Default::default()
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_bytes(server_pid).unwrap_or(0);
    let started = Instant::now();
    let mut created = futures::stream::iter(0..clusters)
        .map(|index| {
            let stream = stream.clone();
            async move {
                stream
                    .create_consumer(async_nats::jetstream::consumer::pull::Config {
                        durable_name: Some(format!("agent-{index}")),
                        filter_subject: format!("bench.cmd.c{index}"),
                        ..Default::default()
                    })
                    .await
            }
        })
        .buffer_unordered(64);
    while let Some(consumer) = created.next().await {
        consumer?;
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok((elapsed, rss_bytes(server_pid).unwrap_or(0).saturating_sub(before)))
}

// ---------------------------------------------------------------------------------------------
// Rollout mode
// ---------------------------------------------------------------------------------------------

/// The simulated write latency per command kind (zero in the transport mode).
#[derive(Clone, Copy)]
struct Latency {
    arm: Duration,
    kube: Duration,
}

impl Latency {
    fn of(&self, kind: CommandKind) -> Duration {
        match kind {
            CommandKind::EnableGmsa | CommandKind::GrantIdentity => self.arm,
            CommandKind::ApplyCredspec => self.kube,
            _ => Duration::ZERO,
        }
    }
}

/// The in-memory executor, after sleeping the simulated latency of the command's write.
#[derive(Clone)]
struct Latent {
    inner: MemoryExecutor,
    latency: Latency,
}

impl agent::Executor for Latent {
    fn capabilities(&self) -> Vec<CommandKind> {
        self.inner.capabilities()
    }

    fn resource_uses(
        &self,
        command: &proto::Command,
        steps: &[proto::StepOutcome],
    ) -> Vec<proto::resources::ResourceUse> {
        self.inner.resource_uses(command, steps)
    }

    async fn execute(
        &self,
        envelope: &proto::CommandEnvelope,
        progress: agent::Progress,
    ) -> Result<Vec<proto::StepOutcome>, agent::ExecError> {
        let pause = self.latency.of(envelope.command.kind());
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        self.inner.execute(envelope, progress).await
    }
}

/// The clusters' subscriptions are numbered from 1; the vault's (`tests::world::VAULT_SUBSCRIPTION`)
/// is number 0.
fn subscription_of(index: usize, subscriptions: usize) -> String {
    format!("00000000-0000-4000-8000-{:012}", index % subscriptions.max(1) + 1)
}

/// The rollout file: AD facts given (no stage 0), five stages, the ARM budget on.
fn rollout_file(args: &Args) -> anyhow::Result<RolloutFile> {
    let concurrency =
        if args.concurrency.ends_with('%') { format!("\"{}\"", args.concurrency) } else { args.concurrency.clone() };
    let (burst, per_sec) = (args.arm_burst, args.arm_per_sec);
    let strategy = format!(
        r#"  stages:
    - {{name: canary, count: 1, max_concurrency: 1}}
    - {{name: wave-5pct, percent: 5, max_concurrency: {concurrency}}}
    - {{name: wave-15pct, percent: 15, max_concurrency: {concurrency}}}
    - {{name: wave-30pct, percent: 30, max_concurrency: {concurrency}}}
    - {{name: rest, percent: 100, max_concurrency: {concurrency}}}
  arm_budget: {{burst: {burst}, per_sec: {per_sec}}}"#
    );
    tests::fleet::rollout_file("bench-rollout", &strategy)
}

/// One stage's share of the lower bound.
struct StageBound {
    name: String,
    clusters: usize,
    concurrency: usize,
    /// `P_{s-1} + ceil(n/c) × L`.
    by_concurrency: f64,
    /// `max_b (Σ W − burst) / per_sec + L` (0 when every bucket stays within its burst).
    by_budget: f64,
    /// `P_s`.
    end: f64,
}

/// The lower bound of the module's doc comment, in seconds, stage by stage.
fn lower_bound(plan: &Plan, latency: Latency) -> Vec<StageBound> {
    let per_cluster = (latency.of(CommandKind::EnableGmsa)
        + latency.of(CommandKind::GrantIdentity)
        + latency.of(CommandKind::ApplyCredspec))
    .as_secs_f64();
    let budget = plan.strategy.arm_budget;
    let mut writes: BTreeMap<String, u64> = BTreeMap::new();
    let mut previous = 0.0;
    let mut bounds = Vec::new();
    for (stage, members) in plan.strategy.stages.iter().zip(&plan.stages) {
        let concurrency = stage.max_concurrency.of_ceil(members.len()).max(1);
        for cluster in members {
            let planned = &plan.clusters[cluster];
            *writes.entry(planned.subscription.clone()).or_default() += 1; // enable-gmsa
            let setup = plan.setup_of(cluster).expect("a planned cluster");
            *writes.entry(setup.vault.subscription_id.clone()).or_default() += 1; // grant-identity
            if matches!(setup.identity, IdentityChoice::UserAssigned { .. })
                && planned.subscription != setup.vault.subscription_id
            {
                *writes.entry(planned.subscription.clone()).or_default() += 1;
            }
        }
        let by_concurrency = previous + members.len().div_ceil(concurrency) as f64 * per_cluster;
        let by_budget = (writes.values())
            .filter(|&&count| count > u64::from(budget.burst))
            .map(|&count| (count - u64::from(budget.burst)) as f64 / f64::from(budget.per_sec.max(1)) + per_cluster)
            .fold(0.0, f64::max);
        let end = by_concurrency.max(by_budget);
        bounds.push(StageBound {
            name: stage.name.clone(),
            clusters: members.len(),
            concurrency,
            by_concurrency,
            by_budget,
            end,
        });
        previous = end;
    }
    bounds
}

/// The pure engine as fast as it goes: every `Send` answered `changed` at once.
fn engine_decisions(plan: &Plan) -> anyhow::Result<(u64, Duration)> {
    let mut now = time::OffsetDateTime::now_utc();
    let mut queue = std::collections::VecDeque::new();
    let enqueue = |queue: &mut std::collections::VecDeque<(String, CommandKind)>, actions: Vec<Action>| {
        for action in actions {
            if let Action::Send { cluster, step, .. } = action {
                queue.push_back((cluster, step));
            }
        }
    };
    let (mut state, actions) = RolloutState::start("bench-engine", plan.clone(), now);
    enqueue(&mut queue, actions);
    let limit = 10 * plan.clusters.len() as u64 + 100_000;
    let mut calls = 0u64;
    let started = Instant::now();
    while state.phase == Phase::Running {
        now += time::Duration::milliseconds(1);
        let event = match queue.pop_front() {
            Some((cluster, step)) => Event::StepFinished { cluster, step, outcome: StepResult::Changed },
            None => {
                now += time::Duration::seconds(1);
                Event::Tick
            }
        };
        let actions = state.handle(event, now);
        calls += 1;
        enqueue(&mut queue, actions);
        anyhow::ensure!(calls < limit, "the engine did not complete within {limit} calls");
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(state.phase == Phase::Completed, "the engine ended {:?}", state.phase);
    Ok((calls, elapsed))
}

/// User+sys CPU time of a process (`self` or a pid) from `/proc/<pid>/stat`.
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); index 0 here is field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// This process's peak RSS (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

struct RolloutFigures {
    clusters: usize,
    subscriptions: usize,
    latency: Latency,
    budget: proto::rollout::ArmBudget,
    tick_ms: u64,
    bounds: Vec<StageBound>,
    agents_start: Duration,
    wall: Duration,
    polled: Duration,
    steps: usize,
    coordinator_cpu: Duration,
    agents_cpu: Duration,
    server_cpu: Duration,
    coordinator_rss: u64,
    coordinator_peak: u64,
    engine_calls: u64,
    engine_elapsed: Duration,
    raw_rate: f64,
}

impl RolloutFigures {
    fn print(&self) {
        let mib = |bytes: u64| bytes as f64 / 1_048_576.0;
        let wall = self.wall.as_secs_f64();
        let bound = self.bounds.last().map_or(0.0, |stage| stage.end);
        let steps_per_sec = self.steps as f64 / wall;
        let decisions = self.engine_calls as f64 / self.engine_elapsed.as_secs_f64();
        println!("\n== rollout over {} clusters ==", self.clusters);
        println!(
            "setup: {} cluster subscriptions + the vault's, ARM budget burst {} per_sec {}, latency arm {} ms kube {} ms, tick {} ms",
            self.subscriptions,
            self.budget.burst,
            self.budget.per_sec,
            self.latency.arm.as_millis(),
            self.latency.kube.as_millis(),
            self.tick_ms
        );
        println!("agents connected and announced        {:>10.2} s", self.agents_start.as_secs_f64());
        println!("stage        clusters  concurrency  P_prev+waves*L  budget term  P_s (s)");
        for stage in &self.bounds {
            println!(
                "{:<12} {:>8}  {:>11}  {:>14.2}  {:>11.2}  {:>7.2}",
                stage.name, stage.clusters, stage.concurrency, stage.by_concurrency, stage.by_budget, stage.end
            );
        }
        println!(
            "wall: Start -> last step result       {wall:>10.2} s  ({} steps, {steps_per_sec:.0} steps/s)",
            self.steps
        );
        println!("wall: Start -> status says completed  {:>10.2} s  (polled once a second)", self.polled.as_secs_f64());
        println!("lower bound (computed)                {bound:>10.2} s");
        println!("ratio lower bound : wall              {:>10.3}", bound / wall);
        println!(
            "coordinator (this process) CPU        {:>10.2} s user+sys  ({:.0} % of one core over the rollout)",
            self.coordinator_cpu.as_secs_f64(),
            100.0 * self.coordinator_cpu.as_secs_f64() / wall
        );
        println!(
            "coordinator RSS at the end / peak     {:>7.1} MiB / {:.1} MiB",
            mib(self.coordinator_rss),
            mib(self.coordinator_peak)
        );
        println!(
            "agents (child) / nats-server CPU      {:>7.2} s / {:.2} s",
            self.agents_cpu.as_secs_f64(),
            self.server_cpu.as_secs_f64()
        );
        println!(
            "engine alone: handle() calls/s        {decisions:>10.0}  ({} calls in {:.3} s, same plan)",
            self.engine_calls,
            self.engine_elapsed.as_secs_f64()
        );
        println!(
            "baseline: raw JetStream publish+ack   {:>10.0} msgs/s (same server, 512 B, 512 in flight)",
            self.raw_rate
        );
        println!("ratio steps/s : raw publishes/s       {:>10.4}", steps_per_sec / self.raw_rate);
        println!(
            "json {{\"mode\":\"rollout\",\"clusters\":{},\"wall_s\":{wall:.2},\"lower_bound_s\":{bound:.2},\"ratio\":{:.3},\"coordinator_cpu_s\":{:.2},\"coordinator_rss_mib\":{:.1},\"engine_calls_per_s\":{decisions:.0},\"raw_publish_per_s\":{:.0}}}",
            self.clusters,
            bound / wall,
            self.coordinator_cpu.as_secs_f64(),
            mib(self.coordinator_rss),
            self.raw_rate
        );
    }
}

async fn measure_rollout(clusters: usize, args: &Args) -> anyhow::Result<RolloutFigures> {
    let server = NatsServer::start_with(NatsOptions::default())?;
    let url = server.url();
    let server_pid = server.pid().context("nats-server has no pid")?;
    let mut declared = declare("bench", clusters);
    for (index, cluster) in declared.iter_mut().enumerate() {
        cluster.labels.insert(SUBSCRIPTION_LABEL.to_string(), subscription_of(index, args.subscriptions));
    }
    let options = coordinator::daemon::Options {
        driver: DriverSettings { tick: Duration::from_millis(args.tick_ms), ..DriverSettings::default() },
        ..coordinator::daemon::Options::default()
    };
    let coordinator = tests::fleet::start_coordinator_with(&url, declared.clone(), options).await?;
    let bus = coordinator.bus.clone();

    // Agents in a child process, with the simulated latencies.
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--agents-for", &url, "--count", &clusters.to_string()])
        .args(["--arm-latency-ms", &args.arm_latency_ms.to_string()])
        .args(["--kube-latency-ms", &args.kube_latency_ms.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await??;
    if !ready.starts_with("ready") {
        bail!("agents did not start: {ready:?}");
    }
    // Every agent's hello in the inventory, so that the plan has them all.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let inventory = coordinator::inventory::load(&bus).await?;
        let announced = inventory.entries.iter().filter(|entry| entry.agent.is_some()).count();
        if announced >= clusters {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {announced} of {clusters} agents announced");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let agents_start = started.elapsed();
    let agents_pid = child.id().to_string();
    eprintln!("fleet-bench: {clusters} agents announced in {:.1}s", agents_start.as_secs_f64());

    let file = rollout_file(args)?;
    let members: Vec<Member> = (declared.iter())
        .map(|cluster| Member {
            cluster: cluster.id.clone(),
            labels: cluster.labels.clone(),
            subscription: cluster.labels[SUBSCRIPTION_LABEL].clone(),
        })
        .collect();
    let plan = gmsa::rollout::plan(&file, &members)?;
    let latency =
        Latency { arm: Duration::from_millis(args.arm_latency_ms), kube: Duration::from_millis(args.kube_latency_ms) };
    let bounds = lower_bound(&plan, latency);

    // Result arrivals, timed in their own task.
    let mut results = bus.client().subscribe(proto::subjects::RESULT_ALL).await?;
    let last_result = std::sync::Arc::new(std::sync::Mutex::new((0usize, None::<Instant>)));
    let watcher = {
        let last_result = last_result.clone();
        tokio::spawn(async move {
            while results.next().await.is_some() {
                let mut last = last_result.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                *last = (last.0 + 1, Some(Instant::now()));
            }
        })
    };

    let cpu_before = (cpu_time("self"), cpu_time(&agents_pid), cpu_time(&server_pid.to_string()));
    let start = Instant::now();
    let reply = coordinator::rollout_verbs::request(
        &bus,
        &RolloutRequest::Start { file: Box::new(file), dry_run: false, requested_by: Some("fleet-bench".into()) },
    )
    .await?;
    let RolloutReply::Started { rollout_id, stages, .. } = reply else { bail!("rollout not started: {reply:?}") };
    let sizes: Vec<usize> = stages.iter().map(|stage| stage.clusters.len()).collect();
    let planned: Vec<usize> = plan.stages.iter().map(Vec::len).collect();
    anyhow::ensure!(sizes == planned, "the coordinator planned {sizes:?}, the bench {planned:?}");
    eprintln!("fleet-bench: rollout {rollout_id} started, stages {sizes:?}");
    let timeout = Duration::from_secs(args.rollout_timeout_secs);
    let polled = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let reply =
            coordinator::rollout_verbs::request(&bus, &RolloutRequest::Status { rollout_id: rollout_id.clone() })
                .await?;
        let RolloutReply::Status { status, .. } = reply else { bail!("no status: {reply:?}") };
        match &status.phase {
            Phase::Completed => break start.elapsed(),
            Phase::Running => {}
            other => bail!("the rollout ended {other:?}: {:?}", status.waiting),
        }
        let done: usize = status.stages.iter().map(|stage| stage.counts.succeeded + stage.counts.unchanged).sum();
        if start.elapsed().as_secs().is_multiple_of(10) {
            eprintln!(
                "fleet-bench: {:.0}s stage {} {done}/{clusters} done; {}",
                start.elapsed().as_secs_f64(),
                status.current_stage,
                status.waiting.first().map(String::as_str).unwrap_or("")
            );
        }
        anyhow::ensure!(start.elapsed() < timeout, "the rollout did not complete within {timeout:?}");
    };
    let cpu_after = (cpu_time("self"), cpu_time(&agents_pid), cpu_time(&server_pid.to_string()));
    let coordinator_rss = rss_bytes(std::process::id()).unwrap_or(0);
    let coordinator_peak = peak_rss();
    tokio::time::sleep(Duration::from_millis(200)).await;
    watcher.abort();
    let (steps, last) = *last_result.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let wall = last.map_or(polled, |last| last.saturating_duration_since(start));
    let delta = |before: Option<Duration>, after: Option<Duration>| {
        after.zip(before).map_or(Duration::ZERO, |(after, before)| after.saturating_sub(before))
    };

    let raw_rate = raw_publish_rate(&bus, clusters.max(10_000), 512, 1).await?;
    drop(child.stdin.take());
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    coordinator.stop().await;
    drop(server);

    eprintln!("fleet-bench: the engine alone over the same plan");
    let (engine_calls, engine_elapsed) = engine_decisions(&plan)?;
    Ok(RolloutFigures {
        clusters,
        subscriptions: args.subscriptions,
        latency,
        budget: plan.strategy.arm_budget,
        tick_ms: args.tick_ms,
        bounds,
        agents_start,
        wall,
        polled,
        steps,
        coordinator_cpu: delta(cpu_before.0, cpu_after.0),
        agents_cpu: delta(cpu_before.1, cpu_after.1),
        server_cpu: delta(cpu_before.2, cpu_after.2),
        coordinator_rss,
        coordinator_peak,
        engine_calls,
        engine_elapsed,
        raw_rate,
    })
}
