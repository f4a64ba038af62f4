//! Delivery guarantees over a real nats-server: late agents, duplicates, crashes of the agent and
//! of the server, schema skew.

use super::support::{bus_with_topology, mk_enable, stored_results, wait_for_results};
use bus::commands::CommandPublisher;
use proto::control::{RunReply, RunRequest};
use proto::version::SchemaVersion;
use proto::{ResultStatus, subjects};
use std::time::Duration;
use testkit::nats::NatsServer;
use tests::fleet::{declare, spawn_agent, start_coordinator, test_settings};
use tests::memory::{MemoryFleet, Pause};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_agent_fleet_completes_a_command_sent_through_the_coordinator() {
    let server = NatsServer::start().unwrap();
    let coordinator = start_coordinator(&server.url(), declare("aks", 3)).await.unwrap();
    let fleet = MemoryFleet::default();
    let mut agents = Vec::new();
    for index in 0..3 {
        let cluster = format!("aks-{index:03}");
        agents.push(
            spawn_agent(&server.url(), test_settings(&cluster, &[]), fleet.executor(&cluster, Pause::None))
                .await
                .unwrap(),
        );
    }
    let request = RunRequest {
        schema: SchemaVersion::CURRENT,
        command: mk_enable("x", "x").command,
        selector: "env=demo".into(),
        deadline_secs: 60,
        dry_run: false,
        requested_by: None,
    };
    let reply = coordinator
        .bus
        .signed_request(subjects::control("run"), serde_json::to_vec(&request).unwrap(), Duration::from_secs(10))
        .await
        .unwrap();
    let RunReply::Accepted { targets, .. } = serde_json::from_slice(&reply.payload).unwrap() else { panic!("refused") };
    assert_eq!(targets.len(), 3);
    let records = coordinator::record::records(&coordinator.bus).await.unwrap();
    for target in &targets {
        let results = wait_for_results(&coordinator.bus, &target.cluster, 1, WAIT).await;
        assert_eq!(results[0].status, ResultStatus::Succeeded);
        assert_eq!(results[0].command_id, target.command_id);
        assert_eq!(fleet.cluster(&target.cluster).state()["gmsaProfile"]["rootDomainName"], "contoso.com");
        // The coordinator recorded the result durably.
        let started = std::time::Instant::now();
        loop {
            if let Some((record, _)) = records.get(&target.cluster).await.unwrap() {
                assert_eq!(record.last_result.command_id, target.command_id);
                break;
            }
            assert!(started.elapsed() < WAIT, "no record for {}", target.cluster);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_started_after_the_publish_still_completes_the_command() {
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    CommandPublisher::new(&bus).publish(&mk_enable("late", "cmd-late"), None).await.unwrap();
    let fleet = MemoryFleet::default();
    let agent =
        spawn_agent(&server.url(), test_settings("late", &[]), fleet.executor("late", Pause::None)).await.unwrap();
    let results = wait_for_results(&bus, "late", 1, WAIT).await;
    assert_eq!(results[0].command_id.as_str(), "cmd-late");
    assert_eq!(fleet.cluster("late").writes(), 1);
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_publish_is_applied_once_within_and_beyond_the_dedup_window() {
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    let publisher = CommandPublisher::new(&bus);
    let envelope = mk_enable("dup", "cmd-dup");
    let first = publisher.publish(&envelope, None).await.unwrap();
    let second = publisher.publish(&envelope, None).await.unwrap();
    assert!(!first.duplicate && second.duplicate, "JetStream must drop the same Nats-Msg-Id");
    // Beyond the dedup window the server stores a second copy (simulated with another message id):
    // the agent's own idempotency by command id must hold.
    let headers = bus::headers::outgoing("another-message-id", None);
    let copy = publisher.publish_raw("dup", headers, serde_json::to_vec(&envelope).unwrap().into()).await.unwrap();
    assert!(!copy.duplicate);
    let fleet = MemoryFleet::default();
    let agent =
        spawn_agent(&server.url(), test_settings("dup", &[]), fleet.executor("dup", Pause::None)).await.unwrap();
    wait_for_results(&bus, "dup", 1, WAIT).await;
    // Wait until the agent has moved past the stored copy, then check nothing ran twice.
    let cursors = bus::kv::cursors(&bus).await.unwrap();
    let started = std::time::Instant::now();
    while cursors.get("dup").await.unwrap().map(|(cursor, _)| cursor.last_done) != Some(copy.sequence) {
        assert!(started.elapsed() < WAIT, "agent did not reach the copy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fleet.cluster("dup").starts(), 1, "the executor ran more than once");
    assert_eq!(stored_results(&bus, "dup").await.len(), 1);
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_command_gets_it_again_and_the_effect_happens_once() {
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    CommandPublisher::new(&bus).publish(&mk_enable("crash", "cmd-crash"), None).await.unwrap();
    let fleet = MemoryFleet::default();
    // The executor writes, then lingers: the kill lands after the write and before the result.
    let agent = spawn_agent(
        &server.url(),
        test_settings("crash", &[]),
        fleet.executor("crash", Pause::AfterWrite(Duration::from_secs(30))),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    while fleet.cluster("crash").writes() == 0 {
        assert!(started.elapsed() < WAIT, "the command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.kill();
    assert!(stored_results(&bus, "crash").await.is_empty());
    let agent =
        spawn_agent(&server.url(), test_settings("crash", &[]), fleet.executor("crash", Pause::None)).await.unwrap();
    let results = wait_for_results(&bus, "crash", 1, WAIT).await;
    assert_eq!(results[0].attempt, 2, "the second start is attempt 2");
    assert_eq!(fleet.cluster("crash").writes(), 1, "the second attempt must find the write done");
    assert_eq!(fleet.cluster("crash").state()["gmsaProfile"]["enabled"], true);
    agent.stop().await.unwrap();
    assert_eq!(stored_results(&bus, "crash").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_keeps_crashing_the_agent_ends_failed_after_bounded_attempts() {
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    CommandPublisher::new(&bus).publish(&mk_enable("stuck", "cmd-stuck"), None).await.unwrap();
    let fleet = MemoryFleet::default();
    let mut settings = test_settings("stuck", &[]);
    settings.max_attempts = 2;
    for expected_starts in 1..=2 {
        let agent = spawn_agent(
            &server.url(),
            settings.clone(),
            fleet.executor("stuck", Pause::BeforeWrite(Duration::from_secs(30))),
        )
        .await
        .unwrap();
        let started = std::time::Instant::now();
        while fleet.cluster("stuck").starts() < expected_starts {
            assert!(started.elapsed() < WAIT);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        agent.kill();
    }
    let agent = spawn_agent(&server.url(), settings, fleet.executor("stuck", Pause::None)).await.unwrap();
    let results = wait_for_results(&bus, "stuck", 1, WAIT).await;
    let ResultStatus::Failed { code, .. } = &results[0].status else { panic!("{:?}", results[0].status) };
    assert_eq!(code, "attempts_exhausted");
    assert_eq!(fleet.cluster("stuck").starts(), 2, "no third start");
    assert_eq!(fleet.cluster("stuck").writes(), 0);
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_killed_and_restarted_mid_fleet_command_gives_one_result_and_one_effect_each() {
    let mut server = NatsServer::start().unwrap();
    let url = server.url();
    let bus = bus_with_topology(&url).await;
    let fleet = MemoryFleet::default();
    let clusters: Vec<String> = (0..6).map(|index| format!("ha-{index}")).collect();
    let mut agents = Vec::new();
    for cluster in &clusters {
        // Each command takes a while, so the kill lands while most are in flight.
        let executor = fleet.executor(cluster, Pause::BeforeWrite(Duration::from_millis(700)));
        agents.push(spawn_agent(&url, test_settings(cluster, &[]), executor).await.unwrap());
    }
    let publisher = CommandPublisher::new(&bus);
    for cluster in &clusters {
        publisher.publish(&mk_enable(cluster, &format!("cmd-{cluster}")), None).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().unwrap();
    for cluster in &clusters {
        let results = wait_for_results(&bus, cluster, 1, Duration::from_secs(40)).await;
        assert!(results[0].status.is_success(), "{cluster}: {:?}", results[0].status);
    }
    // Let any duplicate work surface before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for cluster in &clusters {
        assert_eq!(stored_results(&bus, cluster).await.len(), 1, "{cluster}: exactly one result");
        assert_eq!(fleet.cluster(cluster).writes(), 1, "{cluster}: exactly one effect");
    }
    for agent in agents {
        agent.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_schema_major_is_refused_with_an_error_result_and_nothing_applied() {
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    let mut body = serde_json::to_value(mk_enable("skew", "cmd-v2")).unwrap();
    body["schema"] = "2.0".into();
    body["command"]["payload"]["new_in_v2"] = serde_json::json!({"x": 1});
    let mut headers = bus::headers::outgoing("cmd-v2", None);
    headers.insert(proto::version::SCHEMA_HEADER, "2.0");
    CommandPublisher::new(&bus).publish_raw("skew", headers, serde_json::to_vec(&body).unwrap().into()).await.unwrap();
    let fleet = MemoryFleet::default();
    let agent =
        spawn_agent(&server.url(), test_settings("skew", &[]), fleet.executor("skew", Pause::None)).await.unwrap();
    let results = wait_for_results(&bus, "skew", 1, WAIT).await;
    let ResultStatus::Failed { code, message } = &results[0].status else { panic!("{:?}", results[0].status) };
    assert_eq!(code, "unsupported_schema");
    assert!(message.contains("2.0"), "{message}");
    assert_eq!(fleet.cluster("skew").starts(), 0);
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_stopped_gracefully_mid_command_hands_it_back_without_using_an_attempt() {
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    CommandPublisher::new(&bus).publish(&mk_enable("calm", "cmd-calm"), None).await.unwrap();
    let fleet = MemoryFleet::default();
    let agent = spawn_agent(
        &server.url(),
        test_settings("calm", &[]),
        fleet.executor("calm", Pause::BeforeWrite(Duration::from_secs(30))),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    while fleet.cluster("calm").starts() == 0 {
        assert!(started.elapsed() < WAIT);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.stop().await.unwrap();
    let cursor = bus::kv::cursors(&bus).await.unwrap().get("calm").await.unwrap().map(|(cursor, _)| cursor).unwrap();
    assert_eq!(cursor.in_flight, None, "handed back: the attempt is not counted");
    assert_eq!(cursor.last_done, 0);
    let agent =
        spawn_agent(&server.url(), test_settings("calm", &[]), fleet.executor("calm", Pause::None)).await.unwrap();
    let results = wait_for_results(&bus, "calm", 1, WAIT).await;
    assert_eq!(results[0].attempt, 1);
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_keeps_recording_results_across_a_server_restart_and_a_lost_state_bucket() {
    let mut server = NatsServer::start().unwrap();
    let url = server.url();
    let coordinator = start_coordinator(&url, declare("rec", 2)).await.unwrap();
    let fleet = MemoryFleet::default();
    let mut agents = Vec::new();
    for index in 0..2 {
        let cluster = format!("rec-{index:03}");
        agents.push(
            spawn_agent(&url, test_settings(&cluster, &[]), fleet.executor(&cluster, Pause::None)).await.unwrap(),
        );
    }
    let publisher = CommandPublisher::new(&coordinator.bus);
    let records = coordinator::record::records(&coordinator.bus).await.unwrap();
    let wait_recorded = |command_id: String| {
        let records = records.clone();
        async move {
            let started = std::time::Instant::now();
            loop {
                let recorded = records.get("rec-000").await.ok().flatten();
                if recorded.is_some_and(|(record, _)| record.last_result.command_id.as_str() == command_id) {
                    return;
                }
                assert!(started.elapsed() < Duration::from_secs(40), "{command_id} not recorded");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    publisher.publish(&mk_enable("rec-000", "before-restart"), None).await.unwrap();
    wait_recorded("before-restart".into()).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().unwrap();
    // The clients reconnect on their own; the recorder must still be there to record this one.
    let started = std::time::Instant::now();
    while publisher.publish(&mk_enable("rec-000", "after-restart"), None).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "no reconnect");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_recorded("after-restart".into()).await;

    // The state bucket vanishes (an operator's mistake, a failed upgrade) while a result arrives:
    // the recorder must keep the result and record it once the bucket is back.
    coordinator.bus.jetstream().delete_key_value(proto::subjects::STATE_BUCKET).await.unwrap();
    publisher.publish(&mk_enable("rec-000", "bucket-gone"), None).await.unwrap();
    wait_for_results(&coordinator.bus, "rec-000", 3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    bus::topology::ensure(&coordinator.bus, &bus::topology::Topology::default()).await.unwrap();
    let records = coordinator::record::records(&coordinator.bus).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let recorded = records.get("rec-000").await.ok().flatten();
        if recorded.is_some_and(|(record, _)| record.last_result.command_id.as_str() == "bucket-gone") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the result was lost while the bucket was gone");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}
