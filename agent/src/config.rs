//! The agent's configuration: a file (TOML or YAML) and `GMSA_AGENT__*` environment overrides
//! (`GMSA_AGENT__NATS__URL=nats://…` sets `nats.url`), validated at start with errors that name the
//! field and the rule.

use crate::worker::AgentSettings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The cluster this agent serves: a subject token (letters, digits, '-', '_'; ≤ 63).
    pub cluster_id: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub nats: NatsConfig,
    /// Who this agent is and whom it obeys.
    pub identity: IdentityConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Adapter settings (Azure, Kubernetes) handed to the executor as they are.
    #[serde(default)]
    pub executor: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://host:port` or `tls://host:port`, comma-separated for several servers.
    pub url: String,
    /// The CA of the server's certificate: set, the connection requires TLS.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// `signed`: connect as `agent:<cluster_id>` with a token signed by `identity.key_file`,
    /// checked by the coordinator's auth callout (the shipped server configuration). `none`: no
    /// credentials (a development server).
    #[serde(default)]
    pub credentials: CredentialsMode,
}

/// How the agent authenticates to NATS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialsMode {
    #[default]
    None,
    Signed,
}

impl AgentConfig {
    /// The connection's TLS and credentials.
    pub fn security(&self) -> bus::Security {
        bus::Security {
            ca_file: self.nats.ca_file.clone(),
            credentials: match self.nats.credentials {
                CredentialsMode::None => bus::Credentials::None,
                CredentialsMode::Signed => bus::Credentials::Signed { user: format!("agent:{}", self.cluster_id) },
            },
        }
    }
}

/// The `[identity]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The agent's secret key (`ed25519-seed:…`, written by `fleetctl agents enroll`); its results
    /// are signed with it. The file should be readable by the agent only.
    pub key_file: std::path::PathBuf,
    /// The coordinator's command keys (`ed25519:…`); list the next key beside the current one
    /// before the coordinator switches, and remove the old one after.
    pub coordinator_keys: Vec<String>,
    /// How long after it was issued a command is still applied (days; then it is `stale`).
    #[serde(default = "default_max_command_age_days")]
    pub max_command_age_days: u64,
}

