//! Who is asking: every control request is signed by an operator's key (fleetctl `--operator-key`) or
//! by the coordinator's own key (its rotation runner asks the rollout driver). The coordinator
//! verifies the signature over subject and payload, looks the key up in its `[[operators]]`, and
//! allows the request only if the operator's role covers it ([`proto::identity::Role`]). The
//! verified name — never what the request body claims — is what rollouts, rotations and
//! enrollments record as `requested_by`.
//!
//! Refuses: an unsigned request (`unsigned`), a key not configured (`unknown_key`), a signature
//! that does not verify (`bad_signature`), a role that does not cover the request (`forbidden`).

use bus::headers;
use gmsa::signing::{PublicKey, Purpose};
use proto::decode::{Code, Refusal};
use proto::identity::Role;
use serde::Deserialize;

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

    /// Verifies `message`'s signature and that its signer's role covers `needed`.
    pub fn check(&self, message: &async_nats::Message, needed: Role) -> Result<Actor, Refusal> {
        self.check_parts(message.headers.as_ref(), message.subject.as_str(), &message.payload, needed)
    }

    /// [`Operators::check`] on a message's parts.
    pub fn check_parts(
        &self,
        headers: Option<&async_nats::HeaderMap>,
        subject: &str,
        payload: &[u8],
        needed: Role,
    ) -> Result<Actor, Refusal> {
        let keys: Vec<PublicKey> = self.principals.iter().map(|(key, _)| *key).collect();
        let key = headers::verify(headers, &keys, Purpose::Request, subject, payload)
            .map_err(|err| headers::refusal_of(&err))?;
        let Some((_, actor)) = self.principals.iter().find(|(known, _)| *known == key) else {
            return Err(Refusal::new(Code::UnknownKey, "the signing key is not an operator's"));
        };
        authorize(actor, needed)?;
        Ok(actor.clone())
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

    fn signed(key: &SecretKey, subject: &str, payload: &[u8]) -> async_nats::HeaderMap {
        let mut map = async_nats::HeaderMap::new();
        headers::sign(&mut map, key, Purpose::Request, subject, payload);
        map
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
        let ok = operators.check_parts(Some(&signed(&reader, subject, b"{}")), subject, b"{}", Role::ReadOnly);
        assert_eq!(ok.unwrap().name, "rita");
        let forbidden = operators.check_parts(Some(&signed(&reader, subject, b"{}")), subject, b"{}", Role::Operate);
        assert_eq!(forbidden.unwrap_err().code, Code::Forbidden);
        let approve = operators.check_parts(Some(&signed(&approver, subject, b"{}")), subject, b"{}", Role::Approve);
        assert_eq!(approve.unwrap().name, "ann");
        assert_eq!(operators.check_parts(None, subject, b"{}", Role::ReadOnly).unwrap_err().code, Code::Unsigned);
        let unknown = operators.check_parts(Some(&signed(&stranger, subject, b"{}")), subject, b"{}", Role::ReadOnly);
        assert_eq!(unknown.unwrap_err().code, Code::UnknownKey);
        let tampered = operators.check_parts(Some(&signed(&approver, subject, b"{}")), subject, b"{ }", Role::ReadOnly);
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
