//! The rollout file of issue 16: one desired gMSA state for a fleet ([`GmsaSetup`]), per-cluster
//! [`Override`]s picked by label selector, and the [`Strategy`] that rolls it out in staged waves
//! behind safety gates.
//!
//! ```text
//!  RolloutFile ── validate (here: field rules; gmsa::rollout: selector and cron syntax)
//!      │
//!      └── gmsa::rollout::plan(file, inventory) ──► frozen membership ──► RolloutState (engine)
//! ```
//!
//! These types are read from an operator's file and stored with the rollout, so they are tolerant
//! like every wire type (no `deny_unknown_fields`); fleetctl decodes operator files strictly with
//! its own generic decoder. To keep that decoder able to see every field, the types defined here
//! use plain structs and string- or number-valued enums only: no `#[serde(flatten)]`, no
//! internally tagged enums. (The reused [`IdentityChoice`] is internally tagged on `type`; it is a
//! command type of schema 1.0 and is not changed here.)
//!
//! Validation names the field path and the rule, e.g. `strategy.stages[1].max_concurrency: must be
//! at least 1`. Selector and cron syntax are checked by `gmsa::rollout::validate`, because their
//! parsers live in the pure core; membership checks (overlapping stages, a cluster no stage picks,
//! an override that breaks a cluster's setup) need an inventory and happen when planning.

use crate::command::{
    IdentityChoice, ServiceAccountRef, ValidationError, VaultRef, default_secret_name, is_dns_name, is_secret_name,
};
use crate::control::check_deadline_secs;
use crate::version::SchemaVersion;
use serde::{Deserialize, Serialize};
use std::fmt;

/// ARM's documented write budget per subscription (and region, and principal): a bucket of 200
/// tokens refilled at 10 per second. A rollout may not ask for more.
pub const ARM_WRITE_BURST: u32 = 200;
/// See [`ARM_WRITE_BURST`].
pub const ARM_WRITES_PER_SEC: u32 = 10;
/// The longest maintenance window: a week. A longer one is the same as no window.
pub const MAX_WINDOW_SECS: u64 = 7 * 24 * 3600;
/// The longest Retry-After the engine honours from one 429, so a bogus header cannot stall a
/// rollout for days.
pub const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// A whole rollout file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutFile {
    /// Schema version of the file (`"1.0"`); a different major is refused.
    #[serde(default)]
    pub schema: SchemaVersion,
    /// A name for people (`gmsa-prod-2026-11`); the rollout id is assigned by the coordinator.
    pub name: String,
    /// Which clusters of the inventory the rollout covers (a label selector; empty: all). Every
    /// cluster it covers must fall into a stage.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// The desired state every cluster gets, before overrides.
    pub setup: GmsaSetup,
    /// Per-cluster changes to `setup`, in order: every override whose selector matches a cluster
    /// applies, a later one winning over an earlier one for the same field.
    #[serde(default)]
    pub overrides: Vec<Override>,
    pub strategy: Strategy,
}

/// The desired gMSA state of a cluster: everything the setup commands (`enable-gmsa`,
/// `grant-identity`, `apply-credspec`, `validate-credspec`, `verify`) need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GmsaSetup {
    /// `enable-gmsa`'s DNS server (IPv4); given together with `root_domain` or not at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_server: Option<String>,
    /// `enable-gmsa`'s AD root domain name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_domain: Option<String>,
    /// The vault holding the domain-user secret.
    pub vault: VaultRef,
    /// Name of the secret holding `DOMAIN\user:password`.
    #[serde(default = "default_secret_name")]
    pub secret_name: String,
    /// Which identity is granted `get` on the secret.
    pub identity: IdentityChoice,
    /// What `apply-credspec` installs.
    pub credspec: CredspecInputs,
    /// Run `validate-credspec` after `apply-credspec`.
    #[serde(default = "yes")]
    pub validate: bool,
    /// Run `verify` (the sample workload) last. Slow: minutes per cluster.
    #[serde(default)]
    pub run_workload: bool,
    /// What the coordinator creates centrally before the first stage (stage 0): the vault if it
    /// is missing, the standard domain user and its secret, the gMSA. Absent: the rollout needs
    /// no central writes (the vault, secret and gMSA exist and `credspec` carries the AD facts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub central: Option<CentralSetup>,
}

