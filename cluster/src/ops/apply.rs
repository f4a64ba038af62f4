//! `apply`: read what the cluster holds, plan with [`crate::plan`], write only the difference by
//! server-side apply, prune this owner's leftovers, and report a `StepOutcome`.
//!
//! Expected flow: preflight → [`apply`] (GETs and label LISTs; no write when the plan is empty).
//!
//! Guarantees:
//! - A second apply of the same request writes nothing and reports `unchanged`.
//! - Objects at a desired name that gmsa-fleet does not own (no labels, or another owner's) are
//!   never written: the apply fails with [`ApplyError::NameConflict`] before its first write.
//! - Pruning deletes only objects carrying `managed-by=gmsa-fleet` and this owner's label.
//!
//! Caveats: writes are not transactional; a failure mid-way leaves earlier writes in place, and
//! the next apply (idempotent) completes them.

use gmsa::credspec::ApiVersion;
use kube::Client;
use kube::api::{Patch, PatchParams};
use proto::outcome::StepOutcome;
use serde_json::json;
use tracing::{info, instrument};

use crate::desired::{ApplyRequest, DesiredError, FIELD_MANAGER, ObjectKind, desired_objects, owner_selector};
use crate::ops::resources::{api_for, delete_if_present, get_value, list_values};
use crate::plan::{LiveState, NameConflict, Write, plan_apply};
use crate::preflight::Passed;

/// The step name in command results.
pub const APPLY_STEP: &str = "credspec-apply";

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The request does not make valid objects.
    #[error("building the desired objects failed")]
    Desired(#[from] DesiredError),
    /// Reading an object failed.
    #[error("reading {object} failed")]
    Read {
        object: String,
        #[source]
        source: kube::Error,
    },
    /// Listing this owner's objects of a kind failed.
    #[error("listing {kind:?} objects labelled for owner {owner} failed")]
    List {
        kind: ObjectKind,
        owner: String,
        #[source]
        source: kube::Error,
    },
    /// Objects at desired names belong to someone else; nothing was written.
    #[error("refusing to overwrite objects gmsa-fleet does not own: {}", describe_conflicts(.conflicts))]
    NameConflict { conflicts: Vec<NameConflict> },
    /// A server-side apply (or the delete of a recreate) was rejected.
    #[error("writing {object} failed")]
    Write {
        object: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting a leftover of a previous apply failed.
    #[error("pruning {object} failed")]
    Prune {
        object: String,
        #[source]
        source: kube::Error,
    },
}

fn describe_conflicts(conflicts: &[NameConflict]) -> String {
    conflicts
        .iter()
        .map(|conflict| format!("{} ({:?})", conflict.object, conflict.ownership))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies `request` at the version preflight chose. See the module doc for guarantees.
#[instrument(skip_all, fields(spec = %request.credspec.name, owner = %request.owner, version = passed.api_version().version()))]
pub async fn apply(client: &Client, request: &ApplyRequest, passed: &Passed) -> Result<StepOutcome, ApplyError> {
    let version = passed.api_version();
    let desired = desired_objects(request, version)?;
    let mut live = LiveState::default();
    for desired_object in &desired {
        let found = get_value(client, &desired_object.object, version)
            .await
            .map_err(|source| ApplyError::Read { object: desired_object.object.to_string(), source })?;
        if let Some(found) = found {
            live.at_desired.insert(desired_object.object.clone(), found);
        }
    }
    let selector = owner_selector(&request.owner);
    for kind in ObjectKind::ALL {
        let listed = list_values(client, kind, version, &selector).await.map_err(|source| ApplyError::List {
            kind,
            owner: request.owner.clone(),
            source,
        })?;
        live.labelled.extend(listed);
    }

    let plan = plan_apply(&desired, &live, &request.owner);
    if !plan.conflicts.is_empty() {
        return Err(ApplyError::NameConflict { conflicts: plan.conflicts });
    }
    for write in &plan.writes {
        write_object(client, write, version).await?;
    }
    for (object, _) in &plan.prunes {
        info!(%object, "pruning leftover of a previous apply");
        delete_if_present(client, object, version)
            .await
            .map_err(|source| ApplyError::Prune { object: object.to_string(), source })?;
    }
    let observed = json!({
        "apiVersion": version.api_version(),
        "objects": desired.iter().map(|d| d.object.to_string()).collect::<Vec<_>>(),
        "pruned": plan.prunes.iter().map(|(object, _)| object.to_string()).collect::<Vec<_>>(),
    });
    info!(writes = plan.writes.len(), prunes = plan.prunes.len(), "credspec apply finished");
    Ok(StepOutcome::from_diff(APPLY_STEP, plan.diff(), observed))
}

async fn write_object(client: &Client, write: &Write, version: ApiVersion) -> Result<(), ApplyError> {
    let object = &write.desired.object;
    let write_error = |source| ApplyError::Write { object: object.to_string(), source };
    if write.recreate {
        info!(%object, "recreating: roleRef is immutable");
        delete_if_present(client, object, version).await.map_err(write_error)?;
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api_for(client, object, version)
        .patch(&object.name, &params, &Patch::Apply(&write.desired.manifest))
        .await
        .map_err(write_error)?;
    Ok(())
}
