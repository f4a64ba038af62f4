//! The writer's side of the audit log: numbering entries, hashing them into the tree, sealing a
//! batch with the coordinator's key, and when to sign a checkpoint. Pure: entries and keys in,
//! the batch's body and headers out.

use crate::merkle::{self, Checkpoint, Frontier, Hash};
use crate::signing::{Purpose, SecretKey, Signature};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proto::audit::{self, AuditEntry};
use proto::subjects;
use std::collections::BTreeMap;
use std::time::Duration;

/// One batch, ready to append.
#[derive(Debug, Clone)]
pub struct SealedBatch {
    pub first: u64,
    pub count: usize,
    /// The entries' JSON, one per line.
    pub body: Vec<u8>,
    /// [`proto::audit::HASHES_HEADER`].
    pub hashes: String,
    /// [`proto::audit::FRONTIER_HEADER`]: the tree after the batch.
    pub frontier: String,
    pub signature: Signature,
}

/// Numbers `entries` from the tree's size on, adds them to `tree` and seals them with `key`.
/// On an error (an entry that does not encode) the tree is left as it was.
pub fn seal_batch(
    origin: &str,
    tree: &mut Frontier,
    entries: &mut [AuditEntry],
    key: &SecretKey,
) -> Result<SealedBatch, serde_json::Error> {
    let first = tree.size();
    let mut next = tree.clone();
    let mut body = Vec::new();
    let mut hashes = Vec::with_capacity(entries.len().saturating_mul(32));
    for (offset, entry) in entries.iter_mut().enumerate() {
        entry.index = first.saturating_add(offset as u64);
        let line = serde_json::to_vec(entry)?;
        let leaf = merkle::leaf_hash(&line);
        next.push(leaf);
        hashes.extend_from_slice(&leaf);
        if offset > 0 {
            body.push(b'\n');
        }
        body.extend_from_slice(&line);
    }
    let hashes = STANDARD.encode(hashes);
    let seal = audit::seal(origin, first, &hashes, entries.len());
    let signature = key.sign(Purpose::Audit, subjects::AUDIT_LOG, seal.as_bytes());
    *tree = next;
    Ok(SealedBatch { first, count: entries.len(), body, hashes, frontier: frontier_text(tree), signature })
}

/// The frontier as [`proto::audit::FRONTIER_HEADER`] holds it.
pub fn frontier_text(tree: &Frontier) -> String {
    tree.hashes().iter().map(|hash| STANDARD.encode(hash)).collect::<Vec<_>>().join(",")
}

/// The frontier of a tree of `size` leaves from its header text.
pub fn parse_frontier(size: u64, text: &str) -> Option<Frontier> {
    let hashes: Option<Vec<Hash>> = text
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| STANDARD.decode(part).ok().and_then(|bytes| bytes.try_into().ok()))
        .collect();
    Frontier::from_parts(size, &hashes?)
}

/// How many entries a batch's hashes header seals.
pub fn sealed_count(hashes: &str) -> Option<usize> {
    STANDARD.decode(hashes.trim()).ok().filter(|raw| raw.len() % 32 == 0).map(|raw| raw.len() / 32)
}

/// The writer's position in each source stream (`name=sequence,…`).
pub type Cursors = BTreeMap<String, u64>;

/// [`Cursors`] as [`proto::audit::CURSOR_HEADER`] holds them.
pub fn cursor_text(cursors: &Cursors) -> String {
    cursors.iter().map(|(name, sequence)| format!("{name}={sequence}")).collect::<Vec<_>>().join(",")
}

/// [`Cursors`] from their header text; pairs that do not read are dropped (the writer then
/// re-reads that source from its start, and the entries it already has are skipped by sequence).
pub fn parse_cursors(text: &str) -> Cursors {
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(name, sequence)| Some((name.to_string(), sequence.parse().ok()?)))
        .collect()
}

/// When the writer signs a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this many entries since the last checkpoint…
    pub every_entries: u64,
    /// …or this long since it, if any entry came.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy { every_entries: 1000, every: Duration::from_secs(10) }
    }
}

impl CheckpointPolicy {
    /// Whether a checkpoint is due: `size` entries now, `signed` in the last one, `since` elapsed.
    pub fn due(&self, size: u64, signed: u64, since: Duration) -> bool {
        let new = size.saturating_sub(signed);
        new > 0 && (new >= self.every_entries || since >= self.every)
    }
}

/// The signed note of the tree's current checkpoint, by the coordinator's key (and any others).
pub fn checkpoint_note(origin: &str, tree: &Frontier, signers: &[(&str, &SecretKey)]) -> String {
    merkle::sign_checkpoint(&Checkpoint { origin: origin.to_string(), size: tree.size(), root: tree.root() }, signers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::audit::AuditEvent;
    use time::OffsetDateTime;

    fn entry(n: u32) -> AuditEntry {
        AuditEntry::draft(OffsetDateTime::UNIX_EPOCH, "coordinator", AuditEvent::Unreadable { message: n.to_string() })
    }

    #[test]
    fn a_batch_numbers_its_entries_and_grows_the_tree() {
        let key = SecretKey::from_seed([7; 32]);
        let mut tree = Frontier::default();
        let mut first = vec![entry(0), entry(1), entry(2)];
        let sealed = seal_batch("o", &mut tree, &mut first, &key).unwrap();
        assert_eq!((sealed.first, sealed.count, tree.size()), (0, 3, 3));
        let mut second = vec![entry(3)];
        let sealed = seal_batch("o", &mut tree, &mut second, &key).unwrap();
        assert_eq!((sealed.first, second[0].index), (3, 3));
        let lines: Vec<&[u8]> = sealed.body.split(|b| *b == b'\n').collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(parse_frontier(4, &sealed.frontier).unwrap(), tree);
        let leaves: Vec<Hash> =
            first.iter().chain(&second).map(|entry| merkle::leaf_hash(&serde_json::to_vec(entry).unwrap())).collect();
        assert_eq!(tree.root(), merkle::root(&leaves));
    }

    #[test]
    fn cursors_and_checkpoint_policy() {
        let cursors: Cursors = [("FLEET_RESULTS".to_string(), 9), ("FLEET_COMMANDS".to_string(), 3)].into();
        assert_eq!(parse_cursors(&cursor_text(&cursors)), cursors);
        assert!(parse_cursors("garbage,x=y").is_empty());
        let policy = CheckpointPolicy { every_entries: 10, every: Duration::from_secs(5) };
        assert!(!policy.due(10, 10, Duration::from_secs(60)), "nothing new");
        assert!(policy.due(20, 10, Duration::ZERO));
        assert!(!policy.due(15, 10, Duration::from_secs(1)));
        assert!(policy.due(15, 10, Duration::from_secs(5)));
    }
}
