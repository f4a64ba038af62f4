//! GUIDs as AD stores them (`objectGUID`, 16 bytes) and as credential specs write them
//! (`DomainJoinConfig.Guid`, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`).
//!
//! The byte order is mixed: the first three fields (u32, u16, u16) are little endian, the last
//! eight bytes are in order ([MS-DTYP] 2.3.4.2). Printing the bytes as plain hex gives a
//! different, wrong GUID — the classic mistake this module exists to avoid.

use std::fmt;
use std::str::FromStr;

/// Why bytes or a string are not a GUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuidError {
    /// `objectGUID` must be exactly 16 bytes.
    #[error("a GUID is 16 bytes, found {0}")]
    Length(usize),
    /// The string is not `8-4-4-4-12` hexadecimal digits.
    #[error("'{0}' is not a GUID string (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")]
    Syntax(String),
}

/// A GUID, kept in its on-the-wire (AD) byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid([u8; 16]);

impl Guid {
    /// Wraps the 16 bytes of an `objectGUID` value.
    pub fn from_bytes(bytes: &[u8]) -> Result<Guid, GuidError> {
        let array: [u8; 16] = bytes.try_into().map_err(|_| GuidError::Length(bytes.len()))?;
        Ok(Guid(array))
    }

    /// The bytes as AD stores them.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Guid {
    /// Lower-case canonical form, e.g. `17807851-86b4-451c-97f2-ef21e8149180`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        let data1 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let data2 = u16::from_le_bytes([b[4], b[5]]);
        let data3 = u16::from_le_bytes([b[6], b[7]]);
        write!(f, "{data1:08x}-{data2:04x}-{data3:04x}-{:02x}{:02x}-", b[8], b[9])?;
        b[10..].iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl FromStr for Guid {
    type Err = GuidError;

    /// Parses the canonical form (either case, optional braces) back into AD byte order.
    fn from_str(text: &str) -> Result<Guid, GuidError> {
        let syntax = || GuidError::Syntax(text.to_string());
        let inner = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(text);
        let groups: Vec<&str> = inner.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|group| group.len()).collect();
        if lengths != [8, 4, 4, 4, 12] || !inner.chars().all(|c| c == '-' || c.is_ascii_hexdigit()) {
            return Err(syntax());
        }
        let data1 = u32::from_str_radix(groups[0], 16).map_err(|_| syntax())?;
        let data2 = u16::from_str_radix(groups[1], 16).map_err(|_| syntax())?;
        let data3 = u16::from_str_radix(groups[2], 16).map_err(|_| syntax())?;
        let tail = format!("{}{}", groups[3], groups[4]);
        let mut bytes = [0u8; 16];
        bytes[0..4].copy_from_slice(&data1.to_le_bytes());
        bytes[4..6].copy_from_slice(&data2.to_le_bytes());
        bytes[6..8].copy_from_slice(&data3.to_le_bytes());
        for (index, byte) in bytes[8..].iter_mut().enumerate() {
            *byte = u8::from_str_radix(&tail[2 * index..2 * index + 2], 16).map_err(|_| syntax())?;
        }
        Ok(Guid(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Samba domain head's `objectGUID` (base64 `UXiAF7SGHEWX8u8h6BSRgA==`).
    const BYTES: [u8; 16] =
        [0x51, 0x78, 0x80, 0x17, 0xb4, 0x86, 0x1c, 0x45, 0x97, 0xf2, 0xef, 0x21, 0xe8, 0x14, 0x91, 0x80];

    #[test]
    fn first_three_fields_are_little_endian() {
        let guid = Guid::from_bytes(&BYTES).unwrap();
        assert_eq!(guid.to_string(), "17807851-86b4-451c-97f2-ef21e8149180");
    }

    #[test]
    fn parse_inverts_display() {
        let guid: Guid = "{17807851-86B4-451C-97F2-EF21E8149180}".parse().unwrap();
        assert_eq!(guid.as_bytes(), &BYTES);
        assert_eq!(guid.to_string().parse::<Guid>().unwrap(), guid);
    }

    #[test]
    fn rejects_wrong_lengths_and_syntax() {
        assert_eq!(Guid::from_bytes(&BYTES[..15]), Err(GuidError::Length(15)));
        for text in
            ["17807851-86b4-451c-97f2", "17807851-86b4-451c-97f2-ef21e814918g", "1780785186b4451c97f2ef21e8149180"]
        {
            assert!(text.parse::<Guid>().is_err(), "{text}");
        }
    }
}
