//! `collect-diagnostics` (`Copy-WindowsHostsLogs`, through the APIs): one tar archive per cluster
//! with the agent's view of its recent commands, the Windows pools' identities, and what the
//! `cluster` adapter collects from the Kubernetes API (credspec as applied, RBAC objects, webhook
//! configuration, Windows nodes, gMSA/CCG events). Every file passes through the redactor before
//! it is archived; the archive is attached to the command (the worker stores it on the bus).

use super::{CloudExecutor, error_chain};
use crate::executor::{ExecError, Progress};
use proto::StepOutcome;
use proto::command::CollectDiagnostics;
use proto::report::{ArchiveInfo, STEP_DIAGNOSTICS};
use serde::Serialize;
use std::collections::VecDeque;
use time::OffsetDateTime;

/// How many commands the journal keeps.
pub const JOURNAL_LEN: usize = 200;

/// The agent's view of one command it executed (no secret: steps carry redacted diffs only).
#[derive(Debug, Clone, Serialize)]
pub struct JournalEntry {
    pub command_id: String,
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    pub outcome: serde_json::Value,
}

/// The last [`JOURNAL_LEN`] commands, newest last.
#[derive(Debug, Default)]
pub struct Journal {
    entries: VecDeque<JournalEntry>,
}

impl Journal {
    pub fn record(&mut self, entry: JournalEntry) {
        if self.entries.len() == JOURNAL_LEN {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// The newest `count` entries, oldest first.
    pub fn recent(&self, count: usize) -> Vec<JournalEntry> {
        let skip = self.entries.len().saturating_sub(count);
        self.entries.iter().skip(skip).cloned().collect()
    }
}

impl CloudExecutor {
    pub(super) async fn collect_diagnostics(
        &self,
        envelope_cluster: &str,
        command_id: &str,
        payload: &CollectDiagnostics,
        progress: &Progress,
    ) -> Result<Vec<StepOutcome>, ExecError> {
        progress.report(STEP_DIAGNOSTICS, "collecting from the Kubernetes API");
        let request = cluster::DiagnosticsRequest {
            spec_name: payload.spec_name.clone(),
            owner: payload.owner.clone(),
            since: None,
        };
        let mut notes = Vec::new();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        match cluster::collect_diagnostics(&self.kube, &request).await {
            Ok(collected) => {
                files.extend(collected.files);
                notes.extend(collected.notes);
            }
            Err(err) => notes.push(format!("kubernetes: {}", error_chain(&err))),
        }
        let recent = self.journal().recent(payload.recent_results as usize);
        files.push(("agent/recent-commands.json".into(), to_json(&recent)));
        let settings = serde_json::json!({
            "cluster": envelope_cluster,
            "subscription_id": self.config.subscription_id,
            "resource_group": self.config.resource_group,
            "cluster_name": self.config.cluster_name,
            "drift_policy": format!("{:?}", self.config.drift_policy),
            "arm_endpoint": self.config.azure.arm_endpoint,
            "agent_version": env!("CARGO_PKG_VERSION"),
        });
        files.push(("agent/settings.json".into(), to_json(&settings)));
        progress.report(STEP_DIAGNOSTICS, "reading the Windows pools' identities");
        match self.azure.windows_pool_identities(&self.cluster).await {
            Ok(pools) => files.push(("azure/windows-pool-identities.json".into(), to_json(&pools))),
            Err(err) => notes.push(format!("azure: {}", error_chain(&err))),
        }
        if !notes.is_empty() {
            files.push(("NOTES.txt".into(), notes.join("\n").into_bytes()));
        }
        let secrets = self.known_secrets();
        let redactor = gmsa::redact::Redactor::new(&secrets.iter().collect::<Vec<_>>());
        let mut redactions = 0u64;
        for (_, content) in &mut files {
            let text = String::from_utf8_lossy(content).into_owned();
            let clean = redactor.redact_text(&text);
            redactions += (clean.matches(gmsa::redact::REDACTED).count() as u64)
                .saturating_sub(text.matches(gmsa::redact::REDACTED).count() as u64);
            *content = clean.into_bytes();
        }
        let names: Vec<String> = files.iter().map(|(name, _)| name.clone()).collect();
        let archive = gmsa::archive::tar_at(&files, OffsetDateTime::now_utc().unix_timestamp().max(0) as u64)
            .map_err(|err| ExecError::new("archive_failed", err.to_string()))?;
        let info = ArchiveInfo {
            subject: proto::subjects::artifact(envelope_cluster, command_id),
            bytes: archive.len() as u64,
            files: names,
            notes,
            redactions,
        };
        if !progress.attach(archive) {
            return Err(ExecError::new("no_artifact_sink", "this agent cannot store artifacts"));
        }
        let observed = serde_json::to_value(&info).unwrap_or(serde_json::Value::Null);
        Ok(vec![StepOutcome::unchanged(STEP_DIAGNOSTICS, observed)])
    }

    /// Secret values this agent holds, redacted wherever they might appear.
    fn known_secrets(&self) -> Vec<gmsa::SecretString> {
        let mut secrets = Vec::new();
        if let super::CredentialSection::ClientSecret { secret_env, .. } = &self.config.azure.credential
            && let Ok(value) = std::env::var(secret_env)
        {
            secrets.push(gmsa::SecretString::new(value));
        }
        secrets
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_else(|err| format!("cannot encode: {err}").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: usize) -> JournalEntry {
        JournalEntry {
            command_id: id.to_string(),
            kind: "verify".into(),
            finished_at: OffsetDateTime::UNIX_EPOCH,
            outcome: serde_json::Value::Null,
        }
    }

    #[test]
    fn the_journal_keeps_the_newest_entries() {
        let mut journal = Journal::default();
        for id in 0..JOURNAL_LEN + 5 {
            journal.record(entry(id));
        }
        let recent = journal.recent(3);
        let ids: Vec<&str> = recent.iter().map(|e| e.command_id.as_str()).collect();
        assert_eq!(ids, [(JOURNAL_LEN + 2).to_string(), (JOURNAL_LEN + 3).to_string(), (JOURNAL_LEN + 4).to_string()]);
        assert_eq!(journal.recent(10_000).len(), JOURNAL_LEN);
    }
}
