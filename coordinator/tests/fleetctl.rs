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
        match &envelope.command {
            proto::Command::AuditAccess(_) => {
                // The kubelet identity reads the secret; on p2 it should not (a dedicated identity is configured).
                let expected = self.cluster != "p2";
                let report = proto::report::AccessReport {
                    secret: "s".into(),
                    expected_principal: expected.then(|| format!("kubelet-{}", self.cluster)),
                    rows: vec![proto::report::AccessRow {
                        pool: "win1".into(),
                        identity: "aks-agentpool".into(),
                        identity_id: "/subscriptions/s/x/aks-agentpool".into(),
                        principal_id: format!("kubelet-{}", self.cluster),
                        kubelet: true,
                        expected,
                        can_get: true,
                        via: vec!["access-policy".into()],
                        flagged: !expected,
                    }],
                    others: vec![],
                    findings: if expected { vec![] } else { vec!["the kubelet identity can read the secret".into()] },
                };
                let observed = serde_json::to_value(report).unwrap();
                Ok(vec![StepOutcome::unchanged(proto::report::STEP_ACCESS_AUDIT, observed)])
            }
            proto::Command::Teardown(payload) => {
                let removed = proto::FieldChange {
                    path: "/GMSACredentialSpec/aks-gmsa-spec".into(),
                    before: Some(true.into()),
                    after: None,
                };
                Ok(vec![StepOutcome::in_mode(payload.mode, "credspec-remove", vec![removed], Value::Null)])
            }
            command => Ok(vec![StepOutcome::from_diff(command.kind().name(), vec![change], Value::Null)]),
        }
    }

    fn resource_uses(&self, command: &proto::Command, steps: &[StepOutcome]) -> Vec<proto::resources::ResourceUse> {
        proto::resources::uses_of(command, "00000000-0000-0000-0000-000000000001", steps)
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
    let config = CoordinatorConfig {
        nats: NatsConfig::plain(server.url()),
        replicas: 1,
        clusters: declared,
        leader: Default::default(),
        central: None,
        identity: None,
        operators: vec![test_operator()],
        audit: Default::default(),
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let bus = bus::Bus::connect(&server.url(), "coordinator")
        .await
        .unwrap()
        .with_identity(testkit::identity::coordinator_key());
    let running = coordinator::daemon::start(bus, &config, shutdown_rx.clone()).await.unwrap();
    tokio::spawn(running.wait());
    for (id, _) in clusters {
        let bus = bus::Bus::connect(&server.url(), id).await.unwrap().with_identity(testkit::identity::agent_key(id));
        testkit::identity::enroll(&bus, id).await.unwrap();
        let mut settings = AgentSettings::new(*id);
        settings.coordinator_keys = vec![testkit::identity::coordinator_public()];
        settings.poll_interval = Duration::from_millis(500);
        let agent = Agent::new(bus, settings, TestExecutor { cluster: id.to_string() }).await.unwrap();
        tokio::spawn(agent.run(shutdown_rx.clone(), None));
    }
    Fleet { server, shutdown }
}

/// Runs fleetctl; returns its exit code, stdout records (JSON lines) and stderr.
fn test_operator() -> coordinator::authz::OperatorConfig {
    coordinator::authz::OperatorConfig {
        name: testkit::identity::TEST_OPERATOR.into(),
        public_key: testkit::identity::operator_key(testkit::identity::TEST_OPERATOR).public().to_string(),
        role: proto::identity::Role::Approve,
    }
}

/// fleetctl, signing its requests as the test operator (role approve).
fn fleetctl_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleetctl"));
    command.env("FLEETCTL_OPERATOR_KEY", testkit::identity::operator_key_file());
    command
}

