//! Reading the audit log back (I/O): entries for `fleetctl audit log`, lines for `export`, and
//! the stored batches and checkpoints fed to the independent verifier for `verify`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bus::audit::{self as stream, Stored, Tail};
use bus::{Bus, BusError};
use gmsa::audit::query::Filter;
use gmsa::audit::verify::{Report, StoredBatch, TrustedKey, Verifier};
use gmsa::merkle::{self, Levels};
use proto::audit::{self as wire, AuditEntry, CoveredBy, ExportLine};
use proto::subjects;

/// Calls `each` with every stored entry line (index, bytes) in log order, up to the end when
/// called.
async fn each_line(bus: &Bus, mut each: impl FnMut(u64, &[u8])) -> Result<(), BusError> {
    stream::read_to_end::<BusError>(bus, subjects::AUDIT_STREAM, 1, |batch| {
        lines_of(&batch, &mut each);
        Ok(())
    })
    .await?;
    Ok(())
}

fn lines_of(batch: &Stored, each: &mut impl FnMut(u64, &[u8])) {
    let first: u64 = batch.header(wire::FIRST_HEADER).and_then(|v| v.parse().ok()).unwrap_or(0);
    if batch.payload.is_empty() {
        return;
    }
    for (offset, line) in batch.payload.split(|b| *b == b'\n').enumerate() {
        each(first.saturating_add(offset as u64), line);
    }
}

/// The entries `filter` picks, in log order (lines that do not decode are skipped and counted).
pub async fn entries(bus: &Bus, filter: &Filter) -> Result<(Vec<AuditEntry>, usize), BusError> {
    let (mut picked, mut unreadable) = (Vec::new(), 0);
    each_line(bus, |_, line| match serde_json::from_slice::<AuditEntry>(line) {
        Ok(entry) if filter.matches(&entry) => picked.push(entry),
        Ok(_) => {}
        Err(_) => unreadable += 1,
    })
    .await?;
    Ok((picked, unreadable))
}

/// Follows the log from after its current end: each new entry `filter` picks is given to `each`
/// until it returns false or the read ends.
pub async fn follow(bus: &Bus, filter: &Filter, mut each: impl FnMut(AuditEntry) -> bool) -> Result<(), BusError> {
    let start = stream::last_sequence(bus, subjects::AUDIT_STREAM).await?.saturating_add(1);
    let mut tail = Tail::open(bus, subjects::AUDIT_STREAM, None, start).await?;
    while let Some(batch) = tail.next().await {
        let mut go_on = true;
        lines_of(&batch?, &mut |_, line: &[u8]| {
            if go_on
                && let Ok(entry) = serde_json::from_slice::<AuditEntry>(line)
                && filter.matches(&entry)
            {
                go_on = each(entry);
            }
        });
        if !go_on {
            return Ok(());
        }
    }
    Ok(())
}

/// Every stored checkpoint (`FLEET_AUDIT_CHECKPOINTS#<seq>`, note).
pub async fn checkpoints(bus: &Bus) -> Result<Vec<(String, String)>, BusError> {
    Ok(stream::checkpoints(bus)
        .await?
        .into_iter()
        .map(|(sequence, note)| (format!("{}#{sequence}", subjects::AUDIT_CHECKPOINT_STREAM), note))
        .collect())
}

/// Verifies the whole log against its checkpoints and those in `kept` (source, note), trusting
/// `trusted` for seals and checkpoints.
pub async fn verify(
    bus: &Bus,
    origin: &str,
    trusted: Vec<TrustedKey>,
    kept: &[(String, String)],
) -> Result<Report, BusError> {
    let mut verifier = Verifier::new(origin, trusted);
    for (source, note) in checkpoints(bus).await?.iter().chain(kept) {
        verifier.checkpoint(source.clone(), note);
    }
    stream::read_to_end::<BusError>(bus, subjects::AUDIT_STREAM, 1, |batch| {
        verifier.batch(StoredBatch {
            sequence: batch.sequence,
            first: batch.header(wire::FIRST_HEADER),
            hashes: batch.header(wire::HASHES_HEADER),
            key: batch.header(proto::identity::KEY_HEADER),
            signature: batch.header(proto::identity::SIGNATURE_HEADER),
            body: &batch.payload,
        });
        Ok(())
    })
    .await?;
    Ok(verifier.finish())
}

/// The export lines of the entries `filter` picks: each with its index, leaf hash, and the
/// first stored checkpoint covering it with its inclusion proof.
pub async fn export(bus: &Bus, filter: &Filter) -> Result<Vec<ExportLine>, BusError> {
    let mut leaves = Vec::new();
    let mut picked = Vec::new();
    each_line(bus, |index, line| {
        leaves.push(merkle::leaf_hash(line));
        if let Ok(entry) = serde_json::from_slice::<AuditEntry>(line)
            && filter.matches(&entry)
        {
            picked.push((index, entry));
        }
    })
    .await?;
    let mut notes: Vec<(u64, String)> =
        checkpoints(bus).await?.into_iter().filter_map(|(_, note)| Some((checkpoint_size(&note)?, note))).collect();
    notes.sort_by_key(|(size, _)| *size);
    let levels = Levels::new(leaves);
    let lines = picked
        .into_iter()
        .map(|(index, entry)| {
            let hash = STANDARD.encode(levels_leaf(&levels, index));
            let checkpoint = notes.iter().find(|(size, _)| *size > index).map(|(size, note)| CoveredBy {
                size: *size,
                note: note.clone(),
                inclusion_proof: levels
                    .inclusion_proof(usize::try_from(index).unwrap_or(usize::MAX), usize::try_from(*size).unwrap_or(0))
                    .iter()
                    .map(|hash| STANDARD.encode(hash))
                    .collect(),
            });
            ExportLine { index, leaf_hash: hash, entry, checkpoint }
        })
        .collect();
    Ok(lines)
}

fn levels_leaf(levels: &Levels, index: u64) -> merkle::Hash {
    levels.leaf(usize::try_from(index).unwrap_or(usize::MAX)).unwrap_or_default()
}

/// A checkpoint note's size line (unverified: the export carries the note for the reader to check).
fn checkpoint_size(note: &str) -> Option<u64> {
    note.lines().nth(1)?.parse().ok()
}
