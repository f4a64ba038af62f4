//! `fleet-coordinator`: the daemon that plans fleet commands, publishes them and records results.
//! Everything is in the `coordinator` library; this only parses arguments and runs it.

use clap::Parser;
use std::path::PathBuf;

/// Plans and publishes gmsa-fleet commands and records every cluster's results.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML or YAML); `GMSA_COORDINATOR__*` variables override it
    /// (e.g. GMSA_COORDINATOR__NATS__URL=nats://127.0.0.1:4222).
    #[arg(short, long, env = "GMSA_COORDINATOR_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    coordinator::runtime::init_process();
    match coordinator::runtime::run_daemon(args.config.as_deref()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fleet-coordinator: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
