//! The audit writer (I/O): while this coordinator leads, it reads every source stream from
//! where the log's last batch says it stopped, turns each message into an entry
//! ([`super::sources`]), seals batches into the Merkle tree (`gmsa::audit::seal`), appends them
//! and signs a checkpoint every N entries or T seconds.
//!
//! # Guarantees
//! - **Once each:** the cursors of every source travel in the header of the batch that holds
//!   their messages, so a new leader (or a restarted one) resumes exactly after the last stored
//!   batch: nothing is recorded twice or skipped.
//! - **One tree:** the tree's right edge travels in the same header; a new writer continues it,
//!   and its appends name the stream's last sequence, so a deposed writer cannot fork the log.

use super::AuditSettings;
use super::sources::{self, Message, Source};
use bus::audit::{AuditLog, Stored, Tail};
use bus::enrollment::Enrollments;
use bus::{Bus, BusError};
use gmsa::audit::seal::{self, Cursors};
use gmsa::merkle::Frontier;
use gmsa::signing::Purpose;
use proto::audit::{self as wire, AuditEntry};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

/// Runs the writer in every term this process leads, until `shutdown`.
pub async fn run_while_leading(
    bus: Bus,
    settings: AuditSettings,
    leading: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), BusError> {
    if !settings.enabled {
        return Ok(());
    }
    crate::leader::each_term("audit writer", leading, shutdown, |leading, shutdown| {
        term(bus.clone(), settings.clone(), leading, shutdown)
    })
    .await
}

/// Where the log stands: read from its last batch.
struct Tip {
    tree: Frontier,
    cursors: Cursors,
    last_sequence: u64,
}

async fn tip(log: &AuditLog) -> Result<Tip, BusError> {
    let Some(last) = log.last().await? else {
        return Ok(Tip { tree: Frontier::default(), cursors: Cursors::new(), last_sequence: 0 });
    };
    let first: u64 = last.header(wire::FIRST_HEADER).and_then(|v| v.parse().ok()).unwrap_or(0);
    let count = last.header(wire::HASHES_HEADER).and_then(seal::sealed_count).unwrap_or(0);
    let count = u64::try_from(count).unwrap_or(0);
    let size = first.saturating_add(count);
    let tree = last
        .header(wire::FRONTIER_HEADER)
        .and_then(|text| seal::parse_frontier(size, text))
        .ok_or(BusError::LogConflict { subject: proto::subjects::AUDIT_LOG.into(), expected_last: last.sequence })?;
    let cursors = last.header(wire::CURSOR_HEADER).map(seal::parse_cursors).unwrap_or_default();
    Ok(Tip { tree, cursors, last_sequence: last.sequence })
}

async fn term(
    bus: Bus,
    settings: AuditSettings,
    mut leading: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), BusError> {
    let Some(key) = bus.identity() else {
        warn!("the coordinator has no identity key: the audit log is not written");
        let _ = shutdown.changed().await;
        return Ok(());
    };
    let log = AuditLog::open(&bus).await?;
    let Tip { mut tree, mut cursors, mut last_sequence } = tip(&log).await?;
    info!(size = tree.size(), "audit writer continues the log");
    let enrollments = Enrollments::follow(&bus).await?;
    let (sender, mut received) = mpsc::channel::<(Source, Stored)>(8192);
    let mut readers = Vec::new();
    for source in Source::ALL {
        let start = cursors.get(source.stream()).copied().unwrap_or(0).saturating_add(1);
        let mut tail = Tail::open(&bus, source.stream(), None, start).await?;
        let sender = sender.clone();
        readers.push(tokio::spawn(async move {
            while let Some(message) = tail.next().await {
                match message {
                    Ok(message) => {
                        if sender.send((source, message)).await.is_err() {
                            return;
                        }
                    }
                    Err(err) => warn!(stream = source.stream(), error = %bus::chain(&err), "audit source read failed"),
                }
            }
        }));
    }
    drop(sender);
    let _readers = AbortOnDrop(readers);
    let mut signed = 0u64;
    let mut signed_at = Instant::now();
    // A new term signs the tree it found at once, so each writer's first checkpoint shows the
    // log it continued.
    let mut due_now = tree.size() > 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        let mut batch: Vec<(Source, Stored)> = Vec::new();
        tokio::select! {
            message = received.recv() => match message {
                Some(message) => batch.push(message),
                None => return Ok(()),
            },
            _ = ticker.tick() => {}
            _ = leading.changed() => if !*leading.borrow() { return Ok(()) },
            _ = shutdown.changed() => return Ok(()),
        }
        if !batch.is_empty() {
            let until = Instant::now() + settings.linger;
            while batch.len() < settings.batch_max {
                match tokio::time::timeout_at(until, received.recv()).await {
                    Ok(Some(message)) => batch.push(message),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let mut entries = Vec::with_capacity(batch.len());
        // Sources are read in parallel; within a batch, entries go in the server's time order.
        batch.sort_by_key(|(_, stored)| (stored.published, stored.sequence));
        for (source, stored) in &batch {
            let known = cursors.get(source.stream()).copied().unwrap_or(0);
            if stored.sequence <= known {
                continue;
            }
            cursors.insert(source.stream().to_string(), stored.sequence);
            let signed_by = signer(&enrollments, *source, stored).await;
            let message = Message {
                source: *source,
                sequence: stored.sequence,
                subject: &stored.subject,
                payload: &stored.payload,
                published: stored.published,
                signed_by,
            };
            if let Some(entry) = sources::entry_of(&message) {
                entries.push(entry);
            }
        }
        if !entries.is_empty() {
            last_sequence = append(&log, &settings, &mut tree, &mut entries, &cursors, last_sequence, key).await?;
        }
        if due_now || settings.checkpoints.due(tree.size(), signed, signed_at.elapsed()) {
            let note = seal::checkpoint_note(&settings.origin, &tree, &[(settings.key_name.as_str(), key)]);
            log.publish_checkpoint(&note, tree.size()).await?;
            signed = tree.size();
            signed_at = Instant::now();
            due_now = false;
        }
    }
}

async fn append(
    log: &AuditLog,
    settings: &AuditSettings,
    tree: &mut Frontier,
    entries: &mut [AuditEntry],
    cursors: &Cursors,
    last_sequence: u64,
    key: &gmsa::signing::SecretKey,
) -> Result<u64, BusError> {
    let sealed = seal::seal_batch(&settings.origin, tree, entries, key)
        .map_err(|source| BusError::Encode { subject: proto::subjects::AUDIT_LOG.into(), source })?;
    log.append(&sealed, &seal::cursor_text(cursors), last_sequence).await
}

/// Who signed a source message: for a result, its cluster's enrolled key where the signature
/// verifies (what makes the recorded report the cluster's); for a command, the key it names (the
/// coordinator's own; its agent verifies it — the writer does not spend a verification on it).
async fn signer(enrollments: &Enrollments, source: Source, stored: &Stored) -> Option<String> {
    match source {
        Source::Commands => bus::headers::signer_of(stored.headers.as_ref()).map(|key| key.to_string()),
        Source::Results => {
            let (cluster, _) = proto::subjects::parse_result(&stored.subject)?;
            let trusted = enrollments.keys_of(cluster).await.ok()?;
            bus::headers::verify(stored.headers.as_ref(), &trusted, Purpose::Result, &stored.subject, &stored.payload)
                .ok()
                .map(|key| key.to_string())
        }
        _ => None,
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}
