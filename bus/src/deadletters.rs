//! Publishing dead letters (`proto::deadletter`): a reader that cannot act on a message reports it
//! here once and moves on. Acknowledged JetStream publishes, so a dead letter is as durable as a
//! result; the message id makes a repeated report (after a crash) one record.

use crate::{Bus, BusError, headers};
use proto::deadletter::DeadLetter;
use proto::subjects;

/// Publishes `letter` on `fleet.dead.<reporter>` and waits for the acknowledgement. `message_id`
/// identifies what it reports (e.g. `cmd-<cluster>-<sequence>`), so reporting it again is stored once.
pub async fn publish(bus: &Bus, letter: &DeadLetter, message_id: &str) -> Result<(), BusError> {
    let subject = subjects::dead(&letter.reporter);
    let payload = serde_json::to_vec(letter).map_err(|source| BusError::Encode { subject: subject.clone(), source })?;
    let ack = bus
        .jetstream()
        .publish_with_headers(subject.clone(), headers::outgoing(message_id, None), payload.into())
        .await
        .map_err(|source| BusError::Publish { subject: subject.clone(), source })?;
    ack.await.map_err(|source| BusError::Publish { subject, source })?;
    Ok(())
}
