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

use anyhow::{Context, bail};
use bus::Bus;
use clap::Parser;
use coordinator::plan;
use futures::StreamExt;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::nats::{NatsOptions, NatsServer, rss_bytes};
use tests::fleet::{declare, spawn_agent};
use tests::memory::{MemoryFleet, Pause};

#[derive(Parser)]
#[command(about = "Measure gmsa-fleet's transport at fleet scale on one real nats-server")]
struct Args {
    /// Fleet sizes to measure (repeat the flag).
    #[arg(long = "clusters", default_values_t = vec![1000usize, 10000])]
    clusters: Vec<usize>,
    /// Also measure one durable consumer per cluster, the alternative design.
    #[arg(long)]
    compare_durables: bool,
    /// Internal: run the agents of a fleet in this process (used by the benchmark itself).
    #[arg(long, hide = true)]
    agents_for: Option<String>,
    #[arg(long, hide = true, default_value_t = 0)]
    count: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if let Some(url) = &args.agents_for {
        return runtime.block_on(run_agents(url.clone(), args.count));
    }
    runtime.block_on(async {
        println!(
            "fleet-bench: {} cores, nats-server {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            nats_version()
        );
        for &clusters in &args.clusters {
            let figures = measure(clusters, args.compare_durables).await?;
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

/// Child process: N agents, each with its own connection, until stdin closes.
async fn run_agents(url: String, count: usize) -> anyhow::Result<()> {
    let fleet = MemoryFleet::default();
    let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ids: Vec<String> = declare("bench", count).into_iter().map(|cluster| cluster.id).collect();
    let agents: Vec<_> = futures::stream::iter(ids)
        .map(|id| {
            let url = url.clone();
            let executor = fleet.executor(&id, Pause::None);
            let started = started.clone();
            async move {
                let mut settings = agent::AgentSettings::new(&id);
                // Production defaults, except no poll storm while measuring a 10k fleet.
                settings.poll_interval = Duration::from_secs(300);
                settings.heartbeat_interval = Duration::from_secs(300);
                let agent = tokio::time::timeout(Duration::from_secs(60), spawn_agent(&url, settings, executor))
                    .await
                    .map_err(|_| anyhow::anyhow!("agent {id} did not start within 60s"))??;
                let count = started.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if count.is_multiple_of(1000) {
                    eprintln!("fleet-bench: {count} agents started");
                }
                Ok::<_, anyhow::Error>(agent)
            }
        })
        .buffer_unordered(64)
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
    agents_start: Duration,
    fleet_command: Duration,
    p50: Duration,
    p99: Duration,
    raw_rate: f64,
    server_rss_idle: u64,
    server_rss_fleet: u64,
    coordinator_rss: u64,
    agents_rss: u64,
    durables: Option<(Duration, u64)>,
}

impl Figures {
    fn print(&self) {
        let n = self.clusters as f64;
        let rate = n / self.fleet_command.as_secs_f64();
        let mib = |bytes: u64| bytes as f64 / 1_048_576.0;
        println!("\n== {} clusters ==", self.clusters);
        println!("agents connected and announced        {:>10.2} s", self.agents_start.as_secs_f64());
        println!(
            "one command fleet-wide, all results   {:>10.3} s  ({rate:.0} clusters/s)",
            self.fleet_command.as_secs_f64()
        );
        println!("publish -> result per cluster         p50 {:.1} ms  p99 {:.1} ms", ms(self.p50), ms(self.p99));
        println!(
            "baseline: raw JetStream publish+ack   {:>10.0} msgs/s (same server, same size, same window)",
            self.raw_rate
        );
        println!("ratio clusters/s : raw publishes/s    {:>10.3}", rate / self.raw_rate);
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
        if let Some((created, rss)) = self.durables {
            println!(
                "alternative: durable consumer/cluster {:>10.2} s to create, {:.1} KiB server memory each",
                created.as_secs_f64(),
                rss as f64 / 1024.0 / n
            );
        }
        println!(
            "json {{\"clusters\":{},\"clusters_per_s\":{rate:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"raw_publish_per_s\":{:.1},\"ratio\":{:.4},\"server_kib_per_cluster\":{:.1},\"agent_kib_per_cluster\":{:.1},\"coordinator_mib\":{:.1}}}",
            self.clusters,
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

async fn measure(clusters: usize, compare_durables: bool) -> anyhow::Result<Figures> {
    let server = NatsServer::start_with(NatsOptions::default())?;
    let url = server.url();
    let server_pid = server.pid().context("nats-server has no pid")?;
    let declared = declare("bench", clusters);
    let coordinator = tests::fleet::start_coordinator(&url, declared.clone()).await?;
    let bus = coordinator.bus.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server_rss_idle = rss_bytes(server_pid).unwrap_or(0);

    // Agents in a child process.
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--agents-for", &url, "--count", &clusters.to_string()])
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
    let agents_start = started.elapsed();
    let agents_pid = child.id();

    // The coordinator watches results arrive (core copies of the result publishes).
    let mut results = bus.client().subscribe(proto::subjects::RESULT_ALL).await?;
    eprintln!("fleet-bench: {clusters} agents ready in {:.1}s; reading the inventory", agents_start.as_secs_f64());
    let inventory_started = Instant::now();
    let inventory = coordinator::inventory::load(&bus).await?.entries;
    eprintln!(
        "fleet-bench: inventory of {} read in {:.1}s",
        inventory.len(),
        inventory_started.elapsed().as_secs_f64()
    );
    let rollout_id = plan::new_rollout_id(time::OffsetDateTime::now_utc());
    let command = proto::Command::EnableGmsa(proto::command::EnableGmsa {
        dns_server: Some("10.1.0.4".into()),
        root_domain: Some("contoso.com".into()),
        mode: proto::Mode::Apply,
    });
    let planned =
        plan::plan(&inventory, "env=demo", &command, &rollout_id, time::OffsetDateTime::now_utc(), 600, None)?;
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
    let publisher = bus::commands::CommandPublisher::new(&bus);
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
    let mut latencies: Vec<Duration> = arrivals
        .iter()
        .filter_map(|(cluster, arrived)| sent_at.get(cluster).map(|sent| arrived.saturating_duration_since(*sent)))
        .collect();
    let last_arrival = arrivals.values().max().copied().unwrap_or_else(Instant::now);
    let fleet_command = last_arrival.saturating_duration_since(publish_started);
    latencies.sort();
    let server_rss_fleet = rss_bytes(server_pid).unwrap_or(0);
    let coordinator_rss = rss_bytes(std::process::id()).unwrap_or(0);
    let agents_rss = rss_bytes(agents_pid).unwrap_or(0);

    // Baseline: raw JetStream publish with ack, same payload size, same window, same server.
    let payload_size = serde_json::to_vec(&planned.envelopes[0])?.len();
    let raw_rate = raw_publish_rate(&bus, clusters.max(10_000), payload_size).await?;

    let durables = if compare_durables { Some(durable_consumers(&bus, clusters, server_pid).await?) } else { None };

    drop(child.stdin.take());
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    coordinator.stop().await;
    Ok(Figures {
        clusters,
        agents_start,
        fleet_command,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        raw_rate,
        server_rss_idle,
        server_rss_fleet,
        coordinator_rss,
        agents_rss,
        durables,
    })
}

async fn raw_publish_rate(bus: &Bus, messages: usize, size: usize) -> anyhow::Result<f64> {
    let js = bus.jetstream();
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "BENCH_RAW".into(),
        subjects: vec!["bench.raw.*".into()],
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
