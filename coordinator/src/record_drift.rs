//! The drift recorder: a small companion of the result recorder that copies each cluster's drift
//! reports (`FLEET_DRIFT`) into its record in `fleet_state` (the last [`record::MAX_DRIFT_REPORTS`]).
//!
//! Why in the record, and not read from the stream when asked: `fleetctl clusters list` judges
//! every cluster at once, and one KV listing already brings every record; reading the last ten
//! reports of each cluster from the stream would be ten direct gets per cluster (or an ordered
//! consumer per call, which read-only operators should not have to create). The stream still keeps
//! 30 days of reports for whoever wants all of them. The report is authenticated here once, with
//! the cluster's enrolled key (`bus::drift::DriftFeed`), as results are.
//!
//! # Guarantees
//! A report is acknowledged only after its record is written. A report for a cluster with no
//! record yet (its apply's result not recorded yet: the drift watch starts right after the apply)
//! is asked for again a second later; after [`MAX_DRIFT_DELIVERIES`] tries, or when refused, it is
//! recorded as a dead letter instead.

use crate::record::{self, ClusterRecord};
use bus::drift::ReceivedDrift;
use bus::kv::Bucket;
use bus::{Bus, BusError};
use proto::drift::DriftReport;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

/// Tries per report before it is given up as a dead letter (about a minute of one-second retries).
const MAX_DRIFT_DELIVERIES: i64 = 60;

/// Why a report was not recorded this time.
#[derive(Debug, thiserror::Error)]
enum NotRecorded {
    /// The cluster has no record to add the report to yet.
    #[error("cluster {0} has no record yet")]
    NoRecord(String),
    /// The bucket could not be read or written.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Records drift reports until `shutdown`.
pub async fn run_drift_recorder(bus: Bus, mut shutdown: watch::Receiver<bool>) -> Result<(), BusError> {
    async move {
        let opened = record::open_until_shutdown(&mut shutdown, "drift feed", || async {
            Ok((record::records(&bus).await?, bus::drift::feed(&bus).await?))
        })
        .await;
        let Some((bucket, mut feed)) = opened else { return Ok(()) };
        loop {
            let received = tokio::select! {
                received = feed.next() => received,
                _ = shutdown.changed() => return Ok(()),
            };
            let Some(received) = received else { return Ok(()) };
            let received = match received {
                Ok(received) => received,
                Err(err) => {
                    warn!(error = %err, "drift feed error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if handle(&bus, &bucket, &received).await
                && let Err(err) = received.ack().await
            {
                warn!(error = %err, "drift report recorded but not acknowledged; a redelivery is recorded once");
            }
        }
    }
    .instrument(info_span!("drift-recorder"))
    .await
}

/// Records one delivery; true when it may be acknowledged (recorded, or reported as a dead letter).
async fn handle(bus: &Bus, bucket: &Bucket<ClusterRecord>, received: &ReceivedDrift) -> bool {
    let refusal = match &received.value {
        Ok(report) => match record_one(bucket, report).await {
            Ok(()) => {
                info!(cluster = %report.cluster, kind = %report.kind, name = %report.name, remedy = %report.remedy, "drift recorded");
                return true;
            }
            Err(err) if received.deliveries < MAX_DRIFT_DELIVERIES => {
                warn!(error = %bus::chain(&err), cluster = %report.cluster, deliveries = received.deliveries, "drift not recorded; asking for it again in 1s");
                let _ = received.retry_after(Duration::from_secs(1)).await;
                return false;
            }
            Err(err) => proto::decode::Refusal::new(
                proto::decode::Code::InvalidEntry,
                format!("not recorded after {} deliveries: {}", received.deliveries, bus::chain(&err)),
            ),
        },
        Err(refusal) => {
            warn!(subject = %proto::decode::bounded(&received.subject, 200), code = %refusal.code, message = %refusal.message, "drift report refused; recorded as a dead letter");
            refusal.clone()
        }
    };
    record::dead_letter(bus, "drift", received, &refusal).await
}

/// Read-modify-write of the cluster's record with a revision check (the result recorder writes
/// the same key); a lost race reads again.
async fn record_one(bucket: &Bucket<ClusterRecord>, report: &DriftReport) -> Result<(), NotRecorded> {
    let mut attempt = 0;
    loop {
        let Some((current, revision)) = bucket.get(&report.cluster).await? else {
            return Err(NotRecorded::NoRecord(report.cluster.clone()));
        };
        let next = record::with_drift(current, report.clone());
        match bucket.update(&report.cluster, &next, revision).await {
            Ok(_) => return Ok(()),
            Err(err) if attempt >= 3 => return Err(err.into()),
            Err(_) => attempt += 1,
        }
    }
}
