//! The shipped server configuration (`deploy/nats/nats-server.conf`: TLS, accounts, the auth
//! callout) with the coordinator serving the callout: agents and operators connect with their own
//! signed credentials, and the server enforces what each may publish and subscribe to.

use super::support::mk_enable;
use bus::commands::CommandPublisher;
use bus::{Bus, Credentials, Security};
use gmsa::signing::{NkeyKind, SecretKey, nkey_of};
use std::sync::Arc;
use std::time::Duration;
use testkit::identity::{agent_key, callout_issuer_key, coordinator_key, operator_key};
use testkit::nats::NatsServer;
use tests::fleet::{declare, spawn_agent_secured, start_coordinator_on, test_settings};
use tests::memory::{MemoryFleet, Pause};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);
/// The callout's JWT lifetime in these tests: how late a revocation may take effect.
const TTL: Duration = Duration::from_secs(2);

struct Secured {
    server: NatsServer,
    coordinator: tests::fleet::CoordinatorHandle,
}

impl Secured {
    async fn start(clusters: usize) -> Secured {
        let issuer = callout_issuer_key();
        let server = NatsServer::start_shipped(&nkey_of(&issuer.public(), NkeyKind::Account)).unwrap();
        let shipped = server.shipped().unwrap().clone();
        let url = server.url();
        let password = |user: &str, password: &str| Security {
            ca_file: Some(shipped.ca_file.clone()),
            credentials: Credentials::Password { user: user.into(), password: password.into() },
        };
        let bus = Bus::connect_secured(
            &password("coordinator", &shipped.coordinator_password),
            Some(coordinator_key()),
            &url,
            "coordinator",
            None,
        )
        .await
        .unwrap();
        let callout_bus =
            Bus::connect_secured(&password("auth", &shipped.auth_password), None, &url, "callout", None).await.unwrap();
        let settings = coordinator::callout::CalloutSettings {
            issuer,
            account: "FLEET".into(),
            ttl: TTL,
            window: Duration::from_secs(120),
        };
        let options = coordinator::daemon::Options { callout: Some((callout_bus, settings)), ..Default::default() };
        let coordinator = start_coordinator_on(bus, &url, declare("p", clusters), options).await.unwrap();
        for index in 0..clusters {
            testkit::identity::enroll(&coordinator.bus, &format!("p-{index:03}")).await.unwrap();
        }
        Secured { server, coordinator }
    }

    fn ca(&self) -> std::path::PathBuf {
        self.server.shipped().unwrap().ca_file.clone()
    }

    /// A raw connection as `user` signing its tokens with `key`, with the server's errors
    /// (permission violations) sent to the returned channel.
    async fn raw(
        &self,
        user: &str,
        key: Arc<SecretKey>,
        inbox: &str,
    ) -> Result<(async_nats::Client, mpsc::UnboundedReceiver<String>), async_nats::ConnectError> {
        let (errors, received) = mpsc::unbounded_channel();
        let user = user.to_string();
        let client = async_nats::ConnectOptions::with_auth_callback(move |_| {
            let (key, user) = (key.clone(), user.clone());
            async move {
                let mut auth = async_nats::Auth::new();
                auth.password =
                    Some(gmsa::natsauth::token(&key, &user, time::OffsetDateTime::now_utc().unix_timestamp()));
                auth.username = Some(user);
                Ok(auth)
            }
        })
        .add_root_certificates(self.ca())
        .require_tls(true)
        .custom_inbox_prefix(inbox)
        .max_reconnects(Some(1))
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let async_nats::Event::ServerError(err) = event {
                    let _ = errors.send(err.to_string());
                }
            }
        })
        .connect(self.server.url())
        .await?;
        Ok((client, received))
    }
}

