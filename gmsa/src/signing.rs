//! Ed25519 signatures on what crosses the bus: the coordinator signs every command, each agent
//! signs its results, each operator signs its control requests. A signature covers a purpose tag,
//! the subject and the exact payload bytes, so a signed command moved to another cluster's subject,
//! or a result presented as a request, does not verify.
//!
//! Keys are written as text: a public key `ed25519:<base64url>` (32 bytes), a secret key
//! `ed25519-seed:<base64url>` (the 32-byte seed). [`verify`] checks a signature against a set of
//! trusted keys and says which rule failed ([`SignatureError`]); the bus adapter carries key and
//! signature in headers, never in the body.
//!
//! Signing and verifying are pure; [`SecretKey::generate`] is the one function here that reads the
//! operating system's random source.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use std::fmt;

const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "ed25519-seed:";

/// What a signature is for: part of the signed bytes, so one kind cannot stand in for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Command,
    Result,
    Request,
    /// A NATS connection's password (`gmsa::natsauth`): the user name as subject, the time as payload.
    Connect,
    /// A batch of the audit log (`proto::audit::seal`).
    Audit,
}

impl Purpose {
    fn tag(self) -> &'static [u8] {
        match self {
            Purpose::Command => b"command",
            Purpose::Result => b"result",
            Purpose::Request => b"request",
            Purpose::Connect => b"connect",
            Purpose::Audit => b"audit",
        }
    }
}

/// The kinds of NATS nkey this product writes (the first character of the encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NkeyKind {
    /// `A…`: the auth callout's issuer.
    Account,
    /// `U…`: a user.
    User,
}

impl NkeyKind {
    fn prefix(self) -> u8 {
        match self {
            NkeyKind::Account => 0,
            NkeyKind::User => 20 << 3,
        }
    }
}

/// CRC-16/XMODEM, the checksum of nkey encodings.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The nkey text of a public key: base32 of prefix, key and checksum (as nats-server reads it).
pub fn nkey_of(key: &PublicKey, kind: NkeyKind) -> String {
    let mut raw = Vec::with_capacity(35);
    raw.push(kind.prefix());
    raw.extend_from_slice(key.as_bytes());
    let crc = crc16(&raw);
    raw.extend_from_slice(&crc.to_le_bytes());
    data_encoding::BASE32_NOPAD.encode(&raw)
}

/// A signature in JWT form (base64url without padding) over `bytes`, as NATS JWTs carry it.
pub fn sign_raw(key: &SecretKey, bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(key.pair.sign(bytes))
}

/// The bytes a signature covers: `gmsa-fleet/v1 \0 purpose \0 subject \0 payload`.
pub fn signed_bytes(purpose: Purpose, subject: &str, payload: &[u8]) -> Vec<u8> {
    let tag = purpose.tag();
    let mut bytes = Vec::with_capacity(
        16usize.saturating_add(tag.len()).saturating_add(subject.len()).saturating_add(payload.len()),
    );
    bytes.extend_from_slice(b"gmsa-fleet/v1\0");
    bytes.extend_from_slice(tag);
    bytes.push(0);
    bytes.extend_from_slice(subject.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(payload);
    bytes
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

/// A key that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a public key is ed25519:<base64url of 32 bytes>; got {0:?}")]
    Public(String),
    #[error("a secret key is ed25519-seed:<base64url of 32 bytes> (the file's content is not shown)")]
    Secret,
}

impl PublicKey {
    /// The key of 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> PublicKey {
        PublicKey(bytes)
    }

    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let shown = || KeyError::Public(text.chars().take(80).collect());
        let encoded = text.trim().strip_prefix(PUBLIC_PREFIX).ok_or_else(shown)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| shown())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| shown())?;
        Ok(PublicKey(key))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        PublicKey::parse(text)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PublicKey::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 secret key (its seed). `Debug` never shows it.
