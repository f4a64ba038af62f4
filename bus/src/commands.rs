//! The command stream: the coordinator publishes, each agent reads its own subject.
//!
//! Delivery to an agent, step by step:
//! 1. The coordinator publishes the envelope to `fleet.cmd.<cluster>` with `Nats-Msg-Id` = command
//!    id; JetStream stores it (a duplicate publish within the dedup window is dropped).
//! 2. Once JetStream has acknowledged it (it is stored), the coordinator sends a core-NATS
//!    **nudge** on `fleet.wake.<cluster>`. (The core copy of the publish itself is not used: it can
//!    reach a subscriber before the stream has stored the message, and a read then finds nothing.)
//! 3. On a wake-up, on (re)connect and on a periodic poll, the agent fetches the next message of its
//!    own durable consumer `agent-<cluster>` ([`CommandInbox::next_after`]), so it reads in stream
//!    order and misses nothing while offline; it acknowledges each command once its result and
//!    cursor are stored ([`CommandInbox::done`]). The consumer's name and filter are in the
//!    subjects it uses, which is what lets server permissions confine an agent to its own commands
//!    (a direct get's filter travels in the body, where permissions cannot see it).

use crate::{Bus, BusError, headers};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::stream::Stream;
use async_nats::{HeaderMap, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
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
    /// Where the acknowledgement goes ([`CommandInbox::done`]); `None` for a command not read
    /// through the inbox.
    pub ack_subject: Option<String>,
}

/// One cluster's view of the command stream (agent side): its own durable pull consumer
/// `agent-<cluster>`, filtered on `fleet.cmd.<cluster>`. Both the consumer's name and its filter
/// are in the subjects the agent uses (`$JS.API.CONSUMER.CREATE.FLEET_COMMANDS.agent-<c>.fleet.cmd.<c>`,
/// `…MSG.NEXT.FLEET_COMMANDS.agent-<c>`), so server permissions pin each agent to its own commands.
///
/// The agent's cursor (`fleet_cursors`) stays the truth: the consumer is a pipe that delivers one
/// command at a time (`max_ack_pending` 1) and redelivers one not acknowledged within `ack_wait`
/// (a crash, a lost fetch). A delivery at or below the cursor is acknowledged and passed over.
pub struct CommandInbox {
    stream: Stream<()>,
    cluster: String,
    wake: String,
    ack_wait: std::time::Duration,
    client: async_nats::Client,
    consumer: tokio::sync::Mutex<Option<async_nats::jetstream::consumer::PullConsumer>>,
    /// A standing pull on the consumer (one pending request, renewed by the client library):
    /// a command is delivered as soon as it is stored, without a request per read.
    messages: tokio::sync::Mutex<Option<pull::Stream>>,
    /// A delivery [`CommandInbox::arrival`] took off the standing pull, for the next read.
    arrived: std::sync::Mutex<Option<async_nats::jetstream::Message>>,
    /// Set by [`CommandInbox::reconnected`]: the next consumer is made fresh (the old one deleted).
    renew: std::sync::atomic::AtomicBool,
}

/// How long a read waits for a delivery already on its way (the nudge follows the store; the
/// delivery may be a moment behind it).
const DELIVERY_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// How many deliveries one pull request of the standing pull asks for (renewed at half).
const PULL_BATCH: usize = 64;

