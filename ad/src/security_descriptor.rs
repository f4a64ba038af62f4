//! The security descriptor in a gMSA's `msDS-GroupMSAMembership`: who may retrieve its password.
//!
//! The attribute holds a binary self-relative `SECURITY_DESCRIPTOR` ([MS-DTYP] 2.4.6) whose DACL
//! lists one `ACCESS_ALLOWED_ACE` per principal. Windows' `New-ADServiceAccount
//! -PrincipalsAllowedToRetrieveManagedPassword` writes `O:BAD:(A;;0xf01ff;;;<sid>)…`; [`build`]
//! writes the same shape. [`parse`] keeps every part it does not manage (owner, group, other
//! ACEs), so a membership change re-encodes only the ACEs it adds or removes.
//!
//! ```text
//!   header (20 bytes) │ owner SID │ group SID │ DACL: ACL header (8) │ ACE │ ACE │ …
//!   ACE = type(1) flags(1) size(2) mask(4) SID
//! ```

use std::collections::BTreeSet;

use crate::sid::{Sid, SidError};

/// `SE_SELF_RELATIVE | SE_DACL_PRESENT`.
const CONTROL_SELF_RELATIVE_DACL: u16 = 0x8004;
const SE_DACL_PRESENT: u16 = 0x0004;
const SE_SELF_RELATIVE: u16 = 0x8000;
const ACL_REVISION: u8 = 2;
const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;
/// The mask Windows grants in gMSA membership descriptors (0x000F01FF, full control).
pub const GMSA_RETRIEVE_MASK: u32 = 0x000F_01FF;

/// Why bytes are not a usable security descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdError {
    /// A length or offset points outside the value.
    #[error("security descriptor is truncated or has an offset out of range ({0})")]
    Truncated(&'static str),
    /// Not the revision-1, self-relative form AD stores.
    #[error("security descriptor is not revision 1 self-relative (revision {revision}, control {control:#06x})")]
    NotSelfRelative { revision: u8, control: u16 },
    /// An embedded SID is malformed.
    #[error("security descriptor has a malformed SID: {0}")]
    Sid(#[from] SidError),
}

/// One ACE of the DACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ace {
    /// `ACCESS_ALLOWED_ACE` for a principal.
    Allowed { flags: u8, mask: u32, sid: Sid },
    /// Any other ACE type, kept byte for byte (type, flags and the body after the size field).
    Other { ace_type: u8, flags: u8, body: Vec<u8> },
}

/// A decoded self-relative security descriptor (the SACL is not used in this attribute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityDescriptor {
    /// Owner; Windows writes BUILTIN\Administrators (`S-1-5-32-544`).
    pub owner: Option<Sid>,
    /// Primary group; usually absent.
    pub group: Option<Sid>,
    /// The DACL's ACEs in order.
    pub dacl: Vec<Ace>,
}

impl SecurityDescriptor {
    /// The principals with an `ACCESS_ALLOWED` ACE: who may retrieve the gMSA's password.
    pub fn allowed_principals(&self) -> BTreeSet<Sid> {
        self.dacl
            .iter()
            .filter_map(|ace| match ace {
                Ace::Allowed { sid, .. } => Some(sid.clone()),
                Ace::Other { .. } => None,
            })
            .collect()
    }

    /// Adds an allow ACE for each of `add` not yet allowed, removes the allow ACEs of `remove`,
    /// and keeps everything else in place.
    pub fn with_membership_change(&self, add: &BTreeSet<Sid>, remove: &BTreeSet<Sid>) -> SecurityDescriptor {
        let mut dacl: Vec<Ace> = self
            .dacl
            .iter()
            .filter(|ace| !matches!(ace, Ace::Allowed { sid, .. } if remove.contains(sid)))
            .cloned()
            .collect();
        let present = self.allowed_principals();
        for sid in add.iter().filter(|sid| !present.contains(*sid)) {
            dacl.push(Ace::Allowed { flags: 0, mask: GMSA_RETRIEVE_MASK, sid: sid.clone() });
        }
        SecurityDescriptor { owner: self.owner.clone(), group: self.group.clone(), dacl }
    }

