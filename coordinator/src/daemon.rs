//! The composition root of `fleet-coordinator`: ensures the bus layout, publishes the declared
//! inventory, builds the central side when configured, then runs the result recorder, the
//! control API and the shared-teardown verb until shutdown.

use crate::central::{self, Central, CentralError};
use crate::config::CoordinatorConfig;
use crate::{control, inventory, record};
use bus::topology::{self, Topology};
use bus::{Bus, BusError};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::info;

/// Why the coordinator did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The bus layout or the inventory could not be written.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The `central` section could not be turned into adapters.
    #[error(transparent)]
    Central(#[from] CentralError),
}

/// Starts the coordinator's tasks on `bus`, with [`Central`] built from `config.central` when
/// present; they stop when `shutdown` turns true.
pub async fn start(
    bus: Bus,
    config: &CoordinatorConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<Running, StartError> {
    let central = config.central.as_ref().map(Central::connect).transpose()?.map(Arc::new);
    Ok(start_with(bus, config, central, shutdown).await?)
}

/// [`start`] with the central side given (or none): tests build it on simulators.
pub async fn start_with(
    bus: Bus,
    config: &CoordinatorConfig,
    central: Option<Arc<Central>>,
    shutdown: watch::Receiver<bool>,
) -> Result<Running, BusError> {
    let layout = Topology { replicas: config.replicas, ..Topology::default() };
    topology::ensure(&bus, &layout).await?;
    let written = inventory::publish_declared(&bus, &config.clusters).await?;
    info!(declared = config.clusters.len(), written, central = central.is_some(), "inventory published");
    let recorder = tokio::spawn(record::run_recorder(bus.clone(), shutdown.clone()));
    let control = tokio::spawn(control::serve(bus.clone(), shutdown.clone()));
    let shared = tokio::spawn(central::serve::serve(bus.clone(), central.clone(), shutdown));
    Ok(Running { recorder, control, shared, central })
}

/// The coordinator's running tasks.
pub struct Running {
    recorder: tokio::task::JoinHandle<Result<(), BusError>>,
    control: tokio::task::JoinHandle<Result<(), BusError>>,
    shared: tokio::task::JoinHandle<Result<(), BusError>>,
    central: Option<Arc<Central>>,
}

impl Running {
    /// The central side, for the tasks that need it (the rollout driver's stage 0).
    pub fn central(&self) -> Option<Arc<Central>> {
        self.central.clone()
    }

    /// Waits for every task; the first error wins.
    pub async fn wait(self) -> Result<(), BusError> {
        let (recorder, control, shared) = tokio::join!(self.recorder, self.control, self.shared);
        for joined in [recorder, control, shared] {
            match joined {
                Ok(result) => result?,
                Err(err) => tracing::error!(error = %err, "coordinator task panicked"),
            }
        }
        Ok(())
    }
}
