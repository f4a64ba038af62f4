//! `fleetctl clusters list|show`: the inventory with each cluster's desired state against its
//! observed state (`clusters::read` reads, `clusters::sync::decide` judges), and the fleet's
//! summary.
//!
//! # Exit codes
//! - `clusters list`: 0 (a listing, whatever the clusters' states; `--out-of-sync` filters);
//! - `clusters show`: 0 in sync, 1 out of sync (including not targeted), 2 an unknown cluster or a
//!   read error.

use crate::clusters::{self, Judged};
use crate::fleetctl::print;
use crate::output::{Format, Record};
use crate::selector::Selector;
use anyhow::Context;
use bus::Bus;
use std::process::ExitCode;
use std::time::Duration;
use time::OffsetDateTime;

/// The threshold as `time` arithmetic needs it, checked.
fn judged(unreachable_after: Duration) -> anyhow::Result<Judged> {
    let unreachable_after = time::Duration::try_from(unreachable_after)
        .ok()
        .filter(|threshold| threshold.is_positive())
        .with_context(|| format!("--unreachable-after {unreachable_after:?} is out of range"))?;
    Ok(Judged { now: OffsetDateTime::now_utc(), unreachable_after })
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// `clusters list [-l SELECTOR] [--out-of-sync] [--unreachable-after 10m]`.
pub async fn list(
    bus: &Bus,
    format: Format,
    selector: &str,
    out_of_sync: bool,
    unreachable_after: Duration,
) -> anyhow::Result<ExitCode> {
    let selector = Selector::parse(selector)?;
    let judged = judged(unreachable_after)?;
    let listing = clusters::list(bus, &selector, judged).await.context("reading the fleet's state")?;
    let online_within = time::Duration::seconds(90);
    let mut records: Vec<Record> = (listing.views.into_iter())
        .filter(|view| !out_of_sync || view.sync.needs_attention())
        .map(|view| Record::Cluster {
            online: view.last_seen.is_some_and(|seen| judged.now - seen <= online_within),
            agent_version: view.agent_version,
            last_kind: view.last_result.as_ref().map(|last| last.kind.clone()),
            last_status: view.last_result.as_ref().map(|last| last.status.clone()),
            desired_revision: view.desired.filter(|desired| desired.selected).map(|desired| desired.rollout_id),
            sync: view.sync.state.label().to_string(),
            in_sync: view.sync.in_sync,
            last_seen: view.last_seen.map(rfc3339),
            id: view.cluster,
            labels: view.labels,
            declared: view.declared,
        })
        .collect();
    records.extend(listing.invalid.into_iter().map(Record::from));
    // The summary counts every cluster the selector picks, also those --out-of-sync hides.
    records.push(Record::FleetSync(listing.summary));
    print(format, &records)?;
    Ok(ExitCode::SUCCESS)
}

/// `clusters show ID [--unreachable-after 10m]`.
pub async fn show(bus: &Bus, format: Format, cluster: &str, unreachable_after: Duration) -> anyhow::Result<ExitCode> {
    let judged = judged(unreachable_after)?;
    let view = clusters::show(bus, cluster, judged).await?;
    let in_sync = view.sync.in_sync;
    print(format, &[Record::ClusterState(Box::new(view))])?;
    Ok(if in_sync { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
