//! The fleet inventory: clusters declared in the coordinator's configuration and clusters whose
//! agents said hello, merged into one view. Labels from configuration win over an agent's own
//! labels (the operator's word over the cluster's), and an agent adds the labels it alone knows.
//!
//! An entry that cannot be decoded, names another cluster than its key, or is not a subject token
//! is skipped and reported by key ([`Inventory::invalid`]): one bad entry never hides the fleet.

use bus::kv::Bucket;
use bus::{Bus, BusError};
use proto::control::InvalidEntry;
use proto::decode::{Code, Refusal};
use proto::{AgentInfo, subjects};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// A cluster as the configuration declares it (stored in the `fleet_inventory` bucket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeclaredCluster {
    pub id: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One cluster of the merged inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterEntry {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    /// Declared in the coordinator's configuration.
    pub declared: bool,
    /// The agent's latest hello or heartbeat, if it ever said hello.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
}

impl ClusterEntry {
    /// Whether the agent's last heartbeat is more recent than `stale_after`.
    pub fn agent_online(&self, now: OffsetDateTime, stale_after: time::Duration) -> bool {
        self.agent.as_ref().is_some_and(|agent| now - agent.last_seen <= stale_after)
    }
}

/// Merges declared clusters and agents' hellos, sorted by id.
pub fn merge(declared: Vec<DeclaredCluster>, agents: Vec<AgentInfo>) -> Vec<ClusterEntry> {
    let mut entries: BTreeMap<String, ClusterEntry> = BTreeMap::new();
    for agent in agents {
        entries.insert(
            agent.cluster.clone(),
            ClusterEntry {
                id: agent.cluster.clone(),
                labels: agent.labels.clone(),
                declared: false,
                agent: Some(agent),
            },
        );
    }
    for cluster in declared {
        let entry = entries.entry(cluster.id.clone()).or_insert_with(|| ClusterEntry {
            id: cluster.id.clone(),
            labels: BTreeMap::new(),
            declared: true,
            agent: None,
        });
        entry.declared = true;
        entry.labels.extend(cluster.labels);
    }
    entries.into_values().collect()
}

/// The merged inventory and the entries that could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub entries: Vec<ClusterEntry>,
    /// Skipped entries, by bucket and key, with why.
    pub invalid: Vec<InvalidEntry>,
}

/// Decodes a declared cluster stored under `key` (pure): its id must be a subject token equal
/// to the key.
pub fn decode_declared(key: &str, bytes: &[u8]) -> Result<DeclaredCluster, Refusal> {
    let cluster: DeclaredCluster = serde_json::from_slice(bytes)
        .map_err(|err| Refusal::new(Code::InvalidEntry, format!("not a declared cluster: {err}")))?;
    if !subjects::is_valid_token(&cluster.id) || cluster.id != key {
        return Err(Refusal::new(
            Code::InvalidEntry,
            format!("the entry under key {key:?} declares cluster {:?}", proto::decode::bounded(&cluster.id, 80)),
        ));
    }
    Ok(cluster)
}

/// Decodes every raw entry with `decode`, sorting the good from the bad (pure).
pub fn sort_entries<T>(
    bucket: &str,
    raw: Vec<(String, bytes::Bytes)>,
    decode: impl Fn(&str, &[u8]) -> Result<T, Refusal>,
    invalid: &mut Vec<InvalidEntry>,
) -> Vec<T> {
    let mut good = Vec::with_capacity(raw.len());
    for (key, bytes) in raw {
        match decode(&key, &bytes) {
            Ok(value) => good.push(value),
            Err(refusal) => invalid.push(InvalidEntry {
                bucket: bucket.to_string(),
                key,
                code: refusal.code.as_str().to_string(),
                message: refusal.message,
            }),
        }
    }
    good
}

/// Reads the inventory from the bus, skipping (and reporting) entries that cannot be read.
pub async fn load(bus: &Bus) -> Result<Inventory, BusError> {
    let declared: Bucket<DeclaredCluster> = Bucket::open(bus, subjects::INVENTORY_BUCKET).await?;
    let agents = bus::kv::agents(bus).await?;
    let mut invalid = Vec::new();
    let declared = sort_entries(declared.name(), declared.entries_raw().await?, decode_declared, &mut invalid);
    let agents = sort_entries(agents.name(), agents.entries_raw().await?, proto::decode::agent_info, &mut invalid);
    Ok(Inventory { entries: merge(declared, agents), invalid })
}

/// Writes the declared clusters to the bus (coordinator start-up), writing only what changed.
pub async fn publish_declared(bus: &Bus, clusters: &[DeclaredCluster]) -> Result<usize, BusError> {
    let bucket: Bucket<DeclaredCluster> = Bucket::open(bus, subjects::INVENTORY_BUCKET).await?;
    let mut written = 0;
    for cluster in clusters {
        if bucket.get(&cluster.id).await?.map(|(current, _)| current) != Some(cluster.clone()) {
            bucket.put(&cluster.id, cluster).await?;
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::version::SchemaVersion;

    fn mk_agent(cluster: &str, labels: &[(&str, &str)]) -> AgentInfo {
        AgentInfo {
            schema: SchemaVersion::CURRENT,
            cluster: cluster.into(),
            agent_version: "0.1.0".into(),
            capabilities: vec![],
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            started_at: OffsetDateTime::UNIX_EPOCH,
            last_seen: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn declared_labels_win_and_agent_labels_add() {
        let declared = vec![
            DeclaredCluster { id: "a".into(), labels: [("env".to_string(), "prod".to_string())].into() },
            DeclaredCluster { id: "c".into(), labels: BTreeMap::new() },
        ];
        let agents = vec![mk_agent("a", &[("env", "dev"), ("zone", "1")]), mk_agent("b", &[])];
        let merged = merge(declared, agents);
        let ids: Vec<&str> = merged.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(merged[0].labels["env"], "prod");
        assert_eq!(merged[0].labels["zone"], "1");
        assert!(merged[0].declared && merged[0].agent.is_some());
        assert!(!merged[1].declared);
        assert!(merged[2].agent.is_none());
    }

    #[test]
    fn bad_entries_are_skipped_and_reported_by_key() {
        let good = serde_json::to_vec(&DeclaredCluster { id: "a".into(), labels: BTreeMap::new() }).unwrap();
        let raw = vec![
            ("a".to_string(), bytes::Bytes::from(good.clone())),
            ("b".to_string(), bytes::Bytes::from_static(b"\x00garbage")),
            ("c".to_string(), bytes::Bytes::from(good)),
        ];
        let mut invalid = Vec::new();
        let declared = sort_entries("fleet_inventory", raw, decode_declared, &mut invalid);
        assert_eq!(declared.len(), 1);
        let keys: Vec<&str> = invalid.iter().map(|entry| entry.key.as_str()).collect();
        assert_eq!(keys, ["b", "c"], "garbage and an entry naming another cluster");
        assert!(invalid.iter().all(|entry| entry.code == "invalid_entry"));
    }
}
