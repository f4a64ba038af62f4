//! A simulated fleet on the real adapters: one Azure simulator (ARM, Key Vault, Entra) and one
//! Kubernetes API simulator serve every cluster; each agent runs the production executor
//! (`agent::cloud::CloudExecutor`) against them over HTTPS/HTTP, exactly as it would against Azure
//! and an AKS API server. Used by the demo and the end-to-end tests of the real executor.

use crate::fleet::{AgentHandle, spawn_agent};
use agent::cloud::{AzureSection, CloudConfig, CloudExecutor, CredentialSection};
use anyhow::Context;
use azsim::{AccessPolicyEntry, AzureSim, Permissions, SimConfig, VaultSeed};
use azure::CredentialConfig;
use coordinator::inventory::DeclaredCluster;
use gmsa::SecretString;
use kubesim::KubeSim;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The service principal every simulated agent authenticates as.
pub const AGENT_CLIENT_ID: &str = "6d1c3c1e-0000-4000-8000-00000000a9e1";
const AGENT_OBJECT_ID: &str = "6d1c3c1e-0000-4000-8000-00000000a9e2";
/// The agents' client secret (a simulator credential, not a real one).
/// The agent principal's client secret (tests check it never leaks).
pub const AGENT_SECRET: &str = "sim-agent-secret";
/// The coordinator's principal, which writes the domain-user secret.
pub const COORDINATOR_CLIENT_ID: &str = "6d1c3c1e-0000-4000-8000-00000000c001";
/// The coordinator principal's object id (it writes the secret, so it may read it).
pub const COORDINATOR_OBJECT_ID: &str = "6d1c3c1e-0000-4000-8000-00000000c002";
pub const COORDINATOR_SECRET: &str = "sim-coordinator-secret";
/// The shared vault's coordinates.
pub const VAULT_SUBSCRIPTION: &str = "00000000-0000-4000-8000-000000000000";
pub const VAULT_RESOURCE_GROUP: &str = "rg-gmsa";
pub const VAULT_NAME: &str = "kv-gmsa-fleet";

/// One simulated cluster.
pub struct WorldCluster {
    pub id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub kube: kubesim::SimCluster,
    pub kubeconfig: PathBuf,
    pub arm_id: String,
    /// ARM ids of the node pools' scale sets: the Linux system pool, then the Windows pool.
    pub scale_sets: Vec<String>,
}

/// The simulated Azure and Kubernetes of a fleet.
pub struct SimWorld {
    pub azure: AzureSim,
    pub kube: KubeSim,
    pub clusters: Vec<WorldCluster>,
    pub vault_id: String,
    ca_file: PathBuf,
    /// Holds kubeconfigs and the CA file.
    _dir: tempfile::TempDir,
}

impl SimWorld {
    /// `n` Windows-ready clusters, `per_subscription` to a subscription, and one shared vault
    /// (access-policy mode) in which the coordinator may write secrets.
    pub async fn build(prefix: &str, n: usize, per_subscription: usize) -> anyhow::Result<SimWorld> {
        Self::build_with(prefix, n, per_subscription, |_| kubesim::ClusterSeed::default()).await
    }