/// How long a delivered command waits for its acknowledgement before it is delivered again.
pub const DEFAULT_ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl CommandInbox {
    /// Opens the command stream for `cluster` without a round trip.
    pub async fn open(bus: &Bus, cluster: &str) -> Result<CommandInbox, BusError> {
        let stream = bus
            .jetstream()
            .get_stream_no_info(subjects::COMMAND_STREAM)
            .await
            .map_err(|source| BusError::OpenStream { stream: subjects::COMMAND_STREAM.to_string(), source })?;
        Ok(CommandInbox {
            stream,
            cluster: cluster.to_string(),
            wake: subjects::wake(cluster),
            ack_wait: DEFAULT_ACK_WAIT,
            client: bus.client().clone(),
            consumer: tokio::sync::Mutex::new(None),
            messages: tokio::sync::Mutex::new(None),
            arrived: std::sync::Mutex::new(None),
            renew: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn consumer_error(&self, source: impl Into<async_nats::Error>) -> BusError {
        BusError::Consumer {
            stream: subjects::COMMAND_STREAM.to_string(),
            consumer: subjects::agent_consumer(&self.cluster),
            source: source.into(),
        }
    }

    /// The agent's consumer, created (starting after `sequence`) when it does not exist. With
    /// `fresh`, an existing one is deleted first: after a pull failed, the consumer may be stranded
    /// on a server that is gone (it has one replica), and only a new one is placed on a live server.
    async fn reader(
        &self,
        sequence: u64,
        fresh: bool,
    ) -> Result<async_nats::jetstream::consumer::PullConsumer, BusError> {
        let mut cached = self.consumer.lock().await;
        if let Some(consumer) = cached.as_ref() {
            return Ok(consumer.clone());
        }
        let name = subjects::agent_consumer(&self.cluster);
        let fresh = self.renew.swap(false, std::sync::atomic::Ordering::Relaxed) || fresh;
        if fresh {
            // Absent is fine: the point is that none is left behind.
            let _ = self.stream.delete_consumer(&name).await;
        }
        let deliver_policy = match sequence.checked_add(1) {
            Some(start) if sequence > 0 => DeliverPolicy::ByStartSequence { start_sequence: start },
            _ => DeliverPolicy::All,
        };
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: subjects::command(&self.cluster),
            deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_ack_pending: 1,
            // The cursor is the truth: the consumer's own state is disposable (a lost one is made
            // again from the cursor), so it costs one replica in memory, not a Raft group per agent.
            num_replicas: 1,
            memory_storage: true,
            ..Default::default()
        };
        // Create first: a new agent's consumer costs one API call, not a lookup and a create. One
        // that exists with another start (made from an earlier cursor) is not changed — the server
        // refuses to update a consumer's start — and is then reused as it is.
        let consumer = match self.stream.create_consumer(config.clone()).await {
            Ok(consumer) => consumer,
            Err(_) => {
                self.stream.get_or_create_consumer(&name, config).await.map_err(|err| self.consumer_error(err))?
            }
        };
        *cached = Some(consumer.clone());
        Ok(consumer)
    }

    /// Forgets the standing pull and the consumer after the connection came back: the server may
    /// have restarted and lost the consumer's memory state, or the consumer may be stranded on a
    /// server that is gone, and a pull on either fails only when its heartbeats are missed (about
    /// 10 s). The next read deletes the consumer and makes it again from the cursor, as after a
    /// failed pull. A delivery already kept stays kept (its ack may fail: the cursor passes over
    /// the redelivery).
    pub async fn reconnected(&self) {
        *self.messages.lock().await = None;
        *self.consumer.lock().await = None;
        self.renew.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The first command on this cluster's subject with a sequence greater than `sequence`.
    pub async fn next_after(&self, sequence: u64) -> Result<Option<StoredCommand>, BusError> {
        let mut recreated = false;
        loop {
            let mut messages = self.messages.lock().await;
            let arrived = self.arrived().take();
            let delivered = match (arrived, messages.as_mut()) {
                (Some(message), _) => Ok(Some(message)),
                (None, Some(stream)) => Self::delivery(stream).await,
                (None, None) => {
                    let consumer = self.reader(sequence, recreated).await?;
                    // One standing pull request for many commands: the consumer still delivers
                    // one at a time (`max_ack_pending` 1), without a new request per command.
                    match consumer
                        .stream()
                        .max_messages_per_batch(PULL_BATCH)
                        .expires(std::time::Duration::from_secs(30))
                        .heartbeat(std::time::Duration::from_secs(5))
                        .messages()
                        .await
                    {
                        Ok(stream) => Self::delivery(messages.insert(stream)).await,
                        Err(err) => Err(err.into()),
                    }
                }
            };
            let message = match delivered {
                Ok(None) => return Ok(None),
                Ok(Some(message)) => message,
                Err(err) => {
                    // The pull could not start, ended or failed (a server restart may have lost
                    // the consumer's memory state): make the consumer again from the cursor, once.
                    *messages = None;
                    *self.consumer.lock().await = None;
                    if recreated {
                        return Err(self.consumer_error(err));
                    }
                    recreated = true;
                    continue;
                }
            };
            drop(messages);
            let stream_sequence =
                message.info().map(|info| info.stream_sequence).map_err(|err| self.consumer_error(err))?;
            let ack_subject = message.reply.as_ref().map(ToString::to_string);
            if stream_sequence <= sequence {
                // Already done (a redelivery after the cursor moved): acknowledge and go on.
                self.ack(ack_subject.as_deref()).await?;
                continue;
            }
            let message = message.split().0;
            return Ok(Some(StoredCommand {
                sequence: stream_sequence,
                headers: message.headers.unwrap_or_default(),
                payload: message.payload,
                ack_subject,
            }));
        }
    }

    /// Waits until the standing pull delivers a command, and keeps it for the next
    /// [`CommandInbox::next_after`]: the agent waits on this as well as on nudges, so a delivery
    /// slower than the nudge is still read at once. Returns at once when a delivery is kept, or
    /// when the pull failed (the next read makes it again); never returns while no pull is standing.
    /// Cancel-safe: a delivery is taken off the pull only when it is kept.
    pub async fn arrival(&self) {
        if self.arrived().is_some() {
            return;
        }
        let mut messages = self.messages.lock().await;
        let Some(stream) = messages.as_mut() else { return std::future::pending().await };
        match stream.next().await {
            Some(Ok(message)) => *self.arrived() = Some(message),
            // The next read makes the pull (and, if need be, the consumer) again.
            Some(Err(_)) | None => *messages = None,
        }
    }

    fn arrived(&self) -> std::sync::MutexGuard<'_, Option<async_nats::jetstream::Message>> {
        // Held only to take or put a message, never across an await.
        self.arrived.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next delivery of the standing pull, waiting [`DELIVERY_GRACE`] for one on its way.
    async fn delivery(stream: &mut pull::Stream) -> Result<Option<async_nats::jetstream::Message>, async_nats::Error> {
        match tokio::time::timeout(DELIVERY_GRACE, stream.next()).await {
            Err(_) => Ok(None),
            Ok(Some(Ok(message))) => Ok(Some(message)),
            Ok(Some(Err(err))) => Err(err.into()),
            Ok(None) => Err("the command pull ended".into()),
        }
    }

    /// Acknowledges a command once its outcome is recorded (result published, cursor moved).
    pub async fn done(&self, stored: &StoredCommand) -> Result<(), BusError> {
        self.ack(stored.ack_subject.as_deref()).await
    }

    async fn ack(&self, subject: Option<&str>) -> Result<(), BusError> {
        let Some(subject) = subject else { return Ok(()) };
        self.client
            .publish(subject.to_string(), Bytes::from_static(b"+ACK"))
            .await
            .map_err(|source| BusError::CorePublish { subject: subject.to_string(), source })
    }

    /// A core subscription to this cluster's nudges (`fleet.wake.<cluster>`).
    pub async fn wakeups(&self, bus: &Bus) -> Result<Subscriber, BusError> {
        bus.client()
            .subscribe(self.wake.clone())
            .await
            .map_err(|source| BusError::Subscribe { subject: self.wake.clone(), source })
    }
}
