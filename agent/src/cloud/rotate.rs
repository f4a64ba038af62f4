//! `rotate-credential` on a cluster: the coordinator reset the idle user's password and wrote a
//! new version of the secret; this step proves the cluster will pick it up at its next container
//! start. It reads metadata only — the credspec, the Windows pools' identities, the vault's access
//! and the secret's version list — and **never a secret value**; it changes nothing the cluster
//! runs (the credspecs keep their unversioned `SecretUri`, so a new version needs no change).
//!
//! Checks (all in the step's `observed`; any failure fails the step `credential_unreadable`, which
//! the rollout engine counts against the stage's failure budget):
//! - `credspec-present`, `secret-uri`: the credspec names this vault's secret, **unversioned**
//!   (a pinned version would keep the old credential);
//! - `plugin-identity`, `secret-readable`: its plugin identity runs on a Windows pool and may `get`
//!   the secret;
//! - `secret-version`: the new version exists and is enabled (a disabled latest version fails every
//!   container start with 403);
//! - `workload` (with `run_workload`): the sample workload with the credspec starts — a canary pod,
//!   admitted by the gMSA webhook's rule, whose container start reads the newest version. This is
//!   the step's one write (the sample Deployment, as `verify` makes it).

use super::audit::Expected;
use super::validate::{parse_plugin_input, secret_path};
use super::{CloudExecutor, azure_error, error_chain};
use crate::executor::{ExecError, Progress};
use proto::StepOutcome;
use proto::command::RotateCredential;
use proto::report::{Check, CheckReport};
use serde_json::json;

/// The step name of `rotate-credential`'s one outcome.
pub const STEP_ROTATE_CONFIRM: &str = "credential-confirm";

impl CloudExecutor {
    pub(super) async fn rotate_credential(
        &self,
        payload: &RotateCredential,
        progress: &Progress,
    ) -> Result<Vec<StepOutcome>, ExecError> {
        let mut checks = Vec::new();
        let vault = azure::VaultRef::from(&payload.vault);
        let host = format!("{}.vault.azure.net", payload.vault.name.to_ascii_lowercase());
        let mut object_id = None;
        if let Some(spec_name) = &payload.spec_name {
            progress.report(STEP_ROTATE_CONFIRM, format!("reading credspec {spec_name}"));
            let object = cluster::read_credspec(&self.kube, spec_name)
                .await
                .map_err(|err| ExecError::new("credspec_read_failed", error_chain(&err)))?;
            let plugin = object.as_ref().and_then(|object| {
                let text = object
                    .pointer("/credspec/ActiveDirectoryConfig/HostAccountConfig/PluginInput")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("");
                parse_plugin_input(text)
            });
            checks.push(Check::of("credspec-present", object.is_some(), spec_name.clone()));
            if let Some(plugin) = &plugin {
                let path = secret_path(&plugin.secret_uri);
                let ok = path.as_ref().is_some_and(|(found_host, name, version)| {
                    *found_host == host && name.eq_ignore_ascii_case(&payload.secret_name) && version.is_none()
                });
                checks.push(Check::of(
                    "secret-uri",
                    ok,
                    format!(
                        "SecretUri {} (expected https://{host}/secrets/{}, unversioned)",
                        plugin.secret_uri, payload.secret_name
                    ),
                ));
                object_id = Some(plugin.object_id.clone());
            } else if object.is_some() {
                checks.push(Check::of("secret-uri", false, "PluginInput is not ObjectId=<id>;SecretUri=<uri>"));
            }
        }
        progress.report(STEP_ROTATE_CONFIRM, "checking the Windows pools' identity and its access to the secret");
        let pools = self.azure.windows_pool_identities(&self.cluster).await.map_err(azure_error)?;
        let identity = pools.iter().flat_map(|pool| &pool.identities).find(|identity| match &object_id {
            Some(id) => identity.principal_id.eq_ignore_ascii_case(id) || identity.client_id.eq_ignore_ascii_case(id),
            None => identity.kubelet,
        });
        checks.push(Check::of(
            "plugin-identity",
            identity.is_some(),
            match (identity, &object_id) {
                (Some(identity), _) => format!("{} runs on the Windows pools", identity.id),
                (None, Some(id)) => format!("ObjectId {id} is no identity of a Windows node pool"),
                (None, None) => "no kubelet identity on the Windows pools".to_string(),
            },
        ));
        if let Some(identity) = identity {
            let report = self
                .access_report(&pools, &vault, &payload.secret_name, &Expected::Identity(identity.id.clone()))
                .await?;
            let can_get = report
                .rows
                .iter()
                .find(|row| row.identity_id.eq_ignore_ascii_case(&identity.id))
                .is_some_and(|row| row.can_get);
            checks.push(Check::of(
                "secret-readable",
                can_get,
                if can_get {
                    format!("{} may get {}", identity.id, payload.secret_name)
                } else {
                    format!("{} may not get {}", identity.id, payload.secret_name)
                },
            ));
        }
        progress.report(STEP_ROTATE_CONFIRM, "listing the secret's versions (no value is read)");
        let versions = self.azure.secret_versions(&vault, Some(&payload.secret_name)).await.map_err(azure_error)?;
        let found = versions.iter().find(|v| v.version.eq_ignore_ascii_case(&payload.secret_version));
        checks.push(Check::of(
            "secret-version",
            found.is_some_and(|v| v.enabled),
            match found {
                Some(v) if v.enabled => format!("version {} exists and is enabled", payload.secret_version),
                Some(_) => format!("version {} is disabled", payload.secret_version),
                None => format!("secret {} has no version {}", payload.secret_name, payload.secret_version),
            },
        ));
        if payload.run_workload
            && let Some(spec_name) = &payload.spec_name
        {
            progress.report(cluster::VERIFY_STEP, "starting the sample workload with the credspec");
            let namespace = "default".to_string();
            let config = cluster::VerifyConfig {
                spec_name: spec_name.clone(),
                namespace,
                image: self.config.verify_image.clone(),
                timeout: std::time::Duration::from_secs(u64::from(payload.timeout_secs)),
            };
            checks.push(match cluster::verify(&self.kube, &config).await {
                Ok(report) => match report.state {
                    cluster::WorkloadState::Available => {
                        Check::of("workload", true, "a pod with the credspec started and is available")
                    }
                    cluster::WorkloadState::Failed { condition, reason, message } => {
                        Check::of("workload", false, format!("{condition} {reason}: {message}"))
                    }
                    cluster::WorkloadState::Pending => {
                        Check::of("workload", false, format!("not available after {}s", payload.timeout_secs))
                    }
                },
                Err(err) => Check::of("workload", false, error_chain(&err)),
            });
        }
        let report = CheckReport { checks };
        let observed = json!({"secret_version": payload.secret_version, "checks": report.checks});
        let step = StepOutcome::unchanged(STEP_ROTATE_CONFIRM, observed);
        let failed: Vec<String> =
            report.failed().iter().map(|check| format!("{} ({})", check.name, check.detail)).collect();
        if failed.is_empty() {
            Ok(vec![step])
        } else {
            Err(ExecError::new("credential_unreadable", format!("failed checks: {}", failed.join("; ")))
                .with_completed(vec![step]))
        }
    }
}
