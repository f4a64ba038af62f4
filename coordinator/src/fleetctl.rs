//! `fleetctl`, the operator's command line: list the fleet, run a command across clusters picked
//! by a label selector, follow a rollout, and read each cluster's last recorded state.
//!
//! Data goes to stdout (`-o table|json|yaml`, see [`crate::output`]); progress and diagnostics go
//! to stderr prefixed `fleetctl:`.
//!
//! # Exit codes
//! - 0: every targeted cluster succeeded or was already in the desired state (or nothing to do);
//! - 1: at least one cluster failed or did not answer before the deadline;
//! - 2: usage, configuration, refused request or internal error — nothing was sent, or the outcome
//!   is unknown.

use crate::output::{self, Format, Record};
use crate::record;
use crate::rollout::{self, RolloutRecord, Tally, TargetState};
use anyhow::{Context, bail};
use bus::Bus;
use clap::{Args, Parser, Subcommand};
use proto::command::{ApplyCredspec, DisableGmsa, EnableGmsa, GrantIdentity, RotateCredential, Verify};
use proto::control::{RunReply, RunRequest};
use proto::version::SchemaVersion;
use proto::{Command, subjects};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use time::OffsetDateTime;

/// Roll out and check Windows gMSA support across a fleet of AKS clusters.
///
/// Examples:
///   fleetctl clusters list --selector env=prod
///   fleetctl clusters list --out-of-sync
///   fleetctl clusters show aks-prod-1 -o json
///   fleetctl run enable-gmsa --dns-server 10.1.0.4 --root-domain contoso.com --selector env=prod
///   fleetctl run apply-credspec --payload-file credspec.yaml --dry-run
///   fleetctl status r1732350000-1a2b3c4d -o json
#[derive(Parser)]
#[command(
    name = "fleetctl",
    version,
    verbatim_doc_comment,
    after_help = "Exit codes: 0 every targeted cluster succeeded or was already as desired; 1 a cluster failed or missed \
                  the deadline; 2 usage, configuration or refused request (nothing sent), or an internal error."
)]
pub struct Cli {
    /// NATS server URL(s), comma-separated.
    #[arg(long, global = true, env = "FLEET_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    pub output: Format,
    /// The operator's secret key file (`fleetctl keys new`): every control request is signed with
    /// it, and the coordinator acts with the role its `[[operators]]` give this key. Without it
    /// the coordinator refuses every request (`unsigned`).
    #[arg(long, global = true, env = "FLEETCTL_OPERATOR_KEY")]
    pub operator_key: Option<std::path::PathBuf>,
    /// The CA of the NATS server's certificate (then the connection requires TLS).
    #[arg(long, global = true, env = "FLEET_NATS_CA")]
    pub nats_ca: Option<std::path::PathBuf>,
    /// Connect as `operator:<NAME>` with a token signed by --operator-key, as the shipped server
    /// configuration (auth callout) requires.
    #[arg(long, global = true, env = "FLEETCTL_OPERATOR", requires = "operator_key")]
    pub operator: Option<String>,
    #[command(subcommand)]
    pub command: Verb,
}

