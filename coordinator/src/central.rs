//! The coordinator's central side: the only place that holds the Azure principal that writes the
//! domain-user secret and the LDAPS connection that writes Active Directory. Agents never get
//! either; fleetctl asks the daemon (`fleet.ctl.teardown-shared`, [`serve`]).
//!
//! ```text
//!  rollout driver ── prepare(setup, mode) ──► Central ── azure::Azure (ARM, Key Vault)
//!  fleet.ctl.teardown-shared ── delete_shared ──┘  └──── ad::LdapDirectory (LDAPS)
//!       out: Prepared { credspec with AD facts, secret URI, one StepOutcome per step }
//! ```
//!
//! # `prepare`: a rollout's stage 0
//! Expected flow: every read and every refusal first (the vault, the secret's `DOMAIN\user` part,
//! whether the user exists), then the writes, each skipped when nothing differs:
//! `vault-ensure` → `domain-user` (a password reset, when allowed, happens here) → `standby-user`
//! (user B, which credential rotation alternates with; created idle) → `gmsa-ensure` (both users
//! allowed)
//! → `domain-facts` → `secret-write`. The secret is written last because its `DOMAIN` part is the
//! NetBIOS name AD reports.
//!
//! Guarantees:
//! - idempotent: a second run reports every step `unchanged` and writes nothing;
//! - [`Mode::DryRun`] reads and diffs only (steps `planned`); no password is generated;
//! - the generated password lives in a [`gmsa::SecretString`] from the directory to the vault
//!   request body; it is in no outcome, diff, error or log (diffs show `<redacted>`).
//!
//! Refusals (each a [`CentralError::Refused`] with a stable code, before anything is written
//! unless said otherwise):
//! - `vault_missing`: the vault does not exist and the setup has no `central.vault_create`;
//!   `vault_create_not_configured`: it would be created but the coordinator's `central.tenant_id`
//!   / `central.principal_object_id` are not configured. An existing vault is never changed (not
//!   its permission model, not its policies): `vault-ensure` only reads it.
//! - `secret_holds_other_user`, `secret_unreadable`: the secret is someone else's; never overwritten.
//! - `existing_user_without_secret`: the user exists and the secret lacks its credential; its
//!   password is reset only with `central.reset_existing_user_password: true`, and never for a
//!   built-in or critical account (the `ad` crate refuses: `ad_write_refused`).
//! - `wrong_object_class` (from `ad`): the user's name belongs to a computer or gMSA, or the
//!   gMSA's name to something else; neither is touched.
//! - `facts_mismatch` (after the AD writes): a fact the rollout file gives differs from AD's.
//!
//! Caveat: an existing gMSA's allowed principals are made exactly users A and B (the `ad`
//! crate's rule); the diff shows any principal removed.

pub mod plan;
pub mod rotate;
pub mod serve;

use crate::config::CentralConfig;
use crate::record::ClusterRecord;
use crate::teardown::{self, SharedError, SharedTargets};
use ad::Directory;
use proto::command::Teardown;
use proto::rollout::{CredspecInputs, GmsaSetup};
use proto::{Mode, StepOutcome};
use serde_json::json;

use plan::{SecretAction, SecretHolds};

/// Step names of [`Central::prepare`], in the order they run.
pub const STEP_VAULT_ENSURE: &str = "vault-ensure";
pub const STEP_DOMAIN_USER: &str = "domain-user";
/// The second standard user a rotation alternates with (created idle).
pub const STEP_STANDBY_USER: &str = "standby-user";
pub const STEP_GMSA_ENSURE: &str = "gmsa-ensure";
pub const STEP_DOMAIN_FACTS: &str = "domain-facts";
pub const STEP_SECRET_WRITE: &str = "secret-write";
/// Marking an existing user made before gmsa-fleet marked its accounts (present only when it
/// changes something).
pub const STEP_DOMAIN_USER_CLAIM: &str = "domain-user-claim";

/// The central adapters.
pub struct Central {
    azure: azure::Azure,
    directory: ad::LdapDirectory,
    /// Tenant and object id of the coordinator's principal, for vaults it creates.
    vault_writer: Option<(String, String)>,
}

/// What stage 0 produced, for the rollout's per-cluster commands.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The setup's credspec inputs with every AD fact filled from the directory. In a dry run
    /// whose gMSA does not exist yet the facts stay as given.
    pub credspec: CredspecInputs,
    /// `https://<vault>.vault.azure.net/secrets/<name>`, unversioned.
    pub secret_uri: String,
    /// One outcome per step, in order.
    pub steps: Vec<StepOutcome>,
}

