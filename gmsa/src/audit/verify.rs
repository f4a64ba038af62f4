//! The auditor's check of the audit log, written apart from the writer: it shares only the
//! stored format (`proto::audit`) with [`super::seal`] and [`crate::merkle`] — its hashing, its
//! tree, its reading of keys and signed notes are its own, and its tests check them against
//! published test vectors (Certificate Transparency's tree roots, Go's `sumdb/note` example).
//!
//! Fed the stored batches in stream order and the checkpoints (the log's own and any an auditor
//! kept), it checks:
//! - every batch's seal: signed by a trusted key, starting where the previous batch ended;
//! - every entry: its bytes hash to the leaf hash sealed for its index (an altered entry does
//!   not; a removed, inserted or swapped one sits where another was sealed);
//! - every checkpoint: signed by a trusted key, and its root is the root of the log's first
//!   `size` entries — which is what proves each entry's inclusion and each checkpoint's
//!   consistency with the earlier ones; a log shorter than a checkpoint was truncated.
//!
//! Each failure names the first index it concerns. Pure: bytes in, a [`Report`] out.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::digest::{Context, SHA256};
use ring::signature::{ED25519, UnparsedPublicKey};
use std::collections::HashMap;

type Digest = [u8; 32];

fn digest(parts: &[&[u8]]) -> Digest {
    let mut context = Context::new(&SHA256);
    parts.iter().for_each(|part| context.update(part));
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

fn leaf(bytes: &[u8]) -> Digest {
    digest(&[b"\x00", bytes])
}

fn interior(left: &Digest, right: &Digest) -> Digest {
    digest(&[b"\x01", left, right])
}

/// A binary counter of perfect subtrees: `levels[h]` holds the root of a subtree of 2^h leaves
/// when bit h of the size is set.
#[derive(Debug, Default, Clone)]
struct Accumulator {
    levels: Vec<Option<Digest>>,
    size: u64,
}

impl Accumulator {
    fn add(&mut self, mut hash: Digest) {
        let mut height = 0;
        loop {
            if height == self.levels.len() {
                self.levels.push(None);
            }
            match self.levels[height].take() {
                Some(left) => {
                    hash = interior(&left, &hash);
                    height += 1;
                }
                None => {
                    self.levels[height] = Some(hash);
                    break;
                }
            }
        }
        self.size += 1;
    }

    /// RFC 6962's root: the smallest subtrees are joined first, each as the right child.
    fn root(&self) -> Digest {
        let mut acc: Option<Digest> = None;
        for level in self.levels.iter().flatten() {
            acc = Some(match acc {
                None => *level,
                Some(right) => interior(level, &right),
            });
        }
        acc.unwrap_or_else(|| digest(&[]))
    }
}

/// A key the auditor trusts, read from a C2SP verifier key `<name>+<hex id>+<base64(0x01 ‖ key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub name: String,
    id: [u8; 4],
    key: [u8; 32],
}

/// A verifier key that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a verifier key is <name>+<8 hex digits>+<base64 of 0x01 and 32 key bytes>: {0}")]
pub struct KeyFormatError(pub &'static str);

impl TrustedKey {
    pub fn parse(text: &str) -> Result<TrustedKey, KeyFormatError> {
        let mut parts = text.trim().splitn(3, '+');
        let name = parts.next().filter(|name| !name.is_empty()).ok_or(KeyFormatError("no name"))?;
        let id_hex = parts.next().filter(|id| id.len() == 8).ok_or(KeyFormatError("no 8-digit key id"))?;
        let id_value = u32::from_str_radix(id_hex, 16).map_err(|_| KeyFormatError("the key id is not hex"))?;
        let raw =
            parts.next().and_then(|key| STANDARD.decode(key).ok()).ok_or(KeyFormatError("the key is not base64"))?;
        let key: [u8; 32] = match raw.split_first() {
            Some((1, key)) => key.try_into().map_err(|_| KeyFormatError("the key is not 32 bytes"))?,
            _ => return Err(KeyFormatError("only Ed25519 keys (algorithm byte 1) are read")),
        };
        let computed = digest(&[name.as_bytes(), b"\n", b"\x01", &key]);
        if computed[..4] != id_value.to_be_bytes() {
            return Err(KeyFormatError("the key id does not match the name and key"));
        }
        Ok(TrustedKey { name: name.to_string(), id: id_value.to_be_bytes(), key })
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.key).verify(message, signature).is_ok()
    }
}

