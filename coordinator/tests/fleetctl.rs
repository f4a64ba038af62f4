//! `fleetctl` as an operator runs it: the built binary against a real nats-server, a running
//! coordinator and agents; its JSON output parsed into records, its exit code checked.

use agent::{Agent, AgentSettings, ExecError, Executor, Progress};
use coordinator::config::{CoordinatorConfig, NatsConfig};
use coordinator::inventory::DeclaredCluster;
use proto::{CommandEnvelope, CommandKind, StepOutcome};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;
use testkit::nats::NatsServer;
use tokio::sync::watch;

/// Applies everything with one change, except on the cluster named `bad`, which fails.
struct TestExecutor {
    cluster: String,
}

impl Executor for TestExecutor {
    fn capabilities(&self) -> Vec<CommandKind> {
        CommandKind::ALL.to_vec()
    }

    async fn execute(&self, envelope: &CommandEnvelope, _progress: Progress) -> Result<Vec<StepOutcome>, ExecError> {
        if self.cluster == "bad" {
            return Err(ExecError::new("cluster_not_windows", "managed cluster bad has no Windows node pool"));
        }
        let change = proto::FieldChange { path: "/enabled".into(), before: None, after: Some(true.into()) };
        Ok(vec![StepOutcome::from_diff(envelope.command.kind().name(), vec![change], Value::Null)])
    }
}

struct Fleet {
    server: NatsServer,
    shutdown: watch::Sender<bool>,
}

async fn mk_fleet(clusters: &[(&str, &str)]) -> Fleet {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = NatsServer::start().unwrap();
    let declared = clusters
        .iter()
        .map(|(id, env)| DeclaredCluster {
            id: id.to_string(),
            labels: BTreeMap::from([("env".to_string(), env.to_string())]),
        })
        .collect();
    let config = CoordinatorConfig { nats: NatsConfig { url: server.url() }, replicas: 1, clusters: declared };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let bus = bus::Bus::connect(&server.url(), "coordinator").await.unwrap();
    let running = coordinator::daemon::start(bus, &config, shutdown_rx.clone()).await.unwrap();
    tokio::spawn(running.wait());
    for (id, _) in clusters {
        let bus = bus::Bus::connect(&server.url(), id).await.unwrap();
        let mut settings = AgentSettings::new(*id);
        settings.poll_interval = Duration::from_millis(500);
        let agent = Agent::new(bus, settings, TestExecutor { cluster: id.to_string() }).await.unwrap();
        tokio::spawn(agent.run(shutdown_rx.clone(), None));
    }
    Fleet { server, shutdown }
}

/// Runs fleetctl; returns its exit code, stdout records (JSON lines) and stderr.
async fn fleetctl(fleet: &Fleet, args: &[&str]) -> (i32, Vec<Value>, String) {
    let url = fleet.server.url();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_fleetctl")).arg("--nats").arg(url).args(args).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let records =
        stdout.lines().filter(|line| line.starts_with('{')).map(|line| serde_json::from_str(line).unwrap()).collect();
    (output.status.code().unwrap_or(-1), records, String::from_utf8(output.stderr).unwrap())
}

