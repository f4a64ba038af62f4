//! Append-only logs, one subject each, in the `FLEET_ROLLOUT_LOG` stream: the coordinator's
//! rollout driver writes every transition of a rollout to `fleet.rollout.<rollout id>` **before**
//! acting on it, and rebuilds the rollout by reading the subject back.
//!
//! # Guarantees
//! - **One writer:** every append names the subject's last sequence it knows
//!   (`Nats-Expected-Last-Subject-Sequence`); an append by a writer that fell behind — a deposed
//!   leader — is refused with [`BusError::LogConflict`], so two coordinators can never fork a log.
//! - **Durable before acting:** an append returns once JetStream has acknowledged (stored) it.

use crate::{Bus, BusError, headers};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use bytes::Bytes;
use proto::subjects;

/// The rollout logs (coordinator side).
#[derive(Clone)]
pub struct RolloutLog {
    bus: Bus,
    stream: Stream<()>,
}

impl RolloutLog {
    /// Opens the log stream (the coordinator creates it at start-up).
    pub async fn open(bus: &Bus) -> Result<RolloutLog, BusError> {
        let stream = bus
            .jetstream()
            .get_stream_no_info(subjects::ROLLOUT_LOG_STREAM)
            .await
            .map_err(|source| BusError::OpenStream { stream: subjects::ROLLOUT_LOG_STREAM.to_string(), source })?;
        Ok(RolloutLog { bus: bus.clone(), stream })
    }

    /// Appends `entry` to the log of `rollout_id`, whose last sequence the writer knows is
    /// `expected_last` (0: the log is empty). Returns the entry's sequence.
    pub async fn append(&self, rollout_id: &str, entry: Vec<u8>, expected_last: u64) -> Result<u64, BusError> {
        let subject = subjects::rollout_log(rollout_id);
        let mut headers = headers::outgoing(&format!("log-{rollout_id}-{expected_last}"), None);
        headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, expected_last.to_string().as_str());
        append_expecting(&self.bus, subject, headers, entry.into(), expected_last).await
    }

    /// Every entry of the log of `rollout_id`, with its sequence, in order.
    pub async fn read(&self, rollout_id: &str) -> Result<Vec<(u64, Bytes)>, BusError> {
        let subject = subjects::rollout_log(rollout_id);
        let mut entries = Vec::new();
        let mut after = 0;
        loop {
            match self.stream.direct_get_next_for_subject(subject.as_str(), Some(after + 1)).await {
                Ok(message) => {
                    after = message.sequence;
                    entries.push((message.sequence, message.payload));
                }
                Err(err) if err.kind() == DirectGetErrorKind::NotFound => return Ok(entries),
                Err(source) => {
                    return Err(BusError::DirectGet {
                        stream: subjects::ROLLOUT_LOG_STREAM.to_string(),
                        subject,
                        source,
                    });
                }
            }
        }
    }
}

/// Publishes `body` whose headers name the last sequence the writer knows (`expected_last`,
/// of the subject or the stream) and waits for the acknowledgement: the stored sequence, or
/// [`BusError::LogConflict`] when another writer appended since. The rollout logs and the audit
/// log append through this.
pub(crate) async fn append_expecting(
    bus: &Bus,
    subject: String,
    headers: async_nats::HeaderMap,
    body: Bytes,
    expected_last: u64,
) -> Result<u64, BusError> {
    let ack = bus
        .jetstream()
        .publish_with_headers(subject.clone(), headers, body)
        .await
        .map_err(|source| BusError::Publish { subject: subject.clone(), source })?;
    match ack.await {
        Ok(ack) => Ok(ack.sequence),
        Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => {
            Err(BusError::LogConflict { subject, expected_last })
        }
        Err(source) => Err(BusError::Publish { subject, source }),
    }
}
