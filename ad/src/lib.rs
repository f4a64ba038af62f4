//! The Active Directory adapter of gmsa-fleet: every AD step of Microsoft's gMSA-on-AKS
//! PowerShell module, done over LDAPS with ldap3.
//!
//! ```text
//!   agent / coordinator ──► Directory (trait, directory.rs)
//!                               │  LdapDirectory (ldap/): LDAPS or StartTLS, verified TLS, simple bind
//!                               ▼
//!                         domain controller
//!   in:  LdapConfig (URL, admin UPN + SecretString, CA bundle, timeouts), UserSpec (name +
//!        credential id), GmsaSpec
//!   out: DomainFacts (for the credspec), KdsStatus, StepOutcome (changed/unchanged + diff),
//!        SecretString (a new user password, in memory only), ManagedPassword (what an allowed
//!        principal reads, as CCG does)
//! ```
//!
//! Every write to an existing account passes the guards of [`guard`] first: gmsa-fleet marks
//! the users it creates (`adminDescription`) and resets only those, never a built-in, critical,
//! protected or privileged account.
//!
//! The binary formats AD uses — SIDs, GUIDs, the gMSA membership security descriptor,
//! `unicodePwd` — and the escaping of filter and DN values are pure modules with unit tests; the
//! LDAP module only moves bytes. Passwords are [`gmsa::SecretString`] throughout and appear in
//! no log, error or diff (diffs show `"<redacted>"`).

pub mod account;
pub mod directory;
pub mod error;
pub mod escape;
pub mod guard;
pub mod guid;
pub mod kds;
pub mod ldap;
pub mod managed_password;
pub mod password;
pub mod policy;
pub mod reachability;
pub mod removal;
pub mod security_descriptor;
pub mod sid;

pub use account::AccountName;
pub use directory::{
    Directory, DomainFacts, EnsuredUser, GmsaSpec, MAX_PASSWORD_INTERVAL_DAYS, Ownership, STEP_DOMAIN_USER, STEP_GMSA,
    STEP_GMSA_DELETE, STEP_USER_CLAIM, STEP_USER_DELETE, UserSpec,
};
pub use error::AdError;
pub use guard::WriteRule;
pub use guid::Guid;
pub use kds::KdsStatus;
pub use ldap::{LdapConfig, LdapDirectory, LdapSection, read_managed_password};
pub use managed_password::ManagedPassword;
pub use sid::Sid;
