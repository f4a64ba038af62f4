//! The coordinator's durable record of each cluster: the last result it received, in the
//! `fleet_state` bucket (history 5), written by the recorder task from the durable result feed.
//! A result is acknowledged only after it is recorded, so a coordinator restart loses none.
//!
//! Besides the last result, the record keeps per part of the gMSA state (`clusters::parts`) the
//! last thing a result said about it, and the cluster's recent drift reports (written by
//! `record_drift`): what `fleetctl clusters show` sets against the desired state. Both fields are
//! `#[serde(default)]`, so records written before them still decode.

use crate::clusters::parts::{self, Part, PartObservation};
use bus::kv::Bucket;
use bus::{Bus, BusError};
use proto::drift::DriftReport;
use proto::resources::SharedResource;
use proto::{CommandResult, subjects};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::watch;
use tracing::{info, warn};

/// What the coordinator knows of one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub cluster: String,
    /// The last result received (by finish time).
    pub last_result: CommandResult,
    /// How many results were recorded for this cluster.
    pub results_recorded: u64,
    /// Shared resources the cluster uses, from its results' `resources` (see [`proto::resources`]).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub in_use: BTreeSet<SharedResource>,
    /// Per part, the last outcome a result reported (by finish time; see [`parts::observations_of`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<Part, PartObservation>,
    /// The cluster's most recent drift reports, oldest first, at most [`MAX_DRIFT_REPORTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftReport>,
}

/// How many drift reports a record keeps: enough to show what drifted since the last apply (a
/// report per object and change), small enough that a flapping object cannot grow the record.
pub const MAX_DRIFT_REPORTS: usize = 10;

/// The `fleet_state` bucket.
pub async fn records(bus: &Bus) -> Result<Bucket<ClusterRecord>, BusError> {
    Bucket::open(bus, subjects::STATE_BUCKET).await
}

/// Every cluster's record; a record that cannot be decoded is skipped (and logged by key).
pub async fn all(bus: &Bus) -> Result<Vec<ClusterRecord>, BusError> {
    let bucket = records(bus).await?;
    let mut invalid = Vec::new();
    let good = crate::inventory::sort_entries(bucket.name(), bucket.entries_raw().await?, decode_record, &mut invalid);
    for entry in invalid {
        warn!(bucket = %entry.bucket, key = %entry.key, message = %entry.message, "record skipped");
    }
    Ok(good)
}

/// Decodes a record stored under `key` (pure): it must be the record of the cluster it is stored under.
pub fn decode_record(key: &str, bytes: &[u8]) -> Result<ClusterRecord, proto::decode::Refusal> {
    use proto::decode::{Code, Refusal};
    let record: ClusterRecord = serde_json::from_slice(bytes)
        .map_err(|err| Refusal::new(Code::InvalidEntry, format!("not a cluster record: {err}")))?;
    if record.cluster != key {
        return Err(Refusal::new(Code::InvalidEntry, format!("the record under key {key:?} is another cluster's")));
    }
    Ok(record)
}

/// The record after `result` arrives: a result older than the one recorded does not replace it
/// (results of different commands may arrive out of order), but is counted.
///
/// Resource uses are applied in arrival order: a cluster's commands that start and stop using a
/// resource (grant, then teardown) are sequential on the agent, so their results arrive in order.
pub fn next_record(current: Option<ClusterRecord>, result: CommandResult) -> ClusterRecord {
    match current {
        None => {
            let mut in_use = BTreeSet::new();
            apply_uses(&mut in_use, &result);
            let mut parts = BTreeMap::new();
            apply_parts(&mut parts, &result);
            ClusterRecord {
                cluster: result.cluster.clone(),
                last_result: result,
                results_recorded: 1,
                in_use,
                parts,
                drift: Vec::new(),
            }
        }
        Some(mut record) => {
            if record.last_result.command_id == result.command_id {
                // A redelivery of a result already recorded: nothing new.
                return record;
            }
            record.results_recorded += 1;
            apply_uses(&mut record.in_use, &result);
            apply_parts(&mut record.parts, &result);
            if result.finished_at >= record.last_result.finished_at {
                record.last_result = result;
            }
            record
        }
    }
}

