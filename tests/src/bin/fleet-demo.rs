//! `fleet-demo` (run by `scripts/demo`): the fleet-wide gMSA setup, end to end, on one machine.
//!
//! A real nats-server; a simulated fleet (the Azure simulator for ARM, Key Vault and Entra; the
//! Kubernetes API simulator for each cluster's API server); the real coordinator; and one real agent
//! per cluster running the production executor. Agents are tasks of this process, each with its own
//! NATS connection, Azure pipeline and kube client: 200 agent processes would spend the 2-core
//! machine on process start-up, and nothing in an agent is shared but the runtime.
//!
//! The steps, each one fleet-wide rollout with progress on stderr:
//! 0. with `--with-ad`: against a real Samba AD DC, the standard domain user and the gMSA are
//!    created (or found), the KDS root key checked and the domain facts read for the credspec;
//! 1. the coordinator writes the domain user's credential to Key Vault (value never leaves it);
//! 2. `enable-gmsa` (windowsProfile.gmsaProfile on every managed cluster);
//! 3. `grant-identity` (kubelet identity gets `get` on the secret);
//! 4. `apply-credspec` (GMSACredentialSpec + ClusterRole + RoleBinding, after preflight);
//! 5. `enable-gmsa` again, to show that a second run changes nothing;
//! 6. `audit-access`: each Windows pool's identity and who can read the secret, as a table with a
//!    fleet summary;
//! 7. `teardown`, dry run: what removing everything would change, per cluster (nothing is written).
//!
//! Exits 0 only if every cluster succeeded at every step.

use anyhow::Context;
use clap::Parser;
use coordinator::rollout::{Tally, TargetState};
use proto::Command;
use proto::command::{ApplyCredspec, EnableGmsa, GrantIdentity, IdentityChoice, ServiceAccountRef};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use testkit::nats::NatsServer;
use tests::fleet::{run_and_follow, start_coordinator};
use tests::world::SimWorld;

/// Run the fleet-wide gMSA setup against a simulated fleet with real NATS, agents and coordinator.
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
    /// Also do the Active Directory steps against a real Samba AD DC provisioned on loopback (needs
    /// root and Samba; scripts/demo installs it): create the domain user and the gMSA, read the
    /// domain facts the credspec is built from, and store the user's real credential in Key Vault.
    #[arg(long)]
    with_ad: bool,
}

/// What the Active Directory side gives the rollout.
struct Domain {
    netbios: String,
    dns_domain: String,
    dns_tree_root: String,
    guid: String,
    sid: String,
    gmsa_account: String,
    dns_server: String,
    user: String,
    password: gmsa::SecretString,
    /// Keeps the Samba DC running while the demo needs it.
    _dc: Option<testkit::samba::SambaDc>,
}

impl Domain {
    /// Fixed facts of a domain we do not talk to (the default demo).
    fn fixed() -> Domain {
        Domain {
            netbios: "CONTOSO".into(),
            dns_domain: "contoso.com".into(),
            dns_tree_root: "contoso.com".into(),
            guid: DOMAIN_GUID.into(),
            sid: DOMAIN_SID.into(),
            gmsa_account: "WebApp01".into(),
            dns_server: "10.1.0.4".into(),
            user: "gmsa-user".into(),
            password: gmsa::SecretString::new(demo_password()),
            _dc: None,
        }
    }

