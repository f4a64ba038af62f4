//! [`Directory`] over LDAP with ldap3: LDAPS (or StartTLS) with certificate verification, simple
//! bind, a fresh connection per operation.
//!
//! A connection per operation keeps the adapter stateless between commands: nothing to
//! reconnect after a DC restart, and the bind identity of one operation (the rotated user, for
//! the confirmation bind) never leaks into the next. Operations run seconds apart, so the
//! handshake cost does not matter.

mod accounts;
mod facts;
mod managed;
mod pdc;
mod policy;
mod session;
mod teardown;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gmsa::SecretString;
use proto::outcome::{Mode, StepOutcome};

use crate::account::AccountName;
use crate::directory::{Directory, DomainFacts, EnsuredUser, GmsaSpec, STEP_GMSA_DELETE, STEP_USER_DELETE, UserSpec};
use crate::error::AdError;
use crate::kds::KdsStatus;
use crate::removal::Removable;
pub use managed::read_managed_password;
use session::Session;

/// How to reach and authenticate to a domain controller.
pub struct LdapConfig {
    /// `ldaps://dc1.contoso.test:636` (or `ldap://…` with [`LdapConfig::start_tls`]). The host
    /// name is what the DC's certificate must name.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    pub start_tls: bool,
    /// Who binds: a UPN (`admin@contoso.test`) or a DN, with rights to create users and gMSAs.
    pub bind_principal: String,
    /// The bind password.
    pub bind_password: SecretString,
    /// TLS trust: `None` uses the system's root certificates; `Some` trusts exactly the CA
    /// bundle it was built from ([`LdapConfig::with_ca_bundle`]). Verification is never off.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Bounds TCP connect, StartTLS and the TLS handshake together.
    pub connect_timeout: Duration,
    /// Bounds each bind, search, add and modify.
    pub operation_timeout: Duration,
}

impl LdapConfig {
    /// A configuration with 10 s connect and 30 s operation timeouts and system trust roots.
    ///
    /// With system roots ldap3 builds the rustls configuration itself, which needs the process's
    /// default crypto provider installed (each binary installs ring at start).
    pub fn new(url: impl Into<String>, bind_principal: impl Into<String>, bind_password: SecretString) -> LdapConfig {
        LdapConfig {
            url: url.into(),
            start_tls: false,
            bind_principal: bind_principal.into(),
            bind_password,
            tls: None,
            connect_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
        }
    }

    /// Trusts exactly the CA certificates in the PEM file `path` (e.g. the enterprise CA that
    /// issued the DCs' LDAPS certificates) instead of the system roots.
    pub fn with_ca_bundle(mut self, path: impl Into<PathBuf>) -> Result<LdapConfig, AdError> {
        self.tls = Some(session::client_config_with_ca(&path.into())?);
        Ok(self)
    }

    /// True when binds and passwords travel encrypted (`ldaps://`, or `ldap://` with StartTLS).
    pub fn is_encrypted(&self) -> bool {
        self.url.starts_with("ldaps://") || (self.start_tls && self.url.starts_with("ldap://"))
    }

    /// The same configuration (scheme, port, trust, credentials, timeouts) for another DC `host`.
    fn for_host(&self, host: &str) -> Result<LdapConfig, AdError> {
        let url = pdc::url_with_host(&self.url, host)
            .ok_or_else(|| AdError::Config { field: "url", reason: format!("'{}' has no scheme://host", self.url) })?;
        Ok(LdapConfig {
            url,
            start_tls: self.start_tls,
            bind_principal: self.bind_principal.clone(),
            bind_password: self.bind_password.duplicate(),
            tls: self.tls.clone(),
            connect_timeout: self.connect_timeout,
            operation_timeout: self.operation_timeout,
        })
    }

    /// Checks the URL scheme and refuses `operation` when it would send a password in clear.
    /// Runs before any connection is opened.
    fn check_encrypted(&self, operation: &'static str) -> Result<(), AdError> {
        if !self.url.starts_with("ldaps://") && !self.url.starts_with("ldap://") {
            return Err(AdError::Config {
                field: "url",
                reason: format!("'{}' is not an ldap:// or ldaps:// URL", self.url),
            });
        }
        if !self.is_encrypted() {
            return Err(AdError::PlaintextRefused { operation, url: self.url.clone() });
        }
        Ok(())
    }
}

