//! The pure decisions of a rollout's stage 0 ([`crate::central::Central::prepare`]): what the
//! domain-user secret holds and whether to write it, the DNS name of a DN, the secret URI the
//! credspecs carry, and filling the credspec's AD facts from what the directory reports.
//!
//! No I/O: the adapter reads, these functions decide, the adapter writes.

use gmsa::SecretString;
use proto::rollout::CredspecInputs;

/// What the vault's secret holds, as far as the coordinator needs to know: never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretHolds {
    /// No secret (or no vault yet).
    Missing,
    /// `DOMAIN\user:…`, the domain and user parts.
    Credential { domain: String, user: String },
    /// A value that is not `DOMAIN\user:password`.
    Unreadable,
}

/// Parses `DOMAIN\user:password` as the CCG plugin does (split at the first `\`, then the first
/// `:`) and keeps the domain and user only.
pub fn secret_holds(value: Option<&SecretString>) -> SecretHolds {
    let Some(value) = value else { return SecretHolds::Missing };
    let Some((domain, rest)) = value.expose().split_once('\\') else { return SecretHolds::Unreadable };
    let Some((user, password)) = rest.split_once(':') else { return SecretHolds::Unreadable };
    if domain.is_empty() || user.is_empty() || password.is_empty() {
        return SecretHolds::Unreadable;
    }
    SecretHolds::Credential { domain: domain.to_string(), user: user.to_string() }
}

/// What stage 0 does with the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretAction {
    /// It holds the domain user's credential: nothing to write.
    Keep,
    /// Write the password of the user created now.
    WriteNewUser,
    /// Reset the existing user's password, then write it (`reset_existing_user_password`).
    ResetAndWrite,
    /// Refused before anything is written.
    Refuse { code: &'static str, message: String },
}

/// Decides the secret step from what was read, before any write.
///
/// Rules, in order:
/// - a secret holding another user's credential, or something unreadable, is never overwritten
///   (`secret_holds_other_user`, `secret_unreadable`): someone else may depend on it;
/// - a user created now gets its password written (`WriteNewUser`);
/// - an existing user whose credential the secret holds: `Keep` (its password is not known here
///   and not needed);
/// - an existing user and no secret: its password is reset only when the operator said so
///   (`reset_existing_user_password`), else refused (`existing_user_without_secret`).
pub fn secret_action(holds: &SecretHolds, user: &str, user_exists: bool, reset_allowed: bool) -> SecretAction {
    match holds {
        SecretHolds::Credential { user: held, domain } if !held.eq_ignore_ascii_case(user) => SecretAction::Refuse {
            code: "secret_holds_other_user",
            message: format!(
                "the secret holds the credential of {domain}\\{held}, not of {user}; name another secret or delete it"
            ),
        },
        SecretHolds::Unreadable => SecretAction::Refuse {
            code: "secret_unreadable",
            message: "the secret does not hold DOMAIN\\user:password; name another secret or delete it".into(),
        },
        _ if !user_exists => SecretAction::WriteNewUser,
        SecretHolds::Credential { .. } => SecretAction::Keep,
        SecretHolds::Missing if reset_allowed => SecretAction::ResetAndWrite,
        SecretHolds::Missing => SecretAction::Refuse {
            code: "existing_user_without_secret",
            message: format!(
                "domain user {user} exists and the secret does not hold its credential; the coordinator resets the \
                 password of a user it did not just create only with central.reset_existing_user_password: true"
            ),
        },
    }
}

