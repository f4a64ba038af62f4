//! `fleet-demo` (run by `scripts/demo`): the fleet-wide gMSA setup, end to end, on one machine, as
//! one staged rollout.
//!
//! A real nats-server; a simulated fleet (the Azure simulator for ARM, Key Vault and Entra; the
//! Kubernetes API simulator for each cluster's API server); the real coordinator daemon (in this
//! process, the same code `fleet-coordinator` runs); and one real agent per cluster running the
//! production executor. Agents are tasks of this process, each with its own NATS connection, Azure
//! pipeline and kube client: 200 agent processes would spend the 2-core machine on process
//! start-up, and nothing in an agent is shared but the runtime.
//!
//! The steps:
//! 1. The domain user's credential reaches Key Vault. With `--with-ad` this is the rollout's
//!    stage 0, run by the coordinator's central side against a real Samba AD DC: the standard
//!    domain user and the gMSA are created, the domain facts read for the credspec and the secret
//!    written (the rollout file leaves the AD facts out). Without AD, stage 0 cannot run (the
//!    central side needs a directory), so the file carries fixed AD facts and the demo writes the
//!    secret itself with the coordinator's Azure principal, before the rollout, as the operator
//!    would.
//! 2. One rollout of a `RolloutFile` (built below from YAML, in the format of
//!    `deploy/rollout.example.yaml`): a canary of one cluster with an approval gate after it, then
//!    two waves (30 % of the rest, then all the rest) with a concurrency limit and a failure
//!    budget. Each cluster gets enable-gmsa, grant-identity and apply-credspec. Live progress goes
//!    to stderr (fleetctl's progress line, one per change); when the canary gate waits, the demo
//!    approves it, as an operator would with `fleetctl rollout approve`. At the end the status
//!    table (per stage counts, per cluster state) goes to stdout, as `fleetctl rollout status`
//!    prints it.
//! 3. The same file again: a second rollout in which every cluster is `unchanged`.
//! 4. `audit-access`: each Windows pool's identity and who can read the secret, as a table with a
//!    fleet summary.
//! 5. `teardown`, dry run: what removing everything would change, per cluster (nothing is written).
//!
//! With `--break-canary` the canary cluster has no GMSACredentialSpec CRD: its apply-credspec
//! preflight fails, the rollout halts before wave 1, and the demo shows (from the Azure and
//! Kubernetes simulators' own mutation logs) that no other cluster was touched, then exits 1.
//!
//! Exits 0 only if every cluster succeeded at every step.

use anyhow::{Context, bail};
use clap::Parser;
use coordinator::rollout::TargetState;
use coordinator::rollouts::api::{RolloutReply, RolloutRequest};
use gmsa::rollout::{ClusterStatus, Phase, RolloutStatus, StagePhase};
use proto::Command;
use proto::command::IdentityChoice;
use proto::rollout::RolloutFile;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::nats::NatsServer;
use tests::fleet::{run_and_follow, start_coordinator_with};
use tests::world::SimWorld;

/// Run the fleet-wide gMSA setup as one staged rollout against a simulated fleet with real NATS,
/// agents and coordinator.
#[derive(Parser)]
struct Args {
    /// Number of simulated clusters.
    #[arg(long, default_value_t = 20)]
    clusters: usize,
    /// Clusters per Azure subscription (ARM throttles per subscription).
    #[arg(long, default_value_t = 50)]
    per_subscription: usize,
    /// Log level of the components (RUST_LOG syntax); logs go to stderr.
    #[arg(long, default_value = "warn")]
    log: String,
    /// Also do the Active Directory side against a real Samba AD DC provisioned on loopback (needs
    /// root and Samba; scripts/demo installs it): the rollout's stage 0 creates the domain user and
    /// the gMSA, reads the domain facts the credspec is built from, and stores the user's real
    /// credential in Key Vault.
    #[arg(long)]
    with_ad: bool,
    /// Break the canary cluster (no GMSACredentialSpec CRD): the rollout halts after the canary,
    /// before any wave-1 cluster is touched, and the demo exits 1.
    #[arg(long)]
    break_canary: bool,
}

/// The demo's Active Directory facts (what `ad::Directory::domain_facts` reads from a DC), given in
/// the rollout file when there is no DC.
const DOMAIN_SID: &str = "S-1-5-21-2126449477-2524075714-3094792973";
const DOMAIN_GUID: &str = "244818ae-87ac-4fcd-92ec-e79e5252348a";