/// Waits for a permissions violation naming `subject`.
async fn violation(errors: &mut mpsc::UnboundedReceiver<String>, subject: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let error = tokio::time::timeout_at(deadline, errors.recv())
            .await
            .unwrap_or_else(|_| panic!("no permissions violation for {subject}"))
            .unwrap();
        if error.to_lowercase().contains("permissions violation") && error.contains(subject) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_connect_with_their_own_credentials_over_tls_and_the_server_refuses_what_is_not_theirs() {
    let fleet = Secured::start(2).await;
    let url = fleet.server.url();
    let memory = MemoryFleet::default();
    let mut agents = Vec::new();
    for cluster in ["p-000", "p-001"] {
        agents.push(
            spawn_agent_secured(&url, &fleet.ca(), test_settings(cluster, &[]), memory.executor(cluster, Pause::None))
                .await
                .unwrap(),
        );
    }
    // The fleet works end to end: commands in, signed results out, recorded.
    for cluster in ["p-000", "p-001"] {
        CommandPublisher::new(&fleet.coordinator.bus)
            .publish(&mk_enable(cluster, &format!("ok-{cluster}")), None)
            .await
            .unwrap();
    }
    let records = coordinator::record::records(&fleet.coordinator.bus).await.unwrap();
    let started = std::time::Instant::now();
    for cluster in ["p-000", "p-001"] {
        while records.get(cluster).await.unwrap().is_none() {
            assert!(started.elapsed() < WAIT, "{cluster}'s result was not recorded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Agent A (p-000) with its own credentials tries to reach B's (p-001) subjects.
    let (a, mut errors) = fleet.raw("agent:p-000", agent_key("p-000"), "_INBOX_p-000").await.unwrap();
    for subject in ["fleet.cmd.p-001", "fleet.wake.p-001", "fleet.cmd.>", "fleet.result.>", "_INBOX_p-001.>"] {
        let _subscription = a.subscribe(subject.to_string()).await.unwrap();
        violation(&mut errors, subject).await;
    }
    let publishes = [
        "fleet.cmd.p-001",
        "fleet.result.p-001.forged",
        "$KV.fleet_agents.p-001",
        "$KV.fleet_cursors.p-001",
        "$KV.fleet_state.p-000",
        "$KV.fleet_inventory.p-009",
        "$KV.fleet_rollouts.r1",
        "$KV.fleet_enrollments.p-000",
        // Direct gets by sequence and by next_by_subj (filter in the body), and last-by-subject.
        "$JS.API.DIRECT.GET.FLEET_COMMANDS",
        "$JS.API.DIRECT.GET.FLEET_COMMANDS.fleet.cmd.p-001",
        // B's own consumer: created, read, or acknowledged by A.
        "$JS.API.CONSUMER.CREATE.FLEET_COMMANDS.agent-p-001.fleet.cmd.p-001",
        "$JS.API.CONSUMER.CREATE.FLEET_COMMANDS.agent-p-000.fleet.cmd.p-001",
        "$JS.API.CONSUMER.MSG.NEXT.FLEET_COMMANDS.agent-p-001",
        "$JS.API.CONSUMER.INFO.FLEET_COMMANDS.agent-p-001",
        "$JS.ACK.FLEET_COMMANDS.agent-p-001.1.1.1.1.0",
        "$JS.API.DIRECT.GET.FLEET_RESULTS.fleet.result.p-001.ok-p-001",
        "$JS.API.DIRECT.GET.KV_fleet_cursors.$KV.fleet_cursors.p-001",
        "$JS.API.STREAM.MSG.GET.FLEET_COMMANDS",
        // No stream info but its cursor bucket's: the hello is written without opening its bucket.
        "$JS.API.STREAM.INFO.KV_fleet_agents",
        "$JS.API.STREAM.INFO.FLEET_COMMANDS",
        "$JS.API.CONSUMER.CREATE.FLEET_COMMANDS.spy.fleet.cmd.p-001",
        "$JS.API.CONSUMER.CREATE.FLEET_COMMANDS",
        "$JS.API.CONSUMER.DURABLE.CREATE.FLEET_COMMANDS.spy",
        "fleet.ctl.run",
        // The audit log, its checkpoints and its inbox are the coordinator's alone.
        "fleet.audit.log",
        "fleet.audit.checkpoint",
        "fleet.audit.in.request",
        "$JS.API.STREAM.DELETE.FLEET_AUDIT",
        // Nor can it use up operators' request nonces.
        "fleet.nonce",
    ];
    for subject in publishes {
        a.publish(subject.to_string(), "{}".into()).await.unwrap();
        violation(&mut errors, subject).await;
    }
    // Its own subjects are allowed: no violation for them, and the stores hold nothing forged.
    a.publish("fleet.progress.p-000.x".to_string(), "{}".into()).await.unwrap();
    a.flush().await.unwrap();
    let commands = fleet.coordinator.bus.jetstream().get_stream(proto::subjects::COMMAND_STREAM).await.unwrap();
    let mut seq = 0;
    let mut to_b = 0;
    while let Ok(message) = commands.direct_get_next_for_subject("fleet.cmd.p-001", Some(seq + 1)).await {
        seq = message.sequence;
        to_b += 1;
    }
    assert_eq!(to_b, 1, "only the coordinator's command reached p-001's subject");

    // An agent that is not enrolled cannot connect at all; nor can one with another's key.
    assert!(fleet.raw("agent:p-009", agent_key("p-009"), "_INBOX_p-009").await.is_err());
    assert!(fleet.raw("agent:p-001", agent_key("p-000"), "_INBOX_p-001").await.is_err());
    assert!(fleet.raw("p-001", agent_key("p-001"), "_INBOX_p-001").await.is_err());
    for agent in agents {
        agent.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_is_disconnected_by_the_running_server_and_operators_reach_only_the_control_api() {
    let fleet = Secured::start(1).await;
    let (agent, _errors) = fleet.raw("agent:p-000", agent_key("p-000"), "_INBOX_p-000").await.unwrap();
    // The operator connects with its own credentials and revokes the agent through the control API.
    let admin_key = operator_key(testkit::identity::TEST_OPERATE);
    let user = format!("operator:{}", testkit::identity::TEST_OPERATE);
    let security = Security { ca_file: Some(fleet.ca()), credentials: Credentials::Signed { user: user.clone() } };
    let operator =
        Bus::connect_secured(&security, Some(admin_key.clone()), &fleet.server.url(), "fleetctl", None).await.unwrap();
    let (raw_operator, mut errors) = fleet.raw(&user, admin_key, "_INBOX_op_test-operate").await.unwrap();
    for subject in [
        "fleet.cmd.p-000",
        "fleet.result.p-000.x",
        "$KV.fleet_enrollments.p-000",
        "$KV.fleet_state.p-000",
        "fleet.audit.log",
        "fleet.audit.in.rollout",
        "$JS.API.STREAM.DELETE.FLEET_AUDIT",
        "$JS.API.STREAM.UPDATE.FLEET_AUDIT",
        "fleet.nonce",
        // Nor touch the consumers agents and the coordinator depend on: an agent's consumer
        // deleted, or squatted with another start, would make it skip commands.
        "$JS.API.CONSUMER.DELETE.FLEET_COMMANDS.agent-p-000",
        "$JS.API.CONSUMER.CREATE.FLEET_COMMANDS.agent-p-000.fleet.cmd.p-000",
        "$JS.API.CONSUMER.MSG.NEXT.FLEET_COMMANDS.agent-p-000",
        "$JS.API.CONSUMER.DELETE.FLEET_RESULTS.coordinator-results",
        "$JS.API.CONSUMER.MSG.NEXT.FLEET_RESULTS.coordinator-results",
        "$JS.API.CONSUMER.DELETE.FLEET_DRIFT.coordinator-drift",
        // Nor read commands (by sequence, next_by_subj or last-by-subject), drift reports, dead
        // letters, progress, the rollout log or other operators' request nonces.
        "$JS.API.DIRECT.GET.FLEET_COMMANDS",
        "$JS.API.DIRECT.GET.FLEET_COMMANDS.fleet.cmd.p-000",
        "$JS.API.DIRECT.GET.FLEET_DRIFT.fleet.drift.p-000",
        "$JS.API.DIRECT.GET.FLEET_DEAD",
        "$JS.API.DIRECT.GET.FLEET_PROGRESS",
        "$JS.API.DIRECT.GET.FLEET_ROLLOUT_LOG",
        "$JS.API.DIRECT.GET.FLEET_REQUEST_NONCES",
    ] {
        raw_operator.publish(subject.to_string(), "{}".into()).await.unwrap();
        violation(&mut errors, subject).await;
    }
    // What fleetctl reads still works through its own connection: the inventory (an ordered
    // consumer on each bucket) and the audit log; a tail of the results stream does not.
    let inventory = coordinator::inventory::load(&operator).await.unwrap();
    assert_eq!(inventory.entries.len(), 1);
    bus::audit::Tail::open(&operator, proto::subjects::AUDIT_STREAM, None, 1).await.unwrap();
    assert!(bus::audit::Tail::open(&operator, proto::subjects::RESULT_STREAM, None, 1).await.is_err());
    // A result lookup and an artifact fetch (rollout status, diagnostics) reach their streams:
    // nothing is stored, and the server says so instead of refusing the request.
    let results = bus::results::ResultPublisher::open(&operator).await.unwrap();
    let enrollments = bus::enrollment::Enrollments::open(&operator).await.unwrap();
    let lookup = results.lookup_enrolled(&enrollments, "p-000", "nothing-here").await.unwrap();
    assert_eq!(lookup, bus::results::Lookup::Absent);
    assert_eq!(bus::results::fetch_artifact(&operator, "p-000", "nothing-here").await.unwrap(), None);
    let revoke = proto::identity::AgentsRequest::Revoke { cluster: "p-000".into() };
    let reply = operator
        .signed_request(
            proto::subjects::control("agents"),
            serde_json::to_vec(&revoke).unwrap(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let reply: proto::identity::AgentsReply = serde_json::from_slice(&reply.payload).unwrap();
    assert!(matches!(reply, proto::identity::AgentsReply::Revoked { .. }), "{reply:?}");
    // Within the JWT's lifetime the server drops the revoked agent's connection; it cannot come back.
    let started = std::time::Instant::now();
    while agent.connection_state() == async_nats::connection::State::Connected {
        assert!(started.elapsed() < TTL * 4 + Duration::from_secs(5), "the revoked agent is still connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_ne!(agent.connection_state(), async_nats::connection::State::Connected, "it reconnected");
    assert!(fleet.raw("agent:p-000", agent_key("p-000"), "_INBOX_p-000").await.is_err());
    // An operator key not in [[operators]] is refused at connect.
    assert!(fleet.raw("operator:mallory", Arc::new(SecretKey::from_seed([9; 32])), "_INBOX_op_mallory").await.is_err());
}
