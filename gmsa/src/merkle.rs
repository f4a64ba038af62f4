//! RFC 6962 / RFC 9162 Merkle trees, and C2SP `tlog-checkpoint` checkpoints as Ed25519
//! `signed-note`s. This is the pure core of the central audit log (issue 20); the log writer and
//! the verifier build on it.
//!
//! - A leaf hash is `SHA-256(0x00 ‖ entry)`, an interior node `SHA-256(0x01 ‖ left ‖ right)`. The
//!   root of n leaves splits at the largest power of two below n (RFC 6962 §2.1).
//! - Inclusion and consistency proofs are made and checked with RFC 9162's algorithms (§2.1.3,
//!   §2.1.4).
//! - A checkpoint's body is `<origin>\n<size>\n<base64 root>\n`. A signature line is
//!   `— <key name> <base64(key id ‖ signature)>`, where the key id is the first 4 bytes of
//!   `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`. A note may carry several signatures, so a signing
//!   key can rotate without invalidating older checkpoints.

use crate::signing::{PublicKey, SecretKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// The hash of a leaf holding `entry`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    sha256(&[&[0x00], entry])
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The root of the tree over `leaves` (leaf hashes); the empty tree's is SHA-256 of nothing.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof of leaf `index` in the tree over `leaves` (RFC 6962 `PATH`).
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || index >= n {
        return Vec::new();
    }
    let k = split(n);
    if index < k {
        let mut proof = inclusion_proof(index, &leaves[..k]);
        proof.push(root(&leaves[k..]));
        proof
    } else {
        let mut proof = inclusion_proof(index - k, &leaves[k..]);
        proof.push(root(&leaves[..k]));
        proof
    }
}

/// Checks that `leaf` is at `index` of the tree of `size` leaves with `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], expected: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *expected
}

/// The consistency proof between the tree of the first `m` leaves and the tree over all `leaves`
/// (RFC 6962 `PROOF`).
pub fn consistency_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    fn subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if complete { Vec::new() } else { vec![root(leaves)] };
        }
        let k = split(n);
        if m <= k {
            let mut proof = subproof(m, &leaves[..k], complete);
            proof.push(root(&leaves[k..]));
            proof
        } else {
            let mut proof = subproof(m - k, &leaves[k..], false);
            proof.push(root(&leaves[..k]));
            proof
        }
    }
    if m == 0 || m >= leaves.len() {
        return Vec::new();
    }
    subproof(m, leaves, true)
}

/// Checks that the tree of `m` leaves with `first` is a prefix of the tree of `n` leaves with
/// `second` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(m: u64, n: u64, first: &Hash, second: &Hash, proof: &[Hash]) -> bool {
    if m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && first == second;
    }
    if m == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if m.is_power_of_two() {
        path.insert(0, *first);
    }
    let Some((start, rest)) = path.split_first() else { return false };
    let (mut fn_, mut sn) = (m - 1, n - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*start, *start);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *first && sr == *second && sn == 0
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest first (one per
/// set bit of the size). Appending a leaf and computing the root take O(log n), so the writer
/// keeps this, not the leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `(height, root)` of each perfect subtree, largest first.
    subtrees: Vec<(u32, Hash)>,
}

impl Frontier {
    /// The frontier of a tree of `size` leaves from its subtree roots (largest first), as
    /// [`Frontier::hashes`] gave them; `None` when they do not fit the size.
    pub fn from_parts(size: u64, hashes: &[Hash]) -> Option<Frontier> {
        let heights: Vec<u32> = (0..64).rev().filter(|bit| size & (1u64 << bit) != 0).collect();
        (heights.len() == hashes.len())
            .then(|| Frontier { size, subtrees: heights.into_iter().zip(hashes.iter().copied()).collect() })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest first.
    pub fn hashes(&self) -> Vec<Hash> {
        self.subtrees.iter().map(|(_, hash)| *hash).collect()
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = (0u32, leaf);
        while let Some(&(height, hash)) = self.subtrees.last() {
            if height != carry.0 {
                break;
            }
            self.subtrees.pop();
            carry = (height + 1, node_hash(&hash, &carry.1));
        }
        self.subtrees.push(carry);
        self.size = self.size.saturating_add(1);
    }

    /// The root of the tree so far (RFC 6962: the subtrees folded from the right).
    pub fn root(&self) -> Hash {
        let mut subtrees = self.subtrees.iter().rev();
        let Some((_, last)) = subtrees.next() else { return sha256(&[]) };
        subtrees.fold(*last, |right, (_, left)| node_hash(left, &right))
    }
}

/// Every level of a tree over many leaves, kept so inclusion proofs in any earlier tree size
/// cost O(log² n) instead of a pass over the leaves (what an export of every entry needs).
#[derive(Debug, Clone, Default)]
pub struct Levels {
    /// `levels[h][i]`: the root of leaves `i·2^h .. (i+1)·2^h`.
    levels: Vec<Vec<Hash>>,
}

impl Levels {
    pub fn new(leaves: Vec<Hash>) -> Levels {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|level| level.len() > 1) {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let above = below.chunks_exact(2).map(|pair| node_hash(&pair[0], &pair[1])).collect();
            levels.push(above);
        }
        Levels { levels }
    }

