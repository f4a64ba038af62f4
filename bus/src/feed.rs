//! A durable feed of what agents sign — results and drift reports — for the coordinator: every
//! message is delivered until acknowledged, and counts as a cluster's only if the cluster's
//! enrolled, unrevoked key signed it for the subject it arrived on, and its body agrees with that
//! subject. [`crate::results::ResultFeed`] and [`crate::drift::DriftFeed`] are this feed with their
//! stream and decoder ([`Kind`]).

use crate::{Bus, BusError, headers};
use async_nats::jetstream::consumer::{AckPolicy, pull};
use futures::StreamExt;
use proto::decode::{Code, Refusal};
use std::time::Duration;

/// What a feed reads: its stream, how a subject names its cluster, and the decoder of a verified
/// payload.
pub struct Kind<T> {
    pub stream: &'static str,
    /// The cluster a subject names; `None` refuses the message with `subject_rule`.
    pub cluster_of: fn(&str) -> Option<&str>,
    /// Why a subject `cluster_of` does not take is refused.
    pub subject_rule: &'static str,
    /// Decodes a payload whose signature verified, against its subject.
    pub decode: fn(&str, &[u8]) -> Result<T, Refusal>,
}

/// The durable feed of one consumer on a [`Kind`]'s stream.
pub struct SignedFeed<T> {
    kind: Kind<T>,
    consumer: String,
    messages: pull::Stream,
    enrollments: crate::enrollment::Enrollments,
}

/// A message with the handle to acknowledge it once handled.
pub struct Received<T> {
    /// The decoded message, or why it was refused (signature, subject, body).
    pub value: Result<T, Refusal>,
    /// The subject it arrived on.
    pub subject: String,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// How many times the consumer delivered it (1 the first time).
    pub deliveries: i64,
    message: async_nats::jetstream::Message,
    stream: &'static str,
    consumer: String,
}

impl<T> Received<T> {
    fn error(&self, source: async_nats::Error) -> BusError {
        BusError::Consumer { stream: self.stream.to_string(), consumer: self.consumer.clone(), source }
    }

    /// Acknowledges the message: it will not be delivered again.
    pub async fn ack(&self) -> Result<(), BusError> {
        self.message.ack().await.map_err(|source| self.error(source))
    }

    /// Asks for the message again after `delay` (it could not be handled now).
    pub async fn retry_after(&self, delay: Duration) -> Result<(), BusError> {
        self.message
            .ack_with(async_nats::jetstream::AckKind::Nak(Some(delay)))
            .await
            .map_err(|source| self.error(source))
    }
}

impl<T> SignedFeed<T> {
    /// Creates (or reuses) the durable consumer `consumer` on the kind's stream and starts pulling.
    /// A message not acknowledged within `ack_wait` is delivered again — which is also how a new
    /// reader (a new leader) gets what its dead predecessor had pulled but not acknowledged.
    pub async fn open(
        bus: &Bus,
        kind: Kind<T>,
        consumer: &str,
        ack_wait: Duration,
        max_ack_pending: i64,
    ) -> Result<SignedFeed<T>, BusError> {
        let consumer_error = |source: async_nats::Error| BusError::Consumer {
            stream: kind.stream.to_string(),
            consumer: consumer.to_string(),
            source,
        };
        let stream = bus
            .jetstream()
            .get_stream(kind.stream)
            .await
            .map_err(|source| BusError::OpenStream { stream: kind.stream.to_string(), source })?;
        let config = pull::Config {
            durable_name: Some(consumer.to_string()),
            ack_policy: AckPolicy::Explicit,
            ack_wait,
            max_ack_pending,
            ..Default::default()
        };
        let durable =
            stream.get_or_create_consumer(consumer, config).await.map_err(|err| consumer_error(err.into()))?;
        let messages = durable.messages().await.map_err(|err| consumer_error(err.into()))?;
        let enrollments = crate::enrollment::Enrollments::follow(bus).await?;
        Ok(SignedFeed { kind, consumer: consumer.to_string(), messages, enrollments })
    }

    /// The next message; `None` when the feed ended.
    pub async fn next(&mut self) -> Option<Result<Received<T>, BusError>> {
        let message = match self.messages.next().await? {
            Ok(message) => message,
            Err(err) => {
                let (stream, consumer) = (self.kind.stream.to_string(), self.consumer.clone());
                return Some(Err(BusError::Consumer { stream, consumer, source: err.into() }));
            }
        };
        let subject = message.subject.to_string();
        let (sequence, deliveries) = message.info().map_or((0, 1), |info| (info.stream_sequence, info.delivered));
        let value = match (self.kind.cluster_of)(&subject) {
            Some(cluster) => match self.enrollments.keys_of(cluster).await {
                Ok(keys) => headers::verify(
                    message.headers.as_ref(),
                    &keys,
                    gmsa::signing::Purpose::Result,
                    &subject,
                    &message.payload,
                )
                .map_err(|err| headers::refusal_of(&err))
                .and_then(|_| (self.kind.decode)(&subject, &message.payload)),
                Err(err) => return Some(Err(err)),
            },
            None => Err(Refusal::new(Code::UndecodableResult, self.kind.subject_rule)),
        };
        let (stream, consumer) = (self.kind.stream, self.consumer.clone());
        Some(Ok(Received { value, subject, sequence, deliveries, message, stream, consumer }))
    }
}
