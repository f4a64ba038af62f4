//! Decoding `msDS-ManagedPassword`, the gMSA password blob a DC returns to an allowed principal
//! (MSDS-MANAGEDPASSWORD_BLOB, [MS-ADTS] 2.2.19) — what the CCG plugin reads on a Windows node.
//!
//! ```text
//!   offset 0   Version (u16 = 1) │ Reserved (u16 = 0) │ Length (u32, whole blob)
//!   offset 8   CurrentPasswordOffset (u16) │ PreviousPasswordOffset (u16, 0 = none)
//!              QueryPasswordIntervalOffset (u16) │ UnchangedPasswordIntervalOffset (u16)
//!   then       CurrentPassword (UTF-16LE, NUL-terminated) │ PreviousPassword │ padding
//!              QueryPasswordInterval (u64) │ UnchangedPasswordInterval (u64), 100-ns units
//! ```
//!
//! Pure and total: any byte string decodes to a [`ManagedPassword`] or a [`BlobError`], never a
//! panic (a property test feeds it garbage). The password is 256 bytes of UTF-16 that are not
//! valid text; it is kept as bytes ([`SecretBytes`]) and converted for Kerberos the way the DC
//! does ([`ManagedPassword::current_kerberos_password`]).

use std::fmt;
use std::time::Duration;

use gmsa::SecretString;

use crate::password::SecretBytes;

/// The fixed header: version, reserved, length and four offsets.
const HEADER_LEN: usize = 16;
/// The only version [MS-ADTS] defines.
const VERSION: u16 = 1;

/// Why a blob could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// Shorter than its header or than its own `Length`.
    #[error("blob of {len} bytes is truncated ({needed} needed)")]
    Truncated { len: usize, needed: usize },
    /// A version other than 1.
    #[error("unsupported blob version {0}")]
    Version(u16),
    /// `Length` is smaller than the header.
    #[error("Length field {0} is smaller than the 16-byte header")]
    Length(u32),
    /// An offset points into the header or past the end.
    #[error("{field} {offset} is outside the blob's {len} bytes")]
    Offset { field: &'static str, offset: usize, len: usize },
    /// A password has no NUL terminator before the end of the blob.
    #[error("{field} has no NUL terminator")]
    Unterminated { field: &'static str },
    /// The current password is empty.
    #[error("the current password is empty")]
    EmptyPassword,
}

/// A decoded `msDS-ManagedPassword`.
pub struct ManagedPassword {
    /// The current password, UTF-16LE without its terminator.
    current: SecretBytes,
    /// The previous password (present once the password has changed at least once).
    previous: Option<SecretBytes>,
    /// QueryPasswordInterval: how long, from the query, the current password stays current.
    pub query_password_interval: Duration,
    /// UnchangedPasswordInterval: how long, from the query, the password will certainly not
    /// change (a client may cache it this long).
    pub unchanged_password_interval: Duration,
}

impl ManagedPassword {
    /// The current password as UTF-16LE bytes (the form NTLM hashes).
    pub fn current_utf16le(&self) -> &SecretBytes {
        &self.current
    }

    /// The previous password as UTF-16LE bytes, if the blob carries one.
    pub fn previous_utf16le(&self) -> Option<&SecretBytes> {
        self.previous.as_ref()
    }

    /// The current password as the KDC derives Kerberos keys from it: UTF-16 converted to UTF-8,
    /// each unpaired surrogate replaced by U+FFFD (the same bytes `samba-tool user getpassword
    /// --attributes=virtualClearTextUTF8` returns). What `kinit` must be given.
    pub fn current_kerberos_password(&self) -> SecretString {
        let units: Vec<u16> =
            self.current.expose().chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect();
        SecretString::new(String::from_utf16_lossy(&units))
    }
}

impl fmt::Debug for ManagedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedPassword")
            .field("current", &"<redacted>")
            .field("previous", &self.previous.as_ref().map(|_| "<redacted>"))
            .field("query_password_interval", &self.query_password_interval)
            .field("unchanged_password_interval", &self.unchanged_password_interval)
            .finish()
    }
}

fn u16_at(blob: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([blob[offset], blob[offset + 1]])
}

