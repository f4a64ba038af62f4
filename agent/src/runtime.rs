//! The composition root of `fleet-agent`: configuration → rustls provider and logging → bus →
//! production executor → worker, until SIGINT/SIGTERM (then the command in flight finishes or is
//! handed back).

use crate::cloud::{CloudConfig, CloudExecutor};
use crate::config::AgentConfig;
use crate::worker::Agent;
use anyhow::Context;
use std::path::Path;
use tokio::sync::{mpsc, watch};

/// Runs the agent until a signal.
pub async fn run(config_path: Option<&Path>) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let config = AgentConfig::load(config_path)?;
    let executor_config: CloudConfig = serde_json::from_value(config.executor.clone())
        .context("executor: the section is incomplete or has unknown fields")?;
    let mut executor = CloudExecutor::connect(executor_config).await?;
    let drift_events = executor.take_drift_events();
    let (reconnected_tx, reconnected_rx) = mpsc::unbounded_channel();
    let name = format!("fleet-agent-{}", config.cluster_id);
    let key = bus::read_identity(&config.identity.key_file).context("identity.key_file")?;
    let bus =
        bus::Bus::connect_secured(&config.security(), Some(key), &config.nats.url, &name, Some(reconnected_tx)).await?;
    if let Some(events) = drift_events {
        let publisher = bus::results::ResultPublisher::open(&bus).await?;
        tokio::spawn(crate::drift::forward(publisher, config.cluster_id.clone(), events));
    }
    let agent = Agent::new(bus, config.settings(), executor).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        let _ = shutdown_tx.send(true);
    });
    agent.run(shutdown_rx, Some(reconnected_rx)).await?;
    Ok(())
}
