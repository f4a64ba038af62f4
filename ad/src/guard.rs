//! Which existing accounts gmsa-fleet may write to — a password reset or a claim — decided
//! from what the directory reported about the account, before anything is written.
//!
//! gmsa-fleet finds the standard user by `sAMAccountName`, so a name in an operator's file must
//! never turn into a reset of somebody else's account. Every write to an existing user therefore
//! passes these guards, in this order (the first that fails is the refusal's rule):
//!
//! 1. the object is a plain user (not a computer or a gMSA) — [`WriteRule::WrongClass`];
//! 2. it is not Administrator (RID 500), Guest (501) or krbtgt (502), by RID or by name —
//!    [`WriteRule::BuiltInAccount`];
//! 3. `isCriticalSystemObject` is not TRUE — [`WriteRule::CriticalSystemObject`];
//! 4. its RID is at least 1000 — [`WriteRule::LowRid`];
//! 5. `adminCount` is not 1 (AdminSDHolder protects it) — [`WriteRule::AdminCount`];
//! 6. none of its groups, transitively (`tokenGroups`), is privileged: the well-known RIDs and
//!    SIDs in [`PRIVILEGED_DOMAIN_RIDS`] and [`PRIVILEGED_BUILTIN_RIDS`], never names, which an
//!    administrator can change — [`WriteRule::PrivilegedGroup`];
//! 7. the marker: a reset needs the account marked for the same credential
//!    ([`WriteRule::NotMarked`], [`WriteRule::OtherCredential`]); a claim needs it unmarked or
//!    already marked for that credential.
//!
//! The marker is `adminDescription: gmsa-fleet credential=<credential>` ([`MARKER_ATTRIBUTE`]):
//! a single-valued string of up to 1,024 characters that only administrators see and that no
//! Windows component interprets, so writing it changes nothing but ownership.

use std::fmt;

use crate::error::AdError;
use crate::sid::Sid;

/// The attribute that carries the ownership marker.
pub const MARKER_ATTRIBUTE: &str = "adminDescription";
/// The marker's value before the credential id.
const MARKER_PREFIX: &str = "gmsa-fleet credential=";
/// `adminDescription` holds at most 1,024 characters (its schema `rangeUpper`).
const MAX_CREDENTIAL_LEN: usize = 1024 - MARKER_PREFIX.len();
/// Built-in accounts and groups have well-known RIDs below this; accounts created later start here.
const FIRST_ORDINARY_RID: u32 = 1000;

/// Administrator, Guest, krbtgt: never written to, whatever else holds.
const BUILT_IN_ACCOUNTS: &[(u32, &str)] = &[(500, "Administrator"), (501, "Guest"), (502, "krbtgt")];

/// Domain-relative RIDs of privileged groups: Enterprise Read-only Domain Controllers (498),
/// Domain Admins (512), Domain Controllers (516), Schema Admins (518), Enterprise Admins (519),
/// Group Policy Creator Owners (520), Read-only Domain Controllers (521). Matched under any
/// domain SID (Enterprise and Schema Admins live in the forest root domain).
pub const PRIVILEGED_DOMAIN_RIDS: &[u32] = &[498, 512, 516, 518, 519, 520, 521];
/// RIDs under `S-1-5-32` (BUILTIN): Administrators (544), Account Operators (548), Server
/// Operators (549), Print Operators (550), Backup Operators (551).
pub const PRIVILEGED_BUILTIN_RIDS: &[u32] = &[544, 548, 549, 550, 551];

/// The guard that refused a write; [`WriteRule::code`] is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteRule {
    /// Not a plain user object (a computer, a gMSA, a group, …).
    WrongClass,
    /// Administrator, Guest or krbtgt.
    BuiltInAccount,
    /// `isCriticalSystemObject` is TRUE.
    CriticalSystemObject,
    /// RID below 1000.
    LowRid,
    /// `adminCount` is 1.
    AdminCount,
    /// A (transitive) member of a privileged group.
    PrivilegedGroup,
    /// gmsa-fleet's marker is absent.
    NotMarked,
    /// The marker names another credential.
    OtherCredential,
}

