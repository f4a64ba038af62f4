//! The composition root of `fleet-coordinator`: ensures the bus layout, publishes the declared
//! inventory, builds the central side when configured, then runs the result recorder, the
//! control API, the shared-teardown verb, the leader election and — while this process leads —
//! the rollout driver (with the central side as its stage 0) and the audit writer, until shutdown.
//!
//! Several coordinator processes may run against one bus: all record results and answer
//! `fleet.ctl.run`; exactly one (the lease holder, `leader.rs`) runs the rollouts.

use crate::central::{self, Central, CentralError};
use crate::config::CoordinatorConfig;
use crate::leader::LeaderSettings;
use crate::rollouts::DriverSettings;
use crate::rotation::RotationSettings;
use crate::{control, inventory, leader, record, rollouts};
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

/// How the daemon's rollout side runs (defaults: system clock, 1 s ticks, a 6 s lease, no central
/// side).
#[derive(Clone, Default)]
pub struct Options {
    pub leader: LeaderSettings,
    pub driver: DriverSettings,
    /// The central side (Active Directory, the Key Vault secret, shared deletions); also the
    /// rollout driver's stage 0 unless `driver.stage0` is set.
    pub central: Option<Arc<Central>>,
    /// The credential rotation runner; its port is the central side unless set, its clock the
    /// driver's.
    pub rotation: RotationSettings,
    /// The NATS auth callout: a connection in the callout account and how to answer.
    pub callout: Option<(Bus, crate::callout::CalloutSettings)>,
    /// The audit log's writer (runs while leading).
    pub audit: crate::audit::AuditSettings,
}

/// Starts the coordinator's tasks on `bus`, with [`Central`] built from `config.central` when
/// present; they stop when `shutdown` turns true.
pub async fn start(
    bus: Bus,
    config: &CoordinatorConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<Running, StartError> {
    let central = config.central.as_ref().map(Central::connect).transpose()?.map(Arc::new);
    Ok(start_with(bus, config, Options { central, ..Options::default() }, shutdown).await?)
}

/// [`start`] with the options given: tests build the central side on simulators, and set a
/// clock and a tick.
pub async fn start_with(
    bus: Bus,
    config: &CoordinatorConfig,
    mut options: Options,
    shutdown: watch::Receiver<bool>,
) -> Result<Running, BusError> {
    let layout = Topology { replicas: config.replicas, audit_max_age: config.audit.max_age(), ..Topology::default() };
    topology::ensure(&bus, &layout).await?;
    let written = inventory::publish_declared(&bus, &config.clusters).await?;
    info!(declared = config.clusters.len(), written, central = options.central.is_some(), "inventory published");
    let recorder = tokio::spawn(record::run_recorder(bus.clone(), shutdown.clone()));
    // Each cluster's recent drift reports into its record (`clusters show`).
    let drift = tokio::spawn(crate::record_drift::run_drift_recorder(bus.clone(), shutdown.clone()));
    if bus.identity().is_none() {
        tracing::warn!("the bus connection has no identity: commands go out unsigned and every agent refuses them");
    }
    let operators = Arc::new(crate::authz::Operators::new(&config.operators, bus.identity().map(|key| key.public())));
    options.driver.operators = operators.clone();
    options.rotation.operators = operators.clone();
    let control = tokio::spawn(control::serve(bus.clone(), operators.clone(), shutdown.clone()));
    let agents = tokio::spawn(crate::agents::serve(bus.clone(), operators.clone(), shutdown.clone()));
    if let Some((callout_bus, settings)) = options.callout.take() {
        let (fleet_bus, operators, shutdown) = (bus.clone(), operators.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(err) = crate::callout::serve(callout_bus, fleet_bus, operators, settings, shutdown).await {
                tracing::error!(error = %bus::chain(&err), "the auth callout stopped: no agent or operator can connect");
            }
        });
    }
    let central = options.central.clone();
    let shared = tokio::spawn(central::serve::serve(bus.clone(), central.clone(), operators, shutdown.clone()));
    if options.driver.stage0.is_none()
        && let Some(central) = &central
    {
        options.driver.stage0 = Some(central.clone() as Arc<dyn rollouts::Stage0>);
    }
    let (leading_sender, leading) = watch::channel(false);
    let election = tokio::spawn(leader::run(bus.clone(), options.leader, leading_sender, shutdown.clone()));
    let mut rotation = options.rotation;
    if rotation.port.is_none()
        && let Some(central) = &central
    {
        rotation.port = Some(central.clone() as Arc<dyn crate::rotation::RotationPort>);
    }
    rotation.clock = options.driver.clock.clone();
    let rotations =
        tokio::spawn(crate::rotation::run_while_leading(bus.clone(), rotation, leading.clone(), shutdown.clone()));
    let audit = tokio::spawn(crate::audit::writer::run_while_leading(
        bus.clone(),
        options.audit,
        leading.clone(),
        shutdown.clone(),
    ));
    let driver = tokio::spawn(rollouts::run_while_leading(bus.clone(), options.driver, leading.clone(), shutdown));
    Ok(Running { recorder, drift, control, agents, shared, central, driver, rotations, audit, election, leading })
}

/// The coordinator's running tasks.
pub struct Running {
    recorder: tokio::task::JoinHandle<Result<(), BusError>>,
    drift: tokio::task::JoinHandle<Result<(), BusError>>,
    control: tokio::task::JoinHandle<Result<(), BusError>>,
    agents: tokio::task::JoinHandle<Result<(), BusError>>,
    shared: tokio::task::JoinHandle<Result<(), BusError>>,
    central: Option<Arc<Central>>,
    driver: tokio::task::JoinHandle<Result<(), BusError>>,
    rotations: tokio::task::JoinHandle<Result<(), BusError>>,
    audit: tokio::task::JoinHandle<Result<(), BusError>>,
    election: tokio::task::JoinHandle<()>,
    /// True while this process leads (runs the rollouts).
    pub leading: watch::Receiver<bool>,
}

impl Running {
    /// The central side, for the tasks that need it.
    pub fn central(&self) -> Option<Arc<Central>> {
        self.central.clone()
    }

    /// Waits for every task; the first error wins.
    pub async fn wait(self) -> Result<(), BusError> {
        let (recorder, drift, control, agents, shared, driver, rotations, audit, election) = tokio::join!(
            self.recorder,
            self.drift,
            self.control,
            self.agents,
            self.shared,
            self.driver,
            self.rotations,
            self.audit,
            self.election
        );
        if let Err(err) = election {
            tracing::error!(error = %err, "leader election panicked");
        }
        for joined in [recorder, drift, control, agents, shared, driver, rotations, audit] {
            match joined {
                Ok(result) => result?,
                Err(err) => tracing::error!(error = %err, "coordinator task panicked"),
            }
        }
        Ok(())
    }
}