fn of_type<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|record| record["type"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follows_the_rollout_and_exits_zero_when_every_cluster_succeeds() {
    let fleet = mk_fleet(&[("p1", "prod"), ("p2", "prod"), ("d1", "dev")]).await;
    let (code, records, stderr) = fleetctl(
        &fleet,
        &[
            "run",
            "enable-gmsa",
            "--dns-server",
            "10.1.0.4",
            "--root-domain",
            "contoso.com",
            "-l",
            "env=prod",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let targets = of_type(&records, "target");
    let clusters: Vec<&str> = targets.iter().map(|t| t["cluster"].as_str().unwrap()).collect();
    assert_eq!(clusters.len(), 2);
    assert!(clusters.contains(&"p1") && clusters.contains(&"p2"));
    assert!(targets.iter().all(|t| t["state"] == "succeeded" && t["changed_steps"][0] == "enable-gmsa"));
    let summary = of_type(&records, "summary")[0];
    assert_eq!((summary["targets"].as_u64(), summary["succeeded"].as_u64()), (Some(2), Some(2)));
    assert!(stderr.contains("fleetctl: 2/2 done"), "progress on stderr: {stderr}");

    // The same rollout read back with `status`, as YAML.
    let rollout = summary["rollout_id"].as_str().unwrap().to_string();
    let url = fleet.server.url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_fleetctl"))
            .args(["--nats", &url, "status", &rollout, "-o", "yaml"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let yaml: Vec<Value> = serde_yaml::from_slice(&output.stdout).unwrap();
    assert_eq!(yaml.iter().filter(|r| r["type"] == "target").count(), 2);
    let _ = fleet.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cluster_makes_the_exit_code_one_and_names_the_failure() {
    let fleet = mk_fleet(&[("good", "prod"), ("bad", "prod")]).await;
    let (code, records, _) = fleetctl(&fleet, &["run", "disable-gmsa", "-o", "json"]).await;
    assert_eq!(code, 1);
    let bad = of_type(&records, "target").into_iter().find(|t| t["cluster"] == "bad").unwrap().clone();
    assert_eq!(bad["state"], "failed");
    assert_eq!(bad["code"], "cluster_not_windows");
    let (code, records, _) = fleetctl(&fleet, &["status", "-o", "json"]).await;
    assert_eq!(code, 1, "fleet status reports the failed cluster");
    assert_eq!(of_type(&records, "target").len(), 2);
    let _ = fleet.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_field_named_and_nothing_sent() {
    let fleet = mk_fleet(&[("p1", "prod")]).await;
    let (code, records, stderr) =
        fleetctl(&fleet, &["run", "enable-gmsa", "--dns-server", "10.1.0.4", "-o", "json"]).await;
    assert_eq!(code, 2);
    assert!(records.is_empty());
    assert!(stderr.contains("payload.root_domain") && stderr.contains("together"), "{stderr}");
    let (code, _, stderr) = fleetctl(&fleet, &["run", "disable-gmsa", "-l", "env in prod", "-o", "json"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("selector"), "{stderr}");
    // Nothing reached the command stream.
    let bus = bus::Bus::connect(&fleet.server.url(), "check").await.unwrap();
    let mut stream = bus.jetstream().get_stream(proto::subjects::COMMAND_STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
    let _ = fleet.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_lists_the_targets_and_publishes_nothing_and_clusters_list_shows_the_inventory() {
    let fleet = mk_fleet(&[("p1", "prod"), ("d1", "dev")]).await;
    let (code, records, _) =
        fleetctl(&fleet, &["run", "disable-gmsa", "--dry-run", "-l", "env!=dev", "-o", "json"]).await;
    assert_eq!(code, 0);
    let targets = of_type(&records, "target");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["state"], "would-send");
    let bus = bus::Bus::connect(&fleet.server.url(), "check").await.unwrap();
    let mut stream = bus.jetstream().get_stream(proto::subjects::COMMAND_STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0);

    let (code, records, _) = fleetctl(&fleet, &["clusters", "list", "-o", "json"]).await;
    assert_eq!(code, 0);
    let clusters = of_type(&records, "cluster");
    assert_eq!(clusters.len(), 2);
    let p1 = clusters.iter().find(|c| c["id"] == "p1").unwrap();
    assert_eq!(p1["labels"]["env"], "prod");
    assert_eq!(p1["declared"], true);
    // Table output is a view of the same records.
    let url = fleet.server.url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_fleetctl"))
            .args(["--nats", &url, "clusters", "list", "-l", "env=prod"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.starts_with("CLUSTER"), "{table}");
    assert!(table.contains("p1") && !table.contains("d1"), "{table}");
    let _ = fleet.shutdown.send(true);
}