    /// Encodes as a self-relative descriptor: header, owner, group, then the DACL.
    pub fn to_bytes(&self) -> Vec<u8> {
        let owner = self.owner.as_ref().map(Sid::to_bytes).unwrap_or_default();
        let group = self.group.as_ref().map(Sid::to_bytes).unwrap_or_default();
        let mut aces = Vec::new();
        for ace in &self.dacl {
            let (ace_type, flags, body) = match ace {
                Ace::Allowed { flags, mask, sid } => {
                    (ACCESS_ALLOWED_ACE_TYPE, *flags, [mask.to_le_bytes().to_vec(), sid.to_bytes()].concat())
                }
                Ace::Other { ace_type, flags, body } => (*ace_type, *flags, body.clone()),
            };
            aces.push(ace_type);
            aces.push(flags);
            aces.extend_from_slice(&((4 + body.len()) as u16).to_le_bytes());
            aces.extend_from_slice(&body);
        }
        let owner_offset = 20u32;
        let group_offset = owner_offset + owner.len() as u32;
        let dacl_offset = group_offset + group.len() as u32;
        let mut bytes = vec![1, 0];
        bytes.extend_from_slice(&CONTROL_SELF_RELATIVE_DACL.to_le_bytes());
        bytes.extend_from_slice(&(if owner.is_empty() { 0 } else { owner_offset }).to_le_bytes());
        bytes.extend_from_slice(&(if group.is_empty() { 0 } else { group_offset }).to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes()); // no SACL
        bytes.extend_from_slice(&dacl_offset.to_le_bytes());
        bytes.extend_from_slice(&owner);
        bytes.extend_from_slice(&group);
        bytes.extend_from_slice(&[ACL_REVISION, 0]);
        bytes.extend_from_slice(&((8 + aces.len()) as u16).to_le_bytes());
        bytes.extend_from_slice(&(self.dacl.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&aces);
        bytes
    }
}

/// The descriptor Windows writes for a new gMSA: owner BUILTIN\Administrators and one allow ACE
/// per principal, in the given order.
pub fn build(principals: &[Sid]) -> SecurityDescriptor {
    let administrators = Sid::new(5, vec![32, 544]).expect("BUILTIN\\Administrators is a valid SID");
    let dacl =
        principals.iter().map(|sid| Ace::Allowed { flags: 0, mask: GMSA_RETRIEVE_MASK, sid: sid.clone() }).collect();
    SecurityDescriptor { owner: Some(administrators), group: None, dacl }
}

/// Decodes a self-relative descriptor. A descriptor without a DACL has no ACEs.
pub fn parse(bytes: &[u8]) -> Result<SecurityDescriptor, SdError> {
    if bytes.len() < 20 {
        return Err(SdError::Truncated("header"));
    }
    let control = u16::from_le_bytes([bytes[2], bytes[3]]);
    if bytes[0] != 1 || control & SE_SELF_RELATIVE == 0 {
        return Err(SdError::NotSelfRelative { revision: bytes[0], control });
    }
    let offset_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
    let sid_at = |offset: usize| -> Result<Option<Sid>, SdError> {
        if offset == 0 {
            return Ok(None);
        }
        let slice = bytes.get(offset..).ok_or(SdError::Truncated("SID offset"))?;
        Ok(Some(Sid::decode_prefix(slice)?.0))
    };
    let owner = sid_at(offset_at(4))?;
    let group = sid_at(offset_at(8))?;
    let dacl_offset = offset_at(16);
    let dacl =
        if control & SE_DACL_PRESENT == 0 || dacl_offset == 0 { Vec::new() } else { parse_acl(bytes, dacl_offset)? };
    Ok(SecurityDescriptor { owner, group, dacl })
}

fn parse_acl(bytes: &[u8], offset: usize) -> Result<Vec<Ace>, SdError> {
    let header = bytes.get(offset..offset + 8).ok_or(SdError::Truncated("ACL header"))?;
    let acl_size = u16::from_le_bytes([header[2], header[3]]) as usize;
    let ace_count = u16::from_le_bytes([header[4], header[5]]) as usize;
    let acl = bytes.get(offset..offset + acl_size).ok_or(SdError::Truncated("ACL size"))?;
    let mut position = 8;
    let mut aces = Vec::with_capacity(ace_count);
    for _ in 0..ace_count {
        let ace_header = acl.get(position..position + 4).ok_or(SdError::Truncated("ACE header"))?;
        let (ace_type, flags) = (ace_header[0], ace_header[1]);
        let ace_size = u16::from_le_bytes([ace_header[2], ace_header[3]]) as usize;
        if ace_size < 4 {
            return Err(SdError::Truncated("ACE size"));
        }
        let body = acl.get(position + 4..position + ace_size).ok_or(SdError::Truncated("ACE body"))?;
        aces.push(if ace_type == ACCESS_ALLOWED_ACE_TYPE && body.len() >= 12 {
            let mask = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
            Ace::Allowed { flags, mask, sid: Sid::decode_prefix(&body[4..])?.0 }
        } else {
            Ace::Other { ace_type, flags, body: body.to_vec() }
        });
        position += ace_size;
    }
    Ok(aces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_sid(rid: u32) -> Sid {
        format!("S-1-5-21-3908199250-62246923-4075056440-{rid}").parse().unwrap()
    }

    #[test]
    fn build_matches_the_windows_layout_byte_for_byte() {
        let bytes = build(&[mk_sid(1105)]).to_bytes();
        let expected: Vec<u8> = [
            // Revision 1, control 0x8004, owner at 20, no group, no SACL, DACL at 36.
            vec![1, 0, 0x04, 0x80, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 36, 0, 0, 0],
            // Owner S-1-5-32-544.
            vec![1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0],
            // ACL revision 2, size 8 + 36, one ACE.
            vec![2, 0, 44, 0, 1, 0, 0, 0],
            // ACCESS_ALLOWED, no flags, size 36, mask 0x000F01FF, then the SID.
            vec![0, 0, 36, 0, 0xff, 0x01, 0x0f, 0x00],
            mk_sid(1105).to_bytes(),
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn parse_inverts_build() {
        let descriptor = build(&[mk_sid(1105), mk_sid(1106)]);
        let parsed = parse(&descriptor.to_bytes()).unwrap();
        assert_eq!(parsed, descriptor);
        assert_eq!(parsed.allowed_principals(), [mk_sid(1105), mk_sid(1106)].into_iter().collect());
    }

    #[test]
    fn membership_change_touches_only_the_named_principals() {
        let deny =
            Ace::Other { ace_type: 1, flags: 0, body: [0x10u32.to_le_bytes().to_vec(), mk_sid(7).to_bytes()].concat() };
        let mut descriptor = build(&[mk_sid(1105), mk_sid(1106)]);
        descriptor.dacl.insert(0, deny.clone());
        let add = [mk_sid(1107)].into_iter().collect();
        let remove = [mk_sid(1105)].into_iter().collect();
        let changed = parse(&descriptor.with_membership_change(&add, &remove).to_bytes()).unwrap();
        assert_eq!(changed.dacl[0], deny, "an ACE this crate does not manage survives");
        assert_eq!(changed.owner, descriptor.owner);
        assert_eq!(changed.allowed_principals(), [mk_sid(1106), mk_sid(1107)].into_iter().collect());
    }

    #[test]
    fn rejects_truncated_and_absolute_descriptors() {
        let bytes = build(&[mk_sid(1105)]).to_bytes();
        assert!(matches!(parse(&bytes[..30]), Err(SdError::Sid(_))), "owner SID cut short");
        assert!(matches!(parse(&bytes[..bytes.len() - 1]), Err(SdError::Truncated(_))));
        let mut absolute = bytes.clone();
        absolute[3] = 0x00;
        assert!(matches!(parse(&absolute), Err(SdError::NotSelfRelative { .. })));
    }
}
