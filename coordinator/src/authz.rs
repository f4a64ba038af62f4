//! Who is asking: every control request is signed by an operator's key (fleetctl `--operator-key`) or
//! by the coordinator's own key (its rotation runner asks the rollout driver). The coordinator
//! verifies the signature over subject and payload, looks the key up in its `[[operators]]`, and
//! allows the request only if the operator's role covers it ([`proto::identity::Role`]). The
//! verified name — never what the request body claims — is what rollouts, rotations and
//! enrollments record as `requested_by`.
//!
//! The signature covers the request's time and a nonce as well (`proto::identity::request_context`):
//! a request is accepted within `REQUEST_WINDOW_SECS` of its time, and [`crate::admit`] accepts
//! each nonce once, so a captured request cannot be sent again.
//!
//! Refuses: an unsigned request (`unsigned`), a key not configured (`unknown_key`), a signature
//! that does not verify (`bad_signature`), a request without its time and nonce or outside the
//! window (`stale`), a role that does not cover the request (`forbidden`); [`crate::admit`] adds a
//! nonce seen before (`replayed`).

use bus::headers;
use gmsa::signing::{PublicKey, Purpose};
use proto::decode::{Code, Refusal};
use proto::identity::{REQUEST_AT_HEADER, REQUEST_NONCE_HEADER, REQUEST_WINDOW_SECS, Role};
use serde::Deserialize;
use time::OffsetDateTime;

/// One `[[operators]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Recorded as the actor of what this operator asks.
    pub name: String,
    /// `ed25519:…` (printed by `fleetctl keys new`).
    pub public_key: String,
    pub role: Role,
}

/// A verified requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

/// A request that passed every check but the nonce's first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub actor: Actor,
    /// The key that signed it.
    pub key: PublicKey,
    pub nonce: String,
}

/// The principals the coordinator answers.
#[derive(Debug, Clone, Default)]
pub struct Operators {
    principals: Vec<(PublicKey, Actor)>,
}

/// The coordinator's own name as an actor.
pub const COORDINATOR: &str = "coordinator";

impl Operators {
    /// From the configuration (keys already validated) plus the coordinator's own key.
    pub fn new(operators: &[OperatorConfig], coordinator: Option<PublicKey>) -> Operators {
        let mut principals: Vec<(PublicKey, Actor)> = operators
            .iter()
            .filter_map(|operator| {
                let key = PublicKey::parse(&operator.public_key).ok()?;
                Some((key, Actor { name: operator.name.clone(), role: operator.role }))
            })
            .collect();
        if let Some(key) = coordinator {
            principals.push((key, Actor { name: COORDINATOR.into(), role: Role::Approve }));
        }
        Operators { principals }
    }

    /// The key of operator `name` (for the NATS auth callout).
    pub fn key_of(&self, name: &str) -> Option<PublicKey> {
        self.principals.iter().find(|(_, actor)| actor.name == name && name != COORDINATOR).map(|(key, _)| *key)
    }

    /// Verifies `message`'s signature, its time against `now` and that its signer's role covers
    /// `needed`.
    pub fn check(&self, message: &async_nats::Message, needed: Role, now: OffsetDateTime) -> Result<Checked, Refusal> {
        self.check_parts(message.headers.as_ref(), message.subject.as_str(), &message.payload, needed, now)
    }

