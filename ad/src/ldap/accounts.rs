//! Creating the standard user (marked as gmsa-fleet's) and the gMSA if absent, keeping the
//! gMSA's allowed principals exact, claiming an unmarked user, and resetting the user's password
//! after the guards of [`crate::guard`].
//!
//! Each write follows read → diff → write the difference: an account that exists is not
//! re-created, and a membership change replaces the descriptor with the read one plus or minus
//! exactly the principals that differ (the attribute is single-valued, so an LDAP modify
//! necessarily carries the whole value; other ACEs and the owner are preserved).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use gmsa::SecretString;
use ldap3::{Scope, SearchEntry};
use proto::outcome::{Mode, StepOutcome};
use serde_json::{Value, json};

use super::facts::{naming_contexts, required_sid};
use super::session::{Session, binaries, binary, text, texts};
use crate::account::AccountName;
use crate::directory::{EnsuredUser, GmsaSpec, Ownership, STEP_DOMAIN_USER, STEP_GMSA, STEP_USER_CLAIM, UserSpec};
use crate::error::AdError;
use crate::escape::{dn_value, filter_bytes, filter_value};
use crate::guard::{self, AccountFacts, MARKER_ATTRIBUTE, MarkerRule, WriteRule};
use crate::password;
use crate::security_descriptor::{self, SecurityDescriptor};
use crate::sid::Sid;

/// `userAccountControl` of an enabled normal user account.
const UAC_NORMAL_ACCOUNT: &str = "512";
/// `userAccountControl` Windows gives a gMSA (WORKSTATION_TRUST_ACCOUNT).
const UAC_WORKSTATION_TRUST: &str = "4096";
const MEMBERSHIP: &str = "msDS-GroupMSAMembership";

/// `DC=contoso,DC=test` → `contoso.test`.
fn dns_name_of(domain_dn: &str) -> String {
    domain_dn
        .split(',')
        .filter_map(|rdn| rdn.trim().strip_prefix("DC=").or_else(|| rdn.trim().strip_prefix("dc=")))
        .collect::<Vec<_>>()
        .join(".")
}

/// The object whose `sAMAccountName` is `sam_account_name`, if any.
pub(super) async fn find_account(
    session: &mut Session,
    base: &str,
    sam_account_name: &str,
    attrs: &[&str],
) -> Result<Option<SearchEntry>, AdError> {
    let filter = format!("(sAMAccountName={})", filter_value(sam_account_name));
    let mut entries = session.search(base, Scope::Subtree, &filter, attrs).await?;
    match entries.len() {
        0 | 1 => Ok(entries.pop()),
        count => Err(AdError::Ambiguous { name: sam_account_name.to_string(), count }),
    }
}

fn has_class(entry: &SearchEntry, class: &str) -> bool {
    texts(entry, "objectClass").iter().any(|value| value.eq_ignore_ascii_case(class))
}

fn attribute(name: &str, values: &[&[u8]]) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (name.as_bytes().to_vec(), values.iter().map(|value| value.to_vec()).collect())
}

/// Attributes read for ownership and for the write guards.
const GUARD_ATTRS: [&str; 7] =
    ["objectClass", "objectSid", "sAMAccountName", "isCriticalSystemObject", "adminCount", MARKER_ATTRIBUTE, "cn"];

