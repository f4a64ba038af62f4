//! The coordinator's configuration: a file (TOML or YAML) and `GMSA_COORDINATOR__*` environment
//! overrides, validated at start with errors naming the field.

use crate::inventory::DeclaredCluster;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    pub nats: NatsConfig,
    /// Replicas of streams and buckets: 1 for one server, 3 for a production cluster.
    #[serde(default = "one")]
    pub replicas: usize,
    /// Clusters declared by the operator (agents that say hello are added to the inventory too).
    #[serde(default)]
    pub clusters: Vec<DeclaredCluster>,
    /// How coordinator processes elect the one that runs the rollouts.
    #[serde(default)]
    pub leader: LeaderConfig,
}

/// The leader lease (see `coordinator::leader`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderConfig {
    /// How long a lease lasts unrenewed: a standby takes over at most this long (plus one
    /// renewal) after the leader died.
    #[serde(default = "default_ttl_secs")]
    pub ttl_secs: u64,
    /// How often the lease is renewed (and a standby looks at it).
    #[serde(default = "default_renew_millis")]
    pub renew_millis: u64,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig { ttl_secs: default_ttl_secs(), renew_millis: default_renew_millis() }
    }
}

fn default_ttl_secs() -> u64 {
    6
}

fn default_renew_millis() -> u64 {
    1000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    pub url: String,
}

fn one() -> usize {
    1
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot load the coordinator configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("{field}: {rule}")]
    Invalid { field: String, rule: String },
}

impl CoordinatorConfig {
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            builder = builder.add_source(config::File::from(path));
        }
        builder = builder
            .add_source(config::Environment::with_prefix("GMSA_COORDINATOR").prefix_separator("__").separator("__"));
        let config: CoordinatorConfig = builder.build()?.try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.replicas == 1 || self.replicas == 3 || self.replicas == 5) {
            return Err(ConfigError::Invalid { field: "replicas".into(), rule: "must be 1, 3 or 5".into() });
        }
        if !self.nats.url.starts_with("nats://") && !self.nats.url.starts_with("tls://") {
            return Err(ConfigError::Invalid {
                field: "nats.url".into(),
                rule: "must start with nats:// or tls://".into(),
            });
        }
        if !(1..=60).contains(&self.leader.ttl_secs) {
            return Err(ConfigError::Invalid { field: "leader.ttl_secs".into(), rule: "must be 1 to 60".into() });
        }
        if self.leader.renew_millis == 0
            || self.leader.renew_millis.saturating_mul(2) > self.leader.ttl_secs.saturating_mul(1000)
        {
            return Err(ConfigError::Invalid {
                field: "leader.renew_millis".into(),
                rule: "must be at least 1 and at most half of leader.ttl_secs".into(),
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for (index, cluster) in self.clusters.iter().enumerate() {
            if !proto::subjects::is_valid_token(&cluster.id) {
                return Err(ConfigError::Invalid {
                    field: format!("clusters[{index}].id"),
                    rule: format!("{:?} must be 1-63 letters, digits, '-' or '_'", cluster.id),
                });
            }
            if !seen.insert(cluster.id.as_str()) {
                return Err(ConfigError::Invalid {
                    field: format!("clusters[{index}].id"),
                    rule: format!("{:?} is declared twice", cluster.id),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(clusters: &[&str]) -> CoordinatorConfig {
        CoordinatorConfig {
            nats: NatsConfig { url: "nats://127.0.0.1:4222".into() },
            replicas: 1,
            clusters: clusters
                .iter()
                .map(|id| DeclaredCluster { id: id.to_string(), labels: Default::default() })
                .collect(),
            leader: LeaderConfig::default(),
        }
    }

    #[test]
    fn duplicate_and_malformed_cluster_ids_name_their_index() {
        assert!(mk(&["a", "b"]).validate().is_ok());
        assert_eq!(mk(&["a", "a"]).validate().unwrap_err().to_string(), "clusters[1].id: \"a\" is declared twice");
        assert!(mk(&["a.b"]).validate().unwrap_err().to_string().starts_with("clusters[0].id"));
    }
}