impl WriteRule {
    /// Stable code of the rule (`not_marked`, `privileged_group`, …).
    pub fn code(self) -> &'static str {
        match self {
            WriteRule::WrongClass => "wrong_class",
            WriteRule::BuiltInAccount => "built_in_account",
            WriteRule::CriticalSystemObject => "critical_system_object",
            WriteRule::LowRid => "low_rid",
            WriteRule::AdminCount => "admin_count",
            WriteRule::PrivilegedGroup => "privileged_group",
            WriteRule::NotMarked => "not_marked",
            WriteRule::OtherCredential => "other_credential",
        }
    }

    /// The rule as an operator reads it.
    fn sentence(self) -> &'static str {
        match self {
            WriteRule::WrongClass => "gmsa-fleet writes only to plain user objects",
            WriteRule::BuiltInAccount => "gmsa-fleet never writes to Administrator, Guest or krbtgt",
            WriteRule::CriticalSystemObject => "gmsa-fleet never writes to an object marked isCriticalSystemObject",
            WriteRule::LowRid => "gmsa-fleet never writes to a built-in account (RID below 1000)",
            WriteRule::AdminCount => {
                "gmsa-fleet never writes to an account with adminCount=1 (protected by AdminSDHolder)"
            }
            WriteRule::PrivilegedGroup => "gmsa-fleet never writes to a member of a privileged group",
            WriteRule::NotMarked => "gmsa-fleet resets only accounts it marked as its own",
            WriteRule::OtherCredential => "the account is marked for another credential",
        }
    }
}

impl fmt::Display for WriteRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.sentence(), self.code())
    }
}

/// What the write needs from the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerRule<'a> {
    /// A password reset: marked for exactly this credential.
    MarkedFor(&'a str),
    /// A claim: unmarked, or already marked for this credential.
    UnmarkedOrFor(&'a str),
}

/// What the directory reported about the account a write would touch.
#[derive(Debug, Clone, Copy)]
pub struct AccountFacts<'a> {
    /// Its distinguished name.
    pub dn: &'a str,
    /// Its `sAMAccountName`.
    pub sam_account_name: &'a str,
    /// All values of `objectClass`.
    pub object_classes: &'a [&'a str],
    /// Its `objectSid`.
    pub sid: &'a Sid,
    /// `isCriticalSystemObject` is TRUE.
    pub critical: bool,
    /// `adminCount` is 1.
    pub admin_count: bool,
    /// Its `tokenGroups`: every group it is a member of, transitively, primary group included.
    pub groups: &'a [Sid],
    /// The value of [`MARKER_ATTRIBUTE`], if any.
    pub marker: Option<&'a str>,
}

/// Checks a credential id (`<vault>/<secret>`): non-empty printable ASCII that fits the marker.
pub fn validate_credential(credential: &str) -> Result<(), AdError> {
    let invalid = |rule: &str| AdError::InvalidSpec { spec: "user", field: "credential", rule: rule.to_string() };
    if credential.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if let Some(position) = credential.bytes().position(|byte| !(0x20..=0x7e).contains(&byte)) {
        return Err(invalid(&format!("must be printable ASCII; byte {position} is not")));
    }
    if credential.len() > MAX_CREDENTIAL_LEN {
        return Err(invalid(&format!("at most {MAX_CREDENTIAL_LEN} characters (it has {})", credential.len())));
    }
    Ok(())
}

/// The marker value for `credential`.
pub fn marker_value(credential: &str) -> String {
    format!("{MARKER_PREFIX}{credential}")
}

/// The credential a marker value names; `None` for a value gmsa-fleet did not write.
pub fn marked_credential(value: &str) -> Option<&str> {
    value.strip_prefix(MARKER_PREFIX)
}

/// True when `sid` is a privileged group's well-known SID.
pub fn is_privileged_group(sid: &Sid) -> bool {
    let Some(rid) = sid.rid() else {
        return false;
    };
    let in_domain = sid.parent().is_some_and(|parent| parent.is_domain_sid());
    let in_builtin = sid.to_string() == format!("S-1-5-32-{rid}");
    (in_domain && PRIVILEGED_DOMAIN_RIDS.contains(&rid)) || (in_builtin && PRIVILEGED_BUILTIN_RIDS.contains(&rid))
}

