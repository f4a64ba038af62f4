//! A minimal POSIX ustar writer and reader: the diagnostics bundle of one cluster (its files
//! already redacted by [`crate::redact`]) becomes one `.tar` that `tar -xf` opens anywhere.
//!
//! ```text
//!   [(path, bytes)] ──► tar / tar_at ──► header + data (padded to 512) per file, two zero blocks
//!   .tar bytes      ──► untar        ──► [(path, bytes)] (regular files; directories skipped)
//! ```
//!
//! Only what the bundle needs: regular files, mode 0644, uid/gid 0, a fixed modification time
//! (so the same files make the same bytes), paths up to ustar's limits — 100 bytes, or up to 255
//! split at a `/` into a 155-byte prefix and a 100-byte name. No PAX or GNU extensions: a path
//! or a size beyond ustar is an error naming it, never a silently truncated entry.

use std::collections::BTreeSet;

/// ustar's block size; headers and data are padded to it.
const BLOCK: usize = 512;
const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;
/// 11 octal digits in the size field.
const MAX_SIZE: u64 = 0o777_7777_7777;
/// 11 octal digits in the mtime field.
const MAX_MTIME: u64 = 0o777_7777_7777;
const LIMITS: &str =
    "ustar holds at most 100 bytes, or 255 split at a '/' into a prefix of at most 155 and a name of at most 100";

/// Why an archive could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// A path is empty, absolute, has an empty, `.` or `..` component, or contains NUL.
    #[error("archive path '{path}': {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// A path is longer than a ustar header can hold.
    #[error("archive path '{path}' is {len} bytes: {LIMITS}")]
    PathTooLong { path: String, len: usize },
    /// Two files have the same path.
    #[error("archive path '{path}' appears twice")]
    DuplicatePath { path: String },
    /// A file is larger than ustar's size field holds (8 GiB).
    #[error("archive file '{path}' has {size} bytes; ustar holds at most {MAX_SIZE}")]
    FileTooLarge { path: String, size: u64 },
    /// The modification time does not fit ustar's field.
    #[error("modification time {mtime} does not fit ustar's 11 octal digits")]
    MtimeTooLarge { mtime: u64 },
    /// The archive ends inside a header or a file's data, or has no end-of-archive blocks.
    #[error("archive truncated at byte {offset}")]
    Truncated { offset: usize },
    /// A header's checksum does not match its bytes.
    #[error("header at byte {offset}: checksum {stored} does not match the computed {computed}")]
    BadChecksum { offset: usize, stored: u64, computed: u64 },
    /// A header lacks the `ustar` magic (a pre-POSIX tar, or not a tar at all).
    #[error("header at byte {offset} is not a ustar header")]
    NotUstar { offset: usize },
    /// A numeric header field is not octal (e.g. GNU base-256 for large files).
    #[error("header at byte {offset}: field {field} is not an octal number")]
    BadNumber { offset: usize, field: &'static str },
    /// An entry that is neither a regular file nor a directory (link, device, PAX header…).
    #[error("archive entry '{path}' has type '{typeflag}'; only regular files are read")]
    UnsupportedEntry { path: String, typeflag: char },
    /// A path in the archive is not UTF-8.
    #[error("header at byte {offset}: path is not UTF-8")]
    PathEncoding { offset: usize },
}