/// Each part's observation from `result` replaces the recorded one unless that one is newer
/// (results of different commands may arrive out of order).
fn apply_parts(recorded: &mut BTreeMap<Part, PartObservation>, result: &CommandResult) {
    for (part, observation) in parts::observations_of(result) {
        match recorded.get(&part) {
            Some(known) if known.at > observation.at => {}
            _ => {
                recorded.insert(part, observation);
            }
        }
    }
}

/// The record after a drift report arrives (pure): kept in time order, a redelivered copy once,
/// only the newest [`MAX_DRIFT_REPORTS`].
pub fn with_drift(mut record: ClusterRecord, report: DriftReport) -> ClusterRecord {
    if record.drift.contains(&report) {
        return record;
    }
    let position = record.drift.partition_point(|known| known.at <= report.at);
    record.drift.insert(position, report);
    let excess = record.drift.len().saturating_sub(MAX_DRIFT_REPORTS);
    record.drift.drain(..excess);
    record
}

fn apply_uses(in_use: &mut BTreeSet<SharedResource>, result: &CommandResult) {
    if !result.status.is_success() {
        return;
    }
    for change in &result.resources {
        if change.in_use {
            in_use.insert(change.resource.clone());
        } else {
            in_use.remove(&change.resource);
        }
    }
}

/// The clusters (other than `except`) that use `resource`, sorted.
pub fn users_of<'r>(
    records: impl IntoIterator<Item = &'r ClusterRecord>,
    resource: &SharedResource,
    except: &BTreeSet<String>,
) -> Vec<String> {
    let mut users: Vec<String> = records
        .into_iter()
        .filter(|record| !except.contains(&record.cluster) && record.in_use.contains(resource))
        .map(|record| record.cluster.clone())
        .collect();
    users.sort();
    users
}

