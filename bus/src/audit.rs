//! The audit log's streams (`proto::audit`): appending sealed batches (one writer, enforced by
//! the stream's last sequence), reading them back, the signed checkpoints, the inbox of drafts,
//! and tailing the source streams the writer records.
//!
//! # Guarantees
//! - **One writer, no fork:** every append names the stream's last sequence the writer knows
//!   (`Nats-Expected-Last-Sequence`); a deposed leader's append is refused with
//!   [`BusError::LogConflict`], and the new leader continues from the stored tail.
//! - **Append-only:** the streams deny deletes and purges and allow no rollups
//!   ([`crate::topology`]); nothing here can remove an entry.

use crate::{Bus, BusError, headers};
use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use bytes::Bytes;
use futures::StreamExt;
use gmsa::audit::seal::SealedBatch;
use proto::audit::{self, AuditEntry};
use proto::subjects;
use time::OffsetDateTime;

/// One message read from a stream, as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub stream: String,
    pub sequence: u64,
    pub subject: String,
    pub headers: Option<HeaderMap>,
    pub payload: Bytes,
    pub published: OffsetDateTime,
}

impl Stored {
    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.as_ref().and_then(|headers| headers.get(name)).map(|value| value.as_str())
    }
}

/// Reads a stream in order from a sequence on, through an ordered consumer.
pub struct Tail {
    stream: String,
    messages: pull::Ordered,
}

impl Tail {
    /// Reads `stream` (only `filter`, if given) from `start` (≥ 1) on, including what arrives later.
    pub async fn open(bus: &Bus, stream: &str, filter: Option<&str>, start: u64) -> Result<Tail, BusError> {
        let handle = open_stream(bus, stream).await?;
        let consumer_error = |source: async_nats::Error| BusError::Consumer {
            stream: stream.to_string(),
            consumer: "ordered".into(),
            source,
        };
        let consumer = handle
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: start.max(1) },
                filter_subject: filter.unwrap_or_default().to_string(),
                ..Default::default()
            })
            .await
            .map_err(|err| consumer_error(err.into()))?;
        let messages = consumer.messages().await.map_err(|err| consumer_error(err.into()))?;
        Ok(Tail { stream: stream.to_string(), messages })
    }

    /// The next message; `None` when the consumer ended.
    pub async fn next(&mut self) -> Option<Result<Stored, BusError>> {
        let message = self.messages.next().await?;
        Some(match message {
            Ok(message) => {
                let (sequence, published) = message
                    .info()
                    .map_or((0, OffsetDateTime::UNIX_EPOCH), |info| (info.stream_sequence, info.published));
                let message = message.message;
                Ok(Stored {
                    stream: self.stream.clone(),
                    sequence,
                    subject: message.subject.to_string(),
                    headers: message.headers,
                    payload: message.payload,
                    published,
                })
            }
            Err(source) => Err(BusError::Consumer {
                stream: self.stream.clone(),
                consumer: "ordered".into(),
                source: source.into(),
            }),
        })
    }
}

async fn open_stream(bus: &Bus, name: &str) -> Result<Stream<()>, BusError> {
    bus.jetstream()
        .get_stream_no_info(name)
        .await
        .map_err(|source| BusError::OpenStream { stream: name.to_string(), source })
}

/// The last sequence of a stream (0 when empty).
pub async fn last_sequence(bus: &Bus, name: &str) -> Result<u64, BusError> {
    let mut stream = bus
        .jetstream()
        .get_stream(name)
        .await
        .map_err(|source| BusError::OpenStream { stream: name.to_string(), source })?;
    let info = stream.info().await.map_err(|source| BusError::Consumer {
        stream: name.to_string(),
        consumer: "info".into(),
        source: source.into(),
    })?;
    Ok(info.state.last_sequence)
}

/// Every message of `stream` from `start` up to its last sequence when called, in order, each
/// given to `each`; an error from `each` stops the read.
pub async fn read_to_end<E: From<BusError>>(
    bus: &Bus,
    stream: &str,
    start: u64,
    mut each: impl FnMut(Stored) -> Result<(), E>,
) -> Result<u64, E> {
    let last = last_sequence(bus, stream).await?;
    if last < start.max(1) {
        return Ok(0);
    }
    let mut tail = Tail::open(bus, stream, None, start).await?;
    let mut read = 0;
    while let Some(message) = tail.next().await {
        let message = message?;
        let sequence = message.sequence;
        each(message)?;
        read += 1;
        if sequence >= last {
            break;
        }
    }
    Ok(read)
}

