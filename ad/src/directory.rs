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

/// Step name of [`Directory::claim_user`] in its [`StepOutcome`].
pub const STEP_USER_CLAIM: &str = "ad-user-claim";

/// The largest `msDS-ManagedPasswordInterval` gmsa-fleet writes, in days.
///
/// The schema gives the attribute no range (Integer syntax, no `rangeUpper`) and a DC accepts
/// any 32-bit value at creation, 0 and negative included (measured on Samba 4.22). But a DC
/// computes the next password change as now plus the interval in 100-ns FILETIME units, and
/// fails beyond that: Samba 4.22 answers `operationsError` for every search asking for
/// `msDS-ManagedPassword` of such a gMSA once now + interval overflows an unsigned 64-bit
/// FILETIME (measured: 21,194,835 days works and 21,194,836 fails, in 2026), and Windows' FILETIME
/// is signed, half that. 10,000,000 days keeps now + interval inside a signed FILETIME until
/// the year 3449; the value is fixed at creation, so a bad one could only be fixed by a new gMSA.
pub const MAX_PASSWORD_INTERVAL_DAYS: u32 = 10_000_000;

/// The standard domain user whose credential the Windows nodes use to retrieve the gMSA password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// `sAMAccountName` (and `cn` under `CN=Users`).
    pub name: AccountName,
    /// The id of the credential (Key Vault secret) this user's password is kept in, e.g.
    /// `<vault>/<secret>`: non-empty printable ASCII. gmsa-fleet marks the accounts it creates
    /// with it and writes passwords only to accounts marked with it ([`crate::guard`]).
    pub credential: String,
}

impl UserSpec {
    /// A spec whose credential id is checked.
    pub fn new(name: AccountName, credential: impl Into<String>) -> Result<UserSpec, AdError> {
        let spec = UserSpec { name, credential: credential.into() };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the credential id (the name is valid by construction). Every operation taking a
    /// spec calls it first, since the fields are public.
    pub fn validate(&self) -> Result<(), AdError> {
        crate::guard::validate_credential(&self.credential)
    }
}

/// Whose the existing account is, as [`Directory::ensure_user`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Created now (or planned, in a dry run), with gmsa-fleet's marker.
    Created,
    /// It existed, marked by gmsa-fleet for this credential.
    Ours,
    /// It existed without a marker (a setup made before markers existed, or not gmsa-fleet's):
    /// nothing was written; [`Directory::claim_user`] marks it when the caller knows it is ours.
    Unmarked,
}

impl Ownership {
    /// Stable name, as diffs and `observed` show it: `created`, `ours`, `unmarked`.
    pub fn code(self) -> &'static str {
        match self {
            Ownership::Created => "created",
            Ownership::Ours => "ours",
            Ownership::Unmarked => "unmarked",
        }
    }
}

/// A group managed service account and who may retrieve its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GmsaSpec {
    /// Name without `$` (at most 15 characters); `cn` under `CN=Managed Service Accounts`.
    pub name: AccountName,
    /// `dNSHostName`, e.g. `webgmsa.contoso.test`.
    pub dns_host_name: String,
    /// `msDS-ManagedPasswordInterval` in days, 1 to [`MAX_PASSWORD_INTERVAL_DAYS`]; AD fixes it
    /// at creation (Windows' default is 30).
    pub password_interval_days: u32,
    /// `sAMAccountName`s of the users, groups or computers allowed to retrieve the password —
    /// exactly these, no others, each once (both rotation users A and B during a rotation).
    pub allowed_principals: Vec<AccountName>,
}