    /// [`Operators::check`] on a message's parts (pure).
    pub fn check_parts(
        &self,
        headers: Option<&async_nats::HeaderMap>,
        subject: &str,
        payload: &[u8],
        needed: Role,
        now: OffsetDateTime,
    ) -> Result<Checked, Refusal> {
        let get = |name: &str| headers.and_then(|headers| headers.get(name)).map(|value| value.as_str());
        let at = get(REQUEST_AT_HEADER).and_then(|at| at.parse::<i64>().ok());
        let nonce = get(REQUEST_NONCE_HEADER).filter(|nonce| proto::identity::is_request_nonce(nonce));
        let (Some(at), Some(nonce)) = (at, nonce) else {
            if get(proto::identity::SIGNATURE_HEADER).is_none() {
                return Err(Refusal::new(Code::Unsigned, "the request carries no signature"));
            }
            return Err(Refusal::new(
                Code::Stale,
                format!(
                    "the request needs {REQUEST_AT_HEADER} (Unix seconds) and {REQUEST_NONCE_HEADER} (32 lowercase hex digits) under its signature; this fleetctl predates them"
                ),
            ));
        };
        let keys: Vec<PublicKey> = self.principals.iter().map(|(key, _)| *key).collect();
        let context = proto::identity::request_context(subject, at, nonce);
        let key = headers::verify(headers, &keys, Purpose::Request, &context, payload)
            .map_err(|err| headers::refusal_of(&err))?;
        let Some((_, actor)) = self.principals.iter().find(|(known, _)| *known == key) else {
            return Err(Refusal::new(Code::UnknownKey, "the signing key is not an operator's"));
        };
        let offset = now.unix_timestamp().checked_sub(at).map(i64::unsigned_abs);
        if offset.is_none_or(|offset| offset > REQUEST_WINDOW_SECS.unsigned_abs()) {
            return Err(Refusal::new(
                Code::Stale,
                format!(
                    "the request was signed at {at} (Unix seconds), more than {REQUEST_WINDOW_SECS} s from the coordinator's clock ({}); sign it again (check the clocks)",
                    now.unix_timestamp()
                ),
            ));
        }
        authorize(actor, needed)?;
        Ok(Checked { actor: actor.clone(), key, nonce: nonce.to_string() })
    }
}

/// Whether `actor`'s role covers `needed` (pure).
pub fn authorize(actor: &Actor, needed: Role) -> Result<(), Refusal> {
    if actor.role >= needed {
        return Ok(());
    }
    Err(Refusal::new(
        Code::Forbidden,
        format!("operator {:?} has role {}; this request needs {}", actor.name, actor.role.name(), needed.name()),
    ))
}

