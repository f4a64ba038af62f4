//! `teardown`: the agent's half of every `Remove-*` of the PowerShell module, in reverse order of
//! setup — `credspec-remove`, `vault-revoke`, `identity-detach` (user-assigned identity),
//! `cluster-update` (disable gMSA). Each step reads and diffs; in `dry-run` (the default) it
//! reports `planned` and writes nothing. Shared resources are not deleted here: the coordinator
//! does that once no cluster uses them.

use super::audit::{Expected, expected_principal};
use super::{CloudExecutor, azure_error, error_chain};
use crate::executor::{ExecError, Progress};
use proto::StepOutcome;
use proto::command::{IdentityChoice, Teardown};

/// The step name of the grant revocation.
pub const STEP_VAULT_REVOKE: &str = "vault-revoke";
use proto::resources::OBSERVED_GMSA;

impl CloudExecutor {
    pub(super) async fn teardown(
        &self,
        payload: &Teardown,
        progress: &Progress,
    ) -> Result<Vec<StepOutcome>, ExecError> {
        let mode = payload.mode;
        let mut done: Vec<StepOutcome> = Vec::new();
        if mode.applies() {
            // Stop the drift watch first: it would otherwise put back what we remove.
            self.stop_drift_watch().await;
        }
        progress.report(
            "credspec-remove",
            format!("removing credspec {} and its RBAC objects ({mode:?})", payload.spec_name),
        );
        let gmsa_account = match cluster::read_credspec(&self.kube, &payload.spec_name).await {
            Ok(object) => object.and_then(|object| {
                object
                    .pointer("/credspec/DomainJoinConfig/MachineAccountName")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            }),
            Err(err) => return Err(ExecError::new("credspec_read_failed", error_chain(&err))),
        };
        let request = cluster::RemoveRequest { spec_name: payload.spec_name.clone(), owner: payload.owner.clone() };
        let mut removed = cluster::remove(&self.kube, &request, mode)
            .await
            .map_err(|err| ExecError::new("credspec_remove_failed", error_chain(&err)))?;
        if let (Some(account), Some(observed)) = (&gmsa_account, removed.observed.as_object_mut()) {
            observed.insert(OBSERVED_GMSA.into(), serde_json::Value::String(account.clone()));
        } else if let Some(account) = &gmsa_account {
            removed.observed = serde_json::json!({ OBSERVED_GMSA: account });
        }
        progress.step_done(&removed).await;
        done.push(removed);

        progress.report(STEP_VAULT_REVOKE, "revoking the identity's get on the secret");
        let vault = azure::VaultRef::from(&payload.vault);
        let revoked = match self.granted_principal(&payload.identity).await {
            Ok(Some(principal)) => self.azure.revoke_secret_get(&vault, &principal, mode).await,
            Ok(None) => Ok(StepOutcome::unchanged(
                STEP_VAULT_REVOKE,
                serde_json::json!({"identity": "on no Windows pool: detached after its grant was revoked, or never attached"}),
            )),
            Err(err) => Err(err),
        }
        .map_err(|err| azure_error(err).with_completed(done.clone()))?;
        progress.step_done(&revoked).await;
        done.push(revoked);

        if let IdentityChoice::UserAssigned { resource_group, name } = &payload.identity {
            progress.report("identity-detach", "detaching the identity from the Windows pools");
            let identity = self.host_identity_ref(resource_group, name);
            let detached = self
                .azure
                .detach_host_identity(&self.cluster, &identity, mode)
                .await
                .map_err(|err| azure_error(err).with_completed(done.clone()))?;
            progress.step_done(&detached).await;
            done.push(detached);
        }
        if payload.disable_gmsa {
            progress.report(azure::STEP_CLUSTER_UPDATE, "disabling gMSA on the managed cluster");
            let disabled = self
                .azure
                .disable_gmsa_in(&self.cluster, mode)
                .await
                .map_err(|err| azure_error(err).with_completed(done.clone()))?;
            progress.step_done(&disabled).await;
            done.push(disabled);
        }
        Ok(done)
    }

    /// The principal whose grant gmsa-fleet made: the kubelet identity's object id, or the
    /// user-assigned identity's principal as the Windows pools carry it. `None` when no pool
    /// carries it: revocation precedes detachment, so a detached identity's grant is already gone
    /// (and an identity never attached was never granted through this cluster).
    async fn granted_principal(&self, identity: &IdentityChoice) -> Result<Option<String>, azure::Error> {
        match identity {
            IdentityChoice::Kubelet => Ok(Some(self.azure.kubelet_identity(&self.cluster).await?.object_id)),
            IdentityChoice::UserAssigned { resource_group, name } => {
                let reference = self.host_identity_ref(resource_group, name);
                let pools = self.azure.windows_pool_identities(&self.cluster).await?;
                Ok(expected_principal(&pools, &Expected::Identity(reference.id())))
            }
            // Refused by validation before any executor runs; nothing of ours to revoke.
            IdentityChoice::Unknown => Ok(None),
        }
    }
}