/// Stage 0 of a rollout, run by the coordinator's `central` side (never by agents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CentralSetup {
    /// `sAMAccountName` of the standard domain user allowed to retrieve the gMSA's password; its
    /// credential (`DOMAIN\user:password`) is what `secret_name` holds.
    pub domain_user: String,
    /// The second standard user (B) a credential rotation alternates with `domain_user` (A):
    /// Key Vault names one, the other is idle and is the one reset. Absent: `<domain_user>-b`.
    /// Both are created by stage 0 and both may retrieve the gMSA's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_user: Option<String>,
    /// `dNSHostName` of the gMSA; absent: `<gmsa_account>.<the domain's DNS name>`, lowercase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gmsa_dns_host_name: Option<String>,
    /// `msDS-ManagedPasswordInterval` of a gMSA created now, in days (AD fixes it at creation).
    #[serde(default = "thirty")]
    pub gmsa_password_interval_days: u32,
    /// Create `vault` when it does not exist (access-policy model, the coordinator may write
    /// secrets). Absent: a missing vault is an error. An existing vault is never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_create: Option<VaultCreate>,
    /// When the domain user exists and the secret does not hold its credential (missing, or a
    /// crash between creating the user and writing the secret), reset the user's password and
    /// write the secret. Without it that case is refused (`existing_user_without_secret`): the
    /// coordinator never resets the password of a user it did not just create unless told.
    #[serde(default)]
    pub reset_existing_user_password: bool,
}

/// Where a missing vault is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultCreate {
    /// Azure region (`westeurope`); the resource group must exist.
    pub location: String,
}

fn thirty() -> u32 {
    30
}

fn yes() -> bool {
    true
}

/// The operator's part of `apply-credspec`. The Active Directory facts are optional: the
/// coordinator reads them from AD once, centrally, before the first stage, and fills what is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredspecInputs {
    /// `metadata.name` of the GMSACredentialSpec.
    pub spec_name: String,
    /// The gMSA's account name, without `$`.
    pub gmsa_account: String,
    /// Stable identity of the credspec across renames (see `ApplyCredspec::owner`).
    #[serde(default = "default_owner")]
    pub owner: String,
    /// Service accounts bound to the credspec's ClusterRole.
    #[serde(default)]
    pub bindings: Vec<ServiceAccountRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netbios_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_tree_root: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_sid: Option<String>,
}

fn default_owner() -> String {
    "default".to_string()
}

/// Changes to [`GmsaSetup`] for the clusters a selector picks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// A Kubernetes-style label selector (`region=westeurope`); empty picks every cluster.
    pub selector: String,
    pub set: OverrideSet,
}

/// The fields an override may set; `None` leaves the field as it was.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OverrideSet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityChoice>,
}

/// How the setup reaches the fleet: stages in order, an ARM write budget, maintenance windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strategy {
    pub stages: Vec<Stage>,
    /// Per-subscription ARM write budget of this rollout.
    #[serde(default)]
    pub arm_budget: ArmBudget,
    /// A cluster matched by one or more windows starts only inside one of them; a cluster matched
    /// by none may start at any time.
    #[serde(default)]
    pub maintenance_windows: Vec<MaintenanceWindow>,
}

/// One stage (wave) of a rollout.
///
/// Membership: a stage with a `selector` and neither `count` nor `percent` takes every cluster the
/// selector matches (selector stages must not overlap). A stage with `count` or `percent` takes
/// that many of the clusters no earlier stage took and no selector stage claims, restricted to its
/// `selector` if it has one. A stage with none of the three takes all the clusters left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// Unique within the strategy; approvals and status name stages by it.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Take this many clusters (a canary is `count: 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Take this percentage of the clusters left (rounded up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// Clusters of this stage in progress at once (a percentage of the stage, rounded up).
    #[serde(default = "one")]
    pub max_concurrency: Amount,
    /// Failed or timed-out clusters this stage tolerates (a percentage of the stage, rounded
    /// down); one more halts the rollout.
    #[serde(default)]
    pub failure_budget: Amount,
    /// After the stage's last cluster finishes, wait this long before the next stage.
    #[serde(default)]
    pub soak_secs: u64,
    /// An operator approves before the stage starts.
    #[serde(default)]
    pub approval_before: bool,
    /// An operator approves after the stage finished and soaked, before the next one.
    #[serde(default)]
    pub approval_after: bool,
    /// Progress deadline: each step of a cluster must finish within this many seconds of being
    /// sent, or the cluster is `timed_out` (a failure).
    #[serde(default = "default_cluster_deadline")]
    pub cluster_deadline_secs: u64,
}

fn one() -> Amount {
    Amount::Count(1)
}

fn default_cluster_deadline() -> u64 {
    3600
}

