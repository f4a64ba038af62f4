//! Reading the password policy that applies to the standard users (see `crate::policy`).

use ldap3::Scope;

use super::facts::naming_contexts;
use super::session::{Session, text};
use crate::account::AccountName;
use crate::error::AdError;
use crate::escape::filter_value;
use std::time::Duration;

pub(super) async fn max_password_age(
    session: &mut Session,
    users: &[AccountName],
) -> Result<Option<Duration>, AdError> {
    let contexts = naming_contexts(session).await?;
    let attribute_error = |object: &str, attribute: &'static str, reason: String| AdError::Attribute {
        object: object.to_string(),
        attribute,
        reason,
    };
    let head = session
        .read(&contexts.domain, &["maxPwdAge"])
        .await?
        .ok_or_else(|| AdError::NotFound { what: contexts.domain.clone() })?;
    let mut ages = vec![match text(&head, "maxPwdAge") {
        Some(value) => crate::policy::max_age_of(value).map_err(|rule| attribute_error(&head.dn, "maxPwdAge", rule))?,
        None => None,
    }];
    for user in users {
        let filter = format!("(&(objectClass=user)(sAMAccountName={}))", filter_value(user.as_str()));
        let found = session.search(&contexts.domain, Scope::Subtree, &filter, &["msDS-ResultantPSO"]).await?;
        for entry in found {
            let Some(pso) = text(&entry, "msDS-ResultantPSO").map(str::to_string) else { continue };
            let Some(policy) = session.read(&pso, &["msDS-MaximumPasswordAge"]).await? else { continue };
            if let Some(value) = text(&policy, "msDS-MaximumPasswordAge") {
                ages.push(
                    crate::policy::max_age_of(value)
                        .map_err(|rule| attribute_error(&pso, "msDS-MaximumPasswordAge", rule))?,
                );
            }
        }
    }
    Ok(crate::policy::strictest(ages))
}
