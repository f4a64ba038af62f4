//! The agent's Azure adapter: every Azure step of the gMSA procedure, idempotently, on the
//! official GA SDK crates (azure_core / azure_identity / azure_security_keyvault_secrets 1.x).
//!
//! ```text
//!  agent ──► Azure (this crate) ──► azure_core Pipeline ──► ARM  (managedClusters, vaults,
//!   │          │                     retry ▸ bearer ▸ log     roleAssignments, identities, VMSS)
//!   │          └──► SecretClient (official) ──────────────► Key Vault data plane
//!   ◄── StepOutcome { step, changed|unchanged, diff, observed } / azure::Error { kind, operation, resource }
//! ```
//!
//! In: an [`AzureConfig`] (endpoints, credential, trusted CA, retry), cluster / vault
//! references and desired states. Out: one [`proto::outcome::StepOutcome`] per step
//! (`cluster-update`, `vault-grant`, `identity-attach`, `secret-write`, and for teardown
//! `vault-revoke`, `identity-detach`, `identity-delete`, `secret-delete`), each computed by
//! reading, diffing and writing only the difference — or, with [`Mode::DryRun`], reading and
//! diffing only and reporting `planned`; or an [`Error`] naming the operation and the resource,
//! with a [`ErrorKind`] to branch on. Read-only audits: [`Azure::windows_pool_identities`],
//! [`Azure::secret_access`], [`Azure::secret_versions`].
//!
//! ARM calls are plain REST on `azure_core`'s pipeline with small serde models (the
//! `azure_mgmt_*` crates stopped at azure_core 0.10); api-versions are in [`ApiVersions`].
//! Pure decisions — the gMSA profile plan, retry/backoff, LRO status reading, grant checks and
//! role assignment names — are plain functions, unit-tested in their modules.

pub mod access_audit;
pub mod arm;
pub mod cluster;
pub mod config;
pub mod credential;
pub mod error;
pub mod gmsa_profile;
pub mod host_identity;
pub mod identity_teardown;
pub mod lro;
pub mod policy;
pub mod pool_identity;
pub mod resource;
pub mod retry;
pub mod secret;
pub mod secret_teardown;
pub mod vault;
pub mod vault_grant;
pub mod vault_revoke;

pub use cluster::{KubeletIdentity, STEP_CLUSTER_UPDATE};
pub use config::{
    ApiVersions, AzureConfig, AzureSection, CredentialConfig, CredentialSection, PUBLIC_ARM_ENDPOINT, SectionError,
};
pub use error::{Error, ErrorKind, Operation};
pub use gmsa_profile::{GmsaChange, GmsaSettings};
pub use host_identity::{HostIdentity, STEP_IDENTITY_ATTACH};
pub use identity_teardown::{STEP_IDENTITY_DELETE, STEP_IDENTITY_DETACH};
pub use pool_identity::{AttachedIdentity, PoolIdentity};
pub use proto::outcome::Mode;
pub use resource::{ClusterRef, HostIdentityRef, VaultRef};
pub use retry::RetrySettings;
pub use secret::{DEFAULT_SECRET_NAME, STEP_SECRET_WRITE, SecretUri, SecretWrite, domain_user_credential};
pub use secret_teardown::{STEP_SECRET_DELETE, SecretVersion};
pub use vault::{STEP_VAULT_CREATE, VaultSpec};
pub use vault_grant::{KEY_VAULT_SECRETS_USER_ROLE, STEP_VAULT_GRANT};
pub use vault_revoke::STEP_VAULT_REVOKE;

use arm::ArmClient;
use azure_core::credentials::TokenCredential;
use azure_core::http::policies::Policy;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use gmsa::SecretString;
use proto::outcome::StepOutcome;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A connected Azure adapter. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Azure {
    config: AzureConfig,
    arm: ArmClient,
    credential: Arc<dyn TokenCredential>,
    transport: Transport,
    /// One `SecretClient` per vault URL: it caches the scope learned from the vault's 401
    /// challenge, so later calls skip the unauthenticated round trip.
    secret_clients: Mutex<HashMap<String, Arc<SecretClient>>>,
}