/// How long one rollout may take before the demo gives up.
const ROLLOUT_DEADLINE: Duration = Duration::from_secs(600);

/// The rollout file: the fleet's desired gMSA state and the canary-then-two-waves strategy. With a
/// DC, the AD facts are left out and the `central` section asks for stage 0; without, they are
/// given.
fn mk_rollout_file(dc: Option<&testkit::samba::SambaDc>) -> anyhow::Result<RolloutFile> {
    let (dns_server, root_domain, ad_section) = match dc {
        Some(dc) => (
            "127.0.0.1".to_string(),
            dc.realm().to_lowercase(),
            "  central:\n    domain_user: gmsa-fleet-user\n    gmsa_password_interval_days: 30\n".to_string(),
        ),
        None => (
            "10.1.0.4".to_string(),
            "contoso.com".to_string(),
            format!(
                "    netbios_domain: CONTOSO\n    dns_domain: contoso.com\n    dns_tree_root: contoso.com\n    \
                 domain_guid: {DOMAIN_GUID}\n    domain_sid: {DOMAIN_SID}\n"
            ),
        ),
    };
    let (credspec_facts, central) =
        if dc.is_some() { (String::new(), ad_section) } else { (ad_section, String::new()) };
    let yaml = format!(
        r#"
name: demo-gmsa-setup
setup:
  dns_server: {dns_server}
  root_domain: {root_domain}
  vault: {{subscription_id: {subscription}, resource_group: {resource_group}, name: {vault}}}
  secret_name: GMSADomainUserCred
  identity: {{type: kubelet}}
  credspec:
    spec_name: aks-gmsa-spec
    gmsa_account: WebApp01
    bindings: [{{namespace: default, name: default}}]
{credspec_facts}  validate: false
{central}strategy:
  stages:
    - {{name: canary, count: 1, max_concurrency: 1, approval_after: true}}
    - {{name: wave-1, percent: 30, max_concurrency: 4, failure_budget: 1}}
    - {{name: wave-2, percent: 100, max_concurrency: "50%", failure_budget: "5%"}}
  # The simulator's ARM allows far more than a real subscription; the demo should not wait.
  arm_budget: {{burst: 200, per_sec: 10}}
"#,
        subscription = tests::world::VAULT_SUBSCRIPTION,
        resource_group = tests::world::VAULT_RESOURCE_GROUP,
        vault = tests::world::VAULT_NAME,
    );
    let file: RolloutFile = serde_yaml::from_str(&yaml).with_context(|| format!("the demo's rollout file:\n{yaml}"))?;
    gmsa::rollout::validate(&file).map_err(|err| anyhow::anyhow!("the demo's rollout file: {err}"))?;
    Ok(file)
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?;
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(demo(args))
}

fn say(text: &str) {
    eprintln!("fleet-demo: {text}");
}