    /// As [`SimWorld::build`], with each cluster's Kubernetes side seeded by `kube_seed(index)`
    /// (e.g. a cluster without the gMSA CRD, whose `apply-credspec` preflight then fails).
    pub async fn build_with(
        prefix: &str,
        n: usize,
        per_subscription: usize,
        kube_seed: impl Fn(usize) -> kubesim::ClusterSeed,
    ) -> anyhow::Result<SimWorld> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = SimConfig {
            lro_duration: Duration::from_millis(300),
            lro_retry_after_secs: 1,
            vault_dns_names: true,
            ..SimConfig::default()
        };
        let azure = AzureSim::start(config).await.context("starting the Azure simulator")?;
        azure.add_service_principal(AGENT_CLIENT_ID, AGENT_SECRET, AGENT_OBJECT_ID);
        azure.add_service_principal(COORDINATOR_CLIENT_ID, COORDINATOR_SECRET, COORDINATOR_OBJECT_ID);
        azure.add_resource_group(VAULT_SUBSCRIPTION, VAULT_RESOURCE_GROUP);
        let vault = azure
            .add_vault(
                VAULT_SUBSCRIPTION,
                VAULT_RESOURCE_GROUP,
                VAULT_NAME,
                VaultSeed {
                    location: None,
                    enable_rbac_authorization: false,
                    // The coordinator writes, rotates and (teardown) deletes and purges the secret;
                    // agents may only list its versions (validate-credspec), never read a value.
                    access_policies: vec![
                        AccessPolicyEntry {
                            tenant_id: azure.tenant_id(),
                            object_id: COORDINATOR_OBJECT_ID.to_string(),
                            application_id: None,
                            permissions: Permissions {
                                secrets: ["get", "set", "list", "delete", "purge"].map(String::from).to_vec(),
                                ..Permissions::default()
                            },
                        },
                        AccessPolicyEntry {
                            tenant_id: azure.tenant_id(),
                            object_id: AGENT_OBJECT_ID.to_string(),
                            application_id: None,
                            permissions: Permissions { secrets: vec!["list".into()], ..Permissions::default() },
                        },
                    ],
                },
            )
            .await
            .context("seeding the shared vault")?;
        let dir = tempfile::Builder::new().prefix("gmsa-fleet-world-").tempdir()?;
        let ca_file = dir.path().join("azsim-ca.pem");
        std::fs::write(&ca_file, azure.ca_pem())?;
        let kube = KubeSim::start();
        let mut clusters = Vec::with_capacity(n);
        for index in 0..n {
            let id = format!("{prefix}-{index:03}");
            let subscription_id = format!("00000000-0000-4000-8000-{:012}", 1 + index / per_subscription.max(1));
            let resource_group = format!("rg-{id}");
            azure.add_resource_group(&subscription_id, &resource_group);
            let seeded =
                azure.add_managed_cluster(&subscription_id, &resource_group, &id, azsim::ClusterSeed::windows());
            let sim_cluster = kube.add_cluster(&id, kube_seed(index)).await.context("seeding a Kubernetes cluster")?;
            let kubeconfig = dir.path().join(format!("{id}.kubeconfig"));
            sim_cluster.write_kubeconfig(&kubeconfig).context("writing a kubeconfig")?;
            clusters.push(WorldCluster {
                id,
                subscription_id,
                resource_group,
                kube: sim_cluster,
                kubeconfig,
                arm_id: seeded.id,
                scale_sets: seeded.scale_sets,
            });
        }
        Ok(SimWorld { azure, kube, clusters, vault_id: vault.id, ca_file, _dir: dir })
    }

    /// The PEM file of the simulator's CA (what a client of it must trust).
    pub fn ca_file(&self) -> &std::path::Path {
        &self.ca_file
    }

    /// The clusters as the coordinator's configuration would declare them.
    pub fn declared(&self) -> Vec<DeclaredCluster> {
        self.clusters
            .iter()
            .enumerate()
            .map(|(index, cluster)| DeclaredCluster {
                id: cluster.id.clone(),
                labels: BTreeMap::from([
                    ("env".to_string(), "demo".to_string()),
                    ("ring".to_string(), if index == 0 { "0" } else { "1" }.to_string()),
                    ("subscription".to_string(), cluster.subscription_id[24..].trim_start_matches('0').to_string()),
                ]),
            })
            .collect()
    }

    /// The `[executor]` section an agent of cluster `index` would have.
    pub fn cloud_config(&self, index: usize) -> CloudConfig {
        let cluster = &self.clusters[index];
        CloudConfig {
            subscription_id: cluster.subscription_id.clone(),
            resource_group: cluster.resource_group.clone(),
            cluster_name: cluster.id.clone(),
            location: "westeurope".into(),
            kubeconfig: Some(cluster.kubeconfig.clone()),
            dns_forward: None,
            verify_image: "mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2019".into(),
            drift_policy: cluster::DriftPolicy::Reapply,
            // The public cloud's endpoints and names, as in production, reached through the
            // simulator's proxy (which serves them with certificates from its CA); Key Vault's
            // challenge-resource check stays on.
            azure: AzureSection {
                arm_endpoint: azure::PUBLIC_ARM_ENDPOINT.to_string(),
                arm_audience: None,
                authority_host: None,
                extra_ca_file: Some(self.ca_file.clone()),
                https_proxy: Some(self.azure.https_proxy()),
                verify_challenge_resource: true,
                credential: CredentialSection::ClientSecret {
                    tenant_id: self.azure.tenant_id(),
                    client_id: AGENT_CLIENT_ID.into(),
                    secret_env: "unused: connect_with passes the credential".into(),
                },
            },
        }
    }

    fn agent_credential(&self) -> CredentialConfig {
        CredentialConfig::ClientSecret {
            tenant_id: self.azure.tenant_id(),
            client_id: AGENT_CLIENT_ID.into(),
            secret: SecretString::new(AGENT_SECRET),
        }
    }

    /// Starts one agent task per cluster, each with the production executor and its own NATS connection.
    pub async fn spawn_agents(
        &self,
        nats_url: &str,
        settings: impl Fn(&str) -> agent::AgentSettings,
    ) -> anyhow::Result<Vec<AgentHandle>> {
        self.spawn_agents_configured(nats_url, settings, |_| {}).await
    }

    /// [`SimWorld::spawn_agents`] with each agent's `[executor]` section changed by `configure`
    /// (e.g. the drift policy `report-only`).
    pub async fn spawn_agents_configured(
        &self,
        nats_url: &str,
        settings: impl Fn(&str) -> agent::AgentSettings,
        configure: impl Fn(&mut CloudConfig),
    ) -> anyhow::Result<Vec<AgentHandle>> {
        let mut agents = Vec::with_capacity(self.clusters.len());
        for (index, cluster) in self.clusters.iter().enumerate() {
            let mut config = self.cloud_config(index);
            configure(&mut config);
            let mut executor = CloudExecutor::connect_with(config, self.agent_credential())
                .await
                .with_context(|| format!("building the executor of {}", cluster.id))?;
            if let Some(events) = executor.take_drift_events() {
                let bus = bus::Bus::connect(nats_url, &format!("drift-{}", cluster.id))
                    .await?
                    .with_identity(testkit::identity::agent_key(&cluster.id));
                let publisher = bus::results::ResultPublisher::open(&bus).await?;
                tokio::spawn(agent::drift::forward(publisher, cluster.id.clone(), events));
            }
            agents.push(spawn_agent(nats_url, settings(&cluster.id), executor).await?);
        }
        Ok(agents)
    }

    /// The coordinator's Azure adapter (its own principal), which writes the domain-user secret.
    pub fn coordinator_azure(&self) -> anyhow::Result<azure::Azure> {
        let mut config = azure::AzureConfig::new(CredentialConfig::ClientSecret {
            tenant_id: self.azure.tenant_id(),
            client_id: COORDINATOR_CLIENT_ID.into(),
            secret: SecretString::new(COORDINATOR_SECRET),
        });
        config.extra_ca_pem = Some(self.azure.ca_pem());
        config.https_proxy = Some(self.azure.https_proxy());
        Ok(azure::Azure::connect(config)?)
    }

    /// The shared vault as commands name it.
    pub fn vault_ref(&self) -> proto::command::VaultRef {
        proto::command::VaultRef {
            subscription_id: VAULT_SUBSCRIPTION.into(),
            resource_group: VAULT_RESOURCE_GROUP.into(),
            name: VAULT_NAME.into(),
        }
    }
}
