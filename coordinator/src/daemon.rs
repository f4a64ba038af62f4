//! The composition root of `fleet-coordinator`: ensures the bus layout, publishes the declared
//! inventory, then runs the result recorder and the control API until shutdown.

use crate::config::CoordinatorConfig;
use crate::{control, inventory, record};
use bus::topology::{self, Topology};
use bus::{Bus, BusError};
use tokio::sync::watch;
use tracing::info;

/// Starts the coordinator's tasks on `bus`; they stop when `shutdown` turns true.
pub async fn start(bus: Bus, config: &CoordinatorConfig, shutdown: watch::Receiver<bool>) -> Result<Running, BusError> {
    let layout = Topology { replicas: config.replicas, ..Topology::default() };
    topology::ensure(&bus, &layout).await?;
    let written = inventory::publish_declared(&bus, &config.clusters).await?;
    info!(declared = config.clusters.len(), written, "inventory published");
    let recorder = tokio::spawn(record::run_recorder(bus.clone(), shutdown.clone()));
    let control = tokio::spawn(control::serve(bus.clone(), shutdown));
    Ok(Running { recorder, control })
}

/// The coordinator's running tasks.
pub struct Running {
    recorder: tokio::task::JoinHandle<Result<(), BusError>>,
    control: tokio::task::JoinHandle<Result<(), BusError>>,
}

impl Running {
    /// Waits for both tasks; the first error wins.
    pub async fn wait(self) -> Result<(), BusError> {
        let (recorder, control) = tokio::join!(self.recorder, self.control);
        for joined in [recorder, control] {
            match joined {
                Ok(result) => result?,
                Err(err) => tracing::error!(error = %err, "coordinator task panicked"),
            }
        }
        Ok(())
    }
}