impl std::fmt::Debug for Azure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Azure").field("arm_endpoint", &self.config.arm_endpoint).finish_non_exhaustive()
    }
}

impl Azure {
    /// Builds the transport (with the extra CA), the credential and the ARM pipeline.
    ///
    /// Makes no network call: a bad credential shows up on the first operation as
    /// [`ErrorKind::Credential`]. Requires a rustls crypto provider installed in the process.
    pub fn connect(config: AzureConfig) -> Result<Azure, Error> {
        let http_client = config::build_http_client(&config)?;
        let transport = Transport::new(http_client);
        let credential = credential::build_credential(&config, &transport)?;
        let arm = ArmClient::new(
            &config.arm_endpoint,
            config.arm_scope(),
            credential.clone(),
            transport.clone(),
            config.retry.clone(),
        )?;
        tracing::debug!(
            arm = %config.arm_endpoint,
            credential = credential::credential_name(&config.credential),
            "Azure adapter connected"
        );
        Ok(Azure { config, arm, credential, transport, secret_clients: Mutex::new(HashMap::new()) })
    }

    /// The configuration this adapter was built from.
    pub fn config(&self) -> &AzureConfig {
        &self.config
    }

    /// `az aks update --enable-windows-gmsa [--gmsa-dns-server X --gmsa-root-domain-name Y]`,
    /// idempotently (step `cluster-update`). See [`cluster`] for the flow and guarantees.
    #[tracing::instrument(skip(self, settings), fields(cluster = %cluster))]
    pub async fn enable_gmsa(&self, cluster: &ClusterRef, settings: GmsaSettings) -> Result<StepOutcome, Error> {
        self.enable_gmsa_in(cluster, settings, Mode::Apply).await
    }

    /// [`Azure::enable_gmsa`] in `mode`: a dry run reads the cluster and reports the gmsaProfile
    /// diff as `planned`, with no PUT and no operation to follow.
    #[tracing::instrument(skip(self, settings), fields(cluster = %cluster))]
    pub async fn enable_gmsa_in(
        &self,
        cluster: &ClusterRef,
        settings: GmsaSettings,
        mode: Mode,
    ) -> Result<StepOutcome, Error> {
        cluster::update_gmsa(&self.arm, &self.config, cluster, &GmsaChange::Enable(settings), mode).await
    }

    /// `az aks update --disable-windows-gmsa`, idempotently (step `cluster-update`).
    #[tracing::instrument(skip(self), fields(cluster = %cluster))]
    pub async fn disable_gmsa(&self, cluster: &ClusterRef) -> Result<StepOutcome, Error> {
        self.disable_gmsa_in(cluster, Mode::Apply).await
    }

    /// [`Azure::disable_gmsa`] in `mode`: a dry run reads and plans only (step `cluster-update`, `planned`).
    #[tracing::instrument(skip(self), fields(cluster = %cluster))]
    pub async fn disable_gmsa_in(&self, cluster: &ClusterRef, mode: Mode) -> Result<StepOutcome, Error> {
        cluster::update_gmsa(&self.arm, &self.config, cluster, &GmsaChange::Disable, mode).await
    }

    /// Per Windows node pool, its scale set and the user-assigned identities on it, the kubelet
    /// identity marked (read-only; see [`pool_identity`]).
    #[tracing::instrument(skip(self), fields(cluster = %cluster))]
    pub async fn windows_pool_identities(&self, cluster: &ClusterRef) -> Result<Vec<PoolIdentity>, Error> {
        pool_identity::windows_pool_identities(&self.arm, &self.config, cluster).await
    }

    /// The reverse of [`Azure::grant_secret_get`] (step `vault-revoke`): removes secrets `get`
    /// from the principal's access policy, or deletes the role assignment the grant created.
    /// See [`vault_revoke`] for what is never touched.
    #[tracing::instrument(skip(self), fields(vault = %vault))]
    pub async fn revoke_secret_get(
        &self,
        vault: &VaultRef,
        principal_id: &str,
        mode: Mode,
    ) -> Result<StepOutcome, Error> {
        vault_grant::require_principal(vault, principal_id)?;
        vault_revoke::revoke_secret_get(&self.arm, &self.config, vault, principal_id, mode).await
    }