    pub fn size(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Leaf `index`'s hash.
    pub fn leaf(&self, index: usize) -> Option<Hash> {
        self.levels.first()?.get(index).copied()
    }

    /// The root of leaves `lo..hi` as RFC 6962 builds a tree over them.
    fn range_root(&self, lo: usize, hi: usize) -> Hash {
        let n = hi - lo;
        if n == 0 {
            return sha256(&[]);
        }
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            let height = n.trailing_zeros() as usize;
            return self.levels[height][lo >> height];
        }
        let k = split(n);
        node_hash(&self.range_root(lo, lo + k), &self.range_root(lo + k, hi))
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root(&self, size: usize) -> Hash {
        self.range_root(0, size.min(self.size()))
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: usize, size: usize) -> Vec<Hash> {
        let mut proof = Vec::new();
        let (mut lo, mut hi, index) = (0, size.min(self.size()), index);
        if index >= hi {
            return proof;
        }
        while hi - lo > 1 {
            let k = split(hi - lo);
            if index < lo + k {
                proof.push(self.range_root(lo + k, hi));
                hi = lo + k;
            } else {
                proof.push(self.range_root(lo, lo + k));
                lo += k;
            }
        }
        proof.reverse();
        proof
    }
}

/// The C2SP verifier key of `(name, key)`: `<name>+<hex key id>+<base64(0x01 ‖ key)>`, what an
/// auditor configures to check checkpoints.
pub fn verifier_key(name: &str, key: &PublicKey) -> String {
    let id = key_id(name, key);
    let mut raw = vec![0x01];
    raw.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", id.iter().map(|b| format!("{b:02x}")).collect::<String>(), STANDARD.encode(raw))
}

/// A checkpoint: the log's origin line, its size and its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note body (`tlog-checkpoint`).
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, STANDARD.encode(self.root))
    }
}

/// The key id a signature line starts with.
pub fn key_id(name: &str, key: &PublicKey) -> [u8; 4] {
    let hash = sha256(&[name.as_bytes(), b"\n", &[0x01], key.as_bytes()]);
    [hash[0], hash[1], hash[2], hash[3]]
}

/// A signed note of `checkpoint`, signed by each `(name, key)`.
pub fn sign_checkpoint(checkpoint: &Checkpoint, signers: &[(&str, &SecretKey)]) -> String {
    let body = checkpoint.body();
    let mut note = format!("{body}\n");
    for (name, key) in signers {
        let mut blob = key_id(name, &key.public()).to_vec();
        let signature = crate::signing::sign_raw(key, body.as_bytes());
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
        blob.extend_from_slice(&raw);
        note.push_str(&format!("— {name} {}\n", STANDARD.encode(blob)));
    }
    note
}

/// Why a note was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("the note is not a checkpoint: {0}")]
    Malformed(&'static str),
    #[error("no signature by a trusted key verifies")]
    Unverified,
}

