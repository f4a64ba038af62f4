//! A minimal DNS client codec (RFC 1035, RFC 2782 SRV): build a query, parse a response's SRV and
//! A records, following name compression. Pure; the network side is in [`super::probe`].

use std::net::Ipv4Addr;

/// Record types used here.
pub const TYPE_A: u16 = 1;
pub const TYPE_SRV: u16 = 33;

/// A record from a response's answer or additional section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Srv {
        name: String,
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    A {
        name: String,
        address: Ipv4Addr,
    },
    /// A record of another type, kept by name and type only.
    Other {
        name: String,
        record_type: u16,
    },
}

/// A response that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name cannot be encoded (empty label, label over 63 bytes, name over 253).
    #[error("{0:?} is not a DNS name")]
    BadName(String),
    /// The response is shorter than its own counts and lengths say.
    #[error("truncated or malformed DNS response")]
    Malformed,
    /// The response answers another query.
    #[error("DNS response id {got} does not match query id {expected}")]
    WrongId { expected: u16, got: u16 },
    /// The server answered with an error code (3: NXDOMAIN, 2: SERVFAIL, 5: REFUSED …).
    #[error("DNS server answered rcode {0}")]
    Rcode(u8),
    /// The UDP answer did not fit (TC bit): the caller must retry over TCP.
    #[error("the UDP answer was truncated (TC): retry over TCP")]
    Truncated,
}

/// A query for `name` of `record_type`, recursion desired.
pub fn query(id: u16, name: &str, record_type: u16) -> Result<Vec<u8>, DnsError> {
    let mut packet = Vec::with_capacity(32 + name.len());
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    packet.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    packet.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // AN, NS, AR
    let trimmed = name.trim_end_matches('.');
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(DnsError::BadName(name.to_string()));
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::BadName(name.to_string()));
        }
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&record_type.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes()); // IN
    Ok(packet)
}

fn u16_at(packet: &[u8], at: usize) -> Result<u16, DnsError> {
    packet.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or(DnsError::Malformed)
}

/// Reads a (possibly compressed) name at `at`; returns it and the offset after it in place.
fn read_name(packet: &[u8], mut at: usize) -> Result<(String, usize), DnsError> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let length = *packet.get(at).ok_or(DnsError::Malformed)?;
        match length {
            0 => {
                return Ok((labels.join("."), end.unwrap_or(at + 1)));
            }
            l if l & 0xC0 == 0xC0 => {
                let pointer =
                    (usize::from(l & 0x3F) << 8) | usize::from(*packet.get(at + 1).ok_or(DnsError::Malformed)?);
                end.get_or_insert(at + 2);
                at = pointer;
            }
            l if l < 64 => {
                let label = packet.get(at + 1..at + 1 + usize::from(l)).ok_or(DnsError::Malformed)?;
                labels.push(String::from_utf8_lossy(label).to_string());
                at += 1 + usize::from(l);
            }
            _ => return Err(DnsError::Malformed),
        }
    }
    // More than 128 steps: a compression loop.
    Err(DnsError::Malformed)
}

