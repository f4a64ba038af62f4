//! Credential rotation through the built binaries: `fleet-coordinator` processes with their central
//! section (Azure simulator, real Samba DC), aborted at each step of a rotation in turn by the
//! `FLEET_COORDINATOR_CRASH_AT` failpoint (the process dies at once, as under SIGKILL: no cleanup,
//! the new password lost from memory), then restarted; agents are real cloud executors. A CCG-like
//! client runs throughout and must never fail.

use super::rollouts::{Process, central_config, fleetctl_command, write_file};
use coordinator::rotation::api::{RotateReply, RotateRequest};
use gmsa::rotation::RunPhase;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::nats::NatsServer;
use tests::ccg::CcgLoop;
use tests::world::{COORDINATOR_SECRET, SimWorld, VAULT_NAME};

fn spawn_coordinator(config: &std::path::Path, dc: &testkit::samba::SambaDc, crash_at: Option<&str>) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleet-coordinator"));
    command
        .arg("--config")
        .arg(config)
        .env("S0_COORDINATOR_SECRET", COORDINATOR_SECRET)
        .env("S0_AD_PASSWORD", dc.admin_password())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(point) = crash_at {
        command.env("FLEET_COORDINATOR_CRASH_AT", point);
    }
    Process(command.spawn().unwrap())
}

async fn status(bus: &bus::Bus) -> Vec<coordinator::rotation::store::CredentialRecord> {
    match coordinator::rotate_verbs::request(bus, &RotateRequest::Status).await.unwrap() {
        RotateReply::Status { credentials } => credentials,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_coordinator_aborted_at_each_step_of_a_rotation_resumes_writes_each_vault_once_and_no_logon_fails() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = NatsServer::start().unwrap();
    let dc = tokio::task::spawn_blocking(testkit::samba::SambaDc::shared).await.unwrap();
    let world = std::sync::Arc::new(SimWorld::build("rk", 2, 2).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = central_config(dir.path(), &server.url(), &world, dc);
    let mut coordinator = spawn_coordinator(&config, dc, None);
    let bus = bus::Bus::connect(&server.url(), "check")
        .await
        .unwrap()
        .with_identity(testkit::identity::operator_key(testkit::identity::TEST_OPERATOR));
    let started = Instant::now();
    while bus::kv::cursors(&bus).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the coordinator never created the bus layout");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let agents = world.spawn_agents(&server.url(), |cluster| tests::fleet::test_settings(cluster, &[])).await.unwrap();
    let (user, gmsa) = (testkit::samba::unique_name("rku"), testkit::samba::unique_name("rkg"));
    let strategy = "  stages:\n    - {name: canary, count: 1}\n    - {name: rest}";
    let rollout = tests::fleet::central_rollout_yaml(
        "rotation-under-crashes",
        dc.realm(),
        &user,
        &gmsa,
        VAULT_NAME,
        "",
        strategy,
    );
    let path = write_file(dir.path(), "rollout.yaml", &rollout);
    let url = server.url();
    let args = ["rollout", "start", "-f", path.to_str().unwrap(), "--watch", "-o", "json"].map(String::from);
    let output =
        tokio::task::spawn_blocking(move || fleetctl_command().arg("--nats").arg(url).args(args).output().unwrap())
            .await
            .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let vault_id = world.vault_id.clone();
    let for_loop = world.clone();
    let ccg = CcgLoop::start(dc, &gmsa, move || for_loop.azure.secret_value(&vault_id, "GMSADomainUserCred", None));

    let mut expected_user = format!("{user}-b");
    for point in ["after-reset", "after-write", "after-rollout-start"] {
        drop(coordinator);
        let versions_before = world.azure.secret_versions(&world.vault_id, "GMSADomainUserCred").len();
        let mut crashing = spawn_coordinator(&config, dc, Some(point));
        // The request may get no answer: the process dies while handling it.
        let body =
            serde_json::to_vec(&RotateRequest::Now { requested_by: Some("test".into()), dry_run: false }).unwrap();
        let started = Instant::now();
        loop {
            let sent = tokio::time::timeout(
                Duration::from_secs(5),
                bus.signed_request(
                    coordinator::rotation::api::SUBJECT.to_string(),
                    body.clone(),
                    Duration::from_secs(5),
                ),
            )
            .await;
            if matches!(sent, Ok(Ok(_)) | Err(_)) || crashing.0.try_wait().unwrap().is_some() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no coordinator took the rotation");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let started = Instant::now();
        let exit = loop {
            if let Some(exit) = crashing.0.try_wait().unwrap() {
                break exit;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the failpoint {point} was never reached");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(!exit.success(), "{point}: the coordinator aborted ({exit:?})");
        drop(crashing);
        // A new coordinator resumes the rotation.
        coordinator = spawn_coordinator(&config, dc, None);
        let started = Instant::now();
        let run = loop {
            let records = status(&bus).await;
            if let Some(record) = records.first()
                && record.current.is_none()
                && let Some(run) = record.history.first()
                && run.target_user == expected_user
            {
                break run.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{point}: the rotation did not complete: {records:#?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        assert_eq!(run.phase, RunPhase::Completed, "{point}: {run:#?}");
        assert_eq!(run.writes, 1, "{point}: Key Vault was written once");
        let versions = world.azure.secret_versions(&world.vault_id, "GMSADomainUserCred").len();
        assert_eq!(versions, versions_before + 1, "{point}: exactly one new version");
        // Killed after the reset, before any vault got the password: the idle user is reset again.
        assert_eq!(run.resets, if point == "after-reset" { 2 } else { 1 }, "{point}: {run:#?}");
        let value = world.azure.secret_value(&world.vault_id, "GMSADomainUserCred", None).unwrap();
        assert!(value.contains(&format!("\\{expected_user}:")), "{point}: Key Vault names {expected_user}");
        expected_user = if expected_user == user { format!("{user}-b") } else { user.clone() };
    }
    let stats = ccg.finish().await;
    let (attempts, failures, errors) = (stats.attempts, stats.failures, stats.first_failures.clone());
    eprintln!("CCG-like client: {} attempts got a TGT as the gMSA", stats.kerberos);
    eprintln!("CCG-like client: {attempts} attempts, {failures} failures over three interrupted rotations");
    assert!(attempts > 10, "{attempts}");
    assert_eq!(failures, 0, "{errors:?}");
    for agent in agents {
        agent.stop().await.unwrap();
    }
    drop(coordinator);
}
