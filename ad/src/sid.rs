//! Security identifiers (SIDs): the binary form AD stores in `objectSid` and security descriptors
//! ([MS-DTYP] 2.4.2.2) and the `S-1-5-21-…` string form credential specs carry ([MS-DTYP] 2.4.2.1).

use std::fmt;
use std::str::FromStr;

/// At most 15 sub-authorities fit in a SID ([MS-DTYP] 2.4.2.2).
const MAX_SUB_AUTHORITIES: usize = 15;

/// Why bytes or a string are not a SID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SidError {
    /// Fewer bytes than the header and the announced sub-authorities need.
    #[error("SID is truncated: {len} bytes, need {needed}")]
    Truncated { len: usize, needed: usize },
    /// Only revision 1 exists.
    #[error("SID revision must be 1, found {0}")]
    Revision(u8),
    /// More than 15 sub-authorities.
    #[error("SID has {0} sub-authorities, at most 15 are allowed")]
    TooManySubAuthorities(usize),
    /// The string is not `S-1-<authority>-<sub>…`.
    #[error("'{0}' is not a SID string (S-1-<authority>-<sub-authority>…)")]
    Syntax(String),
}

/// A SID: revision 1, a 48-bit identifier authority and up to 15 sub-authorities.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sid {
    authority: u64,
    sub_authorities: Vec<u32>,
}

impl Sid {
    /// Builds a SID from its parts; `authority` must fit in 48 bits.
    pub fn new(authority: u64, sub_authorities: Vec<u32>) -> Result<Sid, SidError> {
        if sub_authorities.len() > MAX_SUB_AUTHORITIES {
            return Err(SidError::TooManySubAuthorities(sub_authorities.len()));
        }
        if authority >= 1 << 48 {
            return Err(SidError::Syntax(format!("authority {authority} exceeds 48 bits")));
        }
        Ok(Sid { authority, sub_authorities })
    }

    /// Decodes the binary form: revision (1 byte), sub-authority count (1), authority (6, big
    /// endian), then each sub-authority as a little-endian u32. Trailing bytes are not allowed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Sid, SidError> {
        let (sid, used) = Sid::decode_prefix(bytes)?;
        if used != bytes.len() {
            return Err(SidError::Syntax(format!("{} bytes follow the SID", bytes.len() - used)));
        }
        Ok(sid)
    }

    /// Decodes a SID at the start of `bytes` (inside an ACE) and returns it with its length.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(Sid, usize), SidError> {
        if bytes.len() < 8 {
            return Err(SidError::Truncated { len: bytes.len(), needed: 8 });
        }
        if bytes[0] != 1 {
            return Err(SidError::Revision(bytes[0]));
        }
        let count = bytes[1] as usize;
        if count > MAX_SUB_AUTHORITIES {
            return Err(SidError::TooManySubAuthorities(count));
        }
        let needed = 8 + 4 * count;
        if bytes.len() < needed {
            return Err(SidError::Truncated { len: bytes.len(), needed });
        }
        let authority = bytes[2..8].iter().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
        let sub_authorities = bytes[8..needed]
            .chunks_exact(4)
            .map(|chunk| u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect();
        Ok((Sid { authority, sub_authorities }, needed))
    }

    /// The binary form, as stored in `objectSid` and in ACEs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8 + 4 * self.sub_authorities.len());
        bytes.push(1);
        bytes.push(self.sub_authorities.len() as u8);
        bytes.extend_from_slice(&self.authority.to_be_bytes()[2..8]);
        for sub_authority in &self.sub_authorities {
            bytes.extend_from_slice(&sub_authority.to_le_bytes());
        }
        bytes
    }

    /// The last sub-authority (the RID of an account SID).
    pub fn rid(&self) -> Option<u32> {
        self.sub_authorities.last().copied()
    }

    /// The SID without its RID: for an account `S-1-5-21-a-b-c-1105`, the domain `S-1-5-21-a-b-c`.
    pub fn parent(&self) -> Option<Sid> {
        let (_, parent) = self.sub_authorities.split_last()?;
        Some(Sid { authority: self.authority, sub_authorities: parent.to_vec() })
    }

    /// True for `S-1-5-21-x-y-z`: an AD domain SID, the form `DomainJoinConfig.Sid` wants.
    pub fn is_domain_sid(&self) -> bool {
        self.authority == 5 && self.sub_authorities.len() == 4 && self.sub_authorities[0] == 21
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // [MS-DTYP] 2.4.2.1: decimal below 2^32, otherwise hexadecimal with 0x.
        if self.authority < 1 << 32 {
            write!(f, "S-1-{}", self.authority)?;
        } else {
            write!(f, "S-1-0x{:012X}", self.authority)?;
        }
        for sub_authority in &self.sub_authorities {
            write!(f, "-{sub_authority}")?;
        }
        Ok(())
    }
}

