//! Results and progress: agents publish, the coordinator consumes results with one durable
//! consumer, and an agent looks up its own earlier result by command id (its idempotency check
//! beyond the server's dedup window).

use crate::{Bus, BusError, headers};
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use proto::{CommandResult, ProgressEvent, subjects};
use std::time::Duration;

/// Publishes results and progress (agent side).
#[derive(Clone)]
pub struct ResultPublisher {
    bus: Bus,
    results: Stream<()>,
}

impl ResultPublisher {
    pub async fn open(bus: &Bus) -> Result<ResultPublisher, BusError> {
        let results = bus
            .jetstream()
            .get_stream_no_info(subjects::RESULT_STREAM)
            .await
            .map_err(|source| BusError::OpenStream { stream: subjects::RESULT_STREAM.to_string(), source })?;
        Ok(ResultPublisher { bus: bus.clone(), results })
    }

    /// Publishes a result, signed with the bus's identity (the agent's key), and waits for
    /// JetStream's acknowledgement. The message id is the command
    /// id, so a result re-published after a crash is stored once.
    pub async fn publish_result(&self, result: &CommandResult, traceparent: Option<&str>) -> Result<(), BusError> {
        let subject = subjects::result(&result.cluster, result.command_id.as_str());
        let payload =
            serde_json::to_vec(result).map_err(|source| BusError::Encode { subject: subject.clone(), source })?;
        let message_id = format!("result-{}-{}", result.cluster, result.command_id);
        let mut headers = headers::outgoing(&message_id, traceparent);
        if let Some(key) = self.bus.identity() {
            headers::sign(&mut headers, key, gmsa::signing::Purpose::Result, &subject, &payload);
        }
        let ack = self
            .bus
            .jetstream()
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|source| BusError::Publish { subject: subject.clone(), source })?;
        ack.await.map_err(|source| BusError::Publish { subject, source })?;
        Ok(())
    }

    /// Publishes a progress event, best effort (no acknowledgement awaited: progress is advisory).
    pub async fn publish_progress(&self, event: &ProgressEvent) -> Result<(), BusError> {
        let subject = subjects::progress(&event.cluster, event.command_id.as_str());
        let payload =
            serde_json::to_vec(event).map_err(|source| BusError::Encode { subject: subject.clone(), source })?;
        self.bus
            .client()
            .publish(subject.clone(), payload.into())
            .await
            .map_err(|source| BusError::CorePublish { subject, source })
    }

    /// Publishes a drift report, signed like a result, and waits for JetStream's acknowledgement.
    pub async fn publish_drift(&self, report: &proto::drift::DriftReport) -> Result<(), BusError> {
        let subject = subjects::drift(&report.cluster);
        let payload =
            serde_json::to_vec(report).map_err(|source| BusError::Encode { subject: subject.clone(), source })?;
        let mut headers = async_nats::HeaderMap::new();
        if let Some(key) = self.bus.identity() {
            headers::sign(&mut headers, key, gmsa::signing::Purpose::Result, &subject, &payload);
        }
        let ack = self
            .bus
            .jetstream()
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|source| BusError::Publish { subject: subject.clone(), source })?;
        ack.await.map_err(|source| BusError::Publish { subject, source })?;
        Ok(())
    }

    /// Publishes the artifact of a command (at most one per command: its id is the message id)
    /// and waits for JetStream's acknowledgement.
    pub async fn publish_artifact(&self, cluster: &str, command_id: &str, bytes: Vec<u8>) -> Result<(), BusError> {
        let subject = subjects::artifact(cluster, command_id);
        let message_id = format!("artifact-{cluster}-{command_id}");
        let ack = self
            .bus
            .jetstream()
            .publish_with_headers(subject.clone(), headers::outgoing(&message_id, None), bytes.into())
            .await
            .map_err(|source| BusError::Publish { subject: subject.clone(), source })?;
        ack.await.map_err(|source| BusError::Publish { subject, source })?;
        Ok(())
    }

    /// The result stored for this command on this cluster: found, absent, or something on its
    /// subject that is not its result — undecodable ([`proto::decode::result`]) or not signed by
    /// one of `signers` (the cluster's enrolled key; an agent passes its own): a result anyone else
    /// wrote is not the cluster's.
    pub async fn lookup(
        &self,
        cluster: &str,
        command_id: &str,
        signers: &[gmsa::signing::PublicKey],
    ) -> Result<Lookup, BusError> {
        let subject = subjects::result(cluster, command_id);
        match self.results.direct_get_last_for_subject(subject.as_str()).await {
            Ok(message) => Ok(
                match headers::verify(
                    Some(&message.headers),
                    signers,
                    gmsa::signing::Purpose::Result,
                    &subject,
                    &message.payload,
                ) {
                    Err(err) => Lookup::Undecodable(headers::refusal_of(&err)),
                    Ok(_) => match proto::decode::result(Some((cluster, command_id)), &message.payload) {
                        Ok(result) => Lookup::Found(Box::new(result)),
                        Err(refusal) => Lookup::Undecodable(refusal),
                    },
                },
            ),
            Err(err) if err.kind() == DirectGetErrorKind::NotFound => Ok(Lookup::Absent),
            Err(source) => Err(BusError::DirectGet { stream: subjects::RESULT_STREAM.to_string(), subject, source }),
        }
    }
}

