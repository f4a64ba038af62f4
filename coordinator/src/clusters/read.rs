//! The reads behind `fleetctl clusters show|list`: the inventory (`fleet_inventory` +
//! `fleet_agents`), the records (`fleet_state`) and the desired state (`fleet_rollout_index`),
//! all KV reads an operator's read-only access allows; `view::view_of` and `sync::decide` judge.
//!
//! Why fleetctl reads and decides, and not a control request: the same reads serve `clusters
//! list` today and need no coordinator running, and the decision is a pure function both sides
//! could call; a request would add a round trip and a role check for data operators may read anyway.

use super::view::{self, ClusterView, Desired, FleetSummary, Judged};
use crate::{inventory, record, rollouts};
use bus::{Bus, BusError};
use proto::control::InvalidEntry;
use std::collections::BTreeMap;
use tracing::{Instrument, info_span};

/// Why the clusters could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum ClustersError {
    /// A bucket could not be read.
    #[error("cannot read the fleet's state")]
    Bus(#[from] BusError),
    /// The cluster is neither declared nor known by an agent's hello.
    #[error("cluster {cluster} is not in the inventory")]
    NotFound { cluster: String },
}

impl ClustersError {
    /// A stable code to branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ClustersError::Bus(_) => "bus_error",
            ClustersError::NotFound { .. } => "not_found",
        }
    }
}

/// Every cluster's view (inventory order), the fleet's summary, and the entries that could not be read.
pub struct Listing {
    pub views: Vec<ClusterView>,
    pub summary: FleetSummary,
    pub invalid: Vec<InvalidEntry>,
}

/// One cluster's view; [`ClustersError::NotFound`] when the inventory has no such cluster.
pub async fn show(bus: &Bus, cluster: &str, judged: Judged) -> Result<ClusterView, ClustersError> {
    async {
        let inventory = inventory::load(bus).await?;
        let entry = (inventory.entries.iter())
            .find(|entry| entry.id == cluster)
            .ok_or_else(|| ClustersError::NotFound { cluster: cluster.to_string() })?;
        let bucket = record::records(bus).await?;
        // A record that cannot be decoded shows as none: the cluster then reads "never applied".
        let record =
            (bucket.get_raw(cluster).await?).and_then(|(bytes, _)| record::decode_record(cluster, &bytes).ok());
        let desired = rollouts::driver::desired_state_revision(bus).await?;
        let desired = desired.as_ref().map(|(desired, kv_revision)| Desired {
            file: &desired.file,
            rollout_id: &desired.rollout_id,
            kv_revision: *kv_revision,
        });
        let mut shown = view::view_of(entry, record.as_ref(), desired, judged);
        // The audit's last entries for the cluster; a bus without the audit log shows none.
        let filter = gmsa::audit::query::Filter { cluster: Some(cluster.to_string()), ..Default::default() };
        match crate::audit::read::entries(bus, &filter).await {
            Ok((entries, _)) => {
                let skip = entries.len().saturating_sub(view::AUDIT_TAIL);
                shown.audit = entries.into_iter().skip(skip).collect();
            }
            Err(err) => tracing::warn!(error = %bus::chain(&err), "the audit log could not be read"),
        }
        Ok(shown)
    }
    .instrument(info_span!("clusters-show", cluster = %cluster))
    .await
}

/// Every cluster the `selector` picks, judged, with the summary of those.
pub async fn list(bus: &Bus, selector: &gmsa::selector::Selector, judged: Judged) -> Result<Listing, ClustersError> {
    async {
        let inventory = inventory::load(bus).await?;
        let records: BTreeMap<String, record::ClusterRecord> =
            record::all(bus).await?.into_iter().map(|record| (record.cluster.clone(), record)).collect();
        let desired = rollouts::driver::desired_state_revision(bus).await?;
        let desired_ref = desired.as_ref().map(|(desired, kv_revision)| Desired {
            file: &desired.file,
            rollout_id: &desired.rollout_id,
            kv_revision: *kv_revision,
        });
        let views: Vec<ClusterView> = (inventory.entries.iter())
            .filter(|entry| selector.matches(&entry.labels))
            .map(|entry| view::view_of(entry, records.get(&entry.id), desired_ref, judged))
            .collect();
        let summary = view::summarize(
            &views,
            desired.as_ref().map(|(desired, _)| desired.rollout_id.clone()),
            judged.unreachable_after,
        );
        Ok(Listing { views, summary, invalid: inventory.invalid })
    }
    .instrument(info_span!("clusters-list"))
    .await
}