/// Checks each `[[operators]]` entry; the error names the entry and the rule.
pub fn validate(operators: &[OperatorConfig]) -> Result<(), (String, String)> {
    let mut names = std::collections::BTreeSet::new();
    for (index, operator) in operators.iter().enumerate() {
        let field = |name: &str| format!("operators[{index}].{name}");
        if operator.name.trim().is_empty() || operator.name == COORDINATOR {
            return Err((field("name"), format!("must be non-empty and not {COORDINATOR:?}")));
        }
        if !names.insert(operator.name.as_str()) {
            return Err((field("name"), format!("{:?} is listed twice", operator.name)));
        }
        PublicKey::parse(&operator.public_key).map_err(|err| (field("public_key"), err.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmsa::signing::SecretKey;

    const NOW: i64 = 1_800_000_000;

    fn signed_at(key: &SecretKey, subject: &str, payload: &[u8], at: i64, nonce: &str) -> async_nats::HeaderMap {
        let mut map = async_nats::HeaderMap::new();
        map.insert(REQUEST_AT_HEADER, at.to_string().as_str());
        map.insert(REQUEST_NONCE_HEADER, nonce);
        let context = proto::identity::request_context(subject, at, nonce);
        headers::sign(&mut map, key, Purpose::Request, &context, payload);
        map
    }

    fn signed(key: &SecretKey, subject: &str, payload: &[u8]) -> async_nats::HeaderMap {
        signed_at(key, subject, payload, NOW, "0123456789abcdef0123456789abcdef")
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(NOW).unwrap()
    }

    #[test]
    fn a_request_is_accepted_only_in_its_window_and_its_time_and_nonce_are_under_the_signature() {
        let key = SecretKey::from_seed([1; 32]);
        let config =
            [OperatorConfig { name: "rita".into(), public_key: key.public().to_string(), role: Role::Approve }];
        let operators = Operators::new(&config, None);
        let subject = "fleet.ctl.run";
        let nonce = "0123456789abcdef0123456789abcdef";
        let check = |headers: &async_nats::HeaderMap| {
            operators.check_parts(Some(headers), subject, b"{}", Role::ReadOnly, now()).map_err(|refusal| refusal.code)
        };
        let accepted = check(&signed(&key, subject, b"{}")).unwrap();
        assert_eq!(
            (accepted.actor.name.as_str(), accepted.key, accepted.nonce.as_str()),
            ("rita", key.public(), nonce)
        );
        // At the window's edges, and just beyond them.
        for (at, expected) in [
            (NOW - REQUEST_WINDOW_SECS, Ok(())),
            (NOW + REQUEST_WINDOW_SECS, Ok(())),
            (NOW - REQUEST_WINDOW_SECS - 1, Err(Code::Stale)),
            (NOW + REQUEST_WINDOW_SECS + 1, Err(Code::Stale)),
            (i64::MIN, Err(Code::Stale)),
            (i64::MAX, Err(Code::Stale)),
        ] {
            assert_eq!(check(&signed_at(&key, subject, b"{}", at, nonce)).map(|_| ()), expected, "at {at}");
        }
        // The time or the nonce changed after signing: the signature no longer covers them.
        let mut moved = signed(&key, subject, b"{}");
        moved.insert(REQUEST_AT_HEADER, (NOW + 1).to_string().as_str());
        assert_eq!(check(&moved).unwrap_err(), Code::BadSignature);
        let mut renonced = signed(&key, subject, b"{}");
        renonced.insert(REQUEST_NONCE_HEADER, "ffffffffffffffffffffffffffffffff");
        assert_eq!(check(&renonced).unwrap_err(), Code::BadSignature);
        // Signed the old way (over the bare subject), or with a malformed nonce: refused as stale.
        let mut bare = async_nats::HeaderMap::new();
        headers::sign(&mut bare, &key, Purpose::Request, subject, b"{}");
        assert_eq!(check(&bare).unwrap_err(), Code::Stale);
        assert_eq!(check(&signed_at(&key, subject, b"{}", NOW, "NOT-HEX")).unwrap_err(), Code::Stale);
    }

    #[test]
    fn each_refusal_has_its_code_and_roles_are_ordered() {
        let (reader, approver, stranger) =
            (SecretKey::from_seed([1; 32]), SecretKey::from_seed([2; 32]), SecretKey::from_seed([3; 32]));
        let config = |name: &str, key: &SecretKey, role| OperatorConfig {
            name: name.into(),
            public_key: key.public().to_string(),
            role,
        };
        let operators =
            Operators::new(&[config("rita", &reader, Role::ReadOnly), config("ann", &approver, Role::Approve)], None);
        let subject = "fleet.ctl.rollout";
        let ok = operators.check_parts(Some(&signed(&reader, subject, b"{}")), subject, b"{}", Role::ReadOnly, now());
        assert_eq!(ok.unwrap().actor.name, "rita");
        let forbidden =
            operators.check_parts(Some(&signed(&reader, subject, b"{}")), subject, b"{}", Role::Operate, now());
        assert_eq!(forbidden.unwrap_err().code, Code::Forbidden);
        let approve =
            operators.check_parts(Some(&signed(&approver, subject, b"{}")), subject, b"{}", Role::Approve, now());
        assert_eq!(approve.unwrap().actor.name, "ann");
        assert_eq!(
            operators.check_parts(None, subject, b"{}", Role::ReadOnly, now()).unwrap_err().code,
            Code::Unsigned
        );
        let unknown =
            operators.check_parts(Some(&signed(&stranger, subject, b"{}")), subject, b"{}", Role::ReadOnly, now());
        assert_eq!(unknown.unwrap_err().code, Code::UnknownKey);
        let tampered =
            operators.check_parts(Some(&signed(&approver, subject, b"{}")), subject, b"{ }", Role::ReadOnly, now());
        assert_eq!(tampered.unwrap_err().code, Code::BadSignature);
        assert!(Role::ReadOnly < Role::Operate && Role::Operate < Role::Approve);
    }

    #[test]
    fn operator_entries_are_checked_by_name() {
        let key = SecretKey::from_seed([1; 32]).public().to_string();
        let entry = |name: &str, public_key: &str| OperatorConfig {
            name: name.into(),
            public_key: public_key.into(),
            role: Role::Operate,
        };
        assert_eq!(validate(&[entry("a", &key), entry("a", &key)]).unwrap_err().0, "operators[1].name");
        assert_eq!(validate(&[entry("coordinator", &key)]).unwrap_err().0, "operators[0].name");
        assert_eq!(validate(&[entry("b", "ed25519:x")]).unwrap_err().0, "operators[0].public_key");
        assert!(validate(&[entry("a", &key)]).is_ok());
    }
}