/// A checkpoint read from a note that a trusted key signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
    /// The trusted keys whose signature verified.
    pub signed_by: Vec<String>,
}

/// Why a note was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteProblem {
    #[error("not a signed checkpoint: {0}")]
    Malformed(&'static str),
    #[error("no signature by a trusted key verifies")]
    NotTrusted,
}

/// Opens a signed-note checkpoint: at least one signature by a `trusted` key must verify.
pub fn open_checkpoint(note: &str, trusted: &[TrustedKey]) -> Result<OpenedCheckpoint, NoteProblem> {
    let split = note.rfind("\n\n").ok_or(NoteProblem::Malformed("no blank line before the signatures"))?;
    let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
    let mut lines = text.split('\n');
    let origin = lines.next().filter(|line| !line.is_empty()).ok_or(NoteProblem::Malformed("no origin line"))?;
    let size = lines.next().and_then(|line| line.parse::<u64>().ok()).ok_or(NoteProblem::Malformed("no size"))?;
    let root = lines
        .next()
        .and_then(|line| STANDARD.decode(line).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or(NoteProblem::Malformed("no root hash"))?;
    let mut signed_by = Vec::new();
    for line in signatures.split('\n').filter(|line| !line.is_empty()) {
        let Some((name, blob)) = line.strip_prefix("\u{2014} ").and_then(|rest| rest.split_once(' ')) else {
            return Err(NoteProblem::Malformed("a signature line is not `— <name> <base64>`"));
        };
        let Ok(blob) = STANDARD.decode(blob) else { continue };
        if blob.len() != 68 {
            continue;
        }
        let verified = trusted
            .iter()
            .any(|key| key.name == name && key.id == blob[..4] && key.verifies(text.as_bytes(), &blob[4..]));
        if verified && !signed_by.iter().any(|signer| signer == name) {
            signed_by.push(name.to_string());
        }
    }
    if signed_by.is_empty() {
        return Err(NoteProblem::NotTrusted);
    }
    Ok(OpenedCheckpoint { origin: origin.to_string(), size, root, signed_by })
}

/// One stored batch, as read from the stream: its headers (absent ones `None`) and body.
#[derive(Debug, Clone, Copy)]
pub struct StoredBatch<'a> {
    pub sequence: u64,
    pub first: Option<&'a str>,
    pub hashes: Option<&'a str>,
    pub key: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// What failed, naming the first index concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A batch's seal is missing, malformed or not signed by a trusted key.
    Seal { index: u64, sequence: u64, why: String },
    /// Entries `index..next` are not in the log: the next batch starts at `next`.
    Missing { index: u64, next: u64 },
    /// A batch starts at `first`, before `index`, where the log had reached: entries inserted
    /// or reordered.
    Overlap { index: u64, first: u64 },
    /// The entry at `index` does not hash to the leaf sealed for it, nor to any other sealed in
    /// its batch: altered, or not written by the coordinator.
    Altered { index: u64 },
    /// The entry at `index` is the one sealed for `sealed_as`: entries removed, inserted or
    /// swapped.
    Moved { index: u64, sealed_as: u64 },
    /// A batch holds fewer entries than its seal (from `index` on) or more (at `index`).
    Count { index: u64, sealed: usize, stored: usize },
    /// The log ends at `index`, below a checkpoint of `size`: the tail was truncated.
    Truncated { index: u64, size: u64 },
    /// A checkpoint is malformed, for another log, or signed by no trusted key.
    Checkpoint { source: String, why: String },
    /// A validly signed checkpoint's root is not the log's root at its size; `earlier` is the
    /// largest earlier checkpoint that does match (it and this one cannot both be right).
    Inconsistent { source: String, size: u64, earlier: Option<u64> },
}