impl GmsaSpec {
    /// Checks the fields AD does not check at creation (or checks only by failing later):
    /// `dns_host_name` is a DNS host name, the interval is in range, no principal is listed
    /// twice. The refusal names the field and the rule. Runs before any LDAP traffic.
    pub fn validate(&self) -> Result<(), AdError> {
        let invalid = |field: &'static str, rule: String| AdError::InvalidSpec { spec: "gMSA", field, rule };
        if let Err(rule) = check_dns_host_name(&self.dns_host_name) {
            return Err(invalid("dns_host_name", format!("'{}' {rule}", self.dns_host_name)));
        }
        if self.password_interval_days == 0 || self.password_interval_days > MAX_PASSWORD_INTERVAL_DAYS {
            return Err(invalid(
                "password_interval_days",
                format!("{} is outside 1..={MAX_PASSWORD_INTERVAL_DAYS}", self.password_interval_days),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for principal in &self.allowed_principals {
            // sAMAccountName compares case-insensitively in AD.
            if !seen.insert(principal.as_str().to_lowercase()) {
                return Err(invalid("allowed_principals", format!("{principal} is listed more than once")));
            }
        }
        Ok(())
    }
}

/// A DNS host name (RFC 1123): 1–253 characters, dot-separated labels of 1–63 letters, digits
/// and hyphens, no label starting or ending with a hyphen, a trailing dot allowed.
fn check_dns_host_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("is empty".to_string());
    }
    if name.len() > 253 {
        return Err(format!("has {} characters, at most 253 are allowed", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("needs labels of 1 to 63 characters between dots".to_string());
        }
        if let Some(character) = label.chars().find(|c| !c.is_ascii_alphanumeric() && *c != '-') {
            return Err(format!("contains {character:?}; a host name has only letters, digits, '-' and '.'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("has a label '{label}' starting or ending with '-'"));
        }
    }
    Ok(())
}

/// The result of [`Directory::ensure_user`].
#[derive(Debug)]
pub struct EnsuredUser {
    /// `changed` with the created attributes (password redacted), or `unchanged`.
    pub outcome: StepOutcome,
    /// The generated password when the user was created now; `None` when it already existed
    /// (its password is unknown here: rotate it to obtain a new one).
    pub new_password: Option<SecretString>,
    /// Created now, already ours, or existing without a marker.
    pub ownership: Ownership,
}

/// Active Directory as gmsa-fleet uses it: read domain facts, check the KDS root key, create the
/// standard user and the gMSA if absent, keep the gMSA's allowed principals exact, and rotate the
/// user's password (only on accounts gmsa-fleet marked as its own). Every write is idempotent: repeating a call with the same spec is `unchanged`.
pub trait Directory {
    /// Reads the facts a credential spec needs, for the gMSA `gmsa` (which must exist).
    fn domain_facts(&self, gmsa: &AccountName) -> impl Future<Output = Result<DomainFacts, AdError>> + Send;

    /// Reports whether a KDS root key exists and is effective. Never creates one.
    fn kds_status(&self) -> impl Future<Output = Result<KdsStatus, AdError>> + Send;

    /// Creates the standard user with a generated password and gmsa-fleet's marker for
    /// `user.credential` if no account has its name. An existing user is reported as
    /// [`Ownership::Ours`] or [`Ownership::Unmarked`] and never written to; one marked for
    /// another credential is refused ([`AdError::WriteRefused`], `other_credential`).
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

    /// Sets a new generated password on the standard user at the PDC emulator, confirms it by
    /// binding as the user, and returns it (in memory only).
    ///
    /// Guarantees: before anything is written, the account passes every guard of
    /// [`crate::guard`] — marked for `user.credential`, a plain user, not built-in, critical,
    /// protected (`adminCount`) or a transitive member of a privileged group — else
    /// [`AdError::WriteRefused`] names the account and the rule. Refused over plain LDAP.
    /// Caveat: with `old password allowed period` above 0 the DC keeps accepting the previous
    /// password over NTLM/LDAP for that many minutes.
    fn rotate_password(&self, user: &UserSpec) -> impl Future<Output = Result<SecretString, AdError>> + Send;

    /// Marks an existing, unmarked plain user as gmsa-fleet's for `user.credential` (adoption of
    /// a setup made before markers existed). Refused with [`AdError::WriteRefused`] for every
    /// guard class of [`Directory::rotate_password`] and for an account marked for another
    /// credential; `unchanged` when already marked for this one; `planned` in a dry run.
    /// Call it only when the secret already holds this user's credential, or when the operator
    /// allowed a reset.
    fn claim_user(&self, user: &UserSpec, mode: Mode) -> impl Future<Output = Result<StepOutcome, AdError>> + Send;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_gmsa(dns_host_name: &str, password_interval_days: u32, principals: &[&str]) -> GmsaSpec {
        GmsaSpec {
            name: AccountName::gmsa("webgmsa").unwrap(),
            dns_host_name: dns_host_name.to_string(),
            password_interval_days,
            allowed_principals: principals.iter().map(|name| AccountName::new(*name).unwrap()).collect(),
        }
    }

    fn refused_field(spec: &GmsaSpec) -> &'static str {
        match spec.validate() {
            Err(AdError::InvalidSpec { spec: "gMSA", field, .. }) => field,
            other => panic!("expected an InvalidSpec, got {other:?}"),
        }
    }

    #[test]
    fn a_gmsa_spec_with_two_rotation_users_is_valid() {
        mk_gmsa("webgmsa.contoso.test", 30, &["gmsa-a", "gmsa-b"]).validate().unwrap();
        mk_gmsa("WEBGMSA.contoso.test.", 1, &["gmsa-a"]).validate().unwrap();
        mk_gmsa("web-1.contoso.test", MAX_PASSWORD_INTERVAL_DAYS, &[]).validate().unwrap();
    }

    #[test]
    fn each_gmsa_field_rule_is_named() {
        for host in ["", ".", "web gmsa.contoso.test", "web_gmsa.contoso.test", "-web.contoso.test", "web..test"] {
            assert_eq!(refused_field(&mk_gmsa(host, 30, &["a"])), "dns_host_name", "{host:?}");
        }
        assert_eq!(refused_field(&mk_gmsa(&format!("{}.test", "a".repeat(64)), 30, &["a"])), "dns_host_name");
        for days in [0, MAX_PASSWORD_INTERVAL_DAYS + 1, u32::MAX] {
            assert_eq!(refused_field(&mk_gmsa("web.contoso.test", days, &["a"])), "password_interval_days");
        }
        let duplicate = mk_gmsa("web.contoso.test", 30, &["gmsa-a", "gmsa-b", "GMSA-A"]);
        assert_eq!(refused_field(&duplicate), "allowed_principals");
        assert!(duplicate.validate().unwrap_err().to_string().contains("GMSA-A is listed more than once"));
    }

    #[test]
    fn user_specs_check_their_credential() {
        let name = AccountName::new("gmsa-a").unwrap();
        assert!(UserSpec::new(name.clone(), "kv/secret").is_ok());
        assert!(matches!(UserSpec::new(name, ""), Err(AdError::InvalidSpec { field: "credential", .. })));
    }
}
