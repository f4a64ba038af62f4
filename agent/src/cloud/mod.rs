//! The production executor: applies commands to a real AKS cluster through the Azure adapter
//! (`azure` crate: ARM and Key Vault) and the Kubernetes adapter (`cluster` crate: kube-rs).
//!
//! | command          | steps (each reads, diffs, writes only the difference)                       |
//! |------------------|------------------------------------------------------------------------------|
//! | enable-gmsa      | `cluster-update` (windowsProfile.gmsaProfile, If-Match, LRO followed)        |
//! | disable-gmsa     | `cluster-update`                                                             |
//! | grant-identity   | kubelet: `vault-grant`; user-assigned: `identity-attach` then `vault-grant`  |
//! | apply-credspec   | preflight (named checks), then `credspec-apply` (credspec, ClusterRole, RoleBindings) |
//! | verify           | `verify` (the seed's sample workload, removed afterwards)                    |
//! | check-dc-connectivity | DC SRV records over UDP and TCP, A records, ports 88/389/636/9389 (`ad::reachability`) |
//! | audit-access     | `access-audit` (reads only; [`audit`])                                        |
//! | validate-credspec| `credspec-validate`: named checks ([`validate`])                              |
//! | teardown         | `credspec-remove`, `vault-revoke`, `identity-detach`, `cluster-update` ([`teardown`]) |
//! | collect-diagnostics | `diagnostics`: a redacted tar archive attached to the command ([`diagnostics`]) |
//! | rotate-credential| not executed by the agent yet: answered `failed{unsupported_kind}`          |
//!
//! `enable-gmsa`, `grant-identity` and `apply-credspec` carry a `mode` (schema 1.3): in
//! `dry-run` every step reads and diffs and reports `planned`; nothing is written, the drift
//! watch is neither started nor told a new desired state, and the result names no resource in
//! use (`proto::resources::uses_of`).

pub mod audit;
pub mod diagnostics;
pub mod rotate;
pub mod teardown;
pub mod validate;

use crate::executor::{ExecError, Executor, Progress};
use azure::{Azure, ClusterRef, CredentialConfig, GmsaSettings, HostIdentityRef, VaultRef};
use gmsa::credspec::{CredSpec, CredSpecInputs};
use proto::command::{ApplyCredspec, Command, GrantIdentity, IdentityChoice, Verify};
use proto::resources::ResourceUse;
use proto::{CommandEnvelope, CommandKind, StepOutcome};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The `[executor]` section of the agent's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// The managed cluster this agent serves.
    pub subscription_id: String,
    pub resource_group: String,
    pub cluster_name: String,
    /// Location for a user-assigned identity the agent creates (grant-identity with `user-assigned`).
    #[serde(default = "default_location")]
    pub location: String,
    /// A kubeconfig file; absent means in-cluster configuration.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// When set, preflight checks that CoreDNS forwards this domain to this server.
    #[serde(default)]
    pub dns_forward: Option<cluster::DnsForward>,
    /// Image of the verification workload (the seed's IIS image by default).
    #[serde(default = "default_image")]
    pub verify_image: String,
    /// What to do when someone else edits or deletes what gmsa-fleet installed: `reapply` (the
    /// default: the credspec is fleet-owned desired state) or `report-only`. Both report.
    #[serde(default = "default_drift_policy")]
    pub drift_policy: cluster::DriftPolicy,
    pub azure: AzureSection,
}

/// How the agent reaches Azure: the `azure` crate's operator section, shared with the coordinator.
pub use azure::{AzureSection, CredentialSection};

fn default_location() -> String {
    "westeurope".into()
}
fn default_image() -> String {
    "mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2019".into()
}
fn default_drift_policy() -> cluster::DriftPolicy {
    cluster::DriftPolicy::Reapply
}