    /// The reverse of [`Azure::attach_host_identity`]'s attachment (step `identity-detach`):
    /// removes only this identity from every Windows pool's scale set; others stay.
    #[tracing::instrument(skip(self), fields(cluster = %cluster, identity = %identity.id()))]
    pub async fn detach_host_identity(
        &self,
        cluster: &ClusterRef,
        identity: &HostIdentityRef,
        mode: Mode,
    ) -> Result<StepOutcome, Error> {
        identity_teardown::detach(&self.arm, &self.config, cluster, identity, mode).await
    }

    /// Deletes the user-assigned identity (step `identity-delete`); absent → `unchanged`.
    /// Detach it first: Azure leaves scale sets naming a deleted identity.
    #[tracing::instrument(skip(self), fields(identity = %identity.id()))]
    pub async fn delete_host_identity(&self, identity: &HostIdentityRef, mode: Mode) -> Result<StepOutcome, Error> {
        identity_teardown::delete(&self.arm, &self.config, identity, mode).await
    }

    /// Deletes `secret_name` (default [`DEFAULT_SECRET_NAME`]) and purges it where the vault
    /// allows (step `secret-delete`); the value is never read. See [`secret_teardown`].
    #[tracing::instrument(skip(self), fields(vault = %vault))]
    pub async fn delete_domain_user_secret(
        &self,
        vault: &VaultRef,
        secret_name: Option<&str>,
        mode: Mode,
    ) -> Result<StepOutcome, Error> {
        let properties = vault_grant::read_vault(&self.arm, &self.config, vault).await?.properties;
        let (client, resource) = self.secret_client(vault, secret_name).await?;
        secret_teardown::delete_secret(&client, &resource, &properties, &self.config, mode).await
    }

    /// The versions of `secret_name` (default [`DEFAULT_SECRET_NAME`]) without any value; empty
    /// when the secret does not exist. Needs secrets `list`.
    #[tracing::instrument(skip(self), fields(vault = %vault))]
    pub async fn secret_versions(
        &self,
        vault: &VaultRef,
        secret_name: Option<&str>,
    ) -> Result<Vec<SecretVersion>, Error> {
        let (client, resource) = self.secret_client(vault, secret_name).await?;
        secret_teardown::list_versions(&client, &resource).await
    }

    /// The cluster's kubelet identity (`identityProfile.kubeletidentity`).
    #[tracing::instrument(skip(self), fields(cluster = %cluster))]
    pub async fn kubelet_identity(&self, cluster: &ClusterRef) -> Result<KubeletIdentity, Error> {
        cluster::kubelet_identity(&self.arm, &self.config, cluster).await
    }

    /// Grants secrets `get` on `vault` to `principal_id` (step `vault-grant`): an access policy
    /// or a "Key Vault Secrets User" role assignment, whichever model the vault uses.
    #[tracing::instrument(skip(self), fields(vault = %vault))]
    pub async fn grant_secret_get(&self, vault: &VaultRef, principal_id: &str) -> Result<StepOutcome, Error> {
        self.grant_secret_get_in(vault, principal_id, Mode::Apply).await
    }

    /// [`Azure::grant_secret_get`] in `mode`: a dry run reads only and reports the access policy
    /// or role assignment it would add as `planned`.
    #[tracing::instrument(skip(self), fields(vault = %vault))]
    pub async fn grant_secret_get_in(
        &self,
        vault: &VaultRef,
        principal_id: &str,
        mode: Mode,
    ) -> Result<StepOutcome, Error> {
        vault_grant::require_principal(vault, principal_id)?;
        vault_grant::grant_secret_get(&self.arm, &self.config, vault, principal_id, mode).await
    }

    /// The dry run of [`Azure::grant_secret_get`] for a user-assigned identity that a dry-run
    /// [`Azure::attach_host_identity_in`] found missing (step `vault-grant`, `planned`): its
    /// principal id does not exist yet, so the diff names it `<principalId of {identity id}>`.
    #[tracing::instrument(skip(self), fields(vault = %vault, identity = %identity.id()))]
    pub async fn plan_grant_to_new_identity(
        &self,
        vault: &VaultRef,
        identity: &HostIdentityRef,
    ) -> Result<StepOutcome, Error> {
        vault_grant::plan_for_new_principal(&self.arm, &self.config, vault, &identity.id()).await
    }