/// A token bucket per subscription for ARM-writing steps (`enable-gmsa`, `grant-identity`).
///
/// The default is a quarter of ARM's burst and a fifth of its rate ([`ARM_WRITE_BURST`],
/// [`ARM_WRITES_PER_SEC`]): the subscription's other writers share the same bucket at ARM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmBudget {
    #[serde(default = "default_burst")]
    pub burst: u32,
    #[serde(default = "default_per_sec")]
    pub per_sec: u32,
}

fn default_burst() -> u32 {
    50
}

fn default_per_sec() -> u32 {
    2
}

impl Default for ArmBudget {
    fn default() -> Self {
        ArmBudget { burst: default_burst(), per_sec: default_per_sec() }
    }
}

/// When the clusters a selector picks may start: a 5-field cron (`min hour dom month dow`, UTC)
/// opens the window, which lasts `duration_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    pub selector: String,
    pub cron: String,
    pub duration_secs: u64,
}

/// A count (`3`) or a percentage (`"25%"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Amount {
    Count(u32),
    Percent(u32),
}

impl Default for Amount {
    fn default() -> Self {
        Amount::Count(0)
    }
}

impl Amount {
    /// This amount of `total`, a percentage rounded up (for concurrency and stage sizes).
    pub fn of_ceil(self, total: usize) -> usize {
        match self {
            Amount::Count(count) => count as usize,
            Amount::Percent(percent) => (total * percent as usize).div_ceil(100),
        }
    }

    /// This amount of `total`, a percentage rounded down (for failure budgets: 10 % of 5 is 0).
    pub fn of_floor(self, total: usize) -> usize {
        match self {
            Amount::Count(count) => count as usize,
            Amount::Percent(percent) => total * percent as usize / 100,
        }
    }

    fn check_percent(self, field: &str) -> Result<(), ValidationError> {
        match self {
            Amount::Percent(percent) if percent > 100 => {
                Err(ValidationError::new(field, format!("must be at most 100%, got {percent}%")))
            }
            _ => Ok(()),
        }
    }