async fn fleetctl(fleet: &Fleet, args: &[&str]) -> (i32, Vec<Value>, String) {
    let url = fleet.server.url();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output =
        tokio::task::spawn_blocking(move || fleetctl_command().arg("--nats").arg(url).args(args).output().unwrap())
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
        fleetctl_command().args(["--nats", &url, "status", &rollout, "-o", "yaml"]).output().unwrap()
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
    let bus = bus::Bus::connect(&fleet.server.url(), "check")
        .await
        .unwrap()
        .with_identity(testkit::identity::operator_key(testkit::identity::TEST_OPERATOR));
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
    let bus = bus::Bus::connect(&fleet.server.url(), "check")
        .await
        .unwrap()
        .with_identity(testkit::identity::operator_key(testkit::identity::TEST_OPERATOR));
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
        fleetctl_command().args(["--nats", &url, "clusters", "list", "-l", "env=prod"]).output().unwrap()
    })
    .await
    .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.starts_with("CLUSTER"), "{table}");
    assert!(table.contains("p1") && !table.contains("d1"), "{table}");
    let _ = fleet.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_access_prints_pools_findings_and_a_summary_and_teardown_is_a_dry_run_refused_while_shared() {
    let fleet = mk_fleet(&[("p1", "prod"), ("p2", "staging")]).await;
    let vault = "00000000-0000-0000-0000-00000000000a/rg-gmsa/kv-gmsa";
    let (code, records, stderr) = fleetctl(&fleet, &["audit-access", "--vault", vault, "-o", "json"]).await;
    assert_eq!(code, 1, "a finding makes the exit code 1: {stderr}");
    assert_eq!(of_type(&records, "access").len(), 2);
    let findings = of_type(&records, "finding");
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0]["cluster"], "p2");
    let summary = of_type(&records, "access_summary")[0];
    assert_eq!((summary["audited"].as_u64(), summary["flagged_identities"].as_u64()), (Some(2), Some(1)));

    // Both clusters use the secret once they are granted.
    let payload = std::env::temp_dir().join(format!("grant-{}.yaml", std::process::id()));
    std::fs::write(
        &payload,
        "vault: {subscription_id: 00000000-0000-0000-0000-00000000000a, resource_group: rg-gmsa, name: kv-gmsa}\nidentity: {type: kubelet}\n",
    )
    .unwrap();
    let (code, _, stderr) =
        fleetctl(&fleet, &["run", "grant-identity", "--payload-file", payload.to_str().unwrap(), "-o", "json"]).await;
    assert_eq!(code, 0, "{stderr}");
    // Deleting the secret while p2 still uses it is refused, naming p2; nothing is sent.
    let bus = bus::Bus::connect(&fleet.server.url(), "check")
        .await
        .unwrap()
        .with_identity(testkit::identity::operator_key(testkit::identity::TEST_OPERATOR));
    let records_bucket = coordinator::record::records(&bus).await.unwrap();
    for _ in 0..100 {
        let recorded = records_bucket.entries().await.unwrap();
        if recorded.len() == 2 && recorded.iter().all(|(_, record)| !record.in_use.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stream = bus.jetstream().get_stream(proto::subjects::COMMAND_STREAM).await.unwrap();
    let sent = stream.info().await.unwrap().state.messages;
    let (code, records, stderr) = fleetctl(
        &fleet,
        &["teardown", "--vault", vault, "-l", "env=prod", "--delete-secret", "--confirm", "-o", "json"],
    )
    .await;
    assert!(records.is_empty());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("in_use") && stderr.contains("still used by p2"), "{stderr}");
    assert_eq!(stream.info().await.unwrap().state.messages, sent);
    // The shared deletions are the daemon's: this one has no `central` section, so asking for
    // one is refused before anything is sent, and fleetctl needs no credentials of its own.
    let (code, records, stderr) =
        fleetctl(&fleet, &["teardown", "--vault", vault, "--delete-secret", "--confirm", "-o", "json"]).await;
    assert!(records.is_empty());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("central_not_configured") && stderr.contains("nothing was sent"), "{stderr}");
    assert_eq!(stream.info().await.unwrap().state.messages, sent);
    // Without --confirm, a dry run: every step planned, and it says so.
    let (code, records, stderr) = fleetctl(&fleet, &["teardown", "--vault", vault, "-o", "json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let steps = of_type(&records, "step");
    assert_eq!(steps.len(), 2);
    assert!(steps.iter().all(|s| s["change"] == "planned" && s["step"] == "credspec-remove"), "{steps:?}");
    assert!(stderr.contains("dry run: nothing was changed"), "{stderr}");
    let _ = std::fs::remove_file(payload);
    let _ = fleet.shutdown.send(true);
}

/// A good `apply-credspec` payload as a JSON value, to be written as YAML and spoilt by a test.
fn mk_credspec_payload() -> Value {
    serde_json::json!({
        "spec_name": "aks-gmsa-spec",
        "gmsa_account": "WebApp01",
        "netbios_domain": "CONTOSO",
        "dns_domain": "contoso.com",
        "dns_tree_root": "contoso.com",
        "domain_guid": "6a7e7a3c-0b1f-4c8e-9a55-2f1d0c3b4e5f",
        "domain_sid": "S-1-5-21-3623811015-3361044348-30300820",
        "secret_uri": "https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred",
        "identity_object_id": "0f3c2a1b-9d8e-4f7a-b6c5-d4e3f2a1b0c9",
        "bindings": [{ "namespace": "default", "name": "default" }],
    })
}

/// Writes `text` to a payload file of this test process; returns its path.
fn mk_payload_file(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("fleetctl-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// What has been sent so far: commands in `FLEET_COMMANDS` and rollouts recorded.
async fn sent(fleet: &Fleet) -> (u64, usize) {
    let bus = bus::Bus::connect(&fleet.server.url(), "check")
        .await
        .unwrap()
        .with_identity(testkit::identity::operator_key(testkit::identity::TEST_OPERATOR));
    let mut stream = bus.jetstream().get_stream(proto::subjects::COMMAND_STREAM).await.unwrap();
    let commands = stream.info().await.unwrap().state.messages;
    let rollouts = coordinator::rollout::rollouts(&bus).await.unwrap().entries().await.unwrap().len();
    (commands, rollouts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_payload_field_is_refused_with_the_nearest_name_and_reaches_no_agent() {
    let fleet = mk_fleet(&[("p1", "prod")]).await;
    let good = mk_payload_file("good.yaml", &serde_yaml::to_string(&mk_credspec_payload()).unwrap());
    let (code, _, stderr) = fleetctl(&fleet, &["run", "apply-credspec", "--payload-file", &good, "-o", "json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let before = sent(&fleet).await;
    assert_eq!(before, (1, 1));
    let bus = bus::Bus::connect(&fleet.server.url(), "check")
        .await
        .unwrap()
        .with_identity(testkit::identity::operator_key(testkit::identity::TEST_OPERATOR));
    let records_bucket = coordinator::record::records(&bus).await.unwrap();
    let applied = records_bucket.get("p1").await.unwrap().unwrap().0.last_result;

    // `bindngs:` would leave the payload without bindings: applied, it prunes the RoleBinding.
    let mut misspelt = mk_credspec_payload();
    let bindings = misspelt.as_object_mut().unwrap().remove("bindings").unwrap();
    misspelt["bindngs"] = bindings;
    let file = mk_payload_file("bindngs.yaml", &serde_yaml::to_string(&misspelt).unwrap());
    let (code, records, stderr) =
        fleetctl(&fleet, &["run", "apply-credspec", "--payload-file", &file, "-o", "json"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(records.is_empty());
    assert!(stderr.contains("bindngs: unknown field; did you mean bindings?"), "{stderr}");
    // Nested keys are named by their path.
    let mut nested = mk_credspec_payload();
    nested["bindings"] = serde_json::json!([{ "namspace": "default", "name": "default" }]);
    let file = mk_payload_file("namspace.yaml", &serde_yaml::to_string(&nested).unwrap());
    let (code, _, stderr) = fleetctl(&fleet, &["run", "apply-credspec", "--payload-file", &file]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bindings[0].namspace: unknown field; did you mean namespace?"), "{stderr}");

    // Nothing was sent, so no agent applied anything: the RoleBinding the first apply made stays.
    assert_eq!(sent(&fleet).await, before);
    let last = records_bucket.get("p1").await.unwrap().unwrap().0.last_result;
    assert_eq!(last.command_id, applied.command_id);
    let _ = fleet.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_payload_value_is_refused_with_the_agents_rules_naming_the_field() {
    let fleet = mk_fleet(&[("p1", "prod"), ("p2", "prod")]).await;
    let cases = [
        ("spec_name", serde_json::json!("a.b*"), "payload.spec_name"),
        (
            "bindings",
            serde_json::json!([{ "namespace": "kube system", "name": "default" }]),
            "payload.bindings[0].namespace",
        ),
        (
            "secret_uri",
            serde_json::json!("http://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred"),
            "payload.secret_uri",
        ),
        ("domain_sid", serde_json::json!("S-1-5-21-3623811015-3361044348-30300820-1105"), "payload.domain_sid"),
        ("netbios_domain", serde_json::json!("CONTOSOCONTOSO123"), "payload.netbios_domain"),
    ];
    for (field, value, named) in cases {
        let mut payload = mk_credspec_payload();
        payload[field] = value;
        let file = mk_payload_file(&format!("bad-{field}.yaml"), &serde_yaml::to_string(&payload).unwrap());
        let (code, records, stderr) =
            fleetctl(&fleet, &["run", "apply-credspec", "--payload-file", &file, "-o", "json"]).await;
        assert_eq!(code, 2, "{field}: {stderr}");
        assert!(records.is_empty());
        assert!(stderr.contains(named) && stderr.contains("nothing was sent"), "{field}: {stderr}");
    }
    assert_eq!(sent(&fleet).await, (0, 0));
    let _ = fleet.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_payloads_and_deadlines_are_refused_clearly_and_nothing_is_sent() {
    let fleet = mk_fleet(&[("p1", "prod")]).await;
    // A file over 1 MiB is refused before it is parsed.
    let huge = mk_payload_file("huge.yaml", &format!("spec_name: {}\n", "a".repeat(1024 * 1024)));
    let (code, _, stderr) = fleetctl(&fleet, &["run", "apply-credspec", "--payload-file", &huge]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("larger than 1048576 bytes"), "{stderr}");

    // A file under 1 MiB whose request is over the server's max_payload (1 MiB by default): JSON
    // spends 3 more bytes per binding than the YAML flow style.
    let mut payload = mk_credspec_payload();
    payload.as_object_mut().unwrap().remove("bindings");
    let mut text = serde_yaml::to_string(&payload).unwrap() + "bindings:\n";
    text.push_str(&"- {namespace: ns, name: sa}\n".repeat(36_000));
    assert!(text.len() < 1024 * 1024);
    let large = mk_payload_file("large.yaml", &text);
    let (code, _, stderr) = fleetctl(&fleet, &["run", "apply-credspec", "--payload-file", &large]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the apply-credspec request is") && stderr.contains("max_payload 1048576"), "{stderr}");
    assert!(!stderr.contains("is fleet-coordinator running"), "{stderr}");

    // A deadline beyond 30 days is a usage error naming the flag, not an overflow panic.
    let (code, _, stderr) = fleetctl(&fleet, &["run", "disable-gmsa", "--deadline", "99999999999999999h"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--deadline") && stderr.contains("at most 2592000 seconds"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    assert_eq!(sent(&fleet).await, (0, 0));
    let _ = std::fs::remove_file(huge);
    let _ = std::fs::remove_file(large);
    let _ = fleet.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_list_shows_unreadable_entries_as_invalid_and_still_lists_the_fleet() {
    let fleet = mk_fleet(&[("p1", "prod"), ("p2", "prod")]).await;
    let bus = bus::Bus::connect(&fleet.server.url(), "vandal").await.unwrap();
    let agents: bus::kv::Bucket<Value> = bus::kv::Bucket::open(&bus, proto::subjects::AGENTS_BUCKET).await.unwrap();
    agents.put("junk", &serde_json::json!("not a hello")).await.unwrap();
    agents.put("x.y", &serde_json::json!({"cluster": "x.y"})).await.unwrap();
    let (code, records, stderr) = fleetctl(&fleet, &["clusters", "list", "-o", "json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let clusters: Vec<&str> = of_type(&records, "cluster").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(clusters, ["p1", "p2"]);
    let mut invalid: Vec<&str> = of_type(&records, "invalid").iter().filter_map(|c| c["key"].as_str()).collect();
    invalid.sort_unstable();
    assert_eq!(invalid, ["junk", "x.y"]);
    let (code, table, _) = fleetctl(&fleet, &["clusters", "list"]).await;
    assert_eq!(code, 0);
    let _ = table;
    let _ = fleet.shutdown.send(true);
}

#[path = "fleetctl/rollouts.rs"]
mod rollouts;

#[path = "fleetctl/rotation.rs"]
mod rotation;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_show_prints_one_cluster_state_record_and_exits_one_when_not_in_sync() {
    let fleet = mk_fleet(&[("p1", "prod"), ("bad", "prod")]).await;
    // A failed enable-gmsa on `bad`: its record keeps the gMSA profile's failure.
    let (code, _, stderr) = fleetctl(
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
    assert_eq!(code, 1, "{stderr}");
    let started = std::time::Instant::now();
    let bad = loop {
        let (code, records, stderr) = fleetctl(&fleet, &["clusters", "show", "bad", "-o", "json"]).await;
        assert_eq!(code, 1, "no rollout set a desired state: not in sync; {stderr}");
        let states = of_type(&records, "cluster_state");
        assert_eq!(states.len(), 1, "{records:?}");
        let state = states[0].clone();
        let profile = state["parts"].as_array().unwrap().iter().find(|part| part["part"] == "gmsa-profile").cloned();
        if profile.as_ref().is_some_and(|part| part["last"]["outcome"] == "failed") {
            break state;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(bad["cluster"], "bad");
    assert_eq!(bad["sync"]["state"], "not_targeted");
    assert_eq!(bad["sync"]["in_sync"], false);
    assert_eq!(bad["sync"]["reasons"][0]["reason"], "no_desired_state");
    assert_eq!(bad["parts"].as_array().unwrap().len(), 5);
    let profile = bad["parts"].as_array().unwrap().iter().find(|part| part["part"] == "gmsa-profile").unwrap();
    assert_eq!(profile["last"]["step"], "cluster-update");
    assert_eq!(profile["last"]["code"], "cluster_not_windows");
    // The cluster's last audit entries (the writer may still lag: absent is allowed, another
    // cluster's never).
    let audit = bad.get("audit").and_then(|audit| audit.as_array()).cloned().unwrap_or_default();
    assert!(audit.len() <= 10, "{audit:?}");
    assert!(audit.iter().all(|entry| entry["cluster"] == "bad"), "{audit:?}");
    assert!(bad["last_seen"].is_string());

    // An unknown cluster, an unknown flag and a zero threshold are refused: exit 2.
    let (code, _, stderr) = fleetctl(&fleet, &["clusters", "show", "nope", "-o", "json"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("not in the inventory"), "{stderr}");
    assert_eq!(fleetctl(&fleet, &["clusters", "show", "p1", "--bogus"]).await.0, 2);
    assert_eq!(fleetctl(&fleet, &["clusters", "list", "--unreachable-after", "0s"]).await.0, 2);

    // The listing: nothing the desired state applies to is out of sync (there is none), and the
    // summary counts both clusters as not targeted.
    let (code, records, _) = fleetctl(&fleet, &["clusters", "list", "--out-of-sync", "-o", "json"]).await;
    assert_eq!(code, 0);
    assert!(of_type(&records, "cluster").is_empty(), "{records:?}");
    let summary = of_type(&records, "fleet_sync");
    assert_eq!(summary.len(), 1);
    assert_eq!((summary[0]["clusters"].as_u64(), summary[0]["not_targeted"].as_u64()), (Some(2), Some(2)));
    let (_, records, _) = fleetctl(&fleet, &["clusters", "list", "-o", "json"]).await;
    let listed = of_type(&records, "cluster");
    assert!(listed.iter().all(|cluster| cluster["sync"] == "not_targeted" && cluster["in_sync"] == false));
    let _ = fleet.shutdown.send(true);
}