/// The `ad` section of an operator's configuration file: the DC and who binds. The password is
/// never in the file: `password_env` names the environment variable that holds it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSection {
    /// `ldaps://dc1.contoso.com:636` (or `ldap://…` with `start_tls`).
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    #[serde(default)]
    pub start_tls: bool,
    /// A UPN or DN with rights to create users and gMSAs.
    pub bind_principal: String,
    /// The environment variable holding the bind password.
    pub password_env: String,
    /// A PEM bundle of the CAs that issued the DCs' certificates; absent uses the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl LdapSection {
    /// The adapter configuration; the password is read from `password_env`. Errors name the
    /// field relative to the section (`password_env`, `url`, `ca_file`).
    pub fn ldap_config(&self) -> Result<LdapConfig, AdError> {
        let password = std::env::var(&self.password_env).map_err(|_| AdError::Config {
            field: "password_env",
            reason: format!("environment variable {} is not set", self.password_env),
        })?;
        self.ldap_config_with(SecretString::new(password))
    }

    /// [`LdapSection::ldap_config`] with the password given (tests; `password_env` is ignored).
    pub fn ldap_config_with(&self, password: SecretString) -> Result<LdapConfig, AdError> {
        let mut config = LdapConfig::new(&self.url, &self.bind_principal, password);
        config.start_tls = self.start_tls;
        if !config.is_encrypted() {
            return Err(AdError::Config {
                field: "url",
                reason: format!("'{}' must be ldaps://, or ldap:// with start_tls = true", self.url),
            });
        }
        if let Some(path) = &self.ca_file {
            config = config.with_ca_bundle(path)?;
        }
        Ok(config)
    }
}

/// Active Directory over LDAPS. Every operation binds with a password (the configured admin's,
/// and for rotation the user's new one), so every operation is refused over plain `ldap://`
/// without StartTLS, before connecting.
pub struct LdapDirectory {
    config: LdapConfig,
}

impl LdapDirectory {
    /// An adapter for the DC in `config`; nothing is contacted until the first operation.
    pub fn new(config: LdapConfig) -> LdapDirectory {
        LdapDirectory { config }
    }

    /// The longest password age the domain allows `users` (the domain's `maxPwdAge`, or a
    /// stricter fine-grained policy that applies to one of them); `None`: passwords never expire.
    #[tracing::instrument(name = "ad.max_password_age", skip(self), fields(url = %self.config.url))]
    pub async fn max_password_age(&self, users: &[AccountName]) -> Result<Option<std::time::Duration>, AdError> {
        let mut session = self.admin_session("reading the password policy").await?;
        let age = policy::max_password_age(&mut session, users).await;
        session.close().await;
        age
    }

    async fn admin_session(&self, operation: &'static str) -> Result<Session, AdError> {
        self.config.check_encrypted(operation)?;
        Session::open(&self.config, &self.config.bind_principal, &self.config.bind_password).await
    }
}

impl Directory for LdapDirectory {
    #[tracing::instrument(name = "ad.domain_facts", skip(self), fields(url = %self.config.url))]
    async fn domain_facts(&self, gmsa: &AccountName) -> Result<DomainFacts, AdError> {
        let mut session = self.admin_session("reading domain facts").await?;
        let facts = facts::read_domain_facts(&mut session, gmsa).await;
        session.close().await;
        facts
    }

    #[tracing::instrument(name = "ad.kds_status", skip(self), fields(url = %self.config.url))]
    async fn kds_status(&self) -> Result<KdsStatus, AdError> {
        let mut session = self.admin_session("reading KDS root keys").await?;
        let status = facts::read_kds_status(&mut session).await;
        session.close().await;
        status
    }

