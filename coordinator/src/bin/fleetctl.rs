//! `fleetctl`: the operator's command line for gmsa-fleet. Everything is in
//! `coordinator::fleetctl`; this only runs it and maps the outcome to an exit code.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    coordinator::fleetctl::main().await
}