pub(super) async fn ensure_user(session: &mut Session, user: &UserSpec, mode: Mode) -> Result<EnsuredUser, AdError> {
    user.validate()?;
    let base = naming_contexts(session).await?.domain;
    let name = user.name.as_str();
    if let Some(existing) = find_account(session, &base, name, &GUARD_ATTRS).await? {
        if !has_class(&existing, "user") || has_class(&existing, "computer") {
            return Err(AdError::WrongObjectClass { name: name.to_string(), expected: "user" });
        }
        let ownership = match text(&existing, MARKER_ATTRIBUTE).and_then(guard::marked_credential) {
            Some(credential) if credential == user.credential => Ownership::Ours,
            Some(credential) => {
                return Err(AdError::WriteRefused {
                    operation: "ensure",
                    account: name.to_string(),
                    dn: existing.dn.clone(),
                    rule: WriteRule::OtherCredential,
                    detail: format!("marked for credential {credential}, not {}", user.credential),
                });
            }
            None => Ownership::Unmarked,
        };
        let observed = json!({
            "dn": existing.dn,
            "sid": required_sid(&existing)?.to_string(),
            "ownership": ownership.code(),
        });
        if ownership == Ownership::Unmarked {
            tracing::warn!(dn = %existing.dn, "existing domain user carries no gmsa-fleet marker; not written to");
        }
        return Ok(EnsuredUser {
            outcome: StepOutcome::unchanged(STEP_DOMAIN_USER, observed),
            new_password: None,
            ownership,
        });
    }

    let dn = format!("CN={},CN=Users,{base}", dn_value(name)?);
    let user_principal_name = format!("{name}@{}", dns_name_of(&base));
    let marker = guard::marker_value(&user.credential);
    let after = json!({
        "sAMAccountName": name,
        "userPrincipalName": user_principal_name,
        "userAccountControl": 512,
        "unicodePwd": "<redacted>",
        MARKER_ATTRIBUTE: marker,
    });
    if !mode.applies() {
        // A dry run generates no password: nothing would hold it.
        let observed = json!({"dn": dn, "exists": false});
        let outcome = StepOutcome::in_mode(mode, STEP_DOMAIN_USER, gmsa::json_diff(&json!({}), &after), observed);
        return Ok(EnsuredUser { outcome, new_password: None, ownership: Ownership::Created });
    }
    let new_password = password::generate(name);
    let unicode_pwd = password::unicode_pwd(&new_password);
    let attributes = vec![
        attribute("objectClass", &[b"top", b"person", b"organizationalPerson", b"user"]),
        attribute("cn", &[name.as_bytes()]),
        attribute("sAMAccountName", &[name.as_bytes()]),
        attribute("userPrincipalName", &[user_principal_name.as_bytes()]),
        attribute("userAccountControl", &[UAC_NORMAL_ACCOUNT.as_bytes()]),
        attribute(MARKER_ATTRIBUTE, &[marker.as_bytes()]),
        attribute("unicodePwd", &[unicode_pwd.expose()]),
    ];
    session.add(&dn, attributes).await?;
    drop(unicode_pwd);
    tracing::info!(%dn, "domain user created and marked");

    let created = session.read(&dn, &["objectSid"]).await?.ok_or_else(|| AdError::NotFound { what: dn.clone() })?;
    let observed = json!({"dn": dn, "sid": required_sid(&created)?.to_string(), "ownership": "created"});
    let outcome = StepOutcome::from_diff(STEP_DOMAIN_USER, gmsa::json_diff(&json!({}), &after), observed);
    Ok(EnsuredUser { outcome, new_password: Some(new_password), ownership: Ownership::Created })
}

/// The user `user` as the guards see it: found by name, with its `tokenGroups` (a constructed
/// attribute, returned only by a base search on the entry).
pub(super) struct GuardedAccount {
    pub entry: SearchEntry,
    pub sid: Sid,
    pub groups: Vec<Sid>,
}

impl GuardedAccount {
    pub(super) async fn read(session: &mut Session, base: &str, user: &AccountName) -> Result<GuardedAccount, AdError> {
        let entry = find_account(session, base, user.as_str(), &GUARD_ATTRS)
            .await?
            .ok_or_else(|| AdError::NotFound { what: format!("domain user {user}") })?;
        let sid = required_sid(&entry)?;
        let token_groups = session
            .read(&entry.dn, &["tokenGroups"])
            .await?
            .ok_or_else(|| AdError::NotFound { what: entry.dn.clone() })?;
        let mut groups = Vec::new();
        for value in binaries(&token_groups, "tokenGroups") {
            groups.push(Sid::from_bytes(&value).map_err(|source| AdError::Sid { object: entry.dn.clone(), source })?);
        }
        if groups.is_empty() {
            // Every account has at least its primary group: an empty answer means the read did not
            // return what the guard needs, and the guard fails closed.
            return Err(AdError::Attribute {
                object: entry.dn.clone(),
                attribute: "tokenGroups",
                reason: "empty; cannot check privileged group membership".to_string(),
            });
        }
        Ok(GuardedAccount { entry, sid, groups })
    }

