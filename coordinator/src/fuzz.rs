//! Fuzzing of every decoder the coordinator applies to bytes it reads from the bus (bounded
//! proptest runs inside `scripts/test`; `PROPTEST_CASES` raises the count for a longer run): the
//! rollout log's entries and their replay, rollout control requests, declared clusters, cluster
//! records and the leader lease. None may panic; a bad entry is refused, never half-applied.

use crate::rollouts::api::RolloutRequest;
use crate::rollouts::log::{self, LogEntry};
use proptest::prelude::*;

fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len().max(1);
    (0..len, any::<u8>(), prop::bool::ANY).prop_map(move |(at, byte, truncate)| {
        let mut bytes = valid.clone();
        if bytes.is_empty() {
            return bytes;
        }
        if truncate {
            bytes.truncate(at);
        } else {
            bytes[at] = byte;
        }
        bytes
    })
}

fn inputs(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..256), mutated(valid)]
}

fn sample_log() -> Vec<Vec<u8>> {
    let file: proto::rollout::RolloutFile =
        serde_yaml::from_str(include_str!("../../deploy/rollout.example.yaml")).unwrap_or_else(|err| panic!("{err}"));
    let members: Vec<gmsa::rollout::Member> = (0..3)
        .map(|i| gmsa::rollout::Member {
            cluster: format!("c{i}"),
            labels: [("env".to_string(), "dev".to_string())].into(),
            subscription: "s".into(),
        })
        .collect();
    let mut file = file;
    file.strategy.maintenance_windows.clear();
    file.setup.credspec.netbios_domain = Some("CONTOSO".into());
    let plan = gmsa::rollout::plan(&file, &members).unwrap_or_else(|err| panic!("{err}"));
    let parts = log::plan_parts(&plan).unwrap_or_default();
    let now = time::OffsetDateTime::UNIX_EPOCH;
    let mut entries = vec![LogEntry::Created {
        name: "n".into(),
        origin: "file".into(),
        requested_by: None,
        created_at: now,
        parts: parts.len() as u32,
        previous: None,
        dry_run: false,
    }];
    entries.extend(parts);
    entries.push(LogEntry::Started { now });
    entries.push(LogEntry::Event { event: gmsa::rollout::Event::Tick, now });
    entries.iter().filter_map(|entry| serde_json::to_vec(entry).ok()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_rollout_log_replay(index in 0usize..6, bytes in inputs(br#"{"entry":"started","now":"2026-12-01T10:00:00Z"}"#.to_vec())) {
        let mut raw = sample_log();
        let index = index.min(raw.len().saturating_sub(1));
        raw[index] = bytes;
        let decoded: Vec<(u64, LogEntry)> = raw
            .iter()
            .enumerate()
            .filter_map(|(i, bytes)| serde_json::from_slice(bytes).ok().map(|entry| (i as u64 + 1, entry)))
            .collect();
        // Replay either rebuilds a rollout or refuses the log; it never panics.
        let _ = log::rebuild("r1", &decoded);
    }

    #[test]
    fn fuzz_rollout_requests(bytes in inputs(br#"{"verb":"approve","rollout_id":"r1","by":"op"}"#.to_vec())) {
        let _ = serde_json::from_slice::<RolloutRequest>(&bytes);
    }

    #[test]
    fn fuzz_inventory_records_and_lease(bytes in inputs(br#"{"id":"a","labels":{"env":"prod"}}"#.to_vec())) {
        let _ = crate::inventory::decode_declared("a", &bytes);
        let _ = crate::record::decode_record("a", &bytes);
        let _ = serde_json::from_slice::<crate::lease::Lease>(&bytes);
        let _ = bus::kv::decode_cursor(&bytes);
    }
}
