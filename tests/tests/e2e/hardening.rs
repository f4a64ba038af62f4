//! Bad input over a real nats-server: every poison message ends in a result or a dead letter, and
//! the same agent then completes a following valid command (it is not wedged, not merely alive);
//! the coordinator's control task and recorder survive what they are sent; bad inventory entries
//! are planned around; a mixed-version fleet is planned by capability.

use super::support::{bus_with_topology, dead_letters, mk_enable, stored_results, wait_for_results};
use agent::{ExecError, Executor, Progress};
use bus::Bus;
use bus::commands::CommandPublisher;
use proto::control::{RunReply, RunRequest};
use proto::deadletter::DeadLetter;
use proto::version::SchemaVersion;
use proto::{CommandEnvelope, CommandKind, ResultStatus, StepOutcome, subjects};
use serde_json::json;
use std::time::Duration;
use testkit::nats::NatsServer;
use tests::fleet::{declare, spawn_agent, start_coordinator, test_settings};
use tests::memory::{MemoryExecutor, MemoryFleet, Pause};

const WAIT: Duration = Duration::from_secs(20);

/// Every dead letter `reporter` recorded, read from the dead-letter stream.
async fn wait_for_dead_letters(bus: &Bus, reporter: &str, count: usize) -> Vec<DeadLetter> {
    let started = std::time::Instant::now();
    loop {
        let letters = dead_letters(bus, reporter).await;
        if letters.len() >= count {
            return letters;
        }
        assert!(started.elapsed() < WAIT, "{reporter}: {} of {count} dead letters", letters.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes `body` as a command for `cluster` with a message id of its own.
async fn publish_raw(bus: &Bus, cluster: &str, message_id: &str, body: &serde_json::Value) {
    CommandPublisher::new(bus)
        .publish_raw(cluster, bus::headers::outgoing(message_id, None), serde_json::to_vec(body).unwrap().into())
        .await
        .unwrap();
}

/// Asserts the agent of `cluster` completes a valid command published after the poison.
async fn completes_a_following_command(bus: &Bus, fleet: &MemoryFleet, cluster: &str, results_before: usize) {
    let id = format!("after-{cluster}");
    CommandPublisher::new(bus).publish(&mk_enable(cluster, &id), None).await.unwrap();
    let results = wait_for_results(bus, cluster, results_before + 1, WAIT).await;
    let last = results.iter().find(|result| result.command_id.as_str() == id).expect("the following command's result");
    assert!(last.status.is_success(), "{:?}", last.status);
    assert_eq!(fleet.cluster(cluster).state()["gmsaProfile"]["enabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_with_ids_that_are_not_subject_tokens_are_dead_lettered_and_never_executed() {
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    for (index, bad) in ["", "a b", "a.b"].iter().enumerate() {
        let mut body = serde_json::to_value(mk_enable("poison", "x")).unwrap();
        body["command_id"] = json!(bad);
        publish_raw(&bus, "poison", &format!("poison-{index}"), &body).await;
    }
    let fleet = MemoryFleet::default();
    let agent =
        spawn_agent(&server.url(), test_settings("poison", &[]), fleet.executor("poison", Pause::None)).await.unwrap();
    let letters = wait_for_dead_letters(&bus, "poison", 3).await;
    assert!(letters.iter().all(|letter| letter.code == "invalid_id"), "{letters:?}");
    completes_a_following_command(&bus, &fleet, "poison", 0).await;
    assert_eq!(fleet.cluster("poison").starts(), 1, "no poison command ran; the following one ran once");
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_that_would_outgrow_the_payload_limit_is_published_bounded() {
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    let mut envelope = mk_enable("big", "cmd-big");
    envelope.command = proto::Command::EnableGmsa(proto::command::EnableGmsa {
        dns_server: Some("1".repeat(900 * 1024)),
        root_domain: Some("contoso.com".into()),
        mode: proto::Mode::Apply,
    });
    CommandPublisher::new(&bus).publish(&envelope, None).await.unwrap();
    let fleet = MemoryFleet::default();
    let agent =
        spawn_agent(&server.url(), test_settings("big", &[]), fleet.executor("big", Pause::None)).await.unwrap();
    let results = wait_for_results(&bus, "big", 1, WAIT).await;
    let ResultStatus::Failed { code, message } = &results[0].status else { panic!("{:?}", results[0].status) };
    assert_eq!(code, "invalid_payload");
    assert!(message.len() <= proto::decode::MAX_MESSAGE_BYTES, "{} bytes", message.len());
    assert!(message.starts_with("payload.dns_server"), "{}", &message[..80.min(message.len())]);
    completes_a_following_command(&bus, &fleet, "big", 1).await;
    assert_eq!(fleet.cluster("big").starts(), 1);
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_result_subject_and_in_the_cursor_do_not_wedge_the_agent() {
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    // Garbage where the command's result will be looked up, before the command is sent.
    bus.jetstream()
        .publish(subjects::result("g", "cmd-g"), bytes::Bytes::from_static(b"\x00not a result"))
        .await
        .unwrap()
        .await
        .unwrap();
    // Garbage as the agent's cursor.
    let cursors = bus::kv::cursors(&bus).await.unwrap();
    let raw: bus::kv::Bucket<serde_json::Value> = bus::kv::Bucket::open(&bus, subjects::CURSORS_BUCKET).await.unwrap();
    raw.put("g", &json!({"last_done": "seven"})).await.unwrap();
    CommandPublisher::new(&bus).publish(&mk_enable("g", "cmd-g"), None).await.unwrap();
    let fleet = MemoryFleet::default();
    let agent = spawn_agent(&server.url(), test_settings("g", &[]), fleet.executor("g", Pause::None)).await.unwrap();
    let results = wait_for_results(&bus, "g", 1, WAIT).await;
    assert_eq!(results.last().unwrap().command_id.as_str(), "cmd-g");
    assert!(results.last().unwrap().status.is_success());
    let letters = wait_for_dead_letters(&bus, "g", 1).await;
    assert_eq!(letters[0].code, "undecodable_cursor");
    assert!(letters[0].source.ends_with("fleet_cursors/g"), "{}", letters[0].source);
    completes_a_following_command(&bus, &fleet, "g", 1).await;
    // The cursor is a cursor again.
    assert!(cursors.get("g").await.unwrap().is_some());
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_deleted_by_hand_is_written_again_over_its_delete_marker_and_nothing_is_applied_twice() {
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    let fleet = MemoryFleet::default();
    let agent =
        spawn_agent(&server.url(), test_settings("del", &[]), fleet.executor("del", Pause::None)).await.unwrap();
    CommandPublisher::new(&bus).publish(&mk_enable("del", "cmd-del-1"), None).await.unwrap();
    wait_for_results(&bus, "del", 1, WAIT).await;
    agent.stop().await.unwrap();
    // The cursor's key now ends in a delete marker: the agent reads no cursor, and its first write
    // must check against the marker's revision, not against "never written".
    let cursors = bus::kv::cursors(&bus).await.unwrap();
    assert!(cursors.get("del").await.unwrap().is_some());
    bus.jetstream().get_key_value(subjects::CURSORS_BUCKET).await.unwrap().delete("del").await.unwrap();
    assert!(cursors.get("del").await.unwrap().is_none());
    let agent =
        spawn_agent(&server.url(), test_settings("del", &[]), fleet.executor("del", Pause::None)).await.unwrap();
    completes_a_following_command(&bus, &fleet, "del", 1).await;
    assert_eq!(fleet.cluster("del").starts(), 2, "the first command, read again from the start, is not applied again");
    agent.stop().await.unwrap();
    let (cursor, _) = cursors.get("del").await.unwrap().expect("the cursor is stored again");
    assert!(cursor.last_done >= 2, "{cursor:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_that_could_not_be_stored_at_start_is_sent_again_soon_not_with_the_next_heartbeat() {
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    // No hello bucket yet: the agent's hello fails at start.
    let hellos = format!("KV_{}", subjects::AGENTS_BUCKET);
    bus.jetstream().delete_stream(&hellos).await.unwrap();
    let mut settings = test_settings("late", &[]);
    settings.heartbeat_interval = Duration::from_secs(600);
    let fleet = MemoryFleet::default();
    let agent = tests::fleet::spawn_agent_as(&server.url(), settings, fleet.executor("late", Pause::None), false)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    bus::topology::ensure(&bus, &bus::topology::Topology::default()).await.unwrap();
    let agents = bus::kv::agents(&bus).await.unwrap();
    let started = std::time::Instant::now();
    while agents.get("late").await.unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "the hello was not sent again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the agent works once the streams exist.
    completes_a_following_command(&bus, &fleet, "late", 0).await;
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_a_crash_reports_what_the_first_attempt_changed() {
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    CommandPublisher::new(&bus).publish(&mk_enable("rerun", "cmd-rerun"), None).await.unwrap();
    let fleet = MemoryFleet::default();
    let agent = spawn_agent(
        &server.url(),
        test_settings("rerun", &[]),
        fleet.executor("rerun", Pause::AfterWrite(Duration::from_secs(30))),
    )
    .await
    .unwrap();
    // Wait until the write is done and its step recorded, then kill the agent.
    let cursors = bus::kv::cursors(&bus).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let recorded = cursors.get("rerun").await.unwrap().and_then(|(cursor, _)| cursor.in_flight);
        if recorded.is_some_and(|in_flight| !in_flight.steps.is_empty()) {
            break;
        }
        assert!(started.elapsed() < WAIT, "the step was never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.kill();
    let agent =
        spawn_agent(&server.url(), test_settings("rerun", &[]), fleet.executor("rerun", Pause::None)).await.unwrap();
    let results = wait_for_results(&bus, "rerun", 1, WAIT).await;
    assert_eq!(results[0].attempt, 2);
    assert_eq!(fleet.cluster("rerun").writes(), 1, "the second attempt wrote nothing");
    assert_eq!(results[0].status, ResultStatus::Succeeded, "the command did change the cluster");
    assert!(results[0].steps[0].is_changed());
    assert_eq!(results[0].steps[0].diff[0].path, "/gmsaProfile", "{:?}", results[0].steps);
    assert_eq!(results[0].steps[0].diff[0].before, None, "the diff is the first attempt's, from nothing");
    agent.stop().await.unwrap();
}

/// Sends raw bytes to the control API, waiting for the coordinator's subscription to be up.
async fn request_raw(bus: &Bus, payload: Vec<u8>) -> RunReply {
    let started = std::time::Instant::now();
    loop {
        match bus.signed_request(subjects::control(proto::control::RUN), payload.clone(), Duration::from_secs(10)).await
        {
            Ok(reply) => return serde_json::from_slice(&reply.payload).unwrap(),
            Err(err) => assert!(started.elapsed() < WAIT, "the control API never answered: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn request_run(bus: &Bus, request: &RunRequest) -> RunReply {
    request_raw(bus, serde_json::to_vec(request).unwrap()).await
}

fn mk_request(command: proto::Command, selector: &str, deadline_secs: u64) -> RunRequest {
    RunRequest {
        schema: SchemaVersion::CURRENT,
        command,
        selector: selector.into(),
        deadline_secs,
        dry_run: false,
        requested_by: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_task_refuses_a_huge_deadline_and_answers_the_next_request() {
    let server = NatsServer::start().unwrap();
    let coordinator = start_coordinator(&server.url(), declare("d", 1)).await.unwrap();
    let command = mk_enable("x", "x").command;
    let reply = request_run(&coordinator.bus, &mk_request(command.clone(), "", 10_000_000_000_000)).await;
    let RunReply::Refused { code, message } = reply else { panic!("{reply:?}") };
    assert_eq!(code, "invalid_request");
    assert!(message.contains("deadline_secs"), "{message}");
    // Not even garbage stops it.
    let garbage = request_raw(&coordinator.bus, b"\xffgarbage".to_vec()).await;
    assert!(matches!(garbage, RunReply::Refused { .. }), "{garbage:?}");
    let reply = request_run(&coordinator.bus, &mk_request(command, "", 60)).await;
    assert!(matches!(reply, RunReply::Accepted { .. }), "{reply:?}");
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inventory_entries_and_hellos_are_planned_around_and_reported() {
    let server = NatsServer::start().unwrap();
    let coordinator = start_coordinator(&server.url(), declare("inv", 2)).await.unwrap();
    let bus = &coordinator.bus;
    let raw_agents: bus::kv::Bucket<serde_json::Value> =
        bus::kv::Bucket::open(bus, subjects::AGENTS_BUCKET).await.unwrap();
    let raw_inventory: bus::kv::Bucket<serde_json::Value> =
        bus::kv::Bucket::open(bus, subjects::INVENTORY_BUCKET).await.unwrap();
    let hello = |cluster: &str| {
        json!({"schema": "1.2", "cluster": cluster, "agent_version": "x", "capabilities": ["enable-gmsa"],
            "labels": {"env": "demo"}, "started_at": "2026-11-23T10:00:00Z", "last_seen": "2026-11-23T10:00:00Z"})
    };
    raw_agents.put("garbage", &json!("not a hello")).await.unwrap();
    raw_agents.put("x.y", &hello("x.y")).await.unwrap();
    raw_agents.put("spoof", &hello("a b")).await.unwrap();
    raw_inventory.put("junk", &json!({"id": 7})).await.unwrap();
    // A newer agent announcing a kind this build does not know is still a valid hello.
    let mut newer = hello("inv-001");
    newer["capabilities"] = json!(["enable-gmsa", "a-kind-from-the-future"]);
    raw_agents.put("inv-001", &newer).await.unwrap();
    let fleet = MemoryFleet::default();
    let agent = spawn_agent(&server.url(), test_settings("inv-000", &[]), fleet.executor("inv-000", Pause::None))
        .await
        .unwrap();
    let reply = request_run(bus, &mk_request(mk_enable("x", "x").command, "env=demo", 60)).await;
    let RunReply::Accepted { targets, invalid, .. } = reply else { panic!("{reply:?}") };
    let mut keys: Vec<String> = invalid.iter().map(|entry| format!("{}/{}", entry.bucket, entry.key)).collect();
    keys.sort();
    assert_eq!(keys, ["fleet_agents/garbage", "fleet_agents/spoof", "fleet_agents/x.y", "fleet_inventory/junk"]);
    let mut planned: Vec<&str> = targets.iter().map(|target| target.cluster.as_str()).collect();
    planned.sort();
    assert_eq!(planned, ["inv-000", "inv-001"]);
    let results = wait_for_results(bus, "inv-000", 1, WAIT).await;
    assert!(results[0].status.is_success());
    agent.stop().await.unwrap();
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorder_dead_letters_a_result_it_cannot_record_instead_of_looping() {
    let server = NatsServer::start().unwrap();
    let coordinator = start_coordinator(&server.url(), declare("rec", 1)).await.unwrap();
    let bus = &coordinator.bus;
    // A result whose body names cluster "" on a valid result subject, and plain garbage.
    // Both signed with the cluster's enrolled key: they pass the signature check and meet the decoder.
    testkit::identity::enroll(bus, "rec-000").await.unwrap();
    let signed_publish = |subject: String, payload: Vec<u8>| async move {
        let mut headers = async_nats::HeaderMap::new();
        let key = testkit::identity::agent_key("rec-000");
        bus::headers::sign(&mut headers, &key, gmsa::signing::Purpose::Result, &subject, &payload);
        bus.jetstream().publish_with_headers(subject, headers, payload.into()).await.unwrap().await.unwrap();
    };
    let mut body = serde_json::to_value(tests_result("rec-000", "cmd-1")).unwrap();
    body["cluster"] = json!("");
    signed_publish(subjects::result("rec-000", "cmd-1"), serde_json::to_vec(&body).unwrap()).await;
    signed_publish(subjects::result("rec-000", "cmd-2"), b"junk".to_vec()).await;
    let letters = wait_for_dead_letters(bus, proto::deadletter::COORDINATOR, 2).await;
    assert!(letters.iter().all(|letter| letter.code == "undecodable_result"), "{letters:?}");
    // Both were acknowledged once, not redelivered every second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stream = bus.jetstream().get_stream(subjects::RESULT_STREAM).await.unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(subjects::RESULT_CONSUMER).await.unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!((info.num_ack_pending, info.num_redelivered), (0, 0), "{info:?}");
    assert_eq!(dead_letters(bus, proto::deadletter::COORDINATOR).await.len(), 2);
    // A valid result is still recorded.
    let fleet = MemoryFleet::default();
    let agent = spawn_agent(&server.url(), test_settings("rec-000", &[]), fleet.executor("rec-000", Pause::None))
        .await
        .unwrap();
    CommandPublisher::new(bus).publish(&mk_enable("rec-000", "cmd-3"), None).await.unwrap();
    let records = coordinator::record::records(bus).await.unwrap();
    let started = std::time::Instant::now();
    while records.get("rec-000").await.unwrap().is_none() {
        assert!(started.elapsed() < WAIT, "the valid result was not recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.stop().await.unwrap();
    coordinator.stop().await;
}

fn tests_result(cluster: &str, command_id: &str) -> proto::CommandResult {
    proto::CommandResult {
        schema: SchemaVersion::CURRENT,
        command_id: proto::CommandId(command_id.into()),
        rollout_id: None,
        cluster: cluster.into(),
        kind: "enable-gmsa".into(),
        status: ResultStatus::Succeeded,
        steps: vec![],
        attempt: 1,
        finished_at: time::OffsetDateTime::now_utc(),
        agent_version: "t".into(),
        resources: vec![],
    }
}

/// An agent of an older build: the memory executor without `rotate-credential`.
struct OlderAgent(MemoryExecutor);

impl Executor for OlderAgent {
    fn capabilities(&self) -> Vec<CommandKind> {
        CommandKind::ALL.into_iter().filter(|kind| *kind != CommandKind::RotateCredential).collect()
    }

    async fn execute(&self, envelope: &CommandEnvelope, progress: Progress) -> Result<Vec<StepOutcome>, ExecError> {
        self.0.execute(envelope, progress).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_fleet_is_planned_by_capability_and_the_others_reported_skipped_before_sending() {
    let server = NatsServer::start().unwrap();
    let coordinator = start_coordinator(&server.url(), declare("mix", 2)).await.unwrap();
    let bus = &coordinator.bus;
    let fleet = MemoryFleet::default();
    let newer = spawn_agent(&server.url(), test_settings("mix-000", &[]), fleet.executor("mix-000", Pause::None))
        .await
        .unwrap();
    let older =
        spawn_agent(&server.url(), test_settings("mix-001", &[]), OlderAgent(fleet.executor("mix-001", Pause::None)))
            .await
            .unwrap();
    // Both hellos are in before planning.
    let agents = bus::kv::agents(bus).await.unwrap();
    let started = std::time::Instant::now();
    while agents.get("mix-000").await.unwrap().is_none() || agents.get("mix-001").await.unwrap().is_none() {
        assert!(started.elapsed() < WAIT);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rotate = proto::Command::RotateCredential(proto::command::RotateCredential {
        vault: proto::command::VaultRef {
            subscription_id: "00000000-0000-0000-0000-000000000001".into(),
            resource_group: "rg".into(),
            name: "kv1".into(),
        },
        secret_name: "GMSADomainUserCred".into(),
        secret_version: "0123456789abcdef0123456789abcdef".into(),
        spec_name: None,
        run_workload: false,
        timeout_secs: 600,
    });
    let reply = request_run(bus, &mk_request(rotate, "env=demo", 60)).await;
    let RunReply::Accepted { targets, skipped, .. } = reply else { panic!("{reply:?}") };
    assert_eq!(targets.iter().map(|target| target.cluster.as_str()).collect::<Vec<_>>(), ["mix-000"]);
    assert_eq!(skipped.len(), 1);
    assert_eq!((skipped[0].cluster.as_str(), skipped[0].code.as_str()), ("mix-001", "unsupported_kind"));
    assert!(wait_for_results(bus, "mix-000", 1, WAIT).await[0].status.is_success());
    // Nothing was sent to the older agent.
    let stream = bus.jetstream().get_stream(subjects::COMMAND_STREAM).await.unwrap();
    assert!(stream.direct_get_last_for_subject(subjects::command("mix-001")).await.is_err());
    assert!(stored_results(bus, "mix-001").await.is_empty());
    newer.stop().await.unwrap();
    older.stop().await.unwrap();
    coordinator.stop().await;
}