/// Reads a signed checkpoint and checks that at least one signature is by a trusted `(name, key)`.
pub fn verify_checkpoint(note: &str, trusted: &[(&str, PublicKey)]) -> Result<Checkpoint, NoteError> {
    let (body, signatures) =
        note.split_once("\n\n").ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let body = format!("{body}\n");
    let mut lines = body.lines();
    let origin = lines.next().filter(|line| !line.is_empty()).ok_or(NoteError::Malformed("no origin"))?.to_string();
    let size = lines.next().and_then(|line| line.parse().ok()).ok_or(NoteError::Malformed("no tree size"))?;
    let root: Hash = lines
        .next()
        .and_then(|line| STANDARD.decode(line).ok())
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(NoteError::Malformed("no root hash"))?;
    for line in signatures.lines() {
        let Some(rest) = line.strip_prefix("— ") else { continue };
        let Some((name, blob)) = rest.split_once(' ') else { continue };
        let Ok(blob) = STANDARD.decode(blob) else { continue };
        if blob.len() != 68 {
            continue;
        }
        for (trusted_name, key) in trusted {
            if *trusted_name == name && key_id(name, key) == blob[..4] {
                let verified = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.as_bytes())
                    .verify(body.as_bytes(), &blob[4..])
                    .is_ok();
                if verified {
                    return Ok(Checkpoint { origin, size, root });
                }
            }
        }
    }
    Err(NoteError::Unverified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    /// The test vectors of Certificate Transparency's reference implementation (the eight leaves
    /// of `merkle_tree_test`, and the root after each): an independent check of the hashing.
    #[test]
    fn levels_give_the_same_roots_and_proofs_as_the_recursive_tree() {
        let leaves: Vec<Hash> = (0u32..37).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let levels = Levels::new(leaves.clone());
        for size in 1..=leaves.len() {
            assert_eq!(levels.root(size), root(&leaves[..size]));
            for index in 0..size {
                assert_eq!(
                    levels.inclusion_proof(index, size),
                    inclusion_proof(index, &leaves[..size]),
                    "{index}/{size}"
                );
            }
        }
    }

    #[test]
    fn a_frontier_gives_the_same_roots_as_the_whole_tree() {
        let leaves: Vec<Hash> = (0u32..70).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), root(&[]));
        for (n, leaf) in leaves.iter().enumerate() {
            frontier.push(*leaf);
            assert_eq!(frontier.root(), root(&leaves[..=n]), "size {}", n + 1);
            let again = Frontier::from_parts(frontier.size(), &frontier.hashes()).unwrap();
            assert_eq!(again, frontier);
        }
        assert!(Frontier::from_parts(3, &[leaves[0]]).is_none());
    }

    #[test]
    fn the_verifier_key_is_the_go_note_format() {
        // golang.org/x/mod/sumdb/note's example key: name PeterNeumann, id c74f20a3.
        let text = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let raw = STANDARD.decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").unwrap();
        let key = PublicKey::from_bytes(raw[1..].try_into().unwrap());
        assert_eq!(verifier_key("PeterNeumann", &key), text);
    }

    #[test]
    fn roots_match_the_certificate_transparency_test_vectors() {
        let inputs =
            ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves: Vec<Hash> = inputs.iter().map(|input| leaf_hash(&unhex(input))).collect();
        for (size, expected) in roots.iter().enumerate() {
            assert_eq!(hex(&root(&leaves[..=size])), *expected, "root of {} leaves", size + 1);
        }
        assert_eq!(hex(&root(&[])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    proptest! {
        #[test]
        fn every_inclusion_and_consistency_proof_verifies_and_a_changed_one_does_not(
            n in 1usize..70, pick in any::<usize>(), flip in any::<u8>(),
        ) {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect();
            let top = root(&leaves);
            for index in 0..n {
                let proof = inclusion_proof(index, &leaves);
                prop_assert!(verify_inclusion(&leaves[index], index as u64, n as u64, &proof, &top));
            }
            let index = pick % n;
            let mut proof = inclusion_proof(index, &leaves);
            if let Some(first) = proof.first_mut() {
                first[0] ^= flip | 1;
                prop_assert!(!verify_inclusion(&leaves[index], index as u64, n as u64, &proof, &top));
            }
            for m in 1..=n {
                let proof = consistency_proof(m, &leaves);
                prop_assert!(verify_consistency(m as u64, n as u64, &root(&leaves[..m]), &top, &proof), "m={m} n={n}");
            }
            let m = 1 + pick % n;
            if m < n {
                // The earlier tree with one entry altered is not a prefix of this one.
                let mut altered = leaves.clone();
                altered[pick % m] = leaf_hash(b"altered");
                let proof = consistency_proof(m, &leaves);
                prop_assert!(!verify_consistency(m as u64, n as u64, &root(&altered[..m]), &top, &proof));
            }
        }
    }

    #[test]
    fn checkpoints_verify_with_any_trusted_signature_and_not_when_altered() {
        let (old, new) = (SecretKey::from_seed([1; 32]), SecretKey::from_seed([2; 32]));
        let checkpoint = Checkpoint { origin: "gmsa-fleet/audit".into(), size: 7, root: leaf_hash(b"x") };
        let note = sign_checkpoint(&checkpoint, &[("audit-2026", &old), ("audit-2027", &new)]);
        assert!(note.starts_with("gmsa-fleet/audit\n7\n"));
        assert_eq!(verify_checkpoint(&note, &[("audit-2026", old.public())]), Ok(checkpoint.clone()));
        assert_eq!(verify_checkpoint(&note, &[("audit-2027", new.public())]), Ok(checkpoint.clone()));
        let stranger = SecretKey::from_seed([3; 32]).public();
        assert_eq!(verify_checkpoint(&note, &[("audit-2026", stranger)]), Err(NoteError::Unverified));
        let altered = note.replacen("\n7\n", "\n8\n", 1);
        assert_eq!(verify_checkpoint(&altered, &[("audit-2026", old.public())]), Err(NoteError::Unverified));
        assert!(matches!(verify_checkpoint("no blank line", &[]), Err(NoteError::Malformed(_))));
    }
}