/// Opens what a recorder reads and writes, once a second until it works (the coordinator may
/// start before the server or its streams); `None` when `shutdown` comes first.
pub(crate) async fn open_until_shutdown<T, F, Fut>(
    shutdown: &mut watch::Receiver<bool>,
    what: &str,
    mut open: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BusError>>,
{
    loop {
        match open().await {
            Ok(opened) => return Some(opened),
            Err(err) => {
                warn!(error = %err, "{what} not available yet; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return None,
                }
            }
        }
    }
}

/// Records every result from the durable feed until `shutdown`.
///
/// # Guarantees
/// A result is acknowledged only after its record is written. A failure to record (the server
/// restarting, the bucket unavailable, a revision race lost three times) answers the result with a
/// delayed negative acknowledgement: the consumer delivers it again, so the recorder rides out
/// outages instead of stopping.
pub async fn run_recorder(bus: Bus, mut shutdown: watch::Receiver<bool>) -> Result<(), BusError> {
    let opened = open_until_shutdown(&mut shutdown, "result feed", || async {
        Ok((records(&bus).await?, bus::results::feed(&bus).await?))
    })
    .await;
    let Some((bucket, mut feed)) = opened else { return Ok(()) };
    let mut held = held_at_start(&bucket).await;
    loop {
        let received = tokio::select! {
            received = feed.next() => received,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(received) = received else { return Ok(()) };
        let received = match received {
            Ok(received) => received,
            Err(err) => {
                warn!(error = %err, "result feed error");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        match &received.value {
            Ok(result) => {
                if let Err(err) = record_one(&bucket, &mut held, result).await {
                    if received.deliveries < MAX_RECORD_DELIVERIES {
                        warn!(error = %bus::chain(&err), cluster = %result.cluster, deliveries = received.deliveries, "result not recorded; asking for it again in 1s");
                        // If even the negative ack is lost, the ack wait brings the result back.
                        let _ = received.retry_after(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                    let refusal = proto::decode::Refusal::new(
                        proto::decode::Code::InvalidEntry,
                        format!("not recorded after {} deliveries: {}", received.deliveries, bus::chain(&err)),
                    );
                    if !dead_letter(&bus, "result", &received, &refusal).await {
                        continue;
                    }
                } else {
                    info!(cluster = %result.cluster, command_id = %result.command_id, status = result.status.label(), "result recorded");
                }
            }
            Err(refusal) => {
                warn!(subject = %proto::decode::bounded(&received.subject, 200), code = %refusal.code, message = %refusal.message, "result refused; recorded as a dead letter");
                if !dead_letter(&bus, "result", &received, refusal).await {
                    continue;
                }
            }
        }
        if let Err(err) = received.ack().await {
            warn!(error = %err, "result recorded but not acknowledged; a redelivery is recorded once");
        }
    }
}

/// How many times the recorder tries to record one result before it gives up on it and records a
/// dead letter instead (about a minute of one-second retries: longer than a server restart).
const MAX_RECORD_DELIVERIES: i64 = 60;

/// Reports a message a recorder cannot record as a dead letter; false (and a delayed redelivery)
/// when even that fails, so nothing is acknowledged unreported.
///
/// `what` names the message (`result`, `drift`): the letter's message id is `<what>-seq-<sequence>`.
pub(crate) async fn dead_letter<T>(
    bus: &Bus,
    what: &str,
    received: &bus::feed::Received<T>,
    refusal: &proto::decode::Refusal,
) -> bool {
    let letter = proto::deadletter::DeadLetter {
        schema: proto::version::SchemaVersion::CURRENT,
        reporter: proto::deadletter::COORDINATOR.to_string(),
        source: proto::decode::bounded(&received.subject, 256),
        sequence: Some(received.sequence),
        code: refusal.code.as_str().to_string(),
        message: refusal.message.clone(),
        action: "acknowledged without recording".to_string(),
        at: time::OffsetDateTime::now_utc(),
    };
    let message_id = format!("{what}-seq-{}", received.sequence);
    match bus::deadletters::publish(bus, &letter, &message_id).await {
        Ok(()) => true,
        Err(err) => {
            warn!(error = %bus::chain(&err), what, "dead letter not stored; asking for the message again");
            let _ = received.retry_after(std::time::Duration::from_secs(1)).await;
            false
        }
    }
}

/// The records this recorder last wrote, with their revisions: the recorder writes each record
/// with a revision check, so a held one is current unless someone else wrote since — and then the
/// write fails, the held one is dropped and the record is read again.
/// At most [`MAX_HELD_RECORDS`] are held (a few KiB each); a cluster beyond that is read each time.
type Held = std::collections::HashMap<String, (ClusterRecord, u64)>;

const MAX_HELD_RECORDS: usize = 20_000;

/// Every stored record (up to [`MAX_HELD_RECORDS`]) read in one listing, so the first result of
/// each cluster after a start needs no read of its own. A listing that fails, or a record that
/// does not decode, only means reads later.
async fn held_at_start(bucket: &Bucket<ClusterRecord>) -> Held {
    match bucket.revisions_raw().await {
        Ok(entries) => entries
            .into_iter()
            .filter_map(|(key, bytes, revision)| {
                serde_json::from_slice::<ClusterRecord>(&bytes).ok().map(|record| (key, (record, revision)))
            })
            .take(MAX_HELD_RECORDS)
            .collect(),
        Err(err) => {
            warn!(error = %bus::chain(&err), "records not listed at start; each is read when its first result comes");
            Held::default()
        }
    }
}

/// Read-modify-write of one cluster's record with a revision check; a lost race reads again.
async fn record_one(bucket: &Bucket<ClusterRecord>, held: &mut Held, result: &CommandResult) -> Result<(), BusError> {
    let mut attempt = 0;
    loop {
        let current = match held.remove(&result.cluster) {
            Some(current) => Some(current),
            None => bucket.get(&result.cluster).await?,
        };
        let revision = current.as_ref().map_or(0, |(_, revision)| *revision);
        let record = next_record(current.map(|(record, _)| record), result.clone());
        match bucket.update(&result.cluster, &record, revision).await {
            Ok(stored) => {
                if held.len() < MAX_HELD_RECORDS {
                    held.insert(result.cluster.clone(), (record, stored));
                }
                return Ok(());
            }
            Err(err) if attempt >= 3 => return Err(err),
            Err(_) => attempt += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::version::SchemaVersion;
    use proto::{CommandId, ResultStatus};
    use time::OffsetDateTime;

    fn mk_result(id: &str, finished: i64) -> CommandResult {
        CommandResult {
            schema: SchemaVersion::CURRENT,
            command_id: CommandId(id.into()),
            rollout_id: None,
            cluster: "a".into(),
            kind: "enable-gmsa".into(),
            status: ResultStatus::Succeeded,
            steps: vec![],
            attempt: 1,
            finished_at: OffsetDateTime::from_unix_timestamp(finished).unwrap(),
            agent_version: "t".into(),
            resources: vec![],
        }
    }

    #[test]
    fn newer_results_replace_older_ones_and_redeliveries_count_once() {
        let record = next_record(None, mk_result("1", 10));
        let record = next_record(Some(record), mk_result("1", 10));
        assert_eq!(record.results_recorded, 1);
        let record = next_record(Some(record), mk_result("2", 30));
        let record = next_record(Some(record), mk_result("3", 20));
        assert_eq!(record.last_result.command_id.as_str(), "2");
        assert_eq!(record.results_recorded, 3);
    }
    #[test]
    fn parts_keep_their_last_outcome_while_other_commands_arrive() {
        let mut credspec = mk_result("1", 10);
        credspec.kind = "apply-credspec".into();
        credspec.rollout_id = Some("r1".into());
        credspec.steps = vec![proto::StepOutcome::unchanged("credspec-apply", serde_json::Value::Null)];
        let record = next_record(None, credspec);
        let mut audit = mk_result("2", 20);
        audit.kind = "audit-access".into();
        let record = next_record(Some(record), audit);
        assert_eq!(record.last_result.kind, "audit-access");
        assert_eq!(record.parts[&Part::Credspec].command_id, "1", "an audit says nothing about the credspec");
        // An older failure arriving late does not replace a newer outcome of the part.
        let mut late = mk_result("0", 5);
        late.kind = "apply-credspec".into();
        late.status = ResultStatus::Failed { code: "x".into(), message: "y".into() };
        let record = next_record(Some(record), late);
        assert_eq!(record.parts[&Part::Credspec].command_id, "1");
        // A record written before parts existed still decodes.
        let mut old = serde_json::to_value(&record).unwrap();
        old.as_object_mut().unwrap().remove("parts");
        let decoded = decode_record("a", &serde_json::to_vec(&old).unwrap()).unwrap();
        assert!(decoded.parts.is_empty() && decoded.drift.is_empty());
    }

    #[test]
    fn drift_reports_are_kept_in_order_once_and_bounded() {
        let mk_drift = |secs: i64| proto::drift::DriftReport {
            schema: SchemaVersion::CURRENT,
            cluster: "a".into(),
            kind: "RoleBinding".into(),
            namespace: Some("default".into()),
            name: format!("rb-{secs}"),
            cause: "deleted".into(),
            diff: vec![],
            remedy: "reported".into(),
            detail: None,
            at: OffsetDateTime::from_unix_timestamp(secs).unwrap(),
        };
        let mut record = next_record(None, mk_result("1", 10));
        for secs in [5, 3, 4] {
            record = with_drift(record, mk_drift(secs));
        }
        record = with_drift(record, mk_drift(4));
        let times: Vec<i64> = record.drift.iter().map(|report| report.at.unix_timestamp()).collect();
        assert_eq!(times, [3, 4, 5]);
        for secs in 10..30 {
            record = with_drift(record, mk_drift(secs));
        }
        assert_eq!(record.drift.len(), MAX_DRIFT_REPORTS);
        assert_eq!(record.drift[0].at.unix_timestamp(), 20, "the oldest go first");
    }

    #[test]
    fn uses_are_added_by_successes_and_released_by_later_ones_and_failures_change_nothing() {
        use proto::resources::ResourceUse;
        let gmsa = SharedResource::gmsa("WebApp01");
        let with = |id: &str, at: i64, in_use: bool, status: ResultStatus| {
            let mut result = mk_result(id, at);
            result.status = status;
            result.resources = vec![ResourceUse { resource: gmsa.clone(), in_use }];
            result
        };
        let record = next_record(None, with("1", 10, true, ResultStatus::Succeeded));
        assert!(record.in_use.contains(&gmsa));
        let failed = ResultStatus::Failed { code: "x".into(), message: "y".into() };
        let record = next_record(Some(record), with("2", 20, false, failed));
        assert!(record.in_use.contains(&gmsa), "a failed teardown releases nothing");
        let record = next_record(Some(record), with("3", 30, false, ResultStatus::Unchanged));
        assert!(record.in_use.is_empty());
        let mut other = record.clone();
        other.cluster = "b".into();
        other.in_use.insert(gmsa.clone());
        let except: BTreeSet<String> = ["a".to_string()].into();
        assert_eq!(users_of([&record, &other], &gmsa, &except), ["b"]);
        assert!(users_of([&record, &other], &gmsa, &["b".to_string()].into()).is_empty());
    }
}
