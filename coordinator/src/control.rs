//! The control API server: answers `fleet.ctl.run` requests from fleetctl by planning the rollout,
//! publishing its commands (many in flight) and recording it.
//!
//! # Guarantees
//! The rollout record is written before the commands are published, and each command's id is
//! derived from the rollout id and the cluster: re-publishing a rollout (after a crash mid-publish)
//! is deduplicated by JetStream and, beyond its window, by the agents.

use crate::authz::Operators;
use crate::plan::{self, Plan};
use crate::rollout::{self, RolloutRecord};
use crate::{inventory, record, teardown};
use bus::commands::CommandPublisher;
use bus::{Bus, BusError, headers};
use futures::StreamExt;
use proto::control::{RunReply, RunRequest};
use proto::identity::Role;
use proto::subjects;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

/// How many command publishes are in flight at once.
const PUBLISH_WINDOW: usize = 512;

/// Plans and, unless dry run, publishes a rollout.
pub async fn run(bus: &Bus, request: RunRequest) -> Result<RunReply, BusError> {
    if let Err(err) = request.schema.check_supported() {
        return Ok(RunReply::Refused { code: "unsupported_schema".into(), message: err.to_string() });
    }
    let now = OffsetDateTime::now_utc();
    let inventory = inventory::load(bus).await?;
    for entry in &inventory.invalid {
        warn!(bucket = %entry.bucket, key = %entry.key, code = %entry.code, message = %entry.message, "inventory entry skipped");
    }
    let rollout_id = plan::new_rollout_id(now);
    let planned = plan::plan(
        &inventory.entries,
        &request.selector,
        &request.command,
        &rollout_id,
        now,
        request.deadline_secs,
        request.requested_by.clone(),
    );
    let planned = match planned {
        Ok(planned) => planned,
        Err(err) => return Ok(RunReply::Refused { code: "invalid_request".into(), message: err.to_string() }),
    };
    let targets = planned.targets();
    if let proto::Command::Teardown(payload) = &request.command {
        let selected: std::collections::BTreeSet<String> = targets.iter().map(|t| t.cluster.clone()).collect();
        let records = record::all(bus).await?;
        let found = teardown::conflicts(&records, &selected, payload);
        if !found.is_empty() {
            let message = found.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            return Ok(RunReply::Refused {
                code: "in_use".into(),
                message: format!("{message}; tear those clusters down too (widen the selector) or keep the resource"),
            });
        }
    }
    let skipped = planned.skipped.clone();
    let invalid = inventory.invalid;
    if request.dry_run {
        return Ok(RunReply::Accepted { rollout_id, dry_run: true, targets, skipped, invalid });
    }
    let deadline = planned.envelopes.first().map_or(now, |envelope| envelope.deadline);
    let record = RolloutRecord {
        rollout_id: rollout_id.clone(),
        kind: request.command.kind(),
        selector: request.selector.clone(),
        targets: targets.clone(),
        created_at: now,
        deadline,
        requested_by: request.requested_by.clone(),
    };
    rollout::rollouts(bus).await?.put(&rollout_id, &record).await?;
    publish(bus, &planned).await?;
    info!(rollout_id = %rollout_id, targets = targets.len(), kind = %request.command.kind(), "rollout published");
    Ok(RunReply::Accepted { rollout_id, dry_run: false, targets, skipped, invalid })
}

/// Publishes every envelope of a plan, [`PUBLISH_WINDOW`] acknowledgements in flight.
pub async fn publish(bus: &Bus, plan: &Plan) -> Result<(), BusError> {
    let publisher = CommandPublisher::new(bus);
    let traceparent = headers::new_traceparent();
    let mut acks = futures::stream::iter(plan.envelopes.iter().cloned())
        .map(|envelope| {
            let publisher = publisher.clone();
            let traceparent = traceparent.clone();
            async move {
                let ack = publisher.send(&envelope, Some(&traceparent)).await?;
                publisher.confirm(&envelope.cluster, ack).await
            }
        })
        .buffer_unordered(PUBLISH_WINDOW);
    while let Some(ack) = acks.next().await {
        ack?;
    }
    Ok(())
}

/// Serves `fleet.ctl.run` until `shutdown`.
///
/// Each request is decoded by [`proto::decode::run_request`] and answered in a task of its own:
/// a request that fails — or a bug that panics on one — ends that request, never the server.
pub async fn serve(bus: Bus, operators: Arc<Operators>, shutdown: watch::Receiver<bool>) -> Result<(), BusError> {
    let subject = subjects::control(proto::control::RUN);
    serve_requests(
        bus,
        subject,
        shutdown,
        || info_span!("control.run"),
        operators,
        // A dry run only reads; anything else sends commands.
        |payload| match proto::decode::run_request(payload) {
            Ok(request) if request.dry_run => Role::ReadOnly,
            _ => Role::Operate,
        },
        |bus, payload, actor| async move { answer(&bus, &payload, actor).await },
        |code, message| RunReply::Refused { code: code.into(), message },
    )
    .await
}

