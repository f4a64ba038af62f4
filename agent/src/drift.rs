//! Forwards the drift the Kubernetes adapter detects (`cluster::watch_drift`) to the coordinator as
//! [`proto::drift::DriftReport`]s on `fleet.drift.<cluster>`.

use bus::results::ResultPublisher;
use cluster::{DriftCause, DriftEvent, Remedy};
use proto::drift::DriftReport;
use proto::version::SchemaVersion;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// The wire form of a drift event.
pub fn report(cluster: &str, event: DriftEvent) -> DriftReport {
    let (remedy, detail) = match event.remedy {
        Remedy::Reported => ("reported", None),
        Remedy::Reapplied { .. } => ("reapplied", None),
        Remedy::ReapplyFailed { error } => ("reapply-failed", Some(error)),
    };
    DriftReport {
        schema: SchemaVersion::CURRENT,
        cluster: cluster.to_string(),
        kind: event.kind.kind().to_string(),
        namespace: event.namespace,
        name: event.name,
        cause: match event.cause {
            DriftCause::Modified => "modified",
            DriftCause::Deleted => "deleted",
        }
        .to_string(),
        diff: event.diff,
        remedy: remedy.to_string(),
        detail,
        at: OffsetDateTime::now_utc(),
    }
}

/// Publishes every drift event until the channel closes (when the executor is dropped).
pub async fn forward(publisher: ResultPublisher, cluster: String, mut events: mpsc::Receiver<DriftEvent>) {
    while let Some(event) = events.recv().await {
        let report = report(&cluster, event);
        info!(kind = %report.kind, name = %report.name, cause = %report.cause, remedy = %report.remedy, "drift");
        if let Err(err) = publisher.publish_drift(&report).await {
            warn!(error = %err, "drift report not published");
        }
    }
}
