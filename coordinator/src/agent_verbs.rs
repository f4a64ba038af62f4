//! `fleetctl agents …` and `fleetctl keys new`: agents' identities and signing keys.
//!
//! A secret key is generated here, on the operator's machine, and written to a file created for
//! this purpose (mode 0600, never overwritten); only the public half is sent to the coordinator.

use crate::fleetctl::print;
use crate::output::{Format, Record};
use anyhow::{Context, bail};
use bus::Bus;
use clap::Subcommand;
use gmsa::signing::SecretKey;
use proto::identity::{AgentsReply, AgentsRequest, Enrollment};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand)]
pub enum AgentsAction {
    /// Give CLUSTER's agent an identity: a new key pair, the secret half written to --key-out
    /// (the agent's `identity.key_file`), the public half recorded by the coordinator. From then
    /// on only results signed with this key count as CLUSTER's. Enrolling again re-keys the agent.
    ///
    /// Example: fleetctl agents enroll aks-prod-1 --key-out aks-prod-1.key
    #[command(verbatim_doc_comment)]
    Enroll {
        cluster: String,
        /// Where to write the agent's secret key (created with mode 0600; an existing file is not overwritten).
        #[arg(long, required_unless_present = "public_key", conflicts_with = "public_key")]
        key_out: Option<PathBuf>,
        /// Enroll a key the agent generated itself (`fleetctl keys new` on the agent's side).
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Revoke CLUSTER's identity: the coordinator refuses its results from the next one on.
    Revoke { cluster: String },
    /// Every enrollment.
    List,
}

/// Runs an `agents` verb.
pub async fn execute(bus: &Bus, format: Format, action: &AgentsAction) -> anyhow::Result<ExitCode> {
    let (request, key_file) = match action {
        AgentsAction::Enroll { cluster, key_out, public_key } => {
            if !proto::subjects::is_valid_token(cluster) {
                bail!("CLUSTER: {cluster:?} must be 1-63 letters, digits, '-' or '_'; nothing was sent");
            }
            let public_key = match (key_out, public_key) {
                (_, Some(public_key)) => {
                    gmsa::signing::PublicKey::parse(public_key).context("--public-key; nothing was sent")?.to_string()
                }
                (Some(path), None) => write_new_key(path)?,
                (None, None) => bail!("--key-out or --public-key is required"),
            };
            (AgentsRequest::Enroll { cluster: cluster.clone(), public_key }, key_out.as_ref())
        }
        AgentsAction::Revoke { cluster } => (AgentsRequest::Revoke { cluster: cluster.clone() }, None),
        AgentsAction::List => (AgentsRequest::List, None),
    };
    let reply = request_agents(bus, &request).await?;
    let shown = key_file.map(|path| path.display().to_string());
    let records: Vec<Record> = match reply {
        AgentsReply::Refused { code, message } => bail!("the coordinator refused ({code}): {message}"),
        AgentsReply::Enrolled { enrollment } | AgentsReply::Revoked { enrollment } => vec![record(enrollment, shown)],
        AgentsReply::List { enrollments } => enrollments.into_iter().map(|e| record(e, None)).collect(),
    };
    print(format, &records)?;
    Ok(ExitCode::SUCCESS)
}

/// `fleetctl keys new --out FILE`: a new key (the coordinator's command key, an operator's key,
/// an agent's own); prints the public key to configure where it is trusted.
pub fn keys_new(format: Format, out: &Path) -> anyhow::Result<ExitCode> {
    let public_key = write_new_key(out)?;
    print(format, &[Record::Key { public_key, key_file: out.display().to_string() }])?;
    Ok(ExitCode::SUCCESS)
}

/// Generates a key, writes its secret half to a new file (0600), returns the public half.
pub fn write_new_key(path: &Path) -> anyhow::Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let key = SecretKey::generate().map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).with_context(|| {
            format!("{}: cannot create the key file (an existing file is never overwritten)", path.display())
        })?;
    writeln!(file, "{}", key.to_text()).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(key.public().to_string())
}

fn record(enrollment: Enrollment, key_file: Option<String>) -> Record {
    let format =
        |at: time::OffsetDateTime| at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    Record::Enrollment {
        cluster: enrollment.cluster,
        public_key: enrollment.public_key,
        enrolled_at: format(enrollment.enrolled_at),
        enrolled_by: enrollment.enrolled_by,
        revoked_at: enrollment.revoked_at.map(format),
        key_file,
    }
}

async fn request_agents(bus: &Bus, request: &AgentsRequest) -> anyhow::Result<AgentsReply> {
    let subject = proto::subjects::control(crate::agents::VERB);
    let body = serde_json::to_vec(request)?;
    let reply = bus
        .signed_request(subject.clone(), body, Duration::from_secs(30))
        .await
        .with_context(|| format!("no coordinator answered on {subject}; is fleet-coordinator running?"))?;
    serde_json::from_slice(&reply.payload).context("the coordinator's reply is not understood")
}