    /// Creates the vault if it does not exist (`New-GMSAAzureKeyVault`); an existing vault is left
    /// exactly as it is, whatever its permission model.
    #[tracing::instrument(skip(self, spec), fields(vault = %vault))]
    pub async fn ensure_vault(&self, vault: &VaultRef, spec: &VaultSpec) -> Result<StepOutcome, Error> {
        vault::ensure_vault(&self.arm, &self.config, vault, spec, Mode::Apply).await
    }

    /// [`Azure::ensure_vault`] in `mode`: a dry run reads only and plans the creation.
    #[tracing::instrument(skip(self, spec), fields(vault = %vault))]
    pub async fn ensure_vault_in(&self, vault: &VaultRef, spec: &VaultSpec, mode: Mode) -> Result<StepOutcome, Error> {
        vault::ensure_vault(&self.arm, &self.config, vault, spec, mode).await
    }

    /// Who can read `secret_name` in the vault and why (access policies, or secret-reading roles at
    /// the vault or above); principals not in `expected` are flagged over-broad.
    #[tracing::instrument(skip(self, expected), fields(vault = %vault))]
    pub async fn secret_access(
        &self,
        vault: &VaultRef,
        secret_name: &str,
        expected: &[&str],
    ) -> Result<Vec<access_audit::PrincipalAccess>, Error> {
        let access = access_audit::read_access(&self.arm, &self.config, vault).await?;
        Ok(access_audit::audit(&access, secret_name, expected))
    }

    /// The seed's grant: reads the cluster's kubelet identity and grants it secrets `get`.
    #[tracing::instrument(skip(self), fields(cluster = %cluster, vault = %vault))]
    pub async fn grant_kubelet_secret_get(&self, cluster: &ClusterRef, vault: &VaultRef) -> Result<StepOutcome, Error> {
        self.grant_kubelet_secret_get_in(cluster, vault, Mode::Apply).await
    }

    /// [`Azure::grant_kubelet_secret_get`] in `mode` (a dry run reads and plans only).
    #[tracing::instrument(skip(self), fields(cluster = %cluster, vault = %vault))]
    pub async fn grant_kubelet_secret_get_in(
        &self,
        cluster: &ClusterRef,
        vault: &VaultRef,
        mode: Mode,
    ) -> Result<StepOutcome, Error> {
        let identity = self.kubelet_identity(cluster).await?;
        self.grant_secret_get_in(vault, &identity.object_id, mode).await
    }

    /// The PowerShell module's `New-GMSAManagedIdentity` + `Grant-AkvAccessToAksWindowsHosts`
    /// host half: ensures the user-assigned identity exists and is attached to every Windows
    /// node pool's scale set (step `identity-attach`). Grant it with [`Azure::grant_secret_get`]
    /// using [`HostIdentity::principal_id`].
    #[tracing::instrument(skip(self), fields(cluster = %cluster, identity = %identity.id()))]
    pub async fn attach_host_identity(
        &self,
        cluster: &ClusterRef,
        identity: &HostIdentityRef,
    ) -> Result<(StepOutcome, HostIdentity), Error> {
        let (outcome, host) = self.attach_host_identity_in(cluster, identity, Mode::Apply).await?;
        let host = host.ok_or_else(|| {
            Error::new(
                Operation::PutIdentity,
                identity.id(),
                ErrorKind::Decode,
                "identity missing after it was created",
            )
        })?;
        Ok((outcome, host))
    }

    /// [`Azure::attach_host_identity`] in `mode`. A dry run sends only GETs and reports the
    /// identity it would create and the scale sets it would attach it to as `planned`; the
    /// identity is `None` when it does not exist yet (grant it in the plan with
    /// [`Azure::plan_grant_to_new_identity`]).
    #[tracing::instrument(skip(self), fields(cluster = %cluster, identity = %identity.id()))]
    pub async fn attach_host_identity_in(
        &self,
        cluster: &ClusterRef,
        identity: &HostIdentityRef,
        mode: Mode,
    ) -> Result<(StepOutcome, Option<HostIdentity>), Error> {
        host_identity::attach(&self.arm, &self.config, cluster, identity, mode).await
    }