    #[tracing::instrument(name = "ad.ensure_user", skip(self), fields(url = %self.config.url, user = %user.name))]
    async fn ensure_user_in(&self, user: &UserSpec, mode: Mode) -> Result<EnsuredUser, AdError> {
        let mut session = self.admin_session("creating a domain user").await?;
        let ensured = accounts::ensure_user(&mut session, user, mode).await;
        session.close().await;
        ensured
    }

    #[tracing::instrument(name = "ad.ensure_gmsa", skip(self), fields(url = %self.config.url, gmsa = %gmsa.name))]
    async fn ensure_gmsa_in(&self, gmsa: &GmsaSpec, mode: Mode) -> Result<StepOutcome, AdError> {
        let mut session = self.admin_session("creating a gMSA").await?;
        let outcome = accounts::ensure_gmsa(&mut session, gmsa, mode).await;
        session.close().await;
        outcome
    }

    #[tracing::instrument(name = "ad.rotate_password", skip_all, fields(url = %self.config.url, user = %user.name, pdc))]
    async fn rotate_password(&self, user: &UserSpec) -> Result<SecretString, AdError> {
        user.validate()?;
        let mut session = self.admin_session("rotating a password").await?;
        // Resets go to the PDC emulator: the configured DC when it holds the role (one DC), else
        // the role owner reached with the same port, CA and credentials.
        let pdc = match pdc::locate(&mut session).await {
            Ok(pdc) => pdc,
            Err(error) => {
                session.close().await;
                return Err(error);
            }
        };
        let pdc_config = match pdc {
            pdc::PdcEmulator::Connected => None,
            pdc::PdcEmulator::Other { host } => {
                session.close().await;
                let config = self.config.for_host(&host)?;
                tracing::Span::current().record("pdc", config.url.as_str());
                session =
                    Session::open(&config, &config.bind_principal, &config.bind_password).await.map_err(|error| {
                        AdError::PdcEmulator {
                            pdc: host.clone(),
                            url: self.config.url.clone(),
                            reason: format!("cannot bind there with the configured port, CA and credentials: {error}"),
                        }
                    })?;
                Some(config)
            }
        };
        let reset_config = pdc_config.as_ref().unwrap_or(&self.config);
        let rotated = accounts::reset_password(&mut session, user).await;
        session.close().await;
        let (user_dn, password) = rotated?;
        // Confirm with a fresh connection bound as the user: proves the new password works.
        match Session::open(reset_config, &user_dn, &password).await {
            Ok(user_session) => user_session.close().await,
            Err(AdError::Bind { source, .. }) => {
                return Err(AdError::RotationNotConfirmed { account: user.name.to_string(), source });
            }
            Err(other) => return Err(other),
        }
        tracing::info!("password rotated and confirmed by bind");
        Ok(password)
    }

    #[tracing::instrument(name = "ad.claim_user", skip_all, fields(url = %self.config.url, user = %user.name))]
    async fn claim_user(&self, user: &UserSpec, mode: Mode) -> Result<StepOutcome, AdError> {
        let mut session = self.admin_session("claiming a domain user").await?;
        let outcome = accounts::claim_user(&mut session, user, mode).await;
        session.close().await;
        outcome
    }

    #[tracing::instrument(name = "ad.delete_gmsa", skip(self), fields(url = %self.config.url, gmsa = %name))]
    async fn delete_gmsa(&self, name: &AccountName, mode: Mode) -> Result<StepOutcome, AdError> {
        let mut session = self.admin_session("deleting a gMSA").await?;
        let sam_account_name = name.machine_account();
        let outcome =
            teardown::delete_account(&mut session, Removable::Gmsa, &sam_account_name, STEP_GMSA_DELETE, mode).await;
        session.close().await;
        outcome
    }

    #[tracing::instrument(name = "ad.delete_user", skip(self), fields(url = %self.config.url, user = %name))]
    async fn delete_user(&self, name: &AccountName, mode: Mode) -> Result<StepOutcome, AdError> {
        let mut session = self.admin_session("deleting a domain user").await?;
        let outcome =
            teardown::delete_account(&mut session, Removable::DomainUser, name.as_str(), STEP_USER_DELETE, mode).await;
        session.close().await;
        outcome
    }
}