async fn demo(args: Args) -> anyhow::Result<std::process::ExitCode> {
    let started = Instant::now();
    let server = NatsServer::start().context("starting nats-server (scripts/demo installs it)")?;
    say(&format!("nats-server with JetStream on {}", server.url()));
    let break_canary = args.break_canary;
    let world = SimWorld::build_with("aks", args.clusters, args.per_subscription, |index| kubesim::ClusterSeed {
        gmsa_crd: if break_canary && index == 0 {
            kubesim::GmsaCrd::Absent
        } else {
            kubesim::GmsaCrd::Served { v1: true, v1alpha1: true }
        },
        ..kubesim::ClusterSeed::default()
    })
    .await?;
    say(&format!(
        "simulated fleet: {} AKS clusters in {} subscriptions (Azure simulator {}, one Kubernetes API per cluster)",
        args.clusters,
        args.clusters.div_ceil(args.per_subscription.max(1)),
        world.azure.arm_endpoint()
    ));
    if break_canary {
        say(&format!("--break-canary: {} has no GMSACredentialSpec CRD", world.clusters[0].id));
    }
    let dc = if args.with_ad { Some(start_samba().await?) } else { None };
    let central = match &dc {
        Some(dc) => Some(Arc::new(mk_central(&world, dc)?)),
        None => None,
    };
    let options = coordinator::daemon::Options {
        central,
        driver: coordinator::rollouts::driver::DriverSettings {
            tick: Duration::from_millis(200),
            ..Default::default()
        },
        ..Default::default()
    };
    let coordinator = start_coordinator_with(&server.url(), world.declared(), options).await?;
    let agents = world.spawn_agents(&server.url(), |cluster: &str| agent::AgentSettings::new(cluster)).await?;
    say(&format!("coordinator and {} agents running ({:.1}s)", agents.len(), started.elapsed().as_secs_f64()));
    if dc.is_none() {
        write_secret_without_ad(&world).await?;
    }

    let file = mk_rollout_file(dc.as_ref())?;
    let bus = &coordinator.bus;
    let (rollout_id, stages) = start_rollout(bus, &file).await?;
    let status = follow_rollout(bus, &rollout_id).await?;
    coordinator::rollout_verbs::print_status(coordinator::output::Format::Table, &status, false)?;
    let mut all_ok = matches!(status.phase, Phase::Completed) && all_clusters(&status, ClusterStatus::Succeeded);
    if let Phase::Halted { reason } = &status.phase {
        say(&format!("the rollout halted: {reason}"));
        let later: Vec<&String> = stages.iter().skip(1).flat_map(|stage| &stage.clusters).collect();
        let touched = touched_clusters(&world, &later);
        if touched.is_empty() {
            say(&format!(
                "no wave-1 or wave-2 cluster was touched: none of the {} Azure writes and no Kubernetes write \
                 names any of the {} clusters after the canary",
                world.azure.mutations().len(),
                later.len()
            ));
        } else {
            say(&format!("clusters after the canary were touched: {touched:?}"));
        }
    } else if all_ok {
        // The same file again: the fleet already is as it says.
        say("the same rollout file again: every cluster should be unchanged");
        let (rerun_id, _) = start_rollout(bus, &file).await?;
        let rerun = follow_rollout(bus, &rerun_id).await?;
        let unchanged = rerun.clusters.iter().filter(|view| view.status == ClusterStatus::Unchanged).count();
        say(&format!("second rollout {rerun_id}: {unchanged}/{} clusters unchanged", rerun.clusters.len()));
        all_ok &= matches!(rerun.phase, Phase::Completed) && all_clusters(&rerun, ClusterStatus::Unchanged);
        all_ok &= audit_and_plan_teardown(bus, &world, ROLLOUT_DEADLINE).await?;
        if let Some(dc) = &dc {
            all_ok &= rotate_once(bus, &world, dc).await?;
        }
    }
    all_ok &= show_audit(bus, &world.clusters[0].id).await?;
    say(&format!(
        "{} clusters, {} Azure writes recorded by the simulator, {:.1}s in all",
        world.clusters.len(),
        world.azure.mutations().len(),
        started.elapsed().as_secs_f64()
    ));
    for agent in agents {
        let _ = agent.stop().await;
    }
    coordinator.stop().await;
    if all_ok {
        say("every cluster succeeded");
        Ok(std::process::ExitCode::SUCCESS)
    } else if matches!(status.phase, Phase::Halted { .. }) {
        say("the rollout halted after the canary: exiting 1");
        Ok(std::process::ExitCode::from(1))
    } else {
        say("not every cluster succeeded: see the table");
        Ok(std::process::ExitCode::from(1))
    }
}

