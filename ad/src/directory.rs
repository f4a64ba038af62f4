//! The port through which the agent and coordinator use Active Directory, in domain words.
//! [`crate::ldap::LdapDirectory`] implements it over LDAPS; tests of callers may implement it
//! in memory.

use std::future::Future;

use gmsa::SecretString;
use proto::outcome::{Mode, StepOutcome};

use crate::account::AccountName;
use crate::error::AdError;
use crate::guid::Guid;
use crate::kds::KdsStatus;
use crate::sid::Sid;

/// Step name of [`Directory::ensure_user`] in its [`StepOutcome`].
pub const STEP_DOMAIN_USER: &str = "ad-domain-user";
/// Step name of [`Directory::ensure_gmsa`] in its [`StepOutcome`].
pub const STEP_GMSA: &str = "ad-gmsa";
/// Step name of [`Directory::delete_gmsa`] in its [`StepOutcome`].
pub const STEP_GMSA_DELETE: &str = "gmsa-delete";
/// Step name of [`Directory::delete_user`] in its [`StepOutcome`].
pub const STEP_USER_DELETE: &str = "user-delete";

/// What a credential spec needs to know about the domain and the gMSA
/// (`DomainJoinConfig` and `ActiveDirectoryConfig.GroupManagedServiceAccounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainFacts {
    /// DNS name of the domain (`contoso.test`): `DnsName`, and the gMSA's second scope.
    pub dns_name: String,
    /// NetBIOS name of the domain (`CONTOSO`), from its crossRef in `CN=Partitions`: `NetBiosName`.
    pub netbios_name: String,
    /// DNS name of the forest root domain: `DnsTreeName`.
    pub dns_tree_name: String,
    /// The domain head's `objectGUID`: `Guid`.
    pub domain_guid: Guid,
    /// The domain SID (`S-1-5-21-x-y-z`, no RID): `Sid`.
    pub domain_sid: Sid,
    /// The gMSA's `sAMAccountName` without `$`: `MachineAccountName` and the accounts' `Name`.
    pub gmsa_account_name: String,
    /// The gMSA's own SID (domain SID plus its RID).
    pub gmsa_sid: Sid,
}

/// The standard domain user whose credential the Windows nodes use to retrieve the gMSA password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// `sAMAccountName` (and `cn` under `CN=Users`).
    pub name: AccountName,
}

/// A group managed service account and who may retrieve its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GmsaSpec {
    /// Name without `$` (at most 15 characters); `cn` under `CN=Managed Service Accounts`.
    pub name: AccountName,
    /// `dNSHostName`, e.g. `webgmsa.contoso.test`.
    pub dns_host_name: String,
    /// `msDS-ManagedPasswordInterval` in days; AD fixes it at creation (Windows' default is 30).
    pub password_interval_days: u32,
    /// `sAMAccountName`s of the users, groups or computers allowed to retrieve the password —
    /// exactly these, no others.
    pub allowed_principals: Vec<AccountName>,
}

/// The result of [`Directory::ensure_user`].
#[derive(Debug)]
pub struct EnsuredUser {
    /// `changed` with the created attributes (password redacted), or `unchanged`.
    pub outcome: StepOutcome,
    /// The generated password when the user was created now; `None` when it already existed
    /// (its password is unknown here: rotate it to obtain a new one).
    pub new_password: Option<SecretString>,
}

/// Active Directory as gmsa-fleet uses it: read domain facts, check the KDS root key, create the
/// standard user and the gMSA if absent, keep the gMSA's allowed principals exact, and rotate the
/// user's password. Every write is idempotent: repeating a call with the same spec is `unchanged`.
pub trait Directory {
    /// Reads the facts a credential spec needs, for the gMSA `gmsa` (which must exist).
    fn domain_facts(&self, gmsa: &AccountName) -> impl Future<Output = Result<DomainFacts, AdError>> + Send;

    /// Reports whether a KDS root key exists and is effective. Never creates one.
    fn kds_status(&self) -> impl Future<Output = Result<KdsStatus, AdError>> + Send;

    /// Creates the standard user with a generated password if no account has its name.
    /// Refused over plain LDAP.
    fn ensure_user(&self, user: &UserSpec) -> impl Future<Output = Result<EnsuredUser, AdError>> + Send {
        self.ensure_user_in(user, Mode::Apply)
    }

    /// [`Directory::ensure_user`] in `mode`: a dry run reads only, generates no password and
    /// reports `planned` with the diff creation would make.
    fn ensure_user_in(&self, user: &UserSpec, mode: Mode) -> impl Future<Output = Result<EnsuredUser, AdError>> + Send;

    /// Creates the gMSA if absent, else makes its allowed principals exactly the configured ones
    /// (adding and removing single ACEs) and its `dNSHostName` the configured one.
    fn ensure_gmsa(&self, gmsa: &GmsaSpec) -> impl Future<Output = Result<StepOutcome, AdError>> + Send {
        self.ensure_gmsa_in(gmsa, Mode::Apply)
    }

    /// [`Directory::ensure_gmsa`] in `mode`: a dry run reads and diffs only (`planned`).
    fn ensure_gmsa_in(&self, gmsa: &GmsaSpec, mode: Mode) -> impl Future<Output = Result<StepOutcome, AdError>> + Send;

    /// Sets a new generated password on the standard user, confirms it by binding as the user,
    /// and returns it (in memory only). Refused over plain LDAP, and refused with
    /// [`AdError::WriteRefused`] for a built-in or critical account.
    fn rotate_password(&self, user: &AccountName) -> impl Future<Output = Result<SecretString, AdError>> + Send;

    /// Deletes the gMSA `name` (Remove-GMSA): `unchanged` when no account has its name; refused
    /// with [`AdError::DeleteRefused`] when the account found is not a gMSA. In
    /// [`Mode::DryRun`] nothing is written and the outcome is `planned` with the same diff
    /// (one entry whose path is the DN).
    fn delete_gmsa(&self, name: &AccountName, mode: Mode) -> impl Future<Output = Result<StepOutcome, AdError>> + Send;

    /// Deletes the standard domain user `name` (Remove-GMSADomainUser), on the same terms as
    /// [`Directory::delete_gmsa`]: refused for anything but a plain user (a computer, a gMSA, a
    /// built-in or critical account).
    fn delete_user(&self, name: &AccountName, mode: Mode) -> impl Future<Output = Result<StepOutcome, AdError>> + Send;
}
