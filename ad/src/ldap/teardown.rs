//! Deleting the gMSA and the standard domain user (Remove-GMSA, Remove-GMSADomainUser): find the
//! object by `sAMAccountName`, check that it is the kind of object the step deletes
//! ([`crate::removal`]), then delete it — or, in a dry run, only report what would go.
//!
//! Idempotent: an absent account is `unchanged`. The diff has one entry whose path is the
//! object's DN, with the object's name, SID and class before and nothing after.

use proto::outcome::{Mode, StepOutcome};
use serde_json::json;

use super::accounts::find_account;
use super::facts::naming_contexts;
use super::session::{Session, text, texts};
use crate::error::AdError;
use crate::removal::{FoundObject, Removable, check_removable};
use crate::sid::Sid;

/// Deletes the account whose `sAMAccountName` is `sam_account_name` if it exists and is a
/// `kind`; reports the step as `step`.
pub(super) async fn delete_account(
    session: &mut Session,
    kind: Removable,
    sam_account_name: &str,
    step: &'static str,
    mode: Mode,
) -> Result<StepOutcome, AdError> {
    let base = naming_contexts(session).await?.domain;
    let attrs = ["objectClass", "objectSid", "isCriticalSystemObject"];
    let Some(existing) = find_account(session, &base, sam_account_name, &attrs).await? else {
        let observed = json!({"sAMAccountName": sam_account_name, "exists": false});
        return Ok(StepOutcome::unchanged(step, observed));
    };
    let object_classes = texts(&existing, "objectClass");
    let sid = super::session::binary(&existing, "objectSid")
        .map(|bytes| Sid::from_bytes(&bytes))
        .transpose()
        .map_err(|source| AdError::Sid { object: existing.dn.clone(), source })?;
    let critical = text(&existing, "isCriticalSystemObject").is_some_and(|value| value.eq_ignore_ascii_case("TRUE"));
    let found = FoundObject { dn: &existing.dn, object_classes: &object_classes, sid: sid.as_ref(), critical };
    check_removable(kind, &found)?;

    let most_specific_class = object_classes.last().copied().unwrap_or_default();
    let before = json!({
        existing.dn.as_str(): {
            "sAMAccountName": sam_account_name,
            "objectSid": sid.as_ref().map(ToString::to_string),
            "objectClass": most_specific_class,
        }
    });
    let diff = gmsa::json_diff(&before, &json!({}));
    if mode.applies() {
        session.delete(&existing.dn).await?;
        tracing::info!(dn = %existing.dn, "account deleted");
    } else {
        tracing::info!(dn = %existing.dn, "dry run: account would be deleted");
    }
    let observed = json!({"dn": existing.dn, "exists": !mode.applies()});
    Ok(StepOutcome::in_mode(mode, step, diff, observed))
}
