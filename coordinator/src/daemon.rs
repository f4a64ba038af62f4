//! The composition root of `fleet-coordinator`: ensures the bus layout, publishes the declared
//! inventory, then runs the result recorder, the control API, the leader election and — while
//! this process leads — the rollout driver, until shutdown.
//!
//! Several coordinator processes may run against one bus: all record results and answer
//! `fleet.ctl.run`; exactly one (the lease holder, `leader.rs`) runs the rollouts.

use crate::config::CoordinatorConfig;
use crate::leader::LeaderSettings;
use crate::rollouts::DriverSettings;
use crate::{control, inventory, leader, record, rollouts};
use bus::topology::{self, Topology};
use bus::{Bus, BusError};
use tokio::sync::watch;
use tracing::info;

/// How the daemon's rollout side runs (defaults: system clock, 1 s ticks, a 6 s lease).
#[derive(Clone, Default)]
pub struct Options {
    pub leader: LeaderSettings,
    pub driver: DriverSettings,
}

/// Starts the coordinator's tasks on `bus` with default [`Options`].
pub async fn start(bus: Bus, config: &CoordinatorConfig, shutdown: watch::Receiver<bool>) -> Result<Running, BusError> {
    start_with(bus, config, Options::default(), shutdown).await
}

/// Starts the coordinator's tasks on `bus`; they stop when `shutdown` turns true.
pub async fn start_with(
    bus: Bus,
    config: &CoordinatorConfig,
    options: Options,
    shutdown: watch::Receiver<bool>,
) -> Result<Running, BusError> {
    let layout = Topology { replicas: config.replicas, ..Topology::default() };
    topology::ensure(&bus, &layout).await?;
    let written = inventory::publish_declared(&bus, &config.clusters).await?;
    info!(declared = config.clusters.len(), written, "inventory published");
    let recorder = tokio::spawn(record::run_recorder(bus.clone(), shutdown.clone()));
    let control = tokio::spawn(control::serve(bus.clone(), shutdown.clone()));
    let (leading_sender, leading) = watch::channel(false);
    let election = tokio::spawn(leader::run(bus.clone(), options.leader, leading_sender, shutdown.clone()));
    let driver = tokio::spawn(rollouts::run_while_leading(bus.clone(), options.driver, leading.clone(), shutdown));
    Ok(Running { recorder, control, driver, election, leading })
}

/// The coordinator's running tasks.
pub struct Running {
    recorder: tokio::task::JoinHandle<Result<(), BusError>>,
    control: tokio::task::JoinHandle<Result<(), BusError>>,
    driver: tokio::task::JoinHandle<Result<(), BusError>>,
    election: tokio::task::JoinHandle<()>,
    /// True while this process leads (runs the rollouts).
    pub leading: watch::Receiver<bool>,
}

impl Running {
    /// Waits for every task; the first error wins.
    pub async fn wait(self) -> Result<(), BusError> {
        let (recorder, control, driver, election) =
            tokio::join!(self.recorder, self.control, self.driver, self.election);
        if let Err(err) = election {
            tracing::error!(error = %err, "leader election panicked");
        }
        for joined in [recorder, control, driver] {
            match joined {
                Ok(result) => result?,
                Err(err) => tracing::error!(error = %err, "coordinator task panicked"),
            }
        }
        Ok(())
    }
}
