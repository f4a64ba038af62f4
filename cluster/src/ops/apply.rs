//! `apply`: read what the cluster holds, plan with [`crate::plan`], write only the difference by
//! server-side apply, prune this owner's leftovers, and report a `StepOutcome`.
//!
//! Expected flow: preflight → [`apply`] (GETs and label LISTs; no write when the plan is empty).
//!
//! Guarantees:
//! - A second apply of the same request writes nothing and reports `unchanged`.
//! - [`Mode::DryRun`] ([`apply_in`]) reports the same diff as `planned` and persists nothing:
//!   the planned writes go out as server-side apply with `dryRun=All` and the prunes as DELETEs
//!   with `dryRun: ["All"]`, so the API server's validation and admission judge them as they
//!   would judge the real apply (a dry run fails where the apply would). A recreate (changed
//!   `roleRef`) is checked by its dry-run DELETE only: the object stays, so a dry-run create at
//!   its name cannot be judged.
//! - Objects at a desired name that gmsa-fleet does not own (no labels, or another owner's) are
//!   never written: the apply fails with [`ApplyError::NameConflict`] before its first write.
//! - Pruning deletes only objects carrying `managed-by=gmsa-fleet` and this owner's label.
//!
//! Caveats: writes are not transactional; a failure mid-way leaves earlier writes in place, and
//! the next apply (idempotent) completes them.

use gmsa::credspec::ApiVersion;
use kube::Client;
use kube::api::{DeleteParams, Patch, PatchParams};
use proto::outcome::{Mode, StepOutcome};
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
pub async fn apply(client: &Client, request: &ApplyRequest, passed: &Passed) -> Result<StepOutcome, ApplyError> {
    apply_in(client, request, passed, Mode::Apply).await
}

/// [`apply`] in `mode`: a dry run reads, plans and sends its writes with `dryRun=All` only.
#[instrument(skip_all, fields(spec = %request.credspec.name, owner = %request.owner, version = passed.api_version().version(), ?mode))]
pub async fn apply_in(
    client: &Client,
    request: &ApplyRequest,
    passed: &Passed,
    mode: Mode,
) -> Result<StepOutcome, ApplyError> {
    let dry_run = !mode.applies();
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
        write_object(client, write, version, dry_run).await?;
    }
    for (object, _) in &plan.prunes {
        info!(%object, dry_run, "pruning leftover of a previous apply");
        delete_if_present(client, object, version, &delete_params(dry_run))
            .await
            .map_err(|source| ApplyError::Prune { object: object.to_string(), source })?;
    }
    let observed = json!({
        "apiVersion": version.api_version(),
        "objects": desired.iter().map(|d| d.object.to_string()).collect::<Vec<_>>(),
        "pruned": plan.prunes.iter().map(|(object, _)| object.to_string()).collect::<Vec<_>>(),
    });
    info!(writes = plan.writes.len(), prunes = plan.prunes.len(), dry_run, "credspec apply finished");
    Ok(StepOutcome::in_mode(mode, APPLY_STEP, plan.diff(), observed))
}

fn delete_params(dry_run: bool) -> DeleteParams {
    DeleteParams { dry_run, ..DeleteParams::default() }
}

async fn write_object(client: &Client, write: &Write, version: ApiVersion, dry_run: bool) -> Result<(), ApplyError> {
    let object = &write.desired.object;
    let write_error = |source| ApplyError::Write { object: object.to_string(), source };
    if write.recreate {
        info!(%object, dry_run, "recreating: roleRef is immutable");
        delete_if_present(client, object, version, &delete_params(dry_run)).await.map_err(write_error)?;
        if dry_run {
            // The dry-run delete left the object in place: an apply at its name would be judged
            // against the old, immutable roleRef and refused, which the real recreate is not.
            return Ok(());
        }
    }
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    api_for(client, object, version)
        .patch(&object.name, &params, &Patch::Apply(&write.desired.manifest))
        .await
        .map_err(write_error)?;
    Ok(())
}