    /// Runs the guards of [`crate::guard`] for `operation`.
    pub(super) fn check(&self, operation: &'static str, marker_rule: MarkerRule<'_>) -> Result<(), AdError> {
        let object_classes = texts(&self.entry, "objectClass");
        let is_true = |attribute: &str| text(&self.entry, attribute).is_some_and(|v| v.eq_ignore_ascii_case("TRUE"));
        let facts = AccountFacts {
            dn: &self.entry.dn,
            sam_account_name: text(&self.entry, "sAMAccountName").unwrap_or_default(),
            object_classes: &object_classes,
            sid: &self.sid,
            critical: is_true("isCriticalSystemObject"),
            admin_count: text(&self.entry, "adminCount").is_some_and(|value| value.trim() == "1"),
            groups: &self.groups,
            marker: text(&self.entry, MARKER_ATTRIBUTE),
        };
        guard::check_write(operation, &facts, marker_rule)
    }
}

/// Marks an existing unmarked plain user as gmsa-fleet's (see [`crate::Directory::claim_user`]).
pub(super) async fn claim_user(session: &mut Session, user: &UserSpec, mode: Mode) -> Result<StepOutcome, AdError> {
    user.validate()?;
    let base = naming_contexts(session).await?.domain;
    let account = GuardedAccount::read(session, &base, &user.name).await?;
    account.check("claim", MarkerRule::UnmarkedOrFor(&user.credential))?;
    let dn = account.entry.dn.clone();
    let observed = json!({"dn": dn, "sid": account.sid.to_string()});
    let current = text(&account.entry, MARKER_ATTRIBUTE);
    let marker = guard::marker_value(&user.credential);
    if current == Some(marker.as_str()) {
        return Ok(StepOutcome::unchanged(STEP_USER_CLAIM, observed));
    }
    let diff = gmsa::json_diff(&json!({}), &json!({ MARKER_ATTRIBUTE: marker }));
    if mode.applies() {
        session
            .replace(&dn, MARKER_ATTRIBUTE, vec![(MARKER_ATTRIBUTE.as_bytes().to_vec(), marker.into_bytes())])
            .await?;
        tracing::info!(%dn, "existing domain user claimed (marked)");
    }
    Ok(StepOutcome::in_mode(mode, STEP_USER_CLAIM, diff, observed))
}

/// Resolves each allowed principal's name to its SID, in spec order. In a dry run a principal
/// that does not exist yet (a domain user the same dry run would create) is returned in the
/// second list instead of failing.
async fn resolve_principals(
    session: &mut Session,
    base: &str,
    names: &[AccountName],
    mode: Mode,
) -> Result<(BTreeMap<Sid, String>, Vec<String>), AdError> {
    let mut resolved = BTreeMap::new();
    let mut missing = Vec::new();
    for name in names {
        match find_account(session, base, name.as_str(), &["objectSid"]).await? {
            Some(entry) => {
                resolved.insert(required_sid(&entry)?, name.to_string());
            }
            None if !mode.applies() => missing.push(name.to_string()),
            None => {
                return Err(AdError::NotFound {
                    what: format!("principal {name} (allowed to retrieve the gMSA password)"),
                });
            }
        }
    }
    Ok((resolved, missing))
}