/// Decodes an MSDS-MANAGEDPASSWORD_BLOB. Bytes after `Length` are ignored.
pub fn decode(data: &[u8]) -> Result<ManagedPassword, BlobError> {
    if data.len() < HEADER_LEN {
        return Err(BlobError::Truncated { len: data.len(), needed: HEADER_LEN });
    }
    let version = u16_at(data, 0);
    if version != VERSION {
        return Err(BlobError::Version(version));
    }
    let declared = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    let len = usize::try_from(declared).map_err(|_| BlobError::Length(declared))?;
    if len < HEADER_LEN {
        return Err(BlobError::Length(declared));
    }
    if data.len() < len {
        return Err(BlobError::Truncated { len: data.len(), needed: len });
    }
    let blob = &data[..len];
    let current = password_at(blob, "CurrentPasswordOffset", usize::from(u16_at(blob, 8)))?;
    if current.expose().is_empty() {
        return Err(BlobError::EmptyPassword);
    }
    let previous = match usize::from(u16_at(blob, 10)) {
        0 => None,
        offset => Some(password_at(blob, "PreviousPasswordOffset", offset)?),
    };
    Ok(ManagedPassword {
        current,
        previous,
        query_password_interval: interval_at(blob, "QueryPasswordIntervalOffset", usize::from(u16_at(blob, 12)))?,
        unchanged_password_interval: interval_at(
            blob,
            "UnchangedPasswordIntervalOffset",
            usize::from(u16_at(blob, 14)),
        )?,
    })
}

/// The NUL-terminated UTF-16LE string at `offset`, without the terminator.
fn password_at(blob: &[u8], field: &'static str, offset: usize) -> Result<SecretBytes, BlobError> {
    if offset < HEADER_LEN || offset >= blob.len() {
        return Err(BlobError::Offset { field, offset, len: blob.len() });
    }
    let text = &blob[offset..];
    let end = text.chunks_exact(2).position(|pair| pair == [0, 0]).ok_or(BlobError::Unterminated { field })?;
    Ok(SecretBytes::new(text[..end * 2].to_vec()))
}

