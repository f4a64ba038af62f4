//! The command stream: the coordinator publishes, each agent reads its own subject.
//!
//! Delivery to an agent, step by step:
//! 1. The coordinator publishes the envelope to `fleet.cmd.<cluster>` with `Nats-Msg-Id` = command
//!    id; JetStream stores it (a duplicate publish within the dedup window is dropped).
//! 2. Once JetStream has acknowledged it (it is stored), the coordinator sends a core-NATS
//!    **nudge** on `fleet.wake.<cluster>`. (The core copy of the publish itself is not used: it can
//!    reach a subscriber before the stream has stored the message, and a read then finds nothing.)
//! 3. On a wake-up, on (re)connect and on a periodic poll, the agent asks the stream for the next
//!    message on its subject after its cursor ([`CommandInbox::next_after`], a direct get), so it
//!    reads in stream order, misses nothing while offline and needs no server-side consumer.

use crate::{Bus, BusError, headers};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use async_nats::{HeaderMap, Subscriber};
use bytes::Bytes;
use proto::{CommandEnvelope, subjects};

/// Publishes commands (coordinator side).
#[derive(Clone)]
pub struct CommandPublisher {
    bus: Bus,
}

/// A command the server acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Its sequence in the command stream.
    pub sequence: u64,
    /// True when JetStream recognised the message id and did not store it again.
    pub duplicate: bool,
}

impl CommandPublisher {
    pub fn new(bus: &Bus) -> Self {
        CommandPublisher { bus: bus.clone() }
    }

    /// Sends a command — signed with the bus's identity, the coordinator's command key — without
    /// waiting for the server's acknowledgement; await the returned
    /// future with [`CommandPublisher::confirm`]. Many sends in flight are how a fleet-wide command
    /// is published quickly.
    pub async fn send(
        &self,
        envelope: &CommandEnvelope,
        traceparent: Option<&str>,
    ) -> Result<PublishAckFuture, BusError> {
        let subject = subjects::command(&envelope.cluster);
        let payload =
            serde_json::to_vec(envelope).map_err(|source| BusError::Encode { subject: subject.clone(), source })?;
        let mut headers = headers::outgoing(envelope.command_id.as_str(), traceparent);
        if let Some(key) = self.bus.identity() {
            headers::sign(&mut headers, key, gmsa::signing::Purpose::Command, &subject, &payload);
        }
        self.bus
            .jetstream()
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|source| BusError::Publish { subject, source })
    }

    /// Waits for the acknowledgement of a [`CommandPublisher::send`] to `cluster`, then nudges
    /// the cluster's agent: the command is stored, so the agent's read will find it.
    pub async fn confirm(&self, cluster: &str, ack: PublishAckFuture) -> Result<Published, BusError> {
        let ack = ack.await.map_err(|source| BusError::Publish { subject: subjects::command(cluster), source })?;
        let wake = subjects::wake(cluster);
        self.bus
            .client()
            .publish(wake.clone(), bytes::Bytes::new())
            .await
            .map_err(|source| BusError::CorePublish { subject: wake, source })?;
        Ok(Published { sequence: ack.sequence, duplicate: ack.duplicate })
    }

    /// Sends one command, waits for its acknowledgement and nudges the agent.
    pub async fn publish(&self, envelope: &CommandEnvelope, traceparent: Option<&str>) -> Result<Published, BusError> {
        let ack = self.send(envelope, traceparent).await?;
        self.confirm(&envelope.cluster, ack).await
    }

    /// Publishes raw bytes as a command (for tests of malformed or future messages), signed like
    /// any command when the bus has an identity and `headers` carry no signature.
    pub async fn publish_raw(
        &self,
        cluster: &str,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Published, BusError> {
        let subject = subjects::command(cluster);
        if let Some(key) = self.bus.identity()
            && headers.get(proto::identity::SIGNATURE_HEADER).is_none()
        {
            headers::sign(&mut headers, key, gmsa::signing::Purpose::Command, &subject, &payload);
        }
        let ack = self
            .bus
            .jetstream()
            .publish_with_headers(subject.clone(), headers, payload)
            .await
            .map_err(|source| BusError::Publish { subject: subject.clone(), source })?;
        self.confirm(cluster, ack).await
    }
}

/// A command read from the stream, not yet decoded (the agent decides what to do with a message it
/// cannot decode).
#[derive(Debug, Clone)]
pub struct StoredCommand {
    pub sequence: u64,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// One cluster's view of the command stream (agent side).
pub struct CommandInbox {
    stream: Stream<()>,
    subject: String,
    wake: String,
}

impl CommandInbox {
    /// Opens the command stream for `cluster` without a round trip.
    pub async fn open(bus: &Bus, cluster: &str) -> Result<CommandInbox, BusError> {
        let stream = bus
            .jetstream()
            .get_stream_no_info(subjects::COMMAND_STREAM)
            .await
            .map_err(|source| BusError::OpenStream { stream: subjects::COMMAND_STREAM.to_string(), source })?;
        Ok(CommandInbox { stream, subject: subjects::command(cluster), wake: subjects::wake(cluster) })
    }

    /// The first command on this cluster's subject with a sequence greater than `sequence`.
    pub async fn next_after(&self, sequence: u64) -> Result<Option<StoredCommand>, BusError> {
        match self.stream.direct_get_next_for_subject(self.subject.as_str(), Some(sequence + 1)).await {
            Ok(message) => Ok(Some(StoredCommand {
                sequence: message.sequence,
                headers: message.headers,
                payload: message.payload,
            })),
            Err(err) if err.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(source) => Err(BusError::DirectGet {
                stream: subjects::COMMAND_STREAM.to_string(),
                subject: self.subject.clone(),
                source,
            }),
        }
    }

    /// A core subscription to this cluster's nudges (`fleet.wake.<cluster>`).
    pub async fn wakeups(&self, bus: &Bus) -> Result<Subscriber, BusError> {
        bus.client()
            .subscribe(self.wake.clone())
            .await
            .map_err(|source| BusError::Subscribe { subject: self.wake.clone(), source })
    }
}
