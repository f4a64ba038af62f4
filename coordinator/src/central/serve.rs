//! `fleet.ctl.teardown-shared`: teardown's shared deletions as a request the daemon serves, so
//! the credentials that delete the secret, the identity, the gMSA and the domain user stay in the
//! coordinator. fleetctl submits ([`call`]) and prints the reply.
//!
//! Guarantees: the in-use check runs here, against the records as the daemon reads them when the
//! request arrives; a request that fails — or panics — ends that request, never the server.

use crate::central::Central;
use crate::record;
use crate::teardown::{SharedError, identity_parts};
use bus::{Bus, BusError};
use proto::command::IdentityChoice;
use proto::control::{TEARDOWN_SHARED, TeardownSharedReply, TeardownSharedRequest};
use proto::resources::SharedResource;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, info_span};

/// Serves `fleet.ctl.teardown-shared` until `shutdown`; without `central` every request is
/// refused with `central_not_configured`.
pub async fn serve(
    bus: Bus,
    central: Option<Arc<Central>>,
    operators: Arc<crate::authz::Operators>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), BusError> {
    crate::control::serve_requests(
        bus,
        proto::subjects::control(TEARDOWN_SHARED),
        shutdown,
        || info_span!("control.teardown_shared"),
        operators,
        |_| proto::identity::Role::Operate,
        move |bus, payload, actor| {
            let central = central.clone();
            async move { answer(&bus, central.as_deref(), &payload, Some(actor)).await }
        },
        |code, message| TeardownSharedReply::Refused { code: code.into(), message },
    )
    .await
}

/// The reply to one raw request.
pub async fn answer(
    bus: &Bus,
    central: Option<&Central>,
    payload: &[u8],
    actor: Option<String>,
) -> TeardownSharedReply {
    let refused = |code: &str, message: String| TeardownSharedReply::Refused { code: code.into(), message };
    let request = match proto::decode::teardown_shared_request(payload) {
        Ok(request) => TeardownSharedRequest { requested_by: actor.or(request.requested_by), ..request },
        Err(refusal) => return refused(refusal.code.as_str(), refusal.message),
    };
    let Some(central) = central else {
        return refused(
            "central_not_configured",
            "this coordinator has no `central` configuration section: it cannot delete shared resources".into(),
        );
    };
    let identities = match identities_of(&request) {
        Ok(identities) => identities,
        Err(message) => return refused("invalid_request", message),
    };
    let records = match record::all(bus).await {
        Ok(records) => records,
        Err(err) => return refused("bus_error", bus::chain(&err)),
    };
    info!(requested_by = ?request.requested_by, delete = ?request.teardown.delete, mode = ?request.teardown.mode, "shared teardown");
    match central.delete_shared(&records, &request.teardown, &identities).await {
        Ok(steps) => TeardownSharedReply::Done { steps },
        Err(err @ SharedError::InUse(_)) => refused("in_use", err.to_string()),
        Err(err @ SharedError::NotConfigured { .. }) => refused("central_not_configured", err.to_string()),
        Err(SharedError::Step { step, message, completed }) => {
            TeardownSharedReply::Failed { code: format!("{step}_failed"), message, completed }
        }
    }
}

/// The identities to delete, each checked to be the teardown's user-assigned identity.
fn identities_of(request: &TeardownSharedRequest) -> Result<Vec<(String, String, String)>, String> {
    if !request.teardown.delete.identity {
        return Ok(Vec::new());
    }
    let IdentityChoice::UserAssigned { resource_group, name } = &request.teardown.identity else {
        return Err("delete.identity needs a user-assigned identity".into());
    };
    request
        .identities
        .iter()
        .map(|id| {
            let parts = identity_parts(&SharedResource::identity(id))
                .ok_or_else(|| format!("identities: {id:?} is not a user-assigned identity id"))?;
            if !parts.1.eq_ignore_ascii_case(resource_group) || !parts.2.eq_ignore_ascii_case(name) {
                return Err(format!("identities: {id:?} is not {resource_group}/{name}"));
            }
            Ok(parts)
        })
        .collect()
}

/// Why [`call`] got no reply.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the request could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("no coordinator answered on {subject}; is fleet-coordinator running? ({message})")]
    NoAnswer { subject: String, message: String },
    #[error("the coordinator did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the coordinator's reply is not understood: {0}")]
    Decode(#[source] serde_json::Error),
}

/// Sends a request to the daemon and waits up to `timeout` for its reply (deleting and purging
/// a secret and an identity takes seconds to minutes).
pub async fn call(
    bus: &Bus,
    request: &TeardownSharedRequest,
    timeout: Duration,
) -> Result<TeardownSharedReply, CallError> {
    let subject = proto::subjects::control(TEARDOWN_SHARED);
    let body = serde_json::to_vec(request)?;
    // The client's default request timeout (10 s) is shorter than a purge may take.
    let sent = bus.signed_request(subject.clone(), body, timeout);
    let reply = tokio::time::timeout(timeout + Duration::from_secs(1), sent)
        .await
        .map_err(|_| CallError::Timeout(timeout))?
        .map_err(|err| CallError::NoAnswer { subject, message: err.to_string() })?;
    serde_json::from_slice(&reply.payload).map_err(CallError::Decode)
}