/// [`tar_at`] with modification time 0 (1970-01-01): the same files always make the same bytes.
pub fn tar(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, ArchiveError> {
    tar_at(files, 0)
}

/// A ustar archive of `files`, in the given order, each a regular file with mode 0644, owner 0:0
/// and modification time `mtime` (seconds since the epoch).
///
/// Guarantees: every path is checked before any byte is written (relative, no `.`/`..`/empty
/// components, no duplicates, within ustar's limits); the archive ends with two zero blocks.
pub fn tar_at(files: &[(String, Vec<u8>)], mtime: u64) -> Result<Vec<u8>, ArchiveError> {
    if mtime > MAX_MTIME {
        return Err(ArchiveError::MtimeTooLarge { mtime });
    }
    let mut seen = BTreeSet::new();
    let mut headers = Vec::with_capacity(files.len());
    for (path, data) in files {
        check_path(path)?;
        if !seen.insert(path.as_str()) {
            return Err(ArchiveError::DuplicatePath { path: path.clone() });
        }
        let size = data.len() as u64;
        if size > MAX_SIZE {
            return Err(ArchiveError::FileTooLarge { path: path.clone(), size });
        }
        headers.push(header(path, size, mtime)?);
    }
    let data_len: usize = files.iter().map(|(_, data)| padded(data.len())).sum();
    let mut archive = Vec::with_capacity(files.len() * BLOCK + data_len + 2 * BLOCK);
    for (header, (_, data)) in headers.iter().zip(files) {
        archive.extend_from_slice(header);
        archive.extend_from_slice(data);
        archive.resize(archive.len() + padded(data.len()) - data.len(), 0);
    }
    archive.resize(archive.len() + 2 * BLOCK, 0);
    Ok(archive)
}

/// The regular files of a ustar archive, in archive order; directory entries are skipped.
/// Reading stops at the first zero block (the end-of-archive marker).
pub fn untar(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    let mut files = Vec::new();
    let mut offset = 0;
    loop {
        let block = bytes.get(offset..offset + BLOCK).ok_or(ArchiveError::Truncated { offset })?;
        if block.iter().all(|byte| *byte == 0) {
            return Ok(files);
        }
        if &block[257..262] != b"ustar" {
            return Err(ArchiveError::NotUstar { offset });
        }
        let stored = octal(&block[148..156]).ok_or(ArchiveError::BadNumber { offset, field: "chksum" })?;
        let computed = checksum(block);
        if stored != computed {
            return Err(ArchiveError::BadChecksum { offset, stored, computed });
        }
        let size = octal(&block[124..136]).ok_or(ArchiveError::BadNumber { offset, field: "size" })?;
        let size = usize::try_from(size).map_err(|_| ArchiveError::Truncated { offset })?;
        let path = entry_path(block).ok_or(ArchiveError::PathEncoding { offset })?;
        let data_start = offset + BLOCK;
        let data = bytes.get(data_start..data_start + size).ok_or(ArchiveError::Truncated { offset: data_start })?;
        match block[156] {
            b'0' | 0 => files.push((path, data.to_vec())),
            b'5' => {}
            typeflag => return Err(ArchiveError::UnsupportedEntry { path, typeflag: char::from(typeflag) }),
        }
        offset = data_start + padded(size);
    }
}

fn padded(len: usize) -> usize {
    len.div_ceil(BLOCK) * BLOCK
}

fn check_path(path: &str) -> Result<(), ArchiveError> {
    let invalid = |reason| Err(ArchiveError::InvalidPath { path: path.to_string(), reason });
    if path.is_empty() {
        return invalid("is empty");
    }
    if path.starts_with('/') {
        return invalid("is absolute; archive paths are relative");
    }
    if path.contains('\0') {
        return invalid("contains NUL");
    }
    if path.split('/').any(|component| component.is_empty() || component == "." || component == "..") {
        return invalid("has an empty, '.' or '..' component");
    }
    Ok(())
}

/// Splits `path` into ustar's (prefix, name): the whole path as name when it fits, else at the
/// last `/` that leaves a name of at most 100 and a prefix of at most 155 bytes.
fn split_path(path: &str) -> Result<(&str, &str), ArchiveError> {
    if path.len() <= NAME_LEN {
        return Ok(("", path));
    }
    let too_long = || ArchiveError::PathTooLong { path: path.to_string(), len: path.len() };
    path.match_indices('/')
        .map(|(index, _)| (&path[..index], &path[index + 1..]))
        .find(|(prefix, name)| prefix.len() <= PREFIX_LEN && name.len() <= NAME_LEN && !name.is_empty())
        .ok_or_else(too_long)
}

fn header(path: &str, size: u64, mtime: u64) -> Result<[u8; BLOCK], ArchiveError> {
    let (prefix, name) = split_path(path)?;
    let mut block = [0u8; BLOCK];
    block[..name.len()].copy_from_slice(name.as_bytes());
    write_octal(&mut block[100..108], 0o644);
    write_octal(&mut block[108..116], 0);
    write_octal(&mut block[116..124], 0);
    write_octal(&mut block[124..136], size);
    write_octal(&mut block[136..148], mtime);
    block[156] = b'0';
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    block[265..269].copy_from_slice(b"root");
    block[297..301].copy_from_slice(b"root");
    block[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    // The checksum field: six octal digits, NUL, space (as POSIX tar writes it).
    let sum = checksum(&block);
    block[148..154].copy_from_slice(format!("{sum:06o}").as_bytes());
    block[154] = 0;
    block[155] = b' ';
    Ok(block)
}

/// Zero-padded octal digits filling all but the field's last byte, which stays NUL.
fn write_octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:0width$o}", width = field.len() - 1);
    field[..digits.len()].copy_from_slice(digits.as_bytes());
}

/// Sum of the header's bytes with the checksum field counted as eight spaces.
fn checksum(block: &[u8]) -> u64 {
    block.iter().enumerate().map(|(index, byte)| if (148..156).contains(&index) { 32 } else { u64::from(*byte) }).sum()
}

/// An octal field: optional leading spaces, digits, then NUL or space padding. `None` when it
/// holds anything else (GNU base-256 for large numbers starts with 0x80).
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_start_matches(' ').trim_end_matches(['\0', ' ']);
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

fn entry_path(block: &[u8]) -> Option<String> {
    let until_nul = |field: &[u8]| -> Option<String> {
        let end = field.iter().position(|byte| *byte == 0).unwrap_or(field.len());
        String::from_utf8(field[..end].to_vec()).ok()
    };
    let name = until_nul(&block[..NAME_LEN])?;
    let prefix = until_nul(&block[345..345 + PREFIX_LEN])?;
    let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
    Some(path.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests;