/// Why a central operation failed or was refused.
#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    /// The `central` configuration cannot be used.
    #[error("central.{field}: {rule}")]
    Config { field: String, rule: String },
    /// The rollout asks for something the central side refuses; nothing was written unless the
    /// code is `facts_mismatch`.
    #[error("{step}: refused ({code}): {message}")]
    Refused { step: &'static str, code: &'static str, message: String },
    /// An Azure call failed.
    #[error("{step}: {source}")]
    Azure {
        step: &'static str,
        #[source]
        source: azure::Error,
    },
    /// An Active Directory call failed.
    #[error("{step}: {source}")]
    Directory {
        step: &'static str,
        #[source]
        source: ad::AdError,
    },
}

impl CentralError {
    /// A stable code: `config`, the refusal's code, `azure_<kind>`, or `ad_<what>`.
    pub fn code(&self) -> String {
        match self {
            CentralError::Config { .. } => "config".into(),
            CentralError::Refused { code, .. } => (*code).into(),
            CentralError::Azure { source, .. } => format!("azure_{}", source.kind()),
            CentralError::Directory { source, .. } => match source {
                ad::AdError::WrongObjectClass { .. } => "wrong_object_class".into(),
                ad::AdError::WriteRefused { .. } => "ad_write_refused".into(),
                ad::AdError::DeleteRefused { .. } => "ad_delete_refused".into(),
                ad::AdError::Name(_) => "invalid_name".into(),
                _ => "ad_error".into(),
            },
        }
    }
}

fn refused(step: &'static str, code: &'static str, message: impl Into<String>) -> CentralError {
    CentralError::Refused { step, code, message: message.into() }
}

fn renamed(mut outcome: StepOutcome, step: &str) -> StepOutcome {
    outcome.step = step.to_string();
    outcome
}

impl Central {
    /// Builds the adapters from configuration (secrets from the environment variables it names).
    /// Makes no network call.
    pub fn connect(config: &CentralConfig) -> Result<Central, CentralError> {
        let section =
            |prefix: &str, field: &str, rule: String| CentralError::Config { field: format!("{prefix}.{field}"), rule };
        let credential = config.azure.credential.resolve().map_err(|err| section("azure", err.field, err.rule))?;
        let azure_config =
            config.azure.azure_config(credential).map_err(|err| section("azure", err.field, err.rule))?;
        let azure =
            azure::Azure::connect(azure_config).map_err(|err| section("azure", "credential", bus::chain(&err)))?;
        let ldap = config.ad.ldap_config().map_err(|err| match err {
            ad::AdError::Config { field, reason } => section("ad", field, reason),
            other => section("ad", "ca_file", other.to_string()),
        })?;
        let vault_writer = config.tenant_id.clone().zip(config.principal_object_id.clone());
        Ok(Central::new(azure, ad::LdapDirectory::new(ldap), vault_writer))
    }

    /// From adapters built elsewhere (tests). `vault_writer` is (tenant id, object id) of the
    /// principal given secret permissions in a vault [`Central::prepare`] creates.
    pub fn new(azure: azure::Azure, directory: ad::LdapDirectory, vault_writer: Option<(String, String)>) -> Central {
        Central { azure, directory, vault_writer }
    }