impl ResultPublisher {
    /// [`ResultPublisher::lookup`] with the cluster's enrolled key: what the coordinator and
    /// fleetctl read as a cluster's result.
    pub async fn lookup_enrolled(
        &self,
        enrollments: &crate::enrollment::Enrollments,
        cluster: &str,
        command_id: &str,
    ) -> Result<Lookup, BusError> {
        let keys = enrollments.keys_of(cluster).await?;
        self.lookup(cluster, command_id, &keys).await
    }
}

/// What [`ResultPublisher::lookup`] found under a command's result subject.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(Box<CommandResult>),
    Absent,
    /// Something is stored there that is not this command's result.
    Undecodable(proto::decode::Refusal),
}

impl Lookup {
    /// The result, when one was found.
    pub fn found(self) -> Option<CommandResult> {
        match self {
            Lookup::Found(result) => Some(*result),
            Lookup::Absent | Lookup::Undecodable(_) => None,
        }
    }
}

/// The artifact an agent attached to a command, if any (fleetctl downloads diagnostics with it).
pub async fn fetch_artifact(bus: &Bus, cluster: &str, command_id: &str) -> Result<Option<Vec<u8>>, BusError> {
    let stream = bus
        .jetstream()
        .get_stream_no_info(subjects::ARTIFACT_STREAM)
        .await
        .map_err(|source| BusError::OpenStream { stream: subjects::ARTIFACT_STREAM.to_string(), source })?;
    let subject = subjects::artifact(cluster, command_id);
    match stream.direct_get_last_for_subject(subject.as_str()).await {
        Ok(message) => Ok(Some(message.payload.to_vec())),
        Err(err) if err.kind() == DirectGetErrorKind::NotFound => Ok(None),
        Err(source) => Err(BusError::DirectGet { stream: subjects::ARTIFACT_STREAM.to_string(), subject, source }),
    }
}

/// The coordinator's durable feed of results: every result is delivered until acknowledged, so a
/// coordinator restart loses none. A result is refused (`unsigned`, `unknown_key`,
/// `bad_signature`) unless it is signed by the enrolled, unrevoked key of the cluster its subject
/// names — the authenticated sender — and it must name that cluster and command in its body
/// ([`proto::decode::result`]).
pub type ResultFeed = crate::feed::SignedFeed<CommandResult>;

/// A result with the handle to acknowledge it once recorded.
pub type ReceivedResult = crate::feed::Received<CommandResult>;

/// What the result feed reads.
fn result_kind() -> crate::feed::Kind<CommandResult> {
    crate::feed::Kind {
        stream: subjects::RESULT_STREAM,
        cluster_of: |subject| subjects::parse_result(subject).map(|(cluster, _)| cluster),
        subject_rule: "the subject is not fleet.result.<cluster>.<command id> with token ids",
        decode: |subject, payload| proto::decode::result(subjects::parse_result(subject), payload),
    }
}

/// Opens the recorder's feed ([`subjects::RESULT_CONSUMER`]).
pub async fn feed(bus: &Bus) -> Result<ResultFeed, BusError> {
    feed_as(bus, subjects::RESULT_CONSUMER, Duration::from_secs(30)).await
}

/// Creates (or reuses) the durable consumer `name` on the result stream and starts pulling: each
/// durable consumer sees every result once (the recorder's and the rollout driver's).
pub async fn feed_as(bus: &Bus, name: &str, ack_wait: Duration) -> Result<ResultFeed, BusError> {
    crate::feed::SignedFeed::open(bus, result_kind(), name, ack_wait, 20_000).await
}
