//! The central audit log end to end over a real nats-server: the coordinator's writer (the same
//! daemon code production runs) records a rollout, the log is tampered with through a raw client
//! with the stream's deny rules lifted, and the independent verifier names the index it touched.

use super::rollouts::{mk_file, wait_until};
use bus::Bus;
use coordinator::audit::read;
use coordinator::inventory::DeclaredCluster;
use coordinator::rollouts::api::{RolloutReply, RolloutRequest};
use gmsa::audit::query::Filter;
use gmsa::audit::verify::TrustedKey;
use gmsa::rollout::Phase;
use proto::audit::{AuditEntry, AuditEvent};
use proto::subjects;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use testkit::nats::NatsServer;
use tests::fleet::{AgentHandle, CoordinatorHandle, spawn_agent, test_settings};
use tests::memory::{MemoryFleet, Pause};

const WAIT: Duration = Duration::from_secs(60);

fn options(name: &str) -> coordinator::daemon::Options {
    let mut options = coordinator::daemon::Options::default();
    options.audit.checkpoints =
        gmsa::audit::seal::CheckpointPolicy { every_entries: 20, every: Duration::from_millis(500) };
    options.audit.linger = Duration::from_millis(150);
    options.leader.name = name.to_string();
    options.leader.ttl = Duration::from_secs(2);
    options.leader.renew = Duration::from_millis(300);
    options.driver.tick = Duration::from_millis(100);
    options
}

fn trusted() -> Vec<TrustedKey> {
    let key = gmsa::merkle::verifier_key(
        coordinator::audit::DEFAULT_KEY_NAME,
        &testkit::identity::coordinator_key().public(),
    );
    vec![TrustedKey::parse(&key).unwrap()]
}

fn declared(n: usize) -> Vec<DeclaredCluster> {
    (0..n)
        .map(|i| DeclaredCluster {
            id: format!("m-{i:03}"),
            labels: BTreeMap::from([("subscription".to_string(), "s0".to_string())]),
        })
        .collect()
}

async fn agents(url: &str, fleet: &MemoryFleet, n: usize) -> Vec<AgentHandle> {
    let mut agents = Vec::new();
    for i in 0..n {
        let cluster = format!("m-{i:03}");
        agents
            .push(spawn_agent(url, test_settings(&cluster, &[]), fleet.executor(&cluster, Pause::None)).await.unwrap());
    }
    agents
}

async fn ask(bus: &Bus, request: RolloutRequest) -> RolloutReply {
    coordinator::rollout_verbs::request(bus, &request).await.unwrap()
}