/// The allowed principals as diffs show them; a principal a dry run would create first has no
/// SID yet and is keyed `<new> name`.
fn desired_json(desired: &BTreeMap<Sid, String>, missing: &[String]) -> Value {
    let mut json = membership_json(desired);
    if let Value::Object(map) = &mut json {
        for name in missing {
            map.insert(format!("<new> {name}"), Value::String(name.clone()));
        }
    }
    json
}

/// The `sAMAccountName` of `sid`, or the SID string for a principal that no longer exists.
async fn name_of_sid(session: &mut Session, base: &str, sid: &Sid) -> Result<String, AdError> {
    let filter = format!("(objectSid={})", filter_bytes(&sid.to_bytes()));
    let entries = session.search(base, Scope::Subtree, &filter, &["sAMAccountName"]).await?;
    Ok(entries
        .first()
        .and_then(|entry| text(entry, "sAMAccountName"))
        .map(str::to_string)
        .unwrap_or_else(|| sid.to_string()))
}

fn membership_json(principals: &BTreeMap<Sid, String>) -> Value {
    Value::Object(principals.iter().map(|(sid, name)| (sid.to_string(), Value::String(name.clone()))).collect())
}

pub(super) async fn ensure_gmsa(session: &mut Session, spec: &GmsaSpec, mode: Mode) -> Result<StepOutcome, AdError> {
    spec.validate()?;
    let base = naming_contexts(session).await?.domain;
    let (desired, missing) = resolve_principals(session, &base, &spec.allowed_principals, mode).await?;
    let sam_account_name = spec.name.machine_account();
    let attrs = ["objectClass", "objectSid", "dNSHostName", "msDS-ManagedPasswordInterval", MEMBERSHIP];
    let Some(existing) = find_account(session, &base, &sam_account_name, &attrs).await? else {
        return create_gmsa(session, &base, spec, &desired, &missing, mode).await;
    };
    if !has_class(&existing, "msDS-GroupManagedServiceAccount") {
        return Err(AdError::WrongObjectClass { name: sam_account_name, expected: "msDS-GroupManagedServiceAccount" });
    }

    let current_descriptor = match binary(&existing, MEMBERSHIP) {
        Some(bytes) => security_descriptor::parse(&bytes)
            .map_err(|source| AdError::SecurityDescriptor { object: existing.dn.clone(), source })?,
        None => security_descriptor::build(&[]),
    };
    let mut current = BTreeMap::new();
    for sid in current_descriptor.allowed_principals() {
        let name = match desired.get(&sid) {
            Some(name) => name.clone(),
            None => name_of_sid(session, &base, &sid).await?,
        };
        current.insert(sid, name);
    }
    let current_host = text(&existing, "dNSHostName").unwrap_or_default().to_string();
    let before = json!({"dNSHostName": current_host.to_lowercase(), MEMBERSHIP: membership_json(&current)});
    let after = json!({"dNSHostName": spec.dns_host_name.to_lowercase(), MEMBERSHIP: desired_json(&desired, &missing)});
    let diff = gmsa::json_diff(&before, &after);

    let mut changes = Vec::new();
    if !current_host.eq_ignore_ascii_case(&spec.dns_host_name) {
        changes.push((b"dNSHostName".to_vec(), spec.dns_host_name.as_bytes().to_vec()));
    }
    let to_add: BTreeSet<Sid> = desired.keys().filter(|sid| !current.contains_key(*sid)).cloned().collect();
    let to_remove: BTreeSet<Sid> = current.keys().filter(|sid| !desired.contains_key(*sid)).cloned().collect();
    if !to_add.is_empty() || !to_remove.is_empty() {
        let updated: SecurityDescriptor = current_descriptor.with_membership_change(&to_add, &to_remove);
        changes.push((MEMBERSHIP.as_bytes().to_vec(), updated.to_bytes()));
    }
    if !changes.is_empty() && mode.applies() {
        session.replace(&existing.dn, MEMBERSHIP, changes).await?;
        tracing::info!(dn = %existing.dn, added = to_add.len(), removed = to_remove.len(), "gMSA updated");
    }
    let observed =
        json!({"dn": existing.dn, "sid": required_sid(&existing)?.to_string(), "allowed": membership_json(&desired)});
    Ok(StepOutcome::in_mode(mode, STEP_GMSA, diff, observed))
}

