//! The coordinator's durable feed of drift reports (`FLEET_DRIFT`, `fleet.drift.<cluster>`),
//! authenticated like results: a report counts as a cluster's only if the cluster's enrolled key
//! signed it for its subject. Agents publish with `results::ResultPublisher::publish_drift`.

use crate::{Bus, BusError};
use proto::drift::DriftReport;
use proto::subjects;
use std::time::Duration;

/// The durable feed: every report is delivered until acknowledged.
pub type DriftFeed = crate::feed::SignedFeed<DriftReport>;

/// A drift report with the handle to acknowledge it once recorded.
pub type ReceivedDrift = crate::feed::Received<DriftReport>;

const SUBJECT_RULE: &str = "the subject is not fleet.drift.<cluster> with a token id";

/// Creates (or reuses) the durable consumer [`subjects::DRIFT_CONSUMER`] and starts pulling.
pub async fn feed(bus: &Bus) -> Result<DriftFeed, BusError> {
    let kind = crate::feed::Kind {
        stream: subjects::DRIFT_STREAM,
        cluster_of: subjects::parse_drift,
        subject_rule: SUBJECT_RULE,
        decode: |subject, payload| match subjects::parse_drift(subject) {
            Some(cluster) => proto::decode::drift(cluster, payload),
            None => Err(proto::decode::Refusal::new(proto::decode::Code::UndecodableResult, SUBJECT_RULE)),
        },
    };
    crate::feed::SignedFeed::open(bus, kind, subjects::DRIFT_CONSUMER, Duration::from_secs(30), 1_000).await
}