/// Polls the log until `done` holds for its entries.
async fn audit_until(bus: &Bus, what: &str, done: impl Fn(&[AuditEntry]) -> bool) -> Vec<AuditEntry> {
    let started = Instant::now();
    loop {
        let (entries, _) = read::entries(bus, &Filter::default()).await.unwrap();
        if done(&entries) {
            return entries;
        }
        assert!(
            started.elapsed() < WAIT,
            "{what}: {} entries: {:#?}",
            entries.len(),
            entries.iter().rev().take(5).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn transitions(entries: &[AuditEntry], rollout_id: &str) -> Vec<(String, String)> {
    entries
        .iter()
        .filter(|entry| entry.rollout.as_deref() == Some(rollout_id))
        .filter_map(|entry| match &entry.event {
            AuditEvent::Rollout { transition, stage, .. } => Some((
                format!("{transition}{}", stage.as_ref().map(|s| format!(" {s}")).unwrap_or_default()),
                entry.actor.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// Waits until the log's last checkpoint covers every entry (the writer is idle).
async fn checkpointed(bus: &Bus) -> (u64, String) {
    let started = Instant::now();
    loop {
        let (entries, _) = read::entries(bus, &Filter::default()).await.unwrap();
        let notes = read::checkpoints(bus).await.unwrap();
        if let Some((_, note)) = notes.last() {
            let size: u64 = note.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
            if size == entries.len() as u64 && size > 0 {
                return (size, note.clone());
            }
        }
        assert!(started.elapsed() < WAIT, "no checkpoint covers the log");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_is_audited_in_order_with_verified_actors_and_failover_continues_one_tree() {
    let server = NatsServer::start().unwrap();
    let url = server.url();
    let first: CoordinatorHandle =
        tests::fleet::start_coordinator_with(&url, declared(3), options("first")).await.unwrap();
    let fleet = MemoryFleet::default();
    let agents = agents(&url, &fleet, 3).await;
    let admin = testkit::identity::operator_bus(&url, testkit::identity::TEST_OPERATOR).await.unwrap();
    let reader = testkit::identity::operator_bus(&url, testkit::identity::TEST_READER).await.unwrap();
    let file = mk_file("  stages:\n    - {name: canary, count: 1, approval_after: true}\n    - {name: rest}\n");
    let rollout_id = match ask(
        &admin,
        RolloutRequest::Start { file: Box::new(file), dry_run: false, requested_by: Some("forged-name".into()) },
    )
    .await
    {
        RolloutReply::Started { rollout_id, .. } => rollout_id,
        other => panic!("{other:?}"),
    };
    wait_until(&admin, &rollout_id, "canary gate", |status| {
        status.stages[0].phase == gmsa::rollout::StagePhase::WaitingApprovalAfter
    })
    .await;
    // Mid-rollout: keep the checkpoint the first leader signed, then fail over to a second
    // coordinator while the gate waits.
    audit_until(&admin, "the gate is audited", |entries| {
        transitions(entries, &rollout_id).iter().any(|(t, _)| t == "awaiting-approval canary")
    })
    .await;
    let (kept_size, kept_note) = checkpointed(&admin).await;
    let approve =
        RolloutRequest::Approve { rollout_id: rollout_id.clone(), stage: Some("canary".into()), by: "forged".into() };
    let refused = ask(&reader, approve.clone()).await;
    assert!(matches!(&refused, RolloutReply::Refused { code, .. } if code == "forbidden"), "{refused:?}");
    let second = tests::fleet::start_coordinator_with(&url, Vec::new(), options("second")).await.unwrap();
    first.stop().await;
    let started = Instant::now();
    loop {
        // The second coordinator leads within the lease's expiry; until then nobody answers.
        if let Ok(reply) = coordinator::rollout_verbs::request(&admin, &approve).await
            && matches!(reply, RolloutReply::Done { .. })
        {
            break;
        }
        assert!(started.elapsed() < WAIT, "the second coordinator never took over");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_until(&admin, &rollout_id, "completed", |status| matches!(status.phase, Phase::Completed)).await;
    let entries = audit_until(&admin, "completion is audited", |entries| {
        transitions(entries, &rollout_id).iter().any(|(t, _)| t == "completed")
    })
    .await;

    // Every step, in order, with the right actors.
    let steps = transitions(&entries, &rollout_id);
    let expected = [
        ("created", "operator:test-admin"),
        ("started", "coordinator"),
        ("stage-started canary", "coordinator"),
        ("awaiting-approval canary", "coordinator"),
        ("approved canary", "operator:test-admin"),
        ("stage-completed canary", "coordinator"),
        ("stage-started rest", "coordinator"),
        ("stage-completed rest", "coordinator"),
        ("completed", "coordinator"),
    ];
    let mut at = 0;
    for (transition, actor) in expected {
        let found = steps[at..].iter().position(|(t, a)| t == transition && a == actor);
        let Some(found) = found else { panic!("{transition} by {actor} not after position {at}: {steps:?}") };
        at += found + 1;
    }
    // Each cluster: its commands as published, its results with their steps, signed by its key.
    for cluster in ["m-000", "m-001", "m-002"] {
        let of =
            |kind: &str| entries.iter().filter(|e| e.cluster.as_deref() == Some(cluster) && e.kind() == kind).count();
        assert!(of("command") >= 1 && of("result") >= 1, "{cluster}");
        for entry in entries.iter().filter(|e| e.cluster.as_deref() == Some(cluster) && e.kind() == "result") {
            let AuditEvent::Result { verified, result, .. } = &entry.event else { unreachable!() };
            assert!(*verified, "{cluster}: the result's signature is by its enrolled key");
            assert_eq!(entry.actor, format!("agent:{cluster}"));
            assert!(!result.steps.is_empty());
        }
    }
    // Requests carry the verified identity, not what the body said.
    let requests: Vec<&AuditEntry> = entries.iter().filter(|e| e.kind() == "request").collect();
    assert!(requests.iter().any(|e| e.actor == "operator:test-admin"
        && matches!(&e.event, AuditEvent::Request { outcome, request, .. } if outcome == "answered" && request.get("approve").is_some() || request.to_string().contains("approve"))));
    assert!(
        requests
            .iter()
            .any(|e| matches!(&e.event, AuditEvent::Request { code: Some(code), .. } if code == "forbidden"))
    );
    assert!(entries.iter().all(|e| !e.actor.contains("forged")), "no self-declared name is an actor");
    // Nothing recorded twice across the failover, and the indices run without a gap.
    let mut sources: Vec<&String> = entries.iter().filter_map(|e| e.source.as_ref()).collect();
    let total = sources.len();
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), total, "an entry recorded twice");
    assert!(entries.iter().enumerate().all(|(at, e)| e.index == at as u64));

    // One tree: the checkpoint kept before the failover is consistent with the latest.
    let (size, note) = checkpointed(&admin).await;
    assert!(size > kept_size);
    let report =
        read::verify(&admin, coordinator::audit::DEFAULT_ORIGIN, trusted(), &[("kept".into(), kept_note.clone())])
            .await
            .unwrap();
    assert_eq!(report.failures, vec![], "{report:#?}");
    assert_eq!((report.size, report.verified_size), (size, size));
    let old = gmsa::merkle::verify_checkpoint(
        &kept_note,
        &[(coordinator::audit::DEFAULT_KEY_NAME, testkit::identity::coordinator_key().public())],
    )
    .unwrap();
    let new = gmsa::merkle::verify_checkpoint(
        &note,
        &[(coordinator::audit::DEFAULT_KEY_NAME, testkit::identity::coordinator_key().public())],
    )
    .unwrap();
    let leaves: Vec<gmsa::merkle::Hash> = read::export(&admin, &Filter::default())
        .await
        .unwrap()
        .iter()
        .map(|line| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(&line.leaf_hash).unwrap().try_into().unwrap()
        })
        .collect();
    // Every exported entry carries an inclusion proof in the first checkpoint covering it.
    let exported = read::export(&admin, &Filter::default()).await.unwrap();
    assert_eq!(exported.len() as u64, size);
    for line in &exported {
        use base64::Engine as _;
        let decode = |text: &str| -> gmsa::merkle::Hash {
            base64::engine::general_purpose::STANDARD.decode(text).unwrap().try_into().unwrap()
        };
        let covered = line.checkpoint.as_ref().unwrap_or_else(|| panic!("entry {} is not covered", line.index));
        let checkpoint = gmsa::merkle::verify_checkpoint(
            &covered.note,
            &[(coordinator::audit::DEFAULT_KEY_NAME, testkit::identity::coordinator_key().public())],
        )
        .unwrap();
        let proof: Vec<gmsa::merkle::Hash> = covered.inclusion_proof.iter().map(|hash| decode(hash)).collect();
        let entry_bytes = serde_json::to_vec(&line.entry).unwrap();
        assert_eq!(gmsa::merkle::leaf_hash(&entry_bytes), decode(&line.leaf_hash), "entry {}", line.index);
        assert!(
            gmsa::merkle::verify_inclusion(
                &decode(&line.leaf_hash),
                line.index,
                checkpoint.size,
                &proof,
                &checkpoint.root
            ),
            "entry {}'s inclusion proof",
            line.index
        );
    }
    let proof = gmsa::merkle::consistency_proof(old.size as usize, &leaves[..new.size as usize]);
    assert!(gmsa::merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof), "RFC 9162 consistency");
    for agent in agents {
        agent.stop().await.unwrap();
    }
    second.stop().await;
}

/// The stored batches, raw.
async fn stored_batches(bus: &Bus) -> Vec<(async_nats::HeaderMap, bytes::Bytes)> {
    let mut batches = Vec::new();
    bus::audit::read_to_end::<bus::BusError>(bus, subjects::AUDIT_STREAM, 1, |batch| {
        batches.push((batch.headers.clone().unwrap_or_default(), batch.payload.clone()));
        Ok(())
    })
    .await
    .unwrap();
    batches
}

/// Replaces the stored log with `batches` through a raw client with the server's full rights.
/// The server refuses to lift `deny_delete`/`deny_purge` on the stream (checked here), so the
/// forger deletes the whole stream, makes it again and writes the modified copy.
async fn rewrite(bus: &Bus, batches: &[(async_nats::HeaderMap, bytes::Bytes)]) {
    let js = bus.jetstream();
    let mut stream = js.get_stream(subjects::AUDIT_STREAM).await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    let lifted = async_nats::jetstream::stream::Config { deny_delete: false, deny_purge: false, ..config.clone() };
    assert!(js.update_stream(lifted).await.is_err(), "the server keeps the audit stream append-only");
    js.delete_stream(subjects::AUDIT_STREAM).await.unwrap();
    js.create_stream(config).await.unwrap();
    for (headers, body) in batches {
        let mut copy = async_nats::HeaderMap::new();
        for (name, values) in headers.iter() {
            let name: &str = name.as_ref();
            if name.starts_with("Nats-") {
                continue;
            }
            for value in values {
                copy.append(name, value.as_str());
            }
        }
        js.publish_with_headers(subjects::AUDIT_LOG, copy, body.clone()).await.unwrap().await.unwrap();
    }
}

fn lines(body: &bytes::Bytes) -> Vec<Vec<u8>> {
    body.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

fn first_of(headers: &async_nats::HeaderMap) -> u64 {
    headers.get(proto::audit::FIRST_HEADER).unwrap().as_str().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_the_stored_log_is_named_at_the_first_index_it_touched() {
    let server = NatsServer::start().unwrap();
    let url = server.url();
    let coordinator = tests::fleet::start_coordinator_with(&url, declared(4), options("only")).await.unwrap();
    let fleet = MemoryFleet::default();
    let agents = agents(&url, &fleet, 4).await;
    for _ in 0..2 {
        tests::fleet::run_and_follow(
            &coordinator.bus,
            proto::Command::DisableGmsa(Default::default()),
            "",
            Duration::from_secs(30),
            |_| {},
        )
        .await
        .unwrap();
    }
    let (size, _) = checkpointed(&coordinator.bus).await;
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
    let bus = Bus::connect(&url, "auditor").await.unwrap();
    let verify = |kept: Vec<(String, String)>| {
        let bus = bus.clone();
        async move { read::verify(&bus, coordinator::audit::DEFAULT_ORIGIN, trusted(), &kept).await.unwrap() }
    };
    let intact = verify(Vec::new()).await;
    assert_eq!(intact.failures, vec![], "{intact:#?}");
    assert_eq!(intact.size, size);
    // Can the stream itself refuse a delete? It must.
    let stream = bus.jetstream().get_stream(subjects::AUDIT_STREAM).await.unwrap();
    assert!(stream.delete_message(1).await.is_err(), "the audit stream denies deletes");

    let pristine = stored_batches(&bus).await;
    let multi = pristine.iter().position(|(_, body)| lines(body).len() >= 3).expect("a batch of 3 or more entries");
    let base = first_of(&pristine[multi].0);
    let first_code = |report: &gmsa::audit::verify::Report| {
        let failure = report.first_failure().unwrap_or_else(|| panic!("no failure found: {report:#?}"));
        (failure.code(), failure.index())
    };
    let with_body = |change: &dyn Fn(&mut Vec<Vec<u8>>)| {
        let mut batches = pristine.clone();
        let mut body = lines(&batches[multi].1);
        change(&mut body);
        batches[multi].1 = body.join(&b'\n').into();
        batches
    };
    // One entry altered.
    rewrite(
        &bus,
        &with_body(&|l| {
            l[1] = String::from_utf8(l[1].clone())
                .unwrap()
                .replacen("agent:", "agent:x", 1)
                .replacen("coordinator", "c00rdinator", 1)
                .into_bytes()
        }),
    )
    .await;
    assert_eq!(first_code(&verify(Vec::new()).await), ("altered", Some(base + 1)));
    // One deleted.
    rewrite(
        &bus,
        &with_body(&|l| {
            l.remove(1);
        }),
    )
    .await;
    assert_eq!(first_code(&verify(Vec::new()).await), ("moved", Some(base + 1)));
    // Two swapped.
    rewrite(&bus, &with_body(&|l| l.swap(0, 2))).await;
    assert_eq!(first_code(&verify(Vec::new()).await), ("moved", Some(base)));
    // One inserted.
    rewrite(
        &bus,
        &with_body(&|l| {
            let copy = l[0].clone();
            l.insert(1, copy.into_iter().rev().collect());
        }),
    )
    .await;
    assert_eq!(first_code(&verify(Vec::new()).await), ("altered", Some(base + 1)));
    // The tail truncated below the saved checkpoints.
    let keep = pristine.len() - 1;
    rewrite(&bus, &pristine[..keep]).await;
    let truncated_at = first_of(&pristine[keep].0);
    assert_eq!(first_code(&verify(Vec::new()).await), ("truncated", Some(truncated_at)));
    // Restored: it verifies again.
    rewrite(&bus, &pristine).await;
    assert_eq!(verify(Vec::new()).await.failures, vec![]);
    // A checkpoint with a forged signature: a longer log's note, signed by another key under the
    // coordinator key's name.
    let mut longer = gmsa::merkle::Frontier::default();
    for n in 0..size + 5 {
        longer.push(gmsa::merkle::leaf_hash(&n.to_be_bytes()));
    }
    let mallory = gmsa::signing::SecretKey::from_seed([66; 32]);
    let forged = gmsa::audit::seal::checkpoint_note(
        coordinator::audit::DEFAULT_ORIGIN,
        &longer,
        &[(coordinator::audit::DEFAULT_KEY_NAME, &mallory)],
    );
    let report = verify(vec![("forged.note".into(), forged)]).await;
    assert_eq!(report.first_failure().map(|f| f.code()), Some("bad_checkpoint"), "{report:#?}");
    assert_eq!(report.failures.len(), 1, "the forged note is not taken for a truncation: {report:#?}");
    // A checkpoint signed by the coordinator's key, of another tree: inconsistent with the earlier ones.
    let mut other = gmsa::merkle::Frontier::default();
    for n in 0..size {
        other.push(gmsa::merkle::leaf_hash(&n.to_be_bytes()));
    }
    let split_view = gmsa::audit::seal::checkpoint_note(
        coordinator::audit::DEFAULT_ORIGIN,
        &other,
        &[(coordinator::audit::DEFAULT_KEY_NAME, &testkit::identity::coordinator_key())],
    );
    let report = verify(vec![("split.note".into(), split_view)]).await;
    let failure = report.first_failure().unwrap();
    assert_eq!(failure.code(), "inconsistent", "{report:#?}");
    assert!(
        matches!(failure, gmsa::audit::verify::Failure::Inconsistent { source, .. } if source == "split.note"),
        "{failure:?}"
    );
    assert_eq!(report.failures.len(), 1, "the log's own checkpoints still verify: {report:#?}");
}