/// `--with-ad`: one zero-downtime rotation of the domain user's password (user B is reset and
/// written to Key Vault, `rotate-credential` rolls out), then the status table `fleetctl rotate
/// status` prints, and a logon with the new credential as the CCG plugin would make it.
async fn rotate_once(bus: &bus::Bus, world: &SimWorld, dc: &testkit::samba::SambaDc) -> anyhow::Result<bool> {
    use coordinator::rotation::api::{RotateReply, RotateRequest};
    say("rotating the domain user's password: the idle user is reset, Key Vault gets a new version");
    let request = RotateRequest::Now { requested_by: Some("fleet-demo".into()), dry_run: false };
    let run_id = match coordinator::rotate_verbs::request(bus, &request).await? {
        RotateReply::Started { run, .. } => run.run_id,
        other => bail!("the rotation was not started: {other:?}"),
    };
    let started = Instant::now();
    let mut last = String::new();
    let mut followed = false;
    let (record, run) = loop {
        let RotateReply::Status { credentials } =
            coordinator::rotate_verbs::request(bus, &RotateRequest::Status).await?
        else {
            bail!("no rotation status");
        };
        let Some(record) = credentials.into_iter().next() else { bail!("no credential record") };
        if let Some(run) = record.history.iter().find(|run| run.run_id == run_id).cloned() {
            break (record, run);
        }
        if let Some(run) = &record.current {
            let line = format!("{:?}, {}/{} secret(s) written", run.phase, run.writes, run.targets.len());
            if line != last {
                say(&format!("rotation {run_id}: {line}"));
                last = line;
            }
            // The rotation's rollout has the fleet's gates: the demo approves them as it did for
            // the setup (`fleetctl rollout approve`).
            if let (Some(rollout_id), false) = (&run.rollout_id, followed) {
                followed = true;
                say(&format!("rotate-credential rolls out as {rollout_id}, with the fleet's stages and gates"));
                follow_rollout(bus, rollout_id).await?;
            }
        }
        if started.elapsed() > ROLLOUT_DEADLINE {
            bail!("the rotation did not finish within {ROLLOUT_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let now = time::OffsetDateTime::now_utc();
    coordinator::fleetctl::print(
        coordinator::output::Format::Table,
        &[coordinator::rotate_verbs::credential_record(&record, now), coordinator::rotate_verbs::run_record(&run)],
    )?;
    let value = world
        .azure
        .secret_value(&world.vault_id, "GMSADomainUserCred", None)
        .context("the secret after the rotation")?;
    let logon = tests::ccg::ccg_bind(dc, &value);
    say(&match &logon {
        Ok(()) => format!("a CCG-style logon with Key Vault's new credential works (user {})", run.target_user),
        Err(err) => format!("a CCG-style logon with Key Vault's new credential failed: {err}"),
    });
    Ok(run.phase == gmsa::rotation::RunPhase::Completed && logon.is_ok())
}

/// Provisions a Samba AD DC on loopback for stage 0.
async fn start_samba() -> anyhow::Result<testkit::samba::SambaDc> {
    say("provisioning a Samba AD DC on loopback (stage 0 runs against it)");
    tokio::task::spawn_blocking(|| testkit::samba::SambaDc::start(testkit::samba::SambaOptions::default()))
        .await?
        .context("provisioning a Samba AD DC")
}

/// The coordinator's central side (stage 0) on the Azure simulator and the Samba DC, with the
/// coordinator's own principal.
fn mk_central(world: &SimWorld, dc: &testkit::samba::SambaDc) -> anyhow::Result<coordinator::central::Central> {
    let config =
        ad::LdapConfig::new(dc.ldaps_url(), dc.admin_principal(), gmsa::SecretString::new(dc.admin_password()))
            .with_ca_bundle(dc.ca_cert_path())?;
    let writer = (world.azure.tenant_id(), tests::world::COORDINATOR_OBJECT_ID.to_string());
    Ok(coordinator::central::Central::new(world.coordinator_azure()?, ad::LdapDirectory::new(config), Some(writer)))
}

/// Without a DC there is no stage 0: the coordinator's principal stores a demo credential in the
/// (existing) vault, as today's operator does before a rollout; only its URI travels.
async fn write_secret_without_ad(world: &SimWorld) -> anyhow::Result<()> {
    let azure = world.coordinator_azure()?;
    let vault = azure::VaultRef {
        subscription_id: tests::world::VAULT_SUBSCRIPTION.into(),
        resource_group: tests::world::VAULT_RESOURCE_GROUP.into(),
        name: tests::world::VAULT_NAME.into(),
        vault_uri: None,
    };
    let password = gmsa::SecretString::new(demo_password());
    let credential = azure::domain_user_credential("CONTOSO", "gmsa-user", &password).map_err(anyhow::Error::msg)?;
    let written = azure.write_domain_user_secret(&vault, None, &credential).await?;
    say(&format!(
        "no AD (stage 0 needs one): domain-user credential stored in Key Vault {} ({})",
        tests::world::VAULT_NAME,
        if written.outcome.is_changed() { "changed" } else { "unchanged" },
    ));
    Ok(())
}

/// Starts a rollout of `file`; returns its id and planned stages.
async fn start_rollout(
    bus: &bus::Bus,
    file: &RolloutFile,
) -> anyhow::Result<(String, Vec<coordinator::rollouts::api::PlannedStage>)> {
    let request =
        RolloutRequest::Start { file: Box::new(file.clone()), dry_run: false, requested_by: Some("fleet-demo".into()) };
    match coordinator::rollout_verbs::request(bus, &request).await? {
        RolloutReply::Started { rollout_id, stages, notes, .. } => {
            for note in notes {
                say(&note);
            }
            let sizes: Vec<String> =
                stages.iter().map(|stage| format!("{} ({})", stage.name, stage.clusters.len())).collect();
            say(&format!("rollout {rollout_id} started: {}", sizes.join(", then ")));
            Ok((rollout_id, stages))
        }
        RolloutReply::Refused { code, message } => bail!("the coordinator refused the rollout ({code}): {message}"),
        other => bail!("unexpected reply to start: {other:?}"),
    }
}

/// Follows a rollout to its end: a progress line on stderr whenever it changes, stage 0's messages,
/// and the approval of every gate after a stage as it comes (the demo is the operator).
async fn follow_rollout(bus: &bus::Bus, rollout_id: &str) -> anyhow::Result<RolloutStatus> {
    let started = Instant::now();
    let mut last = String::new();
    let mut approved: BTreeSet<String> = BTreeSet::new();
    loop {
        if started.elapsed() > ROLLOUT_DEADLINE {
            bail!("rollout {rollout_id} did not end within {ROLLOUT_DEADLINE:?}");
        }
        let status_request = RolloutRequest::Status { rollout_id: rollout_id.to_string() };
        match coordinator::rollout_verbs::request(bus, &status_request).await? {
            RolloutReply::Status { status, .. } => {
                let line = coordinator::rollout_verbs::progress_line(&status);
                if line != last {
                    say(line.strip_prefix("fleetctl: ").unwrap_or(&line));
                    last = line;
                }
                if !matches!(status.phase, Phase::Running) {
                    say(&format!("rollout {rollout_id} ended in {:.1}s", started.elapsed().as_secs_f64()));
                    return Ok(*status);
                }
                let gate = status.stages.iter().find(|stage| stage.phase == StagePhase::WaitingApprovalAfter);
                if let Some(stage) = gate
                    && approved.insert(stage.name.clone())
                {
                    say(&format!("the {} gate waits: {}", stage.name, status.waiting.join("; ")));
                    say(&format!("approving the {} gate as demo (fleetctl rollout approve {rollout_id})", stage.name));
                    let approve = RolloutRequest::Approve {
                        rollout_id: rollout_id.to_string(),
                        stage: Some(stage.name.clone()),
                        by: "demo".into(),
                    };
                    match coordinator::rollout_verbs::request(bus, &approve).await? {
                        RolloutReply::Done { message, .. } => say(&format!("approved: {message}")),
                        other => bail!("the approval was not applied: {other:?}"),
                    }
                }
            }
            // Stage 0 still runs (or failed).
            RolloutReply::Done { message, .. } => {
                if message != last {
                    say(&format!("{rollout_id}: {message}"));
                    if message.starts_with("failed") {
                        bail!("stage 0 of {rollout_id} failed: {message}");
                    }
                    last = message;
                }
            }
            RolloutReply::Refused { code, message } => bail!("the coordinator refused ({code}): {message}"),
            other => bail!("unexpected reply while following: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn all_clusters(status: &RolloutStatus, wanted: ClusterStatus) -> bool {
    !status.clusters.is_empty() && status.clusters.iter().all(|view| view.status == wanted)
}

/// The clusters among `clusters` that any Azure or Kubernetes write of the simulators names.
fn touched_clusters(world: &SimWorld, clusters: &[&String]) -> Vec<String> {
    let mutations = world.azure.mutations();
    (world.clusters.iter())
        .filter(|cluster| clusters.contains(&&cluster.id))
        .filter(|cluster| {
            !cluster.kube.api_mutations().is_empty()
                || mutations.iter().any(|mutation| mutation.resource_id.contains(&cluster.arm_id))
        })
        .map(|cluster| cluster.id.clone())
        .collect()
}

/// Steps 4 and 5: the access audit table and the teardown dry run, printed as fleetctl prints them.
async fn audit_and_plan_teardown(bus: &bus::Bus, world: &SimWorld, deadline: Duration) -> anyhow::Result<bool> {
    use coordinator::output::{Record, render_table};
    let audit = Command::AuditAccess(proto::command::AuditAccess {
        vault: world.vault_ref(),
        secret_name: "GMSADomainUserCred".into(),
        identity: IdentityChoice::Kubelet,
    });
    let (rollout_id, states) = run_and_follow(bus, audit, "env=demo", deadline, |_| {}).await?;
    say(&format!("audit-access: rollout {rollout_id}"));
    let reports =
        coordinator::verbs::access_reports(states.iter().map(|(target, state)| (target.cluster.as_str(), state)));
    // The coordinator writes the secret (and reads it to compare): it may read it.
    let records = coordinator::verbs::access_records(&reports, &[tests::world::COORDINATOR_OBJECT_ID.to_string()]);
    let clean = !records.iter().any(|record| matches!(record, Record::Finding { .. }));
    println!(
        "\nACCESS AUDIT (fleetctl audit-access --vault {}/{}/{} --allow <coordinator>)",
        tests::world::VAULT_SUBSCRIPTION,
        tests::world::VAULT_RESOURCE_GROUP,
        tests::world::VAULT_NAME
    );
    print!("{}", render_table(&records));

    let teardown = Command::Teardown(proto::command::Teardown {
        spec_name: "aks-gmsa-spec".into(),
        owner: "default".into(),
        vault: world.vault_ref(),
        secret_name: "GMSADomainUserCred".into(),
        identity: IdentityChoice::Kubelet,
        disable_gmsa: true,
        delete: proto::command::SharedDeletes::default(),
        mode: proto::Mode::DryRun,
    });
    let writes_before = world.azure.mutations().len();
    let (rollout_id, states) = run_and_follow(bus, teardown, "env=demo", deadline, |_| {}).await?;
    say(&format!("teardown (dry run): rollout {rollout_id}"));
    let mut records = Vec::new();
    let mut planned_ok = true;
    for (target, state) in &states {
        match state {
            TargetState::Done(result) if result.status.is_success() => {
                records.extend(result.steps.iter().map(|step| coordinator::verbs::step_record(&target.cluster, step)))
            }
            other => {
                planned_ok = false;
                records.push(Record::Step {
                    cluster: target.cluster.clone(),
                    step: "-".into(),
                    change: other.label().into(),
                    what: format!("{other:?}"),
                });
            }
        }
    }
    println!("\nTEARDOWN DRY RUN (fleetctl teardown --vault ...; add --confirm to act)");
    print!("{}", render_table(&records));
    let untouched = world.azure.mutations().len() == writes_before;
    say(&format!("teardown dry run wrote nothing to Azure: {untouched}"));
    Ok(clean && planned_ok && untouched)
}

/// A demo password, generated per run; it is written to the simulated Key Vault and nowhere else.
fn demo_password() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("Gm5a!{}", &random[..20])
}

/// The last step: `fleetctl audit log --cluster <first>` and `fleetctl audit verify`, once the
/// writer's checkpoint covers the whole log.
async fn show_audit(bus: &bus::Bus, cluster: &str) -> anyhow::Result<bool> {
    use coordinator::audit::read;
    use gmsa::audit::query::Filter;
    let started = Instant::now();
    loop {
        let (entries, _) = read::entries(bus, &Filter::default()).await?;
        let covered = read::checkpoints(bus)
            .await?
            .last()
            .and_then(|(_, note)| note.lines().nth(1).and_then(|size| size.parse::<usize>().ok()))
            .is_some_and(|size| size == entries.len() && size > 0);
        if covered || started.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let filter = Filter { cluster: Some(cluster.to_string()), ..Filter::default() };
    let (entries, _) = read::entries(bus, &filter).await?;
    println!("\nAUDIT LOG (fleetctl audit log --cluster {cluster})");
    let mut out = std::io::stdout().lock();
    coordinator::audit_verbs::write_entries(&mut out, coordinator::output::Format::Table, &entries, true)?;
    let key = gmsa::merkle::verifier_key(
        coordinator::audit::DEFAULT_KEY_NAME,
        &testkit::identity::coordinator_key().public(),
    );
    writeln!(out, "\nAUDIT VERIFY (fleetctl audit verify --key {key})")?;
    let trusted = vec![gmsa::audit::verify::TrustedKey::parse(&key)?];
    let report = read::verify(bus, coordinator::audit::DEFAULT_ORIGIN, trusted, &[]).await?;
    coordinator::audit_verbs::write_report(&mut out, coordinator::output::Format::Table, &report)?;
    Ok(report.failures.is_empty() && !entries.is_empty())
}