pub struct SecretKey {
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl SecretKey {
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        // A 32-byte seed is always a valid Ed25519 secret key; ring only refuses other lengths.
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap_or_else(|_| unreachable!("32-byte seed"));
        SecretKey { seed, pair }
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> Result<SecretKey, ring::error::Unspecified> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)?;
        Ok(SecretKey::from_seed(seed))
    }

    /// Reads `ed25519-seed:<base64url>` (surrounding whitespace ignored). The error never repeats
    /// the text: it may be a secret.
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        let encoded = text.trim().strip_prefix(SECRET_PREFIX).ok_or(KeyError::Secret)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| KeyError::Secret)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Secret)?;
        Ok(SecretKey::from_seed(seed))
    }

    /// The text form, for a key file (mode 0600).
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.seed))
    }

    pub fn public(&self) -> PublicKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(key)
    }

    /// Signs `payload` on `subject` for `purpose`.
    pub fn sign(&self, purpose: Purpose, subject: &str, payload: &[u8]) -> Signature {
        Signature {
            key: self.public(),
            value: URL_SAFE_NO_PAD.encode(self.pair.sign(&signed_bytes(purpose, subject, payload))),
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public())
    }
}

/// A signature as it travels: the signer's public key and the signature, base64url (two headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub key: PublicKey,
    pub value: String,
}

/// Why a signature was not accepted: each rule its own variant, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the message carries no signature")]
    Unsigned,
    #[error("the signing key {0} is not one this reader trusts")]
    UnknownKey(String),
    #[error("the signature does not verify for this subject and payload with key {0}")]
    BadSignature(String),
}

impl SignatureError {
    /// The code results, dead letters and replies carry.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Unsigned => "unsigned",
            SignatureError::UnknownKey(_) => "unknown_key",
            SignatureError::BadSignature(_) => "bad_signature",
        }
    }
}