    /// New-GMSADomainUser, New-GMSA and the credspec's facts, against a real Samba AD DC.
    async fn samba() -> anyhow::Result<Domain> {
        use ad::Directory;
        let dc =
            tokio::task::spawn_blocking(|| testkit::samba::SambaDc::start(testkit::samba::SambaOptions::default()))
                .await?
                .context("provisioning a Samba AD DC")?;
        let config =
            ad::LdapConfig::new(dc.ldaps_url(), dc.admin_principal(), gmsa::SecretString::new(dc.admin_password()))
                .with_ca_bundle(dc.ca_cert_path())?;
        let directory = ad::LdapDirectory::new(config);
        let user = ad::AccountName::new("gmsa-fleet-user")?;
        let ensured = directory.ensure_user(&ad::UserSpec { name: user.clone() }).await?;
        let password = match ensured.new_password {
            Some(password) => password,
            None => directory.rotate_password(&user).await?,
        };
        say(&format!("AD: standard domain user {} {}", user.as_str(), label(ensured.outcome.is_changed())));
        let gmsa_name = ad::AccountName::gmsa("WebApp01")?;
        let spec = ad::GmsaSpec {
            name: gmsa_name.clone(),
            dns_host_name: format!("webapp01.{}", dc.dns_domain()),
            password_interval_days: 30,
            allowed_principals: vec![user.clone()],
        };
        let gmsa_outcome = directory.ensure_gmsa(&spec).await?;
        say(&format!(
            "AD: gMSA {}$ {}, retrievable by {} only",
            gmsa_name.as_str(),
            label(gmsa_outcome.is_changed()),
            user.as_str()
        ));
        let kds = directory.kds_status().await?;
        say(&format!(
            "AD: KDS root key present: {} (create it with Add-KdsRootKey; never done silently)",
            kds.exists()
        ));
        let facts = directory.domain_facts(&gmsa_name).await?;
        say(&format!(
            "AD: domain {} ({}), SID {}, GUID {}",
            facts.dns_name, facts.netbios_name, facts.domain_sid, facts.domain_guid
        ));
        Ok(Domain {
            netbios: facts.netbios_name.clone(),
            dns_domain: facts.dns_name.clone(),
            dns_tree_root: facts.dns_tree_name.clone(),
            guid: facts.domain_guid.to_string(),
            sid: facts.domain_sid.to_string(),
            gmsa_account: gmsa_name.as_str().to_string(),
            dns_server: "127.0.0.1".into(),
            user: user.as_str().to_string(),
            password,
            _dc: Some(dc),
        })
    }
}

fn label(changed: bool) -> &'static str {
    if changed { "created" } else { "already present" }
}