/// Decides whether `operation` may write to the account; the error names the account, its DN
/// and the rule.
pub fn check_write(
    operation: &'static str,
    facts: &AccountFacts<'_>,
    marker_rule: MarkerRule<'_>,
) -> Result<(), AdError> {
    let refuse = |rule: WriteRule, detail: String| {
        Err(AdError::WriteRefused {
            operation,
            account: facts.sam_account_name.to_string(),
            dn: facts.dn.to_string(),
            rule,
            detail,
        })
    };
    let has = |class: &str| facts.object_classes.iter().any(|value| value.eq_ignore_ascii_case(class));
    if !has("user") || has("computer") {
        let actual = facts.object_classes.last().copied().unwrap_or("object without objectClass");
        return refuse(WriteRule::WrongClass, format!("this one is a {actual}"));
    }
    let rid = facts.sid.rid().unwrap_or(0);
    let is_domain_account = facts.sid.parent().is_some_and(|parent| parent.is_domain_sid());
    if let Some((_, name)) = BUILT_IN_ACCOUNTS.iter().find(|(built_in_rid, name)| {
        (is_domain_account && *built_in_rid == rid) || name.eq_ignore_ascii_case(facts.sam_account_name)
    }) {
        return refuse(WriteRule::BuiltInAccount, format!("this is {name} (RID {rid})"));
    }
    if facts.critical {
        return refuse(WriteRule::CriticalSystemObject, "isCriticalSystemObject is TRUE".to_string());
    }
    if rid < FIRST_ORDINARY_RID {
        return refuse(WriteRule::LowRid, format!("RID {rid} is below {FIRST_ORDINARY_RID}"));
    }
    if facts.admin_count {
        return refuse(WriteRule::AdminCount, "adminCount is 1".to_string());
    }
    if let Some(group) = facts.groups.iter().find(|group| is_privileged_group(group)) {
        return refuse(WriteRule::PrivilegedGroup, format!("tokenGroups contains {group}"));
    }
    let marked_for = facts.marker.map(|value| marked_credential(value));
    match (marker_rule, marked_for) {
        (MarkerRule::MarkedFor(_), None) => {
            refuse(WriteRule::NotMarked, format!("{MARKER_ATTRIBUTE} carries no gmsa-fleet marker"))
        }
        (MarkerRule::MarkedFor(_) | MarkerRule::UnmarkedOrFor(_), Some(None)) => refuse(
            WriteRule::NotMarked,
            format!("{MARKER_ATTRIBUTE} holds a value gmsa-fleet did not write; it is left alone"),
        ),
        (MarkerRule::MarkedFor(wanted) | MarkerRule::UnmarkedOrFor(wanted), Some(Some(found))) if found != wanted => {
            refuse(WriteRule::OtherCredential, format!("marked for credential {found}, not {wanted}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &[&str] = &["top", "person", "organizationalPerson", "user"];
    const COMPUTER: &[&str] = &["top", "person", "organizationalPerson", "user", "computer"];
    const DOMAIN: [u32; 4] = [21, 1, 2, 3];

    fn mk_sid(rid: u32) -> Sid {
        Sid::new(5, [DOMAIN.as_slice(), &[rid]].concat()).unwrap()
    }

    fn mk_facts<'a>(sid: &'a Sid, groups: &'a [Sid], marker: Option<&'a str>) -> AccountFacts<'a> {
        AccountFacts {
            dn: "CN=svc,CN=Users,DC=contoso,DC=test",
            sam_account_name: "svc",
            object_classes: USER,
            sid,
            critical: false,
            admin_count: false,
            groups,
            marker,
        }
    }

    fn rule_of(result: Result<(), AdError>) -> WriteRule {
        match result {
            Err(AdError::WriteRefused { rule, account, dn, .. }) => {
                assert!(account.eq_ignore_ascii_case("svc") || account == "KRBTGT", "{account}");
                assert_eq!(dn, "CN=svc,CN=Users,DC=contoso,DC=test");
                rule
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_marked_ordinary_user_may_be_reset_and_claimed() {
        let sid = mk_sid(1105);
        let groups = [mk_sid(513), Sid::new(5, vec![32, 545]).unwrap()];
        let marker = marker_value("kv/secret");
        let facts = mk_facts(&sid, &groups, Some(&marker));
        assert!(check_write("rotate", &facts, MarkerRule::MarkedFor("kv/secret")).is_ok());
        assert!(check_write("claim", &facts, MarkerRule::UnmarkedOrFor("kv/secret")).is_ok());
        assert!(check_write("claim", &mk_facts(&sid, &groups, None), MarkerRule::UnmarkedOrFor("kv/secret")).is_ok());
    }

    #[test]
    fn each_guard_refuses_with_its_own_rule() {
        let ordinary = mk_sid(1105);
        let marker = marker_value("kv/secret");
        let wanted = MarkerRule::MarkedFor("kv/secret");
        let base = mk_facts(&ordinary, &[], Some(&marker));
        assert_eq!(rule_of(check_write("rotate", &mk_facts(&ordinary, &[], None), wanted)), WriteRule::NotMarked);
        let other = marker_value("kv/other");
        assert_eq!(
            rule_of(check_write("rotate", &mk_facts(&ordinary, &[], Some(&other)), wanted)),
            WriteRule::OtherCredential
        );
        assert_eq!(
            rule_of(check_write("rotate", &mk_facts(&ordinary, &[], Some("hand-written note")), wanted)),
            WriteRule::NotMarked
        );
        assert_eq!(
            rule_of(check_write("claim", &mk_facts(&ordinary, &[], Some(&other)), MarkerRule::UnmarkedOrFor("kv/s"))),
            WriteRule::OtherCredential
        );
        for rid in [500, 501, 502] {
            let sid = mk_sid(rid);
            assert_eq!(
                rule_of(check_write("rotate", &mk_facts(&sid, &[], Some(&marker)), wanted)),
                WriteRule::BuiltInAccount
            );
        }
        let low = mk_sid(999);
        assert_eq!(rule_of(check_write("rotate", &mk_facts(&low, &[], Some(&marker)), wanted)), WriteRule::LowRid);
        assert_eq!(
            rule_of(check_write("rotate", &AccountFacts { critical: true, ..base }, wanted)),
            WriteRule::CriticalSystemObject
        );
        assert_eq!(
            rule_of(check_write("rotate", &AccountFacts { admin_count: true, ..base }, wanted)),
            WriteRule::AdminCount
        );
        assert_eq!(
            rule_of(check_write("rotate", &AccountFacts { object_classes: COMPUTER, ..base }, wanted)),
            WriteRule::WrongClass
        );
        assert_eq!(
            rule_of(check_write("rotate", &AccountFacts { sam_account_name: "KRBTGT", ..base }, wanted)),
            WriteRule::BuiltInAccount
        );
    }

    #[test]
    fn privileged_groups_are_recognised_by_sid_not_name() {
        for rid in PRIVILEGED_DOMAIN_RIDS {
            assert!(is_privileged_group(&mk_sid(*rid)), "{rid}");
        }
        for rid in PRIVILEGED_BUILTIN_RIDS {
            assert!(is_privileged_group(&Sid::new(5, vec![32, *rid]).unwrap()), "{rid}");
        }
        assert!(!is_privileged_group(&mk_sid(513)), "Domain Users");
        assert!(!is_privileged_group(&Sid::new(5, vec![32, 545]).unwrap()), "BUILTIN\\Users");
        assert!(!is_privileged_group(&mk_sid(1512)));
        assert!(!is_privileged_group(&Sid::new(5, vec![21, 1, 512]).unwrap()), "not a domain SID");

        let ordinary = mk_sid(1105);
        let marker = marker_value("kv/secret");
        let groups = [mk_sid(513), mk_sid(512)];
        let refusal =
            check_write("rotate", &mk_facts(&ordinary, &groups, Some(&marker)), MarkerRule::MarkedFor("kv/secret"));
        let message = refusal.as_ref().unwrap_err().to_string();
        assert_eq!(rule_of(refusal), WriteRule::PrivilegedGroup);
        assert!(message.contains("S-1-5-21-1-2-3-512") && message.contains("[privileged_group]"), "{message}");
    }

    #[test]
    fn credentials_are_printable_ascii_and_round_trip_through_the_marker() {
        for credential in ["kv/secret", "gmsavault/GMSADomainUserCred", "a"] {
            validate_credential(credential).unwrap();
            assert_eq!(marked_credential(&marker_value(credential)), Some(credential));
            assert!(marker_value(credential).len() <= 1024);
        }
        for credential in ["", "kv/sé", "kv\n", "kv\u{7f}"] {
            assert!(matches!(validate_credential(credential), Err(AdError::InvalidSpec { field: "credential", .. })));
        }
        assert!(validate_credential(&"x".repeat(MAX_CREDENTIAL_LEN + 1)).is_err());
        assert_eq!(marked_credential("something else"), None);
    }
}