/// Serves request-reply on `subject` (queue group `coordinator`) until `shutdown`: each request
/// is checked by `operators` (signed by a known key whose role covers `role_of(payload)`, see
/// [`crate::authz`]), then answered by `handle` with the verified actor's name, in a task of its
/// own, under `span`. A refused request is answered with `refuse(code, why)`; so is a task that
/// fails (a panic, `internal_error`): the client gets an answer and the server keeps serving.
pub(crate) async fn serve_requests<R, F>(
    bus: Bus,
    subject: String,
    mut shutdown: watch::Receiver<bool>,
    span: impl Fn() -> tracing::Span,
    operators: Arc<Operators>,
    role_of: impl Fn(&[u8]) -> Role,
    handle: impl Fn(Bus, bytes::Bytes, String) -> F,
    refuse: impl Fn(&str, String) -> R + Clone + Send + 'static,
) -> Result<(), BusError>
where
    R: serde::Serialize + Send + 'static,
    F: std::future::Future<Output = R> + Send + 'static,
{
    let mut requests = bus
        .client()
        .queue_subscribe(subject.clone(), "coordinator".into())
        .await
        .map_err(|source| BusError::Subscribe { subject: subject.clone(), source })?;
    loop {
        let message = tokio::select! {
            message = requests.next() => message,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(message) = message else { return Ok(()) };
        let Some(reply_to) = message.reply.clone() else { continue };
        let signer = bus::headers::signer_of(message.headers.as_ref()).map(|key| key.to_string());
        let (answer, name) = match crate::admit::admit(&bus, &operators, &message, role_of(&message.payload)).await {
            Ok(actor) => {
                let name = actor.name.clone();
                (Some(tokio::spawn(handle(bus.clone(), message.payload.clone(), actor.name).instrument(span()))), name)
            }
            Err(refusal) => {
                warn!(subject = %subject, code = %refusal.code, message = %refusal.message, "control request refused");
                let draft = crate::audit::sources::request_draft(
                    OffsetDateTime::now_utc(),
                    &subject,
                    signer.as_deref(),
                    Err((refusal.code.as_str(), &refusal.message)),
                    &message.payload,
                    None,
                );
                crate::audit::submit(&bus, &format!("request-{}", uuid::Uuid::new_v4().simple()), &draft).await;
                let reply = refuse(refusal.code.as_str(), refusal.message);
                send_reply(&bus, reply_to.clone(), &reply).await;
                continue;
            }
        };
        let Some(answer) = answer else { continue };
        let (bus, refuse, subject) = (bus.clone(), refuse.clone(), subject.clone());
        tokio::spawn(async move {
            let reply = answer.await.unwrap_or_else(|err| {
                refuse(
                    "internal_error",
                    format!("the coordinator failed on this request ({err}); it keeps serving others"),
                )
            });
            let draft = crate::audit::sources::request_draft(
                OffsetDateTime::now_utc(),
                &subject,
                signer.as_deref(),
                Ok(&name),
                &message.payload,
                serde_json::to_value(&reply).ok().as_ref(),
            );
            crate::audit::submit(&bus, &format!("request-{}", uuid::Uuid::new_v4().simple()), &draft).await;
            match serde_json::to_vec(&reply) {
                Ok(body) => {
                    if let Err(err) = bus.client().publish(reply_to, body.into()).await {
                        warn!(error = %err, "control reply not sent");
                    }
                }
                Err(err) => warn!(error = %err, "control reply not encoded"),
            }
        });
    }
}

/// Sends a reply (best effort: a lost reply times the client out).
pub(crate) async fn send_reply(bus: &Bus, reply_to: async_nats::Subject, reply: &impl serde::Serialize) {
    match serde_json::to_vec(reply) {
        Ok(body) => {
            if let Err(err) = bus.client().publish(reply_to, body.into()).await {
                warn!(error = %err, "control reply not sent");
            }
        }
        Err(err) => warn!(error = %err, "control reply not encoded"),
    }
}

/// The reply to one raw request from the verified `actor`.
async fn answer(bus: &Bus, payload: &[u8], actor: String) -> RunReply {
    match proto::decode::run_request(payload) {
        Ok(request) => run(bus, RunRequest { requested_by: Some(actor), ..request })
            .await
            .unwrap_or_else(|err| RunReply::Refused { code: "bus_error".into(), message: bus::chain(&err) }),
        Err(refusal) => RunReply::Refused { code: refusal.code.as_str().into(), message: refusal.message },
    }
}