#[derive(Subcommand)]
pub enum Verb {
    /// The fleet inventory: clusters from the coordinator's configuration and agents' hellos.
    Clusters {
        #[command(subcommand)]
        action: ClustersAction,
    },
    /// Send one command to every cluster the selector picks and follow it to the end.
    Run(RunArgs),
    /// A rollout's per-cluster status, or (without a rollout id) every cluster's last recorded result.
    Status {
        /// The rollout id printed by `fleetctl run`.
        rollout: Option<String>,
    },
    /// Each Windows node pool's identity and who can `get` the domain-user secret, per cluster and
    /// fleet-wide (Get-AksAgentPoolsAkvAccess). Exit 1 when any cluster has a finding.
    ///
    /// Example: fleetctl audit-access --vault SUB/rg-gmsa/kv1 --identity rg-gmsa/gmsa-mi -l env=prod
    #[command(verbatim_doc_comment)]
    AuditAccess(crate::verbs::AuditArgs),
    /// Check each cluster's credspec against what AD reports now, the plugin identity's access to
    /// the secret version, and (--run-workload) the sample workload (Start-GMSACredentialSpecValidation).
    /// Exit 1 when any check failed.
    ValidateCredspec(crate::verbs::ValidateArgs),
    /// Undo the setup in reverse order: RoleBindings, ClusterRole, credspec, the Key Vault grant,
    /// the identity on the Windows pools, gMSA on the cluster; with --delete-* also the shared
    /// secret, identity, gMSA and domain user, deleted by the coordinator daemon with the
    /// credentials of its `central` section (fleetctl needs none). A dry run unless --confirm.
    /// Refused (exit 2, nothing sent) while a cluster outside the selector still uses a shared
    /// resource it would take away, or when --delete-* is asked of a coordinator without `central`.
    ///
    /// Example: fleetctl teardown --vault SUB/rg-gmsa/kv1 -l env=dev            (dry run)
    ///          fleetctl teardown --vault SUB/rg-gmsa/kv1 -l env=dev --confirm
    #[command(verbatim_doc_comment)]
    Teardown(crate::verbs::TeardownArgs),
    /// Staged fleet rollouts of one desired gMSA state: plan, start, follow, approve, pause,
    /// resume, abort, retry, roll back (run by the leading fleet-coordinator).
    Rollout {
        #[command(subcommand)]
        action: crate::rollout_verbs::RolloutAction,
    },
    /// Rotate the standard domain user's password without downtime (users A and B alternate):
    /// now, on a schedule, and each credential's status and history (run by the leading
    /// fleet-coordinator; the password never reaches fleetctl).
    Rotate {
        #[command(subcommand)]
        action: crate::rotate_verbs::RotateAction,
    },
    /// The central audit log: every command, result, drift, refusal, rollout transition,
    /// rotation step and operator request, in a tamper-evident log: log, export, checkpoint, verify.
    Audit {
        #[command(subcommand)]
        action: crate::audit_verbs::AuditAction,
    },
    /// Agents' identities: enroll (a key pair per cluster), revoke, list.
    Agents {
        #[command(subcommand)]
        action: crate::agent_verbs::AgentsAction,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Collect a redacted diagnostics archive per cluster into --out-dir/<cluster>.tar
    /// (Copy-WindowsHostsLogs, through the Kubernetes and Azure APIs).
    Diagnostics(crate::verbs::DiagnosticsArgs),
}

#[derive(Subcommand)]
pub enum KeysAction {
    /// A new Ed25519 key: the secret half to --out (mode 0600, never overwritten), the public half
    /// printed. For the coordinator's `identity.key_file`, an operator's --operator-key, or an agent.
    New {
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// The public half of a key file; with --nkey-account as the NATS account nkey the server's
    /// `auth_callout.issuer` takes (for the coordinator's `nats.callout.issuer_key_file`).
    Public {
        file: std::path::PathBuf,
        #[arg(long, conflicts_with = "verifier_key")]
        nkey_account: bool,
        /// Print the C2SP verifier key auditors give `fleetctl audit verify --key`, for the key
        /// name the coordinator signs checkpoints with (`audit.key_name`).
        #[arg(long, num_args = 0..=1, default_missing_value = crate::audit::DEFAULT_KEY_NAME)]
        verifier_key: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ClustersAction {
    /// List clusters, optionally filtered by a label selector, each with the desired revision that
    /// applies, its last status, whether it is in sync and when its agent was last seen; a
    /// summary counts them by state.
    List {
        /// Label selector, e.g. `env=prod,region in (eu,us),!canary`.
        #[arg(short = 'l', long, default_value = "")]
        selector: String,
        /// Only clusters the desired state applies to that are not in sync.
        #[arg(long)]
        out_of_sync: bool,
        /// An agent with no hello for this long is unreachable, e.g. 90s, 10m, 1h.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        unreachable_after: Duration,
    },
    /// One cluster's desired state against what it last reported, part by part (gMSA profile,
    /// identity grant, credspec and RBAC, validation, rotation), its recent drift, and whether it
    /// is in sync and why not. Exit 1 when it is not in sync.
    ///
    /// Example: fleetctl clusters show aks-prod-1 -o json
    #[command(verbatim_doc_comment)]
    Show {
        /// The cluster id.
        cluster: String,
        /// An agent with no hello for this long is unreachable, e.g. 90s, 10m, 1h.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        unreachable_after: Duration,
    },
}

#[derive(Args)]
pub struct RunArgs {
    #[command(subcommand)]
    pub kind: KindArgs,
    /// Label selector picking the clusters; empty picks all.
    #[arg(short = 'l', long, global = true, default_value = "")]
    pub selector: String,
    /// Time the agents have to finish, e.g. 90s, 10m, 1h.
    #[arg(long, global = true, default_value = "10m", value_parser = parse_duration)]
    pub deadline: Duration,
    /// Show which clusters would get the command; send nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Return after publishing instead of following the rollout.
    #[arg(long, global = true)]
    pub no_wait: bool,
}

#[derive(Subcommand)]
pub enum KindArgs {
    /// Enable gMSA on the managed cluster (az aks update --enable-windows-gmsa).
    EnableGmsa {
        /// DNS server of the AD domain (IPv4); give with --root-domain or not at all.
        #[arg(long)]
        dns_server: Option<String>,
        /// Root domain name of the AD forest, e.g. contoso.com.
        #[arg(long)]
        root_domain: Option<String>,
    },
    /// Disable gMSA on the managed cluster (az aks update --disable-windows-gmsa).
    DisableGmsa,
    /// Grant the Windows nodes' identity `get` on the domain-user secret.
    GrantIdentity(PayloadFile),
    /// Install the GMSACredentialSpec, its ClusterRole and RoleBindings.
    ApplyCredspec(PayloadFile),
    /// Point clusters at a rotated secret version and check they can read it.
    RotateCredential(PayloadFile),
    /// Run the sample workload with the credspec and report whether it comes up.
    Verify(PayloadFile),
    /// From each cluster's network: find the DCs through DNS (SRV over UDP and TCP) and reach
    /// Kerberos 88, LDAP 389, LDAPS 636 and ADWS 9389 (Confirm-AksADDCConnectivity).
    CheckDcConnectivity {
        /// The DNS server the clusters use for the domain: IP or IP:port.
        #[arg(long)]
        dns_server: String,
        /// The AD DNS domain, e.g. contoso.com.
        #[arg(long)]
        domain: String,
        /// The DCs serve no AD Web Services: port 9389 is a warning, not a failure.
        #[arg(long)]
        adws_optional: bool,
    },
}

#[derive(Args)]
pub struct PayloadFile {
    /// The command's payload as YAML or JSON (see proto/README.md for each kind's fields).
    #[arg(long)]
    pub payload_file: PathBuf,
}

/// Parses `90`, `90s`, `10m` or `1h` into a deadline within `1s..=30 days`
/// ([`proto::control::MAX_DEADLINE_SECS`], the bound the coordinator applies too).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let too_long = || {
        format!(
            "{text:?} is too long: the deadline must be at most {} seconds (30 days)",
            proto::control::MAX_DEADLINE_SECS
        )
    };
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let value: u64 = number.parse().map_err(|error: std::num::ParseIntError| match error.kind() {
        std::num::IntErrorKind::PosOverflow => too_long(),
        _ => format!("{text:?}: expected a number followed by s, m or h"),
    })?;
    let seconds = match unit {
        "" | "s" => Some(value),
        "m" => value.checked_mul(60),
        "h" => value.checked_mul(3600),
        _ => return Err(format!("{text:?}: unit must be s, m or h")),
    }
    .ok_or_else(too_long)?;
    proto::control::check_deadline_secs("deadline", seconds).map_err(|error| error.to_string())?;
    Ok(Duration::from_secs(seconds))
}

/// The largest operator file (payload, facts) fleetctl reads: a payload is a few hundred bytes,
/// and a larger file could not be sent anyway (the NATS server's default `max_payload` is 1 MiB).
pub(crate) const MAX_OPERATOR_FILE_BYTES: u64 = 1024 * 1024;

/// Reads an operator file (YAML or JSON) strictly: larger than [`MAX_OPERATOR_FILE_BYTES`] is
/// refused before parsing, and an unknown key is refused with its path and the nearest field
/// ([`gmsa::strict`]). The type is the tolerant wire type itself.
pub(crate) fn read_operator_file<T: serde::de::DeserializeOwned + serde::Serialize>(
    path: &std::path::Path,
) -> anyhow::Result<T> {
    use std::io::Read;
    let shown = path.display();
    let file = std::fs::File::open(path).with_context(|| format!("reading {shown}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_OPERATOR_FILE_BYTES + 1).read_to_end(&mut bytes).with_context(|| format!("reading {shown}"))?;
    if bytes.len() as u64 > MAX_OPERATOR_FILE_BYTES {
        bail!(
            "{shown} is larger than {MAX_OPERATOR_FILE_BYTES} bytes (1 MiB), the limit of a payload file; nothing was sent"
        );
    }
    let text = String::from_utf8(bytes).with_context(|| format!("{shown} is not UTF-8 text; nothing was sent"))?;
    let document: serde_json::Value =
        serde_yaml::from_str(&text).with_context(|| format!("{shown} is not YAML or JSON; nothing was sent"))?;
    gmsa::strict::from_value(document).map_err(|error| anyhow::anyhow!("{shown}: {error}; nothing was sent"))
}

fn read_payload<T: serde::de::DeserializeOwned + serde::Serialize>(file: &PayloadFile) -> anyhow::Result<T> {
    read_operator_file(&file.payload_file)
}

fn command_of(kind: &KindArgs) -> anyhow::Result<Command> {
    Ok(match kind {
        KindArgs::EnableGmsa { dns_server, root_domain } => Command::EnableGmsa(EnableGmsa {
            dns_server: dns_server.clone(),
            root_domain: root_domain.clone(),
            ..EnableGmsa::default()
        }),
        KindArgs::DisableGmsa => Command::DisableGmsa(DisableGmsa {}),
        KindArgs::GrantIdentity(file) => Command::GrantIdentity(read_payload::<GrantIdentity>(file)?),
        KindArgs::ApplyCredspec(file) => Command::ApplyCredspec(read_payload::<ApplyCredspec>(file)?),
        KindArgs::RotateCredential(file) => Command::RotateCredential(read_payload::<RotateCredential>(file)?),
        KindArgs::Verify(file) => Command::Verify(read_payload::<Verify>(file)?),
        KindArgs::CheckDcConnectivity { dns_server, domain, adws_optional } => {
            Command::CheckDcConnectivity(proto::command::CheckDcConnectivity {
                dns_server: dns_server.clone(),
                domain: domain.clone(),
                adws_optional: *adws_optional,
                timeout_secs: 3,
            })
        }
    })
}

/// Runs fleetctl with the process's arguments.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match execute(cli).await {
        Ok(code) => code,
        Err(err) => {
            if err.chain().any(|cause| {
                cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("fleetctl: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Verb::Keys { action: KeysAction::New { out } } => return crate::agent_verbs::keys_new(cli.output, out),
        Verb::Keys { action: KeysAction::Public { file, nkey_account, verifier_key } } => {
            let key = bus::read_identity(file)?;
            let public_key = if *nkey_account {
                gmsa::signing::nkey_of(&key.public(), gmsa::signing::NkeyKind::Account)
            } else if let Some(name) = verifier_key {
                gmsa::merkle::verifier_key(name, &key.public())
            } else {
                key.public().to_string()
            };
            print(cli.output, &[Record::Key { public_key, key_file: file.display().to_string() }])?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let identity = match &cli.operator_key {
        Some(path) => Some(bus::read_identity(path)?),
        None => None,
    };
    let security = bus::Security {
        ca_file: cli.nats_ca.clone(),
        credentials: match &cli.operator {
            Some(name) => bus::Credentials::Signed { user: format!("operator:{name}") },
            None => bus::Credentials::None,
        },
    };
    let bus = tokio::time::timeout(
        Duration::from_secs(10),
        Bus::connect_once_secured(&security, identity, &cli.nats, "fleetctl"),
    )
    .await
    .with_context(|| format!("no NATS server answered at {} within 10s", cli.nats))??;
    match &cli.command {
        Verb::Clusters { action: ClustersAction::List { selector, out_of_sync, unreachable_after } } => {
            crate::cluster_verbs::list(&bus, cli.output, selector, *out_of_sync, *unreachable_after).await
        }
        Verb::Clusters { action: ClustersAction::Show { cluster, unreachable_after } } => {
            crate::cluster_verbs::show(&bus, cli.output, cluster, *unreachable_after).await
        }
        Verb::Run(args) => run(&bus, cli.output, args).await,
        Verb::Status { rollout: Some(rollout_id) } => rollout_status(&bus, cli.output, rollout_id).await,
        Verb::Status { rollout: None } => fleet_status(&bus, cli.output).await,
        Verb::AuditAccess(args) => crate::verbs::audit_access(&bus, cli.output, args).await,
        Verb::ValidateCredspec(args) => crate::verbs::validate_credspec(&bus, cli.output, args).await,
        Verb::Teardown(args) => crate::verbs::teardown(&bus, cli.output, args).await,
        Verb::Diagnostics(args) => crate::verbs::diagnostics(&bus, cli.output, args).await,
        Verb::Rollout { action } => crate::rollout_verbs::execute(&bus, cli.output, action).await,
        Verb::Rotate { action } => crate::rotate_verbs::execute(&bus, cli.output, action).await,
        Verb::Agents { action } => crate::agent_verbs::execute(&bus, cli.output, action).await,
        Verb::Audit { action } => crate::audit_verbs::execute(&bus, cli.output, action).await,
        Verb::Keys { .. } => Ok(ExitCode::SUCCESS),
    }
}

pub fn print(format: Format, records: &[Record]) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    output::write(&mut lock, format, records)?;
    Ok(())
}

/// What the coordinator accepted: the rollout, its targets, and what it planned around.
pub(crate) struct Submitted {
    pub rollout_id: String,
    pub dry_run: bool,
    pub targets: Vec<proto::control::Target>,
    /// Selected clusters not sent the command (their agent lacks the kind).
    pub skipped: Vec<proto::control::Skipped>,
    /// Inventory entries that could not be read.
    pub invalid: Vec<proto::control::InvalidEntry>,
}

/// Sends a command through the coordinator (refused input is an error: exit 2, nothing sent);
/// says on stderr which clusters and entries it planned around.
pub(crate) async fn submit(
    bus: &Bus,
    command: Command,
    selector: &str,
    deadline: Duration,
    dry_run: bool,
) -> anyhow::Result<Submitted> {
    // Refuse bad input here, before anything is sent, with the field's name and the agent's rules.
    let kind = command.kind();
    gmsa::validate::command(&command).context("the command is invalid; nothing was sent")?;
    let request = RunRequest {
        schema: SchemaVersion::CURRENT,
        command,
        selector: selector.to_string(),
        deadline_secs: deadline.as_secs(),
        dry_run,
        requested_by: std::env::var("USER").ok(),
    };
    let subject = subjects::control(proto::control::RUN);
    let body = serde_json::to_vec(&request)?;
    // A request over the server's limit is refused by the client library with an error that reads
    // like an absent coordinator; say what is too large instead.
    let max_payload = bus.client().server_info().max_payload;
    if max_payload > 0 && body.len() > max_payload {
        bail!(
            "the {kind} request is {} bytes, more than the NATS server accepts (max_payload {max_payload} bytes); \
             make the payload smaller; nothing was sent",
            body.len()
        );
    }
    let reply = tokio::time::timeout(
        Duration::from_secs(60),
        bus.signed_request(subject.clone(), body, Duration::from_secs(60)),
    )
    .await
    .context("the coordinator did not answer within 60s")?
    .with_context(|| format!("no coordinator answered on {subject}; is fleet-coordinator running?"))?;
    let reply: RunReply =
        serde_json::from_slice(&reply.payload).context("the coordinator's reply is not understood")?;
    match reply {
        RunReply::Refused { code, message } => bail!("the coordinator refused the command ({code}): {message}"),
        RunReply::Accepted { rollout_id, dry_run, targets, skipped, invalid } => {
            for entry in &invalid {
                eprintln!(
                    "fleetctl: inventory entry {}/{} skipped ({}): {}",
                    entry.bucket, entry.key, entry.code, entry.message
                );
            }
            for skip in &skipped {
                eprintln!("fleetctl: {} skipped ({}): {}", skip.cluster, skip.code, skip.message);
            }
            Ok(Submitted { rollout_id, dry_run, targets, skipped, invalid })
        }
        RunReply::Unknown => {
            bail!("the coordinator's reply is of a newer kind than this fleetctl knows; upgrade fleetctl")
        }
    }
}

/// The records of clusters a rollout planned around: `skipped` targets (exit 1: they did not get
/// the desired state) and unreadable inventory entries.
fn planned_around(
    rollout_id: &str,
    submitted_skipped: &[proto::control::Skipped],
    invalid: Vec<proto::control::InvalidEntry>,
) -> Vec<Record> {
    let skipped = submitted_skipped.iter().map(|skip| Record::Target {
        rollout_id: rollout_id.to_string(),
        cluster: skip.cluster.clone(),
        command_id: "-".into(),
        state: "skipped".into(),
        code: Some(skip.code.clone()),
        message: Some(skip.message.clone()),
        changed_steps: vec![],
    });
    skipped.chain(invalid.into_iter().map(Record::from)).collect()
}

async fn run(bus: &Bus, format: Format, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let command = command_of(&args.kind)?;
    let submitted = submit(bus, command, &args.selector, args.deadline, args.dry_run).await?;
    let Submitted { rollout_id, dry_run, targets, skipped, invalid } = submitted;
    let around = planned_around(&rollout_id, &skipped, invalid);
    if dry_run || args.no_wait {
        let mut records: Vec<Record> = targets
            .iter()
            .map(|target| Record::Target {
                rollout_id: rollout_id.clone(),
                cluster: target.cluster.clone(),
                command_id: target.command_id.to_string(),
                state: if dry_run { "would-send" } else { "sent" }.into(),
                code: None,
                message: None,
                changed_steps: vec![],
            })
            .collect();
        records.extend(around);
        records.push(Record::Summary {
            rollout_id: rollout_id.clone(),
            dry_run,
            targets: targets.len(),
            succeeded: 0,
            unchanged: 0,
            failed: 0,
            timed_out: 0,
            pending: targets.len(),
        });
        print(format, &records)?;
        return Ok(if skipped.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    eprintln!("fleetctl: rollout {rollout_id}: {} clusters", targets.len());
    let (rollout, states, tally) = follow_states(bus, &rollout_id).await?;
    let code = report(format, &rollout, &states, &tally, around)?;
    Ok(if skipped.is_empty() { code } else { ExitCode::from(1) })
}

/// Polls a rollout until every target is final, reporting progress on stderr.
pub(crate) async fn follow_states(
    bus: &Bus,
    rollout_id: &str,
) -> anyhow::Result<(RolloutRecord, Vec<(proto::control::Target, TargetState)>, Tally)> {
    let bucket = rollout::rollouts(bus).await?;
    let (rollout, _) = bucket.get(rollout_id).await?.with_context(|| format!("rollout {rollout_id} not found"))?;
    let interactive = std::io::stderr().is_terminal();
    let mut last_line = String::new();
    loop {
        let states = rollout::target_states(bus, &rollout, OffsetDateTime::now_utc()).await?;
        let tally = Tally::of(states.iter().map(|(_, state)| state));
        let line = format!(
            "{}/{} done: {} succeeded, {} unchanged, {} failed, {} timed out",
            tally.targets - tally.pending,
            tally.targets,
            tally.succeeded,
            tally.unchanged,
            tally.failed,
            tally.timed_out
        );
        if line != last_line {
            if interactive {
                eprint!("\rfleetctl: {line}");
            } else {
                eprintln!("fleetctl: {line}");
            }
            last_line = line;
        }
        if tally.finished() {
            if interactive {
                eprintln!();
            }
            return Ok((rollout, states, tally));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn report(
    format: Format,
    rollout: &RolloutRecord,
    states: &[(proto::control::Target, TargetState)],
    tally: &Tally,
    around: Vec<Record>,
) -> anyhow::Result<ExitCode> {
    let mut records: Vec<Record> = states
        .iter()
        .map(|(target, state)| {
            let (code, message, changed_steps) = match state {
                TargetState::Done(result) => {
                    let (code, message) = match &result.status {
                        proto::ResultStatus::Failed { code, message } => (Some(code.clone()), Some(message.clone())),
                        _ => (None, None),
                    };
                    let changed =
                        result.steps.iter().filter(|step| step.is_changed()).map(|step| step.step.clone()).collect();
                    (code, message, changed)
                }
                _ => (None, None, vec![]),
            };
            Record::Target {
                rollout_id: rollout.rollout_id.clone(),
                cluster: target.cluster.clone(),
                command_id: target.command_id.to_string(),
                state: state.label().to_string(),
                code,
                message,
                changed_steps,
            }
        })
        .collect();
    records.extend(around);
    records.push(Record::Summary {
        rollout_id: rollout.rollout_id.clone(),
        dry_run: false,
        targets: tally.targets,
        succeeded: tally.succeeded,
        unchanged: tally.unchanged,
        failed: tally.failed,
        timed_out: tally.timed_out,
        pending: tally.pending,
    });
    print(format, &records)?;
    Ok(exit_for(tally))
}

/// 0 when every target succeeded or was unchanged, or when targets are still pending (a status
/// query of a running rollout); 1 when any failed or timed out.
fn exit_for(tally: &Tally) -> ExitCode {
    if tally.failed == 0 && tally.timed_out == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

async fn rollout_status(bus: &Bus, format: Format, rollout_id: &str) -> anyhow::Result<ExitCode> {
    let bucket = rollout::rollouts(bus).await?;
    let (rollout, _) = bucket.get(rollout_id).await?.with_context(|| format!("rollout {rollout_id} not found"))?;
    let states = rollout::target_states(bus, &rollout, OffsetDateTime::now_utc()).await?;
    let tally = Tally::of(states.iter().map(|(_, state)| state));
    report(format, &rollout, &states, &tally, Vec::new())
}

async fn fleet_status(bus: &Bus, format: Format) -> anyhow::Result<ExitCode> {
    let records_bucket = record::all(bus).await?;
    let mut records = Vec::new();
    let mut any_failed = false;
    for record in records_bucket {
        let result = record.last_result;
        let (code, message) = match &result.status {
            proto::ResultStatus::Failed { code, message } => {
                any_failed = true;
                (Some(code.clone()), Some(message.clone()))
            }
            _ => (None, None),
        };
        records.push(Record::Target {
            rollout_id: result.rollout_id.clone().unwrap_or_default(),
            cluster: result.cluster.clone(),
            command_id: result.command_id.to_string(),
            state: result.status.label().to_string(),
            code,
            message,
            changed_steps: result.steps.iter().filter(|s| s.is_changed()).map(|s| s.step.clone()).collect(),
        });
    }
    print(format, &records)?;
    Ok(if any_failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5d").unwrap_err().contains("unit"));
        assert_eq!(parse_duration("720h").unwrap(), Duration::from_secs(proto::control::MAX_DEADLINE_SECS));
        for too_long in ["721h", "99999999999999999h", "99999999999999999999999s", "18446744073709551615m"] {
            assert!(parse_duration(too_long).unwrap_err().contains("at most 2592000 seconds"), "{too_long}");
        }
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