/// Why the executor could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// A configuration field is missing or wrong.
    #[error("executor.{field}: {rule}")]
    Config { field: &'static str, rule: String },
    /// The Azure adapter could not be built.
    #[error("cannot set up the Azure adapter")]
    Azure(#[source] azure::Error),
    /// The Kubernetes client could not be built.
    #[error("cannot set up the Kubernetes client")]
    Kube(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `azure.<field>` of a section error.
fn section_error(err: azure::SectionError) -> CloudError {
    let field = match err.field {
        "credential.secret_env" => "azure.credential.secret_env",
        "extra_ca_file" => "azure.extra_ca_file",
        _ => "azure",
    };
    CloudError::Config { field, rule: err.rule }
}

/// A running drift watch: the desired state it compares against, and its task.
struct DriftWatch {
    desired: tokio::sync::watch::Sender<cluster::ApplyRequest>,
    task: tokio::task::JoinHandle<()>,
}

/// The production executor.
pub struct CloudExecutor {
    azure: Azure,
    kube: kube::Client,
    cluster: ClusterRef,
    config: CloudConfig,
    /// The desired credspec objects the drift watch compares against; `None` until the first
    /// successful preflight of an apply-credspec starts the watch.
    desired: std::sync::Mutex<Option<DriftWatch>>,
    /// The agent's view of its recent commands, for diagnostics.
    journal: std::sync::Mutex<diagnostics::Journal>,
    /// Where the drift watch sends what it finds; [`CloudExecutor::take_drift_events`] hands out
    /// the receiving end.
    drift_sender: tokio::sync::mpsc::Sender<cluster::DriftEvent>,
    drift_receiver: Option<tokio::sync::mpsc::Receiver<cluster::DriftEvent>>,
}

impl CloudExecutor {
    /// Builds the Azure adapter and the Kubernetes client from configuration.
    pub async fn connect(config: CloudConfig) -> Result<CloudExecutor, CloudError> {
        let credential = Self::credential(&config)?;
        Self::connect_with(config, credential).await
    }

    /// The credential the configuration names (a client secret is read from its environment variable).
    fn credential(config: &CloudConfig) -> Result<CredentialConfig, CloudError> {
        config.azure.credential.resolve().map_err(section_error)
    }

    /// Like [`CloudExecutor::connect`] with the credential given (the `credential` section is ignored).
    pub async fn connect_with(config: CloudConfig, credential: CredentialConfig) -> Result<CloudExecutor, CloudError> {
        let azure_config = config.azure.azure_config(credential).map_err(section_error)?;
        let azure = Azure::connect(azure_config).map_err(CloudError::Azure)?;
        let kube_config = match &config.kubeconfig {
            Some(path) => {
                let kubeconfig =
                    kube::config::Kubeconfig::read_from(path).map_err(|err| CloudError::Kube(Box::new(err)))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                    .await
                    .map_err(|err| CloudError::Kube(Box::new(err)))?
            }
            None => kube::Config::infer().await.map_err(|err| CloudError::Kube(Box::new(err)))?,
        };
        let kube = kube::Client::try_from(kube_config).map_err(|err| CloudError::Kube(Box::new(err)))?;
        let cluster = ClusterRef {
            subscription_id: config.subscription_id.clone(),
            resource_group: config.resource_group.clone(),
            name: config.cluster_name.clone(),
        };
        let (drift_sender, drift_receiver) = tokio::sync::mpsc::channel(256);
        Ok(CloudExecutor {
            azure,
            kube,
            cluster,
            config,
            desired: std::sync::Mutex::new(None),
            journal: std::sync::Mutex::new(diagnostics::Journal::default()),
            drift_sender,
            drift_receiver: Some(drift_receiver),
        })
    }

    /// The drift events of this cluster (once): forward them with [`crate::drift::forward`].
    pub fn take_drift_events(&mut self) -> Option<tokio::sync::mpsc::Receiver<cluster::DriftEvent>> {
        self.drift_receiver.take()
    }

    /// True when a drift watch runs.
    #[cfg(test)]
    fn drift_watch_runs(&self) -> bool {
        self.desired.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_some()
    }

    /// Tells a running drift watch the new desired state. Called *before* applying it, so the
    /// watch never mistakes our own change for someone else's. Returns false when no watch runs yet.
    fn update_drift_watch(&self, request: &cluster::ApplyRequest) -> bool {
        let desired = self.desired.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match desired.as_ref() {
            Some(watch) => {
                watch.desired.send_replace(request.clone());
                true
            }
            None => false,
        }
    }

    /// Stops the drift watch, if one runs, and waits until it has stopped: after this, nothing
    /// re-applies what a teardown removes. The next apply-credspec starts a new watch.
    async fn stop_drift_watch(&self) {
        let watch = self.desired.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(watch) = watch {
            watch.task.abort();
            // Cancelled (or already finished): either way it no longer runs.
            let _ = watch.task.await;
        }
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, diagnostics::Journal> {
        self.journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the drift watch. Called *after* the first successful apply: a watch that started
    /// earlier would list before our objects exist and report them as deleted.
    fn start_drift_watch(&self, request: &cluster::ApplyRequest, passed: cluster::Passed) {
        let mut desired = self.desired.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if desired.is_some() {
            return;
        }
        let (sender, receiver) = tokio::sync::watch::channel(request.clone());
        let watch = cluster::watch_drift(
            self.kube.clone(),
            passed,
            receiver,
            self.config.drift_policy,
            self.drift_sender.clone(),
        );
        let task = tokio::spawn(async move {
            match watch.await {
                // The executor was dropped (agent shutdown): nothing left to watch for.
                Ok(()) | Err(cluster::DriftError::DesiredClosed) => tracing::debug!("drift watch ended"),
            }
        });
        *desired = Some(DriftWatch { desired: sender, task });
    }

    /// Dispatches one command to its steps.
    async fn dispatch(&self, envelope: &CommandEnvelope, progress: Progress) -> Result<Vec<StepOutcome>, ExecError> {
        match &envelope.command {
            Command::EnableGmsa(payload) => {
                progress.report(azure::STEP_CLUSTER_UPDATE, "enabling gMSA on the managed cluster");
                let settings = GmsaSettings {
                    dns_server: payload.dns_server.clone(),
                    root_domain_name: payload.root_domain.clone(),
                };
                let outcome = self.azure.enable_gmsa_in(&self.cluster, settings, payload.mode).await;
                Ok(vec![outcome.map_err(azure_error)?])
            }
            Command::DisableGmsa(_) => {
                progress.report(azure::STEP_CLUSTER_UPDATE, "disabling gMSA on the managed cluster");
                Ok(vec![self.azure.disable_gmsa(&self.cluster).await.map_err(azure_error)?])
            }
            Command::GrantIdentity(payload) => self.grant(payload, &progress).await,
            Command::ApplyCredspec(payload) => self.apply_credspec(payload, &progress).await,
            Command::Verify(payload) => self.verify(payload, &progress).await,
            Command::CheckDcConnectivity(payload) => check_dc_connectivity(payload, &progress).await,
            Command::AuditAccess(payload) => self.audit_access(payload, &progress).await,
            Command::ValidateCredspec(payload) => self.validate_credspec(payload, &progress).await,
            Command::Teardown(payload) => self.teardown(payload, &progress).await,
            Command::CollectDiagnostics(payload) => {
                self.collect_diagnostics(&envelope.cluster, envelope.command_id.as_str(), payload, &progress).await
            }
            Command::RotateCredential(payload) => self.rotate_credential(payload, &progress).await,
        }
    }

    async fn grant(&self, payload: &GrantIdentity, progress: &Progress) -> Result<Vec<StepOutcome>, ExecError> {
        let vault = VaultRef::from(&payload.vault);
        let mode = payload.mode;
        match &payload.identity {
            IdentityChoice::Kubelet => {
                progress.report("vault-grant", "granting the kubelet identity get on secrets");
                let granted = self.azure.grant_kubelet_secret_get_in(&self.cluster, &vault, mode).await;
                Ok(vec![granted.map_err(azure_error)?])
            }
            IdentityChoice::UserAssigned { resource_group, name } => {
                progress.report("identity-attach", "attaching the user-assigned identity to the Windows pools");
                let identity = HostIdentityRef {
                    subscription_id: self.cluster.subscription_id.clone(),
                    resource_group: resource_group.clone(),
                    name: name.clone(),
                    location: self.config.location.clone(),
                };
                let (attached, host) =
                    self.azure.attach_host_identity_in(&self.cluster, &identity, mode).await.map_err(azure_error)?;
                // Recorded before the grant: a crash during the grant still reports the attach.
                progress.step_done(&attached).await;
                progress.report("vault-grant", "granting the identity get on secrets");
                let granted = match &host {
                    Some(host) => self.azure.grant_secret_get_in(&vault, &host.principal_id, mode).await,
                    // Only a dry run finds no identity: it would be created, so its grant is planned.
                    None => self.azure.plan_grant_to_new_identity(&vault, &identity).await,
                };
                let granted = granted.map_err(|err| azure_error(err).with_completed(vec![attached.clone()]))?;
                Ok(vec![attached, granted])
            }
            IdentityChoice::Unknown => {
                Err(ExecError::new("invalid_payload", "payload.identity.type: unknown identity type"))
            }
        }
    }

    async fn apply_credspec(
        &self,
        payload: &ApplyCredspec,
        progress: &Progress,
    ) -> Result<Vec<StepOutcome>, ExecError> {
        let object_id = match &payload.identity_object_id {
            Some(object_id) => object_id.clone(),
            None => self.azure.kubelet_identity(&self.cluster).await.map_err(azure_error)?.object_id,
        };
        let credspec = CredSpec::new(&CredSpecInputs {
            name: payload.spec_name.clone(),
            gmsa_account: payload.gmsa_account.clone(),
            netbios_domain: payload.netbios_domain.clone(),
            dns_domain: payload.dns_domain.clone(),
            dns_tree_root: payload.dns_tree_root.clone(),
            domain_guid: payload.domain_guid.clone(),
            domain_sid: payload.domain_sid.clone(),
            secret_uri: payload.secret_uri.clone(),
            managed_identity_object_id: object_id,
        })
        .map_err(|err| ExecError::new("invalid_credspec", err.to_string()))?;
        progress.report("preflight", "checking CRD, webhook, Windows nodes and DNS forwarding");
        let preflight_config = cluster::PreflightConfig { dns_forward: self.config.dns_forward.clone() };
        let (_, passed) = cluster::preflight(&self.kube, &preflight_config)
            .await
            .map_err(|err| ExecError::new("preflight_failed", err.to_string()))?;
        progress.report("credspec-apply", "applying the credspec, ClusterRole and RoleBindings");
        let request = cluster::ApplyRequest {
            credspec,
            owner: payload.owner.clone(),
            bindings: payload.bindings.iter().cloned().map(Into::into).collect(),
        };
        // A dry run leaves the drift watch alone: it wrote nothing, so a running watch keeps
        // comparing against what was last applied, and none starts (it would find our objects
        // missing and, under `reapply`, create them).
        let drives_watch = payload.mode.applies();
        let watching = drives_watch && self.update_drift_watch(&request);
        let outcome = cluster::apply_in(&self.kube, &request, &passed, payload.mode)
            .await
            .map_err(|err| ExecError::new("credspec_apply_failed", error_chain(&err)))?;
        if drives_watch && !watching {
            self.start_drift_watch(&request, passed);
        }
        Ok(vec![outcome])
    }

    async fn verify(&self, payload: &Verify, progress: &Progress) -> Result<Vec<StepOutcome>, ExecError> {
        progress.report(cluster::VERIFY_STEP, "running the sample workload");
        let config = cluster::VerifyConfig {
            spec_name: payload.spec_name.clone(),
            namespace: payload.namespace.clone(),
            image: payload.image.clone().unwrap_or_else(|| self.config.verify_image.clone()),
            timeout: Duration::from_secs(u64::from(payload.timeout_secs)),
        };
        let report = cluster::verify(&self.kube, &config)
            .await
            .map_err(|err| ExecError::new("verify_failed", error_chain(&err)))?;
        match report.state {
            cluster::WorkloadState::Available => {
                Ok(vec![StepOutcome::unchanged(cluster::VERIFY_STEP, serde_json::json!({"workload": "available"}))])
            }
            cluster::WorkloadState::Failed { condition, reason, message } => {
                Err(ExecError::new("workload_failed", format!("{condition} {reason}: {message}")))
            }
            cluster::WorkloadState::Pending => Err(ExecError::new(
                "workload_pending",
                format!("the sample workload was not available after {}s", payload.timeout_secs),
            )),
        }
    }
}

/// Runs the domain reachability checks from this agent's network; fails naming every failed check.
async fn check_dc_connectivity(
    payload: &proto::command::CheckDcConnectivity,
    progress: &Progress,
) -> Result<Vec<StepOutcome>, ExecError> {
    let dns_server = payload
        .dns_server_address()
        .ok_or_else(|| ExecError::new("invalid_payload", format!("payload.dns_server: {:?}", payload.dns_server)))?;
    progress.report("dc-connectivity", format!("resolving the DCs of {} through {dns_server}", payload.domain));
    let config = ad::reachability::ReachabilityConfig {
        dns_server,
        domain: payload.domain.clone(),
        adws_optional: payload.adws_optional,
        timeout: Duration::from_secs(u64::from(payload.timeout_secs)),
    };
    let report = ad::reachability::check(&config).await;
    let failed: Vec<String> =
        report.failed().iter().map(|check| format!("{} ({})", check.name, check.detail)).collect();
    if failed.is_empty() {
        let observed = serde_json::to_value(&report).unwrap_or(serde_json::Value::Null);
        Ok(vec![StepOutcome::unchanged("dc-connectivity", observed)])
    } else {
        Err(ExecError::new("dc_unreachable", format!("failed checks: {}", failed.join("; "))))
    }
}

/// An error with its causes, for the result message (never holds a secret: adapters redact).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn azure_error(err: azure::Error) -> ExecError {
    let kind = format!("{:?}", err.kind()).to_lowercase();
    ExecError::new(format!("azure_{kind}"), error_chain(&err))
}

impl Executor for CloudExecutor {
    fn capabilities(&self) -> Vec<CommandKind> {
        vec![
            CommandKind::EnableGmsa,
            CommandKind::DisableGmsa,
            CommandKind::GrantIdentity,
            CommandKind::ApplyCredspec,
            CommandKind::Verify,
            CommandKind::CheckDcConnectivity,
            CommandKind::AuditAccess,
            CommandKind::ValidateCredspec,
            CommandKind::Teardown,
            CommandKind::CollectDiagnostics,
            CommandKind::RotateCredential,
        ]
    }

    async fn execute(&self, envelope: &CommandEnvelope, progress: Progress) -> Result<Vec<StepOutcome>, ExecError> {
        let outcome = self.dispatch(envelope, progress).await;
        let summary = match &outcome {
            Ok(steps) => serde_json::json!({ "status": "ok", "steps": steps }),
            Err(err) => {
                serde_json::json!({ "status": "failed", "code": err.code, "message": err.message, "steps": err.completed })
            }
        };
        self.journal().record(diagnostics::JournalEntry {
            command_id: envelope.command_id.to_string(),
            kind: envelope.command.kind().to_string(),
            finished_at: time::OffsetDateTime::now_utc(),
            outcome: summary,
        });
        outcome
    }

    fn resource_uses(&self, command: &Command, steps: &[StepOutcome]) -> Vec<ResourceUse> {
        proto::resources::uses_of(command, &self.cluster.subscription_id, steps)
    }
}

/// The executor against a simulated Kubernetes API (kubesim over HTTPS): an apply-credspec with
/// the identity given needs no Azure call, so the Azure adapter is built but never reached.
#[cfg(test)]
mod tests {
    use super::*;
    use proto::command::{CommandId, ServiceAccountRef};
    use proto::{Change, Mode};

    async fn mk_executor(sim_cluster: &kubesim::SimCluster, dir: &tempfile::TempDir) -> CloudExecutor {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig = dir.path().join("kubeconfig");
        sim_cluster.write_kubeconfig(&kubeconfig).unwrap();
        let config: CloudConfig = serde_json::from_value(serde_json::json!({
            "subscription_id": "00000000-0000-0000-0000-000000000001",
            "resource_group": "rg", "cluster_name": "aks-1",
            "kubeconfig": kubeconfig,
            "azure": {"credential": {"type": "azure-cli"}},
        }))
        .unwrap();
        let credential = CredentialConfig::AzureCli { tenant_id: None };
        CloudExecutor::connect_with(config, credential).await.unwrap()
    }

    fn mk_apply_credspec(mode: Mode) -> CommandEnvelope {
        let payload = ApplyCredspec {
            spec_name: "aks-gmsa-spec".into(),
            gmsa_account: "WebApp01".into(),
            netbios_domain: "CONTOSO".into(),
            dns_domain: "contoso.com".into(),
            dns_tree_root: "contoso.com".into(),
            domain_guid: "244818ae-87ac-4fcd-92ec-e79e5252348a".into(),
            domain_sid: "S-1-5-21-2126449477-2524075714-3094792973".into(),
            secret_uri: "https://kv-gmsa.vault.azure.net/secrets/GMSADomainUserCred".into(),
            identity_object_id: Some("0f3c2a1b-9d8e-4f7a-b6c5-d4e3f2a1b0c9".into()),
            bindings: vec![ServiceAccountRef { namespace: "default".into(), name: "default".into() }],
            owner: "default".into(),
            mode,
        };
        let now = time::OffsetDateTime::now_utc();
        CommandEnvelope {
            schema: proto::version::SchemaVersion::CURRENT,
            command_id: CommandId::random(),
            rollout_id: None,
            cluster: "aks-1".into(),
            issued_at: now,
            deadline: now + time::Duration::minutes(5),
            issuer: None,
            command: Command::ApplyCredspec(payload),
        }
    }

    #[tokio::test]
    async fn a_dry_run_apply_credspec_plans_writes_nothing_starts_no_watch_and_uses_nothing() {
        let sim = kubesim::KubeSim::start();
        let sim_cluster = sim.add_cluster("aks-1", kubesim::ClusterSeed::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let executor = mk_executor(&sim_cluster, &dir).await;

        let dry_run = mk_apply_credspec(Mode::DryRun);
        let steps = executor.execute(&dry_run, Progress::discard()).await.unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!((steps[0].step.as_str(), steps[0].change), (cluster::APPLY_STEP, Change::Planned));
        assert!(sim_cluster.api_mutations().is_empty(), "{:?}", sim_cluster.api_mutations());
        assert!(!executor.drift_watch_runs(), "a dry run must not start the drift watch");
        assert!(executor.resource_uses(&dry_run.command, &steps).is_empty(), "a dry run uses no gMSA");

        // The same command applied: it writes, starts the watch and uses the gMSA.
        let apply = mk_apply_credspec(Mode::Apply);
        let applied = executor.execute(&apply, Progress::discard()).await.unwrap();
        assert_eq!((applied[0].change, &applied[0].diff), (Change::Changed, &steps[0].diff));
        assert!(executor.drift_watch_runs());
        assert_eq!(executor.resource_uses(&apply.command, &applied).len(), 1);

        // A dry run with a watch running leaves it comparing against what was applied.
        let mut changed = mk_apply_credspec(Mode::DryRun);
        if let Command::ApplyCredspec(payload) = &mut changed.command {
            payload.gmsa_account = "WebApp02".into();
        }
        let writes = sim_cluster.api_mutations().len();
        let planned = executor.execute(&changed, Progress::discard()).await.unwrap();
        assert_eq!(planned[0].change, Change::Planned);
        assert_eq!(sim_cluster.api_mutations().len(), writes);
        let desired = executor.desired.lock().unwrap().as_ref().map(|watch| watch.desired.borrow().clone());
        let desired = desired.expect("the watch still runs");
        assert_eq!(
            desired.credspec.manifest(gmsa::credspec::ApiVersion::V1)["credspec"]["DomainJoinConfig"]["MachineAccountName"],
            "WebApp01"
        );
    }
}