/// The audit log (writer side).
#[derive(Clone)]
pub struct AuditLog {
    bus: Bus,
    stream: Stream<()>,
}

impl AuditLog {
    pub async fn open(bus: &Bus) -> Result<AuditLog, BusError> {
        Ok(AuditLog { bus: bus.clone(), stream: open_stream(bus, subjects::AUDIT_STREAM).await? })
    }

    /// The last stored batch, if any.
    pub async fn last(&self) -> Result<Option<Stored>, BusError> {
        match self.stream.direct_get_last_for_subject(subjects::AUDIT_LOG).await {
            Ok(message) => Ok(Some(Stored {
                stream: subjects::AUDIT_STREAM.to_string(),
                sequence: message.sequence,
                subject: message.subject.to_string(),
                headers: Some(message.headers),
                payload: message.payload,
                published: message.time,
            })),
            Err(err) if err.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(source) => Err(BusError::DirectGet {
                stream: subjects::AUDIT_STREAM.to_string(),
                subject: subjects::AUDIT_LOG.to_string(),
                source,
            }),
        }
    }

    /// Appends a sealed batch after the stream's sequence `expected_last`; returns its sequence.
    pub async fn append(&self, batch: &SealedBatch, cursors: &str, expected_last: u64) -> Result<u64, BusError> {
        let subject = subjects::AUDIT_LOG.to_string();
        let mut headers = headers::outgoing(&format!("audit-{}", batch.first), None);
        headers.insert(async_nats::header::NATS_EXPECTED_LAST_SEQUENCE, expected_last.to_string().as_str());
        headers.insert(audit::FIRST_HEADER, batch.first.to_string().as_str());
        headers.insert(audit::HASHES_HEADER, batch.hashes.as_str());
        headers.insert(audit::FRONTIER_HEADER, batch.frontier.as_str());
        headers.insert(audit::CURSOR_HEADER, cursors);
        headers.insert(proto::identity::KEY_HEADER, batch.signature.key.to_string().as_str());
        headers.insert(proto::identity::SIGNATURE_HEADER, batch.signature.value.as_str());
        crate::log::append_expecting(&self.bus, subject, headers, batch.body.clone().into(), expected_last).await
    }

    /// Publishes a signed checkpoint of `size` entries.
    pub async fn publish_checkpoint(&self, note: &str, size: u64) -> Result<u64, BusError> {
        let subject = subjects::AUDIT_CHECKPOINT.to_string();
        let mut headers = headers::outgoing(&format!("checkpoint-{size}"), None);
        headers.insert(audit::SIZE_HEADER, size.to_string().as_str());
        let ack = self
            .bus
            .jetstream()
            .publish_with_headers(subject.clone(), headers, note.to_string().into())
            .await
            .map_err(|source| BusError::Publish { subject: subject.clone(), source })?;
        ack.await.map(|ack| ack.sequence).map_err(|source| BusError::Publish { subject, source })
    }
}

/// Every stored checkpoint note, with its stream sequence, in order.
pub async fn checkpoints(bus: &Bus) -> Result<Vec<(u64, String)>, BusError> {
    let mut notes = Vec::new();
    read_to_end::<BusError>(bus, subjects::AUDIT_CHECKPOINT_STREAM, 1, |message| {
        notes.push((message.sequence, String::from_utf8_lossy(&message.payload).into_owned()));
        Ok(())
    })
    .await?;
    Ok(notes)
}

/// Publishes a draft to the audit inbox (any coordinator process); the leader's writer appends
/// it. `id` makes a re-publish within the duplicate window a no-op.
pub async fn publish_draft(bus: &Bus, id: &str, draft: &AuditEntry) -> Result<(), BusError> {
    let subject = subjects::audit_inbox(draft.kind());
    let body = serde_json::to_vec(draft).map_err(|source| BusError::Encode { subject: subject.clone(), source })?;
    let ack = bus
        .jetstream()
        .publish_with_headers(subject.clone(), headers::outgoing(id, None), body.into())
        .await
        .map_err(|source| BusError::Publish { subject: subject.clone(), source })?;
    ack.await.map(|_| ()).map_err(|source| BusError::Publish { subject, source })
}
