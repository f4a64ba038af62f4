//! Who may say what, over a real nats-server: commands count only when signed by a trusted
//! coordinator key for the subject they arrive on; results count only when signed by the
//! cluster's enrolled key; each forgery is refused with its own code and has no effect (the
//! executor never starts: nothing reaches any adapter).

use super::support::{bus_with_topology, dead_letters, mk_enable, stored_results, wait_for_results};
use bus::Bus;
use bus::commands::CommandPublisher;
use bus::results::ResultPublisher;
use futures::StreamExt;
use gmsa::signing::SecretKey;
use proto::deadletter::DeadLetter;
use proto::resources::{ResourceUse, SharedResource};
use proto::{CommandEnvelope, CommandResult, ResultStatus, subjects};
use std::sync::Arc;
use std::time::Duration;
use testkit::identity::{agent_key, coordinator_key, next_coordinator_key};
use testkit::nats::NatsServer;
use tests::fleet::{spawn_agent, start_coordinator, test_settings};
use tests::memory::{MemoryFleet, Pause};

const WAIT: Duration = Duration::from_secs(20);

fn mallory() -> Arc<SecretKey> {
    Arc::new(SecretKey::from_seed([0x66; 32]))
}

async fn wait_for_codes(bus: &Bus, reporter: &str, codes: &[&str]) -> Vec<DeadLetter> {
    let started = std::time::Instant::now();
    loop {
        let letters = dead_letters(bus, reporter).await;
        if codes.iter().all(|code| letters.iter().any(|letter| letter.code == *code)) {
            return letters;
        }
        assert!(started.elapsed() < WAIT, "{reporter}: waiting for {codes:?}, have {letters:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes `envelope`'s bytes on `cluster`'s subject with `key`'s signature over `signed_subject`
/// (or none), under message id `message_id`.
async fn publish_signed(
    bus: &Bus,
    cluster: &str,
    envelope: &CommandEnvelope,
    key: Option<&SecretKey>,
    signed_subject: &str,
    message_id: &str,
) {
    let payload = serde_json::to_vec(envelope).unwrap();
    let mut headers = bus::headers::outgoing(message_id, None);
    if let Some(key) = key {
        bus::headers::sign(&mut headers, key, gmsa::signing::Purpose::Command, signed_subject, &payload);
    } else {
        // Keep publish_raw from signing with the bus's own key.
        headers.insert(proto::identity::SIGNATURE_HEADER, "");
    }
    CommandPublisher::new(bus).publish_raw(cluster, headers, payload.into()).await.unwrap();
}

fn with_dns(mut envelope: CommandEnvelope, dns: &str) -> CommandEnvelope {
    if let proto::Command::EnableGmsa(enable) = &mut envelope.command {
        enable.dns_server = Some(dns.into());
    }
    envelope
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_forged_unknown_key_moved_replayed_stale_and_misaddressed_commands_each_get_their_code_and_no_effect()
{
    let server = NatsServer::start().unwrap();
    let bus = bus_with_topology(&server.url()).await;
    let cluster = "sec-1";
    let subject = subjects::command(cluster);
    let trusted = coordinator_key();
    // Forgeries first, so the agent reads them before the one real command.
    let attacker = with_dns(mk_enable(cluster, "forged-unsigned"), "6.6.6.6");
    publish_signed(&bus, cluster, &attacker, None, &subject, "m-1").await;
    let mut bad = with_dns(mk_enable(cluster, "forged-bad"), "6.6.6.6");
    let payload_signed = serde_json::to_vec(&mk_enable(cluster, "forged-bad")).unwrap();
    // A real signature of other bytes: the key is trusted, the signature does not fit.
    let mut headers = bus::headers::outgoing("m-2", None);
    bus::headers::sign(&mut headers, &trusted, gmsa::signing::Purpose::Command, &subject, &payload_signed);
    bad.deadline += time::Duration::seconds(1);
    CommandPublisher::new(&bus).publish_raw(cluster, headers, serde_json::to_vec(&bad).unwrap().into()).await.unwrap();
    publish_signed(
        &bus,
        cluster,
        &with_dns(mk_enable(cluster, "forged-mallory"), "6.6.6.6"),
        Some(&mallory()),
        &subject,
        "m-3",
    )
    .await;
    // Signed by the coordinator for another cluster's subject, then moved here.
    publish_signed(&bus, cluster, &mk_enable(cluster, "moved"), Some(&trusted), &subjects::command("sec-2"), "m-4")
        .await;
    // Authentic but old: issued 10 days ago, deadline still ahead.
    let mut old = mk_enable(cluster, "stale-1");
    old.issued_at -= time::Duration::days(10);
    publish_signed(&bus, cluster, &old, Some(&trusted), &subject, "m-5").await;
    // Authentic, on this subject, naming another cluster.
    publish_signed(&bus, cluster, &mk_enable("sec-2", "misaddressed-1"), Some(&trusted), &subject, "m-6").await;
    let real = mk_enable(cluster, "real-1");
    publish_signed(&bus, cluster, &real, Some(&trusted), &subject, "m-7").await;

    let fleet = MemoryFleet::default();
    let agent =
        spawn_agent(&server.url(), test_settings(cluster, &[]), fleet.executor(cluster, Pause::None)).await.unwrap();
    let results = wait_for_results(&bus, cluster, 3, WAIT).await;
    let letters = wait_for_codes(&bus, cluster, &["unsigned", "bad_signature", "unknown_key"]).await;
    let code_of = |id: &str| {
        results.iter().find(|result| result.command_id.as_str() == id).map(|result| match &result.status {
            ResultStatus::Failed { code, .. } => code.clone(),
            other => other.label().to_string(),
        })
    };
    assert_eq!(code_of("stale-1").as_deref(), Some("stale"));
    assert_eq!(code_of("misaddressed-1").as_deref(), Some("wrong_cluster"));
    assert_eq!(code_of("real-1").as_deref(), Some("succeeded"));
    // Forgeries get no result under the id they chose, only a dead letter.
    for forged in ["forged-unsigned", "forged-bad", "forged-mallory", "moved"] {
        assert_eq!(code_of(forged), None, "{forged} has a result");
    }
    let codes: Vec<&str> = letters.iter().map(|letter| letter.code.as_str()).collect();
    assert_eq!(
        codes.iter().filter(|code| **code == "bad_signature").count(),
        2,
        "the bad signature and the moved command: {codes:?}"
    );

    // A replay of the real command's exact bytes, beyond the server's dedup (a new message id).
    publish_signed(&bus, cluster, &real, Some(&trusted), &subject, "m-8").await;
    wait_for_codes(&bus, cluster, &["replayed"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stored_results(&bus, cluster).await.iter().filter(|r| r.command_id.as_str() == "real-1").count(), 1);

    assert_eq!(fleet.cluster(cluster).starts(), 1, "only the real command ran, once");
    assert_eq!(fleet.cluster(cluster).state()["gmsaProfile"]["dnsServer"], "10.1.0.4", "no attacker DNS server");
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_key_rotation_keeps_a_running_fleet_working() {
    let server = NatsServer::start().unwrap();
    let old = bus_with_topology(&server.url()).await;
    let new = Bus::connect(&server.url(), "coordinator-next").await.unwrap().with_identity(next_coordinator_key());
    let fleet = MemoryFleet::default();
    // Agents list the next key beside the current one before the coordinator switches.
    let mut rotating = test_settings("rot-1", &[]);
    rotating.coordinator_keys = vec![coordinator_key().public(), next_coordinator_key().public()];
    let agent = spawn_agent(&server.url(), rotating, fleet.executor("rot-1", Pause::None)).await.unwrap();
    let mut behind = test_settings("rot-2", &[]);
    behind.coordinator_keys = vec![coordinator_key().public()];
    let lagging = spawn_agent(&server.url(), behind, fleet.executor("rot-2", Pause::None)).await.unwrap();
    CommandPublisher::new(&old).publish(&mk_enable("rot-1", "before-switch"), None).await.unwrap();
    wait_for_results(&old, "rot-1", 1, WAIT).await;
    CommandPublisher::new(&new).publish(&with_dns(mk_enable("rot-1", "after-switch"), "10.1.0.5"), None).await.unwrap();
    let results = wait_for_results(&old, "rot-1", 2, WAIT).await;
    assert!(results.iter().all(|result| result.status.is_success()), "{results:?}");
    assert_eq!(fleet.cluster("rot-1").state()["gmsaProfile"]["dnsServer"], "10.1.0.5");
    // An agent that was not given the new key refuses it by name, with no effect.
    CommandPublisher::new(&new).publish(&mk_enable("rot-2", "new-key"), None).await.unwrap();
    wait_for_codes(&old, "rot-2", &["unknown_key"]).await;
    assert_eq!(fleet.cluster("rot-2").starts(), 0);
    agent.stop().await.unwrap();
    lagging.stop().await.unwrap();
}

fn forged_result(cluster: &str, command_id: &str, resources: Vec<ResourceUse>) -> CommandResult {
    CommandResult {
        schema: proto::version::SchemaVersion::CURRENT,
        command_id: proto::CommandId(command_id.into()),
        rollout_id: None,
        cluster: cluster.into(),
        kind: "teardown".into(),
        status: ResultStatus::Unchanged,
        steps: vec![],
        attempt: 1,
        finished_at: time::OffsetDateTime::now_utc(),
        agent_version: "forged".into(),
        resources,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_results_neither_make_the_agent_skip_a_command_nor_reach_the_coordinators_record() {
    let server = NatsServer::start().unwrap();
    let coordinator = start_coordinator(&server.url(), tests::fleet::declare("fr", 1)).await.unwrap();
    let cluster = "fr-000";
    let anonymous = Bus::connect(&server.url(), "mallory").await.unwrap();
    let signed_by_mallory = Bus::connect(&server.url(), "mallory-2").await.unwrap().with_identity(mallory());
    // Squat the result of a command before it is published: "unchanged", so the agent would skip it.
    for bus in [&anonymous, &signed_by_mallory] {
        ResultPublisher::open(bus)
            .await
            .unwrap()
            .publish_result(&forged_result(cluster, "pending-1", vec![]), None)
            .await
            .unwrap();
    }
    let fleet = MemoryFleet::default();
    let agent =
        spawn_agent(&server.url(), test_settings(cluster, &[]), fleet.executor(cluster, Pause::None)).await.unwrap();
    CommandPublisher::new(&coordinator.bus).publish(&mk_enable(cluster, "pending-1"), None).await.unwrap();
    let started = std::time::Instant::now();
    let record = loop {
        let record = coordinator::record::records(&coordinator.bus).await.unwrap().get(cluster).await.unwrap();
        if let Some((record, _)) = record.filter(|(record, _)| record.last_result.agent_version != "forged") {
            break record;
        }
        assert!(started.elapsed() < WAIT, "the real result was never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(fleet.cluster(cluster).starts(), 1, "the agent applied the command despite the squatted result");
    assert!(record.last_result.status.is_success() && record.last_result.steps.iter().any(|step| step.is_changed()));
    let letters = wait_for_codes(&coordinator.bus, proto::deadletter::COORDINATOR, &["unsigned", "unknown_key"]).await;
    assert!(letters.iter().any(|letter| letter.source.contains("pending-1")), "{letters:?}");

    // The cluster uses a secret (its own signed result says so); a forged "no longer uses it" is refused.
    let secret = SharedResource::Secret { vault_id: "/subscriptions/s/rg/kv".into(), name: "cred".into() };
    let own = Bus::connect(&server.url(), "own").await.unwrap().with_identity(agent_key(cluster));
    let uses = forged_result(cluster, "grant-1", vec![ResourceUse { resource: secret.clone(), in_use: true }]);
    ResultPublisher::open(&own)
        .await
        .unwrap()
        .publish_result(&CommandResult { agent_version: "real".into(), ..uses }, None)
        .await
        .unwrap();
    let released = forged_result(cluster, "teardown-1", vec![ResourceUse { resource: secret.clone(), in_use: false }]);
    ResultPublisher::open(&anonymous).await.unwrap().publish_result(&released, None).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let letters = dead_letters(&coordinator.bus, proto::deadletter::COORDINATOR).await;
        let (record, _) =
            coordinator::record::records(&coordinator.bus).await.unwrap().get(cluster).await.unwrap().unwrap();
        if letters.iter().any(|letter| letter.source.contains("teardown-1")) && record.results_recorded >= 2 {
            assert!(record.in_use.contains(&secret), "the forged release was recorded: {record:?}");
            break;
        }
        assert!(started.elapsed() < WAIT, "the forged release was neither refused nor the grant recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.stop().await.unwrap();
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_is_cut_off_while_everything_runs_and_re_enrolling_restores_it() {
    let server = NatsServer::start().unwrap();
    let coordinator = start_coordinator(&server.url(), tests::fleet::declare("rv", 1)).await.unwrap();
    let cluster = "rv-000";
    let fleet = MemoryFleet::default();
    let agent =
        spawn_agent(&server.url(), test_settings(cluster, &[]), fleet.executor(cluster, Pause::None)).await.unwrap();
    let operate = testkit::identity::operator_bus(&server.url(), testkit::identity::TEST_OPERATE).await.unwrap();
    let reader = testkit::identity::operator_bus(&server.url(), testkit::identity::TEST_READER).await.unwrap();
    let ask = |bus: &Bus, request: proto::identity::AgentsRequest| {
        let bus = bus.clone();
        async move {
            let reply = bus
                .signed_request(
                    subjects::control("agents"),
                    serde_json::to_vec(&request).unwrap(),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            serde_json::from_slice::<proto::identity::AgentsReply>(&reply.payload).unwrap()
        }
    };
    let revoke = proto::identity::AgentsRequest::Revoke { cluster: cluster.into() };
    let refused = ask(&reader, revoke.clone()).await;
    assert!(
        matches!(&refused, proto::identity::AgentsReply::Refused { code, .. } if code == "forbidden"),
        "{refused:?}"
    );
    let revoked = ask(&operate, revoke).await;
    let proto::identity::AgentsReply::Revoked { enrollment } = revoked else { panic!("{revoked:?}") };
    assert_eq!(
        enrollment.revoked_by.as_deref(),
        Some(testkit::identity::TEST_OPERATE),
        "the verified operator is recorded"
    );
    CommandPublisher::new(&coordinator.bus).publish(&mk_enable(cluster, "after-revoke"), None).await.unwrap();
    let letters = wait_for_codes(&coordinator.bus, proto::deadletter::COORDINATOR, &["unknown_key"]).await;
    assert!(letters.iter().any(|letter| letter.source.contains("after-revoke")), "{letters:?}");
    let records = coordinator::record::records(&coordinator.bus).await.unwrap();
    assert!(records.get(cluster).await.unwrap().is_none(), "a revoked agent's result was recorded");
    // Enrolling the (re-keyed) agent again restores it without a restart of anything.
    let enroll = proto::identity::AgentsRequest::Enroll {
        cluster: cluster.into(),
        public_key: agent_key(cluster).public().to_string(),
    };
    assert!(matches!(ask(&operate, enroll).await, proto::identity::AgentsReply::Enrolled { .. }));
    CommandPublisher::new(&coordinator.bus)
        .publish(&with_dns(mk_enable(cluster, "after-enroll"), "10.1.0.9"), None)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while records
        .get(cluster)
        .await
        .unwrap()
        .is_none_or(|(record, _)| record.last_result.command_id.as_str() != "after-enroll")
    {
        assert!(started.elapsed() < WAIT, "the re-enrolled agent's result was not recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.stop().await.unwrap();
    coordinator.stop().await;
}

/// A control request signed at `at` with `nonce` by `key`, sent raw.
async fn send_signed_at(
    bus: &Bus,
    key: &SecretKey,
    subject: &str,
    payload: &[u8],
    at: i64,
    nonce: &str,
) -> proto::identity::AgentsReply {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(proto::identity::REQUEST_AT_HEADER, at.to_string().as_str());
    headers.insert(proto::identity::REQUEST_NONCE_HEADER, nonce);
    let context = proto::identity::request_context(subject, at, nonce);
    bus::headers::sign(&mut headers, key, gmsa::signing::Purpose::Request, &context, payload);
    let reply = bus.client().request_with_headers(subject.to_string(), headers, payload.to_vec().into()).await.unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_operator_request_sent_again_is_refused_as_replayed_and_an_old_one_as_stale_with_no_effect() {
    let server = NatsServer::start().unwrap();
    let coordinator = start_coordinator(&server.url(), tests::fleet::declare("rp", 1)).await.unwrap();
    let cluster = "rp-000";
    let operate = testkit::identity::operator_bus(&server.url(), testkit::identity::TEST_OPERATE).await.unwrap();
    let key = operate.identity().unwrap();
    let subject = subjects::control("agents");
    let enrollment_of = || async {
        bus::enrollment::Enrollments::open(&coordinator.bus).await.unwrap().keys_of(cluster).await.unwrap()
    };
    let enroll = proto::identity::AgentsRequest::Enroll {
        cluster: cluster.into(),
        public_key: agent_key(cluster).public().to_string(),
    };
    let enroll = serde_json::to_vec(&enroll).unwrap();
    let reply = operate.signed_request(subject.clone(), enroll.clone(), WAIT).await.unwrap();
    let reply: proto::identity::AgentsReply = serde_json::from_slice(&reply.payload).unwrap();
    assert!(matches!(reply, proto::identity::AgentsReply::Enrolled { .. }), "{reply:?}");
    // An eavesdropper on the control subject keeps a copy of the operator's revoke.
    let mut tap = coordinator.bus.client().subscribe(subject.clone()).await.unwrap();
    // A flush only writes the SUB out; a round trip on the same connection is what shows the server
    // has registered it (it reads a connection in order) before the operator, on another one, sends.
    coordinator.bus.client().request("$JS.API.INFO", bytes::Bytes::new()).await.unwrap();
    let revoke = serde_json::to_vec(&proto::identity::AgentsRequest::Revoke { cluster: cluster.into() }).unwrap();
    let reply = operate.signed_request(subject.clone(), revoke.clone(), Duration::from_secs(10)).await.unwrap();
    let reply: proto::identity::AgentsReply = serde_json::from_slice(&reply.payload).unwrap();
    assert!(matches!(reply, proto::identity::AgentsReply::Revoked { .. }), "{reply:?}");
    let captured = tokio::time::timeout(WAIT, tap.next()).await.unwrap().unwrap();
    assert!(enrollment_of().await.is_empty(), "revoked");
    // The operator enrolls the cluster again; the captured revoke, sent again verbatim, is refused.
    let reply = operate.signed_request(subject.clone(), enroll, WAIT).await.unwrap();
    let reply: proto::identity::AgentsReply = serde_json::from_slice(&reply.payload).unwrap();
    assert!(matches!(reply, proto::identity::AgentsReply::Enrolled { .. }), "{reply:?}");
    let replayed = coordinator
        .bus
        .client()
        .request_with_headers(subject.clone(), captured.headers.clone().unwrap(), captured.payload.clone())
        .await
        .unwrap();
    let replayed: proto::identity::AgentsReply = serde_json::from_slice(&replayed.payload).unwrap();
    assert!(
        matches!(&replayed, proto::identity::AgentsReply::Refused { code, .. } if code == "replayed"),
        "{replayed:?}"
    );
    assert_eq!(enrollment_of().await, vec![agent_key(cluster).public()], "the replay revoked nothing");
    // Validly signed, but too old or too far ahead: stale. A fresh nonce and time: accepted.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let window = proto::identity::REQUEST_WINDOW_SECS;
    for (at, nonce) in [(now - window - 30, "a".repeat(32)), (now + window + 30, "b".repeat(32))] {
        let reply = send_signed_at(&operate, key, &subject, &revoke, at, &nonce).await;
        assert!(matches!(&reply, proto::identity::AgentsReply::Refused { code, .. } if code == "stale"), "{reply:?}");
    }
    assert_eq!(enrollment_of().await, vec![agent_key(cluster).public()], "a stale request revoked nothing");
    let reply = send_signed_at(&operate, key, &subject, &revoke, now, &"c".repeat(32)).await;
    assert!(matches!(reply, proto::identity::AgentsReply::Revoked { .. }), "{reply:?}");
    // The same nonce under a new signature time is still the same request: replayed.
    let reply = send_signed_at(&operate, key, &subject, &revoke, now + 1, &"c".repeat(32)).await;
    assert!(matches!(&reply, proto::identity::AgentsReply::Refused { code, .. } if code == "replayed"), "{reply:?}");
    coordinator.stop().await;
}
