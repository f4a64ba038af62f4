//! `remove` (step `credspec-remove`): the reverse of [`crate::apply`] — find what gmsa-fleet
//! created for one spec and owner, delete it in reverse order (RoleBindings, ClusterRole,
//! GMSACredentialSpec), and report each removal as a `StepOutcome`, or only plan it in dry run.
//!
//! Expected flow: the agent stops its drift watch for this owner, then calls [`remove`]
//! (discovery, GETs at the spec's names, label LISTs, then DELETEs).
//!
//! Guarantees:
//! - Deletes only objects that carry both gmsa-fleet labels of this owner and a managedFields
//!   entry of field manager `gmsa-fleet` ([`crate::teardown`]); objects at our names without
//!   them are reported in `observed.left` with the reason (`not ours`, …) and never touched.
//! - Each DELETE carries the uid and resourceVersion that were judged: an object replaced or
//!   changed in between is not deleted ([`RemoveError::Changed`]; run again).
//! - Idempotent: a second run finds nothing and reports `unchanged`.
//! - [`Mode::DryRun`] sends no write and reports `planned` with the same diff.
//!
//! Caveats: not transactional; a failure mid-way leaves the remaining objects, which the next
//! run removes. Without the GMSACredentialSpec CRD no credspec can exist, so only the RBAC
//! objects are looked for (`observed.credspecCrd = "absent"`).

use std::collections::BTreeMap;

use gmsa::credspec::ApiVersion;
use kube::Client;
use kube::api::{DeleteParams, Preconditions};
use proto::outcome::{Mode, StepOutcome};
use serde_json::{Value, json};
use tracing::{info, instrument};

use crate::desired::{ObjectKind, ObjectRef, cluster_role_name, is_label_value, owner_selector};
use crate::ops::credspec::served_version;
use crate::ops::resources::{api_for, get_value, list_values};
use crate::teardown::plan_remove;

/// The step name in command results.
pub const REMOVE_STEP: &str = "credspec-remove";

/// Which spec and owner to tear down: the same `owner` label value and credspec name that the
/// apply used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveRequest {
    pub spec_name: String,
    pub owner: String,
}

/// Why a teardown failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// The owner is not a valid label value, so no object can carry it.
    #[error("owner label value {value:?} is invalid: must be 1-63 characters of [A-Za-z0-9-_.]")]
    Owner { value: String },
    /// Discovery of the credspec versions failed.
    #[error("discovering which GMSACredentialSpec versions the cluster serves failed")]
    Discovery(#[source] kube::Error),
    /// Reading an object at one of the spec's names failed.
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
    /// The object changed or was replaced after it was judged ours; nothing of it was deleted.
    #[error("{object} changed while being removed (uid/resourceVersion precondition failed); run the teardown again")]
    Changed {
        object: String,
        #[source]
        source: kube::Error,
    },
    /// A DELETE was rejected.
    #[error("deleting {object} failed")]
    Delete {
        object: String,
        #[source]
        source: kube::Error,
    },
}

/// Tears down what apply created for `request`; see the module doc for guarantees.
#[instrument(skip_all, fields(spec = %request.spec_name, owner = %request.owner, ?mode))]
pub async fn remove(client: &Client, request: &RemoveRequest, mode: Mode) -> Result<StepOutcome, RemoveError> {
    if !is_label_value(&request.owner) {
        return Err(RemoveError::Owner { value: request.owner.clone() });
    }
    let version = served_version(client).await.map_err(RemoveError::Discovery)?;
    let found = find(client, request, version).await?;
    let plan = plan_remove(&found, &request.owner);
    if mode.applies() {
        // Without the CRD no credspec was found, so the version only matters for RBAC kinds.
        let version = version.unwrap_or(ApiVersion::V1);
        for (object, live) in &plan.deletes {
            info!(%object, "removing");
            delete_judged(client, object, live, version).await?;
        }
    }
    let observed = json!({
        "credspecCrd": version.map_or("absent".to_string(), ApiVersion::api_version),
        "removed": plan.deletes.iter().map(|(object, _)| object.to_string()).collect::<Vec<_>>(),
        "left": plan.left.iter().map(|(object, reason)| json!({"object": object.to_string(), "reason": reason.to_string()})).collect::<Vec<_>>(),
    });
    info!(deletes = plan.deletes.len(), left = plan.left.len(), "credspec remove finished");
    Ok(StepOutcome::in_mode(mode, REMOVE_STEP, plan.diff(), observed))
}

/// The objects at the spec's names (credspec, ClusterRole) and every object the owner selector
/// lists, of each kind the cluster serves.
async fn find(
    client: &Client,
    request: &RemoveRequest,
    version: Option<ApiVersion>,
) -> Result<BTreeMap<ObjectRef, Value>, RemoveError> {
    let kinds: Vec<ObjectKind> =
        ObjectKind::ALL.into_iter().filter(|kind| *kind != ObjectKind::CredSpec || version.is_some()).collect();
    let version = version.unwrap_or(ApiVersion::V1);
    let mut found = BTreeMap::new();
    let mut named =
        vec![ObjectRef { kind: ObjectKind::ClusterRole, namespace: None, name: cluster_role_name(&request.spec_name) }];
    if kinds.contains(&ObjectKind::CredSpec) {
        named.push(ObjectRef { kind: ObjectKind::CredSpec, namespace: None, name: request.spec_name.clone() });
    }
    for object in named {
        let live = get_value(client, &object, version)
            .await
            .map_err(|source| RemoveError::Read { object: object.to_string(), source })?;
        if let Some(live) = live {
            found.insert(object, live);
        }
    }
    let selector = owner_selector(&request.owner);
    for kind in kinds {
        let listed = list_values(client, kind, version, &selector).await.map_err(|source| RemoveError::List {
            kind,
            owner: request.owner.clone(),
            source,
        })?;
        found.extend(listed);
    }
    Ok(found)
}

/// DELETE with the judged uid and resourceVersion as preconditions; 404 counts as removed.
async fn delete_judged(
    client: &Client,
    object: &ObjectRef,
    live: &Value,
    version: ApiVersion,
) -> Result<(), RemoveError> {
    let metadata = &live["metadata"];
    let preconditions = Preconditions {
        uid: metadata["uid"].as_str().map(str::to_string),
        resource_version: metadata["resourceVersion"].as_str().map(str::to_string),
    };
    let params = DeleteParams::default().preconditions(preconditions);
    match api_for(client, object, version).delete(&object.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Err(RemoveError::Changed { object: object.to_string(), source: kube::Error::Api(status) })
        }
        Err(source) => Err(RemoveError::Delete { object: object.to_string(), source }),
    }
}
