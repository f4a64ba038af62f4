//! The coordinator's durable feed of drift reports (`FLEET_DRIFT`, `fleet.drift.<cluster>`),
//! authenticated like results: a report counts as a cluster's only if the cluster's enrolled key
//! signed it for its subject. Agents publish with `results::ResultPublisher::publish_drift`.

use crate::{BusError, headers};
use async_nats::jetstream::consumer::{AckPolicy, pull};
use futures::StreamExt;
use proto::drift::DriftReport;
use proto::subjects;
use std::time::Duration;

/// The durable feed: every report is delivered until acknowledged.
pub struct DriftFeed {
    messages: pull::Stream,
    enrollments: crate::enrollment::Enrollments,
}

/// A drift report with the handle to acknowledge it once recorded.
pub struct ReceivedDrift {
    /// The report, or why it was refused (signature, [`proto::decode::drift`]).
    pub report: Result<DriftReport, proto::decode::Refusal>,
    pub subject: String,
    pub sequence: u64,
    /// How many times the consumer delivered it (1 the first time).
    pub deliveries: i64,
    message: async_nats::jetstream::Message,
}

fn consumer_error(source: async_nats::Error) -> BusError {
    BusError::Consumer {
        stream: subjects::DRIFT_STREAM.to_string(),
        consumer: subjects::DRIFT_CONSUMER.to_string(),
        source,
    }
}

impl ReceivedDrift {
    /// Acknowledges the report: it will not be delivered again.
    pub async fn ack(&self) -> Result<(), BusError> {
        self.message.ack().await.map_err(consumer_error)
    }

    /// Asks for the report again after `delay` (it could not be recorded now).
    pub async fn retry_after(&self, delay: Duration) -> Result<(), BusError> {
        self.message.ack_with(async_nats::jetstream::AckKind::Nak(Some(delay))).await.map_err(consumer_error)
    }
}

impl DriftFeed {
    /// Creates (or reuses) the durable consumer [`subjects::DRIFT_CONSUMER`] and starts pulling.
    pub async fn open(bus: &crate::Bus) -> Result<DriftFeed, BusError> {
        let stream = bus
            .jetstream()
            .get_stream(subjects::DRIFT_STREAM)
            .await
            .map_err(|source| BusError::OpenStream { stream: subjects::DRIFT_STREAM.to_string(), source })?;
        let consumer = stream
            .get_or_create_consumer(
                subjects::DRIFT_CONSUMER,
                pull::Config {
                    durable_name: Some(subjects::DRIFT_CONSUMER.to_string()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 1_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|err| consumer_error(err.into()))?;
        let messages = consumer.messages().await.map_err(|err| consumer_error(err.into()))?;
        let enrollments = crate::enrollment::Enrollments::follow(bus).await?;
        Ok(DriftFeed { messages, enrollments })
    }

    /// The next report; `None` when the feed ended.
    pub async fn next(&mut self) -> Option<Result<ReceivedDrift, BusError>> {
        let message = match self.messages.next().await? {
            Ok(message) => message,
            Err(err) => return Some(Err(consumer_error(err.into()))),
        };
        let subject = message.subject.to_string();
        let (sequence, deliveries) = message.info().map_or((0, 1), |info| (info.stream_sequence, info.delivered));
        let report = match subjects::parse_drift(&subject) {
            Some(cluster) => match self.enrollments.keys_of(cluster).await {
                Ok(keys) => headers::verify(
                    message.headers.as_ref(),
                    &keys,
                    gmsa::signing::Purpose::Result,
                    &subject,
                    &message.payload,
                )
                .map_err(|err| headers::refusal_of(&err))
                .and_then(|_| proto::decode::drift(cluster, &message.payload)),
                Err(err) => return Some(Err(err)),
            },
            None => Err(proto::decode::Refusal::new(
                proto::decode::Code::UndecodableResult,
                "the subject is not fleet.drift.<cluster> with a token id",
            )),
        };
        Some(Ok(ReceivedDrift { report, subject, sequence, deliveries, message }))
    }
}