/// Parses a response to query `id`: every record of the answer and additional sections.
pub fn parse(id: u16, packet: &[u8]) -> Result<Vec<Record>, DnsError> {
    let got = u16_at(packet, 0)?;
    if got != id {
        return Err(DnsError::WrongId { expected: id, got });
    }
    let flags = u16_at(packet, 2)?;
    if flags & 0x0200 != 0 {
        return Err(DnsError::Truncated);
    }
    let rcode = (flags & 0x000F) as u8;
    if rcode != 0 {
        return Err(DnsError::Rcode(rcode));
    }
    let questions = u16_at(packet, 4)?;
    let records = u32::from(u16_at(packet, 6)?) + u32::from(u16_at(packet, 8)?) + u32::from(u16_at(packet, 10)?);
    let mut at = 12;
    for _ in 0..questions {
        let (_, after) = read_name(packet, at)?;
        at = after + 4;
    }
    let mut out = Vec::new();
    for _ in 0..records {
        let (name, after) = read_name(packet, at)?;
        let record_type = u16_at(packet, after)?;
        let length = usize::from(u16_at(packet, after + 8)?);
        let data = after + 10;
        if packet.len() < data + length {
            return Err(DnsError::Malformed);
        }
        out.push(match record_type {
            TYPE_SRV if length >= 7 => Record::Srv {
                name,
                priority: u16_at(packet, data)?,
                weight: u16_at(packet, data + 2)?,
                port: u16_at(packet, data + 4)?,
                target: read_name(packet, data + 6)?.0,
            },
            TYPE_A if length == 4 => Record::A {
                name,
                address: Ipv4Addr::new(packet[data], packet[data + 1], packet[data + 2], packet[data + 3]),
            },
            _ => Record::Other { name, record_type },
        });
        at = data + length;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `query(7, "_ldap._tcp.dc._msdcs.contoso.test", SRV)` with one SRV answer
    /// whose target is compressed against the question, and its A record in the additional section.
    fn mk_response() -> Vec<u8> {
        let mut packet = query(7, "_ldap._tcp.dc._msdcs.contoso.test", TYPE_SRV).unwrap();
        packet[2] = 0x85; // QR, AA, RD
        packet[3] = 0x80; // RA, rcode 0
        packet[7] = 1; // ANCOUNT
        packet[11] = 1; // ARCOUNT
        // Answer: name = pointer to the question (offset 12), SRV, IN, TTL, rdata.
        let mut target = vec![3];
        target.extend_from_slice(b"dc1");
        target.extend_from_slice(&[0xC0, 12 + 21]); // "contoso.test" inside the question name
        let mut answer = vec![0xC0, 12, 0, 33, 0, 1, 0, 0, 0x0e, 0x10];
        answer.extend_from_slice(&((6 + target.len()) as u16).to_be_bytes());
        answer.extend_from_slice(&[0, 0, 0, 100, 1, 133]); // priority 0, weight 100, port 389
        answer.extend_from_slice(&target);
        let target_at = packet.len() + answer.len() - target.len();
        packet.extend_from_slice(&answer);
        // Additional: A record for the target, name compressed against the SRV target.
        packet.extend_from_slice(&[0xC0, target_at as u8, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 127, 0, 0, 1]);
        packet
    }

    #[test]
    fn queries_encode_labels_and_refuse_bad_names() {
        let packet = query(1, "contoso.test.", TYPE_A).unwrap();
        assert_eq!(&packet[12..26], b"\x07contoso\x04test\x00");
        assert!(query(1, "a..b", TYPE_A).is_err());
        assert!(query(1, &"x".repeat(64), TYPE_A).is_err());
    }

    #[test]
    fn srv_and_a_records_are_read_through_compression() {
        let records = parse(7, &mk_response()).unwrap();
        assert_eq!(
            records,
            [
                Record::Srv {
                    name: "_ldap._tcp.dc._msdcs.contoso.test".into(),
                    priority: 0,
                    weight: 100,
                    port: 389,
                    target: "dc1.contoso.test".into()
                },
                Record::A { name: "dc1.contoso.test".into(), address: Ipv4Addr::LOCALHOST },
            ]
        );
    }

    #[test]
    fn errors_are_typed() {
        let mut response = mk_response();
        assert_eq!(parse(8, &response), Err(DnsError::WrongId { expected: 8, got: 7 }));
        response[3] = 0x83;
        assert_eq!(parse(7, &response), Err(DnsError::Rcode(3)));
        let mut truncated = mk_response();
        truncated[2] |= 0x02;
        assert_eq!(parse(7, &truncated), Err(DnsError::Truncated));
        let short = &mk_response()[..40];
        assert_eq!(parse(7, short), Err(DnsError::Malformed));
    }

    #[test]
    fn a_compression_loop_is_malformed_not_a_hang() {
        let mut packet = query(9, "a.b", TYPE_A).unwrap();
        packet[7] = 1;
        packet.extend_from_slice(&[0xC0, (packet.len()) as u8]);
        assert_eq!(parse(9, &packet), Err(DnsError::Malformed));
    }
}