impl Failure {
    /// A stable code per rule.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Seal { .. } => "bad_seal",
            Failure::Missing { .. } => "missing",
            Failure::Overlap { .. } => "overlap",
            Failure::Altered { .. } => "altered",
            Failure::Moved { .. } => "moved",
            Failure::Count { .. } => "count",
            Failure::Truncated { .. } => "truncated",
            Failure::Checkpoint { .. } => "bad_checkpoint",
            Failure::Inconsistent { .. } => "inconsistent",
        }
    }

    /// The first index this failure concerns, where it names one.
    pub fn index(&self) -> Option<u64> {
        match self {
            Failure::Seal { index, .. }
            | Failure::Missing { index, .. }
            | Failure::Overlap { index, .. }
            | Failure::Altered { index }
            | Failure::Moved { index, .. }
            | Failure::Count { index, .. }
            | Failure::Truncated { index, .. } => Some(*index),
            Failure::Checkpoint { .. } => None,
            Failure::Inconsistent { size, .. } => Some(size.saturating_sub(1)),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Seal { index, sequence, why } => {
                write!(
                    f,
                    "index {index}: the batch at stream sequence {sequence} is not sealed by a trusted key: {why}"
                )
            }
            Failure::Missing { index, next } => {
                write!(f, "index {index}: entries {index}..{next} are missing (the next batch starts at {next})")
            }
            Failure::Overlap { index, first } => {
                write!(f, "index {index}: a batch starts at {first}, before {index}: entries inserted or reordered")
            }
            Failure::Altered { index } => {
                write!(f, "index {index}: the entry does not match its sealed hash (altered)")
            }
            Failure::Moved { index, sealed_as } => write!(
                f,
                "index {index}: the entry here is the one sealed as {sealed_as} (entries removed, inserted or swapped)"
            ),
            Failure::Count { index, sealed, stored } => {
                write!(f, "index {index}: the batch was sealed with {sealed} entries and holds {stored}")
            }
            Failure::Truncated { index, size } => {
                write!(f, "index {index}: the log ends here, below a signed checkpoint of size {size} (truncated)")
            }
            Failure::Checkpoint { source, why } => write!(f, "checkpoint {source}: {why}"),
            Failure::Inconsistent { source, size, earlier } => match earlier {
                Some(earlier) => write!(
                    f,
                    "checkpoint {source} (size {size}) is inconsistent with the log and with the earlier checkpoint of size {earlier}"
                ),
                None => write!(f, "checkpoint {source} (size {size}): its root is not the log's root at that size"),
            },
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries read.
    pub size: u64,
    pub batches: u64,
    /// Checkpoints whose root was compared with the log's.
    pub checkpoints_checked: usize,
    /// The largest checkpoint that matched.
    pub verified_size: u64,
    /// Every failure, in the order found (at most [`MAX_FAILURES`]).
    pub failures: Vec<Failure>,
}

impl Report {
    pub fn first_failure(&self) -> Option<&Failure> {
        self.failures.first()
    }
}

/// How many failures a report lists.
pub const MAX_FAILURES: usize = 100;

struct Pending {
    source: String,
    checkpoint: OpenedCheckpoint,
}

/// Checks a log fed batch by batch.
pub struct Verifier {
    origin: String,
    trusted: Vec<TrustedKey>,
    tree: Accumulator,
    /// Checkpoints to compare, largest size first (popped as the log reaches them).
    pending: Vec<Pending>,
    /// Sizes that matched, as they matched.
    matched: Vec<u64>,
    checked: usize,
    batches: u64,
    failures: Vec<Failure>,
}

impl Verifier {
    /// A verifier of the log named `origin`, trusting `trusted` for seals and checkpoints.
    pub fn new(origin: &str, trusted: Vec<TrustedKey>) -> Verifier {
        Verifier {
            origin: origin.to_string(),
            trusted,
            tree: Accumulator::default(),
            pending: Vec::new(),
            matched: Vec::new(),
            checked: 0,
            batches: 0,
            failures: Vec::new(),
        }
    }

    fn fail(&mut self, failure: Failure) {
        if self.failures.len() < MAX_FAILURES {
            self.failures.push(failure);
        }
    }

    /// Adds a checkpoint (from the log's checkpoint stream, or one an auditor kept), named by
    /// `source` in failures. Add every checkpoint before the first batch.
    pub fn checkpoint(&mut self, source: impl Into<String>, note: &str) {
        let source = source.into();
        match open_checkpoint(note, &self.trusted) {
            Err(problem) => self.fail(Failure::Checkpoint { source, why: problem.to_string() }),
            Ok(checkpoint) if checkpoint.origin != self.origin => self.fail(Failure::Checkpoint {
                source,
                why: format!("it is for the log {:?}, not {:?}", checkpoint.origin, self.origin),
            }),
            Ok(checkpoint) => {
                self.pending.push(Pending { source, checkpoint });
                self.pending.sort_by_key(|pending| std::cmp::Reverse(pending.checkpoint.size));
                self.compare_due();
            }
        }
    }

    fn compare_due(&mut self) {
        while self.pending.last().is_some_and(|pending| pending.checkpoint.size == self.tree.size) {
            let Some(Pending { source, checkpoint }) = self.pending.pop() else { break };
            self.checked += 1;
            if checkpoint.root == self.tree.root() {
                self.matched.push(checkpoint.size);
            } else {
                let earlier = self.matched.iter().copied().filter(|size| *size < checkpoint.size).max();
                self.fail(Failure::Inconsistent { source, size: checkpoint.size, earlier });
            }
        }
    }

    fn seal_problem(&self, batch: &StoredBatch<'_>, first: u64, hashes: &str, count: usize) -> Option<String> {
        let (Some(key), Some(signature)) = (batch.key, batch.signature) else {
            return Some("no signature".into());
        };
        let Some(key) = key.strip_prefix("ed25519:").and_then(|key| URL_SAFE_NO_PAD.decode(key).ok()) else {
            return Some("the key header does not read".into());
        };
        let Some(trusted) = self.trusted.iter().find(|trusted| trusted.key[..] == key[..]) else {
            return Some("signed by a key this auditor does not trust".into());
        };
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature.trim()) else {
            return Some("the signature does not read".into());
        };
        let seal = proto::audit::seal(&self.origin, first, hashes, count);
        let mut signed = b"gmsa-fleet/v1\0audit\0".to_vec();
        signed.extend_from_slice(proto::subjects::AUDIT_LOG.as_bytes());
        signed.push(0);
        signed.extend_from_slice(seal.as_bytes());
        (!trusted.verifies(&signed, &signature)).then(|| "the signature does not verify".into())
    }

    /// Checks the next stored batch.
    pub fn batch(&mut self, batch: StoredBatch<'_>) {
        self.batches += 1;
        let expected = self.tree.size;
        let lines: Vec<&[u8]> =
            if batch.body.is_empty() { Vec::new() } else { batch.body.split(|b| *b == b'\n').collect() };
        let first = batch.first.and_then(|first| first.trim().parse::<u64>().ok());
        let sealed: Option<Vec<Digest>> = batch.hashes.and_then(|text| {
            let raw = STANDARD.decode(text.trim()).ok()?;
            (raw.len() % 32 == 0).then(|| raw.chunks(32).filter_map(|chunk| chunk.try_into().ok()).collect())
        });
        let leaves: Vec<Digest> = lines.iter().map(|line| leaf(line)).collect();
        match (first, sealed) {
            (Some(first), Some(sealed)) => {
                let problem =
                    batch.hashes.and_then(|hashes| self.seal_problem(&batch, first, hashes.trim(), sealed.len()));
                if let Some(why) = problem {
                    self.fail(Failure::Seal { index: expected, sequence: batch.sequence, why });
                } else if first > expected {
                    self.fail(Failure::Missing { index: expected, next: first });
                } else if first < expected {
                    self.fail(Failure::Overlap { index: expected, first });
                } else {
                    self.check_entries(expected, &sealed, &leaves);
                }
            }
            _ => self.fail(Failure::Seal {
                index: expected,
                sequence: batch.sequence,
                why: "the batch's first-index or hashes header is missing or does not read".into(),
            }),
        }
        for hash in leaves {
            self.tree.add(hash);
            self.compare_due();
        }
    }

    fn check_entries(&mut self, first: u64, sealed: &[Digest], stored: &[Digest]) {
        let position: HashMap<&Digest, usize> = sealed.iter().enumerate().map(|(at, hash)| (hash, at)).collect();
        for (at, hash) in stored.iter().enumerate() {
            let index = first.saturating_add(at as u64);
            if sealed.get(at) == Some(hash) {
                continue;
            }
            match position.get(hash) {
                Some(sealed_at) => {
                    self.fail(Failure::Moved { index, sealed_as: first.saturating_add(*sealed_at as u64) });
                }
                None if at >= sealed.len() => {
                    self.fail(Failure::Count { index, sealed: sealed.len(), stored: stored.len() });
                }
                None => self.fail(Failure::Altered { index }),
            }
            return;
        }
        if stored.len() < sealed.len() {
            let index = first.saturating_add(stored.len() as u64);
            self.fail(Failure::Count { index, sealed: sealed.len(), stored: stored.len() });
        }
    }

    /// The report, once every batch was fed: checkpoints beyond the log's end mean truncation.
    pub fn finish(mut self) -> Report {
        let size = self.tree.size;
        let beyond: Vec<u64> = self.pending.iter().map(|pending| pending.checkpoint.size).collect();
        if let Some(largest) = beyond.iter().max() {
            self.fail(Failure::Truncated { index: size, size: *largest });
        }
        Report {
            size,
            batches: self.batches,
            checkpoints_checked: self.checked,
            verified_size: self.matched.iter().copied().max().unwrap_or(0),
            failures: self.failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Certificate Transparency's reference leaves and the roots of their first 1..8 (from
    /// `merkle_tree_test.go` / RFC 6962 test data).
    const LEAVES: [&str; 8] =
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn the_tree_gives_certificate_transparency_s_roots() {
        let mut tree = Accumulator::default();
        assert_eq!(tree.root().to_vec(), hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        for (leaf_data, root) in LEAVES.iter().zip(ROOTS) {
            tree.add(leaf(&hex(leaf_data)));
            assert_eq!(tree.root().to_vec(), hex(root), "size {}", tree.size);
        }
    }

    #[test]
    fn notes_open_as_go_s_sumdb_note_example() {
        // golang.org/x/mod/sumdb/note's documented example note and verifier key.
        let key = TrustedKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").unwrap();
        let text =
            "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let signature = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";
        let blob = STANDARD.decode(signature).unwrap();
        assert_eq!(blob[..4], key.id);
        assert!(key.verifies(text.as_bytes(), &blob[4..]));
        assert!(!key.verifies(text.replace("cryptography", "cryptographY").as_bytes(), &blob[4..]));
        // Not a checkpoint body, so it is malformed as one; the signature itself verified above.
        let note = format!("{text}\n\u{2014} PeterNeumann {signature}\n");
        assert_eq!(open_checkpoint(&note, std::slice::from_ref(&key)), Err(NoteProblem::Malformed("no size")));
        assert!(TrustedKey::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
    }

    #[test]
    fn the_tree_agrees_with_the_writer_s_on_every_size() {
        // Two implementations, each checked against the CT vectors, agree beyond them.
        let mut frontier = crate::merkle::Frontier::default();
        let mut tree = Accumulator::default();
        for n in 0u32..300 {
            let bytes = n.to_le_bytes();
            frontier.push(crate::merkle::leaf_hash(&bytes));
            tree.add(leaf(&bytes));
            assert_eq!(frontier.root(), tree.root(), "size {}", n + 1);
        }
    }

    mod tampering {
        use super::super::*;
        use crate::audit::seal::{checkpoint_note, seal_batch};
        use crate::merkle::{Frontier, verifier_key};
        use crate::signing::SecretKey;
        use proto::audit::{AuditEntry, AuditEvent};
        use time::OffsetDateTime;

        struct Stored {
            first: String,
            hashes: String,
            key: String,
            signature: String,
            body: Vec<u8>,
        }

        /// A log of 3 batches of 4 entries, and checkpoints after each batch.
        fn log(key: &SecretKey) -> (Vec<Stored>, Vec<String>) {
            let mut tree = Frontier::default();
            let (mut batches, mut notes) = (Vec::new(), Vec::new());
            for b in 0..3 {
                let mut entries: Vec<AuditEntry> = (0..4)
                    .map(|i| {
                        AuditEntry::draft(
                            OffsetDateTime::UNIX_EPOCH,
                            "coordinator",
                            AuditEvent::Unreadable { message: format!("{b}-{i}") },
                        )
                    })
                    .collect();
                let sealed = seal_batch("o", &mut tree, &mut entries, key).unwrap();
                batches.push(Stored {
                    first: sealed.first.to_string(),
                    hashes: sealed.hashes,
                    key: sealed.signature.key.to_string(),
                    signature: sealed.signature.value,
                    body: sealed.body,
                });
                notes.push(checkpoint_note("o", &tree, &[("fleet", key)]));
            }
            (batches, notes)
        }

        fn check(key: &SecretKey, batches: &[Stored], notes: &[String]) -> Report {
            let trusted = TrustedKey::parse(&verifier_key("fleet", &key.public())).unwrap();
            let mut verifier = Verifier::new("o", vec![trusted]);
            for (at, note) in notes.iter().enumerate() {
                verifier.checkpoint(format!("#{at}"), note);
            }
            for (at, batch) in batches.iter().enumerate() {
                verifier.batch(StoredBatch {
                    sequence: at as u64 + 1,
                    first: Some(&batch.first),
                    hashes: Some(&batch.hashes),
                    key: Some(&batch.key),
                    signature: Some(&batch.signature),
                    body: &batch.body,
                });
            }
            verifier.finish()
        }

        fn lines(batch: &Stored) -> Vec<Vec<u8>> {
            batch.body.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
        }

        fn join(lines: &[Vec<u8>]) -> Vec<u8> {
            lines.join(&b'\n')
        }

        fn first(report: &Report) -> (&'static str, Option<u64>) {
            let failure = report.first_failure().expect("a failure");
            (failure.code(), failure.index())
        }

        #[test]
        fn an_intact_log_verifies_to_its_last_checkpoint() {
            let key = SecretKey::from_seed([3; 32]);
            let (batches, notes) = log(&key);
            let report = check(&key, &batches, &notes);
            assert_eq!(report.failures, vec![]);
            assert_eq!((report.size, report.batches, report.checkpoints_checked, report.verified_size), (12, 3, 3, 12));
        }

        #[test]
        fn each_kind_of_tampering_names_its_first_index() {
            let key = SecretKey::from_seed([3; 32]);
            let (pristine, notes) = log(&key);
            let tamper = |change: &dyn Fn(&mut Vec<Stored>)| {
                let (mut batches, _) = log(&key);
                change(&mut batches);
                check(&key, &batches, &notes)
            };
            // Entry 5 altered.
            let report = tamper(&|b| {
                let mut l = lines(&b[1]);
                l[1] = String::from_utf8(l[1].clone()).unwrap().replace("1-1", "1-X").into_bytes();
                b[1].body = join(&l);
            });
            assert_eq!(first(&report), ("altered", Some(5)));
            // Entry 6 deleted.
            let report = tamper(&|b| {
                let mut l = lines(&b[1]);
                l.remove(2);
                b[1].body = join(&l);
            });
            assert_eq!(first(&report), ("moved", Some(6)));
            // Entries 8 and 9 swapped.
            let report = tamper(&|b| {
                let mut l = lines(&b[2]);
                l.swap(0, 1);
                b[2].body = join(&l);
            });
            assert_eq!(first(&report), ("moved", Some(8)));
            // An entry inserted at 4.
            let report = tamper(&|b| {
                let mut l = lines(&b[1]);
                l.insert(0, l[0].clone().into_iter().rev().collect());
                b[1].body = join(&l);
            });
            assert_eq!(first(&report), ("altered", Some(4)));
            // A whole batch removed: 4..8 missing.
            let report = tamper(&|b| {
                b.remove(1);
            });
            assert_eq!(first(&report), ("missing", Some(4)));
            // The tail truncated below the last checkpoint.
            let report = tamper(&|b| {
                b.pop();
            });
            assert_eq!(first(&report), ("truncated", Some(8)));
            // A batch re-sealed by another key.
            let report = tamper(&|b| {
                let mallory = SecretKey::from_seed([9; 32]);
                let seal = proto::audit::seal("o", 4, &b[1].hashes, 4);
                let forged = mallory.sign(crate::signing::Purpose::Audit, proto::subjects::AUDIT_LOG, seal.as_bytes());
                b[1].key = forged.key.to_string();
                b[1].signature = forged.value;
            });
            assert_eq!(first(&report), ("bad_seal", Some(4)));
            assert_eq!(check(&key, &pristine, &notes).failures, vec![]);
        }

        #[test]
        fn forged_and_inconsistent_checkpoints_are_named() {
            let key = SecretKey::from_seed([3; 32]);
            let (batches, mut notes) = log(&key);
            // A forged signature: the note's last character changed.
            let mut forged = notes[0].clone();
            let at = forged.len() - 3;
            forged.replace_range(at..at + 1, if &forged[at..at + 1] == "A" { "B" } else { "A" });
            let report = check(&key, &batches, &[forged]);
            assert_eq!(report.first_failure().map(Failure::code), Some("bad_checkpoint"));
            // Signed by the right key, but of another tree of size 8 (a split view).
            let mut other = Frontier::default();
            for n in 0u32..8 {
                other.push(crate::merkle::leaf_hash(&n.to_be_bytes()));
            }
            notes.push(checkpoint_note("o", &other, &[("fleet", &key)]));
            let report = check(&key, &batches, &notes);
            assert_eq!(
                report.first_failure(),
                Some(&Failure::Inconsistent { source: "#3".into(), size: 8, earlier: Some(4) })
            );
            // A key that rotated: a note signed by the old and new keys still opens with either.
            let next = SecretKey::from_seed([4; 32]);
            let mut tree = Frontier::default();
            tree.push(crate::merkle::leaf_hash(b"x"));
            let note = checkpoint_note("o", &tree, &[("fleet", &key), ("fleet-next", &next)]);
            let only_next = TrustedKey::parse(&verifier_key("fleet-next", &next.public())).unwrap();
            assert_eq!(open_checkpoint(&note, &[only_next]).unwrap().signed_by, vec!["fleet-next".to_string()]);
        }
    }
}