fn default_max_command_age_days() -> u64 {
    8
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    pub poll_interval_secs: u64,
    pub heartbeat_interval_secs: u64,
    pub max_attempts: u32,
    pub shutdown_grace_secs: u64,
    pub progress_interval_secs: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            poll_interval_secs: 30,
            heartbeat_interval_secs: 30,
            max_attempts: 3,
            shutdown_grace_secs: 30,
            progress_interval_secs: 10,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or the environment could not be read or parsed.
    #[error("cannot load the agent configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A field breaks a rule.
    #[error("{field}: {rule}")]
    Invalid { field: &'static str, rule: String },
}

impl AgentConfig {
    /// Loads `path` (if given) and the `GMSA_AGENT__` environment, then validates.
    pub fn load(path: Option<&Path>) -> Result<AgentConfig, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            builder = builder.add_source(config::File::from(path));
        }
        builder =
            builder.add_source(config::Environment::with_prefix("GMSA_AGENT").prefix_separator("__").separator("__"));
        let config: AgentConfig = builder.build()?.try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !proto::subjects::is_valid_token(&self.cluster_id) {
            return Err(ConfigError::Invalid {
                field: "cluster_id",
                rule: format!("{:?} must be 1-63 letters, digits, '-' or '_'", self.cluster_id),
            });
        }
        let url_ok = self.nats.url.split(',').all(|url| {
            let url = url.trim();
            ["nats://", "tls://", "ws://", "wss://"].iter().any(|scheme| url.starts_with(scheme)) && url.len() > 7
        });
        if !url_ok {
            return Err(ConfigError::Invalid {
                field: "nats.url",
                rule: format!("{:?} must be nats://, tls://, ws:// or wss:// URLs separated by commas", self.nats.url),
            });
        }
        if self.identity.coordinator_keys.is_empty() {
            return Err(ConfigError::Invalid {
                field: "identity.coordinator_keys",
                rule: "must list at least one key: an agent that trusts no key refuses every command".into(),
            });
        }
        for key in &self.identity.coordinator_keys {
            gmsa::signing::PublicKey::parse(key)
                .map_err(|err| ConfigError::Invalid { field: "identity.coordinator_keys", rule: err.to_string() })?;
        }
        if !(1..=30).contains(&self.identity.max_command_age_days) {
            return Err(ConfigError::Invalid {
                field: "identity.max_command_age_days",
                rule: "must be 1 to 30".into(),
            });
        }
        let delivery = &self.delivery;
        let positive = [
            ("delivery.poll_interval_secs", delivery.poll_interval_secs),
            ("delivery.heartbeat_interval_secs", delivery.heartbeat_interval_secs),
            ("delivery.progress_interval_secs", delivery.progress_interval_secs),
            ("delivery.max_attempts", u64::from(delivery.max_attempts)),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid { field, rule: "must be at least 1".into() });
            }
        }
        Ok(())
    }

    /// The worker's settings.
    pub fn settings(&self) -> AgentSettings {
        let mut settings = AgentSettings::new(self.cluster_id.clone());
        settings.labels = self.labels.clone();
        settings.poll_interval = Duration::from_secs(self.delivery.poll_interval_secs);
        settings.heartbeat_interval = Duration::from_secs(self.delivery.heartbeat_interval_secs);
        settings.max_attempts = self.delivery.max_attempts;
        settings.shutdown_grace = Duration::from_secs(self.delivery.shutdown_grace_secs);
        settings.progress_interval = Duration::from_secs(self.delivery.progress_interval_secs);
        settings.coordinator_keys =
            self.identity.coordinator_keys.iter().filter_map(|key| gmsa::signing::PublicKey::parse(key).ok()).collect();
        settings.max_command_age = Duration::from_secs(self.identity.max_command_age_days.saturating_mul(24 * 3600));
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: &str =
        "[identity]\nkey_file = \"/k\"\ncoordinator_keys = [\"ed25519:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\"]\n";

    fn load_toml(text: &str) -> Result<AgentConfig, ConfigError> {
        let text = if text.contains("[identity]") { text.to_string() } else { format!("{text}{IDENTITY}") };
        let text = text.as_str();
        let dir = std::env::temp_dir().join(format!("agent-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.toml");
        std::fs::write(&path, text).unwrap();
        let result = AgentConfig::load(Some(&path));
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    #[test]
    fn a_minimal_file_loads_with_defaults() {
        let config =
            load_toml("cluster_id = \"aks-1\"\n[nats]\nurl = \"nats://127.0.0.1:4222\"\n[labels]\nenv = \"prod\"\n")
                .unwrap();
        assert_eq!(config.settings().max_attempts, 3);
        assert_eq!(config.labels["env"], "prod");
    }

    #[test]
    fn errors_name_the_field() {
        let err = load_toml("cluster_id = \"aks.1\"\n[nats]\nurl = \"nats://x:1\"\n").unwrap_err();
        assert!(err.to_string().starts_with("cluster_id:"), "{err}");
        let err = load_toml("cluster_id = \"aks-1\"\n[nats]\nurl = \"http://x\"\n").unwrap_err();
        assert!(err.to_string().starts_with("nats.url:"), "{err}");
        let err = load_toml("cluster_id = \"aks-1\"\n[nats]\nurl = \"nats://x:1\"\n[delivery]\nmax_attempts = 0\n")
            .unwrap_err();
        assert!(err.to_string().starts_with("delivery.max_attempts:"), "{err}");
    }

    #[test]
    fn the_identity_section_is_required_and_its_keys_checked() {
        let config = load_toml("cluster_id = \"aks-1\"\n[nats]\nurl = \"nats://x:1\"\n").unwrap();
        assert_eq!(config.settings().coordinator_keys.len(), 1);
        let err = load_toml("cluster_id = \"aks-1\"\n[nats]\nurl = \"nats://x:1\"\n[identity]\nkey_file = \"/k\"\ncoordinator_keys = []\n")
            .unwrap_err();
        assert!(err.to_string().starts_with("identity.coordinator_keys: must list"), "{err}");
        let err = load_toml("cluster_id = \"aks-1\"\n[nats]\nurl = \"nats://x:1\"\n[identity]\nkey_file = \"/k\"\ncoordinator_keys = [\"ed25519:nope\"]\n")
            .unwrap_err();
        assert!(err.to_string().starts_with("identity.coordinator_keys: a public key"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = load_toml("cluster_id = \"aks-1\"\nclustr = 1\n[nats]\nurl = \"nats://x:1\"\n").unwrap_err();
        assert!(err.to_string().contains("clustr"), "{err}");
    }
}
