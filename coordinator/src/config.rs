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
    /// The central side: the Azure principal that writes the domain-user secret and the LDAPS
    /// connection to AD. Absent: the coordinator runs rollouts whose files carry the AD facts and
    /// refuses central writes (stage 0, `fleet.ctl.teardown-shared`).
    #[serde(default)]
    pub central: Option<CentralConfig>,
    /// The coordinator's command-signing key and the operators it answers. Required by
    /// `fleet-coordinator` (tests hand the key to the bus directly).
    #[serde(default)]
    pub identity: Option<IdentityConfig>,
    /// The operators whose signed requests the control API answers, with their roles. None: only
    /// the coordinator itself is answered.
    #[serde(default)]
    pub operators: Vec<crate::authz::OperatorConfig>,
    /// The central audit log (`coordinator::audit`).
    #[serde(default)]
    pub audit: AuditConfig,
}

/// The `[audit]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Whether the leader writes the audit log.
    pub enabled: bool,
    /// The log's name in its checkpoints.
    pub origin: String,
    /// The coordinator key's name in checkpoint signatures (`fleetctl keys public --verifier-key NAME`).
    pub key_name: String,
    /// A checkpoint after this many entries…
    pub checkpoint_every_entries: u64,
    /// …or this many seconds, whichever comes first.
    pub checkpoint_every_secs: u64,
    /// How long entries are kept (0: for ever).
    pub max_age_days: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            origin: crate::audit::DEFAULT_ORIGIN.into(),
            key_name: crate::audit::DEFAULT_KEY_NAME.into(),
            checkpoint_every_entries: 1000,
            checkpoint_every_secs: 10,
            max_age_days: 0,
        }
    }
}

impl AuditConfig {
    /// The writer's settings.
    pub fn settings(&self) -> crate::audit::AuditSettings {
        crate::audit::AuditSettings {
            enabled: self.enabled,
            origin: self.origin.clone(),
            key_name: self.key_name.clone(),
            checkpoints: gmsa::audit::seal::CheckpointPolicy {
                every_entries: self.checkpoint_every_entries.max(1),
                every: std::time::Duration::from_secs(self.checkpoint_every_secs.max(1)),
            },
            ..crate::audit::AuditSettings::default()
        }
    }

    /// The retention, bounded to 100 years (checked arithmetic on operator input).
    pub fn max_age(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.max_age_days.min(36_500).saturating_mul(86_400))
    }
}

/// The `[identity]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The secret key every command is signed with (`fleetctl keys new --out FILE`); agents list
    /// its public half in `identity.coordinator_keys`.
    pub key_file: std::path::PathBuf,
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

/// The `[central]` section (see [`crate::central`]). Secrets come from the environment
/// variables it names, never from the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// The coordinator's Azure principal: Key Vault secrets `get`, `set`, `list`, `delete`,
    /// `purge`; vault creation; identity deletion.
    pub azure: azure::AzureSection,
    /// The LDAPS connection and the principal that creates the domain user and the gMSA.
    pub ad: ad::LdapSection,
    /// Tenant of the vaults this coordinator creates (a rollout's `central.vault_create`).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Object id of the coordinator's principal, given secret permissions in a vault it creates.
    #[serde(default)]
    pub principal_object_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    pub url: String,
    /// The CA of the server's certificate: set, connections require TLS.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// The coordinator's static user in the server configuration (account FLEET) and the
    /// environment variable holding its password.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// The auth callout this coordinator serves (the shipped server configuration needs it).
    #[serde(default)]
    pub callout: Option<CalloutConfig>,
}

/// The `[nats.callout]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalloutConfig {
    /// The callout service's static user (account AUTH) and its password's variable.
    pub user: String,
    pub password_env: String,
    /// The key whose account nkey is the server's `auth_callout.issuer`.
    pub issuer_key_file: std::path::PathBuf,
    /// Lifetime of an issued user JWT: the longest a revoked agent stays connected.
    #[serde(default = "default_callout_ttl_secs")]
    pub ttl_secs: u64,
}

fn default_callout_ttl_secs() -> u64 {
    300
}

