//! The NATS auth callout, served by the coordinator: every agent and operator connection is
//! authenticated here (`gmsa::natsauth` decides; this module does the I/O). The server asks on
//! `$SYS.REQ.USER.AUTH` in the callout account; the answer is a user JWT with the principal's
//! permissions, signed by the issuer key the server configuration names, and expiring after
//! `ttl`: at expiry the server drops the connection and its reconnection is asked about again, so a
//! revoked agent or a removed operator is cut off within `ttl` without restarting anything.
//!
//! Refuses (the server then refuses the connection): an unknown user form, an agent with no
//! enrollment or a revoked one, an operator not in `[[operators]]`, a token outside the window or
//! not signed by the principal's key.

use crate::authz::Operators;
use bus::enrollment::Enrollments;
use bus::{Bus, BusError};
use futures::StreamExt;
use gmsa::natsauth::{self, Principal};
use gmsa::signing::SecretKey;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// The subject the server sends authorization requests to.
pub const SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// How the callout answers.
#[derive(Clone)]
pub struct CalloutSettings {
    /// The key whose account nkey is the server's `auth_callout.issuer`.
    pub issuer: Arc<SecretKey>,
    /// The account agents and operators are placed in.
    pub account: String,
    /// How long an issued user JWT lasts (the bound on how late a revocation takes effect).
    pub ttl: Duration,
    /// How far a connection token's time may be from the coordinator's clock.
    pub window: Duration,
}

/// Serves the callout on `callout_bus` (a connection in the callout account) until `shutdown`;
/// enrollments are read through `fleet_bus`.
pub async fn serve(
    callout_bus: Bus,
    fleet_bus: Bus,
    operators: Arc<Operators>,
    settings: CalloutSettings,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), BusError> {
    let enrollments = Enrollments::follow(&fleet_bus).await?;
    let mut requests = callout_bus
        .client()
        .queue_subscribe(SUBJECT, "coordinator".into())
        .await
        .map_err(|source| BusError::Subscribe { subject: SUBJECT.into(), source })?;
    info!("auth callout serving");
    loop {
        let message = tokio::select! {
            message = requests.next() => message,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(message) = message else { return Ok(()) };
        let Some(reply) = message.reply.clone() else { continue };
        let (client, enrollments, operators, settings) =
            (callout_bus.client().clone(), enrollments.clone(), operators.clone(), settings.clone());
        tokio::spawn(async move {
            let Some(answer) = answer(&message.payload, &enrollments, &operators, &settings).await else { return };
            if let Err(err) = client.publish(reply, answer.into()).await {
                warn!(error = %err, "auth callout reply not sent");
            }
        });
    }
}

/// The response JWT for one request (`None` when the request cannot be read at all: the server
/// then times the connection out).
async fn answer(
    payload: &[u8],
    enrollments: &Enrollments,
    operators: &Operators,
    settings: &CalloutSettings,
) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    let request = match natsauth::decode_request(text) {
        Ok(request) => request,
        Err(reason) => {
            warn!(reason, "auth callout request not understood");
            return None;
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let decided = decide(&request, enrollments, operators, settings, now).await;
    match &decided {
        Ok(_) => info!(user = %request.user, "connection authorized"),
        Err(reason) => warn!(user = %proto::decode::bounded(&request.user, 80), reason = %reason, "connection refused"),
    }
    Some(natsauth::response_jwt(&settings.issuer, &request.user_nkey, &request.server_id, decided, now))
}

async fn decide(
    request: &natsauth::AuthRequest,
    enrollments: &Enrollments,
    operators: &Operators,
    settings: &CalloutSettings,
    now: i64,
) -> Result<String, String> {
    let principal = Principal::parse(&request.user)?;
    let (key, permissions) = match &principal {
        Principal::Agent { cluster } => {
            let keys = enrollments.keys_of(cluster).await.map_err(|err| format!("enrollment not readable: {err}"))?;
            let key = keys
                .first()
                .copied()
                .ok_or_else(|| format!("{cluster} is not enrolled, or its enrollment is revoked"))?;
            (key, natsauth::agent_permissions(cluster))
        }
        Principal::Operator { name } => {
            let key = operators.key_of(name).ok_or_else(|| format!("{name} is not an operator"))?;
            (key, natsauth::operator_permissions(name))
        }
    };
    let window = i64::try_from(settings.window.as_secs()).unwrap_or(i64::MAX);
    natsauth::check_token(&request.user, &request.password, &key, now, window)?;
    let ttl = i64::try_from(settings.ttl.as_secs()).unwrap_or(i64::MAX).max(1);
    Ok(natsauth::user_jwt(
        &settings.issuer,
        &request.user_nkey,
        &request.user,
        &settings.account,
        &permissions,
        now,
        ttl,
    ))
}