/// The demo's Active Directory facts (what `ad::Directory::domain_facts` reads from a DC).
const DOMAIN_SID: &str = "S-1-5-21-2126449477-2524075714-3094792973";
const DOMAIN_GUID: &str = "244818ae-87ac-4fcd-92ec-e79e5252348a";

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
    let world = SimWorld::build("aks", args.clusters, args.per_subscription).await?;
    say(&format!(
        "simulated fleet: {} AKS clusters in {} subscriptions (Azure simulator {}, one Kubernetes API per cluster)",
        args.clusters,
        args.clusters.div_ceil(args.per_subscription.max(1)),
        world.azure.arm_endpoint()
    ));
    let coordinator = start_coordinator(&server.url(), world.declared()).await?;
    let agents = world.spawn_agents(&server.url(), |cluster: &str| agent::AgentSettings::new(cluster)).await?;
    say(&format!("coordinator and {} agents running ({:.1}s)", agents.len(), started.elapsed().as_secs_f64()));

    let domain = if args.with_ad { Domain::samba().await? } else { Domain::fixed() };

    // 1. The coordinator stores the domain user's credential; only its URI travels.
    let azure = world.coordinator_azure()?;
    let vault = azure::VaultRef {
        subscription_id: tests::world::VAULT_SUBSCRIPTION.into(),
        resource_group: tests::world::VAULT_RESOURCE_GROUP.into(),
        name: tests::world::VAULT_NAME.into(),
        vault_uri: None,
    };
    // New-GMSAAzureKeyVault: created once, shared by every cluster that names it; an existing vault
    // (as here) is left exactly as it is.
    let spec = azure::VaultSpec {
        location: "westeurope".into(),
        tenant_id: world.azure.tenant_id(),
        rbac: false,
        writer_object_id: None,
    };
    let ensured = azure.ensure_vault(&vault, &spec).await?;
    say(&format!(
        "Key Vault {}: {}",
        tests::world::VAULT_NAME,
        if ensured.is_changed() { "created" } else { "exists, left as it is" }
    ));
    let credential =
        azure::domain_user_credential(&domain.netbios, &domain.user, &domain.password).map_err(anyhow::Error::msg)?;
    let written = azure.write_domain_user_secret(&vault, None, &credential).await?;
    say(&format!(
        "domain-user credential stored in Key Vault ({}): {}",
        if written.outcome.is_changed() { "changed" } else { "unchanged" },
        written.uri
    ));

    // The simulator serves the vault on loopback; the credspec carries the vault's DNS name, which
    // is what the CCG plugin on Windows nodes resolves (the validator refuses IP-literal hosts).
    let path = written
        .uri
        .0
        .split_once("/secrets/")
        .map(|(_, path)| path.to_string())
        .context("secret URI without /secrets/")?;
    let credspec_secret_uri = format!("https://{}.vault.azure.net/secrets/{path}", tests::world::VAULT_NAME);
    let deadline = Duration::from_secs(600);
    let steps: Vec<(&str, Command)> = vec![
        (
            "enable-gmsa",
            Command::EnableGmsa(EnableGmsa {
                dns_server: Some(domain.dns_server.clone()),
                root_domain: Some(domain.dns_tree_root.clone()),
                mode: proto::Mode::Apply,
            }),
        ),
        (
            "grant-identity",
            Command::GrantIdentity(GrantIdentity {
                vault: world.vault_ref(),
                secret_name: "GMSADomainUserCred".into(),
                identity: IdentityChoice::Kubelet,
                mode: proto::Mode::Apply,
            }),
        ),
        (
            "apply-credspec",
            Command::ApplyCredspec(ApplyCredspec {
                spec_name: "aks-gmsa-spec".into(),
                gmsa_account: domain.gmsa_account.clone(),
                netbios_domain: domain.netbios.clone(),
                dns_domain: domain.dns_domain.clone(),
                dns_tree_root: domain.dns_tree_root.clone(),
                domain_guid: domain.guid.clone(),
                domain_sid: domain.sid.clone(),
                secret_uri: credspec_secret_uri.clone(),
                identity_object_id: None,
                bindings: vec![ServiceAccountRef { namespace: "default".into(), name: "default".into() }],
                owner: "default".into(),
                mode: proto::Mode::Apply,
            }),
        ),
        (
            "enable-gmsa (again)",
            Command::EnableGmsa(EnableGmsa {
                dns_server: Some(domain.dns_server.clone()),
                root_domain: Some(domain.dns_tree_root.clone()),
                mode: proto::Mode::Apply,
            }),
        ),
    ];
    let interactive = std::io::stderr().is_terminal();
    let mut table: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut all_ok = true;
    for (name, command) in steps {
        let step_started = Instant::now();
        let (rollout_id, states) = run_and_follow(&coordinator.bus, command, "env=demo", deadline, |tally| {
            let line = progress_line(name, tally);
            if interactive {
                eprint!("\r{line}");
            } else {
                eprintln!("{line}");
            }
        })
        .await?;
        if interactive {
            eprintln!();
        }
        let tally = Tally::of(states.iter().map(|(_, state)| state));
        say(&format!("{name}: rollout {rollout_id} done in {:.1}s", step_started.elapsed().as_secs_f64()));
        all_ok &= tally.all_succeeded();
        for (target, state) in &states {
            table.entry(target.cluster.clone()).or_default().push(cell(state));
        }
    }
    println!(
        "{:<10} {:<26} {:<26} {:<26} {:<26}",
        "CLUSTER", "ENABLE-GMSA", "GRANT-IDENTITY", "APPLY-CREDSPEC", "ENABLE-GMSA (AGAIN)"
    );
    for (cluster, cells) in &table {
        print!("{cluster:<10}");
        for cell in cells {
            print!(" {cell:<26}");
        }
        println!();
    }
    all_ok &= audit_and_plan_teardown(&coordinator.bus, &world, deadline).await?;
    let mutations = world.azure.mutations().len();
    say(&format!(
        "{} clusters, {} Azure writes recorded by the simulator, {:.1}s in all",
        table.len(),
        mutations,
        started.elapsed().as_secs_f64()
    ));
    for agent in agents {
        let _ = agent.stop().await;
    }
    coordinator.stop().await;
    if all_ok {
        say("every cluster succeeded");
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        say("some clusters failed: see the table");
        Ok(std::process::ExitCode::from(1))
    }
}

/// Steps 6 and 7: the access audit table and the teardown dry run, printed as fleetctl prints them.
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

fn progress_line(step: &str, tally: &Tally) -> String {
    format!(
        "fleet-demo: {step}: {}/{} done ({} changed, {} unchanged, {} failed, {} timed out)",
        tally.targets - tally.pending,
        tally.targets,
        tally.succeeded,
        tally.unchanged,
        tally.failed,
        tally.timed_out
    )
}

fn cell(state: &TargetState) -> String {
    match state {
        TargetState::Done(result) => match &result.status {
            proto::ResultStatus::Failed { code, .. } => format!("failed: {code}"),
            status => {
                let changed: Vec<&str> =
                    result.steps.iter().filter(|s| s.is_changed()).map(|s| s.step.as_str()).collect();
                if changed.is_empty() {
                    status.label().to_string()
                } else {
                    format!("{} ({})", status.label(), changed.len())
                }
            }
        },
        other => other.label().to_string(),
    }
}

/// A demo password, generated per run; it is written to the simulated Key Vault and nowhere else.
fn demo_password() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("Gm5a!{}", &random[..20])
}