async fn create_gmsa(
    session: &mut Session,
    base: &str,
    spec: &GmsaSpec,
    desired: &BTreeMap<Sid, String>,
    missing: &[String],
    mode: Mode,
) -> Result<StepOutcome, AdError> {
    let name = spec.name.as_str();
    let sam_account_name = spec.name.machine_account();
    let dn = format!("CN={},CN=Managed Service Accounts,{base}", dn_value(name)?);
    // Spec order, so the DACL lists principals as the operator wrote them.
    let mut ordered_sids = Vec::new();
    for principal in &spec.allowed_principals {
        if let Some((sid, _)) = desired.iter().find(|(_, resolved)| resolved.as_str() == principal.as_str()) {
            ordered_sids.push(sid.clone());
        }
    }
    let after = json!({
        "sAMAccountName": sam_account_name,
        "dNSHostName": spec.dns_host_name.to_lowercase(),
        "msDS-ManagedPasswordInterval": spec.password_interval_days,
        MEMBERSHIP: desired_json(desired, missing),
    });
    if !mode.applies() {
        let observed = json!({"dn": dn, "exists": false, "allowed": desired_json(desired, missing)});
        return Ok(StepOutcome::in_mode(mode, STEP_GMSA, gmsa::json_diff(&json!({}), &after), observed));
    }
    let descriptor = security_descriptor::build(&ordered_sids).to_bytes();
    let interval = spec.password_interval_days.to_string();
    let attributes = vec![
        attribute("objectClass", &[b"msDS-GroupManagedServiceAccount"]),
        attribute("cn", &[name.as_bytes()]),
        attribute("sAMAccountName", &[sam_account_name.as_bytes()]),
        attribute("dNSHostName", &[spec.dns_host_name.as_bytes()]),
        attribute("userAccountControl", &[UAC_WORKSTATION_TRUST.as_bytes()]),
        attribute("msDS-ManagedPasswordInterval", &[interval.as_bytes()]),
        attribute(MEMBERSHIP, &[&descriptor]),
    ];
    session.add(&dn, attributes).await?;
    tracing::info!(%dn, "gMSA created");
    let created = session.read(&dn, &["objectSid"]).await?.ok_or_else(|| AdError::NotFound { what: dn.clone() })?;
    let observed = json!({"dn": dn, "sid": required_sid(&created)?.to_string(), "allowed": membership_json(desired)});
    Ok(StepOutcome::from_diff(STEP_GMSA, gmsa::json_diff(&json!({}), &after), observed))
}

/// Checks every guard on the account at the DC `session` is bound to, then resets its password
/// to a generated one (administrative reset); returns the user's DN with the new password, for
/// the confirmation bind. Nothing is written when a guard refuses.
pub(super) async fn reset_password(session: &mut Session, user: &UserSpec) -> Result<(String, SecretString), AdError> {
    let base = naming_contexts(session).await?.domain;
    let account = GuardedAccount::read(session, &base, &user.name).await?;
    account.check("rotate", MarkerRule::MarkedFor(&user.credential))?;
    let new_password = password::generate(user.name.as_str());
    let unicode_pwd = password::unicode_pwd(&new_password);
    let dn = account.entry.dn;
    session.replace(&dn, "unicodePwd", vec![(b"unicodePwd".to_vec(), unicode_pwd.expose().to_vec())]).await?;
    Ok((dn, new_password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_name_comes_from_the_dc_components() {
        assert_eq!(dns_name_of("DC=contoso,DC=test"), "contoso.test");
        assert_eq!(dns_name_of("dc=eu, dc=corp,DC=example"), "eu.corp.example");
    }
}