    fn check_positive(self, field: &str) -> Result<(), ValidationError> {
        self.check_percent(field)?;
        match self {
            Amount::Count(0) | Amount::Percent(0) => Err(ValidationError::new(field, "must be at least 1")),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Count(count) => write!(f, "{count}"),
            Amount::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

impl std::str::FromStr for Amount {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bad = || format!("{text:?} is neither a count (3) nor a percentage (\"25%\")");
        match text.strip_suffix('%') {
            Some(percent) => percent.trim().parse().map(Amount::Percent).map_err(|_| bad()),
            None => text.parse().map(Amount::Count).map_err(|_| bad()),
        }
    }
}

impl Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Amount::Count(count) => serializer.serialize_u32(*count),
            Amount::Percent(_) => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;
        impl serde::de::Visitor<'_> for AmountVisitor {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count (3) or a percentage (\"25%\")")
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Amount, E> {
                u32::try_from(value).map(Amount::Count).map_err(|_| E::custom(format!("{value} is too large")))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Amount, E> {
                u64::try_from(value)
                    .map_err(|_| E::custom(format!("{value} is negative")))
                    .and_then(|value| self.visit_u64(value))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Amount, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(AmountVisitor)
    }
}

impl RolloutFile {
    /// Every field rule of the file that needs no parser from `gmsa` and no inventory.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.schema.check_supported().map_err(|err| ValidationError::new("schema", err.to_string()))?;
        if self.name.trim().is_empty() {
            return Err(ValidationError::new("name", "must not be empty"));
        }
        self.setup.validate_with(&|field| format!("setup.{field}"))?;
        self.validate_overrides()?;
        self.strategy.validate()
    }

    /// Each override's values on their own (whether a value fits a cluster's setup is checked per
    /// cluster when planning).
    pub fn validate_overrides(&self) -> Result<(), ValidationError> {
        for (index, entry) in self.overrides.iter().enumerate() {
            entry.set.validate(&format!("overrides[{index}].set"))?;
        }
        Ok(())
    }
}

impl OverrideSet {
    /// The values this override sets, each on its own; `prefix` is its path (`overrides[2].set`).
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationError> {
        if let Some(dns_server) = &self.dns_server {
            check_dns_server(&format!("{prefix}.dns_server"), dns_server)?;
        }
        if let Some(root_domain) = &self.root_domain {
            check_root_domain(&format!("{prefix}.root_domain"), root_domain)?;
        }
        if let Some(vault) = &self.vault {
            vault.validate(&format!("{prefix}.vault"))?;
        }
        if let Some(secret_name) = &self.secret_name {
            check_secret_name(&format!("{prefix}.secret_name"), secret_name)?;
        }
        if let Some(identity) = &self.identity {
            identity.validate(&format!("{prefix}.identity"))?;
        }
        Ok(())
    }
}

fn check_dns_server(field: &str, dns_server: &str) -> Result<(), ValidationError> {
    match dns_server.parse::<std::net::Ipv4Addr>() {
        Ok(_) => Ok(()),
        Err(_) => Err(ValidationError::new(field, format!("not an IPv4 address ({dns_server:?})"))),
    }
}

fn check_root_domain(field: &str, root_domain: &str) -> Result<(), ValidationError> {
    if is_dns_name(root_domain) {
        Ok(())
    } else {
        Err(ValidationError::new(field, format!("{root_domain:?} is not a DNS name with at least two labels")))
    }
}

fn check_secret_name(field: &str, secret_name: &str) -> Result<(), ValidationError> {
    if is_secret_name(secret_name) {
        Ok(())
    } else {
        Err(ValidationError::new(field, "must be 1-127 letters, digits and '-'"))
    }
}

impl GmsaSetup {
    /// Checks every field; `origin` names where a field's value came from (`setup.dns_server`, or
    /// `overrides[2].set.dns_server` for a cluster's effective setup), so the error points at the
    /// line the operator has to change.
    pub fn validate_with(&self, origin: &dyn Fn(&str) -> String) -> Result<(), ValidationError> {
        match (&self.dns_server, &self.root_domain) {
            (None, None) => {}
            (Some(dns_server), Some(root_domain)) => {
                check_dns_server(&origin("dns_server"), dns_server)?;
                check_root_domain(&origin("root_domain"), root_domain)?;
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(ValidationError::new(
                    format!("{}, {}", origin("dns_server"), origin("root_domain")),
                    "must be given together or not at all",
                ));
            }
        }
        self.vault.validate(&origin("vault"))?;
        check_secret_name(&origin("secret_name"), &self.secret_name)?;
        self.identity.validate(&origin("identity"))?;
        let credspec = &self.credspec;
        for (field, value) in [
            ("credspec.spec_name", &credspec.spec_name),
            ("credspec.gmsa_account", &credspec.gmsa_account),
            ("credspec.owner", &credspec.owner),
        ] {
            if value.trim().is_empty() {
                return Err(ValidationError::new(origin(field), "must not be empty"));
            }
        }
        for (field, value) in [
            ("credspec.netbios_domain", &credspec.netbios_domain),
            ("credspec.dns_domain", &credspec.dns_domain),
            ("credspec.dns_tree_root", &credspec.dns_tree_root),
            ("credspec.domain_guid", &credspec.domain_guid),
            ("credspec.domain_sid", &credspec.domain_sid),
        ] {
            if value.as_ref().is_some_and(|value| value.trim().is_empty()) {
                return Err(ValidationError::new(origin(field), "must not be empty when given"));
            }
        }
        if let Some(central) = &self.central {
            central.validate(&|field| origin(&format!("central.{field}")))?;
        }
        for (index, binding) in credspec.bindings.iter().enumerate() {
            if binding.namespace.is_empty() || binding.name.is_empty() {
                return Err(ValidationError::new(
                    origin(&format!("credspec.bindings[{index}]")),
                    "needs a namespace and a name",
                ));
            }
        }
        Ok(())
    }

    /// This setup with `set`'s values in place of its own.
    pub fn with(&self, set: &OverrideSet) -> GmsaSetup {
        let mut setup = self.clone();
        if let Some(dns_server) = &set.dns_server {
            setup.dns_server = Some(dns_server.clone());
        }
        if let Some(root_domain) = &set.root_domain {
            setup.root_domain = Some(root_domain.clone());
        }
        if let Some(vault) = &set.vault {
            setup.vault = vault.clone();
        }
        if let Some(secret_name) = &set.secret_name {
            setup.secret_name = secret_name.clone();
        }
        if let Some(identity) = &set.identity {
            setup.identity = identity.clone();
        }
        setup
    }
}

fn check_account_name(field: &str, name: &str) -> Result<(), ValidationError> {
    let user = name.trim();
    if user.is_empty() || user.chars().count() > 20 {
        return Err(ValidationError::new(field, "must be 1-20 characters (sAMAccountName)"));
    }
    if let Some(bad) = user.chars().find(|c| "\"/\\[]:;|=,+*?<>@".contains(*c) || c.is_control()) {
        return Err(ValidationError::new(field, format!("must not contain {bad:?}")));
    }
    Ok(())
}

impl CentralSetup {
    /// The two users a rotation alternates: `domain_user` (A) and the standby (B).
    pub fn users(&self) -> [String; 2] {
        let a = self.domain_user.trim().to_string();
        let b = self.standby_user.as_deref().map_or_else(|| format!("{a}-b"), |b| b.trim().to_string());
        [a, b]
    }

