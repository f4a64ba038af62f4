//! Rolling back a rollout when the fleet had no desired state before it: the clusters it changed
//! are torn down (credspec, grant, identity, gMSA on the cluster — nothing shared is deleted),
//! one `teardown` command each, recorded as an ordinary fleet command (`fleetctl status <id>`).
//!
//! **Refuses** nothing beyond what a teardown refuses: it never deletes the shared secret,
//! identity, gMSA or domain user; it disables gMSA on a cluster only where this rollout's
//! `enable-gmsa` changed it, and it touches no cluster the rollout did not change.

use crate::rollout::{self, RolloutRecord};
use bus::Bus;
use gmsa::rollout::RolloutState;
use proto::command::{SharedDeletes, Teardown};
use proto::control::Target;
use proto::version::SchemaVersion;
use proto::{Command, CommandEnvelope, CommandId, CommandKind, Mode};
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// The teardown command that undoes what `state` changed on `cluster`.
pub fn teardown_of(state: &RolloutState, cluster: &str) -> Option<Command> {
    let setup = state.plan.setup_of(cluster)?;
    let changed = &state.clusters.get(cluster)?.changed;
    Some(Command::Teardown(Teardown {
        spec_name: setup.credspec.spec_name.clone(),
        owner: setup.credspec.owner.clone(),
        vault: setup.vault.clone(),
        secret_name: setup.secret_name.clone(),
        identity: setup.identity.clone(),
        disable_gmsa: changed.contains(&CommandKind::EnableGmsa),
        delete: SharedDeletes::default(),
        mode: Mode::Apply,
    }))
}

/// Sends the teardowns of `clusters` as fleet command `rollout_id`; returns the clusters sent to.
pub async fn teardown(
    bus: &Bus,
    state: &RolloutState,
    clusters: &BTreeSet<String>,
    rollout_id: &str,
    by: &str,
) -> Result<Vec<String>, String> {
    let now = OffsetDateTime::now_utc();
    let deadline = now + time::Duration::hours(1);
    let envelopes: Vec<CommandEnvelope> = clusters
        .iter()
        .filter_map(|cluster| {
            let command = teardown_of(state, cluster)?;
            Some(CommandEnvelope {
                schema: SchemaVersion::CURRENT,
                command_id: CommandId::for_rollout(rollout_id, cluster),
                rollout_id: Some(rollout_id.to_string()),
                cluster: cluster.clone(),
                issued_at: now,
                deadline,
                issuer: Some(by.to_string()),
                command,
            })
        })
        .collect();
    let targets: Vec<Target> = envelopes
        .iter()
        .map(|envelope| Target { cluster: envelope.cluster.clone(), command_id: envelope.command_id.clone() })
        .collect();
    let record = RolloutRecord {
        rollout_id: rollout_id.to_string(),
        kind: CommandKind::Teardown,
        selector: format!("rollback of {}", state.rollout_id),
        targets: targets.clone(),
        created_at: now,
        deadline,
        requested_by: Some(by.to_string()),
    };
    let bucket = rollout::rollouts(bus).await.map_err(|err| bus::chain(&err))?;
    bucket.put(rollout_id, &record).await.map_err(|err| bus::chain(&err))?;
    let plan = crate::plan::Plan { rollout_id: rollout_id.to_string(), envelopes, skipped: vec![] };
    crate::control::publish(bus, &plan).await.map_err(|err| bus::chain(&err))?;
    Ok(targets.into_iter().map(|target| target.cluster).collect())
}