/// Verifies the key and signature headers of a message (`None` when absent) against `trusted`;
/// returns the key that signed. A key header that does not parse is an unknown key.
pub fn verify(
    trusted: &[PublicKey],
    key: Option<&str>,
    signature: Option<&str>,
    purpose: Purpose,
    subject: &str,
    payload: &[u8],
) -> Result<PublicKey, SignatureError> {
    let (Some(key), Some(signature)) = (key, signature) else { return Err(SignatureError::Unsigned) };
    let shown: String = key.chars().take(80).collect();
    let Ok(key) = PublicKey::parse(key) else { return Err(SignatureError::UnknownKey(shown)) };
    if !trusted.contains(&key) {
        return Err(SignatureError::UnknownKey(shown));
    }
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature.trim()) else {
        return Err(SignatureError::BadSignature(shown));
    };
    UnparsedPublicKey::new(&ED25519, key.as_bytes())
        .verify(&signed_bytes(purpose, subject, payload), &signature)
        .map_err(|_| SignatureError::BadSignature(shown))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_seed([byte; 32])
    }

    fn check(
        trusted: &[PublicKey],
        signature: &Signature,
        subject: &str,
        payload: &[u8],
    ) -> Result<PublicKey, SignatureError> {
        let key = signature.key.to_string();
        verify(trusted, Some(&key), Some(&signature.value), Purpose::Command, subject, payload)
    }

    #[test]
    fn rfc8032_test_vector_1_signs_as_published() {
        // RFC 8032 §7.1, TEST 1: ring must produce the published public key for the seed; our
        // signed bytes then differ from the raw message by design (purpose and subject).
        let seed: [u8; 32] = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let public = SecretKey::from_seed(seed).public();
        assert_eq!(
            public.as_bytes().to_vec(),
            hex::<32>("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").to_vec()
        );
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let expected = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
        assert_eq!(pair.sign(b"").as_ref().to_vec(), hex::<64>(expected).to_vec());
    }

    fn hex<const N: usize>(text: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn nkeys_have_the_encoding_nats_reads() {
        // nats-server 2.15.1 accepted this encoding as `auth_callout.issuer` (it checks the prefix
        // and the CRC); the e2e tests use keys encoded the same way.
        let text = "ABJHLOVMPA4CI6R5KLNGOB4GSLNIY7IOUPAJC4YFNDLQVGOOSTDHPR6Z";
        let raw = data_encoding::BASE32_NOPAD.decode(text.as_bytes()).unwrap();
        let mut key = [0u8; 32];
        key.copy_from_slice(&raw[1..33]);
        assert_eq!(nkey_of(&PublicKey(key), NkeyKind::Account), text);
        assert_eq!(crc16(b"123456789"), 0x31C3, "CRC-16/XMODEM check value");
        assert!(nkey_of(&PublicKey(key), NkeyKind::User).starts_with('U'));
    }

    #[test]
    fn keys_round_trip_as_text_and_secrets_are_not_shown() {
        let secret = key(7);
        let again = SecretKey::parse(&secret.to_text()).unwrap();
        assert_eq!(again.public(), secret.public());
        assert_eq!(PublicKey::parse(&secret.public().to_string()).unwrap(), secret.public());
        assert!(!format!("{secret:?}").contains(&secret.to_text()));
        assert!(!SecretKey::parse("ed25519-seed:AAAA").unwrap_err().to_string().contains("AAAA"));
        assert!(PublicKey::parse("ed25519:short").is_err());
        assert!(PublicKey::parse("rsa:AAAA").is_err());
    }

    #[test]
    fn each_rule_has_its_own_error() {
        let (signer, other) = (key(1), key(2));
        let signature = signer.sign(Purpose::Command, "fleet.cmd.a", b"{}");
        let trusted = [signer.public()];
        assert_eq!(check(&trusted, &signature, "fleet.cmd.a", b"{}"), Ok(signer.public()));
        assert_eq!(verify(&trusted, None, None, Purpose::Command, "s", b"").unwrap_err().code(), "unsigned");
        assert_eq!(check(&[other.public()], &signature, "fleet.cmd.a", b"{}").unwrap_err().code(), "unknown_key");
        assert_eq!(check(&trusted, &signature, "fleet.cmd.b", b"{}").unwrap_err().code(), "bad_signature");
        assert_eq!(check(&trusted, &signature, "fleet.cmd.a", b"{ }").unwrap_err().code(), "bad_signature");
        let key_text = signer.public().to_string();
        let as_result =
            verify(&trusted, Some(&key_text), Some(&signature.value), Purpose::Result, "fleet.cmd.a", b"{}");
        assert_eq!(as_result.unwrap_err().code(), "bad_signature");
        assert_eq!(
            verify(&trusted, Some("garbage"), Some("x"), Purpose::Command, "s", b"").unwrap_err().code(),
            "unknown_key"
        );
        assert_eq!(
            verify(&trusted, Some(&key_text), Some("!!"), Purpose::Command, "s", b"").unwrap_err().code(),
            "bad_signature"
        );
    }

    #[test]
    fn several_trusted_keys_let_the_signer_rotate() {
        let (old, new) = (key(3), key(4));
        let trusted = [old.public(), new.public()];
        for signer in [&old, &new] {
            let signature = signer.sign(Purpose::Command, "s", b"p");
            assert_eq!(check(&trusted, &signature, "s", b"p"), Ok(signer.public()));
        }
    }

    proptest! {
        #[test]
        fn any_change_to_subject_or_payload_breaks_the_signature(
            subject in "[a-z.]{1,20}", payload in proptest::collection::vec(any::<u8>(), 0..64),
            flip in any::<usize>(),
        ) {
            let signer = key(5);
            let signature = signer.sign(Purpose::Command, &subject, &payload);
            prop_assert!(check(&[signer.public()], &signature, &subject, &payload).is_ok());
            let mut changed = payload.clone();
            if changed.is_empty() { changed.push(0) } else { let at = flip % changed.len(); changed[at] ^= 1; }
            prop_assert_eq!(check(&[signer.public()], &signature, &subject, &changed).unwrap_err().code(), "bad_signature");
            // The separator keeps subject and payload apart: moving a byte across it changes the message.
            let moved = format!("{subject}x");
            prop_assert!(check(&[signer.public()], &signature, &moved, &payload).is_err());
        }
    }
}