    /// Field rules; account-name syntax is checked again by the `ad` crate before any LDAP call.
    pub fn validate(&self, origin: &dyn Fn(&str) -> String) -> Result<(), ValidationError> {
        check_account_name(&origin("domain_user"), &self.domain_user)?;
        if self.standby_user.is_none() && self.domain_user.trim().chars().count() > 18 {
            return Err(ValidationError::new(
                origin("standby_user"),
                format!(
                    "the default <domain_user>-b would be longer than 20 characters ({}-b); name the second user",
                    self.domain_user.trim()
                ),
            ));
        }
        if let Some(standby) = &self.standby_user {
            check_account_name(&origin("standby_user"), standby)?;
            if standby.trim().eq_ignore_ascii_case(self.domain_user.trim()) {
                return Err(ValidationError::new(origin("standby_user"), "must differ from domain_user"));
            }
        }
        if let Some(host) = &self.gmsa_dns_host_name
            && !is_dns_name(host)
        {
            return Err(ValidationError::new(
                origin("gmsa_dns_host_name"),
                format!("{host:?} is not a DNS name with at least two labels"),
            ));
        }
        if !(1..=3650).contains(&self.gmsa_password_interval_days) {
            return Err(ValidationError::new(
                origin("gmsa_password_interval_days"),
                format!("must be 1-3650, got {}", self.gmsa_password_interval_days),
            ));
        }
        if let Some(create) = &self.vault_create
            && (create.location.trim().is_empty() || !create.location.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(ValidationError::new(
                origin("vault_create.location"),
                "must be an Azure region name (westeurope)",
            ));
        }
        Ok(())
    }
}

impl Strategy {
    /// Stage, budget and window rules (selector and cron syntax: `gmsa::rollout::validate`).
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.stages.is_empty() {
            return Err(ValidationError::new("strategy.stages", "must have at least one stage"));
        }
        for (index, stage) in self.stages.iter().enumerate() {
            let at = format!("strategy.stages[{index}]");
            if stage.name.trim().is_empty() {
                return Err(ValidationError::new(format!("{at}.name"), "must not be empty"));
            }
            if let Some(first) = self.stages[..index].iter().position(|other| other.name == stage.name) {
                return Err(ValidationError::new(
                    format!("{at}.name"),
                    format!("{:?} is already the name of strategy.stages[{first}]", stage.name),
                ));
            }
            if stage.count.is_some() && stage.percent.is_some() {
                return Err(ValidationError::new(format!("{at}.count, {at}.percent"), "give one or the other"));
            }
            if stage.count == Some(0) {
                return Err(ValidationError::new(format!("{at}.count"), "must be at least 1"));
            }
            if let Some(percent) = stage.percent
                && !(1..=100).contains(&percent)
            {
                return Err(ValidationError::new(format!("{at}.percent"), format!("must be 1-100, got {percent}")));
            }
            stage.max_concurrency.check_positive(&format!("{at}.max_concurrency"))?;
            stage.failure_budget.check_percent(&format!("{at}.failure_budget"))?;
            check_deadline_secs(&format!("{at}.cluster_deadline_secs"), stage.cluster_deadline_secs)?;
            if stage.soak_secs > crate::control::MAX_DEADLINE_SECS {
                return Err(ValidationError::new(format!("{at}.soak_secs"), "must be at most 30 days"));
            }
        }
        let budget = self.arm_budget;
        if !(1..=ARM_WRITE_BURST).contains(&budget.burst) {
            return Err(ValidationError::new(
                "strategy.arm_budget.burst",
                format!("must be 1-{ARM_WRITE_BURST} (ARM's own burst), got {}", budget.burst),
            ));
        }
        if !(1..=ARM_WRITES_PER_SEC).contains(&budget.per_sec) {
            return Err(ValidationError::new(
                "strategy.arm_budget.per_sec",
                format!("must be 1-{ARM_WRITES_PER_SEC} (ARM's own rate), got {}", budget.per_sec),
            ));
        }
        for (index, window) in self.maintenance_windows.iter().enumerate() {
            if !(1..=MAX_WINDOW_SECS).contains(&window.duration_secs) {
                return Err(ValidationError::new(
                    format!("strategy.maintenance_windows[{index}].duration_secs"),
                    format!("must be 1-{MAX_WINDOW_SECS} (7 days), got {}", window.duration_secs),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
