//! `fleet-agent`: one per AKS cluster; applies gmsa-fleet commands. Everything is in the `agent`
//! library; this parses arguments and hands over to [`agent::runtime::run`].

use clap::Parser;
use std::path::PathBuf;

/// Applies gmsa-fleet commands (enable gMSA, grant identity, install credspec, verify) to one cluster.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML or YAML); `GMSA_AGENT__*` variables override it
    /// (e.g. GMSA_AGENT__NATS__URL=nats://127.0.0.1:4222).
    #[arg(short, long, env = "GMSA_AGENT_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match agent::runtime::run(args.config.as_deref()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fleet-agent: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
