//! Test harness for gmsa-fleet: starts the real external servers the tests talk to — `nats-server`
//! with JetStream and a Samba Active Directory domain controller — each on loopback with its own
//! temporary state, and stops them on drop. Tests never mock NATS or LDAP; they start one of these.
//! [`ccg`] is a client that does what a Windows node's CCG plugin does with the Key Vault secret.

pub mod ccg;
pub mod identity;
pub mod nats;
pub mod nats_cluster;
pub mod samba;
pub mod tls;