    /// Writes `DOMAIN\user:password` as `secret_name` (default [`DEFAULT_SECRET_NAME`]) unless
    /// the current version holds it (step `secret-write`); returns the versioned URI.
    #[tracing::instrument(skip(self, value), fields(vault = %vault))]
    pub async fn write_domain_user_secret(
        &self,
        vault: &VaultRef,
        secret_name: Option<&str>,
        value: &SecretString,
    ) -> Result<SecretWrite, Error> {
        let (client, resource) = self.secret_client(vault, secret_name).await?;
        secret::write_secret(&client, &resource, value).await
    }

    /// Writes `value` as a new version of `secret_name` tagged `tags`, even when the current
    /// version holds the same value (a credential rotation's write); returns the version id.
    #[tracing::instrument(skip(self, value), fields(vault = %vault))]
    pub async fn write_secret_version(
        &self,
        vault: &VaultRef,
        secret_name: Option<&str>,
        value: &SecretString,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<String, Error> {
        let (client, resource) = self.secret_client(vault, secret_name).await?;
        secret::write_new_version(&client, &resource, value, tags).await
    }

    /// Reads the value of one version of `secret_name`; `None` when it does not exist.
    #[tracing::instrument(skip(self), fields(vault = %vault))]
    pub async fn read_secret_version(
        &self,
        vault: &VaultRef,
        secret_name: Option<&str>,
        version: &str,
    ) -> Result<Option<SecretString>, Error> {
        let (client, resource) = self.secret_client(vault, secret_name).await?;
        secret::read_version(&client, &resource, version).await
    }

    /// Reads the current value and versioned URI of the secret, `None` when it does not exist.
    #[tracing::instrument(skip(self), fields(vault = %vault))]
    pub async fn read_domain_user_secret(
        &self,
        vault: &VaultRef,
        secret_name: Option<&str>,
    ) -> Result<Option<(SecretString, SecretUri)>, Error> {
        let (client, resource) = self.secret_client(vault, secret_name).await?;
        secret::read_secret(&client, &resource).await
    }

    /// The vault's data-plane URL: given, or `properties.vaultUri` from ARM.
    pub async fn vault_url(&self, vault: &VaultRef) -> Result<String, Error> {
        if let Some(url) = &vault.vault_uri {
            return Ok(url.clone());
        }
        let view = vault_grant::read_vault(&self.arm, &self.config, vault).await?;
        view.properties.vault_uri.filter(|uri| !uri.is_empty()).ok_or_else(|| {
            Error::new(Operation::GetVault, vault.id(), ErrorKind::Decode, "vault has no properties.vaultUri")
        })
    }

    async fn secret_client(
        &self,
        vault: &VaultRef,
        secret_name: Option<&str>,
    ) -> Result<(Arc<SecretClient>, String), Error> {
        let vault_url = self.vault_url(vault).await?;
        let name = secret_name.unwrap_or(DEFAULT_SECRET_NAME);
        let resource = secret::secret_resource(&vault_url, name);
        let mut clients = self.secret_clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&vault_url) {
            return Ok((client.clone(), resource));
        }
        let retry_policy: Arc<dyn Policy> = Arc::new(policy::RetryPolicy::new(self.config.retry.clone()));
        let options = SecretClientOptions {
            client_options: ClientOptions {
                transport: Some(self.transport.clone()),
                retry: RetryOptions::none(),
                per_call_policies: vec![retry_policy],
                ..ClientOptions::default()
            },
            verify_challenge_resource: Some(self.config.verify_challenge_resource),
            ..SecretClientOptions::default()
        };
        let client = SecretClient::new(&vault_url, self.credential.clone(), Some(options))
            .map_err(|error| Error::from_sdk(Operation::Connect, &vault_url, error))?;
        let client = Arc::new(client);
        clients.insert(vault_url, client.clone());
        Ok((client, resource))
    }
}
