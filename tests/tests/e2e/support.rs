//! Shared fixtures of the end-to-end tests.

use bus::Bus;
use proto::command::{Command, EnableGmsa};
use proto::version::SchemaVersion;
use proto::{CommandEnvelope, CommandId, CommandResult, subjects};
use std::time::Duration;
use time::OffsetDateTime;

/// Held by every test that writes to the process's shared Samba DC and compares snapshots of the
/// whole domain, so one test's objects never appear in another's before/after comparison.
pub static SHARED_DC_WRITERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn mk_enable(cluster: &str, command_id: &str) -> CommandEnvelope {
    let now = OffsetDateTime::now_utc();
    CommandEnvelope {
        schema: SchemaVersion::CURRENT,
        command_id: CommandId(command_id.to_string()),
        rollout_id: None,
        cluster: cluster.to_string(),
        issued_at: now,
        deadline: now + time::Duration::minutes(5),
        issuer: None,
        command: Command::EnableGmsa(EnableGmsa {
            dns_server: Some("10.1.0.4".into()),
            root_domain: Some("contoso.com".into()),
            mode: proto::Mode::Apply,
        }),
    }
}

/// Creates the bus layout as the coordinator does at start-up; the connection signs as the
/// coordinator (its test key), so what the test publishes are authentic commands.
pub async fn bus_with_topology(url: &str) -> Bus {
    let bus = Bus::connect(url, "test").await.unwrap().with_identity(testkit::identity::coordinator_key());
    bus::topology::ensure(&bus, &bus::topology::Topology::default()).await.unwrap();
    bus
}

/// Every result stored for `cluster` (all command ids), read from the result stream; what is not
/// a result (tests put garbage there) is passed over.
pub async fn stored_results(bus: &Bus, cluster: &str) -> Vec<CommandResult> {
    // No stream info round trip: in a cluster losing a node it may time out.
    let stream = bus.jetstream().get_stream_no_info(subjects::RESULT_STREAM).await.unwrap();
    let mut results = Vec::new();
    let mut sequence = 0;
    let filter = format!("fleet.result.{cluster}.*");
    loop {
        match stream.direct_get_next_for_subject(filter.as_str(), Some(sequence + 1)).await {
            Ok(message) => {
                sequence = message.sequence;
                results.extend(serde_json::from_slice(&message.payload).ok());
            }
            Err(_) => return results,
        }
    }
}

/// Waits until `cluster` has `count` stored results, or panics after `timeout`.
pub async fn wait_for_results(bus: &Bus, cluster: &str, count: usize, timeout: Duration) -> Vec<CommandResult> {
    let started = std::time::Instant::now();
    loop {
        let results = stored_results(bus, cluster).await;
        if results.len() >= count {
            return results;
        }
        assert!(started.elapsed() < timeout, "{cluster}: {} of {count} results after {timeout:?}", results.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Azure simulator's state, with `gmsaProfile {enabled:false}` and no `gmsaProfile` made
/// equal: both mean "gMSA off", and AKS reports the first once gMSA was ever disabled.
pub fn azure_state(world: &tests::world::SimWorld) -> serde_json::Value {
    use serde_json::Value;
    fn normalize(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if map.get("gmsaProfile").is_some_and(|p| p["enabled"] != Value::Bool(true)) {
                    map.remove("gmsaProfile");
                }
                map.values_mut().for_each(normalize);
            }
            Value::Array(items) => items.iter_mut().for_each(normalize),
            _ => {}
        }
    }
    let mut state = world.azure.snapshot();
    normalize(&mut state);
    state
}

/// Every dead letter `reporter` recorded, read from the dead-letter stream.
pub async fn dead_letters(bus: &Bus, reporter: &str) -> Vec<proto::deadletter::DeadLetter> {
    let stream = bus.jetstream().get_stream_no_info(subjects::DEAD_STREAM).await.unwrap();
    let mut letters = Vec::new();
    let mut sequence = 0;
    let subject = subjects::dead(reporter);
    while let Ok(message) = stream.direct_get_next_for_subject(subject.as_str(), Some(sequence + 1)).await {
        sequence = message.sequence;
        letters.push(serde_json::from_slice(&message.payload).unwrap());
    }
    letters
}
