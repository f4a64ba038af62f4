//! Process set-up shared by the coordinator's binaries: the rustls provider, logging, signals.

use crate::config::CoordinatorConfig;
use std::path::Path;
use tokio::sync::watch;

/// Installs ring as the process's rustls provider and a `tracing` subscriber (stderr, `RUST_LOG`).
pub fn init_process() {
    // Another part of the process may have installed it already; either way ring is in place.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// A shutdown signal that turns true on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
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
        let _ = sender.send(true);
    });
    receiver
}

/// Runs `fleet-coordinator` until a signal.
pub async fn run_daemon(config_path: Option<&Path>) -> anyhow::Result<()> {
    use anyhow::Context;
    let config = CoordinatorConfig::load(config_path)?;
    let identity = config
        .identity
        .as_ref()
        .context("identity.key_file: required: the coordinator signs every command and agents refuse unsigned ones")?;
    let key = bus::read_identity(&identity.key_file)?;
    let password = |field: &str, variable: &str| {
        std::env::var(variable).with_context(|| format!("{field}: the environment variable {variable} is not set"))
    };
    let credentials = match (&config.nats.user, &config.nats.password_env) {
        (Some(user), Some(variable)) => {
            bus::Credentials::Password { user: user.clone(), password: password("nats.password_env", variable)? }
        }
        _ => bus::Credentials::None,
    };
    let security = bus::Security { ca_file: config.nats.ca_file.clone(), credentials };
    let bus = bus::Bus::connect_secured(&security, Some(key), &config.nats.url, "fleet-coordinator", None)
        .await
        .context("connecting to NATS")?;
    let callout = match &config.nats.callout {
        Some(section) => {
            let credentials = bus::Credentials::Password {
                user: section.user.clone(),
                password: password("nats.callout.password_env", &section.password_env)?,
            };
            let security = bus::Security { ca_file: config.nats.ca_file.clone(), credentials };
            let callout_bus =
                bus::Bus::connect_secured(&security, None, &config.nats.url, "fleet-coordinator-callout", None)
                    .await
                    .context("connecting to NATS as the auth callout service")?;
            let settings = crate::callout::CalloutSettings {
                issuer: bus::read_identity(&section.issuer_key_file)?,
                account: "FLEET".into(),
                ttl: std::time::Duration::from_secs(section.ttl_secs),
                window: std::time::Duration::from_secs(120),
            };
            Some((callout_bus, settings))
        }
        None => None,
    };
    let shutdown = shutdown_on_signals();
    let leader = crate::leader::LeaderSettings {
        ttl: std::time::Duration::from_secs(config.leader.ttl_secs),
        renew: std::time::Duration::from_millis(config.leader.renew_millis),
        ..crate::leader::LeaderSettings::default()
    };
    let central = (config.central.as_ref())
        .map(crate::central::Central::connect)
        .transpose()
        .context("the central section")?
        .map(std::sync::Arc::new);
    // A test's failpoint (see `rotation::CrashPoint`); unset in production.
    let crash_at = match std::env::var("FLEET_COORDINATOR_CRASH_AT") {
        Ok(text) => Some(text.parse().map_err(|rule| anyhow::anyhow!("FLEET_COORDINATOR_CRASH_AT: {rule}"))?),
        Err(_) => None,
    };
    let rotation = crate::rotation::RotationSettings { crash_at, ..Default::default() };
    let options = crate::daemon::Options {
        leader,
        central,
        rotation,
        callout,
        audit: config.audit.settings(),
        ..crate::daemon::Options::default()
    };
    let running =
        crate::daemon::start_with(bus, &config, options, shutdown).await.context("starting the coordinator")?;
    tracing::info!("coordinator running");
    running.wait().await.context("coordinator stopped on an error")?;
    Ok(())
}