/// `CN=u,CN=Users,DC=contoso,DC=test` → `contoso.test`.
pub fn dns_name_of_dn(dn: &str) -> String {
    dn.split(',')
        .filter_map(|rdn| {
            let (key, value) = rdn.trim().split_once('=')?;
            key.eq_ignore_ascii_case("DC").then_some(value)
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The unversioned secret URI credspecs carry: the CCG plugin reads the latest version at every
/// container start, so a rotation (a new version) needs no credspec change.
pub fn credspec_secret_uri(vault_name: &str, secret_name: &str) -> String {
    format!("https://{}.vault.azure.net/secrets/{secret_name}", vault_name.to_ascii_lowercase())
}

/// The facts the directory reports, as credspec strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedFacts {
    pub netbios_domain: String,
    pub dns_domain: String,
    pub dns_tree_root: String,
    pub domain_guid: String,
    pub domain_sid: String,
}

impl From<&ad::DomainFacts> for ReportedFacts {
    fn from(facts: &ad::DomainFacts) -> Self {
        ReportedFacts {
            netbios_domain: facts.netbios_name.clone(),
            dns_domain: facts.dns_name.clone(),
            dns_tree_root: facts.dns_tree_name.clone(),
            domain_guid: facts.domain_guid.to_string(),
            domain_sid: facts.domain_sid.to_string(),
        }
    }
}

/// `given` with every `None` fact filled from `reported`. A fact the operator gave that differs
/// from AD (case-insensitively) is refused, naming the field: a credspec must not disagree with
/// its domain.
pub fn fill_facts(given: &CredspecInputs, reported: &ReportedFacts) -> Result<CredspecInputs, (String, String)> {
    let mut filled = given.clone();
    for (field, slot, value) in [
        ("netbios_domain", &mut filled.netbios_domain, &reported.netbios_domain),
        ("dns_domain", &mut filled.dns_domain, &reported.dns_domain),
        ("dns_tree_root", &mut filled.dns_tree_root, &reported.dns_tree_root),
        ("domain_guid", &mut filled.domain_guid, &reported.domain_guid),
        ("domain_sid", &mut filled.domain_sid, &reported.domain_sid),
    ] {
        match slot {
            Some(mine) if !mine.eq_ignore_ascii_case(value) => {
                return Err((
                    format!("credspec.{field}"),
                    format!("is {mine:?} but Active Directory reports {value:?}; remove it to take AD's"),
                ));
            }
            Some(_) => {}
            None => *slot = Some(value.clone()),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_holds(value: &str) -> SecretHolds {
        secret_holds(Some(&SecretString::new(value)))
    }

    fn mk_credspec() -> CredspecInputs {
        serde_json::from_value(
            serde_json::json!({"spec_name": "s", "gmsa_account": "WebApp01", "dns_domain": "CONTOSO.test"}),
        )
        .unwrap()
    }

    #[test]
    fn the_secret_is_read_like_the_plugin_reads_it_and_the_password_is_dropped() {
        assert_eq!(
            mk_holds("CONTOSO\\gmsa-user:pa:ss\\word"),
            SecretHolds::Credential { domain: "CONTOSO".into(), user: "gmsa-user".into() }
        );
        assert_eq!(secret_holds(None), SecretHolds::Missing);
        for bad in ["no-backslash:pw", "CONTOSO\\no-colon", "\\user:pw", "CONTOSO\\user:"] {
            assert_eq!(mk_holds(bad), SecretHolds::Unreadable, "{bad}");
        }
        assert!(!format!("{:?}", mk_holds("D\\u:Sekr1t")).contains("Sekr1t"));
    }

    #[test]
    fn an_existing_user_keeps_its_password_unless_the_operator_allows_a_reset() {
        let mine = SecretHolds::Credential { domain: "CONTOSO".into(), user: "GMSA-User".into() };
        assert_eq!(secret_action(&mine, "gmsa-user", true, false), SecretAction::Keep);
        assert_eq!(secret_action(&SecretHolds::Missing, "gmsa-user", false, false), SecretAction::WriteNewUser);
        assert_eq!(
            secret_action(&mine, "gmsa-user", false, false),
            SecretAction::WriteNewUser,
            "a new user's password"
        );
        let refused = secret_action(&SecretHolds::Missing, "gmsa-user", true, false);
        assert!(matches!(refused, SecretAction::Refuse { code: "existing_user_without_secret", .. }), "{refused:?}");
        assert_eq!(secret_action(&SecretHolds::Missing, "gmsa-user", true, true), SecretAction::ResetAndWrite);
    }

    #[test]
    fn another_users_or_an_unreadable_secret_is_never_overwritten_even_with_reset_allowed() {
        let theirs = SecretHolds::Credential { domain: "CONTOSO".into(), user: "other".into() };
        for user_exists in [true, false] {
            let refused = secret_action(&theirs, "gmsa-user", user_exists, true);
            assert!(
                matches!(&refused, SecretAction::Refuse { code: "secret_holds_other_user", message } if message.contains("CONTOSO\\other")),
                "{refused:?}"
            );
            let refused = secret_action(&SecretHolds::Unreadable, "gmsa-user", user_exists, true);
            assert!(matches!(refused, SecretAction::Refuse { code: "secret_unreadable", .. }));
        }
    }

    #[test]
    fn dns_names_uris_and_facts() {
        assert_eq!(dns_name_of_dn("CN=u,CN=Users,DC=contoso,dc=test"), "contoso.test");
        assert_eq!(
            credspec_secret_uri("kvGmsa", "GMSADomainUserCred"),
            "https://kvgmsa.vault.azure.net/secrets/GMSADomainUserCred"
        );
        let reported = ReportedFacts {
            netbios_domain: "CONTOSO".into(),
            dns_domain: "contoso.test".into(),
            dns_tree_root: "contoso.test".into(),
            domain_guid: "244818ae-87ac-4fcd-92ec-e79e5252348a".into(),
            domain_sid: "S-1-5-21-1-2-3".into(),
        };
        let filled = fill_facts(&mk_credspec(), &reported).unwrap();
        assert_eq!(filled.dns_domain.as_deref(), Some("CONTOSO.test"), "what the operator gave stays");
        assert_eq!(filled.domain_sid.as_deref(), Some("S-1-5-21-1-2-3"));
        let mut wrong = mk_credspec();
        wrong.domain_sid = Some("S-1-5-21-9-9-9".into());
        let (field, rule) = fill_facts(&wrong, &reported).unwrap_err();
        assert_eq!(field, "credspec.domain_sid");
        assert!(rule.contains("S-1-5-21-1-2-3"), "{rule}");
    }
}
