//! Which objects the teardown steps may delete (Remove-GMSA, Remove-GMSADomainUser of the
//! PowerShell module): a pure decision over what the directory reported about the object.
//!
//! The teardown finds its object by `sAMAccountName`, so a name collision must not turn into the
//! deletion of something else: a user named like the gMSA, the DC's computer account, or a
//! built-in account. Each refusal names the DN and the rule that refused it.

use crate::error::AdError;
use crate::sid::Sid;

/// Built-in accounts and groups have well-known RIDs below this; accounts created later start here.
const FIRST_ORDINARY_RID: u32 = 1000;

/// The kind of account a teardown step deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removable {
    /// The standard domain user whose credential the nodes use (`user-delete`).
    DomainUser,
    /// The group managed service account (`gmsa-delete`).
    Gmsa,
}

impl Removable {
    /// The rule an object of this kind must satisfy, as operators read it in a refusal.
    fn class_rule(self) -> &'static str {
        match self {
            Removable::DomainUser => "user-delete deletes only user objects that are not computers or gMSAs",
            Removable::Gmsa => "gmsa-delete deletes only msDS-GroupManagedServiceAccount objects",
        }
    }

    fn class_matches(self, object_classes: &[&str]) -> bool {
        let has = |class: &str| object_classes.iter().any(|value| value.eq_ignore_ascii_case(class));
        match self {
            // A gMSA and a computer are both `user` subclasses: the absence of `computer` tells them apart.
            Removable::DomainUser => has("user") && !has("computer"),
            Removable::Gmsa => has("msDS-GroupManagedServiceAccount"),
        }
    }
}

/// What the directory reported about the object a teardown step found.
#[derive(Debug, Clone, Copy)]
pub struct FoundObject<'a> {
    /// Its distinguished name.
    pub dn: &'a str,
    /// All values of `objectClass`, most general first as AD returns them.
    pub object_classes: &'a [&'a str],
    /// Its `objectSid`, when it has one.
    pub sid: Option<&'a Sid>,
    /// `isCriticalSystemObject` is TRUE.
    pub critical: bool,
}

/// Decides whether `found` may be deleted as a `kind`; the error names the DN and the rule.
pub fn check_removable(kind: Removable, found: &FoundObject<'_>) -> Result<(), AdError> {
    check(kind, found, &|rule| AdError::DeleteRefused { dn: found.dn.to_string(), rule })
}

fn check(kind: Removable, found: &FoundObject<'_>, refusal: &dyn Fn(String) -> AdError) -> Result<(), AdError> {
    let refuse = |rule: String| Err(refusal(rule));
    if !kind.class_matches(found.object_classes) {
        let actual = found.object_classes.last().copied().unwrap_or("object without objectClass");
        return refuse(format!("{}; this one is a {actual}", kind.class_rule()));
    }
    if found.critical {
        return refuse("teardown never deletes an object marked isCriticalSystemObject".to_string());
    }
    if let Some(rid) = found.sid.and_then(Sid::rid)
        && rid < FIRST_ORDINARY_RID
    {
        return refuse(format!("teardown never deletes a built-in account (RID {rid} is below {FIRST_ORDINARY_RID})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &[&str] = &["top", "person", "organizationalPerson", "user"];
    const COMPUTER: &[&str] = &["top", "person", "organizationalPerson", "user", "computer"];
    const GMSA: &[&str] =
        &["top", "person", "organizationalPerson", "user", "computer", "msDS-GroupManagedServiceAccount"];

    fn mk_found<'a>(object_classes: &'a [&'a str], sid: Option<&'a Sid>, critical: bool) -> FoundObject<'a> {
        FoundObject { dn: "CN=x,CN=Users,DC=contoso,DC=test", object_classes, sid, critical }
    }

    fn mk_sid(rid: u32) -> Sid {
        Sid::new(5, vec![21, 1, 2, 3, rid]).unwrap()
    }

    fn refusal(result: Result<(), AdError>) -> (String, String) {
        match result {
            Err(AdError::DeleteRefused { dn, rule }) => (dn, rule),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn each_kind_deletes_only_its_own_class() {
        let sid = mk_sid(1105);
        assert!(check_removable(Removable::DomainUser, &mk_found(USER, Some(&sid), false)).is_ok());
        assert!(check_removable(Removable::Gmsa, &mk_found(GMSA, Some(&sid), false)).is_ok());

        for classes in [COMPUTER, GMSA] {
            let (dn, rule) = refusal(check_removable(Removable::DomainUser, &mk_found(classes, Some(&sid), false)));
            assert_eq!(dn, "CN=x,CN=Users,DC=contoso,DC=test");
            assert!(rule.starts_with("user-delete deletes only user objects"), "{rule}");
        }
        for classes in [USER, COMPUTER] {
            let (_, rule) = refusal(check_removable(Removable::Gmsa, &mk_found(classes, Some(&sid), false)));
            assert!(rule.contains("msDS-GroupManagedServiceAccount") && rule.contains("this one is a"), "{rule}");
        }
    }

    #[test]
    fn class_names_compare_case_insensitively() {
        let lower: &[&str] = &["top", "user", "computer", "msds-groupmanagedserviceaccount"];
        assert!(check_removable(Removable::Gmsa, &mk_found(lower, None, false)).is_ok());
    }

    #[test]
    fn built_in_and_critical_accounts_are_never_deleted() {
        let administrator = mk_sid(500);
        let (_, rule) = refusal(check_removable(Removable::DomainUser, &mk_found(USER, Some(&administrator), false)));
        assert!(rule.contains("RID 500"), "{rule}");
        let ordinary = mk_sid(1200);
        let (_, rule) = refusal(check_removable(Removable::DomainUser, &mk_found(USER, Some(&ordinary), true)));
        assert!(rule.contains("isCriticalSystemObject"), "{rule}");
    }

    #[test]
    fn the_refusal_message_names_the_dn_and_the_rule() {
        let error = check_removable(Removable::Gmsa, &mk_found(USER, None, false)).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("CN=x,CN=Users,DC=contoso,DC=test"), "{message}");
        assert!(message.contains("gmsa-delete deletes only"), "{message}");
    }
}