/// The little-endian 64-bit count of 100-ns units at `offset`.
fn interval_at(blob: &[u8], field: &'static str, offset: usize) -> Result<Duration, BlobError> {
    if offset < HEADER_LEN || offset.checked_add(8).is_none_or(|end| end > blob.len()) {
        return Err(BlobError::Offset { field, offset, len: blob.len() });
    }
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&blob[offset..offset + 8]);
    let ticks = u64::from_le_bytes(bytes);
    Ok(Duration::from_secs(ticks / 10_000_000) + Duration::from_nanos((ticks % 10_000_000) * 100))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Encodes a blob the way Samba 4.22 lays it out: header, current, previous, then the two
    /// intervals with no alignment padding (measured: 290 bytes, intervals at 274 and 282).
    fn mk_blob(current: &[u16], previous: Option<&[u16]>, query: u64, unchanged: u64) -> Vec<u8> {
        let encode =
            |units: &[u16]| -> Vec<u8> { units.iter().chain([0u16].iter()).flat_map(|u| u.to_le_bytes()).collect() };
        let current_bytes = encode(current);
        let previous_bytes = previous.map(encode).unwrap_or_default();
        let current_offset = HEADER_LEN;
        let previous_offset = if previous.is_some() { current_offset + current_bytes.len() } else { 0 };
        let passwords_end = current_offset + current_bytes.len() + previous_bytes.len();
        let query_offset = passwords_end;
        let unchanged_offset = query_offset + 8;
        let len = unchanged_offset + 8;
        let mut blob = Vec::with_capacity(len);
        blob.extend_from_slice(&VERSION.to_le_bytes());
        blob.extend_from_slice(&0u16.to_le_bytes());
        blob.extend_from_slice(&(len as u32).to_le_bytes());
        for offset in [current_offset, previous_offset, query_offset, unchanged_offset] {
            blob.extend_from_slice(&(offset as u16).to_le_bytes());
        }
        blob.extend_from_slice(&current_bytes);
        blob.extend_from_slice(&previous_bytes);
        blob.resize(query_offset, 0);
        blob.extend_from_slice(&query.to_le_bytes());
        blob.extend_from_slice(&unchanged.to_le_bytes());
        blob
    }

    fn units(bytes: &SecretBytes) -> Vec<u16> {
        bytes.expose().chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect()
    }

    #[test]
    fn a_samba_shaped_blob_decodes() {
        // Samba 4.22: 290 bytes, current password (128 units) at 16, no previous, intervals at 274/282.
        let current: Vec<u16> = (1..=128).map(|unit| unit * 300).collect();
        let blob = mk_blob(&current, None, 25_920_000_000_000, 25_919_000_000_000);
        assert_eq!(blob.len(), 290);
        assert_eq!((u16_at(&blob, 8), u16_at(&blob, 12), u16_at(&blob, 14)), (16, 274, 282));
        let decoded = decode(&blob).unwrap();
        assert_eq!(units(decoded.current_utf16le()), current);
        assert!(decoded.previous_utf16le().is_none());
        assert_eq!(decoded.query_password_interval, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(decoded.unchanged_password_interval, Duration::from_secs(2_591_900));
        let debug = format!("{decoded:?}");
        assert!(debug.contains("<redacted>") && !debug.contains("300"), "{debug}");
    }

    #[test]
    fn the_kerberos_password_replaces_unpaired_surrogates_like_the_dc() {
        // "A", a lone high surrogate, "é", a valid pair (U+1F600), a lone low surrogate.
        let blob = mk_blob(&[0x41, 0xD800, 0xE9, 0xD83D, 0xDE00, 0xDC00], Some(&[0x42]), 0, 0);
        let decoded = decode(&blob).unwrap();
        assert_eq!(decoded.current_kerberos_password().expose(), "A\u{FFFD}é😀\u{FFFD}");
        assert_eq!(units(decoded.previous_utf16le().unwrap()), [0x42]);
    }

    #[test]
    fn malformed_blobs_are_errors() {
        let good = mk_blob(&[0x41, 0x42], None, 1, 2);
        assert!(decode(&good).is_ok());
        assert_eq!(decode(&good[..10]).unwrap_err(), BlobError::Truncated { len: 10, needed: 16 });
        assert!(matches!(decode(&good[..good.len() - 1]), Err(BlobError::Truncated { .. })));
        let mut version = good.clone();
        version[0] = 2;
        assert_eq!(decode(&version).unwrap_err(), BlobError::Version(2));
        let mut offset = good.clone();
        offset[8] = 4;
        assert!(matches!(decode(&offset), Err(BlobError::Offset { field: "CurrentPasswordOffset", .. })));
        let mut interval = good.clone();
        interval[14] = 0xff;
        assert!(matches!(decode(&interval), Err(BlobError::Offset { field: "UnchangedPasswordIntervalOffset", .. })));
        let unterminated = {
            let mut blob = good.clone();
            // Length shrinks to the header plus the password's first unit: no terminator inside.
            blob[4..8].copy_from_slice(&18u32.to_le_bytes());
            blob
        };
        assert_eq!(decode(&unterminated).unwrap_err(), BlobError::Unterminated { field: "CurrentPasswordOffset" });
        assert_eq!(decode(&mk_blob(&[], None, 0, 0)).unwrap_err(), BlobError::EmptyPassword);
        let mut small_length = good;
        small_length[4..8].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(decode(&small_length).unwrap_err(), BlobError::Length(3));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&data);
        }

        #[test]
        fn a_valid_header_with_garbage_after_it_never_panics(
            offsets in proptest::array::uniform4(any::<u16>()),
            length in 0u32..600,
            body in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut data = vec![1, 0, 0, 0];
            data.extend_from_slice(&length.to_le_bytes());
            for offset in offsets {
                data.extend_from_slice(&offset.to_le_bytes());
            }
            data.extend_from_slice(&body);
            let _ = decode(&data);
        }

        #[test]
        fn encoded_passwords_round_trip(
            current in proptest::collection::vec(1u16.., 1..200),
            previous in proptest::option::of(proptest::collection::vec(1u16.., 1..200)),
            query in any::<u64>(),
            unchanged in any::<u64>(),
        ) {
            let decoded = decode(&mk_blob(&current, previous.as_deref(), query, unchanged)).unwrap();
            prop_assert_eq!(units(decoded.current_utf16le()), current);
            prop_assert_eq!(decoded.previous_utf16le().map(units), previous);
            prop_assert_eq!(decoded.query_password_interval.as_nanos(), u128::from(query) * 100);
            prop_assert_eq!(decoded.unchanged_password_interval.as_nanos(), u128::from(unchanged) * 100);
        }
    }
}
