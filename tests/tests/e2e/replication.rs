//! Replication over a real 3-node JetStream cluster on loopback: every stream and bucket at R3,
//! and the command stream's leader SIGKILLed while a fleet command is in flight.

use super::support::{mk_enable, stored_results, wait_for_results};
use bus::Bus;
use bus::commands::CommandPublisher;
use std::time::Duration;
use testkit::nats_cluster::NatsCluster;
use tests::fleet::{spawn_agent, test_settings};
use tests::memory::{MemoryFleet, Pause};

/// The bus layout at R3, retried while the cluster elects its JetStream meta leader.
async fn r3_bus(url: &str) -> Bus {
    let bus = Bus::connect(url, "test").await.unwrap().with_identity(testkit::identity::coordinator_key());
    let topology = bus::topology::Topology { replicas: 3, ..bus::topology::Topology::default() };
    let started = std::time::Instant::now();
    loop {
        match bus::topology::ensure(&bus, &topology).await {
            Ok(()) => return bus,
            Err(err) => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the cluster never took the R3 layout: {}",
                    bus::chain(&err)
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_stream_leader_killed_mid_fleet_command_gives_one_result_and_one_effect_per_cluster() {
    let mut cluster = NatsCluster::start(3).unwrap();
    let url = cluster.url();
    let bus = r3_bus(&url).await;
    let commands = bus.jetstream().get_stream(proto::subjects::COMMAND_STREAM).await.unwrap();
    assert_eq!(commands.cached_info().config.num_replicas, 3);
    let fleet = MemoryFleet::default();
    let clusters: Vec<String> = (0..6).map(|index| format!("r3-{index}")).collect();
    let mut agents = Vec::new();
    for id in &clusters {
        testkit::identity::enroll(&bus, id).await.unwrap();
        let executor = fleet.executor(id, Pause::BeforeWrite(Duration::from_millis(700)));
        agents.push(spawn_agent(&url, test_settings(id, &[]), executor).await.unwrap());
    }
    let publisher = CommandPublisher::new(&bus);
    for id in &clusters {
        publisher.publish(&mk_enable(id, &format!("cmd-{id}")), None).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut commands = bus.jetstream().get_stream(proto::subjects::COMMAND_STREAM).await.unwrap();
    let info = commands.info().await.unwrap();
    let leader = info.cluster.as_ref().and_then(|cluster| cluster.leader.clone()).expect("the stream has a leader");
    let index = cluster.index_of(&leader).expect("the leader is one of ours");
    cluster.kill(index);
    for id in &clusters {
        let results = wait_for_results(&bus, id, 1, Duration::from_secs(60)).await;
        assert!(results[0].status.is_success(), "{id}: {:?}", results[0].status);
    }
    // Let any duplicate work surface before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in &clusters {
        assert_eq!(stored_results(&bus, id).await.len(), 1, "{id}: exactly one result");
        assert_eq!(fleet.cluster(id).writes(), 1, "{id}: exactly one effect");
    }
    // A stream info request may time out while the client reconnects; ask again.
    let started = std::time::Instant::now();
    let new_leader = loop {
        if let Ok(info) = commands.info().await
            && let Some(leader) = info.cluster.as_ref().and_then(|cluster| cluster.leader.clone())
        {
            break leader;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no stream info after the kill");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_ne!(new_leader, leader, "a new leader took over");
    cluster.restart(index).unwrap();

    for agent in agents {
        agent.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_consumer_dies_with_its_server_makes_it_again_on_a_live_one_and_misses_nothing() {
    let mut cluster = NatsCluster::start(3).unwrap();
    let url = cluster.url();
    let bus = r3_bus(&url).await;
    let fleet = MemoryFleet::default();
    let id = "strand";
    testkit::identity::enroll(&bus, id).await.unwrap();
    let agent = spawn_agent(&url, test_settings(id, &[]), fleet.executor(id, Pause::None)).await.unwrap();
    let publisher = CommandPublisher::new(&bus);
    publisher.publish(&mk_enable(id, "cmd-strand-1"), None).await.unwrap();
    wait_for_results(&bus, id, 1, Duration::from_secs(30)).await;
    // The agent's consumer has one replica, in memory: it lives on one server only.
    let consumer = proto::subjects::agent_consumer(id);
    let commands = bus.jetstream().get_stream(proto::subjects::COMMAND_STREAM).await.unwrap();
    let mut info = commands.consumer_info(&consumer).await.unwrap();
    assert_eq!(info.config.num_replicas, 1);
    let host = info.cluster.as_ref().and_then(|cluster| cluster.leader.clone()).expect("the consumer has a host");
    let index = cluster.index_of(&host).expect("the host is one of ours");
    cluster.kill(index);
    // The next command, sent while the consumer's server stays down (retried while the cluster
    // elects leaders again).
    let started = std::time::Instant::now();
    while let Err(err) = publisher.publish(&mk_enable(id, "cmd-strand-2"), None).await {
        assert!(started.elapsed() < Duration::from_secs(60), "the command was never stored: {}", bus::chain(&err));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let results = wait_for_results(&bus, id, 2, Duration::from_secs(90)).await;
    let second = results.iter().find(|result| result.command_id.as_str() == "cmd-strand-2").expect("its result");
    assert!(second.status.is_success(), "{:?}", second.status);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stored_results(&bus, id).await.len(), 2, "one result per command");
    assert_eq!(fleet.cluster(id).starts(), 2, "each command applied once");
    // The consumer was made again, on a server that is alive.
    let started = std::time::Instant::now();
    let new_host = loop {
        if let Ok(found) = commands.consumer_info(&consumer).await {
            info = found;
            if let Some(leader) = info.cluster.as_ref().and_then(|cluster| cluster.leader.clone()) {
                break leader;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no consumer info after the kill");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_ne!(new_host, host, "the consumer now lives on a live server");
    cluster.restart(index).unwrap();
    agent.stop().await.unwrap();
}