impl NatsConfig {
    /// A plain connection to `url` (tests).
    pub fn plain(url: impl Into<String>) -> NatsConfig {
        NatsConfig { url: url.into(), ca_file: None, user: None, password_env: None, callout: None }
    }
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
        if self.nats.user.is_some() != self.nats.password_env.is_some() {
            return Err(ConfigError::Invalid {
                field: "nats.password_env".into(),
                rule: "nats.user and nats.password_env go together".into(),
            });
        }
        if let Some(callout) = &self.nats.callout
            && !(10..=3600).contains(&callout.ttl_secs)
        {
            return Err(ConfigError::Invalid {
                field: "nats.callout.ttl_secs".into(),
                rule: "must be 10 to 3600".into(),
            });
        }
        crate::authz::validate(&self.operators).map_err(|(field, rule)| ConfigError::Invalid { field, rule })?;
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
        if let Some(central) = &self.central {
            central.validate()?;
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

fn invalid(field: &str, rule: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: field.into(), rule: rule.into() }
}

fn is_guid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

impl CentralConfig {
    /// Field rules that need no network (the environment variables are read at start).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.azure.arm_endpoint.starts_with("https://") {
            return Err(invalid("central.azure.arm_endpoint", "must start with https://"));
        }
        if let azure::CredentialSection::ClientSecret { tenant_id, client_id, secret_env } = &self.azure.credential {
            for (field, value) in [
                ("central.azure.credential.tenant_id", tenant_id),
                ("central.azure.credential.client_id", client_id),
                ("central.azure.credential.secret_env", secret_env),
            ] {
                if value.trim().is_empty() {
                    return Err(invalid(field, "must not be empty"));
                }
            }
        }
        let ad = &self.ad;
        if !(ad.url.starts_with("ldaps://") || (ad.start_tls && ad.url.starts_with("ldap://"))) {
            return Err(invalid(
                "central.ad.url",
                format!(
                    "{:?} must be ldaps://…, or ldap://… with start_tls = true: passwords never travel in clear",
                    ad.url
                ),
            ));
        }
        for (field, value) in
            [("central.ad.bind_principal", &ad.bind_principal), ("central.ad.password_env", &ad.password_env)]
        {
            if value.trim().is_empty() {
                return Err(invalid(field, "must not be empty"));
            }
        }
        for (field, value) in
            [("central.tenant_id", &self.tenant_id), ("central.principal_object_id", &self.principal_object_id)]
        {
            if let Some(value) = value
                && !is_guid(value)
            {
                return Err(invalid(field, format!("{value:?} is not a GUID")));
            }
        }
        if self.tenant_id.is_some() != self.principal_object_id.is_some() {
            return Err(invalid(
                "central.tenant_id, central.principal_object_id",
                "must be given together or not at all",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(clusters: &[&str]) -> CoordinatorConfig {
        CoordinatorConfig {
            nats: NatsConfig::plain("nats://127.0.0.1:4222"),
            replicas: 1,
            central: None,
            identity: None,
            operators: Vec::new(),
            audit: Default::default(),
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

    const CENTRAL: &str = r#"
        [nats]
        url = "nats://127.0.0.1:4222"
        [central]
        tenant_id = "00000000-0000-0000-0000-0000000000aa"
        principal_object_id = "00000000-0000-0000-0000-0000000000bb"
        [central.azure.credential]
        type = "client-secret"
        tenant_id = "00000000-0000-0000-0000-0000000000aa"
        client_id = "00000000-0000-0000-0000-0000000000cc"
        secret_env = "GMSA_FLEET_AZURE_SECRET"
        [central.ad]
        url = "ldaps://dc1.contoso.com:636"
        bind_principal = "admin@contoso.com"
        password_env = "GMSA_FLEET_AD_PASSWORD"
    "#;

    fn mk_toml(text: &str) -> Result<CoordinatorConfig, ConfigError> {
        let config: CoordinatorConfig = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn the_central_section_is_optional_and_parsed_with_the_shared_section_types() {
        assert!(mk_toml("[nats]\nurl = \"nats://h:4222\"").unwrap().central.is_none());
        let central = mk_toml(CENTRAL).unwrap().central.unwrap();
        assert_eq!(central.ad.url, "ldaps://dc1.contoso.com:636");
        assert_eq!(central.azure.arm_endpoint, azure::PUBLIC_ARM_ENDPOINT);
        assert!(matches!(central.azure.credential, azure::CredentialSection::ClientSecret { .. }));
    }

    #[test]
    fn the_deploy_example_parses_and_validates_with_its_central_section() {
        let config = mk_toml(include_str!("../../deploy/config/coordinator.toml")).unwrap();
        let central = config.central.expect("the example documents the central section");
        assert!(matches!(central.azure.credential, azure::CredentialSection::WorkloadIdentity { .. }));
        assert_eq!(central.ad.password_env, "GMSA_FLEET_AD_PASSWORD");
    }

    #[test]
    fn central_errors_name_the_field() {
        let cases = [
            (CENTRAL.replace("ldaps://dc1", "ldap://dc1"), "central.ad.url: "),
            (CENTRAL.replace("\"admin@contoso.com\"", "\" \""), "central.ad.bind_principal: must not be empty"),
            (CENTRAL.replace("0000000000bb", "x"), "central.principal_object_id: "),
            (
                CENTRAL.replace("principal_object_id = \"00000000-0000-0000-0000-0000000000bb\"", ""),
                "central.tenant_id, central.principal_object_id",
            ),
            (
                CENTRAL.replace("secret_env = \"GMSA_FLEET_AZURE_SECRET\"", "secret_env = \"\""),
                "central.azure.credential.secret_env: must not be empty",
            ),
        ];
        for (text, expected) in cases {
            let error = mk_toml(&text).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
        }
        let unknown =
            mk_toml(&CENTRAL.replace("[central.ad]", "[central.ad]\nbind_dn = \"x\"")).unwrap_err().to_string();
        assert!(unknown.contains("bind_dn"), "{unknown}");
    }
}