    /// A rollout's stage 0 (see the module documentation for the flow, guarantees and refusals).
    #[tracing::instrument(name = "central.prepare", skip_all, fields(vault = %setup.vault.name, mode = ?mode))]
    pub async fn prepare(&self, setup: &GmsaSetup, mode: Mode) -> Result<Prepared, CentralError> {
        let Some(central) = &setup.central else {
            return Err(refused("prepare", "no_central_setup", "the setup has no `central` section"));
        };
        let user = ad::AccountName::new(&central.domain_user)
            .map_err(|err| refused(STEP_DOMAIN_USER, "invalid_name", format!("central.domain_user: {err}")))?;
        let [_, standby_name] = central.users();
        let standby = ad::AccountName::new(&standby_name)
            .map_err(|err| refused(STEP_STANDBY_USER, "invalid_name", format!("central.standby_user: {err}")))?;
        let gmsa_name = ad::AccountName::gmsa(&setup.credspec.gmsa_account)
            .map_err(|err| refused(STEP_GMSA_ENSURE, "invalid_name", format!("credspec.gmsa_account: {err}")))?;
        let vault = azure::VaultRef::from(&setup.vault);
        let azure_error = |step| move |source| CentralError::Azure { step, source };
        let ad_error = |step| move |source| CentralError::Directory { step, source };

        // Reads and refusals.
        let vault_exists = match self.azure.vault_url(&vault).await {
            Ok(_) => true,
            Err(err) if err.kind() == azure::ErrorKind::NotFound => false,
            Err(err) => return Err(azure_error(STEP_VAULT_ENSURE)(err)),
        };
        let vault_spec = match (vault_exists, &central.vault_create, &self.vault_writer) {
            (true, _, _) => None,
            (false, None, _) => {
                return Err(refused(
                    STEP_VAULT_ENSURE,
                    "vault_missing",
                    format!("vault {} does not exist and the setup has no central.vault_create", vault.id()),
                ));
            }
            (false, Some(_), None) => {
                return Err(refused(
                    STEP_VAULT_ENSURE,
                    "vault_create_not_configured",
                    "creating a vault needs the coordinator's central.tenant_id and central.principal_object_id",
                ));
            }
            (false, Some(create), Some((tenant_id, object_id))) => Some(azure::VaultSpec {
                location: create.location.clone(),
                tenant_id: tenant_id.clone(),
                rbac: false,
                writer_object_id: Some(object_id.clone()),
            }),
        };
        let holds = if vault_exists {
            let current = self
                .azure
                .read_domain_user_secret(&vault, Some(&setup.secret_name))
                .await
                .map_err(azure_error(STEP_SECRET_WRITE))?;
            plan::secret_holds(current.as_ref().map(|(value, _)| value))
        } else {
            SecretHolds::Missing
        };
        // The marker names the secret that holds the user's credential.
        let user_spec = ad::UserSpec::new(user.clone(), format!("{}/{}", setup.vault.name, setup.secret_name))
            .map_err(|err| refused(STEP_DOMAIN_USER, "invalid_credential", err.to_string()))?;
        let probe =
            self.directory.ensure_user_in(&user_spec, Mode::DryRun).await.map_err(ad_error(STEP_DOMAIN_USER))?;
        let user_exists = probe.outcome.change == proto::Change::Unchanged;
        let standby_spec = ad::UserSpec::new(standby.clone(), user_spec.credential.clone())
            .map_err(|err| refused(STEP_STANDBY_USER, "invalid_credential", err.to_string()))?;
        let standby_probe =
            self.directory.ensure_user_in(&standby_spec, Mode::DryRun).await.map_err(ad_error(STEP_STANDBY_USER))?;
        let action = plan::secret_action(&holds, user.as_str(), user_exists, central.reset_existing_user_password);
        if let SecretAction::Refuse { code, message } = &action {
            return Err(refused(STEP_SECRET_WRITE, code, message.clone()));
        }

        // Writes, each only where something differs.
        let mut steps = Vec::with_capacity(5);
        let vault_outcome = match &vault_spec {
            None => StepOutcome::unchanged(STEP_VAULT_ENSURE, json!({"vault": vault.id(), "created": false})),
            Some(spec) => renamed(
                self.azure.ensure_vault_in(&vault, spec, mode).await.map_err(azure_error(STEP_VAULT_ENSURE))?,
                STEP_VAULT_ENSURE,
            ),
        };
        steps.push(vault_outcome);
        let ensured = if mode.applies() {
            self.directory.ensure_user_in(&user_spec, mode).await.map_err(ad_error(STEP_DOMAIN_USER))?
        } else {
            probe
        };
        let user_dn = ensured.outcome.observed["dn"].as_str().unwrap_or_default().to_string();
        let mut new_password = ensured.new_password;
        let ownership = ensured.ownership;
        steps.push(renamed(ensured.outcome, STEP_DOMAIN_USER));
        // A user from before markers existed is adopted only when the secret already holds its
        // credential or the operator allowed a reset; `ad` refuses a built-in or privileged one.
        if ownership == ad::Ownership::Unmarked && matches!(action, SecretAction::Keep | SecretAction::ResetAndWrite) {
            let claimed =
                self.directory.claim_user(&user_spec, mode).await.map_err(ad_error(STEP_DOMAIN_USER_CLAIM))?;
            if claimed.change != proto::Change::Unchanged {
                steps.push(renamed(claimed, STEP_DOMAIN_USER_CLAIM));
            }
        }
        if action == SecretAction::ResetAndWrite && mode.applies() {
            // Before the gMSA names the user: `ad` refuses a built-in or critical account here.
            let rotated = self.directory.rotate_password(&user_spec).await.map_err(ad_error(STEP_SECRET_WRITE))?;
            new_password = Some(rotated);
        }
        // User B, idle until the first rotation resets it: its generated password is dropped
        // here (nothing reads it). An existing single-user setup is upgraded by this step.
        let standby_outcome = if mode.applies() {
            self.directory.ensure_user_in(&standby_spec, mode).await.map_err(ad_error(STEP_STANDBY_USER))?
        } else {
            standby_probe
        };
        steps.push(renamed(standby_outcome.outcome, STEP_STANDBY_USER));

        let dns_domain = plan::dns_name_of_dn(&user_dn);
        let gmsa_spec = ad::GmsaSpec {
            name: gmsa_name.clone(),
            dns_host_name: central
                .gmsa_dns_host_name
                .clone()
                .unwrap_or_else(|| format!("{}.{dns_domain}", gmsa_name.as_str()).to_ascii_lowercase()),
            password_interval_days: central.gmsa_password_interval_days,
            allowed_principals: vec![user.clone(), standby.clone()],
        };
        let gmsa_outcome = self.directory.ensure_gmsa_in(&gmsa_spec, mode).await.map_err(ad_error(STEP_GMSA_ENSURE))?;
        let gmsa_exists = gmsa_outcome.change != proto::Change::Planned || gmsa_outcome.observed["exists"] != false;
        steps.push(renamed(gmsa_outcome, STEP_GMSA_ENSURE));

        let (credspec, netbios) = if gmsa_exists {
            let facts = self.directory.domain_facts(&gmsa_name).await.map_err(ad_error(STEP_DOMAIN_FACTS))?;
            let reported = plan::ReportedFacts::from(&facts);
            let observed = json!({
                "netbios_domain": reported.netbios_domain,
                "dns_domain": reported.dns_domain,
                "dns_tree_root": reported.dns_tree_root,
                "domain_guid": reported.domain_guid,
                "domain_sid": reported.domain_sid,
                "gmsa_sid": facts.gmsa_sid.to_string(),
            });
            steps.push(StepOutcome::unchanged(STEP_DOMAIN_FACTS, observed));
            let credspec = plan::fill_facts(&setup.credspec, &reported)
                .map_err(|(field, rule)| refused(STEP_DOMAIN_FACTS, "facts_mismatch", format!("{field}: {rule}")))?;
            (credspec, Some(facts.netbios_name))
        } else {
            let observed =
                json!({"gmsa": gmsa_name.machine_account(), "read": false, "reason": "the gMSA does not exist yet"});
            steps.push(StepOutcome::unchanged(STEP_DOMAIN_FACTS, observed));
            (setup.credspec.clone(), None)
        };

        let secret_resource = format!("{}/secrets/{}", vault.id(), setup.secret_name);
        let redacted_write = |existed: bool| proto::FieldChange {
            path: "/value".into(),
            before: existed.then(|| json!("<redacted>")),
            after: Some(json!("<redacted>")),
        };
        let secret_outcome = match (&action, mode.applies()) {
            (SecretAction::Keep, _) => StepOutcome::unchanged(
                STEP_SECRET_WRITE,
                json!({"secret": secret_resource, "holds": format!("credential of {}", user.as_str())}),
            ),
            (_, false) => StepOutcome::in_mode(
                mode,
                STEP_SECRET_WRITE,
                vec![redacted_write(holds != SecretHolds::Missing)],
                json!({"secret": secret_resource, "reset_password": action == SecretAction::ResetAndWrite}),
            ),
            (_, true) => {
                // A user that appeared between the read and the creation is someone else's: its
                // password is not reset.
                let (Some(password), Some(netbios)) = (&new_password, &netbios) else {
                    return Err(refused(
                        STEP_SECRET_WRITE,
                        "existing_user_without_secret",
                        format!("domain user {user} was created by someone else meanwhile; run again"),
                    ));
                };
                let credential = azure::domain_user_credential(netbios, user.as_str(), password)
                    .map_err(|rule| refused(STEP_SECRET_WRITE, "invalid_credential", rule))?;
                let written = self
                    .azure
                    .write_domain_user_secret(&vault, Some(&setup.secret_name), &credential)
                    .await
                    .map_err(azure_error(STEP_SECRET_WRITE))?;
                renamed(written.outcome, STEP_SECRET_WRITE)
            }
        };
        steps.push(secret_outcome);
        drop(new_password);
        let changed: Vec<&str> =
            steps.iter().filter(|s| s.change != proto::Change::Unchanged).map(|s| s.step.as_str()).collect();
        tracing::info!(?changed, "stage 0 prepared");
        Ok(Prepared { credspec, secret_uri: plan::credspec_secret_uri(&setup.vault.name, &setup.secret_name), steps })
    }

    /// Teardown's shared deletions ([`teardown::delete_shared`]) with these adapters: refused
    /// while any cluster's record in `records` uses a resource to delete.
    pub async fn delete_shared(
        &self,
        records: &[ClusterRecord],
        payload: &Teardown,
        identities: &[(String, String, String)],
    ) -> Result<Vec<StepOutcome>, SharedError> {
        let targets = SharedTargets { azure: Some(&self.azure), directory: Some(&self.directory) };
        teardown::delete_shared(&targets, records, payload, identities).await
    }
}