impl FromStr for Sid {
    type Err = SidError;

    fn from_str(text: &str) -> Result<Sid, SidError> {
        let syntax = || SidError::Syntax(text.to_string());
        let rest = text.strip_prefix("S-1-").or_else(|| text.strip_prefix("s-1-")).ok_or_else(syntax)?;
        let mut parts = rest.split('-');
        let authority_text = parts.next().ok_or_else(syntax)?;
        let authority = match authority_text.strip_prefix("0x").or_else(|| authority_text.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).map_err(|_| syntax())?,
            None => authority_text.parse::<u64>().map_err(|_| syntax())?,
        };
        let sub_authorities =
            parts.map(|part| part.parse::<u32>().map_err(|_| syntax())).collect::<Result<Vec<_>, _>>()?;
        Sid::new(authority, sub_authorities)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `objectSid` of a Samba domain head, as `ldapsearch` printed it (base64 `AQQAAAAAAAUVAAAAUmPy6AvQtQM4beTy`).
    const DOMAIN_SID_BYTES: [u8; 24] = [
        0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00, 0x52, 0x63, 0xf2, 0xe8, 0x0b, 0xd0,
        0xb5, 0x03, 0x38, 0x6d, 0xe4, 0xf2,
    ];

    #[test]
    fn decodes_a_domain_sid_as_samba_tool_reports_it() {
        let sid = Sid::from_bytes(&DOMAIN_SID_BYTES).unwrap();
        // samba-tool domain provision printed: DOMAIN SID: S-1-5-21-3908199250-62246923-4075056440
        assert_eq!(sid.to_string(), "S-1-5-21-3908199250-62246923-4075056440");
        assert!(sid.is_domain_sid());
        assert_eq!(sid.to_bytes(), DOMAIN_SID_BYTES);
    }

    #[test]
    fn account_sid_parent_is_the_domain_sid() {
        let account: Sid = "S-1-5-21-3908199250-62246923-4075056440-500".parse().unwrap();
        assert_eq!(account.rid(), Some(500));
        assert!(!account.is_domain_sid());
        assert_eq!(account.parent().unwrap().to_string(), "S-1-5-21-3908199250-62246923-4075056440");
    }

    #[test]
    fn well_known_and_large_authorities_round_trip() {
        for text in ["S-1-5-32-544", "S-1-1-0", "S-1-0x010000000000-7"] {
            let sid: Sid = text.parse().unwrap();
            assert_eq!(sid.to_string(), text);
            assert_eq!(Sid::from_bytes(&sid.to_bytes()).unwrap(), sid);
        }
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(Sid::from_bytes(&DOMAIN_SID_BYTES[..20]), Err(SidError::Truncated { len: 20, needed: 24 }));
        let mut revision_two = DOMAIN_SID_BYTES;
        revision_two[0] = 2;
        assert_eq!(Sid::from_bytes(&revision_two), Err(SidError::Revision(2)));
        assert!(Sid::from_bytes(&[DOMAIN_SID_BYTES.as_slice(), &[0]].concat()).is_err());
        for text in ["S-2-5", "S-1-5-x", "1-5-21", "S-1-5-21-4294967296"] {
            assert!(text.parse::<Sid>().is_err(), "{text}");
        }
    }
}
